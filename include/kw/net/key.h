/*
 * Identity keys and peer IDs (libp2p/specs peer-ids/peer-ids.md).
 * Key types carry libp2p's KeyType numbers. Public keys are kept as the bytes libp2p puts in
 * PublicKey.Data (Ed25519: 32 raw bytes; secp256k1: 33-byte compressed point; RSA: DER
 * SubjectPublicKeyInfo; ECDSA: DER SubjectPublicKeyInfo). Fixed-size structs, no heap
 * (except inside mbedTLS during RSA and ECDSA P-256 operations, which happen once per
 * handshake, never per message; secp256k1 goes through libsecp256k1, which never allocates).
 *
 * Owner: net/peer (implementation). Users: net/noise (sign/verify in the handshake),
 * net/identify, net/kad, the CLI (keygen, id).
 */
#ifndef KW_NET_KEY_H
#define KW_NET_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kw_key_type {
	KW_KEY_RSA = 0,
	KW_KEY_ED25519 = 1,
	KW_KEY_SECP256K1 = 2,
	KW_KEY_ECDSA = 3,
};

#define KW_PUBKEY_MAX   1100  /* RSA-8192 SubjectPublicKeyInfo DER fits */
#define KW_PRIVKEY_MAX  4800  /* RSA-8192 PKCS#1 DER fits */
#define KW_SIG_MAX      1024  /* RSA-8192 signature */
#define KW_PEER_ID_MAX  64    /* multihash bytes: identity(<=42-byte key) or sha2-256 */
#define KW_PEER_ID_TEXT_MAX 128  /* base58btc or CIDv1 base32 text, with the NUL */
#define KW_KEY_PB_MAX   (KW_PRIVKEY_MAX + 8)  /* an encoded PrivateKey or PublicKey protobuf */
/* Encoded PublicKey protobufs up to this size are inlined in the peer ID (identity hash). */
#define KW_PEER_ID_INLINE_MAX 42

struct kw_pubkey {
	enum kw_key_type type;
	uint16_t len;
	uint8_t data[KW_PUBKEY_MAX];
};

struct kw_privkey {
	enum kw_key_type type;
	uint16_t len;
	uint8_t data[KW_PRIVKEY_MAX];  /* as in libp2p PrivateKey.Data */
	struct kw_pubkey pub;          /* derived at load/generate time */
};

struct kw_peer_id {
	uint8_t len;
	uint8_t bytes[KW_PEER_ID_MAX];  /* the multihash */
};

/*
 * Generates a key (bits: RSA only, 2048..8192; 0 = 2048; ignored for the other types).
 * RSA generation takes seconds (minutes under emulation): meant for `kwnode keygen` and the
 * first start, never the event loop. Return: 0, -KW_EKEYTYPE, -KW_EINVAL, -KW_EIO (RNG).
 */
int kw_key_generate(enum kw_key_type type, int bits, struct kw_privkey *out);
/*
 * Signs msg as libp2p specifies per type: Ed25519 over msg itself; secp256k1 and ECDSA P-256
 * over SHA-256(msg), deterministic (RFC 6979), strict DER, S normalised to the low half (js
 * rejects high S); RSA PKCS#1 v1.5 with SHA-256. *sig_len is the capacity in and the length
 * out. Return: 0, -KW_ENOSPC, -KW_EKEYTYPE, -KW_EINVAL (key material does not parse).
 */
int kw_key_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		size_t *sig_len);
/*
 * Return: 0 when sig is valid for msg under k, -KW_ESIG otherwise (including a malformed or
 * non-strict DER signature, a high-S secp256k1 signature, an RSA key outside 2048..8192
 * bits), -KW_EKEYTYPE if the type is not built in.
 */
int kw_pubkey_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
		     const uint8_t *sig, size_t sig_len);

/*
 * libp2p PublicKey / PrivateKey protobuf encodings (deterministic: Type then Data, both always
 * present). Decoders are bounded (fuzzed), never allocate through nanopb, and validate the key
 * material: Ed25519 sizes (64-byte seed||pub or legacy 96-byte seed||pub||pub, pub matching
 * the seed), secp256k1 points on the curve, RSA 2048..8192 bits, ECDSA on P-256. The private
 * decoder derives k->pub. Encoders return -KW_ENOSPC when cap is short.
 * Decode return: 0, -KW_EBADMSG (not a key protobuf: truncated, missing field, oversized),
 * -KW_EKEYTYPE (unknown or not built-in type), -KW_EINVAL (key material invalid).
 */
int kw_pubkey_encode(const struct kw_pubkey *k, uint8_t *buf, size_t cap, size_t *len);
int kw_pubkey_decode(const uint8_t *buf, size_t len, struct kw_pubkey *out);
int kw_privkey_encode(const struct kw_privkey *k, uint8_t *buf, size_t cap, size_t *len);
int kw_privkey_decode(const uint8_t *buf, size_t len, struct kw_privkey *out);

/* Peer ID of a public key: identity multihash when the encoded key is <= 42 bytes, else
 * sha2-256. */
int kw_peer_id_from_pubkey(const struct kw_pubkey *k, struct kw_peer_id *out);
bool kw_peer_id_equal(const struct kw_peer_id *a, const struct kw_peer_id *b);
/* base58btc text form ("12D3KooW..." / "Qm..."). Return: 0 or -KW_ENOSPC. */
int kw_peer_id_to_text(const struct kw_peer_id *id, char *out, size_t cap);
/*
 * Short form for log lines: the first 8 and last 6 characters of the base58btc text
 * ("12D3KooW..xyz123"), the whole text when it has at most 20, "?" when id is NULL or
 * empty. Writes "" when cap < KW_PEER_ID_SHORT_MAX.
 */
#define KW_PEER_ID_SHORT_MAX 24
void kw_peer_id_short(const struct kw_peer_id *id, char *out, size_t cap);
/* Parses base58btc or CIDv1 (libp2p-key codec; multibase base32 'b' or base36 'k') text.
 * Return: 0 or -KW_EINVAL. */
int kw_peer_id_from_text(const char *s, struct kw_peer_id *out);
/* Multihash bytes from the binary /p2p/ multiaddr component. Return: 0 or -KW_EINVAL. */
int kw_peer_id_from_bytes(const uint8_t *buf, size_t len, struct kw_peer_id *out);

/*
 * Extensions beyond the original contract.
 */
/* CIDv1 text form: multibase 'b' base32 of 0x01 0x72 <multihash> ("bafz..."). Return: 0 or
 * -KW_ENOSPC. */
int kw_peer_id_to_cid_text(const struct kw_peer_id *id, char *out, size_t cap);
/* The public key inlined in an identity-multihash peer ID (Ed25519, secp256k1). Return: 0,
 * -KW_ENOENT for a sha2-256 peer ID (the key must come from elsewhere, e.g. the handshake). */
int kw_peer_id_pubkey(const struct kw_peer_id *id, struct kw_pubkey *out);
/* True when k is the key this peer ID names (used to match a handshake to a dialed /p2p/). */
bool kw_peer_id_matches_pubkey(const struct kw_peer_id *id, const struct kw_pubkey *k);

/* "rsa", "ed25519", "secp256k1", "ecdsa" (the names `kwnode keygen --type` takes). */
const char *kw_key_type_name(enum kw_key_type t);
/* Return: 0 with *t set, -KW_EKEYTYPE for an unknown name. */
int kw_key_type_from_name(const char *name, enum kw_key_type *t);
/* True when the type is compiled in (Kconfig KW_NET_KEY_*). Ed25519 always is. */
bool kw_key_type_supported(enum kw_key_type t);
/* Sizes for callers that size signature buffers per key: the exact length for Ed25519 and
 * RSA, the maximum DER length for the ECDSA types. 0 for an unsupported or malformed key. */
size_t kw_pubkey_sig_max(const struct kw_pubkey *k);
bool kw_pubkey_equal(const struct kw_pubkey *a, const struct kw_pubkey *b);
/* Overwrites the private key material (before the struct goes out of scope). */
void kw_privkey_wipe(struct kw_privkey *k);

#endif /* KW_NET_KEY_H */
