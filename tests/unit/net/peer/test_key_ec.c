/*
 * net/peer/key_ec.c: secp256k1 and ECDSA P-256 keys. Vectors: the libp2p spec keys, the js
 * Noise transcript's secp256k1 signature (RFC 6979, low-S) and keys/signatures made by
 * OpenSSL (vectors_gen.h) for cross-checks.
 */
#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include "vectors_gen.h"
#include <kw/err.h>
#include <kw/net/key.h>

static int load_priv(const char *hex, struct kw_privkey *k)
{
	uint8_t pb[512];
	int n = test_unhex(hex, pb, sizeof(pb));

	assert_true(n > 0);
	return kw_privkey_decode(pb, (size_t)n, k);
}

static int load_pub(const char *hex, struct kw_pubkey *k)
{
	uint8_t pb[512];
	int n = test_unhex(hex, pb, sizeof(pb));

	assert_true(n > 0);
	return kw_pubkey_decode(pb, (size_t)n, k);
}

static void assert_pub_encodes_to(const struct kw_pubkey *k, const char *hex)
{
	uint8_t want[512], got[512];
	size_t len;
	int n = test_unhex(hex, want, sizeof(want));

	assert_int_equal(kw_pubkey_encode(k, got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, len);
}

static void assert_peer_id_text(const struct kw_pubkey *k, const char *b58)
{
	struct kw_peer_id id;
	char txt[KW_PEER_ID_TEXT_MAX];

	assert_int_equal(kw_peer_id_from_pubkey(k, &id), 0);
	assert_int_equal(kw_peer_id_to_text(&id, txt, sizeof(txt)), 0);
	assert_string_equal(txt, b58);
}

static const uint8_t *xmsg(size_t *len)
{
	*len = strlen(XMSG);
	return (const uint8_t *)XMSG;
}

/* ---- secp256k1 ----------------------------------------------------------------------- */

static void test_secp256k1_spec_private_key_derives_spec_public_key(void **state)
{
	struct kw_privkey k;
	struct kw_pubkey pub;

	assert_int_equal(load_priv(SECP_PRIV_PB, &k), 0);
	assert_int_equal(k.pub.len, 33);
	assert_pub_encodes_to(&k.pub, SECP_PUB_PB);
	assert_int_equal(load_pub(SECP_PUB_PB, &pub), 0);
	assert_true(kw_pubkey_equal(&pub, &k.pub));
	assert_peer_id_text(&pub, SECP_PEER_B58);
}

static void test_secp256k1_signs_noise_static_key_exactly_like_js(void **state)
{
	struct kw_privkey k;
	uint8_t msg[64], want[80], sig[80];
	size_t p = strlen(NOISE_SIG_PREFIX), slen = sizeof(sig);
	int wn, mn;

	memcpy(msg, NOISE_SIG_PREFIX, p);
	mn = (int)p + test_unhex(NOISE_RESP_STATIC, msg + p, 32);
	wn = test_unhex(NOISE_RESP_SIG_SECP, want, sizeof(want));
	assert_int_equal(load_priv(SECP_PRIV_PB, &k), 0);
	assert_int_equal(kw_key_sign(&k, msg, (size_t)mn, sig, &slen), 0);
	assert_int_equal(slen, wn);
	assert_memory_equal(sig, want, slen);
	assert_int_equal(kw_pubkey_verify(&k.pub, msg, (size_t)mn, want, (size_t)wn), 0);
	msg[0] ^= 1;
	assert_int_equal(kw_pubkey_verify(&k.pub, msg, (size_t)mn, want, (size_t)wn), -KW_ESIG);
}

static void test_secp256k1_verifies_openssl_low_s_and_rejects_high_s(void **state)
{
	struct kw_pubkey pub;
	uint8_t lo[80], hi[80];
	size_t mlen;
	const uint8_t *m = xmsg(&mlen);
	int nl = test_unhex(SECPX_SIG_LOW, lo, sizeof(lo));
	int nh = test_unhex(SECPX_SIG_HIGH, hi, sizeof(hi));

	assert_int_equal(load_pub(SECPX_PUB_PB, &pub), 0);
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, lo, (size_t)nl), 0);
	/* Same (r, s) mirrored to n - s: valid ECDSA, but js (noble, lowS) refuses it. */
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, hi, (size_t)nh), -KW_ESIG);
}

static void test_secp256k1_signatures_are_always_low_s(void **state)
{
	struct kw_privkey k;
	uint8_t msg[8] = { 0 }, sig[80];

	assert_int_equal(load_priv(SECPX_PRIV_PB, &k), 0);
	/* About half of raw ECDSA signatures have a high S; the verifier rejects any that slip. */
	for (int i = 0; i < 24; i++) {
		size_t slen = sizeof(sig);

		msg[0] = (uint8_t)i;
		assert_int_equal(kw_key_sign(&k, msg, sizeof(msg), sig, &slen), 0);
		assert_true(slen <= 72);
		assert_int_equal(kw_pubkey_verify(&k.pub, msg, sizeof(msg), sig, slen), 0);
	}
}

static void test_secp256k1_rejects_non_strict_der(void **state)
{
	struct kw_pubkey pub;
	uint8_t sig[90], bad[90];
	size_t mlen;
	const uint8_t *m = xmsg(&mlen);
	int n = test_unhex(SECPX_SIG_LOW, sig, sizeof(sig));

	assert_int_equal(load_pub(SECPX_PUB_PB, &pub), 0);
	/* Trailing byte inside and outside the SEQUENCE. */
	memcpy(bad, sig, (size_t)n);
	bad[n] = 0;
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, bad, (size_t)n + 1), -KW_ESIG);
	bad[1]++;
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, bad, (size_t)n + 1), -KW_ESIG);
	/* r padded with a needless 00: same number, not DER. */
	bad[0] = 0x30;
	bad[1] = (uint8_t)(sig[1] + 1);
	bad[2] = 0x02;
	bad[3] = (uint8_t)(sig[3] + 1);
	bad[4] = 0x00;
	memcpy(bad + 5, sig + 4, (size_t)n - 4);
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, bad, (size_t)n + 1), -KW_ESIG);
	/* Truncations. */
	for (int cut = 0; cut < n; cut++)
		assert_int_equal(kw_pubkey_verify(&pub, m, mlen, sig, (size_t)cut), -KW_ESIG);
}

static void test_secp256k1_rejects_points_off_the_curve(void **state)
{
	uint8_t pb[64];
	struct kw_pubkey pub;
	int n = test_unhex(SECP_PUB_PB, pb, sizeof(pb));
	int rejected = 0;

	pb[4] = 0x04;  /* uncompressed prefix on 33 bytes */
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pub), -KW_EINVAL);
	pb[4] = 0x02;
	/* About half of all x have no point; walk x until one is refused. */
	for (int i = 0; i < 16 && !rejected; i++) {
		pb[n - 1] = (uint8_t)(pb[n - 1] + 1);
		rejected = kw_pubkey_decode(pb, (size_t)n, &pub) == -KW_EINVAL;
	}
	assert_true(rejected);
	/* x = p (not reduced) */
	memset(pb + 5, 0xff, 32);
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pub), -KW_EINVAL);
}

static void test_secp256k1_private_scalar_out_of_range_is_rejected(void **state)
{
	uint8_t pb[64];
	struct kw_privkey k;
	int n = test_unhex(SECP_PRIV_PB, pb, sizeof(pb));

	memset(pb + 4, 0, 32);
	assert_int_equal(kw_privkey_decode(pb, (size_t)n, &k), -KW_EINVAL);
	memset(pb + 4, 0xff, 32);
	assert_int_equal(kw_privkey_decode(pb, (size_t)n, &k), -KW_EINVAL);
	assert_int_equal(kw_privkey_decode(pb, (size_t)n - 1, &k), -KW_EBADMSG);
}

static void test_secp256k1_generated_key_round_trips(void **state)
{
	struct kw_privkey k, k2;
	uint8_t pb[128], sig[80];
	size_t len, slen = sizeof(sig);

	assert_int_equal(kw_key_generate(KW_KEY_SECP256K1, 0, &k), 0);
	assert_int_equal(k.len, 32);
	assert_int_equal(kw_privkey_encode(&k, pb, sizeof(pb), &len), 0);
	assert_int_equal(kw_privkey_decode(pb, len, &k2), 0);
	assert_true(kw_pubkey_equal(&k.pub, &k2.pub));
	assert_int_equal(kw_key_sign(&k2, pb, len, sig, &slen), 0);
	assert_int_equal(kw_pubkey_verify(&k.pub, pb, len, sig, slen), 0);
	slen = 10;
	assert_int_equal(kw_key_sign(&k2, pb, len, sig, &slen), -KW_ENOSPC);
}

/* ---- ECDSA P-256 --------------------------------------------------------------------- */

static void test_ecdsa_spec_private_key_derives_spec_public_key(void **state)
{
	struct kw_privkey k;
	struct kw_pubkey pub;

	assert_int_equal(load_priv(ECDSA_PRIV_PB, &k), 0);
	assert_pub_encodes_to(&k.pub, ECDSA_PUB_PB);
	assert_int_equal(load_pub(ECDSA_PUB_PB, &pub), 0);
	assert_peer_id_text(&pub, ECDSA_PEER_B58);
}

static void test_ecdsa_verifies_openssl_signatures_of_either_s(void **state)
{
	struct kw_privkey k;
	struct kw_pubkey pub;
	uint8_t lo[80], hi[80];
	size_t mlen;
	const uint8_t *m = xmsg(&mlen);
	int nl = test_unhex(P256X_SIG_LOW, lo, sizeof(lo));
	int nh = test_unhex(P256X_SIG_HIGH, hi, sizeof(hi));

	assert_int_equal(load_priv(P256X_PRIV_PB, &k), 0);
	assert_pub_encodes_to(&k.pub, P256X_PUB_PB);
	assert_int_equal(load_pub(P256X_PUB_PB, &pub), 0);
	/* No low-S rule for P-256 (go and rust accept both halves). */
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, lo, (size_t)nl), 0);
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, hi, (size_t)nh), 0);
	lo[nl - 1] ^= 1;
	assert_int_equal(kw_pubkey_verify(&pub, m, mlen, lo, (size_t)nl), -KW_ESIG);
}

static void test_ecdsa_generated_key_signs_and_round_trips(void **state)
{
	struct kw_privkey k, k2;
	uint8_t pb[256], sig[80];
	size_t len, slen = sizeof(sig);

	assert_int_equal(kw_key_generate(KW_KEY_ECDSA, 0, &k), 0);
	assert_int_equal(kw_privkey_encode(&k, pb, sizeof(pb), &len), 0);
	assert_int_equal(kw_privkey_decode(pb, len, &k2), 0);
	assert_true(kw_pubkey_equal(&k.pub, &k2.pub));
	assert_int_equal(kw_key_sign(&k2, (const uint8_t *)"abc", 3, sig, &slen), 0);
	assert_int_equal(kw_pubkey_verify(&k.pub, (const uint8_t *)"abc", 3, sig, slen), 0);
	assert_int_equal(kw_pubkey_verify(&k.pub, (const uint8_t *)"abd", 3, sig, slen), -KW_ESIG);
}

static void test_ecdsa_private_key_with_foreign_public_point_is_rejected(void **state)
{
	uint8_t pb[256], other[256];
	struct kw_privkey k;
	int n = test_unhex(ECDSA_PRIV_PB, pb, sizeof(pb));
	int m = test_unhex(P256X_PRIV_PB, other, sizeof(other));

	/* Splice the other key's public point (last 65 bytes) into the spec key. */
	assert_true(n > 70);
	assert_true(m > 70);
	memcpy(pb + n - 64, other + m - 64, 64);
	assert_int_equal(kw_privkey_decode(pb, (size_t)n, &k), -KW_EINVAL);
}

static void test_ecdsa_key_type_mismatch_is_rejected(void **state)
{
	uint8_t pb[256];
	struct kw_pubkey pub;
	int n = test_unhex(ECDSA_PUB_PB, pb, sizeof(pb));

	pb[1] = KW_KEY_SECP256K1;  /* SPKI bytes labelled secp256k1 */
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pub), -KW_EINVAL);
	n = test_unhex(SECP_PUB_PB, pb, sizeof(pb));
	pb[1] = KW_KEY_ECDSA;
	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pub), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secp256k1_spec_private_key_derives_spec_public_key),
		cmocka_unit_test(test_secp256k1_signs_noise_static_key_exactly_like_js),
		cmocka_unit_test(test_secp256k1_verifies_openssl_low_s_and_rejects_high_s),
		cmocka_unit_test(test_secp256k1_signatures_are_always_low_s),
		cmocka_unit_test(test_secp256k1_rejects_non_strict_der),
		cmocka_unit_test(test_secp256k1_rejects_points_off_the_curve),
		cmocka_unit_test(test_secp256k1_private_scalar_out_of_range_is_rejected),
		cmocka_unit_test(test_secp256k1_generated_key_round_trips),
		cmocka_unit_test(test_ecdsa_spec_private_key_derives_spec_public_key),
		cmocka_unit_test(test_ecdsa_verifies_openssl_signatures_of_either_s),
		cmocka_unit_test(test_ecdsa_generated_key_signs_and_round_trips),
		cmocka_unit_test(test_ecdsa_private_key_with_foreign_public_point_is_rejected),
		cmocka_unit_test(test_ecdsa_key_type_mismatch_is_rejected),
	};
	return cmocka_run_group_tests_name("net/peer/key_ec", tests, NULL, NULL);
}
