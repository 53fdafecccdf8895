/*
 * The state of app/serve*.c shared between the common part (serve.c: set-up, request
 * decoding, tensors in and out, error texts) and the two servers (serve_moe.c, serve_petals.c).
 * Private to those files.
 */
#ifndef KW_APP_SERVE_INT_H
#define KW_APP_SERVE_INT_H

#include <pthread.h>
#include <stdarg.h>

#include <kw/loop.h>
#include <kw/pool.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>

#include "serve.h"

#define KW_SERVE_ERR_MAX 256   /* an error text (a Python repr) */
/* Room in the rpc_push buffer beyond two replies: the uid and the pushed metadata (half of
 * it each at most). */
#define KW_SERVE_PUSH_EXTRA 8192

/* The result of a served request: the reply (the slot's out) or an error text (slot->err). */
struct kw_serve_out {
	const uint8_t *data;
	size_t len;
	bool is_error;
};

struct kw_serve;
struct kw_serve_slot;
/* A lane job finished (on the loop's thread); the slot goes back to the pool after this. */
typedef void (*kw_serve_done_fn)(struct kw_serve *s, struct kw_serve_slot *slot, void *user);
/* A lane job's own computation (lane thread, compute lock held); NULL: a unary request. */
typedef void (*kw_serve_run_fn)(struct kw_serve *s, struct kw_serve_slot *slot, void *user);

enum { KW_SERVE_JOB_IDLE = 0, KW_SERVE_JOB_QUEUED, KW_SERVE_JOB_RUNNING, KW_SERVE_JOB_DONE };

/* A request handed to the compute lane (serve_lane.c); lives in its slot. state and
 * cancelled change under lane.mu; the rest is written by the loop before the job is queued
 * (req/o by the lane thread while it runs) and read by the loop after it is DONE. */
struct kw_serve_job {
	void *tok;               /* the slot's pool token */
	bool petals, bad, cancelled;
	bool keep;               /* done takes the slot over (a stream call replies from it in
				    pieces); a cancelled job's slot still goes back on collection */
	int method;
	int state;
	int status;              /* 0: computed; -KW_ECANCELED: the lane stopped before it ran
				    (the text is in the slot's err) */
	kw_serve_run_fn run;
	const uint8_t *req;      /* the call's request buffer (net/hivemind's, until the reply) */
	size_t len;
	struct kw_serve_out o;
	kw_serve_done_fn done;
	void *user;
};

/* One request in progress: its buffers, carved once at start. */
struct kw_serve_slot {
	float *x, *g, *y;        /* max_rows x width floats each */
	float *acts;             /* Petals backward: each block's input, max_blocks x rows x width */
	uint8_t *enc;            /* one encoded Tensor.buffer */
	size_t enc_cap;
	void *scratch;           /* codec scratch (QUANTILE_8BIT sorts) */
	size_t scratch_len;
	uint8_t *out;            /* the response protobuf */
	size_t out_cap;
	char err[KW_SERVE_ERR_MAX];
	struct kw_serve_job job;
};

/* The compute lane (serve_lane.c, Kconfig KW_APP_SERVE_LANE): one thread that runs queued
 * unary requests, inference steps and stream calls while the loop serves everything else.
 * Every computation on the served weights holds `compute` (the lane thread, or the loop for
 * what it still computes inline: pushed steps, kw_serve_call), so the shared contexts (fctx,
 * lctx, the worker pool) have one user at a time. */
struct kw_serve_lane {
	bool tried, on, stopping;
	struct kw_loop *l;
	pthread_t th;
	pthread_mutex_t mu;      /* ring, job states */
	pthread_cond_t cv_work, cv_state;
	pthread_mutex_t compute;
	uint32_t *ring;          /* lim.slots slot indices, FIFO */
	uint32_t head, n;
	struct kw_async done;
	uint64_t jobs;           /* run on the lane */
};

struct kw_serve_expert {
	char uid[KW_SERVE_UID_MAX + 1];
	const struct kw_ffn *f;
	enum kw_compression comp;
};

struct kw_serve_sess;   /* an rpc_inference session (serve_infer.c) */
struct kw_serve_wait;   /* a session waiting for a cache slot (serve_infer.c) */
struct kw_serve_sc;     /* an rpc_*_stream call (serve_stream.c) */

struct kw_serve {
	struct kw_arena *a;
	struct kw_serve_limits lim;
	struct kw_codec *codec;
	bool started, client_mode;
	/* MoE */
	struct kw_serve_expert *ex;
	size_t n_ex, hid, inter;
	struct kw_ffn_ctx fctx;
	/* Petals */
	bool has_blocks;
	char prefix[KW_SERVE_UID_MAX + 1];
	uint32_t first, count;
	const struct kw_llama_w *w;
	struct kw_llama_dims d;
	bool int8;
	struct kw_llama_ctx lctx;
	/* requests */
	size_t width;            /* floats per row: max(hid, hidden) */
	struct kw_pool pool;     /* tokens; the index picks slot[] */
	struct kw_serve_slot *slot;
	struct kw_serve_stats st;
	/* stream handlers and Petals inference (hm NULL: none) */
	struct kw_hm *hm;
	struct kw_kv_cache kv;   /* lim.sessions slots of lim.session_tokens x count blocks */
	struct kw_serve_sess *sess;
	struct kw_serve_wait *wait;  /* lim.alloc_waiters waiters, served oldest first */
	uint64_t wait_seq;
	struct kw_timer grant;       /* a slot freed: the oldest waiter opens, from the loop */
	uint8_t *push_buf;           /* one rpc_push request to the next server (next_servers) */
	kw_serve_connect_fn connect; /* dials a next server with no connection (may be NULL) */
	void *connect_arg;
	struct kw_peer_id dialed;    /* the last peer dialed for a push, and when (loop ms) */
	uint64_t dialed_ms;
	struct kw_serve_sc *sc;  /* lim.slots stream calls */
	struct kw_serve_lane lane;
	/* pausing (app/serve_drain.c): the refusal text while new work is refused (NULL:
	 * accepting), and who hears when the last request or session ends */
	const char *refuse;
	void (*on_idle)(struct kw_serve *s, void *arg);
	void *idle_arg;
};

/* A protobuf varint at b[*pos] (up to 10 bytes, non-minimal forms accepted); *pos moves
 * past it. Return: 0 or -KW_EBADMSG (truncated, beyond 64 bits). */
int kw_serve_pb_varint(const uint8_t *b, size_t len, size_t *pos, uint64_t *v);

/* Called where a request or a session ends: tells on_idle when refusing and nothing is left
 * (app/serve_drain.c). */
void kw_serve_idle_check(struct kw_serve *s);
/* Ends every open rpc_inference session with an error frame holding str(repr) (serve_infer.c);
 * returns how many. */
size_t kw_serve_infer_close_all(struct kw_serve *s, const char *repr);
/* Ends every session waiting for a cache slot with an error frame holding str(repr)
 * (pausing); returns how many. */
size_t kw_serve_infer_refuse_waiters(struct kw_serve *s, const char *repr);

/* A request slot from the pool (NULL when all are taken; *tok is given back to slot_put). */
struct kw_serve_slot *kw_serve_slot_get(struct kw_serve *s, void **tok);
void kw_serve_slot_put(struct kw_serve *s, void *tok);

/*
 * str(exception) from its repr (what kw_serve_pyerr wrote): stream handlers send str(e)
 * (hivemind p2p_daemon.py _process_stream: RPCError(message=str(e))), unary ones repr.
 * "ValueError('a b')" -> "a b"; "KeyError('x')" -> "'x'" (KeyError's str is its key's
 * repr); "TimeoutError()" -> "". Writes NUL-terminated into out[0..cap).
 */
void kw_serve_pystr(const char *repr, char *out, size_t cap);

/* Set-up of serve_infer.c / serve_stream.c from kw_serve_start (arena memory, handlers on
 * s->hm). kw_serve_infer_bytes / kw_serve_stream_bytes: what they take from the arena. */
size_t kw_serve_infer_bytes(const struct kw_serve *s);
int kw_serve_infer_start(struct kw_serve *s);
size_t kw_serve_stream_bytes(const struct kw_serve *s);
int kw_serve_stream_start(struct kw_serve *s);
/* Petals rpc_info's cache_tokens_available: KV-cache tokens free per block (K and V as one). */
uint64_t kw_serve_cache_tokens(const struct kw_serve *s);

/* What one rpc_inference request's metadata says (the keys Petals reads; string ids are kept
 * as 64-bit FNV-1a hashes, 0 = absent). */
struct kw_serve_infer_meta {
	bool has_max_length, has_start, has_step, pushed, has_comp, bad_points;
	bool bad_alloc_timeout;      /* float(alloc_timeout) raises: the text is alloc_err */
	int64_t max_length, start;
	double alloc_timeout;        /* seconds; 0 when absent (Petals' default) */
	char alloc_err[96];
	uint64_t step_id, session_id;
	enum kw_compression comp;
	char max_length_repr[32], points_repr[32];   /* Python reprs for the error texts */
};
/* Bounded decoder of that msgpack dict (args_structure, next_servers and unknown keys are
 * skipped). Return: 0; -KW_EINVAL with the Python error text (a repr) in err. */
int kw_serve_infer_meta_decode(const uint8_t *b, size_t len, struct kw_serve_infer_meta *m,
			       char *err, size_t cap);
/* The first hop of a step's next_servers ([peer_id, session_id, start, end]); views into
 * the metadata decoded. */
struct kw_serve_push_hop {
	char peer[128];              /* base58 text, NUL-terminated */
	const uint8_t *session;
	size_t session_len;
	int64_t start, end;          /* 0 <= start < end, end - start <= 64 */
	const uint8_t *rest;         /* next_servers[1:], raw msgpack elements */
	size_t rest_len;
	uint32_t n_rest;
};
/* The metadata a step's push carries to its next hop (petals handler.py _push_outputs): the
 * step's metadata b[0..len) with session_id = the hop's, next_servers = the rest, pushed =
 * True, written into w. Return: 0 with *h; 1: no next_servers (nothing to push); -KW_EINVAL
 * (next_servers is not a list of hops); the writer's -KW_ENOSPC. */
int kw_serve_push_meta(const uint8_t *b, size_t len, struct kw_mp_writer *w,
		       struct kw_serve_push_hop *h);

/* hypo_ids: DUMMY (n = 0) or B uncompressed int64 indices below B into hypo[0..cap).
 * Return: 0 with *n; -KW_EINVAL with the error text in err. */
int kw_serve_infer_hypo(const struct kw_tensor_msg *hy, uint32_t B, uint32_t *hypo, size_t cap,
			size_t *n, char *err, size_t errcap);

/* Petals: the chain a uid names as block indices (chain_of of serve_petals.c); error text in
 * err. Return: 0, -KW_ENOENT (a block not held), -KW_ELIMIT (longer than max_blocks). */
int kw_serve_petals_chain(struct kw_serve *s, const char *uid, size_t uid_len, uint32_t *idx,
			  size_t *n, char *err, size_t cap);

/*
 * Deep prompts (petals server/block_functions.py @ 22afba6): a prompts tensor of shape
 * (num_blocks, Bp, pre_seq_len, H), Bp 1 or the batch; prompts[i] is added to the first
 * pre_seq_len positions of the hidden states before block i of the chain. Kept as a view
 * of the request's tensor (uncompressed, sliced per block when added).
 */
struct kw_serve_prompts {
	struct kw_tensor_msg m;      /* the request's tensor (its buffer is the request's) */
	bool on;                     /* false: absent or DUMMY */
	enum kw_codec_dtype dt;
	size_t el;                   /* bytes per value in the buffer */
	uint32_t nb, bp, pre;
};
/* Checks prompts m (NULL: absent) against a chain of n_chain blocks and hidden states
 * (B, T, H) as torch would add them, into *p. Return: 0; -KW_EINVAL with the text in err. */
int kw_serve_prompts_check(struct kw_serve *s, const struct kw_tensor_msg *m, size_t n_chain,
			   uint32_t B, uint32_t T, struct kw_serve_prompts *p, char *err,
			   size_t cap);
/* h[:, :pre] += prompts[i] for h (B, T, H); scratch holds Bp x pre x H floats. 0 or
 * -KW_EBADMSG (the slice does not decode: cannot happen after the check). */
int kw_serve_prompts_add(struct kw_serve *s, const struct kw_serve_prompts *p, size_t i,
			 float *h, uint32_t B, uint32_t T, float *scratch);

/* Writes repr(cls(msg)) as Python prints it into out[0..cap): cls('msg') with msg quoted and
 * escaped as str.__repr__ does for ASCII (the texts here are ASCII). */
void kw_serve_pyerr(char *out, size_t cap, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Decodes tensor m into dst as fp32, checking it against what the handler expects: a float
 * dtype the codec reads, a known compression, ndim dims, the last one `last`, at most
 * max_numel elements. Return: 0 with *numel; -KW_EINVAL with the Python error text in err.
 * `what` names the tensor in the text ("inputs", "grad_outputs", "hidden_states").
 */
int kw_serve_tensor_in(struct kw_serve *s, const struct kw_tensor_msg *m, const char *what,
		       unsigned ndim, size_t last, size_t max_numel, float *dst, size_t *numel,
		       char *err, size_t cap);

/*
 * Writes an ExpertResponse holding tensors y[0..n) (each numel floats, shape[ndim], the
 * given compression, dtype float32) into slot->out. Return: 0 with *len; -KW_EINVAL with
 * the error text in slot->err.
 */
struct kw_serve_tout {
	const float *y;
	const uint32_t *shape;
	unsigned ndim;
	enum kw_compression comp;
	bool requires_grad;
};
int kw_serve_response(struct kw_serve *s, struct kw_serve_slot *slot,
		      const struct kw_serve_tout *t, size_t n, size_t *len);

/* An ExpertInfo { serialized_info = mp[0..mp_len) } into slot->out. 0 or -KW_ENOSPC. */
int kw_serve_info_response(struct kw_serve_slot *slot, const uint8_t *mp, size_t mp_len,
			   size_t *len);

/* Writes a BatchTensorDescriptor (ext 0x51, hivemind/utils/tensor_descr.py packb) of
 * instance size dims[0..n) (the batch dim nil first) and dtype ("torch.float32"). */
void kw_serve_put_btd(struct kw_mp_writer *w, const uint32_t *dims, size_t n, const char *dtype,
		      bool requires_grad, enum kw_compression comp, const char *device_type);

/* The servers: decode-independent handling of one request into *o (data in the slot). */
void kw_serve_moe_run(struct kw_serve *s, struct kw_serve_slot *slot, int method,
		      const struct kw_serve_req *r, struct kw_serve_out *o);
void kw_serve_petals_run(struct kw_serve *s, struct kw_serve_slot *slot, int method,
			 const struct kw_serve_req *r, struct kw_serve_out *o);

enum { KW_SERVE_INFO = 0, KW_SERVE_FORWARD, KW_SERVE_BACKWARD };

/* Decodes and runs one request into *o (slot memory) without touching s->st (the lane
 * thread calls it); *bad: the request did not decode. The caller holds the compute lock. */
void kw_serve_compute(struct kw_serve *s, struct kw_serve_slot *slot, bool petals, int method,
		      const uint8_t *req, size_t len, struct kw_serve_out *o, bool *bad);
/* Counts a served request in s->st (loop thread). */
void kw_serve_account(struct kw_serve *s, const struct kw_serve_out *o, bool bad);

/*
 * The compute lane. kw_serve_lane_setup: carves the ring from s->a (kw_serve_start).
 * kw_serve_lane_attach: starts the thread on loop l the first time it is called (a later call
 * does nothing); -KW_ENOTSUP when Kconfig leaves it out or l's backend has no cross-thread
 * wake (the simulated one), and requests are then computed inline.
 * kw_serve_lane_submit: queues the slot's request (loop thread); done runs on the loop once
 * it is computed. false: no lane, the caller computes inline. The queue holds every slot, so
 * a slot in hand always finds room.
 * kw_serve_lane_cancel: the request's caller is gone: a queued job is not run, a running one
 * is waited for (its request buffer is about to be freed); done is not called.
 * kw_serve_compute_begin/end: around an inline computation on the loop (waits for a
 * running lane job).
 */
int kw_serve_lane_setup(struct kw_serve *s);
int kw_serve_lane_attach(struct kw_serve *s, struct kw_loop *l);
bool kw_serve_lane_submit(struct kw_serve *s, struct kw_serve_slot *slot, void *tok, bool petals,
			  int method, const uint8_t *req, size_t len, kw_serve_done_fn done,
			  void *user);
/* The same for another computation (an inference step): run on the lane, then done. */
bool kw_serve_lane_submit_run(struct kw_serve *s, struct kw_serve_slot *slot, void *tok,
			      kw_serve_run_fn run, kw_serve_done_fn done, void *user);
/* The same, but done keeps the slot (a stream call sends its reply from it piece by piece)
 * and its owner gives it back with kw_serve_slot_put; done also runs, slot kept, for a job
 * the lane stopped before it ran (job.status < 0). A cancelled job's slot goes back to the
 * pool when the lane's result is collected, as for the other jobs. */
bool kw_serve_lane_submit_keep(struct kw_serve *s, struct kw_serve_slot *slot, void *tok,
			       kw_serve_run_fn run, kw_serve_done_fn done, void *user);
void kw_serve_lane_cancel(struct kw_serve *s, struct kw_serve_slot *slot);
void kw_serve_compute_begin(struct kw_serve *s);
void kw_serve_compute_end(struct kw_serve *s);
/* Fault injection for tests: when set, the lane thread calls it before each job. */
extern void (*kw_serve_lane_test_hook)(struct kw_serve *s, struct kw_serve_slot *slot);

#endif /* KW_APP_SERVE_INT_H */
