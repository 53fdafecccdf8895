/*
 * multistream-select 1.0 (multiformats/multistream-select README.md; its use in libp2p:
 * libp2p/specs connections/README.md "Protocol Negotiation"): the length-prefixed line codec
 * and the per-stream negotiation that picks a protocol on a new muxed stream.
 *
 * The line codec is shared by the connection upgrade (/noise on the raw socket, /yamux/1.0.0
 * inside Noise) and the per-stream negotiation. The negotiation knows neither the swarm nor
 * the muxer: it works on a struct kw_stream and asks a struct kw_mss_registry (callbacks the
 * swarm fills from its protocol registry) what we offer and who takes a negotiated stream.
 *
 * Owns: a pool of negotiation states (one per stream still negotiating), taken from the
 * node's arena at kw_mss_init. Every callback runs on the node's event loop.
 */
#ifndef KW_NET_MSS_H
#define KW_NET_MSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>
#include <kw/pool.h>
#include <kw/net/stream.h>

struct kw_node;

#define KW_MSS_LINE_MAX 1024   /* longest line, newline included (js-libp2p's limit) */
#define KW_MSS_HEADER   "/multistream/1.0.0"

/*
 * Writes one line: uvarint(len) || text || '\n', len counting the newline.
 * Return: bytes written, -KW_EINVAL (text longer than a line may be), -KW_ENOSPC (cap).
 */
int kw_mss_line_encode(const char *text, uint8_t *out, size_t cap);
/*
 * Reads one line from buf[0..len) into line (NUL-terminated, without '\n' and trailing
 * blanks). Return: bytes consumed, -KW_EAGAIN (incomplete), -KW_EBADMSG (no '\n' at the
 * end, too long for cap or KW_MSS_LINE_MAX, NUL inside, bad varint).
 */
long kw_mss_line_decode(const uint8_t *buf, size_t len, char *line, size_t cap);

/* What the listener side offers, seen through callbacks (the swarm's protocol registry). */
struct kw_mss_registry {
	/* The i-th protocol we offer, or NULL past the end (the answer to "ls"). */
	const char *(*protocol)(void *arg, size_t i);
	/* Whether we offer `id` (echoed back if so, "na" if not). */
	bool (*offers)(void *arg, const char *id);
	/* The stream negotiated `id`: set s->h and s->user, or return a negative code to
	 * refuse (the stream is reset and the reason logged). */
	int (*accept)(void *arg, struct kw_stream *s, const char *id);
	void *arg;
};

struct kw_mss_stats {
	uint64_t streams_in;       /* inbound streams handed to a protocol */
	uint64_t streams_refused;  /* inbound streams refused (no state free, accept failed) */
	uint64_t failed;           /* outbound negotiations that failed (na, reset, timeout) */
};

/* Per-swarm negotiation context; fill it with kw_mss_init, read its fields only for stats. */
struct kw_mss {
	struct kw_loop *loop;
	struct kw_pool negs;
	uint32_t timeout_ms;
	struct kw_mss_registry reg;
	struct kw_mss_stats st;
};

/*
 * Completion of an outbound negotiation: on success s has negotiated the protocol and s->h /
 * s->user are the handler given to kw_mss_outbound, err is 0; on failure s is NULL and err is
 * -KW_ENOPROTO (the remote answered na), -KW_ECONNRESET, -KW_ETIMEDOUT, -KW_EPROTO.
 */
typedef void (*kw_mss_open_cb)(struct kw_stream *s, int err, void *user);

/*
 * Creates the pool of `count` negotiation states from the node's arena (start-up only);
 * `reg` is copied. Each negotiation must finish within timeout_ms or its stream is reset.
 * Return: 0, -KW_ENOMEM.
 */
int kw_mss_init(struct kw_mss *m, struct kw_node *n, uint32_t count, uint32_t timeout_ms,
		const struct kw_mss_registry *reg);
/*
 * Runs the listener side on a stream the remote opened: the negotiation becomes the stream's
 * handler until a protocol is agreed, then reg->accept takes the stream and the bytes that
 * followed the agreed line go to its handler. `peer` names the remote in log lines and must
 * outlive the stream. No state free: the stream is reset (logged, counted as refused).
 */
void kw_mss_inbound(struct kw_mss *m, struct kw_stream *s, const char *peer);
/*
 * Proposes `proto` on a stream we opened (header and proposal in one write, as js does);
 * cb runs on the loop with the result. `peer` as for kw_mss_inbound.
 * Return: 0 (cb will run), -KW_EINVAL (proto too long), -KW_ELIMIT (no state free), or the
 * stream's write error; on an error cb does not run and the caller still owns s.
 */
int kw_mss_outbound(struct kw_mss *m, struct kw_stream *s, const char *peer, const char *proto,
		    const struct kw_stream_handler *h, void *user, kw_mss_open_cb cb);

#endif /* KW_NET_MSS_H */
