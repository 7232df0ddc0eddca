/* watchdog.h: ends a run whose rank stops making progress.
 *
 * Open MPI 4.1 has no fault tolerance: a rank that dies or hangs leaves the
 * others waiting in a collective for ever. So each rank runs a watchdog
 * thread. The main thread arms it before every step that may wait for
 * other ranks (a case's setup, each timed iteration, the check) with a
 * deadline, and disarms it after. The thread, which makes no MPI calls,
 * wakes every 50 ms and fires when
 *   - an armed step passes its deadline (a rank stalled or died, or the
 *     device hung), or
 *   - a stop signal (SIGINT, SIGTERM) came while a step was armed and the
 *     main thread has not reached the end of it within 50 ms (it may be
 *     waiting for a rank that is gone: the launcher sends SIGTERM to every
 *     rank when one dies).
 * Firing calls the owner's callback once, from the watchdog thread, with a
 * one-line description naming this rank, its host and the step; the
 * callback writes what must survive and ends the process (it does not
 * return). The callback also runs while the main thread may be running:
 * it must only touch state the main thread guards (see runner.c). */
#ifndef MB_WATCHDOG_H
#define MB_WATCHDOG_H

#include "mb.h"

typedef struct mb_watchdog_cfg {
	int rank;
	const char *host;
	int (*signalled)(void);     /* the stop signal seen, or 0 */
	/* why: one line; sig: the signal, or 0 for a missed deadline. */
	void (*fire)(void *ctx, const char *why, int sig);
	void *ctx;
} mb_watchdog_cfg;

/* Start the thread (idle until armed). MB_ERR_IO if it cannot start. */
int mb_watchdog_start(const mb_watchdog_cfg *cfg) MB_MUST_CHECK;
/* A step begins: it must end within seconds. what (kept, not copied) names
 * the case; step says which part ("setup", "iteration", "check"); iter is
 * the iteration's number or -1. */
void mb_watchdog_arm(const char *what, const char *step, int iter, double seconds);
void mb_watchdog_disarm(void);
/* Stop and join the thread. */
void mb_watchdog_stop(void);

#endif
