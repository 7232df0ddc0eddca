/* train_step_graph.c: the launch list of one training step (the model and
 * the order of its ops are described in train_step.c): the parameter table
 * and its flat buffers, the activation and gradient buffers, and every op
 * planned once, in launch order, tagged with its phase (attention, FFN,
 * communication, optimizer, other) and part (forward, backward, gradient
 * sync, optimizer) so that a test can run the forward or the backward
 * alone and verify can time the phases.
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "train_step_int.h"

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
		t->first = st->s.ep > 1 ? (int64_t)st->ep_rank * n : 0;
	return st->nt++;
}

/* Every parameter, layer by layer; the table is the same on every rank and
 * for every ep, so a tensor's seeded stream (its index) is too. Initial
 * values: matrices U[-1/sqrt(fan_in), +], the embedding U[-1, 1], norm
 * gains 1, so activations stay of order 1 at every width and the logits'
 * spread (~0.6) starts the loss near ln(vocab). */
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
		y->wq = y->wk = y->wv = y->wdq = y->gq = y->wuq = y->wdkv = -1;
		y->gkv = y->wuk = y->wuv = y->wkr = y->w1 = y->w2 = y->wr = -1;
		y->ws1 = y->ws2 = y->we1 = y->we2 = -1;
		y->g1 = ts_param(st, l, "norm1", G_NODECAY, s->h, 0);
		if (s->ql) { /* MLA's low-rank query */
			y->wdq = ts_param(st, l, "wdq", G_DECAY, s->h * s->ql, 1 / sqrt(h));
			y->gq = ts_param(st, l, "norm_q", G_NODECAY, s->ql, 0);
			y->wuq = ts_param(st, l, "wuq", G_DECAY, s->ql * H * s->dqk,
					  1 / sqrt((double)s->ql));
		} else {
			y->wq = ts_param(st, l, "wq", G_DECAY, s->h * H * s->dqk, 1 / sqrt(h));
		}
		if (!s->mla) {
			y->wk = ts_param(st, l, "wk", G_DECAY, s->h * s->Hkv * s->dqk, 1 / sqrt(h));
			y->wv = ts_param(st, l, "wv", G_DECAY, s->h * s->Hkv * s->dv, 1 / sqrt(h));
		} else {
			y->wdkv = ts_param(st, l, "wdkv", G_DECAY, s->h * s->kvl, 1 / sqrt(h));
			y->gkv = ts_param(st, l, "norm_kv", G_NODECAY, s->kvl, 0);
			y->wuk = ts_param(st, l, "wuk", G_DECAY, s->kvl * H * dn,
					  1 / sqrt((double)s->kvl));
			y->wuv = ts_param(st, l, "wuv", G_DECAY, s->kvl * H * s->dv,
					   1 / sqrt((double)s->kvl));
			if (s->rope)
				y->wkr = ts_param(st, l, "wkr", G_DECAY, s->h * s->rope,
						  1 / sqrt(h));
		}
		y->wo = ts_param(st, l, "wo", G_DECAY, H * s->dv * s->h,
				 1 / sqrt((double)(H * s->dv)));
		y->g2 = ts_param(st, l, "norm2", G_NODECAY, s->h, 0);
		if (!y->moe) {
			y->w1 = ts_param(st, l, "ffn.w1", G_DECAY, s->h * 2 * s->fd, 1 / sqrt(h));
			y->w2 = ts_param(st, l, "ffn.w2", G_DECAY, s->fd * s->h,
					 1 / sqrt((double)s->fd));
			continue;
		}
		y->wr = ts_param(st, l, "router", G_DECAY, s->h * s->E, 1 / sqrt(h));
		if (s->S) {
			const int64_t fs = s->S * s->f;
			y->ws1 = ts_param(st, l, "shared.w1", G_DECAY, s->h * 2 * fs, 1 / sqrt(h));
			y->ws2 = ts_param(st, l, "shared.w2", G_DECAY, fs * s->h,
					  1 / sqrt((double)fs));
		}
		y->we1 = ts_param(st, l, "experts.w1", G_EXPERT, s->El * s->h * 2 * s->f,
				  1 / sqrt(h));
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

/* ---- buffers and launches ---- */

#define ZERO_CHUNK ((size_t)4 << 20) /* bytes of zeros uploaded at a time */

static void *ts_buf(ts_state *st, int64_t n, size_t esize)
{
	if (st->rc)
		return NULL;
	if (st->nbufs == st->capbufs) {
		int cap = st->capbufs ? 2 * st->capbufs : 256;
		void **b = realloc(st->bufs, (size_t)cap * sizeof *b);
		if (!b) {
			st->rc = mb_err(MB_ERR_NOMEM,
					"train_step: out of memory for the buffer list");
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
	if (!st->zeros && !(st->zeros = calloc(1, ZERO_CHUNK))) {
		st->rc = mb_err(MB_ERR_NOMEM, "train_step: out of host memory");
		return NULL;
	}
	for (size_t at = 0; at < bytes && !st->rc; at += ZERO_CHUNK) {
		const size_t n1 = bytes - at < ZERO_CHUNK ? bytes - at : ZERO_CHUNK;
		st->rc = mb_dev_upload(st->be, st->dev, (char *)p + at, st->zeros, n1);
	}
	return st->rc ? NULL : p;
}

static float *buf_f32(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(float)); }
static int32_t *buf_i32(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(int32_t)); }
static int64_t *buf_i64(ts_state *st, int64_t n) { return ts_buf(st, n, sizeof(int64_t)); }

static ts_item *ts_item_new(ts_state *st)
{
	if (st->rc)
		return NULL;
	if (st->nitems == st->capitems) {
		int cap = st->capitems ? 2 * st->capitems : 256;
		ts_item *it = realloc(st->items, (size_t)cap * sizeof *it);
		if (!it) {
			st->rc = mb_err(MB_ERR_NOMEM,
					"train_step: out of memory for the launch list");
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
	op.u.gmm.groups = s->El, op.u.gmm.rows = s->Rmax;
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

/* The op parameters that the forward and backward launches share. */
static mb_op op_attn(const ts_state *st, mb_op_kind kind)
{
	const ts_shape *s = &st->s;
	mb_op op = op_of(st, kind);
	op.u.attn.batch = s->B, op.u.attn.seq = s->seq, op.u.attn.heads = s->H;
	op.u.attn.kv_heads = s->mla ? s->H : s->Hkv, op.u.attn.d_qk = s->dqk, op.u.attn.d_v = s->dv;
	op.u.attn.scale = (float)(1.0 / sqrt((double)s->dqk)), op.u.attn.causal = 1;
	return op;
}

static mb_op op_kcat(const ts_state *st, mb_op_kind kind)
{
	mb_op op = op_of(st, kind);
	op.u.kcat.rows = st->s.T, op.u.kcat.heads = st->s.H;
	op.u.kcat.d_nope = st->s.dqk - st->s.rope, op.u.kcat.d_rope = st->s.rope;
	return op;
}

static mb_op op_router(const ts_state *st, mb_op_kind kind)
{
	const ts_shape *s = &st->s;
	mb_op op = op_of(st, kind);
	op.u.router.tokens = s->T, op.u.router.experts = s->E, op.u.router.top_k = s->k;
	op.u.router.score = s->score, op.u.router.groups = s->G;
	return op;
}

static void a2a(ts_state *st, const void *send, void *recv, const int64_t *scount,
		const int64_t *rcount)
{
	mb_op op = op_of(st, MB_OP_ALLTOALLV);
	op.u.coll.comm = st->ep_comm;
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
	y->a1 = buf_f32(st, T * h), y->rstd1 = buf_f32(st, T);
	y->q = buf_f32(st, T * H * s->dqk), y->k = buf_f32(st, T * Hk * s->dqk);
	y->v = buf_f32(st, T * Hk * s->dv);
	y->o = buf_f32(st, T * H * s->dv), y->lse = buf_f32(st, T * H);
	norm(st, PH_OTHER, x, y->g1, y->a1, y->rstd1, T, h);
	if (s->ql) {
		y->cq = buf_f32(st, T * s->ql), y->cqn = buf_f32(st, T * s->ql);
		y->rstdq = buf_f32(st, T);
		lin(st, PH_ATTN, y->a1, y->wdq, y->cq, h, s->ql, 0);
		norm(st, PH_ATTN, y->cq, y->gq, y->cqn, y->rstdq, T, s->ql);
		lin(st, PH_ATTN, y->cqn, y->wuq, y->q, s->ql, H * s->dqk, 0);
	} else {
		lin(st, PH_ATTN, y->a1, y->wq, y->q, h, H * s->dqk, 0);
	}
	if (!s->mla) {
		lin(st, PH_ATTN, y->a1, y->wk, y->k, h, Hk * s->dqk, 0);
		lin(st, PH_ATTN, y->a1, y->wv, y->v, h, Hk * s->dv, 0);
	} else {
		y->ckv = buf_f32(st, T * s->kvl), y->ckvn = buf_f32(st, T * s->kvl);
		y->rstdkv = buf_f32(st, T);
		y->kn = buf_f32(st, T * H * dn), y->kr = buf_f32(st, T * s->rope);
		lin(st, PH_ATTN, y->a1, y->wdkv, y->ckv, h, s->kvl, 0);
		norm(st, PH_ATTN, y->ckv, y->gkv, y->ckvn, y->rstdkv, T, s->kvl);
		lin(st, PH_ATTN, y->ckvn, y->wuk, y->kn, s->kvl, H * dn, 0);
		lin(st, PH_ATTN, y->ckvn, y->wuv, y->v, s->kvl, H * s->dv, 0);
		if (s->rope)
			lin(st, PH_ATTN, y->a1, y->wkr, y->kr, h, s->rope, 0);
		mb_op op = op_kcat(st, MB_OP_KCAT);
		emit(st, PH_ATTN, &op, IN(y->kn, y->kr), OUT(y->k));
	}
	mb_op op = op_attn(st, MB_OP_ATTN_FWD);
	emit(st, PH_ATTN, &op, IN(y->q, y->k, y->v), OUT(y->o, y->lse));
	y->hres = buf_f32(st, T * h);
	lin(st, PH_ATTN, y->o, y->wo, y->hres, H * s->dv, h, 0);
	add(st, PH_OTHER, x, y->hres, T * h);
}

/* The dense SwiGLU FFN (a dense layer's, or the shared experts') of A2 into
 * out (beta 1 adds). */
static void ts_dense_fwd(ts_state *st, ts_layer *y, int w1, int w2, int64_t ffn, float *out,
			 float beta)
{
	const int64_t T = st->s.T, h = st->s.h;
	y->gu = buf_f32(st, T * 2 * ffn), y->act = buf_f32(st, T * ffn);
	lin(st, PH_FFN, y->a2, w1, y->gu, h, 2 * ffn, 0);
	swiglu(st, 0, T, ffn, y->gu, NULL, y->act);
	lin(st, PH_FFN, y->act, w2, out, ffn, h, beta);
}

static void ts_moe_fwd(ts_state *st, ts_layer *y, float *out)
{
	const ts_shape *s = &st->s;
	const int64_t T = s->T, h = s->h, E = s->E, k = s->k, f = s->f, W = s->ep;
	const int64_t R = s->Rmax; /* rows of the grouped GEMMs */
	y->logits = buf_f32(st, T * E), y->w = buf_f32(st, T * k), y->scores = buf_f32(st, T * E);
	y->idx = buf_i32(st, T * k), y->pos = buf_i32(st, T * k), y->off = buf_i64(st, E + 1);
	y->xs = buf_f32(st, s->P * h), y->ys = buf_f32(st, s->P * h);
	y->gue = buf_f32(st, R * 2 * f), y->acte = buf_f32(st, R * f);
	lin(st, PH_FFN, y->a2, y->wr, y->logits, h, E, 0);
	mb_op op = op_router(st, MB_OP_ROUTER);
	emit(st, PH_FFN, &op, IN(y->logits), OUT(y->idx, y->w, y->scores));
	op = op_perm(st, MB_OP_PERMUTE, T, E, k, 0);
	emit(st, PH_FFN, &op, IN(y->a2, y->idx), OUT(y->xs, y->off, y->pos));
	const float *gx = y->xs; /* the grouped GEMMs' rows and offsets */
	const int64_t *goff = y->off;
	float *gy = y->ys;
	if (s->ep > 1) {
		y->off_h = calloc((size_t)(E + 1 + 2 * E + 2 * W), sizeof(int64_t));
		if (!y->off_h && !st->rc)
			st->rc = mb_err(MB_ERR_NOMEM,
					"train_step: out of host memory for EP counts");
		if (y->off_h) {
			y->cnt_send_h = y->off_h + E + 1, y->cnt_recv_h = y->cnt_send_h + E;
			y->send_rows = y->cnt_recv_h + E, y->recv_rows = y->send_rows + W;
		}
		y->cnt_send = buf_i64(st, E), y->cnt_recv = buf_i64(st, E);
		y->xr = buf_f32(st, R * h), y->idx_r = buf_i32(st, R), y->xs2 = buf_f32(st, R * h);
		y->off2 = buf_i64(st, s->El + 2), y->pos2 = buf_i32(st, R);
		y->ys2 = buf_f32(st, R * h), y->yr = buf_f32(st, R * h);
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
		y->a2 = buf_f32(st, T * h), y->rstd2 = buf_f32(st, T);
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
	mb_op op = op_attn(st, MB_OP_ATTN_BWD);
	emit(st, PH_ATTN, &op, IN(st->d_o, y->q, y->k, y->v, y->o, y->lse),
	     OUT(st->dq, st->dk, st->dv));
	/* the query's path first: it writes dA (beta 0), the others add to it */
	if (s->ql) {
		lin_bwd(st, PH_ATTN, y->cqn, y->wuq, st->dq, st->dcqn, 0, s->ql, H * s->dqk);
		norm_bwd(st, PH_ATTN, st->dcqn, y->cq, y->gq, y->rstdq, st->dcq, 0, T, s->ql);
		lin_bwd(st, PH_ATTN, y->a1, y->wdq, st->dcq, st->da, 0, h, s->ql);
	} else {
		lin_bwd(st, PH_ATTN, y->a1, y->wq, st->dq, st->da, 0, h, H * s->dqk);
	}
	if (!s->mla) {
		lin_bwd(st, PH_ATTN, y->a1, y->wk, st->dk, st->da, 1, h, Hk * s->dqk);
		lin_bwd(st, PH_ATTN, y->a1, y->wv, st->dv, st->da, 1, h, Hk * s->dv);
	} else {
		op = op_kcat(st, MB_OP_KCAT_BWD);
		emit(st, PH_ATTN, &op, IN(st->dk), OUT(st->dkn, st->dkr));
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
	const int64_t R = s->Rmax;
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
		emit(st, PH_FFN, &op, IN(st->dyr, y->ys2, y->pos2, st->ones),
		     OUT(st->dys2, st->dw2));
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
	op = op_router(st, MB_OP_ROUTER_BWD);
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
	if (st->dp_comm && st->n_sync < st->n_all) { /* the routed experts' replicas */
		mb_op op = op_of(st, MB_OP_ALLREDUCE);
		op.dtype = MB_FP32;
		op.u.coll.comm = st->dp_comm;
		op.u.coll.count = st->n_all - st->n_sync;
		emit(st, PH_COMM, &op, IN(NULL), OUT(st->grad + st->n_sync));
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
		const uint64_t stream = S_PARAM + (uint64_t)i, first = (uint64_t)t->first;
		for (int64_t j = 0; j < t->n; j++) {
			const double u = mb_rand_uniform(st->seed, stream, first + (uint64_t)j);
			host[j] = t->init == 0 ? 1.0f : (float)((2.0 * u - 1.0) * t->init);
		}
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
	const int64_t T = s->T, h = s->h, H = s->H, R = s->Rmax;
	const int64_t Hk = s->mla ? H : s->Hkv;
	/* d(act) of a dense FFN, the shared experts or the routed experts */
	const int64_t dact = max64(max64(s->Ld ? T * s->fd : 1, T * s->S * s->f),
				   s->Ld < s->L ? R * s->f : 1);
	st->param = buf_f32(st, st->n_all), st->grad = buf_f32(st, st->n_all);
	st->adam_m = buf_f32(st, st->n_all), st->adam_v = buf_f32(st, st->n_all);
	st->x = calloc((size_t)s->L + 1, sizeof *st->x);
	if (!st->x)
		return mb_err(MB_ERR_NOMEM, "train_step: out of host memory");
	for (int64_t l = 0; l <= s->L; l++)
		st->x[l] = buf_f32(st, T * h);
	st->ids = buf_i32(st, T), st->tgt = buf_i32(st, T);
	st->xf = buf_f32(st, T * h), st->rstdf = buf_f32(st, T), st->loss = buf_f32(st, 1);
	st->logits = buf_f32(st, T * s->V), st->dlogits = buf_f32(st, T * s->V);
	st->g = buf_f32(st, T * h), st->dxf = buf_f32(st, T * h), st->da = buf_f32(st, T * h);
	st->d_o = buf_f32(st, T * H * s->dv), st->dq = buf_f32(st, T * H * s->dqk);
	st->dk = buf_f32(st, T * Hk * s->dqk), st->dv = buf_f32(st, T * Hk * s->dv);
	if (s->mla) {
		st->dcqn = buf_f32(st, T * s->ql), st->dcq = buf_f32(st, T * s->ql);
		st->dckvn = buf_f32(st, T * s->kvl), st->dckv = buf_f32(st, T * s->kvl);
		st->dkn = buf_f32(st, T * H * (s->dqk - s->rope));
		st->dkr = buf_f32(st, T * s->rope);
	}
	st->dact = buf_f32(st, dact), st->dgu = buf_f32(st, 2 * dact);
	if (s->Ld < s->L) {
		st->dys = buf_f32(st, s->P * h), st->dxs = buf_f32(st, s->P * h);
		st->dw = buf_f32(st, s->P), st->dlr = buf_f32(st, T * s->E);
	}
	if (s->ep > 1 && s->Ld < s->L) {
		st->dyr = buf_f32(st, R * h), st->dys2 = buf_f32(st, R * h);
		st->dxs2 = buf_f32(st, R * h), st->dxr = buf_f32(st, R * h);
		st->dw2 = buf_f32(st, R), st->ones = buf_f32(st, R);
		st->ones_h = malloc((size_t)s->ep * sizeof *st->ones_h);
		st->idx_r_h = malloc((size_t)R * sizeof *st->idx_r_h);
		float *one = malloc((size_t)R * sizeof *one);
		if (!st->ones_h || !st->idx_r_h || !one) {
			free(one);
			return mb_err(MB_ERR_NOMEM, "train_step: out of host memory for EP");
		}
		for (int64_t i = 0; i < s->ep; i++)
			st->ones_h[i] = 1;
		for (int64_t i = 0; i < R; i++)
			one[i] = 1.0f;
		if (!st->rc)
			st->rc = mb_dev_upload(st->be, st->dev, st->ones, one,
					       (size_t)R * sizeof *one);
		free(one);
	}
	st->red = ts_buf(st, max64(LOSS_CAP, 8 * s->W), sizeof(double)); /* verify's sums */
	st->loss_hist = calloc(LOSS_CAP, sizeof *st->loss_hist);
	if (!st->loss_hist)
		return mb_err(MB_ERR_NOMEM, "train_step: out of host memory");
	return st->rc;
}

/* The EP count exchange, planned once: one row of E/ep int64 counts to and
 * from each rank of the EP group. */
static int ts_plan_counts(ts_state *st)
{
	mb_op op = op_of(st, MB_OP_ALLTOALLV);
	op.u.coll.comm = st->ep_comm;
	op.u.coll.row_bytes = st->s.El * (int64_t)sizeof(int64_t);
	op.u.coll.capacity = st->s.ep;
	return mb_dev_plan(st->be, st->dev, &op, &st->cnt_plan);
}

/* ---- build, run, free ---- */

int mb_ts_graph_build(ts_state *st)
{
	int rc = ts_tensors(st);
	if (!rc)
		rc = ts_buffers(st);
	if (!rc)
		rc = ts_init_data(st);
	if (!rc && st->s.ep > 1)
		rc = ts_plan_counts(st);
	if (rc)
		return rc;
	ts_forward(st);
	ts_backward(st);
	ts_update(st);
	free(st->zeros);
	st->zeros = NULL;
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
	const int64_t W = s->ep, El = s->El, E = s->E;
	int rc = mb_dev_download(st->be, st->dev, y->off_h, y->off,
				 (size_t)(E + 1) * sizeof(int64_t));
	if (rc)
		return rc;
	for (int64_t r = 0; r < W; r++) {
		y->send_rows[r] = y->off_h[(r + 1) * El] - y->off_h[r * El];
		for (int64_t e = 0; e < El; e++)
			y->cnt_send_h[r * El + e] = y->off_h[r * El + e + 1] - y->off_h[r * El + e];
	}
	rc = mb_dev_upload(st->be, st->dev, y->cnt_send, y->cnt_send_h,
			   (size_t)E * sizeof(int64_t));
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
				return mb_err(MB_ERR_INTERNAL,
					      "train_step: rank %lld sends %lld rows "
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

int mb_ts_graph_exec(ts_state *st, int lo, int hi, double *phase_s)
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

void mb_ts_graph_free(ts_state *st)
{
	for (int i = 0; i < st->nitems; i++)
		mb_dev_plan_free(st->be, st->dev, st->items[i].plan);
	mb_dev_plan_free(st->be, st->dev, st->cnt_plan);
	for (int i = 0; i < st->nbufs; i++)
		mb_dev_free(st->be, st->dev, st->bufs[i]);
	for (int64_t l = 0; st->lay && l < st->s.L; l++)
		free(st->lay[l].off_h);
	free(st->items), free(st->bufs), free(st->t), free(st->lay), free(st->x);
	free(st->ones_h), free(st->idx_r_h), free(st->loss_hist), free(st->zeros);
	st->zeros = NULL;
	st->items = NULL, st->bufs = NULL, st->t = NULL, st->lay = NULL, st->x = NULL;
	st->ones_h = NULL, st->idx_r_h = NULL, st->loss_hist = NULL;
	st->nitems = st->nbufs = st->nt = 0;
	st->cnt_plan = NULL;
}
