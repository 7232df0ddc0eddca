/* cpu_train.h: the CPU backend's training-step ops other than matmuls.
 *
 * RMSNORM(+BWD), EMBED(+BWD), XENT, ADAMW, ADD and KCAT(+BWD) (shapes and
 * buffer slots in backend.h), in fp32 with OpenMP loops. Every output
 * element is written by one thread in a fixed order, and every reduction
 * (d(gamma), d(table), the mean loss, the heads of d(k_rope)) sums in an
 * order fixed by the shape alone, so results do not depend on the thread
 * count. cpu.c plans and launches these kinds through the three functions
 * below; none of them calls BLAS, so they belong on cpu.c's OpenMP path.
 */
#ifndef MB_CPU_TRAIN_H
#define MB_CPU_TRAIN_H

#include "../../harness/mb.h"

#include "../backend.h"

/* 1 if kind is one of the ops this module implements. */
int mb_cpu_train_kind(mb_op_kind kind);

/* Check op's shape (MB_ERR_USAGE naming the op) and allocate everything its
 * launches need, the ADAMW step counter included, into *scratch (freed with
 * mb_cpu_train_free). Launches never allocate. */
int mb_cpu_train_plan(const mb_op *op, void **scratch) MB_MUST_CHECK;

/* Run op (the same op given to plan) on io; finished when it returns.
 * MB_ERR_USAGE for data out of range (an id or target outside the vocab). */
int mb_cpu_train_launch(const mb_op *op, void *scratch, const mb_io *io) MB_MUST_CHECK;

/* Accepts NULL. */
void mb_cpu_train_free(void *scratch);

/* The fault-injection hook (cpu.c, MOEBENCH_FAULT): adds 1.0f to the first
 * element of op's first floating-point output, out[0] for every kind here
 * (XENT: dlogits; ADAMW: the parameters), if it has one. */
void mb_cpu_train_corrupt(const mb_op *op, const mb_io *io);

#endif
