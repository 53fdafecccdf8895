/*
 * The DHTProtocol server (net/hivemind/dht.c): two swarms on the simulated network, both
 * running the DHT; a calls b's rpc_ping / rpc_store / rpc_find with the messages a Python
 * hivemind peer sends (hivemind/dht/protocol.py @ 4bd43b7) and checks the answers and b's
 * routing table and storage. Time is virtual (the DHT clock is a variable).
 */
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
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *dht;
	struct kw_hm_dht_config cfg;
	struct kw_privkey key;
	char addr[256];
};

struct fx {
	struct kw_test_net *net;
	struct side a, b;
	struct kw_conn *conn;      /* a -> b */
	struct kw_hm_test_result r;
	uint8_t req[8192];
};

static struct fx *g;
static double clock_now = 1700000000.0;

static double test_clock(void *arg)
{
	(void)arg;
	return clock_now;
}

static void pump(int passes)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };

	kw_swarm_test_pump(t, 2, passes);
}

static const struct kw_hm_limits test_limits = {
	.calls_in = 4, .calls_per_peer = 4, .calls_out = 4, .buf_bytes = 16384, .timeout_ms = 2000,
};

static int make_side(struct side *s, const char *listen, uint8_t id_byte)
{
	int ret = kw_hm_test_node(g->net, 32 * 1024, NULL, &test_limits, &s->t, &s->key, &s->sw,
				  &s->hm);

	if (ret == 0)
		ret = kw_hm_dht_config_default(&s->cfg);
	if (ret == 0) {
		memset(&s->cfg.node_id, id_byte, sizeof(s->cfg.node_id));
		s->cfg.store_cells = s->cfg.cache_cells = 32;
		s->cfg.cell_bytes = 512;
		/* the client side's pools at test sizes (Kconfig's maximum would not fit) */
		s->cfg.buf_bytes = test_limits.buf_bytes;
		s->cfg.client_ops = 2;
		s->cfg.client_rpcs = 4;
		s->cfg.candidates = 32;
		s->cfg.merge_cells = 8;
		s->cfg.addr_book = 8;
		s->cfg.rt.bucket_size = 20;    /* hivemind's default, whatever Kconfig says */
		s->cfg.rt.max_nodes = 64;
		s->cfg.rt.max_buckets = 16;
		s->cfg.clock = test_clock;
		ret = kw_hm_dht_create(s->sw, s->hm, &s->cfg, &s->dht);
	}
	if (ret == 0)
		ret = kw_swarm_test_listen(s->sw, listen, s->addr, sizeof(s->addr));
	return ret;
}

static int setup(void **state)
{
	struct kw_test_node *t[2];

	(void)state;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->net = kw_test_net_new(64, 1 << 18);
	if (!g->net || make_side(&g->b, "/ip4/127.0.0.1/tcp/4001", 0xbb) < 0 ||
	    make_side(&g->a, "/ip4/127.0.0.1/tcp/4002", 0xaa) < 0)
		return -1;
	t[0] = g->a.t;
	t[1] = g->b.t;
	g->conn = kw_hm_test_dial(t, 2, g->a.sw, g->b.addr);
	return g->conn ? 0 : -1;
}

static int teardown(void **state)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };
	struct kw_swarm *sw[2] = { g->a.sw, g->b.sw };

	(void)state;
	kw_swarm_test_free(g->net, t, sw, 2, 4);
	free(g);
	g = NULL;
	return 0;
}

/* Encodes m, calls `name` on b and waits for the answer. */
static void call(const char *name, int kind, const void *m)
{
	long n = kw_hm_dht_encode(kind, m, g->req, sizeof(g->req));

	assert_true(n >= 0);
	memset(&g->r, 0, sizeof(g->r));
	assert_int_equal(kw_hm_call(g->a.hm, g->conn, name, g->req, (size_t)n, 0,
				    kw_hm_test_on_result, &g->r), 0);
	pump(80);
	assert_int_equal(g->r.done, 1);
	assert_int_equal(g->r.err, 0);
}

static struct kw_hm_dht_peer peer_a(void)
{
	struct kw_hm_dht_peer p = { true, { g->a.cfg.node_id.b, 20 } };

	return p;
}

static void test_hm_dht_server_ping_answers_node_and_time_and_learns_caller(void **state)
{
	struct kw_hm_dht_ping_req q = { peer_a(), false };
	struct kw_hm_dht_ping_resp r;
	struct kw_hm_dht_contact c;

	(void)state;
	call("DHTProtocol.rpc_ping", KW_HM_DHT_PING_REQ, &q);
	assert_false(g->r.remote_error);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_RESP, g->r.data, g->r.len, &r, NULL), 0);
	assert_true(r.peer.present);
	assert_memory_equal(r.peer.node_id.p, g->b.cfg.node_id.b, 20);
	assert_true(r.dht_time == clock_now);
	assert_false(r.available);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->b.dht), &g->a.cfg.node_id, &c), 0);
	assert_int_equal(c.peer_len, kw_swarm_peer_id(g->a.sw)->len);
	assert_memory_equal(c.peer, kw_swarm_peer_id(g->a.sw)->bytes, c.peer_len);
}

static void test_hm_dht_server_client_mode_ping_is_not_added(void **state)
{
	struct kw_hm_dht_ping_req q = { { true, { NULL, 0 } }, false };
	struct kw_hm_dht_contact c;

	(void)state;
	call("DHTProtocol.rpc_ping", KW_HM_DHT_PING_REQ, &q);
	assert_false(g->r.remote_error);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->b.dht), &g->a.cfg.node_id, &c),
			 -KW_ENOENT);
}

static void test_hm_dht_server_validate_ping_pings_the_caller_back(void **state)
{
	struct kw_hm_dht_ping_req q = { peer_a(), true };
	struct kw_hm_dht_ping_resp r;
	struct kw_hm_dht_stats st;
	struct kw_hm_dht_contact c;

	(void)state;
	call("DHTProtocol.rpc_ping", KW_HM_DHT_PING_REQ, &q);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_RESP, g->r.data, g->r.len, &r, NULL), 0);
	assert_true(r.available);
	kw_hm_dht_get_stats(g->b.dht, &st);
	assert_int_equal(st.ping_backs, 1);
	assert_int_equal(st.ping_backs_ok, 1);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->b.dht), &g->a.cfg.node_id, &c), 0);
	/* and a learned b from b's ping-back */
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->a.dht), &g->b.cfg.node_id, &c), 0);
}

static void test_hm_dht_server_validate_ping_with_false_id_is_unavailable(void **state)
{
	struct kw_hm_dhtid lie;
	struct kw_hm_dht_ping_req q = { { true, { lie.b, 20 } }, true };
	struct kw_hm_dht_ping_resp r;
	struct kw_hm_dht_contact c;

	(void)state;
	memset(&lie, 0x77, sizeof(lie));
	call("DHTProtocol.rpc_ping", KW_HM_DHT_PING_REQ, &q);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_RESP, g->r.data, g->r.len, &r, NULL), 0);
	assert_false(r.available);
	assert_int_equal(kw_hm_rt_get_peer(kw_hm_dht_rt(g->b.dht), &lie, &c), -KW_ENOENT);
}

static void test_hm_dht_server_store_then_find_regular_and_dictionary(void **state)
{
	static struct kw_hm_dht_store_req s;
	static const uint8_t regular = KW_HM_DHT_IS_REGULAR, sub[] = { 0xa1, 's' };
	struct kw_hm_dht_store_resp sr;
	struct kw_hm_dht_find_req f;
	struct kw_hm_dht_find_resp fr;
	struct kw_hm_dht_find_result res;
	struct kw_hm_dhtid k1, k2, other;
	uint8_t packed[256];
	long pn;

	(void)state;
	kw_hm_dhtid_of_str("plain", 5, &k1);
	kw_hm_dhtid_of_str("dict", 4, &k2);
	memset(&s, 0, sizeof(s));
	s.n_keys = s.n_subkeys = s.n_values = s.n_exp = s.n_in_cache = 2;
	s.keys[0] = (struct kw_hm_bytes){ k1.b, 20 };
	s.keys[1] = (struct kw_hm_bytes){ k2.b, 20 };
	s.subkeys[0] = (struct kw_hm_bytes){ &regular, 1 };
	s.subkeys[1] = (struct kw_hm_bytes){ sub, 2 };
	s.values[0] = (struct kw_hm_bytes){ (const uint8_t *)"\xa2hi", 3 };
	s.values[1] = (struct kw_hm_bytes){ (const uint8_t *)"\xc3", 1 };
	s.exp[0] = s.exp[1] = clock_now + 60;
	s.in_cache[1] = true;          /* the dictionary goes to the cache tier */
	s.peer = peer_a();
	call("DHTProtocol.rpc_store", KW_HM_DHT_STORE_REQ, &s);
	assert_false(g->r.remote_error);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_RESP, g->r.data, g->r.len, &sr, NULL), 0);
	assert_int_equal(sr.n, 2);
	assert_true(sr.store_ok[0] && sr.store_ok[1]);
	assert_int_equal(kw_hm_store_count(kw_hm_dht_storage(g->b.dht, false), clock_now), 1);
	assert_int_equal(kw_hm_store_count(kw_hm_dht_storage(g->b.dht, true), clock_now), 1);
	/* the same store again: equal expirations, refused */
	call("DHTProtocol.rpc_store", KW_HM_DHT_STORE_REQ, &s);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_RESP, g->r.data, g->r.len, &sr, NULL), 0);
	assert_false(sr.store_ok[0] || sr.store_ok[1]);

	/* a third node in b's table shows up as nearest; a, the requester, does not */
	memset(&other, 0x12, sizeof(other));
	assert_int_equal(kw_hm_rt_add(kw_hm_dht_rt(g->b.dht), &other, (const uint8_t *)"\x00\x01x",
				      3, clock_now, NULL), 0);
	memset(&f, 0, sizeof(f));
	f.n_keys = 3;
	f.keys[0] = s.keys[0];
	f.keys[1] = s.keys[1];
	f.keys[2] = (struct kw_hm_bytes){ other.b, 20 };   /* nothing stored there */
	f.peer = peer_a();
	call("DHTProtocol.rpc_find", KW_HM_DHT_FIND_REQ, &f);
	assert_false(g->r.remote_error);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_RESP, g->r.data, g->r.len, &fr, NULL), 0);
	assert_int_equal(fr.n_results, 3);
	assert_memory_equal(fr.peer.node_id.p, g->b.cfg.node_id.b, 20);
	assert_int_equal(kw_hm_dht_find_result_decode(fr.raw[0].p, fr.raw[0].len, &res, NULL), 0);
	assert_int_equal(res.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(res.value.len, 3);
	assert_memory_equal(res.value.p, "\xa2hi", 3);
	assert_true(res.expiration == clock_now + 60);
	assert_int_equal(res.n_node_ids, 1);
	assert_memory_equal(res.node_ids[0].p, other.b, 20);
	assert_int_equal(res.n_peer_ids, 1);
	assert_int_equal(kw_hm_dht_find_result_decode(fr.raw[1].p, fr.raw[1].len, &res, NULL), 0);
	assert_int_equal(res.type, KW_HM_DHT_FOUND_DICTIONARY);
	pn = kw_hm_store_pack_dict(kw_hm_dht_storage(g->b.dht, true), &k2, clock_now, packed,
				   sizeof(packed));
	assert_int_equal(res.value.len, (size_t)pn);
	assert_memory_equal(res.value.p, packed, (size_t)pn);
	assert_int_equal(kw_hm_dht_find_result_decode(fr.raw[2].p, fr.raw[2].len, &res, NULL), 0);
	assert_int_equal(res.type, KW_HM_DHT_NOT_FOUND);
	assert_int_equal(res.n_node_ids, 1);
}

static void test_hm_dht_server_misaligned_store_is_an_assertion_error(void **state)
{
	static struct kw_hm_dht_store_req s;
	struct kw_hm_dhtid k;
	char text[128];

	(void)state;
	kw_hm_dhtid_of_str("x", 1, &k);
	memset(&s, 0, sizeof(s));
	s.n_keys = 1;                  /* one key, no values */
	s.keys[0] = (struct kw_hm_bytes){ k.b, 20 };
	call("DHTProtocol.rpc_store", KW_HM_DHT_STORE_REQ, &s);
	assert_true(g->r.remote_error);
	kw_hm_error_text(g->r.data, g->r.len, text, sizeof(text));
	assert_string_equal(text, "AssertionError()");  /* protocol.py's bare assert */
}

static void test_hm_dht_server_long_node_id_is_refused_and_serving_goes_on(void **state)
{
	/* FindRequest{peer (3) {node_id = 21 bytes}} */
	static const uint8_t bad[] = { 0x1a, 0x17, 0x0a, 0x15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21 };
	struct kw_hm_dht_ping_req q = { peer_a(), false };
	struct kw_hm_dht_stats st;
	char text[128];

	(void)state;
	memset(&g->r, 0, sizeof(g->r));
	assert_int_equal(kw_hm_call(g->a.hm, g->conn, "DHTProtocol.rpc_find", bad, sizeof(bad),
				    0, kw_hm_test_on_result, &g->r), 0);
	pump(80);
	assert_int_equal(g->r.done, 1);
	assert_true(g->r.remote_error);
	kw_hm_error_text(g->r.data, g->r.len, text, sizeof(text));
	assert_string_equal(text, "AssertionError('peer.node_id longer than 20 bytes')");
	kw_hm_dht_get_stats(g->b.dht, &st);
	assert_int_equal(st.bad_requests, 1);
	call("DHTProtocol.rpc_ping", KW_HM_DHT_PING_REQ, &q);
	assert_false(g->r.remote_error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_ping_answers_node_and_time_and_learns_caller, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_hm_dht_server_client_mode_ping_is_not_added,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_validate_ping_pings_the_caller_back, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_validate_ping_with_false_id_is_unavailable, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_store_then_find_regular_and_dictionary, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_misaligned_store_is_an_assertion_error, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_dht_server_long_node_id_is_refused_and_serving_goes_on, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
