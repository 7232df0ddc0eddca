/* cpu.c: the CPU backend: OpenBLAS for every matmul, OpenMP for the rest.
 *
 * Device memory is host memory (mb_alloc, 64-byte aligned), upload and
 * download are memcpy, and every launch finishes before it returns, so sync
 * has nothing to wait for. Every op runs in fp32; the ops of the gmm suite
 * also run in bf16 on CPUs with avx512_bf16 (cpu_bf16.c; PERMUTE, ROUTER and
 * ROUTER_BWD here, as their bf16 forms only copy rows or read fp32).
 *
 * Threading: matmuls run inside OpenBLAS, which threads with its own
 * pthreads; they are never called from inside an OpenMP region (two thread
 * pools nested would oversubscribe the cores). The memory-bound passes
 * (router, permute, unpermute, SwiGLU) are OpenMP loops over tokens or rows,
 * each output written by one thread in a fixed order, so results do not
 * depend on the thread count. The two pools take turns on the cores (see
 * cpu_launch).
 *
 * Fault injection (tests only): if MOEBENCH_FAULT names an op kind at open
 * (mb_op_name: "gmm", "permute", ...), every launch of that kind adds 1.0f to
 * its first floating-point output after computing it (1.0 in bf16 where that
 * output is bf16): element 0 of out[0],
 * or for GMM the first element of the first non-empty group, or for ROUTER
 * (whose out[0] is the integer idx) element 0 of the weights out[1].
 * describe() reports it in mb_dev_info.fault so that a result produced under
 * a fault can never pass for a real one. It lets tests prove that verify
 * catches a wrong answer.
 */
#include "../../harness/mb.h"

#include <cblas.h>
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../backend.h"
#include "cpu_attn.h"
#include "cpu_blas.h"
#include "cpu_bf16.h"
#include "cpu_comm.h"
#include "cpu_train.h"

struct mb_dev {
	char name[128];
	char library[384];
	char fault_name[32];
	int fault; /* op kind to corrupt, or -1 */
	int bf16;  /* the CPU has avx512_bf16 */
	int threads;
	uint64_t memory_bytes;
};

/* Element-wise passes smaller than this run on the calling thread: waking
 * the OpenMP pool (paused around every matmul, see cpu_launch) costs more
 * than it saves for them, by milliseconds when the machine is busy. */
#define CPU_OMP_MIN_WORK ((int64_t)1 << 20)

/* Which module planned an op's scratch (ext). */
enum { EXT_NONE, EXT_ATTN, EXT_COLL, EXT_TRAIN, EXT_BF16 };

struct mb_plan {
	mb_op op;
	int ext_kind;    /* EXT_*: the module that owns ext */
	void *ext;       /* that module's scratch (attention, collectives, training, bf16) */
	float *bias;     /* ROUTER: copy of op.u.router.bias, or NULL */
	int64_t *cursor; /* PERMUTE: next free row per expert */
	int fault;       /* corrupt this op's output */
};

static int cpu_probe(char *why, size_t n)
{
	if (why && n)
		why[0] = '\0';
	return 1;
}

static void cpu_model_name(char *out, size_t n)
{
	mb_strlcpy(out, "unknown cpu", n);
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		const char *v = strchr(line, ':');
		if (!v)
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		mb_strlcpy(out, v, n);
		out[strcspn(out, "\n")] = '\0';
		break;
	}
	fclose(f);
}

static int cpu_open(mb_dev **out)
{
	*out = NULL;
	mb_dev *d = mb_calloc(1, sizeof *d);
	if (!d)
		return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory opening the device");
	cpu_model_name(d->name, sizeof d->name);
	d->threads = omp_get_max_threads();
	__builtin_cpu_init();
	d->bf16 = __builtin_cpu_supports("avx512bf16") != 0;
	const char *cfg = openblas_get_config();
	char conf[200];
	mb_strlcpy(conf, cfg ? cfg : "OpenBLAS", sizeof conf);
	size_t len = strlen(conf);
	while (len && conf[len - 1] == ' ')
		conf[--len] = '\0';
	snprintf(d->library, sizeof d->library,
		 "%s (%d threads; bf16 is stored as bf16 and multiplied in fp32: no bf16 GEMM "
		 "in this OpenBLAS)",
		 conf, openblas_get_num_threads());
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	d->memory_bytes = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
	d->fault = -1;
	const char *fault = getenv("MOEBENCH_FAULT");
	if (fault && *fault) {
		for (int k = 0; k < MB_OP_COUNT; k++)
			if (strcmp(fault, mb_op_name((mb_op_kind)k)) == 0)
				d->fault = k;
		if (d->fault < 0) {
			mb_free(d);
			return mb_err(MB_ERR_USAGE, "MOEBENCH_FAULT=%s names no op (try gmm, router, "
						    "permute, unpermute, swiglu, gemm)",
				      fault);
		}
		mb_strlcpy(d->fault_name, fault, sizeof d->fault_name);
	}
	*out = d;
	return 0;
}

static void cpu_close(mb_dev *dev) { mb_free(dev); }

static void cpu_describe(mb_dev *dev, mb_dev_info *out)
{
	memset(out, 0, sizeof *out);
	out->name = dev->name;
	out->kind = "cpu";
	out->library = dev->library;
	out->threads = dev->threads;
	out->memory_bytes = dev->memory_bytes;
	out->fault = dev->fault >= 0 ? dev->fault_name : NULL;
}

/* Large buffers ask for transparent huge pages: the grouped GEMMs stream
 * whole expert weights (hundreds of MiB) through OpenBLAS's packing, and 4 KiB
 * pages cost several percent in TLB misses there. Advice only: ignored where
 * THP is off. */
static void *cpu_mem_alloc(mb_dev *dev, size_t bytes)
{
	(void)dev;
	void *p = mb_alloc(bytes);
	const uintptr_t page = 4096, huge = (uintptr_t)2 << 20;
	if (p && bytes >= 2 * huge) {
		uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
		uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
		if (hi > lo)
			(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
	}
	return p;
}

static void cpu_mem_free(mb_dev *dev, void *p)
{
	(void)dev;
	mb_free(p);
}

static int cpu_copy(mb_dev *dev, void *dst, const void *src, size_t bytes)
{
	(void)dev;
	if (bytes && (!dst || !src))
		return mb_err(MB_ERR_USAGE, "cpu backend: copy of %zu bytes with a NULL pointer", bytes);
	if (bytes)
		memcpy(dst, src, bytes);
	return 0;
}

static int cpu_sync(mb_dev *dev)
{
	(void)dev;
	return 0;
}

/* ---- shapes ---- */

/* bf16: the ops gmm launches, offered only on CPUs with avx512_bf16, so
 * that a bf16 result always comes from a CPU with native bf16 arithmetic
 * (the kernels do not yet use it: cpu_bf16.c says why). */
static int cpu_supports_bf16(const mb_dev *dev, const mb_op *op)
{
	if (!mb_cpu_bf16_kind(op->kind) && op->kind != MB_OP_PERMUTE &&
	    op->kind != MB_OP_ROUTER && op->kind != MB_OP_ROUTER_BWD)
		return mb_err(MB_ERR_UNSUPPORTED, "cpu backend: %s bf16 not implemented",
			      mb_op_name(op->kind));
	if (!dev->bf16)
		return mb_err(MB_ERR_UNSUPPORTED,
			      "cpu backend: bf16 needs avx512_bf16 (this cpu lacks it)");
	return 0;
}

static int cpu_supports(mb_dev *dev, const mb_op *op)
{
	switch (op->kind) {
	case MB_OP_GEMM: case MB_OP_GMM: case MB_OP_ROUTER: case MB_OP_ROUTER_BWD:
	case MB_OP_PERMUTE: case MB_OP_PERMUTE_BWD: case MB_OP_UNPERMUTE:
	case MB_OP_UNPERMUTE_BWD: case MB_OP_SWIGLU: case MB_OP_SWIGLU_BWD:
	case MB_OP_ATTN_FWD: case MB_OP_ATTN_BWD:
		break;
	case MB_OP_ALLTOALLV: case MB_OP_ALLREDUCE:
		return mb_cpu_coll_check(op); /* any row type; allreduce fp32/fp64 */
	default:
		if (mb_cpu_train_kind(op->kind))
			break;
		return mb_err(MB_ERR_UNSUPPORTED, "cpu backend: %s not implemented",
			      mb_op_name(op->kind));
	}
	if (op->dtype == MB_BF16)
		return cpu_supports_bf16(dev, op);
	if (op->dtype != MB_FP32)
		return mb_err(MB_ERR_UNSUPPORTED, "cpu backend: %s %s not implemented",
			      mb_op_name(op->kind), mb_dtype_name(op->dtype));
	return 0;
}

static int bad_shape(const mb_op *op, const char *what)
{
	return mb_err(MB_ERR_USAGE, "cpu backend: %s: %s", mb_op_name(op->kind), what);
}

/* Every size must be >= 0 and fit an OpenBLAS (32-bit) int where one is used. */
static int cpu_check_shape(const mb_op *op)
{
	switch (op->kind) {
	case MB_OP_GEMM: {
		const int64_t m = op->u.gemm.m, n = op->u.gemm.n, k = op->u.gemm.k;
		if (m < 0 || n < 0 || k < 0)
			return bad_shape(op, "negative size");
		if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
			return bad_shape(op, "size above 2^31-1");
		return 0;
	}
	case MB_OP_GMM: {
		const int64_t g = op->u.gmm.groups, r = op->u.gmm.rows, k = op->u.gmm.k,
			      n = op->u.gmm.n;
		if (g < 0 || r < 0 || k < 0 || n < 0)
			return bad_shape(op, "negative size");
		if (r > INT_MAX || k > INT_MAX || n > INT_MAX)
			return bad_shape(op, "size above 2^31-1");
		if ((unsigned)op->u.gmm.mode > MB_GMM_TN)
			return bad_shape(op, "unknown mode");
		return 0;
	}
	case MB_OP_ROUTER:
	case MB_OP_ROUTER_BWD: {
		const int64_t t = op->u.router.tokens, e = op->u.router.experts,
			      k = op->u.router.top_k;
		if (t < 0 || e < 1 || k < 1 || k > e)
			return bad_shape(op, "needs tokens >= 0 and 1 <= top_k <= experts");
		if (e > INT32_MAX)
			return bad_shape(op, "experts above 2^31-1");
		if ((unsigned)op->u.router.score > MB_SCORE_SIGMOID)
			return bad_shape(op, "unknown score function");
		const int64_t g = op->u.router.groups;
		if (g < 0 || (g > 1 && (e % g != 0 || k % g != 0)))
			return bad_shape(op, "groups must be 0 (ungrouped) or divide both experts "
					     "and top_k");
		return 0;
	}
	case MB_OP_PERMUTE:
	case MB_OP_PERMUTE_BWD:
	case MB_OP_UNPERMUTE:
	case MB_OP_UNPERMUTE_BWD: {
		const int64_t t = op->u.perm.tokens, h = op->u.perm.hidden, e = op->u.perm.experts,
			      k = op->u.perm.top_k;
		if (t < 0 || h < 0 || k < 1 || (op->kind == MB_OP_PERMUTE && e < 1))
			return bad_shape(op, "needs tokens, hidden >= 0, top_k >= 1, experts >= 1");
		if (t > INT32_MAX / k)
			return bad_shape(op, "tokens * top_k above 2^31-1 (pos is int32)");
		return 0;
	}
	case MB_OP_SWIGLU:
	case MB_OP_SWIGLU_BWD:
		if (op->u.act.rows < 0 || op->u.act.ffn < 0)
			return bad_shape(op, "negative size");
		return 0;
	case MB_OP_ATTN_FWD:
	case MB_OP_ATTN_BWD:
	case MB_OP_ALLTOALLV:
	case MB_OP_ALLREDUCE:
		return 0; /* checked by the module that plans them */
	default:
		if (mb_cpu_train_kind(op->kind))
			return 0;
		return bad_shape(op, "unknown op");
	}
}

static void cpu_plan_free(mb_dev *dev, mb_plan *plan)
{
	(void)dev;
	if (!plan)
		return;
	switch (plan->ext_kind) {
	case EXT_ATTN: mb_cpu_attn_free(plan->ext); break;
	case EXT_COLL: mb_cpu_coll_free(plan->ext); break;
	case EXT_TRAIN: mb_cpu_train_free(plan->ext); break;
	case EXT_BF16: mb_cpu_bf16_free(plan->ext); break;
	default: break;
	}
	mb_free(plan->bias);
	mb_free(plan->cursor);
	mb_free(plan);
}

/* Ops whose kernels live in cpu_attn.c, cpu_comm.c, cpu_train.c and
 * cpu_bf16.c plan their own scratch there. */
static int cpu_plan_ext(mb_plan *p)
{
	const mb_op *op = &p->op;
	int rc = 0;
	if (op->dtype == MB_BF16 && mb_cpu_bf16_kind(op->kind)) {
		p->ext_kind = EXT_BF16;
		rc = mb_cpu_bf16_plan(op, &p->ext);
		if (rc)
			p->ext_kind = EXT_NONE;
		return rc;
	}
	switch (op->kind) {
	case MB_OP_ATTN_FWD:
	case MB_OP_ATTN_BWD:
		p->ext_kind = EXT_ATTN;
		rc = mb_cpu_attn_plan(op, &p->ext);
		break;
	case MB_OP_ALLTOALLV:
		p->ext_kind = EXT_COLL;
		rc = mb_cpu_alltoallv_plan(op, &p->ext);
		break;
	case MB_OP_ALLREDUCE:
		break;
	default:
		if (mb_cpu_train_kind(op->kind)) {
			p->ext_kind = EXT_TRAIN;
			rc = mb_cpu_train_plan(op, &p->ext);
		}
		break;
	}
	if (rc)
		p->ext_kind = EXT_NONE; /* the module frees its own scratch on failure */
	return rc;
}

static int cpu_plan(mb_dev *dev, const mb_op *op, mb_plan **out)
{
	*out = NULL;
	int rc = cpu_supports(dev, op);
	if (!rc)
		rc = cpu_check_shape(op);
	if (rc)
		return rc;
	mb_plan *p = mb_calloc(1, sizeof *p);
	if (!p)
		goto nomem;
	p->op = *op;
	p->fault = dev->fault == (int)op->kind;
	if (op->kind == MB_OP_ROUTER && op->u.router.bias) {
		size_t bytes = (size_t)op->u.router.experts * sizeof(float);
		p->bias = mb_alloc(bytes);
		if (!p->bias)
			goto nomem;
		memcpy(p->bias, op->u.router.bias, bytes);
	}
	if (op->kind == MB_OP_ROUTER)
		p->op.u.router.bias = p->bias; /* the caller's array may go away after plan */
	if (op->kind == MB_OP_PERMUTE) {
		p->cursor = mb_calloc((size_t)op->u.perm.experts, sizeof *p->cursor);
		if (!p->cursor)
			goto nomem;
	}
	rc = cpu_plan_ext(p);
	if (rc) {
		cpu_plan_free(dev, p);
		return rc;
	}
	*out = p;
	return 0;
nomem:
	cpu_plan_free(dev, p);
	return mb_err(MB_ERR_NOMEM, "cpu backend: out of memory planning %s", mb_op_name(op->kind));
}

/* ---- matmuls ---- */

/* k == 0 is handled here so that the result never depends on how the library
 * treats an empty inner dimension. */
typedef int (*blas_idle_fn)(void);

void mb_cpu_blas_idle(void)
{
	static int looked;
	static blas_idle_fn fn;
	if (!looked) {
		fn = (blas_idle_fn)dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
		looked = 1; /* launches come from one thread at a time */
	}
	if (fn)
		fn();
}

void mb_cpu_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
		  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++)
				c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		    (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

static int cpu_gemm(const mb_plan *p, const mb_io *io)
{
	const int64_t m = p->op.u.gemm.m, n = p->op.u.gemm.n, k = p->op.u.gemm.k;
	const int ta = p->op.u.gemm.trans_a, tb = p->op.u.gemm.trans_b;
	float *c = io->out[0];
	if (p->op.dtype == MB_BF16)
		return mb_cpu_bf16_launch(&p->op, p->ext, p->fault, io);
	mb_cpu_sgemm(ta, tb, m, n, k, p->op.u.gemm.alpha, io->in[0], ta ? m : k, io->in[1],
		  tb ? k : n, p->op.u.gemm.beta, c, n);
	if (p->fault && m > 0 && n > 0)
		c[0] += 1.0f;
	return 0;
}

static int cpu_gmm(const mb_plan *p, const mb_io *io)
{
	const int64_t G = p->op.u.gmm.groups, rows = p->op.u.gmm.rows, k = p->op.u.gmm.k,
		      n = p->op.u.gmm.n;
	const mb_gmm_mode mode = p->op.u.gmm.mode;
	const float beta = p->op.u.gmm.accumulate ? 1.0f : 0.0f;
	const float *x = io->in[0], *w = io->in[1];
	const int64_t *off = io->in[2];
	float *y = io->out[0];
	if (G > 0 && (off[0] < 0 || off[G] > rows))
		return mb_err(MB_ERR_INTERNAL, "cpu gmm: offsets span rows %lld..%lld, capacity %lld",
			      (long long)off[0], (long long)off[G], (long long)rows);
	for (int64_t g = 0; g < G; g++)
		if (off[g + 1] < off[g])
			return mb_err(MB_ERR_INTERNAL, "cpu gmm: offsets decrease at group %lld",
				      (long long)g);
	if (p->op.dtype == MB_BF16)
		return mb_cpu_bf16_launch(&p->op, p->ext, p->fault, io);
	int64_t first = -1;
	for (int64_t g = 0; g < G; g++) {
		const int64_t r0 = off[g], mg = off[g + 1] - off[g];
		if (mg > 0 && first < 0)
			first = g;
		switch (mode) {
		case MB_GMM_NN: /* Y_g = X_g W_g, W_g k x n */
			mb_cpu_sgemm(0, 0, mg, n, k, 1.0f, x + r0 * k, k, w + g * k * n, n, beta,
				  y + r0 * n, n);
			break;
		case MB_GMM_NT: /* Y_g = X_g W_g^T, W_g n x k */
			mb_cpu_sgemm(0, 1, mg, n, k, 1.0f, x + r0 * k, k, w + g * n * k, k, beta,
				  y + r0 * n, n);
			break;
		case MB_GMM_TN: /* dW_g = X_g^T D_g, k x n; with no rows it is 0 (or unchanged) */
			if (mg == 0) {
				if (!p->op.u.gmm.accumulate)
					memset(y + g * k * n, 0, (size_t)(k * n) * sizeof(float));
			} else {
				mb_cpu_sgemm(1, 0, k, n, mg, 1.0f, x + r0 * k, k, w + r0 * n, n, beta,
					  y + g * k * n, n);
			}
			break;
		}
	}
	if (p->fault && first >= 0 && k > 0 && n > 0)
		y[mode == MB_GMM_TN ? first * k * n : off[first] * n] += 1.0f;
	return 0;
}

/* ---- router ---- */

/* The k best of s[e0..e0+n) + bias by insertion into idx/w, best first, ties
 * to the lower expert; w holds the keys. O(n * k) at worst, no scratch. */
static void router_topk(const float *s, const float *bias, int64_t e0, int64_t n, int64_t k,
			int32_t *idx, float *w)
{
	int64_t got = 0;
	for (int64_t e = e0; e < e0 + n; e++) {
		const float v = s[e] + (bias ? bias[e] : 0.0f);
		if (got == k && !(v > w[k - 1]))
			continue;
		int64_t q = got < k ? got++ : k - 1;
		while (q > 0 && v > w[q - 1]) {
			w[q] = w[q - 1];
			idx[q] = idx[q - 1];
			q--;
		}
		w[q] = v;
		idx[q] = (int32_t)e;
	}
}

/* One token: scores, then the top K (top K/G of each of G groups, group by
 * group), then the weights renormalised over all K chosen. */
static void router_row(const float *l, int64_t E, int64_t K, int64_t G, mb_score_fn fn,
		       const float *bias, float *s, int32_t *idx, float *w)
{
	if (fn == MB_SCORE_SOFTMAX) {
		float mx = l[0];
		for (int64_t e = 1; e < E; e++)
			mx = l[e] > mx ? l[e] : mx;
		double sum = 0.0;
		for (int64_t e = 0; e < E; e++)
			sum += s[e] = expf(l[e] - mx);
		const float inv = (float)(1.0 / sum);
		for (int64_t e = 0; e < E; e++)
			s[e] *= inv;
	} else {
		for (int64_t e = 0; e < E; e++)
			s[e] = 1.0f / (1.0f + expf(-l[e]));
	}
	const int64_t ng = E / G, kg = K / G;
	for (int64_t g = 0; g < G; g++)
		router_topk(s, bias, g * ng, ng, kg, idx + g * kg, w + g * kg);
	double sum = 0.0;
	for (int64_t j = 0; j < K; j++)
		sum += s[idx[j]];
	for (int64_t j = 0; j < K; j++)
		w[j] = sum > 0.0 ? (float)(s[idx[j]] / sum) : 1.0f / (float)K;
}

static int cpu_router(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.router.tokens, E = p->op.u.router.experts,
		      K = p->op.u.router.top_k;
	const int64_t G = p->op.u.router.groups > 1 ? p->op.u.router.groups : 1;
	const mb_score_fn fn = p->op.u.router.score;
	const float *logits = io->in[0];
	int32_t *idx = io->out[0];
	float *w = io->out[1], *s = io->out[2];
#pragma omp parallel for schedule(static) if (T * E >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++)
		router_row(logits + t * E, E, K, G, fn, p->bias, s + t * E, idx + t * K, w + t * K);
	if (p->fault && T > 0)
		w[0] += 1.0f;
	return 0;
}

/* The exact gradient of the router weights (derivation in suites/ref.c,
 * mb_ref_router_bwd, which computes the same in fp64):
 *   S = sum_j s[idx_j], w_j = s[idx_j] / S, dot = sum_j dw_j w_j,
 *   g_j = (dw_j - dot) / S                    (dL/d s[idx_j]; 0 off the choice)
 *   softmax: dl_e = s_e (g_e - sum_j g_j s[idx_j]) (the sum is 0 up to rounding)
 *   sigmoid: dl_e = g_e s_e (1 - s_e)
 * S == 0 (all chosen scores underflowed, weights 1/k): gradient 0.
 * Grouped routing (groups > 1) changes only which experts idx holds, not this
 * gradient, so groups is not read here. */
static int cpu_router_bwd(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.router.tokens, E = p->op.u.router.experts,
		      K = p->op.u.router.top_k;
	const int sigmoid = p->op.u.router.score == MB_SCORE_SIGMOID;
	const float *dw = io->in[0], *w = io->in[2], *scores = io->in[3];
	const int32_t *idx = io->in[1];
	float *dl = io->out[0];
#pragma omp parallel for schedule(static) if (T * E >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		const float *s = scores + t * E, *dwt = dw + t * K, *wt = w + t * K;
		const int32_t *it = idx + t * K;
		float *d = dl + t * E;
		double S = 0.0, dot = 0.0, gs = 0.0;
		for (int64_t j = 0; j < K; j++) {
			S += s[it[j]];
			dot += (double)dwt[j] * wt[j];
		}
		for (int64_t e = 0; e < E; e++)
			d[e] = 0.0f;
		if (!(S > 0.0))
			continue;
		if (sigmoid) {
			for (int64_t j = 0; j < K; j++) {
				const double se = s[it[j]];
				d[it[j]] += (float)((dwt[j] - dot) / S * se * (1.0 - se));
			}
			continue;
		}
		for (int64_t j = 0; j < K; j++)
			gs += (dwt[j] - dot) / S * s[it[j]];
		for (int64_t e = 0; e < E; e++)
			d[e] = (float)(-s[e] * gs);
		for (int64_t j = 0; j < K; j++)
			d[it[j]] += (float)(s[it[j]] * (dwt[j] - dot) / S);
	}
	if (p->fault && T > 0)
		dl[0] += 1.0f;
	return 0;
}

/* ---- permute and unpermute ---- */

/* Counting sort of the (t, j) pairs by expert, stable in (t, j) order: one
 * serial O(pairs) pass counts, one assigns rows; the row copies are parallel. */
static int cpu_permute(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.perm.tokens, H = p->op.u.perm.hidden, E = p->op.u.perm.experts,
		      K = p->op.u.perm.top_k, P = T * K;
	const size_t row = (size_t)H * mb_dtype_size(p->op.dtype); /* bytes, fp32 or bf16 */
	const char *x = io->in[0];
	const int32_t *idx = io->in[1];
	char *xs = io->out[0];
	int64_t *off = io->out[1], *cur = p->cursor;
	int32_t *pos = io->out[2];
	for (int64_t e = 0; e < E; e++)
		cur[e] = 0;
	for (int64_t i = 0; i < P; i++) {
		if (idx[i] < 0 || idx[i] >= E)
			return mb_err(MB_ERR_INTERNAL, "cpu permute: idx[%lld] = %d outside 0..%lld",
				      (long long)i, idx[i], (long long)E - 1);
		cur[idx[i]]++;
	}
	off[0] = 0;
	for (int64_t e = 0; e < E; e++) {
		off[e + 1] = off[e] + cur[e];
		cur[e] = off[e];
	}
	for (int64_t i = 0; i < P; i++)
		pos[i] = (int32_t)cur[idx[i]]++;
#pragma omp parallel for schedule(static) if (T * K * H >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++)
		for (int64_t j = 0; j < K; j++)
			memcpy(xs + (size_t)pos[t * K + j] * row, x + (size_t)t * row, row);
	if (p->fault && P > 0 && H > 0) {
		if (p->op.dtype == MB_BF16)
			mb_cpu_bf16_add1((uint16_t *)(void *)xs);
		else
			((float *)(void *)xs)[0] += 1.0f;
	}
	return 0;
}

/* dx[t] = (accumulate ? dx[t] : 0) + sum_j dxs[pos[t, j]]: a gather per
 * token, so no two threads write one row and the sum order is fixed. */
static int cpu_permute_bwd(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.perm.tokens, H = p->op.u.perm.hidden, K = p->op.u.perm.top_k;
	const int acc = p->op.u.perm.accumulate;
	const float *dxs = io->in[0];
	const int32_t *pos = io->in[1];
	float *dx = io->out[0];
#pragma omp parallel for schedule(static) if (T * K * H >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		float *d = dx + t * H;
		if (!acc)
			memset(d, 0, (size_t)H * sizeof(float));
		for (int64_t j = 0; j < K; j++) {
			const float *src = dxs + (int64_t)pos[t * K + j] * H;
#pragma omp simd
			for (int64_t i = 0; i < H; i++)
				d[i] += src[i];
		}
	}
	if (p->fault && T > 0 && H > 0)
		dx[0] += 1.0f;
	return 0;
}

static int cpu_unpermute(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.perm.tokens, H = p->op.u.perm.hidden, K = p->op.u.perm.top_k;
	const float *ys = io->in[0], *w = io->in[2];
	const int32_t *pos = io->in[1];
	float *y = io->out[0];
#pragma omp parallel for schedule(static) if (T * K * H >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		float *d = y + t * H;
		memset(d, 0, (size_t)H * sizeof(float));
		for (int64_t j = 0; j < K; j++) {
			const float *src = ys + (int64_t)pos[t * K + j] * H, wj = w[t * K + j];
#pragma omp simd
			for (int64_t i = 0; i < H; i++)
				d[i] += wj * src[i];
		}
	}
	if (p->fault && T > 0 && H > 0)
		y[0] += 1.0f;
	return 0;
}

static int cpu_unpermute_bwd(const mb_plan *p, const mb_io *io)
{
	const int64_t T = p->op.u.perm.tokens, H = p->op.u.perm.hidden, K = p->op.u.perm.top_k;
	const float *dy = io->in[0], *ys = io->in[1], *w = io->in[3];
	const int32_t *pos = io->in[2];
	float *dys = io->out[0], *dw = io->out[1];
#pragma omp parallel for schedule(static) if (T * K * H >= CPU_OMP_MIN_WORK)
	for (int64_t t = 0; t < T; t++) {
		const float *g = dy + t * H;
		for (int64_t j = 0; j < K; j++) {
			const int64_t r = pos[t * K + j];
			const float *src = ys + r * H, wj = w[t * K + j];
			float *d = dys + r * H;
			double dot = 0.0;
#pragma omp simd reduction(+ : dot)
			for (int64_t i = 0; i < H; i++) {
				d[i] = wj * g[i];
				dot += (double)g[i] * src[i];
			}
			dw[t * K + j] = (float)dot;
		}
	}
	if (p->fault && T > 0 && H > 0)
		dys[0] += 1.0f;
	return 0;
}

/* ---- SwiGLU ---- */

static int cpu_swiglu(const mb_plan *p, const mb_io *io)
{
	const int64_t R = p->op.u.act.rows, F = p->op.u.act.ffn;
	const float *gu = io->in[0];
	float *a = io->out[0];
#pragma omp parallel for schedule(static) if (R * F >= CPU_OMP_MIN_WORK)
	for (int64_t r = 0; r < R; r++) {
		const float *g = gu + r * 2 * F, *u = g + F;
		float *o = a + r * F;
		for (int64_t c = 0; c < F; c++)
			o[c] = g[c] / (1.0f + expf(-g[c])) * u[c];
	}
	if (p->fault && R > 0 && F > 0)
		a[0] += 1.0f;
	return 0;
}

/* a = silu(g) u: da/dg = u sigma(g) (1 + g (1 - sigma(g))), da/du = silu(g). */
static int cpu_swiglu_bwd(const mb_plan *p, const mb_io *io)
{
	const int64_t R = p->op.u.act.rows, F = p->op.u.act.ffn;
	const float *gu = io->in[0], *da = io->in[1];
	float *dgu = io->out[0];
#pragma omp parallel for schedule(static) if (R * F >= CPU_OMP_MIN_WORK)
	for (int64_t r = 0; r < R; r++) {
		const float *g = gu + r * 2 * F, *u = g + F, *d = da + r * F;
		float *dg = dgu + r * 2 * F, *du = dg + F;
		for (int64_t c = 0; c < F; c++) {
			const float s = 1.0f / (1.0f + expf(-g[c]));
			dg[c] = d[c] * u[c] * s * (1.0f + g[c] * (1.0f - s));
			du[c] = d[c] * g[c] * s;
		}
	}
	if (p->fault && R > 0 && F > 0)
		dgu[0] += 1.0f;
	return 0;
}

static int cpu_launch_omp(const mb_plan *plan, const mb_io *io);
static int cpu_launch_ext(const mb_plan *plan, const mb_io *io);

/* Matmuls run on OpenBLAS's pthreads, everything else on OpenMP's; both
 * pools spin-wait when idle (OpenBLAS for ~2^28 cycles, libgomp for ~300k
 * spins by default and for ever under OMP_WAIT_POLICY=active), so whichever
 * pool ran last keeps a core busy while the other needs it: an OpenMP pass
 * after a matmul waited a whole scheduler slice (~10 ms) for its second
 * thread, and a matmul after an OpenMP pass lost up to half its speed. So
 * each matmul launch hands the cores over explicitly: the OpenMP pool is
 * paused (its threads exit) before it, and OpenBLAS's workers are shut down
 * after it; both pools restart on their next use, which costs a thread start
 * (tens of microseconds). Seen while writing it (2-core Sapphire Rapids VM,
 * p50 of `moebench run -s gmm --preset quick`, without and with the
 * hand-over): ~60 ms and ~15 ms per iteration. This assumes one thread launches ops at a time,
 * as the runner does. */
static int cpu_launch(mb_dev *dev, mb_plan *plan, const mb_io *io)
{
	(void)dev;
	if (!plan || !io)
		return mb_err(MB_ERR_INTERNAL, "cpu backend: launch without a plan or buffers");
	if (plan->op.kind != MB_OP_GEMM && plan->op.kind != MB_OP_GMM)
		return cpu_launch_omp(plan, io);
	omp_pause_resource_all(omp_pause_soft);
	int rc = plan->op.kind == MB_OP_GEMM ? cpu_gemm(plan, io) : cpu_gmm(plan, io);
	mb_cpu_blas_idle();
	return rc;
}

static int cpu_launch_omp(const mb_plan *plan, const mb_io *io)
{
	if (plan->op.dtype == MB_BF16 && plan->ext_kind == EXT_BF16)
		return mb_cpu_bf16_launch(&plan->op, plan->ext, plan->fault, io);
	switch (plan->op.kind) {
	case MB_OP_ROUTER: return cpu_router(plan, io);
	case MB_OP_ROUTER_BWD: return cpu_router_bwd(plan, io);
	case MB_OP_PERMUTE: return cpu_permute(plan, io);
	case MB_OP_PERMUTE_BWD: return cpu_permute_bwd(plan, io);
	case MB_OP_UNPERMUTE: return cpu_unpermute(plan, io);
	case MB_OP_UNPERMUTE_BWD: return cpu_unpermute_bwd(plan, io);
	case MB_OP_SWIGLU: return cpu_swiglu(plan, io);
	case MB_OP_SWIGLU_BWD: return cpu_swiglu_bwd(plan, io);
	default: return cpu_launch_ext(plan, io);
	}
}

/* The ops of cpu_attn.c, cpu_comm.c and cpu_train.c; the MOEBENCH_FAULT hook
 * adds 1 to the first output element (the alltoallv hook lives in
 * cpu_comm.c, which flips a received byte). */
static int cpu_launch_ext(const mb_plan *plan, const mb_io *io)
{
	const mb_op *op = &plan->op;
	int rc;
	switch (op->kind) {
	case MB_OP_ATTN_FWD:
	case MB_OP_ATTN_BWD:
		rc = op->kind == MB_OP_ATTN_FWD ? mb_cpu_attn_fwd(op, plan->ext, io)
						: mb_cpu_attn_bwd(op, plan->ext, io);
		if (!rc && plan->fault && op->u.attn.batch > 0 && op->u.attn.seq > 0)
			((float *)io->out[0])[0] += 1.0f;
		return rc;
	case MB_OP_ALLTOALLV: return mb_cpu_alltoallv(op, plan->ext, io);
	case MB_OP_ALLREDUCE:
		rc = mb_cpu_allreduce(op, plan->ext, io);
		if (!rc && plan->fault && op->u.coll.count > 0 && op->dtype == MB_FP32)
			((float *)io->out[0])[0] += 1.0f;
		return rc;
	default:
		if (!mb_cpu_train_kind(op->kind))
			return mb_err(MB_ERR_INTERNAL, "cpu backend: launch of unknown op %d",
				      (int)op->kind);
		rc = mb_cpu_train_launch(op, plan->ext, io);
		if (!rc && plan->fault)
			mb_cpu_train_corrupt(op, io);
		return rc;
	}
}

static int cpu_comm_init(mb_dev *dev, const mb_group *group, mb_comm **out)
{
	(void)dev;
	return mb_cpu_comm_init(group, out);
}

static void cpu_comm_free(mb_dev *dev, mb_comm *comm)
{
	(void)dev;
	mb_cpu_comm_free(comm);
}

const mb_backend mb_backend_cpu = {
	.abi = MB_BACKEND_ABI,
	.name = "cpu",
	.summary = "host CPU: OpenBLAS sgemm for matmuls, OpenMP loops for the rest (fp32; "
		   "bf16 storage for gmm with avx512_bf16)",
	.probe = cpu_probe,
	.open = cpu_open,
	.close = cpu_close,
	.describe = cpu_describe,
	.mem_alloc = cpu_mem_alloc,
	.mem_free = cpu_mem_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.sync = cpu_sync,
	.supports = cpu_supports,
	.plan = cpu_plan,
	.launch = cpu_launch,
	.plan_free = cpu_plan_free,
	.comm_init = cpu_comm_init,
	.comm_free = cpu_comm_free,
};
