/*
 * Internals of net/swarm (not public): the connection object and the swarm, shared by the
 * socket side (swarm.c) and the address helpers (addr.c). The upgrade pipeline (upgrade.h)
 * and the registry (registry.h) do not see these structs.
 */
#ifndef KW_NET_SWARM_PRIV_H
#define KW_NET_SWARM_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <kw/loop.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/key.h>
#include <kw/net/mss.h>
#include <kw/net/swarm.h>

#include "rcmgr.h"
#include "registry.h"
#include "upgrade.h"

/*
 * The longest label: "/ip6/" + the longest IPv6 text (INET6_ADDRSTRLEN counts its NUL) +
 * "/tcp/65535" + NUL. A short peer id (kw_peer_id_short, 24 bytes) fits as well.
 */
#define KW_SW_ADDR_LABEL_MAX (sizeof("/ip6/") - 1 + INET6_ADDRSTRLEN + sizeof("/tcp/65535") - 1)

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
/* Binary multiaddr (/ip4|/ip6 + /tcp) of a socket address. Return: 0, -KW_EINVAL, -KW_ENOSPC. */
int kw_sw_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t *out,
			     size_t cap, size_t *olen);
/* Text of a binary /ip4|/ip6 + /tcp multiaddr. Return: 0, -KW_EINVAL, -KW_ENOSPC. */
int kw_sw_addr_to_text(const uint8_t *ma, size_t len, char *out, size_t cap);
/*
 * The log label of a connection whose peer is not known yet: the whole text of its binary
 * /ip4|/ip6 + /tcp address (never cut; KW_SW_ADDR_LABEL_MAX holds the longest).
 * Return: 0, -KW_EINVAL (not such an address), -KW_ENOSPC (cap too small, out is "").
 */
int kw_sw_addr_label(const uint8_t *ma, size_t len, char *out, size_t cap);

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
	/* a partial frame in rxb began (or last advanced) at this time: low 32 bits of the loop
	 * clock, differences wrap safely; beside fd it fills padding */
	uint32_t frame_start_ms;
	struct kw_watch w;
	enum conn_state state;
	bool outbound;
	bool rd_eof;
	bool have_expect;
	bool dead;                   /* freed at the end of the current dispatch */
	bool abort_close;            /* close with RST (SO_LINGER 0), not FIN */
	bool in_io;                  /* inside an I/O dispatch that flushes and re-arms at its end */
	bool leaving;                /* outbound, closing or dead: its slot is free to redial */
	int close_reason;
	struct kw_timer hs_timer;    /* handshake deadline, then idle timer */
	struct kw_task reap;         /* frees the connection outside callbacks */
	struct kw_task kick;         /* resumes paused input outside callbacks */
	/* returns idle socket buffers to the pool, and holds a partial frame to its deadline
	 * (KW_NET_FRAME_TIMEOUT_MS after frame_start_ms): one timer keeps the object small */
	struct kw_timer buf_timer;
	struct kw_conn *bq_next;     /* the buffer queue (FIFO, intrusive) */
	kw_swarm_dial_cb dial_cb;
	void *dial_user;
	struct kw_peer_id expect;    /* from a dialed /p2p/ */
	struct kw_peer_id peer;
	/* In log lines: the remote's address until Noise names the peer, then its short id. */
	char label[KW_SW_ADDR_LABEL_MAX];
	uint8_t raddr[KW_MADDR_BIN_MAX];
	uint8_t raddr_len;
	/* socket buffer state (here: it fills the padding before last_active_ms) */
	bool buf_up;                 /* upgraded: its buffers no longer count as a handshake's */
	bool bq_queued;              /* waiting in the swarm's buffer queue (reads paused) */
	bool rx_progress;            /* a frame header or body was consumed since the last check */
	bool frame_on;               /* rxb holds a partial frame since frame_start_ms */
	uint8_t bq_need;             /* buffers it waits for (a handshake borrows two at once) */
	uint8_t nbufs;               /* socket buffers it holds now */
	uint64_t last_active_ms;
	/* Socket buffers, borrowed from the swarm's buffer pool while in use (idle: none).
	 * rxb: bytes [rx_off, rx_len) are unconsumed (a partial Noise frame body, or input
	 * waiting behind plaintext yamux has not taken); [0, rx_off) may hold that plaintext. */
	uint8_t *rxb;
	uint32_t rx_off, rx_len;
	uint8_t *txb;
	uint32_t tx_off, tx_len;
	struct kw_rc_conn rc;        /* inbound admission counts (rcmgr.h) */
	void *ext[CONFIG_KW_NET_CONN_EXT_SLOTS];  /* extension slot data (kw_conn_ext) */
	struct kw_upgrade up;        /* mss / Noise / yamux state (upgrade.h) */
};

/* One per-connection extension slot: a block per connection from its own pool. */
struct kw_conn_ext_slot {
	struct kw_pool pool;
	size_t size;
	kw_conn_ext_release_fn release;
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
	uint32_t bufs_hs;                 /* of them lent to connections still in their handshake */
	uint32_t out_leaving;             /* outbound connections closing or dead, not yet freed */
	uint32_t bufs_hs_max;             /* the handshakes' share (the rest is kept for upgraded) */
	struct kw_conn *bq_head, *bq_tail;  /* connections waiting for a buffer, oldest first */
	struct kw_task bq_task;           /* serves the queue after buffers were returned */
	struct kw_conn *bq_serving;       /* the waiter bq_task runs now (passes the queue) */
	struct kw_mss mss;                /* per-stream negotiation */
	struct kw_conn *head;
	uint32_t max_conns;               /* inbound + outbound: sizes every per-connection pool */
	struct kw_proto_registry reg;
	struct kw_conn_ext_slot ext[CONFIG_KW_NET_CONN_EXT_SLOTS];
	size_t n_ext;
	struct kw_listener listeners[KW_SWARM_LISTENERS_MAX];
	size_t n_listeners;
	struct kw_conn_watcher *watchers;
	struct kw_drain drain;
	bool draining;
	struct kw_upgrade_shared ups;     /* shared state of the upgrade pipeline */
	struct kw_rcmgr rc;               /* inbound admission (rcmgr.h) */
	struct kw_timer rc_log;           /* emits the pending refusal summary */
	uint64_t fail_log_t0;             /* start of the current failure-log interval */
	uint32_t fail_log_n, fail_log_quiet; /* lines logged / held back in it */
	char protect[KW_SWARM_PROTECT_MAX][KW_PROTO_ID_MAX + 1];
	size_t n_protect;
};

/* How long empty socket buffers stay with a connection after traffic. */
#define KW_SWARM_BUF_LINGER_MS 50

/* Noise frames are at most 2 + 65535 bytes; a buffer holds KW_NET_SWARM_BUF_FRAMES of them
 * plus slack for coalescing small frames, so one read()/write() moves several. The receive
 * buffer also holds a partial frame body until it is whole (decrypted in place). */
#define KW_SWARM_BUF_SIZE ((uint32_t)CONFIG_KW_NET_SWARM_BUF_FRAMES * (2u + 65535u) + 1024u)

#endif /* KW_NET_SWARM_PRIV_H */
