/*
 * The DHT's libp2p transport (net/kad/swarm.c): three swarms on the simulated network, real
 * Noise + yamux streams, identify admission, FIND_NODE / PUT_VALUE / GET_VALUE / providers
 * through the Kademlia core, several requests on one stream, a bad stream reset while the node
 * keeps serving another peer, and a client-mode node neither advertising /ipfs/kad/1.0.0 nor
 * entering anyone's routing table. Pool leak checks after every test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#include <kw/net/varint.h>

#define NSIDES 3

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_privkey key;
	char addr[256];
};

struct op {
	int done, err;
	unsigned stored;
	size_t n_peers, value_len;
	uint8_t value[256];
	struct kw_kad_peer first;
};

struct raw {
	struct kw_stream *s;
	int open_done, open_err, closed, close_reason, eof;
	uint8_t got[8192];
	size_t got_len;
};

struct fx {
	struct kw_test_net *net;
	struct side s[NSIDES];
	struct op op;
	struct raw raw;
};

static struct fx *g;
static struct kw_kad_msg g_msg;  /* 41 KiB: never on the stack */

/* ---- plumbing ----------------------------------------------------------------------------- */

static void pump(int passes)
{
	int i, k;

	for (i = 0; i < passes; i++)
		for (k = 0; k < NSIDES; k++)
			if (g->s[k].t)
				kw_loop_run_once(&g->s[k].t->node->loop, 0);
}

static void advance(uint64_t ms)
{
	kw_sim_advance(g->net->net, ms);
	pump(4);
}

/* Pumps until *flag is set, moving virtual time on in 10 ms steps (at most `ms`). */
static void wait_for(const int *flag, uint64_t ms)
{
	uint64_t t;

	for (t = 0; !*flag && t < ms; t += 10) {
		pump(20);
		if (!*flag)
			advance(10);
	}
}

static size_t arena_kib(void)
{
	static const struct kw_peer_id any = { .len = 2, .bytes = { 0x12, 0x00 } };
	struct kw_kad_cfg c;

	kw_kad_cfg_default(&c);
	c.self = &any;  /* the sizes do not depend on who we are */
	return 32 * 1024 + (kw_kad_arena_bytes(&c) + 2 * sizeof(struct kw_kad_msg) +
			    (size_t)CONFIG_KW_NET_KAD_STREAMS * 2048 +
			    (size_t)CONFIG_KW_NET_KAD_BUFFERS *
				    (CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 64)) / 1024 + 1024;
}

static int make_side(struct side *s, int port, bool client)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_kad_cfg kc;
	char listen[64];
	int ret;

	s->t = kw_test_node_join(g->net, arena_kib());
	if (!s->t)
		return -KW_ENOMEM;
	ret = kw_key_generate(KW_KEY_ED25519, 0, &s->key);
	if (ret == 0)
		ret = kw_swarm_create(s->t->node, &s->key, &lim, &s->sw);
	if (ret == 0)
		ret = kw_identify_init(s->sw, &s->id);
	if (ret == 0) {
		kw_kad_cfg_default(&kc);
		kc.self = kw_swarm_peer_id(s->sw);
		kc.client_mode = client;
		kc.key = kw_swarm_key(s->sw);
		/* the transport is under test, not the rate limit: its Kconfig minimum (one
		 * request per second) would refuse a lookup's second request */
		kc.rate_per_peer = 1000;
		kc.rate_burst = 1000;
		ret = kw_kad_swarm_create(s->sw, s->id, &s->t->node->arena, &kc, &s->kad);
	}
	snprintf(listen, sizeof(listen), "/ip4/127.0.0.1/tcp/%d", port);
	if (ret == 0)
		ret = kw_swarm_listen(s->sw, listen);
	if (ret == 0)
		ret = kw_swarm_listen_addr(s->sw, 0, s->addr, sizeof(s->addr));
	return ret;
}

static int setup_with(bool c_client)
{
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->net = kw_test_net_new(64, 1 << 18);
	if (!g->net)
		return -1;
	if (make_side(&g->s[0], 4001, false) < 0 || make_side(&g->s[1], 4002, false) < 0 ||
	    make_side(&g->s[2], 4003, c_client) < 0)
		return -1;
	return 0;
}

static int setup(void **state) { return setup_with(false); }
static int setup_client(void **state) { return setup_with(true); }

static int teardown(void **state)
{
	int k;

	for (k = 0; k < NSIDES; k++) {
		kw_kad_swarm_destroy(g->s[k].kad);
		kw_swarm_destroy(g->s[k].sw);
	}
	pump(4);
	for (k = 0; k < NSIDES; k++) {
		kw_test_assert_no_leaks(g->s[k].t->node);
		kw_test_node_free(g->s[k].t);
	}
	assert_int_equal(kw_sim_open_sockets(g->net->net), 0);
	kw_test_net_free(g->net);
	free(g);
	g = NULL;
	return 0;
}

static int dial_done, dial_err;

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	dial_done++;
	dial_err = err;
}

/* Side `from` dials side `to` and both identify. */
static void connect_sides(int from, int to)
{
	dial_done = 0;
	assert_int_equal(kw_swarm_dial(g->s[from].sw, g->s[to].addr, on_dial, NULL), 0);
	wait_for(&dial_done, 2000);
	assert_int_equal(dial_err, 0);
	pump(80);  /* identify both ways */
}

static size_t members(int k)
{
	return kw_kad_rt_size(kw_kad_table(g->s[k].kad));
}

static void on_op(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct op *o = (struct op *)user;

	o->done++;
	o->err = r->err;
	o->stored = r->stored;
	o->n_peers = r->n_peers;
	if (r->n_peers)
		o->first = r->peers[0];
	o->value_len = r->value ? r->value_len : 0;
	if (r->value)
		memcpy(o->value, r->value, KW_MIN(r->value_len, sizeof(o->value)));
}

/* ---- a raw kad stream (bypassing our transport, as another implementation would) ------- */

static size_t raw_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	size_t k = KW_MIN(n, sizeof(g->raw.got) - g->raw.got_len);

	memcpy(g->raw.got + g->raw.got_len, d, k);
	g->raw.got_len += k;
	return n;
}
static void raw_eof(struct kw_stream *s) { g->raw.eof++; }
static void raw_close(struct kw_stream *s, int r)
{
	g->raw.closed++;
	g->raw.close_reason = r;
	g->raw.s = NULL;
}
static const struct kw_stream_handler raw_h = {
	.on_data = raw_data, .on_eof = raw_eof, .on_close = raw_close,
};
static void raw_open(struct kw_stream *s, int err, void *user)
{
	g->raw.open_done++;
	g->raw.open_err = err;
	g->raw.s = s;
}

static void open_raw(int from, int to)
{
	struct kw_conn *c = kw_swarm_find_conn(g->s[from].sw, kw_swarm_peer_id(g->s[to].sw));

	assert_non_null(c);
	memset(&g->raw, 0, sizeof(g->raw));
	assert_int_equal(kw_swarm_open_stream(g->s[from].sw, c, KW_KAD_PROTOCOL, &raw_h, NULL,
					      raw_open), 0);
	wait_for(&g->raw.open_done, 1000);
	assert_int_equal(g->raw.open_err, 0);
	assert_non_null(g->raw.s);
}

/* Several raw streams at once: the handler's user points at its own struct raw. */
#define NRAW (CONFIG_KW_NET_KAD_BUFFERS + 1)
static struct raw g_many[NRAW];

static size_t many_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	struct raw *r = (struct raw *)s->user;
	size_t k = KW_MIN(n, sizeof(r->got) - r->got_len);

	memcpy(r->got + r->got_len, d, k);
	r->got_len += k;
	return n;
}
static void many_close(struct kw_stream *s, int reason)
{
	struct raw *r = (struct raw *)s->user;

	r->closed++;
	r->close_reason = reason;
	r->s = NULL;
}
static const struct kw_stream_handler many_h = { .on_data = many_data, .on_close = many_close };
static void many_open(struct kw_stream *s, int err, void *user)
{
	struct raw *r = (struct raw *)user;

	r->open_done++;
	r->open_err = err;
	r->s = s;
}

/* A FIND_NODE request for key `target` (peer id bytes), encoded with its prefix. */
static long find_node_req(const struct kw_peer_id *target, uint8_t *buf, size_t cap)
{
	kw_kad_msg_init(&g_msg, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&g_msg, target->bytes, target->len), 0);
	return kw_kad_msg_encode(&g_msg, buf, cap);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_kad_swarm_identify_admits_servers_both_ways(void **state)
{
	assert_int_equal(members(0), 0);
	connect_sides(0, 1);
	assert_int_equal(members(0), 1);
	assert_int_equal(members(1), 1);
	assert_non_null(kw_kad_rt_find(kw_kad_table(g->s[0].kad), kw_swarm_peer_id(g->s[1].sw)));
}

static void test_kad_swarm_client_mode_is_not_advertised_nor_added(void **state)
{
	struct kw_conn *c;

	connect_sides(2, 1);  /* the client dials a server */
	c = kw_swarm_find_conn(g->s[1].sw, kw_swarm_peer_id(g->s[2].sw));
	assert_non_null(c);
	assert_true(kw_identify_remote(g->s[1].id, c)->have);
	assert_false(kw_identify_remote_has(g->s[1].id, c, KW_KAD_PROTOCOL));
	assert_true(kw_identify_remote_has(g->s[1].id, c, KW_IDENTIFY_PROTO));
	assert_int_equal(members(1), 0);   /* the server does not keep the client */
	assert_int_equal(members(2), 1);   /* the client keeps the server */
}

static void test_kad_swarm_find_peer_crosses_a_third_node(void **state)
{
	connect_sides(0, 1);
	connect_sides(2, 1);
	/* a knows only b; b knows c: a's lookup for c asks b, which names c with its address */
	assert_int_equal(kw_kad_find_peer(g->s[0].kad, kw_swarm_peer_id(g->s[2].sw), on_op,
					  &g->op), 0);
	assert_int_equal(g->op.done, 0);  /* never synchronously */
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.done, 1);
	assert_int_equal(g->op.err, 0);
	assert_true(g->op.n_peers >= 1);
	assert_memory_equal(g->op.first.id, kw_swarm_peer_id(g->s[2].sw)->bytes,
			    kw_swarm_peer_id(g->s[2].sw)->len);
	assert_true(g->op.first.n_addrs >= 1);
}

static void test_kad_swarm_put_then_get_from_another_node(void **state)
{
	static const char key[] = "/kwaai/test/greeting";

	connect_sides(0, 1);
	connect_sides(2, 1);
	assert_int_equal(kw_kad_put_value(g->s[0].kad, (const uint8_t *)key, strlen(key),
					  (const uint8_t *)"hello", 5, on_op, &g->op), 0);
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.done, 1);
	assert_true(g->op.stored >= 1);
	memset(&g->op, 0, sizeof(g->op));
	assert_int_equal(kw_kad_get_value(g->s[2].kad, (const uint8_t *)key, strlen(key), on_op,
					  &g->op), 0);
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.done, 1);
	assert_int_equal(g->op.err, 0);
	assert_true(g->op.value_len > 0);
}

static void test_kad_swarm_provide_then_find_providers(void **state)
{
	/* sha2-256 multihash of some content */
	uint8_t mh[34] = { 0x12, 0x20 };

	memset(mh + 2, 0xab, 32);
	connect_sides(0, 1);
	connect_sides(2, 1);
	assert_int_equal(kw_kad_provide(g->s[0].kad, mh, sizeof(mh), on_op, &g->op), 0);
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.done, 1);
	assert_true(g->op.stored >= 1);
	memset(&g->op, 0, sizeof(g->op));
	assert_int_equal(kw_kad_find_providers(g->s[2].kad, mh, sizeof(mh), on_op, &g->op), 0);
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.done, 1);
	assert_true(g->op.n_peers >= 1);
	assert_memory_equal(g->op.first.id, kw_swarm_peer_id(g->s[0].sw)->bytes,
			    kw_swarm_peer_id(g->s[0].sw)->len);
	assert_true(g->op.first.n_addrs >= 1);  /* our listen address went with the record */
}

static void test_kad_swarm_answers_several_requests_on_one_stream(void **state)
{
	static uint8_t buf[2048];
	long n1, n2, d;
	size_t off = 0;
	int answers = 0;

	connect_sides(0, 1);
	open_raw(0, 1);
	/* two requests written back to back before any answer is read */
	n1 = find_node_req(kw_swarm_peer_id(g->s[0].sw), buf, sizeof(buf));
	assert_true(n1 > 0);
	n2 = find_node_req(kw_swarm_peer_id(g->s[1].sw), buf + n1, sizeof(buf) - (size_t)n1);
	assert_true(n2 > 0);
	assert_int_equal(kw_stream_write(g->raw.s, buf, (size_t)(n1 + n2)), n1 + n2);
	pump(60);
	while (off < g->raw.got_len) {
		d = kw_kad_msg_decode(g->raw.got + off, g->raw.got_len - off, &g_msg);
		assert_true(d > 0);
		assert_int_equal(g_msg.type, KW_KAD_FIND_NODE);
		off += (size_t)d;
		answers++;
	}
	assert_int_equal(answers, 2);
	assert_int_equal(g->raw.closed, 0);  /* the stream stays open for more */
	/* a third one after the answers, then half-close: answered, then closed cleanly */
	assert_int_equal(kw_stream_write(g->raw.s, buf, (size_t)n1), n1);
	kw_stream_close_write(g->raw.s);
	pump(60);
	assert_true(kw_kad_msg_decode(g->raw.got + off, g->raw.got_len - off, &g_msg) > 0);
	assert_int_equal(g->raw.eof, 1);
	assert_int_equal(g->raw.closed, 1);
	assert_int_equal(g->raw.close_reason, 0);
}

static void test_kad_swarm_oversized_prefix_resets_only_that_stream(void **state)
{
	uint8_t pfx[KW_UVARINT_MAX_BYTES];
	int h;

	connect_sides(0, 1);
	connect_sides(2, 1);
	open_raw(0, 1);
	h = kw_uvarint_encode((uint64_t)CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 1, pfx, sizeof(pfx));
	assert_true(h > 0);
	assert_int_equal(kw_stream_write(g->raw.s, pfx, (size_t)h), h);  /* no body follows */
	pump(40);
	assert_int_equal(g->raw.closed, 1);
	assert_int_equal(g->raw.close_reason, -KW_ECONNRESET);
	assert_int_equal(g->raw.got_len, 0);
	/* the connection and the node keep serving: c's lookup through b still works */
	assert_non_null(kw_swarm_find_conn(g->s[0].sw, kw_swarm_peer_id(g->s[1].sw)));
	assert_int_equal(kw_kad_find_peer(g->s[2].kad, kw_swarm_peer_id(g->s[0].sw), on_op,
					  &g->op), 0);
	wait_for(&g->op.done, 20000);
	assert_int_equal(g->op.err, 0);
	assert_true(g->op.n_peers >= 1);
}

static void test_kad_swarm_stream_waits_for_a_buffer_and_is_served_when_one_returns(void **state)
{
	static uint8_t req[512];
	struct kw_conn *c;
	long n;
	int i, all = 0;

	connect_sides(0, 1);
	c = kw_swarm_find_conn(g->s[0].sw, kw_swarm_peer_id(g->s[1].sw));
	assert_non_null(c);
	memset(g_many, 0, sizeof(g_many));
	for (i = 0; i < NRAW; i++)
		assert_int_equal(kw_swarm_open_stream(g->s[0].sw, c, KW_KAD_PROTOCOL, &many_h,
						      &g_many[i], many_open), 0);
	for (i = 0; i < 200 && all < NRAW; i++) {
		int k;

		pump(2);
		for (k = 0, all = 0; k < NRAW; k++)
			all += g_many[k].open_done;
	}
	n = find_node_req(kw_swarm_peer_id(g->s[0].sw), req, sizeof(req));
	assert_true(n > 4);
	/* every buffer lent to a stream holding a partial request (all but its last byte) */
	for (i = 0; i < CONFIG_KW_NET_KAD_BUFFERS; i++) {
		assert_int_equal(g_many[i].open_err, 0);
		assert_int_equal(kw_stream_write(g_many[i].s, req, (size_t)n - 1), n - 1);
	}
	pump(20);
	/* one more stream sends a whole request: it must wait, not be reset or answered */
	assert_int_equal(kw_stream_write(g_many[NRAW - 1].s, req, (size_t)n), n);
	pump(40);
	assert_int_equal(g_many[NRAW - 1].got_len, 0);
	assert_int_equal(g_many[NRAW - 1].closed, 0);
	/* the first partial request completes: answered, its buffer returns, the waiter goes on */
	assert_int_equal(kw_stream_write(g_many[0].s, req + n - 1, 1), 1);
	pump(40);
	assert_true(g_many[0].got_len > 0);
	assert_true(kw_kad_msg_decode(g_many[NRAW - 1].got, g_many[NRAW - 1].got_len, &g_msg) > 0);
	assert_int_equal(g_msg.type, KW_KAD_FIND_NODE);
	for (i = 0; i < NRAW; i++)
		if (g_many[i].s)
			kw_stream_reset(g_many[i].s);
	pump(10);
}

static void test_kad_swarm_garbage_request_resets_the_stream(void **state)
{
	/* a complete message whose body is not a protobuf (field 0 is invalid) */
	static const uint8_t bad[] = { 0x03, 0x00, 0x00, 0x00 };
	struct kw_kad_stats st0, st;

	connect_sides(0, 1);
	kw_kad_get_stats(g->s[1].kad, &st0);
	open_raw(0, 1);
	assert_int_equal(kw_stream_write(g->raw.s, bad, sizeof(bad)), (long)sizeof(bad));
	pump(40);
	assert_int_equal(g->raw.closed, 1);
	assert_int_equal(g->raw.close_reason, -KW_ECONNRESET);
	kw_kad_get_stats(g->s[1].kad, &st);
	assert_int_equal(st.requests_in, st0.requests_in);  /* never reached the core */
}

static void test_kad_swarm_request_to_unreachable_peer_fails_on_the_loop(void **state)
{
	struct kw_privkey k2;
	struct kw_peer_id ghost;
	struct kw_multiaddr ma;
	struct kw_kad_stats st;
	static const uint8_t key[] = "/kwaai/anything";

	/* a peer in a's table at an address nobody listens on */
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &k2), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&k2.pub, &ghost), 0);
	assert_int_equal(kw_maddr_from_text("/ip4/127.0.0.1/tcp/4999", &ma, NULL, 0), 0);
	kw_kad_peer_seen(g->s[0].kad, &ghost, &ma, 1);
	assert_int_equal(members(0), 1);
	assert_int_equal(kw_kad_get_closest(g->s[0].kad, key, sizeof(key) - 1, on_op, &g->op), 0);
	assert_int_equal(g->op.done, 0);  /* the dial's failure comes later, on the loop */
	wait_for(&g->op.done, 120000);
	assert_int_equal(g->op.done, 1);
	kw_kad_get_stats(g->s[0].kad, &st);
	assert_int_equal(st.requests_out, 1);
	assert_int_equal(st.replies_failed, 1);
	assert_int_equal(st.replies_ok, 0);
	/* the table's only member: kept, marked stale, until a working peer exists (with one,
	 * the failure drops it: test_kad.c, test_kad_rt.c) */
	assert_int_equal(members(0), 1);
	assert_int_equal(kw_kad_rt_find(kw_kad_table(g->s[0].kad), &ghost)->fails, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kad_swarm_identify_admits_servers_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_client_mode_is_not_advertised_nor_added, setup_client, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_find_peer_crosses_a_third_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_put_then_get_from_another_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_provide_then_find_providers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_answers_several_requests_on_one_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_oversized_prefix_resets_only_that_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_stream_waits_for_a_buffer_and_is_served_when_one_returns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_garbage_request_resets_the_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kad_swarm_request_to_unreachable_peer_fails_on_the_loop, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
