/*
 * `kwnode generate --model DIR --prompt-tokens FILE -n N [--model-prefix P]`: greedy
 * decoding through Petals servers found on the Hivemind DHT (doc/serve.md "Client and
 * generate"). What petals' RemoteSequential + generate do, reduced to greedy decoding:
 *
 *   1. join the Hivemind DHT (client mode) through --bootstrap peers;
 *   2. read the ServerInfo records "{P}.{i}" of every block with latest = true (as
 *      get_remote_module_infos does) into a route table (app/client_route.c) and build a
 *      chain of ONLINE servers covering the blocks;
 *   3. per token: the new positions' embeddings (model.embed_tokens of --model DIR, the
 *      checkpoint the servers hold) go through the chain, one Petals inference session per
 *      span (TransformerConnectionHandler.rpc_inference, petals client/inference_session.py:
 *      the KV cache stays on the servers), then the final RMSNorm and lm_head here, and the
 *      argmax; with --forward, rpc_forward of every position so far per span instead
 *      (stateless: correct and slower);
 *   4. a span whose call fails (no answer, connection or session lost, a remote error) bans
 *      its server (petals sequence_manager on_request_failure: backoff doubling) and the
 *      blocks from that span on are routed again over the remaining servers (records read
 *      again when no chain is left); the new sessions get the span's whole input history
 *      first (what petals' InferenceSession replays), so the tokens are those of an
 *      undisturbed run.
 *
 * Output: the generated token IDs, one per line, on stdout; the route, each step with its
 * time and every failure on stderr. Servers are dialed over a connection already open, an
 * address given with --bootstrap / --peer, or else the addresses a /ipfs/kad/1.0.0 find-peer
 * returns for their PeerID (the ServerInfo records carry PeerIDs only; app/client.h
 * kw_client_resolve).
 * Exit: 0 all N tokens, 1 no route / no answer / cannot join, 2 usage or a bad file.
 *
 * The embeddings, final norm and lm_head come from kw_llama_model_load (int8, as the servers
 * quantize): the whole checkpoint is loaded, blocks included (start-up allocation; a loader
 * for the three tensors alone is not written yet). Buffers are sized from the prompt and -n
 * before the node starts; a step allocates nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/ml/block.h>
#include <kw/ml/codec.h>
#include <kw/ml/model.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "hivemind.h"
#include "serve.h"

int kw_cmd_generate(int argc, char **argv);

#define PROG        "kwnode generate"
#define TOKENS_MAX  4096
#define PEERS_MAX   (KW_CONFIG_BOOTSTRAP_MAX * 2)
#define POLL_MS     20u
#define RETRY_MS    500u      /* wait before reading the records again when no chain is left */
#define ROUTE_TRIES 20        /* record reads without a chain before giving up */

enum phase { P_JOIN, P_FETCH, P_CALL, P_PAUSE, P_DONE };

struct gen {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_hm *st;
	struct kw_timer timer;
	enum phase phase;
	int code;
	uint64_t deadline_ms;
	uint32_t wait_ms, timeout_ms;
	uint32_t step_delay_ms;       /* pause between tokens (a demo kills a server meanwhile) */
	/* the model */
	const char *prefix;
	uint32_t first, end;          /* blocks [first, end) run remotely */
	struct kw_llama_model m;
	struct kw_llama_model_ctx mc;
	struct kw_codec codec;
	size_t H, V;
	/* the sequence */
	uint32_t tok[TOKENS_MAX];
	size_t n_prompt, n_tok, n_gen;
	float *hs;                    /* n_tok x H: the hidden states entering span `cur` */
	float *logits;
	uint8_t *req;
	size_t req_cap;
	/* inference sessions: one stream per span (petals _ServerInferenceSession) */
	bool sessions;                /* false: rpc_forward of the whole prefix per token */
	struct sess {
		struct gen *g;
		struct kw_hm_stream *st;  /* NULL: none open (the next step opens one) */
		bool fresh;               /* opened for this step: it gets the whole history */
		bool waiting;             /* its answer is what the step waits for */
		uint32_t steps, id;
	} ss[KW_CLIENT_SPANS_MAX];
	uint32_t sess_ids;            /* sessions opened (names their step_ids) */
	size_t pos0;                  /* positions every open session holds */
	size_t from;                  /* first position of the step in flight at span `cur` */
	float *hist;                  /* (blocks + 1) x tokens x H: the inputs at each block
					 boundary, kept to replay into a new session */
	/* the route */
	struct kw_client_route route;
	struct kw_client_span span[KW_CLIENT_SPANS_MAX];
	uint32_t n_span, cur;
	uint32_t fetch_block, route_tries;
	bool reroute;                 /* plan again from span `cur` after the fetch */
	char uid[KW_SERVE_UID_MAX * KW_CLIENT_SPANS_MAX];
	char span_peer[KW_CLIENT_SPANS_MAX][KW_HM_REC_PEER_MAX];   /* who runs each span */
	/* addresses we can dial by PeerID; the others are found over /ipfs/kad/1.0.0 */
	const char *peer_addr[PEERS_MAX];
	int n_peer_addr;
	struct kw_kad *kad;           /* client mode, from the --bootstrap peers; NULL: none */
	struct kw_client_resolver res;
	bool resolving;               /* the dial in flight follows a kad lookup */
	/* figures */
	struct timespec t0, step_t0;
	uint32_t failures, reroutes;
};

static struct gen g_gen;   /* large: not on the stack */

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double since_ms(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) * 1e-6;
}

static void finish(struct gen *g, int code)
{
	g->phase = P_DONE;
	g->code = code;
	kw_loop_stop(&g->n->loop, 0);
}

static void fetch_next(struct gen *g);
static void call_span(struct gen *g);
static void close_sessions(struct gen *g, uint32_t from_span, bool graceful);
static void embed(struct gen *g);

/* ---- the records ---------------------------------------------------------------------- */

/* A dictionary subkey that is a msgpack str (a base58 PeerID). Return: 0; -KW_EBADMSG. */
static int peer_of_subkey(const uint8_t *sub, size_t len, char *out, size_t cap)
{
	struct kw_mp_reader rd;
	struct kw_mp_item it;
	int ret = kw_mp_reader_init(&rd, sub, len, 0);

	if (ret == 0)
		ret = kw_mp_read(&rd, &it);
	if (ret < 0 || it.type != KW_MP_STR || it.len + 1 > cap)
		return -KW_EBADMSG;
	memcpy(out, it.data, it.len);
	out[it.len] = '\0';
	return kw_mp_reader_done(&rd) < 0 ? -KW_EBADMSG : 0;
}

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	struct gen *g = arg;
	struct kw_hm_server_info si;
	char peer[KW_HM_REC_PEER_MAX];
	const char *why = "";

	if (peer_of_subkey(sub, sub_len, peer, sizeof(peer)) < 0 ||
	    kw_hm_server_info_decode(val, val_len, &si, &why) < 0) {
		fprintf(stderr, "%s: %s.%u: an entry that is not a ServerInfo under a PeerID (%s); "
			"skipped\n", PROG, g->prefix, g->fetch_block, why);
		return 0;
	}
	(void)kw_client_route_add(&g->route, peer, &si, g->fetch_block, exp);
	return 0;
}

/*
 * The spans before `cur` stay when routing again; a fresh read of the records rebuilds the
 * server table, so they are found again by PeerID. One that is gone from the records
 * restarts the route from the first block (new sessions then replay from the embeddings).
 */
static void keep_spans(struct gen *g)
{
	for (uint32_t k = 0; k < g->cur; k++) {
		uint32_t i = 0;

		while (i < g->route.n_srv && strcmp(g->route.srv[i].peer, g->span_peer[k]))
			i++;
		if (i == g->route.n_srv) {
			if (g->sessions)
				close_sessions(g, 0, false);
			else
				embed(g);   /* the step starts again from its first block */
			g->cur = 0;
			return;
		}
		g->span[k].srv = i;
	}
}

static void plan(struct gen *g)
{
	uint32_t n = 0, gap = 0, from, keep;
	int ret;

	if (g->reroute)
		keep_spans(g);
	keep = g->reroute ? g->cur : 0;
	from = keep ? g->span[keep].start : g->first;
	ret = kw_client_route_plan(&g->route, from, g->end, wall_now(), g->span + keep,
				   KW_CLIENT_SPANS_MAX - keep, &n, &gap);

	if (ret < 0) {
		if (++g->route_tries >= ROUTE_TRIES) {
			fprintf(stderr, "%s: no route: %s (%u server%s known, %u banned)\n", PROG,
				ret == -KW_ENOENT ? "no ONLINE server that is not banned holds "
				"that block" : kw_strerror(ret), g->route.n_srv,
				g->route.n_srv == 1 ? "" : "s", g->route.n_ban);
			if (ret == -KW_ENOENT)
				fprintf(stderr, "%s: the first block without a server: %s.%u\n", PROG,
					g->prefix, gap);
			finish(g, 1);
			return;
		}
		/* wait for servers to announce, or a ban to end, and read the records again */
		g->phase = P_FETCH;
		g->fetch_block = UINT32_MAX;
		kw_timer_start(&g->n->loop, &g->timer, RETRY_MS);
		return;
	}
	g->route_tries = 0;
	g->n_span = keep + n;
	for (uint32_t i = keep; i < g->n_span; i++)
		memcpy(g->span_peer[i], g->route.srv[g->span[i].srv].peer, KW_HM_REC_PEER_MAX);
	fprintf(stderr, "%s: route for blocks %u:%u:", PROG, from, g->end);
	for (uint32_t i = keep; i < g->n_span; i++)
		fprintf(stderr, " %u:%u@%.16s..", g->span[i].start, g->span[i].end,
			g->route.srv[g->span[i].srv].peer);
	fprintf(stderr, " (%u hop%s)\n", n, n == 1 ? "" : "s");
	g->phase = P_CALL;
	if (!g->reroute)
		g->cur = 0;
	g->reroute = false;
	call_span(g);
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct gen *g = user;
	const char *why;

	(void)d;
	if (err < 0)
		fprintf(stderr, "%s: get %s.%u: %s\n", PROG, g->prefix, g->fetch_block,
			err == -KW_ENOTCONN ? "no node answered" : kw_strerror(err));
	else if (v->type == KW_HM_DHT_FOUND_DICTIONARY &&
		 kw_hm_dict_walk(v->value, v->len, on_entry, g, &why) < 0)
		fprintf(stderr, "%s: %s.%u: not a dictionary (%s)\n", PROG, g->prefix,
			g->fetch_block, why);
	g->fetch_block++;
	if (g->fetch_block >= g->end)
		plan(g);
	else
		fetch_next(g);
}

static void fetch_next(struct gen *g)
{
	struct kw_hm_dhtid key;
	char text[KW_HM_REC_UID_MAX];
	int ret;

	if (g->fetch_block == UINT32_MAX) {     /* a fresh read of every block */
		kw_client_route_clear(&g->route);
		g->fetch_block = g->first;
	}
	ret = kw_hm_block_uid(g->prefix, g->fetch_block, text, sizeof(text));
	if (ret >= 0)
		ret = kw_hm_dhtid_of_str(text, (size_t)ret, &key);
	if (ret >= 0)
		ret = kw_hm_dht_get(g->d, &key, true, on_get, g);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot read %s.%u: %s\n", PROG, g->prefix, g->fetch_block,
			kw_strerror(ret));
		finish(g, 1);
	}
}

/* ---- one step ---------------------------------------------------------------------------- */

static void embed(struct gen *g)
{
	for (size_t t = 0; t < g->n_tok; t++)
		memcpy(g->hs + t * g->H, g->m.embed + (size_t)g->tok[t] * g->H,
		       g->H * sizeof(float));
}

/* The span's server failed: ban it and route blocks from this span on again. */
static void span_failed(struct gen *g, const char *what)
{
	const char *peer = g->route.srv[g->span[g->cur].srv].peer;
	const struct kw_client_ban *b = NULL;

	kw_client_ban(&g->route, peer, wall_now());
	for (uint32_t i = 0; i < g->route.n_ban; i++)
		if (!strcmp(g->route.ban[i].peer, peer))
			b = &g->route.ban[i];
	g->failures++;
	g->reroutes++;
	fprintf(stderr, "%s: blocks %u:%u on %s failed: %s; banned for %.1f s, routing blocks "
		"%u:%u again\n", PROG, g->span[g->cur].start, g->span[g->cur].end, peer, what,
		b ? b->until - wall_now() : 0.0, g->span[g->cur].start, g->end);
	if (g->sessions)
		close_sessions(g, g->cur, false);   /* the new route replays into new ones */
	g->reroute = true;
	plan(g);
}

/* The next token's pass: every token so far through the chain from its first span. */
static void step(struct gen *g)
{
	clock_gettime(CLOCK_MONOTONIC, &g->step_t0);
	g->phase = P_CALL;
	g->cur = 0;
	if (g->sessions) {
		/* the new positions' embeddings enter block `first` */
		for (size_t t = g->pos0; t < g->n_tok; t++)
			memcpy(g->hist + t * g->H, g->m.embed + (size_t)g->tok[t] * g->H,
			       g->H * sizeof(float));
	} else {
		embed(g);
	}
	call_span(g);
}

/* The inputs at block boundary b (first .. end), position 0. */
static float *hist_at(struct gen *g, uint32_t b)
{
	return g->hist + (size_t)(b - g->first) * (g->n_prompt + g->n_gen) * g->H;
}

static void next_token(struct gen *g)
{
	const float *last = g->sessions ? hist_at(g, g->end) + (g->n_tok - 1) * g->H :
					  g->hs + (g->n_tok - 1) * g->H;
	uint32_t t;
	int ret;

	kw_rms_norm(last, g->m.norm, g->H, (float)g->m.d.eps, g->mc.hn);
	ret = kw_lin_forward(&g->mc.blk.ex, &g->m.head, g->mc.hn, 1, g->logits);
	if (ret < 0) {
		fprintf(stderr, "%s: lm_head: %s\n", PROG, kw_strerror(ret));
		finish(g, 1);
		return;
	}
	t = kw_argmax(g->logits, g->V, NULL);
	g->pos0 = g->n_tok;                /* every session holds the positions so far */
	g->tok[g->n_tok++] = t;
	printf("%u\n", t);
	fflush(stdout);
	fprintf(stderr, "%s: token %zu of %zu: %u (%.1f ms, %u hop%s)\n", PROG,
		g->n_tok - g->n_prompt, g->n_gen, t, since_ms(&g->step_t0), g->n_span,
		g->n_span == 1 ? "" : "s");
	if (g->n_tok - g->n_prompt == g->n_gen) {
		fprintf(stderr, "%s: %zu tokens in %.1f ms, %u failure%s, %u re-route%s\n", PROG,
			g->n_gen, since_ms(&g->t0), g->failures, g->failures == 1 ? "" : "s",
			g->reroutes, g->reroutes == 1 ? "" : "s");
		if (g->sessions)
			close_sessions(g, 0, true);
		finish(g, 0);
		return;
	}
	if (g->step_delay_ms) {
		g->phase = P_PAUSE;
		kw_timer_start(&g->n->loop, &g->timer, g->step_delay_ms);
		return;
	}
	step(g);
}

static void on_answer(const struct kw_hm_result *r, void *user)
{
	struct gen *g = user;
	static char text[512];
	int ret;

	if (g->phase != P_CALL)
		return;
	if (r->err < 0) {
		span_failed(g, r->err == -KW_ENOPROTO ? "the peer serves no Petals rpc_forward" :
			    kw_strerror(r->err));
		return;
	}
	if (r->remote_error) {
		kw_hm_error_text(r->data, r->len, text, sizeof(text));
		span_failed(g, text);
		return;
	}
	ret = kw_client_answer_decode(&g->codec, r->data, r->len, g->n_tok, g->H, g->hs);
	if (ret < 0) {
		span_failed(g, ret == -KW_ERANGE ? "the answer holds a non-finite value" :
			    "the answer is not hidden states of the shape sent");
		return;
	}
	kw_client_unban(&g->route, g->route.srv[g->span[g->cur].srv].peer);
	if (++g->cur < g->n_span)
		call_span(g);
	else
		next_token(g);
}

/* An answer of span `cur` (hidden states of positions from .. n_tok - 1) into dst. */
static int take_answer(struct gen *g, const uint8_t *msg, size_t len, size_t rows, float *dst)
{
	return kw_client_answer_decode(&g->codec, msg, len, rows, g->H, dst);
}

static int on_sess_message(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct sess *ss = arg;
	struct gen *g = ss->g;
	const struct kw_client_span *sp = &g->span[g->cur];
	int ret;

	if (ss->st != st || !ss->waiting || g->phase != P_CALL || &g->ss[g->cur] != ss)
		return 0;   /* an answer nobody waits for (a cancelled step) */
	ss->waiting = false;
	ret = take_answer(g, msg, len, g->n_tok - g->from, hist_at(g, sp->end) + g->from * g->H);
	if (ret < 0) {
		span_failed(g, ret == -KW_ERANGE ? "the answer holds a non-finite value" :
			    "the answer is not hidden states of the shape sent");
		return 0;
	}
	ss->steps++;
	ss->fresh = false;
	kw_client_unban(&g->route, g->route.srv[sp->srv].peer);
	if (++g->cur < g->n_span)
		call_span(g);
	else
		next_token(g);
	return 0;
}

static void on_sess_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r,
			 void *arg)
{
	struct sess *ss = arg;
	struct gen *g = ss->g;
	bool waited = ss->waiting;
	static char why[KW_HM_STREAM_TEXT_MAX + 32];

	if (ss->st != st)
		return;     /* closed by us */
	ss->st = NULL;
	ss->waiting = false;
	if (!waited || g->phase != P_CALL)
		return;     /* the next step opens a new session (and finds out) */
	if (r->remote_error)
		snprintf(why, sizeof(why), "%s", r->text);
	else
		snprintf(why, sizeof(why), "the session ended: %s",
			 r->err ? kw_strerror(r->err) : "closed by the server");
	span_failed(g, why);
}

static const struct kw_hm_stream_ops sess_ops = {
	.on_message = on_sess_message,
	.on_done = on_sess_done,
};

static void close_sessions(struct gen *g, uint32_t from_span, bool graceful)
{
	for (uint32_t i = from_span; i < KW_CLIENT_SPANS_MAX; i++) {
		struct kw_hm_stream *st = g->ss[i].st;

		g->ss[i].st = NULL;
		g->ss[i].waiting = false;
		if (st && graceful)
			(void)kw_hm_stream_end(st);   /* a request without tensors: not needed */
		else if (st)
			(void)kw_hm_stream_cancel(st);
	}
}

/* One inference step on span `cur`: a new session gets the whole history (Petals replays
 * it into the replacement of a failed server), an open one the new positions. */
static void send_step(struct gen *g, struct kw_conn *c)
{
	const struct kw_client_span *sp = &g->span[g->cur];
	struct sess *ss = &g->ss[g->cur];
	uint32_t shape[3];
	char step_id[32];
	long len;
	int ret = 0;

	if (!ss->st) {
		if (!c) {
			span_failed(g, "no connection");
			return;
		}
		ret = kw_hm_stream_open(g->hm, c, KW_SERVE_PT_INFERENCE, &sess_ops, ss,
					g->timeout_ms, &ss->st);
		if (ret < 0) {
			ss->st = NULL;
			span_failed(g, ret == -KW_ENOPROTO ? "the peer serves no rpc_inference" :
				    kw_strerror(ret));
			return;
		}
		ss->g = g;
		ss->fresh = true;
		ss->steps = 0;
		ss->id = ++g->sess_ids;
	}
	g->from = ss->fresh ? 0 : g->pos0;
	shape[0] = 1;
	shape[1] = (uint32_t)(g->n_tok - g->from);
	shape[2] = (uint32_t)g->H;
	snprintf(step_id, sizeof(step_id), "kw-%u-%u", ss->id, ss->steps);
	if (kw_client_chain_uid(g->prefix, sp->start, sp->end, g->uid, sizeof(g->uid)) < 0) {
		span_failed(g, "the chain's uid is too long");
		return;
	}
	len = kw_client_step_encode(g->uid, shape, hist_at(g, sp->start) + g->from * g->H,
				    (g->n_tok - g->from) * g->H,
				    ss->fresh ? (uint32_t)(g->n_prompt + g->n_gen) : 0, step_id,
				    g->req, g->req_cap);
	ret = len < 0 ? (int)len : kw_hm_stream_send(ss->st, g->req, (size_t)len);
	if (ret < 0) {
		span_failed(g, ret == -KW_EAGAIN ? "the session's send buffer is full" :
			    kw_strerror(ret));
		return;
	}
	ss->waiting = true;
}

static void send_call(struct gen *g, struct kw_conn *c)
{
	const struct kw_client_span *s = &g->span[g->cur];
	uint32_t shape[3] = { 1, (uint32_t)g->n_tok, (uint32_t)g->H };
	long len;
	int ret;

	if (g->sessions) {
		send_step(g, c);
		return;
	}
	if (kw_client_chain_uid(g->prefix, s->start, s->end, g->uid, sizeof(g->uid)) < 0) {
		span_failed(g, "the chain's uid is too long");
		return;
	}
	len = kw_client_req_encode(g->uid, shape, 3, g->hs, g->n_tok * g->H, true, g->req,
				   g->req_cap);
	ret = len < 0 ? (int)len : kw_hm_call(g->hm, c, KW_SERVE_PT_FORWARD, g->req,
					      (size_t)len, g->timeout_ms, on_answer, g);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot call %s: %s\n", PROG, KW_SERVE_PT_FORWARD,
			kw_strerror(ret));
		finish(g, 1);
	}
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct gen *g = user;

	(void)sw;
	if (g->phase != P_CALL)
		return;
	if (err < 0) {
		g->resolving = false;
		span_failed(g, g->res.why[0] ? g->res.why : kw_strerror(err));
		return;
	}
	if (g->resolving)
		fprintf(stderr, "%s: %s found over /ipfs/kad/1.0.0 at %s\n", PROG,
			g->route.srv[g->span[g->cur].srv].peer, g->res.addr[g->res.next - 1]);
	g->resolving = false;
	send_call(g, c);
}

static void call_span(struct gen *g)
{
	const char *peer = g->route.srv[g->span[g->cur].srv].peer;
	struct kw_conn *c;
	int ret;

	if (g->sessions && g->ss[g->cur].st) {
		send_step(g, NULL);     /* the session's stream carries the step */
		return;
	}
	ret = kw_client_resolve(&g->res, peer, g->peer_addr, g->n_peer_addr, on_dial, g, &c);
	g->resolving = ret == 0 && g->res.state != KW_CLIENT_RES_IDLE;
	if (ret == 1)
		send_call(g, c);
	else if (ret < 0)
		span_failed(g, g->res.why[0] ? g->res.why : ret == -KW_EINVAL ?
			    "its PeerID does not parse" : kw_strerror(ret));
}

/* ---- the node ------------------------------------------------------------------------------ */

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct gen *g = t->arg;
	struct kw_hm_dht_contact any;
	struct kw_hm_dhtid self;

	if (g->phase == P_FETCH) {
		fetch_next(g);
		return;
	}
	if (g->phase == P_PAUSE) {
		step(g);
		return;
	}
	memset(&self, 0, sizeof(self));
	if (kw_hm_rt_nearest(kw_hm_dht_rt(g->d), &self, 1, NULL, &any) == 0 ||
	    kw_hm_dht_ops_busy(g->d)) {
		if (kw_loop_now(l) < g->deadline_ms) {
			kw_timer_start(l, t, POLL_MS);
			return;
		}
		if (kw_hm_rt_nearest(kw_hm_dht_rt(g->d), &self, 1, NULL, &any) == 0) {
			fprintf(stderr, "%s: could not join the Hivemind DHT within %u ms\n", PROG,
				g->wait_ms);
			finish(g, 1);
			return;
		}
	}
	g->phase = P_FETCH;
	g->fetch_block = UINT32_MAX;
	clock_gettime(CLOCK_MONOTONIC, &g->t0);
	g->step_t0 = g->t0;
	fetch_next(g);
}

static int read_tokens(struct gen *g, const char *path)
{
	static char buf[TOKENS_MAX * 16];
	FILE *f = fopen(path, "r");
	char err[160];
	size_t len;

	if (!f) {
		fprintf(stderr, "%s: cannot open %s: %s\n", PROG, path, strerror(errno));
		return -1;
	}
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (len == sizeof(buf)) {
		fprintf(stderr, "%s: %s: larger than %zu bytes\n", PROG, path, sizeof(buf) - 1);
		return -1;
	}
	if (kw_client_tokens_parse(buf, len, (uint32_t)g->V, g->tok, TOKENS_MAX, &g->n_prompt,
				   err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", PROG, path, err);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode generate --model DIR --prompt-tokens FILE -n N [--model-prefix P]\n"
		"                       --bootstrap ADDR... [--peer ADDR]... [--forward]\n"
		"                       [--timeout-ms MS] [--wait-ms MS] [--step-delay-ms MS]\n"
		"                       [--config FILE]\n"
		"                       [--data-dir DIR]\n"
		"  Greedy decoding through Petals servers found on the Hivemind DHT: every block\n"
		"  runs remotely in rpc_inference sessions (--forward: rpc_forward of the whole\n"
		"  prefix per token), embeddings, final norm and lm_head here from DIR (the\n"
		"  checkpoint the servers hold). FILE: token IDs, one\n"
		"  per line. P: the model's dht_prefix (default DIR's last component, '.' -> '-').\n"
		"  --peer ADDR: a server's address with /p2p/ (bootstrap peers count too); the\n"
		"  others are found by PeerID over /ipfs/kad/1.0.0 from the bootstrap peers.\n"
		"  --step-delay-ms: a pause between tokens (0), for demos of a failing server.\n"
		"  Prints the N generated token IDs, one per line; progress on stderr.\n");
}

int kw_cmd_generate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "model-prefix", required_argument, NULL, 'p' },
		{ "prompt-tokens", required_argument, NULL, 'T' },
		{ "forward", no_argument, NULL, 'F' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "peer", required_argument, NULL, 'P' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "step-delay-ms", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct kw_config cfg;
	static char prefix[KW_SERVE_UID_MAX + 1];
	struct gen *g = &g_gen;
	const char *model = NULL, *tokens = NULL, *config = NULL,
		   *data_dir = NULL;
	const char *boot[KW_CONFIG_BOOTSTRAP_MAX];
	int n_boot = 0, o, code = 1;
	uint32_t n_gen = 0;
	struct kw_app_transient t;
	struct kw_arena meta, wa, ca;
	struct kw_ckpt ck;
	struct kw_hm_limits hl;
	struct kw_hm_stream_limits sl;
	void *meta_mem = NULL, *wmem = NULL, *cmem = NULL;
	size_t wb, cb;
	char err[512];
	bool ck_open = false, t_open = false;

	memset(g, 0, sizeof(*g));
	g->sessions = true;
	g->timeout_ms = 10000;
	g->wait_ms = 10000;
	optind = 1;
	while ((o = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
		switch (o) {
		case 'm': model = optarg; break;
		case 'p': g->prefix = optarg; break;
		case 'T': tokens = optarg; break;
		case 'F': g->sessions = false; break;
		case 'c': config = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'b':
		case 'P':
			if (g->n_peer_addr == PEERS_MAX || (o == 'b' &&
							    n_boot == KW_CONFIG_BOOTSTRAP_MAX)) {
				fprintf(stderr, "%s: too many peers\n", PROG);
				return 2;
			}
			if (o == 'b')
				boot[n_boot++] = optarg;
			g->peer_addr[g->n_peer_addr++] = optarg;
			break;
		case 'n':
			if (kw_config_parse_u32(optarg, 1, TOKENS_MAX, &n_gen) < 0) {
				fprintf(stderr, "%s: -n must be 1..%d\n", PROG, TOKENS_MAX);
				return 2;
			}
			break;
		case 't':
		case 'w':
		case 'S':
			if (kw_config_parse_u32(optarg, o == 'S' ? 0 : 1, 600000,
						o == 't' ? &g->timeout_ms : o == 'w' ? &g->wait_ms :
						&g->step_delay_ms) < 0) {
				fprintf(stderr, "%s: --%s must be %s..600000\n", PROG,
					o == 't' ? "timeout-ms" : o == 'w' ? "wait-ms" :
					"step-delay-ms", o == 'S' ? "0" : "1");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !model || !tokens || !n_gen) {
		usage(stderr);
		return 2;
	}
	kw_config_defaults(&cfg);
	if (config && kw_config_load(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", PROG, config, err);
		return 2;
	}
	if (data_dir && kw_config_set(&cfg, "data_dir", data_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return 2;
	}
	if (n_boot) {
		cfg.n_hivemind_bootstrap = 0;
		for (int i = 0; i < n_boot; i++)
			if (kw_config_set(&cfg, "hivemind_bootstrap", boot[i], err,
					  sizeof(err)) < 0) {
				fprintf(stderr, "%s: %s\n", PROG, err);
				return 2;
			}
	}
	for (int i = 0; i < cfg.n_hivemind_bootstrap && !n_boot && g->n_peer_addr < PEERS_MAX;
	     i++)
		g->peer_addr[g->n_peer_addr++] = cfg.hivemind_bootstrap[i];
	if (!cfg.n_hivemind_bootstrap) {
		fprintf(stderr, "%s: give a Hivemind DHT peer with --bootstrap\n", PROG);
		return 2;
	}

	/* the model: start-up allocation, sized from its config */
	meta_mem = malloc(4u << 20);
	if (!meta_mem)
		goto oom;
	kw_arena_init(&meta, meta_mem, 4u << 20);
	if (kw_ckpt_open(&ck, model, &meta, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		code = 2;
		goto out;
	}
	ck_open = true;
	wb = kw_llama_model_bytes(&ck.cfg, 1);
	wmem = wb ? malloc(wb) : NULL;
	if (!wmem)
		goto oom;
	kw_arena_init(&wa, wmem, wb);
	if (kw_llama_model_load(&g->m, &ck, 1, &wa, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		goto out;
	}
	g->H = g->m.d.hidden;
	g->V = g->m.vocab;
	g->first = 0;
	g->end = (uint32_t)g->m.layers;
	if (!g->prefix) {
		kw_client_prefix_of(model, prefix, sizeof(prefix));   /* the servers' rule */
		g->prefix = prefix;
	}
	if (kw_hm_prefix_check(g->prefix) < 0) {
		fprintf(stderr, "%s: '%s' is not a Petals dht_prefix (no '.' or space)\n", PROG,
			g->prefix);
		code = 2;
		goto out;
	}
	if (read_tokens(g, tokens) < 0) {
		code = 2;
		goto out;
	}
	if (g->n_prompt + n_gen > TOKENS_MAX) {
		fprintf(stderr, "%s: prompt and -n exceed %d tokens\n", PROG, TOKENS_MAX);
		code = 2;
		goto out;
	}
	g->n_tok = g->n_prompt;
	g->n_gen = n_gen;
	kw_hm_limits_default(&hl);
	kw_hm_stream_limits_default(&sl);
	/* a replay sends every position at once; the servers' own buffers bound it too */
	sl.buf_bytes = (uint32_t)KW_MAX((size_t)sl.buf_bytes,
					(g->n_prompt + n_gen) * g->H * sizeof(float) + 4096);
	sl.streams_out = KW_MAX(sl.streams_out, 2u * (g->end - g->first) + 2);
	g->req_cap = KW_MAX(hl.buf_bytes, sl.buf_bytes);
	if (!g->sessions && (g->n_prompt + n_gen) * g->H * sizeof(float) + 512 > hl.buf_bytes)
		fprintf(stderr, "%s: warning: %zu tokens of %zu floats exceed the %u-byte call "
			"buffer (KW_NET_HIVEMIND_CALL_BUF_BYTES) before the end\n", PROG,
			g->n_prompt + n_gen, g->H, hl.buf_bytes);
	if (g->sessions) {
		g->hist = malloc((size_t)(g->end - g->first + 1) * (g->n_prompt + n_gen) * g->H *
				 sizeof(float));
		if (!g->hist)
			goto oom;
		for (size_t i = 0; i < g->n_prompt; i++)
			memcpy(g->hist + i * g->H, g->m.embed + (size_t)g->tok[i] * g->H,
			       g->H * sizeof(float));
	}
	cb = kw_llama_model_ctx_bytes(&g->m, 1, 1, 1);
	cmem = malloc(cb);
	g->hs = malloc((g->n_prompt + n_gen) * g->H * sizeof(float));
	g->logits = malloc(g->V * sizeof(float));
	g->req = malloc(g->req_cap);
	if (!cmem || !g->hs || !g->logits || !g->req)
		goto oom;
	kw_arena_init(&ca, cmem, cb);
	if (kw_llama_model_ctx_init(&g->mc, &g->m, NULL, NULL, 1, 1, &ca) < 0 ||
	    kw_codec_init(&g->codec, KW_SIMD_AUTO) < 0) {
		fprintf(stderr, "%s: cannot set up the local compute\n", PROG);
		goto out;
	}
	kw_client_route_init(&g->route, 2.0, 60.0);

	/* the node: a client-mode Hivemind DHT peer */
	if (kw_app_transient_open(&t, PROG, &cfg, (size_t)64 << 20) < 0)
		goto out;
	t_open = true;
	g->n = t.n;
	g->sw = t.sw;
	/* servers not given with --peer are resolved by PeerID, as p2pd does (client mode);
	 * the Hivemind DHT's own lookups reach the peers its answers name the same way */
	if (kw_app_transient_kad(&t, PROG, true,
				 (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
				 cfg.n_hivemind_bootstrap, &g->kad) < 0)
		goto out;
	kw_client_resolver_init(&g->res, g->sw, g->kad);
	if (kw_app_hm_start(t.n, t.sw, t.id, g->kad, true,
			    (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
			    cfg.n_hivemind_bootstrap, &g->hm, &g->d, &g->st) < 0) {
		fprintf(stderr, "%s: cannot start the Hivemind DHT\n", PROG);
		goto out;
	}
	if (g->sessions && kw_hm_stream_setup(g->hm, &sl) < 0) {
		fprintf(stderr, "%s: cannot set up the session streams\n", PROG);
		goto out;
	}
	embed(g);
	kw_timer_init(&g->timer, on_tick, g);
	g->deadline_ms = kw_loop_now(&t.n->loop) + g->wait_ms;
	kw_timer_start(&t.n->loop, &g->timer, 0);
	g->code = 1;
	kw_loop_run(&t.n->loop);
	kw_timer_cancel(&t.n->loop, &g->timer);
	for (int i = 0; g->sessions && i < 10; i++)
		kw_loop_run_once(&t.n->loop, 10);   /* the sessions' ends go out */
	code = g->code;
	goto out;
oom:
	fprintf(stderr, "%s: out of memory\n", PROG);
out:
	if (g->st)
		kw_app_hm_stop(g->st);
	kw_app_transient_kad_close(g->kad);
	if (t_open)
		kw_app_transient_close(&t);
	if (ck_open)
		kw_ckpt_close(&ck);
	free(meta_mem);
	free(wmem);
	free(cmem);
	free(g->hs);
	free(g->logits);
	free(g->req);
	free(g->hist);
	return code;
}
