/* cpu_attn.c: flash-style fp32 attention forward and backward (cpu_attn.h).
 *
 * Forward (one work item = batch b, query head h, query block qb): for each
 * key block kb the scores S = Q_qb K_kb^T come from one sgemm into a
 * block x block scratch, the online softmax updates each row's running max m
 * and sum l, rescales the rows of O already accumulated, and O_qb += P V_kb
 * is a second sgemm straight into the strided output. At the end
 * O /= l and lse = m + log(l). Scores are kept in base 2 (the sgemm's alpha
 * is scale * log2(e)) so that the exponential is a 2^x, which is cheap to
 * vectorise (attn_exp2).
 *
 * Backward (FlashAttention-2, Dao 2023, Algorithm 2, with P recomputed from
 * the saved lse; one work item = batch b, query head h): D_i = dO_i . O_i for
 * every row of the head, then for each key block kb and each query block qb
 * that sees it:
 *   P = exp(S - lse), dV_kb += P^T dO_qb, dP = dO_qb V_kb^T,
 *   dS = P o (dP - D), dQ_qb += scale dS K_kb, dK_kb += scale dS^T Q_qb.
 * Five sgemms per block pair; dQ of a head is written by its item alone.
 *
 * Causal: query block qb meets key blocks 0..qb only (query and key blocks
 * have the same size, so the diagonal block is the only one masked, each of
 * its rows r seeing columns 0..r).
 *
 * Threads: an OpenMP team of the plan's size, each thread calling a
 * single-threaded sgemm on its own blocks (OpenBLAS is set to one thread for
 * the launch and restored after: its own pthread pool inside an OpenMP team
 * would oversubscribe the cores). The forward spreads (b, h, qb) items
 * dynamically, largest causal blocks first; every O row is computed by one
 * thread in a fixed order, so the schedule does not change the result.
 *
 * Determinism of the backward: the B*H items are cut into T contiguous
 * ranges, one per thread, in (b, kv head, group member) order. A kv head
 * whose group of query heads lies in one thread's range gets its dK/dV
 * accumulated there, directly in the output, in group order. A kv head cut
 * by a range boundary (at most two per thread) is accumulated by each thread
 * into a private seq-long slot, and the slots are added in thread order
 * afterwards. So every dK/dV value is summed in an order fixed by the
 * thread count, never by timing. The parallelism of the backward is B*H
 * items; more threads than that idle.
 */
#include "../../harness/mb.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_attn.h"

/* Rows in a query block and in a key block. 128 keeps the per-thread blocks
 * (two of 64 KiB in the backward) in L2 while giving OpenBLAS matmuls large
 * enough to run near its full speed; measured on Sapphire Rapids. */
#include <stdlib.h>
static int64_t attn_env(const char *n, int64_t d) { const char *e = getenv(n); return e ? atoll(e) : d; }
#define ATTN_FWD_BQ attn_env("ATTN_FBQ", 128)
#define ATTN_FWD_BK attn_env("ATTN_FBK", 512)
#define ATTN_BWD_BQ attn_env("ATTN_BBQ", 512)
#define ATTN_BWD_BK attn_env("ATTN_BBK", 128)
#define ATTN_STEP attn_env("ATTN_SB", 64)

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
	size_t per_thread; /* floats per thread in buf, a multiple of 16 */
	float *buf;        /* threads * per_thread */
	float *slots;      /* BWD, grouped heads: threads * 2 * seq * (d_qk + d_v) */
	size_t bytes;
} attn_scratch;

static int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct attn_dims {
	int64_t B, S, H, Hk, G, dq, dv;
	int64_t bq, bk; /* rows of a query block and of a key block */
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
	d.causal = op->u.attn.causal != 0;
	d.scale = op->u.attn.scale;
	d.scale2 = (float)(op->u.attn.scale * ATTN_LOG2E);
	return d;
}


/* Row-major sgemm with int64 arguments (plan checked that they fit). */
static void attn_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
		       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		    (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* ---- exponentials ---- */

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
	const float xc = x < -126.0f ? -126.0f : (x > 126.0f ? 126.0f : x);
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
	/* Row strides (heads * width) go to sgemm as int. */
	if (H > INT_MAX / dq || H > INT_MAX / dv || S > INT_MAX)
		return attn_bad(op, "heads * d_qk, heads * d_v or seq above 2^31-1");
	if (B > INT64_MAX / S || B * S > INT64_MAX / H / (dq > dv ? dq : dv))
		return attn_bad(op, "tensor size above 2^63-1 elements");
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
	/* FWD: a score block and the rows' max and sum. BWD: P and dP blocks,
	 * and D and lse (base 2) for every row of the head being worked on. */
	size_t per = op->kind == MB_OP_ATTN_FWD
			     ? (size_t)(d.bq * (d.bk > d.bq ? d.bk : d.bq) + 2 * d.bq)
			     : (size_t)(2 * d.bq * d.bk + 2 * d.S);
	per = (per + 15) & ~(size_t)15; /* 64-byte aligned, no false sharing */
	sc->per_thread = per;
	sc->bytes = sizeof *sc + (size_t)sc->threads * per * sizeof(float);
	sc->buf = mb_alloc((size_t)sc->threads * per * sizeof(float));
	if (!sc->buf)
		goto nomem;
	if (op->kind == MB_OP_ATTN_BWD && d.G > 1) {
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

/* OpenBLAS single-threaded for the launch; returns the count to restore. */
static int attn_blas_single(void)
{
	const int n = openblas_get_num_threads();
	if (n != 1)
		openblas_set_num_threads(1);
	return n;
}

static void attn_blas_restore(int n)
{
	if (n != 1)
		openblas_set_num_threads(n);
}

/* ---- forward ---- */

/* One (b, h, query block) of the forward: row 0 of its head's Q and O, the
 * kv head's K and V, and the block's first row i0. */
typedef struct attn_fwd_ctx {
	const attn_dims *d;
	const float *q, *k, *v;
	float *o, *s, *mrow, *lrow;
	int64_t i0;
} attn_fwd_ctx;

/* Rows i0+r0 .. i0+r0+m-1 against keys j0 .. j0+n-1. */
static void attn_fwd_span(const attn_fwd_ctx *c, int64_t r0, int64_t m, int64_t j0, int64_t n)
{
	const attn_dims *d = c->d;
	const int64_t i = c->i0 + r0, ldq = d->H * d->dq, ldo = d->H * d->dv;
	const float *q = c->q + i * ldq;
	float *o = c->o + i * ldo;
	const int64_t off = d->causal && j0 + n - 1 > i ? i - j0 : NO_MASK;
	attn_sgemm(0, 1, m, n, d->dq, d->scale2, q, ldq, c->k + j0 * d->Hk * d->dq, d->Hk * d->dq,
		   0.0f, c->s, n);
	attn_fwd_rows(c->s, m, n, n, off, c->mrow + r0, c->lrow + r0, j0 ? o : NULL, ldo, d->dv);
	attn_sgemm(0, 0, m, d->dv, n, 1.0f, c->s, n, c->v + j0 * d->Hk * d->dv, d->Hk * d->dv,
		   j0 ? 1.0f : 0.0f, o, ldo);
}

static void attn_fwd_item(const attn_dims *d, const mb_io *io, float *buf, int64_t b, int64_t h,
			  int64_t qb)
{
	const int64_t i0 = qb * d->bq, m = attn_min(d->bq, d->S - i0), kvh = h / d->G;
	float *s = buf + 2 * d->bq;
	const attn_fwd_ctx c = {
		.d = d,
		.q = (const float *)io->in[0] + (b * d->S * d->H + h) * d->dq,
		.k = (const float *)io->in[1] + (b * d->S * d->Hk + kvh) * d->dq,
		.v = (const float *)io->in[2] + (b * d->S * d->Hk + kvh) * d->dv,
		.o = (float *)io->out[0] + (b * d->S * d->H + h) * d->dv,
		.s = s, .mrow = buf, .lrow = buf + d->bq, .i0 = i0,
	};
	for (int64_t r = 0; r < m; r++) {
		c.mrow[r] = -INFINITY;
		c.lrow[r] = 0.0f;
	}
	/* The keys every row of the block sees, in blocks; causal, then the
	 * diagonal block as a staircase of ATTN_STEP-row spans, each against
	 * the keys up to its last row, so that little of the masked half is
	 * computed. */
	const int64_t kfull = d->causal ? i0 : d->S;
	for (int64_t j0 = 0; j0 < kfull; j0 += d->bk)
		attn_fwd_span(&c, 0, m, j0, attn_min(d->bk, kfull - j0));
	if (d->causal)
		for (int64_t r0 = 0; r0 < m; r0 += ATTN_STEP) {
			const int64_t mr = attn_min(ATTN_STEP, m - r0);
			attn_fwd_span(&c, r0, mr, i0, r0 + mr);
		}
	const int64_t ldo = d->H * d->dv;
	float *lse_row = (float *)io->out[1] + (b * d->H + h) * d->S + i0;
	for (int64_t r = 0; r < m; r++) {
		const float inv = 1.0f / c.lrow[r];
		float *orow = c.o + (i0 + r) * ldo;
		for (int64_t x = 0; x < d->dv; x++)
			orow[x] *= inv;
		lse_row[r] = (float)(((double)c.mrow[r] + log2((double)c.lrow[r])) * ATTN_LN2);
	}
}

int mb_cpu_attn_fwd(const mb_op *op, void *scratch, const mb_io *io)
{
	attn_scratch *sc = scratch;
	int rc = attn_launch_check(op, sc, io, 3, 2);
	if (rc)
		return rc;
	const attn_dims d = attn_dims_of(op);
	const int64_t bh = d.B * d.H, nqb = (d.S + d.bq - 1) / d.bq, items = bh * nqb;
	const int blas = attn_blas_single();
#pragma omp parallel num_threads(sc->threads)
	{
		float *buf = sc->buf + (size_t)omp_get_thread_num() * sc->per_thread;
		/* Causal blocks near the end of the sequence see the most keys:
		 * hand them out first so that the last items are the short ones. */
#pragma omp for schedule(dynamic, 1)
		for (int64_t it = 0; it < items; it++) {
			const int64_t qb = nqb - 1 - it / bh, x = it % bh;
			attn_fwd_item(&d, io, buf, x / d.H, x % d.H, qb);
		}
	}
	attn_blas_restore(blas);
	return 0;
}

/* ---- backward ---- */

/* Where one item accumulates its kv head's dK and dV. */
typedef struct attn_kv_out {
	float *dk, *dv;
	int64_t lddk, lddv;
	int first; /* this item's contribution is the first: overwrite */
} attn_kv_out;

/* One (b, h) of the backward: row 0 of its head's tensors and its scratch. */
typedef struct attn_bwd_ctx {
	const attn_dims *d;
	const attn_kv_out *kv;
	const float *q, *dout, *k, *v;
	float *dq, *P, *dP;
	const float *dsum, *lse2; /* per query row */
} attn_bwd_ctx;

/* Queries i0 .. i0+m-1 against keys j0 .. j0+n-1: the five matmuls. */
static void attn_bwd_span(const attn_bwd_ctx *c, int64_t i0, int64_t m, int64_t j0, int64_t n)
{
	const attn_dims *d = c->d;
	const int64_t ldq = d->H * d->dq, ldo = d->H * d->dv, ldk = d->Hk * d->dq,
		      ldv = d->Hk * d->dv;
	const float *q = c->q + i0 * ldq, *dout = c->dout + i0 * ldo;
	const float *k = c->k + j0 * ldk, *v = c->v + j0 * ldv;
	float *dq = c->dq + i0 * ldq, *dk = c->kv->dk + j0 * c->kv->lddk;
	float *dv = c->kv->dv + j0 * c->kv->lddv, *P = c->P, *dP = c->dP;
	const int64_t off = d->causal && j0 + n - 1 > i0 ? i0 - j0 : NO_MASK;
	attn_sgemm(0, 1, m, n, d->dq, d->scale2, q, ldq, k, ldk, 0.0f, P, n);
	attn_bwd_probs(P, m, n, n, off, c->lse2 + i0);
	attn_sgemm(1, 0, n, d->dv, m, 1.0f, P, n, dout, ldo, 1.0f, dv, c->kv->lddv);
	attn_sgemm(0, 1, m, n, d->dv, 1.0f, dout, ldo, v, ldv, 0.0f, dP, n);
	attn_bwd_dscores(P, dP, m, n, n, c->dsum + i0);
	/* Key block 0 is the first to reach every query row: it overwrites. */
	attn_sgemm(0, 0, m, d->dq, n, d->scale, dP, n, k, ldk, j0 ? 1.0f : 0.0f, dq, ldq);
	attn_sgemm(1, 0, n, d->dq, m, d->scale, dP, n, q, ldq, 1.0f, dk, c->kv->lddk);
}

static void attn_bwd_item(const attn_dims *d, const mb_io *io, float *buf, int64_t b, int64_t h,
			  const attn_kv_out *kv)
{
	const int64_t S = d->S, kvh = h / d->G, ldo = d->H * d->dv;
	float *dsum = buf + 2 * d->bq * d->bk, *lse2 = dsum + S;
	const attn_bwd_ctx c = {
		.d = d,
		.kv = kv,
		.dout = (const float *)io->in[0] + (b * S * d->H + h) * d->dv,
		.q = (const float *)io->in[1] + (b * S * d->H + h) * d->dq,
		.k = (const float *)io->in[2] + (b * S * d->Hk + kvh) * d->dq,
		.v = (const float *)io->in[3] + (b * S * d->Hk + kvh) * d->dv,
		.dq = (float *)io->out[0] + (b * S * d->H + h) * d->dq,
		.P = buf, .dP = buf + d->bq * d->bk, .dsum = dsum, .lse2 = lse2,
	};
	const float *o_h = (const float *)io->in[4] + (b * S * d->H + h) * d->dv;
	const float *lse_h = (const float *)io->in[5] + (b * d->H + h) * S;
	for (int64_t i = 0; i < S; i++) {
		const float *x = c.dout + i * ldo, *y = o_h + i * ldo;
		float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
		for (int64_t x_ = 0; x_ < d->dv; x_++)
			acc += x[x_] * y[x_];
		dsum[i] = acc;
		lse2[i] = (float)(lse_h[i] * ATTN_LOG2E);
	}
	for (int64_t j0 = 0; j0 < S; j0 += d->bk) {
		const int64_t n = attn_min(d->bk, S - j0);
		if (kv->first)
			for (int64_t j = j0; j < j0 + n; j++) {
				memset(kv->dk + j * kv->lddk, 0, (size_t)d->dq * sizeof(float));
				memset(kv->dv + j * kv->lddv, 0, (size_t)d->dv * sizeof(float));
			}
		if (!d->causal) {
			for (int64_t i0 = 0; i0 < S; i0 += d->bq)
				attn_bwd_span(&c, i0, attn_min(d->bq, S - i0), j0, n);
			continue;
		}
		/* Causal: the queries j0 .. j0+n-1 in a staircase (as in the
		 * forward), then every later query against the whole block. */
		for (int64_t r0 = 0; r0 < n; r0 += ATTN_STEP) {
			const int64_t mr = attn_min(ATTN_STEP, n - r0);
			attn_bwd_span(&c, j0 + r0, mr, j0, r0 + mr);
		}
		for (int64_t i0 = j0 + n; i0 < S; i0 += d->bq)
			attn_bwd_span(&c, i0, attn_min(d->bq, S - i0), j0, n);
	}
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

int mb_cpu_attn_bwd(const mb_op *op, void *scratch, const mb_io *io)
{
	attn_scratch *sc = scratch;
	int rc = attn_launch_check(op, sc, io, 6, 3);
	if (rc)
		return rc;
	const attn_dims d = attn_dims_of(op);
	const int64_t n = d.B * d.H, slot_len = d.S * (d.dq + d.dv);
	float *dK = io->out[1], *dV = io->out[2];
	int team = 1;
	const int blas = attn_blas_single();
#pragma omp parallel num_threads(sc->threads)
	{
		const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
		team = nt;
		float *buf = sc->buf + (size_t)t * sc->per_thread;
		int64_t lo, hi;
		attn_range(n, t, nt, &lo, &hi);
		for (int64_t i = lo; i < hi; i++) {
			const int64_t b = i / d.H, h = i % d.H, kv = i / d.G, g0 = kv * d.G;
			attn_kv_out out;
			if (g0 >= lo && g0 + d.G <= hi) { /* the whole group is ours */
				out.dk = dK + (b * d.S * d.Hk + h / d.G) * d.dq;
				out.dv = dV + (b * d.S * d.Hk + h / d.G) * d.dv;
				out.lddk = d.Hk * d.dq;
				out.lddv = d.Hk * d.dv;
			} else {
				const int slot = kv == lo / d.G ? 0 : 1;
				out.dk = sc->slots + (size_t)(2 * t + slot) * (size_t)slot_len;
				out.dv = out.dk + d.S * d.dq;
				out.lddk = d.dq;
				out.lddv = d.dv;
			}
			out.first = i == (g0 > lo ? g0 : lo);
			attn_bwd_item(&d, io, buf, b, h, &out);
		}
	}
	if (d.G > 1)
		attn_bwd_reduce(&d, sc, team, io);
	attn_blas_restore(blas);
	return 0;
}
