/* main.c: the moebench command. The only file that knows both registries. */
#include "mb.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

static const mb_backend *const backends[] = {&mb_backend_cpu, &mb_backend_null};
static const mb_suite *const suites[] = {&mb_suite_attention, &mb_suite_gmm, &mb_suite_alltoall,
					  &mb_suite_train_step, &mb_suite_gemm};

static const mb_registry registry = {
	.backends = backends,
	.nbackends = (int)MB_ARRAY_LEN(backends),
	.suites = suites,
	.nsuites = (int)MB_ARRAY_LEN(suites),
	.default_suites = "attention,gmm,alltoall,train_step",
};

static const struct {
	const char *name;
	int (*fn)(const mb_registry *reg, int argc, char **argv);
	const char *summary;
} commands[] = {
	{"list", mb_cmd_list, "suites, parameters, backends, model and size presets"},
	{"info", mb_cmd_info, "the system inventory as JSON"},
	{"run", mb_cmd_run, "run suites on a backend and write a result file"},
	{"micro", mb_cmd_micro, "kernel microbenchmarks (Google Benchmark) and measured ceilings"},
	{"report", mb_cmd_report, "Markdown and HTML report of result files, with plots"},
	{"compare", mb_cmd_compare, "compare two result files: regressions, with significance"},
	{"check", mb_cmd_check, "re-derive result files from their samples and formulas"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: moebench <command> [options]   (moebench <command> --help for more)\n\n");
	for (size_t i = 0; i < MB_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nexit codes: 0 all cases ok or skipped; 1 a case invalid or errored;\n"
		   "2 usage or input error; 3 backend or device unavailable;\n"
		   "4 a rank made no progress within --timeout (moebench run --help);\n"
		   "128+N stopped by signal N (the result file stays valid).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return MB_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return MB_EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("moebench %s\n", MB_VERSION);
		return MB_EXIT_OK;
	}
	for (size_t i = 0; i < MB_ARRAY_LEN(commands); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(&registry, argc - 1, argv + 1);
	char names[128] = "";
	for (size_t i = 0; i < MB_ARRAY_LEN(commands); i++)
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
			 commands[i].name);
	return mb_usage_error(MB_EXIT_USAGE, "unknown command '%s' (accepted: %s)", cmd, names);
}
