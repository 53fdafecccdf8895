/*
 * libp2p Noise (`/noise`): Noise_XX_25519_ChaChaPoly_SHA256 with the libp2p handshake payload
 * and 2-byte length framing (libp2p/specs noise/README.md; doc/net-noise.md).
 *
 * Sans-I/O: nothing here touches a socket or the event loop. The connection owner (net/swarm)
 * feeds received bytes in and sends the bytes it is handed; every buffer belongs to the
 * caller or sits inside fixed-size structs. No heap, except inside mbedTLS when an RSA or
 * secp256k1 signature is made or checked (once per handshake, in net/peer).
 *
 * Two layers:
 *   - the Noise core (Noise spec revision 34): CipherState, SymmetricState and the XX
 *     HandshakeState, message by message without framing. The libp2p layer is built on it and
 *     the public Noise test vectors (cacophony, snow) are replayed against it;
 *   - the libp2p session: identity payload (signed static key, stream-muxer extension),
 *     remote identity check, then the transport (u16 BE length || ChaChaPoly ciphertext).
 *
 * Typical dialer flow (listener: the same without the first write):
 *   kw_noise_identity_init(&id, &node_key, muxers, 1, NULL);         once per node
 *   kw_noise_session_init(&s, &id, true, &(struct kw_noise_opts){ .expected_peer = &pid });
 *   loop: if (kw_noise_want_write(&s)) kw_noise_handshake_write(&s, out, cap, &n) -> send;
 *         on received bytes: n = kw_noise_read(&s, in, len, rxbuf, rxcap, &pt, &ptlen) ...
 *   once kw_noise_established(): kw_noise_encrypt() to send, kw_noise_read() yields plaintext.
 *
 * Owner: net/noise. Users: net/swarm (connection upgrade), tests, tools/bench.
 */
#ifndef KW_NET_NOISE_H
#define KW_NET_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/key.h>

#define KW_NOISE_DH_LEN        32     /* X25519 public key / shared secret */
#define KW_NOISE_KEY_LEN       32     /* ChaCha20-Poly1305 key */
#define KW_NOISE_HASH_LEN      32     /* SHA-256 */
#define KW_NOISE_TAG_LEN       16     /* Poly1305 tag */
#define KW_NOISE_MSG_MAX       65535  /* largest Noise message (Noise spec and the u16 prefix) */
#define KW_NOISE_FRAME_HDR     2      /* u16 big-endian length before every message */
/* Largest plaintext in one transport frame (js splits writes at this size too). */
#define KW_NOISE_PLAINTEXT_MAX (KW_NOISE_MSG_MAX - KW_NOISE_TAG_LEN)
/* Our encoded handshake payload: RSA-8192 identity key (1104) + signature (1024) + tags +
 * up to KW_NOISE_MUXERS_MAX muxer names. */
#define KW_NOISE_PAYLOAD_MAX   2304
/* Largest handshake frame we write (msg2: e, encrypted s, encrypted payload). */
#define KW_NOISE_HS_FRAME_MAX  (KW_NOISE_FRAME_HDR + KW_NOISE_DH_LEN + KW_NOISE_DH_LEN + \
				KW_NOISE_TAG_LEN + KW_NOISE_PAYLOAD_MAX + KW_NOISE_TAG_LEN)
/* Stream-muxer names kept from the remote's extension (more are counted, not kept). */
#define KW_NOISE_MUXERS_MAX    4
#define KW_NOISE_MUXER_NAME_MAX 32    /* bytes including the NUL; longer names are skipped */

/* ---- Noise core ------------------------------------------------------------------------ */

/* CipherState: key k and 64-bit nonce n; without a key, encrypt/decrypt copy the bytes. */
struct kw_noise_cipher {
	uint8_t k[KW_NOISE_KEY_LEN];
	uint64_t n;
	bool has_key;
};

/* SymmetricState: chaining key, handshake hash and the handshake CipherState. */
struct kw_noise_symmetric {
	struct kw_noise_cipher cs;
	uint8_t ck[KW_NOISE_HASH_LEN];
	uint8_t h[KW_NOISE_HASH_LEN];
};

/* HandshakeState for the XX pattern: -> e; <- e, ee, s, es; -> s, se. */
struct kw_noise_xx {
	struct kw_noise_symmetric ss;
	uint8_t s[KW_NOISE_DH_LEN], s_pub[KW_NOISE_DH_LEN];   /* local static */
	uint8_t e[KW_NOISE_DH_LEN], e_pub[KW_NOISE_DH_LEN];   /* local ephemeral */
	uint8_t rs[KW_NOISE_DH_LEN], re[KW_NOISE_DH_LEN];     /* remote static, ephemeral */
	uint8_t step;                                         /* messages done, 0..3 */
	bool initiator;
};

/*
 * InitializeKey(k): n = 0. Return: 0.
 */
int kw_noise_cipher_init(struct kw_noise_cipher *c, const uint8_t k[KW_NOISE_KEY_LEN]);
/* SetNonce(n) from the Noise spec (tests use it to reach the end of the nonce space). */
void kw_noise_cipher_set_nonce(struct kw_noise_cipher *c, uint64_t n);
/*
 * EncryptWithAd: out gets len + 16 bytes (len without a key). out may equal pt (in place).
 * Return: 0, -KW_ERANGE when the nonce space is used up (n = 2^64-1 is reserved by Noise;
 * the state must then be dropped).
 */
int kw_noise_cipher_encrypt(struct kw_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *pt, size_t len, uint8_t *out);
/*
 * DecryptWithAd: ct is len bytes including the tag; out gets len - 16 bytes (len without a
 * key). out may equal ct. On failure n does not advance and out holds garbage.
 * Return: 0, -KW_EBADMSG (shorter than a tag or authentication failed), -KW_ERANGE.
 */
int kw_noise_cipher_decrypt(struct kw_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *ct, size_t len, uint8_t *out);
/* Overwrites the key (sodium_memzero) and clears has_key. */
void kw_noise_cipher_wipe(struct kw_noise_cipher *c);

/*
 * Starts an XX handshake "Noise_XX_25519_ChaChaPoly_SHA256" with the given prologue (libp2p:
 * empty). s_priv is the local static X25519 private key. e_priv fixes the ephemeral private
 * key (test vectors); NULL draws a fresh one from the kernel RNG.
 * Return: 0, -KW_EINVAL (NULL prologue with a length), -KW_EIO (RNG failed).
 */
int kw_noise_xx_init(struct kw_noise_xx *x, bool initiator, const uint8_t *prologue,
		     size_t prologue_len, const uint8_t s_priv[KW_NOISE_DH_LEN],
		     const uint8_t *e_priv);
/* Length of the next message we write carrying a payload of payload_len bytes (0 if it is
 * not our turn). */
size_t kw_noise_xx_write_len(const struct kw_noise_xx *x, size_t payload_len);
/*
 * WriteMessage: the next handshake message (no length prefix) into out; payload and out must
 * not overlap. Return: 0, -KW_EPROTO (not our turn or finished),
 * -KW_ENOSPC (cap too small), -KW_EMSGSIZE (message would exceed 65535 bytes),
 * -KW_EHANDSHAKE (a DH produced the all-zero output).
 */
int kw_noise_xx_write(struct kw_noise_xx *x, const uint8_t *payload, size_t payload_len,
		      uint8_t *out, size_t cap, size_t *out_len);
/*
 * ReadMessage: processes one handshake message in place (msg is overwritten); *payload
 * points at the decrypted payload inside msg. Return: 0, -KW_EPROTO (not our turn),
 * -KW_EHANDSHAKE (too short, authentication failed, bad DH).
 */
int kw_noise_xx_read(struct kw_noise_xx *x, uint8_t *msg, size_t len, const uint8_t **payload,
		     size_t *payload_len);
/* True after all three messages. */
bool kw_noise_xx_done(const struct kw_noise_xx *x);
/* The handshake hash h (channel binding); meaningful once done. */
const uint8_t *kw_noise_xx_hash(const struct kw_noise_xx *x);
/*
 * Split(): the two transport CipherStates, already oriented (initiator sends with the first
 * key). Wipes the handshake secrets of x. Return: 0, -KW_EPROTO before the handshake is done.
 */
int kw_noise_xx_split(struct kw_noise_xx *x, struct kw_noise_cipher *send,
		      struct kw_noise_cipher *recv);
/* X25519 public key of a private key (RFC 7748 clamping inside). Return: 0 or -KW_EINVAL. */
int kw_noise_dh_public(const uint8_t priv[KW_NOISE_DH_LEN], uint8_t pub[KW_NOISE_DH_LEN]);

/* ---- libp2p session ---------------------------------------------------------------------- */

/*
 * What a node presents in every handshake: its Noise static X25519 key and the encoded
 * NoiseHandshakePayload (identity key, signature over "noise-libp2p-static-key:" || s.pub,
 * stream muxers). Built once per node (the spec allows a static key per process; libp2p
 * never stores it), then shared read-only by every session; it must outlive them.
 */
struct kw_noise_identity {
	uint8_t static_priv[KW_NOISE_DH_LEN];
	uint8_t static_pub[KW_NOISE_DH_LEN];
	uint16_t payload_len;
	uint8_t payload[KW_NOISE_PAYLOAD_MAX];
};

/*
 * Signs a new static key with the identity key and encodes the payload. muxers: the stream
 * muxers we offer in preference order (e.g. {"/yamux/1.0.0"}), n_muxers <= KW_NOISE_MUXERS_MAX,
 * each shorter than KW_NOISE_MUXER_NAME_MAX; 0 sends no extensions. static_priv fixes the
 * static key (tests); NULL generates one. Calls sodium_init() (idempotent).
 * Return: 0, -KW_EINVAL, -KW_EKEYTYPE (identity type not built in), -KW_ENOSPC (payload
 * would not fit), -KW_EIO (RNG or libsodium init failed).
 */
int kw_noise_identity_init(struct kw_noise_identity *id, const struct kw_privkey *key,
			   const char *const *muxers, size_t n_muxers, const uint8_t *static_priv);
/* Overwrites the static private key. */
void kw_noise_identity_wipe(struct kw_noise_identity *id);

enum kw_noise_state {
	KW_NOISE_HS_WRITE = 1,  /* our handshake message is due: kw_noise_handshake_write */
	KW_NOISE_HS_READ,       /* waiting for the remote's handshake message */
	KW_NOISE_ESTABLISHED,   /* transport: encrypt / read plaintext */
	KW_NOISE_FAILED,        /* sticky: every call returns the error that ended it */
};

/* Per-session options; a zeroed struct (or NULL) means the defaults. */
struct kw_noise_opts {
	/* Dialer: the peer id of the /p2p/ component dialed; a different remote identity ends
	 * the handshake with -KW_EPEERID. NULL: accept any authenticated peer. Copied. */
	const struct kw_peer_id *expected_peer;
	/* Fixed ephemeral X25519 private key (test vectors and transcripts); NULL: random. */
	const uint8_t *ephemeral_priv;
};

/*
 * One secured connection. Fixed size (632 bytes on x86_64 and arm64, see doc/net-noise.md);
 * the caller embeds it in its connection object. The receive side keeps at most a 2-byte
 * length header and counters in here; frame bodies sit in the caller's receive buffer.
 */
struct kw_noise_session {
	const struct kw_noise_identity *local;   /* borrowed; outlives the session */
	uint8_t state;                            /* enum kw_noise_state */
	bool initiator;
	bool have_expected;
	int err;                                  /* why FAILED (negative KW_E*) */
	struct kw_peer_id expected;
	struct kw_peer_id remote;                 /* valid once established */
	uint8_t n_remote_muxers;                  /* names kept below */
	uint8_t remote_muxers_total;              /* names the remote sent (saturates at 255) */
	char remote_muxers[KW_NOISE_MUXERS_MAX][KW_NOISE_MUXER_NAME_MAX];
	union {
		struct kw_noise_xx hs;                     /* until established */
		struct {
			struct kw_noise_cipher tx, rx;
		} t;                                       /* afterwards */
	} u;
	/* receive framing: header bytes seen, then body bytes stored in the caller's buffer */
	uint8_t rx_hdr[KW_NOISE_FRAME_HDR];
	uint8_t rx_hdr_have;
	uint16_t rx_len;                          /* body length of the frame in progress */
	uint16_t rx_have;                         /* body bytes already in the caller's buffer */
	uint8_t hash[KW_NOISE_HASH_LEN];          /* handshake hash, kept after Split */
};

/*
 * Starts a session. initiator: we dialed. The first step is kw_noise_handshake_write for
 * the initiator, kw_noise_read for the responder. Return: 0, -KW_EINVAL, -KW_EIO (RNG).
 */
int kw_noise_session_init(struct kw_noise_session *s, const struct kw_noise_identity *local,
			  bool initiator, const struct kw_noise_opts *opts);
/* Current enum kw_noise_state. */
enum kw_noise_state kw_noise_state(const struct kw_noise_session *s);
/* True when a handshake message is due (call kw_noise_handshake_write and send it). */
bool kw_noise_want_write(const struct kw_noise_session *s);
/* True once the handshake finished and the remote identity was verified. */
bool kw_noise_established(const struct kw_noise_session *s);
/*
 * Writes the due handshake frame (length prefix included) to out; cap of
 * KW_NOISE_HS_FRAME_MAX always suffices. The initiator is established after writing msg3.
 * Return: 0, -KW_EPROTO (nothing due), -KW_ENOSPC (cap too small; state unchanged), or the
 * sticky error of a failed session.
 */
int kw_noise_handshake_write(struct kw_noise_session *s, uint8_t *out, size_t cap,
			     size_t *out_len);
/*
 * Feeds received bytes, any chunking (one byte at a time works). Consumes bytes up to the end
 * of the first frame that completes, or all of them. A complete handshake frame is processed
 * (the remote's payload is verified: signature, peer id); a complete transport frame is
 * decrypted and *plain / *plain_len point at its plaintext inside buf (an empty frame gives
 * *plain_len = 0 with *plain set). Otherwise *plain is NULL.
 *
 * buf (cap bytes) is the caller's receive buffer: a frame body must fit in it
 * (KW_NOISE_MSG_MAX always does) and, while kw_noise_rx_partial() is true, the same buffer
 * with its contents must be passed again. The plaintext is valid until the next call.
 * Return: bytes consumed (>= 0), or a negative code that also fails the session:
 * -KW_EMSGSIZE (frame larger than cap), -KW_EPROTO (bytes while our handshake message is
 * due), -KW_EHANDSHAKE (handshake message malformed or not authentic), -KW_ESIG (identity
 * signature invalid), -KW_EKEYTYPE (identity key type not built in), -KW_EPEERID (not the
 * expected peer), -KW_EBADMSG (transport frame not authentic: tampered, replayed, reordered,
 * shorter than a tag), -KW_ERANGE (receive nonces exhausted).
 */
long kw_noise_read(struct kw_noise_session *s, const uint8_t *in, size_t len, uint8_t *buf,
		   size_t cap, const uint8_t **plain, size_t *plain_len);
/* True while part of a frame sits in the caller's receive buffer. */
bool kw_noise_rx_partial(const struct kw_noise_session *s);
/*
 * kw_noise_read for a caller that keeps the partial frame itself (net/swarm: one receive
 * buffer per connection, none while only a header has arrived). The 2-byte length header is
 * consumed into the session; a frame body is consumed only once all of it is in `in`, and is
 * then processed in place: a transport frame is decrypted where it lies (*plain points into
 * in), a handshake frame is read in place. A partial body is left unconsumed: pass it again
 * with more bytes behind it (the caller must be able to hold KW_NOISE_MSG_MAX bytes).
 * Return: bytes consumed, or the errors of kw_noise_read (-KW_EPROTO also when mixed with
 * kw_noise_read on a partial frame).
 */
long kw_noise_read_inplace(struct kw_noise_session *s, uint8_t *in, size_t len,
			   const uint8_t **plain, size_t *plain_len);
/* True once a frame header has been read and its (non-empty) body has not (inplace mode). */
bool kw_noise_rx_body_pending(const struct kw_noise_session *s);
/*
 * Encrypts one transport frame: out gets u16 length || ciphertext || tag (len + 18 bytes).
 * len <= KW_NOISE_PLAINTEXT_MAX. pt may equal out + 2 (in place, 16 bytes of tail room).
 * Return: 0, -KW_ENOTCONN (not established), -KW_EMSGSIZE, -KW_ENOSPC, -KW_ERANGE (send
 * nonces exhausted; the session fails), or the sticky error.
 */
int kw_noise_encrypt(struct kw_noise_session *s, const uint8_t *pt, size_t len, uint8_t *out,
		     size_t cap, size_t *out_len);
/* Bytes kw_noise_encrypt_all produces for len plaintext bytes (frames of at most 65519). */
size_t kw_noise_encrypt_all_len(size_t len);
/* Encrypts len bytes as consecutive maximal frames (pt and out must not overlap). Same
 * returns as kw_noise_encrypt; on error nothing is reported as written. */
int kw_noise_encrypt_all(struct kw_noise_session *s, const uint8_t *pt, size_t len,
			 uint8_t *out, size_t cap, size_t *out_len);
/* The verified remote peer id; NULL until established. */
const struct kw_peer_id *kw_noise_remote_peer(const struct kw_noise_session *s);
/* The handshake hash (32 bytes) once established, else NULL. */
const uint8_t *kw_noise_handshake_hash(const struct kw_noise_session *s);
/*
 * The remote's stream-muxer extension (valid once established): total names it sent
 * (0: none, negotiate the muxer with multistream-select) and whether `name` was among them.
 * A remote that sent names but not ours must be dropped (libp2p inlined-muxer spec; js).
 */
size_t kw_noise_remote_muxer_count(const struct kw_noise_session *s);
const char *kw_noise_remote_muxer(const struct kw_noise_session *s, size_t i);
bool kw_noise_remote_offers_muxer(const struct kw_noise_session *s, const char *name);
/* Wipes keys; the session is FAILED afterwards (-KW_ECONNABORTED). */
void kw_noise_session_wipe(struct kw_noise_session *s);

/* ---- handshake payload (exposed for the fuzz target and tests) ---------------------------- */

/* What the remote's payload carried, after decoding (not yet verified). */
struct kw_noise_remote_payload {
	struct kw_pubkey key;
	uint16_t sig_len;
	uint8_t sig[KW_SIG_MAX];
	uint8_t n_muxers, muxers_total;
	char muxers[KW_NOISE_MUXERS_MAX][KW_NOISE_MUXER_NAME_MAX];
};

/*
 * Decodes a NoiseHandshakePayload (bounded; no allocation). identity_key and identity_sig
 * must be present (js requires them too).
 * Return: 0, -KW_EHANDSHAKE (not a payload protobuf, missing field, oversized field),
 * -KW_EKEYTYPE / -KW_EBADMSG / -KW_EINVAL (identity_key does not decode, from net/peer).
 */
int kw_noise_payload_decode(const uint8_t *buf, size_t len, struct kw_noise_remote_payload *out);
/*
 * Verifies the payload's signature over "noise-libp2p-static-key:" || remote_static.
 * Return: 0, -KW_ESIG, -KW_EKEYTYPE.
 */
int kw_noise_payload_verify(const struct kw_noise_remote_payload *p,
			    const uint8_t remote_static[KW_NOISE_DH_LEN]);

#endif /* KW_NET_NOISE_H */
