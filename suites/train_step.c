/* train_step.c: one full-parameter training step of an L-layer MoE
 * transformer (DESIGN §5), as device launches only.
 *
 * Forward, per rank, T = batch x seq tokens:
 *   X0 = embed(ids)
 *   each layer l: A1 = rmsnorm(Xl); attention(A1) -> Hl = Xl + O Wo;
 *     A2 = rmsnorm(Hl); X(l+1) = Hl + FFN(A2), where FFN is a dense SwiGLU
 *     FFN in the first dense_layers layers and otherwise the MoE: shared
 *     experts (a dense SwiGLU FFN shared_experts x moe_ffn wide) plus the
 *     routed experts (router, top-k, permute, [EP dispatch], grouped GEMM
 *     gate|up, SwiGLU, grouped GEMM down, [EP combine], weighted unpermute)
 *   logits = rmsnorm(XL) Wout; loss = mean cross-entropy(logits, targets)
 * Attention is GQA (Q, K, V projections) or, when kv_lora > 0, DeepSeek's
 * MLA: Q = rmsnorm(A1 Wdq) Wuq (or A1 Wq when q_lora = 0); the keys and
 * values come from the latent C = rmsnorm(A1 Wdkv): K_nope = C Wuk, V = C Wuv,
 * and each head's key is [K_nope | A1 Wkr], the rope part shared by all
 * heads (the KCAT op). RoPE itself is not applied: it rotates pairs of
 * values, adds no matmul FLOPs and does not change what the step costs or
 * how gradients flow through the projections.
 * Backward: the mirror image, the residual gradient flowing in place through
 * one [T][hidden] buffer (each RMSNORM_BWD accumulates into it).
 * Then the data-parallel gradient allreduce over the world (every gradient
 * when ep = 1; with ep = world size the routed experts are sharded, not
 * replicated, so only the other gradients), then AdamW on every parameter
 * (three launches over one flat fp32 buffer: matrices with weight decay,
 * norm gains without, routed experts with).
 *
 * Expert parallelism (ep = world size): rank r holds experts r E/ep ..; after
 * PERMUTE the pairs are in global expert order, hence already packed by
 * destination rank. The per-expert counts come from the device (a download
 * of the expert offsets, the one host step in a run), travel by a small
 * ALLTOALLV, and give the receive counts and the local expert of every
 * received row; a second PERMUTE (top_k 1, a spare group for the unused
 * capacity) groups the received rows by local expert for the grouped GEMMs,
 * and an UNPERMUTE with unit weights restores their order for the return
 * ALLTOALLV.
 *
 * Loss scaling: every rank's loss is the mean over its own tokens; the LM
 * head's backward GEMMs carry alpha = 1/world, so the summed gradients are
 * those of the mean loss over all ranks' tokens.
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ref.h"
#include "suite.h"
#include "train_step.h"

static const mb_param_def ts_params[] = {
	{"layers", MB_PT_INT, "2", 1, 1024, NULL, "transformer layers"},
	{"dense_layers", MB_PT_INT, "1", 0, 1024, NULL,
	 "leading layers with a dense SwiGLU FFN instead of the MoE"},
	{"hidden", MB_PT_INT, "128", 8, 65536, NULL, "model width"},
	{"heads", MB_PT_INT, "4", 1, 1024, NULL, "attention query heads"},
	{"kv_heads", MB_PT_INT, "4", 1, 1024, NULL, "key/value heads (GQA; MLA: equal to heads)"},
	{"head_dim", MB_PT_INT, "32", 1, 1024, NULL, "query/key head width (MLA: nope + rope part)"},
	{"v_head_dim", MB_PT_INT, "32", 1, 1024, NULL, "value head width"},
	{"q_lora", MB_PT_INT, "0", 0, 65536, NULL, "MLA query low-rank width (0: full-rank query)"},
	{"kv_lora", MB_PT_INT, "0", 0, 65536, NULL, "MLA key/value latent width; 0 selects GQA"},
	{"qk_rope", MB_PT_INT, "0", 0, 1024, NULL,
	 "MLA: part of head_dim whose key is shared by the heads (0 for GQA)"},
	{"ffn_dense", MB_PT_INT, "256", 1, 1048576, NULL, "dense-layer FFN intermediate size"},
	{"moe_ffn", MB_PT_INT, "64", 1, 1048576, NULL, "per-expert FFN intermediate size"},
	{"experts", MB_PT_INT, "8", 1, 4096, NULL, "routed experts of the model"},
	{"shared_experts", MB_PT_INT, "1", 0, 64, NULL, "shared experts, each moe_ffn wide"},
	{"top_k", MB_PT_INT, "2", 1, 64, NULL, "routed experts per token"},
	{"vocab", MB_PT_INT, "512", 2, 4194304, NULL, "vocabulary size"},
	{"seq", MB_PT_INT, "64", 1, 1048576, NULL, "sequence length"},
	{"batch", MB_PT_INT, "2", 1, 65536, NULL, "sequences per rank per step (micro-batch)"},
	{"ep", MB_PT_INT, "1", 1, 4096, NULL,
	 "expert-parallel ranks: 1 (experts replicated) or the world size (experts sharded)"},
	{"lr", MB_PT_REAL, "0.001", 0, 1, NULL, "AdamW learning rate (constant)"},
	{"score", MB_PT_ENUM, "softmax", 0, 0, "softmax|sigmoid", "router scoring function"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "activation and weight type"},
};

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
#define GIB (1024.0 * 1024.0 * 1024.0)
#define TS_MAX_BYTES (128.0 * GIB)

enum { S_IDS = 301, S_PARAM = 1000 }; /* data streams (ref.h), distinct from other suites' */
enum { PH_ATTN, PH_FFN, PH_COMM, PH_OPT, PH_OTHER, PH_N };
enum { PART_FWD, PART_BWD, PART_SYNC, PART_OPT };
enum { G_DECAY, G_NODECAY, G_EXPERT, G_N }; /* parameter groups, in flat-buffer order */

typedef struct ts_shape {
	int64_t L, Ld, h, H, Hkv, dqk, dv, ql, kvl, rope, fd, f, E, S, k, V, seq, B, ep;
	int64_t T, P;       /* tokens per rank, routed pairs per rank */
	int64_t W, El, Rmax; /* world size, local experts, rows an EP rank may receive */
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
	mb_comm *comm;
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
	/* results */
	double *loss_hist, loss_last;
	int64_t steps;
	float loss_h;
	double *red;     /* device fp64 scratch for verify's allreduces */
	int64_t red_n;
	double phase_s[PH_N];
	int profiled;
	double replica_diff; /* verify: worst relative checksum difference over ranks */
} ts_state;

/* ---- shapes, presets, validation, cost ---- */

static int ts_shape_get(const mb_params *p, ts_shape *s)
{
	char buf[16];
	memset(s, 0, sizeof *s);
	s->L = mb_param_int(p, "layers");
	s->Ld = mb_param_int(p, "dense_layers");
	s->h = mb_param_int(p, "hidden");
	s->H = mb_param_int(p, "heads");
	s->Hkv = mb_param_int(p, "kv_heads");
	s->dqk = mb_param_int(p, "head_dim");
	s->dv = mb_param_int(p, "v_head_dim");
	s->ql = mb_param_int(p, "q_lora");
	s->kvl = mb_param_int(p, "kv_lora");
	s->rope = mb_param_int(p, "qk_rope");
	s->fd = mb_param_int(p, "ffn_dense");
	s->f = mb_param_int(p, "moe_ffn");
	s->E = mb_param_int(p, "experts");
	s->S = mb_param_int(p, "shared_experts");
	s->k = mb_param_int(p, "top_k");
	s->V = mb_param_int(p, "vocab");
	s->seq = mb_param_int(p, "seq");
	s->B = mb_param_int(p, "batch");
	s->ep = mb_param_int(p, "ep");
	s->lr = mb_param_real(p, "lr");
	s->mla = s->kvl > 0;
	s->T = s->B * s->seq;
	s->P = s->T * s->k;
	s->score = strcmp(mb_param_choice(p, "score", buf, sizeof buf), "sigmoid") == 0
			   ? MB_SCORE_SIGMOID
			   : MB_SCORE_SOFTMAX;
	s->W = 1;
	s->El = s->E;
	s->Rmax = s->P;
	return mb_dtype_parse(mb_param_choice(p, "dtype", buf, sizeof buf), &s->dt);
}

/* The world's share: with ep ranks, each holds E/ep experts and may receive,
 * from each of the W ranks, up to min(top_k, E/ep) pairs per token. */
static void ts_shape_world(ts_shape *s, int64_t W)
{
	s->W = W;
	s->El = s->E / s->ep;
	const int64_t per_tok = s->k < s->El ? s->k : s->El;
	s->Rmax = s->ep > 1 ? W * s->T * per_tok : s->P;
}

/* Parameters on one rank, excluding the routed experts; and the routed
 * experts' (per MoE layer, all local experts). */
static double ts_attn_params(const ts_shape *s)
{
	const double h = (double)s->h, H = (double)s->H;
	if (!s->mla)
		return h * H * s->dqk + h * s->Hkv * (double)(s->dqk + s->dv) + H * s->dv * h;
	const double dn = (double)(s->dqk - s->rope);
	const double q = s->ql ? h * s->ql + s->ql + s->ql * H * s->dqk : h * H * s->dqk;
	return q + h * s->kvl + s->kvl + s->kvl * H * (dn + s->dv) + h * s->rope + H * s->dv * h;
}

/* Device bytes, roughly: parameters, gradients and AdamW states (16 bytes a
 * parameter) and the saved activations of every layer. */
static double ts_bytes(const ts_shape *s)
{
	const double h = (double)s->h, T = (double)s->T, nm = (double)(s->L - s->Ld);
	const double dense = (double)s->L * (ts_attn_params(s) + 2 * h) +
			     s->Ld * 3.0 * h * s->fd + nm * (h * s->E + 3.0 * h * s->S * s->f) +
			     2.0 * s->V * h + h;
	const double experts = nm * 3.0 * h * s->f * (double)s->El;
	const double qkv = (double)s->H * (2.0 * s->dqk + 2.0 * s->dv) + s->ql * 2.0 + s->kvl * 2.0;
	const double act = (double)s->L * T * (8.0 * h + qkv + 3.0 * s->fd) +
			   nm * ((double)s->Rmax * (6.0 * h + 3.0 * s->f) + T * 3.0 * s->S * s->f);
	return 16.0 * (dense + experts) + 4.0 * (act + 2.0 * T * s->V);
}

static int ts_validate(const mb_params *p)
{
	ts_shape s;
	int rc = ts_shape_get(p, &s);
	if (rc)
		return rc;
	if (s.Ld > s.L)
		return mb_err(MB_ERR_USAGE, "dense_layers=%lld is out of range: accepted 0..layers (%lld)",
			      (long long)s.Ld, (long long)s.L);
	if (s.H % s.Hkv)
		return mb_err(MB_ERR_USAGE, "heads=%lld is not a multiple of kv_heads=%lld",
			      (long long)s.H, (long long)s.Hkv);
	if (s.k > s.E)
		return mb_err(MB_ERR_USAGE, "top_k=%lld is out of range: accepted 1..experts (%lld)",
			      (long long)s.k, (long long)s.E);
	if (s.E % s.ep)
		return mb_err(MB_ERR_USAGE, "ep=%lld does not divide experts=%lld", (long long)s.ep,
			      (long long)s.E);
	if (s.mla && s.Hkv != s.H)
		return mb_err(MB_ERR_USAGE, "kv_heads=%lld with MLA (kv_lora > 0): accepted heads (%lld)",
			      (long long)s.Hkv, (long long)s.H);
	if (s.mla && s.rope >= s.dqk)
		return mb_err(MB_ERR_USAGE, "qk_rope=%lld is out of range: accepted 0..head_dim-1 (%lld)",
			      (long long)s.rope, (long long)s.dqk - 1);
	if (!s.mla && (s.ql || s.rope))
		return mb_err(MB_ERR_USAGE, "q_lora and qk_rope need MLA (kv_lora > 0); with GQA "
					    "they must be 0");
	ts_shape_world(&s, s.ep);
	const double bytes = ts_bytes(&s);
	if (bytes > TS_MAX_BYTES)
		return mb_err(MB_ERR_USAGE, "train_step would need about %.1f GiB per rank; the limit "
					    "is %.0f GiB (lower layers, hidden, seq or experts)",
			      bytes / GIB, TS_MAX_BYTES / GIB);
	return 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Size presets. quick: seconds for a whole run on 2 CPU cores (a step well
 * under a second): every width capped small, 2 layers with one dense layer
 * when the model has dense layers. standard: a few seconds a step on 2
 * cores ("minutes on one CPU node"): hidden 1024, 8 heads at the model's head
 * widths, 8 experts, and up to 4 layers. full: one device's share of a real
 * run: the model's widths, heads, latent widths, vocabulary and expert width,
 * 4 layers (a pipeline stage: DeepSeek-V3 trained with PP16, 61/16 ~ 4),
 * and a slice of 8 experts with top_k up to 4 (the routed work per token of
 * EP64's 4 local experts; a whole expert set does not fit one device),
 * at sequence length 4096. In every size the kv-head ratio is kept. */
static int ts_preset(const mb_model *m, mb_size size, mb_params *p)
{
	if (m->experts < 1 || m->moe_ffn < 1)
		return mb_err(MB_ERR_USAGE, "model %s has no routed experts for train_step", m->name);
	const int mla = m->attention && strcmp(m->attention, "mla") == 0;
	const int64_t ratio = m->kv_heads > 0 ? max64(1, m->heads / m->kv_heads) : 1;
	int64_t L, Ld, h, H, dqk, dv, rope, ql, kvl, E, k, f, fd, V, seq, B;
	const int64_t dl = m->dense_layers > 0 ? 1 : 0;
	switch (size) {
	case MB_SIZE_QUICK:
		L = min64(m->layers, 2), h = min64(m->hidden, 128), H = min64(m->heads, 4);
		dqk = min64(m->head_dim, 32), dv = min64(m->v_head_dim, 32);
		rope = mla ? min64(m->qk_rope, dqk / 2) : 0;
		ql = min64(m->q_lora, 64), kvl = min64(m->kv_lora, 64);
		E = min64(m->experts, 8), k = min64(m->top_k, 2), f = min64(m->moe_ffn, 64);
		fd = min64(m->ffn_dense, 256), V = min64(m->vocab, 512), seq = 64, B = 2;
		break;
	case MB_SIZE_STANDARD:
		L = min64(m->layers, 4), h = min64(m->hidden, 1024), H = min64(m->heads, 8);
		dqk = m->head_dim, dv = m->v_head_dim, rope = mla ? m->qk_rope : 0;
		ql = min64(m->q_lora, 512), kvl = min64(m->kv_lora, 256);
		E = min64(m->experts, 8), k = min64(m->top_k, 2), f = min64(m->moe_ffn, 512);
		fd = min64(m->ffn_dense, 2048), V = min64(m->vocab, 8192), seq = 512, B = 1;
		break;
	default:
		L = min64(m->layers, 4), h = m->hidden, H = m->heads;
		dqk = m->head_dim, dv = m->v_head_dim, rope = mla ? m->qk_rope : 0;
		ql = m->q_lora, kvl = m->kv_lora;
		E = min64(m->experts, 8), k = min64(m->top_k, 4), f = m->moe_ffn;
		fd = m->ffn_dense, V = m->vocab, seq = 4096, B = 1;
		break;
	}
	Ld = min64(m->dense_layers, dl);
	if (L < 2)
		Ld = 0;
	int64_t Hkv = mla ? H : max64(1, H / ratio);
	while (H % Hkv)
		Hkv--;
	const struct {
		const char *name;
		double v;
	} set[] = {
		{"layers", (double)L}, {"dense_layers", (double)Ld}, {"hidden", (double)h},
		{"heads", (double)H}, {"kv_heads", (double)Hkv}, {"head_dim", (double)dqk},
		{"v_head_dim", (double)dv}, {"q_lora", mla ? (double)ql : 0},
		{"kv_lora", mla ? (double)max64(kvl, 1) : 0}, {"qk_rope", (double)rope},
		{"ffn_dense", (double)max64(fd, 1)}, {"moe_ffn", (double)f},
		{"experts", (double)E}, {"shared_experts", (double)m->shared_experts},
		{"top_k", (double)k}, {"vocab", (double)V}, {"seq", (double)seq},
		{"batch", (double)B},
		{"score", m->score && strcmp(m->score, "sigmoid") == 0 ? 1.0 : 0.0},
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(set); i++) {
		int rc = mb_params_set(p, set[i].name, set[i].v, MB_SRC_PRESET);
		if (rc)
			return rc;
	}
	return 0;
}

/* Model FLOPs of one step on one rank, Megatron-LM's
 * num_floating_point_operations (megatron/training/training.py; the terms
 * are in reference/facts-models-hardware.md §E.2), for T = batch x seq
 * tokens: 6 (forward + weight and input gradients, 2 FLOP per multiply-add)
 * x T x the multiply-adds per token:
 *   attention, per layer:
 *     GQA: h (H dqk + Hkv dqk + Hkv dv) + H dv h + seq H (dqk + dv) / 2
 *          (Megatron's h (q + k + v) + q s/2 x 2 + q h, for dv = dqk)
 *     MLA: q_lora (h + H dqk + 1) [h H dqk without q_lora]
 *          + kv_lora (h + H (d_nope + dv) + 1) + h d_rope + H dv h
 *          + seq H dqk / 2 + seq H dv / 2            (dqk = d_nope + d_rope)
 *   FFN: 3 h (ffn_dense in each dense layer; (top_k + shared) moe_ffn in
 *        each MoE layer)   (SwiGLU: gate, up and down matrices)
 *   LM head: h vocab
 * The "/ 2" is the causal mask; flops_palm is the same count without it.
 * Not counted: router, permute, norms, softmax, embedding lookup, optimizer. */
static void ts_flops(const ts_shape *s, double *megatron, double *palm)
{
	const double h = (double)s->h, H = (double)s->H, seq = (double)s->seq;
	double proj;
	if (s->mla) {
		const double dn = (double)(s->dqk - s->rope);
		proj = (s->ql ? s->ql * (h + H * s->dqk + 1) : h * H * s->dqk) +
		       s->kvl * (h + H * (dn + s->dv) + 1) + h * s->rope + H * s->dv * h;
	} else {
		proj = h * (H * s->dqk + s->Hkv * (double)(s->dqk + s->dv)) + H * s->dv * h;
	}
	const double core = seq * H * (double)(s->dqk + s->dv); /* QK^T and PV, unmasked */
	const double ffn = 3.0 * h * ((double)s->fd * s->Ld +
				      (double)(s->k + s->S) * s->f * (double)(s->L - s->Ld));
	const double head = h * (double)s->V, T = (double)s->T;
	*megatron = 6.0 * T * ((double)s->L * (proj + core / 2) + ffn + head);
	*palm = 6.0 * T * ((double)s->L * (proj + core) + ffn + head);
}

static int ts_cost(const mb_params *p, mb_cost *out)
{
	ts_shape s;
	int rc = ts_shape_get(p, &s);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	ts_flops(&s, &out->flops, &out->flops_palm);
	out->tokens = (double)s.T;
	return 0;
}

/* ---- the parameter table ---- */

static int ts_param(ts_state *st, int layer, const char *name, int group, int64_t n, double init)
{
	if (st->rc)
		return -1;
	ts_tensor *t = &st->t[st->nt];
	if (layer >= 0)
		snprintf(t->name, sizeof t->name, "l%d.%s", layer, name);
	else
		mb_strlcpy(t->name, name, sizeof t->name);
	t->group = group;
	t->n = n;
	t->init = init;
	if (group == G_EXPERT) /* element 0 is this rank's first expert in the global set */
		t->first = st->s.ep > 1 ? (int64_t)st->rank * n : 0;
	return st->nt++;
}

/* Every parameter, layer by layer; the table is the same on every rank and
 * for every ep, so a tensor's seeded stream (its index) is too. */
static int ts_tensors(ts_state *st)
{
	const ts_shape *s = &st->s;
	const double h = (double)s->h;
	st->t = calloc((size_t)(8 + 24 * s->L), sizeof *st->t);
	st->lay = calloc((size_t)s->L, sizeof *st->lay);
	if (!st->t || !st->lay)
		return mb_err(MB_ERR_NOMEM, "train_step: out of memory for the parameter table");
	st->emb = ts_param(st, -1, "embed", G_DECAY, s->V * s->h, 1.0);
	for (int l = 0; l < s->L; l++) {
		ts_layer *y = &st->lay[l];
		const int64_t H = s->H, dn = s->dqk - s->rope;
		y->moe = l >= s->Ld;
		y->wq = y->wk = y->wv = y->wdq = y->gq = y->wuq = y->wdkv = y->gkv = y->wuk = y->wuv =
			y->wkr = y->w1 = y->w2 = y->wr = y->ws1 = y->ws2 = y->we1 = y->we2 = -1;
		y->g1 = ts_param(st, l, "norm1", G_NODECAY, s->h, 0);
		if (!s->mla) {
			y->wq = ts_param(st, l, "wq", G_DECAY, s->h * H * s->dqk, 1 / sqrt(h));
			y->wk = ts_param(st, l, "wk", G_DECAY, s->h * s->Hkv * s->dqk, 1 / sqrt(h));
			y->wv = ts_param(st, l, "wv", G_DECAY, s->h * s->Hkv * s->dv, 1 / sqrt(h));
		} else {
			if (s->ql) {
				y->wdq = ts_param(st, l, "wdq", G_DECAY, s->h * s->ql, 1 / sqrt(h));
				y->gq = ts_param(st, l, "norm_q", G_NODECAY, s->ql, 0);
				y->wuq = ts_param(st, l, "wuq", G_DECAY, s->ql * H * s->dqk,
						   1 / sqrt((double)s->ql));
			} else {
				y->wq = ts_param(st, l, "wq", G_DECAY, s->h * H * s->dqk, 1 / sqrt(h));
			}
			y->wdkv = ts_param(st, l, "wdkv", G_DECAY, s->h * s->kvl, 1 / sqrt(h));
			y->gkv = ts_param(st, l, "norm_kv", G_NODECAY, s->kvl, 0);
			y->wuk = ts_param(st, l, "wuk", G_DECAY, s->kvl * H * dn, 1 / sqrt((double)s->kvl));
			y->wuv = ts_param(st, l, "wuv", G_DECAY, s->kvl * H * s->dv,
					   1 / sqrt((double)s->kvl));
			if (s->rope)
				y->wkr = ts_param(st, l, "wkr", G_DECAY, s->h * s->rope, 1 / sqrt(h));
		}
		y->wo = ts_param(st, l, "wo", G_DECAY, H * s->dv * s->h, 1 / sqrt((double)(H * s->dv)));
		y->g2 = ts_param(st, l, "norm2", G_NODECAY, s->h, 0);
		if (!y->moe) {
			y->w1 = ts_param(st, l, "ffn.w1", G_DECAY, s->h * 2 * s->fd, 1 / sqrt(h));
			y->w2 = ts_param(st, l, "ffn.w2", G_DECAY, s->fd * s->h, 1 / sqrt((double)s->fd));
			continue;
		}
		y->wr = ts_param(st, l, "router", G_DECAY, s->h * s->E, 1 / sqrt(h));
		if (s->S) {
			const int64_t fs = s->S * s->f;
			y->ws1 = ts_param(st, l, "shared.w1", G_DECAY, s->h * 2 * fs, 1 / sqrt(h));
			y->ws2 = ts_param(st, l, "shared.w2", G_DECAY, fs * s->h, 1 / sqrt((double)fs));
		}
		y->we1 = ts_param(st, l, "experts.w1", G_EXPERT, s->El * s->h * 2 * s->f, 1 / sqrt(h));
		y->we2 = ts_param(st, l, "experts.w2", G_EXPERT, s->El * s->f * s->h,
				   1 / sqrt((double)s->f));
	}
	st->gf = ts_param(st, -1, "norm_final", G_NODECAY, s->h, 0);
	st->wout = ts_param(st, -1, "lm_head", G_DECAY, s->h * s->V, 1 / sqrt(h));
	/* flat layout: [decay | no decay | experts]; each group contiguous */
	int64_t at = 0;
	for (int g = 0; g < G_N; g++) {
		st->n_group[g] = 0;
		for (int i = 0; i < st->nt; i++)
			if (st->t[i].group == g) {
				st->t[i].off = at;
				at += st->t[i].n;
				st->n_group[g] += st->t[i].n;
			}
	}
	st->n_all = at;
	/* replicated gradients are summed over the ranks; sharded experts are not */
	st->n_sync = s->ep > 1 ? at - st->n_group[G_EXPERT] : at;
	return st->rc;
}

static float *prm(const ts_state *st, int id) { return st->param + st->t[id].off; }
static float *grd(const ts_state *st, int id) { return st->grad + st->t[id].off; }

/* ---- buffers and launches ---- */

static void *ts_buf(ts_state *st, int64_t n, size_t esize)
{
	if (st->rc)
		return NULL;
	if (st->nbufs == st->capbufs) {
		int cap = st->capbufs ? 2 * st->capbufs : 256;
		void **b = realloc(st->bufs, (size_t)cap * sizeof *b);
		if (!b) {
			st->rc = mb_err(MB_ERR_NOMEM, "train_step: out of memory for the buffer list");
			return NULL;
		}
		st->bufs = b;
		st->capbufs = cap;
	}
	const size_t bytes = (size_t)(n > 0 ? n : 1) * esize;
	void *p = mb_dev_alloc(st->be, st->dev, bytes);
	if (!p) {
		st->rc = mb_err(MB_ERR_NOMEM, "train_step: %s backend could not allocate %.1f MiB",
				st->be->name, (double)bytes / (1024.0 * 1024.0));
		return NULL;
	}
	st->bufs[st->nbufs++] = p;
	/* zeroed, so that rows a step does not write (EP capacity) hold numbers */
	static const char zero[65536];
	for (size_t at = 0; at < bytes && !st->rc; at += sizeof zero) {
		const size_t n1 = bytes - at < sizeof zero ? bytes - at : sizeof zero;
		st->rc = mb_dev_upload(st->be, st->dev, (char *)p + at, zero, n1);
	}
	return st->rc ? NULL : p;
}

static float *F(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(float)); }
static int32_t *I32(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(int32_t)); }
static int64_t *I64(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(int64_t)); }

static ts_item *ts_item_new(ts_state *st)
{
	if (st->rc)
		return NULL;
	if (st->nitems == st->capitems) {
		int cap = st->capitems ? 2 * st->capitems : 256;
		ts_item *it = realloc(st->items, (size_t)cap * sizeof *it);
		if (!it) {
			st->rc = mb_err(MB_ERR_NOMEM, "train_step: out of memory for the launch list");
			return NULL;
		}
		st->items = it;
		st->capitems = cap;
	}
	ts_item *it = &st->items[st->nitems++];
	memset(it, 0, sizeof *it);
	it->phase = st->phase;
	it->part = st->part;
	it->layer = st->layer;
	return it;
}

#define IN(...) ((const void *const[MB_IO_MAX]){__VA_ARGS__})
#define OUT(...) ((void *const[MB_IO_MAX]){__VA_ARGS__})

/* Plan op and append its launch on the given buffers. */
static void emit(ts_state *st, int phase, const mb_op *op, const void *const in[MB_IO_MAX],
		 void *const out[MB_IO_MAX])
{
	st->phase = phase;
	ts_item *it = ts_item_new(st);
	if (!it)
		return;
	for (int i = 0; i < MB_IO_MAX; i++) {
		it->io.in[i] = in[i];
		it->io.out[i] = out[i];
	}
	st->rc = mb_dev_plan(st->be, st->dev, op, &it->plan);
	if (st->rc)
		st->nitems--;
}

static mb_op op_of(const ts_state *st, mb_op_kind kind)
{
	mb_op op;
	memset(&op, 0, sizeof op);
	op.kind = kind;
	op.dtype = st->s.dt;
	return op;
}

/* C[m][n] = alpha op(A) op(B) + beta C (row-major; op = transpose if t). */
static void gemm(ts_state *st, int ph, int64_t m, int64_t n, int64_t k, int ta, int tb,
		 float alpha, float beta, const float *a, const float *b, float *c)
{
	mb_op op = op_of(st, MB_OP_GEMM);
	op.u.gemm.m = m, op.u.gemm.n = n, op.u.gemm.k = k;
	op.u.gemm.trans_a = ta, op.u.gemm.trans_b = tb;
	op.u.gemm.alpha = alpha, op.u.gemm.beta = beta;
	emit(st, ph, &op, IN(a, b), OUT(c));
}

/* Y [T][out] = X [T][in] W [in][out]; beta 1 adds to Y. */
static void lin(ts_state *st, int ph, const float *x, int w, float *y, int64_t in, int64_t out,
		float beta)
{
	gemm(st, ph, st->s.T, out, in, 0, 0, 1.0f, beta, x, prm(st, w), y);
}

/* dW = X^T dY; dX = dY W^T (+ dX when beta is 1; skipped when dx is NULL). */
static void lin_bwd(ts_state *st, int ph, const float *x, int w, const float *dy, float *dx,
		    float beta, int64_t in, int64_t out)
{
	gemm(st, ph, in, out, st->s.T, 1, 0, 1.0f, 0.0f, x, dy, grd(st, w));
	if (dx)
		gemm(st, ph, st->s.T, in, out, 0, 1, 1.0f, beta, dy, prm(st, w), dx);
}

static void norm(ts_state *st, int ph, const float *x, int g, float *y, float *rstd, int64_t rows,
		 int64_t dim)
{
	mb_op op = op_of(st, MB_OP_RMSNORM);
	op.u.row.rows = rows, op.u.row.dim = dim, op.u.row.eps = NORM_EPS;
	emit(st, ph, &op, IN(x, prm(st, g)), OUT(y, rstd));
}

static void norm_bwd(ts_state *st, int ph, const float *dy, const float *x, int g,
		     const float *rstd, float *dx, int acc, int64_t rows, int64_t dim)
{
	mb_op op = op_of(st, MB_OP_RMSNORM_BWD);
	op.u.row.rows = rows, op.u.row.dim = dim, op.u.row.eps = NORM_EPS;
	op.u.row.accumulate = acc;
	emit(st, ph, &op, IN(dy, x, prm(st, g), rstd), OUT(dx, grd(st, g)));
}

static void add(ts_state *st, int ph, const float *x, float *y, int64_t n)
{
	mb_op op = op_of(st, MB_OP_ADD);
	op.u.row.rows = n, op.u.row.dim = 1, op.u.row.alpha = 1.0f;
	emit(st, ph, &op, IN(x), OUT(y));
}

static void swiglu(ts_state *st, int bwd, int64_t rows, int64_t ffn, const void *gu, const void *da,
		   void *out)
{
	mb_op op = op_of(st, bwd ? MB_OP_SWIGLU_BWD : MB_OP_SWIGLU);
	op.u.act.rows = rows, op.u.act.ffn = ffn;
	if (bwd)
		emit(st, PH_FFN, &op, IN(gu, da), OUT(out));
	else
		emit(st, PH_FFN, &op, IN(gu), OUT(out));
}

static void gmm(ts_state *st, mb_gmm_mode mode, int64_t k, int64_t n, const void *x, const void *w,
		const int64_t *off, void *y)
{
	const ts_shape *s = &st->s;
	mb_op op = op_of(st, MB_OP_GMM);
	op.u.gmm.groups = s->El, op.u.gmm.rows = s->ep > 1 ? s->Rmax : s->P;
	op.u.gmm.k = k, op.u.gmm.n = n, op.u.gmm.mode = mode;
	emit(st, PH_FFN, &op, IN(x, w, off), OUT(y));
}

static mb_op op_perm(const ts_state *st, mb_op_kind kind, int64_t tokens, int64_t experts,
		     int64_t top_k, int acc)
{
	mb_op op = op_of(st, kind);
	op.u.perm.tokens = tokens, op.u.perm.hidden = st->s.h;
	op.u.perm.experts = experts, op.u.perm.top_k = top_k, op.u.perm.accumulate = acc;
	return op;
}

static void a2a(ts_state *st, const void *send, void *recv, const int64_t *scount,
		const int64_t *rcount)
{
	mb_op op = op_of(st, MB_OP_ALLTOALLV);
	op.u.coll.comm = st->comm;
	op.u.coll.row_bytes = st->s.h * (int64_t)sizeof(float);
	op.u.coll.capacity = st->s.Rmax;
	emit(st, PH_COMM, &op, IN(send, scount, rcount), OUT(recv));
}

/* ---- forward ---- */

static void ts_attn_fwd(ts_state *st, ts_layer *y, const float *x)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, H = s->H, dn = s->dqk - s->rope;
	const int64_t Hk = s->mla ? H : s->Hkv;
	y->a1 = F(st, T * h), y->rstd1 = F(st, T);
	y->q = F(st, T * H * s->dqk), y->k = F(st, T * Hk * s->dqk), y->v = F(st, T * Hk * s->dv);
	y->o = F(st, T * H * s->dv), y->lse = F(st, T * H);
	norm(st, PH_OTHER, x, y->g1, y->a1, y->rstd1, T, h);
	if (!s->mla) {
		lin(st, PH_ATTN, y->a1, y->wq, y->q, h, H * s->dqk, 0);
		lin(st, PH_ATTN, y->a1, y->wk, y->k, h, Hk * s->dqk, 0);
		lin(st, PH_ATTN, y->a1, y->wv, y->v, h, Hk * s->dv, 0);
	} else {
		if (s->ql) {
			y->cq = F(st, T * s->ql), y->cqn = F(st, T * s->ql), y->rstdq = F(st, T);
			lin(st, PH_ATTN, y->a1, y->wdq, y->cq, h, s->ql, 0);
			norm(st, PH_ATTN, y->cq, y->gq, y->cqn, y->rstdq, T, s->ql);
			lin(st, PH_ATTN, y->cqn, y->wuq, y->q, s->ql, H * s->dqk, 0);
		} else {
			lin(st, PH_ATTN, y->a1, y->wq, y->q, h, H * s->dqk, 0);
		}
		y->ckv = F(st, T * s->kvl), y->ckvn = F(st, T * s->kvl), y->rstdkv = F(st, T);
		y->kn = F(st, T * H * dn), y->kr = F(st, T * s->rope);
		lin(st, PH_ATTN, y->a1, y->wdkv, y->ckv, h, s->kvl, 0);
		norm(st, PH_ATTN, y->ckv, y->gkv, y->ckvn, y->rstdkv, T, s->kvl);
		lin(st, PH_ATTN, y->ckvn, y->wuk, y->kn, s->kvl, H * dn, 0);
		lin(st, PH_ATTN, y->ckvn, y->wuv, y->v, s->kvl, H * s->dv, 0);
		if (s->rope)
			lin(st, PH_ATTN, y->a1, y->wkr, y->kr, h, s->rope, 0);
		mb_op op = op_of(st, MB_OP_KCAT);
		op.u.kcat.rows = T, op.u.kcat.heads = H, op.u.kcat.d_nope = dn;
		op.u.kcat.d_rope = s->rope;
		emit(st, PH_ATTN, &op, IN(y->kn, y->kr), OUT(y->k));
	}
	mb_op op = op_of(st, MB_OP_ATTN_FWD);
	op.u.attn.batch = s->B, op.u.attn.seq = s->seq, op.u.attn.heads = H;
	op.u.attn.kv_heads = Hk, op.u.attn.d_qk = s->dqk, op.u.attn.d_v = s->dv;
	op.u.attn.scale = (float)(1.0 / sqrt((double)s->dqk)), op.u.attn.causal = 1;
	emit(st, PH_ATTN, &op, IN(y->q, y->k, y->v), OUT(y->o, y->lse));
	y->hres = F(st, T * h);
	lin(st, PH_ATTN, y->o, y->wo, y->hres, H * s->dv, h, 0);
	add(st, PH_OTHER, x, y->hres, T * h);
}

/* The dense SwiGLU FFN (a dense layer's, or the shared experts') of A2 into
 * out (beta 1 adds). */
static void ts_dense_fwd(ts_state *st, ts_layer *y, int w1, int w2, int64_t ffn, float *out,
			 float beta)
{
	const int64_t T = st->s.T, h = st->s.h;
	y->gu = F(st, T * 2 * ffn), y->act = F(st, T * ffn);
	lin(st, PH_FFN, y->a2, w1, y->gu, h, 2 * ffn, 0);
	swiglu(st, 0, T, ffn, y->gu, NULL, y->act);
	lin(st, PH_FFN, y->act, w2, out, ffn, h, beta);
}

static void ts_moe_fwd(ts_state *st, ts_layer *y, float *out)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, E = s->E, k = s->k, f = s->f, W = s->W;
	const int64_t R = s->ep > 1 ? s->Rmax : s->P; /* rows of the grouped GEMMs */
	y->logits = F(st, T * E), y->w = F(st, T * k), y->scores = F(st, T * E);
	y->idx = I32(st, T * k), y->pos = I32(st, T * k), y->off = I64(st, E + 1);
	y->xs = F(st, s->P * h), y->ys = F(st, s->P * h);
	y->gue = F(st, R * 2 * f), y->acte = F(st, R * f);
	lin(st, PH_FFN, y->a2, y->wr, y->logits, h, E, 0);
	mb_op op = op_of(st, MB_OP_ROUTER);
	op.u.router.tokens = T, op.u.router.experts = E, op.u.router.top_k = k;
	op.u.router.score = s->score;
	emit(st, PH_FFN, &op, IN(y->logits), OUT(y->idx, y->w, y->scores));
	op = op_perm(st, MB_OP_PERMUTE, T, E, k, 0);
	emit(st, PH_FFN, &op, IN(y->a2, y->idx), OUT(y->xs, y->off, y->pos));
	const float *gx = y->xs; /* the grouped GEMMs' rows and offsets */
	const int64_t *goff = y->off;
	float *gy = y->ys;
	if (s->ep > 1) {
		y->off_h = calloc((size_t)(E + 1 + 2 * E + 2 * W), sizeof(int64_t));
		if (!y->off_h && !st->rc)
			st->rc = mb_err(MB_ERR_NOMEM, "train_step: out of host memory for EP counts");
		if (y->off_h) {
			y->cnt_send_h = y->off_h + E + 1, y->cnt_recv_h = y->cnt_send_h + E;
			y->send_rows = y->cnt_recv_h + E, y->recv_rows = y->send_rows + W;
		}
		y->cnt_send = I64(st, E), y->cnt_recv = I64(st, E);
		y->xr = F(st, R * h), y->idx_r = I32(st, R), y->xs2 = F(st, R * h);
		y->off2 = I64(st, s->El + 2), y->pos2 = I32(st, R);
		y->ys2 = F(st, R * h), y->yr = F(st, R * h);
		st->phase = PH_COMM;
		(void)ts_item_new(st); /* the count exchange: a host step (ts_ep_counts) */
		a2a(st, y->xs, y->xr, y->send_rows, y->recv_rows);
		op = op_perm(st, MB_OP_PERMUTE, R, s->El + 1, 1, 0);
		emit(st, PH_FFN, &op, IN(y->xr, y->idx_r), OUT(y->xs2, y->off2, y->pos2));
		gx = y->xs2, goff = y->off2, gy = y->ys2;
	}
	gmm(st, MB_GMM_NN, h, 2 * f, gx, prm(st, y->we1), goff, y->gue);
	swiglu(st, 0, R, f, y->gue, NULL, y->acte);
	gmm(st, MB_GMM_NN, f, h, y->acte, prm(st, y->we2), goff, gy);
	if (s->ep > 1) {
		op = op_perm(st, MB_OP_UNPERMUTE, R, s->El + 1, 1, 0);
		emit(st, PH_FFN, &op, IN(y->ys2, y->pos2, st->ones), OUT(y->yr));
		a2a(st, y->yr, y->ys, y->recv_rows, y->send_rows);
	}
	op = op_perm(st, MB_OP_UNPERMUTE, T, E, k, 0);
	emit(st, PH_FFN, &op, IN(y->ys, y->pos, y->w), OUT(out));
	if (s->S)
		ts_dense_fwd(st, y, y->ws1, y->ws2, s->S * f, out, 1.0f);
}

static void ts_forward(ts_state *st)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h;
	st->part = PART_FWD;
	st->layer = -1;
	mb_op op = op_of(st, MB_OP_EMBED);
	op.u.row.rows = T, op.u.row.dim = h, op.u.row.vocab = s->V;
	emit(st, PH_OTHER, &op, IN(prm(st, st->emb), st->ids), OUT(st->x[0]));
	for (int l = 0; l < s->L && !st->rc; l++) {
		ts_layer *y = &st->lay[l];
		st->layer = l;
		ts_attn_fwd(st, y, st->x[l]);
		y->a2 = F(st, T * h), y->rstd2 = F(st, T);
		norm(st, PH_OTHER, y->hres, y->g2, y->a2, y->rstd2, T, h);
		if (y->moe)
			ts_moe_fwd(st, y, st->x[l + 1]);
		else
			ts_dense_fwd(st, y, y->w1, y->w2, s->fd, st->x[l + 1], 0.0f);
		add(st, PH_OTHER, y->hres, st->x[l + 1], T * h);
	}
	st->layer = -1;
	norm(st, PH_OTHER, st->x[s->L], st->gf, st->xf, st->rstdf, T, h);
	lin(st, PH_OTHER, st->xf, st->wout, st->logits, h, s->V, 0);
	op = op_of(st, MB_OP_XENT);
	op.u.row.rows = T, op.u.row.vocab = s->V;
	emit(st, PH_OTHER, &op, IN(st->logits, st->tgt), OUT(st->dlogits, st->loss));
}

/* ---- backward ---- */

static void ts_attn_bwd(ts_state *st, ts_layer *y, const float *x)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, H = s->H, dn = s->dqk - s->rope;
	const int64_t Hk = s->mla ? H : s->Hkv;
	lin_bwd(st, PH_ATTN, y->o, y->wo, st->g, st->d_o, 0, H * s->dv, h);
	mb_op op = op_of(st, MB_OP_ATTN_BWD);
	op.u.attn.batch = s->B, op.u.attn.seq = s->seq, op.u.attn.heads = H;
	op.u.attn.kv_heads = Hk, op.u.attn.d_qk = s->dqk, op.u.attn.d_v = s->dv;
	op.u.attn.scale = (float)(1.0 / sqrt((double)s->dqk)), op.u.attn.causal = 1;
	emit(st, PH_ATTN, &op, IN(st->d_o, y->q, y->k, y->v, y->o, y->lse),
	     OUT(st->dq, st->dk, st->dv));
	if (!s->mla) {
		lin_bwd(st, PH_ATTN, y->a1, y->wq, st->dq, st->da, 0, h, H * s->dqk);
		lin_bwd(st, PH_ATTN, y->a1, y->wk, st->dk, st->da, 1, h, Hk * s->dqk);
		lin_bwd(st, PH_ATTN, y->a1, y->wv, st->dv, st->da, 1, h, Hk * s->dv);
	} else {
		op = op_of(st, MB_OP_KCAT_BWD);
		op.u.kcat.rows = T, op.u.kcat.heads = H, op.u.kcat.d_nope = dn;
		op.u.kcat.d_rope = s->rope;
		emit(st, PH_ATTN, &op, IN(st->dk), OUT(st->dkn, st->dkr));
		if (s->ql) {
			lin_bwd(st, PH_ATTN, y->cqn, y->wuq, st->dq, st->dcqn, 0, s->ql, H * s->dqk);
			norm_bwd(st, PH_ATTN, st->dcqn, y->cq, y->gq, y->rstdq, st->dcq, 0, T, s->ql);
			lin_bwd(st, PH_ATTN, y->a1, y->wdq, st->dcq, st->da, 0, h, s->ql);
		} else {
			lin_bwd(st, PH_ATTN, y->a1, y->wq, st->dq, st->da, 0, h, H * s->dqk);
		}
		lin_bwd(st, PH_ATTN, y->ckvn, y->wuk, st->dkn, st->dckvn, 0, s->kvl, H * dn);
		lin_bwd(st, PH_ATTN, y->ckvn, y->wuv, st->dv, st->dckvn, 1, s->kvl, H * s->dv);
		norm_bwd(st, PH_ATTN, st->dckvn, y->ckv, y->gkv, y->rstdkv, st->dckv, 0, T, s->kvl);
		lin_bwd(st, PH_ATTN, y->a1, y->wdkv, st->dckv, st->da, 1, h, s->kvl);
		if (s->rope)
			lin_bwd(st, PH_ATTN, y->a1, y->wkr, st->dkr, st->da, 1, h, s->rope);
	}
	norm_bwd(st, PH_OTHER, st->da, x, y->g1, y->rstd1, st->g, 1, T, h);
}

/* Backward of ts_dense_fwd from d(out) = g into dA2 (beta 1 adds). */
static void ts_dense_bwd(ts_state *st, ts_layer *y, int w1, int w2, int64_t ffn, float beta)
{
	const int64_t T = st->s.T, h = st->s.h;
	lin_bwd(st, PH_FFN, y->act, w2, st->g, st->dact, 0, ffn, h);
	swiglu(st, 1, T, ffn, y->gu, st->dact, st->dgu);
	lin_bwd(st, PH_FFN, y->a2, w1, st->dgu, st->da, beta, h, 2 * ffn);
}

static void ts_moe_bwd(ts_state *st, ts_layer *y)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, E = s->E, k = s->k, f = s->f;
	const int64_t R = s->ep > 1 ? s->Rmax : s->P;
	if (s->S)
		ts_dense_bwd(st, y, y->ws1, y->ws2, s->S * f, 0.0f);
	mb_op op = op_perm(st, MB_OP_UNPERMUTE_BWD, T, E, k, 0);
	emit(st, PH_FFN, &op, IN(st->g, y->ys, y->pos, y->w), OUT(st->dys, st->dw));
	const float *gx = y->xs, *gdy = st->dys;
	const int64_t *goff = y->off;
	float *gdx = st->dxs;
	if (s->ep > 1) {
		a2a(st, st->dys, st->dyr, y->send_rows, y->recv_rows);
		op = op_perm(st, MB_OP_UNPERMUTE_BWD, R, s->El + 1, 1, 0);
		emit(st, PH_FFN, &op, IN(st->dyr, y->ys2, y->pos2, st->ones), OUT(st->dys2, st->dw2));
		gx = y->xs2, gdy = st->dys2, goff = y->off2, gdx = st->dxs2;
	}
	gmm(st, MB_GMM_NT, h, f, gdy, prm(st, y->we2), goff, st->dact);
	gmm(st, MB_GMM_TN, f, h, y->acte, gdy, goff, grd(st, y->we2));
	swiglu(st, 1, R, f, y->gue, st->dact, st->dgu);
	gmm(st, MB_GMM_NT, 2 * f, h, st->dgu, prm(st, y->we1), goff, gdx);
	gmm(st, MB_GMM_TN, h, 2 * f, gx, st->dgu, goff, grd(st, y->we1));
	if (s->ep > 1) {
		op = op_perm(st, MB_OP_PERMUTE_BWD, R, s->El + 1, 1, 0);
		emit(st, PH_FFN, &op, IN(st->dxs2, y->pos2), OUT(st->dxr));
		a2a(st, st->dxr, st->dxs, y->recv_rows, y->send_rows);
	}
	op = op_perm(st, MB_OP_PERMUTE_BWD, T, E, k, s->S > 0);
	emit(st, PH_FFN, &op, IN(st->dxs, y->pos), OUT(st->da));
	op = op_of(st, MB_OP_ROUTER_BWD);
	op.u.router.tokens = T, op.u.router.experts = E, op.u.router.top_k = k;
	op.u.router.score = s->score;
	emit(st, PH_FFN, &op, IN(st->dw, y->idx, y->w, y->scores), OUT(st->dlr));
	lin_bwd(st, PH_FFN, y->a2, y->wr, st->dlr, st->da, 1, h, E);
}

static void ts_backward(ts_state *st)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h;
	const float alpha = 1.0f / (float)s->W; /* the mean over every rank's tokens */
	st->part = PART_BWD;
	st->layer = -1;
	gemm(st, PH_OTHER, h, s->V, T, 1, 0, alpha, 0.0f, st->xf, st->dlogits, grd(st, st->wout));
	gemm(st, PH_OTHER, T, h, s->V, 0, 1, alpha, 0.0f, st->dlogits, prm(st, st->wout), st->dxf);
	norm_bwd(st, PH_OTHER, st->dxf, st->x[s->L], st->gf, st->rstdf, st->g, 0, T, h);
	for (int l = (int)s->L - 1; l >= 0 && !st->rc; l--) {
		ts_layer *y = &st->lay[l];
		st->layer = l;
		if (y->moe)
			ts_moe_bwd(st, y);
		else
			ts_dense_bwd(st, y, y->w1, y->w2, s->fd, 0.0f);
		norm_bwd(st, PH_OTHER, st->da, y->hres, y->g2, y->rstd2, st->g, 1, T, h);
		ts_attn_bwd(st, y, st->x[l]);
	}
	st->layer = -1;
	mb_op op = op_of(st, MB_OP_EMBED_BWD);
	op.u.row.rows = T, op.u.row.dim = h, op.u.row.vocab = s->V;
	emit(st, PH_OTHER, &op, IN(st->g, st->ids), OUT(grd(st, st->emb)));
}

/* Gradient allreduce (several ranks only) and the three AdamW launches. */
static void ts_update(ts_state *st)
{
	const ts_shape *s = &st->s;
	if (s->W > 1) {
		st->part = PART_SYNC;
		mb_op op = op_of(st, MB_OP_ALLREDUCE);
		op.dtype = MB_FP32;
		op.u.coll.comm = st->comm;
		op.u.coll.count = st->n_sync;
		emit(st, PH_COMM, &op, IN(NULL), OUT(st->grad));
	}
	st->part = PART_OPT;
	int64_t at = 0;
	for (int g = 0; g < G_N; g++) {
		if (st->n_group[g] == 0)
			continue;
		mb_op op = op_of(st, MB_OP_ADAMW);
		op.dtype = MB_FP32; /* fp32 master weights and states */
		op.u.adamw.count = st->n_group[g];
		op.u.adamw.lr = (float)s->lr, op.u.adamw.beta1 = ADAM_B1;
		op.u.adamw.beta2 = ADAM_B2, op.u.adamw.eps = ADAM_EPS;
		op.u.adamw.weight_decay = g == G_NODECAY ? 0.0f : WEIGHT_DECAY;
		emit(st, PH_OPT, &op, IN(st->grad + at),
		     OUT(st->param + at, st->adam_m + at, st->adam_v + at));
		at += st->n_group[g];
	}
}

/* ---- setup ---- */

/* Seeded parameters (the same on every rank), ids and targets (per rank). */
static int ts_init_data(ts_state *st)
{
	const ts_shape *s = &st->s;
	int64_t most = s->T;
	for (int i = 0; i < st->nt; i++)
		most = max64(most, st->t[i].n);
	float *host = malloc((size_t)most * 2 * sizeof(float));
	if (!host)
		return mb_err(MB_ERR_NOMEM, "train_step: out of host memory for initial values");
	int rc = 0;
	for (int i = 0; i < st->nt && !rc; i++) {
		const ts_tensor *t = &st->t[i];
		for (int64_t j = 0; j < t->n; j++)
			host[j] = t->init == 0
					  ? 1.0f
					  : (float)((2.0 * mb_rand_uniform(st->seed, S_PARAM + (uint64_t)i,
									   (uint64_t)(t->first + j)) -
						     1.0) *
						    t->init);
		rc = mb_dev_upload(st->be, st->dev, prm(st, i), host, (size_t)t->n * sizeof(float));
	}
	int32_t *ids = (int32_t *)host, *tgt = ids + s->T;
	for (int64_t j = 0; j < s->T; j++) {
		const uint64_t r = mb_rand_u64(st->seed, S_IDS, (uint64_t)(st->rank * s->T + j));
		ids[j] = (int32_t)(r % (uint64_t)s->V);
		tgt[j] = (int32_t)(((int64_t)ids[j] * TARGET_MUL + TARGET_ADD) % s->V);
	}
	if (!rc)
		rc = mb_dev_upload(st->be, st->dev, st->ids, ids, (size_t)s->T * sizeof(int32_t));
	if (!rc)
		rc = mb_dev_upload(st->be, st->dev, st->tgt, tgt, (size_t)s->T * sizeof(int32_t));
	free(host);
	return rc;
}

static int ts_buffers(ts_state *st)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, H = s->H, R = s->ep > 1 ? s->Rmax : s->P;
	const int64_t Hk = s->mla ? H : s->Hkv;
	/* d(act) of a dense FFN, the shared experts or the routed experts */
	const int64_t dact = max64(max64(s->Ld ? T * s->fd : 1, T * s->S * s->f),
				   s->Ld < s->L ? R * s->f : 1);
	st->param = F(st, st->n_all), st->grad = F(st, st->n_all);
	st->adam_m = F(st, st->n_all), st->adam_v = F(st, st->n_all);
	st->x = calloc((size_t)s->L + 1, sizeof *st->x);
	if (!st->x)
		return mb_err(MB_ERR_NOMEM, "train_step: out of host memory");
	for (int64_t l = 0; l <= s->L; l++)
		st->x[l] = F(st, T * h);
	st->ids = I32(st, T), st->tgt = I32(st, T);
	st->xf = F(st, T * h), st->rstdf = F(st, T), st->loss = F(st, 1);
	st->logits = F(st, T * s->V), st->dlogits = F(st, T * s->V);
	st->g = F(st, T * h), st->dxf = F(st, T * h), st->da = F(st, T * h);
	st->d_o = F(st, T * H * s->dv), st->dq = F(st, T * H * s->dqk);
	st->dk = F(st, T * Hk * s->dqk), st->dv = F(st, T * Hk * s->dv);
	if (s->mla) {
		st->dcqn = F(st, T * s->ql), st->dcq = F(st, T * s->ql);
		st->dckvn = F(st, T * s->kvl), st->dckv = F(st, T * s->kvl);
		st->dkn = F(st, T * H * (s->dqk - s->rope)), st->dkr = F(st, T * s->rope);
	}
	st->dact = F(st, dact), st->dgu = F(st, 2 * dact);
	if (s->Ld < s->L) {
		st->dys = F(st, s->P * h), st->dxs = F(st, s->P * h);
		st->dw = F(st, s->P), st->dlr = F(st, T * s->E);
	}
	if (s->ep > 1 && s->Ld < s->L) {
		st->dyr = F(st, R * h), st->dys2 = F(st, R * h), st->dw2 = F(st, R);
		st->dxs2 = F(st, R * h), st->dxr = F(st, R * h), st->ones = F(st, R);
		st->ones_h = malloc((size_t)s->W * sizeof *st->ones_h);
		st->idx_r_h = malloc((size_t)R * sizeof *st->idx_r_h);
		float *one = malloc((size_t)R * sizeof *one);
		if (!st->ones_h || !st->idx_r_h || !one) {
			free(one);
			return mb_err(MB_ERR_NOMEM, "train_step: out of host memory for EP");
		}
		for (int64_t i = 0; i < s->W; i++)
			st->ones_h[i] = 1;
		for (int64_t i = 0; i < R; i++)
			one[i] = 1.0f;
		if (!st->rc)
			st->rc = mb_dev_upload(st->be, st->dev, st->ones, one, (size_t)R * sizeof *one);
		free(one);
	}
	st->red_n = max64(LOSS_CAP, 4 * s->W);
	st->red = ts_buf(st, st->red_n, sizeof(double));
	st->loss_hist = calloc(LOSS_CAP, sizeof *st->loss_hist);
	if (!st->loss_hist)
		return mb_err(MB_ERR_NOMEM, "train_step: out of host memory");
	return st->rc;
}

/* The EP count exchange, planned once: one row of E/ep int64 counts to and
 * from each rank. */
static int ts_plan_counts(ts_state *st)
{
	mb_op op = op_of(st, MB_OP_ALLTOALLV);
	op.u.coll.comm = st->comm;
	op.u.coll.row_bytes = st->s.El * (int64_t)sizeof(int64_t);
	op.u.coll.capacity = st->s.W;
	return mb_dev_plan(st->be, st->dev, &op, &st->cnt_plan);
}

static void ts_teardown(void *state);

static int ts_setup(const mb_case_ctx *ctx, void **out)
{
	ts_state *st = calloc(1, sizeof *st);
	*out = st;
	if (!st)
		return mb_err(MB_ERR_NOMEM, "train_step: out of memory");
	st->be = ctx->be;
	st->dev = ctx->dev;
	st->seed = ctx->seed;
	st->rank = ctx->world.rank;
	int rc = ts_shape_get(ctx->params, &st->s);
	if (rc)
		return rc;
	ts_shape *s = &st->s;
	if (s->dt != MB_FP32)
		return mb_err(MB_ERR_UNSUPPORTED, "train_step: dtype=%s is not implemented "
						  "(fp32 activations and weights only)",
			      mb_dtype_name(s->dt));
	if (s->ep != 1 && s->ep != ctx->world.size)
		return mb_err(MB_ERR_USAGE, "ep=%lld: accepted 1 or the world size (%d)",
			      (long long)s->ep, ctx->world.size);
	ts_shape_world(s, ctx->world.size);
	if (s->W > 1 && (rc = mb_dev_comm_init(st->be, st->dev, &ctx->world, &st->comm)))
		return rc;
	rc = ts_tensors(st);
	if (!rc)
		rc = ts_buffers(st);
	if (!rc)
		rc = ts_init_data(st);
	if (!rc && s->ep > 1)
		rc = ts_plan_counts(st);
	if (rc)
		return rc;
	ts_forward(st);
	ts_backward(st);
	ts_update(st);
	return st->rc;
}

/* ---- run ---- */

/* The host step of EP: the offsets PERMUTE produced give the rows for each
 * rank (its experts are contiguous) and per expert; a small ALLTOALLV swaps
 * the per-expert counts, which give the receive counts and the local expert
 * of every received row (the unused capacity goes to the spare group E/ep). */
static int ts_ep_counts(ts_state *st, ts_layer *y)
{
	const ts_shape *s = &st->s;
	const int64_t W = s->W, El = s->El, E = s->E;
	int rc = mb_dev_download(st->be, st->dev, y->off_h, y->off, (size_t)(E + 1) * sizeof(int64_t));
	if (rc)
		return rc;
	for (int64_t r = 0; r < W; r++) {
		y->send_rows[r] = y->off_h[(r + 1) * El] - y->off_h[r * El];
		for (int64_t e = 0; e < El; e++)
			y->cnt_send_h[r * El + e] = y->off_h[r * El + e + 1] - y->off_h[r * El + e];
	}
	rc = mb_dev_upload(st->be, st->dev, y->cnt_send, y->cnt_send_h, (size_t)E * sizeof(int64_t));
	const mb_io io = {.in = {y->cnt_send, st->ones_h, st->ones_h}, .out = {y->cnt_recv}};
	if (!rc)
		rc = mb_dev_launch(st->be, st->dev, st->cnt_plan, &io);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, y->cnt_recv_h, y->cnt_recv,
				     (size_t)E * sizeof(int64_t));
	if (rc)
		return rc;
	int64_t n = 0;
	for (int64_t src = 0; src < W; src++) {
		y->recv_rows[src] = 0;
		for (int64_t e = 0; e < El; e++) {
			const int64_t c = y->cnt_recv_h[src * El + e];
			if (c < 0 || n + c > s->Rmax)
				return mb_err(MB_ERR_INTERNAL, "train_step: rank %lld sends %lld rows "
							       "for local expert %lld, beyond the "
							       "capacity %lld",
					      (long long)src, (long long)c, (long long)e,
					      (long long)s->Rmax);
			for (int64_t i = 0; i < c; i++)
				st->idx_r_h[n++] = (int32_t)e;
			y->recv_rows[src] += c;
		}
	}
	for (int64_t i = n; i < s->Rmax; i++)
		st->idx_r_h[i] = (int32_t)El;
	return mb_dev_upload(st->be, st->dev, y->idx_r, st->idx_r_h,
			     (size_t)s->Rmax * sizeof(int32_t));
}

/* Launch the items of parts lo..hi in order. With phase_s, sync at every
 * change of phase and add the time to that phase (the profiled step). */
static int ts_exec(ts_state *st, int lo, int hi, double *phase_s)
{
	int cur = -1, rc = 0;
	double t0 = 0.0;
	for (int i = 0; i < st->nitems && !rc; i++) {
		ts_item *it = &st->items[i];
		if (it->part < lo || it->part > hi)
			continue;
		if (phase_s && it->phase != cur) {
			if ((rc = mb_dev_sync(st->be, st->dev)))
				break;
			const double t = mb_now_s();
			if (cur >= 0)
				phase_s[cur] += t - t0;
			t0 = t;
			cur = it->phase;
		}
		rc = it->plan ? mb_dev_launch(st->be, st->dev, it->plan, &it->io)
			      : ts_ep_counts(st, &st->lay[it->layer]);
	}
	if (!rc && phase_s && cur >= 0 && !(rc = mb_dev_sync(st->be, st->dev)))
		phase_s[cur] += mb_now_s() - t0;
	return rc;
}

static int ts_fetch_loss(ts_state *st, double *loss)
{
	int rc = mb_dev_download(st->be, st->dev, &st->loss_h, st->loss, sizeof st->loss_h);
	*loss = st->loss_h;
	return rc;
}

/* One whole step; the loss is kept (a 4-byte download, which waits for the
 * step's launches). */
static int ts_run(void *state)
{
	ts_state *st = state;
	double loss;
	int rc = ts_exec(st, PART_FWD, PART_OPT, NULL);
	if (!rc)
		rc = ts_fetch_loss(st, &loss);
	if (rc)
		return rc;
	if (st->steps < LOSS_CAP)
		st->loss_hist[st->steps] = loss;
	st->loss_last = loss;
	st->steps++;
	return 0;
}

/* ---- verify ---- */

/* 64-bit FNV-1a over the bytes of n floats, with an fp64 sum and sum of
 * squares. */
static void ts_checksum(const float *x, int64_t n, double out[3], uint64_t *hash)
{
	uint64_t hsh = 1469598103934665603ull;
	double sum = 0.0, sq = 0.0;
	const unsigned char *b = (const unsigned char *)x;
	for (int64_t i = 0; i < n * (int64_t)sizeof(float); i++)
		hsh = (hsh ^ b[i]) * 1099511628211ull;
	for (int64_t i = 0; i < n; i++) {
		sum += x[i];
		sq += (double)x[i] * x[i];
	}
	out[0] = sum, out[1] = sq;
	*hash = hsh;
}

/* Sum n doubles over the world in place (fp64 ALLREDUCE through the backend). */
static int ts_allreduce(ts_state *st, double *x, int64_t n)
{
	if (st->s.W == 1)
		return 0;
	mb_op op = op_of(st, MB_OP_ALLREDUCE);
	op.dtype = MB_FP64;
	op.u.coll.comm = st->comm;
	op.u.coll.count = n;
	mb_plan *plan = NULL;
	int rc = mb_dev_upload(st->be, st->dev, st->red, x, (size_t)n * sizeof *x);
	if (!rc)
		rc = mb_dev_plan(st->be, st->dev, &op, &plan);
	const mb_io io = {.out = {st->red}};
	if (!rc)
		rc = mb_dev_launch(st->be, st->dev, plan, &io);
	if (!rc)
		rc = mb_dev_sync(st->be, st->dev);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, x, st->red, (size_t)n * sizeof *x);
	mb_dev_plan_free(st->be, st->dev, plan);
	return rc;
}

/* DP replicas: every rank puts (sum, sum of squares, hash halves) of the
 * parameters that must be identical (all of them with ep = 1, all but the
 * sharded experts otherwise) in its own slot; the sum over ranks then holds
 * every rank's values exactly (x + 0 = x), and each is compared with rank
 * 0's bit for bit: AdamW on identical gradients from one allreduce must give
 * identical parameters. */
static int ts_check_replicas(ts_state *st, mb_check *out, char *why, size_t nwhy)
{
	const int64_t W = st->s.W, n = st->n_sync;
	float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof *host);
	double *slots = calloc((size_t)(4 * W), sizeof *slots);
	if (!host || !slots) {
		free(host), free(slots);
		return mb_err(MB_ERR_NOMEM, "train_step verify: out of host memory");
	}
	int rc = mb_dev_download(st->be, st->dev, host, st->param, (size_t)n * sizeof *host);
	if (!rc) {
		double sums[3];
		uint64_t hash;
		ts_checksum(host, n, sums, &hash);
		double *me = slots + 4 * st->rank;
		me[0] = sums[0], me[1] = sums[1];
		me[2] = (double)(hash >> 32), me[3] = (double)(hash & 0xffffffffu);
		rc = ts_allreduce(st, slots, 4 * W);
	}
	if (!rc) {
		for (int64_t r = 1; r < W; r++) {
			const double *a = slots, *b = slots + 4 * r;
			const double d = fabs(b[0] - a[0]) / (fabs(a[0]) + 1e-30);
			st->replica_diff = d > st->replica_diff ? d : st->replica_diff;
			out->checked++;
			if (memcmp(a, b, 4 * sizeof *a) != 0) {
				out->mismatched++;
				if (!why[0])
					snprintf(why, nwhy, "rank %lld's parameters differ from rank "
							    "0's (sum %.17g vs %.17g)",
						 (long long)r, b[0], a[0]);
			}
		}
		out->max_rel_err = st->replica_diff;
	}
	free(host), free(slots);
	return rc;
}

/* One more step, untimed, with a sync at every change of phase. */
static int ts_profile(ts_state *st)
{
	memset(st->phase_s, 0, sizeof st->phase_s);
	double loss;
	int rc = ts_exec(st, PART_FWD, PART_OPT, st->phase_s);
	if (!rc)
		rc = ts_fetch_loss(st, &loss);
	if (rc)
		return rc;
	if (st->steps < LOSS_CAP)
		st->loss_hist[st->steps] = loss;
	st->loss_last = loss;
	st->steps++;
	st->profiled = 1;
	return 0;
}

static const char ts_method[] = "loss falls over N steps; DP replicas identical (checksum)";

/* Passed when (a) every step's loss (mean over the ranks) is finite and the
 * last is below the first: on the synthetic task (target a fixed function of
 * the token) the loss must fall when forward, backward and update are
 * right; and (b) the replicated parameters are bit-identical on every rank
 * (tolerance 0). The steps are the warm-up and timed ones plus one profiled
 * step run here. */
static int ts_verify(void *state, mb_check *out)
{
	ts_state *st = state;
	memset(out, 0, sizeof *out);
	out->method = ts_method;
	out->tolerance = 0.0;
	int rc = ts_profile(st);
	if (rc)
		return rc;
	const int64_t n = st->steps < LOSS_CAP ? st->steps : LOSS_CAP;
	rc = ts_allreduce(st, st->loss_hist, n);
	double last = st->loss_last;
	if (!rc && st->s.W > 1)
		rc = ts_allreduce(st, &last, 1);
	if (rc)
		return rc;
	for (int64_t i = 0; i < n; i++)
		st->loss_hist[i] /= (double)st->s.W;
	st->loss_last = last / (double)st->s.W;
	char why[200] = "";
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(st->loss_hist[i]))
			out->nonfinite++;
	out->nonfinite += !isfinite(st->loss_last);
	out->checked = n;
	if (st->steps < 2)
		snprintf(why, sizeof why, "only %lld step ran; the loss needs two to fall",
			 (long long)st->steps);
	else if (!(st->loss_last < st->loss_hist[0]))
		snprintf(why, sizeof why, "the loss did not fall: %.6g at step 0, %.6g at step %lld",
			 st->loss_hist[0], st->loss_last, (long long)st->steps - 1);
	out->mismatched += why[0] != 0;
	rc = ts_check_replicas(st, out, why, sizeof why);
	if (rc)
		return rc;
	out->passed = out->mismatched == 0 && out->nonfinite == 0;
	if (out->nonfinite)
		snprintf(out->detail, sizeof out->detail, "%lld non-finite losses",
			 (long long)out->nonfinite);
	else if (why[0])
		mb_strlcpy(out->detail, why, sizeof out->detail);
	else
		snprintf(out->detail, sizeof out->detail,
			 "loss %.6g -> %.6g over %lld steps; %lld rank(s) identical",
			 st->loss_hist[0], st->loss_last, (long long)st->steps, (long long)st->s.W);
	return 0;
}

static void ts_info(void *state, mb_case_info *out)
{
	ts_state *st = state;
	if (!st)
		return;
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		mb_info_add(out, "peak_rss_bytes", (double)ru.ru_maxrss * 1024.0);
	mb_info_add(out, "params_rank", (double)st->n_all);
	if (st->steps == 0)
		return;
	const int64_t n = st->steps < LOSS_CAP ? st->steps : LOSS_CAP;
	double mn = st->loss_last;
	for (int64_t i = 0; i < n; i++)
		mn = st->loss_hist[i] < mn ? st->loss_hist[i] : mn;
	const double first = st->loss_hist[0];
	mb_info_add(out, "steps", (double)st->steps);
	mb_info_add(out, "loss_first", first);
	mb_info_add(out, "loss_last", st->loss_last);
	mb_info_add(out, "loss_min", mn);
	mb_info_add(out, "loss_drop_pct", first != 0 ? 100.0 * (first - st->loss_last) / first : 0);
	if (n > 1)
		mb_info_add(out, "loss_1", st->loss_hist[1]);
	if (n > 2)
		mb_info_add(out, "loss_2", st->loss_hist[2]);
	if (!st->profiled)
		return;
	static const char *const names[PH_N] = {"phase_attention_s", "phase_ffn_s", "phase_comm_s",
						"phase_optimizer_s", "phase_other_s"};
	for (int p = 0; p < PH_N; p++)
		mb_info_add(out, names[p], st->phase_s[p]);
}

static void ts_teardown(void *state)
{
	ts_state *st = state;
	if (!st)
		return;
	for (int i = 0; i < st->nitems; i++)
		mb_dev_plan_free(st->be, st->dev, st->items[i].plan);
	mb_dev_plan_free(st->be, st->dev, st->cnt_plan);
	for (int i = 0; i < st->nbufs; i++)
		mb_dev_free(st->be, st->dev, st->bufs[i]);
	mb_dev_comm_free(st->be, st->dev, st->comm);
	for (int64_t l = 0; st->lay && l < st->s.L; l++)
		free(st->lay[l].off_h);
	free(st->items), free(st->bufs), free(st->t), free(st->lay), free(st->x);
	free(st->ones_h), free(st->idx_r_h), free(st->loss_hist);
	free(st);
}

/* ---- test hooks (train_step.h) ---- */

int mb_ts_tensor_count(const void *state) { return ((const ts_state *)state)->nt; }

int mb_ts_tensor_get(const void *state, int i, mb_ts_tensor *out)
{
	const ts_state *st = state;
	if (i < 0 || i >= st->nt)
		return mb_err(MB_ERR_USAGE, "train_step: tensor %d of %d", i, st->nt);
	out->name = st->t[i].name;
	out->count = st->t[i].n;
	out->expert = st->t[i].group == G_EXPERT;
	out->param = prm(st, i);
	out->grad = grd(st, i);
	return 0;
}

int mb_ts_forward(void *state, double *loss)
{
	ts_state *st = state;
	int rc = ts_exec(st, PART_FWD, PART_FWD, NULL);
	return rc ? rc : ts_fetch_loss(st, loss);
}

int mb_ts_gradients(void *state, double *loss)
{
	ts_state *st = state;
	int rc = ts_exec(st, PART_FWD, PART_BWD, NULL);
	return rc ? rc : ts_fetch_loss(st, loss);
}

int64_t mb_ts_routing_len(const void *state)
{
	const ts_state *st = state;
	return (st->s.L - st->s.Ld) * st->s.T * st->s.k;
}

int mb_ts_routing(void *state, int32_t *idx)
{
	ts_state *st = state;
	const int64_t n = st->s.T * st->s.k;
	int64_t at = 0;
	for (int64_t l = 0; l < st->s.L; l++) {
		if (!st->lay[l].moe)
			continue;
		int rc = mb_dev_download(st->be, st->dev, idx + at, st->lay[l].idx,
					 (size_t)n * sizeof *idx);
		if (rc)
			return rc;
		at += n;
	}
	return 0;
}

const mb_suite mb_suite_train_step = {
	.name = "train_step",
	.summary = "a full training step of an L-layer MoE transformer: attention (GQA or MLA), "
		   "shared + routed experts, EP alltoall, DP allreduce, AdamW",
	.params = ts_params,
	.nparams = (int)MB_ARRAY_LEN(ts_params),
	.preset = ts_preset,
	.validate = ts_validate,
	.cost = ts_cost,
	.setup = ts_setup,
	.run = ts_run,
	.verify = ts_verify,
	.info = ts_info,
	.teardown = ts_teardown,
};
