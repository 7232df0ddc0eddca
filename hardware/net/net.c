/* net.c: interconnect counter snapshots and their deltas (net.h says what is
 * read, in which units, and what is left out).
 */
#include "../../harness/mb.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../harness/result.h"
#include "net.h"

enum { NET_TX_BYTES, NET_RX_BYTES, NET_TX_PACKETS, NET_RX_PACKETS, NET_ERRORS, NET_DROPS, NET_NFIELDS };
static const char *const net_field_names[NET_NFIELDS] = {
	"tx_bytes", "rx_bytes", "tx_packets", "rx_packets", "errors", "drops",
};

enum { NET_LOOPBACK, NET_VIRTUAL, NET_ETHERNET, NET_INFINIBAND, NET_NVLINK, NET_OTHER };
static const char *const net_kind_names[] = {
	"loopback", "virtual", "ethernet", "infiniband", "nvlink", "other",
};

/* Counter read errors besides errno values. */
#define NET_E_NAN (-1)  /* the file does not hold a decimal counter */
#define NET_E_NVML (-2) /* NVML returned no value for the field */

typedef struct net_ctr {
	const char *name; /* file under the interface's counter directory, or NVML field */
	int field;        /* NET_TX_BYTES ... */
	uint64_t scale;   /* bytes (or events) per count */
	uint64_t sat;     /* the value a saturating counter stops at; 0: it wraps */
} net_ctr;

/* One way of reading an interface's counters. */
typedef struct net_src {
	const char *counters; /* its name in the inventory */
	const net_ctr *ctr;
	size_t n;
} net_src;

static const net_ctr net_netdev_ctr[] = {
	{"tx_bytes", NET_TX_BYTES, 1, 0},     {"rx_bytes", NET_RX_BYTES, 1, 0},
	{"tx_packets", NET_TX_PACKETS, 1, 0}, {"rx_packets", NET_RX_PACKETS, 1, 0},
	{"tx_errors", NET_ERRORS, 1, 0},      {"rx_errors", NET_ERRORS, 1, 0},
	{"tx_dropped", NET_DROPS, 1, 0},      {"rx_dropped", NET_DROPS, 1, 0},
};

/* Error counters of both InfiniBand tables; they saturate at the widths of
 * the IBA PortCounters attribute. */
#define NET_IB_ERRORS                                                       \
	{"counters/symbol_error", NET_ERRORS, 1, 0xffff},                   \
	{"counters/port_rcv_errors", NET_ERRORS, 1, 0xffff},                \
	{"counters/port_rcv_remote_physical_errors", NET_ERRORS, 1, 0xffff}, \
	{"counters/local_link_integrity_errors", NET_ERRORS, 1, 0xf},       \
	{"counters/excessive_buffer_overrun_errors", NET_ERRORS, 1, 0xf},   \
	{"counters/port_xmit_constraint_errors", NET_ERRORS, 1, 0xff},      \
	{"counters/port_rcv_constraint_errors", NET_ERRORS, 1, 0xff},       \
	{"counters/link_downed", NET_ERRORS, 1, 0xff},                      \
	{"counters/link_error_recovery", NET_ERRORS, 1, 0xff},              \
	{"counters/port_xmit_discards", NET_DROPS, 1, 0xffff},              \
	{"counters/VL15_dropped", NET_DROPS, 1, 0xffff}

/* counters/: 64-bit where the HCA has extended counters, else 32-bit and
 * saturating; a value of exactly 2^32-1 is taken as saturated either way. */
static const net_ctr net_ib_ctr[] = {
	{"counters/port_xmit_data", NET_TX_BYTES, 4, UINT32_MAX},
	{"counters/port_rcv_data", NET_RX_BYTES, 4, UINT32_MAX},
	{"counters/port_xmit_packets", NET_TX_PACKETS, 1, UINT32_MAX},
	{"counters/port_rcv_packets", NET_RX_PACKETS, 1, UINT32_MAX},
	NET_IB_ERRORS,
};

static const net_ctr net_ib_ext_ctr[] = {
	{"counters_ext/port_xmit_data_64", NET_TX_BYTES, 4, 0},
	{"counters_ext/port_rcv_data_64", NET_RX_BYTES, 4, 0},
	{"counters_ext/port_xmit_packets_64", NET_TX_PACKETS, 1, 0},
	{"counters_ext/port_rcv_packets_64", NET_RX_PACKETS, 1, 0},
	NET_IB_ERRORS,
};

static const net_ctr net_nvml_ctr[] = {
	{"NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX", NET_TX_BYTES, 1024, 0},
	{"NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX", NET_RX_BYTES, 1024, 0},
};

static const net_src net_netdev = {"sysfs net statistics", net_netdev_ctr, MB_ARRAY_LEN(net_netdev_ctr)};
static const net_src net_ib = {"infiniband port counters", net_ib_ctr, MB_ARRAY_LEN(net_ib_ctr)};
static const net_src net_ib_ext = {"infiniband port counters_ext", net_ib_ext_ctr,
				   MB_ARRAY_LEN(net_ib_ext_ctr)};
static const net_src net_nvml = {"nvml nvlink throughput", net_nvml_ctr, MB_ARRAY_LEN(net_nvml_ctr)};

#define NET_MAX_CTR MB_ARRAY_LEN(net_ib_ctr)
_Static_assert(MB_ARRAY_LEN(net_netdev_ctr) <= NET_MAX_CTR && MB_ARRAY_LEN(net_ib_ext_ctr) <= NET_MAX_CTR &&
		       MB_ARRAY_LEN(net_nvml_ctr) <= NET_MAX_CTR,
	       "net_if holds the largest counter table");

typedef struct net_if {
	char name[MB_NET_NAME_MAX];
	int kind;
	const net_src *src;
	uint64_t val[NET_MAX_CTR];
	int err[NET_MAX_CTR]; /* 0, an errno, NET_E_NAN or NET_E_NVML */
} net_if;

struct mb_net_snap {
	int n;
	int past_max;   /* interfaces not read: the table was full */
	int long_names; /* names that do not fit MB_NET_NAME_MAX */
	char note[512];
	net_if ifs[MB_NET_MAX_IF]; /* sorted by name once complete */
};

/* ---- reading ---- */

static void net_note(mb_net_snap *s, const char *fmt, ...) MB_PRINTF(2, 3);
static void net_note(mb_net_snap *s, const char *fmt, ...)
{
	size_t len = strlen(s->note);
	va_list ap;
	if (len + 3 >= sizeof s->note)
		return;
	if (len) {
		memcpy(s->note + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(s->note + len, sizeof s->note - len, fmt, ap);
	va_end(ap);
}

static const char *net_strerr(int e)
{
	if (e == NET_E_NAN)
		return "not a decimal counter";
	if (e == NET_E_NVML)
		return "NVML returned no value";
	return strerror(e);
}

/* The first line of a small file under dfd, without its newline: 0 or an
 * errno. Non-blocking, so that a FIFO in a hostile tree reads as empty. */
static int net_read_line(int dfd, const char *name, char *buf, size_t n)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK), e;
	ssize_t len;
	if (fd < 0)
		return errno;
	len = read(fd, buf, n - 1);
	e = errno;
	close(fd);
	if (len < 0)
		return e;
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int net_parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	const char *p;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	if (p == s || *p)
		return 0;
	*v = x;
	return 1;
}

/* A decimal counter file: 0, an errno or NET_E_NAN. */
static int net_read_u64(int dfd, const char *name, uint64_t *v)
{
	char buf[24]; /* 20 digits, a newline, and room to see a longer file */
	int e = net_read_line(dfd, name, buf, sizeof buf);
	if (e)
		return e;
	return strlen(buf) <= 20 && net_parse_u64(buf, v) ? 0 : NET_E_NAN;
}

/* Every counter of f from directory dfd, or dir_err for each when the
 * directory could not be opened (dfd < 0). */
static void net_read_ctrs(net_if *f, int dfd, int dir_err)
{
	for (size_t i = 0; i < f->src->n; i++)
		f->err[i] = dfd < 0 ? dir_err : net_read_u64(dfd, f->src->ctr[i].name, &f->val[i]);
}

/* A new entry named by fmt, or NULL (counted for the note) when the table is
 * full or the name does not fit. The caller sets its kind and counters. */
static net_if *net_add(mb_net_snap *s, const net_src *src, const char *fmt, ...) MB_PRINTF(3, 4);
static net_if *net_add(mb_net_snap *s, const net_src *src, const char *fmt, ...)
{
	net_if *f;
	va_list ap;
	int len;
	if (s->n == MB_NET_MAX_IF) {
		s->past_max++;
		return NULL;
	}
	f = &s->ifs[s->n];
	va_start(ap, fmt);
	len = vsnprintf(f->name, sizeof f->name, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof f->name) {
		s->long_names++;
		return NULL;
	}
	f->src = src;
	s->n++;
	return f;
}

static int net_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* root/sub for listing, or NULL; failures are noted, and ENOENT too when
 * the directory is expected on every Linux host. */
static DIR *net_opendir(mb_net_snap *s, const char *root, const char *sub, int expected)
{
	char path[PATH_MAX];
	DIR *d;
	int e;
	if (snprintf(path, sizeof path, "%s/%s", root, sub) >= (int)sizeof path) {
		net_note(s, "cannot list %s under the root: path too long", sub);
		return NULL;
	}
	d = opendir(path);
	e = errno;
	if (!d && (expected || e != ENOENT))
		net_note(s, "cannot list %s: %s", path, strerror(e));
	return d;
}

/* The kind of the net device whose directory is ifd (net.h). */
static int net_netdev_kind(int ifd)
{
	uint64_t type = UINT64_MAX;
	if (net_read_u64(ifd, "type", &type) == 0 && type == 772)
		return NET_LOOPBACK;
	if (faccessat(ifd, "device", F_OK, 0) != 0)
		return NET_VIRTUAL;
	return type == 1 ? NET_ETHERNET : type == 32 ? NET_INFINIBAND : NET_OTHER;
}

static int net_opendirat(int dfd, const char *name)
{
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* One entry of class/net; plain files such as bonding_masters are not
 * devices and are passed over. */
static void net_read_netdev(mb_net_snap *s, int net, const char *name)
{
	int ifd = net_opendirat(net, name), sfd, e;
	net_if *f;
	if (ifd < 0)
		return;
	if ((f = net_add(s, &net_netdev, "%s", name))) {
		sfd = net_opendirat(ifd, "statistics");
		e = errno;
		net_read_ctrs(f, sfd, e);
		f->kind = net_netdev_kind(ifd);
		if (sfd >= 0)
			close(sfd);
	}
	close(ifd);
}

static void net_read_netdevs(mb_net_snap *s, const char *root)
{
	DIR *d = net_opendir(s, root, "class/net", 1);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!net_dot(e->d_name))
			net_read_netdev(s, dirfd(d), e->d_name);
	if (d)
		closedir(d);
}

static void net_read_ib_port(mb_net_snap *s, int ports, const char *dev, const char *port)
{
	int fd = net_opendirat(ports, port), ext;
	char layer[32];
	net_if *f;
	if (fd < 0)
		return;
	ext = faccessat(fd, "counters_ext/port_xmit_data_64", F_OK, 0) == 0;
	if ((f = net_add(s, ext ? &net_ib_ext : &net_ib, "%s:%s", dev, port))) {
		int roce = net_read_line(fd, "link_layer", layer, sizeof layer) == 0 &&
			   strcmp(layer, "Ethernet") == 0;
		f->kind = roce ? NET_ETHERNET : NET_INFINIBAND;
		net_read_ctrs(f, fd, 0);
	}
	close(fd);
}

static void net_read_ib_dev(mb_net_snap *s, int devs, const char *dev)
{
	char path[NAME_MAX + 8];
	DIR *d = NULL;
	struct dirent *e;
	int fd;
	snprintf(path, sizeof path, "%s/ports", dev);
	fd = net_opendirat(devs, path);
	if (fd >= 0 && !(d = fdopendir(fd)))
		close(fd);
	while (d && (e = readdir(d)))
		if (!net_dot(e->d_name))
			net_read_ib_port(s, dirfd(d), dev, e->d_name);
	if (d)
		closedir(d);
}

static void net_read_ib(mb_net_snap *s, const char *root)
{
	DIR *d = net_opendir(s, root, "class/infiniband", 0);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!net_dot(e->d_name))
			net_read_ib_dev(s, dirfd(d), e->d_name);
	if (d)
		closedir(d);
}

/* ---- NVLink through NVML, declared here so that no NVML header is needed
 * (ecosystem.md §5.3: the field value layout is 40 bytes, value at 32) ---- */

typedef struct net_nvml_dev *net_nvml_dev;
typedef struct net_nvml_field {
	unsigned int fieldId, scopeId;
	long long timestamp, latencyUsec;
	int valueType, nvmlReturn;
	union {
		double d;
		unsigned int ui;
		unsigned long ul;
		unsigned long long ull;
		long long sll;
		int si;
		unsigned short us;
	} value;
} net_nvml_field;
_Static_assert(sizeof(net_nvml_field) == 40 && offsetof(net_nvml_field, value) == 32,
	       "nvmlFieldValue_t layout (LP64)");

enum { NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139 };
enum { NVML_ERROR_NOT_SUPPORTED = 3 };
enum { NVML_VALUE_TYPE_UNSIGNED_INT = 1, NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
       NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3 };

typedef int (*net_nvml_void_fn)(void);
typedef int (*net_nvml_count_fn)(unsigned int *n);
typedef int (*net_nvml_handle_fn)(unsigned int i, net_nvml_dev *d);
typedef int (*net_nvml_fields_fn)(net_nvml_dev d, int n, net_nvml_field *v);

typedef struct net_nvml_api {
	net_nvml_void_fn init, shutdown;
	net_nvml_count_fn count;
	net_nvml_handle_fn handle;
	net_nvml_fields_fn fields;
} net_nvml_api;

static int net_nvml_value(const net_nvml_field *v, uint64_t *out)
{
	if (v->nvmlReturn != 0)
		return NET_E_NVML;
	switch (v->valueType) {
	case NVML_VALUE_TYPE_UNSIGNED_INT: *out = v->value.ui; return 0;
	case NVML_VALUE_TYPE_UNSIGNED_LONG: *out = v->value.ul; return 0;
	case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: *out = v->value.ull; return 0;
	default: return NET_E_NVML;
	}
}

/* GPU i's NVLink data counters summed over its links (scopeId UINT_MAX); a
 * GPU that supports neither field has no NVLink and is not listed. */
static void net_nvml_gpu(mb_net_snap *s, const net_nvml_api *api, unsigned int i)
{
	net_nvml_field v[2] = {{.fieldId = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, .scopeId = UINT_MAX},
			       {.fieldId = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, .scopeId = UINT_MAX}};
	net_nvml_dev dev;
	net_if *f;
	int rc = api->handle(i, &dev);
	if (rc == 0)
		rc = api->fields(dev, 2, v);
	if (rc != 0) {
		net_note(s, "nvlink of gpu%u not read: NVML returned %d", i, rc);
		return;
	}
	if (v[0].nvmlReturn == NVML_ERROR_NOT_SUPPORTED && v[1].nvmlReturn == NVML_ERROR_NOT_SUPPORTED)
		return;
	if (!(f = net_add(s, &net_nvml, "gpu%u:nvlink", i)))
		return;
	f->kind = NET_NVLINK;
	for (int k = 0; k < 2; k++)
		f->err[k] = net_nvml_value(&v[k], &f->val[k]);
}

static void net_nvml_gpus(mb_net_snap *s, void *lib)
{
	net_nvml_api api = {
		.init = (net_nvml_void_fn)dlsym(lib, "nvmlInit_v2"),
		.shutdown = (net_nvml_void_fn)dlsym(lib, "nvmlShutdown"),
		.count = (net_nvml_count_fn)dlsym(lib, "nvmlDeviceGetCount_v2"),
		.handle = (net_nvml_handle_fn)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"),
		.fields = (net_nvml_fields_fn)dlsym(lib, "nvmlDeviceGetFieldValues"),
	};
	unsigned int n = 0;
	int rc;
	if (!api.init || !api.shutdown || !api.count || !api.handle || !api.fields) {
		net_note(s, "nvlink not read: libnvidia-ml.so.1 lacks nvmlInit_v2, nvmlShutdown, "
			    "nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2 or "
			    "nvmlDeviceGetFieldValues");
		return;
	}
	if ((rc = api.init()) != 0) {
		net_note(s, "nvlink not read: nvmlInit_v2 returned %d", rc);
		return;
	}
	if ((rc = api.count(&n)) != 0)
		net_note(s, "nvlink not read: nvmlDeviceGetCount_v2 returned %d", rc);
	for (unsigned int i = 0; rc == 0 && i < n; i++)
		net_nvml_gpu(s, &api, i);
	api.shutdown();
}

static void net_read_nvml(mb_net_snap *s)
{
	void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		net_note(s, "nvlink not read: %s", dlerror());
		return;
	}
	net_nvml_gpus(s, lib);
	dlclose(lib);
}

/* ---- snapshots ---- */

static int net_by_name(const void *x, const void *y)
{
	return strcmp(((const net_if *)x)->name, ((const net_if *)y)->name);
}

int mb_net_snapshot(const char *root, mb_net_snap **out)
{
	mb_net_snap *s = calloc(1, sizeof *s);
	*out = NULL;
	if (!s)
		return mb_err(MB_ERR_NOMEM, "net snapshot: out of memory");
	net_read_netdevs(s, root ? root : "/sys");
	net_read_ib(s, root ? root : "/sys");
	if (!root)
		net_read_nvml(s);
	if (s->past_max)
		net_note(s, "%d interfaces past the first %d not read", s->past_max, MB_NET_MAX_IF);
	if (s->long_names)
		net_note(s, "%d interfaces with names of %d bytes or more not read", s->long_names,
			 MB_NET_NAME_MAX);
	qsort(s->ifs, (size_t)s->n, sizeof *s->ifs, net_by_name);
	*out = s;
	return 0;
}

void mb_net_snap_free(mb_net_snap *s)
{
	free(s);
}

const char *mb_net_snap_note(const mb_net_snap *s)
{
	return s ? s->note : "";
}

/* ---- deltas ---- */

enum { NET_NONE = 0, NET_KNOWN, NET_UNKNOWN }; /* NONE: the source has no counter for it */

typedef struct net_delta {
	uint64_t v[NET_NFIELDS];
	int state[NET_NFIELDS];
	char why[NET_NFIELDS][200]; /* for NET_UNKNOWN */
} net_delta;

/* Add counter i's delta, scaled, to its field, or make the field unknown. */
static void net_ctr_delta(const net_if *a, const net_if *b, size_t i, net_delta *d)
{
	const net_ctr *c = &b->src->ctr[i];
	unsigned long long x = a->val[i], y = b->val[i];
	uint64_t sum;
	char *why = d->why[c->field];
	size_t n = sizeof d->why[0];
	int ea = a->err[i], eb = b->err[i];

	if (d->state[c->field] == NET_UNKNOWN || (ea == ENOENT && eb == ENOENT))
		return;
	if (ea || eb)
		snprintf(why, n, "%s: %s in the %s snapshot", c->name, net_strerr(ea ? ea : eb),
			 ea ? "first" : "second");
	else if (y < x)
		snprintf(why, n, "%s decreased from %llu to %llu (reset or wrap)", c->name, x, y);
	else if (c->sat && y == c->sat)
		snprintf(why, n, "%s is at %llu, where it saturates", c->name, y);
	else if (__builtin_mul_overflow(y - x, c->scale, &sum) ||
		 __builtin_add_overflow(d->v[c->field], sum, &sum))
		snprintf(why, n, "%s: the delta passes 2^64", c->name);
	else {
		d->v[c->field] = sum;
		d->state[c->field] = NET_KNOWN;
		return;
	}
	d->state[c->field] = NET_UNKNOWN;
}

/* Every field of one interface; a or b is NULL when it is in one snapshot only. */
static void net_pair_delta(const net_if *a, const net_if *b, net_delta *d)
{
	char all[200] = "";
	memset(d, 0, sizeof *d);
	if (!a || !b)
		snprintf(all, sizeof all, "%s",
			 a ? "gone by the second snapshot" : "appeared after the first snapshot");
	else if (a->src != b->src)
		snprintf(all, sizeof all, "read from %s, then from %s", a->src->counters, b->src->counters);
	for (int f = 0; *all && f < NET_NFIELDS; f++) {
		d->state[f] = NET_UNKNOWN;
		mb_strlcpy(d->why[f], all, sizeof d->why[f]);
	}
	for (size_t i = 0; !*all && i < b->src->n; i++)
		net_ctr_delta(a, b, i, d);
	for (int f = 0; f < NET_NFIELDS; f++) /* NONE only when both are there */
		if (d->state[f] == NET_NONE)
			snprintf(d->why[f], sizeof d->why[f], "%s has no %s counter here", b->src->counters,
				 net_field_names[f]);
}

static int net_idle(const net_delta *d)
{
	for (int f = 0; f < NET_NFIELDS; f++)
		if (d->state[f] == NET_UNKNOWN || (d->state[f] == NET_KNOWN && d->v[f] != 0))
			return 0;
	return 1;
}

static int net_count(const mb_net_snap *s)
{
	return s ? s->n : 0;
}

/* Step through a and b together in name order (both are sorted): *pa and *pb
 * are the next interface's entries, NULL in the snapshot that lacks it. */
static int net_next(const mb_net_snap *a, const mb_net_snap *b, int *i, int *j, const net_if **pa,
		    const net_if **pb)
{
	int c;
	if (*i >= net_count(a) && *j >= net_count(b))
		return 0;
	if (*i >= net_count(a))
		c = 1;
	else if (*j >= net_count(b))
		c = -1;
	else
		c = strcmp(a->ifs[*i].name, b->ifs[*j].name);
	*pa = c <= 0 ? &a->ifs[(*i)++] : NULL;
	*pb = c >= 0 ? &b->ifs[(*j)++] : NULL;
	return 1;
}

/* A new object at the end of arr, or NULL. */
static cJSON *net_push_obj(cJSON *arr, const net_if *f)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	if (!cJSON_AddStringToObject(o, "name", f->name) ||
	    !cJSON_AddStringToObject(o, "kind", net_kind_names[f->kind]) ||
	    !cJSON_AddStringToObject(o, "counters", f->src->counters))
		return NULL;
	return o;
}

static int net_delta_obj(cJSON *arr, const net_if *a, const net_if *b, int include_idle)
{
	const net_if *f = b ? b : a;
	const char *note = NULL;
	char key[32];
	net_delta d;
	cJSON *o;
	int ok = 1;

	net_pair_delta(a, b, &d);
	if (!include_idle && (f->kind == NET_LOOPBACK || net_idle(&d)))
		return 0;
	if (!(o = net_push_obj(arr, f)))
		return MB_ERR_NOMEM;
	for (int k = 0; k < NET_NFIELDS; k++) {
		if (d.state[k] == NET_KNOWN) {
			ok &= mb_json_add_u64(o, net_field_names[k], d.v[k]) != NULL;
			continue;
		}
		snprintf(key, sizeof key, "%s_reason", net_field_names[k]);
		ok &= cJSON_AddNullToObject(o, net_field_names[k]) != NULL;
		ok &= cJSON_AddStringToObject(o, key, d.why[k]) != NULL;
		if (!note && d.state[k] == NET_UNKNOWN)
			note = d.why[k];
	}
	if (note)
		ok &= cJSON_AddStringToObject(o, "note", note) != NULL;
	return ok ? 0 : MB_ERR_NOMEM;
}

cJSON *mb_net_delta_json(const mb_net_snap *a, const mb_net_snap *b, int include_idle)
{
	cJSON *arr = cJSON_CreateArray();
	const net_if *pa, *pb;
	int i = 0, j = 0;
	while (arr && net_next(a, b, &i, &j, &pa, &pb)) {
		if (net_delta_obj(arr, pa, pb, include_idle) != 0) {
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* Interfaces whose bytes no other interface in the snapshot counts again. */
static int net_on_wire(const net_if *f)
{
	return f->kind != NET_LOOPBACK && f->kind != NET_VIRTUAL &&
	       !(f->src == &net_netdev && f->kind == NET_INFINIBAND);
}

void mb_net_delta_totals(const mb_net_snap *a, const mb_net_snap *b, double *tx_bytes, double *rx_bytes)
{
	double sum[NET_RX_BYTES + 1] = {NAN, NAN}; /* by field: NET_TX_BYTES, NET_RX_BYTES */
	const net_if *pa, *pb;
	int i = 0, j = 0;
	net_delta d;
	while (net_next(a, b, &i, &j, &pa, &pb)) {
		if (!pa || !pb || !net_on_wire(pb))
			continue;
		net_pair_delta(pa, pb, &d);
		for (int f = NET_TX_BYTES; f <= NET_RX_BYTES; f++)
			if (d.state[f] == NET_KNOWN)
				sum[f] = (isnan(sum[f]) ? 0 : sum[f]) + (double)d.v[f];
	}
	*tx_bytes = sum[NET_TX_BYTES];
	*rx_bytes = sum[NET_RX_BYTES];
}

cJSON *mb_net_inventory_json(const mb_net_snap *s)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < net_count(s); i++) {
		if (!net_push_obj(arr, &s->ifs[i])) {
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	return arr;
}
