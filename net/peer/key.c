/*
 * Identity keys: type dispatch, the libp2p PublicKey/PrivateKey protobufs (nanopb, fixed
 * sizes) and Ed25519 through libsodium. secp256k1 lives in key_secp256k1.c (libsecp256k1),
 * RSA and ECDSA P-256 in key_rsa.c and key_ec.c (mbedTLS); Kconfig compiles each in.
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>
#include <sodium.h>

#include "libp2p/keys.pb.h"
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/net/key.h>
#include <kw/rng.h>

#include "key_priv.h"

_Static_assert(sizeof(((kw_libp2p_PublicKey *)0)->Data.bytes) == KW_PUBKEY_MAX,
	       "proto/libp2p/keys.options and KW_PUBKEY_MAX disagree");
_Static_assert(sizeof(((kw_libp2p_PrivateKey *)0)->Data.bytes) == KW_PRIVKEY_MAX,
	       "proto/libp2p/keys.options and KW_PRIVKEY_MAX disagree");

static const char *const type_names[] = {
	[KW_KEY_RSA] = "rsa",
	[KW_KEY_ED25519] = "ed25519",
	[KW_KEY_SECP256K1] = "secp256k1",
	[KW_KEY_ECDSA] = "ecdsa",
};

const char *kw_key_type_name(enum kw_key_type t)
{
	if ((unsigned)t < KW_ARRAY_SIZE(type_names))
		return type_names[t];
	return "unknown";
}

int kw_key_type_from_name(const char *name, enum kw_key_type *t)
{
	size_t i;

	for (i = 0; i < KW_ARRAY_SIZE(type_names); i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*t = (enum kw_key_type)i;
			return 0;
		}
	}
	return -KW_EKEYTYPE;
}

bool kw_key_type_supported(enum kw_key_type t)
{
	switch (t) {
	case KW_KEY_ED25519:
		return true;
	case KW_KEY_RSA:
		return IS_ENABLED(CONFIG_KW_NET_KEY_RSA);
	case KW_KEY_SECP256K1:
		return IS_ENABLED(CONFIG_KW_NET_KEY_SECP256K1);
	case KW_KEY_ECDSA:
		return IS_ENABLED(CONFIG_KW_NET_KEY_ECDSA);
	}
	return false;
}

static bool type_known(uint32_t t)
{
	return t <= KW_KEY_ECDSA;
}

void kw_privkey_wipe(struct kw_privkey *k)
{
	sodium_memzero(k->data, sizeof(k->data));
	k->len = 0;
}

bool kw_pubkey_equal(const struct kw_pubkey *a, const struct kw_pubkey *b)
{
	return a->type == b->type && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* ---- Ed25519 ------------------------------------------------------------------------- */

static int ed25519_from_seed(const uint8_t seed[32], struct kw_privkey *out)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];

	/* libsodium's secret key is seed||pub, exactly libp2p's PrivateKey.Data. */
	if (crypto_sign_seed_keypair(pk, out->data, seed) != 0)
		return -KW_EINVAL;
	out->type = KW_KEY_ED25519;
	out->len = crypto_sign_SECRETKEYBYTES;
	out->pub.type = KW_KEY_ED25519;
	out->pub.len = sizeof(pk);
	memcpy(out->pub.data, pk, sizeof(pk));
	return 0;
}

static int ed25519_load(struct kw_privkey *k)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	int ret = 0;

	if (k->len != 64 && k->len != 96)
		return -KW_EINVAL;
	if (crypto_sign_seed_keypair(pk, sk, k->data) != 0)
		return -KW_EINVAL;
	/* The stored public half (and the legacy duplicate) must be the seed's. */
	if (sodium_memcmp(pk, k->data + 32, 32) != 0 ||
	    (k->len == 96 && sodium_memcmp(pk, k->data + 64, 32) != 0))
		ret = -KW_EINVAL;
	sodium_memzero(sk, sizeof(sk));
	if (ret == 0) {
		k->pub.type = KW_KEY_ED25519;
		k->pub.len = sizeof(pk);
		memcpy(k->pub.data, pk, sizeof(pk));
	}
	return ret;
}

/* ---- dispatch ------------------------------------------------------------------------ */

int kw_key_generate(enum kw_key_type type, int bits, struct kw_privkey *out)
{
	uint8_t seed[32];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!kw_key_type_supported(type))
		return -KW_EKEYTYPE;
	switch (type) {
	case KW_KEY_ED25519:
		ret = kw_rng_bytes(seed, sizeof(seed));
		if (ret == 0)
			ret = ed25519_from_seed(seed, out);
		sodium_memzero(seed, sizeof(seed));
		return ret;
	case KW_KEY_RSA:
		if (bits == 0)
			bits = 2048;
		if (bits < 2048 || bits > 8192)
			return -KW_EINVAL;
		return kw_rsa_generate(bits, out);
	case KW_KEY_SECP256K1:
		return kw_secp256k1_generate(out);
	case KW_KEY_ECDSA:
		return kw_ec_generate(type, out);
	}
	return -KW_EKEYTYPE;
}

int kw_key_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		size_t *sig_len)
{
	if (!kw_key_type_supported(k->type))
		return -KW_EKEYTYPE;
	switch (k->type) {
	case KW_KEY_ED25519:
		if (k->len < crypto_sign_SECRETKEYBYTES)
			return -KW_EINVAL;
		if (*sig_len < crypto_sign_BYTES)
			return -KW_ENOSPC;
		/* data[0..64) is libsodium's seed||pub secret key (also for legacy 96-byte keys). */
		crypto_sign_detached(sig, NULL, msg, len, k->data);
		*sig_len = crypto_sign_BYTES;
		return 0;
	case KW_KEY_RSA:
		return kw_rsa_sign(k, msg, len, sig, sig_len);
	case KW_KEY_SECP256K1:
		return kw_secp256k1_sign(k, msg, len, sig, sig_len);
	case KW_KEY_ECDSA:
		return kw_ec_sign(k, msg, len, sig, sig_len);
	}
	return -KW_EKEYTYPE;
}

int kw_pubkey_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
		     const uint8_t *sig, size_t sig_len)
{
	if (!kw_key_type_supported(k->type))
		return -KW_EKEYTYPE;
	switch (k->type) {
	case KW_KEY_ED25519:
		if (k->len != crypto_sign_PUBLICKEYBYTES || sig_len != crypto_sign_BYTES)
			return -KW_ESIG;
		if (crypto_sign_verify_detached(sig, msg, len, k->data) != 0)
			return -KW_ESIG;
		return 0;
	case KW_KEY_RSA:
		return kw_rsa_verify(k, msg, len, sig, sig_len);
	case KW_KEY_SECP256K1:
		return kw_secp256k1_verify(k, msg, len, sig, sig_len);
	case KW_KEY_ECDSA:
		return kw_ec_verify(k, msg, len, sig, sig_len);
	}
	return -KW_EKEYTYPE;
}

size_t kw_pubkey_sig_max(const struct kw_pubkey *k)
{
	size_t mod = 0;

	if (!kw_key_type_supported(k->type))
		return 0;
	switch (k->type) {
	case KW_KEY_ED25519:
		return crypto_sign_BYTES;
	case KW_KEY_RSA:
		return kw_rsa_pub_check(k, &mod) == 0 ? mod : 0;
	case KW_KEY_SECP256K1:
	case KW_KEY_ECDSA:
		return KW_ECDSA_SIG_MAX;
	}
	return 0;
}

/* Validates public key material for its type (decoders call this on untrusted bytes). */
static int pubkey_check(const struct kw_pubkey *k)
{
	size_t mod;

	if (!kw_key_type_supported(k->type))
		return -KW_EKEYTYPE;
	switch (k->type) {
	case KW_KEY_ED25519:
		return k->len == crypto_sign_PUBLICKEYBYTES ? 0 : -KW_EINVAL;
	case KW_KEY_RSA:
		return kw_rsa_pub_check(k, &mod);
	case KW_KEY_SECP256K1:
		return kw_secp256k1_pub_check(k);
	case KW_KEY_ECDSA:
		return kw_ec_pub_check(k);
	}
	return -KW_EKEYTYPE;
}

/* Validates private key material and derives k->pub. */
static int privkey_load(struct kw_privkey *k)
{
	if (!kw_key_type_supported(k->type))
		return -KW_EKEYTYPE;
	switch (k->type) {
	case KW_KEY_ED25519:
		return ed25519_load(k);
	case KW_KEY_RSA:
		return kw_rsa_load(k);
	case KW_KEY_SECP256K1:
		return kw_secp256k1_load(k);
	case KW_KEY_ECDSA:
		return kw_ec_load(k);
	}
	return -KW_EKEYTYPE;
}

/* ---- protobufs ----------------------------------------------------------------------- */

int kw_pubkey_encode(const struct kw_pubkey *k, uint8_t *buf, size_t cap, size_t *len)
{
	kw_libp2p_PublicKey m;
	pb_ostream_t os = pb_ostream_from_buffer(buf, cap);

	if (!type_known((uint32_t)k->type) || k->len > sizeof(m.Data.bytes))
		return -KW_EINVAL;
	m.Type = (kw_libp2p_KeyType)k->type;
	m.Data.size = k->len;
	memcpy(m.Data.bytes, k->data, k->len);
	if (!pb_encode(&os, kw_libp2p_PublicKey_fields, &m))
		return -KW_ENOSPC;
	*len = os.bytes_written;
	return 0;
}

int kw_pubkey_decode(const uint8_t *buf, size_t len, struct kw_pubkey *out)
{
	kw_libp2p_PublicKey m = kw_libp2p_PublicKey_init_zero;
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	int ret;

	if (!pb_decode(&is, kw_libp2p_PublicKey_fields, &m))
		return -KW_EBADMSG;
	if (!type_known((uint32_t)m.Type))
		return -KW_EKEYTYPE;
	out->type = (enum kw_key_type)m.Type;
	out->len = (uint16_t)m.Data.size;
	memcpy(out->data, m.Data.bytes, m.Data.size);
	ret = pubkey_check(out);
	if (ret < 0)
		out->len = 0;
	return ret;
}

int kw_privkey_encode(const struct kw_privkey *k, uint8_t *buf, size_t cap, size_t *len)
{
	kw_libp2p_PrivateKey m;
	pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
	int ret = 0;

	if (!type_known((uint32_t)k->type) || k->len > sizeof(m.Data.bytes))
		return -KW_EINVAL;
	m.Type = (kw_libp2p_KeyType)k->type;
	m.Data.size = k->len;
	memcpy(m.Data.bytes, k->data, k->len);
	if (!pb_encode(&os, kw_libp2p_PrivateKey_fields, &m))
		ret = -KW_ENOSPC;
	else
		*len = os.bytes_written;
	sodium_memzero(&m, sizeof(m));
	return ret;
}

int kw_privkey_decode(const uint8_t *buf, size_t len, struct kw_privkey *out)
{
	kw_libp2p_PrivateKey m = kw_libp2p_PrivateKey_init_zero;
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	int ret;

	memset(out, 0, sizeof(*out));
	if (!pb_decode(&is, kw_libp2p_PrivateKey_fields, &m)) {
		ret = -KW_EBADMSG;
		goto out;
	}
	if (!type_known((uint32_t)m.Type)) {
		ret = -KW_EKEYTYPE;
		goto out;
	}
	out->type = (enum kw_key_type)m.Type;
	out->len = (uint16_t)m.Data.size;
	memcpy(out->data, m.Data.bytes, m.Data.size);
	ret = privkey_load(out);
	if (ret < 0)
		kw_privkey_wipe(out);
out:
	sodium_memzero(&m, sizeof(m));
	return ret;
}
