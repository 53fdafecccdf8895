/*
 * runtime.proto Tensor through nanopb (proto/hivemind/runtime.options keeps decoding
 * allocation-free) and hivemind's streaming split / reassembly (split_for_streaming in
 * hivemind/utils/streaming.py, hivemind @ 213bff98; see doc/ml-codec.md).
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "hivemind/runtime.pb.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/tensor_msg.h>

_Static_assert(KW_TENSOR_MSG_MAX_DIMS == KW_ARRAY_SIZE(((kw_hivemind_Tensor *)0)->size),
	       "KW_TENSOR_MSG_MAX_DIMS must equal max_count in runtime.options");
_Static_assert(KW_TENSOR_MSG_DTYPE_MAX + 1 == sizeof(((kw_hivemind_Tensor *)0)->dtype),
	       "KW_TENSOR_MSG_DTYPE_MAX must equal max_size - 1 in runtime.options");

#define NUMEL_LIMIT ((size_t)1 << 40)

int kw_tensor_msg_numel(const struct kw_tensor_msg *m, size_t *numel)
{
	size_t n = 1;

	for (uint32_t i = 0; i < m->ndim && i < KW_TENSOR_MSG_MAX_DIMS; i++) {
		if (m->shape[i] && n > NUMEL_LIMIT / m->shape[i])
			return -KW_ERANGE;
		n *= m->shape[i];
	}
	*numel = n;
	return 0;
}

struct buf_view {
	const uint8_t *p;
	size_t len;
	const uint8_t *in;     /* decode: the whole input, to validate the zero-copy view */
	size_t in_len;
};

static bool enc_buffer(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
	const struct buf_view *v = *arg;

	if (v->len == 0)  /* proto3: empty bytes are not emitted */
		return true;
	if (v->p)
		return pb_encode_tag_for_field(s, f) && pb_encode_string(s, v->p, v->len);
	/* reserved: tag and length only, the caller fills the bytes in place. A buffer stream
	 * (pb_ostream_from_buffer) keeps its write position in state; a sizing stream has no
	 * callback. */
	if (!pb_encode_tag_for_field(s, f) || !pb_encode_varint(s, v->len))
		return false;
	if (s->callback) {
		if (s->max_size - s->bytes_written < v->len)
			PB_RETURN_ERROR(s, "stream full");
		s->state = (uint8_t *)s->state + v->len;
	}
	s->bytes_written += v->len;
	return true;
}

static int to_pb(const struct kw_tensor_msg *m, kw_hivemind_Tensor *t, struct buf_view *v)
{
	size_t dl;

	if (m->ndim > KW_TENSOR_MSG_MAX_DIMS)
		return -KW_EINVAL;
	dl = strnlen(m->dtype, sizeof(m->dtype));
	if (dl > KW_TENSOR_MSG_DTYPE_MAX)
		return -KW_EINVAL;
	memset(t, 0, sizeof(*t));
	v->p = m->buf;
	v->len = m->buf_len;
	t->buffer.funcs.encode = enc_buffer;
	t->buffer.arg = v;
	t->size_count = (pb_size_t)m->ndim;
	memcpy(t->size, m->shape, m->ndim * sizeof(uint32_t));
	t->requires_grad = m->requires_grad;
	memcpy(t->dtype, m->dtype, dl);
	t->compression = (kw_hivemind_CompressionType)m->compression;
	t->chunks = m->chunks;
	return 0;
}

size_t kw_tensor_msg_encoded_size(const struct kw_tensor_msg *m)
{
	kw_hivemind_Tensor t;
	struct buf_view v;
	size_t sz;

	if (to_pb(m, &t, &v) || !pb_get_encoded_size(&sz, kw_hivemind_Tensor_fields, &t))
		return 0;
	return sz;
}

int kw_tensor_msg_encode(const struct kw_tensor_msg *m, uint8_t *out, size_t cap, size_t *out_len)
{
	kw_hivemind_Tensor t;
	struct buf_view v;
	pb_ostream_t s;
	int err;

	if (!m || !out_len || (!out && cap))
		return -KW_EINVAL;
	if ((err = to_pb(m, &t, &v)))
		return err;
	s = pb_ostream_from_buffer(out, cap);
	if (!pb_encode(&s, kw_hivemind_Tensor_fields, &t))
		return -KW_ENOSPC;
	*out_len = s.bytes_written;
	return 0;
}

/*
 * Zero-copy bytes: for a stream made by pb_istream_from_buffer(), nanopb keeps the read
 * position in stream->state (documented in pb_decode.h for buffer streams), so the field's
 * bytes are at state[0..bytes_left) and we only skip over them.
 */
static bool dec_buffer(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct buf_view *v = *arg;
	const uint8_t *p = (const uint8_t *)s->state;
	uintptr_t pu = (uintptr_t)p, in = (uintptr_t)v->in;

	/* A field 1 with a non-bytes wire type reaches the callback as a stream over nanopb's
	 * own stack copy of the value: that is a malformed Tensor, not a view into the input. */
	if (pu < in || s->bytes_left > v->in_len || pu - in > v->in_len - s->bytes_left)
		return false;
	v->p = p;
	v->len = s->bytes_left;
	return pb_read(s, NULL, s->bytes_left);
}

int kw_tensor_msg_decode(struct kw_tensor_msg *m, const uint8_t *buf, size_t len)
{
	kw_hivemind_Tensor t;
	struct buf_view v = { NULL, 0, buf, len };
	pb_istream_t s;

	if (!m || (!buf && len))
		return -KW_EINVAL;
	memset(&t, 0, sizeof(t));
	t.buffer.funcs.decode = dec_buffer;
	t.buffer.arg = &v;
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, kw_hivemind_Tensor_fields, &t)) {
		const char *e = PB_GET_ERROR(&s);

		if (strcmp(e, "array overflow") == 0 || strcmp(e, "string overflow") == 0 ||
		    strcmp(e, "bytes overflow") == 0)
			return -KW_EMSGSIZE;
		return -KW_EBADMSG;
	}
	memset(m, 0, sizeof(*m));
	m->buf = v.len ? v.p : NULL;
	m->buf_len = v.len;
	m->ndim = t.size_count;
	memcpy(m->shape, t.size, t.size_count * sizeof(uint32_t));
	m->requires_grad = t.requires_grad;
	memcpy(m->dtype, t.dtype, sizeof(m->dtype));
	m->dtype[KW_TENSOR_MSG_DTYPE_MAX] = '\0';
	m->compression = (int32_t)t.compression;
	m->chunks = t.chunks;
	return 0;
}

/* ---- streaming split / join ------------------------------------------------------------- */

size_t kw_tensor_msg_pieces(const struct kw_tensor_msg *whole, size_t chunk_bytes)
{
	if (!whole || chunk_bytes == 0)
		return 0;
	if (whole->buf_len == 0)
		return 1;
	return (whole->buf_len - 1) / chunk_bytes + 1;
}

int kw_tensor_msg_piece(const struct kw_tensor_msg *whole, size_t chunk_bytes, size_t index,
			struct kw_tensor_msg *piece)
{
	size_t n = kw_tensor_msg_pieces(whole, chunk_bytes), off;

	if (!n || !piece || index >= n || n > INT32_MAX)
		return -KW_EINVAL;
	off = index * chunk_bytes;
	if (index == 0) {
		*piece = *whole;
		piece->chunks = whole->buf_len ? (int32_t)n : 0;
	} else {
		memset(piece, 0, sizeof(*piece));
	}
	piece->buf = whole->buf_len ? whole->buf + off : NULL;
	piece->buf_len = whole->buf_len ? KW_MIN(chunk_bytes, whole->buf_len - off) : 0;
	return 0;
}

size_t kw_tensor_msg_chunk_bytes(const struct kw_tensor_msg *whole, size_t max_msg)
{
	struct kw_tensor_msg head = *whole;
	size_t hdr, room;

	/* Piece 0 is the largest: every header field plus chunks (<= 6 bytes) plus a buffer tag
	 * and length (<= 1 + 10 bytes). */
	head.buf = NULL;
	head.buf_len = 0;
	head.chunks = INT32_MAX;
	hdr = kw_tensor_msg_encoded_size(&head);
	if (!hdr && (whole->ndim || whole->dtype[0]))
		return 0;
	if (max_msg <= hdr + 11)
		return 0;
	room = max_msg - hdr - 11;
	return KW_MIN(room, whole->buf_len ? whole->buf_len : room);
}

void kw_tensor_join_init(struct kw_tensor_join *j, uint8_t *storage, size_t cap)
{
	memset(j, 0, sizeof(*j));
	j->storage = storage;
	j->cap = cap;
}

static bool is_continuation(const struct kw_tensor_msg *p)
{
	return p->dtype[0] == '\0' && p->ndim == 0 && !p->requires_grad && p->compression == 0 &&
	       p->chunks == 0;
}

int kw_tensor_join_add(struct kw_tensor_join *j, const struct kw_tensor_msg *p)
{
	if (!j || !p || j->done)
		return -KW_EBADMSG;
	if (!j->started) {
		if (p->dtype[0] == '\0' || p->chunks < 0)
			return -KW_EBADMSG;
		j->head = *p;
		j->head.buf = NULL;
		j->started = true;
		j->first_len = p->buf_len;
	} else {
		if (!is_continuation(p))
			return -KW_EBADMSG;
		/* every piece but the last is exactly first_len long */
		if (j->short_seen || p->buf_len > j->first_len || p->buf_len == 0)
			return -KW_EBADMSG;
		if (p->buf_len < j->first_len)
			j->short_seen = true;
	}
	if (p->buf_len > j->cap - j->len)
		return -KW_EMSGSIZE;
	if (p->buf_len)
		memcpy(j->storage + j->len, p->buf, p->buf_len);
	j->len += p->buf_len;
	j->got++;
	if (j->head.chunks <= 1 || j->got == (uint32_t)j->head.chunks) {
		j->done = true;
		j->head.buf = j->len ? j->storage : NULL;
		j->head.buf_len = j->len;
		j->head.chunks = 0;
		return 1;
	}
	if (j->short_seen)  /* a short piece must be the last one */
		return -KW_EBADMSG;
	return 0;
}
