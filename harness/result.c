/* result.c: the moebench.result/1 file (results/SCHEMA.md), written
 * atomically, with numbers that read back exactly. */
#include "mb.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "result.h"

#define LOAD_LIMIT (256u << 20)

const char *mb_case_status_name(mb_case_status s)
{
	static const char *const n[] = {"ok", "invalid", "skipped", "error"};
	return (unsigned)s < MB_ARRAY_LEN(n) ? n[s] : "?";
}

const char *mb_run_status_name(mb_run_status s)
{
	static const char *const n[] = {"running", "complete", "interrupted", "failed"};
	return (unsigned)s < MB_ARRAY_LEN(n) ? n[s] : "?";
}

/* cJSON 1.7.15 prints with "%1.15g" and keeps it when it is within a
 * relative epsilon, which loses digits (ecosystem.md §2.2). We print the
 * shortest "%.Ng" that strtod maps back to the same bits, as raw text, and
 * whole numbers below 2^53 as integers. */
static cJSON *exact_number(double v)
{
	if (!isfinite(v))
		return cJSON_CreateNull();
	char buf[40];
	if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* an integer: 20, not 2e+01 */
		snprintf(buf, sizeof buf, "%.0f", v);
		return cJSON_CreateRaw(buf);
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return cJSON_CreateRaw(buf);
}

cJSON *mb_json_add_num(cJSON *obj, const char *key, double v)
{
	cJSON *item = exact_number(v);
	if (item && !cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

cJSON *mb_json_push_num(cJSON *arr, double v)
{
	cJSON *item = exact_number(v);
	if (item && !cJSON_AddItemToArray(arr, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

cJSON *mb_json_add_u64(cJSON *obj, const char *key, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	cJSON *item = cJSON_CreateRaw(buf);
	if (item && !cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

void mb_utc_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *src_name(int src)
{
	return src == MB_SRC_USER ? "user" : src == MB_SRC_PRESET ? "preset" : "default";
}

static void add_params(cJSON *c, const mb_params *p)
{
	cJSON *vals = cJSON_AddObjectToObject(c, "params");
	cJSON *from = cJSON_AddObjectToObject(c, "params_source");
	for (int i = 0; i < p->n; i++) {
		const mb_param_def *d = &p->defs[i];
		if (d->type == MB_PT_ENUM) {
			char buf[64];
			mb_param_format(p, i, buf, sizeof buf);
			cJSON_AddStringToObject(vals, d->name, buf);
		} else {
			mb_json_add_num(vals, d->name, p->v[i]);
		}
		cJSON_AddStringToObject(from, d->name, src_name(p->set_by[i]));
	}
}

static void add_stats(cJSON *c, const mb_case_result *r)
{
	cJSON *arr = cJSON_AddArrayToObject(c, "samples_s");
	for (int i = 0; i < r->nsamples; i++)
		mb_json_push_num(arr, r->samples[i]);
	if (r->nsamples == 0) {
		cJSON_AddNullToObject(c, "stats_s");
		return;
	}
	const mb_stats *s = &r->stats;
	cJSON *o = cJSON_AddObjectToObject(c, "stats_s");
	cJSON_AddNumberToObject(o, "n", s->n);
	mb_json_add_num(o, "min", s->min);
	mb_json_add_num(o, "p50", s->p50);
	mb_json_add_num(o, "p95", s->p95);
	mb_json_add_num(o, "p99", s->p99);
	mb_json_add_num(o, "max", s->max);
	mb_json_add_num(o, "mean", s->mean);
	mb_json_add_num(o, "stdev", s->stdev);
	mb_json_add_num(o, "cv_pct", s->cv_pct);
	cJSON *ci = cJSON_AddArrayToObject(o, "median_ci95");
	mb_json_push_num(ci, s->ci95_lo);
	mb_json_push_num(ci, s->ci95_hi);
	cJSON_AddStringToObject(o, "median_ci_method", "order-statistic");
	cJSON_AddBoolToObject(o, "median_ci_covers_95", s->ci_exact);
}

/* MFU and, beside it, the published figure it divides by: a datasheet value
 * is labelled as such and never looks like a measurement. */
static void add_mfu(cJSON *m, const mb_metrics *x)
{
	mb_json_add_num(m, "mfu_pct", x->mfu_pct);
	if (isnan(x->mfu_pct))
		cJSON_AddStringToObject(m, "mfu_reason", x->mfu_reason);
	if (isnan(x->peak_tflops)) {
		cJSON_AddNullToObject(m, "peak");
		return;
	}
	cJSON *p = cJSON_AddObjectToObject(m, "peak");
	mb_json_add_num(p, "tflops", x->peak_tflops);
	cJSON_AddStringToObject(p, "dtype", mb_dtype_name(x->dtype));
	cJSON_AddStringToObject(p, "device", x->peak_device ? x->peak_device : "");
	cJSON_AddStringToObject(p, "kind", "published");
	cJSON_AddStringToObject(p, "source", x->peak_source ? x->peak_source : "");
}

/* The computed and the measured peak beside the published one, each with
 * its kind, so none can pass for another. */
static void add_other_mfu(cJSON *m, const mb_metrics *x)
{
	mb_json_add_num(m, "mfu_computed_pct", x->mfu_computed_pct);
	if (isnan(x->mfu_computed_pct))
		cJSON_AddStringToObject(m, "mfu_computed_reason", x->computed_reason);
	if (isnan(x->computed_peak_tflops)) {
		cJSON_AddNullToObject(m, "computed_peak");
	} else {
		cJSON *p = cJSON_AddObjectToObject(m, "computed_peak");
		mb_json_add_num(p, "tflops", x->computed_peak_tflops);
		cJSON_AddStringToObject(p, "dtype", mb_dtype_name(x->dtype));
		cJSON_AddStringToObject(p, "kind", "computed");
		cJSON_AddStringToObject(p, "how", x->computed_how);
	}
	mb_json_add_num(m, "mfu_measured_pct", x->mfu_measured_pct);
	if (isnan(x->mfu_measured_pct))
		cJSON_AddStringToObject(m, "mfu_measured_reason", x->measured_reason);
	if (isnan(x->measured_peak_tflops)) {
		cJSON_AddNullToObject(m, "measured_peak");
		return;
	}
	cJSON *p = cJSON_AddObjectToObject(m, "measured_peak");
	mb_json_add_num(p, "tflops", x->measured_peak_tflops);
	cJSON_AddStringToObject(p, "dtype", mb_dtype_name(x->dtype));
	cJSON_AddStringToObject(p, "kind", "measured");
	cJSON_AddStringToObject(p, "source", x->measured_source ? x->measured_source : "");
	cJSON_AddStringToObject(p, "time", x->measured_time ? x->measured_time : "");
}

static void add_cost_metrics(cJSON *c, const mb_case_result *r)
{
	if (!r->has_cost) {
		cJSON_AddNullToObject(c, "cost");
		cJSON_AddNullToObject(c, "metrics");
		return;
	}
	cJSON *o = cJSON_AddObjectToObject(c, "cost");
	mb_json_add_num(o, "flops", r->cost.flops);
	mb_json_add_num(o, "flops_palm", r->cost.flops_palm);
	mb_json_add_num(o, "tokens", r->cost.tokens);
	mb_json_add_num(o, "bytes", r->cost.bytes);
	mb_json_add_num(o, "comm_bytes", r->cost.comm_bytes);
	if (r->nsamples == 0) {
		cJSON_AddNullToObject(c, "metrics");
		return;
	}
	cJSON *m = cJSON_AddObjectToObject(c, "metrics");
	mb_json_add_num(m, "tflops", r->metrics.tflops);
	mb_json_add_num(m, "tflops_best", r->metrics.tflops_best);
	mb_json_add_num(m, "tflops_palm", r->metrics.tflops_palm);
	mb_json_add_num(m, "tokens_per_s", r->metrics.tokens_per_s);
	mb_json_add_num(m, "gbps", r->metrics.gbps);
	mb_json_add_num(m, "busbw_gbps", r->metrics.busbw_gbps);
	mb_json_add_num(m, "to_others_gbps", r->metrics.to_others_gbps);
	add_mfu(m, &r->metrics);
	add_other_mfu(m, &r->metrics);
}

static void add_check(cJSON *c, const mb_case_result *r)
{
	if (!r->has_check) {
		cJSON_AddNullToObject(c, "check");
		return;
	}
	const mb_check *k = &r->check;
	cJSON *o = cJSON_AddObjectToObject(c, "check");
	cJSON_AddBoolToObject(o, "passed", k->passed);
	cJSON_AddStringToObject(o, "method", k->method ? k->method : "");
	mb_json_add_num(o, "tolerance", k->tolerance);
	mb_json_add_num(o, "max_rel_err", k->max_rel_err);
	mb_json_add_num(o, "max_abs_err", k->max_abs_err);
	mb_json_add_num(o, "checked", (double)k->checked);
	mb_json_add_num(o, "mismatched", (double)k->mismatched);
	mb_json_add_num(o, "nonfinite", (double)k->nonfinite);
	cJSON_AddStringToObject(o, "detail", k->detail);
}

/* Who ran: launcher, nodes, and each rank's host and node (one entry a
 * rank: the file grows linearly with the ranks). */
static void add_world(cJSON *root, const mb_run *run)
{
	cJSON *w = cJSON_AddObjectToObject(root, "world");
	cJSON_AddNumberToObject(w, "size", run->world_size);
	cJSON_AddNumberToObject(w, "nodes", run->nodes > 0 ? run->nodes : 1);
	cJSON_AddNumberToObject(w, "ranks_per_node",
				run->ranks_per_node > 0 ? run->ranks_per_node : run->world_size);
	cJSON_AddStringToObject(w, "launcher", run->launcher ? run->launcher : "none");
	cJSON_AddStringToObject(w, "nodes_from", run->nodes_from ? run->nodes_from : "one process");
	cJSON *hosts = cJSON_AddArrayToObject(w, "hosts");
	cJSON *nodes = cJSON_AddArrayToObject(w, "node_of_rank");
	for (int i = 0; i < run->world_size; i++) {
		if (run->hosts)
			cJSON_AddItemToArray(hosts, cJSON_CreateString(run->hosts[i]));
		cJSON_AddItemToArray(nodes, cJSON_CreateNumber(run->node_of ? run->node_of[i] : 0));
	}
}

/* Several ranks: every rank's own median, and the slowest. */
static void add_ranks(cJSON *c, const mb_run *run, const mb_case_result *r)
{
	if (!r->rank_p50 || run->world_size < 2)
		return;
	cJSON *o = cJSON_AddObjectToObject(c, "ranks");
	cJSON *a = cJSON_AddArrayToObject(o, "p50_s");
	for (int i = 0; i < run->world_size; i++)
		mb_json_push_num(a, r->rank_p50[i]);
	cJSON_AddNumberToObject(o, "slowest_rank", r->slowest_rank);
	cJSON_AddStringToObject(o, "slowest_host",
				run->hosts ? run->hosts[r->slowest_rank] : "unknown");
}

/* Power over the timed iterations (SCHEMA.md "power"): energy per token
 * counts every rank's tokens of every timed iteration. */
static void add_power(cJSON *c, const mb_run *run, const mb_case_result *r)
{
	if (!r->has_power) {
		cJSON_AddNullToObject(c, "power");
		cJSON_AddStringToObject(c, "power_reason",
					r->power_reason[0] ? r->power_reason : "not measured");
		return;
	}
	const mb_power_reading *p = &r->power;
	cJSON *o = cJSON_AddObjectToObject(c, "power");
	cJSON_AddStringToObject(o, "source", p->source);
	cJSON_AddStringToObject(o, "scope", p->scope);
	mb_json_add_num(o, "nodes", r->power_nodes);
	mb_json_add_num(o, "samples", (double)p->samples);
	mb_json_add_num(o, "failed_samples", (double)p->failed);
	mb_json_add_num(o, "rate_hz", p->rate_hz);
	cJSON_AddBoolToObject(o, "insufficient", p->insufficient);
	mb_json_add_num(o, "duration_s", p->duration_s);
	mb_json_add_num(o, "max_gap_s", p->max_gap_s);
	mb_json_add_num(o, "avg_w", p->avg_w);
	mb_json_add_num(o, "peak_w", p->peak_w);
	if (r->power_nodes > 1)
		cJSON_AddStringToObject(o, "peak_w_is", "the sum of each node's peak: an upper "
							"bound on the job's peak");
	mb_json_add_num(o, "energy_j", p->energy_j);
	cJSON_AddStringToObject(o, "energy_from", p->from_counter ? "energy counter"
								 : "integrated power samples");
	const double tokens = r->has_cost ? r->cost.tokens * run->world_size * r->nsamples : 0.0;
	mb_json_add_num(o, "j_per_token", tokens > 0 ? p->energy_j / tokens : NAN);
	mb_json_add_num(o, "tokens_per_j", tokens > 0 && p->energy_j > 0 ? tokens / p->energy_j
									  : NAN);
	cJSON_AddStringToObject(o, "note", p->reason);
}

/* Bytes between ranks over the timed iterations: what the suite sent
 * (app) and what the interface counters saw (SCHEMA.md "interconnect"). */
static void add_interconnect(cJSON *c, const mb_run *run, const mb_case_result *r)
{
	cJSON *o = cJSON_AddObjectToObject(c, "interconnect");
	if (!o)
		return;
	const double n = (double)run->world_size * r->nsamples;
	if (r->has_cost && r->cost.comm_bytes > 0 && r->nsamples > 0) {
		cJSON *a = cJSON_AddObjectToObject(o, "app");
		mb_json_add_num(a, "ranks", run->world_size);
		mb_json_add_num(a, "iterations", r->nsamples);
		mb_json_add_num(a, "bytes_to_other_ranks", r->cost.comm_bytes * n);
		mb_json_add_num(a, "bytes_inside_node",
				(r->cost.comm_bytes - r->cost.comm_bytes_inter) * n);
		mb_json_add_num(a, "bytes_across_nodes", r->cost.comm_bytes_inter * n);
		/* bandwidth per link class: a rank's bytes of one iteration / p50 */
		const double p50 = r->stats.p50, inside = r->cost.comm_bytes - r->cost.comm_bytes_inter;
		mb_json_add_num(a, "inside_node_gbps", p50 > 0 ? inside / p50 / 1e9 : NAN);
		mb_json_add_num(a, "across_nodes_gbps",
				p50 > 0 ? r->cost.comm_bytes_inter / p50 / 1e9 : NAN);
	} else {
		cJSON_AddNullToObject(o, "app");
		cJSON_AddStringToObject(o, "app_reason",
					r->nsamples ? "the case sent nothing to other ranks"
						    : "no timed iterations");
	}
	if (r->net) {
		cJSON *k = cJSON_AddObjectToObject(o, "counters");
		mb_json_add_num(k, "nodes", r->net_nodes);
		mb_json_add_num(k, "tx_bytes", r->net_tx_bytes);
		mb_json_add_num(k, "rx_bytes", r->net_rx_bytes);
		cJSON_AddStringToObject(k, "note", r->net_note);
		cJSON *ifs = cJSON_Duplicate(r->net, 1);
		if (ifs)
			cJSON_AddItemToObject(k, "interfaces", ifs);
	} else {
		cJSON_AddNullToObject(o, "counters");
		cJSON_AddStringToObject(o, "counters_reason",
					r->net_reason[0] ? r->net_reason : "not measured");
	}
}

static cJSON *case_json(const mb_run *run, const mb_case_result *r)
{
	cJSON *c = cJSON_CreateObject();
	if (!c)
		return NULL;
	cJSON_AddStringToObject(c, "suite", r->suite->name);
	cJSON_AddStringToObject(c, "status", mb_case_status_name(r->status));
	cJSON_AddStringToObject(c, "reason", r->reason);
	add_params(c, &r->params);
	cJSON_AddStringToObject(c, "start_time", r->start_time);
	mb_json_add_num(c, "setup_s", r->setup_s);
	mb_json_add_num(c, "run_s", r->run_s);
	mb_json_add_num(c, "verify_s", r->verify_s);
	add_cost_metrics(c, r);
	add_stats(c, r);
	add_ranks(c, run, r);
	add_check(c, r);
	cJSON *info = cJSON_AddObjectToObject(c, "info");
	for (int i = 0; i < r->info.n; i++)
		mb_json_add_num(info, r->info.kv[i].key, r->info.kv[i].val);
	add_power(c, run, r);
	add_interconnect(c, run, r);
	return c;
}

static void add_borrowed(cJSON *root, const char *key, cJSON *obj)
{
	cJSON *copy = obj ? cJSON_Duplicate(obj, 1) : NULL;
	if (copy)
		cJSON_AddItemToObject(root, key, copy);
	else
		cJSON_AddNullToObject(root, key);
}

static void add_device(cJSON *root, const mb_run *run)
{
	cJSON *devs = cJSON_AddArrayToObject(root, "devices");
	if (!run->have_dev)
		return;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToArray(devs, d);
	cJSON_AddNumberToObject(d, "rank", run->world_rank);
	cJSON_AddStringToObject(d, "backend", run->backend);
	const mb_dev_info *i = &run->dev;
	cJSON_AddStringToObject(d, "name", i->name ? i->name : "");
	cJSON_AddStringToObject(d, "kind", i->kind ? i->kind : "");
	cJSON_AddStringToObject(d, "library", i->library ? i->library : "");
	cJSON_AddNumberToObject(d, "threads", i->threads);
	if (i->memory_bytes)
		mb_json_add_u64(d, "memory_bytes", i->memory_bytes);
	else
		cJSON_AddNullToObject(d, "memory_bytes");
	if (i->fault)
		cJSON_AddStringToObject(d, "fault_injected", i->fault);
	else
		cJSON_AddNullToObject(d, "fault_injected");
}

cJSON *mb_result_to_json(const mb_run *run)
{
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON_AddStringToObject(root, "schema", MB_SCHEMA);
	cJSON_AddStringToObject(root, "moebench_version", MB_VERSION);
	cJSON_AddStringToObject(root, "run_id", run->run_id);
	cJSON_AddStringToObject(root, "start_time", run->start_time);
	if (run->end_time[0])
		cJSON_AddStringToObject(root, "end_time", run->end_time);
	else
		cJSON_AddNullToObject(root, "end_time");
	cJSON_AddStringToObject(root, "status", mb_run_status_name(run->status));
	cJSON_AddStringToObject(root, "status_reason", run->status_reason);
	cJSON *argv = cJSON_AddArrayToObject(root, "argv");
	for (int i = 0; i < run->argc; i++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(run->argv[i]));
	add_borrowed(root, "environment", run->environment);
	add_borrowed(root, "build", run->build);
	add_borrowed(root, "system", run->system);

	add_world(root, run);
	add_device(root, run);

	cJSON *cfg = cJSON_AddObjectToObject(root, "config");
	cJSON_AddStringToObject(cfg, "backend", run->backend);
	if (run->model)
		cJSON_AddStringToObject(cfg, "model", run->model);
	else
		cJSON_AddNullToObject(cfg, "model");
	cJSON_AddStringToObject(cfg, "attention", run->model_approximated ? "approximated" : "exact");
	cJSON_AddStringToObject(cfg, "size", run->size ? run->size : "");
	if (run->replay_of)
		cJSON_AddStringToObject(cfg, "replay_of", run->replay_of);
	else
		cJSON_AddNullToObject(cfg, "replay_of");
	if (run->calibration) {
		cJSON_AddStringToObject(cfg, "calibration", run->calibration);
	} else {
		cJSON_AddNullToObject(cfg, "calibration");
		cJSON_AddStringToObject(cfg, "calibration_reason",
					run->calibration_reason ? run->calibration_reason : "");
	}
	mb_json_add_u64(cfg, "seed", run->seed);
	cJSON_AddNumberToObject(cfg, "warmup", run->warmup);
	cJSON_AddNumberToObject(cfg, "iters", run->iters);

	cJSON *res = cJSON_AddArrayToObject(root, "results");
	for (int i = 0; i < run->ncases; i++) {
		cJSON *c = case_json(run, &run->cases[i]);
		if (!c) {
			cJSON_Delete(root);
			return NULL;
		}
		cJSON_AddItemToArray(res, c);
	}
	return root;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* A path that exists and is not a regular file (/dev/null, /dev/stdout, a
 * FIFO) is written in place: renaming a temporary file over it would
 * replace the device node itself. */
static int write_in_place(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return mb_err(MB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	int rc = write_all(fd, text, len);
	int e = errno;
	close(fd);
	return rc ? mb_err(MB_ERR_IO, "cannot write %s: %s", path, strerror(e)) : 0;
}

int mb_write_atomic(const char *path, const char *text, size_t len)
{
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode))
			return mb_err(MB_ERR_IO, "cannot write %s: it is a directory", path);
		return write_in_place(path, text, len);
	}
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
		return mb_err(MB_ERR_IO, "path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return mb_err(MB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
	if (write_all(fd, text, len) || fsync(fd)) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return mb_err(MB_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
	}
	if (close(fd) || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		return mb_err(MB_ERR_IO, "cannot replace %s: %s", path, strerror(e));
	}
	return 0;
}

int mb_result_write(const mb_run *run, const char *path)
{
	cJSON *root = mb_result_to_json(run);
	char *text = root ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return mb_err(MB_ERR_NOMEM, "out of memory formatting %s", path);
	size_t len = strlen(text);
	text[len] = '\0';
	int rc = mb_write_atomic(path, text, len);
	cJSON_free(text);
	return rc;
}

int mb_json_load(const char *path, size_t limit, cJSON **out)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return mb_err(MB_ERR_USAGE, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fclose(f);
		return mb_err(MB_ERR_USAGE, "%s is not a regular file", path);
	}
	if ((uint64_t)st.st_size > limit) {
		fclose(f);
		return mb_err(MB_ERR_USAGE, "%s is larger than %zu MiB", path, limit >> 20);
	}
	size_t len = (size_t)st.st_size;
	char *buf = malloc(len + 1);
	if (!buf) {
		fclose(f);
		return mb_err(MB_ERR_NOMEM, "out of memory reading %s", path);
	}
	size_t got = fread(buf, 1, len, f);
	fclose(f);
	if (got != len) {
		free(buf);
		return mb_err(MB_ERR_IO, "short read on %s", path);
	}
	buf[len] = '\0';
	cJSON *root = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return mb_err(MB_ERR_USAGE, "%s is not a JSON object", path);
	}
	*out = root;
	return 0;
}

int mb_result_load(const char *path, cJSON **out)
{
	cJSON *root;
	int rc = mb_json_load(path, LOAD_LIMIT, &root);
	*out = NULL;
	if (rc)
		return rc;
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (!cJSON_IsString(schema) || strcmp(schema->valuestring, MB_SCHEMA) != 0) {
		cJSON_Delete(root);
		return mb_err(MB_ERR_USAGE, "%s is not a %s file", path, MB_SCHEMA);
	}
	*out = root;
	return 0;
}
