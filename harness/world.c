/* world.c: launcher detection and MPI start-up (world.h). */
#include "mb.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Nodes from MPI's shared-memory split: a node's ranks share memory; its
 * leader (local rank 0) has the node number, the leaders' order by world
 * rank; every rank learns every rank's node. */
static int world_nodes(mb_world *w)
{
	MPI_Comm local, leaders;
	/* Tests may group ranks into pretend nodes by number (the result says so). */
	const char *fake = getenv("MOEBENCH_RANKS_PER_NODE");
	char *end;
	long per = fake ? strtol(fake, &end, 10) : 0;
	if (fake && (*end || end == fake || per < 1 || per > 1 << 20))
		return mb_err(MB_ERR_USAGE, "MOEBENCH_RANKS_PER_NODE='%s' is not an integer in "
					    "1..1048576", fake);
	w->nodes_from = per ? "MOEBENCH_RANKS_PER_NODE (a test setting: ranks grouped by number)"
			    : "MPI shared-memory split";
	if (per)
		MPI_Comm_split(MPI_COMM_WORLD, w->rank / (int)per, w->rank, &local);
	else
		MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL,
				    &local);
	MPI_Comm_rank(local, &w->local_rank);
	MPI_Comm_size(local, &w->local_size);
	MPI_Comm_split(MPI_COMM_WORLD, w->local_rank == 0 ? 0 : MPI_UNDEFINED, w->rank, &leaders);
	int nn[2] = {0, 0};
	if (leaders != MPI_COMM_NULL) {
		MPI_Comm_rank(leaders, &nn[0]);
		MPI_Comm_size(leaders, &nn[1]);
		MPI_Comm_free(&leaders);
	}
	MPI_Bcast(nn, 2, MPI_INT, 0, local);
	MPI_Comm_free(&local);
	w->node = nn[0];
	w->nodes = nn[1];
	w->node_of = malloc((size_t)w->size * sizeof *w->node_of);
	if (!w->node_of)
		return mb_err(MB_ERR_NOMEM, "out of memory for the node map of %d ranks", w->size);
	MPI_Allgather(&w->node, 1, MPI_INT, w->node_of, 1, MPI_INT, MPI_COMM_WORLD);
	return 0;
}

int mb_world_init(int *argc, char ***argv, mb_world *w)
{
	memset(w, 0, sizeof *w);
	w->size = w->nodes = w->local_size = 1;
	w->nodes_from = "one process";
	w->launcher = mb_world_launcher();
	if (gethostname(w->host, sizeof w->host - 1))
		mb_strlcpy(w->host, "unknown", sizeof w->host);
	if (w->launcher[0] == 'n')
		return 0;
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return mb_err(MB_ERR_DEVICE, "MPI_Init failed under %s", w->launcher);
	w->mpi = 1;
	w->comm = &world_comm;
	MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &w->size);
	return world_nodes(w);
}

void mb_world_finalize(mb_world *w)
{
	if (w->mpi)
		MPI_Finalize();
	w->mpi = 0;
	free(w->node_of);
	w->node_of = NULL;
}

void mb_world_hosts(const mb_world *w, char (*hosts)[64])
{
	char mine[64] = {0};
	mb_strlcpy(mine, w->host, sizeof mine);
	if (w->mpi)
		MPI_Allgather(mine, 64, MPI_CHAR, hosts, 64, MPI_CHAR, MPI_COMM_WORLD);
	else
		memcpy(hosts[0], mine, sizeof mine);
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

int mb_world_split(const mb_world *w, int color, int key, mb_group *out)
{
	*out = (mb_group){.rank = 0, .size = 1, .mpi_comm = NULL};
	if (!w->mpi)
		return 0;
	MPI_Comm *c = malloc(sizeof *c);
	if (!c || MPI_Comm_split(MPI_COMM_WORLD, color, key, c) != MPI_SUCCESS) {
		free(c);
		return mb_err(c ? MB_ERR_DEVICE : MB_ERR_NOMEM, "MPI_Comm_split (color %d) failed",
			      color);
	}
	MPI_Comm_rank(*c, &out->rank);
	MPI_Comm_size(*c, &out->size);
	out->mpi_comm = c;
	return 0;
}

void mb_world_group_free(mb_group *g)
{
	if (g->mpi_comm) {
		MPI_Comm *c = (MPI_Comm *)g->mpi_comm;
		MPI_Comm_free(c);
		free(c);
	}
	*g = (mb_group){.rank = 0, .size = 1, .mpi_comm = NULL};
}
