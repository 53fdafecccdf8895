/*
 * Kademlia record and provider store (include/kw/net/kad_store.h; libp2p/specs
 * kad-dht/README.md "Value storage and retrieval", "Content provider advertisement and
 * discovery"; go-libp2p-kad-dht v0.25 records.go, providers/providers_manager.go).
 *
 * Records: a slot table plus one byte area of max_total_bytes where keys and values sit
 * back to back. Removing a record slides the bytes after it down, so the area never
 * fragments and max_total_bytes is exactly the memory the data takes; a put or expiry costs
 * one memmove of at most the area, cheap next to the signature check every put already pays.
 * Providers: fixed slots, one per (multihash, provider). Lookups are linear scans filtered by
 * a 32-bit key hash: the tables hold hundreds to a few thousand entries.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/net/cid.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>

#include "record.h"

#define RECORD_TTL_DEFAULT_MS   (36ull * 3600 * 1000)   /* go-libp2p-kad-dht MaxRecordAge */
#define PROVIDER_TTL_DEFAULT_MS (48ull * 3600 * 1000)   /* libp2p spec: providers valid 48 h */
#define NEVER UINT64_MAX

struct rec {
	size_t off;              /* key at data[off], value right after it */
	uint32_t klen, vlen;
	uint32_t hash;
	uint8_t used;
	uint8_t own;             /* put by this node: no TTL, republished by the owner */
	struct kw_peer_id from;  /* the peer that stored it (len 0 when own) */
	uint64_t expires_ms;     /* monotonic deadline; NEVER for an own /pk/ record */
};

struct prov {
	uint8_t used;
	uint8_t own;
	uint8_t mhlen;
	uint8_t mh[KW_MULTIHASH_MAX];
	uint32_t hash;
	uint64_t expires_ms;
	struct kw_kad_provider p;
};

struct kw_kad_store {
	struct kw_kad_store_cfg cfg;
	struct rec *recs;
	struct prov *provs;
	uint8_t *data;
	size_t data_used;
	struct kw_kad_store_stats st;
};

void kw_kad_store_cfg_default(struct kw_kad_store_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_records = CONFIG_KW_NET_KAD_STORE_RECORDS;
	cfg->max_record_bytes = CONFIG_KW_NET_KAD_STORE_RECORD_BYTES;
	cfg->max_total_bytes = CONFIG_KW_NET_KAD_STORE_TOTAL_BYTES;
	cfg->max_records_per_peer = CONFIG_KW_NET_KAD_STORE_RECORDS_PER_PEER;
	cfg->max_providers = CONFIG_KW_NET_KAD_STORE_PROVIDERS;
	cfg->max_providers_per_key = CONFIG_KW_NET_KAD_STORE_PROVIDERS_PER_KEY;
	cfg->max_providers_per_peer = CONFIG_KW_NET_KAD_STORE_PROVIDERS_PER_PEER;
	cfg->record_ttl_ms = RECORD_TTL_DEFAULT_MS;
	cfg->provider_ttl_ms = PROVIDER_TTL_DEFAULT_MS;
}

/* cfg with every zero field replaced by its default (kw_kad_cfg leaves the store zeroed). */
static void effective(const struct kw_kad_store_cfg *in, struct kw_kad_store_cfg *c)
{
	struct kw_kad_store_cfg d;

	kw_kad_store_cfg_default(&d);
	*c = *in;
#define DEF(f) do { if (!c->f) c->f = d.f; } while (0)
	DEF(max_records);
	DEF(max_record_bytes);
	DEF(max_total_bytes);
	DEF(max_records_per_peer);
	DEF(max_providers);
	DEF(max_providers_per_key);
	DEF(max_providers_per_peer);
	DEF(record_ttl_ms);
	DEF(provider_ttl_ms);
#undef DEF
}

#define ALIGN 16

size_t kw_kad_store_arena_bytes(const struct kw_kad_store_cfg *cfg)
{
	struct kw_kad_store_cfg c;

	effective(cfg, &c);
	return sizeof(struct kw_kad_store) + (size_t)c.max_records * sizeof(struct rec) +
	       (size_t)c.max_providers * sizeof(struct prov) + c.max_total_bytes + 4 * ALIGN;
}

int kw_kad_store_init(struct kw_arena *arena, const struct kw_kad_store_cfg *cfg,
		      struct kw_kad_store **out)
{
	struct kw_kad_store_cfg c;
	struct kw_kad_store *st;

	effective(cfg, &c);
	/* Slot indexes and counts stay below 2^16 so stats and loops never overflow. */
	if (c.max_records > 65535 || c.max_providers > 65535 ||
	    c.max_record_bytes > c.max_total_bytes || c.max_total_bytes > (size_t)UINT32_MAX)
		return -KW_EINVAL;
	st = kw_arena_alloc(arena, sizeof(*st), ALIGN);
	if (!st)
		return -KW_ENOMEM;
	st->recs = kw_arena_alloc(arena, (size_t)c.max_records * sizeof(struct rec), ALIGN);
	st->provs = kw_arena_alloc(arena, (size_t)c.max_providers * sizeof(struct prov), ALIGN);
	st->data = kw_arena_alloc(arena, c.max_total_bytes, ALIGN);
	if (!st->recs || !st->provs || !st->data)
		return -KW_ENOMEM;
	st->cfg = c;
	*out = st;
	return 0;
}

/* FNV-1a: cheap filter before memcmp in the linear scans. */
static uint32_t hash32(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static struct rec *rec_find(const struct kw_kad_store *st, const uint8_t *key, size_t klen,
			    uint32_t h)
{
	unsigned i;

	for (i = 0; i < st->cfg.max_records; i++) {
		struct rec *r = &st->recs[i];

		if (r->used && r->hash == h && r->klen == klen &&
		    !memcmp(st->data + r->off, key, klen))
			return r;
	}
	return NULL;
}

static void rec_drop(struct kw_kad_store *st, struct rec *r)
{
	size_t off = r->off, len = (size_t)r->klen + r->vlen;
	unsigned i;

	memmove(st->data + off, st->data + off + len, st->data_used - off - len);
	st->data_used -= len;
	for (i = 0; i < st->cfg.max_records; i++)
		if (st->recs[i].used && st->recs[i].off > off)
			st->recs[i].off -= len;
	memset(r, 0, sizeof(*r));
	st->st.records--;
}

static unsigned recs_of(const struct kw_kad_store *st, const struct kw_peer_id *id)
{
	unsigned i, n = 0;

	for (i = 0; i < st->cfg.max_records; i++)
		if (st->recs[i].used && !st->recs[i].own &&
		    kw_peer_id_equal(&st->recs[i].from, id))
			n++;
	return n;
}

/*
 * Whether (klen + vlen) bytes from `from` fit when `old` (may be NULL) is replaced. Return:
 * 0 with *slot set; -KW_ELIMIT or -KW_ENOBUFS with err set.
 */
static int room(struct kw_kad_store *st, struct rec *old, size_t need,
		const struct kw_peer_id *from, struct rec **slot, char *err, size_t errcap)
{
	size_t freed = old ? (size_t)old->klen + old->vlen : 0;
	unsigned i, n;

	if (from) {
		n = recs_of(st, from);
		if (old && !old->own && kw_peer_id_equal(&old->from, from))
			n--;
		if (n >= st->cfg.max_records_per_peer)
			return kw_errf(-KW_ELIMIT, err, errcap,
				       "peer already stores %u records here (limit %u)", n,
				       st->cfg.max_records_per_peer);
	}
	if (st->data_used - freed + need > st->cfg.max_total_bytes)
		return kw_errf(-KW_ELIMIT, err, errcap,
			       "store full: %zu of %zu record bytes used, %zu more needed",
			       st->data_used, st->cfg.max_total_bytes, need);
	if (old) {
		*slot = old;
		return 0;
	}
	for (i = 0; i < st->cfg.max_records; i++)
		if (!st->recs[i].used) {
			*slot = &st->recs[i];
			return 0;
		}
	return kw_errf(-KW_ENOBUFS, err, errcap, "all %u record slots in use",
		       st->cfg.max_records);
}

int kw_kad_store_put(struct kw_kad_store *st, const uint8_t *key, size_t klen,
		     const uint8_t *val, size_t vlen, const struct kw_peer_id *from,
		     uint64_t now_ms, uint64_t now_unix_ms, char *err, size_t errcap)
{
	uint32_t h = hash32(key, klen);
	uint64_t expiry_unix, expires;
	struct rec *old, *slot = NULL;
	size_t need = klen + vlen;
	int ret;

	if (klen == 0 || need > st->cfg.max_record_bytes) {
		st->st.refused_limit += klen != 0;
		st->st.refused_invalid += klen == 0;
		if (klen == 0)
			return kw_errf(-KW_EBADMSG, err, errcap, "empty record key");
		return kw_errf(-KW_ELIMIT, err, errcap,
			       "record of %zu bytes (key + value), more than %u", need,
			       st->cfg.max_record_bytes);
	}
	ret = kw_kad_validate_ex(key, klen, val, vlen, now_unix_ms, true, &expiry_unix, err,
				 errcap);
	if (ret < 0) {
		if (ret == -KW_ELIMIT)
			st->st.refused_limit++;
		else
			st->st.refused_invalid++;
		return ret;
	}
	old = rec_find(st, key, klen, h);
	if (old) {
		int c = kw_kad_record_cmp(key, klen, val, vlen, st->data + old->off + old->klen,
					  old->vlen);

		if (c < 0) {
			st->st.refused_older++;
			return kw_errf(-KW_EALREADY, err, errcap,
				       "a newer record for this key is stored");
		}
		if (c == 0) {
			/* The same record again: a republish refreshes its lifetime. */
			if (!old->own) {
				if (!from) {
					old->own = 1;
					old->from.len = 0;
				} else {
					old->from = *from;
				}
			}
			goto set_expiry;
		}
	}
	ret = room(st, old, need, from, &slot, err, errcap);
	if (ret < 0 && kw_kad_store_expire(st, now_ms) > 0) {
		old = rec_find(st, key, klen, h);   /* expiry may have moved or dropped it */
		ret = room(st, old, need, from, &slot, err, errcap);
	}
	if (ret < 0) {
		if (ret == -KW_ENOBUFS)
			st->st.refused_pool++;
		else
			st->st.refused_limit++;
		return ret;
	}
	if (old)
		rec_drop(st, old);   /* zeroes the slot, which is `slot` */
	slot->off = st->data_used;
	slot->klen = (uint32_t)klen;
	slot->vlen = (uint32_t)vlen;
	slot->hash = h;
	slot->used = 1;
	slot->own = !from;
	if (from)
		slot->from = *from;
	memcpy(st->data + st->data_used, key, klen);
	if (vlen)
		memcpy(st->data + st->data_used + klen, val, vlen);
	st->data_used += need;
	st->st.records++;
	old = slot;
set_expiry:
	/* An absolute envelope expiry becomes a deadline on the caller's monotonic clock. */
	expires = old->own ? NEVER : now_ms + st->cfg.record_ttl_ms;
	if (expiry_unix && expiry_unix - now_unix_ms < expires - now_ms)
		expires = now_ms + (expiry_unix - now_unix_ms);
	old->expires_ms = expires;
	st->st.puts++;
	return 0;
}

int kw_kad_store_get(const struct kw_kad_store *st, const uint8_t *key, size_t klen,
		     uint64_t now_ms, const uint8_t **val, size_t *vlen)
{
	const struct rec *r = rec_find(st, key, klen, hash32(key, klen));

	if (!r || r->expires_ms <= now_ms)
		return -KW_ENOENT;
	*val = st->data + r->off + r->klen;
	*vlen = r->vlen;
	return 0;
}

/* ---- providers --------------------------------------------------------------------------- */

static bool prov_key_is(const struct prov *p, const uint8_t *mh, size_t mhlen, uint32_t h)
{
	return p->used && p->hash == h && p->mhlen == mhlen && !memcmp(p->mh, mh, mhlen);
}

int kw_kad_store_add_provider(struct kw_kad_store *st, const uint8_t *mh, size_t mhlen,
			      const struct kw_kad_provider *p, const struct kw_peer_id *from,
			      uint64_t now_ms, char *err, size_t errcap)
{
	struct kw_peer_id chk;
	uint32_t h;
	struct prov *same = NULL, *free_slot = NULL;
	unsigned i, per_key = 0, per_peer = 0, a;
	int ret;
	bool retried = false;

	char why[KW_CID_ERR_MAX];

	if (kw_multihash_check(mh, mhlen, why, sizeof(why)) < 0) {
		st->st.provider_refused++;
		return kw_errf(-KW_EBADMSG, err, errcap, "ADD_PROVIDER key: %s", why);
	}
	if (kw_peer_id_from_bytes(p->id.bytes, p->id.len, &chk) < 0 || p->naddrs > 2) {
		st->st.provider_refused++;
		return kw_errf(-KW_EBADMSG, err, errcap,
			       "provider: bad peer ID or more than 2 addresses");
	}
	for (a = 0; a < p->naddrs; a++)
		if (p->addr_len[a] == 0 || p->addr_len[a] > sizeof(p->addrs[a])) {
			st->st.provider_refused++;
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "provider: address %u has length %u", a, p->addr_len[a]);
		}
	if (from && !kw_peer_id_equal(from, &p->id)) {
		char x[KW_PEER_ID_SHORT_MAX], y[KW_PEER_ID_SHORT_MAX];

		st->st.provider_refused++;
		kw_peer_id_short(from, x, sizeof(x));
		kw_peer_id_short(&p->id, y, sizeof(y));
		return kw_errf(-KW_EPERM, err, errcap,
			       "ADD_PROVIDER from %s names provider %s: a peer may only announce "
			       "itself", x, y);
	}
	h = hash32(mh, mhlen);
again:
	for (i = 0; i < st->cfg.max_providers; i++) {
		struct prov *q = &st->provs[i];

		if (!q->used) {
			if (!free_slot)
				free_slot = q;
			continue;
		}
		if (prov_key_is(q, mh, mhlen, h)) {
			per_key++;
			if (kw_peer_id_equal(&q->p.id, &p->id))
				same = q;
		}
		if (!q->own && kw_peer_id_equal(&q->p.id, &p->id))
			per_peer++;
	}
	if (!same && from) {
		/* Our own announcements always fit the per-key and per-peer caps. */
		ret = 0;
		if (per_key >= st->cfg.max_providers_per_key)
			ret = kw_errf(-KW_ELIMIT, err, errcap,
				      "key already has %u providers (limit %u)", per_key,
				      st->cfg.max_providers_per_key);
		else if (per_peer >= st->cfg.max_providers_per_peer)
			ret = kw_errf(-KW_ELIMIT, err, errcap,
				      "peer already provides %u keys here (limit %u)", per_peer,
				      st->cfg.max_providers_per_peer);
		if (ret < 0) {
			if (!retried && kw_kad_store_expire(st, now_ms) > 0) {
				retried = true;
				per_key = per_peer = 0;
				free_slot = NULL;
				goto again;
			}
			st->st.provider_refused++;
			return ret;
		}
	}
	if (!same) {
		if (!free_slot) {
			if (!retried && kw_kad_store_expire(st, now_ms) > 0) {
				retried = true;
				per_key = per_peer = 0;
				goto again;
			}
			st->st.provider_refused++;
			return kw_errf(-KW_ENOBUFS, err, errcap, "all %u provider slots in use",
				       st->cfg.max_providers);
		}
		same = free_slot;
		same->used = 1;
		same->hash = h;
		same->mhlen = (uint8_t)mhlen;
		memcpy(same->mh, mh, mhlen);
		st->st.providers++;
	}
	same->p = *p;
	if (!from)
		same->own = 1;
	same->expires_ms = same->own ? NEVER : now_ms + st->cfg.provider_ttl_ms;
	st->st.provider_adds++;
	return 0;
}

size_t kw_kad_store_get_providers(const struct kw_kad_store *st, const uint8_t *mh,
				  size_t mhlen, uint64_t now_ms, struct kw_kad_provider *out,
				  size_t cap)
{
	uint32_t h = hash32(mh, mhlen);
	size_t n = 0;
	unsigned i;

	for (i = 0; i < st->cfg.max_providers && n < cap; i++) {
		const struct prov *q = &st->provs[i];

		if (prov_key_is(q, mh, mhlen, h) && q->expires_ms > now_ms)
			out[n++] = q->p;
	}
	return n;
}

size_t kw_kad_store_expire(struct kw_kad_store *st, uint64_t now_ms)
{
	size_t n = 0;
	unsigned i;

	for (i = 0; i < st->cfg.max_records; i++)
		if (st->recs[i].used && st->recs[i].expires_ms <= now_ms) {
			rec_drop(st, &st->recs[i]);
			n++;
		}
	for (i = 0; i < st->cfg.max_providers; i++)
		if (st->provs[i].used && st->provs[i].expires_ms <= now_ms) {
			memset(&st->provs[i], 0, sizeof(st->provs[i]));
			st->st.providers--;
			n++;
		}
	st->st.expired += n;
	return n;
}

void kw_kad_store_foreach_own(const struct kw_kad_store *st,
			      void (*fn)(void *arg, bool is_provider, const uint8_t *key,
					 size_t klen, const uint8_t *val, size_t vlen),
			      void *arg)
{
	unsigned i;

	for (i = 0; i < st->cfg.max_records; i++) {
		const struct rec *r = &st->recs[i];

		if (r->used && r->own)
			fn(arg, false, st->data + r->off, r->klen, st->data + r->off + r->klen,
			   r->vlen);
	}
	for (i = 0; i < st->cfg.max_providers; i++) {
		const struct prov *q = &st->provs[i];

		if (q->used && q->own)
			fn(arg, true, q->mh, q->mhlen, NULL, 0);
	}
}

void kw_kad_store_get_stats(const struct kw_kad_store *st, struct kw_kad_store_stats *out)
{
	*out = st->st;
	out->bytes = st->data_used;
}
