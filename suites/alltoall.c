/* alltoall.c: expert-parallel dispatch and combine (DESIGN §5).
 *
 * One iteration is the MoE layer's dispatch, an alltoallv that sends each
 * routed (token, expert) row to the rank holding the expert, and (phase
 * dispatch+combine) its combine, an alltoallv that sends every received row
 * back along the reverse counts, as launches only. The counts and the bytes
 * are pure functions of (seed, ranks, parameters) (alltoall.h), so every
 * rank knows what it will receive without asking (no MPI in a suite), and
 * verify checks every received byte, and every byte back at its origin,
 * exactly.
 *
 * Metrics (derived in harness/cost.c from the cost and the world size):
 *   algbw  = bytes a rank sends per iteration, self included / time
 *            (nccl-tests alltoall: size / time)
 *   busbw  = algbw * (n-1)/n (nccl-tests alltoall; info.busbw_factor)
 *   to-others bandwidth = bytes sent to other ranks only / time
 * In moe mode every rank sends tokens * top_k rows per dispatch; a combine
 * sends what the rank received, so the per-rank byte counts are means over
 * the ranks (info.imbalance says how uneven the receive side is).
 */
#include "../harness/mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alltoall.h"
#include "ref.h"
#include "suite.h"

enum { S_LOGITS = 401, S_CALIB = 402 }; /* data streams, distinct from other suites' */

static const mb_param_def a2a_params[] = {
	{"hidden", MB_PT_INT, "512", 1, 1048576, NULL,
	 "model width: a routed row is hidden x dtype bytes (moe mode)"},
	{"tokens", MB_PT_INT, "512", 1, 16777216, NULL, "tokens per rank (moe mode)"},
	{"experts", MB_PT_INT, "64", 1, 65536, NULL,
	 "routed experts of the model, spread evenly over the ranks (moe mode)"},
	{"top_k", MB_PT_INT, "4", 1, 64, NULL, "experts each token is routed to (moe mode)"},
	{"groups", MB_PT_INT, "0", 0, 1024, NULL,
	 "MoGE expert groups: top_k/groups experts chosen in each of groups equal groups, "
	 "0 = ungrouped (moe mode)"},
	{"skew", MB_PT_REAL, "0", 0, 4, NULL,
	 "Zipf exponent of tokens per expert, 0 = balanced (moe mode)"},
	{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", "payload element type"},
	{"mode", MB_PT_ENUM, "moe", 0, 0, "moe|uniform",
	 "moe: counts from a router's top-k; uniform: equal blocks (size sweep)"},
	{"bytes", MB_PT_INT, "1M", 1024, 4294967296.0, NULL,
	 "bytes each rank sends per exchange, self included (uniform mode)"},
	{"phase", MB_PT_ENUM, "dispatch+combine", 0, 0, "dispatch+combine|dispatch",
	 "exchanges per iteration: dispatch, then combine back along the reverse counts"},
};

#define GIB (1024.0 * 1024.0 * 1024.0)
#define A2A_MAX_BYTES (64.0 * GIB) /* of one rank's send buffer */

typedef struct a2a_state {
	const mb_backend *be;
	mb_dev *dev;
	mb_a2a_spec spec;
	int64_t row_bytes;
	int rank, size, phases;
	int64_t *matrix;                 /* [size][size]: rows src -> dst, every rank */
	int64_t *send_rows, *recv_rows;  /* [size]: this rank's row and column */
	int64_t nsend, nrecv;            /* their sums */
	mb_comm *comm;
	mb_plan *plan;
	void *send, *recv, *back; /* device: dispatch in and out, combine out */
	mb_io io[2];              /* dispatch, combine */
} a2a_state;

/* ---- counts ---- */

int mb_a2a_spec_get(const mb_params *p, uint64_t seed, mb_a2a_spec *s, int64_t *row_bytes)
{
	char buf[24];
	mb_dtype dt;
	int rc = mb_dtype_parse(mb_param_choice(p, "dtype", buf, sizeof buf), &dt);
	if (rc)
		return rc;
	memset(s, 0, sizeof *s);
	s->mode = strcmp(mb_param_choice(p, "mode", buf, sizeof buf), "uniform") == 0
			  ? MB_A2A_UNIFORM
			  : MB_A2A_MOE;
	s->seed = seed;
	s->tokens = mb_param_int(p, "tokens");
	s->experts = mb_param_int(p, "experts");
	s->top_k = mb_param_int(p, "top_k");
	s->groups = mb_param_int(p, "groups");
	s->skew = mb_param_real(p, "skew");
	s->bytes = mb_param_int(p, "bytes");
	s->elem_bytes = (int64_t)mb_dtype_size(dt);
	*row_bytes = s->mode == MB_A2A_MOE ? mb_param_int(p, "hidden") * s->elem_bytes
					   : s->elem_bytes;
	return 0;
}

/* The moe checks that need no world size (validate and a2a_fits). */
static int a2a_routable(const mb_a2a_spec *s)
{
	if (s->top_k > s->experts)
		return mb_err(MB_ERR_USAGE, "alltoall: top_k=%lld is out of range: accepted "
					    "1..experts (%lld)",
			      (long long)s->top_k, (long long)s->experts);
	if (s->groups > 1 && (s->experts % s->groups != 0 || s->top_k % s->groups != 0))
		return mb_err(MB_ERR_USAGE,
			      "alltoall: groups=%lld is out of range: accepted 0, 1 or a common "
			      "divisor of experts (%lld) and top_k (%lld)",
			      (long long)s->groups, (long long)s->experts, (long long)s->top_k);
	return 0;
}

static int a2a_fits(const mb_a2a_spec *s, int size)
{
	if (size < 1)
		return mb_err(MB_ERR_INTERNAL, "alltoall: %d ranks", size);
	if (s->mode == MB_A2A_UNIFORM) {
		if (s->bytes % ((int64_t)size * s->elem_bytes) != 0)
			return mb_err(MB_ERR_USAGE,
				      "alltoall: bytes=%lld is not a multiple of %d ranks x %lld-byte "
				      "elements (uniform mode sends equal blocks)",
				      (long long)s->bytes, size, (long long)s->elem_bytes);
		return 0;
	}
	int rc = a2a_routable(s);
	if (rc)
		return rc;
	if (s->experts % size != 0)
		return mb_err(MB_ERR_USAGE,
			      "alltoall: experts=%lld cannot be spread evenly over %d ranks (experts "
			      "must be a multiple of the number of ranks)",
			      (long long)s->experts, size);
	return 0;
}

/* Softmax scores of one token's seeded logits. */
static void a2a_scores(uint64_t seed, uint64_t stream, uint64_t token, int64_t E, double *sc)
{
	for (int64_t e = 0; e < E; e++)
		sc[e] = 4.0 * mb_rand_uniform(seed, stream, token * (uint64_t)E + (uint64_t)e) - 2.0;
	mb_ref_scores(MB_SCORE_SOFTMAX, sc, E, sc);
}

/* The Zipf bias (NULL and 0 for skew 0), calibrated on a rank-independent
 * sample as gmm calibrates its own. */
static int a2a_bias(const mb_a2a_spec *s, float **out)
{
	*out = NULL;
	if (s->mode != MB_A2A_MOE || !(s->skew > 0))
		return 0;
	const int64_t E = s->experts;
	int64_t n = ((int64_t)1 << 21) / E;
	n = n < 64 ? 64 : n;
	n = n < s->tokens ? n : s->tokens;
	double *sc = malloc((size_t)(n * E) * sizeof *sc);
	float *bias = malloc((size_t)E * sizeof *bias);
	if (!sc || !bias) {
		free(sc), free(bias);
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory calibrating the skew bias");
	}
	for (int64_t t = 0; t < n; t++)
		a2a_scores(s->seed, S_CALIB, (uint64_t)t, E, sc + t * E);
	int rc = mb_ref_skew_bias(sc, n, E, s->top_k, s->groups, s->skew, bias);
	free(sc);
	if (rc)
		free(bias);
	else
		*out = bias;
	return rc;
}

/* Route rank's tokens: rows[q] = (token, expert) pairs whose expert rank q
 * holds. Counts are integers, so the sum is the same in any thread order. */
static int a2a_route(const mb_a2a_spec *s, const float *bias, int rank, int size, int64_t *rows)
{
	const int64_t E = s->experts, K = s->top_k, T = s->tokens, per = E / size;
	int bad = 0;
	for (int q = 0; q < size; q++)
		rows[q] = 0;
#pragma omp parallel
	{
		double *v = malloc((size_t)(E + K) * sizeof *v);
		int32_t *idx = malloc((size_t)K * sizeof *idx);
		int64_t *mine = calloc((size_t)size, sizeof *mine);
		int ok = v && idx && mine;
#pragma omp for schedule(static)
		for (int64_t t = 0; t < T; t++) {
			if (!ok)
				continue;
			a2a_scores(s->seed, S_LOGITS, (uint64_t)rank * (uint64_t)T + (uint64_t)t, E, v);
			if (bias)
				for (int64_t e = 0; e < E; e++)
					v[e] += bias[e];
			mb_ref_topk(v, E, K, s->groups, idx, v + E);
			for (int64_t j = 0; j < K; j++)
				mine[idx[j] / per]++;
		}
#pragma omp critical
		{
			bad |= !ok;
			for (int q = 0; ok && q < size; q++)
				rows[q] += mine[q];
		}
		free(v), free(idx), free(mine);
	}
	return bad ? mb_err(MB_ERR_NOMEM, "alltoall: out of memory routing tokens") : 0;
}

static void a2a_uniform(const mb_a2a_spec *s, int size, int64_t *rows)
{
	const int64_t per = s->bytes / ((int64_t)size * s->elem_bytes);
	for (int q = 0; q < size; q++)
		rows[q] = per;
}

int mb_a2a_counts(const mb_a2a_spec *s, int rank, int size, int64_t *send_rows)
{
	int rc = a2a_fits(s, size);
	if (rc)
		return rc;
	if (rank < 0 || rank >= size)
		return mb_err(MB_ERR_INTERNAL, "alltoall: rank %d of %d", rank, size);
	if (s->mode == MB_A2A_UNIFORM) {
		a2a_uniform(s, size, send_rows);
		return 0;
	}
	float *bias;
	rc = a2a_bias(s, &bias);
	if (!rc)
		rc = a2a_route(s, bias, rank, size, send_rows);
	free(bias);
	return rc;
}

int mb_a2a_matrix(const mb_a2a_spec *s, int size, int64_t *rows)
{
	int rc = a2a_fits(s, size);
	if (rc)
		return rc;
	if (s->mode == MB_A2A_UNIFORM) {
		for (int src = 0; src < size; src++)
			a2a_uniform(s, size, rows + (size_t)src * (size_t)size);
		return 0;
	}
	float *bias;
	rc = a2a_bias(s, &bias);
	for (int src = 0; src < size && !rc; src++)
		rc = a2a_route(s, bias, src, size, rows + (size_t)src * (size_t)size);
	free(bias);
	return rc;
}

/* ---- payload ---- */

uint64_t mb_a2a_stream(int src, int dst)
{
	return ((uint64_t)0xa2a << 52) ^ ((uint64_t)(uint32_t)src << 26) ^ (uint64_t)(uint32_t)dst;
}

/* Bytes lo .. hi-1 of block (src, dst) into out[0 .. hi-lo). */
static void a2a_bytes(uint64_t seed, uint64_t stream, uint64_t lo, uint64_t hi, unsigned char *out)
{
	for (uint64_t j = lo; j < hi;) {
		const uint64_t x = mb_rand_u64(seed, stream, j / 8);
		for (unsigned b = (unsigned)(j % 8); b < 8 && j < hi; b++, j++)
			out[j - lo] = (unsigned char)(x >> (8 * b));
	}
}

void mb_a2a_fill(uint64_t seed, int src, int dst, int64_t row_bytes, int64_t first, int64_t n,
		 void *dst_buf)
{
	const uint64_t stream = mb_a2a_stream(src, dst), lo = (uint64_t)(first * row_bytes);
	const int64_t total = n * row_bytes, chunk = 1 << 16;
	unsigned char *out = dst_buf;
#pragma omp parallel for schedule(static) if (total > 4 * chunk)
	for (int64_t c = 0; c < total; c += chunk) {
		const int64_t end = c + chunk < total ? c + chunk : total;
		a2a_bytes(seed, stream, lo + (uint64_t)c, lo + (uint64_t)end, out + c);
	}
}

int64_t mb_a2a_compare(uint64_t seed, int src, int dst, int64_t row_bytes, int64_t first,
		       int64_t n, const void *buf, int64_t *wrong_rows, int64_t *first_wrong)
{
	const uint64_t stream = mb_a2a_stream(src, dst);
	const unsigned char *got = buf;
	const int64_t rows_per_chunk = row_bytes >= 4096 ? 1 : 4096 / row_bytes;
	int64_t bytes = 0, rows = 0, firstw = INT64_MAX;
#pragma omp parallel reduction(+ : bytes, rows) reduction(min : firstw)
	{
		unsigned char want[4096 + 64];
#pragma omp for schedule(static)
		for (int64_t r0 = 0; r0 < n; r0 += rows_per_chunk) {
			const int64_t r1 = r0 + rows_per_chunk < n ? r0 + rows_per_chunk : n;
			for (int64_t r = r0; r < r1; r++) {
				int64_t wrong = 0;
				for (int64_t b = 0; b < row_bytes; b += 4096) {
					const int64_t len = row_bytes - b < 4096 ? row_bytes - b : 4096;
					const uint64_t at = (uint64_t)((first + r) * row_bytes + b);
					const unsigned char *g = got + r * row_bytes + b;
					a2a_bytes(seed, stream, at, at + (uint64_t)len, want);
					if (memcmp(g, want, (size_t)len) == 0)
						continue;
					for (int64_t i = 0; i < len; i++)
						wrong += g[i] != want[i];
				}
				bytes += wrong;
				if (wrong) {
					rows++;
					firstw = first + r < firstw ? first + r : firstw;
				}
			}
		}
	}
	*wrong_rows = rows;
	*first_wrong = rows ? firstw : -1;
	return bytes;
}

/* ---- hooks ---- */

static int a2a_preset(const mb_model *m, mb_size size, mb_params *p)
{
	static const double tokens[MB_SIZE_COUNT] = {256, 4096, 8192};
	if (m->experts < 1)
		return mb_err(MB_ERR_USAGE, "model %s has no routed experts for alltoall", m->name);
	int64_t hidden = m->hidden;
	if (size == MB_SIZE_QUICK)
		hidden = hidden < 512 ? hidden : 512;
	const struct {
		const char *name;
		double v;
	} set[] = {
		{"hidden", (double)hidden}, {"tokens", tokens[size]},
		{"experts", (double)m->experts}, {"top_k", (double)m->top_k},
		/* the whole model's experts, so a grouped model keeps its groups */
		{"groups", (double)mb_model_groups(m, m->experts, m->top_k)},
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(set); i++) {
		int rc = mb_params_set(p, set[i].name, set[i].v, MB_SRC_PRESET);
		if (rc)
			return rc;
	}
	return 0;
}

static int a2a_phases(const mb_params *p)
{
	char buf[24];
	return strcmp(mb_param_choice(p, "phase", buf, sizeof buf), "dispatch") == 0 ? 1 : 2;
}

/* Checks that need no world size; setup checks the rest (a2a_fits). */
static int a2a_validate(const mb_params *p)
{
	mb_a2a_spec s;
	int64_t rb;
	int rc = mb_a2a_spec_get(p, 0, &s, &rb);
	if (rc)
		return rc;
	if (s.mode == MB_A2A_UNIFORM) {
		if (s.bytes % s.elem_bytes != 0)
			return mb_err(MB_ERR_USAGE, "alltoall: bytes=%lld is not a multiple of the "
						    "dtype's %lld bytes",
				      (long long)s.bytes, (long long)s.elem_bytes);
		if (s.bytes / s.elem_bytes > 2147483647)
			return mb_err(MB_ERR_USAGE, "alltoall: bytes=%lld is more than 2^31-1 elements "
						    "(the most MPI 3.1 can address)",
				      (long long)s.bytes);
		return 0;
	}
	if ((rc = a2a_routable(&s)))
		return rc;
	double bytes = (double)s.tokens * (double)s.top_k * (double)rb;
	if (bytes > A2A_MAX_BYTES || s.tokens * s.top_k > 2147483647)
		return mb_err(MB_ERR_USAGE,
			      "alltoall: tokens=%lld x top_k=%lld rows of %lld bytes is %.1f GiB per "
			      "rank; the limit is 64 GiB and 2^31-1 rows",
			      (long long)s.tokens, (long long)s.top_k, (long long)rb, bytes / GIB);
	return 0;
}

/* What the parameters alone say: bytes is exact (every rank sends tokens *
 * top_k rows per dispatch; a combine sends back, over the ranks, as many),
 * but the bytes to other ranks depend on the world size and the seed, which
 * cost does not get: comm_bytes stays 0 here, and mb_a2a_case_cost gives
 * the exact figure once setup has run. */
static int a2a_cost(const mb_params *p, mb_cost *c)
{
	mb_a2a_spec s;
	int64_t rb;
	int rc = mb_a2a_spec_get(p, 0, &s, &rb);
	if (rc)
		return rc;
	memset(c, 0, sizeof *c);
	const double per = s.mode == MB_A2A_MOE ? (double)(s.tokens * s.top_k) * (double)rb
						: (double)s.bytes;
	c->bytes = a2a_phases(p) * per;
	c->tokens = s.mode == MB_A2A_MOE ? (double)s.tokens : 0.0;
	return 0;
}

/* Totals over every rank from the count matrix. */
typedef struct a2a_totals {
	double rows, self_rows, recv_max;
} a2a_totals;

static a2a_totals a2a_sum(const a2a_state *st)
{
	a2a_totals t = {0};
	const int n = st->size;
	for (int dst = 0; dst < n; dst++) {
		double recv = 0;
		for (int src = 0; src < n; src++)
			recv += (double)st->matrix[(size_t)src * (size_t)n + (size_t)dst];
		t.rows += recv;
		t.self_rows += (double)st->matrix[(size_t)dst * (size_t)n + (size_t)dst];
		t.recv_max = recv > t.recv_max ? recv : t.recv_max;
	}
	return t;
}

static void a2a_cost_of(const a2a_state *st, const a2a_totals t, mb_cost *out)
{
	memset(out, 0, sizeof *out);
	out->bytes = st->phases * t.rows * (double)st->row_bytes / st->size;
	out->comm_bytes = st->phases * (t.rows - t.self_rows) * (double)st->row_bytes / st->size;
	out->tokens = st->spec.mode == MB_A2A_MOE ? (double)st->spec.tokens : 0.0;
}

int mb_a2a_case_cost(void *state, mb_cost *out)
{
	const a2a_state *st = state;
	if (!st || !st->matrix)
		return mb_err(MB_ERR_INTERNAL, "alltoall: case cost before setup");
	a2a_cost_of(st, a2a_sum(st), out);
	return 0;
}

static void a2a_teardown(void *state)
{
	a2a_state *st = state;
	if (!st)
		return;
	mb_dev_plan_free(st->be, st->dev, st->plan);
	mb_dev_comm_free(st->be, st->dev, st->comm);
	mb_dev_free(st->be, st->dev, st->send);
	mb_dev_free(st->be, st->dev, st->recv);
	mb_dev_free(st->be, st->dev, st->back);
	free(st->matrix);
	free(st->send_rows);
	free(st);
}

/* The send buffer: every block this rank sends, packed by destination. */
static int a2a_upload_payload(a2a_state *st)
{
	const size_t bytes = (size_t)(st->nsend * st->row_bytes);
	unsigned char *h = mb_alloc(bytes ? bytes : 1);
	if (!h)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of host memory for %zu payload bytes",
			      bytes);
	size_t off = 0;
	for (int dst = 0; dst < st->size; dst++) {
		mb_a2a_fill(st->spec.seed, st->rank, dst, st->row_bytes, 0, st->send_rows[dst],
			    h + off);
		off += (size_t)(st->send_rows[dst] * st->row_bytes);
	}
	int rc = mb_dev_upload(st->be, st->dev, st->send, h, bytes);
	mb_free(h);
	return rc;
}

static int a2a_buffers(a2a_state *st)
{
	const int64_t rb = st->row_bytes;
	const size_t sb = (size_t)((st->nsend ? st->nsend : 1) * rb),
		     rbytes = (size_t)((st->nrecv ? st->nrecv : 1) * rb);
	st->send = mb_dev_alloc(st->be, st->dev, sb);
	st->recv = mb_dev_alloc(st->be, st->dev, rbytes);
	if (st->phases == 2)
		st->back = mb_dev_alloc(st->be, st->dev, sb);
	if (!st->send || !st->recv || (st->phases == 2 && !st->back))
		return mb_err(MB_ERR_NOMEM, "alltoall: out of device memory for %zu + %zu bytes",
			      sb * (size_t)st->phases, rbytes);
	st->io[0] = (mb_io){.in = {st->send, st->send_rows, st->recv_rows}, .out = {st->recv}};
	st->io[1] = (mb_io){.in = {st->recv, st->recv_rows, st->send_rows}, .out = {st->back}};
	return a2a_upload_payload(st);
}

/* Order matters with several ranks: the checks every rank makes alike come
 * first, then the collective comm_init, so that no rank enters it alone. */
static int a2a_setup(const mb_case_ctx *ctx, void **out)
{
	a2a_state *st = calloc(1, sizeof *st);
	if (!st)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory");
	*out = st;
	st->be = ctx->be;
	st->dev = ctx->dev;
	st->rank = ctx->world.rank;
	st->size = ctx->world.size;
	st->phases = a2a_phases(ctx->params);
	int rc = mb_a2a_spec_get(ctx->params, ctx->seed, &st->spec, &st->row_bytes);
	if (!rc)
		rc = a2a_fits(&st->spec, st->size);
	if (!rc)
		rc = mb_dev_comm_init(st->be, st->dev, &ctx->world, &st->comm);
	if (rc)
		return rc;
	const size_t n = (size_t)st->size;
	st->matrix = malloc(n * n * sizeof *st->matrix);
	st->send_rows = malloc(2 * n * sizeof *st->send_rows);
	if (!st->matrix || !st->send_rows)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory for %d x %d counts", st->size,
			      st->size);
	st->recv_rows = st->send_rows + n;
	rc = mb_a2a_matrix(&st->spec, st->size, st->matrix);
	if (rc)
		return rc;
	for (size_t q = 0; q < n; q++) {
		st->send_rows[q] = st->matrix[(size_t)st->rank * n + q];
		st->recv_rows[q] = st->matrix[q * n + (size_t)st->rank];
		st->nsend += st->send_rows[q];
		st->nrecv += st->recv_rows[q];
	}
	char buf[24];
	mb_dtype dt;
	rc = mb_dtype_parse(mb_param_choice(ctx->params, "dtype", buf, sizeof buf), &dt);
	if (rc)
		return rc;
	mb_op op = {.kind = MB_OP_ALLTOALLV, .dtype = dt};
	op.u.coll.comm = st->comm;
	op.u.coll.row_bytes = st->row_bytes;
	op.u.coll.capacity = st->nsend > st->nrecv ? st->nsend : st->nrecv;
	rc = mb_dev_plan(st->be, st->dev, &op, &st->plan);
	if (!rc)
		rc = a2a_buffers(st);
	return rc;
}

static int a2a_run(void *state)
{
	a2a_state *st = state;
	int rc = mb_dev_launch(st->be, st->dev, st->plan, &st->io[0]);
	if (!rc && st->phases == 2)
		rc = mb_dev_launch(st->be, st->dev, st->plan, &st->io[1]);
	return rc;
}

/* Check every block of buf (packed by peer in rank order, rows[peer] rows
 * each) against the payload; incoming: the blocks came from the peers to
 * this rank (dispatch), else they are this rank's own blocks coming back. */
static int a2a_check_buffer(a2a_state *st, const void *dev_buf, const int64_t *rows, int64_t total,
			    int incoming, const char *what, mb_check *out)
{
	const size_t bytes = (size_t)(total * st->row_bytes);
	unsigned char *h = mb_alloc(bytes ? bytes : 1);
	if (!h)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of host memory for the check");
	int rc = mb_dev_download(st->be, st->dev, h, dev_buf, bytes);
	size_t off = 0;
	for (int peer = 0; peer < st->size && !rc; peer++) {
		int64_t wrong_rows, first;
		const int src = incoming ? peer : st->rank, dst = incoming ? st->rank : peer;
		int64_t wrong = mb_a2a_compare(st->spec.seed, src, dst, st->row_bytes, 0, rows[peer],
					       h + off, &wrong_rows, &first);
		off += (size_t)(rows[peer] * st->row_bytes);
		out->checked += rows[peer] * st->row_bytes;
		if (wrong && !out->mismatched)
			snprintf(out->detail, sizeof out->detail,
				 "rank %d: %s: %lld wrong bytes in %lld of the %lld rows %s rank %d "
				 "(first: row %lld)",
				 st->rank, what, (long long)wrong, (long long)wrong_rows,
				 (long long)rows[peer], incoming ? "from" : "back from", peer,
				 (long long)first);
		out->mismatched += wrong;
	}
	mb_free(h);
	return rc;
}

static int a2a_verify(void *state, mb_check *out)
{
	a2a_state *st = state;
	memset(out, 0, sizeof *out);
	out->method = "exact: payload is a function of (seed, source, destination, index)";
	out->tolerance = 0;
	int rc = a2a_check_buffer(st, st->recv, st->recv_rows, st->nrecv, 1, "dispatch", out);
	if (!rc && st->phases == 2)
		rc = a2a_check_buffer(st, st->back, st->send_rows, st->nsend, 0, "combine", out);
	if (rc)
		return rc;
	out->passed = out->mismatched == 0;
	return 0;
}

static void a2a_info(void *state, mb_case_info *info)
{
	a2a_state *st = state;
	if (!st->matrix)
		return;
	const a2a_totals t = a2a_sum(st);
	mb_cost c;
	a2a_cost_of(st, t, &c);
	const double n = st->size, mean = t.rows / n;
	mb_info_add(info, "ranks", n);
	mb_info_add(info, "busbw_factor", (n - 1) / n);
	mb_info_add(info, "row_bytes", (double)st->row_bytes);
	mb_info_add(info, "phases", st->phases);
	mb_info_add(info, "send_bytes", c.bytes);
	mb_info_add(info, "send_bytes_to_others", c.comm_bytes);
	mb_info_add(info, "recv_rows_max", t.recv_max);
	mb_info_add(info, "recv_rows_mean", mean);
	mb_info_add(info, "imbalance", mean > 0 ? t.recv_max / mean : 1.0);
	mb_info_add(info, "self_rows_fraction", t.rows > 0 ? t.self_rows / t.rows : 0.0);
	if (st->spec.mode == MB_A2A_MOE)
		mb_info_add(info, "experts_per_rank", (double)(st->spec.experts / st->size));
}

const mb_suite mb_suite_alltoall = {
	.name = "alltoall",
	.summary = "expert-parallel dispatch and combine: alltoallv of routed token rows "
		   "(moe) or equal blocks (uniform size sweep)",
	.params = a2a_params,
	.nparams = (int)MB_ARRAY_LEN(a2a_params),
	.preset = a2a_preset,
	.validate = a2a_validate,
	.cost = a2a_cost,
	.setup = a2a_setup,
	.run = a2a_run,
	.verify = a2a_verify,
	.info = a2a_info,
	.teardown = a2a_teardown,
	.case_cost = mb_a2a_case_cost,
};
