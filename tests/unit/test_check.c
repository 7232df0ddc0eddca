/* test_check.c: `moebench check` (harness/check.c): runs written by the real
 * writer re-derive with no finding; each kind of hand edit is caught at the
 * field it touched and only there; the tolerance is where check.h says; and
 * every file of the fuzz corpus (tests/fuzz/corpus) goes through the reader
 * and the check without a crash, the real ones clean, the tampered ones
 * caught. */
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

#include "harness/check.h"
#include "harness/cost.h"
#include "harness/result.h"
#include "harness/sysinfo.h"

static const mb_suite *const suites[] = {&mb_suite_attention, &mb_suite_gmm, &mb_suite_alltoall,
					 &mb_suite_train_step, &mb_suite_gemm};

/* ---- findings, collected ---- */

#define MAXF 256
typedef struct found {
	int n, notes;
	char path[MAXF][160];
	char msg[MAXF][400];
} found;

static void collect(void *ctx, mb_find_kind kind, const char *path, const char *msg)
{
	found *f = ctx;
	if (kind == MB_FIND_NOTE) {
		f->notes++;
		return;
	}
	if (f->n < MAXF) {
		snprintf(f->path[f->n], sizeof f->path[0], "%s", path);
		snprintf(f->msg[f->n], sizeof f->msg[0], "%s", msg);
	}
	f->n++;
}

static void check(const cJSON *root, found *f, mb_check_sum *s)
{
	memset(f, 0, sizeof *f);
	mb_check_opts o = {.suites = suites, .nsuites = (int)MB_ARRAY_LEN(suites),
			   .route_limit = MB_CHECK_ROUTE_LIMIT, .emit = collect, .ctx = f};
	assert_int_equal(mb_check_result(root, &o, s), 0);
	assert_int_equal(s->mismatches < MB_CHECK_MAX_SHOWN ? s->mismatches : MB_CHECK_MAX_SHOWN, f->n);
	for (int i = 0; i < f->n && i < MAXF; i++)
		print_message("  finding: %s\n", f->msg[i]);
}

static int has(const found *f, const char *path)
{
	for (int i = 0; i < f->n && i < MAXF; i++)
		if (!strcmp(f->path[i], path))
			return 1;
	return 0;
}

/* Findings whose path starts with prefix. */
static int count_under(const found *f, const char *prefix)
{
	int n = 0;
	for (int i = 0; i < f->n && i < MAXF; i++)
		n += !strncmp(f->path[i], prefix, strlen(prefix));
	return n;
}

/* ---- synthetic runs through the real writer ---- */

static cJSON *sys_system, *sys_build, *sys_env;
static char dir[] = "/tmp/mb_test_check_XXXXXX";

static int group_setup(void **st)
{
	(void)st;
	sys_system = mb_sysinfo_system();
	sys_build = mb_sysinfo_build();
	sys_env = mb_sysinfo_environment();
	return sys_system && sys_build && sys_env && mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **st)
{
	(void)st;
	char cmd[128];
	cJSON_Delete(sys_system);
	cJSON_Delete(sys_build);
	cJSON_Delete(sys_env);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

#define MAXC 8
#define MAXN 64

typedef struct fixture {
	mb_run run;
	mb_case_result cases[MAXC];
	double samples[MAXC][MAXN];
	char hosts[1][64];
	char *argv[2];
	mb_dev_info dev;
} fixture;

static void fx_init(fixture *fx, const char *dev_name, const char *kind, int iters)
{
	memset(fx, 0, sizeof *fx);
	mb_run *r = &fx->run;
	strcpy(r->run_id, "test-check");
	strcpy(r->start_time, "2026-01-01T00:00:00Z");
	strcpy(r->end_time, "2026-01-01T00:00:01Z");
	r->status = MB_RUN_COMPLETE;
	fx->argv[0] = "moebench";
	fx->argv[1] = "run";
	r->argc = 2;
	r->argv = fx->argv;
	r->backend = "cpu";
	r->dev = (mb_dev_info){.name = dev_name, .kind = kind, .library = "test", .threads = 1};
	fx->dev = r->dev;
	r->have_dev = 1;
	r->model = "tiny";
	r->size = "quick";
	r->seed = 42;
	r->warmup = 1;
	r->iters = iters;
	r->world_size = 1;
	r->launcher = "none";
	r->nodes = r->ranks_per_node = 1;
	r->nodes_from = "one process";
	strcpy(fx->hosts[0], "testhost");
	r->hosts = fx->hosts;
	r->system = sys_system;
	r->build = sys_build;
	r->environment = sys_env;
	r->cases = fx->cases;
}

/* A finished, passed case of suite su with "key=value" parameters and
 * iters samples of a seeded shape, its cost, stats and metrics computed by
 * the harness itself, as the runner does. */
static mb_case_result *fx_add(fixture *fx, const mb_suite *su, const char *const *kv, int nkv)
{
	const int i = fx->run.ncases++, n = fx->run.iters;
	mb_case_result *c = &fx->cases[i];
	c->suite = su;
	assert_int_equal(mb_params_init(&c->params, su->params, su->nparams), 0);
	for (int k = 0; k < nkv; k++) {
		char key[32];
		const char *eq = strchr(kv[k], '=');
		snprintf(key, sizeof key, "%.*s", (int)(eq - kv[k]), kv[k]);
		const int j = mb_params_find(&c->params, key);
		double v;
		assert_true(j >= 0);
		assert_int_equal(mb_param_parse_value(&su->params[j], eq + 1, &v), 0);
		assert_int_equal(mb_params_set(&c->params, key, v, MB_SRC_USER), 0);
	}
	if (su->validate(&c->params))
		fail_msg("%s", mb_errmsg());
	c->status = MB_CASE_OK;
	strcpy(c->start_time, "2026-01-01T00:00:00Z");
	c->setup_s = 0.5, c->run_s = 1.0, c->verify_s = 0.25;
	for (int s = 0; s < n; s++) /* spread, with a repeat, like timings */
		fx->samples[i][s] = 1e-3 * (1.0 + 0.37 * ((s * 7919 + i * 31) % 11)) / 3.0;
	c->samples = fx->samples[i];
	c->nsamples = n;
	double scratch[MAXN];
	mb_stats_compute(c->samples, n, scratch, &c->stats);
	c->has_cost = su->cost(&c->params, &c->cost) == 0;
	c->has_check = 1;
	c->check = (mb_check){.passed = 1, .method = "test", .checked = 100};
	c->power_reason[0] = 0;
	return c;
}

/* gmm with ep > 1: the FLOPs and info of P received rows, as setup and
 * gmm_info would give them. */
static void fx_gmm_recv(mb_case_result *c, double pairs)
{
	const double h = (double)mb_param_int(&c->params, "hidden");
	const double f = (double)mb_param_int(&c->params, "ffn");
	const double El = (double)(mb_param_int(&c->params, "experts") / mb_param_int(&c->params, "ep"));
	const double rows = (double)(mb_param_int(&c->params, "tokens") * mb_param_int(&c->params, "top_k"));
	c->cost.flops = c->cost.flops_palm = 18.0 * pairs * h * f;
	const double mean = pairs / El, mx = floor(mean) + 3;
	mb_info_add(&c->info, "rows_min", floor(mean) - 2);
	mb_info_add(&c->info, "rows_max", mx);
	mb_info_add(&c->info, "rows_mean", mean);
	mb_info_add(&c->info, "imbalance", mx / mean);
	mb_info_add(&c->info, "experts_empty", 0);
	mb_info_add(&c->info, "pairs", pairs);
	mb_info_add(&c->info, "ep_rank", 0);
	mb_info_add(&c->info, "rows_received_mean", rows);
	mb_info_add(&c->info, "ep_imbalance", pairs / rows * 1.01);
}

/* Metrics as the runner derives them, written and read back: the tree
 * `moebench check FILE` would see. */
static cJSON *fx_file(fixture *fx)
{
	for (int i = 0; i < fx->run.ncases; i++) {
		mb_case_result *c = &fx->cases[i];
		mb_metrics_derive(&c->cost, &c->stats, fx->run.world_size, &fx->dev,
				  mb_case_dtype(&c->params), &c->metrics);
		mb_metrics_peaks(NULL, &c->metrics);
	}
	char path[256];
	cJSON *root = NULL;
	snprintf(path, sizeof path, "%s/r.json", dir);
	assert_int_equal(mb_result_write(&fx->run, path), 0);
	assert_int_equal(mb_result_load(path, &root), 0);
	return root;
}

static const char *const gmm_ep1[] = {"hidden=64", "ffn=32", "experts=8", "top_k=2", "tokens=128"};
static const char *const gmm_ep4[] = {"hidden=64", "ffn=32", "experts=8", "top_k=2", "tokens=128",
				      "ep=4"};
static const char *const gemm_kv[] = {"m=64", "n=48", "k=32"};
static const char *const attn_kv[] = {"seq=128", "heads=4", "kv_heads=2"};

/* Every suite but alltoall (its cost needs a set-up world: the corpus's
 * real files cover it). */
static cJSON *fx_workload(fixture *fx)
{
	fx_init(fx, "Test CPU", "cpu", 10);
	fx_add(fx, &mb_suite_gemm, gemm_kv, 3);
	fx_add(fx, &mb_suite_attention, attn_kv, 3);
	mb_case_result *g = fx_add(fx, &mb_suite_gmm, gmm_ep1, 5);
	mb_info_add(&g->info, "pairs", 256);
	fx_gmm_recv(fx_add(fx, &mb_suite_gmm, gmm_ep4, 6), 261);
	fx_add(fx, &mb_suite_train_step, NULL, 0);
	return fx_file(fx);
}

static cJSON *case_of(cJSON *root, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "results"), i);
}

static cJSON *member(cJSON *o, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, k);
	return o;
}

static void scale(cJSON *o, const char *path, double by)
{
	cJSON *x = member(o, path);
	assert_true(cJSON_IsNumber(x));
	cJSON_SetNumberHelper(x, x->valuedouble * by);
}

static void scale_all(cJSON *arr, double by)
{
	cJSON *e;
	cJSON_ArrayForEach(e, arr)
		cJSON_SetNumberHelper(e, e->valuedouble * by);
}

/* ---- the tests ---- */

static void test_clean_workload(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 0);
	assert_int_equal(s.cases, 5);
	assert_true(s.compared >= 5 * 20); /* stats, cost and metrics of every case */
	assert_true(s.notes >= 1);         /* gmm ep > 1: info.pairs is taken as given */
	cJSON_Delete(root);
}

/* The independent statistics agree with harness/stats.c for every n,
 * through the small-n confidence interval (n < 6) and beyond. */
static void test_stats_every_n(void **st)
{
	(void)st;
	for (int n = 1; n <= 40; n++) {
		fixture fx;
		found f;
		mb_check_sum s;
		fx_init(&fx, "Test CPU", "cpu", n);
		fx_add(&fx, &mb_suite_gemm, gemm_kv, 3);
		cJSON *root = fx_file(&fx);
		check(root, &f, &s);
		assert_int_equal(s.mismatches, 0);
		/* ranks floor(n/2 - 0.98 sqrt n) >= 1 and ceil(1 + n/2 + 0.98 sqrt n) <= n
		 * from n = 8 on (SCHEMA.md's "n < 6" understates it: 6 and 7 fall
		 * outside too) */
		assert_int_equal(cJSON_IsTrue(member(case_of(root, 0), "stats_s.median_ci_covers_95")),
				 n >= 8 ? 1 : 0);
		cJSON_Delete(root);
	}
}

/* Samples halved by hand: the statistics no longer match them, and the
 * metrics derived from the true median follow. */
static void test_halved_samples(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	scale_all(member(case_of(root, 2), "samples_s"), 0.5);
	check(root, &f, &s);
	assert_true(has(&f, "results[2].stats_s.min"));
	assert_true(has(&f, "results[2].stats_s.p50"));
	assert_true(has(&f, "results[2].stats_s.mean"));
	assert_true(has(&f, "results[2].metrics.tflops"));
	assert_int_equal(count_under(&f, "results[2].cost"), 0);
	assert_int_equal(s.mismatches, count_under(&f, "results[2]."));
	cJSON_Delete(root);
}

static void test_doubled_tflops(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	scale(case_of(root, 0), "metrics.tflops", 2);
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 1);
	assert_true(has(&f, "results[0].metrics.tflops"));
	cJSON_Delete(root);
}

/* A changed FLOP count is caught at cost; the metrics, derived from the
 * suite's count, still match the file's. */
static void test_changed_flops(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	scale(case_of(root, 4), "cost.flops", 1.25);
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 1);
	assert_true(has(&f, "results[4].cost.flops"));
	cJSON_Delete(root);
}

/* Samples and statistics edited together, consistently: only the metrics
 * betray it. */
static void test_samples_and_stats(void **st)
{
	(void)st;
	static const char *const keys[] = {"min", "p50", "p95", "p99", "max", "mean", "stdev"};
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON *c = case_of(root, 1), *stats = member(c, "stats_s");
	scale_all(member(c, "samples_s"), 0.5);
	for (size_t i = 0; i < MB_ARRAY_LEN(keys); i++)
		scale(stats, keys[i], 0.5);
	scale_all(member(stats, "median_ci95"), 0.5);
	check(root, &f, &s);
	assert_int_equal(count_under(&f, "results[1].stats_s"), 0);
	assert_true(has(&f, "results[1].metrics.tflops"));
	assert_true(has(&f, "results[1].metrics.tflops_best"));
	assert_true(has(&f, "results[1].metrics.tokens_per_s"));
	assert_int_equal(s.mismatches, count_under(&f, "results[1].metrics"));
	cJSON_Delete(root);
}

/* Exact where the formula has no sum, 1e-12 where it does (check.h). */
static void test_tolerance(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON *stats = member(case_of(root, 0), "stats_s");
	/* a few ulps, as another summation order or an FMA would give */
	scale(stats, "mean", 1 + 4 * DBL_EPSILON);
	scale(stats, "stdev", 1 - 4 * DBL_EPSILON);
	scale(stats, "p95", 1 + 4 * DBL_EPSILON); /* interpolated between two samples */
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 0);
	/* A FLOP count a few ulps off is accepted, and the metrics must then
	 * match the file's count exactly, as the writer divided that one. */
	scale(case_of(root, 4), "cost.flops", 1 + 1e-14);
	check(root, &f, &s);
	assert_false(has(&f, "results[4].cost.flops"));
	assert_true(has(&f, "results[4].metrics.tflops"));
	cJSON *min = member(stats, "min"); /* an order statistic: exact */
	cJSON_SetNumberHelper(min, nextafter(min->valuedouble, 1.0));
	scale(case_of(root, 4), "cost.flops", 1 + 1e-9);
	scale(case_of(root, 3), "metrics.tflops_palm", 1 + DBL_EPSILON); /* a quotient: exact */
	check(root, &f, &s);
	assert_true(has(&f, "results[0].stats_s.min"));
	assert_true(has(&f, "results[4].cost.flops"));
	assert_true(has(&f, "results[3].metrics.tflops_palm"));
	cJSON_Delete(root);
}

static void set_bool(cJSON *o, const char *key, int v)
{
	cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateBool(v));
}

static void set_str(cJSON *o, const char *key, const char *v)
{
	cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(v));
}

static void test_status(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	set_bool(member(case_of(root, 0), "check"), "passed", 0); /* ok with a failed check */
	set_str(case_of(root, 1), "status", "invalid");           /* invalid with a passed one */
	set_str(case_of(root, 1), "reason", "check failed: x");
	cJSON_SetNumberHelper(member(case_of(root, 2), "check.mismatched"), 3);
	set_str(case_of(root, 4), "status", "skipped");           /* skipped, with samples */
	check(root, &f, &s);
	assert_true(has(&f, "results[0].status"));
	assert_true(has(&f, "results[1].status"));
	assert_true(has(&f, "results[2].check.passed"));
	assert_true(has(&f, "results[4].status"));
	assert_true(has(&f, "results[4].reason")); /* and without a reason */
	assert_int_equal(s.mismatches, 5);
	cJSON_Delete(root);
}

/* A device with a published peak: MFU and the peak are re-derived from
 * hardware/specs and the case's dtype. */
static void test_mfu_published(void **st)
{
	(void)st;
	static const char *const kv[] = {"m=64", "n=64", "k=64", "dtype=bf16"};
	fixture fx;
	found f;
	mb_check_sum s;
	fx_init(&fx, "NVIDIA H100 80GB HBM3", "gpu", 10);
	fx_add(&fx, &mb_suite_gemm, kv, 4);
	fx_add(&fx, &mb_suite_gemm, gemm_kv, 3); /* fp32: no published figure */
	cJSON *root = fx_file(&fx);
	assert_true(cJSON_IsNumber(member(case_of(root, 0), "metrics.mfu_pct")));
	assert_true(cJSON_IsNull(member(case_of(root, 1), "metrics.mfu_pct")));
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 0);
	scale(case_of(root, 0), "metrics.peak.tflops", 0.5); /* a smaller peak: a larger MFU */
	scale(case_of(root, 0), "metrics.mfu_pct", 2);
	check(root, &f, &s);
	assert_true(has(&f, "results[0].metrics.peak.tflops"));
	assert_true(has(&f, "results[0].metrics.mfu_pct"));
	assert_int_equal(s.mismatches, 2);
	cJSON_Delete(root);
}

/* gmm with ep > 1 counts the rows it received (info.pairs). */
static void test_gmm_received_rows(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON *pairs = member(case_of(root, 3), "info.pairs");
	cJSON_SetNumberHelper(pairs, pairs->valuedouble + 8);
	check(root, &f, &s);
	assert_true(has(&f, "results[3].cost.flops"));
	assert_true(has(&f, "results[3].info.rows_mean"));
	cJSON_SetNumberHelper(pairs, 4 * 128 * 2 + 1); /* more than the group can send */
	check(root, &f, &s);
	assert_true(has(&f, "results[3].info.pairs"));
	cJSON_Delete(root);
}

static void test_schema(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON_AddNumberToObject(root, "from_the_future", 1); /* unknown members: tolerated */
	cJSON_AddStringToObject(case_of(root, 0), "note", "x");
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 0);
	cJSON_DeleteItemFromObjectCaseSensitive(case_of(root, 0), "stats_s");
	set_str(member(root, "config"), "seed", "42");
	cJSON_ReplaceItemInObjectCaseSensitive(member(case_of(root, 1), "metrics"), "mfu_pct",
					       cJSON_CreateNumber(1)); /* beside mfu_reason */
	cJSON_ReplaceItemInArray(member(case_of(root, 2), "samples_s"), 0, cJSON_CreateNull());
	cJSON_ReplaceItemInObjectCaseSensitive(member(root, "system"), "cores", cJSON_CreateNull());
	check(root, &f, &s);
	assert_true(has(&f, "results[0].stats_s"));
	assert_true(has(&f, "config.seed"));
	assert_true(has(&f, "results[1].metrics.mfu_pct"));
	assert_true(has(&f, "results[2].samples_s[0]"));
	assert_true(has(&f, "system.cores")); /* a null without its reason */
	cJSON_Delete(root);
}

static void test_params(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON *p0 = member(case_of(root, 0), "params");
	cJSON_AddNumberToObject(p0, "bogus", 1);
	cJSON_ReplaceItemInObjectCaseSensitive(p0, "m", cJSON_CreateNumber(1e12)); /* out of range */
	set_str(member(case_of(root, 1), "params"), "dtype", "fp64");               /* no such choice */
	cJSON_DeleteItemFromObjectCaseSensitive(member(case_of(root, 2), "params"), "ffn");
	set_str(case_of(root, 4), "suite", "no_such_suite");
	check(root, &f, &s);
	assert_true(has(&f, "results[0].params.bogus"));
	assert_true(has(&f, "results[0].params.m"));
	assert_true(has(&f, "results[1].params.dtype"));
	assert_true(has(&f, "results[2].params.ffn"));
	assert_true(has(&f, "results[4].suite"));
	cJSON_Delete(root);
}

static void test_world_and_run(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx);
	cJSON_SetNumberHelper(member(root, "world.nodes"), 2);
	set_str(root, "status_reason", "SIGINT");
	cJSON_SetNumberHelper(member(root, "config.iters"), 9);
	check(root, &f, &s);
	assert_true(has(&f, "world.nodes"));
	assert_true(has(&f, "status_reason"));
	assert_true(has(&f, "results[0].samples_s")); /* 10 samples, 9 iterations */
	cJSON_Delete(root);
}

/* A file with thousands of wrong fields: every one counted, the first
 * MB_CHECK_MAX_SHOWN passed on. */
static void test_many_findings(void **st)
{
	(void)st;
	fixture fx;
	found f;
	mb_check_sum s;
	cJSON *root = fx_workload(&fx), *arr = cJSON_CreateArray();
	for (int i = 0; i < 1000; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString("1e-3"));
	cJSON_ReplaceItemInObjectCaseSensitive(case_of(root, 0), "samples_s", arr);
	check(root, &f, &s);
	assert_int_equal(s.mismatches, 1000);
	assert_int_equal(f.n, MB_CHECK_MAX_SHOWN);
	cJSON_Delete(root);
}

/* ---- the fuzz corpus: real runs, tampered copies, broken files ---- */

static const char *corpus = "tests/fuzz/corpus";

static int load(const char *name, cJSON **root)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", corpus, name);
	return mb_result_load(path, root);
}

/* Every file, through the reader and the check: real-* match, tamper-*
 * and bad-* are caught (or refused by the reader), none crashes. The same
 * code the fuzz target runs, replayed deterministically. */
static void test_corpus_replay(void **st)
{
	(void)st;
	DIR *d = opendir(corpus);
	struct dirent *e;
	int files = 0, real = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		cJSON *root = NULL;
		found f;
		mb_check_sum s;
		if (e->d_name[0] == '.')
			continue;
		files++;
		print_message("%s\n", e->d_name);
		const int rc = load(e->d_name, &root);
		if (!strncmp(e->d_name, "real-", 5)) {
			assert_int_equal(rc, 0);
			check(root, &f, &s);
			assert_int_equal(s.mismatches, 0);
			assert_true(s.compared > 20);
			real++;
		} else if (rc == 0) {
			check(root, &f, &s);
			assert_true(s.mismatches > 0);
		} else {
			assert_int_equal(rc, MB_ERR_USAGE);
			assert_true(strncmp(e->d_name, "tamper-", 7) != 0);
		}
		cJSON_Delete(root);
	}
	closedir(d);
	assert_true(files >= 20);
	assert_true(real >= 5);
}

/* The tampered copies of real runs are caught where they were edited. */
static void test_corpus_tampered(void **st)
{
	(void)st;
	static const struct {
		const char *file, *path;
		int only; /* the one finding */
	} want[] = {
		{"tamper-tflops-doubled.json", "results[0].metrics.tflops", 1},
		{"tamper-cost-flops.json", "results[3].cost.flops", 1},
		{"tamper-comm-bytes.json", "results[0].cost.comm_bytes", 1}, /* alltoall's routing */
		{"tamper-status-ok.json", "results[0].status", 1},
		{"tamper-samples-halved.json", "results[0].stats_s.p50", 0},
		{"tamper-samples-and-stats.json", "results[1].metrics.tflops", 0},
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(want); i++) {
		cJSON *root = NULL;
		found f;
		mb_check_sum s;
		print_message("%s\n", want[i].file);
		assert_int_equal(load(want[i].file, &root), 0);
		check(root, &f, &s);
		assert_true(has(&f, want[i].path));
		if (want[i].only)
			assert_int_equal(s.mismatches, 1);
		cJSON_Delete(root);
	}
}

/* With a routing budget of 0 no count matrix is recomputed: comm_bytes is
 * taken as given (a note says so), and a tampered value shows only where
 * it disagrees with what was derived from the true one. */
static void test_route_limit(void **st)
{
	(void)st;
	found f;
	mb_check_sum s;
	mb_check_opts o = {.suites = suites, .nsuites = (int)MB_ARRAY_LEN(suites), .route_limit = 0,
			   .emit = collect, .ctx = &f};
	const char *const files[] = {"real-mpi2.json", "tamper-comm-bytes.json"};
	for (int i = 0; i < 2; i++) {
		cJSON *root = NULL;
		memset(&f, 0, sizeof f);
		assert_int_equal(load(files[i], &root), 0);
		assert_int_equal(mb_check_result(root, &o, &s), 0);
		assert_true(f.notes >= 1);
		assert_false(has(&f, "results[0].cost.comm_bytes"));
		assert_int_equal(has(&f, "results[0].metrics.to_others_gbps"), i);
		assert_int_equal(s.mismatches > 0, i);
		cJSON_Delete(root);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_workload),
		cmocka_unit_test(test_stats_every_n),
		cmocka_unit_test(test_halved_samples),
		cmocka_unit_test(test_doubled_tflops),
		cmocka_unit_test(test_changed_flops),
		cmocka_unit_test(test_samples_and_stats),
		cmocka_unit_test(test_tolerance),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_mfu_published),
		cmocka_unit_test(test_gmm_received_rows),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_world_and_run),
		cmocka_unit_test(test_many_findings),
		cmocka_unit_test(test_corpus_replay),
		cmocka_unit_test(test_corpus_tampered),
		cmocka_unit_test(test_route_limit),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
