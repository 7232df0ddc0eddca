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
	/* Nodes: the ranks that share memory with this one (MPI's shared-memory
	 * split) form a node; nodes are numbered by their lowest world rank. */
	int node, nodes;      /* this rank's node, and how many there are */
	int local_rank, local_size;
	int *node_of;         /* [size]: every rank's node; owned */
	char host[64];        /* this rank's host name */
	const char *nodes_from; /* how nodes were found (static) */
} mb_world;

/* Detect the launcher from the environment and initialise MPI if there is
 * one. Fails with MB_ERR_DEVICE if MPI_Init fails. */
int mb_world_init(int *argc, char ***argv, mb_world *w) MB_MUST_CHECK;
void mb_world_finalize(mb_world *w);

/* Every rank's host name, in rank order, into hosts[size][64] (rank 0's
 * own only without MPI). For the result's per-rank records. */
void mb_world_hosts(const mb_world *w, char (*hosts)[64]);

/* A sub-group of the world: the ranks that pass the same color, ordered
 * by key. Collective over the world (every rank calls it at the same
 * point). MB_ERR_DEVICE if MPI refuses; without MPI the group is this one
 * rank. Free with mb_world_group_free. */
int mb_world_split(const mb_world *w, int color, int key, mb_group *out) MB_MUST_CHECK;
void mb_world_group_free(mb_group *g);

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
