/*
 * Serving compute to Hivemind and Petals callers (app/serve*.c, doc/serve.md): the unary
 * handlers of a hivemind MoE server (ConnectionHandler.rpc_info / rpc_forward /
 * rpc_backward, hivemind hivemind/moe/server/connection_handler.py @ 4bd43b7) for FFN experts
 * "ffn.<i>.<j>", and of a Petals server (TransformerConnectionHandler.rpc_info / rpc_forward
 * / rpc_backward, petals src/petals/server/handler.py @ 22afba6) for a span of LLaMA blocks,
 * all on the int8 (or fp32) compute of ml/block; their stream variants (rpc_forward_stream /
 * rpc_backward_stream of both, app/serve_stream.c) and Petals inference sessions
 * (rpc_inference with a KV cache per session, rpc_push, app/serve_infer.c). Private to app/
 * (and its tests and fuzz targets).
 *
 * Life cycle (start-up only, nothing after kw_serve_start allocates):
 *   kw_serve_create      state from an arena (about 260 KiB: the codec tables)
 *   kw_serve_add_expert  one FFN expert (weights borrowed), any number up to the limit
 *   kw_serve_set_blocks  the LLaMA span (weights borrowed), at most one span
 *   kw_serve_start       scratch sized from what was added, slots, the KV cache of
 *                        limits.sessions sessions, handlers on a kw_hm
 *
 * Requests are computed on the event loop when they arrive and answered at once (one
 * request at a time holds the compute contexts). Each takes a slot (input, output and reply
 * buffers) from a pool of limits.slots and gives it back before the handler returns (a
 * stream call keeps it from its first piece to its last answer piece; an inference step
 * takes it for the step); the seam for compute off the loop (workers) is kw_serve_moe_run /
 * kw_serve_petals_run: they take a decoded request and a slot and fill the reply,
 * independent of how bytes came (the unary and the stream handlers both use it).
 *
 * Errors are answered as the Python server raises them, repr(exception) as hivemind's p2pd
 * bindings send it (hivemind/p2p/p2p_daemon_bindings/control.py): "KeyError('ffn.9.9')",
 * "RuntimeError('Remote peer does not serve llama.7')", "ValueError('...')". Every error is
 * counted; the slot goes back to the pool and the node keeps serving. Stream handlers send
 * str(exception) instead, as hivemind's stream handlers do (p2p_daemon.py _process_stream).
 */
#ifndef KW_APP_SERVE_H
#define KW_APP_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/loop.h>
#include <kw/policy.h>
#include <kw/ml/block.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>

struct kw_hm;
struct kw_serve;

#define KW_SERVE_UID_MAX     64  /* an expert uid or a block uid ("<prefix>.<i>") */
#define KW_SERVE_TENSORS_MAX 4   /* tensors in one request (Petals backward: 3) */

/* Handler names (hivemind handle_name = "<ClassName>.<method>"). */
#define KW_SERVE_MOE_INFO     "ConnectionHandler.rpc_info"
#define KW_SERVE_MOE_FORWARD  "ConnectionHandler.rpc_forward"
#define KW_SERVE_MOE_BACKWARD "ConnectionHandler.rpc_backward"
#define KW_SERVE_PT_INFO      "TransformerConnectionHandler.rpc_info"
#define KW_SERVE_PT_FORWARD   "TransformerConnectionHandler.rpc_forward"
#define KW_SERVE_PT_BACKWARD  "TransformerConnectionHandler.rpc_backward"
/* Stream handlers (app/serve_stream.c, app/serve_infer.c) and Petals' rpc_push (unary). */
#define KW_SERVE_MOE_FORWARD_STREAM  "ConnectionHandler.rpc_forward_stream"
#define KW_SERVE_MOE_BACKWARD_STREAM "ConnectionHandler.rpc_backward_stream"
#define KW_SERVE_PT_FORWARD_STREAM   "TransformerConnectionHandler.rpc_forward_stream"
#define KW_SERVE_PT_BACKWARD_STREAM  "TransformerConnectionHandler.rpc_backward_stream"
#define KW_SERVE_PT_INFERENCE        "TransformerConnectionHandler.rpc_inference"
#define KW_SERVE_PT_PUSH             "TransformerConnectionHandler.rpc_push"

/* Sizes; kw_serve_limits_default fills them from Kconfig (KW_APP_SERVE_*). */
struct kw_serve_limits {
	uint32_t max_rows;      /* rows of one request: batch (MoE) or batch x tokens (Petals) */
	uint32_t max_experts;   /* experts one node serves */
	uint32_t slots;         /* requests in progress at once (pool size) */
	uint32_t max_blocks;    /* blocks in the span (and in one chain) */
	/* Petals rpc_inference; 0 takes the Kconfig default (KW_APP_SERVE_SESSION*) */
	uint32_t sessions;         /* sessions at once (KV-cache slots) */
	uint32_t session_tokens;   /* positions per session (batch x max_length) */
	uint32_t step_timeout_ms;  /* Petals step_timeout */
	uint32_t session_timeout_ms; /* Petals session_timeout */
	/* A session that finds every cache slot taken waits for one up to its metadata's
	 * alloc_timeout, at most this long (Petals' --max_alloc_timeout, 600 s by default);
	 * 0 takes KW_SERVE_MAX_ALLOC_TIMEOUT_MS. */
	uint32_t max_alloc_timeout_ms;
	/* Sessions that may wait for a cache slot at once (the wait queue); 0 takes
	 * KW_SERVE_ALLOC_WAITERS. */
	uint32_t alloc_waiters;
	/* Largest answer piece of a _stream handler (bytes of one ExpertResponse); it must fit
	 * the stream buffer of the kw_hm. 0: KW_NET_HIVEMIND_STREAM_BUF_BYTES - 512, at most
	 * 4 MiB (hivemind's DEFAULT_MAX_MSG_SIZE). */
	uint32_t stream_piece;
};
void kw_serve_limits_default(struct kw_serve_limits *l);
#define KW_SERVE_MAX_ALLOC_TIMEOUT_MS 600000u   /* petals cli/run_server.py --max_alloc_timeout */
#define KW_SERVE_ALLOC_WAITERS        8u

struct kw_serve_stats {
	uint64_t calls;          /* requests answered (either way) */
	uint64_t errors;         /* of those, answered with an error text */
	uint64_t bad_requests;   /* of those, the request itself did not decode */
	uint64_t busy;           /* refused: no free slot */
	size_t slots_used;       /* slots taken now (0 when idle) */
	size_t slots_high;
	/* Petals rpc_inference and the stream handlers */
	uint64_t sessions;       /* sessions opened */
	uint64_t steps;          /* inference steps computed */
	uint64_t steps_dup;      /* requests dropped as a repeated step_id */
	uint64_t pushes;         /* rpc_push calls delivered into a session */
	uint64_t stream_calls;   /* rpc_forward_stream / rpc_backward_stream answered */
	size_t sessions_open;    /* open now (0 when idle) */
	size_t sessions_high;
	uint64_t refused;        /* calls and sessions refused while pausing */
	uint64_t alloc_waits;    /* sessions that waited for a cache slot */
	uint64_t alloc_timeouts; /* of those, refused when their alloc_timeout passed */
	size_t alloc_waiting;    /* waiting now */
	uint64_t pushes_out;     /* outputs pushed to the next server (next_servers) */
	uint64_t pushes_out_failed; /* of those, not delivered (logged; the step is unaffected) */
	uint64_t pushes_out_dials;  /* of the failed, dials asked for a next server with no
	                             * connection (kw_serve_set_connect), so its later pushes go */
};

/* ---- ExpertRequest / ExpertUID decoding (bounded; the fuzz target drives it) ------------- */
/*
 * hivemind runtime.proto: ExpertRequest { string uid = 1; repeated Tensor tensors = 2;
 * bytes metadata = 3; } and ExpertUID { string uid = 1; } (the same field 1, so one decoder
 * reads both). Views point into the input. Proto3 rules: a repeated singular field keeps the
 * last value; unknown fields are skipped; packed or unpacked Tensor.size is accepted.
 */
struct kw_serve_req {
	const char *uid;     /* not NUL-terminated; uid_len bytes of valid UTF-8 */
	size_t uid_len;
	struct kw_tensor_msg t[KW_SERVE_TENSORS_MAX];
	size_t n_tensors;
	const uint8_t *meta; /* msgpack, or NULL */
	size_t meta_len;
};

/*
 * Return: 0; -KW_EBADMSG (malformed protobuf, or a uid that is not UTF-8); -KW_ELIMIT (more
 * than KW_SERVE_TENSORS_MAX tensors); kw_tensor_msg_decode's -KW_EMSGSIZE. *why (may be
 * NULL) gets a static text naming the problem.
 */
int kw_serve_req_decode(struct kw_serve_req *r, const uint8_t *buf, size_t len,
			const char **why);

/* ---- set-up -------------------------------------------------------------------------------- */

/*
 * State from arena a (which must outlive the serve). Return: 0, -KW_ENOMEM, -KW_EINVAL (zero
 * limit), kw_codec_init's errors.
 */
int kw_serve_create(struct kw_arena *a, const struct kw_serve_limits *lim, struct kw_serve **out);

/*
 * An FFN expert under uid, a hivemind expert uid ("<type>.<i>[.<j>...]", coordinates without
 * leading zeros, hivemind/moe/expert_uid.py UID_PATTERN). f is borrowed; an int8 expert that
 * is to run backward needs its q8t. All experts share hid and inter (one compute context).
 * comp: the compression of the expert's args schema (hivemind Server --compression): the
 * caller is told to send inputs so and gradients are answered so; outputs go uncompressed
 * as hivemind's outputs schema says. Return: 0, -KW_EINVAL (bad uid, other dims), -KW_EEXIST,
 * -KW_ENOSPC (max_experts), -KW_EBUSY (after start).
 */
int kw_serve_add_expert(struct kw_serve *s, const char *uid, const struct kw_ffn *f,
			enum kw_compression comp);

/*
 * The LLaMA span: blocks first .. first + count - 1 of the model, served as
 * "<prefix>.<first + i>" (Petals module uids), w[count] borrowed (int8 blocks need their
 * transposes for backward). d: the blocks' dims. Return: 0, -KW_EINVAL, -KW_ENOSPC (count above
 * max_blocks), -KW_EEXIST (a span is set), -KW_EBUSY (after start).
 */
int kw_serve_set_blocks(struct kw_serve *s, const char *prefix, uint32_t first, uint32_t count,
			const struct kw_llama_w *w, const struct kw_llama_dims *d);

/* Arena bytes kw_serve_start will take from its arena for what was added (0 on overflow). */
size_t kw_serve_bytes(const struct kw_serve *s);

/*
 * Carves the compute contexts and the slot pool from arena a (kw_serve_bytes of it; it may be
 * the create arena; it must outlive the serve) and registers the handlers on
 * hm (the three MoE names when an expert was added, the three Petals names when a span was
 * set, plus their stream handlers, rpc_inference and rpc_push; hm's stream pools are set up
 * with the Kconfig sizes unless the caller did it first). kk NULL: kw_kernels_best(); wk may
 * be NULL. client_mode: reported by Petals rpc_info. hm NULL: only the compute
 * (kw_serve_call drives it). Return: 0, -KW_ENOMEM, -KW_EINVAL (nothing to serve),
 * kw_hm_register_unary's, kw_hm_register_stream's and kw_hm_stream_setup's errors.
 */
int kw_serve_start(struct kw_serve *s, struct kw_arena *a, struct kw_hm *hm,
		   const struct kw_kernels *kk,
		   struct kw_workers *wk, bool client_mode);

/*
 * Serves one request without a network: name is one of the KW_SERVE_* handler names, the
 * answer (the response bytes or, with *is_error, the error text) goes to out[0..cap) and its
 * length to *out_len. What the unary handlers do; for tests and `kwnode call --local`.
 * Return: 0 (answered, either way); -KW_ENOENT (unknown name); -KW_ENOSPC (out too small).
 */
int kw_serve_call(struct kw_serve *s, const char *name, const uint8_t *req, size_t len,
		  uint8_t *out, size_t cap, size_t *out_len, bool *is_error);

/*
 * Stops the compute lane (doc/serve.md "Compute off the event loop"), if it started: waits
 * for the request it is running, answers that one and what is done, answers the queued ones
 * with "RuntimeError('server shutting down')", frees their slots and lets go of the loop.
 * Call on the loop's thread while the loop still exists (before its node is destroyed).
 * Idempotent; a no-op when requests are computed on the loop.
 */
void kw_serve_stop(struct kw_serve *s);
/* Only stops the lane thread after its running job, without touching the loop (which may
 * be gone: the node destroyed first); unanswered requests are dropped with their slots.
 * Before freeing the serve's memory. Idempotent. */
void kw_serve_lane_join(struct kw_serve *s);

void kw_serve_get_stats(const struct kw_serve *s, struct kw_serve_stats *st);

/*
 * How the server reaches a next server it has no connection to (next_servers): fn starts
 * a dial of pid and returns 0, or a negative code when it cannot; it never waits. Petals'
 * _push_outputs dials the next peer through libp2p; here the step's push is dropped (its
 * client sends the step itself, as when any push fails) and the dial serves the session's
 * later pushes. One dial per peer per 5 s. fn NULL (the default): no dial. Start-up only.
 */
struct kw_peer_id;
typedef int (*kw_serve_connect_fn)(void *arg, const struct kw_peer_id *pid);
void kw_serve_set_connect(struct kw_serve *s, kw_serve_connect_fn fn, void *arg);

/* ---- what is served (for ServerInfo publishing, app/hivemind.c) -------------------------- */
struct kw_serve_desc {
	size_t n_experts;
	const char *expert_uid[8];  /* the first up to 8, NUL-terminated, owned by s */
	bool has_blocks;
	const char *block_prefix;   /* dht_prefix of the span, owned by s */
	uint32_t start_block, end_block;  /* [start, end): ServerInfo start_block/end_block */
	const char *torch_dtype;    /* "float32": what the handlers answer in */
	const char *quant_type;     /* "int8" or "none" */
	uint64_t cache_tokens_left; /* Petals ServerInfo.cache_tokens_left: KV-cache tokens free,
				       K and V counted apart (a client needs 2 x blocks x tokens) */
	uint32_t inference_max_length; /* the largest max_length rpc_inference accepts */
};
void kw_serve_describe(const struct kw_serve *s, struct kw_serve_desc *d);

/* ---- hivemind expert uid rule ------------------------------------------------------------- */
/* True when s is a valid expert uid (hivemind/moe/expert_uid.py is_valid_uid). */
bool kw_serve_uid_valid(const char *s, size_t len);

/* ---- pausing: serving as a drain client of the contribution policy (app/serve_drain.c) -- */

/* What a caller reads when it reaches a pausing server (Petals has no text of its own for a
 * server going away; this names the pause so the caller routes elsewhere). */
#define KW_SERVE_PAUSED_REPR \
	"RuntimeError('server is pausing (contribution policy): it takes no new requests or " \
	"sessions; use another server')"

/*
 * on false: new unary calls (rpc_info excepted), new stream calls and new rpc_inference
 * sessions are answered with KW_SERVE_PAUSED_REPR (str() of it on streams); requests in
 * flight and open sessions go on. on true: accepted again.
 */
void kw_serve_set_accepting(struct kw_serve *s, bool on);
bool kw_serve_accepting(const struct kw_serve *s);
/* Requests in flight (slots taken, stream calls included) plus open sessions. */
size_t kw_serve_busy(const struct kw_serve *s);

/*
 * The drain client. On drain: waits until the client `after` (the Hivemind announcer, found
 * by name "hivemind"; none: no wait) has stored its OFFLINE records, so callers stop routing
 * here first; then refuses new work, lets what is in flight finish, closes sessions still
 * open at the policy's drain_timeout_ms with an error frame, and reports done when nothing is
 * left. On resume: accepts again. Caller-owned (node arena); attached until the policy stops.
 */
struct kw_serve_drain {
	struct kw_serve *s;
	struct kw_policy *policy;
	struct kw_loop *loop;
	const struct kw_policy_client *after;
	struct kw_policy_client pc;
	struct kw_timer wait;            /* re-checks `after` every KW_SERVE_DRAIN_POLL_MS */
	struct kw_timer end;             /* the policy's drain_timeout_ms */
	bool draining;
	uint64_t drains, resumes, sessions_closed;
};
/* Registers d on policy p for s. Return: 0 or -KW_EINVAL. */
int kw_serve_drain_attach(struct kw_serve_drain *d, struct kw_serve *s, struct kw_policy *p);
/* Cancels its timers (at shutdown, after the policy stopped). */
void kw_serve_drain_detach(struct kw_serve_drain *d);

/* Writes v as a minimal protobuf varint at p (up to 10 bytes); returns the bytes written. The
 * serving side and the clients that build ExpertRequest bytes by hand share it. */
size_t kw_serve_pb_varint_put(uint8_t *p, uint64_t v);

#endif /* KW_APP_SERVE_H */
