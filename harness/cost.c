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
 * The median, not the mean, so that one slow outlier does not move the
 * headline figure; the mean and the spread are reported beside it.
 */
#include "mb.h"

#include <math.h>

#include "cost.h"

static double per_s(double amount, double seconds, double scale)
{
	if (!(amount > 0) || !(seconds > 0))
		return NAN;
	return amount / seconds / scale;
}

void mb_metrics_derive(const mb_cost *c, const mb_stats *s, int ranks, mb_metrics *out)
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
}
