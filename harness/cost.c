/* cost.c: every metric a case reports, derived in one place from the
 * suite's declared cost and the measured times.
 *
 *   tflops       = model FLOPs per iteration / median time / 1e12
 *                  (Megatron-LM's num_floating_point_operations convention:
 *                  matmuls only, 2 FLOP per multiply-add, backward = 2 x
 *                  forward, causal attention halved; README "FLOP counting")
 *   tflops_best  = the same over the fastest iteration
 *   tflops_palm  = PaLM-convention FLOPs (no causal halving) / median / 1e12
 *   tokens_per_s = tokens per iteration / median time
 *   gbps         = bytes per iteration / median time / 1e9. For a
 *                  collective, bytes is what one rank sends (self included),
 *                  so this is nccl-tests' algbw (doc/PERFORMANCE.md there)
 *   busbw_gbps   = gbps * (n - 1) / n for n ranks: nccl-tests' bus bandwidth
 *                  for alltoall, comparable across rank counts; null
 *                  without communication
 *   to_others_gbps = bytes sent to other ranks (self excluded) / median /
 *                  1e9: what actually crossed a link
 *   mfu_pct      = 100 * tflops / published dense peak of the device for the
 *                  case's dtype (hardware/specs, which names its source).
 *                  Megatron-LM's MFU (megatron/training/training.py): model
 *                  TFLOP/s per device, num_floating_point_operations /
 *                  (iteration time * 1e12 * world_size), divided by the
 *                  device's peak (reference/facts-models-hardware.md §E.2).
 *                  tflops is already per device: the cost is one rank's and
 *                  the time the slowest rank's. NAN, with a reason, when the
 *                  device or the dtype has no published peak: never against
 *                  a guessed or derived one
 * The median, not the mean, so that one slow outlier does not move the
 * headline figure; the mean and the spread are reported beside it.
 */
#include "mb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../hardware/specs/specs.h"
#include "cost.h"

static double per_s(double amount, double seconds, double scale)
{
	if (!(amount > 0) || !(seconds > 0))
		return NAN;
	return amount / seconds / scale;
}

static void derive_mfu(const mb_dev_info *dev, mb_dtype dt, mb_metrics *out)
{
	const char *name = dev && dev->name ? dev->name : "";
	const mb_spec *spec = mb_spec_find(name);
	out->dtype = dt;
	out->peak_device = spec ? spec->name : NULL;
	out->peak_tflops = mb_spec_peak_tflops(spec, dt, &out->peak_source);
	out->mfu_pct = NAN;
	out->mfu_reason[0] = 0;
	if (!spec && dev && dev->kind && strcmp(dev->kind, "cpu") == 0)
		snprintf(out->mfu_reason, sizeof out->mfu_reason,
			 "no published peak for a CPU (hardware/specs lists none); see "
			 "mfu_computed_pct and mfu_measured_pct");
	else if (!spec)
		snprintf(out->mfu_reason, sizeof out->mfu_reason,
			 "no published peak for device \"%.60s\" in hardware/specs", name);
	else if (isnan(out->peak_tflops))
		snprintf(out->mfu_reason, sizeof out->mfu_reason,
			 "no published dense %s peak for %s in hardware/specs", mb_dtype_name(dt),
			 spec->name);
	else if (isnan(out->tflops))
		snprintf(out->mfu_reason, sizeof out->mfu_reason,
			 "no model FLOP rate to divide (the case declares no FLOPs)");
	else
		out->mfu_pct = 100 * out->tflops / out->peak_tflops;
}

void mb_metrics_derive(const mb_cost *c, const mb_stats *s, int ranks, const mb_dev_info *dev,
		       mb_dtype dt, mb_metrics *out)
{
	out->tflops = per_s(c->flops, s->p50, 1e12);
	out->tflops_best = per_s(c->flops, s->min, 1e12);
	out->tflops_palm = per_s(c->flops_palm, s->p50, 1e12);
	out->tokens_per_s = per_s(c->tokens, s->p50, 1.0);
	out->gbps = per_s(c->bytes, s->p50, 1e9);
	out->busbw_gbps = NAN;
	if (c->comm_bytes > 0 && ranks > 0)
		out->busbw_gbps = out->gbps * (ranks - 1) / ranks;
	out->to_others_gbps = per_s(c->comm_bytes, s->p50, 1e9);
	derive_mfu(dev, dt, out);
}

/* mfu_computed_pct = 100 * tflops / the CPU peak computed from its cores,
 * clock and vector units (hardware/specs: labelled computed, never
 * published nor measured); mfu_measured_pct = 100 * tflops / the matmul
 * ceiling `moebench micro` measured for the dtype on this host (the
 * calibration file is named beside it). */
void mb_metrics_peaks(const mb_peaks *pk, mb_metrics *out)
{
	out->mfu_computed_pct = out->computed_peak_tflops = NAN;
	out->mfu_measured_pct = out->measured_peak_tflops = NAN;
	out->measured_source = out->measured_time = NULL;
	out->computed_how[0] = 0;
	mb_strlcpy(out->computed_reason, pk ? pk->caps_reason : "not a CPU",
		   sizeof out->computed_reason);
	mb_strlcpy(out->measured_reason, pk ? pk->cal_reason : "no calibration",
		   sizeof out->measured_reason);
	if (!pk)
		return;
	const int flops = !isnan(out->tflops);
	if (pk->have_caps) {
		const mb_cpu_caps *c = &pk->caps;
		out->computed_peak_tflops =
			mb_spec_cpu_peak_tflops(out->dtype, c->cores, c->ghz, c->simd_bits, c->fma_units,
						c->bf16, out->computed_how, sizeof out->computed_how);
		if (isnan(out->computed_peak_tflops))
			mb_strlcpy(out->computed_reason, out->computed_how,
				   sizeof out->computed_reason);
		else if (!flops)
			mb_strlcpy(out->computed_reason, "the case counts no FLOPs",
				   sizeof out->computed_reason);
		else
			out->mfu_computed_pct = 100 * out->tflops / out->computed_peak_tflops;
	}
	if (pk->cal) {
		out->measured_peak_tflops = pk->cal->matmul_tflops[out->dtype];
		out->measured_source = pk->cal_path;
		out->measured_time = pk->cal->time;
		if (isnan(out->measured_peak_tflops))
			snprintf(out->measured_reason, sizeof out->measured_reason,
				 "the calibration %.200s has no %s matmul ceiling", pk->cal_path,
				 mb_dtype_name(out->dtype));
		else if (!flops)
			mb_strlcpy(out->measured_reason, "the case counts no FLOPs",
				   sizeof out->measured_reason);
		else
			out->mfu_measured_pct = 100 * out->tflops / out->measured_peak_tflops;
	}
}

mb_dtype mb_case_dtype(const mb_params *p)
{
	char buf[16];
	mb_dtype dt = MB_FP32;
	if (p && p->defs && mb_params_find(p, "dtype") >= 0 &&
	    mb_dtype_parse(mb_param_choice(p, "dtype", buf, sizeof buf), &dt) != 0)
		dt = MB_FP32;
	return dt;
}
