/*
 * The DHTProtocol server (include/kw/net/hivemind_dht.h, part 4): rpc_ping, rpc_store and
 * rpc_find as learning-at-home/hivemind @ 4bd43b7 `hivemind/dht/protocol.py` serves them,
 * on the unary handler registry (net/hivemind/rpc.c), over the routing table and storage
 * of dht_rt.c and dht_store.c.
 *
 * What hivemind does and we do too: a ping answers our NodeInfo, our DHT time and
 * available = false, or, with validate, pings the caller back (DHTProtocol.rpc_ping,
 * validate = false) and answers available = (the node id it reports equals the one the caller
 * claimed); a caller with a non-empty node_id is added to the routing table (a validated one
 * only if the ping-back succeeded). Stores go item by item to the cache or main tier;
 * finds answer the later of the main and cache records and up to bucket_size nearest
 * (node id, PeerID) pairs, without the requester. A request hivemind's handler would raise
 * on (misaligned arrays, an id longer than 20 bytes, a subkey or dictionary that does not
 * deserialize) is answered with an error text, as hivemind answers repr(exception).
 *
 * Every caller we learn from goes through kw_hm_dht_met (dht_client.c), which also pushes a
 * newcomer the records it should hold. Not done here: pinging the least-recently-seen node of
 * a full bucket, record validators (signatures, schemas). Our own calls (ping, traverse, get,
 * store) are in dht_client.c. A client-mode node registers none of these handlers.
 *
 * Owner: net/hivemind. The state comes from the node's arena at create.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "dht_priv.h"

#define PING_NAME  KW_HM_PING_NAME
#define STORE_NAME KW_HM_STORE_NAME
#define FIND_NAME  KW_HM_FIND_NAME
#define PENDING    KW_HM_PENDING

static double real_clock(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double kw_hm_dht_now(const struct kw_hm_dht *d)
{
	return d->cfg.clock(d->cfg.clock_arg);
}

static double now(const struct kw_hm_dht *d)
{
	return kw_hm_dht_now(d);
}

int kw_hm_dht_config_default(struct kw_hm_dht_config *c)
{
	memset(c, 0, sizeof(*c));
	kw_hm_rt_limits_default(&c->rt);
	c->store_cells = CONFIG_KW_NET_HIVEMIND_DHT_STORE_CELLS;
	c->cache_cells = CONFIG_KW_NET_HIVEMIND_DHT_CACHE_CELLS;
	c->cell_bytes = CONFIG_KW_NET_HIVEMIND_DHT_CELL_BYTES;
	c->dict_max = CONFIG_KW_NET_HIVEMIND_DHT_DICT_MAX;
	c->blacklist = CONFIG_KW_NET_HIVEMIND_DHT_BLACKLIST;
	c->ping_timeout_ms = 3000;
	c->beam_size = c->rt.bucket_size;    /* DHTNode.create: beam_size = bucket_size */
	c->num_workers = 4;                  /* DEFAULT_NUM_WORKERS (HIVEMIND_DHT_NUM_WORKERS) */
	c->num_replicas = 5;
	c->rpc_timeout_ms = 3000;            /* wait_timeout */
	c->connect_timeout_ms = 3000;        /* inside wait_timeout, as hivemind: see the header */
	c->buf_bytes = CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES;
	c->client_ops = CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_OPS;
	c->client_rpcs = CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_RPCS;
	c->candidates = CONFIG_KW_NET_HIVEMIND_DHT_CANDIDATES;
	c->merge_cells = CONFIG_KW_NET_HIVEMIND_DHT_MERGE_CELLS;
	c->addr_book = CONFIG_KW_NET_HIVEMIND_DHT_ADDR_BOOK;
	return kw_hm_dhtid_random(&c->node_id);
}

struct kw_hm_dht_peer kw_hm_dht_own(const struct kw_hm_dht *d)
{
	struct kw_hm_dht_peer p = { true, { d->cfg.node_id.b, KW_HM_DHTID_LEN } };

	if (d->cfg.client_mode)
		p.node_id = (struct kw_hm_bytes){ NULL, 0 };   /* NodeInfo() of a client */
	return p;
}

static struct kw_hm_dht_peer own(const struct kw_hm_dht *d)
{
	return kw_hm_dht_own(d);
}

/* update_routing_table(responded = true) for a caller that sent a node id. */
static void meet(struct kw_hm_dht *d, struct kw_hm_call *call, const struct kw_hm_dht_peer *p)
{
	const struct kw_peer_id *pid = kw_conn_peer_id(kw_hm_call_conn(call));
	struct kw_hm_dhtid id;

	if (!p->present || !p->node_id.len || !pid ||
	    kw_hm_dhtid_from_bytes(p->node_id.p, p->node_id.len, &id))
		return;
	kw_hm_dht_met(d, kw_hm_call_conn(call), &id, pid->bytes, pid->len);
}

/* Counted and logged with `why`; the caller reads `text` (NULL: AssertionError('why')). */
static void refuse(struct kw_hm_dht *d, struct kw_hm_call *call, const char *what,
		   const char *why, const char *text)
{
	char buf[160];

	d->stats.bad_requests++;
	KW_LOG_WRN(hivemind, "%s refused: %s", what, why);
	if (!text) {
		snprintf(buf, sizeof(buf), "AssertionError('%s')", why);
		text = buf;
	}
	(void)kw_hm_reply_error(call, text);
}

static void bad_request(struct kw_hm_dht *d, struct kw_hm_call *call, const char *what,
			const char *why)
{
	refuse(d, call, what, why, NULL);
}

static void reply(struct kw_hm_dht *d, struct kw_hm_call *call, int kind, const void *m)
{
	long n = kw_hm_dht_encode(kind, m, d->out, d->buf_bytes);

	if (n < 0) {
		(void)kw_hm_reply_error(call, n == -KW_ENOSPC ? "MemoryError('response too large')"
							     : "ValueError('response not encodable')");
		return;
	}
	(void)kw_hm_reply(call, d->out, (size_t)n);
}

/* ---- rpc_ping ------------------------------------------------------------------------- */

static void answer_ping(struct kw_hm_dht *d, struct kw_hm_call *call, bool available)
{
	struct kw_hm_dht_ping_resp r = { own(d), now(d), available };

	reply(d, call, KW_HM_DHT_PING_RESP, &r);
}

static void on_ping_back(const struct kw_hm_result *res, void *user)
{
	struct kw_hm_pending *p = user;
	struct kw_hm_dht *d = p->d;
	struct kw_hm_dht_ping_resp r;
	struct kw_hm_dhtid got;
	bool ok = false;

	if (!res->err && !res->remote_error &&
	    !kw_hm_dht_decode(KW_HM_DHT_PING_RESP, res->data, res->len, &r, NULL) &&
	    r.peer.present && r.peer.node_id.len &&
	    !kw_hm_dhtid_from_bytes(r.peer.node_id.p, r.peer.node_id.len, &got))
		ok = !kw_hm_dhtid_cmp(&got, &p->id);
	if (ok) {
		d->stats.ping_backs_ok++;
		kw_hm_dht_met(d, p->call ? kw_hm_call_conn(p->call) : NULL, &p->id, p->peer,
			      p->peer_len);
	} else {
		kw_hm_bl_failure(&d->bl, p->peer, p->peer_len, now(d));
	}
	if (p->call)
		answer_ping(d, p->call, ok);
	p->busy = false;
}

static void ping_cancel(struct kw_hm_call *call, int reason, void *arg)
{
	struct kw_hm_dht *d = arg;

	(void)reason;
	for (int i = 0; i < PENDING; i++)
		if (d->pend[i].busy && d->pend[i].call == call)
			d->pend[i].call = NULL;   /* the ping-back still completes, unanswered */
}

static void rpc_ping(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct kw_hm_dht *d = arg;
	struct kw_hm_dht_ping_req r;
	const struct kw_peer_id *pid = kw_conn_peer_id(kw_hm_call_conn(call));
	struct kw_hm_pending *p = NULL;
	uint8_t buf[64];
	const char *why;
	long n;
	int err;

	d->stats.pings++;
	if ((err = kw_hm_dht_decode(KW_HM_DHT_PING_REQ, req, len, &r, &why))) {
		bad_request(d, call, PING_NAME, why);
		return;
	}
	if (!r.peer.present || !r.peer.node_id.len) {      /* a client: nothing to learn */
		answer_ping(d, call, false);
		return;
	}
	if (!r.validate) {
		meet(d, call, &r.peer);
		answer_ping(d, call, false);
		return;
	}
	for (int i = 0; i < PENDING && !p; i++)
		if (!d->pend[i].busy)
			p = &d->pend[i];
	if (!p || !pid || pid->len > KW_HM_DHT_PEER_ID_MAX) {
		answer_ping(d, call, false);               /* cannot ping back now */
		return;
	}
	memset(p, 0, sizeof(*p));
	p->d = d;
	p->call = call;
	(void)kw_hm_dhtid_from_bytes(r.peer.node_id.p, r.peer.node_id.len, &p->id);
	p->peer_len = pid->len;
	memcpy(p->peer, pid->bytes, pid->len);
	{
		struct kw_hm_dht_ping_req back = { own(d), false };

		n = kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &back, buf, sizeof(buf));
	}
	d->stats.ping_backs++;
	p->busy = true;
	if (n < 0 || kw_hm_call(d->hm, kw_hm_call_conn(call), PING_NAME, buf, (size_t)n,
				d->cfg.ping_timeout_ms, on_ping_back, p) < 0) {
		p->busy = false;
		answer_ping(d, call, false);
	}
}

/* ---- rpc_store ------------------------------------------------------------------------ */

static void rpc_store(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct kw_hm_dht *d = arg;
	struct kw_hm_dht_store_req *r = &d->req->store;
	struct kw_hm_dht_store_resp resp;
	const char *why;
	double t = now(d);

	d->stats.stores++;
	if (kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, req, len, r, &why)) {
		bad_request(d, call, STORE_NAME, why);
		return;
	}
	if (kw_hm_dht_store_req_check(r, &why)) {
		/* protocol.py rpc_store checks the lengths with a bare `assert`: a Python caller
		 * reads exactly "AssertionError()"; our log says which list differs */
		refuse(d, call, STORE_NAME, why, "AssertionError()");
		return;
	}
	/* hivemind would raise on any item's subkey that does not deserialize: check first */
	for (uint32_t i = 0; i < r->n_keys; i++) {
		const struct kw_hm_bytes *s = &r->subkeys[i];

		if (s->len && !(s->len == 1 && s->p[0] == KW_HM_DHT_IS_REGULAR) &&
		    kw_mp_validate(s->p, s->len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS, &why)) {
			bad_request(d, call, STORE_NAME, "subkey is not one msgpack value");
			return;
		}
	}
	meet(d, call, &r->peer);
	memset(&resp, 0, sizeof(resp));
	resp.peer = own(d);
	resp.n = r->n_keys;
	for (uint32_t i = 0; i < r->n_keys; i++) {
		struct kw_hm_store *tier = r->in_cache[i] ? &d->cache : &d->store;
		const struct kw_hm_bytes *s = &r->subkeys[i], *v = &r->values[i];
		struct kw_hm_dhtid key;
		int ok;

		(void)kw_hm_dhtid_from_bytes(r->keys[i].p, r->keys[i].len, &key);
		if (!s->len)
			ok = kw_hm_store_put_dict(tier, &key, v->p, v->len, t, &why);
		else if (s->len == 1 && s->p[0] == KW_HM_DHT_IS_REGULAR)
			ok = kw_hm_store_put(tier, &key, v->p, v->len, r->exp[i], t);
		else
			ok = kw_hm_store_put_subkey(tier, &key, s->p, s->len, v->p, v->len,
						    r->exp[i], t);
		if (ok == -KW_EBADMSG) {
			/* hivemind raises here (after storing the earlier items, as we did) */
			bad_request(d, call, STORE_NAME, why);
			return;
		}
		resp.store_ok[i] = ok > 0;
		if (ok > 0)
			d->stats.items_stored++;
		else
			d->stats.items_refused++;
	}
	reply(d, call, KW_HM_DHT_STORE_RESP, &resp);
}

/* ---- rpc_find ------------------------------------------------------------------------- */

static void rpc_find(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct kw_hm_dht *d = arg;
	struct kw_hm_dht_find_req *r = &d->req->find;
	struct kw_hm_dht_find_resp resp;
	struct kw_hm_dhtid exclude;
	const char *why;
	size_t used = 0, k = d->cfg.rt.bucket_size;
	double t = now(d);

	d->stats.finds++;
	if (kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, req, len, r, &why)) {
		bad_request(d, call, FIND_NAME, why);
		return;
	}
	meet(d, call, &r->peer);
	/* DHTID.from_bytes(request.peer.node_id): an empty or absent one excludes DHTID 0 */
	(void)kw_hm_dhtid_from_bytes(r->peer.node_id.p, r->peer.node_id.len, &exclude);
	if (k > KW_HM_DHT_MAX_NEAREST)
		k = KW_HM_DHT_MAX_NEAREST;
	for (uint32_t i = 0; i < r->n_keys; i++) {
		struct kw_hm_dht_find_result *res = &d->results[i];
		struct kw_hm_dht_contact *near = &d->near[(size_t)i * k];
		struct kw_hm_store_found fm, fc, *f;
		struct kw_hm_store *tier;
		struct kw_hm_dhtid key;
		size_t n;

		memset(res, 0, sizeof(*res));
		(void)kw_hm_dhtid_from_bytes(r->keys[i].p, r->keys[i].len, &key);
		(void)kw_hm_store_get(&d->store, &key, t, &fm);
		(void)kw_hm_store_get(&d->cache, &key, t, &fc);
		f = &fm;
		tier = &d->store;
		if (fc.type != KW_HM_DHT_NOT_FOUND &&
		    (fm.type == KW_HM_DHT_NOT_FOUND || fc.expiration > fm.expiration)) {
			f = &fc;
			tier = &d->cache;
		}
		res->type = (uint32_t)f->type;
		res->expiration = f->expiration;
		if (f->type == KW_HM_DHT_FOUND_REGULAR) {
			res->value = (struct kw_hm_bytes){ f->value, f->len };
		} else if (f->type == KW_HM_DHT_FOUND_DICTIONARY) {
			long w = kw_hm_store_pack_dict(tier, &key, t, d->vals + used,
						       d->buf_bytes - used);

			if (w < 0) {
				(void)kw_hm_reply_error(call, "MemoryError('response too large')");
				return;
			}
			res->value = (struct kw_hm_bytes){ d->vals + used, (size_t)w };
			used += (size_t)w;
		}
		n = kw_hm_rt_nearest(&d->rt, &key, k, &exclude, near);
		res->n_node_ids = res->n_peer_ids = (uint32_t)n;
		for (size_t j = 0; j < n; j++) {
			res->node_ids[j] = (struct kw_hm_bytes){ near[j].id.b, KW_HM_DHTID_LEN };
			res->peer_ids[j] = (struct kw_hm_bytes){ near[j].peer, near[j].peer_len };
		}
	}
	memset(&resp, 0, sizeof(resp));
	resp.n_results = r->n_keys;
	resp.results = d->results;
	resp.peer = own(d);
	reply(d, call, KW_HM_DHT_FIND_RESP, &resp);
}

/* ---- set-up --------------------------------------------------------------------------- */

int kw_hm_dht_create(struct kw_swarm *sw, struct kw_hm *hm, const struct kw_hm_dht_config *cfg,
		     struct kw_hm_dht **out)
{
	struct kw_arena *a = &kw_swarm_node(sw)->arena;
	struct kw_hm_dht *d;
	size_t k;
	int err;

	if (!cfg || !cfg->rt.bucket_size)
		return -KW_EINVAL;
	d = kw_arena_alloc(a, sizeof(*d), 16);
	if (!d)
		return -KW_ENOMEM;
	d->hm = hm;
	d->sw = sw;
	d->loop = &kw_swarm_node(sw)->loop;
	d->cfg = *cfg;
	if (!d->cfg.clock)
		d->cfg.clock = real_clock;
	if (!d->cfg.ping_timeout_ms)
		d->cfg.ping_timeout_ms = 3000;
	k = cfg->rt.bucket_size < KW_HM_DHT_MAX_NEAREST ? cfg->rt.bucket_size :
							    KW_HM_DHT_MAX_NEAREST;
	d->buf_bytes = cfg->buf_bytes ? cfg->buf_bytes : CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES;
	d->req = kw_arena_alloc(a, sizeof(*d->req), 16);
	d->results = kw_arena_alloc(a, sizeof(*d->results) * KW_HM_DHT_MAX_KEYS, 16);
	d->near = kw_arena_alloc(a, sizeof(*d->near) * k * KW_HM_DHT_MAX_KEYS, 16);
	d->vals = kw_arena_alloc(a, d->buf_bytes, 16);
	d->out = kw_arena_alloc(a, d->buf_bytes, 16);
	if (!d->req || !d->results || !d->near || !d->vals || !d->out)
		return -KW_ENOMEM;
	if ((err = kw_hm_rt_init(&d->rt, &cfg->node_id, &cfg->rt, a)) ||
	    (err = kw_hm_store_init(&d->store, cfg->store_cells, cfg->cell_bytes, cfg->dict_max,
				    false, a)) ||
	    (err = kw_hm_store_init(&d->cache, cfg->cache_cells, cfg->cell_bytes, cfg->dict_max,
				    true, a)) ||
	    (err = kw_hm_bl_init(&d->bl, cfg->blacklist ? cfg->blacklist : 1, 5.0, 2.0, a)) ||
	    (err = kw_hm_dht_client_init(d, a)))
		return err;
	/* hivemind client_mode: no handlers, so identify does not list them either */
	if (!cfg->client_mode && ((err = kw_hm_register_unary(hm, PING_NAME, rpc_ping, ping_cancel, d, 0)) < 0 ||
	    (err = kw_hm_register_unary(hm, STORE_NAME, rpc_store, NULL, d, 0)) < 0 ||
	    (err = kw_hm_register_unary(hm, FIND_NAME, rpc_find, NULL, d, 0)) < 0))
		return err;
	*out = d;
	return 0;
}

struct kw_hm_rt *kw_hm_dht_rt(struct kw_hm_dht *d)
{
	return &d->rt;
}

struct kw_hm_blacklist *kw_hm_dht_blacklist(struct kw_hm_dht *d)
{
	return &d->bl;
}

struct kw_hm_store *kw_hm_dht_storage(struct kw_hm_dht *d, bool cache)
{
	return cache ? &d->cache : &d->store;
}

void kw_hm_dht_get_stats(const struct kw_hm_dht *d, struct kw_hm_dht_stats *st)
{
	*st = d->stats;
}
