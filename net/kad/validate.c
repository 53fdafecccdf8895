/*
 * Record validators for the namespaces this DHT serves (include/kw/net/kad_store.h), as
 * go-libp2p-record's NamespacedValidator does for go-libp2p-kad-dht: a record is accepted
 * only when the validator of its key's namespace accepts it, and among several valid values
 * the validator's Select picks one.
 *
 * /pk/<multihash>: go-libp2p-record v0.2.0 validator.go PublicKeyValidator: the value is a
 * libp2p PublicKey protobuf whose peer ID is the multihash in the key.
 * /kwaai/...: this network's signed envelope, wire format and signed bytes in doc/net-kad.md
 * ("Records and providers"). The envelope is a protobuf decoded by hand here (fields are
 * borrowed pointers into the value, so nothing is copied and no nanopb struct needs room for
 * a 16 KiB value), and the signature covers a SHA-256 digest so that signing and checking
 * never need a buffer the size of the record.
 */
#include <sodium.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/net/kad_msg.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>
#include <kw/net/varint.h>

#include "record.h"

#define PK_NS     "/pk/"
#define KWAAI_NS  "/kwaai/"

enum ns { NS_NONE, NS_PK, NS_KWAAI };

/* Envelope field numbers (doc/net-kad.md). */
enum { F_PUBLISHER = 1, F_SEQ = 2, F_EXPIRY = 3, F_VALUE = 4, F_SIGNATURE = 5 };

struct env {
	const uint8_t *pub, *val, *sig;
	size_t publen, vlen, siglen;
	uint64_t seq, expiry;
	unsigned seen;     /* bit per field number */
};

static enum ns ns_of(const uint8_t *key, size_t klen)
{
	if (klen >= sizeof(PK_NS) - 1 && !memcmp(key, PK_NS, sizeof(PK_NS) - 1))
		return NS_PK;
	if (klen >= sizeof(KWAAI_NS) - 1 && !memcmp(key, KWAAI_NS, sizeof(KWAAI_NS) - 1))
		return NS_KWAAI;
	return NS_NONE;
}

/* The key's first path segment, printable, for error messages ("/ipns/", "?"). */
static void ns_text(const uint8_t *key, size_t klen, char *out, size_t cap)
{
	size_t i, n = 0;

	for (i = 0; i < klen && n + 4 < cap && i < 24; i++) {
		if (i > 0 && key[i] == '/') {
			out[n++] = '/';
			break;
		}
		out[n++] = key[i] >= 0x20 && key[i] < 0x7f ? (char)key[i] : '?';
	}
	out[n] = '\0';
}

/* Protobuf base-128 varint, up to 10 bytes (the full uint64 range). */
static int pb_varint(const uint8_t *b, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t x = 0;
	unsigned shift;

	for (shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (*pos >= len)
			return -1;
		c = b[(*pos)++];
		if (shift == 63 && c > 1)
			return -1;
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

static size_t pb_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * Decodes the envelope. Strict: only fields 1..5, each at most once, with their wire types;
 * anything else is malformed, since bytes the signature does not cover must not ride along.
 */
static int env_parse(const uint8_t *b, size_t len, struct env *e, char *err, size_t errcap)
{
	size_t pos = 0;

	memset(e, 0, sizeof(*e));
	while (pos < len) {
		uint64_t tag, v;
		unsigned field, wt;

		if (pb_varint(b, len, &pos, &tag) < 0)
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "/kwaai/ envelope: truncated field tag at byte %zu", pos);
		field = (unsigned)(tag >> 3);
		wt = (unsigned)(tag & 7);
		if ((tag >> 3) < F_PUBLISHER || (tag >> 3) > F_SIGNATURE)
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "/kwaai/ envelope: unknown field %llu",
				       (unsigned long long)(tag >> 3));
		if (e->seen & (1u << field))
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "/kwaai/ envelope: field %u repeated", field);
		e->seen |= 1u << field;
		if (field == F_SEQ || field == F_EXPIRY) {
			if (wt != 0)
				return kw_errf(-KW_EBADMSG, err, errcap,
					       "/kwaai/ envelope: field %u has wire type %u, not "
					       "varint", field, wt);
			if (pb_varint(b, len, &pos, &v) < 0)
				return kw_errf(-KW_EBADMSG, err, errcap,
					       "/kwaai/ envelope: bad varint in field %u", field);
			if (field == F_SEQ)
				e->seq = v;
			else
				e->expiry = v;
			continue;
		}
		if (wt != 2)
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "/kwaai/ envelope: field %u has wire type %u, not bytes",
				       field, wt);
		if (pb_varint(b, len, &pos, &v) < 0 || v > len - pos)
			return kw_errf(-KW_EBADMSG, err, errcap,
				       "/kwaai/ envelope: field %u length runs past the end",
				       field);
		if (field == F_PUBLISHER) {
			e->pub = b + pos;
			e->publen = (size_t)v;
		} else if (field == F_VALUE) {
			e->val = b + pos;
			e->vlen = (size_t)v;
		} else {
			e->sig = b + pos;
			e->siglen = (size_t)v;
		}
		pos += (size_t)v;
	}
	return 0;
}

/*
 * The signed message: "kwaai-record:" || SHA-256(uvarint(klen) || key || be64(seq) ||
 * be64(expiry) || uvarint(vlen) || value), 45 bytes (doc/net-kad.md).
 */
static void signed_msg(const uint8_t *key, size_t klen, uint64_t seq, uint64_t expiry,
		       const uint8_t *val, size_t vlen, uint8_t msg[13 + 32])
{
	crypto_hash_sha256_state h;
	uint8_t tmp[16];
	size_t n;

	crypto_hash_sha256_init(&h);
	n = pb_varint_put(tmp, klen);
	crypto_hash_sha256_update(&h, tmp, n);
	crypto_hash_sha256_update(&h, key, klen);
	kw_put_be64(tmp, seq);
	kw_put_be64(tmp + 8, expiry);
	crypto_hash_sha256_update(&h, tmp, 16);
	n = pb_varint_put(tmp, vlen);
	crypto_hash_sha256_update(&h, tmp, n);
	crypto_hash_sha256_update(&h, val, vlen);
	memcpy(msg, KW_KAD_KWAAI_DOMAIN, 13);
	crypto_hash_sha256_final(&h, msg + 13);
}

/*
 * Owner-bound keys: "/kwaai/<peer-id-text>" or "/kwaai/<peer-id-text>/...", where the
 * segment parses as a peer ID (kw_peer_id_from_text). Return: true with *owner set.
 */
static bool kwaai_owner(const uint8_t *key, size_t klen, struct kw_peer_id *owner)
{
	char seg[KW_PEER_ID_TEXT_MAX];
	size_t i, start = sizeof(KWAAI_NS) - 1;

	for (i = start; i < klen && key[i] != '/'; i++)
		if (i - start >= sizeof(seg) - 1)
			return false;
	if (i == start)
		return false;
	memcpy(seg, key + start, i - start);
	seg[i - start] = '\0';
	if (strlen(seg) != i - start)  /* a NUL inside the segment */
		return false;
	return kw_peer_id_from_text(seg, owner) == 0;
}

static int validate_pk(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		       char *err, size_t errcap)
{
	struct kw_peer_id want, got;
	struct kw_pubkey pub;
	char a[KW_PEER_ID_SHORT_MAX], b[KW_PEER_ID_SHORT_MAX];
	int ret;

	if (kw_peer_id_from_bytes(key + 4, klen - 4, &want) < 0)
		return kw_errf(-KW_EBADMSG, err, errcap,
			       "/pk/ key: the %zu bytes after /pk/ are not a peer ID multihash",
			       klen - 4);
	ret = kw_pubkey_decode(val, vlen, &pub);
	if (ret < 0)
		return kw_errf(-KW_EBADMSG, err, errcap,
			       "/pk/ value: not a libp2p PublicKey protobuf (%s)",
			       kw_strerror(ret));
	if (kw_peer_id_from_pubkey(&pub, &got) < 0 || !kw_peer_id_equal(&want, &got)) {
		kw_peer_id_short(&got, a, sizeof(a));
		kw_peer_id_short(&want, b, sizeof(b));
		return kw_errf(-KW_ESIG, err, errcap,
			       "/pk/ value: the public key is peer %s, the key names %s", a, b);
	}
	return 0;
}

static int validate_kwaai(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			  uint64_t now, bool check_time, struct env *e, char *err,
			  size_t errcap)
{
	struct kw_peer_id owner, signer;
	struct kw_pubkey pub;
	uint8_t msg[13 + 32];
	char a[KW_PEER_ID_SHORT_MAX], b[KW_PEER_ID_SHORT_MAX];
	int ret;

	ret = env_parse(val, vlen, e, err, errcap);
	if (ret < 0)
		return ret;
	if (!(e->seen & (1u << F_SIGNATURE)) || e->siglen == 0)
		return kw_errf(-KW_ESIG, err, errcap, "/kwaai/ record: unsigned (no signature)");
	if (!(e->seen & (1u << F_PUBLISHER)) || e->publen == 0)
		return kw_errf(-KW_ESIG, err, errcap,
			       "/kwaai/ record: no publisher key to check the signature with");
	if (check_time && e->expiry <= now)
		return kw_errf(-KW_ETIMEDOUT, err, errcap,
			       "/kwaai/ record: expired at %llu ms (now %llu ms, Unix time)",
			       (unsigned long long)e->expiry, (unsigned long long)now);
	ret = kw_pubkey_decode(e->pub, e->publen, &pub);
	if (ret < 0)
		return kw_errf(-KW_EBADMSG, err, errcap,
			       "/kwaai/ record: publisher is not a libp2p PublicKey protobuf (%s)",
			       kw_strerror(ret));
	if (kwaai_owner(key, klen, &owner) && !kw_peer_id_matches_pubkey(&owner, &pub)) {
		kw_peer_id_from_pubkey(&pub, &signer);
		kw_peer_id_short(&owner, a, sizeof(a));
		kw_peer_id_short(&signer, b, sizeof(b));
		return kw_errf(-KW_ESIG, err, errcap,
			       "/kwaai/ record: key belongs to peer %s but peer %s signed it", a, b);
	}
	signed_msg(key, klen, e->seq, e->expiry, e->val, e->vlen, msg);
	ret = kw_pubkey_verify(&pub, msg, sizeof(msg), e->sig, e->siglen);
	if (ret < 0)
		return kw_errf(-KW_ESIG, err, errcap,
			       "/kwaai/ record: signature does not verify (%s)",
			       kw_strerror(ret));
	return 0;
}

int kw_kad_validate_ex(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		       uint64_t now_unix_ms, bool check_time, uint64_t *expiry_unix_ms,
		       char *err, size_t errcap)
{
	struct env e;
	char ns[32];
	int ret;

	if (expiry_unix_ms)
		*expiry_unix_ms = 0;
	if (klen > KW_KAD_KEY_MAX)
		return kw_errf(-KW_ELIMIT, err, errcap, "record key of %zu bytes, more than %d",
			       klen, KW_KAD_KEY_MAX);
	if (vlen > KW_KAD_VALUE_MAX)
		return kw_errf(-KW_ELIMIT, err, errcap, "record value of %zu bytes, more than %d",
			       vlen, KW_KAD_VALUE_MAX);
	switch (ns_of(key, klen)) {
	case NS_PK:
		return validate_pk(key, klen, val, vlen, err, errcap);
	case NS_KWAAI:
		ret = validate_kwaai(key, klen, val, vlen, now_unix_ms, check_time, &e, err,
				     errcap);
		if (ret == 0 && expiry_unix_ms)
			*expiry_unix_ms = e.expiry;
		return ret;
	default:
		ns_text(key, klen, ns, sizeof(ns));
		return kw_errf(-KW_ENOPROTO, err, errcap,
			       "namespace \"%s\" not served (only /pk/ and /kwaai/)", ns);
	}
}

int kw_kad_validate(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		    uint64_t now_unix_ms, char *err, size_t errcap)
{
	return kw_kad_validate_ex(key, klen, val, vlen, now_unix_ms, true, NULL, err, errcap);
}

int kw_kad_record_cmp(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen,
		      const uint8_t *b, size_t blen)
{
	struct env ea, eb;
	int c;

	if (ns_of(key, klen) != NS_KWAAI)
		return 0;
	if (env_parse(a, alen, &ea, NULL, 0) < 0)
		return -1;
	if (env_parse(b, blen, &eb, NULL, 0) < 0)
		return 1;
	if (ea.seq != eb.seq)
		return ea.seq > eb.seq ? 1 : -1;
	c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen == blen ? 0 : (alen > blen ? 1 : -1);
}

int kw_kad_select(const uint8_t *key, size_t klen, const uint8_t *const *vals,
		  const size_t *vlens, size_t n)
{
	size_t i, best = 0;

	if (n == 0)
		return -KW_EINVAL;
	for (i = 0; i < n; i++) {
		if (kw_kad_validate_ex(key, klen, vals[i], vlens[i], 0, false, NULL, NULL, 0) < 0)
			return -KW_EINVAL;
		if (i > 0 && kw_kad_record_cmp(key, klen, vals[i], vlens[i], vals[best],
					       vlens[best]) > 0)
			best = i;
	}
	return (int)best;
}

long kw_kad_kwaai_seal(const struct kw_privkey *priv, const uint8_t *key, size_t klen,
		       const uint8_t *value, size_t vlen, uint64_t seq, uint64_t expiry_unix_ms,
		       uint8_t *out, size_t cap)
{
	uint8_t pub[KW_PUBKEY_MAX + 16], sig[KW_SIG_MAX], msg[13 + 32], hdr[16];
	struct kw_peer_id owner;
	size_t publen, siglen = sizeof(sig), need, pos = 0;
	int ret;

	if (ns_of(key, klen) != NS_KWAAI || klen > KW_KAD_KEY_MAX)
		return -KW_EINVAL;
	if (kwaai_owner(key, klen, &owner) && !kw_peer_id_matches_pubkey(&owner, &priv->pub))
		return -KW_EPERM;
	ret = kw_pubkey_encode(&priv->pub, pub, sizeof(pub), &publen);
	if (ret < 0)
		return -KW_EINVAL;
	signed_msg(key, klen, seq, expiry_unix_ms, value, vlen, msg);
	ret = kw_key_sign(priv, msg, sizeof(msg), sig, &siglen);
	if (ret < 0)
		return -KW_EINVAL;
	/* Fields in number order, each once; seq and expiry always written. */
	need = 1 + pb_varint_put(hdr, publen) + publen + 1 + pb_varint_put(hdr, seq) + 1 +
	       pb_varint_put(hdr, expiry_unix_ms) + 1 + pb_varint_put(hdr, vlen) + vlen + 1 +
	       pb_varint_put(hdr, siglen) + siglen;
	if (need > cap)
		return -KW_ENOSPC;
	out[pos++] = F_PUBLISHER << 3 | 2;
	pos += pb_varint_put(out + pos, publen);
	memcpy(out + pos, pub, publen);
	pos += publen;
	out[pos++] = F_SEQ << 3;
	pos += pb_varint_put(out + pos, seq);
	out[pos++] = F_EXPIRY << 3;
	pos += pb_varint_put(out + pos, expiry_unix_ms);
	out[pos++] = F_VALUE << 3 | 2;
	pos += pb_varint_put(out + pos, vlen);
	if (vlen)
		memcpy(out + pos, value, vlen);
	pos += vlen;
	out[pos++] = F_SIGNATURE << 3 | 2;
	pos += pb_varint_put(out + pos, siglen);
	memcpy(out + pos, sig, siglen);
	pos += siglen;
	return (long)pos;
}

int kw_kad_kwaai_open(const uint8_t *env, size_t envlen, const uint8_t **value, size_t *vlen,
		      uint64_t *seq)
{
	struct env e;

	if (env_parse(env, envlen, &e, NULL, 0) < 0)
		return -KW_EBADMSG;
	*value = e.val ? e.val : env;
	*vlen = e.vlen;
	if (seq)
		*seq = e.seq;
	return 0;
}
