/* gmm_check.c: the gmm suite's verify step against the fp64 reference. */
#include "../harness/mb.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmm_int.h"

/* ---- verify ----
 *
 * Every output is compared with the fp64 reference (ref.c) evaluated with
 * the device's own routing: near-ties in the top-k can make fp32 and fp64
 * pick different experts, so the device's choice is first checked to be a
 * valid top-k of the fp64 scores (within 1e-5, bf16 1e-2, times
 * 1 + max |bias|; with MoGE groups, top_k/groups within each group, listed
 * group by group), and the reference then
 * follows it. Offsets must match the choice exactly.
 *
 * Error metric: |got - ref| / max(max |ref| over the values compared of that
 * tensor, MB_CHECK_SCALE_FLOOR = 1e-3), one scale per tensor so that a small element next to
 * big ones is not held to an impossible relative bound. The floor is the
 * attention suite's rule too: the inputs are of size ~1, so a tensor whose
 * reference stays below 1e-3 is cancellation, not signal (with top_k = 1
 * the renormalised weight is identically 1, so dlogits and dWr are exactly
 * zero and max |ref| is fp64 rounding noise). Every real tensor's scale is
 * far above it: 0.1 to 2.2 at the quick and tiny presets (seen by printing
 * the scales of `moebench run -s gmm` with top_k=2,1 and --model tiny).
 * Tolerance fp32 2e-3: each output goes through up to four chained fp32
 * matmuls with reductions of up to hidden, 2 ffn or (for dW) all of an
 * expert's rows; blocked fp32 sums err by about sqrt(n) eps, ~1e-5 of the
 * tensor's scale at the standard shapes, so 2e-3 leaves two orders of
 * magnitude of margin while one wrong element, a swapped group or a missed
 * term is off by far more (the fault tests add 1.0 to values of ~0.1-1).
 * bf16 (8-bit mantissa, eps 2^-8 per rounding of each stored operand): 3e-2.
 *
 * A full reference costs 9 pairs hidden ffn multiply-adds; above 2e9 (the
 * standard preset is ~3e10) a seeded sample is checked instead: Y, dX and
 * dlogits at 32 tokens (including the first token of each of the first
 * groups), 64 entries each of dW1 and dW2 spread over the experts (each
 * summed in fp64 over all of that expert's rows; the first entries are
 * element [e][0][0] of the first experts), and all of dWr recomputed from
 * the device's dlogits (which are themselves checked at the 32 tokens).
 * NaN or Inf anywhere in any downloaded output fails the check. */

#define TOL_FP32 2e-3
#define TOL_BF16 3e-2
#define FULL_MACS 2e9
#define SAMPLE_TOKENS 32
#define SAMPLE_ENTRIES 64

static const char method_full[] = "fp64 reference, all outputs";
static const char method_recv_sampled[] =
	"fp64 reference, sampled: Y, dX, dw at 32 received rows; 64 entries each of dW1 and "
	"dW2; offsets in full";
static const char method_sampled[] =
	"fp64 reference, sampled: Y, dX, dlogits at 32 tokens; 64 entries each of dW1 and "
	"dW2; dWr in full from the device's dlogits; routing, weights and offsets in full";

typedef struct gmm_cmp {
	mb_check *out;
	int64_t grp_rows, cols; /* per-expert tensor shape for messages, or 0 */
	double worst;
	char worst_what[200];
	char first_bad[200]; /* first routing, offset or non-finite failure */
} gmm_cmp;

/* What verify downloads and computes; freed in one place. */
typedef struct gmm_host {
	int32_t *idx;
	int64_t *off, *start, *slot_of, *tok, *label, *start2;
	float *w, *y, *dx, *dwr, *dl, *dw, *slice, *got;
	double *sc, *wref, *ry, *rdx, *rdl, *rdw, *rdw1, *rdw2, *rdwr, *dl64, *ref, *dwrow;
	mb_ref_row *rows, *rows2;
} gmm_host;

static void host_free(gmm_host *hs)
{
	void *p[] = {hs->idx, hs->off, hs->start, hs->slot_of, hs->tok, hs->label, hs->w,
		     hs->y, hs->dx, hs->dwr, hs->dl, hs->slice, hs->got, hs->sc, hs->wref,
		     hs->ry, hs->rdx, hs->rdl, hs->rdw1, hs->rdw2, hs->rdwr, hs->dl64,
		     hs->ref, hs->rows, hs->start2, hs->dw, hs->rdw, hs->dwrow, hs->rows2};
	for (size_t i = 0; i < MB_ARRAY_LEN(p); i++)
		free(p[i]);
}

static void bad(gmm_cmp *c, const char *fmt, ...) MB_PRINTF(2, 3);
static void bad(gmm_cmp *c, const char *fmt, ...)
{
	if (c->first_bad[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->first_bad, sizeof c->first_bad, fmt, ap);
	va_end(ap);
}

static void scan(gmm_cmp *c, const char *name, const float *x, int64_t n, int64_t base)
{
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(x[i])) {
			if (!c->out->nonfinite)
				bad(c, "%s[%lld] is %g", name, (long long)(base + i), (double)x[i]);
			c->out->nonfinite++;
		}
}

/* Compare n rows of width values: got row rows_at[s] (s if NULL) with ref row
 * s; label[s] (if given) names the value in messages. The scale is max |ref|,
 * but at least MB_CHECK_SCALE_FLOOR. */
static void cmp_rows(gmm_cmp *c, const char *name, const float *got, const int64_t *rows_at,
		     const double *ref, int64_t n, int64_t width, const int64_t *label)
{
	mb_check *o = c->out;
	double scale = MB_CHECK_SCALE_FLOOR;
	for (int64_t i = 0; i < n * width; i++)
		scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
	for (int64_t s = 0; s < n; s++) {
		const int64_t row = rows_at ? rows_at[s] : s;
		for (int64_t i = 0; i < width; i++) {
			const double g = got[row * width + i], r = ref[s * width + i];
			const double d = fabs(g - r), rel = d / scale;
			o->checked++;
			o->mismatched += !(rel <= o->tolerance);
			o->max_abs_err = d > o->max_abs_err ? d : o->max_abs_err;
			o->max_rel_err = rel > o->max_rel_err ? rel : o->max_rel_err;
			if (isnan(rel) ? !isnan(c->worst) : rel > c->worst) {
				/* name the element: [row][col], or [expert][row][col] */
				const int64_t at = label ? label[s] : row * width + i;
				const int64_t cols = c->cols ? c->cols : width;
				char where[64];
				if (c->grp_rows)
					snprintf(where, sizeof where, "[%lld][%lld][%lld]",
						 (long long)(at / cols / c->grp_rows),
						 (long long)(at / cols % c->grp_rows),
						 (long long)(at % cols));
				else
					snprintf(where, sizeof where, "[%lld][%lld]",
						 (long long)(at / cols), (long long)(at % cols));
				c->worst = rel;
				snprintf(c->worst_what, sizeof c->worst_what,
					 "%s%s: got %.7g, reference %.7g", name, where, g, r);
			}
		}
	}
}

static int vf_fetch(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const gmm_shape *s = &st->s;
	const size_t T = (size_t)s->T, E = (size_t)s->E, K = (size_t)s->k, h = (size_t)s->h;
	const int recv = GMM_RECV(s); /* no router: dw instead of dlogits and dWr */
	const size_t E_r = recv ? 0 : E;
	hs->idx = malloc(T * K * sizeof *hs->idx);
	hs->off = malloc((E + 1) * sizeof *hs->off);
	hs->w = malloc(T * K * sizeof *hs->w);
	hs->dl = malloc((T * E_r + 1) * sizeof *hs->dl);
	hs->dw = malloc(T * K * sizeof *hs->dw);
	hs->y = malloc(T * h * sizeof *hs->y);
	hs->dx = malloc(T * h * sizeof *hs->dx);
	hs->dwr = malloc((h * E_r + 1) * sizeof *hs->dwr);
	hs->sc = malloc((T * E_r + 1) * sizeof *hs->sc);
	hs->wref = malloc(T * K * sizeof *hs->wref);
	hs->rows = malloc(T * K * sizeof *hs->rows);
	hs->start = malloc((E + 1) * sizeof *hs->start);
	if (!hs->idx || !hs->off || !hs->w || !hs->dl || !hs->dw || !hs->y || !hs->dx ||
	    !hs->dwr || !hs->sc || !hs->wref || !hs->rows || !hs->start)
		return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory");
	int rc = mb_dev_download(st->be, st->dev, hs->idx, st->buf[B_IDX], T * K * 4);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, hs->off, st->buf[B_OFF], (E + 1) * 8);
	if (!rc)
		rc = mb_dev_download(st->be, st->dev, hs->w, st->buf[B_W], T * K * 4);
	if (!rc && !recv)
		rc = mb_dev_download(st->be, st->dev, hs->dl, st->buf[B_DLOGITS], T * E * 4);
	if (!rc && recv)
		rc = mb_dev_download(st->be, st->dev, hs->dw, st->buf[B_DW], T * K * 4);
	if (!rc)
		rc = mb_gmm_fetch(st, B_Y, 0, T * h, hs->y);
	if (!rc)
		rc = mb_gmm_fetch(st, B_DX, 0, T * h, hs->dx);
	if (!rc && !recv)
		rc = mb_gmm_fetch(st, B_DWR, 0, h * E, hs->dwr);
	if (rc)
		return rc;
	scan(c, "w", hs->w, (int64_t)(T * K), 0);
	scan(c, "Y", hs->y, (int64_t)(T * h), 0);
	scan(c, "dX", hs->dx, (int64_t)(T * h), 0);
	if (recv) {
		scan(c, "dw", hs->dw, (int64_t)(T * K), 0);
		return 0;
	}
	scan(c, "dlogits", hs->dl, (int64_t)(T * E), 0);
	scan(c, "dWr", hs->dwr, (int64_t)(h * E), 0);
	return 0;
}

/* The first choice j of one token's idx[0..k) outside its MoGE group
 * j / (k/G), or -1 (always -1 when ungrouped). */
static int64_t vf_out_of_group(const gmm_shape *s, const int32_t *idx)
{
	for (int64_t j = 0; s->G > 1 && j < s->k; j++)
		if (idx[j] / (s->E / s->G) != j / (s->k / s->G))
			return j;
	return -1;
}

/* Group the pairs by expert (hs->rows, hs->start) and check the device's
 * offsets against that grouping. */
static void vf_offsets(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const mb_ref_moe m = mb_gmm_problem(st);
	mb_ref_group(&m, hs->idx, hs->wref, NULL, hs->rows, hs->start);
	for (int64_t e = 0; e <= st->s.E; e++) {
		c->out->checked++;
		if (hs->off[e] != hs->start[e]) {
			c->out->mismatched++;
			bad(c, "offsets[%lld] = %lld, the routing gives %lld", (long long)e,
			    (long long)hs->off[e], (long long)hs->start[e]);
		}
	}
}

/* The device's routing against fp64 scores. Returns 1 if idx is unusable
 * (out of range), so the reference cannot follow it. */
static int vf_routing(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->T, E = s->E, K = s->k;
	const mb_ref_moe m = mb_gmm_problem(st);
	mb_check *o = c->out;
	for (int64_t i = 0; i < T * K; i++)
		if (hs->idx[i] < 0 || hs->idx[i] >= E) {
			bad(c, "routing: idx[%lld][%lld] = %d is not an expert (0..%lld)",
			    (long long)(i / K), (long long)(i % K), hs->idx[i], (long long)E - 1);
			o->mismatched++;
			return 1;
		}
	if (GMM_RECV(s)) { /* received rows come routed: their weights are inputs */
		for (int64_t i = 0; i < T * K; i++)
			hs->wref[i] = hs->w[i];
		vf_offsets(st, hs, c);
		return 0;
	}
#pragma omp parallel for schedule(static)
	for (int64_t t = 0; t < T; t++) {
		mb_ref_logits(&m, t, hs->sc + t * E);
		mb_ref_scores(s->score, hs->sc + t * E, E, hs->sc + t * E);
		mb_ref_topk_weights(hs->sc + t * E, hs->idx + t * K, K, hs->wref + t * K);
	}
	double bmax = 0.0;
	for (int64_t e = 0; st->bias && e < E; e++)
		bmax = fabs(st->bias[e]) > bmax ? fabs(st->bias[e]) : bmax;
	const double tie = (s->dt == MB_FP32 ? 1e-5 : 1e-2) * (1.0 + bmax);
	for (int64_t t = 0; t < T; t++) {
		double lo, hi;
		o->checked++;
		if (!mb_ref_topk_valid(hs->sc + t * E, st->bias, E, s->G, hs->idx + t * K, K, tie,
				       &lo, &hi)) {
			o->mismatched++;
			const int64_t j = vf_out_of_group(s, hs->idx + t * K);
			if (j >= 0)
				bad(c, "routing: idx[%lld][%lld] = %d is not in group %lld of %lld "
				       "(choices are listed group by group)",
				    (long long)t, (long long)j, hs->idx[t * K + j],
				    (long long)(j / (K / s->G)), (long long)s->G);
			else if (s->G > 1)
				bad(c, "routing: token %lld's choice is not a top-%lld of each of %lld "
				       "groups of the fp64 scores (worst chosen %.7g, best unchosen "
				       "%.7g)",
				    (long long)t, (long long)(K / s->G), (long long)s->G, lo, hi);
			else
				bad(c, "routing: token %lld's choice is not a top-%lld of the fp64 "
				       "scores (worst chosen %.7g, best unchosen %.7g)",
				    (long long)t, (long long)K, lo, hi);
		}
	}
	vf_offsets(st, hs, c);
	cmp_rows(c, "w", hs->w, NULL, hs->wref, T, K, NULL);
	return 0;
}

/* Every entry of dW1 and dW2 against the reference's (hs->rdw1, rdw2). */
static int vf_dw_full(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const int64_t E = st->s.E, h = st->s.h, f = st->s.f;
	hs->slice = malloc((size_t)(E * h * 2 * f) * sizeof(float));
	if (!hs->slice)
		return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
	int rc = mb_gmm_fetch(st, B_DW1, 0, (size_t)(E * h * 2 * f), hs->slice);
	if (rc)
		return rc;
	scan(c, "dW1", hs->slice, E * h * 2 * f, 0);
	c->grp_rows = h;
	cmp_rows(c, "dW1", hs->slice, NULL, hs->rdw1, E * h, 2 * f, NULL);
	rc = mb_gmm_fetch(st, B_DW2, 0, (size_t)(E * f * h), hs->slice);
	if (rc)
		return rc;
	scan(c, "dW2", hs->slice, E * f * h, 0);
	c->grp_rows = f;
	cmp_rows(c, "dW2", hs->slice, NULL, hs->rdw2, E * f, h, NULL);
	c->grp_rows = 0;
	return 0;
}

static int vf_full(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->T, E = s->E, h = s->h, f = s->f;
	const mb_ref_moe m = mb_gmm_problem(st);
	hs->ry = malloc((size_t)(T * h) * sizeof(double));
	hs->rdx = malloc((size_t)(T * h) * sizeof(double));
	hs->rdl = malloc((size_t)(T * E) * sizeof(double));
	hs->rdwr = malloc((size_t)(h * E) * sizeof(double));
	hs->rdw1 = malloc((size_t)(E * h * 2 * f) * sizeof(double));
	hs->rdw2 = malloc((size_t)(E * f * h) * sizeof(double));
	if (!hs->ry || !hs->rdx || !hs->rdl || !hs->rdwr || !hs->rdw1 || !hs->rdw2)
		return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
	int rc = mb_ref_moe_tokens(&m, hs->idx, hs->wref, hs->sc, NULL, T, hs->ry, hs->rdx,
				   hs->rdl, hs->rdw1, hs->rdw2);
	if (rc)
		return rc;
	mb_ref_router_dwr(&m, hs->rdl, hs->rdwr);
	cmp_rows(c, "Y", hs->y, NULL, hs->ry, T, h, NULL);
	cmp_rows(c, "dX", hs->dx, NULL, hs->rdx, T, h, NULL);
	cmp_rows(c, "dlogits", hs->dl, NULL, hs->rdl, T, E, NULL);
	cmp_rows(c, "dWr", hs->dwr, NULL, hs->rdwr, h, E, NULL);
	return vf_dw_full(st, hs, c);
}

/* The sampled tokens, n = min(tokens, 32): the first token of each non-empty
 * group, up to n/2 of them (where a fault in a group's first row would show),
 * then seeded random ones. */
static int64_t vf_pick_tokens(const gmm_state *st, gmm_host *hs)
{
	const int64_t T = st->s.T, E = st->s.E, n = T < SAMPLE_TOKENS ? T : SAMPLE_TOKENS;
	int64_t got = 0;
	for (int64_t t = 0; t < T; t++)
		hs->slot_of[t] = -1;
	for (int64_t e = 0; e < E && got < n / 2; e++) {
		if (hs->start[e + 1] == hs->start[e])
			continue;
		int64_t t = hs->rows[hs->start[e]].token;
		if (hs->slot_of[t] < 0) {
			hs->slot_of[t] = got;
			hs->tok[got++] = t;
		}
	}
	for (uint64_t i = 0; got < n; i++) {
		int64_t t = (int64_t)(mb_rand_u64(st->seed, S_SAMPLE, i) % (uint64_t)T);
		if (i > 64 * (uint64_t)n) /* few tokens left unpicked: take them in order */
			for (t = 0; hs->slot_of[t] >= 0; t++)
				;
		if (hs->slot_of[t] < 0) {
			hs->slot_of[t] = got;
			hs->tok[got++] = t;
		}
	}
	return n;
}

/* Sampled dW1 (which = 0) or dW2 (which = 1) entries: reference from all of
 * the expert's rows, the device's values from per-expert slices (every slice
 * is also scanned for NaN/Inf). */
static int vf_dw_entries(const gmm_state *st, gmm_host *hs, gmm_cmp *c, int which)
{
	const gmm_shape *s = &st->s;
	const int64_t E = s->E, h = s->h, f = s->f;
	const int64_t rows = which ? f : h, cols = which ? h : 2 * f, per = rows * cols;
	const int b = which ? B_DW2 : B_DW1;
	const char *name = which ? "dW2" : "dW1";
	const mb_ref_moe m = mb_gmm_problem(st);
	const int64_t corners = E < 16 ? E : 16;
	for (int64_t n = 0; n < SAMPLE_ENTRIES; n++) {
		/* every expert in turn (at random when there are more than entries) */
		const uint64_t r = mb_rand_u64(st->seed, S_SAMPLE, (uint64_t)(1000000 + 2 * n + which));
		int64_t e = E <= SAMPLE_ENTRIES || n < corners ? n % E : (int64_t)(r % (uint64_t)E);
		int64_t i = 0, j = 0;
		if (n >= corners) {
			i = (int64_t)((r >> 20) % (uint64_t)rows);
			j = (int64_t)((r >> 42) % (uint64_t)cols);
		}
		hs->label[n] = e * per + i * cols + j;
	}
#pragma omp parallel for schedule(dynamic)
	for (int64_t n = 0; n < SAMPLE_ENTRIES; n++) {
		const int64_t e = hs->label[n] / per, i = hs->label[n] % per / cols,
			      j = hs->label[n] % cols;
		const mb_ref_row *er = hs->rows + hs->start[e];
		const int64_t nr = hs->start[e + 1] - hs->start[e];
		hs->ref[n] = which ? mb_ref_dw2_entry(&m, e, er, nr, i, j)
				   : mb_ref_dw1_entry(&m, e, er, nr, i, j);
	}
	for (int64_t e = 0; e < E; e++) {
		int rc = mb_gmm_fetch(st, b, (size_t)(e * per), (size_t)per, hs->slice);
		if (rc)
			return rc;
		scan(c, name, hs->slice, per, e * per);
		for (int64_t n = 0; n < SAMPLE_ENTRIES; n++)
			if (hs->label[n] / per == e)
				hs->got[n] = hs->slice[hs->label[n] % per];
	}
	c->grp_rows = rows;
	c->cols = cols;
	cmp_rows(c, name, hs->got, NULL, hs->ref, SAMPLE_ENTRIES, 1, hs->label);
	c->grp_rows = c->cols = 0;
	return 0;
}

static int vf_sampled(const gmm_state *st, gmm_host *hs, gmm_cmp *c)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->T, E = s->E, h = s->h, f = s->f;
	const mb_ref_moe m = mb_gmm_problem(st);
	const int64_t nt = T < SAMPLE_TOKENS ? T : SAMPLE_TOKENS;
	const size_t slice = (size_t)(h * 2 * f > f * h ? h * 2 * f : f * h);
	hs->slot_of = malloc((size_t)T * sizeof *hs->slot_of);
	hs->tok = malloc((size_t)nt * sizeof *hs->tok);
	hs->ry = malloc((size_t)(nt * h) * sizeof(double));
	hs->rdx = malloc((size_t)(nt * h) * sizeof(double));
	hs->rdl = malloc((size_t)(nt * E) * sizeof(double));
	hs->dl64 = malloc((size_t)(T * E) * sizeof(double));
	hs->rdwr = malloc((size_t)(h * E) * sizeof(double));
	hs->slice = malloc(slice * sizeof(float));
	hs->label = malloc(SAMPLE_ENTRIES * sizeof *hs->label);
	hs->got = malloc(SAMPLE_ENTRIES * sizeof *hs->got);
	hs->ref = malloc(SAMPLE_ENTRIES * sizeof *hs->ref);
	if (!hs->slot_of || !hs->tok || !hs->ry || !hs->rdx || !hs->rdl || !hs->dl64 ||
	    !hs->rdwr || !hs->slice || !hs->label || !hs->got || !hs->ref)
		return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
	vf_pick_tokens(st, hs);
	int rc = mb_ref_moe_tokens(&m, hs->idx, hs->wref, hs->sc, hs->slot_of, nt, hs->ry,
				   hs->rdx, hs->rdl, NULL, NULL);
	if (rc)
		return rc;
	cmp_rows(c, "Y", hs->y, hs->tok, hs->ry, nt, h, NULL);
	cmp_rows(c, "dX", hs->dx, hs->tok, hs->rdx, nt, h, NULL);
	cmp_rows(c, "dlogits", hs->dl, hs->tok, hs->rdl, nt, E, NULL);
	for (int64_t i = 0; i < T * E; i++)
		hs->dl64[i] = hs->dl[i];
	mb_ref_router_dwr(&m, hs->dl64, hs->rdwr);
	cmp_rows(c, "dWr", hs->dwr, NULL, hs->rdwr, h, E, NULL);
	rc = vf_dw_entries(st, hs, c, 0);
	if (!rc)
		rc = vf_dw_entries(st, hs, c, 1);
	return rc;
}

/* Received rows (ep > 1): the expert FFNs over the rows of the listed
 * tokens (slot_of as in mb_ref_group, NULL = all, nslots rows out): y, dx
 * [nslots][hidden] and dw [nslots] (one choice per row), and with dw1, dw2
 * (or NULL) every expert's weight gradients. */
static int vf_recv_ref(const gmm_state *st, gmm_host *hs, const int64_t *slot_of,
		       int64_t nslots, double *dw1, double *dw2)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->T, E = s->E, h = s->h, f = s->f;
	const mb_ref_moe m = mb_gmm_problem(st);
	hs->rows2 = malloc((size_t)T * sizeof *hs->rows2);
	hs->start2 = malloc((size_t)(E + 1) * sizeof *hs->start2);
	hs->dwrow = malloc((size_t)T * sizeof *hs->dwrow);
	hs->ry = calloc((size_t)(nslots * h), sizeof(double));
	hs->rdx = calloc((size_t)(nslots * h), sizeof(double));
	hs->rdw = malloc((size_t)nslots * sizeof(double));
	if (!hs->rows2 || !hs->start2 || !hs->dwrow || !hs->ry || !hs->rdx || !hs->rdw)
		return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
	mb_ref_group(&m, hs->idx, hs->wref, slot_of, hs->rows2, hs->start2);
	for (int64_t e = 0; e < E; e++) {
		const int64_t r0 = hs->start2[e];
		int rc = mb_ref_expert(&m, e, hs->rows2 + r0, hs->start2[e + 1] - r0, hs->ry,
				       hs->rdx, hs->dwrow + r0, dw1 ? dw1 + e * h * 2 * f : NULL,
				       dw2 ? dw2 + e * f * h : NULL);
		if (rc)
			return rc;
	}
	for (int64_t r = 0; r < hs->start2[E]; r++)
		hs->rdw[hs->rows2[r].slot] = hs->dwrow[r];
	return 0;
}

static int vf_recv(const gmm_state *st, gmm_host *hs, gmm_cmp *c, int full)
{
	const gmm_shape *s = &st->s;
	const int64_t T = s->T, E = s->E, h = s->h, f = s->f;
	int64_t nt = T;
	if (full) {
		hs->rdw1 = malloc((size_t)(E * h * 2 * f) * sizeof(double));
		hs->rdw2 = malloc((size_t)(E * f * h) * sizeof(double));
		if (!hs->rdw1 || !hs->rdw2)
			return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
	} else {
		nt = T < SAMPLE_TOKENS ? T : SAMPLE_TOKENS;
		const int64_t slice = h * 2 * f > f * h ? h * 2 * f : f * h;
		hs->slot_of = malloc((size_t)T * sizeof *hs->slot_of);
		hs->tok = malloc((size_t)nt * sizeof *hs->tok);
		hs->slice = malloc((size_t)slice * sizeof *hs->slice);
		hs->label = malloc(SAMPLE_ENTRIES * sizeof *hs->label);
		hs->got = malloc(SAMPLE_ENTRIES * sizeof *hs->got);
		hs->ref = malloc(SAMPLE_ENTRIES * sizeof *hs->ref);
		if (!hs->slot_of || !hs->tok || !hs->slice || !hs->label || !hs->got || !hs->ref)
			return mb_err(MB_ERR_NOMEM, "gmm verify: out of host memory for the reference");
		vf_pick_tokens(st, hs);
	}
	int rc = vf_recv_ref(st, hs, full ? NULL : hs->slot_of, nt, hs->rdw1, hs->rdw2);
	if (rc)
		return rc;
	const int64_t *at = full ? NULL : hs->tok;
	cmp_rows(c, "Y", hs->y, at, hs->ry, nt, h, NULL);
	cmp_rows(c, "dX", hs->dx, at, hs->rdx, nt, h, NULL);
	cmp_rows(c, "dw", hs->dw, at, hs->rdw, nt, 1, NULL);
	if (full)
		return vf_dw_full(st, hs, c);
	rc = vf_dw_entries(st, hs, c, 0);
	return rc ? rc : vf_dw_entries(st, hs, c, 1);
}

int mb_gmm_verify(void *state, mb_check *out)
{
	const gmm_state *st = state;
	const gmm_shape *s = &st->s;
	memset(out, 0, sizeof *out);
	out->tolerance = s->dt == MB_FP32 ? TOL_FP32 : TOL_BF16;
	const double macs = 9.0 * (double)s->P * (double)s->h * (double)s->f;
	const double ref_bytes = 8.0 * (3.0 * s->E * s->h * s->f + 2.0 * s->T * s->h +
					(double)s->T * s->E) +
				 4.0 * (2.0 * s->E * s->h * s->f);
	const int full = macs <= FULL_MACS && ref_bytes <= 2.0 * GIB;
	out->method = full ? method_full : GMM_RECV(s) ? method_recv_sampled : method_sampled;
	gmm_cmp c = {.out = out};
	gmm_host hs = {0};
	int rc = vf_fetch(st, &hs, &c);
	if (!rc && !vf_routing(st, &hs, &c))
		rc = GMM_RECV(s) ? vf_recv(st, &hs, &c, full)
		     : full     ? vf_full(st, &hs, &c)
				: vf_sampled(st, &hs, &c);
	host_free(&hs);
	if (rc)
		return rc;
	out->passed = out->mismatched == 0 && out->nonfinite == 0;
	if (out->nonfinite)
		snprintf(out->detail, sizeof out->detail, "%lld non-finite values; first: %s",
			 (long long)out->nonfinite, c.first_bad);
	else if (c.first_bad[0])
		mb_strlcpy(out->detail, c.first_bad, sizeof out->detail);
	else
		snprintf(out->detail, sizeof out->detail, "%lld of %lld values off; worst %s (rel %.2e)",
			 (long long)out->mismatched, (long long)out->checked, c.worst_what,
			 c.worst);
	return 0;
}
