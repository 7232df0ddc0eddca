/* cmd_compare.c: `moebench compare BASE NEW`: the command line and the
 * three outputs (a table on stdout, JUnit XML, Markdown) of a comparison
 * built by compare.c. Every string that came from a file is escaped for
 * the medium it goes to, including the terminal. */
#include "mb.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compare.h"
#include "result.h"

/* ---- escaping -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s and its code point, or 0. */
static int utf8_next(const unsigned char *s, unsigned *cp)
{
	static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
	int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
		: (s[0] >> 3) == 30 ? 4 : 0;
	unsigned c = len == 1 ? s[0] : len ? s[0] & (0x7fu >> len) : 0;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (!len || c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Characters no output should carry: controls (C0 but tab and newlines,
 * DEL, C1), bidirectional overrides that reorder what a reader sees, and
 * the XML non-characters. */
static int unsafe(unsigned c)
{
	return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7f && c < 0xa0) ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0xfffe ||
	       c == 0xffff;
}

/* The replacement for code point c in one medium, or NULL to copy it. */
typedef const char *(*esc_rule)(unsigned c);

static const char *xml_rule(unsigned c)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '"': return "&quot;";
	case '\'': return "&apos;";
	case '\t': return "&#9;";
	case '\n': return "&#10;";
	case '\r': return "&#13;";
	default: return unsafe(c) ? "?" : NULL;
	}
}

static const char *md_rule(unsigned c)
{
	switch (c) {
	case '|': return "\\|";
	case '\\': return "\\\\";
	case '`': return "\\`";
	case '*': return "\\*";
	case '_': return "\\_";
	case '[': return "\\[";
	case ']': return "\\]";
	case '#': return "\\#";
	case '~': return "\\~";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '&': return "&amp;";
	case '@': return "&#64;"; /* no @mention of anyone from a file */
	case '\t': case '\n': case '\r': return " ";
	default: return unsafe(c) ? "?" : NULL;
	}
}

static const char *term_rule(unsigned c)
{
	return c == '\t' || c == '\n' || c == '\r' || unsafe(c) ? "?" : NULL;
}

/* Escape at most MB_CMP_LABEL_MAX bytes of s; a longer s or a full dst
 * ends in "...". Invalid UTF-8 bytes become '?'. */
static char *escape(char *dst, size_t n, const char *s, esc_rule rule)
{
	size_t j = 0, i = 0;
	int cut = 0;
	if (!n)
		return dst;
	for (const unsigned char *u = (const unsigned char *)(s ? s : ""); u[i];) {
		unsigned c = '?';
		int len = utf8_next(u + i, &c);
		const char *rep = len ? rule(c) : "?";
		size_t add = rep ? strlen(rep) : (size_t)len;
		if (i + (len ? (size_t)len : 1) > MB_CMP_LABEL_MAX || j + add + 4 > n) {
			cut = 1;
			break;
		}
		memcpy(dst + j, rep ? rep : (const char *)u + i, add);
		j += add;
		i += len ? (size_t)len : 1;
	}
	if (cut && j + 4 <= n) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
	return dst;
}

char *mb_xml_escape(char *dst, size_t n, const char *s) { return escape(dst, n, s, xml_rule); }
char *mb_md_escape(char *dst, size_t n, const char *s) { return escape(dst, n, s, md_rule); }

/* Room for a label escaped with the longest replacement (6 bytes). */
#define ESC_MAX (6 * MB_CMP_LABEL_MAX + 8)

/* ---- names and numbers -------------------------------------------------- */

const char *mb_verdict_name(mb_verdict v)
{
	static const char *const names[] = {"same", "better", "worse", "REGRESSION"};
	return (unsigned)v < MB_ARRAY_LEN(names) ? names[v] : "?";
}

const char *mb_cmp_kind_name(mb_cmp_kind k)
{
	static const char *const names[] = {"compared", "FAILED", "not ok", "bad samples",
					    "only in BASE", "only in NEW"};
	return (unsigned)k < MB_ARRAY_LEN(names) ? names[k] : "?";
}

static void fmt_time(char *buf, size_t n, double s)
{
	static const struct { double scale; const char *unit; } u[] = {
		{1, "s"}, {1e3, "ms"}, {1e6, "us"}, {1e9, "ns"}};
	size_t i = 0;
	while (i + 1 < MB_ARRAY_LEN(u) && fabs(s) * u[i].scale < 1)
		i++;
	snprintf(buf, n, "%.4g %s", s * u[i].scale, u[i].unit);
}

static void fmt_metric(char *buf, size_t n, const mb_cmp_metric *m, double v)
{
	if (!strcmp(m->name, "time_p50_s"))
		fmt_time(buf, n, v);
	else
		snprintf(buf, n, "%.4g", v);
}

static void fmt_pct(char *buf, size_t n, double x)
{
	snprintf(buf, n, "%+.1f%%", fabs(x) < 5e-4 ? 0.0 : 100 * x); /* no "-0.0%" */
}

static void fmt_ci(char *buf, size_t n, const mb_cmp_metric *m)
{
	char a[32], b[32];
	fmt_pct(a, sizeof a, m->lo);
	fmt_pct(b, sizeof b, m->hi);
	snprintf(buf, n, "[%s, %s]", a, b);
}

static const char *metric_title(const mb_cmp_metric *m)
{
	return !strcmp(m->name, "time_p50_s") ? "time p50" : m->name;
}

static double ci_pct(const mb_cmp_report *r) { return 100 * (1 - r->opts.alpha); }

/* ---- the table on stdout ---------------------------------------------- */

static void table_case(FILE *f, const mb_cmp_case *c, char *esc)
{
	fprintf(f, "%s", escape(esc, ESC_MAX, c->label, term_rule));
	if (c->kind == MB_CASE_COMPARED)
		fprintf(f, "  (%d vs %d samples, %s p)\n", c->nbase, c->nnew,
			c->exact ? "exact" : "approximate");
	else
		fprintf(f, "\n  %s: %s\n", mb_cmp_kind_name(c->kind),
			c->note[0] ? escape(esc, ESC_MAX, c->note, term_rule)
				   : c->kind == MB_CASE_BASE_ONLY ? "no such case in NEW"
								  : "no such case in BASE");
	for (int i = 0; i < c->nmetrics; i++) {
		const mb_cmp_metric *m = &c->metrics[i];
		char b[32], n[32], ch[32], ci[80];
		fmt_metric(b, sizeof b, m, m->base);
		fmt_metric(n, sizeof n, m, m->new_);
		fmt_pct(ch, sizeof ch, m->change);
		fmt_ci(ci, sizeof ci, m);
		fprintf(f, "  %-14s %12s %12s %8s %-20s %8.2g  %s\n", metric_title(m), b, n, ch, ci,
			c->p, mb_verdict_name(m->verdict));
	}
	if (c->kind == MB_CASE_COMPARED && c->note[0])
		fprintf(f, "  note: %s\n", escape(esc, ESC_MAX, c->note, term_rule));
}

static void summary_line(FILE *f, const mb_cmp_report *r)
{
	fprintf(f, "%d cases: %d compared, %d regression%s, %d failed, %d not ok, %d bad samples, "
		   "%d only in BASE, %d only in NEW",
		r->ncases, r->ncompared, r->nregressions, r->nregressions == 1 ? "" : "s", r->nfailed,
		r->nnot_ok, r->nbad, r->nbase_only, r->nnew_only);
}

void mb_cmp_print_table(FILE *f, const mb_cmp_report *r)
{
	char *esc = malloc(ESC_MAX), *esc2 = malloc(ESC_MAX);
	if (!esc || !esc2) {
		free(esc);
		free(esc2);
		return;
	}
	fprintf(f, "BASE %s (%s)\n", escape(esc, ESC_MAX, r->base_run, term_rule),
		escape(esc2, ESC_MAX, r->base_device, term_rule));
	fprintf(f, "NEW  %s (%s)\n", escape(esc, ESC_MAX, r->new_run, term_rule),
		escape(esc2, ESC_MAX, r->new_device, term_rule));
	fprintf(f, "Mann-Whitney U, alpha %g; change: Hodges-Lehmann with its %g%% interval; "
		   "regression: significant and worse by more than %g%%\n",
		r->opts.alpha, ci_pct(r), r->opts.max_regress_pct);
	if (r->notes[0])
		fprintf(f, "note: %s\n", escape(esc, ESC_MAX, r->notes, term_rule));
	fprintf(f, "\n  %-14s %12s %12s %8s %-20s %8s  %s\n", "metric", "BASE", "NEW", "change",
		"interval", "p", "verdict");
	for (int i = 0; i < r->ncases; i++)
		table_case(f, &r->cases[i], esc);
	fprintf(f, "\n");
	summary_line(f, r);
	fprintf(f, "\n");
	free(esc);
	free(esc2);
}

/* ---- JUnit XML -------------------------------------------------------- */

/* One line per metric: "time_p50_s +20.0% [+18.2%, +21.9%] p=0.00018 REGRESSION". */
static void metric_lines(FILE *f, const mb_cmp_case *c, int only_regressions)
{
	for (int i = 0; i < c->nmetrics; i++) {
		const mb_cmp_metric *m = &c->metrics[i];
		if (only_regressions && m->verdict != MB_VERDICT_REGRESSION)
			continue;
		char b[32], n[32], ch[32], ci[80];
		fmt_metric(b, sizeof b, m, m->base);
		fmt_metric(n, sizeof n, m, m->new_);
		fmt_pct(ch, sizeof ch, m->change);
		fmt_ci(ci, sizeof ci, m);
		fprintf(f, "%s%s %s (BASE %s, NEW %s) %s p=%.3g %s", i && !only_regressions ? "; " : "",
			m->name, ch, b, n, ci, c->p, mb_verdict_name(m->verdict));
		if (only_regressions)
			break; /* the message names the first; the body has all */
	}
}

/* The metric lines as one string (caller frees), for escaping. */
static char *metric_text(const mb_cmp_case *c, int only_regressions)
{
	char *t = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&t, &len);
	if (!f)
		return NULL;
	metric_lines(f, c, only_regressions);
	if (c->note[0])
		fprintf(f, "%snote: %s", c->nmetrics ? "; " : "", c->note);
	if (fclose(f)) {
		free(t);
		return NULL;
	}
	return t;
}

static void junit_case(FILE *f, const mb_cmp_case *c, char *e1, char *e2)
{
	char *all = metric_text(c, 0), *first = c->regression ? metric_text(c, 1) : NULL;
	fprintf(f, "    <testcase classname=\"moebench.%s\" name=\"%s\" time=\"0\">\n",
		mb_xml_escape(e1, ESC_MAX, c->suite), mb_xml_escape(e2, ESC_MAX, c->label));
	if (c->regression)
		fprintf(f, "      <failure type=\"regression\" message=\"%s\">",
			mb_xml_escape(e1, ESC_MAX, first ? first : "regression"));
	else if (c->kind == MB_CASE_FAILED)
		fprintf(f, "      <failure type=\"failed\" message=\"%s\">",
			mb_xml_escape(e1, ESC_MAX, c->note));
	else if (c->kind != MB_CASE_COMPARED)
		fprintf(f, "      <skipped message=\"%s: %s\"/>\n      <system-out>",
			mb_cmp_kind_name(c->kind), mb_xml_escape(e1, ESC_MAX, c->note));
	else
		fprintf(f, "      <system-out>");
	fprintf(f, "%s", mb_xml_escape(e2, ESC_MAX, all ? all : ""));
	int failed = c->regression || c->kind == MB_CASE_FAILED;
	fprintf(f, "%s\n    </testcase>\n", failed ? "</failure>" : "</system-out>");
	free(all);
	free(first);
}

void mb_cmp_write_junit(FILE *f, const mb_cmp_report *r)
{
	char *e1 = malloc(ESC_MAX), *e2 = malloc(ESC_MAX);
	if (!e1 || !e2)
		goto out;
	int failures = r->nregressions + r->nfailed;
	int skipped = r->ncases - r->ncompared - r->nfailed;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<testsuites name=\"moebench compare\" tests=\"%d\" failures=\"%d\" "
		   "errors=\"0\" skipped=\"%d\">\n", r->ncases, failures, skipped);
	fprintf(f, "  <testsuite name=\"moebench compare\" tests=\"%d\" failures=\"%d\" "
		   "errors=\"0\" skipped=\"%d\">\n", r->ncases, failures, skipped);
	fprintf(f, "    <properties>\n");
	const char *props[][2] = {{"base", r->base_path}, {"base_run", r->base_run},
				  {"base_device", r->base_device}, {"new", r->new_path},
				  {"new_run", r->new_run}, {"new_device", r->new_device},
				  {"notes", r->notes}};
	for (size_t i = 0; i < MB_ARRAY_LEN(props); i++)
		fprintf(f, "      <property name=\"%s\" value=\"%s\"/>\n", props[i][0],
			mb_xml_escape(e1, ESC_MAX, props[i][1]));
	fprintf(f, "      <property name=\"alpha\" value=\"%g\"/>\n", r->opts.alpha);
	fprintf(f, "      <property name=\"max_regress_pct\" value=\"%g\"/>\n",
		r->opts.max_regress_pct);
	fprintf(f, "    </properties>\n");
	for (int i = 0; i < r->ncases; i++)
		junit_case(f, &r->cases[i], e1, e2);
	fprintf(f, "  </testsuite>\n</testsuites>\n");
out:
	free(e1);
	free(e2);
}

/* ---- Markdown --------------------------------------------------------- */

static void md_case(FILE *f, const mb_cmp_case *c, char *e1, char *e2)
{
	mb_md_escape(e1, ESC_MAX, c->label);
	mb_md_escape(e2, ESC_MAX, c->note);
	if (c->kind != MB_CASE_COMPARED) {
		fprintf(f, "| %s | - | %s | %s | - | - | - | %s | %s |\n", e1,
			c->kind == MB_CASE_NEW_ONLY ? "-" : c->base_status,
			c->kind == MB_CASE_BASE_ONLY ? "-" : c->new_status,
			c->kind == MB_CASE_FAILED ? "**FAILED**" : mb_cmp_kind_name(c->kind), e2);
		return;
	}
	for (int i = 0; i < c->nmetrics; i++) {
		const mb_cmp_metric *m = &c->metrics[i];
		char b[32], n[32], ch[32], ci[80];
		fmt_metric(b, sizeof b, m, m->base);
		fmt_metric(n, sizeof n, m, m->new_);
		fmt_pct(ch, sizeof ch, m->change);
		fmt_ci(ci, sizeof ci, m);
		int bad = m->verdict == MB_VERDICT_REGRESSION;
		fprintf(f, "| %s | %s | %s | %s | %s | %s | %.2g | %s%s%s | %s |\n", i ? "" : e1,
			metric_title(m), b, n, ch, ci, c->p, bad ? "**" : "",
			mb_verdict_name(m->verdict), bad ? "**" : "", i ? "" : e2);
	}
}

void mb_cmp_write_markdown(FILE *f, const mb_cmp_report *r)
{
	char *e1 = malloc(ESC_MAX), *e2 = malloc(ESC_MAX);
	if (!e1 || !e2)
		goto out;
	fprintf(f, "# moebench compare\n\n");
	fprintf(f, "- BASE: %s", mb_md_escape(e1, ESC_MAX, r->base_run));
	fprintf(f, " (%s), file %s\n", mb_md_escape(e1, ESC_MAX, r->base_device),
		mb_md_escape(e2, ESC_MAX, r->base_path));
	fprintf(f, "- NEW: %s", mb_md_escape(e1, ESC_MAX, r->new_run));
	fprintf(f, " (%s), file %s\n", mb_md_escape(e1, ESC_MAX, r->new_device),
		mb_md_escape(e2, ESC_MAX, r->new_path));
	fprintf(f, "- Mann-Whitney U test on the per-iteration samples, alpha %g; change: "
		   "Hodges-Lehmann estimate with its %g%% interval; a regression is significant "
		   "and worse by more than %g%%\n", r->opts.alpha, ci_pct(r), r->opts.max_regress_pct);
	if (r->notes[0])
		fprintf(f, "- note: %s\n", mb_md_escape(e1, ESC_MAX, r->notes));
	fprintf(f, "- **%s**: ", mb_cmp_exit_code(r) ? "FAIL" : "pass");
	summary_line(f, r);
	fprintf(f, "\n\n| case | metric | BASE | NEW | change | %g%% interval | p | verdict | note |\n"
		   "|---|---|---:|---:|---:|---|---:|---|---|\n", ci_pct(r));
	for (int i = 0; i < r->ncases; i++)
		md_case(f, &r->cases[i], e1, e2);
out:
	free(e1);
	free(e2);
}

/* ---- the command ------------------------------------------------------ */

typedef struct cmp_args {
	mb_cmp_opts o;
	const char *junit, *markdown, *base, *new_;
	int quiet;
} cmp_args;

static void compare_help(void)
{
	printf("usage: moebench compare BASE.json NEW.json [--max-regress PCT] [--alpha A]\n"
	       "                        [--junit FILE] [--markdown FILE] [--include-invalid] [-q]\n\n"
	       "Joins the cases of two result files on the suite and every parameter and,\n"
	       "for the median time and the throughput metrics both files have (tflops,\n"
	       "tokens_per_s, busbw_gbps), tests the per-iteration samples with a two-sided\n"
	       "Mann-Whitney U test and gives the change (Hodges-Lehmann estimate of the\n"
	       "ratio NEW/BASE) with its distribution-free 1-alpha interval.\n\n"
	       "      --max-regress PCT  a significant slowdown larger than PCT %% of the base\n"
	       "                         value is a regression, 0..1000 (default 5)\n"
	       "      --alpha A          significance level, 0.0001..0.5 (default 0.05)\n"
	       "      --junit FILE       JUnit XML: one testcase per case, a failure per\n"
	       "                         regression or failed case\n"
	       "      --markdown FILE    a Markdown summary (e.g. for a pull request)\n"
	       "      --include-invalid  judge the timings of cases invalid on both sides\n"
	       "                         (the null backend's cases always are)\n"
	       "  -q, --quiet            no table on stdout\n\n"
	       "Cases in one file only, and cases not ok on a side, are listed, not judged;\n"
	       "a case ok in BASE but not ok in NEW is a failure.\n"
	       "Exit: 0 no regression, 1 a regression or a failed case, 2 bad input.\n");
}

static int parse_real(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return mb_err(MB_ERR_USAGE, "compare: %s: '%s' is not a number in %g..%g", opt, s, lo,
			      hi);
	*out = v;
	return 0;
}

static int parse_compare(int argc, char **argv, cmp_args *a)
{
	static const struct option opts[] = {
		{"max-regress", required_argument, NULL, 'r'}, {"alpha", required_argument, NULL, 'a'},
		{"junit", required_argument, NULL, 'j'},       {"markdown", required_argument, NULL, 'm'},
		{"include-invalid", no_argument, NULL, 'i'},   {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},              {0}};
	int c, rc = 0;
	optind = 1;
	opterr = 0;
	while (!rc && (c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': rc = parse_real("--max-regress", optarg, 0, 1000, &a->o.max_regress_pct); break;
		case 'a': rc = parse_real("--alpha", optarg, 0.0001, 0.5, &a->o.alpha); break;
		case 'j': a->junit = optarg; break;
		case 'm': a->markdown = optarg; break;
		case 'i': a->o.include_invalid = 1; break;
		case 'q': a->quiet = 1; break;
		case 'h': compare_help(); return 1;
		default:
			return mb_err(MB_ERR_USAGE, "compare: unknown option or missing value '%s' (see "
						    "moebench compare --help)", argv[optind - 1]);
		}
	}
	if (rc)
		return rc;
	if (argc - optind != 2)
		return mb_err(MB_ERR_USAGE, "compare: expected two result files, BASE and NEW, got %d "
					    "(see moebench compare --help)", argc - optind);
	a->base = argv[optind];
	a->new_ = argv[optind + 1];
	return 0;
}

/* Format with fn into memory, then replace path atomically. */
static int write_output(const char *path, void (*fn)(FILE *, const mb_cmp_report *),
			const mb_cmp_report *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return mb_err(MB_ERR_NOMEM, "compare: out of memory writing %s", path);
	fn(f, r);
	int rc = fclose(f) ? mb_err(MB_ERR_NOMEM, "compare: out of memory writing %s", path)
			   : mb_write_atomic(path, text, len);
	free(text);
	return rc;
}

static int run_compare(const cmp_args *a, cJSON *const roots[2])
{
	mb_cmp_report r;
	int rc = mb_cmp_build(roots[0], a->base, roots[1], a->new_, &a->o, &r);
	if (rc)
		return mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	if (!a->quiet)
		mb_cmp_print_table(stdout, &r);
	if (a->junit && (rc = write_output(a->junit, mb_cmp_write_junit, &r)) == 0 && !a->quiet)
		printf("junit: %s\n", a->junit);
	if (!rc && a->markdown && (rc = write_output(a->markdown, mb_cmp_write_markdown, &r)) == 0 &&
	    !a->quiet)
		printf("markdown: %s\n", a->markdown);
	int code = rc ? mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg()) : mb_cmp_exit_code(&r);
	mb_cmp_free(&r);
	return code;
}

int mb_cmd_compare(const mb_registry *reg, int argc, char **argv)
{
	(void)reg;
	cmp_args a = {.o = {.alpha = 0.05, .max_regress_pct = 5}};
	int rc = parse_compare(argc, argv, &a);
	if (rc > 0)
		return MB_EXIT_OK; /* --help */
	if (rc)
		return mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	cJSON *roots[2] = {NULL, NULL};
	if (mb_result_load(a.base, &roots[0]) || mb_result_load(a.new_, &roots[1]))
		rc = mb_usage_error(MB_EXIT_USAGE, "compare: %s", mb_errmsg());
	else
		rc = run_compare(&a, roots);
	cJSON_Delete(roots[0]);
	cJSON_Delete(roots[1]);
	return rc;
}
