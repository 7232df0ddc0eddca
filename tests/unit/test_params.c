/* test_params.c: K/M/G suffixes, sweeps, ranges and junk (harness/params.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "harness/params.h"

static const mb_param_def defs[] = {
	{"tokens", MB_PT_INT, "512", 1, 16777216, NULL, "tokens"},
	{"skew", MB_PT_REAL, "0", 0, 4, NULL, "zipf"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "type"},
};

static void test_suffixes(void **st)
{
	(void)st;
	double v;
	assert_int_equal(mb_parse_number("4K", 1, &v), 0);
	assert_true(v == 4096);
	assert_int_equal(mb_parse_number("2m", 1, &v), 0);
	assert_true(v == 2097152);
	assert_int_equal(mb_parse_number("1G", 1, &v), 0);
	assert_true(v == 1073741824.0);
	assert_int_equal(mb_parse_number("1.5K", 0, &v), 0);
	assert_true(v == 1500);
	assert_int_equal(mb_parse_number("0.5K", 1, &v), 0); /* 512 is an integer */
	assert_true(v == 512);
}

static void test_junk(void **st)
{
	(void)st;
	double v;
	const char *bad[] = {"", "abc", "4KB", "4X", "1.5", "0x10", "inf", "nan", " 4", "1e400",
			     "4K4", "--1", "1e20G"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(mb_parse_number(bad[i], 1, &v), MB_ERR_USAGE);
}

static void test_range_message(void **st)
{
	(void)st;
	double v;
	assert_int_equal(mb_param_parse_value(&defs[0], "0", &v), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "tokens"));
	assert_non_null(strstr(mb_errmsg(), "1..16777216"));
	assert_int_equal(mb_param_parse_value(&defs[0], "32M", &v), MB_ERR_USAGE);
	assert_int_equal(mb_param_parse_value(&defs[1], "4.5", &v), MB_ERR_USAGE);
	assert_int_equal(mb_param_parse_value(&defs[1], "-0.1", &v), MB_ERR_USAGE);
	assert_int_equal(mb_param_parse_value(&defs[2], "fp64", &v), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "fp32|bf16"));
	assert_int_equal(mb_param_parse_value(&defs[2], "bf16", &v), 0);
	assert_true(v == 1);
	assert_int_equal(mb_param_parse_value(&defs[2], "bf1", &v), MB_ERR_USAGE);
}

static void test_sweeps(void **st)
{
	(void)st;
	double v[MB_MAX_SWEEP];
	int n;
	assert_int_equal(mb_param_parse_sweep(&defs[0], "1K..16K*2", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 5);
	assert_true(v[0] == 1024 && v[4] == 16384);
	assert_int_equal(mb_param_parse_sweep(&defs[0], "256..1024+256", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 4);
	assert_true(v[3] == 1024);
	assert_int_equal(mb_param_parse_sweep(&defs[0], "1,2,8", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(mb_param_parse_sweep(&defs[1], "0..1+0.25", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(mb_param_parse_sweep(&defs[2], "fp32,bf16", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mb_param_parse_sweep(&defs[0], "7", v, MB_MAX_SWEEP, &n), 0);
	assert_int_equal(n, 1);
}

static void test_bad_sweeps(void **st)
{
	(void)st;
	double v[MB_MAX_SWEEP];
	int n;
	const char *bad[] = {"16K..1K*2", "1..8*1", "1..8+0", "1..8", "..8*2", "1..*2", "1..8*",
			     "1,,2", ",1", "1,", "1..1G+1", "1..32M*2", "0..8*2"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(mb_param_parse_sweep(&defs[0], bad[i], v, MB_MAX_SWEEP, &n),
				 MB_ERR_USAGE);
}

static void test_params_table(void **st)
{
	(void)st;
	mb_params p;
	assert_int_equal(mb_params_init(&p, defs, 3), 0);
	assert_int_equal(mb_param_int(&p, "tokens"), 512);
	assert_int_equal(mb_params_set(&p, "tokens", 4096, MB_SRC_USER), 0);
	assert_int_equal(mb_param_int(&p, "tokens"), 4096);
	assert_int_equal(p.set_by[0], MB_SRC_USER);
	assert_int_equal(mb_params_set(&p, "tokens", 0, MB_SRC_USER), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "tokens", 1.5, MB_SRC_USER), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "dtype", 2, MB_SRC_USER), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "nope", 1, MB_SRC_USER), MB_ERR_USAGE);
	char buf[32];
	assert_int_equal(mb_params_set(&p, "dtype", 1, MB_SRC_PRESET), 0);
	assert_string_equal(mb_param_choice(&p, "dtype", buf, sizeof buf), "bf16");
	mb_param_format(&p, 1, buf, sizeof buf);
	assert_string_equal(buf, "0");
	/* A table whose default does not parse is a bug, reported as such. */
	static const mb_param_def broken[] = {{"x", MB_PT_INT, "big", 0, 1, NULL, ""}};
	assert_int_equal(mb_params_init(&p, broken, 1), MB_ERR_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suffixes),   cmocka_unit_test(test_junk),
		cmocka_unit_test(test_range_message), cmocka_unit_test(test_sweeps),
		cmocka_unit_test(test_bad_sweeps), cmocka_unit_test(test_params_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
