/* alltoall.h: the expert-parallel exchange's counts and payload, as pure
 * functions (suites/alltoall.c).
 *
 * The alltoall suite sends, from every rank to every rank, the rows an MoE
 * layer's dispatch would send (mode moe), or equal blocks of bytes (mode
 * uniform, the nccl-tests-style size sweep). What each rank sends, and every
 * byte of it, is a function of the seed, the ranks and the parameters only,
 * so any rank, a test or a bare MPI loop (tests/tools/a2a_bare.c) can
 * recompute the exchange without communicating.
 *
 * moe: rank r holds tokens seeded router logits, row t's logit for expert e
 * being 4 u - 2 with u = mb_rand_uniform(seed, stream 401, (r tokens + t)
 * experts + e). Scores are their softmax; each token picks the top_k
 * experts of scores + bias (mb_ref_topk: best first, ties to the lower
 * index; with groups > 1, MoGE, the top_k/groups best of each of groups equal
 * contiguous blocks of experts), where bias is 0 (skew 0) or the Zipf bias that gives expert e
 * about a 1/(e+1)^skew share of the choices (within its group when grouped;
 * mb_ref_skew_bias, calibrated on
 * min(tokens, 2^21 / experts, >= 64) tokens of a rank-independent stream
 * 402, so every rank gets the same bias). The experts are spread evenly:
 * rank q holds experts q E/size .. (q+1) E/size - 1, and each (token,
 * expert) pair is one row sent to the rank holding that expert, so every
 * rank sends tokens * top_k rows of row_bytes = hidden * dtype bytes, packed
 * by destination rank, in (token, choice) order within each destination.
 *
 * uniform: rows are single dtype elements (as nccl-tests counts them), and
 * every rank sends bytes / (size * dtype) rows to every rank, self included;
 * bytes must be a multiple of size * dtype.
 *
 * Payload: byte j of the block that rank src sends to rank dst (row j /
 * row_bytes, byte j % row_bytes) is byte j % 8 (little-endian) of
 * mb_rand_u64(seed, mb_a2a_stream(src, dst), j / 8).
 */
#ifndef MB_ALLTOALL_H
#define MB_ALLTOALL_H

#include "../harness/mb.h"

#include "suite.h"

typedef enum { MB_A2A_MOE = 0, MB_A2A_UNIFORM = 1 } mb_a2a_mode;

/* Everything the counts depend on. */
typedef struct mb_a2a_spec {
	mb_a2a_mode mode;
	uint64_t seed;
	int64_t tokens, experts, top_k; /* moe: per rank; experts in the whole model */
	int64_t groups;                 /* moe: MoGE expert groups, 0 = ungrouped */
	double skew;                    /* moe: Zipf exponent, 0 = balanced */
	int64_t bytes;                  /* uniform: bytes each rank sends, self included */
	int64_t elem_bytes;             /* uniform: bytes of one row (the dtype's) */
} mb_a2a_spec;

/* The spec and the row size of a case (the suite's parameters and the run's
 * seed). */
int mb_a2a_spec_get(const mb_params *p, uint64_t seed, mb_a2a_spec *s,
		    int64_t *row_bytes) MB_MUST_CHECK;

/* send_rows[0..size) = the rows rank sends to each rank in one dispatch.
 * MB_ERR_USAGE (one line) if the spec cannot be spread over size ranks:
 * experts not a multiple of size, or bytes not a multiple of size * dtype.
 * Cost (moe): O(tokens * experts) for the routing plus the skew bias's
 * calibration, O(40 * min(tokens, 2^21/experts) * experts). */
int mb_a2a_counts(const mb_a2a_spec *s, int rank, int size, int64_t *send_rows) MB_MUST_CHECK;

/* rows[src * size + dst] = mb_a2a_counts of every rank, the bias computed
 * once: what a rank needs to know what it will receive (the column of its
 * rank). Cost (moe): size * tokens * experts seeded scores (routing every
 * rank's tokens; OpenMP over tokens) plus one calibration, as above: linear
 * in size, so at a thousand ranks it is the slowest part of a case's setup. */
int mb_a2a_matrix(const mb_a2a_spec *s, int size, int64_t *rows) MB_MUST_CHECK;
/* The same for an expert-parallel group of size ranks whose tokens are
 * those of world ranks base .. base + size - 1, and with need (not NULL),
 * the group node-major on nodes nodes of size/nodes ranks:
 * need[src * nodes + m] = the tokens of src with at least one expert on
 * node m (uniform mode: the rows src sends to node m). */
int mb_a2a_group_matrix(const mb_a2a_spec *s, int base, int size, int nodes, int64_t *rows,
			int64_t *need) MB_MUST_CHECK;

/* The seeded stream of the block src sends to dst. */
uint64_t mb_a2a_stream(int src, int dst);
/* dst_buf = rows first .. first + n - 1 of the block src sends to dst
 * (rows of row_bytes), as the payload rule above says. */
void mb_a2a_fill(uint64_t seed, int src, int dst, int64_t row_bytes, int64_t first, int64_t n,
		 void *dst_buf);
/* Compare buf, holding rows first .. first + n - 1 of block (src, dst),
 * with the payload: returns the number of wrong bytes; *wrong_rows gets
 * the rows with any wrong byte, *first_wrong the first such row (or -1). */
int64_t mb_a2a_compare(uint64_t seed, int src, int dst, int64_t row_bytes, int64_t first,
		       int64_t n, const void *buf, int64_t *wrong_rows, int64_t *first_wrong);

/* The cost of one iteration of a set-up case (state from the suite's
 * setup), exact for its world and seed, which the params-only cost hook
 * cannot know: bytes = the bytes a rank sends per iteration, self included
 * (the nccl-tests "size"; in moe mode the mean over ranks, which is every
 * rank's dispatch), comm_bytes = the same without self traffic (mean over
 * ranks), tokens = tokens per rank (moe) or 0. */
int mb_a2a_case_cost(void *state, mb_cost *out) MB_MUST_CHECK;

extern const mb_suite mb_suite_alltoall;

#endif
