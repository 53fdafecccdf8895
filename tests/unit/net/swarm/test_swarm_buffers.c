/*
 * The swarm's socket buffers under hostile load, on the simulated network: partial frames
 * (before and after the handshake) are closed at the frame deadline, a connection that finds
 * no buffer waits in the queue and is woken when buffers return (several at once too), the
 * loop does not spin while all buffers are lent, upgraded connections keep the share kept
 * for them while handshakes exhaust theirs, and a peer's FIN is logged as a normal close.
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
#include <kw/net/key.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#include "../../../../net/swarm/swarm_priv.h"

#define BUFS  ((uint32_t)CONFIG_KW_NET_SWARM_BUFFERS)
#define FRAME ((uint64_t)CONFIG_KW_NET_FRAME_TIMEOUT_MS)
#define PORT  4001
/* the multistream header, /noise, then a Noise length prefix of 65535 and one body byte */
static const char g_pin[] = "\x13/multistream/1.0.0\n\x07/noise\n\xff\xff" "x";
#define PIN_LEN (sizeof(g_pin) - 1)
#define MAX_ATT 48

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_privkey key;
	char addr[256];
};

struct fx {
	struct kw_test_net *net;
	struct side a, b;     /* a dials, b is the node under attack */
	int att[MAX_ATT];
	int n_att;
	int dial_done, dial_err;
	struct kw_conn *dialed[4];
	struct kw_swarm_test_pings ping;
	char log[16][256];
	int n_log;
};

static struct fx *g;

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	if (g->dial_done < 4)
		g->dialed[g->dial_done] = c;
	g->dial_done++;
	g->dial_err = err;
}

static void log_hook(int level, const char *module, const char *msg, void *arg)
{
	if (strcmp(module, "swarm") || g->n_log >= (int)KW_ARRAY_SIZE(g->log))
		return;
	snprintf(g->log[g->n_log++], sizeof(g->log[0]), "%s", msg);
}

static bool logged(const char *part)
{
	int i;

	for (i = 0; i < g->n_log; i++)
		if (strstr(g->log[i], part))
			return true;
	return false;
}

static void pump(int passes)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };

	kw_swarm_test_pump(t, 2, passes);
}

static void advance(uint64_t ms)
{
	kw_sim_advance(g->net->net, ms);
	pump(8);
}

static struct kw_sys *sys(void) { return &g->a.t->sim->sys; }

static struct kw_swarm_stats bstats(void)
{
	struct kw_swarm_stats st;

	kw_swarm_get_stats(g->b.sw, &st);
	return st;
}

static int make_side(struct side *s, const char *listen, const struct kw_swarm_limits *lim)
{
	int ret = kw_swarm_test_node(g->net, 48 * 1024, lim, &s->t, &s->key, &s->sw);

	if (ret == 0)
		ret = kw_ping_register(s->sw);
	if (ret == 0)
		ret = kw_swarm_test_listen(s->sw, listen, s->addr, sizeof(s->addr));
	return ret;
}

static int setup(void **state)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();

	/* room for an attacker per buffer; timeouts far beyond the frame deadline, so only
	 * the frame deadline can close what these tests hold open */
	lim.max_conns_in = MAX_ATT + 4;
	/* every attacker dials from 127.0.0.1: the per-address limits must not stop them first */
	lim.conns_per_ip = lim.conns_per_subnet = lim.max_conns_in;
	lim.max_handshakes_in = lim.handshakes_per_ip = lim.handshakes_per_subnet = lim.max_conns_in;
	lim.handshake_timeout_ms = (uint32_t)(20 * FRAME + 10000);
	lim.idle_timeout_ms = (uint32_t)(20 * FRAME + 10000);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->net = kw_test_net_new(2 * MAX_ATT + 32, 1 << 17);
	if (!g->net)
		return -1;
	if (make_side(&g->b, "/ip4/127.0.0.1/tcp/4001", &lim) < 0 ||
	    make_side(&g->a, NULL, &lim) < 0)
		return -1;
	kw_log_set_hook(log_hook, NULL);
	return 0;
}

static int teardown(void **state)
{
	struct kw_test_node *t[2] = { g->a.t, g->b.t };
	struct kw_swarm *sw[2] = { g->a.sw, g->b.sw };
	int i;

	kw_log_set_hook(NULL, NULL);
	for (i = 0; i < g->n_att; i++)
		if (g->att[i] >= 0)
			sys()->ops->close(sys(), g->att[i]);
	kw_swarm_test_free(g->net, t, sw, 2, 2);
	free(g);
	g = NULL;
	return 0;
}

/* A raw TCP connection to b that sends `bytes`; its index in g->att. */
static int attack(const void *bytes, size_t n)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(PORT),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	int fd = sys()->ops->tcp_socket(sys(), AF_INET);

	assert_true(fd >= 0);
	assert_true(g->n_att < MAX_ATT);
	sys()->ops->connect(sys(), fd, (struct sockaddr *)&in, sizeof(in));
	pump(2);
	if (n)
		assert_int_equal(sys()->ops->write(sys(), fd, bytes, n), (long)n);
	pump(4);
	g->att[g->n_att] = fd;
	return g->n_att++;
}

/* Closes attacker i with a FIN (its pinned buffer comes back when b reads the EOF). */
static void attacker_close(int i)
{
	sys()->ops->close(sys(), g->att[i]);
	g->att[i] = -1;
}

/* What b's socket sent attacker i ends with: 0 EOF, -KW_ECONNRESET, -KW_EAGAIN (open). */
static long attacker_end(int i)
{
	uint8_t rd[512];
	long n;

	while ((n = sys()->ops->read(sys(), g->att[i], rd, sizeof(rd))) > 0)
		;
	return n;
}

static struct kw_conn *dial_ab(void)
{
	int before = g->dial_done;

	assert_int_equal(kw_swarm_dial(g->a.sw, g->b.addr, on_dial, NULL), 0);
	pump(60);
	assert_int_equal(g->dial_done, before + 1);
	assert_int_equal(g->dial_err, 0);
	return g->dialed[before];
}

/* Handshake share of b's buffers: attackers beyond it must queue. */
static uint32_t hs_share(void) { return kw_swarm_bufs_handshake_share(BUFS); }

/* n attackers pin a frame each (skips when the socket table cannot hold them); some wait. */
static void pin_buffers(uint32_t n)
{
	if (n > MAX_ATT)
		skip();  /* more buffers than the simulated socket table has attackers for */
	for (uint32_t i = 0; i < n; i++)
		attack(g_pin, PIN_LEN);
	/* whatever is not pinned waits with unread bytes in its socket */
	assert_true(bstats().buf_waits >= 1);
}

/* How many passes b's loop makes in half a frame deadline of virtual time. */
static uint64_t passes_in_half_a_frame(void)
{
	struct kw_loop *l = &g->b.t->node->loop;
	uint64_t it0 = l->stats.iterations, t0 = kw_loop_now(l);
	int guard = 0;

	g->net->net->auto_advance = true;
	while (kw_loop_now(l) < t0 + FRAME / 2 && guard++ < 100000)
		kw_loop_run_once(l, (int)(FRAME / 2));
	g->net->net->auto_advance = false;
	return l->stats.iterations - it0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_unauthenticated_partial_frame_is_closed_at_the_frame_deadline(void **state)
{
	int i = attack(g_pin, PIN_LEN);

	assert_int_equal(bstats().conns_in, 1);
	assert_int_equal(bstats().bufs_lent, 1);          /* the partial body, nothing else */
	advance(FRAME - 1);
	assert_int_equal(bstats().conns_in, 1);
	assert_int_equal(attacker_end(i), -KW_EAGAIN);
	advance(2);
	assert_int_equal(bstats().conns_in, 0);
	assert_int_equal(bstats().frame_timeouts, 1);
	assert_int_equal(bstats().bufs_lent, 0);
	assert_int_equal(attacker_end(i), -KW_ECONNRESET);
}

static void test_header_alone_borrows_no_buffer(void **state)
{
	/* header of a 65535-byte frame, no body: nothing for a big buffer to hold */
	attack("\x13/multistream/1.0.0\n\x07/noise\n\xff\xff", PIN_LEN - 1);
	assert_int_equal(bstats().conns_in, 1);
	assert_int_equal(bstats().bufs_lent, 0);
}

static void test_authenticated_partial_frame_is_closed_at_the_frame_deadline(void **state)
{
	struct kw_conn *c = dial_ab();
	struct kw_sys *s = &g->a.t->sim->sys;

	pump(40);
	assert_int_equal(bstats().conns_up, 1);
	/* under a's encryption: a transport frame header of 65535 and one byte of body */
	assert_int_equal(s->ops->write(s, c->fd, "\xff\xff" "x", 3), 3);
	pump(8);
	advance(FRAME / 2);
	s->ops->write(s, c->fd, "y", 1);  /* trickling bytes does not restart the deadline */
	pump(8);
	advance(FRAME - FRAME / 2 - 1);
	assert_int_equal(bstats().conns_up, 1);
	advance(2);
	pump(20);
	assert_int_equal(bstats().conns_up, 0);
	assert_int_equal(bstats().frame_timeouts, 1);
	assert_int_equal(bstats().bufs_lent, 0);
}

static void test_bulk_frames_spanning_reads_are_not_cut_by_the_frame_deadline(void **state)
{
	struct kw_conn *c = dial_ab();
	struct kw_ping p = { 0 };
	int i;

	/* pings every quarter deadline for four deadlines: frames complete, the deadline
	 * restarts with each */
	for (i = 0; i < 16; i++) {
		memset(&p, 0, sizeof(p));
		g->ping.done = 0;
		assert_int_equal(kw_ping_start(&p, g->a.sw, c, 1, 0, kw_swarm_test_on_ping, &g->ping), 0);
		pump(30);
		assert_int_equal(g->ping.done, 1);
		advance(FRAME / 4);
	}
	assert_int_equal(g->ping.pings, 16);
	assert_int_equal(bstats().frame_timeouts, 0);
}

static void test_waiting_connection_is_woken_when_buffers_return(void **state)
{
	uint32_t share = hs_share(), i;

	if (share + 2 > MAX_ATT)
		skip();  /* the simulated socket table holds fewer attackers than the share */
	for (i = 0; i < share; i++)
		attack(g_pin, PIN_LEN);
	/* each pins one; the last needs two at once (receive + send) with one left: it waits */
	assert_int_equal(bstats().bufs_lent_handshake, share - 1);
	/* two honest dials find the handshakes' share pinned: they wait, not fail */
	assert_int_equal(kw_swarm_dial(g->a.sw, g->b.addr, on_dial, NULL), 0);
	assert_int_equal(kw_swarm_dial(g->a.sw, g->b.addr, on_dial, NULL), 0);
	pump(60);
	advance(FRAME / 4);
	assert_int_equal(g->dial_done, 0);
	assert_true(bstats().buf_waits >= 2);
	assert_int_equal(bstats().conns_failed, 0);
	/* four buffers come back in one pass: both waiters are served, no wake-up is lost */
	for (i = 0; i < 4 && i < share; i++)
		attacker_close((int)i);
	pump(80);
	assert_int_equal(g->dial_done, 2);
	assert_int_equal(g->dial_err, 0);
	assert_int_equal(bstats().conns_up, 2);
}

static void test_loop_does_not_spin_while_all_buffers_are_lent(void **state)
{
	pin_buffers(BUFS + 2);
	/* a sleeping loop wakes for its timers only; a spinning one hits the guard */
	assert_true(passes_in_half_a_frame() < 50);
}

/* A connection waiting for a buffer whose peer resets: epoll would report the error every pass
 * while nobody reads; the parked watch keeps the loop asleep until the buffer comes. */
static void test_loop_does_not_spin_when_a_waiting_connection_is_reset(void **state)
{
	uint32_t i, n = BUFS + 2, share = hs_share();

	pin_buffers(n);
	/* the first share - 1 pin a buffer each (see above); the later ones wait */
	for (i = share; i < n; i++) {
		sys()->ops->close_abort(sys(), g->att[i]);
		g->att[i] = -1;
	}
	assert_true(passes_in_half_a_frame() < 50);
}

static void test_upgraded_connections_keep_working_while_handshakes_exhaust_theirs(void **state)
{
	struct kw_conn *c = dial_ab();
	struct kw_ping p = { 0 };
	uint32_t i, n = BUFS + 2;

	if (n > MAX_ATT)
		skip();  /* more buffers than the simulated socket table has attackers for */
	if (hs_share() == BUFS)
		skip();  /* KW_NET_SWARM_BUFFERS_UP_PERCENT keeps none for upgraded connections */
	pump(40);
	advance(KW_SWARM_BUF_LINGER_MS + 1);  /* the idle connection holds no buffer now */
	assert_int_equal(bstats().bufs_lent, 0);
	for (i = 0; i < n; i++)
		attack(g_pin, PIN_LEN);
	assert_int_equal(bstats().bufs_lent_handshake, hs_share() - 1);  /* see above */
	assert_int_equal(kw_ping_start(&p, g->a.sw, c, 5, 0, kw_swarm_test_on_ping, &g->ping), 0);
	pump(100);
	assert_int_equal(g->ping.pings, 5);
	assert_int_equal(g->ping.done, 1);
	assert_int_equal(g->ping.err, 0);
}

static void test_fin_is_logged_as_a_normal_close_and_rst_as_a_reset(void **state)
{
	struct kw_conn *c;
	struct kw_sys *s = &g->a.t->sim->sys;
	int fd;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_INF)
		skip();  /* the close lines are info level, compiled out here */
	kw_log_set_level(KW_LOG_LEVEL_INF);
	c = dial_ab();
	pump(40);
	/* a's socket closes under it with a FIN, as a peer process that exits would */
	fd = c->fd;
	kw_loop_unwatch(&g->a.t->node->loop, &c->w);
	c->fd = -1;
	s->ops->close(s, fd);
	pump(20);
	assert_int_equal(bstats().conns_up, 0);
	assert_true(logged("peer closed the connection"));
	assert_false(logged("reset"));
	assert_int_equal(bstats().conns_aborted, 0);
	/* a handshake that ends with RST says reset */
	g->n_log = 0;
	{
		int i = attack("\x13/multistream/1.0.0\n", 20);

		s->ops->close_abort(s, g->att[i]);
		g->att[i] = -1;
	}
	pump(20);
	assert_true(logged("reset"));
	kw_log_set_level(1);
}

/* Many failing peers at once: a few lines one by one, then one summary with the rest. */
static void test_failure_lines_are_rate_limited_with_a_summary(void **state)
{
	uint32_t n = hs_share() < 20 ? hs_share() : 20, i, lines = 0;
	char want[96];
	int k;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_WRN || n <= 5)
		skip();  /* warnings compiled out, or too few handshake buffers to fail 6 at once */
	kw_log_set_level(KW_LOG_LEVEL_WRN);  /* this binary runs quiet; these lines are the point */
	for (i = 0; i < n; i++)
		attack(g_pin, PIN_LEN);
	g->n_log = 0;  /* count only what the deadline brings */
	advance(FRAME + 100);
	assert_int_equal(bstats().frame_timeouts, n);
	for (k = 0; k < g->n_log; k++)
		if (strstr(g->log[k], "closing the connection"))
			lines++;
	assert_int_equal(lines, 5);
	/* the next failure after the interval tells how many were held back */
	advance(CONFIG_KW_NET_REFUSAL_LOG_INTERVAL_MS);
	attack(g_pin, PIN_LEN);
	advance(FRAME + 100);
	snprintf(want, sizeof(want), "%u more connections closed for errors", n - 5);
	kw_log_set_level(1);
	assert_true(logged(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unauthenticated_partial_frame_is_closed_at_the_frame_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_alone_borrows_no_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_authenticated_partial_frame_is_closed_at_the_frame_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_frames_spanning_reads_are_not_cut_by_the_frame_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_connection_is_woken_when_buffers_return, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_does_not_spin_while_all_buffers_are_lent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_does_not_spin_when_a_waiting_connection_is_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgraded_connections_keep_working_while_handshakes_exhaust_theirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fin_is_logged_as_a_normal_close_and_rst_as_a_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_lines_are_rate_limited_with_a_summary, setup, teardown),
	};

	kw_log_set_level(getenv("KW_TEST_LOG") ? atoi(getenv("KW_TEST_LOG")) : 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
