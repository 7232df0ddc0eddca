/* cpu_bf16.c: bf16 GEMM, GMM, unpermute, permute backward and SwiGLU on the
 * CPU (the contract is in cpu_bf16.h, the ops' shapes in backend.h).
 *
 * Matmuls compute in fp32 from widened copies: Debian's OpenBLAS 0.3.21 is
 * built without BUILD_BFLOAT16, so it exports no cblas_sbgemm (cblas.h
 * declares it all the same), and the products go through cblas_sgemm. Each
 * launch widens its bf16 operands into fp32 scratch planned here, multiplies,
 * and rounds a bf16 output once; with accumulate (or GEMM's beta) the
 * existing bf16 output is widened and added in fp32 before that rounding.
 * fp32 operands (gmm's routing data, named by op.u.gemm.fp32) are used as
 * they are. GMM widens one group at a time: X's rows into rows x k scratch,
 * W_g into k x n (NN, NT) or D's rows into rows x n (TN), the product into
 * rows x n (NN, NT) or k x n (TN). So bf16 halves the memory the gmm suite's
 * buffers take and the traffic of its element-wise passes, but its matmuls
 * run at fp32 speed plus the conversions; a BLAS with a bf16 GEMM would
 * replace sgemm here.
 *
 * The conversions run on the calling thread: cpu.c launches matmuls with the
 * OpenMP pool paused (see cpu_launch). The element-wise passes are OpenMP
 * loops like their fp32 twins in cpu.c, each output written by one thread in
 * a fixed order; sums over a token's pairs accumulate in fp32 in blocks on
 * the stack.
 */
#include "cpu_blas.h"
#include "cpu_bf16.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* As in cpu.c: smaller passes stay on the calling thread. */
#define BF_OMP_MIN_WORK ((int64_t)1 << 20)
/* Columns summed at a time in a stack accumulator. */
#define BF_BLOCK 256

typedef struct bf_scratch {
	float *a, *b; /* widened bf16 inputs (GEMM: NULL where fp32) */
	float *c;     /* product before rounding (GEMM: NULL for an fp32 C) */
} bf_scratch;



void mb_cpu_bf16_add1(uint16_t *p) { *p = mb_bf16_round(mb_bf16_widen(*p) + 1.0f); }

int mb_cpu_bf16_kind(mb_op_kind kind)
{
	switch (kind) {
	case MB_OP_GEMM: case MB_OP_GMM: case MB_OP_PERMUTE_BWD: case MB_OP_UNPERMUTE:
	case MB_OP_UNPERMUTE_BWD: case MB_OP_SWIGLU: case MB_OP_SWIGLU_BWD:
		return 1;
	default:
		return 0;
	}
}

void mb_cpu_bf16_free(void *scratch)
{
	bf_scratch *s = scratch;
	if (!s)
		return;
	mb_free(s->a);
	mb_free(s->b);
	mb_free(s->c);
	mb_free(s);
}

/* n elements of size es, or NULL for none; *fail set if that fails. */
static void *bf_alloc(int64_t n, size_t es, int *fail)
{
	if (n <= 0)
		return NULL;
	void *p = mb_alloc((size_t)n * es);
	*fail |= !p;
	return p;
}

int mb_cpu_bf16_plan(const mb_op *op, void **scratch)
{
	*scratch = NULL;
	if (op->kind != MB_OP_GEMM && op->kind != MB_OP_GMM)
		return 0;
	bf_scratch *s = mb_calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	int fail = 0;
	if (op->kind == MB_OP_GEMM) {
		const int64_t m = op->u.gemm.m, n = op->u.gemm.n, k = op->u.gemm.k;
		const unsigned f32 = op->u.gemm.fp32;
		if (!(f32 & MB_GEMM_A_FP32))
			s->a = bf_alloc(m * k, sizeof *s->a, &fail);
		if (!(f32 & MB_GEMM_B_FP32))
			s->b = bf_alloc(k * n, sizeof *s->b, &fail);
		if (!(f32 & MB_GEMM_C_FP32))
			s->c = bf_alloc(m * n, sizeof *s->c, &fail);
	} else {
		const int64_t rows = op->u.gmm.rows, k = op->u.gmm.k, n = op->u.gmm.n;
		const int tn = op->u.gmm.mode == MB_GMM_TN;
		s->a = bf_alloc(rows * k, sizeof *s->a, &fail);
		s->b = bf_alloc(tn ? rows * n : k * n, sizeof *s->b, &fail);
		s->c = bf_alloc(tn ? k * n : rows * n, sizeof *s->c, &fail);
	}
	if (fail)
		goto nomem;
	*scratch = s;
	return 0;
nomem:
	mb_cpu_bf16_free(s);
	return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory planning bf16 %s",
		      mb_op_name(op->kind));
}

/* ---- matmuls ---- */


static void bf_widen_n(float *dst, const uint16_t *src, int64_t n)
{
	#pragma omp simd
	for (int64_t i = 0; i < n; i++)
		dst[i] = mb_bf16_widen(src[i]);
}

/* y = round(c + (acc ? y : 0)), n elements. */
static void bf_store(uint16_t *y, const float *c, int64_t n, int acc)
{
	if (acc) {
		#pragma omp simd
		for (int64_t i = 0; i < n; i++)
			y[i] = mb_bf16_round(c[i] + mb_bf16_widen(y[i]));
	} else {
		#pragma omp simd
		for (int64_t i = 0; i < n; i++)
			y[i] = mb_bf16_round(c[i]);
	}
}

static int bf_gemm(const mb_op *op, bf_scratch *s, int fault, const mb_io *io)
{
	const int64_t m = op->u.gemm.m, n = op->u.gemm.n, k = op->u.gemm.k;
	const int ta = op->u.gemm.trans_a, tb = op->u.gemm.trans_b;
	const float alpha = op->u.gemm.alpha, beta = op->u.gemm.beta;
	const float *a = io->in[0], *b = io->in[1];
	if (s->a) {
		bf_widen_n(s->a, io->in[0], m * k);
		a = s->a;
	}
	if (s->b) {
		bf_widen_n(s->b, io->in[1], k * n);
		b = s->b;
	}
	if (!s->c) { /* fp32 C */
		float *c = io->out[0];
		mb_cpu_sgemm(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
		if (fault && m > 0 && n > 0)
			c[0] += 1.0f;
		return 0;
	}
	uint16_t *c = io->out[0];
	mb_cpu_sgemm(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, 0.0f, s->c, n);
	if (beta == 0.0f) {
		bf_store(c, s->c, m * n, 0);
	} else {
		for (int64_t i = 0; i < m * n; i++)
			c[i] = mb_bf16_round(s->c[i] + beta * mb_bf16_widen(c[i]));
	}
	if (fault && m > 0 && n > 0)
		mb_cpu_bf16_add1(c);
	return 0;
}

/* The offsets were checked by cpu.c. */
static int bf_gmm(const mb_op *op, bf_scratch *s, int fault, const mb_io *io)
{
	const int64_t G = op->u.gmm.groups, k = op->u.gmm.k, n = op->u.gmm.n;
	const mb_gmm_mode mode = op->u.gmm.mode;
	const int acc = op->u.gmm.accumulate;
	const uint16_t *x = io->in[0], *w = io->in[1];
	const int64_t *off = io->in[2];
	uint16_t *y = io->out[0];
	int64_t first = -1;
	for (int64_t g = 0; g < G; g++) {
		const int64_t r0 = off[g], mg = off[g + 1] - off[g];
		if (mg > 0 && first < 0)
			first = g;
		if (mode == MB_GMM_TN && mg == 0) { /* dW_g is 0 (or unchanged) */
			if (!acc)
				memset(y + g * k * n, 0, (size_t)(k * n) * sizeof *y);
			continue;
		}
		if (mg == 0)
			continue;
		float *xg = s->a + r0 * k;
		bf_widen_n(xg, x + r0 * k, mg * k);
		if (mode == MB_GMM_TN) { /* dW_g = X_g^T D_g, k x n */
			float *dg = s->b + r0 * n;
			bf_widen_n(dg, w + r0 * n, mg * n);
			mb_cpu_sgemm(1, 0, k, n, mg, 1.0f, xg, k, dg, n, 0.0f, s->c, n);
			bf_store(y + g * k * n, s->c, k * n, acc);
			continue;
		}
		/* NN: Y_g = X_g W_g, W_g k x n; NT: Y_g = X_g W_g^T, W_g n x k */
		const int nt = mode == MB_GMM_NT;
		bf_widen_n(s->b, w + g * k * n, k * n);
		mb_cpu_sgemm(0, nt, mg, n, k, 1.0f, xg, k, s->b, nt ? k : n, 0.0f, s->c + r0 * n, n);
		bf_store(y + r0 * n, s->c + r0 * n, mg * n, acc);
	}
	if (fault && first >= 0 && k > 0 && n > 0)
		mb_cpu_bf16_add1(y + (mode == MB_GMM_TN ? first * k * n : off[first] * n));
	return 0;
}

/* ---- permute backward, unpermute ---- */

/* dx[t] = round((accumulate ? dx[t] : 0) + sum_j dxs[pos[t, j]]), summed in
 * fp32 in pair order. */
static void bf_permute_bwd(const mb_op *op, const mb_io *io)
{
	const int64_t T = op->u.perm.tokens, H = op->u.perm.hidden, K = op->u.perm.top_k;
	const int acc = op->u.perm.accumulate;
	const uint16_t *dxs = io->in[0];
	const int32_t *pos = io->in[1];
	uint16_t *dx = io->out[0];
#pragma omp parallel for schedule(static) if (T * K * H >= BF_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i0 = 0; i0 < H; i0 += BF_BLOCK) {
			const int64_t nb = H - i0 < BF_BLOCK ? H - i0 : BF_BLOCK;
			uint16_t *d = dx + t * H + i0;
			float sum[BF_BLOCK];
			for (int64_t i = 0; i < nb; i++)
				sum[i] = acc ? mb_bf16_widen(d[i]) : 0.0f;
			for (int64_t j = 0; j < K; j++) {
				const uint16_t *src = dxs + (int64_t)pos[t * K + j] * H + i0;
				for (int64_t i = 0; i < nb; i++)
					sum[i] += mb_bf16_widen(src[i]);
			}
			for (int64_t i = 0; i < nb; i++)
				d[i] = mb_bf16_round(sum[i]);
		}
	}
}

static void bf_unpermute(const mb_op *op, const mb_io *io)
{
	const int64_t T = op->u.perm.tokens, H = op->u.perm.hidden, K = op->u.perm.top_k;
	const uint16_t *ys = io->in[0];
	const int32_t *pos = io->in[1];
	const float *w = io->in[2];
	uint16_t *y = io->out[0];
#pragma omp parallel for schedule(static) if (T * K * H >= BF_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i0 = 0; i0 < H; i0 += BF_BLOCK) {
			const int64_t nb = H - i0 < BF_BLOCK ? H - i0 : BF_BLOCK;
			float sum[BF_BLOCK] = {0};
			for (int64_t j = 0; j < K; j++) {
				const uint16_t *src = ys + (int64_t)pos[t * K + j] * H + i0;
				const float wj = w[t * K + j];
				for (int64_t i = 0; i < nb; i++)
					sum[i] += wj * mb_bf16_widen(src[i]);
			}
			for (int64_t i = 0; i < nb; i++)
				y[t * H + i0 + i] = mb_bf16_round(sum[i]);
		}
	}
}

/* dys[pos[t, j]] = w[t, j] dy[t]; dw[t, j] = dy[t] . ys[pos[t, j]] (fp32 out). */
static void bf_unpermute_bwd(const mb_op *op, const mb_io *io)
{
	const int64_t T = op->u.perm.tokens, H = op->u.perm.hidden, K = op->u.perm.top_k;
	const uint16_t *dy = io->in[0], *ys = io->in[1];
	const int32_t *pos = io->in[2];
	const float *w = io->in[3];
	uint16_t *dys = io->out[0];
	float *dw = io->out[1];
#pragma omp parallel for schedule(static) if (T * K * H >= BF_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		const uint16_t *g = dy + t * H;
		for (int64_t j = 0; j < K; j++) {
			const int64_t r = pos[t * K + j];
			const uint16_t *src = ys + r * H;
			const float wj = w[t * K + j];
			uint16_t *d = dys + r * H;
			double dot = 0.0;
			for (int64_t i = 0; i < H; i++) {
				const float gi = mb_bf16_widen(g[i]);
				d[i] = mb_bf16_round(wj * gi);
				dot += (double)gi * mb_bf16_widen(src[i]);
			}
			dw[t * K + j] = (float)dot;
		}
	}
}

/* ---- SwiGLU ---- */

static void bf_swiglu(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.act.rows, F = op->u.act.ffn;
	const uint16_t *gu = io->in[0];
	uint16_t *a = io->out[0];
#pragma omp parallel for schedule(static) if (R * F >= BF_OMP_MIN_WORK)
	for (int64_t r = 0; r < R; r++) {
		const uint16_t *g = gu + r * 2 * F, *u = g + F;
		uint16_t *o = a + r * F;
		for (int64_t c = 0; c < F; c++) {
			const float gc = mb_bf16_widen(g[c]);
			o[c] = mb_bf16_round(gc / (1.0f + expf(-gc)) * mb_bf16_widen(u[c]));
		}
	}
}

/* As cpu.c's: da/dg = u sigma(g) (1 + g (1 - sigma(g))), da/du = silu(g). */
static void bf_swiglu_bwd(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.act.rows, F = op->u.act.ffn;
	const uint16_t *gu = io->in[0], *da = io->in[1];
	uint16_t *dgu = io->out[0];
#pragma omp parallel for schedule(static) if (R * F >= BF_OMP_MIN_WORK)
	for (int64_t r = 0; r < R; r++) {
		const uint16_t *g = gu + r * 2 * F, *u = g + F, *d = da + r * F;
		uint16_t *dg = dgu + r * 2 * F, *du = dg + F;
		for (int64_t c = 0; c < F; c++) {
			const float gc = mb_bf16_widen(g[c]), uc = mb_bf16_widen(u[c]), dc = mb_bf16_widen(d[c]);
			const float s = 1.0f / (1.0f + expf(-gc));
			dg[c] = mb_bf16_round(dc * uc * s * (1.0f + gc * (1.0f - s)));
			du[c] = mb_bf16_round(dc * gc * s);
		}
	}
}

/* Whether an element-wise kind's out[0] has an element for the fault. */
static int bf_has_output(const mb_op *op)
{
	if (op->kind == MB_OP_SWIGLU || op->kind == MB_OP_SWIGLU_BWD)
		return op->u.act.rows > 0 && op->u.act.ffn > 0;
	return op->u.perm.tokens > 0 && op->u.perm.hidden > 0;
}

int mb_cpu_bf16_launch(const mb_op *op, void *scratch, int fault, const mb_io *io)
{
	switch (op->kind) {
	case MB_OP_GEMM: return bf_gemm(op, scratch, fault, io);
	case MB_OP_GMM: return bf_gmm(op, scratch, fault, io);
	case MB_OP_PERMUTE_BWD: bf_permute_bwd(op, io); break;
	case MB_OP_UNPERMUTE: bf_unpermute(op, io); break;
	case MB_OP_UNPERMUTE_BWD: bf_unpermute_bwd(op, io); break;
	case MB_OP_SWIGLU: bf_swiglu(op, io); break;
	case MB_OP_SWIGLU_BWD: bf_swiglu_bwd(op, io); break;
	default:
		return mb_err(MB_ERR_INTERNAL, "cpu backend: no bf16 kernel for %s",
			      mb_op_name(op->kind));
	}
	if (fault && bf_has_output(op))
		mb_cpu_bf16_add1(io->out[0]);
	return 0;
}
