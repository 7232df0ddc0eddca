/* check.c: re-derive a result file from its samples, parameters and the
 * suites' formulas (check.h; the rules are in README "check").
 *
 * Three passes over one tree: the schema (a table per object, as SCHEMA.md
 * lists the fields), the world and run (node map, status), then each case:
 * its parameters rebuilt into the suite's table and its cost re-declared by
 * the suite, its statistics from samples_s, its metrics from those two, and
 * the facts that must agree with each other (status and check, per-rank
 * medians, interconnect and power figures, suite info).
 */
#include "mb.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hardware/specs/specs.h"
#include "../suites/alltoall.h"
#include "check.h"

#define PATHN 192
#define EXACT_INT 9007199254740992.0 /* 2^53: doubles hold every integer below it */

/* ---- findings ---- */

typedef struct ck {
	const mb_check_opts *o;
	mb_check_sum *sum;
	int nomem;
	int ws;            /* world.size; 0 when unusable */
	int nodes;         /* world.nodes as recomputed; 0 when unusable */
	int *node_of;      /* [ws] world.node_of_rank when consistent, else NULL; owned */
	const cJSON *hosts; /* world.hosts when it has ws strings, else NULL */
	int iters;         /* config.iters; 0 when unusable */
	uint64_t seed;
	int seed_ok;       /* config.seed read back exactly */
	const char *dev_name, *dev_kind; /* devices[0]; NULL when absent */
	int noted;         /* notes given once per file (check_mfu) */
} ck;

/* Printable ASCII of a string from the file (it may hold anything). */
static const char *clean(const char *s, char *buf, size_t n)
{
	size_t j = 0;
	for (; s && *s && j + 4 < n; s++)
		buf[j++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (s && *s)
		buf[j++] = '.', buf[j++] = '.', buf[j++] = '.';
	buf[j] = '\0';
	return buf;
}

static void finding(ck *c, mb_find_kind kind, const char *path, const char *fmt, ...)
	MB_PRINTF(4, 5);

static void finding(ck *c, mb_find_kind kind, const char *path, const char *fmt, ...)
{
	int *count = kind == MB_FIND_MISMATCH ? &c->sum->mismatches : &c->sum->notes;
	if (++*count > MB_CHECK_MAX_SHOWN || !c->o->emit)
		return;
	char msg[1024];
	int at = snprintf(msg, sizeof msg, "%s: ", path);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + at, sizeof msg - (size_t)at, fmt, ap);
	va_end(ap);
	c->o->emit(c->o->ctx, kind, path, msg);
}

static const char *join(char *buf, const char *at, const char *key)
{
	char k[64];
	snprintf(buf, PATHN, "%s%s%s", at, *at ? "." : "", clean(key, k, sizeof k));
	return buf;
}

/* p[i], cut to PATHN. */
static const char *at_idx(char *buf, const char *p, int i)
{
	if (snprintf(buf, PATHN, "%s[%d]", p, i) >= PATHN)
		buf[PATHN - 1] = '\0';
	return buf;
}

/* Shortest text that reads back to the same double, as the writer prints. */
static const char *fmt_num(double v, char *buf, size_t n)
{
	if (isnan(v))
		return "null";
	if (v == floor(v) && fabs(v) < EXACT_INT) { /* whole numbers as integers */
		snprintf(buf, n, "%.0f", v);
		return buf;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* ---- reading members ---- */

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* A finite number member, or NAN (missing, null or another type). */
static double num(const cJSON *o, const char *key)
{
	const cJSON *x = get(o, key);
	return cJSON_IsNumber(x) && isfinite(x->valuedouble) ? x->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *x = get(o, key);
	return cJSON_IsString(x) && x->valuestring ? x->valuestring : NULL;
}

static int is_whole(double v, double lo, double hi)
{
	return v == floor(v) && v >= lo && v <= hi;
}

/* Compare x (a member from the file) with want: bit for bit (tol 0) or
 * within tol relative. want NAN means the writer would have written null.
 * A member missing or of another type was reported by the schema pass. */
static void cmp_item(ck *c, const char *p, const cJSON *x, double want, double tol)
{
	if (!x || !(cJSON_IsNull(x) || cJSON_IsNumber(x)))
		return;
	c->sum->compared++;
	const double got = cJSON_IsNumber(x) ? x->valuedouble : NAN;
	int same = isnan(got) || isnan(want) ? isnan(got) && isnan(want) : got == want;
	if (!same && tol > 0 && !isnan(got) && !isnan(want))
		same = fabs(got - want) <= tol * fmax(fabs(got), fabs(want));
	if (same)
		return;
	char a[32], b[32];
	finding(c, MB_FIND_MISMATCH, p, "file %s, recomputed %s%s", fmt_num(got, a, sizeof a),
		fmt_num(want, b, sizeof b), tol > 0 ? " (tolerance 1e-12 relative)" : "");
}

static void cmp(ck *c, const char *at, const cJSON *obj, const char *key, double want, double tol)
{
	char p[PATHN];
	cmp_item(c, join(p, at, key), get(obj, key), want, tol);
}

/* ---- schema ---- */

enum { J_NULL = 1, J_BOOL = 2, J_NUM = 4, J_INT = 8, J_STR = 16, J_ARR = 32, J_OBJ = 64 };
enum { F_OPT = 1, F_REASON = 2 };

/* One member of an object: the types it may have; for an array (or an
 * object used as a map) the types of its elements; the fields of each
 * object it holds; the strings it may be. */
typedef struct fld {
	const char *name;
	unsigned char types, elems, flags;
	const struct fld *sub;
	const char *one_of; /* "a|b|c" */
	const char *reason; /* F_REASON: its key, when not <name>_reason */
} fld;

#define F(n, t) {n, t, 0, 0, NULL, NULL, NULL}
#define FF(n, t, fl) {n, t, 0, fl, NULL, NULL, NULL}
#define FR(n, t, fl, r) {n, t, 0, (fl) | F_REASON, NULL, NULL, r}
#define FE(n, t, choices) {n, t, 0, 0, NULL, choices, NULL}
#define FA(n, t, e, sub) {n, t, e, 0, sub, NULL, NULL}
#define FO(n, t, fl, sub) {n, t, 0, fl, sub, NULL, NULL}
#define END {NULL, 0, 0, 0, NULL, NULL, NULL}
#define N_ (J_NUM | J_NULL)
#define S_ (J_STR | J_NULL)
#define I_ (J_INT | J_NULL)

static const fld cache_f[] = {F("level", J_INT), FE("type", J_STR, "unified|data|instruction"),
			      F("size_bytes", I_), F("count", J_INT), END};
static const fld accel_f[] = {
	FE("vendor", J_STR, "nvidia|amd|huawei|intel"), F("pci_bus_id", J_STR),
	F("vendor_id", J_STR), F("device_id", J_STR), F("class_id", J_STR),
	F("pcie_link_speed", S_), F("pcie_link_width", I_), F("locality", S_),
	FA("numa_nodes", J_ARR | J_NULL, J_INT, NULL), FA("os_devices", J_ARR, J_STR, NULL), END};
static const fld port_f[] = {F("port", J_INT), F("state", S_), F("rate", S_),
			     F("link_layer", S_), END};
static const fld nic_f[] = {
	F("name", S_), FE("kind", J_STR, "network|openfabrics|pci"), F("pci_bus_id", S_),
	F("vendor_id", S_), F("device_id", S_), F("class_id", S_), F("pcie_link_speed", S_),
	F("pcie_link_width", I_), F("locality", S_), FA("numa_nodes", J_ARR | J_NULL, J_INT, NULL),
	F("speed_mbps", N_), FF("mtu", I_, F_OPT), FF("link_type", S_, F_OPT),
	{"address_families", J_ARR | J_NULL, J_STR, F_OPT, NULL, NULL, NULL},
	{"ports", J_ARR | J_NULL, J_OBJ, F_OPT, port_f, NULL, NULL}, END};
static const fld system_f[] = {
	F("hostname", S_), F("os", S_), F("kernel", S_), F("kernel_version", S_), F("arch", S_),
	F("cpu_model", S_), F("sockets", I_), F("cores", I_), F("pus", I_), F("pus_allowed", I_),
	F("numa_nodes", I_), F("memory_bytes", I_), FE("memory_source", S_, "meminfo|hwloc"),
	F("hwloc_memory_bytes", I_), F("meminfo_total_bytes", I_),
	FA("caches", J_ARR | J_NULL, J_OBJ, cache_f),
	FA("accelerators", J_ARR | J_NULL, J_OBJ, accel_f),
	FA("nics", J_ARR | J_NULL, J_OBJ, nic_f), END};
static const fld openblas_f[] = {F("config", S_), F("corename", S_), END};
static const fld mpi_f[] = {F("library_version", S_), F("standard", S_), END};
static const fld hwloc_f[] = {F("api_version", J_STR), F("api_version_compiled", J_STR), END};
static const fld cjson_f[] = {F("version", S_), F("version_compiled", J_STR), END};
static const fld libs_f[] = {
	FO("openblas", J_OBJ, 0, openblas_f), FO("mpi", J_OBJ, 0, mpi_f),
	FO("hwloc", J_OBJ, 0, hwloc_f),
	FO("cjson", J_OBJ, 0, cjson_f), F("cuda", J_OBJ | S_), F("nccl", J_OBJ | S_),
	F("cann", J_OBJ | S_), END};
static const fld build_f[] = {F("moebench_version", J_STR), F("git_commit", S_),
			      F("git_dirty", J_BOOL | J_NULL), F("compiler", S_), F("cc", J_STR),
			      F("cflags", J_STR), FO("libraries", J_OBJ, 0, libs_f), END};
static const fld world_f[] = {
	F("size", J_INT), F("nodes", J_INT), F("ranks_per_node", J_INT),
	FE("launcher", J_STR, "none|mpirun|srun"), F("nodes_from", J_STR),
	FA("hosts", J_ARR, J_STR, NULL), FA("node_of_rank", J_ARR, J_INT, NULL), END};
static const fld device_f[] = {F("rank", J_INT), F("backend", J_STR), F("name", J_STR),
			       FE("kind", J_STR, "cpu|gpu|npu|none"), F("library", J_STR),
			       F("threads", J_INT), F("memory_bytes", I_), F("fault_injected", S_),
			       END};
/* replay_of and calibration came in later files of the same schema */
static const fld config_f[] = {F("backend", J_STR), F("model", S_),
			       FE("attention", J_STR, "exact|approximated"), F("size", J_STR),
			       FF("replay_of", S_, F_OPT), FR("calibration", S_, F_OPT, NULL),
			       F("seed", J_INT), F("warmup", J_INT), F("iters", J_INT), END};
static const fld cost_f[] = {F("flops", N_), F("flops_palm", N_), F("tokens", J_NUM),
			     F("bytes", J_NUM), F("comm_bytes", J_NUM), END};
static const fld peak_f[] = {F("tflops", J_NUM), F("dtype", J_STR), F("device", J_STR),
			     F("kind", J_STR), F("source", J_STR), END};
static const fld computed_f[] = {F("tflops", J_NUM), F("dtype", J_STR),
				 FE("kind", J_STR, "computed"), F("how", J_STR), END};
static const fld measured_f[] = {F("tflops", J_NUM), F("dtype", J_STR),
				 FE("kind", J_STR, "measured"), F("source", J_STR), F("time", J_STR),
				 END};
/* the computed and measured MFU came in later files of the same schema */
static const fld metrics_f[] = {
	F("tflops", N_), F("tflops_best", N_), F("tflops_palm", N_), F("tokens_per_s", N_),
	F("gbps", N_), F("busbw_gbps", N_), F("to_others_gbps", N_),
	FR("mfu_pct", N_, 0, "mfu_reason"), FO("peak", J_OBJ | J_NULL, 0, peak_f),
	FR("mfu_computed_pct", N_, F_OPT, "mfu_computed_reason"),
	FO("computed_peak", J_OBJ | J_NULL, F_OPT, computed_f),
	FR("mfu_measured_pct", N_, F_OPT, "mfu_measured_reason"),
	FO("measured_peak", J_OBJ | J_NULL, F_OPT, measured_f), END};
static const fld stats_f[] = {
	F("n", J_INT), F("min", J_NUM), F("p50", J_NUM), F("p95", J_NUM), F("p99", J_NUM),
	F("max", J_NUM), F("mean", J_NUM), F("stdev", J_NUM), F("cv_pct", J_NUM),
	FA("median_ci95", J_ARR, J_NUM, NULL), FE("median_ci_method", J_STR, "order-statistic"),
	F("median_ci_covers_95", J_BOOL), END};
static const fld ranks_f[] = {FA("p50_s", J_ARR, J_NUM, NULL), F("slowest_rank", J_INT),
			      F("slowest_host", J_STR), END};
static const fld check_f[] = {F("passed", J_BOOL), F("method", J_STR), F("tolerance", N_),
			      F("max_rel_err", N_), F("max_abs_err", N_), F("checked", J_INT),
			      F("mismatched", J_INT), F("nonfinite", J_INT), F("detail", J_STR), END};
static const fld power_f[] = {
	F("source", J_STR), F("scope", J_STR), F("nodes", J_INT), F("samples", J_INT),
	F("failed_samples", J_INT), F("rate_hz", N_), F("insufficient", J_BOOL),
	F("duration_s", N_), F("max_gap_s", N_), F("avg_w", N_), F("peak_w", N_),
	FF("peak_w_is", J_STR, F_OPT), F("energy_j", N_),
	FE("energy_from", J_STR, "energy counter|integrated power samples"), F("j_per_token", N_),
	F("tokens_per_j", N_), F("note", J_STR), END};
static const fld app_f[] = {F("ranks", J_INT), F("iterations", J_INT),
			    F("bytes_to_other_ranks", J_NUM), F("bytes_inside_node", J_NUM),
			    F("bytes_across_nodes", J_NUM), F("inside_node_gbps", N_),
			    F("across_nodes_gbps", N_), END};
static const fld iface_f[] = {
	F("name", J_STR), F("kind", J_STR), F("counters", J_STR), FR("tx_bytes", I_, 0, NULL),
	FR("rx_bytes", I_, 0, NULL), FR("tx_packets", I_, 0, NULL), FR("rx_packets", I_, 0, NULL),
	FR("errors", I_, 0, NULL), FR("drops", I_, 0, NULL), FF("note", J_STR, F_OPT), END};
static const fld counters_f[] = {F("nodes", J_INT), F("tx_bytes", J_NUM), F("rx_bytes", J_NUM),
				 F("note", J_STR), FA("interfaces", J_ARR, J_OBJ, iface_f), END};
static const fld ic_f[] = {{"app", J_OBJ | J_NULL, 0, F_REASON, app_f, NULL, NULL},
			   {"counters", J_OBJ | J_NULL, 0, F_REASON, counters_f, NULL, NULL}, END};
static const fld case_f[] = {
	F("suite", J_STR), FE("status", J_STR, "ok|invalid|skipped|error"), F("reason", J_STR),
	FA("params", J_OBJ, J_NUM | J_STR, NULL), FA("params_source", J_OBJ, J_STR, NULL),
	F("start_time", J_STR), F("setup_s", J_NUM), F("run_s", J_NUM), F("verify_s", J_NUM),
	FO("cost", J_OBJ | J_NULL, 0, cost_f), FO("metrics", J_OBJ | J_NULL, 0, metrics_f),
	FA("samples_s", J_ARR, J_NUM, NULL), FO("stats_s", J_OBJ | J_NULL, 0, stats_f),
	FO("ranks", J_OBJ, F_OPT, ranks_f), FO("check", J_OBJ | J_NULL, 0, check_f),
	FA("info", J_OBJ, N_, NULL), {"power", J_OBJ | J_NULL, 0, F_REASON, power_f, NULL, NULL},
	FO("interconnect", J_OBJ, 0, ic_f), END};
static const fld top_f[] = {
	FE("schema", J_STR, MB_SCHEMA), F("moebench_version", J_STR), F("run_id", J_STR),
	F("start_time", J_STR), F("end_time", S_), FE("status", J_STR, "complete|interrupted|failed"),
	F("status_reason", J_STR), FA("argv", J_ARR, J_STR, NULL),
	FA("environment", J_OBJ, J_STR, NULL), FO("build", J_OBJ, 0, build_f),
	FO("system", J_OBJ, 0, system_f), FO("world", J_OBJ, 0, world_f),
	FA("devices", J_ARR, J_OBJ, device_f), FO("config", J_OBJ, 0, config_f),
	FA("results", J_ARR, J_OBJ, case_f), END};

static unsigned jtypes(const cJSON *x)
{
	if (cJSON_IsNull(x))
		return J_NULL;
	if (cJSON_IsBool(x))
		return J_BOOL;
	if (cJSON_IsNumber(x))
		return !isfinite(x->valuedouble) ? 0
		       : x->valuedouble == floor(x->valuedouble) ? J_NUM | J_INT : J_NUM;
	if (cJSON_IsString(x))
		return x->valuestring ? J_STR : 0;
	return cJSON_IsArray(x) ? J_ARR : cJSON_IsObject(x) ? J_OBJ : 0;
}

static const char *types_text(unsigned t, char *buf, size_t n)
{
	static const char *const names[] = {"null", "a boolean", "a number", "an integer",
					    "a string", "an array", "an object"};
	buf[0] = '\0';
	if ((t & J_NUM) && (t & J_INT))
		t &= ~(unsigned)J_INT; /* any number */
	for (unsigned i = 0, first = 1; i < MB_ARRAY_LEN(names); i++)
		if (t & (1u << i)) {
			size_t at = strlen(buf);
			snprintf(buf + at, n - at, "%s%s", first ? "" : " or ", names[i]);
			first = 0;
		}
	return buf[0] ? buf : "nothing";
}

static int one_of(const char *choices, const char *s)
{
	size_t len = strlen(s);
	for (const char *c = choices; c;) {
		const char *bar = strchr(c, '|');
		size_t n = bar ? (size_t)(bar - c) : strlen(c);
		if (n == len && strncmp(c, s, n) == 0)
			return 1;
		c = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int type_ok(ck *c, const char *p, const cJSON *x, unsigned want)
{
	if (jtypes(x) & want)
		return 1;
	char a[64], b[64];
	finding(c, MB_FIND_MISMATCH, p, "is %s (schema: %s)",
		cJSON_IsNumber(x) && !isfinite(x->valuedouble) ? "a non-finite number"
							       : types_text(jtypes(x), a, sizeof a),
		types_text(want, b, sizeof b));
	return 0;
}

static void check_fields(ck *c, const char *at, const cJSON *obj, const fld *t);

static void check_value(ck *c, const char *p, const cJSON *x, const fld *t)
{
	if (!type_ok(c, p, x, t->types))
		return;
	char s[80];
	if (t->one_of && cJSON_IsString(x) && !one_of(t->one_of, x->valuestring))
		finding(c, MB_FIND_MISMATCH, p, "'%s' is not one of %s",
			clean(x->valuestring, s, sizeof s), t->one_of);
	if (cJSON_IsObject(x) && !t->elems && t->sub) {
		check_fields(c, p, x, t->sub);
		return;
	}
	if (!(cJSON_IsArray(x) || cJSON_IsObject(x)) || !t->elems)
		return;
	const cJSON *e;
	int i = 0;
	cJSON_ArrayForEach(e, x)
	{
		char q[PATHN];
		if (cJSON_IsArray(x))
			at_idx(q, p, i++);
		else
			join(q, p, e->string ? e->string : "");
		if (type_ok(c, q, e, t->elems) && t->sub && cJSON_IsObject(e))
			check_fields(c, q, e, t->sub);
	}
}

static void check_fields(ck *c, const char *at, const cJSON *obj, const fld *t)
{
	for (; t->name; t++) {
		char p[PATHN], key[64], b[64];
		const cJSON *x = get(obj, t->name);
		join(p, at, t->name);
		if (!x) {
			if (!(t->flags & F_OPT))
				finding(c, MB_FIND_MISMATCH, p, "missing (schema: %s)",
					types_text(t->types, b, sizeof b));
			continue;
		}
		check_value(c, p, x, t);
		if (!(t->flags & F_REASON))
			continue;
		if (t->reason)
			snprintf(key, sizeof key, "%s", t->reason);
		else
			snprintf(key, sizeof key, "%s_reason", t->name);
		const cJSON *r = get(obj, key);
		if (cJSON_IsNull(x) && !cJSON_IsString(r))
			finding(c, MB_FIND_MISMATCH, p, "null without a string %s beside it", key);
		else if (!cJSON_IsNull(x) && r)
			finding(c, MB_FIND_MISMATCH, p, "has %s beside a value (a reason goes only "
							"beside a null)", key);
	}
}

/* SCHEMA.md's rule for the inventory (system, build): every null member
 * has a string <member>_reason beside it, and a _reason only a null. */
static void check_reasons(ck *c, const char *at, const cJSON *x, int depth)
{
	const cJSON *e;
	int i = 0;
	if (depth > 8 || !(cJSON_IsObject(x) || cJSON_IsArray(x)))
		return;
	cJSON_ArrayForEach(e, x)
	{
		char p[PATHN], key[96];
		if (cJSON_IsArray(x)) {
			at_idx(p, at, i++);
			check_reasons(c, p, e, depth + 1);
			continue;
		}
		if (!e->string)
			continue;
		join(p, at, e->string);
		snprintf(key, sizeof key, "%s_reason", e->string);
		if (cJSON_IsNull(e) && !cJSON_IsString(get(x, key)))
			finding(c, MB_FIND_MISMATCH, p, "null without a string %.64s beside it", key);
		size_t len = strlen(e->string);
		if (len > 7 && !strcmp(e->string + len - 7, "_reason")) {
			char base[96];
			snprintf(base, sizeof base, "%.*s", (int)(len - 7), e->string);
			const cJSON *b = get(x, base);
			if (b && !cJSON_IsNull(b))
				finding(c, MB_FIND_MISMATCH, p,
					"beside a value (a reason goes only beside a null)");
		}
		check_reasons(c, p, e, depth + 1);
	}
}

/* ---- the world, the configuration, the device, the run ---- */

/* world.nodes and ranks_per_node from node_of_rank: nodes are numbered
 * 0, 1, ... in the order of their lowest rank (harness/world.c). */
static void read_world(ck *c, const cJSON *root)
{
	const cJSON *w = get(root, "world"), *map = get(w, "node_of_rank"), *e;
	const double size = num(w, "size");
	if (!is_whole(size, 1, 1 << 24)) {
		if (!isnan(size))
			finding(c, MB_FIND_MISMATCH, "world.size", "%g is not a rank count in 1..2^24",
				size);
		return;
	}
	c->ws = (int)size;
	const cJSON *hosts = get(w, "hosts");
	if (cJSON_IsArray(hosts) && cJSON_GetArraySize(hosts) != c->ws)
		finding(c, MB_FIND_MISMATCH, "world.hosts", "%d entries, world.size %d",
			cJSON_GetArraySize(hosts), c->ws);
	else if (cJSON_IsArray(hosts))
		c->hosts = hosts;
	if (!cJSON_IsArray(map))
		return;
	if (cJSON_GetArraySize(map) != c->ws) {
		finding(c, MB_FIND_MISMATCH, "world.node_of_rank", "%d entries, world.size %d",
			cJSON_GetArraySize(map), c->ws);
		return;
	}
	int *node = malloc((size_t)c->ws * sizeof *node), *count = calloc((size_t)c->ws, sizeof *count);
	if (!node || !count) {
		c->nomem = 1;
		free(node), free(count);
		return;
	}
	int i = 0, nodes = 0, most = 0, ok = 1;
	cJSON_ArrayForEach(e, map)
	{
		const double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
		if (!is_whole(v, 0, nodes)) { /* the next new node is number `nodes` */
			char p[PATHN];
			snprintf(p, sizeof p, "world.node_of_rank[%d]", i);
			finding(c, MB_FIND_MISMATCH, p, "node %g: nodes are numbered 0, 1, ... in the "
							"order of their lowest rank", v);
			ok = 0;
			break;
		}
		node[i++] = (int)v;
		nodes += (int)v == nodes;
		most = ++count[(int)v] > most ? count[(int)v] : most;
	}
	free(count);
	if (!ok) {
		free(node);
		return;
	}
	c->node_of = node;
	c->nodes = nodes;
	cmp(c, "world", w, "nodes", nodes, 0);
	cmp(c, "world", w, "ranks_per_node", most, 0);
}

static void read_config(ck *c, const cJSON *root)
{
	const cJSON *cfg = get(root, "config"), *dev = cJSON_GetArrayItem(get(root, "devices"), 0);
	const double iters = num(cfg, "iters"), seed = num(cfg, "seed");
	if (is_whole(iters, 1, 1e9))
		c->iters = (int)iters;
	else if (!isnan(iters))
		finding(c, MB_FIND_MISMATCH, "config.iters", "%g is not a count of iterations", iters);
	if (is_whole(seed, 0, EXACT_INT)) {
		c->seed = (uint64_t)seed;
		c->seed_ok = 1;
	}
	if (!cJSON_IsObject(dev))
		return;
	c->dev_name = str(dev, "name");
	c->dev_kind = str(dev, "kind");
	const char *be = str(dev, "backend"), *cbe = str(cfg, "backend"), *fault;
	char a[64], b[64];
	if (be && cbe && strcmp(be, cbe))
		finding(c, MB_FIND_MISMATCH, "devices[0].backend", "'%s', config.backend '%s'",
			clean(be, a, sizeof a), clean(cbe, b, sizeof b));
	if ((fault = str(dev, "fault_injected")))
		finding(c, MB_FIND_NOTE, "devices[0].fault_injected",
			"the '%s' op's output was corrupted on purpose (MOEBENCH_FAULT): not a "
			"measurement", clean(fault, a, sizeof a));
}

static void check_run(ck *c, const cJSON *root)
{
	const char *status = str(root, "status"), *why = str(root, "status_reason");
	if (!status || !why)
		return;
	if (!strcmp(status, "complete") && *why)
		finding(c, MB_FIND_MISMATCH, "status_reason", "not empty, but status is complete");
	else if (strcmp(status, "complete") && !*why)
		finding(c, MB_FIND_MISMATCH, "status_reason", "empty, but status is %s",
			!strcmp(status, "failed") ? "failed" : "interrupted");
	if (!strcmp(status, "complete") && !str(root, "end_time"))
		finding(c, MB_FIND_MISMATCH, "end_time", "null, but status is complete");
}

/* ---- statistics (SCHEMA.md "Percentiles"; written independently of
 * harness/stats.c from that text) ---- */

typedef struct ck_stats {
	double min, max, mean, stdev, cv_pct, ci_lo, ci_hi;
	double p[3];
	int p_exact[3]; /* the percentile is one sample (no interpolation) */
	int covers;
} ck_stats;

static int cmp_dbl(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int stats_of(const double *x, int n, ck_stats *s)
{
	static const double q[3] = {0.50, 0.95, 0.99};
	double *o = malloc((size_t)n * sizeof *o);
	if (!o)
		return MB_ERR_NOMEM;
	memcpy(o, x, (size_t)n * sizeof *o);
	qsort(o, (size_t)n, sizeof *o, cmp_dbl);
	s->min = o[0];
	s->max = o[n - 1];
	for (int k = 0; k < 3; k++) { /* type 7: h = (n - 1) q, between o[floor h] and the next */
		const double h = (n - 1) * q[k];
		const int lo = (int)floor(h);
		s->p_exact[k] = h == lo || lo >= n - 1;
		s->p[k] = lo >= n - 1 ? o[n - 1] : o[lo] + (h - lo) * (o[lo + 1] - o[lo]);
	}
	double sum = 0, ss = 0;
	for (int i = 0; i < n; i++)
		sum += x[i];
	s->mean = sum / n;
	for (int i = 0; i < n; i++)
		ss += (x[i] - s->mean) * (x[i] - s->mean);
	s->stdev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
	s->cv_pct = s->mean != 0 ? 100.0 * s->stdev / s->mean : 0.0;
	/* ranks floor(n/2 - 0.98 sqrt n) and ceil(1 + n/2 + 0.98 sqrt n), 1-based */
	const double half = 0.98 * sqrt((double)n);
	int lo = (int)floor(n / 2.0 - half), hi = (int)ceil(1 + n / 2.0 + half);
	s->covers = lo >= 1 && hi <= n;
	s->ci_lo = o[(lo < 1 ? 1 : lo) - 1];
	s->ci_hi = o[(hi > n ? n : hi) - 1];
	free(o);
	return 0;
}

/* The file's value where it agrees with want (within tol), else want: what
 * the next derivation builds on, so that one wrong field is reported once
 * at its source and again only where it was used. */
static double agreed(const cJSON *obj, const char *key, double want, double tol)
{
	const double got = num(obj, key);
	return !isnan(got) && fabs(got - want) <= tol * fmax(fabs(got), fabs(want)) ? got : want;
}

/* Compare stats_s with the samples; *p50 and *min get what the metrics
 * are derived from. */
static void check_stats(ck *c, const char *at, const cJSON *st, const double *x, int n,
			double *p50, double *min)
{
	char p[PATHN], a[PATHN];
	ck_stats s;
	if (stats_of(x, n, &s)) {
		c->nomem = 1;
		return;
	}
	static const char *const pk[3] = {"p50", "p95", "p99"};
	join(p, at, "stats_s");
	cmp(c, p, st, "n", n, 0);
	cmp(c, p, st, "min", s.min, 0);
	cmp(c, p, st, "max", s.max, 0);
	for (int k = 0; k < 3; k++)
		cmp(c, p, st, pk[k], s.p[k], s.p_exact[k] ? 0 : MB_CHECK_REL_TOL);
	cmp(c, p, st, "mean", s.mean, MB_CHECK_REL_TOL);
	cmp(c, p, st, "stdev", s.stdev, MB_CHECK_REL_TOL);
	cmp(c, p, st, "cv_pct", s.cv_pct, MB_CHECK_REL_TOL);
	const cJSON *ci = get(st, "median_ci95"), *cov = get(st, "median_ci_covers_95");
	if (cJSON_IsArray(ci) && cJSON_GetArraySize(ci) != 2) {
		finding(c, MB_FIND_MISMATCH, join(a, p, "median_ci95"), "%d numbers, not [lo, hi]",
			cJSON_GetArraySize(ci));
	} else if (cJSON_IsArray(ci)) {
		const double lohi[2] = {s.ci_lo, s.ci_hi};
		char q[PATHN];
		join(q, p, "median_ci95");
		for (int k = 0; k < 2; k++)
			cmp_item(c, at_idx(a, q, k), cJSON_GetArrayItem(ci, k), lohi[k], 0);
	}
	if (cJSON_IsBool(cov)) {
		c->sum->compared++;
		if (cJSON_IsTrue(cov) != s.covers)
			finding(c, MB_FIND_MISMATCH, join(a, p, "median_ci_covers_95"),
				"file %s, recomputed %s (n = %d)", s.covers ? "false" : "true",
				s.covers ? "true" : "false", n);
	}
	*p50 = agreed(st, "p50", s.p[0], s.p_exact[0] ? 0 : MB_CHECK_REL_TOL);
	*min = agreed(st, "min", s.min, 0);
}

/* ---- one case ---- */

enum { C_FLOPS, C_PALM, C_TOKENS, C_BYTES, C_COMM, C_N };
static const char *const cost_key[C_N] = {"flops", "flops_palm", "tokens", "bytes", "comm_bytes"};

typedef struct ck_case {
	char at[32];          /* "results[3]" */
	const cJSON *x;       /* the case */
	const mb_suite *su;   /* NULL: not in this moebench */
	mb_params p;
	int p_ok;             /* parameters rebuilt, in range and valid */
	int setup_ran;        /* the runner called case_cost and info */
	const char *status;
	double *samples;      /* owned */
	int n;                /* samples; -1: samples_s unusable */
	/* the cost: what the suite declares (known), the file's, and what the
	 * metrics derive from (the file's where it agrees) */
	double want[C_N], tol[C_N], file[C_N], use[C_N];
	int known[C_N];
	double inter;         /* comm_bytes_inter, when inter_known */
	int inter_known;
	int has_cost;         /* cost is an object */
	double p50, min;      /* what the metrics derive from; NAN without samples */
} ck_case;

static const char *errmsg(char *buf, size_t n)
{
	return clean(mb_errmsg(), buf, n);
}

/* results[].params into the suite's own table, every value checked as a
 * user's key=value would be, then the suite's validate and world_fits. */
static void rebuild_params(ck *c, ck_case *k)
{
	const cJSON *params = get(k->x, "params"), *src = get(k->x, "params_source"), *e;
	char p[PATHN], a[PATHN], m[320];
	if (!k->su || !cJSON_IsObject(params))
		return;
	join(p, k->at, "params");
	if (mb_params_init(&k->p, k->su->params, k->su->nparams)) {
		finding(c, MB_FIND_MISMATCH, p, "%s", errmsg(m, sizeof m));
		return;
	}
	int ok = 1;
	for (int i = 0; i < k->p.n; i++) {
		const mb_param_def *d = &k->su->params[i];
		const cJSON *v = get(params, d->name);
		double val = 0;
		int rc;
		join(a, p, d->name);
		if (!v) {
			finding(c, MB_FIND_MISMATCH, a, "missing (suite %s has this parameter)",
				k->su->name);
			ok = 0;
			continue;
		}
		if (d->type == MB_PT_ENUM)
			rc = cJSON_IsString(v)
				     ? mb_param_parse_value(d, v->valuestring, &val)
				     : mb_err(MB_ERR_USAGE, "not a string (one of %s)", d->choices);
		else if (cJSON_IsNumber(v))
			rc = 0, val = v->valuedouble;
		else
			rc = mb_err(MB_ERR_USAGE, "not a number");
		if (!rc)
			rc = mb_params_set(&k->p, d->name, val, MB_SRC_USER);
		if (rc) {
			finding(c, MB_FIND_MISMATCH, a, "%s", errmsg(m, sizeof m));
			ok = 0;
		}
		const char *from = str(src, d->name);
		if (cJSON_IsObject(src) && (!from || !one_of("default|preset|user", from))) {
			char q[PATHN];
			join(q, k->at, "params_source");
			finding(c, MB_FIND_MISMATCH, join(a, q, d->name),
				"missing or not one of default|preset|user");
		}
	}
	cJSON_ArrayForEach(e, params)
	{
		if (e->string && mb_params_find(&k->p, e->string) >= 0)
			continue;
		finding(c, MB_FIND_MISMATCH, join(a, p, e->string ? e->string : ""),
			"suite %s has no such parameter in this moebench", k->su->name);
		ok = 0;
	}
	if (ok && k->su->validate && k->su->validate(&k->p)) {
		finding(c, MB_FIND_MISMATCH, p, "%s", errmsg(m, sizeof m));
		ok = 0;
	}
	if (ok && c->ws && k->su->world_fits && k->su->world_fits(&k->p, c->ws)) {
		finding(c, MB_FIND_MISMATCH, p, "%s", errmsg(m, sizeof m));
		ok = 0;
	}
	k->p_ok = ok;
}

/* gmm with ep > 1: the FLOPs count the rows the group's router sent this
 * device, known after setup (info.pairs): 18 x pairs x hidden x ffn
 * (suites/gmm.c gmm_cost_of). */
static void gmm_recv_cost(ck *c, ck_case *k)
{
	char p[PATHN];
	if (!k->setup_ran)
		return; /* cost() said NAN: null, as written */
	const double pairs = num(get(k->x, "info"), "pairs");
	join(p, k->at, "info.pairs");
	if (!is_whole(pairs, 0, EXACT_INT)) {
		finding(c, MB_FIND_MISMATCH, p, "missing or not a whole number: cost.flops of gmm "
						"with ep > 1 counts these rows");
		k->known[C_FLOPS] = k->known[C_PALM] = 0;
		return;
	}
	k->want[C_FLOPS] = k->want[C_PALM] = 18.0 * pairs * (double)mb_param_int(&k->p, "hidden") *
					     (double)mb_param_int(&k->p, "ffn");
	finding(c, MB_FIND_NOTE, join(p, k->at, "cost.flops"),
		"18 x info.pairs x hidden x ffn; info.pairs (the rows the backend's router sent "
		"this device) is bounded, not recomputed");
}

/* alltoall's count matrix for EP group 0 (rank 0's, which wrote the file),
 * recomputed from the seed, the parameters and world.node_of_rank, and
 * what setup derived from it: case_cost and info (suites/alltoall.c). */
typedef struct a2a_want {
	int n, ep, dp, nodes, per_node, phases, hier;
	mb_a2a_spec s;
	int64_t rb;
	int64_t *m, *need; /* [n][n], hier: [n][nodes] */
} a2a_want;

static int a2a_node(const ck *c, int r)
{
	return c->node_of ? c->node_of[r] : 0;
}

/* Group 0's nodes, node-major with as many ranks on each (a2a_layout). */
static int a2a_layout_of(const ck *c, a2a_want *w)
{
	int run = 1, ok = 1;
	w->nodes = 1;
	w->per_node = w->n;
	for (int i = 1; i < w->n && ok; i++) {
		const int a = a2a_node(c, i - 1), b = a2a_node(c, i);
		if (a == b) {
			run++;
			continue;
		}
		if (w->nodes == 1)
			w->per_node = run;
		ok = b > a && run == w->per_node;
		w->nodes++;
		run = 1;
	}
	if (w->nodes > 1 && (!ok || run != w->per_node)) {
		if (w->hier)
			return -1;
		w->per_node = 0;
	}
	return 0;
}

/* Router scores and matrix cells the recomputation costs (alltoall.h). */
static double a2a_work(const a2a_want *w)
{
	double work = (double)w->n * w->n;
	if (w->s.mode == MB_A2A_MOE) {
		const double E = (double)w->s.experts;
		work += (double)w->n * (double)w->s.tokens * E;
		if (w->s.skew > 0)
			work += 40 * fmin(fmax(64, floor(2097152.0 / E)), (double)w->s.tokens) * E;
	}
	return work;
}

static const char *a2a_prepare(ck *c, ck_case *k, a2a_want *w, char *why, size_t n)
{
	char buf[24];
	w->ep = (int)mb_param_int(&k->p, "ep");
	w->dp = (int)mb_param_int(&k->p, "dp");
	w->hier = !strcmp(mb_param_choice(&k->p, "algo", buf, sizeof buf), "hier");
	w->phases = !strcmp(mb_param_choice(&k->p, "phase", buf, sizeof buf), "dispatch") ? 1 : 2;
	if (!c->ws || (c->ws > 1 && !c->node_of))
		return "world.size or world.node_of_rank is unusable";
	if (!c->seed_ok)
		return "config.seed is above 2^53 and did not read back exactly";
	if (mb_group_sizes("alltoall", c->ws, &w->ep, &w->dp) ||
	    mb_a2a_spec_get(&k->p, c->seed, &w->s, &w->rb))
		return "the parameters do not fit the world"; /* reported by world_fits */
	w->n = w->ep;
	if (a2a_layout_of(c, w))
		return "algo=hier on an uneven node layout (setup refuses it)";
	if ((double)w->n * w->n > (double)(1 << 22)) {
		snprintf(why, n, "an EP group of %d ranks needs a %d x %d matrix", w->n, w->n, w->n);
		return why;
	}
	if (!(a2a_work(w) <= c->o->route_limit)) {
		snprintf(why, n, "routing %.3g router scores is over the budget of %.3g "
				 "(moebench check --route-limit)", a2a_work(w), c->o->route_limit);
		return why;
	}
	return NULL;
}

static void a2a_check_info(ck *c, ck_case *k, const a2a_want *w, const double *t)
{
	/* t: rows, self rows, recv max (a2a_sum) */
	const cJSON *info = get(k->x, "info");
	char p[PATHN];
	if (!cJSON_IsObject(info) || !cJSON_GetArraySize(info))
		return;
	const double n = w->n, mean = t[0] / n;
	const struct {
		const char *key;
		double v;
	} want[] = {
		{"ranks", n}, {"ep", w->ep}, {"dp", w->dp}, {"nodes", w->nodes},
		{"busbw_factor", (n - 1) / n}, {"row_bytes", (double)w->rb}, {"phases", w->phases},
		{"send_bytes", k->want[C_BYTES]}, {"send_bytes_to_others", k->want[C_COMM]},
		{"send_bytes_across_nodes", k->inter}, {"recv_rows_max", t[2]},
		{"recv_rows_mean", mean}, {"imbalance", mean > 0 ? t[2] / mean : 1.0},
		{"self_rows_fraction", t[0] > 0 ? t[1] / t[0] : 0.0},
	};
	join(p, k->at, "info");
	for (size_t i = 0; i < MB_ARRAY_LEN(want); i++)
		cmp(c, p, info, want[i].key, want[i].v, 0);
	if (w->s.mode == MB_A2A_MOE)
		cmp(c, p, info, "experts_per_rank", (double)(w->s.experts / w->n), 0);
}

static void a2a_cost(ck *c, ck_case *k)
{
	a2a_want w = {0};
	char why[160], p[PATHN];
	k->tol[C_BYTES] = MB_CHECK_REL_TOL; /* the mean over ranks, as cost() counts it */
	k->known[C_COMM] = 0;
	const char *no = a2a_prepare(c, k, &w, why, sizeof why);
	if (no) {
		finding(c, MB_FIND_NOTE, join(p, k->at, "cost.comm_bytes"),
			"the bytes to other ranks come from the routing, not recomputed: %s", no);
		return;
	}
	const size_t n = (size_t)w.n;
	w.m = malloc(n * n * sizeof *w.m);
	w.need = w.hier ? malloc(n * (size_t)w.nodes * sizeof *w.need) : NULL;
	if (!w.m || (w.hier && !w.need)) {
		c->nomem = 1;
		goto out;
	}
	if (mb_a2a_group_matrix(&w.s, 0, w.n, w.nodes, w.m, w.need)) {
		char m[320];
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "params"),
			"the exchange's counts cannot be recomputed: %s", errmsg(m, sizeof m));
		goto out;
	}
	/* a2a_sum: integer counts, so every sum is exact in any order */
	double rows = 0, self = 0, inter = 0, recv_max = 0, moved, moved_inter;
	for (size_t dst = 0; dst < n; dst++) {
		double recv = 0;
		for (size_t src = 0; src < n; src++) {
			recv += (double)w.m[src * n + dst];
			if (a2a_node(c, (int)src) != a2a_node(c, (int)dst))
				inter += (double)w.m[src * n + dst];
		}
		rows += recv;
		self += (double)w.m[dst * n + dst];
		recv_max = recv > recv_max ? recv : recv_max;
	}
	moved = rows - self;
	moved_inter = inter;
	if (w.hier) { /* stage 1 sends need[][] across nodes, stage 2 forwards inside */
		moved = moved_inter = 0;
		for (size_t src = 0; src < n; src++)
			for (int m = 0; m < w.nodes; m++)
				if (m != (int)src / w.per_node)
					moved_inter += (double)w.need[src * (size_t)w.nodes + m];
		for (size_t src = 0; src < n; src++)
			for (size_t dst = 0; dst < n; dst++)
				if ((int)dst % w.per_node != (int)src % w.per_node)
					moved += (double)w.m[src * n + dst];
		moved += moved_inter;
	}
	const double per = w.phases * (double)w.rb / w.n; /* a2a_cost_of: means per rank */
	k->want[C_BYTES] = rows * per;
	k->want[C_COMM] = moved * per;
	k->inter = moved_inter * per;
	k->tol[C_BYTES] = 0;
	k->known[C_COMM] = k->inter_known = 1;
	a2a_check_info(c, k, &w, (const double[]){rows, self, recv_max});
out:
	free(w.m);
	free(w.need);
}

/* What the suite declares for the file's parameters, against cost{}. */
static void check_cost(ck *c, ck_case *k)
{
	char p[PATHN], m[320];
	const cJSON *co = get(k->x, "cost");
	mb_cost d;
	for (int f = 0; f < C_N; f++)
		k->file[f] = k->use[f] = num(co, cost_key[f]);
	k->has_cost = cJSON_IsObject(co);
	if (!k->p_ok)
		return;
	if (k->su->cost(&k->p, &d)) {
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "params"),
			"the suite's cost refuses them: %s", errmsg(m, sizeof m));
		return;
	}
	const double v[C_N] = {d.flops, d.flops_palm, d.tokens, d.bytes, d.comm_bytes};
	for (int f = 0; f < C_N; f++) {
		k->want[f] = v[f];
		k->known[f] = 1;
		k->tol[f] = f == C_FLOPS || f == C_PALM ? MB_CHECK_REL_TOL : 0; /* sums of products */
	}
	if (!strcmp(k->su->name, "gmm") && mb_param_int(&k->p, "ep") > 1)
		gmm_recv_cost(c, k);
	else if (!strcmp(k->su->name, "alltoall") && k->setup_ran)
		a2a_cost(c, k);
	else if (k->su->case_cost && k->setup_ran) {
		for (int f = 0; f < C_N; f++)
			k->known[f] = 0;
		finding(c, MB_FIND_NOTE, join(p, k->at, "cost"), "suite %s declares its cost after "
			"setup: not recomputed", k->su->name);
	}
	if (cJSON_IsNull(co)) {
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "cost"), "file null, recomputed an object "
			"(the suite's cost accepts these parameters)");
		return;
	}
	join(p, k->at, "cost");
	for (int f = 0; f < C_N; f++) {
		if (!k->known[f])
			continue;
		cmp(c, p, co, cost_key[f], k->want[f], k->tol[f]);
		k->use[f] = agreed(co, cost_key[f], k->want[f], k->tol[f]);
		if (isnan(k->want[f]))
			k->use[f] = NAN;
	}
	if (!k->known[C_COMM] && k->file[C_COMM] > k->file[C_BYTES])
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "cost.comm_bytes"),
			"more than cost.bytes: the bytes to other ranks are part of those sent");
}

static double per_s(double amount, double seconds, double scale)
{
	return amount > 0 && seconds > 0 ? amount / seconds / scale : NAN;
}

/* The element type MFU is taken for: the dtype parameter, fp32 without one
 * (harness/cost.c mb_case_dtype). */
static mb_dtype case_dtype(const ck_case *k)
{
	mb_dtype dt = MB_FP32;
	const char *s = str(get(k->x, "params"), "dtype");
	if (!s || mb_dtype_parse(s, &dt))
		dt = MB_FP32;
	return dt;
}

/* MFU and its peak: the figure hardware/specs publishes for the device the
 * file names, and mfu_pct = 100 x tflops / that figure. */
static void check_mfu(ck *c, ck_case *k, const cJSON *m, double tflops)
{
	char p[PATHN], a[PATHN], s[80];
	const mb_dtype dt = case_dtype(k);
	const mb_spec *spec = mb_spec_find(c->dev_name ? c->dev_name : "");
	const double pk_want = mb_spec_peak_tflops(spec, dt, NULL);
	const cJSON *peak = get(m, "peak");
	const char *kind = str(peak, "kind");
	double pk = pk_want;
	join(p, k->at, "metrics");
	if (kind && strcmp(kind, "published")) {
		pk = num(peak, "tflops");
		finding(c, MB_FIND_NOTE, join(a, p, "peak"), "kind '%s': not a hardware/specs figure, "
			"not re-derived; mfu_pct is checked against it", clean(kind, s, sizeof s));
	} else if (cJSON_IsObject(peak)) {
		cmp(c, join(a, p, "peak"), peak, "tflops", pk_want, 0);
		pk = agreed(peak, "tflops", pk_want, 0);
		const char *dn = str(peak, "dtype"), *dev = str(peak, "device");
		if (dn && strcmp(dn, mb_dtype_name(dt)))
			finding(c, MB_FIND_MISMATCH, join(a, p, "peak.dtype"), "file '%s', recomputed "
				"'%s' (the case's dtype)", clean(dn, s, sizeof s), mb_dtype_name(dt));
		if (dev && spec && strcmp(dev, spec->name))
			finding(c, MB_FIND_MISMATCH, join(a, p, "peak.device"), "file '%s', recomputed "
				"'%s' (hardware/specs)", clean(dev, s, sizeof s), spec->name);
	} else if (cJSON_IsNull(peak) && !isnan(pk_want)) {
		c->sum->compared++;
		finding(c, MB_FIND_MISMATCH, join(a, p, "peak"), "file null, recomputed %g TFLOP/s "
			"(hardware/specs: %s, %s)", pk_want, spec->name, mb_dtype_name(dt));
	}
	cmp(c, p, m, "mfu_pct", isnan(tflops) || isnan(pk) ? NAN : 100 * tflops / pk, 0);
	/* beside it: the CPU's computed peak and the measured ceiling, found
	 * on the host at run time, so only the division is re-derived */
	static const char *const other[2][3] = {
		{"mfu_computed_pct", "computed_peak", "the peak computed from the cores, clock and "
						      "vector units detected on the host"},
		{"mfu_measured_pct", "measured_peak", "the matmul ceiling of the calibration file "
						      "named in source"}};
	for (int i = 0; i < 2; i++) {
		const cJSON *op = get(m, other[i][1]);
		const double opk = num(op, "tflops");
		const char *dn = str(op, "dtype");
		if (dn && strcmp(dn, mb_dtype_name(dt)))
			finding(c, MB_FIND_MISMATCH, join(a, join(a, p, other[i][1]), "dtype"),
				"file '%s', recomputed '%s' (the case's dtype)", clean(dn, s, sizeof s),
				mb_dtype_name(dt));
		if (cJSON_IsObject(op) && !(c->noted & (1 << i))) {
			c->noted |= 1 << i;
			finding(c, MB_FIND_NOTE, join(a, p, other[i][1]),
				"%s: not re-derived (this note once per file); %s is checked "
				"against it", other[i][2], other[i][0]);
		}
		cmp(c, p, m, other[i][0], isnan(tflops) || isnan(opk) ? NAN : 100 * tflops / opk, 0);
	}
}

/* harness/cost.c mb_metrics_derive, from the cost and the median. */
static void check_metrics(ck *c, ck_case *k)
{
	char p[PATHN];
	const cJSON *m = get(k->x, "metrics");
	join(p, k->at, "metrics");
	if (!k->has_cost || k->n <= 0) {
		if (cJSON_IsObject(m))
			finding(c, MB_FIND_MISMATCH, p, "file an object, recomputed null (%s)",
				k->has_cost ? "no samples" : "cost is null");
		return;
	}
	if (!cJSON_IsObject(m)) {
		if (cJSON_IsNull(m))
			finding(c, MB_FIND_MISMATCH, p, "file null, recomputed an object (the case has "
				"a cost and samples)");
		return;
	}
	const double *u = k->use, t = k->p50;
	const double tflops = per_s(u[C_FLOPS], t, 1e12), gbps = per_s(u[C_BYTES], t, 1e9);
	cmp(c, p, m, "tflops", tflops, 0);
	cmp(c, p, m, "tflops_best", per_s(u[C_FLOPS], k->min, 1e12), 0);
	cmp(c, p, m, "tflops_palm", per_s(u[C_PALM], t, 1e12), 0);
	cmp(c, p, m, "tokens_per_s", per_s(u[C_TOKENS], t, 1.0), 0);
	cmp(c, p, m, "gbps", gbps, 0);
	if (c->ws) /* nccl-tests' alltoall bus bandwidth over the world's ranks */
		cmp(c, p, m, "busbw_gbps",
		    u[C_COMM] > 0 ? gbps * (c->ws - 1) / c->ws : NAN, 0);
	cmp(c, p, m, "to_others_gbps", per_s(u[C_COMM], t, 1e9), 0);
	check_mfu(c, k, m, agreed(m, "tflops", tflops, 0));
}

/* With several ranks: every sample is the slowest rank's, so no rank's own
 * median can exceed the file's, and the slowest is the largest. */
static void check_ranks(ck *c, ck_case *k)
{
	char p[PATHN], a[PATHN], s[80];
	const cJSON *r = get(k->x, "ranks"), *meds = get(r, "p50_s"), *e;
	join(p, k->at, "ranks");
	if (c->ws < 2 || k->n <= 0) {
		if (r && c->ws == 1)
			finding(c, MB_FIND_MISMATCH, p, "present, but the run had one rank");
		return;
	}
	if (!r) {
		finding(c, MB_FIND_MISMATCH, p, "missing: a run of %d ranks records each rank's median",
			c->ws);
		return;
	}
	if (!cJSON_IsArray(meds))
		return;
	if (cJSON_GetArraySize(meds) != c->ws) {
		finding(c, MB_FIND_MISMATCH, join(a, p, "p50_s"), "%d entries, world.size %d",
			cJSON_GetArraySize(meds), c->ws);
		return;
	}
	int i = 0, slowest = 0;
	double worst = -INFINITY;
	cJSON_ArrayForEach(e, meds)
	{
		const double v = cJSON_IsNumber(e) ? e->valuedouble : NAN;
		if (v > worst)
			worst = v, slowest = i;
		c->sum->compared++;
		if (v > k->p50 * (1 + MB_CHECK_REL_TOL)) {
			char v1[32], v2[32], q[PATHN];
			finding(c, MB_FIND_MISMATCH, at_idx(a, join(q, p, "p50_s"), i),
				"%s is above stats_s.p50 %s, the median of the slowest rank's times",
				fmt_num(v, v1, sizeof v1), fmt_num(k->p50, v2, sizeof v2));
		}
		i++;
	}
	cmp(c, p, r, "slowest_rank", slowest, 0);
	const cJSON *h = cJSON_GetArrayItem(c->hosts, slowest);
	const char *host = str(r, "slowest_host");
	if (host && cJSON_IsString(h) && h->valuestring && strcmp(host, h->valuestring)) {
		char s2[80];
		finding(c, MB_FIND_MISMATCH, join(a, p, "slowest_host"),
			"file '%s', world.hosts[%d] '%s'", clean(host, s, sizeof s), slowest,
			clean(h->valuestring, s2, sizeof s2));
	}
}

/* interconnect.app (harness/result.c add_interconnect): the case's bytes to
 * other ranks over every rank and timed iteration, split by link class. */
static void check_app(ck *c, ck_case *k)
{
	char p[PATHN];
	const cJSON *app = get(get(k->x, "interconnect"), "app");
	const double comm = k->use[C_COMM];
	join(p, k->at, "interconnect.app");
	if (!(k->has_cost && comm > 0 && k->n > 0) || !c->ws) {
		if (cJSON_IsObject(app) && c->ws)
			finding(c, MB_FIND_MISMATCH, p,
				"file an object, recomputed null (the case sent nothing to other ranks)");
		return;
	}
	if (!cJSON_IsObject(app)) {
		if (cJSON_IsNull(app))
			finding(c, MB_FIND_MISMATCH, p,
				"file null, recomputed an object (cost.comm_bytes %g)", comm);
		return;
	}
	const double N = (double)c->ws * k->n, t = k->p50;
	cmp(c, p, app, "ranks", c->ws, 0);
	cmp(c, p, app, "iterations", k->n, 0);
	cmp(c, p, app, "bytes_to_other_ranks", comm * N, 0);
	if (k->inter_known) {
		const double in = comm - k->inter;
		cmp(c, p, app, "bytes_inside_node", in * N, 0);
		cmp(c, p, app, "bytes_across_nodes", k->inter * N, 0);
		cmp(c, p, app, "inside_node_gbps", t > 0 ? in / t / 1e9 : NAN, 0);
		cmp(c, p, app, "across_nodes_gbps", t > 0 ? k->inter / t / 1e9 : NAN, 0);
		return;
	}
	/* the inter-node share is the suite's, after setup: only consistency */
	const double across = num(app, "bytes_across_nodes"), inter = across / N;
	if (isnan(across))
		return;
	if (c->nodes == 1)
		cmp(c, p, app, "bytes_across_nodes", 0, 0);
	cmp(c, p, app, "bytes_inside_node", (comm - inter) * N, MB_CHECK_REL_TOL);
	cmp(c, p, app, "inside_node_gbps", t > 0 ? (comm - inter) / t / 1e9 : NAN, MB_CHECK_REL_TOL);
	cmp(c, p, app, "across_nodes_gbps", t > 0 ? inter / t / 1e9 : NAN, MB_CHECK_REL_TOL);
}

/* power (harness/result.c add_power): energy per token counts every rank's
 * tokens of every timed iteration. */
static void check_power(ck *c, ck_case *k)
{
	char p[PATHN], a[PATHN];
	const cJSON *pw = get(k->x, "power");
	if (!cJSON_IsObject(pw) || !c->ws || k->n < 0)
		return;
	join(p, k->at, "power");
	const double e = num(pw, "energy_j"), rate = num(pw, "rate_hz"), nodes = num(pw, "nodes");
	const double tokens = k->has_cost ? k->use[C_TOKENS] * c->ws * k->n : 0.0;
	cmp(c, p, pw, "j_per_token", tokens > 0 ? e / tokens : NAN, 0);
	cmp(c, p, pw, "tokens_per_j", tokens > 0 && e > 0 ? tokens / e : NAN, 0);
	if (rate < 1 && cJSON_IsFalse(get(pw, "insufficient")))
		finding(c, MB_FIND_MISMATCH, join(a, p, "insufficient"), "false at %g Hz (below 1 Hz "
			"is insufficient)", rate);
	if (c->nodes && !is_whole(nodes, 1, c->nodes) && !isnan(nodes))
		finding(c, MB_FIND_MISMATCH, join(a, p, "nodes"), "%g nodes summed, world.nodes %d",
			nodes, c->nodes);
}

/* gmm's info (suites/gmm.c gmm_info): rows per local expert and how the
 * group routed; info.pairs is what the FLOPs count. */
static void check_gmm_info(ck *c, ck_case *k)
{
	char p[PATHN], a[PATHN];
	const cJSON *info = get(k->x, "info");
	const double pairs = num(info, "pairs"), mx = num(info, "rows_max"), mn = num(info, "rows_min");
	if (!k->p_ok || !k->setup_ran || isnan(pairs))
		return;
	const int64_t ep = mb_param_int(&k->p, "ep"), E = mb_param_int(&k->p, "experts");
	const double El = (double)(ep > 1 ? E / ep : E), mean = pairs / El;
	const double rows = (double)(mb_param_int(&k->p, "tokens") * mb_param_int(&k->p, "top_k"));
	join(p, k->at, "info");
	if (ep == 1)
		cmp(c, p, info, "pairs", rows, 0); /* dropless: every token's top_k */
	else {
		/* a token sends at most min(top_k, local experts) rows to a device */
		const double k_local = fmin((double)mb_param_int(&k->p, "top_k"), El);
		const double most = (double)ep * (double)mb_param_int(&k->p, "tokens") * k_local;
		const double imb = num(info, "ep_imbalance");
		c->sum->compared++;
		if (pairs > most)
			finding(c, MB_FIND_MISMATCH, join(a, p, "pairs"),
				"%.0f, more than the %.0f rows an EP group of %lld can send one device",
				pairs, most, (long long)ep);
		cmp(c, p, info, "rows_received_mean", rows, 0);
		cmp(c, p, info, "ep_rank", 0, 0); /* rank 0 wrote the file: slice 0 */
		if (!isnan(imb) && (imb < 1 || imb * rows < pairs * (1 - MB_CHECK_REL_TOL)))
			finding(c, MB_FIND_MISMATCH, join(a, p, "ep_imbalance"),
				"%g: the most loaded device receives at least the mean and this "
				"device's %.0f rows", imb, pairs);
	}
	cmp(c, p, info, "rows_mean", mean, 0);
	if (!isnan(mx))
		cmp(c, p, info, "imbalance", mean > 0 ? mx / mean : 0.0, 0);
	const int none = c->dev_kind && !strcmp(c->dev_kind, "none"); /* computes no offsets */
	if (!none && !isnan(mx) && !isnan(mn) && (mn > mean || mx < mean || mx > pairs))
		finding(c, MB_FIND_MISMATCH, join(a, p, "rows_max"), "rows_min %g, rows_mean %g, "
			"rows_max %g and pairs %g do not order", mn, mean, mx, pairs);
}

/* Status against the check and the samples (harness/runner.c run_case). */
static void check_status(ck *c, ck_case *k)
{
	char p[PATHN];
	const cJSON *chk = get(k->x, "check");
	const char *reason = str(k->x, "reason"), *s = k->status;
	const int none = c->dev_kind && !strcmp(c->dev_kind, "none");
	const double bad = num(chk, "mismatched"), nonfinite = num(chk, "nonfinite");
	join(p, k->at, "status");
	if (!s || !reason)
		return;
	if (cJSON_IsTrue(get(chk, "passed")) && (bad > 0 || nonfinite > 0))
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "check.passed"), "true with %g mismatched "
			"and %g non-finite values", bad, nonfinite);
	join(p, k->at, "status");
	if (!strcmp(s, "ok")) {
		if (!cJSON_IsTrue(get(chk, "passed")))
			finding(c, MB_FIND_MISMATCH, p, "ok, but check.passed is not true");
		if (*reason)
			finding(c, MB_FIND_MISMATCH, p, "ok, but reason is not empty");
		if (k->n == 0)
			finding(c, MB_FIND_MISMATCH, p, "ok, but samples_s is empty");
		if (none)
			finding(c, MB_FIND_MISMATCH, p, "ok on a device of kind none (the null backend "
				"computes nothing)");
	} else if (!strcmp(s, "invalid")) {
		if (cJSON_IsTrue(get(chk, "passed")))
			finding(c, MB_FIND_MISMATCH, p, "invalid, but check.passed is true");
		else if (cJSON_IsNull(chk) && !none)
			finding(c, MB_FIND_MISMATCH, p, "invalid without a check, on a device that is "
				"not the null backend's");
	} else if (!strcmp(s, "skipped") && k->n > 0) {
		finding(c, MB_FIND_MISMATCH, p, "skipped, but it has samples");
	}
	if (strcmp(s, "ok") && !*reason)
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "reason"), "empty, but status is %s",
			!strcmp(s, "invalid") ? "invalid" : !strcmp(s, "error") ? "error" : "skipped");
	if (none && cJSON_IsObject(chk))
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "check"), "present, but the null backend "
			"computes nothing to check");
}

/* samples_s as doubles (k->n = -1 when an element is not a number: the
 * schema pass said which), then stats_s against them. */
static void check_samples(ck *c, ck_case *k)
{
	char p[PATHN];
	const cJSON *xs = get(k->x, "samples_s"), *st = get(k->x, "stats_s"), *e;
	k->n = -1;
	k->p50 = k->min = NAN;
	if (!cJSON_IsArray(xs))
		return;
	const int n = cJSON_GetArraySize(xs);
	if (n > 0 && !(k->samples = malloc((size_t)n * sizeof *k->samples))) {
		c->nomem = 1;
		return;
	}
	int i = 0;
	cJSON_ArrayForEach(e, xs)
	{
		if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
			return;
		k->samples[i++] = e->valuedouble;
	}
	k->n = n;
	join(p, k->at, "stats_s");
	if (n == 0) {
		if (cJSON_IsObject(st))
			finding(c, MB_FIND_MISMATCH, p, "file an object, recomputed null (no samples)");
		return;
	}
	if (c->iters && n != c->iters)
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "samples_s"), "%d samples, config.iters %d",
			n, c->iters);
	if (cJSON_IsNull(st)) {
		finding(c, MB_FIND_MISMATCH, join(p, k->at, "stats_s"), "file null, recomputed an "
			"object (%d samples)", n);
		st = NULL;
	}
	check_stats(c, k->at, st, k->samples, n, &k->p50, &k->min);
}

static void check_case(ck *c, int i, const cJSON *x)
{
	ck_case k = {.x = x};
	char p[PATHN], s[80];
	snprintf(k.at, sizeof k.at, "results[%d]", i);
	c->sum->cases++;
	const char *name = str(x, "suite"), *reason = str(x, "reason");
	for (int j = 0; name && j < c->o->nsuites; j++)
		if (!strcmp(c->o->suites[j]->name, name))
			k.su = c->o->suites[j];
	if (name && !k.su)
		finding(c, MB_FIND_MISMATCH, join(p, k.at, "suite"), "no suite '%s' in this moebench: "
			"its parameters and cost cannot be re-derived", clean(name, s, sizeof s));
	k.status = str(x, "status");
	/* setup ran unless the case was skipped or errored in setup */
	const int errored = k.status && !strcmp(k.status, "error");
	k.setup_ran = k.status && (!strcmp(k.status, "ok") || !strcmp(k.status, "invalid") ||
				   (errored && reason && strncmp(reason, "setup", 5)));
	rebuild_params(c, &k);
	check_samples(c, &k);
	check_cost(c, &k);
	if (k.n >= 0) {
		check_metrics(c, &k);
		check_ranks(c, &k);
		check_app(c, &k);
		check_power(c, &k);
	}
	if (k.su && !strcmp(k.su->name, "gmm"))
		check_gmm_info(c, &k);
	check_status(c, &k);
	free(k.samples);
}

int mb_check_result(const cJSON *root, const mb_check_opts *o, mb_check_sum *sum)
{
	ck c = {.o = o, .sum = sum};
	const cJSON *e;
	int i = 0;
	memset(sum, 0, sizeof *sum);
	check_fields(&c, "", root, top_f);
	check_reasons(&c, "system", get(root, "system"), 0);
	check_reasons(&c, "build", get(root, "build"), 0);
	read_world(&c, root);
	read_config(&c, root);
	check_run(&c, root);
	const cJSON *res = get(root, "results");
	if (!cJSON_IsArray(res))
		res = NULL;
	cJSON_ArrayForEach(e, res)
	{
		if (cJSON_IsObject(e))
			check_case(&c, i, e);
		i++;
	}
	free(c.node_of);
	return c.nomem ? mb_err(MB_ERR_NOMEM, "out of memory checking the result") : 0;
}
