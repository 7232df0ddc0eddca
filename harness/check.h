/* check.h: `moebench check`: re-derive a result file from its own raw data.
 *
 * A moebench.result/1 file (results/SCHEMA.md) holds, per case, the raw time
 * samples, every parameter and the cost the suite declared. Everything else
 * a case reports is a function of those: the statistics (harness/stats.c),
 * the metrics (harness/cost.c), the FLOP and byte counts (the suite's cost
 * hook, given the parameters). mb_check_result recomputes each of them
 * independently, from the file alone and the suites' formulas, and reports
 * every field that differs, by its path ("results[3].metrics.tflops"), so a
 * result that was edited by hand, or written by a buggy writer, is caught.
 *
 * Exact or within a tolerance (MB_CHECK_REL_TOL): a value is compared bit for
 * bit when its formula has no addition (order statistics; products and
 * quotients such as every metric); a value that is a sum (mean, stdev,
 * cv_pct, an interpolated percentile, a FLOP count) may differ in its last
 * bits when another compiler contracts a*b+c into an FMA or sums in another
 * order, and is compared within MB_CHECK_REL_TOL relative. Each derivation
 * builds on the file's own inputs where those agreed (the metrics on its
 * median and cost), so a metric is exact given them, and one edited field
 * is reported where it was edited and where it was used, not everywhere.
 *
 * The tree comes from mb_result_load (harness/result.h), the reader that
 * `moebench report` uses too: it bounds the size, parses and checks the
 * schema string. Everything below it is treated as hostile: every member is
 * type-checked before use, and a wrong one is a finding, never a crash.
 */
#ifndef MB_CHECK_H
#define MB_CHECK_H

#include <cjson/cJSON.h>

#include "../suites/suite.h"

/* Relative tolerance for values whose formula sums (see above). */
#define MB_CHECK_REL_TOL 1e-12

/* Default budget for recomputing an alltoall count matrix: router scores
 * (EP group size x tokens x experts, plus the skew calibration) and
 * matrix cells. About a second on one core. */
#define MB_CHECK_ROUTE_LIMIT 1e8

/* Findings of each kind passed to emit per file; the rest are only counted
 * (a hostile file can hold millions of wrong fields). */
#define MB_CHECK_MAX_SHOWN 200

typedef enum {
	MB_FIND_MISMATCH = 0, /* the file and the recomputation differ (exit 1) */
	MB_FIND_NOTE,         /* a field the file does not let us re-derive, and why */
} mb_find_kind;

typedef struct mb_check_opts {
	const mb_suite *const *suites; /* the registry the params are rebuilt in */
	int nsuites;
	/* Most work to spend on an alltoall count matrix (see above); a case
	 * above it gets a note instead; 0: never. */
	double route_limit;
	/* Called for each finding: path is the field ("results[0].stats_s.p50"),
	 * msg the whole line ("results[0].stats_s.p50: file 1, recomputed 2").
	 * Both are valid during the call only. NULL: findings are only counted. */
	void (*emit)(void *ctx, mb_find_kind kind, const char *path, const char *msg);
	void *ctx;
} mb_check_opts;

typedef struct mb_check_sum {
	int cases;       /* results[] entries */
	long compared;   /* values recomputed and compared */
	int mismatches;  /* findings of kind MB_FIND_MISMATCH */
	int notes;       /* findings of kind MB_FIND_NOTE */
} mb_check_sum;

/* Check root (from mb_result_load; borrowed) against its own samples,
 * configuration and the suites' formulas; *sum is filled. Returns 0 (the
 * findings are in *sum and went to o->emit) or MB_ERR_NOMEM. */
int mb_check_result(const cJSON *root, const mb_check_opts *o, mb_check_sum *sum) MB_MUST_CHECK;

#endif
