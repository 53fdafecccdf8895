/*
 * The stream variants of forward and backward (app/serve.h, doc/serve.md):
 * ConnectionHandler.rpc_forward_stream / rpc_backward_stream (hivemind
 * hivemind/moe/server/connection_handler.py @ 4bd43b7) and
 * TransformerConnectionHandler.rpc_forward_stream / rpc_backward_stream (petals
 * src/petals/server/handler.py @ 22afba6). The caller splits every tensor of its request
 * with split_for_streaming and sends one piece per ExpertRequest{uid, tensors=[piece],
 * metadata}, uid (and for Petals the metadata) repeated in each; _gather_inputs takes the
 * first message's metadata, refuses a uid that changes, and joins the pieces (a piece with a
 * dtype starts the next tensor) until the caller's END_OF_STREAM. The joined request then
 * runs through the same compute as the unary handler (kw_serve_moe_run /
 * kw_serve_petals_run) and each output tensor goes back split into pieces, one per
 * ExpertResponse, each at most what the stream buffer carries (hivemind splits at
 * DEFAULT_MAX_MSG_SIZE, 4 MiB; readers join any piece size). Errors end the call with
 * str(exception) in an error frame, as hivemind's stream handlers send it.
 *
 * A call holds one request slot from its first message to its last reply piece: the pieces
 * are joined in the slot's reply buffer (it holds two full tensors), so a request larger
 * than a unary one is refused as the unary handler refuses it. Nothing is allocated per call.
 *
 * Once the caller's END_OF_STREAM is in, the joined request computes on the compute lane
 * (serve_lane.c) when there is one, as a unary request does: the loop serves other
 * connections meanwhile and leaves the call alone (no message can follow the end; a cancel
 * takes the job out, or waits for it when it is running, before the joins are dropped).
 * The loop then sends the reply pieces. Without a lane it computes inline, under the
 * compute lock.
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/swarm.h>

#include "serve_int.h"

#define SC_UID_MAX  1024   /* a chain of uids */
#define SC_META_MAX 1024

struct kw_serve_sc {
	struct kw_serve *s;
	struct kw_hm_stream *st;        /* NULL: free */
	bool petals;
	int method;
	void *tok;
	struct kw_serve_slot *slot;
	char uid[SC_UID_MAX];
	size_t uid_len;
	bool has_uid;
	uint8_t meta[SC_META_MAX];
	size_t meta_len;
	bool has_meta;
	struct kw_tensor_join j[KW_SERVE_TENSORS_MAX];
	size_t n_t, used;
	/* the reply, piece by piece */
	struct kw_tensor_msg rt[KW_SERVE_TENSORS_MAX];
	size_t n_rt, cur_t, cur_piece, chunk;
	bool replying;
	bool computing;                 /* on the lane: o is written there, read after done */
	struct kw_serve_out o;
};

struct sc_name {
	const char *name;
	bool petals;
	int method;
};

static const struct sc_name names[4] = {
	{ KW_SERVE_MOE_FORWARD_STREAM, false, KW_SERVE_FORWARD },
	{ KW_SERVE_MOE_BACKWARD_STREAM, false, KW_SERVE_BACKWARD },
	{ KW_SERVE_PT_FORWARD_STREAM, true, KW_SERVE_FORWARD },
	{ KW_SERVE_PT_BACKWARD_STREAM, true, KW_SERVE_BACKWARD },
};

/* Each registration's arg: its name entry and the serve it belongs to. */
struct sc_arg {
	struct sc_name n;
	struct kw_serve *s;
};

static void sc_free(struct kw_serve_sc *sc)
{
	if (sc->slot)
		kw_serve_slot_put(sc->s, sc->tok);
	sc->slot = NULL;
	sc->st = NULL;
}

/* Ends the call with str(e) of repr, frees the call state (sc may be NULL: none yet). */
static void sc_fail(struct kw_serve *s, struct kw_serve_sc *sc, struct kw_hm_stream *st,
		    const char *repr)
{
	char msg[KW_SERVE_ERR_MAX];

	kw_serve_pystr(repr, msg, sizeof(msg));
	KW_LOG_DBG(serve, "stream call ends with %s", repr);
	s->st.calls++;
	s->st.errors++;
	kw_hm_stream_set_user(st, NULL);
	if (sc)
		sc_free(sc);
	(void)kw_hm_stream_error(st, msg);
}

/* The largest message we send: limits.stream_piece, and what the slot's buffer holds. */
static size_t max_msg(const struct kw_serve_sc *sc)
{
	size_t m = sc->s->lim.stream_piece;

	return KW_MIN(m, sc->slot->enc_cap > 16 ? sc->slot->enc_cap - 16 : 0);
}

/* Sends the reply's pieces until done (stream ended) or the send buffer is full. */
static void sc_pump(struct kw_serve_sc *sc)
{
	struct kw_serve_slot *slot = sc->slot;

	while (sc->cur_t < sc->n_rt) {
		const struct kw_tensor_msg *w = &sc->rt[sc->cur_t];
		size_t n = kw_tensor_msg_pieces(w, sc->chunk), tl;
		struct kw_tensor_msg piece;
		int ret;

		if (sc->cur_piece >= n) {
			sc->cur_t++;
			sc->cur_piece = 0;
			if (sc->cur_t < sc->n_rt)
				sc->chunk = kw_tensor_msg_chunk_bytes(&sc->rt[sc->cur_t],
								      max_msg(sc));
			continue;
		}
		size_t o = 1, v;

		if (kw_tensor_msg_piece(w, sc->chunk, sc->cur_piece, &piece) < 0 ||
		    !(v = kw_tensor_msg_encoded_size(&piece))) {
			sc_fail(sc->s, sc, sc->st, "RuntimeError('cannot split the reply')");
			return;
		}
		/* ExpertResponse{tensors = [piece]}: field 2, then the piece's length */
		slot->enc[0] = 0x12;
		o += kw_serve_pb_varint_put(slot->enc + 1, v);
		if (kw_tensor_msg_encode(&piece, slot->enc + o, slot->enc_cap - o, &tl) < 0) {
			sc_fail(sc->s, sc, sc->st, "RuntimeError('cannot split the reply')");
			return;
		}
		ret = kw_hm_stream_send(sc->st, slot->enc, o + tl);
		if (ret == -KW_EAGAIN)
			return;   /* on_writable brings us back */
		if (ret < 0) {
			sc_fail(sc->s, sc, sc->st, "RuntimeError('a reply piece does not fit the "
				"stream buffer')");
			return;
		}
		sc->cur_piece++;
	}
	{
		struct kw_hm_stream *st = sc->st;

		kw_hm_stream_set_user(st, NULL);
		sc->s->st.stream_calls++;
		sc_free(sc);
		(void)kw_hm_stream_end(st);
	}
}

/* The joined request through the server into sc->o (data in the slot). On the lane thread or
 * on the loop under the compute lock; touches only the call and its slot, never s->st. */
static void sc_compute(struct kw_serve *s, struct kw_serve_slot *slot, void *user)
{
	struct kw_serve_sc *sc = user;
	struct kw_serve_req r;

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sc->n_t; i++)
		r.t[i] = sc->j[i].head;
	r.n_tensors = sc->n_t;
	r.uid = sc->uid;
	r.uid_len = sc->uid_len;
	r.meta = sc->meta_len ? sc->meta : NULL;
	r.meta_len = sc->meta_len;
	slot->err[0] = '\0';
	sc->o = (struct kw_serve_out){ 0 };
	if (sc->petals)
		kw_serve_petals_run(s, slot, sc->method, &r, &sc->o);
	else
		kw_serve_moe_run(s, slot, sc->method, &r, &sc->o);
}

/* The computed request (loop thread): an error ends the call, a reply starts going out. */
static void sc_reply(struct kw_serve_sc *sc)
{
	struct kw_serve *s = sc->s;
	const struct kw_serve_out *o = &sc->o;
	size_t pos = 0;

	if (o->is_error) {
		sc_fail(s, sc, sc->st, sc->slot->err);
		return;
	}
	s->st.calls++;
	/* split the ExpertResponse back into its tensors (views into slot->out) */
	sc->n_rt = 0;
	while (pos < o->len && sc->n_rt < KW_SERVE_TENSORS_MAX) {
		uint64_t l = 0;

		if (o->data[pos++] != 0x12 || kw_serve_pb_varint(o->data, o->len, &pos, &l) < 0)
			break;
		if (l > o->len - pos ||
		    kw_tensor_msg_decode(&sc->rt[sc->n_rt], o->data + pos, (size_t)l) < 0)
			break;
		sc->n_rt++;
		pos += (size_t)l;
	}
	sc->cur_t = sc->cur_piece = 0;
	sc->chunk = sc->n_rt ? kw_tensor_msg_chunk_bytes(&sc->rt[0], max_msg(sc)) : 0;
	if (sc->n_rt && !sc->chunk) {
		sc_fail(s, sc, sc->st, "RuntimeError('the stream buffer cannot carry a reply "
			"piece')");
		return;
	}
	sc->replying = true;
	sc_pump(sc);
}

/* The lane computed the request (loop thread; the slot is still the call's). */
static void sc_done(struct kw_serve *s, struct kw_serve_slot *slot, void *user)
{
	struct kw_serve_sc *sc = user;

	sc->computing = false;
	if (slot->job.status < 0) {   /* never ran: the lane stopped (the text is in err) */
		sc_fail(s, sc, sc->st, slot->err);
		return;
	}
	sc_reply(sc);
}

/* The requests are all in: compute the joined request (on the lane when there is one), then
 * reply. */
static void sc_run(struct kw_serve_sc *sc)
{
	struct kw_serve *s = sc->s;

	for (size_t i = 0; i < sc->n_t; i++) {
		if (!sc->j[i].done) {
			sc_fail(s, sc, sc->st, "ValueError('the last tensor misses pieces')");
			return;
		}
	}
	if (!s->lane.tried)   /* the loop is known from the call: start the lane there */
		(void)kw_serve_lane_attach(s, &kw_swarm_node(kw_conn_swarm(
						  kw_hm_stream_conn(sc->st)))->loop);
	sc->computing = true;
	if (kw_serve_lane_submit_keep(s, sc->slot, sc->tok, sc_compute, sc_done, sc))
		return;   /* sc_done, or taken out by sc_cancel */
	sc->computing = false;
	kw_serve_compute_begin(s);
	sc_compute(s, sc->slot, sc);
	kw_serve_compute_end(s);
	sc_reply(sc);
}

/* One ExpertRequest of the call: uid, metadata, and its pieces into the joins. */
static int sc_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	const struct sc_arg *a = arg;
	const struct sc_name *nm = &a->n;
	struct kw_serve *s = a->s;
	struct kw_serve_sc *sc = kw_hm_stream_user(st);
	struct kw_serve_req r;
	char err[KW_SERVE_ERR_MAX];
	const char *why;

	if (!sc && s->refuse) {   /* pausing: no new stream calls */
		s->st.refused++;
		sc_fail(s, NULL, st, s->refuse);
		return 0;
	}
	if (!sc) {
		for (uint32_t i = 0; i < s->lim.slots && !sc; i++)
			if (!s->sc[i].st)
				sc = &s->sc[i];
		if (sc) {
			sc->slot = kw_serve_slot_get(s, &sc->tok);
			if (!sc->slot)
				sc = NULL;
		}
		if (!sc) {
			s->st.busy++;
			sc_fail(s, NULL, st, "RuntimeError('server busy: every request slot is "
				"taken')");
			return 0;
		}
		sc->st = st;
		sc->petals = nm->petals;
		sc->method = nm->method;
		sc->has_uid = sc->has_meta = sc->replying = sc->computing = false;
		sc->uid_len = sc->meta_len = sc->n_t = sc->used = 0;
		kw_hm_stream_set_user(st, sc);
	}
	if (kw_serve_req_decode(&r, msg, len, &why) < 0) {
		s->st.bad_requests++;
		kw_serve_pyerr(err, sizeof(err), "DecodeError", "Error parsing message: %s", why);
		sc_fail(s, sc, st, err);
		return 0;
	}
	if (!sc->has_uid) {
		if (r.uid_len > sizeof(sc->uid)) {
			sc_fail(s, sc, st, "ValueError('the uid is too long for this server')");
			return 0;
		}
		memcpy(sc->uid, r.uid, r.uid_len);
		sc->uid_len = r.uid_len;
		sc->has_uid = true;
	} else if (r.uid_len != sc->uid_len || memcmp(r.uid, sc->uid, r.uid_len)) {
		sc_fail(s, sc, st, sc->petals ? "ValueError('Block uids differ in one request')" :
			"ValueError('Expert uids differ in one request')");
		return 0;
	}
	if (!sc->has_meta && sc->petals) {
		/* `if metadata is None: metadata = loads(req.metadata) if req.metadata else {}` */
		if (r.meta_len > sizeof(sc->meta)) {
			sc_fail(s, sc, st, "ValueError('metadata is too long for this server')");
			return 0;
		}
		if (r.meta_len)
			memcpy(sc->meta, r.meta, r.meta_len);
		sc->meta_len = r.meta_len;
		sc->has_meta = true;
	}
	for (size_t i = 0; i < r.n_tensors; i++) {
		struct kw_serve_slot *slot = sc->slot;
		struct kw_tensor_join *j;
		int ret;

		if (r.t[i].dtype[0]) {   /* a piece with a dtype starts the next tensor */
			if (sc->n_t && !sc->j[sc->n_t - 1].done) {
				sc_fail(s, sc, st, "ValueError('a tensor starts before the previous "
					"one has all its pieces')");
				return 0;
			}
			if (sc->n_t == KW_SERVE_TENSORS_MAX) {
				sc_fail(s, sc, st, "ValueError('too many tensors')");
				return 0;
			}
			kw_tensor_join_init(&sc->j[sc->n_t], slot->out + sc->used,
					    slot->out_cap - sc->used);
			sc->n_t++;
		} else if (!sc->n_t) {
			sc_fail(s, sc, st, "ValueError('the first tensor piece has no dtype')");
			return 0;
		}
		j = &sc->j[sc->n_t - 1];
		ret = kw_tensor_join_add(j, &r.t[i]);
		if (ret == -KW_EMSGSIZE) {
			sc_fail(s, sc, st, "ValueError(\"the request's tensors exceed this server's "
				"limit (max_rows)\")");
			return 0;
		}
		if (ret < 0) {
			sc_fail(s, sc, st, "ValueError('tensor pieces do not join')");
			return 0;
		}
		if (ret == 1)
			sc->used += j->len;
	}
	return 0;
}

static void sc_end(struct kw_hm_stream *st, void *arg)
{
	struct kw_serve_sc *sc = kw_hm_stream_user(st);
	struct kw_serve *s = ((const struct sc_arg *)arg)->s;

	if (!sc) {
		/* no request at all: _gather_inputs has no uid */
		sc_fail(s, NULL, st, "AssertionError()");
		return;
	}
	if (!sc->replying && !sc->computing)
		sc_run(sc);
}

static void sc_writable(struct kw_hm_stream *st, void *arg)
{
	struct kw_serve_sc *sc = kw_hm_stream_user(st);

	(void)arg;
	if (sc && sc->replying)
		sc_pump(sc);
}

static void sc_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	struct kw_serve_sc *sc = kw_hm_stream_user(st);

	(void)arg;
	(void)reason;
	if (!sc)
		return;
	if (sc->computing) {
		/* its joins die with the call: the lane drops the job or finishes it first, and
		 * the slot goes back when the lane's result is collected */
		kw_serve_lane_cancel(sc->s, sc->slot);
		sc->computing = false;
		sc->slot = NULL;
	}
	sc_free(sc);
}

static const struct kw_hm_stream_ops sc_ops = {
	.on_message = sc_msg,
	.on_end = sc_end,
	.on_writable = sc_writable,
	.on_cancel = sc_cancel,
};

size_t kw_serve_stream_bytes(const struct kw_serve *s)
{
	return s->lim.slots * sizeof(struct kw_serve_sc) + 4 * sizeof(struct sc_arg) + 128;
}

int kw_serve_stream_start(struct kw_serve *s)
{
	struct sc_arg *args;
	int ret;

	if (!s->hm)
		return 0;
	s->sc = kw_arena_alloc(s->a, s->lim.slots * sizeof(*s->sc), 16);
	args = kw_arena_alloc(s->a, 4 * sizeof(*args), 16);
	if (!s->sc || !args)
		return -KW_ENOMEM;
	memset(s->sc, 0, s->lim.slots * sizeof(*s->sc));
	for (uint32_t i = 0; i < s->lim.slots; i++)
		s->sc[i].s = s;
	for (int i = 0; i < 4; i++) {
		if (names[i].petals ? !s->has_blocks : !s->n_ex)
			continue;
		args[i].n = names[i];
		args[i].s = s;
		ret = kw_hm_register_stream(s->hm, names[i].name, &sc_ops, &args[i], 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}
