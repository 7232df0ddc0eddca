/* train_step_int.h: the train_step suite's internals, shared by its two
 * files: train_step.c (the suite: parameters, presets, FLOPs, run, verify)
 * and train_step_graph.c (the parameter table, the buffers and the launch
 * list of one step). Nothing outside the suite includes it.
 */
#ifndef MB_TRAIN_STEP_INT_H
#define MB_TRAIN_STEP_INT_H

#include "../harness/mb.h"

#include "suite.h"

/* AdamW settings (DeepSeek-V3's betas and weight decay). */
#define ADAM_B1 0.9f
#define ADAM_B2 0.95f
#define ADAM_EPS 1e-8f
#define WEIGHT_DECAY 0.1f
#define NORM_EPS 1e-6f
/* The synthetic task: target = (TARGET_MUL id + TARGET_ADD) mod vocab. */
#define TARGET_MUL 7
#define TARGET_ADD 3
#define LOSS_CAP 4096 /* per-step losses kept (the first ones; the last is always kept) */

enum { S_IDS = 301, S_PARAM = 1000 }; /* data streams (ref.h), distinct from other suites' */
enum { PH_ATTN, PH_FFN, PH_COMM, PH_OPT, PH_OTHER, PH_N };
enum { PART_FWD, PART_BWD, PART_SYNC, PART_OPT };
enum { G_DECAY, G_NODECAY, G_EXPERT, G_N }; /* parameter groups, in flat-buffer order */

typedef struct ts_shape {
	/* layers, dense_layers, hidden, heads, kv_heads, head_dim, v_head_dim,
	 * q_lora, kv_lora, qk_rope, ffn_dense, moe_ffn, experts, shared_experts,
	 * top_k, vocab, seq, batch, ep */
	int64_t L, Ld, h, H, Hkv, dqk, dv, ql, kvl, rope, fd, f, E, S, k, V, seq, B, ep;
	int64_t T, P;       /* tokens per rank, routed pairs per rank */
	/* world size, local experts, rows of the grouped GEMMs: what an EP rank
	 * may receive, or P when ep = 1 */
	int64_t W, El, Rmax;
	int64_t G;           /* MoGE expert groups of the router; 0 = ungrouped */
	int mla;
	mb_score_fn score;
	double lr;
	mb_dtype dt;
} ts_shape;

typedef struct ts_tensor {
	char name[32];
	int group;
	int64_t n, off; /* elements on this rank; offset in the flat buffers */
	int64_t first;  /* seeded index of element 0 (experts: their global position) */
	double init;    /* U[-init, init), or all ones when init is 0 */
} ts_tensor;

typedef struct ts_item {
	mb_plan *plan; /* NULL: the EP count exchange of layer `layer` (host step) */
	mb_io io;
	int phase, part, layer;
} ts_item;

typedef struct ts_layer {
	int moe;
	/* parameter tensors (indices into ts_state.t, -1 if absent) */
	int g1, wq, wk, wv, wo, wdq, gq, wuq, wdkv, gkv, wuk, wuv, wkr, g2, w1, w2, wr, ws1, ws2,
		we1, we2;
	/* saved activations */
	float *a1, *rstd1, *q, *k, *v, *o, *lse, *cq, *cqn, *rstdq, *ckv, *ckvn, *rstdkv, *kn, *kr;
	float *hres, *a2, *rstd2, *gu, *act;
	float *logits, *w, *scores, *xs, *gue, *acte, *ys;
	int32_t *idx, *pos;
	int64_t *off;
	/* expert parallelism */
	float *xr, *xs2, *ys2, *yr;
	int32_t *idx_r, *pos2;
	int64_t *off2, *cnt_send, *cnt_recv;                         /* device */
	int64_t *off_h, *cnt_send_h, *cnt_recv_h, *send_rows, *recv_rows; /* host */
} ts_layer;

typedef struct ts_state {
	const mb_backend *be;
	mb_dev *dev;
	ts_shape s;
	uint64_t seed;
	int rank;
	mb_comm *comm;      /* the world: gradients of the replicated parameters */
	/* ep > 1: the EP group (the alltoalls) and, with dp > 1, the ranks that
	 * hold the same experts (their gradients); comms are the world's when
	 * a group is the whole world, NULL when it is one rank. */
	mb_comm *ep_comm, *dp_comm;
	mb_group ep_grp, dp_grp;
	int own_ep, own_dp, ep_rank;
	void (*group_free)(mb_group *g);
	ts_tensor *t;
	int nt, emb, gf, wout;
	int64_t n_group[G_N], n_all, n_sync; /* n_sync: gradients allreduced, from 0 */
	float *param, *grad, *adam_m, *adam_v;
	ts_layer *lay;
	float **x; /* residual stream X0..XL */
	float *xf, *rstdf, *logits, *dlogits, *loss;
	int32_t *ids, *tgt;
	/* backward scratch, shared by the layers */
	float *g, *dxf, *da, *d_o, *dq, *dk, *dv, *dcqn, *dcq, *dckvn, *dckv, *dkn, *dkr;
	float *dact, *dgu, *dys, *dw, *dxs, *dlr, *dyr, *dys2, *dw2, *dxs2, *dxr, *ones;
	/* the launch list */
	ts_item *items;
	int nitems, capitems;
	void **bufs;
	int nbufs, capbufs;
	int rc; /* first failure while building */
	int phase, part, layer;
	mb_plan *cnt_plan;   /* EP count exchange */
	int64_t *ones_h;     /* [W] ones: one count row to and from each rank */
	int32_t *idx_r_h;    /* [Rmax] */
	void *zeros;         /* host zeros for clearing new buffers */
	/* results */
	double *loss_hist, loss_last;
	int64_t steps;
	float loss_h;
	double *red; /* device fp64 scratch for verify's allreduces */
	double phase_s[PH_N];
	int profiled;
} ts_state;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Parameter tensor id's values and gradient (device pointers). */
static inline float *prm(const ts_state *st, int id) { return st->param + st->t[id].off; }
static inline float *grd(const ts_state *st, int id) { return st->grad + st->t[id].off; }

/* Build one step on st (shape, world, comm, backend set): the parameter
 * table and flat buffers, seeded parameters and data, every activation
 * buffer, and the planned launches of the forward, backward, gradient
 * allreduce and optimizer. MB_ERR_UNSUPPORTED if the backend lacks an op. */
int mb_ts_graph_build(ts_state *st) MB_MUST_CHECK;

/* Launch the items of parts lo..hi (PART_*) in order. With phase_s (PH_N
 * seconds), sync at every change of phase and add the time to that phase. */
int mb_ts_graph_exec(ts_state *st, int lo, int hi, double *phase_s) MB_MUST_CHECK;

/* Free what mb_ts_graph_build made (plans, device buffers, host arrays);
 * tolerates a half-finished build. Not the communicator nor st itself. */
void mb_ts_graph_free(ts_state *st);

#endif
