/*
 * The swarm's socket side: listeners, dials, the connection pool, socket buffers borrowed on
 * demand (an idle connection holds none), limits and timers, graceful drain, extension slots
 * and the public API over the registry (registry.c). The byte pipeline above the socket
 * (mss, Noise, yamux) lives in upgrade.c and reaches a connection only through g_conn_ops;
 * per-stream negotiation is net/mss.
 */
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/net/swarm.h>

#include "swarm_priv.h"

static void ext_release(struct kw_conn *c);
static int upgrade_start(struct kw_conn *c);

/* ---- small helpers -------------------------------------------------------------------- */

_Static_assert(KW_SW_ADDR_LABEL_MAX >= KW_PEER_ID_SHORT_MAX,
	       "a connection label also holds the short peer id");

static void set_label_from_addr(struct kw_conn *c)
{
	if (kw_sw_addr_label(c->raddr, c->raddr_len, c->label, sizeof(c->label)) < 0)
		snprintf(c->label, sizeof(c->label), "?");
}

/* ---- buffers ---------------------------------------------------------------------------- */

/*
 * The socket buffers (KW_NET_SWARM_BUFFERS of KW_SWARM_BUF_SIZE) are lent, never owned: rxb
 * while received bytes are unconsumed (the body of a Noise frame still arriving: headers
 * live in the Noise session), txb while output is queued. An upgraded connection keeps its
 * empty ones KW_SWARM_BUF_LINGER_MS for the next burst; a connection in its handshake returns
 * them at the end of each dispatch and, with all other handshakes, may hold at most
 * bufs_hs_max of them (the rest is kept for upgraded connections). A connection that finds
 * none free for it waits in a FIFO, with its fd no longer watched for reads (TCP
 * back-pressure holds the peer), and bq_task serves the queue whenever buffers come back.
 */

static void conn_update_watch(struct kw_conn *c);

/* Buffers c may borrow now: the free ones, within the handshakes' share for a handshake. */
static uint32_t bufs_free_for(const struct kw_conn *c)
{
	const struct kw_swarm *sw = c->sw;
	uint32_t n = (uint32_t)(sw->bufs.count - sw->bufs.used);

	if (!c->buf_up)
		n = KW_MIN(n, sw->bufs_hs < sw->bufs_hs_max ? sw->bufs_hs_max - sw->bufs_hs : 0);
	return n;
}

/* True if c may take `need` buffers now: they are free for it and no connection that could
 * use them waits before it (FIFO; bq_task lets the one it serves pass). */
static bool may_take(const struct kw_conn *c, uint8_t need)
{
	const struct kw_conn *w;

	if (bufs_free_for(c) < need)
		return false;
	if (c->bq_queued)
		return false;  /* its turn comes from bq_task */
	if (c == c->sw->bq_serving)
		return true;
	for (w = c->sw->bq_head; w; w = w->bq_next)
		if (w->buf_up || !c->buf_up)
			return false;  /* an upgraded waiter goes first; handshakes queue in order */
	return true;
}

static uint8_t *buf_take(struct kw_conn *c)
{
	uint8_t *p = (uint8_t *)kw_pool_alloc(&c->sw->bufs);

	if (p) {
		c->nbufs++;
		if (!c->buf_up)
			c->sw->bufs_hs++;
	}
	return p;
}

static void buf_put(struct kw_conn *c, uint8_t *p)
{
	struct kw_swarm *sw = c->sw;

	kw_pool_free(&sw->bufs, p);
	c->nbufs--;
	if (!c->buf_up)
		sw->bufs_hs--;
	if (sw->bq_head)
		kw_task_post(sw->loop, &sw->bq_task);  /* nobody waits longer than needed */
}

static void bq_remove(struct kw_conn *c)
{
	struct kw_swarm *sw = c->sw;

	struct kw_conn **pp, *prev = NULL;

	if (!c->bq_queued)
		return;
	/* singly linked (the object stays small); the queue is short and this is rare */
	for (pp = &sw->bq_head; *pp && *pp != c; pp = &(*pp)->bq_next)
		prev = *pp;
	if (*pp)
		*pp = c->bq_next;
	if (sw->bq_tail == c)
		sw->bq_tail = prev;
	c->bq_next = NULL;
	c->bq_queued = false;
}

/* c needs `need` buffers and finds none for it: it waits (once in the queue), reads paused. */
static void bq_wait(struct kw_conn *c, uint8_t need)
{
	struct kw_swarm *sw = c->sw;

	c->bq_need = need;
	if (!c->bq_queued) {
		c->bq_queued = true;
		c->bq_next = NULL;
		if (sw->bq_tail)
			sw->bq_tail->bq_next = c;
		else
			sw->bq_head = c;
		sw->bq_tail = c;
		sw->st.buf_waits++;
		KW_LOG_DBG(swarm, "%s: no socket buffer free; waiting for one with reads paused",
			   c->label);
	}
	if (!c->in_io)
		conn_update_watch(c);
}

/*
 * A receive buffer to read into. A handshake borrows its send buffer with it, so the answer
 * to what it reads never waits for a buffer while it holds input (no hold-and-wait among
 * handshakes). False: c waits in the queue.
 */
static bool take_rx(struct kw_conn *c)
{
	uint8_t need;

	if (c->rxb)
		return true;
	need = !c->buf_up && !c->txb ? 2 : 1;
	if (!may_take(c, need)) {
		bq_wait(c, need);
		return false;
	}
	c->rxb = buf_take(c);
	c->rx_off = c->rx_len = 0;
	if (need == 2) {
		c->txb = buf_take(c);
		c->tx_off = c->tx_len = 0;
	}
	return true;
}

static bool take_tx(struct kw_conn *c)
{
	if (c->txb)
		return true;
	if (!may_take(c, 1)) {
		bq_wait(c, 1);
		return false;
	}
	c->txb = buf_take(c);
	c->tx_off = c->tx_len = 0;
	return true;
}

/* Nothing unconsumed in rxb, and no plaintext yamux still reads from it. */
static bool rx_empty(const struct kw_conn *c)
{
	return c->rx_off == c->rx_len && kw_upgrade_can_read(&c->up);
}

/* Returns empty buffers to the pool (zeroing a 64 KiB block on every borrow would cost a
 * few percent of throughput, so an upgraded connection keeps them while traffic flows, see
 * give_back). */
static void release_bufs(struct kw_conn *c)
{
	if (c->rxb && rx_empty(c)) {
		uint8_t *p = c->rxb;

		c->rxb = NULL;
		c->rx_off = c->rx_len = 0;
		buf_put(c, p);
	}
	if (c->txb && c->tx_off == c->tx_len) {
		uint8_t *p = c->txb;

		c->txb = NULL;
		c->tx_off = c->tx_len = 0;
		buf_put(c, p);
	}
}

/* True while rxb holds the body of a Noise frame that is still arriving. */
static bool frame_partial(const struct kw_conn *c)
{
	return c->rxb && c->rx_off < c->rx_len && kw_upgrade_frame_partial(&c->up);
}

static void conn_fail(struct kw_conn *c, int err, const char *why);

/* Idle buffers go back; a partial frame past its deadline closes the connection (the peer
 * started a frame and did not finish it), one before it re-arms for the rest. */
static void on_buf_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_conn *c = (struct kw_conn *)t->arg;
	uint32_t held;

	if (c->dead)
		return;
	release_bufs(c);
	if (!c->frame_on || !frame_partial(c))
		return;
	held = (uint32_t)kw_loop_now(l) - c->frame_start_ms;
	if (held < CONFIG_KW_NET_FRAME_TIMEOUT_MS) {
		kw_timer_start(l, t, CONFIG_KW_NET_FRAME_TIMEOUT_MS - held);
		return;
	}
	c->sw->st.frame_timeouts++;
	conn_fail(c, -KW_ETIMEDOUT, "frame left unfinished past the frame deadline "
		  "(KW_NET_FRAME_TIMEOUT_MS)");
}

/* Empty buffers go back to the pool KW_SWARM_BUF_LINGER_MS after the last use (sooner than
 * a frame deadline the same timer may be set for). */
static void give_back(struct kw_conn *c)
{
	uint64_t by = kw_loop_now(c->sw->loop) + KW_SWARM_BUF_LINGER_MS;

	if (!kw_timer_armed(&c->buf_timer) || c->buf_timer.deadline_ms > by)
		kw_timer_start(c->sw->loop, &c->buf_timer, KW_SWARM_BUF_LINGER_MS);
}

/*
 * The end of every dispatch: a partial frame runs against its deadline (restarted whenever
 * a frame completes or a new header arrives), empty buffers go back (at once for a
 * handshake), the watch follows.
 */
static void conn_settle(struct kw_conn *c)
{
	struct kw_loop *l = c->sw->loop;

	if (c->dead)
		return;
	if (frame_partial(c)) {
		if (!c->frame_on || c->rx_progress)
			c->frame_start_ms = (uint32_t)kw_loop_now(l);
		c->frame_on = true;
		if (!kw_timer_armed(&c->buf_timer))
			kw_timer_start(l, &c->buf_timer, CONFIG_KW_NET_FRAME_TIMEOUT_MS);
	} else {
		c->frame_on = false;  /* a timer still set finds nothing to close */
	}
	c->rx_progress = false;
	if (c->buf_up)
		give_back(c);
	else
		release_bufs(c);
	conn_update_watch(c);
}

/* ---- connection lifecycle --------------------------------------------------------------- */

static void conn_update_watch(struct kw_conn *c)
{
	uint32_t ev = 0;

	if (c->fd < 0 || c->dead)
		return;
	if (c->state == CONN_CONNECTING)
		ev = KW_EV_WRITE;
	else {
		/* a connection waiting for a receive buffer, or whose buffer is full of input
		 * the pipeline cannot take yet, stops reading: no busy loop on a level-triggered
		 * fd, and TCP back-pressure holds the peer meanwhile */
		if (!c->rd_eof && kw_upgrade_can_read(&c->up) &&
		    (c->rxb ? c->rx_len < KW_SWARM_BUF_SIZE : !c->bq_queued))
			ev |= KW_EV_READ;
		if (c->txb && c->tx_off < c->tx_len)
			ev |= KW_EV_WRITE;
	}
	if (ev != c->w.events)
		kw_loop_watch_mod(c->sw->loop, &c->w, ev);
}

static int reap_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_conn *c = (struct kw_conn *)t->arg;
	struct kw_swarm *sw = c->sw;
	struct kw_conn_watcher *w;
	bool was_up = c->state == CONN_UP || c->state == CONN_CLOSING;

	kw_rcmgr_release(&sw->rc, &c->rc);
	kw_upgrade_teardown(&c->up, c->close_reason);
	if (was_up && c->peer.len)
		for (w = sw->watchers; w; w = w->next)
			if (w->on_down)
				w->on_down(sw, c, c->close_reason, w->arg);
	ext_release(c);
	if (c->dial_cb) {
		kw_swarm_dial_cb cb = c->dial_cb;

		c->dial_cb = NULL;
		cb(sw, NULL, c->close_reason ? c->close_reason : -KW_ECONNABORTED, c->dial_user);
	}
	kw_timer_cancel(l, &c->hs_timer);
	kw_task_cancel(l, &c->kick);
	kw_timer_cancel(l, &c->buf_timer);
	bq_remove(c);
	if (c->fd >= 0) {
		struct kw_sys *sys = sw->loop->sys;

		kw_loop_unwatch(l, &c->w);
		if (c->abort_close && sys->ops->close_abort) {
			/* a failure: what is queued (yamux go-away 1) gets one non-blocking try, then
			 * RST so the peer learns at once and no FIN_WAIT state lingers */
			if (c->txb && c->tx_off < c->tx_len)
				(void)sys->ops->write(sys, c->fd, c->txb + c->tx_off, c->tx_len - c->tx_off);
			sys->ops->close_abort(sys, c->fd);
			sw->st.conns_aborted++;
		} else {
			sys->ops->close(sys, c->fd);
		}
	}
	if (c->rxb)
		buf_put(c, c->rxb);
	if (c->txb)
		buf_put(c, c->txb);
	c->rxb = c->txb = NULL;
	if (c->outbound)
		sw->st.conns_out--;
	else
		sw->st.conns_in--;
	if (c->leaving)
		sw->out_leaving--;
	if (was_up && c->peer.len && sw->st.conns_up)
		sw->st.conns_up--;
	if (c->prev)
		c->prev->next = c->next;
	else
		sw->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	kw_pool_free(&sw->conns, c);
	return KW_TASK_DONE;
}

/* Closes abortively: the socket goes at once, the object at the next task pass. */
/* An outbound connection on its way out no longer holds a dial slot (kw_swarm_dial). */
static void mark_leaving(struct kw_conn *c)
{
	if (c->outbound && !c->leaving) {
		c->leaving = true;
		c->sw->out_leaving++;
	}
}

static void conn_kill(struct kw_conn *c, int reason)
{
	if (c->dead)
		return;
	c->dead = true;
	mark_leaving(c);
	c->close_reason = reason;
	kw_upgrade_stop(&c->up);
	kw_task_post(c->sw->loop, &c->reap);
}

/*
 * Failure lines are rate limited: a few per interval one by one, the rest counted and told
 * in one line when the next interval opens, so many hostile peers cannot flood the log (the
 * interval is the refusal summaries' one).
 */
#define FAIL_LOG_BURST 5

static bool fail_log_ok(struct kw_swarm *sw)
{
	uint64_t now = kw_loop_now(sw->loop);

	if (now - sw->fail_log_t0 >= sw->lim.refusal_log_ms) {
		if (sw->fail_log_quiet)
			KW_LOG_WRN(swarm, "%u more connections closed for errors in the last %u ms "
				   "(not logged one by one)", sw->fail_log_quiet,
				   sw->lim.refusal_log_ms);
		sw->fail_log_t0 = now;
		sw->fail_log_n = 0;
		sw->fail_log_quiet = 0;
	}
	if (sw->fail_log_n < FAIL_LOG_BURST) {
		sw->fail_log_n++;
		return true;
	}
	sw->fail_log_quiet++;
	return false;
}

static void conn_fail(struct kw_conn *c, int err, const char *why)
{
	if (c->dead)
		return;
	if (err == 0 || err == -KW_ECONNRESET || err == -KW_ESHUTDOWN)
		KW_LOG_INF(swarm, "%s: %s: %s", c->label, why, kw_strerror(err));
	else if (fail_log_ok(c->sw))
		KW_LOG_WRN(swarm, "%s: %s: %s; closing the connection", c->label, why,
			   kw_strerror(err));
	if (c->state != CONN_UP && c->state != CONN_CLOSING)
		c->sw->st.conns_failed++;
	/* an error closes abortively unless the peer already closed its side */
	c->abort_close = err != 0 && !c->rd_eof;
	conn_kill(c, err);
}

static void conn_kick(struct kw_conn *c);

static void flush_tx(struct kw_conn *c)
{
	struct kw_sys *sys = c->sw->loop->sys;

	while (c->txb && c->tx_off < c->tx_len) {
		long n = sys->ops->write(sys, c->fd, c->txb + c->tx_off, c->tx_len - c->tx_off);

		if (n == -KW_EAGAIN)
			break;
		if (n < 0) {
			conn_fail(c, (int)n, "write");
			return;
		}
		c->tx_off += (uint32_t)n;
		c->sw->st.bytes_out += (uint64_t)n;
	}
	if (c->txb && c->tx_off == c->tx_len) {
		c->tx_off = c->tx_len = 0;
		kw_upgrade_on_tx_space(&c->up);  /* may queue more */
		if (c->dead)
			return;
		/* a handshake line whose answer waited for send space is replayed */
		if (!c->buf_up && c->rxb && c->rx_off < c->rx_len)
			conn_kick(c);
		if (c->txb && c->tx_off < c->tx_len) {
			flush_tx(c);
			return;
		}
		if (c->state == CONN_CLOSING && kw_upgrade_done_closing(&c->up)) {
			conn_kill(c, c->close_reason);
			return;
		}
	}
	conn_settle(c);
}

static void conn_touch(struct kw_conn *c)
{
	c->last_active_ms = kw_loop_now(c->sw->loop);
}

/*
 * The peer closed its side (read returned 0: a FIN, not a reset). An upgraded connection
 * ends normally; one still in its handshake failed, but the peer did nothing wrong on the
 * wire. A reset arrives as a read error instead (conn_fail says "Connection reset").
 */
static void conn_eof(struct kw_conn *c)
{
	bool up = c->state == CONN_UP || c->state == CONN_CLOSING;

	c->rd_eof = true;
	if (c->dead)
		return;
	if (up) {
		KW_LOG_INF(swarm, "%s: peer closed the connection", c->label);
	} else {
		KW_LOG_INF(swarm, "%s: peer closed the connection during the handshake; dropping it",
			   c->label);
		c->sw->st.conns_failed++;
	}
	c->abort_close = false;
	/* streams still open see a reset either way (kw_upgrade_teardown) */
	conn_kill(c, up ? 0 : -KW_ECONNRESET);
}

/* Hands the unconsumed received bytes to the pipeline. Return 0, or -1 if c failed. */
static int feed(struct kw_conn *c)
{
	size_t used = 0;
	int ret;

	ret = kw_upgrade_on_bytes(&c->up, c->rxb ? c->rxb + c->rx_off : NULL,
				  c->rxb ? c->rx_len - c->rx_off : 0, &used);
	if (c->dead)
		return -1;
	if (ret < 0) {
		conn_fail(c, ret, "malformed input");
		return -1;
	}
	if (used) {
		c->rx_off += (uint32_t)used;
		c->rx_progress = true;
	}
	/* plaintext yamux has not taken stays where it was decrypted: move nothing until then */
	if (c->rxb && kw_upgrade_can_read(&c->up)) {
		if (c->rx_off == c->rx_len) {
			c->rx_off = c->rx_len = 0;
		} else if (c->rx_off) {
			memmove(c->rxb, c->rxb + c->rx_off, c->rx_len - c->rx_off);
			c->rx_len -= c->rx_off;
			c->rx_off = 0;
		}
	}
	return 0;
}

static void do_read(struct kw_conn *c)
{
	struct kw_sys *sys = c->sw->loop->sys;
	int rounds = 0;

	/* Bounded rounds so one busy peer cannot starve the others in this pass. */
	while (!c->dead && !c->rd_eof && rounds++ < 8 && kw_upgrade_can_read(&c->up)) {
		long n;

		if (!take_rx(c))
			break;  /* queued: bq_task resumes it when a buffer is returned */
		if (c->rx_len == KW_SWARM_BUF_SIZE)
			break;
		n = sys->ops->read(sys, c->fd, c->rxb + c->rx_len, KW_SWARM_BUF_SIZE - c->rx_len);
		if (n == -KW_EAGAIN)
			break;
		if (n < 0) {
			conn_fail(c, (int)n, "read");
			return;
		}
		if (n == 0) {
			conn_eof(c);
			return;
		}
		c->rx_len += (uint32_t)n;
		c->sw->st.bytes_in += (uint64_t)n;
		conn_touch(c);
		if (feed(c) < 0)
			return;
	}
}

/* The end of a dispatch: queued output goes out, then conn_settle. */
static void conn_finish(struct kw_conn *c)
{
	if (!c->dead && c->txb && c->tx_off < c->tx_len)
		flush_tx(c);  /* ends with conn_settle */
	else
		conn_settle(c);
}

static void conn_io(struct kw_loop *l, struct kw_conn *c, uint32_t ev);

static void on_conn_io(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct kw_conn *c = (struct kw_conn *)w->arg;

	if (c->dead)
		return;
	c->in_io = true;
	conn_io(l, c, ev);
	c->in_io = false;
}

static void conn_io(struct kw_loop *l, struct kw_conn *c, uint32_t ev)
{
	if (c->state == CONN_CONNECTING) {
		int err = l->sys->ops->sock_error(l->sys, c->fd);

		if (err < 0) {
			conn_fail(c, err, "connect");
			return;
		}
		c->state = CONN_UPGRADING;
		err = upgrade_start(c);
		if (err < 0) {
			conn_fail(c, err, "upgrade start");
			return;
		}
		flush_tx(c);
		return;
	}
	if (ev & KW_EV_WRITE)
		flush_tx(c);
	if (!c->dead && (ev & (KW_EV_READ | KW_EV_HUP | KW_EV_ERR))) {
		do_read(c);
		conn_finish(c);
	}
}

/* Runs from the connection's task: input paused by back-pressure continues. */
static int kick_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_conn *c = (struct kw_conn *)t->arg;

	if (c->dead)
		return KW_TASK_DONE;
	c->in_io = true;
	if (feed(c) == 0)
		conn_finish(c);
	c->in_io = false;
	return KW_TASK_DONE;
}

/*
 * A connection's turn in the buffer queue: what waited for a buffer continues (deferred
 * output, unconsumed input, reads). Its deadline for a partial frame restarts: the wait was
 * ours, not the peer's.
 */
static void conn_resume(struct kw_conn *c)
{
	c->in_io = true;
	c->rx_progress = true;
	kw_upgrade_on_tx_space(&c->up);
	if (!c->dead && feed(c) == 0) {
		do_read(c);
		conn_finish(c);
	}
	c->in_io = false;
}

/* Picks the next waiter that the free buffers can serve: upgraded ones first, then
 * handshakes within their share, each in arrival order. */
static struct kw_conn *bq_pick(struct kw_swarm *sw)
{
	struct kw_conn *c;

	for (c = sw->bq_head; c; c = c->bq_next)
		if (c->buf_up && bufs_free_for(c) >= c->bq_need)
			return c;
	for (c = sw->bq_head; c; c = c->bq_next)
		if (!c->buf_up && bufs_free_for(c) >= c->bq_need)
			return c;
	return NULL;
}

/*
 * Serves the buffer queue after buffers came back. Each waiter runs at most once per pass
 * (one that finds none again goes back to the tail and the next return posts this task
 * again), so nothing spins and no wake-up is lost: every return posts the task while
 * anyone waits.
 */
static int bq_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_swarm *sw = (struct kw_swarm *)t->arg;
	struct kw_conn *c;
	uint32_t n = 0;

	for (c = sw->bq_head; c; c = c->bq_next)
		n++;
	while (n-- > 0 && (c = bq_pick(sw)) != NULL) {
		bq_remove(c);
		if (c->dead)
			continue;
		sw->bq_serving = c;
		conn_resume(c);
		sw->bq_serving = NULL;
	}
	return KW_TASK_DONE;
}

/* Never re-enters the pipeline: the work runs from the connection's task. */
static void conn_kick(struct kw_conn *c)
{
	if (!c->dead)
		kw_task_post(c->sw->loop, &c->kick);
}

static void on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_conn *c = (struct kw_conn *)t->arg;
	uint64_t now = kw_loop_now(l), idle;

	if (c->dead)
		return;
	if (c->state != CONN_UP) {
		conn_fail(c, -KW_ETIMEDOUT, c->state == CONN_CLOSING ? "closing" : "handshake");
		return;
	}
	idle = c->sw->lim.idle_timeout_ms;
	if (kw_upgrade_stream_count(&c->up) == 0 && now - c->last_active_ms >= idle) {
		KW_LOG_INF(swarm, "%s: idle for %llu ms; closing", c->label,
			   (unsigned long long)(now - c->last_active_ms));
		kw_conn_close(c, 0);
		return;
	}
	kw_timer_start(l, t, kw_upgrade_stream_count(&c->up) ? idle :
		       idle - (now - c->last_active_ms));
}

/* Gives c a zeroed block of every registered slot. Return: 0, -KW_ENOMEM (none given). */
static int ext_take(struct kw_conn *c)
{
	struct kw_swarm *sw = c->sw;
	size_t i;

	for (i = 0; i < sw->n_ext; i++) {
		c->ext[i] = kw_pool_alloc(&sw->ext[i].pool);
		if (!c->ext[i]) {
			while (i--) {
				kw_pool_free(&sw->ext[i].pool, c->ext[i]);
				c->ext[i] = NULL;
			}
			return -KW_ENOMEM;
		}
	}
	return 0;
}

/* The connection is being freed: each slot's owner lets go, then the block is cleared (no
 * state of this peer lingers in the pool) and returned. */
static void ext_release(struct kw_conn *c)
{
	struct kw_swarm *sw = c->sw;
	size_t i;

	for (i = 0; i < sw->n_ext; i++) {
		struct kw_conn_ext_slot *e = &sw->ext[i];

		if (!c->ext[i])
			continue;
		if (e->release)
			e->release(c, c->ext[i], e->arg);
		memset(c->ext[i], 0, e->size);
		kw_pool_free(&e->pool, c->ext[i]);
		c->ext[i] = NULL;
	}
}

static struct kw_conn *conn_new(struct kw_swarm *sw, int fd, bool outbound)
{
	struct kw_conn *c = (struct kw_conn *)kw_pool_alloc(&sw->conns);

	if (!c)
		return NULL;
	c->sw = sw;
	if (ext_take(c) < 0) {
		kw_pool_free(&sw->conns, c);
		return NULL;
	}
	c->fd = fd;
	c->outbound = outbound;
	c->state = outbound ? CONN_CONNECTING : CONN_UPGRADING;
	kw_timer_init(&c->hs_timer, on_timer, c);
	kw_task_init(&c->reap, reap_fn, c);
	kw_task_init(&c->kick, kick_fn, c);
	kw_timer_init(&c->buf_timer, on_buf_timer, c);
	c->last_active_ms = kw_loop_now(sw->loop);
	c->next = sw->head;
	if (sw->head)
		sw->head->prev = c;
	sw->head = c;
	if (outbound)
		sw->st.conns_out++;
	else
		sw->st.conns_in++;
	kw_timer_start(sw->loop, &c->hs_timer, sw->lim.handshake_timeout_ms);
	return c;
}

static void conn_upgraded(struct kw_conn *c)
{
	struct kw_swarm *sw = c->sw;
	struct kw_conn_watcher *w;
	char t[KW_PEER_ID_TEXT_MAX];

	c->state = CONN_UP;
	sw->st.conns_up++;
	kw_rcmgr_handshake_done(&sw->rc, &c->rc);
	/* its buffers leave the handshakes' share; it may now use the reserved ones */
	c->buf_up = true;
	sw->bufs_hs -= c->nbufs;
	kw_peer_id_to_text(&c->peer, t, sizeof(t));
	KW_LOG_INF(swarm, "%s connection up with %s", c->outbound ? "outbound" : "inbound", t);
	conn_touch(c);
	kw_timer_start(sw->loop, &c->hs_timer, sw->lim.idle_timeout_ms);
	if (c->dial_cb) {
		kw_swarm_dial_cb cb = c->dial_cb;

		c->dial_cb = NULL;
		cb(sw, c, 0, c->dial_user);
	}
	for (w = sw->watchers; w && !c->dead; w = w->next)
		if (w->on_up)
			w->on_up(sw, c, w->arg);
}

void kw_conn_close(struct kw_conn *c, uint32_t code)
{
	if (c->dead || c->state == CONN_CLOSING)
		return;
	if (c->state != CONN_UP) {
		conn_kill(c, -KW_ECONNABORTED);
		return;
	}
	c->state = CONN_CLOSING;
	mark_leaving(c);
	kw_upgrade_goaway(&c->up, code);
	kw_timer_start(c->sw->loop, &c->hs_timer, c->sw->lim.handshake_timeout_ms);
	if (c->dead)
		return;
	if (c->txb && c->tx_off < c->tx_len)
		flush_tx(c);
	else if (kw_upgrade_done_closing(&c->up))
		conn_kill(c, 0);
}

/* Tells watchers (identify push) that what we announce changed. */
static void local_changed(struct kw_swarm *sw)
{
	struct kw_conn_watcher *w;

	for (w = sw->watchers; w; w = w->next)
		if (w->on_local_change)
			w->on_local_change(sw, w->arg);
}

/* ---- the connection as the upgrade pipeline sees it -------------------------------------- */

static uint8_t *up_tx_space(void *conn, size_t *space)
{
	struct kw_conn *c = (struct kw_conn *)conn;

	*space = 0;
	if (c->dead || !take_tx(c))
		return NULL;  /* queued: kw_upgrade_on_tx_space runs once a buffer is lent */
	if (c->tx_off && c->tx_off == c->tx_len)
		c->tx_off = c->tx_len = 0;
	if (c->tx_off > KW_SWARM_BUF_SIZE / 2) {
		memmove(c->txb, c->txb + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
	}
	*space = KW_SWARM_BUF_SIZE - c->tx_len;
	return c->txb + c->tx_len;
}

static void up_tx_commit(void *conn, size_t n)
{
	struct kw_conn *c = (struct kw_conn *)conn;

	c->tx_len += (uint32_t)n;
	/* Inside an I/O dispatch the send buffer is written and the watch set at its end:
	 * arming EV_WRITE here would cost two epoll_ctl calls per frame. */
	if (!c->in_io && !(c->w.events & KW_EV_WRITE))
		conn_update_watch(c);
}

static void up_fail(void *conn, int err, const char *why)
{
	conn_fail((struct kw_conn *)conn, err, why);
}

static void up_secured(void *conn, const struct kw_peer_id *peer)
{
	struct kw_conn *c = (struct kw_conn *)conn;

	c->peer = *peer;
	kw_peer_id_short(&c->peer, c->label, sizeof(c->label));
}

static void up_up(void *conn)
{
	conn_upgraded((struct kw_conn *)conn);
}

static void up_new_stream(void *conn, struct kw_stream *s)
{
	struct kw_conn *c = (struct kw_conn *)conn;

	s->conn = c;
	conn_touch(c);
	if (c->state != CONN_UP || c->sw->draining) {
		kw_stream_reset(s);
		return;
	}
	kw_mss_inbound(&c->sw->mss, s, c->label);
}

static void up_mux_closed(void *conn)
{
	struct kw_conn *c = (struct kw_conn *)conn;

	if (c->state == CONN_CLOSING)
		conn_kick(c);
	else
		conn_fail(c, 0, "peer sent go-away");
}

static void up_kick(void *conn)
{
	conn_kick((struct kw_conn *)conn);
}

static void up_touch(void *conn)
{
	conn_touch((struct kw_conn *)conn);
}

static const struct kw_upgrade_conn_ops g_conn_ops = {
	.tx_space = up_tx_space,
	.tx_commit = up_tx_commit,
	.fail = up_fail,
	.secured = up_secured,
	.up = up_up,
	.new_stream = up_new_stream,
	.mux_closed = up_mux_closed,
	.kick = up_kick,
	.touch = up_touch,
};

static int upgrade_start(struct kw_conn *c)
{
	return kw_upgrade_start(&c->up, &c->sw->ups, &g_conn_ops, c, c->outbound,
				c->have_expect ? &c->expect : NULL, c->label);
}

/* ---- inbound admission (rcmgr.h) ---------------------------------------------------------- */

/* Logs the refusal summary when one is due, and arms the timer for the next one, so a flood
 * costs one line per interval and the last refusals of a burst are still reported. */
static void rc_log(struct kw_swarm *sw)
{
	char line[640];
	uint64_t due;

	if (kw_rcmgr_summary(&sw->rc, kw_loop_now(sw->loop), line, sizeof(line)))
		KW_LOG_WRN(swarm, "%s; the node keeps serving its other peers", line);
	due = kw_rcmgr_summary_due(&sw->rc);
	if (due && !kw_timer_armed(&sw->rc_log))
		kw_timer_start_at(sw->loop, &sw->rc_log, due);
}

static void on_rc_log(struct kw_loop *l, struct kw_timer *t)
{
	rc_log((struct kw_swarm *)t->arg);
}

static void refuse(struct kw_swarm *sw, int fd, const struct kw_rc_addr *a, enum kw_rc_reason r)
{
	struct kw_sys *sys = sw->loop->sys;

	sw->st.conns_refused_limit++;
	kw_rcmgr_note(&sw->rc, a, r);
	/* RST: nothing was read, and no TIME_WAIT piles up on our side under a flood */
	if (sys->ops->close_abort)
		sys->ops->close_abort(sys, fd);
	else
		sys->ops->close(sys, fd);
	rc_log(sw);
}

/* Drops the oldest connection still in its handshake to admit a newcomer. It is freed now,
 * not at the next task pass, so its pool slot is free for the newcomer; we run in the
 * listener's callback, never inside the victim's own dispatch. */
static void conn_evict(struct kw_conn *v)
{
	struct kw_swarm *sw = v->sw;

	KW_LOG_DBG(swarm, "%s: still in its handshake after %llu ms; dropped for a newcomer",
		   v->label, (unsigned long long)(kw_loop_now(sw->loop) - v->last_active_ms));
	kw_rcmgr_note(&sw->rc, &v->rc.addr, KW_RC_EVICTED);
	if (!v->dead) {
		v->abort_close = true;
		conn_kill(v, -KW_ELIMIT);
	}
	kw_task_cancel(sw->loop, &v->reap);
	reap_fn(sw->loop, &v->reap);
}

/*
 * Frees an inbound slot when the inbound limit is what turns a newcomer away: the inbound
 * connection with no open stream that was active least recently, and idle for TRIM_IDLE_MS
 * at least, is closed; an unprotected one first, a protected one only when the whole limit
 * (not just the strangers' share) is reached. A libp2p connection manager trims idle
 * connections the same way past its high water mark. Without it a node that many peers ask
 * once (a DHT node) holds their finished connections until the idle timeout, and every new
 * asker is refused or drops another one's handshake (an evicted handshake costs both ends a
 * full Noise exchange). The close is abortive so the slot is free for the newcomer now:
 * nothing is in flight on an idle connection (its queued bytes get one try, then RST).
 * Return: true when one was closed.
 */
#define TRIM_IDLE_MS 5000u

static bool trim_idle_in(struct kw_swarm *sw)
{
	const struct kw_rcmgr_limits *l = &sw->rc.lim;
	uint32_t strangers = l->conns_in_reserved < l->conns_in ?
				     l->conns_in - l->conns_in_reserved : 1;
	bool whole = sw->rc.in >= l->conns_in;
	uint64_t now = kw_loop_now(sw->loop);
	struct kw_conn *c, *v = NULL;

	if (!whole && sw->rc.in - sw->rc.prot < strangers)
		return false;  /* a handshake limit: closing an upgraded connection does not help */
	for (c = sw->head; c; c = c->next) {
		if (c->outbound || c->state != CONN_UP || c->dead || !c->rc.admitted ||
		    kw_upgrade_stream_count(&c->up) || now - c->last_active_ms < TRIM_IDLE_MS ||
		    (c->rc.prot && !whole))
			continue;
		if (!v || (v->rc.prot && !c->rc.prot) ||
		    (v->rc.prot == c->rc.prot && c->last_active_ms < v->last_active_ms))
			v = c;
	}
	if (!v)
		return false;
	KW_LOG_DBG(swarm, "%s: idle for %llu ms; closed to admit a newcomer", v->label,
		   (unsigned long long)(now - v->last_active_ms));
	sw->st.conns_trimmed++;
	v->abort_close = true;
	conn_kill(v, -KW_ELIMIT);
	kw_task_cancel(sw->loop, &v->reap);
	reap_fn(sw->loop, &v->reap);
	return true;
}

/* ---- listening and dialing -------------------------------------------------------------- */

static void on_accept(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct kw_listener *li = (struct kw_listener *)w->arg;
	struct kw_swarm *sw = li->sw;
	struct kw_sys *sys = l->sys;
	int i;

	for (i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct kw_conn *c;
		struct kw_rc_addr ra;
		struct kw_rc_conn *victim;
		enum kw_rc_reason r;
		size_t ml;
		int fd = sys->ops->accept(sys, li->fd, &ss, &sl);

		if (fd < 0)
			return;
		if (kw_rc_addr_from_sockaddr((struct sockaddr *)&ss, sl, &ra) < 0)
			memset(&ra, 0, sizeof(ra));
		r = sw->draining ? KW_RC_DRAINING : kw_rcmgr_check(&sw->rc, &ra, &victim);
		/* an idle connection makes room before a handshake is dropped or a peer refused */
		if ((r == KW_RC_FULL || (r == KW_RC_OK && victim)) && trim_idle_in(sw))
			r = kw_rcmgr_check(&sw->rc, &ra, &victim);
		if (r != KW_RC_OK) {
			refuse(sw, fd, &ra, r);
			continue;
		}
		if (victim)
			conn_evict(KW_CONTAINER_OF(victim, struct kw_conn, rc));
		c = conn_new(sw, fd, false);
		if (!c) {
			refuse(sw, fd, &ra, KW_RC_FULL);
			continue;
		}
		kw_rcmgr_commit(&sw->rc, &c->rc, &ra);
		sw->st.conns_accepted++;
		if (kw_sw_addr_from_sockaddr((struct sockaddr *)&ss, sl, c->raddr, sizeof(c->raddr),
					   &ml) == 0)
			c->raddr_len = (uint8_t)ml;
		set_label_from_addr(c);
		if (kw_loop_watch(l, &c->w, fd, KW_EV_READ, on_conn_io, c) < 0) {
			conn_kill(c, -KW_ENOMEM);
			continue;
		}
		if (upgrade_start(c) < 0)
			conn_fail(c, -KW_EPROTO, "upgrade start");
	}
}

int kw_swarm_listen(struct kw_swarm *sw, const char *maddr)
{
	struct kw_sys *sys = sw->loop->sys;
	struct kw_sw_addr mi;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct kw_listener *li;
	int fd, ret;
	size_t ml;

	if (sw->n_listeners >= KW_SWARM_LISTENERS_MAX)
		return -KW_ENOSPC;
	ret = kw_sw_addr_parse_tcp(maddr, &mi);
	if (ret < 0)
		return ret;
	fd = sys->ops->tcp_socket(sys, mi.sa.ss_family);
	if (fd < 0)
		return fd;
	ret = sys->ops->bind_listen(sys, fd, (struct sockaddr *)&mi.sa, mi.sa_len, 128);
	if (ret == 0) {
		sl = sizeof(ss);
		ret = sys->ops->local_addr(sys, fd, &ss, &sl);
	}
	if (ret < 0) {
		sys->ops->close(sys, fd);
		return ret;
	}
	li = &sw->listeners[sw->n_listeners];
	li->fd = fd;
	li->sw = sw;
	ret = kw_sw_addr_from_sockaddr((struct sockaddr *)&ss, sl, li->addr, sizeof(li->addr), &ml);
	if (ret == 0)
		ret = kw_loop_watch(sw->loop, &li->w, fd, KW_EV_READ, on_accept, li);
	if (ret < 0) {
		sys->ops->close(sys, fd);
		return ret;
	}
	li->addr_len = (uint8_t)ml;
	sw->n_listeners++;
	local_changed(sw);
	return 0;
}

size_t kw_swarm_listen_count(const struct kw_swarm *sw)
{
	return sw->n_listeners;
}

int kw_swarm_listen_addr_bin(const struct kw_swarm *sw, size_t i, uint8_t *out, size_t cap,
			     size_t *len)
{
	if (i >= sw->n_listeners)
		return -KW_EINVAL;
	if (cap < sw->listeners[i].addr_len)
		return -KW_ENOSPC;
	memcpy(out, sw->listeners[i].addr, sw->listeners[i].addr_len);
	*len = sw->listeners[i].addr_len;
	return 0;
}

int kw_swarm_listen_addr(const struct kw_swarm *sw, size_t i, char *out, size_t cap)
{
	char t[KW_SW_ADDR_TEXT_MAX];
	int ret;

	if (i >= sw->n_listeners)
		return -KW_EINVAL;
	ret = kw_sw_addr_to_text(sw->listeners[i].addr, sw->listeners[i].addr_len, t, sizeof(t));
	if (ret < 0)
		return ret;
	if ((size_t)snprintf(out, cap, "%s/p2p/%s", t, sw->id_text) >= cap)
		return -KW_ENOSPC;
	return 0;
}

/*
 * Frees a dial slot when every one is taken: the outbound connection with no open stream that
 * was active least recently gets a graceful close (yamux go-away, FIN), as a libp2p
 * connection manager trims idle connections. Nothing in flight is lost: a connection with a
 * stream is never chosen. Return: true when one was closed.
 */
static bool prune_idle_out(struct kw_swarm *sw)
{
	struct kw_conn *c, *lru = NULL;

	for (c = sw->head; c; c = c->next)
		if (c->outbound && c->state == CONN_UP && !c->dead && !c->leaving &&
		    kw_upgrade_stream_count(&c->up) == 0 &&
		    (!lru || c->last_active_ms < lru->last_active_ms))
			lru = c;
	if (!lru)
		return false;
	KW_LOG_DBG(swarm, "%s: idle outbound connection closed to free a dial slot", lru->label);
	sw->st.conns_pruned++;
	kw_conn_close(lru, 0);
	return true;
}

int kw_swarm_dial(struct kw_swarm *sw, const char *maddr, kw_swarm_dial_cb cb, void *user)
{
	struct kw_sys *sys = sw->loop->sys;
	struct kw_sw_addr mi;
	struct kw_conn *c;
	size_t ml;
	int fd, ret;

	if (sw->draining)
		return -KW_ESHUTDOWN;
	ret = kw_sw_addr_parse_tcp(maddr, &mi);
	if (ret < 0)
		return ret;
	if (sw->st.conns_out - sw->out_leaving >= sw->lim.max_conns_out && !prune_idle_out(sw))
		return -KW_ELIMIT;
	fd = sys->ops->tcp_socket(sys, mi.sa.ss_family);
	if (fd < 0)
		return fd;
	c = conn_new(sw, fd, true);
	if (!c) {
		sys->ops->close(sys, fd);
		return -KW_ELIMIT;
	}
	sw->st.conns_dialed++;
	c->dial_cb = cb;
	c->dial_user = user;
	if (mi.has_peer) {
		c->expect = mi.peer;
		c->have_expect = true;
	}
	if (kw_sw_addr_from_sockaddr((struct sockaddr *)&mi.sa, mi.sa_len, c->raddr,
				   sizeof(c->raddr), &ml) == 0)
		c->raddr_len = (uint8_t)ml;
	set_label_from_addr(c);
	ret = sys->ops->connect(sys, fd, (struct sockaddr *)&mi.sa, mi.sa_len);
	if (ret < 0 && ret != -KW_EINPROGRESS) {
		/* fails through the callback, like every other dial error */
		c->fd = -1;
		sys->ops->close(sys, fd);
		conn_kill(c, ret);
		return 0;
	}
	ret = kw_loop_watch(sw->loop, &c->w, fd, KW_EV_WRITE, on_conn_io, c);
	if (ret < 0) {
		conn_kill(c, ret);
		return 0;
	}
	return 0;
}

/* ---- registry, extension slots, watchers, accessors ------------------------------------- */

int kw_swarm_register(struct kw_swarm *sw, const char *id, kw_proto_accept_fn accept, void *arg)
{
	int ret = kw_proto_registry_add(&sw->reg, id, accept, arg);

	if (ret == 0)
		local_changed(sw);
	return ret;
}

size_t kw_swarm_protocol_count(const struct kw_swarm *sw) { return sw->reg.n; }

const char *kw_swarm_protocol(const struct kw_swarm *sw, size_t i)
{
	return kw_proto_registry_id(&sw->reg, i);
}

int kw_swarm_ext_register(struct kw_swarm *sw, const char *name, size_t size,
			  kw_conn_ext_release_fn release, void *arg)
{
	struct kw_conn_ext_slot *e;
	int ret;

	if (!name || size == 0)
		return -KW_EINVAL;
	if (sw->n_ext >= KW_ARRAY_SIZE(sw->ext))
		return -KW_ENOSPC;
	if (sw->head)
		return -KW_EBUSY;  /* connections made before would lack the slot */
	e = &sw->ext[sw->n_ext];
	ret = kw_node_pool_create(sw->node, &e->pool, name, size, sw->max_conns);
	if (ret < 0)
		return ret;
	e->size = size;
	e->release = release;
	e->arg = arg;
	return (int)sw->n_ext++;
}

void *kw_conn_ext(const struct kw_conn *c, int slot)
{
	if (slot < 0 || (size_t)slot >= c->sw->n_ext)
		return NULL;
	return c->ext[slot];
}

void kw_swarm_add_watcher(struct kw_swarm *sw, struct kw_conn_watcher *w)
{
	w->next = sw->watchers;
	sw->watchers = w;
}

int kw_swarm_protect_protocol(struct kw_swarm *sw, const char *id)
{
	if (!id || !*id || strlen(id) > KW_PROTO_ID_MAX)
		return -KW_EINVAL;
	if (kw_swarm_protocol_protected(sw, id))
		return 0;
	if (sw->n_protect >= KW_SWARM_PROTECT_MAX)
		return -KW_ENOSPC;
	strcpy(sw->protect[sw->n_protect++], id);
	return 0;
}

bool kw_swarm_protocol_protected(const struct kw_swarm *sw, const char *id)
{
	size_t i;

	for (i = 0; i < sw->n_protect; i++)
		if (!strcmp(sw->protect[i], id))
			return true;
	return false;
}

void kw_conn_protect(struct kw_conn *c)
{
	if (!c->rc.prot && c->rc.admitted)
		KW_LOG_DBG(swarm, "%s: protected (speaks a protocol an upper layer wants)", c->label);
	kw_rcmgr_protect(&c->sw->rc, &c->rc);
}

/* Outbound connections are never counted here, so never victims either. */
bool kw_conn_protected(const struct kw_conn *c) { return c->outbound || c->rc.prot; }

struct kw_node *kw_swarm_node(struct kw_swarm *sw) { return sw->node; }
const struct kw_peer_id *kw_swarm_peer_id(const struct kw_swarm *sw) { return &sw->id; }
const struct kw_privkey *kw_swarm_key(const struct kw_swarm *sw) { return &sw->key; }
void kw_swarm_get_stats(const struct kw_swarm *sw, struct kw_swarm_stats *st)
{
	*st = sw->st;
	st->bufs_lent = (uint32_t)sw->bufs.used;
	st->bufs_lent_handshake = sw->bufs_hs;
	st->streams_in = sw->mss.st.streams_in;
	st->streams_refused = sw->mss.st.streams_refused;
	st->negotiations_failed = sw->mss.st.failed;
	st->refused_per_ip = sw->rc.total[KW_RC_IP];
	st->refused_per_subnet = sw->rc.total[KW_RC_SUBNET];
	st->refused_hs_per_ip = sw->rc.total[KW_RC_HS_IP];
	st->refused_hs_per_subnet = sw->rc.total[KW_RC_HS_SUBNET];
	st->refused_full = sw->rc.total[KW_RC_FULL];
	st->refused_draining = sw->rc.total[KW_RC_DRAINING];
	st->conns_evicted = sw->rc.total[KW_RC_EVICTED];
	st->conns_protected = sw->rc.prot;
}

struct kw_conn *kw_swarm_find_conn(struct kw_swarm *sw, const struct kw_peer_id *peer)
{
	struct kw_conn *c;

	for (c = sw->head; c; c = c->next)
		if (!c->dead && c->state == CONN_UP && kw_peer_id_equal(&c->peer, peer))
			return c;
	return NULL;
}

void kw_swarm_foreach_conn(struct kw_swarm *sw, void (*fn)(struct kw_conn *c, void *arg),
			   void *arg)
{
	struct kw_conn *c;

	for (c = sw->head; c; c = c->next)
		if (!c->dead && c->state == CONN_UP)
			fn(c, arg);
}

struct kw_swarm *kw_conn_swarm(const struct kw_conn *c) { return c->sw; }
const struct kw_peer_id *kw_conn_peer_id(const struct kw_conn *c) { return &c->peer; }
bool kw_conn_outbound(const struct kw_conn *c) { return c->outbound; }
const char *kw_conn_peer_short(const struct kw_conn *c) { return c->label; }
uint32_t kw_conn_stream_count(const struct kw_conn *c) { return kw_upgrade_stream_count(&c->up); }
struct kw_conn *kw_stream_conn(const struct kw_stream *s) { return (struct kw_conn *)s->conn; }

int kw_conn_remote_addr(const struct kw_conn *c, const uint8_t **ma, size_t *len)
{
	if (!c->raddr_len)
		return -KW_ENOENT;
	*ma = c->raddr;
	*len = c->raddr_len;
	return 0;
}

int kw_swarm_open_stream(struct kw_swarm *sw, struct kw_conn *c, const char *protocol,
			 const struct kw_stream_handler *h, void *user, kw_swarm_open_cb cb)
{
	struct kw_stream *s;
	int ret;

	if (!c || !protocol || !h || !cb || strlen(protocol) > KW_PROTO_ID_MAX)
		return -KW_EINVAL;
	if (c->dead || c->state != CONN_UP)
		return -KW_ENOTCONN;
	if (kw_upgrade_stream_count(&c->up) >= sw->lim.max_streams_per_conn)
		return -KW_ELIMIT;
	ret = kw_upgrade_open_stream(&c->up, &s);
	if (ret < 0)
		return ret;
	s->conn = c;
	ret = kw_mss_outbound(&sw->mss, s, c->label, protocol, h, user, cb);
	if (ret < 0) {
		kw_stream_reset(s);
		return ret;
	}
	sw->st.streams_out++;
	return 0;
}

/* ---- drain (graceful shutdown) ---------------------------------------------------------- */

static void drain_begin(struct kw_node *n, struct kw_drain *d)
{
	struct kw_swarm *sw = (struct kw_swarm *)d->arg;
	struct kw_conn *c;
	size_t i;

	sw->draining = true;
	for (i = 0; i < sw->n_listeners; i++) {
		kw_loop_unwatch(sw->loop, &sw->listeners[i].w);
		sw->loop->sys->ops->close(sw->loop->sys, sw->listeners[i].fd);
	}
	sw->n_listeners = 0;
	for (c = sw->head; c; c = c->next)
		kw_conn_close(c, 0);
}

static bool drain_busy(struct kw_node *n, struct kw_drain *d)
{
	struct kw_swarm *sw = (struct kw_swarm *)d->arg;

	return sw->head != NULL;
}

/* ---- create / destroy ------------------------------------------------------------------- */

void kw_swarm_limits_default(struct kw_swarm_limits *l)
{
	l->max_conns_in = CONFIG_KW_NET_MAX_CONNS_IN;
	l->max_conns_out = CONFIG_KW_NET_MAX_CONNS_OUT;
	l->handshake_timeout_ms = CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS;
	l->idle_timeout_ms = CONFIG_KW_NET_IDLE_TIMEOUT_MS;
	l->max_streams_per_conn = CONFIG_KW_NET_MAX_STREAMS_PER_CONN;
	l->negotiate_timeout_ms = CONFIG_KW_NET_NEGOTIATE_TIMEOUT_MS;
	l->max_message_bytes = CONFIG_KW_NET_MAX_MESSAGE_BYTES;
	l->conns_per_ip = CONFIG_KW_NET_CONNS_PER_IP;
	l->conns_per_subnet = CONFIG_KW_NET_CONNS_PER_SUBNET;
	l->max_handshakes_in = CONFIG_KW_NET_HANDSHAKES_IN;
	l->handshakes_per_ip = CONFIG_KW_NET_HANDSHAKES_PER_IP;
	l->handshakes_per_subnet = CONFIG_KW_NET_HANDSHAKES_PER_SUBNET;
	l->conns_in_reserved = CONFIG_KW_NET_CONNS_IN_RESERVED;
	l->refusal_log_ms = CONFIG_KW_NET_REFUSAL_LOG_INTERVAL_MS;
}

int kw_swarm_create(struct kw_node *n, const struct kw_privkey *key,
		    const struct kw_swarm_limits *limits, struct kw_swarm **out)
{
	struct kw_swarm *sw;
	struct kw_mss_registry mreg;
	struct kw_rcmgr_limits rl;
	uint64_t seed = 0;
	uint32_t conns;
	int ret;

	if (!n || !key || !out)
		return -KW_EINVAL;
	sw = (struct kw_swarm *)kw_arena_alloc(&n->arena, sizeof(*sw), 64);
	if (!sw)
		return -KW_ENOMEM;
	memset(sw, 0, sizeof(*sw));
	sw->node = n;
	sw->loop = &n->loop;
	sw->key = *key;
	if (limits)
		sw->lim = *limits;
	else
		kw_swarm_limits_default(&sw->lim);
	ret = kw_peer_id_from_pubkey(&key->pub, &sw->id);
	if (ret < 0)
		return ret;
	kw_peer_id_to_text(&sw->id, sw->id_text, sizeof(sw->id_text));
	conns = sw->lim.max_conns_in + sw->lim.max_conns_out;
	sw->max_conns = conns;
	sw->reg.sw = sw;
	kw_proto_registry_mss(&sw->reg, &mreg);
	ret = kw_node_pool_create(n, &sw->conns, "swarm_conn", sizeof(struct kw_conn), conns);
	if (ret == 0)
		ret = kw_node_pool_create(n, &sw->bufs, "swarm_buf", KW_SWARM_BUF_SIZE,
					  (size_t)CONFIG_KW_NET_SWARM_BUFFERS);
	if (ret == 0)
		ret = kw_mss_init(&sw->mss, n, (uint32_t)CONFIG_KW_NET_SWARM_NEGOTIATIONS,
				  sw->lim.negotiate_timeout_ms, &mreg);
	if (ret == 0)
		ret = kw_upgrade_init(&sw->ups, n, &sw->key, conns, sw->lim.max_streams_per_conn);
	if (ret < 0)
		return ret;
	rl = (struct kw_rcmgr_limits){
		.conns_in = sw->lim.max_conns_in,
		.conns_in_reserved = sw->lim.conns_in_reserved,
		.conns_per_ip = sw->lim.conns_per_ip,
		.conns_per_subnet = sw->lim.conns_per_subnet,
		.hs_in = sw->lim.max_handshakes_in,
		.hs_per_ip = sw->lim.handshakes_per_ip,
		.hs_per_subnet = sw->lim.handshakes_per_subnet,
		.log_interval_ms = sw->lim.refusal_log_ms,
	};
	(void)kw_rng_bytes(&seed, sizeof(seed));  /* a zero seed still works, only guessable */
	ret = kw_rcmgr_init(&sw->rc, &n->arena, &rl, seed);
	if (ret < 0)
		return ret;
	kw_timer_init(&sw->rc_log, on_rc_log, sw);
	sw->bufs_hs_max = kw_swarm_bufs_handshake_share(CONFIG_KW_NET_SWARM_BUFFERS);
	kw_task_init(&sw->bq_task, bq_fn, sw);
	sw->drain.begin = drain_begin;
	sw->drain.busy = drain_busy;
	sw->drain.arg = sw;
	kw_node_add_drain(n, &sw->drain);
	*out = sw;
	return 0;
}

void kw_swarm_destroy(struct kw_swarm *sw)
{
	size_t i;

	if (!sw)
		return;
	for (i = 0; i < sw->n_listeners; i++) {
		kw_loop_unwatch(sw->loop, &sw->listeners[i].w);
		sw->loop->sys->ops->close(sw->loop->sys, sw->listeners[i].fd);
	}
	sw->n_listeners = 0;
	sw->draining = true;
	kw_timer_cancel(sw->loop, &sw->rc_log);
	while (sw->head) {
		struct kw_conn *c = sw->head;

		c->dead = true;
		if (!c->close_reason)
			c->close_reason = -KW_ESHUTDOWN;
		kw_task_cancel(sw->loop, &c->reap);
		reap_fn(sw->loop, &c->reap);
	}
	kw_task_cancel(sw->loop, &sw->bq_task);
}

uint32_t kw_swarm_bufs_handshake_share(uint32_t buffers)
{
	uint32_t up = (uint32_t)((uint64_t)buffers * CONFIG_KW_NET_SWARM_BUFFERS_UP_PERCENT / 100);

	/* a handshake borrows two at once; keep room for at least one */
	if (buffers < 2)
		return buffers;
	return buffers - up >= 2 ? buffers - up : 2;
}
