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
	{"ep", MB_PT_INT, "0", 0, 1048576, NULL,
	 "expert-parallel group size: groups of ep consecutive ranks exchange among "
	 "themselves (0 = every rank; ep x dp = ranks)"},
	{"dp", MB_PT_INT, "0", 0, 1048576, NULL,
	 "data-parallel degree, the number of EP groups (0 = ranks / ep)"},
	{"algo", MB_PT_ENUM, "flat", 0, 0, "flat|hier",
	 "flat: one alltoallv over the group; hier: each token once to every other node "
	 "holding one of its experts (alltoallv among the ranks of the same local index), "
	 "then an alltoallv inside the node to the experts' ranks"},
};

#define GIB (1024.0 * 1024.0 * 1024.0)
#define A2A_MAX_BYTES (64.0 * GIB) /* of one rank's send buffer */

/* One alltoallv exchange over a communicator: a dispatch sends send ->
 * recv, a combine recv -> back along the reverse counts. Payload blocks
 * are keyed by EP-group ranks: member i of the communicator is group rank
 * members[i]. */
typedef struct a2a_xchg {
	mb_comm *comm;
	mb_plan *plan;
	int rank, size;                  /* in the communicator */
	int *members;                    /* [size]: EP-group rank of each member */
	int64_t *send_rows, *recv_rows;  /* [size] each */
	int64_t nsend, nrecv;
	void *send, *recv, *back;        /* device */
	mb_io io[2];                     /* dispatch, combine */
} a2a_xchg;

typedef struct a2a_state {
	const mb_backend *be;
	mb_dev *dev;
	mb_a2a_spec spec;
	int64_t row_bytes;
	int rank, size, phases;          /* in the EP group */
	int ep, dp, group, hier;         /* EP size, EP groups, this rank's group, algo */
	int nodes, per_node;             /* of the EP group (hier) */
	int64_t *matrix;                 /* [size][size]: rows src -> dst, every group rank */
	int64_t *need;                   /* hier: [size][nodes] tokens of src needing node m */
	const int *node_of;              /* [world size]: each rank's node, or NULL (one node) */
	int base;                        /* world rank of group rank 0 */
	mb_group ep_grp, sub[2];         /* the EP group; hier: rail, node */
	int own_ep, own_sub;             /* made by split (so freed here) */
	int nx;                          /* exchanges: 1 flat, 2 hier (rail, node) */
	a2a_xchg x[2];
	void (*group_free)(mb_group *g);
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

/* Route the tokens of world rank `rank` over a group of size ranks:
 * rows[q] = (token, expert) pairs whose expert group rank q holds, and
 * with need (nodes > 1; the group node-major, size/nodes ranks a node)
 * need[m] = tokens with at least one expert on node m. Counts are
 * integers, so the sums are the same in any thread order. */
static int a2a_route(const mb_a2a_spec *s, const float *bias, int rank, int size, int nodes,
		     int64_t *rows, int64_t *need)
{
	const int64_t E = s->experts, K = s->top_k, T = s->tokens, per = E / size;
	const int64_t per_node = size / nodes;
	int bad = 0;
	for (int q = 0; q < size; q++)
		rows[q] = 0;
	for (int m = 0; need && m < nodes; m++)
		need[m] = 0;
#pragma omp parallel
	{
		double *v = malloc((size_t)(E + K) * sizeof *v);
		int32_t *idx = malloc((size_t)K * sizeof *idx);
		int64_t *mine = calloc((size_t)(size + nodes), sizeof *mine);
		char *hit = malloc((size_t)nodes);
		int ok = v && idx && mine && hit;
#pragma omp for schedule(static)
		for (int64_t t = 0; t < T; t++) {
			if (!ok)
				continue;
			a2a_scores(s->seed, S_LOGITS, (uint64_t)rank * (uint64_t)T + (uint64_t)t, E, v);
			if (bias)
				for (int64_t e = 0; e < E; e++)
					v[e] += bias[e];
			mb_ref_topk(v, E, K, s->groups, idx, v + E);
			memset(hit, 0, (size_t)nodes);
			for (int64_t j = 0; j < K; j++) {
				mine[idx[j] / per]++;
				hit[idx[j] / per / per_node] = 1;
			}
			for (int m = 0; m < nodes; m++)
				mine[size + m] += hit[m];
		}
#pragma omp critical
		{
			bad |= !ok;
			for (int q = 0; ok && q < size; q++)
				rows[q] += mine[q];
			for (int m = 0; ok && need && m < nodes; m++)
				need[m] += mine[size + m];
		}
		free(v), free(idx), free(mine), free(hit);
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
		rc = a2a_route(s, bias, rank, size, 1, send_rows, NULL);
	free(bias);
	return rc;
}

int mb_a2a_matrix(const mb_a2a_spec *s, int size, int64_t *rows)
{
	return mb_a2a_group_matrix(s, 0, size, 1, rows, NULL);
}

int mb_a2a_group_matrix(const mb_a2a_spec *s, int base, int size, int nodes, int64_t *rows,
			int64_t *need)
{
	int rc = a2a_fits(s, size);
	if (rc)
		return rc;
	if (nodes < 1 || size % nodes)
		return mb_err(MB_ERR_INTERNAL, "alltoall: %d ranks on %d nodes", size, nodes);
	if (s->mode == MB_A2A_UNIFORM) {
		for (int src = 0; src < size; src++) {
			a2a_uniform(s, size, rows + (size_t)src * (size_t)size);
			for (int m = 0; need && m < nodes; m++) /* every node gets a block */
				need[(size_t)src * (size_t)nodes + (size_t)m] =
					rows[(size_t)src * (size_t)size] * (size / nodes);
		}
		return 0;
	}
	float *bias;
	rc = a2a_bias(s, &bias);
	for (int src = 0; src < size && !rc; src++)
		rc = a2a_route(s, bias, base + src, size, nodes, rows + (size_t)src * (size_t)size,
			       need ? need + (size_t)src * (size_t)nodes : NULL);
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

/* Totals over the group's ranks from the count matrix: routed rows, rows
 * a rank keeps (sent to itself), rows between nodes, the most any rank
 * receives; and the rows the exchanges actually move between ranks, and
 * of those between nodes (flat: the routed rows to others; hier: the
 * first stage's token rows and the second stage's forwarded rows). */
typedef struct a2a_totals {
	double rows, self_rows, inter_rows, recv_max;
	double moved, moved_inter;
} a2a_totals;

static int a2a_node(const a2a_state *st, int grank)
{
	return st->node_of ? st->node_of[st->base + grank] : 0;
}

static a2a_totals a2a_sum(const a2a_state *st)
{
	a2a_totals t = {0};
	const int n = st->size;
	for (int dst = 0; dst < n; dst++) {
		double recv = 0;
		for (int src = 0; src < n; src++) {
			const double rows = (double)st->matrix[(size_t)src * (size_t)n + (size_t)dst];
			recv += rows;
			if (a2a_node(st, src) != a2a_node(st, dst))
				t.inter_rows += rows;
		}
		t.rows += recv;
		t.self_rows += (double)st->matrix[(size_t)dst * (size_t)n + (size_t)dst];
		t.recv_max = recv > t.recv_max ? recv : t.recv_max;
	}
	t.moved = t.rows - t.self_rows;
	t.moved_inter = t.inter_rows;
	if (st->hier) { /* stage 1 moves need[][] to other nodes; stage 2 forwards */
		t.moved = t.moved_inter = 0;
		for (int src = 0; src < n; src++)
			for (int m = 0; m < st->nodes; m++)
				if (m != src / st->per_node)
					t.moved_inter += (double)st->need[(size_t)src * (size_t)st->nodes + (size_t)m];
		for (int src = 0; src < n; src++) /* forwarded by src's rail peer on dst's node */
			for (int dst = 0; dst < n; dst++)
				if (dst % st->per_node != src % st->per_node)
					t.moved += (double)st->matrix[(size_t)src * (size_t)n + (size_t)dst];
		t.moved += t.moved_inter;
	}
	return t;
}

/* bytes (the nccl-tests size) counts the routed rows whatever the
 * algorithm, so flat and hier are compared on the same work; comm_bytes is
 * what the algorithm moves between ranks. Means per rank of the group. */
static void a2a_cost_of(const a2a_state *st, const a2a_totals t, mb_cost *out)
{
	memset(out, 0, sizeof *out);
	const double per = st->phases * (double)st->row_bytes / st->size;
	out->bytes = t.rows * per;
	out->comm_bytes = t.moved * per;
	out->comm_bytes_inter = t.moved_inter * per;
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
	for (int i = 0; i < 2; i++) {
		a2a_xchg *x = &st->x[i];
		mb_dev_plan_free(st->be, st->dev, x->plan);
		mb_dev_comm_free(st->be, st->dev, x->comm);
		mb_dev_free(st->be, st->dev, x->send);
		mb_dev_free(st->be, st->dev, x->recv);
		mb_dev_free(st->be, st->dev, x->back);
		free(x->send_rows);
		free(x->members);
	}
	if (st->own_sub) {
		st->group_free(&st->sub[0]);
		st->group_free(&st->sub[1]);
	}
	if (st->own_ep)
		st->group_free(&st->ep_grp);
	free(st->matrix);
	free(st->need);
	free(st);
}

/* The send buffer: every block this rank sends, packed by destination. */
static int a2a_upload_payload(a2a_state *st, a2a_xchg *x)
{
	const size_t bytes = (size_t)(x->nsend * st->row_bytes);
	unsigned char *h = mb_alloc(bytes ? bytes : 1);
	if (!h)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of host memory for %zu payload bytes",
			      bytes);
	size_t off = 0;
	for (int q = 0; q < x->size; q++) {
		mb_a2a_fill(st->spec.seed, x->members[x->rank], x->members[q], st->row_bytes, 0,
			    x->send_rows[q], h + off);
		off += (size_t)(x->send_rows[q] * st->row_bytes);
	}
	int rc = mb_dev_upload(st->be, st->dev, x->send, h, bytes);
	mb_free(h);
	return rc;
}

static int a2a_buffers(a2a_state *st, a2a_xchg *x)
{
	const int64_t rb = st->row_bytes;
	const size_t sb = (size_t)((x->nsend ? x->nsend : 1) * rb),
		     rbytes = (size_t)((x->nrecv ? x->nrecv : 1) * rb);
	x->send = mb_dev_alloc(st->be, st->dev, sb);
	x->recv = mb_dev_alloc(st->be, st->dev, rbytes);
	if (st->phases == 2)
		x->back = mb_dev_alloc(st->be, st->dev, sb);
	if (!x->send || !x->recv || (st->phases == 2 && !x->back))
		return mb_err(MB_ERR_NOMEM, "alltoall: out of device memory for %zu + %zu bytes",
			      sb * (size_t)st->phases, rbytes);
	x->io[0] = (mb_io){.in = {x->send, x->send_rows, x->recv_rows}, .out = {x->recv}};
	x->io[1] = (mb_io){.in = {x->recv, x->recv_rows, x->send_rows}, .out = {x->back}};
	return a2a_upload_payload(st, x);
}

/* An exchange over group g (a sub-communicator of the EP group, or the EP
 * group itself): members[i] is the EP-group rank of member i; sends[i] and
 * recvs[i] what this rank sends to and receives from member i. */
static int a2a_xchg_init(a2a_state *st, a2a_xchg *x, const mb_group *g)
{
	x->rank = g->rank;
	x->size = g->size;
	x->members = malloc((size_t)g->size * sizeof *x->members);
	x->send_rows = calloc(2 * (size_t)g->size, sizeof *x->send_rows);
	if (!x->members || !x->send_rows)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory for %d counts", g->size);
	x->recv_rows = x->send_rows + g->size;
	return mb_dev_comm_init(st->be, st->dev, g, &x->comm);
}

static int a2a_xchg_plan(a2a_state *st, a2a_xchg *x, mb_dtype dt)
{
	for (int q = 0; q < x->size; q++) {
		x->nsend += x->send_rows[q];
		x->nrecv += x->recv_rows[q];
	}
	mb_op op = {.kind = MB_OP_ALLTOALLV, .dtype = dt};
	op.u.coll.comm = x->comm;
	op.u.coll.row_bytes = st->row_bytes;
	op.u.coll.capacity = x->nsend > x->nrecv ? x->nsend : x->nrecv;
	int rc = mb_dev_plan(st->be, st->dev, &op, &x->plan);
	return rc ? rc : a2a_buffers(st, x);
}

/* flat: one exchange over the EP group, the routed rows themselves. */
static void a2a_counts_flat(a2a_state *st)
{
	a2a_xchg *x = &st->x[0];
	const size_t n = (size_t)st->size;
	for (size_t q = 0; q < n; q++) {
		x->members[q] = (int)q;
		x->send_rows[q] = st->matrix[(size_t)st->rank * n + q];
		x->recv_rows[q] = st->matrix[q * n + (size_t)st->rank];
	}
}

/* hier, with the group as nodes x per_node ranks (node-major); this rank
 * is (node a, local l). Stage 1 over the rail (local index l on every
 * node): to (m, l) the tokens needing node m, once each (none to itself).
 * Stage 2 over the node: to (a, l') every row routed to (a, l') from the
 * tokens of (m, l) for every node m, its own included. */
static void a2a_counts_hier(a2a_state *st)
{
	a2a_xchg *rail = &st->x[0], *node = &st->x[1];
	const int L = st->per_node, N = st->nodes, a = st->rank / L, l = st->rank % L;
	const size_t n = (size_t)st->size;
	for (int m = 0; m < N; m++) {
		const int peer = m * L + l;
		rail->members[m] = peer;
		rail->send_rows[m] = m == a ? 0 : st->need[(size_t)st->rank * (size_t)N + (size_t)m];
		rail->recv_rows[m] = m == a ? 0 : st->need[(size_t)peer * (size_t)N + (size_t)a];
	}
	for (int j = 0; j < L; j++) {
		const int peer = a * L + j;
		node->members[j] = peer;
		node->send_rows[j] = node->recv_rows[j] = 0;
		for (int m = 0; m < N; m++) {
			node->send_rows[j] += st->matrix[(size_t)(m * L + l) * n + (size_t)peer];
			node->recv_rows[j] += st->matrix[(size_t)(m * L + j) * n + (size_t)st->rank];
		}
	}
}

/* The EP group (ep consecutive world ranks) and, for hier, its layout:
 * node-major, the same number of ranks on every node. MB_ERR_USAGE with
 * one line otherwise. */
/* The nodes the EP group's ranks are on, in any layout (node numbers are
 * below the group's size on any world that numbers them in order). */
static int a2a_distinct_nodes(const a2a_state *st)
{
	int most = 0, n = 0;
	for (int i = 0; i < st->ep; i++)
		most = a2a_node(st, i) > most ? a2a_node(st, i) : most;
	char *seen = calloc((size_t)most + 1, 1);
	for (int i = 0; seen && i < st->ep; i++)
		if (!seen[a2a_node(st, i)]++)
			n++;
	free(seen);
	return n ? n : 1;
}

static int a2a_layout(a2a_state *st, int world_rank, int world_size)
{
	int rc = mb_group_sizes("alltoall", world_size, &st->ep, &st->dp);
	if (rc)
		return rc;
	st->group = world_rank / st->ep;
	st->base = st->group * st->ep;
	st->nodes = 1;
	st->per_node = st->ep;
	/* count the group's nodes: each run of ranks on one node must follow the
	 * last (node numbers grow with the world rank of their first rank) and
	 * hold as many ranks */
	int run = 1, ok = 1;
	for (int i = 1; i < st->ep && ok; i++) {
		const int a = a2a_node(st, i - 1), b = a2a_node(st, i);
		if (a == b) {
			run++;
			continue;
		}
		if (st->nodes == 1)
			st->per_node = run;
		ok = b > a && run == st->per_node;
		st->nodes++;
		run = 1;
	}
	if (st->nodes > 1 && (!ok || run != st->per_node)) {
		if (st->hier)
			return mb_err(MB_ERR_USAGE, "alltoall: algo=hier needs the EP group's ranks "
						    "node-major with the same number on every node");
		st->per_node = 0; /* not node-major or uneven: flat only, nodes counted apart */
		st->nodes = a2a_distinct_nodes(st);
	}
	return 0;
}

/* What setup would refuse for this world, checked before any work. */
static int a2a_world_fits(const mb_params *p, int world_size)
{
	mb_a2a_spec s;
	int64_t rb;
	int ep = (int)mb_param_int(p, "ep"), dp = (int)mb_param_int(p, "dp");
	int rc = mb_group_sizes("alltoall", world_size, &ep, &dp);
	if (!rc)
		rc = mb_a2a_spec_get(p, 0, &s, &rb);
	return rc ? rc : a2a_fits(&s, ep);
}

/* hier's communicators inside the EP group: the rail (the ranks of this
 * local index on every node) and the node (colors are unique per group). */
static int a2a_subgroups(a2a_state *st, const mb_case_ctx *ctx)
{
	const int L = st->per_node, color = st->group * st->ep;
	if (!ctx->split) { /* one process: both are this rank alone */
		st->sub[0] = st->sub[1] = ctx->world;
		return 0;
	}
	int rc = ctx->split(ctx, color + st->rank % L, st->rank, &st->sub[0]);
	if (!rc)
		st->own_sub = 1;
	return rc ? rc : ctx->split(ctx, color + st->rank / L, st->rank, &st->sub[1]);
}

/* Order matters with several ranks: the checks every rank makes alike come
 * first, then the collectives (splits, comm_init), so that no rank enters
 * one alone. */
static int a2a_setup(const mb_case_ctx *ctx, void **out)
{
	a2a_state *st = calloc(1, sizeof *st);
	if (!st)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory");
	*out = st;
	char buf[24];
	mb_dtype dt;
	st->be = ctx->be;
	st->dev = ctx->dev;
	st->node_of = ctx->node_of;
	st->group_free = ctx->group_free;
	st->phases = a2a_phases(ctx->params);
	st->ep = (int)mb_param_int(ctx->params, "ep");
	st->dp = (int)mb_param_int(ctx->params, "dp");
	st->hier = strcmp(mb_param_choice(ctx->params, "algo", buf, sizeof buf), "hier") == 0;
	int rc = mb_dtype_parse(mb_param_choice(ctx->params, "dtype", buf, sizeof buf), &dt);
	if (!rc)
		rc = mb_a2a_spec_get(ctx->params, ctx->seed, &st->spec, &st->row_bytes);
	if (!rc)
		rc = a2a_layout(st, ctx->world.rank, ctx->world.size);
	if (!rc)
		rc = a2a_fits(&st->spec, st->ep);
	if (rc)
		return rc;
	st->ep_grp = ctx->world;
	if (st->ep < ctx->world.size) {
		if ((rc = ctx->split(ctx, st->group, ctx->world.rank, &st->ep_grp)))
			return rc;
		st->own_ep = 1;
	}
	st->rank = st->ep_grp.rank;
	st->size = st->ep_grp.size;
	const size_t n = (size_t)st->size;
	st->matrix = malloc(n * n * sizeof *st->matrix);
	st->need = st->hier ? malloc(n * (size_t)st->nodes * sizeof *st->need) : NULL;
	if (!st->matrix || (st->hier && !st->need))
		return mb_err(MB_ERR_NOMEM, "alltoall: out of memory for %d x %d counts", st->size,
			      st->size);
	rc = mb_a2a_group_matrix(&st->spec, st->base, st->size, st->hier ? st->nodes : 1,
				 st->matrix, st->need);
	if (rc)
		return rc;
	st->nx = st->hier ? 2 : 1;
	if (!st->hier) {
		rc = a2a_xchg_init(st, &st->x[0], &st->ep_grp);
		if (!rc)
			a2a_counts_flat(st);
	} else {
		rc = a2a_subgroups(st, ctx);
		if (!rc)
			rc = a2a_xchg_init(st, &st->x[0], &st->sub[0]);
		if (!rc)
			rc = a2a_xchg_init(st, &st->x[1], &st->sub[1]);
		if (!rc)
			a2a_counts_hier(st);
	}
	for (int i = 0; i < st->nx && !rc; i++)
		rc = a2a_xchg_plan(st, &st->x[i], dt);
	return rc;
}

/* dispatch: the exchanges in order; combine: back in reverse. */
static int a2a_run(void *state)
{
	a2a_state *st = state;
	int rc = 0;
	for (int i = 0; i < st->nx && !rc; i++)
		rc = mb_dev_launch(st->be, st->dev, st->x[i].plan, &st->x[i].io[0]);
	for (int i = st->nx - 1; i >= 0 && !rc && st->phases == 2; i--)
		rc = mb_dev_launch(st->be, st->dev, st->x[i].plan, &st->x[i].io[1]);
	return rc;
}

/* Check every block of buf (packed by member in order, rows[member] rows
 * each) against the payload; incoming: the blocks came from the members to
 * this rank (dispatch), else they are this rank's own blocks coming back. */
static int a2a_check_buffer(a2a_state *st, const a2a_xchg *x, int incoming, const char *what,
			    mb_check *out)
{
	const int64_t *rows = incoming ? x->recv_rows : x->send_rows;
	const int64_t total = incoming ? x->nrecv : x->nsend;
	const size_t bytes = (size_t)(total * st->row_bytes);
	unsigned char *h = mb_alloc(bytes ? bytes : 1);
	if (!h)
		return mb_err(MB_ERR_NOMEM, "alltoall: out of host memory for the check");
	int rc = mb_dev_download(st->be, st->dev, h, incoming ? x->recv : x->back, bytes);
	size_t off = 0;
	const int me = x->members[x->rank];
	for (int q = 0; q < x->size && !rc; q++) {
		int64_t wrong_rows, first;
		const int peer = x->members[q], src = incoming ? peer : me, dst = incoming ? me : peer;
		int64_t wrong = mb_a2a_compare(st->spec.seed, src, dst, st->row_bytes, 0, rows[q],
					       h + off, &wrong_rows, &first);
		off += (size_t)(rows[q] * st->row_bytes);
		out->checked += rows[q] * st->row_bytes;
		if (wrong && !out->mismatched)
			snprintf(out->detail, sizeof out->detail,
				 "rank %d: %s: %lld wrong bytes in %lld of the %lld rows %s rank %d "
				 "(first: row %lld)",
				 me, what, (long long)wrong, (long long)wrong_rows, (long long)rows[q],
				 incoming ? "from" : "back from", peer, (long long)first);
		out->mismatched += wrong;
	}
	mb_free(h);
	return rc;
}

static int a2a_verify(void *state, mb_check *out)
{
	a2a_state *st = state;
	static const char *what[2][2] = {{"dispatch", "combine"},
					 {"inter-node dispatch", "inter-node combine"}};
	static const char *node_what[2] = {"intra-node dispatch", "intra-node combine"};
	memset(out, 0, sizeof *out);
	out->method = "exact: payload is a function of (seed, source, destination, index)";
	out->tolerance = 0;
	int rc = 0;
	for (int i = 0; i < st->nx && !rc; i++) {
		const char *const *w = i == 1 ? node_what : what[st->hier];
		rc = a2a_check_buffer(st, &st->x[i], 1, w[0], out);
		if (!rc && st->phases == 2)
			rc = a2a_check_buffer(st, &st->x[i], 0, w[1], out);
	}
	if (rc)
		return rc;
	out->passed = out->mismatched == 0;
	return 0;
}

static void a2a_info(void *state, mb_case_info *info)
{
	a2a_state *st = state;
	if (!st->matrix || !st->x[st->nx ? st->nx - 1 : 0].members)
		return;
	const a2a_totals t = a2a_sum(st);
	mb_cost c;
	a2a_cost_of(st, t, &c);
	const double n = st->size, mean = t.rows / n;
	mb_info_add(info, "ranks", n);
	mb_info_add(info, "ep", st->ep);
	mb_info_add(info, "dp", st->dp);
	mb_info_add(info, "nodes", st->nodes);
	mb_info_add(info, "busbw_factor", (n - 1) / n);
	mb_info_add(info, "row_bytes", (double)st->row_bytes);
	mb_info_add(info, "phases", st->phases);
	mb_info_add(info, "send_bytes", c.bytes);
	mb_info_add(info, "send_bytes_to_others", c.comm_bytes);
	mb_info_add(info, "send_bytes_across_nodes", c.comm_bytes_inter);
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
	.world_fits = a2a_world_fits,
};
