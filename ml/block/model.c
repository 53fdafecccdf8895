/*
 * The whole LLaMA model (kw/ml/block.h): LlamaForCausalLM as transformers 4.43.1 writes it in
 * models/llama/modeling_llama.py (LlamaModel.forward: inputs_embeds = embed_tokens(ids), the
 * decoder layers in order, norm; then lm_head), on the int8 blocks the loader quantizes or on
 * the same blocks read in fp32. It exists so a node's blocks can be checked end to end (logits
 * and greedy tokens against an independent NumPy reference, int8 against fp32) and so the
 * benchmark can decode; a node serving a block range for Petals needs only the blocks.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>

static int add_sz(size_t *acc, size_t v)
{
	return v == 0 || __builtin_add_overflow(*acc, v, acc);
}

size_t kw_llama_model_bytes(const struct kw_llama_config *c, int int8)
{
	size_t V, H, tot = 0, ev, hv;

	if (!c || !c->hidden_size || !c->vocab_size || !c->num_hidden_layers)
		return 0;
	V = c->vocab_size;
	H = c->hidden_size;
	if (__builtin_mul_overflow(V, H * sizeof(float), &ev))
		return 0;
	hv = H * sizeof(float) + 64;
	if (int8) {
		if (add_sz(&tot, kw_llama_q8_bytes(c, c->num_hidden_layers)))
			return 0;
	} else {
		size_t fb = kw_llama_f32_bytes(c), all;

		if (!fb || __builtin_mul_overflow(fb, (size_t)c->num_hidden_layers, &all) ||
		    add_sz(&tot, all))
			return 0;
	}
	if (add_sz(&tot, kw_lin_load_bytes(V, H, int8, 0, 0)))
		return 0;
	if (add_sz(&tot, ev + 64) || add_sz(&tot, hv) ||
	    add_sz(&tot, c->num_hidden_layers * sizeof(struct kw_llama_w) + 64))
		return 0;
	return tot;
}

/* A tensor of shape [n, k] (k 0: [n]) read whole into fp32 from the arena. */
static float *read_f32(const struct kw_ckpt *ck, const char *name, uint64_t n, uint64_t k,
		       struct kw_arena *a, int *r, char *err, size_t errcap)
{
	const struct kw_st_tensor *t = kw_ckpt_find(ck, name);
	float *dst;

	if (!t) {
		*r = kw_errf(-KW_ENOENT, err, errcap, "checkpoint has no tensor '%s'", name);
		return NULL;
	}
	if (k ? t->ndim != 2 || t->shape[0] != n || t->shape[1] != k
	      : t->ndim != 1 || t->shape[0] != n) {
		*r = kw_errf(-KW_ECORRUPT, err, errcap,
			     "tensor '%s' has not the shape config.json implies", name);
		return NULL;
	}
	dst = kw_arena_alloc(a, (size_t)t->nelem * sizeof(float), 64);
	if (!dst) {
		*r = kw_errf(-KW_ENOSPC, err, errcap, "arena too small for tensor '%s'", name);
		return NULL;
	}
	*r = kw_st_read_f32(t, 0, (size_t)t->nelem, dst);
	if (*r) {
		kw_errf(*r, err, errcap, "tensor '%s': read failed", name);
		return NULL;
	}
	for (uint64_t i = 0; i < t->nelem; i++)
		if (!isfinite(dst[i])) {
			*r = kw_errf(-KW_ECORRUPT, err, errcap, "tensor '%s': non-finite value at %llu",
				     name, (unsigned long long)i);
			return NULL;
		}
	return dst;
}

int kw_llama_model_load(struct kw_llama_model *m, const struct kw_ckpt *ck, int int8,
			struct kw_arena *a, char *err, size_t errcap)
{
	const struct kw_llama_config *c;
	size_t need, L, V, H;
	int r = 0;

	if (!m || !ck || !a)
		return -KW_EINVAL;
	c = &ck->cfg;
	need = kw_llama_model_bytes(c, int8);
	if (!need)
		return kw_errf(-KW_EINVAL, err, errcap, "model shape overflows");
	if (kw_arena_free_bytes(a) < need)
		return kw_errf(-KW_ENOSPC, err, errcap,
			       "the whole model needs %zu bytes (%.1f MiB) in %s, the arena has %zu",
			       need, need / 1048576.0, int8 ? "int8" : "fp32",
			       kw_arena_free_bytes(a));
	memset(m, 0, sizeof(*m));
	kw_llama_dims_from_config(&m->d, c);
	L = c->num_hidden_layers;
	V = c->vocab_size;
	H = c->hidden_size;
	m->layers = L;
	m->vocab = V;
	m->int8 = int8;
	m->blk = kw_arena_alloc(a, L * sizeof(*m->blk), 64);
	if (!m->blk)
		return -KW_ENOSPC;
	if (int8) {
		r = kw_llama_q8_load(&m->q8, ck, 0, (uint32_t)L, a, NULL, NULL, err, errcap);
		for (size_t l = 0; !r && l < L; l++)
			r = kw_llama_w_from_q8(&m->blk[l], &m->q8.blk[l], NULL);
	} else {
		for (size_t l = 0; !r && l < L; l++)
			r = kw_llama_w_load_f32(&m->blk[l], ck, (uint32_t)l, a, err, errcap);
	}
	if (!r) {
		const struct kw_st_tensor *t = kw_ckpt_find(ck, "lm_head.weight");

		r = t ? kw_lin_load_st(&m->head, t, NULL, V, H, int8, 0, a, err, errcap)
		      : kw_errf(-KW_ENOENT, err, errcap, "checkpoint has no tensor 'lm_head.weight'");
	}
	if (r)
		return r;
	m->embed = read_f32(ck, "model.embed_tokens.weight", V, H, a, &r, err, errcap);
	if (!r)
		m->norm = read_f32(ck, "model.norm.weight", H, 0, a, &r, err, errcap);
	return r;
}

size_t kw_llama_model_ctx_bytes(const struct kw_llama_model *m, size_t max_rows,
				size_t max_pos, unsigned nworkers)
{
	size_t b, tot;

	if (!m || !max_rows)
		return 0;
	b = kw_llama_ctx_bytes(&m->d, max_rows, max_pos, nworkers);
	tot = b;
	if (!b || add_sz(&tot, 2 * (max_rows * m->d.hidden * sizeof(float) + 64)) ||
	    add_sz(&tot, m->vocab * sizeof(float) + 64))
		return 0;
	return tot;
}

int kw_llama_model_ctx_init(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			    const struct kw_kernels *kk, struct kw_workers *wk, size_t max_rows,
			    size_t max_pos, struct kw_arena *a)
{
	size_t H;
	int r;

	if (!c || !m || !a || !kw_llama_model_ctx_bytes(m, max_rows, max_pos,
							kw_workers_count(wk)))
		return -KW_EINVAL;
	memset(c, 0, sizeof(*c));
	r = kw_llama_ctx_init(&c->blk, &m->d, kk, wk, max_rows, max_pos, a);
	if (r)
		return r;
	H = m->d.hidden;
	c->vocab = m->vocab;
	c->h = kw_arena_alloc(a, max_rows * H * sizeof(float), 64);
	c->hn = kw_arena_alloc(a, max_rows * H * sizeof(float), 64);
	c->logits = kw_arena_alloc(a, m->vocab * sizeof(float), 64);
	return c->h && c->hn && c->logits ? 0 : -KW_ENOMEM;
}

int kw_llama_model_forward(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			   struct kw_kv_cache *kv, struct kw_kv_session *s, const uint32_t *tok,
			   size_t n, size_t pos, float *hs, float *logits, int last_only)
{
	size_t H, r0, rows;
	int r;

	if (!c || !m || !tok || !n || c->vocab != m->vocab || n > c->blk.max_rows)
		return -KW_EINVAL;
	if (s && (!kv || kv->layers != m->layers || s->batch != 1))
		return -KW_EINVAL;
	H = m->d.hidden;
	for (size_t t = 0; t < n; t++) {
		if (tok[t] >= m->vocab)
			return -KW_ERANGE;
		memcpy(c->h + t * H, m->embed + (size_t)tok[t] * H, H * sizeof(float));
	}
	for (size_t l = 0; l < m->layers; l++) {
		r = kw_llama_forward(&c->blk, &m->blk[l], kv, s, l, c->h, 1, n, pos, c->h);
		if (r)
			return r;
		if (hs)
			memcpy(hs + l * n * H, c->h, n * H * sizeof(float));
	}
	if (!logits)
		return 0;
	r0 = last_only ? n - 1 : 0;
	rows = n - r0;
	for (size_t t = 0; t < rows; t++)
		kw_rms_norm(c->h + (r0 + t) * H, m->norm, H, (float)m->d.eps, c->hn + t * H);
	return kw_lin_forward(&c->blk.ex, &m->head, c->hn, rows, logits);
}

uint32_t kw_argmax(const float *v, size_t n, float *margin)
{
	size_t best = 0;
	float second = -INFINITY;

	for (size_t i = 1; i < n; i++) {
		if (v[i] > v[best]) {
			second = v[best];
			best = i;
		} else if (v[i] > second) {
			second = v[i];
		}
	}
	if (margin)
		*margin = n > 1 ? v[best] - second : INFINITY;
	return (uint32_t)best;
}

int kw_llama_model_greedy(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			  struct kw_kv_cache *kv, struct kw_kv_session *s, const uint32_t *prompt,
			  size_t np, uint32_t *out, size_t ngen, float *min_margin)
{
	float mm = INFINITY, mg;
	int r;

	if (!c || !s || !prompt || !np || (ngen && !out))
		return -KW_EINVAL;
	if (min_margin)
		*min_margin = INFINITY;
	if (!ngen)
		return 0;
	r = kw_llama_model_forward(c, m, kv, s, prompt, np, 0, NULL, c->logits, 1);
	for (size_t i = 0; !r; i++) {
		out[i] = kw_argmax(c->logits, m->vocab, &mg);
		mm = mg < mm ? mg : mm;
		if (i + 1 == ngen)
			break;
		r = kw_llama_model_forward(c, m, kv, s, &out[i], 1, np + i, NULL, c->logits, 1);
	}
	if (min_margin)
		*min_margin = mm;
	return r;
}
