/* train_step.c: one full-parameter training step of an L-layer MoE
 * transformer (DESIGN §5), as device launches only. This file is the suite
 * (parameters, presets, FLOPs, run, verify); train_step_graph.c builds the
 * launch list.
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

#include "suite.h"
#include "train_step.h"
#include "train_step_int.h"

static const mb_param_def ts_params[] = {
	{"layers", MB_PT_INT, "2", 1, 1024, NULL, "transformer layers"},
	{"dense_layers", MB_PT_INT, "1", 0, 1024, NULL,
	 "leading layers with a dense SwiGLU FFN instead of the MoE"},
	{"hidden", MB_PT_INT, "128", 8, 65536, NULL, "model width"},
	{"heads", MB_PT_INT, "4", 1, 1024, NULL, "attention query heads"},
	{"kv_heads", MB_PT_INT, "4", 1, 1024, NULL, "key/value heads (GQA; MLA: equal to heads)"},
	{"head_dim", MB_PT_INT, "32", 1, 1024, NULL,
	 "query/key head width (MLA: nope + rope part)"},
	{"v_head_dim", MB_PT_INT, "32", 1, 1024, NULL, "value head width"},
	{"q_lora", MB_PT_INT, "0", 0, 65536, NULL,
	 "MLA query low-rank width (0: full-rank query)"},
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
	{"ep", MB_PT_INT, "1", 0, 4096, NULL,
	 "expert-parallel group size: experts sharded over groups of ep consecutive ranks "
	 "(1: replicated; 0: ranks / dp); ep x dp = ranks"},
	{"dp", MB_PT_INT, "0", 0, 1048576, NULL,
	 "data-parallel degree, the number of EP groups (0 = ranks / ep)"},
	{"lr", MB_PT_REAL, "0.001", 0, 1, NULL, "AdamW learning rate (constant)"},
	{"score", MB_PT_ENUM, "softmax", 0, 0, "softmax|sigmoid", "router scoring function"},
	{"groups", MB_PT_INT, "0", 0, 1024, NULL,
	 "MoGE expert groups: top_k/groups experts chosen in each of groups equal groups "
	 "(0 = ungrouped)"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16",
	 "activation and weight type (fp32 only so far: bf16 is skipped)"},
};

#define GIB (1024.0 * 1024.0 * 1024.0)
#define TS_MAX_BYTES (128.0 * GIB)

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
	s->G = mb_param_int(p, "groups");
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

/* The world's share: W ranks in EP groups of ep; each rank holds E/ep
 * experts and may receive, from each of its group's ep ranks, up to
 * min(top_k, E/ep) pairs per token. */
static void ts_shape_world(ts_shape *s, int64_t W)
{
	s->W = W;
	s->El = s->E / s->ep;
	const int64_t per_tok = s->k < s->El ? s->k : s->El;
	s->Rmax = s->ep > 1 ? s->ep * s->T * per_tok : s->P;
}

/* ep and dp against the world, before any work. */
static int ts_world_fits(const mb_params *p, int world_size)
{
	int ep = (int)mb_param_int(p, "ep"), dp = (int)mb_param_int(p, "dp");
	int rc = mb_group_sizes("train_step", world_size, &ep, &dp);
	if (!rc && mb_param_int(p, "experts") % ep)
		rc = mb_err(MB_ERR_USAGE, "train_step: ep=%d does not divide experts=%lld", ep,
			    (long long)mb_param_int(p, "experts"));
	return rc;
}

/* Attention parameters of one layer (projections and their norms). */
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
		return mb_err(MB_ERR_USAGE,
			      "dense_layers=%lld is out of range: accepted 0..layers (%lld)",
			      (long long)s.Ld, (long long)s.L);
	if (s.H % s.Hkv)
		return mb_err(MB_ERR_USAGE, "heads=%lld is not a multiple of kv_heads=%lld",
			      (long long)s.H, (long long)s.Hkv);
	if (s.k > s.E)
		return mb_err(MB_ERR_USAGE,
			      "top_k=%lld is out of range: accepted 1..experts (%lld)",
			      (long long)s.k, (long long)s.E);
	if (s.ep > 0 && s.E % s.ep)
		return mb_err(MB_ERR_USAGE, "ep=%lld does not divide experts=%lld", (long long)s.ep,
			      (long long)s.E);
	if (s.G > 1 && (s.E % s.G != 0 || s.k % s.G != 0))
		return mb_err(MB_ERR_USAGE,
			      "groups=%lld is out of range: accepted 0, 1 or a common divisor of "
			      "experts (%lld) and top_k (%lld)",
			      (long long)s.G, (long long)s.E, (long long)s.k);
	if (s.mla && s.Hkv != s.H)
		return mb_err(MB_ERR_USAGE,
			      "kv_heads=%lld with MLA (kv_lora > 0): accepted heads (%lld)",
			      (long long)s.Hkv, (long long)s.H);
	if (s.mla && s.rope >= s.dqk)
		return mb_err(MB_ERR_USAGE,
			      "qk_rope=%lld is out of range: accepted 0..head_dim-1 (%lld)",
			      (long long)s.rope, (long long)s.dqk - 1);
	if (!s.mla && (s.ql || s.rope))
		return mb_err(MB_ERR_USAGE, "q_lora and qk_rope need MLA (kv_lora > 0); with GQA "
					    "they must be 0");
	s.ep = s.ep ? s.ep : 1; /* 0: known with the world (ts_world_fits); sized as 1 here */
	ts_shape_world(&s, s.ep);
	const double bytes = ts_bytes(&s);
	if (bytes > TS_MAX_BYTES)
		return mb_err(MB_ERR_USAGE,
			      "train_step would need about %.1f GiB per rank; the limit "
			      "is %.0f GiB (lower layers, hidden, seq or experts)",
			      bytes / GIB, TS_MAX_BYTES / GIB);
	return 0;
}

/* Size presets. quick: seconds for a whole run on 2 CPU cores (a step well
 * under a second): every width capped small, 2 layers with one dense layer
 * when the model has dense layers. standard: a few seconds a step on 2
 * cores ("minutes on one CPU node"): hidden 1024, 8 heads at the model's head
 * widths, 8 experts, and up to 4 layers. full: the real per-layer shapes of
 * an accelerator run: the model's widths, heads, latent widths, vocabulary
 * and expert width at sequence length 4096, with 2 layers (one dense and one
 * MoE where the model has dense layers) and a slice of 8 experts with top_k
 * up to 4 (a device of an EP run holds a few experts, e.g. DeepSeek-V3's
 * 256 over EP64 = 4, and receives about top_k x tokens pairs). With fp32
 * weights, gradients and AdamW states (16 bytes a parameter) that is 45 to
 * 90 GiB: more layers or experts would not fit one device; a pipeline stage
 * is a multiple of these layers. In every size the kv-head ratio is kept.
 * MoGE models (Pangu Pro) keep as many expert groups as divide the slice's
 * experts and top_k (mb_model_groups): 2 in quick and standard, 4 in full. */
static int ts_preset(const mb_model *m, mb_size size, mb_params *p)
{
	if (m->experts < 1 || m->moe_ffn < 1)
		return mb_err(MB_ERR_USAGE, "model %s has no routed experts for train_step",
			      m->name);
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
		L = min64(m->layers, 2), h = m->hidden, H = m->heads;
		dqk = m->head_dim, dv = m->v_head_dim, rope = mla ? m->qk_rope : 0;
		ql = m->q_lora, kvl = m->kv_lora;
		E = min64(m->experts, 8), k = min64(m->top_k, 4), f = m->moe_ffn;
		fd = m->ffn_dense, V = m->vocab, seq = 4096, B = 1;
		break;
	}
	Ld = min64(m->dense_layers, dl);
	if (fd < 1)
		fd = 256; /* no dense layers: unused, the table's default */
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
		{"ffn_dense", (double)fd}, {"moe_ffn", (double)f},
		{"experts", (double)E}, {"shared_experts", (double)m->shared_experts},
		{"top_k", (double)k}, {"vocab", (double)V}, {"seq", (double)seq},
		{"batch", (double)B},
		{"score", m->score && strcmp(m->score, "sigmoid") == 0 ? 1.0 : 0.0},
		{"groups", (double)mb_model_groups(m, E, k)},
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

/* ---- setup ---- */

/* The EP group (ep consecutive ranks) and the DP group of the ranks that
 * hold the same experts (the same place in their EP groups), each with its
 * communicator: the world's when the group is the world, none for one
 * rank. Collective: every rank makes the same splits. */
static int ts_group_comm(ts_state *st, const mb_case_ctx *ctx, int color, int size,
			 mb_group *g, int *own, mb_comm **comm)
{
	if (size <= 1)
		return 0;
	if (size == ctx->world.size) {
		*g = ctx->world;
		*comm = st->comm;
		return 0;
	}
	int rc = ctx->split(ctx, color, ctx->world.rank, g);
	if (rc)
		return rc;
	*own = 1;
	return mb_dev_comm_init(st->be, st->dev, g, comm);
}

static int ts_groups(ts_state *st, const mb_case_ctx *ctx, int dp)
{
	const int ep = (int)st->s.ep, r = ctx->world.rank;
	st->group_free = ctx->group_free;
	st->ep_grp = (mb_group){.rank = 0, .size = 1};
	int rc = ts_group_comm(st, ctx, r / ep, ep, &st->ep_grp, &st->own_ep, &st->ep_comm);
	if (!rc && ep > 1)
		rc = ts_group_comm(st, ctx, r % ep, dp, &st->dp_grp, &st->own_dp, &st->dp_comm);
	st->ep_rank = st->ep_grp.rank;
	return rc;
}

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
	int ep = (int)s->ep, dp = (int)mb_param_int(ctx->params, "dp");
	if ((rc = mb_group_sizes("train_step", ctx->world.size, &ep, &dp)))
		return rc;
	s->ep = ep;
	ts_shape_world(s, ctx->world.size);
	if (s->W > 1 && (rc = mb_dev_comm_init(st->be, st->dev, &ctx->world, &st->comm)))
		return rc;
	if ((rc = ts_groups(st, ctx, dp)))
		return rc;
	return mb_ts_graph_build(st);
}

/* ---- run ---- */

static int ts_fetch_loss(ts_state *st, double *loss)
{
	int rc = mb_dev_download(st->be, st->dev, &st->loss_h, st->loss, sizeof st->loss_h);
	*loss = st->loss_h;
	return rc;
}

/* One whole step (timed per phase when phase_s is given); its loss is kept
 * (a 4-byte download, which waits for the step's launches). */
static int ts_step(ts_state *st, double *phase_s)
{
	double loss;
	int rc = mb_ts_graph_exec(st, PART_FWD, PART_OPT, phase_s);
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

static int ts_run(void *state) { return ts_step(state, NULL); }

/* ---- verify ---- */

/* 64-bit FNV-1a over the bytes of n floats, with an fp64 sum and sum of
 * squares. */
static void ts_checksum(const float *x, int64_t n, double out[2], uint64_t *hash)
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
	mb_op op = {.kind = MB_OP_ALLREDUCE, .dtype = MB_FP64};
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
 * parameters that must be identical in its own slot: the replicated ones
 * (all of them with ep = 1, all but the sharded experts otherwise), and
 * with ep > 1 its experts, which the ranks at the same place of the other
 * EP groups hold too. The sum over ranks then holds every rank's values
 * exactly (x + 0 = x); the replicated part is compared with rank 0's, the
 * experts with those of the rank at the same place in the first EP group,
 * bit for bit: AdamW on identical gradients from one allreduce must give
 * identical parameters. */
static void ts_slot(const float *x, int64_t n, double *slot)
{
	double sums[2];
	uint64_t hash;
	ts_checksum(x, n, sums, &hash);
	slot[0] = sums[0], slot[1] = sums[1];
	slot[2] = (double)(hash >> 32), slot[3] = (double)(hash & 0xffffffffu);
}

static void ts_compare_slots(const double *a, const double *b, int64_t r, int64_t r0,
			     const char *what, mb_check *out, char *why, size_t nwhy)
{
	const double d = fabs(b[0] - a[0]) / (fabs(a[0]) + 1e-30);
	out->max_rel_err = d > out->max_rel_err ? d : out->max_rel_err;
	out->checked++;
	if (memcmp(a, b, 4 * sizeof *a) == 0)
		return;
	out->mismatched++;
	if (!why[0])
		snprintf(why, nwhy, "rank %lld's %s differ from rank %lld's (sum %.17g vs %.17g)",
			 (long long)r, what, (long long)r0, b[0], a[0]);
}

static int ts_check_replicas(ts_state *st, mb_check *out, char *why, size_t nwhy)
{
	const int64_t W = st->s.W, ep = st->s.ep, n = st->n_all;
	float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof *host);
	double *slots = calloc((size_t)(8 * W), sizeof *slots);
	if (!host || !slots) {
		free(host), free(slots);
		return mb_err(MB_ERR_NOMEM, "train_step verify: out of host memory");
	}
	int rc = mb_dev_download(st->be, st->dev, host, st->param, (size_t)n * sizeof *host);
	if (!rc) {
		ts_slot(host, st->n_sync, slots + 8 * st->rank);
		ts_slot(host + st->n_sync, n - st->n_sync, slots + 8 * st->rank + 4);
		rc = ts_allreduce(st, slots, 8 * W);
	}
	for (int64_t r = 1; !rc && r < W; r++) {
		ts_compare_slots(slots, slots + 8 * r, r, 0, "parameters", out, why, nwhy);
		if (ep > 1 && r >= ep) /* an expert replica of rank r % ep */
			ts_compare_slots(slots + 8 * (r % ep) + 4, slots + 8 * r + 4, r, r % ep,
					 "experts", out, why, nwhy);
	}
	free(host), free(slots);
	return rc;
}

/* One more step, untimed, with a sync at every change of phase. */
static int ts_profile(ts_state *st)
{
	memset(st->phase_s, 0, sizeof st->phase_s);
	int rc = ts_step(st, st->phase_s);
	st->profiled = rc == 0;
	return rc;
}

static const char ts_method[] = "loss falls from the first step to the last (info.loss_first, "
				 "info.loss_last); DP replicas bit-identical (checksum), experts "
				 "too across EP groups";

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
	if (!rc)
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
		snprintf(why, sizeof why,
			 "the loss did not fall: %.6g at step 0, %.6g at step %lld",
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
	/* attention: projections, their norms and the core; moe: every FFN (the
	 * routed and shared experts with router and permutes, and the dense
	 * layers' FFN); comm: alltoallv, the EP count exchange and the gradient
	 * allreduce; other: embedding, layer norms, residual adds, LM head, loss */
	static const char *const names[PH_N] = {"phase_attention_s", "phase_moe_s", "phase_comm_s",
						"phase_optimizer_s", "phase_other_s"};
	for (int p = 0; p < PH_N; p++)
		mb_info_add(out, names[p], st->phase_s[p]);
}

static void ts_teardown(void *state)
{
	ts_state *st = state;
	if (!st)
		return;
	mb_ts_graph_free(st);
	if (st->own_ep) {
		mb_dev_comm_free(st->be, st->dev, st->ep_comm);
		st->group_free(&st->ep_grp);
	}
	if (st->own_dp) {
		mb_dev_comm_free(st->be, st->dev, st->dp_comm);
		st->group_free(&st->dp_grp);
	}
	mb_dev_comm_free(st->be, st->dev, st->comm);
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
	int rc = mb_ts_graph_exec(st, PART_FWD, PART_FWD, NULL);
	return rc ? rc : ts_fetch_loss(st, loss);
}

int mb_ts_gradients(void *state, double *loss)
{
	ts_state *st = state;
	int rc = mb_ts_graph_exec(st, PART_FWD, PART_BWD, NULL);
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
	.world_fits = ts_world_fits,
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
