/* test_sysinfo.c: the environment allow-list, and the shape of the system
 * and build objects on the machine the tests run on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/mb.h"
#include "harness/sysinfo.h"

/* Every null member has a "<key>_reason" string beside it and every
 * "_reason" member explains a null one, at any depth. */
static void check_reasons(const cJSON *node)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, node)
	{
		if (cJSON_IsObject(node) && c->string) {
			char key[128];
			size_t n = strlen(c->string);
			if (cJSON_IsNull(c)) {
				snprintf(key, sizeof key, "%s_reason", c->string);
				const cJSON *r = cJSON_GetObjectItemCaseSensitive(node, key);
				if (!cJSON_IsString(r) || !r->valuestring[0])
					fail_msg("%s is null without a reason", c->string);
			}
			if (n > 7 && strcmp(c->string + n - 7, "_reason") == 0) {
				snprintf(key, sizeof key, "%.*s", (int)(n - 7), c->string);
				assert_true(cJSON_IsString(c));
				if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(node, key)))
					fail_msg("%s has a reason but is not null", key);
			}
		}
		check_reasons(c);
	}
}

/* The tree as a reader of the file sees it (raw u64 members become numbers);
 * fails the test if the printed text is not valid JSON. Deletes o. */
static cJSON *roundtrip(cJSON *o)
{
	assert_non_null(o);
	char *text = cJSON_PrintUnformatted(o);
	assert_non_null(text);
	cJSON *back = cJSON_Parse(text);
	if (!back)
		fail_msg("invalid JSON: %s", text);
	if (getenv("MOEBENCH_TEST_PRINT"))
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(o);
	return back;
}

/* The number under key, failing the test when it is missing or not a number. */
static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", key);
	return v->valuedouble;
}

static void test_env_allowed(void **state)
{
	(void)state;
	assert_true(mb_env_allowed("OMP_NUM_THREADS"));
	assert_true(mb_env_allowed("NCCL_DEBUG"));
	assert_true(mb_env_allowed("HCCL_CONNECT_TIMEOUT"));
	assert_true(mb_env_allowed("SLURM_JOB_ID"));
	assert_true(mb_env_allowed("OMPI_COMM_WORLD_RANK"));
	assert_true(mb_env_allowed("MOEBENCH_SEED"));
	assert_true(mb_env_allowed("CUDA_VISIBLE_DEVICES"));
	assert_true(mb_env_allowed("ASCEND_RT_VISIBLE_DEVICES"));

	assert_false(mb_env_allowed("HOME"));
	assert_false(mb_env_allowed("PATH"));
	assert_false(mb_env_allowed("AWS_SECRET_ACCESS_KEY"));
	assert_false(mb_env_allowed("NCCL_IB_TOKEN"));
	assert_false(mb_env_allowed("MOEBENCH_API_KEY"));
	assert_false(mb_env_allowed("MOEBENCH_db_password"));
	assert_false(mb_env_allowed("OMPI_MCA_foo_password"));
	assert_false(mb_env_allowed("SLURM_CRED_FILE"));
	assert_false(mb_env_allowed("HCCL_AUTH_MODE"));
	assert_false(mb_env_allowed("PMIX_RANK"));
	assert_false(mb_env_allowed("omp_num_threads"));
	assert_false(mb_env_allowed("OMP_NUM_THREADS_X"));
	assert_false(mb_env_allowed("MOEBENCH_"));
	assert_false(mb_env_allowed("MOEBENCH_A-B"));
	assert_false(mb_env_allowed(""));
	assert_false(mb_env_allowed(NULL));
}

static void test_env_only_allowed(void **state)
{
	(void)state;
	assert_int_equal(setenv("MOEBENCH_API_KEY", "hunter2", 1), 0);
	assert_int_equal(setenv("NCCL_IB_TOKEN", "hunter2", 1), 0);
	assert_int_equal(setenv("AWS_SECRET_ACCESS_KEY", "hunter2", 1), 0);
	assert_int_equal(setenv("MOEBENCH_TEST_B", "b", 1), 0);
	assert_int_equal(setenv("MOEBENCH_TEST_A", "a", 1), 0);

	cJSON *env = roundtrip(mb_sysinfo_environment());
	assert_true(cJSON_IsObject(env));
	const cJSON *c, *prev = NULL;
	cJSON_ArrayForEach(c, env)
	{
		if (!mb_env_allowed(c->string))
			fail_msg("%s recorded", c->string);
		assert_true(cJSON_IsString(c));
		assert_null(strstr(c->valuestring, "hunter2"));
		if (prev)
			assert_true(strcmp(prev->string, c->string) < 0);
		prev = c;
	}
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(env, "MOEBENCH_TEST_A");
	assert_true(cJSON_IsString(a));
	assert_string_equal(a->valuestring, "a");
	assert_non_null(cJSON_GetObjectItemCaseSensitive(env, "MOEBENCH_TEST_B"));
	assert_null(cJSON_GetObjectItemCaseSensitive(env, "MOEBENCH_API_KEY"));
	cJSON_Delete(env);

	unsetenv("MOEBENCH_API_KEY");
	unsetenv("NCCL_IB_TOKEN");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("MOEBENCH_TEST_A");
	unsetenv("MOEBENCH_TEST_B");
}

static const char *env_value(const char *name, const char *value, cJSON **keep)
{
	assert_int_equal(setenv(name, value, 1), 0);
	*keep = roundtrip(mb_sysinfo_environment());
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(*keep, name);
	assert_true(cJSON_IsString(v));
	unsetenv(name);
	return v->valuestring;
}

static void test_env_values(void **state)
{
	(void)state;
	char big[1001];
	cJSON *env;

	memset(big, 'a', 1000);
	big[1000] = '\0';
	assert_int_equal(strlen(env_value("MOEBENCH_TEST_LONG", big, &env)), 256);
	cJSON_Delete(env);

	/* a two-byte character straddling the limit is dropped whole */
	memcpy(big + 255, "\xc3\xa9", 3);
	const char *v = env_value("MOEBENCH_TEST_UTF8", big, &env);
	assert_int_equal(strlen(v), 255);
	cJSON_Delete(env);

	assert_string_equal(env_value("MOEBENCH_TEST_BAD", "x\xffy\xc3\xa9", &env), "x?y\xc3\xa9");
	cJSON_Delete(env);
}

static void test_system(void **state)
{
	(void)state;
	cJSON *s = roundtrip(mb_sysinfo_system());
	check_reasons(s);

	assert_true(num(s, "sockets") >= 1);
	assert_true(num(s, "cores") >= num(s, "sockets"));
	assert_true(num(s, "pus") >= num(s, "cores"));
	assert_true(num(s, "pus_allowed") >= 1 && num(s, "pus_allowed") <= num(s, "pus"));
	assert_true(num(s, "numa_nodes") >= 1);
	assert_true(num(s, "memory_bytes") > 0);

	const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(s, "cpu_model");
	assert_true(cJSON_IsString(cpu));
	assert_true(cpu->valuestring[0] != '\0');
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(s, "hostname");
	assert_true(cJSON_IsString(host));

	static const char *const lists[] = { "caches", "accelerators", "nics" };
	for (size_t i = 0; i < MB_ARRAY_LEN(lists); i++) {
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(s, lists[i]);
		assert_true(cJSON_IsArray(l) || cJSON_IsNull(l));
	}
	const cJSON *c, *caches = cJSON_GetObjectItemCaseSensitive(s, "caches");
	cJSON_ArrayForEach(c, caches)
	{
		assert_true(num(c, "level") >= 1);
		assert_true(num(c, "count") >= 1);
	}
	const cJSON *nics = cJSON_GetObjectItemCaseSensitive(s, "nics");
	cJSON_ArrayForEach(c, nics)
	{
		assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "kind")));
		assert_non_null(cJSON_GetObjectItemCaseSensitive(c, "speed_mbps"));
		assert_non_null(cJSON_GetObjectItemCaseSensitive(c, "pci_bus_id"));
	}
	const cJSON *accels = cJSON_GetObjectItemCaseSensitive(s, "accelerators");
	cJSON_ArrayForEach(c, accels)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "vendor_id");
		assert_true(cJSON_IsString(id));
		assert_int_equal(strlen(id->valuestring), 6);
	}
	cJSON_Delete(s);
}

/* Two packages, a NUMA node each, and under package 1: an NVIDIA GPU, the
 * Huawei BMC's VGA function (not an accelerator), an Ascend NPU (class 0x12),
 * a Mellanox HCA with a netdev and an RDMA device, and an Intel NIC with no
 * OS device. */
static const char fake_xml[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n"
	"<topology version=\"2.0\">\n"
	" <object type=\"Machine\" os_index=\"0\" cpuset=\"0x3\" complete_cpuset=\"0x3\" allowed_cpuset=\"0x3\" nodeset=\"0x3\" complete_nodeset=\"0x3\" allowed_nodeset=\"0x3\" gp_index=\"1\">\n"
	"  <object type=\"Package\" os_index=\"0\" cpuset=\"0x1\" complete_cpuset=\"0x1\" nodeset=\"0x1\" complete_nodeset=\"0x1\" gp_index=\"2\">\n"
	"   <object type=\"NUMANode\" os_index=\"0\" cpuset=\"0x1\" complete_cpuset=\"0x1\" nodeset=\"0x1\" complete_nodeset=\"0x1\" gp_index=\"3\" local_memory=\"1073741824\"/>\n"
	"   <object type=\"Core\" os_index=\"0\" cpuset=\"0x1\" complete_cpuset=\"0x1\" nodeset=\"0x1\" complete_nodeset=\"0x1\" gp_index=\"4\">\n"
	"    <object type=\"PU\" os_index=\"0\" cpuset=\"0x1\" complete_cpuset=\"0x1\" nodeset=\"0x1\" complete_nodeset=\"0x1\" gp_index=\"5\"/>\n"
	"   </object>\n"
	"  </object>\n"
	"  <object type=\"Package\" os_index=\"1\" cpuset=\"0x2\" complete_cpuset=\"0x2\" nodeset=\"0x2\" complete_nodeset=\"0x2\" gp_index=\"6\">\n"
	"   <object type=\"NUMANode\" os_index=\"1\" cpuset=\"0x2\" complete_cpuset=\"0x2\" nodeset=\"0x2\" complete_nodeset=\"0x2\" gp_index=\"7\" local_memory=\"1073741824\"/>\n"
	"   <object type=\"Core\" os_index=\"1\" cpuset=\"0x2\" complete_cpuset=\"0x2\" nodeset=\"0x2\" complete_nodeset=\"0x2\" gp_index=\"8\">\n"
	"    <object type=\"PU\" os_index=\"1\" cpuset=\"0x2\" complete_cpuset=\"0x2\" nodeset=\"0x2\" complete_nodeset=\"0x2\" gp_index=\"9\"/>\n"
	"   </object>\n"
	"   <object type=\"Bridge\" gp_index=\"10\" bridge_type=\"0-1\" depth=\"0\" bridge_pci=\"0000:[10-1f]\">\n"
	"    <object type=\"PCIDev\" gp_index=\"11\" pci_busid=\"0000:11:00.0\" pci_type=\"0302 [10de:2330] [10de:16c1] a1\" pci_link_speed=\"0\">\n"
	"     <object type=\"OSDev\" gp_index=\"12\" name=\"card1\" osdev_type=\"1\"/>\n"
	"    </object>\n"
	"    <object type=\"PCIDev\" gp_index=\"13\" pci_busid=\"0000:12:00.0\" pci_type=\"0300 [19e5:1711] [19e5:0100] 01\" pci_link_speed=\"0\"/>\n"
	"    <object type=\"PCIDev\" gp_index=\"14\" pci_busid=\"0000:13:00.0\" pci_type=\"1200 [19e5:d801] [19e5:0100] 20\" pci_link_speed=\"0\"/>\n"
	"    <object type=\"PCIDev\" gp_index=\"15\" pci_busid=\"0000:14:00.0\" pci_type=\"0207 [15b3:101b] [15b3:0007] 00\" pci_link_speed=\"0\">\n"
	"     <object type=\"OSDev\" gp_index=\"16\" name=\"mbtest_ib0\" osdev_type=\"2\"/>\n"
	"     <object type=\"OSDev\" gp_index=\"17\" name=\"mbtest_mlx5_0\" osdev_type=\"3\"/>\n"
	"    </object>\n"
	"    <object type=\"PCIDev\" gp_index=\"18\" pci_busid=\"0000:15:00.0\" pci_type=\"0200 [8086:1592] [8086:0002] 02\" pci_link_speed=\"0\"/>\n"
	"   </object>\n"
	"  </object>\n"
	" </object>\n"
	"</topology>\n";

/* The object in arr whose key has the string value want, or NULL. */
static const cJSON *find_by(const cJSON *arr, const char *key, const char *want)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, arr)
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
		if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0)
			return c;
	}
	return NULL;
}

static void test_system_from_xml(void **state)
{
	(void)state;
	char path[] = "/tmp/mb_sysinfo_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fputs(fake_xml, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(setenv("HWLOC_XMLFILE", path, 1), 0);
	cJSON *s = roundtrip(mb_sysinfo_system());
	unsetenv("HWLOC_XMLFILE");
	remove(path);
	check_reasons(s);

	assert_true(num(s, "sockets") == 2);
	assert_true(num(s, "numa_nodes") == 2);
	assert_true(num(s, "hwloc_memory_bytes") == 2147483648.0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "caches")));

	const cJSON *acc = cJSON_GetObjectItemCaseSensitive(s, "accelerators");
	assert_int_equal(cJSON_GetArraySize(acc), 2);
	const cJSON *gpu = find_by(acc, "pci_bus_id", "0000:11:00.0");
	assert_non_null(gpu);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(gpu, "vendor")->valuestring, "nvidia");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(gpu, "class_id")->valuestring, "0x0302");
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(gpu, "numa_nodes");
	assert_int_equal(cJSON_GetArraySize(nodes), 1);
	assert_true(cJSON_GetArrayItem(nodes, 0)->valuedouble == 1);
	const cJSON *osd = cJSON_GetObjectItemCaseSensitive(gpu, "os_devices");
	assert_string_equal(cJSON_GetArrayItem(osd, 0)->valuestring, "card1");
	const cJSON *npu = find_by(acc, "pci_bus_id", "0000:13:00.0");
	assert_non_null(npu);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(npu, "vendor")->valuestring, "huawei");
	assert_null(find_by(acc, "pci_bus_id", "0000:12:00.0"));

	const cJSON *nics = cJSON_GetObjectItemCaseSensitive(s, "nics");
	const cJSON *ib = find_by(nics, "name", "mbtest_mlx5_0");
	assert_non_null(ib);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(ib, "kind")->valuestring, "openfabrics");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(ib, "pci_bus_id")->valuestring,
			    "0000:14:00.0");
	assert_non_null(find_by(nics, "name", "mbtest_ib0"));
	const cJSON *bare = find_by(nics, "pci_bus_id", "0000:15:00.0");
	assert_non_null(bare);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(bare, "kind")->valuestring, "pci");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(bare, "name")));
	cJSON_Delete(s);
}

static void test_build(void **state)
{
	(void)state;
	cJSON *b = roundtrip(mb_sysinfo_build());
	check_reasons(b);

	assert_non_null(cJSON_GetObjectItemCaseSensitive(b, "git_commit"));
	assert_non_null(cJSON_GetObjectItemCaseSensitive(b, "git_dirty"));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "moebench_version");
	assert_true(cJSON_IsString(v));
	assert_string_equal(v->valuestring, MB_VERSION);

	const cJSON *libs = cJSON_GetObjectItemCaseSensitive(b, "libraries");
	assert_true(cJSON_IsObject(libs));
	static const char *const keys[] = { "openblas", "mpi", "hwloc", "cjson" };
	for (size_t i = 0; i < MB_ARRAY_LEN(keys); i++)
		assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(libs, keys[i])));
	const cJSON *hw = cJSON_GetObjectItemCaseSensitive(libs, "hwloc");
	const cJSON *api = cJSON_GetObjectItemCaseSensitive(hw, "api_version");
	assert_true(cJSON_IsString(api));
	assert_memory_equal(api->valuestring, "0x", 2);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(libs, "cuda")));
	cJSON_Delete(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_allowed),
		cmocka_unit_test(test_env_only_allowed),
		cmocka_unit_test(test_env_values),
		cmocka_unit_test(test_system),
		cmocka_unit_test(test_system_from_xml),
		cmocka_unit_test(test_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
