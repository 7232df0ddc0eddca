/* micro.h: the machine's measured ceilings (calibration.c).
 *
 * `moebench micro` (cmd_micro.c) runs kernel microbenchmarks; from their
 * runs this module derives the matmul and memory-bandwidth ceilings, prints
 * them, and writes them with every run behind them as a
 * moebench.calibration/1 file (the fields are documented at the top of
 * cmd_micro.c). Other commands read the ceilings back with
 * mb_calibration_load / _find_newest, for example to give MFU against the
 * measured peak beside MFU against the published one. The file may come
 * from anywhere, so reading is defensive: bounded size, exact schema,
 * checked types, and values that are not finite, not positive or absurd
 * rejected with one line naming the field.
 */
#ifndef MB_MICRO_H
#define MB_MICRO_H

#include "mb.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../hardware/backend.h"
#include "../hardware/specs/specs.h"
#include "gbench/gbench.h"

#define MB_CALIBRATION_SCHEMA "moebench.calibration/1"
/* Larger files are refused unread. */
#define MB_CALIBRATION_MAX_BYTES (8u << 20)
/* Values above these are refused as absurd for one device. */
#define MB_CALIBRATION_MAX_TFLOPS 1e5 /* 100 PFLOP/s */
#define MB_CALIBRATION_MAX_GBPS 1e5   /* 100 TB/s */

typedef struct mb_calibration {
	char host[256];    /* hostname the ceilings were measured on */
	char device[256];  /* the backend's device name */
	char backend[32];  /* "cpu", "cuda", ... */
	char time[32];     /* when, ISO 8601 UTC ("2026-11-23T16:17:04Z") */
	/* Measured matmul ceiling per dtype, TFLOP/s; NAN where the file has
	 * null (not measured, unsupported or invalid) or no entry. */
	double matmul_tflops[MB_DTYPE_COUNT];
	double mem_gbps;   /* measured copy bandwidth, GB/s (1e9 B/s); NAN if null */
} mb_calibration;

/* Read the calibration file at path into *out. host (or NULL for any)
 * must equal the file's host. MB_ERR_USAGE with one line naming the file
 * and what is wrong: unreadable, larger than MB_CALIBRATION_MAX_BYTES, not
 * JSON, another schema or host, a field of the wrong type, or a ceiling
 * that is NaN, not positive or above the MB_CALIBRATION_MAX_* bounds. */
int mb_calibration_load(const char *path, const char *host, mb_calibration *out) MB_MUST_CHECK;

/* The newest (by its "time" field; ties to the greater name) calibration
 * file for host among dir's *.json files, whose path goes into path (n
 * bytes). Files that are not calibrations for host, or do not load, are
 * passed over. MB_ERR_USAGE when dir cannot be read or none is found. */
int mb_calibration_find_newest(const char *dir, const char *host, char *path,
			       size_t n) MB_MUST_CHECK;

/* ---- deriving and writing (for cmd_micro.c) ---- */

/* The benchmarks whose runs give the ceilings (dtype suffix included). */
#define MB_MICRO_MATMUL_FP32 "gemm/square/2048/fp32"
#define MB_MICRO_MATMUL_BF16 "gemm/square/2048/bf16"
#define MB_MICRO_MEM "copy/256MiB"
#define MB_MICRO_SGEMM "sgemm/openblas/2048/fp32"

/* One benchmark `micro` planned; strings are borrowed. */
typedef struct mb_micro_bench {
	const char *name;    /* as registered with Google Benchmark */
	const char *op, *dtype, *shape;
	double flops, bytes; /* per iteration; 0 = not counted */
	int ranks;           /* a collective over this many ranks (busbw), else 0 */
	const char *skipped; /* why the device cannot run it (not registered), or NULL */
} mb_micro_bench;

/* Everything the calibration file holds; borrowed. */
typedef struct mb_micro_doc {
	const char *backend;
	mb_dev_info dev;
	const char *model, *preset, *dtype; /* the command's choices */
	uint64_t seed;
	int world_size;
	int argc;            /* the command line, argv[0] = "moebench" */
	char **argv;
	int nflags;          /* the --benchmark_* flags */
	char **flags;
	const mb_micro_bench *bench;
	int nbench;
	const mb_gb_results *runs;
} mb_micro_doc;

typedef struct mb_micro_ceilings {
	double matmul_tflops[2]; /* [0] fp32, [1] bf16; NAN with the reason */
	double mem_gbps, sgemm_tflops;
	char matmul_why[2][240], mem_why[240], sgemm_why[240];
	int have_caps;           /* a cpu device whose caps were read: peak is computed */
	mb_cpu_caps caps;
	char caps_why[200];
	double peak_tflops[2];   /* computed, [0] fp32, [1] bf16 */
	char peak_how[2][200];
	int invalid;             /* some run failed its check or errored */
} mb_micro_ceilings;

/* Each ceiling from its benchmark's median aggregate (with repetitions)
 * or its one run; NAN with the reason when it did not run, was skipped or
 * is invalid. For a cpu device, also the computed peak (specs.h). */
void mb_micro_ceilings_get(const mb_micro_doc *d, mb_micro_ceilings *c);

/* The human summary (after Google Benchmark's table) on f. */
void mb_micro_print(FILE *f, const mb_micro_doc *d, const mb_micro_ceilings *c);

/* The moebench.calibration/1 tree (caller deletes); NULL if out of memory. */
cJSON *mb_calibration_to_json(const mb_micro_doc *d, const mb_micro_ceilings *c);

#endif
