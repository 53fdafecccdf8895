/*
 * Identity keys and peer IDs (libp2p peer-ids spec; ../shared/spec/libp2p.md section 3).
 * Key types carry libp2p's KeyType numbers. Public keys are kept as the bytes libp2p puts in
 * PublicKey.Data (Ed25519: 32 raw bytes; secp256k1: 33-byte compressed point; RSA: DER
 * SubjectPublicKeyInfo; ECDSA: DER SubjectPublicKeyInfo). Fixed-size structs, no heap
 * (except inside mbedTLS during RSA/secp256k1 operations, which happen once per handshake,
 * never per message).
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

/* Generates a key (bits: RSA only, 2048..8192; 0 = 2048). Return: 0, -KW_EKEYTYPE, -KW_EINVAL. */
int kw_key_generate(enum kw_key_type type, int bits, struct kw_privkey *out);
/* Signs msg; *sig_len is the capacity in and the length out. Return: 0, -KW_ENOBUFS, -KW_EKEYTYPE. */
int kw_key_sign(const struct kw_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig,
		size_t *sig_len);
/* Return: 0 when sig is valid for msg under k, -KW_ESIG otherwise, -KW_EKEYTYPE if unsupported. */
int kw_pubkey_verify(const struct kw_pubkey *k, const uint8_t *msg, size_t len,
		     const uint8_t *sig, size_t sig_len);

/* libp2p PublicKey / PrivateKey protobuf encodings. Decoders are bounded (fuzzed). */
int kw_pubkey_encode(const struct kw_pubkey *k, uint8_t *buf, size_t cap, size_t *len);
int kw_pubkey_decode(const uint8_t *buf, size_t len, struct kw_pubkey *out);
int kw_privkey_encode(const struct kw_privkey *k, uint8_t *buf, size_t cap, size_t *len);
int kw_privkey_decode(const uint8_t *buf, size_t len, struct kw_privkey *out);

/* Peer ID of a public key: identity multihash when the encoded key is <= 42 bytes, else sha2-256. */
int kw_peer_id_from_pubkey(const struct kw_pubkey *k, struct kw_peer_id *out);
bool kw_peer_id_equal(const struct kw_peer_id *a, const struct kw_peer_id *b);
/* base58btc text form ("12D3KooW..." / "Qm..."). Return: 0 or -KW_ENOBUFS. */
int kw_peer_id_to_text(const struct kw_peer_id *id, char *out, size_t cap);
/* Parses base58btc or CIDv1 (libp2p-key codec) text. Return: 0 or -KW_EINVAL. */
int kw_peer_id_from_text(const char *s, struct kw_peer_id *out);
/* Multihash bytes from the binary /p2p/ multiaddr component. Return: 0 or -KW_EINVAL. */
int kw_peer_id_from_bytes(const uint8_t *buf, size_t len, struct kw_peer_id *out);

#endif /* KW_NET_KEY_H */
