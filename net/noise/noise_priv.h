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

#endif
