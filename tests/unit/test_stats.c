/* test_stats.c: statistics against hand-computed values (harness/stats.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "harness/stats.h"

static void test_hand_computed(void **st)
{
	(void)st;
	/* Unsorted on purpose. mean 3, sample variance 2.5, stdev 1.5811... */
	double x[] = {5, 1, 4, 2, 3}, s[5];
	mb_stats r;
	mb_stats_compute(x, 5, s, &r);
	assert_int_equal(r.n, 5);
	assert_true(r.min == 1 && r.max == 5 && r.mean == 3 && r.p50 == 3);
	assert_true(fabs(r.stdev - sqrt(2.5)) < 1e-15);
	assert_true(fabs(r.cv_pct - 100 * sqrt(2.5) / 3) < 1e-12);
	/* type 7: h = 4 * 0.95 = 3.8 -> 4 + 0.8 * (5 - 4) */
	assert_true(fabs(r.p95 - 4.8) < 1e-12);
	assert_true(fabs(r.p99 - 4.96) < 1e-12);
	assert_true(x[0] == 5); /* input left as it was */
	assert_false(r.ci_exact); /* n = 5 is too small for 95% */
	assert_true(r.ci95_lo == 1 && r.ci95_hi == 5);
}

static void test_one_sample(void **st)
{
	(void)st;
	double x[] = {0.25}, s[1];
	mb_stats r;
	mb_stats_compute(x, 1, s, &r);
	assert_true(r.min == 0.25 && r.max == 0.25 && r.p50 == 0.25 && r.p99 == 0.25);
	assert_true(r.stdev == 0 && r.cv_pct == 0);
	assert_true(r.ci95_lo == 0.25 && r.ci95_hi == 0.25);
}

static void test_all_equal(void **st)
{
	(void)st;
	double x[100], s[100];
	for (int i = 0; i < 100; i++)
		x[i] = 0.25;
	mb_stats r;
	mb_stats_compute(x, 100, s, &r);
	assert_true(r.stdev == 0 && r.cv_pct == 0 && r.p50 == 0.25 && r.p95 == 0.25);
	assert_true(r.mean == 0.25);
}

static void test_median_ci(void **st)
{
	(void)st;
	/* n = 100: ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61 */
	double x[100], s[100];
	for (int i = 0; i < 100; i++)
		x[i] = 100 - i; /* values 1..100, reversed */
	mb_stats r;
	mb_stats_compute(x, 100, s, &r);
	assert_true(r.ci_exact);
	assert_true(r.ci95_lo == 40 && r.ci95_hi == 61);
	assert_true(r.p50 == 50.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hand_computed), cmocka_unit_test(test_one_sample),
		cmocka_unit_test(test_all_equal), cmocka_unit_test(test_median_ci),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
