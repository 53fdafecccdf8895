/*
 * Weights of a LLaMA block for ml/block (kw/ml/block.h): the int8 block the loader made
 * (ml/model/load.c), with transposes built for backward, or the same block read in fp32
 * from the checkpoint (the reference path and the fp32 option). Init-time code.
 */
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/block.h>

static int lin_q8(struct kw_lin *l, const struct kw_q8w *w, struct kw_arena *t)
{
	memset(l, 0, sizeof(*l));
	l->n = w->n;
	l->k = w->k;
	l->q8 = w;
	if (t) {
		struct kw_q8w *tw = kw_arena_alloc(t, sizeof(*tw), 64);
		int rc;

		if (!tw)
			return -KW_ENOMEM;
		rc = kw_q8w_transpose(tw, w, t);
		if (rc)
			return rc;
		l->q8t = tw;
	}
	return 0;
}

int kw_llama_w_from_q8(struct kw_llama_w *w, const struct kw_llama_block_q8 *b,
		       struct kw_arena *t)
{
	const struct kw_q8w *src[7] = { &b->q, &b->k, &b->v, &b->o, &b->gate, &b->up, &b->down };
	struct kw_lin *dst[7] = { &w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down };

	if (!w || !b)
		return -KW_EINVAL;
	for (int i = 0; i < 7; i++) {
		int rc = lin_q8(dst[i], src[i], t);

		if (rc)
			return rc;
	}
	w->input_norm = b->input_norm;
	w->post_norm = b->post_norm;
	return 0;
}

static const struct {
	const char *name;
	int kind;                        /* 0 q, 1 kv, 2 o, 3 gate/up, 4 down, 5 norm */
} f32_tensors[9] = {
	{ "self_attn.q_proj.weight", 0 }, { "self_attn.k_proj.weight", 1 },
	{ "self_attn.v_proj.weight", 1 }, { "self_attn.o_proj.weight", 2 },
	{ "mlp.gate_proj.weight", 3 },    { "mlp.up_proj.weight", 3 },
	{ "mlp.down_proj.weight", 4 },    { "input_layernorm.weight", 5 },
	{ "post_attention_layernorm.weight", 5 },
};

static void shape_of(const struct kw_llama_config *c, int kind, uint64_t *n, uint64_t *k)
{
	uint64_t H = c->hidden_size, QD = (uint64_t)c->num_attention_heads * c->head_dim;
	uint64_t KD = (uint64_t)c->num_key_value_heads * c->head_dim;

	switch (kind) {
	case 0: *n = QD; *k = H; break;
	case 1: *n = KD; *k = H; break;
	case 2: *n = H; *k = QD; break;
	case 3: *n = c->intermediate_size; *k = H; break;
	case 4: *n = H; *k = c->intermediate_size; break;
	default: *n = H; *k = 0; break;
	}
}

size_t kw_llama_f32_bytes(const struct kw_llama_config *c)
{
	uint64_t sum = 0;

	for (int i = 0; i < 9; i++) {
		uint64_t n, k;

		shape_of(c, f32_tensors[i].kind, &n, &k);
		sum += n * (k ? k : 1) * sizeof(float) + 64;
	}
	return sum > SIZE_MAX ? 0 : (size_t)sum;
}

int kw_llama_w_load_f32(struct kw_llama_w *w, const struct kw_ckpt *ck, uint32_t layer,
			struct kw_arena *a, char *err, size_t errcap)
{
	struct kw_lin *lins[7] = { &w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down };
	const struct kw_llama_config *c = &ck->cfg;

	if (layer >= c->num_hidden_layers) {
		snprintf(err, errcap, "block %u is outside the model's %u blocks", layer,
			 c->num_hidden_layers);
		return -KW_ERANGE;
	}
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < 9; i++) {
		char name[160];
		const struct kw_st_tensor *t;
		uint64_t n, k;
		float *dst;
		int rc;

		snprintf(name, sizeof(name), "model.layers.%u.%s", layer, f32_tensors[i].name);
		t = kw_ckpt_find(ck, name);
		if (!t) {
			snprintf(err, errcap, "checkpoint has no tensor '%s'", name);
			return -KW_ENOENT;
		}
		shape_of(c, f32_tensors[i].kind, &n, &k);
		if (k ? t->ndim != 2 || t->shape[0] != n || t->shape[1] != k
		      : t->ndim != 1 || t->shape[0] != n) {
			snprintf(err, errcap, "tensor '%s' has not the shape the config implies", name);
			return -KW_ECORRUPT;
		}
		dst = kw_arena_alloc(a, (size_t)t->nelem * sizeof(float), 64);
		if (!dst) {
			snprintf(err, errcap, "arena too small for tensor '%s'", name);
			return -KW_ENOMEM;
		}
		rc = kw_st_read_f32(t, 0, (size_t)t->nelem, dst);
		if (rc) {
			snprintf(err, errcap, "tensor '%s': read failed", name);
			return rc;
		}
		if (i < 7) {
			lins[i]->n = (size_t)n;
			lins[i]->k = (size_t)k;
			lins[i]->f32 = dst;
		} else if (i == 7) {
			w->input_norm = dst;
		} else {
			w->post_norm = dst;
		}
	}
	return 0;
}
