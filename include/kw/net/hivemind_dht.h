/*
 * The Hivemind DHT (doc/net-hivemind.md "DHT"): hivemind's own Kademlia variant, not libp2p
 * kad-dht. Sources, learning-at-home/hivemind @ 4bd43b7 (same wire at 213bff98, the commit
 * Petals pins): `hivemind/proto/dht.proto`, `hivemind/dht/routing.py`,
 * `hivemind/dht/storage.py`, `hivemind/utils/timed_storage.py`, `hivemind/dht/protocol.py`,
 * `hivemind/dht/node.py` (Blacklist).
 *
 * Three pieces, each usable alone:
 *  1. the protobuf messages of DHTProtocol.rpc_ping / rpc_store / rpc_find (a codec: views
 *     into the caller's bytes, no allocation, no state);
 *  2. DHTIDs (SHA-1 of the msgpack of a key), the routing table (KBuckets as routing.py) and
 *     the blacklist of non-responding peers, with every table carved from an arena at init;
 *  3. the record storage (TimedStorage / DHTLocalStorage / DictionaryDHTValue rules) with a
 *     main tier and a cache tier, fixed-size cells from an arena.
 * Time ("DHT time") is always passed in by the caller as UNIX seconds (a double, as Python's
 * time.time()), so tests drive it and nothing here reads a clock.
 *
 * Owner: net/hivemind. Single-threaded: everything runs on the node's event loop.
 */
#ifndef KW_NET_HIVEMIND_DHT_H
#define KW_NET_HIVEMIND_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/hivemind_rpc.h>

struct kw_arena;

#define KW_HM_DHTID_LEN      20      /* DHTID.HASH_NBYTES: SHA-1, big-endian */
#define KW_HM_DHT_MAX_KEYS   CONFIG_KW_NET_HIVEMIND_DHT_MAX_KEYS
#define KW_HM_DHT_MAX_NEAREST CONFIG_KW_NET_HIVEMIND_DHT_MAX_NEAREST
#define KW_HM_DHT_PEER_ID_MAX 64     /* bytes of a libp2p PeerID (the largest is 42) */

/* Subkey bytes of StoreRequest.subkeys (hivemind/dht/protocol.py) */
#define KW_HM_DHT_IS_REGULAR 0xc0    /* msgpack(None): a plain value, no subkey */
/* an empty subkey (IS_DICTIONARY) means: the value is a whole DictionaryDHTValue */

/* ---- 1. messages ---------------------------------------------------------------------- */

/* NodeInfo: present when the sender set `peer`; node_id empty means a client-mode node. */
struct kw_hm_dht_peer {
	bool present;
	struct kw_hm_bytes node_id;   /* at most KW_HM_DHTID_LEN bytes (checked on decode) */
};

struct kw_hm_dht_ping_req {
	struct kw_hm_dht_peer peer;
	bool validate;
};

struct kw_hm_dht_ping_resp {
	struct kw_hm_dht_peer peer;
	double dht_time;
	bool available;
};

/* The five arrays are independent on the wire; hivemind requires keys, values,
 * expiration_time and in_cache to have one length and zips subkeys (see
 * kw_hm_dht_store_req_check). */
struct kw_hm_dht_store_req {
	uint32_t n_keys, n_subkeys, n_values, n_exp, n_in_cache;
	struct kw_hm_bytes keys[KW_HM_DHT_MAX_KEYS];
	struct kw_hm_bytes subkeys[KW_HM_DHT_MAX_KEYS];
	struct kw_hm_bytes values[KW_HM_DHT_MAX_KEYS];
	double exp[KW_HM_DHT_MAX_KEYS];
	bool in_cache[KW_HM_DHT_MAX_KEYS];
	struct kw_hm_dht_peer peer;
};

struct kw_hm_dht_store_resp {
	uint32_t n;
	bool store_ok[KW_HM_DHT_MAX_KEYS];
	struct kw_hm_dht_peer peer;
};

struct kw_hm_dht_find_req {
	uint32_t n_keys;
	struct kw_hm_bytes keys[KW_HM_DHT_MAX_KEYS];
	struct kw_hm_dht_peer peer;
};

enum kw_hm_dht_result_type {
	KW_HM_DHT_NOT_FOUND = 0,
	KW_HM_DHT_FOUND_REGULAR = 1,
	KW_HM_DHT_FOUND_DICTIONARY = 2,
};

struct kw_hm_dht_find_result {
	uint32_t type;                /* enum kw_hm_dht_result_type (other values kept as read) */
	struct kw_hm_bytes value;     /* REGULAR: the stored bytes; DICTIONARY: ext 0x50 */
	double expiration;
	uint32_t n_node_ids, n_peer_ids;   /* hivemind writes them aligned */
	struct kw_hm_bytes node_ids[KW_HM_DHT_MAX_NEAREST];
	struct kw_hm_bytes peer_ids[KW_HM_DHT_MAX_NEAREST];
};

/* A FindResponse keeps each result as the view of its FindResult bytes, decoded one at a time
 * with kw_hm_dht_find_result_decode: a whole response decoded at once would need
 * MAX_KEYS x MAX_NEAREST views. When encoding, results[] must be filled instead. */
struct kw_hm_dht_find_resp {
	uint32_t n_results;
	struct kw_hm_bytes raw[KW_HM_DHT_MAX_KEYS];               /* decode: each FindResult */
	const struct kw_hm_dht_find_result *results;               /* encode: n_results of them */
	struct kw_hm_dht_peer peer;
};

enum kw_hm_dht_msg {
	KW_HM_DHT_PING_REQ, KW_HM_DHT_PING_RESP,
	KW_HM_DHT_STORE_REQ, KW_HM_DHT_STORE_RESP,
	KW_HM_DHT_FIND_REQ, KW_HM_DHT_FIND_RESP,
	KW_HM_DHT_FIND_RESULT,
};

/*
 * Encodes the message `m` of kind `kind` (the matching struct above) as Python writes it:
 * proto3 defaults omitted, repeated doubles and bools packed, every repeated bytes element
 * written even when empty, `peer` written when present (an empty node_id gives `12 00`),
 * `auth` never written. Return: the bytes written into buf[0..cap); -KW_ENOSPC; -KW_EINVAL
 * for a NULL view with a nonzero length, a node_id longer than 20 bytes, or a count above
 * the array.
 */
long kw_hm_dht_encode(int kind, const void *m, uint8_t *buf, size_t cap);

/*
 * Decodes buf[0..len) into *m (views into buf, valid while it is). Both packed and unpacked
 * repeated doubles/bools are read; `auth` and unknown fields are skipped. Return: 0;
 * -KW_EBADMSG for malformed protobuf; -KW_EPROTO for a well-formed message hivemind would
 * choke on: a node_id or DHTID key longer than 20 bytes (hivemind's own handler crashes on
 * DHTID.from_bytes there), an unknown result type is NOT refused (Python keeps the number);
 * -KW_ELIMIT for more than KW_HM_DHT_MAX_KEYS keys/values/results or more than
 * KW_HM_DHT_MAX_NEAREST nearest ids. *why (may be NULL) names the field ("" on success).
 */
int kw_hm_dht_decode(int kind, const uint8_t *buf, size_t len, void *m, const char **why);

/* One FindResult (a raw[] view of a decoded FindResponse, or any FindResult bytes). Return:
 * as kw_hm_dht_decode. */
int kw_hm_dht_find_result_decode(const uint8_t *buf, size_t len,
				 struct kw_hm_dht_find_result *r, const char **why);

/*
 * hivemind's rpc_store precondition: len(keys) == len(values) == len(expiration_time) ==
 * len(in_cache) (an AssertionError otherwise), and, ours, exactly one subkey per key (hivemind
 * zips subkeys and silently drops the surplus items; we refuse rather than drop). Return: 0
 * or -KW_EPROTO with *why naming the mismatch.
 */
int kw_hm_dht_store_req_check(const struct kw_hm_dht_store_req *r, const char **why);

/* ---- 2. DHTIDs, routing table, blacklist ---------------------------------------------- */

struct kw_hm_dhtid {
	uint8_t b[KW_HM_DHTID_LEN];   /* big-endian 160-bit integer */
};

/*
 * DHTID of a key: SHA-1 of `src`. hivemind hashes msgpack(key) for every key that is not
 * Python bytes, and the raw bytes of a bytes key; the caller passes whichever applies
 * (kw_hm_dhtid_of_str does the msgpack for a str key).
 */
void kw_hm_dhtid_hash(const uint8_t *src, size_t len, struct kw_hm_dhtid *out);
/* DHTID of a str key (msgpack str of the UTF-8 text). -KW_EINVAL when not UTF-8 or longer
 * than 4 KiB. */
int kw_hm_dhtid_of_str(const char *key, size_t len, struct kw_hm_dhtid *out);
/* A random node ID (hivemind DHTID.generate(): SHA-1 of random bits). Return: 0, or the
 * error of kw_rng_bytes. */
int kw_hm_dhtid_random(struct kw_hm_dhtid *out);
/* DHTID.from_bytes: big-endian, shorter input is a smaller number (zero-padded on the left,
 * so an empty input is DHTID 0). -KW_ERANGE for more than 20 bytes. */
int kw_hm_dhtid_from_bytes(const uint8_t *b, size_t len, struct kw_hm_dhtid *out);
void kw_hm_dhtid_xor(const struct kw_hm_dhtid *a, const struct kw_hm_dhtid *b,
		     struct kw_hm_dhtid *out);
/* memcmp order = integer order (big-endian). */
int kw_hm_dhtid_cmp(const struct kw_hm_dhtid *a, const struct kw_hm_dhtid *b);
/* Compares XOR distances to `q`: <0 when a is nearer than b. */
int kw_hm_dhtid_dist_cmp(const struct kw_hm_dhtid *q, const struct kw_hm_dhtid *a,
			 const struct kw_hm_dhtid *b);

/* A routing-table entry as callers see it. */
struct kw_hm_dht_contact {
	struct kw_hm_dhtid id;
	uint8_t peer_len;
	uint8_t peer[KW_HM_DHT_PEER_ID_MAX];
};

struct kw_hm_rt_node;
struct kw_hm_rt_bucket;

struct kw_hm_rt_limits {
	uint32_t bucket_size;     /* k, hivemind default 20 */
	uint32_t depth_modulo;    /* b, hivemind default 5 */
	uint32_t max_nodes;       /* nodes + replacements in all buckets */
	uint32_t max_buckets;
	uint32_t max_replacements;/* per bucket (hivemind keeps any number) */
};
void kw_hm_rt_limits_default(struct kw_hm_rt_limits *l);   /* from Kconfig */

struct kw_hm_rt_stats {
	uint64_t added, updated, replacements, removed, promoted;
	uint64_t full;            /* refused: node pool exhausted */
	uint64_t replacements_dropped;
	uint64_t no_split;        /* a split wanted but max_buckets reached */
};

struct kw_hm_rt {
	struct kw_hm_dhtid self;
	struct kw_hm_rt_limits lim;
	struct kw_hm_rt_node *nodes;     /* max_nodes, from the arena */
	struct kw_hm_rt_bucket *buckets; /* max_buckets, sorted by lower bound */
	uint32_t n_buckets;
	uint64_t seq;                    /* recency order of updates */
	struct kw_hm_rt_stats stats;
};

/* Carves the tables from `arena`. Return: 0; -KW_EINVAL for a zero limit, or bucket_size or
 * max_replacements above 255; -KW_ENOMEM when the arena is too small. */
int kw_hm_rt_init(struct kw_hm_rt *rt, const struct kw_hm_dhtid *self,
		  const struct kw_hm_rt_limits *lim, struct kw_arena *arena);

/*
 * RoutingTable.add_or_update_node: after a request from or a response by (id, peer). A known
 * node moves to the most-recently-updated end; a new one joins its bucket, or, when that is
 * full, the bucket splits (it holds our own id, or its depth % depth_modulo != 0) and the add
 * is retried; else the node becomes a replacement and, when *to_ping is not NULL,
 * *to_ping receives the bucket's least-recently-updated node not already asked to be pinged.
 * Return: 0 added or updated; 1 kept as a replacement (to_ping filled if 2 is not returned);
 * 2 kept as a replacement and no node is left to ping; -KW_ENOSPC when the node pool is full;
 * -KW_EINVAL for our own id or a peer id longer than KW_HM_DHT_PEER_ID_MAX.
 */
int kw_hm_rt_add(struct kw_hm_rt *rt, const struct kw_hm_dhtid *id, const uint8_t *peer,
		 size_t peer_len, double now, struct kw_hm_dht_contact *to_ping);

/* RoutingTable.__delitem__: removes the node (main or replacement); a removed main node is
 * replaced by the most recently added replacement of its bucket. -KW_ENOENT if unknown. */
int kw_hm_rt_remove(struct kw_hm_rt *rt, const struct kw_hm_dhtid *id);

/* Peer of a node id (main or replacement); -KW_ENOENT if unknown. */
int kw_hm_rt_get_peer(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id,
		      struct kw_hm_dht_contact *out);
/* Node id last registered for a peer; -KW_ENOENT if unknown. */
int kw_hm_rt_get_id(const struct kw_hm_rt *rt, const uint8_t *peer, size_t peer_len,
		    struct kw_hm_dhtid *out);

/*
 * get_nearest_neighbors: up to k main (non-replacement) nodes nearest to q by XOR distance,
 * nearest first, never our own id, without `exclude` (may be NULL). Returns the count.
 */
size_t kw_hm_rt_nearest(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *q, size_t k,
			const struct kw_hm_dhtid *exclude, struct kw_hm_dht_contact *out);

/* Observers (tests, metrics). */
uint32_t kw_hm_rt_bucket_count(const struct kw_hm_rt *rt);
/* Bucket i: lower bound, depth, main and replacement counts. -KW_ENOENT past the end. */
int kw_hm_rt_bucket_info(const struct kw_hm_rt *rt, uint32_t i, struct kw_hm_dhtid *lower,
			 uint32_t *depth, uint32_t *n_main, uint32_t *n_repl);
/* Index of the bucket whose [lower, upper) holds id. */
uint32_t kw_hm_rt_bucket_index(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id);
bool kw_hm_rt_is_replacement(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id);

/*
 * Blacklist (hivemind/dht/node.py): a peer that failed to respond is skipped for
 * base_s * backoff^(failures before) seconds; a success forgets it. Bounded: when the table is
 * full, the entry whose ban ends first is reused.
 */
struct kw_hm_bl_entry;
struct kw_hm_blacklist {
	double base_s, backoff;
	uint32_t cap;
	struct kw_hm_bl_entry *e;
};
/* Return: 0; -KW_EINVAL (cap 0, backoff < 1, base_s < 0); -KW_ENOMEM. */
int kw_hm_bl_init(struct kw_hm_blacklist *bl, uint32_t cap, double base_s, double backoff,
		  struct kw_arena *arena);
void kw_hm_bl_failure(struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len, double now);
void kw_hm_bl_success(struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len);
bool kw_hm_bl_banned(const struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len,
		     double now);

/* ---- 3. storage ------------------------------------------------------------------------ */

struct kw_hm_store_cell;

struct kw_hm_store_stats {
	uint64_t stored, rejected_older, rejected_expired, rejected_bad;
	uint64_t full;            /* main tier: refused, no free cell */
	uint64_t evicted;         /* cache tier: earliest-expiring entry dropped for room */
	uint64_t expired;         /* dropped at expiry */
	uint64_t too_large;       /* subkey + value larger than a cell */
	uint64_t dict_full;       /* subkey refused: dictionary at dict_max */
};

/*
 * One storage tier (DHTLocalStorage). `evict`: the cache tier (hivemind's cache has a maxsize
 * and drops the earliest-expiring entry); the main tier refuses a store when its cells are
 * used up (hivemind's is unbounded).
 */
struct kw_hm_store {
	struct kw_hm_store_cell *cells;
	uint8_t *data;            /* n_cells * cell_bytes */
	uint32_t n_cells, cell_bytes, dict_max, used;
	bool evict;
	uint64_t seq;
	struct kw_hm_store_stats stats;
};

/* Return: 0; -KW_EINVAL for a zero size; -KW_ENOMEM when the arena is too small. */
int kw_hm_store_init(struct kw_hm_store *s, uint32_t n_cells, uint32_t cell_bytes,
		     uint32_t dict_max, bool evict, struct kw_arena *arena);

/*
 * TimedStorage.store of a plain value. Return: 1 stored; 0 refused as hivemind refuses it
 * (exp < now, or an existing record whose expiration is not strictly earlier; a dictionary
 * is replaced by a later plain value); -KW_EINVAL for a NaN expiration (hivemind would lock
 * the key for ever); -KW_EMSGSIZE when the value does not fit a cell; -KW_ENOSPC when the
 * main tier is full.
 */
int kw_hm_store_put(struct kw_hm_store *s, const struct kw_hm_dhtid *key, const uint8_t *val,
		    size_t len, double exp, double now);

/*
 * DHTLocalStorage.store_subkey. `subkey` is the msgpack of the subkey (as on the wire; two
 * subkeys are the same when their bytes are). Return: 1 stored; 0 refused (an existing plain
 * value with a later or equal expiration, a subkey entry not strictly older, exp < now);
 * -KW_ELIMIT when the dictionary already holds dict_max subkeys; other errors as
 * kw_hm_store_put.
 */
int kw_hm_store_put_subkey(struct kw_hm_store *s, const struct kw_hm_dhtid *key,
			   const uint8_t *subkey, size_t sub_len, const uint8_t *val, size_t len,
			   double exp, double now);

/*
 * rpc_store with subkey IS_DICTIONARY: `dict` is a serialized DictionaryDHTValue (ext 0x50).
 * Entries already expired are skipped (hivemind's items() drops them); the others are stored
 * one by one with kw_hm_store_put_subkey until one is refused (hivemind's all() stops there).
 * Return: 1 all stored; 0 one refused; -KW_EBADMSG for a value that is not a well-formed
 * DictionaryDHTValue (*why says what); -KW_ELIMIT for a dictionary of more than dict_max
 * entries (refused before any is stored) or a refused subkey as kw_hm_store_put_subkey.
 */
int kw_hm_store_put_dict(struct kw_hm_store *s, const struct kw_hm_dhtid *key,
			 const uint8_t *dict, size_t len, double now, const char **why);

/* What kw_hm_store_get found. */
struct kw_hm_store_found {
	int type;                 /* enum kw_hm_dht_result_type */
	double expiration;        /* the record's (a dictionary's outer) expiration */
	const uint8_t *value;     /* REGULAR: the stored bytes (valid until the next store) */
	size_t len;
	uint32_t n_subkeys;       /* DICTIONARY: live entries */
};
/* Looks the key up after dropping what expired before `now`. Return: 0 (found->type may be
 * NOT_FOUND). */
int kw_hm_store_get(struct kw_hm_store *s, const struct kw_hm_dhtid *key, double now,
		    struct kw_hm_store_found *found);

/*
 * Writes a dictionary record as hivemind's DictionaryDHTValue.packb does: ext 0x50 around
 * [maxsize = +inf, latest_expiration_time, [[subkey, bin value, float64 exp], ...]], live
 * entries in insertion order. Return: bytes written; -KW_ENOENT when the key holds no
 * dictionary; -KW_ENOSPC.
 */
long kw_hm_store_pack_dict(struct kw_hm_store *s, const struct kw_hm_dhtid *key, double now,
			   uint8_t *buf, size_t cap);

/* One subkey entry of a dictionary record, by position among the live entries. */
int kw_hm_store_get_subkey(struct kw_hm_store *s, const struct kw_hm_dhtid *key, uint32_t i,
			   double now, const uint8_t **subkey, size_t *sub_len,
			   const uint8_t **val, size_t *len, double *exp);

/* Top-level records live at `now` (drops the expired first). */
uint32_t kw_hm_store_count(struct kw_hm_store *s, double now);
/* Forgets every record (a scratch tier reused by the client's get). */
void kw_hm_store_clear(struct kw_hm_store *s);
/* Key of the i-th live top-level record (cell order), after dropping the expired;
 * -KW_ENOENT past the end. For walking the storage (the newcomer push). */
int kw_hm_store_key_at(struct kw_hm_store *s, uint32_t i, double now, struct kw_hm_dhtid *key);

/* ---- 4. the DHTProtocol server ------------------------------------------------------- */

struct kw_hm;
struct kw_hm_dht;
struct kw_swarm;

/* DHT time source: UNIX seconds. NULL in the config takes the system's real-time clock. */
typedef double (*kw_hm_dht_clock_fn)(void *arg);

/*
 * Address lookup for a PeerID the DHT named but we have no connection or address for
 * (hivemind's FindResult carries bare PeerIDs; p2pd asks its peerstore or libp2p kad). The
 * hook adds what it finds with kw_hm_dht_add_addr and then calls done(ctx, err) exactly once,
 * from the loop (never from inside the hook). Return: 0 (done will run) or a negative code
 * (done will not run). The app wires it to kad FIND_NODE (app/hivemind.c).
 */
typedef void (*kw_hm_dht_resolved_fn)(void *ctx, int err);
typedef int (*kw_hm_dht_resolve_fn)(void *arg, const uint8_t *peer, size_t peer_len,
				    kw_hm_dht_resolved_fn done, void *ctx);

struct kw_hm_dht_config {
	struct kw_hm_dhtid node_id;       /* ours; kw_hm_dhtid_random() as hivemind does */
	struct kw_hm_rt_limits rt;        /* kw_hm_rt_limits_default */
	uint32_t store_cells, cache_cells, cell_bytes, dict_max, blacklist;
	uint32_t ping_timeout_ms;         /* the ping-back of a validate ping (hivemind: 3 s) */
	kw_hm_dht_clock_fn clock;
	void *clock_arg;
	/* the client (part 5); kw_hm_dht_config_default gives hivemind's DHTNode defaults */
	bool client_mode;                 /* no handlers, empty node_id: others never add us */
	uint32_t beam_size;               /* traverse_dht beam (hivemind: bucket_size, 20) */
	uint32_t num_workers;             /* rpc_find calls in flight per search (4) */
	uint32_t num_replicas;            /* nodes a store goes to (5) */
	uint32_t rpc_timeout_ms;          /* our calls' deadline (wait_timeout, 3 s) */
	/* how long a search waits for a peer we are not connected to (resolve, dial,
	 * handshake) before its call goes out: 3 s by default, as hivemind counts the connect
	 * inside wait_timeout (a handshake over a slow intercontinental link with one lost SYN
	 * takes over a second). Then the search goes on without it and the dial runs on alone
	 * to give the verdict on the peer. A stopped peer (its TCP accepts, it never answers
	 * the handshake) costs this, not the swarm's handshake timeout. `kwnode moe` sets 1 s:
	 * its search must deliver records of a few seconds' lifetime (a 1 s update period)
	 * alive. */
	uint32_t connect_timeout_ms;
	kw_hm_dht_resolve_fn resolve;     /* may be NULL: only connected / known peers */
	void *resolve_arg;
	/* pools and buffers (kw_hm_dht_config_default: Kconfig); a test or a small board sets
	 * them lower than the Kconfig maximum would allow */
	uint32_t buf_bytes;               /* request/response scratch: KW_NET_HIVEMIND_CALL_BUF_BYTES */
	uint32_t client_ops, client_rpcs, candidates, merge_cells, addr_book;
};
/* Fills *c from Kconfig and a random node id. Return: 0 or kw_rng_bytes' error. */
int kw_hm_dht_config_default(struct kw_hm_dht_config *c);

struct kw_hm_dht_stats {
	uint64_t pings, stores, finds;
	uint64_t bad_requests;            /* answered with an error text */
	uint64_t ping_backs, ping_backs_ok;
	uint64_t items_stored, items_refused;
	/* the client (part 5) */
	uint64_t ops_started, ops_refused;   /* refused: operation pool empty */
	uint64_t rpcs_out, rpcs_failed;      /* failed: no answer, unreachable, bad reply */
	/* requests our own limits refused (no dial slot, call slot or stream): the peer is not
	 * blacklisted for them, and a search asks it again */
	uint64_t rpcs_refused_locally;
	uint64_t rpcs_refused;               /* not started: request pool empty */
	uint64_t bad_replies;                /* answers that did not decode */
	uint64_t clock_skew;                 /* pings whose dht_time was off by more than 3 s */
	uint64_t newcomer_pushes;            /* records pushed to a newly met node */
	uint64_t unreachable;                /* peers with no connection and no address */
	/* requests whose search gave up on them at connect_timeout_ms, the peer still being
	 * resolved or dialed (a stopped peer: its TCP accepts, its handshake never ends); the
	 * dial's own failure later counts in rpcs_failed */
	uint64_t rpcs_deadline;
};

/*
 * Serves DHTProtocol.rpc_ping, rpc_store and rpc_find on hm (hivemind/dht/protocol.py):
 * records go to the main or cache tier by in_cache, finds answer from both tiers and the
 * routing table, every caller with a node_id is added to the routing table. The routing
 * table, both tiers, the blacklist and the handler scratch come from the swarm node's arena.
 * Start-up only. Return: 0 with *out; -KW_ENOMEM; -KW_EINVAL; kw_hm_register_unary's errors.
 */
int kw_hm_dht_create(struct kw_swarm *sw, struct kw_hm *hm, const struct kw_hm_dht_config *cfg,
		     struct kw_hm_dht **out);

/* Observers: our routing table, the two tiers, the blacklist, counters. */
struct kw_hm_rt *kw_hm_dht_rt(struct kw_hm_dht *d);
struct kw_hm_blacklist *kw_hm_dht_blacklist(struct kw_hm_dht *d);
struct kw_hm_store *kw_hm_dht_storage(struct kw_hm_dht *d, bool cache);
void kw_hm_dht_get_stats(const struct kw_hm_dht *d, struct kw_hm_dht_stats *st);

/* ---- 5. the DHT client ---------------------------------------------------------------- */
/*
 * Our own calls, as hivemind/dht/node.py (DHTNode) and traverse.py (traverse_dht) make them,
 * at 4bd43b7. Every operation returns at once and finishes in its callback exactly once, on
 * the loop (never from inside the starting call). Operations come from a pool of
 * CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_OPS, requests in flight (dials included) from a pool of
 * CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_RPCS; both are carved from the node's arena at create.
 * A peer is reached over an existing connection, else by dialing an address from the
 * address book (kw_hm_dht_add_addr), else through cfg.resolve. A peer that does not answer
 * is blacklisted (5 s, doubling) and removed from the routing table; a search goes on
 * without it. What hivemind does and we do not is listed in doc/net-hivemind.md.
 */

/* Adds an address (text multiaddr, /p2p/ suffix optional and dropped) for a peer. The book
 * holds cfg.addr_book peers with 2 addresses each; the least recently
 * added peer is forgotten first. Return: 0; -KW_EINVAL (not a multiaddr, or too long). */
int kw_hm_dht_add_addr(struct kw_hm_dht *d, const uint8_t *peer, size_t peer_len,
		       const char *maddr);

/* What a get found. `value` lives until the callback returns. */
struct kw_hm_dht_value {
	int type;              /* enum kw_hm_dht_result_type: NOT_FOUND, REGULAR or DICTIONARY */
	double expiration;     /* the record's (a dictionary's outer) expiration */
	const uint8_t *value;  /* REGULAR: the stored bytes (msgpack); DICTIONARY: the merged
				  DictionaryDHTValue, ext 0x50 as kw_hm_store_pack_dict writes it */
	size_t len;
	uint32_t n_subkeys;    /* DICTIONARY: merged live entries */
	uint32_t visited;      /* nodes that answered */
};
typedef void (*kw_hm_dht_get_cb)(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v,
				 void *user);

/*
 * DHTNode.get(key, latest): beam search from the nearest known nodes (traverse_dht with
 * beam_size, num_workers, a visited set); our own storage and cache count as candidates. Two
 * dictionaries merge subkey by subkey (the strictly newer entry wins), otherwise the later
 * expiration wins. Without `latest` the first live value ends the search; with it every
 * node of the beam is asked. A value found is kept in our cache tier (cache_locally).
 * Callback err: 0 (v->type may be NOT_FOUND); -KW_ENOTCONN when no node answered and we hold
 * nothing. Return: 0; -KW_ELIMIT (operation pool empty).
 */
int kw_hm_dht_get(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, bool latest,
		  kw_hm_dht_get_cb cb, void *user);

#define KW_HM_DHT_REPLICAS_MAX 16
/* One store target: the node, whether it answered and what it said. `self` is our own
 * storage (a non-client node counts itself as a candidate, as hivemind does). */
struct kw_hm_dht_replica {
	struct kw_hm_dht_contact node;
	bool self, answered, store_ok;
};
struct kw_hm_dht_store_result {
	uint32_t n;            /* replicas tried */
	uint32_t n_ok;         /* answered with store_ok = true */
	struct kw_hm_dht_replica r[KW_HM_DHT_REPLICAS_MAX];
};
typedef void (*kw_hm_dht_store_cb)(struct kw_hm_dht *d, int err,
				   const struct kw_hm_dht_store_result *res, void *user);

/*
 * DHTNode.store(key, value, expiration, subkey): beam search for the num_replicas nearest
 * nodes (ourselves included unless in client mode), then rpc_store to them nearest first, the
 * next candidate replacing one that does not answer, until num_replicas answered. `subkey`
 * is the msgpack of the subkey, NULL for a plain value; `value` is msgpack bytes (stored and
 * returned verbatim). Both are copied. Callback err: 0 (res->n_ok may be 0: every node
 * refused); -KW_ENOTCONN when no node answered. Return: 0; -KW_ELIMIT (pool empty);
 * -KW_EMSGSIZE (subkey + value larger than a storage cell); -KW_EINVAL.
 */
int kw_hm_dht_store(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, const uint8_t *subkey,
		    size_t sub_len, const uint8_t *value, size_t len, double expiration,
		    kw_hm_dht_store_cb cb, void *user);

/* What a ping learnt. */
struct kw_hm_dht_pong {
	struct kw_hm_dht_contact node;   /* the peer (id empty for a client-mode peer) */
	bool client;                     /* it sent no node_id */
	bool available;                  /* validate: it reached us back with our id */
	double dht_time;                 /* its clock (0: not sent) */
	double skew;                     /* how far outside [sent - 3 s, received + 3 s], or 0 */
};
typedef void (*kw_hm_dht_ping_cb)(struct kw_hm_dht *d, int err,
				  const struct kw_hm_dht_pong *p, void *user);

/*
 * DHTProtocol.call_ping to the peer at `maddr` (text, with /p2p/<id>), dialing it if we are
 * not connected. `validate` asks it to ping us back (bootstrap does). A responder with a
 * node_id joins the routing table; a dht_time more than 3 s (MAX_DHT_TIME_DISCREPANCY_SECONDS)
 * outside our send..receive window is logged as a warning and counted. Callback err: 0;
 * -KW_ETIMEDOUT and the other kw_hm_call / dial errors; -KW_EBADMSG for a bad answer.
 * Return: 0; -KW_EINVAL (no /p2p/); -KW_ELIMIT.
 */
int kw_hm_dht_ping(struct kw_hm_dht *d, const char *maddr, bool validate, kw_hm_dht_ping_cb cb,
		   void *user);

/*
 * DHTNode bootstrap for one initial peer: a validate ping, then a search for our own node
 * id to fill the routing table (find_nearest_nodes([node_id])). cb may be NULL. Return: as
 * kw_hm_dht_ping.
 */
int kw_hm_dht_bootstrap(struct kw_hm_dht *d, const char *maddr, kw_hm_dht_ping_cb cb,
			void *user);

/* Our node id (empty in client mode: what we send as NodeInfo). */
const struct kw_hm_dhtid *kw_hm_dht_node_id(const struct kw_hm_dht *d);
bool kw_hm_dht_client_mode(const struct kw_hm_dht *d);
/* Operations in progress (tests, shutdown). */
uint32_t kw_hm_dht_ops_busy(const struct kw_hm_dht *d);
/* Operations that could start now (get_many / store_many take one per key). */
uint32_t kw_hm_dht_ops_free(const struct kw_hm_dht *d);

/*
 * DHTNode.get_many / store_many: one search per key, run together so that a request to a
 * peer several of them want next carries all their keys (up to 16 per rpc_find, as hivemind's
 * traverse_dht batches queries per peer); each search otherwise behaves as kw_hm_dht_get /
 * kw_hm_dht_store and ends in its own callback, with users[i] (users may be NULL). The
 * replicas of a store still get one rpc_store per key. Takes n operations at once: all start
 * or none. Return: 0; -KW_ELIMIT (fewer than n free: kw_hm_dht_ops_free); -KW_EINVAL /
 * -KW_EMSGSIZE as the single calls (store_many checks every item first).
 */
int kw_hm_dht_get_many(struct kw_hm_dht *d, const struct kw_hm_dhtid *keys, uint32_t n,
		       bool latest, kw_hm_dht_get_cb cb, void *const *users);
struct kw_hm_dht_store_item {
	struct kw_hm_dhtid key;
	const uint8_t *subkey;       /* msgpack, NULL for a plain value */
	size_t sub_len;
	const uint8_t *value;
	size_t len;
	double expiration;
};
int kw_hm_dht_store_many(struct kw_hm_dht *d, const struct kw_hm_dht_store_item *items,
			 uint32_t n, kw_hm_dht_store_cb cb, void *const *users);

#endif /* KW_NET_HIVEMIND_DHT_H */
