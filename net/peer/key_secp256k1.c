/*
 * secp256k1 identity keys (libp2p KeyType 2) through libsecp256k1, the Bitcoin Core library:
 * constant-time, and no heap at all here because its one context lives in a static buffer
 * (secp256k1_context_preallocated_create). mbedTLS 2.28 allocated ~15,000 times per handshake
 * for this curve and cannot be given another allocator as Debian builds it.
 *
 * Public = 33-byte compressed SEC1 point, private = 32-byte scalar (go-libp2p
 * core/crypto/secp256k1.go, js-libp2p crypto keys/secp256k1). Signatures are ECDSA over
 * SHA-256(msg), RFC 6979 nonces (deterministic, the same bytes js's @noble/curves makes),
 * strict DER, S in the low half: libsecp256k1 signs low-S and its verifier rejects high-S,
 * which is what js-libp2p requires.
 *
 * The context is made on first use and randomised from the kernel RNG (blinding for the
 * signing and key-derivation multiplications); the node is single-threaded, pthread_once only
 * guards tools and tests that call in from several threads.
 */
#include <pthread.h>
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_preallocated.h>
#include <sodium.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/net/key.h>
#include <kw/rng.h>

#include "key_priv.h"

#define SCALAR_LEN 32

/* libsecp256k1 0.2 needs a few hundred bytes (its tables are static); checked at init. */
static _Alignas(16) unsigned char g_ctx_mem[1024];
static secp256k1_context *g_ctx;
static int g_ctx_err;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

static void ctx_init(void)
{
	uint8_t seed[32];
	size_t need = secp256k1_context_preallocated_size(SECP256K1_CONTEXT_NONE);

	if (need > sizeof(g_ctx_mem)) {
		KW_LOG_ERR(peer, "libsecp256k1 wants a %zu-byte context, %zu reserved: secp256k1 "
			   "keys are unusable in this build", need, sizeof(g_ctx_mem));
		g_ctx_err = -KW_ENOMEM;
		return;
	}
	g_ctx = secp256k1_context_preallocated_create(g_ctx_mem, SECP256K1_CONTEXT_NONE);
	if (!g_ctx) {
		g_ctx_err = -KW_EINVAL;
		return;
	}
	if (kw_rng_bytes(seed, sizeof(seed)) != 0 || !secp256k1_context_randomize(g_ctx, seed)) {
		sodium_memzero(seed, sizeof(seed));
		g_ctx = NULL;
		g_ctx_err = -KW_EIO;
		return;
	}
	sodium_memzero(seed, sizeof(seed));
}

/* The shared context, or NULL with *err set (-KW_ENOMEM, -KW_EIO: RNG failed). */
static const secp256k1_context *ctx(int *err)
{
	pthread_once(&g_ctx_once, ctx_init);
	*err = g_ctx_err;
	return g_ctx;
}

int kw_secp256k1_pub_check(const struct kw_pubkey *k)
{
	secp256k1_pubkey p;
	int err;
	const secp256k1_context *c = ctx(&err);

	if (!c)
		return err;
	/* Only the compressed form: peer IDs inline these exact bytes. */
	if (k->len != KW_SECP256K1_PUB_LEN || (k->data[0] != 0x02 && k->data[0] != 0x03))
		return -KW_EINVAL;
	return secp256k1_ec_pubkey_parse(c, &p, k->data, k->len) ? 0 : -KW_EINVAL;
}

/* Derives k->pub from the scalar in k->data (validated here). */
static int derive_pub(const secp256k1_context *c, struct kw_privkey *k)
{
	secp256k1_pubkey p;
	size_t olen = KW_SECP256K1_PUB_LEN;

	if (k->len != SCALAR_LEN || !secp256k1_ec_seckey_verify(c, k->data) ||
	    !secp256k1_ec_pubkey_create(c, &p, k->data))
		return -KW_EINVAL;
	if (!secp256k1_ec_pubkey_serialize(c, k->pub.data, &olen, &p, SECP256K1_EC_COMPRESSED))
		return -KW_EINVAL;
	k->pub.type = KW_KEY_SECP256K1;
	k->pub.len = (uint16_t)olen;
	return 0;
}

int kw_secp256k1_load(struct kw_privkey *k)
{
	int err;
	const secp256k1_context *c = ctx(&err);

	return c ? derive_pub(c, k) : err;
}

int kw_secp256k1_generate(struct kw_privkey *out)
{
	int err, tries;
	const secp256k1_context *c = ctx(&err);

	if (!c)
		return err;
	out->type = KW_KEY_SECP256K1;
	out->len = SCALAR_LEN;
	/* A random 32-byte string is a valid scalar except with probability ~2^-128. */
	for (tries = 0; tries < 8; tries++) {
		if (kw_rng_bytes(out->data, SCALAR_LEN) != 0) {
			kw_privkey_wipe(out);
			return -KW_EIO;
		}
		if (derive_pub(c, out) == 0)
			return 0;
	}
	kw_privkey_wipe(out);
	return -KW_EIO;
}

int kw_secp256k1_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		      size_t *sig_len)
{
	secp256k1_ecdsa_signature s;
	uint8_t hash[32], der[KW_ECDSA_SIG_MAX];
	size_t n = sizeof(der);
	int err;
	const secp256k1_context *c = ctx(&err);

	if (!c)
		return err;
	if (k->len != SCALAR_LEN)
		return -KW_EINVAL;
	crypto_hash_sha256(hash, msg, len);
	/* NULL nonce function = RFC 6979; the result is already low-S. */
	if (!secp256k1_ecdsa_sign(c, &s, hash, k->data, NULL, NULL) ||
	    !secp256k1_ecdsa_signature_serialize_der(c, der, &n, &s))
		return -KW_EINVAL;
	if (*sig_len < n)
		return -KW_ENOSPC;
	memcpy(sig, der, n);
	*sig_len = n;
	return 0;
}

int kw_secp256k1_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
			const uint8_t *sig, size_t sig_len)
{
	secp256k1_ecdsa_signature s;
	secp256k1_pubkey p;
	uint8_t hash[32], der[KW_ECDSA_SIG_MAX];
	size_t n = sizeof(der);
	int err;
	const secp256k1_context *c = ctx(&err);

	if (!c)
		return err;
	if (sig_len < 8 || sig_len > KW_ECDSA_SIG_MAX)
		return -KW_ESIG;
	/*
	 * Strict DER: libsecp256k1's parser takes any valid BER-ish DER (padded integers, long
	 * lengths) and zeroes out-of-range values; writing the result back and comparing accepts
	 * exactly the minimal encoding of an in-range (r, s), as go-libp2p's and js's parsers do.
	 */
	if (!secp256k1_ecdsa_signature_parse_der(c, &s, sig, sig_len) ||
	    !secp256k1_ecdsa_signature_serialize_der(c, der, &n, &s) || n != sig_len ||
	    memcmp(der, sig, n) != 0)
		return -KW_ESIG;
	if (k->len != KW_SECP256K1_PUB_LEN || (k->data[0] != 0x02 && k->data[0] != 0x03) ||
	    !secp256k1_ec_pubkey_parse(c, &p, k->data, k->len))
		return -KW_ESIG;
	crypto_hash_sha256(hash, msg, len);
	/* Rejects high-S (not normalised) signatures, as js-libp2p does. */
	return secp256k1_ecdsa_verify(c, &s, hash, &p) ? 0 : -KW_ESIG;
}
