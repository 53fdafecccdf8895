/*
 * net/peer/key_rsa.c: RSA keys. The libp2p spec's RSA-4096 key must give the spec's peer ID;
 * keys and a signature made by OpenSSL (vectors_gen.h) cross-check mbedTLS; sizes outside
 * 2048..8192 bits are refused.
 */
#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include "vectors_gen.h"
#include <kw/err.h>
#include <kw/net/key.h>

static uint8_t pbuf[KW_KEY_PB_MAX];

static int load_priv(const char *hex, struct kw_privkey *k)
{
	int n = test_unhex(hex, pbuf, sizeof(pbuf));

	assert_true(n > 0);
	return kw_privkey_decode(pbuf, (size_t)n, k);
}

static int load_pub(const char *hex, struct kw_pubkey *k)
{
	int n = test_unhex(hex, pbuf, sizeof(pbuf));

	assert_true(n > 0);
	return kw_pubkey_decode(pbuf, (size_t)n, k);
}

static void assert_pub_encodes_to(const struct kw_pubkey *k, const char *hex)
{
	static uint8_t want[KW_KEY_PB_MAX], got[KW_KEY_PB_MAX];
	size_t len;
	int n = test_unhex(hex, want, sizeof(want));

	assert_int_equal(kw_pubkey_encode(k, got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, len);
}

static void test_rsa_spec_4096_key_gives_spec_public_key_and_peer_id(void **state)
{
	static struct kw_privkey k;
	struct kw_pubkey pub;
	struct kw_peer_id id;
	char txt[KW_PEER_ID_TEXT_MAX];

	assert_int_equal(load_priv(RSA4096_PRIV_PB, &k), 0);
	assert_int_equal(k.type, KW_KEY_RSA);
	assert_pub_encodes_to(&k.pub, RSA4096_PUB_PB);
	assert_int_equal(load_pub(RSA4096_PUB_PB, &pub), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&pub, &id), 0);
	assert_int_equal(kw_peer_id_to_text(&id, txt, sizeof(txt)), 0);
	assert_string_equal(txt, RSA_PEER_B58);
	assert_int_equal(kw_pubkey_sig_max(&pub), 512);
}

static void test_rsa_signature_matches_openssl_byte_for_byte(void **state)
{
	static struct kw_privkey k;
	uint8_t want[256], sig[512];
	size_t slen = sizeof(sig);
	int n = test_unhex(RSA2048_SIG, want, sizeof(want));

	assert_int_equal(load_priv(RSA2048_PRIV_PB, &k), 0);
	assert_pub_encodes_to(&k.pub, RSA2048_PUB_PB);
	/* PKCS#1 v1.5 is deterministic: same key, same message, same bytes as OpenSSL. */
	assert_int_equal(kw_key_sign(&k, (const uint8_t *)XMSG, strlen(XMSG), sig, &slen), 0);
	assert_int_equal(slen, n);
	assert_memory_equal(sig, want, slen);
	slen = 255;
	assert_int_equal(kw_key_sign(&k, (const uint8_t *)XMSG, strlen(XMSG), sig, &slen),
			 -KW_ENOSPC);
}

static void test_rsa_verifies_openssl_signature_and_rejects_tampering(void **state)
{
	struct kw_pubkey pub;
	uint8_t sig[257];
	size_t mlen = strlen(XMSG);
	int n = test_unhex(RSA2048_SIG, sig, sizeof(sig));

	assert_int_equal(load_pub(RSA2048_PUB_PB, &pub), 0);
	assert_int_equal(kw_pubkey_verify(&pub, (const uint8_t *)XMSG, mlen, sig, (size_t)n), 0);
	assert_int_equal(kw_pubkey_verify(&pub, (const uint8_t *)XMSG, mlen - 1, sig, (size_t)n),
			 -KW_ESIG);
	assert_int_equal(kw_pubkey_verify(&pub, (const uint8_t *)XMSG, mlen, sig, (size_t)n - 1),
			 -KW_ESIG);
	sig[n] = 0;
	assert_int_equal(kw_pubkey_verify(&pub, (const uint8_t *)XMSG, mlen, sig, (size_t)n + 1),
			 -KW_ESIG);
	sig[100] ^= 0x10;
	assert_int_equal(kw_pubkey_verify(&pub, (const uint8_t *)XMSG, mlen, sig, (size_t)n),
			 -KW_ESIG);
}

static void test_rsa_1024_bit_keys_are_refused(void **state)
{
	static struct kw_privkey k;
	struct kw_pubkey pub;
	uint8_t sig[128] = { 1 };

	assert_int_equal(load_priv(RSA1024_PRIV_PB, &k), -KW_EINVAL);
	assert_int_equal(load_pub(RSA1024_PUB_PB, &pub), -KW_EINVAL);
	/* Even if such a key reaches the verifier some other way. */
	pub.type = KW_KEY_RSA;
	pub.len = (uint16_t)test_unhex(RSA1024_PUB_PB, pub.data, sizeof(pub.data)) - 5;
	assert_int_equal(pub.data[3], 0xa2);  /* SPKI length 162: a 2-byte uvarint */
	memmove(pub.data, pub.data + 5, pub.len);  /* drop the protobuf header */
	assert_int_equal(kw_pubkey_verify(&pub, sig, 1, sig, sizeof(sig)), -KW_ESIG);
	assert_int_equal(kw_key_generate(KW_KEY_RSA, 1024, &k), -KW_EINVAL);
	assert_int_equal(kw_key_generate(KW_KEY_RSA, 8200, &k), -KW_EINVAL);
}

/* DER length bytes for n (n < 65536). */
static size_t der_len(uint8_t *p, size_t n)
{
	if (n < 128) {
		p[0] = (uint8_t)n;
		return 1;
	}
	if (n < 256) {
		p[0] = 0x81;
		p[1] = (uint8_t)n;
		return 2;
	}
	p[0] = 0x82;
	p[1] = (uint8_t)(n >> 8);
	p[2] = (uint8_t)n;
	return 3;
}

/*
 * A PublicKey protobuf around an RSA SubjectPublicKeyInfo with a modulus of modlen bytes
 * (top byte 0x80, odd, otherwise 0x55: the value does not matter, sizes are checked) and a
 * public exponent of elen bytes (0x01 ... 0x01). Returns the protobuf length.
 */
static size_t build_rsa_pub(uint8_t *pb, size_t modlen, size_t elen)
{
	static const uint8_t alg[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
				       0x01, 0x01, 0x01, 0x05, 0x00 };
	static uint8_t rsapub[1200], spki[1200];
	uint8_t seq[8], bit[8], outer[8];
	size_t o = 0, s = 0, r = 0, ls, lb, lo, inner;

	rsapub[o++] = 0x02;
	o += der_len(rsapub + o, modlen + 1);
	rsapub[o++] = 0x00;  /* sign byte before the set top bit */
	rsapub[o++] = 0x80;
	memset(rsapub + o, 0x55, modlen - 2);
	o += modlen - 2;
	rsapub[o++] = 0x01;
	rsapub[o++] = 0x02;
	o += der_len(rsapub + o, elen);
	memset(rsapub + o, 0x01, elen);
	o += elen;
	ls = der_len(seq, o);
	lb = der_len(bit, 1 + 1 + ls + o);
	inner = sizeof(alg) + 1 + lb + 1 + 1 + ls + o;
	lo = der_len(outer, inner);
	spki[s++] = 0x30;
	memcpy(spki + s, outer, lo); s += lo;
	memcpy(spki + s, alg, sizeof(alg)); s += sizeof(alg);
	spki[s++] = 0x03;
	memcpy(spki + s, bit, lb); s += lb;
	spki[s++] = 0x00;
	spki[s++] = 0x30;
	memcpy(spki + s, seq, ls); s += ls;
	memcpy(spki + s, rsapub, o); s += o;
	pb[r++] = 0x08; pb[r++] = 0x00; pb[r++] = 0x12;
	pb[r++] = (uint8_t)(s | 0x80); pb[r++] = (uint8_t)(s >> 7);
	memcpy(pb + r, spki, s);
	return r + s;
}

static void test_rsa_public_key_above_8192_bits_is_refused(void **state)
{
	static uint8_t pb[1300];
	struct kw_pubkey pub;
	size_t n;

	/* The builder itself is sound: 2048 bits with e = 0x010101 is accepted. */
	n = build_rsa_pub(pb, 256, 3);
	assert_int_equal(kw_pubkey_decode(pb, n, &pub), 0);
	n = build_rsa_pub(pb, 1025, 3);  /* 8200 bits */
	assert_true(n - 5 <= KW_PUBKEY_MAX);
	assert_int_equal(kw_pubkey_decode(pb, n, &pub), -KW_EINVAL);
}

static void test_rsa_public_exponent_over_32_bits_is_refused(void **state)
{
	static uint8_t pb[1300];
	struct kw_pubkey pub;
	size_t n;

	n = build_rsa_pub(pb, 256, 4);
	assert_int_equal(kw_pubkey_decode(pb, n, &pub), 0);
	/* e of 2048 bits would make each verification cost a private-key operation. */
	n = build_rsa_pub(pb, 256, 5);
	assert_int_equal(kw_pubkey_decode(pb, n, &pub), -KW_EINVAL);
	n = build_rsa_pub(pb, 256, 255);
	assert_int_equal(kw_pubkey_decode(pb, n, &pub), -KW_EINVAL);
}

static void test_rsa_pkcs8_private_key_is_refused(void **state)
{
	static struct kw_privkey k;

	/* Valid key, wrong container: libp2p stores PKCS#1, and js could not read PKCS#8 back. */
	assert_int_equal(load_priv(RSA2048_PKCS8_PRIV_PB, &k), -KW_EINVAL);
}

static void test_rsa_private_key_round_trips_and_rejects_truncation(void **state)
{
	static struct kw_privkey k, k2;
	static uint8_t enc[KW_KEY_PB_MAX];
	size_t len;

	assert_int_equal(load_priv(RSA2048_PRIV_PB, &k), 0);
	assert_int_equal(kw_privkey_encode(&k, enc, sizeof(enc), &len), 0);
	assert_int_equal(kw_privkey_decode(enc, len, &k2), 0);
	assert_true(kw_pubkey_equal(&k.pub, &k2.pub));
	assert_int_equal(kw_privkey_decode(enc, len - 1, &k2), -KW_EBADMSG);
	/* Data length shortened consistently: the DER inside is cut. */
	enc[3] = (uint8_t)(enc[3] - 1);
	assert_int_equal(kw_privkey_decode(enc, len - 1, &k2), -KW_EINVAL);
}

/* One generation (about 0.1 s natively, seconds under qemu): keygen must produce a key that
 * loads, signs and verifies. */
static void test_rsa_generated_2048_key_signs_and_round_trips(void **state)
{
	static struct kw_privkey k, k2;
	static uint8_t enc[KW_KEY_PB_MAX];
	uint8_t sig[256];
	size_t len, slen = sizeof(sig);

	assert_int_equal(kw_key_generate(KW_KEY_RSA, 0, &k), 0);
	assert_int_equal(kw_pubkey_sig_max(&k.pub), 256);
	assert_int_equal(kw_privkey_encode(&k, enc, sizeof(enc), &len), 0);
	assert_int_equal(kw_privkey_decode(enc, len, &k2), 0);
	assert_true(kw_pubkey_equal(&k.pub, &k2.pub));
	assert_int_equal(kw_key_sign(&k2, (const uint8_t *)"m", 1, sig, &slen), 0);
	assert_int_equal(slen, 256);
	assert_int_equal(kw_pubkey_verify(&k.pub, (const uint8_t *)"m", 1, sig, slen), 0);
	assert_int_equal(kw_pubkey_verify(&k.pub, (const uint8_t *)"n", 1, sig, slen), -KW_ESIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_spec_4096_key_gives_spec_public_key_and_peer_id),
		cmocka_unit_test(test_rsa_signature_matches_openssl_byte_for_byte),
		cmocka_unit_test(test_rsa_verifies_openssl_signature_and_rejects_tampering),
		cmocka_unit_test(test_rsa_1024_bit_keys_are_refused),
		cmocka_unit_test(test_rsa_public_key_above_8192_bits_is_refused),
		cmocka_unit_test(test_rsa_public_exponent_over_32_bits_is_refused),
		cmocka_unit_test(test_rsa_pkcs8_private_key_is_refused),
		cmocka_unit_test(test_rsa_private_key_round_trips_and_rejects_truncation),
		cmocka_unit_test(test_rsa_generated_2048_key_signs_and_round_trips),
	};
	return cmocka_run_group_tests_name("net/peer/key_rsa", tests, NULL, NULL);
}
