/*
 * Petals inference sessions (app/serve.h, doc/serve.md): the stream handler
 * TransformerConnectionHandler.rpc_inference and the unary rpc_push, as petals
 * src/petals/server/handler.py (rpc_inference, _iterate_inference_steps, rpc_push,
 * _allocate_cache) and block_functions.py (iterate_rpc_inference) @ 22afba6 serve them.
 *
 * A session is one stream. Its first ExpertRequest names the chain of held blocks ("p.3 p.4",
 * CHAIN_DELIMITER ' ') and carries the metadata (msgpack dict): max_length (int, required,
 * 0 .. session_tokens), session_id, points, alloc_timeout, active_adapter. The KV cache is
 * allocated for batch = tensors[0].size[0] rows and max_length positions: one slot of the
 * kw_kv_cache carved at start (lim.sessions slots of lim.session_tokens positions shared by
 * the rows, every block of the span). Each request with tensors [hidden_states (B, T, H),
 * prompts (DUMMY, or deep prompts added before each block), hypo_ids (int64 DUMMY or
 * (B,))] is one step: the cache is rewound to
 * start_from_position when given, reordered by hypo_ids, the chain runs over the T new
 * positions and the answer is ExpertResponse{tensors=[hidden_states out (B, T, H)]}
 * (float32, NONE as the outputs schema says, or metadata output_compression). A repeated
 * step_id is dropped without an answer. The first request without tensors ends the session:
 * the stream closes normally and the slot is free again. A first request that finds every
 * slot taken waits for one up to its alloc_timeout (memory_cache.py allocate_cache), held
 * on its stream in a fixed queue served oldest first. A step naming next_servers is pushed
 * to the next server's rpc_push after its answer (handler.py _push_outputs).
 *
 * Errors end the session with an error frame holding str(exception), as hivemind's stream
 * handlers send it (hivemind/p2p/p2p_daemon.py _process_stream); the texts are Petals'
 * where Petals has one. Time: no request for step_timeout ends the session quietly
 * (Petals returns from the handler); a request arriving after session_timeout is answered
 * with str(asyncio.TimeoutError()), i.e. "". Nothing is allocated per session or step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "serve_int.h"

#define STEP_IDS   64   /* step_ids remembered per session (hashes, most recent) */
#define CHAIN_MAX  64   /* = the range limit of KW_APP_SERVE_MAX_BLOCKS */

struct kw_serve_sess {
	struct kw_serve *s;
	struct kw_hm_stream *st;     /* NULL: free */
	struct kw_kv_session *kv;
	uint32_t chain[CHAIN_MAX];
	size_t n_chain;
	uint32_t max_length, prefix, batch;
	uint64_t opened_ms;
	uint64_t session_id;         /* FNV-1a of the session_id string; 0: none given */
	uint64_t step_ids[STEP_IDS]; /* FNV-1a of the step_ids seen */
	uint32_t n_ids, next_id;
	struct kw_timer timer;       /* step_timeout */
	struct kw_loop *loop;
	uint8_t *pend;               /* a reply the send buffer had no room for */
	size_t pend_len, pend_cap;
	const uint8_t *held;         /* a request kept (HOLD) until pend is sent */
	size_t held_len;
	/* a step computing on the lane (its request held on the stream until it is done) */
	bool busy;
	struct kw_serve_slot *slot;
	uint32_t c_B, c_T;
	enum kw_compression c_comp;
	int c_ret;
	size_t c_len;
	struct kw_serve_prompts c_pr; /* the step's deep prompts (a view of its request) */
	const uint8_t *c_req;        /* the step's request (held, or a push's): for next_servers */
	size_t c_req_len;
};

/* A session that found every cache slot taken and waits for one (petals server/memory_cache.py
 * @ 22afba6, allocate_cache with a timeout): its first request stays held on its stream. */
struct kw_serve_wait {
	struct kw_serve *s;
	struct kw_hm_stream *st;     /* NULL: free */
	const uint8_t *msg;          /* the first request, held (KW_HM_STREAM_HOLD) */
	size_t len;
	uint64_t seq;                /* arrival order: the oldest is served first */
	uint64_t want;               /* bytes, for the texts */
	char timeout_repr[32];       /* Python's repr of the timeout waited, for the text */
	struct kw_timer timer;       /* the timeout */
	struct kw_loop *loop;
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ? h : 1;
}

static bool key_is(const struct kw_mp_item *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == KW_MP_STR && k->len == n && !memcmp(k->data, name, n);
}

/* Python's repr of a msgpack scalar, for the texts that print a bad value. */
static void repr_of(const struct kw_mp_item *v, char *out, size_t cap)
{
	switch (v->type) {
	case KW_MP_NIL:
		snprintf(out, cap, "None");
		break;
	case KW_MP_BOOL:
		snprintf(out, cap, "%s", v->v.b ? "True" : "False");
		break;
	case KW_MP_UINT:
		snprintf(out, cap, "%llu", (unsigned long long)v->v.u);
		break;
	case KW_MP_INT:
		snprintf(out, cap, "%lld", (long long)v->v.i);
		break;
	case KW_MP_FLOAT:
		snprintf(out, cap, "%g", v->v.f);
		break;
	case KW_MP_STR:
		snprintf(out, cap, "'%.*s'", (int)KW_MIN(v->len, 20u), (const char *)v->data);
		break;
	default:
		snprintf(out, cap, "<%s>", v->type == KW_MP_ARRAY ? "list" : "object");
		break;
	}
}

static bool as_int(const struct kw_mp_item *v, int64_t *x)
{
	if (v->type == KW_MP_UINT && v->v.u <= INT64_MAX) {
		*x = (int64_t)v->v.u;
		return true;
	}
	if (v->type == KW_MP_INT) {
		*x = v->v.i;
		return true;
	}
	return false;
}

/* Python's type name of a msgpack value, for float()'s TypeError. */
static const char *py_type(const struct kw_mp_item *v)
{
	switch (v->type) {
	case KW_MP_NIL:
		return "NoneType";
	case KW_MP_BIN:
		return "bytes";
	case KW_MP_ARRAY:
		return "list";
	case KW_MP_MAP:
		return "dict";
	default:
		return "object";
	}
}

/* float(metadata["alloc_timeout"]) as Petals' rpc_inference reads it (handler.py); a value
 * float() refuses is reported when a session opens with it, as Petals does. */
static void alloc_timeout_of(const struct kw_mp_item *v, struct kw_serve_infer_meta *m)
{
	char tmp[64], *end;

	m->bad_alloc_timeout = false;
	switch (v->type) {
	case KW_MP_UINT:
		m->alloc_timeout = (double)v->v.u;
		return;
	case KW_MP_INT:
		m->alloc_timeout = (double)v->v.i;
		return;
	case KW_MP_FLOAT:
		m->alloc_timeout = v->v.f;
		return;
	case KW_MP_BOOL:
		m->alloc_timeout = v->v.b ? 1.0 : 0.0;
		return;
	case KW_MP_STR:
		if (v->len < sizeof(tmp)) {
			memcpy(tmp, v->data, v->len);
			tmp[v->len] = '\0';
			m->alloc_timeout = strtod(tmp, &end);
			while (*end == ' ')
				end++;
			if (v->len && end != tmp && !*end)
				return;
		}
		m->bad_alloc_timeout = true;
		snprintf(m->alloc_err, sizeof(m->alloc_err), "could not convert string to "
			 "float: '%.*s'", (int)KW_MIN(v->len, 40u), (const char *)v->data);
		return;
	default:
		m->bad_alloc_timeout = true;
		snprintf(m->alloc_err, sizeof(m->alloc_err), "float() argument must be a string "
			 "or a real number, not '%s'", py_type(v));
		return;
	}
}

int kw_serve_infer_meta_decode(const uint8_t *b, size_t len, struct kw_serve_infer_meta *m,
			       char *err, size_t cap)
{
	struct kw_mp_reader rd;
	struct kw_mp_item it;

	memset(m, 0, sizeof(*m));
	snprintf(m->max_length_repr, sizeof(m->max_length_repr), "None");
	if (!len)
		return 0;
	if (kw_mp_reader_init(&rd, b, len, KW_MP_ENTER_EXT) < 0 || kw_mp_read(&rd, &it) < 0 ||
	    it.type != KW_MP_MAP)
		goto bad;
	for (uint32_t i = 0; i < it.len; i++) {
		struct kw_mp_item k, v;

		/* a key that is a container is skipped whole before its value */
		if (kw_mp_read(&rd, &k) < 0 || kw_mp_skip(&rd, &k) < 0 || kw_mp_read(&rd, &v) < 0)
			goto bad;
		if (key_is(&k, "max_length")) {
			m->has_max_length = as_int(&v, &m->max_length);
			repr_of(&v, m->max_length_repr, sizeof(m->max_length_repr));
		} else if (key_is(&k, "start_from_position") && v.type != KW_MP_NIL) {
			if (!as_int(&v, &m->start)) {
				kw_serve_pyerr(err, cap, "TypeError", "start_from_position must be an "
					       "int");
				return -KW_EINVAL;
			}
			m->has_start = true;
		} else if (key_is(&k, "step_id") && v.type == KW_MP_STR) {
			m->has_step = true;
			m->step_id = fnv(v.data, v.len);
		} else if (key_is(&k, "session_id") && v.type == KW_MP_STR) {
			m->session_id = fnv(v.data, v.len);
		} else if (key_is(&k, "alloc_timeout")) {
			alloc_timeout_of(&v, m);
		} else if (key_is(&k, "pushed")) {
			m->pushed = v.type == KW_MP_BOOL ? v.v.b : v.type != KW_MP_NIL;
		} else if (key_is(&k, "points")) {
			m->bad_points = v.type != KW_MP_UINT && v.type != KW_MP_INT &&
					v.type != KW_MP_FLOAT;
			repr_of(&v, m->points_repr, sizeof(m->points_repr));
		} else if (key_is(&k, "active_adapter") && v.type == KW_MP_STR && v.len) {
			kw_serve_pyerr(err, cap, "KeyError", "adapter %.*s not found",
				       (int)KW_MIN(v.len, 64u), (const char *)v.data);
			return -KW_EINVAL;
		} else if (key_is(&k, "output_compression") && v.type != KW_MP_NIL) {
			struct kw_mp_item arr = v, c;

			if (v.type == KW_MP_EXT && v.entered && kw_mp_read(&rd, &arr) < 0)
				goto bad;
			if (arr.type != KW_MP_ARRAY || arr.len != 1 || kw_mp_read(&rd, &c) < 0 ||
			    c.type != KW_MP_UINT || c.v.u >= KW_COMP_COUNT) {
				kw_serve_pyerr(err, cap, "AssertionError", "output_compression must "
					       "be a tuple/list of one known compression");
				return -KW_EINVAL;
			}
			m->has_comp = true;
			m->comp = (enum kw_compression)c.v.u;
			continue;
		}
		if (kw_mp_skip(&rd, &v) < 0)
			goto bad;
	}
	if (kw_mp_reader_done(&rd) == 0)
		return 0;
bad:
	kw_serve_pyerr(err, cap, "ValueError", "metadata is not msgpack of a dict: %s",
		       rd.why && rd.why[0] ? rd.why : "not a map");
	return -KW_EINVAL;
}

/* ---- sessions ------------------------------------------------------------------------------ */

static uint64_t now_of(struct kw_serve_sess *ss)
{
	return kw_loop_now(ss->loop);
}

static void sess_free(struct kw_serve_sess *ss)
{
	struct kw_serve *s = ss->s;

	kw_timer_cancel(ss->loop, &ss->timer);
	if (ss->busy) {
		/* a step on the lane: not run, or waited for (it writes the cache closed next);
		 * its slot comes back when the lane's result is collected */
		kw_serve_lane_cancel(s, ss->slot);
		ss->busy = false;
		ss->slot = NULL;
	}
	if (ss->kv)
		kw_kv_close(&s->kv, ss->kv);
	ss->kv = NULL;
	ss->st = NULL;
	ss->pend_len = 0;
	ss->held = NULL;
	s->st.sessions_open = s->kv.open;
	if (s->st.alloc_waiting && !kw_timer_armed(&s->grant)) {
		/* a waiter opens from the loop, not inside whatever freed this session */
		if (kw_timer_start(ss->loop, &s->grant, 0) < 0)
			KW_LOG_WRN(serve, "timer heap full: a session waiting for the cache opens "
				   "at the next freed slot");
	}
	kw_serve_idle_check(s);
}

/* Ends the call with str(e) of the repr in text, frees the session. */
static void sess_fail(struct kw_serve_sess *ss, struct kw_hm_stream *st, const char *repr)
{
	char msg[KW_SERVE_ERR_MAX];

	kw_serve_pystr(repr, msg, sizeof(msg));
	KW_LOG_DBG(serve, "rpc_inference ends with %s", repr);
	ss->s->st.errors++;
	kw_hm_stream_set_user(st, NULL);
	(void)kw_hm_stream_error(st, msg);
	sess_free(ss);
}

static void sess_end(struct kw_serve_sess *ss)
{
	struct kw_hm_stream *st = ss->st;

	kw_hm_stream_set_user(st, NULL);
	sess_free(ss);
	(void)kw_hm_stream_end(st);
}

static void on_step_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_serve_sess *ss = t->arg;

	(void)l;
	KW_LOG_INF(serve, "rpc_inference: no request for %u ms, the session ends",
		   ss->s->lim.step_timeout_ms);
	sess_end(ss);   /* Petals: _iterate_inference_steps returns, the stream just closes */
}

struct kw_serve_sess *kw_serve_sess_find(struct kw_serve *s, uint64_t session_id);
struct kw_serve_sess *kw_serve_sess_find(struct kw_serve *s, uint64_t session_id)
{
	for (uint32_t i = 0; i < s->lim.sessions && session_id; i++)
		if (s->sess[i].st && s->sess[i].session_id == session_id)
			return &s->sess[i];
	return NULL;
}

uint64_t kw_serve_cache_tokens(const struct kw_serve *s)
{
	/* memory_cache.bytes_left // cache_bytes_per_token (K and V of one block) */
	return s->started && s->has_blocks ? kw_kv_cache_tokens_left(&s->kv) / 2 : 0;
}

int kw_serve_infer_hypo(const struct kw_tensor_msg *hy, uint32_t B, uint32_t *hypo, size_t cap,
			size_t *n, char *err, size_t errcap)
{
	size_t nh;

	if (strcmp(hy->dtype, "int64")) {
		kw_serve_pyerr(err, errcap, "AssertionError", "hypo ids must be int64, got torch.%s",
			       hy->dtype[0] ? hy->dtype : "(none)");
		return -KW_EINVAL;
	}
	if (kw_tensor_msg_numel(hy, &nh) < 0 || (nh && (nh != B || hy->ndim != 1 ||
	    hy->compression != KW_COMP_NONE || hy->buf_len != nh * 8))) {
		kw_serve_pyerr(err, errcap, "ValueError", "hypo_ids must be DUMMY or an uncompressed "
			       "int64 tensor of shape [%u]", B);
		return -KW_EINVAL;
	}
	if (nh > cap) {
		kw_serve_pyerr(err, errcap, "ValueError", "hypo_ids of more than %zu rows are not "
			       "served", cap);
		return -KW_EINVAL;
	}
	for (size_t i = 0; i < nh; i++) {
		int64_t v = 0;

		for (int j = 7; j >= 0; j--)
			v = (int64_t)((uint64_t)v << 8 | hy->buf[i * 8 + (size_t)j]);
		if (v < 0 || v >= (int64_t)B) {
			kw_serve_pyerr(err, errcap, "IndexError", "hypo_ids[%zu] = %lld is out of "
				       "bounds for a batch of %u", i, (long long)v, B);
			return -KW_EINVAL;
		}
		hypo[i] = (uint32_t)v;
	}
	*n = nh;
	return 0;
}

/* ---- one step ------------------------------------------------------------------------------ */

/* Writes ExpertResponse{tensors=[an empty float32 (B, 0, H)]} for a T = 0 step. */
static int empty_reply(struct kw_serve_slot *slot, uint32_t B, uint32_t H, size_t *len)
{
	struct kw_tensor_msg m;
	size_t tl;

	memset(&m, 0, sizeof(m));
	m.ndim = 3;
	m.shape[0] = B;
	m.shape[1] = 0;
	m.shape[2] = H;
	strcpy(m.dtype, "float32");
	if (kw_tensor_msg_encode(&m, slot->out + 2, slot->out_cap - 2, &tl) < 0 || tl > 127)
		return -KW_ENOSPC;
	slot->out[0] = 0x12;
	slot->out[1] = (uint8_t)tl;
	*len = tl + 2;
	return 0;
}

/*
 * Checks one step of request r (metadata m) on the session and reads its input into
 * slot->y. Return: 2, ready for step_compute; 0, answered already into slot->out (*len: no
 * tokens); 1, a repeated step_id (no answer); < 0 with the error text in slot->err.
 */
static int step(struct kw_serve_sess *ss, struct kw_serve_slot *slot,
		const struct kw_serve_req *r, const struct kw_serve_infer_meta *m, size_t *len)
{
	struct kw_serve *s = ss->s;
	size_t H = s->d.hidden, n, nh;
	const struct kw_tensor_msg *h = &r->t[0], *hy;
	uint32_t B, T, hypo[256];
	int ret = 0;

	if (m->has_step) {
		for (uint32_t i = 0; i < ss->n_ids; i++)
			if (ss->step_ids[i] == m->step_id) {
				s->st.steps_dup++;
				return 1;
			}
		ss->step_ids[ss->next_id] = m->step_id;
		ss->next_id = (ss->next_id + 1) % STEP_IDS;
		ss->n_ids = KW_MIN(ss->n_ids + 1, (uint32_t)STEP_IDS);
	}
	if (m->has_start) {
		/* Petals' assert here is a tuple (always true); a position beyond the cache is
		 * refused instead of computing on positions never filled */
		if (m->start < 0 || m->start > ss->prefix) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "start_from_position=%lld is outside the cache (prefix_length="
				       "%u)", (long long)m->start, ss->prefix);
			return -KW_EINVAL;
		}
		ss->prefix = (uint32_t)m->start;
		kw_kv_rewind(ss->kv, ss->n_chain, ss->prefix);
	}
	if (r->n_tensors < 3) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "not enough values to "
			       "unpack (expected at least 3, got %zu)", r->n_tensors);
		return -KW_EINVAL;
	}
	hy = &r->t[2];
	if (h->ndim != 3 || h->shape[2] != H || kw_tensor_msg_numel(h, &n) < 0) {
		/* kw_serve_tensor_in words the shape error */
		(void)kw_serve_tensor_in(s, h, "hidden_states", 3, H, 0, slot->x, &n, slot->err,
					 sizeof(slot->err));
		return -KW_EINVAL;
	}
	B = h->shape[0];
	T = h->shape[1];
	if (B != ss->batch) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "hidden_states has "
			       "batch %u, the session's cache was allocated for %u", B, ss->batch);
		return -KW_EINVAL;
	}
	if ((uint64_t)ss->prefix + T > ss->max_length) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "Maximum length "
			       "exceeded: prefix %u + current %u exceeds pre-allocated maximum %u",
			       ss->prefix, T, ss->max_length);
		return -KW_EINVAL;
	}
	if (kw_serve_infer_hypo(hy, B, hypo, KW_ARRAY_SIZE(hypo), &nh, slot->err,
				sizeof(slot->err)) < 0)
		return -KW_EINVAL;
	/* deep prompts, added before each block (backend.py _MergedInferenceStep) */
	if (kw_serve_prompts_check(s, &r->t[1], ss->n_chain, B, T, &ss->c_pr, slot->err,
				   sizeof(slot->err)) < 0)
		return -KW_EINVAL;
	s->st.steps++;
	if (T == 0) {
		/* a client may pass 0 tokens to check the cache was allocated: answered empty */
		if (empty_reply(slot, B, (uint32_t)H, len) < 0) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "cannot write "
				       "the reply");
			return -KW_EINVAL;
		}
		return 0;
	}
	if (kw_serve_tensor_in(s, h, "hidden_states", 3, H, (size_t)s->lim.max_rows * H, slot->y,
			       &n, slot->err, sizeof(slot->err)) < 0)
		return -KW_EINVAL;
	if (nh) {   /* backend.py _reorder_cache_inplace, before the step's own tokens */
		kw_serve_compute_begin(s);   /* the cache may be in use by a lane job */
		ret = kw_kv_reorder(&s->kv, ss->kv, hypo);
		kw_serve_compute_end(s);
		if (ret < 0) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "inference "
				       "step failed: %s", kw_strerror(ret));
			return ret;
		}
	}
	ss->c_B = B;
	ss->c_T = T;
	ss->c_comp = m->has_comp ? m->comp : KW_COMP_NONE;
	return 2;   /* ready: step_compute, here or on the lane */
}

/* The blocks of a checked step, then its reply into slot->out: ss->c_ret (0 or < 0 with the
 * text in slot->err) and c_len. On the lane thread or on the loop under the compute lock;
 * the session is not touched by the loop meanwhile (its stream is held). */
static void step_compute(struct kw_serve_sess *ss, struct kw_serve_slot *slot)
{
	struct kw_serve *s = ss->s;
	uint32_t B = ss->c_B, T = ss->c_T, shape[3];
	struct kw_serve_tout t;
	int ret = 0;

	ss->c_len = 0;
	for (size_t i = 0; i < ss->n_chain && ret == 0; i++) {
		ret = kw_serve_prompts_add(s, &ss->c_pr, i, slot->y, B, T, slot->x);
		if (ret == 0)
			ret = kw_llama_forward(&s->lctx, &s->w[ss->chain[i]], &s->kv, ss->kv, i,
					       slot->y, B, T, ss->prefix, slot->y);
	}
	if (ret < 0) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "inference step "
			       "failed: %s", kw_strerror(ret));
		ss->c_ret = ret;
		return;
	}
	ss->prefix += T;
	shape[0] = B;
	shape[1] = T;
	shape[2] = (uint32_t)s->d.hidden;
	t = (struct kw_serve_tout){ .y = slot->y, .shape = shape, .ndim = 3, .comp = ss->c_comp };
	ss->c_ret = kw_serve_response(s, slot, &t, 1, &ss->c_len) < 0 ? -KW_EINVAL : 0;
}

static void step_run(struct kw_serve *s, struct kw_serve_slot *slot, void *user)
{
	(void)s;
	step_compute(user, slot);
}

/* Sends a step's reply, keeping it when the send buffer is full. 1: kept (hold delivery). */
static int send_reply(struct kw_serve_sess *ss, const uint8_t *b, size_t len)
{
	int ret = kw_hm_stream_send(ss->st, b, len);

	if (ret == -KW_EAGAIN && len <= ss->pend_cap) {
		memcpy(ss->pend, b, len);
		ss->pend_len = len;
		return 1;
	}
	return ret;
}

/* ---- pushing outputs to the next server (next_servers) ---------------------------------------
 *
 * petals server/handler.py _push_outputs @ 22afba6: after a step whose metadata names
 * next_servers = [[peer_id, session_id, start, end], ...], the server calls the first one's
 * rpc_push with ExpertRequest{uid = its blocks "prefix.start ... prefix.end-1", tensors =
 * [this step's output as answered] + the request's other tensors, metadata = the step's
 * metadata with session_id = the next one's, next_servers = the rest, pushed = True}. A push
 * that fails is logged and counted; the step is answered either way. The request is built in
 * one buffer carved at start (kw_hm_call copies it) over a connection already open to the
 * peer.
 */

static int put_raw(struct kw_mp_writer *w, const uint8_t *p, size_t n)
{
	if (w->err)
		return w->err;
	if (n > w->cap - w->len)
		return w->err = -KW_ENOSPC;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

/* The array next_servers holds (a list, or hivemind's tuple ext 0x40): *list reads its
 * elements from *sub. */
static bool list_of(const struct kw_mp_item *v, struct kw_mp_reader *sub, struct kw_mp_item *list)
{
	if (v->type == KW_MP_ARRAY) {
		*list = *v;   /* its elements follow in the caller's reader */
		return true;
	}
	if (v->type != KW_MP_EXT || v->ext_type != KW_MP_EXT_TUPLE ||
	    kw_mp_reader_init(sub, v->data, v->len, 0) < 0 || kw_mp_read(sub, list) < 0)
		return false;
	return list->type == KW_MP_ARRAY;
}

/* next_servers[0] of a list whose header was just read from rd (elements follow). */
static int hop_read(struct kw_mp_reader *rd, const struct kw_mp_item *list, struct kw_serve_push_hop *h)
{
	struct kw_mp_item e, f[4], sub_list;
	struct kw_mp_reader sub, *er = rd;

	if (!list->len || kw_mp_read(rd, &e) < 0)
		return -KW_EINVAL;
	if (e.type != KW_MP_ARRAY) {   /* a tuple: its own reader */
		if (!list_of(&e, &sub, &sub_list))
			return -KW_EINVAL;
		er = &sub;
		e = sub_list;
	}
	if (e.len != 4)
		return -KW_EINVAL;
	for (int i = 0; i < 4; i++)
		if (kw_mp_read(er, &f[i]) < 0 || kw_mp_skip(er, &f[i]) < 0)
			return -KW_EINVAL;
	if (f[0].type != KW_MP_STR || f[0].len >= sizeof(h->peer) || f[1].type != KW_MP_STR ||
	    !as_int(&f[2], &h->start) || !as_int(&f[3], &h->end) || h->start < 0 ||
	    h->end <= h->start || h->end - h->start > CHAIN_MAX)
		return -KW_EINVAL;
	memcpy(h->peer, f[0].data, f[0].len);
	h->peer[f[0].len] = '\0';
	h->session = f[1].data;
	h->session_len = f[1].len;
	h->rest = rd->buf + rd->pos;
	for (uint32_t i = 1; i < list->len; i++) {
		struct kw_mp_item x;

		if (kw_mp_read(rd, &x) < 0 || kw_mp_skip(rd, &x) < 0)
			return -KW_EINVAL;
	}
	h->rest_len = (size_t)(rd->buf + rd->pos - h->rest);
	h->n_rest = list->len - 1;
	return 0;
}

int kw_serve_push_meta(const uint8_t *b, size_t len, struct kw_mp_writer *w, struct kw_serve_push_hop *h)
{
	struct kw_mp_reader rd;
	struct kw_mp_item map, k, v;
	bool found = false;
	uint32_t keep = 0;

	/* pass 1: is there a next hop, and how many keys are kept */
	if (!len || kw_mp_reader_init(&rd, b, len, 0) < 0 || kw_mp_read(&rd, &map) < 0 ||
	    map.type != KW_MP_MAP)
		return 1;
	for (uint32_t i = 0; i < map.len; i++) {
		if (kw_mp_read(&rd, &k) < 0 || kw_mp_skip(&rd, &k) < 0 || kw_mp_read(&rd, &v) < 0)
			return -KW_EINVAL;
		if (key_is(&k, "next_servers")) {
			struct kw_mp_reader sub;
			struct kw_mp_item list;
			bool tuple = v.type != KW_MP_ARRAY;

			if (v.type == KW_MP_NIL || (v.type == KW_MP_ARRAY && !v.len))
				return 1;   /* `if not next_servers: return` */
			if (!list_of(&v, &sub, &list))
				return -KW_EINVAL;
			if (!list.len)
				return 1;
			if (hop_read(tuple ? &sub : &rd, &list, h) < 0)
				return -KW_EINVAL;
			found = true;
			if (!tuple)
				continue;   /* the list's elements were read */
		} else if (!key_is(&k, "session_id") && !key_is(&k, "pushed")) {
			keep++;
		}
		if (kw_mp_skip(&rd, &v) < 0)
			return -KW_EINVAL;
	}
	if (!found)
		return 1;
	/* pass 2: the kept pairs as they were, then the three Petals sets */
	kw_mp_put_map(w, keep + 3);
	(void)kw_mp_reader_init(&rd, b, len, 0);
	(void)kw_mp_read(&rd, &map);
	for (uint32_t i = 0; i < map.len; i++) {
		uint32_t at = rd.pos;

		(void)kw_mp_read(&rd, &k);
		(void)kw_mp_skip(&rd, &k);
		(void)kw_mp_read(&rd, &v);
		(void)kw_mp_skip(&rd, &v);
		if (!key_is(&k, "next_servers") && !key_is(&k, "session_id") &&
		    !key_is(&k, "pushed"))
			put_raw(w, b + at, rd.pos - at);
	}
	kw_mp_put_cstr(w, "session_id");
	kw_mp_put_str(w, (const char *)h->session, h->session_len);
	kw_mp_put_cstr(w, "next_servers");
	kw_mp_put_array(w, h->n_rest);
	put_raw(w, h->rest, h->rest_len);
	kw_mp_put_cstr(w, "pushed");
	kw_mp_put_bool(w, true);
	return w->err ? w->err : 0;
}

static size_t pb_key_len(uint8_t *p, unsigned field, size_t n)
{
	size_t o = 0;

	p[o++] = (uint8_t)(field << 3 | 2);
	do {
		p[o++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>= 7;
	} while (n);
	return o;
}

struct span {
	const uint8_t *p;
	size_t n;
};

/* The raw ExpertRequest.tensors entries (key, length and Tensor) of a request that decoded,
 * in order, into sp[0..cap); returns the bytes of those after the first. */
static size_t tensor_spans(const uint8_t *req, size_t len, struct span *sp, size_t cap)
{
	size_t pos = 0, k = 0, others = 0;

	while (pos < len) {
		size_t at = pos;
		uint64_t key, n = 0;

		if (kw_serve_pb_varint(req, len, &pos, &key) < 0)
			break;
		switch (key & 7) {
		case 0:
			if (kw_serve_pb_varint(req, len, &pos, &n) < 0)
				pos = len + 1;
			break;
		case 1:
			pos += 8;
			break;
		case 5:
			pos += 4;
			break;
		case 2:
			if (kw_serve_pb_varint(req, len, &pos, &n) < 0 || n > len - pos)
				pos = len + 1;
			else
				pos += (size_t)n;
			break;
		default:
			pos = len + 1;
		}
		if (pos > len)
			break;   /* it decoded before: cannot happen */
		if (key == (2 << 3 | 2) && k < cap) {
			sp[k] = (struct span){ .p = req + at, .n = pos - at };
			others += k++ ? pos - at : 0;
		}
	}
	return others;
}

static void push_done(const struct kw_hm_result *r, void *user)
{
	struct kw_serve *s = user;

	if (r->err == 0 && !r->remote_error)
		return;
	s->st.pushes_out_failed++;
	KW_LOG_DBG(serve, "rpc_push to the next server failed (%s); its client sends the step "
		   "itself", r->err ? kw_strerror(r->err) : "the server answered an error");
}

static size_t reply_cap(const struct kw_serve *s);

/* The request buffer: the reply's tensors, the request's others, the uid and metadata. */
static size_t push_cap(const struct kw_serve *s)
{
	return reply_cap(s) + KW_SERVE_PUSH_EXTRA;
}

static void push_outputs(struct kw_serve_sess *ss, const uint8_t *reply, size_t reply_len)
{
	struct kw_serve *s = ss->s;
	const uint8_t *req = ss->c_req;
	size_t req_len = ss->c_req_len, o = 0, meta_len = 0, cap = push_cap(s);
	struct kw_serve_req r;
	struct kw_serve_push_hop h;
	struct kw_mp_writer w;
	struct kw_peer_id pid;
	struct kw_conn *c;
	uint8_t *b = s->push_buf;
	const char *why = "the request";
	struct span spans[KW_SERVE_TENSORS_MAX];
	size_t others;
	int ret;

	if (!s->hm || !b || kw_serve_req_decode(&r, req, req_len, &why) < 0 || !r.meta_len ||
	    ss->c_pr.on)
		return;   /* iterate_rpc_inference: can_push = not has_prompts */
	/* the metadata goes at the end of the buffer first: its size is known after */
	memset(&h, 0, sizeof(h));
	kw_mp_writer_init(&w, b + cap - KW_SERVE_PUSH_EXTRA / 2, KW_SERVE_PUSH_EXTRA / 2);
	ret = kw_serve_push_meta(r.meta, r.meta_len, &w, &h);
	if (ret == 1)
		return;
	s->st.pushes_out++;
	if (ret < 0) {
		why = "next_servers is not a list of [peer_id, session_id, start, end]";
		goto fail;
	}
	meta_len = w.len;
	if (kw_peer_id_from_text(h.peer, &pid) < 0) {
		why = "next_servers names a peer_id that does not parse";
		goto fail;
	}
	c = kw_swarm_find_conn(kw_conn_swarm(kw_hm_stream_conn(ss->st)), &pid);
	if (!c) {
		uint64_t now = kw_loop_now(ss->loop);

		why = "no connection to the next server";
		if (s->connect && (!kw_peer_id_equal(&s->dialed, &pid) ||
				   now - s->dialed_ms >= 5000) &&
		    s->connect(s->connect_arg, &pid) == 0) {
			s->dialed = pid;
			s->dialed_ms = now;
			s->st.pushes_out_dials++;
			why = "no connection to the next server yet (dialing it for the next steps)";
		}
		goto fail;
	}
	others = tensor_spans(req, req_len, spans, KW_SERVE_TENSORS_MAX);
	/* uid: "prefix.start prefix.start+1 ..." (CHAIN_DELIMITER ' ', UID_DELIMITER '.') */
	{
		char uid[CHAIN_MAX * (KW_SERVE_UID_MAX + 2)];
		size_t u = 0;

		for (int64_t i = h.start; i < h.end && u < sizeof(uid); i++)
			u += (size_t)snprintf(uid + u, sizeof(uid) - u, "%s%s.%lld", u ? " " : "",
					      s->prefix, (long long)i);
		if (u >= sizeof(uid) || u + 16 + reply_len + others + 16 + meta_len >
		    cap - KW_SERVE_PUSH_EXTRA / 2) {
			why = "the pushed request does not fit its buffer";
			goto fail;
		}
		o += pb_key_len(b + o, 1, u);
		memcpy(b + o, uid, u);
		o += u;
	}
	/* the output as answered: ExpertResponse.tensors (2) is ExpertRequest.tensors (2) */
	memcpy(b + o, reply, reply_len);
	o += reply_len;
	/* request.tensors[1:], as they came */
	for (size_t k = 1; k < r.n_tensors; k++) {
		memcpy(b + o, spans[k].p, spans[k].n);
		o += spans[k].n;
	}
	o += pb_key_len(b + o, 3, meta_len);
	memmove(b + o, b + cap - KW_SERVE_PUSH_EXTRA / 2, meta_len);
	o += meta_len;
	ret = kw_hm_call(s->hm, c, KW_SERVE_PT_PUSH, b, o, 0, push_done, s);
	if (ret == 0)
		return;
	why = kw_strerror(ret);
fail:
	s->st.pushes_out_failed++;
	KW_LOG_DBG(serve, "rpc_push to the next server not sent: %s", why);
}

/* A step's result (ret as step()'s, the reply in slot->out): answer it. 0, 1 (reply kept:
 * hold the stream), or < 0 after ending the session with an error. */
static int step_answer(struct kw_serve_sess *ss, struct kw_serve_slot *slot, int ret,
		       size_t len)
{
	struct kw_hm_stream *st = ss->st;

	if (ret < 0) {
		sess_fail(ss, st, slot->err);
	} else if (ret == 0) {
		ret = send_reply(ss, slot->out, len);
		if (ret < 0) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "the step's "
				       "reply of %zu bytes does not fit the stream buffer (%s)", len,
				       kw_strerror(ret));
			sess_fail(ss, st, slot->err);
		} else if (ss->c_req) {
			push_outputs(ss, slot->out, len);   /* after our own answer is queued */
		}
	} else {
		ret = 0;   /* a repeated step_id: no answer */
	}
	return ret;
}

/* A step the lane computed (loop thread): answer, then let the stream deliver again. */
static void step_done(struct kw_serve *s, struct kw_serve_slot *slot, void *user)
{
	struct kw_serve_sess *ss = user;
	struct kw_hm_stream *st = ss->st;

	(void)s;
	ss->busy = false;
	ss->slot = NULL;
	if (slot->job.status < 0)
		ss->c_ret = slot->job.status;   /* never ran: the lane stopped (text in err) */
	if (step_answer(ss, slot, ss->c_ret, ss->c_len) == 0 && ss->st == st)
		(void)kw_hm_stream_next(st);   /* a kept reply: inf_writable releases it */
}

/*
 * One request for the session (from its stream, or pushed): decode, step, answer. Returns
 * 0, 1 (reply kept, or the step computes on the lane: hold the stream), or < 0 after ending
 * the session with an error. may_defer: the request stays valid until kw_hm_stream_next
 * (a held stream message; a push's request dies with its reply, so it computes here).
 */
static int serve_request(struct kw_serve_sess *ss, const struct kw_serve_req *r,
			 const struct kw_serve_infer_meta *m, const uint8_t *msg, size_t msg_len,
			 bool may_defer)
{
	struct kw_serve *s = ss->s;
	struct kw_hm_stream *st = ss->st;
	struct kw_serve_slot *slot;
	size_t len = 0;
	void *tok;
	int ret;

	slot = kw_serve_slot_get(s, &tok);
	if (!slot) {
		s->st.busy++;
		sess_fail(ss, st, "RuntimeError('server busy: every request slot is taken')");
		return -KW_EBUSY;
	}
	slot->err[0] = '\0';
	s->st.calls++;
	ss->c_req = msg;
	ss->c_req_len = msg_len;
	ret = step(ss, slot, r, m, &len);
	if (ret == 2 && may_defer && !s->lane.tried)
		(void)kw_serve_lane_attach(s, ss->loop);
	if (ret == 2 && may_defer &&
	    kw_serve_lane_submit_run(s, slot, tok, step_run, step_done, ss)) {
		ss->busy = true;
		ss->slot = slot;
		return 1;
	}
	if (ret == 2) {
		kw_serve_compute_begin(s);   /* the shared block context: after a lane job */
		step_compute(ss, slot);
		kw_serve_compute_end(s);
		ret = ss->c_ret;
		len = ss->c_len;
	}
	ret = step_answer(ss, slot, ret, len);
	kw_serve_slot_put(s, tok);
	return ret;
}

/* ---- waiting for a cache slot (alloc_timeout) ---------------------------------------------- */

static struct kw_serve_sess *sess_of(struct kw_serve *s, void *u)
{
	struct kw_serve_sess *ss = u;

	return ss && ss >= s->sess && ss < s->sess + s->lim.sessions ? ss : NULL;
}

static struct kw_serve_wait *wait_of(struct kw_serve *s, void *u)
{
	struct kw_serve_wait *w = u;

	return w && s->wait && w >= s->wait && w < s->wait + s->lim.alloc_waiters ? w : NULL;
}

/* Python's repr of a float (shortest digits that read back the same, at least one
 * decimal), for the values a timeout takes. */
static void float_repr(double x, char *out, size_t cap)
{
	for (int d = 1; d <= 17; d++) {
		snprintf(out, cap, "%.*f", d, x);
		if (strtod(out, NULL) == x)
			return;
	}
}

/* The waiter leaves the queue (its stream is not touched). */
static void wait_drop(struct kw_serve_wait *w)
{
	kw_timer_cancel(w->loop, &w->timer);
	w->st = NULL;
	w->msg = NULL;
	w->s->st.alloc_waiting--;
}

/* Ends a waiter's stream with str(repr). */
static void wait_fail(struct kw_serve_wait *w, const char *repr)
{
	struct kw_hm_stream *st = w->st;
	char msg[KW_SERVE_ERR_MAX];

	wait_drop(w);
	w->s->st.calls++;
	w->s->st.errors++;
	kw_serve_pystr(repr, msg, sizeof(msg));
	kw_hm_stream_set_user(st, NULL);
	(void)kw_hm_stream_error(st, msg);
}

static void on_wait_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_serve_wait *w = t->arg;
	char err[KW_SERVE_ERR_MAX];

	(void)l;
	/* memory_cache.py _wait_for_free_memory: async_timeout fires first */
	kw_serve_pyerr(err, sizeof(err), "AllocationFailed", "Could not allocate %llu within %s "
		       "seconds", (unsigned long long)w->want, w->timeout_repr);
	KW_LOG_INF(serve, "rpc_inference: no cache slot freed within %s s; session refused",
		   w->timeout_repr);
	w->s->st.alloc_timeouts++;
	wait_fail(w, err);
}

static int deliver(struct kw_serve *s, struct kw_serve_sess *ss, struct kw_hm_stream *st,
		   const uint8_t *msg, size_t len, bool may_defer);

/* A slot was freed: the oldest waiter opens its session with its held first request. */
static void on_grant(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_serve *s = t->arg;

	(void)l;
	while (s->st.alloc_waiting && s->kv.open < s->lim.sessions) {
		struct kw_serve_wait *w = NULL;
		struct kw_hm_stream *st;
		const uint8_t *msg;
		size_t len;
		bool open = false;
		int ret;

		for (uint32_t i = 0; i < s->lim.alloc_waiters; i++)
			if (s->wait[i].st && (!w || s->wait[i].seq < w->seq))
				w = &s->wait[i];
		if (!w)
			break;
		st = w->st;
		msg = w->msg;
		len = w->len;
		wait_drop(w);
		kw_hm_stream_set_user(st, NULL);
		ret = deliver(s, NULL, st, msg, len, true);
		for (uint32_t i = 0; i < s->lim.alloc_waiters; i++)
			if (s->wait[i].st == st)
				return;   /* queued again (cannot happen: a slot was free) */
		for (uint32_t i = 0; i < s->lim.sessions; i++)
			open |= s->sess[i].st == st;
		/* the session is open and its first step answered (not kept, not on the lane, not
		 * waiting again): the stream delivers the next request */
		if (ret == 0 && open)
			(void)kw_hm_stream_next(st);
	}
}

/*
 * Every slot is taken: the session waits up to min(alloc_timeout, max_alloc_timeout) for one
 * (petals memory_cache.py allocate_cache), and also at most step_timeout, after which the
 * stream's own idle deadline would end it. 1: queued (hold the request); < 0: the text in
 * err (no room in the queue, or no wait asked for).
 */
static int wait_enqueue(struct kw_serve *s, struct kw_hm_stream *st, const uint8_t *msg,
			size_t len, const struct kw_serve_infer_meta *m, uint64_t want, char *err,
			size_t cap)
{
	struct kw_serve_wait *w = NULL;
	double t = m->alloc_timeout, tmax = s->lim.max_alloc_timeout_ms / 1000.0;
	char repr[32];

	if (t > tmax)
		t = tmax;
	float_repr(t, repr, sizeof(repr));
	if (!(t > 0)) {
		if (t == 0)
			kw_serve_pyerr(err, cap, "AllocationFailed", "Could not allocate %llu bytes "
				       "immediately: out of memory", (unsigned long long)want);
		else   /* a negative timeout has passed already */
			kw_serve_pyerr(err, cap, "AllocationFailed", "Could not allocate %llu within "
				       "%s seconds", (unsigned long long)want, repr);
		return -KW_ENOMEM;
	}
	for (uint32_t i = 0; i < s->lim.alloc_waiters && !w; i++)
		if (!s->wait[i].st)
			w = &s->wait[i];
	if (!w || !msg) {
		kw_serve_pyerr(err, cap, "AllocationFailed", "Could not allocate %llu bytes: every "
			       "cache slot is taken and %u sessions already wait for one",
			       (unsigned long long)want, s->lim.alloc_waiters);
		return -KW_ENOMEM;
	}
	w->loop = &kw_swarm_node(kw_conn_swarm(kw_hm_stream_conn(st)))->loop;
	if (kw_timer_start(w->loop, &w->timer, KW_MIN((uint64_t)(t * 1000.0 + 0.5),
						      (uint64_t)s->lim.step_timeout_ms)) < 0) {
		kw_serve_pyerr(err, cap, "AllocationFailed", "Could not allocate %llu bytes "
			       "immediately: out of memory", (unsigned long long)want);
		return -KW_ENOMEM;
	}
	w->st = st;
	w->msg = msg;
	w->len = len;
	w->seq = ++s->wait_seq;
	w->want = want;
	memcpy(w->timeout_repr, repr, sizeof(repr));
	kw_hm_stream_set_user(st, w);
	s->st.alloc_waits++;
	s->st.alloc_waiting++;
	KW_LOG_INF(serve, "rpc_inference: every cache slot is taken; a session waits up to %s s",
		   repr);
	return 1;
}

size_t kw_serve_infer_refuse_waiters(struct kw_serve *s, const char *repr)
{
	size_t n = 0;

	for (uint32_t i = 0; s->wait && i < s->lim.alloc_waiters; i++)
		if (s->wait[i].st) {
			wait_fail(&s->wait[i], repr);
			n++;
		}
	return n;
}

/* The first request: chain, metadata, cache. 0 with the session open, 1 waiting for a slot
 * (msg/len, the held request, is kept), or < 0 (answered). */
static int sess_open(struct kw_serve *s, struct kw_hm_stream *st, const struct kw_serve_req *r,
		     const struct kw_serve_infer_meta *m, const uint8_t *msg, size_t len,
		     struct kw_serve_sess **out)
{
	char err[KW_SERVE_ERR_MAX];
	struct kw_serve_sess *ss = NULL;
	uint32_t chain[CHAIN_MAX], batch = 1;
	size_t n_chain;
	uint64_t want;
	int kret;

	err[0] = '\0';
	if (s->lim.max_blocks > CHAIN_MAX) {   /* Kconfig's range keeps it below */
		kw_serve_pyerr(err, sizeof(err), "RuntimeError", "chain table");
		goto fail;
	}
	if (kw_serve_petals_chain(s, r->uid, r->uid_len, chain, &n_chain, err, sizeof(err)) < 0)
		goto fail;
	if (n_chain > s->count) {
		kw_serve_pyerr(err, sizeof(err), "ValueError", "an inference chain of %zu blocks "
			       "exceeds the %u blocks this server holds", n_chain, s->count);
		goto fail;
	}
	if (!m->has_max_length) {
		kw_serve_pyerr(err, sizeof(err), "AssertionError", "rpc_inference metadata must "
			       "contain int max_length, got %s", m->max_length_repr);
		goto fail;
	}
	if (m->bad_points) {
		kw_serve_pyerr(err, sizeof(err), "AssertionError", "rpc_inference should have "
			       "number of points as a number or None, got %s", m->points_repr);
		goto fail;
	}
	if (m->bad_alloc_timeout) {
		kw_serve_pyerr(err, sizeof(err), m->alloc_err[0] == 'c' ? "ValueError" :
			       "TypeError", "%s", m->alloc_err);
		goto fail;
	}
	if (m->max_length < 0 || m->max_length > s->lim.session_tokens) {
		kw_serve_pyerr(err, sizeof(err), "ValueError", "Cannot allocate KV cache for %lld "
			       "tokens, max = %u", (long long)m->max_length, s->lim.session_tokens);
		goto fail;
	}
	if (r->n_tensors) {
		if (!r->t[0].ndim || !r->t[0].shape[0]) {
			kw_serve_pyerr(err, sizeof(err), "ValueError", "hidden_states must be a 3d "
				       "tensor with a batch of at least 1");
			goto fail;
		}
		batch = r->t[0].shape[0];
	}
	/* get_inference_cache_descriptors: K and V of (batch, kv_heads, max_length, head_dim)
	 * per block, in the block dtype (float32 here) */
	want = 2ull * batch * s->d.kv_heads * s->d.head_dim * (uint64_t)m->max_length * 4 *
	       n_chain;
	if ((uint64_t)batch * (uint64_t)m->max_length > s->lim.session_tokens) {
		kw_serve_pyerr(err, sizeof(err), "AllocationFailed", "Could not allocate %llu "
			       "bytes, max cache size = %llu bytes", (unsigned long long)want,
			       (unsigned long long)(2ull * s->lim.session_tokens * s->d.kv_heads *
						    s->d.head_dim * 4 * n_chain));
		goto fail;
	}
	if (kw_serve_sess_find(s, m->session_id)) {
		kw_serve_pyerr(err, sizeof(err), "AssertionError", "session id is not unique");
		goto fail;
	}
	for (uint32_t i = 0; i < s->lim.sessions && !ss; i++)
		if (!s->sess[i].st)
			ss = &s->sess[i];
	kret = ss ? kw_kv_open(&s->kv, batch, &ss->kv) : -KW_ENOSPC;
	if (kret == -KW_ENOSPC) {
		/* every slot is taken: wait for one (alloc_timeout), or refuse */
		if (wait_enqueue(s, st, msg, len, m, want, err, sizeof(err)) == 1)
			return 1;
		goto fail;
	}
	if (kret < 0) {
		/* a batch wider than a slot's positions (max_length 0): no slot would ever do */
		kw_serve_pyerr(err, sizeof(err), "AllocationFailed", "Could not allocate %llu "
			       "bytes immediately: out of memory", (unsigned long long)want);
		goto fail;
	}
	ss->st = st;
	memcpy(ss->chain, chain, n_chain * sizeof(chain[0]));
	ss->n_chain = n_chain;
	ss->max_length = (uint32_t)m->max_length;
	ss->prefix = 0;
	ss->batch = batch;
	ss->session_id = m->session_id;
	ss->n_ids = ss->next_id = 0;
	ss->pend_len = 0;
	ss->loop = &kw_swarm_node(kw_conn_swarm(kw_hm_stream_conn(st)))->loop;
	ss->opened_ms = now_of(ss);
	kw_hm_stream_set_user(st, ss);
	s->st.sessions++;
	s->st.sessions_open = s->kv.open;
	s->st.sessions_high = KW_MAX(s->st.sessions_high, s->kv.open);
	*out = ss;
	return 0;
fail: {
		char text[KW_SERVE_ERR_MAX];

		s->st.calls++;
		s->st.errors++;
		kw_serve_pystr(err, text, sizeof(text));
		(void)kw_hm_stream_error(st, text);
		return -KW_EINVAL;
	}
}

/* One request of a session's stream, or a pushed one (st NULL for a push). */
static int deliver(struct kw_serve *s, struct kw_serve_sess *ss, struct kw_hm_stream *st,
		   const uint8_t *msg, size_t len, bool may_defer)
{
	char err[KW_SERVE_ERR_MAX];
	struct kw_serve_req r;
	struct kw_serve_infer_meta m;
	const char *why;
	int ret;

	err[0] = '\0';
	if (kw_serve_req_decode(&r, msg, len, &why) < 0) {
		s->st.bad_requests++;
		kw_serve_pyerr(err, sizeof(err), "DecodeError", "Error parsing message: %s", why);
	} else {
		kw_serve_infer_meta_decode(r.meta, r.meta_len, &m, err, sizeof(err));
	}
	if (!ss && s->refuse) {   /* pausing: no new sessions */
		char t[KW_SERVE_ERR_MAX];

		s->st.calls++;
		s->st.errors++;
		s->st.refused++;
		kw_serve_pystr(s->refuse, t, sizeof(t));
		(void)kw_hm_stream_error(st, t);
		return -KW_EINVAL;
	}
	if (!ss) {
		if (err[0]) {
			char t[KW_SERVE_ERR_MAX];

			s->st.calls++;
			s->st.errors++;
			kw_serve_pystr(err, t, sizeof(t));
			(void)kw_hm_stream_error(st, t);
			return -KW_EINVAL;
		}
		ret = sess_open(s, st, &r, &m, may_defer ? msg : NULL, len, &ss);
		if (ret)
			return ret < 0 ? -KW_EINVAL : 1;   /* 1: waiting for a slot, held */
	} else if (err[0]) {
		sess_fail(ss, ss->st, err);
		return -KW_EINVAL;
	} else if (now_of(ss) - ss->opened_ms >= s->lim.session_timeout_ms) {
		KW_LOG_INF(serve, "rpc_inference: session older than %u ms, ended",
			   s->lim.session_timeout_ms);
		sess_fail(ss, ss->st, "TimeoutError()");   /* async with timeout(session_timeout) */
		return -KW_ETIMEDOUT;
	}
	if (!r.n_tensors) {
		sess_end(ss);   /* `while request.tensors`: the empty request ends the session */
		return 0;
	}
	if (m.pushed)
		s->st.pushes++;
	kw_timer_start(ss->loop, &ss->timer, s->lim.step_timeout_ms);
	return serve_request(ss, &r, &m, msg, len, may_defer);
}

static int inf_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct kw_serve_sess *ss = sess_of(arg, kw_hm_stream_user(st));
	int ret;

	if (ss && ss->pend_len) {
		/* a pushed step's answer still waits for room: this request comes after it */
		ss->held = msg;
		ss->held_len = len;
		return KW_HM_STREAM_HOLD;
	}
	ret = deliver(arg, ss, st, msg, len, true);
	return ret == 1 ? KW_HM_STREAM_HOLD : 0;
}

static void inf_writable(struct kw_hm_stream *st, void *arg)
{
	struct kw_serve_sess *ss = sess_of(arg, kw_hm_stream_user(st));
	int ret;

	if (!ss || !ss->pend_len)
		return;
	ret = kw_hm_stream_send(st, ss->pend, ss->pend_len);
	if (ret == -KW_EAGAIN)
		return;
	ss->pend_len = 0;
	if (ret < 0) {
		sess_fail(ss, st, "RuntimeError('the step reply could not be sent')");
		return;
	}
	if (ss->held) {
		const uint8_t *msg = ss->held;

		ss->held = NULL;
		ret = deliver(ss->s, ss, st, msg, ss->held_len, true);
		if (ret == 1 || ss->st != st)
			return;   /* its own answer waits (still held), or the session ended */
	}
	(void)kw_hm_stream_next(st);   /* -KW_EINVAL when nothing was held (a push's answer) */
}

/* The caller's END_OF_STREAM without the empty request: the session ends as well. */
static void inf_end(struct kw_hm_stream *st, void *arg)
{
	struct kw_serve_sess *ss = sess_of(arg, kw_hm_stream_user(st));
	struct kw_serve_wait *w = wait_of(arg, kw_hm_stream_user(st));

	if (w) {
		wait_drop(w);   /* the caller gave up before its session opened */
		kw_hm_stream_set_user(st, NULL);
		(void)kw_hm_stream_end(st);
	} else if (ss) {
		sess_end(ss);
	} else {
		/* no request at all: Petals times out waiting for the first one and returns */
		(void)kw_hm_stream_end(st);
	}
}

static void inf_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	struct kw_serve_sess *ss = sess_of(arg, kw_hm_stream_user(st));
	struct kw_serve_wait *w = wait_of(arg, kw_hm_stream_user(st));

	(void)reason;
	if (w)
		wait_drop(w);   /* its stream closed: it leaves the queue */
	if (ss)
		sess_free(ss);
}

static const struct kw_hm_stream_ops inf_ops = {
	.on_message = inf_msg,
	.on_end = inf_end,
	.on_writable = inf_writable,
	.on_cancel = inf_cancel,
};

size_t kw_serve_infer_close_all(struct kw_serve *s, const char *repr)
{
	size_t n = 0;

	for (uint32_t i = 0; s->sess && i < s->lim.sessions; i++)
		if (s->sess[i].st) {
			sess_fail(&s->sess[i], s->sess[i].st, repr);
			n++;
		}
	return n;
}

/* ---- rpc_push -------------------------------------------------------------------------------- */

static void on_push(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct kw_serve *s = arg;
	char err[KW_SERVE_ERR_MAX];
	struct kw_serve_sess *ss;
	struct kw_serve_req r;
	uint32_t chain[CHAIN_MAX];
	size_t n_chain;
	struct kw_serve_infer_meta m;
	const char *why;

	s->st.calls++;
	if (kw_serve_req_decode(&r, req, len, &why) < 0) {
		s->st.bad_requests++;
		s->st.errors++;
		kw_serve_pyerr(err, sizeof(err), "DecodeError", "Error parsing message: %s", why);
		(void)kw_hm_reply_error(call, err);
		return;
	}
	if (kw_serve_petals_chain(s, r.uid, r.uid_len, chain, &n_chain, err, sizeof(err)) < 0 ||
	    kw_serve_infer_meta_decode(r.meta, r.meta_len, &m, err, sizeof(err)) < 0) {
		s->st.errors++;
		(void)kw_hm_reply_error(call, err);
		return;
	}
	if (!m.session_id) {
		s->st.errors++;
		(void)kw_hm_reply_error(call, "KeyError('session_id')");   /* metadata["session_id"] */
		return;
	}
	/* _put_into_session_queue: an unknown session is ignored; a session whose reply waits
	 * for room takes no push now (the caller's own request of that step follows) */
	ss = kw_serve_sess_find(s, m.session_id);
	if (ss && !ss->pend_len && !ss->busy && r.n_tensors)
		(void)deliver(s, ss, ss->st, req, len, false);
	(void)kw_hm_reply(call, NULL, 0);   /* an empty ExpertResponse */
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static size_t reply_cap(const struct kw_serve *s)
{
	return (size_t)s->lim.max_rows * s->width * 4 + 256 + 2 * 64;
}

size_t kw_serve_infer_bytes(const struct kw_serve *s)
{
	size_t kv = kw_kv_cache_bytes(s->lim.sessions, s->lim.session_tokens, s->count,
				      s->d.kv_heads, s->d.head_dim);
	size_t w = KW_MAX((size_t)s->d.hidden, s->n_ex ? s->hid : 0);
	size_t rc = (size_t)s->lim.max_rows * w * 4 + 256 + 2 * 64;

	if (!kv)
		return 0;
	return kv + s->lim.sessions * (sizeof(struct kw_serve_sess) + rc + 64) + 256 +
	       (s->lim.alloc_waiters ? s->lim.alloc_waiters : KW_SERVE_ALLOC_WAITERS) *
	       sizeof(struct kw_serve_wait) + 64 + rc + KW_SERVE_PUSH_EXTRA + 16;
}

int kw_serve_infer_start(struct kw_serve *s)
{
	int ret;

	ret = kw_kv_cache_init(&s->kv, s->lim.sessions, s->lim.session_tokens, s->count,
			       s->d.kv_heads, s->d.head_dim, s->a);
	if (ret < 0)
		return ret;
	s->sess = kw_arena_alloc(s->a, s->lim.sessions * sizeof(*s->sess), 64);
	if (!s->sess)
		return -KW_ENOMEM;
	if (!s->lim.alloc_waiters)
		s->lim.alloc_waiters = KW_SERVE_ALLOC_WAITERS;
	if (!s->lim.max_alloc_timeout_ms)
		s->lim.max_alloc_timeout_ms = KW_SERVE_MAX_ALLOC_TIMEOUT_MS;
	s->wait = kw_arena_alloc(s->a, s->lim.alloc_waiters * sizeof(*s->wait), 64);
	if (!s->wait)
		return -KW_ENOMEM;
	memset(s->wait, 0, s->lim.alloc_waiters * sizeof(*s->wait));
	for (uint32_t i = 0; i < s->lim.alloc_waiters; i++) {
		s->wait[i].s = s;
		kw_timer_init(&s->wait[i].timer, on_wait_timeout, &s->wait[i]);
	}
	kw_timer_init(&s->grant, on_grant, s);
	s->push_buf = kw_arena_alloc(s->a, push_cap(s), 16);
	if (!s->push_buf)
		return -KW_ENOMEM;
	memset(s->sess, 0, s->lim.sessions * sizeof(*s->sess));
	for (uint32_t i = 0; i < s->lim.sessions; i++) {
		struct kw_serve_sess *ss = &s->sess[i];

		ss->s = s;
		ss->pend_cap = reply_cap(s);
		ss->pend = kw_arena_alloc(s->a, ss->pend_cap, 16);
		if (!ss->pend)
			return -KW_ENOMEM;
		kw_timer_init(&ss->timer, on_step_timeout, ss);
	}
	if (!s->hm)
		return 0;
	/* the step timeout is ours (a quiet close, as Petals); the stream's own idle deadline
	 * only backs it up */
	ret = kw_hm_register_stream(s->hm, KW_SERVE_PT_INFERENCE, &inf_ops, s,
				    s->lim.step_timeout_ms + 1000);
	if (ret < 0)
		return ret;
	return kw_hm_register_unary(s->hm, KW_SERVE_PT_PUSH, on_push, NULL, s, 0);
}
