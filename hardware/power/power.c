/* power.c: the power sampler: source choice, the sampling thread and the
 * reading of a region (units, rules and priority order in power.h). */
#include "harness/mb.h"
#include "power.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "power_int.h"

#define PW_DEFAULT_HZ 10.0
#define PW_MAX_HZ 1000.0
#define PW_GAP_S 2.0 /* a power source with a longer stretch unread is insufficient */

/* The order of choice (power.h says why). */
static const mb_pw_ops *const pw_order[] = { &mb_pw_cmd, &mb_pw_nvml, &mb_pw_dcmi, &mb_pw_rapl,
					     &mb_pw_hwmon };
#define PW_NSRC MB_ARRAY_LEN(pw_order)

struct pw_probe {
	int available;
	mb_pw_info info;
	char why[192];
};

/* One reading of the source, stamped at the middle of the read. */
struct pw_sample {
	double t, v;
	int ok;
	char why[160];
};

/* The region being measured. Written by the caller before the region is
 * published and after it is closed, by the thread (under mu) in between. */
struct pw_acc {
	double t0, period;
	int counter;
	int64_t ok, failed;
	char first_err[160];
	double t_first, v_first, t_last, v_last;
	double integral; /* power: trapezoid from the first to the last sample, J */
	double max_gap;  /* power: longest stretch between good readings, s */
	double peak;     /* W */
	double ta, va;   /* counter: where the current peak interval began */
	int in_flight;   /* the thread was still in a reading at stop */
};

struct mb_power {
	struct pw_probe probe[PW_NSRC];
	int chosen; /* index into pw_order, -1: none */
	void *st;   /* the chosen source's state */
	double period;
	char none[512]; /* the reason when chosen is -1 */
	pthread_mutex_t src_mu; /* one read of the source at a time */
	pthread_mutex_t mu;     /* guards running, quit, gen, next and acc */
	pthread_cond_t wake;
	pthread_t thread;
	int has_thread, running, quit;
	uint64_t gen; /* bumped at start and stop: a reading begun earlier is dropped */
	uint64_t reading_gen; /* gen of the thread's reading in flight, 0: none */
	double next;  /* when the thread reads next */
	struct pw_acc acc;
};

/* Append "; "-separated text to the reading's reason. */
static void MB_PRINTF(2, 3) pw_note(mb_power_reading *r, const char *fmt, ...)
{
	size_t len = strlen(r->reason);
	va_list ap;
	if (len && len + 2 < sizeof r->reason) {
		memcpy(r->reason + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(r->reason + len, sizeof r->reason - len, fmt, ap);
	va_end(ap);
}

/* ---- a region's readings ---- */

static void pw_read(mb_power *p, struct pw_sample *s)
{
	double a;
	pthread_mutex_lock(&p->src_mu);
	s->why[0] = '\0';
	a = mb_now_s();
	s->ok = pw_order[p->chosen]->read(p->st, &s->v, s->why, sizeof s->why) == 0;
	s->t = 0.5 * (a + mb_now_s());
	pthread_mutex_unlock(&p->src_mu);
}

/* Counter: close the peak interval at (t, v) once it spans half a period,
 * or at the last reading if none has closed. */
static void acc_interval(struct pw_acc *a, double t, double v, int last)
{
	if (t - a->ta < 0.5 * a->period && !(last && isnan(a->peak) && t > a->ta))
		return;
	a->peak = fmax(a->peak, (v - a->va) / (t - a->ta));
	a->ta = t;
	a->va = v;
}

static void acc_add(struct pw_acc *a, const struct pw_sample *s, int last)
{
	if (!s->ok) {
		if (a->failed++ == 0)
			mb_strlcpy(a->first_err, s->why, sizeof a->first_err);
		return;
	}
	if (a->ok++ == 0) {
		a->t_first = a->ta = s->t;
		a->v_first = a->va = s->v;
		a->max_gap = s->t - a->t0;
	} else if (a->counter) {
		acc_interval(a, s->t, s->v, last);
	} else {
		a->integral += 0.5 * (s->v + a->v_last) * (s->t - a->t_last);
		a->max_gap = fmax(a->max_gap, s->t - a->t_last);
	}
	if (!a->counter)
		a->peak = fmax(a->peak, s->v);
	a->t_last = s->t;
	a->v_last = s->v;
}

/* ---- the thread ---- */

/* One reading for the current region; called and returns with mu held. */
static void pw_tick(mb_power *p)
{
	uint64_t gen = p->gen;
	struct pw_sample s;
	p->reading_gen = gen;
	pthread_mutex_unlock(&p->mu);
	pw_read(p, &s);
	pthread_mutex_lock(&p->mu);
	p->reading_gen = 0;
	if (p->gen != gen)
		return;
	acc_add(&p->acc, &s, 0);
	/* a late reading moves the schedule rather than bursting to catch up */
	p->next = fmax(p->next + p->period, mb_now_s());
}

static void pw_wait(mb_power *p)
{
	struct timespec ts;
	if (!p->running) {
		pthread_cond_wait(&p->wake, &p->mu);
		return;
	}
	ts.tv_sec = (time_t)p->next;
	ts.tv_nsec = (long)((p->next - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec > 999999999L)
		ts.tv_nsec = 999999999L;
	pthread_cond_timedwait(&p->wake, &p->mu, &ts);
}

static void *pw_main(void *arg)
{
	mb_power *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->quit) {
		if (p->running && mb_now_s() >= p->next)
			pw_tick(p);
		else
			pw_wait(p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The thread takes no signals: they stay with the threads that handle
 * them, and the commands it spawns get a clean mask from posix_spawn. */
static int pw_thread_start(mb_power *p)
{
	sigset_t all, old;
	int e;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&p->thread, NULL, pw_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		return mb_err(MB_ERR_IO, "power sampler: pthread_create: %s", strerror(e));
	p->has_thread = 1;
	return 0;
}

/* ---- open and close ---- */

static int pw_check_opts(const mb_power_opts *o)
{
	if (!(o->hz >= 0 && o->hz <= PW_MAX_HZ))
		return mb_err(MB_ERR_USAGE, "power sampling rate %g Hz is outside (0, %g]", o->hz,
			      PW_MAX_HZ);
	if (!(o->cmd_timeout_s >= 0 && isfinite(o->cmd_timeout_s)))
		return mb_err(MB_ERR_USAGE, "power command timeout %g s is not a duration",
			      o->cmd_timeout_s);
	return 0;
}

/* Open every source, keep the first that works, list why the others do not. */
static int pw_probe_all(mb_power *p, const mb_power_opts *o)
{
	size_t len = (size_t)snprintf(p->none, sizeof p->none, "no power source");
	const char *sep = ":";
	for (size_t i = 0; i < PW_NSRC; i++) {
		struct pw_probe *pr = &p->probe[i];
		void *st = NULL;
		int rc;
		pr->info.scope = pw_order[i]->scope;
		rc = pw_order[i]->open(o, p->period, &st, &pr->info, pr->why, sizeof pr->why);
		if (rc < 0)
			return rc;
		pr->available = rc == 0;
		if (pr->available && p->chosen < 0) {
			p->chosen = (int)i;
			p->st = st;
		} else if (pr->available) {
			pw_order[i]->close(st);
		} else if (len < sizeof p->none) {
			len += (size_t)snprintf(p->none + len, sizeof p->none - len, "%s %s: %s", sep,
						pw_order[i]->name, pr->why);
			sep = ";";
		}
	}
	return 0;
}

int mb_power_open(const mb_power_opts *o, mb_power **out)
{
	static const mb_power_opts defaults;
	pthread_condattr_t ca;
	mb_power *p;
	int rc;

	*out = NULL;
	o = o ? o : &defaults;
	if ((rc = pw_check_opts(o)))
		return rc;
	if (!(p = calloc(1, sizeof *p)))
		return mb_err(MB_ERR_NOMEM, "power sampler: out of memory");
	/* the deadlines are CLOCK_MONOTONIC times, as mb_now_s reads */
	rc = pthread_condattr_init(&ca);
	if (!rc) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&p->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc) {
		free(p);
		return mb_err(MB_ERR_IO, "power sampler: cannot make a monotonic condition variable");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->src_mu, NULL);
	p->period = 1.0 / (o->hz > 0 ? o->hz : PW_DEFAULT_HZ);
	p->chosen = -1;
	rc = pw_probe_all(p, o);
	if (!rc && p->chosen >= 0)
		rc = pw_thread_start(p);
	if (rc) {
		mb_power_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

void mb_power_close(mb_power *p)
{
	if (!p)
		return;
	if (p->has_thread) {
		pthread_mutex_lock(&p->mu);
		p->quit = 1;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	if (p->chosen >= 0)
		pw_order[p->chosen]->close(p->st);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->src_mu);
	free(p);
}

static cJSON *pw_source_json(const mb_power *p, size_t i)
{
	const struct pw_probe *pr = &p->probe[i];
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "name", pw_order[i]->name) &&
	    cJSON_AddStringToObject(o, "scope", pr->info.scope) &&
	    cJSON_AddBoolToObject(o, "available", pr->available) &&
	    cJSON_AddBoolToObject(o, "chosen", p->chosen == (int)i) &&
	    cJSON_AddStringToObject(o, pr->available ? "detail" : "reason",
				    pr->available ? pr->info.detail : pr->why))
		return o;
	cJSON_Delete(o);
	return NULL;
}

cJSON *mb_power_sources_json(const mb_power *p)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < PW_NSRC; i++) {
		cJSON *o = pw_source_json(p, i);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* ---- a region ---- */

int mb_power_start(mb_power *p)
{
	struct pw_acc *a = &p->acc;
	struct pw_sample s;
	if (p->running)
		return mb_err(MB_ERR_USAGE, "power sampler: a region is already open");
	memset(a, 0, sizeof *a);
	a->period = p->period;
	a->peak = NAN;
	a->t0 = mb_now_s();
	if (p->chosen >= 0 && p->probe[p->chosen].info.counter) {
		a->counter = 1;
		pw_read(p, &s);
		a->t0 = s.t;
		acc_add(a, &s, 0);
	}
	pthread_mutex_lock(&p->mu);
	p->running = 1;
	p->gen++;
	/* a counter was just read; a power source is read at once */
	p->next = a->t0 + (a->counter ? p->period : 0);
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void pw_fill_counter(const struct pw_acc *a, mb_power_reading *r)
{
	if (a->failed) {
		pw_note(r, "%lld of %lld counter readings failed, so the energy is unknown (first: %s)",
			(long long)a->failed, (long long)(a->failed + a->ok), a->first_err);
		return;
	}
	if (!(a->v_last > a->v_first)) {
		pw_note(r, "the energy counter did not advance in %.3g s (a region shorter than its "
			   "update interval?)", r->duration_s);
		return;
	}
	r->valid = 1;
	r->energy_j = a->v_last - a->v_first;
	r->avg_w = r->energy_j / r->duration_s;
	r->peak_w = a->peak;
}

/* Trapezoids between the samples, the first and last values held to the
 * region's edges. */
static void pw_fill_power(const struct pw_acc *a, double t1, mb_power_reading *r)
{
	r->max_gap_s = r->duration_s;
	if (!a->ok) {
		pw_note(r, "no good reading in the region%s",
			a->in_flight ? " (a reading was still running at stop)" : "");
		return;
	}
	r->valid = 1;
	r->max_gap_s = fmax(a->max_gap, t1 - a->t_last);
	r->energy_j = a->integral + a->v_first * (a->t_first - a->t0) + a->v_last * (t1 - a->t_last);
	r->avg_w = r->energy_j / r->duration_s;
	r->peak_w = a->peak;
}

static void pw_fill(const mb_power *p, double t1, mb_power_reading *r)
{
	const struct pw_acc *a = &p->acc;
	memset(r, 0, sizeof *r);
	r->rate_hz = r->avg_w = r->peak_w = r->energy_j = r->max_gap_s = NAN;
	r->duration_s = t1 - a->t0;
	if (p->chosen < 0) {
		mb_strlcpy(r->source, "none", sizeof r->source);
		mb_strlcpy(r->reason, p->none, sizeof r->reason);
		return;
	}
	mb_strlcpy(r->source, pw_order[p->chosen]->name, sizeof r->source);
	mb_strlcpy(r->scope, p->probe[p->chosen].info.scope, sizeof r->scope);
	r->samples = a->ok;
	r->failed = a->failed;
	r->from_counter = a->counter;
	r->rate_hz = (double)a->ok / fmax(r->duration_s, a->period);
	if (a->counter) {
		pw_fill_counter(a, r);
	} else {
		pw_fill_power(a, t1, r);
		if (a->failed)
			pw_note(r, "%lld of %lld readings failed (first: %s)", (long long)a->failed,
				(long long)(a->failed + a->ok), a->first_err);
	}
	r->insufficient = r->rate_hz < 1 || r->max_gap_s > PW_GAP_S;
	if (!r->valid)
		return;
	if (a->ok < 2)
		pw_note(r, "fewer than 2 samples");
	if (r->insufficient)
		pw_note(r, "insufficient sampling: %.3g Hz achieved (at least 1 Hz needed)%s",
			r->rate_hz, r->max_gap_s > PW_GAP_S ? ", with a stretch over 2 s unread" : "");
}

int mb_power_stop(mb_power *p, mb_power_reading *out)
{
	struct pw_sample s;
	if (!p->running)
		return mb_err(MB_ERR_USAGE, "power sampler: no region is open");
	pthread_mutex_lock(&p->mu);
	p->acc.in_flight = p->reading_gen != 0;
	p->running = 0;
	p->gen++;
	pthread_mutex_unlock(&p->mu);
	/* the thread no longer touches acc */
	if (p->acc.counter) {
		pw_read(p, &s);
		acc_add(&p->acc, &s, 1);
	} else {
		s.t = mb_now_s();
	}
	pw_fill(p, s.t, out);
	return 0;
}
