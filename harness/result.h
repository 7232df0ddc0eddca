/* result.h: the run and its cases, and the moebench.result/1 file.
 *
 * The runner fills an mb_run as cases finish; mb_result_write turns it into
 * JSON (field by field in results/SCHEMA.md) and replaces the file
 * atomically (temporary file in the same directory, fsync, rename), so a
 * reader sees either the previous complete file or the new one.
 */
#ifndef MB_RESULT_H
#define MB_RESULT_H

#include <cjson/cJSON.h>

#include "../hardware/power/power.h"
#include "../suites/suite.h"
#include "stats.h"

typedef enum { MB_CASE_OK = 0, MB_CASE_INVALID, MB_CASE_SKIPPED, MB_CASE_ERROR } mb_case_status;
typedef enum { MB_RUN_RUNNING = 0, MB_RUN_COMPLETE, MB_RUN_INTERRUPTED, MB_RUN_FAILED } mb_run_status;

const char *mb_case_status_name(mb_case_status s);
const char *mb_run_status_name(mb_run_status s);

/* Metrics derived from cost and the median time (harness/cost.c). A value
 * that cannot be derived is NAN and is written as null. */
typedef struct mb_metrics {
	double tflops;         /* model FLOPs / p50 time / 1e12 */
	double tflops_best;    /* model FLOPs / min time / 1e12 */
	double tflops_palm;    /* PaLM-convention FLOPs / p50 time / 1e12 */
	double tokens_per_s;   /* tokens / p50 time */
	double gbps;           /* bytes / p50 time / 1e9: nccl-tests' algbw */
	double busbw_gbps;     /* gbps * (n-1)/n over n ranks: nccl-tests' alltoall busbw */
	double to_others_gbps; /* comm_bytes (sent to other ranks) / p50 time / 1e9 */
	double mfu_pct;        /* 100 * tflops / peak_tflops; NAN with mfu_reason */
	double peak_tflops;    /* published dense peak for dtype (hardware/specs), or NAN */
	mb_dtype dtype;        /* the case's element type, which selects the peak */
	const char *peak_device; /* the hardware/specs entry's name (static), or NULL */
	const char *peak_source; /* where the peak is published (static), or NULL */
	char mfu_reason[160];  /* why mfu_pct is NAN ("" otherwise) */
	/* Beside it (mb_metrics_peaks): against the peak computed from a CPU's
	 * cores, clock and vector units, and against the matmul ceiling that
	 * `moebench micro` measured; NAN with the reason when there is none. */
	double mfu_computed_pct, computed_peak_tflops;
	char computed_how[200], computed_reason[200];
	double mfu_measured_pct, measured_peak_tflops;
	const char *measured_source, *measured_time; /* the calibration file (borrowed) */
	char measured_reason[320];
} mb_metrics;

typedef struct mb_case_result {
	const mb_suite *suite;
	mb_params params;
	mb_case_status status;
	char reason[512];     /* why it is not ok ("" when ok) */
	int has_cost;
	mb_cost cost;
	double *samples;      /* seconds per timed iteration; owned */
	int nsamples;
	mb_stats stats;
	mb_metrics metrics;
	int has_check;
	mb_check check;
	mb_case_info info;
	char start_time[40];  /* ISO 8601 UTC */
	double setup_s, run_s, verify_s; /* wall time of each phase */
	/* Power over the timed iterations: rank 0's reading with energy,
	 * average and peak summed over power_nodes nodes; has_power 0: null,
	 * power_reason says why. */
	int has_power, power_nodes;
	mb_power_reading power;
	char power_reason[512];
	/* Interface counters over the timed iterations: rank 0's node's
	 * interfaces (owned; NULL: null with net_reason), and the listed
	 * interfaces' bytes summed over net_nodes nodes. */
	cJSON *net;
	double net_tx_bytes, net_rx_bytes;
	int net_nodes;
	char net_reason[256];
	char net_note[256];   /* what the snapshot could not see (net.h), or "" */
	/* Several ranks: each rank's median over its own samples ([world
	 * size], owned), and the rank with the largest. */
	double *rank_p50;
	int slowest_rank;
} mb_case_result;

typedef struct mb_run {
	char run_id[80];
	char start_time[40], end_time[40];
	mb_run_status status;
	char status_reason[640];
	int argc;
	char **argv;
	const char *backend;
	mb_dev_info dev;
	int have_dev;
	const char *model;     /* model preset name or NULL */
	int model_approximated; /* the preset's attention is not reproduced exactly */
	const char *size;      /* size preset name */
	uint64_t seed;
	int warmup, iters;
	const char *replay_of; /* --replay: the run_id replayed, or NULL */
	const char *calibration; /* the calibration file used, or NULL ... */
	const char *calibration_reason; /* ... why none */
	int world_size, world_rank;
	const char *launcher;  /* "none", "mpirun", "srun" */
	int nodes, ranks_per_node; /* nodes, and the most ranks on one */
	const char *nodes_from; /* how nodes were found (static) */
	const int *node_of;    /* [world_size] each rank's node, or NULL; borrowed */
	char (*hosts)[64];     /* [world_size] each rank's host, or NULL; owned */
	cJSON *system;         /* from mb_sysinfo_system(); borrowed */
	cJSON *build;          /* from mb_sysinfo_build(); borrowed */
	cJSON *environment;    /* from mb_sysinfo_environment(); borrowed */
	mb_case_result *cases;
	int ncases;
} mb_run;

/* Add a number that reads back bit-exactly ("%.17g"); NaN and Inf are
 * written as null. Returns the item or NULL on allocation failure. */
cJSON *mb_json_add_num(cJSON *obj, const char *key, double v);
/* The same for an array element. */
cJSON *mb_json_push_num(cJSON *arr, double v);
/* A 64-bit integer, written exactly. */
cJSON *mb_json_add_u64(cJSON *obj, const char *key, uint64_t v);

/* The whole run as a JSON tree (caller deletes); NULL on allocation failure. */
cJSON *mb_result_to_json(const mb_run *run);

/* Write the run to path atomically. */
int mb_result_write(const mb_run *run, const char *path) MB_MUST_CHECK;

/* Write text to path atomically (temp file + fsync + rename). */
int mb_write_atomic(const char *path, const char *text, size_t len) MB_MUST_CHECK;

/* Read and parse a JSON object from a file written by anyone: a regular
 * file of at most limit bytes. MB_ERR_USAGE with one line naming it. */
int mb_json_load(const char *path, size_t limit, cJSON **out) MB_MUST_CHECK;

/* Read and parse a result file written by anyone: bounded size (256 MiB),
 * must be a JSON object whose "schema" is MB_SCHEMA. *out is the tree. */
int mb_result_load(const char *path, cJSON **out) MB_MUST_CHECK;

/* Current UTC time as "2026-11-23T16:17:04Z" (buf of >= 21 bytes). */
void mb_utc_now(char *buf, size_t n);

#endif
