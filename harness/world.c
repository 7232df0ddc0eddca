/* world.c: launcher detection and MPI start-up (world.h). */
#include "mb.h"

#include <mpi.h>
#include <stdlib.h>

#include "world.h"

/* mpirun (ORTE) sets OMPI_COMM_WORLD_*; srun sets SLURM_STEP_ID plus a PMI
 * rank (ecosystem.md §4.5). MPI_Comm_rank is trusted over both once up. */
const char *mb_world_launcher(void)
{
	if (getenv("OMPI_COMM_WORLD_SIZE"))
		return "mpirun";
	if (getenv("SLURM_STEP_ID") && (getenv("PMIX_RANK") || getenv("PMI_RANK")))
		return "srun";
	return "none";
}

static MPI_Comm world_comm = MPI_COMM_WORLD;

int mb_world_init(int *argc, char ***argv, mb_world *w)
{
	w->rank = 0;
	w->size = 1;
	w->mpi = 0;
	w->comm = NULL;
	w->launcher = mb_world_launcher();
	if (w->launcher[0] == 'n')
		return 0;
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return mb_err(MB_ERR_DEVICE, "MPI_Init failed under %s", w->launcher);
	w->mpi = 1;
	w->comm = &world_comm;
	MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &w->size);
	return 0;
}

void mb_world_finalize(mb_world *w)
{
	if (w->mpi)
		MPI_Finalize();
	w->mpi = 0;
}

mb_group mb_world_group(const mb_world *w)
{
	mb_group g = {.rank = w->rank, .size = w->size, .mpi_comm = w->mpi ? w->comm : NULL};
	return g;
}

void mb_world_barrier(const mb_world *w)
{
	if (w->mpi)
		MPI_Barrier(MPI_COMM_WORLD);
}

void mb_world_max(const mb_world *w, double *x, int n)
{
	if (w->mpi && n > 0)
		MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void mb_world_sum(const mb_world *w, double *x, int n)
{
	if (w->mpi && n > 0)
		MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
