/* test_report.c: `moebench report` (harness/report*.c): the escaping of
 * every string a result file can carry (HTML, Markdown, gnuplot strings,
 * file names) on hostile strings, the join on (suite, params), the
 * baseline ratio, the reasons given for null numbers, and the check that
 * lets gnuplot's SVG into the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/mb.h"
#include "harness/report.h"

#define CLOSE(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

static const char *const hostile[] = {
	"<script>alert(1)</script>",
	"../../etc/passwd",
	"\"; system(\"rm -rf /tmp/x\")",
	"'; system('touch /tmp/pwned') #",
	"`touch /tmp/pwned`",
	"a|b\nc\r\n# h\x01\x7f",
	"\\' \\\" \\\\",
	"<img src=x onerror=alert(2)>",
	"[x](javascript:alert(1)) **b** _i_ ~s~ !",
	"bad utf-8: \xff\xfe \xc3( \xe2\x82 \xed\xa0\x80 end",
	"",
};

/* 1 when s is valid UTF-8 with no control character. */
static int clean_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 :
			  (*p & 0xF8) == 0xF0 ? 4 : 0;
		if (!len || *p < 0x20 || *p == 0x7F)
			return 0;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xC0) != 0x80)
				return 0;
		p += len;
	}
	return 1;
}

/* ---- HTML ---------------------------------------------------------- */

static void test_html_escape(void **st)
{
	(void)st;
	char b[256];
	assert_string_equal(mb_rep_html(b, sizeof b, "<script>alert(1)</script>"),
			    "&lt;script&gt;alert(1)&lt;/script&gt;");
	assert_string_equal(mb_rep_html(b, sizeof b, "a&b \"q\" 'r'"),
			    "a&amp;b &quot;q&quot; &#39;r&#39;");
	assert_string_equal(mb_rep_html(b, sizeof b, "x\ny\tz\x01"), "x y z ");
	assert_string_equal(mb_rep_html(b, sizeof b, "caf\xc3\xa9 \xff"), "caf\xc3\xa9 ?");
	assert_string_equal(mb_rep_html(b, sizeof b, NULL), "");
	for (size_t i = 0; i < MB_ARRAY_LEN(hostile); i++) {
		mb_rep_html(b, sizeof b, hostile[i]);
		assert_null(strpbrk(b, "<>\"'"));
		assert_true(clean_utf8(b));
		/* every & starts an entity */
		for (const char *a = strchr(b, '&'); a; a = strchr(a + 1, '&'))
			assert_true(!strncmp(a, "&amp;", 5) || !strncmp(a, "&lt;", 4) ||
				    !strncmp(a, "&gt;", 4) || !strncmp(a, "&quot;", 6) ||
				    !strncmp(a, "&#39;", 5));
	}
}

/* A cut never splits an entity or a character, and says so with "...". */
static void test_cuts(void **st)
{
	(void)st;
	char big[5000], b[40];
	memset(big, '&', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (size_t n = 8; n <= sizeof b; n++) {
		mb_rep_html(b, n, big);
		size_t len = strlen(b);
		assert_true(len < n);
		assert_string_equal(b + len - 3, "...");
		assert_int_equal((len - 3) % 5, 0); /* whole "&amp;"s */
	}
	/* 3-byte characters: never split */
	char eur[3 * 100 + 1] = "";
	for (int i = 0; i < 100; i++)
		strcat(eur, "\xe2\x82\xac");
	for (size_t n = 8; n <= sizeof b; n++) {
		mb_rep_text(b, n, eur);
		assert_true(clean_utf8(b));
		assert_int_equal((strlen(b) - 3) % 3, 0);
	}
	/* tiny buffers: empty, never overrun */
	char tiny[8];
	memset(tiny, 'Z', sizeof tiny);
	mb_rep_md(tiny, 3, "abcdef");
	assert_string_equal(tiny, "");
	assert_int_equal(tiny[3], 'Z');
	mb_rep_gp(tiny, 4, "abcdef");
	assert_string_equal(tiny, "''");
	/* a fitting string is never cut */
	assert_string_equal(mb_rep_text(b, 8, "1234567"), "1234567");
	/* mb_rep_fmt backs up over a split character */
	mb_rep_fmt(b, 6, "ab%s", "\xe2\x82\xac\xe2\x82\xac");
	assert_string_equal(b, "ab\xe2\x82\xac");
	mb_rep_fmt(b, 5, "ab%s", "\xe2\x82\xac");
	assert_string_equal(b, "ab");
}

/* ---- Markdown ------------------------------------------------------ */

/* Pipes in s not preceded by an odd number of backslashes. */
static int bare_pipes(const char *s)
{
	int n = 0;
	for (const char *p = s; *p; p++) {
		if (*p != '|')
			continue;
		int bs = 0;
		for (const char *q = p; q > s && q[-1] == '\\'; q--)
			bs++;
		n += bs % 2 == 0;
	}
	return n;
}

static void test_md_escape(void **st)
{
	(void)st;
	char b[512];
	assert_string_equal(mb_rep_md(b, sizeof b, "a|b"), "a\\|b");
	assert_string_equal(mb_rep_md(b, sizeof b, "x\ny"), "x y");
	assert_string_equal(mb_rep_md(b, sizeof b, "<b>*_`[]\\"),
			    "\\<b\\>\\*\\_\\`\\[\\]\\\\");
	assert_string_equal(mb_rep_md(b, sizeof b, "plain text, 1.5 GB/s (x)"),
			    "plain text, 1.5 GB/s (x)");
	/* a backslash cannot unescape the pipe after it */
	assert_string_equal(mb_rep_md(b, sizeof b, "\\|"), "\\\\\\|");
	for (size_t i = 0; i < MB_ARRAY_LEN(hostile); i++) {
		mb_rep_md(b, sizeof b, hostile[i]);
		assert_int_equal(bare_pipes(b), 0);
		assert_null(strchr(b, '\n'));
		assert_true(clean_utf8(b));
		for (const char *p = b; *p; p++) /* every < > [ ] ` is escaped */
			if (strchr("<>[]`*_", *p))
				assert_int_equal(p[-1], '\\');
	}
}

/* ---- gnuplot strings ----------------------------------------------- */

/* Reads a gnuplot string expression made of 'single-quoted' pieces joined
 * by ."'". (the only form mb_rep_gp writes) back into out; -1 if it is
 * anything else. */
static int gp_unquote(const char *s, char *out, size_t n)
{
	size_t j = 0;
	if (*s++ != '\'')
		return -1;
	for (;;) {
		while (*s && *s != '\'') {
			if (j + 1 >= n)
				return -1;
			out[j++] = *s++;
		}
		if (*s != '\'')
			return -1;
		s++;
		if (!*s)
			break;
		if (strncmp(s, ".\"'\".'", 6))
			return -1;
		s += 6;
		out[j++] = '\'';
	}
	out[j] = '\0';
	return 0;
}

static void test_gp_escape(void **st)
{
	(void)st;
	char b[512], back[512];
	assert_string_equal(mb_rep_gp(b, sizeof b, "plain"), "'plain'");
	assert_string_equal(mb_rep_gp(b, sizeof b, "it's"), "'it'.\"'\".'s'");
	/* gnuplot 5.4 cannot read a literal that starts with '' */
	assert_string_equal(mb_rep_gp(b, sizeof b, "'x"), "''.\"'\".'x'");
	assert_string_equal(mb_rep_gp(b, sizeof b, ""), "''");
	/* no substitution happens inside single quotes: kept as they are */
	assert_string_equal(mb_rep_gp(b, sizeof b, "`id` \\n @m $x"), "'`id` \\n @m $x'");
	assert_string_equal(mb_rep_gp(b, sizeof b, "a\nb\x7f"), "'a b '");
	for (size_t i = 0; i < MB_ARRAY_LEN(hostile); i++) {
		mb_rep_gp(b, sizeof b, hostile[i]);
		assert_int_equal(gp_unquote(b, back, sizeof back), 0);
		assert_null(strchr(b, '\n'));
		assert_true(clean_utf8(b));
	}
	/* cut: still one well-formed expression */
	char quotes[400];
	memset(quotes, '\'', sizeof quotes - 1);
	quotes[sizeof quotes - 1] = '\0';
	for (size_t n = 8; n < 64; n++) {
		mb_rep_gp(b, n, quotes);
		assert_true(strlen(b) < n);
		assert_int_equal(gp_unquote(b, back, sizeof back), 0);
		assert_non_null(strstr(back, "..."));
	}
}

/* ---- file names ---------------------------------------------------- */

static void test_filenames(void **st)
{
	(void)st;
	char b[256], long_name[1000];
	assert_string_equal(mb_rep_filename(b, sizeof b, "gmm"), "gmm");
	assert_string_equal(mb_rep_filename(b, sizeof b, "train_step-2.x"), "train_step-2.x");
	assert_string_equal(mb_rep_filename(b, sizeof b, "../../etc/passwd"), "_._.__etc_passwd");
	assert_string_equal(mb_rep_filename(b, sizeof b, ".hidden"), "_hidden");
	assert_string_equal(mb_rep_filename(b, sizeof b, ""), "x");
	assert_string_equal(mb_rep_filename(b, sizeof b, NULL), "x");
	assert_string_equal(mb_rep_filename(b, sizeof b, "a..b"), "a._b");
	assert_string_equal(mb_rep_filename(b, sizeof b, "abc..."), "abc.__");
	assert_string_equal(mb_rep_filename(b, sizeof b, "."), "_");
	memset(long_name, 'A', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_int_equal(strlen(mb_rep_filename(b, sizeof b, long_name)), MB_REP_NAME_MAX);
	assert_int_equal(strlen(mb_rep_filename(b, 5, long_name)), 4);
	for (size_t i = 0; i < MB_ARRAY_LEN(hostile); i++) {
		mb_rep_filename(b, sizeof b, hostile[i]);
		assert_true(b[0] != '\0' && b[0] != '.' && b[strlen(b) - 1] != '.');
		assert_null(strstr(b, ".."));
		assert_int_equal(strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789._-"), strlen(b));
	}
}

/* ---- the join and the baseline ------------------------------------- */

/* A run whose results are cases of (suite, tokens, tflops, p50). */
static cJSON *run_json(const char *host, const char *cases)
{
	char text[4096];
	snprintf(text, sizeof text,
		 "{\"schema\":\"moebench.result/1\",\"system\":{\"hostname\":\"%s\"},"
		 "\"config\":{\"backend\":\"cpu\"},\"world\":{\"size\":1},\"results\":[%s]}",
		 host, cases);
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	return j;
}

#define CASE(suite, params, tflops, p50)                                                  \
	"{\"suite\":\"" suite "\",\"status\":\"ok\",\"params\":" params                      \
	",\"stats_s\":{\"p50\":" #p50 ",\"median_ci95\":[" #p50 "," #p50 "]},"              \
	"\"metrics\":{\"tflops\":" #tflops ",\"mfu_pct\":null,\"mfu_reason\":\"no peak\"},"  \
	"\"power\":null,\"power_reason\":\"no power source: none\"}"

static void join_fixture(mb_rep *rep, int base)
{
	memset(rep, 0, sizeof *rep);
	rep->runs = calloc(2, sizeof *rep->runs);
	assert_non_null(rep->runs);
	rep->nruns = 2;
	rep->runs[0].path = "a.json";
	rep->runs[0].root = run_json("hostA",
		CASE("gmm", "{\"tokens\":1,\"dtype\":\"fp32\",\"lr\":0.001}", 1.0, 0.5) ","
		CASE("gmm", "{\"tokens\":2,\"dtype\":\"fp32\",\"lr\":0.001}", 2.0, 0.25) ","
		"7, null, \"x\","
		CASE("alltoall", "{\"bytes\":1024}", 0, 0.001));
	/* the same case with its parameters in another order and 0.001 as 1e-3 */
	rep->runs[1].path = "b.json";
	rep->runs[1].root = run_json("hostB",
		CASE("gmm", "{\"lr\":1e-3,\"dtype\":\"fp32\",\"tokens\":2}", 3.0, 0.125) ","
		CASE("gmm", "{\"tokens\":3,\"dtype\":\"fp32\",\"lr\":0.001}", 4.0, 0.1));
	rep->runs[base].baseline = 1;
	assert_int_equal(mb_rep_join(rep), 0);
}

static void test_join(void **st)
{
	(void)st;
	mb_rep rep;
	join_fixture(&rep, 0);
	assert_int_equal(rep.ncases, 5); /* 7, null and "x" are not cases */
	assert_int_equal(rep.nsuites, 2);
	assert_string_equal(rep.suites[0].name, "gmm");
	assert_string_equal(rep.suites[1].name, "alltoall");
	assert_int_equal(rep.suites[0].n, 3); /* tokens 1, 2, 3 */
	assert_int_equal(rep.ngroups, 4);
	const mb_rep_group *g2 = &rep.groups[rep.suites[0].first + 1];
	assert_string_equal(g2->label, "tokens=2");
	assert_int_equal(g2->n, 2);
	assert_int_equal(rep.cases[g2->first].run, 0); /* run order */
	assert_int_equal(rep.cases[g2->first + 1].run, 1);
	assert_non_null(strstr(rep.suites[0].common, "dtype=fp32"));
	assert_non_null(strstr(rep.suites[0].common, "lr=0.001"));
	assert_null(strstr(rep.suites[0].common, "tokens"));
	assert_string_equal(rep.groups[rep.suites[1].first].label, "(one case)");
	assert_string_equal(rep.runs[0].label, "R1 hostA/cpu");
	assert_string_equal(rep.runs[1].label, "R2 hostB/cpu");
	/* the key does not depend on the order of the parameters */
	char *k1 = mb_rep_case_key(rep.cases[g2->first].r);
	char *k2 = mb_rep_case_key(rep.cases[g2->first + 1].r);
	assert_string_equal(k1, k2);
	char *k3 = mb_rep_case_key(rep.cases[rep.groups[rep.suites[0].first].first].r);
	assert_string_not_equal(k1, k3);
	free(k1);
	free(k2);
	free(k3);
	mb_rep_free(&rep);
	assert_null(rep.runs);
}

static void test_baseline_ratio(void **st)
{
	(void)st;
	char why[256];
	mb_rep rep;
	join_fixture(&rep, 0);
	assert_int_equal(rep.base, 0);
	const mb_rep_group *g1 = &rep.groups[rep.suites[0].first];
	const mb_rep_group *g2 = &rep.groups[rep.suites[0].first + 1];
	const mb_rep_group *g3 = &rep.groups[rep.suites[0].first + 2];
	assert_int_equal(g1->base, g1->first);
	assert_int_equal(g2->base, g2->first);
	assert_int_equal(g3->base, -1); /* only in run 2: no baseline case */
	const cJSON *b = rep.cases[g2->base].r, *x = rep.cases[g2->first + 1].r;
	CLOSE(mb_rep_ratio(mb_rep_value(x, MB_REP_TFLOPS, why, sizeof why),
			   mb_rep_value(b, MB_REP_TFLOPS, why, sizeof why)), 1.5, 1e-12);
	CLOSE(mb_rep_ratio(mb_rep_value(x, MB_REP_P50, why, sizeof why),
			   mb_rep_value(b, MB_REP_P50, why, sizeof why)), 0.5, 1e-12);
	mb_rep_free(&rep);

	/* the baseline may be any run */
	join_fixture(&rep, 1);
	g2 = &rep.groups[rep.suites[0].first + 1];
	assert_int_equal(rep.cases[g2->base].run, 1);
	assert_int_equal(rep.groups[rep.suites[0].first].base, -1);
	mb_rep_free(&rep);

	assert_true(isnan(mb_rep_ratio(1, 0)));
	assert_true(isnan(mb_rep_ratio(NAN, 1)));
	assert_true(isnan(mb_rep_ratio(1, INFINITY)));
	CLOSE(mb_rep_ratio(2, 4), 0.5, 0);
}

static void test_reasons(void **st)
{
	(void)st;
	char why[256];
	cJSON *r = cJSON_Parse(
		"{\"suite\":\"alltoall\",\"status\":\"ok\",\"stats_s\":{\"p50\":0.5},"
		"\"cost\":{\"flops\":0,\"tokens\":0,\"bytes\":10},"
		"\"metrics\":{\"tflops\":null,\"mfu_pct\":null,\"mfu_reason\":\"no peak <b>\","
		"\"busbw_gbps\":null,\"mfu_measured_pct\":null,\"mfu_measured_reason\":\"no cal\"},"
		"\"info\":{\"busbw_factor\":0},\"power\":null,\"power_reason\":\"no source\"}");
	assert_non_null(r);
	assert_true(isnan(mb_rep_value(r, MB_REP_MFU, why, sizeof why)));
	assert_string_equal(why, "no peak <b>"); /* plain text: escaped where it goes */
	assert_true(isnan(mb_rep_value(r, MB_REP_J_TOKEN, why, sizeof why)));
	assert_string_equal(why, "no source");
	assert_true(isnan(mb_rep_value(r, MB_REP_MFU_MEASURED, why, sizeof why)));
	assert_string_equal(why, "no cal");
	assert_true(isnan(mb_rep_value(r, MB_REP_TFLOPS, why, sizeof why)));
	assert_non_null(strstr(why, "no FLOPs"));
	assert_true(isnan(mb_rep_value(r, MB_REP_BUSBW, why, sizeof why)));
	assert_non_null(strstr(why, "one rank"));
	assert_true(isnan(mb_rep_value(r, MB_REP_MFU_COMPUTED, why, sizeof why)));
	assert_non_null(strstr(why, "no computed peak"));
	CLOSE(mb_rep_value(r, MB_REP_P50, why, sizeof why), 0.5, 0);
	cJSON_Delete(r);
	/* a case that did not run: its status and reason */
	r = cJSON_Parse("{\"suite\":\"x\",\"status\":\"skipped\",\"reason\":\"no collectives\","
			"\"stats_s\":null,\"metrics\":null}");
	assert_true(isnan(mb_rep_value(r, MB_REP_TFLOPS, why, sizeof why)));
	assert_string_equal(why, "the case did not run (skipped: no collectives)");
	cJSON_Delete(r);
	/* wrong types are nulls with a reason, not crashes */
	r = cJSON_Parse("{\"stats_s\":\"no\",\"metrics\":[1],\"power\":7}");
	assert_true(isnan(mb_rep_value(r, MB_REP_P50, why, sizeof why)));
	assert_true(isnan(mb_rep_value(r, MB_REP_J_TOKEN, why, sizeof why)));
	assert_true(isnan(mb_rep_value(NULL, MB_REP_TFLOPS, why, sizeof why)));
	double lo, hi;
	assert_int_equal(mb_rep_ci(r, &lo, &hi), -1);
	cJSON_Delete(r);
}

/* ---- SVG ----------------------------------------------------------- */

static char *inline_svg(const char *svg, int *rc)
{
	char *text = NULL, why[128];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	*rc = mb_rep_svg_inline(f, svg, 3, why, sizeof why);
	fclose(f);
	return text;
}

static void test_svg(void **st)
{
	(void)st;
	int rc;
	char *out = inline_svg(
		"<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\" "
		"xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n"
		"<defs><path id='gpPt0' d='M0,0'/></defs><g id=\"c\" clip-path=\"url(#clip1)\">"
		"<use xlink:href='#gpPt0' x1 = '1'/><text>&lt;script&gt; a > b</text></g></svg>\n"
		"trailing",
		&rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "id='p3-gpPt0'"));
	assert_non_null(strstr(out, "xlink:href='#p3-gpPt0'"));
	assert_non_null(strstr(out, "url(#p3-clip1)"));
	assert_non_null(strstr(out, "&lt;script&gt; a > b"));
	assert_null(strstr(out, "<?xml"));
	assert_null(strstr(out, "trailing"));
	free(out);
	static const char *const bad[] = {
		"<svg><script>alert(1)</script></svg>",
		"<svg onload=\"alert(1)\"></svg>",
		"<svg><g ONclick='x'></g></svg>",
		"<svg><use xlink:href='http://evil/x.svg#a'/></svg>",
		"<svg><rect fill='url(http://evil/)'/></svg>",
		"<svg><a href='javascript:alert(1)'></a></svg>",
		"<svg><foreignObject></foreignObject></svg>",
		"<svg><g style=\"x\" data=javascript></g></svg>",
		"<svg><image href='#x'/></svg>",
		"<svg><g>",
		"no svg here",
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(bad); i++) {
		out = inline_svg(bad[i], &rc);
		assert_int_equal(rc, -1);
		assert_string_equal(out, ""); /* nothing written */
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_html_escape),  cmocka_unit_test(test_cuts),
		cmocka_unit_test(test_md_escape),    cmocka_unit_test(test_gp_escape),
		cmocka_unit_test(test_filenames),    cmocka_unit_test(test_join),
		cmocka_unit_test(test_baseline_ratio), cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_svg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
