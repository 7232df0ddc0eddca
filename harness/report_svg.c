/* report_svg.c: gnuplot's SVG, checked and inlined into the HTML report
 * (report.h).
 *
 * gnuplot escapes < and & in the text it writes, and the titles it draws
 * come from result files, so the check is the second line of defence: it
 * copies only the elements and attributes gnuplot's SVG terminal writes,
 * refuses event handlers, script URLs and references outside the
 * document, and prefixes every id (and every reference to one) with the
 * plot's number, so that several plots can share one page.
 */
#include "mb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report.h"

static const char *const svg_elems[] = {
	"svg", "g", "title", "desc", "defs", "rect", "circle", "ellipse", "line", "polyline",
	"polygon", "path", "use", "text", "tspan", "clipPath", "filter", "feFlood", "feComposite",
	"feMerge", "feMergeNode", "feOffset", "linearGradient", "radialGradient", "stop", "marker",
	"symbol", "pattern"};

static int svg_elem_ok(const char *name, size_t len)
{
	for (size_t i = 0; i < MB_ARRAY_LEN(svg_elems); i++)
		if (strlen(svg_elems[i]) == len && !strncmp(svg_elems[i], name, len))
			return 1;
	return 0;
}

/* One attribute value, copied with its ids prefixed; -1 when it points
 * outside the document or could run code. */
static int svg_value(FILE *o, const char *name, size_t nlen, const char *v, size_t vlen, int k)
{
	int is_id = nlen == 2 && !strncmp(name, "id", 2);
	int is_href = (nlen == 4 && !strncmp(name, "href", 4)) ||
		      (nlen == 10 && !strncmp(name, "xlink:href", 10));
	for (size_t i = 0; i + 10 <= vlen; i++)
		if (!strncasecmp(v + i, "javascript", 10))
			return -1;
	if (is_href && (vlen == 0 || v[0] != '#'))
		return -1;
	if (is_id)
		fprintf(o, "p%d-", k);
	for (size_t i = 0; i < vlen; i++) {
		if (!strncasecmp(v + i, "url(", 4)) {
			if (i + 4 >= vlen || v[i + 4] != '#')
				return -1;
			fprintf(o, "url(#p%d-", k);
			i += 4;
			continue;
		}
		if (is_href && i == 0) {
			fprintf(o, "#p%d-", k);
			continue;
		}
		if (v[i] == '<')
			return -1;
		fputc(v[i], o);
	}
	return 0;
}

static int svg_copy(FILE *o, const char *s, int k, char *why, size_t n)
{
	const char *p = strstr(s, "<svg");
	int depth = 0;
	if (!p) {
		mb_rep_fmt(why, n, "no <svg> element");
		return -1;
	}
	while (*p) {
		if (*p != '<') { /* text: gnuplot writes < and & as entities */
			fputc(*p++, o);
			continue;
		}
		int closing = p[1] == '/';
		const char *name = p + 1 + closing;
		size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
		if (!len || !svg_elem_ok(name, len)) {
			mb_rep_fmt(why, n, "an element gnuplot does not write: <%.*s", (int)(len ? len : 1),
				 name);
			return -1;
		}
		fprintf(o, "<%s%.*s", closing ? "/" : "", (int)len, name);
		p = name + len;
		for (;;) { /* attributes */
			size_t ws = strspn(p, " \t\r\n");
			fwrite(p, 1, ws, o);
			p += ws;
			if (*p == '>' || (p[0] == '/' && p[1] == '>'))
				break;
			size_t an = strspn(p, "abcdefghijklmnopqrstuvwxyz"
					      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_");
			const char *eq = p + an + strspn(p + an, " \t\r\n");
			const char *v = eq + 1 + strspn(eq + 1, " \t\r\n");
			if (!an || *eq != '=' || (*v != '"' && *v != '\'') || !strncasecmp(p, "on", 2) ||
			    closing) {
				snprintf(why, n, "an attribute gnuplot does not write");
				return -1;
			}
			char q = *v++;
			const char *end = strchr(v, q);
			if (!end) {
				snprintf(why, n, "an unterminated attribute");
				return -1;
			}
			fprintf(o, "%.*s=%c", (int)an, p, q);
			if (svg_value(o, p, an, v, (size_t)(end - v), k)) {
				snprintf(why, n, "a reference outside the document or a script");
				return -1;
			}
			fputc(q, o);
			p = end + 1;
		}
		int self = *p == '/';
		fputs(self ? "/>" : ">", o);
		p += self ? 2 : 1;
		depth += closing ? -1 : !self;
		if (depth == 0) {
			fputc('\n', o);
			return 0;
		}
	}
	mb_rep_fmt(why, n, "the <svg> element is not closed");
	return -1;
}

int mb_rep_svg_inline(FILE *out, const char *svg, int k, char *why, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&text, &len);
	int rc = o ? svg_copy(o, svg, k, why, n) : -1;
	if (!o)
		snprintf(why, n, "out of memory");
	if (o && fclose(o) && !rc) {
		snprintf(why, n, "out of memory");
		rc = -1;
	}
	if (!rc) /* all or nothing */
		fwrite(text, 1, len, out);
	free(text);
	return rc;
}
