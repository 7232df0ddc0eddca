/* calibration.c: the measured ceilings (micro.h): derived from the runs of
 * `moebench micro`, printed, written as moebench.calibration/1 (the fields
 * are documented at the top of cmd_micro.c) and read back. */
#include "mb.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "micro.h"
#include "result.h"

/* The directory entries looked at, at most: a results directory is not
 * expected to hold more, and a hostile one cannot keep us reading. */
#define CAL_MAX_ENTRIES 100000

/* Read path whole (bounded) and parse it. */
static int cal_parse(const char *path, cJSON **out)
{
	int rc = mb_json_load(path, MB_CALIBRATION_MAX_BYTES, out);
	return rc ? mb_err(MB_ERR_USAGE, "calibration: %s", mb_errmsg()) : 0;
}

/* A required string field, at most n-1 bytes, copied into dst. */
static int cal_string(const char *path, const cJSON *obj, const char *key, char *dst, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsString(v) || !v->valuestring)
		return mb_err(MB_ERR_USAGE, "calibration %s: \"%s\" is missing or not a string", path,
			      key);
	if (strlen(v->valuestring) >= n)
		return mb_err(MB_ERR_USAGE, "calibration %s: \"%s\" is longer than %zu bytes", path,
			      key, n - 1);
	mb_strlcpy(dst, v->valuestring, n);
	return 0;
}

/* An optional ceiling: absent or null is NAN; a number must be finite, > 0
 * and <= max. */
static int cal_ceiling(const char *path, const cJSON *obj, const char *key, const char *where,
		       double max, double *out)
{
	*out = NAN;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v))
		return mb_err(MB_ERR_USAGE, "calibration %s: %s%s is not a number or null", path,
			      where, key);
	if (!isfinite(v->valuedouble) || !(v->valuedouble > 0) || v->valuedouble > max)
		return mb_err(MB_ERR_USAGE, "calibration %s: %s%s = %g is outside (0, %g]", path,
			      where, key, v->valuedouble, max);
	*out = v->valuedouble;
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ", so that string order is time order. */
static int cal_time_ok(const char *t)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
	if (strlen(t) != sizeof pat - 1)
		return 0;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i])
			return 0;
	return 1;
}

static int cal_fill(const char *path, const cJSON *root, const char *host, mb_calibration *out)
{
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (!cJSON_IsString(schema) || strcmp(schema->valuestring, MB_CALIBRATION_SCHEMA) != 0)
		return mb_err(MB_ERR_USAGE, "calibration %s: not a %s file", path,
			      MB_CALIBRATION_SCHEMA);
	int rc = cal_string(path, root, "host", out->host, sizeof out->host);
	if (!rc)
		rc = cal_string(path, root, "device", out->device, sizeof out->device);
	if (!rc)
		rc = cal_string(path, root, "backend", out->backend, sizeof out->backend);
	if (!rc)
		rc = cal_string(path, root, "time", out->time, sizeof out->time);
	if (rc)
		return rc;
	if (!cal_time_ok(out->time))
		return mb_err(MB_ERR_USAGE, "calibration %s: \"time\" is not YYYY-MM-DDTHH:MM:SSZ",
			      path);
	if (host && strcmp(host, out->host) != 0)
		return mb_err(MB_ERR_USAGE, "calibration %s: measured on host %s, not %s", path,
			      out->host, host);
	const cJSON *ceil = cJSON_GetObjectItemCaseSensitive(root, "ceilings");
	if (!cJSON_IsObject(ceil))
		return mb_err(MB_ERR_USAGE, "calibration %s: \"ceilings\" is missing or not an object",
			      path);
	const cJSON *mm = cJSON_GetObjectItemCaseSensitive(ceil, "matmul_tflops");
	if (!cJSON_IsObject(mm))
		return mb_err(MB_ERR_USAGE, "calibration %s: ceilings.matmul_tflops is missing or not "
					    "an object", path);
	for (int d = 0; d < MB_DTYPE_COUNT; d++) {
		rc = cal_ceiling(path, mm, mb_dtype_name((mb_dtype)d), "ceilings.matmul_tflops.",
				 MB_CALIBRATION_MAX_TFLOPS, &out->matmul_tflops[d]);
		if (rc)
			return rc;
	}
	return cal_ceiling(path, ceil, "mem_gbps", "ceilings.", MB_CALIBRATION_MAX_GBPS,
			   &out->mem_gbps);
}

int mb_calibration_load(const char *path, const char *host, mb_calibration *out)
{
	memset(out, 0, sizeof *out);
	cJSON *root;
	int rc = cal_parse(path, &root);
	if (rc)
		return rc;
	rc = cal_fill(path, root, host, out);
	cJSON_Delete(root);
	return rc;
}

static int cal_is_json_name(const char *name)
{
	size_t k = strlen(name);
	return name[0] != '.' && k > 5 && strcmp(name + k - 5, ".json") == 0;
}

int mb_calibration_find_newest(const char *dir, const char *host, char *path, size_t n)
{
	if (n)
		path[0] = '\0';
	DIR *d = opendir(dir);
	if (!d)
		return mb_err(MB_ERR_USAGE, "cannot read directory %s: %s", dir, strerror(errno));
	char best_time[32] = "", cand[4096];
	int seen = 0, found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && seen++ < CAL_MAX_ENTRIES) {
		if (!cal_is_json_name(e->d_name))
			continue;
		if ((size_t)snprintf(cand, sizeof cand, "%s/%s", dir, e->d_name) >= sizeof cand)
			continue;
		mb_calibration c;
		if (mb_calibration_load(cand, host, &c))
			continue; /* someone else's file, or a broken one */
		int cmp = strcmp(c.time, best_time);
		if (found && (cmp < 0 || (cmp == 0 && strcmp(cand, path) <= 0)))
			continue;
		if (strlen(cand) >= n)
			continue;
		mb_strlcpy(path, cand, n);
		mb_strlcpy(best_time, c.time, sizeof best_time);
		found = 1;
	}
	closedir(d);
	mb_err_clear();
	if (!found)
		return mb_err(MB_ERR_USAGE, "no calibration for host %s in %s (write one with "
					    "moebench micro -o %s/<name>.json)",
			      host ? host : "(any)", dir, dir);
	return 0;
}

/* ---- deriving ---- */

/* snprintf for messages that may be cut short. */
static void say(char *buf, size_t n, const char *fmt, ...) MB_PRINTF(3, 4);
static void say(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

static const mb_micro_bench *find_bench(const mb_micro_doc *d, const char *name)
{
	for (int i = 0; i < d->nbench; i++)
		if (!strcmp(d->bench[i].name, name))
			return &d->bench[i];
	return NULL;
}

/* The run a ceiling is read from: the median aggregate when there are
 * repetitions (the maximum would favour noise), else the (last)
 * repetition; NULL if it did not run. *err is the first error any of its
 * runs reported, or NULL. */
static const mb_gb_run *pick(const mb_gb_results *r, const char *name, const char **err)
{
	const mb_gb_run *median = NULL, *last = NULL;
	*err = NULL;
	for (int i = 0; r && i < r->n; i++) {
		const mb_gb_run *x = &r->runs[i];
		if (strcmp(x->name, name) != 0)
			continue;
		if (x->error && !*err)
			*err = x->error_msg;
		if (!strcmp(x->aggregate, "median"))
			median = x;
		else if (!x->aggregate[0])
			last = x;
	}
	return median ? median : last;
}

/* TFLOP/s (flops) or GB/s of a benchmark, or NAN with the reason. */
static double ceiling(const mb_micro_doc *d, const char *name, int flops, char *why, size_t n)
{
	const mb_micro_bench *b = find_bench(d, name);
	const char *err;
	const mb_gb_run *x = pick(d->runs, name, &err);
	why[0] = '\0';
	if (!b)
		say(why, n, "not run: --dtype %s excludes %s", d->dtype, name);
	else if (b->skipped)
		say(why, n, "skipped: %s", b->skipped);
	else if (err)
		say(why, n, "%s: %s", name, err);
	else if (!x)
		say(why, n, "not run: --benchmark_filter does not select %s", name);
	else {
		double v = flops ? x->flops_per_s / 1e12 : x->bytes_per_s / 1e9;
		if (v > 0 && isfinite(v))
			return v;
		say(why, n, "%s measured no rate", name);
	}
	return NAN;
}

void mb_micro_ceilings_get(const mb_micro_doc *d, mb_micro_ceilings *c)
{
	memset(c, 0, sizeof *c);
	c->matmul_tflops[0] = ceiling(d, MB_MICRO_MATMUL_FP32, 1, c->matmul_why[0],
				      sizeof c->matmul_why[0]);
	c->matmul_tflops[1] = ceiling(d, MB_MICRO_MATMUL_BF16, 1, c->matmul_why[1],
				      sizeof c->matmul_why[1]);
	c->mem_gbps = ceiling(d, MB_MICRO_MEM, 0, c->mem_why, sizeof c->mem_why);
	c->sgemm_tflops = ceiling(d, MB_MICRO_SGEMM, 1, c->sgemm_why, sizeof c->sgemm_why);
	for (int i = 0; d->runs && i < d->runs->n; i++)
		c->invalid |= d->runs->runs[i].error;
	c->peak_tflops[0] = c->peak_tflops[1] = NAN;
	const char *kind = d->dev.kind ? d->dev.kind : "unknown";
	if (strcmp(kind, "cpu") != 0) {
		snprintf(c->caps_why, sizeof c->caps_why, "computed only for a cpu device (this is %s)",
			 kind);
	} else if (mb_spec_cpu_detect(NULL, &c->caps)) {
		snprintf(c->caps_why, sizeof c->caps_why, "%s", mb_errmsg());
	} else {
		c->have_caps = 1;
		for (int i = 0; i < 2; i++)
			c->peak_tflops[i] = mb_spec_cpu_peak_tflops(
				i ? MB_BF16 : MB_FP32, c->caps.cores, c->caps.ghz, c->caps.simd_bits,
				c->caps.fma_units, c->caps.bf16, c->peak_how[i], sizeof c->peak_how[i]);
	}
}

/* ---- printing ---- */

static void print_value(FILE *f, const char *what, double v, const char *unit, const char *from,
			const char *why)
{
	if (isnan(v))
		fprintf(f, "  %-14s -                  (%s)\n", what, why);
	else
		fprintf(f, "  %-14s %8.4g %-8s  %s\n", what, v, unit, from);
}

void mb_micro_print(FILE *f, const mb_micro_doc *d, const mb_micro_ceilings *c)
{
	fprintf(f, "\nceilings of %s (backend %s), measured:\n", d->dev.name ? d->dev.name : "?",
		d->backend);
	print_value(f, "matmul fp32", c->matmul_tflops[0], "TFLOP/s", MB_MICRO_MATMUL_FP32,
		    c->matmul_why[0]);
	print_value(f, "matmul bf16", c->matmul_tflops[1], "TFLOP/s", MB_MICRO_MATMUL_BF16,
		    c->matmul_why[1]);
	print_value(f, "memory", c->mem_gbps, "GB/s", MB_MICRO_MEM " (read + write)", c->mem_why);
	print_value(f, "openblas sgemm", c->sgemm_tflops, "TFLOP/s", MB_MICRO_SGEMM, c->sgemm_why);
	if (!isnan(c->matmul_tflops[0]) && !isnan(c->sgemm_tflops))
		fprintf(f, "  backend fp32 matmul / direct OpenBLAS sgemm: %.1f%%\n",
			100 * c->matmul_tflops[0] / c->sgemm_tflops);
	if (c->have_caps) {
		fprintf(f, "computed peak (arithmetic on /proc/cpuinfo, not a measurement):\n");
		for (int i = 0; i < 2; i++)
			fprintf(f, "  %-14s %8.4g TFLOP/s   %s\n", i ? "bf16" : "fp32",
				c->peak_tflops[i], c->peak_how[i]);
	}
	for (int i = 0; d->runs && i < d->runs->n; i++)
		if (d->runs->runs[i].error)
			fprintf(f, "failed: %s: %s\n", d->runs->runs[i].name,
				d->runs->runs[i].error_msg);
}

/* ---- writing ---- */

static void num_or_why(cJSON *o, const char *key, double v, const char *why)
{
	mb_json_add_num(o, key, v);
	if (isnan(v)) {
		char k[64];
		snprintf(k, sizeof k, "%s_reason", key);
		cJSON_AddStringToObject(o, k, why);
	}
}

static cJSON *json_ceilings(const mb_micro_ceilings *c)
{
	cJSON *o = cJSON_CreateObject(), *mm = cJSON_AddObjectToObject(o, "matmul_tflops"), *from;
	num_or_why(mm, "fp32", c->matmul_tflops[0], c->matmul_why[0]);
	num_or_why(mm, "bf16", c->matmul_tflops[1], c->matmul_why[1]);
	num_or_why(o, "mem_gbps", c->mem_gbps, c->mem_why);
	num_or_why(o, "openblas_sgemm_tflops", c->sgemm_tflops, c->sgemm_why);
	cJSON_AddStringToObject(o, "statistic", "median aggregate with --benchmark_repetitions > 1, "
						"else the one run");
	if ((from = cJSON_AddObjectToObject(o, "benchmarks"))) {
		cJSON_AddStringToObject(from, "matmul_fp32", MB_MICRO_MATMUL_FP32);
		cJSON_AddStringToObject(from, "matmul_bf16", MB_MICRO_MATMUL_BF16);
		cJSON_AddStringToObject(from, "mem", MB_MICRO_MEM);
		cJSON_AddStringToObject(from, "openblas_sgemm", MB_MICRO_SGEMM);
	}
	return o;
}

static cJSON *json_peak(const mb_micro_ceilings *c)
{
	static const char *const units[] = {"none", "avx512_bf16", "amx"};
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "computed");
	mb_json_add_num(o, "fp32_tflops", c->peak_tflops[0]);
	cJSON_AddStringToObject(o, "fp32_how", c->peak_how[0]);
	mb_json_add_num(o, "bf16_tflops", c->peak_tflops[1]);
	cJSON_AddStringToObject(o, "bf16_how", c->peak_how[1]);
	mb_json_add_u64(o, "cores", (uint64_t)c->caps.cores);
	mb_json_add_num(o, "ghz", c->caps.ghz);
	cJSON_AddStringToObject(o, "ghz_from", c->caps.ghz_from);
	mb_json_add_u64(o, "simd_bits", (uint64_t)c->caps.simd_bits);
	mb_json_add_u64(o, "fma_units", (uint64_t)c->caps.fma_units);
	cJSON_AddStringToObject(o, "bf16_unit", units[c->caps.bf16]);
	cJSON_AddStringToObject(o, "note", c->caps.note);
	return o;
}

static cJSON *json_run(const mb_micro_doc *d, const mb_gb_run *x)
{
	const mb_micro_bench *b = find_bench(d, x->name);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", x->name);
	cJSON_AddStringToObject(o, "run_name", x->run_name);
	cJSON_AddStringToObject(o, "op", b ? b->op : "?");
	cJSON_AddStringToObject(o, "dtype", b ? b->dtype : "?");
	cJSON_AddStringToObject(o, "shape", b ? b->shape : "");
	mb_json_add_num(o, "flops_per_iteration", b && b->flops > 0 ? b->flops : NAN);
	mb_json_add_num(o, "bytes_per_iteration", b && b->bytes > 0 ? b->bytes : NAN);
	if (x->aggregate[0])
		cJSON_AddStringToObject(o, "aggregate", x->aggregate);
	else
		cJSON_AddNullToObject(o, "aggregate");
	if (x->repetition >= 0)
		mb_json_add_u64(o, "repetition", (uint64_t)x->repetition);
	else
		cJSON_AddNullToObject(o, "repetition");
	mb_json_add_u64(o, "repetitions", (uint64_t)x->repetitions);
	mb_json_add_u64(o, "iterations", (uint64_t)x->iterations);
	const double r = x->ratio ? NAN : 1; /* cv: fractions, not times or rates */
	mb_json_add_num(o, "real_time_s", x->real_time_s * r);
	mb_json_add_num(o, "cpu_time_s", x->cpu_time_s * r);
	mb_json_add_num(o, "items_per_s", x->items_per_s * r);
	mb_json_add_num(o, "bytes_per_s", x->bytes_per_s * r);
	mb_json_add_num(o, "flops_per_s", x->flops_per_s * r);
	if (x->ratio)
		mb_json_add_num(o, "cv", x->real_time_s);
	if (b && b->ranks > 1)
		mb_json_add_num(o, "busbw_bytes_per_s", x->bytes_per_s * r * (b->ranks - 1) / b->ranks);
	cJSON_AddBoolToObject(o, "valid", !x->error);
	if (x->error)
		cJSON_AddStringToObject(o, "error", x->error_msg);
	else
		cJSON_AddNullToObject(o, "error");
	return o;
}

static cJSON *string_array(cJSON *o, const char *key, int n, char *const *v, const char *first)
{
	cJSON *a = cJSON_AddArrayToObject(o, key);
	for (int i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(!i && first ? first : v[i]));
	return a;
}

cJSON *mb_calibration_to_json(const mb_micro_doc *d, const mb_micro_ceilings *c)
{
	char host[256] = "", when[40];
	if (gethostname(host, sizeof host - 1) || !host[0])
		mb_strlcpy(host, "unknown", sizeof host);
	mb_utc_now(when, sizeof when);
	cJSON *o = cJSON_CreateObject(), *cfg, *arr;
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "schema", MB_CALIBRATION_SCHEMA);
	cJSON_AddStringToObject(o, "moebench_version", MB_VERSION);
	cJSON_AddStringToObject(o, "host", host);
	cJSON_AddStringToObject(o, "device", d->dev.name ? d->dev.name : "unknown");
	cJSON_AddStringToObject(o, "device_library", d->dev.library ? d->dev.library : "");
	cJSON_AddStringToObject(o, "device_kind", d->dev.kind ? d->dev.kind : "");
	cJSON_AddStringToObject(o, "backend", d->backend);
	cJSON_AddStringToObject(o, "time", when);
	string_array(o, "argv", d->argc, d->argv, "moebench");
	if ((cfg = cJSON_AddObjectToObject(o, "config"))) {
		cJSON_AddStringToObject(cfg, "model", d->model);
		cJSON_AddStringToObject(cfg, "preset", d->preset);
		cJSON_AddStringToObject(cfg, "dtype", d->dtype);
		mb_json_add_u64(cfg, "seed", d->seed);
		mb_json_add_u64(cfg, "world_size", (uint64_t)d->world_size);
		string_array(cfg, "benchmark_flags", d->nflags, d->flags, NULL);
	}
	cJSON_AddStringToObject(o, "status", c->invalid ? "invalid" : "ok");
	cJSON_AddItemToObject(o, "ceilings", json_ceilings(c));
	if (c->have_caps) {
		cJSON_AddItemToObject(o, "computed_peak", json_peak(c));
	} else {
		cJSON_AddNullToObject(o, "computed_peak");
		cJSON_AddStringToObject(o, "computed_peak_reason", c->caps_why);
	}
	if ((arr = cJSON_AddArrayToObject(o, "benchmarks")))
		for (int i = 0; d->runs && i < d->runs->n; i++)
			cJSON_AddItemToArray(arr, json_run(d, &d->runs->runs[i]));
	if ((arr = cJSON_AddArrayToObject(o, "skipped")))
		for (int i = 0; i < d->nbench; i++) {
			if (!d->bench[i].skipped)
				continue;
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "name", d->bench[i].name);
			cJSON_AddStringToObject(s, "reason", d->bench[i].skipped);
			cJSON_AddItemToArray(arr, s);
		}
	return o;
}
