/* cpu_bf16.h: the CPU backend's bf16 kernels, for the ops the gmm suite
 * launches (GEMM, GMM, PERMUTE_BWD, UNPERMUTE, UNPERMUTE_BWD, SWIGLU,
 * SWIGLU_BWD; PERMUTE only copies rows and ROUTER(+BWD) read and write fp32
 * only, so cpu.c runs those itself).
 *
 * bf16 is storage only: every kernel computes in fp32 and rounds to bf16
 * (nearest even) once, when it stores. cpu.c offers bf16 only on CPUs with
 * avx512_bf16, and calls these after its own shape checks (GMM offsets
 * included); GEMM and GMM on its matmul path, the rest on its OpenMP path.
 */
#ifndef MB_CPU_BF16_H
#define MB_CPU_BF16_H

#include "../../harness/mb.h"

#include <stdint.h>

#include "../backend.h"

/* 1 if this module implements kind in bf16. */
int mb_cpu_bf16_kind(mb_op_kind kind);

/* Allocate the fp32 and bf16 scratch op's launches need into *scratch (NULL
 * for kinds that need none; freed with mb_cpu_bf16_free). Launches never
 * allocate. */
int mb_cpu_bf16_plan(const mb_op *op, void **scratch) MB_MUST_CHECK;

/* Run op (dtype MB_BF16, the op given to plan) on io; finished when it
 * returns. With fault set, add 1.0 to the first element of its first
 * floating-point output after computing it (MOEBENCH_FAULT, cpu.c). */
int mb_cpu_bf16_launch(const mb_op *op, void *scratch, int fault,
		       const mb_io *io) MB_MUST_CHECK;

/* Accepts NULL. */
void mb_cpu_bf16_free(void *scratch);

/* *p += 1.0 in bf16: the fault hook for a bf16 element. */
void mb_cpu_bf16_add1(uint16_t *p);

#endif
