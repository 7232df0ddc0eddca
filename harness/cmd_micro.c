/* cmd_micro.c: `moebench micro`: kernel microbenchmarks through Google
 * Benchmark (harness/gbench), and the machine's measured ceilings.
 *
 * Each benchmark launches one backend op that is planned, allocated and
 * filled with seeded data outside the timed loop (lazily, so that a
 * --benchmark_filter sets up only what it selects, and one working set at a
 * time) after one untimed warm-up launch, times launch + device sync itself
 * (Google Benchmark's manual time) and is checked after every batch of
 * iterations against fp64 dot products
 * of the same inputs or byte for byte; a failed check marks the run
 * "invalid: ..." and the command exits 1 (fast and wrong is invalid).
 *
 *   gemm/square/2048/DT   C = A B, 2048^3: the measured matmul ceiling
 *   sgemm/openblas/2048/fp32  the same through cblas_sgemm directly, on the
 *                         same buffers (cpu devices only): what the backend
 *                         should reach
 *   gemm/up|down/MxKxN/DT one expert's up projection (rows per expert x
 *                         hidden x 2 ffn) and down projection (rows x ffn x
 *                         hidden) at the model and size preset (--model,
 *                         --preset; the gmm suite's preset hook)
 *   gmm/GxMxKxN/DT        grouped GEMM (MB_OP_GMM, NN) over G equal groups
 *   attn_fwd/.../DT       causal attention forward at the attention suite's
 *                         preset head layout (FLOPs: QK^T and PV, halved)
 *   permute|unpermute/... routing of the preset's tokens to experts; bytes =
 *                         activation rows read + written (index arrays not
 *                         counted)
 *   copy/256MiB           a device-to-device copy: the measured bandwidth
 *                         ceiling. The backend interface has no copy op, so
 *                         it is MB_OP_PERMUTE with one expert and top-1 (rows
 *                         gathered in order = a copy of 16 KiB rows); bytes
 *                         = read + write = 2 x 256 MiB, as STREAM counts copy
 *   alltoall/SIZE         (world size > 1) MB_OP_ALLTOALLV, SIZE sent by each
 *                         rank (SIZE/ranks to each), 20 iterations on every
 *                         rank, each after a barrier, timed as the slowest
 *                         rank (MPI_Allreduce MAX); bytes = SIZE (nccl-tests'
 *                         algbw); exact payload check
 * FLOPs are 2 per multiply-add. Only rank 0 reports; --benchmark_out is
 * dropped on the others.
 *
 * The calibration file (-o FILE), "moebench.calibration/1", one JSON object
 * written atomically (harness/result.h mb_write_atomic):
 *   schema            "moebench.calibration/1"
 *   moebench_version  MB_VERSION
 *   host              hostname (gethostname) of rank 0
 *   device, device_library, device_kind  what the backend reports (mb_dev_info)
 *   backend           "cpu", "null", ...
 *   time              UTC at the end, "YYYY-MM-DDTHH:MM:SSZ"
 *   argv              the command line, "moebench" first
 *   config            {model, preset, dtype ("fp32"|"bf16"|"all"), seed,
 *                      world_size, benchmark_flags: the --benchmark_* flags}
 *   status            "ok" (every run valid), "invalid" (some run failed
 *                     its check or errored)
 *   ceilings          the measured ceilings, each from the median aggregate
 *                     of its benchmark under --benchmark_repetitions > 1
 *                     (the maximum would favour noise), else its one run:
 *     matmul_tflops   {fp32: TFLOP/s, bf16: TFLOP/s}, from gemm/square/2048/
 *                     fp32 and /bf16; null with "<dtype>_reason" beside it
 *                     when not run, skipped (unsupported) or invalid
 *     mem_gbps        copy/256MiB, GB/s = 1e9 B/s of read + written bytes;
 *                     null with mem_gbps_reason
 *     openblas_sgemm_tflops  sgemm/openblas/2048/fp32 (same statistic); null with
 *                     openblas_sgemm_reason. On a cpu device the ratio
 *                     matmul_tflops.fp32 / this says what the backend loses
 *     statistic       how the ceilings were taken from the runs (text)
 *     benchmarks      {matmul_fp32, matmul_bf16, mem, openblas_sgemm}: the
 *                     benchmark names they come from
 *   computed_peak     for a cpu device: {kind: "computed" (never published
 *                     or measured), fp32_tflops, fp32_how, bf16_tflops (null
 *                     without bf16 arithmetic), bf16_how, cores, ghz,
 *                     ghz_from, simd_bits, fma_units, bf16_unit ("amx",
 *                     "avx512_bf16", "none"), note}; null otherwise, with
 *                     computed_peak_reason
 *   benchmarks        every run Google Benchmark reported, in order:
 *                     {name (as registered), run_name (Google Benchmark's,
 *                     with /iterations:N and /manual_time), op, dtype, shape,
 *                     flops_per_iteration, bytes_per_iteration, aggregate
 *                     (null for a repetition, else "mean", "median",
 *                     "stddev" or "cv"), repetition (0-based; null for an
 *                     aggregate), repetitions, iterations (for an aggregate:
 *                     the repetitions), real_time_s (per iteration: manual
 *                     time, device-synchronised, slowest rank for
 *                     collectives), cpu_time_s (the calling thread's),
 *                     items_per_s, bytes_per_s, flops_per_s (null when not
 *                     counted), busbw_bytes_per_s (alltoall: bytes_per_s x
 *                     (n-1)/n), valid, error (null or Google Benchmark's
 *                     error message, "invalid: ..." for a failed check)}.
 *                     For the cv aggregate real_time_s and the rates are
 *                     null and cv (a fraction of the mean) is given instead
 *   skipped           [{name, reason}]: benchmarks the backend cannot run
 *                     (not registered, so not in benchmarks)
 * Numbers read back exactly (%.17g); NaN is written as null.
 */
#include "mb.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../hardware/cpu/cpu_blas.h"
#include "../hardware/specs/specs.h"
#include "../suites/ref.h"
#include "../suites/ref_attn.h"
#include "cli.h"
#include "gbench/gbench.h"
#include "micro.h"
#include "result.h"
#include "world.h"

#define MICRO_SQUARE 2048                    /* the matmul ceiling's GEMM */
#define MICRO_COPY_BYTES ((int64_t)256 << 20) /* the bandwidth ceiling's copy */
#define MICRO_COPY_ROW 4096                  /* fp32 per copied row: 16 KiB */
#define MICRO_A2A_ROW 4096                   /* bytes per alltoallv row */
#define MICRO_A2A_ITERS 20
#define MICRO_SAMPLES 256 /* matmul outputs and permuted rows checked */
#define MICRO_MAX 24
#define MICRO_BUFS 5
#define MICRO_CHUNK ((size_t)1 << 20) /* elements staged at a time */

/* Seeded data streams, distinct from the suites'. */
enum { S_A = 301, S_B, S_X, S_W, S_Q, S_K, S_V, S_PICK, S_ROUTE };

typedef enum { MK_GEMM, MK_SGEMM, MK_GMM, MK_ATTN, MK_PERMUTE, MK_UNPERMUTE, MK_COPY, MK_A2A } mk;

typedef struct micro_run micro_run;

typedef struct micro_bench {
	char name[96], shape[96];
	mk kind;
	mb_op op;            /* kind, dtype and shape of the op (SGEMM: op.u.gemm) */
	int64_t group_rows;  /* GMM: rows per group */
	double flops, bytes; /* per iteration */
	int64_t iters;       /* fixed iteration count (collectives), or 0 */
	micro_run *mr;
	/* made by setup, freed by teardown */
	int ready;
	mb_plan *plan;
	mb_comm *comm;
	mb_io io;
	void *buf[MICRO_BUFS];
	void *host; /* PERMUTE: idx; UNPERMUTE: pos then w; A2A: send, recv counts */
	int skipped; /* the device cannot run it (reason in micro_run.skip) */
} micro_bench;

struct micro_run {
	const mb_backend *be;
	mb_dev *dev;
	mb_dev_info info;
	mb_world w;
	uint64_t seed;
	micro_bench b[MICRO_MAX];
	int nb;
	struct {
		char name[96], reason[200];
	} skip[MICRO_MAX];
	int nskip;
};

/* ---- data ---- */

static size_t es_of(const micro_bench *b) { return mb_dtype_size(b->op.dtype); }

/* Element i of a seeded tensor as the device holds it (rounded to dt). */
static double rval(const micro_run *mr, uint64_t stream, uint64_t i, mb_dtype dt)
{
	float f = (float)(2 * mb_rand_uniform(mr->seed, stream, i) - 1);
	return dt == MB_BF16 ? mb_bf16_widen(mb_bf16_round(f)) : f;
}

static double elem(const void *p, size_t i, mb_dtype dt)
{
	return dt == MB_BF16 ? mb_bf16_widen(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Device memory. SGEMM (cpu devices only, where device memory is host
 * memory) gets the backend's buffers too, so that it differs from the
 * backend's GEMM in the call only, not in the pages it reads. */
static void *mbuf(micro_bench *b, size_t bytes)
{
	return mb_dev_alloc(b->mr->be, b->mr->dev, bytes);
}

static int mwrite(micro_bench *b, void *dst, const void *src, size_t n)
{
	return mb_dev_upload(b->mr->be, b->mr->dev, dst, src, n);
}

static int mread(micro_bench *b, void *dst, const void *src, size_t n)
{
	return mb_dev_download(b->mr->be, b->mr->dev, dst, src, n);
}

/* Buffer i of n elements of the bench's dtype, seeded from stream (or left
 * as allocated when stream is 0). */
static int alloc_fill(micro_bench *b, int i, int64_t n, uint64_t stream)
{
	const mb_dtype dt = b->op.dtype;
	const size_t es = mb_dtype_size(dt);
	if (!(b->buf[i] = mbuf(b, (size_t)n * es)))
		return mb_err(MB_ERR_NOMEM, "%s: out of memory for %lld elements", b->name,
			      (long long)n);
	if (!stream)
		return 0;
	float *f = mb_alloc(MICRO_CHUNK * sizeof *f);
	uint16_t *h = mb_alloc(MICRO_CHUNK * sizeof *h);
	int rc = f && h ? 0 : mb_err(MB_ERR_NOMEM, "%s: out of host memory", b->name);
	for (int64_t at = 0; !rc && at < n; at += (int64_t)MICRO_CHUNK) {
		size_t c = (size_t)(n - at) < MICRO_CHUNK ? (size_t)(n - at) : MICRO_CHUNK;
		mb_rand_fill_at(f, c, b->mr->seed, stream, (uint64_t)at, 1.0);
		if (dt == MB_BF16)
			for (size_t k = 0; k < c; k++)
				h[k] = mb_bf16_round(f[k]);
		rc = mwrite(b, (char *)b->buf[i] + (size_t)at * es, dt == MB_BF16 ? (void *)h : f,
			    c * es);
	}
	mb_free(f);
	mb_free(h);
	return rc;
}

/* A host array copied to a new device buffer i. */
static int alloc_copy(micro_bench *b, int i, const void *src, size_t bytes)
{
	if (!(b->buf[i] = mbuf(b, bytes ? bytes : 1)))
		return mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
	return mwrite(b, b->buf[i], src, bytes);
}

/* ---- set up and tear down ---- */

static void bench_teardown(micro_bench *b)
{
	micro_run *mr = b->mr;
	mb_dev_plan_free(mr->be, mr->dev, b->plan);
	mb_dev_comm_free(mr->be, mr->dev, b->comm);
	for (int i = 0; i < MICRO_BUFS; i++) {
		mb_dev_free(mr->be, mr->dev, b->buf[i]);
		b->buf[i] = NULL;
	}
	free(b->host);
	b->host = NULL;
	b->plan = NULL;
	b->comm = NULL;
	b->ready = 0;
}

/* Token t's top_k distinct experts, seeded; idx is [tokens][top_k]. */
static void route(const micro_run *mr, int64_t T, int64_t E, int64_t K, int32_t *idx)
{
	for (int64_t t = 0; t < T; t++)
		for (int64_t j = 0; j < K; j++) {
			int32_t e = (int32_t)(mb_rand_u64(mr->seed, S_ROUTE, (uint64_t)(t * K + j)) %
					      (uint64_t)E);
			for (int64_t q = 0; q < j; q++) /* distinct: take the next free one */
				if (idx[t * K + q] == e) {
					e = (int32_t)((e + 1) % E);
					q = -1;
				}
			idx[t * K + j] = e;
		}
}

static int setup_perm(micro_bench *b)
{
	const int64_t T = b->op.u.perm.tokens, H = b->op.u.perm.hidden, E = b->op.u.perm.experts,
		      K = b->op.u.perm.top_k, P = T * K;
	int rc;
	if (b->kind != MK_UNPERMUTE) { /* PERMUTE and COPY: x, idx -> xs, offsets, pos */
		int32_t *idx = b->host = calloc((size_t)P, sizeof *idx);
		if (!idx)
			return mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
		route(b->mr, T, E, K, idx);
		rc = alloc_fill(b, 0, T * H, S_X);
		if (!rc)
			rc = alloc_copy(b, 1, idx, (size_t)P * sizeof *idx);
		if (!rc)
			rc = alloc_fill(b, 2, P * H, 0);
		if (!rc && !(b->buf[3] = mbuf(b, (size_t)(E + 1) * sizeof(int64_t))))
			rc = mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
		if (!rc && !(b->buf[4] = mbuf(b, (size_t)P * sizeof(int32_t))))
			rc = mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
		b->io = (mb_io){.in = {b->buf[0], b->buf[1]}, .out = {b->buf[2], b->buf[3], b->buf[4]}};
		return rc;
	}
	/* UNPERMUTE: ys, pos, w -> y; pos a seeded permutation of the rows */
	int32_t *pos = b->host = malloc((size_t)P * (sizeof *pos + sizeof(float)));
	if (!pos)
		return mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
	float *w = (float *)(void *)(pos + P);
	for (int64_t i = 0; i < P; i++)
		pos[i] = (int32_t)i;
	for (int64_t i = P - 1; i > 0; i--) {
		int64_t r = (int64_t)(mb_rand_u64(b->mr->seed, S_ROUTE, (uint64_t)i) % (uint64_t)(i + 1));
		int32_t t = pos[i];
		pos[i] = pos[r];
		pos[r] = t;
	}
	for (int64_t i = 0; i < P; i++)
		w[i] = (float)mb_rand_uniform(b->mr->seed, S_W, (uint64_t)i);
	rc = alloc_fill(b, 0, P * H, S_X);
	if (!rc)
		rc = alloc_copy(b, 1, pos, (size_t)P * sizeof *pos);
	if (!rc)
		rc = alloc_copy(b, 2, w, (size_t)P * sizeof *w);
	if (!rc)
		rc = alloc_fill(b, 3, T * H, 0);
	b->io = (mb_io){.in = {b->buf[0], b->buf[1], b->buf[2]}, .out = {b->buf[3]}};
	return rc;
}

/* Each rank sends rows_per_dest rows to every rank; the 64-bit words of
 * the rows from s to d are stream (s, d) of the seed. */
static uint64_t a2a_stream(int64_t src, int64_t dst) { return 0xa2a0000000000000ull | (uint64_t)src << 24 | (uint64_t)dst; }

static int setup_a2a(micro_bench *b)
{
	micro_run *mr = b->mr;
	const int64_t n = mr->w.size, rpd = b->op.u.coll.capacity / n,
		      words = rpd * MICRO_A2A_ROW / 8;
	mb_group g = mb_world_group(&mr->w);
	int rc = mb_dev_comm_init(mr->be, mr->dev, &g, &b->comm);
	int64_t *counts = b->host = malloc(2 * (size_t)n * sizeof *counts);
	uint64_t *send = malloc((size_t)(words * n) * sizeof *send);
	if (!rc && (!counts || !send))
		rc = mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
	for (int64_t d = 0; !rc && d < n; d++) {
		counts[d] = counts[n + d] = rpd;
		for (int64_t q = 0; q < words; q++)
			send[d * words + q] = mb_rand_u64(mr->seed, a2a_stream(mr->w.rank, d), (uint64_t)q);
	}
	size_t bytes = (size_t)(words * n) * sizeof *send;
	if (!rc)
		rc = alloc_copy(b, 0, send, bytes);
	free(send);
	if (!rc && !(b->buf[1] = mbuf(b, bytes)))
		rc = mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
	b->op.u.coll.comm = b->comm;
	if (!rc)
		rc = mb_dev_plan(mr->be, mr->dev, &b->op, &b->plan);
	b->io = (mb_io){.in = {b->buf[0], counts, counts + n}, .out = {b->buf[1]}};
	return rc;
}

static int setup_kind(micro_bench *b)
{
	const mb_op *o = &b->op;
	int rc = 0;
	switch (b->kind) {
	case MK_GEMM:
	case MK_SGEMM:
		rc = alloc_fill(b, 0, o->u.gemm.m * o->u.gemm.k, S_A);
		if (!rc)
			rc = alloc_fill(b, 1, o->u.gemm.k * o->u.gemm.n, S_B);
		if (!rc)
			rc = alloc_fill(b, 2, o->u.gemm.m * o->u.gemm.n, 0);
		b->io = (mb_io){.in = {b->buf[0], b->buf[1]}, .out = {b->buf[2]}};
		break;
	case MK_GMM: {
		const int64_t G = o->u.gmm.groups;
		int64_t *off = malloc((size_t)(G + 1) * sizeof *off);
		if (!off)
			return mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
		for (int64_t g = 0; g <= G; g++)
			off[g] = g * b->group_rows;
		rc = alloc_fill(b, 0, o->u.gmm.rows * o->u.gmm.k, S_X);
		if (!rc)
			rc = alloc_fill(b, 1, G * o->u.gmm.k * o->u.gmm.n, S_W);
		if (!rc)
			rc = alloc_copy(b, 2, off, (size_t)(G + 1) * sizeof *off);
		if (!rc)
			rc = alloc_fill(b, 3, o->u.gmm.rows * o->u.gmm.n, 0);
		free(off);
		b->io = (mb_io){.in = {b->buf[0], b->buf[1], b->buf[2]}, .out = {b->buf[3]}};
		break;
	}
	case MK_ATTN: {
		const int64_t bs = o->u.attn.batch * o->u.attn.seq;
		rc = alloc_fill(b, 0, bs * o->u.attn.heads * o->u.attn.d_qk, S_Q);
		if (!rc)
			rc = alloc_fill(b, 1, bs * o->u.attn.kv_heads * o->u.attn.d_qk, S_K);
		if (!rc)
			rc = alloc_fill(b, 2, bs * o->u.attn.kv_heads * o->u.attn.d_v, S_V);
		if (!rc)
			rc = alloc_fill(b, 3, bs * o->u.attn.heads * o->u.attn.d_v, 0);
		if (!rc && !(b->buf[4] = mbuf(b, (size_t)(bs * o->u.attn.heads) * sizeof(float))))
			rc = mb_err(MB_ERR_NOMEM, "%s: out of memory", b->name);
		b->io = (mb_io){.in = {b->buf[0], b->buf[1], b->buf[2]}, .out = {b->buf[3], b->buf[4]}};
		break;
	}
	case MK_PERMUTE:
	case MK_UNPERMUTE:
	case MK_COPY:
		rc = setup_perm(b);
		break;
	case MK_A2A:
		return setup_a2a(b);
	}
	if (!rc && b->kind != MK_SGEMM)
		rc = mb_dev_plan(b->mr->be, b->mr->dev, o, &b->plan);
	return rc;
}

/* ---- the timed iteration ---- */

static int bench_iter(void *arg, double *seconds, char *err, size_t n)
{
	micro_bench *b = arg;
	micro_run *mr = b->mr;
	int rc = 0;
	if (b->kind == MK_A2A)
		mb_world_barrier(&mr->w);
	const double t0 = mb_now_s();
	if (b->kind == MK_SGEMM) {
		const int64_t M = b->op.u.gemm.m, N = b->op.u.gemm.n, K = b->op.u.gemm.k;
		mb_cpu_sgemm(0, 0, M, N, K, 1.0f, b->buf[0], K, b->buf[1], N, 0.0f, b->buf[2], N);
	} else {
		rc = mb_dev_launch(mr->be, mr->dev, b->plan, &b->io);
		if (!rc)
			rc = mb_dev_sync(mr->be, mr->dev);
	}
	double t = mb_now_s() - t0;
	if (b->kind == MK_A2A) { /* the slowest rank's time; a failure anywhere stops all */
		double v[2] = {t, rc != 0};
		mb_world_max(&mr->w, v, 2);
		t = v[0];
		if (!rc && v[1])
			rc = mb_err(MB_ERR_DEVICE, "alltoallv failed on another rank");
	}
	*seconds = t;
	if (rc)
		snprintf(err, n, "%s", mb_errmsg());
	return rc;
}

/* Agree with every rank on a failure (collective benchmarks only, whose
 * ranks must leave their loops together). */
static int agree(micro_bench *b, int rc, const char *what)
{
	if (b->kind != MK_A2A)
		return rc;
	double f = rc != 0;
	mb_world_max(&b->mr->w, &f, 1);
	return !rc && f ? mb_err(MB_ERR_DEVICE, "%s failed on another rank", what) : rc;
}

static int bench_setup(void *arg, char *err, size_t n)
{
	micro_bench *b = arg;
	micro_run *mr = b->mr;
	if (b->ready)
		return 0;
	for (int i = 0; i < mr->nb; i++) /* one working set at a time */
		if (&mr->b[i] != b)
			bench_teardown(&mr->b[i]);
	mb_err_clear();
	int rc = agree(b, setup_kind(b), "setup");
	double t;
	if (!rc) /* untimed warm-up: first touch of the outputs, thread pools, lazy init */
		rc = bench_iter(b, &t, err, n);
	if (rc) {
		snprintf(err, n, "setup: %s", mb_errmsg());
		bench_teardown(b);
		return rc;
	}
	b->ready = 1;
	return 0;
}

/* ---- checks: 0 passed, 1 failed (why), < 0 could not check ---- */

/* The q-th of n sampled indices in [0, total): all of them when total <= n,
 * else the first and the last (where blocked kernels keep their edge
 * cases), then seeded ones. */
static int64_t sample(const micro_run *mr, int64_t q, int64_t n, int64_t total)
{
	if (total <= n || q == 0)
		return q;
	if (q == 1)
		return total - 1;
	return (int64_t)(mb_rand_u64(mr->seed, S_PICK, (uint64_t)q) % (uint64_t)total);
}

/* Sampled entries of a (grouped) matmul Y = X W_g against fp64 dot
 * products of the same rounded inputs; relative to the largest |entry|. */
static int check_matmul(micro_bench *b, char *why, size_t n)
{
	const mb_dtype dt = b->op.dtype;
	const int gmm = b->kind == MK_GMM;
	const int64_t M = gmm ? b->op.u.gmm.rows : b->op.u.gemm.m,
		      N = gmm ? b->op.u.gmm.n : b->op.u.gemm.n, K = gmm ? b->op.u.gmm.k : b->op.u.gemm.k;
	const uint64_t sa = gmm ? S_X : S_A, sb = gmm ? S_W : S_B;
	const void *out = b->buf[gmm ? 3 : 2];
	const int64_t total = M * N, ns = total < MICRO_SAMPLES ? total : MICRO_SAMPLES;
	const double tol = dt == MB_BF16 ? 1e-2 : 1e-4; /* bf16: the output's own rounding */
	double ref[MICRO_SAMPLES], got[MICRO_SAMPLES], scale = MB_CHECK_SCALE_FLOOR;
	int64_t at[MICRO_SAMPLES];
	for (int64_t q = 0; q < ns; q++) {
		int64_t idx = sample(b->mr, q, MICRO_SAMPLES, total);
		int64_t i = idx / N, j = idx % N, g = gmm ? i / b->group_rows : 0;
		double acc = 0;
		for (int64_t p = 0; p < K; p++)
			acc += rval(b->mr, sa, (uint64_t)(i * K + p), dt) *
			       rval(b->mr, sb, (uint64_t)(g * K * N + p * N + j), dt);
		unsigned char e[8];
		int rc = mread(b, e, (const char *)out + (size_t)idx * es_of(b), es_of(b));
		if (rc)
			return rc;
		ref[q] = acc;
		got[q] = elem(e, 0, dt);
		at[q] = idx;
		scale = fmax(scale, fabs(acc));
	}
	int64_t bad = 0, worst = 0;
	for (int64_t q = 0; q < ns; q++) {
		double e = fabs(got[q] - ref[q]) / scale;
		bad += !(e <= tol);
		if (!(e <= fabs(got[worst] - ref[worst]) / scale))
			worst = q;
	}
	if (!bad)
		return 0;
	snprintf(why, n, "%lld of %lld sampled outputs off by more than %g of max |out|; [%lld][%lld] "
		 "= %.9g, fp64 reference %.9g", (long long)bad, (long long)ns, tol,
		 (long long)(at[worst] / N), (long long)(at[worst] % N), got[worst], ref[worst]);
	return 1;
}

/* Rows (b=0, h, i) at the first, middle and last query of the first and
 * last head: O and lse against the fp64 reference (suites/ref_attn.h). */
static int check_attn(micro_bench *b, char *why, size_t n)
{
	const mb_op *o = &b->op;
	const mb_dtype dt = o->dtype;
	const int64_t S = o->u.attn.seq, H = o->u.attn.heads, KV = o->u.attn.kv_heads,
		      dq = o->u.attn.d_qk, dv = o->u.attn.d_v, B = o->u.attn.batch;
	const size_t nq = (size_t)(B * S * H * dq), nk = (size_t)(B * S * KV * dq),
		     nv = (size_t)(B * S * KV * dv);
	float *q = malloc((nq + nk + nv) * sizeof *q);
	double *p = malloc((size_t)(S + 2 * dv) * sizeof *p);
	unsigned char *row = malloc((size_t)dv * 4);
	int rc = q && p && row ? 0 : mb_err(MB_ERR_NOMEM, "%s: out of memory for the check", b->name);
	int64_t bad = 0;
	char first[160] = "";
	if (!rc) {
		const uint64_t streams[3] = {S_Q, S_K, S_V};
		const size_t counts[3] = {nq, nk, nv};
		float *dst = q;
		for (int t = 0; t < 3; dst += counts[t], t++) {
			mb_rand_fill_at(dst, counts[t], b->mr->seed, streams[t], 0, 1.0);
			if (dt == MB_BF16)
				for (size_t i = 0; i < counts[t]; i++)
					dst[i] = mb_bf16_widen(mb_bf16_round(dst[i]));
		}
	}
	mb_ref_attn ra = {.batch = B, .seq = S, .heads = H, .kv_heads = KV, .d_qk = dq, .d_v = dv,
			  .scale = o->u.attn.scale, .causal = o->u.attn.causal, .q = q,
			  .k = q + nq, .v = q + nq + nk};
	const double tol = dt == MB_BF16 ? 3e-2 : 2e-3; /* the attention suite's */
	const int64_t rows[3] = {0, S / 2, S - 1}, heads[2] = {0, H - 1};
	for (int hi = 0; !rc && hi < 2; hi++)
		for (int ri = 0; !rc && ri < 3; ri++) {
			const int64_t h = heads[hi], i = rows[ri];
			double *o_ref = p + S, lse = mb_ref_attn_row(&ra, 0, h, i, p, o_ref), scale = 1;
			float lse_got;
			rc = mread(b, row, (char *)b->buf[3] + (size_t)((i * H + h) * dv) * es_of(b),
				   (size_t)dv * es_of(b));
			if (!rc)
				rc = mread(b, &lse_got, (float *)b->buf[4] + h * S + i, sizeof lse_got);
			for (int64_t c = 0; c < dv; c++)
				scale = fmax(scale, fabs(o_ref[c]));
			for (int64_t c = 0; !rc && c <= dv; c++) {
				double g = c < dv ? elem(row, (size_t)c, dt) : lse_got,
				       r = c < dv ? o_ref[c] : lse;
				if (fabs(g - r) / (c < dv ? scale : fmax(1, fabs(r))) <= tol)
					continue;
				if (!bad++)
					snprintf(first, sizeof first, "%s[h=%lld][i=%lld][%lld] = %.7g, "
						 "fp64 reference %.7g", c < dv ? "O" : "lse", (long long)h,
						 (long long)i, (long long)c, g, r);
			}
		}
	free(q);
	free(p);
	free(row);
	if (rc || !bad)
		return rc;
	snprintf(why, n, "%lld values of 6 checked rows off by more than %g; %s", (long long)bad,
		 tol, first);
	return 1;
}

/* PERMUTE and COPY: offsets and every pos exactly as a stable counting
 * sort gives them; the rows at sampled (COPY: all) positions byte-equal to
 * their source rows. */
static int check_permute(micro_bench *b, char *why, size_t n)
{
	const int64_t T = b->op.u.perm.tokens, H = b->op.u.perm.hidden, E = b->op.u.perm.experts,
		      K = b->op.u.perm.top_k, P = T * K;
	const int32_t *idx = b->host;
	const size_t rowb = (size_t)H * es_of(b);
	int64_t *off = malloc((size_t)(2 * E + 1) * sizeof *off), *cur = off + E + 1;
	int32_t *pos = malloc((size_t)P * sizeof *pos);
	const int64_t rows_at_once = (int64_t)(MICRO_CHUNK * 4 / rowb) + 1;
	unsigned char *x = malloc(rowb * (size_t)rows_at_once), *y = malloc(rowb * (size_t)rows_at_once);
	int rc = off && pos && x && y ? 0 : mb_err(MB_ERR_NOMEM, "%s: out of memory for the check", b->name);
	if (!rc)
		rc = mread(b, off, b->buf[3], (size_t)(E + 1) * sizeof *off);
	if (!rc)
		rc = mread(b, pos, b->buf[4], (size_t)P * sizeof *pos);
	int64_t bad = 0;
	if (!rc) {
		memset(cur, 0, (size_t)E * sizeof *cur);
		for (int64_t i = 0; i < P; i++)
			cur[idx[i]]++;
		for (int64_t e = 0, s = 0; e < E; e++) {
			const int64_t count = cur[e];
			bad += off[e] != s;
			cur[e] = s;
			s += count;
		}
		bad += off[E] != P;
		for (int64_t i = 0; i < P; i++)
			bad += pos[i] != cur[idx[i]]++;
		if (bad)
			snprintf(why, n, "%lld expert offsets or row positions differ from a stable sort",
				 (long long)bad);
	}
	/* pos is now known to be a permutation: src[row] = the pair it holds */
	int32_t *src = !rc && !bad ? malloc((size_t)P * sizeof *src) : NULL;
	if (!rc && !bad && !src)
		rc = mb_err(MB_ERR_NOMEM, "%s: out of memory for the check", b->name);
	for (int64_t i = 0; src && i < P; i++)
		src[pos[i]] = (int32_t)i;
	const int full = b->kind == MK_COPY; /* one expert, top-1: pos is the identity */
	const int64_t checks = full ? P : (P < MICRO_SAMPLES ? P : MICRO_SAMPLES);
	for (int64_t c = 0; src && !rc && !bad && c < checks; c += full ? rows_at_once : 1) {
		const int64_t r = full ? c : sample(b->mr, c, MICRO_SAMPLES, P), t = src[r] / K;
		const int64_t nr = full ? (P - c < rows_at_once ? P - c : rows_at_once) : 1;
		rc = mread(b, x, (char *)b->buf[0] + (size_t)t * rowb, rowb * (size_t)nr);
		if (!rc)
			rc = mread(b, y, (char *)b->buf[2] + (size_t)r * rowb, rowb * (size_t)nr);
		if (!rc && memcmp(x, y, rowb * (size_t)nr) != 0) {
			bad = 1;
			snprintf(why, n, "row %lld of the %s differs from token %lld's row", (long long)r,
				 full ? "copy" : "permuted rows", (long long)t);
		}
	}
	free(src);
	free(off);
	free(pos);
	free(x);
	free(y);
	return rc ? rc : bad != 0;
}

/* Sampled tokens' whole rows y[t] = sum_j w[t,j] ys[pos[t,j]] in fp64. */
static int check_unpermute(micro_bench *b, char *why, size_t n)
{
	const mb_dtype dt = b->op.dtype;
	const int64_t T = b->op.u.perm.tokens, H = b->op.u.perm.hidden, K = b->op.u.perm.top_k;
	const int32_t *pos = b->host;
	const float *w = (const float *)(const void *)(pos + T * K);
	const int64_t ns = T < 64 ? T : 64;
	const double tol = dt == MB_BF16 ? 1e-2 : 1e-5;
	unsigned char *row = malloc((size_t)H * es_of(b));
	int rc = row ? 0 : mb_err(MB_ERR_NOMEM, "%s: out of memory for the check", b->name);
	int64_t bad = 0;
	for (int64_t s = 0; !rc && s < ns; s++) {
		const int64_t t = sample(b->mr, s, ns, T);
		rc = mread(b, row, (char *)b->buf[3] + (size_t)(t * H) * es_of(b), (size_t)H * es_of(b));
		for (int64_t c = 0; !rc && c < H; c++) {
			double r = 0, mag = MB_CHECK_SCALE_FLOOR; /* sum of |terms|: cancellation */
			for (int64_t j = 0; j < K; j++) {
				double term = (double)w[t * K + j] *
					      rval(b->mr, S_X, (uint64_t)((int64_t)pos[t * K + j] * H + c), dt);
				r += term;
				mag += fabs(term);
			}
			double g = elem(row, (size_t)c, dt);
			if (fabs(g - r) <= tol * mag)
				continue;
			if (!bad++)
				snprintf(why, n, "y[%lld][%lld] = %.9g, fp64 reference %.9g (tolerance %g)",
					 (long long)t, (long long)c, g, r, tol);
		}
	}
	free(row);
	return rc ? rc : bad != 0;
}

/* Every received word is the one its source generated for this rank. */
static int check_a2a(micro_bench *b, char *why, size_t n)
{
	micro_run *mr = b->mr;
	const int64_t ranks = mr->w.size, words = b->op.u.coll.capacity / ranks * MICRO_A2A_ROW / 8;
	uint64_t *r = malloc((size_t)(words * ranks) * sizeof *r);
	int rc = r ? mread(b, r, b->buf[1], (size_t)(words * ranks) * sizeof *r)
		   : mb_err(MB_ERR_NOMEM, "%s: out of memory for the check", b->name);
	int64_t bad = 0;
	for (int64_t s = 0; !rc && s < ranks; s++)
		for (int64_t q = 0; q < words; q++)
			bad += r[s * words + q] != mb_rand_u64(mr->seed, a2a_stream(s, mr->w.rank), (uint64_t)q);
	free(r);
	if (bad)
		snprintf(why, n, "rank %d received %lld wrong 8-byte words", mr->w.rank, (long long)bad);
	return rc ? rc : bad != 0;
}

static int bench_check(void *arg, char *err, size_t n)
{
	micro_bench *b = arg;
	char why[240] = "";
	int rc;
	mb_err_clear();
	switch (b->kind) {
	case MK_GEMM: case MK_SGEMM: case MK_GMM: rc = check_matmul(b, why, sizeof why); break;
	case MK_ATTN: rc = check_attn(b, why, sizeof why); break;
	case MK_PERMUTE: case MK_COPY: rc = check_permute(b, why, sizeof why); break;
	case MK_UNPERMUTE: rc = check_unpermute(b, why, sizeof why); break;
	default: rc = check_a2a(b, why, sizeof why); break;
	}
	if (b->kind == MK_SGEMM)
		mb_cpu_blas_idle(); /* as the cpu backend does after each matmul */
	if (rc < 0)
		snprintf(why, sizeof why, "the check could not run: %s", mb_errmsg());
	if (b->kind == MK_A2A) {
		double f = rc != 0;
		mb_world_max(&b->mr->w, &f, 1);
		if (f && !rc) {
			rc = 1;
			snprintf(why, sizeof why, "the check failed on another rank");
		}
	}
	if (rc)
		snprintf(err, n, "%s", why);
	return rc != 0;
}

/* ---- which benchmarks ---- */

typedef struct micro_args {
	const char *backend, *out, *dtype, *model, *size;
	char **gb; /* the --benchmark_* flags, in order */
	int ngb;
} micro_args;

static micro_bench *add(micro_run *mr, mk kind, mb_dtype dt, const char *name)
{
	if (mr->nb >= MICRO_MAX)
		return NULL;
	micro_bench *b = &mr->b[mr->nb++];
	memset(b, 0, sizeof *b);
	b->kind = kind;
	b->mr = mr;
	b->op.dtype = dt;
	snprintf(b->name, sizeof b->name, "%s/%s", name, mb_dtype_name(dt));
	return b;
}

static void add_gemm(micro_run *mr, mk kind, mb_dtype dt, const char *what, int64_t m, int64_t n,
		     int64_t k)
{
	char name[64];
	if (m == n && n == k)
		snprintf(name, sizeof name, "%s/%lld", what, (long long)m);
	else
		snprintf(name, sizeof name, "%s/%lldx%lldx%lld", what, (long long)m, (long long)k,
			 (long long)n);
	micro_bench *b = add(mr, kind, dt, name);
	if (!b)
		return;
	b->op.kind = MB_OP_GEMM;
	b->op.u.gemm.m = m;
	b->op.u.gemm.n = n;
	b->op.u.gemm.k = k;
	b->op.u.gemm.alpha = 1.0f;
	b->flops = 2.0 * (double)m * (double)n * (double)k;
	snprintf(b->shape, sizeof b->shape, "m=%lld n=%lld k=%lld", (long long)m, (long long)n,
		 (long long)k);
}

/* A preset's integer parameters, through the suite's own preset hook. */
static int preset_ints(const mb_registry *reg, const char *suite, const mb_model *m, mb_size size,
		       const char *const *keys, int64_t *vals, int n)
{
	const mb_suite *s = mb_registry_suite(reg, suite);
	if (!s)
		return mb_err(MB_ERR_UNSUPPORTED, "no %s suite in this build", suite);
	mb_params p;
	int rc = mb_params_init(&p, s->params, s->nparams);
	if (!rc && s->preset)
		rc = s->preset(m, size, &p);
	for (int i = 0; !rc && i < n; i++)
		vals[i] = mb_param_int(&p, keys[i]);
	return rc;
}

static void add_skip(micro_run *mr, const char *name, const char *reason)
{
	if (mr->nskip >= MICRO_MAX)
		return;
	mb_strlcpy(mr->skip[mr->nskip].name, name, sizeof mr->skip[0].name);
	mb_strlcpy(mr->skip[mr->nskip].reason, reason, sizeof mr->skip[0].reason);
	mr->nskip++;
}

static void add_dtype(micro_run *mr, const mb_registry *reg, const mb_model *m, mb_size size,
		      mb_dtype dt)
{
	add_gemm(mr, MK_GEMM, dt, "gemm/square", MICRO_SQUARE, MICRO_SQUARE, MICRO_SQUARE);
	if (dt == MB_FP32)
		add_gemm(mr, MK_SGEMM, dt, "sgemm/openblas", MICRO_SQUARE, MICRO_SQUARE, MICRO_SQUARE);
	static const char *const gk[] = {"hidden", "ffn", "experts", "top_k", "tokens", "ep"};
	int64_t g[6];
	char name[96];
	if (preset_ints(reg, "gmm", m, size, gk, g, 6)) {
		snprintf(name, sizeof name, "gemm,gmm,permute/%s", mb_dtype_name(dt));
		add_skip(mr, name, mb_errmsg());
	} else {
		/* A device of an expert-parallel group of ep holds E/ep experts and
		 * gets, under balanced routing, T K ep / E rows for each. */
		const int64_t H = g[0], F = g[1], E = g[2], K = g[3], T = g[4],
			      ep = g[5] >= 1 && E % g[5] == 0 ? g[5] : 1, G = E / ep;
		const int64_t rows = T * K * ep / E > 0 ? T * K * ep / E : 1;
		add_gemm(mr, MK_GEMM, dt, "gemm/up", rows, 2 * F, H);
		add_gemm(mr, MK_GEMM, dt, "gemm/down", rows, H, F);
		snprintf(name, sizeof name, "gmm/%lldx%lldx%lldx%lld", (long long)G, (long long)rows,
			 (long long)H, (long long)(2 * F));
		micro_bench *b = add(mr, MK_GMM, dt, name);
		if (b) {
			b->op.kind = MB_OP_GMM;
			b->op.u.gmm.groups = G;
			b->op.u.gmm.rows = G * rows;
			b->op.u.gmm.k = H;
			b->op.u.gmm.n = 2 * F;
			b->op.u.gmm.mode = MB_GMM_NN;
			b->group_rows = rows;
			b->flops = 2.0 * (double)(G * rows) * (double)H * (double)(2 * F);
			snprintf(b->shape, sizeof b->shape, "groups=%lld rows/group=%lld k=%lld n=%lld",
				 (long long)G, (long long)rows, (long long)H, (long long)(2 * F));
		}
		for (int un = 0; un < 2; un++) {
			snprintf(name, sizeof name, "%s/t%lld_h%lld_e%lld_k%lld", un ? "unpermute" : "permute",
				 (long long)T, (long long)H, (long long)E, (long long)K);
			if (!(b = add(mr, un ? MK_UNPERMUTE : MK_PERMUTE, dt, name)))
				break;
			b->op.kind = un ? MB_OP_UNPERMUTE : MB_OP_PERMUTE;
			b->op.u.perm.tokens = T;
			b->op.u.perm.hidden = H;
			b->op.u.perm.experts = E;
			b->op.u.perm.top_k = K;
			b->bytes = (double)((un ? T * K + T : 2 * T * K) * H) * (double)mb_dtype_size(dt);
			snprintf(b->shape, sizeof b->shape, "tokens=%lld hidden=%lld experts=%lld top_k=%lld",
				 (long long)T, (long long)H, (long long)E, (long long)K);
		}
	}
	static const char *const ak[] = {"batch", "seq", "heads", "kv_heads", "d_qk", "d_v"};
	int64_t a[6];
	if (preset_ints(reg, "attention", m, size, ak, a, 6)) {
		snprintf(name, sizeof name, "attn_fwd/%s", mb_dtype_name(dt));
		add_skip(mr, name, mb_errmsg());
		return;
	}
	snprintf(name, sizeof name, "attn_fwd/b%lld_s%lld_h%lld_kv%lld_d%lld-%lld", (long long)a[0],
		 (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4], (long long)a[5]);
	micro_bench *b = add(mr, MK_ATTN, dt, name);
	if (!b)
		return;
	b->op.kind = MB_OP_ATTN_FWD;
	b->op.u.attn.batch = a[0];
	b->op.u.attn.seq = a[1];
	b->op.u.attn.heads = a[2];
	b->op.u.attn.kv_heads = a[3];
	b->op.u.attn.d_qk = a[4];
	b->op.u.attn.d_v = a[5];
	b->op.u.attn.scale = (float)(1 / sqrt((double)a[4]));
	b->op.u.attn.causal = 1;
	/* Megatron-LM's count: 2 b h (d_qk + d_v) S^2, halved for causal */
	b->flops = (double)(a[0] * a[2] * (a[4] + a[5])) * (double)a[1] * (double)a[1];
	snprintf(b->shape, sizeof b->shape, "batch=%lld seq=%lld heads=%lld kv_heads=%lld d_qk=%lld "
		 "d_v=%lld causal", (long long)a[0], (long long)a[1], (long long)a[2], (long long)a[3],
		 (long long)a[4], (long long)a[5]);
}

static void add_common(micro_run *mr)
{
	micro_bench *b = add(mr, MK_COPY, MB_FP32, "copy");
	if (b) {
		snprintf(b->name, sizeof b->name, "copy/%lldMiB", (long long)(MICRO_COPY_BYTES >> 20));
		b->op.kind = MB_OP_PERMUTE;
		b->op.u.perm.tokens = MICRO_COPY_BYTES / (MICRO_COPY_ROW * 4);
		b->op.u.perm.hidden = MICRO_COPY_ROW;
		b->op.u.perm.experts = 1;
		b->op.u.perm.top_k = 1;
		b->bytes = 2.0 * (double)MICRO_COPY_BYTES;
		snprintf(b->shape, sizeof b->shape, "bytes=%lld rows=%lld (permute, 1 expert, top-1)",
			 (long long)MICRO_COPY_BYTES, (long long)b->op.u.perm.tokens);
	}
	static const int64_t sizes[] = {(int64_t)1 << 20, (int64_t)16 << 20};
	for (size_t i = 0; mr->w.size > 1 && i < MB_ARRAY_LEN(sizes); i++) {
		if (!(b = add(mr, MK_A2A, MB_FP32, "alltoall")))
			break;
		int64_t rpd = sizes[i] / mr->w.size / MICRO_A2A_ROW;
		rpd = rpd > 0 ? rpd : 1;
		snprintf(b->name, sizeof b->name, "alltoall/%lldMiB", (long long)(sizes[i] >> 20));
		b->op.kind = MB_OP_ALLTOALLV;
		b->op.u.coll.row_bytes = MICRO_A2A_ROW;
		b->op.u.coll.capacity = rpd * mr->w.size;
		b->bytes = (double)(rpd * mr->w.size * MICRO_A2A_ROW);
		b->iters = MICRO_A2A_ITERS;
		snprintf(b->shape, sizeof b->shape, "ranks=%d rows_per_rank=%lld row_bytes=%d",
			 mr->w.size, (long long)rpd, MICRO_A2A_ROW);
	}
}

/* Register what the device can run; the rest goes to skip with the reason. */
static int register_all(micro_run *mr)
{
	int n = 0;
	for (int i = 0; i < mr->nb; i++) {
		micro_bench *b = &mr->b[i];
		int rc = 0;
		mb_err_clear();
		if (b->kind == MK_SGEMM && strcmp(mr->info.kind ? mr->info.kind : "", "cpu") != 0)
			rc = mb_err(MB_ERR_UNSUPPORTED, "the device is not the host CPU");
		else if (b->kind == MK_A2A && !mr->be->comm_init)
			rc = mb_err(MB_ERR_UNSUPPORTED, "backend %s has no collectives", mr->be->name);
		else if (b->kind != MK_SGEMM && b->kind != MK_A2A)
			rc = mr->be->supports ? mr->be->supports(mr->dev, &b->op)
					      : mb_err(MB_ERR_UNSUPPORTED, "backend %s runs no ops",
						       mr->be->name);
		if (rc) {
			add_skip(mr, b->name, mb_errmsg());
			b->skipped = 1;
			continue;
		}
		mb_gb_def d = {.name = b->name, .iter = bench_iter, .setup = bench_setup,
			       .check = bench_check, .arg = b, .bytes = b->bytes, .flops = b->flops,
			       .manual_time = 1, .iterations = b->iters};
		char err[256];
		if (mb_gb_register(&d, err, sizeof err))
			return mb_err(MB_ERR_INTERNAL, "%s", err);
		n++;
	}
	return n;
}

/* ---- the command ---- */

static void micro_help(const mb_registry *reg)
{
	printf("usage: moebench micro [-b BACKEND] [-o FILE] [--dtype fp32|bf16|all] [--model NAME]\n"
	       "                      [--preset quick|standard|full] [--benchmark_* flags ...]\n\n"
	       "Kernel microbenchmarks through Google Benchmark: the square %d^3 GEMM per\n"
	       "dtype (the measured matmul ceiling) and the same through OpenBLAS directly,\n"
	       "one expert's GEMMs, a grouped GEMM, permute and unpermute at the model and\n"
	       "size preset's shapes, causal attention, a %lld MiB device copy (the measured\n"
	       "bandwidth ceiling) and, under mpirun, alltoallv. Every result is checked;\n"
	       "a wrong one is reported invalid.\n\n"
	       "  -b, --backend NAME   ", MICRO_SQUARE, (long long)(MICRO_COPY_BYTES >> 20));
	for (int i = 0; i < reg->nbackends; i++)
		printf("%s%s", i ? "|" : "", reg->backends[i]->name);
	printf(" (default cpu)\n"
	       "  -o, --output FILE    also write the ceilings and every run as JSON\n"
	       "                       (moebench.calibration/1), atomically\n"
	       "      --dtype DT       fp32|bf16|all (default all)\n"
	       "      --model NAME     model preset for the shapes (default deepseek-v3)\n"
	       "      --preset SIZE    quick|standard|full (default quick)\n"
	       "  Google Benchmark's flags pass through: --benchmark_filter=REGEX,\n"
	       "  --benchmark_repetitions=N, --benchmark_min_time=SECONDS,\n"
	       "  --benchmark_format=console|json|csv, --benchmark_out=FILE,\n"
	       "  --benchmark_out_format=..., --benchmark_list_tests, --benchmark_time_unit=...\n"
	       "Ceilings use the median of repetitions. Exit: 0 all valid, 1 a benchmark\n"
	       "invalid or failed, 2 bad input, 3 backend unavailable.\n");
}

/* The value of option s/l ("-b X", "-bX", "--backend X", "--backend=X")
 * at argv[*i], advancing *i; NULL if argv[*i] is another option; *missing
 * set when it is this one without a value. */
static const char *optval(int argc, char **argv, int *i, const char *s, const char *l,
			  int *missing)
{
	const char *a = argv[*i];
	size_t ll = strlen(l);
	if ((s && !strcmp(a, s)) || !strcmp(a, l)) {
		if (*i + 1 >= argc) {
			*missing = 1;
			return NULL;
		}
		return argv[++*i];
	}
	if (s && !strncmp(a, s, 2) && a[2] && a[1] != '-')
		return a + 2;
	if (!strncmp(a, l, ll) && a[ll] == '=')
		return a + ll + 1;
	return NULL;
}

static int parse_args(int argc, char **argv, micro_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v;
		int missing = 0;
		if (!strncmp(s, "--benchmark_", 12) || !strncmp(s, "--v=", 4)) {
			a->gb[a->ngb++] = argv[i];
			continue;
		}
		if (!strcmp(s, "-h") || !strcmp(s, "--help"))
			return 1;
		if ((v = optval(argc, argv, &i, "-b", "--backend", &missing)))
			a->backend = v;
		else if ((v = optval(argc, argv, &i, "-o", "--output", &missing)))
			a->out = v;
		else if ((v = optval(argc, argv, &i, NULL, "--dtype", &missing)))
			a->dtype = v;
		else if ((v = optval(argc, argv, &i, NULL, "--model", &missing)))
			a->model = v;
		else if ((v = optval(argc, argv, &i, NULL, "--preset", &missing)))
			a->size = v;
		else
			return mb_err(MB_ERR_USAGE, "micro: %s '%s' (see moebench micro --help)",
				      missing ? "missing value for" : "unknown option or argument", s);
	}
	if (strcmp(a->dtype, "fp32") && strcmp(a->dtype, "bf16") && strcmp(a->dtype, "all"))
		return mb_err(MB_ERR_USAGE, "--dtype: '%s' is not one of fp32|bf16|all", a->dtype);
	if (a->out && !a->out[0])
		return mb_err(MB_ERR_USAGE, "-o: empty file name");
	return 0;
}

/* Flags that make the iterations depend on the process, which deadlocks
 * collectives: refused under MPI. */
static const char *mpi_unsafe(const micro_args *a)
{
	for (int i = 0; i < a->ngb; i++) {
		const char *f = a->gb[i], *eq = strchr(f, '=');
		if (!strncmp(f, "--benchmark_enable_random_interleaving", 38) &&
		    (!eq || strchr("1tTyY", eq[1]) || !strcmp(eq + 1, "on")))
			return f;
		if (!strncmp(f, "--benchmark_min_warmup_time=", 28) && strtod(eq + 1, NULL) > 0)
			return f;
	}
	return NULL;
}

/* The directory of path must take a new file (mb_write_atomic renames a
 * temporary file there); path must not be a directory. */
static int out_check(const char *path)
{
	char dir[4096];
	struct stat st;
	if (strlen(path) >= sizeof dir)
		return mb_err(MB_ERR_USAGE, "-o: file name too long");
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return mb_err(MB_ERR_USAGE, "-o: %s is a directory, not a file", path);
	strcpy(dir, path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (access(dir, W_OK | X_OK))
		return mb_err(MB_ERR_USAGE, "-o: cannot write to directory %s", dir);
	return 0;
}

/* Rank 0: the summary (console format only, so that json and csv stay
 * parseable on stdout) and the calibration file. */
static int report(const micro_run *mr, const micro_args *a, const mb_gb_results *res, int argc,
		  char **argv)
{
	mb_micro_bench *mb = calloc((size_t)(mr->nb + mr->nskip) + 1, sizeof *mb);
	if (!mb)
		return mb_usage_error(MB_EXIT_FAIL, "micro: out of memory");
	int n = 0, code = 0;
	for (int i = 0; i < mr->nb; i++) {
		const micro_bench *b = &mr->b[i];
		if (!b->skipped)
			mb[n++] = (mb_micro_bench){
				.name = b->name,
				.op = b->kind == MK_SGEMM ? "cblas_sgemm" : mb_op_name(b->op.kind),
				.dtype = mb_dtype_name(b->op.dtype), .shape = b->shape, .flops = b->flops,
				.bytes = b->bytes, .ranks = b->kind == MK_A2A ? mr->w.size : 0};
	}
	for (int i = 0; i < mr->nskip; i++)
		mb[n++] = (mb_micro_bench){.name = mr->skip[i].name, .op = "", .dtype = "",
					   .shape = "", .skipped = mr->skip[i].reason};
	mb_micro_doc d = {.backend = mr->be->name, .dev = mr->info, .model = a->model,
			  .preset = a->size, .dtype = a->dtype, .seed = mr->seed,
			  .world_size = mr->w.size, .argc = argc, .argv = argv, .nflags = a->ngb,
			  .flags = a->gb, .bench = mb, .nbench = n, .runs = res};
	mb_micro_ceilings c;
	mb_micro_ceilings_get(&d, &c);
	const int console = !strcmp(mb_gb_format(), "console");
	if (console)
		mb_micro_print(stdout, &d, &c);
	if (a->out) {
		cJSON *j = mb_calibration_to_json(&d, &c);
		char *text = j ? cJSON_Print(j) : NULL;
		if (!text || mb_write_atomic(a->out, text, strlen(text)))
			code = mb_usage_error(MB_EXIT_FAIL, "micro: cannot write %s: %s", a->out,
					      text ? mb_errmsg() : "out of memory");
		else if (console)
			printf("calibration: %s\n", a->out);
		cJSON_free(text);
		cJSON_Delete(j);
	}
	free(mb);
	return code;
}

/* Every rank's exit code becomes the worst one, so that all stop together;
 * only the ranks that failed have printed. */
static int all_agree(const mb_world *w, int code)
{
	double worst = code;
	mb_world_max(w, &worst, 1);
	return code ? code : (int)worst;
}

static int micro_main(const mb_registry *reg, const micro_args *a, micro_run *mr,
		      const mb_model *m, mb_size size, int argc, char **argv)
{
	const mb_world *w = &mr->w;
	char err[256], why[128] = "";
	const char *bad = w->size > 1 ? mpi_unsafe(a) : NULL;
	int code = 0;
	if (bad && w->rank == 0)
		code = mb_usage_error(MB_EXIT_USAGE, "micro: %s cannot be used with %d ranks (every "
				      "rank must run the same iterations)", bad, w->size);
	else if (bad)
		code = MB_EXIT_USAGE;
	else if (w->rank == 0 && a->out && out_check(a->out))
		code = mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	if (!code && !mr->be->probe(why, sizeof why))
		code = mb_usage_error(MB_EXIT_NODEV, "backend %s: no device (%s)", mr->be->name, why);
	else if (!code && mb_dev_open(mr->be, &mr->dev))
		code = mb_usage_error(MB_EXIT_NODEV, "backend %s: %s", mr->be->name, mb_errmsg());
	if ((code = all_agree(w, code)))
		return code;
	mr->be->describe(mr->dev, &mr->info);

	/* --benchmark_out on rank 0 only: Google Benchmark truncates it in
	 * every process that sees it. */
	char **flags = calloc((size_t)a->ngb + 1, sizeof *flags);
	int nf = 0;
	for (int i = 0; flags && i < a->ngb; i++)
		if (w->rank == 0 || strncmp(a->gb[i], "--benchmark_out=", 16) != 0)
			flags[nf++] = a->gb[i];
	if (!flags || mb_gb_init("moebench micro", nf, flags, err, sizeof err))
		code = mb_usage_error(MB_EXIT_USAGE, "micro: %s", flags ? err : "out of memory");
	free(flags);
	if (code)
		return code;
	if (strcmp(a->dtype, "bf16"))
		add_dtype(mr, reg, m, size, MB_FP32);
	if (strcmp(a->dtype, "fp32"))
		add_dtype(mr, reg, m, size, MB_BF16);
	add_common(mr);
	if (register_all(mr) < 0) {
		mb_gb_clear();
		return mb_usage_error(MB_EXIT_FAIL, "micro: %s", mb_errmsg());
	}
	mb_gb_results res;
	int rc = mb_gb_run_all(w->rank == 0, &res, err, sizeof err);
	for (int i = 0; i < mr->nb; i++)
		bench_teardown(&mr->b[i]);
	mb_gb_clear();
	if (rc)
		return w->rank == 0 ? mb_usage_error(MB_EXIT_USAGE, "micro: %s", err) : MB_EXIT_USAGE;
	if (!res.listed && w->rank == 0)
		code = report(mr, a, &res, argc, argv);
	int invalid = 0;
	for (int i = 0; i < res.n; i++)
		invalid |= res.runs[i].error;
	mb_gb_results_free(&res);
	return code ? code : invalid ? MB_EXIT_FAIL : MB_EXIT_OK;
}

int mb_cmd_micro(const mb_registry *reg, int argc, char **argv)
{
	micro_args a = {.backend = "cpu", .dtype = "all", .model = "deepseek-v3", .size = "quick"};
	const mb_model *m = NULL;
	mb_size size = MB_SIZE_QUICK;
	const mb_backend *be = NULL;
	if (!(a.gb = calloc((size_t)argc + 1, sizeof *a.gb)))
		return mb_usage_error(MB_EXIT_FAIL, "out of memory");
	char err[256];
	int rc = parse_args(argc, argv, &a);
	if (rc == 1) {
		micro_help(reg);
		free(a.gb);
		return MB_EXIT_OK;
	}
	if (!rc && mb_gb_flags_check(a.ngb, a.gb, err, sizeof err))
		rc = mb_err(MB_ERR_USAGE, "micro: %s", err);
	if (!rc && !(be = mb_registry_backend(reg, a.backend)))
		rc = mb_err(MB_ERR_USAGE, "unknown backend '%s' (see moebench list)", a.backend);
	if (!rc && !(m = mb_model_find(a.model)))
		rc = mb_err(MB_ERR_USAGE, "unknown model '%s' (see moebench list)", a.model);
	if (!rc)
		rc = mb_size_parse(a.size, &size);
	micro_run *mr = rc ? NULL : calloc(1, sizeof *mr);
	if (!rc && !mr)
		rc = mb_err(MB_ERR_NOMEM, "out of memory");
	if (rc) {
		free(a.gb);
		return mb_usage_error(rc == MB_ERR_NOMEM ? MB_EXIT_FAIL : MB_EXIT_USAGE, "%s",
				      mb_errmsg());
	}
	mr->be = be;
	mr->seed = 42;
	/* The command line as typed, before MPI_Init may touch it. */
	int rec_argc = argc + 1;
	char **rec_argv = argv - 1;
	int code;
	if (mb_world_init(&argc, &argv, &mr->w)) {
		code = mb_usage_error(MB_EXIT_NODEV, "%s", mb_errmsg());
	} else {
		code = micro_main(reg, &a, mr, m, size, rec_argc, rec_argv);
		mb_dev_close(be, mr->dev);
		mb_world_finalize(&mr->w);
	}
	free(mr);
	free(a.gb);
	return code;
}
