/*
 * AveragingData (hivemind @ 4bd43b7 hivemind/proto/averaging.proto) through nanopb. The
 * tensor_part field is a callback both ways: decoding points kw_avg_data.part into the
 * caller's input (zero copy, as ml/compress/tensor_msg.c does for Tensor.buffer); encoding
 * writes the Tensor straight into the output buffer, so a 512 KiB part is copied once.
 */
#include <math.h>
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

/* ---- JoinRequest ------------------------------------------------------------------------ */

int kw_avg_join_encode(const struct kw_avg_join_msg *j, uint8_t *out, size_t cap, size_t *out_len)
{
	kw_hivemind_JoinRequest m;
	pb_ostream_t s;
	size_t kl;

	if (!j || !out_len || (!out && cap) || j->schema_hash_len > sizeof(m.schema_hash.bytes) ||
	    j->gather_len > sizeof(m.gather.bytes))
		return -KW_EINVAL;
	kl = strnlen(j->group_key, sizeof(j->group_key));
	if (kl >= sizeof(m.group_key))
		return -KW_EINVAL;
	memset(&m, 0, sizeof(m));
	m.schema_hash.size = (pb_size_t)j->schema_hash_len;
	memcpy(m.schema_hash.bytes, j->schema_hash, j->schema_hash_len);
	m.expiration = j->expiration;
	m.gather.size = (pb_size_t)j->gather_len;
	memcpy(m.gather.bytes, j->gather, j->gather_len);
	m.client_mode = j->client_mode;
	memcpy(m.group_key, j->group_key, kl);
	s = pb_ostream_from_buffer(out, cap);
	if (!pb_encode(&s, kw_hivemind_JoinRequest_fields, &m))
		return -KW_ENOSPC;
	*out_len = s.bytes_written;
	return 0;
}

int kw_avg_join_decode(struct kw_avg_join_msg *j, const uint8_t *buf, size_t len)
{
	kw_hivemind_JoinRequest m;
	pb_istream_t s;

	if (!j || (!buf && len))
		return -KW_EINVAL;
	memset(&m, 0, sizeof(m));
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, kw_hivemind_JoinRequest_fields, &m)) {
		const char *e = PB_GET_ERROR(&s);

		return strcmp(e, "bytes overflow") == 0 || strcmp(e, "string overflow") == 0 ?
			-KW_EMSGSIZE : -KW_EBADMSG;
	}
	memset(j, 0, sizeof(*j));
	j->schema_hash_len = m.schema_hash.size;
	memcpy(j->schema_hash, m.schema_hash.bytes, m.schema_hash.size);
	j->expiration = m.expiration;
	j->gather_len = m.gather.size;
	memcpy(j->gather, m.gather.bytes, m.gather.size);
	j->client_mode = m.client_mode;
	memcpy(j->group_key, m.group_key, sizeof(j->group_key) - 1);
	return 0;
}

/* ---- gather metadata: msgpack [bandwidth or nil, mode, bin(msgpack(user data))] -------- */

int kw_avg_gather_encode(double bandwidth, enum kw_avg_mode mode, const uint8_t *user,
			 size_t user_len, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t n = 0;

	if (!out || !out_len || mode > KW_AVG_AUX || user_len > 0xffff || (!user && user_len))
		return -KW_EINVAL;
	if (cap < 1 + 9 + 1 + 3 + user_len)
		return -KW_ENOSPC;
	out[n++] = 0x93;
	if (bandwidth < 0) {
		out[n++] = 0xc0;   /* None */
	} else {
		uint64_t b;

		if (!isfinite(bandwidth))
			return -KW_EINVAL;
		memcpy(&b, &bandwidth, 8);
		out[n++] = 0xcb;   /* float 64, big-endian */
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)(b >> (8 * i));
	}
	out[n++] = (uint8_t)mode;   /* positive fixint */
	if (user_len <= 0xff) {
		out[n++] = 0xc4;
		out[n++] = (uint8_t)user_len;
	} else {
		out[n++] = 0xc5;
		out[n++] = (uint8_t)(user_len >> 8);
		out[n++] = (uint8_t)user_len;
	}
	if (user_len)   /* user may be NULL then */
		memcpy(out + n, user, user_len);
	*out_len = n + user_len;
	return 0;
}

int kw_avg_gather_decode(const uint8_t *buf, size_t len, double *bandwidth,
			 enum kw_avg_mode *mode, const uint8_t **user, size_t *user_len)
{
	size_t n = 0, ul;

	if (!buf || !bandwidth || !mode || !user || !user_len)
		return -KW_EINVAL;
	if (len < 1 || buf[n++] != 0x93 || n >= len)
		return -KW_EBADMSG;
	if (buf[n] == 0xc0) {
		*bandwidth = KW_AVG_BW_NONE;
		n++;
	} else if (buf[n] == 0xcb || buf[n] == 0xca) {
		size_t w = buf[n] == 0xcb ? 8 : 4;
		uint64_t b = 0;

		if (len - n - 1 < w)
			return -KW_EBADMSG;
		for (size_t i = 0; i < w; i++)
			b = b << 8 | buf[n + 1 + i];
		if (w == 8) {
			memcpy(bandwidth, &b, 8);
		} else {
			uint32_t b32 = (uint32_t)b;
			float f;

			memcpy(&f, &b32, 4);
			*bandwidth = f;
		}
		n += 1 + w;
		if (!isfinite(*bandwidth) || *bandwidth < 0)
			return -KW_EBADMSG;
	} else if (buf[n] <= 0x7f) {
		*bandwidth = buf[n++];   /* an int bandwidth */
	} else {
		return -KW_EBADMSG;
	}
	if (n >= len || buf[n] > KW_AVG_AUX)
		return -KW_EBADMSG;
	*mode = (enum kw_avg_mode)buf[n++];
	if (n >= len)
		return -KW_EBADMSG;
	if (buf[n] == 0xc4 && len - n >= 2) {
		ul = buf[n + 1];
		n += 2;
	} else if (buf[n] == 0xc5 && len - n >= 3) {
		ul = (size_t)buf[n + 1] << 8 | buf[n + 2];
		n += 3;
	} else {
		return -KW_EBADMSG;
	}
	if (len - n != ul)
		return len - n < ul ? -KW_EBADMSG : -KW_EMSGSIZE;
	*user = buf + n;
	*user_len = ul;
	return 0;
}

/* ---- MessageFromLeader ------------------------------------------------------------------- */

struct list_view {                  /* one repeated bytes field */
	struct kw_avg_bytes *items;
	unsigned *n;
	size_t max_len;
	const uint8_t *in;             /* decode: the input the views must lie in */
	size_t in_len;
	int err;
};

static bool enc_list(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
	const struct list_view *v = *arg;

	for (unsigned i = 0; i < *v->n; i++)
		if (!pb_encode_tag_for_field(s, f) ||
		    !pb_encode_string(s, v->items[i].p, v->items[i].len))
			return false;
	return true;
}

static bool dec_list(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct list_view *v = *arg;
	const uint8_t *p = (const uint8_t *)s->state;
	uintptr_t pu = (uintptr_t)p, in = (uintptr_t)v->in;

	(void)f;
	/* a varint or fixed-width field 4/5 arrives over nanopb's stack copy: malformed */
	if (pu < in || s->bytes_left > v->in_len || pu - in > v->in_len - s->bytes_left) {
		v->err = -KW_EBADMSG;
		return false;
	}
	if (*v->n >= KW_AVG_GROUP_MAX || s->bytes_left > v->max_len) {
		v->err = -KW_EMSGSIZE;
		return false;
	}
	v->items[*v->n].p = s->bytes_left ? p : NULL;
	v->items[*v->n].len = s->bytes_left;
	(*v->n)++;
	return pb_read(s, NULL, s->bytes_left);
}

int kw_avg_leader_encode(const struct kw_avg_leader_msg *m, uint8_t *out, size_t cap,
			 size_t *out_len)
{
	kw_hivemind_MessageFromLeader pm;
	struct list_view pv, gv;
	pb_ostream_t s;

	if (!m || !out_len || (!out && cap) || m->group_id_len > sizeof(pm.group_id.bytes) ||
	    m->suggested_len > sizeof(pm.suggested_leader.bytes) ||
	    m->n_peers > KW_AVG_GROUP_MAX || m->n_gathered > KW_AVG_GROUP_MAX)
		return -KW_EINVAL;
	for (unsigned i = 0; i < m->n_peers; i++)
		if (m->peer[i].len > KW_AVG_PEER_ID_MAX || (!m->peer[i].p && m->peer[i].len))
			return -KW_EINVAL;
	for (unsigned i = 0; i < m->n_gathered; i++)
		if (m->gathered[i].len > KW_AVG_GATHER_MAX ||
		    (!m->gathered[i].p && m->gathered[i].len))
			return -KW_EINVAL;
	memset(&pm, 0, sizeof(pm));
	pm.code = (kw_hivemind_MessageCode)m->code;
	pm.group_id.size = (pb_size_t)m->group_id_len;
	memcpy(pm.group_id.bytes, m->group_id, m->group_id_len);
	pm.suggested_leader.size = (pb_size_t)m->suggested_len;
	memcpy(pm.suggested_leader.bytes, m->suggested_leader, m->suggested_len);
	pv = (struct list_view){ .items = (struct kw_avg_bytes *)m->peer,
				 .n = (unsigned *)&m->n_peers };
	gv = (struct list_view){ .items = (struct kw_avg_bytes *)m->gathered,
				 .n = (unsigned *)&m->n_gathered };
	pm.ordered_peer_ids.funcs.encode = enc_list;
	pm.ordered_peer_ids.arg = &pv;
	pm.gathered.funcs.encode = enc_list;
	pm.gathered.arg = &gv;
	s = pb_ostream_from_buffer(out, cap);
	if (!pb_encode(&s, kw_hivemind_MessageFromLeader_fields, &pm))
		return -KW_ENOSPC;
	*out_len = s.bytes_written;
	return 0;
}

int kw_avg_leader_decode(struct kw_avg_leader_msg *m, const uint8_t *buf, size_t len)
{
	kw_hivemind_MessageFromLeader pm;
	struct list_view pv, gv;
	pb_istream_t s;

	if (!m || (!buf && len))
		return -KW_EINVAL;
	memset(m, 0, sizeof(*m));
	memset(&pm, 0, sizeof(pm));
	pv = (struct list_view){ .items = m->peer, .n = &m->n_peers,
				 .max_len = KW_AVG_PEER_ID_MAX, .in = buf, .in_len = len };
	gv = (struct list_view){ .items = m->gathered, .n = &m->n_gathered,
				 .max_len = KW_AVG_GATHER_MAX, .in = buf, .in_len = len };
	pm.ordered_peer_ids.funcs.decode = dec_list;
	pm.ordered_peer_ids.arg = &pv;
	pm.gathered.funcs.decode = dec_list;
	pm.gathered.arg = &gv;
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, kw_hivemind_MessageFromLeader_fields, &pm)) {
		const char *e = PB_GET_ERROR(&s);
		int err = pv.err ? pv.err : gv.err;

		memset(m, 0, sizeof(*m));
		if (err)
			return err;
		return strcmp(e, "bytes overflow") == 0 ? -KW_EMSGSIZE : -KW_EBADMSG;
	}
	m->code = (int32_t)pm.code;
	m->group_id_len = pm.group_id.size;
	memcpy(m->group_id, pm.group_id.bytes, pm.group_id.size);
	m->suggested_len = pm.suggested_leader.size;
	memcpy(m->suggested_leader, pm.suggested_leader.bytes, pm.suggested_leader.size);
	return 0;
}

int kw_avg_group_from_leader(const struct kw_avg_leader_msg *m, const uint8_t *self,
			     size_t self_len, unsigned max_peers, struct kw_avg_group *g)
{
	unsigned found = 0, reducers = 0;

	if (!m || !self || !g)
		return -KW_EINVAL;
	if (m->code != KW_AVG_BEGIN_ALLREDUCE || !m->group_id_len || !m->n_peers ||
	    m->n_peers != m->n_gathered)
		return -KW_EPROTO;
	if (m->n_peers > max_peers || m->n_peers > KW_AVG_GROUP_MAX)
		return -KW_ERANGE;
	memset(g, 0, sizeof(*g));
	memcpy(g->group_id, m->group_id, m->group_id_len);
	g->group_id_len = m->group_id_len;
	g->n = m->n_peers;
	for (unsigned i = 0; i < m->n_peers; i++) {
		const uint8_t *u;
		size_t ul;

		if (!m->peer[i].len)
			return -KW_EPROTO;
		for (unsigned j = 0; j < i; j++)
			if (m->peer[j].len == m->peer[i].len &&
			    !memcmp(m->peer[j].p, m->peer[i].p, m->peer[i].len))
				return -KW_EPROTO;   /* hivemind builds peer_id -> index maps */
		if (m->peer[i].len == self_len && !memcmp(m->peer[i].p, self, self_len)) {
			g->self = i;
			found++;
		}
		if (kw_avg_gather_decode(m->gathered[i].p, m->gathered[i].len, &g->bandwidth[i],
					 &g->mode[i], &u, &ul) < 0)
			return -KW_EPROTO;
		if (g->mode[i] != KW_AVG_CLIENT)
			reducers++;
	}
	if (found != 1 || !reducers)
		return -KW_EPROTO;
	return 0;
}
