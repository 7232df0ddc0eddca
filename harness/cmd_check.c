/* cmd_check.c: `moebench check FILE...`: re-derive result files (check.h)
 * and say, one line each, which fields do not match. */
#include "mb.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "result.h"

typedef struct check_out {
	const char *file;
	int verbose;
} check_out;

static void print_finding(void *ctx, mb_find_kind kind, const char *path, const char *msg)
{
	const check_out *o = ctx;
	(void)path;
	if (kind == MB_FIND_MISMATCH)
		printf("%s: %s\n", o->file, msg);
	else if (o->verbose)
		printf("%s: note: %s\n", o->file, msg);
}

static void check_help(void)
{
	printf("usage: moebench check [-v] [--route-limit N] FILE.json [FILE.json ...]\n\n"
	       "Re-derives every result file from its own raw data: the schema (results/SCHEMA.md),\n"
	       "each case's statistics from samples_s, its cost from the recorded parameters and\n"
	       "the suite's FLOP and byte formulas, its metrics from those two, and the facts that\n"
	       "must agree (status and check, per-rank medians, interconnect and power figures).\n"
	       "Prints one line per field that does not match:\n"
	       "  FILE: results[3].metrics.tflops: file 1.234, recomputed 0.617\n"
	       "and a summary line per file.\n\n"
	       "  -v, --verbose       also list what the file does not let us re-derive, and why\n"
	       "      --route-limit N most router scores to spend recomputing an alltoall case's\n"
	       "                      count matrix (default %.0e; 0: never); above it comm_bytes\n"
	       "                      is only bounded\n\n"
	       "exit: 0 every file matches; 1 a field does not; 2 a file cannot be read or is\n"
	       "not a moebench result (one line on stderr naming it).\n",
	       MB_CHECK_ROUTE_LIMIT);
}

/* Check one file: MB_EXIT_OK, MB_EXIT_FAIL (a mismatch) or MB_EXIT_USAGE. */
static int check_file(const mb_registry *reg, const char *path, int verbose, double route_limit)
{
	cJSON *root = NULL;
	fflush(stdout); /* the lines before an error stay before it */
	if (mb_result_load(path, &root))
		return mb_usage_error(MB_EXIT_USAGE, "check: %s", mb_errmsg());
	check_out out = {.file = path, .verbose = verbose};
	mb_check_opts o = {.suites = reg->suites, .nsuites = reg->nsuites,
			   .route_limit = route_limit, .emit = print_finding, .ctx = &out};
	mb_check_sum s;
	int rc = mb_check_result(root, &o, &s);
	cJSON_Delete(root);
	if (rc)
		return mb_usage_error(MB_EXIT_USAGE, "check: %s: %s", path, mb_errmsg());
	char notes[96] = "";
	if (s.notes)
		snprintf(notes, sizeof notes, "; %d not re-derivable%s", s.notes,
			 verbose ? "" : " (-v lists them)");
	if (s.mismatches > 0) {
		if (s.mismatches > MB_CHECK_MAX_SHOWN)
			printf("%s: (%d more not shown)\n", path, s.mismatches - MB_CHECK_MAX_SHOWN);
		printf("%s: MISMATCH: %d finding%s (%d case%s, %ld values recomputed%s)\n", path,
		       s.mismatches, s.mismatches == 1 ? "" : "s", s.cases, s.cases == 1 ? "" : "s",
		       s.compared, notes);
		return MB_EXIT_FAIL;
	}
	printf("%s: ok: %d case%s, %ld values recomputed, all match%s\n", path, s.cases,
	       s.cases == 1 ? "" : "s", s.compared, notes);
	return MB_EXIT_OK;
}

int mb_cmd_check(const mb_registry *reg, int argc, char **argv)
{
	static const struct option opts[] = {{"verbose", no_argument, NULL, 'v'},
					     {"route-limit", required_argument, NULL, 'r'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	int c, verbose = 0;
	double route_limit = MB_CHECK_ROUTE_LIMIT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = 1; break;
		case 'h': check_help(); return MB_EXIT_OK;
		case 'r':
			if (mb_parse_number(optarg, 0, &route_limit) || route_limit < 0)
				return mb_usage_error(MB_EXIT_USAGE, "check: --route-limit '%s' is not a "
						      "number >= 0", optarg);
			break;
		default:
			return mb_usage_error(MB_EXIT_USAGE, "check: unknown option or missing value "
					      "'%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return mb_usage_error(MB_EXIT_USAGE, "check: no result files given (see --help)");
	int code = MB_EXIT_OK;
	for (int i = optind; i < argc; i++) {
		const int rc = check_file(reg, argv[i], verbose, route_limit);
		code = rc == MB_EXIT_USAGE || code == MB_EXIT_USAGE ? MB_EXIT_USAGE
		       : rc ? rc : code;
	}
	return code;
}
