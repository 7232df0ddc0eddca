/* test_train_step.c: the train_step suite on the CPU backend: every
 * parameter's gradient against central finite differences of the loss on a
 * tiny model (GQA and MLA), the loss falling, validation, the FLOP count; and
 * the CPU training-step kernels (hardware/cpu/cpu_train.c) called directly
 * against hand-computed values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hardware/cpu/cpu_train.h"
#include "suites/ref.h"
#include "suites/suite.h"
#include "suites/train_step.h"

static const mb_backend *be = &mb_backend_cpu;
static const mb_suite *su = &mb_suite_train_step;

/* ---- the CPU kernels, called directly ---- */

static void run_op(const mb_op *op, const mb_io *io)
{
	void *scratch = NULL;
	assert_int_equal(mb_cpu_train_plan(op, &scratch), 0);
	int rc = mb_cpu_train_launch(op, scratch, io);
	if (rc)
		fail_msg("%s: %s", mb_op_name(op->kind), mb_errmsg());
	mb_cpu_train_free(scratch);
}

static void test_rmsnorm(void **state)
{
	(void)state;
	enum { R = 3, D = 5 };
	float x[R * D], g[D], y[R * D], rstd[R], dy[R * D], dx[R * D], dg[D];
	mb_rand_fill(x, R * D, 1, 1, 2.0);
	mb_rand_fill(g, D, 1, 2, 1.0);
	mb_rand_fill(dy, R * D, 1, 3, 1.0);
	mb_op op = {.kind = MB_OP_RMSNORM, .dtype = MB_FP32};
	op.u.row.rows = R, op.u.row.dim = D, op.u.row.eps = 1e-6f;
	run_op(&op, &(mb_io){.in = {x, g}, .out = {y, rstd}});
	for (int r = 0; r < R; r++) {
		double ss = 0;
		for (int i = 0; i < D; i++)
			ss += (double)x[r * D + i] * x[r * D + i];
		const double rs = 1 / sqrt(ss / D + 1e-6);
		assert_true(fabs(rstd[r] - rs) < 1e-6 * rs);
		for (int i = 0; i < D; i++)
			assert_true(fabs(y[r * D + i] - x[r * D + i] * rs * g[i]) < 1e-5);
	}
	/* backward against central differences of L = sum dy . y */
	for (int i = 0; i < R * D; i++)
		dx[i] = 0.5f; /* accumulate adds onto this */
	op.kind = MB_OP_RMSNORM_BWD, op.u.row.accumulate = 1;
	run_op(&op, &(mb_io){.in = {dy, x, g, rstd}, .out = {dx, dg}});
	for (int r = 0; r < R; r++)
		for (int i = 0; i < D; i++) {
			double fd[2];
			for (int sgn = 0; sgn < 2; sgn++) {
				double xr[D], ss = 0, L = 0;
				for (int j = 0; j < D; j++)
					xr[j] = x[r * D + j];
				xr[i] += sgn ? -1e-4 : 1e-4;
				for (int j = 0; j < D; j++)
					ss += xr[j] * xr[j];
				for (int j = 0; j < D; j++)
					L += dy[r * D + j] * xr[j] / sqrt(ss / D + 1e-6) * g[j];
				fd[sgn] = L;
			}
			const double want = (fd[0] - fd[1]) / 2e-4 + 0.5;
			assert_true(fabs(dx[r * D + i] - want) < 1e-4);
		}
	for (int i = 0; i < D; i++) {
		double want = 0;
		for (int r = 0; r < R; r++)
			want += (double)dy[r * D + i] * x[r * D + i] * rstd[r];
		assert_true(fabs(dg[i] - want) < 1e-5);
	}
}

static void test_embed(void **state)
{
	(void)state;
	enum { V = 5, D = 3, R = 6 };
	float table[V * D], y[R * D], dy[R * D], dt[V * D];
	const int32_t ids[R] = {4, 1, 4, 0, 4, 1};
	mb_rand_fill(table, V * D, 2, 1, 1.0);
	mb_rand_fill(dy, R * D, 2, 2, 1.0);
	mb_op op = {.kind = MB_OP_EMBED, .dtype = MB_FP32};
	op.u.row.rows = R, op.u.row.dim = D, op.u.row.vocab = V;
	run_op(&op, &(mb_io){.in = {table, ids}, .out = {y}});
	for (int r = 0; r < R; r++)
		for (int i = 0; i < D; i++)
			assert_true(y[r * D + i] == table[ids[r] * D + i]);
	for (int i = 0; i < V * D; i++)
		dt[i] = 99.0f; /* overwritten, also where no id points */
	op.kind = MB_OP_EMBED_BWD;
	run_op(&op, &(mb_io){.in = {dy, ids}, .out = {dt}});
	for (int v = 0; v < V; v++)
		for (int i = 0; i < D; i++) {
			float want = 0.0f; /* summed in row order, as the kernel promises */
			for (int r = 0; r < R; r++)
				if (ids[r] == v)
					want += dy[r * D + i];
			assert_true(dt[v * D + i] == want);
		}
	/* an id outside the vocabulary is an error, not a wild read */
	const int32_t bad[R] = {0, 1, 5, 0, 0, 0};
	void *scratch = NULL;
	op.kind = MB_OP_EMBED;
	assert_int_equal(mb_cpu_train_plan(&op, &scratch), 0);
	assert_int_equal(
		mb_cpu_train_launch(&op, scratch, &(mb_io){.in = {table, bad}, .out = {y}}),
		MB_ERR_USAGE);
	mb_cpu_train_free(scratch);
}

static void test_xent(void **state)
{
	(void)state;
	enum { R = 4, V = 7 };
	float l[R * V], dl[R * V], loss;
	const int32_t tgt[R] = {0, 6, 3, 3};
	mb_rand_fill(l, R * V, 3, 1, 4.0);
	mb_op op = {.kind = MB_OP_XENT, .dtype = MB_FP32};
	op.u.row.rows = R, op.u.row.vocab = V;
	run_op(&op, &(mb_io){.in = {l, tgt}, .out = {dl, &loss}});
	double want = 0;
	for (int r = 0; r < R; r++) {
		double z = 0;
		for (int c = 0; c < V; c++)
			z += exp(l[r * V + c]);
		want += (log(z) - l[r * V + tgt[r]]) / R;
		for (int c = 0; c < V; c++) {
			const double d = (exp(l[r * V + c]) / z - (c == tgt[r])) / R;
			assert_true(fabs(dl[r * V + c] - d) < 1e-6);
		}
	}
	assert_true(fabs(loss - want) < 1e-5);
	/* in place: dlogits may overwrite the logits */
	float l2[R * V];
	memcpy(l2, l, sizeof l);
	run_op(&op, &(mb_io){.in = {l2, tgt}, .out = {l2, &loss}});
	assert_memory_equal(l2, dl, sizeof dl);
}

static void test_adamw(void **state)
{
	(void)state;
	enum { N = 9 };
	float p[N], m[N] = {0}, v[N] = {0}, g[N];
	double pd[N], md[N] = {0}, vd[N] = {0};
	mb_rand_fill(p, N, 4, 1, 1.0);
	for (int i = 0; i < N; i++)
		pd[i] = p[i];
	mb_op op = {.kind = MB_OP_ADAMW, .dtype = MB_FP32};
	op.u.adamw.count = N, op.u.adamw.lr = 0.01f, op.u.adamw.beta1 = 0.9f;
	op.u.adamw.beta2 = 0.95f, op.u.adamw.eps = 1e-8f, op.u.adamw.weight_decay = 0.1f;
	void *scratch = NULL;
	assert_int_equal(mb_cpu_train_plan(&op, &scratch), 0);
	for (int t = 1; t <= 3; t++) { /* the plan counts its steps for the bias correction */
		mb_rand_fill(g, N, 4, 1 + (uint64_t)t, 1.0);
		assert_int_equal(mb_cpu_train_launch(&op, scratch,
						     &(mb_io){.in = {g}, .out = {p, m, v}}),
				 0);
		for (int i = 0; i < N; i++) {
			pd[i] *= 1 - 0.01 * 0.1;
			md[i] = 0.9 * md[i] + 0.1 * g[i];
			vd[i] = 0.95 * vd[i] + 0.05 * (double)g[i] * g[i];
			const double mh = md[i] / (1 - pow(0.9, t)),
				     vh = vd[i] / (1 - pow(0.95, t));
			pd[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
			assert_true(fabs(p[i] - pd[i]) < 1e-6);
		}
	}
	mb_cpu_train_free(scratch);
}

static void test_add_kcat(void **state)
{
	(void)state;
	enum { R = 3, H = 2, DN = 3, DR = 2, DK = DN + DR };
	float y[6] = {1, 2, 3, 4, 5, 6};
	const float x[6] = {1, 1, 1, 2, 2, 2};
	mb_op op = {.kind = MB_OP_ADD, .dtype = MB_FP32};
	op.u.row.rows = 2, op.u.row.dim = 3, op.u.row.alpha = -2.0f;
	run_op(&op, &(mb_io){.in = {x}, .out = {y}});
	const float want[6] = {-1, 0, 1, 0, 1, 2};
	assert_memory_equal(y, want, sizeof want);

	float kn[R * H * DN], kr[R * DR], k[R * H * DK], dkn[R * H * DN], dkr[R * DR];
	mb_rand_fill(kn, R * H * DN, 5, 1, 1.0);
	mb_rand_fill(kr, R * DR, 5, 2, 1.0);
	op = (mb_op){.kind = MB_OP_KCAT, .dtype = MB_FP32};
	op.u.kcat.rows = R, op.u.kcat.heads = H, op.u.kcat.d_nope = DN, op.u.kcat.d_rope = DR;
	run_op(&op, &(mb_io){.in = {kn, kr}, .out = {k}});
	for (int r = 0; r < R; r++)
		for (int h = 0; h < H; h++)
			for (int i = 0; i < DK; i++)
				assert_true(
					k[(r * H + h) * DK + i] ==
					(i < DN ? kn[(r * H + h) * DN + i] : kr[r * DR + i - DN]));
	op.kind = MB_OP_KCAT_BWD;
	run_op(&op, &(mb_io){.in = {k}, .out = {dkn, dkr}});
	assert_memory_equal(dkn, kn, sizeof kn);
	for (int i = 0; i < R * DR; i++)
		assert_true(dkr[i] == H * kr[i]); /* summed over the heads */
}

/* The reductions sum in an order fixed by the shape: one thread and two
 * give the same bits (sizes above the kernels' serial cutoff). */
static void test_threads(void **state)
{
	(void)state;
	enum { R = 1100, D = 1000, V = 257 }; /* R x D above the serial cutoff (2^20) */
	float *x = malloc(R * D * sizeof *x), *dy = malloc(R * D * sizeof *dy);
	float *g = malloc(D * sizeof *g), *rstd = malloc(R * sizeof *rstd);
	float *out[2], *dg[2], *dt[2], *dl[2], loss[2];
	static int32_t ids[R];
	assert_true(x && dy && g && rstd);
	mb_rand_fill(x, R * D, 6, 1, 1.0);
	mb_rand_fill(dy, R * D, 6, 2, 1.0);
	mb_rand_fill(g, D, 6, 3, 1.0);
	for (int r = 0; r < R; r++)
		ids[r] = (int32_t)(mb_rand_u64(6, 4, (uint64_t)r) % 7); /* many repeats */
	const int threads = omp_get_max_threads();
	for (int t = 0; t < 2; t++) {
		omp_set_num_threads(t + 1);
		out[t] = calloc(R * D, sizeof(float)), dg[t] = calloc(D, sizeof(float));
		dt[t] = calloc(V * D, sizeof(float)), dl[t] = calloc(R * D, sizeof(float));
		assert_true(out[t] && dg[t] && dt[t] && dl[t]);
		mb_op op = {.kind = MB_OP_RMSNORM, .dtype = MB_FP32};
		op.u.row.rows = R, op.u.row.dim = D, op.u.row.eps = 1e-6f, op.u.row.vocab = V;
		run_op(&op, &(mb_io){.in = {x, g}, .out = {out[t], rstd}});
		op.kind = MB_OP_RMSNORM_BWD;
		run_op(&op, &(mb_io){.in = {dy, x, g, rstd}, .out = {out[t], dg[t]}});
		op.kind = MB_OP_EMBED_BWD;
		run_op(&op, &(mb_io){.in = {dy, ids}, .out = {dt[t]}});
		op.kind = MB_OP_XENT, op.u.row.rows = D; /* x as D rows of R logits */
		op.u.row.vocab = R;
		run_op(&op, &(mb_io){.in = {x, ids}, .out = {dl[t], &loss[t]}});
	}
	omp_set_num_threads(threads);
	assert_memory_equal(out[0], out[1], R * D * sizeof(float));
	assert_memory_equal(dg[0], dg[1], D * sizeof(float));
	assert_memory_equal(dt[0], dt[1], V * D * sizeof(float));
	assert_memory_equal(dl[0], dl[1], R * D * sizeof(float));
	assert_true(loss[0] == loss[1]);
	for (int t = 0; t < 2; t++)
		free(out[t]), free(dg[t]), free(dt[t]), free(dl[t]);
	free(x), free(dy), free(g), free(rstd);
}

/* ---- the suite on a tiny model ---- */

typedef struct tiny {
	int mla, q_lora, sigmoid;
} tiny;

static void tiny_params(const tiny *t, mb_params *p)
{
	assert_int_equal(mb_params_init(p, su->params, su->nparams), 0);
	const struct {
		const char *k;
		double v;
	} kv[] = {
		{"layers", 2}, {"dense_layers", 1}, {"hidden", 16}, {"heads", 2},
		{"kv_heads", t->mla ? 2 : 1}, {"head_dim", 8}, {"v_head_dim", t->mla ? 6 : 8},
		{"q_lora", t->mla ? t->q_lora : 0}, {"kv_lora", t->mla ? 8 : 0},
		{"qk_rope", t->mla ? 4 : 0}, {"ffn_dense", 24}, {"moe_ffn", 8}, {"experts", 4},
		{"shared_experts", 1}, {"top_k", 2}, {"vocab", 32}, {"seq", 8}, {"batch", 2},
		{"score", t->sigmoid},
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(kv); i++)
		assert_int_equal(mb_params_set(p, kv[i].k, kv[i].v, MB_SRC_USER), 0);
	assert_int_equal(su->validate(p), 0);
}

static void *tiny_setup(mb_dev *dev, const mb_params *p)
{
	mb_case_ctx ctx = {.be = be, .dev = dev, .params = p, .seed = 11,
			   .world = {.rank = 0, .size = 1}};
	void *st = NULL;
	int rc = su->setup(&ctx, &st);
	if (rc)
		fail_msg("setup: %s", mb_errmsg());
	return st;
}

/* The finite-difference check of one tensor: central differences of the
 * fp32 loss with step EPS, at every entry of a small tensor or FD_SAMPLES
 * seeded ones of a larger one, skipping perturbations that change any
 * token's top-k choice (the loss is discontinuous there; the gradient is
 * that of the loss with the routing held fixed). Entry i passes if
 *   |fd - g| <= FD_RTOL |g| + FD_ATOL max|g over the tensor's checked entries|:
 * fp32 rounding of a loss near 3.5 is ~2e-7, so the difference quotient
 * carries an error of ~2e-7 / (2 EPS) ~ 1e-5 plus the O(EPS^2) truncation;
 * FD_ATOL covers entries whose gradient is near 0, FD_RTOL the rest. A
 * wrong gradient (a missing term, a transpose, a scale) is off by far more.
 * bias, if non-zero, is added to the analytic gradient first (the negative
 * control). Returns the entries outside tolerance; *checked gets how many
 * were compared. */
#define EPS 1e-2
#define FD_SAMPLES 12
#define FD_RTOL 2e-2
#define FD_ATOL 3e-3

typedef struct fd_ctx {
	mb_dev *dev;
	void *st;
	int32_t *route0, *route;
	int64_t nroute;
} fd_ctx;

static double fd_loss(fd_ctx *c, float *param, int64_t i, float value, int *same)
{
	double loss;
	assert_int_equal(mb_dev_upload(be, c->dev, param + i, &value, sizeof value), 0);
	assert_int_equal(mb_ts_forward(c->st, &loss), 0);
	assert_int_equal(mb_ts_routing(c->st, c->route), 0);
	*same &= memcmp(c->route, c->route0, (size_t)c->nroute * sizeof *c->route) == 0;
	return loss;
}

static int fd_check(fd_ctx *c, const mb_ts_tensor *t, double bias, int *checked, int *skipped)
{
	const int64_t n = t->count, full = n <= 2 * FD_SAMPLES;
	const int64_t ns = full ? n : FD_SAMPLES;
	float *g = malloc((size_t)n * sizeof *g);
	double *fd = calloc((size_t)ns, sizeof *fd), gmax = 0;
	int64_t *at = calloc((size_t)ns, sizeof *at);
	int *ok = calloc((size_t)ns, sizeof *ok);
	assert_true(g && fd && at && ok);
	assert_int_equal(mb_dev_download(be, c->dev, g, t->grad, (size_t)n * sizeof *g), 0);
	for (int64_t s = 0; s < ns; s++) {
		at[s] = full ? s : s == 0 ? 0 : s == 1 ? n - 1
					: (int64_t)(mb_rand_u64(5, 77, (uint64_t)s) % (uint64_t)n);
		float p0;
		assert_int_equal(mb_dev_download(be, c->dev, &p0, t->param + at[s], sizeof p0), 0);
		int same = 1;
		const double up = fd_loss(c, t->param, at[s], p0 + (float)EPS, &same);
		const double dn = fd_loss(c, t->param, at[s], p0 - (float)EPS, &same);
		assert_int_equal(mb_dev_upload(be, c->dev, t->param + at[s], &p0, sizeof p0), 0);
		fd[s] = (up - dn) / (((double)(p0 + (float)EPS)) - (double)(p0 - (float)EPS));
		ok[s] = same;
		if (same)
			gmax = fmax(gmax, fabs(g[at[s]] + bias));
	}
	int bad = 0;
	*checked = *skipped = 0;
	for (int64_t s = 0; s < ns; s++) {
		if (!ok[s]) {
			(*skipped)++;
			continue;
		}
		(*checked)++;
		const double an = g[at[s]] + bias;
		if (!(fabs(fd[s] - an) <= FD_RTOL * fabs(an) + FD_ATOL * gmax)) {
			if (bias == 0.0)
				print_message("  %s[%lld]: gradient %.7g, finite difference %.7g\n",
					      t->name, (long long)at[s], an, fd[s]);
			bad++;
		}
	}
	free(g), free(fd), free(at), free(ok);
	return bad;
}

static void check_gradients(const tiny *tc)
{
	/* thousands of tiny forwards: one thread (the math does not depend on
	 * the thread count; test_threads checks that) */
	const int threads = omp_get_max_threads();
	omp_set_num_threads(1);
	mb_dev *dev = NULL;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	mb_params p;
	tiny_params(tc, &p);
	fd_ctx c = {.dev = dev, .st = tiny_setup(dev, &p)};
	c.nroute = mb_ts_routing_len(c.st);
	assert_true(c.nroute == 16 * 2); /* one MoE layer, 16 tokens, top-2 */
	c.route0 = malloc((size_t)c.nroute * sizeof *c.route0);
	c.route = malloc((size_t)c.nroute * sizeof *c.route);
	assert_true(c.route0 && c.route);
	double loss, loss2;
	assert_int_equal(mb_ts_gradients(c.st, &loss), 0);
	assert_int_equal(mb_ts_routing(c.st, c.route0), 0);
	assert_true(loss > 2.0 && loss < 6.0); /* about ln 32 = 3.47 at the start */
	assert_int_equal(mb_ts_forward(c.st, &loss2), 0);
	assert_true(loss2 == loss); /* the forward is deterministic */
	const int nt = mb_ts_tensor_count(c.st);
	int total_bad = 0, total_checked = 0, names = 0;
	for (int i = 0; i < nt; i++) {
		mb_ts_tensor t;
		assert_int_equal(mb_ts_tensor_get(c.st, i, &t), 0);
		int checked, skipped;
		const int bad = fd_check(&c, &t, 0.0, &checked, &skipped);
		if (bad)
			print_message("%s: %d of %d entries off\n", t.name, bad, checked);
		/* the routing may flip for a few perturbations, never for most */
		assert_true(checked >= 1 && checked >= skipped);
		total_bad += bad;
		total_checked += checked;
		names += strstr(t.name, "router") != NULL || strstr(t.name, "experts.w1") != NULL ||
			 strstr(t.name, "norm_kv") != NULL || strstr(t.name, "wkr") != NULL;
	}
	assert_int_equal(total_bad, 0);
	assert_true(names >= (tc->mla ? 4 : 2)); /* the table has the tensors we meant to check */
	/* negative control: a gradient off by 10% of its tensor's scale is caught */
	for (int i = 0; i < nt; i++) {
		mb_ts_tensor t;
		assert_int_equal(mb_ts_tensor_get(c.st, i, &t), 0);
		if (strcmp(t.name, "l1.experts.w2") && strcmp(t.name, "lm_head") &&
		    strcmp(t.name, "l0.wo"))
			continue;
		float g[FD_SAMPLES * 4];
		double gmax = 0;
		assert_int_equal(mb_dev_download(be, dev, g, t.grad, sizeof g), 0);
		for (size_t j = 0; j < MB_ARRAY_LEN(g); j++)
			gmax = fmax(gmax, fabs(g[j]));
		int checked, skipped;
		assert_true(fd_check(&c, &t, 0.1 * gmax, &checked, &skipped) > 0);
	}
	print_message("%s: %d gradient entries checked in %d tensors\n",
		      tc->mla ? "mla" : "gqa", total_checked, nt);
	free(c.route0), free(c.route);
	su->teardown(c.st);
	mb_dev_close(be, dev);
	omp_set_num_threads(threads);
}

static void test_gradients_gqa(void **state)
{
	(void)state;
	check_gradients(&(tiny){.mla = 0});
}

static void test_gradients_mla(void **state)
{
	(void)state;
	check_gradients(&(tiny){.mla = 1, .q_lora = 8});
}

static void test_gradients_mla_no_qlora_sigmoid(void **state)
{
	(void)state;
	check_gradients(&(tiny){.mla = 1, .q_lora = 0, .sigmoid = 1});
}

static double info_get(const mb_case_info *info, const char *key)
{
	for (int i = 0; i < info->n; i++)
		if (strcmp(info->kv[i].key, key) == 0)
			return info->kv[i].val;
	fail_msg("info has no %s", key);
	return NAN;
}

static void test_loss_falls(void **state)
{
	(void)state;
	for (int mla = 0; mla < 2; mla++) {
		mb_dev *dev = NULL;
		assert_int_equal(mb_dev_open(be, &dev), 0);
		mb_params p;
		tiny_params(&(tiny){.mla = mla, .q_lora = 8}, &p);
		void *st = tiny_setup(dev, &p);
		for (int i = 0; i < 5; i++)
			assert_int_equal(su->run(st), 0);
		mb_check ck;
		assert_int_equal(su->verify(st, &ck), 0);
		mb_case_info info = {0};
		su->info(st, &info);
		if (!ck.passed)
			fail_msg("%s", ck.detail);
		assert_true(info_get(&info, "steps") == 6); /* 5 + verify's profiled step */
		const double first = info_get(&info, "loss_first"),
			     last = info_get(&info, "loss_last");
		assert_true(last < first - 0.05);
		assert_true(info_get(&info, "loss_1") < first);
		assert_true(info_get(&info, "phase_attention_s") > 0);
		assert_true(info_get(&info, "phase_moe_s") > 0);
		assert_true(info_get(&info, "phase_optimizer_s") > 0);
		assert_true(info_get(&info, "peak_rss_bytes") > 0);
		su->teardown(st);
		mb_dev_close(be, dev);
	}
}

/* With lr = 0 the loss cannot fall: verify must say so (the check can fail). */
static void test_loss_flat_fails(void **state)
{
	(void)state;
	mb_dev *dev = NULL;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	mb_params p;
	tiny_params(&(tiny){.mla = 0}, &p);
	assert_int_equal(mb_params_set(&p, "lr", 0.0, MB_SRC_USER), 0);
	void *st = tiny_setup(dev, &p);
	for (int i = 0; i < 3; i++)
		assert_int_equal(su->run(st), 0);
	mb_check ck;
	assert_int_equal(su->verify(st, &ck), 0);
	assert_false(ck.passed);
	assert_non_null(strstr(ck.detail, "did not fall"));
	su->teardown(st);
	mb_dev_close(be, dev);
}

static void expect_usage(const char *k1, double v1, const char *k2, double v2)
{
	mb_params p;
	tiny_params(&(tiny){.mla = 0}, &p);
	assert_int_equal(mb_params_set(&p, k1, v1, MB_SRC_USER), 0);
	if (k2)
		assert_int_equal(mb_params_set(&p, k2, v2, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), MB_ERR_USAGE);
	assert_true(strlen(mb_errmsg()) > 0);
}

static void test_validate(void **state)
{
	(void)state;
	expect_usage("heads", 4, "kv_heads", 3);
	expect_usage("top_k", 5, NULL, 0);
	expect_usage("ep", 3, NULL, 0);
	expect_usage("groups", 3, NULL, 0); /* MoGE groups must divide experts and top_k */
	expect_usage("dense_layers", 3, NULL, 0);
	expect_usage("q_lora", 8, NULL, 0); /* q_lora needs MLA */
	/* ep = 2 on a world of one rank: setup refuses it */
	mb_dev *dev = NULL;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	mb_params p;
	tiny_params(&(tiny){.mla = 0}, &p);
	assert_int_equal(mb_params_set(&p, "ep", 2, MB_SRC_USER), 0);
	assert_int_equal(su->validate(&p), 0);
	mb_case_ctx ctx = {.be = be, .dev = dev, .params = &p, .seed = 1,
			   .world = {.rank = 0, .size = 1}};
	void *st = NULL;
	assert_int_equal(su->setup(&ctx, &st), MB_ERR_USAGE);
	su->teardown(st);
	/* ep x dp against the world, before any work */
	assert_int_equal(su->world_fits(&p, 1), MB_ERR_USAGE);
	assert_non_null(strstr(mb_errmsg(), "ep=2 dp=0 do not fit 1 rank"));
	assert_int_equal(su->world_fits(&p, 4), 0); /* 2 EP groups of 2 */
	assert_int_equal(su->world_fits(&p, 3), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "dp", 2, MB_SRC_USER), 0);
	assert_int_equal(su->world_fits(&p, 4), 0);
	assert_int_equal(su->world_fits(&p, 8), MB_ERR_USAGE);
	assert_int_equal(mb_params_set(&p, "ep", 0, MB_SRC_USER), 0); /* 8 / dp */
	assert_int_equal(su->world_fits(&p, 8), 0);
	assert_int_equal(su->world_fits(&p, 32), MB_ERR_USAGE); /* ep 16 > 8 experts */
	tiny_params(&(tiny){.mla = 0}, &p);
	/* bf16 is not implemented: skipped, not an error */
	tiny_params(&(tiny){.mla = 0}, &p);
	assert_int_equal(mb_params_set(&p, "dtype", 1, MB_SRC_USER), 0);
	st = NULL;
	assert_int_equal(su->setup(&ctx, &st), MB_ERR_UNSUPPORTED);
	su->teardown(st);
	mb_dev_close(be, dev);
}

/* The FLOP count, term by term as Megatron-LM writes it (facts §E.2). */
static void test_cost(void **state)
{
	(void)state;
	mb_params p;
	mb_cost c;
	const double T = 16, s = 8, h = 16, H = 2, L = 2, V = 32;
	tiny_params(&(tiny){.mla = 0}, &p);
	assert_int_equal(su->cost(&p, &c), 0);
	/* GQA: kv_channels 8, 1 query group; SwiGLU factor 3; 1 dense layer, 1 MoE */
	double q = 8 * H, kv = 8 * 1;
	double attn = 6 * L * (h * (q + kv + kv) + q * s / 2 * 2 + q * h);
	double ffn = 6 * h * (24 * 3 * 1 + 8 * 2 * 3 * 1 + 8 * 1 * 3 * 1);
	double want = T * (attn + ffn + 6 * h * V);
	assert_true(fabs(c.flops - want) < 1e-9 * want);
	assert_true(fabs(c.flops_palm - (want + T * 6 * L * q * s)) < 1e-9 * want);
	assert_true(c.tokens == T);
	/* MLA: q_lora 8, kv_lora 8, d_nope 4, d_rope 4, v 6 */
	tiny_params(&(tiny){.mla = 1, .q_lora = 8}, &p);
	assert_int_equal(su->cost(&p, &c), 0);
	const double ql = 8, kvl = 8, dn = 4, dr = 4, dv = 6;
	attn = 6 * L *
	       (ql * (h + H * (dn + dr) + 1) + kvl * (h + H * (dn + dv) + 1) + h * dr + H * dv * h +
		s * (H * (dn + dr)) / 2 + s * H * dv / 2);
	want = T * (attn + ffn + 6 * h * V);
	assert_true(fabs(c.flops - want) < 1e-9 * want);
}

/* Presets map every model onto valid parameters in every size. */
static void test_presets(void **state)
{
	(void)state;
	for (int m = 0; m < mb_model_count; m++)
		for (int size = 0; size < MB_SIZE_COUNT; size++) {
			mb_params p;
			assert_int_equal(mb_params_init(&p, su->params, su->nparams), 0);
			assert_int_equal(su->preset(&mb_models[m], (mb_size)size, &p), 0);
			if (su->validate(&p))
				fail_msg("%s %s: %s", mb_models[m].name,
					 mb_size_name((mb_size)size), mb_errmsg());
			if (size == MB_SIZE_QUICK) {
				assert_true(mb_param_int(&p, "hidden") <= 128);
				assert_true(mb_param_int(&p, "layers") <= 2);
			}
			const int mla = strcmp(mb_models[m].attention, "mla") == 0;
			assert_int_equal(mb_param_int(&p, "kv_lora") > 0, mla);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_embed),
		cmocka_unit_test(test_xent),
		cmocka_unit_test(test_adamw),
		cmocka_unit_test(test_add_kcat),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_presets),
		cmocka_unit_test(test_gradients_gqa),
		cmocka_unit_test(test_gradients_mla),
		cmocka_unit_test(test_gradients_mla_no_qlora_sigmoid),
		cmocka_unit_test(test_loss_falls),
		cmocka_unit_test(test_loss_flat_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
