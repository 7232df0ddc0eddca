/* params.c: parameter tables, values with K/M/G suffixes, and sweeps. */
#include "mb.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

#define INT_LIMIT 9007199254740992.0 /* 2^53: integers stored in a double */

int mb_parse_number(const char *s, int integer, double *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return mb_err(MB_ERR_USAGE, "empty number");
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno == ERANGE || !isfinite(v))
		return mb_err(MB_ERR_USAGE, "'%s' is not a number", s);
	/* strtod accepts hex floats and "infinity"; only plain decimals here. */
	for (const char *c = s; c < end; c++)
		if (!(isdigit((unsigned char)*c) || *c == '.' || *c == '-' || *c == '+' || *c == 'e' ||
		      *c == 'E'))
			return mb_err(MB_ERR_USAGE, "'%s' is not a decimal number", s);
	double mul = 1;
	if (*end) {
		double base = integer ? 1024.0 : 1000.0;
		switch (*end) {
		case 'k': case 'K': mul = base; break;
		case 'm': case 'M': mul = base * base; break;
		case 'g': case 'G': mul = base * base * base; break;
		default: return mb_err(MB_ERR_USAGE, "'%s' has an unknown suffix (accepted: K, M, G)", s);
		}
		if (end[1])
			return mb_err(MB_ERR_USAGE, "'%s' has trailing characters after the suffix", s);
	}
	v *= mul;
	if (integer) {
		if (v != floor(v))
			return mb_err(MB_ERR_USAGE, "'%s' is not an integer", s);
		if (fabs(v) > INT_LIMIT)
			return mb_err(MB_ERR_USAGE, "'%s' is too large", s);
	}
	*out = v;
	return 0;
}

void mb_param_range(const mb_param_def *d, char *buf, size_t n)
{
	switch (d->type) {
	case MB_PT_INT:
		snprintf(buf, n, "an integer in %.0f..%.0f", d->min, d->max);
		break;
	case MB_PT_REAL:
		snprintf(buf, n, "a number in %g..%g", d->min, d->max);
		break;
	case MB_PT_ENUM:
		snprintf(buf, n, "one of %s", d->choices);
		break;
	}
}

static int enum_index(const char *choices, const char *text)
{
	size_t len = strlen(text);
	int idx = 0;
	for (const char *c = choices; *c; idx++) {
		const char *bar = strchr(c, '|');
		size_t clen = bar ? (size_t)(bar - c) : strlen(c);
		if (clen == len && strncmp(c, text, len) == 0)
			return idx;
		if (!bar)
			break;
		c = bar + 1;
	}
	return -1;
}

static int range_error(const mb_param_def *d, const char *text)
{
	char range[128];
	mb_param_range(d, range, sizeof range);
	return mb_err(MB_ERR_USAGE, "parameter %s: '%s' is out of range (accepted: %s)", d->name, text,
		      range);
}

int mb_param_parse_value(const mb_param_def *d, const char *text, double *out)
{
	if (d->type == MB_PT_ENUM) {
		int i = enum_index(d->choices, text);
		if (i < 0)
			return range_error(d, text);
		*out = i;
		return 0;
	}
	double v;
	if (mb_parse_number(text, d->type == MB_PT_INT, &v)) {
		char range[128];
		mb_param_range(d, range, sizeof range);
		return mb_err(MB_ERR_USAGE, "parameter %s: %s (accepted: %s)", d->name, mb_errmsg(),
			      range);
	}
	if (v < d->min || v > d->max)
		return range_error(d, text);
	*out = v;
	return 0;
}

/* One item of a list: a value, or lo..hi*f (geometric) or lo..hi+s. */
static int parse_item(const mb_param_def *d, const char *item, double *vals, int max, int *count)
{
	const char *dots = d->type == MB_PT_ENUM ? NULL : strstr(item, "..");
	if (!dots) {
		if (*count >= max)
			return mb_err(MB_ERR_USAGE, "parameter %s: more than %d values", d->name, max);
		return mb_param_parse_value(d, item, &vals[(*count)++]);
	}
	char lo_s[64], hi_s[64], step_s[64];
	size_t lo_len = (size_t)(dots - item);
	const char *rest = dots + 2;
	const char *op = strpbrk(rest, "*+");
	if (!op || lo_len == 0 || lo_len >= sizeof lo_s || (size_t)(op - rest) >= sizeof hi_s ||
	    strlen(op + 1) >= sizeof step_s || op == rest || !op[1])
		return mb_err(MB_ERR_USAGE,
			      "parameter %s: bad sweep '%s' (accepted: LO..HI*FACTOR or LO..HI+STEP)",
			      d->name, item);
	memcpy(lo_s, item, lo_len);
	lo_s[lo_len] = '\0';
	memcpy(hi_s, rest, (size_t)(op - rest));
	hi_s[op - rest] = '\0';
	strcpy(step_s, op + 1);
	double lo, hi, step;
	int rc = mb_param_parse_value(d, lo_s, &lo);
	if (!rc)
		rc = mb_param_parse_value(d, hi_s, &hi);
	if (rc)
		return rc;
	if (mb_parse_number(step_s, d->type == MB_PT_INT && *op == '+', &step))
		return mb_err(MB_ERR_USAGE, "parameter %s: bad sweep step '%s'", d->name, step_s);
	if (hi < lo)
		return mb_err(MB_ERR_USAGE, "parameter %s: sweep '%s' ends below its start", d->name,
			      item);
	if ((*op == '*' && !(step > 1)) || (*op == '+' && !(step > 0)))
		return mb_err(MB_ERR_USAGE,
			      "parameter %s: sweep step '%s' must grow (factor > 1, step > 0)",
			      d->name, step_s);
	for (double v = lo; v <= hi * (1 + 1e-12); v = *op == '*' ? v * step : v + step) {
		if (*count >= max)
			return mb_err(MB_ERR_USAGE, "parameter %s: sweep '%s' has more than %d values",
				      d->name, item, max);
		double x = d->type == MB_PT_INT ? floor(v + 0.5) : v;
		vals[(*count)++] = x;
	}
	return 0;
}

int mb_param_parse_sweep(const mb_param_def *d, const char *text, double *vals, int max, int *count)
{
	*count = 0;
	size_t len = strlen(text);
	if (len == 0)
		return mb_err(MB_ERR_USAGE, "parameter %s: empty value", d->name);
	if (len >= 1024)
		return mb_err(MB_ERR_USAGE, "parameter %s: value too long", d->name);
	char buf[1024];
	memcpy(buf, text, len + 1);
	char *save = NULL;
	if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
		return mb_err(MB_ERR_USAGE, "parameter %s: empty item in list '%s'", d->name, text);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		int rc = parse_item(d, item, vals, max, count);
		if (rc)
			return rc;
	}
	return 0;
}

int mb_params_init(mb_params *p, const mb_param_def *defs, int n)
{
	memset(p, 0, sizeof *p);
	if (n > MB_MAX_PARAMS)
		return mb_err(MB_ERR_INTERNAL, "parameter table has %d entries (max %d)", n,
			      MB_MAX_PARAMS);
	p->defs = defs;
	p->n = n;
	for (int i = 0; i < n; i++)
		if (mb_param_parse_value(&defs[i], defs[i].def, &p->v[i]))
			return mb_err(MB_ERR_INTERNAL, "default of %s does not parse: %s",
				      defs[i].name, mb_errmsg());
	return 0;
}

int mb_params_find(const mb_params *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->defs[i].name, name) == 0)
			return i;
	return -1;
}

int mb_params_set(mb_params *p, const char *name, double v, int src)
{
	int i = mb_params_find(p, name);
	if (i < 0)
		return mb_err(MB_ERR_USAGE, "unknown parameter '%s'", name);
	const mb_param_def *d = &p->defs[i];
	int bad;
	if (d->type == MB_PT_ENUM) {
		int nchoices = 1;
		for (const char *c = d->choices; *c; c++)
			nchoices += *c == '|';
		bad = v < 0 || v >= nchoices || v != floor(v);
	} else {
		bad = !(v >= d->min && v <= d->max) || (d->type == MB_PT_INT && v != floor(v));
	}
	if (bad) {
		char text[64];
		snprintf(text, sizeof text, "%g", v);
		return range_error(d, text);
	}
	p->v[i] = v;
	p->set_by[i] = (unsigned char)src;
	return 0;
}

int64_t mb_param_int(const mb_params *p, const char *name)
{
	int i = mb_params_find(p, name);
	return i < 0 ? 0 : (int64_t)p->v[i];
}

double mb_param_real(const mb_params *p, const char *name)
{
	int i = mb_params_find(p, name);
	return i < 0 ? 0.0 : p->v[i];
}

static void choice_text(const char *choices, int idx, char *buf, size_t n)
{
	const char *c = choices;
	for (int k = 0; k < idx && c; k++) {
		c = strchr(c, '|');
		if (c)
			c++;
	}
	if (!c) {
		mb_strlcpy(buf, "?", n);
		return;
	}
	const char *bar = strchr(c, '|');
	size_t len = bar ? (size_t)(bar - c) : strlen(c);
	if (len >= n)
		len = n - 1;
	memcpy(buf, c, len);
	buf[len] = '\0';
}

const char *mb_param_choice(const mb_params *p, const char *name, char *buf, size_t n)
{
	int i = mb_params_find(p, name);
	if (i < 0 || p->defs[i].type != MB_PT_ENUM) {
		mb_strlcpy(buf, "", n);
		return buf;
	}
	choice_text(p->defs[i].choices, (int)p->v[i], buf, n);
	return buf;
}

void mb_param_format(const mb_params *p, int i, char *buf, size_t n)
{
	const mb_param_def *d = &p->defs[i];
	if (d->type == MB_PT_ENUM)
		choice_text(d->choices, (int)p->v[i], buf, n);
	else if (d->type == MB_PT_INT)
		snprintf(buf, n, "%.0f", p->v[i]);
	else
		snprintf(buf, n, "%.17g", p->v[i]);
}
