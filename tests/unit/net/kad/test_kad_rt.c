/* net/kad/rt.c: k-buckets by CPL, nearest by XOR distance, replacement cache and liveness
 * check, diversity filter, pool limits. Works at any CONFIG_KW_NET_KAD_* value in range. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/kad_rt.h>

#define K      CONFIG_KW_NET_KAD_K
#define REPL   CONFIG_KW_NET_KAD_REPLACEMENTS
#define GRP_B  CONFIG_KW_NET_KAD_PEERS_PER_IP_GROUP_BUCKET
#define GRP_T  CONFIG_KW_NET_KAD_PEERS_PER_IP_GROUP_TABLE

#define NPEERS 1000
#define POOL   2048

static uint8_t arena_mem[KW_KAD_RT_ARENA_BYTES(POOL)];
static struct kw_arena arena;
static struct kw_kad_rt rt;
static struct kw_peer_id self;
static uint64_t rng_state;

static struct {
	unsigned calls;
	struct kw_peer_id last;
} pings;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* A sha2-256 multihash shaped peer id with random digest bytes. */
static void rand_id(struct kw_peer_id *id)
{
	id->len = 34;
	id->bytes[0] = 0x12;
	id->bytes[1] = 0x20;
	for (unsigned i = 2; i < 34; i++)
		id->bytes[i] = (uint8_t)rnd();
}

static unsigned cpl_of(const struct kw_peer_id *id)
{
	uint8_t a[32], b[32];

	assert_int_equal(kw_kad_rt_key(id, a), 0);
	assert_int_equal(kw_kad_rt_key(&self, b), 0);
	return kw_kad_rt_cpl(a, b);
}

/* A random id whose key has exactly this CPL with ours (about 2^(cpl+1) tries). */
static void id_with_cpl(struct kw_peer_id *id, unsigned cpl)
{
	do
		rand_id(id);
	while (cpl_of(id) != cpl);
}

static void maddr(struct kw_multiaddr *ma, const char *text)
{
	char err[KW_MADDR_ERR_MAX];

	assert_int_equal(kw_maddr_from_text(text, ma, err, sizeof(err)), 0);
}

static void ip4(struct kw_multiaddr *ma, unsigned a, unsigned b, unsigned c, unsigned d)
{
	char t[64];

	snprintf(t, sizeof(t), "/ip4/%u.%u.%u.%u/tcp/4001", a, b, c, d);
	maddr(ma, t);
}

static void on_ping(void *ctx, struct kw_kad_rt *r, const struct kw_peer_id *id)
{
	(void)ctx;
	assert_ptr_equal(r, &rt);
	pings.calls++;
	pings.last = *id;
}

static int setup_pool(unsigned entries)
{
	struct kw_kad_rt_cfg cfg = { .self = &self, .max_entries = entries, .ping_cb = on_ping };

	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	memset(&pings, 0, sizeof(pings));
	rng_state = 0x9e3779b97f4a7c15ull;
	rand_id(&self);
	return kw_kad_rt_init(&rt, &arena, &cfg);
}

static int setup(void **state)
{
	(void)state;
	return setup_pool(POOL);
}

static void test_kad_rt_bucket_index_is_cpl(void **state)
{
	static const struct { unsigned byte; uint8_t mask; unsigned cpl; } cases[] = {
		{ 0, 0x80, 0 }, { 0, 0x40, 1 }, { 0, 0x01, 7 }, { 1, 0x80, 8 },
		{ 3, 0x10, 27 }, { 31, 0x02, 254 }, { 31, 0x01, 255 },
	};
	uint8_t a[32], b[32];

	(void)state;
	for (unsigned i = 0; i < 32; i++)
		a[i] = (uint8_t)rnd();
	memcpy(b, a, 32);
	assert_int_equal(kw_kad_rt_cpl(a, b), 256);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(b, a, 32);
		b[cases[i].byte] ^= cases[i].mask;
		for (unsigned j = cases[i].byte + 1; j < 32; j++)
			b[j] = (uint8_t)rnd();  /* bits after the first difference do not matter */
		assert_int_equal(kw_kad_rt_cpl(a, b), cases[i].cpl);
	}
	/* A peer lands in the bucket of its key's CPL with our key. */
	for (unsigned cpl = 0; cpl < 6; cpl++) {
		struct kw_peer_id id;
		const struct kw_kad_rt_entry *e;

		id_with_cpl(&id, cpl);
		assert_int_equal(kw_kad_rt_add(&rt, &id, NULL, 0, 1, NULL, 0), 0);
		e = kw_kad_rt_find(&rt, &id);
		assert_non_null(e);
		assert_int_equal(e->cpl, cpl);
		assert_int_equal(rt.buckets[cpl].n, 1);
	}
	assert_int_equal(kw_kad_rt_add(&rt, &self, NULL, 0, 1, NULL, 0), -KW_EINVAL);
}

static const uint8_t *cmp_target;

static int by_distance(const void *x, const void *y)
{
	const uint8_t *a = *(const uint8_t *const *)x, *b = *(const uint8_t *const *)y;

	for (unsigned i = 0; i < 32; i++) {
		uint8_t da = a[i] ^ cmp_target[i], db = b[i] ^ cmp_target[i];

		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

static void test_kad_rt_nearest_matches_brute_force(void **state)
{
	static struct kw_peer_id ids[NPEERS];
	static uint8_t keys[NPEERS][32];
	static const uint8_t *members[NPEERS];
	const struct kw_kad_rt_entry *out[K + 1];
	size_t nmembers = 0;

	(void)state;
	for (unsigned i = 0; i < NPEERS; i++) {
		int r;

		rand_id(&ids[i]);
		assert_int_equal(kw_kad_rt_key(&ids[i], keys[i]), 0);
		r = kw_kad_rt_add(&rt, &ids[i], NULL, 0, 1, NULL, 0);
		assert_true(r == 0 || r == -KW_EINPROGRESS || r == -KW_EBUSY);
	}
	/* Buckets cap at k, so the table holds a subset: the truth is a full sort of what it holds. */
	for (unsigned i = 0; i < NPEERS; i++) {
		const struct kw_kad_rt_entry *e = kw_kad_rt_find(&rt, &ids[i]);

		if (e) {
			assert_memory_equal(e->key, keys[i], 32);
			members[nmembers++] = e->key;
		}
	}
	assert_int_equal(nmembers, kw_kad_rt_size(&rt));
	assert_true(nmembers > (size_t)K);
	for (unsigned t = 0; t < 50; t++) {
		uint8_t target[32];
		size_t n;

		for (unsigned i = 0; i < 32; i++)
			target[i] = (uint8_t)rnd();
		if (t == 0)
			memcpy(target, rt.self_key, 32);
		cmp_target = target;
		qsort(members, nmembers, sizeof(members[0]), by_distance);
		n = kw_kad_rt_nearest(&rt, target, out, K);
		assert_int_equal(n, K);
		for (unsigned i = 0; i < K; i++)
			assert_memory_equal(out[i]->key, members[i], 32);
	}
	/* Near our own key the buckets are sparse: when no bucket at or above the CPL of the k-th
	 * closest of all 1000 got more than k peers, the table's k nearest to us are the true k
	 * closest of all 1000 (the case for this seed at k = 20). */
	{
		static const uint8_t *all[NPEERS];
		unsigned count[257] = { 0 }, ck, over = 0;

		for (unsigned i = 0; i < NPEERS; i++) {
			all[i] = keys[i];
			count[kw_kad_rt_cpl(keys[i], rt.self_key)]++;
		}
		cmp_target = rt.self_key;
		qsort(all, NPEERS, sizeof(all[0]), by_distance);
		ck = kw_kad_rt_cpl(all[K - 1], rt.self_key);
		for (unsigned c = ck; c < 257; c++)
			over += count[c] > K;
		if (over == 0) {
			assert_int_equal(kw_kad_rt_nearest(&rt, rt.self_key, out, K), K);
			for (unsigned i = 0; i < K; i++)
				assert_memory_equal(out[i]->key, all[i], 32);
		}
	}
	/* Asking for more than the table holds returns what it holds. */
	assert_int_equal(kw_kad_rt_nearest(&rt, rt.self_key, out, 0), 0);
}

/* The nearest walk visits buckets in distance order and stops early: for targets in every
 * bucket (our key with bit c flipped, random below) and window sizes from 1 to the whole
 * table, it returns exactly what a sort of the whole table gives. */
static void test_kad_rt_nearest_matches_full_sort_for_targets_in_every_bucket(void **state)
{
	static struct kw_peer_id ids[NPEERS];
	static const uint8_t *members[NPEERS];
	static const struct kw_kad_rt_entry *out[NPEERS];
	const size_t sizes[] = { 1, K - 1, K, K + 1, 3u * K, NPEERS };
	size_t nmembers = 0;

	(void)state;
	for (unsigned i = 0; i < NPEERS; i++) {
		rand_id(&ids[i]);
		(void)kw_kad_rt_add(&rt, &ids[i], NULL, 0, 1, NULL, 0);
	}
	for (unsigned i = 0; i < NPEERS; i++) {
		const struct kw_kad_rt_entry *e = kw_kad_rt_find(&rt, &ids[i]);

		if (e)
			members[nmembers++] = e->key;
	}
	for (unsigned c = 0; c < 24; c++) {
		for (unsigned rep = 0; rep < 4; rep++) {
			uint8_t target[32];

			memcpy(target, rt.self_key, 32);
			target[c / 8] ^= (uint8_t)(0x80u >> (c % 8));
			for (unsigned b = c + 1; b < 256; b++)
				if (rnd() & 1)
					target[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
			cmp_target = target;
			qsort(members, nmembers, sizeof(members[0]), by_distance);
			for (unsigned z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
				size_t want = sizes[z] < nmembers ? sizes[z] : nmembers;
				size_t n = kw_kad_rt_nearest(&rt, target, out, sizes[z]);

				assert_int_equal(n, want);
				for (size_t i = 0; i < n; i++)
					assert_memory_equal(out[i]->key, members[i], 32);
			}
		}
	}
}

/* Fills bucket `cpl` with k members; ids[] receives them, oldest first. */
static void fill_bucket(unsigned cpl, struct kw_peer_id *ids)
{
	for (unsigned i = 0; i < K; i++) {
		id_with_cpl(&ids[i], cpl);
		assert_int_equal(kw_kad_rt_add(&rt, &ids[i], NULL, 0, 10 + i, NULL, 0), 0);
	}
	assert_int_equal(rt.buckets[cpl].n, K);
}

static void test_kad_rt_full_bucket_caches_and_asks_liveness(void **state)
{
	struct kw_peer_id ids[K], extra, extra2;
	char err[128];
	struct kw_kad_rt_stats st;

	(void)state;
	fill_bucket(0, ids);
	id_with_cpl(&extra, 0);
	err[0] = 0;
	assert_int_equal(kw_kad_rt_add(&rt, &extra, NULL, 0, 100, err, sizeof(err)),
			 REPL ? -KW_EINPROGRESS : -KW_EBUSY);
	assert_true(strstr(err, "full") != NULL);
	assert_int_equal(pings.calls, 1);
	assert_true(kw_peer_id_equal(&pings.last, &ids[0]));  /* least recently seen */
	assert_null(kw_kad_rt_find(&rt, &extra));
	assert_non_null(kw_kad_rt_find(&rt, &ids[0]));      /* no eviction without a check */
	assert_int_equal(kw_kad_rt_size(&rt), K);
	/* One check per bucket at a time. */
	id_with_cpl(&extra2, 0);
	kw_kad_rt_add(&rt, &extra2, NULL, 0, 101, NULL, 0);
	assert_int_equal(pings.calls, 1);
	kw_kad_rt_get_stats(&rt, &st);
	assert_int_equal(st.pings, 1);
	assert_int_equal(st.candidates, REPL >= 2 ? 2 : REPL);
}

static void test_kad_rt_dead_member_promotes_newest_candidate(void **state)
{
	struct kw_peer_id ids[K], c1, c2;
	struct kw_kad_rt_stats st;

	(void)state;
	if (REPL < 2)
		skip();  /* needs two candidates to tell "newest" apart; 0/1-entry caches tested above */
	fill_bucket(0, ids);
	id_with_cpl(&c1, 0);
	id_with_cpl(&c2, 0);
	assert_int_equal(kw_kad_rt_add(&rt, &c1, NULL, 0, 100, NULL, 0), -KW_EINPROGRESS);
	assert_int_equal(kw_kad_rt_add(&rt, &c2, NULL, 0, 101, NULL, 0), -KW_EINPROGRESS);
	assert_true(kw_peer_id_equal(&pings.last, &ids[0]));
	assert_int_equal(kw_kad_rt_dead(&rt, &ids[0]), 0);
	assert_null(kw_kad_rt_find(&rt, &ids[0]));
	assert_non_null(kw_kad_rt_find(&rt, &c2));
	assert_null(kw_kad_rt_find(&rt, &c1));
	assert_int_equal(kw_kad_rt_size(&rt), K);
	kw_kad_rt_get_stats(&rt, &st);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.promoted, 1);
	assert_int_equal(st.candidates, 1);
	/* The check is over: the next newcomer asks about the new least recently seen member. */
	kw_kad_rt_add(&rt, &c1, NULL, 0, 102, NULL, 0);
	assert_int_equal(pings.calls, 2);
	assert_true(kw_peer_id_equal(&pings.last, &ids[1]));
	assert_int_equal(kw_kad_rt_dead(&rt, &c1), -KW_ENOENT);  /* a candidate is not a member */
}

/* A failed request removes a member only when something can take its place: the table's
 * last working contact stays, marked stale, until it answers again or another one exists. */
static void test_kad_rt_failed_keeps_the_last_working_member(void **state)
{
	struct kw_peer_id a, b;
	struct kw_kad_rt_stats st;

	(void)state;
	id_with_cpl(&a, 0);
	id_with_cpl(&b, 1);
	assert_int_equal(kw_kad_rt_add(&rt, &a, NULL, 0, 10, NULL, 0), 0);
	assert_int_equal(kw_kad_rt_failed(&rt, &a), 1);          /* alone: kept */
	assert_int_equal(kw_kad_rt_failed(&rt, &a), 1);
	assert_non_null(kw_kad_rt_find(&rt, &a));
	assert_int_equal(kw_kad_rt_find(&rt, &a)->fails, 2);
	assert_int_equal(kw_kad_rt_size(&rt), 1);
	assert_int_equal(kw_kad_rt_working(&rt), 0);
	kw_kad_rt_get_stats(&rt, &st);
	assert_int_equal(st.stale, 1);
	assert_int_equal(st.kept_stale, 2);
	assert_int_equal(st.evicted, 0);
	/* an answer clears the mark */
	assert_int_equal(kw_kad_rt_answered(&rt, &a, kw_kad_rt_find(&rt, &a)->key, NULL, 0, 20), 0);
	assert_int_equal(kw_kad_rt_find(&rt, &a)->fails, 0);
	assert_int_equal(kw_kad_rt_working(&rt), 1);
	/* stale again, then a working member joins: the next failure removes the stale one */
	assert_int_equal(kw_kad_rt_failed(&rt, &a), 1);
	assert_int_equal(kw_kad_rt_add(&rt, &b, NULL, 0, 30, NULL, 0), 0);
	assert_int_equal(kw_kad_rt_working(&rt), 1);
	assert_int_equal(kw_kad_rt_failed(&rt, &a), 0);
	assert_null(kw_kad_rt_find(&rt, &a));
	/* b is now the last working member: kept */
	assert_int_equal(kw_kad_rt_failed(&rt, &b), 1);
	assert_non_null(kw_kad_rt_find(&rt, &b));
	kw_kad_rt_get_stats(&rt, &st);
	assert_int_equal(st.members, 1);
	assert_int_equal(st.stale, 1);
	assert_int_equal(st.evicted, 1);
	/* removed while stale: the count follows */
	assert_int_equal(kw_kad_rt_remove(&rt, &b), 0);
	kw_kad_rt_get_stats(&rt, &st);
	assert_int_equal(st.stale, 0);
	assert_int_equal(kw_kad_rt_failed(&rt, &b), -KW_ENOENT);
}

/* A member whose bucket caches a replacement goes on its first failure, even when it is the
 * only working one left: the candidate takes its place. */
static void test_kad_rt_failed_member_with_a_replacement_goes(void **state)
{
	struct kw_peer_id ids[K], c1;

	(void)state;
	if (REPL == 0)
		skip();  /* no replacement cache: nothing can take the place */
	/* a full bucket whose members all failed while none other worked (each kept stale),
	 * but the last, which works */
	for (unsigned i = 0; i < K; i++) {
		id_with_cpl(&ids[i], 0);
		assert_int_equal(kw_kad_rt_add(&rt, &ids[i], NULL, 0, 10 + i, NULL, 0), 0);
		if (i + 1 < K)
			assert_int_equal(kw_kad_rt_failed(&rt, &ids[i]), 1);
	}
	assert_int_equal(kw_kad_rt_size(&rt), K);
	assert_int_equal(kw_kad_rt_working(&rt), 1);
	id_with_cpl(&c1, 0);
	assert_int_equal(kw_kad_rt_add(&rt, &c1, NULL, 0, 300, NULL, 0), -KW_EINPROGRESS);
	assert_int_equal(kw_kad_rt_failed(&rt, &ids[K - 1]), 0);
	assert_null(kw_kad_rt_find(&rt, &ids[K - 1]));
	assert_non_null(kw_kad_rt_find(&rt, &c1));
	assert_int_equal(kw_kad_rt_size(&rt), K);
}

static void test_kad_rt_alive_member_stays(void **state)
{
	struct kw_peer_id ids[K], c1;
	const struct kw_kad_rt_entry *e;

	(void)state;
	fill_bucket(0, ids);
	id_with_cpl(&c1, 0);
	kw_kad_rt_add(&rt, &c1, NULL, 0, 100, NULL, 0);
	assert_int_equal(pings.calls, 1);
	assert_int_equal(kw_kad_rt_alive(&rt, &ids[0], 200), 0);
	e = kw_kad_rt_find(&rt, &ids[0]);
	assert_non_null(e);
	assert_int_equal(e->last_seen_ms, 200);
	assert_null(kw_kad_rt_find(&rt, &c1));
	assert_int_equal(kw_kad_rt_size(&rt), K);
	assert_int_equal(rt.stats.evicted, 0);
	assert_int_equal(rt.stats.candidates, REPL ? 1 : 0);
	/* ids[0] moved to the tail: the next check is about ids[1]. */
	kw_kad_rt_add(&rt, &c1, NULL, 0, 300, NULL, 0);
	assert_int_equal(pings.calls, 2);
	assert_true(kw_peer_id_equal(&pings.last, &ids[1]));
}

static void test_kad_rt_diversity_bucket_limit(void **state)
{
	struct kw_peer_id id;
	struct kw_multiaddr ma;
	char err[128];

	(void)state;
	if (GRP_B >= K || GRP_B >= GRP_T)
		skip();  /* the bucket fills, or the table limit bites first, before the group limit */
	for (unsigned i = 0; i < GRP_B; i++) {
		id_with_cpl(&id, 0);
		ip4(&ma, 1, 2, i / 250, i % 250 + 1);
		assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, NULL, 0), 0);
	}
	id_with_cpl(&id, 0);
	ip4(&ma, 1, 2, 99, 99);
	err[0] = 0;
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, err, sizeof(err)), -KW_ELIMIT);
	assert_true(strstr(err, "1.2.0.0/16") != NULL);
	assert_true(strstr(err, "bucket") != NULL);
	assert_null(kw_kad_rt_find(&rt, &id));
	assert_int_equal(rt.stats.refused_bucket_group, 1);
	assert_int_equal(pings.calls, 0);
	/* Another /16 is another group. */
	ip4(&ma, 1, 3, 99, 99);
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, NULL, 0), 0);
	/* Any one address over the limit refuses the peer (go-libp2p's rule). */
	{
		struct kw_multiaddr two[2];

		id_with_cpl(&id, 0);
		ip4(&two[0], 5, 6, 7, 8);
		ip4(&two[1], 1, 2, 200, 1);
		assert_int_equal(kw_kad_rt_add(&rt, &id, two, 2, 1, NULL, 0), -KW_ELIMIT);
	}
}

static void test_kad_rt_diversity_table_limit(void **state)
{
	struct kw_peer_id id;
	struct kw_multiaddr ma;
	unsigned per = GRP_B < K ? GRP_B : K, added = 0, cpl = 0;
	char err[128];

	(void)state;
	if ((GRP_T + per - 1) / per > 12)
		skip();  /* needs peers of one group in more than 12 buckets (2^13 tries for CPL 12) */
	while (added < GRP_T) {
		for (unsigned i = 0; i < per && added < GRP_T; i++, added++) {
			id_with_cpl(&id, cpl);
			ip4(&ma, 1, 2, added / 250, added % 250 + 1);
			assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, NULL, 0), 0);
		}
		cpl++;
	}
	/* A bucket with no peer of the group still refuses: the table holds GRP_T of them. */
	id_with_cpl(&id, cpl);
	ip4(&ma, 1, 2, 250, 250);
	err[0] = 0;
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, err, sizeof(err)), -KW_ELIMIT);
	assert_true(strstr(err, "table") != NULL);
	assert_int_equal(rt.stats.refused_table_group, 1);
	assert_int_equal(rt.stats.refused_bucket_group, 0);
	ip4(&ma, 1, 3, 250, 250);
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, NULL, 0), 0);
	/* Removing one of the group makes room again. */
	assert_int_equal(kw_kad_rt_remove(&rt, &id), 0);
}

static void test_kad_rt_private_and_loopback_exempt(void **state)
{
	static const char *const prefixes[] = { "/ip4/127.0.0.%u/tcp/1", "/ip4/192.168.1.%u/tcp/1",
		"/ip4/10.0.0.%u/tcp/1", "/ip6/fd00::%x/tcp/1", "/ip6/::1/tcp/%u" };
	struct kw_multiaddr ma;
	struct kw_peer_id id;

	(void)state;
	if (GRP_B >= K && GRP_T >= K)
		skip();  /* the limits are never reached within one bucket: nothing to be exempt from */
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
		char t[64];

		assert_int_equal(setup_pool(POOL), 0);
		for (unsigned i = 0; i < K; i++) {
			snprintf(t, sizeof(t), prefixes[p], i + 1);
			maddr(&ma, t);
			id_with_cpl(&id, 0);
			assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 1, NULL, 0), 0);
		}
		assert_int_equal(kw_kad_rt_size(&rt), K);
	}
	assert_int_equal(rt.stats.refused_bucket_group + rt.stats.refused_table_group, 0);
}

static void test_kad_rt_pool_exhausted_is_an_error(void **state)
{
	struct kw_peer_id id;
	char err[128];
	int r = 0;
	unsigned added = 0;

	(void)state;
	assert_int_equal(setup_pool(4), 0);
	for (unsigned i = 0; i < 4; i++) {
		id_with_cpl(&id, i);  /* distinct buckets: never full at k >= 4 */
		assert_int_equal(kw_kad_rt_add(&rt, &id, NULL, 0, 1, NULL, 0), 0);
		added++;
	}
	id_with_cpl(&id, 5);
	err[0] = 0;
	r = kw_kad_rt_add(&rt, &id, NULL, 0, 1, err, sizeof(err));
	assert_int_equal(r, -KW_ENOBUFS);
	assert_true(strstr(err, "pool") != NULL);
	assert_int_equal(rt.stats.refused_pool, 1);
	assert_int_equal(kw_kad_rt_size(&rt), added);
	/* A random flood keeps failing cleanly. */
	for (unsigned i = 0; i < 200; i++) {
		rand_id(&id);
		r = kw_kad_rt_add(&rt, &id, NULL, 0, 1, NULL, 0);
		assert_true(r == 0 || r == -KW_ENOBUFS || r == -KW_EINPROGRESS || r == -KW_EBUSY);
	}
	assert_true(rt.used <= 4);
	/* An arena too small for the pool fails init. */
	{
		struct kw_kad_rt_cfg cfg = { .self = &self, .max_entries = POOL + 1, .ping_cb = on_ping };
		struct kw_kad_rt other;

		kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
		assert_int_equal(kw_kad_rt_init(&other, &arena, &cfg), -KW_ENOMEM);
		cfg.max_entries = 0;
		assert_int_equal(kw_kad_rt_init(&other, &arena, &cfg), -KW_EINVAL);
	}
}

static void test_kad_rt_remove_and_readd(void **state)
{
	struct kw_peer_id id;
	struct kw_multiaddr ma;
	const struct kw_kad_rt_entry *e;
	unsigned used;

	(void)state;
	id_with_cpl(&id, 3);
	ip4(&ma, 8, 8, 8, 8);
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 5, NULL, 0), 0);
	used = rt.used;
	assert_int_equal(kw_kad_rt_remove(&rt, &id), 0);
	assert_null(kw_kad_rt_find(&rt, &id));
	assert_int_equal(kw_kad_rt_size(&rt), 0);
	assert_int_equal(rt.used, used - 1);
	assert_int_equal(kw_kad_rt_remove(&rt, &id), -KW_ENOENT);
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 9, NULL, 0), 0);
	e = kw_kad_rt_find(&rt, &id);
	assert_non_null(e);
	assert_int_equal(e->last_seen_ms, 9);
	assert_int_equal(e->naddrs, 1);
	assert_memory_equal(e->addrs[0].bytes, ma.bytes, ma.len);
	assert_int_equal(kw_kad_rt_useful(&rt, &id, 11), 0);
	assert_int_equal(e->last_useful_ms, 11);
	/* Seen again: updated, not duplicated. */
	assert_int_equal(kw_kad_rt_add(&rt, &id, &ma, 1, 12, NULL, 0), 0);
	assert_int_equal(kw_kad_rt_size(&rt), 1);
	assert_int_equal(rt.stats.updated, 1);
}

/* kw_kad_rt_answered = "add unless a member, then mark useful", with the caller's key. */
static void test_kad_rt_answered_adds_newcomer_and_marks_it_useful(void **state)
{
	struct kw_peer_id id;
	struct kw_multiaddr ma;
	uint8_t key[KW_KAD_RT_KEY_BYTES];
	const struct kw_kad_rt_entry *e;

	(void)state;
	id_with_cpl(&id, 4);
	ip4(&ma, 8, 8, 4, 4);
	assert_int_equal(kw_kad_rt_key(&id, key), 0);
	assert_int_equal(kw_kad_rt_answered(&rt, &id, key, &ma, 1, 20), 0);
	e = kw_kad_rt_find(&rt, &id);
	assert_non_null(e);
	assert_int_equal(e->last_seen_ms, 20);
	assert_int_equal(e->last_useful_ms, 20);
	assert_int_equal(e->naddrs, 1);
	assert_int_equal(rt.stats.added, 1);
}

static void test_kad_rt_answered_member_keeps_addresses_and_gets_useful_time(void **state)
{
	struct kw_peer_id id;
	struct kw_multiaddr a, b;
	uint8_t key[KW_KAD_RT_KEY_BYTES];
	const struct kw_kad_rt_entry *e;

	(void)state;
	id_with_cpl(&id, 2);
	ip4(&a, 8, 8, 4, 4);
	ip4(&b, 9, 9, 9, 9);
	assert_int_equal(kw_kad_rt_add(&rt, &id, &a, 1, 5, NULL, 0), 0);
	assert_int_equal(kw_kad_rt_key(&id, key), 0);
	assert_int_equal(kw_kad_rt_answered(&rt, &id, key, &b, 1, 30), 0);
	e = kw_kad_rt_find(&rt, &id);
	assert_non_null(e);
	/* as kw_kad_rt_find + kw_kad_rt_useful: a member is not re-added (nor re-addressed) */
	assert_int_equal(e->last_seen_ms, 5);
	assert_memory_equal(e->addrs[0].bytes, a.bytes, a.len);
	assert_int_equal(e->last_useful_ms, 30);
	assert_int_equal(rt.stats.updated, 0);
	assert_int_equal(kw_kad_rt_size(&rt), 1);
}

static void test_kad_rt_answered_refuses_own_and_empty_ids(void **state)
{
	struct kw_peer_id empty = { .len = 0 };
	uint8_t key[KW_KAD_RT_KEY_BYTES] = { 0 };

	(void)state;
	assert_int_equal(kw_kad_rt_answered(&rt, &empty, key, NULL, 0, 1), -KW_EINVAL);
	assert_int_equal(kw_kad_rt_answered(&rt, &self, rt.self_key, NULL, 0, 1), -KW_EINVAL);
	assert_int_equal(kw_kad_rt_size(&rt), 0);
}

static void test_kad_rt_refresh_due_lists_stale_buckets(void **state)
{
	struct kw_kad_rt_cfg cfg = { .self = &self, .max_entries = 16, .ping_cb = on_ping,
				     .refresh_ms = 1000 };
	struct kw_peer_id id;
	uint8_t due[KW_KAD_RT_BUCKETS];

	(void)state;
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_kad_rt_init(&rt, &arena, &cfg), 0);
	id_with_cpl(&id, 3);
	assert_int_equal(kw_kad_rt_add(&rt, &id, NULL, 0, 1, NULL, 0), 0);
	assert_int_equal(kw_kad_rt_refresh_due(&rt, 5000, due, sizeof(due)), 4);  /* CPL 0..3 */
	for (unsigned c = 0; c < 4; c++)
		kw_kad_rt_queried(&rt, c, 5000);
	kw_kad_rt_queried(&rt, 1, 5600);
	assert_int_equal(kw_kad_rt_refresh_due(&rt, 5999, due, sizeof(due)), 0);
	assert_int_equal(kw_kad_rt_refresh_due(&rt, 6000, due, sizeof(due)), 3);
	assert_int_equal(due[0], 0);
	assert_int_equal(due[1], 2);
	assert_int_equal(due[2], 3);
	assert_int_equal(kw_kad_rt_refresh_due(&rt, 6000, due, 1), 3);  /* count beyond cap */
	/* Default interval: 10 minutes. */
	cfg.refresh_ms = 0;
	assert_int_equal(kw_kad_rt_init(&rt, &arena, &cfg), 0);
	assert_int_equal(rt.refresh_ms, 600000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_kad_rt_bucket_index_is_cpl, setup),
		cmocka_unit_test_setup(test_kad_rt_nearest_matches_brute_force, setup),
		cmocka_unit_test_setup(test_kad_rt_nearest_matches_full_sort_for_targets_in_every_bucket, setup),
		cmocka_unit_test_setup(test_kad_rt_full_bucket_caches_and_asks_liveness, setup),
		cmocka_unit_test_setup(test_kad_rt_dead_member_promotes_newest_candidate, setup),
		cmocka_unit_test_setup(test_kad_rt_alive_member_stays, setup),
		cmocka_unit_test_setup(test_kad_rt_diversity_bucket_limit, setup),
		cmocka_unit_test_setup(test_kad_rt_diversity_table_limit, setup),
		cmocka_unit_test_setup(test_kad_rt_private_and_loopback_exempt, setup),
		cmocka_unit_test_setup(test_kad_rt_pool_exhausted_is_an_error, setup),
		cmocka_unit_test_setup(test_kad_rt_answered_adds_newcomer_and_marks_it_useful, setup),
		cmocka_unit_test_setup(test_kad_rt_answered_member_keeps_addresses_and_gets_useful_time, setup),
		cmocka_unit_test_setup(test_kad_rt_answered_refuses_own_and_empty_ids, setup),
		cmocka_unit_test_setup(test_kad_rt_remove_and_readd, setup),
		cmocka_unit_test_setup(test_kad_rt_refresh_due_lists_stale_buckets, setup),
		cmocka_unit_test_setup(test_kad_rt_failed_keeps_the_last_working_member, setup),
		cmocka_unit_test_setup(test_kad_rt_failed_member_with_a_replacement_goes, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
