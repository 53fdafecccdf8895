/*
 * The XX HandshakeState (Noise spec rev 34, section 5.3, pattern XX), written out message by
 * message rather than as a token interpreter: libp2p uses exactly one pattern.
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 * Messages are processed in place so the session layer can decrypt inside the caller's
 * receive buffer. A failed read leaves the state unusable; the caller drops it.
 */
#include <string.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/net/noise.h>
#include <kw/rng.h>

#include "noise_priv.h"

int kw_noise_dh_public(const uint8_t priv[KW_NOISE_DH_LEN], uint8_t pub[KW_NOISE_DH_LEN])
{
	return crypto_scalarmult_base(pub, priv) == 0 ? 0 : -KW_EINVAL;
}

/* DH(priv, pub) mixed into the chaining key. libsodium refuses an all-zero result (a
 * low-order remote point), which Noise allows implementations to reject. */
static int mix_dh(struct kw_noise_xx *x, const uint8_t *priv, const uint8_t *pub)
{
	uint8_t shared[KW_NOISE_DH_LEN];

	if (crypto_scalarmult(shared, priv, pub) != 0) {
		sodium_memzero(shared, sizeof(shared));
		return -KW_EHANDSHAKE;
	}
	kw_noise_sym_mix_key(&x->ss, shared, sizeof(shared));
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

int kw_noise_xx_init(struct kw_noise_xx *x, bool initiator, const uint8_t *prologue,
		     size_t prologue_len, const uint8_t s_priv[KW_NOISE_DH_LEN],
		     const uint8_t *e_priv)
{
	return kw_noise_xx_setup(x, initiator, prologue, prologue_len, s_priv, NULL, e_priv);
}

int kw_noise_xx_setup(struct kw_noise_xx *x, bool initiator, const uint8_t *prologue,
		      size_t prologue_len, const uint8_t s_priv[KW_NOISE_DH_LEN],
		      const uint8_t *s_pub, const uint8_t *e_priv)
{
	int err;

	if (!x || !s_priv || (!prologue && prologue_len))
		return -KW_EINVAL;
	if (sodium_init() < 0)
		return -KW_EIO;
	memset(x, 0, sizeof(*x));
	x->initiator = initiator;
	kw_noise_sym_init(&x->ss, KW_NOISE_PROTOCOL_NAME);
	kw_noise_sym_mix_hash(&x->ss, prologue, prologue_len);
	memcpy(x->s, s_priv, KW_NOISE_DH_LEN);
	if (e_priv) {
		memcpy(x->e, e_priv, KW_NOISE_DH_LEN);
	} else {
		err = kw_rng_bytes(x->e, KW_NOISE_DH_LEN);
		if (err)
			return err;
	}
	if (s_pub)
		memcpy(x->s_pub, s_pub, KW_NOISE_DH_LEN);
	else if (kw_noise_dh_public(x->s, x->s_pub))
		return -KW_EINVAL;
	if (kw_noise_dh_public(x->e, x->e_pub))
		return -KW_EINVAL;
	return 0;
}

static bool our_turn(const struct kw_noise_xx *x)
{
	if (x->step >= 3)
		return false;
	return x->initiator == ((x->step & 1) == 0);
}

size_t kw_noise_xx_write_len(const struct kw_noise_xx *x, size_t payload_len)
{
	if (!our_turn(x))
		return 0;
	switch (x->step) {
	case 0:
		return KW_NOISE_DH_LEN + payload_len;
	case 1:
		return KW_NOISE_DH_LEN + KW_NOISE_DH_LEN + KW_NOISE_TAG_LEN + payload_len +
		       KW_NOISE_TAG_LEN;
	default:
		return KW_NOISE_DH_LEN + KW_NOISE_TAG_LEN + payload_len + KW_NOISE_TAG_LEN;
	}
}

int kw_noise_xx_write(struct kw_noise_xx *x, const uint8_t *payload, size_t payload_len,
		      uint8_t *out, size_t cap, size_t *out_len)
{
	size_t need = kw_noise_xx_write_len(x, payload_len), off = 0;
	int err;

	if (!need)
		return -KW_EPROTO;
	if (need > KW_NOISE_MSG_MAX)
		return -KW_EMSGSIZE;
	if (need > cap)
		return -KW_ENOSPC;

	if (x->step == 0 || x->step == 1) {               /* e */
		memcpy(out, x->e_pub, KW_NOISE_DH_LEN);
		kw_noise_sym_mix_hash(&x->ss, x->e_pub, KW_NOISE_DH_LEN);
		off = KW_NOISE_DH_LEN;
	}
	if (x->step == 1) {
		err = mix_dh(x, x->e, x->re);                 /* ee */
		if (err)
			return err;
	}
	if (x->step >= 1) {                               /* s */
		err = kw_noise_sym_encrypt_and_hash(&x->ss, x->s_pub, KW_NOISE_DH_LEN, out + off);
		if (err)
			return err;
		off += KW_NOISE_DH_LEN + kw_noise_sym_overhead(&x->ss);
		err = mix_dh(x, x->s, x->re);                 /* es (responder) / se (initiator) */
		if (err)
			return err;
	}
	err = kw_noise_sym_encrypt_and_hash(&x->ss, payload, payload_len, out + off);
	if (err)
		return err;
	off += payload_len + kw_noise_sym_overhead(&x->ss);
	x->step++;
	*out_len = off;
	return 0;
}

int kw_noise_xx_read(struct kw_noise_xx *x, uint8_t *msg, size_t len, const uint8_t **payload,
		     size_t *payload_len)
{
	size_t off = 0, n;
	int err;

	if (x->step >= 3 || our_turn(x))
		return -KW_EPROTO;
	if (x->step == 0 || x->step == 1) {               /* e */
		if (len < KW_NOISE_DH_LEN)
			return -KW_EHANDSHAKE;
		memcpy(x->re, msg, KW_NOISE_DH_LEN);
		kw_noise_sym_mix_hash(&x->ss, x->re, KW_NOISE_DH_LEN);
		off = KW_NOISE_DH_LEN;
	}
	if (x->step == 1) {
		err = mix_dh(x, x->e, x->re);                 /* ee */
		if (err)
			return err;
	}
	if (x->step >= 1) {                               /* s */
		n = KW_NOISE_DH_LEN + kw_noise_sym_overhead(&x->ss);
		if (len - off < n)
			return -KW_EHANDSHAKE;
		if (kw_noise_sym_decrypt_and_hash(&x->ss, msg + off, n, msg + off))
			return -KW_EHANDSHAKE;
		memcpy(x->rs, msg + off, KW_NOISE_DH_LEN);
		off += n;
		err = mix_dh(x, x->e, x->rs);                 /* es (initiator) / se (responder) */
		if (err)
			return err;
	}
	n = len - off;
	if (n < kw_noise_sym_overhead(&x->ss))
		return -KW_EHANDSHAKE;
	if (kw_noise_sym_decrypt_and_hash(&x->ss, msg + off, n, msg + off))
		return -KW_EHANDSHAKE;
	*payload = msg + off;
	*payload_len = n - kw_noise_sym_overhead(&x->ss);
	x->step++;
	return 0;
}

bool kw_noise_xx_done(const struct kw_noise_xx *x)
{
	return x->step == 3;
}

const uint8_t *kw_noise_xx_hash(const struct kw_noise_xx *x)
{
	return x->ss.h;
}

int kw_noise_xx_split(struct kw_noise_xx *x, struct kw_noise_cipher *send,
		      struct kw_noise_cipher *recv)
{
	struct kw_noise_cipher c1, c2;
	bool initiator = x->initiator;

	if (!kw_noise_xx_done(x))
		return -KW_EPROTO;
	kw_noise_sym_split(&x->ss, &c1, &c2);
	/* The caller may pass ciphers that overlay x (a union in the session): write them
	 * only after x is no longer read. */
	sodium_memzero(x->s, sizeof(x->s));
	sodium_memzero(x->e, sizeof(x->e));
	sodium_memzero(x->ss.ck, sizeof(x->ss.ck));
	kw_noise_cipher_wipe(&x->ss.cs);
	*send = initiator ? c1 : c2;
	*recv = initiator ? c2 : c1;
	sodium_memzero(&c1, sizeof(c1));
	sodium_memzero(&c2, sizeof(c2));
	return 0;
}
