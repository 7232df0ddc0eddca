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

#include "specs.h"

/* Ascend 910C is two dies in one package, and each die appears to CANN as
 * its own device (Ascend910_93xx), so the per-device peak is a die's. */
static const mb_spec specs[] = {
	{
		.name = "NVIDIA A100 SXM 80GB",
		.match = {"A100-SXM4-80GB", "A100-SXM-80GB", "A100 SXM4 80GB"},
		.tflops = {[MB_BF16] = 312},
		.mem_gbps = 2039,
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
		.source = "✅ torchtitan torchtitan/tools/utils.py (MI300X 1300e12, citing amd.com: "
			  "1307.4 dense) (facts-models-hardware.md §D.2)",
	},
	{
		.name = "Huawei Ascend 910B1",
		.match = {"910B1"},
		.tflops = {[MB_BF16] = 373.88},
		.mem_gbps = 1600,
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 400 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B2",
		.match = {"910B2"},
		.tflops = {[MB_BF16] = 353.8944},
		.mem_gbps = 1600,
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 376 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B3",
		.match = {"910B3"},
		.tflops = {[MB_BF16] = 294.912},
		.mem_gbps = 1600,
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 313 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910B4",
		.match = {"910B4"},
		.tflops = {[MB_BF16] = 245.76},
		.mem_gbps = 1600,
		.source = "🟡 Huawei-authored TorchTitan Ascend plugin _ASCEND_BF16_PEAK_FLOPS "
			  "(BF16 Cube peak; 280 total); HBM 1.6 TB/s 🟡 (facts-models-hardware.md §D.1)",
	},
	{
		.name = "Huawei Ascend 910C (one die)",
		.match = {"910_93", "910C"},
		.tflops = {[MB_BF16] = 353.8944},
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
