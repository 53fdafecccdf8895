/*
 * Safetensors reader (format: huggingface/safetensors README.md and safetensors/src/
 * tensor.rs, v0.4): an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"k": "v"}}, then the data region. Offsets are relative to the data region.
 * The checks follow upstream's validate(): each tensor's byte length equals dtype size x
 * product of its shape, and the ranges sorted by begin tile the data region exactly, from 0
 * to its end, without holes or overlap. The header is read twice (count, then fill) so the
 * table taken from the arena is exactly as long as the file needs.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>
#include <kw/ml/model.h>

#include "json.h"
#include "util.h"

size_t kw_st_dtype_size(enum kw_st_dtype d)
{
	return d == KW_ST_F32 ? 4 : 2;
}

const char *kw_st_dtype_name(enum kw_st_dtype d)
{
	switch (d) {
	case KW_ST_F32: return "F32";
	case KW_ST_F16: return "F16";
	case KW_ST_BF16: return "BF16";
	}
	return "?";
}

/* Every dtype upstream's Dtype enum names; all but three are refused by name. */
static const char *const st_other_dtypes[] = {
	"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
	"I16", "U16", "I32", "U32", "F64", "I64", "U64", "C64",
};

struct st_parse {
	struct kw_mj j;
	struct kw_st_file *f;
	struct kw_arena *a;
	char *err;
	size_t errcap;
	int fill;           /* second pass: store into f->t */
	size_t n;           /* tensors seen in this pass */
	char name[CONFIG_KW_ML_MODEL_MAX_NAME + 1];
};

static int json_err(struct st_parse *s, int r, const char *what)
{
	return kw_errf(r, s->err, s->errcap, "safetensors header byte %zu: %s%s%s%s",
		       s->j.why_pos, s->j.why ? s->j.why : "error", what ? " (" : "",
		       what ? what : "", what ? ")" : "");
}

static int tensor_err(struct st_parse *s, int r, const char *fmt, unsigned long long a,
		      unsigned long long b, unsigned long long c)
{
	char nm[80], msg[160];

	kw_model_printable(nm, sizeof(nm), s->name);
	snprintf(msg, sizeof(msg), fmt, a, b, c);
	return kw_errf(r, s->err, s->errcap, "safetensors tensor '%s': %s", nm, msg);
}

static int parse_dtype(struct st_parse *s, enum kw_st_dtype *d)
{
	char dt[16];
	int r;

	r = kw_mj_string(&s->j, dt, sizeof(dt), NULL);
	if (r == -KW_ELIMIT)
		return tensor_err(s, -KW_ENOTSUP, "unknown dtype (longer than 15 bytes)", 0, 0, 0);
	if (r < 0)
		return json_err(s, r, "dtype");
	if (!strcmp(dt, "F32"))
		*d = KW_ST_F32;
	else if (!strcmp(dt, "F16"))
		*d = KW_ST_F16;
	else if (!strcmp(dt, "BF16"))
		*d = KW_ST_BF16;
	else {
		char p[20], nm[80];

		kw_model_printable(p, sizeof(p), dt);
		kw_model_printable(nm, sizeof(nm), s->name);
		for (size_t i = 0; i < sizeof(st_other_dtypes) / sizeof(st_other_dtypes[0]); i++)
			if (!strcmp(dt, st_other_dtypes[i]))
				return kw_errf(-KW_ENOTSUP, s->err, s->errcap,
					       "safetensors tensor '%s': dtype %s is not supported "
					       "(F32, F16 and BF16 are)", nm, p);
		return kw_errf(-KW_ENOTSUP, s->err, s->errcap,
			       "safetensors tensor '%s': unknown dtype '%s'", nm, p);
	}
	return 0;
}

static int parse_tensor(struct st_parse *s, struct kw_st_tensor *t)
{
	int first = 1, r, have_dt = 0, have_sh = 0, have_off = 0;
	char key[16];

	memset(t, 0, sizeof(*t));
	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return json_err(s, r, "tensor entry must be an object");
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		if ((r = kw_mj_key(&s->j, key, sizeof(key))) < 0)
			return json_err(s, r, NULL);
		if (!strcmp(key, "dtype")) {
			if (have_dt++)
				return tensor_err(s, -KW_EBADMSG, "dtype given twice", 0, 0, 0);
			if ((r = parse_dtype(s, &t->dtype)) < 0)
				return r;
		} else if (!strcmp(key, "shape")) {
			int f2 = 1;

			if (have_sh++)
				return tensor_err(s, -KW_EBADMSG, "shape given twice", 0, 0, 0);
			if ((r = kw_mj_expect(&s->j, '[')) < 0)
				return json_err(s, r, "shape");
			t->nelem = 1;
			while ((r = kw_mj_next(&s->j, ']', &f2)) == 1) {
				uint64_t d;

				if (t->ndim == KW_ST_MAX_DIMS)
					return tensor_err(s, -KW_ELIMIT, "more than %llu dimensions",
							  KW_ST_MAX_DIMS, 0, 0);
				if ((r = kw_mj_u64(&s->j, &d)) < 0)
					return json_err(s, r, "shape");
				t->shape[t->ndim++] = d;
				if (__builtin_mul_overflow(t->nelem, d, &t->nelem))
					return tensor_err(s, -KW_ECORRUPT,
							  "shape has more than 2^64 elements", 0, 0, 0);
			}
			if (r < 0)
				return json_err(s, r, "shape");
		} else if (!strcmp(key, "data_offsets")) {
			if (have_off++)
				return tensor_err(s, -KW_EBADMSG, "data_offsets given twice", 0, 0, 0);
			if ((r = kw_mj_expect(&s->j, '[')) < 0 ||
			    (r = kw_mj_u64(&s->j, &t->begin)) < 0 ||
			    (r = kw_mj_expect(&s->j, ',')) < 0 ||
			    (r = kw_mj_u64(&s->j, &t->end)) < 0 ||
			    (r = kw_mj_expect(&s->j, ']')) < 0)
				return json_err(s, r, "data_offsets must be [begin, end]");
		} else {
			return tensor_err(s, -KW_EBADMSG,
					  "unknown key in tensor entry (dtype, shape, data_offsets only)",
					  0, 0, 0);
		}
	}
	if (r < 0)
		return json_err(s, r, NULL);
	if (!have_dt || !have_sh || !have_off)
		return tensor_err(s, -KW_EBADMSG, !have_dt ? "missing dtype" :
				  !have_sh ? "missing shape" : "missing data_offsets", 0, 0, 0);
	{
		uint64_t bytes;

		if (t->begin > t->end)
			return tensor_err(s, -KW_ECORRUPT, "data_offsets [%llu, %llu] run backwards",
					  t->begin, t->end, 0);
		if (t->end > s->f->data_len)
			return tensor_err(s, -KW_ECORRUPT,
					  "data_offsets end %llu is beyond the data region of %llu bytes",
					  t->end, s->f->data_len, 0);
		if (__builtin_mul_overflow(t->nelem, (uint64_t)kw_st_dtype_size(t->dtype), &bytes) ||
		    bytes != t->end - t->begin)
			return tensor_err(s, -KW_ECORRUPT,
					  "data_offsets hold %llu bytes but dtype x shape needs %llu "
					  "(%llu elements)", t->end - t->begin,
					  (unsigned long long)t->nelem * kw_st_dtype_size(t->dtype),
					  t->nelem);
	}
	t->data = s->f->data + t->begin;
	return 0;
}

static int parse_metadata(struct st_parse *s)
{
	int first = 1, r;

	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return json_err(s, r, "__metadata__ must be an object");
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		if ((r = kw_mj_skip(&s->j, KW_ST_JSON_DEPTH)) < 0 ||
		    (r = kw_mj_expect(&s->j, ':')) < 0)
			return json_err(s, r, "__metadata__");
		if (kw_mj_peek(&s->j) != '"')
			return kw_errf(-KW_EBADMSG, s->err, s->errcap,
				       "safetensors __metadata__: values must be strings");
		if ((r = kw_mj_skip(&s->j, KW_ST_JSON_DEPTH)) < 0)
			return json_err(s, r, "__metadata__");
	}
	return r < 0 ? json_err(s, r, "__metadata__") : 0;
}

static int parse_header(struct st_parse *s)
{
	int first = 1, r, have_meta = 0;

	s->n = 0;
	s->name[0] = '\0';
	kw_mj_init(&s->j, s->f->map + 8, s->f->header_len, KW_ST_JSON_DEPTH);
	if (s->f->header_len == 0 || s->f->map[8] != '{')
		return kw_errf(-KW_EBADMSG, s->err, s->errcap,
			       "safetensors header does not start with '{'");
	if ((r = kw_mj_expect(&s->j, '{')) < 0)
		return json_err(s, r, NULL);
	while ((r = kw_mj_next(&s->j, '}', &first)) == 1) {
		size_t nl;

		r = kw_mj_string(&s->j, s->name, sizeof(s->name), &nl);
		if (r == -KW_ELIMIT)
			return kw_errf(r, s->err, s->errcap,
				       "safetensors header byte %zu: tensor name longer than %d bytes",
				       s->j.why_pos, CONFIG_KW_ML_MODEL_MAX_NAME);
		if (r < 0 || (r = kw_mj_expect(&s->j, ':')) < 0)
			return json_err(s, r, "tensor name");
		if (!strcmp(s->name, "__metadata__")) {
			if (have_meta++)
				return kw_errf(-KW_EBADMSG, s->err, s->errcap,
					       "safetensors __metadata__ given twice");
			if ((r = parse_metadata(s)) < 0)
				return r;
			continue;
		}
		if (s->n == CONFIG_KW_ML_MODEL_MAX_TENSORS)
			return kw_errf(-KW_ELIMIT, s->err, s->errcap,
				       "safetensors header names more than %d tensors "
				       "(CONFIG_KW_ML_MODEL_MAX_TENSORS)", CONFIG_KW_ML_MODEL_MAX_TENSORS);
		if (s->fill) {
			struct kw_st_tensor *t = &s->f->t[s->n];
			char *nm;

			if ((r = parse_tensor(s, t)) < 0)
				return r;
			nm = kw_arena_alloc(s->a, nl + 1, 1);
			if (!nm)
				return kw_errf(-KW_ENOMEM, s->err, s->errcap,
					       "safetensors: arena full at tensor %zu's name", s->n);
			memcpy(nm, s->name, nl + 1);
			t->name = nm;
		} else {
			struct kw_st_tensor tmp;

			if ((r = parse_tensor(s, &tmp)) < 0)
				return r;
		}
		s->n++;
	}
	if (r < 0 || (r = kw_mj_end(&s->j)) < 0)
		return json_err(s, r, NULL);
	return 0;
}

static int by_begin(const struct kw_st_tensor *a, const struct kw_st_tensor *b)
{
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	return a->end < b->end ? -1 : a->end > b->end;
}

static int by_name(const struct kw_st_tensor *a, const struct kw_st_tensor *b)
{
	return strcmp(a->name, b->name);
}

/* Shell sort (Ciura gaps): in place, no allocation, O(n^1.3) for the few thousand entries. */
static void sort_tensors(struct kw_st_tensor *t, size_t n,
			 int (*cmp)(const struct kw_st_tensor *, const struct kw_st_tensor *))
{
	static const size_t gaps[] = { 8929, 3905, 1750, 701, 301, 132, 57, 23, 10, 4, 1 };

	for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
		size_t gap = gaps[g];

		for (size_t i = gap; i < n; i++) {
			struct kw_st_tensor tmp = t[i];
			size_t k = i;

			for (; k >= gap && cmp(&t[k - gap], &tmp) > 0; k -= gap)
				t[k] = t[k - gap];
			t[k] = tmp;
		}
	}
}

int kw_st_parse(struct kw_st_file *f, const uint8_t *buf, size_t len, struct kw_arena *a,
		char *err, size_t errcap)
{
	struct st_parse s;
	uint64_t hl = 0, pos = 0;
	int r;

	if (!f || !buf || !a)
		return -KW_EINVAL;
	memset(f, 0, sizeof(*f));
	if (len < 8)
		return kw_errf(-KW_EBADMSG, err, errcap,
			       "safetensors file of %zu bytes is shorter than its 8-byte header length",
			       len);
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | buf[i];
	if (hl > (uint64_t)CONFIG_KW_ML_MODEL_MAX_HEADER_KIB * 1024)
		return kw_errf(-KW_ELIMIT, err, errcap,
			       "safetensors header of %llu bytes is over the %d KiB limit "
			       "(CONFIG_KW_ML_MODEL_MAX_HEADER_KIB)", (unsigned long long)hl,
			       CONFIG_KW_ML_MODEL_MAX_HEADER_KIB);
	if (hl > len - 8)
		return kw_errf(-KW_ECORRUPT, err, errcap,
			       "safetensors header length %llu is beyond the file of %zu bytes",
			       (unsigned long long)hl, len);
	f->map = buf;
	f->map_len = len;
	f->header_len = hl;
	f->data = buf + 8 + hl;
	f->data_len = len - 8 - hl;

	memset(&s, 0, sizeof(s));
	s.f = f;
	s.a = a;
	s.err = err;
	s.errcap = errcap;
	s.fill = 0;
	if ((r = parse_header(&s)) < 0)
		goto fail;
	f->t = kw_arena_alloc(a, (s.n ? s.n : 1) * sizeof(*f->t), _Alignof(struct kw_st_tensor));
	if (!f->t) {
		r = kw_errf(-KW_ENOMEM, err, errcap,
			    "safetensors: arena too small for %zu tensor entries", s.n);
		goto fail;
	}
	s.fill = 1;
	if ((r = parse_header(&s)) < 0)
		goto fail;
	f->n = s.n;

	sort_tensors(f->t, f->n, by_begin);
	for (size_t i = 0; i < f->n; i++) {
		const struct kw_st_tensor *t = &f->t[i];
		char nm[80];

		kw_model_printable(nm, sizeof(nm), t->name);
		if (t->begin != pos) {
			r = kw_errf(-KW_ECORRUPT, err, errcap,
				    "safetensors tensor '%s': data_offsets begin %llu %s (expected %llu)",
				    nm, (unsigned long long)t->begin,
				    t->begin < pos ? "overlaps the previous tensor" :
				    "leaves a hole after the previous tensor", (unsigned long long)pos);
			goto fail;
		}
		pos = t->end;
	}
	if (pos != f->data_len) {
		r = kw_errf(-KW_ECORRUPT, err, errcap,
			    "safetensors: tensors cover %llu bytes of a %llu-byte data region",
			    (unsigned long long)pos, (unsigned long long)f->data_len);
		goto fail;
	}
	sort_tensors(f->t, f->n, by_name);
	for (size_t i = 1; i < f->n; i++)
		if (!strcmp(f->t[i - 1].name, f->t[i].name)) {
			char nm[80];

			kw_model_printable(nm, sizeof(nm), f->t[i].name);
			r = kw_errf(-KW_EBADMSG, err, errcap,
				    "safetensors tensor '%s': named twice in the header", nm);
			goto fail;
		}
	return 0;
fail:
	memset(f, 0, sizeof(*f));
	return r;
}

int kw_st_open(struct kw_st_file *f, const char *path, struct kw_arena *a,
	       char *err, size_t errcap)
{
	const uint8_t *m;
	size_t len;
	int r;

	if (!f || !path || !a)
		return -KW_EINVAL;
	memset(f, 0, sizeof(*f));
	if ((r = kw_model_map(path, &m, &len, err, errcap)) < 0)
		return r;
	if ((r = kw_st_parse(f, m, len, a, err, errcap)) < 0) {
		/* the reason names the tensor; say which file it is in too */
		char why[200];

		snprintf(why, sizeof(why), "%s", err ? err : "");
		kw_errf(r, err, errcap, "%s: %s", path, why);
		kw_model_unmap(m, len);
		return r;
	}
	f->mapped = 1;
	return 0;
}

void kw_st_close(struct kw_st_file *f)
{
	if (f && f->mapped)
		kw_model_unmap(f->map, f->map_len);
	if (f)
		memset(f, 0, sizeof(*f));
}

const struct kw_st_tensor *kw_st_find(const struct kw_st_file *f, const char *name)
{
	size_t lo = 0, hi = f ? f->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->t[mid].name, name);

		if (c == 0)
			return &f->t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int kw_st_read_f32(const struct kw_st_tensor *t, uint64_t first, size_t n, float *dst)
{
	const struct kw_kernels *kk = kw_kernels_best();
	uint16_t tmp[256];
	size_t es;

	if (!t || (!dst && n))
		return -KW_EINVAL;
	if (first > t->nelem || n > t->nelem - first)
		return -KW_ERANGE;
	es = kw_st_dtype_size(t->dtype);
	if (t->dtype == KW_ST_F32) {
		memcpy(dst, t->data + first * es, n * 4);
		return 0;
	}
	/* the data region is not aligned (8 + header length): copy into aligned chunks */
	for (size_t i = 0; i < n; i += 256) {
		size_t c = KW_MIN_SZ(256, n - i);

		memcpy(tmp, t->data + (first + i) * 2, c * 2);
		if (t->dtype == KW_ST_BF16)
			kk->bf16_to_f32(dst + i, tmp, c);
		else
			kk->f16_to_f32(dst + i, tmp, c);
	}
	return 0;
}
