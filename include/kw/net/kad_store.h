/*
 * Kademlia record and provider store (libp2p/specs kad-dht/README.md "Value storage and
 * retrieval", "Content provider advertisement and discovery"), with the per-namespace
 * validators the store and lookups share.
 *
 * Namespaces: "/pk/<multihash>" (the value is a libp2p PublicKey protobuf whose peer ID
 * equals the multihash in the key) and "/kwaai/..." (this network's signed envelope,
 * doc/net-kad.md: publisher's public key, sequence number, expiry, value, signature; the
 * valid record with the highest sequence number wins). Any other namespace is refused.
 *
 * Owns: record and provider slots carved once from the arena given at init (sizes from
 * struct kw_kad_store_cfg, defaults from Kconfig). No heap, no timers, no I/O: callers pass
 * the time and drive expiry with kw_kad_store_expire().
 */
#ifndef KW_NET_KAD_STORE_H
#define KW_NET_KAD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/net/key.h>

struct kw_kad_store;

struct kw_kad_store_cfg {
	unsigned max_records;          /* record slots */
	unsigned max_record_bytes;     /* key + value of one record */
	size_t max_total_bytes;        /* keys + values of all records */
	unsigned max_records_per_peer; /* records one remote peer may have stored here */
	unsigned max_providers;        /* provider slots (one per key x provider) */
	unsigned max_providers_per_key;
	unsigned max_providers_per_peer;
	uint64_t record_ttl_ms;        /* 0 = 36 h (go-libp2p-kad-dht MaxRecordAge) */
	uint64_t provider_ttl_ms;      /* 0 = 48 h (libp2p spec provider record validity) */
};

/* Kconfig defaults for every field (record_ttl_ms and provider_ttl_ms set to 36 h and 48 h). */
void kw_kad_store_cfg_default(struct kw_kad_store_cfg *cfg);

/* Arena bytes kw_kad_store_init takes for cfg (alignment padding included). */
size_t kw_kad_store_arena_bytes(const struct kw_kad_store_cfg *cfg);

/*
 * Carves the store from `arena`; *out points into the arena and lives as long as it. A zero
 * field of cfg takes its Kconfig default (so a zeroed struct kw_kad_cfg.store works), in
 * kw_kad_store_arena_bytes too.
 * Return: 0; -KW_EINVAL (more than 65535 record or provider slots, max_record_bytes above
 * max_total_bytes); -KW_ENOMEM (arena too small).
 */
int kw_kad_store_init(struct kw_arena *arena, const struct kw_kad_store_cfg *cfg,
		      struct kw_kad_store **out);

/*
 * Validates a record for `key` (namespace validator, see above) at now_unix_ms (wall clock:
 * /kwaai/ expiry is absolute). err (may be NULL) receives a one-line reason naming what is
 * wrong. Return: 0; -KW_ENOPROTO (namespace not served); -KW_EBADMSG (malformed value);
 * -KW_ESIG (signature or key does not match); -KW_ETIMEDOUT (expired); -KW_ELIMIT (too big).
 */
int kw_kad_validate(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		    uint64_t now_unix_ms, char *err, size_t errcap);

/*
 * Of n valid values for the same key, the index of the one to keep (/kwaai/: highest
 * sequence number, ties broken by the lexicographically larger envelope; /pk/: 0). Every
 * value is validated again except for its expiry (select has no clock).
 * Return: the index, or -KW_EINVAL (n == 0 or a value does not validate).
 */
int kw_kad_select(const uint8_t *key, size_t klen, const uint8_t *const *vals,
		  const size_t *vlens, size_t n);

/*
 * Validates and stores a record sent by `from` (NULL: put by this node, not counted against
 * a peer). A record that loses kw_kad_select against the stored one is not stored; the same
 * record again refreshes its lifetime. now_ms is the caller's monotonic clock (the one given
 * to get/expire), now_unix_ms the wall clock the /kwaai/ expiry is checked against.
 * Lifetime: a remote record lives record_ttl_ms from its last put, an own record until it is
 * replaced; either ends earlier when its /kwaai/ envelope expires. Before refusing for lack
 * of room the store drops expired entries once and tries again.
 * Return: 0 (stored or refreshed); -KW_EALREADY (the stored record is newer: kept);
 * kw_kad_validate's errors; -KW_EBADMSG (empty key); -KW_ELIMIT (record too big, peer or
 * total cap reached); -KW_ENOBUFS (no free slot). err names the reason. Counted in stats.
 */
int kw_kad_store_put(struct kw_kad_store *st, const uint8_t *key, size_t klen,
		     const uint8_t *val, size_t vlen, const struct kw_peer_id *from,
		     uint64_t now_ms, uint64_t now_unix_ms, char *err, size_t errcap);

/*
 * The stored, unexpired record for key. *val points into the store and stays valid until
 * the next kw_kad_store_put, kw_kad_store_add_provider or kw_kad_store_expire (any of them
 * may move record bytes).
 * Return: 0; -KW_ENOENT.
 */
int kw_kad_store_get(const struct kw_kad_store *st, const uint8_t *key, size_t klen,
		     uint64_t now_ms, const uint8_t **val, size_t *vlen);

struct kw_kad_provider {
	struct kw_peer_id id;
	uint8_t naddrs;
	uint8_t addr_len[2];
	uint8_t addrs[2][64];   /* binary multiaddrs, as the provider announced them */
};

/*
 * Adds or refreshes provider `p` for multihash key `mh` at now_ms (expires after
 * provider_ttl_ms). from: the peer that sent ADD_PROVIDER (must equal p->id when remote,
 * libp2p spec), NULL for ourselves (never expires, not held to the per-key and per-peer
 * caps; republished through kw_kad_store_foreach_own). Return: 0; -KW_EPERM (from !=
 * provider); -KW_EBADMSG (key is not a multihash (kw_multihash_check), p has a bad peer ID,
 * more than 2 addresses or an address of length 0 or > 64); -KW_ELIMIT (per-key or per-peer
 * cap); -KW_ENOBUFS (no slot). err names the reason.
 */
int kw_kad_store_add_provider(struct kw_kad_store *st, const uint8_t *mh, size_t mhlen,
			      const struct kw_kad_provider *p, const struct kw_peer_id *from,
			      uint64_t now_ms, char *err, size_t errcap);

/* Copies up to cap unexpired providers of mh into out[]; returns how many (0..cap). */
size_t kw_kad_store_get_providers(const struct kw_kad_store *st, const uint8_t *mh,
				  size_t mhlen, uint64_t now_ms, struct kw_kad_provider *out,
				  size_t cap);

/* Drops expired records and providers. Returns how many entries were dropped. */
size_t kw_kad_store_expire(struct kw_kad_store *st, uint64_t now_ms);

/*
 * Calls fn for every record this node put itself (from == NULL) and every key this node
 * provides, so the owner can republish them (records every 1 h, providers every 22 h as
 * the spec sets). is_provider tells which.
 */
void kw_kad_store_foreach_own(const struct kw_kad_store *st,
			      void (*fn)(void *arg, bool is_provider, const uint8_t *key,
					 size_t klen, const uint8_t *val, size_t vlen),
			      void *arg);

struct kw_kad_store_stats {
	uint32_t records, providers;          /* current */
	size_t bytes;                         /* current keys + values */
	uint64_t puts, refused_invalid, refused_older, refused_limit, refused_pool;
	uint64_t provider_adds, provider_refused;
	uint64_t expired;
};
void kw_kad_store_get_stats(const struct kw_kad_store *st, struct kw_kad_store_stats *out);

/*
 * Builds a signed /kwaai/ record value: envelope for (key, value) with sequence `seq` and
 * absolute expiry `expiry_unix_ms`, signed with `priv` (wire format and signed bytes in
 * doc/net-kad.md). Return: bytes written; -KW_ENOSPC; -KW_EINVAL (key not /kwaai/ or longer
 * than 512 bytes, key not usable for signing); -KW_EPERM (the key is bound to another peer:
 * "/kwaai/<peer-id>/...").
 */
struct kw_privkey;
long kw_kad_kwaai_seal(const struct kw_privkey *priv, const uint8_t *key, size_t klen,
		       const uint8_t *value, size_t vlen, uint64_t seq, uint64_t expiry_unix_ms,
		       uint8_t *out, size_t cap);
/*
 * Opens a /kwaai/ record value already validated: points *value into env. seq may be NULL.
 * Checks the envelope's shape only, not the signature. Return: 0; -KW_EBADMSG.
 */
int kw_kad_kwaai_open(const uint8_t *env, size_t envlen, const uint8_t **value, size_t *vlen,
		      uint64_t *seq);

#endif /* KW_NET_KAD_STORE_H */
