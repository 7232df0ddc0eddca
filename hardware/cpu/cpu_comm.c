/* cpu_comm.c: the CPU backend's collectives over MPI (cpu_comm.h). */
#include "../../harness/mb.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_comm.h"

struct mb_comm {
	int mpi; /* 0: a group of one, no MPI */
	MPI_Comm comm;
	int rank, size;
};

typedef struct a2a_scratch {
	const mb_comm *c;
	MPI_Datatype row; /* row_bytes contiguous bytes (when c->mpi) */
	int *scount, *sdispl, *rcount, *rdispl; /* [size] each */
	int fault;
} a2a_scratch;

/* Record MPI's own words for a failed call. */
static int mpi_fail(int code, const char *what)
{
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS)
		len = 0;
	msg[len < (int)sizeof msg ? len : (int)sizeof msg - 1] = '\0';
	return mb_err(MB_ERR_DEVICE, "cpu backend: %s failed: %s", what,
		      len ? msg : "unknown MPI error");
}

int mb_cpu_comm_init(const mb_group *g, mb_comm **out)
{
	*out = NULL;
	mb_comm *c = mb_calloc(1, sizeof *c);
	if (!c)
		return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory for a communicator");
	if (!g->mpi_comm) {
		if (g->size != 1) {
			mb_free(c);
			return mb_err(MB_ERR_USAGE,
				      "cpu backend: a group of %d ranks needs MPI (start with mpirun)",
				      g->size);
		}
		c->size = 1;
		*out = c;
		return 0;
	}
	int rc = MPI_Comm_dup(*(const MPI_Comm *)g->mpi_comm, &c->comm);
	if (rc != MPI_SUCCESS) {
		mb_free(c);
		return mpi_fail(rc, "MPI_Comm_dup");
	}
	c->mpi = 1;
	MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(c->comm, &c->rank);
	MPI_Comm_size(c->comm, &c->size);
	*out = c;
	return 0;
}

void mb_cpu_comm_free(mb_comm *c)
{
	if (!c)
		return;
	if (c->mpi)
		MPI_Comm_free(&c->comm);
	mb_free(c);
}

int mb_cpu_coll_check(const mb_op *op)
{
	const mb_comm *c = op->u.coll.comm;
	if (op->kind != MB_OP_ALLTOALLV && op->kind != MB_OP_ALLREDUCE)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: %s is not a collective",
			      mb_op_name(op->kind));
	if (!c)
		return mb_err(MB_ERR_USAGE, "cpu backend: %s without a communicator",
			      mb_op_name(op->kind));
	if (op->kind == MB_OP_ALLREDUCE) {
		if (op->dtype != MB_FP32 && op->dtype != MB_FP64)
			return mb_err(MB_ERR_UNSUPPORTED, "cpu backend: allreduce %s not implemented "
							  "(fp32 and fp64 only)",
				      mb_dtype_name(op->dtype));
		if (op->u.coll.count < 0)
			return mb_err(MB_ERR_USAGE, "cpu backend: allreduce of a negative count");
		return 0;
	}
	if (op->u.coll.row_bytes < 1 || op->u.coll.row_bytes > INT_MAX)
		return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv row_bytes %lld outside 1..2^31-1",
			      (long long)op->u.coll.row_bytes);
	if (op->u.coll.capacity < 0)
		return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv with a negative capacity");
	return 0;
}

void mb_cpu_coll_free(void *scratch)
{
	a2a_scratch *s = scratch;
	if (!s)
		return;
	if (s->c && s->c->mpi && s->row != MPI_DATATYPE_NULL)
		MPI_Type_free(&s->row);
	free(s->scount);
	mb_free(s);
}

int mb_cpu_alltoallv_plan(const mb_op *op, void **scratch)
{
	*scratch = NULL;
	int rc = mb_cpu_coll_check(op);
	if (rc)
		return rc;
	if (op->kind != MB_OP_ALLTOALLV)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: alltoallv plan for %s",
			      mb_op_name(op->kind));
	a2a_scratch *s = mb_calloc(1, sizeof *s);
	if (!s)
		return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory planning alltoallv");
	s->c = op->u.coll.comm;
	s->row = MPI_DATATYPE_NULL;
	const size_t n = (size_t)s->c->size;
	s->scount = calloc(4 * n, sizeof *s->scount);
	if (!s->scount) {
		mb_cpu_coll_free(s);
		return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory for %zu alltoallv counts", n);
	}
	s->sdispl = s->scount + n;
	s->rcount = s->sdispl + n;
	s->rdispl = s->rcount + n;
	if (s->c->mpi) {
		rc = MPI_Type_contiguous((int)op->u.coll.row_bytes, MPI_BYTE, &s->row);
		if (rc == MPI_SUCCESS)
			rc = MPI_Type_commit(&s->row);
		if (rc != MPI_SUCCESS) {
			mb_cpu_coll_free(s);
			return mpi_fail(rc, "MPI_Type_contiguous for alltoallv rows");
		}
	}
	const char *fault = getenv("MOEBENCH_FAULT");
	s->fault = fault && strcmp(fault, "alltoallv") == 0;
	*scratch = s;
	return 0;
}

/* int64 counts -> int counts and packed displacements, all in rows. */
static int a2a_counts(const int64_t *in, int n, int64_t capacity, int *count, int *displ,
		      const char *side, int64_t *total)
{
	int64_t sum = 0;
	for (int r = 0; r < n; r++) {
		if (in[r] < 0 || in[r] > INT_MAX)
			return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv %s count for rank %d is %lld "
						    "rows (accepted 0..2^31-1)",
				      side, r, (long long)in[r]);
		if (sum > INT_MAX)
			return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv %s displacement above "
						    "2^31-1 rows at rank %d",
				      side, r);
		count[r] = (int)in[r];
		displ[r] = (int)sum;
		sum += in[r];
	}
	if (sum > capacity)
		return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv %s %lld rows, capacity %lld", side,
			      (long long)sum, (long long)capacity);
	*total = sum;
	return 0;
}

int mb_cpu_alltoallv(const mb_op *op, void *scratch, const mb_io *io)
{
	a2a_scratch *s = scratch;
	if (!s || !io)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: alltoallv without a plan or buffers");
	const int64_t rb = op->u.coll.row_bytes, cap = op->u.coll.capacity;
	const int n = s->c->size;
	const int64_t *scnt = io->in[1], *rcnt = io->in[2];
	int64_t nsend = 0, nrecv = 0;
	int rc = a2a_counts(scnt, n, cap, s->scount, s->sdispl, "send", &nsend);
	if (!rc)
		rc = a2a_counts(rcnt, n, cap, s->rcount, s->rdispl, "receive", &nrecv);
	if (rc)
		return rc;
	unsigned char *recv = io->out[0];
	if (s->c->mpi) {
		rc = MPI_Alltoallv(io->in[0], s->scount, s->sdispl, s->row, recv, s->rcount,
				   s->rdispl, s->row, s->c->comm);
		if (rc != MPI_SUCCESS)
			return mpi_fail(rc, "MPI_Alltoallv");
	} else {
		if (scnt[0] != rcnt[0])
			return mb_err(MB_ERR_USAGE, "cpu backend: alltoallv on one rank sends %lld rows "
						    "to itself but expects %lld",
				      (long long)scnt[0], (long long)rcnt[0]);
		if (nsend > 0)
			memcpy(recv, io->in[0], (size_t)(nsend * rb));
	}
	if (s->fault && nrecv > 0)
		recv[0] = (unsigned char)(recv[0] + 1);
	return 0;
}

int mb_cpu_allreduce(const mb_op *op, void *scratch, const mb_io *io)
{
	(void)scratch;
	const mb_comm *c = op->u.coll.comm;
	if (!c || !io)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: allreduce without a communicator or "
					       "buffers");
	if (!c->mpi)
		return 0; /* the sum over one rank */
	const MPI_Datatype t = op->dtype == MB_FP64 ? MPI_DOUBLE : MPI_FLOAT;
	const size_t esize = mb_dtype_size(op->dtype);
	char *buf = io->out[0];
	for (int64_t done = 0; done < op->u.coll.count;) {
		int64_t left = op->u.coll.count - done;
		int chunk = left > INT_MAX ? INT_MAX : (int)left;
		int rc = MPI_Allreduce(MPI_IN_PLACE, buf + (size_t)done * esize, chunk, t, MPI_SUM,
				       c->comm);
		if (rc != MPI_SUCCESS)
			return mpi_fail(rc, "MPI_Allreduce");
		done += chunk;
	}
	return 0;
}
