/* world.h: who this process is among the ranks of a run.
 *
 * A plain start (no launcher) is one rank and never touches MPI. Under
 * Open MPI's mpirun or Slurm's srun, MPI is initialised and rank and size
 * come from MPI_COMM_WORLD; only rank 0 writes files.
 */
#ifndef MB_WORLD_H
#define MB_WORLD_H

#include "mb.h"

#include "../hardware/backend.h"

typedef struct mb_world {
	int rank, size;
	int mpi;              /* 1 if MPI was initialised */
	const char *launcher; /* "none", "mpirun", "srun" */
	const void *comm;     /* &MPI_COMM_WORLD when mpi, else NULL */
} mb_world;

/* Detect the launcher from the environment and initialise MPI if there is
 * one. Fails with MB_ERR_DEVICE if MPI_Init fails. */
int mb_world_init(int *argc, char ***argv, mb_world *w) MB_MUST_CHECK;
void mb_world_finalize(mb_world *w);

/* The whole world as a backend group. */
mb_group mb_world_group(const mb_world *w);
/* Wait for every rank (no-op without MPI). */
void mb_world_barrier(const mb_world *w);
/* x[i] = the largest x[i] over all ranks, in place. */
void mb_world_max(const mb_world *w, double *x, int n);
/* x[i] = the sum of x[i] over all ranks, in place. */
void mb_world_sum(const mb_world *w, double *x, int n);
/* The launcher the environment shows, without initialising anything. */
const char *mb_world_launcher(void);

#endif
