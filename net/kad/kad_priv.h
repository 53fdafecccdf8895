/*
 * Internal state of the Kademlia node shared by net/kad/kad.c (request handling, rate limit,
 * routing table upkeep, bootstrap, timers) and net/kad/lookup.c (iterative lookups and the
 * operations built on them). Nothing outside net/kad includes this header.
 */
#ifndef KW_NET_KAD_PRIV_H
#define KW_NET_KAD_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <kw/loop.h>
#include <kw/net/kad.h>

/* Request tokens: kind (2 bits) | slot (10) | candidate index (8) | slot generation (12). */
#define KAD_TOK_LOOKUP 0u
#define KAD_TOK_PROBE  1u
#define KAD_TOK(kind, slot, idx, gen) \
	(((uint32_t)(kind) << 30) | ((uint32_t)(slot) << 20) | ((uint32_t)(idx) << 12) | \
	 ((uint32_t)(gen) & 0xfffu))
#define KAD_TOK_KIND(t) ((t) >> 30)
#define KAD_TOK_SLOT(t) (((t) >> 20) & 0x3ffu)
#define KAD_TOK_IDX(t)  (((t) >> 12) & 0xffu)
#define KAD_TOK_GEN(t)  ((t) & 0xfffu)

#define KAD_CAND_PER_K  3    /* candidates per lookup: 3k (bounded, closest kept) */
#define KAD_MAX_SLOTS   1024 /* token field width; Kconfig caps lookups at 256 */

enum kad_op {
	KAD_OP_FIND_PEER = 0, KAD_OP_CLOSEST, KAD_OP_GET, KAD_OP_PUT, KAD_OP_PROVIDE,
	KAD_OP_PROVIDERS,
};

enum kad_cand_state {
	KAD_C_HEARD = 0,    /* learned, not asked yet */
	KAD_C_WAITING,      /* request in flight */
	KAD_C_QUERIED,      /* answered */
	KAD_C_UNREACHABLE,  /* failed or timed out */
};

/* KAD_F_PENDING: to send (again): the first send or a retry after a local refusal */
enum kad_fan_state { KAD_F_NONE = 0, KAD_F_WAITING, KAD_F_OK, KAD_F_FAILED, KAD_F_PENDING };

/*
 * After our own transport refused a request (kw_kad_err_local: no stream state, buffer,
 * stream slot or connection slot free) a lookup asks that candidate again after 25, 50, 100
 * ms and then skips it for this lookup (the table keeps it): a short shortage is waited out,
 * a lasting one (all outbound connection slots taken, so an unconnected peer cannot be
 * dialed) does not stall the lookup. The other candidates are asked meanwhile. Fan-out and
 * probes resend every KAD_LOCAL_RETRY_MS within one query timeout.
 */
#define KAD_LOCAL_RETRY_MS 25u
#define KAD_LOCAL_TRIES    4u

struct kad_cand {
	struct kw_peer_id id;
	uint8_t key[KW_KAD_RT_KEY_BYTES];
	uint8_t state;      /* enum kad_cand_state */
	uint8_t fan;        /* enum kad_fan_state: put/provide after the lookup */
	uint8_t hop;        /* 1 for peers from our table, n+1 for peers a hop-n peer named */
	uint8_t naddrs;
	uint8_t refusals;   /* local refusals of our requests to it in this lookup */
	bool has_val;       /* get: answered with a valid record, whose digest is vh */
	uint8_t vh[8];
	struct kw_kad_rt_addr addrs[KW_KAD_RT_ADDRS];
	uint64_t sent_ms;   /* WAITING: when sent; HEARD after a local refusal: not before */
};

enum kad_phase {
	KAD_P_FREE = 0,
	KAD_P_LOOKUP,      /* asking peers */
	KAD_P_FANOUT,      /* put/provide: sending to the k closest */
	KAD_P_DONE,        /* finished, completion timer armed */
	KAD_P_CALLBACK,    /* inside the callback (kw_kad_destroy there must not call it again) */
};

struct kad_lookup {
	struct kw_kad *k;
	uint8_t phase;          /* enum kad_phase */
	uint8_t op;             /* enum kad_op */
	bool internal;          /* started by the node itself (no callback) */
	bool self_lookup;
	uint16_t gen;
	uint16_t ncand, inflight, cap;
	uint16_t klen;
	uint8_t target[KW_KAD_RT_KEY_BYTES];
	uint8_t key[KW_KAD_KEY_MAX];
	kw_kad_done_fn cb;
	void *user;
	struct kw_timer timer;  /* request timeouts and the deadline; 0 ms to complete */
	uint64_t deadline_ms;
	uint64_t retry_ms;      /* local refusal: send nothing before this (0 = no pause) */
	uint64_t fan_deadline_ms; /* fan-out: give up sends still refused locally */
	struct kad_cand *cand;  /* cap entries, from the arena */
	uint8_t *order;         /* candidate indices, closest to target first */
	unsigned messages, rounds, acks, nvals, nprov;
	int err;
	uint8_t *buf;           /* record value (get/put) or providers (find_providers) */
	size_t buf_cap, vlen;
	bool found;
	uint8_t best_vh[8];     /* get: digest of the value in buf */
	struct kad_cand found_peer;
};

enum kad_probe_kind { KAD_PR_FREE = 0, KAD_PR_LIVENESS, KAD_PR_BOOT };

struct kad_probe {
	uint8_t kind;           /* enum kad_probe_kind */
	bool failed;            /* failed at once: handled on the next probe timer pass */
	bool local;             /* refused by our transport: resend at retry_ms */
	struct kw_kad_rt_addr addrs[KW_KAD_RT_ADDRS]; /* for the resend */
	uint8_t naddrs;
	uint64_t retry_ms;
	uint16_t gen;
	uint16_t boot;          /* KAD_PR_BOOT: index in k->boot */
	struct kw_peer_id id;
	uint64_t deadline_ms;
};

enum kad_boot_state { KAD_B_FREE = 0, KAD_B_WAIT, KAD_B_TRYING, KAD_B_OK };

struct kad_boot {
	uint8_t state;          /* enum kad_boot_state */
	struct kw_peer_id id;
	struct kw_multiaddr ma; /* without /p2p */
	struct kw_kad_rt_addr addr;
	uint32_t backoff_ms;
	uint64_t next_ms;
};

struct kad_rate {
	struct kw_peer_id id;   /* len 0: free */
	uint32_t milli;         /* tokens x 1000 */
	uint64_t last_ms;       /* last refill = last use (LRU order) */
};

struct kw_kad {
	struct kw_loop *loop;
	struct kw_kad_cfg cfg;          /* resolved: no zero defaults left */
	struct kw_kad_transport tr;
	struct kw_peer_id self;
	uint8_t self_key[KW_KAD_RT_KEY_BYTES];
	struct kw_kad_rt rt;
	struct kw_kad_store *store;
	struct kad_lookup *lk;
	unsigned nlk;
	struct kad_probe *probes;
	unsigned nprobes;
	struct kad_boot boot[KW_KAD_BOOTSTRAP_MAX];
	struct kad_rate *rate;
	unsigned nrate;
	struct kw_kad_msg *msg;         /* outgoing request scratch (requests are encoded at once) */
	struct kw_kad_peer *res;        /* result peers handed to a callback */
	unsigned res_cap;
	struct kw_timer probe_timer, boot_timer, refresh_timer, republish_timer, reprovide_timer,
		expire_timer;
	bool self_lookup_running;
	bool dead;                      /* kw_kad_destroy ran: nothing starts any more */
	struct kw_kad_stats stats;
	/* kw_kad_withdraw (withdraw.c): not serving, not republishing; the task tells `done`
	 * once no put/provide lookup is left in flight */
	bool withdrawn, withdraw_notified;
	bool skipped_republish, skipped_reprovide;  /* a republish fell in the withdrawal */
	void (*withdraw_done)(struct kw_kad *k, void *arg);
	void *withdraw_arg;
	struct kw_task withdraw_task;
};

/* kad.c */
/* The Kademlia key of any key bytes (record key, multihash, peer id): SHA-256. */
void kad_hash(const uint8_t *in, size_t len, uint8_t out[KW_KAD_RT_KEY_BYTES]);
uint64_t kad_wall_ms(const struct kw_kad *k);
/* Random bytes from cfg.rng, or kw_rng_bytes when the configuration has none. */
int kad_rng(const struct kw_kad *k, void *buf, size_t len);
/* Bucket-refresh keys (kad.c): a peer-id-shaped key whose SHA-256 starts with `prefix`, and a
 * random one of those whose key has exactly `cpl` (<= 15) leading bits in common with ours. */
#define KAD_REFRESH_KEY_BYTES 34
void kad_refresh_key_for_prefix(uint16_t prefix, uint8_t key[KAD_REFRESH_KEY_BYTES]);
void kad_refresh_key(const struct kw_kad *k, unsigned cpl, uint8_t key[KAD_REFRESH_KEY_BYTES]);
void kad_fmt_time(uint64_t unix_ms, char out[KW_KAD_TIME_MAX]);
void kad_peer_failed(struct kw_kad *k, const struct kw_peer_id *id);
/* key: kw_kad_rt_key(id), which the caller (a lookup candidate) already holds */
void kad_peer_answered(struct kw_kad *k, const struct kw_peer_id *id, const uint8_t *key,
		       const struct kw_kad_rt_addr *addrs, size_t naddrs);
size_t kad_self_addrs(struct kw_kad *k, struct kw_multiaddr *out, size_t cap);

/* lookup.c */
size_t kad_lookup_bytes(const struct kw_kad_cfg *cfg);
int kad_lookups_init(struct kw_kad *k, struct kw_arena *arena);
void kad_lookups_cancel_all(struct kw_kad *k);
void kad_lookup_on_reply(struct kw_kad *k, uint32_t token, int err, const struct kw_kad_msg *resp);
/* Internal lookups (no callback): refresh, self-lookup, republish. Return 0 or -KW_E*. */
int kad_start_internal(struct kw_kad *k, enum kad_op op, const uint8_t *key, size_t klen,
		       const uint8_t *val, size_t vlen, bool self_lookup);
unsigned kad_lookups_free(const struct kw_kad *k);

/* withdraw.c */
/* A lookup ended while withdrawn: re-check (on the loop) whether announcements are over. */
void kad_withdraw_check(struct kw_kad *k);
int kad_withdraw_task(struct kw_loop *l, struct kw_task *t);

#endif /* KW_NET_KAD_PRIV_H */
