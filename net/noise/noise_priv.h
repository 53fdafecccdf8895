/* Internals shared by the net/noise files: the SymmetricState operations of the Noise spec
 * (section 5.2) and HKDF. Not for other subsystems; they use include/kw/net/noise.h. */
#ifndef KW_NET_NOISE_PRIV_H
#define KW_NET_NOISE_PRIV_H

#include <kw/net/noise.h>

#define KW_NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256"

/* HKDF(ck, ikm) with two outputs, as the Noise spec defines it on HMAC-SHA256. */
void kw_noise_hkdf2(const uint8_t ck[KW_NOISE_HASH_LEN], const uint8_t *ikm, size_t ikm_len,
		    uint8_t out1[KW_NOISE_HASH_LEN], uint8_t out2[KW_NOISE_HASH_LEN]);

void kw_noise_sym_init(struct kw_noise_symmetric *ss, const char *protocol_name);
void kw_noise_sym_mix_hash(struct kw_noise_symmetric *ss, const uint8_t *data, size_t len);
void kw_noise_sym_mix_key(struct kw_noise_symmetric *ss, const uint8_t *ikm, size_t len);
/* out gets len (+16 once keyed) bytes; out may equal pt. Return: 0 or -KW_ERANGE. */
int kw_noise_sym_encrypt_and_hash(struct kw_noise_symmetric *ss, const uint8_t *pt, size_t len,
				  uint8_t *out);
/* out may equal ct; h only advances on success. Return: 0, -KW_EBADMSG, -KW_ERANGE. */
int kw_noise_sym_decrypt_and_hash(struct kw_noise_symmetric *ss, const uint8_t *ct, size_t len,
				  uint8_t *out);
void kw_noise_sym_split(const struct kw_noise_symmetric *ss, struct kw_noise_cipher *c1,
			struct kw_noise_cipher *c2);
/* Bytes EncryptAndHash adds to a plaintext (the tag once a key is set). */
static inline size_t kw_noise_sym_overhead(const struct kw_noise_symmetric *ss)
{
	return ss->cs.has_key ? KW_NOISE_TAG_LEN : 0;
}

/* "noise-libp2p-static-key:" (24 bytes), the prefix of the signed static key. */
#define KW_NOISE_SIG_PREFIX "noise-libp2p-static-key:"
#define KW_NOISE_SIG_PREFIX_LEN 24

/* kw_noise_xx_init with the static public key already known (NULL: derive it). */
int kw_noise_xx_setup(struct kw_noise_xx *x, bool initiator, const uint8_t *prologue,
		      size_t prologue_len, const uint8_t s_priv[KW_NOISE_DH_LEN],
		      const uint8_t *s_pub, const uint8_t *e_priv);
/*
 * Encodes our NoiseHandshakePayload: identity key, signature over the prefix and static_pub,
 * stream muxers. Return: 0, -KW_ENOSPC, or kw_key_sign's / kw_pubkey_encode's error.
 */
int kw_noise_payload_encode(const struct kw_privkey *key, const uint8_t static_pub[KW_NOISE_DH_LEN],
			    const char *const *muxers, size_t n_muxers, uint8_t *out, size_t cap,
			    size_t *out_len);

#endif
