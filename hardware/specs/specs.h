/* specs.h: published peaks of known devices, for MFU.
 *
 * A static table of datasheet (or vendor-authored) figures with their
 * sources, taken from reference/facts-models-hardware.md §D. These are
 * published figures, never measurements: a result that uses one writes it
 * beside the metric as {"kind": "published", "source": ...}. A device, or a
 * dtype of a device, without a published figure has no entry: the caller
 * reports MFU as null with a reason rather than guessing.
 *
 * No CPU is listed: the facts give no published peak for a CPU, only a
 * derived (🧮) Zen 4 estimate. A peak measured on the machine comes with
 * `moebench micro`, later.
 */
#ifndef MB_SPECS_H
#define MB_SPECS_H

#include "../../harness/mb.h"

#define MB_SPEC_MAX_MATCH 3

typedef struct mb_spec {
	const char *name; /* "NVIDIA H100 SXM" */
	/* Case-insensitive substrings of the name a backend reports
	 * (mb_dev_info.name); any one selects this entry... */
	const char *match[MB_SPEC_MAX_MATCH];
	/* ...unless one of these also occurs ("PCIe" for a part whose
	 * figure differs and is not in the table). */
	const char *unless[MB_SPEC_MAX_MATCH];
	/* Published dense (not 2:4 sparse) peak in TFLOP/s per mb_dtype; 0 when
	 * no source gives one. */
	double tflops[MB_DTYPE_COUNT];
	double fp8_tflops; /* dense FP8 peak, 0 if none (no mb_dtype for it yet) */
	double mem_gbps;   /* published memory bandwidth, GB/s (1e9 B/s) */
	const char *source; /* where the figures come from, with status */
} mb_spec;

/* The entry for a device name, or NULL when no entry matches (every CPU,
 * the null device, a variant whose figures are not in the table). */
const mb_spec *mb_spec_find(const char *device_name);

/* Published dense peak of s for dt in TFLOP/s, or NAN when s is NULL or
 * has no figure for dt. *source (if source is not NULL) is set to s's
 * source string, or NULL. */
double mb_spec_peak_tflops(const mb_spec *s, mb_dtype dt, const char **source);

/* The table itself, for listing; *n is set to its length. */
const mb_spec *mb_spec_table(int *n);

#endif
