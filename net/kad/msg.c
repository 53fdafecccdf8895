/*
 * Kademlia message codec (include/kw/net/kad_msg.h): uvarint length prefix + the Message
 * protobuf of libp2p/specs kad-dht/README.md. Every variable-size field is a nanopb callback
 * (proto/libp2p/kad.options) that copies straight into the caller's struct kw_kad_msg, so
 * the bounds are ours (Kconfig and kad_msg.h), nothing is allocated and nanopb's own
 * structs stay a few dozen bytes on the stack.
 *
 * Owner: net/kad. Pure functions, no state.
 */
#include <stdint.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/err.h>
#include <kw/net/kad_msg.h>
#include <kw/net/multiaddr.h>
#include <kw/net/varint.h>

#include "libp2p/kad.pb.h"

/* ---- building messages ------------------------------------------------------------ */

void kw_kad_msg_init(struct kw_kad_msg *m, enum kw_kad_msg_type type)
{
	/* The arrays are valid up to their lengths (as after kw_kad_msg_decode): clearing all
	 * 41 KiB of them for every request and answer showed in the simulation's profile. */
	memset(m, 0, offsetof(struct kw_kad_msg, key));
	m->rec_time[0] = '\0';
	m->type = (uint32_t)type;
}

int kw_kad_msg_set_key(struct kw_kad_msg *m, const uint8_t *key, size_t len)
{
	if (len > KW_KAD_KEY_MAX)
		return -KW_ELIMIT;
	if (len)
		memcpy(m->key, key, len);
	m->key_len = (uint16_t)len;
	return 0;
}

int kw_kad_msg_set_record(struct kw_kad_msg *m, const uint8_t *key, size_t key_len,
			  const uint8_t *value, size_t value_len, const char *time)
{
	size_t tl = time ? strlen(time) : 0;

	if (key_len > KW_KAD_KEY_MAX || value_len > KW_KAD_VALUE_MAX || tl >= KW_KAD_TIME_MAX)
		return -KW_ELIMIT;
	if (key_len)
		memcpy(m->rec_key, key, key_len);
	if (value_len)
		memcpy(m->rec_value, value, value_len);
	memcpy(m->rec_time, time ? time : "", tl + 1);
	m->rec_key_len = (uint16_t)key_len;
	m->rec_value_len = (uint16_t)value_len;
	m->has_record = true;
	return 0;
}

int kw_kad_msg_add_peer(struct kw_kad_msg *m, enum kw_kad_peer_list which, const uint8_t *id,
			size_t id_len, enum kw_kad_conn_type conn, struct kw_kad_peer **out)
{
	struct kw_kad_peer *p;

	if (id_len == 0)
		return -KW_EINVAL;
	if (id_len > KW_KAD_PEER_ID_MAX || m->n_peers >= KW_KAD_MAX_PEERS)
		return -KW_ELIMIT;
	p = &m->peers[m->n_peers++];
	memset(p, 0, sizeof(*p));
	p->list = (uint8_t)which;
	p->connection = (uint8_t)conn;
	p->id_len = (uint8_t)id_len;
	memcpy(p->id, id, id_len);
	if (out)
		*out = p;
	return 0;
}

int kw_kad_peer_add_addr(struct kw_kad_peer *p, const uint8_t *addr, size_t len)
{
	struct kw_multiaddr ma;
	int err = kw_maddr_from_bytes(addr, len, &ma, NULL, 0);

	if (err)
		return err;
	return kw_kad_peer_add_maddr(p, &ma);
}

int kw_kad_peer_add_maddr(struct kw_kad_peer *p, const struct kw_multiaddr *ma)
{
	if (ma->len > KW_KAD_ADDR_MAX || p->n_addrs >= KW_KAD_MAX_ADDRS)
		return -KW_ELIMIT;
	memcpy(p->addrs[p->n_addrs], ma->bytes, ma->len);
	p->addr_len[p->n_addrs++] = (uint8_t)ma->len;
	return 0;
}

/* ---- encoding ----------------------------------------------------------------------- */

/* nanopb callbacks take a non-const arg; the encoder only reads through it. */
static void *unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

static bool enc_bytes(pb_ostream_t *st, const pb_field_t *f, const uint8_t *b, size_t n)
{
	if (n == 0)  /* proto3: an empty bytes field is not on the wire */
		return true;
	return pb_encode_tag_for_field(st, f) && pb_encode_string(st, b, n);
}

static bool enc_key(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_msg *m = *arg;

	return enc_bytes(st, f, m->key, m->key_len);
}

static bool enc_rec_key(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_msg *m = *arg;

	return enc_bytes(st, f, m->rec_key, m->rec_key_len);
}

static bool enc_rec_value(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_msg *m = *arg;

	return enc_bytes(st, f, m->rec_value, m->rec_value_len);
}

static bool enc_rec_time(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_msg *m = *arg;

	return enc_bytes(st, f, (const uint8_t *)m->rec_time, strnlen(m->rec_time, KW_KAD_TIME_MAX));
}

static bool enc_peer_id(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_peer *p = *arg;

	return enc_bytes(st, f, p->id, p->id_len);
}

static bool enc_peer_addrs(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_kad_peer *p = *arg;
	unsigned i;

	for (i = 0; i < p->n_addrs; i++)
		if (!pb_encode_tag_for_field(st, f) ||
		    !pb_encode_string(st, p->addrs[i], p->addr_len[i]))
			return false;
	return true;
}

static bool enc_peers(pb_ostream_t *st, const pb_field_t *f, const struct kw_kad_msg *m,
		      enum kw_kad_peer_list which)
{
	unsigned i;

	for (i = 0; i < m->n_peers; i++) {
		const struct kw_kad_peer *p = &m->peers[i];
		kw_libp2p_kad_Message_Peer pp;

		if (p->list != which)
			continue;
		memset(&pp, 0, sizeof(pp));
		pp.id.funcs.encode = enc_peer_id;
		pp.id.arg = unconst(p);
		pp.addrs.funcs.encode = enc_peer_addrs;
		pp.addrs.arg = unconst(p);
		pp.connection = (kw_libp2p_kad_Message_ConnectionType)p->connection;
		if (!pb_encode_tag_for_field(st, f) ||
		    !pb_encode_submessage(st, kw_libp2p_kad_Message_Peer_fields, &pp))
			return false;
	}
	return true;
}

static bool enc_closer(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	return enc_peers(st, f, *arg, KW_KAD_CLOSER);
}

static bool enc_provider(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	return enc_peers(st, f, *arg, KW_KAD_PROVIDER);
}

long kw_kad_msg_encode(const struct kw_kad_msg *m, uint8_t *buf, size_t cap)
{
	kw_libp2p_kad_Message msg;
	pb_ostream_t os;
	size_t body;
	int hdr;

	memset(&msg, 0, sizeof(msg));
	msg.type = (kw_libp2p_kad_Message_MessageType)m->type;
	msg.clusterLevelRaw = m->cluster_level_raw;
	msg.key.funcs.encode = enc_key;
	msg.key.arg = unconst(m);
	msg.has_record = m->has_record;
	msg.record.key.funcs.encode = enc_rec_key;
	msg.record.key.arg = unconst(m);
	msg.record.value.funcs.encode = enc_rec_value;
	msg.record.value.arg = unconst(m);
	msg.record.timeReceived.funcs.encode = enc_rec_time;
	msg.record.timeReceived.arg = unconst(m);
	msg.closerPeers.funcs.encode = enc_closer;
	msg.closerPeers.arg = unconst(m);
	msg.providerPeers.funcs.encode = enc_provider;
	msg.providerPeers.arg = unconst(m);

	if (!pb_get_encoded_size(&body, kw_libp2p_kad_Message_fields, &msg))
		return -KW_EINVAL;
	if (body > CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES)
		return -KW_EMSGSIZE;
	hdr = kw_uvarint_encode(body, buf, cap);
	if (hdr < 0)
		return hdr;
	if (cap - (size_t)hdr < body)
		return -KW_ENOSPC;
	os = pb_ostream_from_buffer(buf + hdr, body);
	if (!pb_encode(&os, kw_libp2p_kad_Message_fields, &msg))
		return -KW_EINVAL;
	return (long)((size_t)hdr + body);
}

/* ---- decoding ----------------------------------------------------------------------- */

struct dec_ctx {
	struct kw_kad_msg *m;
	struct kw_kad_peer *peer;  /* the entry being decoded */
	int err;                   /* why a callback refused (0: nanopb's own decode error) */
};

/* Copies a length-delimited field into dst[0..cap); longer is a limit error. */
static bool dec_copy(pb_istream_t *st, struct dec_ctx *c, uint8_t *dst, size_t cap, size_t *len)
{
	size_t n = st->bytes_left;

	if (n > cap) {
		c->err = -KW_ELIMIT;
		return false;
	}
	if (!pb_read(st, dst, n))
		return false;
	*len = n;
	return true;
}

static bool dec_key(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	size_t n;

	if (!dec_copy(st, c, c->m->key, KW_KAD_KEY_MAX, &n))
		return false;
	c->m->key_len = (uint16_t)n;
	return true;
}

static bool dec_rec_key(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	size_t n;

	if (!dec_copy(st, c, c->m->rec_key, KW_KAD_KEY_MAX, &n))
		return false;
	c->m->rec_key_len = (uint16_t)n;
	return true;
}

static bool dec_rec_value(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	size_t n;

	if (!dec_copy(st, c, c->m->rec_value, KW_KAD_VALUE_MAX, &n))
		return false;
	c->m->rec_value_len = (uint16_t)n;
	return true;
}

static bool dec_rec_time(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	size_t n;

	if (!dec_copy(st, c, (uint8_t *)c->m->rec_time, KW_KAD_TIME_MAX - 1, &n))
		return false;
	c->m->rec_time[n] = '\0';
	if (memchr(c->m->rec_time, '\0', n)) {  /* a string with a NUL is not text */
		c->err = -KW_EBADMSG;
		return false;
	}
	return true;
}

static bool dec_peer_id(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	size_t n;

	if (!dec_copy(st, c, c->peer->id, KW_KAD_PEER_ID_MAX, &n))
		return false;
	c->peer->id_len = (uint8_t)n;
	return true;
}

/*
 * Keeps an address that parses and fits; drops (and counts) one that does not: peers
 * advertise transports we do not implement, which must not cost us the whole answer. A
 * flood of bogus addresses is bounded by the message size.
 */
static bool dec_peer_addr(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct dec_ctx *c = *arg;
	struct kw_kad_peer *p = c->peer;
	uint8_t tmp[KW_KAD_ADDR_MAX];
	struct kw_multiaddr ma;
	size_t n = st->bytes_left;

	if (n > KW_KAD_ADDR_MAX) {
		c->m->addrs_dropped++;
		return pb_read(st, NULL, n);
	}
	if (!pb_read(st, tmp, n))
		return false;
	if (kw_maddr_from_bytes(tmp, n, &ma, NULL, 0) < 0) {
		c->m->addrs_dropped++;
		return true;
	}
	if (p->n_addrs >= KW_KAD_MAX_ADDRS) {
		c->err = -KW_ELIMIT;
		return false;
	}
	memcpy(p->addrs[p->n_addrs], tmp, n);
	p->addr_len[p->n_addrs++] = (uint8_t)n;
	return true;
}

static bool dec_peer(pb_istream_t *st, struct dec_ctx *c, enum kw_kad_peer_list which)
{
	kw_libp2p_kad_Message_Peer pp;
	struct kw_kad_peer *p;

	if (c->m->n_peers >= KW_KAD_MAX_PEERS) {
		c->err = -KW_ELIMIT;
		return false;
	}
	p = &c->m->peers[c->m->n_peers];
	memset(p, 0, sizeof(*p));
	memset(&pp, 0, sizeof(pp));
	c->peer = p;
	pp.id.funcs.decode = dec_peer_id;
	pp.id.arg = c;
	pp.addrs.funcs.decode = dec_peer_addr;
	pp.addrs.arg = c;
	if (!pb_decode(st, kw_libp2p_kad_Message_Peer_fields, &pp))
		return false;
	p->list = (uint8_t)which;
	/* Unknown connection types are kept (clamped to a byte); callers treat them as 0. */
	p->connection = (uint32_t)pp.connection > UINT8_MAX ? UINT8_MAX : (uint8_t)pp.connection;
	c->m->n_peers++;
	return true;
}

static bool dec_closer(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	return dec_peer(st, *arg, KW_KAD_CLOSER);
}

static bool dec_provider(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	return dec_peer(st, *arg, KW_KAD_PROVIDER);
}

long kw_kad_msg_decode(const uint8_t *buf, size_t len, struct kw_kad_msg *out)
{
	kw_libp2p_kad_Message msg;
	struct dec_ctx c = { .m = out };
	pb_istream_t is;
	uint64_t body;
	int hdr;

	hdr = kw_uvarint_decode(buf, len, &body);
	if (hdr < 0)
		return hdr;  /* -KW_EAGAIN (prefix incomplete) or -KW_EBADMSG */
	if (body > CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES)
		return -KW_EMSGSIZE;
	if (len - (size_t)hdr < body)
		return -KW_EAGAIN;

	memset(out, 0, offsetof(struct kw_kad_msg, key));  /* arrays are filled up to their lengths */
	out->rec_time[0] = '\0';
	memset(&msg, 0, sizeof(msg));
	msg.key.funcs.decode = dec_key;
	msg.key.arg = &c;
	msg.record.key.funcs.decode = dec_rec_key;
	msg.record.key.arg = &c;
	msg.record.value.funcs.decode = dec_rec_value;
	msg.record.value.arg = &c;
	msg.record.timeReceived.funcs.decode = dec_rec_time;
	msg.record.timeReceived.arg = &c;
	msg.closerPeers.funcs.decode = dec_closer;
	msg.closerPeers.arg = &c;
	msg.providerPeers.funcs.decode = dec_provider;
	msg.providerPeers.arg = &c;
	is = pb_istream_from_buffer(buf + hdr, (size_t)body);
	if (!pb_decode(&is, kw_libp2p_kad_Message_fields, &msg))
		return c.err ? c.err : -KW_EBADMSG;
	out->type = (uint32_t)msg.type;
	out->cluster_level_raw = msg.clusterLevelRaw;
	out->has_record = msg.has_record;
	return (long)((size_t)hdr + (size_t)body);
}
