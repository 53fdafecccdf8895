/*
 * yamux sessions and streams (kw/net/yamux.h; wire format: libp2p/specs yamux/README.md).
 *
 * Receive: Data payload goes straight to the stream handler's on_data; whatever it does not
 * consume is copied into the stream's chunk queue and offered again after kw_stream_resume.
 * The peer is credited (WINDOW_UPDATE) only for consumed bytes, in steps of half the window,
 * so a stream never holds more than its window: 256 KiB, doubled by extra credit while the
 * handler keeps up (grow_credit). Send: a write becomes one
 * Data frame of at most 65507 payload bytes, so one yamux frame is one Noise frame.
 * Stream close notifications run from the session's task, never inside the caller's call.
 */
#include <string.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

#include <kw/net/yamux.h>

enum { KW_YAMUX_T_DATA = 0, KW_YAMUX_T_WU = 1, KW_YAMUX_T_PING = 2, KW_YAMUX_T_GOAWAY = 3 };
enum { KW_YAMUX_F_SYN = 1, KW_YAMUX_F_ACK = 2, KW_YAMUX_F_FIN = 4, KW_YAMUX_F_RST = 8 };

#define KW_YAMUX_HDR 12
#define KW_YAMUX_MAX_PAYLOAD (65519u - KW_YAMUX_HDR)      /* one yamux frame per Noise frame */
#define KW_YAMUX_CTL_RESERVE 512u                /* output room kept for control frames */
#define KW_YAMUX_PENDING_RST 16

struct kw_yamux_chunk {
	struct kw_yamux_chunk *next;
	uint32_t len, off;
	uint8_t data[KW_YAMUX_CHUNK];
};

struct kw_yamux_stream {
	struct kw_stream s;              /* first: handlers get &ys->s */
	struct kw_yamux *y;
	struct kw_yamux_stream *next;
	uint64_t send_win;
	uint32_t recv_win;               /* what the peer may still send us */
	uint32_t win;                    /* receive window granted: 256 KiB, grows (grow_credit) */
	uint32_t uncredited;             /* consumed but not yet credited */
	struct kw_yamux_chunk *rx_head, *rx_tail;
	uint32_t rx_bytes;
	int close_reason;
	bool syn_pending, ack_pending;   /* flags to put on our next frame */
	bool ctl_syn, ctl_fin, ctl_rst;  /* control frames that did not fit, to retry */
	bool local_fin, fin_sent, remote_fin, eof_done;
	bool reset, close_queued, want_writable, resume_queued;
	bool queued;                     /* data had to be queued since the last credit */
};

struct kw_yamux {
	struct kw_yamux_pools *p;
	const struct kw_yamux_io *io;
	void *arg;
	struct kw_yamux_stream *streams;
	uint32_t n_streams, max_streams, next_id;
	uint32_t max_remote_id;          /* highest stream id the peer opened (SYN) */
	bool client;
	/* input parser */
	uint8_t hdr[KW_YAMUX_HDR];
	uint8_t hdr_have;
	uint8_t cur_flags;
	uint32_t payload_left;
	struct kw_yamux_stream *cur;
	bool in_payload;
	/* session state */
	bool goaway_sent, goaway_rcvd, goaway_ctl, closed_told, paused;
	uint32_t goaway_code, goaway_rcvd_code;
	bool ping_ack_pending;
	uint32_t ping_value;
	uint32_t rst_ids[KW_YAMUX_PENDING_RST];
	uint8_t n_rst;
	struct kw_task task;
};

static const struct kw_stream_ops g_ops;

static struct kw_yamux_stream *to_ys(struct kw_stream *s) { return (struct kw_yamux_stream *)s; }

/* ---- output ------------------------------------------------------------------------------ */

static void put_hdr(uint8_t *h, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	h[0] = 0;
	h[1] = type;
	kw_put_be16(h + 2, flags);
	kw_put_be32(h + 4, id);
	kw_put_be32(h + 8, len);
}

static int send_ctl(struct kw_yamux *y, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	uint8_t h[KW_YAMUX_HDR];

	put_hdr(h, type, flags, id, len);
	return y->io->output(y->arg, h, KW_YAMUX_HDR, NULL, 0);
}

static uint16_t take_open_flags(struct kw_yamux_stream *ys)
{
	uint16_t f = 0;

	if (ys->syn_pending)
		f |= KW_YAMUX_F_SYN;
	if (ys->ack_pending)
		f |= KW_YAMUX_F_ACK;
	ys->syn_pending = false;
	ys->ack_pending = false;
	return f;
}

static void queue_task(struct kw_yamux *y)
{
	kw_task_post(y->p->loop, &y->task);
}

static void maybe_closed(struct kw_yamux_stream *ys)
{
	if (ys->close_queued)
		return;
	if (ys->reset || (ys->fin_sent && ys->remote_fin && ys->eof_done && !ys->rx_bytes)) {
		ys->close_queued = true;
		queue_task(ys->y);
	}
}

/*
 * Extra credit that doubles a stream's receive window (up to KW_YAMUX_MAX_WINDOW) when its
 * handler is keeping up: it consumed everything on arrival since the last credit, so nothing
 * had to be queued. A 256 KiB window is about 0.3 ms of data at loopback speed, less than the
 * time the peer takes to act on our update, so a fast bulk stream would stall on credit. The
 * grown window must fit in a quarter of the free chunk pool, so one stream that stalls later
 * cannot take the pool from everyone else; it never shrinks (yamux has no way to take credit
 * back), which the chunk pool's back-pressure covers.
 */
static uint32_t grow_credit(const struct kw_yamux_stream *ys)
{
	const struct kw_pool *cp = &ys->y->p->chunks;
	uint64_t free_bytes = (uint64_t)(cp->count - cp->used) * KW_YAMUX_CHUNK;
	uint32_t grow;

	if (ys->queued || ys->rx_bytes || ys->win >= KW_YAMUX_MAX_WINDOW)
		return 0;
	grow = KW_MIN(ys->win, KW_YAMUX_MAX_WINDOW - ys->win);
	if ((uint64_t)(ys->win + grow) > free_bytes / 4)
		return 0;
	return grow;
}

static void flush_ctl(struct kw_yamux_stream *ys)
{
	struct kw_yamux *y = ys->y;
	uint16_t f;

	if (ys->ctl_rst) {
		if (send_ctl(y, KW_YAMUX_T_WU, KW_YAMUX_F_RST, ys->s.id, 0) < 0)
			return;
		ys->ctl_rst = false;
		return;
	}
	if (ys->reset)
		return;
	if (ys->ctl_syn) {
		f = take_open_flags(ys);
		if (send_ctl(y, KW_YAMUX_T_WU, f, ys->s.id, 0) < 0) {
			ys->syn_pending = (f & KW_YAMUX_F_SYN) != 0;
			ys->ack_pending = (f & KW_YAMUX_F_ACK) != 0;
			return;
		}
		ys->ctl_syn = false;
	}
	if (ys->uncredited >= ys->win / 2 ||
	    (ys->uncredited && !ys->rx_bytes && ys->recv_win < ys->win / 2)) {
		uint32_t grow = grow_credit(ys);

		f = take_open_flags(ys);
		if (send_ctl(y, KW_YAMUX_T_WU, f, ys->s.id, ys->uncredited + grow) < 0) {
			ys->syn_pending = (f & KW_YAMUX_F_SYN) != 0;
			ys->ack_pending = (f & KW_YAMUX_F_ACK) != 0;
			return;
		}
		ys->recv_win += ys->uncredited + grow;
		ys->win += grow;
		ys->uncredited = 0;
		ys->queued = ys->rx_bytes != 0;
	}
	if (ys->ctl_fin) {
		f = take_open_flags(ys);
		if (send_ctl(y, KW_YAMUX_T_WU, (uint16_t)(f | KW_YAMUX_F_FIN), ys->s.id, 0) < 0) {
			ys->syn_pending = (f & KW_YAMUX_F_SYN) != 0;
			ys->ack_pending = (f & KW_YAMUX_F_ACK) != 0;
			return;
		}
		ys->ctl_fin = false;
		ys->fin_sent = true;
		maybe_closed(ys);
	}
}

/* ---- streams ---------------------------------------------------------------------------- */

static struct kw_yamux_stream *find(struct kw_yamux *y, uint32_t id)
{
	struct kw_yamux_stream *ys;

	for (ys = y->streams; ys; ys = ys->next)
		if (ys->s.id == id)
			return ys;
	return NULL;
}

static struct kw_yamux_stream *stream_new(struct kw_yamux *y, uint32_t id, bool outbound)
{
	struct kw_yamux_stream *ys = (struct kw_yamux_stream *)kw_pool_alloc(&y->p->streams);

	if (!ys)
		return NULL;
	ys->s.ops = &g_ops;
	ys->s.id = id;
	ys->s.outbound = outbound;
	ys->y = y;
	ys->send_win = KW_YAMUX_WINDOW;
	ys->recv_win = KW_YAMUX_WINDOW;
	ys->win = KW_YAMUX_WINDOW;
	ys->next = y->streams;
	y->streams = ys;
	y->n_streams++;
	return ys;
}

static void free_chunks(struct kw_yamux_stream *ys)
{
	while (ys->rx_head) {
		struct kw_yamux_chunk *c = ys->rx_head;

		ys->rx_head = c->next;
		kw_pool_free(&ys->y->p->chunks, c);
	}
	ys->rx_tail = NULL;
	ys->rx_bytes = 0;
}

static void stream_free(struct kw_yamux_stream *ys)
{
	struct kw_yamux *y = ys->y;
	struct kw_yamux_stream **pp;

	free_chunks(ys);
	for (pp = &y->streams; *pp; pp = &(*pp)->next)
		if (*pp == ys) {
			*pp = ys->next;
			break;
		}
	if (y->cur == ys)
		y->cur = NULL;
	y->n_streams--;
	kw_pool_free(&y->p->streams, ys);
}

/* Copies bytes into the stream's chunk queue. Returns how many fit. */
static size_t enqueue(struct kw_yamux_stream *ys, const uint8_t *d, size_t n)
{
	size_t done = 0;

	while (done < n) {
		struct kw_yamux_chunk *c = ys->rx_tail;
		size_t k;

		if (!c || c->len == KW_YAMUX_CHUNK) {
			c = (struct kw_yamux_chunk *)kw_pool_alloc(&ys->y->p->chunks);
			if (!c)
				break;
			if (ys->rx_tail)
				ys->rx_tail->next = c;
			else
				ys->rx_head = c;
			ys->rx_tail = c;
		}
		k = KW_MIN(n - done, KW_YAMUX_CHUNK - c->len);
		memcpy(c->data + c->len, d + done, k);
		c->len += (uint32_t)k;
		done += k;
	}
	ys->rx_bytes += (uint32_t)done;
	if (done)
		ys->queued = true;
	return done;
}

static void deliver_eof(struct kw_yamux_stream *ys)
{
	if (ys->remote_fin && !ys->eof_done && !ys->rx_bytes && !ys->reset) {
		ys->eof_done = true;
		if (ys->s.h && ys->s.h->on_eof)
			ys->s.h->on_eof(&ys->s);
		maybe_closed(ys);
	}
}

/* Offers queued bytes to the handler until it stops consuming. */
static void drain_queue(struct kw_yamux_stream *ys)
{
	while (ys->rx_head && !ys->reset && ys->s.h && ys->s.h->on_data) {
		struct kw_yamux_chunk *c = ys->rx_head;
		size_t avail = c->len - c->off;
		size_t k = ys->s.h->on_data(&ys->s, c->data + c->off, avail);

		if (ys->reset || !ys->rx_head)
			break;
		if (k > avail)
			k = avail;
		c->off += (uint32_t)k;
		ys->rx_bytes -= (uint32_t)k;
		ys->uncredited += (uint32_t)k;
		if (c->off == c->len) {
			ys->rx_head = c->next;
			if (!ys->rx_head)
				ys->rx_tail = NULL;
			kw_pool_free(&ys->y->p->chunks, c);
		} else if (k == 0) {
			break;
		}
	}
	flush_ctl(ys);
	deliver_eof(ys);
}

/* Input for one stream; returns how many bytes were taken (consumed or queued). */
static size_t deliver(struct kw_yamux_stream *ys, const uint8_t *d, size_t n)
{
	size_t k = 0;

	if (ys->reset || ys->remote_fin)
		return n;  /* data for a dead or finished stream is dropped */
	if (!ys->rx_head && ys->s.h && ys->s.h->on_data) {
		k = ys->s.h->on_data(&ys->s, d, n);
		if (k > n)
			k = n;
		ys->uncredited += (uint32_t)k;
		if (ys->reset)
			return n;
	}
	if (k < n)
		k += enqueue(ys, d + k, n - k);
	flush_ctl(ys);
	return k;
}

/* ---- input ------------------------------------------------------------------------------- */

static int proto_err(struct kw_yamux *y, const char *why)
{
	KW_LOG_WRN(yamux, "protocol error: %s", why);
	return -KW_EPROTO;
}

static void remote_rst(struct kw_yamux *y, uint32_t id)
{
	if (y->n_rst < KW_YAMUX_PENDING_RST && send_ctl(y, KW_YAMUX_T_WU, KW_YAMUX_F_RST, id, 0) < 0)
		y->rst_ids[y->n_rst++] = id;
}

static int on_header(struct kw_yamux *y)
{
	uint8_t type = y->hdr[1];
	uint16_t flags = kw_get_be16(y->hdr + 2);
	uint32_t id = kw_get_be32(y->hdr + 4), len = kw_get_be32(y->hdr + 8);
	struct kw_yamux_stream *ys;

	if (y->hdr[0] != 0)
		return proto_err(y, "frame version not 0");
	switch (type) {
	case KW_YAMUX_T_PING:
		if (id != 0)
			return proto_err(y, "ping on a stream");
		if (flags == KW_YAMUX_F_SYN) {
			if (send_ctl(y, KW_YAMUX_T_PING, KW_YAMUX_F_ACK, 0, len) < 0) {
				y->ping_ack_pending = true;
				y->ping_value = len;
			}
		}
		return 0;  /* we never ping, so an ACK is ignored */
	case KW_YAMUX_T_GOAWAY:
		y->goaway_rcvd = true;
		y->goaway_rcvd_code = len;
		if (len != KW_YAMUX_GOAWAY_NORMAL)
			KW_LOG_INF(yamux, "peer sent go-away code %u (%s)", len,
				   len == KW_YAMUX_GOAWAY_PROTOCOL ? "protocol error" :
				   len == KW_YAMUX_GOAWAY_INTERNAL ? "internal error" : "unknown");
		queue_task(y);
		return 0;
	case KW_YAMUX_T_DATA:
	case KW_YAMUX_T_WU:
		break;
	default:
		return proto_err(y, "unknown frame type");
	}
	if (id == 0)
		return proto_err(y, "data or window update on stream 0");
	ys = find(y, id);
	if (!ys && !(flags & KW_YAMUX_F_SYN)) {
		/* A stream that was open and is gone (we reset or closed it while frames were in
		 * flight) is normal: drop. One that was never opened is a peer bug. */
		bool ours = ((id & 1) != 0) == y->client;

		if (ours ? id >= y->next_id : id > y->max_remote_id)
			return proto_err(y, "frame for a stream that was never opened");
	}
	if (flags & KW_YAMUX_F_SYN) {
		if (ys)
			return proto_err(y, "SYN for an open stream");
		if (((id & 1) != 0) == y->client)
			return proto_err(y, "SYN with our stream id parity");
		if (id <= y->max_remote_id)
			return proto_err(y, "SYN reuses a stream id");
		y->max_remote_id = id;
		if (y->goaway_sent || y->n_streams >= y->max_streams) {
			KW_LOG_WRN(yamux, "refusing stream %u: %s", id,
				   kw_strerror(y->goaway_sent ? -KW_ESHUTDOWN : -KW_ELIMIT));
			remote_rst(y, id);
		} else {
			ys = stream_new(y, id, false);
			if (!ys) {
				KW_LOG_WRN(yamux, "refusing stream %u: %s", id, kw_strerror(-KW_ENOMEM));
				remote_rst(y, id);
			} else {
				ys->ack_pending = true;
				y->io->new_stream(y->arg, &ys->s);
			}
		}
	}
	if (ys && (flags & KW_YAMUX_F_RST)) {
		if (!ys->reset) {
			ys->reset = true;
			ys->close_reason = -KW_ECONNRESET;
			free_chunks(ys);
			maybe_closed(ys);
		}
		ys = NULL;
	}
	if (type == KW_YAMUX_T_WU) {
		if (ys && !ys->reset) {
			ys->send_win += len;
			if (ys->want_writable && ys->send_win > 0) {
				ys->want_writable = false;
				if (ys->s.h && ys->s.h->on_writable)
					ys->s.h->on_writable(&ys->s);
			}
		}
		if (ys && (flags & KW_YAMUX_F_FIN) && !ys->remote_fin) {
			ys->remote_fin = true;
			deliver_eof(ys);
		}
		return 0;
	}
	/* Data */
	if (ys && !ys->reset && len > ys->recv_win)
		return proto_err(y, "data beyond the receive window");
	if (ys && !ys->reset)
		ys->recv_win -= len;
	y->cur = ys;
	y->cur_flags = (uint8_t)flags;
	y->payload_left = len;
	y->in_payload = len > 0;
	if (!y->in_payload && ys && (flags & KW_YAMUX_F_FIN) && !ys->remote_fin) {
		ys->remote_fin = true;
		deliver_eof(ys);
	}
	return 0;
}

int kw_yamux_input(struct kw_yamux *y, const uint8_t *p, size_t n, size_t *used)
{
	size_t off = 0;
	int ret;

	y->paused = false;
	while (off < n) {
		if (!y->in_payload) {
			size_t k = KW_MIN((size_t)(KW_YAMUX_HDR - y->hdr_have), n - off);

			memcpy(y->hdr + y->hdr_have, p + off, k);
			y->hdr_have = (uint8_t)(y->hdr_have + k);
			off += k;
			if (y->hdr_have < KW_YAMUX_HDR)
				break;
			y->hdr_have = 0;
			ret = on_header(y);
			if (ret < 0) {
				/* tell the peer why before the connection goes (best effort) */
				if (!y->goaway_sent) {
					y->goaway_sent = true;
					y->goaway_code = KW_YAMUX_GOAWAY_PROTOCOL;
					send_ctl(y, KW_YAMUX_T_GOAWAY, 0, 0, KW_YAMUX_GOAWAY_PROTOCOL);
				}
				*used = off;
				return ret;
			}
			continue;
		}
		{
			size_t k = KW_MIN((size_t)y->payload_left, n - off), taken;
			struct kw_yamux_stream *ys = y->cur;

			taken = ys ? deliver(ys, p + off, k) : k;
			off += taken;
			y->payload_left -= (uint32_t)taken;
			if (taken < k) {
				y->paused = true;  /* chunk pool empty: wait for a resume */
				break;
			}
			if (y->payload_left == 0) {
				y->in_payload = false;
				ys = y->cur;
				if (ys && (y->cur_flags & KW_YAMUX_F_FIN) && !ys->remote_fin) {
					ys->remote_fin = true;
					deliver_eof(ys);
				}
			}
		}
	}
	*used = off;
	return 0;
}

/* ---- the session task: close notifications, resumes, go-away ------------------------------ */

static int task_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_yamux *y = (struct kw_yamux *)t->arg;
	int guard = 4096;

	while (guard-- > 0) {
		struct kw_yamux_stream *ys;

		for (ys = y->streams; ys; ys = ys->next)
			if (ys->resume_queued || ys->close_queued)
				break;
		if (!ys)
			break;
		if (ys->resume_queued) {
			ys->resume_queued = false;
			drain_queue(ys);
			continue;
		}
		if (ys->ctl_rst)
			flush_ctl(ys);
		if (ys->s.h && ys->s.h->on_close)
			ys->s.h->on_close(&ys->s, ys->reset ? (ys->close_reason ? ys->close_reason :
							       -KW_ECONNRESET) : 0);
		stream_free(ys);
	}
	if (y->paused)
		y->io->kick(y->arg);
	if ((y->goaway_rcvd || y->goaway_sent) && y->n_streams == 0 && !y->closed_told) {
		y->closed_told = true;
		y->io->closed(y->arg);
	}
	return KW_TASK_DONE;
}

void kw_yamux_on_output_space(struct kw_yamux *y)
{
	struct kw_yamux_stream *ys;

	if (y->ping_ack_pending && send_ctl(y, KW_YAMUX_T_PING, KW_YAMUX_F_ACK, 0, y->ping_value) == 0)
		y->ping_ack_pending = false;
	while (y->n_rst && send_ctl(y, KW_YAMUX_T_WU, KW_YAMUX_F_RST, y->rst_ids[y->n_rst - 1], 0) == 0)
		y->n_rst--;
	if (y->goaway_ctl && send_ctl(y, KW_YAMUX_T_GOAWAY, 0, 0, y->goaway_code) == 0)
		y->goaway_ctl = false;
	for (ys = y->streams; ys; ys = ys->next)
		flush_ctl(ys);
	for (ys = y->streams; ys; ys = ys->next) {
		if (ys->want_writable && !ys->reset && ys->send_win > 0 &&
		    y->io->output_space(y->arg) > KW_YAMUX_CTL_RESERVE + KW_YAMUX_HDR) {
			ys->want_writable = false;
			if (ys->s.h && ys->s.h->on_writable)
				ys->s.h->on_writable(&ys->s);
		}
	}
}

/* ---- stream ops -------------------------------------------------------------------------- */

static long s_write(struct kw_stream *s, const uint8_t *buf, size_t len)
{
	struct kw_yamux_stream *ys = to_ys(s);
	struct kw_yamux *y = ys->y;
	size_t done = 0;

	if (ys->reset)
		return -KW_ECONNRESET;
	if (ys->local_fin)
		return -KW_EPIPE;
	while (done < len) {
		size_t space = y->io->output_space(y->arg), n;
		uint8_t h[KW_YAMUX_HDR];
		uint16_t f;

		if (space <= KW_YAMUX_CTL_RESERVE + KW_YAMUX_HDR || ys->send_win == 0)
			break;
		n = KW_MIN(len - done, space - KW_YAMUX_CTL_RESERVE - KW_YAMUX_HDR);
		n = KW_MIN(n, (size_t)KW_YAMUX_MAX_PAYLOAD);
		if (n > ys->send_win)
			n = (size_t)ys->send_win;
		f = take_open_flags(ys);
		put_hdr(h, KW_YAMUX_T_DATA, f, s->id, (uint32_t)n);
		if (y->io->output(y->arg, h, KW_YAMUX_HDR, buf + done, n) < 0) {
			ys->syn_pending = (f & KW_YAMUX_F_SYN) != 0;
			ys->ack_pending = (f & KW_YAMUX_F_ACK) != 0;
			break;
		}
		ys->send_win -= n;
		done += n;
	}
	if (done < len)
		ys->want_writable = true;
	return (long)done;
}

static int s_close_write(struct kw_stream *s)
{
	struct kw_yamux_stream *ys = to_ys(s);

	if (ys->reset)
		return -KW_ECONNRESET;
	if (ys->local_fin)
		return 0;
	ys->local_fin = true;
	ys->ctl_fin = true;
	flush_ctl(ys);
	return 0;
}

static void s_reset(struct kw_stream *s)
{
	struct kw_yamux_stream *ys = to_ys(s);

	if (ys->reset)
		return;
	ys->reset = true;
	ys->close_reason = -KW_ECONNRESET;
	free_chunks(ys);
	if (!(ys->fin_sent && ys->remote_fin)) {
		ys->ctl_rst = true;
		flush_ctl(ys);
	}
	maybe_closed(ys);
}

static void s_resume(struct kw_stream *s)
{
	struct kw_yamux_stream *ys = to_ys(s);

	if (ys->reset || (!ys->rx_bytes && !(ys->remote_fin && !ys->eof_done)))
		return;
	ys->resume_queued = true;
	queue_task(ys->y);
}

static const struct kw_stream_ops g_ops = {
	.write = s_write,
	.close_write = s_close_write,
	.reset = s_reset,
	.resume = s_resume,
};

/* ---- session ----------------------------------------------------------------------------- */

int kw_yamux_pools_init(struct kw_yamux_pools *p, struct kw_node *n, uint32_t sessions,
			   uint32_t streams, uint32_t chunks)
{
	int ret;

	p->loop = &n->loop;
	ret = kw_node_pool_create(n, &p->sessions, "yamux_session", sizeof(struct kw_yamux),
				  sessions);
	if (ret == 0)
		ret = kw_node_pool_create(n, &p->streams, "yamux_stream",
					  sizeof(struct kw_yamux_stream), streams);
	if (ret == 0)
		ret = kw_node_pool_create(n, &p->chunks, "yamux_chunk",
					  sizeof(struct kw_yamux_chunk), chunks);
	return ret;
}

int kw_yamux_create(struct kw_yamux_pools *p, struct kw_yamux **out, bool client,
		       const struct kw_yamux_io *io, void *arg, uint32_t max_streams)
{
	struct kw_yamux *y = (struct kw_yamux *)kw_pool_alloc(&p->sessions);

	if (!y)
		return -KW_ENOMEM;
	y->p = p;
	y->io = io;
	y->arg = arg;
	y->client = client;
	y->next_id = client ? 1 : 2;
	y->max_streams = max_streams;
	kw_task_init(&y->task, task_fn, y);
	*out = y;
	return 0;
}

int kw_yamux_open(struct kw_yamux *y, struct kw_stream **out)
{
	struct kw_yamux_stream *ys;

	if (y->goaway_sent || y->goaway_rcvd)
		return -KW_ESHUTDOWN;
	if (y->n_streams >= y->max_streams)
		return -KW_ELIMIT;
	if (y->next_id > 0xfffffffdu)
		return -KW_ENOSPC;
	ys = stream_new(y, y->next_id, true);
	if (!ys)
		return -KW_ENOMEM;
	y->next_id += 2;
	ys->syn_pending = true;
	ys->ctl_syn = true;  /* open at once like js: WINDOW_UPDATE(SYN, 0) */
	flush_ctl(ys);
	*out = &ys->s;
	return 0;
}

void kw_yamux_goaway(struct kw_yamux *y, uint32_t code)
{
	if (y->goaway_sent)
		return;
	y->goaway_sent = true;
	y->goaway_code = code;
	if (send_ctl(y, KW_YAMUX_T_GOAWAY, 0, 0, code) < 0)
		y->goaway_ctl = true;
	queue_task(y);
}

int kw_yamux_goaway_received(const struct kw_yamux *y, uint32_t *code)
{
	if (!y->goaway_rcvd)
		return -KW_ENOENT;
	*code = y->goaway_rcvd_code;
	return 0;
}

uint32_t kw_yamux_stream_count(const struct kw_yamux *y)
{
	return y->n_streams;
}

void kw_yamux_destroy(struct kw_yamux *y, int reason)
{
	kw_task_cancel(y->p->loop, &y->task);
	while (y->streams) {
		struct kw_yamux_stream *ys = y->streams;

		if (!ys->reset) {
			ys->reset = true;
			ys->close_reason = reason;
		}
		if (ys->s.h && ys->s.h->on_close)
			ys->s.h->on_close(&ys->s, ys->close_reason);
		stream_free(ys);
	}
	kw_pool_free(&y->p->sessions, y);
}
