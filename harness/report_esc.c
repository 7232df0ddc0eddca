/* report_esc.c: escaping for `moebench report` (report.h): every string
 * taken from a result file goes through one of these before it reaches
 * HTML, Markdown, a gnuplot script or a file name.
 *
 * All of them walk the input one UTF-8 character at a time, so a cut never
 * splits a character or an escape, control characters (C0, DEL, C1) become
 * spaces and bytes that are not UTF-8 become '?': the output is valid
 * UTF-8 on one line whatever the input was.
 */
#include "mb.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

enum { ESC_TEXT, ESC_HTML, ESC_MD, ESC_GP };

/* The next character of s: its length in bytes (0 at the end) and *cp, or
 * *cp = 0xFFFFFFFF for a byte that does not start a valid UTF-8 sequence
 * (overlong forms and surrogates included), which then counts as 1 byte. */
static size_t u8_next(const unsigned char *s, uint32_t *cp)
{
	static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
	size_t len;
	uint32_t c = s[0];
	if (!c)
		return 0;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, c &= 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, c &= 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, c &= 0x07;
	else
		goto bad;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min[len - 1] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = 0xFFFFFFFFu;
	return 1;
}

/* What character (s, len, cp) becomes in mode: *out and its length. */
static size_t esc_unit(int mode, const unsigned char *s, size_t len, uint32_t cp, char *tmp,
		       const char **out)
{
	if (cp == 0xFFFFFFFFu) {
		*out = "?";
		return 1;
	}
	if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
		*out = " ";
		return 1;
	}
	if (mode == ESC_HTML) {
		const char *e = cp == '&' ? "&amp;" : cp == '<' ? "&lt;" : cp == '>' ? "&gt;" :
				cp == '"' ? "&quot;" : cp == '\'' ? "&#39;" : NULL;
		if (e) {
			*out = e;
			return strlen(e);
		}
	} else if (mode == ESC_MD && cp < 0x80 && strchr("\\|`*_[]<>&#~!", (int)cp)) {
		tmp[0] = '\\';
		tmp[1] = (char)cp;
		*out = tmp;
		return 2;
	} else if (mode == ESC_GP && cp == '\'') {
		/* Not '': gnuplot 5.4 misreads a literal that starts with ''. The
		 * quote is its own double-quoted piece, which holds nothing that
		 * gnuplot would substitute. */
		*out = "'.\"'\".'";
		return 7;
	}
	*out = (const char *)s;
	return len;
}

/* Escaped length of src in mode (stops counting past limit). */
static size_t esc_len(int mode, const unsigned char *s, size_t limit)
{
	size_t total = 0, len;
	uint32_t cp;
	char tmp[4];
	const char *out;
	while (total <= limit && (len = u8_next(s, &cp)) > 0) {
		total += esc_unit(mode, s, len, cp, tmp, &out);
		s += len;
	}
	return total;
}

static char *esc(char *dst, size_t n, const char *src, int mode)
{
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	size_t j = 0, cap = n - 1, len;
	if (n < 8) { /* no room for a character and "...": empty (a gnuplot '' if it fits) */
		memcpy(dst, mode == ESC_GP && n >= 3 ? "''" : "", mode == ESC_GP && n >= 3 ? 3 : 1);
		return dst;
	}
	uint32_t cp;
	char tmp[4];
	const char *out;
	if (mode == ESC_GP) {
		dst[j++] = '\'';
		cap--; /* the closing quote */
	}
	/* Cut only when the whole does not fit, and then keep room for "...". */
	size_t room = esc_len(mode, s, cap - j) <= cap - j ? cap : cap - 3;
	while ((len = u8_next(s, &cp)) > 0) {
		size_t k = esc_unit(mode, s, len, cp, tmp, &out);
		if (j + k > room)
			break;
		memcpy(dst + j, out, k);
		j += k;
		s += len;
	}
	if (*s) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	if (mode == ESC_GP)
		dst[j++] = '\'';
	dst[j] = '\0';
	return dst;
}

char *mb_rep_html(char *dst, size_t n, const char *src) { return esc(dst, n, src, ESC_HTML); }
char *mb_rep_md(char *dst, size_t n, const char *src) { return esc(dst, n, src, ESC_MD); }
char *mb_rep_gp(char *dst, size_t n, const char *src) { return esc(dst, n, src, ESC_GP); }
char *mb_rep_text(char *dst, size_t n, const char *src) { return esc(dst, n, src, ESC_TEXT); }

char *mb_rep_filename(char *dst, size_t n, const char *src)
{
	size_t max = n - 1 < MB_REP_NAME_MAX ? n - 1 : MB_REP_NAME_MAX, j = 0;
	if (n < 2) {
		if (n)
			dst[0] = '\0';
		return dst;
	}
	for (const char *s = src ? src : ""; *s && j < max; s++) {
		char c = *s;
		/* a dot neither first nor after a dot: no hidden file, no ".." */
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '-' || c == '_' || (c == '.' && j > 0 && dst[j - 1] != '.');
		dst[j++] = ok ? c : '_';
	}
	if (j == 0)
		dst[j++] = 'x';
	if (dst[j - 1] == '.') /* so that an extension after it never makes ".." */
		dst[j - 1] = '_';
	dst[j] = '\0';
	return dst;
}


void mb_rep_fmt(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(dst, n, fmt, ap);
	va_end(ap);
	if (w >= 0 && (size_t)w < n)
		return;
	/* cut: drop the last character if the cut split it */
	size_t j = strlen(dst), k = j;
	while (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0xC0) {
		unsigned char lead = (unsigned char)dst[k - 1];
		size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (j - (k - 1) < want)
			dst[k - 1] = '\0';
	}
}
