/*
 * The contract between a stream multiplexer (net/yamux) and protocol handlers (identify,
 * ping, kad, hivemind): a bidirectional byte stream with backpressure, half-close and reset.
 * Handlers never see Noise, yamux or sockets (STYLE.md: data flows one way).
 *
 * Delivery: the muxer calls h->on_data with bytes it holds; the handler returns how many it
 * consumed. Unconsumed bytes stay in the muxer's receive buffer and are offered again after
 * kw_stream_resume(), and the peer's send window is only credited for consumed bytes, so a
 * slow handler throttles its peer instead of growing memory.
 *
 * Lifetime: a stream is pool-owned by its muxer. After h->on_close the pointer is dead; a
 * handler must drop it there. Every callback runs on the owning node's event loop.
 */
#ifndef KW_NET_STREAM_H
#define KW_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KW_PROTO_ID_MAX 128  /* longest protocol id accepted from a peer */

struct kw_stream;

struct kw_stream_handler {
	/* Bytes arrived; return how many were consumed (0..len). */
	size_t (*on_data)(struct kw_stream *s, const uint8_t *data, size_t len);
	/* The remote half-closed (FIN): no more data will arrive. May be NULL. */
	void (*on_eof)(struct kw_stream *s);
	/* Send window or buffer space opened after a short write. May be NULL. */
	void (*on_writable)(struct kw_stream *s);
	/*
	 * The stream is finished and about to be freed: reason 0 after a clean close both ways,
	 * -KW_ECONNRESET after a reset by either side, or the connection's error.
	 */
	void (*on_close)(struct kw_stream *s, int reason);
};

struct kw_stream_ops {
	/* Queues up to len bytes; returns bytes accepted (may be short: wait for on_writable),
	 * or -KW_EPIPE after close_write, -KW_ECONNRESET after a reset. */
	long (*write)(struct kw_stream *s, const uint8_t *buf, size_t len);
	/* Half-close our side (FIN) once queued data is sent. */
	int (*close_write)(struct kw_stream *s);
	/* Abort both directions (RST); on_close follows from the loop, not re-entrantly. */
	void (*reset)(struct kw_stream *s);
	/* Offer buffered bytes to on_data again (after the handler returned less than len). */
	void (*resume)(struct kw_stream *s);
};

struct kw_stream {
	const struct kw_stream_ops *ops;      /* set by the muxer */
	const struct kw_stream_handler *h;    /* set by whoever owns the stream's protocol */
	void *user;                           /* handler state */
	void *conn;                           /* owning connection (opaque to handlers) */
	char protocol[KW_PROTO_ID_MAX + 1];   /* negotiated protocol id, "" until negotiated */
	uint32_t id;                          /* muxer's stream id */
	bool outbound;                        /* we opened it */
};

static inline long kw_stream_write(struct kw_stream *s, const uint8_t *b, size_t n)
{
	return s->ops->write(s, b, n);
}
static inline int kw_stream_close_write(struct kw_stream *s) { return s->ops->close_write(s); }
static inline void kw_stream_reset(struct kw_stream *s) { s->ops->reset(s); }
static inline void kw_stream_resume(struct kw_stream *s) { s->ops->resume(s); }

#endif /* KW_NET_STREAM_H */
