/*
 * RSA identity keys through mbedTLS 2.28 (libp2p KeyType 0): public = DER
 * SubjectPublicKeyInfo, private = PKCS#1 RSAPrivateKey DER, signatures RSASSA-PKCS1-v1_5
 * over SHA-256. Only 2048..8192-bit moduli are accepted, in both directions: smaller keys are
 * forgeable, larger ones are a CPU-exhaustion lever (js caps at 8192 too).
 */
#include <string.h>

#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include <kw/err.h>
#include <kw/net/key.h>

#include "key_priv.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192

static bool bits_ok(size_t bits)
{
	return bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS;
}

/*
 * A remote's key: besides the size, cap the public exponent at 32 bits (Go's crypto/rsa
 * does too). A huge e would make every verification as slow as a private-key operation,
 * a cheap way to burn our CPU during handshakes.
 */
static int pub_parse(const struct kw_pubkey *k, mbedtls_pk_context *pk)
{
	if (mbedtls_pk_parse_public_key(pk, k->data, k->len) ||
	    mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA)
		return -KW_EINVAL;
	if (!bits_ok(mbedtls_pk_get_bitlen(pk)) || mbedtls_mpi_bitlen(&mbedtls_pk_rsa(*pk)->E) > 32)
		return -KW_EINVAL;
	return 0;
}

int kw_rsa_pub_check(const struct kw_pubkey *k, size_t *modulus_bytes)
{
	mbedtls_pk_context pk;
	int ret;

	mbedtls_pk_init(&pk);
	ret = pub_parse(k, &pk);
	if (ret == 0)
		*modulus_bytes = mbedtls_pk_get_len(&pk);
	mbedtls_pk_free(&pk);
	return ret;
}

/* PKCS#1 only (SEQUENCE { INTEGER 0, INTEGER n, ... }); PKCS#8 would not round-trip to js. */
static int priv_parse(const struct kw_privkey *k, mbedtls_pk_context *pk)
{
	if (kw_der_second_tag(k->data, k->len) != MBEDTLS_ASN1_INTEGER)
		return -KW_EINVAL;
	if (mbedtls_pk_parse_key(pk, k->data, k->len, NULL, 0) ||
	    mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA)
		return -KW_EINVAL;
	if (!bits_ok(mbedtls_pk_get_bitlen(pk)))
		return -KW_EINVAL;
	return 0;
}

int kw_rsa_load(struct kw_privkey *k)
{
	uint8_t der[KW_PUBKEY_MAX + 64];
	mbedtls_pk_context pk;
	int ret, n;

	mbedtls_pk_init(&pk);
	ret = priv_parse(k, &pk);
	if (ret < 0)
		goto out;
	ret = -KW_EINVAL;
	/* Loading is rare (start-up, keygen): afford the full consistency check. */
	if (mbedtls_rsa_check_privkey(mbedtls_pk_rsa(pk)))
		goto out;
	n = mbedtls_pk_write_pubkey_der(&pk, der, sizeof(der));
	if (n <= 0 || n > KW_PUBKEY_MAX)
		goto out;
	k->pub.type = KW_KEY_RSA;
	k->pub.len = (uint16_t)n;
	memcpy(k->pub.data, der + sizeof(der) - n, (size_t)n);
	ret = 0;
out:
	mbedtls_pk_free(&pk);
	return ret;
}

int kw_rsa_generate(int bits, struct kw_privkey *out)
{
	mbedtls_ctr_drbg_context rng;
	mbedtls_pk_context pk;
	int ret, n;

	if (!bits_ok((size_t)bits))
		return -KW_EINVAL;
	ret = kw_mbed_rng_init(&rng);
	if (ret < 0)
		return ret;
	mbedtls_pk_init(&pk);
	ret = -KW_EINVAL;
	if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) ||
	    mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &rng,
				(unsigned)bits, 65537))
		goto out;
	/* pk_write_key_der writes PKCS#1 for RSA, at the end of the buffer. */
	n = mbedtls_pk_write_key_der(&pk, out->data, sizeof(out->data));
	if (n <= 0)
		goto out;
	memmove(out->data, out->data + sizeof(out->data) - n, (size_t)n);
	out->type = KW_KEY_RSA;
	out->len = (uint16_t)n;
	ret = kw_rsa_load(out);
out:
	mbedtls_pk_free(&pk);
	kw_mbed_rng_free(&rng);
	if (ret < 0)
		kw_privkey_wipe(out);
	return ret;
}

int kw_rsa_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		size_t *sig_len)
{
	mbedtls_ctr_drbg_context rng;
	mbedtls_pk_context pk;
	uint8_t hash[32];
	size_t n;
	int ret;

	mbedtls_pk_init(&pk);
	ret = priv_parse(k, &pk);
	if (ret < 0)
		goto out_pk;
	/* mbedTLS 2.28's pk_sign takes no output size: check it first. */
	if (*sig_len < mbedtls_pk_get_len(&pk)) {
		ret = -KW_ENOSPC;
		goto out_pk;
	}
	ret = kw_mbed_rng_init(&rng);
	if (ret < 0)
		goto out_pk;
	ret = -KW_EINVAL;
	if (mbedtls_sha256_ret(msg, len, hash, 0) == 0 &&
	    mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &n,
			    mbedtls_ctr_drbg_random, &rng) == 0) {
		*sig_len = n;
		ret = 0;
	}
	kw_mbed_rng_free(&rng);
out_pk:
	mbedtls_pk_free(&pk);
	return ret;
}

int kw_rsa_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
		  const uint8_t *sig, size_t sig_len)
{
	mbedtls_pk_context pk;
	uint8_t hash[32];
	int ret = -KW_ESIG;

	mbedtls_pk_init(&pk);
	if (pub_parse(k, &pk) < 0 || sig_len != mbedtls_pk_get_len(&pk))
		goto out;
	if (mbedtls_sha256_ret(msg, len, hash, 0) == 0 &&
	    mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, sig_len) == 0)
		ret = 0;
out:
	mbedtls_pk_free(&pk);
	return ret;
}
