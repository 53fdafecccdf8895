/*
 * CID and multihash text for provider keys (include/kw/net/cid.h): multiformats/cid
 * README.md (CIDv0 is a bare base58btc sha2-256 multihash, CIDv1 is
 * <multibase><uvarint version><uvarint codec><multihash>), multiformats/multibase
 * (prefixes 'b' base32, 'k' base36, 'z' base58btc) and multiformats/multihash.
 */
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/net/cid.h>
#include <kw/net/multibase.h>
#include <kw/net/varint.h>

int kw_multihash_check(const uint8_t *buf, size_t len, char *err, size_t errcap)
{
	uint64_t code, dlen;
	int a, b;

	if (len == 0)
		return kw_errf(-KW_EINVAL, err, errcap, "multihash: empty");
	if (len > KW_MULTIHASH_MAX)
		return kw_errf(-KW_EINVAL, err, errcap, "multihash: %zu bytes, more than %d", len,
			       KW_MULTIHASH_MAX);
	a = kw_uvarint_decode(buf, len, &code);
	if (a < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "multihash: truncated or bad hash code");
	b = kw_uvarint_decode(buf + a, len - (size_t)a, &dlen);
	if (b < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "multihash: truncated or bad digest length");
	if (dlen > KW_MULTIHASH_DIGEST_MAX)
		return kw_errf(-KW_EINVAL, err, errcap,
			       "multihash: digest length %llu, more than %d",
			       (unsigned long long)dlen, KW_MULTIHASH_DIGEST_MAX);
	if (dlen != len - (size_t)a - (size_t)b)
		return kw_errf(-KW_EINVAL, err, errcap,
			       "multihash: digest length %llu but %zu bytes follow",
			       (unsigned long long)dlen, len - (size_t)a - (size_t)b);
	if (code == KW_MH_SHA2_256 && dlen != 32)
		return kw_errf(-KW_EINVAL, err, errcap,
			       "multihash: sha2-256 digest of %llu bytes, not 32",
			       (unsigned long long)dlen);
	return 0;
}

static int set_mh(struct kw_cid *out, const uint8_t *mh, size_t len, char *err, size_t errcap)
{
	int ret = kw_multihash_check(mh, len, err, errcap);

	if (ret < 0)
		return ret;
	memcpy(out->mh, mh, len);
	out->mhlen = (uint8_t)len;
	return 0;
}

int kw_cid_from_bytes(const uint8_t *buf, size_t len, struct kw_cid *out, char *err,
		      size_t errcap)
{
	uint64_t version, codec;
	int a, b;

	if (len == 0)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: empty");
	/* A CIDv0 is a bare sha2-256 multihash; no CIDv1 starts with 0x12 (version 18). */
	if (len == 34 && buf[0] == KW_MH_SHA2_256 && buf[1] == 0x20) {
		out->version = 0;
		out->codec = KW_CODEC_DAG_PB;
		return set_mh(out, buf, len, err, errcap);
	}
	a = kw_uvarint_decode(buf, len, &version);
	if (a < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: truncated or bad version varint");
	if (version != 1)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: version %llu (only 0 and 1 exist)",
			       (unsigned long long)version);
	b = kw_uvarint_decode(buf + a, len - (size_t)a, &codec);
	if (b < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: truncated or bad codec varint");
	out->version = 1;
	out->codec = codec;
	return set_mh(out, buf + a + b, len - (size_t)a - (size_t)b, err, errcap);
}

static int is_hex_text(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n % 2)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

/* Multibase 'f': lower-case hex. Same returns as the multibase.h decoders. */
static int hex_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	size_t i;

	if (n == 0 || n % 2)
		return -KW_EINVAL;
	if (n / 2 > cap)
		return -KW_ENOSPC;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -KW_EINVAL;
	kw_hex_get(s, n / 2, out);  /* cannot fail: every char checked above */
	return (int)(n / 2);
}

/* Multibase 'B': base32 upper case; the multibase.h decoder takes lower case only. */
static int upper_base32(const char *s, size_t n, uint8_t *out, size_t cap)
{
	char low[KW_CID_TEXT_MAX];
	size_t i;

	if (n >= sizeof(low))
		return -KW_EMSGSIZE;
	for (i = 0; i < n; i++) {
		if (s[i] >= 'a' && s[i] <= 'z')
			return -KW_EINVAL;   /* mixed case is no multibase */
		low[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	}
	return kw_base32_decode(low, n, out, cap);
}

/* The multibase body decoders' errors, as words. */
static const char *decode_reason(int ret)
{
	if (ret == -KW_ENOSPC || ret == -KW_EMSGSIZE)
		return "too long";
	return "empty, or a character outside the alphabet (or bad trailing bits)";
}

static int bare_multihash(const char *s, size_t n, struct kw_cid *out, char *err,
			  size_t errcap)
{
	uint8_t bin[KW_MULTIHASH_MAX + 8];
	int len;

	out->version = 0;
	out->codec = KW_CODEC_RAW;
	if (is_hex_text(s, n)) {
		if (n / 2 > sizeof(bin))
			return kw_errf(-KW_EINVAL, err, errcap, "hex multihash: too long");
		kw_hex_get(s, n / 2, bin);  /* cannot fail: is_hex_text checked every char */
		return set_mh(out, bin, n / 2, err, errcap);
	}
	len = kw_base58_decode(s, n, bin, sizeof(bin));
	if (len < 0)
		return kw_errf(-KW_EINVAL, err, errcap,
			       "not a CID or multihash: base58btc text %s", decode_reason(len));
	return set_mh(out, bin, (size_t)len, err, errcap);
}

int kw_cid_from_text(const char *s, struct kw_cid *out, char *err, size_t errcap)
{
	uint8_t bin[KW_MULTIHASH_MAX + 24];
	size_t n = s ? strnlen(s, KW_CID_TEXT_MAX) : 0;
	int len, ret;

	if (n == 0)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: empty");
	if (n >= KW_CID_TEXT_MAX)
		return kw_errf(-KW_EINVAL, err, errcap, "CID: longer than %d characters",
			       KW_CID_TEXT_MAX - 1);
	/* CIDv0: 46 base58btc characters, always "Qm" (0x12 0x20 in base58). */
	if (n == 46 && s[0] == 'Q' && s[1] == 'm') {
		len = kw_base58_decode(s, n, bin, sizeof(bin));
		if (len < 0)
			return kw_errf(-KW_EINVAL, err, errcap, "CIDv0: base58btc text %s",
				       decode_reason(len));
		if (len != 34 || bin[0] != KW_MH_SHA2_256 || bin[1] != 0x20)
			return kw_errf(-KW_EINVAL, err, errcap,
				       "CIDv0: not a sha2-256 multihash");
		return kw_cid_from_bytes(bin, (size_t)len, out, err, errcap);
	}
	if (s[0] == 'b' || s[0] == 'B' || s[0] == 'k' || s[0] == 'z' || s[0] == 'f') {
		if (s[0] == 'b')
			len = kw_base32_decode(s + 1, n - 1, bin, sizeof(bin));
		else if (s[0] == 'B')
			len = upper_base32(s + 1, n - 1, bin, sizeof(bin));
		else if (s[0] == 'k')
			len = kw_base36_decode(s + 1, n - 1, bin, sizeof(bin));
		else if (s[0] == 'z')
			len = kw_base58_decode(s + 1, n - 1, bin, sizeof(bin));
		else
			len = hex_decode(s + 1, n - 1, bin, sizeof(bin));
		if (len > 0 && bin[0] == 1)
			return kw_cid_from_bytes(bin, (size_t)len, out, err, errcap);
		/* Not a CIDv1: perhaps a bare base58 multihash that starts with that letter. */
		ret = bare_multihash(s, n, out, NULL, 0);
		if (ret == 0)
			return 0;
		if (len < 0)
			return kw_errf(-KW_EINVAL, err, errcap, "CIDv1 (multibase '%c'): text %s",
				       s[0], decode_reason(len));
		return kw_errf(-KW_EINVAL, err, errcap,
			       "CIDv1 (multibase '%c'): version byte 0x%02x, not 1", s[0], bin[0]);
	}
	if (s[0] == 'F' || s[0] == 'm' || s[0] == 'M' || s[0] == 'u' || s[0] == 'U') {
		ret = bare_multihash(s, n, out, NULL, 0);
		if (ret == 0)
			return 0;
		return kw_errf(-KW_EINVAL, err, errcap,
			       "multibase '%c' not supported (use 'b'/'B' base32, 'k' base36, "
			       "'z' base58btc or 'f' hex)", s[0]);
	}
	return bare_multihash(s, n, out, err, errcap);
}

int kw_cid_to_text(const struct kw_cid *c, char *out, size_t cap)
{
	uint8_t bin[2 * KW_UVARINT_MAX_BYTES + KW_MULTIHASH_MAX];
	int a, b, ret;

	if (kw_multihash_check(c->mh, c->mhlen, NULL, 0) < 0)
		return -KW_EINVAL;
	if (c->version == 0) {
		ret = kw_base58_encode(c->mh, c->mhlen, out, cap);
		return ret == -KW_EMSGSIZE ? -KW_EINVAL : ret;
	}
	a = kw_uvarint_encode(1, bin, sizeof(bin));
	b = kw_uvarint_encode(c->codec, bin + a, sizeof(bin) - (size_t)a);
	if (b < 0)
		return -KW_EINVAL;
	memcpy(bin + a + b, c->mh, c->mhlen);
	if (cap < 2)
		return -KW_ENOSPC;
	out[0] = 'b';
	ret = kw_base32_encode(bin, (size_t)(a + b) + c->mhlen, out + 1, cap - 1);
	return ret < 0 ? ret : ret + 1;
}

int kw_cid_raw_text(const uint8_t *mh, size_t mhlen, char *out, size_t cap)
{
	struct kw_cid c = { .version = 1, .codec = KW_CODEC_RAW };

	if (mhlen > KW_MULTIHASH_MAX)
		return -KW_EINVAL;
	memcpy(c.mh, mh, mhlen);
	c.mhlen = (uint8_t)mhlen;
	return kw_cid_to_text(&c, out, cap);
}
