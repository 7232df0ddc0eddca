/* ref.h: seeded data generation and fp64 host reference kernels.
 *
 * Data: element i of a tensor is a pure function of (seed, stream, i), so
 * every backend, rank and test sees the same numbers without sharing files,
 * and any element can be regenerated alone. The generator is splitmix64
 * (Steele, Lea, Flood 2014) run in counter mode: the output for index i is
 * the splitmix64 output at state key(seed, stream) + (i+1)*golden.
 *
 * Reference: plain fp64 loops for the MoE FFN (router, SwiGLU experts,
 * weighted combine) forward and backward, written independently of every
 * backend (no BLAS, no backend code). They read fp32 inputs, compute in
 * double, and are parallelised with OpenMP over output elements only, so
 * every value is summed in a fixed order whatever the thread count.
 *
 * Shapes follow backend.h: x [tokens][hidden], wr [hidden][experts],
 * w1 [experts][hidden][2*ffn] (gate columns, then up columns),
 * w2 [experts][ffn][hidden], dy [tokens][hidden]; all row-major.
 */
#ifndef MB_REF_H
#define MB_REF_H

#include "../harness/mb.h"

#include "../hardware/backend.h"

/* ---- seeded data ---- */

/* 64 random bits for element index of tensor stream under seed. */
uint64_t mb_rand_u64(uint64_t seed, uint64_t stream, uint64_t index);
/* A double uniform in [0, 1) (53 bits) for the same element. */
double mb_rand_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* x[i] = uniform in [-a, a) for element i of (seed, stream), i in [0, n). */
void mb_rand_fill(float *x, size_t n, uint64_t seed, uint64_t stream, double a);
/* The same for elements first .. first+n-1 of the stream: x[i] is element
 * first + i, so a slice of a tensor can be made without the whole. */
void mb_rand_fill_at(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t first,
		     double a);

/* ---- routing ---- */

/* The top k of v[0..n), best first, ties to the lower index (the rule every
 * backend follows) into idx[0..k); key is scratch for k doubles. With
 * groups > 1 (MoGE; n and k multiples of groups) the top k/groups of each of
 * the groups equal contiguous blocks of v instead, group by group, as
 * backend.h's ROUTER op chooses; 0 or 1 = ungrouped. */
void mb_ref_topk(const double *v, int64_t n, int64_t k, int64_t groups, int32_t *idx,
		 double *key);
/* 1 if idx[0..k) is a top-k of scores + bias (bias may be NULL) within tol
 * under the grouping of mb_ref_topk: in range (in its own group), distinct,
 * best first, and no unchosen expert above a chosen one of the same group by
 * more than tol; *lo, *hi get the worst chosen and best unchosen value of
 * the group closest to failing (the one with the least lo - hi). */
int mb_ref_topk_valid(const double *scores, const float *bias, int64_t experts, int64_t groups,
		      const int32_t *idx, int64_t k, double tol, double *lo, double *hi);
/* A router bias [experts] that gives expert e about a 1/(e+1)^skew share of
 * the top-k choices over scores [n][experts] (method in ref.c); with
 * groups > 1 the Zipf law holds within each group (rank e mod experts/groups),
 * since grouped routing fixes every group's total. */
int mb_ref_skew_bias(const double *scores, int64_t n, int64_t experts, int64_t top_k,
		     int64_t groups, double skew, float *bias) MB_MUST_CHECK;

/* ---- reference MoE FFN ---- */

/* The problem: shapes and the fp32 host inputs (not owned). */
typedef struct mb_ref_moe {
	int64_t tokens, hidden, ffn, experts, top_k;
	mb_score_fn score;
	const float *x, *wr, *w1, *w2, *dy;
} mb_ref_moe;

/* One routed (token, expert) pair fed to mb_ref_expert. */
typedef struct mb_ref_row {
	int64_t token; /* row of x and dy */
	int64_t j;     /* which of the token's top_k choices it is */
	int64_t slot;  /* row of the caller's y and dx arrays this pair adds into */
	double w;      /* its routing weight */
} mb_ref_row;

/* logits[0..experts) = x[t] . wr. */
void mb_ref_logits(const mb_ref_moe *m, int64_t t, double *logits);
/* scores = softmax(logits) (max subtracted) or sigmoid(logits); may alias. */
void mb_ref_scores(mb_score_fn f, const double *logits, int64_t experts, double *scores);
/* w[j] = scores[idx[j]] / sum over the k chosen scores (1/k if that sum is 0). */
void mb_ref_topk_weights(const double *scores, const int32_t *idx, int64_t top_k, double *w);
/* d(logits) of one token from d(w), through the renormalisation and the
 * scoring function (bias has no gradient); the math is in ref.c. */
void mb_ref_router_bwd(mb_score_fn f, int64_t experts, int64_t top_k, const double *scores,
		       const int32_t *idx, const double *dw, double *dlogits);
/* dx[0..hidden) += wr . dlogits (the router's share of d(x) for one token). */
void mb_ref_router_dx(const mb_ref_moe *m, const double *dlogits, double *dx);
/* dwr [hidden][experts] = x^T . dlogits, dlogits [tokens][experts]. */
void mb_ref_router_dwr(const mb_ref_moe *m, const double *dlogits, double *dwr);

/* Expert e's SwiGLU FFN forward and backward over rows[0..nr), with
 * d(output of pair r) = rows[r].w * dy[token]:
 *   y[slot] += w * o_r;  dw[r] = dy[token] . o_r;  dx[slot] += d(x) of the FFN;
 *   dw1 [hidden][2*ffn] and dw2 [ffn][hidden] = expert e's weight gradients
 *   from these rows (overwritten; either may be NULL).
 * y, dx are indexed by slot with hidden columns. MB_ERR_NOMEM on failure. */
int mb_ref_expert(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr, double *y,
		  double *dx, double *dw, double *dw1, double *dw2) MB_MUST_CHECK;
/* One entry dW1[e][i][c] from rows[0..nr) (all of expert e's pairs). */
double mb_ref_dw1_entry(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr,
			int64_t i, int64_t c);
/* One entry dW2[e][c][o] from rows[0..nr) (all of expert e's pairs). */
double mb_ref_dw2_entry(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr,
			int64_t c, int64_t o);

/* Group the pairs (t, j) of the listed tokens by expert idx[t*top_k + j]:
 * rows[start[e]..start[e+1]) are expert e's, in (t, j) order, with
 * slot = slot_of[t] and weight w[t*top_k + j]. Tokens with slot_of[t] < 0 are
 * left out; slot_of NULL lists every token with slot t. rows holds up to
 * tokens*top_k entries, start experts+1. Every idx must be in 0..experts-1. */
void mb_ref_group(const mb_ref_moe *m, const int32_t *idx, const double *w,
		  const int64_t *slot_of, mb_ref_row *rows, int64_t *start);

/* The whole layer, forward and backward, for the listed tokens (slot_of as in
 * mb_ref_group; nslots rows of output) under the given routing: idx
 * [tokens][top_k] (any valid choice, e.g. the device's), its fp64 weights w
 * and fp64 scores [tokens][experts]. Writes y, dx [nslots][hidden] (dx
 * includes the router's share) and dlogits [nslots][experts]; dw1 and dw2
 * (NULL to skip) get every expert's weight gradients from the listed tokens,
 * the true ones only when every token is listed. MB_ERR_NOMEM on failure. */
int mb_ref_moe_tokens(const mb_ref_moe *m, const int32_t *idx, const double *w,
		      const double *scores, const int64_t *slot_of, int64_t nslots, double *y,
		      double *dx, double *dlogits, double *dw1, double *dw2) MB_MUST_CHECK;

#endif
