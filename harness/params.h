/* params.h: typed parameter tables, key=value parsing and sweeps.
 *
 * A suite declares its parameters in a static const table (name, type,
 * default, range, help). The harness resolves a case's values in this order:
 * table default < model and size preset < key=value on the command line.
 * Numbers accept K/M/G suffixes (powers of 1024 for integers: 4K = 4096;
 * powers of 1000 for reals). A sweep `a..b*f` (geometric) or `a..b+s`
 * (arithmetic) or a list `a,b,c` expands into several cases.
 */
#ifndef MB_PARAMS_H
#define MB_PARAMS_H

#include "mb.h"

#define MB_MAX_PARAMS 24
#define MB_MAX_SWEEP 256

typedef enum { MB_PT_INT, MB_PT_REAL, MB_PT_ENUM } mb_param_type;

typedef struct mb_param_def {
	const char *name;
	mb_param_type type;
	const char *def;     /* default, as the user would type it */
	double min, max;     /* inclusive range (INT, REAL) */
	const char *choices; /* ENUM: "fp32|bf16" */
	const char *help;
} mb_param_def;

/* One case's values. Numbers are stored as doubles (integers up to 2^53);
 * an ENUM's value is the index of its choice. */
typedef struct mb_params {
	const mb_param_def *defs;
	int n;
	double v[MB_MAX_PARAMS];
	unsigned char set_by[MB_MAX_PARAMS]; /* MB_SRC_*: where each value came from */
} mb_params;

enum { MB_SRC_DEFAULT = 0, MB_SRC_PRESET = 1, MB_SRC_USER = 2 };

/* Fill p with the table's defaults. Fails (MB_ERR_INTERNAL) if a default
 * does not parse: a bug in the table. */
int mb_params_init(mb_params *p, const mb_param_def *defs, int n) MB_MUST_CHECK;

/* Index of name in the table, or -1. */
int mb_params_find(const mb_params *p, const char *name);

/* Parse one value for parameter i (no sweeps) and check its range. */
int mb_param_parse_value(const mb_param_def *d, const char *text, double *out) MB_MUST_CHECK;

/* Parse a value or sweep for parameter d into vals (at most max). */
int mb_param_parse_sweep(const mb_param_def *d, const char *text, double *vals, int max,
			 int *count) MB_MUST_CHECK;

/* Set a value by name from the given source, checking type and range. */
int mb_params_set(mb_params *p, const char *name, double v, int src) MB_MUST_CHECK;

/* Getters; name must exist in the table (a bug otherwise: returns 0). */
int64_t mb_param_int(const mb_params *p, const char *name);
double mb_param_real(const mb_params *p, const char *name);
/* An ENUM's choice as text (in a static buffer per call site: copy it). */
const char *mb_param_choice(const mb_params *p, const char *name, char *buf, size_t n);

/* Format value i as the user would type it ("4096", "0.5", "fp32"). */
void mb_param_format(const mb_params *p, int i, char *buf, size_t n);

/* Parse a number with K/M/G suffix; integer says whether to use 1024. */
int mb_parse_number(const char *s, int integer, double *out) MB_MUST_CHECK;

/* Describe a parameter's accepted range: "an integer in 1..65536",
 * "one of fp32|bf16". */
void mb_param_range(const mb_param_def *d, char *buf, size_t n);

#endif
