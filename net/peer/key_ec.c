/*
 * ECDSA P-256 identity keys (libp2p KeyType 3) through mbedTLS 2.28: public = DER
 * SubjectPublicKeyInfo, private = SEC1 ECPrivateKey DER. Signs SHA-256(msg)
 * deterministically (RFC 6979) and writes strict DER with S in the low half (either half
 * verifies, as in go-libp2p). secp256k1 lives in key_secp256k1.c (libsecp256k1).
 *
 * Heap: mbedTLS allocates its bignums (Debian builds it without MBEDTLS_PLATFORM_MEMORY, so
 * the allocator cannot be redirected): a few thousand calloc/free pairs per sign or verify,
 * once per handshake with a P-256 peer, never per message.
 */
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/key.h>

#include "key_priv.h"

#define SCALAR_LEN 32

static bool curve_enabled(enum kw_key_type t)
{
	return t == KW_KEY_ECDSA && IS_ENABLED(CONFIG_KW_NET_KEY_ECDSA);
}

/* Loads a P-256 public key into grp/q. */
static int pub_load(const struct kw_pubkey *k, mbedtls_ecp_group *grp, mbedtls_ecp_point *q)
{
	mbedtls_pk_context pk;
	uint8_t der[160];
	int ret = -KW_EINVAL, n;

	if (mbedtls_ecp_group_load(grp, MBEDTLS_ECP_DP_SECP256R1))
		return -KW_EINVAL;
	mbedtls_pk_init(&pk);
	if (mbedtls_pk_parse_public_key(&pk, k->data, k->len) ||
	    mbedtls_pk_get_type(&pk) != MBEDTLS_PK_ECKEY ||
	    mbedtls_pk_ec(pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
		goto out;
	/* Only the canonical SPKI (named curve, uncompressed point): peer IDs hash these bytes. */
	n = mbedtls_pk_write_pubkey_der(&pk, der, sizeof(der));
	if (n <= 0 || (size_t)n != k->len || memcmp(der + sizeof(der) - n, k->data, k->len) != 0)
		goto out;
	if (mbedtls_ecp_copy(q, &mbedtls_pk_ec(pk)->Q))
		goto out;
	ret = 0;
out:
	mbedtls_pk_free(&pk);
	return ret;
}

int kw_ec_pub_check(const struct kw_pubkey *k)
{
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q;
	int ret;

	if (!curve_enabled(k->type))
		return -KW_EKEYTYPE;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	ret = pub_load(k, &grp, &q);
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_group_free(&grp);
	return ret;
}

/* Writes pk's public half as libp2p's ECDSA PublicKey.Data (DER SPKI). */
static int pub_store(enum kw_key_type type, mbedtls_pk_context *pk, struct kw_pubkey *out)
{
	uint8_t der[160];
	int n;

	out->type = type;
	n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));
	if (n <= 0)
		return -KW_EINVAL;
	memcpy(out->data, der + sizeof(der) - n, (size_t)n);
	out->len = (uint16_t)n;
	return 0;
}

/*
 * Parses k->data into pk (an ECKEY context). With check, also derives/checks the public point
 * (load time); signing skips that scalar multiplication because a kw_privkey was validated
 * when it was decoded or generated. rng feeds the multiplication's blinding.
 */
static int priv_parse(const struct kw_privkey *k, mbedtls_pk_context *pk,
		      mbedtls_ctr_drbg_context *rng, bool check)
{
	mbedtls_ecp_keypair *kp;

	/* SEC1 ECPrivateKey: SEQUENCE { INTEGER 1, OCTET STRING d, ... } (PKCS#8 has a SEQUENCE). */
	if (kw_der_second_tag(k->data, k->len) != MBEDTLS_ASN1_OCTET_STRING)
		return -KW_EINVAL;
	if (mbedtls_pk_parse_key(pk, k->data, k->len, NULL, 0) ||
	    mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
		return -KW_EINVAL;
	kp = mbedtls_pk_ec(*pk);
	if (kp->grp.id != MBEDTLS_ECP_DP_SECP256R1 || mbedtls_ecp_check_privkey(&kp->grp, &kp->d))
		return -KW_EINVAL;
	/* A stored public point that is not d*G would give us someone else's peer ID. */
	if (check) {
		mbedtls_ecp_point q;
		int bad;

		mbedtls_ecp_point_init(&q);
		bad = mbedtls_ecp_mul(&kp->grp, &q, &kp->d, &kp->grp.G, mbedtls_ctr_drbg_random, rng) ||
		      mbedtls_ecp_point_cmp(&q, &kp->Q);
		mbedtls_ecp_point_free(&q);
		if (bad)
			return -KW_EINVAL;
	}
	return 0;
}

int kw_ec_load(struct kw_privkey *k)
{
	mbedtls_ctr_drbg_context rng;
	mbedtls_pk_context pk;
	int ret;

	if (!curve_enabled(k->type))
		return -KW_EKEYTYPE;
	ret = kw_mbed_rng_init(&rng);
	if (ret < 0)
		return ret;
	mbedtls_pk_init(&pk);
	ret = priv_parse(k, &pk, &rng, true);
	if (ret == 0)
		ret = pub_store(k->type, &pk, &k->pub);
	mbedtls_pk_free(&pk);
	kw_mbed_rng_free(&rng);
	return ret;
}

int kw_ec_generate(enum kw_key_type type, struct kw_privkey *out)
{
	mbedtls_ctr_drbg_context rng;
	mbedtls_pk_context pk;
	int ret, n;

	if (!curve_enabled(type))
		return -KW_EKEYTYPE;
	ret = kw_mbed_rng_init(&rng);
	if (ret < 0)
		return ret;
	mbedtls_pk_init(&pk);
	ret = -KW_EINVAL;
	if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) ||
	    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk),
				mbedtls_ctr_drbg_random, &rng))
		goto out;
	out->type = type;
	n = mbedtls_pk_write_key_der(&pk, out->data, sizeof(out->data));
	if (n <= 0)
		goto out;
	memmove(out->data, out->data + sizeof(out->data) - n, (size_t)n);
	out->len = (uint16_t)n;
	ret = pub_store(type, &pk, &out->pub);
out:
	mbedtls_pk_free(&pk);
	kw_mbed_rng_free(&rng);
	if (ret < 0)
		kw_privkey_wipe(out);
	return ret;
}

/* Strict DER INTEGER of a positive, non-zero value: minimal, leading 00 only before a set
 * high bit. Writes at most 2 + 33 bytes. */
static size_t der_put_int(const mbedtls_mpi *x, uint8_t *p)
{
	size_t n = mbedtls_mpi_size(x), pad;
	uint8_t *v = p + 2;

	mbedtls_mpi_write_binary(x, v + 1, n);
	pad = (v[1] & 0x80) ? 1 : 0;
	if (pad)
		v[0] = 0;
	else
		memmove(v, v + 1, n);
	p[0] = MBEDTLS_ASN1_INTEGER;
	p[1] = (uint8_t)(n + pad);
	return 2 + n + pad;
}

static int der_get_int(const uint8_t **p, const uint8_t *end, mbedtls_mpi *x)
{
	const uint8_t *q = *p;
	size_t l;

	if (end - q < 2 || q[0] != MBEDTLS_ASN1_INTEGER)
		return -1;
	l = q[1];
	q += 2;
	if (l == 0 || l > SCALAR_LEN + 1 || (size_t)(end - q) < l)
		return -1;
	if (q[0] & 0x80)
		return -1;  /* negative */
	if (q[0] == 0 && (l == 1 || !(q[1] & 0x80)))
		return -1;  /* non-minimal (and zero, which is never a valid r or s) */
	if (mbedtls_mpi_read_binary(x, q, l))
		return -1;
	*p = q + l;
	return 0;
}

int kw_ec_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
	       size_t *sig_len)
{
	mbedtls_ctr_drbg_context rng;
	mbedtls_pk_context pk;
	mbedtls_mpi r, s, half;
	mbedtls_ecp_keypair *kp;
	uint8_t hash[32], der[KW_ECDSA_SIG_MAX];
	size_t n;
	int ret;

	if (!curve_enabled(k->type))
		return -KW_EKEYTYPE;
	ret = kw_mbed_rng_init(&rng);
	if (ret < 0)
		return ret;
	mbedtls_pk_init(&pk);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	mbedtls_mpi_init(&half);
	ret = priv_parse(k, &pk, &rng, false);
	if (ret < 0)
		goto out;
	kp = mbedtls_pk_ec(pk);
	ret = -KW_EINVAL;
	if (mbedtls_sha256_ret(msg, len, hash, 0) ||
	    mbedtls_ecdsa_sign_det_ext(&kp->grp, &r, &s, &kp->d, hash, sizeof(hash),
				       MBEDTLS_MD_SHA256, mbedtls_ctr_drbg_random, &rng))
		goto out;
	/* Low-S: (r, n - s) is the same signature; the canonical half, as for secp256k1. */
	if (mbedtls_mpi_copy(&half, &kp->grp.N) || mbedtls_mpi_shift_r(&half, 1))
		goto out;
	if (mbedtls_mpi_cmp_mpi(&s, &half) > 0 && mbedtls_mpi_sub_mpi(&s, &kp->grp.N, &s))
		goto out;
	n = der_put_int(&r, der + 2);
	n += der_put_int(&s, der + 2 + n);
	der[0] = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
	der[1] = (uint8_t)n;
	n += 2;
	if (*sig_len < n) {
		ret = -KW_ENOSPC;
		goto out;
	}
	memcpy(sig, der, n);
	*sig_len = n;
	ret = 0;
out:
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&s);
	mbedtls_mpi_free(&half);
	mbedtls_pk_free(&pk);
	kw_mbed_rng_free(&rng);
	return ret;
}

int kw_ec_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
		 size_t sig_len)
{
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q;
	mbedtls_mpi r, s;
	const uint8_t *p, *end;
	uint8_t hash[32];
	int ret = -KW_ESIG;

	if (!curve_enabled(k->type))
		return -KW_EKEYTYPE;
	/* Strict DER: SEQUENCE (short length covering everything) of exactly two INTEGERs. */
	if (sig_len < 8 || sig_len > KW_ECDSA_SIG_MAX || sig[0] != 0x30 || sig[1] != sig_len - 2)
		return -KW_ESIG;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	p = sig + 2;
	end = sig + sig_len;
	if (der_get_int(&p, end, &r) || der_get_int(&p, end, &s) || p != end)
		goto out;
	if (pub_load(k, &grp, &q) < 0)
		goto out;
	if (mbedtls_sha256_ret(msg, len, hash, 0) ||
	    mbedtls_ecdsa_verify(&grp, hash, sizeof(hash), &q, &r, &s))
		goto out;
	ret = 0;
out:
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&s);
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_group_free(&grp);
	return ret;
}
