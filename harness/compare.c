/* compare.c: the statistics of `moebench compare` and the join of two
 * result files (definitions in compare.h). Files may come from strangers:
 * every field is read with its type checked, and a case that cannot be
 * compared is kept with a note rather than stopping the comparison. */
#include "mb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "stats.h"

/* ---- Mann-Whitney U and Hodges-Lehmann ------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int check_sizes(int nx, int ny)
{
	if (nx < 1 || ny < 1 || nx > MB_CMP_MAX_SAMPLES || ny > MB_CMP_MAX_SAMPLES)
		return mb_err(MB_ERR_USAGE, "compare: sample counts %d and %d not in 1..%d", nx, ny,
			      MB_CMP_MAX_SAMPLES);
	return 0;
}

/* Sorted copies of x and y in one block (*sx is the block to free). */
static int sorted_pair(const double *x, int nx, const double *y, int ny, double **sx, double **sy)
{
	double *b = malloc(((size_t)nx + (size_t)ny) * sizeof *b);
	if (!b)
		return mb_err(MB_ERR_NOMEM, "compare: out of memory for %d samples", nx + ny);
	memcpy(b, x, (size_t)nx * sizeof *b);
	memcpy(b + nx, y, (size_t)ny * sizeof *b);
	qsort(b, (size_t)nx, sizeof *b, cmp_dbl);
	qsort(b + nx, (size_t)ny, sizeof *b, cmp_dbl);
	*sx = b;
	*sy = b + nx;
	return 0;
}

typedef struct ranks {
	int nx, ny;
	double u;    /* U of y */
	double ties; /* sum over tie groups of t^3 - t */
} ranks;

/* One merge over the sorted samples: every value group adds, for each y in
 * it, the x below it plus half the x equal to it. */
static void rank_sums(const double *x, int nx, const double *y, int ny, ranks *r)
{
	int i = 0, j = 0;
	r->nx = nx;
	r->ny = ny;
	r->u = r->ties = 0;
	while (i < nx || j < ny) {
		double v = (j >= ny || (i < nx && x[i] < y[j])) ? x[i] : y[j];
		int below = i, cx = 0, cy = 0;
		for (; i < nx && x[i] == v; i++)
			cx++;
		for (; j < ny && y[j] == v; j++)
			cy++;
		double t = (double)cx + cy;
		r->u += (double)cy * below + 0.5 * cx * cy;
		r->ties += t * t * t - t;
	}
}

static int use_exact(const ranks *r)
{
	return r->ties == 0 && (double)r->nx * r->ny <= MB_MWU_EXACT_MAX;
}

/* P(U <= u), u = 0..nx*ny, with no ties. c(i, j, u), the orderings of
 * i x's and j y's with U = u, follows from where the largest value comes
 * from: c(i, j, u) = c(i-1, j, u) + c(i, j-1, u - i) (a y on top exceeds
 * all i x's). Only additions, so no precision is lost to cancellation;
 * row i of the table holds c(i, j, .) while j grows. NULL when out of
 * memory. */
static double *exact_cdf(int nx, int ny)
{
	size_t m = (size_t)(nx < ny ? nx : ny), n = (size_t)(nx < ny ? ny : nx), top = m * n;
	double *t = calloc((m + 1) * (top + 1), sizeof *t), *c = malloc((top + 1) * sizeof *c);
	if (!t || !c) {
		free(t);
		free(c);
		return NULL;
	}
	for (size_t i = 0; i <= m; i++)
		t[i * (top + 1)] = 1; /* c(i, 0, 0) */
	for (size_t j = 1; j <= n; j++)
		for (size_t i = 1; i <= m; i++) {
			double *row = t + i * (top + 1), *up = row - (top + 1);
			for (size_t u = i * j + 1; u-- > 0;)
				row[u] = (u >= i ? row[u - i] : 0) + up[u];
		}
	const double *last = t + m * (top + 1);
	double total = 0, run = 0;
	for (size_t u = 0; u <= top; u++)
		total += last[u];
	for (size_t u = 0; u <= top; u++) {
		run += last[u];
		c[u] = fmin(1.0, run / total);
	}
	free(t);
	return c;
}

/* Standard deviation of U under H0, tie-corrected. */
static double mwu_sd(const ranks *r)
{
	double n = (double)r->nx + r->ny, nn = (double)r->nx * r->ny;
	return sqrt(nn / 12.0 * ((n + 1) - r->ties / (n * (n - 1))));
}

static int mwu_p(const ranks *r, mb_mwu *out)
{
	double top = (double)r->nx * r->ny, umin = fmin(r->u, top - r->u);
	out->u = r->u;
	out->exact = use_exact(r);
	if (out->exact) {
		double *cdf = exact_cdf(r->nx, r->ny);
		if (!cdf)
			return mb_err(MB_ERR_NOMEM, "compare: out of memory");
		out->p = fmin(1.0, 2 * cdf[(size_t)umin]);
		free(cdf);
		return 0;
	}
	double s = mwu_sd(r);
	/* scipy's asymptotic p: 2 * sf((|U - mu| - 1/2) / s), at most 1 */
	out->p = s > 0 ? fmin(1.0, erfc((top / 2 - umin - 0.5) / s / M_SQRT2)) : 1.0;
	return 0;
}

int mb_mwu_test(const double *x, int nx, const double *y, int ny, mb_mwu *out)
{
	double *sx, *sy;
	int rc = check_sizes(nx, ny);
	if (rc || (rc = sorted_pair(x, nx, y, ny, &sx, &sy)))
		return rc;
	ranks r;
	rank_sums(sx, nx, sy, ny, &r);
	free(sx);
	return mwu_p(&r, out);
}

/* Doubles in the order of an unsigned key, so that a bisection on keys
 * finds an order statistic exactly in at most 64 steps. */
static uint64_t dkey(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return (b >> 63) ? ~b : b | (1ull << 63);
}

static double dval(uint64_t k)
{
	uint64_t b = (k >> 63) ? k & ~(1ull << 63) : ~k;
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

/* Pairs with y_j - x_i <= v (x, y sorted): as x_i grows, more y_j qualify. */
static size_t pairs_le(const double *x, int nx, const double *y, int ny, double v)
{
	size_t c = 0;
	int j = 0;
	for (int i = 0; i < nx; i++) {
		while (j < ny && y[j] - x[i] <= v)
			j++;
		c += (size_t)j;
	}
	return c;
}

/* The k-th smallest (1-based) of the nx*ny differences y_j - x_i. */
static double kth_diff(const double *x, int nx, const double *y, int ny, size_t k)
{
	uint64_t lo = dkey(y[0] - x[nx - 1]), hi = dkey(y[ny - 1] - x[0]);
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (pairs_le(x, nx, y, ny, dval(mid)) >= k)
			hi = mid;
		else
			lo = mid + 1;
	}
	return dval(lo);
}

/* z with P(Z > z) = q for a standard normal Z, by bisection on erfc. */
static double normal_upper(double q)
{
	double lo = -40, hi = 40;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;
		if (0.5 * erfc(mid / M_SQRT2) > q)
			lo = mid;
		else
			hi = mid;
	}
	return (lo + hi) / 2;
}

/* The interval's rank k (D(k) .. D(N+1-k)) and its coverage; k = 0 when
 * no interval reaches 1 - alpha. */
static int hl_rank(const ranks *r, double alpha, size_t *k, double *level)
{
	if (use_exact(r)) {
		double *cdf = exact_cdf(r->nx, r->ny);
		if (!cdf)
			return mb_err(MB_ERR_NOMEM, "compare: out of memory");
		size_t c = 0, top = (size_t)r->nx * (size_t)r->ny;
		while (c < top && cdf[c] <= alpha / 2)
			c++;
		*k = c;
		/* with c = 0 the widest interval, D(1)..D(N), misses 1 - alpha */
		*level = fmax(0.0, 1 - 2 * cdf[c ? c - 1 : 0]);
		free(cdf);
		return 0;
	}
	double mu = (double)r->nx * r->ny / 2;
	double kk = floor(mu + 0.5 - normal_upper(alpha / 2) * mwu_sd(r));
	*k = kk >= 1 ? (size_t)kk : 0;
	*level = *k ? 1 - alpha : 0; /* 0: below 1 - alpha, by an unknown amount */
	return 0;
}

static void hl_fill(const double *x, int nx, const double *y, int ny, size_t k, mb_hl *out)
{
	size_t top = (size_t)nx * (size_t)ny;
	out->est = kth_diff(x, nx, y, ny, top / 2 + 1);
	if (top % 2 == 0)
		out->est = (out->est + kth_diff(x, nx, y, ny, top / 2)) / 2;
	out->covers = k >= 1;
	if (k < 1)
		k = 1;
	out->lo = kth_diff(x, nx, y, ny, k);
	out->hi = kth_diff(x, nx, y, ny, top + 1 - k);
}

int mb_hl_shift(const double *x, int nx, const double *y, int ny, double alpha, mb_hl *out)
{
	double *sx, *sy;
	int rc = check_sizes(nx, ny);
	if (!rc && !(alpha > 0 && alpha < 1))
		rc = mb_err(MB_ERR_USAGE, "compare: alpha %g not in (0, 1)", alpha);
	if (rc || (rc = sorted_pair(x, nx, y, ny, &sx, &sy)))
		return rc;
	ranks r;
	rank_sums(sx, nx, sy, ny, &r);
	size_t k = 0;
	rc = hl_rank(&r, alpha, &k, &out->level);
	if (!rc) {
		size_t top = (size_t)nx * (size_t)ny;
		if (k > (top + 1) / 2) /* alpha near 1: the interval shrinks to the middle */
			k = (top + 1) / 2;
		hl_fill(sx, nx, sy, ny, k, out);
	}
	free(sx);
	return rc;
}

/* ---- one case: statuses, samples, metrics ---------------------------- */

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *get_str(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* A finite number > 0, or 0 when absent or anything else. */
static double get_pos(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble > 0 ? v->valuedouble
										      : 0;
}

/* A copy of at most max bytes, cut at a UTF-8 character boundary. */
static char *dup_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static void status_of(const cJSON *c, char *buf, size_t n)
{
	static const char *const known[] = {"ok", "invalid", "skipped", "error"};
	const char *s = get_str(c, "status");
	mb_strlcpy(buf, "?", n);
	for (size_t i = 0; s && i < MB_ARRAY_LEN(known); i++)
		if (!strcmp(s, known[i]))
			mb_strlcpy(buf, known[i], n);
}

/* The samples of one side: every value a finite number > 0, as many as
 * stats_s.n says when it says. NULL with a note otherwise. */
static double *read_samples(const cJSON *c, const char *side, int *n, char *note, size_t nn)
{
	const cJSON *arr = get(c, "samples_s"), *v;
	int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1, i = 0;
	const cJSON *sn = get(get(c, "stats_s"), "n");
	if (count < 1 || count > MB_CMP_MAX_SAMPLES) {
		snprintf(note, nn, "%s: %s", side, count < 0 ? "no samples_s array"
			 : count == 0 ? "samples_s is empty" : "more than 1000000 samples");
		return NULL;
	}
	if (cJSON_IsNumber(sn) && sn->valuedouble != count) {
		snprintf(note, nn, "%s: samples_s has %d values but stats_s.n is %.17g", side,
			 count, sn->valuedouble);
		return NULL;
	}
	double *x = malloc((size_t)count * sizeof *x);
	if (!x) {
		snprintf(note, nn, "%s: out of memory for %d samples", side, count);
		return NULL;
	}
	cJSON_ArrayForEach(v, arr)
	{
		if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0) {
			snprintf(note, nn, "%s: samples_s[%d] is not a positive finite number", side, i);
			free(x);
			return NULL;
		}
		x[i++] = v->valuedouble;
	}
	*n = count;
	return x;
}

/* The median (type 7, like stats_s.p50), then x[] replaced by its logs:
 * the test and the shift work on log(time), whose ranks are the times'. */
static double median_then_logs(double *x, int n)
{
	double m = NAN, *s = malloc((size_t)n * sizeof *s);
	if (s) {
		memcpy(s, x, (size_t)n * sizeof *s);
		qsort(s, (size_t)n, sizeof *s, cmp_dbl);
		m = mb_quantile_sorted(s, n, 0.5);
		free(s);
	}
	for (int i = 0; i < n; i++)
		x[i] = log(x[i]);
	return m;
}

static void judge(mb_cmp_metric *m, double p, const mb_cmp_opts *o)
{
	double thr = o->max_regress_pct / 100, worse = m->higher_better ? -m->change : m->change;
	if (!(p < o->alpha))
		m->verdict = MB_VERDICT_SAME;
	else if (worse > thr)
		m->verdict = MB_VERDICT_REGRESSION;
	else
		m->verdict = worse > 0 ? MB_VERDICT_WORSE : MB_VERDICT_BETTER;
}

/* Throughput metrics: work / time with the same work on every sample. */
static void add_throughput(mb_cmp_case *c, const cJSON *b, const cJSON *n, const mb_hl *h,
			   double med_b, double med_n)
{
	static const char *const names[] = {"tflops", "tokens_per_s", "busbw_gbps"};
	for (size_t i = 0; i < MB_ARRAY_LEN(names); i++) {
		double vb = get_pos(get(b, "metrics"), names[i]);
		double vn = get_pos(get(n, "metrics"), names[i]);
		if (!vb || !vn || !(med_b > 0) || !(med_n > 0))
			continue;
		double w = (vn * med_n) / (vb * med_b); /* work ratio, 1 for the same case */
		mb_cmp_metric *m = &c->metrics[c->nmetrics++];
		*m = (mb_cmp_metric){.name = names[i], .higher_better = 1, .base = vb, .new_ = vn,
				     .change = w * exp(-h->est) - 1, .lo = w * exp(-h->hi) - 1,
				     .hi = w * exp(-h->lo) - 1};
		if (fabs(w - 1) > 1e-6 && !c->note[0])
			snprintf(c->note, sizeof c->note, "%s x median time differs by %+.3g%%: "
				 "not the same work per iteration, or metrics that do not match "
				 "samples_s", names[i], 100 * (w - 1));
	}
}

/* Too few samples: even the most extreme ordering has p = 2 / C(n, nx)
 * >= alpha, or the interval falls short of 1 - alpha. */
static void note_power(mb_cmp_case *c, double alpha)
{
	double n = (double)c->nbase + c->nnew;
	double lc = lgamma(n + 1) - lgamma(c->nbase + 1.0) - lgamma(c->nnew + 1.0);
	if ((log(2.0) - lc >= log(alpha) || !c->ci_covers) && !c->note[0])
		snprintf(c->note, sizeof c->note, "%d and %d samples: too few for p below %g and "
			 "a %g%% interval", c->nbase, c->nnew, alpha, 100 * (1 - alpha));
}

static int measure(mb_cmp_case *c, const cJSON *b, const cJSON *n, double *x, double *y,
		   const mb_cmp_opts *o)
{
	mb_mwu t;
	mb_hl h;
	double med_b = median_then_logs(x, c->nbase), med_n = median_then_logs(y, c->nnew);
	int rc = mb_mwu_test(x, c->nbase, y, c->nnew, &t);
	if (rc || (rc = mb_hl_shift(x, c->nbase, y, c->nnew, o->alpha, &h)))
		return rc;
	c->kind = MB_CASE_COMPARED;
	c->p = t.p;
	c->exact = t.exact;
	c->ci_covers = h.covers;
	c->metrics[0] = (mb_cmp_metric){.name = "time_p50_s", .base = med_b, .new_ = med_n,
					.change = expm1(h.est), .lo = expm1(h.lo),
					.hi = expm1(h.hi)};
	c->nmetrics = 1;
	add_throughput(c, b, n, &h, med_b, med_n);
	for (int i = 0; i < c->nmetrics; i++) {
		judge(&c->metrics[i], t.p, o);
		c->regression |= c->metrics[i].verdict == MB_VERDICT_REGRESSION;
	}
	note_power(c, o->alpha);
	return 0;
}

/* Statuses decide whether the timings are judged at all. Returns 1 when
 * they are. */
static int judge_statuses(mb_cmp_case *c, const cJSON *n, const mb_cmp_opts *o)
{
	int bok = !strcmp(c->base_status, "ok"), nok = !strcmp(c->new_status, "ok");
	if (bok && nok)
		return 1;
	if (bok) {
		const char *why = get_str(n, "reason");
		c->kind = MB_CASE_FAILED;
		snprintf(c->note, sizeof c->note, "ok in BASE, %s in NEW%s%.400s", c->new_status,
			 why && why[0] ? ": " : "", why ? why : "");
		return 0;
	}
	if (o->include_invalid && !strcmp(c->base_status, "invalid") &&
	    !strcmp(c->new_status, "invalid"))
		return 1;
	c->kind = MB_CASE_NOT_OK;
	snprintf(c->note, sizeof c->note, "%s in BASE, %s in NEW: timings not judged%s",
		 c->base_status, c->new_status,
		 !strcmp(c->base_status, "invalid") && !strcmp(c->new_status, "invalid")
			 ? " (--include-invalid judges them)" : "");
	return 0;
}

static int compare_case(mb_cmp_case *c, const cJSON *b, const cJSON *n, const mb_cmp_opts *o)
{
	status_of(b, c->base_status, sizeof c->base_status);
	status_of(n, c->new_status, sizeof c->new_status);
	if (!judge_statuses(c, n, o))
		return 0;
	double *x = read_samples(b, "BASE", &c->nbase, c->note, sizeof c->note);
	double *y = x ? read_samples(n, "NEW", &c->nnew, c->note, sizeof c->note) : NULL;
	int rc = 0;
	if (!x || !y)
		c->kind = MB_CASE_BAD_SAMPLES;
	else
		rc = measure(c, b, n, x, y, o);
	free(x);
	free(y);
	return rc;
}

/* ---- the join -------------------------------------------------------- */

typedef struct entry {
	const cJSON *c;
	char *key;  /* suite and every parameter, sorted by name (owned) */
	int index;  /* position in results[] */
	int dup;    /* an earlier case has the same key: ignored */
} entry;

typedef struct side {
	const char *name; /* "BASE" or "NEW" */
	entry *v;         /* cases in file order */
	entry **sorted;   /* by key, then index */
	int n, nodd, ndup;
} side;

static int cmp_param(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

/* A parameter value as text with its type, so 512 and "512" differ. */
static void value_text(FILE *f, const cJSON *v)
{
	if (cJSON_IsNumber(v)) {
		fprintf(f, "n%.17g", v->valuedouble);
	} else if (cJSON_IsString(v) && v->valuestring) {
		fprintf(f, "s%zu:%s", strlen(v->valuestring), v->valuestring);
	} else {
		char *j = cJSON_PrintUnformatted(v);
		fprintf(f, "j%zu:%s", j ? strlen(j) : 0, j ? j : "");
		cJSON_free(j);
	}
}

/* Length-prefixed, so no string in a file can forge another case's key. */
static char *case_key(const cJSON *c)
{
	const cJSON *params = get(c, "params"), *p;
	const char *suite = get_str(c, "suite");
	int np = cJSON_IsObject(params) ? cJSON_GetArraySize(params) : 0, i = 0;
	const cJSON **ps = calloc((size_t)np + 1, sizeof *ps);
	char *key = NULL;
	size_t len = 0;
	FILE *f = ps ? open_memstream(&key, &len) : NULL;
	if (!f) {
		free(ps);
		return NULL;
	}
	const cJSON *obj = np ? params : NULL;
	cJSON_ArrayForEach(p, obj)
	{
		ps[i++] = p;
	}
	qsort(ps, (size_t)np, sizeof *ps, cmp_param);
	fprintf(f, "%zu:%s", suite ? strlen(suite) : 0, suite ? suite : "");
	for (i = 0; i < np; i++) {
		const char *name = ps[i]->string ? ps[i]->string : "";
		fprintf(f, "|%zu:%s=", strlen(name), name);
		value_text(f, ps[i]);
	}
	free(ps);
	if (fclose(f)) {
		free(key);
		return NULL;
	}
	return key;
}

/* "suite k=v k=v" in file order, for people; cut at MB_CMP_LABEL_MAX. */
static char *case_label(const cJSON *c)
{
	const cJSON *p, *params = get(c, "params");
	const cJSON *obj = cJSON_IsObject(params) ? params : NULL;
	const char *suite = get_str(c, "suite");
	char *text = NULL, *out;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fputs(suite ? suite : "?", f);
	cJSON_ArrayForEach(p, obj)
	{
		fprintf(f, " %s=", p->string ? p->string : "?");
		if (cJSON_IsNumber(p) && fabs(p->valuedouble) < 9e15 &&
		    p->valuedouble == floor(p->valuedouble))
			fprintf(f, "%lld", (long long)p->valuedouble);
		else if (cJSON_IsNumber(p))
			fprintf(f, "%.17g", p->valuedouble);
		else
			fputs(cJSON_IsString(p) && p->valuestring ? p->valuestring : "?", f);
		if (ftell(f) > MB_CMP_LABEL_MAX)
			break;
	}
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	out = dup_cut(text, MB_CMP_LABEL_MAX);
	free(text);
	return out;
}

static int cmp_entry(const void *a, const void *b)
{
	const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->index > y->index) - (x->index < y->index);
}

static void side_free(side *s)
{
	for (int i = 0; s->v && i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
	free(s->sorted);
}

static int side_load(const cJSON *root, const char *name, const char *path, side *s)
{
	const cJSON *res = get(root, "results"), *c;
	*s = (side){.name = name};
	if (!cJSON_IsArray(res))
		return mb_err(MB_ERR_USAGE, "%s: \"results\" is missing or not an array", path);
	int cap = cJSON_GetArraySize(res), i = 0;
	s->v = calloc((size_t)cap + 1, sizeof *s->v);
	s->sorted = calloc((size_t)cap + 1, sizeof *s->sorted);
	if (!s->v || !s->sorted)
		return mb_err(MB_ERR_NOMEM, "%s: out of memory", path);
	cJSON_ArrayForEach(c, res)
	{
		i++;
		if (!cJSON_IsObject(c) || !get_str(c, "suite")) {
			s->nodd++; /* not a case: nothing to join on */
			continue;
		}
		entry *e = &s->v[s->n];
		*e = (entry){.c = c, .index = i - 1, .key = case_key(c)};
		if (!e->key)
			return mb_err(MB_ERR_NOMEM, "%s: out of memory", path);
		s->sorted[s->n] = e;
		s->n++;
	}
	qsort(s->sorted, (size_t)s->n, sizeof *s->sorted, cmp_entry);
	for (i = 1; i < s->n; i++)
		if (!strcmp(s->sorted[i]->key, s->sorted[i - 1]->key)) {
			s->sorted[i]->dup = 1;
			s->ndup++;
		}
	return 0;
}

/* The first case with this key on side s, or NULL. */
static const entry *side_find(const side *s, const char *key)
{
	int lo = 0, hi = s->n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (strcmp(s->sorted[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && !strcmp(s->sorted[lo]->key, key) ? s->sorted[lo] : NULL;
}

/* ---- the report ------------------------------------------------------ */

static char *file_str(const cJSON *root, const char *key)
{
	const char *s = get_str(root, key);
	return dup_cut(s ? s : "-", 256);
}

static char *device_name(const cJSON *root)
{
	const cJSON *devs = get(root, "devices");
	const char *s = cJSON_IsArray(devs) ? get_str(cJSON_GetArrayItem(devs, 0), "name") : NULL;
	return dup_cut(s ? s : "-", 256);
}

static void add_note(mb_cmp_report *r, const char *fmt, const char *a, const char *b)
{
	size_t used = strlen(r->notes);
	snprintf(r->notes + used, sizeof r->notes - used, fmt, used ? "; " : "", a, b);
}

/* Differences between the runs that make a comparison suspect. */
static void run_notes(mb_cmp_report *r, const cJSON *base, const cJSON *new_, const side *b,
		      const side *n)
{
	static const char *const keys[] = {"backend", "model", "size", "iters"};
	if (strcmp(r->base_device, r->new_device))
		add_note(r, "%sdevices differ (BASE %.100s, NEW %.100s)", r->base_device,
			 r->new_device);
	for (size_t i = 0; i < MB_ARRAY_LEN(keys); i++) {
		const cJSON *x = get(get(base, "config"), keys[i]);
		const cJSON *y = get(get(new_, "config"), keys[i]);
		if (x && y && !cJSON_Compare(x, y, 1))
			add_note(r, "%sconfig.%s differs between the runs%s", keys[i], "");
	}
	char num[64];
	const side *s[2] = {b, n};
	for (int i = 0; i < 2; i++) {
		snprintf(num, sizeof num, "%d", s[i]->nodd);
		if (s[i]->nodd)
			add_note(r, "%s%s: %s entries of results[] are not cases: ignored", s[i]->name,
				 num);
		snprintf(num, sizeof num, "%d", s[i]->ndup);
		if (s[i]->ndup)
			add_note(r, "%s%s: %s repeated cases: the first of each is used", s[i]->name,
				 num);
	}
}

static int tally(mb_cmp_report *r, const mb_cmp_case *c)
{
	switch (c->kind) {
	case MB_CASE_COMPARED: r->ncompared++; break;
	case MB_CASE_FAILED: r->nfailed++; break;
	case MB_CASE_NOT_OK: r->nnot_ok++; break;
	case MB_CASE_BAD_SAMPLES: r->nbad++; break;
	case MB_CASE_BASE_ONLY: r->nbase_only++; break;
	case MB_CASE_NEW_ONLY: r->nnew_only++; break;
	}
	r->nregressions += c->regression;
	return 0;
}

/* One report row for the case e (from side one), matched with m or not. */
static int add_case(mb_cmp_report *r, const entry *e, const entry *m, int e_is_base)
{
	mb_cmp_case *c = &r->cases[r->ncases];
	memset(c, 0, sizeof *c);
	c->label = case_label(e->c);
	c->suite = dup_cut(get_str(e->c, "suite"), 256);
	if (!c->label || !c->suite)
		return mb_err(MB_ERR_NOMEM, "compare: out of memory");
	r->ncases++;
	if (!m) {
		c->kind = e_is_base ? MB_CASE_BASE_ONLY : MB_CASE_NEW_ONLY;
		status_of(e->c, e_is_base ? c->base_status : c->new_status, sizeof c->base_status);
	} else {
		int rc = compare_case(c, e->c, m->c, &r->opts);
		if (rc)
			return rc;
	}
	return tally(r, c);
}

static int join(mb_cmp_report *r, const side *b, const side *n)
{
	r->cases = calloc((size_t)b->n + (size_t)n->n + 1, sizeof *r->cases);
	if (!r->cases)
		return mb_err(MB_ERR_NOMEM, "compare: out of memory");
	int rc = 0;
	for (int i = 0; !rc && i < b->n; i++)
		if (!b->v[i].dup)
			rc = add_case(r, &b->v[i], side_find(n, b->v[i].key), 1);
	for (int i = 0; !rc && i < n->n; i++)
		if (!n->v[i].dup && !side_find(b, n->v[i].key))
			rc = add_case(r, &n->v[i], NULL, 0);
	return rc;
}

int mb_cmp_build(const cJSON *base, const char *base_path, const cJSON *new_,
		 const char *new_path, const mb_cmp_opts *o, mb_cmp_report *out)
{
	side b, n;
	memset(out, 0, sizeof *out);
	out->opts = *o;
	int rc = side_load(base, "BASE", base_path, &b);
	if (!rc)
		rc = side_load(new_, "NEW", new_path, &n);
	else
		n = (side){0};
	if (!rc) {
		out->base_path = dup_cut(base_path, 4096);
		out->new_path = dup_cut(new_path, 4096);
		out->base_run = file_str(base, "run_id");
		out->new_run = file_str(new_, "run_id");
		out->base_device = device_name(base);
		out->new_device = device_name(new_);
		if (!out->base_path || !out->new_path || !out->base_run || !out->new_run ||
		    !out->base_device || !out->new_device)
			rc = mb_err(MB_ERR_NOMEM, "compare: out of memory");
	}
	if (!rc) {
		run_notes(out, base, new_, &b, &n);
		rc = join(out, &b, &n);
	}
	side_free(&b);
	side_free(&n);
	if (rc)
		mb_cmp_free(out);
	return rc;
}

void mb_cmp_free(mb_cmp_report *r)
{
	if (!r)
		return;
	for (int i = 0; r->cases && i < r->ncases; i++) {
		free(r->cases[i].label);
		free(r->cases[i].suite);
	}
	free(r->cases);
	free(r->base_path);
	free(r->new_path);
	free(r->base_run);
	free(r->new_run);
	free(r->base_device);
	free(r->new_device);
	memset(r, 0, sizeof *r);
}

int mb_cmp_exit_code(const mb_cmp_report *r)
{
	return r->nregressions || r->nfailed ? MB_EXIT_FAIL : MB_EXIT_OK;
}
