/* suite.h: what a workload declares, and the runner contract.
 *
 * A suite is a const descriptor. The runner owns every loop and every
 * clock; a suite never times itself. For each case the runner calls:
 *   preset (fills model/size values) -> validate (cross-parameter checks)
 *   -> cost -> setup (untimed; allocates and uploads) -> run x warmup
 *   -> run x iters, timed, each followed by a device sync -> verify
 *   -> teardown (always, even after a failed setup).
 * run() must not allocate; it launches ops that setup planned.
 */
#ifndef MB_SUITE_H
#define MB_SUITE_H

#include "../hardware/backend.h"
#include "../harness/params.h"
#include "presets.h"

/* What one iteration costs; every metric is derived from this in one place
 * (harness/cost.c). FLOP conventions are in README ("FLOP counting"). */
typedef struct mb_cost {
	double flops;         /* model FLOPs, Megatron-LM convention */
	double flops_palm;    /* PaLM convention (no causal halving) */
	double tokens;        /* tokens processed per iteration */
	double bytes;         /* bytes read and written by the op bodies, or 0 */
	double comm_bytes;    /* bytes sent to other ranks, or 0 (mean per rank) */
	double comm_bytes_inter; /* of those, bytes to ranks on other nodes */
} mb_cost;

/* The outcome of verify(). */
typedef struct mb_check {
	int passed;              /* 1 if within tolerance and all finite */
	const char *method;      /* "fp64 reference, all outputs", ... */
	double tolerance;        /* allowed relative error */
	double max_rel_err;      /* worst |got - ref| / scale over checked values */
	double max_abs_err;
	int64_t checked;         /* values compared */
	int64_t mismatched;      /* values outside tolerance */
	int64_t nonfinite;       /* NaN or Inf seen in any output */
	char detail[256];        /* where the worst error was, or why it failed */
} mb_check;

/* Suites that compare against an fp64 reference use relative errors
 * |got - ref| / max(max |ref| of the tensor, this floor): the generated
 * inputs are of size ~1, so a reference that stays below it is
 * cancellation (an exactly-zero gradient, say), not signal. */
#define MB_CHECK_SCALE_FLOOR 1e-3

#define MB_INFO_MAX 16

/* Extra per-case facts a suite reports (group sizes, imbalance, ...). */
typedef struct mb_case_info {
	int n;
	struct {
		char key[40];
		double val;
	} kv[MB_INFO_MAX];
} mb_case_info;

/* Add key = val to info (ignored when full). */
void mb_info_add(mb_case_info *info, const char *key, double val);

/* What setup() gets. */
typedef struct mb_case_ctx {
	const mb_backend *be;
	mb_dev *dev;
	const mb_params *params;
	uint64_t seed;
	mb_group world; /* every rank of the run (size 1 without a launcher) */
	const int *node_of; /* [world.size]: each rank's node; NULL: all on one */
	/* A sub-group of the world: the ranks passing the same color, ordered
	 * by key; collective (every rank calls it at the same point). NULL
	 * without a launcher. Free with group_free. */
	int (*split)(const struct mb_case_ctx *ctx, int color, int key, mb_group *out);
	void (*group_free)(mb_group *g);
	const void *world_handle; /* what split needs (the runner's world) */
} mb_case_ctx;

typedef struct mb_suite {
	const char *name;    /* file, CLI and JSON name */
	const char *summary; /* one line */
	const mb_param_def *params;
	int nparams;

	/* Set the parameters a model and size preset imply (mb_params_set with
	 * MB_SRC_PRESET). model is never NULL. */
	int (*preset)(const mb_model *model, mb_size size, mb_params *p) MB_MUST_CHECK;
	/* Cross-parameter checks: MB_ERR_USAGE with one line naming the
	 * parameter and the accepted range. */
	int (*validate)(const mb_params *p) MB_MUST_CHECK;
	int (*cost)(const mb_params *p, mb_cost *out) MB_MUST_CHECK;
	/* MB_ERR_UNSUPPORTED (skipped) if the backend cannot run it. */
	int (*setup)(const mb_case_ctx *ctx, void **state) MB_MUST_CHECK;
	int (*run)(void *state) MB_MUST_CHECK;
	int (*verify)(void *state, mb_check *out) MB_MUST_CHECK;
	void (*info)(void *state, mb_case_info *out); /* optional */
	void (*teardown)(void *state);                /* accepts NULL */
	/* Optional: the cost once setup has run, for a suite whose cost depends
	 * on the world or the seed (alltoall's bytes to other ranks); replaces
	 * what cost() said. */
	int (*case_cost)(void *state, mb_cost *out) MB_MUST_CHECK;
	/* Optional: what the parameters need of the world (ep x dp = ranks,
	 * experts spread evenly, ...), checked for every case once the ranks
	 * are known and before any work: MB_ERR_USAGE with one line. */
	int (*world_fits)(const mb_params *p, int world_size) MB_MUST_CHECK;
} mb_suite;

/* Expert- and data-parallel group sizes over world_size ranks: 0 derives
 * one from the other (both 0: one EP group of every rank); ep x dp must be
 * world_size. MB_ERR_USAGE with one line naming suite otherwise. */
int mb_group_sizes(const char *suite, int world_size, int *ep, int *dp) MB_MUST_CHECK;

extern const mb_suite mb_suite_gmm;
extern const mb_suite mb_suite_gemm;
extern const mb_suite mb_suite_attention;
extern const mb_suite mb_suite_alltoall;
extern const mb_suite mb_suite_train_step;

#endif
