/* cpu_attn.h: the CPU backend's attention kernels (MB_OP_ATTN_FWD, _BWD).
 *
 * Flash-style fp32 attention: the seq x seq score matrix is never formed;
 * query blocks meet key blocks one pair at a time with an online softmax
 * (forward) or with P recomputed from the saved lse (backward, FlashAttention-2
 * order), and every block matmul is a single-threaded cblas_sgemm called from
 * an OpenMP thread. Buffers and their layouts are those of backend.h.
 *
 * The plan holds every byte the launches need, per thread: a few blocks of
 * at most 512 x 512 floats, packed copies of the rows of one head it works
 * on (seq x width), and, for GQA with fewer kv heads than twice the
 * threads, partial dK/dV of the kv heads that two threads share. So memory
 * is linear in seq, no seq x seq matrix exists, and launches never
 * allocate. Results are deterministic for a given thread count: every
 * output value is summed in a fixed order.
 */
#ifndef MB_CPU_ATTN_H
#define MB_CPU_ATTN_H

#include "../../harness/mb.h"

#include "../backend.h"

/* Check op (ATTN_FWD or ATTN_BWD, fp32; sizes > 0, heads a multiple of
 * kv_heads, widths that fit an int) and allocate its scratch for the current
 * OpenMP thread count into *scratch (release with mb_cpu_attn_free).
 * MB_ERR_USAGE or MB_ERR_UNSUPPORTED with a message on a bad op,
 * MB_ERR_NOMEM if the scratch cannot be had. */
int mb_cpu_attn_plan(const mb_op *op, void **scratch) MB_MUST_CHECK;

/* Bytes of scratch the plan holds (0 for NULL). */
size_t mb_cpu_attn_scratch_bytes(const void *scratch);

/* ATTN_FWD: io->in = {Q, K, V}, io->out = {O, lse}. Runs to completion. */
int mb_cpu_attn_fwd(const mb_op *op, void *scratch, const mb_io *io) MB_MUST_CHECK;

/* ATTN_BWD: io->in = {dO, Q, K, V, O, lse}, io->out = {dQ, dK, dV}, each
 * overwritten. Runs to completion. */
int mb_cpu_attn_bwd(const mb_op *op, void *scratch, const mb_io *io) MB_MUST_CHECK;

/* Release a plan's scratch; accepts NULL. */
void mb_cpu_attn_free(void *scratch);

#endif
