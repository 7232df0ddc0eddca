/* cli.c: `moebench list` and `moebench info`, and helpers shared by the
 * subcommands. */
#include "mb.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hardware/net/net.h"
#include "../hardware/power/power.h"
#include "../hardware/specs/specs.h"
#include "cli.h"
#include "result.h"
#include "sysinfo.h"

int mb_usage_error(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("moebench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

const mb_backend *mb_registry_backend(const mb_registry *reg, const char *name)
{
	for (int i = 0; i < reg->nbackends; i++)
		if (!strcmp(reg->backends[i]->name, name))
			return reg->backends[i];
	return NULL;
}

const mb_suite *mb_registry_suite(const mb_registry *reg, const char *name)
{
	for (int i = 0; i < reg->nsuites; i++)
		if (!strcmp(reg->suites[i]->name, name))
			return reg->suites[i];
	return NULL;
}

static void list_suites(const mb_registry *reg)
{
	printf("suites:\n");
	for (int s = 0; s < reg->nsuites; s++) {
		const mb_suite *su = reg->suites[s];
		printf("  %-10s %s\n", su->name, su->summary);
		for (int i = 0; i < su->nparams; i++) {
			const mb_param_def *d = &su->params[i];
			char range[128];
			mb_param_range(d, range, sizeof range);
			printf("      %-12s default %-8s %-30s %s\n", d->name, d->def, range, d->help);
		}
	}
}

static void list_backends(const mb_registry *reg)
{
	printf("\nbackends (compiled in):\n");
	for (int i = 0; i < reg->nbackends; i++) {
		const mb_backend *be = reg->backends[i];
		char why[256] = "";
		int present = be->probe ? be->probe(why, sizeof why) : 0;
		printf("  %-10s %-8s %s (%s)\n", be->name, present ? "present" : "absent",
		       be->summary, why);
	}
}

static void list_models(void)
{
	printf("\nmodel presets (--model):\n");
	printf("  %-16s %6s %6s %6s %7s %6s %5s %-8s %-4s %5s %7s\n", "name", "layers", "hidden",
	       "moeffn", "experts", "shared", "top_k", "score", "attn", "heads", "vocab");
	for (int i = 0; i < mb_model_count; i++) {
		const mb_model *m = &mb_models[i];
		printf("  %-16s %6d %6d %6d %7d %6d %5d %-8s %-4s %5d %7d\n", m->name, m->layers,
		       m->hidden, m->moe_ffn, m->experts, m->shared_experts, m->top_k, m->score,
		       m->attention, m->heads, m->vocab);
	}
	for (int i = 0; i < mb_model_count; i++)
		printf("  %-16s %s; source: %s\n", mb_models[i].name, mb_models[i].summary,
		       mb_models[i].source);
}

static void list_sizes(const mb_registry *reg, const mb_model *m)
{
	printf("\nsize presets (--preset) for model %s (use --model to see another):\n", m->name);
	for (int s = 0; s < reg->nsuites; s++) {
		const mb_suite *su = reg->suites[s];
		for (int z = 0; z < MB_SIZE_COUNT; z++) {
			mb_params p;
			if (mb_params_init(&p, su->params, su->nparams) ||
			    (su->preset && su->preset(m, (mb_size)z, &p)))
				continue;
			printf("  %-10s %-9s", su->name, mb_size_name((mb_size)z));
			for (int i = 0; i < p.n; i++) {
				char buf[64];
				mb_param_format(&p, i, buf, sizeof buf);
				printf(" %s=%s", p.defs[i].name, buf);
			}
			printf("\n");
		}
	}
}

/* The published figures MFU divides by (hardware/specs), each a datasheet
 * or vendor number with its source; "-" where none is published. */
static void list_specs(void)
{
	int n;
	const mb_spec *t = mb_spec_table(&n);
	printf("\npublished peaks (hardware/specs; datasheet figures, not measurements):\n");
	printf("  %-30s %9s %9s %8s %9s %7s\n", "device", "bf16 TF/s", "fp8 TF/s", "mem GB/s",
	       "link GB/s", "TDP W");
	for (int i = 0; i < n; i++) {
		char fp8[16] = "-", mem[16] = "-", link[16] = "-", tdp[16] = "-";
		if (t[i].mem_gbps > 0)
			snprintf(mem, sizeof mem, "%.0f", t[i].mem_gbps);
		if (t[i].fp8_tflops > 0)
			snprintf(fp8, sizeof fp8, "%.1f", t[i].fp8_tflops);
		if (t[i].link_gbps > 0)
			snprintf(link, sizeof link, "%.0f", t[i].link_gbps);
		if (t[i].tdp_w > 0)
			snprintf(tdp, sizeof tdp, "%.0f", t[i].tdp_w);
		printf("  %-30s %9.1f %9s %8s %9s %7s  %s\n", t[i].name, t[i].tflops[MB_BF16], fp8, mem,
		       link, tdp, t[i].link ? t[i].link : "");
	}
	printf("  CPUs: a peak computed from the detected cores, clock and vector units (printed "
	       "by moebench micro;\n  results carry it as metrics.computed_peak)\n");
}

int mb_cmd_list(const mb_registry *reg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *model = "deepseek-v3";
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'm') {
			model = optarg;
		} else if (c == 'h') {
			printf("usage: moebench list [--model NAME]\n\n"
			       "Lists the suites with their parameters (type, default, accepted range),\n"
			       "the backends compiled in and whether a device is present, the model\n"
			       "presets with their shapes, what each size preset sets for the\n"
			       "model given (default deepseek-v3), and the published device peaks.\n");
			return MB_EXIT_OK;
		} else {
			return mb_usage_error(MB_EXIT_USAGE, "list: unknown option '%s' (see --help)",
					      argv[optind - 1]);
		}
	}
	if (optind < argc)
		return mb_usage_error(MB_EXIT_USAGE, "list: unexpected argument '%s'", argv[optind]);
	const mb_model *m = mb_model_find(model);
	if (!m)
		return mb_usage_error(MB_EXIT_USAGE, "unknown model '%s' (see moebench list)", model);
	list_suites(reg);
	list_backends(reg);
	list_models();
	list_sizes(reg, m);
	list_specs();
	return MB_EXIT_OK;
}

/* The power sources as probed (each with why it is unavailable) and the
 * interfaces whose counters a run records. */
static void add_telemetry(cJSON *root, const char *sysfs_root, const char *power_cmd)
{
	mb_power *pw = NULL;
	const mb_power_opts po = {.sysfs_root = sysfs_root, .cmd = power_cmd};
	cJSON *src = mb_power_open(&po, &pw) ? NULL : mb_power_sources_json(pw);
	mb_power_close(pw);
	if (src)
		cJSON_AddItemToObject(root, "power_sources", src);
	else
		cJSON_AddStringToObject(root, "power_sources", mb_errmsg());
	mb_net_snap *snap = NULL;
	cJSON *ifs = mb_net_snapshot(sysfs_root, &snap) ? NULL : mb_net_inventory_json(snap);
	mb_net_snap_free(snap);
	if (ifs)
		cJSON_AddItemToObject(root, "interfaces", ifs);
	else
		cJSON_AddNullToObject(root, "interfaces");
}

int mb_cmd_info(const mb_registry *reg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{"sysfs-root", required_argument, NULL, 'R'},
		{"power-cmd", required_argument, NULL, 'C'},
		{0}};
	const char *out = NULL, *root_dir = NULL, *power_cmd = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if (c == 'o') {
			out = optarg;
		} else if (c == 'R') {
			root_dir = optarg;
		} else if (c == 'C') {
			power_cmd = optarg;
		} else if (c == 'h') {
			printf("usage: moebench info [-o FILE] [--power-cmd CMD] [--sysfs-root DIR]\n\n"
			       "The system inventory (hosts, CPUs, memory, caches, accelerators, NICs),\n"
			       "the build (compiler, flags, library versions), the recorded\n"
			       "environment, every power source with why it is unavailable (the one a\n"
			       "run would use is \"chosen\") and the network interfaces whose counters a\n"
			       "run records, as JSON: to FILE, or to stdout without -o.\n");
			return MB_EXIT_OK;
		} else {
			return mb_usage_error(MB_EXIT_USAGE, "info: unknown option or missing value "
							     "'%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return mb_usage_error(MB_EXIT_USAGE, "info: unexpected argument '%s'", argv[optind]);

	cJSON *root = cJSON_CreateObject();
	cJSON *sys = mb_sysinfo_system(), *build = mb_sysinfo_build(), *env = mb_sysinfo_environment();
	cJSON *bes = cJSON_CreateArray();
	if (!root || !sys || !build || !env || !bes) {
		cJSON_Delete(root), cJSON_Delete(sys), cJSON_Delete(build), cJSON_Delete(env),
			cJSON_Delete(bes);
		return mb_usage_error(MB_EXIT_FAIL, "out of memory building the inventory");
	}
	cJSON_AddStringToObject(root, "schema", "moebench.info/1");
	cJSON_AddItemToObject(root, "system", sys);
	cJSON_AddItemToObject(root, "build", build);
	cJSON_AddItemToObject(root, "environment", env);
	for (int i = 0; i < reg->nbackends; i++) {
		char why[256] = "";
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "name", reg->backends[i]->name);
		cJSON_AddBoolToObject(b, "present", reg->backends[i]->probe(why, sizeof why));
		cJSON_AddStringToObject(b, "reason", why);
		cJSON_AddItemToArray(bes, b);
	}
	cJSON_AddItemToObject(root, "backends", bes);
	add_telemetry(root, root_dir, power_cmd);
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return mb_usage_error(MB_EXIT_FAIL, "out of memory printing the inventory");
	int code = MB_EXIT_OK;
	if (!out) {
		puts(text);
	} else if (mb_write_atomic(out, text, strlen(text))) {
		code = mb_usage_error(MB_EXIT_USAGE, "info: %s", mb_errmsg());
	}
	cJSON_free(text);
	return code;
}
