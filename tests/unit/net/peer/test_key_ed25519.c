/* net/peer/key.c: Ed25519 keys, the key protobufs, and signatures against js-libp2p vectors. */
#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include <kw/err.h>
#include <kw/net/key.h>

static struct kw_privkey spec_key;

static int load_spec_key(void **state)
{
	uint8_t pb[128];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	return kw_privkey_decode(pb, (size_t)n, &spec_key);
}

static void noise_msg(const char *static_hex, uint8_t *msg, size_t *len)
{
	size_t p = strlen(NOISE_SIG_PREFIX);

	memcpy(msg, NOISE_SIG_PREFIX, p);
	*len = p + (size_t)test_unhex(static_hex, msg + p, 32);
}

static void test_ed25519_spec_private_key_derives_spec_public_key(void **state)
{
	uint8_t want[64], got[64];
	size_t len;
	int n = test_unhex(ED25519_PUB_PB, want, sizeof(want));

	assert_int_equal(spec_key.type, KW_KEY_ED25519);
	assert_int_equal(spec_key.len, 64);
	assert_int_equal(kw_pubkey_encode(&spec_key.pub, got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, len);
}

static void test_ed25519_private_key_protobuf_round_trips(void **state)
{
	uint8_t want[128], got[128];
	size_t len;
	int n = test_unhex(ED25519_PRIV_PB, want, sizeof(want));

	assert_int_equal(kw_privkey_encode(&spec_key, got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, len);
	assert_int_equal(kw_privkey_encode(&spec_key, got, 10, &len), -KW_ENOSPC);
}

static void test_ed25519_signs_noise_static_key_like_js(void **state)
{
	uint8_t msg[64], want[64], sig[64];
	size_t mlen, slen = sizeof(sig);

	noise_msg(NOISE_INIT_STATIC, msg, &mlen);
	test_unhex(NOISE_INIT_SIG_ED25519, want, sizeof(want));
	assert_int_equal(kw_key_sign(&spec_key, msg, mlen, sig, &slen), 0);
	assert_int_equal(slen, 64);
	assert_memory_equal(sig, want, 64);
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, msg, mlen, want, 64), 0);
}

static void test_ed25519_verifies_js_signed_peer_record(void **state)
{
	uint8_t msg[256], sig[64];
	int n = test_unhex(ENVELOPE_SIGNED, msg, sizeof(msg));

	test_unhex(ENVELOPE_SIG, sig, sizeof(sig));
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, msg, (size_t)n, sig, 64), 0);
	msg[n - 1] ^= 1;
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, msg, (size_t)n, sig, 64), -KW_ESIG);
}

static void test_ed25519_rejects_tampered_or_short_signature(void **state)
{
	uint8_t sig[64];
	size_t slen = sizeof(sig);

	assert_int_equal(kw_key_sign(&spec_key, (const uint8_t *)"hello", 5, sig, &slen), 0);
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, (const uint8_t *)"hello", 5, sig, 64), 0);
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, (const uint8_t *)"hellp", 5, sig, 64),
			 -KW_ESIG);
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, (const uint8_t *)"hello", 5, sig, 63),
			 -KW_ESIG);
	sig[10] ^= 0x40;
	assert_int_equal(kw_pubkey_verify(&spec_key.pub, (const uint8_t *)"hello", 5, sig, 64),
			 -KW_ESIG);
	slen = 63;
	assert_int_equal(kw_key_sign(&spec_key, (const uint8_t *)"x", 1, sig, &slen), -KW_ENOSPC);
}

static void test_ed25519_generated_keys_sign_and_differ(void **state)
{
	struct kw_privkey a, b, c;
	uint8_t pb[128], sig[64];
	size_t len, slen = sizeof(sig);

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &a), 0);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &b), 0);
	assert_false(kw_pubkey_equal(&a.pub, &b.pub));
	assert_int_equal(kw_key_sign(&a, pb, 10, sig, &slen), 0);
	assert_int_equal(kw_pubkey_verify(&a.pub, pb, 10, sig, slen), 0);
	assert_int_equal(kw_pubkey_verify(&b.pub, pb, 10, sig, slen), -KW_ESIG);
	assert_int_equal(kw_privkey_encode(&a, pb, sizeof(pb), &len), 0);
	assert_int_equal(kw_privkey_decode(pb, len, &c), 0);
	assert_true(kw_pubkey_equal(&a.pub, &c.pub));
}

static void test_ed25519_accepts_legacy_96_byte_private_key(void **state)
{
	uint8_t pb[128];
	struct kw_privkey k;
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	/* 08 01 12 60 seed || pub || pub */
	pb[3] = 0x60;
	memcpy(pb + n, pb + n - 32, 32);
	assert_int_equal(kw_privkey_decode(pb, (size_t)n + 32, &k), 0);
	assert_true(kw_pubkey_equal(&k.pub, &spec_key.pub));
	pb[n + 31] ^= 1;  /* the two public copies disagree */
	assert_int_equal(kw_privkey_decode(pb, (size_t)n + 32, &k), -KW_EINVAL);
}

static void test_ed25519_private_key_with_wrong_public_half_is_rejected(void **state)
{
	uint8_t pb[128];
	struct kw_privkey k;
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	pb[n - 1] ^= 1;
	assert_int_equal(kw_privkey_decode(pb, (size_t)n, &k), -KW_EINVAL);
	assert_int_equal(k.len, 0);
}

static void test_key_protobuf_decoders_reject_malformed_input(void **state)
{
	uint8_t pb[128];
	struct kw_pubkey pk;
	struct kw_privkey k;
	int n = test_unhex(ED25519_PUB_PB, pb, sizeof(pb));

	for (int cut = 0; cut < n; cut++)
		assert_true(kw_pubkey_decode(pb, (size_t)cut, &pk) < 0);
	assert_int_equal(kw_pubkey_decode(pb, 2, &pk), -KW_EBADMSG);  /* Data missing */
	pb[1] = 9;  /* unknown key type */
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pk), -KW_EKEYTYPE);
	pb[1] = 1;
	pb[3] = 0x1f;  /* Ed25519 with 31 bytes */
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n - 1, &pk), -KW_EINVAL);
	/* A Data field longer than the bound fails inside nanopb, never overflows. */
	static const uint8_t huge[] = { 0x08, 0x00, 0x12, 0xff, 0xff, 0x03 };
	assert_int_equal(kw_pubkey_decode(huge, sizeof(huge), &pk), -KW_EBADMSG);
	assert_int_equal(kw_privkey_decode(huge, sizeof(huge), &k), -KW_EBADMSG);
	assert_int_equal(kw_privkey_decode((const uint8_t *)"hello world", 11, &k), -KW_EBADMSG);
}

static void test_key_type_names_round_trip(void **state)
{
	enum kw_key_type t;

	for (int i = KW_KEY_RSA; i <= KW_KEY_ECDSA; i++) {
		assert_int_equal(kw_key_type_from_name(kw_key_type_name((enum kw_key_type)i), &t), 0);
		assert_int_equal(t, i);
	}
	assert_int_equal(kw_key_type_from_name("dsa", &t), -KW_EKEYTYPE);
	assert_true(kw_key_type_supported(KW_KEY_ED25519));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ed25519_spec_private_key_derives_spec_public_key),
		cmocka_unit_test(test_ed25519_private_key_protobuf_round_trips),
		cmocka_unit_test(test_ed25519_signs_noise_static_key_like_js),
		cmocka_unit_test(test_ed25519_verifies_js_signed_peer_record),
		cmocka_unit_test(test_ed25519_rejects_tampered_or_short_signature),
		cmocka_unit_test(test_ed25519_generated_keys_sign_and_differ),
		cmocka_unit_test(test_ed25519_accepts_legacy_96_byte_private_key),
		cmocka_unit_test(test_ed25519_private_key_with_wrong_public_half_is_rejected),
		cmocka_unit_test(test_key_protobuf_decoders_reject_malformed_input),
		cmocka_unit_test(test_key_type_names_round_trip),
	};
	return cmocka_run_group_tests_name("net/peer/key_ed25519", tests, load_spec_key, NULL);
}
