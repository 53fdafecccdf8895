/*
 * Hivemind's stream framing (include/kw/net/hivemind_rpc.h): marker byte, 8-byte big-endian
 * length, protobuf; marker 0x01 carries a p2pd.pb RPCError (proto/hivemind/p2pd.proto).
 * Constants and behaviour from learning-at-home/hivemind `hivemind/p2p/p2p_daemon.py`
 * @ 4bd43b7: HEADER_LEN = 8, BYTEORDER = "big", MESSAGE_MARKER = b"\x00",
 * ERROR_MARKER = b"\x01", END_OF_STREAM = RPCError().
 *
 * Owner: net/hivemind. Pure functions, no state.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/err.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/msgpack.h>

#include "hivemind/p2pd.pb.h"

int kw_hm_frame_header(const uint8_t *buf, size_t len, uint8_t *marker, uint64_t *payload_len)
{
	uint64_t n = 0;

	if (len < KW_HM_FRAME_HDR)
		return -KW_EAGAIN;
	if (buf[0] != KW_HM_MARK_MESSAGE && buf[0] != KW_HM_MARK_ERROR)
		return -KW_EPROTO;
	for (int i = 1; i < KW_HM_FRAME_HDR; i++)
		n = (n << 8) | buf[i];
	if (n > KW_HM_FRAME_MAX)
		return -KW_EMSGSIZE;
	*marker = buf[0];
	*payload_len = n;
	return 0;
}

struct msg_view {
	const uint8_t *in;
	size_t in_len;
	bool seen;
	struct kw_hm_bytes v;
};

/* Zero copy, as envelope.c's dec_view (stream->state is the read position of a buffer
 * stream; anything outside the input is a mis-typed field). */
static bool dec_message(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct msg_view *m = *arg;
	const uint8_t *p = (const uint8_t *)s->state;
	uintptr_t pu = (uintptr_t)p, in = (uintptr_t)m->in;

	if (pu < in || s->bytes_left > m->in_len || pu - in > m->in_len - s->bytes_left)
		return false;
	m->seen = true;
	m->v.p = s->bytes_left ? p : NULL;
	m->v.len = s->bytes_left;
	return pb_read(s, NULL, s->bytes_left);
}

static long refuse(const char **why, long err, const char *text)
{
	if (why)
		*why = text;
	return err;
}

long kw_hm_frame_decode(const uint8_t *buf, size_t len, struct kw_hm_frame *f,
			const char **why)
{
	uint64_t n;
	uint8_t marker;
	int err;

	if (why)
		*why = "";
	err = kw_hm_frame_header(buf, len, &marker, &n);
	if (err == -KW_EPROTO)
		return refuse(why, err, "unknown frame marker (not 0x00 or 0x01)");
	if (err == -KW_EMSGSIZE)
		return refuse(why, err, "frame larger than KW_NET_HIVEMIND_STREAM_FRAME_MAX_BYTES");
	if (err)
		return err;
	if (len - KW_HM_FRAME_HDR < n)
		return -KW_EAGAIN;
	memset(f, 0, sizeof(*f));
	f->marker = marker;
	f->payload.p = n ? buf + KW_HM_FRAME_HDR : NULL;
	f->payload.len = (size_t)n;
	if (marker == KW_HM_MARK_ERROR) {
		kw_hivemind_p2pd_RPCError e;
		struct msg_view mv = { buf + KW_HM_FRAME_HDR, (size_t)n, false, { NULL, 0 } };
		pb_istream_t s = pb_istream_from_buffer(buf + KW_HM_FRAME_HDR, (size_t)n);

		memset(&e, 0, sizeof(e));
		e.message.funcs.decode = dec_message;
		e.message.arg = &mv;
		if (!pb_decode(&s, kw_hivemind_p2pd_RPCError_fields, &e))
			return refuse(why, -KW_EBADMSG, "malformed RPCError in an error frame");
		f->has_message = mv.seen;
		f->message = mv.v;
	}
	return (long)(KW_HM_FRAME_HDR + n);
}

long kw_hm_frame_encode_header(uint8_t marker, uint64_t payload_len, uint8_t *buf, size_t cap)
{
	if (marker != KW_HM_MARK_MESSAGE && marker != KW_HM_MARK_ERROR)
		return -KW_EINVAL;
	if (payload_len > KW_HM_FRAME_MAX)
		return -KW_EMSGSIZE;
	if (cap < KW_HM_FRAME_HDR)
		return -KW_ENOSPC;
	buf[0] = marker;
	for (int i = 8; i >= 1; i--) {
		buf[i] = (uint8_t)payload_len;
		payload_len >>= 8;
	}
	return KW_HM_FRAME_HDR;
}

long kw_hm_frame_encode_msg(const uint8_t *pb, size_t len, uint8_t *buf, size_t cap)
{
	long h;

	if (!pb && len)
		return -KW_EINVAL;
	h = kw_hm_frame_encode_header(KW_HM_MARK_MESSAGE, len, buf, cap);
	if (h < 0)
		return h;
	if (cap - KW_HM_FRAME_HDR < len)
		return -KW_ENOSPC;
	if (len)
		memcpy(buf + KW_HM_FRAME_HDR, pb, len);
	return (long)(KW_HM_FRAME_HDR + len);
}

static bool enc_message(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_hm_bytes *b = *arg;

	return pb_encode_tag_for_field(st, f) && pb_encode_string(st, b->p, b->len);
}

long kw_hm_frame_encode_error(const char *msg, size_t len, uint8_t *buf, size_t cap)
{
	kw_hivemind_p2pd_RPCError e;
	struct kw_hm_bytes b = { (const uint8_t *)msg, len };
	pb_ostream_t os;
	size_t body;
	long h;

	if (!msg && len)
		return -KW_EINVAL;
	if (msg && !kw_mp_utf8_valid(b.p, len))
		return -KW_EINVAL;
	memset(&e, 0, sizeof(e));
	if (msg) {  /* msg NULL: the empty RPCError, END_OF_STREAM */
		e.message.funcs.encode = enc_message;
		e.message.arg = &b;
	}
	if (!pb_get_encoded_size(&body, kw_hivemind_p2pd_RPCError_fields, &e))
		return -KW_EINVAL;
	h = kw_hm_frame_encode_header(KW_HM_MARK_ERROR, body, buf, cap);
	if (h < 0)
		return h;
	if (cap - KW_HM_FRAME_HDR < body)
		return -KW_ENOSPC;
	os = pb_ostream_from_buffer(buf + KW_HM_FRAME_HDR, body);
	if (!pb_encode(&os, kw_hivemind_p2pd_RPCError_fields, &e))
		return -KW_EINVAL;
	return (long)(KW_HM_FRAME_HDR + body);
}

size_t kw_hm_stream_error_text(const char *handler, const char *peer_b58,
			       const struct kw_hm_frame *f, char *out, size_t cap)
{
	int n;

	if (cap == 0)
		return 0;
	n = snprintf(out, cap, "Failed to call handler `%s` at %s: ", handler ? handler : "",
		     peer_b58 ? peer_b58 : "");
	if (n < 0) {
		out[0] = '\0';
		return 0;
	}
	if ((size_t)n >= cap)  /* the prefix alone filled it; snprintf cut it */
		return cap - 1;
	return (size_t)n + kw_hm_error_text(f->message.p, f->message.len, out + n, cap - (size_t)n);
}
