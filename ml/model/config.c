/*
 * LLaMA config.json as transformers writes it (configuration_llama.py, LlamaConfig, v4.40+):
 * the size fields, RoPE theta, RMSNorm epsilon and the checkpoint dtype; every other key
 * (architectures, rope_scaling, token ids, ...) is skipped with bounded nesting.
 */
#include <math.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/model.h>

#include "json.h"

static int cfg_json_err(struct kw_mj *j, int r, char *err, size_t errcap)
{
	return kw_errf(r, err, errcap, "config.json byte %zu: %s", j->why_pos,
		       j->why ? j->why : "error");
}

static const struct {
	const char *key;
	size_t off;
} cfg_ints[] = {
	{ "hidden_size", offsetof(struct kw_llama_config, hidden_size) },
	{ "intermediate_size", offsetof(struct kw_llama_config, intermediate_size) },
	{ "num_attention_heads", offsetof(struct kw_llama_config, num_attention_heads) },
	{ "num_key_value_heads", offsetof(struct kw_llama_config, num_key_value_heads) },
	{ "num_hidden_layers", offsetof(struct kw_llama_config, num_hidden_layers) },
	{ "vocab_size", offsetof(struct kw_llama_config, vocab_size) },
	{ "head_dim", offsetof(struct kw_llama_config, head_dim) },
};

int kw_llama_config_parse(struct kw_llama_config *c, const uint8_t *buf, size_t len,
			  char *err, size_t errcap)
{
	struct kw_mj j;
	char key[32];
	int first = 1, r;

	if (!c || !buf)
		return -KW_EINVAL;
	memset(c, 0, sizeof(*c));
	c->rope_theta = 10000.0;
	c->rms_norm_eps = 1e-6;
	c->torch_dtype = KW_ST_F32;
	kw_mj_init(&j, buf, len, KW_ST_JSON_DEPTH);
	if ((r = kw_mj_expect(&j, '{')) < 0)
		return cfg_json_err(&j, r, err, errcap);
	while ((r = kw_mj_next(&j, '}', &first)) == 1) {
		size_t i;

		if ((r = kw_mj_key(&j, key, sizeof(key))) < 0)
			return cfg_json_err(&j, r, err, errcap);
		if (kw_mj_null(&j))
			continue;  /* null: the default, as transformers treats it */
		for (i = 0; i < sizeof(cfg_ints) / sizeof(cfg_ints[0]); i++)
			if (!strcmp(key, cfg_ints[i].key))
				break;
		if (i < sizeof(cfg_ints) / sizeof(cfg_ints[0])) {
			uint64_t v;

			if ((r = kw_mj_u64(&j, &v)) < 0)
				return kw_errf(r, err, errcap, "config.json: %s: %s", key,
					       j.why ? j.why : "error");
			if (v == 0 || v > KW_LLAMA_MAX_DIM)
				return kw_errf(-KW_ECONFIG, err, errcap,
					       "config.json: %s = %llu is outside 1..%u", key,
					       (unsigned long long)v, KW_LLAMA_MAX_DIM);
			*(uint32_t *)(void *)((char *)c + cfg_ints[i].off) = (uint32_t)v;
		} else if (!strcmp(key, "rope_theta") || !strcmp(key, "rms_norm_eps")) {
			double v;

			if ((r = kw_mj_number(&j, &v)) < 0)
				return kw_errf(r, err, errcap, "config.json: %s: %s", key,
					       j.why ? j.why : "error");
			if (!(v > 0.0) || !isfinite(v))
				return kw_errf(-KW_ECONFIG, err, errcap,
					       "config.json: %s must be a positive number", key);
			*(key[1] == 'o' ? &c->rope_theta : &c->rms_norm_eps) = v;
		} else if (!strcmp(key, "torch_dtype") || !strcmp(key, "dtype")) {
			char dt[16];

			if ((r = kw_mj_string(&j, dt, sizeof(dt), NULL)) < 0 && r != -KW_ELIMIT)
				return cfg_json_err(&j, r, err, errcap);
			if (r == 0 && !strcmp(dt, "float32"))
				c->torch_dtype = KW_ST_F32;
			else if (r == 0 && !strcmp(dt, "float16"))
				c->torch_dtype = KW_ST_F16;
			else if (r == 0 && !strcmp(dt, "bfloat16"))
				c->torch_dtype = KW_ST_BF16;
			else
				return kw_errf(-KW_ECONFIG, err, errcap,
					       "config.json: %s is not float32, float16 or bfloat16", key);
		} else if ((r = kw_mj_skip(&j, 1)) < 0) {
			return cfg_json_err(&j, r, err, errcap);
		}
	}
	if (r < 0 || (r = kw_mj_end(&j)) < 0)
		return cfg_json_err(&j, r, err, errcap);
	for (size_t i = 0; i < 6; i++) {
		if (i == 3)
			continue;  /* num_key_value_heads has a default */
		if (*(const uint32_t *)(const void *)((const char *)c + cfg_ints[i].off) == 0)
			return kw_errf(-KW_ECONFIG, err, errcap, "config.json: %s is missing",
				       cfg_ints[i].key);
	}
	if (!c->num_key_value_heads)
		c->num_key_value_heads = c->num_attention_heads;
	if (c->num_attention_heads % c->num_key_value_heads)
		return kw_errf(-KW_ECONFIG, err, errcap,
			       "config.json: num_attention_heads %u is not a multiple of "
			       "num_key_value_heads %u", c->num_attention_heads, c->num_key_value_heads);
	if (!c->head_dim) {
		if (c->hidden_size % c->num_attention_heads)
			return kw_errf(-KW_ECONFIG, err, errcap,
				       "config.json: hidden_size %u is not a multiple of "
				       "num_attention_heads %u", c->hidden_size, c->num_attention_heads);
		c->head_dim = c->hidden_size / c->num_attention_heads;
	}
	if ((uint64_t)c->head_dim * c->num_attention_heads > KW_LLAMA_MAX_DIM)
		return kw_errf(-KW_ECONFIG, err, errcap,
			       "config.json: head_dim x num_attention_heads is over %u", KW_LLAMA_MAX_DIM);
	return 0;
}

int kw_llama_config_load(struct kw_llama_config *c, const char *path, char *err, size_t errcap)
{
	const uint8_t *m;
	size_t len;
	int r;

	if ((r = kw_model_map(path, &m, &len, err, errcap)) < 0)
		return r;
	r = kw_llama_config_parse(c, m, len, err, errcap);
	kw_model_unmap(m, len);
	return r;
}
