/* stats.c: statistics of time samples (see stats.h for the definitions). */
#include "mb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double mb_quantile_sorted(const double *s, int n, double q)
{
	if (n <= 0)
		return 0.0;
	double h = (n - 1) * q;
	int lo = (int)floor(h);
	if (lo >= n - 1)
		return s[n - 1];
	return s[lo] + (h - lo) * (s[lo + 1] - s[lo]);
}

void mb_stats_compute(const double *x, int n, double *scratch, mb_stats *out)
{
	memset(out, 0, sizeof *out);
	if (n <= 0)
		return;
	memcpy(scratch, x, (size_t)n * sizeof *x);
	qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
	out->n = n;
	out->min = scratch[0];
	out->max = scratch[n - 1];

	/* Two passes: the mean, then squared deviations (stable for close
	 * samples, which is the usual case for timings). */
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += x[i];
	out->mean = sum / n;
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (x[i] - out->mean) * (x[i] - out->mean);
	out->stdev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
	out->cv_pct = out->mean != 0 ? 100.0 * out->stdev / out->mean : 0.0;

	out->p50 = mb_quantile_sorted(scratch, n, 0.50);
	out->p95 = mb_quantile_sorted(scratch, n, 0.95);
	out->p99 = mb_quantile_sorted(scratch, n, 0.99);

	double half = 0.98 * sqrt((double)n);
	int lo = (int)floor(n / 2.0 - half);      /* 1-based rank */
	int hi = (int)ceil(1 + n / 2.0 + half);
	out->ci_exact = lo >= 1 && hi <= n;
	if (lo < 1)
		lo = 1;
	if (hi > n)
		hi = n;
	out->ci95_lo = scratch[lo - 1];
	out->ci95_hi = scratch[hi - 1];
}
