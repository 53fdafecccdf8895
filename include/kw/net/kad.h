/*
 * Kademlia DHT node (/ipfs/kad/1.0.0, libp2p/specs kad-dht/README.md): request handling,
 * iterative lookups, record and provider operations, bootstrap and refresh.
 *
 * The core is transport-agnostic: it sends requests through struct kw_kad_transport and is
 * handed inbound requests and replies by it. net/kad/swarm.c is the transport over libp2p
 * streams (kw_kad_swarm_attach); the simulation (tests/sim) plugs in a message transport
 * over virtual time, so many nodes share one loop and one process.
 *
 * Owns: the routing table, the store, the lookup slots and per-peer rate-limit slots, all
 * carved once from the arena given to kw_kad_create (sizes from struct kw_kad_cfg, defaults
 * from Kconfig). Timers run on the loop given at create. Every operation starts with a call
 * that returns at once and finishes in its callback, on the loop, exactly once (also on
 * kw_kad_destroy, with -KW_ECANCELED).
 */
#ifndef KW_NET_KAD_H
#define KW_NET_KAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/net/kad_msg.h>
#include <kw/net/kad_rt.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>

#define KW_KAD_PROTOCOL "/ipfs/kad/1.0.0"

struct kw_kad;

/*
 * How the core reaches other peers. request() sends `req` to `to` (dialing one of addrs when
 * not connected) and must later call kw_kad_on_reply(k, token, err, resp) exactly once, never
 * from inside request(). `req` is valid only during the call: encode or copy it. For
 * ADD_PROVIDER, which has no reply on the wire (libp2p/specs kad-dht/README.md), the transport
 * calls kw_kad_on_reply with err 0 and resp NULL once the request is written. The core does
 * not depend on the transport's own timeout: it gives up on a request after
 * cfg.query_timeout_ms and ignores a later reply to it (the reply must still come, once).
 * Return: 0, or a negative code (then no reply comes).
 *
 * Local refusals: a request the transport could not even start or carry because of OUR OWN
 * limits is not the peer's fault. The transport reports such a refusal with one of the codes
 * kw_kad_err_local() accepts (-KW_ENOBUFS, -KW_ELIMIT, -KW_ENOMEM, -KW_ESHUTDOWN,
 * -KW_ECANCELED), from request() when it knows at once and otherwise through
 * kw_kad_on_reply; the core then leaves the routing table alone, counts it
 * (stats.local_refusals) and asks again a little later (doc/net-kad.md "Local refusals").
 * Every other code (dial refused, stream reset by the peer, timeout, bad answer) means the
 * peer failed, and the peer is dropped from the table as go-libp2p-kad-dht does.
 *
 * self_addrs (optional, NULL = none) writes up to cap of our own listen addresses, as other
 * peers should dial them, and returns how many: provider records (ADD_PROVIDER) carry them
 * and FIND_NODE for our own id answers with them. kw_kad_provide fails with -KW_ENOTCONN
 * when there is none (js and go ignore providers without addresses).
 */
struct kw_kad_transport {
	int (*request)(void *t, const struct kw_peer_id *to, const struct kw_kad_rt_addr *addrs,
		       size_t naddrs, const struct kw_kad_msg *req, uint32_t token);
	void *t;
	size_t (*self_addrs)(void *t, struct kw_multiaddr *out, size_t cap);
};

/* True for the codes that mean "not sent: our own shortage", see struct kw_kad_transport. */
static inline bool kw_kad_err_local(int err)
{
	return err == -KW_ENOBUFS || err == -KW_ELIMIT || err == -KW_ENOMEM ||
	       err == -KW_ESHUTDOWN || err == -KW_ECANCELED;
}

#define KW_KAD_BOOTSTRAP_MAX 16  /* bootstrap peers one node keeps retrying */
#define KW_KAD_NO_REPLY      1   /* kw_kad_handle_request: served, send nothing back */

struct kw_kad_cfg {
	const struct kw_peer_id *self;
	bool client_mode;            /* do not serve requests, do not advertise the protocol */
	unsigned k;                  /* 0 = CONFIG_KW_NET_KAD_K */
	unsigned alpha;              /* 0 = CONFIG_KW_NET_KAD_ALPHA */
	unsigned max_lookups;        /* concurrent lookups; 0 = Kconfig */
	uint32_t query_timeout_ms;   /* one request; 0 = Kconfig */
	uint32_t lookup_timeout_ms;  /* a whole lookup; 0 = Kconfig */
	unsigned rate_per_peer;      /* inbound requests per peer per second; 0 = Kconfig */
	unsigned rate_burst;         /* 0 = Kconfig */
	unsigned rate_peers;         /* token buckets tracked; 0 = Kconfig */
	unsigned table_entries;      /* routing table pool; 0 = CONFIG_KW_NET_KAD_TABLE_ENTRIES */
	unsigned quorum;             /* get_value: stop after this many valid values (the local
	                              * one counts); 0 = go's default: run the lookup to its end */
	uint64_t refresh_ms;         /* bucket refresh interval; 0 = 10 min (go-libp2p-kad-dht) */
	struct kw_kad_store_cfg store; /* a zero field takes its Kconfig default */
	uint64_t (*wall_ms)(void *ctx); /* Unix time in ms (record expiry); NULL = CLOCK_REALTIME */
	void *wall_ctx;
	const struct kw_privkey *key;   /* signs /kwaai/ records put by this node (may be NULL) */
	/* Random bytes for the core's own choices (bucket-refresh keys); returns 0 or a negative
	 * code. NULL = kw_rng_bytes. A simulation passes a seeded PRNG here so that a run is
	 * repeatable; a node leaves it NULL. Called on the loop, never after kw_kad_destroy. */
	int (*rng)(void *ctx, void *buf, size_t len);
	void *rng_ctx;
};

struct kw_kad_result {
	int err;                       /* 0 or the reason the operation failed */
	unsigned rounds;               /* lookup rounds (max hops from the start set) */
	unsigned messages;             /* requests sent */
	unsigned stored;               /* put/provide: peers that accepted */
	const uint8_t *value;          /* get: the selected value (valid during the callback) */
	size_t value_len;
	const struct kw_kad_peer *peers; /* find-peer: the peer; providers; closest peers */
	size_t n_peers;
};
typedef void (*kw_kad_done_fn)(struct kw_kad *k, const struct kw_kad_result *r, void *user);

void kw_kad_cfg_default(struct kw_kad_cfg *cfg);
size_t kw_kad_arena_bytes(const struct kw_kad_cfg *cfg);
int kw_kad_create(struct kw_loop *loop, struct kw_arena *arena, const struct kw_kad_cfg *cfg,
		  const struct kw_kad_transport *tr, struct kw_kad **out);
/* Cancels every operation (callbacks get -KW_ECANCELED, inside this call; a callback running
 * when it is called from there is not called again) and stops the timers. Safe from a
 * callback and twice. Afterwards every call returns -KW_ESHUTDOWN or does nothing; the
 * arena may be reused once the transport no longer calls in. */
void kw_kad_destroy(struct kw_kad *k);

/* ---- transport -> core ---------------------------------------------------------------- */
/*
 * Delivers the reply to the request sent with `token`: err 0 and resp (valid during the call;
 * NULL for ADD_PROVIDER), or err < 0 (dial failed, stream reset, transport timeout) and
 * resp NULL. A token the core no longer waits for (timed out, lookup finished) is ignored.
 */
void kw_kad_on_reply(struct kw_kad *k, uint32_t token, int err, const struct kw_kad_msg *resp);
/*
 * Answers an inbound request from `from` (the authenticated remote peer) into *resp (the
 * caller's; overwritten). Return: 0 (send resp); KW_KAD_NO_REPLY (ADD_PROVIDER served: send
 * nothing); -KW_ELIMIT (rate limited: counted, reset the stream); -KW_EPROTO (not a request
 * we serve, or we are in client mode); -KW_EBADMSG (malformed, e.g. PUT_VALUE key != record
 * key); a PUT_VALUE or ADD_PROVIDER the store refuses returns the store's error (-KW_ESIG,
 * -KW_ENOPROTO, -KW_EALREADY for an older record, -KW_EPERM for a provider other than the
 * sender, ...): reset the stream, as go and js do. Every refusal is counted.
 */
int kw_kad_handle_request(struct kw_kad *k, const struct kw_peer_id *from,
			  const struct kw_kad_msg *req, struct kw_kad_msg *resp);
/* A peer that serves kad (identify lists KW_KAD_PROTOCOL) was seen with these addresses. */
void kw_kad_peer_seen(struct kw_kad *k, const struct kw_peer_id *id,
		      const struct kw_multiaddr *addrs, size_t naddrs);
/* The peer stopped serving kad or failed: drop it from the table. */
void kw_kad_peer_gone(struct kw_kad *k, const struct kw_peer_id *id);

/* ---- operations ------------------------------------------------------------------------ */
/*
 * Adds a bootstrap peer (multiaddr with /p2p/). The node connects to bootstrap peers, looks
 * itself up, and retries unreachable ones with exponential backoff (1 s doubling to 5 min)
 * for as long as it runs. Return: 0; -KW_EINVAL (no /p2p/ part, or our own id);
 * -KW_EALREADY (already added); -KW_ELIMIT (KW_KAD_BOOTSTRAP_MAX peers already).
 */
int kw_kad_bootstrap_add(struct kw_kad *k, const struct kw_multiaddr *ma);
/*
 * The operations below start a lookup in a free slot and return at once: 0 (cb runs later,
 * exactly once, from the loop; -KW_ECANCELED on kw_kad_destroy; the slot is released after
 * cb returns), -KW_ELIMIT (no free slot), -KW_EINVAL (bad argument, key empty or longer than
 * KW_KAD_KEY_MAX), -KW_ESHUTDOWN (after kw_kad_destroy, e.g. from a callback). Results (doc/net-kad.md "Lookups"):
 *  find_peer: peers[0] = the peer with its addresses, or err -KW_ENOENT;
 *  get_closest: up to k peers that answered, closest to SHA-256(key) first;
 *  get_value: value = the best valid record value (a /kwaai/ envelope as stored: open it
 *   with kw_kad_kwaai_open), or err -KW_ENOENT; stored = peers among the k closest that
 *   had an older value or none and accepted the best one (go's correction puts);
 *  put_value: stored = peers that echoed the record; fails at once with the store's error
 *   when our own store refuses it, -KW_EINVAL for a /kwaai/ key without cfg.key;
 *  provide: stored = peers the ADD_PROVIDER was written to; -KW_ENOTCONN at once without
 *   our own addresses (transport.self_addrs);
 *  find_providers: peers = providers (list KW_KAD_PROVIDER), ours and the network's.
 * get_closest, put_value and provide fail with -KW_ENOTCONN when no peer answered the
 * lookup (empty table, or every peer failed): nothing was found or stored.
 * A lookup past cfg.lookup_timeout_ms reports -KW_ETIMEDOUT with what it found.
 */
int kw_kad_find_peer(struct kw_kad *k, const struct kw_peer_id *id, kw_kad_done_fn cb, void *user);
int kw_kad_get_closest(struct kw_kad *k, const uint8_t *key, size_t klen, kw_kad_done_fn cb,
		       void *user);
int kw_kad_get_value(struct kw_kad *k, const uint8_t *key, size_t klen, kw_kad_done_fn cb,
		     void *user);
/* A /kwaai/ key is sealed with cfg.key first. */
int kw_kad_put_value(struct kw_kad *k, const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen, kw_kad_done_fn cb, void *user);
int kw_kad_provide(struct kw_kad *k, const uint8_t *mh, size_t mhlen, kw_kad_done_fn cb,
		   void *user);
int kw_kad_find_providers(struct kw_kad *k, const uint8_t *mh, size_t mhlen, kw_kad_done_fn cb,
			  void *user);

struct kw_kad_stats {
	uint64_t requests_in, requests_rate_limited, requests_refused;
	uint64_t requests_out, replies_ok, replies_failed, timeouts;
	uint64_t lookups_started, lookups_ok, lookups_failed;
	uint32_t lookups_active, lookups_high;
	uint64_t bogus_addrs;          /* addresses dropped from peer entries */
	uint64_t late_replies;         /* replies to requests the core no longer waited for */
	uint64_t bootstrap_attempts, bootstrap_ok;
	uint64_t refresh_lookups, republished;
	uint64_t local_refusals;       /* requests our transport refused (kw_kad_err_local):
	                                * retried later, the peer kept */
};
void kw_kad_get_stats(const struct kw_kad *k, struct kw_kad_stats *out);
struct kw_kad_rt *kw_kad_table(struct kw_kad *k);
struct kw_kad_store *kw_kad_store(struct kw_kad *k);

/* ---- withdrawing (net/kad/withdraw.c): the contribution policy's drain ------------------- */
/*
 * Stops serving while staying in the DHT: every inbound request is refused as in client mode
 * (counted in requests_refused), and our records and provider records are no longer
 * republished, so they expire where they are held (Kademlia has no withdrawal message). The
 * node's own lookups keep working; identify still lists KW_KAD_PROTOCOL (peers drop us after
 * a refused query). `done` (may be NULL) runs once, from the loop, never inside this call, as
 * soon as no put or provide lookup is in flight; those already running finish. Calling it
 * again replaces `done` and reports again. Return: 0, -KW_EINVAL (k NULL), -KW_ESHUTDOWN.
 */
int kw_kad_withdraw(struct kw_kad *k, void (*done)(struct kw_kad *k, void *arg), void *arg);
/*
 * Serves again; a republish (records, providers) that fell while withdrawn runs at once.
 * `done` of a withdrawal still waiting is dropped. No-op when not withdrawn.
 */
void kw_kad_rejoin(struct kw_kad *k);
bool kw_kad_withdrawn(const struct kw_kad *k);
/* Put and provide lookups (announcements) in flight. */
unsigned kw_kad_announcing(const struct kw_kad *k);

/* ---- libp2p transport (net/kad/swarm.c) ------------------------------------------------- */
struct kw_swarm;
struct kw_identify;
/*
 * Serves KW_KAD_PROTOCOL on sw (not in client mode), frames requests as uvarint-prefixed
 * messages, several per stream, and feeds identify results to kw_kad_peer_seen. The
 * transport lives in the swarm's arena until the swarm is destroyed.
 */
int kw_kad_swarm_create(struct kw_swarm *sw, struct kw_identify *id, struct kw_arena *arena,
			const struct kw_kad_cfg *cfg, struct kw_kad **out);
/*
 * Destroys a node made by kw_kad_swarm_create (kw_kad_destroy, and the transport stops
 * reporting to it). Call before kw_swarm_destroy: the swarm then closes the remaining streams.
 */
void kw_kad_swarm_destroy(struct kw_kad *k);

#endif /* KW_NET_KAD_H */
