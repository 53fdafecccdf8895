/*
 * Virtual clock and in-memory stream sockets; see kw/sim.h. Readiness is level-triggered and
 * computed on demand in wait(), which keeps the model simple and exact: readable when bytes,
 * EOF, an error or a pending accept are there; writable when the peer's ring has space (or
 * the socket has failed, so the owner learns about it).
 *
 * wait() does not scan the network: every operation that can make a socket ready (bytes
 * written into its ring, its peer reading or closing, a connect reaching a listener, a watch
 * being set) puts the socket on its owner's candidate list, and wait() checks only that list.
 * A candidate found ready stays on it (level-triggered, like epoll without EPOLLET); one
 * found not ready leaves it until the next such operation. So a wait costs O(candidates),
 * not O(sockets in the network): what lets a simulation run a thousand nodes with tens of
 * thousands of connections on one clock (doc/sim.md, "Full-stack run"). Free sockets are
 * found from a lowest-free hint and listeners on their own list, for the same reason.
 *
 * Latency (net->latency_ms set): bytes written enter the peer's ring at once (so they count
 * against its space, like a socket buffer) but become readable only `latency` ms later. Each
 * socket keeps the batches in flight towards it as marks (bytes, due time) in FIFO order,
 * which the link's constant latency keeps sorted; the network keeps the sockets with a batch
 * in flight in a min-heap on their first mark, so delivery costs O(log sockets) per batch.
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
#define SIM_MARKS 8       /* batches in flight towards one socket; more are merged */

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
	int rl_prev, rl_next;     /* the owner's candidate list (see the top of this file) */
	bool in_rl;
	int l_next;               /* listen sockets: the network's listener list */
	uint32_t lat_ms;          /* one-way latency of this connection towards the peer */
	size_t inflight;          /* bytes in rx not yet delivered */
	struct { uint64_t at; uint32_t bytes; } marks[SIM_MARKS];
	uint8_t m_head, m_len;
	int dh_idx;               /* index in the network's delivery heap, -1: not in it */
};

int kw_sim_net_init(struct kw_sim_net *net, struct kw_arena *arena, int n_socks, size_t rx_bytes)
{
	int i;

	if (n_socks <= 0 || rx_bytes == 0 || (rx_bytes & (rx_bytes - 1)))
		return -KW_EINVAL;
	memset(net, 0, sizeof(*net));
	net->socks = kw_arena_alloc(arena, sizeof(*net->socks) * (size_t)n_socks, 16);
	net->dheap = kw_arena_alloc(arena, sizeof(*net->dheap) * (size_t)n_socks, 16);
	if (!net->socks || !net->dheap)
		return -KW_ENOMEM;
	for (i = 0; i < n_socks; i++) {
		void *mem = kw_arena_alloc(arena, rx_bytes, 16);
		if (!mem)
			return -KW_ENOMEM;
		kw_ring_init(&net->socks[i].rx, mem, rx_bytes);
		net->socks[i].peer = -1;
		net->socks[i].dh_idx = -1;
	}
	net->n_socks = n_socks;
	net->listen_head = -1;
	net->rx_bytes = rx_bytes;
	net->next_port = 40000;
	net->now_ms = 1000;  /* not 0, so "deadline 0" bugs show up */
	return 0;
}

/* ---- delivery heap: sockets with bytes in flight, keyed by their first batch's due time */
static bool dh_less(const struct kw_sim_net *net, int a, int b)
{
	const struct kw_sim_sock *x = &net->socks[a], *y = &net->socks[b];
	uint64_t xa = x->marks[x->m_head].at, ya = y->marks[y->m_head].at;

	return xa != ya ? xa < ya : a < b;  /* equal due times: lower socket first */
}

static void dh_set(struct kw_sim_net *net, int pos, int sock)
{
	net->dheap[pos] = sock;
	net->socks[sock].dh_idx = pos;
}

static void dh_up(struct kw_sim_net *net, int pos)
{
	int sock = net->dheap[pos];

	while (pos > 0) {
		int parent = (pos - 1) / 2;
		if (!dh_less(net, sock, net->dheap[parent]))
			break;
		dh_set(net, pos, net->dheap[parent]);
		pos = parent;
	}
	dh_set(net, pos, sock);
}

static void dh_down(struct kw_sim_net *net, int pos)
{
	int sock = net->dheap[pos];

	for (;;) {
		int c = 2 * pos + 1;
		if (c >= net->dh_len)
			break;
		if (c + 1 < net->dh_len && dh_less(net, net->dheap[c + 1], net->dheap[c]))
			c++;
		if (!dh_less(net, net->dheap[c], sock))
			break;
		dh_set(net, pos, net->dheap[c]);
		pos = c;
	}
	dh_set(net, pos, sock);
}

static void dh_remove(struct kw_sim_net *net, int sock)
{
	int pos = net->socks[sock].dh_idx, last;

	if (pos < 0)
		return;
	net->socks[sock].dh_idx = -1;
	last = net->dheap[--net->dh_len];
	if (last == sock)
		return;
	dh_set(net, pos, last);
	dh_up(net, pos);
	dh_down(net, net->socks[last].dh_idx);
}

/* Forgets every batch in flight towards socket i (it closed or was reset). */
static void marks_clear(struct kw_sim_net *net, int i)
{
	struct kw_sim_sock *k = &net->socks[i];

	dh_remove(net, i);
	k->m_len = 0;
	k->inflight = 0;
}

static void touch(struct kw_sim_net *net, int i);

uint64_t kw_sim_net_next_delivery(const struct kw_sim_net *net)
{
	const struct kw_sim_sock *k;

	if (net->dh_len == 0)
		return UINT64_MAX;
	k = &net->socks[net->dheap[0]];
	return k->marks[k->m_head].at;
}

void kw_sim_net_deliver(struct kw_sim_net *net)
{
	while (net->dh_len > 0) {
		int i = net->dheap[0];
		struct kw_sim_sock *k = &net->socks[i];
		if (k->marks[k->m_head].at > net->now_ms)
			break;
		k->inflight -= k->marks[k->m_head].bytes;
		k->m_head = (uint8_t)((k->m_head + 1) % SIM_MARKS);
		if (--k->m_len == 0)
			dh_remove(net, i);
		else
			dh_down(net, 0);
		touch(net, i);
	}
}

void kw_sim_advance(struct kw_sim_net *net, uint64_t ms)
{
	net->now_ms += ms;
	kw_sim_net_deliver(net);
}

int kw_sim_open_sockets(const struct kw_sim_net *net)
{
	return net->n_open;
}

struct kw_sim *kw_sim_net_next_active(struct kw_sim_net *net)
{
	struct kw_sim *s = net->act_head;

	if (!s)
		return NULL;
	net->act_head = s->act_next;
	if (!net->act_head)
		net->act_tail = NULL;
	s->act_next = NULL;
	s->act_queued = false;
	return s;
}

static void activate(struct kw_sim_net *net, struct kw_sim *s)
{
	if (!net->track_active || s->act_queued)
		return;
	s->act_queued = true;
	s->act_next = NULL;
	if (net->act_tail)
		net->act_tail->act_next = s;
	else
		net->act_head = s;
	net->act_tail = s;
}

/* Socket `i` may have become ready: make it a candidate of its owner's next wait(). */
static void touch(struct kw_sim_net *net, int i)
{
	struct kw_sim_sock *k;
	struct kw_sim *s;

	if (i < 0)
		return;
	k = &net->socks[i];
	if (k->state == S_FREE || k->in_rl)
		return;
	s = k->owner;
	k->in_rl = true;
	k->rl_next = -1;
	k->rl_prev = s->rl_tail;
	if (s->rl_tail >= 0)
		net->socks[s->rl_tail].rl_next = i;
	else
		s->rl_head = i;
	s->rl_tail = i;
	activate(net, s);
}

static void untouch(struct kw_sim_net *net, int i)
{
	struct kw_sim_sock *k = &net->socks[i];
	struct kw_sim *s = k->owner;

	if (!k->in_rl)
		return;
	if (k->rl_prev >= 0)
		net->socks[k->rl_prev].rl_next = k->rl_next;
	else
		s->rl_head = k->rl_next;
	if (k->rl_next >= 0)
		net->socks[k->rl_next].rl_prev = k->rl_prev;
	else
		s->rl_tail = k->rl_prev;
	k->in_rl = false;
}

static void sock_free(struct kw_sim_net *net, int i)
{
	struct kw_sim_sock *k = &net->socks[i];

	untouch(net, i);
	marks_clear(net, i);
	if (k->state == S_LISTEN) {
		int *pp;
		for (pp = &net->listen_head; *pp >= 0; pp = &net->socks[*pp].l_next) {
			if (*pp == i) {
				*pp = k->l_next;
				break;
			}
		}
	}
	if (k->state != S_FREE)
		net->n_open--;
	k->state = S_FREE;
	k->watched = false;
	if (i < net->free_hint)
		net->free_hint = i;
}

static struct kw_sim_sock *get(struct kw_sim *s, int fd)
{
	if (fd < 0 || fd >= s->net->n_socks)
		return NULL;
	if (s->net->socks[fd].state == S_FREE || s->net->socks[fd].owner != s)
		return NULL;
	return &s->net->socks[fd];
}

/* The lowest free socket, as before the hint existed: fd numbers stay what tests expect. */
static int sock_new(struct kw_sim *s)
{
	struct kw_sim_net *net = s->net;
	int i;

	for (i = net->free_hint; i < net->n_socks; i++) {
		struct kw_sim_sock *k = &net->socks[i];
		if (k->state == S_FREE) {
			struct kw_ring rx = k->rx;
			memset(k, 0, sizeof(*k));
			k->rx = rx;
			kw_ring_clear(&k->rx);
			k->state = S_NEW;
			k->owner = s;
			k->peer = -1;
			k->rl_prev = k->rl_next = k->l_next = k->dh_idx = -1;
			net->free_hint = i + 1;
			net->n_open++;
			return i;
		}
	}
	net->free_hint = net->n_socks;
	return -KW_ENOBUFS;
}

static uint64_t sim_now(struct kw_sys *sys)
{
	return SIM(sys)->net->now_ms;
}

static int sim_watch(struct kw_sys *sys, int fd, uint32_t ev, void *ptr, bool add)
{
	struct kw_sim *s = SIM(sys);
	struct kw_sim_sock *k = get(s, fd);

	if (!k)
		return -KW_EBADF;
	if (add == k->watched)
		return add ? -KW_EEXIST : -KW_ENOENT;
	k->watched = true;
	k->events = ev;
	k->ptr = ptr;
	touch(s->net, fd);
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
	if (kw_ring_used(&k->rx) > k->inflight || (k->rd_eof && k->inflight == 0))
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
	int i, next, n = 0;

	kw_sim_net_deliver(s->net);
	for (i = s->rl_head; i >= 0 && n < max; i = next) {
		struct kw_sim_sock *k = &s->net->socks[i];
		uint32_t r = 0;
		next = k->rl_next;
		if (k->watched)
			r = ready(s->net, k) & (k->events | KW_EV_ERR | KW_EV_HUP);
		if (r) {
			ev[n].ptr = k->ptr;
			ev[n].events = r;
			n++;
		} else {
			untouch(s->net, i);
		}
	}
	if (s->rl_head >= 0)  /* still ready (level-triggered) or not yet looked at */
		activate(s->net, s);
	if (n == 0 && timeout_ms > 0 && s->net->auto_advance)
		kw_sim_advance(s->net, (uint64_t)timeout_ms);
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
	if (len > kw_ring_used(&k->rx) - k->inflight)
		len = kw_ring_used(&k->rx) - k->inflight;  /* what has arrived */
	n = kw_ring_read(&k->rx, buf, len);
	if (n > 0) {
		touch(SIM(sys)->net, k->peer);  /* its writes had room freed */
		return (long)n;
	}
	return k->rd_eof && k->inflight == 0 ? 0 : -KW_EAGAIN;
}

/*
 * n bytes just entered socket i's ring: readable at now + lat. Writes due in the same
 * millisecond join one batch; with SIM_MARKS batches already in flight the newest batch takes
 * the bytes and its due time moves to theirs (a little later; counted in net->marks_merged).
 */
static void in_flight(struct kw_sim_net *net, int i, uint32_t lat, size_t n)
{
	struct kw_sim_sock *k = &net->socks[i];
	uint64_t at = net->now_ms + lat;

	k->inflight += n;
	if (k->m_len > 0) {
		int last = (k->m_head + k->m_len - 1) % SIM_MARKS;
		if (k->marks[last].at >= at || k->m_len == SIM_MARKS) {
			if (k->marks[last].at < at) {
				net->marks_merged++;
				k->marks[last].at = at;
			}
			k->marks[last].bytes += (uint32_t)n;
			return;
		}
		last = (last + 1) % SIM_MARKS;
		k->marks[last].at = at;
		k->marks[last].bytes = (uint32_t)n;
		k->m_len++;
		return;
	}
	k->m_head = 0;
	k->m_len = 1;
	k->marks[0].at = at;
	k->marks[0].bytes = (uint32_t)n;
	dh_set(net, net->dh_len++, i);
	dh_up(net, net->dh_len - 1);
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
	if (n == 0)
		return -KW_EAGAIN;
	if (k->lat_ms)
		in_flight(s->net, k->peer, k->lat_ms, n);
	else
		touch(s->net, k->peer);
	return (long)n;
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
		if (abort) {
			p->error = KW_ECONNRESET;  /* RST: the peer's next read fails */
			marks_clear(s->net, k->peer);
		}
		touch(s->net, k->peer);
	}
	/* Connections accepted by the stack but never taken are refused to their dialers. */
	for (i = 0; i < k->n_backlog; i++) {
		struct kw_sim_sock *c = &s->net->socks[k->backlog[i]];
		if (c->peer >= 0) {
			int d = c->peer;
			s->net->socks[d].error = KW_ECONNRESET;
			s->net->socks[d].peer = -1;
			touch(s->net, d);
		}
		sock_free(s->net, k->backlog[i]);
	}
	sock_free(s->net, fd);
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
	for (i = s->net->listen_head; i >= 0; i = s->net->socks[i].l_next) {
		struct kw_sim_sock *o = &s->net->socks[i];
		if (o->port == port && (o->ip == ip || !o->ip || !ip))
			return -KW_EADDRINUSE;
	}
	k->state = S_LISTEN;
	k->ip = ip;
	k->port = port;
	k->l_next = s->net->listen_head;
	s->net->listen_head = fd;
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
	for (i = net->listen_head; i >= 0; i = net->socks[i].l_next) {
		struct kw_sim_sock *o = &net->socks[i];
		if (o->port == port && (o->ip == ip || o->ip == 0)) {
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
		touch(net, fd);
		return -KW_EINPROGRESS;
	}
	ci = sock_new(l->owner);
	if (ci < 0) {
		k->error = KW_ECONNREFUSED;
		touch(net, fd);
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
	if (net->latency_ms)
		k->lat_ms = c->lat_ms = net->latency_ms(net->latency_ctx, k->ip, ip);
	l->backlog[l->n_backlog++] = ci;
	touch(net, (int)(l - net->socks));  /* acceptable */
	touch(net, fd);                      /* connected: writable */
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
	if (k->peer >= 0) {
		s->net->socks[k->peer].rd_eof = true;
		touch(s->net, k->peer);
	}
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
	s->rl_head = s->rl_tail = -1;
	s->act_next = NULL;
	s->act_queued = false;
	s->user = NULL;
}

int kw_sim_socketpair(struct kw_sim *s, int fds[2])
{
	int a = sock_new(s), b;

	if (a < 0)
		return a;
	b = sock_new(s);
	if (b < 0) {
		sock_free(s->net, a);
		return b;
	}
	s->net->socks[a].state = s->net->socks[b].state = S_CONN;
	s->net->socks[a].peer = b;
	s->net->socks[b].peer = a;
	fds[0] = a;
	fds[1] = b;
	return 0;
}
