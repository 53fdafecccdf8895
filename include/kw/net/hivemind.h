/*
 * Hivemind unary RPC on the swarm (doc/net-hivemind.md "Unary handlers on the swarm"): a
 * handler is registered under its Hivemind name ("DHTProtocol.rpc_ping"), which is the
 * libp2p protocol ID; each call is one stream carrying one envelope each way
 * (include/kw/net/hivemind_rpc.h), as go-libp2p-daemon does it for hivemind
 * (hivemind/p2p/p2p_daemon_bindings/control.py, learning-at-home/hivemind @ 4bd43b7).
 *
 * Serving: an inbound call is read into a pooled call state (a request and a reply buffer
 * of limits.buf_bytes each), decoded, checked (proto must equal the negotiated name), and
 * handed to the handler with a per-call deadline. The handler answers once with
 * kw_hm_reply() or kw_hm_reply_error(), at once or later from the loop. At most
 * limits.calls_per_peer calls per connection and limits.calls_in in all are served at once;
 * more streams are reset at accept and counted (defaults: Kconfig KW_NET_HIVEMIND_CALL*).
 * A call whose deadline passes is answered with the error text "TimeoutError()" and its
 * handler is told through on_cancel; a call the caller abandons (EOF, reset or extra bytes
 * after the request: what p2pd treats as a cancel) cancels the handler without an answer.
 * Bad envelopes reset the stream, are counted and logged; nothing else is affected.
 *
 * Calling: kw_hm_call() opens a stream, writes the call and returns at once; the callback
 * runs once on the loop with the response, the remote's error text, or a local error. The
 * caller never half-closes before the reply (p2pd would cancel the call) and closes after it.
 *
 * Owns: the call pools (server and client side, from the node's arena at kw_hm_create).
 * Every callback runs on the node's event loop; nothing blocks or allocates after start-up.
 */
#ifndef KW_NET_HIVEMIND_H
#define KW_NET_HIVEMIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/hivemind_rpc.h>

struct kw_swarm;
struct kw_conn;
struct kw_hm;
struct kw_hm_call;

/*
 * A unary handler: `req` is the serialized request (valid until the reply or the cancel;
 * NULL when len is 0), `call` the handle to answer with. The caller's PeerID is
 * kw_conn_peer_id(kw_hm_call_conn(call)), from the connection: the envelope's `peer` field
 * is never trusted.
 */
typedef void (*kw_hm_unary_fn)(struct kw_hm_call *call, const uint8_t *req, size_t len,
			       void *arg);
/* The call ended before the handler answered (deadline, caller gone, node stopping); the
 * handle is dead after this returns. May be NULL for handlers that always answer at once. */
typedef void (*kw_hm_cancel_fn)(struct kw_hm_call *call, int reason, void *arg);

struct kw_hm_stats {
	uint64_t calls_in;          /* requests handed to a handler */
	uint64_t replies, error_replies;
	uint64_t refused_limit;     /* streams reset at accept: per-peer or total limit */
	uint64_t bad_envelopes;     /* undecodable, wrong arm, proto mismatch, too large */
	uint64_t deadlines;         /* answered "TimeoutError()" */
	uint64_t cancelled;         /* caller went away before the answer */
	uint64_t calls_out, calls_out_failed;
};

#define KW_HM_HANDLERS_MAX 16
#define KW_HM_BUF_MIN      128  /* a call buffer holds at least an error reply saying why */

/* Sizes and limits; kw_hm_limits_default fills them from Kconfig, the app may override. */
struct kw_hm_limits {
	uint32_t calls_in;        /* inbound calls served at once (pool size) */
	uint32_t calls_per_peer;  /* of those, from one connection */
	uint32_t calls_out;       /* outbound calls in flight (pool size) */
	uint32_t buf_bytes;       /* per call: request buffer and reply buffer, each */
	uint32_t timeout_ms;      /* default deadline of a served call and of a call we make */
};
void kw_hm_limits_default(struct kw_hm_limits *l);

/*
 * Creates the RPC layer of sw: pools of calls_in and calls_out call states, each with two
 * buffers of buf_bytes, from the node's arena (limits NULL: kw_hm_limits_default). Start-up
 * only. Return: 0 with *out set; -KW_ENOMEM; -KW_EINVAL (a zero limit, buf_bytes below
 * KW_HM_BUF_MIN).
 */
int kw_hm_create(struct kw_swarm *sw, const struct kw_hm_limits *limits, struct kw_hm **out);

/*
 * Serves `name` (a Hivemind handler name, no leading slash needed; copied) with fn.
 * deadline_ms 0 takes limits.timeout_ms. Return: 0, -KW_ENOSPC (no handler
 * slot or no swarm protocol slot), -KW_EEXIST, -KW_EINVAL.
 */
int kw_hm_register_unary(struct kw_hm *hm, const char *name, kw_hm_unary_fn fn,
			 kw_hm_cancel_fn on_cancel, void *arg, uint32_t deadline_ms);

/*
 * Answers a call (exactly once, unless on_cancel ran first): resp (may be empty) or the
 * error text (UTF-8, e.g. a Python repr such as "KeyError('x')"). The bytes are copied;
 * the handle is dead afterwards. Return: 0; -KW_EMSGSIZE when the reply envelope does not
 * fit limits.buf_bytes (the call is then answered with an error text saying
 * so); -KW_EINVAL for a non-UTF-8 error text (answered likewise), or a handle that is not
 * waiting for its answer.
 */
int kw_hm_reply(struct kw_hm_call *call, const uint8_t *resp, size_t len);
int kw_hm_reply_error(struct kw_hm_call *call, const char *text);

/* The connection a call came in on (caller identity: kw_conn_peer_id). */
struct kw_conn *kw_hm_call_conn(const struct kw_hm_call *call);

/* ---- calling ---------------------------------------------------------------------------- */

/*
 * The outcome of a call: err 0 and remote_error false: data/len is the response;
 * err 0 and remote_error true: data/len is the remote handler's error text (not
 * NUL-terminated; kw_hm_error_text reads it as Python would); err < 0: -KW_ETIMEDOUT,
 * -KW_ENOPROTO (the peer does not serve the name), -KW_ECONNRESET, -KW_EPIPE (closed
 * without a reply), -KW_EPROTO / -KW_EBADMSG / -KW_EMSGSIZE (a bad reply). data is valid
 * only during the callback.
 */
struct kw_hm_result {
	int err;
	bool remote_error;
	const uint8_t *data;
	size_t len;
};
typedef void (*kw_hm_call_cb)(const struct kw_hm_result *r, void *user);

/*
 * Calls `name` on the peer of c with request req[0..len) (copied). Returns at once; cb runs
 * once on the loop. timeout_ms 0 takes limits.timeout_ms.
 * Return: 0 (cb will run); -KW_ELIMIT (limits.calls_out calls in flight);
 * -KW_EMSGSIZE (the envelope does not fit limits.buf_bytes); -KW_EINVAL;
 * kw_swarm_open_stream's errors.
 */
int kw_hm_call(struct kw_hm *hm, struct kw_conn *c, const char *name, const uint8_t *req,
	       size_t len, uint32_t timeout_ms, kw_hm_call_cb cb, void *user);

void kw_hm_get_stats(const struct kw_hm *hm, struct kw_hm_stats *st);

/* ---- stream calls (net/hivemind/stream_rpc.c) ----------------------------------------------
 *
 * hivemind's stream handlers (add_protobuf_handler with stream_input and/or stream_output,
 * hivemind/p2p/p2p_daemon.py @ 4bd43b7): one libp2p stream per call carrying marker +
 * 8-byte length frames (include/kw/net/hivemind_rpc.h). The caller writes its requests as
 * 0x00 frames and then END_OF_STREAM (an empty 0x01 frame) without half-closing; the server
 * writes any number of 0x00 responses and closes its side, or one 0x01 error frame
 * RPCError{message = str(exception)} and closes. Unary-in/stream-out (rpc_download_state)
 * and stream-in/unary-out are the same mechanism with one message on one side.
 *
 * Back-pressure: a side that keeps a message (KW_HM_STREAM_HOLD) gets no further message
 * until kw_hm_stream_next(); at most limits.prefetch complete messages wait behind it (5 as
 * hivemind's max_prefetch); beyond that the node stops reading and the muxer's window
 * throttles the sender. kw_hm_stream_send() returns -KW_EAGAIN when the send buffer is
 * full; on_writable says when to try again.
 *
 * A stream on which nothing moves for the idle deadline ends (server: error frame
 * "TimeoutError()" and on_cancel; caller: -KW_ETIMEDOUT). A caller that half-closes or
 * resets before the server ended cancels the handler (p2pd closes the socket, hivemind
 * cancels the handler). Bad frames (unknown marker, larger than the buffer or
 * KW_HM_FRAME_MAX) reset the stream and are counted; other calls go on.
 *
 * Memory: kw_hm_stream_setup() takes both pools from the node's arena at start-up;
 * nothing is allocated per stream or per message after that.
 */

struct kw_hm_stream;

#define KW_HM_STREAM_HOLD       1    /* on_message's return: keep msg, pause delivery */
#define KW_HM_STREAM_TEXT_MAX   256  /* error text kept for the caller's result, NUL incl. */

struct kw_hm_stream_limits {
	uint32_t streams_in;       /* served at once (pool size) */
	uint32_t streams_per_peer; /* of those, from one connection */
	uint32_t streams_out;      /* made at once (pool size) */
	uint32_t buf_bytes;        /* per stream: receive buffer and send buffer, each */
	uint32_t prefetch;         /* complete messages buffered behind the handler */
	uint32_t idle_ms;          /* default idle deadline, served and made */
};
/* Fills *l from Kconfig (KW_NET_HIVEMIND_STREAM*). */
void kw_hm_stream_limits_default(struct kw_hm_stream_limits *l);

/*
 * Creates the stream pools of hm (limits NULL: the Kconfig defaults) from the node's arena.
 * Start-up only, once, before kw_hm_register_stream / kw_hm_stream_open. Return: 0;
 * -KW_EALREADY; -KW_ENOMEM; -KW_EINVAL (a zero limit, buf_bytes below KW_HM_BUF_MIN).
 */
int kw_hm_stream_setup(struct kw_hm *hm, const struct kw_hm_stream_limits *limits);

/*
 * One side's callbacks; every one runs on the loop, never re-entrantly from a kw_hm_stream_*
 * call. `arg` is the registration's arg (server) or kw_hm_stream_open's user (caller).
 *
 * on_message: one request (server) or response (caller). msg/len is valid until this returns,
 *   or, when it returns KW_HM_STREAM_HOLD, until kw_hm_stream_next(); return 0 to take the
 *   next message at once. Required.
 * on_end: server only: the caller's END_OF_STREAM (no more requests). May be NULL.
 * on_writable: the send buffer has room again after kw_hm_stream_send returned -KW_EAGAIN.
 *   May be NULL.
 * on_cancel: server only: the call ended before the handler did (reason -KW_ECANCELED: the
 *   caller closed or reset; -KW_ETIMEDOUT: idle deadline, already answered
 *   "TimeoutError()"; -KW_EPROTO: a bad frame; -KW_ESHUTDOWN). The handle is dead after it.
 *   May be NULL.
 * on_done: caller only, exactly once, when the call is over: r->err 0 (the server closed
 *   after its responses), r->remote_error with r->text = what a Python caller raises
 *   ("Failed to call handler `<name>` at <peer>: <message>"), or r->err < 0:
 *   -KW_ENOPROTO, -KW_ETIMEDOUT, -KW_ECONNRESET, -KW_EPIPE (ended inside a frame),
 *   -KW_EPROTO / -KW_EMSGSIZE (a bad frame), -KW_ECANCELED (kw_hm_stream_cancel).
 *   The handle is dead after it. Required.
 */
struct kw_hm_stream_result {
	int err;
	bool remote_error;
	const char *text;          /* NUL-terminated, "" unless remote_error; valid in on_done */
	uint64_t messages;         /* messages received */
};
struct kw_hm_stream_ops {
	int (*on_message)(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg);
	void (*on_end)(struct kw_hm_stream *st, void *arg);
	void (*on_writable)(struct kw_hm_stream *st, void *arg);
	void (*on_cancel)(struct kw_hm_stream *st, int reason, void *arg);
	void (*on_done)(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg);
};

/*
 * Serves `name` (copied) as a stream handler with ops (kept by pointer: static storage).
 * idle_ms 0 takes limits.idle_ms. Return: 0; -KW_EINVAL (no setup, bad name, no
 * on_message); -KW_EEXIST (a stream handler of that name; the swarm refuses a name a unary
 * handler has); -KW_ENOSPC.
 */
int kw_hm_register_stream(struct kw_hm *hm, const char *name, const struct kw_hm_stream_ops *ops,
			  void *arg, uint32_t idle_ms);

/*
 * Calls stream handler `name` on the peer of c. Returns at once with *out set; requests
 * may be sent at once (they wait in the send buffer while the stream opens); end them with
 * kw_hm_stream_end (END_OF_STREAM). ops->on_done runs exactly once. idle_ms 0 takes
 * limits.idle_ms. Return: 0; -KW_ELIMIT (limits.streams_out in flight); -KW_EINVAL;
 * kw_swarm_open_stream's errors (no callback then).
 */
int kw_hm_stream_open(struct kw_hm *hm, struct kw_conn *c, const char *name,
		      const struct kw_hm_stream_ops *ops, void *user, uint32_t idle_ms,
		      struct kw_hm_stream **out);

/*
 * Queues one message (copied into the send buffer as a 0x00 frame). Return: 0; -KW_EAGAIN
 * (no room now: on_writable follows); -KW_EMSGSIZE (the frame can never fit buf_bytes);
 * -KW_EINVAL (the handle has ended or is cancelled, or msg NULL with len).
 */
int kw_hm_stream_send(struct kw_hm_stream *st, const uint8_t *msg, size_t len);

/*
 * Ends our side normally. Caller: queues END_OF_STREAM (responses keep coming until
 * on_done). Server: the queued responses are sent and the stream is closed; the handle is
 * dead when this returns. Return: 0; -KW_EINVAL (already ended).
 */
int kw_hm_stream_end(struct kw_hm_stream *st);

/*
 * Server only: ends the call with an error frame RPCError{message = text} (UTF-8; cut to fit
 * at a character boundary) after the queued responses, then closes; the handle is dead when
 * this returns. Return: 0; -KW_EINVAL (not a served call, ended, or text not UTF-8: the
 * call is then ended with "RuntimeError('error text is not UTF-8')").
 */
int kw_hm_stream_error(struct kw_hm_stream *st, const char *text);

/* Releases a message kept with KW_HM_STREAM_HOLD; delivery goes on from the loop. */
int kw_hm_stream_next(struct kw_hm_stream *st);

/* Caller only: abandons the call (stream reset, which cancels the server's handler);
 * on_done runs inside with -KW_ECANCELED. Return: 0; -KW_EINVAL (already done). */
int kw_hm_stream_cancel(struct kw_hm_stream *st);

/* The connection of the call (the peer: kw_conn_peer_id). */
struct kw_conn *kw_hm_stream_conn(const struct kw_hm_stream *st);
/* A pointer the owner may keep on the handle (NULL at start). */
void kw_hm_stream_set_user(struct kw_hm_stream *st, void *p);
void *kw_hm_stream_user(const struct kw_hm_stream *st);
/* Complete messages read and waiting behind the handler (for tests and metrics). */
unsigned kw_hm_stream_buffered(const struct kw_hm_stream *st);

struct kw_hm_stream_stats {
	uint64_t streams_in;         /* served streams handed to a handler */
	uint64_t refused_limit;      /* reset at accept: per-peer or pool limit */
	uint64_t bad_frames;         /* unknown marker, bad RPCError, truncated */
	uint64_t oversized;          /* frame above buf_bytes or KW_HM_FRAME_MAX */
	uint64_t cancelled;          /* served calls the caller abandoned */
	uint64_t deadlines;          /* idle deadline hit (either side) */
	uint64_t errors_sent;        /* error frames we wrote */
	uint64_t msgs_in, msgs_out;  /* 0x00 frames delivered / queued */
	uint64_t streams_out, streams_out_failed;
};
void kw_hm_stream_get_stats(const struct kw_hm *hm, struct kw_hm_stream_stats *st);

#endif /* KW_NET_HIVEMIND_H */
