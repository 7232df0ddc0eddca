/* cpu_attn.c: flash-style fp32 attention forward and backward (cpu_attn.h).
 *
 * Forward (one query block = bq rows of one batch b and query head h):
 * for each key block of up to bk keys, S = Q K^T is one sgemm into a
 * per-thread block, an online softmax updates each row's running max m and
 * sum l, turns S into P and rescales the output rows accumulated so far,
 * and O += P V is a second sgemm. At the end O /= l and lse = m + log(l).
 * Scores are kept in base 2 (the first sgemm's alpha is scale * log2(e)),
 * so that the exponential is a 2^x that vectorises (attn_exp2).
 *
 * Backward (FlashAttention-2, Dao 2023, Algorithm 2, P recomputed from the
 * saved lse; one work item = batch b, query head h): D_i = dO_i . O_i for
 * every row of the head, then for each key block and each span of queries
 * that see it:
 *   P = exp(S - lse), dV += P^T dO, dP = dO V^T, dS = P o (dP - D),
 *   dQ += scale dS K, dK += scale dS^T Q.
 * Five sgemms per span.
 *
 * Causal: only the keys a block's rows can see are visited. The square of
 * queries and keys on the diagonal is cut into a staircase of ATTN_STEP_ROWS-row
 * spans, each against the keys up to its last row, so that of the masked
 * half only small triangles are computed; elsewhere blocks are whole.
 *
 * Memory: each item first gathers the rows it works on out of the strided
 * [b][s][h][d] tensors into packed per-thread copies (the forward's
 * queries and the keys and values they see; the backward's whole head), and
 * accumulates into packed copies that are written out at its end. The
 * copies are O(seq x width), as are the tensors, against O(seq^2 x width)
 * work; while writing this they made the sgemms ~12% faster in a standalone
 * timing of the block matmuls, not kept (unit-stride rows: fewer TLB and
 * cache misses in OpenBLAS's packing). Nothing of size seq x seq exists.
 *
 * Threads: an OpenMP team of the plan's size, each thread calling a
 * single-threaded sgemm on its own data (see attn_blas_single). The forward
 * hands out whole (b, h) heads dynamically when there are at least two per
 * thread (their rows are gathered once), else single query blocks, longest
 * first; each output row is computed by one thread in a fixed order, so the
 * schedule does not change the result.
 *
 * Determinism of the backward: the dK/dV of a kv head sum the
 * contributions of its G query heads. With at least two kv groups per
 * thread, a group (its G heads, in order) is one dynamically scheduled item,
 * so each sum is formed by one thread in group order. With fewer (GQA with
 * few kv heads, e.g. one), the B*H heads are cut into T contiguous ranges,
 * one per thread: a group inside one range is summed there in group order;
 * a group cut by a range boundary (at most two per thread) is summed by
 * each thread into a private seq-long slot, and the slots are added in
 * thread order afterwards. Either way every value is summed in an order
 * fixed by the shape and the thread count, never by timing. The backward
 * has B*H items; threads beyond that idle.
 */
#include "../../harness/mb.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_attn.h"
#include "cpu_blas.h"

/* Block sizes (rows), chosen on Sapphire Rapids (2 cores, OpenBLAS 0.3.21)
 * at the attention suite's standard preset (32 heads, seq 2048, d_qk 192,
 * d_v 128; `moebench run -s attention --preset standard` with the constants
 * changed): blocks of 128 ran ~15% slower than these (OpenBLAS packs both
 * operands of every call, so small calls pay more packing per FLOP), and
 * 512-key backward blocks ~5% slower (the five blocks a span touches no
 * longer fit in L2). The staircase step trades the masked work computed on
 * the diagonal (step / (2 seq) of the total) against smaller matmuls; 32
 * and 128 were no better than 64. */
#define ATTN_FWD_BQ 256    /* forward query block */
#define ATTN_FWD_BK 512    /* forward key block */
#define ATTN_BWD_BQ 512    /* backward query span */
#define ATTN_BWD_BK 256    /* backward key block */
#define ATTN_STEP_ROWS 64  /* rows of a diagonal staircase step */

#define ATTN_LOG2E 1.4426950408889634
#define ATTN_LN2 0.6931471805599453

/* The row passes (exponentials) are compiled for AVX-512 and AVX2 as well
 * as the baseline and picked at load time: at baseline SSE2 the 2^x of every
 * score costs about as much as the matmuls around it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ATTN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ATTN_CLONES
#endif

typedef struct attn_scratch {
	mb_op_kind kind;
	int threads;       /* team size the scratch was sized for */
	size_t per_thread; /* floats per thread in buf */
	float *buf;        /* threads * per_thread */
	float *slots;      /* BWD by range (attn_bwd_by_range): threads * 2 * seq * (d_qk + d_v) */
	size_t bytes;
} attn_scratch;

static int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct attn_dims {
	int64_t B, S, H, Hk, G, dq, dv;
	int64_t bq, bk, step; /* query block, key block, staircase step (rows) */
	int causal;
	float scale, scale2; /* softmax scale, and scale * log2(e) */
} attn_dims;

static attn_dims attn_dims_of(const mb_op *op)
{
	attn_dims d;
	d.B = op->u.attn.batch;
	d.S = op->u.attn.seq;
	d.H = op->u.attn.heads;
	d.Hk = op->u.attn.kv_heads;
	d.G = d.H / d.Hk;
	d.dq = op->u.attn.d_qk;
	d.dv = op->u.attn.d_v;
	const int fwd = op->kind == MB_OP_ATTN_FWD;
	d.bq = attn_min(d.S, fwd ? ATTN_FWD_BQ : ATTN_BWD_BQ);
	d.bk = attn_min(d.S, fwd ? ATTN_FWD_BK : ATTN_BWD_BK);
	d.step = attn_min(ATTN_STEP_ROWS, d.bq);
	d.causal = op->u.attn.causal != 0;
	d.scale = op->u.attn.scale;
	d.scale2 = (float)(op->u.attn.scale * ATTN_LOG2E);
	return d;
}

/* One thread's scratch. FWD: s [bq][max(bk, bq)], mrow, lrow [bq],
 * q [S][dq], o [bq][dv], k [S][dq], v [S][dv]. BWD: s (P), dp [bq][bk],
 * dsum, lse2 [S], q, dq, dk, k [S][dq], dout, dv, v [S][dv]. */
typedef struct attn_bufs {
	float *s, *dp, *mrow, *lrow, *dsum, *lse2;
	float *q, *k, *v, *o, *dout, *dq, *dk, *dv;
} attn_bufs;

/* Next n floats of base at *at (64-byte aligned); base NULL only counts. */
static float *attn_carve(float *base, size_t *at, int64_t n)
{
	float *p = base ? base + *at : NULL;
	*at += ((size_t)n + 15) & ~(size_t)15;
	return p;
}

/* Carve x out of base (or, base NULL, just size it); returns floats used. */
static size_t attn_layout(const attn_dims *d, int fwd, float *base, attn_bufs *x)
{
	size_t at = 0;
	memset(x, 0, sizeof *x);
	if (fwd) {
		x->s = attn_carve(base, &at, d->bq * (d->bk > d->bq ? d->bk : d->bq));
		x->mrow = attn_carve(base, &at, d->bq);
		x->lrow = attn_carve(base, &at, d->bq);
		x->q = attn_carve(base, &at, d->S * d->dq);
		x->o = attn_carve(base, &at, d->bq * d->dv);
		x->k = attn_carve(base, &at, d->S * d->dq);
		x->v = attn_carve(base, &at, d->S * d->dv);
		return at;
	}
	x->s = attn_carve(base, &at, d->bq * d->bk);
	x->dp = attn_carve(base, &at, d->bq * d->bk);
	x->dsum = attn_carve(base, &at, d->S);
	x->lse2 = attn_carve(base, &at, d->S);
	x->q = attn_carve(base, &at, d->S * d->dq);
	x->dq = attn_carve(base, &at, d->S * d->dq);
	x->dk = attn_carve(base, &at, d->S * d->dq);
	x->k = attn_carve(base, &at, d->S * d->dq);
	x->dout = attn_carve(base, &at, d->S * d->dv);
	x->dv = attn_carve(base, &at, d->S * d->dv);
	x->v = attn_carve(base, &at, d->S * d->dv);
	return at;
}


/* rows x w floats from rows ld apart into a packed array. */
static void attn_gather(float *dst, const float *src, int64_t rows, int64_t w, int64_t ld)
{
	for (int64_t r = 0; r < rows; r++)
		memcpy(dst + r * w, src + r * ld, (size_t)w * sizeof(float));
}

/* ---- exponentials and row passes ---- */

static inline float attn_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* 2^x with a relative error of about 2e-7: 2^x = 2^n 2^f with n = round(x)
 * and f in [-1/2, 1/2], 2^f from the degree-6 polynomial of Cephes' exp2f
 * (Moshier). Below -126 it returns 0 (the softmax terms it drops are under
 * 2^-126 of the row's largest); NaN stays NaN. Branch-free so that the loops
 * calling it vectorise. */
static inline float attn_exp2(float x)
{
	float xc = x > -126.0f ? x : -126.0f; /* NaN too: no NaN reaches the int conversion */
	xc = xc < 126.0f ? xc : 126.0f;
	const float n = (xc + 12582912.0f) - 12582912.0f; /* 1.5 * 2^23 rounds to an integer */
	const float f = xc - n;
	float p = 1.535336188319500e-4f;
	p = p * f + 1.339887440266574e-3f;
	p = p * f + 9.618437357674640e-3f;
	p = p * f + 5.550332471162809e-2f;
	p = p * f + 2.402264791363012e-1f;
	p = p * f + 6.931472028550421e-1f;
	p = p * f + 1.0f;
	const float r = p * attn_f32((uint32_t)((int32_t)n + 127) << 23);
	return x != x ? x : (x < -126.0f ? 0.0f : r);
}

/* Columns 0..n-1 of a block are keys j0..j0+n-1, rows queries i0+r.
 * Causal, query i0+r sees keys up to i0+r: the first i0 - j0 + r + 1
 * columns, clamped to 0..n. causal_off is i0 - j0, or NO_MASK. */
#define NO_MASK INT64_MAX
static inline int64_t attn_seen(int64_t causal_off, int64_t r, int64_t n)
{
	if (causal_off == NO_MASK)
		return n;
	const int64_t v = causal_off + r + 1;
	return v < 0 ? 0 : (v > n ? n : v);
}

/* Forward, one score block of m rows x n columns (row stride ld), base-2
 * scores: update each row's running max and sum, turn the block into
 * P = 2^(s - m_new) (0 where masked), and rescale the output rows already
 * accumulated (o, NULL before the first key block) by 2^(m_old - m_new).
 * Row r sees attn_seen(r) columns. */
ATTN_CLONES
static void attn_fwd_rows(float *s, int64_t m, int64_t n, int64_t ld, int64_t causal_off,
			  float *mrow, float *lrow, float *o, int64_t ldo, int64_t dv)
{
	for (int64_t r = 0; r < m; r++) {
		float *row = s + r * ld;
		const int64_t valid = attn_seen(causal_off, r, n);
		float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
		for (int64_t c = 0; c < valid; c++)
			mx = row[c] > mx ? row[c] : mx;
		const float mnew = mx > mrow[r] ? mx : mrow[r];
		float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
		for (int64_t c = 0; c < n; c++) {
			const float p = c < valid ? attn_exp2(row[c] - mnew) : 0.0f;
			row[c] = p;
			sum += p;
		}
		const float alpha = attn_exp2(mrow[r] - mnew);
		mrow[r] = mnew;
		lrow[r] = lrow[r] * alpha + sum;
		if (o && alpha != 1.0f) {
			float *orow = o + r * ldo;
#pragma omp simd
			for (int64_t c = 0; c < dv; c++)
				orow[c] *= alpha;
		}
	}
}

/* Backward: P = 2^(s - lse2) over an m x n block (0 where masked). */
ATTN_CLONES
static void attn_bwd_probs(float *s, int64_t m, int64_t n, int64_t ld, int64_t causal_off,
			   const float *lse2)
{
	for (int64_t r = 0; r < m; r++) {
		float *row = s + r * ld;
		const int64_t valid = attn_seen(causal_off, r, n);
		const float l = lse2[r];
#pragma omp simd
		for (int64_t c = 0; c < n; c++)
			row[c] = c < valid ? attn_exp2(row[c] - l) : 0.0f;
	}
}

/* Backward: dP <- P o (dP - D), row by row. */
ATTN_CLONES
static void attn_bwd_dscores(const float *p, float *dp, int64_t m, int64_t n, int64_t ld,
			     const float *dsum)
{
	for (int64_t r = 0; r < m; r++) {
		const float *prow = p + r * ld;
		float *row = dp + r * ld;
		const float dd = dsum[r];
#pragma omp simd
		for (int64_t c = 0; c < n; c++)
			row[c] = prow[c] * (row[c] - dd);
	}
}

/* ---- plan ---- */

static int attn_bad(const mb_op *op, const char *what)
{
	return mb_err(MB_ERR_USAGE, "cpu backend: %s: %s", mb_op_name(op->kind), what);
}

static int attn_check(const mb_op *op)
{
	if (op->kind != MB_OP_ATTN_FWD && op->kind != MB_OP_ATTN_BWD)
		return mb_err(MB_ERR_INTERNAL, "cpu attention: asked to plan op %s",
			      mb_op_name(op->kind));
	if (op->dtype != MB_FP32)
		return mb_err(MB_ERR_UNSUPPORTED, "cpu backend: %s %s not implemented",
			      mb_op_name(op->kind), mb_dtype_name(op->dtype));
	const int64_t B = op->u.attn.batch, S = op->u.attn.seq, H = op->u.attn.heads,
		      Hk = op->u.attn.kv_heads, dq = op->u.attn.d_qk, dv = op->u.attn.d_v;
	if (B < 1 || S < 1 || H < 1 || Hk < 1 || dq < 1 || dv < 1)
		return attn_bad(op, "batch, seq, heads, kv_heads, d_qk and d_v must be >= 1");
	if (H % Hk)
		return mb_err(MB_ERR_USAGE,
			      "cpu backend: %s: heads (%lld) must be a multiple of kv_heads (%lld)",
			      mb_op_name(op->kind), (long long)H, (long long)Hk);
	/* sgemm sees only blocks (int-sized); tensors and copies use int64. */
	if (B > INT64_MAX / S || B * S > INT64_MAX / 8 / H / (dq > dv ? dq : dv))
		return attn_bad(op, "tensor size above 2^60 elements");
	return 0;
}

int mb_cpu_attn_plan(const mb_op *op, void **scratch)
{
	*scratch = NULL;
	int rc = attn_check(op);
	if (rc)
		return rc;
	const attn_dims d = attn_dims_of(op);
	attn_scratch *sc = mb_calloc(1, sizeof *sc);
	if (!sc)
		return mb_err(MB_ERR_NOMEM, "cpu attention: out of memory planning");
	sc->kind = op->kind;
	sc->threads = omp_get_max_threads();
	attn_bufs x;
	sc->per_thread = attn_layout(&d, op->kind == MB_OP_ATTN_FWD, NULL, &x);
	sc->bytes = sizeof *sc + (size_t)sc->threads * sc->per_thread * sizeof(float);
	sc->buf = mb_alloc((size_t)sc->threads * sc->per_thread * sizeof(float));
	if (!sc->buf)
		goto nomem;
	if (op->kind == MB_OP_ATTN_BWD && d.G > 1 && d.B * d.Hk < 2 * (int64_t)sc->threads) {
		size_t n = (size_t)sc->threads * 2 * (size_t)d.S * (size_t)(d.dq + d.dv);
		sc->slots = mb_alloc(n * sizeof(float));
		if (!sc->slots)
			goto nomem;
		sc->bytes += n * sizeof(float);
	}
	*scratch = sc;
	return 0;
nomem:
	mb_cpu_attn_free(sc);
	return mb_err(MB_ERR_NOMEM, "cpu attention: out of memory for %s scratch (seq %lld)",
		      mb_op_name(op->kind), (long long)d.S);
}

size_t mb_cpu_attn_scratch_bytes(const void *scratch)
{
	return scratch ? ((const attn_scratch *)scratch)->bytes : 0;
}

void mb_cpu_attn_free(void *scratch)
{
	attn_scratch *sc = scratch;
	if (!sc)
		return;
	mb_free(sc->buf);
	mb_free(sc->slots);
	mb_free(sc);
}

static int attn_launch_check(const mb_op *op, const attn_scratch *sc, const mb_io *io, int nin,
			     int nout)
{
	if (!sc || sc->kind != op->kind)
		return mb_err(MB_ERR_INTERNAL, "cpu attention: %s launched without its plan",
			      mb_op_name(op->kind));
	for (int i = 0; i < nin; i++)
		if (!io->in[i])
			return mb_err(MB_ERR_INTERNAL, "cpu attention: %s input %d is NULL",
				      mb_op_name(op->kind), i);
	for (int i = 0; i < nout; i++)
		if (!io->out[i])
			return mb_err(MB_ERR_INTERNAL, "cpu attention: %s output %d is NULL",
				      mb_op_name(op->kind), i);
	return 0;
}

/* OpenBLAS single-threaded for the launch (a pthread pool of its own under
 * every OpenMP thread would oversubscribe the cores); returns the count to
 * restore. Changing the count (re)starts OpenBLAS's worker pool when it is
 * down (the backend stops it after each of its own matmul launches), and
 * idle workers spin for a while: on 2 cores they took a core from the
 * OpenMP team. So the pool is stopped again at once; a single-threaded
 * sgemm never uses it. */
static int attn_blas_single(void)
{
	const int n = openblas_get_num_threads();
	if (n != 1) {
		openblas_set_num_threads(1);
		mb_cpu_blas_idle();
	}
	return n;
}

static void attn_blas_restore(int n)
{
	if (n != 1) {
		openblas_set_num_threads(n);
		mb_cpu_blas_idle();
	}
}

/* ---- forward ---- */

/* One query block of the forward, in its thread's packed copies. */
typedef struct attn_fwd_ctx {
	const attn_dims *d;
	const attn_bufs *x;
	const float *q; /* the block's first row in x->q */
	int64_t i0;     /* the block's first row in the sequence */
} attn_fwd_ctx;

/* Rows i0+r0 .. i0+r0+m-1 against keys j0 .. j0+n-1. */
static void attn_fwd_span(const attn_fwd_ctx *c, int64_t r0, int64_t m, int64_t j0, int64_t n)
{
	const attn_dims *d = c->d;
	const attn_bufs *x = c->x;
	const int64_t i = c->i0 + r0, dq = d->dq, dv = d->dv;
	float *o = x->o + r0 * dv;
	const int64_t off = d->causal && j0 + n - 1 > i ? i - j0 : NO_MASK;
	mb_cpu_sgemm(0, 1, m, n, dq, d->scale2, c->q + r0 * dq, dq, x->k + j0 * dq, dq, 0.0f, x->s,
		   n);
	attn_fwd_rows(x->s, m, n, n, off, x->mrow + r0, x->lrow + r0, j0 ? o : NULL, dv, dv);
	mb_cpu_sgemm(0, 0, m, dv, n, 1.0f, x->s, n, x->v + j0 * dv, dv, j0 ? 1.0f : 0.0f, o, dv);
}

/* Query block qb of (b, h), whose rows sit in x->q from row r_begin. */
static void attn_fwd_block(const attn_dims *d, const mb_io *io, const attn_bufs *x, int64_t b,
			   int64_t h, int64_t qb, int64_t r_begin)
{
	const int64_t S = d->S, i0 = qb * d->bq, m = attn_min(d->bq, S - i0);
	for (int64_t r = 0; r < m; r++) {
		x->mrow[r] = -INFINITY;
		x->lrow[r] = 0.0f;
	}
	const attn_fwd_ctx c = {.d = d, .x = x, .q = x->q + (i0 - r_begin) * d->dq, .i0 = i0};
	/* The keys every row sees, in blocks; causal, then the diagonal square
	 * as a staircase. */
	const int64_t kfull = d->causal ? i0 : S;
	for (int64_t j0 = 0; j0 < kfull; j0 += d->bk)
		attn_fwd_span(&c, 0, m, j0, attn_min(d->bk, kfull - j0));
	if (d->causal)
		for (int64_t r0 = 0; r0 < m; r0 += d->step) {
			const int64_t mr = attn_min(d->step, m - r0);
			attn_fwd_span(&c, r0, mr, i0, r0 + mr);
		}
	const int64_t ldo = d->H * d->dv;
	float *o = (float *)io->out[0] + ((b * S + i0) * d->H + h) * d->dv;
	float *lse = (float *)io->out[1] + (b * d->H + h) * S + i0;
	for (int64_t r = 0; r < m; r++) {
		const float inv = 1.0f / x->lrow[r];
		for (int64_t c2 = 0; c2 < d->dv; c2++)
			o[r * ldo + c2] = x->o[r * d->dv + c2] * inv;
		lse[r] = (float)(((double)x->mrow[r] + log2((double)x->lrow[r])) * ATTN_LN2);
	}
}

/* Query blocks qb0 .. qb1-1 of (b, h): gather their queries and the keys
 * and values they see once, then run the blocks. */
static void attn_fwd_item(const attn_dims *d, const mb_io *io, float *base, int64_t b, int64_t h,
			  int64_t qb0, int64_t qb1)
{
	attn_bufs x;
	(void)attn_layout(d, 1, base, &x);
	const int64_t S = d->S, kvh = h / d->G;
	const int64_t r_begin = qb0 * d->bq, r_end = attn_min(qb1 * d->bq, S);
	const int64_t kend = d->causal ? r_end : S;
	attn_gather(x.q, (const float *)io->in[0] + ((b * S + r_begin) * d->H + h) * d->dq,
		    r_end - r_begin, d->dq, d->H * d->dq);
	attn_gather(x.k, (const float *)io->in[1] + (b * S * d->Hk + kvh) * d->dq, kend, d->dq,
		    d->Hk * d->dq);
	attn_gather(x.v, (const float *)io->in[2] + (b * S * d->Hk + kvh) * d->dv, kend, d->dv,
		    d->Hk * d->dv);
	for (int64_t qb = qb0; qb < qb1; qb++)
		attn_fwd_block(d, io, &x, b, h, qb, r_begin);
}

int mb_cpu_attn_fwd(const mb_op *op, void *scratch, const mb_io *io)
{
	attn_scratch *sc = scratch;
	int rc = attn_launch_check(op, sc, io, 3, 2);
	if (rc)
		return rc;
	const attn_dims d = attn_dims_of(op);
	const int64_t bh = d.B * d.H, nqb = (d.S + d.bq - 1) / d.bq;
	/* Whole heads when there are enough of them to keep the team busy (the
	 * head's rows are gathered once); otherwise single query blocks. */
	const int whole = bh >= 2 * (int64_t)sc->threads;
	const int64_t items = whole ? bh : bh * nqb;
	const int blas = attn_blas_single();
#pragma omp parallel num_threads(sc->threads)
	{
		float *base = sc->buf + (size_t)omp_get_thread_num() * sc->per_thread;
		/* Causal blocks near the end of the sequence see the most keys:
		 * hand them out first so that the last items are the short ones. */
#pragma omp for schedule(dynamic, 1)
		for (int64_t it = 0; it < items; it++) {
			const int64_t qb = whole ? 0 : nqb - 1 - it / bh, bhi = it % bh;
			attn_fwd_item(&d, io, base, bhi / d.H, bhi % d.H, qb, whole ? nqb : qb + 1);
		}
	}
	attn_blas_restore(blas);
	return 0;
}

/* ---- backward ---- */

/* Where one item's dK and dV go: the output rows of its kv head (ld apart)
 * or a slot; first: the item's sums are the first there (copy, not add). */
typedef struct attn_kv_out {
	float *dk, *dv;
	int64_t lddk, lddv;
	int first;
} attn_kv_out;

/* Queries i0 .. i0+m-1 against keys j0 .. j0+n-1: the five matmuls, all
 * on the thread's packed copies. */
static void attn_bwd_span(const attn_dims *d, const attn_bufs *x, int64_t i0, int64_t m,
			  int64_t j0, int64_t n)
{
	const int64_t dq = d->dq, dv = d->dv;
	const float *q = x->q + i0 * dq, *dout = x->dout + i0 * dv;
	const float *k = x->k + j0 * dq, *v = x->v + j0 * dv;
	float *P = x->s, *dP = x->dp;
	const int64_t off = d->causal && j0 + n - 1 > i0 ? i0 - j0 : NO_MASK;
	mb_cpu_sgemm(0, 1, m, n, dq, d->scale2, q, dq, k, dq, 0.0f, P, n);
	attn_bwd_probs(P, m, n, n, off, x->lse2 + i0);
	mb_cpu_sgemm(1, 0, n, dv, m, 1.0f, P, n, dout, dv, 1.0f, x->dv + j0 * dv, dv);
	mb_cpu_sgemm(0, 1, m, n, dv, 1.0f, dout, dv, v, dv, 0.0f, dP, n);
	attn_bwd_dscores(P, dP, m, n, n, x->dsum + i0);
	/* Key block 0 is the first to reach every query row: it overwrites. */
	mb_cpu_sgemm(0, 0, m, dq, n, d->scale, dP, n, k, dq, j0 ? 1.0f : 0.0f, x->dq + i0 * dq, dq);
	mb_cpu_sgemm(1, 0, n, dq, m, d->scale, dP, n, q, dq, 1.0f, x->dk + j0 * dq, dq);
}

/* dst (rows ld apart) = src, or += src. */
static void attn_scatter(float *dst, int64_t ld, const float *src, int64_t rows, int64_t w,
			 int add)
{
	for (int64_t r = 0; r < rows; r++) {
		float *t = dst + r * ld;
		const float *f = src + r * w;
		if (add)
			for (int64_t c = 0; c < w; c++)
				t[c] += f[c];
		else
			memcpy(t, f, (size_t)w * sizeof(float));
	}
}

/* One (b, h). load_kv: K and V of its kv head are not in the copies yet. */
static void attn_bwd_item(const attn_dims *d, const mb_io *io, float *base, int64_t b, int64_t h,
			  int load_kv, const attn_kv_out *kv)
{
	attn_bufs x;
	(void)attn_layout(d, 0, base, &x);
	const int64_t S = d->S, kvh = h / d->G, ldq = d->H * d->dq, ldo = d->H * d->dv;
	const float *dO = (const float *)io->in[0] + (b * S * d->H + h) * d->dv;
	const float *O = (const float *)io->in[4] + (b * S * d->H + h) * d->dv;
	const float *lse = (const float *)io->in[5] + (b * d->H + h) * S;
	attn_gather(x.q, (const float *)io->in[1] + (b * S * d->H + h) * d->dq, S, d->dq, ldq);
	attn_gather(x.dout, dO, S, d->dv, ldo);
	if (load_kv) {
		attn_gather(x.k, (const float *)io->in[2] + (b * S * d->Hk + kvh) * d->dq, S, d->dq,
			    d->Hk * d->dq);
		attn_gather(x.v, (const float *)io->in[3] + (b * S * d->Hk + kvh) * d->dv, S, d->dv,
			    d->Hk * d->dv);
	}
	for (int64_t i = 0; i < S; i++) {
		const float *p = x.dout + i * d->dv, *o = O + i * ldo;
		float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
		for (int64_t c = 0; c < d->dv; c++)
			acc += p[c] * o[c];
		x.dsum[i] = acc;
		x.lse2[i] = (float)(lse[i] * ATTN_LOG2E);
	}
	for (int64_t j0 = 0; j0 < S; j0 += d->bk) {
		const int64_t n = attn_min(d->bk, S - j0);
		/* Zeroed here, just before its sums, while it is in cache. */
		memset(x.dk + j0 * d->dq, 0, (size_t)(n * d->dq) * sizeof(float));
		memset(x.dv + j0 * d->dv, 0, (size_t)(n * d->dv) * sizeof(float));
		if (!d->causal) {
			for (int64_t i0 = 0; i0 < S; i0 += d->bq)
				attn_bwd_span(d, &x, i0, attn_min(d->bq, S - i0), j0, n);
			continue;
		}
		/* Causal: the queries j0 .. j0+n-1 as a staircase, then every
		 * later query against the whole block. */
		for (int64_t r0 = 0; r0 < n; r0 += d->step) {
			const int64_t mr = attn_min(d->step, n - r0);
			attn_bwd_span(d, &x, j0 + r0, mr, j0, r0 + mr);
		}
		for (int64_t i0 = j0 + n; i0 < S; i0 += d->bq)
			attn_bwd_span(d, &x, i0, attn_min(d->bq, S - i0), j0, n);
	}
	attn_scatter((float *)io->out[0] + (b * S * d->H + h) * d->dq, ldq, x.dq, S, d->dq, 0);
	attn_scatter(kv->dk, kv->lddk, x.dk, S, d->dq, !kv->first);
	attn_scatter(kv->dv, kv->lddv, x.dv, S, d->dv, !kv->first);
}

/* Thread t's items: [lo, hi) of n, split as evenly as possible. */
static void attn_range(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
	*lo = n * t / nt;
	*hi = n * (t + 1) / nt;
}

static int attn_owner(int64_t n, int nt, int64_t item)
{
	int t = 0;
	while (t < nt - 1 && item >= n * (t + 1) / nt)
		t++;
	return t;
}

/* dK/dV of the kv heads that range boundaries cut: the sum of the threads'
 * slots, in thread order. */
static void attn_bwd_reduce(const attn_dims *d, const attn_scratch *sc, int nt, const mb_io *io)
{
	float *dK = io->out[1], *dV = io->out[2];
	const int64_t n = d->B * d->H, slot_len = d->S * (d->dq + d->dv);
	for (int64_t kv = 0; kv < d->B * d->Hk; kv++) {
		const int t0 = attn_owner(n, nt, kv * d->G), t1 = attn_owner(n, nt, kv * d->G + d->G - 1);
		if (t0 == t1)
			continue;
		const int64_t b = kv / d->Hk, kvh = kv % d->Hk;
		float *dk = dK + (b * d->S * d->Hk + kvh) * d->dq;
		float *dv = dV + (b * d->S * d->Hk + kvh) * d->dv;
#pragma omp parallel for schedule(static) num_threads(sc->threads)
		for (int64_t j = 0; j < d->S; j++) {
			int first = 1;
			for (int t = t0; t <= t1; t++) {
				int64_t lo, hi;
				attn_range(n, t, nt, &lo, &hi);
				if (lo == hi)
					continue;
				const int slot = kv == lo / d->G ? 0 : 1;
				const float *sk = sc->slots + (size_t)(2 * t + slot) * (size_t)slot_len;
				const float *sv = sk + d->S * d->dq;
				float *ok = dk + j * d->Hk * d->dq, *ov = dv + j * d->Hk * d->dv;
				for (int64_t c = 0; c < d->dq; c++)
					ok[c] = first ? sk[j * d->dq + c] : ok[c] + sk[j * d->dq + c];
				for (int64_t c = 0; c < d->dv; c++)
					ov[c] = first ? sv[j * d->dv + c] : ov[c] + sv[j * d->dv + c];
				first = 0;
			}
		}
	}
}

/* The output rows of kv group kv (= b * kv_heads + kv head). */
static attn_kv_out attn_kv_rows(const attn_dims *d, const mb_io *io, int64_t kv, int first)
{
	const int64_t b = kv / d->Hk, kvh = kv % d->Hk;
	return (attn_kv_out){
		.dk = (float *)io->out[1] + (b * d->S * d->Hk + kvh) * d->dq,
		.dv = (float *)io->out[2] + (b * d->S * d->Hk + kvh) * d->dv,
		.lddk = d->Hk * d->dq,
		.lddv = d->Hk * d->dv,
		.first = first,
	};
}

/* Enough kv groups to keep the team busy: each group (its G query heads,
 * in order) is one dynamically scheduled item, summed where it lands. */
static void attn_bwd_by_group(const attn_dims *d, const attn_scratch *sc, const mb_io *io)
{
	const int64_t groups = d->B * d->Hk;
#pragma omp parallel num_threads(sc->threads)
	{
		float *base = sc->buf + (size_t)omp_get_thread_num() * sc->per_thread;
#pragma omp for schedule(dynamic, 1)
		for (int64_t kv = 0; kv < groups; kv++)
			for (int64_t g = 0; g < d->G; g++) {
				const int64_t i = kv * d->G + g;
				const attn_kv_out out = attn_kv_rows(d, io, kv, g == 0);
				attn_bwd_item(d, io, base, i / d->H, i % d->H, g == 0, &out);
			}
	}
}

/* Few kv groups (GQA with few kv heads): the B*H heads in contiguous
 * ranges, one per thread; groups cut by a range go through the slots. */
static void attn_bwd_by_range(const attn_dims *d, const attn_scratch *sc, const mb_io *io)
{
	const int64_t n = d->B * d->H, slot_len = d->S * (d->dq + d->dv);
	int team = 1;
#pragma omp parallel num_threads(sc->threads)
	{
		const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
		team = nt;
		float *base = sc->buf + (size_t)t * sc->per_thread;
		int64_t lo, hi, loaded = -1;
		attn_range(n, t, nt, &lo, &hi);
		for (int64_t i = lo; i < hi; i++) {
			const int64_t kv = i / d->G, g0 = kv * d->G;
			const int first = i == (g0 > lo ? g0 : lo);
			attn_kv_out out = attn_kv_rows(d, io, kv, first);
			if (g0 < lo || g0 + d->G > hi) { /* the group is cut: a slot */
				const int slot = kv == lo / d->G ? 0 : 1;
				out.dk = sc->slots + (size_t)(2 * t + slot) * (size_t)slot_len;
				out.dv = out.dk + d->S * d->dq;
				out.lddk = d->dq;
				out.lddv = d->dv;
			}
			attn_bwd_item(d, io, base, i / d->H, i % d->H, kv != loaded, &out);
			loaded = kv;
		}
	}
	if (d->G > 1)
		attn_bwd_reduce(d, sc, team, io);
}

int mb_cpu_attn_bwd(const mb_op *op, void *scratch, const mb_io *io)
{
	attn_scratch *sc = scratch;
	int rc = attn_launch_check(op, sc, io, 6, 3);
	if (rc)
		return rc;
	const attn_dims d = attn_dims_of(op);
	const int blas = attn_blas_single();
	if (d.B * d.Hk >= 2 * (int64_t)sc->threads || d.G == 1)
		attn_bwd_by_group(&d, sc, io);
	else
		attn_bwd_by_range(&d, sc, io);
	attn_blas_restore(blas);
	return 0;
}
