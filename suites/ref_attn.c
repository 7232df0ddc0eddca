/* ref_attn.c: fp64 reference self-attention (ref_attn.h). */
#include "../harness/mb.h"

#include <math.h>
#include <string.h>

#include "ref_attn.h"

static double ra_dot(const float *x, const float *y, int64_t n)
{
	double acc = 0.0;
	for (int64_t c = 0; c < n; c++)
		acc += (double)x[c] * (double)y[c];
	return acc;
}

static const float *ra_q(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i)
{
	return a->q + ((b * a->seq + i) * a->heads + h) * a->d_qk;
}

static const float *ra_dout(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i)
{
	return a->dout + ((b * a->seq + i) * a->heads + h) * a->d_v;
}

static const float *ra_k(const mb_ref_attn *a, int64_t b, int64_t kvh, int64_t j)
{
	return a->k + ((b * a->seq + j) * a->kv_heads + kvh) * a->d_qk;
}

static const float *ra_v(const mb_ref_attn *a, int64_t b, int64_t kvh, int64_t j)
{
	return a->v + ((b * a->seq + j) * a->kv_heads + kvh) * a->d_v;
}

/* Keys query i sees: 0..n-1. */
static int64_t ra_seen(const mb_ref_attn *a, int64_t i) { return a->causal ? i + 1 : a->seq; }

double mb_ref_attn_row(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i, double *p,
		       double *o)
{
	const int64_t kvh = h / (a->heads / a->kv_heads), n = ra_seen(a, i);
	const float *q = ra_q(a, b, h, i);
	double mx = -INFINITY;
	for (int64_t j = 0; j < n; j++) {
		p[j] = a->scale * ra_dot(q, ra_k(a, b, kvh, j), a->d_qk);
		mx = p[j] > mx ? p[j] : mx;
	}
	double sum = 0.0;
	for (int64_t j = 0; j < n; j++)
		sum += p[j] = exp(p[j] - mx);
	for (int64_t j = 0; j < n; j++)
		p[j] /= sum;
	for (int64_t j = n; j < a->seq; j++)
		p[j] = 0.0;
	memset(o, 0, (size_t)a->d_v * sizeof *o);
	for (int64_t j = 0; j < n; j++) {
		const float *v = ra_v(a, b, kvh, j);
		for (int64_t c = 0; c < a->d_v; c++)
			o[c] += p[j] * v[c];
	}
	return mx + log(sum);
}

double mb_ref_attn_row_dq(const mb_ref_attn *a, int64_t b, int64_t h, int64_t i, const double *p,
			  const double *o, double *dq)
{
	const int64_t kvh = h / (a->heads / a->kv_heads), n = ra_seen(a, i);
	const float *dout = ra_dout(a, b, h, i);
	double dsum = 0.0;
	for (int64_t c = 0; c < a->d_v; c++)
		dsum += (double)dout[c] * o[c];
	memset(dq, 0, (size_t)a->d_qk * sizeof *dq);
	for (int64_t j = 0; j < n; j++) {
		const double ds = p[j] * (ra_dot(dout, ra_v(a, b, kvh, j), a->d_v) - dsum);
		const float *k = ra_k(a, b, kvh, j);
		for (int64_t c = 0; c < a->d_qk; c++)
			dq[c] += a->scale * ds * k[c];
	}
	return dsum;
}

void mb_ref_attn_key(const mb_ref_attn *a, int64_t b, int64_t kvh, int64_t j, const double *lse,
		     const double *dsum, double *dk, double *dv)
{
	const int64_t G = a->heads / a->kv_heads;
	const float *k = ra_k(a, b, kvh, j), *v = ra_v(a, b, kvh, j);
	memset(dk, 0, (size_t)a->d_qk * sizeof *dk);
	memset(dv, 0, (size_t)a->d_v * sizeof *dv);
	for (int64_t g = 0; g < G; g++) {
		const int64_t h = kvh * G + g;
		for (int64_t i = a->causal ? j : 0; i < a->seq; i++) {
			const int64_t at = (b * a->heads + h) * a->seq + i;
			const float *q = ra_q(a, b, h, i), *dout = ra_dout(a, b, h, i);
			const double p = exp(a->scale * ra_dot(q, k, a->d_qk) - lse[at]);
			const double ds = p * (ra_dot(dout, v, a->d_v) - dsum[at]);
			for (int64_t c = 0; c < a->d_v; c++)
				dv[c] += p * dout[c];
			for (int64_t c = 0; c < a->d_qk; c++)
				dk[c] += a->scale * ds * q[c];
		}
	}
}
