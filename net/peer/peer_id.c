/*
 * Peer IDs: the multihash of a PublicKey protobuf (identity when it is at most 42 bytes,
 * sha2-256 otherwise) and its two text forms, bare base58btc and CIDv1 (libp2p-key codec).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/net/key.h>
#include <kw/net/multibase.h>
#include <kw/net/varint.h>

#define CID_VERSION_1    0x01
#define CODEC_LIBP2P_KEY 0x72

int kw_peer_id_from_pubkey(const struct kw_pubkey *k, struct kw_peer_id *out)
{
	uint8_t pb[KW_PUBKEY_MAX + 8];
	size_t len;
	int ret;

	ret = kw_pubkey_encode(k, pb, sizeof(pb), &len);
	if (ret < 0)
		return ret;
	if (len <= KW_PEER_ID_INLINE_MAX) {
		out->bytes[0] = KW_MH_IDENTITY;
		out->bytes[1] = (uint8_t)len;  /* <= 42: a one-byte uvarint */
		memcpy(out->bytes + 2, pb, len);
		out->len = (uint8_t)(len + 2);
	} else {
		out->bytes[0] = KW_MH_SHA2_256;
		out->bytes[1] = crypto_hash_sha256_BYTES;
		crypto_hash_sha256(out->bytes + 2, pb, len);
		out->len = 2 + crypto_hash_sha256_BYTES;
	}
	return 0;
}

bool kw_peer_id_equal(const struct kw_peer_id *a, const struct kw_peer_id *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

bool kw_peer_id_matches_pubkey(const struct kw_peer_id *id, const struct kw_pubkey *k)
{
	struct kw_peer_id mine;

	return kw_peer_id_from_pubkey(k, &mine) == 0 && kw_peer_id_equal(id, &mine);
}

int kw_peer_id_from_bytes(const uint8_t *buf, size_t len, struct kw_peer_id *out)
{
	struct kw_pubkey pk;
	const uint8_t *digest;
	uint64_t code;
	size_t dlen;

	if (len > KW_PEER_ID_MAX)
		return -KW_EINVAL;
	if (kw_multihash_parse(buf, len, &code, &digest, &dlen) < 0)
		return -KW_EINVAL;
	/* An inlined key must be a key (what js checks too): a peer ID nobody can hold is junk. */
	if (code == KW_MH_IDENTITY) {
		int ret;

		if (dlen > KW_PEER_ID_INLINE_MAX)
			return -KW_EINVAL;
		ret = kw_pubkey_decode(digest, dlen, &pk);
		/* A known type that this build leaves out is still somebody's valid identity. */
		if (ret == -KW_EKEYTYPE && dlen >= 2 && digest[0] == 0x08 && digest[1] <= KW_KEY_ECDSA)
			ret = 0;
		if (ret < 0)
			return -KW_EINVAL;
	}
	memcpy(out->bytes, buf, len);
	out->len = (uint8_t)len;
	return 0;
}

int kw_peer_id_pubkey(const struct kw_peer_id *id, struct kw_pubkey *out)
{
	const uint8_t *digest;
	uint64_t code;
	size_t dlen;

	if (kw_multihash_parse(id->bytes, id->len, &code, &digest, &dlen) < 0)
		return -KW_EINVAL;
	if (code != KW_MH_IDENTITY)
		return -KW_ENOENT;
	return kw_pubkey_decode(digest, dlen, out) < 0 ? -KW_EINVAL : 0;
}

int kw_peer_id_to_text(const struct kw_peer_id *id, char *out, size_t cap)
{
	int ret = kw_base58_encode(id->bytes, id->len, out, cap);

	return ret < 0 ? -KW_ENOSPC : 0;
}

void kw_peer_id_short(const struct kw_peer_id *id, char *out, size_t cap)
{
	char t[KW_PEER_ID_TEXT_MAX];
	size_t n;

	if (cap < KW_PEER_ID_SHORT_MAX) {
		if (cap)
			out[0] = '\0';
		return;
	}
	if (!id || id->len == 0 || kw_peer_id_to_text(id, t, sizeof(t)) < 0) {
		snprintf(out, cap, "?");
		return;
	}
	n = strlen(t);
	if (n <= 20)
		snprintf(out, cap, "%s", t);
	else
		snprintf(out, cap, "%.8s..%s", t, t + n - 6);
}

int kw_peer_id_to_cid_text(const struct kw_peer_id *id, char *out, size_t cap)
{
	uint8_t cid[2 + KW_PEER_ID_MAX];
	int ret;

	if (cap < 2)
		return -KW_ENOSPC;
	cid[0] = CID_VERSION_1;
	cid[1] = CODEC_LIBP2P_KEY;
	memcpy(cid + 2, id->bytes, id->len);
	out[0] = 'b';
	ret = kw_base32_encode(cid, 2u + id->len, out + 1, cap - 1);
	return ret < 0 ? -KW_ENOSPC : 0;
}

int kw_peer_id_from_text(const char *s, struct kw_peer_id *out)
{
	uint8_t bin[2 * KW_PEER_ID_MAX];
	size_t slen = strnlen(s, KW_PEER_ID_TEXT_MAX);
	uint64_t v;
	int n, a, b;

	if (slen == 0 || slen >= KW_PEER_ID_TEXT_MAX)
		return -KW_EINVAL;
	if (s[0] == '1' || s[0] == 'Q') {
		/* Bare base58btc multihash (legacy form, no multibase prefix). */
		n = kw_base58_decode(s, slen, bin, sizeof(bin));
		if (n < 0)
			return -KW_EINVAL;
		return kw_peer_id_from_bytes(bin, (size_t)n, out);
	}
	/* Otherwise a multibase CIDv1: base32 'b' (the default) or base36 'k' (IPNS style). */
	if (s[0] == 'b')
		n = kw_base32_decode(s + 1, slen - 1, bin, sizeof(bin));
	else if (s[0] == 'k')
		n = kw_base36_decode(s + 1, slen - 1, bin, sizeof(bin));
	else
		return -KW_EINVAL;
	if (n < 0)
		return -KW_EINVAL;
	a = kw_uvarint_decode(bin, (size_t)n, &v);
	if (a < 0 || v != CID_VERSION_1)
		return -KW_EINVAL;
	b = kw_uvarint_decode(bin + a, (size_t)n - (size_t)a, &v);
	if (b < 0 || v != CODEC_LIBP2P_KEY)
		return -KW_EINVAL;
	return kw_peer_id_from_bytes(bin + a + b, (size_t)n - (size_t)a - (size_t)b, out);
}
