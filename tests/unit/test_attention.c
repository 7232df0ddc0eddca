/* test_attention.c: the CPU attention kernels against the fp64 reference,
 * the backward against finite differences, determinism, and the attention
 * suite's parameter checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "hardware/backend.h"
#include "hardware/cpu/cpu_attn.h"
#include "suites/ref.h"
#include "suites/ref_attn.h"
#include "suites/suite.h"

typedef struct shape {
	int64_t B, S, H, Hk, dq, dv;
	int causal;
} shape;

/* One problem: seeded fp32 inputs, the kernels' outputs. */
typedef struct prob {
	shape s;
	mb_op fop, bop;
	float *q, *k, *v, *dout;
	float *o, *lse, *dq, *dk, *dv;
} prob;

static size_t nq(const shape *s) { return (size_t)(s->B * s->S * s->H * s->dq); }
static size_t nk(const shape *s) { return (size_t)(s->B * s->S * s->Hk * s->dq); }
static size_t nv(const shape *s) { return (size_t)(s->B * s->S * s->Hk * s->dv); }
static size_t no(const shape *s) { return (size_t)(s->B * s->S * s->H * s->dv); }

static void prob_init(prob *p, shape s, uint64_t seed)
{
	memset(p, 0, sizeof *p);
	p->s = s;
	mb_op op = {.kind = MB_OP_ATTN_FWD, .dtype = MB_FP32};
	op.u.attn.batch = s.B;
	op.u.attn.seq = s.S;
	op.u.attn.heads = s.H;
	op.u.attn.kv_heads = s.Hk;
	op.u.attn.d_qk = s.dq;
	op.u.attn.d_v = s.dv;
	op.u.attn.scale = (float)(1.0 / sqrt((double)s.dq));
	op.u.attn.causal = s.causal;
	p->fop = op;
	op.kind = MB_OP_ATTN_BWD;
	p->bop = op;
	p->q = mb_alloc(nq(&s) * 4);
	p->k = mb_alloc(nk(&s) * 4);
	p->v = mb_alloc(nv(&s) * 4);
	p->dout = mb_alloc(no(&s) * 4);
	p->o = mb_alloc(no(&s) * 4);
	p->lse = mb_alloc((size_t)(s.B * s.H * s.S) * 4);
	p->dq = mb_alloc(nq(&s) * 4);
	p->dk = mb_alloc(nk(&s) * 4);
	p->dv = mb_alloc(nv(&s) * 4);
	assert_true(p->q && p->k && p->v && p->dout && p->o && p->lse && p->dq && p->dk && p->dv);
	/* Amplitude 2 for Q and K gives logits of standard deviation ~1.3:
	 * peaked enough that a wrong mask or max changes the answer. */
	mb_rand_fill(p->q, nq(&s), seed, 301, 2.0);
	mb_rand_fill(p->k, nk(&s), seed, 302, 2.0);
	mb_rand_fill(p->v, nv(&s), seed, 303, 1.0);
	mb_rand_fill(p->dout, no(&s), seed, 304, 1.0);
}

static void prob_free(prob *p)
{
	mb_free(p->q), mb_free(p->k), mb_free(p->v), mb_free(p->dout), mb_free(p->o);
	mb_free(p->lse), mb_free(p->dq), mb_free(p->dk), mb_free(p->dv);
}

static mb_ref_attn prob_ref(const prob *p)
{
	return (mb_ref_attn){.batch = p->s.B, .seq = p->s.S, .heads = p->s.H,
			     .kv_heads = p->s.Hk, .d_qk = p->s.dq, .d_v = p->s.dv,
			     .scale = p->fop.u.attn.scale, .causal = p->s.causal,
			     .q = p->q, .k = p->k, .v = p->v, .dout = p->dout};
}

/* Forward then backward through the kernels, planned for `threads`. */
static void prob_run(prob *p, int threads)
{
	omp_set_num_threads(threads);
	void *fs = NULL, *bs = NULL;
	assert_int_equal(mb_cpu_attn_plan(&p->fop, &fs), 0);
	assert_int_equal(mb_cpu_attn_plan(&p->bop, &bs), 0);
	/* Poison the outputs: every value must be written. */
	memset(p->o, 0xff, no(&p->s) * 4);
	memset(p->dq, 0xff, nq(&p->s) * 4);
	memset(p->dk, 0xff, nk(&p->s) * 4);
	memset(p->dv, 0xff, nv(&p->s) * 4);
	mb_io fio = {.in = {p->q, p->k, p->v}, .out = {p->o, p->lse}};
	mb_io bio = {.in = {p->dout, p->q, p->k, p->v, p->o, p->lse},
		     .out = {p->dq, p->dk, p->dv}};
	assert_int_equal(mb_cpu_attn_fwd(&p->fop, fs, &fio), 0);
	assert_int_equal(mb_cpu_attn_bwd(&p->bop, bs, &bio), 0);
	mb_cpu_attn_free(fs);
	mb_cpu_attn_free(bs);
}

/* Worst |got - ref| / max |ref| over each tensor. */
typedef struct errs {
	double o, lse, dq, dk, dv;
} errs;

static void upd(double *maxerr, double *maxref, double got, double ref)
{
	double e = fabs(got - ref);
	if (!(e <= *maxerr)) /* NaN counts as the worst */
		*maxerr = isnan(e) ? INFINITY : e;
	if (fabs(ref) > *maxref)
		*maxref = fabs(ref);
}

static errs prob_compare(const prob *p)
{
	const shape *s = &p->s;
	const mb_ref_attn a = prob_ref(p);
	const size_t rows = (size_t)(s->B * s->H * s->S);
	double *lse = calloc(rows, sizeof *lse), *dsum = calloc(rows, sizeof *dsum);
	double *pr = calloc((size_t)s->S, sizeof *pr), *o = calloc((size_t)s->dv, sizeof *o);
	double *dq = calloc((size_t)s->dq, sizeof *dq), *dk = calloc((size_t)s->dq, sizeof *dk);
	double *dv = calloc((size_t)s->dv, sizeof *dv);
	assert_true(lse && dsum && pr && o && dq && dk && dv);
	double e[5] = {0}, m[5] = {0};
	for (int64_t b = 0; b < s->B; b++)
		for (int64_t h = 0; h < s->H; h++)
			for (int64_t i = 0; i < s->S; i++) {
				const size_t at = (size_t)((b * s->H + h) * s->S + i);
				lse[at] = mb_ref_attn_row(&a, b, h, i, pr, o);
				dsum[at] = mb_ref_attn_row_dq(&a, b, h, i, pr, o, dq);
				const size_t row = (size_t)((b * s->S + i) * s->H + h);
				for (int64_t c = 0; c < s->dv; c++)
					upd(&e[0], &m[0], p->o[row * (size_t)s->dv + (size_t)c], o[c]);
				upd(&e[1], &m[1], p->lse[at], lse[at]);
				for (int64_t c = 0; c < s->dq; c++)
					upd(&e[2], &m[2], p->dq[row * (size_t)s->dq + (size_t)c], dq[c]);
			}
	for (int64_t b = 0; b < s->B; b++)
		for (int64_t kvh = 0; kvh < s->Hk; kvh++)
			for (int64_t j = 0; j < s->S; j++) {
				mb_ref_attn_key(&a, b, kvh, j, lse, dsum, dk, dv);
				const size_t row = (size_t)((b * s->S + j) * s->Hk + kvh);
				for (int64_t c = 0; c < s->dq; c++)
					upd(&e[3], &m[3], p->dk[row * (size_t)s->dq + (size_t)c], dk[c]);
				for (int64_t c = 0; c < s->dv; c++)
					upd(&e[4], &m[4], p->dv[row * (size_t)s->dv + (size_t)c], dv[c]);
			}
	free(lse), free(dsum), free(pr), free(o), free(dq), free(dk), free(dv);
	/* A floor under the scale: at seq 1, dQ and dK are exactly 0 and the
	 * kernel's are fp32 rounding (~1e-7) of a cancellation. */
	for (int t = 0; t < 5; t++)
		m[t] = fmax(m[t], 1e-2);
	return (errs){e[0] / m[0], e[1] / m[1], e[2] / m[2], e[3] / m[3], e[4] / m[4]};
}

/* fp32 kernels over at most a few hundred keys: relative errors near 1e-6;
 * 1e-4 still fails on any real slip (a mask off by one moves O by ~1e-2). */
#define TOL 1e-4

static void check_shape(shape s, int threads)
{
	prob p;
	prob_init(&p, s, 7);
	prob_run(&p, threads);
	errs e = prob_compare(&p);
	print_message("  B=%lld S=%lld H=%lld Hk=%lld dq=%lld dv=%lld causal=%d threads=%d: "
		      "O %.2e lse %.2e dQ %.2e dK %.2e dV %.2e\n",
		      (long long)s.B, (long long)s.S, (long long)s.H, (long long)s.Hk,
		      (long long)s.dq, (long long)s.dv, s.causal, threads, e.o, e.lse, e.dq, e.dk,
		      e.dv);
	assert_true(e.o < TOL);
	assert_true(e.lse < TOL);
	assert_true(e.dq < TOL);
	assert_true(e.dk < TOL);
	assert_true(e.dv < TOL);
	prob_free(&p);
}

static void test_vs_reference(void **st)
{
	(void)st;
	static const shape shapes[] = {
		{1, 1, 1, 1, 8, 8, 1},     /* seq = 1 */
		{1, 17, 2, 2, 16, 16, 1},  /* MHA, one partial block */
		{2, 33, 8, 2, 16, 16, 1},  /* GQA 4:1, two batches */
		{1, 40, 4, 4, 24, 16, 1},  /* MLA-like widths */
		{1, 300, 2, 1, 24, 16, 1}, /* several blocks, the last partial */
		{1, 300, 4, 4, 16, 8, 0},  /* non-causal, several blocks */
		{1, 19, 3, 1, 8, 12, 0},   /* non-causal GQA 3:1 */
		{2, 129, 4, 2, 8, 8, 1},   /* one row past a block */
		{1, 1100, 2, 1, 8, 8, 1},  /* past the largest block: online rescaling */
		{1, 1030, 2, 2, 8, 4, 0},  /* the same, non-causal */
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(shapes); i++)
		check_shape(shapes[i], 2);
}

/* The backward's dK/dV ownership depends on how the B*H items fall on
 * threads: groups cut by a range boundary, threads with no items. */
static void test_thread_counts(void **st)
{
	(void)st;
	static const int threads[] = {1, 2, 3, 5, 9};
	const shape s = {1, 150, 4, 1, 16, 8, 1};
	for (size_t i = 0; i < MB_ARRAY_LEN(threads); i++)
		check_shape(s, threads[i]);
	const shape s2 = {2, 70, 6, 2, 8, 8, 0};
	check_shape(s2, 4);
	/* 3 threads over 8 items of 2 groups: the middle thread cuts both. */
	const shape s3 = {1, 150, 8, 2, 16, 8, 1};
	check_shape(s3, 3);
}

/* L = sum(O o dO) in fp64 from the reference forward. */
static double loss(const prob *p)
{
	const shape *s = &p->s;
	const mb_ref_attn a = prob_ref(p);
	double *pr = calloc((size_t)s->S, sizeof *pr), *o = calloc((size_t)s->dv, sizeof *o);
	assert_true(pr && o);
	double l = 0.0;
	for (int64_t b = 0; b < s->B; b++)
		for (int64_t h = 0; h < s->H; h++)
			for (int64_t i = 0; i < s->S; i++) {
				(void)mb_ref_attn_row(&a, b, h, i, pr, o);
				const float *d = p->dout + ((b * s->S + i) * s->H + h) * s->dv;
				for (int64_t c = 0; c < s->dv; c++)
					l += o[c] * d[c];
			}
	free(pr), free(o);
	return l;
}

/* Central difference of L in element x[idx], stepping to the neighbouring
 * floats x +- h exactly (the step is what the floats hold, not h). */
static double fd(prob *p, float *x, size_t idx)
{
	const float x0 = x[idx];
	const float xp = x0 + 1e-2f, xm = x0 - 1e-2f;
	x[idx] = xp;
	const double lp = loss(p);
	x[idx] = xm;
	const double lm = loss(p);
	x[idx] = x0;
	return (lp - lm) / ((double)xp - (double)xm);
}

static double fd_compare(prob *p, float *x, const float *grad, size_t n)
{
	double err = 0.0, mx = 0.0;
	for (size_t i = 0; i < n; i++) {
		const double g = fd(p, x, i);
		err = fmax(err, fabs(g - grad[i]));
		mx = fmax(mx, fabs(g));
	}
	return err / mx;
}

/* The backward against finite differences of the forward: independent of
 * the backward formulas used by both the kernel and the reference. */
static void test_finite_differences(void **st)
{
	(void)st;
	const shape shapes[] = {{1, 6, 4, 2, 5, 3, 1}, {1, 5, 2, 1, 3, 4, 0}};
	for (size_t t = 0; t < MB_ARRAY_LEN(shapes); t++) {
		prob p;
		prob_init(&p, shapes[t], 11);
		prob_run(&p, 2);
		/* Step 1e-2: truncation error ~(1e-2)^2 relative, far above
		 * the fp64 rounding; the kernel's fp32 gradients are ~1e-6. */
		double eq = fd_compare(&p, p.q, p.dq, nq(&p.s));
		double ek = fd_compare(&p, p.k, p.dk, nk(&p.s));
		double ev = fd_compare(&p, p.v, p.dv, nv(&p.s));
		print_message("  finite differences: dQ %.2e dK %.2e dV %.2e\n", eq, ek, ev);
		assert_true(eq < 1e-3);
		assert_true(ek < 1e-3);
		assert_true(ev < 1e-3);
		prob_free(&p);
	}
}

/* Two backward runs give the same bits (cut groups summed in thread order). */
static void test_deterministic(void **st)
{
	(void)st;
	const shape s = {1, 260, 6, 1, 16, 16, 1}; /* 6 heads, one kv head, cut by threads */
	prob p;
	prob_init(&p, s, 3);
	prob_run(&p, 2);
	float *dk1 = mb_alloc(nk(&s) * 4), *dv1 = mb_alloc(nv(&s) * 4);
	float *dq1 = mb_alloc(nq(&s) * 4);
	assert_true(dk1 && dv1 && dq1);
	memcpy(dk1, p.dk, nk(&s) * 4);
	memcpy(dv1, p.dv, nv(&s) * 4);
	memcpy(dq1, p.dq, nq(&s) * 4);
	for (int r = 0; r < 3; r++) {
		prob_run(&p, 2);
		assert_memory_equal(dk1, p.dk, nk(&s) * 4);
		assert_memory_equal(dv1, p.dv, nv(&s) * 4);
		assert_memory_equal(dq1, p.dq, nq(&s) * 4);
	}
	mb_free(dk1), mb_free(dv1), mb_free(dq1);
	prob_free(&p);
}

static void test_plan_rejects(void **st)
{
	(void)st;
	prob p;
	prob_init(&p, (shape){1, 8, 4, 2, 8, 8, 1}, 1);
	void *sc = (void *)1;
	mb_op op = p.fop;
	op.u.attn.kv_heads = 3;
	assert_int_equal(mb_cpu_attn_plan(&op, &sc), MB_ERR_USAGE);
	assert_null(sc);
	assert_non_null(strstr(mb_errmsg(), "kv_heads"));
	op = p.bop;
	op.u.attn.seq = 0;
	assert_int_equal(mb_cpu_attn_plan(&op, &sc), MB_ERR_USAGE);
	op = p.fop;
	op.dtype = MB_BF16;
	assert_int_equal(mb_cpu_attn_plan(&op, &sc), MB_ERR_UNSUPPORTED);
	assert_int_equal(mb_cpu_attn_plan(&p.bop, &sc), 0);
	assert_true(mb_cpu_attn_scratch_bytes(sc) > 0);
	mb_cpu_attn_free(sc);
	mb_cpu_attn_free(NULL);
	prob_free(&p);
}

/* Scratch grows linearly with seq, not with its square. */
static void test_scratch_linear(void **st)
{
	(void)st;
	prob p;
	prob_init(&p, (shape){1, 1, 4, 1, 64, 64, 1}, 1);
	size_t bytes[2];
	for (int i = 0; i < 2; i++) {
		mb_op op = p.bop;
		op.u.attn.seq = i ? 65536 : 16384;
		void *sc = NULL;
		assert_int_equal(mb_cpu_attn_plan(&op, &sc), 0);
		bytes[i] = mb_cpu_attn_scratch_bytes(sc);
		mb_cpu_attn_free(sc);
	}
	assert_true(bytes[1] <= 4 * bytes[0] + 4096);
	assert_true(bytes[1] < (size_t)65536 * 65536 * sizeof(float) / 16); /* << one S x S */
	prob_free(&p);
}

static int suite_validate(const char *kv[][2], int n)
{
	const mb_suite *su = &mb_suite_attention;
	mb_params p;
	assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
	for (int i = 0; i < n; i++) {
		double v;
		int k = mb_params_find(&p, kv[i][0]);
		assert_true(k >= 0);
		assert_int_equal(mb_param_parse_value(&su->params[k], kv[i][1], &v), 0);
		assert_int_equal(mb_params_set(&p, kv[i][0], v, MB_SRC_USER), 0);
	}
	return su->validate(&p);
}

static void test_suite_validate(void **st)
{
	(void)st;
	const char *ok[][2] = {{"heads", "8"}, {"kv_heads", "2"}};
	assert_int_equal(suite_validate(ok, 2), 0);
	const char *bad[][2] = {{"heads", "8"}, {"kv_heads", "3"}};
	assert_int_equal(suite_validate(bad, 2), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "kv_heads"));
	const char *big[][2] = {{"heads", "128"}, {"kv_heads", "128"}, {"seq", "1M"},
				{"d_qk", "512"}, {"batch", "4"}};
	assert_int_equal(suite_validate(big, 5), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "seq"));
}

/* Presets keep heads a multiple of kv_heads for every model and size. */
static void test_suite_presets(void **st)
{
	(void)st;
	const mb_suite *su = &mb_suite_attention;
	for (int m = 0; m < mb_model_count; m++)
		for (int z = 0; z < MB_SIZE_COUNT; z++) {
			mb_params p;
			assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
			assert_int_equal(su->preset(&mb_models[m], (mb_size)z, &p), 0);
			assert_int_equal(su->validate(&p), 0);
			const int64_t h = mb_param_int(&p, "heads"), kv = mb_param_int(&p, "kv_heads");
			assert_int_equal(h % kv, 0);
			if (z == MB_SIZE_FULL)
				assert_int_equal(h, mb_models[m].heads);
			if (strcmp(mb_models[m].attention, "mla") == 0)
				assert_int_equal(kv, h);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vs_reference),
		cmocka_unit_test(test_thread_counts),
		cmocka_unit_test(test_finite_differences),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_plan_rejects),
		cmocka_unit_test(test_scratch_linear),
		cmocka_unit_test(test_suite_validate),
		cmocka_unit_test(test_suite_presets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
