/*
 * The two byte formats of a Hivemind RPC on a libp2p stream (doc/net-hivemind.md). The
 * libp2p protocol ID of the stream is the handler name, e.g. "DHTProtocol.rpc_ping".
 *
 * 1. Unary handlers: one envelope each way, as go-libp2p-daemon (p2pd v0.5.0.hivemind1,
 *    which hivemind runs) writes it for hivemind `hivemind/p2p/p2p_daemon_bindings/control.py`:
 *    uvarint(length) || p2pd.pb PersistentConnectionRequest (proto/hivemind/p2pd.proto):
 *      call:     { callId = 16 bytes, callUnary = { peer, proto, data } }
 *      response: { callId = the same, unaryResponse = { response | error } }
 *    proto2 required fields (callId, peer, proto, data) are always emitted, even empty; a
 *    response carries exactly one of response/error (an empty response is `0a 00`, present).
 *    The envelope (after the prefix) is at most KW_NET_HIVEMIND_UNARY_MAX_BYTES, default
 *    4 MiB = hivemind's persistent_conn_max_msg_size.
 *
 * 2. Stream handlers: hivemind's own framing (hivemind `hivemind/p2p/p2p_daemon.py`,
 *    P2P.send_protobuf / receive_protobuf): marker (1 byte) || length (8 bytes, big-endian) ||
 *    protobuf. Marker 0x00: a message of the handler's type. Marker 0x01: p2pd.pb RPCError
 *    { optional string message }. A caller ends its requests with an empty RPCError
 *    (END_OF_STREAM, `01 00*8`); a server treats any 0x01 frame as the end of the requests.
 *    A caller treats any 0x01 frame from the server as the handler's error (str(exception))
 *    and the end of the call; a server that finishes normally just closes its side.
 *
 * Everything here is a pure codec: views into the caller's buffers, no allocation, no state.
 * Decoded views (struct kw_hm_bytes) point into the input and live as long as it does.
 *
 * Owner: net/hivemind.
 */
#ifndef KW_NET_HIVEMIND_RPC_H
#define KW_NET_HIVEMIND_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KW_HM_CALL_ID_LEN   16  /* a UUID's bytes; go's uuid.FromBytes takes nothing else */
#define KW_HM_UNARY_MAX     CONFIG_KW_NET_HIVEMIND_UNARY_MAX_BYTES
#define KW_HM_FRAME_HDR     9   /* marker + 8-byte length */
#define KW_HM_FRAME_MAX     CONFIG_KW_NET_HIVEMIND_STREAM_FRAME_MAX_BYTES

struct kw_hm_bytes {
	const uint8_t *p;  /* NULL only when len is 0 */
	size_t len;
};

/* ---- unary envelope ----------------------------------------------------------------- */

enum kw_hm_env_kind {
	KW_HM_ENV_CALL = 3,      /* callUnary */
	KW_HM_ENV_RESPONSE = 4,  /* unaryResponse */
	KW_HM_ENV_CANCEL = 5,    /* cancel (p2pd sends it between daemon and client only) */
};

struct kw_hm_envelope {
	uint8_t call_id[KW_HM_CALL_ID_LEN];
	uint8_t kind;                /* enum kw_hm_env_kind */
	/* KW_HM_ENV_CALL */
	struct kw_hm_bytes peer;     /* callee PeerID bytes; a responder must ignore it and take
					the caller from the secure channel */
	struct kw_hm_bytes proto;    /* handler name; must equal the stream's protocol ID */
	struct kw_hm_bytes data;     /* the serialized request */
	/* KW_HM_ENV_RESPONSE */
	bool is_error;
	struct kw_hm_bytes result;   /* the serialized response, or the error text */
};

/* Fill *e as a call / a response / an error response (views into the caller's bytes). */
void kw_hm_env_call(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
		    const uint8_t *peer, size_t peer_len, const char *proto,
		    const uint8_t *data, size_t data_len);
void kw_hm_env_response(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
			const uint8_t *resp, size_t len);
void kw_hm_env_error(struct kw_hm_envelope *e, const uint8_t call_id[KW_HM_CALL_ID_LEN],
		     const char *text, size_t len);

/*
 * Writes uvarint(length) || PersistentConnectionRequest into buf[0..cap). Return: the bytes
 * written; -KW_EINVAL for an unknown kind, a proto or error text that is not UTF-8, or a NULL
 * view with a nonzero length; -KW_EMSGSIZE when the envelope would exceed KW_HM_UNARY_MAX
 * (p2pd would refuse it); -KW_ENOSPC when cap is too small.
 */
long kw_hm_env_encode(const struct kw_hm_envelope *e, uint8_t *buf, size_t cap);

/* Bytes kw_hm_env_encode would write (prefix included), or its negative error. */
long kw_hm_env_size(const struct kw_hm_envelope *e);

/*
 * Decodes one envelope from the start of buf[0..len) into *e (views into buf). Return: the
 * bytes consumed (prefix + envelope);
 * -KW_EAGAIN when buf holds less than the whole frame (read more, call again);
 * -KW_EMSGSIZE when the prefix announces more than KW_HM_UNARY_MAX (decided from the
 *   prefix alone: reset the stream);
 * -KW_EBADMSG for a bad prefix varint or a malformed protobuf;
 * -KW_EPROTO for a well-formed protobuf that breaks the envelope's rules: a missing required
 *   field, a callId that is not 16 bytes, no known arm or more than one, a response with
 *   neither or both of response/error, a proto that is not UTF-8.
 * *why (may be NULL) receives a static text naming the problem ("" on success).
 */
long kw_hm_env_decode(const uint8_t *buf, size_t len, struct kw_hm_envelope *e,
		      const char **why);

/*
 * The text a Python caller raises for an error response: P2PHandlerError(
 * error.decode(errors="ignore")), i.e. the bytes with every ill-formed UTF-8 byte dropped
 * (and every NUL byte, which Python keeps but a C string cannot).
 * Writes it NUL-terminated into out[0..cap), cut at a character boundary when too long.
 * Return: the bytes written before the NUL.
 */
size_t kw_hm_error_text(const uint8_t *err, size_t len, char *out, size_t cap);

/* ---- stream framing ----------------------------------------------------------------- */

#define KW_HM_MARK_MESSAGE 0x00
#define KW_HM_MARK_ERROR   0x01

struct kw_hm_frame {
	uint8_t marker;                 /* KW_HM_MARK_MESSAGE or KW_HM_MARK_ERROR */
	struct kw_hm_bytes payload;     /* the protobuf bytes */
	/* KW_HM_MARK_ERROR: RPCError.message (absent and empty both mean end of stream when
	 * a caller sent it; from a server both are an error with that text) */
	bool has_message;
	struct kw_hm_bytes message;
};

/*
 * Reads a frame header from buf[0..len): *marker and *payload_len. For a reader that takes
 * a large payload in pieces. Return: 0; -KW_EAGAIN when fewer than 9 bytes are there;
 * -KW_EPROTO for a marker other than 0x00/0x01 (hivemind raises TypeError and drops the
 * stream); -KW_EMSGSIZE for a length above KW_HM_FRAME_MAX.
 */
int kw_hm_frame_header(const uint8_t *buf, size_t len, uint8_t *marker, uint64_t *payload_len);

/*
 * Decodes one whole frame from the start of buf[0..len). Return: bytes consumed; the errors
 * of kw_hm_frame_header; -KW_EAGAIN also when the payload is incomplete; -KW_EBADMSG for
 * an error frame whose RPCError does not parse. *why (may be NULL) names the problem.
 */
long kw_hm_frame_decode(const uint8_t *buf, size_t len, struct kw_hm_frame *f,
			const char **why);

/*
 * Writes a 0x00 frame holding pb[0..len) into buf[0..cap). Return: bytes written (9 + len);
 * -KW_EMSGSIZE above KW_HM_FRAME_MAX; -KW_ENOSPC.
 */
long kw_hm_frame_encode_msg(const uint8_t *pb, size_t len, uint8_t *buf, size_t cap);

/* Writes only the 9-byte header (the payload follows from the caller's own buffer). */
long kw_hm_frame_encode_header(uint8_t marker, uint64_t payload_len, uint8_t *buf, size_t cap);

/*
 * Writes a 0x01 frame: RPCError{message} (msg NULL: an empty RPCError, i.e. END_OF_STREAM,
 * `01 00 00 00 00 00 00 00 00`). Return: bytes written; -KW_EINVAL for text that is not
 * UTF-8 (Python reads it as a str); -KW_EMSGSIZE; -KW_ENOSPC.
 */
long kw_hm_frame_encode_error(const char *msg, size_t len, uint8_t *buf, size_t cap);

/*
 * The text a Python caller raises when a stream handler fails:
 * "Failed to call handler `<name>` at <peer>: <message>" (hivemind p2p_daemon.py,
 * _iterate_protobuf_stream_handler), message bytes taken as kw_hm_error_text does.
 * Written NUL-terminated into out[0..cap) and cut to fit. Return: bytes before the NUL.
 */
size_t kw_hm_stream_error_text(const char *handler, const char *peer_b58,
			       const struct kw_hm_frame *f, char *out, size_t cap);

#endif /* KW_NET_HIVEMIND_RPC_H */
