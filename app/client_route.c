/*
 * Route finding for the Petals client (app/client.h, doc/serve.md "Client and generate"):
 * the servers of a model as their ServerInfo records say, a chain of them covering a block
 * range, and the bans that keep a failed server out of the next chains for a while. Also the
 * request bytes of one rpc_forward. Pure functions on caller-owned structs: the DHT reads and
 * the calls live in app/cmd_generate.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/kad.h>
#include <kw/net/kad_msg.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "serve.h"

void kw_client_route_init(struct kw_client_route *r, double base_s, double max_s)
{
	memset(r, 0, sizeof(*r));
	r->ban_base_s = base_s > 0 ? base_s : 1.0;
	r->ban_max_s = max_s >= r->ban_base_s ? max_s : r->ban_base_s;
}

void kw_client_route_clear(struct kw_client_route *r)
{
	r->n_srv = 0;
	r->dropped = 0;
}

int kw_client_route_add(struct kw_client_route *r, const char *peer,
			const struct kw_hm_server_info *si, uint32_t block, double exp)
{
	struct kw_client_server *s = NULL;

	if (!peer[0] || strlen(peer) >= KW_HM_REC_PEER_MAX)
		return -KW_EINVAL;
	for (uint32_t i = 0; i < r->n_srv && !s; i++)
		if (!strcmp(r->srv[i].peer, peer))
			s = &r->srv[i];
	if (!s) {
		if (r->n_srv == KW_CLIENT_SERVERS_MAX) {
			r->dropped++;
			return -KW_ENOSPC;
		}
		s = &r->srv[r->n_srv++];
		memset(s, 0, sizeof(*s));
		snprintf(s->peer, sizeof(s->peer), "%s", peer);
		s->exp = -INFINITY;
	}
	if (exp <= s->exp)
		return 0;   /* an older announcement: the newest one speaks for the server */
	s->exp = exp;
	s->state = si->state;
	s->throughput = si->throughput;
	if ((si->has & KW_HM_SI_START_BLOCK) && (si->has & KW_HM_SI_END_BLOCK) &&
	    si->start_block < si->end_block && si->end_block <= UINT32_MAX) {
		s->start = (uint32_t)si->start_block;
		s->end = (uint32_t)si->end_block;
	} else {
		s->start = block;
		s->end = block + 1;
	}
	return 0;
}

static struct kw_client_ban *ban_of(const struct kw_client_route *r, const char *peer)
{
	for (uint32_t i = 0; i < r->n_ban; i++)
		if (!strcmp(r->ban[i].peer, peer))
			return (struct kw_client_ban *)&r->ban[i];
	return NULL;
}

bool kw_client_banned(const struct kw_client_route *r, const char *peer, double now)
{
	const struct kw_client_ban *b = ban_of(r, peer);

	return b && now < b->until;
}

void kw_client_ban(struct kw_client_route *r, const char *peer, double now)
{
	struct kw_client_ban *b = ban_of(r, peer);
	double len;

	if (!b) {
		uint32_t i = r->n_ban;

		if (i == KW_CLIENT_BANS_MAX) {
			/* full: the ban that ends first makes room */
			i = 0;
			for (uint32_t j = 1; j < r->n_ban; j++)
				if (r->ban[j].until < r->ban[i].until)
					i = j;
		} else {
			r->n_ban++;
		}
		b = &r->ban[i];
		memset(b, 0, sizeof(*b));
		snprintf(b->peer, sizeof(b->peer), "%s", peer);
	}
	b->fails++;
	len = r->ban_base_s * ldexp(1.0, (int)(b->fails > 30 ? 30 : b->fails) - 1);
	b->until = now + (len > r->ban_max_s ? r->ban_max_s : len);
}

void kw_client_unban(struct kw_client_route *r, const char *peer)
{
	struct kw_client_ban *b = ban_of(r, peer);

	if (b) {
		*b = r->ban[r->n_ban - 1];
		r->n_ban--;
	}
}

/* Is a better than b as the next hop from a position (both cover it)? */
static bool better(const struct kw_client_server *a, const struct kw_client_server *b,
		   uint32_t end)
{
	uint32_t ea = a->end < end ? a->end : end, eb = b->end < end ? b->end : end;

	if (ea != eb)
		return ea > eb;
	if (a->throughput != b->throughput)
		return a->throughput > b->throughput;
	return strcmp(a->peer, b->peer) < 0;
}

int kw_client_route_plan(const struct kw_client_route *r, uint32_t start, uint32_t end,
			 double now, struct kw_client_span *out, uint32_t cap, uint32_t *n,
			 uint32_t *gap)
{
	uint32_t pos = start;

	*n = 0;
	if (start >= end)
		return -KW_EINVAL;
	while (pos < end) {
		const struct kw_client_server *best = NULL;
		uint32_t bi = 0;

		for (uint32_t i = 0; i < r->n_srv; i++) {
			const struct kw_client_server *s = &r->srv[i];

			if (s->state != KW_HM_STATE_ONLINE || s->start > pos || s->end <= pos ||
			    kw_client_banned(r, s->peer, now))
				continue;
			if (!best || better(s, best, end)) {
				best = s;
				bi = i;
			}
		}
		if (!best) {
			if (gap)
				*gap = pos;
			return -KW_ENOENT;
		}
		if (*n == cap)
			return -KW_ENOSPC;
		out[*n].srv = bi;
		out[*n].start = pos;
		out[*n].end = best->end < end ? best->end : end;
		pos = out[*n].end;
		(*n)++;
	}
	return 0;
}

void kw_client_prefix_of(const char *dir, char *out, size_t cap)
{
	size_t len = strlen(dir);
	const char *b;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	b = dir + len;
	while (b > dir && b[-1] != '/')
		b--;
	snprintf(out, cap, "%.*s", (int)(dir + len - b), b);
	for (char *p = out; *p; p++)
		if (*p == '.' || *p == ' ')
			*p = '-';
}

int kw_client_chain_uid(const char *prefix, uint32_t start, uint32_t end, char *out,
			size_t cap)
{
	size_t len = 0;

	if (!cap)
		return -KW_ENOSPC;
	out[0] = '\0';
	for (uint32_t b = start; b < end; b++) {
		int k;

		if (len && len + 1 < cap)
			out[len++] = ' ';
		k = kw_hm_block_uid(prefix, b, out + len, cap - len);
		if (k < 0)
			return k;
		len += (size_t)k;
	}
	return len + 1 < cap ? (int)len : -KW_ENOSPC;
}

/* A length-delimited field header (tag, length) at out + *len, room for it and the payload
 * checked. */
static int field_head(unsigned field, size_t payload, uint8_t *out, size_t cap, size_t *len)
{
	if (cap - *len < payload + 11)
		return -KW_EMSGSIZE;
	out[(*len)++] = (uint8_t)(field << 3 | 2);
	*len += kw_serve_pb_varint_put(out + *len, payload);
	return 0;
}

static int put_tensor(const struct kw_tensor_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	size_t tl = kw_tensor_msg_encoded_size(m), wrote;
	int ret;

	if (!tl)
		return -KW_EINVAL;
	ret = field_head(2, tl, out, cap, len);
	if (ret < 0)
		return ret;
	ret = kw_tensor_msg_encode(m, out + *len, cap - *len, &wrote);
	if (ret < 0)
		return ret == -KW_ENOSPC ? -KW_EMSGSIZE : ret;
	*len += wrote;
	return 0;
}

/* The uid field and the first tensor (float32 NONE). */
static int put_head(const char *uid, const uint32_t *shape, uint32_t ndim, const float *v,
		    size_t n, uint8_t *out, size_t cap, size_t *len)
{
	struct kw_tensor_msg m;
	size_t ul = strlen(uid);
	int ret;

	if (ndim > KW_TENSOR_MSG_MAX_DIMS)
		return -KW_EINVAL;
	ret = field_head(1, ul, out, cap, len);
	if (ret < 0)
		return ret;
	memcpy(out + *len, uid, ul);
	*len += ul;
	kw_tensor_msg_f32(&m, v, n, shape, ndim);
	return put_tensor(&m, out, cap, len);
}

/* An empty tensor of shape (0,): Petals' DUMMY. */
static int put_dummy(const char *dtype, uint8_t *out, size_t cap, size_t *len)
{
	struct kw_tensor_msg m;

	memset(&m, 0, sizeof(m));
	m.ndim = 1;
	snprintf(m.dtype, sizeof(m.dtype), "%s", dtype);
	return put_tensor(&m, out, cap, len);
}

static size_t mp_str(uint8_t *p, const char *s, size_t n)
{
	p[0] = (uint8_t)(0xa0 | n);    /* fixstr: callers keep n below 32 */
	memcpy(p + 1, s, n);
	return n + 1;
}

long kw_client_step_encode(const char *uid, const uint32_t *shape, const float *v, size_t n,
			   uint32_t max_length, const char *step_id, uint8_t *out, size_t cap)
{
	uint8_t meta[64];
	size_t len = 0, ml = 0, sl = strlen(step_id);
	int ret;

	if (sl > 31)
		return -KW_EINVAL;
	meta[ml++] = (uint8_t)(0x80 | (max_length ? 2 : 1));
	if (max_length) {
		ml += mp_str(meta + ml, "max_length", 10);
		meta[ml++] = 0xce;             /* uint32, big-endian */
		meta[ml++] = (uint8_t)(max_length >> 24);
		meta[ml++] = (uint8_t)(max_length >> 16);
		meta[ml++] = (uint8_t)(max_length >> 8);
		meta[ml++] = (uint8_t)max_length;
	}
	ml += mp_str(meta + ml, "step_id", 7);
	ml += mp_str(meta + ml, step_id, sl);
	ret = put_head(uid, shape, 3, v, n, out, cap, &len);
	if (ret == 0)
		ret = put_dummy("float32", out, cap, &len);
	if (ret == 0)
		ret = put_dummy("int64", out, cap, &len);
	if (ret == 0)
		ret = field_head(3, ml, out, cap, &len);
	if (ret < 0)
		return ret;
	memcpy(out + len, meta, ml);
	return (long)(len + ml);
}

long kw_client_req_encode(const char *uid, const uint32_t *shape, uint32_t ndim,
			  const float *v, size_t n, bool petals, uint8_t *out, size_t cap)
{
	size_t len = 0;
	int ret = put_head(uid, shape, ndim, v, n, out, cap, &len);

	if (ret == 0 && petals)
		ret = put_dummy("float32", out, cap, &len);
	return ret < 0 ? ret : (long)len;
}

int kw_client_tokens_parse(const char *buf, size_t len, uint32_t vocab, uint32_t *out,
			   size_t cap, size_t *n, char *err, size_t errcap)
{
	size_t pos = 0, line = 0;

	*n = 0;
	while (pos < len) {
		size_t end = pos, i;
		uint64_t v = 0;
		bool digits = false;

		while (end < len && buf[end] != '\n')
			end++;
		line++;
		i = pos;
		while (i < end && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
			i++;
		if (i < end && buf[i] != '#') {
			for (; i < end && buf[i] >= '0' && buf[i] <= '9'; i++) {
				digits = true;
				v = v * 10 + (uint64_t)(buf[i] - '0');
				if (v >= vocab)
					break;
			}
			while (i < end && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
				i++;
			if (digits && v >= vocab) {
				snprintf(err, errcap, "line %zu: the token ID is not below the "
					 "vocabulary size %u", line, vocab);
				return -KW_EINVAL;
			}
			if (!digits || i < end) {
				snprintf(err, errcap, "line %zu: not a token ID (a decimal number)",
					 line);
				return -KW_EINVAL;
			}
			if (*n == cap) {
				snprintf(err, errcap, "line %zu: more than %zu tokens", line, cap);
				return -KW_ENOSPC;
			}
			out[(*n)++] = (uint32_t)v;
		}
		pos = end + 1;
	}
	if (!*n) {
		snprintf(err, errcap, "no token (one decimal ID per line)");
		return -KW_EINVAL;
	}
	return 0;
}

int kw_client_answer_decode(const struct kw_codec *codec, const uint8_t *msg, size_t len,
			    size_t rows, size_t hid, float *dst)
{
	struct kw_serve_req resp;
	const struct kw_tensor_msg *m = &resp.t[0];
	enum kw_codec_dtype dt;
	size_t numel = 0;

	if (kw_serve_req_decode(&resp, msg, len, NULL) < 0 || resp.n_tensors < 1 ||
	    kw_tensor_msg_numel(m, &numel) < 0 || !hid || numel != rows * hid ||
	    (m->ndim != 3 && m->ndim != 2) || (m->ndim == 3 && m->shape[0] != 1) ||
	    m->shape[m->ndim - 1] != hid ||
	    kw_codec_dtype_parse(m->dtype, strlen(m->dtype), &dt) < 0 || m->compression < 0 ||
	    m->compression >= KW_COMP_COUNT ||
	    kw_codec_decode(codec, (enum kw_compression)m->compression, dt, m->buf, m->buf_len,
			    numel, hid, dst) < 0)
		return -KW_EBADMSG;
	for (size_t i = 0; i < numel; i++)
		if (!isfinite(dst[i]))
			return -KW_ERANGE;
	return 0;
}

int kw_client_connect(struct kw_swarm *sw, const char *peer, const char *const *addrs, int n,
		      void (*cb)(struct kw_swarm *sw, struct kw_conn *c, int err, void *user),
		      void *user, struct kw_conn **c)
{
	struct kw_peer_id pid;

	if (kw_peer_id_from_text(peer, &pid) < 0)
		return -KW_EINVAL;
	*c = kw_swarm_find_conn(sw, &pid);
	if (*c)
		return 1;
	for (int i = 0; i < n; i++) {
		const char *p = strstr(addrs[i], "/p2p/");

		if (p && !strcmp(p + 5, peer)) {
			int ret = kw_swarm_dial(sw, addrs[i], cb, user);

			return ret < 0 ? ret : 0;
		}
	}
	return -KW_ENOENT;
}

/* ---- finding a server's addresses from its PeerID ------------------------------------------ */

void kw_client_resolver_init(struct kw_client_resolver *r, struct kw_swarm *sw,
			     struct kw_kad *kad)
{
	memset(r, 0, sizeof(*r));
	r->sw = sw;
	r->kad = kad;
}

uint32_t kw_client_kad_addrs(const struct kw_kad_peer *peers, size_t n, const char *peer,
			     char (*out)[KW_CLIENT_ADDR_MAX], uint32_t cap)
{
	struct kw_peer_id want, id, inner;
	struct kw_multiaddr ma;
	char t[KW_MADDR_TEXT_MAX];
	uint32_t k = 0;

	if (kw_peer_id_from_text(peer, &want) < 0)
		return 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		const struct kw_kad_peer *p = &peers[i];

		if (kw_peer_id_from_bytes(p->id, p->id_len, &id) < 0 || !kw_peer_id_equal(&id, &want))
			continue;
		for (unsigned j = 0; j < p->n_addrs && k < cap; j++) {
			if (kw_maddr_from_bytes(p->addrs[j], p->addr_len[j], &ma, NULL, 0) < 0)
				continue;
			/* an address naming another peer is not this peer's */
			if (kw_maddr_peer_id(&ma, &inner) == 0) {
				if (!kw_peer_id_equal(&inner, &want))
					continue;
			} else if (kw_maddr_append_peer_id(&ma, &want) < 0) {
				continue;
			}
			if (kw_maddr_to_text(&ma, t, sizeof(t)) < 0 || strlen(t) >= KW_CLIENT_ADDR_MAX)
				continue;
			snprintf(out[k++], KW_CLIENT_ADDR_MAX, "%s", t);
		}
	}
	return k;
}

static void res_fail(struct kw_client_resolver *r, int err)
{
	kw_client_dial_fn cb = r->cb;

	r->state = KW_CLIENT_RES_IDLE;
	r->failed++;
	cb(r->sw, NULL, err, r->user);
}

static void res_dial_next(struct kw_client_resolver *r, int err);

static void res_on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct kw_client_resolver *r = user;

	(void)sw;
	if (r->state != KW_CLIENT_RES_DIAL)
		return;
	if (err < 0) {
		snprintf(r->why, sizeof(r->why), "found over /ipfs/kad/1.0.0 but no address "
			 "answered (last: %.80s: %s)", r->addr[r->next - 1], kw_strerror(err));
		res_dial_next(r, err);
		return;
	}
	r->state = KW_CLIENT_RES_IDLE;
	r->resolved++;
	r->why[0] = '\0';
	r->cb(r->sw, c, 0, r->user);
}

/* Dials the next address returned; fails the resolution with err (the last dial's) when
 * none is left. */
static void res_dial_next(struct kw_client_resolver *r, int err)
{
	int ret = err;

	while (r->next < r->n_addr) {
		ret = kw_swarm_dial(r->sw, r->addr[r->next++], res_on_dial, r);
		if (ret == 0) {
			r->state = KW_CLIENT_RES_DIAL;
			return;
		}
		snprintf(r->why, sizeof(r->why), "found over /ipfs/kad/1.0.0 but no address "
			 "could be dialed (last: %.80s: %s)", r->addr[r->next - 1],
			 kw_strerror(ret));
	}
	res_fail(r, ret);
}

static void res_on_found(struct kw_kad *k, const struct kw_kad_result *res, void *user)
{
	struct kw_client_resolver *r = user;

	(void)k;
	if (r->state != KW_CLIENT_RES_LOOKUP)
		return;
	/* a lookup that timed out still reports what it found */
	r->n_addr = kw_client_kad_addrs(res->peers, res->n_peers, r->peer, r->addr,
					KW_CLIENT_RESOLVE_ADDRS);
	r->next = 0;
	if (!r->n_addr) {
		snprintf(r->why, sizeof(r->why), "PeerID not found over /ipfs/kad/1.0.0 (%s)",
			 res->err ? kw_strerror(res->err) :
			 res->n_peers ? "no address it could be dialed at" : "no peer knows it");
		res_fail(r, res->err ? res->err : -KW_ENOENT);
		return;
	}
	res_dial_next(r, -KW_ENOENT);
}

int kw_client_resolve(struct kw_client_resolver *r, const char *peer, const char *const *addrs,
		      int n, kw_client_dial_fn cb, void *user, struct kw_conn **c)
{
	struct kw_peer_id pid;
	int ret;

	if (r->state != KW_CLIENT_RES_IDLE)
		return -KW_EBUSY;
	r->why[0] = '\0';
	ret = kw_client_connect(r->sw, peer, addrs, n, cb, user, c);
	if (ret != -KW_ENOENT)
		return ret;
	if (!r->kad) {
		snprintf(r->why, sizeof(r->why), "no connection and no address, and no "
			 "/ipfs/kad/1.0.0 in this build to find one (give it with --peer)");
		return ret;
	}
	(void)kw_peer_id_from_text(peer, &pid);   /* kw_client_connect parsed it */
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	r->cb = cb;
	r->user = user;
	r->n_addr = r->next = 0;
	r->state = KW_CLIENT_RES_LOOKUP;
#ifdef CONFIG_KW_NET_KAD
	ret = kw_kad_find_peer(r->kad, &pid, res_on_found, r);
#else
	ret = -KW_ENOTSUP;
	(void)res_on_found;
#endif
	if (ret < 0) {
		r->state = KW_CLIENT_RES_IDLE;
		r->failed++;
		snprintf(r->why, sizeof(r->why), "cannot start a /ipfs/kad/1.0.0 lookup: %s",
			 kw_strerror(ret));
		return ret;
	}
	return 0;
}
