/*
 * Hivemind stream calls on the swarm (include/kw/net/hivemind.h, "stream calls"): serving
 * stream handlers and calling them, with hivemind's marker + 8-byte length framing
 * (net/hivemind/frame.c) on one libp2p stream per call. The behaviour follows
 * hivemind/p2p/p2p_daemon.py (learning-at-home/hivemind @ 4bd43b7):
 *  - _add_protobuf_stream_handler: requests are read into a queue of max_prefetch (5) and
 *    reading stops while it is full; any 0x01 frame ends the requests; EOF from the caller
 *    (p2pd closes the socket when the libp2p read side ends) cancels the handler; a
 *    handler's exception becomes one RPCError{message=str(e)} frame; then the server closes.
 *  - _iterate_protobuf_stream_handler: the caller writes its requests and END_OF_STREAM, never
 *    half-closes before the server's EOF, raises P2PHandlerError("Failed to call handler
 *    `<name>` at <peer>: <message>") on a 0x01 frame, and closes after EOF or the error.
 * One difference on purpose: a stream that ends inside a frame is an error here
 * (-KW_EPIPE), where hivemind's IncompleteReadError ends the iteration quietly.
 *
 * Both sides share one state (struct kw_hm_stream) with a receive buffer that holds the
 * prefetched frames contiguously (delivered ones are dropped from the front, the buffer is
 * compacted when a frame does not fit behind them) and a send buffer of queued frames.
 * Back-pressure in: on_data consumes exactly up to the end of a frame and stops when
 * `prefetch` complete frames wait, so the muxer keeps the rest and its window throttles the
 * peer. Back-pressure out: kw_hm_stream_send fails -KW_EAGAIN and on_writable follows.
 *
 * Owns: two pools of stream states from the node's arena (kw_hm_stream_setup), each block a
 * struct followed by its receive and send buffers. No allocation after start-up.
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "rpc_priv.h"

/* Send-buffer room kept free for the frame that ends a call (END_OF_STREAM, or an error
 * frame whose text is cut to fit), so ending never waits on the peer. */
#define TX_RESERVE   KW_HM_STREAM_TEXT_MAX
#define BUF_MIN      1024

struct sx_handler {
	struct kw_hm_sx *sx;
	const struct kw_hm_stream_ops *ops;
	void *arg;
	uint32_t idle_ms;
	char name[KW_PROTO_ID_MAX + 1];
};

enum {
	ST_OPENING,  /* caller: negotiating the protocol; sends wait in tx */
	ST_OPEN,     /* running */
	ST_CLOSING,  /* our side ended: flushing tx, then close_write */
	ST_DONE,     /* nothing more from us; waiting for on_close (grace timer bounds it) */
};

struct kw_hm_stream {
	struct kw_hm_sx *sx;
	const struct kw_hm_stream_ops *ops;
	void *arg;                    /* the handler's arg or the caller's user */
	void *user;                   /* kw_hm_stream_set_user */
	struct kw_stream *s;          /* NULL while opening and once the stream is gone */
	struct kw_conn *c;
	struct kw_timer timer;        /* idle deadline, then the close grace */
	uint32_t idle_ms;
	uint8_t state;
	bool server;
	bool live;                    /* the owner still holds the handle */
	bool eos_in;                  /* server: END_OF_STREAM (any 0x01 frame) received */
	bool eos_out;                 /* caller: END_OF_STREAM queued */
	bool eof_in;                  /* the peer half-closed */
	bool held, delivering, stalled, want_writable;
	bool in_data;                 /* inside on_data: the muxer offers the rest itself */
	unsigned pending;             /* complete frames in rx not yet delivered */
	size_t rx_head;               /* first undelivered (or held) frame */
	size_t rx_frame;              /* start of the frame being assembled */
	size_t rx_len;                /* bytes in rx */
	size_t held_len;
	size_t tx_off, tx_len;
	uint64_t msgs;
	uint8_t *rx, *tx;             /* buf_bytes each, right after the struct */
	char name[KW_PROTO_ID_MAX + 1];
	char text[KW_HM_STREAM_TEXT_MAX];
};

struct kw_hm_sx {
	struct kw_hm *hm;
	struct kw_swarm *sw;
	struct kw_loop *loop;
	struct kw_hm_stream_limits lim;
	struct kw_pool in, out;
	struct sx_handler handlers[KW_HM_HANDLERS_MAX];
	unsigned n_handlers;
	struct kw_hm_stream_stats st;
};

void kw_hm_stream_limits_default(struct kw_hm_stream_limits *l)
{
	l->streams_in = CONFIG_KW_NET_HIVEMIND_STREAMS_IN;
	l->streams_per_peer = CONFIG_KW_NET_HIVEMIND_STREAMS_PER_PEER;
	l->streams_out = CONFIG_KW_NET_HIVEMIND_STREAMS_OUT;
	l->buf_bytes = CONFIG_KW_NET_HIVEMIND_STREAM_BUF_BYTES;
	l->prefetch = CONFIG_KW_NET_HIVEMIND_STREAM_PREFETCH;
	l->idle_ms = CONFIG_KW_NET_HIVEMIND_STREAM_IDLE_MS;
}

int kw_hm_stream_setup(struct kw_hm *hm, const struct kw_hm_stream_limits *limits)
{
	struct kw_node *n;
	struct kw_hm_sx *sx;
	size_t block;
	int ret;

	if (!hm)
		return -KW_EINVAL;
	if (*kw_hm_sx_slot(hm))
		return -KW_EALREADY;
	n = kw_hm_node(hm);
	sx = (struct kw_hm_sx *)kw_arena_alloc(&n->arena, sizeof(*sx), 16);
	if (!sx)
		return -KW_ENOMEM;
	memset(sx, 0, sizeof(*sx));
	sx->hm = hm;
	sx->sw = kw_hm_swarm(hm);
	sx->loop = &n->loop;
	if (limits)
		sx->lim = *limits;
	else
		kw_hm_stream_limits_default(&sx->lim);
	if (!sx->lim.streams_in || !sx->lim.streams_per_peer || !sx->lim.streams_out ||
	    sx->lim.buf_bytes < BUF_MIN || !sx->lim.prefetch || !sx->lim.idle_ms)
		return -KW_EINVAL;
	block = KW_ALIGN_UP(sizeof(struct kw_hm_stream), 16) + 2 * (size_t)sx->lim.buf_bytes;
	ret = kw_node_pool_create(n, &sx->in, "hm_stream_in", block, sx->lim.streams_in);
	if (ret == 0)
		ret = kw_node_pool_create(n, &sx->out, "hm_stream_out", block, sx->lim.streams_out);
	if (ret < 0)
		return ret;
	*kw_hm_sx_slot(hm) = sx;
	return 0;
}

void kw_hm_stream_get_stats(const struct kw_hm *hm, struct kw_hm_stream_stats *st)
{
	struct kw_hm_sx *sx = *kw_hm_sx_slot((struct kw_hm *)hm);

	if (sx)
		*st = sx->st;
	else
		memset(st, 0, sizeof(*st));
}

/* ---- shared machinery ------------------------------------------------------------------- */

static void st_free(struct kw_hm_stream *st)
{
	struct kw_hm_sx *sx = st->sx;

	kw_timer_cancel(sx->loop, &st->timer);
	st->s = NULL;  /* streams_from() reads free blocks: keep them unmatched */
	st->c = NULL;
	kw_pool_free(st->server ? &sx->in : &sx->out, st);
}

/* Something moved: the idle deadline starts again. */
static void touch(struct kw_hm_stream *st)
{
	if (st->state <= ST_OPEN)
		kw_timer_start(st->sx->loop, &st->timer, st->idle_ms);
}

/* The served call ends before its handler ended it: tell the handler, once. */
static void srv_lose(struct kw_hm_stream *st, int reason)
{
	if (!st->live)
		return;
	st->live = false;
	if (st->ops->on_cancel)
		st->ops->on_cancel(st, reason, st->arg);
}

/* The call we make is over: on_done, once. */
static void cli_done(struct kw_hm_stream *st, int err, bool remote_error)
{
	struct kw_hm_stream_result r;

	if (!st->live)
		return;
	st->live = false;
	if (err < 0)
		st->sx->st.streams_out_failed++;
	if (!remote_error)
		st->text[0] = '\0';
	r.err = err;
	r.remote_error = remote_error;
	r.text = st->text;
	r.messages = st->msgs;
	st->ops->on_done(st, &r, st->arg);
}

/* Tells the owner (if it still holds the handle) and resets; on_close frees. */
static void st_abort(struct kw_hm_stream *st, int reason)
{
	if (st->server)
		srv_lose(st, reason);
	else
		cli_done(st, reason, false);
	kw_timer_cancel(st->sx->loop, &st->timer);
	if (st->s && st->state != ST_DONE)
		kw_stream_reset(st->s);
	st->state = ST_DONE;
}

/* A bad frame from the peer: counted, logged, the stream reset. */
static void st_bad(struct kw_hm_stream *st, int err, const char *why)
{
	if (err == -KW_EMSGSIZE)
		st->sx->st.oversized++;
	else
		st->sx->st.bad_frames++;
	KW_LOG_WRN(hivemind, "%s: %s stream %s: %s; resetting the stream",
		   st->c ? kw_conn_peer_short(st->c) : "?", st->name,
		   st->server ? "call refused" : "reply refused", why);
	if (st->server && st->live)
		st->sx->st.cancelled++;
	st_abort(st, err);
}

/*
 * Writes what tx holds. Never calls the owner (a write error resets the stream and on_close
 * tells the owner from the loop). Once tx is empty in ST_CLOSING, our side is closed.
 */
static void flush(struct kw_hm_stream *st)
{
	if (!st->s || st->state == ST_OPENING || st->state == ST_DONE)
		return;
	while (st->tx_off < st->tx_len) {
		long w = kw_stream_write(st->s, st->tx + st->tx_off, st->tx_len - st->tx_off);

		if (w < 0) {
			kw_timer_cancel(st->sx->loop, &st->timer);
			kw_stream_reset(st->s);
			st->state = ST_DONE;
			return;
		}
		if (w == 0)
			return;  /* on_writable continues */
		st->tx_off += (size_t)w;
	}
	st->tx_off = st->tx_len = 0;
	if (st->state == ST_CLOSING) {
		st->state = ST_DONE;
		kw_stream_close_write(st->s);
		/* the peer closes after our EOF; the grace bounds a peer that never does */
		kw_timer_start(st->sx->loop, &st->timer, st->idle_ms);
	}
}

/* Room for a frame of `need` bytes in tx, `reserve` bytes left over; compacts if it helps. */
static bool tx_fits(struct kw_hm_stream *st, size_t need, size_t reserve)
{
	size_t cap = st->sx->lim.buf_bytes;

	if (st->tx_len + need + reserve <= cap)
		return true;
	if (st->tx_off) {
		memmove(st->tx, st->tx + st->tx_off, st->tx_len - st->tx_off);
		st->tx_len -= st->tx_off;
		st->tx_off = 0;
	}
	return st->tx_len + need + reserve <= cap;
}

/* Queues the error frame that ends a served call (text cut at a character boundary). */
static void srv_queue_error(struct kw_hm_stream *st, const char *text, size_t len)
{
	size_t max = TX_RESERVE - KW_HM_FRAME_HDR - 3;  /* RPCError tag + 2-byte length */
	long n;

	if (len > max) {
		len = max;
		while (len && ((uint8_t)text[len] & 0xc0) == 0x80)
			len--;
	}
	tx_fits(st, TX_RESERVE, 0);  /* the reserve guarantees the room */
	n = kw_hm_frame_encode_error(text, len, st->tx + st->tx_len,
				     st->sx->lim.buf_bytes - st->tx_len);
	if (n > 0) {
		st->tx_len += (size_t)n;
		st->sx->st.errors_sent++;
	}
}

/* Drops the frames before rx_head so the frame being assembled can grow. */
static bool rx_compact(struct kw_hm_stream *st)
{
	if (st->held || st->rx_head == 0)
		return false;
	memmove(st->rx, st->rx + st->rx_head, st->rx_len - st->rx_head);
	st->rx_frame -= st->rx_head;
	st->rx_len -= st->rx_head;
	st->rx_head = 0;
	return true;
}

/*
 * Looks at the frame being assembled; counts it when complete. Return: the bytes it still
 * needs (always > 0: after a complete frame, the next one's header), or a bad frame's error.
 */
static long rx_need(struct kw_hm_stream *st, const char **why)
{
	for (;;) {
		size_t have = st->rx_len - st->rx_frame;
		uint8_t marker;
		uint64_t pl;
		int r;

		if (have < KW_HM_FRAME_HDR)
			return (long)(KW_HM_FRAME_HDR - have);
		r = kw_hm_frame_header(st->rx + st->rx_frame, have, &marker, &pl);
		if (r == -KW_EPROTO) {
			*why = "unknown frame marker";
			return r;
		}
		if (r == -KW_EMSGSIZE || pl > st->sx->lim.buf_bytes - KW_HM_FRAME_HDR) {
			*why = "frame larger than the stream buffer";
			return -KW_EMSGSIZE;
		}
		if (r < 0) {
			*why = "bad frame header";
			return r;
		}
		if (have < KW_HM_FRAME_HDR + pl)
			return (long)(KW_HM_FRAME_HDR + pl - have);
		st->pending++;
		st->rx_frame = st->rx_len;
	}
}

static void resume_if_stalled(struct kw_hm_stream *st)
{
	if (st->stalled && !st->in_data && st->s && st->state != ST_DONE) {
		st->stalled = false;
		kw_stream_resume(st->s);  /* deferred by the muxer: not re-entrant */
	}
}

/* The caller has everything the server sent: the call is over. */
static void cli_finish(struct kw_hm_stream *st)
{
	int err = st->rx_len != st->rx_frame ? -KW_EPIPE : 0;

	if (err)
		st->sx->st.bad_frames++;
	cli_done(st, err, false);
	kw_timer_cancel(st->sx->loop, &st->timer);
	if (st->s && st->state != ST_DONE) {
		kw_stream_close_write(st->s);  /* as hivemind's closing(writer) after EOF */
		st->state = ST_DONE;
		kw_timer_start(st->sx->loop, &st->timer, st->idle_ms);
	}
}

static void cli_remote_error(struct kw_hm_stream *st, const struct kw_hm_frame *f)
{
	char peer[KW_PEER_ID_TEXT_MAX];

	if (!st->c || kw_peer_id_to_text(kw_conn_peer_id(st->c), peer, sizeof(peer)) < 0)
		peer[0] = '\0';
	kw_hm_stream_error_text(st->name, peer, f, st->text, sizeof(st->text));
	cli_done(st, 0, true);
	kw_timer_cancel(st->sx->loop, &st->timer);
	if (st->s && st->state != ST_DONE) {
		kw_stream_close_write(st->s);  /* the server closes after its error frame */
		st->state = ST_DONE;
		kw_timer_start(st->sx->loop, &st->timer, st->idle_ms);
	}
}

/* Hands waiting frames to the owner until it holds one, ends, or none is left. */
static void deliver(struct kw_hm_stream *st)
{
	if (st->delivering)
		return;
	st->delivering = true;
	while (st->pending && !st->held && st->live && st->state == ST_OPEN) {
		struct kw_hm_frame f;
		const char *why = "";
		long n = kw_hm_frame_decode(st->rx + st->rx_head, st->rx_frame - st->rx_head, &f, &why);
		int r;

		if (n < 0) {
			st_bad(st, (int)n, why);
			break;
		}
		st->pending--;
		touch(st);
		if (f.marker == KW_HM_MARK_ERROR) {
			st->rx_head += (size_t)n;
			if (!st->server) {
				cli_remote_error(st, &f);
				break;
			}
			if (!st->eos_in) {  /* any 0x01 frame ends the requests; its text is ignored */
				st->eos_in = true;
				if (st->ops->on_end)
					st->ops->on_end(st, st->arg);
			}
			continue;
		}
		if (st->server && st->eos_in) {  /* after END_OF_STREAM hivemind reads no request */
			st->rx_head += (size_t)n;
			continue;
		}
		st->msgs++;
		st->sx->st.msgs_in++;
		r = st->ops->on_message(st, f.payload.p, f.payload.len, st->arg);
		if (r == KW_HM_STREAM_HOLD && st->live && st->state == ST_OPEN) {
			st->held = true;
			st->held_len = (size_t)n;
			break;
		}
		st->rx_head += (size_t)n;
	}
	if (!st->held && st->rx_head == st->rx_len)
		st->rx_head = st->rx_frame = st->rx_len = 0;
	st->delivering = false;
	if (!st->server && st->eof_in && !st->pending && !st->held && st->live)
		cli_finish(st);
	resume_if_stalled(st);
}

static size_t st_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct kw_hm_stream *st = (struct kw_hm_stream *)s->user;
	size_t cap = st->sx->lim.buf_bytes, used = 0;

	st->in_data = true;
	for (;;) {
		const char *why = "";
		long need;
		size_t take;

		if (!st->live || st->state != ST_OPEN) {
			used = len;  /* the call is over for us: what still comes is dropped */
			break;
		}
		need = rx_need(st, &why);
		if (need < 0) {
			st_bad(st, (int)need, why);
			used = len;
			break;
		}
		if (used == len)
			break;
		if (st->pending >= st->sx->lim.prefetch)
			deliver(st);  /* the owner may take them at once */
		if (st->rx_len + (size_t)need > cap)
			deliver(st);
		if (!st->live || st->state != ST_OPEN)
			continue;
		if (st->rx_len + (size_t)need > cap)
			rx_compact(st);
		if (st->pending >= st->sx->lim.prefetch || st->rx_len + (size_t)need > cap) {
			/* the muxer keeps the rest, its window throttles the peer; resumed when
			 * the owner takes a message (kw_hm_stream_next) */
			st->stalled = true;
			break;
		}
		take = KW_MIN((size_t)need, len - used);
		memcpy(st->rx + st->rx_len, data + used, take);
		st->rx_len += take;
		used += take;
	}
	deliver(st);
	st->in_data = false;
	return used;
}

static void st_on_eof(struct kw_stream *s)
{
	struct kw_hm_stream *st = (struct kw_hm_stream *)s->user;

	st->eof_in = true;
	if (!st->server) {
		deliver(st);  /* finishes once the buffered responses are delivered */
		return;
	}
	if (st->live) {  /* p2pd closes the socket; hivemind cancels the handler */
		st->sx->st.cancelled++;
		st_abort(st, -KW_ECANCELED);
	}
}

/* From the loop only: flush, and tell an owner who met a full send buffer that it drained. */
static void flush_and_tell(struct kw_hm_stream *st)
{
	flush(st);
	if (st->want_writable && st->live && st->tx_len == 0) {
		st->want_writable = false;
		if (st->ops->on_writable)
			st->ops->on_writable(st, st->arg);
	}
}

static void st_on_writable(struct kw_stream *s)
{
	flush_and_tell((struct kw_hm_stream *)s->user);
}

static void st_on_close(struct kw_stream *s, int reason)
{
	struct kw_hm_stream *st = (struct kw_hm_stream *)s->user;

	st->s = NULL;
	if (st->live) {
		if (st->server)
			st->sx->st.cancelled++;
		st_abort(st, reason ? reason : (st->server ? -KW_ECANCELED : -KW_EPIPE));
	}
	st_free(st);
}

static const struct kw_stream_handler st_h = {
	.on_data = st_on_data,
	.on_eof = st_on_eof,
	.on_writable = st_on_writable,
	.on_close = st_on_close,
};

static void srv_close(struct kw_hm_stream *st);

static void st_on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_hm_stream *st = (struct kw_hm_stream *)t->arg;
	static const char timeout_text[] = "TimeoutError()";

	if (!st->live) {  /* grace after our close ran out, or tx never drained: give up */
		st->state = ST_DONE;
		if (st->s)
			kw_stream_reset(st->s);
		return;
	}
	st->sx->st.deadlines++;
	KW_LOG_INF(hivemind, "%s: %s stream idle for %u ms; ending it",
		   st->c ? kw_conn_peer_short(st->c) : "?", st->name, st->idle_ms);
	if (!st->server) {
		cli_done(st, -KW_ETIMEDOUT, false);
		if (st->s)
			kw_stream_reset(st->s);  /* on_close frees; still opening: on_open does */
		st->state = ST_DONE;
		return;
	}
	srv_lose(st, -KW_ETIMEDOUT);
	srv_queue_error(st, timeout_text, sizeof(timeout_text) - 1);
	srv_close(st);
}

/* ---- the owner's calls --------------------------------------------------------------------- */

int kw_hm_stream_send(struct kw_hm_stream *st, const uint8_t *msg, size_t len)
{
	size_t need = KW_HM_FRAME_HDR + len;

	if (!st || !st->live || st->state > ST_OPEN || (!st->server && st->eos_out) ||
	    (!msg && len))
		return -KW_EINVAL;
	if (len > st->sx->lim.buf_bytes || need + TX_RESERVE > st->sx->lim.buf_bytes ||
	    len > KW_HM_FRAME_MAX)
		return -KW_EMSGSIZE;
	if (!tx_fits(st, need, TX_RESERVE)) {
		st->want_writable = true;
		return -KW_EAGAIN;
	}
	kw_hm_frame_encode_header(KW_HM_MARK_MESSAGE, len, st->tx + st->tx_len, KW_HM_FRAME_HDR);
	if (len)
		memcpy(st->tx + st->tx_len + KW_HM_FRAME_HDR, msg, len);
	st->tx_len += need;
	st->sx->st.msgs_out++;
	touch(st);
	flush(st);
	return 0;
}

/* Ends a served call: tx is sent, then our side closes; the handle is dead. */
static void srv_close(struct kw_hm_stream *st)
{
	st->live = false;
	st->state = ST_CLOSING;
	kw_timer_cancel(st->sx->loop, &st->timer);
	flush(st);
	if (st->state == ST_CLOSING)  /* tx not drained: bound how long we wait for the peer */
		kw_timer_start(st->sx->loop, &st->timer, st->idle_ms);
}

int kw_hm_stream_end(struct kw_hm_stream *st)
{
	static const uint8_t eos[KW_HM_FRAME_HDR] = { KW_HM_MARK_ERROR };

	if (!st || !st->live || st->state > ST_OPEN)
		return -KW_EINVAL;
	if (st->server) {
		srv_close(st);
		return 0;
	}
	if (st->eos_out)
		return -KW_EINVAL;
	st->eos_out = true;
	tx_fits(st, sizeof(eos), 0);  /* the reserve guarantees the room */
	memcpy(st->tx + st->tx_len, eos, sizeof(eos));
	st->tx_len += sizeof(eos);
	touch(st);
	flush(st);
	return 0;
}

int kw_hm_stream_error(struct kw_hm_stream *st, const char *text)
{
	static const char bad_text[] = "RuntimeError('error text is not UTF-8')";
	int ret = 0;

	if (!st || !st->server || !st->live || st->state > ST_OPEN || !text)
		return -KW_EINVAL;
	if (!kw_mp_utf8_valid((const uint8_t *)text, strlen(text))) {
		text = bad_text;
		ret = -KW_EINVAL;
	}
	srv_queue_error(st, text, strlen(text));
	srv_close(st);
	return ret;
}

int kw_hm_stream_next(struct kw_hm_stream *st)
{
	if (!st || !st->held)
		return -KW_EINVAL;
	st->held = false;
	st->rx_head += st->held_len;
	st->held_len = 0;
	deliver(st);
	return 0;
}

int kw_hm_stream_cancel(struct kw_hm_stream *st)
{
	if (!st || st->server || !st->live)
		return -KW_EINVAL;
	st_abort(st, -KW_ECANCELED);
	return 0;
}

struct kw_conn *kw_hm_stream_conn(const struct kw_hm_stream *st)
{
	return st->c;
}

void kw_hm_stream_set_user(struct kw_hm_stream *st, void *p)
{
	st->user = p;
}

void *kw_hm_stream_user(const struct kw_hm_stream *st)
{
	return st->user;
}

unsigned kw_hm_stream_buffered(const struct kw_hm_stream *st)
{
	return st->pending;
}

/* ---- serving --------------------------------------------------------------------------------- */

static unsigned streams_from(const struct kw_hm_sx *sx, const struct kw_conn *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < sx->in.count; i++) {
		const struct kw_hm_stream *st =
			(const struct kw_hm_stream *)(sx->in.storage + i * sx->in.stride);

		if (st->c == c && st->s)  /* free blocks have both cleared (st_free) */
			n++;
	}
	return n;
}

static void st_init(struct kw_hm_stream *st, struct kw_hm_sx *sx, const char *name)
{
	uint8_t *bufs = (uint8_t *)st + KW_ALIGN_UP(sizeof(*st), 16);

	memset(st, 0, sizeof(*st));
	st->sx = sx;
	st->rx = bufs;
	st->tx = bufs + sx->lim.buf_bytes;
	st->live = true;
	memcpy(st->name, name, strlen(name) + 1);  /* callers checked <= KW_PROTO_ID_MAX */
	kw_timer_init(&st->timer, st_on_timer, st);
}

static int sx_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	const struct sx_handler *h = (const struct sx_handler *)arg;
	struct kw_hm_sx *sx = h->sx;
	struct kw_conn *c = kw_stream_conn(s);
	struct kw_hm_stream *st;

	if (streams_from(sx, c) >= sx->lim.streams_per_peer ||
	    !(st = (struct kw_hm_stream *)kw_pool_alloc(&sx->in))) {
		sx->st.refused_limit++;
		KW_LOG_INF(hivemind, "%s: %s stream refused: stream limit reached",
			   kw_conn_peer_short(c), h->name);
		return -KW_ELIMIT;
	}
	st_init(st, sx, h->name);
	st->server = true;
	st->ops = h->ops;
	st->arg = h->arg;
	st->idle_ms = h->idle_ms;
	st->s = s;
	st->c = c;
	st->state = ST_OPEN;
	kw_timer_start(sx->loop, &st->timer, st->idle_ms);
	s->h = &st_h;
	s->user = st;
	sx->st.streams_in++;
	return 0;
}

int kw_hm_register_stream(struct kw_hm *hm, const char *name, const struct kw_hm_stream_ops *ops,
			  void *arg, uint32_t idle_ms)
{
	struct kw_hm_sx *sx = hm ? *kw_hm_sx_slot(hm) : NULL;
	struct sx_handler *h;
	size_t l;
	int ret;

	if (!sx || !name || !ops || !ops->on_message || (l = strlen(name)) == 0 ||
	    l > KW_PROTO_ID_MAX || !kw_mp_utf8_valid((const uint8_t *)name, l))
		return -KW_EINVAL;
	for (unsigned i = 0; i < sx->n_handlers; i++)
		if (!strcmp(sx->handlers[i].name, name))
			return -KW_EEXIST;
	if (sx->n_handlers >= KW_HM_HANDLERS_MAX)
		return -KW_ENOSPC;
	h = &sx->handlers[sx->n_handlers];
	h->sx = sx;
	h->ops = ops;
	h->arg = arg;
	h->idle_ms = idle_ms ? idle_ms : sx->lim.idle_ms;
	memcpy(h->name, name, l + 1);
	ret = kw_swarm_register(sx->sw, h->name, sx_accept, h);
	if (ret < 0)
		return ret;
	sx->n_handlers++;
	return 0;
}

/* ---- calling --------------------------------------------------------------------------------- */

static void cli_on_open(struct kw_stream *s, int err, void *user)
{
	struct kw_hm_stream *st = (struct kw_hm_stream *)user;

	if (err < 0) {
		cli_done(st, err, false);
		st_free(st);
		return;
	}
	st->s = s;
	if (st->state == ST_DONE) {  /* cancelled or idle while negotiating */
		kw_stream_reset(s);   /* on_close frees */
		return;
	}
	st->state = ST_OPEN;
	touch(st);
	flush_and_tell(st);  /* requests queued while negotiating */
}

int kw_hm_stream_open(struct kw_hm *hm, struct kw_conn *c, const char *name,
		      const struct kw_hm_stream_ops *ops, void *user, uint32_t idle_ms,
		      struct kw_hm_stream **out)
{
	struct kw_hm_sx *sx = hm ? *kw_hm_sx_slot(hm) : NULL;
	struct kw_hm_stream *st;
	int ret;

	if (!sx || !c || !name || !ops || !ops->on_message || !ops->on_done || !out ||
	    strlen(name) > KW_PROTO_ID_MAX)
		return -KW_EINVAL;
	st = (struct kw_hm_stream *)kw_pool_alloc(&sx->out);
	if (!st)
		return -KW_ELIMIT;
	st_init(st, sx, name);
	st->ops = ops;
	st->arg = user;
	st->idle_ms = idle_ms ? idle_ms : sx->lim.idle_ms;
	st->c = c;
	st->state = ST_OPENING;
	ret = kw_swarm_open_stream(sx->sw, c, name, &st_h, st, cli_on_open);
	if (ret < 0) {
		st->c = NULL;
		kw_pool_free(&sx->out, st);
		return ret;
	}
	kw_timer_start(sx->loop, &st->timer, st->idle_ms);
	sx->st.streams_out++;
	*out = st;
	return 0;
}
