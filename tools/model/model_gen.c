/*
 * The checkpoint writer behind tools/model/kw_model_write and the ml/model tests (see
 * model_gen.h). Values come from splitmix64 seeded with the seed and the tensor's name, so a
 * tensor's contents do not depend on how the model is sharded. Linear weights are uniform in
 * +-1/sqrt(fan_in) (PyTorch's nn.Linear init range), norm weights 1 +- 0.1, embeddings +-1.
 * Files follow the safetensors writer (huggingface/safetensors, serialize): the header is
 * padded with spaces to a multiple of 8 and the data follows in header order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kw/err.h>
#include <kw/ml/half.h>

#include "model_gen.h"

#define GEN_MAX_TENSORS 4096

struct gen_tensor {
	char name[96];
	uint64_t rows, cols;         /* cols 0: a 1-D tensor of rows elements */
	float lo, hi;
	unsigned shard;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;  /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* Element e of a tensor's uniform stream in [lo, hi), by random access (splitmix64 is a
 * counter: the e-th draw mixes state + (e + 1) x the increment). */
static float stream_at(uint64_t s0, uint64_t e, float lo, float hi)
{
	uint64_t s = s0 + e * 0x9e3779b97f4a7c15ull;
	double u = (double)(splitmix(&s) >> 11) * (1.0 / 9007199254740992.0);

	return (float)(lo + (hi - lo) * u);
}

/* lm_peak: lm_head row v also carries lm_peak / hidden x the embedding row of token
 * (97 v + 31) mod vocab, so a hidden state near that token's embedding (the residual stream
 * keeps the current token's) gives token v a logit lm_peak x ~0.58 above the random part:
 * a next-token distribution as peaked as a trained model's, rather than the near-flat one of
 * random init, whose top-1/top-2 gaps fall below the int8 rounding error. */
static float lm_peak_term(const struct kw_model_gen *g, uint64_t e)
{
	uint64_t v = e / g->hidden, c = e % g->hidden, src = (97 * v + 31) % g->vocab;
	uint64_t s0 = g->seed ^ name_hash("model.embed_tokens.weight");

	return (float)(g->lm_peak / g->hidden) * stream_at(s0, src * g->hidden + c, -1.0f, 1.0f);
}

void kw_model_gen_tiny(struct kw_model_gen *g, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->hidden = 64;
	g->intermediate = 176;  /* not a multiple of 32: exercises the int8 K padding */
	g->heads = 4;
	g->kv_heads = 2;
	g->layers = 2;
	g->vocab = 256;
	g->shards = 2;
	g->seed = seed;
	g->dtype = KW_ST_BF16;
	g->rope_theta = 10000.0;
	g->rms_norm_eps = 1e-5;
}

void kw_model_gen_7b_block(struct kw_model_gen *g, uint64_t seed)
{
	kw_model_gen_tiny(g, seed);
	g->hidden = 4096;
	g->intermediate = 11008;
	g->heads = 32;
	g->kv_heads = 32;
	g->layers = 1;
	g->shards = 1;
}

static size_t add(struct gen_tensor *t, size_t n, const char *name, uint64_t rows,
		  uint64_t cols, float lo, float hi)
{
	snprintf(t[n].name, sizeof(t[n].name), "%s", name);
	t[n].rows = rows;
	t[n].cols = cols;
	t[n].lo = lo;
	t[n].hi = hi;
	return n + 1;
}

/* The tensors of LlamaForCausalLM in the order transformers lists them. */
static size_t list_tensors(const struct kw_model_gen *g, struct gen_tensor *t)
{
	uint64_t hd = g->hidden / g->heads, kv = (uint64_t)g->kv_heads * hd;
	float ah = 1.0f / sqrtf((float)g->hidden), ai = 1.0f / sqrtf((float)g->intermediate);
	size_t n = 0;
	char nm[96];

	n = add(t, n, "model.embed_tokens.weight", g->vocab, g->hidden, -1.0f, 1.0f);
	for (uint32_t l = 0; l < g->layers; l++) {
#define LAYER(sfx, r, c, a) \
	(snprintf(nm, sizeof(nm), "model.layers.%u." sfx, l), n = add(t, n, nm, r, c, -(a), a))
		LAYER("self_attn.q_proj.weight", g->hidden, g->hidden, ah);
		LAYER("self_attn.k_proj.weight", kv, g->hidden, ah);
		LAYER("self_attn.v_proj.weight", kv, g->hidden, ah);
		LAYER("self_attn.o_proj.weight", g->hidden, g->hidden, ah);
		LAYER("mlp.gate_proj.weight", g->intermediate, g->hidden, ah);
		LAYER("mlp.up_proj.weight", g->intermediate, g->hidden, ah);
		LAYER("mlp.down_proj.weight", g->hidden, g->intermediate, ai);
#undef LAYER
		snprintf(nm, sizeof(nm), "model.layers.%u.input_layernorm.weight", l);
		n = add(t, n, nm, g->hidden, 0, 0.9f, 1.1f);
		snprintf(nm, sizeof(nm), "model.layers.%u.post_attention_layernorm.weight", l);
		n = add(t, n, nm, g->hidden, 0, 0.9f, 1.1f);
	}
	n = add(t, n, "model.norm.weight", g->hidden, 0, 0.9f, 1.1f);
	n = add(t, n, "lm_head.weight", g->vocab, g->hidden, -ah, ah);
	return n;
}

static uint64_t nelem(const struct gen_tensor *t)
{
	return t->rows * (t->cols ? t->cols : 1);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct gen_tensor *)a)->name, ((const struct gen_tensor *)b)->name);
}

static const char *st_dtype(enum kw_st_dtype d)
{
	return d == KW_ST_F32 ? "F32" : d == KW_ST_F16 ? "F16" : "BF16";
}

static int write_shard(const struct kw_model_gen *g, struct gen_tensor *all, size_t n,
		       unsigned shard, const char *path, char *err, size_t errcap)
{
	size_t es = kw_st_dtype_size(g->dtype), cap = 1 << 16, hl = 0, used = 0;
	struct gen_tensor *t = calloc(n, sizeof(*t));
	char *hdr = malloc(cap);
	uint64_t off = 0;
	FILE *f = NULL;
	int r = 0;

	if (!t || !hdr) {
		r = kw_errf(-KW_ENOMEM, err, errcap, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (all[i].shard == shard)
			t[used++] = all[i];
	qsort(t, used, sizeof(*t), cmp_name);  /* upstream writes keys sorted */
	hl += (size_t)snprintf(hdr + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (size_t i = 0; i < used; i++) {
		uint64_t bytes = nelem(&t[i]) * es;

		if (cap - hl < 256) {
			char *nh = realloc(hdr, cap * 2);

			if (!nh) {
				r = kw_errf(-KW_ENOMEM, err, errcap, "out of memory");
				goto out;
			}
			hdr = nh;
			cap *= 2;
		}
		if (t[i].cols)
			hl += (size_t)snprintf(hdr + hl, cap - hl,
					       ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu,%llu],"
					       "\"data_offsets\":[%llu,%llu]}", t[i].name,
					       st_dtype(g->dtype), (unsigned long long)t[i].rows,
					       (unsigned long long)t[i].cols, (unsigned long long)off,
					       (unsigned long long)(off + bytes));
		else
			hl += (size_t)snprintf(hdr + hl, cap - hl,
					       ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu],"
					       "\"data_offsets\":[%llu,%llu]}", t[i].name,
					       st_dtype(g->dtype), (unsigned long long)t[i].rows,
					       (unsigned long long)off, (unsigned long long)(off + bytes));
		off += bytes;
	}
	hdr[hl++] = '}';
	while (hl % 8)
		hdr[hl++] = ' ';
	f = fopen(path, "wb");
	if (!f) {
		r = -errno;
		kw_errf(r, err, errcap, "%s: %s", path, strerror(-r));
		goto out;
	}
	{
		uint8_t le[8];

		for (int i = 0; i < 8; i++)
			le[i] = (uint8_t)((uint64_t)hl >> (8 * i));
		fwrite(le, 1, 8, f);
		fwrite(hdr, 1, hl, f);
	}
	for (size_t i = 0; i < used; i++) {
		uint64_t s = g->seed ^ name_hash(t[i].name), ne = nelem(&t[i]);
		uint8_t buf[4096];

		for (uint64_t e = 0; e < ne;) {
			size_t c = 0;

			for (; c + es <= sizeof(buf) && e < ne; e++, c += es) {
				double u = (double)(splitmix(&s) >> 11) * (1.0 / 9007199254740992.0);
				float v = (float)(t[i].lo + (t[i].hi - t[i].lo) * u);
				uint16_t h;

				if (g->lm_peak > 0 && !strcmp(t[i].name, "lm_head.weight"))
					v += lm_peak_term(g, e);

				if (g->dtype == KW_ST_F32) {
					memcpy(buf + c, &v, 4);
					continue;
				}
				h = g->dtype == KW_ST_F16 ? kw_f32_to_fp16(v) : kw_f32_to_bf16(v);
				buf[c] = (uint8_t)h;
				buf[c + 1] = (uint8_t)(h >> 8);
			}
			if (fwrite(buf, 1, c, f) != c) {
				r = kw_errf(-KW_EIO, err, errcap, "%s: write failed", path);
				goto out;
			}
		}
	}
	if (fclose(f) != 0)
		r = kw_errf(-KW_EIO, err, errcap, "%s: write failed", path);
	f = NULL;
out:
	if (f)
		fclose(f);
	free(t);
	free(hdr);
	return r;
}

static int write_text(const char *path, const char *text, char *err, size_t errcap)
{
	FILE *f = fopen(path, "w");
	int r = 0;

	if (!f) {
		r = -errno;
		return kw_errf(r, err, errcap, "%s: %s", path, strerror(-r));
	}
	if (fputs(text, f) < 0)
		r = kw_errf(-KW_EIO, err, errcap, "%s: write failed", path);
	if (fclose(f) != 0 && r == 0)
		r = kw_errf(-KW_EIO, err, errcap, "%s: write failed", path);
	return r;
}

int kw_model_gen_write(const struct kw_model_gen *g, const char *dir, char *err, size_t errcap)
{
	struct gen_tensor *t;
	char path[4096], *text = NULL;
	uint64_t total = 0, acc = 0;
	size_t n, tcap = 1 << 20, tl = 0;
	int r = 0;

	if (!g || !dir || !g->hidden || !g->intermediate || !g->heads || !g->kv_heads ||
	    !g->vocab || !g->shards || g->hidden % g->heads || g->heads % g->kv_heads ||
	    (size_t)g->layers * 9 + 3 > GEN_MAX_TENSORS)
		return kw_errf(-KW_EINVAL, err, errcap, "model shape is not a valid LLaMA shape");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		return kw_errf(r, err, errcap, "%s: %s", dir, strerror(-r));
	}
	t = calloc(GEN_MAX_TENSORS, sizeof(*t));
	text = malloc(tcap);
	if (!t || !text) {
		r = kw_errf(-KW_ENOMEM, err, errcap, "out of memory");
		goto out;
	}
	n = list_tensors(g, t);
	for (size_t i = 0; i < n; i++)
		total += nelem(&t[i]) * kw_st_dtype_size(g->dtype);
	{
		unsigned shards = g->shards < n ? g->shards : (unsigned)n;

		/* shard s takes tensors while the bytes before them are below s+1 shares */
		for (size_t i = 0; i < n; i++) {
			unsigned s = (unsigned)(acc * shards / total);

			t[i].shard = s < shards ? s : shards - 1;
			acc += nelem(&t[i]) * kw_st_dtype_size(g->dtype);
		}
		for (unsigned s = 0; s < shards; s++) {
			if (shards == 1)
				snprintf(path, sizeof(path), "%s/model.safetensors", dir);
			else
				snprintf(path, sizeof(path), "%s/model-%05u-of-%05u.safetensors", dir,
					 s + 1, shards);
			if ((r = write_shard(g, t, n, s, path, err, errcap)) < 0)
				goto out;
		}
		if (shards > 1) {
			qsort(t, n, sizeof(*t), cmp_name);
			tl += (size_t)snprintf(text + tl, tcap - tl,
					       "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
					       "  \"weight_map\": {\n", (unsigned long long)total);
			for (size_t i = 0; i < n && tcap - tl > 256; i++)
				tl += (size_t)snprintf(text + tl, tcap - tl,
						       "    \"%s\": \"model-%05u-of-%05u.safetensors\"%s\n",
						       t[i].name, t[i].shard + 1, shards,
						       i + 1 < n ? "," : "");
			snprintf(text + tl, tcap - tl, "  }\n}\n");
			snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
			if ((r = write_text(path, text, err, errcap)) < 0)
				goto out;
		}
	}
	snprintf(text, tcap,
		 "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
		 "  \"attention_bias\": false,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
		 "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %u,\n"
		 "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %u,\n"
		 "  \"max_position_embeddings\": 2048,\n  \"model_type\": \"llama\",\n"
		 "  \"num_attention_heads\": %u,\n  \"num_hidden_layers\": %u,\n"
		 "  \"num_key_value_heads\": %u,\n  \"pretraining_tp\": 1,\n"
		 "  \"rms_norm_eps\": %.17g,\n  \"rope_scaling\": null,\n  \"rope_theta\": %.17g,\n"
		 "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"%s\",\n"
		 "  \"transformers_version\": \"4.35.0\",\n  \"use_cache\": true,\n"
		 "  \"vocab_size\": %u\n}\n",
		 g->hidden, g->intermediate, g->heads, g->layers, g->kv_heads, g->rms_norm_eps,
		 g->rope_theta,
		 g->dtype == KW_ST_F32 ? "float32" : g->dtype == KW_ST_F16 ? "float16" : "bfloat16",
		 g->vocab);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	r = write_text(path, text, err, errcap);
out:
	free(t);
	free(text);
	return r;
}

int kw_model_gen_experts(const struct kw_model_gen *g, const char *dir, uint32_t rows,
			 uint32_t cols, uint32_t hid, char *err, size_t errcap)
{
	struct gen_tensor *t;
	char path[4096], nm[96];
	float a1 = 1.0f / sqrtf((float)hid), a2 = 1.0f / sqrtf(4.0f * (float)hid);
	size_t n = 0;
	int r;

	if (!g || !dir || !rows || !cols || !hid || hid > (1u << 20) ||
	    (uint64_t)rows * cols * 6 > GEN_MAX_TENSORS)
		return kw_errf(-KW_EINVAL, err, errcap,
			       "expert grid %ux%u of hidden %u: not 1..%u experts of hidden 1..2^20",
			       rows, cols, hid, GEN_MAX_TENSORS / 6);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		return kw_errf(r, err, errcap, "%s: %s", dir, strerror(-r));
	}
	t = calloc(GEN_MAX_TENSORS, sizeof(*t));
	if (!t)
		return kw_errf(-KW_ENOMEM, err, errcap, "out of memory");
	/* hivemind FeedforwardBlock: Linear(h, 4h) "ffn", Linear(4h, h) "ffn_output",
	 * LayerNorm(h) "layer_norm"; PyTorch's init range for weights and biases (fan_in) */
	for (uint32_t i = 0; i < rows; i++)
		for (uint32_t j = 0; j < cols; j++) {
#define EXP(sfx, r_, c_, lo, hi) \
	(snprintf(nm, sizeof(nm), "ffn.%u.%u." sfx, i, j), n = add(t, n, nm, r_, c_, lo, hi))
			EXP("ffn.weight", 4 * (uint64_t)hid, hid, -a1, a1);
			EXP("ffn.bias", 4 * (uint64_t)hid, 0, -a1, a1);
			EXP("ffn_output.weight", hid, 4 * (uint64_t)hid, -a2, a2);
			EXP("ffn_output.bias", hid, 0, -a2, a2);
			EXP("layer_norm.weight", hid, 0, 0.9f, 1.1f);
			EXP("layer_norm.bias", hid, 0, -0.1f, 0.1f);
#undef EXP
		}
	snprintf(path, sizeof(path), "%s/experts.safetensors", dir);
	r = write_shard(g, t, n, 0, path, err, errcap);
	free(t);
	return r;
}
