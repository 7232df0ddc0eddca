/* report.c: `moebench report`: a Markdown summary of result files.
 *
 * Result files may come from strangers, so every field is read with its type
 * checked and every string is escaped before it goes into the table; a field
 * that is missing or of the wrong type shows as "-", never as a crash.
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
#include "result.h"

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* Markdown-safe copy of a string field: no pipes, newlines or backticks. */
static const char *str(const cJSON *o, const char *key, char *buf, size_t n)
{
	const cJSON *v = get(o, key);
	if (!cJSON_IsString(v) || !v->valuestring)
		return "-";
	size_t j = 0;
	for (const char *s = v->valuestring; *s && j + 1 < n; s++)
		buf[j++] = (*s == '|' || *s == '\n' || *s == '\r' || *s == '`') ? ' ' : *s;
	buf[j] = '\0';
	return buf;
}

static void num(FILE *f, const cJSON *o, const char *key, double scale, const char *fmt)
{
	const cJSON *v = get(o, key);
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
		fprintf(f, fmt, v->valuedouble * scale);
	else
		fprintf(f, "-");
}

static void params_text(const cJSON *params, char *buf, size_t n)
{
	buf[0] = '\0';
	const cJSON *p;
	size_t used = 0;
	const cJSON *obj = cJSON_IsObject(params) ? params : NULL;
	cJSON_ArrayForEach(p, obj)
	{
		char val[64] = "?";
		if (cJSON_IsNumber(p) && fabs(p->valuedouble) < 9e15 &&
		    p->valuedouble == floor(p->valuedouble))
			snprintf(val, sizeof val, "%lld", (long long)p->valuedouble);
		else if (cJSON_IsNumber(p))
			snprintf(val, sizeof val, "%.17g", p->valuedouble);
		else if (cJSON_IsString(p))
			snprintf(val, sizeof val, "%s", p->valuestring);
		int w = snprintf(buf + used, n - used, "%s%.32s=%s", used ? " " : "",
				 p->string ? p->string : "?", val);
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
	for (char *c = buf; *c; c++)
		if (*c == '|' || *c == '\n' || *c == '`')
			*c = ' ';
}

static void report_file(FILE *f, const char *path, const cJSON *root)
{
	char a[256], b[256], c[256];
	const cJSON *sys = get(root, "system"), *cfg = get(root, "config");
	fprintf(f, "## %s\n\n", str(root, "run_id", a, sizeof a));
	fprintf(f, "- file: `%s`\n- status: %s", path, str(root, "status", b, sizeof b));
	const char *why = str(root, "status_reason", c, sizeof c);
	if (strcmp(why, "-") != 0 && why[0])
		fprintf(f, " (%s)", why);
	fprintf(f, "\n");
	fprintf(f, "- host: %s, %s\n", str(sys, "hostname", a, sizeof a),
		str(sys, "cpu_model", b, sizeof b));
	fprintf(f, "- backend: %s, model preset %s, size %s\n\n", str(cfg, "backend", a, sizeof a),
		str(cfg, "model", b, sizeof b), str(cfg, "size", c, sizeof c));
	fprintf(f, "| suite | params | status | p50 ms | TFLOP/s | tokens/s | busbw GB/s | cv %% | "
		   "check |\n");
	fprintf(f, "|---|---|---|---:|---:|---:|---:|---:|---|\n");
	const cJSON *res = get(root, "results"), *r;
	if (!cJSON_IsArray(res))
		res = NULL;
	cJSON_ArrayForEach(r, res)
	{
		if (!cJSON_IsObject(r))
			continue; /* not a case: nothing to report */
		char params[512];
		params_text(get(r, "params"), params, sizeof params);
		fprintf(f, "| %s | %s | %s | ", str(r, "suite", a, sizeof a), params,
			str(r, "status", b, sizeof b));
		num(f, get(r, "stats_s"), "p50", 1e3, "%.3f");
		fprintf(f, " | ");
		num(f, get(r, "metrics"), "tflops", 1, "%.3f");
		fprintf(f, " | ");
		num(f, get(r, "metrics"), "tokens_per_s", 1, "%.0f");
		fprintf(f, " | ");
		num(f, get(r, "metrics"), "busbw_gbps", 1, "%.3f");
		fprintf(f, " | ");
		num(f, get(r, "stats_s"), "cv_pct", 1, "%.2f");
		const cJSON *chk = get(r, "check");
		fprintf(f, " | %s |\n", cJSON_IsObject(chk) ? str(chk, "method", c, sizeof c) : "-");
	}
	fprintf(f, "\n");
}

int mb_cmd_report(const mb_registry *reg, int argc, char **argv)
{
	(void)reg;
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *outdir = "report";
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if (c == 'o') {
			outdir = optarg;
		} else if (c == 'h') {
			printf("usage: moebench report FILE.json [FILE.json ...] [-o DIR]\n\n"
			       "Writes DIR/report.md (default DIR: report): per result file, its run,\n"
			       "host and configuration, and a table of its cases (median time,\n"
			       "TFLOP/s, tokens/s, spread, how each was checked).\n");
			return MB_EXIT_OK;
		} else {
			return mb_usage_error(MB_EXIT_USAGE, "report: unknown option or missing value "
							     "'%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return mb_usage_error(MB_EXIT_USAGE, "report: no result files given (see --help)");
	cJSON **roots = calloc((size_t)(argc - optind), sizeof *roots);
	if (!roots)
		return mb_usage_error(MB_EXIT_FAIL, "out of memory");
	int code = MB_EXIT_OK;
	for (int i = optind; i < argc && code == MB_EXIT_OK; i++)
		if (mb_result_load(argv[i], &roots[i - optind]))
			code = mb_usage_error(MB_EXIT_USAGE, "report: %s", mb_errmsg());
	char path[4200];
	if (code == MB_EXIT_OK) {
		snprintf(path, sizeof path, "%s/report.md", outdir);
		if (mkdir(outdir, 0755) && errno != EEXIST)
			code = mb_usage_error(MB_EXIT_USAGE, "report: cannot create %s", outdir);
	}
	char *text = NULL;
	size_t len = 0;
	FILE *f = code == MB_EXIT_OK ? open_memstream(&text, &len) : NULL;
	if (f) {
		fprintf(f, "# moebench report\n\n");
		for (int i = optind; i < argc; i++)
			report_file(f, argv[i], roots[i - optind]);
		fclose(f);
		if (mb_write_atomic(path, text, len))
			code = mb_usage_error(MB_EXIT_USAGE, "report: %s", mb_errmsg());
		else
			printf("report: %s\n", path);
	} else if (code == MB_EXIT_OK) {
		code = mb_usage_error(MB_EXIT_FAIL, "out of memory");
	}
	free(text);
	for (int i = 0; i < argc - optind; i++)
		cJSON_Delete(roots[i]);
	free(roots);
	return code;
}
