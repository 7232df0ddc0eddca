/* stats.h: summary statistics of a case's raw time samples.
 *
 * Percentiles use linear interpolation between order statistics (the
 * "type 7" rule of R and numpy). The 95% confidence interval of the median
 * is the distribution-free order-statistic interval: ranks
 * floor(n/2 - 0.98*sqrt(n)) and ceil(1 + n/2 + 0.98*sqrt(n)) (1-based,
 * clamped), from the binomial(n, 1/2) normal approximation; with n < 8 it
 * spans min..max and ci_exact says so (coverage is then below 95%).
 */
#ifndef MB_STATS_H
#define MB_STATS_H

#include "mb.h"

typedef struct mb_stats {
	int n;
	double min, max, mean, stdev; /* stdev: sample (n-1); 0 when n = 1 */
	double p50, p95, p99;
	double cv_pct;                /* 100 * stdev / mean; 0 when mean = 0 */
	double ci95_lo, ci95_hi;      /* of the median */
	int ci_exact;                 /* 0 when n is too small for 95% coverage */
} mb_stats;

/* Compute over x[0..n) (unchanged); scratch must hold n doubles. n >= 1. */
void mb_stats_compute(const double *x, int n, double *scratch, mb_stats *out);

/* The q-quantile (0..1) of sorted[0..n), type 7. */
double mb_quantile_sorted(const double *sorted, int n, double q);

#endif
