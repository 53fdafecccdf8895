/*
 * KV cache for the LLaMA block (kw/ml/block.h): fixed-size fp32 or fp16 slots carved from
 * an arena at init, one per session plus a spare that kw_kv_reorder gathers into. Within a slot,
 * per layer: K as [batch][kv_heads][max_len][head_dim] then V the same, as Petals'
 * descriptors in src/petals/server/backend.py (get_inference_cache_descriptors; Petals keeps
 * K transposed, [head_dim][max_len], for its own matmul, which is immaterial here).
 */
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>

static size_t slot_floats(size_t slot_tokens, size_t layers, size_t kvh, size_t hd)
{
	size_t f = layers * 2 * slot_tokens * kvh * hd;

	if (!slot_tokens || !layers || !kvh || !hd ||
	    f / (layers * 2) / slot_tokens / kvh != hd)
		return 0;
	return f;
}

static size_t elem_bytes(enum kw_kv_dtype dt)
{
	return dt == KW_KV_F16 ? sizeof(uint16_t) : dt == KW_KV_F32 ? sizeof(float) : 0;
}

enum kw_kv_dtype kw_kv_dtype_default(void)
{
	return IS_ENABLED(CONFIG_KW_ML_BLOCK_KV_FP16) ? KW_KV_F16 : KW_KV_F32;
}

size_t kw_kv_cache_bytes_as(enum kw_kv_dtype dt, size_t max_sessions, size_t slot_tokens,
			    size_t layers, size_t kv_heads, size_t head_dim)
{
	size_t f = slot_floats(slot_tokens, layers, kv_heads, head_dim), eb = elem_bytes(dt);
	size_t per = sizeof(struct kw_kv_session) + layers * sizeof(uint32_t) + 16;

	if (!f || !eb || !max_sessions || f > SIZE_MAX / eb / (max_sessions + 1))
		return 0;
	return (max_sessions + 1) * f * eb + max_sessions * per + 3 * 64;
}

size_t kw_kv_cache_bytes(size_t max_sessions, size_t slot_tokens, size_t layers,
			 size_t kv_heads, size_t head_dim)
{
	return kw_kv_cache_bytes_as(kw_kv_dtype_default(), max_sessions, slot_tokens, layers,
				    kv_heads, head_dim);
}

int kw_kv_cache_init(struct kw_kv_cache *c, size_t max_sessions, size_t slot_tokens,
		     size_t layers, size_t kv_heads, size_t head_dim, struct kw_arena *a)
{
	return kw_kv_cache_init_as(c, kw_kv_dtype_default(), max_sessions, slot_tokens, layers,
				   kv_heads, head_dim, a);
}

int kw_kv_cache_init_as(struct kw_kv_cache *c, enum kw_kv_dtype dt, size_t max_sessions,
			size_t slot_tokens, size_t layers, size_t kv_heads, size_t head_dim,
			struct kw_arena *a)
{
	size_t f = slot_floats(slot_tokens, layers, kv_heads, head_dim), eb = elem_bytes(dt);
	void *mem;

	if (!c || !a || !kw_kv_cache_bytes_as(dt, max_sessions, slot_tokens, layers, kv_heads,
					      head_dim) ||
	    slot_tokens > UINT32_MAX || max_sessions >= UINT32_MAX)
		return -KW_EINVAL;
	memset(c, 0, sizeof(*c));
	c->layers = layers;
	c->kv_heads = kv_heads;
	c->head_dim = head_dim;
	c->max_sessions = max_sessions;
	c->slot_tokens = slot_tokens;
	c->slot_floats = f;
	c->dtype = dt;
	c->elem_bytes = eb;
	mem = kw_arena_alloc(a, (max_sessions + 1) * f * eb, 64);
	c->s = kw_arena_alloc(a, max_sessions * sizeof(*c->s), 64);
	if (!mem || !c->s)
		return -KW_ENOMEM;
	if (dt == KW_KV_F16)
		c->mem16 = mem;
	else
		c->mem = mem;
	for (size_t i = 0; i < max_sessions; i++) {
		c->s[i].len = kw_arena_alloc(a, layers * sizeof(uint32_t), 4);
		if (!c->s[i].len)
			return -KW_ENOMEM;
		c->s[i].slot = (unsigned)i;
	}
	c->spare = (unsigned)max_sessions;
	return 0;
}

int kw_kv_open(struct kw_kv_cache *c, unsigned batch, struct kw_kv_session **out)
{
	if (!c || !out || !batch || batch > c->slot_tokens)
		return -KW_EINVAL;
	for (size_t i = 0; i < c->max_sessions; i++) {
		struct kw_kv_session *s = &c->s[i];

		if (s->open)
			continue;
		s->open = 1;
		s->batch = batch;
		s->max_len = (uint32_t)(c->slot_tokens / batch);
		memset(s->len, 0, c->layers * sizeof(uint32_t));
		c->open++;
		*out = s;
		return 0;
	}
	return -KW_ENOSPC;
}

void kw_kv_close(struct kw_kv_cache *c, struct kw_kv_session *s)
{
	if (c && s && s->open) {
		s->open = 0;
		c->open--;
	}
}

int kw_kv_rewind(struct kw_kv_session *s, size_t layers, uint32_t pos)
{
	if (!s || !s->open)
		return -KW_EINVAL;
	if (pos > s->max_len)
		return -KW_ERANGE;
	/* a layer not yet run as far keeps its shorter length: it has nothing to forget */
	for (size_t l = 0; l < layers; l++)
		s->len[l] = KW_MIN(s->len[l], pos);
	return 0;
}

/* Element offset of (slot, layer) in the cache memory, K first then V. */
static size_t slot_layer(const struct kw_kv_cache *c, unsigned slot, size_t layer)
{
	return (size_t)slot * c->slot_floats + layer * 2 * c->slot_tokens * c->kv_heads *
	       c->head_dim;
}

static size_t k_off(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
		    size_t row)
{
	return slot_layer(c, s->slot, layer) + row * c->kv_heads * s->max_len * c->head_dim;
}

float *kw_kv_k(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
	       size_t row)
{
	return c->mem ? c->mem + k_off(c, s, layer, row) : NULL;
}

float *kw_kv_v(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
	       size_t row)
{
	return c->mem ? kw_kv_k(c, s, layer, row) + c->slot_tokens * c->kv_heads * c->head_dim :
			NULL;
}

uint16_t *kw_kv_k16(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
		    size_t row)
{
	return c->mem16 ? c->mem16 + k_off(c, s, layer, row) : NULL;
}

uint16_t *kw_kv_v16(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
		    size_t row)
{
	return c->mem16 ? kw_kv_k16(c, s, layer, row) + c->slot_tokens * c->kv_heads *
			  c->head_dim : NULL;
}

int kw_kv_reorder(struct kw_kv_cache *c, struct kw_kv_session *s, const uint32_t *hypo)
{
	unsigned char *base;
	size_t row_f, eb;
	unsigned old;

	if (!c || !s || !s->open || !hypo)
		return -KW_EINVAL;
	for (unsigned b = 0; b < s->batch; b++)
		if (hypo[b] >= s->batch)
			return -KW_ERANGE;
	base = c->mem ? (unsigned char *)c->mem : (unsigned char *)c->mem16;
	eb = c->elem_bytes;
	row_f = c->kv_heads * s->max_len * c->head_dim;
	for (size_t l = 0; l < c->layers; l++) {
		unsigned char *src = base + slot_layer(c, s->slot, l) * eb;
		unsigned char *dst = base + slot_layer(c, c->spare, l) * eb;
		size_t vo = c->slot_tokens * c->kv_heads * c->head_dim;

		if (!s->len[l])
			continue;
		/* only the filled positions of each head: the rest is stale either way */
		for (unsigned b = 0; b < s->batch; b++)
			for (size_t h = 0; h < c->kv_heads; h++) {
				size_t od = b * row_f + h * s->max_len * c->head_dim;
				size_t os = hypo[b] * row_f + h * s->max_len * c->head_dim;
				size_t len = s->len[l] * c->head_dim * eb;

				memcpy(dst + od * eb, src + os * eb, len);
				memcpy(dst + (vo + od) * eb, src + (vo + os) * eb, len);
			}
	}
	old = s->slot;
	s->slot = c->spare;
	c->spare = old;
	return 0;
}

uint64_t kw_kv_cache_tokens_left(const struct kw_kv_cache *c)
{
	/* in positions, whatever the element size: the free slots' elements per K row */
	uint64_t free_elems = (uint64_t)(c->max_sessions - c->open) * c->slot_floats;

	return free_elems / (c->kv_heads * c->head_dim);
}
