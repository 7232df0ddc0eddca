/* presets.c: model shapes from public configurations, and size presets.
 *
 * Sources are in ../shared/reference/facts-models-hardware.md (§A-§C); each
 * entry names the configuration it was read from. MLA models list
 * heads x (qk_nope + qk_rope) as head_dim 192; attention details beyond the
 * head layout arrive with the attention suite.
 */
#include "../harness/mb.h"

#include <string.h>

#include "presets.h"

const mb_model mb_models[] = {
	{
		.name = "tiny",
		.summary = "a small MoE for tests: 4 layers, 8 experts, top-2",
		.source = "moebench (synthetic)",
		.layers = 4, .dense_layers = 1, .hidden = 64, .ffn_dense = 128, .moe_ffn = 32,
		.experts = 8, .shared_experts = 1, .top_k = 2, .score = "softmax",
		.attention = "gqa", .heads = 4, .kv_heads = 2, .head_dim = 16, .v_head_dim = 16,
		.vocab = 256,
	},
	{
		.name = "deepseek-v3",
		.summary = "DeepSeek-V3/R1, 671B total / 37B active",
		.source = "DeepSeek-V3 config.json (arXiv 2412.19437)",
		.layers = 61, .dense_layers = 3, .hidden = 7168, .ffn_dense = 18432, .moe_ffn = 2048,
		.experts = 256, .shared_experts = 1, .top_k = 8, .score = "sigmoid",
		.attention = "mla", .heads = 128, .kv_heads = 128, .head_dim = 192, .v_head_dim = 128,
		.q_lora = 1536, .kv_lora = 512, .qk_rope = 64,
		.vocab = 129280,
	},
	{
		.name = "pangu-ultra-moe",
		.summary = "Pangu Ultra MoE, 718B total / 39B active",
		.source = "openPangu-Ultra-MoE-718B config (arXiv 2505.04519)",
		.layers = 61, .dense_layers = 3, .hidden = 7680, .ffn_dense = 18432, .moe_ffn = 2048,
		.experts = 256, .shared_experts = 1, .top_k = 8, .score = "sigmoid",
		.attention = "mla", .heads = 128, .kv_heads = 128, .head_dim = 192, .v_head_dim = 128,
		.q_lora = 1536, .kv_lora = 512, .qk_rope = 64,
		.vocab = 153600,
	},
	{
		.name = "pangu-pro-moe",
		.summary = "Pangu Pro MoE (MoGE), 72B total / 16B active, 8 groups x 1 expert",
		.source = "PanguProMoEConfig (arXiv 2505.21411)",
		.layers = 48, .dense_layers = 0, .hidden = 5120, .ffn_dense = 0, .moe_ffn = 1344,
		.experts = 64, .shared_experts = 4, .top_k = 8, .groups = 8, .score = "softmax",
		.attention = "gqa", .heads = 40, .kv_heads = 8, .head_dim = 128, .v_head_dim = 128,
		.vocab = 153376,
	},
	{
		.name = "deepseek-v4-pro",
		.summary = "DeepSeek-V4-Pro, 1.6T total / 49B active; its compressed "
			   "attention (CSA/HCA) is approximated by full attention with its head layout",
		.approximated = 1,
		.source = "DeepSeek-V4-Pro config copies (arXiv 2606.19348)",
		.layers = 61, .dense_layers = 0, .hidden = 7168, .ffn_dense = 0, .moe_ffn = 3072,
		.experts = 384, .shared_experts = 1, .top_k = 6, .score = "sigmoid",
		.attention = "gqa", .heads = 128, .kv_heads = 1, .head_dim = 512, .v_head_dim = 512,
		.vocab = 129280,
	},
	{
		.name = "mixtral-8x7b",
		.summary = "Mixtral 8x7B, 46.7B total / 12.9B active",
		.source = "Mixtral-8x7B config (keras-hub README, HF config)",
		.layers = 32, .dense_layers = 0, .hidden = 4096, .ffn_dense = 0, .moe_ffn = 14336,
		.experts = 8, .shared_experts = 0, .top_k = 2, .score = "softmax",
		.attention = "gqa", .heads = 32, .kv_heads = 8, .head_dim = 128, .v_head_dim = 128,
		.vocab = 32000,
	},
	{
		.name = "qwen3-235b-a22b",
		.summary = "Qwen3-235B-A22B, 235B total / 22B active",
		.source = "Qwen3-235B-A22B Megatron arguments (slime scripts)",
		.layers = 94, .dense_layers = 0, .hidden = 4096, .ffn_dense = 0, .moe_ffn = 1536,
		.experts = 128, .shared_experts = 0, .top_k = 8, .score = "softmax",
		.attention = "gqa", .heads = 64, .kv_heads = 4, .head_dim = 128, .v_head_dim = 128,
		.vocab = 151936,
	},
};

const int mb_model_count = (int)MB_ARRAY_LEN(mb_models);

const mb_model *mb_model_find(const char *name)
{
	for (int i = 0; i < mb_model_count; i++)
		if (strcmp(mb_models[i].name, name) == 0)
			return &mb_models[i];
	return NULL;
}

static const char *const size_names[MB_SIZE_COUNT] = {"quick", "standard", "full"};

int64_t mb_model_groups(const mb_model *m, int64_t experts, int64_t top_k)
{
	for (int64_t g = m->groups; g > 1; g--)
		if (experts % g == 0 && top_k % g == 0)
			return g;
	return 0;
}

const char *mb_size_name(mb_size s) { return s < MB_SIZE_COUNT ? size_names[s] : "?"; }

int mb_size_parse(const char *s, mb_size *out)
{
	for (int i = 0; i < MB_SIZE_COUNT; i++)
		if (strcmp(s, size_names[i]) == 0) {
			*out = (mb_size)i;
			return 0;
		}
	return mb_err(MB_ERR_USAGE, "unknown size preset '%s' (accepted: quick, standard, full)", s);
}
