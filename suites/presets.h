/* presets.h: model shapes (public configurations) and size presets.
 *
 * A model preset is a fact table: the shapes of a published model, with the
 * source. A size preset says how much of it one device runs (quick: seconds
 * on 2 CPU cores; standard: minutes on one CPU node; full: the per-device
 * shapes of a real accelerator run). Each suite maps (model, size) onto its
 * own parameters in its preset hook.
 */
#ifndef MB_PRESETS_H
#define MB_PRESETS_H

#include "../harness/mb.h"

typedef enum { MB_SIZE_QUICK = 0, MB_SIZE_STANDARD, MB_SIZE_FULL, MB_SIZE_COUNT } mb_size;

typedef struct mb_model {
	const char *name;
	const char *summary;
	const char *source; /* where the shapes come from */
	int layers, dense_layers;
	int hidden;
	int ffn_dense;      /* dense-layer FFN intermediate */
	int moe_ffn;        /* per-expert FFN intermediate */
	int experts;        /* routed experts */
	int shared_experts;
	int top_k;
	int groups;         /* MoGE (Pangu Pro): experts in this many equal groups, top_k/groups
			       chosen in each; 0 = ungrouped */
	const char *score;  /* router scoring: "softmax" or "sigmoid" */
	const char *attention; /* "mha", "gqa", "mla" */
	int heads, kv_heads;
	int head_dim;       /* of queries and keys (MLA: qk_nope + qk_rope) */
	int v_head_dim;     /* of values (equal to head_dim unless MLA) */
	int q_lora, kv_lora, qk_rope; /* MLA low-rank widths and the rope part (0 otherwise) */
	int approximated;   /* 1: attention not reproduced exactly (see summary) */
	int vocab;
} mb_model;

extern const mb_model mb_models[];
extern const int mb_model_count;

/* The model named name, or NULL. */
const mb_model *mb_model_find(const char *name);
/* The MoGE groups for a slice of experts routed top_k of the model m: the
 * most groups, at most m->groups, that divide both experts and top_k (a
 * scaled-down slice cannot always keep the model's count); 0 when the model
 * is ungrouped or only 1 group would fit. */
int64_t mb_model_groups(const mb_model *m, int64_t experts, int64_t top_k);

const char *mb_size_name(mb_size s);
/* Parse "quick|standard|full"; MB_ERR_USAGE with a message otherwise. */
int mb_size_parse(const char *s, mb_size *out) MB_MUST_CHECK;

#endif
