/* ref.c: seeded data and fp64 reference kernels (ref.h). */
#include "../harness/mb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

/* ---- seeded data ---- */

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t sm_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The per-tensor starting state; distinct streams of one seed and equal
 * streams of distinct seeds land far apart. */
static uint64_t sm_key(uint64_t seed, uint64_t stream)
{
	return sm_mix(sm_mix(seed + GOLDEN) ^ (stream * 0xd1b54a32d192ed03ull + GOLDEN));
}

uint64_t mb_rand_u64(uint64_t seed, uint64_t stream, uint64_t index)
{
	return sm_mix(sm_key(seed, stream) + (index + 1) * GOLDEN);
}

double mb_rand_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
	return (double)(mb_rand_u64(seed, stream, index) >> 11) * 0x1p-53;
}

void mb_rand_fill(float *x, size_t n, uint64_t seed, uint64_t stream, double a)
{
	mb_rand_fill_at(x, n, seed, stream, 0, a);
}

void mb_rand_fill_at(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t first, double a)
{
	const uint64_t key = sm_key(seed, stream);
	const double scale = 2.0 * a * 0x1p-53;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		double u = (double)(sm_mix(key + (first + i + 1) * GOLDEN) >> 11) * scale;
		x[i] = (float)(u - a);
	}
}

/* ---- routing ---- */

/* Ungrouped top k of v[e0..e0+n) into idx (absolute expert numbers). */
static void topk_block(const double *v, int64_t e0, int64_t n, int64_t k, int32_t *idx,
		       double *key)
{
	int64_t got = 0;
	for (int64_t e = e0; e < e0 + n; e++) {
		if (got == k && !(v[e] > key[k - 1]))
			continue;
		int64_t q = got < k ? got++ : k - 1;
		for (; q > 0 && v[e] > key[q - 1]; q--) {
			key[q] = key[q - 1];
			idx[q] = idx[q - 1];
		}
		key[q] = v[e];
		idx[q] = (int32_t)e;
	}
}

void mb_ref_topk(const double *v, int64_t n, int64_t k, int64_t groups, int32_t *idx,
		 double *key)
{
	const int64_t G = groups > 1 ? groups : 1, ng = n / G, kg = k / G;
	for (int64_t g = 0; g < G; g++)
		topk_block(v, g * ng, ng, kg, idx + g * kg, key);
}

/* mb_ref_topk_valid for one block: experts e0..e0+n-1, choice idx[0..k);
 * -1 if a chosen expert lies outside the block. */
static int topk_block_valid(const double *scores, const float *bias, int64_t e0, int64_t n,
			    const int32_t *idx, int64_t k, double tol, double *lo, double *hi)
{
	int ok = 1;
	double prev = INFINITY;
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int64_t j = 0; j < k; j++) {
		if (idx[j] < e0 || idx[j] >= e0 + n)
			return -1;
		const double v = scores[idx[j]] + (bias ? bias[idx[j]] : 0.0);
		ok &= v <= prev + tol; /* best first */
		prev = v;
		*lo = v < *lo ? v : *lo;
		for (int64_t q = 0; q < j; q++)
			ok &= idx[q] != idx[j];
	}
	for (int64_t e = e0; e < e0 + n; e++) {
		int chosen = 0;
		for (int64_t j = 0; j < k; j++)
			chosen |= idx[j] == e;
		const double v = scores[e] + (bias ? bias[e] : 0.0);
		if (!chosen && v > *hi)
			*hi = v;
	}
	return ok && !(*lo < *hi - tol);
}

int mb_ref_topk_valid(const double *scores, const float *bias, int64_t experts, int64_t groups,
		      const int32_t *idx, int64_t k, double tol, double *lo, double *hi)
{
	const int64_t G = groups > 1 ? groups : 1, ng = experts / G, kg = k / G;
	int ok = 1;
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int64_t g = 0; g < G; g++) {
		double l, h;
		int good = topk_block_valid(scores, bias, g * ng, ng, idx + g * kg, kg, tol, &l, &h);
		if (g == 0 || l - h < *lo - *hi) {
			*lo = l;
			*hi = h;
		}
		if (good < 0)
			return 0;
		ok &= good;
	}
	return ok;
}

/* Caps target shares at one pair per token (an expert cannot take a token
 * twice) and spreads the excess over the others in proportion. */
static void cap_targets(double *tgt, int64_t experts, double cap)
{
	for (int round = 0; round < 64; round++) {
		double excess = 0.0, open = 0.0;
		for (int64_t e = 0; e < experts; e++) {
			if (tgt[e] > cap) {
				excess += tgt[e] - cap;
				tgt[e] = cap;
			} else if (tgt[e] < cap) {
				open += tgt[e];
			}
		}
		if (excess <= 1e-9 || open <= 0.0)
			return;
		for (int64_t e = 0; e < experts; e++)
			if (tgt[e] < cap)
				tgt[e] += excess * tgt[e] / open;
	}
}

/* The skew bias, calibrated on the given scores. Targets: count_e =
 * n k (e+1)^-skew / sum, capped as above (with G groups: per group, over its
 * members r = 0..E/G-1 with n k/G pairs, e replaced by r throughout). Start from
 * b_e = -skew * sd * ln(e+1), sd the spread of the scores (exact for top-1 if
 * the scores had Gumbel noise of scale sd, where P(e) ~ exp(b_e / sd)), then
 * take 40 damped steps of b_e += sd/2 * (ln(target_e + 1) - ln(count_e + 1))
 * and keep the bias whose counts are closest to the targets in L1. */
int mb_ref_skew_bias(const double *scores, int64_t n, int64_t experts, int64_t top_k,
		     int64_t groups, double skew, float *bias)
{
	const int64_t E = experts, K = top_k, G = groups > 1 ? groups : 1, ng = E / G;
	double *tgt = malloc((size_t)(5 * E + K) * sizeof *tgt);
	int32_t *idx = malloc((size_t)K * sizeof *idx);
	if (!tgt || !idx) {
		free(tgt);
		free(idx);
		return mb_err(MB_ERR_NOMEM, "reference: out of memory for the skew bias");
	}
	double *b = tgt + E, *best = b + E, *v = best + E, *count = v + E, *key = count + E;
	double mean = 0.0, var = 0.0, best_err = INFINITY;
	for (int64_t i = 0; i < n * E; i++)
		mean += scores[i];
	mean /= (double)(n * E);
	for (int64_t i = 0; i < n * E; i++)
		var += (scores[i] - mean) * (scores[i] - mean);
	double sd = sqrt(var / (double)(n * E));
	sd = sd > 1e-6 ? sd : 1e-6;
	for (int64_t g = 0; g < G; g++) { /* each group: its K/G pairs per token, Zipf by rank */
		double norm = 0.0;
		for (int64_t r = 0; r < ng; r++)
			norm += tgt[g * ng + r] = pow((double)(r + 1), -skew);
		for (int64_t r = 0; r < ng; r++) {
			tgt[g * ng + r] *= (double)(n * (K / G)) / norm;
			best[g * ng + r] = b[g * ng + r] = -skew * sd * log((double)(r + 1));
		}
		cap_targets(tgt + g * ng, ng, (double)n);
	}
	for (int it = 0; it < 40; it++) {
		double err = 0.0;
		for (int64_t e = 0; e < E; e++)
			count[e] = 0.0;
		for (int64_t t = 0; t < n; t++) {
			for (int64_t e = 0; e < E; e++)
				v[e] = scores[t * E + e] + b[e];
			mb_ref_topk(v, E, K, G, idx, key);
			for (int64_t j = 0; j < K; j++)
				count[idx[j]] += 1.0;
		}
		for (int64_t e = 0; e < E; e++)
			err += fabs(count[e] - tgt[e]);
		if (err < best_err) {
			best_err = err;
			memcpy(best, b, (size_t)E * sizeof *b);
		}
		for (int64_t e = 0; e < E; e++)
			b[e] += 0.5 * sd * (log(tgt[e] + 1.0) - log(count[e] + 1.0));
	}
	for (int64_t e = 0; e < E; e++)
		bias[e] = (float)best[e];
	free(tgt);
	free(idx);
	return 0;
}

/* ---- router ---- */

void mb_ref_logits(const mb_ref_moe *m, int64_t t, double *logits)
{
	const float *x = m->x + t * m->hidden;
	for (int64_t e = 0; e < m->experts; e++)
		logits[e] = 0.0;
	for (int64_t i = 0; i < m->hidden; i++) {
		const float *wr = m->wr + i * m->experts;
		for (int64_t e = 0; e < m->experts; e++)
			logits[e] += (double)x[i] * wr[e];
	}
}

void mb_ref_scores(mb_score_fn f, const double *logits, int64_t experts, double *scores)
{
	if (f == MB_SCORE_SIGMOID) {
		for (int64_t e = 0; e < experts; e++)
			scores[e] = 1.0 / (1.0 + exp(-logits[e]));
		return;
	}
	double mx = logits[0], sum = 0.0;
	for (int64_t e = 1; e < experts; e++)
		mx = logits[e] > mx ? logits[e] : mx;
	for (int64_t e = 0; e < experts; e++)
		sum += scores[e] = exp(logits[e] - mx);
	for (int64_t e = 0; e < experts; e++)
		scores[e] /= sum;
}

void mb_ref_topk_weights(const double *scores, const int32_t *idx, int64_t top_k, double *w)
{
	double sum = 0.0;
	for (int64_t j = 0; j < top_k; j++)
		sum += scores[idx[j]];
	for (int64_t j = 0; j < top_k; j++)
		w[j] = sum > 0.0 ? scores[idx[j]] / sum : 1.0 / (double)top_k;
}

/* The gradient of the top-k weights with respect to the logits.
 *
 * Forward: s = f(l) over all experts (softmax or sigmoid); C = the chosen
 * experts c_1..c_k; S = sum_{c in C} s_c; w_j = s_{c_j} / S.
 * Given dw_j = dL/dw_j:
 *   dL/ds_e = sum_j dw_j (delta(e, c_j) - w_j) / S
 *           = (dw_e - sum_j dw_j w_j) / S   for e in C (dw_e the slot of e),
 *           = 0                            for e not in C.
 * Call that g_e. Then through the scoring function:
 *   softmax: ds_i/dl_e = s_i (delta(i, e) - s_e), so
 *            dL/dl_e = s_e (g_e - sum_i g_i s_i), the sum over C only; an
 *            unchosen expert gets -s_e sum_C g_i s_i, its share through the
 *            denominator. (That sum is sum_j dw_j w_j - sum_j dw_j w_j = 0,
 *            because renormalised softmax weights do not depend on the
 *            common denominator, so it vanishes up to rounding; it is kept
 *            so the formula stays the plain chain rule.)
 *   sigmoid: ds_e/dl_e = s_e (1 - s_e), so dL/dl_e = g_e s_e (1 - s_e), and
 *            unchosen experts get 0.
 * When S is 0 the weights were set to 1/k, a constant: the gradient is 0.
 * The bias used for the choice is a constant with no gradient. */
void mb_ref_router_bwd(mb_score_fn f, int64_t experts, int64_t top_k, const double *scores,
		       const int32_t *idx, const double *dw, double *dlogits)
{
	double S = 0.0, dot = 0.0;
	for (int64_t e = 0; e < experts; e++)
		dlogits[e] = 0.0;
	for (int64_t j = 0; j < top_k; j++)
		S += scores[idx[j]];
	if (!(S > 0.0))
		return;
	for (int64_t j = 0; j < top_k; j++)
		dot += dw[j] * scores[idx[j]] / S;
	if (f == MB_SCORE_SIGMOID) {
		for (int64_t j = 0; j < top_k; j++) {
			double s = scores[idx[j]];
			dlogits[idx[j]] += (dw[j] - dot) / S * s * (1.0 - s);
		}
		return;
	}
	double gs = 0.0;
	for (int64_t j = 0; j < top_k; j++)
		gs += (dw[j] - dot) / S * scores[idx[j]];
	for (int64_t e = 0; e < experts; e++)
		dlogits[e] = -scores[e] * gs;
	for (int64_t j = 0; j < top_k; j++)
		dlogits[idx[j]] += scores[idx[j]] * (dw[j] - dot) / S;
}

void mb_ref_router_dx(const mb_ref_moe *m, const double *dlogits, double *dx)
{
	for (int64_t i = 0; i < m->hidden; i++) {
		const float *wr = m->wr + i * m->experts;
		double s = 0.0;
		for (int64_t e = 0; e < m->experts; e++)
			s += dlogits[e] * wr[e];
		dx[i] += s;
	}
}

void mb_ref_router_dwr(const mb_ref_moe *m, const double *dlogits, double *dwr)
{
	const int64_t E = m->experts;
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < m->hidden; i++) {
		double *out = dwr + i * E;
		for (int64_t e = 0; e < E; e++)
			out[e] = 0.0;
		for (int64_t t = 0; t < m->tokens; t++) {
			double xi = m->x[t * m->hidden + i];
			for (int64_t e = 0; e < E; e++)
				out[e] += xi * dlogits[t * E + e];
		}
	}
}

/* ---- experts ---- */

static double silu(double g) { return g / (1.0 + exp(-g)); }

/* d silu(g)/dg = sigma(g) (1 + g (1 - sigma(g))) */
static double dsilu(double g)
{
	double s = 1.0 / (1.0 + exp(-g));
	return s * (1.0 + g * (1.0 - s));
}

#define REF_CHUNK 64 /* rows per pass: bounds scratch, keeps weight rows in cache */
#define REF_COLS 256 /* output columns per task in rows_times */

/* c[r][j] = sum_i a[r][i] b[i][j]: a [nr][k] double, b [k][n] fp32. */
static void rows_times(const double *a, int64_t nr, int64_t k, const float *b, int64_t n,
		       double *c)
{
	int64_t nblk = (n + REF_COLS - 1) / REF_COLS;
#pragma omp parallel for schedule(static)
	for (int64_t blk = 0; blk < nblk; blk++) {
		int64_t j0 = blk * REF_COLS, j1 = j0 + REF_COLS < n ? j0 + REF_COLS : n;
		for (int64_t r = 0; r < nr; r++)
			for (int64_t j = j0; j < j1; j++)
				c[r * n + j] = 0.0;
		for (int64_t i = 0; i < k; i++) {
			const float *brow = b + i * n;
			for (int64_t r = 0; r < nr; r++) {
				double ari = a[r * k + i];
				double *crow = c + r * n;
				for (int64_t j = j0; j < j1; j++)
					crow[j] += ari * brow[j];
			}
		}
	}
}

/* c[r][i] = sum_j a[r][j] b[i][j]: a [nr][n] double, b [k][n] fp32. */
static void rows_times_t(const double *a, int64_t nr, int64_t n, const float *b, int64_t k,
			 double *c)
{
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < k; i++) {
		const float *brow = b + i * n;
		for (int64_t r = 0; r < nr; r++) {
			const double *arow = a + r * n;
			double s = 0.0;
#pragma omp simd reduction(+ : s)
			for (int64_t j = 0; j < n; j++)
				s += arow[j] * brow[j];
			c[r * k + i] = s;
		}
	}
}

/* c[i][j] += sum_r a[r][i] b[r][j]: a [nr][k], b [nr][n], c [k][n]. */
static void rows_outer_add(const double *a, const double *b, int64_t nr, int64_t k, int64_t n,
			   double *c)
{
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < k; i++) {
		double *crow = c + i * n;
		for (int64_t r = 0; r < nr; r++) {
			double ari = a[r * k + i];
			const double *brow = b + r * n;
			for (int64_t j = 0; j < n; j++)
				crow[j] += ari * brow[j];
		}
	}
}

/* The forward and backward of one chunk of rows; see mb_ref_expert. */
static void expert_chunk(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr,
			 double *scratch, double *y, double *dx, double *dw, double *dw1,
			 double *dw2)
{
	const int64_t h = m->hidden, f = m->ffn;
	const float *w1 = m->w1 + e * h * 2 * f, *w2 = m->w2 + e * f * h;
	double *xr = scratch, *dor = xr + nr * h, *hh = dor + nr * h, *a = hh + nr * 2 * f;
	double *o = a + nr * f, *da = o + nr * h, *dgu = da + nr * f, *dxr = dgu + nr * 2 * f;

	for (int64_t r = 0; r < nr; r++) {
		const float *x = m->x + rows[r].token * h, *dy = m->dy + rows[r].token * h;
		for (int64_t i = 0; i < h; i++) {
			xr[r * h + i] = x[i];
			dor[r * h + i] = rows[r].w * dy[i]; /* d(output of this pair) */
		}
	}
	rows_times(xr, nr, h, w1, 2 * f, hh); /* [g | u] */
	for (int64_t r = 0; r < nr; r++)
		for (int64_t c = 0; c < f; c++)
			a[r * f + c] = silu(hh[r * 2 * f + c]) * hh[r * 2 * f + f + c];
	rows_times(a, nr, f, w2, h, o);
	for (int64_t r = 0; r < nr; r++) {
		const float *dy = m->dy + rows[r].token * h;
		double *yr = y + rows[r].slot * h, s = 0.0;
		for (int64_t i = 0; i < h; i++) {
			yr[i] += rows[r].w * o[r * h + i];
			s += dy[i] * o[r * h + i];
		}
		dw[r] = s;
	}
	rows_times_t(dor, nr, h, w2, f, da);
	for (int64_t r = 0; r < nr; r++)
		for (int64_t c = 0; c < f; c++) {
			double g = hh[r * 2 * f + c], u = hh[r * 2 * f + f + c];
			dgu[r * 2 * f + c] = da[r * f + c] * u * dsilu(g);
			dgu[r * 2 * f + f + c] = da[r * f + c] * silu(g);
		}
	rows_times_t(dgu, nr, 2 * f, w1, h, dxr);
	for (int64_t r = 0; r < nr; r++) {
		double *dxs = dx + rows[r].slot * h;
		for (int64_t i = 0; i < h; i++)
			dxs[i] += dxr[r * h + i];
	}
	if (dw2)
		rows_outer_add(a, dor, nr, f, h, dw2);
	if (dw1)
		rows_outer_add(xr, dgu, nr, h, 2 * f, dw1);
}

int mb_ref_expert(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr, double *y,
		  double *dx, double *dw, double *dw1, double *dw2)
{
	const int64_t h = m->hidden, f = m->ffn;
	if (dw1)
		memset(dw1, 0, (size_t)(h * 2 * f) * sizeof *dw1);
	if (dw2)
		memset(dw2, 0, (size_t)(f * h) * sizeof *dw2);
	if (nr == 0)
		return 0;
	int64_t chunk = nr < REF_CHUNK ? nr : REF_CHUNK;
	double *scratch = malloc((size_t)(chunk * (4 * h + 6 * f)) * sizeof(double));
	if (!scratch)
		return mb_err(MB_ERR_NOMEM, "reference: out of memory for expert %lld scratch",
			      (long long)e);
	for (int64_t r0 = 0; r0 < nr; r0 += chunk) {
		int64_t n = nr - r0 < chunk ? nr - r0 : chunk;
		expert_chunk(m, e, rows + r0, n, scratch, y, dx, dw + r0, dw1, dw2);
	}
	free(scratch);
	return 0;
}

/* g and u of gate column c for one row: x[t] . w1[e][:, c] and [:, ffn+c]. */
static void gate_up(const mb_ref_moe *m, int64_t e, int64_t t, int64_t c, double *g, double *u)
{
	const int64_t h = m->hidden, n = 2 * m->ffn;
	const float *x = m->x + t * h, *w1 = m->w1 + e * h * n;
	double sg = 0.0, su = 0.0;
	for (int64_t i = 0; i < h; i++) {
		sg += (double)x[i] * w1[i * n + c];
		su += (double)x[i] * w1[i * n + m->ffn + c];
	}
	*g = sg;
	*u = su;
}

double mb_ref_dw1_entry(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr,
			int64_t i, int64_t c)
{
	const int64_t h = m->hidden, f = m->ffn;
	const int64_t cc = c < f ? c : c - f;
	const float *w2row = m->w2 + (e * f + cc) * h;
	double sum = 0.0;
	for (int64_t r = 0; r < nr; r++) {
		const int64_t t = rows[r].token;
		const float *dy = m->dy + t * h;
		double g, u, da = 0.0;
		gate_up(m, e, t, cc, &g, &u);
		for (int64_t o = 0; o < h; o++)
			da += (double)dy[o] * w2row[o];
		da *= rows[r].w;
		double dgu = c < f ? da * u * dsilu(g) : da * silu(g);
		sum += (double)m->x[t * h + i] * dgu;
	}
	return sum;
}

double mb_ref_dw2_entry(const mb_ref_moe *m, int64_t e, const mb_ref_row *rows, int64_t nr,
			int64_t c, int64_t o)
{
	double sum = 0.0;
	for (int64_t r = 0; r < nr; r++) {
		const int64_t t = rows[r].token;
		double g, u;
		gate_up(m, e, t, c, &g, &u);
		sum += silu(g) * u * rows[r].w * m->dy[t * m->hidden + o];
	}
	return sum;
}

/* ---- the layer ---- */

void mb_ref_group(const mb_ref_moe *m, const int32_t *idx, const double *w,
		  const int64_t *slot_of, mb_ref_row *rows, int64_t *start)
{
	const int64_t T = m->tokens, K = m->top_k, E = m->experts;
	for (int64_t e = 0; e <= E; e++)
		start[e] = 0;
	for (int64_t t = 0; t < T; t++)
		if (!slot_of || slot_of[t] >= 0)
			for (int64_t j = 0; j < K; j++)
				start[idx[t * K + j] + 1]++;
	for (int64_t e = 0; e < E; e++)
		start[e + 1] += start[e];
	for (int64_t t = 0; t < T; t++) {
		if (slot_of && slot_of[t] < 0)
			continue;
		for (int64_t j = 0; j < K; j++) {
			/* start[e] runs ahead while filling, and is put back below */
			mb_ref_row *r = &rows[start[idx[t * K + j]]++];
			r->token = t;
			r->j = j;
			r->slot = slot_of ? slot_of[t] : t;
			r->w = w[t * K + j];
		}
	}
	for (int64_t e = E; e > 0; e--)
		start[e] = start[e - 1];
	start[0] = 0;
}

int mb_ref_moe_tokens(const mb_ref_moe *m, const int32_t *idx, const double *w,
		      const double *scores, const int64_t *slot_of, int64_t nslots, double *y,
		      double *dx, double *dlogits, double *dw1, double *dw2)
{
	const int64_t T = m->tokens, K = m->top_k, E = m->experts, h = m->hidden, f = m->ffn;
	mb_ref_row *rows = malloc((size_t)(T * K) * sizeof *rows);
	int64_t *start = malloc((size_t)(E + 1) * sizeof *start);
	double *dwr = malloc((size_t)(T * K) * sizeof *dwr);      /* per grouped row */
	double *dws = malloc((size_t)(nslots * K) * sizeof *dws); /* per slot and choice */
	int rc = 0;
	if (!rows || !start || !dwr || !dws) {
		rc = mb_err(MB_ERR_NOMEM, "reference: out of memory for %lld pairs",
			    (long long)(T * K));
		goto out;
	}
	memset(y, 0, (size_t)(nslots * h) * sizeof *y);
	memset(dx, 0, (size_t)(nslots * h) * sizeof *dx);
	mb_ref_group(m, idx, w, slot_of, rows, start);
	for (int64_t e = 0; e < E && !rc; e++)
		rc = mb_ref_expert(m, e, rows + start[e], start[e + 1] - start[e], y, dx,
				   dwr + start[e], dw1 ? dw1 + e * h * 2 * f : NULL,
				   dw2 ? dw2 + e * f * h : NULL);
	if (rc)
		goto out;
	for (int64_t r = 0; r < start[E]; r++)
		dws[rows[r].slot * K + rows[r].j] = dwr[r];
	for (int64_t t = 0; t < T; t++) {
		int64_t sl = slot_of ? slot_of[t] : t;
		if (sl < 0)
			continue;
		mb_ref_router_bwd(m->score, E, K, scores + t * E, idx + t * K, dws + sl * K,
				  dlogits + sl * E);
		mb_ref_router_dx(m, dlogits + sl * E, dx + sl * h);
	}
out:
	free(rows);
	free(start);
	free(dwr);
	free(dws);
	return rc;
}
