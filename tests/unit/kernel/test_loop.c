/* kernel/loop.c on the Linux backend: fd readiness with real pipes and sockets. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/sys.h>

static struct kw_sys_linux g_sys;
static struct kw_node *g_node;
#define LOOP (&g_node->loop)

static int setup(void **state)
{
	if (kw_sys_linux_open(&g_sys) < 0)
		return -1;
	g_node = kw_node_create_heap(1024 * 1024 + kw_test_loop_bytes(), &g_sys.sys, NULL);
	return g_node ? 0 : -1;
}

static int teardown(void **state)
{
	kw_node_destroy_heap(g_node);
	kw_sys_linux_close(&g_sys);
	return 0;
}

struct hit { int n; uint32_t ev; struct kw_watch *to_unwatch; };

static void on_ev(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct hit *h = (struct hit *)w->arg;
	h->n++;
	h->ev |= ev;
	if (h->to_unwatch)
		kw_loop_unwatch(l, h->to_unwatch);
}

static void test_loop_pipe_readable_fires_read_callback(void **state)
{
	int p[2];
	struct kw_watch w = { 0 };
	struct hit h = { 0 };

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(kw_loop_watch(LOOP, &w, p[0], KW_EV_READ, on_ev, &h), 0);
	assert_int_equal(kw_loop_watch(LOOP, &w, p[0], KW_EV_READ, on_ev, &h), -KW_EALREADY);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 1);
	assert_true(h.ev & KW_EV_READ);
	close(p[1]);
	h.ev = 0;
	kw_loop_run_once(LOOP, 0);
	assert_true(h.ev & KW_EV_READ);  /* EOF/HUP still reads as readable */
	kw_loop_unwatch(LOOP, &w);
	close(p[0]);
}

static void test_loop_unwatch_in_callback_drops_pending_event(void **state)
{
	int a[2], b[2];
	struct kw_watch wa = { 0 }, wb = { 0 };
	struct hit ha = { 0 }, hb = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
	/* Both become ready in the same pass; whichever runs first unwatches the other. */
	ha.to_unwatch = &wb;
	hb.to_unwatch = &wa;
	kw_loop_watch(LOOP, &wa, a[0], KW_EV_READ, on_ev, &ha);
	kw_loop_watch(LOOP, &wb, b[0], KW_EV_READ, on_ev, &hb);
	assert_int_equal(write(a[1], "1", 1), 1);
	assert_int_equal(write(b[1], "1", 1), 1);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(ha.n + hb.n, 1);
	kw_loop_unwatch(LOOP, &wa);
	kw_loop_unwatch(LOOP, &wb);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

static void test_loop_watch_mod_switches_to_write_interest(void **state)
{
	int s[2];
	struct kw_watch w = { 0 };
	struct hit h = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	kw_loop_watch(LOOP, &w, s[0], KW_EV_READ, on_ev, &h);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, KW_EV_WRITE), 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 1);
	assert_true(h.ev & KW_EV_WRITE);
	kw_loop_unwatch(LOOP, &w);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, KW_EV_READ), -KW_EINVAL);
	close(s[0]); close(s[1]);
}

/* epoll reports a hang-up whatever the interest set: a parked watch (events 0) must not
 * wake the loop for it every pass, and must see it once interest returns. */
static void test_loop_parked_watch_is_not_woken_by_hangup_until_interest_returns(void **state)
{
	int s[2], i;
	struct kw_watch w = { 0 };
	struct hit h = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	assert_int_equal(kw_loop_watch(LOOP, &w, s[0], KW_EV_READ, on_ev, &h), 0);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, 0), 0);
	assert_int_equal(write(s[1], "x", 1), 1);
	close(s[1]);  /* AF_UNIX stream: the survivor gets EPOLLHUP */
	for (i = 0; i < 5; i++)
		kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, KW_EV_READ), 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 1);
	assert_true(h.ev & KW_EV_READ);  /* the byte, then EOF, are still there to read */
	kw_loop_unwatch(LOOP, &w);
	close(s[0]);
}

/* A watch may start parked and be unwatched while parked. */
static void test_loop_watch_can_start_parked(void **state)
{
	int s[2];
	struct kw_watch w = { 0 };
	struct hit h = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	assert_int_equal(kw_loop_watch(LOOP, &w, s[0], 0, on_ev, &h), 0);
	assert_int_equal(write(s[1], "x", 1), 1);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, KW_EV_READ), 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(kw_loop_watch_mod(LOOP, &w, 0), 0);
	kw_loop_unwatch(LOOP, &w);
	assert_false(w.active);
	close(s[0]); close(s[1]);
}

static void stop_cb(struct kw_loop *l, struct kw_timer *t) { kw_loop_stop(l, 7); }

static void test_loop_run_returns_stop_code_from_timer(void **state)
{
	struct kw_timer t;

	kw_timer_init(&t, stop_cb, NULL);
	kw_timer_start(LOOP, &t, 0);
	assert_int_equal(kw_loop_run(LOOP), 7);
}

static void test_loop_real_tcp_connect_accept_on_loopback(void **state)
{
	struct kw_sys *s = &g_sys.sys;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	struct sockaddr_storage ss, peer;
	socklen_t len;
	int l = s->ops->tcp_socket(s, AF_INET), c, a = -1, ret;
	struct kw_watch wl = { 0 };
	struct hit h = { 0 };
	char buf[8];

	assert_true(l >= 0);
	assert_int_equal(s->ops->bind_listen(s, l, (struct sockaddr *)&sa, sizeof(sa), 8), 0);
	assert_int_equal(s->ops->local_addr(s, l, &ss, &len), 0);
	c = s->ops->tcp_socket(s, AF_INET);
	ret = s->ops->connect(s, c, (struct sockaddr *)&ss, len);
	assert_true(ret == 0 || ret == -KW_EINPROGRESS);
	kw_loop_watch(LOOP, &wl, l, KW_EV_READ, on_ev, &h);
	for (int i = 0; i < 100 && h.n == 0; i++)
		kw_loop_run_once(LOOP, 10);
	assert_int_equal(h.n, 1);
	a = s->ops->accept(s, l, &peer, &len);
	assert_true(a >= 0);
	assert_int_equal(s->ops->sock_error(s, c), 0);
	assert_int_equal(s->ops->write(s, c, "ping", 4), 4);
	for (int i = 0; i < 100; i++) {
		ret = (int)s->ops->read(s, a, buf, sizeof(buf));
		if (ret != -KW_EAGAIN)
			break;
		kw_loop_run_once(LOOP, 10);
	}
	assert_int_equal(ret, 4);
	assert_memory_equal(buf, "ping", 4);
	kw_loop_unwatch(LOOP, &wl);
	s->ops->close(s, a);
	s->ops->close(s, c);
	s->ops->close(s, l);
}

/* ---- kw_loop_async: completions from another thread ---- */

struct async_hit { int n; pthread_t self; };

static void on_async(struct kw_loop *l, struct kw_async *a)
{
	struct async_hit *h = a->arg;

	h->n++;
	h->self = pthread_self();
}

struct sender { struct kw_loop *l; struct kw_async *a; unsigned delay_ms; };

static void *send_later(void *arg)
{
	struct sender *sd = arg;
	struct timespec ts = { 0, (long)sd->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	(void)kw_loop_async_send(sd->l, sd->a);
	return NULL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_loop_async_send_from_thread_wakes_a_blocked_wait(void **state)
{
	struct kw_async a = { 0 };
	struct async_hit h = { 0 };
	struct sender sd = { LOOP, &a, 50 };
	pthread_t th;
	uint64_t t0;

	assert_true(kw_loop_async_supported(LOOP));
	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &h), 0);
	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &h), -KW_EALREADY);
	assert_int_equal(pthread_create(&th, NULL, send_later, &sd), 0);
	t0 = mono_ms();
	/* no timer and no fd: only the wake can end this wait before 5 s */
	while (!h.n && mono_ms() - t0 < 5000)
		assert_int_equal(kw_loop_run_once(LOOP, 5000), 0);
	pthread_join(th, NULL);
	assert_int_equal(h.n, 1);
	assert_true(pthread_equal(h.self, pthread_self()));   /* run on the loop's thread */
	assert_true(mono_ms() - t0 < 2000);
	assert_int_equal(LOOP->stats.async_runs, 1);
	kw_loop_async_stop(LOOP, &a);
}

static void test_loop_async_sends_coalesce_and_every_handle_runs(void **state)
{
	struct kw_async a = { 0 }, b = { 0 };
	struct async_hit ha = { 0 }, hb = { 0 };

	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &ha), 0);
	assert_int_equal(kw_loop_async_init(LOOP, &b, on_async, &hb), 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(ha.n + hb.n, 0);   /* nothing sent: nothing runs */
	assert_int_equal(kw_loop_async_send(LOOP, &a), 0);
	assert_int_equal(kw_loop_async_send(LOOP, &a), 0);
	assert_int_equal(kw_loop_async_send(LOOP, &b), 0);
	assert_int_equal(kw_loop_async_send(LOOP, &a), 0);
	kw_loop_run_once(LOOP, 1000);
	assert_int_equal(ha.n, 1);
	assert_int_equal(hb.n, 1);
	assert_int_equal(LOOP->stats.async_wakes, 1);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(ha.n, 1);          /* read empty: no second run */
	assert_int_equal(kw_loop_async_send(LOOP, &b), 0);
	kw_loop_run_once(LOOP, 1000);
	assert_int_equal(ha.n, 1);
	assert_int_equal(hb.n, 2);
	kw_loop_async_stop(LOOP, &a);
	kw_loop_async_stop(LOOP, &b);
}

static void test_loop_async_stop_drops_a_send_and_closes_the_wake_fd(void **state)
{
	struct kw_async a = { 0 };
	struct async_hit h = { 0 };
	int fd;

	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &h), 0);
	fd = LOOP->wake_fd;
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	assert_int_equal(kw_loop_async_send(LOOP, &a), 0);
	kw_loop_async_stop(LOOP, &a);
	kw_loop_async_stop(LOOP, &a);   /* idempotent */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(kw_loop_async_send(LOOP, &a), -KW_EINVAL);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(h.n, 0);
	/* a fresh handle opens a new fd and works */
	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &h), 0);
	assert_int_equal(kw_loop_async_send(LOOP, &a), 0);
	kw_loop_run_once(LOOP, 1000);
	assert_int_equal(h.n, 1);
	kw_loop_async_stop(LOOP, &a);
}

static void test_loop_async_is_refused_without_backend_wake(void **state)
{
	struct kw_sys_ops ops = *g_sys.sys.ops;
	const struct kw_sys_ops *saved = g_sys.sys.ops;
	struct kw_async a = { 0 };
	struct async_hit h = { 0 };

	ops.wake_open = NULL;
	ops.wake = NULL;
	g_sys.sys.ops = &ops;
	assert_false(kw_loop_async_supported(LOOP));
	assert_int_equal(kw_loop_async_init(LOOP, &a, on_async, &h), -KW_ENOTSUP);
	assert_false(a.active);
	g_sys.sys.ops = saved;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loop_pipe_readable_fires_read_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_unwatch_in_callback_drops_pending_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_watch_mod_switches_to_write_interest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_parked_watch_is_not_woken_by_hangup_until_interest_returns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_watch_can_start_parked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_run_returns_stop_code_from_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_real_tcp_connect_accept_on_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_async_send_from_thread_wakes_a_blocked_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_async_sends_coalesce_and_every_handle_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_async_stop_drops_a_send_and_closes_the_wake_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_async_is_refused_without_backend_wake, setup, teardown),
	};
	return cmocka_run_group_tests_name("kernel/loop", tests, NULL, NULL);
}
