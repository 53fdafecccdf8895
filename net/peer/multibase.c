/* base58btc, base32 (RFC 4648 lower, unpadded) and multihash framing; see multibase.h. */
#include <string.h>

#include <kw/err.h>
#include <kw/net/multibase.h>
#include <kw/net/varint.h>

static const char b58_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b36_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static int digit_value(const char *alphabet, char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(alphabet, c);
	return p ? (int)(p - alphabet) : -1;
}

/* Big-number radix conversion shared by base58btc and base36 (both keep leading zero bytes as
 * leading "zero digits"). Quadratic, hence the input bounds. */
static int radix_encode(const uint8_t *in, size_t len, char *out, size_t cap,
			const char *alphabet, unsigned base)
{
	/* log(256)/log(36) < 1.55 digits per byte covers base58 too. */
	uint8_t digits[KW_BASE58_MAX_BYTES * 155 / 100 + 1];
	size_t zeros = 0, ndig = 0, i, j, n;

	if (len > KW_BASE58_MAX_BYTES)
		return -KW_EMSGSIZE;
	while (zeros < len && in[zeros] == 0)
		zeros++;
	/* Schoolbook base conversion: digits[] is the number so far, least significant first. */
	for (i = zeros; i < len; i++) {
		unsigned carry = in[i];

		for (j = 0; j < ndig; j++) {
			carry += (unsigned)digits[j] << 8;
			digits[j] = (uint8_t)(carry % base);
			carry /= base;
		}
		while (carry) {
			digits[ndig++] = (uint8_t)(carry % base);
			carry /= base;
		}
	}
	n = zeros + ndig;
	if (n + 1 > cap)
		return -KW_ENOSPC;
	for (i = 0; i < zeros; i++)
		out[i] = alphabet[0];
	for (j = 0; j < ndig; j++)
		out[zeros + j] = alphabet[digits[ndig - 1 - j]];
	out[n] = '\0';
	return (int)n;
}

static int radix_decode(const char *s, size_t slen, uint8_t *out, size_t cap,
			const char *alphabet, unsigned base)
{
	/* log(58)/log(256) < 0.733 bytes per character (base36: less). */
	uint8_t bytes[KW_BASE58_MAX_CHARS * 733 / 1000 + 1];
	size_t zeros = 0, nb = 0, i, j, n;

	if (slen == 0)
		return -KW_EINVAL;
	if (slen > KW_BASE58_MAX_CHARS)
		return -KW_EMSGSIZE;
	while (zeros < slen && s[zeros] == alphabet[0])
		zeros++;
	for (i = zeros; i < slen; i++) {
		int v = digit_value(alphabet, s[i]);
		unsigned carry;

		if (v < 0)
			return -KW_EINVAL;
		carry = (unsigned)v;
		for (j = 0; j < nb; j++) {
			carry += (unsigned)bytes[j] * base;
			bytes[j] = (uint8_t)carry;
			carry >>= 8;
		}
		while (carry) {
			bytes[nb++] = (uint8_t)carry;
			carry >>= 8;
		}
	}
	n = zeros + nb;
	if (n > cap)
		return -KW_ENOSPC;
	memset(out, 0, zeros);
	for (j = 0; j < nb; j++)
		out[zeros + j] = bytes[nb - 1 - j];
	return (int)n;
}

int kw_base58_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	return radix_encode(in, len, out, cap, b58_alphabet, 58);
}

int kw_base58_decode(const char *s, size_t slen, uint8_t *out, size_t cap)
{
	return radix_decode(s, slen, out, cap, b58_alphabet, 58);
}

int kw_base36_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	return radix_encode(in, len, out, cap, b36_alphabet, 36);
}

int kw_base36_decode(const char *s, size_t slen, uint8_t *out, size_t cap)
{
	return radix_decode(s, slen, out, cap, b36_alphabet, 36);
}

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int kw_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t n = (len * 8 + 4) / 5, i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (len > KW_BASE58_MAX_BYTES)
		return -KW_EMSGSIZE;
	if (n + 1 > cap)
		return -KW_ENOSPC;
	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return (int)o;
}

int kw_base32_decode(const char *s, size_t slen, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, o = 0;

	if (slen == 0)
		return -KW_EINVAL;
	if (slen > KW_BASE58_MAX_CHARS)
		return -KW_EMSGSIZE;
	/* 1, 3 and 6 leftover characters cannot come from whole bytes. */
	switch (slen % 8) {
	case 1: case 3: case 6:
		return -KW_EINVAL;
	}
	for (i = 0; i < slen; i++) {
		char c = s[i];
		unsigned v;

		if (c >= 'a' && c <= 'z')
			v = (unsigned)(c - 'a');
		else if (c >= '2' && c <= '7')
			v = (unsigned)(c - '2') + 26;
		else
			return -KW_EINVAL;
		acc = (acc << 5) | v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -KW_ENOSPC;
			out[o++] = (uint8_t)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	if (acc != 0)
		return -KW_EINVAL;  /* non-canonical: padding bits must be zero */
	return (int)o;
}

int kw_multihash_parse(const uint8_t *buf, size_t len, uint64_t *code, const uint8_t **digest,
		       size_t *dlen)
{
	uint64_t c, l;
	int a, b;

	a = kw_uvarint_decode(buf, len, &c);
	if (a < 0)
		return -KW_EINVAL;
	b = kw_uvarint_decode(buf + a, len - (size_t)a, &l);
	if (b < 0)
		return -KW_EINVAL;
	if (l != len - (size_t)a - (size_t)b)
		return -KW_EINVAL;
	if (c == KW_MH_SHA2_256) {
		if (l != 32)
			return -KW_EINVAL;
	} else if (c != KW_MH_IDENTITY) {
		return -KW_EINVAL;
	}
	*code = c;
	*digest = buf + a + b;
	*dlen = (size_t)l;
	return 0;
}
