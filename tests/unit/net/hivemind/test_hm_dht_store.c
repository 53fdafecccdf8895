/*
 * Hivemind DHT record storage (net/hivemind/dht_store.c) against hivemind
 * `hivemind/utils/timed_storage.py` and `hivemind/dht/storage.py` @ 4bd43b7: strictly newer
 * expiration wins, subkey dictionaries and their merge, expiry, the cache tier, the bounds;
 * and the DictionaryDHTValue bytes of a Petals block record (one ServerInfo entry).
 */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/msgpack.h>

static const char dict_hex[] =
	"c801845093cb7ff0000000000000cb41d954fc7c0000009193d934313244334b6f6f574134586f70314a6154"
	"334d487877594d6b436570597376346950566f704d5877437a35694859644266655342c5012dc80129409302"
	"cb40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075626c69635f6e61"
	"6d65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b5f727073cb408f40"
	"0000000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63655f727073cb4072c0"
	"0000000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61743136aa7175616e745f"
	"74797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e735f6c656674ce00010000"
	"aa6e6578745f70696e677381d934313244334b6f6f574134586f70314a6154334d487877594d6b4365705973"
	"76346950566f704d5877437a35694859644266655342cb3f8999999999999acb41d954fc7c000000";

static uint8_t mem[1 << 21];
static struct kw_arena arena;
static struct kw_hm_store st;
static struct kw_hm_dhtid key = { { 0x9b, 0x14 } }, key2 = { { 0x11 } };
static struct kw_hm_store_found f;
static const uint8_t sub_a[] = { 0xa1, 'a' }, sub_b[] = { 0xa1, 'b' };
static uint8_t vec[1024], out[1 << 12];
static size_t vec_len;

static void init(uint32_t cells, uint32_t cell_bytes, uint32_t dict_max, bool evict)
{
	kw_arena_init(&arena, mem, sizeof(mem));
	assert_int_equal(kw_hm_store_init(&st, cells, cell_bytes, dict_max, evict, &arena), 0);
}

static int setup(void **state)
{
	(void)state;
	init(32, 512, 8, false);
	return 0;
}

static int reset(void **state)
{
	return setup(state);
}

static int put(const char *v, double exp, double now)
{
	return kw_hm_store_put(&st, &key, (const uint8_t *)v, strlen(v), exp, now);
}

static int put_sub(const uint8_t *sub, const char *v, double exp, double now)
{
	return kw_hm_store_put_subkey(&st, &key, sub, 2, (const uint8_t *)v, strlen(v), exp, now);
}

static void assert_value(const char *v, double exp, double now)
{
	assert_int_equal(kw_hm_store_get(&st, &key, now, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(f.len, strlen(v));
	assert_memory_equal(f.value, v, f.len);
	assert_true(f.expiration == exp);
}

static void test_hm_store_plain_value_is_found_until_it_expires(void **state)
{
	(void)state;
	assert_int_equal(put("x", 110.0, 100.0), 1);
	assert_value("x", 110.0, 100.0);
	assert_value("x", 110.0, 110.0);                 /* exp == now: still there */
	assert_int_equal(kw_hm_store_get(&st, &key, 110.5, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_NOT_FOUND);
	assert_int_equal(st.stats.expired, 1);
	assert_int_equal(kw_hm_store_count(&st, 110.5), 0);
}

static void test_hm_store_equal_expiration_does_not_overwrite(void **state)
{
	(void)state;
	assert_int_equal(put("first", 200.0, 100.0), 1);
	assert_int_equal(put("second", 200.0, 100.0), 0);
	assert_value("first", 200.0, 100.0);
}

static void test_hm_store_older_expiration_is_refused_newer_replaces(void **state)
{
	(void)state;
	assert_int_equal(put("a", 200.0, 100.0), 1);
	assert_int_equal(put("older", 150.0, 100.0), 0);
	assert_value("a", 200.0, 100.0);
	assert_int_equal(put("newer", 200.5, 100.0), 1);
	assert_value("newer", 200.5, 100.0);
	/* the refused older store did not shorten the record's life (hivemind quirk avoided) */
	assert_value("newer", 200.5, 180.0);
}

static void test_hm_store_past_expiration_is_refused_now_is_accepted(void **state)
{
	(void)state;
	assert_int_equal(put("late", 99.999, 100.0), 0);
	assert_int_equal(put("far past", -1e300, 100.0), 0);
	assert_int_equal(put("-inf", -INFINITY, 100.0), 0);
	assert_int_equal(st.stats.rejected_expired, 3);
	assert_int_equal(put("now", 100.0, 100.0), 1);
}

static void test_hm_store_infinite_expiration_never_expires_nan_is_refused(void **state)
{
	(void)state;
	assert_int_equal(put("nan", NAN, 100.0), -KW_EINVAL);
	assert_int_equal(kw_hm_store_get(&st, &key, 100.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_NOT_FOUND);
	assert_int_equal(put("forever", INFINITY, 100.0), 1);
	assert_value("forever", INFINITY, 1e300);
	assert_int_equal(put("x", 1e308, 100.0), 0);     /* nothing is newer than +inf */
	assert_int_equal(put("x", INFINITY, 100.0), 0);
}

static void test_hm_store_subkeys_merge_in_insertion_order(void **state)
{
	const uint8_t *sk, *v;
	size_t sl, vl;
	double e;

	(void)state;
	assert_int_equal(put_sub(sub_b, "B", 150.0, 100.0), 1);
	assert_int_equal(put_sub(sub_a, "A", 140.0, 100.0), 1);
	assert_int_equal(kw_hm_store_get(&st, &key, 100.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_int_equal(f.n_subkeys, 2);
	assert_true(f.expiration == 150.0);   /* outer = latest, not lowered by an earlier one */
	assert_int_equal(kw_hm_store_get_subkey(&st, &key, 0, 100.0, &sk, &sl, &v, &vl, &e), 0);
	assert_memory_equal(sk, sub_b, 2);
	assert_memory_equal(v, "B", 1);
	assert_true(e == 150.0);
	assert_int_equal(kw_hm_store_get_subkey(&st, &key, 1, 100.0, &sk, &sl, &v, &vl, &e), 0);
	assert_memory_equal(sk, sub_a, 2);
}

static void test_hm_store_subkey_rule_is_strictly_newer_and_keeps_position(void **state)
{
	const uint8_t *sk, *v;
	size_t sl, vl;
	double e;

	(void)state;
	assert_int_equal(put_sub(sub_a, "A1", 150.0, 100.0), 1);
	assert_int_equal(put_sub(sub_b, "B1", 150.0, 100.0), 1);
	assert_int_equal(put_sub(sub_a, "A2", 150.0, 100.0), 0);   /* equal */
	assert_int_equal(put_sub(sub_a, "A0", 120.0, 100.0), 0);   /* older */
	assert_int_equal(put_sub(sub_a, "A3", 160.0, 100.0), 1);   /* newer */
	assert_int_equal(kw_hm_store_get_subkey(&st, &key, 0, 100.0, &sk, &sl, &v, &vl, &e), 0);
	assert_memory_equal(sk, sub_a, 2);
	assert_memory_equal(v, "A3", 2);
	assert_true(e == 160.0);
	assert_int_equal(kw_hm_store_get(&st, &key, 100.0, &f), 0);
	assert_true(f.expiration == 160.0);                         /* outer refreshed */
}

static void test_hm_store_expired_subkey_dropped_dictionary_stays(void **state)
{
	(void)state;
	assert_int_equal(put_sub(sub_a, "A", 120.0, 100.0), 1);
	assert_int_equal(put_sub(sub_b, "B", 150.0, 100.0), 1);
	assert_int_equal(kw_hm_store_get(&st, &key, 130.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_int_equal(f.n_subkeys, 1);
	assert_int_equal(kw_hm_store_get(&st, &key, 151.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_NOT_FOUND);
	assert_int_equal(st.used, 0);                                /* every cell back */
}

static void test_hm_store_plain_and_dictionary_replace_each_other_by_expiration(void **state)
{
	(void)state;
	assert_int_equal(put("plain", 150.0, 100.0), 1);
	assert_int_equal(put_sub(sub_a, "A", 150.0, 100.0), 0);    /* not later than plain */
	assert_int_equal(put_sub(sub_a, "A", 151.0, 100.0), 1);    /* later: dict replaces */
	assert_int_equal(kw_hm_store_get(&st, &key, 100.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_int_equal(put("plain2", 151.0, 100.0), 0);          /* equal to the dict's */
	assert_int_equal(put("plain3", 152.0, 100.0), 1);          /* later plain replaces it */
	assert_value("plain3", 152.0, 100.0);
	assert_int_equal(st.used, 1);
}

static void test_hm_store_dictionary_packs_as_vector_11d(void **state)
{
	static const double exp = 1700000240.0, now = 1700000000.0;
	int n = test_unhex(dict_hex, vec, sizeof(vec));
	struct kw_hm_store_found g;
	long w;

	(void)state;
	assert_true(n > 0);
	vec_len = (size_t)n;
	/* entry: subkey at 25 (str8, 54 bytes), value bin16 at 79 (301 bytes), exp at end */
	assert_int_equal(vec[25], 0xd9);
	assert_int_equal(vec[79], 0xc5);
	init(32, 512, 8, false);
	assert_int_equal(kw_hm_store_put_subkey(&st, &key, vec + 25, 54, vec + 82, 301, exp, now),
			 1);
	w = kw_hm_store_pack_dict(&st, &key, now, out, sizeof(out));
	assert_int_equal(w, (long)vec_len);
	assert_memory_equal(out, vec, vec_len);
	/* and the vector stored whole (subkey IS_DICTIONARY) gives the same record */
	init(32, 512, 8, false);
	assert_int_equal(kw_hm_store_put_dict(&st, &key, vec, vec_len, now, NULL), 1);
	assert_int_equal(kw_hm_store_get(&st, &key, now, &g), 0);
	assert_int_equal(g.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_true(g.expiration == exp);
	assert_int_equal(kw_hm_store_pack_dict(&st, &key, now, out, sizeof(out)), (long)vec_len);
	assert_memory_equal(out, vec, vec_len);
	assert_int_equal(kw_hm_store_pack_dict(&st, &key2, now, out, sizeof(out)), -KW_ENOENT);
	assert_int_equal(kw_hm_store_pack_dict(&st, &key, now, out, 100), -KW_ENOSPC);
}

/* ext 0x50 ([inf, latest, [[subkey int i, bin "v", exp_i]...]]) of n entries */
static size_t make_dict(uint8_t *buf, size_t cap, uint32_t n, const double *exps)
{
	struct kw_mp_writer w;
	size_t mark;
	long len;

	kw_mp_writer_init(&w, buf, cap);
	kw_mp_put_ext_begin(&w, 0x50, &mark);
	kw_mp_put_array(&w, 3);
	kw_mp_put_float64(&w, INFINITY);
	kw_mp_put_float64(&w, 500.0);
	kw_mp_put_array(&w, n);
	for (uint32_t i = 0; i < n; i++) {
		kw_mp_put_array(&w, 3);
		kw_mp_put_uint(&w, i);
		kw_mp_put_bin(&w, (const uint8_t *)"v", 1);
		kw_mp_put_float64(&w, exps ? exps[i] : 500.0);
	}
	kw_mp_put_ext_end(&w, mark);
	len = kw_mp_writer_finish(&w);
	assert_true(len > 0);
	return (size_t)len;
}

static uint8_t big[100000 * 20 + 64];

static void test_hm_store_dictionary_of_100000_subkeys_is_refused(void **state)
{
	size_t n = make_dict(big, sizeof(big), 100000, NULL);
	const char *why = NULL;

	(void)state;
	/* refused by whichever bound trips first: KW_NET_MSGPACK_MAX_BYTES or _MAX_COUNT of the
	 * reader, or our DICT_MAX */
	assert_int_equal(kw_hm_store_put_dict(&st, &key, big, n, 100.0, &why), -KW_ELIMIT);
	assert_non_null(strstr(why, "dictionary "));
	assert_non_null(strstr(why, "than KW_NET_"));
	assert_int_equal(kw_hm_store_count(&st, 100.0), 0);
	/* just above our own dict_max (8) */
	n = make_dict(big, sizeof(big), 9, NULL);
	assert_int_equal(kw_hm_store_put_dict(&st, &key, big, n, 100.0, &why), -KW_ELIMIT);
	assert_string_equal(why, "dictionary holds more subkeys than KW_NET_HIVEMIND_DHT_DICT_MAX");
	assert_int_equal(kw_hm_store_count(&st, 100.0), 0);
	n = make_dict(big, sizeof(big), 8, NULL);
	assert_int_equal(kw_hm_store_put_dict(&st, &key, big, n, 100.0, &why), 1);
}

static void test_hm_store_new_subkey_beyond_dict_max_is_limit(void **state)
{
	uint8_t sub[2] = { 0xa1, 0 };

	(void)state;
	for (int i = 0; i < 8; i++) {
		sub[1] = (uint8_t)('a' + i);
		assert_int_equal(put_sub(sub, "v", 150.0, 100.0), 1);
	}
	sub[1] = 'z';
	assert_int_equal(put_sub(sub, "v", 150.0, 100.0), -KW_ELIMIT);
	assert_int_equal(st.stats.dict_full, 1);
	sub[1] = 'a';
	assert_int_equal(put_sub(sub, "w", 151.0, 100.0), 1);      /* updates still work */
}

static void test_hm_store_whole_dictionary_skips_expired_and_stops_at_refusal(void **state)
{
	double exps[4] = { 50.0, 300.0, 200.0, 400.0 };
	uint8_t sub2[1] = { 0x02 };
	size_t n = make_dict(big, sizeof(big), 4, exps);

	(void)state;
	/* subkey 2 already newer here: entry 2 is refused, entry 3 never tried */
	assert_int_equal(kw_hm_store_put_subkey(&st, &key, sub2, 1, (const uint8_t *)"x", 1,
						250.0, 100.0), 1);
	assert_int_equal(kw_hm_store_put_dict(&st, &key, big, n, 100.0, NULL), 0);
	assert_int_equal(kw_hm_store_get(&st, &key, 100.0, &f), 0);
	assert_int_equal(f.n_subkeys, 2);       /* 2 (ours) and 1; 0 expired, 3 not reached */
	assert_true(f.expiration == 300.0);
}

static void test_hm_store_malformed_dictionaries_are_named(void **state)
{
	static const struct { const char *hex, *why; } v[] = {
		{ "c0", "not a DictionaryDHTValue (ext 0x50)" },
		{ "d44090", "not a DictionaryDHTValue (ext 0x50)" },        /* a tuple */
		{ "d55091c0", "DictionaryDHTValue is not [maxsize, latest, items]" },
		{ "d65093c0c0c0", "DictionaryDHTValue items are not a list" },
		{ "d7509300009193000000", "dictionary value is not bin" },
		{ "c70b509300009193910000c4017601",
		  "dictionary subkey is a list or map (unhashable in Python)" },
		{ "c70b509300009193a178c40176c0", "dictionary expiration is not a number" },
		{ "c70b509300009193a178c4017601c0", "bytes after the DictionaryDHTValue" },
		{ "c70c509300009193a178c4017601", NULL },                 /* ext cut short */
	};
	uint8_t b[64];
	const char *why;
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = test_unhex(v[i].hex, b, sizeof(b));
		assert_true(n > 0);
		why = NULL;
		assert_int_equal(kw_hm_store_put_dict(&st, &key, b, (size_t)n, 100.0, &why),
				 -KW_EBADMSG);
		assert_non_null(why);
		assert_true(why[0] != 0);
		if (v[i].why)
			assert_string_equal(why, v[i].why);
	}
	assert_int_equal(kw_hm_store_count(&st, 100.0), 0);
}

static void test_hm_store_value_larger_than_a_cell_is_refused(void **state)
{
	static uint8_t v[600];

	(void)state;
	assert_int_equal(kw_hm_store_put(&st, &key, v, sizeof(v), 150.0, 100.0), -KW_EMSGSIZE);
	assert_int_equal(kw_hm_store_put_subkey(&st, &key, sub_a, 2, v, 511, 150.0, 100.0),
			 -KW_EMSGSIZE);
	assert_int_equal(kw_hm_store_put_subkey(&st, &key, sub_a, 2, v, 510, 150.0, 100.0), 1);
	assert_int_equal(st.stats.too_large, 2);
}

static void test_hm_store_main_tier_full_refuses_without_evicting(void **state)
{
	struct kw_hm_dhtid k;

	(void)state;
	init(8, 64, 8, false);
	memset(&k, 0, sizeof(k));
	for (uint8_t i = 0; i < 8; i++) {
		k.b[0] = i;
		assert_int_equal(kw_hm_store_put(&st, &k, (const uint8_t *)"v", 1, 150.0 + i, 100.0),
				 1);
	}
	k.b[0] = 99;
	assert_int_equal(kw_hm_store_put(&st, &k, (const uint8_t *)"v", 1, 500.0, 100.0),
			 -KW_ENOSPC);
	assert_int_equal(st.stats.full, 1);
	assert_int_equal(kw_hm_store_count(&st, 100.0), 8);
	/* room comes back when records expire */
	assert_int_equal(kw_hm_store_put(&st, &k, (const uint8_t *)"v", 1, 500.0, 150.5), 1);
}

static void test_hm_store_cache_tier_evicts_earliest_expiring(void **state)
{
	struct kw_hm_dhtid k;

	(void)state;
	init(8, 64, 8, true);
	memset(&k, 0, sizeof(k));
	for (uint8_t i = 0; i < 8; i++) {
		k.b[0] = i;
		assert_int_equal(kw_hm_store_put(&st, &k, (const uint8_t *)"v", 1,
						 i == 3 ? 120.0 : 150.0 + i, 100.0), 1);
	}
	k.b[0] = 99;
	assert_int_equal(kw_hm_store_put(&st, &k, (const uint8_t *)"v", 1, 500.0, 100.0), 1);
	assert_int_equal(st.stats.evicted, 1);
	k.b[0] = 3;                               /* the earliest-expiring one went */
	assert_int_equal(kw_hm_store_get(&st, &k, 100.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_NOT_FOUND);
	k.b[0] = 0;
	assert_int_equal(kw_hm_store_get(&st, &k, 100.0, &f), 0);
	assert_int_equal(f.type, KW_HM_DHT_FOUND_REGULAR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hm_store_plain_value_is_found_until_it_expires, reset),
		cmocka_unit_test_setup(test_hm_store_equal_expiration_does_not_overwrite, reset),
		cmocka_unit_test_setup(test_hm_store_older_expiration_is_refused_newer_replaces, reset),
		cmocka_unit_test_setup(test_hm_store_past_expiration_is_refused_now_is_accepted, reset),
		cmocka_unit_test_setup(test_hm_store_infinite_expiration_never_expires_nan_is_refused,
				       reset),
		cmocka_unit_test_setup(test_hm_store_subkeys_merge_in_insertion_order, reset),
		cmocka_unit_test_setup(test_hm_store_subkey_rule_is_strictly_newer_and_keeps_position,
				       reset),
		cmocka_unit_test_setup(test_hm_store_expired_subkey_dropped_dictionary_stays, reset),
		cmocka_unit_test_setup(test_hm_store_plain_and_dictionary_replace_each_other_by_expiration,
				       reset),
		cmocka_unit_test_setup(test_hm_store_dictionary_packs_as_vector_11d, reset),
		cmocka_unit_test_setup(test_hm_store_dictionary_of_100000_subkeys_is_refused, reset),
		cmocka_unit_test_setup(test_hm_store_new_subkey_beyond_dict_max_is_limit, reset),
		cmocka_unit_test_setup(test_hm_store_whole_dictionary_skips_expired_and_stops_at_refusal,
				       reset),
		cmocka_unit_test_setup(test_hm_store_malformed_dictionaries_are_named, reset),
		cmocka_unit_test_setup(test_hm_store_value_larger_than_a_cell_is_refused, reset),
		cmocka_unit_test_setup(test_hm_store_main_tier_full_refuses_without_evicting, reset),
		cmocka_unit_test_setup(test_hm_store_cache_tier_evicts_earliest_expiring, reset),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
