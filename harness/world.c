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

int mb_world_init(int *argc, char ***argv, mb_world *w)
{
	w->rank = 0;
	w->size = 1;
	w->mpi = 0;
	w->launcher = mb_world_launcher();
	if (w->launcher[0] == 'n')
		return 0;
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return mb_err(MB_ERR_DEVICE, "MPI_Init failed under %s", w->launcher);
	w->mpi = 1;
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
