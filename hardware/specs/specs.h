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
 * derived (🧮) Zen 4 estimate. For CPUs there is instead a peak *computed*
 * from the detected cores, clock and vector units (mb_spec_cpu_peak_tflops),
 * always labelled as computed, never as published; the peak measured on the
 * machine comes from `moebench micro`.
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
	double link_gbps;  /* published scale-up link bandwidth per device, GB/s; 0 if none */
	const char *link;  /* what link_gbps counts ("NVLink, bidirectional"), or NULL */
	double tdp_w;      /* published board power, W; 0 where no figure is published */
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

/* ---- CPUs: a computed peak ---- */

/* How a core multiplies bf16, best first. */
typedef enum {
	MB_CPU_BF16_NONE = 0,   /* no bf16 arithmetic */
	MB_CPU_BF16_AVX512 = 1, /* avx512_bf16: VDPBF16PS, 2 products per fp32 lane */
	MB_CPU_BF16_AMX = 2,    /* amx_bf16: the AMX tile unit (TMUL) */
} mb_cpu_bf16;

/* What a CPU's computed peak is made of (mb_spec_cpu_detect). */
typedef struct mb_cpu_caps {
	int cores;          /* physical cores: distinct (physical id, core id) pairs,
			       or the processor count when those are missing */
	double ghz;         /* clock: cpufreq's cpuinfo_max_freq, else "cpu MHz" */
	int simd_bits;      /* width of the FMA datapath: 512, 256 or 128 */
	int fma_units;      /* FMA pipes per core: not in /proc/cpuinfo, assumed 2
			       with the fma flag (every x86 core with FMA since
			       Haswell and Zen), else 1 */
	mb_cpu_bf16 bf16;
	char ghz_from[48];  /* "cpuinfo_max_freq" or "cpu MHz" */
	char note[160];     /* the assumptions made, for the reader */
} mb_cpu_caps;

/* Read /proc/cpuinfo and cpufreq under root ("" or NULL for "/"; tests
 * pass a directory holding proc/cpuinfo and sys/...). Zen 4 (AMD family
 * 0x19 with avx512f) runs AVX-512 on a 256-bit datapath, so simd_bits is
 * 256 there. MB_ERR_IO if cpuinfo cannot be read or lacks what is needed. */
int mb_spec_cpu_detect(const char *root, mb_cpu_caps *out) MB_MUST_CHECK;

/* The computed dense peak in TFLOP/s for dt (fp32, fp64 or bf16):
 *   fp32: fma_units x (simd_bits/32) lanes x 2 FLOP x cores x GHz,
 *   fp64: the same with simd_bits/64 lanes,
 *   bf16: AMX 1024 FLOP/cycle per core x cores x GHz (TMUL: a 16x32 by
 *         32x16 tile product, 16384 FLOP, in 16 cycles); avx512_bf16
 *         fma_units x (simd_bits/32) lanes x 4 FLOP x cores x GHz.
 * how (n bytes) gets the formula with its numbers ("2 FMA units x 16 fp32
 * lanes x 2 FLOP x 2 cores x 2.60 GHz"), or why there is none (NAN: fp16,
 * bf16 without bf16 arithmetic, an input out of range). A computed figure:
 * the clock is the highest the part may run at, which heavy AVX-512 or AMX
 * code usually does not sustain. */
double mb_spec_cpu_peak_tflops(mb_dtype dt, int cores, double ghz, int simd_bits, int fma_units,
			       mb_cpu_bf16 bf16, char *how, size_t n);

#endif
