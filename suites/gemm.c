/* gemm.c: one dense matmul C = A B, the measured matmul ceiling.
 *
 * Not part of the MoE workload: it is the yardstick the workload suites are
 * compared against in the same run (ci/bench-cpu.sh), and a quick check that
 * a backend's BLAS is healthy. The size presets give square shapes; m, n, k
 * can be set to match another suite's FLOPs.
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "suite.h"

enum { S_A = 101, S_B = 102 }; /* data streams, distinct from other suites' */

static const mb_param_def gemm_params[] = {
	{"m", MB_PT_INT, "512", 1, 1048576, NULL, "rows of A and C"},
	{"n", MB_PT_INT, "512", 1, 1048576, NULL, "columns of B and C"},
	{"k", MB_PT_INT, "512", 1, 1048576, NULL, "columns of A, rows of B"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "element type"},
};

typedef struct gemm_state {
	const mb_backend *be;
	mb_dev *dev;
	int64_t m, n, k;
	uint64_t seed;
	float *a, *b, *c; /* device */
	mb_plan *plan;
	mb_io io;
} gemm_state;

static int gemm_preset(const mb_model *model, mb_size size, mb_params *p)
{
	(void)model;
	static const double dims[MB_SIZE_COUNT] = {512, 4096, 8192};
	int rc = mb_params_set(p, "m", dims[size], MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "n", dims[size], MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "k", dims[size], MB_SRC_PRESET);
	return rc;
}

static int gemm_validate(const mb_params *p)
{
	double m = (double)mb_param_int(p, "m"), n = (double)mb_param_int(p, "n"),
	       k = (double)mb_param_int(p, "k");
	double bytes = 4.0 * (m * k + k * n + m * n);
	if (bytes > 64.0 * (1u << 30))
		return mb_err(MB_ERR_USAGE, "gemm: m, n, k need %.1f GiB (accepted: up to 64 GiB)",
			      bytes / (1u << 30));
	return 0;
}

static int gemm_cost(const mb_params *p, mb_cost *c)
{
	memset(c, 0, sizeof *c);
	c->flops = 2.0 * (double)mb_param_int(p, "m") * (double)mb_param_int(p, "n") *
		   (double)mb_param_int(p, "k");
	c->flops_palm = c->flops;
	return 0;
}

static void gemm_teardown(void *st)
{
	gemm_state *s = st;
	if (!s)
		return;
	mb_dev_plan_free(s->be, s->dev, s->plan);
	mb_dev_free(s->be, s->dev, s->a);
	mb_dev_free(s->be, s->dev, s->b);
	mb_dev_free(s->be, s->dev, s->c);
	free(s);
}

static int upload_random(gemm_state *s, float *dst, size_t n, uint64_t stream)
{
	float *h = mb_alloc(n * sizeof *h);
	if (!h)
		return mb_err(MB_ERR_NOMEM, "gemm: out of host memory");
	mb_rand_fill(h, n, s->seed, stream, 1.0);
	int rc = mb_dev_upload(s->be, s->dev, dst, h, n * sizeof *h);
	mb_free(h);
	return rc;
}

static int gemm_setup(const mb_case_ctx *ctx, void **out)
{
	gemm_state *s = calloc(1, sizeof *s);
	if (!s)
		return mb_err(MB_ERR_NOMEM, "gemm: out of memory");
	*out = s;
	s->be = ctx->be;
	s->dev = ctx->dev;
	s->seed = ctx->seed;
	s->m = mb_param_int(ctx->params, "m");
	s->n = mb_param_int(ctx->params, "n");
	s->k = mb_param_int(ctx->params, "k");
	char dt[16];
	mb_dtype dtype;
	int rc = mb_dtype_parse(mb_param_choice(ctx->params, "dtype", dt, sizeof dt), &dtype);
	if (rc)
		return rc;
	/* Buffers, upload and check are fp32 only; a backend that runs bf16
	 * GEMMs (the CPU for gmm) must not be handed fp32 data as bf16. */
	if (dtype != MB_FP32)
		return mb_err(MB_ERR_UNSUPPORTED, "gemm: dtype=%s is not implemented by this suite",
			      mb_dtype_name(dtype));
	mb_op op = {.kind = MB_OP_GEMM, .dtype = dtype};
	op.u.gemm.m = s->m;
	op.u.gemm.n = s->n;
	op.u.gemm.k = s->k;
	op.u.gemm.alpha = 1.0f;
	rc = mb_dev_plan(s->be, s->dev, &op, &s->plan);
	if (rc)
		return rc;
	size_t na = (size_t)(s->m * s->k), nb = (size_t)(s->k * s->n), nc = (size_t)(s->m * s->n);
	s->a = mb_dev_alloc(s->be, s->dev, na * sizeof(float));
	s->b = mb_dev_alloc(s->be, s->dev, nb * sizeof(float));
	s->c = mb_dev_alloc(s->be, s->dev, nc * sizeof(float));
	if (!s->a || !s->b || !s->c)
		return mb_err(MB_ERR_NOMEM, "gemm: out of device memory for %zu floats",
			      na + nb + nc);
	rc = upload_random(s, s->a, na, S_A);
	if (!rc)
		rc = upload_random(s, s->b, nb, S_B);
	s->io.in[0] = s->a;
	s->io.in[1] = s->b;
	s->io.out[0] = s->c;
	return rc;
}

static int gemm_run(void *st)
{
	gemm_state *s = st;
	return mb_dev_launch(s->be, s->dev, s->plan, &s->io);
}

/* Each checked entry is an fp64 dot product of seeded values, regenerated
 * here, so the check needs no copy of A or B. Small shapes are checked in
 * full; larger ones on 1024 seeded entries (the method says which). */
static int gemm_verify(void *st, mb_check *out)
{
	gemm_state *s = st;
	size_t nc = (size_t)(s->m * s->n);
	float *c = mb_alloc(nc * sizeof *c);
	if (!c)
		return mb_err(MB_ERR_NOMEM, "gemm: out of host memory for the check");
	int rc = mb_dev_download(s->be, s->dev, c, s->c, nc * sizeof *c);
	if (rc) {
		mb_free(c);
		return rc;
	}
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < nc; i++)
		out->nonfinite += !isfinite(c[i]);
	int full = nc <= 65536;
	int64_t n_check = full ? (int64_t)nc : 1024;
	double *ref = malloc((size_t)n_check * sizeof *ref), scale = 0;
	int64_t *at = malloc((size_t)n_check * sizeof *at);
	if (!ref || !at) {
		free(ref), free(at), mb_free(c);
		return mb_err(MB_ERR_NOMEM, "gemm: out of host memory for the check");
	}
#pragma omp parallel for schedule(dynamic, 16)
	for (int64_t q = 0; q < n_check; q++) {
		int64_t idx = full ? q : (int64_t)(mb_rand_u64(s->seed, 199, (uint64_t)q) % nc);
		int64_t i = idx / s->n, j = idx % s->n;
		double acc = 0;
		for (int64_t p = 0; p < s->k; p++) {
			double a = 2 * mb_rand_uniform(s->seed, S_A, (uint64_t)(i * s->k + p)) - 1;
			double b = 2 * mb_rand_uniform(s->seed, S_B, (uint64_t)(p * s->n + j)) - 1;
			acc += (double)(float)a * (double)(float)b;
		}
		ref[q] = acc;
		at[q] = idx;
	}
	for (int64_t q = 0; q < n_check; q++)
		scale = fmax(scale, fabs(ref[q]));
	/* fp32 with k-long sums: errors grow like sqrt(k) * 6e-8 relative to
	 * the largest entry; 1e-4 leaves room for blocked summation orders. */
	out->tolerance = 1e-4;
	out->method = full ? "fp64 reference, all outputs" : "fp64 reference, 1024 sampled outputs";
	for (int64_t q = 0; q < n_check; q++) {
		double got = c[at[q]], err = fabs(got - ref[q]);
		double rel = err / (scale + 1e-30);
		if (!(rel <= out->tolerance))
			out->mismatched++;
		if (!(rel <= out->max_rel_err)) {
			out->max_rel_err = rel;
			out->max_abs_err = err;
			snprintf(out->detail, sizeof out->detail, "C[%lld][%lld] = %.9g, reference %.9g",
				 (long long)(at[q] / s->n), (long long)(at[q] % s->n), got, ref[q]);
		}
	}
	out->checked = n_check;
	out->passed = out->mismatched == 0 && out->nonfinite == 0;
	if (out->nonfinite)
		snprintf(out->detail, sizeof out->detail, "%lld non-finite values in C",
			 (long long)out->nonfinite);
	free(ref), free(at), mb_free(c);
	return 0;
}

const mb_suite mb_suite_gemm = {
	.name = "gemm",
	.summary = "one dense matmul C = A B: the matmul ceiling other suites are compared to",
	.params = gemm_params,
	.nparams = (int)MB_ARRAY_LEN(gemm_params),
	.preset = gemm_preset,
	.validate = gemm_validate,
	.cost = gemm_cost,
	.setup = gemm_setup,
	.run = gemm_run,
	.verify = gemm_verify,
	.teardown = gemm_teardown,
};
