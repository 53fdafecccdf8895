/*
 * The unary-call envelope of hivemind RPCs (include/kw/net/hivemind_rpc.h): uvarint length
 * prefix (gogo protobuf's delimited writer, as p2pd's persistent_stream.go uses it) and the
 * p2pd.pb PersistentConnectionRequest of proto/hivemind/p2pd.proto, with the rules the Go
 * daemon and hivemind's control.py enforce (learning-at-home/hivemind
 * `hivemind/p2p/p2p_daemon_bindings/control.py` @ 4bd43b7): 16-byte callId, required fields
 * present even when empty, exactly one arm, exactly one of response/error.
 *
 * Every bytes field is a nanopb callback pointing into the caller's input, so a 4 MiB
 * payload is neither copied nor bounded by a static size.
 *
 * Owner: net/hivemind. Pure functions, no state.
 */
#include <stdint.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/err.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/msgpack.h>
#include <kw/net/varint.h>

#include "hivemind/p2pd.pb.h"

/* ---- building ----------------------------------------------------------------------- */

static struct kw_hm_bytes view(const void *p, size_t len)
{
	struct kw_hm_bytes b = { len ? p : NULL, len };

	return b;
}

void kw_hm_env_call(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
		    const uint8_t *peer, size_t peer_len, const char *proto,
		    const uint8_t *data, size_t data_len)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->call_id, call_id, KW_HM_CALL_ID_LEN);
	e->kind = KW_HM_ENV_CALL;
	e->peer = view(peer, peer_len);
	e->proto = view(proto, proto ? strlen(proto) : 0);
	e->data = view(data, data_len);
}

void kw_hm_env_response(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
			const uint8_t *resp, size_t len)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->call_id, call_id, KW_HM_CALL_ID_LEN);
	e->kind = KW_HM_ENV_RESPONSE;
	e->result = view(resp, len);
}

void kw_hm_env_error(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
		     const char *text, size_t len)
{
	kw_hm_env_response(e, call_id, (const uint8_t *)text, len);
	e->is_error = true;
}

/* ---- encoding ----------------------------------------------------------------------- */

/* nanopb callbacks take a non-const arg; the encoder only reads through it. */
static void *unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

/* Always tag + length + bytes, even for 0 bytes: proto2 required fields must be present,
 * and the oneof arm of an empty response must be present too (hivemind rpc_push). */
static bool enc_view(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_hm_bytes *b = *arg;

	return pb_encode_tag_for_field(st, f) && pb_encode_string(st, b->p, b->len);
}

static bool enc_call_id(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	return pb_encode_tag_for_field(st, f) && pb_encode_string(st, *arg, KW_HM_CALL_ID_LEN);
}

static bool bad_view(const struct kw_hm_bytes *b)
{
	return !b->p && b->len;
}

/* Fills the nanopb struct; -KW_EINVAL when e cannot be encoded. */
static int prepare(const struct kw_hm_envelope *e, kw_hivemind_p2pd_PersistentConnectionRequest *m)
{
	memset(m, 0, sizeof(*m));
	m->callId.funcs.encode = enc_call_id;
	m->callId.arg = unconst(e->call_id);
	switch (e->kind) {
	case KW_HM_ENV_CALL:
		if (bad_view(&e->peer) || bad_view(&e->proto) || bad_view(&e->data) ||
		    !kw_mp_utf8_valid(e->proto.p, e->proto.len))
			return -KW_EINVAL;
		m->has_callUnary = true;
		m->callUnary.peer.funcs.encode = enc_view;
		m->callUnary.peer.arg = unconst(&e->peer);
		m->callUnary.proto.funcs.encode = enc_view;
		m->callUnary.proto.arg = unconst(&e->proto);
		m->callUnary.data.funcs.encode = enc_view;
		m->callUnary.data.arg = unconst(&e->data);
		return 0;
	case KW_HM_ENV_RESPONSE:
		if (bad_view(&e->result) ||
		    (e->is_error && !kw_mp_utf8_valid(e->result.p, e->result.len)))
			return -KW_EINVAL;
		m->has_unaryResponse = true;
		if (e->is_error) {
			m->unaryResponse.error.funcs.encode = enc_view;
			m->unaryResponse.error.arg = unconst(&e->result);
		} else {
			m->unaryResponse.response.funcs.encode = enc_view;
			m->unaryResponse.response.arg = unconst(&e->result);
		}
		return 0;
	case KW_HM_ENV_CANCEL:
		m->has_cancel = true;
		return 0;
	default:
		return -KW_EINVAL;
	}
}

static long body_size(const kw_hivemind_p2pd_PersistentConnectionRequest *m)
{
	size_t body;

	if (!pb_get_encoded_size(&body, kw_hivemind_p2pd_PersistentConnectionRequest_fields, m))
		return -KW_EINVAL;
	if (body > KW_HM_UNARY_MAX)
		return -KW_EMSGSIZE;
	return (long)body;
}

long kw_hm_env_size(const struct kw_hm_envelope *e)
{
	kw_hivemind_p2pd_PersistentConnectionRequest m;
	int err = prepare(e, &m);
	long body;

	if (err)
		return err;
	body = body_size(&m);
	if (body < 0)
		return body;
	return (long)kw_uvarint_size((uint64_t)body) + body;
}

long kw_hm_env_encode(const struct kw_hm_envelope *e, uint8_t *buf, size_t cap)
{
	kw_hivemind_p2pd_PersistentConnectionRequest m;
	pb_ostream_t os;
	int err = prepare(e, &m), hdr;
	long body;

	if (err)
		return err;
	body = body_size(&m);
	if (body < 0)
		return body;
	hdr = kw_uvarint_encode((uint64_t)body, buf, cap);
	if (hdr < 0)
		return hdr;
	if (cap - (size_t)hdr < (size_t)body)
		return -KW_ENOSPC;
	os = pb_ostream_from_buffer(buf + hdr, (size_t)body);
	if (!pb_encode(&os, kw_hivemind_p2pd_PersistentConnectionRequest_fields, &m))
		return -KW_EINVAL;
	return hdr + body;
}

/* ---- decoding ----------------------------------------------------------------------- */

enum {
	SEEN_CALL_ID = 1u << 0,
	SEEN_PEER = 1u << 1,
	SEEN_PROTO = 1u << 2,
	SEEN_DATA = 1u << 3,
	SEEN_RESPONSE = 1u << 4,
	SEEN_ERROR = 1u << 5,
};

struct dec_ctx {
	const uint8_t *in;          /* the envelope bytes: every view must lie inside */
	size_t in_len;
	unsigned seen;
	struct kw_hm_bytes call_id, peer, proto, data, response, error;
};

struct dec_arg {
	struct dec_ctx *c;
	struct kw_hm_bytes *dst;
	unsigned bit;
};

/*
 * Zero copy: for a stream made by pb_istream_from_buffer() nanopb keeps the read position in
 * stream->state (pb_decode.h, buffer streams), so the field's bytes are state[0..bytes_left).
 * A field sent with a non-length-delimited wire type reaches a callback as a stream over
 * nanopb's own stack copy; that lies outside the input and is a malformed envelope.
 */
static bool dec_view(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct dec_arg *a = *arg;
	const uint8_t *p = (const uint8_t *)s->state;
	uintptr_t pu = (uintptr_t)p, in = (uintptr_t)a->c->in;

	if (pu < in || s->bytes_left > a->c->in_len || pu - in > a->c->in_len - s->bytes_left)
		return false;
	*a->dst = view(p, s->bytes_left);
	a->c->seen |= a->bit;
	return pb_read(s, NULL, s->bytes_left);
}

static const char *missing_field(unsigned seen, bool is_call)
{
	if (!(seen & SEEN_CALL_ID))
		return "callId missing";
	if (is_call && !(seen & SEEN_PEER))
		return "callUnary.peer missing";
	if (is_call && !(seen & SEEN_PROTO))
		return "callUnary.proto missing";
	if (is_call && !(seen & SEEN_DATA))
		return "callUnary.data missing";
	return "required field missing";
}

static long refuse(const char **why, long err, const char *text)
{
	if (why)
		*why = text;
	return err;
}

long kw_hm_env_decode(const uint8_t *buf, size_t len, struct kw_hm_envelope *e,
		      const char **why)
{
	kw_hivemind_p2pd_PersistentConnectionRequest m;
	struct dec_ctx c;
	struct dec_arg a_id, a_peer, a_proto, a_data, a_resp, a_err;
	pb_istream_t s;
	uint64_t body;
	int hdr, arms;

	if (why)
		*why = "";
	hdr = kw_uvarint_decode(buf, len, &body);
	if (hdr == -KW_EAGAIN)
		return -KW_EAGAIN;
	if (hdr < 0)
		return refuse(why, -KW_EBADMSG, "bad length prefix");
	if (body > KW_HM_UNARY_MAX)
		return refuse(why, -KW_EMSGSIZE, "envelope larger than KW_NET_HIVEMIND_UNARY_MAX_BYTES");
	if (len - (size_t)hdr < body)
		return -KW_EAGAIN;

	memset(&c, 0, sizeof(c));
	c.in = buf + hdr;
	c.in_len = (size_t)body;
	a_id = (struct dec_arg){ &c, &c.call_id, SEEN_CALL_ID };
	a_peer = (struct dec_arg){ &c, &c.peer, SEEN_PEER };
	a_proto = (struct dec_arg){ &c, &c.proto, SEEN_PROTO };
	a_data = (struct dec_arg){ &c, &c.data, SEEN_DATA };
	a_resp = (struct dec_arg){ &c, &c.response, SEEN_RESPONSE };
	a_err = (struct dec_arg){ &c, &c.error, SEEN_ERROR };
	memset(&m, 0, sizeof(m));
	m.callId.funcs.decode = dec_view;
	m.callId.arg = &a_id;
	m.callUnary.peer.funcs.decode = dec_view;
	m.callUnary.peer.arg = &a_peer;
	m.callUnary.proto.funcs.decode = dec_view;
	m.callUnary.proto.arg = &a_proto;
	m.callUnary.data.funcs.decode = dec_view;
	m.callUnary.data.arg = &a_data;
	m.unaryResponse.response.funcs.decode = dec_view;
	m.unaryResponse.response.arg = &a_resp;
	m.unaryResponse.error.funcs.decode = dec_view;
	m.unaryResponse.error.arg = &a_err;

	s = pb_istream_from_buffer(c.in, c.in_len);
	if (!pb_decode(&s, kw_hivemind_p2pd_PersistentConnectionRequest_fields, &m)) {
		if (strcmp(PB_GET_ERROR(&s), "missing required field") == 0)
			return refuse(why, -KW_EPROTO, missing_field(c.seen, m.has_callUnary ||
								     (c.seen & (SEEN_PEER | SEEN_PROTO | SEEN_DATA))));
		return refuse(why, -KW_EBADMSG, "malformed PersistentConnectionRequest");
	}
	if (c.call_id.len != KW_HM_CALL_ID_LEN)
		return refuse(why, -KW_EPROTO, "callId is not 16 bytes");
	arms = m.has_callUnary + m.has_unaryResponse + m.has_cancel;
	if (arms == 0)
		return refuse(why, -KW_EPROTO, "no callUnary, unaryResponse or cancel");
	if (arms > 1)
		return refuse(why, -KW_EPROTO, "more than one of callUnary, unaryResponse, cancel");

	memset(e, 0, sizeof(*e));
	memcpy(e->call_id, c.call_id.p, KW_HM_CALL_ID_LEN);
	if (m.has_callUnary) {
		if (!kw_mp_utf8_valid(c.proto.p, c.proto.len))
			return refuse(why, -KW_EPROTO, "callUnary.proto is not UTF-8");
		e->kind = KW_HM_ENV_CALL;
		e->peer = c.peer;
		e->proto = c.proto;
		e->data = c.data;
	} else if (m.has_unaryResponse) {
		bool r = c.seen & SEEN_RESPONSE, er = c.seen & SEEN_ERROR;

		if (r == er)
			return refuse(why, -KW_EPROTO, r ? "unaryResponse has both response and error" :
				      "unaryResponse has neither response nor error");
		e->kind = KW_HM_ENV_RESPONSE;
		e->is_error = er;
		e->result = er ? c.error : c.response;
	} else {
		e->kind = KW_HM_ENV_CANCEL;
	}
	return (long)hdr + (long)body;
}

/* ---- error text ------------------------------------------------------------------- */

size_t kw_hm_error_text(const uint8_t *err, size_t len, char *out, size_t cap)
{
	size_t i = 0, n = 0, k;

	if (cap == 0)
		return 0;
	while (i < len) {
		k = err[i] ? kw_mp_utf8_seq(err + i, len - i) : 0;
		if (k == 0) {  /* errors="ignore": drop the byte, go on (and NUL: a C string
				  cannot hold it) */
			i++;
			continue;
		}
		if (n + k >= cap)  /* keep whole characters and room for the NUL */
			break;
		memcpy(out + n, err + i, k);
		n += k;
		i += k;
	}
	out[n] = '\0';
	return n;
}
