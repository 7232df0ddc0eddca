/* runner.c: case expansion and the timed loop (runner.h, suite.h). */
#include "mb.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "runner.h"

static volatile sig_atomic_t stop_signal;

void mb_runner_interrupt(int signo) { stop_signal = signo; }

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

static const mb_world solo = {.rank = 0, .size = 1, .launcher = "none"};

/* Launch and sync n iterations; samples (if given) get one time each. With
 * several ranks every iteration starts after a barrier (untimed), so each
 * sample is one iteration on every rank; the runner then keeps, per
 * iteration, the slowest rank's time. */
static int iterate(const mb_suite *su, void *st, const mb_backend *be, mb_dev *dev, int n,
		   double *samples, const mb_world *w)
{
	for (int i = 0; i < n; i++) {
		if (interrupted())
			return 1;
		if (w->size > 1)
			mb_world_barrier(w);
		uint64_t t0 = mb_now_ns();
		int rc = su->run(st);
		if (!rc)
			rc = mb_dev_sync(be, dev);
		uint64_t t1 = mb_now_ns();
		if (rc)
			return rc;
		if (samples)
			samples[i] = (double)(t1 - t0) * 1e-9;
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

/* Run one case; returns 1 if it was interrupted (r is then not kept). */
static int run_case(const mb_run_opts *o, mb_dev *dev, const mb_case_spec *cs, mb_case_result *r,
		    double *scratch)
{
	const mb_suite *su = cs->suite;
	const mb_world *w = o->world ? o->world : &solo;
	mb_case_ctx ctx = {.be = o->be, .dev = dev, .params = &r->params, .seed = o->seed,
			   .world = mb_world_group(w)};
	void *st = NULL;
	int cut = 0;
	mb_utc_now(r->start_time, sizeof r->start_time);
	mb_err_clear();
	r->has_cost = su->cost(&r->params, &r->cost) == 0;

	double t = mb_now_s();
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
	rc = iterate(su, st, o->be, dev, o->warmup, NULL, w);
	if (!rc)
		rc = iterate(su, st, o->be, dev, o->iters, r->samples, w);
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
	mb_world_max(w, r->samples, r->nsamples);
	mb_stats_compute(r->samples, r->nsamples, scratch, &r->stats);
	mb_dev_info di;
	o->be->describe(dev, &di);
	if (r->has_cost)
		mb_metrics_derive(&r->cost, &r->stats, w->size, &di, mb_case_dtype(&r->params),
				  &r->metrics);

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
	return cut;
}

static void finish(mb_run *run, mb_run_status s, const char *why)
{
	run->status = s;
	mb_strlcpy(run->status_reason, why, sizeof run->status_reason);
	mb_utc_now(run->end_time, sizeof run->end_time);
}

/* Rewrite the result file; ranks other than 0 pass NULL and write nothing. */
static int save(const mb_run *run, const char *path)
{
	if (!path)
		return 0;
	int rc = mb_result_write(run, path);
	if (rc)
		fprintf(stderr, "moebench: %s\n", mb_errmsg());
	return rc;
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
		if (run_case(o, dev, &cases[i], r, scratch)) {
			free(r->samples);
			memset(r, 0, sizeof *r);
			break;
		}
		run->ncases++;
		bad |= r->status == MB_CASE_INVALID || r->status == MB_CASE_ERROR;
		if (!o->quiet)
			print_row(r);
		if (stop_signal || (i + 1 < ncases && save(run, path)))
			break;
	}
	free(scratch);

	int code = bad ? MB_EXIT_FAIL : MB_EXIT_OK;
	if (stop_signal) {
		char why[64];
		snprintf(why, sizeof why, "stopped by signal %d (%s)", (int)stop_signal,
			 stop_signal == SIGINT ? "SIGINT" : stop_signal == SIGTERM ? "SIGTERM" : "?");
		finish(run, MB_RUN_INTERRUPTED, why);
		code = 128 + stop_signal;
	} else if (run->status != MB_RUN_FAILED) {
		finish(run, MB_RUN_COMPLETE, "");
	}
	if (save(run, path))
		return MB_EXIT_FAIL;
	return code;
}

void mb_run_free(mb_run *run)
{
	for (int i = 0; i < run->ncases; i++)
		free(run->cases[i].samples);
	free(run->cases);
	run->cases = NULL;
	run->ncases = 0;
}
