/*
 * net/kad/store.c: records (validate, newest wins, per-peer / total / per-record caps, slot
 * pool, TTL and envelope expiry on the caller's clock, byte-area compaction, own records)
 * and providers (ADD_PROVIDER by the provider only, per-key / per-peer caps, 48 h expiry,
 * own announcements), init sizes and stats. Time is passed in, never read.
 */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>

#define UNIX0 1764633600000ull        /* wall clock at monotonic 0 */
#define HOUR  3600000ull
#define FAR   (UNIX0 + 1000 * HOUR)   /* envelope expiry beyond every TTL here */

static struct kw_privkey keys[4];
static struct kw_peer_id ids[4];
static uint8_t arena_mem[1 << 20];
static struct kw_arena arena;
static struct kw_kad_store *st;
static struct kw_kad_store_cfg cfg;
static uint8_t env[4096];
static char err[256];

static int setup_keys(void **state)
{
	for (int i = 0; i < 4; i++) {
		assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &keys[i]), 0);
		assert_int_equal(kw_peer_id_from_pubkey(&keys[i].pub, &ids[i]), 0);
	}
	return 0;
}

/* A small store: 8 records of up to 512 bytes, 2048 bytes in all, 3 per peer. */
static int setup(void **state)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_records = 8;
	cfg.max_record_bytes = 512;
	cfg.max_total_bytes = 2048;
	cfg.max_records_per_peer = 3;
	cfg.max_providers = 8;
	cfg.max_providers_per_key = 3;
	cfg.max_providers_per_peer = 4;
	cfg.record_ttl_ms = 10 * HOUR;
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_kad_store_init(&arena, &cfg, &st), 0);
	err[0] = '\0';
	return 0;
}

static size_t seal(int k, const char *key, const char *val, uint64_t seq, uint64_t expiry)
{
	long n = kw_kad_kwaai_seal(&keys[k], (const uint8_t *)key, strlen(key),
				   (const uint8_t *)val, strlen(val), seq, expiry, env, sizeof(env));

	assert_true(n > 0);
	return (size_t)n;
}

/* Seals (key, val, seq) with key 0 and puts it from peer `from` (-1: ourselves) at now. */
static int put(const char *key, const char *val, uint64_t seq, int from, uint64_t now)
{
	size_t n = seal(0, key, val, seq, FAR);

	err[0] = '\0';
	return kw_kad_store_put(st, (const uint8_t *)key, strlen(key), env, n,
				from < 0 ? NULL : &ids[from], now, UNIX0 + now, err, sizeof(err));
}

/* The value inside the stored envelope for key, or "" when there is none. */
static const char *get(const char *key, uint64_t now)
{
	static char out[1024];
	const uint8_t *v, *inner;
	size_t vlen, ilen;

	if (kw_kad_store_get(st, (const uint8_t *)key, strlen(key), now, &v, &vlen) < 0)
		return "";
	assert_int_equal(kw_kad_kwaai_open(v, vlen, &inner, &ilen, NULL), 0);
	assert_true(ilen < sizeof(out));
	memcpy(out, inner, ilen);
	out[ilen] = '\0';
	return out;
}

static void stats(struct kw_kad_store_stats *s)
{
	kw_kad_store_get_stats(st, s);
}

static void test_store_put_get_round_trip(void **state)
{
	struct kw_kad_store_stats s;

	assert_int_equal(put("/kwaai/a", "alpha", 1, 1, 0), 0);
	assert_int_equal(put("/kwaai/b", "beta", 1, -1, 0), 0);
	assert_string_equal(get("/kwaai/a", 5), "alpha");
	assert_string_equal(get("/kwaai/b", 5), "beta");
	assert_string_equal(get("/kwaai/c", 5), "");
	stats(&s);
	assert_int_equal(s.records, 2);
	assert_int_equal(s.puts, 2);
	assert_true(s.bytes > 16);
}

static void test_store_pk_record_round_trip(void **state)
{
	uint8_t key[80], val[KW_KEY_PB_MAX];
	const uint8_t *v;
	size_t vlen, klen;

	memcpy(key, "/pk/", 4);
	memcpy(key + 4, ids[2].bytes, ids[2].len);
	klen = 4 + ids[2].len;
	assert_int_equal(kw_pubkey_encode(&keys[2].pub, val, sizeof(val), &vlen), 0);
	assert_int_equal(kw_kad_store_put(st, key, klen, val, vlen, &ids[1], 0, UNIX0, err,
					  sizeof(err)), 0);
	/* The same key again refreshes it. */
	assert_int_equal(kw_kad_store_put(st, key, klen, val, vlen, &ids[1], 0, UNIX0, err,
					  sizeof(err)), 0);
	assert_int_equal(kw_kad_store_get(st, key, klen, 1, &v, &vlen), 0);
	assert_int_equal(kw_pubkey_decode(v, vlen, &keys[3].pub), 0);
	assert_true(kw_pubkey_equal(&keys[3].pub, &keys[2].pub));
}

static void test_store_refuses_invalid_record_and_counts_it(void **state)
{
	struct kw_kad_store_stats s;
	size_t n = seal(0, "/kwaai/a", "alpha", 1, FAR);

	env[n - 1] ^= 1;
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/kwaai/a", 8, env, n, &ids[1], 0,
					  UNIX0, err, sizeof(err)), -KW_ESIG);
	assert_non_null(strstr(err, "signature"));
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/ipns/a", 7, env, n, &ids[1], 0,
					  UNIX0, err, sizeof(err)), -KW_ENOPROTO);
	stats(&s);
	assert_int_equal(s.refused_invalid, 2);
	assert_int_equal(s.records, 0);
}

static void test_store_older_is_ealready_newer_replaces(void **state)
{
	struct kw_kad_store_stats s;

	assert_int_equal(put("/kwaai/a", "v5", 5, 1, 0), 0);
	assert_int_equal(put("/kwaai/a", "v4", 4, 1, 0), -KW_EALREADY);
	assert_non_null(strstr(err, "newer"));
	assert_string_equal(get("/kwaai/a", 0), "v5");
	assert_int_equal(put("/kwaai/a", "v6", 6, 2, 0), 0);
	assert_string_equal(get("/kwaai/a", 0), "v6");
	assert_int_equal(put("/kwaai/a", "v6", 6, 2, 0), 0);   /* same record: refresh */
	stats(&s);
	assert_int_equal(s.records, 1);
	assert_int_equal(s.refused_older, 1);
}

static void test_store_caps_records_per_peer(void **state)
{
	struct kw_kad_store_stats s;

	assert_int_equal(put("/kwaai/1", "x", 1, 1, 0), 0);
	assert_int_equal(put("/kwaai/2", "x", 1, 1, 0), 0);
	assert_int_equal(put("/kwaai/3", "x", 1, 1, 0), 0);
	assert_int_equal(put("/kwaai/4", "x", 1, 1, 0), -KW_ELIMIT);
	assert_non_null(strstr(err, "limit 3"));
	/* Replacing one of its own records is not a new record. */
	assert_int_equal(put("/kwaai/3", "y", 2, 1, 0), 0);
	/* Other peers and ourselves are not limited by peer 1's count. */
	assert_int_equal(put("/kwaai/4", "x", 1, 2, 0), 0);
	assert_int_equal(put("/kwaai/5", "x", 1, -1, 0), 0);
	stats(&s);
	assert_int_equal(s.refused_limit, 1);
}

static void test_store_refuses_record_over_size_limit(void **state)
{
	char big[600];
	size_t n;

	memset(big, 'v', 400);
	big[400] = '\0';
	n = seal(0, "/kwaai/big", big, 1, FAR);   /* 400 + ~110 envelope bytes > 512 */
	assert_true(n + 10 > 512);
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/kwaai/big", 10, env, n, &ids[1],
					  0, UNIX0, err, sizeof(err)), -KW_ELIMIT);
	assert_non_null(strstr(err, "more than 512"));
}

static void test_store_caps_total_bytes(void **state)
{
	char val[300], key[16];
	int i, stored = 0;
	struct kw_kad_store_stats s;

	memset(val, 'v', 299);
	val[299] = '\0';
	/* ~420-byte records from ourselves: four fit 2048 bytes, the fifth does not. */
	for (i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "/kwaai/%d", i);
		if (put(key, val, 1, -1, 0) == 0)
			stored++;
		else
			break;
	}
	assert_int_equal(stored, 4);
	assert_int_equal(put(key, val, 1, -1, 0), -KW_ELIMIT);
	assert_non_null(strstr(err, "store full"));
	stats(&s);
	assert_true(s.bytes <= 2048);
}

/*
 * Puts "x" under /kwaai/0 .. /kwaai/7 at time 0: all own records, or (even_remote) the even
 * ones from peer i / 2 with the default TTL.
 */
static void put_eight(bool even_remote)
{
	char key[16];

	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "/kwaai/%d", i);
		assert_int_equal(put(key, "x", 1, even_remote && i % 2 == 0 ? i / 2 : -1, 0), 0);
	}
}

static void test_store_full_slot_pool_is_enobufs(void **state)
{
	put_eight(false);
	assert_int_equal(put("/kwaai/9", "x", 1, -1, 0), -KW_ENOBUFS);
	assert_non_null(strstr(err, "slots"));
	{
		struct kw_kad_store_stats s;

		stats(&s);
		assert_int_equal(s.refused_pool, 1);
		assert_int_equal(s.records, 8);
		assert_int_equal(s.puts, 8);
	}
}

static void test_store_record_expires_after_ttl(void **state)
{
	struct kw_kad_store_stats s;

	assert_int_equal(put("/kwaai/a", "x", 1, 1, 0), 0);
	assert_string_equal(get("/kwaai/a", 10 * HOUR - 1), "x");
	assert_string_equal(get("/kwaai/a", 10 * HOUR), "");
	assert_int_equal(kw_kad_store_expire(st, 10 * HOUR - 1), 0);
	assert_int_equal(kw_kad_store_expire(st, 10 * HOUR), 1);
	stats(&s);
	assert_int_equal(s.records, 0);
	assert_int_equal(s.bytes, 0);
	assert_int_equal(s.expired, 1);
}

static void test_store_default_ttl_is_36_hours(void **state)
{
	cfg.record_ttl_ms = 0;
	assert_int_equal(kw_kad_store_init(&arena, &cfg, &st), 0);
	assert_int_equal(put("/kwaai/a", "x", 1, 1, 0), 0);
	assert_string_equal(get("/kwaai/a", 36 * HOUR - 1), "x");
	assert_string_equal(get("/kwaai/a", 36 * HOUR), "");
}

static void test_store_envelope_expiry_before_ttl_wins(void **state)
{
	size_t n = seal(0, "/kwaai/a", "x", 1, UNIX0 + 2 * HOUR);

	/* Put one hour in: the envelope has one hour left, less than the 10 h TTL. */
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/kwaai/a", 8, env, n, &ids[1],
					  HOUR, UNIX0 + HOUR, err, sizeof(err)), 0);
	assert_string_equal(get("/kwaai/a", 2 * HOUR - 1), "x");
	assert_string_equal(get("/kwaai/a", 2 * HOUR), "");
	/* An own record has no TTL but still ends with its envelope. */
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/kwaai/a", 8, env, n, NULL, HOUR,
					  UNIX0 + HOUR, err, sizeof(err)), 0);
	assert_string_equal(get("/kwaai/a", 2 * HOUR), "");
	/* An expired envelope is refused outright. */
	assert_int_equal(kw_kad_store_put(st, (const uint8_t *)"/kwaai/a", 8, env, n, &ids[1],
					  2 * HOUR, UNIX0 + 2 * HOUR, err, sizeof(err)),
			 -KW_ETIMEDOUT);
}

static void test_store_own_records_do_not_expire_by_ttl(void **state)
{
	assert_int_equal(put("/kwaai/own", "x", 1, -1, 0), 0);
	assert_int_equal(kw_kad_store_expire(st, 100 * HOUR), 0);
	assert_string_equal(get("/kwaai/own", 100 * HOUR), "x");
}

static void test_store_expired_records_make_room_for_a_put(void **state)
{
	put_eight(true);
	assert_int_equal(put("/kwaai/9", "x", 1, 1, HOUR), -KW_ENOBUFS);
	/* No explicit expire call: the put drops the expired remote records itself. */
	assert_int_equal(put("/kwaai/9", "x", 1, 1, 10 * HOUR), 0);
	assert_string_equal(get("/kwaai/9", 10 * HOUR), "x");
	assert_string_equal(get("/kwaai/1", 10 * HOUR), "x");   /* own: kept */
}

static void test_store_dropping_a_record_keeps_the_others_intact(void **state)
{
	char key[16], val[16];
	int i;

	for (i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "/kwaai/%d", i);
		snprintf(val, sizeof(val), "value-%d-%.*s", i, i, "xxxxxx");
		assert_int_equal(put(key, val, 1, i < 3 ? 1 : -1, 0), 0);
	}
	/* Replace one in the middle (bytes slide down) and expire peer 1's three. */
	assert_int_equal(put("/kwaai/4", "replaced", 2, -1, 0), 0);
	assert_int_equal(kw_kad_store_expire(st, 10 * HOUR), 3);
	for (i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "/kwaai/%d", i);
		snprintf(val, sizeof(val), "value-%d-%.*s", i, i, "xxxxxx");
		assert_string_equal(get(key, 10 * HOUR), i < 3 ? "" : i == 4 ? "replaced" : val);
	}
}

struct own_seen {
	int records, providers;
	char last_key[64];
};

static void own_cb(void *arg, bool is_provider, const uint8_t *key, size_t klen,
		   const uint8_t *val, size_t vlen)
{
	struct own_seen *o = arg;

	if (is_provider) {
		o->providers++;
		assert_null(val);
	} else {
		o->records++;
		assert_non_null(val);
		assert_true(vlen > 0);
	}
	memcpy(o->last_key, key, klen < 63 ? klen : 63);
	o->last_key[klen < 63 ? klen : 63] = '\0';
}

static void provider(struct kw_kad_provider *p, int who)
{
	memset(p, 0, sizeof(*p));
	p->id = ids[who];
	p->naddrs = 1;
	p->addr_len[0] = 8;
	memcpy(p->addrs[0], "\x04\x7f\x00\x00\x01\x06\x0f\xa1", 8);  /* /ip4/127.0.0.1/tcp/4001 */
}

/* sha2-256 multihash with digest bytes all `b`. */
static void mh(uint8_t out[34], uint8_t b)
{
	out[0] = 0x12;
	out[1] = 0x20;
	memset(out + 2, b, 32);
}

/* Peer `who` (*p, kept for the caller) announces itself as a provider of m at time 0. */
static void add_provider_of(const uint8_t m[34], struct kw_kad_provider *p, int who)
{
	provider(p, who);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, p, &ids[who], 0, err, sizeof(err)),
			 0);
}

static void test_store_foreach_own_lists_own_records_and_providers(void **state)
{
	struct own_seen o = { 0 };
	struct kw_kad_provider p;
	uint8_t m[34];

	assert_int_equal(put("/kwaai/mine", "x", 1, -1, 0), 0);
	assert_int_equal(put("/kwaai/theirs", "x", 1, 1, 0), 0);
	mh(m, 1);
	provider(&p, 0);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, NULL, 0, err, sizeof(err)), 0);
	add_provider_of(m, &p, 1);
	kw_kad_store_foreach_own(st, own_cb, &o);
	assert_int_equal(o.records, 1);
	assert_int_equal(o.providers, 1);
}

static void test_provider_add_and_get(void **state)
{
	struct kw_kad_provider p, out[4];
	uint8_t m[34], other[34];

	mh(m, 7);
	mh(other, 8);
	add_provider_of(m, &p, 1);
	add_provider_of(m, &p, 2);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 1, out, 4), 2);
	assert_true(kw_peer_id_equal(&out[0].id, &ids[1]) || kw_peer_id_equal(&out[1].id, &ids[1]));
	assert_int_equal(out[0].naddrs, 1);
	assert_memory_equal(out[0].addrs[0], p.addrs[0], 8);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 1, out, 1), 1);
	assert_int_equal(kw_kad_store_get_providers(st, other, 34, 1, out, 4), 0);
	/* Adding again refreshes, it does not duplicate. */
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[2], 5, err, sizeof(err)),
			 0);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 6, out, 4), 2);
}

static void test_provider_expires_after_48_hours_unless_refreshed(void **state)
{
	struct kw_kad_provider p, out[4];
	uint8_t m[34];

	mh(m, 7);
	add_provider_of(m, &p, 1);
	add_provider_of(m, &p, 2);
	/* Peer 2 republishes at 22 h (the spec's interval); peer 1 does not. */
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[2], 22 * HOUR, err,
						   sizeof(err)), 0);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 48 * HOUR - 1, out, 4), 2);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 48 * HOUR, out, 4), 1);
	assert_true(kw_peer_id_equal(&out[0].id, &ids[2]));
	assert_int_equal(kw_kad_store_expire(st, 48 * HOUR), 1);
	assert_int_equal(kw_kad_store_expire(st, 70 * HOUR), 1);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 70 * HOUR, out, 4), 0);
}

static void test_provider_own_announcement_does_not_expire(void **state)
{
	struct kw_kad_provider p, out[2];
	uint8_t m[34];

	mh(m, 7);
	provider(&p, 0);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(kw_kad_store_expire(st, 1000 * HOUR), 0);
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 1000 * HOUR, out, 2), 1);
}

static void test_provider_from_another_peer_is_eperm(void **state)
{
	struct kw_kad_provider p, out[2];
	struct kw_kad_store_stats s;
	uint8_t m[34];

	mh(m, 7);
	provider(&p, 1);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[2], 0, err, sizeof(err)),
			 -KW_EPERM);
	assert_non_null(strstr(err, "only announce itself"));
	assert_int_equal(kw_kad_store_get_providers(st, m, 34, 0, out, 2), 0);
	stats(&s);
	assert_int_equal(s.provider_refused, 1);
	assert_int_equal(s.provider_adds, 0);
}

static void test_provider_caps_per_key_and_per_peer(void **state)
{
	struct kw_kad_provider p;
	uint8_t m[34];
	int i;

	mh(m, 1);
	for (i = 0; i < 3; i++) {
		provider(&p, i);
		assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[i], 0, err,
							   sizeof(err)), 0);
	}
	provider(&p, 3);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[3], 0, err, sizeof(err)),
			 -KW_ELIMIT);
	assert_non_null(strstr(err, "providers (limit 3)"));
	/* Peer 3 may provide 4 keys, not 5. */
	for (i = 2; i < 6; i++) {
		mh(m, (uint8_t)i);
		assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[3], 0, err,
							   sizeof(err)), 0);
	}
	mh(m, 6);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[3], 0, err, sizeof(err)),
			 -KW_ELIMIT);
	assert_non_null(strstr(err, "keys here (limit 4)"));
}

static void test_provider_full_pool_is_enobufs(void **state)
{
	struct kw_kad_provider p;
	uint8_t m[34];
	int i;

	for (i = 0; i < 8; i++) {
		mh(m, (uint8_t)i);
		provider(&p, i % 2);
		assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, NULL, 0, err, sizeof(err)),
				 0);
	}
	mh(m, 9);
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, NULL, 0, err, sizeof(err)),
			 -KW_ENOBUFS);
	assert_non_null(strstr(err, "provider slots"));
	{
		struct kw_kad_store_stats s;

		stats(&s);
		assert_int_equal(s.providers, 8);
		assert_int_equal(s.provider_adds, 8);
		assert_int_equal(s.provider_refused, 1);
	}
}

static void test_provider_bad_key_or_provider_is_ebadmsg(void **state)
{
	struct kw_kad_provider p;
	uint8_t m[34];

	mh(m, 1);
	provider(&p, 1);
	assert_int_equal(kw_kad_store_add_provider(st, m, 33, &p, &ids[1], 0, err, sizeof(err)),
			 -KW_EBADMSG);
	assert_non_null(strstr(err, "multihash"));
	assert_int_equal(kw_kad_store_add_provider(st, m, 0, &p, &ids[1], 0, err, sizeof(err)),
			 -KW_EBADMSG);
	p.naddrs = 3;
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[1], 0, err, sizeof(err)),
			 -KW_EBADMSG);
	p.naddrs = 1;
	p.addr_len[0] = 65;
	assert_int_equal(kw_kad_store_add_provider(st, m, 34, &p, &ids[1], 0, err, sizeof(err)),
			 -KW_EBADMSG);
}

static void test_init_zero_cfg_takes_kconfig_defaults(void **state)
{
	struct kw_kad_store_cfg zero, def;
	size_t need;
	void *mem;

	memset(&zero, 0, sizeof(zero));
	kw_kad_store_cfg_default(&def);
	assert_int_equal(def.max_records, CONFIG_KW_NET_KAD_STORE_RECORDS);
	assert_int_equal(def.max_total_bytes, CONFIG_KW_NET_KAD_STORE_TOTAL_BYTES);
	assert_int_equal(def.record_ttl_ms, 36 * HOUR);
	assert_int_equal(def.provider_ttl_ms, 48 * HOUR);
	need = kw_kad_store_arena_bytes(&zero);
	assert_int_equal(need, kw_kad_store_arena_bytes(&def));
	mem = calloc(1, need);
	assert_non_null(mem);
	kw_arena_init(&arena, mem, need);
	assert_int_equal(kw_kad_store_init(&arena, &zero, &st), 0);
	kw_arena_init(&arena, mem, need / 2);
	assert_int_equal(kw_kad_store_init(&arena, &zero, &st), -KW_ENOMEM);
	free(mem);
}

static void test_init_refuses_record_larger_than_total(void **state)
{
	cfg.max_record_bytes = 4096;
	assert_int_equal(kw_kad_store_init(&arena, &cfg, &st), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_store_put_get_round_trip, setup),
		cmocka_unit_test_setup(test_store_pk_record_round_trip, setup),
		cmocka_unit_test_setup(test_store_refuses_invalid_record_and_counts_it, setup),
		cmocka_unit_test_setup(test_store_older_is_ealready_newer_replaces, setup),
		cmocka_unit_test_setup(test_store_caps_records_per_peer, setup),
		cmocka_unit_test_setup(test_store_refuses_record_over_size_limit, setup),
		cmocka_unit_test_setup(test_store_caps_total_bytes, setup),
		cmocka_unit_test_setup(test_store_full_slot_pool_is_enobufs, setup),
		cmocka_unit_test_setup(test_store_record_expires_after_ttl, setup),
		cmocka_unit_test_setup(test_store_default_ttl_is_36_hours, setup),
		cmocka_unit_test_setup(test_store_envelope_expiry_before_ttl_wins, setup),
		cmocka_unit_test_setup(test_store_own_records_do_not_expire_by_ttl, setup),
		cmocka_unit_test_setup(test_store_expired_records_make_room_for_a_put, setup),
		cmocka_unit_test_setup(test_store_dropping_a_record_keeps_the_others_intact, setup),
		cmocka_unit_test_setup(test_store_foreach_own_lists_own_records_and_providers,
				       setup),
		cmocka_unit_test_setup(test_provider_add_and_get, setup),
		cmocka_unit_test_setup(test_provider_expires_after_48_hours_unless_refreshed, setup),
		cmocka_unit_test_setup(test_provider_own_announcement_does_not_expire, setup),
		cmocka_unit_test_setup(test_provider_from_another_peer_is_eperm, setup),
		cmocka_unit_test_setup(test_provider_caps_per_key_and_per_peer, setup),
		cmocka_unit_test_setup(test_provider_full_pool_is_enobufs, setup),
		cmocka_unit_test_setup(test_provider_bad_key_or_provider_is_ebadmsg, setup),
		cmocka_unit_test_setup(test_init_zero_cfg_takes_kconfig_defaults, setup),
		cmocka_unit_test_setup(test_init_refuses_record_larger_than_total, setup),
	};

	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
