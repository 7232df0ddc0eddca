/* ref_attn.h: fp64 reference self-attention, one row at a time.
 *
 * Plain loops in double over the fp32 inputs, no BLAS and no backend code,
 * written from the definition rather than from any kernel:
 *   s_ij = scale q_i . k_j (j <= i when causal), p_ij = exp(s_ij - lse_i),
 *   lse_i = log sum_j exp(s_ij), o_i = sum_j p_ij v_j;
 *   with dO given: D_i = dO_i . o_i, dp_ij = dO_i . v_j,
 *   ds_ij = p_ij (dp_ij - D_i), dq_i = scale sum_j ds_ij k_j,
 *   dk_j = scale sum_{h in group, i} ds_ij q_i, dv_j = sum_{h, i} p_ij dO_i.
 * Query head h reads kv head h / (heads / kv_heads). Layouts are backend.h's:
 * q, dout [batch][seq][heads][d], k, v [batch][seq][kv_heads][d].
 *
 * Every function computes one row serially, so callers parallelise over rows
 * and every value is summed in a fixed order.
 */
#ifndef MB_REF_ATTN_H
#define MB_REF_ATTN_H

#include "../harness/mb.h"

/* The problem: shapes and the fp32 host inputs (not owned). */
typedef struct mb_ref_attn {
	int64_t batch, seq, heads, kv_heads, d_qk, d_v;
	double scale;
	int causal;
	const float *q, *k, *v;
	const float *dout; /* d(O), same layout as O; only the backward reads it */
} mb_ref_attn;

/* Forward of query row i of (batch b, head h): p[0..seq) gets the row's
 * probabilities (0 for keys it does not see), o[0..d_v) its output; returns
 * its lse. */
double mb_ref_attn_row(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i, double *p,
		       double *o);

/* d(Q) of the same row, from the p and o mb_ref_attn_row gave: dq[0..d_qk).
 * Returns D_i = dO_i . o_i. */
double mb_ref_attn_row_dq(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i, const double *p,
			  const double *o, double *dq);

/* d(K) and d(V) of key row j of kv head kvh in batch b: dk[0..d_qk),
 * dv[0..d_v), summed over the query heads of its group and the queries that
 * see key j. Each query row's statistics come from the caller:
 * lse[(b*heads + h)*seq + i] and dsum[same] = D_i (from mb_ref_attn_row and
 * mb_ref_attn_row_dq, or the forward outputs under test). */
void mb_ref_attn_key(const mb_ref_attn *a, int64_t b, int64_t kvh, int64_t j, const double *lse,
		     const double *dsum, double *dk, double *dv);

#endif
