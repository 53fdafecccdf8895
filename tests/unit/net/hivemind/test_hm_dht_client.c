/*
 * The Hivemind DHT client (net/hivemind/dht_client.c): five (or six) swarms on the simulated
 * network, each running the DHT; node 0 is everyone's bootstrap peer. Every node's address
 * book is told every listen address, as identify would (the book is what the client dials
 * from). Time is virtual: the DHT clock is a variable per node, the loop's clock the
 * simulated network's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hm_pair.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#define N 6

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *dht;
	struct kw_hm_dht_config cfg;
	struct kw_privkey key;
	char addr[256];
	double skew;              /* this node's clock minus the test's */
};

struct got {
	int done, err;
	struct kw_hm_dht_value v;
	uint8_t val[4096];
	struct kw_hm_dht_store_result s;
	struct kw_hm_dht_pong p;
};

struct fx {
	struct kw_test_net *net;
	struct side s[N];
	int n;
	struct got got[N];
};

static struct fx *g;
static double clock_now = 1700000000.0;
static uint32_t g_beam = 20;

/* The address resolver (what app/hivemind.c wires to kad): the first call finds every
 * lookup slot busy when g_resolve_busy is set; the others are answered by serve_resolves()
 * from the listen addresses, as a kad lookup would find them. */
static bool g_resolve;
static int g_resolve_busy, g_resolve_calls;
static struct {
	struct side *s;
	kw_hm_dht_resolved_fn done;
	void *ctx;
	uint8_t peer[64];
	size_t len;
} g_res[8];
static int g_n_res;
static bool g_ordered_ids;     /* node i gets the id 00..00 (i+1): its distance to key 0 */

static double test_clock(void *arg)
{
	const struct side *s = arg;

	return clock_now + s->skew;
}

/* the nodes' test handles, in index order */
static struct kw_test_node *const *nodes(void)
{
	static struct kw_test_node *t[N];

	for (int j = 0; j < g->n; j++)
		t[j] = g->s[j].t;
	return t;
}

static void pump(int passes)
{
	kw_swarm_test_pump(nodes(), g->n, passes);
}

static const struct kw_hm_limits test_limits = {
	.calls_in = 16, .calls_per_peer = 8, .calls_out = 16, .buf_bytes = 16384,
	.timeout_ms = 2000,
};

static int test_resolve(void *arg, const uint8_t *peer, size_t len, kw_hm_dht_resolved_fn done,
			void *ctx)
{
	g_resolve_calls++;
	if (g_resolve_busy > 0) {
		g_resolve_busy--;
		return -KW_ELIMIT;
	}
	if (g_n_res == 8 || len > sizeof(g_res[0].peer))
		return -KW_ELIMIT;
	g_res[g_n_res].s = arg;
	g_res[g_n_res].done = done;
	g_res[g_n_res].ctx = ctx;
	memcpy(g_res[g_n_res].peer, peer, len);
	g_res[g_n_res++].len = len;
	return 0;
}

static void serve_resolves(void)
{
	while (g_n_res > 0) {
		int k = --g_n_res, err = -KW_ENOENT;

		for (int j = 0; j < g->n; j++) {
			const struct kw_peer_id *p = kw_swarm_peer_id(g->s[j].sw);

			if (p->len == g_res[k].len && !memcmp(p->bytes, g_res[k].peer, p->len))
				err = kw_hm_dht_add_addr(g_res[k].s->dht, p->bytes, p->len,
							 g->s[j].addr);
		}
		g_res[k].done(g_res[k].ctx, err);
	}
}

static int make_side(int i, bool client, uint32_t replicas)
{
	struct side *s = &g->s[i];
	char listen[64];
	int ret;

	ret = kw_hm_test_node(g->net, 32 * 1024, NULL, &test_limits, &s->t, &s->key, &s->sw,
			      &s->hm);
	if (ret == 0)
		ret = kw_hm_dht_config_default(&s->cfg);
	if (ret == 0) {
		s->cfg.store_cells = s->cfg.cache_cells = 32;
		s->cfg.cell_bytes = 512;
		s->cfg.dict_max = 16;       /* the merge test needs two subkeys, whatever Kconfig says */
		/* the client's pools at the test's own sizes (Kconfig's may be far larger) */
		s->cfg.buf_bytes = test_limits.buf_bytes;
		s->cfg.client_ops = 4;
		s->cfg.client_rpcs = 16;
		s->cfg.candidates = 64;
		s->cfg.merge_cells = 32;
		s->cfg.addr_book = 16;
		s->cfg.rt.bucket_size = 20;
		s->cfg.rt.max_nodes = 64;
		s->cfg.rt.max_buckets = 16;
		s->cfg.beam_size = g_beam;
		if (g_ordered_ids) {
			memset(&s->cfg.node_id, 0, sizeof(s->cfg.node_id));
			s->cfg.node_id.b[19] = (uint8_t)(i + 1);
		}
		s->cfg.num_replicas = replicas;
		s->cfg.client_mode = client;
		s->cfg.clock = test_clock;
		s->cfg.clock_arg = s;
		if (g_resolve) {
			s->cfg.resolve = test_resolve;
			s->cfg.resolve_arg = s;
		}
		ret = kw_hm_dht_create(s->sw, s->hm, &s->cfg, &s->dht);
	}
	snprintf(listen, sizeof(listen), "/ip4/127.0.0.1/tcp/%d", 4100 + i);
	if (ret == 0)
		ret = kw_swarm_test_listen(s->sw, listen, s->addr, sizeof(s->addr));
	return ret;
}

/* Every node learns every other's address (what identify feeds the book in the node). */
static void share_addresses(void)
{
	for (int i = 0; i < g->n; i++)
		for (int j = 0; j < g->n; j++) {
			const struct kw_peer_id *p = kw_swarm_peer_id(g->s[j].sw);

			if (i != j)
				assert_int_equal(kw_hm_dht_add_addr(g->s[i].dht, p->bytes, p->len,
								    g->s[j].addr), 0);
		}
}

static void on_ping(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p, void *user)
{
	struct got *r = user;

	(void)d;
	r->done++;
	r->err = err;
	r->p = *p;
}

static void bootstrap_all(int from)
{
	for (int i = from; i < g->n; i++) {
		memset(&g->got[i], 0, sizeof(g->got[i]));
		assert_int_equal(kw_hm_dht_bootstrap(g->s[i].dht, g->s[0].addr, on_ping,
						     &g->got[i]), 0);
		pump(200);
		assert_int_equal(g->got[i].done, 1);
		assert_int_equal(g->got[i].err, 0);
	}
	pump(200);
}

static int setup_n(int n, int n_client, uint32_t replicas)
{
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->net = kw_test_net_new(256, 1 << 17);
	if (!g->net)
		return -1;
	g->n = n;
	for (int i = 0; i < n; i++)
		if (make_side(i, i >= n - n_client, replicas) < 0)
			return -1;
	return 0;
}

static int setup5(void **state)
{
	(void)state;
	return setup_n(5, 0, 2);
}

static int setup5c(void **state)
{
	(void)state;
	return setup_n(6, 1, 2);       /* node 5 is a client */
}

static int setup5_beam1(void **state)
{
	int ret;

	(void)state;
	g_beam = 1;
	g_ordered_ids = true;
	ret = setup_n(5, 0, 2);
	g_beam = 20;
	g_ordered_ids = false;
	return ret;
}

static int teardown(void **state)
{
	struct kw_swarm *sw[N];

	(void)state;
	pump(50);
	for (int i = 0; i < g->n; i++)
		assert_int_equal(kw_hm_dht_ops_busy(g->s[i].dht), 0);
	for (int i = 0; i < g->n; i++)
		sw[i] = g->s[i].sw;
	kw_swarm_test_free(g->net, nodes(), sw, g->n, 4);
	free(g);
	g = NULL;
	return 0;
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct got *r = user;

	(void)d;
	r->done++;
	r->err = err;
	r->v = *v;
	if (v->len <= sizeof(r->val) && v->len)
		memcpy(r->val, v->value, v->len);
	r->v.value = r->val;
}

static void on_store(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *s,
		     void *user)
{
	struct got *r = user;

	(void)d;
	r->done++;
	r->err = err;
	r->s = *s;
}

static void get_from(int i, const struct kw_hm_dhtid *key, bool latest)
{
	memset(&g->got[i], 0, sizeof(g->got[i]));
	assert_int_equal(kw_hm_dht_get(g->s[i].dht, key, latest, on_get, &g->got[i]), 0);
	assert_int_equal(g->got[i].done, 0);     /* never inside the call */
	pump(300);
	assert_int_equal(g->got[i].done, 1);
}

static bool holds(int i, const struct kw_hm_dhtid *key)
{
	struct kw_hm_store_found f;

	kw_hm_store_get(kw_hm_dht_storage(g->s[i].dht, false), key, clock_now, &f);
	return f.type != KW_HM_DHT_NOT_FOUND;
}

static void test_hm_dht_client_get_after_store_across_five_nodes(void **state)
{
	static const uint8_t val[] = { 0xa5, 'h', 'e', 'l', 'l', 'o' };   /* msgpack "hello" */
	struct kw_hm_dhtid key;
	int holders = 0, remote_gets = 0;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	kw_hm_dhtid_of_str("the-key", 7, &key);
	memset(&g->got[1], 0, sizeof(g->got[1]));
	assert_int_equal(kw_hm_dht_store(g->s[1].dht, &key, NULL, 0, val, sizeof(val),
					 clock_now + 600, on_store, &g->got[1]), 0);
	pump(300);
	assert_int_equal(g->got[1].done, 1);
	assert_int_equal(g->got[1].err, 0);
	assert_int_equal(g->got[1].s.n_ok, 2);          /* num_replicas = 2 */
	for (int i = 0; i < g->n; i++)
		holders += holds(i, &key);
	assert_int_equal(holders, 2);
	for (int i = 0; i < g->n; i++) {
		bool local = holds(i, &key);

		get_from(i, &key, false);
		assert_int_equal(g->got[i].err, 0);
		assert_int_equal(g->got[i].v.type, KW_HM_DHT_FOUND_REGULAR);
		assert_int_equal(g->got[i].v.len, sizeof(val));
		assert_memory_equal(g->got[i].val, val, sizeof(val));
		assert_true(g->got[i].v.expiration == clock_now + 600);
		if (!local) {
			assert_true(g->got[i].v.visited >= 1);
			remote_gets++;
		}
	}
	assert_int_equal(remote_gets, 3);
}

static void test_hm_dht_client_newest_expiration_wins(void **state)
{
	struct kw_hm_dhtid key;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	kw_hm_dhtid_of_str("versions", 8, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[1].dht, false), &key,
					 (const uint8_t *)"\xa3old", 4, clock_now + 100, clock_now), 1);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[2].dht, false), &key,
					 (const uint8_t *)"\xa3new", 4, clock_now + 200, clock_now), 1);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[3].dht, true), &key,
					 (const uint8_t *)"\xa3mid", 4, clock_now + 150, clock_now), 1);
	get_from(4, &key, true);
	assert_int_equal(g->got[4].err, 0);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_memory_equal(g->got[4].val, "\xa3new", 4);
	assert_true(g->got[4].v.expiration == clock_now + 200);
	assert_true(g->got[4].v.visited >= 3);
}

static void test_hm_dht_client_subkeys_of_several_nodes_merge(void **state)
{
	static const uint8_t sa[] = { 0xa1, 'a' }, sb[] = { 0xa1, 'b' };
	struct kw_hm_dhtid key;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	kw_hm_dhtid_of_str("block.0", 7, &key);
	assert_int_equal(kw_hm_store_put_subkey(kw_hm_dht_storage(g->s[1].dht, false), &key, sa,
						2, (const uint8_t *)"\x01", 1, clock_now + 100,
						clock_now), 1);
	assert_int_equal(kw_hm_store_put_subkey(kw_hm_dht_storage(g->s[2].dht, false), &key, sb,
						2, (const uint8_t *)"\x02", 1, clock_now + 90,
						clock_now), 1);
	/* an older entry for subkey a elsewhere loses to node 1's */
	assert_int_equal(kw_hm_store_put_subkey(kw_hm_dht_storage(g->s[3].dht, false), &key, sa,
						2, (const uint8_t *)"\x09", 1, clock_now + 50,
						clock_now), 1);
	get_from(4, &key, true);
	assert_int_equal(g->got[4].err, 0);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_int_equal(g->got[4].v.n_subkeys, 2);
	assert_true(g->got[4].v.expiration == clock_now + 100);
	/* [subkey, bin value, float64 exp] entries: a with 0x01, b with 0x02, never 0x09 */
	assert_non_null(memmem(g->got[4].val, g->got[4].v.len, "\xa1" "a\xc4\x01\x01", 5));
	assert_non_null(memmem(g->got[4].val, g->got[4].v.len, "\xa1" "b\xc4\x01\x02", 5));
	assert_null(memmem(g->got[4].val, g->got[4].v.len, "\xc4\x01\x09", 3));
}

static void test_hm_dht_client_search_stops_when_the_beam_is_nearer(void **state)
{
	struct kw_hm_dhtid key;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	memset(&key, 0, sizeof(key));       /* node i is at distance i + 1 */
	/* beam 1: node 0 (the nearest) answers; every other candidate is farther: stop */
	get_from(4, &key, true);
	assert_int_equal(g->got[4].err, 0);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_NOT_FOUND);
	assert_int_equal(g->got[4].v.visited, 1);
}

static void test_hm_dht_client_dead_peer_is_blacklisted_and_search_finishes(void **state)
{
	struct kw_privkey k;
	struct kw_peer_id dead;
	struct kw_hm_dhtid key, dead_id;
	struct kw_hm_dht_contact c;
	struct kw_hm_dht_stats st;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	kw_hm_dhtid_of_str("survives", 8, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[2].dht, false), &key,
					 (const uint8_t *)"\xc3", 1, clock_now + 100, clock_now), 1);
	/* a node in 4's table at an address where nothing listens, nearest to the key */
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &k), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&k.pub, &dead), 0);
	dead_id = key;
	dead_id.b[19] ^= 1;
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->s[4].dht), &dead_id, dead.bytes, dead.len,
				      clock_now, NULL), 0);
	assert_int_equal(kw_hm_dht_add_addr(g->s[4].dht, dead.bytes, dead.len,
					    "/ip4/127.0.0.1/tcp/4999"), 0);
	memset(&g->got[4], 0, sizeof(g->got[4]));
	assert_int_equal(kw_hm_dht_get(g->s[4].dht, &key, true, on_get, &g->got[4]), 0);
	for (int i = 0; i < 40 && !g->got[4].done; i++) {
		pump(20);
		kw_sim_advance(g->net->net, 500);
	}
	assert_int_equal(g->got[4].done, 1);
	assert_int_equal(g->got[4].err, 0);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->s[4].dht), &dead_id, &c), -KW_ENOENT);
	assert_true(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[4].dht), dead.bytes, dead.len,
				    clock_now));
	kw_hm_dht_get_stats(g->s[4].dht, &st);
	assert_true(st.rpcs_failed >= 1);
}

/* Virtual time of node i's loop (the simulated network's clock). */
static uint64_t now_ms(int i)
{
	return kw_loop_now(&g->s[i].t->node->loop);
}

/*
 * A stopped peer (SIGSTOP: its TCP still accepts, its handshake never ends) nearest to the
 * key: node 4 listens but its loop never runs. The search goes on with its other requests
 * and ends once the request to the stopped peer reaches its deadline (connect_timeout_ms
 * from its start), not the swarm's handshake timeout. While that dial still runs, a second
 * search does not wait on the peer at all; when the handshake times out the peer is
 * blacklisted and leaves the routing table.
 */
static void test_hm_dht_client_stopped_peer_costs_one_request_deadline(void **state)
{
	const struct kw_peer_id *stopped = kw_swarm_peer_id(g->s[4].sw);
	uint32_t deadline = g->s[3].cfg.connect_timeout_ms;
	struct kw_hm_dhtid key, stopped_id;
	struct kw_hm_dht_contact c;
	struct kw_hm_dht_stats st;
	uint64_t t0, took;

	(void)state;
	if (CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS <= deadline + 1000u)
		skip();   /* the handshake gives up first: nothing for the deadline to bound */
	g->n = 4;                            /* node 4 is stopped: pump() leaves it out */
	share_addresses();
	bootstrap_all(1);
	kw_hm_dhtid_of_str("past-a-stopped-peer", 19, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[2].dht, false), &key,
					 (const uint8_t *)"\xc3", 1, clock_now + 100, clock_now), 1);
	stopped_id = key;
	stopped_id.b[19] ^= 1;
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->s[3].dht), &stopped_id, stopped->bytes,
				      stopped->len, clock_now, NULL), 0);
	assert_int_equal(kw_hm_dht_add_addr(g->s[3].dht, stopped->bytes, stopped->len,
					    g->s[4].addr), 0);
	memset(&g->got[3], 0, sizeof(g->got[3]));
	t0 = now_ms(3);
	assert_int_equal(kw_hm_dht_get(g->s[3].dht, &key, true, on_get, &g->got[3]), 0);
	for (int i = 0; i < 400 && !g->got[3].done; i++) {
		pump(5);
		kw_sim_advance(g->net->net, 50);
	}
	took = now_ms(3) - t0;
	assert_int_equal(g->got[3].done, 1);
	assert_int_equal(g->got[3].err, 0);
	assert_int_equal(g->got[3].v.type, KW_HM_DHT_FOUND_REGULAR);
	/* the other nodes answered within milliseconds: the stopped peer's deadline is the wait */
	assert_true(took >= deadline);
	assert_true(took <= deadline + 200);
	assert_true(took < CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS);
	kw_hm_dht_get_stats(g->s[3].dht, &st);
	assert_int_equal(st.rpcs_deadline, 1);          /* asked once in this search */
	/* the dial still runs: a second search skips the peer instead of waiting again */
	memset(&g->got[3], 0, sizeof(g->got[3]));
	t0 = now_ms(3);
	assert_int_equal(kw_hm_dht_get(g->s[3].dht, &key, true, on_get, &g->got[3]), 0);
	for (int i = 0; i < 400 && !g->got[3].done; i++) {
		pump(5);
		kw_sim_advance(g->net->net, 10);
	}
	assert_int_equal(g->got[3].done, 1);
	assert_int_equal(g->got[3].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_true(now_ms(3) - t0 < deadline / 2);
	kw_hm_dht_get_stats(g->s[3].dht, &st);
	assert_int_equal(st.rpcs_deadline, 1);
	assert_false(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[3].dht), stopped->bytes,
				     stopped->len, clock_now));   /* no verdict yet */
	/* the handshake times out (the Kconfig value, up to 120 s): now the peer failed. Stop
	 * at the ban, whose first term (5 s) would end if the loop ran on. */
	for (int i = 0; i < (CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS + 5000) / 500 &&
	     !kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[3].dht), stopped->bytes, stopped->len,
			      clock_now); i++) {
		pump(5);
		kw_sim_advance(g->net->net, 500);
	}
	assert_true(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[3].dht), stopped->bytes,
				    stopped->len, clock_now));
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->s[3].dht), &stopped_id, &c),
			 -KW_ENOENT);
	get_from(3, &key, false);
	assert_int_equal(g->got[3].err, 0);
	g->n = 5;                            /* SIGCONT, for the teardown */
}

static int setup5_resolve(void **state)
{
	int ret;

	(void)state;
	g_resolve = true;
	g_resolve_busy = 0;
	g_resolve_calls = 0;
	g_n_res = 0;
	ret = setup_n(5, 0, 2);
	g_resolve = false;
	return ret;
}

/* A peer we hold no address for while every lookup slot is busy: our limit, not the peer's
 * doing, so the search asks it again once a slot is free and finds the value there, and the
 * peer is neither counted unreachable nor blacklisted. */
static void test_hm_dht_client_busy_resolver_is_retried_not_a_failed_peer(void **state)
{
	static const uint8_t val[] = { 0xc3 };
	const struct kw_peer_id *holder = kw_swarm_peer_id(g->s[2].sw);
	struct kw_hm_dhtid key;
	struct kw_hm_dht_stats st;

	(void)state;
	kw_hm_dhtid_of_str("behind-a-lookup", 15, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[2].dht, false), &key, val,
					 sizeof(val), clock_now + 100, clock_now), 1);
	/* node 4 knows node 2 by its ids only: reaching it needs the resolver */
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->s[4].dht), kw_hm_dht_node_id(g->s[2].dht),
				      holder->bytes, holder->len, clock_now, NULL), 0);
	g_resolve_busy = 1;
	memset(&g->got[4], 0, sizeof(g->got[4]));
	assert_int_equal(kw_hm_dht_get(g->s[4].dht, &key, false, on_get, &g->got[4]), 0);
	for (int i = 0; i < 40 && !g->got[4].done; i++) {
		pump(10);
		serve_resolves();
		kw_sim_advance(g->net->net, 50);
	}
	assert_int_equal(g->got[4].done, 1);
	assert_int_equal(g->got[4].err, 0);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(g->got[4].v.visited, 1);
	assert_int_equal(g_resolve_calls, 2);         /* refused once, then asked again */
	assert_false(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[4].dht), holder->bytes,
				     holder->len, clock_now));
	kw_hm_dht_get_stats(g->s[4].dht, &st);
	assert_int_equal(st.unreachable, 0);
	assert_int_equal(st.rpcs_failed, 0);
}

/* A resolver (kad) whose lookup hangs: the request to that peer still ends at its deadline
 * and the search ends without it. The lookup's late answer dials nobody (the search is
 * over) and holds nothing against the peer; a lookup that fails does. */
static void test_hm_dht_client_stuck_resolver_ends_at_the_request_deadline(void **state)
{
	static const uint8_t val[] = { 0xc3 };
	const struct kw_peer_id *holder = kw_swarm_peer_id(g->s[2].sw);
	const struct kw_peer_id *other = kw_swarm_peer_id(g->s[1].sw);
	uint32_t deadline = g->s[4].cfg.connect_timeout_ms;
	struct kw_hm_dhtid key;
	struct kw_hm_dht_stats st;
	uint64_t t0, took;

	(void)state;
	kw_hm_dhtid_of_str("behind-a-stuck-lookup", 21, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[2].dht, false), &key, val,
					 sizeof(val), clock_now + 100, clock_now), 1);
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->s[4].dht), kw_hm_dht_node_id(g->s[2].dht),
				      holder->bytes, holder->len, clock_now, NULL), 0);
	memset(&g->got[4], 0, sizeof(g->got[4]));
	t0 = now_ms(4);
	assert_int_equal(kw_hm_dht_get(g->s[4].dht, &key, false, on_get, &g->got[4]), 0);
	for (int i = 0; i < 400 && !g->got[4].done; i++) {
		pump(5);
		kw_sim_advance(g->net->net, 50);
	}
	took = now_ms(4) - t0;
	assert_int_equal(g->got[4].done, 1);
	assert_int_equal(g->got[4].err, -KW_ENOTCONN);
	assert_true(took >= deadline && took <= deadline + 100);
	assert_int_equal(g_n_res, 1);                   /* the lookup is still out */
	kw_hm_dht_get_stats(g->s[4].dht, &st);
	assert_int_equal(st.rpcs_deadline, 1);
	assert_int_equal(st.rpcs_failed, 0);
	serve_resolves();                               /* late, found: nothing is dialed */
	pump(20);
	kw_hm_dht_get_stats(g->s[4].dht, &st);
	assert_int_equal(st.rpcs_out, 0);
	assert_int_equal(st.rpcs_failed, 0);
	assert_false(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[4].dht), holder->bytes,
				     holder->len, clock_now));
	assert_int_equal(kw_hm_dht_ops_busy(g->s[4].dht), 0);
	/* node 1, known by its ids only too, and this time the late lookup fails: the peer is
	 * failed (node 2 now has an address from the first lookup and answers) */
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->s[4].dht), kw_hm_dht_node_id(g->s[1].dht),
				      other->bytes, other->len, clock_now, NULL), 0);
	memset(&g->got[4], 0, sizeof(g->got[4]));
	assert_int_equal(kw_hm_dht_get(g->s[4].dht, &key, true, on_get, &g->got[4]), 0);
	for (int i = 0; i < 400 && !g->got[4].done; i++) {
		pump(5);
		kw_sim_advance(g->net->net, 50);
	}
	assert_int_equal(g->got[4].done, 1);
	assert_int_equal(g->got[4].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(g_n_res, 1);
	g_res[0].done(g_res[0].ctx, -KW_ENOENT);
	g_n_res = 0;
	pump(20);
	kw_hm_dht_get_stats(g->s[4].dht, &st);
	assert_int_equal(st.rpcs_deadline, 2);
	assert_int_equal(st.rpcs_failed, 1);
	assert_true(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[4].dht), other->bytes,
				    other->len, clock_now));
	assert_false(kw_hm_bl_banned(kw_hm_dht_blacklist(g->s[4].dht), holder->bytes,
				     holder->len, clock_now));
}

static void test_hm_dht_client_client_mode_node_is_not_added_to_routing_tables(void **state)
{
	const struct side *cl = &g->s[5];
	struct kw_hm_dht_contact c;
	struct kw_hm_dhtid key;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	assert_true(kw_hm_dht_client_mode(cl->dht));
	kw_hm_dhtid_of_str("asked-by-a-client", 17, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[3].dht, false), &key,
					 (const uint8_t *)"\xc2", 1, clock_now + 100, clock_now), 1);
	get_from(5, &key, true);
	assert_int_equal(g->got[5].err, 0);
	assert_int_equal(g->got[5].v.type, KW_HM_DHT_FOUND_REGULAR);
	assert_true(g->got[5].v.visited >= 2);
	for (int i = 0; i < 5; i++)
		assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->s[i].dht), &cl->cfg.node_id, &c),
				 -KW_ENOENT);
	/* and it serves nothing: a ping to it is refused by multistream-select */
	memset(&g->got[0], 0, sizeof(g->got[0]));
	assert_int_equal(kw_hm_dht_ping(g->s[0].dht, cl->addr, false, on_ping, &g->got[0]), 0);
	pump(200);
	assert_int_equal(g->got[0].done, 1);
	assert_int_equal(g->got[0].err, -KW_ENOPROTO);
}

static void test_hm_dht_client_ping_warns_on_clock_skew(void **state)
{
	struct kw_hm_dht_stats st;

	(void)state;
	g->s[1].skew = 10.0;          /* node 1's clock runs 10 s ahead */
	memset(&g->got[0], 0, sizeof(g->got[0]));
	assert_int_equal(kw_hm_dht_ping(g->s[0].dht, g->s[1].addr, false, on_ping, &g->got[0]), 0);
	pump(200);
	assert_int_equal(g->got[0].done, 1);
	assert_int_equal(g->got[0].err, 0);
	assert_true(g->got[0].p.dht_time == clock_now + 10.0);
	assert_true(g->got[0].p.skew > 6.9 && g->got[0].p.skew < 7.1);
	kw_hm_dht_get_stats(g->s[0].dht, &st);
	assert_int_equal(st.clock_skew, 1);
	/* and a clock within 3 s is not a skew */
	g->s[2].skew = 2.0;
	memset(&g->got[0], 0, sizeof(g->got[0]));
	assert_int_equal(kw_hm_dht_ping(g->s[0].dht, g->s[2].addr, false, on_ping, &g->got[0]), 0);
	pump(200);
	assert_true(g->got[0].p.skew == 0);
	kw_hm_dht_get_stats(g->s[0].dht, &st);
	assert_int_equal(st.clock_skew, 1);
}

/*
 * A reach by PeerID alone (`/p2p/<id>`, as averaging asks for a groupmate) teaches no
 * address: node 0 keeps 1's real address beside a dead one learned later, and the ping
 * reaches 1. When the bare id took a book slot, the dead address pushed the real one out
 * and the ping failed.
 */
static void test_hm_dht_client_bare_peer_id_keeps_the_known_addresses(void **state)
{
	const struct kw_peer_id *p = kw_swarm_peer_id(g->s[1].sw);
	char bare[160] = "/p2p/";

	(void)state;
	assert_int_equal(kw_peer_id_to_text(p, bare + 5, sizeof(bare) - 5), 0);
	assert_int_equal(kw_hm_dht_add_addr(g->s[0].dht, p->bytes, p->len, g->s[1].addr), 0);
	assert_int_equal(kw_hm_dht_add_addr(g->s[0].dht, p->bytes, p->len, bare), 0);
	assert_int_equal(kw_hm_dht_add_addr(g->s[0].dht, p->bytes, p->len,
					    "/ip4/127.0.0.1/tcp/4999"), 0);
	memset(&g->got[0], 0, sizeof(g->got[0]));
	assert_int_equal(kw_hm_dht_ping(g->s[0].dht, bare, false, on_ping, &g->got[0]), 0);
	for (int i = 0; i < 20 && !g->got[0].done; i++) {
		pump(20);
		kw_sim_advance(g->net->net, 200);
	}
	assert_int_equal(g->got[0].done, 1);
	assert_int_equal(g->got[0].err, 0);
}

static void test_hm_dht_client_validate_ping_makes_both_sides_learn(void **state)
{
	struct kw_hm_dht_contact c;

	(void)state;
	memset(&g->got[1], 0, sizeof(g->got[1]));
	assert_int_equal(kw_hm_dht_ping(g->s[1].dht, g->s[0].addr, true, on_ping, &g->got[1]), 0);
	pump(200);
	assert_int_equal(g->got[1].done, 1);
	assert_int_equal(g->got[1].err, 0);
	assert_true(g->got[1].p.available);
	assert_false(g->got[1].p.client);
	assert_memory_equal(g->got[1].p.node.id.b, g->s[0].cfg.node_id.b, 20);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->s[1].dht), &g->s[0].cfg.node_id, &c), 0);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->s[0].dht), &g->s[1].cfg.node_id, &c), 0);
}

static void test_hm_dht_client_newcomer_gets_the_records_it_should_hold(void **state)
{
	struct kw_hm_dhtid key;
	struct kw_hm_dht_stats st;

	(void)state;
	kw_hm_dhtid_of_str("held-by-0", 9, &key);
	assert_int_equal(kw_hm_store_put(kw_hm_dht_storage(g->s[0].dht, false), &key,
					 (const uint8_t *)"\xa1x", 2, clock_now + 100, clock_now), 1);
	assert_false(holds(1, &key));
	/* 1 pings 0: 0 meets 1, a node new to its (empty) table, and pushes the record */
	memset(&g->got[1], 0, sizeof(g->got[1]));
	assert_int_equal(kw_hm_dht_ping(g->s[1].dht, g->s[0].addr, false, on_ping, &g->got[1]), 0);
	pump(300);
	assert_int_equal(g->got[1].done, 1);
	assert_true(holds(1, &key));
	kw_hm_dht_get_stats(g->s[0].dht, &st);
	assert_int_equal(st.newcomer_pushes, 1);
	/* meeting it again pushes nothing more */
	memset(&g->got[1], 0, sizeof(g->got[1]));
	assert_int_equal(kw_hm_dht_ping(g->s[1].dht, g->s[0].addr, false, on_ping, &g->got[1]), 0);
	pump(300);
	kw_hm_dht_get_stats(g->s[0].dht, &st);
	assert_int_equal(st.newcomer_pushes, 1);
}

static void test_hm_dht_client_get_with_no_peer_fails_once_not_connected(void **state)
{
	struct kw_hm_dhtid key;

	(void)state;
	kw_hm_dhtid_of_str("nobody", 6, &key);
	get_from(3, &key, false);
	assert_int_equal(g->got[3].err, -KW_ENOTCONN);
	assert_int_equal(g->got[3].v.type, KW_HM_DHT_NOT_FOUND);
	pump(50);
	assert_int_equal(g->got[3].done, 1);
}

static void test_hm_dht_client_operation_pool_is_bounded(void **state)
{
	struct kw_hm_dhtid key;
	struct kw_hm_dht_stats st;
	int started = 0, ret;

	(void)state;
	kw_hm_dhtid_of_str("many", 4, &key);
	memset(g->got, 0, sizeof(g->got));
	for (uint32_t i = 0; i < g->s[2].cfg.client_ops; i++) {
		ret = kw_hm_dht_get(g->s[2].dht, &key, false, on_get, &g->got[0]);
		assert_int_equal(ret, 0);
		started++;
	}
	assert_int_equal(kw_hm_dht_get(g->s[2].dht, &key, false, on_get, &g->got[0]), -KW_ELIMIT);
	kw_hm_dht_get_stats(g->s[2].dht, &st);
	assert_int_equal(st.ops_refused, 1);
	pump(50);
	assert_int_equal(g->got[0].done, started);
	assert_int_equal(kw_hm_dht_ops_busy(g->s[2].dht), 0);
}

/* rpc_find and rpc_store requests node i has sent so far */
static uint64_t rpcs_out(int i)
{
	struct kw_hm_dht_stats st;

	kw_hm_dht_get_stats(g->s[i].dht, &st);
	return st.rpcs_out;
}

#define MANY 4

static void test_hm_dht_client_get_many_batches_per_peer_and_equals_single_gets(void **state)
{
	static struct got single[MANY];
	struct kw_hm_dhtid keys[MANY];
	void *users[MANY];
	uint8_t val[8] = { 0xa6, 'v', 'a', 'l', 'u', 'e', '0' };   /* msgpack "value0" */
	uint64_t before, n_single, n_many;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	for (int k = 0; k < MANY; k++) {
		char name[16];

		snprintf(name, sizeof(name), "block.%d", k);
		kw_hm_dhtid_of_str(name, strlen(name), &keys[k]);
		val[6] = (uint8_t)('0' + k);
		memset(&g->got[1], 0, sizeof(g->got[1]));
		assert_int_equal(kw_hm_dht_store(g->s[1].dht, &keys[k], NULL, 0, val, 7,
						 clock_now + 600 + k, on_store, &g->got[1]), 0);
		pump(300);
		assert_int_equal(g->got[1].s.n_ok, 2);
	}
	/* one key at a time, asking the whole beam (latest): the reference */
	before = rpcs_out(3);
	for (int k = 0; k < MANY; k++) {
		get_from(3, &keys[k], true);
		single[k] = g->got[3];
		assert_int_equal(single[k].err, 0);
		assert_int_equal(single[k].v.type, KW_HM_DHT_FOUND_REGULAR);
	}
	n_single = rpcs_out(3) - before;
	/* the same keys together */
	memset(g->got, 0, sizeof(g->got));
	for (int k = 0; k < MANY; k++)
		users[k] = &g->got[k];
	before = rpcs_out(3);
	assert_int_equal(kw_hm_dht_get_many(g->s[3].dht, keys, MANY, true, on_get, users), 0);
	pump(300);
	n_many = rpcs_out(3) - before;
	for (int k = 0; k < MANY; k++) {
		assert_int_equal(g->got[k].done, 1);
		assert_int_equal(g->got[k].err, 0);
		assert_int_equal(g->got[k].v.type, KW_HM_DHT_FOUND_REGULAR);
		assert_int_equal(g->got[k].v.len, single[k].v.len);
		assert_memory_equal(g->got[k].val, single[k].val, single[k].v.len);
		assert_int_equal(g->got[k].val[6], '0' + k);
		assert_true(g->got[k].v.expiration == single[k].v.expiration);
		assert_int_equal(g->got[k].v.visited, single[k].v.visited);
	}
	/* four nodes to ask for each key: 16 requests one key at a time, 4 together */
	printf("  rpc_find requests for %d keys: %llu one by one, %llu with get_many\n", MANY,
	       (unsigned long long)n_single, (unsigned long long)n_many);
	assert_int_equal(n_single, MANY * 4);
	assert_int_equal(n_many, 4);
	/* all or nothing: more keys than free operations, or none */
	assert_int_equal(kw_hm_dht_get_many(g->s[3].dht, keys, 0, true, on_get, NULL), -KW_EINVAL);
	struct kw_hm_dhtid five[5] = { keys[0], keys[1], keys[2], keys[3], keys[0] };

	assert_int_equal(kw_hm_dht_get_many(g->s[3].dht, five, 5, true, on_get, NULL), -KW_ELIMIT);
	assert_int_equal(kw_hm_dht_ops_busy(g->s[3].dht), 0);
}

static void test_hm_dht_client_store_many_searches_together_and_stores_every_key(void **state)
{
	struct kw_hm_dht_store_item items[MANY];
	void *users[MANY];
	static const uint8_t val[] = { 0xc3 };   /* msgpack true */
	uint64_t before, n_single, n_many;

	(void)state;
	share_addresses();
	bootstrap_all(1);
	memset(items, 0, sizeof(items));
	before = rpcs_out(2);
	for (int k = 0; k < MANY; k++) {
		char name[16];

		snprintf(name, sizeof(name), "one.%d", k);
		kw_hm_dhtid_of_str(name, strlen(name), &items[0].key);
		memset(&g->got[0], 0, sizeof(g->got[0]));
		assert_int_equal(kw_hm_dht_store(g->s[2].dht, &items[0].key, NULL, 0, val, 1,
						 clock_now + 600, on_store, &g->got[0]), 0);
		pump(300);
		assert_int_equal(g->got[0].s.n_ok, 2);
	}
	n_single = rpcs_out(2) - before;
	memset(g->got, 0, sizeof(g->got));
	for (int k = 0; k < MANY; k++) {
		char name[16];

		snprintf(name, sizeof(name), "many.%d", k);
		kw_hm_dhtid_of_str(name, strlen(name), &items[k].key);
		items[k].value = val;
		items[k].len = 1;
		items[k].expiration = clock_now + 600;
		users[k] = &g->got[k];
	}
	before = rpcs_out(2);
	assert_int_equal(kw_hm_dht_store_many(g->s[2].dht, items, MANY, on_store, users), 0);
	pump(300);
	n_many = rpcs_out(2) - before;
	for (int k = 0; k < MANY; k++) {
		int holders = 0;

		assert_int_equal(g->got[k].done, 1);
		assert_int_equal(g->got[k].err, 0);
		assert_int_equal(g->got[k].s.n_ok, 2);
		for (int i = 0; i < g->n; i++)
			holders += holds(i, &items[k].key);
		assert_int_equal(holders, 2);
	}
	printf("  requests for %d stores: %llu one by one, %llu with store_many\n", MANY,
	       (unsigned long long)n_single, (unsigned long long)n_many);
	assert_true(n_many < n_single);
	/* a bad item refuses the whole batch before anything starts */
	items[2].expiration = 0.0 / 0.0;
	assert_int_equal(kw_hm_dht_store_many(g->s[2].dht, items, MANY, on_store, users),
			 -KW_EINVAL);
	assert_int_equal(kw_hm_dht_ops_busy(g->s[2].dht), 0);
}

/* The range test (tests/build/test_kconfig_ranges.sh) also builds every option at its minimum
 * and maximum; five to six nodes talking at once need at least 8 connections each way, 4 calls, buckets of 8 and 1 s call timeouts */
static bool fits_this_test(void)
{
	return CONFIG_KW_NET_MAX_CONNS_IN >= 8 && CONFIG_KW_NET_MAX_CONNS_OUT >= 8 &&
	       CONFIG_KW_NET_HIVEMIND_CALLS_IN >= 4 && CONFIG_KW_NET_HIVEMIND_CALLS_OUT >= 4 &&
	       CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_RPCS >= 4 && CONFIG_KW_NET_HIVEMIND_DHT_BUCKET_SIZE >= 8 &&
	       CONFIG_KW_NET_HIVEMIND_CALL_TIMEOUT_MS >= 1000 && CONFIG_KW_NET_HIVEMIND_DHT_CELL_BYTES >= 256 &&
	       CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES >= 4096;
}

static void test_hm_dht_client_skipped_in_this_build(void **state)
{
	(void)state;
	printf("  skipped: five to six nodes talking at once need at least 8 connections each way, 4 calls, buckets of 8 and 1 s call timeouts\n");
	skip();
}

int main(void)
{
	if (!fits_this_test()) {
		const struct CMUnitTest none[] = { cmocka_unit_test(test_hm_dht_client_skipped_in_this_build) };

		return cmocka_run_group_tests(none, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_get_after_store_across_five_nodes, setup5, teardown),
		cmocka_unit_test_setup_teardown(test_hm_dht_client_newest_expiration_wins, setup5,
						teardown),
		cmocka_unit_test_setup_teardown(test_hm_dht_client_subkeys_of_several_nodes_merge,
						setup5, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_search_stops_when_the_beam_is_nearer, setup5_beam1,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_dead_peer_is_blacklisted_and_search_finishes, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_client_mode_node_is_not_added_to_routing_tables, setup5c,
			teardown),
		cmocka_unit_test_setup_teardown(test_hm_dht_client_ping_warns_on_clock_skew, setup5,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_validate_ping_makes_both_sides_learn, setup5, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_bare_peer_id_keeps_the_known_addresses, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_newcomer_gets_the_records_it_should_hold, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_get_with_no_peer_fails_once_not_connected, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_busy_resolver_is_retried_not_a_failed_peer,
			setup5_resolve, teardown),
		cmocka_unit_test_setup_teardown(test_hm_dht_client_operation_pool_is_bounded,
						setup5, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_stopped_peer_costs_one_request_deadline, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_stuck_resolver_ends_at_the_request_deadline,
			setup5_resolve, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_get_many_batches_per_peer_and_equals_single_gets, setup5,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_client_store_many_searches_together_and_stores_every_key, setup5,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
