/* a2a_bare: the alltoall suite against a bare MPI_Alltoallv loop with
 * identical counts, in one MPI job (ci/bench-alltoall.sh).
 *
 *   mpirun -np N a2a_bare [--iters N] [--warmup N] [--seconds S] [key=value ...]
 *
 * key=value are the alltoall suite's parameters (table defaults otherwise);
 * bytes may be a list or sweep (bytes=1M,4M or 1M..64M*4), one measurement
 * each, of --iters pairs, or as many as fit in about --seconds S (from the
 * warm-up's pace; at most 5000). For each, every rank sets the suite up
 * through its hooks on the CPU backend, and computes the same counts with
 * mb_a2a_matrix for the bare
 * loop, which sends the same payload in plain MPI_BYTE counts over
 * MPI_COMM_WORLD. The two are timed alternately (A B, then B A, ...), each
 * iteration as the runner times one: an untimed MPI_Barrier, then the
 * exchange(s) (for the suite: run + device sync), then, after the loop, the
 * slowest rank's time per iteration; the medians are compared. The suite's
 * output is then verified. Rank 0 prints one line per size:
 *   a2a np=N mode=M bytes=B iters=I suite_p50_s=S bare_p50_s=T time_ratio=S/T
 *     paired_busbw_ratio=R suite_busbw_gbps=X bare_busbw_gbps=Y
 *     suite_cv_pct=.. bare_cv_pct=.. check=ok|FAILED
 * with B the bytes a rank sends per iteration, self included (the suite's
 * cost: nccl-tests' size, summed over the exchanges; a mean over the ranks
 * in moe mode), busbw = B / p50 x (n-1)/n (nccl-tests alltoall), and R
 * the median over iterations of bare time / suite time, each pair run back
 * to back (the estimate of suite busbw / bare busbw that other processes'
 * load disturbs least).
 * Exit 0 if every check passed, 1 otherwise, 2 on usage errors.
 */
#include "../../harness/mb.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../harness/stats.h"
#include "../../harness/world.h"
#include "../../suites/alltoall.h"
#include "../../suites/suite.h"

typedef struct bare {
	const mb_backend *be;
	mb_dev *dev;
	int n, phases;
	int *scount, *sdispl, *rcount, *rdispl; /* bytes */
	unsigned char *send, *recv, *back;
} bare;

static void bare_free(bare *b)
{
	free(b->scount);
	mb_dev_free(b->be, b->dev, b->send);
	mb_dev_free(b->be, b->dev, b->recv);
	mb_dev_free(b->be, b->dev, b->back);
	memset(b, 0, sizeof *b);
}

/* The counts the suite uses, recomputed from the seed, in bytes. The
 * buffers come from the same allocator as the suite's (the CPU backend's
 * host memory, with its huge-page advice), so that the comparison isolates
 * the harness's path, not where the pages lie. */
static int bare_setup(const mb_params *p, uint64_t seed, int rank, int n, bare *b)
{
	mb_a2a_spec spec;
	int64_t rb;
	char buf[24];
	int rc = mb_a2a_spec_get(p, seed, &spec, &rb);
	if (rc)
		return rc;
	b->n = n;
	b->phases = strcmp(mb_param_choice(p, "phase", buf, sizeof buf), "dispatch") == 0 ? 1 : 2;
	int64_t *m = malloc((size_t)n * (size_t)n * sizeof *m);
	b->scount = malloc(4 * (size_t)n * sizeof *b->scount);
	if (!m || !b->scount) {
		free(m);
		return mb_err(MB_ERR_NOMEM, "a2a_bare: out of memory for counts");
	}
	b->sdispl = b->scount + n;
	b->rcount = b->sdispl + n;
	b->rdispl = b->rcount + n;
	rc = mb_a2a_matrix(&spec, n, m);
	int64_t so = 0, ro = 0;
	for (int q = 0; q < n && !rc; q++) {
		int64_t s = m[(size_t)rank * n + q] * rb, r = m[(size_t)q * n + rank] * rb;
		if (so + s > INT_MAX || ro + r > INT_MAX)
			rc = mb_err(MB_ERR_USAGE, "a2a_bare: more than 2^31-1 bytes per rank");
		b->scount[q] = (int)s, b->sdispl[q] = (int)so;
		b->rcount[q] = (int)r, b->rdispl[q] = (int)ro;
		so += s, ro += r;
	}
	free(m);
	if (rc)
		return rc;
	b->send = mb_dev_alloc(b->be, b->dev, (size_t)so + 1);
	b->recv = mb_dev_alloc(b->be, b->dev, (size_t)ro + 1);
	b->back = mb_dev_alloc(b->be, b->dev, (size_t)so + 1);
	if (!b->send || !b->recv || !b->back)
		return mb_err(MB_ERR_NOMEM, "a2a_bare: out of memory for %lld bytes", (long long)so);
	for (int q = 0, off = 0; q < n; off += b->scount[q], q++)
		mb_a2a_fill(seed, rank, q, rb, 0, b->scount[q] / rb, b->send + off);
	memset(b->recv, 0, (size_t)ro + 1);
	memset(b->back, 0, (size_t)so + 1);
	return 0;
}

static int bare_run(const bare *b)
{
	int rc = MPI_Alltoallv(b->send, b->scount, b->sdispl, MPI_BYTE, b->recv, b->rcount,
			       b->rdispl, MPI_BYTE, MPI_COMM_WORLD);
	if (rc == MPI_SUCCESS && b->phases == 2)
		rc = MPI_Alltoallv(b->recv, b->rcount, b->rdispl, MPI_BYTE, b->back, b->scount,
				   b->sdispl, MPI_BYTE, MPI_COMM_WORLD);
	return rc == MPI_SUCCESS ? 0 : mb_err(MB_ERR_DEVICE, "a2a_bare: MPI_Alltoallv failed");
}

typedef struct job {
	const mb_suite *su;
	const mb_backend *be;
	mb_dev *dev;
	const mb_world *w;
	int iters, warmup;
	double seconds; /* > 0: as many pairs as fit, at least iters, at most 5000 */
} job;

/* One timed iteration of the suite (which = 0) or the bare loop (1). */
static int one(const job *j, void *st, const bare *b, int which, double *t)
{
	mb_world_barrier(j->w);
	uint64_t t0 = mb_now_ns();
	int rc;
	if (which == 0) {
		rc = j->su->run(st);
		if (!rc)
			rc = mb_dev_sync(j->be, j->dev);
	} else {
		rc = bare_run(b);
	}
	uint64_t t1 = mb_now_ns();
	if (t)
		*t = (double)(t1 - t0) * 1e-9;
	return rc;
}

static int measure(const job *j, const mb_params *p, int *passed)
{
	const int n = j->w->size, rank = j->w->rank;
	const uint64_t seed = 42;
	mb_case_ctx ctx = {.be = j->be, .dev = j->dev, .params = p, .seed = seed,
			   .world = mb_world_group(j->w)};
	void *st = NULL;
	bare b = {.be = j->be, .dev = j->dev};
	double *ta = NULL, *tb = NULL, *scratch = NULL;
	int rc = j->su->setup(&ctx, &st);
	if (!rc)
		rc = bare_setup(p, seed, rank, n, &b);
	double failed = rc != 0; /* every rank stops, or none does */
	mb_world_max(j->w, &failed, 1);
	if (failed) {
		fprintf(stderr, "a2a_bare: rank %d: setup: %s\n", rank,
			rc ? mb_errmsg() : "another rank failed");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	double t0 = mb_now_s();
	for (int i = 0; i < j->warmup && !rc; i++) {
		rc = one(j, st, &b, 0, NULL);
		if (!rc)
			rc = one(j, st, &b, 1, NULL);
	}
	/* The number of pairs: from the warm-up's pace, the same on every rank. */
	double pace = (mb_now_s() - t0) / (j->warmup > 0 ? j->warmup : 1);
	mb_world_max(j->w, &pace, 1);
	int iters = j->iters;
	if (j->seconds > 0 && pace > 0 && j->seconds / pace > iters)
		iters = j->seconds / pace > 5000 ? 5000 : (int)(j->seconds / pace);
	ta = calloc((size_t)iters, sizeof *ta);
	tb = calloc((size_t)iters, sizeof *tb);
	scratch = calloc((size_t)iters, sizeof *scratch);
	if (!rc && (!ta || !tb || !scratch))
		rc = mb_err(MB_ERR_NOMEM, "a2a_bare: out of memory for %d samples", iters);
	for (int i = 0; i < iters && !rc; i++) {
		int first = i % 2; /* A B, B A, ...: drift and order cancel */
		rc = one(j, st, &b, first, first ? &tb[i] : &ta[i]);
		if (!rc)
			rc = one(j, st, &b, !first, first ? &ta[i] : &tb[i]);
	}
	/* The slowest rank per iteration first, as the runner does: a rank that
	 * went on to verify early would slow the others' last iteration. */
	if (!rc) {
		mb_world_max(j->w, ta, iters);
		mb_world_max(j->w, tb, iters);
	}
	mb_check ck = {0};
	if (!rc)
		rc = j->su->verify(st, &ck);
	if (rc) {
		fprintf(stderr, "a2a_bare: rank %d: %s\n", rank, mb_errmsg());
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	double bad = ck.passed ? 0 : 1;
	mb_world_max(j->w, &bad, 1);
	mb_stats sa, sb, sr;
	mb_stats_compute(ta, iters, scratch, &sa);
	mb_stats_compute(tb, iters, scratch, &sb);
	/* Each pair ran back to back, so bare/suite within a pair cancels what
	 * other processes on the machine did to both: its median is the paired
	 * estimate of suite busbw / bare busbw. */
	for (int i = 0; i < iters; i++)
		tb[i] /= ta[i];
	mb_stats_compute(tb, iters, scratch, &sr);
	mb_cost c;
	char mode[16];
	if (mb_a2a_case_cost(st, &c))
		c.bytes = 0;
	const double f = (double)(n - 1) / n;
	if (rank == 0)
		printf("a2a np=%d mode=%s bytes=%.0f iters=%d suite_p50_s=%.9g bare_p50_s=%.9g "
		       "time_ratio=%.4f paired_busbw_ratio=%.4f suite_busbw_gbps=%.4f "
		       "bare_busbw_gbps=%.4f suite_cv_pct=%.1f bare_cv_pct=%.1f check=%s\n",
		       n, mb_param_choice(p, "mode", mode, sizeof mode), c.bytes, iters, sa.p50,
		       sb.p50,
		       sa.p50 / sb.p50, sr.p50, c.bytes / sa.p50 / 1e9 * f, c.bytes / sb.p50 / 1e9 * f,
		       sa.cv_pct, sb.cv_pct, bad ? "FAILED" : "ok");
	fflush(stdout);
	*passed = !bad;
	j->su->teardown(st);
	bare_free(&b);
	free(ta), free(tb), free(scratch);
	return 0;
}

static int usage(const char *why)
{
	fprintf(stderr, "a2a_bare: %s\nusage: mpirun -np N a2a_bare [--iters N] [--warmup N] "
			"[--seconds S] [key=value ...]\n",
		why);
	return MB_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	mb_world w;
	if (mb_world_init(&argc, &argv, &w)) {
		fprintf(stderr, "a2a_bare: %s\n", mb_errmsg());
		return MB_EXIT_NODEV;
	}
	job j = {.su = &mb_suite_alltoall, .be = &mb_backend_cpu, .w = &w, .iters = 30,
		 .warmup = 3};
	mb_params p;
	double bytes[MB_MAX_SWEEP];
	int nbytes = 0, rc = mb_params_init(&p, j.su->params, j.su->nparams);
	for (int i = 1; i < argc && !rc; i++) {
		if ((!strcmp(argv[i], "--iters") || !strcmp(argv[i], "--warmup")) && i + 1 < argc) {
			int v = atoi(argv[i + 1]);
			*(argv[i][2] == 'i' ? &j.iters : &j.warmup) = v;
			i++;
			continue;
		}
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			j.seconds = atof(argv[++i]);
			continue;
		}
		const char *eq = strchr(argv[i], '=');
		char key[64];
		if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof key)
			return usage("arguments are --iters N, --warmup N and key=value");
		memcpy(key, argv[i], (size_t)(eq - argv[i]));
		key[eq - argv[i]] = '\0';
		int k = mb_params_find(&p, key);
		if (k < 0)
			return usage("unknown parameter");
		double vals[MB_MAX_SWEEP];
		int nv = 0;
		rc = mb_param_parse_sweep(&p.defs[k], eq + 1, vals, MB_MAX_SWEEP, &nv);
		if (!rc && nv > 1 && strcmp(key, "bytes") != 0)
			return usage("only bytes may take several values");
		if (!rc && !strcmp(key, "bytes"))
			memcpy(bytes, vals, sizeof(double) * (size_t)(nbytes = nv));
		else if (!rc)
			rc = mb_params_set(&p, key, vals[0], MB_SRC_USER);
	}
	if (rc || j.iters < 1 || j.warmup < 0)
		return usage(rc ? mb_errmsg() : "--iters must be >= 1");
	if (!j.be->comm_init) {
		fprintf(stderr, "a2a_bare: the cpu backend has no collectives (cpu_comm not wired)\n");
		mb_world_finalize(&w);
		return MB_EXIT_NODEV;
	}
	if (mb_dev_open(j.be, &j.dev)) {
		fprintf(stderr, "a2a_bare: %s\n", mb_errmsg());
		return MB_EXIT_NODEV;
	}
	if (!nbytes)
		bytes[nbytes++] = (double)mb_param_int(&p, "bytes");
	int all = 1;
	for (int i = 0; i < nbytes; i++) {
		int passed = 0;
		if (mb_params_set(&p, "bytes", bytes[i], MB_SRC_USER) || j.su->validate(&p))
			return usage(mb_errmsg());
		rc = measure(&j, &p, &passed);
		all &= passed && !rc;
	}
	mb_dev_close(j.be, j.dev);
	mb_world_finalize(&w);
	return all ? MB_EXIT_OK : MB_EXIT_FAIL;
}
