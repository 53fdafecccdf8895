/*
 * kw_attack: the load a hostile or merely busy internet puts on a node, on loopback, for
 * tests/stress/test_stress.sh. Each mode runs for a while and prints one summary line.
 *
 *   kw_attack honest  <maddr> [-c 40]                      concurrent full handshakes (Noise +
 *                                                           yamux), each from its own process and
 *                                                           source 127.0.<10+i>.1, one ping each;
 *                                                           exit 0 when all succeed
 *   kw_attack partial <ip> <port> [-s SRC] [-c 60] [-t S]  multistream header, /noise, a Noise
 *                                                           length prefix of 65535 and one byte,
 *                                                           then silence; reconnect when closed
 *   kw_attack idle    <ip> <port> [-s SRC] [-c 1000] [-t S] TCP connections that say nothing;
 *                                                           reconnect when closed
 *   kw_attack auth    <maddr> [-s SRC] [-c 30] [-t S]      throwaway Ed25519 peers: complete
 *                                                           Noise + yamux, open a stream, then
 *                                                           a partial transport frame; reports
 *                                                           how long the node takes to close them
 * New connections are limited to -r per second (default 1000). Distinct 127.0.0.x source
 * addresses (bound before connect) stand for distinct hosts.
 *
 * honest and auth use libkw's swarm on the Linux backend, with connect() wrapped to bind the
 * source address; auth writes its partial frame straight to the socket, below Noise, which
 * is why it reads the swarm's private connection struct.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/key.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#include "../../net/swarm/swarm_priv.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t clock_cb(void *arg) { return now_us(); }

static int opt_count = -1, opt_secs = 10, opt_rate = 1000;
static const char *opt_src = "127.0.0.1";

/* ---- a token bucket for new connections ------------------------------------------------- */

static double g_tokens;
static uint64_t g_tok_at;

static bool may_connect(void)
{
	uint64_t t = now_us();

	if (!g_tok_at)
		g_tok_at = t;
	g_tokens += (double)(t - g_tok_at) * opt_rate / 1e6;
	g_tok_at = t;
	if (g_tokens > opt_rate / 10.0 + 1)
		g_tokens = opt_rate / 10.0 + 1;   /* bursts of at most 100 ms worth */
	if (g_tokens < 1)
		return false;
	g_tokens -= 1;
	return true;
}

/* ---- raw attackers (partial, idle) ------------------------------------------------------- */

struct raw {
	int fd;
	bool sent;
};

static int raw_open(const struct sockaddr_in *dst, const struct sockaddr_in *src)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) < 0 ||
	    (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int run_raw(const char *ip, int port, bool partial)
{
	/* 0x13 "/multistream/1.0.0\n" 0x07 "/noise\n", a Noise length prefix of 65535, one byte */
	static const uint8_t bait[] = "\x13/multistream/1.0.0\n\x07/noise\n\xff\xff\x01";
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int n = opt_count > 0 ? opt_count : (partial ? 60 : 1000);
	struct raw *r = calloc((size_t)n, sizeof(*r));
	struct epoll_event evs[256];
	uint64_t end = now_us() + (uint64_t)opt_secs * 1000000u;
	unsigned long made = 0, closed = 0, refused = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), i;
	uint8_t junk[4096];

	if (!r || ep < 0 || inet_pton(AF_INET, ip, &dst.sin_addr) != 1 ||
	    inet_pton(AF_INET, opt_src, &src.sin_addr) != 1) {
		fprintf(stderr, "kw_attack: bad address\n");
		return 2;
	}
	for (i = 0; i < n; i++)
		r[i].fd = -1;
	while (now_us() < end) {
		int k;

		for (i = 0; i < n; i++) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP };

			if (r[i].fd >= 0 || !may_connect())
				continue;
			r[i].fd = raw_open(&dst, &src);
			if (r[i].fd < 0) {
				refused++;
				continue;
			}
			r[i].sent = false;
			ev.data.u32 = (uint32_t)i;
			epoll_ctl(ep, EPOLL_CTL_ADD, r[i].fd, &ev);
			made++;
		}
		k = epoll_wait(ep, evs, 256, 2);
		for (i = 0; i < k; i++) {
			struct raw *x = &r[evs[i].data.u32];
			bool gone = (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;

			if (x->fd < 0)
				continue;
			if (!gone && (evs[i].events & EPOLLIN)) {
				long m = read(x->fd, junk, sizeof(junk));

				gone = m == 0 || (m < 0 && errno != EAGAIN);
			}
			if (!gone && (evs[i].events & EPOLLOUT) && !x->sent) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
							  .data.u32 = evs[i].data.u32 };

				if (partial && write(x->fd, bait, sizeof(bait) - 1) < 0)
					gone = true;
				x->sent = true;
				epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
			}
			if (gone) {
				close(x->fd);
				x->fd = -1;
				closed++;
			}
		}
	}
	for (i = 0; i < n; i++)
		if (r[i].fd >= 0)
			close(r[i].fd);
	printf("%s from %s: %lu connections opened, %lu closed by the node, %lu connect errors\n",
	       partial ? "partial" : "idle", opt_src, made, closed, refused);
	return 0;
}

/* ---- libkw clients (honest, auth) --------------------------------------------------------- */

static struct kw_sys_linux g_sys;
static struct kw_sys_ops g_ops;
static int (*g_real_connect)(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len);
static struct sockaddr_in g_bind = { .sin_family = AF_INET };

/* The swarm calls connect() inside kw_swarm_dial: bind the source chosen for this dial. */
static int bind_connect(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&g_bind, sizeof(g_bind)) < 0)
		return -KW_EADDRINUSE;
	return g_real_connect(s, fd, sa, len);
}

static struct kw_node *g_n;
static struct kw_swarm *g_sw;

static int client_start(uint32_t conns)
{
	struct kw_swarm_limits lim;
	struct kw_privkey key;

	if (kw_sys_linux_open(&g_sys) < 0 || kw_key_generate(KW_KEY_ED25519, 0, &key) < 0)
		return -1;
	g_ops = *g_sys.sys.ops;
	g_real_connect = g_ops.connect;
	g_ops.connect = bind_connect;
	g_sys.sys.ops = &g_ops;
	kw_swarm_limits_default(&lim);
	lim.max_conns_in = 1;
	lim.max_conns_out = conns;
	g_n = kw_node_create_heap(conns > 1 ? (size_t)256 << 20 : (size_t)32 << 20, &g_sys.sys, NULL);
	if (!g_n || kw_swarm_create(g_n, &key, &lim, &g_sw) < 0)
		return -1;
	return 0;
}

/* honest: one connection per source address, each pings once */
struct honest {
	struct kw_ping ping;
	uint64_t t0, t_done;
	int err;
	bool done;
};
static struct honest *g_h;
static int g_h_n, g_h_done;

static void honest_ping(struct kw_ping *p, uint32_t seq, uint64_t rtt, int err, bool done)
{
	struct honest *h = (struct honest *)p->user;

	if (!done)
		return;
	h->err = err;
	h->done = true;
	h->t_done = now_us();
	if (++g_h_done == g_h_n)
		kw_loop_stop(&g_n->loop, 0);
}

static void honest_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct honest *h = (struct honest *)user;

	if (err == 0) {
		h->ping.clock_us = clock_cb;
		err = kw_ping_start(&h->ping, sw, c, 1, 0, honest_ping, h);
	}
	if (err < 0) {
		h->ping.user = h;
		honest_ping(&h->ping, 0, 0, err, true);
	}
}

static void on_deadline(struct kw_loop *l, struct kw_timer *t) { kw_loop_stop(l, 1); }

/* One honest host: its own process and node (so the client side has its own buffers, like
 * a real remote host), one dial from its own source address, one ping. Exit 0 on success. */
static int honest_child(const char *maddr, int i)
{
	struct kw_timer deadline;
	int ret;

	g_h_n = 1;
	g_h = calloc(1, sizeof(*g_h));
	if (!g_h || client_start(1) < 0)
		return 2;
	g_bind.sin_addr.s_addr = htonl(0x7f000001u + ((uint32_t)(10 + i) << 8));
	g_h->t0 = now_us();
	ret = kw_swarm_dial(g_sw, maddr, honest_dial, g_h);
	if (ret < 0) {
		g_h->ping.user = g_h;
		honest_ping(&g_h->ping, 0, 0, ret, true);
	}
	kw_timer_init(&deadline, on_deadline, NULL);
	kw_timer_start(&g_n->loop, &deadline, (uint64_t)opt_secs * 1000);
	if (!g_h_done)
		kw_loop_run(&g_n->loop);
	if (!g_h->done || g_h->err) {
		fprintf(stderr, "kw_attack: honest %d (127.0.%d.1): %s\n", i, 10 + i,
			g_h->done ? kw_strerror(g_h->err) : "timed out");
		return 1;
	}
	return 0;
}

static int run_honest(const char *maddr)
{
	int n = opt_count > 0 ? opt_count : 40, i, ok = 0, go[2];
	uint64_t t0;
	pid_t *pid = calloc((size_t)n, sizeof(*pid));

	/* every child connects at the same moment: they wait on a pipe the parent closes */
	if (!pid || pipe(go) < 0)
		return 2;
	for (i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			char b;

			close(go[1]);
			(void)!read(go[0], &b, 1);
			_exit(honest_child(maddr, i));
		}
	}
	close(go[0]);
	t0 = now_us();
	close(go[1]);
	for (i = 0; i < n; i++) {
		int st;

		if (pid[i] > 0 && waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0)
			ok++;
	}
	printf("honest: %d of %d concurrent handshakes + pings succeeded, all done in %.1f ms\n",
	       ok, n, (double)(now_us() - t0) / 1000.0);
	return ok == n ? 0 : 1;
}

/* auth: keep -c authenticated connections, each holding a partial frame */
struct auth {
	struct kw_conn *c;
	int state;             /* 0 idle, 1 dialing, 2 up, 3 frame sent */
	uint64_t t_inject;
};
static struct auth *g_a;
static int g_a_n;
static unsigned long g_a_up, g_a_injected, g_a_closed, g_a_failed;
static double g_a_max_close_ms, g_a_sum_close_ms;

static size_t sink_data(struct kw_stream *s, const uint8_t *d, size_t n) { return n; }
static void sink_close(struct kw_stream *s, int r) { }
static const struct kw_stream_handler sink_h = { .on_data = sink_data, .on_close = sink_close };

static void auth_open(struct kw_stream *s, int err, void *user)
{
	struct auth *a = (struct auth *)user;
	/* a Noise length prefix of 65535 and one byte, straight onto the socket */
	static const uint8_t part[] = { 0xff, 0xff, 0x42 };

	if (err < 0 || a->state != 2 || !a->c)
		return;
	if (write(a->c->fd, part, sizeof(part)) == (ssize_t)sizeof(part)) {
		a->state = 3;
		a->t_inject = now_us();
		g_a_injected++;
	}
}

static void auth_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct auth *a = (struct auth *)user;

	if (err < 0) {
		a->state = 0;
		g_a_failed++;
		return;
	}
	a->c = c;
	a->state = 2;
	g_a_up++;
	if (kw_swarm_open_stream(sw, c, KW_PING_PROTO, &sink_h, a, auth_open) < 0)
		a->state = 2;
}

static void auth_down(struct kw_swarm *sw, struct kw_conn *c, int reason, void *arg)
{
	int i;

	for (i = 0; i < g_a_n; i++) {
		struct auth *a = &g_a[i];

		if (a->c != c)
			continue;
		if (a->state == 3) {
			double ms = (double)(now_us() - a->t_inject) / 1000.0;

			g_a_closed++;
			g_a_sum_close_ms += ms;
			if (ms > g_a_max_close_ms)
				g_a_max_close_ms = ms;
		}
		a->c = NULL;
		a->state = 0;
	}
}

static struct kw_conn_watcher g_watch = { .on_down = auth_down };
static const char *g_maddr;

static void auth_tick(struct kw_loop *l, struct kw_timer *t)
{
	int i;

	for (i = 0; i < g_a_n; i++) {
		if (g_a[i].state != 0 || !may_connect())
			continue;
		g_a[i].state = 1;
		if (kw_swarm_dial(g_sw, g_maddr, auth_dial, &g_a[i]) < 0)
			g_a[i].state = 0;
	}
	kw_timer_start(l, t, 20);
}

static int run_auth(const char *maddr)
{
	struct kw_timer deadline, tick;
	double open_ms = 0;
	int i, open = 0;

	g_maddr = maddr;
	g_a_n = opt_count > 0 ? opt_count : 30;
	g_a = calloc((size_t)g_a_n, sizeof(*g_a));
	if (!g_a || client_start((uint32_t)g_a_n) < 0 ||
	    inet_pton(AF_INET, opt_src, &g_bind.sin_addr) != 1) {
		fprintf(stderr, "kw_attack: cannot start a client node\n");
		return 2;
	}
	g_bind.sin_port = 0;
	kw_swarm_add_watcher(g_sw, &g_watch);
	kw_timer_init(&deadline, on_deadline, NULL);
	kw_timer_init(&tick, auth_tick, NULL);
	kw_timer_start(&g_n->loop, &deadline, (uint64_t)opt_secs * 1000);
	kw_timer_start(&g_n->loop, &tick, 0);
	kw_loop_run(&g_n->loop);
	for (i = 0; i < g_a_n; i++)
		if (g_a[i].state == 3) {
			double ms = (double)(now_us() - g_a[i].t_inject) / 1000.0;

			open++;
			if (ms > open_ms)
				open_ms = ms;
		}
	printf("auth from %s: %lu connections up, %lu partial frames sent, %lu closed by the node "
	       "(max %.0f ms, mean %.0f ms after the partial frame), %d still open (oldest %.0f ms), "
	       "%lu dials refused\n", opt_src, g_a_up, g_a_injected, g_a_closed, g_a_max_close_ms,
	       g_a_closed ? g_a_sum_close_ms / (double)g_a_closed : 0.0, open, open_ms, g_a_failed);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: kw_attack honest|auth <maddr> [-c N] [-s SRC] [-t SECS] [-r RATE]\n"
			"       kw_attack partial|idle <ip> <port> [-c N] [-s SRC] [-t SECS] [-r RATE]\n");
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	const char *mode;
	int c;

	if (argc < 3) {
		usage();
		return 2;
	}
	mode = argv[1];
	optind = 2;
	{
		/* positional arguments first, then options */
		int pos = 2;

		while (pos < argc && argv[pos][0] != '-')
			pos++;
		optind = pos;
		while ((c = getopt(argc, argv, "c:s:t:r:")) != -1) {
			switch (c) {
			case 'c': opt_count = atoi(optarg); break;
			case 's': opt_src = optarg; break;
			case 't': opt_secs = atoi(optarg); break;
			case 'r': opt_rate = atoi(optarg); break;
			default: usage(); return 2;
			}
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	kw_log_set_level(KW_LOG_LEVEL_ERR);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "partial") || !strcmp(mode, "idle")) {
		if (argc < 4)
			return usage(), 2;
		return run_raw(argv[2], atoi(argv[3]), !strcmp(mode, "partial"));
	}
	if (!strcmp(mode, "honest"))
		return run_honest(argv[2]);
	if (!strcmp(mode, "auth"))
		return run_auth(argv[2]);
	usage();
	return 2;
}
