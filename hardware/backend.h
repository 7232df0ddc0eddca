/* backend.h: the device interface every backend implements (DESIGN §4).
 *
 * One flat, versioned struct of function pointers per backend. A NULL member
 * means "not supported"; callers go through the mb_dev_* wrappers in
 * harness/device.c, which fill in defaults and turn a NULL member into
 * MB_ERR_UNSUPPORTED. A backend never aborts the process: it maps its
 * library's errors to MB_ERR_* and records a message with mb_err().
 *
 * Ops are described by small shape structs (mb_op). The life of an op:
 *   supports(op) -> plan(op) (untimed: workspaces, descriptors)
 *   -> launch(plan, io) (timed; may be asynchronous) -> plan_free.
 * All matrices are row-major. "Device memory" is whatever mem_alloc returns;
 * on the CPU backend it is host memory.
 */
#ifndef MB_BACKEND_H
#define MB_BACKEND_H

#include "../harness/mb.h"

#define MB_BACKEND_ABI 1

typedef struct mb_dev mb_dev;   /* a backend's open device (opaque) */
typedef struct mb_plan mb_plan; /* a backend's prepared op (opaque) */
typedef struct mb_comm mb_comm; /* a backend's communicator over a group (opaque) */

/* A group of ranks to communicate in. mpi_comm points to an MPI_Comm (kept
 * as void * so that this header needs no MPI); NULL means a group of one
 * process with no MPI at all. */
typedef struct mb_group {
	int rank, size;
	const void *mpi_comm;
} mb_group;

typedef enum {
	MB_OP_GEMM,          /* C = alpha * op(A) op(B) + beta * C */
	MB_OP_ROUTER,        /* logits -> scores, top-k experts and weights */
	MB_OP_ROUTER_BWD,    /* d(top-k weights) -> d(logits) */
	MB_OP_PERMUTE,       /* sort (token, k) pairs by expert; gather token rows */
	MB_OP_PERMUTE_BWD,   /* sum each token's expert-ordered row gradients */
	MB_OP_UNPERMUTE,     /* y[t] = sum_j w[t,j] * ys[pos[t,j]] */
	MB_OP_UNPERMUTE_BWD, /* dy -> d(ys) and d(w) */
	MB_OP_GMM,           /* grouped matmul over contiguous row groups */
	MB_OP_SWIGLU,        /* a = silu(g) * u, with [g|u] side by side */
	MB_OP_SWIGLU_BWD,    /* d(a) -> d([g|u]) */
	MB_OP_ATTN_FWD,      /* causal self-attention core: softmax(Q K^T * scale) V */
	MB_OP_ATTN_BWD,      /* d(O) -> d(Q), d(K), d(V) */
	MB_OP_ALLTOALLV,     /* each rank sends a variable number of rows to each rank */
	MB_OP_ALLREDUCE,     /* sum of a buffer over the group, in place */
	MB_OP_RMSNORM,       /* y = x / rms(x) * gamma, per row */
	MB_OP_RMSNORM_BWD,   /* d(y) -> d(x), d(gamma) */
	MB_OP_EMBED,         /* y[r] = table[ids[r]] */
	MB_OP_EMBED_BWD,     /* d(table) = scatter-add of d(y) rows by id */
	MB_OP_XENT,          /* mean softmax cross-entropy and its gradient */
	MB_OP_ADAMW,         /* one AdamW step on a parameter buffer */
	MB_OP_ADD,           /* y += alpha * x, element-wise */
	MB_OP_KCAT,          /* MLA keys: [k_nope per head | k_rope shared by the heads] */
	MB_OP_KCAT_BWD,      /* d(K) -> d(k_nope), d(k_rope) */
	MB_OP_COUNT
} mb_op_kind;

typedef enum { MB_SCORE_SOFTMAX = 0, MB_SCORE_SIGMOID = 1 } mb_score_fn;

/* How each group of MB_OP_GMM multiplies (X_g has m_g rows, from offsets):
 *   NN: Y_g (m_g x n) = X_g (m_g x k) * W_g (k x n)
 *   NT: Y_g (m_g x n) = X_g (m_g x k) * W_g^T, W_g stored n x k
 *   TN: W_g (k x n)   = X_g^T (k x m_g) * D_g (m_g x n); the output is per group
 */
typedef enum { MB_GMM_NN = 0, MB_GMM_NT = 1, MB_GMM_TN = 2 } mb_gmm_mode;

/* MB_OP_GEMM operands held in fp32 whatever the op's dtype (mb_op.u.gemm.fp32). */
enum { MB_GEMM_A_FP32 = 1, MB_GEMM_B_FP32 = 2, MB_GEMM_C_FP32 = 4 };

typedef struct mb_op {
	mb_op_kind kind;
	mb_dtype dtype; /* of activations and weights; routing data is fp32/int */
	union {
		/* GEMM: in[0]=A, in[1]=B, out[0]=C. A is m x k (k x m if trans_a),
		 * B is k x n (n x k if trans_b), C is m x n. Operands are of
		 * dtype except those named in fp32 (MB_GEMM_*_FP32), which are
		 * fp32 routing data whatever dtype is (gmm's router GEMMs). */
		struct {
			int64_t m, n, k;
			int trans_a, trans_b;
			float alpha, beta;
			unsigned fp32; /* MB_GEMM_*_FP32 bits; 0 (zero-initialised) = none */
		} gemm;
		/* ROUTER: in[0]=logits fp32 [tokens][experts];
		 *   out[0]=idx int32 [tokens][top_k] (chosen experts, best first),
		 *   out[1]=w fp32 [tokens][top_k] (scores renormalised over the top-k),
		 *   out[2]=scores fp32 [tokens][experts] (softmax or sigmoid of logits),
		 *   bias (fp32 [experts], or NULL) is added to the scores for the
		 *   choice only, as in DeepSeek-V3's aux-loss-free routing.
		 *   groups (MoGE, Pangu Pro MoE): 0 or 1 = ungrouped; otherwise the
		 *   experts form `groups` equal contiguous groups (experts and top_k
		 *   multiples of groups) and the top_k/groups best of each group are
		 *   chosen, so every group gets tokens*top_k/groups pairs; idx is
		 *   then ordered group by group, best first within a group. The
		 *   weights are renormalised over all top_k chosen as without groups.
		 * ROUTER_BWD: in[0]=dw fp32 [tokens][top_k], in[1]=idx, in[2]=w,
		 *   in[3]=scores; out[0]=dlogits fp32 [tokens][experts]. */
		struct {
			int64_t tokens, experts, top_k;
			mb_score_fn score;
			const float *bias; /* host pointer, read at plan time */
			int64_t groups;    /* MoGE groups; 0 (zero-initialised) = ungrouped */
		} router;
		/* PERMUTE: in[0]=x [tokens][hidden], in[1]=idx int32 [tokens][top_k];
		 *   out[0]=xs [tokens*top_k][hidden] in expert order (stable by token),
		 *   out[1]=offsets int64 [experts+1] (group g is rows
		 *   offsets[g]..offsets[g+1]), out[2]=pos int32 [tokens][top_k]
		 *   (the row of pair (t,j) in xs).
		 * PERMUTE_BWD: in[0]=dxs [tokens*top_k][hidden], in[1]=pos;
		 *   out[0]=dx [tokens][hidden] (dx = accumulate ? dx + sum : sum).
		 * UNPERMUTE: in[0]=ys [tokens*top_k][hidden], in[1]=pos, in[2]=w;
		 *   out[0]=y [tokens][hidden].
		 * UNPERMUTE_BWD: in[0]=dy [tokens][hidden], in[1]=ys, in[2]=pos,
		 *   in[3]=w; out[0]=dys [tokens*top_k][hidden], out[1]=dw fp32
		 *   [tokens][top_k]. */
		struct {
			int64_t tokens, hidden, experts, top_k;
			int accumulate;
		} perm;
		/* GMM: in[0]=X [rows][k] (NN, NT) or [rows][k] (TN), in[1]=W
		 *   [groups][k][n] (NN), [groups][n][k] (NT) or D [rows][n] (TN),
		 *   in[2]=offsets int64 [groups+1]; out[0]=Y [rows][n] (NN, NT) or
		 *   dW [groups][k][n] (TN). rows is the capacity; the rows used are
		 *   offsets[0]..offsets[groups] and may differ per group, zero included.
		 *   accumulate adds into out[0] instead of overwriting. */
		struct {
			int64_t groups, rows, k, n;
			mb_gmm_mode mode;
			int accumulate;
		} gmm;
		/* SWIGLU: in[0]=gu [rows][2*ffn] (gate then up); out[0]=a [rows][ffn].
		 * SWIGLU_BWD: in[0]=gu, in[1]=da [rows][ffn]; out[0]=dgu [rows][2*ffn]. */
		struct {
			int64_t rows, ffn;
		} act;
		/* ATTN_FWD: in[0]=Q [batch][seq][heads][d_qk], in[1]=K
		 *   [batch][seq][kv_heads][d_qk], in[2]=V [batch][seq][kv_heads][d_v];
		 *   out[0]=O [batch][seq][heads][d_v], out[1]=lse fp32
		 *   [batch][heads][seq] (log-sum-exp of each score row, kept for the
		 *   backward). Query head h reads kv head h / (heads / kv_heads)
		 *   (GQA; MHA and expanded MLA have kv_heads = heads). Causal: query
		 *   i sees keys 0..i. MLA is d_qk = qk_nope + qk_rope, d_v = v_head_dim.
		 * ATTN_BWD: in[0]=dO, in[1]=Q, in[2]=K, in[3]=V, in[4]=O, in[5]=lse;
		 *   out[0]=dQ, out[1]=dK, out[2]=dV (shapes of Q, K, V). */
		struct {
			int64_t batch, seq, heads, kv_heads, d_qk, d_v;
			float scale; /* usually 1/sqrt(d_qk) */
			int causal;
		} attn;
		/* ALLTOALLV over comm: in[0]=send rows, in[1]=send_counts int64
		 *   [size] (rows to each rank, host memory, read at launch),
		 *   in[2]=recv_counts int64 [size] (host); out[0]=recv rows. Rows are
		 *   row_bytes each, packed by destination (source) rank in rank
		 *   order; capacity bounds the rows of either buffer.
		 * ALLREDUCE over comm: out[0]=buffer of count elements of dtype,
		 *   summed in place. */
		struct {
			mb_comm *comm;
			int64_t row_bytes, capacity, count;
		} coll;
		/* RMSNORM: in[0]=x [rows][dim], in[1]=gamma [dim]; out[0]=y,
		 *   out[1]=rstd fp32 [rows] (1/sqrt(mean(x^2) + eps), for the bwd).
		 * RMSNORM_BWD: in[0]=dy, in[1]=x, in[2]=gamma, in[3]=rstd;
		 *   out[0]=dx (dx += when accumulate), out[1]=dgamma [dim]
		 *   (overwritten; summed over rows in a fixed order).
		 * EMBED: in[0]=table [vocab][dim], in[1]=ids int32 [rows];
		 *   out[0]=y [rows][dim].
		 * EMBED_BWD: in[0]=dy [rows][dim], in[1]=ids; out[0]=dtable
		 *   [vocab][dim] (overwritten; deterministic order).
		 * XENT: in[0]=logits [rows][vocab], in[1]=targets int32 [rows];
		 *   out[0]=dlogits [rows][vocab] (gradient of the mean loss),
		 *   out[1]=loss fp32 [1] (mean over rows).
		 * ADD: in[0]=x [rows*dim]; out[0]=y; y += alpha * x. */
		struct {
			int64_t rows, dim, vocab;
			float eps, alpha;
			int accumulate;
		} row;
		/* ADAMW: in[0]=grad [count]; out[0]=param, out[1]=m, out[2]=v
		 *   (all fp32, updated in place). The plan counts its launches: the
		 *   n-th launch uses step n for the bias correction. */
		struct {
			int64_t count;
			float lr, beta1, beta2, eps, weight_decay;
		} adamw;
		/* KCAT: in[0]=k_nope [rows][heads][d_nope], in[1]=k_rope
		 *   [rows][d_rope]; out[0]=K [rows][heads][d_nope + d_rope]: each
		 *   head's key is its own d_nope part followed by the d_rope part
		 *   that all heads share (MLA's decoupled rope key; RoPE itself is
		 *   not applied by this op).
		 * KCAT_BWD: in[0]=dK [rows][heads][d_nope + d_rope];
		 *   out[0]=dk_nope [rows][heads][d_nope], out[1]=dk_rope
		 *   [rows][d_rope] (summed over the heads in head order). */
		struct {
			int64_t rows, heads, d_nope, d_rope;
		} kcat;
	} u;
} mb_op;

#define MB_IO_MAX 6

/* The buffers of one launch; which slot holds what is documented per op. */
typedef struct mb_io {
	const void *in[MB_IO_MAX];
	void *out[MB_IO_MAX];
} mb_io;

/* What a backend says about its open device; strings are owned by the dev. */
typedef struct mb_dev_info {
	const char *name;     /* "Intel(R) Xeon(R) ...", "NVIDIA H100 80GB HBM3" */
	const char *kind;     /* "cpu", "gpu", "npu", "none" */
	const char *library;  /* "OpenBLAS 0.3.21 ...", "cuBLAS 13.1" */
	int threads;          /* host threads the backend computes with, or 0 */
	uint64_t memory_bytes; /* device memory, 0 if unknown */
	const char *fault;    /* op name whose results are deliberately corrupted (tests), or NULL */
} mb_dev_info;

typedef struct mb_backend {
	int abi;             /* MB_BACKEND_ABI */
	const char *name;    /* CLI and JSON name: "cpu", "null", "cuda" */
	const char *summary; /* one line for `moebench list` */

	/* 1 if a device is usable, 0 if not (why says what is missing). */
	int (*probe)(char *why, size_t n);
	int (*open)(mb_dev **out) MB_MUST_CHECK;
	void (*close)(mb_dev *dev); /* accepts NULL */
	void (*describe)(mb_dev *dev, mb_dev_info *out);

	void *(*mem_alloc)(mb_dev *dev, size_t bytes); /* NULL on failure */
	void (*mem_free)(mb_dev *dev, void *p);       /* accepts NULL */
	int (*upload)(mb_dev *dev, void *dst, const void *src, size_t bytes);
	int (*download)(mb_dev *dev, void *dst, const void *src, size_t bytes);
	int (*sync)(mb_dev *dev); /* wait until every launched op has finished */

	/* 0 if the op can run, else MB_ERR_UNSUPPORTED with the reason recorded. */
	int (*supports)(mb_dev *dev, const mb_op *op);
	int (*plan)(mb_dev *dev, const mb_op *op, mb_plan **out);
	int (*launch)(mb_dev *dev, mb_plan *plan, const mb_io *io);
	void (*plan_free)(mb_dev *dev, mb_plan *plan); /* accepts NULL */

	/* Collectives (optional): a communicator over group, used by
	 * ALLTOALLV and ALLREDUCE ops. Every rank of the group must call it. */
	int (*comm_init)(mb_dev *dev, const mb_group *group, mb_comm **out);
	void (*comm_free)(mb_dev *dev, mb_comm *comm); /* accepts NULL */
} mb_backend;

extern const mb_backend mb_backend_null;
extern const mb_backend mb_backend_cpu;

/* Name of an op kind ("gmm", "router", ...); these names are also what the
 * MOEBENCH_FAULT test hook accepts. */
const char *mb_op_name(mb_op_kind kind);

/* Wrappers that check for NULL members (harness/device.c). */
int mb_dev_open(const mb_backend *be, mb_dev **out) MB_MUST_CHECK;
void mb_dev_close(const mb_backend *be, mb_dev *dev);
void *mb_dev_alloc(const mb_backend *be, mb_dev *dev, size_t bytes);
void mb_dev_free(const mb_backend *be, mb_dev *dev, void *p);
int mb_dev_upload(const mb_backend *be, mb_dev *dev, void *dst, const void *src, size_t bytes) MB_MUST_CHECK;
int mb_dev_download(const mb_backend *be, mb_dev *dev, void *dst, const void *src, size_t bytes) MB_MUST_CHECK;
int mb_dev_sync(const mb_backend *be, mb_dev *dev) MB_MUST_CHECK;
/* supports + plan in one call; on failure *out is NULL. */
int mb_dev_plan(const mb_backend *be, mb_dev *dev, const mb_op *op, mb_plan **out) MB_MUST_CHECK;
int mb_dev_launch(const mb_backend *be, mb_dev *dev, mb_plan *plan, const mb_io *io) MB_MUST_CHECK;
void mb_dev_plan_free(const mb_backend *be, mb_dev *dev, mb_plan *plan);
int mb_dev_comm_init(const mb_backend *be, mb_dev *dev, const mb_group *group,
		     mb_comm **out) MB_MUST_CHECK;
void mb_dev_comm_free(const mb_backend *be, mb_dev *dev, mb_comm *comm);

#endif
