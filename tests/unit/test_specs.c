/* test_specs.c: published peaks (hardware/specs) and MFU against them
 * (harness/cost.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hardware/specs/specs.h"
#include "harness/cost.h"

static const char *spec_name(const char *device)
{
	const mb_spec *s = mb_spec_find(device);
	return s ? s->name : NULL;
}

static void test_nvidia_names(void **st)
{
	(void)st;
	/* What nvidia-smi / cudaGetDeviceProperties report. */
	assert_string_equal(spec_name("NVIDIA H100 80GB HBM3"), "NVIDIA H100 SXM");
	assert_string_equal(spec_name("nvidia h100 sxm5 80gb"), "NVIDIA H100 SXM");
	/* Other H100 parts have other figures, which the table does not hold. */
	assert_null(spec_name("NVIDIA H100 PCIe"));
	assert_null(spec_name("NVIDIA H100 NVL"));
	assert_string_equal(spec_name("NVIDIA H800"), "NVIDIA H800 SXM");
	assert_null(spec_name("NVIDIA H800 PCIe"));
	assert_string_equal(spec_name("NVIDIA H200"), "NVIDIA H200 SXM");
	assert_null(spec_name("NVIDIA H200 NVL"));
	assert_null(spec_name("NVIDIA GH200 480GB"));
	assert_string_equal(spec_name("NVIDIA B200"), "NVIDIA B200 (HGX, 1000 W)");
	assert_null(spec_name("NVIDIA GB200")); /* 1200 W part: 2.5 PFLOP/s */
	assert_string_equal(spec_name("NVIDIA A100-SXM4-80GB"), "NVIDIA A100 SXM 80GB");
	assert_null(spec_name("NVIDIA A100-SXM4-40GB")); /* other HBM bandwidth */
	assert_null(spec_name("NVIDIA A100 80GB PCIe"));
	assert_string_equal(spec_name("AMD Instinct MI300X"), "AMD Instinct MI300X");
}

static void test_ascend_names(void **st)
{
	(void)st;
	assert_string_equal(spec_name("Ascend910B1"), "Huawei Ascend 910B1");
	assert_string_equal(spec_name("Ascend910B2"), "Huawei Ascend 910B2");
	assert_string_equal(spec_name("Ascend910B3"), "Huawei Ascend 910B3");
	assert_string_equal(spec_name("ascend910b4"), "Huawei Ascend 910B4");
	/* Without the SKU digit there is no single peak (245.8 to 373.9). */
	assert_null(spec_name("Ascend910B"));
	assert_null(spec_name("Ascend910")); /* the 2019 part */
	assert_string_equal(spec_name("Ascend910_9392"), "Huawei Ascend 910C (one die)");
}

static void test_no_peak_names(void **st)
{
	(void)st;
	assert_null(spec_name("AMD EPYC 9654 96-Core Processor"));
	assert_null(spec_name("Intel(R) Xeon(R) Platinum 8480+"));
	assert_null(spec_name("HUAWEI Kunpeng 920 5250"));
	assert_null(spec_name("null"));
	assert_null(spec_name("Some Future Accelerator"));
	assert_null(spec_name(""));
	assert_null(spec_name(NULL));
}

static void test_peaks_per_dtype(void **st)
{
	(void)st;
	const char *src = "unset";
	const mb_spec *h100 = mb_spec_find("NVIDIA H100 80GB HBM3");
	assert_true(mb_spec_peak_tflops(h100, MB_BF16, &src) == 989.4);
	assert_non_null(src);
	assert_non_null(strstr(src, "torchtitan"));
	assert_true(h100->fp8_tflops == 1978.9);
	assert_true(h100->mem_gbps == 3350);
	assert_true(h100->link_gbps == 900 && h100->tdp_w == 700);
	assert_non_null(strstr(h100->link, "NVLink"));
	const mb_spec *b1 = mb_spec_find("Ascend910B1");
	assert_non_null(b1);
	assert_true(b1->link_gbps == 392 && b1->tdp_w == 0); /* no published Ascend TDP */
	/* The facts give no fp32 (or fp16) tensor rate: none is invented. */
	assert_true(isnan(mb_spec_peak_tflops(h100, MB_FP32, &src)));
	assert_null(src);
	assert_true(isnan(mb_spec_peak_tflops(h100, MB_FP64, NULL)));

	assert_true(mb_spec_peak_tflops(mb_spec_find("Ascend910B2"), MB_BF16, NULL) == 353.8944);
	assert_true(mb_spec_peak_tflops(mb_spec_find("Ascend910B4"), MB_BF16, NULL) == 245.76);
	assert_true(mb_spec_peak_tflops(mb_spec_find("NVIDIA B200"), MB_BF16, NULL) == 2250);
	assert_true(mb_spec_peak_tflops(mb_spec_find("AMD Instinct MI300X"), MB_BF16, NULL) ==
		    1307.4);
	src = "unset";
	assert_true(isnan(mb_spec_peak_tflops(NULL, MB_BF16, &src)));
	assert_null(src);
}

/* Every entry has a name, a pattern that finds itself, a source, and at
 * least one dense peak; no entry is shadowed by an earlier one. */
static void test_table_consistent(void **st)
{
	(void)st;
	int n;
	const mb_spec *t = mb_spec_table(&n);
	assert_true(n >= 11);
	for (int i = 0; i < n; i++) {
		assert_non_null(t[i].name);
		assert_non_null(t[i].source);
		assert_true(t[i].tflops[MB_BF16] > 0);
		for (int j = 0; j < MB_SPEC_MAX_MATCH && t[i].match[j]; j++)
			assert_ptr_equal(mb_spec_find(t[i].match[j]), &t[i]);
	}
}

static void derive_for(const char *name, const char *kind, mb_dtype dt, double flops,
		       mb_metrics *m)
{
	mb_cost c = {.flops = flops, .flops_palm = flops, .tokens = 1024};
	mb_stats s = {.n = 3, .min = 0.4, .p50 = 0.5, .max = 0.6};
	mb_dev_info dev = {.name = name, .kind = kind};
	memset(m, 0, sizeof *m);
	mb_metrics_derive(&c, &s, 1, &dev, dt, m);
}

static void test_mfu_fake_h100(void **st)
{
	(void)st;
	mb_metrics m;
	/* 247.35e12 FLOP in 0.5 s = 494.7 TFLOP/s = half of 989.4 */
	derive_for("NVIDIA H100 80GB HBM3", "gpu", MB_BF16, 247.35e12, &m);
	assert_true(fabs(m.tflops - 494.7) < 1e-9);
	assert_true(m.peak_tflops == 989.4);
	assert_true(fabs(m.mfu_pct - 100 * m.tflops / 989.4) < 1e-12);
	assert_true(fabs(m.mfu_pct - 50) < 1e-9);
	assert_int_equal(m.dtype, MB_BF16);
	assert_string_equal(m.peak_device, "NVIDIA H100 SXM");
	assert_non_null(m.peak_source);
	assert_string_equal(m.mfu_reason, "");

	/* The same device in fp32: no published figure, so no MFU. */
	derive_for("NVIDIA H100 80GB HBM3", "gpu", MB_FP32, 247.35e12, &m);
	assert_true(isnan(m.mfu_pct));
	assert_true(isnan(m.peak_tflops));
	assert_non_null(strstr(m.mfu_reason, "fp32"));

	/* A case without FLOPs (a collective) has nothing to divide. */
	derive_for("NVIDIA H100 80GB HBM3", "gpu", MB_BF16, 0, &m);
	assert_true(isnan(m.mfu_pct));
	assert_true(m.peak_tflops == 989.4);
	assert_non_null(strstr(m.mfu_reason, "FLOP"));
}

static void test_mfu_cpu_and_unknown(void **st)
{
	(void)st;
	mb_metrics m;
	derive_for("AMD EPYC 9654 96-Core Processor", "cpu", MB_FP32, 1e12, &m);
	assert_true(m.tflops == 2);
	assert_true(isnan(m.mfu_pct));
	assert_true(isnan(m.peak_tflops));
	assert_null(m.peak_source);
	assert_non_null(strstr(m.mfu_reason, "CPU"));

	derive_for("Some Future Accelerator", "gpu", MB_BF16, 1e12, &m);
	assert_true(isnan(m.mfu_pct));
	assert_non_null(strstr(m.mfu_reason, "Some Future Accelerator"));

	mb_cost c = {.flops = 1e12};
	mb_stats s = {.n = 1, .min = 1, .p50 = 1, .max = 1};
	mb_metrics_derive(&c, &s, 1, NULL, MB_BF16, &m);
	assert_true(isnan(m.mfu_pct));
	assert_true(m.mfu_reason[0] != 0);
}

static void test_case_dtype(void **st)
{
	(void)st;
	static const mb_param_def with[] = {
		{"tokens", MB_PT_INT, "8", 1, 64, NULL, ""},
		{"dtype", MB_PT_ENUM, "fp32", 0, 0, "fp32|bf16", ""},
	};
	static const mb_param_def without[] = {{"tokens", MB_PT_INT, "8", 1, 64, NULL, ""}};
	mb_params p;
	assert_int_equal(mb_params_init(&p, with, 2), 0);
	assert_int_equal(mb_case_dtype(&p), MB_FP32);
	assert_int_equal(mb_params_set(&p, "dtype", 1, MB_SRC_USER), 0);
	assert_int_equal(mb_case_dtype(&p), MB_BF16);
	assert_int_equal(mb_params_init(&p, without, 1), 0);
	assert_int_equal(mb_case_dtype(&p), MB_FP32);
}

/* ---- CPUs: the computed peak ---- */

static void test_cpu_peak_formula(void **st)
{
	(void)st;
	char how[200];
	/* 2 FMA x 16 lanes x 2 FLOP x 2 cores x 3 GHz = 384 GFLOP/s */
	double v = mb_spec_cpu_peak_tflops(MB_FP32, 2, 3.0, 512, 2, MB_CPU_BF16_NONE, how, sizeof how);
	assert_true(fabs(v - 0.384) < 1e-12);
	assert_string_equal(how, "2 FMA units x 16 fp32 lanes x 2 FLOP x 2 cores x 3.00 GHz");
	v = mb_spec_cpu_peak_tflops(MB_FP64, 2, 3.0, 512, 2, MB_CPU_BF16_NONE, how, sizeof how);
	assert_true(fabs(v - 0.192) < 1e-12);
	assert_non_null(strstr(how, "8 fp64 lanes"));
	/* AVX2 machine: 8 lanes */
	v = mb_spec_cpu_peak_tflops(MB_FP32, 96, 2.4, 256, 2, MB_CPU_BF16_AVX512, how, sizeof how);
	assert_true(fabs(v - 96 * 32 * 2.4 / 1e3) < 1e-12); /* facts §D.3: Zen 4 ~7.4 */
	/* bf16 with VDPBF16PS: twice fp32 (64 FLOP/cycle on Zen 4, facts §D.3) */
	v = mb_spec_cpu_peak_tflops(MB_BF16, 96, 2.4, 256, 2, MB_CPU_BF16_AVX512, how, sizeof how);
	assert_true(fabs(v - 96 * 64 * 2.4 / 1e3) < 1e-12);
	assert_non_null(strstr(how, "VDPBF16PS"));
	/* AMX: 1024 FLOP per cycle per core */
	v = mb_spec_cpu_peak_tflops(MB_BF16, 2, 3.0, 512, 2, MB_CPU_BF16_AMX, how, sizeof how);
	assert_true(fabs(v - 6.144) < 1e-12);
	assert_non_null(strstr(how, "AMX"));
	/* no bf16 arithmetic, fp16, nonsense: NAN with the reason */
	v = mb_spec_cpu_peak_tflops(MB_BF16, 2, 3.0, 512, 2, MB_CPU_BF16_NONE, how, sizeof how);
	assert_true(isnan(v));
	assert_non_null(strstr(how, "no bf16 arithmetic"));
	assert_true(isnan(mb_spec_cpu_peak_tflops(MB_FP16, 2, 3, 512, 2, 0, how, sizeof how)));
	assert_true(isnan(mb_spec_cpu_peak_tflops(MB_FP32, 0, 3, 512, 2, 0, how, sizeof how)));
	assert_true(isnan(mb_spec_cpu_peak_tflops(MB_FP32, 2, NAN, 512, 2, 0, how, sizeof how)));
	assert_true(isnan(mb_spec_cpu_peak_tflops(MB_FP32, 2, 3, 384, 2, 0, how, sizeof how)));
	assert_non_null(strstr(how, "out of range"));
	assert_true(mb_spec_cpu_peak_tflops(MB_FP32, 1, 1, 128, 1, 0, NULL, 0) == 0.008);
}

/* A fake root with proc/cpuinfo (and cpufreq when khz > 0). */
static void fake_root(char *root, const char *cpuinfo, long khz)
{
	char path[320];
	strcpy(root, "/tmp/test_specs.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof path, "%s/proc", root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(cpuinfo, f);
	fclose(f);
	if (khz > 0) {
		snprintf(path, sizeof path, "mkdir -p %s/sys/devices/system/cpu/cpu0/cpufreq && "
			 "echo %ld > %s/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
			 root, khz, root);
		assert_int_equal(system(path), 0);
	}
}

static void rm_root(const char *root)
{
	char cmd[96];
	snprintf(cmd, sizeof cmd, "rm -rf %s", root);
	assert_int_equal(system(cmd), 0);
}

#define INTEL_CPU(n, core)                                                                    \
	"processor\t: " #n "\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"      \
	"cpu MHz\t\t: 2000.000\nphysical id\t: 0\ncore id\t\t: " #core "\n"                     \
	"flags\t\t: fpu sse avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n"

static void test_cpu_detect(void **st)
{
	(void)st;
	char root[32];
	mb_cpu_caps c;
	/* 4 hardware threads on 2 cores; cpufreq gives the clock */
	fake_root(root, INTEL_CPU(0, 0) INTEL_CPU(1, 1) INTEL_CPU(2, 0) INTEL_CPU(3, 1), 3800000);
	assert_int_equal(mb_spec_cpu_detect(root, &c), 0);
	assert_int_equal(c.cores, 2);
	assert_true(fabs(c.ghz - 3.8) < 1e-12);
	assert_string_equal(c.ghz_from, "cpuinfo_max_freq");
	assert_int_equal(c.simd_bits, 512);
	assert_int_equal(c.fma_units, 2);
	assert_int_equal(c.bf16, MB_CPU_BF16_AMX);
	rm_root(root);

	/* no cpufreq (a VM): "cpu MHz" */
	fake_root(root, INTEL_CPU(0, 0), 0);
	assert_int_equal(mb_spec_cpu_detect(root, &c), 0);
	assert_int_equal(c.cores, 1);
	assert_true(fabs(c.ghz - 2.0) < 1e-12);
	assert_string_equal(c.ghz_from, "cpu MHz");
	assert_non_null(strstr(c.note, "cpu MHz"));
	rm_root(root);

	/* Zen 4: AVX-512 on a 256-bit datapath; avx512_bf16 without AMX; no ids */
	fake_root(root, "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
			"cpu MHz\t\t: 2400.000\nflags\t\t: avx avx2 fma avx512f avx512_bf16\n\n"
			"processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\n", 0);
	assert_int_equal(mb_spec_cpu_detect(root, &c), 0);
	assert_int_equal(c.cores, 2);
	assert_int_equal(c.simd_bits, 256);
	assert_int_equal(c.bf16, MB_CPU_BF16_AVX512);
	assert_non_null(strstr(c.note, "Zen 4"));
	rm_root(root);

	/* an old CPU: SSE only, no FMA */
	fake_root(root, "processor\t: 0\ncpu MHz\t\t: 1000\nflags\t\t: fpu sse sse2 fmaxx\n", 0);
	assert_int_equal(mb_spec_cpu_detect(root, &c), 0);
	assert_int_equal(c.simd_bits, 128);
	assert_int_equal(c.fma_units, 1); /* "fmaxx" is not "fma" */
	assert_int_equal(c.bf16, MB_CPU_BF16_NONE);
	rm_root(root);

	/* nothing usable */
	fake_root(root, "garbage\n", 0);
	assert_int_equal(mb_spec_cpu_detect(root, &c), MB_ERR_IO);
	rm_root(root);
	assert_int_equal(mb_spec_cpu_detect("/nonexistent", &c), MB_ERR_IO);
	/* this machine: something sensible */
	assert_int_equal(mb_spec_cpu_detect(NULL, &c), 0);
	assert_true(c.cores >= 1 && c.ghz > 0.1 && c.simd_bits >= 128);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nvidia_names),
		cmocka_unit_test(test_ascend_names),
		cmocka_unit_test(test_no_peak_names),
		cmocka_unit_test(test_peaks_per_dtype),
		cmocka_unit_test(test_table_consistent),
		cmocka_unit_test(test_mfu_fake_h100),
		cmocka_unit_test(test_mfu_cpu_and_unknown),
		cmocka_unit_test(test_case_dtype),
		cmocka_unit_test(test_cpu_peak_formula),
		cmocka_unit_test(test_cpu_detect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
