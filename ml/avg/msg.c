/*
 * AveragingData (hivemind @ 4bd43b7 hivemind/proto/averaging.proto) through nanopb. The
 * tensor_part field is a callback both ways: decoding points kw_avg_data.part into the
 * caller's input (zero copy, as ml/compress/tensor_msg.c does for Tensor.buffer); encoding
 * writes the Tensor straight into the output buffer, so a 512 KiB part is copied once.
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

#include "hivemind/averaging.pb.h"

static const char *const code_names[] = {
	"NO_CODE", "REQUEST_JOIN", "ACCEPTED", "BEGIN_ALLREDUCE", "PART_FOR_AVERAGING",
	"AVERAGED_PART", "NOT_DECLARED", "NOT_A_LEADER", "BAD_EXPIRATION_TIME",
	"BAD_SCHEMA_HASH", "BAD_GROUP_ID", "DUPLICATE_PEER_ID", "GROUP_IS_FULL",
	"NOT_LOOKING_FOR_GROUP", "PROTOCOL_VIOLATION", "INTERNAL_ERROR", "CANCELLED",
	"GROUP_DISBANDED", "BAD_GROUP_KEY",
};

const char *kw_avg_code_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
		return "UNKNOWN";
	return code_names[code];
}

struct part_view {
	const struct kw_tensor_msg *enc;   /* encode: the part */
	size_t enc_size;
	struct kw_tensor_msg *dec;         /* decode: where the part goes */
	const uint8_t *in;
	size_t in_len;
	int err;
	bool seen;
};

static bool enc_part(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
	const struct part_view *v = *arg;
	size_t n = 0;

	if (!v->enc)
		return true;
	if (!pb_encode_tag_for_field(s, f) || !pb_encode_varint(s, v->enc_size))
		return false;
	if (!s->callback) {   /* sizing stream */
		s->bytes_written += v->enc_size;
		return true;
	}
	/* Only buffer streams are made here (pb_ostream_from_buffer keeps the write position
	 * in state): encode the Tensor in place instead of through a temporary copy. */
	if (s->max_size - s->bytes_written < v->enc_size)
		PB_RETURN_ERROR(s, "stream full");
	if (kw_tensor_msg_encode(v->enc, (uint8_t *)s->state, v->enc_size, &n) || n != v->enc_size)
		PB_RETURN_ERROR(s, "tensor encode");
	s->state = (uint8_t *)s->state + n;
	s->bytes_written += n;
	return true;
}

static int to_pb(const struct kw_avg_data *d, kw_hivemind_AveragingData *m, struct part_view *v)
{
	if (d->group_id_len > sizeof(m->group_id.bytes) || d->peer_id_len > sizeof(m->peer_id.bytes))
		return -KW_EINVAL;
	memset(m, 0, sizeof(*m));
	memset(v, 0, sizeof(*v));
	m->code = (kw_hivemind_MessageCode)d->code;
	m->group_id.size = (pb_size_t)d->group_id_len;
	memcpy(m->group_id.bytes, d->group_id, d->group_id_len);
	m->peer_id.size = (pb_size_t)d->peer_id_len;
	memcpy(m->peer_id.bytes, d->peer_id, d->peer_id_len);
	m->weight = d->weight;
	if (d->has_part) {
		v->enc = &d->part;
		v->enc_size = kw_tensor_msg_encoded_size(&d->part);
		if (!v->enc_size && (d->part.buf_len || d->part.ndim || d->part.dtype[0]))
			return -KW_EINVAL;
	}
	m->tensor_part.funcs.encode = enc_part;
	m->tensor_part.arg = v;
	return 0;
}

size_t kw_avg_data_encoded_size(const struct kw_avg_data *d)
{
	kw_hivemind_AveragingData m;
	struct part_view v;
	size_t sz;

	if (!d || to_pb(d, &m, &v) || !pb_get_encoded_size(&sz, kw_hivemind_AveragingData_fields, &m))
		return 0;
	return sz;
}

int kw_avg_data_encode(const struct kw_avg_data *d, uint8_t *out, size_t cap, size_t *out_len)
{
	kw_hivemind_AveragingData m;
	struct part_view v;
	pb_ostream_t s;
	int err;

	if (!d || !out_len || (!out && cap))
		return -KW_EINVAL;
	if ((err = to_pb(d, &m, &v)))
		return err;
	s = pb_ostream_from_buffer(out, cap);
	if (!pb_encode(&s, kw_hivemind_AveragingData_fields, &m))
		return -KW_ENOSPC;
	*out_len = s.bytes_written;
	return 0;
}

static bool dec_part(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct part_view *v = *arg;
	const uint8_t *p = (const uint8_t *)s->state;
	uintptr_t pu = (uintptr_t)p, in = (uintptr_t)v->in;
	int err;

	(void)f;
	/* a non-length-delimited field 4 arrives over nanopb's stack copy: malformed */
	if (pu < in || s->bytes_left > v->in_len || pu - in > v->in_len - s->bytes_left)
		return false;
	/* a repeated singular submessage: protobuf merges, we refuse (never sent) */
	if (v->seen) {
		v->err = -KW_EBADMSG;
		return false;
	}
	err = kw_tensor_msg_decode(v->dec, p, s->bytes_left);
	if (err) {
		v->err = err;
		return false;
	}
	v->seen = true;
	return pb_read(s, NULL, s->bytes_left);
}

int kw_avg_data_decode(struct kw_avg_data *d, const uint8_t *buf, size_t len)
{
	kw_hivemind_AveragingData m;
	struct part_view v;
	pb_istream_t s;

	if (!d || (!buf && len))
		return -KW_EINVAL;
	memset(&m, 0, sizeof(m));
	memset(&v, 0, sizeof(v));
	memset(d, 0, sizeof(*d));
	v.dec = &d->part;
	v.in = buf;
	v.in_len = len;
	m.tensor_part.funcs.decode = dec_part;
	m.tensor_part.arg = &v;
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, kw_hivemind_AveragingData_fields, &m)) {
		const char *e = PB_GET_ERROR(&s);

		if (v.err)
			return v.err;
		if (strcmp(e, "bytes overflow") == 0)
			return -KW_EMSGSIZE;
		return -KW_EBADMSG;
	}
	d->code = (int32_t)m.code;
	d->group_id_len = m.group_id.size;
	memcpy(d->group_id, m.group_id.bytes, m.group_id.size);
	d->peer_id_len = m.peer_id.size;
	memcpy(d->peer_id, m.peer_id.bytes, m.peer_id.size);
	d->has_part = v.seen;
	d->weight = m.weight;
	return 0;
}
