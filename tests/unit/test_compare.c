/* test_compare.c: `moebench compare` (harness/compare.c, harness/cmd_compare.c):
 * the Mann-Whitney U test and the Hodges-Lehmann interval against values
 * computed independently (scipy's documented example; the others with an
 * exact integer enumeration of U and scipy's asymptotic formula, in
 * Python, written here as numbers), seeded simulations of real and
 * false changes, the join, hostile files, and the escaping of every
 * output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/compare.h"
#include "harness/mb.h"

#define CLOSE(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

/* ---- the statistics against independent numbers ----------------------- */

static void test_mwu_textbook(void **st)
{
	(void)st;
	/* scipy.stats.mannwhitneyu docs: males vs females, U1 = 17, exact
	 * two-sided p = 0.1111 (= 2 * 7/126). Our U counts y > x. */
	double males[] = {19, 22, 16, 29, 24}, females[] = {20, 11, 17, 12};
	mb_mwu t;
	assert_int_equal(mb_mwu_test(males, 5, females, 4, &t), 0);
	assert_true(t.exact);
	CLOSE(t.u, 3, 0);
	CLOSE(t.p, 0.1111111111111111, 1e-12);
	assert_int_equal(mb_mwu_test(females, 4, males, 5, &t), 0);
	CLOSE(t.u, 17, 0);
	CLOSE(t.p, 0.1111111111111111, 1e-12);
}

static void test_mwu_ties(void **st)
{
	(void)st;
	/* Ties (values 2, 3, 4, 5 and 7 repeat): the normal approximation
	 * with tie and continuity correction, U = 64.5, p = 0.006373133838085877 */
	double x[] = {1, 2, 2, 3, 3, 3, 4, 5}, y[] = {3, 4, 4, 5, 5, 6, 7, 7, 8};
	mb_mwu t;
	assert_int_equal(mb_mwu_test(x, 8, y, 9, &t), 0);
	assert_false(t.exact);
	CLOSE(t.u, 64.5, 0);
	CLOSE(t.p, 0.006373133838085877, 1e-12);
}

static void test_mwu_exact(void **st)
{
	(void)st;
	/* 50 vs 50 without ties: exact, U = 1720, p = 0.0010550164711136758
	 * (an exact integer count of U in Python) */
	double x[50], y[50];
	for (int i = 0; i < 50; i++) {
		x[i] = i;
		y[i] = i + 10.5;
	}
	mb_mwu t;
	assert_int_equal(mb_mwu_test(x, 50, y, 50, &t), 0);
	assert_true(t.exact);
	CLOSE(t.u, 1720, 0);
	CLOSE(t.p, 0.0010550164711136758, 1e-13);
	/* at the limit of the exact method, 100 vs 100 (U = 5995); an earlier
	 * product formula lost 5 digits here to cancellation */
	double a[100], b[100];
	for (int i = 0; i < 100; i++) {
		a[i] = i;
		b[i] = i + 10.5;
	}
	assert_int_equal(mb_mwu_test(a, 100, b, 100, &t), 0);
	assert_true(t.exact);
	CLOSE(t.u, 5995, 0);
	CLOSE(t.p, 0.014877600142183894, 1e-15);
}

static void test_mwu_normal_large(void **st)
{
	(void)st;
	/* 120 vs 100 (nx*ny > MB_MWU_EXACT_MAX): asymptotic, U = 6220,
	 * p = 0.6405602610469343 */
	double x[120], y[100];
	for (int i = 0; i < 120; i++)
		x[i] = i;
	for (int i = 0; i < 100; i++)
		y[i] = i * 1.1 + 7.25;
	mb_mwu t;
	assert_int_equal(mb_mwu_test(x, 120, y, 100, &t), 0);
	assert_false(t.exact);
	CLOSE(t.u, 6220, 0);
	CLOSE(t.p, 0.6405602610469343, 1e-12);
	mb_hl h;
	assert_int_equal(mb_hl_shift(x, 120, y, 100, 0.05, &h), 0);
	CLOSE(h.est, 2.2000000000000003, 1e-12);
	CLOSE(h.lo, -7.1499999999999915, 1e-12);
	CLOSE(h.hi, 11.549999999999997, 1e-12);
	assert_true(h.covers);
}

static void test_mwu_identical(void **st)
{
	(void)st;
	double x[] = {0.010, 0.011, 0.012, 0.010, 0.013, 0.011, 0.012, 0.010, 0.014, 0.011};
	mb_mwu t;
	assert_int_equal(mb_mwu_test(x, 10, x, 10, &t), 0);
	CLOSE(t.p, 1, 0);
	CLOSE(t.u, 50, 0);
	double one[] = {0.5};
	assert_int_equal(mb_mwu_test(one, 1, one, 1, &t), 0);
	CLOSE(t.p, 1, 0);
	double same[4] = {2, 2, 2, 2}; /* every value tied: no spread at all */
	assert_int_equal(mb_mwu_test(same, 4, same, 4, &t), 0);
	CLOSE(t.p, 1, 0);
	assert_int_equal(mb_mwu_test(x, 0, x, 10, &t), MB_ERR_USAGE);
}

static void test_hl_intervals(void **st)
{
	(void)st;
	/* All 20 differences y - x: median -7; the exact 95% interval is
	 * D(2)..D(19) = [-17, 1] with coverage 1 - 2*2/126 = 0.96825...,
	 * the 80% one D(5)..D(16) = [-12, -2]. */
	double males[] = {19, 22, 16, 29, 24}, females[] = {20, 11, 17, 12};
	mb_hl h;
	assert_int_equal(mb_hl_shift(males, 5, females, 4, 0.05, &h), 0);
	CLOSE(h.est, -7, 0);
	CLOSE(h.lo, -17, 0);
	CLOSE(h.hi, 1, 0);
	CLOSE(h.level, 0.9682539682539683, 1e-12);
	assert_true(h.covers);
	assert_int_equal(mb_hl_shift(males, 5, females, 4, 0.2, &h), 0);
	CLOSE(h.lo, -12, 0);
	CLOSE(h.hi, -2, 0);
	/* 10 vs 10, shift 3.5: D(24)..D(77) = [0.5, 6.5], coverage 0.95674... */
	double x[10], y[10];
	for (int i = 0; i < 10; i++) {
		x[i] = i;
		y[i] = i + 3.5;
	}
	assert_int_equal(mb_hl_shift(x, 10, y, 10, 0.05, &h), 0);
	CLOSE(h.est, 3.5, 0);
	CLOSE(h.lo, 0.5, 0);
	CLOSE(h.hi, 6.5, 0);
	CLOSE(h.level, 0.9567429474550218, 1e-12);
	/* With ties the interval uses the normal approximation: [1, 4]. */
	double tx[] = {1, 2, 2, 3, 3, 3, 4, 5}, ty[] = {3, 4, 4, 5, 5, 6, 7, 7, 8};
	assert_int_equal(mb_hl_shift(tx, 8, ty, 9, 0.05, &h), 0);
	CLOSE(h.est, 2.5, 0);
	CLOSE(h.lo, 1, 0);
	CLOSE(h.hi, 4, 0);
	/* 2 vs 2 cannot reach 95%: the full range, flagged. */
	double a[] = {1, 2}, b[] = {3, 4};
	assert_int_equal(mb_hl_shift(a, 2, b, 2, 0.05, &h), 0);
	assert_false(h.covers);
	CLOSE(h.lo, 1, 0);
	CLOSE(h.hi, 3, 0);
	CLOSE(h.level, 0.6666666666666667, 1e-12);
}

/* ---- seeded result files ---------------------------------------------- */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_normal(uint64_t *s) /* Box-Muller */
{
	double u1 = ((rng_next(s) >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (rng_next(s) >> 11) / 9007199254740992.0;
	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* n samples around median 1 ms times scale, log-normal noise of sigma. */
static void draw(double *x, int n, double scale, double sigma, uint64_t *s)
{
	for (int i = 0; i < n; i++)
		x[i] = 1e-3 * scale * exp(sigma * rng_normal(s));
}

/* A minimal result file: one case per entry of suites[]. */
static cJSON *make_case(const char *suite, const char *status, const double *x, int n,
			double flops)
{
	cJSON *c = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(c, "params");
	cJSON_AddStringToObject(c, "suite", suite);
	cJSON_AddStringToObject(c, "status", status);
	cJSON_AddStringToObject(c, "reason", strcmp(status, "ok") ? "check failed" : "");
	cJSON_AddNumberToObject(p, "m", 512);
	cJSON_AddStringToObject(p, "dtype", "fp32");
	cJSON *arr = cJSON_AddArrayToObject(c, "samples_s");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber(x[i]));
	if (flops > 0) {
		double *s = malloc((size_t)n * sizeof *s), med;
		memcpy(s, x, (size_t)n * sizeof *s);
		for (int i = 1; i < n; i++) /* insertion sort: n is small */
			for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
				double t = s[j];
				s[j] = s[j - 1];
				s[j - 1] = t;
			}
		med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
		free(s);
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(c, "metrics"), "tflops",
					flops / med / 1e12);
	}
	return c;
}

static cJSON *make_run(const char *run_id)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "schema", MB_SCHEMA);
	cJSON_AddStringToObject(r, "run_id", run_id);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "name", "test device");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "devices"), d);
	cJSON_AddArrayToObject(r, "results");
	return r;
}

static void add(cJSON *run, cJSON *c)
{
	cJSON_AddItemToArray(cJSON_GetObjectItem(run, "results"), c);
}

static const mb_cmp_opts defaults = {.alpha = 0.05, .max_regress_pct = 5};

/* Compare one seeded pair of 10-sample runs, NEW scaled by ratio. */
static int one_trial(uint64_t seed, double ratio, double sigma, mb_cmp_report *r)
{
	double x[10], y[10];
	uint64_t s = seed;
	draw(x, 10, 1, sigma, &s);
	draw(y, 10, ratio, sigma, &s);
	cJSON *b = make_run("b"), *n = make_run("n");
	add(b, make_case("gemm", "ok", x, 10, 1e9));
	add(n, make_case("gemm", "ok", y, 10, 1e9));
	int rc = mb_cmp_build(b, "b.json", n, "n.json", &defaults, r);
	cJSON_Delete(b);
	cJSON_Delete(n);
	return rc;
}

static void test_shift_10pct_detected(void **st)
{
	(void)st;
	/* A real 10% slowdown under 3% noise is caught in every one of 100
	 * seeded trials, with the change estimated near +10%. */
	for (uint64_t seed = 1; seed <= 100; seed++) {
		mb_cmp_report r;
		assert_int_equal(one_trial(seed, 1.10, 0.03, &r), 0);
		assert_int_equal(r.ncompared, 1);
		assert_int_equal(r.nregressions, 1);
		assert_int_equal(mb_cmp_exit_code(&r), MB_EXIT_FAIL);
		const mb_cmp_metric *t = &r.cases[0].metrics[0];
		assert_string_equal(t->name, "time_p50_s");
		assert_int_equal(t->verdict, MB_VERDICT_REGRESSION);
		assert_true(t->change > 0.05 && t->change < 0.15);
		/* tflops falls by 1 - 1/1.1 = 9.1%: also a regression */
		assert_int_equal(r.cases[0].nmetrics, 2);
		assert_string_equal(r.cases[0].metrics[1].name, "tflops");
		CLOSE(r.cases[0].metrics[1].change, 1 / (1 + t->change) - 1, 1e-9);
		assert_int_equal(r.cases[0].metrics[1].verdict, MB_VERDICT_REGRESSION);
		mb_cmp_free(&r);
	}
}

static void test_shift_2pct_not_flagged(void **st)
{
	(void)st;
	/* 2% is below the 5% threshold: never a regression, though often
	 * significant ("worse"); and no change is never one either. */
	int worse = 0;
	for (uint64_t seed = 1; seed <= 100; seed++) {
		mb_cmp_report r;
		assert_int_equal(one_trial(seed, 1.02, 0.01, &r), 0);
		assert_int_equal(r.nregressions, 0);
		assert_int_equal(mb_cmp_exit_code(&r), MB_EXIT_OK);
		worse += r.cases[0].metrics[0].verdict == MB_VERDICT_WORSE;
		mb_cmp_free(&r);
		assert_int_equal(one_trial(seed + 1000, 1.0, 0.03, &r), 0);
		assert_int_equal(r.nregressions, 0);
		mb_cmp_free(&r);
	}
	assert_true(worse > 50); /* the test does see the 2% */
}

static void test_ci_coverage(void **st)
{
	(void)st;
	/* The 95% interval of the change covers the true +10% in about 95% of
	 * 400 seeded trials (exact level for 10 vs 10: 95.67%). */
	int covered = 0, trials = 400;
	for (int i = 0; i < trials; i++) {
		mb_cmp_report r;
		assert_int_equal(one_trial(5000 + (uint64_t)i, 1.10, 0.05, &r), 0);
		const mb_cmp_metric *t = &r.cases[0].metrics[0];
		covered += t->lo <= 0.10 + 1e-12 && 0.10 - 1e-12 <= t->hi;
		assert_true(t->lo <= t->change && t->change <= t->hi);
		mb_cmp_free(&r);
	}
	print_message("interval coverage: %d of %d\n", covered, trials);
	assert_true(covered >= 0.93 * trials && covered <= 0.99 * trials);
}

static void test_identical_runs(void **st)
{
	(void)st;
	double x[10];
	uint64_t s = 7;
	draw(x, 10, 1, 0.05, &s);
	cJSON *b = make_run("b");
	add(b, make_case("gemm", "ok", x, 10, 1e9));
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "a", b, "a", &defaults, &r), 0);
	CLOSE(r.cases[0].p, 1, 0);
	CLOSE(r.cases[0].metrics[0].change, 0, 0);
	assert_int_equal(r.cases[0].metrics[0].verdict, MB_VERDICT_SAME);
	assert_int_equal(mb_cmp_exit_code(&r), MB_EXIT_OK);
	mb_cmp_free(&r);
	cJSON_Delete(b);
}

/* ---- the join, statuses and hostile files ------------------------------- */

static void test_statuses_and_sides(void **st)
{
	(void)st;
	double x[] = {1, 1.1, 1.2}, y[] = {1, 1.1, 1.2};
	cJSON *b = make_run("b"), *n = make_run("n");
	add(b, make_case("gemm", "ok", x, 3, 0));      /* -> invalid: failure */
	add(n, make_case("gemm", "invalid", y, 3, 0));
	add(b, make_case("gmm", "invalid", x, 3, 0));  /* both invalid: listed */
	add(n, make_case("gmm", "invalid", y, 3, 0));
	add(b, make_case("attention", "ok", x, 3, 0)); /* only in BASE */
	add(n, make_case("alltoall", "ok", y, 3, 0));  /* only in NEW */
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "b", n, "n", &defaults, &r), 0);
	assert_int_equal(r.ncases, 4);
	assert_int_equal(r.cases[0].kind, MB_CASE_FAILED);
	assert_non_null(strstr(r.cases[0].note, "check failed"));
	assert_int_equal(r.cases[1].kind, MB_CASE_NOT_OK);
	assert_int_equal(r.cases[2].kind, MB_CASE_BASE_ONLY);
	assert_int_equal(r.cases[3].kind, MB_CASE_NEW_ONLY);
	assert_int_equal(r.nfailed, 1);
	assert_int_equal(mb_cmp_exit_code(&r), MB_EXIT_FAIL);
	mb_cmp_free(&r);
	mb_cmp_opts o = defaults;
	o.include_invalid = 1;
	assert_int_equal(mb_cmp_build(b, "b", n, "n", &o, &r), 0);
	assert_int_equal(r.cases[1].kind, MB_CASE_COMPARED);
	assert_non_null(strstr(r.cases[1].note, "too few")); /* 3 vs 3: p >= 2/20 */
	mb_cmp_free(&r);
	cJSON_Delete(b);
	cJSON_Delete(n);
}

static void test_join_keys(void **st)
{
	(void)st;
	double x[] = {1, 2, 3};
	cJSON *b = make_run("b"), *n = make_run("n");
	add(b, make_case("gemm", "ok", x, 3, 0));
	/* the same parameters in another order: the same case */
	cJSON *c = make_case("gemm", "ok", x, 3, 0), *p = cJSON_GetObjectItem(c, "params");
	cJSON_DeleteItemFromObject(p, "m");
	cJSON_AddNumberToObject(p, "m", 512);
	add(n, c);
	/* "512" is not 512 */
	c = make_case("gemm", "ok", x, 3, 0);
	p = cJSON_GetObjectItem(c, "params");
	cJSON_ReplaceItemInObject(p, "m", cJSON_CreateString("512"));
	add(n, c);
	add(n, make_case("gemm", "ok", x, 3, 0)); /* a repeat: noted, ignored */
	add(n, cJSON_CreateNumber(7));            /* not a case */
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "b", n, "n", &defaults, &r), 0);
	assert_int_equal(r.ncases, 2);
	assert_int_equal(r.cases[0].kind, MB_CASE_COMPARED);
	assert_int_equal(r.cases[1].kind, MB_CASE_NEW_ONLY);
	assert_non_null(strstr(r.notes, "repeated"));
	assert_non_null(strstr(r.notes, "not cases"));
	mb_cmp_free(&r);
	cJSON_Delete(b);
	cJSON_Delete(n);
}

/* NEW's samples_s replaced by v; returns the case's kind and note. */
static mb_cmp_kind hostile_samples(cJSON *v, char *note, size_t nn)
{
	double x[] = {1, 2, 3};
	cJSON *b = make_run("b"), *n = make_run("n");
	add(b, make_case("gemm", "ok", x, 3, 0));
	cJSON *c = make_case("gemm", "ok", x, 3, 0);
	cJSON_ReplaceItemInObject(c, "samples_s", v);
	add(n, c);
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "b", n, "n", &defaults, &r), 0);
	mb_cmp_kind k = r.cases[0].kind;
	mb_strlcpy(note, r.cases[0].note, nn);
	assert_int_equal(mb_cmp_exit_code(&r), MB_EXIT_OK);
	mb_cmp_free(&r);
	cJSON_Delete(b);
	cJSON_Delete(n);
	return k;
}

static void test_hostile_samples(void **st)
{
	(void)st;
	char note[512];
	double neg[] = {1, -2, 3}, zero[] = {1, 0, 3}, good[] = {1, 2, 3};
	cJSON *with_null = cJSON_CreateDoubleArray(good, 3);
	cJSON_ReplaceItemInArray(with_null, 1, cJSON_CreateNull());
	cJSON *nan = cJSON_CreateDoubleArray(good, 3);
	cJSON_ReplaceItemInArray(nan, 1, cJSON_CreateNumber(NAN));
	cJSON *str = cJSON_CreateDoubleArray(good, 3);
	cJSON_ReplaceItemInArray(str, 2, cJSON_CreateString("1"));
	struct { cJSON *v; const char *want; } cases[] = {
		{cJSON_CreateArray(), "empty"},
		{cJSON_CreateString("fast"), "no samples_s"},
		{with_null, "samples_s[1]"},
		{nan, "samples_s[1]"},
		{cJSON_CreateDoubleArray(neg, 3), "samples_s[1]"},
		{cJSON_CreateDoubleArray(zero, 3), "samples_s[1]"},
		{str, "samples_s[2]"},
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(cases); i++) {
		assert_int_equal(hostile_samples(cases[i].v, note, sizeof note), MB_CASE_BAD_SAMPLES);
		if (!strstr(note, cases[i].want))
			fail_msg("case %zu: note '%s'", i, note);
		assert_non_null(strstr(note, "NEW"));
	}
	/* a length that disagrees with stats_s.n */
	double x[] = {1, 2, 3};
	cJSON *b = make_run("b");
	cJSON *c = make_case("gemm", "ok", x, 3, 0);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(c, "stats_s"), "n", 10);
	add(b, c);
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "b", b, "b", &defaults, &r), 0);
	assert_int_equal(r.cases[0].kind, MB_CASE_BAD_SAMPLES);
	assert_non_null(strstr(r.cases[0].note, "stats_s.n is 10"));
	mb_cmp_free(&r);
	/* results[] that is not an array: bad input naming the file */
	cJSON_ReplaceItemInObject(b, "results", cJSON_CreateString("x"));
	assert_int_equal(mb_cmp_build(b, "base.json", b, "b", &defaults, &r), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "base.json"));
	cJSON_Delete(b);
}

static void test_mismatched_lengths(void **st)
{
	(void)st;
	/* 7 against 30 samples is a fine comparison */
	double x[7], y[30];
	uint64_t s = 3;
	draw(x, 7, 1, 0.02, &s);
	draw(y, 30, 1.2, 0.02, &s);
	cJSON *b = make_run("b"), *n = make_run("n");
	add(b, make_case("gemm", "ok", x, 7, 0));
	add(n, make_case("gemm", "ok", y, 30, 0));
	mb_cmp_report r;
	assert_int_equal(mb_cmp_build(b, "b", n, "n", &defaults, &r), 0);
	assert_int_equal(r.cases[0].nbase, 7);
	assert_int_equal(r.cases[0].nnew, 30);
	assert_int_equal(r.nregressions, 1);
	mb_cmp_free(&r);
	cJSON_Delete(b);
	cJSON_Delete(n);
}

/* ---- escaping ------------------------------------------------------------ */

static const char hostile[] = "a<b>&c\"d'e\nf|g`h*_[x](y)#~@all \x01\x7f\xff\xe2\x80\xaez";

static void test_xml_escape(void **st)
{
	(void)st;
	char out[512];
	mb_xml_escape(out, sizeof out, hostile);
	assert_string_equal(out, "a&lt;b&gt;&amp;c&quot;d&apos;e&#10;f|g`h*_[x](y)#~@all ????z");
	mb_xml_escape(out, sizeof out, NULL);
	assert_string_equal(out, "");
	mb_xml_escape(out, sizeof out, "caf\xc3\xa9 \xc0\xaf"); /* UTF-8 kept, overlong not */
	assert_string_equal(out, "caf\xc3\xa9 ??");
	mb_xml_escape(out, 8, "&&&&&&&&"); /* a small buffer never cuts an entity */
	assert_string_equal(out, "...");
}

static void test_md_escape(void **st)
{
	(void)st;
	char out[512];
	mb_md_escape(out, sizeof out, hostile);
	assert_string_equal(out, "a&lt;b&gt;&amp;c\"d'e f\\|g\\`h\\*\\_\\[x\\](y)\\#\\~&#64;all ????z");
}

static void test_long_names(void **st)
{
	(void)st;
	size_t n = 100000;
	char *big = malloc(n + 1), *out = malloc(8 * MB_CMP_LABEL_MAX);
	memset(big, '<', n);
	big[n] = '\0';
	mb_xml_escape(out, 8 * MB_CMP_LABEL_MAX, big);
	assert_true(strlen(out) <= 4 * MB_CMP_LABEL_MAX + 3);
	assert_string_equal(out + strlen(out) - 7, "&lt;...");
	mb_md_escape(out, 8 * MB_CMP_LABEL_MAX, big);
	assert_string_equal(out + strlen(out) - 7, "&lt;...");
	free(big);
	free(out);
}

/* A report whose every string is hostile, written both ways. */
static void hostile_report(mb_cmp_report *r, int regress)
{
	double x[10], y[10];
	uint64_t s = 11;
	draw(x, 10, 1, 0.01, &s);
	draw(y, 10, regress ? 1.3 : 1, 0.01, &s);
	cJSON *b = make_run(hostile), *n = make_run("n\n|<x>");
	const char *suites[] = {hostile, "</testcase><x>", "| a | b |\n| c |"};
	for (int i = 0; i < 3; i++) {
		cJSON *c = make_case(suites[i], "ok", x, 10, 1e9);
		cJSON_AddStringToObject(cJSON_GetObjectItem(c, "params"), "k\"<&|", hostile);
		add(b, c);
		c = make_case(suites[i], i == 2 ? "invalid" : "ok", y, 10, 1e9);
		cJSON_ReplaceItemInObject(c, "reason", cJSON_CreateString(hostile));
		cJSON_AddStringToObject(cJSON_GetObjectItem(c, "params"), "k\"<&|", hostile);
		add(n, c);
	}
	assert_int_equal(mb_cmp_build(b, "b<&>.json", n, "n|.json", &defaults, r), 0);
	cJSON_Delete(b);
	cJSON_Delete(n);
}

static char *render(void (*fn)(FILE *, const mb_cmp_report *), const mb_cmp_report *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fn(f, r);
	fclose(f);
	return text;
}

/* Every '<' opens one of our tags and every '&' starts an entity. */
static void assert_xml_clean(const char *x)
{
	static const char *const tags[] = {"<?xml", "<testsuites", "</testsuites", "<testsuite ",
		"</testsuite>", "<properties", "</properties", "<property ", "<testcase ",
		"</testcase", "<failure ", "</failure", "<skipped ", "<system-out", "</system-out"};
	static const char *const ents[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;", "&#10;",
					   "&#9;", "&#13;"};
	for (const char *p = x; (p = strchr(p, '<')); p++) {
		int ok = 0;
		for (size_t i = 0; i < MB_ARRAY_LEN(tags); i++)
			ok |= !strncmp(p, tags[i], strlen(tags[i]));
		if (!ok)
			fail_msg("stray '<' at: %.40s", p);
	}
	for (const char *p = x; (p = strchr(p, '&')); p++) {
		int ok = 0;
		for (size_t i = 0; i < MB_ARRAY_LEN(ents); i++)
			ok |= !strncmp(p, ents[i], strlen(ents[i]));
		if (!ok)
			fail_msg("stray '&' at: %.40s", p);
	}
	for (const unsigned char *p = (const unsigned char *)x; *p; p++)
		assert_true(*p >= 0x20 || *p == '\n');
}

static void test_junit_hostile(void **st)
{
	(void)st;
	mb_cmp_report r;
	hostile_report(&r, 1);
	char *x = render(mb_cmp_write_junit, &r);
	assert_xml_clean(x);
	assert_non_null(strstr(x, "failures=\"3\"")); /* 2 regressions + 1 failed */
	assert_non_null(strstr(x, "<failure type=\"regression\""));
	assert_non_null(strstr(x, "<failure type=\"failed\""));
	assert_non_null(strstr(x, "&lt;/testcase&gt;&lt;x&gt;"));
	free(x);
	mb_cmp_free(&r);
}

static void test_markdown_hostile(void **st)
{
	(void)st;
	mb_cmp_report r;
	hostile_report(&r, 0);
	char *m = render(mb_cmp_write_markdown, &r);
	/* every table row has exactly 10 unescaped pipes (9 columns) */
	int rows = 0;
	for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] != '|')
			continue;
		int pipes = 0;
		for (char *p = line; *p; p++)
			pipes += *p == '|' && (p == line || p[-1] != '\\');
		assert_int_equal(pipes, 10);
		assert_null(strstr(line, "<x>"));
		assert_null(strstr(line, "@all"));
		rows++;
	}
	assert_int_equal(rows, 2 + 2 * 2 + 1); /* header, rule, 2 metrics x 2, 1 failed */
	free(m);
	char *t = render(mb_cmp_print_table, &r); /* the terminal gets no controls */
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		assert_true(*p >= 0x20 || *p == '\n');
	free(t);
	mb_cmp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mwu_textbook),
		cmocka_unit_test(test_mwu_ties),
		cmocka_unit_test(test_mwu_exact),
		cmocka_unit_test(test_mwu_normal_large),
		cmocka_unit_test(test_mwu_identical),
		cmocka_unit_test(test_hl_intervals),
		cmocka_unit_test(test_shift_10pct_detected),
		cmocka_unit_test(test_shift_2pct_not_flagged),
		cmocka_unit_test(test_ci_coverage),
		cmocka_unit_test(test_identical_runs),
		cmocka_unit_test(test_statuses_and_sides),
		cmocka_unit_test(test_join_keys),
		cmocka_unit_test(test_hostile_samples),
		cmocka_unit_test(test_mismatched_lengths),
		cmocka_unit_test(test_xml_escape),
		cmocka_unit_test(test_md_escape),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_junit_hostile),
		cmocka_unit_test(test_markdown_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
