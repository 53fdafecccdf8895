/*
 * identify and identify push (kw/net/identify.h). One pooled state per identify stream holds
 * the message being written or read (bounded by KW_IDENTIFY_MSG_MAX); the nanopb decode
 * scratch is shared (the loop is single-threaded, decode runs to completion).
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/version.h>
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#include <kw/net/varint.h>

#include "libp2p/identify.pb.h"

#define AGENT_VERSION "kwaainet-edge/" KW_VERSION_STRING
#define PROTOCOL_VERSION "ipfs/0.1.0"
#define MSG_BUF (KW_IDENTIFY_MSG_MAX + KW_UVARINT_MAX_BYTES)

enum id_role { ROLE_ANSWER, ROLE_ASK, ROLE_PUSHED, ROLE_PUSH };

struct id_stream {
	struct kw_identify *id;
	struct kw_stream *s;
	enum id_role role;
	uint32_t len, off;
	uint8_t buf[MSG_BUF];
};

struct kw_identify {
	struct kw_swarm *sw;
	struct kw_pool streams;
	struct kw_conn_watcher watcher;
	kw_libp2p_Identify scratch;
	struct kw_pubkey pk;  /* decode scratch for the remote's key */
	int slot;             /* our extension slot: a struct kw_identify_remote per connection */
	/* push: gen counts changes of our info; a connection whose push_gen differs has not
	 * seen the latest. One timer coalesces bursts of changes into one push per peer. */
	uint32_t gen;
	struct kw_timer push_timer;
	struct kw_identify_observer *observers;
	struct kw_multiaddr ma;  /* listen address check scratch */
	/* kw_identify_set_announce: sent instead of the swarm's listen addresses when set */
	uint8_t n_announce;
	uint8_t announce_len[KW_IDENTIFY_ANNOUNCE_MAX];
	uint8_t announce[KW_IDENTIFY_ANNOUNCE_MAX][KW_MADDR_BIN_MAX];
};

static struct kw_identify_remote *remote_of(const struct kw_identify *id,
					    const struct kw_conn *c)
{
	return (struct kw_identify_remote *)kw_conn_ext(c, id->slot);
}

const struct kw_identify_remote *kw_identify_remote(const struct kw_identify *id,
						    const struct kw_conn *c)
{
	return id ? remote_of(id, c) : NULL;
}

const char *kw_identify_remote_protocol(const struct kw_identify *id, const struct kw_conn *c,
					size_t i)
{
	const struct kw_identify_remote *r = kw_identify_remote(id, c);
	const char *p;
	size_t k;

	if (!r || i >= r->n_protocols)
		return NULL;
	p = r->protos;
	for (k = 0; k < i; k++)
		p += strlen(p) + 1;
	return p;
}

bool kw_identify_remote_has(const struct kw_identify *id, const struct kw_conn *c,
			    const char *proto)
{
	const char *p;
	size_t i;

	for (i = 0; (p = kw_identify_remote_protocol(id, c, i)) != NULL; i++)
		if (!strcmp(p, proto))
			return true;
	return false;
}

void kw_identify_add_observer(struct kw_identify *id, struct kw_identify_observer *o)
{
	struct kw_identify_observer **pp = &id->observers;

	while (*pp)
		pp = &(*pp)->next;
	o->next = NULL;
	*pp = o;
}

static void release(struct id_stream *st)
{
	struct kw_identify *id = st->id;

	st->s = NULL;
	kw_pool_free(&id->streams, st);
}

/* ---- encode ---------------------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

long kw_identify_encode(struct kw_identify *id, struct kw_conn *c, uint8_t *buf, size_t cap)
{
	struct kw_swarm *sw = id->sw;
	kw_libp2p_Identify *m = &id->scratch;
	static const kw_libp2p_Identify zero = kw_libp2p_Identify_init_zero;
	const uint8_t *ra;
	size_t i, n, pklen, body;
	pb_ostream_t os;
	int hdr;

	*m = zero;
	m->has_protocolVersion = true;
	copy_str(m->protocolVersion, sizeof(m->protocolVersion), PROTOCOL_VERSION);
	m->has_agentVersion = true;
	copy_str(m->agentVersion, sizeof(m->agentVersion), AGENT_VERSION);
	if (kw_pubkey_encode(&kw_swarm_key(sw)->pub, m->publicKey.bytes, sizeof(m->publicKey.bytes),
			     &pklen) < 0)
		return -KW_ENOSPC;
	m->publicKey.size = (pb_size_t)pklen;
	m->has_publicKey = true;
	for (i = 0; i < id->n_announce && m->listenAddrs_count < KW_ARRAY_SIZE(m->listenAddrs); i++) {
		memcpy(m->listenAddrs[m->listenAddrs_count].bytes, id->announce[i], id->announce_len[i]);
		m->listenAddrs[m->listenAddrs_count++].size = id->announce_len[i];
	}
	n = id->n_announce ? 0 : kw_swarm_listen_count(sw);
	for (i = 0; i < n && m->listenAddrs_count < KW_ARRAY_SIZE(m->listenAddrs); i++) {
		size_t l;

		if (kw_swarm_listen_addr_bin(sw, i, m->listenAddrs[m->listenAddrs_count].bytes,
					     sizeof(m->listenAddrs[0].bytes), &l) == 0) {
			m->listenAddrs[m->listenAddrs_count].size = (pb_size_t)l;
			m->listenAddrs_count++;
		}
	}
	if (c && kw_conn_remote_addr(c, &ra, &n) == 0 && n <= sizeof(m->observedAddr.bytes)) {
		memcpy(m->observedAddr.bytes, ra, n);
		m->observedAddr.size = (pb_size_t)n;
		m->has_observedAddr = true;
	}
	n = kw_swarm_protocol_count(sw);
	for (i = 0; i < n && m->protocols_count < KW_ARRAY_SIZE(m->protocols); i++)
		copy_str(m->protocols[m->protocols_count++], sizeof(m->protocols[0]),
			 kw_swarm_protocol(sw, i));

	if (!pb_get_encoded_size(&body, kw_libp2p_Identify_fields, m))
		return -KW_EINVAL;
	hdr = kw_uvarint_encode(body, buf, cap);
	if (hdr < 0 || (size_t)hdr + body > cap)
		return -KW_ENOSPC;
	os = pb_ostream_from_buffer(buf + hdr, cap - (size_t)hdr);
	if (!pb_encode(&os, kw_libp2p_Identify_fields, m))
		return -KW_ENOSPC;
	return (long)(hdr + os.bytes_written);
}

/* ---- decode ---------------------------------------------------------------------------- */

int kw_identify_decode(struct kw_identify *id, const uint8_t *buf, size_t len,
		       const struct kw_peer_id *expect_peer, bool push, struct kw_identify_remote *out)
{
	kw_libp2p_Identify *m = &id->scratch;
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	size_t i;

	if (len > KW_IDENTIFY_MSG_MAX)
		return -KW_EBADMSG;
	if (!pb_decode(&is, kw_libp2p_Identify_fields, m))
		return -KW_EBADMSG;
	if (m->has_publicKey) {
		struct kw_pubkey *k = &id->pk;

		if (kw_pubkey_decode(m->publicKey.bytes, m->publicKey.size, k) < 0)
			return -KW_EBADMSG;
		if (expect_peer && !kw_peer_id_matches_pubkey(expect_peer, k))
			return -KW_EPEERID;
	} else if (!push) {
		return -KW_EBADMSG;  /* js requires it too: the answer must name its key */
	}
	if (m->has_agentVersion || !push)
		copy_str(out->agent, sizeof(out->agent), m->has_agentVersion ? m->agentVersion : "");
	if (m->has_protocolVersion || !push)
		copy_str(out->protocol_version, sizeof(out->protocol_version),
			 m->has_protocolVersion ? m->protocolVersion : "");
	if (m->protocols_count || !push) {
		out->n_protocols = 0;
		out->protos_len = 0;
		for (i = 0; i < m->protocols_count; i++) {
			size_t l = strlen(m->protocols[i]);

			if (l == 0)
				continue;
			if (out->protos_len + l + 1 > sizeof(out->protos))
				break;  /* keep what fits; the rest is logged by the caller */
			memcpy(out->protos + out->protos_len, m->protocols[i], l + 1);
			out->protos_len = (uint16_t)(out->protos_len + l + 1);
			out->n_protocols++;
		}
	}
	if (m->listenAddrs_count || !push) {
		out->n_listen = (uint8_t)m->listenAddrs_count;
		out->n_addrs = 0;
		for (i = 0; i < m->listenAddrs_count && out->n_addrs < KW_IDENTIFY_LISTEN_KEEP; i++) {
			size_t l = m->listenAddrs[i].size;

			if (l == 0 || l > KW_IDENTIFY_ADDR_MAX ||
			    kw_maddr_from_bytes(m->listenAddrs[i].bytes, l, &id->ma, NULL, 0) < 0)
				continue;
			memcpy(out->addrs[out->n_addrs], m->listenAddrs[i].bytes, l);
			out->addr_len[out->n_addrs++] = (uint8_t)l;
		}
	}
	if (m->has_observedAddr || !push) {
		size_t l = m->has_observedAddr ? m->observedAddr.size : 0;

		out->observed_len = 0;
		if (l > 0 && l <= KW_IDENTIFY_ADDR_MAX &&
		    kw_maddr_from_bytes(m->observedAddr.bytes, l, &id->ma, NULL, 0) == 0) {
			memcpy(out->observed, m->observedAddr.bytes, l);
			out->observed_len = (uint8_t)l;
		}
	}
	out->have = true;
	return 0;
}

/* ---- streams --------------------------------------------------------------------------- */

static void flush(struct id_stream *st)
{
	while (st->off < st->len) {
		long n = kw_stream_write(st->s, st->buf + st->off, st->len - st->off);

		if (n < 0) {
			kw_stream_reset(st->s);
			return;
		}
		if (n == 0)
			return;  /* on_writable continues */
		st->off += (uint32_t)n;
	}
	kw_stream_close_write(st->s);
	st->len = 0;
	st->off = 0;
}

static size_t on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct id_stream *st = (struct id_stream *)s->user;

	if (st->role == ROLE_ANSWER || st->role == ROLE_PUSH)
		return len;  /* the asker / push receiver sends nothing; ignore anything it does */
	if (len > sizeof(st->buf) - st->len) {
		KW_LOG_WRN(identify, "%s sent more than %u identify bytes; resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(s)), KW_IDENTIFY_MSG_MAX);
		kw_stream_reset(s);
		return len;
	}
	memcpy(st->buf + st->len, data, len);
	st->len += (uint32_t)len;
	return len;
}

static int apply(struct id_stream *st)
{
	struct kw_conn *c = kw_stream_conn(st->s);
	size_t off = 0;
	int ret = -KW_EBADMSG, msgs = 0;

	/* js may send several messages and merges them; so do we (push semantics after the first). */
	while (off < st->len) {
		uint64_t l;
		int h = kw_uvarint_decode(st->buf + off, st->len - off, &l);

		if (h < 0 || l > st->len - off - (size_t)h)
			return -KW_EBADMSG;
		ret = kw_identify_decode(st->id, st->buf + off + h, (size_t)l, kw_conn_peer_id(c),
					 st->role == ROLE_PUSHED || msgs > 0, remote_of(st->id, c));
		if (ret < 0)
			return ret;
		off += (size_t)h + (size_t)l;
		msgs++;
	}
	return ret;
}

static void push_due(struct kw_identify *id, struct kw_conn *c);

/* A peer that speaks a protocol an upper layer asked for (kw_swarm_protect_protocol) keeps
 * its connection slot under inbound load. */
static void protect_if_useful(struct kw_identify *id, struct kw_conn *c)
{
	const char *p;
	size_t i;

	for (i = 0; (p = kw_identify_remote_protocol(id, c, i)) != NULL; i++)
		if (kw_swarm_protocol_protected(kw_conn_swarm(c), p)) {
			kw_conn_protect(c);
			return;
		}
}

static void on_eof(struct kw_stream *s)
{
	struct id_stream *st = (struct id_stream *)s->user;
	int ret;

	if (st->role == ROLE_ANSWER || st->role == ROLE_PUSH)
		return;
	ret = apply(st);
	if (ret < 0) {
		KW_LOG_WRN(identify, "%s: bad identify%s: %s; resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(s)),
			   st->role == ROLE_PUSHED ? " push" : "", kw_strerror(ret));
		kw_stream_reset(s);
		return;
	}
	KW_LOG_DBG(identify, "%s: %s, %u protocols", kw_conn_peer_short(kw_stream_conn(s)),
		   remote_of(st->id, kw_stream_conn(s))->agent,
		   remote_of(st->id, kw_stream_conn(s))->n_protocols);
	protect_if_useful(st->id, kw_stream_conn(s));
	st->len = 0;
	{
		struct kw_identify_observer *o;

		for (o = st->id->observers; o; o = o->next)
			o->on_identified(st->id, kw_stream_conn(s), st->role == ROLE_PUSHED, o->arg);
	}
	kw_stream_close_write(s);
	/* we may have changed while the remote's answer was on its way */
	if (st->role == ROLE_ASK)
		push_due(st->id, kw_stream_conn(s));
}

static void on_writable(struct kw_stream *s)
{
	struct id_stream *st = (struct id_stream *)s->user;

	if ((st->role == ROLE_ANSWER || st->role == ROLE_PUSH) && st->len)
		flush(st);
}

static void on_close(struct kw_stream *s, int reason)
{
	release((struct id_stream *)s->user);
}

static const struct kw_stream_handler id_handler = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_writable = on_writable,
	.on_close = on_close,
};

static struct id_stream *take(struct kw_identify *id, enum id_role role)
{
	struct id_stream *st = (struct id_stream *)kw_pool_alloc(&id->streams);

	if (st) {
		st->id = id;
		st->role = role;
	}
	return st;
}

static int accept_id(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	struct kw_identify *id = (struct kw_identify *)arg;
	struct id_stream *st = take(id, ROLE_ANSWER);
	long n;

	if (!st)
		return -KW_ELIMIT;
	n = kw_identify_encode(id, kw_stream_conn(s), st->buf, sizeof(st->buf));
	if (n < 0) {
		release(st);
		return (int)n;
	}
	st->s = s;
	st->len = (uint32_t)n;
	s->h = &id_handler;
	s->user = st;
	flush(st);
	return 0;
}

static int accept_push(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	struct kw_identify *id = (struct kw_identify *)arg;
	struct id_stream *st = take(id, ROLE_PUSHED);

	if (!st)
		return -KW_ELIMIT;
	st->s = s;
	s->h = &id_handler;
	s->user = st;
	return 0;
}

static void on_open(struct kw_stream *s, int err, void *user)
{
	struct id_stream *st = (struct id_stream *)user;

	if (err < 0) {
		KW_LOG_DBG(identify, "identify stream failed: %s", kw_strerror(err));
		release(st);
		return;
	}
	st->s = s;
}

int kw_identify_request(struct kw_identify *id, struct kw_conn *c)
{
	struct id_stream *st = take(id, ROLE_ASK);
	int ret;

	if (!st)
		return -KW_ELIMIT;
	ret = kw_swarm_open_stream(id->sw, c, KW_IDENTIFY_PROTO, &id_handler, st, on_open);
	if (ret < 0)
		release(st);
	return ret;
}

/* ---- push (sending) ----------------------------------------------------------------------- */

static bool remote_takes_push(const struct kw_identify *id, const struct kw_conn *c)
{
	return kw_identify_remote_has(id, c, KW_IDENTIFY_PUSH_PROTO);
}

static void push_opened(struct kw_stream *s, int err, void *user)
{
	struct id_stream *st = (struct id_stream *)user;
	long n;

	if (err < 0) {
		KW_LOG_DBG(identify, "identify push stream failed: %s", kw_strerror(err));
		release(st);
		return;
	}
	st->s = s;
	/* encoded now, so a change made while the stream negotiated is included */
	n = kw_identify_encode(st->id, kw_stream_conn(s), st->buf, sizeof(st->buf));
	if (n < 0) {
		KW_LOG_WRN(identify, "%s: cannot encode identify push: %s",
			   kw_conn_peer_short(kw_stream_conn(s)), kw_strerror((int)n));
		kw_stream_reset(s);
		return;
	}
	st->len = (uint32_t)n;
	st->off = 0;
	flush(st);
}

struct push_round {
	struct kw_identify *id;
	bool retry;
};

static void push_one(struct kw_conn *c, void *arg)
{
	struct push_round *r = (struct push_round *)arg;
	struct kw_identify *id = r->id;
	struct kw_identify_remote *ci = remote_of(id, c);
	struct id_stream *st;
	int ret;

	if (ci->push_gen == id->gen || !ci->have || r->retry)
		return;  /* up to date, or not identified yet (push_due runs once it is) */
	if (!remote_takes_push(id, c)) {
		ci->push_gen = id->gen;
		return;
	}
	st = take(id, ROLE_PUSH);
	if (!st) {
		r->retry = true;  /* identify streams all busy: next round */
		return;
	}
	ret = kw_swarm_open_stream(id->sw, c, KW_IDENTIFY_PUSH_PROTO, &id_handler, st, push_opened);
	if (ret < 0) {
		release(st);
		if (ret == -KW_ELIMIT)
			r->retry = true;
		else
			ci->push_gen = id->gen;  /* closing connection: nothing to tell */
		return;
	}
	ci->push_gen = id->gen;
	KW_LOG_DBG(identify, "%s: pushing our updated identify", kw_conn_peer_short(c));
}

static void on_push_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct push_round r = { .id = (struct kw_identify *)t->arg };

	kw_swarm_foreach_conn(r.id->sw, push_one, &r);
	if (r.retry)
		kw_timer_start(l, t, CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS);
}

/* Arms the coalescing timer if c has not seen our latest info. */
static void push_due(struct kw_identify *id, struct kw_conn *c)
{
	struct kw_loop *l = &kw_swarm_node(id->sw)->loop;

	if (remote_of(id, c)->push_gen != id->gen && !kw_timer_armed(&id->push_timer))
		kw_timer_start(l, &id->push_timer, CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS);
}

static void on_local_change(struct kw_swarm *sw, void *arg)
{
	struct kw_identify *id = (struct kw_identify *)arg;

	id->gen++;
	if (sw && !kw_timer_armed(&id->push_timer))
		kw_timer_start(&kw_swarm_node(sw)->loop, &id->push_timer,
			       CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS);
}

static void on_up(struct kw_swarm *sw, struct kw_conn *c, void *arg)
{
	struct kw_identify *id = (struct kw_identify *)arg;
	int ret;

	/* the remote asks us at connection start and gets what we have now */
	remote_of(id, c)->push_gen = id->gen;
	ret = kw_identify_request(id, c);

	if (ret < 0)
		KW_LOG_WRN(identify, "%s: cannot ask for identify: %s", kw_conn_peer_short(c),
			   kw_strerror(ret));
}

int kw_identify_init(struct kw_swarm *sw, struct kw_identify **out)
{
	struct kw_node *n = kw_swarm_node(sw);
	struct kw_identify *id;
	int ret;

	id = (struct kw_identify *)kw_arena_alloc(&n->arena, sizeof(*id), 16);
	if (!id)
		return -KW_ENOMEM;
	memset(id, 0, sizeof(*id));
	id->sw = sw;
	ret = kw_node_pool_create(n, &id->streams, "identify_stream", sizeof(struct id_stream),
				  (size_t)CONFIG_KW_NET_IDENTIFY_STREAMS);
	if (ret < 0)
		return ret;
	/* nothing to release: the swarm clears the block when the connection goes */
	id->slot = kw_swarm_ext_register(sw, "identify_conn", sizeof(struct kw_identify_remote),
					 NULL, NULL);
	if (id->slot < 0)
		return id->slot;
	ret = kw_swarm_register(sw, KW_IDENTIFY_PROTO, accept_id, id);
	if (ret == 0)
		ret = kw_swarm_register(sw, KW_IDENTIFY_PUSH_PROTO, accept_push, id);
	if (ret < 0)
		return ret;
	kw_timer_init(&id->push_timer, on_push_timer, id);
	id->watcher.on_up = on_up;
	id->watcher.on_local_change = on_local_change;
	id->watcher.arg = id;
	kw_swarm_add_watcher(sw, &id->watcher);
	if (out)
		*out = id;
	return 0;
}

int kw_identify_set_announce(struct kw_identify *id, const struct kw_multiaddr *addrs, size_t n)
{
	if (n > KW_IDENTIFY_ANNOUNCE_MAX)
		return -KW_ENOSPC;
	for (size_t i = 0; i < n; i++)
		if (addrs[i].len > sizeof(id->announce[0]) ||
		    addrs[i].len > sizeof(id->scratch.listenAddrs[0].bytes))
			return -KW_EMSGSIZE;
	for (size_t i = 0; i < n; i++) {
		memcpy(id->announce[i], addrs[i].bytes, addrs[i].len);
		id->announce_len[i] = (uint8_t)addrs[i].len;
	}
	id->n_announce = (uint8_t)n;
	return 0;
}
