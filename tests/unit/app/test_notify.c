/*
 * app/notify.c: sd_notify without libsystemd. A unix datagram socket stands in for systemd's
 * NOTIFY_SOCKET (a path, then an abstract '@' name); the watchdog ping is driven on the
 * simulated clock. Wire format: systemd.io/NOTIFY_SOCKET.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/sim.h>

#include "../../../app/notify.h"

static struct kw_test_node *g_t;
static char g_dir[64];
static char g_path[128];
static int g_rx = -1;
static struct kw_notify g_n;

#define LOOP (&g_t->node->loop)

/* A datagram socket bound to `name` (a path, or '@name' for the abstract namespace). */
static int bind_rx(const char *name)
{
	struct sockaddr_un a;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	else
		len++;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
	return fd;
}

/* The next datagram, "" if none is waiting. */
static const char *recv_msg(void)
{
	static char buf[256];
	ssize_t n = recv(g_rx, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int setup(void **state)
{
	g_t = kw_test_node_new(64);
	if (!g_t)
		return -1;
	strcpy(g_dir, "/tmp/kw_notify_XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	snprintf(g_path, sizeof(g_path), "%s/notify", g_dir);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	g_rx = -1;
	return 0;
}

static int teardown(void **state)
{
	kw_notify_close(&g_n);
	if (g_rx >= 0)
		close(g_rx);
	unlink(g_path);
	rmdir(g_dir);
	kw_test_node_free(g_t);
	return 0;
}

static void test_notify_without_notify_socket_sends_nothing_and_succeeds(void **state)
{
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(g_n.fd, -1);
	assert_int_equal(kw_notify_send(&g_n, "READY=1"), 0);
	assert_int_equal(kw_notify_watchdog_start(&g_n, LOOP), 0);
	assert_false(kw_timer_armed(&g_n.timer));
	assert_int_equal(g_n.sent, 0);
}

static void test_notify_ready_reaches_a_path_socket(void **state)
{
	g_rx = bind_rx(g_path);
	setenv("NOTIFY_SOCKET", g_path, 1);
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(kw_notify_send(&g_n, "READY=1"), 0);
	assert_string_equal(recv_msg(), "READY=1");
	assert_int_equal(g_n.sent, 1);
}

static void test_notify_stopping_reaches_an_abstract_socket(void **state)
{
	char name[64];

	snprintf(name, sizeof(name), "@kw_notify_test_%d", (int)getpid());
	g_rx = bind_rx(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(kw_notify_send(&g_n, "STOPPING=1"), 0);
	assert_string_equal(recv_msg(), "STOPPING=1");
}

static void test_notify_watchdog_pings_every_half_interval(void **state)
{
	g_rx = bind_rx(g_path);
	setenv("NOTIFY_SOCKET", g_path, 1);
	setenv("WATCHDOG_USEC", "30000000", 1);  /* WatchdogSec=30s */
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(g_n.watchdog_ms, 15000);
	assert_int_equal(kw_notify_watchdog_start(&g_n, LOOP), 0);
	kw_sim_advance(g_t->net, 14999);
	kw_loop_run_once(LOOP, 0);
	assert_string_equal(recv_msg(), "");
	kw_sim_advance(g_t->net, 1);
	kw_loop_run_once(LOOP, 0);
	assert_string_equal(recv_msg(), "WATCHDOG=1");
	assert_string_equal(recv_msg(), "");
	kw_sim_advance(g_t->net, 15000);  /* re-armed: the next one 15 s later */
	kw_loop_run_once(LOOP, 0);
	assert_string_equal(recv_msg(), "WATCHDOG=1");
}

static void test_notify_close_stops_the_watchdog(void **state)
{
	g_rx = bind_rx(g_path);
	setenv("NOTIFY_SOCKET", g_path, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(kw_notify_watchdog_start(&g_n, LOOP), 0);
	kw_notify_close(&g_n);
	assert_false(kw_timer_armed(&g_n.timer));
	kw_sim_advance(g_t->net, 5000);
	kw_loop_run_once(LOOP, 0);
	assert_string_equal(recv_msg(), "");
}

static void test_notify_watchdog_pid_of_another_process_disables_the_ping(void **state)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	g_rx = bind_rx(g_path);
	setenv("NOTIFY_SOCKET", g_path, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(g_n.watchdog_ms, 0);
	assert_int_equal(kw_notify_watchdog_start(&g_n, LOOP), 0);
	assert_false(kw_timer_armed(&g_n.timer));
}

static void test_notify_watchdog_pid_of_this_process_keeps_the_ping(void **state)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("NOTIFY_SOCKET", g_path, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_int_equal(g_n.watchdog_ms, 1000);
}

static void test_notify_relative_socket_path_is_refused(void **state)
{
	setenv("NOTIFY_SOCKET", "run/notify", 1);
	assert_int_equal(kw_notify_open(&g_n), -KW_EINVAL);
	assert_int_equal(g_n.fd, -1);
}

static void test_notify_socket_path_longer_than_sun_path_is_refused(void **state)
{
	char longp[200];

	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longp, 1);
	assert_int_equal(kw_notify_open(&g_n), -KW_EINVAL);
}

static void test_notify_bad_watchdog_usec_is_refused(void **state)
{
	setenv("NOTIFY_SOCKET", g_path, 1);
	setenv("WATCHDOG_USEC", "30s", 1);
	assert_int_equal(kw_notify_open(&g_n), -KW_EINVAL);
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(kw_notify_open(&g_n), -KW_EINVAL);
}

static void test_notify_send_to_a_missing_socket_fails_and_is_counted(void **state)
{
	setenv("NOTIFY_SOCKET", g_path, 1);  /* nobody bound it */
	assert_int_equal(kw_notify_open(&g_n), 0);
	assert_true(kw_notify_send(&g_n, "READY=1") < 0);
	assert_true(kw_notify_send(&g_n, "WATCHDOG=1") < 0);
	assert_int_equal(g_n.failed, 2);
	assert_int_equal(g_n.sent, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_notify_without_notify_socket_sends_nothing_and_succeeds),
		T(test_notify_ready_reaches_a_path_socket),
		T(test_notify_stopping_reaches_an_abstract_socket),
		T(test_notify_watchdog_pings_every_half_interval),
		T(test_notify_close_stops_the_watchdog),
		T(test_notify_watchdog_pid_of_another_process_disables_the_ping),
		T(test_notify_watchdog_pid_of_this_process_keeps_the_ping),
		T(test_notify_relative_socket_path_is_refused),
		T(test_notify_socket_path_longer_than_sun_path_is_refused),
		T(test_notify_bad_watchdog_usec_is_refused),
		T(test_notify_send_to_a_missing_socket_fails_and_is_counted),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
