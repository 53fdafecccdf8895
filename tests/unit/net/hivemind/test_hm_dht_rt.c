/*
 * Hivemind DHT ids, routing table and blacklist (net/hivemind/dht_rt.c) against the rules
 * of hivemind `hivemind/dht/routing.py` and `hivemind/dht/node.py` @ 4bd43b7: DHTID =
 * SHA-1(msgpack(key)) (Petals, MoE and averaging keys), bucket_size and depth_modulo split rule, replacements
 * and the least-recently-updated node to ping, nearest neighbours, blacklist backoff.
 */
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>

static uint8_t mem[1 << 20];
static struct kw_arena arena;
static struct kw_hm_rt rt;
static struct kw_hm_dhtid self0;   /* all zero */
static const uint8_t peer_x[3] = { 0x00, 0x01, 0x07 };

static int setup(void **state)
{
	(void)state;
	kw_arena_init(&arena, mem, sizeof(mem));
	memset(&self0, 0, sizeof(self0));
	return 0;
}

static void rt_init(uint32_t k, uint32_t nodes, uint32_t buckets, uint32_t repl)
{
	struct kw_hm_rt_limits l = { k, 5, nodes, buckets, repl };

	kw_arena_init(&arena, mem, sizeof(mem));
	assert_int_equal(kw_hm_rt_init(&rt, &self0, &l, &arena), 0);
}

/* An id with the given first byte and a counter in the last two bytes. */
static struct kw_hm_dhtid idn(uint8_t top, uint16_t n)
{
	struct kw_hm_dhtid id;

	memset(&id, 0x5a, sizeof(id));
	id.b[0] = top;
	id.b[18] = (uint8_t)(n >> 8);
	id.b[19] = (uint8_t)n;
	return id;
}

static void assert_id_hex(const struct kw_hm_dhtid *id, const char *hex)
{
	uint8_t want[20];

	assert_int_equal(test_unhex(hex, want, 20), 20);
	assert_memory_equal(id->b, want, 20);
}

static void test_hm_dhtid_of_str_keys_matches_vectors(void **state)
{
	static const struct { const char *key, *id; } v[] = {
		{ "_petals.models", "0a63ed21831f3f7d24f07949cea69a94476b4faf" },
		{ "Meta-Llama-3-1-405B-Instruct-hf.0", "9b14d861b958d4bf27a484d3361000dfb86d791f" },
		{ "Meta-Llama-3-1-405B-Instruct-hf.1", "d01bfd81684162f44bf8066dad4c04e96f484a98" },
		{ "ffn.3.", "f22d3a4c90e9c49387252b2e821fa2688bcaa636" },
		{ "ffn.3.7", "6edf9575340a80d07e829b7765c07af86135d423" },
		{ "my_averager.0b", "513dc326ad03ea33d517bf334762644d37a52a9f" },
		{ "my_averager.all_averagers", "df6c8e116b93edb2b081716b00aa7f00f30e1ef2" },
		{ "abc", "509d4b810521ab3990c77e3b9a4600e0ba51d1ef" },
	};
	struct kw_hm_dhtid id;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(kw_hm_dhtid_of_str(v[i].key, strlen(v[i].key), &id), 0);
		assert_id_hex(&id, v[i].id);
	}
}

static void test_hm_dhtid_of_bytes_key_hashes_the_raw_bytes(void **state)
{
	struct kw_hm_dhtid id;

	(void)state;
	kw_hm_dhtid_hash((const uint8_t *)"abc", 3, &id);
	assert_id_hex(&id, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_int_equal(kw_hm_dhtid_of_str("\xff", 1, &id), -KW_EINVAL);   /* not UTF-8 */
}

static void test_hm_dhtid_from_bytes_pads_short_and_refuses_long(void **state)
{
	static const uint8_t b[21] = { 1, 2, 3 };
	struct kw_hm_dhtid id;

	(void)state;
	assert_int_equal(kw_hm_dhtid_from_bytes(b, 3, &id), 0);
	assert_int_equal(id.b[17], 1);
	assert_int_equal(id.b[19], 3);
	assert_int_equal(id.b[0], 0);
	assert_int_equal(kw_hm_dhtid_from_bytes(b, 0, &id), 0);
	assert_int_equal(kw_hm_dhtid_cmp(&id, &self0), 0);
	assert_int_equal(kw_hm_dhtid_from_bytes(b, 21, &id), -KW_ERANGE);
}

static void test_hm_dhtid_xor_distance_orders_by_common_prefix(void **state)
{
	struct kw_hm_dhtid q = idn(0x80, 0), a = idn(0x81, 0), b = idn(0x40, 0), x;

	(void)state;
	kw_hm_dhtid_xor(&q, &a, &x);
	assert_int_equal(x.b[0], 0x01);
	assert_int_equal(x.b[5], 0);
	assert_true(kw_hm_dhtid_dist_cmp(&q, &a, &b) < 0);
	assert_true(kw_hm_dhtid_dist_cmp(&q, &b, &a) > 0);
	assert_int_equal(kw_hm_dhtid_dist_cmp(&q, &a, &a), 0);
}

static void test_hm_dhtid_random_ids_differ(void **state)
{
	struct kw_hm_dhtid a, b;

	(void)state;
	assert_int_equal(kw_hm_dhtid_random(&a), 0);
	assert_int_equal(kw_hm_dhtid_random(&b), 0);
	assert_int_not_equal(kw_hm_dhtid_cmp(&a, &b), 0);
}

static void test_hm_rt_bucket_holds_k_nodes_before_splitting(void **state)
{
	struct kw_hm_dhtid id;

	(void)state;
	rt_init(20, 256, 64, 20);
	for (uint16_t i = 0; i < 20; i++) {
		id = idn((uint8_t)(i * 12), i);
		assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	}
	assert_int_equal(kw_hm_rt_bucket_count(&rt), 1);
	/* the 21st splits the root (it holds our own id): no replacement */
	id = idn(0xff, 99);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	assert_true(kw_hm_rt_bucket_count(&rt) >= 2);
	assert_false(kw_hm_rt_is_replacement(&rt, &id));
}

static void test_hm_rt_buckets_cover_their_nodes_after_splits(void **state)
{
	struct kw_hm_dhtid id, lower, next;
	uint32_t depth, main, repl, total = 0;

	(void)state;
	rt_init(4, 512, 256, 4);
	for (uint16_t i = 0; i < 300; i++) {
		kw_hm_dhtid_hash((const uint8_t *)&i, sizeof(i), &id);
		(void)kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL);
	}
	assert_true(kw_hm_rt_bucket_count(&rt) > 4);
	for (uint32_t i = 0; i < kw_hm_rt_bucket_count(&rt); i++) {
		assert_int_equal(kw_hm_rt_bucket_info(&rt, i, &lower, &depth, &main, &repl), 0);
		assert_true(main <= 4 && repl <= 4);
		total += main;
		if (i + 1 < kw_hm_rt_bucket_count(&rt)) {
			/* ranges are contiguous: lower + 2^(160 - depth) is the next lower */
			assert_int_equal(kw_hm_rt_bucket_info(&rt, i + 1, &next, NULL, NULL, NULL), 0);
			assert_true(kw_hm_dhtid_cmp(&lower, &next) < 0);
		}
	}
	assert_int_equal(kw_hm_rt_bucket_info(&rt, 0, &lower, NULL, NULL, NULL), 0);
	assert_int_equal(kw_hm_dhtid_cmp(&lower, &self0), 0);
	assert_true(total >= 4 * 5);
}

/* Ids starting 11111...: the buckets away from our id (0) split down to depth 5, where
 * 5 % depth_modulo == 0 stops them. */
static void fill_depth5(uint32_t k)
{
	struct kw_hm_dhtid id;

	rt_init(k, 256, 64, 3);
	for (uint16_t i = 0; i < k; i++) {
		id = idn(0xf8, i);
		assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	}
}

static void test_hm_rt_full_bucket_at_depth_modulo_keeps_replacement_and_asks_ping(void **state)
{
	struct kw_hm_dht_contact ping;
	struct kw_hm_dhtid id = idn(0xf8, 100), first = idn(0xf8, 0), second = idn(0xf8, 1);
	uint32_t depth, main, repl;

	(void)state;
	fill_depth5(4);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 2.0, &ping), 1);
	assert_true(kw_hm_rt_is_replacement(&rt, &id));
	assert_int_equal(kw_hm_dhtid_cmp(&ping.id, &first), 0);   /* least recently updated */
	/* [0] [10] [110] [1110] [11110] [11111]: split down to depth 5 and no further */
	assert_int_equal(kw_hm_rt_bucket_count(&rt), 6);
	assert_int_equal(kw_hm_rt_bucket_info(&rt, kw_hm_rt_bucket_index(&rt, &id), NULL, &depth,
					      &main, &repl), 0);
	assert_int_equal(depth, 5);
	assert_int_equal(main, 4);
	assert_int_equal(repl, 1);
	/* the next full add asks for the next node: the first is already being pinged */
	id = idn(0xf8, 101);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 2.0, &ping), 1);
	assert_int_equal(kw_hm_dhtid_cmp(&ping.id, &second), 0);
}

static void test_hm_rt_update_moves_node_to_most_recent(void **state)
{
	struct kw_hm_dht_contact ping;
	struct kw_hm_dhtid id = idn(0xf8, 100), first = idn(0xf8, 0), second = idn(0xf8, 1);

	(void)state;
	fill_depth5(4);
	assert_int_equal(kw_hm_rt_add(&rt, &first, peer_x, 3, 2.0, NULL), 0);   /* refresh */
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 2.0, &ping), 1);
	assert_int_equal(kw_hm_dhtid_cmp(&ping.id, &second), 0);
}

static void test_hm_rt_split_happens_when_depth_is_not_a_multiple(void **state)
{
	struct kw_hm_dhtid id;

	(void)state;
	/* ids 1xxxxxxx: the right bucket at depth 1 (1 % 5 != 0) splits though it lacks our id */
	rt_init(2, 64, 64, 2);
	id = idn(0x80, 0);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	id = idn(0xc0, 0);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	id = idn(0x01, 0);     /* third: root splits into [0] and [1] */
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	assert_int_equal(kw_hm_rt_bucket_count(&rt), 2);
	id = idn(0xa0, 0);     /* [1] is full at depth 1: splits into [10] [11] */
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	assert_int_equal(kw_hm_rt_bucket_count(&rt), 3);
	assert_false(kw_hm_rt_is_replacement(&rt, &id));
}

static void test_hm_rt_remove_promotes_latest_replacement(void **state)
{
	struct kw_hm_dhtid r1 = idn(0xf8, 100), r2 = idn(0xf8, 101), first = idn(0xf8, 0);
	struct kw_hm_dht_contact c;

	(void)state;
	fill_depth5(4);
	assert_int_equal(kw_hm_rt_add(&rt, &r1, peer_x, 3, 2.0, NULL), 1);
	assert_int_equal(kw_hm_rt_add(&rt, &r2, peer_x, 3, 2.0, NULL), 1);
	assert_int_equal(kw_hm_rt_remove(&rt, &first), 0);
	assert_int_equal(kw_hm_rt_get_peer(&rt, &first, &c), -KW_ENOENT);
	assert_false(kw_hm_rt_is_replacement(&rt, &r2));   /* popitem(): the last added */
	assert_true(kw_hm_rt_is_replacement(&rt, &r1));
	assert_int_equal(kw_hm_rt_remove(&rt, &first), -KW_ENOENT);
}

static void test_hm_rt_replacements_are_bounded_oldest_dropped(void **state)
{
	struct kw_hm_dhtid id;
	struct kw_hm_dht_contact c;

	(void)state;
	fill_depth5(4);   /* 3 replacements per bucket */
	for (uint16_t i = 0; i < 5; i++) {
		id = idn(0xf8, (uint16_t)(100 + i));
		assert_true(kw_hm_rt_add(&rt, &id, peer_x, 3, 2.0, NULL) > 0);
	}
	id = idn(0xf8, 100);
	assert_int_equal(kw_hm_rt_get_peer(&rt, &id, &c), -KW_ENOENT);
	id = idn(0xf8, 101);
	assert_int_equal(kw_hm_rt_get_peer(&rt, &id, &c), -KW_ENOENT);
	id = idn(0xf8, 104);
	assert_int_equal(kw_hm_rt_get_peer(&rt, &id, &c), 0);
	assert_int_equal(rt.stats.replacements_dropped, 2);
}

static void test_hm_rt_nearest_equals_brute_force_and_excludes(void **state)
{
	struct kw_hm_dht_contact got[20], all[400];
	struct kw_hm_dhtid id, q, ex;
	size_t n, m = 0;

	(void)state;
	rt_init(20, 1024, 256, 20);
	for (uint16_t i = 0; i < 400; i++) {
		kw_hm_dhtid_hash((const uint8_t *)&i, sizeof(i), &id);
		(void)kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL);
	}
	/* brute force over the main nodes */
	for (uint16_t i = 0; i < 400; i++) {
		kw_hm_dhtid_hash((const uint8_t *)&i, sizeof(i), &id);
		if (kw_hm_rt_get_peer(&rt, &id, &all[m]) == 0 && !kw_hm_rt_is_replacement(&rt, &id))
			m++;
	}
	assert_true(m > 20);
	kw_hm_dhtid_of_str("abc", 3, &q);
	n = kw_hm_rt_nearest(&rt, &q, 20, NULL, got);
	assert_int_equal(n, 20);
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(kw_hm_dhtid_dist_cmp(&q, &got[i].id, &got[i + 1].id) < 0);
	for (size_t j = 0; j < m; j++) {
		bool listed = false;

		for (size_t i = 0; i < n; i++)
			listed |= !kw_hm_dhtid_cmp(&got[i].id, &all[j].id);
		if (!listed)
			assert_true(kw_hm_dhtid_dist_cmp(&q, &got[19].id, &all[j].id) < 0);
	}
	ex = got[0].id;
	n = kw_hm_rt_nearest(&rt, &q, 20, &ex, got);
	assert_int_equal(n, 20);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(kw_hm_dhtid_cmp(&got[i].id, &ex), 0);
}

static void test_hm_rt_full_pool_refuses_and_own_id_is_invalid(void **state)
{
	struct kw_hm_dhtid id;
	int r = 0;

	(void)state;
	rt_init(20, 32, 64, 20);
	for (uint16_t i = 0; i < 40 && r >= 0; i++) {
		kw_hm_dhtid_hash((const uint8_t *)&i, sizeof(i), &id);
		r = kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL);
	}
	assert_int_equal(r, -KW_ENOSPC);
	assert_int_equal(rt.stats.full, 1);
	assert_int_equal(kw_hm_rt_add(&rt, &self0, peer_x, 3, 1.0, NULL), -KW_EINVAL);
}

static void test_hm_rt_peer_lookups_both_ways(void **state)
{
	struct kw_hm_dhtid id = idn(0x33, 1), back;
	struct kw_hm_dht_contact c;

	(void)state;
	rt_init(20, 64, 64, 20);
	assert_int_equal(kw_hm_rt_add(&rt, &id, peer_x, 3, 1.0, NULL), 0);
	assert_int_equal(kw_hm_rt_get_peer(&rt, &id, &c), 0);
	assert_int_equal(c.peer_len, 3);
	assert_memory_equal(c.peer, peer_x, 3);
	assert_int_equal(kw_hm_rt_get_id(&rt, peer_x, 3, &back), 0);
	assert_int_equal(kw_hm_dhtid_cmp(&back, &id), 0);
	assert_int_equal(kw_hm_rt_get_id(&rt, peer_x, 2, &back), -KW_ENOENT);
}

static void test_hm_blacklist_backs_off_and_forgets_on_success(void **state)
{
	struct kw_hm_blacklist bl;

	(void)state;
	kw_arena_init(&arena, mem, sizeof(mem));
	assert_int_equal(kw_hm_bl_init(&bl, 4, 5.0, 2.0, &arena), 0);
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 0.0));
	kw_hm_bl_failure(&bl, peer_x, 3, 100.0);          /* 5 s */
	assert_true(kw_hm_bl_banned(&bl, peer_x, 3, 105.0));
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 105.5));
	kw_hm_bl_failure(&bl, peer_x, 3, 103.0);          /* still banned: not extended */
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 105.5));
	kw_hm_bl_failure(&bl, peer_x, 3, 200.0);          /* second ban: 10 s */
	assert_true(kw_hm_bl_banned(&bl, peer_x, 3, 210.0));
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 210.5));
	kw_hm_bl_failure(&bl, peer_x, 3, 300.0);          /* third: 20 s */
	assert_true(kw_hm_bl_banned(&bl, peer_x, 3, 320.0));
	kw_hm_bl_success(&bl, peer_x, 3);
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 301.0));
	kw_hm_bl_failure(&bl, peer_x, 3, 400.0);          /* counter reset: 5 s again */
	assert_false(kw_hm_bl_banned(&bl, peer_x, 3, 405.5));
}

static void test_hm_blacklist_reuses_the_entry_ending_first(void **state)
{
	struct kw_hm_blacklist bl;
	uint8_t p[4][2] = { { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 } };

	(void)state;
	kw_arena_init(&arena, mem, sizeof(mem));
	assert_int_equal(kw_hm_bl_init(&bl, 3, 5.0, 2.0, &arena), 0);
	kw_hm_bl_failure(&bl, p[0], 2, 10.0);
	kw_hm_bl_failure(&bl, p[1], 2, 1.0);    /* ends first */
	kw_hm_bl_failure(&bl, p[2], 2, 20.0);
	kw_hm_bl_failure(&bl, p[3], 2, 21.0);
	assert_true(kw_hm_bl_banned(&bl, p[3], 2, 22.0));
	assert_false(kw_hm_bl_banned(&bl, p[1], 2, 2.0));
	assert_true(kw_hm_bl_banned(&bl, p[0], 2, 12.0));
	assert_int_equal(kw_hm_bl_init(&bl, 3, 5.0, 0.5, &arena), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_dhtid_of_str_keys_matches_vectors),
		cmocka_unit_test(test_hm_dhtid_of_bytes_key_hashes_the_raw_bytes),
		cmocka_unit_test(test_hm_dhtid_from_bytes_pads_short_and_refuses_long),
		cmocka_unit_test(test_hm_dhtid_xor_distance_orders_by_common_prefix),
		cmocka_unit_test(test_hm_dhtid_random_ids_differ),
		cmocka_unit_test(test_hm_rt_bucket_holds_k_nodes_before_splitting),
		cmocka_unit_test(test_hm_rt_buckets_cover_their_nodes_after_splits),
		cmocka_unit_test(test_hm_rt_full_bucket_at_depth_modulo_keeps_replacement_and_asks_ping),
		cmocka_unit_test(test_hm_rt_update_moves_node_to_most_recent),
		cmocka_unit_test(test_hm_rt_split_happens_when_depth_is_not_a_multiple),
		cmocka_unit_test(test_hm_rt_remove_promotes_latest_replacement),
		cmocka_unit_test(test_hm_rt_replacements_are_bounded_oldest_dropped),
		cmocka_unit_test(test_hm_rt_nearest_equals_brute_force_and_excludes),
		cmocka_unit_test(test_hm_rt_full_pool_refuses_and_own_id_is_invalid),
		cmocka_unit_test(test_hm_rt_peer_lookups_both_ways),
		cmocka_unit_test(test_hm_blacklist_backs_off_and_forgets_on_success),
		cmocka_unit_test(test_hm_blacklist_reuses_the_entry_ending_first),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
