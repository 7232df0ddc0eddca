/* report_plot.c: the plots of `moebench report` (report.h): for each one
 * DIR/plots/NAME.dat (numbers only) and NAME.gp (variables, then a
 * template from plots/ copied verbatim), then gnuplot renders NAME.svg
 * and NAME.png from them.
 *
 * Strings from result files (titles, system and case names) reach gnuplot
 * only as single-quoted string literals made by mb_rep_gp, in the
 * variables at the top of NAME.gp; the data files hold numbers only.
 * report_gnuplot.c finds the templates and runs gnuplot.
 */
#include "mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "result.h"

#define TEMPLATE_MAX (64 * 1024)

/* A plot being built: the variables and the data, in memory. */
typedef struct plot_buf {
	char *vars, *data;
	size_t nvars, ndata;
	FILE *v, *d;
} plot_buf;

static int buf_open(plot_buf *b)
{
	memset(b, 0, sizeof *b);
	b->v = open_memstream(&b->vars, &b->nvars);
	b->d = open_memstream(&b->data, &b->ndata);
	return b->v && b->d ? 0 : mb_err(MB_ERR_NOMEM, "report: out of memory");
}

static void buf_free(plot_buf *b)
{
	if (b->v)
		fclose(b->v);
	if (b->d)
		fclose(b->d);
	free(b->vars);
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* var = 'text' (escaped). */
static void gp_set(FILE *f, const char *var, const char *text)
{
	char q[MB_REP_TEXT_MAX * 2 + 8];
	fprintf(f, "%s = %s\n", var, mb_rep_gp(q, sizeof q, text));
}

static void gp_array(FILE *f, const char *var, char (*items)[MB_REP_LABEL_MAX * 2], int n)
{
	fprintf(f, "array %s[%d]\n", var, n);
	for (int i = 0; i < n; i++) {
		char name[32];
		mb_rep_fmt(name, sizeof name, "%s[%d]", var, i + 1);
		gp_set(f, name, items[i]);
	}
}

static void dat_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, " %.9g", v);
	else
		fprintf(f, " ?");
}

static int is_ok(const cJSON *r)
{
	return !strcmp(mb_rep_str(r, "status", ""), "ok");
}

/* The case of run in group g, ok, or NULL. */
static const cJSON *ok_case(const mb_rep *rep, int g, int run)
{
	const mb_rep_group *gr = &rep->groups[g];
	for (int i = gr->first; i < gr->first + gr->n; i++)
		if (rep->cases[i].run == run && is_ok(rep->cases[i].r))
			return rep->cases[i].r;
	return NULL;
}

/* "a b" into dst, cut to the label size. */
static void join2(char *dst, size_t n, const char *a, const char *b)
{
	char tmp[MB_REP_LABEL_MAX * 4];
	mb_rep_fmt(tmp, sizeof tmp, "%s%s%s", a, b[0] ? " " : "", b);
	mb_rep_text(dst, n, tmp);
}

typedef char label_t[MB_REP_LABEL_MAX * 2];

/* ---- the plots */

typedef struct plot_ctx {
	const mb_rep *rep;
	mb_rep_plots *out;
	const char *dir;
	char tdir[4096]; /* where the templates are, "" if not found */
	char tnote[MB_REP_TEXT_MAX];
	int left_out;    /* plots past MB_REP_MAX_PLOTS */
} plot_ctx;

static mb_rep_plot *plot_new(plot_ctx *c, mb_plot_kind kind, int suite, const char *stem)
{
	if (c->out->n == MB_REP_MAX_PLOTS) {
		c->left_out++;
		return NULL;
	}
	mb_rep_plot *p = &c->out->p[c->out->n++];
	char safe[MB_REP_NAME_MAX + 1];
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->suite = suite;
	/* The stem from a file is made safe, and the plot's index keeps two
	 * suites whose names sanitise alike apart. */
	mb_rep_fmt(p->name, sizeof p->name, "%02d-%s", c->out->n,
		   mb_rep_filename(safe, sizeof safe, stem));
	return p;
}

static int read_all(const char *path, size_t max, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	*text = NULL;
	if (!f)
		return -1;
	char *buf = malloc(max + 1);
	size_t got = buf ? fread(buf, 1, max + 1, f) : 0;
	fclose(f);
	if (!buf || got > max) {
		free(buf);
		return -1;
	}
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return 0;
}

/* Write NAME.gp (variables + template) and NAME.dat. */
static int plot_write(plot_ctx *c, mb_rep_plot *p, plot_buf *b, const char *tmpl)
{
	char path[4200], *t = NULL;
	size_t tlen = 0;
	if (fclose(b->v) | fclose(b->d)) {
		b->v = b->d = NULL;
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	}
	b->v = b->d = NULL;
	mb_rep_fmt(path, sizeof path, "%s/%s.dat", c->dir, p->name);
	if (mb_write_atomic(path, b->data, b->ndata))
		return -1;
	if (!c->tdir[0]) {
		mb_rep_fmt(p->note, sizeof p->note, "%s", c->tnote);
		return 0;
	}
	mb_rep_fmt(path, sizeof path, "%s/%s", c->tdir, tmpl);
	if (read_all(path, TEMPLATE_MAX, &t, &tlen)) {
		mb_rep_text(p->note, sizeof p->note, "the gnuplot template cannot be read");
		return 0;
	}
	char *all = NULL;
	size_t alen = 0;
	FILE *f = open_memstream(&all, &alen);
	if (!f) {
		free(t);
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	}
	fprintf(f, "# %s.gp: written by moebench report; `gnuplot %s.gp` in this directory\n"
		   "# re-renders %s.svg and %s.png from %s.dat. The variables come first, then\n"
		   "# the template plots/%s, verbatim.\n",
		p->name, p->name, p->name, p->name, p->name, tmpl);
	fprintf(f, "out = '%s'\n", p->name); /* [A-Za-z0-9._-]: needs no escaping */
	gp_set(f, "title", p->title);
	fwrite(b->vars, 1, b->nvars, f);
	fprintf(f, "\n");
	fwrite(t, 1, tlen, f);
	free(t);
	int rc = fclose(f) ? mb_err(MB_ERR_NOMEM, "report: out of memory") : 0;
	mb_rep_fmt(path, sizeof path, "%s/%s.gp", c->dir, p->name);
	if (!rc)
		rc = mb_write_atomic(path, all, alen);
	free(all);
	if (!rc)
		p->written = 1;
	return rc;
}

/* The metric of list that the most ok cases of suite s have (the first
 * of equals), or MB_REP_NMETRICS when none has any. */
static mb_rep_metric pick_metric(const mb_rep *rep, int s, const mb_rep_metric *list, int n)
{
	char why[8];
	const mb_rep_suite *su = &rep->suites[s];
	mb_rep_metric best = MB_REP_NMETRICS;
	int most = 0;
	for (int k = 0; k < n; k++) {
		int count = 0;
		for (int i = rep->groups[su->first].first; i < rep->ncases; i++) {
			if (rep->groups[rep->cases[i].group].suite != s)
				break;
			count += is_ok(rep->cases[i].r) &&
				 isfinite(mb_rep_value(rep->cases[i].r, list[k], why, sizeof why));
		}
		if (count > most) {
			most = count;
			best = list[k];
		}
	}
	return best;
}

/* Bars (bars.gp) of metric m for the groups of suite s (-1: every suite)
 * against the runs: value at the median time, whiskers from the time's
 * CI when ci is set. */
static int plot_bars(plot_ctx *c, mb_rep_plot *p, int s, mb_rep_metric m, int ci,
		     const char *ylabel)
{
	const mb_rep *rep = c->rep;
	char why[8];
	int runs[MB_REP_MAX_RUNS], nr = 0, nc = 0, skipped = 0, rc;
	label_t *cats = calloc(MB_REP_MAX_BARS, sizeof *cats), *series = NULL;
	plot_buf b;
	if (!cats || buf_open(&b)) {
		free(cats);
		buf_free(&b);
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	}
	for (int r = 0; r < rep->nruns; r++)
		for (int g = 0; g < rep->ngroups; g++) {
			const cJSON *x = ok_case(rep, g, r);
			if ((s < 0 || rep->groups[g].suite == s) && x &&
			    isfinite(mb_rep_value(x, m, why, sizeof why))) {
				runs[nr++] = r;
				break;
			}
		}
	series = calloc(nr ? (size_t)nr : 1, sizeof *series);
	for (int i = 0; series && i < nr; i++)
		mb_rep_text(series[i], sizeof series[i], rep->runs[runs[i]].label);
	for (int g = 0; series && g < rep->ngroups; g++) {
		const mb_rep_group *gr = &rep->groups[g];
		int any = 0;
		if (s >= 0 && gr->suite != s)
			continue;
		for (int i = 0; i < nr && !any; i++) {
			const cJSON *x = ok_case(rep, g, runs[i]);
			any = x && isfinite(mb_rep_value(x, m, why, sizeof why));
		}
		if (!any)
			continue;
		if (nc == MB_REP_MAX_BARS) {
			skipped++;
			continue;
		}
		if (s < 0)
			join2(cats[nc], sizeof cats[nc], rep->suites[gr->suite].name, gr->label);
		else
			mb_rep_text(cats[nc], sizeof cats[nc], gr->label);
		fprintf(b.d, "%d", nc);
		for (int i = 0; i < nr; i++) {
			const cJSON *x = ok_case(rep, g, runs[i]);
			double v = x ? mb_rep_value(x, m, why, sizeof why) : NAN;
			double lo = v, hi = v, tlo, thi;
			double t = x ? mb_rep_num(mb_rep_get(x, "stats_s"), "p50") : NAN;
			/* work / time: the time's interval maps to the metric's, reversed */
			if (ci && isfinite(v) && t > 0 && !mb_rep_ci(x, &tlo, &thi) && tlo > 0) {
				lo = v * t / thi;
				hi = v * t / tlo;
			}
			dat_num(b.d, v);
			dat_num(b.d, lo);
			dat_num(b.d, hi);
		}
		fprintf(b.d, "\n");
		nc++;
	}
	if (!series) {
		rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
	} else if (nc == 0) {
		rc = 0;
	} else {
		gp_set(b.v, "ylabel", ylabel);
		fprintf(b.v, "ylog = 0\n");
		gp_array(b.v, "series", series, nr);
		gp_array(b.v, "cats", cats, nc);
		if (skipped)
			mb_rep_fmt(p->caption + strlen(p->caption), sizeof p->caption - strlen(p->caption),
				 " %d more cases are not drawn (at most %d per plot).", skipped,
				 MB_REP_MAX_BARS);
		rc = plot_write(c, p, &b, "bars.gp");
	}
	buf_free(&b);
	free(cats);
	free(series);
	return rc;
}

static int plot_throughput(plot_ctx *c, int s)
{
	static const mb_rep_metric pref[] = {MB_REP_TFLOPS, MB_REP_TOKENS, MB_REP_GBPS};
	static const char *const unit[] = {[MB_REP_TFLOPS] = "TFLOP/s", [MB_REP_TOKENS] = "tokens/s",
					   [MB_REP_GBPS] = "algbw GB/s"};
	const char *name = c->rep->suites[s].name;
	char stem[MB_REP_LABEL_MAX + 16];
	mb_rep_fmt(stem, sizeof stem, "throughput-%s", name);
	mb_rep_plot *p = plot_new(c, MB_PLOT_THROUGHPUT, s, stem);
	if (!p)
		return 0;
	mb_rep_metric m = pick_metric(c->rep, s, pref, 3);
	if (m == MB_REP_NMETRICS) {
		mb_rep_fmt(p->title, sizeof p->title, "%s: throughput", name);
		mb_rep_fmt(p->note, sizeof p->note, "no throughput plot: no ok case of this suite has "
						  "TFLOP/s, tokens/s or GB/s");
		return 0;
	}
	mb_rep_fmt(p->title, sizeof p->title, "%s: %s per case and system", name, unit[m]);
	mb_rep_fmt(p->caption, sizeof p->caption,
		 "Bars: %s at the median time; whiskers: the same at the ends of the 95%% "
		 "confidence interval of the median time (stats_s.median_ci95). Cases with "
		 "status ok only.", unit[m]);
	return plot_bars(c, p, s, m, 1, unit[m]);
}

static int plot_energy(plot_ctx *c)
{
	const mb_rep *rep = c->rep;
	char why[MB_REP_TEXT_MAX];
	mb_rep_plot *p = plot_new(c, MB_PLOT_ENERGY, -1, "energy");
	if (!p)
		return 0;
	mb_rep_fmt(p->title, sizeof p->title, "energy per token (J/token)");
	for (int i = 0; i < rep->ncases; i++)
		if (is_ok(rep->cases[i].r) &&
		    isfinite(mb_rep_value(rep->cases[i].r, MB_REP_J_TOKEN, why, sizeof why))) {
			mb_rep_fmt(p->caption, sizeof p->caption,
				 "power.j_per_token: the energy of the timed iterations over the "
				 "tokens of every rank. Cases with status ok only; no whiskers (one "
				 "energy reading per case).");
			return plot_bars(c, p, -1, MB_REP_J_TOKEN, 0, "J/token");
		}
	/* Replaced by a note: the first case's reason says why. */
	mb_rep_fmt(why, sizeof why, "no result has a case with status ok");
	for (int i = 0; i < rep->ncases; i++)
		if (is_ok(rep->cases[i].r)) {
			(void)mb_rep_value(rep->cases[i].r, MB_REP_J_TOKEN, why, sizeof why);
			break;
		}
	mb_rep_fmt(p->note, sizeof p->note, "no energy plot: no case has power data (power: null "
					  "— %s)", why);
	return 0;
}

/* Bucket means of x[0..n) into at most MB_REP_MAX_POINTS points (x: the
 * bucket's middle iteration, 1-based), written as one block. */
static int series_block(FILE *f, const cJSON *samples)
{
	int n = cJSON_GetArraySize(samples), k = (n + MB_REP_MAX_POINTS - 1) / MB_REP_MAX_POINTS;
	const cJSON *v = samples ? samples->child : NULL;
	for (int i = 0; i < n; i += k) {
		double sum = 0;
		int cnt = 0;
		for (int j = 0; j < k && v; j++, v = v->next)
			if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble > 0) {
				sum += v->valuedouble;
				cnt++;
			}
		if (cnt)
			fprintf(f, "%.9g %.9g\n", i + 1 + (fmin(k, n - i) - 1) / 2.0, sum / cnt * 1e3);
	}
	fprintf(f, "\n\n");
	return k;
}

static int plot_series(plot_ctx *c, int s)
{
	const mb_rep *rep = c->rep;
	const mb_rep_suite *su = &rep->suites[s];
	char stem[MB_REP_LABEL_MAX + 16];
	label_t *names = calloc(MB_REP_MAX_SERIES, sizeof *names);
	int ns = 0, more = 0, k = 1, rc = 0;
	plot_buf b;
	mb_rep_fmt(stem, sizeof stem, "iterations-%s", su->name);
	mb_rep_plot *p = plot_new(c, MB_PLOT_SERIES, s, stem);
	if (!names || buf_open(&b)) {
		free(names);
		buf_free(&b);
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	}
	if (!p)
		goto out;
	mb_rep_fmt(p->title, sizeof p->title, "%s: time per timed iteration", su->name);
	for (int i = rep->groups[su->first].first; i < rep->ncases; i++) {
		const mb_rep_case *cs = &rep->cases[i];
		const cJSON *smp = mb_rep_get(cs->r, "samples_s");
		if (rep->groups[cs->group].suite != s)
			break;
		if (!is_ok(cs->r) || !cJSON_IsArray(smp) || cJSON_GetArraySize(smp) < 1)
			continue;
		if (ns == MB_REP_MAX_SERIES) {
			more++;
			continue;
		}
		join2(names[ns], sizeof names[ns], rep->runs[cs->run].label,
		      su->n > 1 ? rep->groups[cs->group].label : "");
		int kk = series_block(b.d, smp);
		k = kk > k ? kk : k;
		ns++;
	}
	if (ns == 0) {
		mb_rep_fmt(p->note, sizeof p->note, "no per-iteration plot: no case of this suite with "
						  "status ok has samples");
		goto out;
	}
	mb_rep_fmt(p->caption, sizeof p->caption,
		 "Each timed iteration's time (samples_s) in run order, log scale: a trend shows "
		 "warm-up, throttling or interference. Cases with status ok only.");
	if (k > 1)
		mb_rep_fmt(p->caption + strlen(p->caption), sizeof p->caption - strlen(p->caption),
			 " Long series are drawn as means of up to %d consecutive iterations "
			 "(at most %d points a line).", k, MB_REP_MAX_POINTS);
	if (more)
		mb_rep_fmt(p->caption + strlen(p->caption), sizeof p->caption - strlen(p->caption),
			 " %d more cases are not drawn (at most %d lines).", more, MB_REP_MAX_SERIES);
	gp_set(b.v, "xlabel", "timed iteration");
	gp_set(b.v, "ylabel", "ms per iteration");
	fprintf(b.v, "xlog = 0\nylog = 1\nxbase = 10\nxfmt = '%%g'\n");
	gp_array(b.v, "series", names, ns);
	rc = plot_write(c, p, &b, "lines.gp");
out:
	buf_free(&b);
	free(names);
	return rc;
}

/* One line of the alltoall size sweep: a run and the parameters but bytes. */
typedef struct a2a_line {
	int run;
	char *key;
	int n;
	double x[MB_REP_MAX_POINTS], y[MB_REP_MAX_POINTS];
	const char *glabel; /* a group label of one of its cases */
} a2a_line;

static int a2a_add(a2a_line *lines, int *nl, int *more, int run, const cJSON *r, const char *gl,
		   double x, double y)
{
	char *key = mb_rep_case_key_without(r, "bytes");
	int i;
	if (!key)
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	for (i = 0; i < *nl && (lines[i].run != run || strcmp(lines[i].key, key)); i++)
		;
	if (i == *nl && *nl == MB_REP_MAX_SERIES) {
		(*more)++;
		free(key);
		return 0;
	}
	if (i == *nl)
		lines[(*nl)++] = (a2a_line){.run = run, .key = key, .glabel = gl};
	else
		free(key);
	a2a_line *l = &lines[i];
	if (l->n < MB_REP_MAX_POINTS) { /* insertion: x ascending */
		int j = l->n++;
		for (; j > 0 && l->x[j - 1] > x; j--) {
			l->x[j] = l->x[j - 1];
			l->y[j] = l->y[j - 1];
		}
		l->x[j] = x;
		l->y[j] = y;
	}
	return 0;
}

/* "bytes=..." removed from a group label. */
static void drop_bytes(char *dst, size_t n, const char *label)
{
	char tmp[MB_REP_LABEL_MAX * 2];
	size_t j = 0;
	for (const char *s = label; *s;) {
		size_t w = strcspn(s, " ");
		if (strncmp(s, "bytes=", 6) && j + w + 1 < sizeof tmp) {
			j += (size_t)snprintf(tmp + j, sizeof tmp - j, "%s%.*s", j ? " " : "", (int)w, s);
		}
		s += w;
		s += *s == ' ';
	}
	tmp[j] = '\0';
	mb_rep_text(dst, n, tmp);
}

static int plot_a2a(plot_ctx *c, int s)
{
	const mb_rep *rep = c->rep;
	const mb_rep_suite *su = &rep->suites[s];
	a2a_line *lines = calloc(MB_REP_MAX_SERIES, sizeof *lines);
	label_t *names = calloc(MB_REP_MAX_SERIES, sizeof *names);
	int nl = 0, more = 0, rc = 0, seen = 0;
	char why[MB_REP_TEXT_MAX] = "";
	plot_buf b = {0};
	mb_rep_plot *p = plot_new(c, MB_PLOT_A2A_BW, s, "alltoall-busbw");
	if (!lines || !names) {
		rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
		goto out;
	}
	if (!p)
		goto out;
	mb_rep_fmt(p->title, sizeof p->title, "alltoall: bus bandwidth against message size");
	for (int i = rep->groups[su->first].first; i < rep->ncases && !rc; i++) {
		const mb_rep_case *cs = &rep->cases[i];
		const cJSON *params = mb_rep_get(cs->r, "params");
		if (rep->groups[cs->group].suite != s)
			break;
		double x = mb_rep_num(params, "bytes");
		if (!is_ok(cs->r) || strcmp(mb_rep_str(params, "mode", ""), "uniform") || !(x > 0))
			continue;
		char w[MB_REP_TEXT_MAX];
		double y = mb_rep_value(cs->r, MB_REP_BUSBW, w, sizeof w);
		if (!(y > 0)) {
			if (!seen++)
				mb_rep_fmt(why, sizeof why, "%s: %s", rep->runs[cs->run].label, w);
			continue;
		}
		rc = a2a_add(lines, &nl, &more, cs->run, cs->r, rep->groups[cs->group].label, x, y);
	}
	if (rc)
		goto out;
	if (nl == 0) {
		mb_rep_fmt(p->note, sizeof p->note, "no bandwidth-against-size plot: no alltoall case "
						  "with mode=uniform and status ok has a bus bandwidth%s%s",
			 why[0] ? " (busbw: null — " : "", why[0] ? why : "");
		if (why[0])
			strncat(p->note, ")", sizeof p->note - strlen(p->note) - 1);
		goto out;
	}
	if ((rc = buf_open(&b)))
		goto out;
	for (int i = 0; i < nl; i++) {
		int shared = 0; /* another line of the same run: name the parameters */
		for (int j = 0; j < nl; j++)
			shared |= j != i && lines[j].run == lines[i].run;
		char rest[MB_REP_LABEL_MAX * 2];
		drop_bytes(rest, sizeof rest, lines[i].glabel);
		join2(names[i], sizeof names[i], rep->runs[lines[i].run].label, shared ? rest : "");
		for (int k = 0; k < lines[i].n; k++)
			fprintf(b.d, "%.9g %.9g\n", lines[i].x[k], lines[i].y[k]);
		fprintf(b.d, "\n\n");
	}
	mb_rep_fmt(p->caption, sizeof p->caption,
		 "alltoall with mode=uniform: busbw (GB/s, nccl-tests' bus bandwidth: algbw x "
		 "(n-1)/n) against params.bytes, log-log, a line per system. Cases with status ok "
		 "only.%s", more ? " Some lines are not drawn (at most 12)." : "");
	gp_set(b.v, "xlabel", "bytes (params.bytes)");
	gp_set(b.v, "ylabel", "busbw GB/s");
	fprintf(b.v, "xlog = 1\nylog = 1\nxbase = 2\nxfmt = '%%.0b%%BB'\n");
	gp_array(b.v, "series", names, nl);
	rc = plot_write(c, p, &b, "lines.gp");
out:
	buf_free(&b);
	for (int i = 0; lines && i < nl; i++)
		free(lines[i].key);
	free(lines);
	free(names);
	return rc;
}

static const char *const phase_keys[] = {"phase_attention_s", "phase_moe_s", "phase_comm_s",
					 "phase_optimizer_s", "phase_other_s"};
static const char *const phase_names[] = {"attention", "MoE", "communication", "optimizer",
					  "other"};

/* 1 when some case of suite s has a phase time. */
static int has_phases(const mb_rep *rep, int s)
{
	for (int i = 0; i < rep->ncases; i++)
		if (rep->groups[rep->cases[i].group].suite == s &&
		    isfinite(mb_rep_num(mb_rep_get(rep->cases[i].r, "info"), phase_keys[0])))
			return 1;
	return 0;
}

static int plot_phases(plot_ctx *c, int s)
{
	const mb_rep *rep = c->rep;
	const mb_rep_suite *su = &rep->suites[s];
	char stem[MB_REP_LABEL_MAX + 16];
	label_t *cats = calloc(MB_REP_MAX_BARS, sizeof *cats), parts[5];
	int nc = 0, more = 0, rc = 0;
	plot_buf b;
	mb_rep_fmt(stem, sizeof stem, "phases-%s", su->name);
	mb_rep_plot *p = plot_new(c, MB_PLOT_PHASES, s, stem);
	if (!cats || buf_open(&b)) {
		free(cats);
		buf_free(&b);
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	}
	if (!p)
		goto out;
	mb_rep_fmt(p->title, sizeof p->title, "%s: time per phase of one profiled step", su->name);
	for (int i = rep->groups[su->first].first; i < rep->ncases; i++) {
		const mb_rep_case *cs = &rep->cases[i];
		const cJSON *info = mb_rep_get(cs->r, "info");
		if (rep->groups[cs->group].suite != s)
			break;
		if (!is_ok(cs->r) || !isfinite(mb_rep_num(info, phase_keys[0])))
			continue;
		if (nc == MB_REP_MAX_BARS) {
			more++;
			continue;
		}
		join2(cats[nc], sizeof cats[nc], rep->runs[cs->run].label,
		      su->n > 1 ? rep->groups[cs->group].label : "");
		fprintf(b.d, "%d", nc);
		for (int k = 0; k < 5; k++)
			dat_num(b.d, mb_rep_num(info, phase_keys[k]) * 1e3);
		fprintf(b.d, "\n");
		nc++;
	}
	if (nc == 0) {
		mb_rep_fmt(p->note, sizeof p->note, "no phase plot: no case with status ok has "
						  "info.phase_attention_s");
		goto out;
	}
	mb_rep_fmt(p->caption, sizeof p->caption,
		 "info.phase_{attention,moe,comm,optimizer,other}_s: one extra step profiled "
		 "outside the timed loop, with a device sync between phases (so the total is not "
		 "the median time). Cases with status ok only.%s",
		 more ? " Some cases are not drawn (at most 40 bars)." : "");
	for (int k = 0; k < 5; k++)
		mb_rep_fmt(parts[k], sizeof parts[k], "%s", phase_names[k]);
	gp_set(b.v, "ylabel", "ms");
	gp_array(b.v, "parts", parts, 5);
	gp_array(b.v, "cats", cats, nc);
	rc = plot_write(c, p, &b, "stacked.gp");
out:
	buf_free(&b);
	free(cats);
	return rc;
}

int mb_rep_plots_make(const mb_rep *rep, const char *dir, mb_rep_plots *out)
{
	plot_ctx c = {.rep = rep, .out = out, .dir = dir};
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->p = calloc(MB_REP_MAX_PLOTS, sizeof *out->p);
	if (!out->p)
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	if (mb_rep_templates(c.tdir, sizeof c.tdir, c.tnote, sizeof c.tnote))
		c.tdir[0] = '\0';
	for (int s = 0; s < rep->nsuites && !rc; s++) {
		rc = plot_throughput(&c, s);
		if (!rc && !strcmp(rep->suites[s].name, "alltoall"))
			rc = plot_a2a(&c, s);
		if (!rc && has_phases(rep, s))
			rc = plot_phases(&c, s);
		if (!rc)
			rc = plot_series(&c, s);
	}
	if (!rc)
		rc = plot_energy(&c);
	if (rc)
		return rc;
	out->left_out = c.left_out;
	if (!c.tdir[0])
		mb_rep_fmt(out->gnuplot_note, sizeof out->gnuplot_note, "%s", c.tnote);
	else
		mb_rep_render(out, dir);
	return 0;
}

void mb_rep_plots_free(mb_rep_plots *p)
{
	if (!p)
		return;
	free(p->p);
	memset(p, 0, sizeof *p);
}
