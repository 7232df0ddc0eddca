/* cpu_train.c: RMSNorm, embedding, cross-entropy, AdamW, add and the MLA key
 * concat on the CPU (cpu_train.h; shapes in backend.h).
 *
 * Determinism: loops are OpenMP over rows (or elements), each output written
 * by one thread. Reductions across rows never depend on the thread count:
 * d(gamma) is summed per fixed chunk of rows (the chunking depends on the
 * shape only) and the chunks in order; d(table) gathers each vocabulary
 * row's contributions in row order after a counting sort of the ids; the
 * mean loss sums the per-row losses serially.
 */
#include "../../harness/mb.h"

#include "cpu_train.h"

#include <math.h>
#include <string.h>

/* Loops over fewer elements run on the calling thread. cpu.c pauses the
 * OpenMP pool around every matmul, so a parallel region here first starts
 * its threads again, which can cost a whole scheduler slice (milliseconds)
 * when the other cores are busy: more than one core takes to stream 4 MiB
 * (an estimate from a core's few GB/s, not a measurement). Nothing depends
 * on the thread count. */
#define PAR_MIN (1 << 20)
/* RMSNORM_BWD sums d(gamma) over at most this many row chunks. */
#define NORM_CHUNKS 64

typedef struct train_scratch {
	double *part;     /* RMSNORM_BWD: [chunks][dim] partial d(gamma) */
	int64_t chunks;
	int64_t *count;   /* EMBED_BWD: [vocab + 1] bucket starts */
	int64_t *order;   /* EMBED_BWD: [rows] rows sorted by id */
	double *row_loss; /* XENT: [rows] */
	int64_t step;     /* ADAMW: launches so far */
} train_scratch;

int mb_cpu_train_kind(mb_op_kind kind)
{
	switch (kind) {
	case MB_OP_RMSNORM: case MB_OP_RMSNORM_BWD: case MB_OP_EMBED: case MB_OP_EMBED_BWD:
	case MB_OP_XENT: case MB_OP_ADAMW: case MB_OP_ADD: case MB_OP_KCAT: case MB_OP_KCAT_BWD:
		return 1;
	default:
		return 0;
	}
}

void mb_cpu_train_free(void *scratch)
{
	train_scratch *s = scratch;
	if (!s)
		return;
	mb_free(s->part);
	mb_free(s->count);
	mb_free(s->order);
	mb_free(s->row_loss);
	mb_free(s);
}

static int bad(const mb_op *op, const char *what)
{
	return mb_err(MB_ERR_USAGE, "cpu backend: %s: %s", mb_op_name(op->kind), what);
}

static int check_shape(const mb_op *op)
{
	switch (op->kind) {
	case MB_OP_RMSNORM: case MB_OP_RMSNORM_BWD: case MB_OP_ADD:
		if (op->u.row.rows < 0 || op->u.row.dim < 0)
			return bad(op, "negative size");
		if ((op->kind != MB_OP_ADD) && !(op->u.row.eps >= 0.0f))
			return bad(op, "eps must be >= 0");
		return 0;
	case MB_OP_EMBED: case MB_OP_EMBED_BWD: case MB_OP_XENT:
		if (op->u.row.rows < 0 || op->u.row.vocab < 1 ||
		    (op->kind != MB_OP_XENT && op->u.row.dim < 0))
			return bad(op, "needs rows, dim >= 0 and vocab >= 1");
		if (op->u.row.vocab > INT32_MAX)
			return bad(op, "vocab above 2^31-1 (ids are int32)");
		return 0;
	case MB_OP_ADAMW: {
		const float b1 = op->u.adamw.beta1, b2 = op->u.adamw.beta2;
		if (op->u.adamw.count < 0)
			return bad(op, "negative count");
		if (!(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f && op->u.adamw.eps > 0.0f))
			return bad(op, "needs 0 <= beta1, beta2 < 1 and eps > 0");
		return 0;
	}
	case MB_OP_KCAT: case MB_OP_KCAT_BWD:
		if (op->u.kcat.rows < 0 || op->u.kcat.heads < 1 || op->u.kcat.d_nope < 0 ||
		    op->u.kcat.d_rope < 0)
			return bad(op, "needs rows, d_nope, d_rope >= 0 and heads >= 1");
		return 0;
	default:
		return bad(op, "not a training-step op of this module");
	}
}

int mb_cpu_train_plan(const mb_op *op, void **scratch)
{
	*scratch = NULL;
	int rc = check_shape(op);
	if (rc)
		return rc;
	train_scratch *s = mb_calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	const int64_t rows = op->u.row.rows;
	switch (op->kind) {
	case MB_OP_RMSNORM_BWD:
		s->chunks = rows < NORM_CHUNKS ? rows : NORM_CHUNKS;
		s->part = mb_alloc((size_t)(s->chunks * op->u.row.dim + 1) * sizeof *s->part);
		if (!s->part)
			goto nomem;
		break;
	case MB_OP_EMBED_BWD:
		s->count = mb_alloc((size_t)(op->u.row.vocab + 1) * sizeof *s->count);
		s->order = mb_alloc((size_t)(rows + 1) * sizeof *s->order);
		if (!s->count || !s->order)
			goto nomem;
		break;
	case MB_OP_XENT:
		s->row_loss = mb_alloc((size_t)(rows + 1) * sizeof *s->row_loss);
		if (!s->row_loss)
			goto nomem;
		break;
	default:
		break;
	}
	*scratch = s;
	return 0;
nomem:
	mb_cpu_train_free(s);
	return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory planning %s", mb_op_name(op->kind));
}

/* ---- RMSNorm ----
 * y = x r gamma with r = 1 / sqrt(mean(x^2) + eps). Backward, with
 * c = sum_i dy_i gamma_i x_i over the row of n values:
 *   dx_j = r gamma_j dy_j - x_j r^3 c / n,   dgamma_j = sum_rows dy_j x_j r. */

static float row_rstd(const float *x, int64_t n, float eps)
{
	double ss = 0.0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	return (float)(1.0 / sqrt(ss / (double)(n ? n : 1) + eps));
}

static int rmsnorm(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.row.rows, D = op->u.row.dim;
	const float eps = op->u.row.eps, *x = io->in[0], *g = io->in[1];
	float *y = io->out[0], *rstd = io->out[1];
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
	for (int64_t r = 0; r < R; r++) {
		const float *xr = x + r * D;
		float *yr = y + r * D;
		const float rs = row_rstd(xr, D, eps);
		rstd[r] = rs;
#pragma omp simd
		for (int64_t i = 0; i < D; i++)
			yr[i] = xr[i] * rs * g[i];
	}
	return 0;
}

static int rmsnorm_bwd(const mb_op *op, train_scratch *s, const mb_io *io)
{
	const int64_t R = op->u.row.rows, D = op->u.row.dim, C = s->chunks;
	const int acc = op->u.row.accumulate;
	const float *dy = io->in[0], *x = io->in[1], *g = io->in[2], *rstd = io->in[3];
	float *dx = io->out[0], *dg = io->out[1];
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
	for (int64_t c = 0; c < C; c++) {
		double *part = s->part + c * D;
		for (int64_t i = 0; i < D; i++)
			part[i] = 0.0;
		for (int64_t r = R * c / C; r < R * (c + 1) / C; r++) {
			const float *dyr = dy + r * D, *xr = x + r * D;
			float *dxr = dx + r * D;
			const double rs = rstd[r];
			double dot = 0.0;
#pragma omp simd reduction(+ : dot)
			for (int64_t i = 0; i < D; i++)
				dot += (double)dyr[i] * g[i] * xr[i];
			const float a = (float)rs, b = (float)(rs * rs * rs * dot / (double)D);
			for (int64_t i = 0; i < D; i++) {
				const float v = a * g[i] * dyr[i] - b * xr[i];
				dxr[i] = acc ? dxr[i] + v : v;
				part[i] += (double)dyr[i] * xr[i] * rs;
			}
		}
	}
#pragma omp parallel for schedule(static) if (D * C > PAR_MIN)
	for (int64_t i = 0; i < D; i++) {
		double sum = 0.0;
		for (int64_t c = 0; c < C; c++)
			sum += s->part[c * D + i];
		dg[i] = (float)sum;
	}
	return 0;
}

/* ---- embedding ---- */

static int id_error(const mb_op *op, const char *what, int64_t r, int32_t id)
{
	return mb_err(MB_ERR_USAGE, "cpu backend: %s: %s[%lld] = %d outside 0..%lld",
		      mb_op_name(op->kind), what, (long long)r, id, (long long)op->u.row.vocab - 1);
}

static int embed(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.row.rows, D = op->u.row.dim, V = op->u.row.vocab;
	const float *table = io->in[0];
	const int32_t *ids = io->in[1];
	float *y = io->out[0];
	for (int64_t r = 0; r < R; r++)
		if (ids[r] < 0 || ids[r] >= V)
			return id_error(op, "ids", r, ids[r]);
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
	for (int64_t r = 0; r < R; r++)
		memcpy(y + r * D, table + (int64_t)ids[r] * D, (size_t)D * sizeof(float));
	return 0;
}

/* Counting sort of the rows by id (stable), then each vocabulary row is the
 * sum of its rows' gradients in row order: no atomics, fixed order. */
static int embed_bwd(const mb_op *op, train_scratch *s, const mb_io *io)
{
	const int64_t R = op->u.row.rows, D = op->u.row.dim, V = op->u.row.vocab;
	const float *dy = io->in[0];
	const int32_t *ids = io->in[1];
	float *dt = io->out[0];
	int64_t *start = s->count, *order = s->order;
	memset(start, 0, (size_t)(V + 1) * sizeof *start);
	for (int64_t r = 0; r < R; r++) {
		if (ids[r] < 0 || ids[r] >= V)
			return id_error(op, "ids", r, ids[r]);
		start[ids[r] + 1]++;
	}
	for (int64_t v = 0; v < V; v++)
		start[v + 1] += start[v];
	for (int64_t r = 0; r < R; r++)
		order[start[ids[r]]++] = r;
	for (int64_t v = V; v > 0; v--) /* start[v] was advanced to the end of bucket v */
		start[v] = start[v - 1];
	start[0] = 0;
#pragma omp parallel for schedule(static) if (V * D + R * D > PAR_MIN)
	for (int64_t v = 0; v < V; v++) {
		float *d = dt + v * D;
		memset(d, 0, (size_t)D * sizeof(float));
		for (int64_t q = start[v]; q < start[v + 1]; q++) {
			const float *src = dy + order[q] * D;
#pragma omp simd
			for (int64_t i = 0; i < D; i++)
				d[i] += src[i];
		}
	}
	return 0;
}

/* ---- cross-entropy ----
 * loss_r = logsumexp(l_r) - l_r[target_r]; loss = mean over rows;
 * dlogits_r = (softmax(l_r) - onehot(target_r)) / rows, one exp per logit
 * (stored, then scaled). dlogits may alias logits: a row's max and target
 * logit are read before the row is overwritten. */
static int xent(const mb_op *op, train_scratch *s, const mb_io *io)
{
	const int64_t R = op->u.row.rows, V = op->u.row.vocab;
	const float *logits = io->in[0];
	const int32_t *tgt = io->in[1];
	float *dl = io->out[0], *loss = io->out[1];
	for (int64_t r = 0; r < R; r++)
		if (tgt[r] < 0 || tgt[r] >= V)
			return id_error(op, "targets", r, tgt[r]);
	const float inv_rows = R > 0 ? 1.0f / (float)R : 0.0f;
#pragma omp parallel for schedule(static) if (R * V > PAR_MIN)
	for (int64_t r = 0; r < R; r++) {
		const float *l = logits + r * V;
		float *d = dl + r * V;
		float mx = l[0];
		for (int64_t c = 1; c < V; c++)
			mx = l[c] > mx ? l[c] : mx;
		const double lt = l[tgt[r]];
		double sum = 0.0;
		for (int64_t c = 0; c < V; c++) {
			const float e = expf(l[c] - mx);
			d[c] = e;
			sum += e;
		}
		s->row_loss[r] = (double)mx + log(sum) - lt;
		const float scale = (float)(1.0 / sum) * inv_rows;
#pragma omp simd
		for (int64_t c = 0; c < V; c++)
			d[c] *= scale;
		d[tgt[r]] -= inv_rows;
	}
	double total = 0.0;
	for (int64_t r = 0; r < R; r++)
		total += s->row_loss[r];
	loss[0] = R > 0 ? (float)(total / (double)R) : 0.0f;
	return 0;
}

/* ---- AdamW (Loshchilov and Hutter; PyTorch's torch.optim.AdamW update) ----
 * at step t: p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
static int adamw(const mb_op *op, train_scratch *s, const mb_io *io)
{
	const int64_t n = op->u.adamw.count;
	const float b1 = op->u.adamw.beta1, b2 = op->u.adamw.beta2, eps = op->u.adamw.eps;
	const float *g = io->in[0];
	float *p = io->out[0], *m = io->out[1], *v = io->out[2];
	const int64_t t = ++s->step;
	const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
	const float step = (float)(op->u.adamw.lr / bc1), isb2 = (float)(1.0 / sqrt(bc2));
	const float decay = 1.0f - op->u.adamw.lr * op->u.adamw.weight_decay;
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
	for (int64_t i = 0; i < n; i++) {
		const float gi = g[i];
		const float mi = b1 * m[i] + (1.0f - b1) * gi;
		const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] = p[i] * decay - step * mi / (sqrtf(vi) * isb2 + eps);
	}
	return 0;
}

static int add(const mb_op *op, const mb_io *io)
{
	const int64_t n = op->u.row.rows * op->u.row.dim;
	const float alpha = op->u.row.alpha, *x = io->in[0];
	float *y = io->out[0];
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
	for (int64_t i = 0; i < n; i++)
		y[i] += alpha * x[i];
	return 0;
}

/* ---- MLA key concat ---- */

static int kcat(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.kcat.rows, H = op->u.kcat.heads, dn = op->u.kcat.d_nope,
		      dr = op->u.kcat.d_rope, dk = dn + dr;
	const float *kn = io->in[0], *kr = io->in[1];
	float *k = io->out[0];
#pragma omp parallel for schedule(static) if (R * H * dk > PAR_MIN)
	for (int64_t r = 0; r < R; r++)
		for (int64_t h = 0; h < H; h++) {
			float *dst = k + (r * H + h) * dk;
			memcpy(dst, kn + (r * H + h) * dn, (size_t)dn * sizeof(float));
			memcpy(dst + dn, kr + r * dr, (size_t)dr * sizeof(float));
		}
	return 0;
}

static int kcat_bwd(const mb_op *op, const mb_io *io)
{
	const int64_t R = op->u.kcat.rows, H = op->u.kcat.heads, dn = op->u.kcat.d_nope,
		      dr = op->u.kcat.d_rope, dk = dn + dr;
	const float *dK = io->in[0];
	float *dkn = io->out[0], *dkr = io->out[1];
#pragma omp parallel for schedule(static) if (R * H * dk > PAR_MIN)
	for (int64_t r = 0; r < R; r++) {
		float *dst = dkr + r * dr;
		for (int64_t i = 0; i < dr; i++)
			dst[i] = 0.0f;
		for (int64_t h = 0; h < H; h++) {
			const float *src = dK + (r * H + h) * dk;
			memcpy(dkn + (r * H + h) * dn, src, (size_t)dn * sizeof(float));
			for (int64_t i = 0; i < dr; i++)
				dst[i] += src[dn + i];
		}
	}
	return 0;
}

int mb_cpu_train_launch(const mb_op *op, void *scratch, const mb_io *io)
{
	train_scratch *s = scratch;
	if (!s || !io)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: %s launched without a plan or buffers",
			      mb_op_name(op->kind));
	switch (op->kind) {
	case MB_OP_RMSNORM: return rmsnorm(op, io);
	case MB_OP_RMSNORM_BWD: return rmsnorm_bwd(op, s, io);
	case MB_OP_EMBED: return embed(op, io);
	case MB_OP_EMBED_BWD: return embed_bwd(op, s, io);
	case MB_OP_XENT: return xent(op, s, io);
	case MB_OP_ADAMW: return adamw(op, s, io);
	case MB_OP_ADD: return add(op, io);
	case MB_OP_KCAT: return kcat(op, io);
	case MB_OP_KCAT_BWD: return kcat_bwd(op, io);
	default:
		return mb_err(MB_ERR_INTERNAL, "cpu backend: %s is not a training-step op",
			      mb_op_name(op->kind));
	}
}

/* Elements in out[0] of op. */
static int64_t out0_elems(const mb_op *op)
{
	switch (op->kind) {
	case MB_OP_RMSNORM: case MB_OP_RMSNORM_BWD: case MB_OP_EMBED: case MB_OP_ADD:
		return op->u.row.rows * op->u.row.dim;
	case MB_OP_EMBED_BWD: return op->u.row.vocab * op->u.row.dim;
	case MB_OP_XENT: return op->u.row.rows * op->u.row.vocab;
	case MB_OP_ADAMW: return op->u.adamw.count;
	case MB_OP_KCAT:
		return op->u.kcat.rows * op->u.kcat.heads * (op->u.kcat.d_nope + op->u.kcat.d_rope);
	case MB_OP_KCAT_BWD: return op->u.kcat.rows * op->u.kcat.heads * op->u.kcat.d_nope;
	default: return 0;
	}
}

void mb_cpu_train_corrupt(const mb_op *op, const mb_io *io)
{
	if (out0_elems(op) > 0)
		((float *)io->out[0])[0] += 1.0f;
}
