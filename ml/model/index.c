/*
 * The sharded checkpoint index, model.safetensors.index.json, as transformers'
 * save_pretrained writes it (modeling_utils.py, SAFE_WEIGHTS_INDEX_NAME):
 * {"metadata": {"total_size": N}, "weight_map": {"tensor": "model-00001-of-00002.safetensors"}}.
 * Read twice like a safetensors header (count, then fill) so the tables are exactly sized.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/ml/model.h>

#include "json.h"
#include "util.h"

struct ix_parse {
	struct kw_mj j;
	struct kw_st_index *ix;
	struct kw_arena *a;
	char *err;
	size_t errcap;
	int fill;
	size_t n, n_shards;
	char name[CONFIG_KW_ML_MODEL_MAX_NAME + 1];
	char file[CONFIG_KW_ML_MODEL_MAX_NAME + 1];
};

static int ix_json_err(struct ix_parse *s, int r)
{
	if (r == -KW_ELIMIT && s->j.why && strstr(s->j.why, "string longer"))
		return kw_errf(r, s->err, s->errcap,
			       "index byte %zu: name longer than %d bytes (CONFIG_KW_ML_MODEL_MAX_NAME)",
			       s->j.why_pos, CONFIG_KW_ML_MODEL_MAX_NAME);
	return kw_errf(r, s->err, s->errcap, "index byte %zu: %s", s->j.why_pos,
		       s->j.why ? s->j.why : "error");
}

static char *ix_strdup(struct ix_parse *s, const char *str)
{
	size_t n = strlen(str) + 1;
	char *p = kw_arena_alloc(s->a, n, 1);

	if (p)
		memcpy(p, str, n);
	return p;
}

static int ix_shard(struct ix_parse *s, unsigned *idx)
{
	/* the shards seen so far: in the fill pass they are in ix->shard, in the count pass
	 * the count is an upper bound only, so dedup happens in the fill pass */
	if (!strcmp(s->file, ".") || !strcmp(s->file, "..") || !s->file[0] ||
	    strchr(s->file, '/') || strchr(s->file, '\\')) {
		char nm[80];

		kw_model_printable(nm, sizeof(nm), s->file);
		return kw_errf(-KW_EBADMSG, s->err, s->errcap,
			       "index: shard '%s' is not a plain file name", nm);
	}
	if (!s->fill) {
		*idx = 0;
		return 0;
	}
	for (size_t i = 0; i < s->n_shards; i++)
		if (!strcmp(s->ix->shard[i], s->file)) {
			*idx = (unsigned)i;
			return 0;
		}
	if (s->n_shards == CONFIG_KW_ML_MODEL_MAX_SHARDS)
		return kw_errf(-KW_ELIMIT, s->err, s->errcap,
			       "index names more than %d shard files (CONFIG_KW_ML_MODEL_MAX_SHARDS)",
			       CONFIG_KW_ML_MODEL_MAX_SHARDS);
	if (!(s->ix->shard[s->n_shards] = ix_strdup(s, s->file)))
		return kw_errf(-KW_ENOMEM, s->err, s->errcap, "index: arena full at a shard name");
	*idx = (unsigned)s->n_shards++;
	return 0;
}

static int ix_weight_map(struct ix_parse *s)
{
	int first = 1, r;

	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return ix_json_err(s, r);
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		unsigned idx = 0;

		if ((r = kw_mj_string(&s->j, s->name, sizeof(s->name), NULL)) < 0 ||
		    (r = kw_mj_expect(&s->j, ':')) < 0 ||
		    (r = kw_mj_string(&s->j, s->file, sizeof(s->file), NULL)) < 0)
			return ix_json_err(s, r);
		if (s->n == CONFIG_KW_ML_MODEL_MAX_TENSORS)
			return kw_errf(-KW_ELIMIT, s->err, s->errcap,
				       "index names more than %d tensors (CONFIG_KW_ML_MODEL_MAX_TENSORS)",
				       CONFIG_KW_ML_MODEL_MAX_TENSORS);
		if ((r = ix_shard(s, &idx)) < 0)
			return r;
		if (s->fill) {
			struct kw_st_index_entry *e = &s->ix->e[s->n];

			if (!(e->name = ix_strdup(s, s->name)))
				return kw_errf(-KW_ENOMEM, s->err, s->errcap,
					       "index: arena full at a tensor name");
			e->shard = idx;
		}
		s->n++;
	}
	return r < 0 ? ix_json_err(s, r) : 0;
}

static int ix_metadata(struct ix_parse *s)
{
	int first = 1, r;
	char key[16];

	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return ix_json_err(s, r);
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		if ((r = kw_mj_key(&s->j, key, sizeof(key))) < 0)
			return ix_json_err(s, r);
		if (!strcmp(key, "total_size") && kw_mj_peek(&s->j) != 'n') {
			if ((r = kw_mj_u64(&s->j, &s->ix->total_size)) < 0)
				return ix_json_err(s, r);
		} else if ((r = kw_mj_skip(&s->j, 2)) < 0) {
			return ix_json_err(s, r);
		}
	}
	return r < 0 ? ix_json_err(s, r) : 0;
}

static int ix_pass(struct ix_parse *s, const uint8_t *buf, size_t len)
{
	int first = 1, r, have_map = 0;
	char key[16];

	s->n = 0;
	kw_mj_init(&s->j, buf, len, KW_ST_JSON_DEPTH);
	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return ix_json_err(s, r);
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		if ((r = kw_mj_key(&s->j, key, sizeof(key))) < 0)
			return ix_json_err(s, r);
		if (!strcmp(key, "weight_map")) {
			if (have_map++)
				return kw_errf(-KW_EBADMSG, s->err, s->errcap,
					       "index: weight_map given twice");
			r = ix_weight_map(s);
		} else if (!strcmp(key, "metadata") && kw_mj_peek(&s->j) == '{') {
			r = ix_metadata(s);
		} else {
			r = kw_mj_skip(&s->j, 1);
			if (r < 0)
				r = ix_json_err(s, r);
		}
		if (r < 0)
			return r;
	}
	if (r < 0 || (r = kw_mj_end(&s->j)) < 0)
		return ix_json_err(s, r);
	if (!have_map)
		return kw_errf(-KW_EBADMSG, s->err, s->errcap, "index: no weight_map");
	return 0;
}

static void sort_entries(struct kw_st_index_entry *e, size_t n)
{
	static const size_t gaps[] = { 8929, 3905, 1750, 701, 301, 132, 57, 23, 10, 4, 1 };

	for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++)
		for (size_t i = gaps[g]; i < n; i++) {
			struct kw_st_index_entry tmp = e[i];
			size_t k = i;

			for (; k >= gaps[g] && strcmp(e[k - gaps[g]].name, tmp.name) > 0; k -= gaps[g])
				e[k] = e[k - gaps[g]];
			e[k] = tmp;
		}
}

int kw_st_index_parse(struct kw_st_index *ix, const uint8_t *buf, size_t len,
		      struct kw_arena *a, char *err, size_t errcap)
{
	struct ix_parse s;
	int r;

	if (!ix || !buf || !a)
		return -KW_EINVAL;
	memset(ix, 0, sizeof(*ix));
	memset(&s, 0, sizeof(s));
	s.ix = ix;
	s.a = a;
	s.err = err;
	s.errcap = errcap;
	if ((r = ix_pass(&s, buf, len)) < 0)
		goto fail;
	ix->e = kw_arena_alloc(a, (s.n ? s.n : 1) * sizeof(*ix->e), _Alignof(struct kw_st_index_entry));
	ix->shard = kw_arena_alloc(a, (KW_MIN_SZ(s.n, CONFIG_KW_ML_MODEL_MAX_SHARDS) + 1) *
				   sizeof(char *), _Alignof(char *));
	if (!ix->e || !ix->shard) {
		r = kw_errf(-KW_ENOMEM, err, errcap, "index: arena too small for %zu entries", s.n);
		goto fail;
	}
	s.fill = 1;
	ix->total_size = 0;
	if ((r = ix_pass(&s, buf, len)) < 0)
		goto fail;
	ix->n = s.n;
	ix->n_shards = s.n_shards;
	sort_entries(ix->e, ix->n);
	for (size_t i = 1; i < ix->n; i++)
		if (!strcmp(ix->e[i - 1].name, ix->e[i].name)) {
			char nm[80];

			kw_model_printable(nm, sizeof(nm), ix->e[i].name);
			r = kw_errf(-KW_EBADMSG, err, errcap, "index: tensor '%s' mapped twice", nm);
			goto fail;
		}
	return 0;
fail:
	memset(ix, 0, sizeof(*ix));
	return r;
}

const char *kw_st_index_shard(const struct kw_st_index *ix, const char *name)
{
	size_t lo = 0, hi = ix ? ix->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ix->e[mid].name, name);

		if (c == 0)
			return ix->shard[ix->e[mid].shard];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
