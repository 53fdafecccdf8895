/*
 * The swarm: a node's libp2p connections and the protocol registry (libp2p/specs
 * connections/README.md; doc/net-swarm.md). Each TCP connection is upgraded tcp ->
 * multistream-select "/noise" -> Noise XX -> yamux (inlined through the Noise stream-muxer
 * extension when both sides list /yamux/1.0.0, else multistream-select "/yamux/1.0.0"), in
 * both dial and listen roles. Inbound yamux streams run a multistream-select listener
 * (net/mss) over the registry's table and are then handed to the registered protocol's accept
 * function; outbound streams are opened with kw_swarm_open_stream and complete on the loop.
 *
 * Owns: the connection pool (struct kw_conn), the per-stream negotiation pool, listeners,
 * the registry, the per-connection extension slots, the limits, the drain that implements
 * graceful shutdown. Upper layers (identify, ping, kad, hivemind) only see struct kw_stream
 * (kw/net/stream.h) and the accessors below; they never include Noise or yamux headers, and
 * keep their per-connection state in an extension slot (kw_swarm_ext_register).
 *
 * Limits (Kconfig defaults, node->cfg overrides): inbound and outbound connection counts,
 * handshake timeout, idle timeout, streams per connection, protocol-line and message sizes;
 * inbound connections and handshakes per address and per subnet, with a reserve for
 * protected peers (net/swarm/rcmgr.h, doc/net-swarm.md "Limits under load").
 * A peer that breaks one loses that stream or connection with a logged reason (short peer id
 * + kw_strerror); every other connection keeps being served.
 *
 * Every callback runs on the node's event loop; nothing here blocks or allocates after init.
 */
#ifndef KW_NET_SWARM_H
#define KW_NET_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/key.h>
#include <kw/net/stream.h>

struct kw_node;
struct kw_swarm;
struct kw_conn;

#define KW_SWARM_PROTOCOLS_MAX 32   /* registered inbound protocols per node (serving both adds 12) */
#define KW_SWARM_LISTENERS_MAX 8
#define KW_MADDR_BIN_MAX       96   /* a binary multiaddr we keep (ip6 + tcp + /p2p/ fits) */

/*
 * An inbound protocol: `accept` runs once the stream negotiated `id` and must set s->h (and
 * s->user); it may return a negative code to refuse (the stream is reset, and the reason
 * logged). Bytes that followed the negotiation are delivered to s->h->on_data right after.
 */
typedef int (*kw_proto_accept_fn)(struct kw_swarm *sw, struct kw_stream *s, void *arg);

/* Connection lifecycle observers (identify starts here). Intrusive: owned by the caller. */
struct kw_conn_watcher {
	/* The connection finished its upgrade (peer id known, streams can be opened). */
	void (*on_up)(struct kw_swarm *sw, struct kw_conn *c, void *arg);
	/* The connection is about to be freed; its streams are already closed. May be NULL. */
	void (*on_down)(struct kw_swarm *sw, struct kw_conn *c, int reason, void *arg);
	/* Our protocol list or listen addresses changed (kw_swarm_register / kw_swarm_listen
	 * after start). Runs inside that call: only note it, act from a timer. May be NULL. */
	void (*on_local_change)(struct kw_swarm *sw, void *arg);
	void *arg;
	struct kw_conn_watcher *next;
};

/* Completion of kw_swarm_dial: c is NULL and err < 0 on failure. */
typedef void (*kw_swarm_dial_cb)(struct kw_swarm *sw, struct kw_conn *c, int err, void *user);
/*
 * Completion of kw_swarm_open_stream: on success s is negotiated, s->h/s->user are the
 * handler and user given to open_stream, err is 0; on failure s is NULL and err is
 * -KW_ENOPROTO (the remote answered na), -KW_ELIMIT, -KW_ECONNRESET, -KW_ETIMEDOUT, ...
 */
typedef void (*kw_swarm_open_cb)(struct kw_stream *s, int err, void *user);

/* Limits; kw_swarm_limits_default fills them from Kconfig, the app overrides from its config. */
struct kw_swarm_limits {
	uint32_t max_conns_in, max_conns_out;
	uint32_t max_streams_per_conn;   /* yamux streams open at once, both directions */
	uint32_t handshake_timeout_ms;   /* tcp accept/connect to yamux ready */
	uint32_t idle_timeout_ms;        /* no open stream and no traffic */
	uint32_t negotiate_timeout_ms;   /* per-stream multistream-select */
	uint32_t max_message_bytes;      /* length-prefixed protocol messages (identify, ...) */
	/* inbound admission (net/swarm/rcmgr.h): per address and per subnet (/24, /48) */
	uint32_t conns_per_ip, conns_per_subnet;
	uint32_t max_handshakes_in;      /* inbound connections in their handshake */
	uint32_t handshakes_per_ip, handshakes_per_subnet;
	uint32_t conns_in_reserved;      /* inbound slots only protected connections take */
	uint32_t refusal_log_ms;         /* one refusal summary line per interval at most */
};

/* Counters for metrics, the interop peer's `stats` and leak checks. */
struct kw_swarm_stats {
	uint32_t conns_in, conns_out;       /* open now (any state) */
	uint32_t conns_up;                  /* upgraded and usable */
	uint64_t conns_accepted, conns_dialed, conns_failed;
	/* inbound connections closed at accept, all reasons, then per reason */
	uint64_t conns_refused_limit;
	uint64_t refused_per_ip, refused_per_subnet;          /* connections per address / subnet */
	uint64_t refused_hs_per_ip, refused_hs_per_subnet;    /* handshakes per address / subnet */
	uint64_t refused_full;       /* every slot a stranger may take is upgraded */
	uint64_t refused_draining;   /* shutting down */
	uint64_t conns_evicted;      /* oldest handshakes dropped to admit a newcomer */
	/* idle outbound connections closed to free a dial slot (kw_swarm_dial) */
	uint64_t conns_pruned;
	/* idle inbound connections closed to admit a newcomer at the inbound limit */
	uint64_t conns_trimmed;
	uint32_t conns_protected;    /* inbound connections protected now */
	/* closed with a TCP RST (failures: protocol errors, timeouts); the rest close with FIN */
	uint64_t conns_aborted;
	uint64_t streams_in, streams_out, streams_refused, negotiations_failed;
	/* socket buffers: times a connection had to wait for one (our shortage: it was delayed,
	 * not failed), connections closed because a partial frame passed its deadline */
	uint64_t buf_waits, frame_timeouts;
	uint32_t bufs_lent, bufs_lent_handshake;  /* now: all lent, lent to handshakes */
	/* TCP bytes read from and written to every connection (handshakes and framing included) */
	uint64_t bytes_in, bytes_out;
};

/*
 * Creates the swarm of node `n` from its arena (pools sized by Kconfig), with `key` as the
 * identity (copied) and `limits` (copied; NULL: kw_swarm_limits_default). Registers the drain for graceful shutdown. Start-up only.
 * Return: the swarm via *out, 0, -KW_ENOMEM (arena too small), -KW_EINVAL.
 */
int kw_swarm_create(struct kw_node *n, const struct kw_privkey *key,
		    const struct kw_swarm_limits *limits, struct kw_swarm **out);
/* Closes every connection abortively and stops listening (node shutdown). */
void kw_swarm_destroy(struct kw_swarm *sw);
void kw_swarm_limits_default(struct kw_swarm_limits *l);
/*
 * How many of `buffers` socket buffers connections still in their handshake may hold
 * together: the rest (KW_NET_SWARM_BUFFERS_UP_PERCENT) is kept for upgraded connections,
 * but never so much that fewer than two (one handshake's receive + send) are left.
 */
uint32_t kw_swarm_bufs_handshake_share(uint32_t buffers);
struct kw_node *kw_swarm_node(struct kw_swarm *sw);
const struct kw_peer_id *kw_swarm_peer_id(const struct kw_swarm *sw);
const struct kw_privkey *kw_swarm_key(const struct kw_swarm *sw);
void kw_swarm_get_stats(const struct kw_swarm *sw, struct kw_swarm_stats *st);

/*
 * Registers an inbound protocol (id is copied, at most KW_PROTO_ID_MAX bytes).
 * Return: 0, -KW_EEXIST, -KW_ENOSPC (KW_SWARM_PROTOCOLS_MAX), -KW_EINVAL.
 */
int kw_swarm_register(struct kw_swarm *sw, const char *id, kw_proto_accept_fn accept, void *arg);
/* Number of registered protocols and the i-th id (identify lists them). */
size_t kw_swarm_protocol_count(const struct kw_swarm *sw);
const char *kw_swarm_protocol(const struct kw_swarm *sw, size_t i);
void kw_swarm_add_watcher(struct kw_swarm *sw, struct kw_conn_watcher *w);

/*
 * Marks a protocol as worth a connection slot: once identify shows a peer lists it, the
 * peer's connection is protected (kw_conn_protect). Upper layers (kad, hivemind) call it at
 * start-up; the id is copied. Return: 0, -KW_ENOSPC (KW_SWARM_PROTECT_MAX), -KW_EINVAL.
 */
#define KW_SWARM_PROTECT_MAX 8
int kw_swarm_protect_protocol(struct kw_swarm *sw, const char *id);
/* Whether `id` was registered with kw_swarm_protect_protocol. */
bool kw_swarm_protocol_protected(const struct kw_swarm *sw, const char *id);
/*
 * Protects c: an inbound connection moves into the reserved slots (conns_in_reserved) and is
 * never dropped to make room for a newcomer. Identify calls it; idempotent.
 */
void kw_conn_protect(struct kw_conn *c);
bool kw_conn_protected(const struct kw_conn *c);

/*
 * Listens on a text multiaddr (/ip4|/ip6/<addr>/tcp/<port>, port 0 picks one).
 * Return: 0, -KW_EINVAL (not a TCP multiaddr), -KW_ENOSPC (KW_SWARM_LISTENERS_MAX), or the
 * socket error (-KW_EADDRINUSE ...).
 */
int kw_swarm_listen(struct kw_swarm *sw, const char *maddr);
/* Number of listen addresses and the i-th as text with the real port and /p2p/<our id>. */
size_t kw_swarm_listen_count(const struct kw_swarm *sw);
int kw_swarm_listen_addr(const struct kw_swarm *sw, size_t i, char *out, size_t cap);
/* The i-th listen address as a binary multiaddr without /p2p/ (identify's listenAddrs). */
int kw_swarm_listen_addr_bin(const struct kw_swarm *sw, size_t i, uint8_t *out, size_t cap,
			     size_t *len);

/*
 * Dials a text multiaddr; a /p2p/<id> suffix makes the Noise handshake require that peer
 * (-KW_EPEERID otherwise). Returns at once; cb runs on the loop when the connection is up or
 * failed. When every outbound slot is taken, the least recently active outbound connection
 * without an open stream is closed gracefully to make room (stats: conns_pruned); a closing
 * connection keeps its pool entry until it is gone, so for that moment the total can pass
 * max_conns_out by the connections still closing, within the pool's in + out entries.
 * Return: 0 (cb will run), -KW_EINVAL, -KW_ELIMIT (outbound limit, every outbound
 * connection busy with a stream, or no pool entry left), -KW_ESHUTDOWN.
 */
int kw_swarm_dial(struct kw_swarm *sw, const char *maddr, kw_swarm_dial_cb cb, void *user);
/*
 * Opens a stream on c and negotiates `protocol`; returns at once, cb runs on the loop.
 * After success the stream belongs to h/user (set before any on_data).
 * Return: 0 (cb will run), -KW_ENOTCONN (c not up), -KW_ELIMIT, -KW_EINVAL, -KW_ENOMEM.
 */
int kw_swarm_open_stream(struct kw_swarm *sw, struct kw_conn *c, const char *protocol,
			 const struct kw_stream_handler *h, void *user, kw_swarm_open_cb cb);
/* An upgraded connection to `peer`, or NULL. */
struct kw_conn *kw_swarm_find_conn(struct kw_swarm *sw, const struct kw_peer_id *peer);
/* Calls fn for each upgraded connection (fn must not close connections). */
void kw_swarm_foreach_conn(struct kw_swarm *sw, void (*fn)(struct kw_conn *c, void *arg),
			   void *arg);

/* Starts closing c: yamux go-away with `code` (0 normal), then TCP close once flushed. */
void kw_conn_close(struct kw_conn *c, uint32_t code);
/* The connection the stream belongs to. */
struct kw_conn *kw_stream_conn(const struct kw_stream *s);
struct kw_swarm *kw_conn_swarm(const struct kw_conn *c);
const struct kw_peer_id *kw_conn_peer_id(const struct kw_conn *c);
bool kw_conn_outbound(const struct kw_conn *c);
/* The remote's address as we see it, binary multiaddr without /p2p/. */
int kw_conn_remote_addr(const struct kw_conn *c, const uint8_t **ma, size_t *len);
/*
 * The connection's name in log lines: its remote address until the handshake names the
 * peer, then the short peer id ("12D3KooW..xyz123", kw_peer_id_short). Lives as long as c.
 */
const char *kw_conn_peer_short(const struct kw_conn *c);
/* Streams open on c now. */
uint32_t kw_conn_stream_count(const struct kw_conn *c);

/*
 * Per-connection extension slots: a module above the swarm (identify, kad, hivemind) keeps
 * its own state per connection in a slot instead of in the swarm's structs. A slot is
 * registered once at start-up with the size of its state; every connection then carries a
 * zeroed block of that size from the slot's pool (sized for the swarm's maximum number of
 * connections) for its whole life. When the connection is freed (after the watchers'
 * on_down), `release` runs (may be NULL) and the block is cleared and returned.
 */
typedef void (*kw_conn_ext_release_fn)(struct kw_conn *c, void *data, void *arg);
/*
 * Registers a slot of `size` bytes; `name` (static) names its pool in stats.
 * Return: the slot id (>= 0), -KW_EINVAL (size 0, no name), -KW_ENOSPC (all
 * CONFIG_KW_NET_CONN_EXT_SLOTS taken), -KW_EBUSY (connections exist already), -KW_ENOMEM.
 */
int kw_swarm_ext_register(struct kw_swarm *sw, const char *name, size_t size,
			  kw_conn_ext_release_fn release, void *arg);
/* The slot's block of connection c (zeroed when c was created), or NULL for a bad slot. */
void *kw_conn_ext(const struct kw_conn *c, int slot);

/* The init-table entry (kernel/initcalls.def): identity, swarm, identify, ping, listeners. */
int kw_net_init(struct kw_node *n);
void kw_net_shutdown(struct kw_node *n);

#endif /* KW_NET_SWARM_H */
