/* test_gbench.c: the Google Benchmark shim (harness/gbench) and the
 * calibration files of `moebench micro` (harness/calibration.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/gbench/gbench.h"
#include "harness/micro.h"

/* ---- the shim ---- */

typedef struct fake {
	int calls, setups, checks;
	double t;          /* seconds each iteration reports */
	double step;       /* added to t after every iteration */
	int fail_at;       /* this call fails (0: none) */
	int wrong;         /* the check fails */
} fake;

static int fake_iter(void *arg, double *s, char *err, size_t n)
{
	fake *f = arg;
	f->calls++;
	*s = f->t;
	f->t += f->step;
	if (f->fail_at && f->calls == f->fail_at) {
		snprintf(err, n, "boom");
		return -1;
	}
	return 0;
}

static int fake_setup(void *arg, char *err, size_t n)
{
	(void)err, (void)n;
	((fake *)arg)->setups++;
	return 0;
}

static int fake_check(void *arg, char *err, size_t n)
{
	fake *f = arg;
	f->checks++;
	if (f->wrong) {
		snprintf(err, n, "wrong answer");
		return 1;
	}
	return 0;
}

static void reg(const char *name, fake *f, int64_t iters)
{
	mb_gb_def d = {.name = name, .iter = fake_iter, .setup = fake_setup, .check = fake_check,
		       .arg = f, .items = 10, .bytes = 1000, .flops = 1e6, .manual_time = 1,
		       .iterations = iters};
	char err[256];
	assert_int_equal(mb_gb_register(&d, err, sizeof err), 0);
}

/* Apply flags (a NULL-terminated list) and run without display. */
static int run(const char *const *flags, mb_gb_results *res, char *err, size_t n)
{
	int nf = 0;
	while (flags && flags[nf])
		nf++;
	assert_int_equal(mb_gb_init("test_gbench", nf, (char *const *)flags, err, n), 0);
	int rc = mb_gb_run_all(0, res, err, n);
	mb_gb_clear();
	return rc;
}

static const mb_gb_run *find_run(const mb_gb_results *r, const char *aggregate)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->runs[i].aggregate, aggregate))
			return &r->runs[i];
	return NULL;
}

/* Fixed iterations with manual time: exactly that many calls, the time
 * given, and rates = count per iteration / that time. */
static void test_fixed_manual(void **st)
{
	(void)st;
	fake f = {.t = 0.002};
	reg("t/fixed", &f, 7);
	mb_gb_results r;
	char err[256];
	assert_int_equal(run(NULL, &r, err, sizeof err), 0);
	assert_int_equal(f.calls, 7);
	assert_int_equal(f.setups, 1);
	assert_int_equal(f.checks, 1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.matched, 1);
	const mb_gb_run *x = &r.runs[0];
	assert_string_equal(x->name, "t/fixed");
	assert_non_null(strstr(x->run_name, "t/fixed/iterations:7/manual_time"));
	assert_int_equal(x->iterations, 7);
	assert_int_equal(x->error, 0);
	assert_string_equal(x->aggregate, "");
	assert_int_equal(x->repetition, 0);
	assert_true(fabs(x->real_time_s - 0.002) < 1e-12);
	assert_true(fabs(x->items_per_s / 5000 - 1) < 1e-9);
	assert_true(fabs(x->bytes_per_s / 5e5 - 1) < 1e-9);
	assert_true(fabs(x->flops_per_s / 5e8 - 1) < 1e-9);
	mb_gb_results_free(&r);
	assert_null(r.runs);
}

/* Repetitions: each repetition, then mean, median, stddev and cv; the
 * median aggregate's time and rates are per iteration. */
static void test_repetitions(void **st)
{
	(void)st;
	/* 2 iterations per repetition: repetition r reports 1, 2, 3 ms */
	fake f = {.t = 0.001, .step = 0};
	mb_gb_def d = {.name = "t/rep", .iter = fake_iter, .arg = &f, .flops = 1e6,
		       .manual_time = 1, .iterations = 2};
	char err[256];
	assert_int_equal(mb_gb_register(&d, err, sizeof err), 0);
	/* the step applies per call: make repetitions 1, 3, 5 ms on average */
	f.t = 0.0005;
	f.step = 0.001;
	static const char *const flags[] = {"--benchmark_repetitions=3", NULL};
	mb_gb_results r;
	assert_int_equal(run(flags, &r, err, sizeof err), 0);
	assert_int_equal(f.calls, 6);
	assert_int_equal(r.n, 7);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r.runs[i].repetition, i);
		assert_int_equal(r.runs[i].repetitions, 3);
		assert_true(fabs(r.runs[i].real_time_s - (0.001 + 0.002 * i)) < 1e-12);
	}
	const mb_gb_run *med = find_run(&r, "median"), *cv = find_run(&r, "cv");
	assert_non_null(med);
	assert_non_null(cv);
	assert_non_null(find_run(&r, "mean"));
	assert_non_null(find_run(&r, "stddev"));
	assert_int_equal(med->repetition, -1);
	assert_true(fabs(med->real_time_s - 0.003) < 1e-12);
	assert_true(fabs(med->flops_per_s / (1e6 / 0.003) - 1) < 1e-9);
	assert_int_equal(med->ratio, 0);
	assert_int_equal(cv->ratio, 1);
	mb_gb_results_free(&r);
}

/* Without fixed iterations Google Benchmark picks the count from the
 * reported times; the callback still ran every iteration it reported. */
static void test_adaptive(void **st)
{
	(void)st;
	fake f = {.t = 0.001};
	reg("t/adaptive", &f, 0);
	static const char *const flags[] = {"--benchmark_min_time=0.05", NULL};
	mb_gb_results r;
	char err[256];
	assert_int_equal(run(flags, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 1);
	assert_true(r.runs[0].iterations >= 50);
	assert_true(f.calls >= r.runs[0].iterations);
	assert_true(fabs(r.runs[0].real_time_s - 0.001) < 1e-12);
	assert_int_equal(f.setups, f.checks); /* once per batch each */
	mb_gb_results_free(&r);
}

/* --benchmark_filter selects; what it leaves out is never set up or run. */
static void test_filter(void **st)
{
	(void)st;
	char err[256];
	mb_gb_results r;
	fake a = {.t = 1e-3}, b = {.t = 1e-3};
	reg("alpha/x", &a, 3);
	reg("beta/y", &b, 3);
	static const char *const only_beta[] = {"--benchmark_filter=^beta", NULL};
	assert_int_equal(run(only_beta, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.runs[0].name, "beta/y");
	assert_int_equal(a.calls + a.setups, 0);
	assert_int_equal(b.calls, 3);
	mb_gb_results_free(&r);

	reg("alpha/x", &a, 3);
	reg("beta/y", &b, 3);
	static const char *const not_beta[] = {"--benchmark_filter=-beta", NULL};
	assert_int_equal(run(not_beta, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.runs[0].name, "alpha/x");
	mb_gb_results_free(&r);

	reg("alpha/x", &a, 3);
	static const char *const none[] = {"--benchmark_filter=gamma", NULL};
	assert_int_equal(run(none, &r, err, sizeof err), -1);
	assert_non_null(strstr(err, "gamma"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(r.n, 0);

	/* a flag from an earlier call does not stick */
	reg("alpha/x", &a, 3);
	assert_int_equal(run(NULL, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 1);
	mb_gb_results_free(&r);
}

/* A failed check or iteration ends the run with error_occurred. */
static void test_errors(void **st)
{
	(void)st;
	char err[256];
	mb_gb_results r;
	fake w = {.t = 1e-3, .wrong = 1}, e = {.t = 1e-3, .fail_at = 2}, nan = {.t = NAN};
	reg("t/wrong", &w, 4);
	reg("t/fails", &e, 4);
	reg("t/nan", &nan, 4);
	assert_int_equal(run(NULL, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 3);
	assert_true(r.runs[0].error);
	assert_string_equal(r.runs[0].error_msg, "invalid: wrong answer");
	assert_int_equal(w.calls, 4);
	assert_true(r.runs[1].error);
	assert_string_equal(r.runs[1].error_msg, "boom");
	assert_int_equal(e.calls, 2);
	assert_int_equal(e.checks, 0); /* no check after a failed batch */
	assert_true(r.runs[2].error);
	assert_int_equal(nan.calls, 1);
	mb_gb_results_free(&r);
}

static void expect_bad(const char *flag, const char *word)
{
	char err[256] = "";
	char *v[] = {(char *)flag};
	assert_int_equal(mb_gb_flags_check(1, v, err, sizeof err), -1);
	if (!strstr(err, word))
		fail_msg("flag %s: message '%s' lacks '%s'", flag, err, word);
	assert_int_equal(mb_gb_init("t", 1, v, err, sizeof err), -1);
}

static void test_flags(void **st)
{
	(void)st;
	char err[256];
	static const char *const good[] = {
		"--benchmark_filter=gemm/square|copy", "--benchmark_repetitions=3",
		"--benchmark_min_time=0.01", "--benchmark_format=json", "--benchmark_out_format=csv",
		"--benchmark_list_tests", "--benchmark_report_aggregates_only=true",
		"--benchmark_time_unit=ms", "--benchmark_context=a=1,b=2", "--benchmark_color=false",
		"--v=0", "--benchmark_out="};
	assert_int_equal(mb_gb_flags_check((int)MB_ARRAY_LEN(good), (char *const *)good, err,
					   sizeof err), 0);
	expect_bad("--benchmark_format=xml", "console, json or csv");
	expect_bad("--benchmark_min_time=abc", "seconds");
	expect_bad("--benchmark_min_time=0", "seconds");
	expect_bad("--benchmark_repetitions=0", "1..1000000");
	expect_bad("--benchmark_repetitions=2.5", "integer");
	expect_bad("--benchmark_filter=(", "regular expression");
	expect_bad("--benchmark_nope=1", "unknown option");
	expect_bad("--benchmark_filter", "missing value");
	expect_bad("--benchmark_list_tests=maybe", "true or false");
	expect_bad("--benchmark_time_unit=h", "ns, us, ms or s");
	expect_bad("--benchmark_context=novalue", "key=value");
	expect_bad("--benchmark_out=/proc/nonexistent/dir/x.json", "cannot write");
	expect_bad("--benchmark_out=/tmp", "is a directory");
	expect_bad("stray", "not a --benchmark_* flag");

	static const char *const json[] = {"--benchmark_format=json"};
	assert_int_equal(mb_gb_init("t", 1, (char *const *)json, err, sizeof err), 0);
	assert_string_equal(mb_gb_format(), "json");
	assert_int_equal(mb_gb_init("t", 0, NULL, err, sizeof err), 0);
	assert_string_equal(mb_gb_format(), "console");
}

/* --benchmark_list_tests lists instead of running; --benchmark_out writes
 * Google Benchmark's own file next to what the shim records. */
static void test_list_and_out(void **st)
{
	(void)st;
	char err[256], path[] = "/tmp/test_gbench_out.XXXXXX", flag[64];
	mb_gb_results r;
	fake f = {.t = 1e-3};
	reg("t/listed", &f, 2);
	static const char *const list[] = {"--benchmark_list_tests", NULL};
	assert_int_equal(run(list, &r, err, sizeof err), 0);
	assert_int_equal(r.listed, 1);
	assert_int_equal(r.n, 0);
	assert_int_equal(f.calls, 0);

	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(flag, sizeof flag, "--benchmark_out=%s", path);
	const char *const out[] = {flag, NULL};
	reg("t/out", &f, 2);
	assert_int_equal(run(out, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 1);
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	char buf[8192];
	size_t len = fread(buf, 1, sizeof buf - 1, in);
	buf[len] = '\0';
	fclose(in);
	unlink(path);
	assert_non_null(strstr(buf, "\"benchmarks\""));
	assert_non_null(strstr(buf, "t/out/iterations:2/manual_time"));
	assert_non_null(strstr(buf, "flops_per_second"));
	mb_gb_results_free(&r);
}

/* ---- calibration files ---- */

static char dir[32], sub[48]; /* a temporary directory, and results/ in it */

static int cal_setup(void **st)
{
	(void)st;
	memcpy(dir, "/tmp/test_cal.XXXXXX", 21);
	if (!mkdtemp(dir))
		return -1;
	snprintf(sub, sizeof sub, "%s/results", dir);
	return mkdir(sub, 0755);
}

static int cal_teardown(void **st)
{
	(void)st;
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *put_in(const char *where, const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/%s", where, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *put(const char *name, const char *text)
{
	return put_in(dir, name, text);
}

static const char *cal_text(const char *host, const char *time, const char *fp32,
			    const char *mem)
{
	static char buf[1024];
	snprintf(buf, sizeof buf,
		 "{\"schema\": \"moebench.calibration/1\", \"host\": \"%s\", \"device\": \"cpu x\","
		 " \"backend\": \"cpu\", \"time\": \"%s\", \"ceilings\": {\"matmul_tflops\":"
		 " {\"fp32\": %s, \"bf16\": null, \"bf16_reason\": \"skipped\"}, \"mem_gbps\": %s},"
		 " \"benchmarks\": []}",
		 host, time, fp32, mem);
	return buf;
}

static void test_cal_load(void **st)
{
	(void)st;
	mb_calibration c;
	const char *p = put("a.json", cal_text("h1", "2026-11-23T10:00:00Z", "0.34", "27.5"));
	assert_int_equal(mb_calibration_load(p, "h1", &c), 0);
	assert_string_equal(c.host, "h1");
	assert_string_equal(c.backend, "cpu");
	assert_true(c.matmul_tflops[MB_FP32] == 0.34);
	assert_true(isnan(c.matmul_tflops[MB_BF16]));
	assert_true(isnan(c.matmul_tflops[MB_FP64]));
	assert_true(c.mem_gbps == 27.5);
	assert_int_equal(mb_calibration_load(p, NULL, &c), 0);
	assert_int_equal(mb_calibration_load(p, "h2", &c), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "host h1, not h2"));
}

static void expect_reject(const char *text, const char *word)
{
	mb_calibration c;
	const char *p = put("bad.json", text);
	assert_int_equal(mb_calibration_load(p, NULL, &c), MB_ERR_USAGE);
	if (!strstr(mb_errmsg(), word))
		fail_msg("'%s' lacks '%s'", mb_errmsg(), word);
	assert_null(strchr(mb_errmsg(), '\n'));
}

static void test_cal_hostile(void **st)
{
	(void)st;
	const char *t = "2026-11-23T10:00:00Z";
	expect_reject(cal_text("h", t, "\"fast\"", "1"), "matmul_tflops.fp32 is not a number");
	expect_reject(cal_text("h", t, "-1", "1"), "outside");
	expect_reject(cal_text("h", t, "0", "1"), "outside");
	expect_reject(cal_text("h", t, "1e9", "1"), "outside");
	expect_reject(cal_text("h", t, "1", "1e300"), "mem_gbps");
	expect_reject(cal_text("h", t, "1", "[1]"), "mem_gbps is not a number");
	expect_reject(cal_text("h", t, "NaN", "1"), "not a JSON object");
	expect_reject(cal_text("h", "yesterday", "1", "1"), "time");
	expect_reject(cal_text("h", "2026-11-23 10:00:00", "1", "1"), "time");
	expect_reject("[1, 2]", "not a JSON object");
	expect_reject("", "not a JSON object");
	expect_reject("{\"schema\": \"moebench.result/1\"}", "not a moebench.calibration/1");
	expect_reject("{\"schema\": \"moebench.calibration/1\", \"host\": 7}", "\"host\"");
	expect_reject("{\"schema\": \"moebench.calibration/1\", \"host\": \"h\", \"device\": \"d\","
		      " \"backend\": \"cpu\", \"time\": \"2026-11-23T10:00:00Z\"}",
		      "\"ceilings\" is missing");
	expect_reject("{\"schema\": \"moebench.calibration/1\", \"host\": \"h\", \"device\": \"d\","
		      " \"backend\": \"cpu\", \"time\": \"2026-11-23T10:00:00Z\", \"ceilings\":"
		      " {\"matmul_tflops\": 3}}",
		      "matmul_tflops is missing or not an object");
	char longhost[400];
	memset(longhost, 'x', sizeof longhost - 1);
	longhost[sizeof longhost - 1] = '\0';
	expect_reject(cal_text(longhost, t, "1", "1"), "longer than");

	/* too large: refused unread (a sparse file) */
	char path[64];
	snprintf(path, sizeof path, "%s/huge.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)MB_CALIBRATION_MAX_BYTES + 1), 0);
	fclose(f);
	mb_calibration c;
	assert_int_equal(mb_calibration_load(path, NULL, &c), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "larger than"));
	unlink(path);
	assert_int_equal(mb_calibration_load(dir, NULL, &c), MB_ERR_USAGE); /* a directory */
	assert_int_equal(mb_calibration_load("/nonexistent/x.json", NULL, &c), MB_ERR_USAGE);
}

static void test_cal_newest(void **st)
{
	(void)st;
	char path[512];
	put_in(sub, "old.json", cal_text("h1", "2026-01-01T00:00:00Z", "0.1", "1"));
	put_in(sub, "new.json", cal_text("h1", "2026-06-01T00:00:00Z", "0.2", "1"));
	put_in(sub, "other.json", cal_text("h2", "2026-12-01T00:00:00Z", "0.3", "1"));
	put_in(sub, "broken.json", "{\"schema\": \"moebench.calibration/1\", \"host\": ");
	put_in(sub, "result.json", "{\"schema\": \"moebench.result/1\", \"host\": \"h1\"}");
	put_in(sub, "bad.json", cal_text("h1", "2027-01-01T00:00:00Z", "-5", "1"));
	put_in(sub, "notes.txt", cal_text("h1", "2028-01-01T00:00:00Z", "0.9", "1"));
	assert_int_equal(mb_calibration_find_newest(sub, "h1", path, sizeof path), 0);
	assert_non_null(strstr(path, "/new.json"));
	mb_calibration c;
	assert_int_equal(mb_calibration_load(path, "h1", &c), 0);
	assert_true(c.matmul_tflops[MB_FP32] == 0.2);
	assert_int_equal(mb_calibration_find_newest(sub, "h2", path, sizeof path), 0);
	assert_non_null(strstr(path, "/other.json"));
	assert_int_equal(mb_calibration_find_newest(sub, "h3", path, sizeof path), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "no calibration for host h3"));
	assert_string_equal(path, "");
	assert_int_equal(mb_calibration_find_newest("/nonexistent", "h1", path, sizeof path),
			 MB_ERR_USAGE);
}

/* What `micro` writes reads back: ceilings from the median aggregate, an
 * invalid benchmark's ceiling null with its reason. */
static void test_cal_roundtrip(void **st)
{
	(void)st;
	mb_gb_run runs[4];
	memset(runs, 0, sizeof runs);
	snprintf(runs[0].name, sizeof runs[0].name, "%s", MB_MICRO_MATMUL_FP32);
	runs[0].flops_per_s = 1e11; /* a repetition ... */
	runs[0].repetitions = 3;
	runs[1] = runs[0];
	snprintf(runs[1].aggregate, sizeof runs[1].aggregate, "median");
	runs[1].flops_per_s = 3e11;  /* ... and the median, which is used */
	runs[1].repetition = -1;
	snprintf(runs[2].name, sizeof runs[2].name, "%s", MB_MICRO_MATMUL_BF16);
	runs[2].error = 1;
	snprintf(runs[2].error_msg, sizeof runs[2].error_msg, "invalid: off by 1");
	snprintf(runs[3].name, sizeof runs[3].name, "%s", MB_MICRO_MEM);
	runs[3].bytes_per_s = 2e10;
	runs[3].iterations = 20;
	mb_gb_results res = {.runs = runs, .n = 4, .matched = 3};
	const mb_micro_bench bench[] = {
		{.name = MB_MICRO_MATMUL_FP32, .op = "gemm", .dtype = "fp32", .shape = "", .flops = 1},
		{.name = MB_MICRO_MATMUL_BF16, .op = "gemm", .dtype = "bf16", .shape = "", .flops = 1},
		{.name = MB_MICRO_MEM, .op = "permute", .dtype = "fp32", .shape = "", .bytes = 1},
		{.name = MB_MICRO_SGEMM, .skipped = "the device is not the host CPU"},
	};
	char *argv[] = {"micro", "-o", "x"};
	mb_micro_doc d = {.backend = "null", .dev = {.name = "null device", .kind = "none"},
			  .model = "tiny", .preset = "quick", .dtype = "all", .argc = 3,
			  .argv = argv, .bench = bench, .nbench = 4, .runs = &res};
	mb_micro_ceilings c;
	mb_micro_ceilings_get(&d, &c);
	assert_true(c.matmul_tflops[0] == 0.3);
	assert_true(isnan(c.matmul_tflops[1]));
	assert_non_null(strstr(c.matmul_why[1], "invalid: off by 1"));
	assert_true(c.mem_gbps == 20);
	assert_true(isnan(c.sgemm_tflops));
	assert_non_null(strstr(c.sgemm_why, "skipped: the device is not the host CPU"));
	assert_int_equal(c.invalid, 1);
	assert_int_equal(c.have_caps, 0); /* not a cpu device: no computed peak */

	cJSON *j = mb_calibration_to_json(&d, &c);
	assert_non_null(j);
	char *text = cJSON_Print(j);
	cJSON_Delete(j);
	assert_non_null(text);
	const char *p = put("round.json", text);
	cJSON_free(text);
	char host[256] = "";
	assert_int_equal(gethostname(host, sizeof host - 1), 0);
	mb_calibration back;
	assert_int_equal(mb_calibration_load(p, host, &back), 0);
	assert_true(back.matmul_tflops[MB_FP32] == 0.3);
	assert_true(isnan(back.matmul_tflops[MB_BF16]));
	assert_true(back.mem_gbps == 20);
	assert_string_equal(back.backend, "null");
	assert_string_equal(back.device, "null device");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_manual),
		cmocka_unit_test(test_repetitions),
		cmocka_unit_test(test_adaptive),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_list_and_out),
		cmocka_unit_test(test_cal_load),
		cmocka_unit_test(test_cal_hostile),
		cmocka_unit_test(test_cal_newest),
		cmocka_unit_test(test_cal_roundtrip),
	};
	return cmocka_run_group_tests(tests, cal_setup, cal_teardown);
}
