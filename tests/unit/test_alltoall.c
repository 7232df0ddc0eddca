/* test_alltoall.c: the alltoall suite's counts and payload, the CPU
 * backend's collectives on one rank, and the suite end to end through its
 * hooks (suites/alltoall.c, hardware/cpu/cpu_comm.c). Several ranks are
 * covered by tests/e2e/mpi.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hardware/cpu/cpu_comm.h"
#include "suites/alltoall.h"
#include "suites/suite.h"

/* ---- counts ---- */

static mb_a2a_spec moe_spec(int64_t tokens, int64_t experts, int64_t top_k, double skew)
{
	return (mb_a2a_spec){.mode = MB_A2A_MOE, .seed = 42, .tokens = tokens,
			     .experts = experts, .top_k = top_k, .skew = skew, .elem_bytes = 4};
}

static int64_t sum(const int64_t *v, int n)
{
	int64_t s = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* Max over ranks of rows received / mean, from the count matrix. */
static double imbalance(const mb_a2a_spec *s, int size)
{
	int64_t m[64];
	assert_int_equal(mb_a2a_matrix(s, size, m), 0);
	double mx = 0, total = 0;
	for (int d = 0; d < size; d++) {
		double r = 0;
		for (int q = 0; q < size; q++)
			r += (double)m[q * size + d];
		mx = r > mx ? r : mx;
		total += r;
	}
	return mx / (total / size);
}

static void test_counts_sum(void **state)
{
	(void)state;
	for (int size = 1; size <= 8; size *= 2) {
		for (int skewed = 0; skewed < 2; skewed++) {
			mb_a2a_spec s = moe_spec(300, 32, 3, skewed ? 1.0 : 0.0);
			int64_t m[64], row[8];
			assert_int_equal(mb_a2a_matrix(&s, size, m), 0);
			for (int r = 0; r < size; r++) {
				assert_int_equal(mb_a2a_counts(&s, r, size, row), 0);
				assert_int_equal(sum(row, size), 300 * 3);
				assert_memory_equal(row, m + r * size, (size_t)size * sizeof *row);
				for (int q = 0; q < size; q++)
					assert_true(row[q] >= 0);
			}
		}
	}
}

static void test_counts_pure(void **state)
{
	(void)state;
	mb_a2a_spec s = moe_spec(512, 64, 4, 0.8);
	int64_t a[4], b[4], c[4];
	assert_int_equal(mb_a2a_counts(&s, 1, 4, a), 0);
	assert_int_equal(mb_a2a_counts(&s, 1, 4, b), 0);
	assert_memory_equal(a, b, sizeof a);
	assert_int_equal(mb_a2a_counts(&s, 2, 4, c), 0); /* another rank routes other tokens */
	assert_memory_not_equal(a, c, sizeof a);
	s.seed = 43;
	assert_int_equal(mb_a2a_counts(&s, 1, 4, c), 0);
	assert_memory_not_equal(a, c, sizeof a);
}

static void test_counts_skew(void **state)
{
	(void)state;
	mb_a2a_spec bal = moe_spec(4096, 64, 4, 0.0), sk = moe_spec(4096, 64, 4, 1.2);
	double ib = imbalance(&bal, 4), is = imbalance(&sk, 4);
	assert_true(ib >= 1.0 && ib < 1.05);
	/* Zipf 1.2 over 64 experts puts about 80% of the choices on the first
	 * quarter of the experts (rank 0): about 3.2 times the mean. */
	assert_true(is > 2.0);
	/* the hot rank is the one holding the first experts */
	int64_t m[16];
	assert_int_equal(mb_a2a_matrix(&sk, 4, m), 0);
	assert_true(m[1 * 4 + 0] > m[1 * 4 + 3]);
	/* one rank: everything to itself, no imbalance */
	assert_true(imbalance(&sk, 1) == 1.0);
}

static void test_counts_uniform(void **state)
{
	(void)state;
	mb_a2a_spec s = {.mode = MB_A2A_UNIFORM, .seed = 1, .bytes = 1 << 20, .elem_bytes = 4};
	int64_t row[4];
	assert_int_equal(mb_a2a_counts(&s, 3, 4, row), 0);
	for (int q = 0; q < 4; q++)
		assert_int_equal(row[q], (1 << 20) / 16);
	s.elem_bytes = 2;
	assert_int_equal(mb_a2a_counts(&s, 0, 2, row), 0);
	assert_int_equal(row[1], (1 << 20) / 4);
	s.bytes = 1000; /* not a multiple of 3 ranks x 2 bytes */
	assert_int_equal(mb_a2a_counts(&s, 0, 3, row), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "bytes=1000"));
	mb_a2a_spec m = moe_spec(16, 6, 2, 0);
	assert_int_equal(mb_a2a_counts(&m, 0, 4, row), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "experts=6"));
	assert_int_equal(mb_a2a_counts(&m, 0, 3, row), 0);
}

/* ---- payload ---- */

static void test_payload(void **state)
{
	(void)state;
	enum { RB = 37, N = 50 }; /* rows that do not start on 8-byte words */
	unsigned char *a = malloc(RB * N), *b = malloc(RB * N);
	assert_non_null(a);
	assert_non_null(b);
	mb_a2a_fill(9, 1, 2, RB, 0, N, a);
	mb_a2a_fill(9, 1, 2, RB, 10, N - 10, b); /* rows 10.. alone are the same bytes */
	assert_memory_equal(a + 10 * RB, b, (N - 10) * RB);
	int64_t rows, first;
	assert_int_equal(mb_a2a_compare(9, 1, 2, RB, 0, N, a, &rows, &first), 0);
	assert_int_equal(rows, 0);
	assert_int_equal(first, -1);
	mb_a2a_fill(9, 2, 1, RB, 0, N, b); /* another (source, destination): other bytes */
	assert_true(mb_a2a_compare(9, 1, 2, RB, 0, N, b, &rows, &first) > N * RB / 2);
	a[7 * RB + 3] ^= 0x10;
	a[7 * RB + 30] ^= 0x01;
	a[41 * RB] ^= 0x80;
	assert_int_equal(mb_a2a_compare(9, 1, 2, RB, 0, N, a, &rows, &first), 3);
	assert_int_equal(rows, 2);
	assert_int_equal(first, 7);
	free(a);
	free(b);
}

/* ---- the CPU backend's collectives, one rank ---- */

static void test_cpu_comm(void **state)
{
	(void)state;
	mb_group g = {.rank = 0, .size = 1, .mpi_comm = NULL};
	mb_comm *c = NULL;
	assert_int_equal(mb_cpu_comm_init(&g, &c), 0);
	assert_non_null(c);
	mb_op op = {.kind = MB_OP_ALLTOALLV, .dtype = MB_BF16}; /* bytes: any dtype */
	op.u.coll.comm = c;
	op.u.coll.row_bytes = 6;
	op.u.coll.capacity = 4;
	assert_int_equal(mb_cpu_coll_check(&op), 0);
	void *scratch = NULL;
	assert_int_equal(mb_cpu_alltoallv_plan(&op, &scratch), 0);
	unsigned char send[24], recv[24] = {0};
	for (int i = 0; i < 24; i++)
		send[i] = (unsigned char)(3 * i + 1);
	int64_t n3 = 3, n4 = 4, n5 = 5, neg = -1;
	mb_io io = {.in = {send, &n3, &n3}, .out = {recv}};
	assert_int_equal(mb_cpu_alltoallv(&op, scratch, &io), 0);
	assert_memory_equal(recv, send, 18);
	assert_int_equal(recv[18], 0); /* nothing past the rows sent */
	io.in[2] = &n4; /* one rank must receive what it sends */
	assert_int_equal(mb_cpu_alltoallv(&op, scratch, &io), MB_ERR_USAGE);
	io.in[1] = io.in[2] = &n5; /* above capacity */
	assert_int_equal(mb_cpu_alltoallv(&op, scratch, &io), MB_ERR_USAGE);
	io.in[1] = io.in[2] = &neg;
	assert_int_equal(mb_cpu_alltoallv(&op, scratch, &io), MB_ERR_USAGE);
	mb_cpu_coll_free(scratch);

	/* the fault hook, read at plan time */
	setenv("MOEBENCH_FAULT", "alltoallv", 1);
	assert_int_equal(mb_cpu_alltoallv_plan(&op, &scratch), 0);
	unsetenv("MOEBENCH_FAULT");
	io.in[1] = io.in[2] = &n3;
	assert_int_equal(mb_cpu_alltoallv(&op, scratch, &io), 0);
	assert_int_equal(recv[0], (unsigned char)(send[0] + 1));
	assert_memory_equal(recv + 1, send + 1, 17);
	mb_cpu_coll_free(scratch);

	op.u.coll.row_bytes = 0;
	assert_int_equal(mb_cpu_coll_check(&op), MB_ERR_USAGE);

	/* allreduce over one rank leaves the buffer as it is */
	float x[3] = {1, 2, 3};
	mb_op ar = {.kind = MB_OP_ALLREDUCE, .dtype = MB_FP32};
	ar.u.coll.comm = c;
	ar.u.coll.count = 3;
	assert_int_equal(mb_cpu_coll_check(&ar), 0);
	mb_io aio = {.out = {x}};
	assert_int_equal(mb_cpu_allreduce(&ar, NULL, &aio), 0);
	assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3);
	ar.dtype = MB_BF16;
	assert_int_equal(mb_cpu_coll_check(&ar), MB_ERR_UNSUPPORTED);
	mb_cpu_comm_free(c);
	mb_cpu_comm_free(NULL);
	mb_cpu_coll_free(NULL);

	g.size = 2; /* two ranks need MPI */
	assert_int_equal(mb_cpu_comm_init(&g, &c), MB_ERR_USAGE);
	assert_null(c);
}

/* ---- the suite through its hooks ---- */

/* A backend made of the CPU backend's memory and cpu_comm's collectives,
 * so that the suite runs whether or not cpu.c dispatches to cpu_comm yet;
 * a plan is cpu_comm's scratch. */
static int tb_comm_init(mb_dev *dev, const mb_group *g, mb_comm **out)
{
	(void)dev;
	return mb_cpu_comm_init(g, out);
}
static void tb_comm_free(mb_dev *dev, mb_comm *c)
{
	(void)dev;
	mb_cpu_comm_free(c);
}
static int tb_supports(mb_dev *dev, const mb_op *op)
{
	(void)dev;
	if (op->kind != MB_OP_ALLTOALLV)
		return mb_err(MB_ERR_UNSUPPORTED, "test backend: alltoallv only");
	return mb_cpu_coll_check(op);
}
typedef struct tb_plan {
	mb_op op;
	void *scratch;
} tb_plan;
static int tb_plan_make(mb_dev *dev, const mb_op *op, mb_plan **out)
{
	(void)dev;
	tb_plan *p = calloc(1, sizeof *p);
	if (!p)
		return MB_ERR_NOMEM;
	p->op = *op;
	int rc = mb_cpu_alltoallv_plan(op, &p->scratch);
	if (rc)
		free(p), p = NULL;
	*out = (mb_plan *)p;
	return rc;
}
static int tb_launch(mb_dev *dev, mb_plan *plan, const mb_io *io)
{
	(void)dev;
	tb_plan *p = (tb_plan *)plan;
	return mb_cpu_alltoallv(&p->op, p->scratch, io);
}
static void tb_plan_free(mb_dev *dev, mb_plan *plan)
{
	(void)dev;
	tb_plan *p = (tb_plan *)plan;
	if (p)
		mb_cpu_coll_free(p->scratch);
	free(p);
}

static mb_backend test_be;

static const mb_backend *backend(int real)
{
	if (real)
		return &mb_backend_cpu;
	test_be = mb_backend_cpu;
	test_be.name = "cpu+cpu_comm";
	test_be.supports = tb_supports;
	test_be.plan = tb_plan_make;
	test_be.launch = tb_launch;
	test_be.plan_free = tb_plan_free;
	test_be.comm_init = tb_comm_init;
	test_be.comm_free = tb_comm_free;
	return &test_be;
}

static void set(mb_params *p, const char *name, const char *text)
{
	int i = mb_params_find(p, name);
	assert_true(i >= 0);
	double v;
	assert_int_equal(mb_param_parse_value(&p->defs[i], text, &v), 0);
	assert_int_equal(mb_params_set(p, name, v, MB_SRC_USER), 0);
}

static double info_get(const mb_case_info *info, const char *key)
{
	for (int i = 0; i < info->n; i++)
		if (strcmp(info->kv[i].key, key) == 0)
			return info->kv[i].val;
	fail_msg("info has no %s", key);
	return NAN;
}

/* setup, run twice, verify, info, teardown on one rank; returns the check. */
static mb_check run_suite(const mb_backend *be, const char *const *kv, int nkv, mb_case_info *info)
{
	const mb_suite *su = &mb_suite_alltoall;
	mb_params p;
	assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
	for (int i = 0; i < nkv; i += 2)
		set(&p, kv[i], kv[i + 1]);
	assert_int_equal(su->validate(&p), 0);
	mb_cost cost, exact;
	assert_int_equal(su->cost(&p, &cost), 0);
	mb_dev *dev = NULL;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	mb_case_ctx ctx = {.be = be, .dev = dev, .params = &p, .seed = 5,
			   .world = {.rank = 0, .size = 1, .mpi_comm = NULL}};
	void *st = NULL;
	if (su->setup(&ctx, &st))
		fail_msg("setup: %s", mb_errmsg());
	assert_int_equal(su->run(st), 0);
	assert_int_equal(su->run(st), 0);
	assert_int_equal(mb_dev_sync(be, dev), 0);
	mb_check ck;
	assert_int_equal(su->verify(st, &ck), 0);
	memset(info, 0, sizeof *info);
	su->info(st, info);
	/* one rank: every byte goes to itself, and the params-only cost agrees
	 * with the exact one on the bytes */
	assert_int_equal(mb_a2a_case_cost(st, &exact), 0);
	assert_true(exact.bytes == cost.bytes);
	assert_true(exact.comm_bytes == 0);
	assert_true(exact.tokens == cost.tokens);
	assert_true(info_get(info, "send_bytes") == cost.bytes);
	su->teardown(st);
	mb_dev_close(be, dev);
	return ck;
}

static void suite_cases(int real)
{
	const mb_backend *be = backend(real);
	mb_case_info info;
	static const char *const moe[] = {"hidden", "40", "tokens", "300", "experts", "16",
					  "top_k", "3", "skew", "1"};
	mb_check ck = run_suite(be, moe, 10, &info);
	assert_true(ck.passed);
	assert_int_equal(ck.mismatched, 0);
	/* dispatch and combine: tokens * top_k rows of hidden fp32, twice */
	assert_int_equal(ck.checked, 2 * 300 * 3 * 40 * 4);
	assert_true(info_get(&info, "imbalance") == 1.0);
	assert_true(info_get(&info, "ranks") == 1 && info_get(&info, "busbw_factor") == 0);
	assert_true(info_get(&info, "recv_rows_max") == 900);
	assert_true(info_get(&info, "send_bytes_to_others") == 0);

	static const char *const uni[] = {"mode", "uniform", "bytes", "64K", "dtype", "bf16",
					  "phase", "dispatch"};
	ck = run_suite(be, uni, 8, &info);
	assert_true(ck.passed);
	assert_int_equal(ck.checked, 65536);
	assert_true(info_get(&info, "row_bytes") == 2 && info_get(&info, "phases") == 1);

	/* a corrupted exchange is caught, byte for byte */
	setenv("MOEBENCH_FAULT", "alltoallv", 1);
	ck = run_suite(be, moe, 10, &info);
	unsetenv("MOEBENCH_FAULT");
	assert_false(ck.passed);
	/* one rank: the dispatch's first byte is off by one; the combine sends it
	 * back and adds one more: one wrong byte in each check */
	assert_int_equal(ck.mismatched, 2);
	assert_non_null(strstr(ck.detail, "dispatch"));
}

static void test_suite_cpu_comm(void **state)
{
	(void)state;
	suite_cases(0);
}

/* The same through the CPU backend itself, once cpu.c wires cpu_comm in. */
static void test_suite_cpu(void **state)
{
	(void)state;
	if (!mb_backend_cpu.comm_init) {
		print_message("cpu backend has no collectives yet: skipped\n");
		skip();
	}
	suite_cases(1);
}

static void test_hooks(void **state)
{
	(void)state;
	const mb_suite *su = &mb_suite_alltoall;
	mb_params p;
	assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
	const mb_model *m = mb_model_find("deepseek-v3");
	assert_non_null(m);
	assert_int_equal(su->preset(m, MB_SIZE_QUICK, &p), 0);
	assert_int_equal(mb_param_int(&p, "hidden"), 512);
	assert_int_equal(mb_param_int(&p, "tokens"), 256);
	assert_int_equal(mb_param_int(&p, "experts"), m->experts);
	assert_int_equal(mb_param_int(&p, "top_k"), m->top_k);
	assert_int_equal(su->preset(m, MB_SIZE_FULL, &p), 0);
	assert_int_equal(mb_param_int(&p, "hidden"), m->hidden);
	assert_int_equal(mb_param_int(&p, "tokens"), 8192);
	assert_int_equal(su->validate(&p), 0);
	mb_cost c;
	assert_int_equal(su->cost(&p, &c), 0);
	assert_true(c.bytes == 2.0 * 8192 * m->top_k * m->hidden * 4);
	assert_true(c.tokens == 8192 && c.flops == 0);

	set(&p, "top_k", "64");
	set(&p, "experts", "8");
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	set(&p, "experts", "256");
	set(&p, "mode", "uniform");
	set(&p, "bytes", "1026"); /* not a multiple of fp32's 4 bytes */
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	set(&p, "bytes", "4G");
	assert_int_equal(su->validate(&p), 0);
	assert_int_equal(su->cost(&p, &c), 0);
	assert_true(c.bytes == 2.0 * 4294967296.0 && c.tokens == 0);
	set(&p, "dtype", "bf16"); /* 2^31 elements: more than MPI 3.1 counts */
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_sum),     cmocka_unit_test(test_counts_pure),
		cmocka_unit_test(test_counts_skew),    cmocka_unit_test(test_counts_uniform),
		cmocka_unit_test(test_payload),        cmocka_unit_test(test_cpu_comm),
		cmocka_unit_test(test_suite_cpu_comm), cmocka_unit_test(test_suite_cpu),
		cmocka_unit_test(test_hooks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
