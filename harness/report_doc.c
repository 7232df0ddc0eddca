/* report_doc.c: the documents of `moebench report` (report.h): the same
 * content written once as Markdown and once as self-contained HTML.
 *
 * Everything from a result file goes through txt(), which escapes for the
 * medium; raw() is only ever given this file's own constants. A number
 * the file has as null is "n/a [k]", and note k under the table says why
 * (the file's own *_reason where it has one); a case that did not run
 * shows "–" and its status note. In HTML the plots' SVGs are inlined
 * through mb_rep_svg_inline (report_svg.c).
 */
#include "mb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define SVG_MAX (16 * 1024 * 1024)
#define ESC_BUF (MB_REP_TEXT_MAX * 6 + 64) /* the longest escape is 6 bytes */

typedef struct doc {
	FILE *f;
	int html;
	const mb_rep *rep;
	char **notes; /* the current section's notes, plain text (owned) */
	int nnotes, sec;
} doc;

/* ---- writing */

static void txt(doc *d, const char *s)
{
	char buf[ESC_BUF];
	fputs(d->html ? mb_rep_html(buf, sizeof buf, s) : mb_rep_md(buf, sizeof buf, s), d->f);
}

static void raw(doc *d, const char *md, const char *html)
{
	fputs(d->html ? html : md, d->f);
}

static void heading(doc *d, int level, const char *text)
{
	if (d->html) {
		fprintf(d->f, "<h%d>", level);
		txt(d, text);
		fprintf(d->f, "</h%d>\n", level);
	} else {
		fprintf(d->f, "%.*s ", level, "######");
		txt(d, text);
		fprintf(d->f, "\n\n");
	}
}

static void para(doc *d, const char *text)
{
	raw(d, "", "<p>");
	txt(d, text);
	raw(d, "\n\n", "</p>\n");
}

/* A table: heads, and which columns are numbers (right-aligned). */
static void table(doc *d, const char *const *heads, int n, unsigned num_mask)
{
	raw(d, "|", "<table>\n<thead><tr>");
	for (int i = 0; i < n; i++) {
		raw(d, " ", (num_mask >> i) & 1 ? "<th class=\"num\">" : "<th>");
		txt(d, heads[i]);
		raw(d, " |", "</th>");
	}
	raw(d, "\n|", "</tr></thead>\n<tbody>\n");
	for (int i = 0; i < n && !d->html; i++)
		fputs((num_mask >> i) & 1 ? "---:|" : "---|", d->f);
	raw(d, "\n", "");
}

static void row(doc *d) { raw(d, "|", "<tr>"); }
static void row_end(doc *d) { raw(d, "\n", "</tr>\n"); }
static void cell(doc *d, int num) { raw(d, " ", num ? "<td class=\"num\">" : "<td>"); }
static void cell_end(doc *d) { raw(d, " |", "</td>"); }
static void table_end(doc *d) { raw(d, "\n", "</tbody></table>\n"); }

/* A cell holding text only. */
static void text_cell(doc *d, const char *text)
{
	cell(d, 0);
	txt(d, text);
	cell_end(d);
}

/* ---- notes */

static void notes_flush(doc *d)
{
	if (d->nnotes) {
		raw(d, "Notes:\n\n", "<ol class=\"notes\">\n");
		for (int i = 0; i < d->nnotes; i++) {
			if (d->html)
				fprintf(d->f, "<li id=\"n%d-%d\">", d->sec, i + 1);
			else
				fprintf(d->f, "%d. ", i + 1);
			txt(d, d->notes[i]);
			raw(d, "\n", "</li>\n");
			free(d->notes[i]);
		}
		raw(d, "\n", "</ol>\n");
	}
	free(d->notes);
	d->notes = NULL;
	d->nnotes = 0;
	d->sec++;
}

/* " [k]" after a value: note k, added unless the section has it already. */
static void note_ref(doc *d, const char *text)
{
	int k = 0;
	while (k < d->nnotes && strcmp(d->notes[k], text))
		k++;
	if (k == d->nnotes) {
		char **grown = realloc(d->notes, (size_t)(d->nnotes + 1) * sizeof *grown);
		char *copy = strdup(text);
		if (!grown || !copy) { /* out of memory: the value stays, the reason is lost */
			free(copy);
			if (grown)
				d->notes = grown;
			return;
		}
		d->notes = grown;
		d->notes[d->nnotes++] = copy;
	}
	if (d->html)
		fprintf(d->f, " <a class=\"nref\" href=\"#n%d-%d\">[%d]</a>", d->sec, k + 1, k + 1);
	else
		fprintf(d->f, " \\[%d\\]", k + 1);
}

/* "n/a [k]" with note "what: null — why". */
static void na(doc *d, const char *what, const char *why)
{
	char text[MB_REP_TEXT_MAX + 64];
	mb_rep_fmt(text, sizeof text, "%s: null — %s", what, why);
	fputs("n/a", d->f);
	note_ref(d, text);
}

/* ---- numbers */

static void fmt(char *b, size_t n, double v)
{
	if (fabs(v) >= 1e4 && fabs(v) < 1e15)
		mb_rep_fmt(b, n, "%.0f", v);
	else
		mb_rep_fmt(b, n, "%.4g", v);
}

static int is_ok(const cJSON *r)
{
	return !strcmp(mb_rep_str(r, "status", ""), "ok");
}

/* A metric's cell: value (ms for time, with its interval), the ratio to
 * the baseline, or n/a with a note. */
static void metric_cell(doc *d, const mb_rep_case *cs, const mb_rep_case *base, mb_rep_metric m)
{
	char why[MB_REP_TEXT_MAX], a[64], b[64], c[64], wb[8];
	double v = mb_rep_value(cs->r, m, why, sizeof why), lo, hi;
	cell(d, 1);
	if (!cJSON_IsObject(mb_rep_get(cs->r, "stats_s"))) {
		fputs("–", d->f); /* did not run: its status note says why */
	} else if (!isfinite(v)) {
		na(d, mb_rep_metric_name(m), why);
	} else if (m == MB_REP_P50) {
		fmt(a, sizeof a, v * 1e3);
		fputs(a, d->f);
		if (!mb_rep_ci(cs->r, &lo, &hi)) {
			fmt(b, sizeof b, lo * 1e3);
			fmt(c, sizeof c, hi * 1e3);
			fprintf(d->f, " %s%s, %s%s", d->html ? "[" : "\\[", b, c, d->html ? "]" : "\\]");
		} else {
			note_ref(d, "95% interval of the median: stats_s.median_ci95 is missing or "
				    "not two numbers");
		}
	} else {
		fmt(a, sizeof a, v);
		fputs(a, d->f);
		if (m == MB_REP_J_TOKEN &&
		    cJSON_IsTrue(mb_rep_get(mb_rep_get(cs->r, "power"), "insufficient")))
			note_ref(d, "J/token: power sampling insufficient (power.insufficient: below "
				    "1 Hz, or a sensor silent for over 2 s): measured, but too sparse "
				    "to trust");
	}
	if (base && base != cs && isfinite(v) && is_ok(cs->r) && is_ok(base->r)) {
		double r = mb_rep_ratio(v, mb_rep_value(base->r, m, wb, sizeof wb));
		if (isfinite(r))
			fprintf(d->f, " (×%.3g)", r);
	}
	cell_end(d);
}

/* ---- sections */

static void systems(doc *d)
{
	static const char *const heads[] = {"run", "host", "device", "ranks", "published peak",
					    "measured peak", "computed peak", "power", "software",
					    "date", "status"};
	const mb_rep *rep = d->rep;
	heading(d, 2, "Systems");
	table(d, heads, 11, 0);
	for (int i = 0; i < rep->nruns; i++) {
		const cJSON *root = rep->runs[i].root, *sys = mb_rep_get(root, "system");
		const cJSON *world = mb_rep_get(root, "world"), *build = mb_rep_get(root, "build");
		const cJSON *dev = cJSON_GetArrayItem(mb_rep_get(root, "devices"), 0);
		const cJSON *libs = mb_rep_get(build, "libraries"), *res = mb_rep_get(root, "results");
		const cJSON *r, *peak = NULL, *mpeak = NULL, *cpeak = NULL, *power = NULL;
		const char *mfu_why = NULL, *mwhy = NULL, *cwhy = NULL, *power_why = NULL;
		char t[MB_REP_TEXT_MAX * 2];
		if (!cJSON_IsArray(res))
			res = NULL;
		cJSON_ArrayForEach(r, res) {
			const cJSON *m = mb_rep_get(r, "metrics");
			if (!peak && cJSON_IsObject(mb_rep_get(m, "peak")))
				peak = mb_rep_get(m, "peak");
			if (!mpeak && cJSON_IsObject(mb_rep_get(m, "measured_peak")))
				mpeak = mb_rep_get(m, "measured_peak");
			if (!cpeak && cJSON_IsObject(mb_rep_get(m, "computed_peak")))
				cpeak = mb_rep_get(m, "computed_peak");
			if (!mfu_why)
				mfu_why = mb_rep_str(m, "mfu_reason", NULL);
			if (!mwhy)
				mwhy = mb_rep_str(m, "mfu_measured_reason", NULL);
			if (!cwhy)
				cwhy = mb_rep_str(m, "mfu_computed_reason", NULL);
			if (!power && cJSON_IsObject(mb_rep_get(r, "power")))
				power = mb_rep_get(r, "power");
			if (!power_why)
				power_why = mb_rep_str(r, "power_reason", NULL);
		}
		row(d);
		cell(d, 0);
		txt(d, rep->runs[i].label);
		if (rep->runs[i].baseline)
			raw(d, " (baseline)", " <b>(baseline)</b>");
		cell_end(d);
		text_cell(d, mb_rep_str(sys, "hostname", "-"));
		mb_rep_fmt(t, sizeof t, "%s (%s), %.0f threads", mb_rep_str(dev, "name", "-"),
			 mb_rep_str(dev, "kind", "?"), fmax(0, fmin(1e9, mb_rep_num(dev, "threads"))));
		text_cell(d, t);
		mb_rep_fmt(t, sizeof t, "%.0f on %.0f node(s), %s",
			 fmax(0, fmin(1e9, mb_rep_num(world, "size"))),
			 fmax(0, fmin(1e9, mb_rep_num(world, "nodes"))),
			 mb_rep_str(world, "launcher", "?"));
		text_cell(d, t);
		cell(d, 0);
		if (peak) {
			mb_rep_fmt(t, sizeof t, "%.4g TFLOP/s %s (%s; %s)", mb_rep_num(peak, "tflops"),
				 mb_rep_str(peak, "dtype", "?"), mb_rep_str(peak, "device", "?"),
				 mb_rep_str(peak, "source", "?"));
			txt(d, t);
		} else {
			na(d, "published peak", mfu_why ? mfu_why : "no case names one (metrics.peak)");
		}
		cell_end(d);
		cell(d, 0);
		if (mpeak) {
			mb_rep_fmt(t, sizeof t, "%.4g TFLOP/s %s (measured %s; %s)",
				   mb_rep_num(mpeak, "tflops"), mb_rep_str(mpeak, "dtype", "?"),
				   mb_rep_str(mpeak, "time", "?"), mb_rep_str(mpeak, "source", "?"));
			txt(d, t);
		} else {
			na(d, "measured peak", mwhy ? mwhy : mb_rep_str(mb_rep_get(root, "config"),
				"calibration_reason", "no calibration in this file (metrics.measured_peak, "
				"from moebench micro)"));
		}
		cell_end(d);
		cell(d, 0);
		if (cpeak) {
			mb_rep_fmt(t, sizeof t, "%.4g TFLOP/s %s (computed, not measured: %s)",
				   mb_rep_num(cpeak, "tflops"), mb_rep_str(cpeak, "dtype", "?"),
				   mb_rep_str(cpeak, "how", "?"));
			txt(d, t);
		} else {
			na(d, "computed peak",
			   cwhy ? cwhy : "none in this file (metrics.computed_peak: CPUs only)");
		}
		cell_end(d);
		cell(d, 0);
		if (power) {
			mb_rep_fmt(t, sizeof t, "%s (%s)", mb_rep_str(power, "source", "?"),
				 mb_rep_str(power, "scope", "?"));
			txt(d, t);
		} else {
			na(d, "power", power_why ? power_why : "no case has power data");
		}
		cell_end(d);
		const char *commit = mb_rep_str(build, "git_commit", "no commit");
		mb_rep_fmt(t, sizeof t, "moebench %s (%.12s%s); %s; %s; %.40s; %s; Linux %s",
			 mb_rep_str(root, "moebench_version", "?"), commit,
			 cJSON_IsTrue(mb_rep_get(build, "git_dirty")) ? ", dirty" : "",
			 mb_rep_str(build, "compiler", "?"),
			 mb_rep_str(mb_rep_get(libs, "openblas"), "config", "no BLAS named"),
			 mb_rep_str(mb_rep_get(libs, "mpi"), "library_version", "no MPI named"),
			 mb_rep_str(sys, "os", "?"), mb_rep_str(sys, "kernel", "?"));
		text_cell(d, t);
		text_cell(d, mb_rep_str(root, "start_time", "-"));
		cell(d, 0);
		const char *st = mb_rep_str(root, "status", "-");
		const char *why = mb_rep_str(root, "status_reason", "");
		txt(d, st);
		if (strcmp(st, "complete") && why[0]) {
			mb_rep_fmt(t, sizeof t, "status %s: %s", st, why);
			note_ref(d, t);
		}
		cell_end(d);
		row_end(d);
	}
	table_end(d);
	notes_flush(d);
}

static void inputs(doc *d, const mb_rep_skip *skips, int nskips, const mb_rep_plots *plots)
{
	const mb_rep *rep = d->rep;
	char t[MB_REP_TEXT_MAX * 2 + 64];
	heading(d, 2, "Inputs");
	raw(d, "", "<ul>\n");
	for (int i = 0; i < rep->nruns; i++) {
		mb_rep_fmt(t, sizeof t, "%s: %s (run %s)%s", rep->runs[i].label, rep->runs[i].path,
			 mb_rep_str(rep->runs[i].root, "run_id", "-"),
			 rep->runs[i].baseline ? ", the baseline" : "");
		raw(d, "- ", "<li>");
		txt(d, t);
		raw(d, "\n", "</li>\n");
	}
	for (int i = 0; i < nskips; i++) {
		mb_rep_fmt(t, sizeof t, "skipped %s: %s", skips[i].path, skips[i].why);
		raw(d, "- ", "<li class=\"warn\">");
		txt(d, t);
		raw(d, "\n", "</li>\n");
	}
	if (rep->dropped) {
		mb_rep_fmt(t, sizeof t, "%d cases left out: a report joins at most %d", rep->dropped,
			 MB_REP_MAX_CASES);
		raw(d, "- ", "<li class=\"warn\">");
		txt(d, t);
		raw(d, "\n", "</li>\n");
	}
	if (plots->left_out) {
		mb_rep_fmt(t, sizeof t, "%d plots not made: a report has at most %d", plots->left_out,
			 MB_REP_MAX_PLOTS);
		raw(d, "- ", "<li class=\"warn\">");
		txt(d, t);
		raw(d, "\n", "</li>\n");
	}
	raw(d, "\n", "</ul>\n");
}

static void overview(doc *d)
{
	static const char *const heads[] = {"suite", "cases", "rows", "ok", "not ok"};
	const mb_rep *rep = d->rep;
	heading(d, 2, "Suites");
	table(d, heads, 5, 0x1e);
	for (int s = 0; s < rep->nsuites; s++) {
		const mb_rep_suite *su = &rep->suites[s];
		int rows = 0, ok = 0;
		for (int g = su->first; g < su->first + su->n; g++) {
			const mb_rep_group *gr = &rep->groups[g];
			for (int i = gr->first; i < gr->first + gr->n; i++) {
				rows++;
				ok += is_ok(rep->cases[i].r);
			}
		}
		row(d);
		text_cell(d, su->name);
		cell(d, 1);
		fprintf(d->f, "%d", su->n);
		cell_end(d);
		cell(d, 1);
		fprintf(d->f, "%d", rows);
		cell_end(d);
		cell(d, 1);
		fprintf(d->f, "%d", ok);
		cell_end(d);
		cell(d, 1);
		fprintf(d->f, "%d", rows - ok);
		cell_end(d);
		row_end(d);
	}
	table_end(d);
}

/* ---- plots */

/* The SVG of plot p inlined (HTML), or -1 with why. */
static int svg_inline(doc *d, const char *dir, const mb_rep_plot *p, int k, char *why, size_t n)
{
	char path[4200], *text = NULL;
	mb_rep_fmt(path, sizeof path, "%s/%s.svg", dir, p->name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		mb_rep_fmt(why, n, "cannot open %s.svg", p->name);
		return -1;
	}
	text = malloc(SVG_MAX + 1);
	size_t got = text ? fread(text, 1, SVG_MAX + 1, f) : 0;
	fclose(f);
	if (!text || got > SVG_MAX) {
		free(text);
		mb_rep_fmt(why, n, "%s.svg is larger than %d MiB", p->name, SVG_MAX >> 20);
		return -1;
	}
	text[got] = '\0';
	int rc = mb_rep_svg_inline(d->f, text, k, why, n);
	free(text);
	return rc;
}

static void plot(doc *d, const mb_rep_plot *p, const char *dir, int k)
{
	char why[MB_REP_TEXT_MAX], t[MB_REP_TEXT_MAX * 2];
	heading(d, 3, p->title);
	if (p->rendered) {
		if (d->html) {
			fprintf(d->f, "<figure id=\"plot-%s\">\n", p->name);
			if (svg_inline(d, dir, p, k, why, sizeof why)) {
				mb_rep_fmt(t, sizeof t, "SVG not inlined: %s; see plots/%s.png", why,
					   p->name);
				para(d, t);
			}
			fprintf(d->f, "<figcaption>");
			txt(d, p->caption);
			fprintf(d->f, " <a href=\"plots/%s.png\">PNG</a> · <a href=\"plots/%s.svg\">SVG</a>"
				      " · <a href=\"plots/%s.gp\">gnuplot script</a> · "
				      "<a href=\"plots/%s.dat\">data</a></figcaption>\n</figure>\n",
				p->name, p->name, p->name, p->name);
		} else {
			fputs("![", d->f);
			txt(d, p->title);
			fprintf(d->f, "](plots/%s.png)\n\n", p->name);
			txt(d, p->caption);
			fprintf(d->f, " [SVG](plots/%s.svg) · [gnuplot script](plots/%s.gp) · "
				      "[data](plots/%s.dat)\n\n", p->name, p->name, p->name);
		}
		return;
	}
	raw(d, "> ", "<p class=\"note\">");
	txt(d, p->note[0] ? p->note : "not rendered");
	if (p->written) {
		mb_rep_fmt(t, sizeof t, ". Its gnuplot script and data are kept: `gnuplot %s.gp` in "
				      "plots/ renders it.", p->name);
		txt(d, t);
	}
	raw(d, "\n\n", "</p>\n");
}

static void suite_section(doc *d, int s, const mb_rep_plots *plots, const char *dir)
{
	static const char *const heads[] = {"case", "run", "status", "p50 ms [95% CI]", "TFLOP/s",
					    "tokens/s", "MFU %", "MFU % (measured peak)",
					    "MFU % (computed peak)", "busbw GB/s", "J/token"};
	static const mb_rep_metric cols[] = {MB_REP_P50, MB_REP_TFLOPS, MB_REP_TOKENS, MB_REP_MFU,
					     MB_REP_MFU_MEASURED, MB_REP_MFU_COMPUTED, MB_REP_BUSBW,
					     MB_REP_J_TOKEN};
	const mb_rep *rep = d->rep;
	const mb_rep_suite *su = &rep->suites[s];
	char t[MB_REP_TEXT_MAX * 2];
	mb_rep_fmt(t, sizeof t, "Suite %s", su->name);
	heading(d, 2, t);
	if (su->common[0]) {
		mb_rep_fmt(t, sizeof t, "Parameters every case shares: %s.", su->common);
		para(d, t);
	}
	table(d, heads, 11, 0x7f8);
	for (int g = su->first; g < su->first + su->n; g++) {
		const mb_rep_group *gr = &rep->groups[g];
		const mb_rep_case *base = gr->base >= 0 ? &rep->cases[gr->base] : NULL;
		for (int i = gr->first; i < gr->first + gr->n; i++) {
			const mb_rep_case *cs = &rep->cases[i];
			row(d);
			text_cell(d, gr->label);
			cell(d, 0);
			txt(d, rep->runs[cs->run].label);
			if (rep->base >= 0 && !base) {
				mb_rep_fmt(t, sizeof t, "ratio: none — the baseline %s has no case with "
						      "these parameters", rep->runs[rep->base].label);
				note_ref(d, t);
			}
			cell_end(d);
			cell(d, 0);
			const char *st = mb_rep_str(cs->r, "status", "-");
			txt(d, st);
			if (strcmp(st, "ok")) {
				mb_rep_fmt(t, sizeof t, "status %s: %s", st,
					 mb_rep_str(cs->r, "reason", "no reason given"));
				note_ref(d, t);
			}
			cell_end(d);
			for (size_t m = 0; m < MB_ARRAY_LEN(cols); m++)
				metric_cell(d, cs, base, cols[m]);
			row_end(d);
		}
	}
	table_end(d);
	notes_flush(d);
	for (int i = 0; i < plots->n; i++)
		if (plots->p[i].suite == s)
			plot(d, &plots->p[i], dir, i);
}

static const char *const css =
	"body{font-family:sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}"
	"table{border-collapse:collapse;margin:.5em 0 1em;font-size:90%}"
	"th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left;"
	"overflow-wrap:anywhere;min-width:4em}"
	"th{background:#f0f0f0}td.num,th.num{text-align:right}td.num{overflow-wrap:normal}"
	"figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #ddd}"
	"figcaption,ol.notes{font-size:85%;color:#444}.note,.warn{color:#8a5a00}"
	"a.nref{text-decoration:none;font-size:80%}";

void mb_rep_write_doc(FILE *f, int html, const mb_rep *rep, const mb_rep_plots *plots,
		      const char *plots_dir, const mb_rep_skip *skips, int nskips)
{
	doc d = {.f = f, .html = html, .rep = rep};
	char t[MB_REP_TEXT_MAX * 2];
	if (html)
		fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
			   "<title>moebench report</title>\n<style>%s</style>\n</head>\n<body>\n",
			css);
	heading(&d, 1, "moebench report");
	mb_rep_fmt(t, sizeof t, "%d result file(s), their cases joined on (suite, params).", rep->nruns);
	if (rep->base >= 0)
		mb_rep_fmt(t + strlen(t), sizeof t - strlen(t),
			 " Baseline: %s. A value's ratio to the baseline's for the same case "
			 "(value / baseline, only when both cases are ok) follows it as (×r): for "
			 "time and J/token below 1 is better, for the others above 1.",
			 rep->runs[rep->base].label);
	else
		mb_rep_fmt(t + strlen(t), sizeof t - strlen(t), " No baseline (--baseline FILE) given.");
	para(&d, t);
	para(&d, "n/a [k]: the file has null there and note k says why; –: the case did not run "
		 "(its status note says why). Times are per iteration; the interval is the 95% "
		 "confidence interval of the median (stats_s.median_ci95).");
	if (plots->gnuplot_note[0]) {
		mb_rep_fmt(t, sizeof t, "Plots not rendered: %s. Each plot's files are kept in plots/ "
				      "(NAME.dat, and NAME.gp to render it).", plots->gnuplot_note);
		raw(&d, "> ", "<p class=\"warn\">");
		txt(&d, t);
		raw(&d, "\n\n", "</p>\n");
	}
	systems(&d);
	inputs(&d, skips, nskips, plots);
	overview(&d);
	for (int s = 0; s < rep->nsuites; s++)
		suite_section(&d, s, plots, plots_dir);
	heading(&d, 2, "Energy per token");
	for (int i = 0; i < plots->n; i++)
		if (plots->p[i].kind == MB_PLOT_ENERGY)
			plot(&d, &plots->p[i], plots_dir, i);
	notes_flush(&d);
	if (html)
		fprintf(f, "</body>\n</html>\n");
}
