/*
 * Two (or three) swarms in one process on the simulated network: full upgrade (mss, Noise
 * XX, yamux), identify, ping, echo streams, limits (connections, streams, handshake and idle
 * timeouts through virtual time), malformed input closing only the offending connection, and
 * pool leak checks after every test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "swarm_fx.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/identify.h>
#include <kw/net/key.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#define ECHO "/kw-test/echo/1.0.0"

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_privkey key;
	char addr[256];
};

struct fx {
	struct kw_test_net *net;
	struct side a, b;
	/* results */
	struct kw_conn *dialed;
	int dial_err, dial_done;
	int open_err, open_done;
	struct kw_stream *opened;
	uint8_t got[4096];
	size_t got_len;
	int eof, closed, close_reason;
	struct kw_swarm_test_pings ping;
	int echo_eofs, echo_closes, echo_resets;
};

static struct fx *g;

/* ---- echo protocol on the listening side ----------------------------------------------- */

static size_t echo_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	long w = kw_stream_write(s, d, n);

	return w < 0 ? n : (size_t)w;
}
static void echo_eof(struct kw_stream *s) { g->echo_eofs++; kw_stream_close_write(s); }
static void echo_writable(struct kw_stream *s) { kw_stream_resume(s); }
static void echo_close(struct kw_stream *s, int r)
{
	if (r == -KW_ECONNRESET)
		g->echo_resets++;
	else
		g->echo_closes++;
}
static const struct kw_stream_handler echo_h = {
	.on_data = echo_data, .on_eof = echo_eof, .on_writable = echo_writable, .on_close = echo_close,
};
static int echo_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	s->h = &echo_h;
	return 0;
}

/* ---- client stream handler --------------------------------------------------------------- */

static size_t cli_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	size_t k = KW_MIN(n, sizeof(g->got) - g->got_len);

	memcpy(g->got + g->got_len, d, k);
	g->got_len += k;
	return n;
}
static void cli_eof(struct kw_stream *s) { g->eof++; }
static void cli_close(struct kw_stream *s, int r)
{
	g->closed++;
	g->close_reason = r;
	g->opened = NULL;
}
static const struct kw_stream_handler cli_h = {
	.on_data = cli_data, .on_eof = cli_eof, .on_close = cli_close,
};

static void on_open(struct kw_stream *s, int err, void *user)
{
	g->open_done++;
	g->open_err = err;
	g->opened = s;
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	g->dial_done++;
	g->dial_err = err;
	g->dialed = c;
}

/* ---- plumbing ----------------------------------------------------------------------------- */

static void pump(int passes)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };

	kw_swarm_test_pump(t, 2, passes);
}

static void advance(uint64_t ms)
{
	kw_sim_advance(g->net->net, ms);
	pump(4);
}

static int make_side(struct side *s, const char *listen, const struct kw_swarm_limits *lim)
{
	int ret = kw_swarm_test_node(g->net, 32 * 1024, lim, &s->t, &s->key, &s->sw);

	if (ret == 0)
		ret = kw_identify_init(s->sw, &s->id);
	if (ret == 0)
		ret = kw_ping_register(s->sw);
	if (ret == 0)
		ret = kw_swarm_register(s->sw, ECHO, echo_accept, NULL);
	if (ret == 0)
		ret = kw_swarm_test_listen(s->sw, listen, s->addr, sizeof(s->addr));
	return ret;
}

static struct kw_swarm_limits g_lim;

static int setup_with(const struct kw_swarm_limits *lim)
{
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->net = kw_test_net_new(64, 1 << 18);
	if (!g->net)
		return -1;
	if (make_side(&g->b, "/ip4/127.0.0.1/tcp/4001", lim) < 0 ||
	    make_side(&g->a, "/ip4/127.0.0.1/tcp/4002", lim) < 0)
		return -1;
	return 0;
}

static int setup(void **state)
{
	return setup_with(NULL);
}

static int setup_limits(void **state)
{
	/* the tests' limits, then tightened */
	g_lim = kw_test_swarm_limits();
	g_lim.max_conns_in = 1;
	g_lim.max_streams_per_conn = 6;  /* identify both ways + a few */
	g_lim.handshake_timeout_ms = 3000;
	g_lim.idle_timeout_ms = 60000;
	return setup_with(&g_lim);
}

static int setup_one_out(void **state)
{
	g_lim = kw_test_swarm_limits();
	g_lim.max_conns_out = 1;
	g_lim.idle_timeout_ms = 60000;
	return setup_with(&g_lim);
}

static int teardown(void **state)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };
	struct kw_swarm *sw[2] = { g->a.sw, g->b.sw };

	kw_swarm_test_free(g->net, t, sw, 2, 2);
	free(g);
	g = NULL;
	return 0;
}

static struct kw_conn *connect_ab(void)
{
	assert_int_equal(kw_swarm_dial(g->a.sw, g->b.addr, on_dial, NULL), 0);
	pump(50);
	assert_int_equal(g->dial_done, 1);
	assert_int_equal(g->dial_err, 0);
	return g->dialed;
}

/* b's side of the connection a dialled. */
static struct kw_conn *back_of_ab(void)
{
	struct kw_conn *back = kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(g->a.sw));

	assert_non_null(back);
	return back;
}

/* The pending dial of a fails with -KW_ETIMEDOUT at the 3 s handshake timeout, not before. */
static void assert_dial_times_out(void)
{
	advance(2999);
	assert_int_equal(g->dial_done, 0);
	advance(2);
	assert_int_equal(g->dial_done, 1);
	assert_int_equal(g->dial_err, -KW_ETIMEDOUT);
}

/* A raw TCP connection to b from `src` (host order) that never says a word. */
static int raw_connect(struct kw_sim *sim, uint32_t src)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(4001),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	int fd = sim->sys.ops->tcp_socket(&sim->sys, AF_INET);

	assert_true(fd >= 0);
	sim->src_ip = src;
	sim->sys.ops->connect(&sim->sys, fd, (struct sockaddr *)&in, sizeof(in));
	sim->src_ip = 0;
	return fd;
}

/* What the identify of c's own side learnt about c's remote. */
static struct kw_identify *id_of(const struct kw_conn *c)
{
	return kw_conn_swarm(c) == g->a.sw ? g->a.id : g->b.id;
}

static const struct kw_identify_remote *remote(const struct kw_conn *c)
{
	return kw_identify_remote(id_of(c), c);
}

static bool lists(const struct kw_conn *c, const char *proto)
{
	const char *p;
	size_t i;

	for (i = 0; (p = kw_identify_remote_protocol(id_of(c), c, i)) != NULL; i++)
		if (!strcmp(p, proto))
			return true;
	return false;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_swarm_dial_upgrades_and_matches_peer_id(void **state)
{
	struct kw_conn *c = connect_ab();
	struct kw_conn *back;

	assert_true(kw_peer_id_equal(kw_conn_peer_id(c), kw_swarm_peer_id(g->b.sw)));
	assert_true(kw_conn_outbound(c));
	back = back_of_ab();
	assert_false(kw_conn_outbound(back));
}

static void test_swarm_identify_exchanges_protocols_both_ways(void **state)
{
	struct kw_conn *c = connect_ab(), *back;

	pump(50);
	back = kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(g->a.sw));
	assert_true(remote(c)->have);
	assert_true(lists(c, KW_PING_PROTO));
	assert_true(lists(c, ECHO));
	assert_true(lists(c, KW_IDENTIFY_PROTO));
	assert_string_equal(remote(c)->protocol_version, "ipfs/0.1.0");
	assert_memory_equal(remote(c)->agent, "kwaainet-edge/", 14);
	assert_true(remote(back)->have);
	assert_true(lists(back, ECHO));
	assert_int_equal(remote(back)->n_listen, 1);
}

static void test_identify_push_sends_new_protocols_to_connected_peer_once(void **state)
{
	struct kw_conn *c = connect_ab(), *back;
	struct kw_swarm_stats st0, st;

	pump(50);
	back = back_of_ab();
	assert_true(lists(back, KW_IDENTIFY_PUSH_PROTO));
	assert_false(lists(c, "/late/1.0.0"));
	kw_swarm_get_stats(g->b.sw, &st0);
	/* two changes in a burst: one push, after the coalescing delay */
	assert_int_equal(kw_swarm_register(g->b.sw, "/late/1.0.0", echo_accept, NULL), 0);
	assert_int_equal(kw_swarm_register(g->b.sw, "/later/1.0.0", echo_accept, NULL), 0);
	advance(CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS - 1);
	pump(20);
	assert_false(lists(c, "/late/1.0.0"));
	advance(2);
	pump(30);
	assert_true(lists(c, "/late/1.0.0"));
	assert_true(lists(c, "/later/1.0.0"));
	assert_true(lists(c, ECHO));
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.streams_out - st0.streams_out, 1);
	/* nothing changed since: no further push */
	advance(5 * CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS);
	pump(20);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.streams_out - st0.streams_out, 1);
	assert_int_equal(kw_conn_stream_count(c), 0);
}

/* Removes one protocol from what identify learnt about the remote of c. */
static void forget_remote_protocol(struct kw_conn *c, const char *proto)
{
	/* the block is the identify slot's, writable; the API hands it out read-only */
	struct kw_identify_remote *ci = (struct kw_identify_remote *)remote(c);
	char keep[KW_IDENTIFY_PROTOS_BYTES];
	size_t off = 0, in = 0;
	uint16_t n = 0;

	while (in < ci->protos_len) {
		const char *p = ci->protos + in;
		size_t l = strlen(p) + 1;

		if (strcmp(p, proto)) {
			memcpy(keep + off, p, l);
			off += l;
			n++;
		}
		in += l;
	}
	memcpy(ci->protos, keep, off);
	ci->protos_len = (uint16_t)off;
	ci->n_protocols = n;
}

static void test_identify_push_skips_peer_without_push_protocol(void **state)
{
	struct kw_conn *c = connect_ab(), *back;
	struct kw_swarm_stats st0, st;

	pump(50);
	back = back_of_ab();
	/* b now believes a does not speak identify push (as an older go or rust peer) */
	forget_remote_protocol(back, KW_IDENTIFY_PUSH_PROTO);
	assert_false(lists(back, KW_IDENTIFY_PUSH_PROTO));
	assert_true(lists(back, ECHO));
	kw_swarm_get_stats(g->b.sw, &st0);
	assert_int_equal(kw_swarm_register(g->b.sw, "/late/1.0.0", echo_accept, NULL), 0);
	advance(2 * CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS);
	pump(30);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.streams_out - st0.streams_out, 0);  /* no push stream opened */
	assert_int_equal(st.negotiations_failed - st0.negotiations_failed, 0);
	assert_false(lists(c, "/late/1.0.0"));
	assert_int_equal(kw_conn_stream_count(c), 0);
}

struct obs_rec {
	int calls, pushes;
	bool listed_late;     /* the remote's protocol list was current when we were told */
	uint8_t n_addrs;
	struct kw_conn *c;
};

static void on_identified(struct kw_identify *id, struct kw_conn *c, bool push, void *arg)
{
	struct obs_rec *r = (struct obs_rec *)arg;

	r->calls++;
	r->pushes += push;
	r->c = c;
	r->listed_late = kw_identify_remote_has(id, c, "/late/1.0.0");
	r->n_addrs = kw_identify_remote(id, c)->n_addrs;
}

static void test_identify_observer_told_after_answer_and_after_push(void **state)
{
	static struct obs_rec r;
	static struct kw_identify_observer o = { .on_identified = on_identified, .arg = &r };
	struct kw_conn *c;

	memset(&r, 0, sizeof(r));
	kw_identify_add_observer(g->a.id, &o);
	c = connect_ab();
	pump(50);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.pushes, 0);
	assert_ptr_equal(r.c, c);
	assert_false(r.listed_late);
	assert_int_equal(r.n_addrs, 1);  /* b's listen address, kept for kad */
	assert_true(kw_identify_remote_has(g->a.id, c, ECHO));
	assert_false(kw_identify_remote_has(g->a.id, c, "/nope/1.0.0"));
	assert_int_equal(kw_swarm_register(g->b.sw, "/late/1.0.0", echo_accept, NULL), 0);
	advance(CONFIG_KW_NET_IDENTIFY_PUSH_DELAY_MS + 1);
	pump(30);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.pushes, 1);
	assert_true(r.listed_late);
}

static void test_swarm_ping_counts_round_trips(void **state)
{
	struct kw_conn *c = connect_ab();
	struct kw_ping p = { 0 };

	assert_int_equal(kw_ping_start(&p, g->a.sw, c, 3, 0, kw_swarm_test_on_ping, &g->ping), 0);
	pump(50);
	assert_int_equal(g->ping.pings, 3);
	assert_int_equal(g->ping.done, 1);
	assert_int_equal(g->ping.err, 0);
}

/* The status page's traffic figures: every TCP byte one side writes, the other counts read. */
static void test_swarm_counts_tcp_bytes_both_ways(void **state)
{
	struct kw_conn *c = connect_ab();
	struct kw_swarm_stats a0, b0, a, b;
	struct kw_ping p = { 0 };

	pump(20);
	kw_swarm_get_stats(g->a.sw, &a0);
	kw_swarm_get_stats(g->b.sw, &b0);
	assert_true(a0.bytes_out > 0 && a0.bytes_in > 0);
	assert_true(a0.bytes_out == b0.bytes_in && a0.bytes_in == b0.bytes_out);
	assert_int_equal(kw_ping_start(&p, g->a.sw, c, 3, 0, kw_swarm_test_on_ping, &g->ping), 0);
	pump(50);
	assert_int_equal(g->ping.pings, 3);
	kw_swarm_get_stats(g->a.sw, &a);
	kw_swarm_get_stats(g->b.sw, &b);
	/* three 32-byte pings and their echoes, plus framing and the AEAD tags */
	assert_true(a.bytes_out - a0.bytes_out >= 3 * 32);
	assert_true(b.bytes_out - b0.bytes_out >= 3 * 32);
	assert_true(a.bytes_out == b.bytes_in && a.bytes_in == b.bytes_out);
}

static void test_swarm_echo_stream_round_trip_and_half_close(void **state)
{
	struct kw_conn *c = connect_ab();

	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, ECHO, &cli_h, NULL, on_open), 0);
	pump(20);
	assert_int_equal(g->open_done, 1);
	assert_int_equal(g->open_err, 0);
	assert_non_null(g->opened);
	assert_string_equal(g->opened->protocol, ECHO);
	assert_int_equal(kw_stream_write(g->opened, (const uint8_t *)"hello", 5), 5);
	assert_int_equal(kw_stream_close_write(g->opened), 0);
	pump(20);
	assert_int_equal(g->got_len, 5);
	assert_memory_equal(g->got, "hello", 5);
	assert_int_equal(g->eof, 1);
	assert_int_equal(g->echo_eofs, 1);
	assert_int_equal(g->closed, 1);
	assert_int_equal(g->close_reason, 0);
	assert_int_equal(g->echo_closes, 1);
}

static void test_swarm_reset_reaches_the_handler(void **state)
{
	struct kw_conn *c = connect_ab();

	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, ECHO, &cli_h, NULL, on_open), 0);
	pump(20);
	assert_non_null(g->opened);
	kw_stream_write(g->opened, (const uint8_t *)"x", 1);
	pump(10);
	kw_stream_reset(g->opened);
	pump(20);
	assert_int_equal(g->echo_resets, 1);
	assert_int_equal(g->closed, 1);
	assert_int_equal(g->close_reason, -KW_ECONNRESET);
}

static void test_swarm_unknown_protocol_fails_enoproto(void **state)
{
	struct kw_conn *c = connect_ab();

	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, "/nope/1.0.0", &cli_h, NULL, on_open), 0);
	pump(20);
	assert_int_equal(g->open_done, 1);
	assert_int_equal(g->open_err, -KW_ENOPROTO);
	assert_null(g->opened);
}

/* Hivemind handler names are protocol IDs without a leading slash (go-libp2p accepts them). */
static void test_swarm_protocol_id_without_leading_slash_is_served(void **state)
{
	struct kw_conn *c;

	assert_int_equal(kw_swarm_register(g->b.sw, "DHTProtocol.rpc_ping", echo_accept, NULL), 0);
	assert_int_equal(kw_swarm_register(g->b.sw, "bad\nid", echo_accept, NULL), -KW_EINVAL);
	assert_int_equal(kw_swarm_register(g->b.sw, "", echo_accept, NULL), -KW_EINVAL);
	c = connect_ab();
	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, "DHTProtocol.rpc_ping", &cli_h, NULL,
					      on_open), 0);
	pump(20);
	assert_int_equal(g->open_err, 0);
	assert_non_null(g->opened);
	assert_string_equal(g->opened->protocol, "DHTProtocol.rpc_ping");
	assert_int_equal(kw_stream_write(g->opened, (const uint8_t *)"ping", 4), 4);
	pump(20);
	assert_int_equal(g->got_len, 4);
	assert_memory_equal(g->got, "ping", 4);
}

static void test_swarm_dial_wrong_peer_id_fails_epeerid(void **state)
{
	char addr[300];
	char wrong[KW_PEER_ID_TEXT_MAX];

	/* b's address with a's peer id */
	kw_peer_id_to_text(kw_swarm_peer_id(g->a.sw), wrong, sizeof(wrong));
	snprintf(addr, sizeof(addr), "/ip4/127.0.0.1/tcp/4001/p2p/%s", wrong);
	assert_int_equal(kw_swarm_dial(g->a.sw, addr, on_dial, NULL), 0);
	pump(50);
	assert_int_equal(g->dial_done, 1);
	assert_int_equal(g->dial_err, -KW_EPEERID);
}

/* A third node, freed with its leak check. */
static void free_third(struct side *c3)
{
	kw_swarm_destroy(c3->sw);
	kw_loop_run_once(&c3->t->node->loop, 0);
	kw_test_assert_no_leaks(c3->t->node);
	kw_test_node_free(c3->t);
}

/* A newcomer node dials b (whose inbound slots the test has filled) and runs to the end. */
static void newcomer_dials_b(struct side *c3)
{
	assert_int_equal(make_side(c3, NULL, NULL), 0);
	g->dial_done = 0;
	assert_int_equal(kw_swarm_dial(c3->sw, g->b.addr, on_dial, NULL), 0);
	for (int i = 0; i < 50; i++) {
		pump(1);
		kw_loop_run_once(&c3->t->node->loop, 0);
	}
}

static void test_swarm_inbound_limit_refuses_second_connection(void **state)
{
	struct kw_swarm_stats st;
	struct side c3 = { 0 };

	connect_ab();
	newcomer_dials_b(&c3);
	assert_int_equal(g->dial_done, 1);
	assert_int_not_equal(g->dial_err, 0);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_refused_limit, 1);
	assert_int_equal(st.conns_up, 1);  /* the first peer is still served */
	free_third(&c3);
}

/* At the inbound limit, a connection idle (no stream, no traffic) for 5 s is closed so a
 * newcomer gets in instead of being refused. */
static void test_swarm_full_inbound_closes_an_idle_connection_for_a_newcomer(void **state)
{
	struct kw_swarm_stats st;
	struct side c3 = { 0 };

	connect_ab();
	pump(50);            /* identify done both ways: no stream left open */
	advance(6000);       /* idle past the trim threshold, well within the idle timeout */
	newcomer_dials_b(&c3);
	assert_int_equal(g->dial_done, 1);
	assert_int_equal(g->dial_err, 0);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_refused_limit, 0);
	assert_int_equal(st.conns_trimmed, 1);
	assert_int_equal(st.conns_in, 1);
	assert_null(kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(g->a.sw)));
	assert_non_null(kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(c3.sw)));
	free_third(&c3);
}

/* A third node listening, to dial while a's one outbound slot is taken. */
static void dial_third(struct side *c3, int expect_ret)
{
	assert_int_equal(make_side(c3, "/ip4/127.0.0.1/tcp/4003", NULL), 0);
	g->dial_done = 0;
	assert_int_equal(kw_swarm_dial(g->a.sw, c3->addr, on_dial, NULL), expect_ret);
	for (int i = 0; i < 60; i++) {
		pump(1);
		kw_loop_run_once(&c3->t->node->loop, 0);
	}
}

static void test_swarm_full_dial_slots_close_the_idle_outbound_connection(void **state)
{
	struct kw_swarm_stats st;
	struct side c3 = { 0 };

	connect_ab();
	pump(50);  /* identify done both ways: no stream left open */
	dial_third(&c3, 0);
	assert_int_equal(g->dial_done, 1);
	assert_int_equal(g->dial_err, 0);
	assert_true(kw_peer_id_equal(kw_conn_peer_id(g->dialed), kw_swarm_peer_id(c3.sw)));
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_pruned, 1);
	assert_int_equal(st.conns_out, 1);  /* the one to b closed gracefully and is gone */
	assert_null(kw_swarm_find_conn(g->a.sw, kw_swarm_peer_id(g->b.sw)));
	assert_int_equal(st.conns_aborted, 0);
	free_third(&c3);
}

static void test_swarm_full_dial_slots_never_close_a_connection_with_a_stream(void **state)
{
	struct kw_swarm_stats st;
	struct side c3 = { 0 };
	struct kw_conn *c = connect_ab();

	pump(50);
	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, ECHO, &cli_h, NULL, on_open), 0);
	pump(20);
	assert_non_null(g->opened);
	dial_third(&c3, -KW_ELIMIT);
	assert_int_equal(g->dial_done, 0);
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_pruned, 0);
	assert_ptr_equal(kw_swarm_find_conn(g->a.sw, kw_swarm_peer_id(g->b.sw)), c);
	/* the stream still works */
	assert_int_equal(kw_stream_write(g->opened, (const uint8_t *)"still", 5), 5);
	pump(20);
	assert_int_equal(g->got_len, 5);
	free_third(&c3);
}

static void test_swarm_stream_limit_resets_extra_streams(void **state)
{
	struct kw_conn *c = connect_ab();
	int i, ok = 0;

	if (CONFIG_KW_NET_SWARM_NEGOTIATIONS < 8)
		skip();  /* fewer negotiation states than the 6 streams this test opens at once */
	pump(50);  /* identify streams finished */
	for (i = 0; i < 10; i++)
		if (kw_swarm_open_stream(g->a.sw, c, ECHO, &cli_h, NULL, on_open) == 0)
			ok++;
	assert_int_equal(ok, 6);  /* g_lim.max_streams_per_conn */
	assert_int_equal(kw_swarm_open_stream(g->a.sw, c, ECHO, &cli_h, NULL, on_open), -KW_ELIMIT);
}

static void test_swarm_handshake_timeout_drops_silent_peer(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd = raw_connect(sim, 0);

	pump(5);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 1);
	advance(2999);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 1);
	advance(2);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 0);
	assert_int_equal(st.conns_failed, 1);
	sim->sys.ops->close(&sim->sys, fd);
}

static void test_swarm_dial_times_out_when_listener_never_accepts(void **state)
{
	struct kw_sim *sim = g->b.t->sim;
	struct kw_swarm_stats st;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(4009),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	int lfd = sim->sys.ops->tcp_socket(&sim->sys, AF_INET);

	/* the kernel completes the TCP handshake, but nobody ever accepts or reads */
	assert_int_equal(sim->sys.ops->bind_listen(&sim->sys, lfd, (struct sockaddr *)&in,
						   sizeof(in), 8), 0);
	assert_int_equal(kw_swarm_dial(g->a.sw, "/ip4/127.0.0.1/tcp/4009", on_dial, NULL), 0);
	pump(10);
	assert_dial_times_out();
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_out, 0);
	assert_int_equal(st.conns_failed, 1);
	assert_int_equal(st.conns_aborted, 1);
	sim->sys.ops->close(&sim->sys, lfd);
}

static void test_swarm_dial_times_out_on_blackholed_address(void **state)
{
	struct kw_swarm_stats st;

	g->net->net->blackhole_ip = 0x0a000001;  /* 10.0.0.1: SYNs vanish */
	assert_int_equal(kw_swarm_dial(g->a.sw, "/ip4/10.0.0.1/tcp/4001", on_dial, NULL), 0);
	pump(10);
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_out, 1);  /* still connecting: the loop was never blocked */
	assert_dial_times_out();
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_out, 0);
}

static void test_swarm_protocol_error_closes_with_rst(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd = raw_connect(sim, 0);
	uint8_t rd[256];
	long n;

	pump(5);
	sim->sys.ops->write(&sim->sys, fd, "\x13/multistream/1.0.0\n\x07/bogus\n", 29);
	pump(5);
	sim->sys.ops->write(&sim->sys, fd, "\x07/noise\n\x05zzzzz", 13);  /* bad msg1 length */
	pump(20);
	while ((n = sim->sys.ops->read(&sim->sys, fd, rd, sizeof(rd))) > 0)
		;
	assert_int_equal(n, -KW_ECONNRESET);  /* not EOF: the swarm reset the connection */
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 0);
	assert_int_equal(st.conns_aborted, 1);
	sim->sys.ops->close(&sim->sys, fd);
}

static void test_swarm_graceful_close_uses_fin_not_rst(void **state)
{
	struct kw_conn *c = connect_ab();
	struct kw_swarm_stats sa, sb;

	pump(50);
	kw_conn_close(c, 0);
	pump(50);
	kw_swarm_get_stats(g->a.sw, &sa);
	kw_swarm_get_stats(g->b.sw, &sb);
	assert_int_equal(sa.conns_up + sb.conns_up, 0);
	assert_int_equal(sa.conns_out + sb.conns_in, 0);
	assert_int_equal(sa.conns_aborted + sb.conns_aborted, 0);
}

static void test_swarm_idle_timeout_closes_connection(void **state)
{
	struct kw_swarm_stats st;

	connect_ab();
	pump(50);
	advance(59000);
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_up, 1);
	advance(1500);
	pump(20);
	kw_swarm_get_stats(g->a.sw, &st);
	assert_int_equal(st.conns_up, 0);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_up, 0);
}

static void test_swarm_malformed_bytes_close_only_that_connection(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	struct kw_ping p = { 0 };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(4001),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	struct kw_conn *c = connect_ab();
	int fd = sim->sys.ops->tcp_socket(&sim->sys, AF_INET);
	static const uint8_t junk[] = "\x13/multistream/1.0.0\n\x07/noise\n\x00\x20garbage-not-a-noise-key-xxxxxxxx";
	uint8_t rd[256];

	pump(50);
	sim->sys.ops->connect(&sim->sys, fd, (struct sockaddr *)&in, sizeof(in));
	pump(5);
	sim->sys.ops->write(&sim->sys, fd, junk, sizeof(junk) - 1);
	/* garbage after a valid msg1: the responder answers msg2, then sees a bad msg3 */
	sim->sys.ops->write(&sim->sys, fd, "\x00\x05zzzzz", 7);
	pump(20);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 1);   /* only a's connection is left */
	assert_int_equal(st.conns_failed, 1);
	while (sim->sys.ops->read(&sim->sys, fd, rd, sizeof(rd)) > 0)
		;
	sim->sys.ops->close(&sim->sys, fd);
	/* and a is still served */
	assert_int_equal(kw_ping_start(&p, g->a.sw, c, 2, 0, kw_swarm_test_on_ping, &g->ping), 0);
	pump(30);
	assert_int_equal(g->ping.pings, 2);
}

static size_t silent_data(struct kw_stream *s, const uint8_t *d, size_t n) { return n; }
static void silent_close(struct kw_stream *s, int r) { }
static const struct kw_stream_handler silent_h = { .on_data = silent_data, .on_close = silent_close };
static int silent_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	s->h = &silent_h;
	return 0;
}

static void test_ping_times_out_when_the_listener_never_answers(void **state)
{
	struct side c3 = { 0 };
	struct kw_ping p = { 0 };
	struct kw_conn *c;
	int i;

	c3.t = kw_test_node_join(g->net, 32 * 1024);
	assert_non_null(c3.t);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &c3.key), 0);
	{
		struct kw_swarm_limits small = kw_test_swarm_limits();

		assert_int_equal(kw_swarm_create(c3.t->node, &c3.key, &small, &c3.sw), 0);
	}
	assert_int_equal(kw_swarm_register(c3.sw, KW_PING_PROTO, silent_accept, NULL), 0);
	assert_int_equal(kw_swarm_listen(c3.sw, "/ip4/127.0.0.1/tcp/4003"), 0);
	assert_int_equal(kw_swarm_dial(g->a.sw, "/ip4/127.0.0.1/tcp/4003", on_dial, NULL), 0);
	for (i = 0; i < 50; i++) {
		pump(1);
		kw_loop_run_once(&c3.t->node->loop, 0);
	}
	c = g->dialed;
	assert_non_null(c);
	assert_int_equal(kw_ping_start(&p, g->a.sw, c, 1, 0, kw_swarm_test_on_ping, &g->ping), 0);
	for (i = 0; i < 20; i++) {
		pump(1);
		kw_loop_run_once(&c3.t->node->loop, 0);
	}
	kw_sim_advance(g->net->net, KW_PING_TIMEOUT_MS - 1);
	pump(2);
	assert_int_equal(g->ping.done, 0);
	kw_sim_advance(g->net->net, 2);
	for (i = 0; i < 10; i++) {
		pump(1);
		kw_loop_run_once(&c3.t->node->loop, 0);
	}
	assert_int_equal(g->ping.done, 1);
	assert_int_equal(g->ping.err, -KW_ETIMEDOUT);
	assert_int_equal(g->ping.pings, 0);
	free_third(&c3);
}

static void test_swarm_drain_closes_connections_gracefully(void **state)
{
	connect_ab();
	pump(50);
	kw_node_request_stop(g->b.t->node);
	pump(50);
	assert_null(kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(g->a.sw)));
	assert_null(kw_swarm_find_conn(g->a.sw, kw_swarm_peer_id(g->b.sw)));
}

/* ---- per-connection extension slots ------------------------------------------------------ */

struct ext_seen {
	int releases;
	struct kw_conn *conn;
	uint8_t first;   /* the block's first byte as the owner saw it at release */
};

static void ext_release_cb(struct kw_conn *c, void *data, void *arg)
{
	struct ext_seen *e = (struct ext_seen *)arg;

	e->releases++;
	e->conn = c;
	e->first = *(const uint8_t *)data;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_swarm_ext_register_stops_at_the_slot_limit(void **state)
{
	int i, ret, got = 0;

	/* identify took one slot already */
	assert_int_equal(kw_swarm_ext_register(g->a.sw, "t", 0, NULL, NULL), -KW_EINVAL);
	assert_int_equal(kw_swarm_ext_register(g->a.sw, NULL, 8, NULL, NULL), -KW_EINVAL);
	for (i = 0; i < CONFIG_KW_NET_CONN_EXT_SLOTS + 2; i++) {
		ret = kw_swarm_ext_register(g->a.sw, "test_ext", 8, NULL, NULL);
		if (ret < 0)
			break;
		assert_int_equal(ret, i + 1);
		got++;
	}
	assert_int_equal(got, CONFIG_KW_NET_CONN_EXT_SLOTS - 1);
	assert_int_equal(ret, -KW_ENOSPC);
}

static void test_swarm_ext_register_after_a_connection_is_refused(void **state)
{
	if (CONFIG_KW_NET_CONN_EXT_SLOTS < 2)
		skip();  /* identify holds the only slot: registration fails for lack of slots first */
	connect_ab();
	assert_int_equal(kw_swarm_ext_register(g->a.sw, "late", 8, NULL, NULL), -KW_EBUSY);
}

static void test_swarm_ext_slots_are_independent_and_cleared_on_close(void **state)
{
	/* static: the teardown's swarm destroy releases the second connection's blocks too */
	static struct ext_seen e1, e2;
	int s1, s2;
	struct kw_conn *c;
	uint8_t *d1, *d2;

	if (CONFIG_KW_NET_CONN_EXT_SLOTS < 3)
		skip();  /* identify's slot and two more are needed */
	s1 = kw_swarm_ext_register(g->a.sw, "ext_one", 16, ext_release_cb, &e1);
	s2 = kw_swarm_ext_register(g->a.sw, "ext_two", 40, ext_release_cb, &e2);

	assert_true(s1 >= 0);
	assert_true(s2 >= 0);
	assert_int_not_equal(s1, s2);
	c = connect_ab();
	assert_null(kw_conn_ext(c, -1));
	assert_null(kw_conn_ext(c, CONFIG_KW_NET_CONN_EXT_SLOTS));
	d1 = (uint8_t *)kw_conn_ext(c, s1);
	d2 = (uint8_t *)kw_conn_ext(c, s2);
	assert_non_null(d1);
	assert_non_null(d2);
	assert_true(all_zero(d1, 16));
	assert_true(all_zero(d2, 40));
	memset(d1, 0x11, 16);
	assert_true(all_zero(d2, 40));  /* one module's writes never reach another's slot */
	memset(d2, 0x22, 40);
	assert_int_equal(d1[15], 0x11);
	kw_conn_close(c, 0);
	pump(50);
	assert_null(kw_swarm_find_conn(g->a.sw, kw_swarm_peer_id(g->b.sw)));
	/* each owner was told once, with its own block, before it was cleared */
	assert_int_equal(e1.releases, 1);
	assert_int_equal(e2.releases, 1);
	assert_ptr_equal(e1.conn, c);
	assert_ptr_equal(e2.conn, c);
	assert_int_equal(e1.first, 0x11);
	assert_int_equal(e2.first, 0x22);
	/* the next connection starts with zeroed blocks */
	g->dial_done = 0;
	c = connect_ab();
	assert_true(all_zero((const uint8_t *)kw_conn_ext(c, s1), 16));
	assert_true(all_zero((const uint8_t *)kw_conn_ext(c, s2), 40));
}

/* ---- inbound admission (rcmgr) ------------------------------------------------------------ */


/* Whether b closed the raw connection (FIN or RST), without consuming a byte. */
static bool raw_closed(struct kw_sim *sim, int fd)
{
	uint8_t one;
	long n = sim->sys.ops->read(&sim->sys, fd, &one, 0);

	return n != -KW_EAGAIN;
}

static void test_swarm_idle_sockets_from_one_address_leave_room_for_others(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd[6], i;

	for (i = 0; i < 6; i++)
		fd[i] = raw_connect(sim, 0x0a000004);  /* 10.0.0.4 */
	pump(5);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 2);            /* g_lim.conns_per_ip */
	assert_int_equal(st.refused_per_ip, 4);
	assert_int_equal(st.conns_refused_limit, 4);
	/* a peer from another address still gets in at once */
	connect_ab();
	for (i = 0; i < 6; i++)
		sim->sys.ops->close(&sim->sys, fd[i]);
}

static void test_swarm_full_inbound_drops_the_oldest_handshake(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd[2], i;

	/* g_lim: 4 inbound of which 2 reserved, so 2 strangers fill what strangers may take */
	for (i = 0; i < 2; i++) {
		fd[i] = raw_connect(sim, 0x0a000001 + ((uint32_t)i << 8));  /* 10.0.i.1 */
		pump(2);
	}
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 2);
	connect_ab();                                /* the newcomer gets in ... */
	assert_true(raw_closed(sim, fd[0]));         /* ... in place of the oldest */
	assert_false(raw_closed(sim, fd[1]));
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_evicted, 1);
	assert_int_equal(st.conns_refused_limit, 0);
	for (i = 0; i < 2; i++)
		sim->sys.ops->close(&sim->sys, fd[i]);
}

static int g_summaries, g_refusal_lines;
static char g_last_summary[640];

static void count_log(int level, const char *module, const char *msg, void *arg)
{
	if (strcmp(module, "swarm") != 0)
		return;
	if (strstr(msg, "turned away")) {
		g_summaries++;
		snprintf(g_last_summary, sizeof(g_last_summary), "%s", msg);
	} else if (strstr(msg, "refused")) {
		g_refusal_lines++;
	}
}

static void test_swarm_refusals_are_logged_as_one_summary_per_interval(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd[10], held[2], i, round, old_level;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_WRN)
		skip();  /* the summary is a warning, compiled out at this log level */
	g_summaries = g_refusal_lines = 0;
	old_level = kw_log_set_level(KW_LOG_LEVEL_WRN);
	kw_log_set_hook(count_log, NULL);
	held[0] = raw_connect(sim, 0x0a000004);
	held[1] = raw_connect(sim, 0x0a000004);
	pump(5);
	for (round = 0; round < 5; round++) {
		for (i = 0; i < 10; i++)
			fd[i] = raw_connect(sim, 0x0a000004);
		pump(5);
		for (i = 0; i < 10; i++)
			sim->sys.ops->close(&sim->sys, fd[i]);
		pump(1);
	}
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.refused_per_ip, 50);
	assert_int_equal(g_summaries, 1);       /* the first one, at once */
	assert_int_equal(g_refusal_lines, 0);   /* and no line per refusal */
	advance(g_lim.refusal_log_ms - 10);  /* the held ones time out after 3 s: no new lines */
	assert_int_equal(g_summaries, 1);
	advance(20);
	assert_int_equal(g_summaries, 2);       /* the other 49, summarised */
	assert_non_null(strstr(g_last_summary, "turned away: 49 "));
	assert_non_null(strstr(g_last_summary, "most from 10.0.0.4 (49)"));
	advance(g_lim.refusal_log_ms * 3);
	assert_int_equal(g_summaries, 2);       /* nothing pending: nothing logged */
	kw_log_set_hook(NULL, NULL);
	kw_log_set_level(old_level);
	sim->sys.ops->close(&sim->sys, held[0]);
	sim->sys.ops->close(&sim->sys, held[1]);
}

static void test_swarm_identify_protects_a_peer_speaking_a_wanted_protocol(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	struct kw_conn *back;
	struct kw_ping p = { 0 };
	int fd[2];

	assert_int_equal(kw_swarm_protect_protocol(g->b.sw, ECHO), 0);
	assert_true(kw_swarm_protocol_protected(g->b.sw, ECHO));
	connect_ab();
	pump(50);  /* identify */
	back = back_of_ab();
	assert_true(kw_conn_protected(back));
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_protected, 1);
	/* g_lim: 4 inbound, 2 reserved. a sits in the reserve, so two strangers fit; a third
	 * drops the oldest stranger's handshake, never the protected peer */
	fd[0] = raw_connect(sim, 0x0a000005);
	pump(2);
	fd[1] = raw_connect(sim, 0x0a000105);
	pump(2);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_in, 3);
	{
		int fd3 = raw_connect(sim, 0x0a000205);

		pump(2);
		assert_true(raw_closed(sim, fd[0]));
		assert_false(raw_closed(sim, fd[1]));
		assert_false(raw_closed(sim, fd3));
		sim->sys.ops->close(&sim->sys, fd3);
	}
	assert_int_equal(kw_ping_start(&p, g->a.sw, g->dialed, 2, 0, kw_swarm_test_on_ping, &g->ping), 0);
	pump(30);
	assert_int_equal(g->ping.pings, 2);
	sim->sys.ops->close(&sim->sys, fd[0]);
	sim->sys.ops->close(&sim->sys, fd[1]);
}

static int setup_rcmgr(void **state)
{
	g_lim = kw_test_swarm_limits();
	g_lim.max_conns_in = 4;
	g_lim.conns_per_ip = 2;
	g_lim.handshakes_per_ip = 2;
	g_lim.conns_in_reserved = 2;
	g_lim.handshake_timeout_ms = 3000;
	g_lim.refusal_log_ms = 10000;
	return setup_with(&g_lim);
}

/* With only the strangers' share full, an idle protected peer keeps its slot: the newcomer
 * takes the oldest stranger's handshake, as before, not the protected connection. */
static void test_swarm_idle_protected_peer_is_not_closed_for_a_stranger(void **state)
{
	struct kw_sim *sim = g->a.t->sim;
	struct kw_swarm_stats st;
	int fd[3];

	assert_int_equal(kw_swarm_protect_protocol(g->b.sw, ECHO), 0);
	connect_ab();
	pump(50);            /* identify: a is protected */
	advance(6000);       /* and idle past the trim threshold */
	fd[0] = raw_connect(sim, 0x0a000005);
	pump(2);
	fd[1] = raw_connect(sim, 0x0a000105);
	pump(2);
	fd[2] = raw_connect(sim, 0x0a000205);
	pump(2);
	kw_swarm_get_stats(g->b.sw, &st);
	assert_int_equal(st.conns_trimmed, 0);
	assert_int_equal(st.conns_evicted, 1);
	assert_true(raw_closed(sim, fd[0]));
	assert_false(raw_closed(sim, fd[2]));
	assert_non_null(kw_swarm_find_conn(g->b.sw, kw_swarm_peer_id(g->a.sw)));
	for (int i = 0; i < 3; i++)
		sim->sys.ops->close(&sim->sys, fd[i]);
}

/* setup_rcmgr, with connections that outlive the 6 s the trim tests wait */
static int setup_rcmgr_long_idle(void **state)
{
	g_lim = kw_test_swarm_limits();
	g_lim.max_conns_in = 4;
	g_lim.conns_per_ip = 2;
	g_lim.handshakes_per_ip = 2;
	g_lim.conns_in_reserved = 2;
	g_lim.handshake_timeout_ms = 3000;
	g_lim.refusal_log_ms = 10000;
	g_lim.idle_timeout_ms = 60000;
	return setup_with(&g_lim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_swarm_dial_upgrades_and_matches_peer_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_identify_exchanges_protocols_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_push_sends_new_protocols_to_connected_peer_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_push_skips_peer_without_push_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_observer_told_after_answer_and_after_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_ping_counts_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_counts_tcp_bytes_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_echo_stream_round_trip_and_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_reset_reaches_the_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_unknown_protocol_fails_enoproto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_protocol_id_without_leading_slash_is_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_dial_wrong_peer_id_fails_epeerid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_inbound_limit_refuses_second_connection, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_full_inbound_closes_an_idle_connection_for_a_newcomer,
						setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_full_dial_slots_close_the_idle_outbound_connection,
						setup_one_out, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_full_dial_slots_never_close_a_connection_with_a_stream,
						setup_one_out, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_stream_limit_resets_extra_streams, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_handshake_timeout_drops_silent_peer, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_idle_timeout_closes_connection, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_dial_times_out_when_listener_never_accepts, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_dial_times_out_on_blackholed_address, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_protocol_error_closes_with_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_graceful_close_uses_fin_not_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_malformed_bytes_close_only_that_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_drain_closes_connections_gracefully, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_times_out_when_the_listener_never_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_ext_register_stops_at_the_slot_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_ext_register_after_a_connection_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_ext_slots_are_independent_and_cleared_on_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_idle_sockets_from_one_address_leave_room_for_others, setup_rcmgr, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_full_inbound_drops_the_oldest_handshake, setup_rcmgr, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_refusals_are_logged_as_one_summary_per_interval, setup_rcmgr, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_identify_protects_a_peer_speaking_a_wanted_protocol, setup_rcmgr, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_idle_protected_peer_is_not_closed_for_a_stranger,
						setup_rcmgr_long_idle, teardown),
	};

	kw_log_set_level(getenv("KW_TEST_LOG") ? atoi(getenv("KW_TEST_LOG")) : 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
