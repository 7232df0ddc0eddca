/* cost.h: metrics derived from a suite's cost and the measured times. */
#ifndef MB_COST_H
#define MB_COST_H

#include "micro.h"
#include "result.h"

/* Fill out from cost c and statistics s over ranks ranks, measured on dev
 * (NULL if unknown) with element type dt; underivable metrics are NAN, and
 * a NAN mfu_pct comes with out->mfu_reason. */
void mb_metrics_derive(const mb_cost *c, const mb_stats *s, int ranks, const mb_dev_info *dev,
		       mb_dtype dt, mb_metrics *out);

/* The peaks besides the published one, found once per run. */
typedef struct mb_peaks {
	const mb_calibration *cal; /* the measured ceilings, or NULL ... */
	const char *cal_path;
	char cal_reason[320];      /* ... why none */
	int have_caps;             /* a CPU whose peak can be computed, or ... */
	mb_cpu_caps caps;
	char caps_reason[200];     /* ... why not */
} mb_peaks;

/* MFU against the computed and the measured peak (NAN with reasons) for the
 * metrics' dtype; call after mb_metrics_derive. pk may be NULL. */
void mb_metrics_peaks(const mb_peaks *pk, mb_metrics *out);

/* The element type MFU is taken for: the case's "dtype" parameter when its
 * suite has one, fp32 otherwise. */
mb_dtype mb_case_dtype(const mb_params *p);

#endif
