/* Internal seam between net/peer/key.c (dispatch, protobufs, Ed25519) and the backends:
 * key_secp256k1.c (libsecp256k1), key_rsa.c and key_ec.c (mbedTLS). Not a public header. */
#ifndef KW_NET_PEER_KEY_PRIV_H
#define KW_NET_PEER_KEY_PRIV_H

#include <kw/net/key.h>

#define KW_SECP256K1_PUB_LEN 33
#define KW_ECDSA_SIG_MAX     72   /* DER of two 33-byte INTEGERs */

#include <kw/err.h>

#if defined(CONFIG_KW_NET_KEY_RSA) || defined(CONFIG_KW_NET_KEY_ECDSA)
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>

/*
 * A CTR_DRBG seeded from the kernel (getrandom) for one operation: mbedTLS wants an f_rng for
 * key generation and blinding, and keeping none between calls means no global state.
 * kw_mbed_rng_init returns 0 or -KW_EIO; kw_mbed_rng_free always runs after a successful init.
 */
int kw_mbed_rng_init(mbedtls_ctr_drbg_context *d);
void kw_mbed_rng_free(mbedtls_ctr_drbg_context *d);
/* Type of the second element of a DER SEQUENCE (tells PKCS#1/SEC1 from PKCS#8), or -1. */
int kw_der_second_tag(const uint8_t *der, size_t len);
#endif

/* RSA (key_rsa.c). load validates k->data (PKCS#1 DER) and fills k->pub. Types that are not
 * built in get stubs, so key.c needs no #ifdef and links at any optimisation level. */
#ifdef CONFIG_KW_NET_KEY_RSA
int kw_rsa_generate(int bits, struct kw_privkey *out);
int kw_rsa_load(struct kw_privkey *k);
int kw_rsa_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		size_t *sig_len);
int kw_rsa_pub_check(const struct kw_pubkey *k, size_t *modulus_bytes);
int kw_rsa_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
		  const uint8_t *sig, size_t sig_len);
#else
static inline int kw_rsa_generate(int bits, struct kw_privkey *out) { return -KW_EKEYTYPE; }
static inline int kw_rsa_load(struct kw_privkey *k) { return -KW_EKEYTYPE; }
static inline int kw_rsa_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len,
			      uint8_t *sig, size_t *sig_len) { return -KW_EKEYTYPE; }
static inline int kw_rsa_pub_check(const struct kw_pubkey *k, size_t *modulus_bytes)
{ return -KW_EKEYTYPE; }
static inline int kw_rsa_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
				const uint8_t *sig, size_t sig_len) { return -KW_EKEYTYPE; }
#endif

/*
 * secp256k1 (key_secp256k1.c): no heap. load validates the 32-byte scalar in k->data and fills
 * k->pub; pub_check accepts only a 33-byte compressed point on the curve. Errors as the public
 * API, plus -KW_EIO when the RNG that randomises the shared context fails.
 */
#ifdef CONFIG_KW_NET_KEY_SECP256K1
int kw_secp256k1_generate(struct kw_privkey *out);
int kw_secp256k1_load(struct kw_privkey *k);
int kw_secp256k1_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		      size_t *sig_len);
int kw_secp256k1_pub_check(const struct kw_pubkey *k);
int kw_secp256k1_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
			const uint8_t *sig, size_t sig_len);
#else
static inline int kw_secp256k1_generate(struct kw_privkey *out) { return -KW_EKEYTYPE; }
static inline int kw_secp256k1_load(struct kw_privkey *k) { return -KW_EKEYTYPE; }
static inline int kw_secp256k1_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len,
				    uint8_t *sig, size_t *sig_len) { return -KW_EKEYTYPE; }
static inline int kw_secp256k1_pub_check(const struct kw_pubkey *k) { return -KW_EKEYTYPE; }
static inline int kw_secp256k1_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
				      const uint8_t *sig, size_t sig_len) { return -KW_EKEYTYPE; }
#endif

/* ECDSA P-256 (key_ec.c, mbedTLS); type must be KW_KEY_ECDSA. */
#ifdef CONFIG_KW_NET_KEY_ECDSA
int kw_ec_generate(enum kw_key_type type, struct kw_privkey *out);
int kw_ec_load(struct kw_privkey *k);
int kw_ec_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
	       size_t *sig_len);
int kw_ec_pub_check(const struct kw_pubkey *k);
int kw_ec_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
		 size_t sig_len);
#else
static inline int kw_ec_generate(enum kw_key_type type, struct kw_privkey *out)
{ return -KW_EKEYTYPE; }
static inline int kw_ec_load(struct kw_privkey *k) { return -KW_EKEYTYPE; }
static inline int kw_ec_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len,
			     uint8_t *sig, size_t *sig_len) { return -KW_EKEYTYPE; }
static inline int kw_ec_pub_check(const struct kw_pubkey *k) { return -KW_EKEYTYPE; }
static inline int kw_ec_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
			       const uint8_t *sig, size_t sig_len) { return -KW_EKEYTYPE; }
#endif

#endif
