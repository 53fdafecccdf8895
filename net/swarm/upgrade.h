/*
 * The connection upgrade pipeline (not public): multistream-select "/noise" on the raw socket,
 * Noise XX, then either yamux at once (both sides listed /yamux/1.0.0 in the Noise extension)
 * or multistream-select "/yamux/1.0.0" inside Noise first, then yamux for the connection's
 * life (libp2p/specs connections/README.md "Upgrading connections").
 *
 * Sans-I/O and independent of the swarm's connection object: the swarm moves bytes in
 * (kw_upgrade_on_bytes) and lends its send buffer and a few notifications through the
 * struct kw_upgrade_conn it passes at kw_upgrade_start. Nothing here calls into swarm.c.
 */
#ifndef KW_NET_SWARM_UPGRADE_H
#define KW_NET_SWARM_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/key.h>
#include <kw/net/noise.h>
#include <kw/net/yamux.h>

struct kw_node;
struct kw_stream;

/*
 * What the pipeline needs from the connection that carries it. `conn` is the first argument
 * of every call; the swarm owns it and keeps it alive until kw_upgrade_teardown.
 */
struct kw_upgrade_conn_ops {
	/* The free tail of the send buffer and its size in *space (0: no buffer now; the
	 * connection then waits for one and calls kw_upgrade_on_tx_space when it has it). */
	uint8_t *(*tx_space)(void *conn, size_t *space);
	/* n bytes were written at the tail tx_space returned: queue them for the socket. */
	void (*tx_commit)(void *conn, size_t n);
	/* Fatal for the connection: log `why` with the error and close it. */
	void (*fail)(void *conn, int err, const char *why);
	/* Noise finished: the remote is `peer` (authenticated). The muxer may still follow. */
	void (*secured)(void *conn, const struct kw_peer_id *peer);
	/* yamux runs: streams can be opened. */
	void (*up)(void *conn);
	/* The remote opened a stream; the callee sets s->h or resets it. */
	void (*new_stream)(void *conn, struct kw_stream *s);
	/* The muxer finished: the peer sent go-away, or our go-away has no stream left. */
	void (*mux_closed)(void *conn);
	/* Input paused by back-pressure may continue: call kw_upgrade_on_bytes again from a
	 * task, never from inside this call. */
	void (*kick)(void *conn);
	/* Traffic was seen (resets the idle timer). */
	void (*touch)(void *conn);
};

enum kw_upgrade_stage {
	KW_UPGRADE_MSS_SEC,   /* raw: multistream header + /noise */
	KW_UPGRADE_NOISE,     /* Noise handshake */
	KW_UPGRADE_MSS_MUX,   /* inside Noise: multistream header + /yamux/1.0.0 */
	KW_UPGRADE_MUX,       /* yamux */
};

#define KW_UPGRADE_LINEBUF 64   /* partial multistream lines before the muxer (short ids) */

/* Per-swarm state of the pipeline: the Noise identity and the yamux pools. */
struct kw_upgrade_shared {
	struct kw_noise_identity nid;
	struct kw_yamux_pools ymp;
	uint32_t max_streams;        /* yamux streams per connection */
};

/* Per-connection state, embedded in the swarm's connection object. */
struct kw_upgrade {
	struct kw_upgrade_shared *sh;
	const struct kw_upgrade_conn_ops *ops;
	void *conn;
	const char *label;           /* the connection's name in log lines */
	bool outbound;
	bool stopped;                /* the connection is going: process nothing more */
	bool have_expect;
	bool greet_pending;          /* our multistream proposal waits for send space */
	struct kw_peer_id expect;    /* from a dialed /p2p/: Noise must authenticate this peer */
	uint8_t stage;
	uint8_t mss_seen;            /* lines of the current negotiation read so far */
	uint8_t line_len;
	uint8_t line[KW_UPGRADE_LINEBUF];
	const uint8_t *pend;         /* plaintext yamux has not taken yet (inside the caller's buf) */
	uint32_t pend_len;
	struct kw_noise_session noise;
	struct kw_yamux *mux;        /* from the shared session pool once KW_UPGRADE_MUX */
};

/*
 * Per-swarm set-up (start-up only): the Noise identity of `key` and the yamux pools for
 * max_conns sessions, from the node's arena. Return: 0, -KW_ENOMEM, or the Noise identity's
 * error.
 */
int kw_upgrade_init(struct kw_upgrade_shared *sh, struct kw_node *n, const struct kw_privkey *key,
		    uint32_t max_conns, uint32_t max_streams);
/*
 * Starts the pipeline on a connected socket; an outbound one proposes /noise at once.
 * `expect` (may be NULL) is the peer a dialed /p2p/ address names. `label` must outlive u.
 * Return: 0 or the send error.
 */
int kw_upgrade_start(struct kw_upgrade *u, struct kw_upgrade_shared *sh,
		     const struct kw_upgrade_conn_ops *ops, void *conn, bool outbound,
		     const struct kw_peer_id *expect, const char *label);
/*
 * Processes received bytes; *used says how many were consumed. Noise frame headers are kept
 * in u; a frame body is consumed only once whole in buf (a partial one is left for the
 * caller to pass again with more behind it, so buf must hold KW_NOISE_MSG_MAX bytes) and is
 * decrypted in place. Multistream replies that find no send space leave their line
 * unconsumed. Plaintext yamux cannot take yet stays inside buf: while kw_upgrade_can_read()
 * is false the caller keeps buf's consumed bytes unchanged and calls again (from a task)
 * after a kick. Return 0 or -KW_E* (the peer broke the protocol).
 */
int kw_upgrade_on_bytes(struct kw_upgrade *u, uint8_t *buf, size_t len, size_t *used);
/* False while the pipeline cannot take more input (yamux buffers full): stop reading. */
bool kw_upgrade_can_read(const struct kw_upgrade *u);
/* True while the bytes left unconsumed are the body of a Noise frame still arriving. */
bool kw_upgrade_frame_partial(const struct kw_upgrade *u);
/* Send space is back (the buffer drained or was lent): queue what waited for it. */
void kw_upgrade_on_tx_space(struct kw_upgrade *u);
/* Sends yamux go-away with `code` (no new streams either way afterwards). */
void kw_upgrade_goaway(struct kw_upgrade *u, uint32_t code);
/* True once no muxer stream is left (a closing connection may go). */
bool kw_upgrade_done_closing(const struct kw_upgrade *u);
/* The connection is going: no more input is processed and nothing is sent. */
void kw_upgrade_stop(struct kw_upgrade *u);
/* Closes every stream with `reason` (on_close runs now), frees the session and buffers. */
void kw_upgrade_teardown(struct kw_upgrade *u, int reason);
uint32_t kw_upgrade_stream_count(const struct kw_upgrade *u);
/* Opens an outbound yamux stream. Return: 0, -KW_ENOTCONN (no muxer yet), yamux's errors. */
int kw_upgrade_open_stream(struct kw_upgrade *u, struct kw_stream **out);

#endif /* KW_NET_SWARM_UPGRADE_H */
