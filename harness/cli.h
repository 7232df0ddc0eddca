/* cli.h: the subcommands of `moebench` and the registries they share.
 *
 * harness/main.c owns the registries (it is the only file that knows both
 * the suites and the backends) and dispatches to these. Each returns the
 * process exit code (mb.h MB_EXIT_*).
 */
#ifndef MB_CLI_H
#define MB_CLI_H

#include "../suites/suite.h"

typedef struct mb_registry {
	const mb_backend *const *backends;
	int nbackends;
	const mb_suite *const *suites;
	int nsuites;
	const char *default_suites; /* what `run` runs without -s */
} mb_registry;

const mb_backend *mb_registry_backend(const mb_registry *reg, const char *name);
const mb_suite *mb_registry_suite(const mb_registry *reg, const char *name);

int mb_cmd_list(const mb_registry *reg, int argc, char **argv);
int mb_cmd_info(const mb_registry *reg, int argc, char **argv);
int mb_cmd_run(const mb_registry *reg, int argc, char **argv);
int mb_cmd_micro(const mb_registry *reg, int argc, char **argv);
int mb_cmd_report(const mb_registry *reg, int argc, char **argv);
int mb_cmd_compare(const mb_registry *reg, int argc, char **argv);
int mb_cmd_check(const mb_registry *reg, int argc, char **argv);

/* Print "moebench: <msg>" on stderr; returns code. */
int mb_usage_error(int code, const char *fmt, ...) MB_PRINTF(2, 3);

#endif
