/* net/peer/multibase.c: base58btc, base32 and multihash framing. */
#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include <kw/err.h>
#include <kw/net/multibase.h>
#include <kw/rng.h>

static void test_base58_encodes_spec_peer_ids(void **state)
{
	uint8_t mh[64];
	char txt[128];
	int n = test_unhex(ED25519_PEER_MH, mh, sizeof(mh));

	assert_int_equal(kw_base58_encode(mh, (size_t)n, txt, sizeof(txt)),
			 (int)strlen(ED25519_PEER_B58));
	assert_string_equal(txt, ED25519_PEER_B58);
	n = test_unhex(RSA_PEER_MH, mh, sizeof(mh));
	kw_base58_encode(mh, (size_t)n, txt, sizeof(txt));
	assert_string_equal(txt, RSA_PEER_B58);
}

static void test_base58_leading_zero_bytes_become_ones(void **state)
{
	static const uint8_t in[] = { 0, 0, 0, 1 };
	uint8_t out[8];
	char txt[16];

	assert_int_equal(kw_base58_encode(in, sizeof(in), txt, sizeof(txt)), 4);
	assert_string_equal(txt, "1112");
	assert_int_equal(kw_base58_decode("1112", 4, out, sizeof(out)), 4);
	assert_memory_equal(out, in, 4);
	assert_int_equal(kw_base58_encode(in, 0, txt, sizeof(txt)), 0);
	assert_string_equal(txt, "");
}

static void test_base58_decodes_spec_peer_id(void **state)
{
	uint8_t want[64], got[64];
	int n = test_unhex(SECP_PEER_MH, want, sizeof(want));

	assert_int_equal(kw_base58_decode(SECP_PEER_B58, strlen(SECP_PEER_B58), got, sizeof(got)), n);
	assert_memory_equal(got, want, (size_t)n);
}

static void test_base58_rejects_bad_characters_and_sizes(void **state)
{
	uint8_t out[200];
	char big[KW_BASE58_MAX_CHARS + 2];
	char txt[8];

	assert_int_equal(kw_base58_decode("12D3Ko0W", 8, out, sizeof(out)), -KW_EINVAL);  /* 0 */
	assert_int_equal(kw_base58_decode("abcIl", 5, out, sizeof(out)), -KW_EINVAL);     /* I, l */
	assert_int_equal(kw_base58_decode("", 0, out, sizeof(out)), -KW_EINVAL);
	assert_int_equal(kw_base58_decode("zz\0z", 4, out, sizeof(out)), -KW_EINVAL);
	memset(big, 'z', sizeof(big));
	assert_int_equal(kw_base58_decode(big, sizeof(big) - 1, out, sizeof(out)), -KW_EMSGSIZE);
	assert_int_equal(kw_base58_decode(ED25519_PEER_B58, strlen(ED25519_PEER_B58), out, 10),
			 -KW_ENOSPC);
	assert_int_equal(kw_base58_encode(out, KW_BASE58_MAX_BYTES + 1, txt, sizeof(txt)),
			 -KW_EMSGSIZE);
	memset(out, 0xff, 8);
	assert_int_equal(kw_base58_encode(out, 8, txt, sizeof(txt)), -KW_ENOSPC);
}

static void test_base58_round_trips_random_bytes(void **state)
{
	struct kw_prng p;
	uint8_t in[KW_BASE58_MAX_BYTES], out[KW_BASE58_MAX_BYTES];
	char txt[KW_BASE58_MAX_CHARS + 1];

	kw_prng_seed(&p, 58);
	for (int iter = 0; iter < 200; iter++) {
		size_t len = (size_t)(kw_prng_next(&p) % sizeof(in));
		int n;

		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)(kw_prng_next(&p) >> 32);
		if (len > 0 && iter % 4 == 0)
			in[0] = 0;
		n = kw_base58_encode(in, len, txt, sizeof(txt));
		assert_true(n >= 0);
		assert_true((size_t)n <= KW_BASE58_MAX_CHARS);
		if (len == 0)
			continue;
		assert_int_equal(kw_base58_decode(txt, (size_t)n, out, sizeof(out)), (int)len);
		assert_memory_equal(in, out, len);
	}
}

static void test_base36_round_trips_and_keeps_leading_zeros(void **state)
{
	static const uint8_t in[] = { 0, 0, 0x01, 0x72, 0xff };
	uint8_t out[16];
	char txt[32];
	int n = kw_base36_encode(in, sizeof(in), txt, sizeof(txt));

	assert_true(n > 2);
	assert_int_equal(txt[0], '0');
	assert_int_equal(txt[1], '0');
	assert_int_not_equal(txt[2], '0');
	assert_int_equal(kw_base36_decode(txt, (size_t)n, out, sizeof(out)), (int)sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	/* 36^2 - 1 = 1295 = 0x050f is "zz". */
	assert_int_equal(kw_base36_decode("zz", 2, out, sizeof(out)), 2);
	assert_int_equal(out[0], 0x05);
	assert_int_equal(out[1], 0x0f);
	assert_int_equal(kw_base36_decode("Zz", 2, out, sizeof(out)), -KW_EINVAL);
}

/* RFC 4648 section 10 vectors, lower-cased and unpadded. */
static void test_base32_matches_rfc4648(void **state)
{
	static const char *const want[] = { "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb",
					    "mzxw6ytboi" };
	char txt[16];
	uint8_t out[8];

	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(kw_base32_encode((const uint8_t *)"foobar", i + 1, txt, sizeof(txt)),
				 (int)strlen(want[i]));
		assert_string_equal(txt, want[i]);
		assert_int_equal(kw_base32_decode(want[i], strlen(want[i]), out, sizeof(out)),
				 (int)i + 1);
		assert_memory_equal(out, "foobar", i + 1);
	}
}

static void test_base32_rejects_upper_case_padding_and_stray_bits(void **state)
{
	uint8_t out[8];

	assert_int_equal(kw_base32_decode("MY", 2, out, sizeof(out)), -KW_EINVAL);
	assert_int_equal(kw_base32_decode("my======", 8, out, sizeof(out)), -KW_EINVAL);
	assert_int_equal(kw_base32_decode("mz", 2, out, sizeof(out)), -KW_EINVAL); /* low bits set */
	assert_int_equal(kw_base32_decode("mzx", 3, out, sizeof(out)), -KW_EINVAL); /* bad length */
	assert_int_equal(kw_base32_decode("mzxw6ytboi", 10, out, 5), -KW_ENOSPC);
}

static void test_multihash_parse_accepts_identity_and_sha256(void **state)
{
	uint8_t mh[64];
	const uint8_t *d;
	uint64_t code;
	size_t dlen;
	int n = test_unhex(ED25519_PEER_MH, mh, sizeof(mh));

	assert_int_equal(kw_multihash_parse(mh, (size_t)n, &code, &d, &dlen), 0);
	assert_int_equal(code, KW_MH_IDENTITY);
	assert_int_equal(dlen, 36);
	assert_ptr_equal(d, mh + 2);
	n = test_unhex(RSA_PEER_MH, mh, sizeof(mh));
	assert_int_equal(kw_multihash_parse(mh, (size_t)n, &code, &d, &dlen), 0);
	assert_int_equal(code, KW_MH_SHA2_256);
	assert_int_equal(dlen, 32);
}

static void test_multihash_parse_rejects_bad_framing(void **state)
{
	uint8_t mh[64];
	const uint8_t *d;
	uint64_t code;
	size_t dlen;
	int n = test_unhex(RSA_PEER_MH, mh, sizeof(mh));

	assert_int_equal(kw_multihash_parse(mh, (size_t)n - 1, &code, &d, &dlen), -KW_EINVAL);
	mh[n] = 0;
	assert_int_equal(kw_multihash_parse(mh, (size_t)n + 1, &code, &d, &dlen), -KW_EINVAL);
	mh[1] = 0x1f;  /* sha2-256 with a 31-byte digest */
	assert_int_equal(kw_multihash_parse(mh, 33, &code, &d, &dlen), -KW_EINVAL);
	mh[0] = 0x13;  /* sha2-512: not supported */
	mh[1] = 0x20;
	assert_int_equal(kw_multihash_parse(mh, 34, &code, &d, &dlen), -KW_EINVAL);
	assert_int_equal(kw_multihash_parse(mh, 0, &code, &d, &dlen), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base58_encodes_spec_peer_ids),
		cmocka_unit_test(test_base58_leading_zero_bytes_become_ones),
		cmocka_unit_test(test_base58_decodes_spec_peer_id),
		cmocka_unit_test(test_base58_rejects_bad_characters_and_sizes),
		cmocka_unit_test(test_base58_round_trips_random_bytes),
		cmocka_unit_test(test_base36_round_trips_and_keeps_leading_zeros),
		cmocka_unit_test(test_base32_matches_rfc4648),
		cmocka_unit_test(test_base32_rejects_upper_case_padding_and_stray_bits),
		cmocka_unit_test(test_multihash_parse_accepts_identity_and_sha256),
		cmocka_unit_test(test_multihash_parse_rejects_bad_framing),
	};
	return cmocka_run_group_tests_name("net/peer/multibase", tests, NULL, NULL);
}
