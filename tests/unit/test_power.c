/* test_power.c: the power sampler (hardware/power) on fake sysfs trees in a
 * temporary directory and with small commands; no real sensor is touched
 * (NVML and DCMI are pointed at library names that do not exist). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/mb.h"
#include "hardware/power/power.h"

#define RAPL "class/powercap/"
#define RAPL_MAX 262143328850ull /* a real package's max_energy_range_uj */

/* ---- fixtures: a temporary sysfs root per test ---- */

static int setup(void **st)
{
	char *root = strdup("/tmp/mb-power-XXXXXX");
	if (!root || !mkdtemp(root)) {
		free(root);
		return -1;
	}
	*st = root;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **st)
{
	int rc = nftw(*st, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(*st);
	return rc;
}

/* Write root/rel (parents made), replacing it atomically so that the
 * sampler never reads a half-written file. */
static void put(const char *root, const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	va_list ap;
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (char *s = path + strlen(root) + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
			*s = '/';
		}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_non_null(f = fopen(tmp, "w"));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void path_of(char *buf, size_t n, const char *root, const char *rel)
{
	snprintf(buf, n, "%s/%s", root, rel);
}

static void rapl_zone(const char *root, const char *zone, const char *name, uint64_t uj)
{
	char rel[128];
	snprintf(rel, sizeof rel, RAPL "%s/name", zone);
	put(root, rel, "%s\n", name);
	snprintf(rel, sizeof rel, RAPL "%s/max_energy_range_uj", zone);
	put(root, rel, "%llu\n", (unsigned long long)RAPL_MAX);
	snprintf(rel, sizeof rel, RAPL "%s/energy_uj", zone);
	put(root, rel, "%llu\n", (unsigned long long)uj);
}

static mb_power_opts opts_for(const char *root, double hz)
{
	mb_power_opts o = {
		.sysfs_root = root,
		.hz = hz,
		.nvml_lib = "libmb-test-absent-nvml.so",
		.dcmi_lib = "libmb-test-absent-dcmi.so",
	};
	return o;
}

static mb_power *open_ok(const mb_power_opts *o)
{
	mb_power *p = NULL;
	int rc = mb_power_open(o, &p);
	if (rc)
		fail_msg("mb_power_open: %s", mb_errmsg());
	assert_non_null(p);
	return p;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One region of about secs. */
static mb_power_reading region(mb_power *p, double secs)
{
	mb_power_reading r;
	assert_int_equal(mb_power_start(p), 0);
	sleep_s(secs);
	assert_int_equal(mb_power_stop(p, &r), 0);
	return r;
}

static void assert_has(const char *s, const char *part)
{
	if (!strstr(s, part))
		fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* The listing's entry for a source. */
static const cJSON *source_entry(const cJSON *list, const char *name)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return e;
	}
	fail_msg("no source %s listed", name);
	return NULL;
}

static const char *entry_str(const cJSON *e, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

/* The reason a source is listed as unavailable. */
static void assert_unavailable(const mb_power *p, const char *name, const char *part)
{
	cJSON *list = mb_power_sources_json(p);
	const cJSON *e = source_entry(list, name);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "available")));
	assert_null(cJSON_GetObjectItemCaseSensitive(e, "detail"));
	assert_has(entry_str(e, "reason"), part);
	cJSON_Delete(list);
}

static void assert_near(double got, double want, double rel)
{
	if (!(fabs(got - want) <= rel * fabs(want)))
		fail_msg("%.17g is not within %g of %.17g", got, rel, want);
}

/* ---- no source ---- */

static void test_no_source(void **st)
{
	static const char *const order[] = { "power-cmd", "nvml", "dcmi", "rapl", "hwmon" };
	mb_power_opts o = opts_for(*st, 0);
	mb_power *p = open_ok(&o);
	mb_power_reading r = region(p, 0.01);
	cJSON *list = mb_power_sources_json(p);
	const cJSON *e;
	size_t i = 0;

	assert_int_equal(cJSON_GetArraySize(list), 5);
	cJSON_ArrayForEach(e, list)
	{
		assert_string_equal(entry_str(e, "name"), order[i++]);
		assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "available")));
		assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "chosen")));
		assert_true(entry_str(e, "reason")[0] != '\0');
	}
	assert_has(entry_str(source_entry(list, "nvml"), "reason"), "libmb-test-absent-nvml.so");
	assert_has(entry_str(source_entry(list, "rapl"), "reason"), "powercap");
	cJSON_Delete(list);

	assert_false(r.valid);
	assert_string_equal(r.source, "none");
	assert_has(r.reason, "no power source: power-cmd: no --power-cmd given; nvml: ");
	assert_true(isnan(r.avg_w) && isnan(r.energy_j) && isnan(r.peak_w) && isnan(r.rate_hz));
	assert_int_equal(r.samples, 0);
	mb_power_close(p);
}

static void test_usage(void **st)
{
	mb_power_opts o = opts_for(*st, -1);
	mb_power *p = NULL;
	mb_power_reading r;

	assert_int_equal(mb_power_open(&o, &p), MB_ERR_USAGE);
	o.hz = NAN;
	assert_int_equal(mb_power_open(&o, &p), MB_ERR_USAGE);
	o.hz = 5000;
	assert_int_equal(mb_power_open(&o, &p), MB_ERR_USAGE);
	o = opts_for(*st, 0);
	o.devices = "0,x";
	assert_int_equal(mb_power_open(&o, &p), MB_ERR_USAGE);
	assert_has(mb_errmsg(), "0,x");
	o.devices = NULL;
	o.cmd = "  \t ";
	assert_int_equal(mb_power_open(&o, &p), MB_ERR_USAGE);
	assert_null(p);

	o.cmd = NULL;
	p = open_ok(&o);
	assert_int_equal(mb_power_stop(p, &r), MB_ERR_USAGE);
	assert_int_equal(mb_power_start(p), 0);
	assert_int_equal(mb_power_start(p), MB_ERR_USAGE);
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_int_equal(mb_power_stop(p, &r), MB_ERR_USAGE);
	mb_power_close(p);
	mb_power_close(NULL);
}

/* ---- RAPL ---- */

/* Two packages, one of which wraps; a subzone, psys and the MMIO view of
 * a package change too and must not be counted. */
static void test_rapl_wrap(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 0);
	mb_power_reading r;
	mb_power *p;
	cJSON *list;

	rapl_zone(root, "intel-rapl:0", "package-0", RAPL_MAX - 500000);
	rapl_zone(root, "intel-rapl:0:0", "dram", 1000);
	rapl_zone(root, "intel-rapl:1", "package-1", 7000000);
	rapl_zone(root, "intel-rapl:2", "psys", 1000);
	rapl_zone(root, "intel-rapl-mmio:0", "package-0", 1000);
	p = open_ok(&o);

	list = mb_power_sources_json(p);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(source_entry(list, "rapl"),
								  "chosen")));
	assert_string_equal(entry_str(source_entry(list, "rapl"), "detail"), "package-0, package-1");
	cJSON_Delete(list);

	assert_int_equal(mb_power_start(p), 0);
	sleep_s(0.05);
	/* package-0 wraps: 0.5 J to the top of the range, then 1.5 J */
	put(root, RAPL "intel-rapl:0/energy_uj", "1500000\n");
	put(root, RAPL "intel-rapl:1/energy_uj", "8000000\n");
	put(root, RAPL "intel-rapl:0:0/energy_uj", "90000000\n");
	put(root, RAPL "intel-rapl:2/energy_uj", "90000000\n");
	put(root, RAPL "intel-rapl-mmio:0/energy_uj", "90000000\n");
	sleep_s(0.05);
	assert_int_equal(mb_power_stop(p, &r), 0);

	if (!r.valid)
		fail_msg("invalid: %s", r.reason);
	assert_string_equal(r.source, "rapl");
	assert_string_equal(r.scope, "cpu package");
	assert_true(r.from_counter);
	assert_near(r.energy_j, 3.0, 1e-12);
	assert_near(r.avg_w, 3.0 / r.duration_s, 1e-12);
	assert_true(r.duration_s >= 0.1 && r.duration_s < 5);
	assert_true(r.peak_w >= r.avg_w);
	assert_true(r.samples >= 2);
	assert_int_equal(r.failed, 0);
	assert_string_equal(r.reason, "");

	/* the next region goes on from the wrapped value */
	assert_int_equal(mb_power_start(p), 0);
	put(root, RAPL "intel-rapl:0/energy_uj", "2000000\n");
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_true(r.valid);
	assert_near(r.energy_j, 0.5, 1e-12);
	mb_power_close(p);
}

/* A region of a few ms still gets its energy from the reads at start and
 * stop, though the thread (at 1 Hz) never ran in it. */
static void test_rapl_short_region(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 1);
	mb_power_reading r;
	mb_power *p;

	rapl_zone(root, "intel-rapl:0", "package-0", 1000000);
	p = open_ok(&o);
	assert_int_equal(mb_power_start(p), 0);
	put(root, RAPL "intel-rapl:0/energy_uj", "1250000\n");
	assert_int_equal(mb_power_stop(p, &r), 0);
	if (!r.valid)
		fail_msg("invalid: %s", r.reason);
	assert_near(r.energy_j, 0.25, 1e-12);
	assert_true(r.duration_s > 0 && r.duration_s < 0.5);
	assert_int_equal(r.samples, 2);
	/* one interval, shorter than half a period: the peak is the average */
	assert_near(r.peak_w, r.avg_w, 1e-12);
	assert_near(r.rate_hz, 2.0, 1e-12); /* 2 readings over one 1 s period */
	assert_false(r.insufficient);

	/* a counter that does not move reads as invalid, not as 0 W */
	assert_int_equal(mb_power_start(p), 0);
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_false(r.valid);
	assert_true(isnan(r.avg_w) && isnan(r.energy_j));
	assert_has(r.reason, "did not advance");
	mb_power_close(p);
}

/* A package whose files cannot be read makes RAPL unavailable, with why. */
static void test_rapl_unreadable(void **st)
{
	static const struct {
		const char *file, *content, *why; /* content NULL: a directory; "": removed */
	} cases[] = {
		{ "energy_uj", NULL, "Is a directory" },
		{ "energy_uj", "garbage\n", "not a number (\"garbage\")" },
		{ "energy_uj", "", "No such file or directory" },
		{ "max_energy_range_uj", "", "No such file or directory" },
		{ "name", NULL, "Is a directory" },
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(cases); i++) {
		char root[PATH_MAX], rel[128], path[PATH_MAX + 128];
		mb_power_opts o;
		mb_power_reading r;
		mb_power *p;
		snprintf(root, sizeof root, "%s/case%zu", (const char *)*st, i);
		assert_int_equal(mkdir(root, 0755), 0);
		rapl_zone(root, "intel-rapl:0", "package-0", 1000);
		snprintf(rel, sizeof rel, RAPL "intel-rapl:0/%s", cases[i].file);
		path_of(path, sizeof path, root, rel);
		assert_int_equal(unlink(path), 0);
		if (!cases[i].content)
			assert_int_equal(mkdir(path, 0755), 0);
		else if (cases[i].content[0])
			put(root, rel, "%s", cases[i].content);
		o = opts_for(root, 0);
		p = open_ok(&o);
		assert_unavailable(p, "rapl", cases[i].why);
		assert_unavailable(p, "rapl", path);
		r = region(p, 0);
		assert_false(r.valid);
		assert_has(r.reason, cases[i].why);
		mb_power_close(p);
	}
}

/* energy_uj vanishes during a region: that region is invalid and says
 * why; once it is back, the next region is measured again. */
static void test_rapl_disappears(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 50);
	char path[PATH_MAX];
	mb_power_reading r;
	mb_power *p;

	rapl_zone(root, "intel-rapl:0", "package-0", 1000000);
	p = open_ok(&o);
	path_of(path, sizeof path, root, RAPL "intel-rapl:0/energy_uj");
	assert_int_equal(mb_power_start(p), 0);
	sleep_s(0.1);
	assert_int_equal(unlink(path), 0);
	sleep_s(0.1);
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_false(r.valid);
	assert_true(r.failed >= 1);
	assert_true(isnan(r.energy_j) && isnan(r.avg_w));
	assert_has(r.reason, "counter readings failed");
	assert_has(r.reason, "energy_uj: No such file or directory");

	put(root, RAPL "intel-rapl:0/energy_uj", "2000000\n");
	assert_int_equal(mb_power_start(p), 0);
	put(root, RAPL "intel-rapl:0/energy_uj", "3000000\n");
	assert_int_equal(mb_power_stop(p, &r), 0);
	if (!r.valid)
		fail_msg("invalid: %s", r.reason);
	assert_near(r.energy_j, 1.0, 1e-12);
	mb_power_close(p);
}

/* ---- hwmon ---- */

/* power*_input in uW; power*_average only where the sensor has no _input. */
static void test_hwmon_uw(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 50);
	mb_power_reading r;
	mb_power *p;
	cJSON *list;

	put(root, "class/hwmon/hwmon0/name", "fakechip\n");
	put(root, "class/hwmon/hwmon0/power1_input", "125000000\n");
	put(root, "class/hwmon/hwmon0/power1_average", "999000000\n");
	put(root, "class/hwmon/hwmon3/power2_average", "25000000\n");
	put(root, "class/hwmon/hwmon3/temp1_input", "45000\n");
	p = open_ok(&o);
	list = mb_power_sources_json(p);
	assert_string_equal(entry_str(source_entry(list, "hwmon"), "detail"),
			    "hwmon0/power1_input, hwmon3/power2_average");
	assert_string_equal(entry_str(source_entry(list, "hwmon"), "scope"), "hwmon sensors");
	cJSON_Delete(list);

	r = region(p, 0.1);
	if (!r.valid)
		fail_msg("invalid: %s", r.reason);
	assert_string_equal(r.source, "hwmon");
	assert_string_equal(r.scope, "hwmon sensors");
	assert_false(r.from_counter);
	assert_near(r.avg_w, 150.0, 1e-9);
	assert_near(r.peak_w, 150.0, 1e-12);
	assert_near(r.energy_j, 150.0 * r.duration_s, 1e-9);
	assert_true(r.samples >= 1);
	mb_power_close(p);
}

/* An ACPI power meter is the node's power: only it is summed. */
static void test_hwmon_power_meter(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 50);
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/name", "amdgpu\n");
	put(root, "class/hwmon/hwmon0/power1_average", "200000000\n");
	put(root, "class/hwmon/hwmon1/name", "power_meter\n");
	put(root, "class/hwmon/hwmon1/power1_average", "300000000\n");
	p = open_ok(&o);
	r = region(p, 0.05);
	assert_true(r.valid);
	assert_string_equal(r.scope, "node");
	assert_near(r.avg_w, 300.0, 1e-9);
	mb_power_close(p);
}

/* energy*_input (uJ) is a counter and wins over power sensors. */
static void test_hwmon_energy(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 0);
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/energy1_input", "1000000\n");
	put(root, "class/hwmon/hwmon0/power1_input", "5000000\n");
	p = open_ok(&o);
	assert_int_equal(mb_power_start(p), 0);
	put(root, "class/hwmon/hwmon0/energy1_input", "4000000\n");
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_true(r.valid);
	assert_true(r.from_counter);
	assert_near(r.energy_j, 3.0, 1e-12);

	/* no range is known, so a counter going down is a failed reading */
	assert_int_equal(mb_power_start(p), 0);
	put(root, "class/hwmon/hwmon0/energy1_input", "10\n");
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_false(r.valid);
	assert_has(r.reason, "went backwards");
	mb_power_close(p);
}

/* A power sensor vanishes mid-region: the reading keeps what was measured
 * and says how many readings failed and why. */
static void test_hwmon_disappears(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 50);
	char path[PATH_MAX];
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/power1_input", "80000000\n");
	p = open_ok(&o);
	path_of(path, sizeof path, root, "class/hwmon/hwmon0/power1_input");
	assert_int_equal(mb_power_start(p), 0);
	sleep_s(0.15);
	assert_int_equal(unlink(path), 0);
	sleep_s(0.15);
	assert_int_equal(mb_power_stop(p, &r), 0);
	assert_true(r.valid);
	assert_true(r.samples >= 1 && r.failed >= 1);
	assert_near(r.peak_w, 80.0, 1e-12);
	assert_has(r.reason, "readings failed");
	assert_has(r.reason, "power1_input: No such file or directory");

	r = region(p, 0.05); /* the sampler goes on */
	assert_false(r.valid);
	assert_has(r.reason, "no good reading");
	mb_power_close(p);
}

/* ---- rate ---- */

static void test_rate(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 50);
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/power1_input", "10000000\n");
	p = open_ok(&o);
	r = region(p, 0.3);
	assert_true(r.valid);
	/* 50 Hz over 0.3 s is 15 or 16 readings; a loaded machine gets fewer */
	if (r.samples < 4 || r.samples > 17)
		fail_msg("%lld samples at 50 Hz over %g s", (long long)r.samples, r.duration_s);
	assert_near(r.rate_hz, (double)r.samples / r.duration_s, 1e-12);
	assert_false(r.insufficient);
	assert_true(r.max_gap_s > 0 && r.max_gap_s < 0.3);
	mb_power_close(p);
}

/* Below 1 Hz the figure is marked insufficient, though measured. */
static void test_insufficient(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 0.5);
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/power1_input", "10000000\n");
	p = open_ok(&o);
	r = region(p, 0.2);
	assert_true(r.insufficient);
	assert_true(r.rate_hz < 1);
	if (r.valid) { /* the usual case: the reading at start */
		assert_int_equal(r.samples, 1);
		assert_near(r.rate_hz, 0.5, 1e-12);
		assert_near(r.avg_w, 10.0, 1e-9);
		assert_has(r.reason, "insufficient sampling: 0.5 Hz");
		assert_has(r.reason, "fewer than 2 samples");
	}
	mb_power_close(p);
}

/* A region shorter than the thread's first reading (or with just that one)
 * is flagged. */
static void test_fewer_than_two(void **st)
{
	const char *root = *st;
	mb_power_opts o = opts_for(root, 10);
	mb_power_reading r;
	mb_power *p;

	put(root, "class/hwmon/hwmon0/power1_input", "10000000\n");
	p = open_ok(&o);
	r = region(p, 0.02);
	assert_true(r.samples <= 1);
	if (r.samples == 1) {
		assert_true(r.valid);
		assert_has(r.reason, "fewer than 2 samples");
	} else {
		assert_false(r.valid);
		assert_has(r.reason, "no good reading");
	}
	mb_power_close(p);
}

/* ---- --power-cmd ---- */

static mb_power_opts cmd_opts(const char *root, const char *cmd, double hz, double timeout)
{
	mb_power_opts o = opts_for(root, hz);
	o.cmd = cmd;
	o.cmd_timeout_s = timeout;
	return o;
}

static void test_cmd_number(void **st)
{
	const char *root = *st;
	mb_power_opts o = cmd_opts(root, "  /bin/echo\t250 ", 20, 0);
	mb_power_reading r;
	mb_power *p;
	cJSON *list;

	/* the command wins over a sensor on the machine */
	put(root, "class/hwmon/hwmon0/power1_input", "10000000\n");
	p = open_ok(&o);
	list = mb_power_sources_json(p);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(source_entry(list, "power-cmd"),
								  "chosen")));
	assert_has(entry_str(source_entry(list, "power-cmd"), "detail"), "killed after 2 s");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(source_entry(list, "hwmon"),
								  "available")));
	cJSON_Delete(list);

	r = region(p, 0.2);
	if (!r.valid)
		fail_msg("invalid: %s", r.reason);
	assert_string_equal(r.source, "power-cmd");
	assert_string_equal(r.scope, "external");
	assert_near(r.avg_w, 250.0, 1e-9);
	assert_near(r.peak_w, 250.0, 1e-12);
	assert_int_equal(r.failed, 0);
	assert_true(r.samples >= 1);
	mb_power_close(p);
}

/* Output that is not one finite non-negative number, or a failing
 * command, is a failed reading with the reason; the sampler goes on. */
static void test_cmd_garbage(void **st)
{
	static char long_cmd[400];
	static const struct {
		const char *cmd, *why;
	} cases[] = {
		{ "/bin/echo garbage", "output \"garbage\" is not one finite non-negative number" },
		{ "/bin/echo -5", "output \"-5\" is not" },
		{ "/bin/echo 1 2", "output \"1 2\" is not" },
		{ "/bin/echo nan", "output \"nan\" is not" },
		{ "/bin/echo", "output \"\" is not" },
		{ "/bin/false", "/bin/false exited with status 1" },
		{ long_cmd, "printed more than 256 bytes" },
	};
	memset(long_cmd, '7', sizeof long_cmd - 1);
	memcpy(long_cmd, "/bin/echo ", 10);
	for (size_t i = 0; i < MB_ARRAY_LEN(cases); i++) {
		mb_power_opts o = cmd_opts(*st, cases[i].cmd, 20, 0);
		mb_power *p = open_ok(&o);
		mb_power_reading r = region(p, 0.1);
		assert_false(r.valid);
		assert_string_equal(r.source, "power-cmd");
		assert_int_equal(r.samples, 0);
		assert_true(r.failed >= 1);
		assert_true(isnan(r.avg_w));
		assert_has(r.reason, cases[i].why);
		mb_power_close(p);
	}
}

/* A command that hangs is killed at the bound, each region says so, stop
 * does not wait for it, and no child is left behind. */
static void test_cmd_hang(void **st)
{
	mb_power_opts o = cmd_opts(*st, "sleep 100", 10, 0.2);
	mb_power *p = open_ok(&o);
	mb_power_reading r;
	double t;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(mb_power_start(p), 0);
		sleep_s(0.6);
		t = mb_now_s();
		assert_int_equal(mb_power_stop(p, &r), 0);
		assert_true(mb_now_s() - t < 0.1);
		assert_false(r.valid);
		assert_true(r.failed >= 1);
		assert_has(r.reason, "sleep did not finish within 0.2 s and was killed");
	}
	/* a region shorter than a run says why it has nothing */
	r = region(p, 0.1);
	assert_false(r.valid);
	assert_has(r.reason, "no good reading in the region (a reading was still running at stop)");
	t = mb_now_s();
	mb_power_close(p);
	assert_true(mb_now_s() - t < 1.0);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_cmd_not_found(void **st)
{
	mb_power_opts o = cmd_opts(*st, "/nonexistent/pdu-watts --outlet 3", 0, 0);
	mb_power *p = open_ok(&o);
	mb_power_reading r = region(p, 0);
	assert_unavailable(p, "power-cmd", "/nonexistent/pdu-watts: not found or not executable");
	assert_false(r.valid);
	assert_has(r.reason, "power-cmd: /nonexistent/pdu-watts: not found");
	mb_power_close(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_no_source),	  T(test_usage),	      T(test_rapl_wrap),
		T(test_rapl_short_region), T(test_rapl_unreadable), T(test_rapl_disappears),
		T(test_hwmon_uw),	  T(test_hwmon_power_meter), T(test_hwmon_energy),
		T(test_hwmon_disappears), T(test_rate),		      T(test_insufficient),
		T(test_fewer_than_two),	  T(test_cmd_number),	      T(test_cmd_garbage),
		T(test_cmd_hang),	  T(test_cmd_not_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
