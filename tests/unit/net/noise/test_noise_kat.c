/*
 * net/noise core against public known answers: the Noise_XX_25519_ChaChaPoly_SHA256 vectors
 * of cacophony and snow (tests/vectors/noise/), HKDF against RFC 5869, and the CipherState
 * edge cases (nonce encoding, nonce exhaustion, failed decryption keeps the nonce).
 */
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "unit/net/peer/hex.h"
#include "vectors/noise/noise_xx_vectors.h"
#include <kw/err.h>
#include <kw/net/noise.h>

#include "../../../../net/noise/noise_priv.h"

#define BUF 512

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	int n = test_unhex(hex, out, cap);

	assert_true(n >= 0);
	return (size_t)n;
}

/* Replays one vector: every message must match byte for byte in both directions. */
static void replay(const struct noise_vector *v)
{
	struct kw_noise_xx ini, res;
	struct kw_noise_cipher i_tx, i_rx, r_tx, r_rx;
	uint8_t pro[128], is[32], ie[32], rs[32], re[32], h[32];
	size_t pro_len = unhex(v->prologue, pro, sizeof(pro));

	unhex(v->init_static, is, 32);
	unhex(v->init_ephemeral, ie, 32);
	unhex(v->resp_static, rs, 32);
	unhex(v->resp_ephemeral, re, 32);
	assert_int_equal(kw_noise_xx_init(&ini, true, pro, pro_len, is, ie), 0);
	assert_int_equal(kw_noise_xx_init(&res, false, pro, pro_len, rs, re), 0);

	for (int i = 0; i < v->n_messages; i++) {
		uint8_t payload[BUF], want[BUF], out[BUF], got[BUF];
		size_t plen = unhex(v->messages[i].payload, payload, sizeof(payload));
		size_t wlen = unhex(v->messages[i].ciphertext, want, sizeof(want));
		size_t olen = 0, glen = 0;
		bool from_init = (i % 2) == 0;
		const uint8_t *p = NULL;

		if (i < 3) {
			struct kw_noise_xx *w = from_init ? &ini : &res, *r = from_init ? &res : &ini;

			assert_int_equal(kw_noise_xx_write_len(w, plen), wlen);
			assert_int_equal(kw_noise_xx_write(w, payload, plen, out, sizeof(out), &olen), 0);
			assert_int_equal(olen, wlen);
			assert_memory_equal(out, want, wlen);
			assert_int_equal(kw_noise_xx_read(r, out, olen, &p, &glen), 0);
			assert_int_equal(glen, plen);
			assert_memory_equal(p, payload, plen);
			if (i == 2) {
				assert_true(kw_noise_xx_done(&ini));
				assert_true(kw_noise_xx_done(&res));
				assert_memory_equal(kw_noise_xx_hash(&ini), kw_noise_xx_hash(&res), 32);
				if (v->handshake_hash[0]) {
					unhex(v->handshake_hash, h, sizeof(h));
					assert_memory_equal(kw_noise_xx_hash(&ini), h, 32);
				}
				assert_int_equal(kw_noise_xx_split(&ini, &i_tx, &i_rx), 0);
				assert_int_equal(kw_noise_xx_split(&res, &r_tx, &r_rx), 0);
			}
		} else {
			/* Transport: after XX the responder speaks next (i = 3 is from it). */
			struct kw_noise_cipher *tx = from_init ? &i_tx : &r_tx;
			struct kw_noise_cipher *rx = from_init ? &r_rx : &i_rx;

			assert_int_equal(kw_noise_cipher_encrypt(tx, NULL, 0, payload, plen, out), 0);
			assert_int_equal(plen + KW_NOISE_TAG_LEN, wlen);
			assert_memory_equal(out, want, wlen);
			assert_int_equal(kw_noise_cipher_decrypt(rx, NULL, 0, out, wlen, got), 0);
			assert_memory_equal(got, payload, plen);
		}
	}
}

static void test_noise_xx_matches_cacophony_vector(void **state)
{
	assert_string_equal(noise_xx_vectors[0].source, "cacophony");
	replay(&noise_xx_vectors[0]);
}

static void test_noise_xx_matches_snow_vector(void **state)
{
	assert_string_equal(noise_xx_vectors[1].source, "snow");
	replay(&noise_xx_vectors[1]);
}

/* Noise's HKDF(ck, ikm) is RFC 5869 with salt = ck, empty info, 64 output bytes; test case 3
 * of the RFC has an empty salt, i.e. HashLen zero bytes. */
static void test_noise_hkdf_matches_rfc5869_case3(void **state)
{
	uint8_t ck[32] = { 0 }, ikm[22], o1[32], o2[32], okm[42];

	memset(ikm, 0x0b, sizeof(ikm));
	unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
	      okm, sizeof(okm));
	kw_noise_hkdf2(ck, ikm, sizeof(ikm), o1, o2);
	assert_memory_equal(o1, okm, 32);
	assert_memory_equal(o2, okm + 32, 10);
}

/* The protocol name is exactly 32 bytes, so h starts as the name itself. */
static void test_noise_symmetric_init_uses_name_as_hash(void **state)
{
	struct kw_noise_symmetric ss;

	kw_noise_sym_init(&ss, KW_NOISE_PROTOCOL_NAME);
	assert_memory_equal(ss.h, "Noise_XX_25519_ChaChaPoly_SHA256", 32);
	assert_memory_equal(ss.ck, ss.h, 32);
	assert_false(ss.cs.has_key);
}

/* Noise's ChaChaPoly nonce: 32 zero bits, then the 64-bit counter little endian (checked
 * against libsodium's one-shot API with the nonce spelt out). */
static void test_noise_cipher_nonce_is_le64_after_four_zero_bytes(void **state)
{
	struct kw_noise_cipher c;
	uint8_t key[32], out[3 + 16], ref[3 + 16];
	uint8_t nonce[12] = { 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
	unsigned long long rlen;

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	kw_noise_cipher_init(&c, key);
	kw_noise_cipher_set_nonce(&c, 0x0102030405060708ull);
	assert_int_equal(kw_noise_cipher_encrypt(&c, (const uint8_t *)"ad", 2,
						 (const uint8_t *)"abc", 3, out), 0);
	crypto_aead_chacha20poly1305_ietf_encrypt(ref, &rlen, (const uint8_t *)"abc", 3,
						  (const uint8_t *)"ad", 2, NULL, nonce, key);
	assert_int_equal(rlen, sizeof(ref));
	assert_memory_equal(out, ref, sizeof(ref));
	assert_int_equal(c.n, 0x0102030405060709ull);
}

static void test_noise_cipher_refuses_reserved_last_nonce(void **state)
{
	struct kw_noise_cipher tx, rx;
	uint8_t key[32] = { 1 }, ct[4 + 16], pt[4];

	kw_noise_cipher_init(&tx, key);
	kw_noise_cipher_init(&rx, key);
	kw_noise_cipher_set_nonce(&tx, UINT64_MAX - 1);
	kw_noise_cipher_set_nonce(&rx, UINT64_MAX - 1);
	assert_int_equal(kw_noise_cipher_encrypt(&tx, NULL, 0, (const uint8_t *)"last", 4, ct), 0);
	assert_int_equal(kw_noise_cipher_decrypt(&rx, NULL, 0, ct, sizeof(ct), pt), 0);
	assert_memory_equal(pt, "last", 4);
	assert_int_equal(kw_noise_cipher_encrypt(&tx, NULL, 0, (const uint8_t *)"more", 4, ct),
			 -KW_ERANGE);
	assert_int_equal(kw_noise_cipher_decrypt(&rx, NULL, 0, ct, sizeof(ct), pt), -KW_ERANGE);
}

static void test_noise_cipher_failed_decrypt_keeps_nonce(void **state)
{
	struct kw_noise_cipher tx, rx;
	uint8_t key[32] = { 7 }, ct[5 + 16], pt[5];

	kw_noise_cipher_init(&tx, key);
	kw_noise_cipher_init(&rx, key);
	assert_int_equal(kw_noise_cipher_encrypt(&tx, NULL, 0, (const uint8_t *)"hello", 5, ct), 0);
	ct[2] ^= 1;
	assert_int_equal(kw_noise_cipher_decrypt(&rx, NULL, 0, ct, sizeof(ct), pt), -KW_EBADMSG);
	assert_int_equal(rx.n, 0);
	ct[2] ^= 1;
	assert_int_equal(kw_noise_cipher_decrypt(&rx, NULL, 0, ct, sizeof(ct), pt), 0);
	assert_int_equal(rx.n, 1);
	assert_int_equal(kw_noise_cipher_decrypt(&rx, NULL, 0, ct, 15, pt), -KW_EBADMSG);
}

static void test_noise_xx_refuses_out_of_turn_messages(void **state)
{
	struct kw_noise_xx ini, res;
	uint8_t k1[32] = { 1 }, k2[32] = { 2 }, out[BUF];
	const uint8_t *p;
	size_t n, pl;

	assert_int_equal(kw_noise_xx_init(&ini, true, NULL, 0, k1, NULL), 0);
	assert_int_equal(kw_noise_xx_init(&res, false, NULL, 0, k2, NULL), 0);
	assert_int_equal(kw_noise_xx_write(&res, NULL, 0, out, sizeof(out), &n), -KW_EPROTO);
	memset(out, 9, 32);
	assert_int_equal(kw_noise_xx_read(&ini, out, 32, &p, &pl), -KW_EPROTO);
	assert_int_equal(kw_noise_xx_write(&ini, NULL, 0, out, 31, &n), -KW_ENOSPC);
	assert_int_equal(kw_noise_xx_write(&ini, NULL, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 32);
	assert_int_equal(kw_noise_xx_write(&ini, NULL, 0, out, sizeof(out), &n), -KW_EPROTO);
	assert_int_equal(kw_noise_xx_read(&res, out, 31, &p, &pl), -KW_EHANDSHAKE);
}

static void test_noise_xx_rejects_tampered_second_message(void **state)
{
	const struct noise_vector *v = &noise_xx_vectors[0];
	struct kw_noise_xx ini;
	uint8_t is[32], ie[32], pro[16], m1[BUF], m2[BUF];
	size_t pro_len = unhex(v->prologue, pro, sizeof(pro)), n2, n;
	const uint8_t *p;
	size_t pl;

	unhex(v->init_static, is, 32);
	unhex(v->init_ephemeral, ie, 32);
	n2 = unhex(v->messages[1].ciphertext, m2, sizeof(m2));
	for (size_t at = 0; at < n2; at += 7) {
		uint8_t msg[BUF];

		assert_int_equal(kw_noise_xx_init(&ini, true, pro, pro_len, is, ie), 0);
		assert_int_equal(kw_noise_xx_write(&ini, (const uint8_t *)"Ludwig von Mises", 16, m1,
						   sizeof(m1), &n), 0);
		memcpy(msg, m2, n2);
		msg[at] ^= 0x40;
		assert_int_equal(kw_noise_xx_read(&ini, msg, n2, &p, &pl), -KW_EHANDSHAKE);
	}
	/* truncated by one byte (a shortened tag) */
	assert_int_equal(kw_noise_xx_init(&ini, true, pro, pro_len, is, ie), 0);
	assert_int_equal(kw_noise_xx_write(&ini, (const uint8_t *)"Ludwig von Mises", 16, m1,
					   sizeof(m1), &n), 0);
	assert_int_equal(kw_noise_xx_read(&ini, m2, n2 - 1, &p, &pl), -KW_EHANDSHAKE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noise_xx_matches_cacophony_vector),
		cmocka_unit_test(test_noise_xx_matches_snow_vector),
		cmocka_unit_test(test_noise_hkdf_matches_rfc5869_case3),
		cmocka_unit_test(test_noise_symmetric_init_uses_name_as_hash),
		cmocka_unit_test(test_noise_cipher_nonce_is_le64_after_four_zero_bytes),
		cmocka_unit_test(test_noise_cipher_refuses_reserved_last_nonce),
		cmocka_unit_test(test_noise_cipher_failed_decrypt_keeps_nonce),
		cmocka_unit_test(test_noise_xx_refuses_out_of_turn_messages),
		cmocka_unit_test(test_noise_xx_rejects_tampered_second_message),
	};
	return cmocka_run_group_tests_name("net/noise/kat", tests, NULL, NULL);
}
