/* attention.c: causal self-attention forward + backward (DESIGN §5).
 *
 * One iteration is two device launches: ATTN_FWD (Q, K, V -> O, lse) and
 * ATTN_BWD (a fixed seeded dO -> dQ, dK, dV), with the preset's head layout:
 * MHA and GQA as the model has them, MLA expanded (every query head with its
 * own key and value head, d_qk = qk_nope + qk_rope, d_v = v_head_dim), which
 * is how MLA is trained. Layouts are backend.h's: Q, O [batch][seq][heads][d],
 * K, V [batch][seq][kv_heads][d], lse [batch][heads][seq].
 *
 * Inputs: Q, K ~ U[-2, 2), V, dO ~ U[-1, 1), scale 1/sqrt(d_qk): logits have
 * a spread of about 1.3, so softmax rows are neither flat nor one-hot and a
 * wrong mask or normaliser shows.
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "ref_attn.h"
#include "suite.h"

static const mb_param_def attn_params[] = {
	{"batch", MB_PT_INT, "1", 1, 4096, NULL, "sequences per iteration"},
	{"seq", MB_PT_INT, "512", 1, 1048576, NULL, "tokens per sequence"},
	{"heads", MB_PT_INT, "8", 1, 1024, NULL, "query heads on this device"},
	{"kv_heads", MB_PT_INT, "8", 1, 1024, NULL,
	 "key/value heads (a divisor of heads; = heads for MHA and MLA)"},
	{"d_qk", MB_PT_INT, "64", 1, 1024, NULL, "query/key head width (MLA: nope + rope)"},
	{"d_v", MB_PT_INT, "64", 1, 1024, NULL, "value head width"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "element type of Q, K, V, O and grads"},
	{"causal", MB_PT_INT, "1", 0, 1, NULL, "1: query i sees keys 0..i; 0: all keys"},
};

/* Seeded tensors (ref.h streams 300..399 belong to this suite). */
enum { S_Q = 301, S_K = 302, S_V = 303, S_DO = 304, S_PICK_Q = 310, S_PICK_K = 311 };

enum { B_Q, B_K, B_V, B_O, B_LSE, B_DO, B_DQ, B_DK, B_DV, B_N };

typedef struct attn_shape {
	int64_t B, S, H, Hk, dq, dv;
	int causal;
	mb_dtype dt;
} attn_shape;

typedef struct attn_state {
	const mb_backend *be;
	mb_dev *dev;
	attn_shape s;
	uint64_t seed;
	void *buf[B_N];
	mb_plan *fwd, *bwd;
	mb_io fio, bio;
} attn_state;

#define GIB (1024.0 * 1024.0 * 1024.0)

static int attn_shape_get(const mb_params *p, attn_shape *s)
{
	s->B = mb_param_int(p, "batch");
	s->S = mb_param_int(p, "seq");
	s->H = mb_param_int(p, "heads");
	s->Hk = mb_param_int(p, "kv_heads");
	s->dq = mb_param_int(p, "d_qk");
	s->dv = mb_param_int(p, "d_v");
	s->causal = (int)mb_param_int(p, "causal");
	char dt[16];
	return mb_dtype_parse(mb_param_choice(p, "dtype", dt, sizeof dt), &s->dt);
}

/* Elements of buffer b, and its element size. */
static double buf_elems(const attn_shape *s, int b, size_t *es)
{
	const double bs = (double)s->B * (double)s->S;
	*es = b == B_LSE ? 4 : mb_dtype_size(s->dt);
	switch (b) {
	case B_Q: case B_DQ: return bs * (double)(s->H * s->dq);
	case B_K: case B_DK: return bs * (double)(s->Hk * s->dq);
	case B_V: case B_DV: return bs * (double)(s->Hk * s->dv);
	case B_O: case B_DO: return bs * (double)(s->H * s->dv);
	default: return bs * (double)s->H; /* lse */
	}
}

static double attn_bytes(const attn_shape *s)
{
	double total = 0;
	for (int b = 0; b < B_N; b++) {
		size_t es;
		total += buf_elems(s, b, &es) * (double)es;
	}
	return total;
}

static int attn_validate(const mb_params *p)
{
	attn_shape s;
	int rc = attn_shape_get(p, &s);
	if (rc)
		return rc;
	if (s.H % s.Hk) {
		char ok[256] = "";
		size_t len = 0;
		for (int64_t d = 1; d <= s.H && len + 16 < sizeof ok; d++)
			if (s.H % d == 0)
				len += (size_t)snprintf(ok + len, sizeof ok - len, "%s%lld",
							len ? ", " : "", (long long)d);
		return mb_err(MB_ERR_USAGE,
			      "kv_heads=%lld does not divide heads=%lld (accepted kv_heads: %s)",
			      (long long)s.Hk, (long long)s.H, ok);
	}
	const double bytes = attn_bytes(&s);
	if (bytes > 64.0 * GIB)
		return mb_err(MB_ERR_USAGE,
			      "attention would need %.1f GiB of buffers (batch=%lld seq=%lld heads=%lld "
			      "kv_heads=%lld d_qk=%lld d_v=%lld); the limit is 64 GiB",
			      bytes / GIB, (long long)s.B, (long long)s.S, (long long)s.H,
			      (long long)s.Hk, (long long)s.dq, (long long)s.dv);
	return 0;
}

/* A device runs a tensor-parallel slice of the heads: the model's heads
 * divided by the smallest TP degree that divides them and brings them under
 * the size's cap (quick 8: seconds on 2 cores; standard 32: a device's
 * share in the published runs, e.g. DeepSeek-V3's 128 heads at TP 4;
 * full: no cap). KV heads are split by the same degree, at least one per
 * device (GQA replicates them when TP exceeds kv_heads), and kept a divisor
 * of the heads; MLA is run expanded, one kv head per query head. The model's
 * head widths are kept, except that quick caps widths above 256 at 64
 * (DeepSeek-V4's 512) so that it stays quick. Sequence lengths: 256, 2048
 * (a common pre-training length), 4096. One sequence per iteration. */
static int attn_preset(const mb_model *m, mb_size size, mb_params *p)
{
	if (m->heads < 1 || m->head_dim < 1)
		return mb_err(MB_ERR_USAGE, "model %s has no attention heads", m->name);
	static const int64_t cap[MB_SIZE_COUNT] = {8, 32, 1024};
	static const int64_t seqs[MB_SIZE_COUNT] = {256, 2048, 4096};
	const int mla = m->attention && strcmp(m->attention, "mla") == 0;
	const int64_t mh = m->heads, mkv = mla || m->kv_heads < 1 ? mh : m->kv_heads;
	int64_t tp = 1;
	while (mh % tp || mh / tp > cap[size])
		tp++;
	const int64_t heads = mh / tp;
	int64_t kv = mkv / tp < 1 ? 1 : mkv / tp;
	while (heads % kv)
		kv--;
	int64_t dq = m->head_dim, dv = m->v_head_dim > 0 ? m->v_head_dim : m->head_dim;
	if (size == MB_SIZE_QUICK) {
		dq = dq <= 256 ? dq : 64;
		dv = dv <= 256 ? dv : 64;
	}
	int rc = mb_params_set(p, "heads", (double)heads, MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "kv_heads", (double)kv, MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "d_qk", (double)dq, MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "d_v", (double)dv, MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "seq", (double)seqs[size], MB_SRC_PRESET);
	if (!rc)
		rc = mb_params_set(p, "batch", 1.0, MB_SRC_PRESET);
	return rc;
}

/* Model FLOPs, Megatron-LM convention (DESIGN §5; Megatron-LM
 * num_floating_point_operations, reference/facts-models-hardware.md §E.2):
 * the forward's two matmuls, Q K^T (d_qk MACs per score) and P V (d_v MACs
 * per score), at 2 FLOP per MAC over b h S^2 scores, halved for causal:
 *   fwd = 2 b h (d_qk + d_v) S^2 / 2 (causal),
 * and the backward counted as twice the forward (no recomputation), so
 * flops = 3 fwd. The PaLM count (§E.1) is the same without the halving.
 * Softmax is not counted. */
static int attn_cost(const mb_params *p, mb_cost *out)
{
	attn_shape s;
	int rc = attn_shape_get(p, &s);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	const double full = 2.0 * (double)s.B * (double)s.H * (double)(s.dq + s.dv) *
			    (double)s.S * (double)s.S;
	out->flops = 3.0 * (s.causal ? full / 2.0 : full);
	out->flops_palm = 3.0 * full;
	out->tokens = (double)s.B * (double)s.S;
	return 0;
}



/* Input buffer b on the host as the device holds it (bf16-rounded in bf16
 * runs), freshly generated from the seed; NULL if out of memory. */
static float *attn_input(const attn_state *st, int b)
{
	static const struct {
		int buf, stream;
		double amp;
	} in[] = {{B_Q, S_Q, 2.0}, {B_K, S_K, 2.0}, {B_V, S_V, 1.0}, {B_DO, S_DO, 1.0}};
	size_t es, i = 0;
	while (in[i].buf != b)
		i++;
	const size_t n = (size_t)buf_elems(&st->s, b, &es);
	float *x = mb_alloc(n * sizeof *x);
	if (!x)
		return NULL;
	mb_rand_fill(x, n, st->seed, (uint64_t)in[i].stream, in[i].amp);
	if (es == 2)
		for (size_t k = 0; k < n; k++)
			x[k] = mb_bf16_widen(mb_bf16_round(x[k]));
	return x;
}

static int attn_upload(attn_state *st, int b)
{
	size_t es;
	const size_t n = (size_t)buf_elems(&st->s, b, &es);
	float *x = attn_input(st, b);
	if (!x)
		return mb_err(MB_ERR_NOMEM, "attention: out of host memory for the inputs");
	if (es == 2) { /* narrow in place, from the front */
		uint16_t *h = (uint16_t *)x;
		for (size_t k = 0; k < n; k++)
			h[k] = mb_bf16_round(x[k]);
	}
	int rc = mb_dev_upload(st->be, st->dev, st->buf[b], x, n * es);
	mb_free(x);
	return rc;
}

/* Download buffer b as fp32 into a new host array (NULL and an error if not). */
static float *attn_fetch(const attn_state *st, int b, int *rc)
{
	size_t es;
	const size_t n = (size_t)buf_elems(&st->s, b, &es);
	float *x = mb_alloc(n * sizeof *x);
	if (!x) {
		*rc = mb_err(MB_ERR_NOMEM, "attention verify: out of host memory");
		return NULL;
	}
	*rc = mb_dev_download(st->be, st->dev, x, st->buf[b], n * es);
	if (!*rc && es == 2)
		for (size_t k = n; k-- > 0;) { /* widen in place, from the end */
			uint16_t v;
			memcpy(&v, (const char *)x + 2 * k, 2);
			x[k] = mb_bf16_widen(v);
		}
	if (*rc) {
		mb_free(x);
		return NULL;
	}
	return x;
}

static void attn_teardown(void *state)
{
	attn_state *st = state;
	if (!st)
		return;
	mb_dev_plan_free(st->be, st->dev, st->fwd);
	mb_dev_plan_free(st->be, st->dev, st->bwd);
	for (int b = 0; b < B_N; b++)
		mb_dev_free(st->be, st->dev, st->buf[b]);
	free(st);
}

static int attn_setup(const mb_case_ctx *ctx, void **state)
{
	*state = NULL;
	int rc = attn_validate(ctx->params);
	if (rc)
		return rc;
	attn_state *st = calloc(1, sizeof *st);
	if (!st)
		return mb_err(MB_ERR_NOMEM, "attention: out of memory");
	*state = st;
	st->be = ctx->be;
	st->dev = ctx->dev;
	st->seed = ctx->seed;
	rc = attn_shape_get(ctx->params, &st->s);
	if (rc)
		return rc;
	const attn_shape *s = &st->s;
	mb_op op = {.kind = MB_OP_ATTN_FWD, .dtype = s->dt};
	op.u.attn.batch = s->B;
	op.u.attn.seq = s->S;
	op.u.attn.heads = s->H;
	op.u.attn.kv_heads = s->Hk;
	op.u.attn.d_qk = s->dq;
	op.u.attn.d_v = s->dv;
	op.u.attn.scale = (float)(1.0 / sqrt((double)s->dq));
	op.u.attn.causal = s->causal;
	/* Plans first, so that an unsupported case skips before the big allocations. */
	rc = mb_dev_plan(st->be, st->dev, &op, &st->fwd);
	op.kind = MB_OP_ATTN_BWD;
	if (!rc)
		rc = mb_dev_plan(st->be, st->dev, &op, &st->bwd);
	if (rc)
		return rc;
	for (int b = 0; b < B_N; b++) {
		size_t es;
		const double bytes = buf_elems(s, b, &es) * (double)es;
		st->buf[b] = mb_dev_alloc(st->be, st->dev, (size_t)bytes);
		if (!st->buf[b])
			return mb_err(MB_ERR_NOMEM, "attention: %s backend could not allocate %.1f MiB",
				      st->be->name, bytes / (1024.0 * 1024.0));
	}
	rc = attn_upload(st, B_Q);
	if (!rc)
		rc = attn_upload(st, B_K);
	if (!rc)
		rc = attn_upload(st, B_V);
	if (!rc)
		rc = attn_upload(st, B_DO);
	st->fio = (mb_io){.in = {st->buf[B_Q], st->buf[B_K], st->buf[B_V]},
			  .out = {st->buf[B_O], st->buf[B_LSE]}};
	st->bio = (mb_io){.in = {st->buf[B_DO], st->buf[B_Q], st->buf[B_K], st->buf[B_V],
				 st->buf[B_O], st->buf[B_LSE]},
			  .out = {st->buf[B_DQ], st->buf[B_DK], st->buf[B_DV]}};
	return rc;
}

static int attn_run(void *state)
{
	attn_state *st = state;
	int rc = mb_dev_launch(st->be, st->dev, st->fwd, &st->fio);
	if (!rc)
		rc = mb_dev_launch(st->be, st->dev, st->bwd, &st->bio);
	return rc;
}

static void attn_info(void *state, mb_case_info *out)
{
	const attn_state *st = state;
	if (!st)
		return;
	mb_info_add(out, "seq", (double)st->s.S);
	mb_info_add(out, "heads_per_kv_head", (double)(st->s.H / st->s.Hk));
	/* What the suite holds on the device; linear in seq. The backend's own
	 * plan scratch is not visible through backend.h. */
	mb_info_add(out, "buffer_bytes", attn_bytes(&st->s));
}

/* ---- verify ----
 *
 * Everything is compared with the fp64 reference (ref_attn.c) on the same
 * inputs, regenerated from the seed. Small cases are checked in full. Past
 * FULL_MACS of reference work a seeded sample is checked instead: N_QROWS
 * (batch, head, query row) triples for O, lse and dQ, each from the
 * reference's own forward of that row, and N_KROWS (batch, kv head, key row)
 * triples for dK and dV, each a sum over every query of the group that sees
 * the key; for those the per-query statistics (lse_i, D_i = dO_i . O_i) are
 * the forward outputs the backward was given, so that a key row costs
 * O(group x seq x width) and not a full forward of the group. Every output
 * is scanned for NaN and Inf in full.
 *
 * Error: |got - ref| / max |ref| over the checked values of that tensor,
 * or / MB_CHECK_SCALE_FLOOR (1e-3) if that is larger: with inputs of size
 * ~1, a reference below it is a cancellation (at seq 1, dQ and dK are exactly 0) and fp32
 * rounding of its terms is all that can be asked of it.
 * Tolerance fp32 2e-3: the CPU kernel's errors are ~1e-6 (fp32 sums over at
 * most seq terms, 2^x good to 2e-7), but the same suite runs where fp32
 * matmuls may use TF32 (10-bit mantissa, ~5e-4 relative on these sums);
 * a misplaced mask, scale or block moves values by 1e-2 and more. bf16:
 * inputs are rounded for the reference too; outputs and P are bf16 (8-bit
 * mantissa, 4e-3 per rounding, compounded over the backward), hence 3e-2. */
#define TOL_FP32 2e-3
#define TOL_BF16 3e-2
#define FULL_MACS 2e9
#define N_QROWS 32
#define N_KROWS 16

static const char method_full[] = "fp64 reference, all outputs";
static const char method_sampled[] =
	"fp64 reference, sampled: 32 query rows (O, lse, dQ) and 16 key rows (dK, dV, "
	"from the backward's inputs O and lse)";

/* One output tensor and the values of it that are compared. */
typedef struct vf_tensor {
	const char *name;
	const float *got;  /* the whole downloaded tensor */
	int64_t dims[4];
	int nd;
	int64_t n;         /* values compared */
	int64_t *at;       /* their flat indices in got; NULL: 0..n-1 */
	double *ref;
} vf_tensor;

enum { T_O, T_LSE, T_DQ, T_DK, T_DV, T_N };

static void vf_label(const vf_tensor *t, int64_t flat, char *buf, size_t n)
{
	int64_t idx[4] = {0};
	for (int d = t->nd - 1; d >= 0; d--) {
		idx[d] = flat % t->dims[d];
		flat /= t->dims[d];
	}
	size_t len = (size_t)snprintf(buf, n, "%s", t->name);
	for (int d = 0; d < t->nd && len < n; d++)
		len += (size_t)snprintf(buf + len, n - len, "[%lld]", (long long)idx[d]);
}

static void vf_judge(const vf_tensor *t, mb_check *c)
{
	double scale = 0.0;
	for (int64_t k = 0; k < t->n; k++)
		scale = fmax(scale, fabs(t->ref[k]));
	scale = fmax(scale, MB_CHECK_SCALE_FLOOR);
	for (int64_t k = 0; k < t->n; k++) {
		const int64_t flat = t->at ? t->at[k] : k;
		const double got = t->got[flat], err = fabs(got - t->ref[k]);
		const double rel = err / scale;
		if (!(rel <= c->tolerance))
			c->mismatched++;
		if (rel > c->max_rel_err) {
			char where[96];
			vf_label(t, flat, where, sizeof where);
			c->max_rel_err = rel;
			c->max_abs_err = err;
			snprintf(c->detail, sizeof c->detail, "worst %s = %.9g, reference %.9g",
				 where, got, t->ref[k]);
		}
	}
	c->checked += t->n;
}

/* Count NaN and Inf; name the first one in *first. */
static void vf_scan(const vf_tensor *t, int64_t len, mb_check *c, char *first, size_t n)
{
	for (int64_t k = 0; k < len; k++)
		if (!isfinite(t->got[k])) {
			if (!c->nonfinite)
				vf_label(t, k, first, n);
			c->nonfinite++;
		}
}

/* Every row of every head: lse and D for the key side come from the
 * reference itself. */
static int vf_full(const attn_state *st, const mb_ref_attn *a, vf_tensor *t)
{
	const attn_shape *s = &st->s;
	const int64_t rows = s->B * s->H * s->S, krows = s->B * s->Hk * s->S;
	double *dsum = malloc((size_t)rows * sizeof *dsum);
	int nomem = !dsum;
	for (int k = 0; k < T_N; k++) {
		t[k].ref = malloc((size_t)t[k].n * sizeof *t[k].ref);
		nomem |= !t[k].ref;
	}
	if (nomem) {
		free(dsum);
		return mb_err(MB_ERR_NOMEM, "attention verify: out of memory for the reference");
	}
#pragma omp parallel
	{
		double *p = malloc((size_t)s->S * sizeof *p);
#pragma omp for schedule(dynamic, 16)
		for (int64_t r = 0; r < rows; r++) {
			if (!p)
				continue;
			const int64_t b = r / (s->H * s->S), h = r / s->S % s->H, i = r % s->S;
			const int64_t row = (b * s->S + i) * s->H + h;
			double *o = t[T_O].ref + row * s->dv;
			t[T_LSE].ref[r] = mb_ref_attn_row(a, b, h, i, p, o);
			dsum[r] = mb_ref_attn_row_dq(a, b, h, i, p, o, t[T_DQ].ref + row * s->dq);
		}
		if (!p) {
#pragma omp atomic write
			nomem = 1;
		}
		free(p);
#pragma omp for schedule(dynamic, 16)
		for (int64_t r = 0; r < krows; r++) {
			const int64_t b = r / (s->Hk * s->S), kvh = r / s->S % s->Hk, j = r % s->S;
			const int64_t row = (b * s->S + j) * s->Hk + kvh;
			mb_ref_attn_key(a, b, kvh, j, t[T_LSE].ref, dsum, t[T_DK].ref + row * s->dq,
					t[T_DV].ref + row * s->dv);
		}
	}
	free(dsum);
	return nomem ? mb_err(MB_ERR_NOMEM, "attention verify: out of memory for the reference")
		     : 0;
}

/* A seeded index in [0, n); the k-th pick of stream. */
static int64_t vf_pick(const attn_state *st, uint64_t stream, uint64_t k, int64_t n)
{
	return (int64_t)(mb_rand_u64(st->seed, stream, k) % (uint64_t)n);
}

static int vf_sampled(const attn_state *st, const mb_ref_attn *a, vf_tensor *t)
{
	const attn_shape *s = &st->s;
	const int64_t width[T_N] = {s->dv, 1, s->dq, s->dq, s->dv};
	const int64_t rows = s->B * s->H * s->S;
	for (int k = 0; k < T_N; k++) {
		t[k].n = (k <= T_DQ ? N_QROWS : N_KROWS) * width[k];
		t[k].ref = malloc((size_t)t[k].n * sizeof *t[k].ref);
		t[k].at = malloc((size_t)t[k].n * sizeof *t[k].at);
		if (!t[k].ref || !t[k].at)
			return mb_err(MB_ERR_NOMEM, "attention verify: out of memory for the reference");
	}
	double *lse = malloc((size_t)rows * sizeof *lse), *dsum = malloc((size_t)rows * sizeof *dsum);
	int nomem = !lse || !dsum;
	const float *o_dev = t[T_O].got;
#pragma omp parallel
	{
		double *p = malloc((size_t)s->S * sizeof *p), *o = malloc((size_t)s->dv * sizeof *o);
		double *dq = malloc((size_t)s->dq * sizeof *dq);
		if (!p || !o || !dq) {
#pragma omp atomic write
			nomem = 1;
		}
		/* Query rows: first the two ends, row 0 of the first head (it sees
		 * one key: P = 1) and the last row of the last head (it sees them
		 * all), then seeded picks. */
#pragma omp for schedule(dynamic, 1)
		for (int64_t k = 0; k < N_QROWS; k++) {
			if (!p || !o || !dq)
				continue;
			const int64_t r = k > 1 ? vf_pick(st, S_PICK_Q, (uint64_t)k, rows)
					: k ? rows - 1 : 0;
			const int64_t b = r / (s->H * s->S), h = r / s->S % s->H, i = r % s->S;
			const int64_t row = (b * s->S + i) * s->H + h;
			t[T_LSE].ref[k] = mb_ref_attn_row(a, b, h, i, p, o);
			t[T_LSE].at[k] = r;
			(void)mb_ref_attn_row_dq(a, b, h, i, p, o, dq);
			for (int64_t c = 0; c < s->dv; c++) {
				t[T_O].ref[k * s->dv + c] = o[c];
				t[T_O].at[k * s->dv + c] = row * s->dv + c;
			}
			for (int64_t c = 0; c < s->dq; c++) {
				t[T_DQ].ref[k * s->dq + c] = dq[c];
				t[T_DQ].at[k * s->dq + c] = row * s->dq + c;
			}
		}
		free(p), free(o), free(dq);
		/* The backward's row statistics, from its inputs. */
#pragma omp for schedule(static)
		for (int64_t r = 0; r < rows; r++) {
			if (nomem)
				continue;
			const int64_t b = r / (s->H * s->S), h = r / s->S % s->H, i = r % s->S;
			const int64_t row = (b * s->S + i) * s->H + h;
			const float *x = a->dout + row * s->dv, *y = o_dev + row * s->dv;
			double acc = 0.0;
			for (int64_t c = 0; c < s->dv; c++)
				acc += (double)x[c] * (double)y[c];
			dsum[r] = acc;
			lse[r] = t[T_LSE].got[r];
		}
		/* Key rows: key 0 of the first kv head (every query of the group
		 * sees it), the last key of the last (seen by one query per head
		 * when causal), then seeded picks. */
#pragma omp for schedule(dynamic, 1)
		for (int64_t k = 0; k < N_KROWS; k++) {
			if (nomem)
				continue;
			const int64_t kr = s->B * s->Hk * s->S;
			const int64_t r = k > 1 ? vf_pick(st, S_PICK_K, (uint64_t)k, kr)
					: k ? kr - 1 : 0;
			const int64_t b = r / (s->Hk * s->S), kvh = r / s->S % s->Hk, j = r % s->S;
			const int64_t row = (b * s->S + j) * s->Hk + kvh;
			mb_ref_attn_key(a, b, kvh, j, lse, dsum, t[T_DK].ref + k * s->dq,
					t[T_DV].ref + k * s->dv);
			for (int64_t c = 0; c < s->dq; c++)
				t[T_DK].at[k * s->dq + c] = row * s->dq + c;
			for (int64_t c = 0; c < s->dv; c++)
				t[T_DV].at[k * s->dv + c] = row * s->dv + c;
		}
	}
	free(lse), free(dsum);
	return nomem ? mb_err(MB_ERR_NOMEM, "attention verify: out of memory for the reference")
		     : 0;
}

static int attn_verify(void *state, mb_check *out)
{
	const attn_state *st = state;
	const attn_shape *s = &st->s;
	memset(out, 0, sizeof *out);
	out->tolerance = s->dt == MB_FP32 ? TOL_FP32 : TOL_BF16;
	static const int outs[T_N] = {B_O, B_LSE, B_DQ, B_DK, B_DV};
	static const char *const names[T_N] = {"O", "lse", "dQ", "dK", "dV"};
	vf_tensor t[T_N];
	memset(t, 0, sizeof t);
	float *in[4] = {NULL, NULL, NULL, NULL};
	int rc = 0;
	for (int k = 0; k < T_N && !rc; k++) {
		size_t es;
		t[k].name = names[k];
		t[k].n = (int64_t)buf_elems(s, outs[k], &es);
		t[k].got = attn_fetch(st, outs[k], &rc);
		const int64_t hh = k == T_DK || k == T_DV ? s->Hk : s->H;
		const int64_t w = k == T_O || k == T_DV ? s->dv : s->dq;
		const int64_t d4[4] = {s->B, s->S, hh, w}, d3[3] = {s->B, s->H, s->S};
		t[k].nd = k == T_LSE ? 3 : 4;
		memcpy(t[k].dims, k == T_LSE ? d3 : d4, (size_t)t[k].nd * sizeof(int64_t));
	}
	static const int ins[4] = {B_Q, B_K, B_V, B_DO};
	for (int k = 0; k < 4 && !rc; k++)
		if (!(in[k] = attn_input(st, ins[k])))
			rc = mb_err(MB_ERR_NOMEM, "attention verify: out of host memory for the inputs");
	char first_bad[96] = "";
	if (!rc) {
		for (int k = 0; k < T_N; k++)
			vf_scan(&t[k], t[k].n, out, first_bad, sizeof first_bad);
		const mb_ref_attn a = {.batch = s->B, .seq = s->S, .heads = s->H,
				       .kv_heads = s->Hk, .d_qk = s->dq, .d_v = s->dv,
				       .scale = (float)(1.0 / sqrt((double)s->dq)),
				       .causal = s->causal, .q = in[0], .k = in[1], .v = in[2],
				       .dout = in[3]};
		/* Reference work: forward, dQ and key side, about
		 * b h S S' (3 d_qk + 4 d_v) MACs with S' the keys a query sees. */
		const double seen = s->causal ? (double)(s->S + 1) / 2.0 : (double)s->S;
		const double macs = (double)s->B * (double)s->H * (double)s->S * seen *
				    (double)(3 * s->dq + 4 * s->dv);
		double ref_bytes = 0.0;
		for (int k = 0; k < T_N; k++)
			ref_bytes += 8.0 * (double)t[k].n;
		const int full = macs <= FULL_MACS && ref_bytes <= 1.0 * GIB;
		out->method = full ? method_full : method_sampled;
		rc = full ? vf_full(st, &a, t) : vf_sampled(st, &a, t);
	}
	if (!rc) {
		for (int k = 0; k < T_N; k++)
			vf_judge(&t[k], out);
		out->passed = out->mismatched == 0 && out->nonfinite == 0;
		char worst[sizeof out->detail];
		mb_strlcpy(worst, out->detail, sizeof worst);
		if (out->nonfinite)
			snprintf(out->detail, sizeof out->detail, "%lld non-finite values; first: %s",
				 (long long)out->nonfinite, first_bad);
		else if (out->mismatched)
			snprintf(out->detail, sizeof out->detail, "%lld of %lld values off; %.200s",
				 (long long)out->mismatched, (long long)out->checked, worst);
	}
	for (int k = 0; k < T_N; k++) {
		mb_free((void *)t[k].got);
		free(t[k].at);
		free(t[k].ref);
	}
	for (int k = 0; k < 4; k++)
		mb_free(in[k]);
	return rc;
}

const mb_suite mb_suite_attention = {
	.name = "attention",
	.summary = "causal self-attention forward + backward with the model's head layout "
		   "(MHA, GQA, MLA expanded)",
	.params = attn_params,
	.nparams = (int)MB_ARRAY_LEN(attn_params),
	.preset = attn_preset,
	.validate = attn_validate,
	.cost = attn_cost,
	.setup = attn_setup,
	.run = attn_run,
	.verify = attn_verify,
	.info = attn_info,
	.teardown = attn_teardown,
};
