/*
 * yamux stream multiplexer (libp2p/specs yamux/README.md, which refers to hashicorp/yamux
 * spec.md for the frame format), sans-I/O: the owner of the connection feeds decrypted bytes
 * in (kw_yamux_input) and receives frames to encrypt through io->output. Streams implement
 * kw/net/stream.h. The swarm (net/swarm/upgrade.c) runs one session per connection; nothing
 * here knows sockets, Noise or the swarm, so a session can be driven frame by frame (tests,
 * fuzzing).
 *
 * Memory: sessions and streams come from pools created at init; data a handler did not
 * consume is kept per stream in 16 KiB chunks from a shared pool (at most the stream's receive
 * window, 256 KiB or grown up to KW_YAMUX_MAX_WINDOW, because we only credit the peer for
 * consumed bytes). When the chunk pool is empty the session stops taking input (TCP
 * back-pressure) until chunks are returned.
 */
#ifndef KW_NET_YAMUX_H
#define KW_NET_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>
#include <kw/pool.h>
#include <kw/net/stream.h>

struct kw_node;
struct kw_yamux;

#define KW_YAMUX_WINDOW     262144u   /* initial receive window per stream (the spec's) */
#define KW_YAMUX_CHUNK      16384u
#ifdef CONFIG_KW_NET_YAMUX_MAX_WINDOW_KIB
#define KW_YAMUX_MAX_WINDOW ((uint32_t)CONFIG_KW_NET_YAMUX_MAX_WINDOW_KIB * 1024u)
#else
#define KW_YAMUX_MAX_WINDOW (4096u * 1024u)
#endif /* KW_NET_YAMUX_H */

/* go-away codes (yamux spec: "Normal termination", "Protocol error", "Internal error") */
#define KW_YAMUX_GOAWAY_NORMAL   0u
#define KW_YAMUX_GOAWAY_PROTOCOL 1u   /* sent by us before a protocol error closes the session */
#define KW_YAMUX_GOAWAY_INTERNAL 2u

struct kw_yamux_pools {
	struct kw_loop *loop;
	struct kw_pool sessions, streams, chunks;
};

struct kw_yamux_io {
	/* Queue one frame (header, then payload; together at most 65519 bytes) for the peer;
	 * return 0 or -KW_ENOBUFS when there is no room now (nothing queued). */
	int (*output)(void *arg, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl);
	/* Frame bytes output can take now. */
	size_t (*output_space)(void *arg);
	/* The peer opened a stream (SYN); the callee sets s->h or resets it. */
	void (*new_stream)(void *arg, struct kw_stream *s);
	/* Protocol violation or internal failure: the connection must go. */
	void (*error)(void *arg, int err, const char *why);
	/* The peer sent go-away, or our go-away finished (no streams left). */
	void (*closed)(void *arg);
	/* Input was paused and can continue (a handler consumed buffered data). */
	void (*kick)(void *arg);
};

int kw_yamux_pools_init(struct kw_yamux_pools *p, struct kw_node *n, uint32_t sessions,
			   uint32_t streams, uint32_t chunks);
/* client: we dialed (odd stream ids). Return: 0, -KW_ENOMEM (pool empty). */
int kw_yamux_create(struct kw_yamux_pools *p, struct kw_yamux **out, bool client,
		       const struct kw_yamux_io *io, void *arg, uint32_t max_streams);
/*
 * Feeds decrypted bytes. *used < n means input is paused (back-pressure); io->kick says when
 * to feed the rest again. Return: 0, or -KW_EPROTO on a protocol violation (bad version,
 * unknown type, data beyond the window, a frame for a stream never opened, ...): the reason
 * is logged, go-away code 1 is queued, and the caller fails the connection.
 */
int kw_yamux_input(struct kw_yamux *y, const uint8_t *p, size_t n, size_t *used);
/* The output has room again: flush pending control frames, wake blocked writers. */
void kw_yamux_on_output_space(struct kw_yamux *y);
/* Sends go-away with code; no new streams either way afterwards. */
void kw_yamux_goaway(struct kw_yamux *y, uint32_t code);
/* The code of the peer's go-away. Return: 0, -KW_ENOENT (none received). */
int kw_yamux_goaway_received(const struct kw_yamux *y, uint32_t *code);
uint32_t kw_yamux_stream_count(const struct kw_yamux *y);
/* Resets every stream (on_close with reason, synchronously) and frees the session. */
void kw_yamux_destroy(struct kw_yamux *y, int reason);
/* Opens an outbound stream (SYN goes with the first write or at once). */
int kw_yamux_open(struct kw_yamux *y, struct kw_stream **out);

#endif /* KW_NET_YAMUX_H */
