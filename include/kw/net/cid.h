/*
 * Content identifiers as the CLI and the DHT's provider records see them: CIDv0 ("Qm...",
 * base58btc of a sha2-256 multihash), CIDv1 (multibase prefix, then uvarint version 1,
 * uvarint codec, multihash: multiformats/cid README.md), and bare multihashes
 * (multiformats/multihash README.md) written in base58btc or hex. A provider record is keyed
 * by the multihash alone (libp2p/specs kad-dht/README.md "Content provider advertisement"),
 * so parsing a CID yields its multihash bytes; printing a multihash gives the CIDv1 with the
 * raw codec (0x55) in base32, as js-libp2p prints it ("bafkrei...").
 *
 * Owner: net/kad. Pure functions over caller buffers; text is bounded (KW_CID_TEXT_MAX).
 */
#ifndef KW_NET_CID_H
#define KW_NET_CID_H

#include <stddef.h>
#include <stdint.h>

#define KW_MULTIHASH_DIGEST_MAX 64   /* sha2-512, blake2b-512 */
#define KW_MULTIHASH_MAX        72   /* uvarint code + uvarint length + digest */
#define KW_CID_TEXT_MAX         160  /* longest text accepted or written, with the NUL */
#define KW_CID_ERR_MAX          96   /* room for any reason the parsers write */

/* Multicodec codes the parser names in its output (any codec is accepted). */
#define KW_CODEC_RAW        0x55
#define KW_CODEC_DAG_PB     0x70
#define KW_CODEC_LIBP2P_KEY 0x72

struct kw_cid {
	uint8_t version;                 /* 0 or 1; 0 for a bare multihash too */
	uint64_t codec;                  /* dag-pb for CIDv0; 0x55 (raw) for a bare multihash */
	uint8_t mhlen;
	uint8_t mh[KW_MULTIHASH_MAX];    /* the multihash: the provider-record key */
};

/*
 * Checks that buf[0..len) is exactly one multihash: uvarint code, uvarint digest length
 * (at most KW_MULTIHASH_DIGEST_MAX), digest filling the rest; sha2-256 digests must be 32
 * bytes. Any hash code is accepted (providers are announced for sha2-512, blake2b, ...).
 * Return: 0; -KW_EINVAL with err naming the problem.
 */
int kw_multihash_check(const uint8_t *buf, size_t len, char *err, size_t errcap);

/*
 * Parses CID or multihash text (NUL-terminated): "Qm..." (CIDv0), multibase CIDv1 with
 * prefix 'b' (base32 lower case, what js prints), 'B' (base32 upper case), 'k' (base36),
 * 'z' (base58btc) or 'f' (hex), or a
 * bare multihash in base58btc ("12D3KooW...", an identity peer ID) or hex ("1220..."). The
 * whole text must be used. Return: 0 with *out set; -KW_EINVAL with err naming the problem
 * (unknown multibase, bad character, CID version, truncated or oversized multihash).
 */
int kw_cid_from_text(const char *s, struct kw_cid *out, char *err, size_t errcap);

/*
 * Binary CID: a CIDv0 is a bare sha2-256 multihash (0x12 0x20 ...), a CIDv1 starts with
 * uvarint 1. Return: 0; -KW_EINVAL with err set.
 */
int kw_cid_from_bytes(const uint8_t *buf, size_t len, struct kw_cid *out, char *err,
		      size_t errcap);

/*
 * Text of c: CIDv0 as base58btc, CIDv1 as 'b' + base32. Return: the text length;
 * -KW_ENOSPC; -KW_EINVAL (c does not hold a multihash).
 */
int kw_cid_to_text(const struct kw_cid *c, char *out, size_t cap);

/* Multihash mh printed as a CIDv1 with the raw codec, base32 ("bafkrei..."). Same returns. */
int kw_cid_raw_text(const uint8_t *mh, size_t mhlen, char *out, size_t cap);

#endif /* KW_NET_CID_H */
