/* report.h: `moebench report`: result files from any number of machines,
 * joined case by case into DIR/report.md, a self-contained DIR/report.html
 * and DIR/plots/NAME.{gp,dat,svg,png}.
 *
 * Result files may come from strangers. Every string taken from one is
 * escaped for where it goes (HTML, Markdown, a gnuplot string, a file name)
 * by the functions below, and every loop over a file's content is bounded
 * (MB_REP_MAX_*). The modules: report.c (command, loading, join, metrics),
 * report_esc.c (escaping), report_doc.c (the Markdown and HTML documents),
 * report_svg.c (gnuplot's SVG checked for inlining), report_plot.c (each
 * plot's gnuplot script and data, from the templates in plots/) and
 * report_gnuplot.c (running gnuplot).
 */
#ifndef MB_REPORT_H
#define MB_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "mb.h"

#define MB_REP_MAX_RUNS 64      /* result files, the baseline included */
#define MB_REP_MAX_CASES 4096   /* cases over all files; more are left out, with a note */
#define MB_REP_MAX_BARS 40      /* cases in one bar plot */
#define MB_REP_MAX_SERIES 12    /* lines in one per-iteration plot */
#define MB_REP_MAX_POINTS 500   /* points in one line: longer series are averaged in buckets */
#define MB_REP_LABEL_MAX 48     /* bytes of a run or case label in plots and tables */
#define MB_REP_TEXT_MAX 480     /* bytes of a reason or name quoted from a file */
#define MB_REP_NAME_MAX 64      /* bytes of a file name made from a file's content */
#define MB_REP_MAX_PLOTS 48     /* plots in one report; more are left out, with a note */
#define MB_REP_GNUPLOT_TIMEOUT_S 30.0

/* ---- escaping: each writes a terminated copy of src into dst (n >= 1
 * bytes), cut at a whole character with "..." when it does not fit (never
 * inside an escape; below 8 bytes the copy is empty), and returns dst. In all of them control characters
 * become spaces and bytes that are not UTF-8 become '?'. */

/* HTML text or attribute value: & < > " ' as entities. */
char *mb_rep_html(char *dst, size_t n, const char *src);
/* A Markdown table cell or line: \ | ` * _ [ ] < > & # ~ ! backslash-escaped,
 * newlines as spaces. */
char *mb_rep_md(char *dst, size_t n, const char *src);
/* A gnuplot string expression: single-quoted, as gnuplot does no backslash,
 * backquote or macro substitution inside single quotes (it does backquotes
 * inside double quotes), so backslashes and backquotes stay as they are; a
 * quote becomes '."'".' (the constant "'" concatenated), never ''. */
char *mb_rep_gp(char *dst, size_t n, const char *src);
/* A file name: [A-Za-z0-9._-] only (others become '_'), a '.' never first,
 * last or after another (so no "..", even with an extension appended),
 * never empty, at most min(n - 1, MB_REP_NAME_MAX) bytes. */
char *mb_rep_filename(char *dst, size_t n, const char *src);
/* Plain text: control characters as spaces, non-UTF-8 as '?', cut as above. */
char *mb_rep_text(char *dst, size_t n, const char *src);
/* snprintf into dst (n >= 1), a cut backed up to a whole UTF-8 character. */
void mb_rep_fmt(char *dst, size_t n, const char *fmt, ...) MB_PRINTF(3, 4);

/* ---- the joined result files */

typedef struct mb_rep_run {
	const char *path;             /* as given (borrowed from argv) */
	cJSON *root;                  /* mb_result_load's tree (owned) */
	char label[MB_REP_LABEL_MAX]; /* "R2 host/backend", plain text */
	int baseline;
} mb_rep_run;

typedef struct mb_rep_case {
	int run, group;   /* indexes into runs[] and groups[] */
	const cJSON *r;   /* the results[] element (borrowed) */
} mb_rep_case;

/* The cases of every run with the same suite and parameters. */
typedef struct mb_rep_group {
	char *key;        /* suite and canonical parameters (owned) */
	const cJSON *params;  /* the first case's params object (borrowed; may be NULL) */
	int suite;
	int first, n;     /* its cases: cases[first .. first + n), in run order */
	int base;         /* the baseline run's case in cases[], or -1 */
	char label[MB_REP_LABEL_MAX * 2]; /* the parameters that vary in its suite, plain text */
} mb_rep_group;

typedef struct mb_rep_suite {
	char name[MB_REP_LABEL_MAX]; /* plain text; "-" when the file's is not a string */
	int first, n;                /* its groups: groups[first .. first + n) */
	char common[MB_REP_TEXT_MAX]; /* parameters every case shares, plain text */
} mb_rep_suite;

typedef struct mb_rep {
	mb_rep_run *runs;
	int nruns, base;   /* base: the baseline run, or -1 */
	mb_rep_case *cases;
	int ncases, dropped; /* dropped: cases past MB_REP_MAX_CASES */
	mb_rep_group *groups;
	int ngroups;
	mb_rep_suite *suites;
	int nsuites;
} mb_rep;

/* Label the runs and join their cases on (suite, params): suites in order
 * of first appearance, groups likewise, cases in run order. Results that
 * are not objects are skipped. Returns 0 or MB_ERR_NOMEM; free with
 * mb_rep_free (which also deletes the runs' trees). */
int mb_rep_join(mb_rep *rep) MB_MUST_CHECK;
void mb_rep_free(mb_rep *rep);

/* The join key of a results[] element into a new string: the suite, then
 * every parameter as name=value sorted by name (numbers shortest-exact,
 * strings quoted). NULL on allocation failure. */
char *mb_rep_case_key(const cJSON *r);
/* The same without parameter skip (e.g. "bytes": the cases of one line of
 * a size sweep share it). */
char *mb_rep_case_key_without(const cJSON *r, const char *skip);

/* ---- numbers from a case */

typedef enum {
	MB_REP_P50 = 0,     /* stats_s.p50, seconds */
	MB_REP_TFLOPS,      /* metrics.tflops */
	MB_REP_TOKENS,      /* metrics.tokens_per_s */
	MB_REP_MFU,         /* metrics.mfu_pct (published peak) */
	MB_REP_MFU_MEASURED, /* metrics.mfu_measured_pct (a calibration's peak) */
	MB_REP_MFU_COMPUTED, /* metrics.mfu_computed_pct (a CPU's computed peak) */
	MB_REP_BUSBW,       /* metrics.busbw_gbps */
	MB_REP_GBPS,        /* metrics.gbps (algbw) */
	MB_REP_J_TOKEN,     /* power.j_per_token */
	MB_REP_NMETRICS
} mb_rep_metric;

const char *mb_rep_metric_name(mb_rep_metric m); /* "p50", "TFLOP/s", ... (static) */
/* 1 when a larger value is better (every metric but time and energy). */
int mb_rep_metric_higher_better(mb_rep_metric m);

/* The metric of results[] element r, or NAN; when NAN, why (n bytes) says
 * why, from the file's own *_reason fields where it has them (plain text,
 * not escaped). */
double mb_rep_value(const cJSON *r, mb_rep_metric m, char *why, size_t n);

/* value / base for the same case, or NAN unless both are finite and base
 * is not zero. */
double mb_rep_ratio(double value, double base);

/* The 95% interval of the median time (stats_s.median_ci95) in seconds;
 * 0, or -1 when the file has none. */
int mb_rep_ci(const cJSON *r, double *lo, double *hi);

/* A field of a JSON object, NULL unless o is an object. */
const cJSON *mb_rep_get(const cJSON *o, const char *key);
/* A string field, or dflt. */
const char *mb_rep_str(const cJSON *o, const char *key, const char *dflt);
/* A finite number field, or NAN. */
double mb_rep_num(const cJSON *o, const char *key);

/* ---- plots (report_plot.c) */

typedef enum {
	MB_PLOT_THROUGHPUT = 0, /* per suite: bars per case and run, CI whiskers */
	MB_PLOT_SERIES,         /* per suite: samples_s against the iteration */
	MB_PLOT_A2A_BW,         /* alltoall uniform: busbw against bytes, log-log */
	MB_PLOT_PHASES,         /* train_step: stacked phase times */
	MB_PLOT_ENERGY,         /* J/token per case and run */
} mb_plot_kind;

typedef struct mb_rep_plot {
	mb_plot_kind kind;
	int suite;                /* its suite, or -1 */
	char name[MB_REP_NAME_MAX + 16]; /* file stem in plots/: [A-Za-z0-9._-] */
	char title[MB_REP_TEXT_MAX];     /* plain text */
	char caption[MB_REP_TEXT_MAX];   /* what is drawn and what was left out, plain text */
	int written;              /* NAME.gp and NAME.dat exist */
	int rendered;             /* NAME.svg and NAME.png were made just now */
	char note[MB_REP_TEXT_MAX]; /* why not rendered, or "" (plain text) */
} mb_rep_plot;

typedef struct mb_rep_plots {
	mb_rep_plot *p;
	int n;
	int gnuplot_ok;           /* gnuplot ran (for at least one plot) */
	char gnuplot_note[MB_REP_TEXT_MAX]; /* why plots were not rendered, or "" */
	int left_out;             /* plots past MB_REP_MAX_PLOTS, not made */
} mb_rep_plots;

/* Write plots/NAME.gp and NAME.dat for every plot the runs support, into
 * the existing directory dir (DIR/plots), then run gnuplot on each:
 * MOEBENCH_GNUPLOT names the program (default gnuplot), found on PATH,
 * run with an argument vector (no shell) in dir and killed after
 * MOEBENCH_GNUPLOT_TIMEOUT_S seconds (default 30). Templates come from
 * MOEBENCH_PLOTS_DIR, else plots/ beside the binary's directory, else
 * ./plots. Failures of one plot are notes, never errors; returns 0 or
 * MB_ERR_NOMEM / MB_ERR_IO. */
int mb_rep_plots_make(const mb_rep *rep, const char *dir, mb_rep_plots *out) MB_MUST_CHECK;
void mb_rep_plots_free(mb_rep_plots *p);

/* ---- gnuplot (report_gnuplot.c) */

/* Where the templates are (the first of MOEBENCH_PLOTS_DIR, plots/ beside
 * the binary's directory, ./plots that holds bars.gp; MOEBENCH_PLOTS_DIR,
 * when set, is the only place looked in) into dir; 0, or -1 with why. */
int mb_rep_templates(char *dir, size_t dn, char *why, size_t wn);
/* Run gnuplot on each written plot's NAME.gp in dir, after removing its
 * old NAME.svg and NAME.png; sets rendered, or note. After gnuplot cannot
 * be started or passes its time limit, the rest are not tried and
 * gnuplot_note says why. */
void mb_rep_render(mb_rep_plots *plots, const char *dir);

/* ---- SVG (report_svg.c) */

/* Copy gnuplot's SVG text svg, from its <svg> element to the matching
 * </svg>, to out with every id prefixed "p<k>-"; 0, or -1 with why and
 * nothing written when it holds anything gnuplot's SVG terminal does not
 * write: an element outside its list, an event handler, an attribute
 * that is not name='value', a reference outside the document, a script
 * URL. */
int mb_rep_svg_inline(FILE *out, const char *svg, int k, char *why, size_t n);

/* ---- documents (report_doc.c) */

typedef struct mb_rep_skip {
	const char *path;           /* as given */
	char why[MB_REP_TEXT_MAX];  /* the loader's message */
} mb_rep_skip;

/* The Markdown (html 0) or HTML (html 1) report. For HTML, the plots'
 * SVGs are read from plots_dir and inlined. */
void mb_rep_write_doc(FILE *f, int html, const mb_rep *rep, const mb_rep_plots *plots,
		      const char *plots_dir, const mb_rep_skip *skips, int nskips);

#endif
