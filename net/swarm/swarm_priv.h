/*
 * Internals shared by net/swarm's files: the connection object, the swarm, and the hooks
 * between the socket layer (swarm.c), the upgrade pipeline (upgrade.c) and stream
 * negotiation (negotiate.c). Not a public header.
 */
#ifndef KW_NET_SWARM_PRIV_H
#define KW_NET_SWARM_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <kw/loop.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "upgrade_priv.h"

enum conn_state {
	CONN_CONNECTING,   /* outbound TCP connect in progress */
	CONN_UPGRADING,    /* mss /noise, Noise XX, muxer selection */
	CONN_UP,           /* yamux running, streams allowed */
	CONN_CLOSING,      /* go-away sent; flushing, then close */
};

struct kw_conn {
	struct kw_swarm *sw;
	struct kw_conn *next, *prev;
	int fd;
	struct kw_watch w;
	enum conn_state state;
	bool outbound;
	bool want_write;
	bool rd_eof;
	bool have_expect;
	bool dead;                   /* freed at the end of the current dispatch */
	bool abort_close;            /* close with RST (SO_LINGER 0), not FIN */
	bool in_io;                  /* inside an I/O dispatch that flushes and re-arms at its end */
	uint32_t closing_code;
	int close_reason;
	struct kw_timer hs_timer;    /* handshake deadline, then idle timer */
	struct kw_task reap;         /* frees the connection outside callbacks */
	struct kw_task kick;         /* resumes paused input outside callbacks */
	struct kw_timer buf_timer;   /* returns idle socket buffers to the pool */
	kw_swarm_dial_cb dial_cb;
	void *dial_user;
	struct kw_peer_id expect;    /* from a dialed /p2p/ */
	struct kw_peer_id peer;
	char peer_short[24];
	uint8_t raddr[KW_MADDR_BIN_MAX];
	uint8_t raddr_len;
	uint64_t last_active_ms;
	/* Socket buffers, borrowed from the swarm's buffer pool while in use (idle: none). */
	uint8_t *rxb;
	uint32_t rx_len;
	uint8_t *txb;
	uint32_t tx_off, tx_len;
	struct kw_conn_ident ident;
	struct kw_upgrade up;        /* mss / Noise / yamux state (upgrade_priv.h) */
};

struct kw_proto_entry {
	char id[KW_PROTO_ID_MAX + 1];
	kw_proto_accept_fn accept;
	void *arg;
};

struct kw_listener {
	int fd;
	struct kw_watch w;
	struct kw_swarm *sw;
	uint8_t addr[KW_MADDR_BIN_MAX];   /* binary, real port, no /p2p/ */
	uint8_t addr_len;
};

struct kw_swarm {
	struct kw_node *node;
	struct kw_loop *loop;
	struct kw_privkey key;
	struct kw_peer_id id;
	char id_text[KW_PEER_ID_TEXT_MAX];
	struct kw_swarm_limits lim;
	struct kw_swarm_stats st;
	struct kw_pool conns;
	struct kw_pool bufs;              /* KW_SWARM_BUF_SIZE socket buffers */
	struct kw_pool negs;              /* per-stream negotiation */
	struct kw_conn *head;
	struct kw_proto_entry protos[KW_SWARM_PROTOCOLS_MAX];
	size_t n_protos;
	struct kw_listener listeners[KW_SWARM_LISTENERS_MAX];
	size_t n_listeners;
	struct kw_conn_watcher *watchers;
	struct kw_drain drain;
	bool draining;
	struct kw_upgrade_shared ups;    /* shared scratch of the upgrade pipeline */
};

/* How long empty socket buffers stay with a connection after traffic. */
#define KW_SWARM_BUF_LINGER_MS 50

/* Noise frames are at most 2 + 65535 bytes; a buffer holds KW_NET_SWARM_BUF_FRAMES of them
 * plus slack for coalescing small frames, so one read()/write() moves several. */
#define KW_SWARM_BUF_SIZE ((uint32_t)CONFIG_KW_NET_SWARM_BUF_FRAMES * (2u + 65535u) + 1024u)

/* swarm.c: socket side */
/* Appends bytes to the connection's send buffer and arms writing. Return 0, -KW_ENOBUFS. */
int kw_conn_send(struct kw_conn *c, const uint8_t *d, size_t n);
/* Room left in the send buffer (0 if no buffer could be borrowed). */
size_t kw_conn_send_space(struct kw_conn *c);
/* Fails the connection: logs `why` with the peer and error, closes abortively. */
void kw_conn_fail(struct kw_conn *c, int err, const char *why);
/* The upgrade finished: peer known, streams allowed. */
void kw_conn_upgraded(struct kw_conn *c);
void kw_conn_touch(struct kw_conn *c);

/* negotiate.c: multistream-select on yamux streams */
size_t kw_neg_size(void);
void kw_neg_inbound(struct kw_swarm *sw, struct kw_conn *c, struct kw_stream *s);
int kw_neg_outbound(struct kw_swarm *sw, struct kw_conn *c, struct kw_stream *s,
		    const char *proto, const struct kw_stream_handler *h, void *user,
		    kw_swarm_open_cb cb);
const struct kw_proto_entry *kw_swarm_lookup(const struct kw_swarm *sw, const char *id);

/*
 * addr.c: the TCP subset of multiaddrs the swarm dials and listens on (/ip4|/ip6 + /tcp,
 * optional /p2p/<id>), their binary form and sockaddr conversion.
 */
#define KW_SW_ADDR_TEXT_MAX 640
struct kw_sw_addr {
	struct sockaddr_storage sa;
	socklen_t sa_len;
	bool has_peer;
	struct kw_peer_id peer;
};
/* Return: 0, -KW_EINVAL (not /ip4|/ip6/<addr>/tcp/<port>[/p2p/<id>]). */
int kw_sw_addr_parse_tcp(const char *text, struct kw_sw_addr *out);
/* Binary multiaddr (/ip4|/ip6 + /tcp) of a socket address. Return: 0, -KW_EINVAL, -KW_ENOBUFS. */
int kw_sw_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t *out,
			     size_t cap, size_t *olen);
/* Text of a binary /ip4|/ip6 + /tcp multiaddr. Return: 0, -KW_EINVAL, -KW_ENOBUFS. */
int kw_sw_addr_to_text(const uint8_t *ma, size_t len, char *out, size_t cap);

/* swarm.c: the upgrade layer freed room or queued output; process and flush. */
void kw_conn_kick(struct kw_conn *c);

#endif /* KW_NET_SWARM_PRIV_H */
