/*
 * /ipfs/ping/1.0.0 listener and client (kw/net/ping.h). The listener keeps one small pooled
 * record per inbound stream only to enforce KW_PING_MAX_INBOUND per connection.
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/rng.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

struct ping_srv {
	struct kw_conn *c;
	struct kw_stream *s;
};

struct ping_state {
	struct kw_pool srv;
};

/* ---- listener ---------------------------------------------------------------------------- */

static size_t srv_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	long n = kw_stream_write(s, data, len);

	if (n < 0) {
		kw_stream_reset(s);
		return len;
	}
	return (size_t)n;  /* the rest stays in the muxer until on_writable */
}

static void srv_on_eof(struct kw_stream *s)
{
	kw_stream_close_write(s);
}

static void srv_on_writable(struct kw_stream *s)
{
	kw_stream_resume(s);
}

static const struct kw_stream_handler srv_handler;

static int count_conn(const struct kw_pool *pool, const struct kw_conn *c)
{
	size_t i;
	int n = 0;

	for (i = 0; i < pool->count; i++) {
		const struct ping_srv *ps = (const struct ping_srv *)(pool->storage + i * pool->stride);

		if (ps->c == c && ps->s)
			n++;
	}
	return n;
}

static void srv_close(struct kw_stream *s, int reason);

static int srv_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	struct ping_state *st = (struct ping_state *)arg;
	struct kw_conn *c = kw_stream_conn(s);
	struct ping_srv *ps;

	if (count_conn(&st->srv, c) >= KW_PING_MAX_INBOUND)
		return -KW_ELIMIT;
	ps = (struct ping_srv *)kw_pool_alloc(&st->srv);
	if (!ps)
		return -KW_ELIMIT;
	ps->c = c;
	ps->s = s;
	s->h = &srv_handler;
	s->user = st;
	return 0;
}

static struct ping_srv *srv_find(struct ping_state *st, const struct kw_stream *s)
{
	size_t i;

	for (i = 0; i < st->srv.count; i++) {
		struct ping_srv *ps = (struct ping_srv *)(st->srv.storage + i * st->srv.stride);

		if (ps->s == s)
			return ps;
	}
	return NULL;
}

static void srv_close(struct kw_stream *s, int reason)
{
	struct ping_state *st = (struct ping_state *)s->user;
	struct ping_srv *ps = srv_find(st, s);

	if (ps) {
		ps->s = NULL;
		ps->c = NULL;
		kw_pool_free(&st->srv, ps);
	}
}

static const struct kw_stream_handler srv_handler = {
	.on_data = srv_on_data,
	.on_eof = srv_on_eof,
	.on_writable = srv_on_writable,
	.on_close = srv_close,
};

int kw_ping_register(struct kw_swarm *sw)
{
	struct kw_node *n = kw_swarm_node(sw);
	struct ping_state *st;
	int ret;

	st = (struct ping_state *)kw_arena_alloc(&n->arena, sizeof(*st), 16);
	if (!st)
		return -KW_ENOMEM;
	memset(st, 0, sizeof(*st));
	ret = kw_node_pool_create(n, &st->srv, "ping_srv", sizeof(struct ping_srv),
				  (size_t)CONFIG_KW_NET_PING_INBOUND_MAX);
	if (ret < 0)
		return ret;
	return kw_swarm_register(sw, KW_PING_PROTO, srv_accept, st);
}

/* ---- client ------------------------------------------------------------------------------ */

static uint64_t now_us(struct kw_ping *p)
{
	if (p->clock_us)
		return p->clock_us(p->clock_arg);
	return kw_loop_update_time(&kw_swarm_node(p->sw)->loop) * 1000u;
}

static void finish(struct kw_ping *p, int err)
{
	kw_ping_cb cb = p->cb;

	if (!p->active)
		return;
	p->active = false;
	kw_timer_cancel(&kw_swarm_node(p->sw)->loop, &p->timer);
	cb(p, p->seq, 0, err, true);
}

static void send_one(struct kw_ping *p)
{
	long n;

	if (kw_rng_bytes(p->sent, sizeof(p->sent)) < 0) {
		kw_stream_reset(p->s);
		return;
	}
	p->got_len = 0;
	p->t_sent = now_us(p);
	n = kw_stream_write(p->s, p->sent, sizeof(p->sent));
	if (n != (long)sizeof(p->sent)) {
		kw_stream_reset(p->s);  /* a fresh stream has a 256 KiB window: short = broken */
		return;
	}
	p->n_sent++;
	p->waiting = true;
	kw_timer_start(&kw_swarm_node(p->sw)->loop, &p->timer, KW_PING_TIMEOUT_MS);
}

/* Either the interval before the next ping or the reply deadline of the current one. */
static void on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_ping *p = (struct kw_ping *)t->arg;

	if (!p->s || p->closing)
		return;
	if (p->waiting) {
		KW_LOG_WRN(ping, "%s: no reply within %u ms; resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(p->s)), KW_PING_TIMEOUT_MS);
		p->timed_out = true;
		p->closing = true;
		kw_stream_reset(p->s);
		return;
	}
	send_one(p);
}

static size_t cli_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct kw_ping *p = (struct kw_ping *)s->user;
	size_t take = KW_PING_SIZE - p->got_len;
	uint64_t rtt;

	if (p->closing || take == 0) {
		KW_LOG_WRN(ping, "%s sent unrequested ping bytes; resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(s)));
		kw_stream_reset(s);
		return len;
	}
	if (take > len)
		take = len;
	memcpy(p->got + p->got_len, data, take);
	p->got_len = (uint8_t)(p->got_len + take);
	if (p->got_len < KW_PING_SIZE)
		return take;
	if (memcmp(p->got, p->sent, KW_PING_SIZE) != 0) {
		KW_LOG_WRN(ping, "%s echoed different bytes; resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(s)));
		kw_stream_reset(s);
		return len;
	}
	rtt = now_us(p) - p->t_sent;
	p->waiting = false;
	kw_timer_cancel(&kw_swarm_node(p->sw)->loop, &p->timer);
	p->seq++;
	p->cb(p, p->seq, rtt, 0, false);
	if (p->seq >= p->count) {
		p->closing = true;
		kw_stream_close_write(s);
	} else if (p->interval_ms == 0) {
		send_one(p);
	} else {
		kw_timer_start(&kw_swarm_node(p->sw)->loop, &p->timer, p->interval_ms);
	}
	return take;
}

static void cli_on_eof(struct kw_stream *s)
{
	struct kw_ping *p = (struct kw_ping *)s->user;

	if (!p->closing) {
		p->closing = true;
		kw_stream_close_write(s);
	}
}

static void cli_on_close(struct kw_stream *s, int reason)
{
	struct kw_ping *p = (struct kw_ping *)s->user;

	p->s = NULL;
	if (p->timed_out)
		reason = -KW_ETIMEDOUT;
	else if (reason == 0 && p->seq < p->count)
		reason = -KW_EPIPE;  /* the listener closed before answering everything */
	finish(p, reason);
}

static const struct kw_stream_handler cli_handler = {
	.on_data = cli_on_data,
	.on_eof = cli_on_eof,
	.on_close = cli_on_close,
};

static void on_open(struct kw_stream *s, int err, void *user)
{
	struct kw_ping *p = (struct kw_ping *)user;

	if (err < 0) {
		finish(p, err);
		return;
	}
	p->s = s;
	if (p->closing) {  /* cancelled while negotiating */
		kw_stream_reset(s);
		return;
	}
	send_one(p);
}

int kw_ping_start(struct kw_ping *p, struct kw_swarm *sw, struct kw_conn *c, uint32_t count,
		  uint32_t interval_ms, kw_ping_cb cb, void *user)
{
	int ret;

	if (!p || !sw || !c || !cb || count == 0)
		return -KW_EINVAL;
	if (p->active)
		return -KW_EBUSY;
	memset(p->sent, 0, sizeof(p->sent));
	p->sw = sw;
	p->s = NULL;
	p->cb = cb;
	p->user = user;
	p->count = count;
	p->seq = 0;
	p->n_sent = 0;
	p->interval_ms = interval_ms;
	p->got_len = 0;
	p->closing = false;
	p->waiting = false;
	p->timed_out = false;
	kw_timer_init(&p->timer, on_timer, p);
	ret = kw_swarm_open_stream(sw, c, KW_PING_PROTO, &cli_handler, p, on_open);
	if (ret < 0)
		return ret;
	p->active = true;
	return 0;
}

void kw_ping_cancel(struct kw_ping *p)
{
	if (!p->active)
		return;
	p->closing = true;
	kw_timer_cancel(&kw_swarm_node(p->sw)->loop, &p->timer);
	if (p->s)
		kw_stream_reset(p->s);  /* on_close reports -KW_ECONNRESET with done */
}
