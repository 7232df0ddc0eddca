/* test_result.c: result write, read-back with exact doubles, atomicity and
 * hostile input (harness/result.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/result.h"

static const mb_param_def defs[] = {{"n", MB_PT_INT, "8", 1, 100, NULL, ""}};
static const mb_suite fake = {.name = "fake", .summary = "", .params = defs, .nparams = 1};

static char dir[] = "/tmp/mb_test_result_XXXXXX";

static int setup(void **st)
{
	(void)st;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static const double tricky[] = {0.1 + 0.2, 1234567890123460.0, DBL_MAX, DBL_MIN, 5e-324,
				-0.0, 1.0 / 3.0, 2.5e-7, 9007199254740993.0, 123456.789e10};

static void fill_run(mb_run *run, mb_case_result *c, double *samples)
{
	memset(run, 0, sizeof *run);
	memset(c, 0, sizeof *c);
	strcpy(run->run_id, "test-run");
	strcpy(run->start_time, "2026-01-01T00:00:00Z");
	run->backend = "null";
	run->size = "quick";
	run->seed = 18446744073709551615ull;
	run->iters = (int)MB_ARRAY_LEN(tricky);
	run->world_size = 1;
	run->status = MB_RUN_COMPLETE;
	c->suite = &fake;
	assert_int_equal(mb_params_init(&c->params, defs, 1), 0);
	for (size_t i = 0; i < MB_ARRAY_LEN(tricky); i++)
		samples[i] = tricky[i];
	c->samples = samples;
	c->nsamples = (int)MB_ARRAY_LEN(tricky);
	c->has_cost = 1;
	c->cost.flops = 1e12;
	c->metrics.tflops = NAN;
	run->cases = c;
	run->ncases = 1;
}

static void test_exact_roundtrip(void **st)
{
	(void)st;
	mb_run run;
	mb_case_result c;
	double samples[MB_ARRAY_LEN(tricky)];
	fill_run(&run, &c, samples);
	char path[256];
	snprintf(path, sizeof path, "%s/r.json", dir);
	assert_int_equal(mb_result_write(&run, path), 0);

	cJSON *root;
	assert_int_equal(mb_result_load(path, &root), 0);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "results");
	const cJSON *c0 = cJSON_GetArrayItem(res, 0);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c0, "samples_s");
	assert_int_equal(cJSON_GetArraySize(arr), (int)MB_ARRAY_LEN(tricky));
	for (size_t i = 0; i < MB_ARRAY_LEN(tricky); i++) {
		double got = cJSON_GetArrayItem(arr, (int)i)->valuedouble;
		assert_memory_equal(&got, &tricky[i], sizeof got);
	}
	/* NaN metric is null, not a number; status and schema are there. */
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(c0, "metrics");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "tflops")));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "status")->valuestring,
			    "complete");
	cJSON_Delete(root);
	/* The 64-bit seed is exact in the text (a double would round it). */
	char text[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_non_null(strstr(text, "\"seed\":\t18446744073709551615"));
}

static void test_atomic_no_leftovers(void **st)
{
	(void)st;
	mb_run run;
	mb_case_result c;
	double samples[MB_ARRAY_LEN(tricky)];
	fill_run(&run, &c, samples);
	char path[256];
	snprintf(path, sizeof path, "%s/a.json", dir);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mb_result_write(&run, path), 0);
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		assert_null(strstr(e->d_name, ".tmp."));
	closedir(d);
	/* A device node is written in place, never replaced by a file. */
	assert_int_equal(mb_result_write(&run, "/dev/null"), 0);
	struct stat sb;
	assert_int_equal(stat("/dev/null", &sb), 0);
	assert_true(S_ISCHR(sb.st_mode));
	assert_int_equal(mb_result_write(&run, dir), MB_ERR_IO); /* a directory */
	/* An unwritable place fails with a message, not a crash. */
	assert_int_equal(mb_result_write(&run, "/proc/definitely/not/here.json"), MB_ERR_IO);
	assert_true(strlen(mb_errmsg()) > 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_hostile_input(void **st)
{
	(void)st;
	const char *bad[] = {
		"", "not json", "[1,2,3]", "{\"schema\": 5}", "{\"schema\": \"other/1\"}",
		"{\"schema\": \"moebench.result/1\", ", "{\"a\":[[[[[[[[[[[[[[[[",
	};
	char path[256];
	snprintf(path, sizeof path, "%s/bad.json", dir);
	for (size_t i = 0; i < MB_ARRAY_LEN(bad); i++) {
		write_text(path, bad[i]);
		cJSON *root = (cJSON *)1;
		assert_int_equal(mb_result_load(path, &root), MB_ERR_USAGE);
		assert_null(root);
	}
	/* Nesting deeper than cJSON's limit is refused, not a stack overflow. */
	FILE *f = fopen(path, "w");
	fputs("{\"schema\":\"moebench.result/1\",\"x\":", f);
	for (int i = 0; i < 100000; i++)
		fputc('[', f);
	fclose(f);
	cJSON *root;
	assert_int_equal(mb_result_load(path, &root), MB_ERR_USAGE);
	assert_int_equal(mb_result_load(dir, &root), MB_ERR_USAGE); /* a directory */
	snprintf(path, sizeof path, "%s/missing.json", dir);
	assert_int_equal(mb_result_load(path, &root), MB_ERR_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_roundtrip),
		cmocka_unit_test(test_atomic_no_leftovers),
		cmocka_unit_test(test_hostile_input),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
