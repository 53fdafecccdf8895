/* net/kad/kad.c + lookup.c: the Kademlia node over an in-memory transport. Many kw_kad
 * instances share one kw_loop on the simulated clock; a request is encoded with the real
 * codec, travels for LAT_MS as a loop timer, is decoded and answered by the destination's
 * kw_kad_handle_request, and the answer goes back through kw_kad_on_reply. Peers can be
 * silent (they answer with an error only after SILENT_MS, far past the query timeout) or
 * down (connection refused). Works at any CONFIG_KW_NET_KAD_* value in range: sizes that
 * matter are set in the tests' cfg, the rest follow Kconfig. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/net/kad.h>
#include <kw/rng.h>
#include <kw/sim.h>

#include <sodium.h>

#include "../../../../net/kad/kad_priv.h"   /* kad_refresh_key: the bucket-refresh keys */

#define MAXN       256
#define ENVS       8192
#define LAT_MS     10
#define SILENT_MS  120000
#define QTIMEOUT   2000
#define K          CONFIG_KW_NET_KAD_K

struct tnode {
	struct kw_kad *k;
	struct kw_peer_id id;
	struct kw_multiaddr ma;
	void *mem;
	bool silent, down, client;
	unsigned queried;           /* requests it received */
	unsigned inflight, inflight_high;  /* requests it sent and awaits */
	/* its transport refuses what it sends, as net/kad/swarm.c does when its own stream
	 * states or buffers are exhausted: at once from request() before refuse_until_ms,
	 * through kw_kad_on_reply (stream open failed later) before refuse_async_until_ms */
	uint64_t refuse_until_ms, refuse_async_until_ms;
	bool refuse_puts_only;      /* refuse only PUT_VALUE (a put's fan-out) */
	unsigned refused;
};

struct env {
	struct kw_timer t;
	bool used;
	bool watched;
	unsigned from, to;
	uint32_t token;
	bool late;                  /* a silent peer's late error */
	bool refuse;                /* our own transport refuses it (-KW_ENOBUFS) */
	size_t len;
	uint8_t buf[2048];
};

static struct tnode nodes[MAXN];
static unsigned nn;
static struct env *envs;
static struct kw_loop loop;
static struct kw_sim_net net;
static struct kw_sim sim;
static void *loop_mem, *net_mem;
static struct kw_arena loop_arena, net_arena;
static struct kw_kad_msg rq, rs;
static struct kw_prng prng;
/* Requests from watch_src (NULL: any) to watch_dst (NULL: any) with key watch_key (NULL: any):
 * send times and how many are in flight at most. */
static const struct kw_peer_id *watch_src, *watch_dst;
static const struct kw_peer_id *watch_key;
static bool watching;               /* off until a test sets the filters */
static uint64_t watch_times[64];
static unsigned watch_n, watch_inflight, watch_high;
/* FIND_NODE keys sent by keylog_src other than its own id (refresh lookups), each key once,
 * in the order first sent. */
static const struct kw_peer_id *keylog_src;
static uint8_t keylog[16][34];
static unsigned keylog_n;
static const struct kw_peer_id *forced_id;   /* add_node_cfg: this id instead of a random one */
static uint64_t wall_base = 1798761600000ull;   /* 2027-01-01, record expiry needs a wall clock */

static uint64_t test_wall(void *ctx)
{
	(void)ctx;
	return wall_base + kw_loop_now(&loop);
}

static int find_node(const struct kw_peer_id *id)
{
	for (unsigned i = 0; i < nn; i++)
		if (kw_peer_id_equal(&nodes[i].id, id))
			return (int)i;
	return -1;
}

static struct env *env_get(void)
{
	for (unsigned i = 0; i < ENVS; i++)
		if (!envs[i].used) {
			envs[i].used = true;
			return &envs[i];
		}
	fail_msg("test transport: out of envelopes");
	return NULL;
}

static void deliver(struct kw_loop *l, struct kw_timer *t)
{
	struct env *e = t->arg;
	/* the envelope is free again from here on: anything below may send (a liveness probe
	 * from dst's table, the next lookup request from src) and reuse it, so copy it first */
	struct env c = *e;
	struct tnode *src = &nodes[c.from], *dst;
	long n;
	int rc;

	(void)l;
	e->used = false;
	src->inflight--;
	if (c.watched && !c.late)
		watch_inflight--;
	if (c.refuse) {
		if (src->k)
			kw_kad_on_reply(src->k, c.token, -KW_ENOBUFS, NULL);
		return;
	}
	if (c.late || c.to == UINT32_MAX || nodes[c.to].down || !nodes[c.to].k) {
		if (src->k)
			kw_kad_on_reply(src->k, c.token, c.late ? -KW_ETIMEDOUT : -KW_ECONNREFUSED,
					NULL);
		return;
	}
	dst = &nodes[c.to];
	dst->queried++;
	if (dst->silent) {           /* answers nothing; the transport gives up much later */
		struct env *late = env_get();

		*late = c;
		late->used = true;
		late->late = true;
		late->refuse = false;
		late->watched = false;
		if (c.watched)
			watch_inflight--;
		src->inflight++;
		kw_timer_init(&late->t, deliver, late);
		assert_int_equal(kw_timer_start(&loop, &late->t, SILENT_MS), 0);
		return;
	}
	n = kw_kad_msg_decode(c.buf, c.len, &rq);
	assert_true(n > 0);
	/* identify on the inbound connection tells dst that src serves kad */
	if (!src->client)
		kw_kad_peer_seen(dst->k, &src->id, &src->ma, 1);
	rc = kw_kad_handle_request(dst->k, &src->id, &rq, &rs);
	if (!src->k)
		return;
	if (rc == 0)
		kw_kad_on_reply(src->k, c.token, 0, &rs);
	else if (rc == KW_KAD_NO_REPLY)
		kw_kad_on_reply(src->k, c.token, 0, NULL);
	else
		kw_kad_on_reply(src->k, c.token, -KW_ECONNRESET, NULL);
}

static int t_request(void *t, const struct kw_peer_id *to, const struct kw_kad_rt_addr *addrs,
		     size_t naddrs, const struct kw_kad_msg *req, uint32_t token)
{
	struct tnode *src = t;
	struct env *e;
	int d = find_node(to);
	long n;

	(void)addrs;
	(void)naddrs;
	if (kw_loop_now(&loop) < src->refuse_until_ms &&
	    (!src->refuse_puts_only || req->type == KW_KAD_PUT_VALUE)) {
		src->refused++;
		return -KW_ENOBUFS;
	}
	if (keylog_src && kw_peer_id_equal(keylog_src, &src->id) && req->type == KW_KAD_FIND_NODE &&
	    req->key_len == 34 && memcmp(req->key, src->id.bytes, 34) != 0) {
		bool known = false;

		for (unsigned i = 0; i < keylog_n && i < 16; i++)
			known |= memcmp(keylog[i], req->key, 34) == 0;
		if (!known && keylog_n < 16)
			memcpy(keylog[keylog_n++], req->key, 34);
	}
	e = env_get();
	e->refuse = kw_loop_now(&loop) < src->refuse_async_until_ms;
	src->refused += e->refuse;
	e->from = (unsigned)(src - nodes);
	e->to = d < 0 ? UINT32_MAX : (unsigned)d;
	e->token = token;
	e->late = false;
	n = kw_kad_msg_encode(req, e->buf, sizeof(e->buf));
	assert_true(n > 0);
	e->len = (size_t)n;
	src->inflight++;
	if (src->inflight > src->inflight_high)
		src->inflight_high = src->inflight;
	e->watched = watching && (!watch_src || kw_peer_id_equal(watch_src, &src->id)) &&
		     (!watch_dst || kw_peer_id_equal(watch_dst, to)) &&
		     (!watch_key || (req->key_len == watch_key->len &&
				     memcmp(req->key, watch_key->bytes, req->key_len) == 0));
	if (e->watched) {
		if (watch_n < 64)
			watch_times[watch_n] = kw_loop_now(&loop);
		watch_n++;
		if (++watch_inflight > watch_high)
			watch_high = watch_inflight;
	}
	kw_timer_init(&e->t, deliver, e);
	assert_int_equal(kw_timer_start(&loop, &e->t, LAT_MS), 0);
	return 0;
}

static size_t t_self_addrs(void *t, struct kw_multiaddr *out, size_t cap)
{
	struct tnode *n = t;

	if (cap == 0)
		return 0;
	out[0] = n->ma;
	return 1;
}

static void rand_id(struct kw_peer_id *id)
{
	id->len = 34;
	id->bytes[0] = 0x12;
	id->bytes[1] = 0x20;
	for (unsigned i = 2; i < 34; i += 8) {
		uint64_t r = kw_prng_next(&prng);

		memcpy(&id->bytes[i], &r, 34 - i < 8 ? 34 - i : 8);
	}
}

static void base_cfg(struct kw_kad_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->max_lookups = 4;
	c->table_entries = 256;
	c->query_timeout_ms = QTIMEOUT;
	c->lookup_timeout_ms = 60000;
	c->rate_per_peer = 1000;
	c->rate_burst = 1000;
	c->rate_peers = 16;
	c->wall_ms = test_wall;
	c->store.max_records = 16;
	c->store.max_record_bytes = 2048;
	c->store.max_total_bytes = 16384;
	c->store.max_records_per_peer = 8;
	c->store.max_providers = 32;
	c->store.max_providers_per_key = 16;
	c->store.max_providers_per_peer = 8;
}

/* Adds a node with cfg (NULL: base_cfg) and its address 10.x.y.z (private: no diversity limit). */
static struct tnode *add_node_cfg(struct kw_kad_cfg *cfg)
{
	struct tnode *n = &nodes[nn];
	struct kw_kad_cfg c;
	struct kw_arena a;
	struct kw_kad_transport tr = { .request = t_request, .self_addrs = t_self_addrs };
	char text[64];
	size_t bytes;

	assert_true(nn < MAXN);
	memset(n, 0, sizeof(*n));
	rand_id(&n->id);
	if (forced_id)
		n->id = *forced_id;
	snprintf(text, sizeof(text), "/ip4/10.%u.%u.%u/tcp/4001", nn / 65536, (nn / 256) % 256,
		 nn % 256 + 1);
	assert_int_equal(kw_maddr_from_text(text, &n->ma, NULL, 0), 0);
	if (cfg)
		c = *cfg;
	else
		base_cfg(&c);
	c.self = &n->id;
	n->client = c.client_mode;
	bytes = kw_kad_arena_bytes(&c);
	assert_true(bytes > 0);
	n->mem = calloc(1, bytes);
	assert_non_null(n->mem);
	kw_arena_init(&a, n->mem, bytes);
	tr.t = n;
	nn++;
	assert_int_equal(kw_kad_create(&loop, &a, &c, &tr, &n->k), 0);
	return n;
}

static struct tnode *add_node(void)
{
	return add_node_cfg(NULL);
}

static void seen(struct tnode *a, struct tnode *b)
{
	kw_kad_peer_seen(a->k, &b->id, &b->ma, 1);
}

static int setup(void **state)
{
	size_t lb = 65536u * sizeof(void *) + 4096 + kw_test_loop_bytes();

	(void)state;
	nn = 0;
	watching = false;
	watch_src = watch_dst = watch_key = NULL;
	watch_n = watch_inflight = watch_high = 0;
	keylog_src = NULL;
	keylog_n = 0;
	forced_id = NULL;
	kw_prng_seed(&prng, 0x5eed1234u);
	envs = calloc(ENVS, sizeof(*envs));
	net_mem = calloc(1, 1 << 16);
	loop_mem = calloc(1, lb);
	assert_non_null(envs);
	for (unsigned i = 0; i < ENVS; i++)
		kw_timer_init(&envs[i].t, deliver, &envs[i]);
	kw_arena_init(&net_arena, net_mem, 1 << 16);
	assert_int_equal(kw_sim_net_init(&net, &net_arena, 2, 4096), 0);
	net.auto_advance = true;
	kw_sim_init(&sim, &net);
	kw_arena_init(&loop_arena, loop_mem, lb);
	assert_int_equal(kw_loop_init(&loop, &sim.sys, &loop_arena, 65536, 16), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < nn; i++) {
		kw_kad_destroy(nodes[i].k);
		nodes[i].k = NULL;
	}
	for (unsigned i = 0; i < ENVS; i++)
		kw_timer_cancel(&loop, &envs[i].t);
	for (unsigned i = 0; i < nn; i++)
		free(nodes[i].mem);
	free(envs);
	free(loop_mem);
	free(net_mem);
	return 0;
}

/* Runs the loop until *flag is set or `ms` of virtual time passed. */
static void run_until(const bool *flag, uint64_t ms)
{
	uint64_t end = kw_loop_now(&loop) + ms;

	while ((!flag || !*flag) && kw_loop_now(&loop) < end) {
		int64_t to = kw_loop_next_timeout(&loop);
		uint64_t left = end - kw_loop_now(&loop);

		kw_loop_run_once(&loop, to < 0 || (uint64_t)to > left ? (int)left : (int)to);
		kw_loop_update_time(&loop);
	}
}

static void run_for(uint64_t ms)
{
	run_until(NULL, ms);
}

/* ---- results --------------------------------------------------------------------------------- */

struct res {
	bool done;
	unsigned calls;
	int err;
	unsigned rounds, messages, stored;
	size_t n_peers, value_len;
	struct kw_peer_id peers[64];
	uint8_t value[2048];
	uint64_t at_ms;
};

static void on_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct res *x = user;

	(void)k;
	x->done = true;
	x->calls++;
	x->err = r->err;
	x->rounds = r->rounds;
	x->messages = r->messages;
	x->stored = r->stored;
	x->n_peers = r->n_peers;
	x->at_ms = kw_loop_now(&loop);
	for (size_t i = 0; i < r->n_peers && i < 64; i++) {
		x->peers[i].len = r->peers[i].id_len;
		memcpy(x->peers[i].bytes, r->peers[i].id, r->peers[i].id_len);
	}
	x->value_len = r->value_len;
	if (r->value_len <= sizeof(x->value) && r->value)
		memcpy(x->value, r->value, r->value_len);
}

static void key_of(const struct kw_peer_id *id, uint8_t out[32])
{
	assert_int_equal(kw_kad_rt_key(id, out), 0);
}

static int xor_cmp(const uint8_t *a, const uint8_t *b, const uint8_t *t)
{
	for (unsigned i = 0; i < 32; i++) {
		uint8_t da = a[i] ^ t[i], db = b[i] ^ t[i];

		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

/* ---- request handling ------------------------------------------------------------------------ */

static void test_kad_find_node_lists_k_closest_without_requester(void **state)
{
	struct tnode *a, *p;
	uint8_t target_key[32];
	struct kw_peer_id target;
	unsigned expect;

	(void)state;
	a = add_node();
	for (unsigned i = 0; i < 40; i++)
		seen(a, add_node());
	p = &nodes[1];                       /* a table member asks */
	rand_id(&target);
	kw_kad_msg_init(&rq, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&rq, target.bytes, target.len), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &p->id, &rq, &rs), 0);
	assert_int_equal(rs.type, KW_KAD_FIND_NODE);
	expect = (unsigned)kw_kad_rt_size(kw_kad_table(a->k)) - 1;
	if (expect > K)
		expect = K;
	if (expect > KW_KAD_MAX_PEERS)
		expect = KW_KAD_MAX_PEERS;
	assert_int_equal(rs.n_peers, expect);
	key_of(&target, target_key);
	for (unsigned i = 0; i < rs.n_peers; i++) {
		struct kw_peer_id id;
		uint8_t k1[32];

		assert_int_equal(rs.peers[i].list, KW_KAD_CLOSER);
		assert_true(rs.peers[i].n_addrs >= 1);
		id.len = rs.peers[i].id_len;
		memcpy(id.bytes, rs.peers[i].id, id.len);
		assert_false(kw_peer_id_equal(&id, &p->id));
		assert_false(kw_peer_id_equal(&id, &a->id));
		key_of(&id, k1);
		if (i > 0) {
			struct kw_peer_id prev;
			uint8_t k0[32];

			prev.len = rs.peers[i - 1].id_len;
			memcpy(prev.bytes, rs.peers[i - 1].id, prev.len);
			key_of(&prev, k0);
			assert_true(xor_cmp(k0, k1, target_key) < 0);   /* closest first */
		}
	}
}

static void test_kad_find_node_for_self_lists_self_with_addrs(void **state)
{
	struct tnode *a, *b;

	(void)state;
	a = add_node();
	b = add_node();
	kw_kad_msg_init(&rq, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&rq, a->id.bytes, a->id.len), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
	assert_int_equal(rs.n_peers, 1);
	assert_memory_equal(rs.peers[0].id, a->id.bytes, a->id.len);
	assert_int_equal(rs.peers[0].n_addrs, 1);
	assert_memory_equal(rs.peers[0].addrs[0], a->ma.bytes, a->ma.len);
}

static void test_kad_ping_is_answered(void **state)
{
	struct tnode *a, *b;

	(void)state;
	a = add_node();
	b = add_node();
	kw_kad_msg_init(&rq, KW_KAD_PING);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
	assert_int_equal(rs.type, KW_KAD_PING);
}

static void test_kad_unknown_type_is_refused_and_counted(void **state)
{
	struct tnode *a, *b;
	struct kw_kad_stats st;

	(void)state;
	a = add_node();
	b = add_node();
	kw_kad_msg_init(&rq, KW_KAD_PING);
	rq.type = 77;
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), -KW_EPROTO);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.requests_refused, 1);
}

static void test_kad_client_mode_refuses_every_request(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *b;
	struct kw_kad_stats st;
	static const enum kw_kad_msg_type types[] = { KW_KAD_PUT_VALUE, KW_KAD_GET_VALUE,
		KW_KAD_ADD_PROVIDER, KW_KAD_GET_PROVIDERS, KW_KAD_FIND_NODE, KW_KAD_PING };

	(void)state;
	base_cfg(&c);
	c.client_mode = true;
	a = add_node_cfg(&c);
	b = add_node();
	for (unsigned i = 0; i < 6; i++) {
		kw_kad_msg_init(&rq, types[i]);
		assert_int_equal(kw_kad_msg_set_key(&rq, b->id.bytes, b->id.len), 0);
		assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), -KW_EPROTO);
	}
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.requests_refused, 6);
	assert_int_equal(st.requests_in, 6);
}

static void test_kad_put_value_with_other_record_key_is_badmsg(void **state)
{
	struct tnode *a, *b;
	static const uint8_t v[] = "x";

	(void)state;
	a = add_node();
	b = add_node();
	kw_kad_msg_init(&rq, KW_KAD_PUT_VALUE);
	assert_int_equal(kw_kad_msg_set_key(&rq, (const uint8_t *)"/kwaai/a", 8), 0);
	assert_int_equal(kw_kad_msg_set_record(&rq, (const uint8_t *)"/kwaai/b", 8, v, 1, NULL), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), -KW_EBADMSG);
}

static void build_network(unsigned n);

/* ---- records and providers ----------------------------------------------------------------- */

static struct kw_privkey *test_key(void)
{
	static struct kw_privkey key;
	static bool made;

	if (!made) {
		assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &key), 0);
		made = true;
	}
	return &key;
}

/* A node with the test's signing key (it can put /kwaai/ records). */
static struct tnode *add_writer(void)
{
	struct kw_kad_cfg c;

	base_cfg(&c);
	c.key = test_key();
	return add_node_cfg(&c);
}

/* b's address with /p2p/ appended: what bootstrap takes. */
static struct kw_multiaddr p2p_addr(const struct tnode *b)
{
	struct kw_multiaddr ma = b->ma;

	assert_int_equal(kw_maddr_append_peer_id(&ma, &b->id), 0);
	return ma;
}

/* n new nodes in p[], each seen by a. */
static void add_seen(struct tnode *a, struct tnode **p, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		p[i] = add_node();
		seen(a, p[i]);
	}
}


/* a looks itself up (get_closest of its own id) and the loop runs until done or ms. */
static void lookup_self(struct tnode *a, struct res *r, uint64_t ms)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done, r), 0);
	run_until(&r->done, ms);
}

/*
 * Adds nodes until K fall in a's bucket 0 (keys differing from a's in the first bit) and one
 * more does; a sees the K in order, 1 ms apart (members[0] is the least recently seen).
 * Return: the extra one, not seen by a.
 */
static struct tnode *fill_bucket0(struct tnode *a, struct tnode **members)
{
	struct tnode *newcomer = NULL;
	uint8_t self_key[32];
	unsigned nm = 0;

	key_of(&a->id, self_key);
	while (!newcomer) {
		struct tnode *n = add_node();
		uint8_t kk[32];

		key_of(&n->id, kk);
		if (kw_kad_rt_cpl(kk, self_key) != 0)
			continue;
		if (nm < K)
			members[nm++] = n;
		else
			newcomer = n;
	}
	for (unsigned i = 0; i < K; i++) {
		seen(a, members[i]);
		run_for(1);
	}
	return newcomer;
}

static const uint8_t rkey[] = "/kwaai/test";
#define RKLEN (sizeof(rkey) - 1)

/* w puts "v1" under rkey (on_done fills *r). */
static void put_v1(struct tnode *w, struct res *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(kw_kad_put_value(w->k, rkey, RKLEN, (const uint8_t *)"v1", 2, on_done, r),
			 0);
}

/* A /kwaai/test record sealed with the test key, valid for an hour from now. */
static size_t sealed(const char *v, uint64_t seq, uint8_t *out, size_t cap)
{
	long n = kw_kad_kwaai_seal(test_key(), rkey, RKLEN, (const uint8_t *)v, strlen(v), seq,
				   test_wall(NULL) + 3600000u, out, cap);

	assert_true(n > 0);
	return (size_t)n;
}

static void put_req(const uint8_t *val, size_t vlen)
{
	kw_kad_msg_init(&rq, KW_KAD_PUT_VALUE);
	assert_int_equal(kw_kad_msg_set_key(&rq, rkey, RKLEN), 0);
	assert_int_equal(kw_kad_msg_set_record(&rq, rkey, RKLEN, val, vlen, NULL), 0);
}

static void test_kad_put_value_is_stored_and_echoed(void **state)
{
	struct tnode *a, *b;
	uint8_t v[1024];
	size_t n = sealed("hello", 1, v, sizeof(v));
	const uint8_t *got;
	size_t glen;

	(void)state;
	a = add_node();
	b = add_node();
	put_req(v, n);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
	assert_int_equal(rs.type, KW_KAD_PUT_VALUE);
	assert_true(rs.has_record);
	assert_int_equal(rs.rec_value_len, n);
	assert_memory_equal(rs.rec_value, v, n);
	assert_int_equal(kw_kad_store_get(kw_kad_store(a->k), rkey, RKLEN, kw_loop_now(&loop), &got,
					  &glen), 0);
	assert_int_equal(glen, n);
	assert_memory_equal(got, v, n);
}

static void test_kad_put_value_with_bad_signature_is_refused(void **state)
{
	struct tnode *a, *b;
	uint8_t v[1024];
	size_t n = sealed("hello", 1, v, sizeof(v));
	const uint8_t *got;
	size_t glen;
	struct kw_kad_stats st;

	(void)state;
	a = add_node();
	b = add_node();
	v[n - 1] ^= 1;                       /* the signature is the envelope's last field */
	put_req(v, n);
	assert_true(kw_kad_handle_request(a->k, &b->id, &rq, &rs) < 0);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.requests_refused, 1);
	assert_int_equal(kw_kad_store_get(kw_kad_store(a->k), rkey, RKLEN, kw_loop_now(&loop), &got,
					  &glen), -KW_ENOENT);
}

static void test_kad_get_value_returns_record_and_closer_peers(void **state)
{
	struct tnode *a, *b, *c;
	uint8_t v[1024];
	size_t n = sealed("hello", 1, v, sizeof(v));

	(void)state;
	a = add_node();
	b = add_node();
	c = add_node();
	for (unsigned i = 0; i < 5; i++)
		seen(a, add_node());
	put_req(v, n);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
	kw_kad_msg_init(&rq, KW_KAD_GET_VALUE);
	assert_int_equal(kw_kad_msg_set_key(&rq, rkey, RKLEN), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &c->id, &rq, &rs), 0);
	assert_int_equal(rs.type, KW_KAD_GET_VALUE);
	assert_true(rs.has_record);
	assert_int_equal(rs.rec_key_len, RKLEN);
	assert_int_equal(rs.rec_value_len, n);
	assert_memory_equal(rs.rec_value, v, n);
	assert_true(rs.rec_time[0] != 0);    /* timeReceived, RFC 3339 */
	assert_int_equal(rs.n_peers, 5 < KW_KAD_MAX_PEERS ? 5 : KW_KAD_MAX_PEERS);
}

static void mh_of(const char *text, uint8_t mh[34])
{
	mh[0] = 0x12;
	mh[1] = 0x20;
	crypto_hash_sha256(mh + 2, (const uint8_t *)text, strlen(text));
}

static void provider_req(const struct tnode *p, const uint8_t *mh)
{
	struct kw_kad_peer *pp;

	kw_kad_msg_init(&rq, KW_KAD_ADD_PROVIDER);
	assert_int_equal(kw_kad_msg_set_key(&rq, mh, 34), 0);
	assert_int_equal(kw_kad_msg_add_peer(&rq, KW_KAD_PROVIDER, p->id.bytes, p->id.len,
					     KW_KAD_CONNECTED, &pp), 0);
	assert_int_equal(kw_kad_peer_add_maddr(pp, &p->ma), 0);
}

static void test_kad_add_provider_is_taken_only_from_the_provider(void **state)
{
	struct tnode *a, *b, *c;
	uint8_t mh[34];
	struct kw_kad_provider out[4];

	(void)state;
	a = add_node();
	b = add_node();
	c = add_node();
	mh_of("content", mh);
	provider_req(b, mh);
	assert_int_equal(kw_kad_handle_request(a->k, &c->id, &rq, &rs), -KW_EPERM);   /* c for b */
	assert_int_equal(kw_kad_store_get_providers(kw_kad_store(a->k), mh, 34, kw_loop_now(&loop),
						    out, 4), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), KW_KAD_NO_REPLY);
	assert_int_equal(kw_kad_store_get_providers(kw_kad_store(a->k), mh, 34, kw_loop_now(&loop),
						    out, 4), 1);
	assert_true(kw_peer_id_equal(&out[0].id, &b->id));
}

static void test_kad_get_providers_returns_providers_and_closer_peers(void **state)
{
	struct tnode *a, *b, *c;
	uint8_t mh[34];
	unsigned prov = 0, closer = 0;

	(void)state;
	a = add_node();
	b = add_node();
	c = add_node();
	for (unsigned i = 0; i < 4; i++)
		seen(a, add_node());
	mh_of("content", mh);
	provider_req(b, mh);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), KW_KAD_NO_REPLY);
	kw_kad_msg_init(&rq, KW_KAD_GET_PROVIDERS);
	assert_int_equal(kw_kad_msg_set_key(&rq, mh, 34), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &c->id, &rq, &rs), 0);
	assert_int_equal(rs.type, KW_KAD_GET_PROVIDERS);
	for (unsigned i = 0; i < rs.n_peers; i++) {
		if (rs.peers[i].list == KW_KAD_PROVIDER) {
			prov++;
			assert_memory_equal(rs.peers[i].id, b->id.bytes, b->id.len);
			assert_int_equal(rs.peers[i].n_addrs, 1);
			assert_memory_equal(rs.peers[i].addrs[0], b->ma.bytes, b->ma.len);
		} else {
			closer++;
		}
	}
	assert_int_equal(prov, 1);
	if (KW_KAD_MAX_PEERS >= 5)
		assert_int_equal(closer, 4);
}

static void test_kad_put_value_reaches_peers_and_get_value_finds_it(void **state)
{
	struct tnode *w;
	struct res r;
	const uint8_t *inner;
	size_t ilen;
	uint64_t seq;

	(void)state;
	build_network(60);
	w = add_writer();
	for (unsigned i = 0; i < 60; i += 6)
		seen(w, &nodes[i]);
	put_v1(w, &r);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.stored, K < 60 ? K : 60);   /* the k closest accepted it */
	/* a node that never talked to w finds it */
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_value(nodes[31].k, rkey, RKLEN, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_int_equal(kw_kad_kwaai_open(r.value, r.value_len, &inner, &ilen, &seq), 0);
	assert_int_equal(ilen, 2);
	assert_memory_equal(inner, "v1", 2);
}

static bool has_value(const struct tnode *n, const uint8_t *v, size_t len)
{
	const uint8_t *got;
	size_t glen;

	return kw_kad_store_get(kw_kad_store(n->k), rkey, RKLEN, kw_loop_now(&loop), &got,
				&glen) == 0 && glen == len && memcmp(got, v, len) == 0;
}

static void test_kad_get_value_corrects_peers_holding_an_older_record(void **state)
{
	struct tnode *w, *y = NULL;
	struct res r;
	uint8_t v2[1024];
	size_t n2;
	unsigned before = 0, after = 0;

	(void)state;
	build_network(40);
	w = add_writer();
	for (unsigned i = 0; i < 40; i += 4)
		seen(w, &nodes[i]);
	put_v1(w, &r);
	run_until(&r.done, 120000);
	assert_true(r.stored >= 2);
	/* one holder gets a newer record directly; the others keep v1 */
	n2 = sealed("v2", test_wall(NULL) + 1000000u, v2, sizeof(v2));
	for (unsigned i = 0; i < 40 && !y; i++) {
		const uint8_t *got;
		size_t glen;

		if (kw_kad_store_get(kw_kad_store(nodes[i].k), rkey, RKLEN, kw_loop_now(&loop), &got,
				     &glen) == 0)
			y = &nodes[i];
	}
	assert_non_null(y);
	put_req(v2, n2);
	assert_int_equal(kw_kad_handle_request(y->k, &w->id, &rq, &rs), 0);
	for (unsigned i = 0; i < 40; i++)
		before += has_value(&nodes[i], v2, n2);
	assert_int_equal(before, 1);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_value(w->k, rkey, RKLEN, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.value_len, n2);
	assert_memory_equal(r.value, v2, n2);   /* the higher sequence number wins */
	assert_true(r.stored >= 1);              /* corrections accepted */
	for (unsigned i = 0; i < 40; i++)
		after += has_value(&nodes[i], v2, n2);
	assert_int_equal(after, before + r.stored);
}

static void test_kad_get_value_of_unknown_key_is_enoent(void **state)
{
	struct res r;

	(void)state;
	build_network(30);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_value(nodes[3].k, rkey, RKLEN, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, -KW_ENOENT);
	assert_true(r.messages > 0);
}

static void test_kad_provide_then_find_providers_from_another_node(void **state)
{
	struct res r;
	uint8_t mh[34];

	(void)state;
	build_network(60);
	mh_of("model shard 7", mh);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_provide(nodes[2].k, mh, 34, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.stored, K < 59 ? K : 59);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_find_providers(nodes[45].k, mh, 34, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 1);
	assert_true(kw_peer_id_equal(&r.peers[0], &nodes[2].id));
}

/* ---- rate limit ------------------------------------------------------------------------------ */

static void test_kad_rate_limit_bounds_a_flood_and_serves_others(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *p, *q;
	struct kw_kad_stats st;
	unsigned ok = 0, limited = 0;

	(void)state;
	base_cfg(&c);
	c.rate_per_peer = 5;
	c.rate_burst = 10;
	a = add_node_cfg(&c);
	p = add_node();
	q = add_node();
	kw_kad_msg_init(&rq, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&rq, q->id.bytes, q->id.len), 0);
	for (unsigned i = 0; i < 1000; i++) {
		int rc = kw_kad_handle_request(a->k, &p->id, &rq, &rs);

		if (rc == 0)
			ok++;
		else if (rc == -KW_ELIMIT)
			limited++;
	}
	assert_int_equal(ok, 10);            /* the burst, at one instant */
	assert_int_equal(limited, 990);
	assert_int_equal(kw_kad_handle_request(a->k, &q->id, &rq, &rs), 0);   /* q unaffected */
	run_for(1000);                       /* one second refills rate_per_peer tokens */
	ok = 0;
	for (unsigned i = 0; i < 100; i++)
		ok += kw_kad_handle_request(a->k, &p->id, &rq, &rs) == 0;
	assert_int_equal(ok, 5);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.requests_rate_limited, 990 + 95);
}

static void test_kad_rate_limit_table_reuses_least_recent_slot(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *p[3];

	(void)state;
	base_cfg(&c);
	c.rate_per_peer = 1;
	c.rate_burst = 1;
	c.rate_peers = 2;
	a = add_node_cfg(&c);
	for (unsigned i = 0; i < 3; i++)
		p[i] = add_node();
	kw_kad_msg_init(&rq, KW_KAD_PING);
	assert_int_equal(kw_kad_handle_request(a->k, &p[0]->id, &rq, &rs), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &p[0]->id, &rq, &rs), -KW_ELIMIT);
	run_for(10);
	assert_int_equal(kw_kad_handle_request(a->k, &p[1]->id, &rq, &rs), 0);
	run_for(10);
	/* a third requester takes p[0]'s slot (least recently used), starting full */
	assert_int_equal(kw_kad_handle_request(a->k, &p[2]->id, &rq, &rs), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &p[1]->id, &rq, &rs), -KW_ELIMIT);
	/* p[0] was forgotten: it gets a fresh bucket (the table is bounded, not exact) */
	assert_int_equal(kw_kad_handle_request(a->k, &p[0]->id, &rq, &rs), 0);
}

/* ---- lookups ---------------------------------------------------------------------------------- */

/* n nodes; each knows a few ring neighbours and random peers, then all look themselves up
 * (what bootstrap does), which fills the tables as in a real network. */
static void build_network(unsigned n)
{
	struct res r[MAXN];

	for (unsigned i = 0; i < n; i++)
		add_node();
	for (unsigned i = 0; i < n; i++) {
		for (unsigned d = 1; d <= 2; d++)
			seen(&nodes[i], &nodes[(i + d) % n]);
		for (unsigned d = 0; d < 3; d++)
			seen(&nodes[i], &nodes[kw_prng_next(&prng) % n]);
	}
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(kw_kad_get_closest(nodes[i].k, nodes[i].id.bytes, nodes[i].id.len,
						    on_done, &r[i]), 0);
		run_until(&r[i].done, 120000);
		assert_true(r[i].done);
	}
}

static void test_kad_lookup_finds_a_peer_it_never_knew(void **state)
{
	struct res r;
	int target = -1;
	struct kw_kad_stats st;

	(void)state;
	build_network(120);
	for (unsigned i = 119; i > 0; i--)
		if (!kw_kad_rt_find(kw_kad_table(nodes[0].k), &nodes[i].id)) {
			target = (int)i;
			break;
		}
	assert_true(target > 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_find_peer(nodes[0].k, &nodes[target].id, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_true(r.done);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 1);
	assert_true(kw_peer_id_equal(&r.peers[0], &nodes[target].id));
	assert_true(r.rounds >= 1);
	assert_true(r.messages >= 1 && r.messages < 120);
	kw_kad_get_stats(nodes[0].k, &st);
	assert_true(st.lookups_ok >= 2);
}

static void test_kad_get_closest_returns_the_k_closest_of_the_network(void **state)
{
	struct res r;
	struct kw_peer_id target;
	uint8_t tk[32];
	unsigned n = 120, better = 0, want;

	(void)state;
	if (KW_KAD_MAX_PEERS < K)
		skip();   /* a reply cannot name k peers: no exactness to expect from the lookup */
	build_network(n);
	rand_id(&target);
	key_of(&target, tk);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_closest(nodes[5].k, target.bytes, target.len, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	want = K < n - 1 ? K : n - 1;
	assert_int_equal(r.n_peers, want);
	/* the true k closest of the whole network, by brute force: the lookup found them all
	 * (the result is sorted, so the last one is the k-th closest found) */
	{
		uint8_t last[32];

		key_of(&r.peers[r.n_peers - 1], last);
		for (unsigned i = 0; i < n; i++) {
			uint8_t ki[32];

			if (i == 5)
				continue;
			key_of(&nodes[i].id, ki);
			if (xor_cmp(ki, last, tk) <= 0)
				better++;
		}
	}
	assert_int_equal(better, want);
}

static void test_kad_lookup_stops_when_the_k_closest_answered(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct res r;
	struct kw_peer_id target;
	uint8_t tk[32];
	const struct kw_kad_rt_entry *near[64];
	size_t nt, want;

	(void)state;
	base_cfg(&c);
	c.alpha = 1;                         /* one request at a time: nothing in flight at the end */
	a = add_node_cfg(&c);
	/* peers that know nobody but a (whom they never name to a): every answer is empty */
	for (unsigned i = 0; i < 3 * K; i++)
		seen(a, add_node());
	run_for(100);                        /* liveness probes of full buckets settle */
	nt = kw_kad_rt_size(kw_kad_table(a->k));
	assert_true(nt > K);
	rand_id(&target);
	key_of(&target, tk);
	want = kw_kad_rt_nearest(kw_kad_table(a->k), tk, near, K);
	watch_src = &a->id;
	watch_key = &target;
	watching = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_closest(a->k, target.bytes, target.len, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	/* exactly the k closest were asked, one each, and the lookup stopped there */
	assert_int_equal(r.n_peers, want);
	assert_int_equal(r.messages, want);
	assert_int_equal(watch_n, want);
	for (size_t i = 0; i < want; i++)
		assert_true(kw_peer_id_equal(&r.peers[i], &near[i]->id));
	assert_int_equal(r.rounds, 1);
}

static void test_kad_silent_peers_time_out_and_leave_the_table(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *live, *s[3];
	struct res r;
	struct kw_kad_stats st;
	uint64_t t0;

	(void)state;
	base_cfg(&c);
	c.alpha = 4;                         /* all four asked at once: one timeout to wait */
	a = add_node_cfg(&c);
	live = add_node();
	seen(a, live);
	for (unsigned i = 0; i < 3; i++) {
		s[i] = add_node();
		s[i]->silent = true;
		seen(a, s[i]);
	}
	memset(&r, 0, sizeof(r));
	t0 = kw_loop_now(&loop);
	assert_int_equal(kw_kad_get_closest(a->k, live->id.bytes, live->id.len, on_done, &r), 0);
	run_until(&r.done, 60000);
	assert_true(r.done);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 1);      /* only the live peer answered */
	assert_true(kw_peer_id_equal(&r.peers[0], &live->id));
	/* finished once the query timeout passed, long before the transport's own error */
	assert_true(r.at_ms - t0 >= QTIMEOUT && r.at_ms - t0 < QTIMEOUT + 1000);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.timeouts, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_null(kw_kad_rt_find(kw_kad_table(a->k), &s[i]->id));
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &live->id));
	run_for(SILENT_MS + 1000);           /* the late errors are ignored */
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.late_replies, 3);
	assert_int_equal(r.calls, 1);
}

static void test_kad_alpha_bounds_requests_in_flight(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct res r;

	(void)state;
	build_network(60);
	base_cfg(&c);
	c.alpha = 2;
	c.max_lookups = 1;
	a = add_node_cfg(&c);
	for (unsigned i = 0; i < 60; i++)
		seen(a, &nodes[i]);
	watch_src = &a->id;
	watch_key = &nodes[7].id;            /* the lookup's requests, not liveness probes */
	watching = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_closest(a->k, nodes[7].id.bytes, nodes[7].id.len, on_done, &r),
			 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, 0);
	assert_true(r.messages > 2);
	assert_int_equal(watch_high, 2);
}

static void test_kad_lookups_run_concurrently_up_to_the_slot_pool(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct res r[8];
	unsigned done = 0;
	struct kw_kad_stats st;

	(void)state;
	build_network(60);
	base_cfg(&c);
	c.max_lookups = 6;
	a = add_node_cfg(&c);
	for (unsigned i = 0; i < 60; i += 3)
		seen(a, &nodes[i]);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(kw_kad_find_peer(a->k, &nodes[i * 3 + 1].id, on_done, &r[i]), 0);
	assert_int_equal(kw_kad_find_peer(a->k, &nodes[50].id, on_done, &r[6]), -KW_ELIMIT);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.lookups_active, 6);
	run_for(20000);                      /* before a's first bucket refresh (60 s) */
	for (unsigned i = 0; i < 6; i++) {
		done += r[i].done;
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, 0);
		assert_true(kw_peer_id_equal(&r[i].peers[0], &nodes[i * 3 + 1].id));
	}
	assert_int_equal(done, 6);
	assert_false(r[6].done);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.lookups_active, 0);
	assert_int_equal(st.lookups_high, 6);
}

static void test_kad_completion_is_never_synchronous(void **state)
{
	struct tnode *a;
	struct res r;

	(void)state;
	a = add_node();                      /* empty table: nothing to ask */
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done, &r), 0);
	assert_false(r.done);
	run_for(1);
	assert_true(r.done);
	assert_int_equal(r.err, -KW_ENOTCONN);   /* nobody answered */
	assert_int_equal(r.n_peers, 0);
	assert_int_equal(r.messages, 0);
}

static void test_kad_find_peer_not_in_network_is_enoent(void **state)
{
	struct res r;
	struct kw_peer_id ghost;

	(void)state;
	build_network(40);
	rand_id(&ghost);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_find_peer(nodes[0].k, &ghost, on_done, &r), 0);
	run_until(&r.done, 120000);
	assert_int_equal(r.err, -KW_ENOENT);
	assert_int_equal(r.calls, 1);
}

static void test_kad_lookup_deadline_reports_etimedout(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct res r;

	(void)state;
	base_cfg(&c);
	c.lookup_timeout_ms = 1000;
	c.query_timeout_ms = 5000;           /* the deadline comes first */
	a = add_node_cfg(&c);
	for (unsigned i = 0; i < 4; i++) {
		struct tnode *s = add_node();

		s->silent = true;
		seen(a, s);
	}
	lookup_self(a, &r, 10000);
	assert_int_equal(r.err, -KW_ETIMEDOUT);
	assert_int_equal(r.calls, 1);
}

static void test_kad_destroy_cancels_operations_once(void **state)
{
	struct tnode *a, *s;
	struct res r[2];

	(void)state;
	a = add_node();
	s = add_node();
	s->silent = true;
	seen(a, s);
	memset(r, 0, sizeof(r));
	assert_int_equal(kw_kad_get_closest(a->k, s->id.bytes, s->id.len, on_done, &r[0]), 0);
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done, &r[1]), 0);
	run_for(100);
	assert_false(r[0].done);
	kw_kad_destroy(a->k);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].err, -KW_ECANCELED);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].err, -KW_ECANCELED);
	a->k = NULL;                         /* the transport drops replies to a destroyed node */
	run_for(SILENT_MS + 1000);
	assert_int_equal(r[0].calls, 1);
}

static struct res destroy_res[2];

static void on_done_destroy(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	on_done(k, r, user);
	kw_kad_destroy(k);
}

static void test_kad_destroy_inside_a_callback_calls_each_callback_once(void **state)
{
	struct tnode *a;

	(void)state;
	a = add_node();
	memset(destroy_res, 0, sizeof(destroy_res));
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done_destroy,
					    &destroy_res[0]), 0);
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done,
					    &destroy_res[1]), 0);
	run_for(10);
	assert_int_equal(destroy_res[0].calls, 1);
	assert_int_equal(destroy_res[0].err, -KW_ENOTCONN);   /* empty table */
	assert_int_equal(destroy_res[1].calls, 1);
	assert_int_equal(destroy_res[1].err, -KW_ECANCELED);
	/* a destroyed node starts nothing and serves nothing */
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done,
					    &destroy_res[1]), -KW_ESHUTDOWN);
	kw_kad_msg_init(&rq, KW_KAD_PING);
	assert_int_equal(kw_kad_handle_request(a->k, &a->id, &rq, &rs), -KW_ESHUTDOWN);
	run_for(1000);
	assert_int_equal(destroy_res[0].calls, 1);
	assert_int_equal(destroy_res[1].calls, 1);
}

/* ---- routing table upkeep ---------------------------------------------------------------------- */

static void test_kad_full_bucket_probe_replaces_a_dead_member(void **state)
{
	struct tnode *a, *newcomer;
	struct tnode *members[64];

	(void)state;
	a = add_node();
	newcomer = fill_bucket0(a, members);  /* members[0] is the least recently seen */
	members[0]->down = true;
	seen(a, newcomer);                   /* full bucket: a probe goes to members[0] */
	assert_null(kw_kad_rt_find(kw_kad_table(a->k), &newcomer->id));
	run_for(1000);
	assert_null(kw_kad_rt_find(kw_kad_table(a->k), &members[0]->id));
	if (CONFIG_KW_NET_KAD_REPLACEMENTS > 0)
		assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &newcomer->id));
}

static void test_kad_bootstrap_retries_with_doubling_backoff(void **state)
{
	struct tnode *a, *b;
	struct kw_multiaddr ma;
	struct kw_kad_stats st;
	uint64_t t0;

	(void)state;
	a = add_node();
	b = add_node();
	b->down = true;
	ma = p2p_addr(b);
	assert_int_equal(kw_kad_bootstrap_add(a->k, &b->ma), -KW_EINVAL);   /* no /p2p */
	assert_int_equal(kw_kad_bootstrap_add(a->k, &ma), 0);
	assert_int_equal(kw_kad_bootstrap_add(a->k, &ma), -KW_EALREADY);
	watch_src = &a->id;
	watch_dst = &b->id;
	watching = true;
	t0 = kw_loop_now(&loop);
	run_for(1400000);
	assert_true(watch_n >= 12);
	/* first try at the next pass; each failure (LAT_MS later) waits 1 s, 2 s, 4 s ... 5 min */
	assert_true(watch_times[0] - t0 <= 1);
	for (unsigned i = 1; i < 12; i++) {
		uint64_t backoff = 1000u << (i - 1);

		if (backoff > 300000u)
			backoff = 300000u;
		assert_int_equal(watch_times[i] - watch_times[i - 1], backoff + LAT_MS);
	}
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.bootstrap_attempts, watch_n);
	/* b comes back: the next try succeeds, b joins the table, a looks itself up */
	b->down = false;
	run_for(300000 + 1000);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.bootstrap_ok, 1);
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &b->id));
	assert_true(st.lookups_started >= 1);
}

static void test_kad_node_alone_keeps_working(void **state)
{
	struct tnode *a, *b;
	struct kw_multiaddr ma;
	struct res r;

	(void)state;
	a = add_node();
	b = add_node();
	b->down = true;
	ma = p2p_addr(b);
	assert_int_equal(kw_kad_bootstrap_add(a->k, &ma), 0);
	run_for(30000);
	lookup_self(a, &r, 1000);
	assert_int_equal(r.err, -KW_ENOTCONN);
	kw_kad_msg_init(&rq, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&rq, a->id.bytes, a->id.len), 0);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
}

/* A lookup whose requests our own transport refuses (no stream state or buffer free) keeps
 * the refused peers in the table, pauses, and succeeds once capacity returns. */
static void test_kad_local_refusals_keep_the_table_and_the_lookup_succeeds(void **state)
{
	struct tnode *a, *p[4];
	struct res r;
	struct kw_kad_stats st;

	(void)state;
	a = add_node();
	add_seen(a, p, 4);
	a->refuse_until_ms = kw_loop_now(&loop) + 100;   /* shorter than the 4 tries (175 ms) */
	lookup_self(a, &r, 10000);
	assert_true(r.done);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &p[i]->id));
	kw_kad_get_stats(a->k, &st);
	assert_true(a->refused > 0);
	assert_int_equal(st.local_refusals, a->refused);
	assert_int_equal(st.replies_failed, 0);
	/* paused between tries (25, 50, 100 ms), not one retry per loop pass */
	assert_true(a->refused <= 4u * 3u);
}

/* The same when the refusal arrives later, through kw_kad_on_reply (a stream open that
 * failed for want of our own buffers). */
static void test_kad_late_local_refusals_keep_the_table(void **state)
{
	struct tnode *a, *p[4];
	struct res r;
	struct kw_kad_stats st;

	(void)state;
	a = add_node();
	add_seen(a, p, 4);
	a->refuse_async_until_ms = kw_loop_now(&loop) + 100;
	lookup_self(a, &r, 10000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &p[i]->id));
	kw_kad_get_stats(a->k, &st);
	assert_true(st.local_refusals > 0);
	assert_int_equal(st.replies_failed, 0);
}

/* A peer that really fails (connection refused) still leaves the table, next to peers
 * that were only refused locally. */
static void test_kad_peer_failure_still_drops_the_peer(void **state)
{
	struct tnode *a, *live, *down;
	struct res r;

	(void)state;
	a = add_node();
	live = add_node();
	down = add_node();
	down->down = true;
	seen(a, live);
	seen(a, down);
	a->refuse_until_ms = kw_loop_now(&loop) + 60;
	lookup_self(a, &r, 10000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 1);
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &live->id));
	assert_null(kw_kad_rt_find(kw_kad_table(a->k), &down->id));
}

/* A client that knows only its bootstrap peer: that peer refuses one request (its per-peer
 * rate limit resets the stream) and stays in the table, marked stale, so the next lookup
 * still has someone to ask and finds the peer. (Dropping it left the table empty: every
 * lookup ended at once with nobody asked until the bootstrap came round again.) */
static void test_kad_refused_request_keeps_the_only_peer(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *b, *x;
	struct res r;
	struct kw_kad_rt_stats rst;

	(void)state;
	base_cfg(&c);
	c.client_mode = true;
	a = add_node_cfg(&c);
	base_cfg(&c);
	c.rate_burst = 1;
	c.rate_per_peer = 1;                 /* one token a second */
	b = add_node_cfg(&c);
	x = add_node();
	seen(a, b);
	seen(b, x);
	/* a's earlier request took b's only token */
	kw_kad_msg_init(&rq, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&rq, a->id.bytes, a->id.len), 0);
	assert_int_equal(kw_kad_handle_request(b->k, &a->id, &rq, &rs), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_find_peer(a->k, &x->id, on_done, &r), 0);
	run_until(&r.done, 10000);
	assert_int_equal(r.err, -KW_ENOENT);  /* refused: nobody else to ask */
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &b->id));
	assert_int_equal(kw_kad_rt_find(kw_kad_table(a->k), &b->id)->fails, 1);
	kw_kad_rt_get_stats(kw_kad_table(a->k), &rst);
	assert_int_equal(rst.stale, 1);
	assert_int_equal(rst.evicted, 0);
	run_for(1000);                       /* b's bucket refills */
	memset(&r, 0, sizeof(r));
	assert_int_equal(kw_kad_find_peer(a->k, &x->id, on_done, &r), 0);
	run_until(&r.done, 10000);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n_peers, 1);
	assert_true(kw_peer_id_equal(&r.peers[0], &x->id));
	assert_int_equal(kw_kad_rt_find(kw_kad_table(a->k), &b->id)->fails, 0);
	kw_kad_rt_get_stats(kw_kad_table(a->k), &rst);
	assert_int_equal(rst.stale, 0);
}

/* Refused for good (say every outbound connection slot is taken): after four tries the
 * lookup skips the peer instead of waiting for its deadline, and the table keeps it. */
static void test_kad_lookup_refused_for_good_skips_the_peer_and_keeps_it(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *p;
	struct res r;
	uint64_t t0;

	(void)state;
	base_cfg(&c);
	c.lookup_timeout_ms = 3000;
	a = add_node_cfg(&c);
	p = add_node();
	seen(a, p);
	a->refuse_until_ms = UINT64_MAX;
	memset(&r, 0, sizeof(r));
	t0 = kw_loop_now(&loop);
	assert_int_equal(kw_kad_get_closest(a->k, a->id.bytes, a->id.len, on_done, &r), 0);
	run_until(&r.done, 60000);
	assert_true(r.done);
	assert_int_equal(r.err, -KW_ENOTCONN);          /* nobody answered */
	assert_true(r.at_ms - t0 >= 175 && r.at_ms - t0 < 200);
	assert_int_equal(r.messages, 0);
	assert_int_equal(a->refused, 4);
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &p->id));
}

/* put_value with nobody to store on reports it instead of success. */
static void test_kad_put_value_with_empty_table_is_enotconn(void **state)
{
	struct tnode *w;
	struct res r;

	(void)state;
	w = add_writer();
	put_v1(w, &r);
	run_until(&r.done, 10000);
	assert_true(r.done);
	assert_int_equal(r.err, -KW_ENOTCONN);
	assert_int_equal(r.stored, 0);
}

/* put_value whose PUT_VALUE sends are refused locally for a while still stores on every
 * peer: the fan-out retries instead of counting them as not stored. */
static void test_kad_put_value_fanout_retries_local_refusals(void **state)
{
	struct tnode *w, *p[3];
	struct res r;

	(void)state;
	w = add_writer();
	add_seen(w, p, 3);
	put_v1(w, &r);
	w->refuse_puts_only = true;
	w->refuse_until_ms = kw_loop_now(&loop) + 100;
	run_until(&r.done, 10000);
	assert_true(r.done);
	assert_true(w->refused > 0);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.stored, 3);
}

static void test_kad_refresh_looks_up_due_buckets(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct kw_kad_stats st;

	(void)state;
	build_network(20);
	base_cfg(&c);
	c.refresh_ms = 30000;
	a = add_node_cfg(&c);
	for (unsigned i = 0; i < 20; i++)
		seen(a, &nodes[i]);
	kw_kad_get_stats(a->k, &st);
	assert_int_equal(st.refresh_lookups, 0);
	run_for(61000);                      /* first check one minute after create */
	kw_kad_get_stats(a->k, &st);
	assert_true(st.refresh_lookups >= 1);
	assert_true(st.lookups_ok >= st.refresh_lookups);
}

/* kw_kad_cfg.rng for the tests: a seeded PRNG per node. */
static int test_rng(void *ctx, void *buf, size_t len)
{
	struct kw_prng *r = ctx;
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t v = kw_prng_next(r);
		size_t n = len < sizeof(v) ? len : sizeof(v);

		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
	return 0;
}

/* A refresh key for CPL c hashes to a key sharing exactly c leading bits with ours, for
 * every CPL the refresh uses (0..15), and is a sha2-256-multihash-shaped peer id. */
static void test_kad_refresh_key_lands_in_its_bucket_for_every_cpl(void **state)
{
	struct tnode *a;
	uint8_t self_key[32];

	(void)state;
	a = add_node();
	key_of(&a->id, self_key);
	for (unsigned cpl = 0; cpl < 16; cpl++) {
		for (unsigned rep = 0; rep < 4; rep++) {
			uint8_t key[KAD_REFRESH_KEY_BYTES], kk[32];
			struct kw_peer_id kid = { .len = KAD_REFRESH_KEY_BYTES };
			static const uint8_t zeros[28];

			kad_refresh_key(a->k, cpl, key);
			assert_int_equal(key[0], 0x12);
			assert_int_equal(key[1], 0x20);
			assert_memory_equal(key + 6, zeros, sizeof(zeros));
			memcpy(kid.bytes, key, sizeof(key));
			key_of(&kid, kk);
			assert_int_equal(kw_kad_rt_cpl(kk, self_key), cpl);
		}
	}
}

/* The prefix table answers every prefix asked with an id whose hash starts with it, and the
 * same id each time (go's table is fixed too). */
static void test_kad_refresh_prefix_table_maps_prefix_to_matching_id(void **state)
{
	const uint16_t fixed[] = { 0x0000, 0x0001, 0x8000, 0x7fff, 0xffff };

	(void)state;
	for (unsigned i = 0; i < 5 + 48; i++) {
		uint16_t p = i < 5 ? fixed[i] : (uint16_t)kw_prng_next(&prng);
		uint8_t key[KAD_REFRESH_KEY_BYTES], again[KAD_REFRESH_KEY_BYTES], h[32];

		kad_refresh_key_for_prefix(p, key);
		crypto_hash_sha256(h, key, sizeof(key));
		assert_int_equal(((unsigned)h[0] << 8) | h[1], p);
		kad_refresh_key_for_prefix(p, again);
		assert_memory_equal(key, again, sizeof(key));
	}
}

/* Runs a node with id `id` and a PRNG seeded `seed` as cfg.rng next to the 20 first nodes
 * until its first bucket refresh is done; its refresh keys end up in keylog. The node is
 * destroyed and its id in nodes[] spoiled so that the next one with the same id is reached. */
static void refresh_keys_of(const struct kw_peer_id *id, uint64_t seed)
{
	struct kw_kad_cfg c;
	struct kw_prng r;
	struct tnode *a;

	kw_prng_seed(&r, seed);
	base_cfg(&c);
	c.rng = test_rng;
	c.rng_ctx = &r;
	forced_id = id;
	a = add_node_cfg(&c);
	forced_id = NULL;
	for (unsigned i = 0; i < 20; i++)
		seen(a, &nodes[i]);
	keylog_src = &a->id;
	keylog_n = 0;
	run_for(61000);                      /* the first refresh check is one minute after create */
	keylog_src = NULL;
	kw_kad_destroy(a->k);
	a->k = NULL;
	a->id.bytes[33] ^= 0xff;
}

/* The refresh keys come from cfg.rng: the same seed gives the same keys (a simulation is
 * repeatable), another seed other keys, and every key lands in the bucket it refreshes. */
static void test_kad_refresh_keys_follow_the_rng_seed(void **state)
{
	uint8_t first[16][34], self_key[32];
	unsigned n1;
	struct kw_peer_id id;
	bool cpl_seen[16] = { false };

	(void)state;
	build_network(20);
	rand_id(&id);
	key_of(&id, self_key);
	refresh_keys_of(&id, 42);
	n1 = keylog_n;
	/* base_cfg runs 4 lookups at most and a refresh pass leaves one free: CPLs 0, 1, 2 */
	assert_int_equal(n1, 3);
	memcpy(first, keylog, sizeof(first));
	for (unsigned i = 0; i < n1; i++) {
		struct kw_peer_id kid = { .len = 34 };
		uint8_t kk[32];
		unsigned cpl;

		memcpy(kid.bytes, first[i], 34);
		key_of(&kid, kk);
		cpl = kw_kad_rt_cpl(kk, self_key);
		assert_true(cpl < 3);
		assert_false(cpl_seen[cpl]);
		cpl_seen[cpl] = true;
	}
	refresh_keys_of(&id, 42);
	assert_int_equal(keylog_n, n1);
	assert_memory_equal(keylog, first, n1 * 34);
	refresh_keys_of(&id, 43);
	assert_int_equal(keylog_n, n1);
	assert_memory_not_equal(keylog, first, n1 * 34);
}

/* The bootstrap probe our own transport refuses (-KW_ENOBUFS from request()) is sent again
 * a little later and connects: no backoff, the peer joins the table, the self-lookup runs. */
/*
 * a bootstraps from b while a's own transport refuses for 60 ms (late: the refusal comes
 * through kw_kad_on_reply), checks it took one attempt that connected. Return: a's stats.
 */
static struct kw_kad_stats bootstrap_through_local_refusal(bool late)
{
	struct tnode *a, *b;
	struct kw_multiaddr ma;
	struct kw_kad_stats st;

	a = add_node();
	b = add_node();
	ma = p2p_addr(b);
	/* shorter than the 4 tries (175 ms) */
	if (late)
		a->refuse_async_until_ms = kw_loop_now(&loop) + 60;
	else
		a->refuse_until_ms = kw_loop_now(&loop) + 60;
	assert_int_equal(kw_kad_bootstrap_add(a->k, &ma), 0);
	run_for(500);                        /* well before a backoff retry (1 s) could run */
	kw_kad_get_stats(a->k, &st);
	assert_true(a->refused > 0);
	assert_int_equal(st.local_refusals, a->refused);
	assert_int_equal(st.bootstrap_attempts, 1);
	assert_int_equal(st.bootstrap_ok, 1);
	assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &b->id));
	return st;
}

static void test_kad_bootstrap_probe_retries_a_local_refusal_then_connects(void **state)
{
	struct kw_kad_stats st = bootstrap_through_local_refusal(false);

	(void)state;
	assert_true(st.lookups_started >= 1);
}

/* The same when the refusal comes later through kw_kad_on_reply. */
static void test_kad_bootstrap_probe_retries_a_late_local_refusal_then_connects(void **state)
{
	(void)state;
	bootstrap_through_local_refusal(true);
}

/* Refresh lookups whose requests our transport refuses for a while retry and complete, and
 * every refused peer stays in the table. */
static void test_kad_refresh_lookup_retries_local_refusals_then_succeeds(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a;
	struct kw_kad_stats st;
	bool member[20];
	unsigned n_members = 0;
	uint64_t t0;

	(void)state;
	build_network(20);
	base_cfg(&c);
	a = add_node_cfg(&c);
	t0 = kw_loop_now(&loop);
	for (unsigned i = 0; i < 20; i++)
		seen(a, &nodes[i]);
	/* small builds (k, table size, diversity limits at their minimum) keep only some of them */
	for (unsigned i = 0; i < 20; i++) {
		member[i] = kw_kad_rt_find(kw_kad_table(a->k), &nodes[i].id) != NULL;
		n_members += member[i];
	}
	assert_true(n_members > 0);
	a->refuse_until_ms = t0 + 60000 + 60;  /* the refresh starts at +60 s, refused for 60 ms */
	run_for(62000);
	kw_kad_get_stats(a->k, &st);
	assert_true(st.refresh_lookups >= 1);
	assert_true(a->refused > 0);
	assert_int_equal(st.local_refusals, a->refused);
	assert_int_equal(st.lookups_ok, st.refresh_lookups);
	assert_int_equal(st.replies_failed, 0);
	for (unsigned i = 0; i < 20; i++)
		if (member[i])
			assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &nodes[i].id));
}

/* A liveness check our transport refuses until its deadline gives no verdict: the member
 * stays (go drops a peer only when it failed us). */
static void test_kad_liveness_probe_refused_for_good_keeps_the_member(void **state)
{
	struct tnode *a, *newcomer;
	struct tnode *members[64];
	struct kw_kad_stats st;

	(void)state;
	a = add_node();
	newcomer = fill_bucket0(a, members);  /* bucket 0 full, and one more for it */
	a->refuse_until_ms = UINT64_MAX;
	seen(a, newcomer);                   /* full bucket: a probe of members[0], refused */
	run_for(QTIMEOUT + 1000);
	kw_kad_get_stats(a->k, &st);
	assert_true(a->refused > 0);
	assert_int_equal(st.local_refusals, a->refused);
	for (unsigned i = 0; i < K; i++)
		assert_non_null(kw_kad_rt_find(kw_kad_table(a->k), &members[i]->id));
	assert_null(kw_kad_rt_find(kw_kad_table(a->k), &newcomer->id));
}

static void test_kad_own_records_are_republished_hourly(void **state)
{
	struct tnode *w;
	struct res r;
	struct kw_kad_stats st;
	struct kw_peer_id key_as_id;

	(void)state;
	build_network(16);
	w = add_writer();
	for (unsigned i = 0; i < 16; i++)
		seen(w, &nodes[i]);
	put_v1(w, &r);
	run_until(&r.done, 60000);
	assert_int_equal(r.err, 0);
	key_as_id.len = (uint8_t)RKLEN;
	memcpy(key_as_id.bytes, rkey, RKLEN);
	watch_src = &w->id;
	watch_key = &key_as_id;
	watching = true;
	run_for(50u * 60u * 1000u);          /* not yet */
	kw_kad_get_stats(w->k, &st);
	assert_int_equal(st.republished, 0);
	assert_int_equal(watch_n, 0);
	run_for(15u * 60u * 1000u);          /* past the hour since create */
	kw_kad_get_stats(w->k, &st);
	assert_int_equal(st.republished, 1);
	assert_true(watch_n >= 2);           /* the lookup and the PUT_VALUEs for the key */
}

static void test_kad_store_expiry_runs_on_a_timer(void **state)
{
	struct kw_kad_cfg c;
	struct tnode *a, *b;
	uint8_t v[1024];
	size_t n;
	struct kw_kad_store_stats ss;

	(void)state;
	base_cfg(&c);
	c.store.record_ttl_ms = 5000;
	a = add_node_cfg(&c);
	b = add_node();
	n = sealed("short", 1, v, sizeof(v));
	put_req(v, n);
	assert_int_equal(kw_kad_handle_request(a->k, &b->id, &rq, &rs), 0);
	kw_kad_store_get_stats(kw_kad_store(a->k), &ss);
	assert_int_equal(ss.records, 1);
	run_for(61000);                      /* the expiry pass runs every minute */
	kw_kad_store_get_stats(kw_kad_store(a->k), &ss);
	assert_int_equal(ss.records, 0);
	assert_int_equal(ss.expired, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kad_find_node_lists_k_closest_without_requester, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_find_node_for_self_lists_self_with_addrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_ping_is_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_unknown_type_is_refused_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_client_mode_refuses_every_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_with_other_record_key_is_badmsg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_is_stored_and_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_with_bad_signature_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_get_value_returns_record_and_closer_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_add_provider_is_taken_only_from_the_provider, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_get_providers_returns_providers_and_closer_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_rate_limit_bounds_a_flood_and_serves_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_rate_limit_table_reuses_least_recent_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_lookup_finds_a_peer_it_never_knew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_get_closest_returns_the_k_closest_of_the_network, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_lookup_stops_when_the_k_closest_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_silent_peers_time_out_and_leave_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_alpha_bounds_requests_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_lookups_run_concurrently_up_to_the_slot_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_completion_is_never_synchronous, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_reaches_peers_and_get_value_finds_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_get_value_corrects_peers_holding_an_older_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_get_value_of_unknown_key_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_provide_then_find_providers_from_another_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_find_peer_not_in_network_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_lookup_deadline_reports_etimedout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_destroy_cancels_operations_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_destroy_inside_a_callback_calls_each_callback_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_full_bucket_probe_replaces_a_dead_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_bootstrap_retries_with_doubling_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_node_alone_keeps_working, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_local_refusals_keep_the_table_and_the_lookup_succeeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_late_local_refusals_keep_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_peer_failure_still_drops_the_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_lookup_refused_for_good_skips_the_peer_and_keeps_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_with_empty_table_is_enotconn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_put_value_fanout_retries_local_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refresh_looks_up_due_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refresh_keys_follow_the_rng_seed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refresh_key_lands_in_its_bucket_for_every_cpl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refresh_prefix_table_maps_prefix_to_matching_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_bootstrap_probe_retries_a_local_refusal_then_connects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_bootstrap_probe_retries_a_late_local_refusal_then_connects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refresh_lookup_retries_local_refusals_then_succeeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_liveness_probe_refused_for_good_keeps_the_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_own_records_are_republished_hourly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_store_expiry_runs_on_a_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_refused_request_keeps_the_only_peer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
