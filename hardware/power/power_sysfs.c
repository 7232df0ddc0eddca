/* power_sysfs.c: the power sources read from sysfs: RAPL through powercap
 * and hwmon sensors (what each reads, and why, in power.h).
 *
 * Both sum a list of files in micro-units (uJ counters or uW gauges). Files
 * are read with one non-blocking open/read/close each, so a FIFO planted in
 * a fake tree cannot hang the sampler.
 */
#include "harness/mb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "power_int.h"

#define SYS_MAX 64   /* files summed by one source */
#define SYS_PATH 512

typedef struct sys_file {
	char path[SYS_PATH];
	uint64_t max;  /* counter: the range it wraps at (RAPL), 0 when unknown */
	uint64_t prev; /* counter: the last raw value */
	uint64_t sum;  /* counter: uJ counted since open */
} sys_file;

typedef struct sys_src {
	int n, counter;
	sys_file f[SYS_MAX];
} sys_src;

static const char *sys_root(const mb_power_opts *o)
{
	return o->sysfs_root ? o->sysfs_root : "/sys";
}

/* The start of a small file, NUL-terminated; 0, or -errno with why. */
static int sys_read(const char *path, char *buf, size_t size, char *why, size_t n)
{
	ssize_t got;
	int e, fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		snprintf(why, n, "%s: %s", path, strerror(e));
		return -e;
	}
	got = read(fd, buf, size - 1);
	e = errno;
	close(fd);
	if (got < 0) {
		snprintf(why, n, "%s: %s", path, strerror(e));
		return -e;
	}
	buf[got] = '\0';
	return 0;
}

/* The unsigned decimal a sysfs file holds; 0, or -errno with why. */
static int sys_u64(const char *path, uint64_t *v, char *why, size_t n)
{
	char buf[64], *end;
	int e = sys_read(path, buf, sizeof buf, why, n);
	if (e)
		return e;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (buf[0] < '0' || buf[0] > '9' || errno || end[strspn(end, " \t\r\n")]) {
		buf[strcspn(buf, "\r\n")] = '\0';
		snprintf(why, n, "%s: not a number (\"%.24s\")", path, buf);
		return -EINVAL;
	}
	return 0;
}

/* Read a counter and add what it counted since the last read. A reading
 * below the last one is a wrap when the range is known: (max - prev) + now,
 * as Documentation/ABI/testing/sysfs-class-powercap describes. */
static int sys_step(sys_file *f, char *why, size_t n)
{
	uint64_t now;
	if (sys_u64(f->path, &now, why, n))
		return -1;
	if (now < f->prev && !(f->max && f->prev <= f->max)) {
		snprintf(why, n, "%s went backwards (%llu after %llu)", f->path,
			 (unsigned long long)now, (unsigned long long)f->prev);
		f->prev = now;
		return -1;
	}
	f->sum += now >= f->prev ? now - f->prev : f->max - f->prev + now;
	f->prev = now;
	return 0;
}

/* Sum of every file: J counted since open, or W now. Every counter is
 * stepped even after a failure, so that each stays in step. */
static int sys_src_read(void *st, double *v, char *why, size_t n)
{
	sys_src *s = st;
	uint64_t sum = 0;
	char spare[8];
	int rc = 0;
	for (int i = 0; i < s->n; i++) {
		uint64_t x = 0;
		char *w = rc ? spare : why;
		size_t wn = rc ? sizeof spare : n;
		if (s->counter ? sys_step(&s->f[i], w, wn) : sys_u64(s->f[i].path, &x, w, wn))
			rc = -1;
		sum += s->counter ? s->f[i].sum : x;
	}
	*v = (double)sum * 1e-6;
	return rc;
}

static void sys_src_close(void *st) { free(st); }

/* "dir/a/b" into a SYS_PATH buffer; 0, or -1 with why when too long. */
static int sys_join(char *path, const char *dir, const char *a, const char *b, char *why,
		    size_t n)
{
	if ((size_t)snprintf(path, SYS_PATH, "%s/%s/%s", dir, a, b) < SYS_PATH)
		return 0;
	snprintf(why, n, "%s/%s: path too long", dir, a);
	return -1;
}

/* Add dir/a/b to s; -1 with why when s is full or the path too long. */
static int sys_add(sys_src *s, const char *dir, const char *a, const char *b, char *why,
		   size_t n)
{
	if (s->n == SYS_MAX) {
		snprintf(why, n, "more than %d files to sum under %s", SYS_MAX, dir);
		return -1;
	}
	if (sys_join(s->f[s->n].path, dir, a, b, why, n))
		return -1;
	s->n++;
	return 0;
}

/* The last two components of a path: "hwmon0/power1_input". */
static const char *sys_tail(const char *path)
{
	const char *p = strrchr(path, '/');
	while (p && p > path && p[-1] != '/')
		p--;
	return p ? p : path;
}

/* Append "what" to a comma-separated detail. */
static void sys_detail(mb_pw_info *info, const char *what)
{
	size_t len = strlen(info->detail);
	snprintf(info->detail + len, sizeof info->detail - len, "%s%s", len ? ", " : "", what);
}

/* ---- RAPL: <root>/class/powercap/intel-rapl:N, package zones ---- */

/* Top-level zones only: "intel-rapl:0", not "intel-rapl:0:1" (a subzone)
 * nor "intel-rapl-mmio:0" (the same package through MMIO). */
static int rapl_zone(const struct dirent *d)
{
	unsigned z;
	int end = 0;
	return sscanf(d->d_name, "intel-rapl:%u%n", &z, &end) == 1 && d->d_name[end] == '\0';
}

/* Add the zone if it is a package (not psys, which counts the package
 * again); 0, or -1 with why. */
static int rapl_add(sys_src *s, const char *dir, const char *zone, mb_pw_info *info, char *why,
		    size_t n)
{
	char path[SYS_PATH], name[64];
	size_t len;
	sys_file *f;
	int e;
	if (sys_join(path, dir, zone, "name", why, n) || sys_read(path, name, sizeof name, why, n))
		return -1;
	name[strcspn(name, "\r\n")] = '\0';
	if (strncmp(name, "package", 7) != 0)
		return 0;
	if (sys_add(s, dir, zone, "energy_uj", why, n))
		return -1;
	f = &s->f[s->n - 1];
	if (sys_join(path, dir, zone, "max_energy_range_uj", why, n) ||
	    sys_u64(path, &f->max, why, n))
		return -1;
	e = sys_u64(f->path, &f->prev, why, n);
	if (e == -EACCES) {
		len = strlen(why);
		snprintf(why + len, n - len, " (root only since Linux 5.10, CVE-2020-8694)");
	}
	if (e)
		return -1;
	if (f->prev > f->max) {
		snprintf(why, n, "%s: %llu is above max_energy_range_uj %llu", f->path,
			 (unsigned long long)f->prev, (unsigned long long)f->max);
		return -1;
	}
	sys_detail(info, name);
	return 0;
}

static int rapl_open(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		     char *why, size_t n)
{
	char dir[SYS_PATH];
	struct dirent **ents;
	sys_src *s;
	int ne, rc = 0;
	(void)period_s;
	snprintf(dir, sizeof dir, "%s/class/powercap", sys_root(o));
	if ((ne = scandir(dir, &ents, rapl_zone, versionsort)) < 0) {
		snprintf(why, n, "%s: %s", dir, strerror(errno));
		return 1;
	}
	if (!(s = calloc(1, sizeof *s)))
		rc = mb_err(MB_ERR_NOMEM, "power: out of memory");
	for (int i = 0; i < ne; i++) {
		if (!rc && rapl_add(s, dir, ents[i]->d_name, info, why, n))
			rc = 1;
		free(ents[i]);
	}
	free(ents);
	if (!rc && s->n == 0) {
		snprintf(why, n, "no package zone (intel-rapl:N named package-*) under %s", dir);
		rc = 1;
	}
	if (rc) {
		free(s);
		return rc;
	}
	s->counter = info->counter = 1;
	*st = s;
	return 0;
}

const mb_pw_ops mb_pw_rapl = {
	.name = "rapl",
	.scope = "cpu package",
	.open = rapl_open,
	.read = sys_src_read,
	.close = sys_src_close,
};

/* ---- hwmon: <root>/class/hwmon/hwmon*: energy*_input, power*_{input,average} ---- */

enum { HW_ENERGY = 1, HW_POWER = 2, HW_METER = 4 };

static int hwmon_chip(const struct dirent *d)
{
	unsigned i;
	int end = 0;
	return sscanf(d->d_name, "hwmon%u%n", &i, &end) == 1 && d->d_name[end] == '\0';
}

/* HW_ENERGY or HW_POWER for a sensor file to sum, 0 otherwise. */
static int hwmon_kind(const char *chip, const char *file)
{
	char sib[SYS_PATH + 32];
	unsigned i;
	int end = 0;
	if (sscanf(file, "energy%u_input%n", &i, &end) == 1 && file[end] == '\0')
		return HW_ENERGY;
	if (sscanf(file, "power%u_input%n", &i, &end) == 1 && file[end] == '\0')
		return HW_POWER;
	end = 0;
	if (sscanf(file, "power%u_average%n", &i, &end) != 1 || file[end] != '\0')
		return 0;
	/* the same sensor's _input, where there is one, is read instead */
	snprintf(sib, sizeof sib, "%spower%u_input", chip, i);
	return access(sib, F_OK) == 0 ? 0 : HW_POWER;
}

/* The candidate sensors of one chip into s, each file's kind in kinds. */
static int hwmon_scan_chip(sys_src *s, int *kinds, const char *dir, const char *chip, char *why,
			   size_t n)
{
	char path[SYS_PATH], file[SYS_PATH], name[64] = "", spare[8];
	struct dirent **ents;
	int ne, meter, rc = 0;
	if (sys_join(path, dir, chip, "", why, n) || sys_join(file, dir, chip, "name", why, n))
		return -1;
	if ((ne = scandir(path, &ents, NULL, versionsort)) < 0)
		return 0; /* a chip that vanished has nothing to sum */
	if (sys_read(file, name, sizeof name, spare, sizeof spare) == 0) /* it may have none */
		name[strcspn(name, "\r\n")] = '\0';
	meter = strcmp(name, "power_meter") == 0 ? HW_METER : 0;
	for (int i = 0; i < ne; i++) {
		int k = rc ? 0 : hwmon_kind(path, ents[i]->d_name);
		if (k && sys_add(s, dir, chip, ents[i]->d_name, why, n) == 0)
			kinds[s->n - 1] = k | meter;
		else if (k)
			rc = -1;
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* Keep the sensors whose kind has all the bits of want. */
static void hwmon_keep(sys_src *s, int *kinds, int want)
{
	int m = 0;
	for (int i = 0; i < s->n; i++)
		if ((kinds[i] & want) == want) {
			kinds[m] = kinds[i];
			s->f[m++] = s->f[i];
		}
	s->n = m;
}

static int hwmon_any(const int *kinds, int n, int bit)
{
	for (int i = 0; i < n; i++)
		if (kinds[i] & bit)
			return 1;
	return 0;
}

/* Read every kept sensor once (a counter's first value) and list it. */
static int hwmon_probe(sys_src *s, mb_pw_info *info, char *why, size_t n)
{
	uint64_t x;
	for (int i = 0; i < s->n; i++) {
		sys_file *f = &s->f[i];
		if (sys_u64(f->path, s->counter ? &f->prev : &x, why, n))
			return -1;
		sys_detail(info, sys_tail(f->path));
	}
	return 0;
}

static int hwmon_select(sys_src *s, int *kinds, mb_pw_info *info, const char *dir, char *why,
			size_t n)
{
	if (hwmon_any(kinds, s->n, HW_METER)) {
		hwmon_keep(s, kinds, HW_METER);
		info->scope = "node";
	} else {
		info->scope = "hwmon sensors";
	}
	s->counter = info->counter = hwmon_any(kinds, s->n, HW_ENERGY);
	hwmon_keep(s, kinds, s->counter ? HW_ENERGY : HW_POWER);
	if (s->n == 0) {
		snprintf(why, n, "no power*_input, power*_average or energy*_input under %s", dir);
		return 1;
	}
	return hwmon_probe(s, info, why, n) ? 1 : 0;
}

static int hwmon_open(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		      char *why, size_t n)
{
	char dir[SYS_PATH];
	struct dirent **ents;
	int kinds[SYS_MAX], ne, rc = 0;
	sys_src *s;
	(void)period_s;
	snprintf(dir, sizeof dir, "%s/class/hwmon", sys_root(o));
	if ((ne = scandir(dir, &ents, hwmon_chip, versionsort)) < 0) {
		snprintf(why, n, "%s: %s", dir, strerror(errno));
		return 1;
	}
	if (!(s = calloc(1, sizeof *s)))
		rc = mb_err(MB_ERR_NOMEM, "power: out of memory");
	for (int i = 0; i < ne; i++) {
		if (!rc && hwmon_scan_chip(s, kinds, dir, ents[i]->d_name, why, n))
			rc = 1;
		free(ents[i]);
	}
	free(ents);
	if (!rc)
		rc = hwmon_select(s, kinds, info, dir, why, n);
	if (rc) {
		free(s);
		return rc;
	}
	*st = s;
	return 0;
}

const mb_pw_ops mb_pw_hwmon = {
	.name = "hwmon",
	.scope = "hwmon sensors",
	.open = hwmon_open,
	.read = sys_src_read,
	.close = sys_src_close,
};
