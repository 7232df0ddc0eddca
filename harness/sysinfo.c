/* sysinfo.c: the machine, build and environment facts each result records.
 *
 * Facts are read, never inferred: one that cannot be read is written as null
 * with a "<key>_reason" string beside it. The host inventory comes from
 * hwloc's topology (I/O objects included) plus /proc, /sys and uname; build
 * facts from build/buildinfo.h and each library's own version call; the
 * environment from an allow-list that refuses secret-looking names.
 */
#include "mb.h"
#include "sysinfo.h"

#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cblas.h>
#include <hwloc.h>
#include <mpi.h>

#include "buildinfo.h"
#include "result.h"
#include "sysinfo_int.h"

extern char **environ;

/* ---- JSON helpers: each returns 0 or MB_ERR_NOMEM ---- */

int mb_si_null(cJSON *o, const char *key, const char *reason)
{
	char rkey[96];
	snprintf(rkey, sizeof rkey, "%s_reason", key);
	if (!cJSON_AddNullToObject(o, key) || !cJSON_AddStringToObject(o, rkey, reason))
		return MB_ERR_NOMEM;
	return 0;
}

/* A string, or null with reason when val is NULL. */
int mb_si_str(cJSON *o, const char *key, const char *val, const char *reason)
{
	if (!val)
		return mb_si_null(o, key, reason);
	return cJSON_AddStringToObject(o, key, val) ? 0 : MB_ERR_NOMEM;
}

int mb_si_num(cJSON *o, const char *key, double v)
{
	return mb_json_add_num(o, key, v) ? 0 : MB_ERR_NOMEM;
}

static int si_u64(cJSON *o, const char *key, uint64_t v)
{
	return mb_json_add_u64(o, key, v) ? 0 : MB_ERR_NOMEM;
}

/* Attach item (NULL means its allocation failed); deletes it on failure. */
int mb_si_item(cJSON *o, const char *key, cJSON *item)
{
	if (!item)
		return MB_ERR_NOMEM;
	if (!cJSON_AddItemToObject(o, key, item)) {
		cJSON_Delete(item);
		return MB_ERR_NOMEM;
	}
	return 0;
}

/* mb_si_item when rc is 0; otherwise item is deleted and rc returned. */
int mb_si_attach(cJSON *o, const char *key, cJSON *item, int rc)
{
	if (rc) {
		cJSON_Delete(item);
		return rc;
	}
	return mb_si_item(o, key, item);
}

/* A new object appended to arr, or NULL. */
cJSON *mb_si_push_obj(cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();
	if (o && !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* o when rc is 0; otherwise o is deleted and NULL returned. */
static cJSON *si_done(cJSON *o, int rc)
{
	if (rc) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- small file readers ---- */

char *mb_si_trim(char *s)
{
	size_t n;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* First line of a small file, without its newline; 0 or -errno. */
int mb_si_read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	int e = 0;
	if (!f)
		return -errno;
	if (!fgets(buf, (int)n, f))
		e = ferror(f) ? (errno ? errno : EIO) : ENODATA;
	fclose(f);
	if (e)
		return -e;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Value of the first "key : value" line of /proc/cpuinfo whose key is key. */
static int si_cpuinfo(const char *key, char *buf, size_t n)
{
	char line[4096];
	int found = 0;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		if (strcmp(mb_si_trim(line), key) == 0) {
			mb_strlcpy(buf, mb_si_trim(colon + 1), n);
			found = buf[0] != '\0';
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/* Copy an os-release value, removing shell quoting ("..." or '...'). */
static void si_unquote(const char *s, char *out, size_t n)
{
	char q = (*s == '"' || *s == '\'') ? *s++ : '\0';
	size_t o = 0;
	for (; *s && *s != '\n' && o + 1 < n; s++) {
		if (q && *s == q)
			break;
		if (q == '"' && *s == '\\' && s[1] && strchr("\"\\$`", s[1]))
			s++;
		out[o++] = *s;
	}
	out[o] = '\0';
}

/* PRETTY_NAME; /usr/lib/os-release is read only when /etc/os-release is
 * absent, as os-release(5) prescribes. */
static int si_os_release(char *buf, size_t n)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/etc/os-release", "r");
	if (!f)
		f = fopen("/usr/lib/os-release", "r");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof line, f)) {
		if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
			si_unquote(line + 12, buf, n);
			found = buf[0] != '\0';
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int si_meminfo_total(uint64_t *bytes)
{
	char line[256];
	unsigned long long kb = 0;
	int found = 0;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof line, f))
		found = sscanf(line, "MemTotal: %llu kB", &kb) == 1 && kb > 0;
	fclose(f);
	*bytes = (uint64_t)kb * 1024;
	return found ? 0 : -ENOENT;
}

/* A number read from a sysfs file, or null with the path and the error. */
int mb_si_sys_num(cJSON *o, const char *key, const char *path, int positive)
{
	char buf[64], why[PATH_MAX + 96];
	char *end;
	long v;
	int e = mb_si_read_line(path, buf, sizeof buf);
	if (e) {
		snprintf(why, sizeof why, "%s: %s", path, strerror(-e));
		return mb_si_null(o, key, why);
	}
	v = strtol(buf, &end, 10);
	if (end == buf || (positive && v <= 0)) {
		snprintf(why, sizeof why, "%s reads \"%s\" (the kernel reports it as unknown)", path, buf);
		return mb_si_null(o, key, why);
	}
	return mb_si_num(o, key, (double)v);
}

int mb_si_sys_str(cJSON *o, const char *key, const char *path)
{
	char buf[128], why[PATH_MAX + 96];
	int e = mb_si_read_line(path, buf, sizeof buf);
	if (e) {
		snprintf(why, sizeof why, "%s: %s", path, strerror(-e));
		return mb_si_null(o, key, why);
	}
	return mb_si_str(o, key, mb_si_trim(buf), NULL);
}

/* ---- host identity ---- */

static int si_host(cJSON *o)
{
	char host[256], os[256], why[160];
	struct utsname u;
	int rc;

	if (gethostname(host, sizeof host) == 0) {
		host[sizeof host - 1] = '\0';
		rc = mb_si_str(o, "hostname", host, NULL);
	} else {
		snprintf(why, sizeof why, "gethostname: %s", strerror(errno));
		rc = mb_si_null(o, "hostname", why);
	}
	if (si_os_release(os, sizeof os) == 0)
		rc |= mb_si_str(o, "os", os, NULL);
	else
		rc |= mb_si_null(o, "os", "no PRETTY_NAME in /etc/os-release or /usr/lib/os-release");
	if (uname(&u) == 0) {
		rc |= mb_si_str(o, "kernel", u.release, NULL);
		rc |= mb_si_str(o, "kernel_version", u.version, NULL);
		rc |= mb_si_str(o, "arch", u.machine, NULL);
	} else {
		snprintf(why, sizeof why, "uname: %s", strerror(errno));
		rc |= mb_si_null(o, "kernel", why);
		rc |= mb_si_null(o, "kernel_version", why);
		rc |= mb_si_null(o, "arch", why);
	}
	return rc;
}

static int si_cpu_model(cJSON *o, hwloc_topology_t t)
{
	/* x86 "model name", MIPS "cpu model", POWER "cpu", RISC-V "uarch",
	 * 32-bit ARM "Processor". */
	static const char *const keys[] = { "model name", "cpu model", "cpu", "uarch", "Processor" };
	char buf[256], impl[32], part[32];
	hwloc_obj_t pkg = t ? hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0) : NULL;
	const char *m = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;

	for (size_t i = 0; i < MB_ARRAY_LEN(keys); i++)
		if (si_cpuinfo(keys[i], buf, sizeof buf) == 0)
			return mb_si_str(o, "cpu_model", buf, NULL);
	if (m && *m)
		return mb_si_str(o, "cpu_model", m, NULL);
	/* arm64 kernels print no name, only the codes; record them raw */
	if (si_cpuinfo("CPU implementer", impl, sizeof impl) == 0 &&
	    si_cpuinfo("CPU part", part, sizeof part) == 0) {
		snprintf(buf, sizeof buf, "implementer %s part %s", impl, part);
		return mb_si_str(o, "cpu_model", buf, NULL);
	}
	return mb_si_null(o, "cpu_model", "no model line in /proc/cpuinfo and no CPUModel from hwloc");
}

/* ---- hwloc: counts, memory, caches ---- */

/* The whole machine, disallowed (cgroup-excluded) PUs and nodes included,
 * instruction caches (hidden by default) too, with PCI devices and OS
 * devices of the important classes.
 *
 * The linux component reads the PCI tree from sysfs by itself, so three
 * plugins are left out: "pci" (libpciaccess; its memory is reported lost by
 * LeakSanitizer once the plugin is unloaded, failing `make asan`), "opencl"
 * (enumerating OpenCL platforms can initialise a GPU driver and take
 * seconds) and "gl" (tries to open X displays). What they add is names and
 * OS devices that nothing here uses. */
static hwloc_topology_t si_topo_load(char *why, size_t n)
{
	static const char *const skip[] = { "pci", "opencl", "gl" };
	hwloc_topology_t t;
	if (hwloc_topology_init(&t) != 0) {
		snprintf(why, n, "hwloc_topology_init: %s", strerror(errno));
		return NULL;
	}
	/* a component that is not installed cannot be blacklisted: ignore that */
	for (size_t i = 0; i < MB_ARRAY_LEN(skip); i++)
		(void)hwloc_topology_set_components(t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST,
						    skip[i]);
	if (hwloc_topology_set_flags(t, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED) != 0 ||
	    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT) != 0 ||
	    hwloc_topology_set_icache_types_filter(t, HWLOC_TYPE_FILTER_KEEP_ALL) != 0 ||
	    hwloc_topology_load(t) != 0) {
		snprintf(why, n, "hwloc topology load: %s", strerror(errno));
		hwloc_topology_destroy(t);
		return NULL;
	}
	return t;
}

static int si_count(cJSON *o, const char *key, hwloc_topology_t t, hwloc_obj_type_t type,
		    const char *why)
{
	char r[128];
	int n;
	if (!t)
		return mb_si_null(o, key, why);
	n = hwloc_get_nbobjs_by_type(t, type);
	if (n > 0)
		return mb_si_num(o, key, n);
	snprintf(r, sizeof r, "hwloc found no %s objects", hwloc_obj_type_string(type));
	return mb_si_null(o, key, r);
}

/* PUs that cgroups/cpusets let this process use (not its binding). */
static int si_pus_allowed(cJSON *o, hwloc_topology_t t, const char *why)
{
	int n;
	if (!t)
		return mb_si_null(o, "pus_allowed", why);
	n = hwloc_bitmap_weight(hwloc_topology_get_allowed_cpuset(t));
	if (n > 0)
		return mb_si_num(o, "pus_allowed", n);
	return mb_si_null(o, "pus_allowed", "hwloc reports an empty or infinite allowed cpuset");
}

/* /proc/meminfo's MemTotal (what the OS can use) first, hwloc's total (the
 * NUMA nodes' memory) when it is missing; both are recorded because they can
 * differ (seen on a VM: 8 GB on the node, 24 GB in MemTotal). */
static int si_memory(cJSON *o, hwloc_topology_t t)
{
	uint64_t bytes = 0, meminfo = 0;
	int have_meminfo = si_meminfo_total(&meminfo) == 0, rc;
	hwloc_obj_t numa = NULL;
	if (t) {
		bytes = hwloc_get_root_obj(t)->total_memory;
		while (!bytes && (numa = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, numa)))
			bytes += numa->attr->numanode.local_memory;
	}
	if (have_meminfo)
		rc = si_u64(o, "meminfo_total_bytes", meminfo);
	else
		rc = mb_si_null(o, "meminfo_total_bytes", "no MemTotal line in /proc/meminfo");
	rc |= bytes ? si_u64(o, "hwloc_memory_bytes", bytes)
		    : mb_si_null(o, "hwloc_memory_bytes", "hwloc reported no memory");
	if (have_meminfo)
		return rc | si_u64(o, "memory_bytes", meminfo) |
		       mb_si_str(o, "memory_source", "meminfo", NULL);
	if (bytes)
		return rc | si_u64(o, "memory_bytes", bytes) | mb_si_str(o, "memory_source", "hwloc", NULL);
	rc |= mb_si_null(o, "memory_bytes", "neither hwloc nor /proc/meminfo reported total memory");
	return rc | mb_si_null(o, "memory_source", "no source reported total memory");
}

struct si_cache {
	unsigned level;
	hwloc_obj_cache_type_t type;
	uint64_t size;
	unsigned count;
};

static int si_cache_cmp(const void *a, const void *b)
{
	const struct si_cache *x = a, *y = b;
	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return (x->size > y->size) - (x->size < y->size);
}

static const char *si_cache_type(hwloc_obj_cache_type_t t)
{
	switch (t) {
	case HWLOC_OBJ_CACHE_DATA: return "data";
	case HWLOC_OBJ_CACHE_INSTRUCTION: return "instruction";
	default: return "unified";
	}
}

/* Group cache objects by (level, type, size); 0 or -1 when tab is full. */
static int si_cache_collect(hwloc_topology_t t, struct si_cache *tab, size_t cap, size_t *n)
{
	static const hwloc_obj_type_t types[] = {
		HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L4CACHE,
		HWLOC_OBJ_L5CACHE, HWLOC_OBJ_L1ICACHE, HWLOC_OBJ_L2ICACHE, HWLOC_OBJ_L3ICACHE,
	};
	for (size_t i = 0; i < MB_ARRAY_LEN(types); i++) {
		for (hwloc_obj_t c = NULL; (c = hwloc_get_next_obj_by_type(t, types[i], c));) {
			struct hwloc_cache_attr_s *a = &c->attr->cache;
			size_t j = 0;
			while (j < *n && !(tab[j].level == a->depth && tab[j].type == a->type &&
					   tab[j].size == a->size))
				j++;
			if (j == *n) {
				if (*n == cap)
					return -1;
				tab[(*n)++] = (struct si_cache){ a->depth, a->type, a->size, 0 };
			}
			tab[j].count++;
		}
	}
	return 0;
}

static int si_caches(cJSON *o, hwloc_topology_t t, const char *why)
{
	struct si_cache tab[64];
	size_t n = 0;
	cJSON *arr;
	int rc = 0;

	if (!t)
		return mb_si_null(o, "caches", why);
	if (si_cache_collect(t, tab, MB_ARRAY_LEN(tab), &n) != 0)
		return mb_si_null(o, "caches", "more than 64 distinct kinds of cache");
	if (n == 0)
		return mb_si_null(o, "caches", "hwloc found no cache objects");
	qsort(tab, n, sizeof tab[0], si_cache_cmp);
	arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n && !rc; i++) {
		cJSON *c = mb_si_push_obj(arr);
		if (!c) {
			rc = MB_ERR_NOMEM;
			break;
		}
		rc |= mb_si_num(c, "level", tab[i].level);
		rc |= mb_si_str(c, "type", si_cache_type(tab[i].type), NULL);
		if (tab[i].size)
			rc |= si_u64(c, "size_bytes", tab[i].size);
		else
			rc |= mb_si_null(c, "size_bytes", "hwloc reports size 0 (unknown)");
		rc |= mb_si_num(c, "count", tab[i].count);
	}
	return mb_si_attach(o, "caches", arr, rc);
}

cJSON *mb_sysinfo_system(void)
{
	char why[256] = "";
	hwloc_topology_t t = si_topo_load(why, sizeof why);
	cJSON *o = cJSON_CreateObject();
	int rc = o ? 0 : MB_ERR_NOMEM;

	if (!rc) {
		rc |= si_host(o);
		rc |= si_cpu_model(o, t);
		rc |= si_count(o, "sockets", t, HWLOC_OBJ_PACKAGE, why);
		rc |= si_count(o, "cores", t, HWLOC_OBJ_CORE, why);
		rc |= si_count(o, "pus", t, HWLOC_OBJ_PU, why);
		rc |= si_pus_allowed(o, t, why);
		rc |= si_count(o, "numa_nodes", t, HWLOC_OBJ_NUMANODE, why);
		rc |= si_memory(o, t);
		rc |= si_caches(o, t, why);
		rc |= mb_si_accelerators(o, t, why);
		rc |= mb_si_nics(o, t, why);
	}
	if (t)
		hwloc_topology_destroy(t);
	return si_done(o, rc);
}

/* ---- build ---- */

static int si_compiler(cJSON *o)
{
	char buf[256];
#if defined(__clang__)
	snprintf(buf, sizeof buf, "clang %s", __clang_version__);
#elif defined(__GNUC__)
	snprintf(buf, sizeof buf, "gcc %s", __VERSION__);
#else
	buf[0] = '\0';
#endif
	if (!buf[0])
		return mb_si_null(o, "compiler", "compiler is neither gcc nor clang");
	return mb_si_str(o, "compiler", mb_si_trim(buf), NULL);
}

/* A full hex object name (SHA-1 or SHA-256), the only thing trusted as a commit. */
static int si_is_commit(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");
	return s[n] == '\0' && (n == 40 || n == 64);
}

static int si_git(cJSON *o)
{
	char why[160];
	if (!si_is_commit(MB_GIT_COMMIT)) {
		snprintf(why, sizeof why, "not built from a git commit (build recorded \"%.60s\")",
			 MB_GIT_COMMIT);
		return mb_si_null(o, "git_commit", why) | mb_si_null(o, "git_dirty", why);
	}
	if (mb_si_str(o, "git_commit", MB_GIT_COMMIT, NULL) != 0 ||
	    !cJSON_AddBoolToObject(o, "git_dirty", MB_GIT_DIRTY))
		return MB_ERR_NOMEM;
	return 0;
}

static cJSON *si_lib_openblas(void)
{
	cJSON *o = cJSON_CreateObject();
	char cfg[512];
	const char *s;
	int rc;
	if (!o)
		return NULL;
	s = openblas_get_config();
	if (s)
		mb_strlcpy(cfg, s, sizeof cfg);
	rc = mb_si_str(o, "config", s ? mb_si_trim(cfg) : NULL, "openblas_get_config returned NULL");
	rc |= mb_si_str(o, "corename", openblas_get_corename(), "openblas_get_corename returned NULL");
	return si_done(o, rc);
}

/* MPI_Get_library_version and MPI_Get_version may be called before MPI_Init. */
static cJSON *si_lib_mpi(void)
{
	cJSON *o = cJSON_CreateObject();
	char buf[MPI_MAX_LIBRARY_VERSION_STRING + 1], std[32];
	int len = 0, major = 0, minor = 0, rc;
	if (!o)
		return NULL;
	if (MPI_Get_library_version(buf, &len) == MPI_SUCCESS) {
		buf[len >= 0 && len < (int)sizeof buf ? len : (int)sizeof buf - 1] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		rc = mb_si_str(o, "library_version", mb_si_trim(buf), NULL);
	} else {
		rc = mb_si_null(o, "library_version", "MPI_Get_library_version failed");
	}
	if (MPI_Get_version(&major, &minor) == MPI_SUCCESS) {
		snprintf(std, sizeof std, "%d.%d", major, minor);
		rc |= mb_si_str(o, "standard", std, NULL);
	} else {
		rc |= mb_si_null(o, "standard", "MPI_Get_version failed");
	}
	return si_done(o, rc);
}

/* hwloc 2.9 reports API 0x20800: the API version is not the release. */
static cJSON *si_lib_hwloc(void)
{
	cJSON *o = cJSON_CreateObject();
	char rt[16], ct[16];
	int rc;
	if (!o)
		return NULL;
	snprintf(rt, sizeof rt, "0x%x", hwloc_get_api_version());
	snprintf(ct, sizeof ct, "0x%x", (unsigned)HWLOC_API_VERSION);
	rc = mb_si_str(o, "api_version", rt, NULL);
	rc |= mb_si_str(o, "api_version_compiled", ct, NULL);
	return si_done(o, rc);
}

static cJSON *si_lib_cjson(void)
{
	cJSON *o = cJSON_CreateObject();
	char ct[32];
	int rc;
	if (!o)
		return NULL;
	snprintf(ct, sizeof ct, "%d.%d.%d", CJSON_VERSION_MAJOR, CJSON_VERSION_MINOR,
		 CJSON_VERSION_PATCH);
	rc = mb_si_str(o, "version", cJSON_Version(), "cJSON_Version returned NULL");
	rc |= mb_si_str(o, "version_compiled", ct, NULL);
	return si_done(o, rc);
}

static cJSON *si_libraries(void)
{
	cJSON *o = cJSON_CreateObject();
	int rc;
	if (!o)
		return NULL;
	rc = mb_si_item(o, "openblas", si_lib_openblas());
	rc |= mb_si_item(o, "mpi", si_lib_mpi());
	rc |= mb_si_item(o, "hwloc", si_lib_hwloc());
	rc |= mb_si_item(o, "cjson", si_lib_cjson());
	/* the accelerator backends fill these when they are compiled in */
	rc |= mb_si_null(o, "cuda", "not built in");
	rc |= mb_si_null(o, "nccl", "not built in");
	rc |= mb_si_null(o, "cann", "not built in");
	return si_done(o, rc);
}

cJSON *mb_sysinfo_build(void)
{
	cJSON *o = cJSON_CreateObject();
	int rc;
	if (!o)
		return NULL;
	rc = mb_si_str(o, "moebench_version", MB_VERSION, NULL);
	rc |= si_git(o);
	rc |= si_compiler(o);
	rc |= mb_si_str(o, "cc", MB_CC, NULL);
	rc |= mb_si_str(o, "cflags", MB_CFLAGS, NULL);
	rc |= mb_si_item(o, "libraries", si_libraries());
	return si_done(o, rc);
}

/* ---- environment ---- */

#define SI_ENV_VALUE_MAX 256
#define SI_ENV_NAME_MAX 256

int mb_env_allowed(const char *name)
{
	static const char *const exact[] = {
		"OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OPENBLAS_NUM_THREADS",
		"GOTO_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
		"ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
		"HIP_VISIBLE_DEVICES",
	};
	static const char *const prefix[] = { "NCCL_", "HCCL_", "OMPI_", "SLURM_", "MOEBENCH_" };
	/* checked first, against every name: a secret never gets in by prefix */
	static const char *const deny[] = { "KEY", "TOKEN", "SECRET", "PASS", "CRED", "AUTH" };

	if (!name || !*name)
		return 0;
	/* real names are [A-Za-z0-9_]; anything else could not be a JSON key */
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			return 0;
	for (size_t i = 0; i < MB_ARRAY_LEN(deny); i++)
		if (strcasestr(name, deny[i]))
			return 0;
	for (size_t i = 0; i < MB_ARRAY_LEN(exact); i++)
		if (strcmp(name, exact[i]) == 0)
			return 1;
	for (size_t i = 0; i < MB_ARRAY_LEN(prefix); i++) {
		size_t n = strlen(prefix[i]);
		if (strncmp(name, prefix[i], n) == 0 && name[n] != '\0')
			return 1;
	}
	return 0;
}

/* Length of the well-formed UTF-8 sequence at s (1-4), 0 if there is none. */
static size_t si_utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4
												  : 0;
	}
	return 0;
}

/* At most SI_ENV_VALUE_MAX bytes of v, cut between characters; bytes that
 * are not UTF-8 become '?' (cJSON would otherwise write invalid JSON). */
static void si_env_value(const char *v, char out[SI_ENV_VALUE_MAX + 1])
{
	const unsigned char *s = (const unsigned char *)v;
	size_t o = 0;
	while (*s) {
		size_t k = si_utf8_len(s);
		if (o + (k ? k : 1) > SI_ENV_VALUE_MAX)
			break;
		if (k) {
			memcpy(out + o, s, k);
			o += k;
			s += k;
		} else {
			out[o++] = '?';
			s++;
		}
	}
	out[o] = '\0';
}

struct si_env {
	const char *entry; /* "NAME=value" in environ */
	size_t namelen;
	size_t idx;        /* position in environ: the first of duplicates wins */
};

static int si_env_cmp(const void *a, const void *b)
{
	const struct si_env *x = a, *y = b;
	int c = memcmp(x->entry, y->entry, x->namelen < y->namelen ? x->namelen : y->namelen);
	if (c)
		return c;
	if (x->namelen != y->namelen)
		return x->namelen < y->namelen ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The allowed entries of environ, sorted by name; *n of them. */
static struct si_env *si_env_collect(size_t *n)
{
	size_t total = 0;
	struct si_env *v;
	char name[SI_ENV_NAME_MAX];

	*n = 0;
	while (environ && environ[total])
		total++;
	if (!(v = calloc(total ? total : 1, sizeof *v)))
		return NULL;
	for (size_t i = 0; i < total; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t)(eq - environ[i]) : 0;
		if (len == 0 || len >= sizeof name)
			continue;
		memcpy(name, environ[i], len);
		name[len] = '\0';
		if (mb_env_allowed(name))
			v[(*n)++] = (struct si_env){ environ[i], len, i };
	}
	qsort(v, *n, sizeof *v, si_env_cmp);
	return v;
}

cJSON *mb_sysinfo_environment(void)
{
	char name[SI_ENV_NAME_MAX], val[SI_ENV_VALUE_MAX + 1];
	cJSON *o = cJSON_CreateObject();
	struct si_env *v;
	size_t n;
	int ok = 1;

	if (!o || !(v = si_env_collect(&n))) {
		cJSON_Delete(o);
		return NULL;
	}
	for (size_t i = 0; i < n && ok; i++) {
		if (i > 0 && v[i].namelen == v[i - 1].namelen &&
		    memcmp(v[i].entry, v[i - 1].entry, v[i].namelen) == 0)
			continue;
		memcpy(name, v[i].entry, v[i].namelen);
		name[v[i].namelen] = '\0';
		si_env_value(v[i].entry + v[i].namelen + 1, val);
		ok = cJSON_AddStringToObject(o, name, val) != NULL;
	}
	free(v);
	return si_done(o, ok ? 0 : MB_ERR_NOMEM);
}
