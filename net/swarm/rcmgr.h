/*
 * The swarm's inbound resource manager: who may open a connection to us, in the spirit of
 * go-libp2p's resource manager connection limiter (p2p/host/resource-manager/conn_limiter.go,
 * v0.33) and its connection manager's protection (p2p/net/connmgr, v0.33).
 *
 * What it decides, per accepted TCP connection, in O(1):
 *  - per remote IP address and per subnet (/24 for IPv4, /48 for IPv6): inbound connections
 *    in any state, and separately inbound connections still in their handshake;
 *  - globally: inbound connections (the swarm's max_conns_in), inbound handshakes in
 *    progress, and a reserve of inbound slots that only protected connections (peers an
 *    upper layer marked useful after identify) may hold;
 *  - when a global limit is reached, the oldest inbound connection still in its handshake is
 *    named as the victim to drop in favour of the newcomer, so a crowd of slow handshakes
 *    cannot lock everyone out. Per-address limits never evict: they refuse.
 * Outbound connections do not pass through here: they have their own limit
 * (max_conns_out) and their own share of the connection pool, so inbound load never takes
 * a dial's slot.
 *
 * It also counts refusals per reason and keeps a bounded table of the addresses refused
 * most (space-saving heavy hitters), so the swarm logs one summary line per interval
 * instead of a line per refusal.
 *
 * Memory: one open-addressing hash table of counters (per-IP and per-subnet buckets share
 * it), sized from max_conns_in at init from the caller's arena; a bucket exists only while
 * one of its counters is non-zero, so the table never fills. Keys are hashed with a random
 * seed so a peer cannot aim its addresses at one chain. Nothing allocates after init.
 * Single-threaded: called from the swarm on its event loop.
 */
#ifndef KW_NET_SWARM_RCMGR_H
#define KW_NET_SWARM_RCMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct kw_arena;

/* Why an inbound connection was refused (or dropped); indexes the counters. */
enum kw_rc_reason {
	KW_RC_OK = 0,
	KW_RC_IP,           /* inbound connections from this address at their limit */
	KW_RC_SUBNET,       /* ... from this /24 or /48 */
	KW_RC_HS_IP,        /* handshakes in progress from this address at their limit */
	KW_RC_HS_SUBNET,    /* ... from this /24 or /48 */
	KW_RC_FULL,         /* every inbound slot a stranger may take is held by an upgraded
	                     * connection: nothing in its handshake to drop */
	KW_RC_DRAINING,     /* the node is shutting down */
	KW_RC_EVICTED,      /* not a refusal: an old handshake dropped for a newcomer */
	KW_RC_REASONS
};

struct kw_rcmgr_limits {
	uint32_t conns_in;           /* inbound connections, any state */
	uint32_t conns_in_reserved;  /* of those, kept for protected connections */
	uint32_t conns_per_ip, conns_per_subnet;
	uint32_t hs_in;              /* inbound handshakes in progress */
	uint32_t hs_per_ip, hs_per_subnet;
	uint32_t log_interval_ms;    /* at most one summary line per interval */
};

/* A remote address: IPv4 as an IPv4-mapped IPv6 address. */
struct kw_rc_addr {
	uint8_t b[16];
	bool v4;
};

/* Per-connection state, embedded in the connection. Zeroed: not admitted. */
struct kw_rc_conn {
	struct kw_rc_conn *hs_prev, *hs_next;   /* handshake queue, oldest first */
	struct kw_rc_addr addr;
	bool admitted, handshaking, prot;
};

struct kw_rc_bucket;

#define KW_RC_TOP 4   /* addresses named in a refusal summary */

struct kw_rcmgr {
	struct kw_rcmgr_limits lim;
	struct kw_rc_bucket *tab;
	uint32_t mask;
	uint64_t seed;
	uint32_t in, hs, prot;        /* admitted inbound, of which handshaking / protected */
	struct kw_rc_conn *hs_head, *hs_tail;
	uint64_t total[KW_RC_REASONS];   /* since start, for stats */
	/* the current summary interval */
	uint64_t last_log_ms;
	bool logged;
	uint32_t pend[KW_RC_REASONS];
	uint32_t pend_n;
	struct { struct kw_rc_addr a; uint32_t n; } top[KW_RC_TOP];
};

/*
 * Carves the counter table (4 buckets per inbound slot, rounded up to a power of two) from
 * `arena`; `seed` keys the hash. Return: 0, -KW_EINVAL (conns_in 0), -KW_ENOMEM.
 */
int kw_rcmgr_init(struct kw_rcmgr *rc, struct kw_arena *arena,
		  const struct kw_rcmgr_limits *lim, uint64_t seed);
/* Fills *out from an AF_INET or AF_INET6 socket address. Return: 0, -KW_EINVAL. */
int kw_rc_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct kw_rc_addr *out);
/* "1.2.3.4" or an IPv6 text; out holds at least 46 bytes. */
void kw_rc_addr_text(const struct kw_rc_addr *a, char *out, size_t cap);

/*
 * May a connection from `a` come in? KW_RC_OK, or the reason to refuse. With KW_RC_OK and
 * *victim set, admitting needs the victim gone first: the caller calls kw_rcmgr_release on
 * it (and closes it) before kw_rcmgr_commit. Changes nothing itself.
 */
enum kw_rc_reason kw_rcmgr_check(const struct kw_rcmgr *rc, const struct kw_rc_addr *a,
				 struct kw_rc_conn **victim);
/* Counts rcc (from `a`) as admitted and in its handshake, newest in the handshake queue.
 * Only after kw_rcmgr_check said KW_RC_OK (and its victim was released). */
void kw_rcmgr_commit(struct kw_rcmgr *rc, struct kw_rc_conn *rcc, const struct kw_rc_addr *a);
/* rcc finished its handshake: it leaves the handshake counts and the queue. Idempotent. */
void kw_rcmgr_handshake_done(struct kw_rcmgr *rc, struct kw_rc_conn *rcc);
/* rcc is useful to an upper layer: it may hold a reserved slot and is never a victim. */
void kw_rcmgr_protect(struct kw_rcmgr *rc, struct kw_rc_conn *rcc);
/* rcc is gone: every count it held is returned. Idempotent; no-op when never admitted. */
void kw_rcmgr_release(struct kw_rcmgr *rc, struct kw_rc_conn *rcc);

/* Counts a refusal (or KW_RC_EVICTED) of a connection from `a` for stats and the summary. */
void kw_rcmgr_note(struct kw_rcmgr *rc, const struct kw_rc_addr *a, enum kw_rc_reason why);
/*
 * The summary line, when one is due at `now_ms`: the first refusal after a quiet interval
 * is reported at once, later ones at most once per log_interval_ms ("inbound connections
 * turned away: 812 in the last 10000 ms (per address 800, ...); most from 127.0.0.4 (800),
 * ..."). Writes it to out and starts a new interval. Return: 1 (a line), 0 (nothing due).
 */
int kw_rcmgr_summary(struct kw_rcmgr *rc, uint64_t now_ms, char *out, size_t cap);
/* When the pending refusals' summary is due (ms, absolute), or 0 when nothing is pending. */
uint64_t kw_rcmgr_summary_due(const struct kw_rcmgr *rc);
/* Buckets in use (tests: returns to 0 when every connection is released). */
uint32_t kw_rcmgr_buckets_used(const struct kw_rcmgr *rc);

#endif /* KW_NET_SWARM_RCMGR_H */
