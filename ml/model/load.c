/*
 * Loading LLaMA decoder blocks into the int8 layout of <kw/ml/q8.h>. Each projection is read
 * 16 rows at a time (one packed row group) into an fp32 scratch taken once from the arena,
 * checked finite and packed with kw_q8w_pack_f32 on a one-group view of the destination,
 * so loading a 7B block needs 16 x 11008 floats of scratch rather than a whole fp32 copy.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/model.h>

#include "util.h"

#define LOAD_PROJ 7

struct proj_shape { const char *name; uint64_t n, k; size_t off; };

static void block_shapes(const struct kw_llama_config *c, struct proj_shape *p)
{
	uint64_t h = c->hidden_size, i = c->intermediate_size;
	uint64_t qd = (uint64_t)c->num_attention_heads * c->head_dim;
	uint64_t kv = (uint64_t)c->num_key_value_heads * c->head_dim;

	p[0] = (struct proj_shape){ "self_attn.q_proj.weight", qd, h, offsetof(struct kw_llama_block_q8, q) };
	p[1] = (struct proj_shape){ "self_attn.k_proj.weight", kv, h, offsetof(struct kw_llama_block_q8, k) };
	p[2] = (struct proj_shape){ "self_attn.v_proj.weight", kv, h, offsetof(struct kw_llama_block_q8, v) };
	p[3] = (struct proj_shape){ "self_attn.o_proj.weight", h, qd, offsetof(struct kw_llama_block_q8, o) };
	p[4] = (struct proj_shape){ "mlp.gate_proj.weight", i, h, offsetof(struct kw_llama_block_q8, gate) };
	p[5] = (struct proj_shape){ "mlp.up_proj.weight", i, h, offsetof(struct kw_llama_block_q8, up) };
	p[6] = (struct proj_shape){ "mlp.down_proj.weight", h, i, offsetof(struct kw_llama_block_q8, down) };
}

static int add_sz(size_t *acc, size_t v)
{
	return v == 0 || __builtin_add_overflow(*acc, v, acc);
}

size_t kw_llama_q8_bytes(const struct kw_llama_config *c, uint32_t count)
{
	struct proj_shape p[LOAD_PROJ];
	size_t per = 0, tot = 0, kmax = 0, norms;

	if (!c || !count || !c->hidden_size)
		return 0;
	block_shapes(c, p);
	for (int i = 0; i < LOAD_PROJ; i++) {
		if (add_sz(&per, kw_q8w_size((size_t)p[i].n, (size_t)p[i].k)))
			return 0;
		kmax = p[i].k > kmax ? (size_t)p[i].k : kmax;
	}
	norms = 2 * ((size_t)c->hidden_size * sizeof(float) + KW_Q8_ALIGN);
	if (add_sz(&per, norms) || __builtin_mul_overflow(per, (size_t)count, &tot) ||
	    add_sz(&tot, (size_t)count * sizeof(struct kw_llama_block_q8) + KW_Q8_ALIGN) ||
	    add_sz(&tot, KW_Q8_ROWS * kmax * sizeof(float) + KW_Q8_ALIGN))
		return 0;
	return tot;
}

/* Beyond this magnitude a 32-value block's fp16 scale (max |w| / 127) rounds to Inf, and
 * every value of the block dequantizes to Inf or NaN (as kw_lin_load_st refuses it). */
#define Q8_ABS_MAX (65504.0f * 127.0f)

/* Converts rows [r0, r0 + rows) of t to fp32 in dst (k floats each), refusing NaN/Inf and,
 * for weights to be packed as int8 (q8), values whose block scale would overflow fp16. */
static int read_rows(const struct kw_st_tensor *t, uint64_t r0, size_t rows, size_t k,
		     bool q8, float *dst, char *err, size_t errcap)
{
	int r = kw_st_read_f32(t, r0 * k, rows * k, dst);

	if (r < 0)
		return r;
	for (size_t i = 0; i < rows * k; i++)
		if (!isfinite(dst[i]) || (q8 && fabsf(dst[i]) > Q8_ABS_MAX)) {
			char nm[80];

			kw_model_printable(nm, sizeof(nm), t->name);
			if (!isfinite(dst[i]))
				return kw_errf(-KW_ECORRUPT, err, errcap,
					       "tensor '%s': non-finite value at row %llu column %zu",
					       nm, (unsigned long long)(r0 + i / k), i % k);
			return kw_errf(-KW_ECORRUPT, err, errcap,
				       "tensor '%s': value %g at row %llu column %zu is beyond int8's "
				       "fp16 block scale range (|w| <= 65504 x 127)", nm,
				       (double)dst[i], (unsigned long long)(r0 + i / k), i % k);
		}
	return 0;
}

static const struct kw_st_tensor *need(const struct kw_ckpt *ck, const char *name, uint64_t n,
				       uint64_t k, int *r, char *err, size_t errcap)
{
	const struct kw_st_tensor *t = kw_ckpt_find(ck, name);
	char nm[80];

	kw_model_printable(nm, sizeof(nm), name);
	if (!t) {
		*r = kw_errf(-KW_ENOENT, err, errcap, "checkpoint has no tensor '%s'", nm);
		return NULL;
	}
	if ((k && (t->ndim != 2 || t->shape[0] != n || t->shape[1] != k)) ||
	    (!k && (t->ndim != 1 || t->shape[0] != n))) {
		if (k)
			*r = kw_errf(-KW_ECORRUPT, err, errcap,
				     "tensor '%s': shape is not [%llu, %llu] as config.json implies",
				     nm, (unsigned long long)n, (unsigned long long)k);
		else
			*r = kw_errf(-KW_ECORRUPT, err, errcap,
				     "tensor '%s': shape is not [%llu] as config.json implies",
				     nm, (unsigned long long)n);
		return NULL;
	}
	return t;
}

int kw_llama_q8_load(struct kw_llama_q8 *m, const struct kw_ckpt *ck, uint32_t first,
		     uint32_t count, struct kw_arena *a, kw_model_progress_fn progress,
		     void *ctx, char *err, size_t errcap)
{
	struct proj_shape p[LOAD_PROJ];
	size_t need_bytes, kmax = 0, ntens, done = 0;
	uint64_t total = 0, bytes = 0;
	float *scratch;
	char name[160];
	int r = 0;

	if (!m || !ck || !a)
		return -KW_EINVAL;
	memset(m, 0, sizeof(*m));
	if (count == 0 || first >= ck->cfg.num_hidden_layers ||
	    count > ck->cfg.num_hidden_layers - first)
		return kw_errf(-KW_ERANGE, err, errcap,
			       "blocks %u..%u are outside the model's %u blocks", first,
			       first + count - 1, ck->cfg.num_hidden_layers);
	need_bytes = kw_llama_q8_bytes(&ck->cfg, count);
	/* the board's budget first: a range the board cannot hold is refused however large the
	 * arena the caller happens to have (kw_llama_fit adds the KV cache and scratch) */
	if (need_bytes && (uint64_t)need_bytes > ((uint64_t)CONFIG_KW_ML_MODEL_BUDGET_MIB << 20))
		return kw_errf(-KW_ENOSPC, err, errcap,
			       "blocks %u..%u need %.1f MiB of int8 weights, more than this build's "
			       "budget of %u MiB for served blocks (CONFIG_KW_ML_MODEL_BUDGET_MIB)",
			       first, first + count - 1, need_bytes / 1048576.0,
			       (unsigned)CONFIG_KW_ML_MODEL_BUDGET_MIB);
	if (need_bytes == 0 || kw_arena_free_bytes(a) < need_bytes)
		return kw_errf(-KW_ENOSPC, err, errcap,
			       "blocks %u..%u need %zu bytes (%.1f MiB) of weight memory in int8, "
			       "%zu bytes (%.1f MiB) are free", first, first + count - 1, need_bytes,
			       need_bytes / 1048576.0, kw_arena_free_bytes(a),
			       kw_arena_free_bytes(a) / 1048576.0);
	block_shapes(&ck->cfg, p);
	for (int i = 0; i < LOAD_PROJ; i++)
		kmax = p[i].k > kmax ? (size_t)p[i].k : kmax;
	ntens = (size_t)count * (LOAD_PROJ + 2);
	/* check every tensor before quantizing anything, and count the bytes for progress */
	for (uint32_t b = first; b < first + count; b++) {
		for (int i = 0; i < LOAD_PROJ + 2; i++) {
			const struct kw_st_tensor *t;

			if (i < LOAD_PROJ)
				snprintf(name, sizeof(name), "model.layers.%u.%s", b, p[i].name);
			else
				snprintf(name, sizeof(name), "model.layers.%u.%s", b,
					 i == LOAD_PROJ ? "input_layernorm.weight" :
					 "post_attention_layernorm.weight");
			t = need(ck, name, i < LOAD_PROJ ? p[i].n : ck->cfg.hidden_size,
				 i < LOAD_PROJ ? p[i].k : 0, &r, err, errcap);
			if (!t)
				return r;
			total += t->end - t->begin;
		}
	}
	m->blk = kw_arena_alloc(a, count * sizeof(*m->blk), KW_Q8_ALIGN);
	scratch = kw_arena_alloc(a, KW_Q8_ROWS * kmax * sizeof(float), KW_Q8_ALIGN);
	if (!m->blk || !scratch)
		return kw_errf(-KW_ENOMEM, err, errcap, "weight arena exhausted");
	for (uint32_t bi = 0; bi < count; bi++) {
		struct kw_llama_block_q8 *blk = &m->blk[bi];
		uint32_t b = first + bi;

		for (int i = 0; i < LOAD_PROJ + 2; i++) {
			const struct kw_st_tensor *t;

			if (i < LOAD_PROJ) {
				struct kw_q8w *w = (struct kw_q8w *)(void *)((char *)blk + p[i].off);
				size_t sz = kw_q8w_size((size_t)p[i].n, (size_t)p[i].k);
				void *mem = kw_arena_alloc(a, sz, KW_Q8_ALIGN);

				snprintf(name, sizeof(name), "model.layers.%u.%s", b, p[i].name);
				t = kw_ckpt_find(ck, name);
				if (!mem)
					return kw_errf(-KW_ENOMEM, err, errcap, "weight arena exhausted");
				if ((r = kw_q8w_init(w, (size_t)p[i].n, (size_t)p[i].k, mem, sz)) < 0)
					return r;
				for (size_t g = 0; g < w->ngroups; g++) {
					size_t r0 = g * KW_Q8_ROWS;
					size_t rows = KW_MIN_SZ(KW_Q8_ROWS, w->n - r0);
					struct kw_q8w view = *w;

					if ((r = read_rows(t, r0, rows, w->k, true, scratch, err,
							    errcap)) < 0)
						return r;
					/* one row group is a contiguous run of records: pack it as a
					 * matrix of its own */
					view.n = rows;
					view.ngroups = 1;
					view.q = w->q + kw_q8w_qoff(w->nb, g, 0);
					view.d = (uint16_t *)(void *)view.q;
					if ((r = kw_q8w_pack_f32(&view, scratch, w->k)) < 0)
						return r;
				}
			} else {
				float **dst = i == LOAD_PROJ ? &blk->input_norm : &blk->post_norm;

				snprintf(name, sizeof(name), "model.layers.%u.%s", b,
					 i == LOAD_PROJ ? "input_layernorm.weight" :
					 "post_attention_layernorm.weight");
				t = kw_ckpt_find(ck, name);
				*dst = kw_arena_alloc(a, ck->cfg.hidden_size * sizeof(float), KW_Q8_ALIGN);
				if (!*dst)
					return kw_errf(-KW_ENOMEM, err, errcap, "weight arena exhausted");
				if ((r = read_rows(t, 0, 1, ck->cfg.hidden_size, false, *dst, err,
						    errcap)) < 0)
					return r;
			}
			bytes += t->end - t->begin;
			if (progress)
				progress(ctx, ++done, ntens, bytes, total);
		}
	}
	m->cfg = ck->cfg;
	m->first = first;
	m->count = count;
	return 0;
}
