/*
 * Virtual clock and in-memory stream sockets; see kw/sim.h. Readiness is computed on demand
 * in wait() by scanning the sockets a node owns, which keeps the model simple and exact:
 * readable when bytes, EOF, an error or a pending accept are there; writable when the peer's
 * ring has space (or the socket has failed, so the owner learns about it).
 */
#include <netinet/in.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/buf.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/sim.h>

#define SIM(s) KW_CONTAINER_OF(s, struct kw_sim, sys)
#define SIM_BACKLOG 16

enum sock_state { S_FREE, S_NEW, S_LISTEN, S_CONN };

struct kw_sim_sock {
	enum sock_state state;
	struct kw_sim *owner;
	struct kw_ring rx;
	int peer;                 /* index of the other end, -1 if none */
	bool rd_eof;              /* peer shut its write side or closed */
	bool wr_shut;
	int error;                /* pending error (positive errno), reported once */
	bool watched;
	uint32_t events;
	void *ptr;
	uint32_t ip;              /* host order */
	uint16_t port;
	uint32_t peer_ip;
	uint16_t peer_port;
	int backlog[SIM_BACKLOG]; /* accepted-but-not-taken connections (listen sockets) */
	int n_backlog;
};

int kw_sim_net_init(struct kw_sim_net *net, struct kw_arena *arena, int n_socks, size_t rx_bytes)
{
	int i;

	if (n_socks <= 0 || rx_bytes == 0 || (rx_bytes & (rx_bytes - 1)))
		return -KW_EINVAL;
	memset(net, 0, sizeof(*net));
	net->socks = kw_arena_alloc(arena, sizeof(*net->socks) * (size_t)n_socks, 16);
	if (!net->socks)
		return -KW_ENOMEM;
	for (i = 0; i < n_socks; i++) {
		void *mem = kw_arena_alloc(arena, rx_bytes, 16);
		if (!mem)
			return -KW_ENOMEM;
		kw_ring_init(&net->socks[i].rx, mem, rx_bytes);
		net->socks[i].peer = -1;
	}
	net->n_socks = n_socks;
	net->rx_bytes = rx_bytes;
	net->next_port = 40000;
	net->now_ms = 1000;  /* not 0, so "deadline 0" bugs show up */
	return 0;
}

void kw_sim_advance(struct kw_sim_net *net, uint64_t ms)
{
	net->now_ms += ms;
}

int kw_sim_open_sockets(const struct kw_sim_net *net)
{
	int i, n = 0;

	for (i = 0; i < net->n_socks; i++)
		n += net->socks[i].state != S_FREE;
	return n;
}

static struct kw_sim_sock *get(struct kw_sim *s, int fd)
{
	if (fd < 0 || fd >= s->net->n_socks)
		return NULL;
	if (s->net->socks[fd].state == S_FREE || s->net->socks[fd].owner != s)
		return NULL;
	return &s->net->socks[fd];
}

static int sock_new(struct kw_sim *s)
{
	int i;

	for (i = 0; i < s->net->n_socks; i++) {
		struct kw_sim_sock *k = &s->net->socks[i];
		if (k->state == S_FREE) {
			struct kw_ring rx = k->rx;
			memset(k, 0, sizeof(*k));
			k->rx = rx;
			kw_ring_clear(&k->rx);
			k->state = S_NEW;
			k->owner = s;
			k->peer = -1;
			return i;
		}
	}
	return -KW_ENOBUFS;
}

static uint64_t sim_now(struct kw_sys *sys)
{
	return SIM(sys)->net->now_ms;
}

static int sim_watch(struct kw_sys *sys, int fd, uint32_t ev, void *ptr, bool add)
{
	struct kw_sim_sock *k = get(SIM(sys), fd);

	if (!k)
		return -KW_EBADF;
	if (add == k->watched)
		return add ? -KW_EEXIST : -KW_ENOENT;
	k->watched = true;
	k->events = ev;
	k->ptr = ptr;
	return 0;
}

static int sim_watch_add(struct kw_sys *s, int fd, uint32_t ev, void *ptr)
{
	return sim_watch(s, fd, ev, ptr, true);
}

static int sim_watch_mod(struct kw_sys *s, int fd, uint32_t ev, void *ptr)
{
	return sim_watch(s, fd, ev, ptr, false);
}

static int sim_watch_del(struct kw_sys *sys, int fd)
{
	struct kw_sim_sock *k = get(SIM(sys), fd);

	if (!k || !k->watched)
		return -KW_ENOENT;
	k->watched = false;
	return 0;
}

static uint32_t ready(struct kw_sim_net *net, struct kw_sim_sock *k)
{
	uint32_t r = 0;

	if (k->error)
		return KW_EV_ERR | KW_EV_READ | KW_EV_WRITE;
	if (k->state == S_LISTEN)
		return k->n_backlog > 0 ? KW_EV_READ : 0;
	if (k->state != S_CONN)
		return 0;
	if (!kw_ring_empty(&k->rx) || k->rd_eof)
		r |= KW_EV_READ;
	if (k->peer < 0)
		r |= KW_EV_WRITE | KW_EV_HUP;  /* writes fail with EPIPE: let the owner see it */
	else if (kw_ring_space(&net->socks[k->peer].rx) > 0 && !k->wr_shut)
		r |= KW_EV_WRITE;
	return r;
}

static int sim_wait(struct kw_sys *sys, struct kw_sys_event *ev, int max, int timeout_ms)
{
	struct kw_sim *s = SIM(sys);
	int i, n = 0;

	for (i = 0; i < s->net->n_socks && n < max; i++) {
		struct kw_sim_sock *k = &s->net->socks[i];
		uint32_t r;
		if (k->state == S_FREE || k->owner != s || !k->watched)
			continue;
		r = ready(s->net, k) & (k->events | KW_EV_ERR | KW_EV_HUP);
		if (r) {
			ev[n].ptr = k->ptr;
			ev[n].events = r;
			n++;
		}
	}
	if (n == 0 && timeout_ms > 0 && s->net->auto_advance)
		s->net->now_ms += (uint64_t)timeout_ms;
	return n;
}

static long sim_read(struct kw_sys *sys, int fd, void *buf, size_t len)
{
	struct kw_sim_sock *k = get(SIM(sys), fd);
	size_t n;

	if (!k)
		return -KW_EBADF;
	if (k->error) {
		int e = k->error;
		k->error = 0;
		return -e;
	}
	if (k->state != S_CONN)
		return -KW_ENOTCONN;
	n = kw_ring_read(&k->rx, buf, len);
	if (n > 0)
		return (long)n;
	return k->rd_eof ? 0 : -KW_EAGAIN;
}

static long sim_write(struct kw_sys *sys, int fd, const void *buf, size_t len)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *k = get(s, fd);
	size_t n;

	if (!k)
		return -KW_EBADF;
	if (k->state != S_CONN)
		return -KW_ENOTCONN;
	if (k->wr_shut || k->peer < 0)
		return -KW_EPIPE;
	n = kw_ring_write(&s->net->socks[k->peer].rx, buf, len);
	return n > 0 ? (long)n : -KW_EAGAIN;
}

static int sim_close_how(struct kw_sys *sys, int fd, bool abort)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *k = get(s, fd);
	int i;

	if (!k)
		return -KW_EBADF;
	if (k->peer >= 0) {
		struct kw_sim_sock *p = &s->net->socks[k->peer];
		p->rd_eof = true;
		p->peer = -1;
		if (abort)
			p->error = KW_ECONNRESET;  /* RST: the peer's next read fails */
	}
	/* Connections accepted by the stack but never taken are refused to their dialers. */
	for (i = 0; i < k->n_backlog; i++) {
		struct kw_sim_sock *c = &s->net->socks[k->backlog[i]];
		if (c->peer >= 0) {
			s->net->socks[c->peer].error = KW_ECONNRESET;
			s->net->socks[c->peer].peer = -1;
		}
		c->state = S_FREE;
	}
	k->state = S_FREE;
	k->watched = false;
	return 0;
}

static int sim_close(struct kw_sys *sys, int fd)
{
	return sim_close_how(sys, fd, false);
}

static int sim_close_abort(struct kw_sys *sys, int fd)
{
	return sim_close_how(sys, fd, true);
}

static int sim_socket(struct kw_sys *sys, int family)
{
	if (family != AF_INET)
		return -KW_ENOTSUP;
	return sock_new(SIM(sys));
}

static int parse_in(const struct sockaddr *sa, socklen_t len, uint32_t *ip, uint16_t *port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

	if (len < (socklen_t)sizeof(*in) || sa->sa_family != AF_INET)
		return -KW_EINVAL;
	*ip = ntohl(in->sin_addr.s_addr);
	*port = ntohs(in->sin_port);
	return 0;
}

static int sim_bind_listen(struct kw_sys *sys, int fd, const struct sockaddr *sa, socklen_t len,
			   int backlog)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *k = get(s, fd);
	uint32_t ip;
	uint16_t port;
	int i, ret;

	if (!k || k->state != S_NEW)
		return -KW_EBADF;
	ret = parse_in(sa, len, &ip, &port);
	if (ret)
		return ret;
	if (port == 0)
		port = s->net->next_port++;
	for (i = 0; i < s->net->n_socks; i++) {
		struct kw_sim_sock *o = &s->net->socks[i];
		if (o->state == S_LISTEN && o->port == port && (o->ip == ip || !o->ip || !ip))
			return -KW_EADDRINUSE;
	}
	k->state = S_LISTEN;
	k->ip = ip;
	k->port = port;
	return 0;
}

static int sim_connect(struct kw_sys *sys, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_net *net = s->net;
	struct kw_sim_sock *k = get(s, fd), *l = NULL, *c;
	uint32_t ip;
	uint16_t port;
	int i, ci, ret;

	if (!k || k->state != S_NEW)
		return -KW_EBADF;
	ret = parse_in(sa, len, &ip, &port);
	if (ret)
		return ret;
	k->state = S_CONN;
	k->ip = s->src_ip ? s->src_ip : 0x7f000001;
	k->port = net->next_port++;
	k->peer_ip = ip;
	k->peer_port = port;
	for (i = 0; i < net->n_socks; i++) {
		struct kw_sim_sock *o = &net->socks[i];
		if (o->state == S_LISTEN && o->port == port && (o->ip == ip || o->ip == 0)) {
			l = o;
			break;
		}
	}
	if (net->blackhole_ip && ip == net->blackhole_ip) {
		/* SYNs vanish: the connect never completes and the socket never turns writable */
		k->state = S_NEW;
		return -KW_EINPROGRESS;
	}
	if (!l || l->n_backlog >= SIM_BACKLOG) {
		k->error = KW_ECONNREFUSED;
		return -KW_EINPROGRESS;
	}
	ci = sock_new(l->owner);
	if (ci < 0) {
		k->error = KW_ECONNREFUSED;
		return -KW_EINPROGRESS;
	}
	c = &net->socks[ci];
	c->state = S_CONN;
	c->ip = ip;
	c->port = port;
	c->peer_ip = k->ip;
	c->peer_port = k->port;
	c->peer = fd;
	k->peer = ci;
	l->backlog[l->n_backlog++] = ci;
	return -KW_EINPROGRESS;
}

static void fill_in(struct sockaddr_storage *ss, socklen_t *len, uint32_t ip, uint16_t port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(ip);
	in->sin_port = htons(port);
	*len = sizeof(*in);
}

static int sim_accept(struct kw_sys *sys, int lfd, struct sockaddr_storage *peer, socklen_t *len)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *l = get(s, lfd), *c;
	int ci;

	if (!l || l->state != S_LISTEN)
		return -KW_EBADF;
	if (l->n_backlog == 0)
		return -KW_EAGAIN;
	ci = l->backlog[0];
	memmove(l->backlog, l->backlog + 1, sizeof(int) * (size_t)--l->n_backlog);
	c = &s->net->socks[ci];
	fill_in(peer, len, c->peer_ip, c->peer_port);
	return ci;
}

static int sim_sock_error(struct kw_sys *sys, int fd)
{
	struct kw_sim_sock *k = get(SIM(sys), fd);
	int e;

	if (!k)
		return -KW_EBADF;
	e = k->error;
	k->error = 0;
	return -e;
}

static int sim_local_addr(struct kw_sys *sys, int fd, struct sockaddr_storage *sa, socklen_t *len)
{
	struct kw_sim_sock *k = get(SIM(sys), fd);

	if (!k)
		return -KW_EBADF;
	fill_in(sa, len, k->ip, k->port);
	return 0;
}

static int sim_shutdown_write(struct kw_sys *sys, int fd)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *k = get(s, fd);

	if (!k || k->state != S_CONN)
		return -KW_ENOTCONN;
	k->wr_shut = true;
	if (k->peer >= 0)
		s->net->socks[k->peer].rd_eof = true;
	return 0;
}

static const struct kw_sys_ops g_sim_ops = {
	.now_ms = sim_now,
	.watch_add = sim_watch_add,
	.watch_mod = sim_watch_mod,
	.watch_del = sim_watch_del,
	.wait = sim_wait,
	.read = sim_read,
	.write = sim_write,
	.close = sim_close,
	.tcp_socket = sim_socket,
	.connect = sim_connect,
	.bind_listen = sim_bind_listen,
	.accept = sim_accept,
	.sock_error = sim_sock_error,
	.local_addr = sim_local_addr,
	.shutdown_write = sim_shutdown_write,
	.close_abort = sim_close_abort,
};

void kw_sim_init(struct kw_sim *s, struct kw_sim_net *net)
{
	s->sys.ops = &g_sim_ops;
	s->net = net;
	s->src_ip = 0;
}

int kw_sim_socketpair(struct kw_sim *s, int fds[2])
{
	int a = sock_new(s), b;

	if (a < 0)
		return a;
	b = sock_new(s);
	if (b < 0) {
		s->net->socks[a].state = S_FREE;
		return b;
	}
	s->net->socks[a].state = s->net->socks[b].state = S_CONN;
	s->net->socks[a].peer = b;
	s->net->socks[b].peer = a;
	fds[0] = a;
	fds[1] = b;
	return 0;
}
