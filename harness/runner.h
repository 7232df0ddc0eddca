/* runner.h: expands a run request into cases and runs them.
 *
 * The runner owns all loops and clocks (suite.h has the contract). Cases are
 * expanded and validated before any work starts, so a bad parameter costs
 * nothing. After every case the result file is rewritten atomically; until
 * the run ends it says "interrupted" (the state a reader should assume if
 * the process dies), and at the end "complete".
 */
#ifndef MB_RUNNER_H
#define MB_RUNNER_H

#include "result.h"
#include "world.h"

#define MB_MAX_CASES 4096

typedef struct mb_run_opts {
	const mb_backend *be;
	const mb_suite *suites[16];
	int nsuites;
	const mb_model *model; /* never NULL: defaults to "tiny" */
	mb_size size;
	char **kv;             /* "key=value" overrides, borrowed */
	int nkv;
	int warmup, iters;
	uint64_t seed;
	int quiet;             /* no table on stdout */
	const mb_world *world; /* NULL: one process */
	/* Telemetry over each case's timed iterations, taken on every node's
	 * first rank and summed over the nodes. */
	struct mb_power *power; /* the sampler, or NULL: power is null ... */
	const char *power_off;  /* ... for this reason */
	const char *sysfs_root; /* of the counters and sensors; NULL: "/sys" */
	int net_all;            /* list loopback and idle interfaces too */
	/* The longest a rank may take for one step (setup, one iteration, the
	 * check) before the watchdog ends the run; 0: derived (runner.c). */
	double timeout_s;
	const struct mb_peaks *peaks; /* computed and measured peaks, or NULL */
} mb_run_opts;

/* One case to run: a suite and its resolved parameters. */
typedef struct mb_case_spec {
	const mb_suite *suite;
	mb_params params;
} mb_case_spec;

/* Expand opts into cases (presets, then key=value with sweeps; the cross
 * product of every swept key). Every case is validated. Fails with
 * MB_ERR_USAGE and one line naming the parameter and its accepted range. */
int mb_cases_expand(const mb_run_opts *opts, mb_case_spec *out, int max, int *count) MB_MUST_CHECK;

/* Run every case on dev, filling run->cases (allocated here, n = ncases)
 * and rewriting path after each (NULL: write nothing, as on ranks other
 * than 0). Returns the process exit code. */
int mb_runner_run(const mb_run_opts *opts, mb_dev *dev, const mb_case_spec *cases, int ncases,
		  mb_run *run, const char *path);

/* Free what mb_runner_run allocated in run. */
void mb_run_free(mb_run *run);

/* Ask the runner to stop after the current iteration (signal-safe). */
void mb_runner_interrupt(int signo);

#endif
