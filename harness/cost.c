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
 *   gbps         = bytes moved per iteration / median time / 1e9
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

void mb_metrics_derive(const mb_cost *c, const mb_stats *s, mb_metrics *out)
{
	out->tflops = per_s(c->flops, s->p50, 1e12);
	out->tflops_best = per_s(c->flops, s->min, 1e12);
	out->tflops_palm = per_s(c->flops_palm, s->p50, 1e12);
	out->tokens_per_s = per_s(c->tokens, s->p50, 1.0);
	out->gbps = per_s(c->bytes, s->p50, 1e9);
}
