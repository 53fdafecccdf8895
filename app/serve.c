/*
 * The common part of serving (app/serve.h, doc/serve.md): set-up, the ExpertRequest
 * decoder, tensors in and out through ml/compress (any codec of <kw/ml/codec.h>), the error
 * texts a Python caller reads, and the unary handlers that take a slot, hand the decoded
 * request to serve_moe.c or serve_petals.c and answer.
 *
 * Wire: hivemind hivemind/proto/runtime.proto (ExpertUID, ExpertRequest, ExpertResponse,
 * ExpertInfo, Tensor) @ 213bff98; ExpertResponse has no field 1 (tensors = 2, metadata = 3).
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/net/hivemind.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>
#include <kw/node.h>

#include "serve_int.h"

void kw_serve_limits_default(struct kw_serve_limits *l)
{
	l->max_rows = CONFIG_KW_APP_SERVE_MAX_ROWS;
	l->max_experts = CONFIG_KW_APP_SERVE_MAX_EXPERTS;
	l->slots = CONFIG_KW_APP_SERVE_SLOTS;
	l->max_blocks = CONFIG_KW_APP_SERVE_MAX_BLOCKS;
	l->sessions = CONFIG_KW_APP_SERVE_SESSIONS;
	l->session_tokens = CONFIG_KW_APP_SERVE_SESSION_TOKENS;
	l->step_timeout_ms = CONFIG_KW_APP_SERVE_STEP_TIMEOUT_MS;
	l->session_timeout_ms = CONFIG_KW_APP_SERVE_SESSION_TIMEOUT_MS;
	l->stream_piece = 0;   /* kw_serve_create: from the stream buffer's Kconfig size */
}

/* ---- protobuf reading (proto3: varints up to 10 bytes, non-minimal forms are legal) ------ */

int kw_serve_pb_varint(const uint8_t *b, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < 10; i++) {
		if (*pos >= len)
			return -KW_EBADMSG;
		uint8_t c = b[(*pos)++];

		if (i == 9 && c > 1)
			return -KW_EBADMSG;   /* beyond 64 bits */
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -KW_EBADMSG;
}

static int pb_skip(const uint8_t *b, size_t len, size_t *pos, unsigned wt)
{
	uint64_t v;

	switch (wt) {
	case 0:
		return kw_serve_pb_varint(b, len, pos, &v);
	case 1:
		if (len - *pos < 8)
			return -KW_EBADMSG;
		*pos += 8;
		return 0;
	case 2:
		if (kw_serve_pb_varint(b, len, pos, &v) < 0 || v > len - *pos)
			return -KW_EBADMSG;
		*pos += (size_t)v;
		return 0;
	case 5:
		if (len - *pos < 4)
			return -KW_EBADMSG;
		*pos += 4;
		return 0;
	default:
		return -KW_EBADMSG;   /* groups (3, 4) are not proto3; 6, 7 do not exist */
	}
}

int kw_serve_req_decode(struct kw_serve_req *r, const uint8_t *buf, size_t len,
			const char **why)
{
	size_t pos = 0;
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = "";
	memset(r, 0, sizeof(*r));
	if (len && !buf)
		return -KW_EINVAL;
	while (pos < len) {
		uint64_t key, l;
		unsigned field, wt;
		int ret;

		if (kw_serve_pb_varint(buf, len, &pos, &key) < 0) {
			*why = "bad field key";
			return -KW_EBADMSG;
		}
		field = (unsigned)(key >> 3);
		wt = (unsigned)(key & 7);
		if (field == 0 || key >> 32) {
			*why = "bad field number";
			return -KW_EBADMSG;
		}
		if ((field < 1 || field > 3) || wt != 2) {
			if (field >= 1 && field <= 3) {
				*why = "uid, tensors and metadata must be length-delimited";
				return -KW_EBADMSG;
			}
			if (pb_skip(buf, len, &pos, wt) < 0) {
				*why = "unknown field runs past the end";
				return -KW_EBADMSG;
			}
			continue;
		}
		if (kw_serve_pb_varint(buf, len, &pos, &l) < 0 || l > len - pos) {
			*why = "field length runs past the end";
			return -KW_EBADMSG;
		}
		const uint8_t *p = buf + pos;

		pos += (size_t)l;
		if (field == 1) {
			if (!kw_mp_utf8_valid(p, (size_t)l)) {
				*why = "uid is not UTF-8";
				return -KW_EBADMSG;
			}
			r->uid = (const char *)p;
			r->uid_len = (size_t)l;
		} else if (field == 3) {
			r->meta = l ? p : NULL;
			r->meta_len = (size_t)l;
		} else {
			if (r->n_tensors == KW_SERVE_TENSORS_MAX) {
				*why = "too many tensors";
				return -KW_ELIMIT;
			}
			ret = kw_tensor_msg_decode(&r->t[r->n_tensors], p, (size_t)l);
			if (ret < 0) {
				*why = "a Tensor does not decode";
				return ret;
			}
			r->n_tensors++;
		}
	}
	return 0;
}

/* ---- expert uids: hivemind/moe/expert_uid.py UID_PATTERN
 *      ^(([^.])+)([.](?:[0]|([1-9]([0-9]*))))+$ ------------------------------------------ */

bool kw_serve_uid_valid(const char *s, size_t len)
{
	size_t i = 0, coords = 0;

	while (i < len && s[i] != '.')
		i++;
	if (i == 0 || i == len)
		return false;
	while (i < len) {
		size_t start;

		if (s[i] != '.')
			return false;
		start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || (s[start] == '0' && i - start > 1))
			return false;
		coords++;
	}
	return coords > 0 && kw_mp_utf8_valid((const uint8_t *)s, len);
}

/* ---- error texts -------------------------------------------------------------------------- */

void kw_serve_pyerr(char *out, size_t cap, const char *cls, const char *fmt, ...)
{
	char msg[KW_SERVE_ERR_MAX];
	va_list ap;
	size_t o = 0;
	char q;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* str.__repr__: single quotes unless the text holds ' and no " */
	q = strchr(msg, '\'') && !strchr(msg, '"') ? '"' : '\'';
	o = (size_t)snprintf(out, cap, "%s(%c", cls, q);
	for (const char *p = msg; *p && o + 6 < cap; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\\' || c == (unsigned char)q)
			o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
		else if (c == '\n')
			o += (size_t)snprintf(out + o, cap - o, "\\n");
		else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (o + 3 <= cap) {
		out[o++] = q;
		out[o++] = ')';
		out[o] = '\0';
	}
}

void kw_serve_pystr(const char *repr, char *out, size_t cap)
{
	const char *p = strchr(repr, '('), *end = repr + strlen(repr);
	size_t o = 0;
	char q;

	if (!cap)
		return;
	out[0] = '\0';
	if (!p || end == p + 1 || end[-1] != ')') {
		snprintf(out, cap, "%s", repr);   /* not a repr: as it is */
		return;
	}
	end--;                                  /* the closing ')' */
	p++;
	if (p == end)
		return;                         /* Cls(): str is "" */
	if ((size_t)(p - repr) == 9 && !memcmp(repr, "KeyError(", 9)) {
		snprintf(out, cap, "%.*s", (int)(end - p), p);   /* str(KeyError(k)) == repr(k) */
		return;
	}
	q = *p++;
	for (; p < end && *p != q && o + 1 < cap; p++) {
		if (*p != '\\' || p + 1 >= end) {
			out[o++] = *p;
			continue;
		}
		p++;
		if (*p == 'n') {
			out[o++] = '\n';
		} else if (*p == 'x' && p + 2 < end) {
			unsigned v = 0;

			for (int i = 1; i <= 2; i++)
				v = v * 16 + (unsigned)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
			out[o++] = (char)v;
			p += 2;
		} else {
			out[o++] = *p;          /* \\ \' \" */
		}
	}
	out[o] = '\0';
}

/* ---- tensors in and out ------------------------------------------------------------------- */

int kw_serve_tensor_in(struct kw_serve *s, const struct kw_tensor_msg *m, const char *what,
		       unsigned ndim, size_t last, size_t max_numel, float *dst, size_t *numel,
		       char *err, size_t cap)
{
	enum kw_codec_dtype dt;
	size_t n;

	if (kw_codec_dtype_parse(m->dtype, strlen(m->dtype), &dt) < 0) {
		kw_serve_pyerr(err, cap, "TypeError", "%s: dtype %s is not served (float32, "
			       "float16 or bfloat16)", what, m->dtype[0] ? m->dtype : "(none)");
		return -KW_EINVAL;
	}
	if (m->compression < 0 || m->compression >= KW_COMP_COUNT) {
		kw_serve_pyerr(err, cap, "ValueError", "%s: unknown compression %d", what,
			       (int)m->compression);
		return -KW_EINVAL;
	}
	if (m->ndim != ndim || m->shape[ndim - 1] != last || kw_tensor_msg_numel(m, &n) < 0 ||
	    n == 0) {
		char shape[96];
		size_t o = 0;

		shape[0] = '\0';
		for (uint32_t i = 0; i < m->ndim && o < sizeof(shape) - 12; i++)
			o += (size_t)snprintf(shape + o, sizeof(shape) - o, "%s%u", i ? ", " : "",
					      m->shape[i]);
		kw_serve_pyerr(err, cap, "ValueError", "%s: expected a %ud tensor of shape "
			       "[..., %zu], got [%s]", what, ndim, last, shape);
		return -KW_EINVAL;
	}
	if (n > max_numel) {
		kw_serve_pyerr(err, cap, "ValueError", "%s: %zu rows exceed this server's limit "
			       "of %zu (max_rows)", what, n / last, max_numel / last);
		return -KW_EINVAL;
	}
	if (kw_codec_decode(s->codec, (enum kw_compression)m->compression, dt, m->buf, m->buf_len,
			    n, last, dst) < 0) {
		kw_serve_pyerr(err, cap, "ValueError", "%s: a buffer of %zu bytes does not hold "
			       "%zu %s values with compression %d", what, m->buf_len, n, m->dtype,
			       (int)m->compression);
		return -KW_EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!(dst[i] - dst[i] == 0.0f)) {   /* NaN or infinity: refused, not propagated */
			kw_serve_pyerr(err, cap, "ValueError", "%s: element %zu is not finite",
				       what, i);
			return -KW_EINVAL;
		}
	*numel = n;
	return 0;
}

size_t kw_serve_pb_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

static size_t pb_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

int kw_serve_response(struct kw_serve *s, struct kw_serve_slot *slot,
		      const struct kw_serve_tout *t, size_t n, size_t *len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		struct kw_tensor_msg m;
		size_t numel = 1, enc_len, tl, last = t[i].shape[t[i].ndim - 1];
		int ret;

		for (unsigned d = 0; d < t[i].ndim; d++)
			numel *= t[i].shape[d];
		ret = kw_codec_encode(s->codec, t[i].comp, KW_CODEC_F32, t[i].y, numel, last,
				      slot->scratch, slot->scratch_len, slot->enc, slot->enc_cap,
				      &enc_len);
		if (ret < 0) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "cannot encode the output with compression %d: %s",
				       (int)t[i].comp, kw_strerror(ret));
			return -KW_EINVAL;
		}
		memset(&m, 0, sizeof(m));
		m.buf = slot->enc;
		m.buf_len = enc_len;
		m.ndim = t[i].ndim;
		memcpy(m.shape, t[i].shape, t[i].ndim * sizeof(uint32_t));
		m.requires_grad = t[i].requires_grad;
		strcpy(m.dtype, "float32");
		m.compression = t[i].comp;
		tl = kw_tensor_msg_encoded_size(&m);
		if (!tl || slot->out_cap - o < 1 + pb_varint_len(tl) + tl) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "the response does not fit the server's reply buffer");
			return -KW_EINVAL;
		}
		slot->out[o++] = 0x12;   /* ExpertResponse.tensors = 2 */
		o += kw_serve_pb_varint_put(slot->out + o, tl);
		if (kw_tensor_msg_encode(&m, slot->out + o, slot->out_cap - o, &tl) < 0) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "cannot serialize the output tensor");
			return -KW_EINVAL;
		}
		o += tl;
	}
	*len = o;
	return 0;
}

int kw_serve_info_response(struct kw_serve_slot *slot, const uint8_t *mp, size_t mp_len,
			   size_t *len)
{
	size_t o = 0;

	if (slot->out_cap < 1 + pb_varint_len(mp_len) + mp_len)
		return -KW_ENOSPC;
	slot->out[o++] = 0x0a;   /* ExpertInfo.serialized_info = 1 */
	o += kw_serve_pb_varint_put(slot->out + o, mp_len);
	memcpy(slot->out + o, mp, mp_len);
	*len = o + mp_len;
	return 0;
}

/* BatchTensorDescriptor.packb (hivemind/utils/tensor_descr.py @ 4bd43b7): asdict() with the
 * device replaced by device_type / device_index, keys in this order. */
void kw_serve_put_btd(struct kw_mp_writer *w, const uint32_t *dims, size_t n, const char *dtype,
		      bool requires_grad, enum kw_compression comp, const char *device_type)
{
	size_t m1, m2;

	kw_mp_put_ext_begin(w, KW_MP_EXT_BTD, &m1);
	kw_mp_put_map(w, 8);
	kw_mp_put_cstr(w, "size");
	kw_mp_put_ext_begin(w, KW_MP_EXT_TUPLE, &m2);
	kw_mp_put_array(w, (uint32_t)n + 1);
	kw_mp_put_nil(w);                      /* the batch dimension */
	for (size_t i = 0; i < n; i++)
		kw_mp_put_uint(w, dims[i]);
	kw_mp_put_ext_end(w, m2);
	kw_mp_put_cstr(w, "dtype");
	kw_mp_put_cstr(w, dtype);
	kw_mp_put_cstr(w, "layout");
	kw_mp_put_cstr(w, "torch.strided");
	kw_mp_put_cstr(w, "requires_grad");
	kw_mp_put_bool(w, requires_grad);
	kw_mp_put_cstr(w, "pin_memory");
	kw_mp_put_bool(w, false);
	kw_mp_put_cstr(w, "compression");
	kw_mp_put_uint(w, (uint64_t)comp);
	kw_mp_put_cstr(w, "device_type");
	if (device_type)
		kw_mp_put_cstr(w, device_type);
	else
		kw_mp_put_nil(w);
	kw_mp_put_cstr(w, "device_index");
	kw_mp_put_nil(w);
	kw_mp_put_ext_end(w, m1);
}

/* ---- set-up ------------------------------------------------------------------------------- */

int kw_serve_create(struct kw_arena *a, const struct kw_serve_limits *lim, struct kw_serve **out)
{
	struct kw_serve_limits l;
	struct kw_serve *s;
	int ret;

	if (lim)
		l = *lim;
	else
		kw_serve_limits_default(&l);
	if (!a || !l.max_rows || !l.max_experts || !l.slots || !l.max_blocks)
		return -KW_EINVAL;
	s = kw_arena_alloc(a, sizeof(*s), 16);
	if (!s)
		return -KW_ENOMEM;
	memset(s, 0, sizeof(*s));
	s->a = a;
	if (!l.sessions)
		l.sessions = CONFIG_KW_APP_SERVE_SESSIONS;
	if (!l.session_tokens)
		l.session_tokens = CONFIG_KW_APP_SERVE_SESSION_TOKENS;
	if (!l.step_timeout_ms)
		l.step_timeout_ms = CONFIG_KW_APP_SERVE_STEP_TIMEOUT_MS;
	if (!l.session_timeout_ms)
		l.session_timeout_ms = CONFIG_KW_APP_SERVE_SESSION_TIMEOUT_MS;
	if (!l.stream_piece)
		l.stream_piece = (uint32_t)KW_MIN((uint64_t)CONFIG_KW_NET_HIVEMIND_STREAM_BUF_BYTES -
						  KW_MIN(512u, CONFIG_KW_NET_HIVEMIND_STREAM_BUF_BYTES / 2),
						  4ull << 20);
	s->lim = l;
	s->codec = kw_arena_alloc(a, sizeof(*s->codec), 64);
	s->ex = kw_arena_alloc(a, l.max_experts * sizeof(*s->ex), 16);
	if (!s->codec || !s->ex)
		return -KW_ENOMEM;
	ret = kw_codec_init(s->codec, KW_SIMD_AUTO);
	if (ret < 0)
		return ret;
	*out = s;
	return 0;
}

int kw_serve_add_expert(struct kw_serve *s, const char *uid, const struct kw_ffn *f,
			enum kw_compression comp)
{
	size_t len = uid ? strlen(uid) : 0;

	if (s->started)
		return -KW_EBUSY;
	if (!f || !len || len > KW_SERVE_UID_MAX || !kw_serve_uid_valid(uid, len) ||
	    comp < 0 || comp >= KW_COMP_COUNT || !f->hid || !f->inter)
		return -KW_EINVAL;
	if (s->n_ex && (f->hid != s->hid || f->inter != s->inter))
		return -KW_EINVAL;
	for (size_t i = 0; i < s->n_ex; i++)
		if (!strcmp(s->ex[i].uid, uid))
			return -KW_EEXIST;
	if (s->n_ex == s->lim.max_experts)
		return -KW_ENOSPC;
	memcpy(s->ex[s->n_ex].uid, uid, len + 1);
	s->ex[s->n_ex].f = f;
	s->ex[s->n_ex].comp = comp;
	s->n_ex++;
	s->hid = f->hid;
	s->inter = f->inter;
	return 0;
}

int kw_serve_set_blocks(struct kw_serve *s, const char *prefix, uint32_t first, uint32_t count,
			const struct kw_llama_w *w, const struct kw_llama_dims *d)
{
	size_t len = prefix ? strlen(prefix) : 0;

	if (s->started)
		return -KW_EBUSY;
	if (s->has_blocks)
		return -KW_EEXIST;
	/* Petals: the dht_prefix holds no '.' and no ' ' (CHAIN_DELIMITER); room for ".<i>" */
	if (!w || !d || !count || !len || len + 11 > KW_SERVE_UID_MAX || strchr(prefix, '.') ||
	    strchr(prefix, ' ') || first > UINT32_MAX - count ||
	    !kw_mp_utf8_valid((const uint8_t *)prefix, len))
		return -KW_EINVAL;
	if (count > s->lim.max_blocks)
		return -KW_ENOSPC;
	memcpy(s->prefix, prefix, len + 1);
	s->first = first;
	s->count = count;
	s->w = w;
	s->d = *d;
	s->int8 = w[0].q.q8 != NULL;
	s->has_blocks = true;
	return 0;
}

static size_t width_of(const struct kw_serve *s)
{
	size_t w = s->n_ex ? s->hid : 0;

	return s->has_blocks && s->d.hidden > w ? s->d.hidden : w;
}

/* Bytes of one slot's buffers (0 on overflow). */
static size_t slot_bytes(const struct kw_serve *s, size_t *enc_cap, size_t *scr, size_t *acts)
{
	size_t rows = s->lim.max_rows, width = width_of(s), numel = rows * width, b;

	if (!width || numel / width != rows || numel > (SIZE_MAX >> 4) / s->lim.max_blocks)
		return 0;
	*enc_cap = kw_codec_max_size(KW_COMP_NONE, numel, width);
	/* every codec's size is at most NONE's plus its header: take the largest */
	for (int c = 1; c < KW_COMP_COUNT; c++)
		*enc_cap = KW_MAX(*enc_cap, kw_codec_max_size((enum kw_compression)c, numel, width));
	*scr = kw_codec_scratch_size(KW_COMP_QUANTILE_8BIT, numel);
	*acts = s->has_blocks ? s->lim.max_blocks * numel * sizeof(float) : 0;
	b = 3 * numel * sizeof(float) + *acts + *enc_cap + *scr;
	/* the reply: up to two tensors (a backward with deep prompts answers grad_prompts too,
	 * held to max_rows rows like the input: app/serve_petals.c) */
	b += 2 * (*enc_cap + 128) + 64 * 4;
	return b;
}

/* Positions the block scratch covers: a forward's rows, or an inference session's cache. */
static size_t max_pos(const struct kw_serve *s)
{
	return KW_MAX((size_t)s->lim.max_rows, (size_t)s->lim.session_tokens);
}

size_t kw_serve_bytes(const struct kw_serve *s)
{
	size_t enc, scr, acts, per = slot_bytes(s, &enc, &scr, &acts), total;

	if (!per)
		return 0;
	total = s->lim.slots * (per + sizeof(struct kw_serve_slot)) +
		kw_pool_storage_size(16, s->lim.slots) + 1024 +
		s->lim.slots * sizeof(uint32_t) + 16;   /* the compute lane's ring */
	if (s->n_ex)
		total += kw_ffn_ctx_bytes(s->hid, s->inter, s->lim.max_rows);
	if (s->has_blocks)
		total += kw_llama_ctx_bytes(&s->d, s->lim.max_rows, max_pos(s), 1) +
			 kw_serve_infer_bytes(s);
	return total + kw_serve_stream_bytes(s);
}

struct kw_serve_slot *kw_serve_slot_get(struct kw_serve *s, void **tok)
{
	*tok = kw_pool_alloc(&s->pool);
	if (!*tok)
		return NULL;
	s->st.slots_used = s->pool.used;
	s->st.slots_high = KW_MAX(s->st.slots_high, s->pool.used);
	return &s->slot[((uint8_t *)*tok - s->pool.storage) / s->pool.stride];
}

void kw_serve_slot_put(struct kw_serve *s, void *tok)
{
	kw_pool_free(&s->pool, tok);
	s->st.slots_used = s->pool.used;
	kw_serve_idle_check(s);
}

/* Which server and method a handler name is; -1 if none. */
static int method_of(const char *name, bool *petals)
{
	static const char *const names[6] = {
		KW_SERVE_MOE_INFO, KW_SERVE_MOE_FORWARD, KW_SERVE_MOE_BACKWARD,
		KW_SERVE_PT_INFO, KW_SERVE_PT_FORWARD, KW_SERVE_PT_BACKWARD,
	};

	for (int i = 0; i < 6; i++)
		if (!strcmp(name, names[i])) {
			*petals = i >= 3;
			return i % 3;
		}
	return -1;
}

/* One request, whatever carried it: decode, run, answer into *o (slot memory). Runs on the
 * lane thread too: everything it writes is in the slot. */
void kw_serve_compute(struct kw_serve *s, struct kw_serve_slot *slot, bool petals, int method,
		      const uint8_t *req, size_t len, struct kw_serve_out *o, bool *bad)
{
	struct kw_serve_req r;
	const char *why;
	int ret;

	slot->err[0] = '\0';
	*bad = false;
	ret = kw_serve_req_decode(&r, req, len, &why);
	if (ret < 0) {
		*bad = true;
		kw_serve_pyerr(slot->err, sizeof(slot->err), "DecodeError",
			       "Error parsing message: %s", why);
		o->data = (const uint8_t *)slot->err;
		o->len = strlen(slot->err);
		o->is_error = true;
	} else if (petals) {
		kw_serve_petals_run(s, slot, method, &r, o);
	} else {
		kw_serve_moe_run(s, slot, method, &r, o);
	}
}

void kw_serve_account(struct kw_serve *s, const struct kw_serve_out *o, bool bad)
{
	if (bad)
		s->st.bad_requests++;
	s->st.calls++;
	if (o->is_error)
		s->st.errors++;
}

/* Inline on the loop: under the compute lock, which waits for a running lane job. */
static void serve_one(struct kw_serve *s, struct kw_serve_slot *slot, bool petals, int method,
		      const uint8_t *req, size_t len, struct kw_serve_out *o)
{
	bool bad;

	kw_serve_compute_begin(s);
	kw_serve_compute(s, slot, petals, method, req, len, o, &bad);
	kw_serve_compute_end(s);
	kw_serve_account(s, o, bad);
}

static const char busy_text[] = "RuntimeError('server busy: every request slot is taken')";

int kw_serve_call(struct kw_serve *s, const char *name, const uint8_t *req, size_t len,
		  uint8_t *out, size_t cap, size_t *out_len, bool *is_error)
{
	struct kw_serve_out o = { 0 };
	struct kw_serve_slot *slot;
	bool petals;
	int method = method_of(name, &petals), ret = 0;
	void *tok;

	if (method < 0 || (petals ? !s->has_blocks : !s->n_ex) || !s->started)
		return -KW_ENOENT;
	slot = kw_serve_slot_get(s, &tok);
	if (!slot) {
		s->st.busy++;
		o.data = (const uint8_t *)busy_text;
		o.len = strlen(busy_text);
		o.is_error = true;
	} else {
		serve_one(s, slot, petals, method, req, len, &o);
	}
	if (o.len > cap) {
		ret = -KW_ENOSPC;
	} else {
		memcpy(out, o.data, o.len);
		*out_len = o.len;
		*is_error = o.is_error;
	}
	if (slot)
		kw_serve_slot_put(s, tok);
	return ret;
}

/* ---- the unary handlers ------------------------------------------------------------------- */

struct handler_arg {
	struct kw_serve *s;
	bool petals;
	int method;
};

/* Answers a call from the slot's result (inline, or a lane job done). */
static void reply_out(struct kw_serve *s, struct kw_hm_call *call, struct kw_serve_slot *slot,
		      const struct kw_serve_out *o)
{
	int ret;

	(void)s;
	if (o->is_error) {
		KW_LOG_DBG(serve, "request answered with %.*s", (int)o->len, (const char *)o->data);
		ret = kw_hm_reply_error(call, slot->err);
	} else {
		ret = kw_hm_reply(call, o->data, o->len);
	}
	if (ret < 0)
		KW_LOG_WRN(serve, "reply of %zu bytes not sent: %s (the caller gets an error "
			   "text; raise KW_NET_HIVEMIND_CALL_BUF_BYTES)", o->len, kw_strerror(ret));
}

static void on_lane_done(struct kw_serve *s, struct kw_serve_slot *slot, void *user)
{
	reply_out(s, user, slot, &slot->job.o);
}

static void on_call(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct handler_arg *h = arg;
	struct kw_serve *s = h->s;
	struct kw_serve_out o = { 0 };
	struct kw_serve_slot *slot;
	void *tok;

	if (s->refuse && h->method != 0) {   /* pausing: rpc_info still answers */
		s->st.calls++;
		s->st.errors++;
		s->st.refused++;
		(void)kw_hm_reply_error(call, s->refuse);
		return;
	}
	slot = kw_serve_slot_get(s, &tok);
	if (!slot) {
		s->st.busy++;
		s->st.calls++;
		s->st.errors++;
		(void)kw_hm_reply_error(call, busy_text);
		return;
	}
	if (!s->lane.tried)   /* the loop is known from the first call: start the lane there */
		(void)kw_serve_lane_attach(s, &kw_swarm_node(kw_conn_swarm(
						  kw_hm_call_conn(call)))->loop);
	if (kw_serve_lane_submit(s, slot, tok, h->petals, h->method, req, len, on_lane_done,
				 call))
		return;   /* answered by on_lane_done, or cancelled by on_cancel */
	serve_one(s, slot, h->petals, h->method, req, len, &o);
	reply_out(s, call, slot, &o);
	kw_serve_slot_put(s, tok);
}

/* The call ended unanswered (deadline, caller gone): only a lane job can be in flight. */
static void on_cancel(struct kw_hm_call *call, int reason, void *arg)
{
	struct handler_arg *h = arg;
	struct kw_serve *s = h->s;

	(void)reason;
	for (uint32_t i = 0; i < s->lim.slots; i++)
		if (s->slot[i].job.user == call)   /* an idle slot's stale match: a no-op */
			kw_serve_lane_cancel(s, &s->slot[i]);
}

int kw_serve_start(struct kw_serve *s, struct kw_arena *a, struct kw_hm *hm,
		   const struct kw_kernels *kk, struct kw_workers *wk, bool client_mode)
{
	static const char *const moe[3] = { KW_SERVE_MOE_INFO, KW_SERVE_MOE_FORWARD,
					    KW_SERVE_MOE_BACKWARD };
	static const char *const pt[3] = { KW_SERVE_PT_INFO, KW_SERVE_PT_FORWARD,
					   KW_SERVE_PT_BACKWARD };
	size_t enc, scr, acts, per;
	struct handler_arg *args;
	int ret;

	if (s->started)
		return -KW_EBUSY;
	if (!s->n_ex && !s->has_blocks)
		return -KW_EINVAL;
	if (a)
		s->a = a;
	per = slot_bytes(s, &enc, &scr, &acts);
	if (!per)
		return -KW_EINVAL;
	s->width = width_of(s);
	s->client_mode = client_mode;
	if (s->n_ex) {
		ret = kw_ffn_ctx_init(&s->fctx, kk, wk, s->hid, s->inter, s->lim.max_rows, s->a);
		if (ret < 0)
			return ret;
	}
	if (s->has_blocks) {
		ret = kw_llama_ctx_init(&s->lctx, &s->d, kk, wk, s->lim.max_rows, max_pos(s),
					s->a);
		if (ret < 0)
			return ret;
	}
	ret = kw_pool_init_from_arena(&s->pool, "serve_slots", s->a, 16, s->lim.slots);
	if (ret < 0)
		return ret;
	s->slot = kw_arena_alloc(s->a, s->lim.slots * sizeof(*s->slot), 16);
	if (!s->slot)
		return -KW_ENOMEM;
	for (uint32_t i = 0; i < s->lim.slots; i++) {
		struct kw_serve_slot *sl = &s->slot[i];
		size_t numel = (size_t)s->lim.max_rows * s->width;

		memset(sl, 0, sizeof(*sl));
		sl->x = kw_arena_alloc(s->a, numel * sizeof(float), 64);
		sl->g = kw_arena_alloc(s->a, numel * sizeof(float), 64);
		sl->y = kw_arena_alloc(s->a, numel * sizeof(float), 64);
		sl->acts = acts ? kw_arena_alloc(s->a, acts, 64) : NULL;
		sl->enc_cap = enc;
		sl->enc = kw_arena_alloc(s->a, enc, 16);
		sl->scratch_len = scr;
		sl->scratch = scr ? kw_arena_alloc(s->a, scr, 16) : NULL;
		sl->out_cap = 2 * (enc + 128) + 64 * 4;
		sl->out = kw_arena_alloc(s->a, sl->out_cap, 16);
		if (!sl->x || !sl->g || !sl->y || (acts && !sl->acts) || !sl->enc ||
		    (scr && !sl->scratch) || !sl->out)
			return -KW_ENOMEM;
	}
	args = kw_arena_alloc(s->a, 6 * sizeof(*args), 16);
	if (!args || kw_serve_lane_setup(s) < 0)
		return -KW_ENOMEM;
	s->started = true;
	for (int i = 0; i < 6 && hm; i++) {
		bool petals = i >= 3;

		if (petals ? !s->has_blocks : !s->n_ex)
			continue;
		args[i] = (struct handler_arg){ s, petals, i % 3 };
		ret = kw_hm_register_unary(hm, petals ? pt[i % 3] : moe[i % 3], on_call, on_cancel,
					   &args[i], 0);
		if (ret < 0)
			return ret;
	}
	s->hm = hm;
	if (hm) {
		/* the stream handlers need net/hivemind's stream pools (Kconfig sizes) */
		ret = kw_hm_stream_setup(hm, NULL);
		if (ret < 0 && ret != -KW_EALREADY)
			return ret;
	}
	if (s->has_blocks) {
		ret = kw_serve_infer_start(s);
		if (ret < 0)
			return ret;
	}
	return kw_serve_stream_start(s);
}

void kw_serve_set_connect(struct kw_serve *s, kw_serve_connect_fn fn, void *arg)
{
	s->connect = fn;
	s->connect_arg = arg;
}

void kw_serve_get_stats(const struct kw_serve *s, struct kw_serve_stats *st)
{
	*st = s->st;
	st->slots_used = s->started ? s->pool.used : 0;
	st->sessions_open = s->started && s->has_blocks ? s->kv.open : 0;
}

void kw_serve_describe(const struct kw_serve *s, struct kw_serve_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->n_experts = s->n_ex;
	for (size_t i = 0; i < s->n_ex && i < KW_ARRAY_SIZE(d->expert_uid); i++)
		d->expert_uid[i] = s->ex[i].uid;
	d->has_blocks = s->has_blocks;
	if (s->has_blocks) {
		d->block_prefix = s->prefix;
		d->start_block = s->first;
		d->end_block = s->first + s->count;
		d->quant_type = s->int8 ? "int8" : "none";
	} else {
		d->quant_type = s->n_ex && s->ex[0].f->up.q8 ? "int8" : "none";
	}
	d->torch_dtype = "float32";
	d->cache_tokens_left = s->started && s->has_blocks ? kw_kv_cache_tokens_left(&s->kv) : 0;
	d->inference_max_length = s->has_blocks ? s->lim.session_tokens : 0;
}
