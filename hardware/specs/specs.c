/* specs.c: the table of published device peaks (see specs.h).
 *
 * Every figure is copied from reference/facts-models-hardware.md §D, which
 * names its sources and marks each one ✅ (primary or a vendor-maintained
 * table) or 🟡 (secondary). The status travels in the source string so that
 * a reader of a result file sees how firm the denominator of its MFU is.
 * Dense peaks only: NVIDIA and AMD also quote 2:4-sparse figures at twice
 * these, which no MoE training step reaches. A dtype is left at 0 when the
 * facts give no figure for it (no GPU's fp32 or fp16 rate is listed there),
 * so MFU for that dtype is null rather than computed against a guess.
 *
 * Matching is by case-insensitive substring of the name the backend reports,
 * as TorchTitan does. Patterns are chosen so that a variant with different
 * figures does not match: "H100 PCIe" and "H100 NVL" are not "H100 SXM",
 * "GB200" (1200 W, 2.5 PFLOP/s) is not the HGX "B200", "GH200" is not
 * "H200", and a bare "Ascend910B" without its SKU digit has no single peak.
 */
#include "../../harness/mb.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specs.h"

/* Ascend 910C is two dies in one package, and each die appears to CANN as
 * its own device (Ascend910_93xx), so the per-device peak is a die's. */
static const mb_spec specs[] = {
	{
		.name = "NVIDIA A100 SXM 80GB",
		.match = {"A100-SXM4-80GB", "A100-SXM-80GB", "A100 SXM4 80GB"},
		.tflops = {[MB_BF16] = 312},
		.mem_gbps = 2039,
		.link_gbps = 600,
		.link = "NVLink, bidirectional",
		.tdp_w = 400,
		.source = "✅ torchtitan torchtitan/tools/utils.py (A100 312e12); 🟡 NVIDIA A100 "
			  "datasheet table via https://jishuzhan.net/article/1872432607539499010 "
			  "(facts-models-hardware.md §D.2)",
	},
	{
		.name = "NVIDIA H100 SXM",
		.match = {"H100 80GB HBM3", "H100 SXM"},
		.unless = {"PCIe", "NVL"},
		.tflops = {[MB_BF16] = 989.4},
		.fp8_tflops = 1978.9,
		.mem_gbps = 3350,
		.link_gbps = 900,
		.link = "NVLink, bidirectional",
		.tdp_w = 700,
		.source = "✅ torchtitan torchtitan/tools/utils.py (H100 SXM 989e12); ✅ Lightning "
			  "GPU_AVAILABLE_FLOPS h100-sxm (bf16 1.979e15/2, 8-bit 3.958e15/2) "
			  "(facts-models-hardware.md §D.2)",
	},
	{
		.name = "NVIDIA H800 SXM",
		.match = {"H800"},
		.unless = {"PCIe", "NVL"},
		.tflops = {[MB_BF16] = 989},
		.fp8_tflops = 1979,
		.mem_gbps = 3350,
		.link_gbps = 400,
		.link = "NVLink, bidirectional",
		.source = "🟡 same silicon as H100 SXM, NVLink cut to 400 GB/s: "
			  "https://www.philisun.com/technical-analysis/nvidia-h800-vs-h100- "
			  "(facts-models-hardware.md §D.2)",
	},
	{
		.name = "NVIDIA H200 SXM",
		.match = {"H200"},
		.unless = {"NVL", "GH200", "PCIe"},
		.tflops = {[MB_BF16] = 989},
		.fp8_tflops = 1979,
		.mem_gbps = 4800,
		.link_gbps = 900,
		.link = "NVLink, bidirectional",
		.tdp_w = 700,
		.source = "✅ torchtitan torchtitan/tools/utils.py (H200 989e12); 🟡 "
			  "https://gentic.news/ai-data-centers/learn/compute "
			  "(facts-models-hardware.md §D.2)",
	},
	{
		.name = "NVIDIA B200 (HGX, 1000 W)",
		.match = {"B200"},
		.unless = {"GB200"},
		.tflops = {[MB_BF16] = 2250},
		.fp8_tflops = 4500,
		.mem_gbps = 8000,
		.link_gbps = 1800,
		.link = "NVLink 5, bidirectional",
		.tdp_w = 1000,
		.source = "✅ torchtitan torchtitan/tools/utils.py (B200 2.25e15, citing the "
			  "Blackwell datasheet); 🟡 https://glennklockwood.com/garden/processors/B200 "
			  "(facts-models-hardware.md §D.2)",
	},
	{
		.name = "AMD Instinct MI300X",
		.match = {"MI300X"},
		.tflops = {[MB_BF16] = 1307.4},
		.fp8_tflops = 2614.9,
		.mem_gbps = 5300,
		.link_gbps = 896,
		.link = "Infinity Fabric, aggregate of 7 x 128 GB/s",
		.tdp_w = 750,
		.source = "✅ torchtitan torchtitan/tools/utils.py (MI300X 1300e12, citing amd.com: "
			  "1307.4 dense) (facts-models-hardware.md §D.2)",
	},
	{
		.name = "Huawei Ascend 910B1",
		.match = {"910B1"},
		.tflops = {[MB_BF16] = 373.88},
		.mem_gbps = 1600,
		.link_gbps = 392,
		.link = "HCCS, 7 links x 56 GB/s",
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 400 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B2",
		.match = {"910B2"},
		.tflops = {[MB_BF16] = 353.8944},
		.mem_gbps = 1600,
		.link_gbps = 392,
		.link = "HCCS, 7 links x 56 GB/s",
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 376 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B3",
		.match = {"910B3"},
		.tflops = {[MB_BF16] = 294.912},
		.mem_gbps = 1600,
		.link_gbps = 392,
		.link = "HCCS, 7 links x 56 GB/s",
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 313 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B4",
		.match = {"910B4"},
		.tflops = {[MB_BF16] = 245.76},
		.mem_gbps = 1600,
		.link_gbps = 392,
		.link = "HCCS, 7 links x 56 GB/s",
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 280 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910C (one die)",
		.match = {"910_93", "910C"},
		.tflops = {[MB_BF16] = 353.8944},
		.link_gbps = 196,
		.link = "Unified Bus per die, 7 x 224 Gbps, per direction",
		.source = "🟡 per die, as CANN shows each of the package's 2 dies as a device: "
			  "Huawei-authored TorchTitan Ascend plugin (Ascend910_9362/9392, BF16 Cube "
			  "peak 353.9, ≈708 per package); the CloudMatrix384 paper summary "
			  "http://news.43b.com.cn/a/619517.html gives ≈752 per package (2 × 376 total, "
			  "unconfirmed); HBM 3.2 TB/s per package (facts-models-hardware.md §D.1)",
	},
};

static int lower(int c)
{
	return tolower((unsigned char)c);
}

/* Case-insensitive strstr, kept here rather than relying on GNU strcasestr. */
static int spec_contains(const char *hay, const char *needle)
{
	for (; *hay; hay++) {
		size_t i = 0;
		while (needle[i] && hay[i] && lower(hay[i]) == lower(needle[i]))
			i++;
		if (!needle[i])
			return 1;
	}
	return 0;
}

static int spec_any(const char *name, const char *const pats[MB_SPEC_MAX_MATCH])
{
	for (int i = 0; i < MB_SPEC_MAX_MATCH; i++)
		if (pats[i] && spec_contains(name, pats[i]))
			return 1;
	return 0;
}

const mb_spec *mb_spec_find(const char *device_name)
{
	if (!device_name || !*device_name)
		return NULL;
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
		if (spec_any(device_name, specs[i].match) &&
		    !spec_any(device_name, specs[i].unless))
			return &specs[i];
	return NULL;
}

double mb_spec_peak_tflops(const mb_spec *s, mb_dtype dt, const char **source)
{
	if (source)
		*source = NULL;
	if (!s || (unsigned)dt >= MB_DTYPE_COUNT || !(s->tflops[dt] > 0))
		return NAN;
	if (source)
		*source = s->source;
	return s->tflops[dt];
}

const mb_spec *mb_spec_table(int *n)
{
	*n = (int)(sizeof specs / sizeof specs[0]);
	return specs;
}

/* ---- CPUs: a computed peak ---- */

/* "key : value" of a cpuinfo line into val (n bytes), or 0 if key differs. */
static int cpuinfo_field(const char *line, const char *key, char *val, size_t n)
{
	size_t k = strlen(key);
	if (strncmp(line, key, k) != 0 || (line[k] != ' ' && line[k] != '\t' && line[k] != ':'))
		return 0;
	const char *v = strchr(line, ':');
	if (!v)
		return 0;
	for (v++; *v == ' ' || *v == '\t'; v++)
		;
	mb_strlcpy(val, v, n);
	val[strcspn(val, "\n")] = '\0';
	return 1;
}

/* 1 if the space-separated flags list holds flag as a whole word. */
static int has_flag(const char *flags, const char *flag)
{
	size_t k = strlen(flag);
	for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += k)
		if ((p == flags || p[-1] == ' ') && (p[k] == ' ' || p[k] == '\0'))
			return 1;
	return 0;
}

/* Distinct (physical id, core id) pairs, at most 65536 tracked. */
static int count_core(unsigned *seen, int *n, long phys, long core)
{
	unsigned key = (unsigned)((phys & 0xffff) << 16 | (core & 0xffff));
	for (int i = 0; i < *n; i++)
		if (seen[i] == key)
			return 0;
	if (*n < 65536)
		seen[(*n)++] = key;
	return 1;
}

int mb_spec_cpu_detect(const char *root, mb_cpu_caps *out)
{
	memset(out, 0, sizeof *out);
	if (!root)
		root = "";
	char path[4096], line[8192], val[8192], flags[8192] = "", vendor[64] = "";
	snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
	FILE *f = fopen(path, "r");
	if (!f)
		return mb_err(MB_ERR_IO, "cannot read %s", path);
	unsigned *seen = malloc(65536 * sizeof *seen);
	if (!seen) {
		fclose(f);
		return mb_err(MB_ERR_NOMEM, "out of memory reading %s", path);
	}
	int procs = 0, pairs = 0, family = -1, first = 1;
	long phys = -1, core = -1;
	double mhz = 0;
	while (fgets(line, sizeof line, f)) {
		if (cpuinfo_field(line, "processor", val, sizeof val)) {
			procs++;
			first = procs == 1;
			phys = core = -1;
		} else if (cpuinfo_field(line, "physical id", val, sizeof val)) {
			phys = strtol(val, NULL, 10);
		} else if (cpuinfo_field(line, "core id", val, sizeof val)) {
			core = strtol(val, NULL, 10);
			if (phys >= 0 && core >= 0)
				count_core(seen, &pairs, phys, core);
		} else if (first && cpuinfo_field(line, "flags", val, sizeof val)) {
			mb_strlcpy(flags, val, sizeof flags);
		} else if (first && cpuinfo_field(line, "vendor_id", val, sizeof val)) {
			mb_strlcpy(vendor, val, sizeof vendor);
		} else if (first && cpuinfo_field(line, "cpu family", val, sizeof val)) {
			family = (int)strtol(val, NULL, 10);
		} else if (first && cpuinfo_field(line, "cpu MHz", val, sizeof val)) {
			mhz = strtod(val, NULL);
		}
	}
	fclose(f);
	free(seen);
	out->cores = pairs > 0 ? pairs : procs;
	snprintf(path, sizeof path, "%s/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", root);
	double khz = 0;
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%lf", &khz) != 1)
			khz = 0;
		fclose(f);
	}
	if (khz > 0 && isfinite(khz)) {
		out->ghz = khz / 1e6;
		mb_strlcpy(out->ghz_from, "cpuinfo_max_freq", sizeof out->ghz_from);
	} else if (mhz > 0 && isfinite(mhz)) {
		out->ghz = mhz / 1e3;
		mb_strlcpy(out->ghz_from, "cpu MHz", sizeof out->ghz_from);
	}
	if (!out->cores || !(out->ghz > 0) || !flags[0])
		return mb_err(MB_ERR_IO, "%s/proc/cpuinfo lacks processors, flags or a clock", root);
	int zen4 = !strcmp(vendor, "AuthenticAMD") && family == 0x19;
	out->simd_bits = has_flag(flags, "avx512f") && !zen4 ? 512
			 : has_flag(flags, "avx2") || has_flag(flags, "avx") ? 256 : 128;
	out->fma_units = has_flag(flags, "fma") ? 2 : 1;
	out->bf16 = has_flag(flags, "amx_bf16")      ? MB_CPU_BF16_AMX
		    : has_flag(flags, "avx512_bf16") ? MB_CPU_BF16_AVX512
						       : MB_CPU_BF16_NONE;
	snprintf(out->note, sizeof out->note, "%s; %d FMA units per core assumed%s",
		 !strcmp(out->ghz_from, "cpu MHz")
			 ? "clock from cpu MHz (no cpufreq: a VM's nominal clock)"
			 : "clock from cpufreq cpuinfo_max_freq (the highest turbo)",
		 out->fma_units, zen4 ? "; Zen 4 runs AVX-512 as two 256-bit halves" : "");
	return 0;
}

double mb_spec_cpu_peak_tflops(mb_dtype dt, int cores, double ghz, int simd_bits, int fma_units,
			       mb_cpu_bf16 bf16, char *how, size_t n)
{
	char tmp[8];
	if (!how || !n) {
		how = tmp;
		n = sizeof tmp;
	}
	if (cores < 1 || cores > 1 << 20 || !(ghz > 0 && ghz < 100) ||
	    (simd_bits != 128 && simd_bits != 256 && simd_bits != 512) || fma_units < 1 ||
	    fma_units > 8) {
		snprintf(how, n, "no computed peak: cores %d, clock %g GHz, %d-bit SIMD or %d FMA "
			 "units out of range", cores, ghz, simd_bits, fma_units);
		return NAN;
	}
	double per_cycle; /* FLOP per core per cycle */
	switch (dt) {
	case MB_FP32:
	case MB_FP64: {
		int lanes = simd_bits / (dt == MB_FP32 ? 32 : 64);
		per_cycle = fma_units * lanes * 2.0;
		snprintf(how, n, "%d FMA units x %d %s lanes x 2 FLOP x %d cores x %.2f GHz",
			 fma_units, lanes, mb_dtype_name(dt), cores, ghz);
		break;
	}
	case MB_BF16:
		if (bf16 == MB_CPU_BF16_AMX) {
			/* Intel: 1024 BF16 operations per cycle per core on 4th Gen
			 * Xeon (a 16x32 by 32x16 TMUL tile product in 16 cycles). */
			per_cycle = 1024;
			snprintf(how, n, "AMX 1024 bf16 FLOP per cycle x %d cores x %.2f GHz", cores,
				 ghz);
		} else if (bf16 == MB_CPU_BF16_AVX512) {
			int lanes = simd_bits / 32;
			per_cycle = fma_units * lanes * 4.0;
			snprintf(how, n, "%d FMA units x %d fp32 lanes x 4 bf16 FLOP (VDPBF16PS) x %d "
				 "cores x %.2f GHz", fma_units, lanes, cores, ghz);
		} else {
			snprintf(how, n, "no computed bf16 peak: no bf16 arithmetic (amx_bf16, "
				 "avx512_bf16) on this CPU");
			return NAN;
		}
		break;
	default:
		snprintf(how, n, "no computed %s peak", mb_dtype_name(dt));
		return NAN;
	}
	return per_cycle * cores * ghz / 1e3;
}
