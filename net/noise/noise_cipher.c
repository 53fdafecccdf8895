/*
 * Noise CipherState and SymmetricState (Noise spec rev 34, sections 5.1-5.2) for the
 * ChaChaPoly / SHA256 suite on libsodium: ChaCha20-Poly1305 IETF with the nonce
 * 00000000 || uint64_le(n), SHA-256, and HKDF built from libsodium's HMAC-SHA256 (1.0.18 has
 * no HKDF; its HMAC keeps its state on the stack, no heap).
 */
#include <string.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/net/noise.h>

#include "noise_priv.h"

_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == KW_NOISE_TAG_LEN, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == KW_NOISE_KEY_LEN, "key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce size");

static void make_nonce(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

int kw_noise_cipher_init(struct kw_noise_cipher *c, const uint8_t k[KW_NOISE_KEY_LEN])
{
	memcpy(c->k, k, KW_NOISE_KEY_LEN);
	c->n = 0;
	c->has_key = true;
	return 0;
}

void kw_noise_cipher_set_nonce(struct kw_noise_cipher *c, uint64_t n)
{
	c->n = n;
}

void kw_noise_cipher_wipe(struct kw_noise_cipher *c)
{
	sodium_memzero(c->k, sizeof(c->k));
	c->has_key = false;
	c->n = 0;
}

int kw_noise_cipher_encrypt(struct kw_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t nonce[12];

	if (!c->has_key) {
		if (out != pt && len)
			memmove(out, pt, len);
		return 0;
	}
	/* 2^64-1 is reserved (Noise spec 5.1): the sender must stop before it. */
	if (c->n == UINT64_MAX)
		return -KW_ERANGE;
	make_nonce(nonce, c->n);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + len, NULL, pt, len, ad,
							   ad_len, NULL, nonce, c->k);
	c->n++;
	return 0;
}

int kw_noise_cipher_decrypt(struct kw_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t nonce[12];
	size_t mlen;

	if (!c->has_key) {
		if (out != ct && len)
			memmove(out, ct, len);
		return 0;
	}
	if (len < KW_NOISE_TAG_LEN)
		return -KW_EBADMSG;
	if (c->n == UINT64_MAX)
		return -KW_ERANGE;
	mlen = len - KW_NOISE_TAG_LEN;
	make_nonce(nonce, c->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, ct, mlen, ct + mlen, ad,
							       ad_len, nonce, c->k) != 0)
		return -KW_EBADMSG;
	c->n++;
	return 0;
}

static void hmac2(const uint8_t key[KW_NOISE_HASH_LEN], const uint8_t *a, size_t a_len,
		  const uint8_t *b, size_t b_len, uint8_t out[KW_NOISE_HASH_LEN])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, KW_NOISE_HASH_LEN);
	if (a_len)
		crypto_auth_hmacsha256_update(&st, a, a_len);
	if (b_len)
		crypto_auth_hmacsha256_update(&st, b, b_len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void kw_noise_hkdf2(const uint8_t ck[KW_NOISE_HASH_LEN], const uint8_t *ikm, size_t ikm_len,
		    uint8_t out1[KW_NOISE_HASH_LEN], uint8_t out2[KW_NOISE_HASH_LEN])
{
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t temp[KW_NOISE_HASH_LEN];

	hmac2(ck, ikm, ikm_len, NULL, 0, temp);
	hmac2(temp, &one, 1, NULL, 0, out1);
	hmac2(temp, out1, KW_NOISE_HASH_LEN, &two, 1, out2);
	sodium_memzero(temp, sizeof(temp));
}

void kw_noise_sym_init(struct kw_noise_symmetric *ss, const char *protocol_name)
{
	size_t len = strlen(protocol_name);

	memset(ss, 0, sizeof(*ss));
	if (len <= KW_NOISE_HASH_LEN)
		memcpy(ss->h, protocol_name, len);  /* zero-padded to HASHLEN */
	else
		crypto_hash_sha256(ss->h, (const uint8_t *)protocol_name, len);
	memcpy(ss->ck, ss->h, KW_NOISE_HASH_LEN);
}

void kw_noise_sym_mix_hash(struct kw_noise_symmetric *ss, const uint8_t *data, size_t len)
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, ss->h, KW_NOISE_HASH_LEN);
	if (len)
		crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, ss->h);
}

void kw_noise_sym_mix_key(struct kw_noise_symmetric *ss, const uint8_t *ikm, size_t len)
{
	uint8_t k[KW_NOISE_HASH_LEN];

	kw_noise_hkdf2(ss->ck, ikm, len, ss->ck, k);
	kw_noise_cipher_init(&ss->cs, k);  /* HASHLEN == key length: no truncation */
	sodium_memzero(k, sizeof(k));
}

int kw_noise_sym_encrypt_and_hash(struct kw_noise_symmetric *ss, const uint8_t *pt, size_t len,
				  uint8_t *out)
{
	int err = kw_noise_cipher_encrypt(&ss->cs, ss->h, KW_NOISE_HASH_LEN, pt, len, out);

	if (err)
		return err;
	kw_noise_sym_mix_hash(ss, out, len + kw_noise_sym_overhead(ss));
	return 0;
}

int kw_noise_sym_decrypt_and_hash(struct kw_noise_symmetric *ss, const uint8_t *ct, size_t len,
				  uint8_t *out)
{
	struct kw_noise_symmetric next;
	int err;

	/* h must absorb the ciphertext, which in-place decryption destroys: hash it first and
	 * commit only once the tag verified. */
	memcpy(next.h, ss->h, KW_NOISE_HASH_LEN);
	kw_noise_sym_mix_hash(&next, ct, len);
	err = kw_noise_cipher_decrypt(&ss->cs, ss->h, KW_NOISE_HASH_LEN, ct, len, out);
	if (err)
		return err;
	memcpy(ss->h, next.h, KW_NOISE_HASH_LEN);
	return 0;
}

void kw_noise_sym_split(const struct kw_noise_symmetric *ss, struct kw_noise_cipher *c1,
			struct kw_noise_cipher *c2)
{
	uint8_t k1[KW_NOISE_HASH_LEN], k2[KW_NOISE_HASH_LEN];

	kw_noise_hkdf2(ss->ck, NULL, 0, k1, k2);
	kw_noise_cipher_init(c1, k1);
	kw_noise_cipher_init(c2, k2);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
}
