/* gbench.h: Google Benchmark microbenchmarks registered and run from C.
 *
 * Google Benchmark (Debian 1.7.1) has no C API; gbench.cc is a thin C++
 * shim over it (the design follows IREE's iree/testing/benchmark.h): a C
 * benchmark is a function pointer called once per timed iteration, a void *
 * state, a name, and what one iteration processes (items, bytes, FLOPs),
 * from which Google Benchmark's rate counters give items/s, B/s and FLOP/s.
 * Its own flags keep working (--benchmark_filter, _repetitions, _format,
 * _out, _min_time, ...), and every run it reports is also recorded for the
 * caller, so moebench can write the measured rates into its own JSON.
 *
 * Timing. A manual-time benchmark times each iteration itself and returns
 * the seconds (device-synchronised, or the slowest rank's time under MPI);
 * otherwise Google Benchmark times the loop on the wall clock (never CPU
 * time: the work runs on other threads). A fixed iteration count makes every
 * process run exactly that many iterations per repetition, which collectives
 * need: Google Benchmark otherwise picks the count per process from timings,
 * and ranks that disagree deadlock. Under MPI, also refuse
 * --benchmark_enable_random_interleaving and --benchmark_min_warmup_time
 * (both make the sequence of iterations depend on the process).
 *
 * Not thread-safe: one thread registers and runs.
 */
#ifndef MB_GBENCH_H
#define MB_GBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An untimed hook: 0 on success; otherwise a message in err (n bytes) and
 * the benchmark run ends with Google Benchmark's error_occurred and it. */
typedef int (*mb_gb_hook)(void *arg, char *err, size_t n);
/* One timed iteration: 0, and for a manual-time benchmark *seconds = its
 * measured time (finite, >= 0); otherwise as mb_gb_hook. */
typedef int (*mb_gb_iter)(void *arg, double *seconds, char *err, size_t n);

typedef struct mb_gb_def {
	const char *name;  /* copied; Google Benchmark appends "/iterations:N" and
			      "/manual_time" or "/real_time" to the names it prints */
	mb_gb_iter iter;   /* required */
	mb_gb_hook setup;  /* optional; called before each batch of iterations
			      (Google Benchmark may run several), so make it
			      idempotent: setting up only what a filter selects */
	mb_gb_hook check;  /* optional; called after each batch that had no
			      error: a failure marks the run error_occurred with
			      "invalid: <message>" (fast and wrong is invalid) */
	void *arg;         /* given to every hook; must outlive mb_gb_run_all */
	double items, bytes, flops; /* per iteration; 0 = not counted */
	int manual_time;   /* 1: time is what iter returns; 0: wall clock */
	int64_t iterations; /* > 0: exactly this many per repetition; 0: Google
			       Benchmark decides from --benchmark_min_time */
} mb_gb_def;

/* One run Google Benchmark reported: a repetition, or an aggregate over
 * repetitions (with --benchmark_repetitions=N > 1: mean, median, stddev, cv). */
typedef struct mb_gb_run {
	char name[128];       /* the registered name */
	char run_name[256];   /* Google Benchmark's full name, suffixes included */
	char aggregate[16];   /* "" for a repetition, else "mean", "median", ... */
	int repetition;       /* 0-based index, -1 for an aggregate */
	int repetitions;
	int64_t iterations;   /* of this repetition; for an aggregate, repetitions */
	/* Per iteration, seconds (manual time for manual-time benchmarks); for
	 * the cv aggregate these and the rates are coefficients of variation
	 * (a fraction, Google Benchmark's convention) and ratio is 1. */
	double real_time_s, cpu_time_s;
	int ratio;
	/* Rates from the per-iteration counts (Google Benchmark's counters:
	 * count x iterations / total time); NAN when the count is 0. */
	double items_per_s, bytes_per_s, flops_per_s;
	int error;            /* Google Benchmark's error_occurred */
	char error_msg[256];
} mb_gb_run;

typedef struct mb_gb_results {
	mb_gb_run *runs; /* in report order; owned, free with mb_gb_results_free */
	int n;
	int matched;     /* benchmarks the filter selected */
	int listed;      /* 1 when --benchmark_list_tests printed names instead */
} mb_gb_results;

/* 0 if every argv[i] (i < argc; no program name) is a Google Benchmark flag
 * this shim passes on with a valid value; otherwise -1 and one line in err
 * naming the flag and what it accepts. Google Benchmark itself would print
 * its whole usage and exit 0, or warn and leave the flag unparsed. */
int mb_gb_flags_check(int argc, char *const *argv, char *err, size_t n);

/* Check, then apply flags: every flag not given takes Google Benchmark's
 * default, whatever an earlier call set. prog names the program in its
 * context output. 0, or -1 with err. */
int mb_gb_init(const char *prog, int argc, char *const *argv, char *err, size_t n);

/* The --benchmark_format in force: "console", "json" or "csv". */
const char *mb_gb_format(void);

/* Register a benchmark (run in registration order). 0, or -1 with err. */
int mb_gb_register(const mb_gb_def *def, char *err, size_t n);

/* Run the registered benchmarks the filter selects. display: 1 prints with
 * the reporter --benchmark_format chooses (console output entirely on
 * stdout), 0 prints nothing (MPI ranks other than 0, tests); --benchmark_out
 * writes its file either way. Every reported run goes into *out (zeroed
 * first). 0, or -1 with err (a filter that selects nothing or is not a
 * valid regular expression). */
int mb_gb_run_all(int display, mb_gb_results *out, char *err, size_t n);

/* Free what mb_gb_run_all recorded; accepts NULL and zeroed results. */
void mb_gb_results_free(mb_gb_results *r);

/* Forget every registered benchmark. */
void mb_gb_clear(void);

#ifdef __cplusplus
}
#endif

#endif
