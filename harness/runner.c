/* runner.c: case expansion and the timed loop (runner.h, suite.h). */
#include "mb.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../hardware/net/net.h"
#include "../hardware/power/power.h"
#include "cost.h"
#include "runner.h"
#include "watchdog.h"

static volatile sig_atomic_t stop_signal;

/* Last words for a SIGTERM with several ranks (signal_fails): the launcher
 * sends it to every rank when one dies and SIGKILL a second later, which on
 * a loaded machine may leave no time for any thread to be scheduled. So
 * rank 0's handler itself writes the file as prerendered at the last save
 * (prerender below), with async-signal-safe calls only; the watchdog or the
 * main thread then replaces it with the exact reason if they get the time.
 * The texts are a ring of three, and one is freed only two saves after it
 * was current, so a handler on any thread never reads a freed one. */
static char *lw_ring[3];
static _Atomic int lw_cur = -1;
static char lw_path[4200], lw_tmp[4200];
static volatile sig_atomic_t lw_on;

static void lw_write(void)
{
	const int i = atomic_load(&lw_cur);
	const char *text = i >= 0 ? lw_ring[i] : NULL;
	if (!text || !lw_on)
		return;
	const int fd = open(lw_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		const ssize_t n = write(fd, text + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off == len && fsync(fd) == 0 && close(fd) == 0)
		rename(lw_tmp, lw_path);
	else
		close(fd), unlink(lw_tmp);
}

void mb_runner_interrupt(int signo)
{
	const int saved = errno;
	stop_signal = signo;
	if (signo == SIGTERM)
		lw_write();
	errno = saved;
}

static int signalled(void) { return stop_signal; }

/* The result file and run->ncases: the main thread appends and saves under
 * it, the watchdog writes the last words under it. */
static pthread_mutex_t save_mu = PTHREAD_MUTEX_INITIALIZER;

/* With no --timeout: setup and the check may take this long... */
#define STEP_TIMEOUT_S 1800.0
/* ...and a timed iteration the larger of a minute and 20 times the slowest
 * warm-up iteration (or STEP_TIMEOUT_S without warm-up). */
#define ITER_TIMEOUT_MIN_S 60.0
#define ITER_TIMEOUT_FACTOR 20.0

/* ---- expansion ---------------------------------------------------------- */

typedef struct sweep {
	int param;
	int n;
	double vals[MB_MAX_SWEEP];
} sweep;

static int split_kv(const char *kv, char *key, size_t keyn, const char **val)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv || (size_t)(eq - kv) >= keyn)
		return mb_err(MB_ERR_USAGE, "'%s' is not key=value", kv);
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	*val = eq + 1;
	return 0;
}

/* A key must name a parameter of at least one selected suite. */
static int check_keys(const mb_run_opts *o)
{
	for (int k = 0; k < o->nkv; k++) {
		char key[64];
		const char *val;
		int rc = split_kv(o->kv[k], key, sizeof key, &val);
		if (rc)
			return rc;
		int found = 0;
		for (int s = 0; s < o->nsuites && !found; s++)
			for (int i = 0; i < o->suites[s]->nparams; i++)
				found |= strcmp(o->suites[s]->params[i].name, key) == 0;
		if (!found) {
			char names[512] = "";
			const mb_suite *su = o->suites[0];
			for (int i = 0; i < su->nparams; i++) {
				strncat(names, su->params[i].name, sizeof names - strlen(names) - 3);
				if (i + 1 < su->nparams)
					strncat(names, ", ", sizeof names - strlen(names) - 1);
			}
			return mb_err(MB_ERR_USAGE, "unknown parameter '%s' (%s accepts: %s)", key,
				      su->name, names);
		}
	}
	return 0;
}

static int expand_suite(const mb_run_opts *o, const mb_suite *su, mb_case_spec *out, int max,
			int *count)
{
	mb_params base;
	int rc = mb_params_init(&base, su->params, su->nparams);
	if (!rc && su->preset)
		rc = su->preset(o->model, o->size, &base);
	if (rc)
		return rc;

	sweep *sw = calloc((size_t)(o->nkv ? o->nkv : 1), sizeof *sw);
	if (!sw)
		return mb_err(MB_ERR_NOMEM, "out of memory expanding cases");
	int nsw = 0;
	for (int k = 0; k < o->nkv && !rc; k++) {
		char key[64];
		const char *val;
		rc = split_kv(o->kv[k], key, sizeof key, &val);
		int i = rc ? -1 : mb_params_find(&base, key);
		if (i < 0)
			continue; /* belongs to another selected suite */
		sw[nsw].param = i;
		rc = mb_param_parse_sweep(&su->params[i], val, sw[nsw].vals, MB_MAX_SWEEP, &sw[nsw].n);
		nsw++;
	}

	/* The cross product of every swept key, first key slowest. */
	int idx[64] = {0};
	while (!rc) {
		if (*count >= max) {
			rc = mb_err(MB_ERR_USAGE, "more than %d cases; narrow the sweeps", max);
			break;
		}
		mb_case_spec *c = &out[*count];
		c->suite = su;
		c->params = base;
		for (int s = 0; s < nsw; s++) {
			c->params.v[sw[s].param] = sw[s].vals[idx[s]];
			c->params.set_by[sw[s].param] = MB_SRC_USER;
		}
		if (su->validate)
			rc = su->validate(&c->params);
		if (rc)
			break;
		(*count)++;
		int s = nsw - 1;
		while (s >= 0 && ++idx[s] == sw[s].n)
			idx[s--] = 0;
		if (s < 0)
			break;
	}
	free(sw);
	return rc;
}

int mb_cases_expand(const mb_run_opts *o, mb_case_spec *out, int max, int *count)
{
	*count = 0;
	if (o->nkv > 64)
		return mb_err(MB_ERR_USAGE, "more than 64 key=value parameters");
	int rc = check_keys(o);
	for (int s = 0; s < o->nsuites && !rc; s++)
		rc = expand_suite(o, o->suites[s], out, max, count);
	return rc;
}

/* ---- the timed loop ------------------------------------------------------ */

static void print_header(void)
{
	printf("%-10s %-8s %10s %9s %11s %9s %7s  %s\n", "suite", "status", "p50_ms", "TFLOP/s",
	       "tokens/s", "busbw_GB/s", "cv_pct", "params");
	fflush(stdout);
}

static void print_metric(double v, const char *fmt, int width)
{
	putchar(' ');
	if (isfinite(v))
		printf(fmt, v);
	else
		printf("%*s", width, "-");
}

static void print_row(const mb_case_result *r)
{
	char params[256] = "", buf[64];
	for (int i = 0; i < r->params.n; i++) {
		if (r->params.set_by[i] == MB_SRC_DEFAULT && r->params.defs[i].type == MB_PT_ENUM)
			continue;
		mb_param_format(&r->params, i, buf, sizeof buf);
		size_t used = strlen(params);
		snprintf(params + used, sizeof params - used, "%s%s=%s", used ? " " : "",
			 r->params.defs[i].name, buf);
	}
	printf("%-10s %-8s", r->suite->name, mb_case_status_name(r->status));
	if (r->nsamples > 0) {
		printf(" %10.3f", r->stats.p50 * 1e3);
		print_metric(r->metrics.tflops, "%9.3f", 9);
		print_metric(r->metrics.tokens_per_s, "%11.0f", 11);
		print_metric(r->metrics.busbw_gbps, "%10.3f", 10);
		printf(" %7.2f", r->stats.cv_pct);
	} else {
		printf(" %10s %9s %11s %10s %7s", "-", "-", "-", "-", "-");
	}
	printf("  %s\n", params);
	if (r->status != MB_CASE_OK)
		printf("  %s\n", r->reason);
	fflush(stdout);
}

static int interrupted(void) { return stop_signal != 0; }

static const mb_world solo = {
	.rank = 0, .size = 1, .launcher = "none", .nodes = 1, .local_size = 1};

/* Launch and sync n iterations; samples (if given) get one time each. With
 * several ranks every iteration starts after a barrier (untimed), so each
 * sample is one iteration on every rank; the runner then keeps, per
 * iteration, the slowest rank's time. Each iteration, barrier included,
 * must end within limit seconds (the watchdog); *slowest gets the longest. */
static int iterate(const mb_suite *su, void *st, const mb_backend *be, mb_dev *dev, int n,
		   double *samples, const mb_world *w, const char *label, double limit,
		   double *slowest)
{
	for (int i = 0; i < n; i++) {
		if (interrupted())
			return 1;
		mb_watchdog_arm(label, samples ? "timed iteration" : "warm-up iteration", i, limit);
		const uint64_t t = mb_now_ns();
		if (w->size > 1)
			mb_world_barrier(w);
		uint64_t t0 = mb_now_ns();
		int rc = su->run(st);
		if (!rc)
			rc = mb_dev_sync(be, dev);
		uint64_t t1 = mb_now_ns();
		mb_watchdog_disarm();
		if (rc)
			return rc;
		if (samples)
			samples[i] = (double)(t1 - t0) * 1e-9;
		if (slowest && (double)(t1 - t) * 1e-9 > *slowest)
			*slowest = (double)(t1 - t) * 1e-9;
	}
	return 0;
}

static void set_status(mb_case_result *r, mb_case_status s, const char *what, int rc)
{
	r->status = s;
	snprintf(r->reason, sizeof r->reason, "%s%s%s", what, *mb_errmsg() ? ": " : "",
		 rc ? mb_errmsg() : "");
}

/* 1 if any rank says bad (every rank must call it at the same point). */
static int any_rank(const mb_world *w, int bad)
{
	double x = bad ? 1 : 0;
	mb_world_max(w, &x, 1);
	return x > 0;
}

/* Combine the ranks' checks: counts summed, worst errors kept; a rank's
 * detail is kept where that rank failed. */
static void combine_checks(const mb_world *w, mb_check *c)
{
	if (w->size <= 1)
		return;
	double sums[4] = {(double)c->checked, (double)c->mismatched, (double)c->nonfinite,
			  c->passed ? 0 : 1};
	double worst[2] = {c->max_rel_err, c->max_abs_err};
	mb_world_sum(w, sums, 4);
	mb_world_max(w, worst, 2);
	c->checked = (int64_t)sums[0];
	c->mismatched = (int64_t)sums[1];
	c->nonfinite = (int64_t)sums[2];
	if (sums[3] > 0 && c->passed) {
		c->passed = 0;
		snprintf(c->detail, sizeof c->detail, "the check failed on %.0f of %d ranks",
			 sums[3], w->size);
	}
	c->max_rel_err = worst[0];
	c->max_abs_err = worst[1];
}

/* ---- telemetry over the timed iterations ----
 *
 * Each node's first rank (local rank 0) samples power and snapshots the
 * interface counters, which are node-wide; the other ranks of the node
 * would only count the same watts and bytes again. At the end every rank
 * joins one sum, so rank 0 gets the totals over the nodes. */

typedef struct telemetry {
	int lead;           /* this rank samples for its node */
	int power_on;       /* a power region is open */
	mb_net_snap *net0;  /* counters at the start, or NULL */
} telemetry;

/* The counters are read between barriers, so that every byte of the
 * region has been received when they are read and none of the warm-up's is
 * still in flight (untimed: the samples are taken inside). */
static void telemetry_begin(const mb_run_opts *o, const mb_world *w, telemetry *t)
{
	memset(t, 0, sizeof *t);
	t->lead = w->local_rank == 0;
	mb_world_barrier(w);
	if (!t->lead)
		return;
	if (mb_net_snapshot(o->sysfs_root, &t->net0))
		t->net0 = NULL;
	t->power_on = o->power && mb_power_start(o->power) == 0;
}

/* A number of a tree we built: a cJSON number or exact raw text
 * (mb_json_add_num); 0 for null (an unknown delta). */
static double tree_num(const cJSON *x)
{
	if (cJSON_IsNumber(x))
		return x->valuedouble;
	return cJSON_IsRaw(x) && x->valuestring ? strtod(x->valuestring, NULL) : 0.0;
}

/* The listed interfaces' bytes (the delta array's tx_bytes, rx_bytes). */
static void net_sum(const cJSON *ifs, double *tx, double *rx)
{
	const cJSON *it;
	*tx = *rx = 0.0;
	cJSON_ArrayForEach(it, ifs) {
		*tx += tree_num(cJSON_GetObjectItemCaseSensitive(it, "tx_bytes"));
		*rx += tree_num(cJSON_GetObjectItemCaseSensitive(it, "rx_bytes"));
	}
}

static void telemetry_end(const mb_run_opts *o, const mb_world *w, telemetry *t,
			  mb_case_result *r)
{
	mb_power_reading pw = {0};
	int pw_ok = t->power_on && mb_power_stop(o->power, &pw) == 0 && pw.valid;
	mb_net_snap *net1 = NULL;
	cJSON *ifs = NULL;
	double tx = 0.0, rx = 0.0;
	mb_world_barrier(w);
	if (t->lead && t->net0 && mb_net_snapshot(o->sysfs_root, &net1) == 0) {
		ifs = mb_net_delta_json(t->net0, net1, o->net_all);
		net_sum(ifs, &tx, &rx);
		mb_strlcpy(r->net_note, mb_net_snap_note(net1), sizeof r->net_note);
	}
	/* sums over the nodes: energy, average and peak watts, nodes that had
	 * a reading, nodes that did not; counter bytes, nodes with counters */
	double v[8] = {pw_ok ? pw.energy_j : 0, pw_ok ? pw.avg_w : 0, pw_ok ? pw.peak_w : 0,
		       t->lead && pw_ok, t->lead && !pw_ok, tx, rx, t->lead && ifs};
	mb_world_sum(w, v, 8);
	if (pw_ok && v[4] == 0) {
		r->has_power = 1;
		r->power = pw;
		r->power.energy_j = v[0];
		r->power.avg_w = v[1];
		r->power.peak_w = v[2];
		r->power_nodes = (int)v[3];
	} else if (!o->power) {
		mb_strlcpy(r->power_reason, o->power_off ? o->power_off : "power sampling is off",
			   sizeof r->power_reason);
	} else if (t->power_on && !pw.valid) {
		mb_strlcpy(r->power_reason, pw.reason, sizeof r->power_reason);
	} else {
		snprintf(r->power_reason, sizeof r->power_reason,
			 "no power reading on %.0f of %.0f nodes", v[4], v[3] + v[4]);
	}
	if (ifs) {
		r->net = ifs;
		r->net_tx_bytes = v[5];
		r->net_rx_bytes = v[6];
		r->net_nodes = (int)v[7];
	} else {
		snprintf(r->net_reason, sizeof r->net_reason, "no interface counters could be read%s",
			 t->lead ? "" : " on rank 0's node");
	}
	mb_net_snap_free(t->net0);
	mb_net_snap_free(net1);
	t->net0 = NULL;
}

/* Several ranks: each rank's median over its own samples, known to all
 * (a sum of one-hot vectors), and the slowest rank. */
static void rank_medians(const mb_world *w, mb_case_result *r, double *scratch)
{
	if (w->size < 2)
		return;
	/* Every rank must join the sum, so a rank that cannot hold a double per
	 * rank cannot go on: it stops with a message rather than hang the rest. */
	r->rank_p50 = calloc((size_t)w->size, sizeof *r->rank_p50);
	if (!r->rank_p50) {
		fprintf(stderr, "moebench: rank %d: out of memory for %d rank medians\n", w->rank,
			w->size);
		abort();
	}
	mb_stats own;
	mb_stats_compute(r->samples, r->nsamples, scratch, &own);
	r->rank_p50[w->rank] = own.p50;
	mb_world_sum(w, r->rank_p50, w->size);
	for (int i = 1; i < w->size; i++)
		if (r->rank_p50[i] > r->rank_p50[r->slowest_rank])
			r->slowest_rank = i;
}

static int ctx_split(const mb_case_ctx *ctx, int color, int key, mb_group *out)
{
	return mb_world_split(ctx->world_handle, color, key, out);
}

/* Run one case; returns 1 if it was interrupted (r is then not kept). */
static int run_case(const mb_run_opts *o, mb_dev *dev, const mb_case_spec *cs, mb_case_result *r,
		    double *scratch, int index)
{
	const mb_suite *su = cs->suite;
	const mb_world *w = o->world ? o->world : &solo;
	mb_case_ctx ctx = {.be = o->be, .dev = dev, .params = &r->params, .seed = o->seed,
			   .world = mb_world_group(w), .node_of = w->node_of,
			   .split = w->mpi ? ctx_split : NULL, .group_free = mb_world_group_free,
			   .world_handle = w};
	void *st = NULL;
	int cut = 0;
	char label[64];
	snprintf(label, sizeof label, "%s (case %d)", su->name, index);
	const double step_limit = o->timeout_s > 0 ? o->timeout_s : STEP_TIMEOUT_S;
	mb_utc_now(r->start_time, sizeof r->start_time);
	mb_err_clear();
	r->has_cost = su->cost(&r->params, &r->cost) == 0;

	double t = mb_now_s();
	mb_watchdog_arm(label, "setup", -1, step_limit);
	int rc = su->setup(&ctx, &st);
	r->setup_s = mb_now_s() - t;
	if (any_rank(w, rc != 0)) {
		if (!rc)
			mb_err(rc = MB_ERR_DEVICE, "setup failed on another rank");
		set_status(r, rc == MB_ERR_UNSUPPORTED ? MB_CASE_SKIPPED : MB_CASE_ERROR, "setup", rc);
		goto out;
	}
	if (su->case_cost)
		r->has_cost = su->case_cost(st, &r->cost) == 0;
	t = mb_now_s();
	mb_watchdog_disarm();
	double warm = 0.0, limit = step_limit;
	rc = iterate(su, st, o->be, dev, o->warmup, NULL, w, label, step_limit, &warm);
	if (!rc) {
		if (o->timeout_s > 0)
			limit = o->timeout_s;
		else if (o->warmup > 0)
			limit = fmax(ITER_TIMEOUT_MIN_S, ITER_TIMEOUT_FACTOR * warm);
		telemetry tm;
		mb_watchdog_arm(label, "telemetry", -1, step_limit); /* its barrier */
		telemetry_begin(o, w, &tm);
		rc = iterate(su, st, o->be, dev, o->iters, r->samples, w, label, limit, NULL);
		mb_watchdog_arm(label, "check", -1, step_limit); /* until the case ends */
		telemetry_end(o, w, &tm, r);
	}
	r->run_s = mb_now_s() - t;
	if (rc == 1) {
		cut = 1;
		goto out;
	}
	if (rc) {
		set_status(r, MB_CASE_ERROR, "run", rc);
		goto out;
	}
	r->nsamples = o->iters;
	rank_medians(w, r, scratch);
	mb_world_max(w, r->samples, r->nsamples);
	mb_stats_compute(r->samples, r->nsamples, scratch, &r->stats);
	mb_dev_info di;
	o->be->describe(dev, &di);
	if (r->has_cost)
		mb_metrics_derive(&r->cost, &r->stats, w->size, &di, mb_case_dtype(&r->params),
				  &r->metrics);
	if (r->has_cost)
		mb_metrics_peaks(o->peaks, &r->metrics);

	if (strcmp(di.kind, "none") == 0) {
		r->status = MB_CASE_INVALID;
		snprintf(r->reason, sizeof r->reason,
			 "the %s backend computes nothing, so its outputs cannot be valid; its "
			 "times measure the harness only",
			 o->be->name);
		goto out;
	}
	t = mb_now_s();
	rc = su->verify(st, &r->check);
	r->verify_s = mb_now_s() - t;
	r->has_check = rc == 0;
	if (any_rank(w, rc != 0) && !rc)
		mb_err(rc = MB_ERR_DEVICE, "verify failed on another rank");
	if (!rc)
		combine_checks(w, &r->check);
	if (rc)
		set_status(r, MB_CASE_ERROR, "verify", rc);
	else if (!r->check.passed)
		snprintf(r->reason, sizeof r->reason, "check failed: %s", r->check.detail),
			r->status = MB_CASE_INVALID;
	else
		r->status = MB_CASE_OK;
out:
	if (st && su->info)
		su->info(st, &r->info);
	if (su->teardown)
		su->teardown(st);
	mb_watchdog_disarm();
	return cut;
}

static void finish(mb_run *run, mb_run_status s, const char *why)
{
	run->status = s;
	mb_strlcpy(run->status_reason, why, sizeof run->status_reason);
	mb_utc_now(run->end_time, sizeof run->end_time);
}

/* Rewrite the result file; ranks other than 0 pass NULL and write nothing. */
/* The file as it would read if the run failed now: rendered at every save
 * (under save_mu), so that the watchdog, which may have well under a second
 * before the launcher's SIGKILL on a loaded machine, first writes this and
 * only then tries the exact reason. */
static char *last_words;

#define LAST_WORDS "stopped before the run ended, by the watchdog or a signal: a rank died or " \
		   "stalled, or the job was cancelled (the launcher's and the ranks' messages " \
		   "say which)"

static void prerender(const mb_run *run)
{
	mb_run tmp = *run;
	tmp.status = MB_RUN_FAILED;
	mb_strlcpy(tmp.status_reason, LAST_WORDS, sizeof tmp.status_reason);
	mb_utc_now(tmp.end_time, sizeof tmp.end_time);
	cJSON *root = mb_result_to_json(&tmp);
	char *text = root ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text) /* the previous one stays */
		return;
	const int next = (atomic_load(&lw_cur) + 1) % 3;
	cJSON_free(lw_ring[next]);
	lw_ring[next] = text;
	atomic_store(&lw_cur, next);
	last_words = text;
}

static int save(const mb_run *run, const char *path)
{
	if (!path)
		return 0;
	int rc = mb_result_write(run, path);
	if (rc)
		fprintf(stderr, "moebench: %s\n", mb_errmsg());
	else if (run->status == MB_RUN_INTERRUPTED) /* still running */
		prerender(run);
	return rc;
}

/* The watchdog's last words (watchdog.h): rank 0 marks its file and every
 * rank ends. A missed deadline is a failure; a signal as signal_fails says. */
typedef struct fire_ctx {
	mb_run *run;
	const char *path;
	int size;
} fire_ctx;

/* A stop signal is an interruption, except SIGTERM with several ranks: a
 * launcher sends it to every rank when one dies, and a cancelled job looks
 * the same, so the run is marked failed and the reason says both. */
#define FAIL_NOTE ": with several ranks the launcher sends SIGTERM when a rank dies (or " \
		  "the job is cancelled; its messages say which)"

static int signal_fails(int sig, int size) { return sig == SIGTERM && size > 1; }

static void fire(void *ctx, const char *why, int sig)
{
	fire_ctx *fc = ctx;
	fprintf(stderr, "moebench: %s\n", why);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	if (fc->path && pthread_mutex_timedlock(&save_mu, &until) == 0) {
		if (last_words && mb_write_atomic(fc->path, last_words, strlen(last_words)))
			fprintf(stderr, "moebench: could not write %s: %s\n", fc->path, mb_errmsg());
		finish(fc->run, sig && !signal_fails(sig, fc->size) ? MB_RUN_INTERRUPTED
								    : MB_RUN_FAILED, why);
		if (mb_result_write(fc->run, fc->path))
			fprintf(stderr, "moebench: could not write %s: %s\n", fc->path, mb_errmsg());
	}
	fflush(NULL);
	_exit(sig ? 128 + sig : MB_EXIT_TIMEOUT);
}

int mb_runner_run(const mb_run_opts *o, mb_dev *dev, const mb_case_spec *cases, int ncases,
		  mb_run *run, const char *path)
{
	run->cases = calloc((size_t)ncases, sizeof *run->cases);
	double *scratch = malloc((size_t)(o->iters > 0 ? o->iters : 1) * sizeof *scratch);
	if (!run->cases || !scratch) {
		free(scratch);
		fprintf(stderr, "moebench: out of memory for %d cases\n", ncases);
		return MB_EXIT_FAIL;
	}
	finish(run, MB_RUN_INTERRUPTED,
	       "the run had not finished when this file was written (in progress, or killed)");
	run->end_time[0] = '\0';
	if (save(run, path))
		return MB_EXIT_FAIL;
	if (!o->quiet)
		print_header();

	const mb_world *w = o->world ? o->world : &solo;
	fire_ctx fc = {.run = run, .path = path, .size = w->size};
	if (path && w->size > 1 &&
	    (size_t)snprintf(lw_path, sizeof lw_path, "%s", path) < sizeof lw_path &&
	    (size_t)snprintf(lw_tmp, sizeof lw_tmp, "%s.lw.%ld", path, (long)getpid()) <
		    sizeof lw_tmp)
		lw_on = 1;
	const mb_watchdog_cfg wcfg = {.rank = w->rank, .host = w->host, .signalled = signalled,
				      .fire = fire, .ctx = &fc};
	if (mb_watchdog_start(&wcfg))
		fprintf(stderr, "moebench: %s; running without one\n", mb_errmsg());
	int bad = 0;
	for (int i = 0; i < ncases; i++) {
		mb_case_result *r = &run->cases[run->ncases];
		r->suite = cases[i].suite;
		r->params = cases[i].params;
		r->samples = calloc((size_t)(o->iters > 0 ? o->iters : 1), sizeof *r->samples);
		if (!r->samples) {
			finish(run, MB_RUN_FAILED, "out of memory for samples");
			break;
		}
		if (run_case(o, dev, &cases[i], r, scratch, i)) {
			free(r->samples);
			free(r->rank_p50);
			cJSON_Delete(r->net);
			memset(r, 0, sizeof *r);
			break;
		}
		pthread_mutex_lock(&save_mu);
		run->ncases++;
		const int failed = stop_signal || (i + 1 < ncases && save(run, path));
		pthread_mutex_unlock(&save_mu);
		bad |= r->status == MB_CASE_INVALID || r->status == MB_CASE_ERROR;
		if (!o->quiet)
			print_row(r);
		if (failed)
			break;
	}
	free(scratch);
	mb_watchdog_stop();

	int code = bad ? MB_EXIT_FAIL : MB_EXIT_OK;
	if (stop_signal) {
		char why[200];
		snprintf(why, sizeof why, "stopped by signal %d (%s)%s", (int)stop_signal,
			 stop_signal == SIGINT ? "SIGINT" : stop_signal == SIGTERM ? "SIGTERM" : "?",
			 signal_fails(stop_signal, w->size) ? FAIL_NOTE : "");
		finish(run, signal_fails(stop_signal, w->size) ? MB_RUN_FAILED : MB_RUN_INTERRUPTED,
		       why);
		code = 128 + stop_signal;
	} else if (run->status != MB_RUN_FAILED) {
		finish(run, MB_RUN_COMPLETE, "");
	}
	pthread_mutex_lock(&save_mu);
	lw_on = 0;
	const int unsaved = save(run, path);
	pthread_mutex_unlock(&save_mu);
	return unsaved ? MB_EXIT_FAIL : code;
}

void mb_run_free(mb_run *run)
{
	for (int i = 0; i < run->ncases; i++) {
		free(run->cases[i].samples);
		free(run->cases[i].rank_p50);
		cJSON_Delete(run->cases[i].net);
	}
	free(run->cases);
	run->cases = NULL;
	run->ncases = 0;
}
