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

#endif /* KW_NET_HIVEMIND_H */
