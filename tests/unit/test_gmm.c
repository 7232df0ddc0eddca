/* test_gmm.c: the gmm suite on the CPU backend against the fp64 reference:
 * its shapes, expert parallelism, skew, sampled check, faults, validate,
 * presets and bf16 (suites/gmm.c). The CPU ops it is built from are tested one by one in
 * test_cpu_ops.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "suites/ref.h"
#include "suites/suite.h"

static const mb_backend *be = &mb_backend_cpu;

/* The CPU backend offers bf16 only with avx512_bf16; elsewhere the bf16
 * tests check that it says so, and skip the rest. */
static int cpu_has_bf16(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512bf16") != 0;
}

/* ---- helpers ---- */

static mb_dev *open_dev(void)
{
	mb_dev *dev = NULL;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	assert_non_null(dev);
	return dev;
}

typedef struct shape {
	int hidden, ffn, experts, top_k, tokens;
	double skew;
	int sigmoid;
	int groups; /* MoGE groups, 0 = ungrouped */
	int ep, rank; /* expert parallelism (0 = 1) and the rank emulated */
} shape;

static void gmm_params(const shape *s, mb_params *p)
{
	const mb_suite *su = &mb_suite_gmm;
	assert_int_equal(mb_params_init(p, su->params, su->nparams), 0);
	assert_int_equal(mb_params_set(p, "hidden", s->hidden, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "ffn", s->ffn, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "experts", s->experts, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "top_k", s->top_k, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "tokens", s->tokens, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "skew", s->skew, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "score", s->sigmoid, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "groups", s->groups, MB_SRC_USER), 0);
	assert_int_equal(mb_params_set(p, "ep", s->ep ? s->ep : 1, MB_SRC_USER), 0);
}

static double info_get(const mb_case_info *info, const char *key)
{
	for (int i = 0; i < info->n; i++)
		if (strcmp(info->kv[i].key, key) == 0)
			return info->kv[i].val;
	fail_msg("info has no %s", key);
	return NAN;
}

/* setup, run twice (a second run must not accumulate onto the first),
 * verify, info, teardown. */
static void run_case_dtype(mb_dev *dev, const shape *s, mb_dtype dt, mb_check *ck,
			   mb_case_info *info)
{
	const mb_suite *su = &mb_suite_gmm;
	mb_params p;
	gmm_params(s, &p);
	assert_int_equal(mb_params_set(&p, "dtype", dt == MB_BF16 ? 1 : 0, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);
	mb_cost cost;
	assert_int_equal(su->cost(&p, &cost), 0);
	double pairs = (double)s->tokens * s->top_k;
	if (s->ep > 1) /* known once the group is routed */
		assert_true(isnan(cost.flops));
	else
		assert_true(cost.flops == 18.0 * pairs * s->hidden * s->ffn);
	assert_true(cost.tokens == s->tokens);
	mb_case_ctx ctx = {.be = be, .dev = dev, .params = &p, .seed = 7,
			   .world = {.rank = s->rank, .size = 1}};
	void *st = NULL;
	int rc = su->setup(&ctx, &st);
	if (rc)
		fail_msg("setup: %s", mb_errmsg());
	assert_int_equal(su->run(st), 0);
	assert_int_equal(su->run(st), 0);
	assert_int_equal(mb_dev_sync(be, dev), 0);
	assert_int_equal(su->verify(st, ck), 0);
	memset(info, 0, sizeof *info);
	su->info(st, info);
	assert_int_equal(su->case_cost(st, &cost), 0);
	su->teardown(st);
	if (s->ep > 1) /* the rows received */
		pairs = info_get(info, "pairs");
	else
		assert_true(info_get(info, "pairs") == pairs);
	assert_true(cost.flops == 18.0 * pairs * s->hidden * s->ffn);
}

static void run_case(mb_dev *dev, const shape *s, mb_check *ck, mb_case_info *info)
{
	run_case_dtype(dev, s, MB_FP32, ck, info);
}

/* ---- the suite ---- */

static void test_suite_shapes(void **state)
{
	(void)state;
	const shape shapes[] = {
		{32, 16, 4, 2, 64, 0.0, 0, 0, 0, 0},
		{48, 24, 16, 1, 4, 3.0, 0, 0, 0, 0},   /* at most 4 of 16 experts get rows */
		{16, 8, 4, 4, 33, 0.0, 1, 0, 0, 0},    /* top_k == experts */
		{64, 32, 8, 2, 300, 1.2, 1, 0, 0, 0},  /* skewed */
		{40, 8, 1, 1, 7, 0.0, 0, 0, 0, 0},     /* one expert: no router gradient */
		{24, 16, 8, 3, 200, 0.0, 1, 0, 0, 0},
		{32, 16, 16, 4, 256, 0.0, 0, 4, 0, 0}, /* MoGE: 4 groups x 1 of 4 */
		{32, 16, 16, 4, 256, 1.2, 1, 2, 0, 0}, /* MoGE, skewed within the groups */
	};
	mb_dev *dev = open_dev();
	for (size_t i = 0; i < MB_ARRAY_LEN(shapes); i++) {
		const shape *s = &shapes[i];
		mb_check ck;
		mb_case_info info;
		run_case(dev, s, &ck, &info);
		if (!ck.passed)
			fail_msg("shape %zu: %s", i, ck.detail);
		assert_string_equal(ck.method, "fp64 reference, all outputs");
		assert_true(ck.checked > (int64_t)s->tokens * s->hidden);
		assert_int_equal(ck.mismatched, 0);
		assert_int_equal(ck.nonfinite, 0);
		assert_true(ck.max_rel_err < 1e-4);
		assert_true(ck.tolerance == 2e-3);
		const double rmin = info_get(&info, "rows_min"), rmax = info_get(&info, "rows_max");
		const double empty = info_get(&info, "experts_empty");
		if (s->experts > s->tokens * s->top_k)
			assert_true(empty >= s->experts - s->tokens * s->top_k);
		if (s->top_k == s->experts)
			assert_true(rmin == s->tokens && rmax == s->tokens);
		if (s->skew > 1.0 && s->tokens > 100)
			assert_true(rmax > 4 * (rmin + 1));
		if (s->groups > 1) /* no expert can take more than its group's share */
			assert_true(rmax <= (double)s->tokens * s->top_k / s->groups);
	}
	mb_dev_close(be, dev);
}

/* ep > 1: each rank computes the pairs routed to its slice; over the ranks
 * of a group they are all of the group's pairs, every rank's check passes,
 * and skew makes rank 0 (the most popular experts) receive the most. */
static void test_suite_ep(void **state)
{
	(void)state;
	const shape groups[] = {
		{32, 16, 8, 2, 64, 0.0, 0, 0, 2, 0},
		{24, 16, 16, 4, 48, 0.0, 1, 0, 4, 0},
		{32, 16, 16, 2, 128, 1.2, 0, 0, 4, 0}, /* skewed */
		{32, 16, 16, 4, 64, 0.0, 0, 4, 4, 0},  /* MoGE: a group per rank */
		{16, 8, 8, 1, 16, 0.0, 0, 0, 8, 0},    /* one expert per rank */
	};
	mb_dev *dev = open_dev();
	for (size_t i = 0; i < MB_ARRAY_LEN(groups); i++) {
		double total = 0.0, first = 0.0, most = 0.0;
		for (int r = 0; r < groups[i].ep; r++) {
			shape s = groups[i];
			s.rank = r;
			mb_check ck;
			mb_case_info info;
			run_case(dev, &s, &ck, &info);
			if (!ck.passed)
				fail_msg("ep group %zu rank %d: %s", i, r, ck.detail);
			assert_string_equal(ck.method, "fp64 reference, all outputs");
			assert_true(info_get(&info, "ep_rank") == r);
			const double got = info_get(&info, "pairs");
			total += got;
			first = r ? first : got;
			most = got > most ? got : most;
			/* every rank sees the same group routing */
			assert_true(info_get(&info, "ep_imbalance") >= 1.0);
			assert_true(info_get(&info, "rows_received_mean") ==
				    (double)s.tokens * s.top_k);
		}
		assert_true(total == (double)groups[i].tokens * groups[i].top_k * groups[i].ep);
		if (groups[i].skew > 1.0)
			assert_true(first == most && first > 1.5 * total / groups[i].ep);
	}
	mb_dev_close(be, dev);

	/* a fault in the received rows' ops is caught, at full size for each op
	 * and sampled for the GMM */
	const shape small = {32, 16, 8, 2, 64, 0.0, 0, 0, 2, 1};
	const shape big = {1024, 512, 16, 2, 512, 0.0, 1, 0, 2, 0};
	const struct {
		const char *op;
		const shape *s;
	} faults[] = {{"gmm", &small},       {"permute", &small},     {"unpermute", &small},
		      {"unpermute_bwd", &small}, {"permute_bwd", &small}, {"gmm", &big}};
	for (size_t i = 0; i < MB_ARRAY_LEN(faults); i++) {
		setenv("MOEBENCH_FAULT", faults[i].op, 1);
		dev = open_dev();
		unsetenv("MOEBENCH_FAULT");
		mb_check ck;
		mb_case_info info;
		run_case(dev, faults[i].s, &ck, &info);
		if (ck.passed)
			fail_msg("an ep fault in %s passed the check", faults[i].op);
		mb_dev_close(be, dev);
	}
	dev = open_dev();
	mb_check ck;
	mb_case_info info;
	run_case(dev, &big, &ck, &info);
	if (!ck.passed)
		fail_msg("ep sampled: %s", ck.detail);
	assert_non_null(strstr(ck.method, "sampled"));
	mb_dev_close(be, dev);
}

/* The skew calibration gets close to the Zipf shares it promises. */
static void test_skew_shares(void **state)
{
	(void)state;
	const shape s = {64, 16, 8, 2, 4096, 1.2, 0, 0, 0, 0};
	mb_dev *dev = open_dev();
	mb_check ck;
	mb_case_info info;
	run_case(dev, &s, &ck, &info);
	assert_true(ck.passed);
	double norm = 0.0;
	for (int e = 1; e <= 8; e++)
		norm += pow(e, -1.2);
	const double pairs = 4096.0 * 2;
	/* expert 0 should get pairs / norm, expert 7 pairs * 8^-1.2 / norm */
	assert_true(fabs(info_get(&info, "rows_max") - pairs / norm) < 0.1 * pairs / norm);
	assert_true(fabs(info_get(&info, "rows_min") - pairs * pow(8, -1.2) / norm) <
		    0.25 * pairs * pow(8, -1.2) / norm);
	mb_dev_close(be, dev);
}

/* Above 2e9 multiply-adds the check samples; it must still pass, and must
 * still catch a corrupted GMM. */
static void test_suite_sampled(void **state)
{
	(void)state;
	const shape s = {1024, 512, 8, 2, 1024, 0.0, 1, 0, 0, 0};
	static const char prefix[] = "fp64 reference, sampled";
	mb_dev *dev = open_dev();
	mb_check ck;
	mb_case_info info;
	run_case(dev, &s, &ck, &info);
	if (!ck.passed)
		fail_msg("%s", ck.detail);
	assert_memory_equal(ck.method, prefix, sizeof prefix - 1);
	mb_dev_close(be, dev);

	setenv("MOEBENCH_FAULT", "gmm", 1);
	dev = open_dev();
	unsetenv("MOEBENCH_FAULT");
	run_case(dev, &s, &ck, &info);
	assert_false(ck.passed);
	assert_true(ck.mismatched > 0);
	mb_dev_close(be, dev);
}

static void test_fault(void **state)
{
	(void)state;
	const shape s = {32, 16, 4, 2, 64, 0.0, 0, 0, 0, 0};
	setenv("MOEBENCH_FAULT", "gmm", 1);
	mb_dev *dev = open_dev();
	unsetenv("MOEBENCH_FAULT");
	mb_dev_info di;
	be->describe(dev, &di);
	assert_non_null(di.fault);
	assert_string_equal(di.fault, "gmm");
	mb_check ck;
	mb_case_info info;
	run_case(dev, &s, &ck, &info);
	assert_false(ck.passed);
	assert_true(ck.mismatched > 0);
	mb_dev_close(be, dev);

	/* each op's fault is caught too, not only the matmuls' */
	const char *ops[] = {"router", "permute", "swiglu", "unpermute_bwd", "router_bwd", "gemm"};
	for (size_t i = 0; i < MB_ARRAY_LEN(ops); i++) {
		setenv("MOEBENCH_FAULT", ops[i], 1);
		dev = open_dev();
		unsetenv("MOEBENCH_FAULT");
		run_case(dev, &s, &ck, &info);
		if (ck.passed)
			fail_msg("a fault in %s passed the check", ops[i]);
		mb_dev_close(be, dev);
	}

	/* a name that is no op is refused rather than silently ignored */
	setenv("MOEBENCH_FAULT", "gmmm", 1);
	mb_dev *bad = NULL;
	assert_int_equal(mb_dev_open(be, &bad), MB_ERR_USAGE);
	assert_null(bad);
	unsetenv("MOEBENCH_FAULT");

	/* without the variable no fault is reported */
	dev = open_dev();
	be->describe(dev, &di);
	assert_null(di.fault);
	assert_string_equal(di.kind, "cpu");
	assert_true(di.threads >= 1);
	assert_non_null(strstr(di.library, "OpenBLAS"));
	mb_dev_close(be, dev);
}

static void test_validate(void **state)
{
	(void)state;
	const mb_suite *su = &mb_suite_gmm;
	mb_params p;
	const shape s = {32, 16, 4, 8, 64, 0.0, 0, 0, 0, 0};
	gmm_params(&s, &p);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "top_k"));
	assert_int_equal(mb_params_set(&p, "top_k", 4, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);

	/* MoGE groups must divide experts and top_k */
	const shape moge = {32, 16, 16, 4, 64, 0.0, 0, 3, 0, 0};
	gmm_params(&moge, &p);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "groups=3"));
	assert_int_equal(mb_params_set(&p, "groups", 8, MB_SRC_USER), 0); /* not of top_k */
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "groups", 2, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);
	assert_int_equal(mb_params_set(&p, "groups", 1, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);

	const shape big = {65536, 65536, 64, 2, 64, 0.0, 0, 0, 0, 0};
	gmm_params(&big, &p);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "64 GiB"));

	/* ep must divide experts */
	const shape ep = {32, 16, 8, 2, 64, 0.0, 0, 0, 3, 0};
	gmm_params(&ep, &p);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "ep=3"));
	assert_non_null(strstr(mb_errmsg(), "divisor of experts (8)"));
	assert_int_equal(mb_params_set(&p, "ep", 8, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);
	assert_int_equal(mb_params_set(&p, "ep", 16, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
}

/* The suite in bf16 passes its check (tolerance 3e-2) at two small shapes,
 * one with empty experts, and a corrupted bf16 GMM is caught. Without
 * avx512_bf16 the case is skipped with that reason, not failed. */
static void test_suite_bf16(void **state)
{
	(void)state;
	const shape shapes[] = {
		{32, 16, 4, 2, 64, 0.0, 0, 0, 0, 0},
		{48, 24, 16, 1, 4, 3.0, 1, 0, 0, 0}, /* at most 4 of 16 experts get rows */
	};
	mb_dev *dev = open_dev();
	if (!cpu_has_bf16()) {
		const mb_suite *su = &mb_suite_gmm;
		mb_params p;
		gmm_params(&shapes[0], &p);
		assert_int_equal(mb_params_set(&p, "dtype", 1, MB_SRC_USER), 0);
		mb_case_ctx ctx = {.be = be, .dev = dev, .params = &p, .seed = 1};
		void *st = NULL;
		assert_int_equal(su->setup(&ctx, &st), MB_ERR_UNSUPPORTED);
		assert_non_null(strstr(mb_errmsg(), "avx512_bf16"));
		mb_case_info info = {0};
		su->info(st, &info); /* a half-finished setup is tolerated */
		su->teardown(st);
		mb_dev_close(be, dev);
		print_message("skip: this cpu lacks avx512_bf16, so bf16 gmm is not run\n");
		skip();
	}
	for (size_t i = 0; i < MB_ARRAY_LEN(shapes); i++) {
		mb_check ck;
		mb_case_info info;
		run_case_dtype(dev, &shapes[i], MB_BF16, &ck, &info);
		if (!ck.passed)
			fail_msg("bf16 shape %zu: %s", i, ck.detail);
		assert_true(ck.tolerance == 3e-2);
		assert_true(ck.max_rel_err > 0.0); /* bf16 rounding is there to see */
		assert_true(ck.checked > (int64_t)shapes[i].tokens * shapes[i].hidden);
		if (i == 1)
			assert_true(info_get(&info, "experts_empty") >= 12);
	}
	mb_dev_close(be, dev);

	const char *ops[] = {"gmm", "gemm", "permute", "unpermute", "swiglu_bwd"};
	for (size_t i = 0; i < MB_ARRAY_LEN(ops); i++) {
		setenv("MOEBENCH_FAULT", ops[i], 1);
		dev = open_dev();
		unsetenv("MOEBENCH_FAULT");
		mb_check ck;
		mb_case_info info;
		run_case_dtype(dev, &shapes[0], MB_BF16, &ck, &info);
		if (ck.passed)
			fail_msg("a bf16 fault in %s passed the check", ops[i]);
		assert_true(ck.mismatched > 0);
		mb_dev_close(be, dev);
	}
}

static void test_preset(void **state)
{
	(void)state;
	const mb_suite *su = &mb_suite_gmm;
	const mb_model *m = mb_model_find("deepseek-v3");
	assert_non_null(m);
	const struct {
		mb_size size;
		int64_t hidden, ffn, experts, top_k, tokens, ep;
	} want[] = {
		{MB_SIZE_QUICK, 512, 256, 32, 2, 512, 4},
		{MB_SIZE_STANDARD, m->hidden, m->moe_ffn, 256, 8, 1024, 32},
		{MB_SIZE_FULL, m->hidden, m->moe_ffn, 256, 8, 4096, 64}, /* DeepSeek-V3's EP64 */
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(want); i++) {
		mb_params p;
		assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
		assert_int_equal(su->preset(m, want[i].size, &p), 0);
		assert_int_equal(mb_param_int(&p, "hidden"), want[i].hidden);
		assert_int_equal(mb_param_int(&p, "ffn"), want[i].ffn);
		assert_int_equal(mb_param_int(&p, "experts"), want[i].experts);
		assert_int_equal(mb_param_int(&p, "top_k"), want[i].top_k);
		assert_int_equal(mb_param_int(&p, "tokens"), want[i].tokens);
		assert_int_equal(mb_param_int(&p, "ep"), want[i].ep);
		char buf[16];
		assert_string_equal(mb_param_choice(&p, "score", buf, sizeof buf), m->score);
		assert_int_equal(p.set_by[mb_params_find(&p, "hidden")], MB_SRC_PRESET);
		assert_int_equal(mb_param_int(&p, "groups"), 0);
		assert_int_equal(su->validate(&p), 0);
	}
	/* Pangu Pro MoE (8 groups): as many groups as the slice allows */
	const mb_model *pangu = mb_model_find("pangu-pro-moe");
	assert_non_null(pangu);
	assert_int_equal(pangu->groups, 8);
	/* quick: top-2 of 32 experts; standard and full: the model's 8 groups,
	 * with 8 and 4 experts a device, so a device's experts are in one group */
	const int64_t groups[MB_SIZE_COUNT] = {2, 8, 8}, eps[MB_SIZE_COUNT] = {4, 8, 16};
	for (int size = 0; size < MB_SIZE_COUNT; size++) {
		mb_params p;
		assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
		assert_int_equal(su->preset(pangu, (mb_size)size, &p), 0);
		assert_int_equal(mb_param_int(&p, "groups"), groups[size]);
		assert_int_equal(mb_param_int(&p, "ep"), eps[size]);
		assert_int_equal(su->validate(&p), 0);
	}
	/* few experts: no expert parallelism below 16 at quick and standard */
	const mb_model *mix = mb_model_find("mixtral-8x7b");
	mb_params p;
	assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
	assert_int_equal(su->preset(mix, MB_SIZE_STANDARD, &p), 0);
	assert_int_equal(mb_param_int(&p, "ep"), 1);
	assert_int_equal(mb_param_int(&p, "tokens"), 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_shapes),
		cmocka_unit_test(test_suite_ep),
		cmocka_unit_test(test_skew_shares),
		cmocka_unit_test(test_suite_sampled),
		cmocka_unit_test(test_fault),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_suite_bf16),
		cmocka_unit_test(test_preset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
