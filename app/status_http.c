/*
 * The `status` entry of the init table (app/initcalls.def; doc/status.md): samples the node
 * once a second (last request seen) and every CONFIG_KW_STATUS_SAMPLE_S seconds into the
 * history ring, counts inbound connections from other hosts (reachability evidence), answers
 * the control socket's `status` command (app/control.c) and, when status_port is not 0,
 * serves HTTP/1.1 on 127.0.0.1:<status_port> from the node's loop:
 *   GET /             the HTML page (inline SVG chart, no external resources)
 *   GET /status.json  the JSON document
 *   GET /metrics      Prometheus text
 * Anything else: 404 (unknown path), 405 (method other than GET), 400 (malformed), 431 (head
 * over KW_HTTP_REQ_MAX), 505 (not HTTP/1.x), 408 (no whole head within STATUS_READ_TIMEOUT_MS),
 * 503 (all CONFIG_KW_STATUS_CLIENTS busy). Every answer closes the connection (after a
 * lingering close: see STATUS_LINGER_MS). Each refusal is
 * counted (metrics errors_total{reason="http_..."}); the node keeps serving everyone else.
 *
 * Owns: struct kw_status (ring, snapshot scratch, counters) and CONFIG_KW_STATUS_CLIENTS
 * client slots (request head and response buffer each) from the node's arena; the listening
 * socket. Nothing is allocated per request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/version.h>
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "status.h"
#ifdef CONFIG_KW_APP_AVERAGING
#include "avg_app.h"
#endif
#ifdef CONFIG_KW_APP_SERVE
#include "serve.h"
#endif
#ifdef CONFIG_KW_NET_HIVEMIND_REACH
#include "reach.h"
#endif

#define STATUS_READ_TIMEOUT_MS 5000u
#define STATUS_TICK_MS 1000u
#define STATUS_HDR_RESERVE 512   /* room before the body for the status line and headers */
#define STATUS_BODY_MAX (64 * 1024)

enum sc_state { SC_FREE, SC_READ, SC_WRITE, SC_LINGER };

/*
 * After an answer to a request whose bytes were not all read (a 431, a 400 mid-head), closing
 * at once would make the kernel reset the connection and the client could lose the answer:
 * the write side is shut and input discarded until EOF or this long (RFC 9112 section 9.6).
 */
#define STATUS_LINGER_MS 1000u

struct status_client {
	struct kw_status *st;
	int fd;
	uint8_t state;
	struct kw_watch w;
	struct kw_timer timer;
	size_t rlen, wlen, woff;
	char rbuf[KW_HTTP_REQ_MAX + 1];
	char wbuf[STATUS_HDR_RESERVE + STATUS_BODY_MAX];
};

struct kw_status {
	struct kw_node *n;
	struct kw_app *app;
	uint64_t start_ms;
	struct kw_timer tick;
	uint32_t ticks;
	/* the counters at the previous tick / sample, for deltas */
	uint64_t prev_streams_in, sample_streams_in, sample_bytes;
	uint64_t last_request_ms;
	uint64_t inbound_remote, last_inbound_remote_ms;
	struct kw_conn_watcher watcher;
	/* HTTP counters (snapshot fields of the same names) */
	uint64_t http_requests, http_bad_request, http_not_found, http_bad_method, http_too_large,
		http_timeout, http_busy;
	int fd;
	struct kw_watch w;
	struct kw_status_snap snap;          /* scratch for one render */
	struct kw_multiaddr ma;              /* scratch for address printing */
	struct kw_status_ring ring;
	struct status_client *cl;            /* CONFIG_KW_STATUS_CLIENTS slots */
};

struct kw_status *kw_status_of(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	return app ? app->status : NULL;
}

static uint64_t uptime_ms(const struct kw_status *st)
{
	return kw_loop_now(&st->n->loop) - st->start_ms;
}

/* ---- collecting ---- */

struct pool_ctx {
	struct kw_status_snap *s;
};

static void add_pool(const struct kw_pool *p, void *arg)
{
	struct kw_status_snap *s = ((struct pool_ctx *)arg)->s;
	struct kw_pool_stats ps;
	struct kw_status_pool *d;

	if (s->n_pools >= KW_STATUS_POOLS)
		return;
	kw_pool_get_stats(p, &ps);
	d = &s->pools[s->n_pools++];
	d->name = ps.name;
	d->used = (uint32_t)ps.used;
	d->high = (uint32_t)ps.high;
	d->count = (uint32_t)ps.count;
	d->fails = (uint32_t)ps.fails;
}

#ifdef CONFIG_KW_NET_SWARM
struct obs_ctx {
	struct kw_status *st;
	struct kw_status_snap *s;
};

static void add_observed(struct kw_conn *c, void *arg)
{
	struct obs_ctx *o = arg;
	const struct kw_identify_remote *r = kw_identify_remote(o->st->app->id, c);
	char text[KW_STATUS_ADDR_MAX];
	uint32_t i;

	if (!r || !r->have || !r->observed_len || o->s->n_observed >= KW_STATUS_ADDRS)
		return;
	if (kw_maddr_from_bytes(r->observed, r->observed_len, &o->st->ma, NULL, 0) < 0 ||
	    kw_maddr_to_text(&o->st->ma, text, sizeof(text)) < 0)
		return;
	for (i = 0; i < o->s->n_observed; i++)
		if (!strcmp(o->s->observed[i], text))
			return;
	memcpy(o->s->observed[o->s->n_observed++], text, sizeof(text));
}
#endif

/* This host's IPv4 interface addresses, without allocating (getifaddrs would). */
static void local_addrs(struct kw_status_snap *s)
{
	struct ifreq ifr[16];
	struct ifconf ifc;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	size_t i, n;

	if (fd < 0)
		return;
	ifc.ifc_len = sizeof(ifr);
	ifc.ifc_req = ifr;
	if (ioctl(fd, SIOCGIFCONF, &ifc) == 0) {
		n = (size_t)ifc.ifc_len / sizeof(ifr[0]);
		for (i = 0; i < n && s->n_local < KW_STATUS_ADDRS; i++) {
			struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ifr[i].ifr_addr;

			if (sin->sin_family == AF_INET)
				inet_ntop(AF_INET, &sin->sin_addr, s->local[s->n_local++],
					  sizeof(s->local[0]));
		}
	}
	close(fd);
}

void kw_status_collect(struct kw_status *st, struct kw_status_snap *s)
{
	struct kw_app *app = st->app;
	struct pool_ctx pc = { s };

	memset(s, 0, offsetof(struct kw_status_snap, pools));
	snprintf(s->version, sizeof(s->version), "%s", KW_VERSION_STRING);
	s->uptime_ms = uptime_ms(st);
	s->temp_mc = INT32_MIN;
	s->battery_pct = -1;
	s->ac = -1;
#ifdef CONFIG_KW_NET_SWARM
	if (app->sw) {
		struct kw_swarm_stats ss;
		struct obs_ctx oc = { st, s };
		size_t i;

		kw_peer_id_to_text(kw_swarm_peer_id(app->sw), s->peer_id, sizeof(s->peer_id));
		for (i = 0; i < kw_swarm_listen_count(app->sw) && s->n_listen < KW_STATUS_ADDRS; i++)
			if (kw_swarm_listen_addr(app->sw, i, s->listen[s->n_listen],
						 sizeof(s->listen[0])) == 0)
				s->n_listen++;
		if (app->id)
			kw_swarm_foreach_conn(app->sw, add_observed, &oc);
		kw_swarm_get_stats(app->sw, &ss);
		s->conns_in = ss.conns_in;
		s->conns_out = ss.conns_out;
		s->conns_up = ss.conns_up;
		s->conns_accepted = ss.conns_accepted;
		s->conns_dialed = ss.conns_dialed;
		s->bytes_in = ss.bytes_in;
		s->bytes_out = ss.bytes_out;
		s->requests = ss.streams_in;
		s->conns_failed = ss.conns_failed;
		s->conns_aborted = ss.conns_aborted;
		s->conns_refused_limit = ss.conns_refused_limit;
		s->streams_refused = ss.streams_refused;
		s->negotiations_failed = ss.negotiations_failed;
		s->frame_timeouts = ss.frame_timeouts;
	}
#endif
	for (int a = 0; a < app->cfg.n_announce && s->n_announce < KW_STATUS_ADDRS; a++)
		snprintf(s->announce[s->n_announce++], sizeof(s->announce[0]), "%s",
			 app->cfg.announce[a]);
#ifdef CONFIG_KW_NET_HIVEMIND_REACH
	{
		struct kw_app_reach_view v;

		kw_app_reach_view(app, &v);
		s->dial_have = v.have;
		s->dial_reachable = v.reachable;
		s->dial_asked = v.asked;
		s->dial_answered = v.answered;
		s->dial_available = v.available;
		s->dial_at_ms = v.at_ms > st->start_ms ? v.at_ms - st->start_ms : 0;
	}
#endif
#ifdef CONFIG_KW_APP_SERVE
	if (app->serve) {
		struct kw_serve_desc d;
		struct kw_serve_stats ss;

		kw_serve_describe(app->serve, &d);
		if (d.has_blocks && s->n_served < KW_STATUS_SERVED)
			snprintf(s->served[s->n_served++], sizeof(s->served[0]), "%s.%u..%u",
				 d.block_prefix, d.start_block, d.end_block - 1);
		for (size_t e = 0; e < d.n_experts && e < 8 && s->n_served < KW_STATUS_SERVED; e++)
			snprintf(s->served[s->n_served++], sizeof(s->served[0]), "%s",
				 d.expert_uid[e]);
		kw_serve_get_stats(app->serve, &ss);
		s->served_calls = ss.calls;
		s->served_errors = ss.errors;
	}
#endif
	snprintf(s->avg_state, sizeof(s->avg_state), "off");
#ifdef CONFIG_KW_APP_AVERAGING
	if (app->avg) {
		struct kw_app_avgd_view v;

		kw_app_avgd_view(app->avg, &v);
		snprintf(s->avg_state, sizeof(s->avg_state), "%s", v.state);
		s->avg_rounds = v.rounds;
		s->avg_last_group = v.last_group;
		s->avg_last_round_ms = v.last_round_ms;
		s->avg_last_done_ms = v.last_done_ms > st->start_ms ? v.last_done_ms - st->start_ms :
				      v.last_done_ms ? 1 : 0;
		s->avg_no_group = v.no_group;
		s->avg_round_failed = v.round_failed;
		s->avg_peers_excluded = v.peers_excluded;
		s->avg_withdrawn = v.withdrawals;
		s->avg_write_failed = v.write_failed;
		s->avg_read_failed = v.read_missing + v.read_size + v.read_io;
	}
#endif
	s->last_request_ms = st->last_request_ms;
	s->inbound_remote = st->inbound_remote;
	s->last_inbound_remote_ms = st->last_inbound_remote_ms;
	local_addrs(s);
	if (app->policy) {
		const struct kw_policy_status *ps = kw_policy_status(app->policy);

		s->have_policy = true;
		s->state = ps->state;
		snprintf(s->reason, sizeof(s->reason), "%s", ps->reason);
		snprintf(s->detail, sizeof(s->detail), "%s", ps->detail);
		s->state_since_ms = ps->since_ms > st->start_ms ? ps->since_ms - st->start_ms : 0;
		s->transitions = ps->transitions;
		s->sensor_errors = ps->sensor_errors;
		if (ps->last.have_temp)
			s->temp_mc = ps->last.temp_mc;
		s->battery_pct = ps->last.battery_pct;
		s->ac = ps->last.ac;
	}
	s->http_requests = st->http_requests;
	s->http_bad_request = st->http_bad_request;
	s->http_not_found = st->http_not_found;
	s->http_bad_method = st->http_bad_method;
	s->http_too_large = st->http_too_large;
	s->http_timeout = st->http_timeout;
	s->http_busy = st->http_busy;
	s->arena_used = st->n->arena.used;
	s->arena_size = st->n->arena.size;
	kw_node_pools_foreach(st->n, add_pool, &pc);
	kw_status_reach(s);
}

/* ---- sampling ---- */

/* Inbound streams and bytes both ways so far (0 without networking). */
static void counters(struct kw_status *st, uint64_t *streams, uint64_t *bytes)
{
	*streams = *bytes = 0;
#ifdef CONFIG_KW_NET_SWARM
	if (st->app->sw) {
		struct kw_swarm_stats ss;

		kw_swarm_get_stats(st->app->sw, &ss);
		*streams = ss.streams_in;
		*bytes = ss.bytes_in + ss.bytes_out;
	}
#endif
}

/* One sample into the ring: the deltas since the previous one and the sensors now. */
static void take_sample(struct kw_status *st, uint64_t streams, uint64_t bytes)
{
	struct kw_status_sample x;

	memset(&x, 0, sizeof(x));
	x.t_s = (uint32_t)(uptime_ms(st) / 1000);
	x.requests = (uint32_t)(streams - st->sample_streams_in);
	x.kib = (uint32_t)((bytes - st->sample_bytes + 1023) / 1024);
	x.temp_mc = INT32_MIN;
	x.battery_pct = -1;
	x.state = KW_POLICY_PAUSED;
	if (st->app->policy) {
		const struct kw_policy_status *ps = kw_policy_status(st->app->policy);

		if (ps->last.have_temp)
			x.temp_mc = ps->last.temp_mc;
		x.battery_pct = ps->last.battery_pct;
		x.state = (uint8_t)ps->state;
	}
	kw_status_ring_push(&st->ring, &x);
	st->sample_streams_in = streams;
	st->sample_bytes = bytes;
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_status *st = t->arg;
	uint64_t streams, bytes;

	counters(st, &streams, &bytes);
	if (streams != st->prev_streams_in)
		st->last_request_ms = uptime_ms(st);
	st->prev_streams_in = streams;
	if (++st->ticks % CONFIG_KW_STATUS_SAMPLE_S == 0)
		take_sample(st, streams, bytes);
	kw_timer_start(l, t, STATUS_TICK_MS);
}

#ifdef CONFIG_KW_NET_SWARM
/* An inbound connection from an address other than loopback: someone could dial us. */
static void on_conn_up(struct kw_swarm *sw, struct kw_conn *c, void *arg)
{
	struct kw_status *st = arg;
	const uint8_t *ma;
	size_t len;

	if (kw_conn_outbound(c) || kw_conn_remote_addr(c, &ma, &len) < 0 || len < 1)
		return;
	/* binary multiaddr: code 0x04 ip4 + 4 bytes, code 0x29 ip6 + 16 bytes */
	if (ma[0] == 0x04 && len >= 5 && ma[1] == 127)
		return;
	if (ma[0] == 0x29 && len >= 17 &&
	    !memcmp(ma + 1, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16))
		return;
	st->inbound_remote++;
	st->last_inbound_remote_ms = uptime_ms(st);
}
#endif

/* ---- the control socket's `status` ---- */

long kw_status_control_reply(struct kw_status *st, char *out, size_t cap)
{
	static char text[8192];  /* one render at a time: the loop is single-threaded */
	struct kw_status_snap *s = &st->snap;
	size_t off;
	long n;
	char *p, *nl;

	kw_status_collect(st, s);
	if (cap < 16)
		return -KW_ENOSPC;
	memcpy(out, "json ", 5);
	n = kw_status_render_json(s, out + 5, cap - 5);
	if (n < 0)
		return n;
	off = 5 + (size_t)n;  /* the JSON ends in '\n' */
	n = kw_status_render_text(s, text, sizeof(text));
	if (n < 0)
		return n;
	for (p = text; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		if (off + 5 + (size_t)(nl - p) + 1 >= cap)
			return -KW_ENOSPC;
		memcpy(out + off, "text ", 5);
		memcpy(out + off + 5, p, (size_t)(nl - p) + 1);
		off += 5 + (size_t)(nl - p) + 1;
	}
	n = snprintf(out + off, cap - off, "exit %d\n", kw_status_exit_code(s));
	if (n < 0 || (size_t)n >= cap - off)
		return -KW_ENOSPC;
	return (long)(off + (size_t)n);
}

/* ---- HTTP ---- */

static void sc_close(struct status_client *c)
{
	struct kw_loop *l = &c->st->n->loop;

	kw_timer_cancel(l, &c->timer);
	if (c->fd >= 0) {
		kw_loop_unwatch(l, &c->w);
		close(c->fd);
		c->fd = -1;
	}
	c->state = SC_FREE;
}

static void sc_flush(struct status_client *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			kw_loop_watch_mod(&c->st->n->loop, &c->w, KW_EV_WRITE);
			return;
		}
		if (n <= 0) {
			sc_close(c);  /* the client went away */
			return;
		}
		c->woff += (size_t)n;
	}
	shutdown(c->fd, SHUT_WR);
	c->state = SC_LINGER;
	kw_loop_watch_mod(&c->st->n->loop, &c->w, KW_EV_READ);
	kw_timer_start(&c->st->n->loop, &c->timer, STATUS_LINGER_MS);
}

/* Sends status line + headers + the body already at wbuf[STATUS_HDR_RESERVE..+blen). */
static void sc_send(struct status_client *c, int code, const char *reason, const char *type,
		    size_t blen)
{
	char hdr[STATUS_HDR_RESERVE];
	int h = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 /* the page is self-contained: the browser may fetch nothing */
			 "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
			 "script-src 'unsafe-inline'\r\n"
			 "%sConnection: close\r\n\r\n", code, reason, type,
			 blen, code == 405 ? "Allow: GET\r\n" : "");

	if (h < 0 || (size_t)h >= sizeof(hdr))
		h = 0;
	memcpy(c->wbuf + STATUS_HDR_RESERVE - h, hdr, (size_t)h);
	c->woff = STATUS_HDR_RESERVE - (size_t)h;
	c->wlen = STATUS_HDR_RESERVE + blen;
	c->state = SC_WRITE;
	kw_timer_cancel(&c->st->n->loop, &c->timer);
	kw_timer_start(&c->st->n->loop, &c->timer, STATUS_READ_TIMEOUT_MS);  /* write deadline */
	sc_flush(c);
}

static void sc_error(struct status_client *c, int code, const char *reason, uint64_t *counter)
{
	int n = snprintf(c->wbuf + STATUS_HDR_RESERVE, STATUS_BODY_MAX, "%d %s\n", code, reason);

	(*counter)++;
	KW_LOG_DBG(status, "HTTP %d %s", code, reason);
	sc_send(c, code, reason, "text/plain; charset=utf-8", (size_t)n);
}

static void sc_answer(struct status_client *c, const struct kw_http_req *req)
{
	struct kw_status *st = c->st;
	char *body = c->wbuf + STATUS_HDR_RESERVE;
	const char *type;
	long n;

	if (!req->get) {
		sc_error(c, 405, "Method Not Allowed", &st->http_bad_method);
		return;
	}
	if (req->route == KW_HTTP_NOT_FOUND) {
		sc_error(c, 404, "Not Found", &st->http_not_found);
		return;
	}
	kw_status_collect(st, &st->snap);
	st->snap.http_requests++;  /* this one counts */
	switch (req->route) {
	case KW_HTTP_JSON:
		n = kw_status_render_json(&st->snap, body, STATUS_BODY_MAX);
		type = "application/json";
		break;
	case KW_HTTP_METRICS:
		n = kw_status_render_metrics(&st->snap, body, STATUS_BODY_MAX);
		type = "text/plain; version=0.0.4; charset=utf-8";
		break;
	default:
		n = kw_status_render_html(&st->snap, &st->ring, body, STATUS_BODY_MAX);
		type = "text/html; charset=utf-8";
		break;
	}
	if (n < 0) {
		KW_LOG_WRN(status, "status page does not fit %u bytes; answering 500",
			   STATUS_BODY_MAX);
		n = snprintf(body, STATUS_BODY_MAX, "500 status too large\n");
		sc_send(c, 500, "Internal Server Error", "text/plain; charset=utf-8", (size_t)n);
		return;
	}
	st->http_requests++;
	sc_send(c, 200, "OK", type, (size_t)n);
}

static void sc_io(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct status_client *c = w->arg;
	struct kw_status *st = c->st;
	struct kw_http_req req;
	ssize_t n;
	int ret;

	if (c->state == SC_WRITE) {
		sc_flush(c);
		return;
	}
	if (c->state == SC_LINGER) {
		n = read(c->fd, c->rbuf, KW_HTTP_REQ_MAX);  /* discarded */
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			sc_close(c);
		return;
	}
	if (c->state != SC_READ)
		return;
	n = read(c->fd, c->rbuf + c->rlen, KW_HTTP_REQ_MAX - c->rlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		sc_close(c);
		return;
	}
	c->rlen += (size_t)n;
	ret = kw_http_parse(c->rbuf, c->rlen, &req);
	if (ret == -KW_EAGAIN)
		return;
	kw_loop_watch_mod(l, &c->w, 0);  /* one request per connection: read no more */
	if (ret == -KW_EMSGSIZE)
		sc_error(c, 431, "Request Header Fields Too Large", &st->http_too_large);
	else if (ret == -KW_ENOTSUP)
		sc_error(c, 505, "HTTP Version Not Supported", &st->http_bad_request);
	else if (ret < 0)
		sc_error(c, 400, "Bad Request", &st->http_bad_request);
	else
		sc_answer(c, &req);
}

static void sc_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct status_client *c = t->arg;

	if (c->state == SC_READ) {
		kw_loop_watch_mod(l, &c->w, 0);
		sc_error(c, 408, "Request Timeout", &c->st->http_timeout);
	} else if (c->state == SC_WRITE) {
		c->st->http_timeout++;
		sc_close(c);  /* a client that stopped reading */
	} else if (c->state == SC_LINGER) {
		sc_close(c);
	}
}

static void on_accept(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct kw_status *st = w->arg;

	for (;;) {
		struct status_client *c = NULL;
		int fd = accept4(st->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int i;

		if (fd < 0)
			return;
		for (i = 0; i < CONFIG_KW_STATUS_CLIENTS; i++)
			if (st->cl[i].state == SC_FREE) {
				c = &st->cl[i];
				break;
			}
		if (!c) {
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
				"Content-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

			st->http_busy++;
			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* best effort: the client sees the close either way */
			}
			close(fd);
			continue;
		}
		c->fd = fd;
		c->rlen = 0;
		c->state = SC_READ;
		if (kw_loop_watch(l, &c->w, fd, KW_EV_READ, sc_io, c) < 0) {
			close(fd);
			c->fd = -1;
			c->state = SC_FREE;
			continue;
		}
		kw_timer_start(l, &c->timer, STATUS_READ_TIMEOUT_MS);
	}
}

static int http_listen(struct kw_status *st, uint32_t port)
{
	struct sockaddr_in sa;
	int one = 1, ret = 0;

	st->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (st->fd < 0)
		return -errno;
	setsockopt(st->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  /* localhost only, by design */
	if (bind(st->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(st->fd, 8) < 0)
		ret = -errno;
	if (ret == 0)
		ret = kw_loop_watch(&st->n->loop, &st->w, st->fd, KW_EV_READ, on_accept, st);
	if (ret < 0) {
		close(st->fd);
		st->fd = -1;
	}
	return ret;
}

int kw_app_status_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_status *st;
	int i, ret;

	st = kw_arena_alloc(&n->arena, sizeof(*st), 16);
	if (!st)
		return -KW_ENOMEM;
	st->n = n;
	st->app = app;
	st->fd = -1;
	st->start_ms = kw_loop_now(&n->loop);
	kw_status_ring_reset(&st->ring);
	take_sample(st, 0, 0);  /* the state at start: the chart is never empty */
	kw_timer_init(&st->tick, on_tick, st);
	ret = kw_timer_start(&n->loop, &st->tick, STATUS_TICK_MS);
	if (ret < 0)
		return ret;
#ifdef CONFIG_KW_NET_SWARM
	if (app->sw) {
		st->watcher.on_up = on_conn_up;
		st->watcher.arg = st;
		kw_swarm_add_watcher(app->sw, &st->watcher);
	}
#endif
	app->status = st;
	if (!app->cfg.status_port)
		return 0;
	st->cl = kw_arena_alloc(&n->arena, sizeof(*st->cl) * CONFIG_KW_STATUS_CLIENTS, 16);
	if (!st->cl) {
		KW_LOG_WRN(status, "arena too small for the status endpoint's %d clients: endpoint "
			   "off", CONFIG_KW_STATUS_CLIENTS);
		return 0;
	}
	for (i = 0; i < CONFIG_KW_STATUS_CLIENTS; i++) {
		st->cl[i].st = st;
		st->cl[i].fd = -1;
		kw_timer_init(&st->cl[i].timer, sc_timeout, &st->cl[i]);
	}
	ret = http_listen(st, app->cfg.status_port);
	if (ret < 0) {
		/* the node's work is the network: a taken status port must not stop it */
		KW_LOG_WRN(status, "status endpoint 127.0.0.1:%u: %s; running without it (set "
			   "status_port to a free port, 0 for none)", app->cfg.status_port,
			   kw_strerror(ret));
		return 0;
	}
	KW_LOG_INF(status, "status page http://127.0.0.1:%u/ (also /status.json, /metrics)",
		   app->cfg.status_port);
	return 0;
}

void kw_app_status_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_status *st = app ? app->status : NULL;
	int i;

	if (!st)
		return;
	kw_timer_cancel(&n->loop, &st->tick);
	if (st->cl)
		for (i = 0; i < CONFIG_KW_STATUS_CLIENTS; i++)
			if (st->cl[i].state != SC_FREE)
				sc_close(&st->cl[i]);
	if (st->fd >= 0) {
		kw_loop_unwatch(&n->loop, &st->w);
		close(st->fd);
		st->fd = -1;
	}
	app->status = NULL;
}
