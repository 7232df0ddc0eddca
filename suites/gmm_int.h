/* gmm_int.h: what gmm.c (setup, run) and gmm_check.c (verify) share.
 * Private to the gmm suite. */
#ifndef MB_GMM_INT_H
#define MB_GMM_INT_H

#include "ref.h"
#include "suite.h"

/* Seeded tensors, one stream each (ref.h). */
enum { S_X = 1, S_WR, S_W1, S_W2, S_DY, S_SAMPLE };

/* Launches, in order. */
enum {
	OP_LOGITS, OP_ROUTER, OP_PERMUTE, OP_GMM1, OP_SWIGLU, OP_GMM2, OP_UNPERMUTE,
	OP_UNPERMUTE_BWD, OP_GMM2_NT, OP_GMM2_TN, OP_SWIGLU_BWD, OP_GMM1_NT, OP_GMM1_TN,
	OP_PERMUTE_BWD, OP_ROUTER_BWD, OP_DX_ROUTER, OP_DWR, OP_N
};

/* Device buffers. */
enum {
	B_X, B_WR, B_LOGITS, B_IDX, B_W, B_SCORES, B_XS, B_OFF, B_POS, B_W1, B_GU, B_A, B_W2,
	B_YS, B_Y, B_DY, B_DYS, B_DW, B_DA, B_DW2, B_DGU, B_DXS, B_DW1, B_DX, B_DLOGITS, B_DWR,
	B_N
};

typedef struct gmm_shape {
	/* The device's problem: T rows in, hidden, ffn, E experts held, k
	 * choices per row, P = T k routed rows. With ep = 1 these are the
	 * parameters; with ep > 1 (GMM_RECV) the rows are the R pairs the
	 * device received, one choice each (k = 1), over its E = experts/ep
	 * experts, and T = P = R once setup has routed the group. */
	int64_t T, h, f, E, k, P;
	int64_t G;                /* MoGE expert groups (backend.h ROUTER); 0 = ungrouped */
	int64_t tokens, experts, top_k; /* the parameters: per device, of the model */
	int64_t ep, ep_rank;      /* expert-parallel degree; the slice this device holds */
	mb_dtype dt;
	mb_score_fn score;
	double skew;
} gmm_shape;

typedef struct gmm_state {
	const mb_backend *be;
	mb_dev *dev;
	gmm_shape s;
	uint64_t seed;
	void *buf[B_N];
	mb_plan *plan[OP_N];
	mb_io io[OP_N];
	float *x, *wr, *w1, *w2, *dy; /* host copies of the inputs, as uploaded */
	float *bias;                  /* skew bias [experts], or NULL */
	int64_t *off;                 /* host copy of the offsets, for info */
	/* ep > 1: each received row's local expert and routing weight, and the
	 * rows every device of the group received (for info). */
	int32_t *ridx;
	float *rw;
	int64_t *recv;
} gmm_state;

/* The device computes received rows (ep > 1) rather than routing its own. */
#define GMM_RECV(s) ((s)->ep > 1)

#define GIB (1024.0 * 1024.0 * 1024.0)

/* The reference problem over the state's host inputs (not owned). */
mb_ref_moe mb_gmm_problem(const gmm_state *st);
/* Download n values from offset off of device buffer b into out (fp32). */
int mb_gmm_fetch(const gmm_state *st, int b, size_t off, size_t n, float *out) MB_MUST_CHECK;
/* The suite's verify hook (gmm_check.c). */
int mb_gmm_verify(void *state, mb_check *out) MB_MUST_CHECK;

#endif
