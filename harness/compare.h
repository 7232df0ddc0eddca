/* compare.h: `moebench compare`: two result files, case by case.
 *
 * Cases are joined on the suite and every parameter (name and value), as
 * the runner wrote them. For each joined case and metric the module gives
 * a change with a confidence interval, a p-value and a verdict.
 *
 * Statistics (the same for every metric, on the raw per-iteration samples
 * `samples_s`, which must be finite and > 0):
 *
 * - Test: Mann-Whitney U (Wilcoxon rank-sum), two-sided, as Google
 *   Benchmark's compare.py does: no assumption of normality, robust to the
 *   outliers timings have. U counts the pairs (base x_i, new y_j) with
 *   y_j > x_i, ties counted 1/2. The p-value is exact (the null
 *   distribution of U, counted by the recurrence on the largest value, in
 *   additions only) when no value is tied and nx*ny <= MB_MWU_EXACT_MAX;
 *   otherwise the normal approximation with tie and continuity correction
 *   (scipy.stats.mannwhitneyu's "asymptotic"). p = min(1, 2 * P(U <= min(U, nx*ny - U))).
 * - Change: the Hodges-Lehmann estimate of the shift of log(time), i.e.
 *   the median of all nx*ny pairwise log(y_j / x_i), reported as the ratio
 *   new/base - 1. Under the shift model the test assumes it estimates the
 *   ratio of the medians; unlike a plain ratio of two medians it comes with
 *   a distribution-free interval: the order statistics D(k) and
 *   D(nx*ny + 1 - k) of the pairwise differences, k the largest integer with
 *   P(U <= k - 1) <= alpha/2 (exact distribution, or the normal
 *   approximation when the test used it). That interval is the inversion
 *   of the same test, so it excludes "no change" exactly when the exact
 *   test rejects, and it needs no random numbers: the output is
 *   deterministic. Order statistics are found by bisection on the bits of a
 *   double, counting pairs in O(nx + ny), so no nx*ny array is built.
 * - Throughput metrics (tflops, tokens_per_s, busbw_gbps) are work / time
 *   per iteration with the same work on every sample, so their test is the
 *   time's test, and their change is (work_new / work_base) / time ratio,
 *   with the work recovered as metric * median(samples) on each side.
 * - Verdict: "regression" when p < alpha and the metric got worse by more
 *   than max_regress_pct percent of its base value (time up, throughput
 *   down); "worse" / "better" when significant below that; else "same".
 *
 * Bounds: at most MB_CMP_MAX_SAMPLES samples per case and side (the run's
 * own --iters limit); the work per case is O(n log n) plus 64 O(n) passes
 * for each order statistic, and the exact distribution costs at most
 * min(nx, ny)^2 * MB_MWU_EXACT_MAX / 4 additions (2.5e7 at 100 vs 100)
 * in a (min(nx, ny) + 1) * (nx*ny + 1) table (8 MB).
 */
#ifndef MB_COMPARE_H
#define MB_COMPARE_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "mb.h"

#define MB_MWU_EXACT_MAX 10000      /* exact p when nx*ny is at most this, no ties */
#define MB_CMP_MAX_SAMPLES 1000000  /* per case and side; more: case skipped */
#define MB_CMP_MAX_METRICS 4        /* time p50 and three throughput metrics */
#define MB_CMP_LABEL_MAX 1024       /* bytes of a case label kept from a file */

/* The Mann-Whitney U test of y against x. */
typedef struct mb_mwu {
	double u;  /* pairs with y_j > x_i, plus 1/2 per tie */
	double p;  /* two-sided p-value */
	int exact; /* 1: exact null distribution; 0: normal approximation */
} mb_mwu;

/* Test y[0..ny) against x[0..nx) (n >= 1, finite values; inputs unchanged).
 * Returns 0, or MB_ERR_NOMEM / MB_ERR_USAGE (a size out of range). */
int mb_mwu_test(const double *x, int nx, const double *y, int ny, mb_mwu *out) MB_MUST_CHECK;

/* The Hodges-Lehmann shift of y - x with its 1 - alpha interval. */
typedef struct mb_hl {
	double est, lo, hi; /* median of the y_j - x_i, and the interval */
	double level;       /* coverage: exact, or nominal 1 - alpha (0: below, unknown) */
	int covers;         /* 0: too few samples for 1 - alpha; lo..hi is the full range */
} mb_hl;

/* Shift of y against x (same rules as mb_mwu_test; 0 < alpha < 1). */
int mb_hl_shift(const double *x, int nx, const double *y, int ny, double alpha,
		mb_hl *out) MB_MUST_CHECK;

typedef enum {
	MB_VERDICT_SAME = 0, /* not significant */
	MB_VERDICT_BETTER,
	MB_VERDICT_WORSE,    /* significant, within the threshold */
	MB_VERDICT_REGRESSION,
} mb_verdict;

typedef struct mb_cmp_metric {
	const char *name;   /* "time_p50_s", "tflops", "tokens_per_s", "busbw_gbps" (static) */
	int higher_better;
	double base, new_;  /* the metric's median value on each side */
	double change;      /* new/base - 1, Hodges-Lehmann (see above) */
	double lo, hi;      /* its interval */
	mb_verdict verdict;
} mb_cmp_metric;

typedef enum {
	MB_CASE_COMPARED = 0, /* both sides measured; see metrics */
	MB_CASE_FAILED,       /* ok in BASE, not ok in NEW: counts as a failure */
	MB_CASE_NOT_OK,       /* not ok on a side (and not a failure): not judged */
	MB_CASE_BAD_SAMPLES,  /* samples unusable on a side: skipped, note says why */
	MB_CASE_BASE_ONLY,
	MB_CASE_NEW_ONLY,
} mb_cmp_kind;

typedef struct mb_cmp_case {
	char *label;         /* "suite k=v ..." from the file, unescaped (owned) */
	char *suite;         /* the suite name from the file (owned) */
	char base_status[16], new_status[16]; /* "ok", "invalid", ...; "?" if odd */
	mb_cmp_kind kind;
	int regression;      /* some metric's verdict is MB_VERDICT_REGRESSION */
	int nbase, nnew;     /* samples on each side */
	double p;            /* Mann-Whitney p (COMPARED) */
	int exact;           /* p is exact */
	int ci_covers;       /* the intervals reach 1 - alpha */
	char note[512];      /* why not compared, or a remark; may quote the file */
	mb_cmp_metric metrics[MB_CMP_MAX_METRICS];
	int nmetrics;
} mb_cmp_case;

typedef struct mb_cmp_opts {
	double alpha;           /* significance level, 0 < alpha < 1 (default 0.05) */
	double max_regress_pct; /* a larger significant slowdown is a regression (5) */
	int include_invalid;    /* judge cases invalid on both sides (null backend) */
} mb_cmp_opts;

typedef struct mb_cmp_report {
	mb_cmp_opts opts;
	char *base_path, *new_path;     /* as given (owned) */
	char *base_run, *new_run;       /* run_id or "-" (owned) */
	char *base_device, *new_device; /* devices[0].name or "-" (owned) */
	mb_cmp_case *cases;             /* BASE order, then cases only in NEW */
	int ncases;
	int ncompared, nregressions, nfailed, nnot_ok, nbad, nbase_only, nnew_only;
	char notes[1024];               /* file-level remarks ("" if none) */
} mb_cmp_report;

/* Join and compare two loaded result trees (mb_result_load). Paths are only
 * recorded. A file whose "results" is not an array is bad input
 * (MB_ERR_USAGE naming it); odd cases are skipped with a note. On failure
 * *out is left freed. */
int mb_cmp_build(const cJSON *base, const char *base_path, const cJSON *new_,
		 const char *new_path, const mb_cmp_opts *o, mb_cmp_report *out) MB_MUST_CHECK;
void mb_cmp_free(mb_cmp_report *r);
/* MB_EXIT_FAIL with a regression or a failed case, else MB_EXIT_OK. */
int mb_cmp_exit_code(const mb_cmp_report *r);

/* Output (harness/cmd_compare.c). Every string from a file is escaped for
 * its medium and cut to MB_CMP_LABEL_MAX bytes; bytes that are not UTF-8
 * become '?'. */
const char *mb_verdict_name(mb_verdict v);  /* "same", ..., "REGRESSION" (static) */
const char *mb_cmp_kind_name(mb_cmp_kind k); /* "compared", "FAILED", ... (static) */
void mb_cmp_print_table(FILE *f, const mb_cmp_report *r);
void mb_cmp_write_junit(FILE *f, const mb_cmp_report *r);
void mb_cmp_write_markdown(FILE *f, const mb_cmp_report *r);
/* s escaped for XML text and attributes (& < > " ' and control characters)
 * into dst of n bytes (always terminated); returns dst. */
char *mb_xml_escape(char *dst, size_t n, const char *s);
/* s escaped for a Markdown table cell (| \ ` * _ [ ] < > & # ~ @, newlines
 * become spaces) into dst of n bytes; returns dst. */
char *mb_md_escape(char *dst, size_t n, const char *s);

#endif
