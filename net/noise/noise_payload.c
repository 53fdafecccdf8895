/*
 * The libp2p NoiseHandshakePayload (proto/libp2p/noise.proto): encoding ours once per node
 * (kw_noise_identity_init), decoding and verifying the remote's. Decoding is bounded by
 * noise.options and never allocates; the repeated extension fields go through callbacks so
 * a long list is counted and skipped instead of failing the handshake.
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>
#include <sodium.h>

#include "libp2p/noise.pb.h"
#include <kw/err.h>
#include <kw/net/noise.h>
#include <kw/rng.h>

#include "noise_priv.h"

_Static_assert(sizeof(((kw_libp2p_NoiseHandshakePayload *)0)->identity_key.bytes) >=
	       KW_PUBKEY_MAX + 4, "noise.options: identity_key must hold a PublicKey protobuf");
_Static_assert(sizeof(((kw_libp2p_NoiseHandshakePayload *)0)->identity_sig.bytes) == KW_SIG_MAX,
	       "noise.options: identity_sig must match KW_SIG_MAX");
_Static_assert(sizeof(KW_NOISE_SIG_PREFIX) - 1 == KW_NOISE_SIG_PREFIX_LEN, "prefix length");
/* RSA-8192 worst case: key field 3+1104, sig field 3+1024, extensions 3+n*(2+31). */
_Static_assert(KW_NOISE_PAYLOAD_MAX >= 3 + 1104 + 3 + KW_SIG_MAX + 3 +
	       KW_NOISE_MUXERS_MAX * (2 + KW_NOISE_MUXER_NAME_MAX - 1), "KW_NOISE_PAYLOAD_MAX");

struct muxer_list {
	const char *const *names;
	size_t n;
};

static bool encode_muxers(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct muxer_list *m = *arg;

	for (size_t i = 0; i < m->n; i++) {
		if (!pb_encode_tag_for_field(st, f) ||
		    !pb_encode_string(st, (const pb_byte_t *)m->names[i], strlen(m->names[i])))
			return false;
	}
	return true;
}

static void signed_bytes(const uint8_t static_pub[KW_NOISE_DH_LEN],
			 uint8_t out[KW_NOISE_SIG_PREFIX_LEN + KW_NOISE_DH_LEN])
{
	memcpy(out, KW_NOISE_SIG_PREFIX, KW_NOISE_SIG_PREFIX_LEN);
	memcpy(out + KW_NOISE_SIG_PREFIX_LEN, static_pub, KW_NOISE_DH_LEN);
}

int kw_noise_payload_encode(const struct kw_privkey *key, const uint8_t static_pub[KW_NOISE_DH_LEN],
			    const char *const *muxers, size_t n_muxers, uint8_t *out, size_t cap,
			    size_t *out_len)
{
	kw_libp2p_NoiseHandshakePayload msg = kw_libp2p_NoiseHandshakePayload_init_zero;
	struct muxer_list ml = { muxers, n_muxers };
	uint8_t tbs[KW_NOISE_SIG_PREFIX_LEN + KW_NOISE_DH_LEN];
	size_t n = 0;
	pb_ostream_t os;
	int err;

	err = kw_pubkey_encode(&key->pub, msg.identity_key.bytes, sizeof(msg.identity_key.bytes),
			       &n);
	if (err)
		return err;
	msg.has_identity_key = true;
	msg.identity_key.size = (pb_size_t)n;

	signed_bytes(static_pub, tbs);
	n = sizeof(msg.identity_sig.bytes);
	err = kw_key_sign(key, tbs, sizeof(tbs), msg.identity_sig.bytes, &n);
	if (err)
		return err;
	msg.has_identity_sig = true;
	msg.identity_sig.size = (pb_size_t)n;

	if (n_muxers) {
		msg.has_extensions = true;
		msg.extensions.stream_muxers.funcs.encode = encode_muxers;
		msg.extensions.stream_muxers.arg = &ml;
	}
	os = pb_ostream_from_buffer(out, cap);
	if (!pb_encode(&os, kw_libp2p_NoiseHandshakePayload_fields, &msg))
		return -KW_ENOSPC;
	*out_len = os.bytes_written;
	return 0;
}

static bool decode_muxer(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct kw_noise_remote_payload *p = *arg;
	size_t n = st->bytes_left;
	char *dst;

	if (p->muxers_total < UINT8_MAX)
		p->muxers_total++;
	if (p->n_muxers >= KW_NOISE_MUXERS_MAX || n >= KW_NOISE_MUXER_NAME_MAX)
		return pb_read(st, NULL, n);          /* counted, not kept */
	dst = p->muxers[p->n_muxers];
	if (!pb_read(st, (pb_byte_t *)dst, n))
		return false;
	dst[n] = '\0';
	if (n && memchr(dst, '\0', n) == NULL)    /* an embedded NUL would alias a real name */
		p->n_muxers++;
	return true;
}

static bool skip_field(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	return pb_read(st, NULL, st->bytes_left);
}

int kw_noise_payload_decode(const uint8_t *buf, size_t len, struct kw_noise_remote_payload *out)
{
	kw_libp2p_NoiseHandshakePayload msg;
	pb_istream_t is;
	int err;

	memset(out, 0, sizeof(*out));
	memset(&msg, 0, sizeof(msg));
	msg.extensions.stream_muxers.funcs.decode = decode_muxer;
	msg.extensions.stream_muxers.arg = out;
	msg.extensions.webtransport_certhashes.funcs.decode = skip_field;
	is = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&is, kw_libp2p_NoiseHandshakePayload_fields, &msg))
		return -KW_EHANDSHAKE;
	if (!msg.has_identity_key || !msg.has_identity_sig || msg.identity_sig.size == 0)
		return -KW_EHANDSHAKE;
	err = kw_pubkey_decode(msg.identity_key.bytes, msg.identity_key.size, &out->key);
	if (err)
		return err;
	out->sig_len = msg.identity_sig.size;
	memcpy(out->sig, msg.identity_sig.bytes, msg.identity_sig.size);
	return 0;
}

int kw_noise_payload_verify(const struct kw_noise_remote_payload *p,
			    const uint8_t remote_static[KW_NOISE_DH_LEN])
{
	uint8_t tbs[KW_NOISE_SIG_PREFIX_LEN + KW_NOISE_DH_LEN];

	signed_bytes(remote_static, tbs);
	return kw_pubkey_verify(&p->key, tbs, sizeof(tbs), p->sig, p->sig_len);
}

int kw_noise_identity_init(struct kw_noise_identity *id, const struct kw_privkey *key,
			   const char *const *muxers, size_t n_muxers, const uint8_t *static_priv)
{
	size_t len = 0;
	int err;

	if (!id || !key || n_muxers > KW_NOISE_MUXERS_MAX || (n_muxers && !muxers))
		return -KW_EINVAL;
	for (size_t i = 0; i < n_muxers; i++) {
		size_t l = muxers[i] ? strlen(muxers[i]) : 0;

		if (l == 0 || l >= KW_NOISE_MUXER_NAME_MAX)
			return -KW_EINVAL;
	}
	if (sodium_init() < 0)
		return -KW_EIO;
	memset(id, 0, sizeof(*id));
	if (static_priv) {
		memcpy(id->static_priv, static_priv, KW_NOISE_DH_LEN);
	} else {
		err = kw_rng_bytes(id->static_priv, KW_NOISE_DH_LEN);
		if (err)
			return err;
	}
	if (kw_noise_dh_public(id->static_priv, id->static_pub)) {
		kw_noise_identity_wipe(id);
		return -KW_EINVAL;
	}
	err = kw_noise_payload_encode(key, id->static_pub, muxers, n_muxers, id->payload,
				      sizeof(id->payload), &len);
	if (err) {
		kw_noise_identity_wipe(id);
		return err;
	}
	id->payload_len = (uint16_t)len;
	return 0;
}

void kw_noise_identity_wipe(struct kw_noise_identity *id)
{
	sodium_memzero(id->static_priv, sizeof(id->static_priv));
	id->payload_len = 0;
}
