/* train_step.h: hooks into the train_step suite's state for tests.
 *
 * The suite (train_step.c) runs whole training steps; the unit test checks
 * its gradients against finite differences of the loss, which needs the
 * forward pass alone, the backward without the optimizer, and the parameter
 * and gradient tensors one by one. state is what mb_suite_train_step.setup
 * returned. Tensor pointers are device memory of the case's backend (host
 * memory on the CPU backend): read and write them with mb_dev_download and
 * mb_dev_upload.
 */
#ifndef MB_TRAIN_STEP_H
#define MB_TRAIN_STEP_H

#include "../harness/mb.h"

/* One parameter tensor of this rank (an expert tensor holds the rank's
 * experts only). */
typedef struct mb_ts_tensor {
	const char *name; /* "embed", "l1.wq", "l2.experts.w1", ... (owned by the state) */
	int64_t count;    /* elements */
	int expert;       /* 1 for routed-expert weights (not data-parallel) */
	float *param;     /* device, count fp32 */
	float *grad;      /* device, count fp32: d(mean loss)/d(param) after a backward */
} mb_ts_tensor;

/* Number of parameter tensors. */
int mb_ts_tensor_count(const void *state);
/* Tensor i, 0 <= i < mb_ts_tensor_count; MB_ERR_USAGE if out of range. */
int mb_ts_tensor_get(const void *state, int i, mb_ts_tensor *out) MB_MUST_CHECK;

/* The forward pass only; *loss = the mean cross-entropy of this rank's
 * tokens. Parameters and the optimizer are untouched. */
int mb_ts_forward(void *state, double *loss) MB_MUST_CHECK;
/* Forward and backward: every tensor's grad is set (on one rank, the exact
 * gradient of the loss; no allreduce, no optimizer step). */
int mb_ts_gradients(void *state, double *loss) MB_MUST_CHECK;

/* Entries in the routing record: layers with MoE x tokens x top_k. */
int64_t mb_ts_routing_len(const void *state);
/* The top-k experts every MoE layer chose in the last forward, layer by
 * layer ([moe layer][token][top_k], int32): a test holds the routing fixed
 * by comparing it before and after a perturbation. */
int mb_ts_routing(void *state, int32_t *idx) MB_MUST_CHECK;

#endif
