/*
 * A checkpoint directory (see <kw/ml/model.h>): config.json, then the index and its shards
 * (or the single model.safetensors). Layout per transformers' modeling_utils.py
 * (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME).
 */
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/model.h>

#include "util.h"

static int path_of(char *out, size_t cap, const char *dir, const char *file, char *err,
		   size_t errcap)
{
	if ((size_t)snprintf(out, cap, "%s/%s", dir, file) >= cap)
		return kw_errf(-KW_ERANGE, err, errcap, "%s/%s: path too long", dir, file);
	return 0;
}

int kw_ckpt_open(struct kw_ckpt *c, const char *dir, struct kw_arena *a, char *err, size_t errcap)
{
	char path[4096];
	const uint8_t *m;
	size_t len;
	int r;

	if (!c || !dir || !a)
		return -KW_EINVAL;
	memset(c, 0, sizeof(*c));
	if ((r = path_of(path, sizeof(path), dir, "config.json", err, errcap)) < 0 ||
	    (r = kw_llama_config_load(&c->cfg, path, err, errcap)) < 0)
		return r;
	if ((r = path_of(path, sizeof(path), dir, "model.safetensors.index.json", err, errcap)) < 0)
		return r;
	r = kw_model_map(path, &m, &len, NULL, 0);
	if (r == -KW_ENOENT) {
		/* a single-file checkpoint */
		c->shard = kw_arena_alloc(a, sizeof(*c->shard), _Alignof(struct kw_st_file));
		if (!c->shard)
			return kw_errf(-KW_ENOMEM, err, errcap, "checkpoint: arena full");
		if ((r = path_of(path, sizeof(path), dir, "model.safetensors", err, errcap)) < 0 ||
		    (r = kw_st_open(&c->shard[0], path, a, err, errcap)) < 0)
			return r;
		c->n_shards = 1;
		return 0;
	}
	if (r < 0)
		return kw_model_map(path, &m, &len, err, errcap);  /* again, for the reason */
	r = kw_st_index_parse(&c->ix, m, len, a, err, errcap);
	kw_model_unmap(m, len);
	if (r < 0) {
		char why[200];

		snprintf(why, sizeof(why), "%s", err ? err : "");
		return kw_errf(r, err, errcap, "%s: %s", path, why);
	}
	c->shard = kw_arena_alloc(a, (c->ix.n_shards ? c->ix.n_shards : 1) * sizeof(*c->shard),
				  _Alignof(struct kw_st_file));
	if (!c->shard)
		return kw_errf(-KW_ENOMEM, err, errcap, "checkpoint: arena full");
	for (size_t i = 0; i < c->ix.n_shards; i++) {
		if ((r = path_of(path, sizeof(path), dir, c->ix.shard[i], err, errcap)) < 0 ||
		    (r = kw_st_open(&c->shard[i], path, a, err, errcap)) < 0)
			goto fail;
		c->n_shards = i + 1;
	}
	for (size_t i = 0; i < c->ix.n; i++)
		if (!kw_st_find(&c->shard[c->ix.e[i].shard], c->ix.e[i].name)) {
			char nm[80];

			kw_model_printable(nm, sizeof(nm), c->ix.e[i].name);
			r = kw_errf(-KW_ECORRUPT, err, errcap,
				    "checkpoint: tensor '%s' is not in %s as the index says", nm,
				    c->ix.shard[c->ix.e[i].shard]);
			goto fail;
		}
	return 0;
fail:
	kw_ckpt_close(c);
	return r;
}

void kw_ckpt_close(struct kw_ckpt *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_shards; i++)
		kw_st_close(&c->shard[i]);
	memset(c, 0, sizeof(*c));
}

const struct kw_st_tensor *kw_ckpt_find(const struct kw_ckpt *c, const char *name)
{
	if (!c || !c->n_shards)
		return NULL;
	if (c->ix.n) {
		for (size_t i = 0; i < c->ix.n_shards; i++)
			if (kw_st_index_shard(&c->ix, name) == c->ix.shard[i])
				return kw_st_find(&c->shard[i], name);
		return NULL;
	}
	return kw_st_find(&c->shard[0], name);
}
