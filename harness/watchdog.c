/* watchdog.c: the per-rank watchdog thread (watchdog.h). */
#include "mb.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "watchdog.h"

#define WD_POLL_NS 50000000ull    /* 50 ms */
/* After a stop signal the main thread gets one more poll to reach the end
 * of its step: a launcher's SIGKILL follows its SIGTERM within a second
 * (Open MPI's odls_base_sigkill_timeout is 1 s), and writing the file on a
 * loaded machine takes part of that. */
#define WD_GRACE_NS 50000000ull

static struct {
	pthread_t thread;
	int running;
	atomic_int quit;
	atomic_uint_least64_t deadline_ns, armed_ns; /* 0: disarmed */
	const char *_Atomic what, *_Atomic step;
	atomic_int iter;
	mb_watchdog_cfg cfg;
} wd;

static void wd_describe(char *buf, size_t n, uint64_t now, int sig)
{
	const uint64_t armed = atomic_load(&wd.armed_ns);
	const int iter = atomic_load(&wd.iter);
	char it[32] = "";
	if (iter >= 0)
		snprintf(it, sizeof it, " %d", iter);
	const char *what = atomic_load(&wd.what), *step = atomic_load(&wd.step);
	if (sig)
		snprintf(buf, n,
			 "rank %d (%s): stopped by signal %d (%s) while in %s, %s%s, for %.1f s: the "
			 "job was cancelled or another rank failed (the launcher's messages say which)",
			 wd.cfg.rank, wd.cfg.host, sig, sig == SIGINT ? "SIGINT" : "SIGTERM", what,
			 step, it, (double)(now - armed) * 1e-9);
	else
		snprintf(buf, n,
			 "rank %d (%s): no progress for %.1f s in %s, %s%s: a rank stalled or died, or "
			 "the device hung (every rank still alive prints this line; a rank that does "
			 "not is the one that stopped)",
			 wd.cfg.rank, wd.cfg.host, (double)(now - armed) * 1e-9, what, step, it);
}

static void *wd_main(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's */
	uint64_t sig_seen = 0;
	while (!atomic_load(&wd.quit)) {
		const struct timespec ts = {0, (long)WD_POLL_NS};
		nanosleep(&ts, NULL);
		const uint64_t now = mb_now_ns(), dl = atomic_load(&wd.deadline_ns);
		const int sig = wd.cfg.signalled ? wd.cfg.signalled() : 0;
		if (!dl) {
			sig_seen = 0;
			continue;
		}
		if (sig && !sig_seen)
			sig_seen = now;
		const int late = sig && now - sig_seen > WD_GRACE_NS;
		if (late || now > dl) {
			char why[512];
			wd_describe(why, sizeof why, now, late ? sig : 0);
			wd.cfg.fire(wd.cfg.ctx, why, late ? sig : 0);
		}
	}
	return NULL;
}

int mb_watchdog_start(const mb_watchdog_cfg *cfg)
{
	wd.cfg = *cfg;
	atomic_store(&wd.quit, 0);
	atomic_store(&wd.deadline_ns, 0);
	atomic_store(&wd.iter, -1);
	atomic_store(&wd.what, "");
	atomic_store(&wd.step, "");
	if (pthread_create(&wd.thread, NULL, wd_main, NULL))
		return mb_err(MB_ERR_IO, "cannot start the watchdog thread");
	wd.running = 1;
	return 0;
}

void mb_watchdog_arm(const char *what, const char *step, int iter, double seconds)
{
	const uint64_t now = mb_now_ns();
	atomic_store(&wd.what, what);
	atomic_store(&wd.step, step);
	atomic_store(&wd.iter, iter);
	atomic_store(&wd.armed_ns, now);
	atomic_store(&wd.deadline_ns, now + (uint64_t)(seconds * 1e9));
}

void mb_watchdog_disarm(void) { atomic_store(&wd.deadline_ns, 0); }

void mb_watchdog_stop(void)
{
	if (!wd.running)
		return;
	atomic_store(&wd.quit, 1);
	pthread_join(wd.thread, NULL);
	wd.running = 0;
}
