/*
 * The text encodings libp2p uses for binary identifiers: base58btc (bare peer IDs,
 * "12D3KooW..." / "Qm..."), RFC 4648 base32 lower-case without padding (multibase prefix 'b',
 * CIDv1 peer IDs "bafz..."), base36 (multibase 'k', "k51..."), and multihash framing
 * (identity 0x00, sha2-256 0x12).
 *
 * Owner: net/peer. Pure functions over caller buffers; inputs are bounded so that the
 * quadratic base58 conversion stays cheap on hostile input.
 */
#ifndef KW_NET_MULTIBASE_H
#define KW_NET_MULTIBASE_H

#include <stddef.h>
#include <stdint.h>

/* Longest binary input the base58 encoder takes, and the longest text the decoder takes. */
#define KW_BASE58_MAX_BYTES 128
#define KW_BASE58_MAX_CHARS 176

/*
 * base58btc (Bitcoin alphabet) of in[0..len), NUL-terminated into out[0..cap).
 * Return: the text length, -KW_ENOSPC if out is too small, -KW_EMSGSIZE if len exceeds
 * KW_BASE58_MAX_BYTES.
 */
int kw_base58_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/*
 * Decodes slen characters of base58btc text. Return: the number of bytes written to out,
 * -KW_EINVAL for a character outside the alphabet or empty input, -KW_ENOSPC if out is too
 * small, -KW_EMSGSIZE if slen exceeds KW_BASE58_MAX_CHARS.
 */
int kw_base58_decode(const char *s, size_t slen, uint8_t *out, size_t cap);

/* base36 lower case (multibase 'k' without the prefix; IPNS names "k51..."). Same returns as
 * the base58 pair; the decoder takes lower case only. */
int kw_base36_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int kw_base36_decode(const char *s, size_t slen, uint8_t *out, size_t cap);

/* RFC 4648 base32, lower-case, no padding (multibase 'b' without the prefix). Same returns
 * as the base58 pair; the decoder rejects upper case, padding and non-zero trailing bits. */
int kw_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int kw_base32_decode(const char *s, size_t slen, uint8_t *out, size_t cap);

/* Multihash codes this tree understands. */
#define KW_MH_IDENTITY 0x00
#define KW_MH_SHA2_256 0x12

/*
 * Splits a multihash `uvarint(code) uvarint(len) digest` that must fill buf[0..len) exactly.
 * Only identity and sha2-256 (32-byte digest) are accepted. Return: 0 with *code, *digest
 * (pointing into buf) and *dlen set; -KW_EINVAL for anything else.
 */
int kw_multihash_parse(const uint8_t *buf, size_t len, uint64_t *code, const uint8_t **digest,
		       size_t *dlen);

#endif /* KW_NET_MULTIBASE_H */
