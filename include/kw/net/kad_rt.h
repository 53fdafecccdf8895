/*
 * Kademlia routing table (libp2p/specs kad-dht/README.md, go-libp2p-kbucket v0.9.0 table.go):
 * 256 k-buckets over the XOR distance of SHA-256(peer ID bytes), indexed by the common prefix
 * length (CPL) with our own key. Each bucket holds up to CONFIG_KW_NET_KAD_K members ordered
 * least recently seen first, and up to CONFIG_KW_NET_KAD_REPLACEMENTS candidates (most recent
 * first). A full bucket never evicts on its own: it asks the caller to check the liveness of
 * its least recently seen member (ping_cb) and evicts only on kw_kad_rt_dead().
 *
 * Admission follows go-libp2p-kbucket peerdiversity/filter.go: at most
 * CONFIG_KW_NET_KAD_PEERS_PER_IP_GROUP_BUCKET peers per IP group in one bucket and
 * CONFIG_KW_NET_KAD_PEERS_PER_IP_GROUP_TABLE in the table (group: IPv4 /16, IPv6 /32);
 * loopback, private and link-local addresses are exempt.
 *
 * Owns: the bucket array and an entry pool carved once from the arena given at init (members
 * and replacement candidates share the pool). No heap, no timers, no I/O: the caller passes
 * the time and does the pinging.
 */
#ifndef KW_NET_KAD_RT_H
#define KW_NET_KAD_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>

#define KW_KAD_RT_KEY_BYTES   32   /* SHA-256 */
#define KW_KAD_RT_BUCKETS     256  /* one per CPL 0..255 */
#define KW_KAD_RT_ADDRS       2    /* addresses kept per peer (first ones that fit) */
#define KW_KAD_RT_ADDR_BYTES  38   /* /ip6/../udp/../quic-v1 is 24, /dns4/<30 chars>/tcp/.. 37 */
#define KW_KAD_RT_REFRESH_DEFAULT_MS (10u * 60u * 1000u)  /* go-libp2p-kad-dht's default */
#define KW_KAD_RT_NONE        0xffffu

struct kw_kad_rt;

/*
 * Asks the caller to check whether `id` (the least recently seen member of a full bucket) is
 * alive. Must return at once; the caller later calls kw_kad_rt_alive() or kw_kad_rt_dead().
 * At most one check per bucket is outstanding. `id` points into the table: copy it.
 */
typedef void (*kw_kad_rt_ping_fn)(void *ctx, struct kw_kad_rt *rt, const struct kw_peer_id *id);

struct kw_kad_rt_addr {
	uint8_t len;
	uint8_t bytes[KW_KAD_RT_ADDR_BYTES];  /* binary multiaddr */
};

enum kw_kad_rt_state { KW_KAD_RT_FREE = 0, KW_KAD_RT_MEMBER, KW_KAD_RT_CANDIDATE };

struct kw_kad_rt_entry {
	struct kw_peer_id id;
	uint8_t key[KW_KAD_RT_KEY_BYTES];       /* SHA-256(id.bytes) */
	uint8_t state;                          /* enum kw_kad_rt_state */
	uint8_t cpl;                            /* bucket index */
	uint8_t naddrs;
	uint8_t pinging;                        /* liveness check outstanding */
	uint8_t fails;                          /* requests failed since it last answered
						 * (kept stale: see kw_kad_rt_failed) */
	uint16_t next;                          /* list link inside its bucket (pool index) */
	struct kw_kad_rt_addr addrs[KW_KAD_RT_ADDRS];
	uint64_t groups[KW_KAD_RT_ADDRS];       /* IP group per address, 0 = exempt */
	uint64_t last_seen_ms;                  /* last add/alive */
	uint64_t last_useful_ms;                /* last kw_kad_rt_useful() (0 = never) */
};

struct kw_kad_rt_bucket {
	uint16_t head;          /* members, least recently seen first */
	uint16_t cand;          /* replacement candidates, most recent first */
	uint8_t n;              /* members */
	uint8_t ncand;
	uint8_t pinging;        /* a liveness check is outstanding for this bucket */
	uint8_t pad;
	uint64_t last_query_ms; /* last lookup of a key in this bucket (kw_kad_rt_queried) */
};

struct kw_kad_rt_stats {
	uint32_t members;            /* current */
	uint32_t candidates;         /* current */
	uint32_t pool_used_high;     /* pool entries in use at most */
	uint64_t added;              /* new members */
	uint64_t updated;            /* known members seen again */
	uint64_t cached;             /* candidates put in a replacement cache */
	uint64_t pings;              /* liveness checks asked */
	uint32_t stale;              /* current members kept after a failed request */
	uint64_t evicted;            /* members removed after a failed check or request */
	uint64_t kept_stale;         /* failed requests that left the member in (stale) */
	uint64_t promoted;           /* candidates that became members */
	uint64_t refused_bucket_group;  /* diversity: per-bucket IP group limit */
	uint64_t refused_table_group;   /* diversity: per-table IP group limit */
	uint64_t refused_pool;       /* pool exhausted */
};

/* Slots of the per-table IP-group member counts (a hashed counting filter, see rt.c). */
#define KW_KAD_RT_GROUP_SLOTS 1024

struct kw_kad_rt {
	struct kw_peer_id self;
	uint8_t self_key[KW_KAD_RT_KEY_BYTES];
	struct kw_kad_rt_bucket buckets[KW_KAD_RT_BUCKETS];
	struct kw_kad_rt_entry *pool;   /* from the arena: max_entries */
	uint16_t max_entries;
	uint16_t free_head;      /* entries freed since (pushed on this list) */
	uint16_t used;
	uint16_t fresh;          /* pool[fresh..] were never used: taken in order once the free
	                          * list is empty, so init writes none of the pool's pages */
	uint64_t refresh_ms;
	kw_kad_rt_ping_fn ping_cb;
	void *ctx;
	struct kw_kad_rt_stats stats;
	/* members having an IP group that hashes to each slot: 0 means no member has any group
	 * of that hash, so a newcomer of such a group passes the diversity limits unwalked */
	uint16_t group_members[KW_KAD_RT_GROUP_SLOTS];
};

struct kw_kad_rt_cfg {
	const struct kw_peer_id *self;
	unsigned max_entries;        /* pool entries for members + candidates, 1..65534 */
	uint64_t refresh_ms;         /* bucket refresh interval; 0 = KW_KAD_RT_REFRESH_DEFAULT_MS */
	kw_kad_rt_ping_fn ping_cb;   /* required */
	void *ctx;
};

/* Arena bytes kw_kad_rt_init takes for `max_entries` (alignment padding included). */
#define KW_KAD_RT_ARENA_BYTES(max_entries) \
	((size_t)(max_entries) * sizeof(struct kw_kad_rt_entry) + 16u)

/* The Kademlia key of a peer: SHA-256 of its peer ID bytes. Return: 0, -KW_EINVAL (empty id). */
int kw_kad_rt_key(const struct kw_peer_id *id, uint8_t key[KW_KAD_RT_KEY_BYTES]);
/* Common prefix length of two keys in bits, 0..256 (256 when equal). */
unsigned kw_kad_rt_cpl(const uint8_t a[KW_KAD_RT_KEY_BYTES], const uint8_t b[KW_KAD_RT_KEY_BYTES]);

/*
 * Carves the entry pool from `arena` (KW_KAD_RT_ARENA_BYTES(max_entries)); `rt` is the caller's.
 * Return: 0; -KW_EINVAL (no self, no ping_cb, max_entries out of range); -KW_ENOMEM (arena).
 */
int kw_kad_rt_init(struct kw_kad_rt *rt, struct kw_arena *arena, const struct kw_kad_rt_cfg *cfg);

/*
 * Tells the table that `id` was seen (reachable, speaking kad) at `now_ms`, with its addresses
 * (the first KW_KAD_RT_ADDRS that fit KW_KAD_RT_ADDR_BYTES are kept). A member moves to the
 * tail of its bucket; its addresses change only if the new ones pass the diversity filter.
 * err (may be NULL) receives the reason of a refusal.
 * Return: 0 (member: added or updated);
 *  -KW_EINPROGRESS: the bucket is full, the peer waits in the replacement cache and a liveness
 *   check of the bucket's least recently seen member was asked (or is already outstanding);
 *  -KW_EBUSY: the bucket is full and the replacement cache is disabled (the check is still asked);
 *  -KW_ELIMIT: refused by the diversity filter (reason names the group and the limit);
 *  -KW_ENOBUFS: the entry pool is exhausted; -KW_EINVAL: our own id, or an empty id.
 */
int kw_kad_rt_add(struct kw_kad_rt *rt, const struct kw_peer_id *id,
		  const struct kw_multiaddr *addrs, size_t naddrs, uint64_t now_ms,
		  char *err, size_t errcap);

/*
 * Result of a liveness check asked through ping_cb. alive: the member moves to the tail of
 * its bucket, candidates stay cached. dead: the member is removed and the most recent
 * candidate that passes the diversity filter takes its place.
 * Return: 0; -KW_ENOENT (not a member).
 */
int kw_kad_rt_alive(struct kw_kad_rt *rt, const struct kw_peer_id *id, uint64_t now_ms);
int kw_kad_rt_dead(struct kw_kad_rt *rt, const struct kw_peer_id *id);

/* Records that a member answered a query usefully. Return: 0; -KW_ENOENT. */
int kw_kad_rt_useful(struct kw_kad_rt *rt, const struct kw_peer_id *id, uint64_t now_ms);

/*
 * A member failed one of our requests (refused, reset, timed out). As in Kademlia (Maymounkov
 * and Mazieres, section 4.1) a failure removes a contact only when something can take its
 * place: the member goes (as kw_kad_rt_dead) when its bucket caches a replacement, or when
 * the table holds another member that has not failed since it last answered. Otherwise it is
 * the table's last working contact: it stays, marked stale (`fails` counts the failures), so
 * one refused request (a busy peer's rate limit, a reset right after connecting) cannot empty
 * a small table; a later answer, liveness check or add clears the mark.
 * Return: 0 removed; 1 kept stale; -KW_ENOENT (not a member).
 */
int kw_kad_rt_failed(struct kw_kad_rt *rt, const struct kw_peer_id *id);

/* Members that have not failed a request since they last answered (size minus stale ones). */
size_t kw_kad_rt_working(const struct kw_kad_rt *rt);

/*
 * A peer answered one of our queries: kw_kad_rt_add unless it is a member already, then
 * kw_kad_rt_useful, for a caller that holds the id's key (kw_kad_rt_key(id), e.g. a lookup
 * candidate's): one SHA-256 fewer per step, the same effect as those calls in that order.
 * Return: 0 (a member afterwards), or what kw_kad_rt_add returned.
 */
int kw_kad_rt_answered(struct kw_kad_rt *rt, const struct kw_peer_id *id,
		       const uint8_t key[KW_KAD_RT_KEY_BYTES], const struct kw_multiaddr *addrs,
		       size_t naddrs, uint64_t now_ms);

/*
 * Removes a member or a candidate (e.g. the peer stopped serving kad). A removed member's
 * place goes to its bucket's most recent admissible candidate, as after kw_kad_rt_dead.
 * Return: 0; -KW_ENOENT.
 */
int kw_kad_rt_remove(struct kw_kad_rt *rt, const struct kw_peer_id *id);

/* The member with this id, or NULL (candidates are not returned). Valid until the next change. */
const struct kw_kad_rt_entry *kw_kad_rt_find(const struct kw_kad_rt *rt, const struct kw_peer_id *id);

/*
 * Writes into out[] the min(n, size) members closest to `key` by XOR distance, closest first.
 * The pointers are valid until the next change to the table. Returns how many were written.
 */
size_t kw_kad_rt_nearest(const struct kw_kad_rt *rt, const uint8_t key[KW_KAD_RT_KEY_BYTES],
			 const struct kw_kad_rt_entry **out, size_t n);

/* Members in the table. */
size_t kw_kad_rt_size(const struct kw_kad_rt *rt);

/* Marks bucket `cpl` as refreshed (a lookup for a key in it ran) at now_ms. */
void kw_kad_rt_queried(struct kw_kad_rt *rt, unsigned cpl, uint64_t now_ms);

/*
 * Lists (ascending) the CPLs 0..max, max being the highest CPL of a member (0 for an empty
 * table), whose bucket was not queried within the refresh interval, as go-libp2p-kad-dht's
 * refresh manager does. Writes at most cap; returns how many are due (may exceed cap).
 */
size_t kw_kad_rt_refresh_due(const struct kw_kad_rt *rt, uint64_t now_ms, uint8_t *out_cpl,
			     size_t cap);

/* Copies the counters. */
void kw_kad_rt_get_stats(const struct kw_kad_rt *rt, struct kw_kad_rt_stats *out);

#endif /* KW_NET_KAD_RT_H */
