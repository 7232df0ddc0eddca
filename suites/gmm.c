/* gmm.c: the dropless MoE FFN on one device (DESIGN §5).
 *
 * One iteration is the forward and backward of one MoE layer's routed
 * experts, as device launches only:
 *   forward:  logits = X Wr; router (scores, top-k, weights); permute X by
 *             expert; GU = GMM(Xs, W1) (gate|up fused); A = SwiGLU(GU);
 *             Ys = GMM(A, W2); Y = unpermute(Ys, w)
 *   backward: from a fixed seeded dY: unpermute_bwd -> dYs, dw;
 *             dA = GMM_NT(dYs, W2); dW2 = GMM_TN(A, dYs); dGU = SwiGLU_bwd;
 *             dXs = GMM_NT(dGU, W1); dW1 = GMM_TN(Xs, dGU); dX = permute_bwd;
 *             dlogits = router_bwd(dw); dX += dlogits Wr^T; dWr = X^T dlogits.
 * Shapes: X [tokens][hidden], Wr [hidden][experts], W1 [experts][hidden][2 ffn],
 * W2 [experts][ffn][hidden]; pairs = tokens * top_k rows after permute.
 *
 * Dtypes: with dtype=bf16, activations, weights and their gradients are bf16;
 * logits, scores, routing weights and dlogits stay fp32 as backend.h says, so
 * the router GEMMs mix the two (their ops name the fp32 operands).
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmm_int.h"

static const mb_param_def gmm_params[] = {
	{"hidden", MB_PT_INT, "512", 16, 65536, NULL, "model width"},
	{"ffn", MB_PT_INT, "256", 8, 65536, NULL, "per-expert FFN intermediate size"},
	{"experts", MB_PT_INT, "8", 1, 1024, NULL,
	 "routed experts of the model (router width); a device holds experts/ep of them"},
	{"ep", MB_PT_INT, "1", 1, 1024, NULL,
	 "expert-parallel degree: the device holds experts/ep experts and computes the pairs "
	 "an ep-device group routes to them"},
	{"top_k", MB_PT_INT, "2", 1, 64, NULL, "experts each token is routed to"},
	{"tokens", MB_PT_INT, "512", 1, 16777216, NULL, "tokens per iteration"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "activation and weight type"},
	{"skew", MB_PT_REAL, "0", 0, 4, NULL,
	 "Zipf exponent of tokens per expert (0 = balanced routing)"},
	{"score", MB_PT_ENUM, "softmax", 0, 0, "softmax|sigmoid", "router scoring function"},
	{"groups", MB_PT_INT, "0", 0, 1024, NULL,
	 "MoGE expert groups: top_k/groups experts chosen in each of groups equal groups "
	 "(0 = ungrouped)"},
};

#define GMM_MAX_BYTES (64.0 * GIB)

static int gmm_shape_get(const mb_params *p, gmm_shape *s)
{
	char buf[16];
	s->tokens = mb_param_int(p, "tokens");
	s->h = mb_param_int(p, "hidden");
	s->f = mb_param_int(p, "ffn");
	s->experts = mb_param_int(p, "experts");
	s->top_k = mb_param_int(p, "top_k");
	s->ep = mb_param_int(p, "ep");
	s->ep_rank = 0;
	s->T = s->tokens;
	s->E = s->experts;
	s->k = s->top_k;
	if (GMM_RECV(s)) { /* the expected rows, until setup routes the group */
		s->T = s->tokens * s->top_k;
		s->E = s->experts / s->ep;
		s->k = 1;
	}
	s->P = s->T * s->k;
	s->G = mb_param_int(p, "groups");
	s->skew = mb_param_real(p, "skew");
	s->score = strcmp(mb_param_choice(p, "score", buf, sizeof buf), "sigmoid") == 0
			   ? MB_SCORE_SIGMOID
			   : MB_SCORE_SOFTMAX;
	return mb_dtype_parse(mb_param_choice(p, "dtype", buf, sizeof buf), &s->dt);
}

/* Elements of buffer b, and their size in bytes (activation dtype, fp32 or int). */
static double buf_elems_all(const gmm_shape *s, int b, size_t *esize)
{
	const double T = (double)s->T, h = (double)s->h, f = (double)s->f, E = (double)s->E,
		     k = (double)s->k, P = (double)s->P;
	*esize = mb_dtype_size(s->dt);
	switch (b) {
	case B_X: case B_Y: case B_DY: case B_DX: return T * h;
	case B_WR: case B_DWR: return h * E;
	case B_XS: case B_YS: case B_DYS: case B_DXS: return P * h;
	case B_W1: case B_DW1: return E * h * 2 * f;
	case B_W2: case B_DW2: return E * f * h;
	case B_GU: case B_DGU: return P * 2 * f;
	case B_A: case B_DA: return P * f;
	}
	*esize = b == B_OFF ? sizeof(int64_t) : 4; /* fp32 or int32 */
	switch (b) {
	case B_LOGITS: case B_SCORES: case B_DLOGITS: return T * E;
	case B_IDX: case B_W: case B_POS: case B_DW: return T * k;
	default: return E + 1; /* B_OFF */
	}
}

/* The same, with no router buffers for a device that computes received rows. */
static double buf_elems(const gmm_shape *s, int b, size_t *esize)
{
	const double n = buf_elems_all(s, b, esize);
	const int router = b == B_WR || b == B_DWR || b == B_LOGITS || b == B_SCORES ||
			   b == B_DLOGITS;
	return GMM_RECV(s) && router ? 0.0 : n;
}

/* Device buffers plus the host copies of the inputs. */
static double gmm_bytes(const gmm_shape *s)
{
	double total = 0.0;
	for (int b = 0; b < B_N; b++) {
		size_t es;
		double n = buf_elems(s, b, &es);
		total += n * (double)es;
	}
	return total + 4.0 * ((double)s->T * s->h * 2 + (double)s->h * s->E * (1 + 3.0 * s->f));
}

static int gmm_validate(const mb_params *p)
{
	gmm_shape s;
	int rc = gmm_shape_get(p, &s);
	if (rc)
		return rc;
	if (s.top_k > s.experts)
		return mb_err(MB_ERR_USAGE, "top_k=%lld is out of range: accepted 1..experts (%lld)",
			      (long long)s.top_k, (long long)s.experts);
	if (s.G > 1 && (s.experts % s.G != 0 || s.top_k % s.G != 0))
		return mb_err(MB_ERR_USAGE,
			      "groups=%lld is out of range: accepted 0, 1 or a common divisor of "
			      "experts (%lld) and top_k (%lld)",
			      (long long)s.G, (long long)s.experts, (long long)s.top_k);
	if (s.experts % s.ep != 0)
		return mb_err(MB_ERR_USAGE,
			      "ep=%lld is out of range: accepted a divisor of experts (%lld)",
			      (long long)s.ep, (long long)s.experts);
	double bytes = gmm_bytes(&s);
	if (bytes > GMM_MAX_BYTES)
		return mb_err(MB_ERR_USAGE,
			      "gmm would need %.1f GiB of buffers (hidden=%lld ffn=%lld experts=%lld "
			      "ep=%lld top_k=%lld tokens=%lld); the limit is 64 GiB",
			      bytes / GIB, (long long)s.h, (long long)s.f, (long long)s.experts,
			      (long long)s.ep, (long long)s.top_k, (long long)s.tokens);
	return 0;
}

/* The largest divisor of experts that is at most cap. */
static int64_t ep_divisor(int64_t experts, int64_t cap)
{
	int64_t d = cap < experts ? cap : experts;
	while (d > 1 && experts % d)
		d--;
	return d < 1 ? 1 : d;
}

/* A device holds a slice of the experts: the model's hidden and ffn, all of
 * its experts in the router, and experts/ep of them on the device.
 *   quick:    hidden <= 512, ffn <= 256, at most 32 experts and top-2, 512
 *             tokens per device; ep gives 8 experts a device (1 below 16).
 *   standard: the model's shapes; ep gives 8 experts a device, and the tokens
 *             per device are 8192/top_k, so a device receives ~8192 pairs,
 *             ~1024 rows per expert (4096 tokens, one DeepSeek-V3 pre-training
 *             sequence, at top-2).
 *   full:     the model's shapes, 4096 tokens per device, 4 experts a device
 *             up to 64-way EP (DeepSeek-V3 trained with 64-way EP over its
 *             256 experts: facts-models-hardware.md §B).
 * ep is always a divisor of experts (the largest at most the target). */
static int gmm_preset(const mb_model *m, mb_size size, mb_params *p)
{
	int64_t hidden = m->hidden, ffn = m->moe_ffn, experts = m->experts, top_k = m->top_k;
	int64_t tokens = 4096, ep = 1;
	if (experts < 1 || ffn < 1)
		return mb_err(MB_ERR_USAGE, "model %s has no routed experts for gmm", m->name);
	switch (size) {
	case MB_SIZE_QUICK:
		hidden = hidden < 512 ? hidden : 512;
		ffn = ffn < 256 ? ffn : 256;
		experts = experts < 32 ? experts : 32;
		top_k = top_k < 2 ? top_k : 2;
		tokens = 512;
		ep = experts >= 16 ? ep_divisor(experts, experts / 8) : 1;
		break;
	case MB_SIZE_STANDARD:
		ep = experts >= 16 ? ep_divisor(experts, experts / 8) : 1;
		tokens = 8192 / top_k;
		break;
	default:
		ep = experts >= 8 ? ep_divisor(experts, experts / 4 < 64 ? experts / 4 : 64) : 1;
		break;
	}
	/* MoGE (Pangu Pro: 64 experts in 8 groups, top-8 = 1 per group): a
	 * scaled-down router cannot always keep 8 groups (quick has top-2), so
	 * take the most groups, up to the model's, that still divide both
	 * experts and top_k (mb_model_groups). Ungrouped models stay at 0. */
	const int64_t groups = mb_model_groups(m, experts, top_k);
	const int sigmoid = m->score && strcmp(m->score, "sigmoid") == 0;
	const struct {
		const char *key;
		double v;
	} set[] = {{"hidden", (double)hidden}, {"ffn", (double)ffn},
		   {"experts", (double)experts}, {"top_k", (double)top_k},
		   {"tokens", (double)tokens},   {"ep", (double)ep},
		   {"score", sigmoid ? 1.0 : 0.0}, {"groups", (double)groups}};
	for (size_t i = 0; i < MB_ARRAY_LEN(set); i++) {
		int rc = mb_params_set(p, set[i].key, set[i].v, MB_SRC_PRESET);
		if (rc)
			return rc;
	}
	return 0;
}

/* Model FLOPs (Megatron-LM convention, DESIGN §5): per routed pair the three
 * expert matmuls of the forward (hidden x 2ffn gate|up, ffn x hidden down) are
 * 2 (hidden 2ffn + ffn hidden) = 6 hidden ffn FLOPs; backward is twice the
 * forward, so 18 hidden ffn per pair. Router, permute and SwiGLU are not
 * counted. PaLM's count is the same here (no attention). */
static void gmm_cost_of(const gmm_shape *s, mb_cost *out)
{
	memset(out, 0, sizeof *out);
	out->flops = 18.0 * (double)s->P * (double)s->h * (double)s->f;
	out->flops_palm = out->flops;
	out->tokens = (double)s->tokens;
}

/* With ep > 1 the rows a device receives are known once setup has routed
 * the group: until then the FLOPs are unknown (null), and gmm_case_cost
 * gives the real count. tokens is the device's own share of the group's. */
static int gmm_cost(const mb_params *p, mb_cost *out)
{
	gmm_shape s;
	int rc = gmm_shape_get(p, &s);
	if (rc)
		return rc;
	gmm_cost_of(&s, out);
	if (GMM_RECV(&s))
		out->flops = out->flops_palm = NAN;
	return 0;
}

static int gmm_case_cost(void *state, mb_cost *out)
{
	const gmm_state *st = state;
	gmm_cost_of(&st->s, out);
	return 0;
}

mb_ref_moe mb_gmm_problem(const gmm_state *st)
{
	const gmm_shape *s = &st->s;
	return (mb_ref_moe){.tokens = s->T, .hidden = s->h, .ffn = s->f, .experts = s->E,
			    .top_k = s->k, .score = s->score, .x = st->x, .wr = st->wr,
			    .w1 = st->w1, .w2 = st->w2, .dy = st->dy};
}

/* ---- skew ----
 *
 * The router's choice gets a per-expert bias so that expert e's expected
 * share of the pairs is proportional to 1/(e+1)^skew (a Zipf law over the
 * expert ranks); the bias is calibrated on the host against this run's own
 * fp64 scores (mb_ref_skew_bias in ref.c says how). It is approximate: info
 * reports the group sizes the device actually produced. With MoGE groups
 * every group's total is fixed (tokens * top_k/groups pairs), so the Zipf
 * law applies within each group, by an expert's rank inside its group. */
static int gmm_skew_bias(gmm_state *st, const mb_ref_moe *m)
{
	const gmm_shape *s = &st->s;
	const int64_t E = m->experts;
	int64_t n = (int64_t)(1 << 21) / E; /* enough tokens for the shares, bounded work */
	n = n < 64 ? 64 : n;
	n = n < m->tokens ? n : m->tokens;
	double *sc = malloc((size_t)(n * E) * sizeof *sc);
	st->bias = mb_alloc((size_t)E * sizeof(float));
	if (!sc || !st->bias) {
		free(sc);
		return mb_err(MB_ERR_NOMEM, "gmm: out of memory calibrating the skew bias");
	}
	for (int64_t t = 0; t < n; t++) {
		mb_ref_logits(m, t, sc + t * E);
		mb_ref_scores(s->score, sc + t * E, E, sc + t * E);
	}
	int rc = mb_ref_skew_bias(sc, n, E, m->top_k, s->G, s->skew, st->bias);
	free(sc);
	return rc;
}

/* ---- setup ---- */

/* Fill x with elements first.. of a seeded stream; in bf16 runs round them
 * to bf16, so that the host copy is exactly what the device holds. */
static void gmm_fill(const gmm_state *st, float *x, size_t n, int stream, uint64_t first,
		     double a)
{
	mb_rand_fill_at(x, n, st->seed, (uint64_t)stream, first, a);
	if (st->s.dt == MB_BF16)
		for (size_t i = 0; i < n; i++)
			x[i] = mb_bf16_widen(mb_bf16_round(x[i]));
}

static float *gmm_input(const gmm_state *st, size_t n, int stream, uint64_t first, double a)
{
	float *x = mb_alloc(n * sizeof(float));
	if (x)
		gmm_fill(st, x, n, stream, first, a);
	return x;
}

/* Upload n host fp32 values to dst as elements of es bytes (4: fp32; 2: bf16). */
static int gmm_upload_to(gmm_state *st, void *dst, const float *src, size_t n, size_t es)
{
	if (es == 4)
		return mb_dev_upload(st->be, st->dev, dst, src, n * 4);
	uint16_t *tmp = mb_alloc(n * sizeof *tmp);
	if (!tmp)
		return mb_err(MB_ERR_NOMEM, "gmm: out of memory converting inputs to bf16");
	for (size_t i = 0; i < n; i++)
		tmp[i] = mb_bf16_round(src[i]);
	int rc = mb_dev_upload(st->be, st->dev, dst, tmp, n * sizeof *tmp);
	mb_free(tmp);
	return rc;
}

/* Upload a host fp32 array into buffer b, converting to the buffer's dtype. */
static int gmm_upload(gmm_state *st, int b, const float *src)
{
	size_t es;
	size_t n = (size_t)buf_elems(&st->s, b, &es);
	return gmm_upload_to(st, st->buf[b], src, n, es);
}

static mb_op gmm_op_gmm(const gmm_shape *s, int64_t k, int64_t n, mb_gmm_mode mode)
{
	mb_op op = {.kind = MB_OP_GMM, .dtype = s->dt};
	op.u.gmm.groups = s->E;
	op.u.gmm.rows = s->P;
	op.u.gmm.k = k;
	op.u.gmm.n = n;
	op.u.gmm.mode = mode;
	return op;
}

/* fp32: the MB_GEMM_*_FP32 operands, the routing data (logits, dlogits). */
static mb_op gmm_op_gemm(const gmm_shape *s, int64_t m, int64_t n, int64_t k, int ta, int tb,
			 float beta, unsigned fp32)
{
	mb_op op = {.kind = MB_OP_GEMM, .dtype = s->dt};
	op.u.gemm.fp32 = fp32;
	op.u.gemm.m = m;
	op.u.gemm.n = n;
	op.u.gemm.k = k;
	op.u.gemm.trans_a = ta;
	op.u.gemm.trans_b = tb;
	op.u.gemm.alpha = 1.0f;
	op.u.gemm.beta = beta;
	return op;
}

/* The router over tokens x experts, top_k each (ROUTER or ROUTER_BWD). */
static mb_op gmm_op_router(const gmm_state *st, mb_op_kind kind, int64_t tokens,
			   int64_t experts, int64_t top_k)
{
	mb_op op = {.kind = kind, .dtype = st->s.dt};
	op.u.router.tokens = tokens;
	op.u.router.experts = experts;
	op.u.router.top_k = top_k;
	op.u.router.score = st->s.score;
	op.u.router.bias = kind == MB_OP_ROUTER ? st->bias : NULL;
	op.u.router.groups = st->s.G;
	return op;
}

/* ---- expert parallelism ----
 *
 * With ep = N the device is one of an EP group of N devices with `tokens`
 * tokens each, and holds experts [r E/N, (r+1) E/N) for r = ep_rank (its
 * world rank mod N: one process is rank 0, which under skew holds the most
 * popular experts). It computes what it would receive: every (token,
 * choice) pair of the group whose expert it holds. Setup routes the group's
 * N x tokens tokens, untimed, with the backend's own router GEMM and ROUTER
 * op over all experts (source device d's token t is token d tokens + t of one
 * seeded tensor, so device 0's are the tokens of ep = 1), and keeps the
 * pairs in arrival order (source device, token, choice): received row r is
 * its token's x, its local expert and its routing weight. The timed
 * iteration is the expert side of the layer: the local sort by expert
 * (PERMUTE with one choice per row), the grouped GEMMs with SwiGLU and the
 * weighting (UNPERMUTE), forward and backward. Routing the device's own
 * tokens, dispatch and combine are not in it: alltoall and train_step time
 * those. */

typedef struct gmm_pair {
	int64_t g; /* token of the group */
	int32_t e; /* local expert */
	float w;   /* routing weight */
} gmm_pair;

/* What routing the group needs for the time it runs; freed in one place. */
typedef struct gmm_route {
	float *x, *w;
	int32_t *idx;
	void *bx, *bwr, *blog, *bidx, *bw, *bsc;
	mb_plan *logits, *router;
	gmm_pair *pairs;
	int64_t n, cap;
} gmm_route;

static void route_free(gmm_state *st, gmm_route *r)
{
	void *dev[] = {r->bx, r->bwr, r->blog, r->bidx, r->bw, r->bsc};
	for (size_t i = 0; i < MB_ARRAY_LEN(dev); i++)
		mb_dev_free(st->be, st->dev, dev[i]);
	mb_dev_plan_free(st->be, st->dev, r->logits);
	mb_dev_plan_free(st->be, st->dev, r->router);
	mb_free(r->x);
	free(r->w);
	free(r->idx);
	free(r->pairs);
}

static int route_alloc(gmm_state *st, gmm_route *r)
{
	const gmm_shape *s = &st->s;
	const size_t T = (size_t)s->tokens, E = (size_t)s->experts, K = (size_t)s->top_k,
		     h = (size_t)s->h, es = mb_dtype_size(s->dt);
	r->w = malloc(T * K * sizeof *r->w);
	r->idx = malloc(T * K * sizeof *r->idx);
	r->cap = (int64_t)(T * K);
	r->pairs = malloc((size_t)r->cap * sizeof *r->pairs);
	if (!r->w || !r->idx || !r->pairs)
		return mb_err(MB_ERR_NOMEM, "gmm: out of host memory routing the ep group");
	void **dev[] = {&r->bx, &r->bwr, &r->blog, &r->bidx, &r->bw, &r->bsc};
	const size_t bytes[] = {T * h * es, h * E * es, T * E * 4, T * K * 4, T * K * 4, T * E * 4};
	for (size_t i = 0; i < MB_ARRAY_LEN(dev); i++)
		if (!(*dev[i] = mb_dev_alloc(st->be, st->dev, bytes[i])))
			return mb_err(MB_ERR_NOMEM, "gmm: %s backend could not allocate %.1f MiB "
						    "for routing the ep group",
				      st->be->name, (double)bytes[i] / (1024.0 * 1024.0));
	mb_op op = gmm_op_gemm(s, s->tokens, s->experts, s->h, 0, 0, 0.0f, MB_GEMM_C_FP32);
	int rc = mb_dev_plan(st->be, st->dev, &op, &r->logits);
	op = gmm_op_router(st, MB_OP_ROUTER, s->tokens, s->experts, s->top_k);
	return rc ? rc : mb_dev_plan(st->be, st->dev, &op, &r->router);
}

/* Route source device d's tokens; keep the pairs of this device's slice. */
static int route_source(gmm_state *st, gmm_route *r, int64_t d)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->tokens, K = s->top_k, E = s->experts, per = s->E;
	if (d > 0)
		gmm_fill(st, r->x, (size_t)(T * s->h), S_X, (uint64_t)(d * T * s->h), 1.0);
	const mb_io lio = {.in = {r->bx, r->bwr}, .out = {r->blog}};
	const mb_io rio = {.in = {r->blog}, .out = {r->bidx, r->bw, r->bsc}};
	int rc = gmm_upload_to(st, r->bx, r->x, (size_t)(T * s->h), mb_dtype_size(s->dt));
	if (!rc)
		rc = mb_dev_launch(st->be, st->dev, r->logits, &lio);
	if (!rc)
		rc = mb_dev_launch(st->be, st->dev, r->router, &rio);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, r->idx, r->bidx, (size_t)(T * K) * 4);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, r->w, r->bw, (size_t)(T * K) * 4);
	if (rc)
		return rc;
	for (int64_t i = 0; i < T * K; i++) {
		const int32_t e = r->idx[i];
		if (e < 0 || e >= E)
			return mb_err(MB_ERR_DEVICE, "gmm: routing the ep group, the router chose "
						     "expert %d for token %lld (accepted 0..%lld)",
				      e, (long long)(d * T + i / K), (long long)E - 1);
		st->recv[e / per]++;
		if (e / per != s->ep_rank)
			continue;
		if (r->n == r->cap) {
			gmm_pair *p = realloc(r->pairs, (size_t)(2 * r->cap) * sizeof *p);
			if (!p)
				return mb_err(MB_ERR_NOMEM, "gmm: out of host memory for received rows");
			r->pairs = p;
			r->cap *= 2;
		}
		r->pairs[r->n++] = (gmm_pair){d * T + i / K, e % (int32_t)per, r->w[i]};
	}
	return 0;
}

/* The received rows as the device's inputs: x, the routing of each, dY. */
static int route_rows(gmm_state *st, const gmm_route *r)
{
	gmm_shape *s = &st->s;
	const int64_t R = r->n, h = s->h;
	if (R == 0)
		return mb_err(MB_ERR_UNSUPPORTED,
			      "gmm: ep_rank %lld's %lld experts receive no tokens from the group "
			      "(skew=%g), so there is nothing to compute",
			      (long long)s->ep_rank, (long long)s->E, s->skew);
	s->T = s->P = R;
	st->x = mb_alloc((size_t)(R * h) * sizeof(float));
	st->ridx = malloc((size_t)R * sizeof *st->ridx);
	st->rw = malloc((size_t)R * sizeof *st->rw);
	st->dy = gmm_input(st, (size_t)(R * h), S_DY, 0, 1.0);
	if (!st->x || !st->ridx || !st->rw || !st->dy)
		return mb_err(MB_ERR_NOMEM, "gmm: out of host memory for %lld received rows",
			      (long long)R);
	for (int64_t i = 0; i < R; i++) {
		gmm_fill(st, st->x + i * h, (size_t)h, S_X, (uint64_t)(r->pairs[i].g * h), 1.0);
		st->ridx[i] = r->pairs[i].e;
		st->rw[i] = r->pairs[i].w;
	}
	return 0;
}

static int gmm_route_group(gmm_state *st)
{
	const gmm_shape *s = &st->s;
	gmm_route r = {0};
	st->recv = calloc((size_t)s->ep, sizeof *st->recv);
	r.x = gmm_input(st, (size_t)(s->tokens * s->h), S_X, 0, 1.0);
	int rc = 0;
	if (!st->recv || !r.x)
		rc = mb_err(MB_ERR_NOMEM, "gmm: out of host memory routing the ep group");
	if (!rc && s->skew > 0.0) { /* source device 0's tokens calibrate it, as with ep = 1 */
		const mb_ref_moe m0 = {.tokens = s->tokens, .hidden = s->h, .ffn = s->f,
				       .experts = s->experts, .top_k = s->top_k,
				       .score = s->score, .x = r.x, .wr = st->wr};
		rc = gmm_skew_bias(st, &m0);
	}
	if (!rc) /* after the bias, which the router's plan holds */
		rc = route_alloc(st, &r);
	if (!rc)
		rc = gmm_upload_to(st, r.bwr, st->wr, (size_t)(s->h * s->experts),
				   mb_dtype_size(s->dt));
	for (int64_t d = 0; !rc && d < s->ep; d++)
		rc = route_source(st, &r, d);
	if (!rc)
		rc = route_rows(st, &r);
	route_free(st, &r);
	return rc;
}

/* Inputs: X, dY ~ U[-1,1]; Wr, W1 ~ U[-1/sqrt(hidden), +]; W2 ~ U[-1/sqrt(ffn), +],
 * so that logits and gate/up values have a spread of about 1/3: softmax stays
 * well away from saturation and SwiGLU from its linear tail. W1 and W2 are
 * the device's slice of the model's tensors (the same numbers for the same
 * expert whatever ep is). */
static int gmm_inputs(gmm_state *st)
{
	const gmm_shape *s = &st->s;
	const size_t w1n = (size_t)(s->E * s->h * 2 * s->f), w2n = (size_t)(s->E * s->f * s->h);
	const uint64_t slice = (uint64_t)s->ep_rank;
	st->wr = gmm_input(st, (size_t)(s->h * s->experts), S_WR, 0, 1.0 / sqrt((double)s->h));
	st->w1 = gmm_input(st, w1n, S_W1, slice * w1n, 1.0 / sqrt((double)s->h));
	st->w2 = gmm_input(st, w2n, S_W2, slice * w2n, 1.0 / sqrt((double)s->f));
	st->off = mb_calloc((size_t)s->E + 1, sizeof(int64_t));
	if (!st->wr || !st->w1 || !st->w2 || !st->off)
		return mb_err(MB_ERR_NOMEM, "gmm: out of memory for host inputs (%.1f GiB)",
			      gmm_bytes(s) / GIB);
	if (GMM_RECV(s))
		return gmm_route_group(st);
	st->x = gmm_input(st, (size_t)(s->T * s->h), S_X, 0, 1.0);
	st->dy = gmm_input(st, (size_t)(s->T * s->h), S_DY, 0, 1.0);
	if (!st->x || !st->dy)
		return mb_err(MB_ERR_NOMEM, "gmm: out of memory for host inputs (%.1f GiB)",
			      gmm_bytes(s) / GIB);
	const mb_ref_moe m = mb_gmm_problem(st);
	return s->skew > 0.0 ? gmm_skew_bias(st, &m) : 0;
}

/* The ops of the device's own routing (its router and the router's share
 * of the backward), which a device computing received rows does not run. */
static int gmm_routes(int op)
{
	return op == OP_LOGITS || op == OP_ROUTER || op == OP_ROUTER_BWD || op == OP_DX_ROUTER ||
	       op == OP_DWR;
}

static int gmm_plan_all(gmm_state *st)
{
	const gmm_shape *s = &st->s;
	mb_op op[OP_N];
	op[OP_LOGITS] = gmm_op_gemm(s, s->T, s->E, s->h, 0, 0, 0.0f, MB_GEMM_C_FP32);
	op[OP_ROUTER] = gmm_op_router(st, MB_OP_ROUTER, s->T, s->E, s->k);
	op[OP_ROUTER_BWD] = gmm_op_router(st, MB_OP_ROUTER_BWD, s->T, s->E, s->k);
	op[OP_PERMUTE] = (mb_op){.kind = MB_OP_PERMUTE, .dtype = s->dt};
	op[OP_PERMUTE].u.perm.tokens = s->T;
	op[OP_PERMUTE].u.perm.hidden = s->h;
	op[OP_PERMUTE].u.perm.experts = s->E;
	op[OP_PERMUTE].u.perm.top_k = s->k;
	op[OP_PERMUTE_BWD] = op[OP_UNPERMUTE] = op[OP_UNPERMUTE_BWD] = op[OP_PERMUTE];
	op[OP_PERMUTE_BWD].kind = MB_OP_PERMUTE_BWD;
	op[OP_UNPERMUTE].kind = MB_OP_UNPERMUTE;
	op[OP_UNPERMUTE_BWD].kind = MB_OP_UNPERMUTE_BWD;
	op[OP_GMM1] = gmm_op_gmm(s, s->h, 2 * s->f, MB_GMM_NN);
	op[OP_GMM2] = gmm_op_gmm(s, s->f, s->h, MB_GMM_NN);
	op[OP_GMM2_NT] = gmm_op_gmm(s, s->h, s->f, MB_GMM_NT);
	op[OP_GMM2_TN] = gmm_op_gmm(s, s->f, s->h, MB_GMM_TN);
	op[OP_GMM1_NT] = gmm_op_gmm(s, 2 * s->f, s->h, MB_GMM_NT);
	op[OP_GMM1_TN] = gmm_op_gmm(s, s->h, 2 * s->f, MB_GMM_TN);
	op[OP_SWIGLU] = (mb_op){.kind = MB_OP_SWIGLU, .dtype = s->dt};
	op[OP_SWIGLU].u.act.rows = s->P;
	op[OP_SWIGLU].u.act.ffn = s->f;
	op[OP_SWIGLU_BWD] = op[OP_SWIGLU];
	op[OP_SWIGLU_BWD].kind = MB_OP_SWIGLU_BWD;
	/* dX += dlogits Wr^T; dWr = X^T dlogits */
	op[OP_DX_ROUTER] = gmm_op_gemm(s, s->T, s->h, s->E, 0, 1, 1.0f, MB_GEMM_A_FP32);
	op[OP_DWR] = gmm_op_gemm(s, s->h, s->E, s->T, 1, 0, 0.0f, MB_GEMM_B_FP32);
	for (int i = 0; i < OP_N; i++) {
		if (GMM_RECV(s) && gmm_routes(i))
			continue; /* received rows come routed */
		int rc = mb_dev_plan(st->be, st->dev, &op[i], &st->plan[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Download n elements from element off of activation-dtype buffer b as fp32. */
int mb_gmm_fetch(const gmm_state *st, int b, size_t off, size_t n, float *out)
{
	size_t es;
	buf_elems(&st->s, b, &es);
	int rc = mb_dev_download(st->be, st->dev, out, (const char *)st->buf[b] + off * es, n * es);
	if (rc || es == 4)
		return rc;
	for (size_t i = n; i-- > 0;) { /* widen in place, from the end */
		uint16_t v;
		memcpy(&v, (const char *)out + 2 * i, 2);
		out[i] = mb_bf16_widen(v);
	}
	return 0;
}

static void gmm_wire(gmm_state *st)
{
	static const struct {
		int op;
		int in[4], out[3];
	} w[OP_N] = {
		{OP_LOGITS, {B_X, B_WR, -1, -1}, {B_LOGITS, -1, -1}},
		{OP_ROUTER, {B_LOGITS, -1, -1, -1}, {B_IDX, B_W, B_SCORES}},
		{OP_PERMUTE, {B_X, B_IDX, -1, -1}, {B_XS, B_OFF, B_POS}},
		{OP_GMM1, {B_XS, B_W1, B_OFF, -1}, {B_GU, -1, -1}},
		{OP_SWIGLU, {B_GU, -1, -1, -1}, {B_A, -1, -1}},
		{OP_GMM2, {B_A, B_W2, B_OFF, -1}, {B_YS, -1, -1}},
		{OP_UNPERMUTE, {B_YS, B_POS, B_W, -1}, {B_Y, -1, -1}},
		{OP_UNPERMUTE_BWD, {B_DY, B_YS, B_POS, B_W}, {B_DYS, B_DW, -1}},
		{OP_GMM2_NT, {B_DYS, B_W2, B_OFF, -1}, {B_DA, -1, -1}},
		{OP_GMM2_TN, {B_A, B_DYS, B_OFF, -1}, {B_DW2, -1, -1}},
		{OP_SWIGLU_BWD, {B_GU, B_DA, -1, -1}, {B_DGU, -1, -1}},
		{OP_GMM1_NT, {B_DGU, B_W1, B_OFF, -1}, {B_DXS, -1, -1}},
		{OP_GMM1_TN, {B_XS, B_DGU, B_OFF, -1}, {B_DW1, -1, -1}},
		{OP_PERMUTE_BWD, {B_DXS, B_POS, -1, -1}, {B_DX, -1, -1}},
		{OP_ROUTER_BWD, {B_DW, B_IDX, B_W, B_SCORES}, {B_DLOGITS, -1, -1}},
		{OP_DX_ROUTER, {B_DLOGITS, B_WR, -1, -1}, {B_DX, -1, -1}},
		{OP_DWR, {B_X, B_DLOGITS, -1, -1}, {B_DWR, -1, -1}},
	};
	for (int i = 0; i < OP_N; i++) {
		mb_io *io = &st->io[w[i].op];
		memset(io, 0, sizeof *io);
		for (int j = 0; j < 4; j++)
			io->in[j] = w[i].in[j] >= 0 ? st->buf[w[i].in[j]] : NULL;
		for (int j = 0; j < 3; j++)
			io->out[j] = w[i].out[j] >= 0 ? st->buf[w[i].out[j]] : NULL;
	}
}

/* The buffers must fit in the device's memory (with ep > 1 they are only
 * known once the group is routed: skew can send a device many times its
 * share). Over 80% of it is refused rather than risking the OOM killer. */
static int gmm_fits(gmm_state *st)
{
	const gmm_shape *s = &st->s;
	mb_dev_info di = {0};
	st->be->describe(st->dev, &di);
	const double bytes = gmm_bytes(s), limit = 0.8 * (double)di.memory_bytes;
	if (bytes <= GMM_MAX_BYTES && (!di.memory_bytes || bytes <= limit))
		return 0;
	return mb_err(MB_ERR_UNSUPPORTED,
		      "gmm: %lld rows need %.1f GiB of buffers; the limit is %.1f GiB (80%% of the "
		      "device's %.1f GiB, at most 64 GiB)",
		      (long long)s->P, bytes / GIB,
		      (di.memory_bytes && limit < GMM_MAX_BYTES ? limit : GMM_MAX_BYTES) / GIB,
		      (double)di.memory_bytes / GIB);
}

static int gmm_setup(const mb_case_ctx *ctx, void **state)
{
	*state = NULL;
	int rc = gmm_validate(ctx->params);
	if (rc)
		return rc;
	gmm_state *st = mb_calloc(1, sizeof *st);
	if (!st)
		return mb_err(MB_ERR_NOMEM, "gmm: out of memory");
	*state = st;
	st->be = ctx->be;
	st->dev = ctx->dev;
	st->seed = ctx->seed;
	rc = gmm_shape_get(ctx->params, &st->s);
	st->s.ep_rank = ctx->world.rank % st->s.ep;
	if (!rc)
		rc = gmm_inputs(st);
	if (!rc) /* before the big allocations, so an unsupported case skips at once */
		rc = gmm_plan_all(st);
	if (!rc)
		rc = gmm_fits(st);
	if (rc)
		return rc;
	for (int b = 0; b < B_N; b++) {
		size_t es;
		double bytes = buf_elems(&st->s, b, &es) * (double)es;
		if (bytes == 0.0)
			continue; /* a router buffer of a device computing received rows */
		st->buf[b] = mb_dev_alloc(st->be, st->dev, (size_t)bytes);
		if (!st->buf[b])
			return mb_err(MB_ERR_NOMEM, "gmm: %s backend could not allocate %.1f MiB",
				      st->be->name, bytes / (1024.0 * 1024.0));
	}
	rc = gmm_upload(st, B_X, st->x);
	if (!rc && !GMM_RECV(&st->s))
		rc = gmm_upload(st, B_WR, st->wr);
	if (!rc && GMM_RECV(&st->s))
		rc = mb_dev_upload(st->be, st->dev, st->buf[B_IDX], st->ridx,
				   (size_t)st->s.T * sizeof *st->ridx);
	if (!rc && GMM_RECV(&st->s))
		rc = mb_dev_upload(st->be, st->dev, st->buf[B_W], st->rw,
				   (size_t)st->s.T * sizeof *st->rw);
	if (!rc)
		rc = gmm_upload(st, B_W1, st->w1);
	if (!rc)
		rc = gmm_upload(st, B_W2, st->w2);
	if (!rc)
		rc = gmm_upload(st, B_DY, st->dy);
	if (!rc) /* so that info before any run reads zeros, not garbage */
		rc = mb_dev_upload(st->be, st->dev, st->buf[B_OFF], st->off,
				   (size_t)(st->s.E + 1) * sizeof(int64_t));
	if (!rc)
		gmm_wire(st);
	return rc;
}

static int gmm_run(void *state)
{
	gmm_state *st = state;
	for (int i = 0; i < OP_N; i++) {
		if (!st->plan[i])
			continue; /* not this device's (gmm_routes) */
		int rc = mb_dev_launch(st->be, st->dev, st->plan[i], &st->io[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static void gmm_info(void *state, mb_case_info *out)
{
	gmm_state *st = state;
	if (!st || !st->buf[B_OFF] || !st->off)
		return;
	const int64_t E = st->s.E;
	if (mb_dev_download(st->be, st->dev, st->off, st->buf[B_OFF],
			    (size_t)(E + 1) * sizeof(int64_t)))
		return;
	int64_t mn = INT64_MAX, mx = 0, empty = 0;
	for (int64_t e = 0; e < E; e++) {
		int64_t rows = st->off[e + 1] - st->off[e];
		mn = rows < mn ? rows : mn;
		mx = rows > mx ? rows : mx;
		empty += rows == 0;
	}
	double mean = (double)st->s.P / (double)E;
	mb_info_add(out, "rows_min", (double)mn);
	mb_info_add(out, "rows_max", (double)mx);
	mb_info_add(out, "rows_mean", mean);
	mb_info_add(out, "imbalance", mean > 0 ? (double)mx / mean : 0.0);
	mb_info_add(out, "experts_empty", (double)empty);
	mb_info_add(out, "pairs", (double)st->s.P);
	if (!GMM_RECV(&st->s) || !st->recv)
		return;
	/* the group: rows each device receives, and how uneven that is */
	int64_t rmax = 0;
	for (int64_t r = 0; r < st->s.ep; r++)
		rmax = st->recv[r] > rmax ? st->recv[r] : rmax;
	const double rmean = (double)(st->s.tokens * st->s.top_k);
	mb_info_add(out, "ep_rank", (double)st->s.ep_rank);
	mb_info_add(out, "rows_received_mean", rmean);
	mb_info_add(out, "ep_imbalance", (double)rmax / rmean);
}

static void gmm_teardown(void *state)
{
	gmm_state *st = state;
	if (!st)
		return;
	for (int i = 0; i < OP_N; i++)
		mb_dev_plan_free(st->be, st->dev, st->plan[i]);
	for (int b = 0; b < B_N; b++)
		mb_dev_free(st->be, st->dev, st->buf[b]);
	mb_free(st->x);
	mb_free(st->wr);
	mb_free(st->w1);
	mb_free(st->w2);
	mb_free(st->dy);
	mb_free(st->bias);
	mb_free(st->off);
	free(st->ridx);
	free(st->rw);
	free(st->recv);
	mb_free(st);
}

const mb_suite mb_suite_gmm = {
	.name = "gmm",
	.summary = "dropless MoE FFN on one device: router, permute, grouped GEMM with SwiGLU, "
		   "unpermute; forward + backward (ep > 1: the rows the device receives)",
	.params = gmm_params,
	.nparams = (int)MB_ARRAY_LEN(gmm_params),
	.preset = gmm_preset,
	.validate = gmm_validate,
	.cost = gmm_cost,
	.setup = gmm_setup,
	.run = gmm_run,
	.verify = mb_gmm_verify,
	.info = gmm_info,
	.teardown = gmm_teardown,
	.case_cost = gmm_case_cost,
};
