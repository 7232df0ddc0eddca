/* report.c: `moebench report`: the command, the join of result files on
 * (suite, params) and the numbers taken from each case (report.h).
 *
 * Result files may come from strangers, so every field is read with its
 * type checked; a field that is missing or of the wrong type is a null with
 * a reason, never a crash. A file that does not load is named on stderr
 * and skipped.
 */
#include "mb.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "report.h"
#include "result.h"

#define KEY_MAX_PARAMS 256   /* parameters of one case taken into its key */
#define KEY_MAX_VALUE 1024   /* bytes of one string parameter taken into its key */

/* ---- reading fields */

const cJSON *mb_rep_get(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

const char *mb_rep_str(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = mb_rep_get(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

double mb_rep_num(const cJSON *o, const char *key)
{
	const cJSON *v = mb_rep_get(o, key);
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

/* ---- the join */

/* A number as the shortest text that reads back to the same double. */
static void num_exact(char *buf, size_t n, double v)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* A parameter's value for a key (exact) or a label (short). */
static void param_value(const cJSON *p, int exact, char *buf, size_t n)
{
	if (cJSON_IsNumber(p)) {
		double v = p->valuedouble;
		if (!exact && fabs(v) < 1e15 && v == floor(v))
			snprintf(buf, n, "%lld", (long long)v);
		else if (exact)
			num_exact(buf, n, v);
		else
			snprintf(buf, n, "%.6g", v);
	} else if (cJSON_IsString(p) && p->valuestring) {
		snprintf(buf, n, exact ? "\"%.*s\"" : "%.*s", KEY_MAX_VALUE, p->valuestring);
	} else {
		snprintf(buf, n, "%s",
			 cJSON_IsBool(p)     ? (cJSON_IsTrue(p) ? "true" : "false")
			 : cJSON_IsArray(p)  ? "[array]"
			 : cJSON_IsObject(p) ? "{object}"
					     : "null");
	}
}

static int name_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

char *mb_rep_case_key(const cJSON *r)
{
	return mb_rep_case_key_without(r, NULL);
}

char *mb_rep_case_key_without(const cJSON *r, const char *skip)
{
	const cJSON *params = mb_rep_get(r, "params"), *p, *list[KEY_MAX_PARAMS];
	int n = 0;
	char *text = NULL, val[KEY_MAX_VALUE + 8];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	const cJSON *suite = mb_rep_get(r, "suite");
	if (cJSON_IsString(suite) && suite->valuestring)
		fprintf(f, "\"%.*s\"", KEY_MAX_VALUE, suite->valuestring);
	else
		fprintf(f, "-");
	if (!cJSON_IsObject(params))
		params = NULL;
	cJSON_ArrayForEach(p, params)
		if (n < KEY_MAX_PARAMS && !(skip && p->string && !strcmp(p->string, skip)))
			list[n++] = p;
	qsort(list, (size_t)n, sizeof list[0], name_cmp);
	for (int i = 0; i < n; i++) {
		param_value(list[i], 1, val, sizeof val);
		fprintf(f, "\n%.*s=%s", KEY_MAX_VALUE, list[i]->string ? list[i]->string : "", val);
	}
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/* The value text of parameter name in params (exact), or "(absent)". */
static void param_of(const cJSON *params, const char *name, char *buf, size_t n)
{
	const cJSON *p = mb_rep_get(params, name);
	if (p)
		param_value(p, 1, buf, n);
	else
		snprintf(buf, n, "(absent)");
}

/* Append " name=value" (short) to buf (n bytes, plain text, cut). */
static void label_add(char *buf, size_t n, const cJSON *p)
{
	char val[KEY_MAX_VALUE + 8], item[KEY_MAX_VALUE + 80];
	size_t used = strlen(buf);
	if (!p) /* a parameter another case has and this one lacks */
		return;
	param_value(p, 0, val, sizeof val);
	snprintf(item, sizeof item, "%s%.64s=%s", used ? " " : "", p->string ? p->string : "?", val);
	if (n - used >= 16) /* room for a cut name=...; else the label ends here */
		mb_rep_text(buf + used, n - used, item);
}

/* Which parameters vary among the suite's groups: each group's label, and
 * the suite's common parameters. */
static void suite_labels(mb_rep *rep, mb_rep_suite *s)
{
	const cJSON *names[KEY_MAX_PARAMS], *p;
	int nn = 0;
	char a[KEY_MAX_VALUE + 8], b[KEY_MAX_VALUE + 8];
	for (int g = s->first; g < s->first + s->n; g++) {
		const cJSON *params = rep->groups[g].params;
		if (!cJSON_IsObject(params))
			params = NULL;
		cJSON_ArrayForEach(p, params) {
			int seen = 0;
			for (int i = 0; i < nn && !seen; i++)
				seen = !strcmp(names[i]->string ? names[i]->string : "",
					       p->string ? p->string : "");
			if (!seen && nn < KEY_MAX_PARAMS)
				names[nn++] = p;
		}
	}
	s->common[0] = '\0';
	for (int i = 0; i < nn; i++) {
		const char *name = names[i]->string ? names[i]->string : "";
		int varies = 0;
		param_of(rep->groups[s->first].params, name, a, sizeof a);
		for (int g = s->first + 1; g < s->first + s->n && !varies; g++) {
			param_of(rep->groups[g].params, name, b, sizeof b);
			varies = strcmp(a, b) != 0;
		}
		if (!varies) {
			if (strlen(s->common) + 4 < sizeof s->common)
				label_add(s->common, sizeof s->common, names[i]);
			continue;
		}
		for (int g = s->first; g < s->first + s->n; g++) {
			mb_rep_group *gr = &rep->groups[g];
			if (strlen(gr->label) + 4 < sizeof gr->label)
				label_add(gr->label, sizeof gr->label, mb_rep_get(gr->params, name));
		}
	}
	for (int g = s->first; g < s->first + s->n; g++)
		if (!rep->groups[g].label[0])
			snprintf(rep->groups[g].label, sizeof rep->groups[g].label, "%s",
				 s->n == 1 ? "(one case)" : "(same parameters)");
}

static void run_label(mb_rep_run *run, int i)
{
	const cJSON *root = run->root, *world = mb_rep_get(root, "world");
	const char *host = mb_rep_str(mb_rep_get(root, "system"), "hostname", NULL);
	const cJSON *hosts = mb_rep_get(world, "hosts");
	char h[24], b[16], raw[96];
	if (!host && cJSON_IsArray(hosts) && cJSON_IsString(cJSON_GetArrayItem(hosts, 0)))
		host = cJSON_GetArrayItem(hosts, 0)->valuestring;
	mb_rep_text(h, sizeof h, host ? host : "?");
	mb_rep_text(b, sizeof b, mb_rep_str(mb_rep_get(root, "config"), "backend", "?"));
	double size = mb_rep_num(world, "size");
	if (size > 1 && size < 1e9)
		snprintf(raw, sizeof raw, "R%d %s/%s x%.0f", i + 1, h, b, size);
	else
		snprintf(raw, sizeof raw, "R%d %s/%s", i + 1, h, b);
	mb_rep_text(run->label, sizeof run->label, raw);
}

/* Open-addressing table from key to group, sized for MB_REP_MAX_CASES. */
#define HASH_SLOTS (MB_REP_MAX_CASES * 2)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

typedef struct join_item {
	int run, suite, group, order; /* order: position in reading order */
	const cJSON *r;
} join_item;

static int item_cmp(const void *a, const void *b)
{
	const join_item *x = a, *y = b;
	if (x->suite != y->suite)
		return x->suite < y->suite ? -1 : 1;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

int mb_rep_join(mb_rep *rep)
{
	int *slots = malloc(HASH_SLOTS * sizeof *slots);
	join_item *items = calloc(MB_REP_MAX_CASES, sizeof *items);
	rep->groups = calloc(MB_REP_MAX_CASES, sizeof *rep->groups);
	rep->suites = calloc(MB_REP_MAX_CASES, sizeof *rep->suites);
	int n = 0, rc = 0;
	if (!slots || !items || !rep->groups || !rep->suites) {
		rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
		goto out;
	}
	for (int i = 0; i < HASH_SLOTS; i++)
		slots[i] = -1;
	rep->base = -1;
	for (int ri = 0; ri < rep->nruns; ri++) {
		mb_rep_run *run = &rep->runs[ri];
		run_label(run, ri);
		if (run->baseline)
			rep->base = ri;
		const cJSON *res = mb_rep_get(run->root, "results"), *r;
		if (!cJSON_IsArray(res))
			res = NULL;
		cJSON_ArrayForEach(r, res) {
			if (!cJSON_IsObject(r))
				continue; /* not a case: nothing to report */
			if (n == MB_REP_MAX_CASES) {
				rep->dropped++;
				continue;
			}
			char *key = mb_rep_case_key(r);
			if (!key) {
				rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
				goto out;
			}
			uint64_t h = hash_str(key) % HASH_SLOTS;
			while (slots[h] >= 0 && strcmp(rep->groups[slots[h]].key, key))
				h = (h + 1) % HASH_SLOTS;
			if (slots[h] < 0) {
				mb_rep_group *g = &rep->groups[rep->ngroups];
				char tmp[MB_REP_LABEL_MAX];
				int s;
				mb_rep_text(tmp, sizeof tmp, mb_rep_str(r, "suite", "-"));
				for (s = 0; s < rep->nsuites && strcmp(rep->suites[s].name, tmp); s++)
					;
				if (s == rep->nsuites)
					snprintf(rep->suites[rep->nsuites++].name, MB_REP_LABEL_MAX,
						 "%s", tmp);
				g->key = key;
				g->params = mb_rep_get(r, "params");
				g->suite = s;
				g->base = -1;
				slots[h] = rep->ngroups++;
			} else {
				free(key);
			}
			items[n] = (join_item){.run = ri, .suite = rep->groups[slots[h]].suite,
					       .group = slots[h], .order = n, .r = r};
			n++;
		}
	}
	/* Cases by suite, group, then reading order (which is run order). */
	qsort(items, (size_t)n, sizeof *items, item_cmp);
	rep->cases = calloc(n ? (size_t)n : 1, sizeof *rep->cases);
	if (!rep->cases) {
		rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
		goto out;
	}
	/* Groups renumbered in the sorted order, so a suite's are contiguous. */
	int *renum = slots; /* reused: the hash is no longer needed */
	for (int g = 0; g < rep->ngroups; g++)
		renum[g] = -1;
	mb_rep_group *sorted = calloc(rep->ngroups ? (size_t)rep->ngroups : 1, sizeof *sorted);
	if (!sorted) {
		rc = mb_err(MB_ERR_NOMEM, "report: out of memory");
		goto out;
	}
	int ng = 0;
	for (int i = 0; i < n; i++) {
		int g = items[i].group;
		if (renum[g] < 0) {
			renum[g] = ng;
			sorted[ng] = rep->groups[g];
			sorted[ng].first = i;
			ng++;
		}
		mb_rep_group *gr = &sorted[renum[g]];
		gr->n++;
		if (items[i].run == rep->base && gr->base < 0)
			gr->base = i;
		rep->cases[i] = (mb_rep_case){.run = items[i].run, .group = renum[g], .r = items[i].r};
	}
	free(rep->groups);
	rep->groups = sorted;
	rep->ncases = n;
	for (int g = 0; g < rep->ngroups; g++) {
		mb_rep_suite *s = &rep->suites[rep->groups[g].suite];
		if (s->n++ == 0)
			s->first = g;
	}
	for (int s = 0; s < rep->nsuites; s++)
		suite_labels(rep, &rep->suites[s]);
out:
	free(slots);
	free(items);
	return rc;
}

void mb_rep_free(mb_rep *rep)
{
	if (!rep)
		return;
	for (int g = 0; rep->groups && g < rep->ngroups; g++)
		free(rep->groups[g].key);
	free(rep->groups);
	free(rep->suites);
	free(rep->cases);
	for (int i = 0; rep->runs && i < rep->nruns; i++)
		cJSON_Delete(rep->runs[i].root);
	free(rep->runs);
	memset(rep, 0, sizeof *rep);
}

/* ---- numbers */

static const char *const metric_names[MB_REP_NMETRICS] = {
	"p50", "TFLOP/s", "tokens/s", "MFU", "MFU (measured peak)", "MFU (computed peak)", "busbw",
	"algbw", "J/token",
};

const char *mb_rep_metric_name(mb_rep_metric m)
{
	return m >= 0 && m < MB_REP_NMETRICS ? metric_names[m] : "?";
}

int mb_rep_metric_higher_better(mb_rep_metric m)
{
	return m != MB_REP_P50 && m != MB_REP_J_TOKEN;
}

double mb_rep_ratio(double value, double base)
{
	return isfinite(value) && isfinite(base) && base != 0 ? value / base : NAN;
}

int mb_rep_ci(const cJSON *r, double *lo, double *hi)
{
	const cJSON *ci = mb_rep_get(mb_rep_get(r, "stats_s"), "median_ci95");
	if (!cJSON_IsArray(ci) || cJSON_GetArraySize(ci) != 2)
		return -1;
	const cJSON *a = cJSON_GetArrayItem(ci, 0), *b = cJSON_GetArrayItem(ci, 1);
	if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !isfinite(a->valuedouble) ||
	    !isfinite(b->valuedouble) || a->valuedouble > b->valuedouble)
		return -1;
	*lo = a->valuedouble;
	*hi = b->valuedouble;
	return 0;
}

/* why = "<reason field>" of o when it is a string, else dflt. */
static void reason(char *why, size_t n, const cJSON *o, const char *field, const char *dflt)
{
	mb_rep_text(why, n, mb_rep_str(o, field, dflt));
}

double mb_rep_value(const cJSON *r, mb_rep_metric m, char *why, size_t n)
{
	const cJSON *metrics = mb_rep_get(r, "metrics"), *cost = mb_rep_get(r, "cost");
	const cJSON *power = mb_rep_get(r, "power");
	static const char *const keys[MB_REP_NMETRICS] = {
		"p50", "tflops", "tokens_per_s", "mfu_pct", "mfu_measured_pct", "mfu_computed_pct",
		"busbw_gbps", "gbps", "j_per_token"};
	double v = NAN;
	if (m < 0 || m >= MB_REP_NMETRICS) {
		snprintf(why, n, "no such metric");
		return NAN;
	}
	const cJSON *from = m == MB_REP_P50 ? mb_rep_get(r, "stats_s") :
			    m == MB_REP_J_TOKEN ? power : metrics;
	v = mb_rep_num(from, keys[m]);
	if (isfinite(v))
		return v;
	if (!cJSON_IsObject(mb_rep_get(r, "stats_s"))) {
		char st[32];
		mb_rep_text(st, sizeof st, mb_rep_str(r, "status", "?"));
		char rs[MB_REP_TEXT_MAX];
		reason(rs, sizeof rs, r, "reason", "no reason given");
		snprintf(why, n, "the case did not run (%s: %s)", st, rs);
		return NAN;
	}
	switch (m) {
	case MB_REP_P50:
		snprintf(why, n, "stats_s.p50 is not a number");
		break;
	case MB_REP_TFLOPS:
		if (mb_rep_num(cost, "flops") == 0)
			snprintf(why, n, "the suite counts no FLOPs for this case (cost.flops = 0)");
		else if (!isfinite(mb_rep_num(cost, "flops")))
			snprintf(why, n, "FLOPs unknown (cost.flops is null)");
		else
			snprintf(why, n, "metrics.tflops is null");
		break;
	case MB_REP_TOKENS:
		if (mb_rep_num(cost, "tokens") == 0)
			snprintf(why, n, "the case declares no tokens (cost.tokens = 0)");
		else
			snprintf(why, n, "metrics.tokens_per_s is null");
		break;
	case MB_REP_MFU:
		reason(why, n, metrics, "mfu_reason", "metrics.mfu_pct is null, with no mfu_reason");
		break;
	case MB_REP_MFU_MEASURED:
		if (!mb_rep_get(metrics, "mfu_measured_pct"))
			snprintf(why, n, "no measured peak: the file carries no calibration "
					 "(metrics.mfu_measured_pct, from moebench micro)");
		else
			reason(why, n, metrics, "mfu_measured_reason",
			       "metrics.mfu_measured_pct is null, with no mfu_measured_reason");
		break;
	case MB_REP_MFU_COMPUTED:
		if (!mb_rep_get(metrics, "mfu_computed_pct"))
			snprintf(why, n, "no computed peak in this file (metrics.mfu_computed_pct)");
		else
			reason(why, n, metrics, "mfu_computed_reason",
			       "metrics.mfu_computed_pct is null, with no mfu_computed_reason");
		break;
	case MB_REP_BUSBW:
		if (mb_rep_num(mb_rep_get(r, "info"), "busbw_factor") == 0)
			snprintf(why, n, "one rank: nothing crosses a link, (n-1)/n = 0");
		else
			reason(why, n, mb_rep_get(r, "interconnect"), "app_reason",
			       "no communication in this case");
		break;
	case MB_REP_GBPS:
		if (mb_rep_num(cost, "bytes") == 0)
			snprintf(why, n, "the case declares no bytes moved (cost.bytes = 0)");
		else
			snprintf(why, n, "metrics.gbps is null");
		break;
	case MB_REP_J_TOKEN:
		if (!cJSON_IsObject(power))
			reason(why, n, r, "power_reason", "power is null, with no power_reason");
		else if (mb_rep_num(cost, "tokens") == 0)
			snprintf(why, n, "power measured, but the case declares no tokens");
		else
			snprintf(why, n, "power.j_per_token is null");
		break;
	default:
		break;
	}
	return NAN;
}

/* ---- the command */

static int usage(void)
{
	printf("usage: moebench report FILE.json [FILE.json ...] [-o DIR] [--baseline FILE]\n\n"
	       "Joins the cases of the result files on (suite, params) and writes DIR/report.md,\n"
	       "a self-contained DIR/report.html (plots inlined as SVG) and, per plot,\n"
	       "DIR/plots/NAME.gp (gnuplot script), NAME.dat (its data), NAME.svg and NAME.png.\n"
	       "Default DIR: report. Contents: the systems (device, peaks, software, date); per\n"
	       "suite, each case's median time with its 95%% interval, TFLOP/s, tokens/s, MFU,\n"
	       "busbw and J/token, with the ratio to the baseline; plots of throughput,\n"
	       "alltoall bandwidth against size, train_step phases, per-iteration times and\n"
	       "energy per token. Every missing number has a note saying why.\n\n"
	       "  -o, --output DIR   where to write (created if missing)\n"
	       "  --baseline FILE    ratios are value / this file's value for the same case\n"
	       "                     (one of the FILEs, or an extra file)\n\n"
	       "A file that cannot be read is named on stderr and skipped (exit 2 when none\n"
	       "is left). gnuplot (MOEBENCH_GNUPLOT names another program) runs without a\n"
	       "shell and is killed after 30 s (MOEBENCH_GNUPLOT_TIMEOUT_S); without it the\n"
	       "report is written with a note and the scripts and data are kept. Templates:\n"
	       "plots/ beside the binary's directory, or MOEBENCH_PLOTS_DIR.\n"
	       "Prints the paths of report.html and report.md.\n");
	return MB_EXIT_OK;
}

/* 1 when a and b name the same file. */
static int same_file(const char *a, const char *b)
{
	struct stat x, y;
	return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int write_doc(const char *path, int html, const mb_rep *rep, const mb_rep_plots *plots,
		     const char *plots_dir, const mb_rep_skip *skips, int nskips)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return mb_err(MB_ERR_NOMEM, "report: out of memory");
	mb_rep_write_doc(f, html, rep, plots, plots_dir, skips, nskips);
	int rc = fclose(f) ? mb_err(MB_ERR_NOMEM, "report: out of memory")
			   : mb_write_atomic(path, text, len);
	free(text);
	return rc;
}

static int make_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0755) && errno != EEXIST)
		return mb_err(MB_ERR_USAGE, "report: cannot create %s: %s", dir, strerror(errno));
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return mb_err(MB_ERR_USAGE, "report: %s is not a directory", dir);
	return 0;
}

int mb_cmd_report(const mb_registry *reg, int argc, char **argv)
{
	(void)reg;
	static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
					     {"baseline", required_argument, NULL, 'B'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *outdir = "report", *basefile = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if (c == 'o')
			outdir = optarg;
		else if (c == 'B')
			basefile = optarg;
		else if (c == 'h')
			return usage();
		else
			return mb_usage_error(MB_EXIT_USAGE, "report: unknown option or missing value "
							     "'%s' (see --help)", argv[optind - 1]);
	}
	int nfiles = argc - optind;
	if (nfiles <= 0)
		return mb_usage_error(MB_EXIT_USAGE, "report: no result files given (see --help)");
	if (nfiles + (basefile != NULL) > MB_REP_MAX_RUNS)
		return mb_usage_error(MB_EXIT_USAGE, "report: %d files given, at most %d",
				      nfiles + (basefile != NULL), MB_REP_MAX_RUNS);
	mb_rep rep = {0};
	mb_rep_plots plots = {0};
	mb_rep_skip *skips = calloc((size_t)nfiles, sizeof *skips);
	rep.runs = calloc((size_t)nfiles + 1, sizeof *rep.runs);
	int nskips = 0, code = MB_EXIT_OK, base_listed = 0;
	cJSON *base_root = NULL;
	char md[4200], html[4200], pdir[4200];
	if (!skips || !rep.runs) {
		code = mb_usage_error(MB_EXIT_FAIL, "out of memory");
		goto out;
	}
	/* An explicit baseline that does not load is an error, not a skip. */
	if (basefile && mb_result_load(basefile, &base_root)) {
		code = mb_usage_error(MB_EXIT_USAGE, "report: --baseline: %s", mb_errmsg());
		goto out;
	}
	for (int i = optind; i < argc; i++) {
		mb_rep_run *run = &rep.runs[rep.nruns];
		if (mb_result_load(argv[i], &run->root)) {
			/* named and skipped: one line each, the report lists them too */
			mb_usage_error(MB_EXIT_USAGE, "report: %s", mb_errmsg());
			skips[nskips].path = argv[i];
			mb_rep_text(skips[nskips].why, sizeof skips[nskips].why, mb_errmsg());
			nskips++;
			continue;
		}
		run->path = argv[i];
		if (basefile && !base_listed && same_file(basefile, argv[i]))
			run->baseline = base_listed = 1;
		rep.nruns++;
	}
	if (rep.nruns == 0) { /* every file was named on stderr already */
		code = MB_EXIT_USAGE;
		goto out;
	}
	if (base_root && !base_listed) { /* an extra file: reported as a run too */
		rep.runs[rep.nruns++] = (mb_rep_run){.path = basefile, .root = base_root, .baseline = 1};
		base_root = NULL;
	}
	snprintf(md, sizeof md, "%s/report.md", outdir);
	snprintf(html, sizeof html, "%s/report.html", outdir);
	snprintf(pdir, sizeof pdir, "%s/plots", outdir);
	if (strlen(outdir) > 4000) {
		code = mb_usage_error(MB_EXIT_USAGE, "report: output directory name too long");
		goto out;
	}
	if (mb_rep_join(&rep) || make_dir(outdir) || make_dir(pdir) ||
	    mb_rep_plots_make(&rep, pdir, &plots) ||
	    write_doc(md, 0, &rep, &plots, pdir, skips, nskips) ||
	    write_doc(html, 1, &rep, &plots, pdir, skips, nskips)) {
		code = mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
		goto out;
	}
	if (plots.gnuplot_note[0])
		mb_usage_error(0, "report: plots not rendered (%s); each plot's files are kept in %s",
			       plots.gnuplot_note, pdir);
	printf("report: %s\nreport: %s\n", html, md);
out:
	cJSON_Delete(base_root);
	mb_rep_plots_free(&plots);
	mb_rep_free(&rep);
	free(skips);
	return code;
}
