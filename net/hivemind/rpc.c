/*
 * Hivemind unary RPC on the swarm (include/kw/net/hivemind.h): serving registered handler
 * names and calling them, one stream and one envelope each way per call, the way p2pd's
 * persistent_stream.go and hivemind's control.py (learning-at-home/hivemind @ 4bd43b7,
 * hivemind/p2p/p2p_daemon_bindings/control.py) behave on the wire: the caller writes its
 * call and does not half-close; extra bytes, EOF or a reset from the caller before the reply
 * cancel the call; the responder closes after its reply.
 *
 * Owns: two pools of call states from the node's arena (served calls, calls we make), each
 * block a struct followed by its request and reply buffers.
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/rng.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "rpc_priv.h"

struct hm_handler {
	struct kw_hm *hm;
	kw_hm_unary_fn fn;
	kw_hm_cancel_fn on_cancel;
	void *arg;
	uint32_t deadline_ms;
	char name[KW_PROTO_ID_MAX + 1];
};

enum { SRV_READING, SRV_HANDLING, SRV_WRITING, SRV_DONE };

struct kw_hm_call {               /* a call we serve */
	struct kw_hm *hm;
	const struct hm_handler *h;
	struct kw_stream *s;          /* NULL once the stream is gone */
	struct kw_conn *c;
	struct kw_timer timer;        /* deadline (reading, handling), then the close grace */
	uint8_t state;
	uint8_t call_id[KW_HM_CALL_ID_LEN];
	size_t rx_len, tx_len, tx_off;
	uint8_t *rx, *tx;             /* buf_bytes each, right after the struct */
};

struct hm_out {                   /* a call we make */
	struct kw_hm *hm;
	struct kw_stream *s;
	kw_hm_call_cb cb;
	void *user;
	struct kw_timer timer;
	bool opening, done;
	uint8_t call_id[KW_HM_CALL_ID_LEN];
	size_t rx_len, tx_len, tx_off;
	uint8_t *rx, *tx;
};

struct kw_hm {
	struct kw_swarm *sw;
	struct kw_node *n;
	struct kw_hm_limits lim;
	struct kw_pool in, out;
	struct hm_handler handlers[KW_HM_HANDLERS_MAX];
	unsigned n_handlers;
	struct kw_hm_stats st;
	struct kw_hm_sx *sx;          /* stream calls (stream_rpc.c), NULL until set up */
};

static struct kw_loop *loop_of(struct kw_hm *hm)
{
	return &hm->n->loop;
}

void kw_hm_limits_default(struct kw_hm_limits *l)
{
	l->calls_in = CONFIG_KW_NET_HIVEMIND_CALLS_IN;
	l->calls_per_peer = CONFIG_KW_NET_HIVEMIND_CALLS_PER_PEER;
	l->calls_out = CONFIG_KW_NET_HIVEMIND_CALLS_OUT;
	l->buf_bytes = CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES;
	l->timeout_ms = CONFIG_KW_NET_HIVEMIND_CALL_TIMEOUT_MS;
}

int kw_hm_create(struct kw_swarm *sw, const struct kw_hm_limits *limits, struct kw_hm **out)
{
	struct kw_node *n = kw_swarm_node(sw);
	struct kw_hm *hm;
	int ret;

	hm = (struct kw_hm *)kw_arena_alloc(&n->arena, sizeof(*hm), 16);
	if (!hm)
		return -KW_ENOMEM;
	memset(hm, 0, sizeof(*hm));
	hm->sw = sw;
	hm->n = n;
	if (limits)
		hm->lim = *limits;
	else
		kw_hm_limits_default(&hm->lim);
	if (!hm->lim.calls_in || !hm->lim.calls_per_peer || !hm->lim.calls_out ||
	    hm->lim.buf_bytes < KW_HM_BUF_MIN || !hm->lim.timeout_ms)
		return -KW_EINVAL;
	ret = kw_node_pool_create(n, &hm->in, "hm_call_in",
				  KW_ALIGN_UP(sizeof(struct kw_hm_call), 16) + 2 * (size_t)hm->lim.buf_bytes,
				  hm->lim.calls_in);
	if (ret == 0)
		ret = kw_node_pool_create(n, &hm->out, "hm_call_out",
					  KW_ALIGN_UP(sizeof(struct hm_out), 16) +
					  2 * (size_t)hm->lim.buf_bytes, hm->lim.calls_out);
	if (ret < 0)
		return ret;
	*out = hm;
	return 0;
}

void kw_hm_get_stats(const struct kw_hm *hm, struct kw_hm_stats *st)
{
	*st = hm->st;
}

struct kw_swarm *kw_hm_swarm(const struct kw_hm *hm)
{
	return hm->sw;
}

struct kw_node *kw_hm_node(const struct kw_hm *hm)
{
	return hm->n;
}

struct kw_hm_sx **kw_hm_sx_slot(struct kw_hm *hm)
{
	return &hm->sx;
}

/* ---- serving ---------------------------------------------------------------------------- */

static const struct kw_stream_handler srv_h;

static void srv_free(struct kw_hm_call *call)
{
	struct kw_hm *hm = call->hm;

	kw_timer_cancel(loop_of(hm), &call->timer);
	call->s = NULL;  /* calls_from() reads free blocks: keep them unmatched */
	call->c = NULL;
	kw_pool_free(&hm->in, call);
}

/* Ends the stream abortively; nothing more happens on this call until on_close frees it. */
static void srv_reset(struct kw_hm_call *call)
{
	call->state = SRV_DONE;
	kw_timer_cancel(loop_of(call->hm), &call->timer);
	kw_stream_reset(call->s);
}

/* The handler loses the call before answering: tell it, once. */
static void srv_cancel_handler(struct kw_hm_call *call, int reason)
{
	if (call->state != SRV_HANDLING)
		return;
	call->state = SRV_DONE;
	if (call->h->on_cancel)
		call->h->on_cancel(call, reason, call->h->arg);
}

/* Refuses what the peer sent on this stream: counted, logged, stream reset. */
static void srv_bad(struct kw_hm_call *call, const char *why)
{
	call->hm->st.bad_envelopes++;
	KW_LOG_WRN(hivemind, "%s: %s call refused: %s; resetting the stream",
		   kw_conn_peer_short(call->c), call->h->name, why);
	srv_cancel_handler(call, -KW_EPROTO);
	srv_reset(call);
}

static void srv_flush(struct kw_hm_call *call)
{
	while (call->tx_off < call->tx_len) {
		long w = kw_stream_write(call->s, call->tx + call->tx_off, call->tx_len - call->tx_off);

		if (w < 0) {
			srv_reset(call);
			return;
		}
		if (w == 0)
			return;  /* on_writable continues */
		call->tx_off += (size_t)w;
	}
	call->state = SRV_DONE;
	kw_stream_close_write(call->s);
	/* The caller closes after reading; one more deadline bounds a caller that never does. */
	kw_timer_start(loop_of(call->hm), &call->timer, call->h->deadline_ms);
}

/* Encodes the reply into tx (an error text instead when it does not fit) and sends it. */
static int srv_answer(struct kw_hm_call *call, const uint8_t *data, size_t len, bool is_error)
{
	struct kw_hm_envelope e;
	const uint8_t *id = call ? call->call_id : NULL;
	long n;
	int ret = 0;

	if (!call || call->state != SRV_HANDLING)
		return -KW_EINVAL;
	/* data may point into rx (a handler echoing its request): tx is a separate buffer */
	if (is_error)
		kw_hm_env_error(&e, id, (const char *)data, len);
	else
		kw_hm_env_response(&e, id, data, len);
	n = kw_hm_env_encode(&e, call->tx, call->hm->lim.buf_bytes);
	if (n < 0) {
		static const char too_big[] = "RuntimeError('reply larger than the responder can send')";
		static const char bad_text[] = "RuntimeError('error text is not UTF-8')";
		const char *t = n == -KW_EINVAL ? bad_text : too_big;

		ret = n == -KW_EINVAL ? -KW_EINVAL : -KW_EMSGSIZE;
		kw_hm_env_error(&e, id, t, strlen(t));
		n = kw_hm_env_encode(&e, call->tx, call->hm->lim.buf_bytes);
		if (n < 0) {  /* KW_HM_BUF_MIN holds these texts; keep the stream honest anyway */
			srv_reset(call);
			return ret;
		}
		is_error = true;
	}
	if (is_error)
		call->hm->st.error_replies++;
	else
		call->hm->st.replies++;
	kw_timer_cancel(loop_of(call->hm), &call->timer);
	call->tx_len = (size_t)n;
	call->tx_off = 0;
	call->state = SRV_WRITING;
	srv_flush(call);
	return ret;
}

int kw_hm_reply(struct kw_hm_call *call, const uint8_t *resp, size_t len)
{
	if (!resp && len)
		return -KW_EINVAL;
	return srv_answer(call, resp, len, false);
}

int kw_hm_reply_error(struct kw_hm_call *call, const char *text)
{
	if (!text)
		return -KW_EINVAL;
	return srv_answer(call, (const uint8_t *)text, strlen(text), true);
}

struct kw_conn *kw_hm_call_conn(const struct kw_hm_call *call)
{
	return call->c;
}

static void srv_on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_hm_call *call = (struct kw_hm_call *)t->arg;
	static const char timeout_text[] = "TimeoutError()";

	switch (call->state) {
	case SRV_READING:  /* the request did not arrive in time */
		call->hm->st.deadlines++;
		srv_reset(call);
		break;
	case SRV_HANDLING:
		call->hm->st.deadlines++;
		KW_LOG_INF(hivemind, "%s: %s not answered within %u ms; replying TimeoutError()",
			   kw_conn_peer_short(call->c), call->h->name, call->h->deadline_ms);
		if (call->h->on_cancel)
			call->h->on_cancel(call, -KW_ETIMEDOUT, call->h->arg);
		srv_answer(call, (const uint8_t *)timeout_text, sizeof(timeout_text) - 1, true);
		break;
	default:  /* reply sent, the caller never closed (or writing stalled): give up */
		srv_reset(call);
		break;
	}
}

static size_t srv_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct kw_hm_call *call = (struct kw_hm_call *)s->user;
	struct kw_hm_envelope e;
	const char *why = "";
	size_t room, take;
	long r;

	if (call->state != SRV_READING) {
		/* p2pd: anything after the request cancels the call (a caller must not send it) */
		if (call->state == SRV_HANDLING) {
			call->hm->st.cancelled++;
			srv_cancel_handler(call, -KW_ECANCELED);
		}
		srv_reset(call);
		return len;
	}
	room = call->hm->lim.buf_bytes - call->rx_len;
	take = KW_MIN(len, room);
	memcpy(call->rx + call->rx_len, data, take);
	call->rx_len += take;
	r = kw_hm_env_decode(call->rx, call->rx_len, &e, &why);
	if (r == -KW_EAGAIN) {
		if (call->rx_len == call->hm->lim.buf_bytes)
			srv_bad(call, "request larger than the call buffer");
		return len;
	}
	if (r < 0) {
		srv_bad(call, why);
		return len;
	}
	if ((size_t)r != call->rx_len || take < len) {
		srv_bad(call, "bytes after the request");
		return len;
	}
	if (e.kind != KW_HM_ENV_CALL) {
		srv_bad(call, "not a callUnary");
		return len;
	}
	if (e.proto.len != strlen(call->h->name) || memcmp(e.proto.p, call->h->name, e.proto.len)) {
		srv_bad(call, "callUnary.proto differs from the negotiated protocol");
		return len;
	}
	memcpy(call->call_id, e.call_id, KW_HM_CALL_ID_LEN);
	call->state = SRV_HANDLING;
	call->hm->st.calls_in++;
	call->h->fn(call, e.data.p, e.data.len, call->h->arg);
	return len;
}

static void srv_on_eof(struct kw_stream *s)
{
	struct kw_hm_call *call = (struct kw_hm_call *)s->user;

	switch (call->state) {
	case SRV_READING:
		srv_bad(call, "stream ended inside the request");
		break;
	case SRV_HANDLING:  /* p2pd cancels the handler when the caller's side closes */
		call->hm->st.cancelled++;
		srv_cancel_handler(call, -KW_ECANCELED);
		srv_reset(call);
		break;
	default:
		break;  /* the caller closes after our reply: on_close follows */
	}
}

static void srv_on_writable(struct kw_stream *s)
{
	struct kw_hm_call *call = (struct kw_hm_call *)s->user;

	if (call->state == SRV_WRITING)
		srv_flush(call);
}

static void srv_on_close(struct kw_stream *s, int reason)
{
	struct kw_hm_call *call = (struct kw_hm_call *)s->user;

	call->s = NULL;
	if (call->state == SRV_HANDLING) {
		call->hm->st.cancelled++;
		srv_cancel_handler(call, reason ? reason : -KW_ECANCELED);
	}
	srv_free(call);
}

static const struct kw_stream_handler srv_h = {
	.on_data = srv_on_data,
	.on_eof = srv_on_eof,
	.on_writable = srv_on_writable,
	.on_close = srv_on_close,
};

static unsigned calls_from(const struct kw_hm *hm, const struct kw_conn *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < hm->in.count; i++) {
		const struct kw_hm_call *call =
			(const struct kw_hm_call *)(hm->in.storage + i * hm->in.stride);

		if (call->c == c && call->s)  /* free blocks have both cleared (srv_free) */
			n++;
	}
	return n;
}

static int srv_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	const struct hm_handler *h = (const struct hm_handler *)arg;
	struct kw_hm *hm = h->hm;
	struct kw_conn *c = kw_stream_conn(s);
	struct kw_hm_call *call;

	if (calls_from(hm, c) >= hm->lim.calls_per_peer ||
	    !(call = (struct kw_hm_call *)kw_pool_alloc(&hm->in))) {
		hm->st.refused_limit++;
		return -KW_ELIMIT;
	}
	call->hm = hm;
	call->h = h;
	call->s = s;
	call->c = c;
	call->state = SRV_READING;
	call->rx = (uint8_t *)call + KW_ALIGN_UP(sizeof(*call), 16);
	call->tx = call->rx + hm->lim.buf_bytes;
	kw_timer_init(&call->timer, srv_on_timer, call);
	kw_timer_start(loop_of(hm), &call->timer, h->deadline_ms);
	s->h = &srv_h;
	s->user = call;
	return 0;
}

int kw_hm_register_unary(struct kw_hm *hm, const char *name, kw_hm_unary_fn fn,
			 kw_hm_cancel_fn on_cancel, void *arg, uint32_t deadline_ms)
{
	struct hm_handler *h;
	size_t l;
	int ret;

	if (!hm || !name || !fn || (l = strlen(name)) == 0 || l > KW_PROTO_ID_MAX ||
	    !kw_mp_utf8_valid((const uint8_t *)name, l))
		return -KW_EINVAL;
	for (unsigned i = 0; i < hm->n_handlers; i++)
		if (!strcmp(hm->handlers[i].name, name))
			return -KW_EEXIST;
	if (hm->n_handlers >= KW_HM_HANDLERS_MAX)
		return -KW_ENOSPC;
	h = &hm->handlers[hm->n_handlers];
	h->hm = hm;
	h->fn = fn;
	h->on_cancel = on_cancel;
	h->arg = arg;
	h->deadline_ms = deadline_ms ? deadline_ms : hm->lim.timeout_ms;
	memcpy(h->name, name, l + 1);
	ret = kw_swarm_register(hm->sw, h->name, srv_accept, h);
	if (ret < 0)
		return ret;
	hm->n_handlers++;
	return 0;
}

/* ---- calling ---------------------------------------------------------------------------- */

static const struct kw_stream_handler cli_h;

static void out_free(struct hm_out *o)
{
	kw_timer_cancel(loop_of(o->hm), &o->timer);
	kw_pool_free(&o->hm->out, o);
}

static void out_finish(struct hm_out *o, int err, bool remote_error, const uint8_t *data,
		       size_t len)
{
	struct kw_hm_result r = { err, remote_error, data, len };

	if (o->done)
		return;
	o->done = true;
	kw_timer_cancel(loop_of(o->hm), &o->timer);
	if (err < 0)
		o->hm->st.calls_out_failed++;
	o->cb(&r, o->user);
}

static void out_flush(struct hm_out *o)
{
	while (o->tx_off < o->tx_len) {
		long w = kw_stream_write(o->s, o->tx + o->tx_off, o->tx_len - o->tx_off);

		if (w < 0) {
			out_finish(o, (int)w, false, NULL, 0);
			kw_stream_reset(o->s);
			return;
		}
		if (w == 0)
			return;
		o->tx_off += (size_t)w;
	}
	/* No half-close here: p2pd treats the caller's EOF as a cancel. */
}

static void out_on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct hm_out *o = (struct hm_out *)t->arg;

	out_finish(o, -KW_ETIMEDOUT, false, NULL, 0);
	if (o->s)
		kw_stream_reset(o->s);  /* on_close frees */
	/* still opening: on_open frees */
}

static size_t cli_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct hm_out *o = (struct hm_out *)s->user;
	struct kw_hm_envelope e;
	size_t take;
	long r;

	if (o->done)
		return len;  /* after the reply: nothing more is expected, drop it */
	take = KW_MIN(len, o->hm->lim.buf_bytes - o->rx_len);
	memcpy(o->rx + o->rx_len, data, take);
	o->rx_len += take;
	r = kw_hm_env_decode(o->rx, o->rx_len, &e, NULL);
	if (r == -KW_EAGAIN) {
		if (o->rx_len < o->hm->lim.buf_bytes)
			return len;
		r = -KW_EMSGSIZE;
	}
	if (r >= 0 && (e.kind != KW_HM_ENV_RESPONSE ||
		       memcmp(e.call_id, o->call_id, KW_HM_CALL_ID_LEN) != 0))
		r = -KW_EPROTO;
	if (r < 0) {
		KW_LOG_WRN(hivemind, "%s: bad reply to %s (%s); resetting the stream",
			   kw_conn_peer_short(kw_stream_conn(s)), s->protocol, kw_strerror((int)r));
		out_finish(o, (int)r, false, NULL, 0);
		kw_stream_reset(s);
		return len;
	}
	out_finish(o, 0, e.is_error, e.result.p, e.result.len);
	kw_stream_close_write(s);  /* the responder closes after its reply; we close too */
	return len;
}

static void cli_on_eof(struct kw_stream *s)
{
	struct hm_out *o = (struct hm_out *)s->user;

	out_finish(o, -KW_EPIPE, false, NULL, 0);
	kw_stream_close_write(s);
}

static void cli_on_writable(struct kw_stream *s)
{
	out_flush((struct hm_out *)s->user);
}

static void cli_on_close(struct kw_stream *s, int reason)
{
	struct hm_out *o = (struct hm_out *)s->user;

	o->s = NULL;
	out_finish(o, reason ? reason : -KW_EPIPE, false, NULL, 0);
	out_free(o);
}

static const struct kw_stream_handler cli_h = {
	.on_data = cli_on_data,
	.on_eof = cli_on_eof,
	.on_writable = cli_on_writable,
	.on_close = cli_on_close,
};

static void out_on_open(struct kw_stream *s, int err, void *user)
{
	struct hm_out *o = (struct hm_out *)user;

	o->opening = false;
	if (err < 0) {
		out_finish(o, err, false, NULL, 0);
		out_free(o);
		return;
	}
	o->s = s;
	if (o->done) {  /* timed out while negotiating */
		kw_stream_reset(s);
		return;
	}
	out_flush(o);
}

int kw_hm_call(struct kw_hm *hm, struct kw_conn *c, const char *name, const uint8_t *req,
	       size_t len, uint32_t timeout_ms, kw_hm_call_cb cb, void *user)
{
	struct kw_hm_envelope e;
	struct hm_out *o;
	long n;
	int ret;

	if (!hm || !c || !name || !cb || (!req && len))
		return -KW_EINVAL;
	o = (struct hm_out *)kw_pool_alloc(&hm->out);
	if (!o)
		return -KW_ELIMIT;
	o->hm = hm;
	o->cb = cb;
	o->user = user;
	o->rx = (uint8_t *)o + KW_ALIGN_UP(sizeof(*o), 16);
	o->tx = o->rx + hm->lim.buf_bytes;
	/* A random (version 4) UUID, as hivemind's uuid4(). */
	ret = kw_rng_bytes(o->call_id, sizeof(o->call_id));
	if (ret < 0)
		goto fail;
	o->call_id[6] = (uint8_t)((o->call_id[6] & 0x0f) | 0x40);
	o->call_id[8] = (uint8_t)((o->call_id[8] & 0x3f) | 0x80);
	kw_hm_env_call(&e, o->call_id, kw_conn_peer_id(c)->bytes, kw_conn_peer_id(c)->len, name,
		       req, len);
	n = kw_hm_env_encode(&e, o->tx, hm->lim.buf_bytes);
	if (n < 0) {
		ret = n == -KW_ENOSPC ? -KW_EMSGSIZE : (int)n;
		goto fail;
	}
	o->tx_len = (size_t)n;
	o->opening = true;
	kw_timer_init(&o->timer, out_on_timer, o);
	ret = kw_swarm_open_stream(hm->sw, c, name, &cli_h, o, out_on_open);
	if (ret < 0)
		goto fail;
	kw_timer_start(loop_of(hm), &o->timer, timeout_ms ? timeout_ms : hm->lim.timeout_ms);
	hm->st.calls_out++;
	return 0;
fail:
	kw_pool_free(&hm->out, o);
	return ret;
}
