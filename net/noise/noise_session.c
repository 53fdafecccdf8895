/*
 * The libp2p Noise session: u16 big-endian framing of every message, the XX handshake with
 * libp2p's signed payload (remote identity verified in msg2 / msg3, expected peer id, muxer
 * extension), then the transport with one CipherState per direction and empty AD.
 *
 * Receive path without staging copies where possible: a transport frame that arrives whole
 * in one chunk is decrypted straight from the input into the caller's buffer; a frame split
 * across chunks is gathered in the caller's buffer and decrypted in place. Only the 2-byte
 * length header and counters live in the session.
 */
#include <string.h>

#include <sodium.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/net/noise.h>

#include "noise_priv.h"

static int fail(struct kw_noise_session *s, int err)
{
	if (s->state != KW_NOISE_FAILED)
		KW_LOG_DBG(noise, "session failed: %s", kw_strerror(err));
	/* Drop every secret: the handshake state or the transport keys share the union. */
	sodium_memzero(&s->u, sizeof(s->u));
	s->state = KW_NOISE_FAILED;
	s->err = err;
	return err;
}

int kw_noise_session_init(struct kw_noise_session *s, const struct kw_noise_identity *local,
			  bool initiator, const struct kw_noise_opts *opts)
{
	int err;

	if (!s || !local || local->payload_len == 0)
		return -KW_EINVAL;
	memset(s, 0, sizeof(*s));
	s->local = local;
	s->initiator = initiator;
	if (opts && opts->expected_peer) {
		s->expected = *opts->expected_peer;
		s->have_expected = true;
	}
	err = kw_noise_xx_setup(&s->u.hs, initiator, NULL, 0, local->static_priv, local->static_pub,
				opts ? opts->ephemeral_priv : NULL);
	if (err)
		return fail(s, err);
	s->state = initiator ? KW_NOISE_HS_WRITE : KW_NOISE_HS_READ;
	return 0;
}

enum kw_noise_state kw_noise_state(const struct kw_noise_session *s)
{
	return (enum kw_noise_state)s->state;
}

bool kw_noise_want_write(const struct kw_noise_session *s)
{
	return s->state == KW_NOISE_HS_WRITE;
}

bool kw_noise_established(const struct kw_noise_session *s)
{
	return s->state == KW_NOISE_ESTABLISHED;
}

static void establish(struct kw_noise_session *s)
{
	struct kw_noise_cipher tx, rx;

	memcpy(s->hash, kw_noise_xx_hash(&s->u.hs), KW_NOISE_HASH_LEN);
	kw_noise_xx_split(&s->u.hs, &tx, &rx);   /* cannot fail: the handshake is done */
	sodium_memzero(&s->u, sizeof(s->u));
	s->u.t.tx = tx;
	s->u.t.rx = rx;
	sodium_memzero(&tx, sizeof(tx));
	sodium_memzero(&rx, sizeof(rx));
	s->state = KW_NOISE_ESTABLISHED;
	if (KW_LOG_MAX >= KW_LOG_LEVEL_DBG && kw_log_get_level() >= KW_LOG_LEVEL_DBG) {
		char txt[KW_PEER_ID_TEXT_MAX];

		if (kw_peer_id_to_text(&s->remote, txt, sizeof(txt)) == 0)
			KW_LOG_DBG(noise, "secured %s %s, %u muxer(s) offered",
				   s->initiator ? "to" : "from", txt, s->remote_muxers_total);
	}
}

int kw_noise_handshake_write(struct kw_noise_session *s, uint8_t *out, size_t cap,
			     size_t *out_len)
{
	const uint8_t *payload = NULL;
	size_t plen = 0, need, n = 0;
	int err;

	if (s->state == KW_NOISE_FAILED)
		return s->err;
	if (s->state != KW_NOISE_HS_WRITE)
		return -KW_EPROTO;
	/* msg1 carries no payload (libp2p); msg2 and msg3 carry our identity. */
	if (s->u.hs.step > 0) {
		payload = s->local->payload;
		plen = s->local->payload_len;
	}
	need = KW_NOISE_FRAME_HDR + kw_noise_xx_write_len(&s->u.hs, plen);
	if (cap < need)
		return -KW_ENOSPC;
	err = kw_noise_xx_write(&s->u.hs, payload, plen, out + KW_NOISE_FRAME_HDR,
				cap - KW_NOISE_FRAME_HDR, &n);
	if (err)
		return fail(s, err);
	kw_put_be16(out, (uint16_t)n);
	*out_len = n + KW_NOISE_FRAME_HDR;
	if (kw_noise_xx_done(&s->u.hs))
		establish(s);
	else
		s->state = KW_NOISE_HS_READ;
	return 0;
}

/* The remote's msg2 (we dialed) or msg3 (we listened): authenticate its identity. */
static int accept_identity(struct kw_noise_session *s, const uint8_t *payload, size_t len)
{
	struct kw_noise_remote_payload rp;
	int err;

	err = kw_noise_payload_decode(payload, len, &rp);
	if (err)
		return err == -KW_EKEYTYPE ? err : -KW_EHANDSHAKE;
	err = kw_noise_payload_verify(&rp, s->u.hs.rs);
	if (err)
		return err;
	err = kw_peer_id_from_pubkey(&rp.key, &s->remote);
	if (err)
		return -KW_EHANDSHAKE;
	if (s->have_expected && !kw_peer_id_equal(&s->expected, &s->remote))
		return -KW_EPEERID;
	/* Early data only becomes visible once the signature checked out (noise spec). */
	s->n_remote_muxers = rp.n_muxers;
	s->remote_muxers_total = rp.muxers_total;
	memcpy(s->remote_muxers, rp.muxers, sizeof(s->remote_muxers));
	return 0;
}

static int handshake_frame(struct kw_noise_session *s, uint8_t *msg, size_t len)
{
	const uint8_t *payload;
	size_t plen;
	int err;

	err = kw_noise_xx_read(&s->u.hs, msg, len, &payload, &plen);
	if (err)
		return err;
	if (s->u.hs.step == 1) {
		/* msg1: libp2p sends no payload; Noise hashed whatever came, nothing acts on it. */
		s->state = KW_NOISE_HS_WRITE;
		return 0;
	}
	err = accept_identity(s, payload, plen);
	if (err)
		return err;
	if (kw_noise_xx_done(&s->u.hs))
		establish(s);
	else
		s->state = KW_NOISE_HS_WRITE;
	return 0;
}

static void rx_reset(struct kw_noise_session *s)
{
	s->rx_hdr_have = 0;
	s->rx_len = 0;
	s->rx_have = 0;
}

long kw_noise_read(struct kw_noise_session *s, const uint8_t *in, size_t len, uint8_t *buf,
		   size_t cap, const uint8_t **plain, size_t *plain_len)
{
	size_t used = 0, take;
	int err;

	*plain = NULL;
	*plain_len = 0;
	if (s->state == KW_NOISE_FAILED)
		return s->err;
	if (len == 0)
		return 0;
	if (s->state == KW_NOISE_HS_WRITE)  /* the remote cannot speak before our message */
		return fail(s, -KW_EPROTO);

	while (s->rx_hdr_have < KW_NOISE_FRAME_HDR) {
		if (used == len)
			return (long)used;
		s->rx_hdr[s->rx_hdr_have++] = in[used++];
		if (s->rx_hdr_have == KW_NOISE_FRAME_HDR) {
			s->rx_len = kw_get_be16(s->rx_hdr);
			s->rx_have = 0;
			if (s->rx_len > cap)
				return fail(s, -KW_EMSGSIZE);
		}
	}

	if (s->state == KW_NOISE_ESTABLISHED && s->rx_have == 0 && len - used >= s->rx_len) {
		/* Whole frame in this chunk: decrypt from the input, no staging copy. */
		err = kw_noise_cipher_decrypt(&s->u.t.rx, NULL, 0, in + used, s->rx_len, buf);
		if (err)
			return fail(s, err);
		used += s->rx_len;
		*plain = buf;
		*plain_len = s->rx_len - KW_NOISE_TAG_LEN;
		rx_reset(s);
		return (long)used;
	}

	take = KW_MIN((size_t)(s->rx_len - s->rx_have), len - used);
	if (take)
		memcpy(buf + s->rx_have, in + used, take);
	s->rx_have = (uint16_t)(s->rx_have + take);
	used += take;
	if (s->rx_have < s->rx_len)
		return (long)used;

	take = s->rx_len;
	rx_reset(s);
	if (s->state == KW_NOISE_ESTABLISHED) {
		err = kw_noise_cipher_decrypt(&s->u.t.rx, NULL, 0, buf, take, buf);
		if (err)
			return fail(s, err);
		*plain = buf;
		*plain_len = take - KW_NOISE_TAG_LEN;
	} else {
		err = handshake_frame(s, buf, take);
		if (err)
			return fail(s, err);
	}
	return (long)used;
}

long kw_noise_read_inplace(struct kw_noise_session *s, uint8_t *in, size_t len,
			   const uint8_t **plain, size_t *plain_len)
{
	size_t used = 0, body;
	int err;

	*plain = NULL;
	*plain_len = 0;
	if (s->state == KW_NOISE_FAILED)
		return s->err;
	if (len == 0)
		return 0;
	if (s->state == KW_NOISE_HS_WRITE)  /* the remote cannot speak before our message */
		return fail(s, -KW_EPROTO);
	if (s->rx_have)  /* a body half copied by kw_noise_read: the modes must not mix */
		return fail(s, -KW_EPROTO);
	while (s->rx_hdr_have < KW_NOISE_FRAME_HDR) {
		if (used == len)
			return (long)used;
		s->rx_hdr[s->rx_hdr_have++] = in[used++];
		if (s->rx_hdr_have == KW_NOISE_FRAME_HDR)
			s->rx_len = kw_get_be16(s->rx_hdr);
	}
	body = s->rx_len;
	if (len - used < body)
		return (long)used;  /* the header is ours; the partial body stays with the caller */
	rx_reset(s);
	if (s->state == KW_NOISE_ESTABLISHED) {
		err = kw_noise_cipher_decrypt(&s->u.t.rx, NULL, 0, in + used, body, in + used);
		if (err)
			return fail(s, err);
		*plain = in + used;
		*plain_len = body - KW_NOISE_TAG_LEN;
	} else {
		err = handshake_frame(s, in + used, body);
		if (err)
			return fail(s, err);
	}
	return (long)(used + body);
}

bool kw_noise_rx_body_pending(const struct kw_noise_session *s)
{
	return s->rx_hdr_have == KW_NOISE_FRAME_HDR && s->rx_len > 0;
}

bool kw_noise_rx_partial(const struct kw_noise_session *s)
{
	return s->rx_have > 0;
}

int kw_noise_encrypt(struct kw_noise_session *s, const uint8_t *pt, size_t len, uint8_t *out,
		     size_t cap, size_t *out_len)
{
	int err;

	if (s->state == KW_NOISE_FAILED)
		return s->err;
	if (s->state != KW_NOISE_ESTABLISHED)
		return -KW_ENOTCONN;
	if (len > KW_NOISE_PLAINTEXT_MAX)
		return -KW_EMSGSIZE;
	if (cap < len + KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN)
		return -KW_ENOSPC;
	err = kw_noise_cipher_encrypt(&s->u.t.tx, NULL, 0, pt, len, out + KW_NOISE_FRAME_HDR);
	if (err)
		return fail(s, err);
	kw_put_be16(out, (uint16_t)(len + KW_NOISE_TAG_LEN));
	*out_len = len + KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN;
	return 0;
}

size_t kw_noise_encrypt_all_len(size_t len)
{
	size_t frames = (len + KW_NOISE_PLAINTEXT_MAX - 1) / KW_NOISE_PLAINTEXT_MAX;

	return len + frames * (KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN);
}

int kw_noise_encrypt_all(struct kw_noise_session *s, const uint8_t *pt, size_t len,
			 uint8_t *out, size_t cap, size_t *out_len)
{
	size_t off = 0, n = 0;
	int err;

	if (s->state == KW_NOISE_FAILED)
		return s->err;
	if (s->state != KW_NOISE_ESTABLISHED)
		return -KW_ENOTCONN;
	if (cap < kw_noise_encrypt_all_len(len))
		return -KW_ENOSPC;
	*out_len = 0;
	while (len) {
		size_t chunk = KW_MIN(len, (size_t)KW_NOISE_PLAINTEXT_MAX);

		err = kw_noise_encrypt(s, pt, chunk, out + off, cap - off, &n);
		if (err)
			return err;
		pt += chunk;
		len -= chunk;
		off += n;
	}
	*out_len = off;
	return 0;
}

const struct kw_peer_id *kw_noise_remote_peer(const struct kw_noise_session *s)
{
	return s->state == KW_NOISE_ESTABLISHED ? &s->remote : NULL;
}

const uint8_t *kw_noise_handshake_hash(const struct kw_noise_session *s)
{
	return s->state == KW_NOISE_ESTABLISHED ? s->hash : NULL;
}

size_t kw_noise_remote_muxer_count(const struct kw_noise_session *s)
{
	return s->state == KW_NOISE_ESTABLISHED ? s->remote_muxers_total : 0;
}

const char *kw_noise_remote_muxer(const struct kw_noise_session *s, size_t i)
{
	if (s->state != KW_NOISE_ESTABLISHED || i >= s->n_remote_muxers)
		return NULL;
	return s->remote_muxers[i];
}

bool kw_noise_remote_offers_muxer(const struct kw_noise_session *s, const char *name)
{
	for (size_t i = 0; s->state == KW_NOISE_ESTABLISHED && i < s->n_remote_muxers; i++)
		if (strcmp(s->remote_muxers[i], name) == 0)
			return true;
	return false;
}

void kw_noise_session_wipe(struct kw_noise_session *s)
{
	fail(s, -KW_ECONNABORTED);
	rx_reset(s);
}
