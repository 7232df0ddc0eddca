/* test_net.c: interconnect counter deltas (hardware/net/net.c) on a fake
 * sysfs tree with known traffic, on hostile trees, and on this machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hardware/net/net.h"

static char root[64];

/* ---- the fake tree ---- */

static void mkdirs(const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	mkdir(path, 0755);
}

/* Write text to root/rel, creating its directories. */
static void put(const char *rel, const char *text)
{
	char path[512], dir[512];
	FILE *f;
	snprintf(dir, sizeof dir, "%s", rel);
	if (strrchr(dir, '/')) {
		*strrchr(dir, '/') = '\0';
		mkdirs(dir);
	}
	snprintf(path, sizeof path, "%s/%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void put_u64(const char *rel, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%llu\n", (unsigned long long)v);
	put(rel, buf);
}

static void bump(const char *rel, uint64_t by)
{
	char path[512];
	unsigned long long v = 0;
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%llu", &v), 1);
	fclose(f);
	put_u64(rel, v + by);
}

static const char *const stats[] = {"tx_bytes",  "rx_bytes",  "tx_packets", "rx_packets",
				    "tx_errors", "rx_errors", "tx_dropped", "rx_dropped"};

/* A net device with every statistic at 1000 + 10 * its index. */
static void netdev(const char *name, int type, int physical)
{
	char rel[256];
	snprintf(rel, sizeof rel, "class/net/%s/type", name);
	put_u64(rel, (uint64_t)type);
	for (size_t i = 0; i < MB_ARRAY_LEN(stats); i++) {
		snprintf(rel, sizeof rel, "class/net/%s/statistics/%s", name, stats[i]);
		put_u64(rel, 1000 + 10 * i);
	}
	if (physical) {
		snprintf(rel, sizeof rel, "class/net/%s/device", name);
		mkdirs(rel);
	}
}

static int setup(void **state)
{
	char path[512];
	(void)state;
	strcpy(root, "/tmp/mb_test_net_XXXXXX");
	if (!mkdtemp(root))
		return -1;
	netdev("eth0", 1, 1);
	netdev("eth1", 1, 1);
	netdev("lo", 772, 0);
	netdev("veth0", 1, 0);
	netdev("ib0", 32, 0);
	/* ib0's device is a symlink, as in sysfs. */
	mkdirs("devices/pci0000:00/0000:00:01.0");
	snprintf(path, sizeof path, "%s/class/net/ib0/device", root);
	if (symlink("../../../devices/pci0000:00/0000:00:01.0", path) != 0)
		return -1;
	put("class/net/bonding_masters", "bond0\n");

	put("class/infiniband/mlx5_0/ports/1/link_layer", "InfiniBand\n");
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", 5000);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_rcv_data", 6000);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_xmit_packets", 70);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_rcv_packets", 80);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/symbol_error", 1);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/link_downed", 2);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_xmit_discards", 3);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/VL15_dropped", 4);

	/* A RoCE port with the legacy 64-bit counters_ext beside counters/. */
	put("class/infiniband/mlx5_1/ports/1/link_layer", "Ethernet\n");
	put_u64("class/infiniband/mlx5_1/ports/1/counters/port_xmit_data", 10);
	put_u64("class/infiniband/mlx5_1/ports/1/counters/symbol_error", 0);
	put_u64("class/infiniband/mlx5_1/ports/1/counters_ext/port_xmit_data_64", 1ull << 40);
	put_u64("class/infiniband/mlx5_1/ports/1/counters_ext/port_rcv_data_64", 1ull << 41);
	put_u64("class/infiniband/mlx5_1/ports/1/counters_ext/port_xmit_packets_64", 1ull << 33);
	put_u64("class/infiniband/mlx5_1/ports/1/counters_ext/port_rcv_packets_64", 1ull << 34);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The traffic every delta test expects. */
static void traffic(void)
{
	static const uint64_t eth0[] = {100, 200, 3, 4, 1, 2, 5, 6};
	char rel[256];
	for (size_t i = 0; i < MB_ARRAY_LEN(stats); i++) {
		snprintf(rel, sizeof rel, "class/net/eth0/statistics/%s", stats[i]);
		bump(rel, eth0[i]);
	}
	bump("class/net/veth0/statistics/tx_bytes", 7);
	bump("class/net/lo/statistics/rx_bytes", 9);
	bump("class/net/ib0/statistics/tx_bytes", 11);
	bump("class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", 250); /* words: 1000 bytes */
	bump("class/infiniband/mlx5_0/ports/1/counters/port_rcv_data", 1000);
	bump("class/infiniband/mlx5_0/ports/1/counters/port_xmit_packets", 5);
	bump("class/infiniband/mlx5_0/ports/1/counters/port_rcv_packets", 6);
	bump("class/infiniband/mlx5_0/ports/1/counters/symbol_error", 2);
	bump("class/infiniband/mlx5_0/ports/1/counters/link_downed", 1);
	bump("class/infiniband/mlx5_0/ports/1/counters/VL15_dropped", 4);
	bump("class/infiniband/mlx5_1/ports/1/counters/port_xmit_data", 7); /* not read */
	bump("class/infiniband/mlx5_1/ports/1/counters_ext/port_xmit_data_64", 100);
	bump("class/infiniband/mlx5_1/ports/1/counters_ext/port_rcv_data_64", 300);
	bump("class/infiniband/mlx5_1/ports/1/counters_ext/port_xmit_packets_64", 1);
	bump("class/infiniband/mlx5_1/ports/1/counters_ext/port_rcv_packets_64", 2);
}

/* ---- reading the JSON ---- */

static const char *const fields[] = {"tx_bytes", "rx_bytes", "tx_packets", "rx_packets", "errors", "drops"};

/* Each field is a number, or null with a non-empty "<field>_reason". */
static void check_shape(const cJSON *o)
{
	char key[64];
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "name")));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "kind")));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "counters")));
	for (size_t i = 0; i < MB_ARRAY_LEN(fields); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i]), *r;
		snprintf(key, sizeof key, "%s_reason", fields[i]);
		r = cJSON_GetObjectItemCaseSensitive(o, key);
		if (cJSON_IsNumber(v) && !r)
			continue;
		if (!cJSON_IsNull(v) || !cJSON_IsString(r) || !r->valuestring[0])
			fail_msg("%s: %s is neither a number nor null with a reason",
				 cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring, fields[i]);
	}
}

/* The delta as a reader of the file sees it (raw integers become numbers). */
static cJSON *delta(const mb_net_snap *a, const mb_net_snap *b, int include_idle)
{
	cJSON *arr = mb_net_delta_json(a, b, include_idle), *back, *o;
	char *text;
	assert_non_null(arr);
	text = cJSON_PrintUnformatted(arr);
	assert_non_null(text);
	back = cJSON_Parse(text);
	if (!back)
		fail_msg("invalid JSON: %s", text);
	if (getenv("MOEBENCH_TEST_PRINT"))
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(arr);
	cJSON_ArrayForEach(o, back) check_shape(o);
	return back;
}

static const cJSON *find(const cJSON *arr, const char *name)
{
	const cJSON *o;
	cJSON_ArrayForEach(o, arr)
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return o;
	}
	return NULL;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v))
		fail_msg("%s is not a string", key);
	return v->valuestring;
}

/* name's six fields are exactly v[] (tx_bytes, rx_bytes, tx_packets,
 * rx_packets, errors, drops); -1 for null. */
static void expect(const cJSON *arr, const char *name, const char *kind, const double v[6])
{
	const cJSON *o = find(arr, name);
	if (!o)
		fail_msg("%s is missing", name);
	assert_string_equal(str(o, "kind"), kind);
	for (size_t i = 0; i < MB_ARRAY_LEN(fields); i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, fields[i]);
		if (v[i] < 0 ? !cJSON_IsNull(x) : !cJSON_IsNumber(x) || x->valuedouble != v[i])
			fail_msg("%s %s: expected %g", name, fields[i], v[i]);
	}
}

/* name's field is null, its reason contains what, and the object has a note
 * (the first unknown field's reason). */
static void expect_unknown(const cJSON *arr, const char *name, const char *field, const char *what)
{
	const cJSON *o = find(arr, name);
	char key[64];
	if (!o)
		fail_msg("%s is missing", name);
	snprintf(key, sizeof key, "%s_reason", field);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, field)));
	if (!strstr(str(o, key), what))
		fail_msg("%s %s: \"%s\" does not say \"%s\"", name, key, str(o, key), what);
	assert_true(str(o, "note")[0] != '\0');
}

static void snap(mb_net_snap **s)
{
	assert_int_equal(mb_net_snapshot(root, s), 0);
	assert_non_null(*s);
}

/* ---- tests ---- */

/* Every delta, each source's units (IB data words x4), counters_ext
 * preferred, kinds, name order, and idle and loopback left out. */
static void test_deltas(void **state)
{
	static const double eth0[] = {100, 200, 3, 4, 1 + 2, 5 + 6};
	static const double veth0[] = {7, 0, 0, 0, 0, 0};
	static const double ib0[] = {11, 0, 0, 0, 0, 0};
	static const double mlx5_0[] = {1000, 4000, 5, 6, 2 + 1, 4};
	static const double mlx5_1[] = {400, 1200, 1, 2, 0, -1};
	static const char *const order[] = {"eth0", "ib0", "mlx5_0:1", "mlx5_1:1", "veth0"};
	mb_net_snap *a, *b;
	const cJSON *o;
	cJSON *arr;
	int i = 0;
	(void)state;

	snap(&a);
	traffic();
	snap(&b);
	assert_string_equal(mb_net_snap_note(b), "");
	arr = delta(a, b, 0);
	assert_int_equal(cJSON_GetArraySize(arr), (int)MB_ARRAY_LEN(order));
	cJSON_ArrayForEach(o, arr) assert_string_equal(str(o, "name"), order[i++]);
	expect(arr, "eth0", "ethernet", eth0);
	expect(arr, "veth0", "virtual", veth0);
	expect(arr, "ib0", "infiniband", ib0);
	expect(arr, "mlx5_0:1", "infiniband", mlx5_0);
	expect(arr, "mlx5_1:1", "ethernet", mlx5_1);
	assert_string_equal(str(find(arr, "mlx5_1:1"), "counters"), "infiniband port counters_ext");
	o = find(arr, "mlx5_1:1");
	assert_non_null(strstr(str(o, "drops_reason"), "counters_ext has no drops counter"));
	cJSON_ArrayForEach(o, arr) assert_null(cJSON_GetObjectItemCaseSensitive(o, "note"));
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

static void test_include_idle(void **state)
{
	static const double lo[] = {0, 9, 0, 0, 0, 0};
	static const double eth1[] = {0, 0, 0, 0, 0, 0};
	mb_net_snap *a, *b;
	cJSON *arr;
	(void)state;

	snap(&a);
	traffic();
	snap(&b);
	arr = delta(a, b, 1);
	assert_int_equal(cJSON_GetArraySize(arr), 7);
	expect(arr, "lo", "loopback", lo);
	expect(arr, "eth1", "ethernet", eth1);
	cJSON_Delete(arr);
	/* Nothing moved: all left out, unless asked. */
	arr = delta(b, b, 0);
	assert_int_equal(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);
	arr = delta(b, b, 1);
	assert_int_equal(cJSON_GetArraySize(arr), 7);
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

/* A counter that went down, or sits where a 32-bit or error counter
 * saturates, is null with a note; the other fields stay known. */
static void test_decrease_and_saturation(void **state)
{
	mb_net_snap *a, *b;
	cJSON *arr;
	(void)state;

	snap(&a);
	traffic();
	put_u64("class/net/eth0/statistics/rx_bytes", 5);
	put_u64("class/net/eth1/statistics/tx_dropped", 0);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/port_xmit_data", UINT32_MAX);
	put_u64("class/infiniband/mlx5_0/ports/1/counters/symbol_error", 65535);
	snap(&b);
	arr = delta(a, b, 0);
	expect_unknown(arr, "eth0", "rx_bytes", "decreased from 1010 to 5");
	assert_non_null(strstr(str(find(arr, "eth0"), "note"), "rx_bytes decreased from 1010 to 5"));
	assert_true(cJSON_GetObjectItemCaseSensitive(find(arr, "eth0"), "tx_bytes")->valuedouble == 100);
	expect_unknown(arr, "eth1", "drops", "tx_dropped decreased");
	expect_unknown(arr, "mlx5_0:1", "tx_bytes", "saturates");
	expect_unknown(arr, "mlx5_0:1", "errors", "counters/symbol_error is at 65535");
	assert_true(cJSON_GetObjectItemCaseSensitive(find(arr, "mlx5_0:1"), "rx_bytes")->valuedouble == 4000);
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

/* Garbage, unreadable, overflowing and oversized counter files give null
 * with the file and the error, in whichever snapshot they were. */
static void test_garbage(void **state)
{
	char big[4096], path[512];
	mb_net_snap *a, *b;
	cJSON *arr;
	(void)state;

	put("class/net/veth0/statistics/rx_packets", "-3\n");
	snap(&a);
	traffic();
	put("class/net/veth0/statistics/rx_packets", "12\n");
	put("class/net/eth0/statistics/tx_bytes", "garbage\n");
	put("class/net/eth1/statistics/tx_packets", "99999999999999999999\n"); /* > 2^64 - 1 */
	put("class/net/eth1/statistics/rx_bytes", "0000000000000000000000000000001017\n"); /* past the read */
	put("class/infiniband/mlx5_0/ports/1/counters/port_rcv_data", "N/A (no PMA)\n");
	memset(big, '1', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	put("class/infiniband/mlx5_1/ports/1/counters_ext/port_rcv_data_64", big);
	snprintf(path, sizeof path, "%s/class/net/veth0/statistics/tx_bytes", root);
	assert_int_equal(remove(path), 0);
	assert_int_equal(mkdir(path, 0755), 0); /* read() fails with EISDIR, even for root */
	snap(&b);
	arr = delta(a, b, 0);
	expect_unknown(arr, "eth0", "tx_bytes", "tx_bytes: not a decimal counter in the second snapshot");
	expect_unknown(arr, "eth1", "tx_packets", "not a decimal counter");
	expect_unknown(arr, "eth1", "rx_bytes", "not a decimal counter");
	expect_unknown(arr, "mlx5_0:1", "rx_bytes", "counters/port_rcv_data: not a decimal counter");
	expect_unknown(arr, "mlx5_1:1", "rx_bytes", "port_rcv_data_64: not a decimal counter");
	expect_unknown(arr, "veth0", "tx_bytes", "tx_bytes: Is a directory in the second snapshot");
	expect_unknown(arr, "veth0", "rx_packets", "rx_packets: not a decimal counter in the first snapshot");
	assert_true(cJSON_GetObjectItemCaseSensitive(find(arr, "eth0"), "rx_bytes")->valuedouble == 200);
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

/* An interface in one snapshot only, or read from other files in each, is
 * reported with its fields null and a note. */
static void test_appear_vanish(void **state)
{
	mb_net_snap *a, *b;
	char path[512];
	cJSON *arr;
	(void)state;

	snap(&a);
	snprintf(path, sizeof path, "%s/class/net/veth0", root);
	assert_int_equal(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	netdev("eth2", 1, 1);
	/* A port whose counters_ext appears is read another way: no delta. */
	put_u64("class/infiniband/mlx5_0/ports/1/counters_ext/port_xmit_data_64", 1);
	snap(&b);
	arr = delta(a, b, 0);
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	expect_unknown(arr, "veth0", "tx_bytes", "gone by the second snapshot");
	assert_string_equal(str(find(arr, "veth0"), "kind"), "virtual");
	expect_unknown(arr, "eth2", "drops", "appeared after the first snapshot");
	expect_unknown(arr, "mlx5_0:1", "errors",
		       "read from infiniband port counters, then from infiniband port counters_ext");
	cJSON_Delete(arr);
	arr = delta(NULL, a, 0); /* a NULL snapshot has no interfaces */
	expect_unknown(arr, "eth0", "rx_bytes", "appeared");
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

/* Totals count interfaces on a wire only: not lo, veth0 or IPoIB ib0. */
static void test_totals(void **state)
{
	mb_net_snap *a, *b;
	double tx, rx;
	(void)state;

	snap(&a);
	traffic();
	snap(&b);
	mb_net_delta_totals(a, b, &tx, &rx);
	assert_true(tx == 100 + 1000 + 400);
	assert_true(rx == 200 + 4000 + 1200);
	mb_net_delta_totals(b, b, &tx, &rx);
	assert_true(tx == 0 && rx == 0);
	mb_net_delta_totals(NULL, NULL, &tx, &rx);
	assert_true(isnan(tx) && isnan(rx));
	/* An unknown delta is left out of the sum. */
	put_u64("class/net/eth0/statistics/tx_bytes", 0);
	mb_net_snap_free(b);
	snap(&b);
	mb_net_delta_totals(a, b, &tx, &rx);
	assert_true(tx == 1000 + 400);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

static void test_inventory(void **state)
{
	static const char *const want[][3] = {
		{"eth0", "ethernet", "sysfs net statistics"},
		{"eth1", "ethernet", "sysfs net statistics"},
		{"ib0", "infiniband", "sysfs net statistics"},
		{"lo", "loopback", "sysfs net statistics"},
		{"mlx5_0:1", "infiniband", "infiniband port counters"},
		{"mlx5_1:1", "ethernet", "infiniband port counters_ext"},
		{"veth0", "virtual", "sysfs net statistics"},
	};
	mb_net_snap *s;
	cJSON *arr;
	(void)state;

	snap(&s);
	arr = mb_net_inventory_json(s);
	assert_non_null(arr);
	assert_int_equal(cJSON_GetArraySize(arr), (int)MB_ARRAY_LEN(want));
	for (size_t i = 0; i < MB_ARRAY_LEN(want); i++) {
		const cJSON *o = cJSON_GetArrayItem(arr, (int)i);
		assert_string_equal(str(o, "name"), want[i][0]);
		assert_string_equal(str(o, "kind"), want[i][1]);
		assert_string_equal(str(o, "counters"), want[i][2]);
	}
	cJSON_Delete(arr);
	mb_net_snap_free(s);
}

/* More interfaces than the bound, an over-long name, no class/net: the
 * snapshot is bounded and says what it left out. */
static void test_hostile(void **state)
{
	char rel[256], path[512];
	mb_net_snap *s;
	cJSON *arr;
	(void)state;

	for (int i = 0; i < MB_NET_MAX_IF + 20; i++) {
		snprintf(rel, sizeof rel, "class/net/x%03d", i);
		mkdirs(rel);
	}
	snap(&s);
	arr = mb_net_inventory_json(s);
	assert_int_equal(cJSON_GetArraySize(arr), MB_NET_MAX_IF);
	cJSON_Delete(arr);
	/* 276 + 5 net devices + 2 ports, less 256 */
	assert_non_null(strstr(mb_net_snap_note(s), "27 interfaces past the first 256 not read"));
	mb_net_snap_free(s);

	snprintf(rel, sizeof rel, "other/class/infiniband/%0100d/ports/1/counters", 0);
	mkdirs(rel);
	snprintf(path, sizeof path, "%s/other", root);
	assert_int_equal(mb_net_snapshot(path, &s), 0);
	assert_non_null(strstr(mb_net_snap_note(s), "1 interfaces with names of 80 bytes or more"));
	assert_non_null(strstr(mb_net_snap_note(s), "class/net: No such file or directory"));
	arr = mb_net_inventory_json(s);
	assert_int_equal(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);
	mb_net_snap_free(s);
}

/* The FIFO alone, among the fake tree: it reads as no counter, at once. */
static void test_fifo(void **state)
{
	char path[512];
	mb_net_snap *a, *b;
	cJSON *arr;
	(void)state;

	snap(&a);
	snprintf(path, sizeof path, "%s/class/net/eth0/statistics/rx_bytes", root);
	assert_int_equal(remove(path), 0);
	assert_int_equal(mkfifo(path, 0644), 0);
	alarm(10); /* a blocking open would hang here: end the run instead */
	snap(&b);
	alarm(0);
	arr = delta(a, b, 0);
	expect_unknown(arr, "eth0", "rx_bytes", "not a decimal counter in the second snapshot");
	cJSON_Delete(arr);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

/* This machine: snapshots work and lo is loopback. */
static void test_real_sys(void **state)
{
	mb_net_snap *a, *b;
	const cJSON *lo;
	cJSON *inv, *arr;
	void *nvml;
	(void)state;

	if (access("/sys/class/net", F_OK) != 0) {
		print_message("no /sys/class/net here: skipped\n");
		skip();
	}
	assert_int_equal(mb_net_snapshot(NULL, &a), 0);
	assert_int_equal(mb_net_snapshot(NULL, &b), 0);
	inv = mb_net_inventory_json(b);
	lo = find(inv, "lo");
	assert_non_null(lo);
	assert_string_equal(str(lo, "kind"), "loopback");
	arr = delta(a, b, 1);
	assert_non_null(find(arr, "lo"));
	nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (nvml)
		dlclose(nvml);
	else
		assert_non_null(strstr(mb_net_snap_note(b), "nvlink not read: libnvidia-ml.so.1"));
	if (getenv("MOEBENCH_TEST_PRINT"))
		printf("note: %s\n", mb_net_snap_note(b));
	cJSON_Delete(arr);
	cJSON_Delete(inv);
	mb_net_snap_free(a);
	mb_net_snap_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deltas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decrease_and_saturation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_appear_vanish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_totals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inventory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
		cmocka_unit_test(test_real_sys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
