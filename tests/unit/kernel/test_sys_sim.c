/* kernel/sys_sim.c: the virtual network behaves like non-blocking TCP, deterministically. */
#include <arpa/inet.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/sim.h>

static struct kw_test_node *g_t;
static int setup(void **state) { g_t = kw_test_node_new(1024); return g_t ? 0 : -1; }
static int teardown(void **state)
{
	assert_int_equal(kw_sim_open_sockets(g_t->net), 0);  /* every test closes what it opened */
	kw_test_node_free(g_t);
	return 0;
}
#define SYS (&g_t->sim->sys)
#define OPS (g_t->sim->sys.ops)

static struct sockaddr_in addr(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	return sa;
}

static void test_sim_connect_accept_and_exchange(void **state)
{
	struct sockaddr_in sa = addr(4001);
	struct sockaddr_storage peer;
	socklen_t len;
	int l = OPS->tcp_socket(SYS, AF_INET), c, a;
	char buf[16];

	assert_int_equal(OPS->bind_listen(SYS, l, (struct sockaddr *)&sa, sizeof(sa), 4), 0);
	c = OPS->tcp_socket(SYS, AF_INET);
	assert_int_equal(OPS->connect(SYS, c, (struct sockaddr *)&sa, sizeof(sa)), -KW_EINPROGRESS);
	a = OPS->accept(SYS, l, &peer, &len);
	assert_true(a >= 0);
	assert_int_equal(OPS->accept(SYS, l, &peer, &len), -KW_EAGAIN);
	assert_int_equal(OPS->sock_error(SYS, c), 0);
	assert_int_equal(OPS->write(SYS, c, "hello", 5), 5);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), -KW_EAGAIN);
	assert_int_equal(OPS->shutdown_write(SYS, c), 0);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), 0);  /* EOF */
	assert_int_equal(OPS->write(SYS, c, "x", 1), -KW_EPIPE);
	OPS->close(SYS, a);
	OPS->close(SYS, c);
	OPS->close(SYS, l);
}

static void test_sim_connect_without_listener_is_refused(void **state)
{
	struct sockaddr_in sa = addr(9);
	int c = OPS->tcp_socket(SYS, AF_INET);
	struct kw_sys_event ev[4];

	assert_int_equal(OPS->connect(SYS, c, (struct sockaddr *)&sa, sizeof(sa)), -KW_EINPROGRESS);
	OPS->watch_add(SYS, c, KW_EV_WRITE, &c);
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 1);
	assert_true(ev[0].events & KW_EV_ERR);
	assert_int_equal(OPS->sock_error(SYS, c), -KW_ECONNREFUSED);
	OPS->close(SYS, c);
}

static void test_sim_full_peer_buffer_blocks_writes(void **state)
{
	int fds[2];
	uint8_t chunk[1024] = { 0 };
	struct kw_sys_event ev[4];
	long n, total = 0;

	assert_int_equal(kw_sim_socketpair(g_t->sim, fds), 0);
	OPS->watch_add(SYS, fds[0], KW_EV_WRITE, &fds[0]);
	while ((n = OPS->write(SYS, fds[0], chunk, sizeof(chunk))) > 0)
		total += n;
	assert_int_equal(n, -KW_EAGAIN);
	assert_int_equal(total, 4096);  /* the harness's ring size */
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 0);  /* not writable while full */
	assert_int_equal(OPS->read(SYS, fds[1], chunk, 100), 100);
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 1);
	assert_true(ev[0].events & KW_EV_WRITE);
	OPS->close(SYS, fds[0]);
	assert_int_equal(OPS->read(SYS, fds[1], chunk, sizeof(chunk)), 1024);
	OPS->close(SYS, fds[1]);
}

static int g_fired;
static void fire(struct kw_loop *l, struct kw_timer *t) { g_fired++; }

static void test_sim_auto_advance_moves_virtual_time_to_next_timer(void **state)
{
	struct kw_timer t;
	uint64_t t0 = kw_loop_update_time(&g_t->node->loop);

	g_t->net->auto_advance = true;
	g_fired = 0;
	kw_timer_init(&t, fire, NULL);
	kw_timer_start(&g_t->node->loop, &t, 60000);  /* a minute, in no real time */
	kw_loop_run_once(&g_t->node->loop, -1);
	assert_int_equal(g_fired, 1);
	assert_int_equal(kw_loop_now(&g_t->node->loop) - t0, 60000);
}

static void test_sim_address_in_use_and_close_refuses_backlog(void **state)
{
	struct sockaddr_in sa = addr(5000);
	struct sockaddr_storage ss;
	socklen_t len;
	int l = OPS->tcp_socket(SYS, AF_INET), l2 = OPS->tcp_socket(SYS, AF_INET), c;
	char b[4];

	assert_int_equal(OPS->bind_listen(SYS, l, (struct sockaddr *)&sa, sizeof(sa), 4), 0);
	assert_int_equal(OPS->bind_listen(SYS, l2, (struct sockaddr *)&sa, sizeof(sa), 4), -KW_EADDRINUSE);
	assert_int_equal(OPS->local_addr(SYS, l, &ss, &len), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 5000);
	c = OPS->tcp_socket(SYS, AF_INET);
	OPS->connect(SYS, c, (struct sockaddr *)&sa, sizeof(sa));
	OPS->close(SYS, l);  /* never accepted: the dialer sees a reset */
	assert_int_equal(OPS->read(SYS, c, b, sizeof(b)), -KW_ECONNRESET);
	OPS->close(SYS, c);
	OPS->close(SYS, l2);
}

static uint32_t lat50(void *ctx, uint32_t a, uint32_t b) { return 50; }

static void test_sim_latency_delays_bytes_and_fin_behind_them(void **state)
{
	struct sockaddr_in sa = addr(4100);
	struct sockaddr_storage peer;
	socklen_t len;
	int l = OPS->tcp_socket(SYS, AF_INET), c, a;
	char buf[8];

	g_t->net->latency_ms = lat50;
	assert_int_equal(OPS->bind_listen(SYS, l, (struct sockaddr *)&sa, sizeof(sa), 4), 0);
	c = OPS->tcp_socket(SYS, AF_INET);
	OPS->connect(SYS, c, (struct sockaddr *)&sa, sizeof(sa));
	a = OPS->accept(SYS, l, &peer, &len);
	assert_true(a >= 0);
	assert_int_equal(OPS->write(SYS, c, "hi", 2), 2);
	assert_int_equal(OPS->shutdown_write(SYS, c), 0);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), -KW_EAGAIN);  /* not there yet */
	assert_int_equal(kw_sim_net_next_delivery(g_t->net), g_t->net->now_ms + 50);
	kw_sim_advance(g_t->net, 49);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), -KW_EAGAIN);
	kw_sim_advance(g_t->net, 1);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(OPS->read(SYS, a, buf, sizeof(buf)), 0);  /* the FIN came behind them */
	assert_int_equal(kw_sim_net_next_delivery(g_t->net), UINT64_MAX);
	OPS->close(SYS, a);
	OPS->close(SYS, c);
	OPS->close(SYS, l);
}

static void test_sim_wait_reports_only_ready_sockets_and_queues_their_view(void **state)
{
	int p1[2], p2[2];
	struct kw_sys_event ev[4];
	char b[4];

	g_t->net->track_active = true;
	assert_int_equal(kw_sim_socketpair(g_t->sim, p1), 0);
	assert_int_equal(kw_sim_socketpair(g_t->sim, p2), 0);
	OPS->watch_add(SYS, p1[1], KW_EV_READ, &p1[1]);
	OPS->watch_add(SYS, p2[1], KW_EV_READ, &p2[1]);
	assert_ptr_equal(kw_sim_net_next_active(g_t->net), g_t->sim);  /* once, not per socket */
	assert_null(kw_sim_net_next_active(g_t->net));
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 0);  /* nothing readable: candidates dropped */
	assert_null(kw_sim_net_next_active(g_t->net));
	assert_int_equal(OPS->write(SYS, p2[0], "x", 1), 1);
	assert_ptr_equal(kw_sim_net_next_active(g_t->net), g_t->sim);
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 1);
	assert_ptr_equal(ev[0].ptr, &p2[1]);
	/* level-triggered: still readable, so the view stays queued until the byte is read */
	assert_ptr_equal(kw_sim_net_next_active(g_t->net), g_t->sim);
	assert_int_equal(OPS->read(SYS, p2[1], b, sizeof(b)), 1);
	/* the read freed room for the writer: its view (the same one) may have work */
	assert_ptr_equal(kw_sim_net_next_active(g_t->net), g_t->sim);
	assert_int_equal(OPS->wait(SYS, ev, 4, 0), 0);  /* it has none: nothing stays queued */
	assert_null(kw_sim_net_next_active(g_t->net));
	g_t->net->track_active = false;
	OPS->close(SYS, p1[0]);
	OPS->close(SYS, p1[1]);
	OPS->close(SYS, p2[0]);
	OPS->close(SYS, p2[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sim_connect_accept_and_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_connect_without_listener_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_full_peer_buffer_blocks_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_auto_advance_moves_virtual_time_to_next_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_address_in_use_and_close_refuses_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_latency_delays_bytes_and_fin_behind_them, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sim_wait_reports_only_ready_sockets_and_queues_their_view, setup, teardown),
	};
	return cmocka_run_group_tests_name("kernel/sys_sim", tests, NULL, NULL);
}
