/* cpu_comm.h: the CPU backend's collectives, over MPI (DESIGN §4).
 *
 * hardware/cpu/cpu.c wires these into its vtable: comm_init/comm_free, and
 * the ALLTOALLV and ALLREDUCE ops through its supports, plan, launch and
 * plan_free (backend.h documents the ops' slots). A communicator is a
 * duplicate of the group's MPI communicator with MPI_ERRORS_RETURN, so an
 * MPI failure comes back as MB_ERR_DEVICE with MPI's message instead of
 * aborting the job. A group without MPI (mpi_comm NULL) is one rank: its
 * collectives are local copies (alltoallv) or nothing (allreduce).
 *
 * Open MPI 4.1 implements MPI 3.1: counts and displacements are int. Rows
 * travel as one contiguous datatype of row_bytes bytes, committed at plan
 * time, so a count is a number of rows and every buffer may hold up to
 * 2^31-1 rows whatever their size.
 *
 * Fault injection (tests only): if MOEBENCH_FAULT is "alltoallv" when an
 * ALLTOALLV is planned, each of its launches adds 1 to the first byte of the
 * first row it received, so that a test can prove the check catches a
 * wrong exchange.
 */
#ifndef MB_CPU_COMM_H
#define MB_CPU_COMM_H

#include "../../harness/mb.h"

#include "../backend.h"

/* A communicator over g (every rank of g must call it, in the same order as
 * its other collective calls); *out is freed with mb_cpu_comm_free.
 * MB_ERR_DEVICE if MPI fails, MB_ERR_USAGE for a group without MPI whose
 * size is not 1. */
int mb_cpu_comm_init(const mb_group *g, mb_comm **out) MB_MUST_CHECK;
/* Free a communicator (collective over its group, like MPI_Comm_free);
 * accepts NULL. */
void mb_cpu_comm_free(mb_comm *c);

/* 0 if op (ALLTOALLV or ALLREDUCE) can run here, else MB_ERR_UNSUPPORTED or
 * MB_ERR_USAGE with the reason recorded. ALLTOALLV moves bytes, so any dtype
 * goes; ALLREDUCE sums fp32 or fp64. */
int mb_cpu_coll_check(const mb_op *op) MB_MUST_CHECK;

/* Plan an ALLTOALLV: *scratch gets the int count and displacement arrays
 * for the communicator's size and the committed row datatype, so that a
 * launch allocates nothing. Free with mb_cpu_coll_free. */
int mb_cpu_alltoallv_plan(const mb_op *op, void **scratch) MB_MUST_CHECK;
/* One exchange (MPI_Alltoallv, blocking). The int64 counts in io->in[1] and
 * io->in[2] must each fit an int and their sums the op's capacity, else
 * MB_ERR_USAGE; without MPI the rows for rank 0 are copied to out[0]. */
int mb_cpu_alltoallv(const mb_op *op, void *scratch, const mb_io *io) MB_MUST_CHECK;
/* out[0] (count elements of fp32 or fp64) = its sum over the group, in
 * place (MPI_Allreduce, blocking; chunked above 2^31-1 elements). Needs no
 * scratch: pass NULL. */
int mb_cpu_allreduce(const mb_op *op, void *scratch, const mb_io *io) MB_MUST_CHECK;
/* Free what mb_cpu_alltoallv_plan made; accepts NULL. */
void mb_cpu_coll_free(void *scratch);

#endif
