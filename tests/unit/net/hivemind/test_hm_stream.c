/*
 * Hivemind stream calls on the swarm (net/hivemind/stream_rpc.c): node b serves stream
 * handlers, a (and c, a third caller) call them, on the simulated network (hm_pair.h).
 * Echo of 1, 5 and 50 messages (the last one through send-buffer back-pressure), the
 * prefetch bound behind a handler that keeps its message, an error frame mid-stream as the
 * text a Python caller raises, the idle deadline, a caller that cancels or half-closes,
 * per-peer limits, and bad frames on a raw stream (oversized, unknown marker) that reset
 * only that stream. Every test ends with a pool and socket leak check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hm_pair.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#define ECHO "Test.rpc_echo"      /* echoes every request, ends after END_OF_STREAM */
#define HOLD "Test.rpc_hold"      /* keeps every message until the test releases it */
#define FAIL "Test.rpc_fail"      /* echoes two, then fails with ValueError('boom') */
#define COUNT "Test.rpc_count"    /* unary-in, stream-out: request {n} -> n responses */
#define IDLE_MS 1000
#define PREFETCH 5
#define BUF 4096

static const struct kw_hm_limits hm_limits = {
	.calls_in = 2, .calls_per_peer = 2, .calls_out = 2, .buf_bytes = 1024, .timeout_ms = 2000,
};
static const struct kw_hm_stream_limits sx_limits = {
	.streams_in = 4, .streams_per_peer = 2, .streams_out = 4, .buf_bytes = BUF,
	.prefetch = PREFETCH, .idle_ms = IDLE_MS,
};

/* A call we make: what it sent and what came back. */
struct caller {
	struct kw_hm_stream *st;
	int n_req, sent;          /* requests to send, sent so far (END_OF_STREAM after) */
	size_t req_len;
	uint32_t idle_ms;         /* 0: the default */
	int got;                  /* responses, checked in order */
	bool in_order;
	int done, err;
	bool remote_error;
	char text[KW_HM_STREAM_TEXT_MAX];
	uint64_t messages;
};

struct fx {
	struct kw_hm_pair p;
	struct caller cl[4];
	/* server side */
	int requests, ends, cancels, cancel_reason;
	struct kw_hm_stream *held_st;
	int held;                 /* messages the HOLD handler keeps */
	uint8_t echo_pending[BUF];
	size_t echo_len;
	struct kw_hm_stream *echo_waiting;
};

static struct fx *g;

/* Request i of a call: i, then filler up to len bytes. */
static void make_msg(uint8_t *m, size_t len, int i)
{
	for (size_t k = 0; k < len; k++)
		m[k] = (uint8_t)(i + 7 * k);
}

/* ---- handlers on b ------------------------------------------------------------------------ */

static int echo_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	int r;

	g->requests++;
	r = kw_hm_stream_send(st, msg, len);
	if (r == -KW_EAGAIN) {  /* keep it: on_writable sends it and takes the next */
		memcpy(g->echo_pending, msg, len);
		g->echo_len = len;
		g->echo_waiting = st;
		return KW_HM_STREAM_HOLD;
	}
	assert_int_equal(r, 0);
	return 0;
}

static void echo_writable(struct kw_hm_stream *st, void *arg)
{
	if (g->echo_waiting != st)
		return;
	assert_int_equal(kw_hm_stream_send(st, g->echo_pending, g->echo_len), 0);
	g->echo_waiting = NULL;
	assert_int_equal(kw_hm_stream_next(st), 0);
}

static void end_now(struct kw_hm_stream *st, void *arg)
{
	g->ends++;
	assert_int_equal(kw_hm_stream_end(st), 0);
}

static void note_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	g->cancels++;
	g->cancel_reason = reason;
	if (g->held_st == st)
		g->held_st = NULL;
}

static const struct kw_hm_stream_ops echo_ops = {
	.on_message = echo_msg, .on_end = end_now, .on_writable = echo_writable,
	.on_cancel = note_cancel,
};

static int hold_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	g->requests++;
	g->held++;
	g->held_st = st;
	return KW_HM_STREAM_HOLD;
}

static void hold_end(struct kw_hm_stream *st, void *arg)
{
	g->ends++;
}

static const struct kw_hm_stream_ops hold_ops = {
	.on_message = hold_msg, .on_end = hold_end, .on_cancel = note_cancel,
};

static int failing_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	if (++g->requests == 3) {
		assert_int_equal(kw_hm_stream_error(st, "ValueError('boom')"), 0);
		return 0;
	}
	assert_int_equal(kw_hm_stream_send(st, msg, len), 0);
	return 0;
}

static const struct kw_hm_stream_ops fail_ops = {
	.on_message = failing_msg, .on_end = end_now, .on_cancel = note_cancel,
};

/* hivemind's unary-input handlers answer only after END_OF_STREAM. */
static int count_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	g->requests++;
	assert_int_equal(len, 1);
	kw_hm_stream_set_user(st, (void *)(uintptr_t)msg[0]);
	return 0;
}

static void count_end(struct kw_hm_stream *st, void *arg)
{
	int n = (int)(uintptr_t)kw_hm_stream_user(st);

	g->ends++;
	for (int i = 0; i < n; i++) {
		uint8_t m[3] = { 0x08, (uint8_t)i, 0xaa };

		assert_int_equal(kw_hm_stream_send(st, m, sizeof(m)), 0);
	}
	assert_int_equal(kw_hm_stream_end(st), 0);
}

static const struct kw_hm_stream_ops count_ops = {
	.on_message = count_msg, .on_end = count_end, .on_cancel = note_cancel,
};

/* ---- the caller on a (or c) ---------------------------------------------------------------- */

static void cl_send_more(struct caller *cl)
{
	uint8_t m[BUF];

	while (cl->sent < cl->n_req) {
		int r;

		make_msg(m, cl->req_len, cl->sent);
		r = kw_hm_stream_send(cl->st, m, cl->req_len);
		if (r == -KW_EAGAIN)
			return;  /* on_writable goes on */
		assert_int_equal(r, 0);
		cl->sent++;
	}
	if (cl->sent == cl->n_req) {
		assert_int_equal(kw_hm_stream_end(cl->st), 0);
		cl->sent++;  /* END_OF_STREAM queued */
	}
}

static int cl_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct caller *cl = arg;
	uint8_t want[BUF];

	make_msg(want, cl->req_len, cl->got);
	if (len != cl->req_len || memcmp(msg, want, len) != 0)
		cl->in_order = false;
	cl->got++;
	return 0;
}

static void cl_writable(struct kw_hm_stream *st, void *arg)
{
	cl_send_more(arg);
}

static void cl_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct caller *cl = arg;

	cl->done++;
	cl->err = r->err;
	cl->remote_error = r->remote_error;
	cl->messages = r->messages;
	snprintf(cl->text, sizeof(cl->text), "%s", r->text);
}

static const struct kw_hm_stream_ops cl_ops = {
	.on_message = cl_msg, .on_writable = cl_writable, .on_done = cl_done,
};

/* Opens a call from side `from` to b and queues n requests of len bytes + END_OF_STREAM. */
static int start_call(struct kw_hm_side *from, const char *name, struct caller *cl, int n,
		      size_t len)
{
	int r;

	cl->n_req = n;
	cl->req_len = len;
	cl->in_order = true;
	r = kw_hm_stream_open(from->hm, from->conn, name, &cl_ops, cl, cl->idle_ms, &cl->st);
	if (r == 0)
		cl_send_more(cl);
	return r;
}

/* ---- plumbing ------------------------------------------------------------------------------ */

static void pump(int passes)
{
	kw_hm_pair_pump(&g->p, passes);
}

static int setup_n(int sides)
{
	g = calloc(1, sizeof(*g));
	if (!g || kw_hm_pair_init(&g->p, sides, &hm_limits, 32 * 1024) < 0)
		return -1;
	if (kw_hm_stream_setup(g->p.a.hm, &sx_limits) < 0 ||
	    kw_hm_stream_setup(g->p.b.hm, &sx_limits) < 0 ||
	    (sides == 3 && kw_hm_stream_setup(g->p.c.hm, &sx_limits) < 0))
		return -1;
	if (kw_hm_register_stream(g->p.b.hm, ECHO, &echo_ops, NULL, 0) < 0 ||
	    kw_hm_register_stream(g->p.b.hm, HOLD, &hold_ops, NULL, 0) < 0 ||
	    kw_hm_register_stream(g->p.b.hm, FAIL, &fail_ops, NULL, 0) < 0 ||
	    kw_hm_register_stream(g->p.b.hm, COUNT, &count_ops, NULL, 0) < 0)
		return -1;
	return kw_hm_pair_connect(&g->p);
}

static int setup(void **state)
{
	return setup_n(2);
}

static int setup3(void **state)
{
	return setup_n(3);
}

static int teardown(void **state)
{
	kw_hm_pair_fini(&g->p);
	free(g);
	g = NULL;
	return 0;
}

static void count_used(const struct kw_pool *p, void *arg)
{
	if (!strncmp(p->name, "hm_stream", 9))
		*(size_t *)arg += p->used;
}

/* Stream-call states in use on a node. */
static size_t streams_in_use(struct kw_hm_side *s)
{
	size_t n = 0;

	kw_node_pools_foreach(s->t->node, count_used, &n);
	return n;
}

static void echo_n(int n, size_t len)
{
	struct kw_hm_stream_stats st;

	assert_int_equal(start_call(&g->p.a, ECHO, &g->cl[0], n, len), 0);
	assert_int_equal(g->cl[0].done, 0);  /* returns at once */
	pump(60 + 4 * n);
	assert_int_equal(g->cl[0].done, 1);
	assert_int_equal(g->cl[0].err, 0);
	assert_false(g->cl[0].remote_error);
	assert_string_equal(g->cl[0].text, "");
	assert_int_equal(g->cl[0].got, n);
	assert_true(g->cl[0].in_order);
	assert_int_equal(g->cl[0].messages, (uint64_t)n);
	assert_int_equal(g->requests, n);
	assert_int_equal(g->ends, 1);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.streams_in, 1);
	assert_int_equal(st.msgs_in, (uint64_t)n);
	assert_int_equal(st.msgs_out, (uint64_t)n);
	pump(20);
	assert_int_equal(streams_in_use(&g->p.a), 0);  /* both sides closed: states back */
	assert_int_equal(streams_in_use(&g->p.b), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_hm_stream_echo_of_one_message(void **state)
{
	echo_n(1, 40);
}

static void test_hm_stream_echo_of_five_messages(void **state)
{
	echo_n(5, 40);
}

static void test_hm_stream_echo_of_fifty_messages_through_back_pressure(void **state)
{
	/* 50 x 309 bytes is about 4 times the 4 KiB send buffers of both sides */
	echo_n(50, 300);
}

static void test_hm_stream_empty_request_stream_is_a_call_too(void **state)
{
	echo_n(0, 0);
}

static void test_hm_stream_unary_in_stream_out(void **state)
{
	uint8_t n = 3;
	struct caller *cl = &g->cl[0];

	cl->in_order = true;
	assert_int_equal(kw_hm_stream_open(g->p.a.hm, g->p.a.conn, COUNT, &cl_ops, cl, 0, &cl->st),
			 0);
	cl->req_len = 3;  /* responses are 3 bytes; content checked below by count only */
	assert_int_equal(kw_hm_stream_send(cl->st, &n, 1), 0);
	assert_int_equal(kw_hm_stream_end(cl->st), 0);
	pump(60);
	assert_int_equal(cl->done, 1);
	assert_int_equal(cl->err, 0);
	assert_int_equal(cl->got, 3);
	assert_int_equal(g->ends, 1);
}

static void test_hm_stream_prefetch_bound_holds_the_sixth_request_back(void **state)
{
	struct caller *cl = &g->cl[0];

	assert_int_equal(start_call(&g->p.a, HOLD, cl, 10, 20), 0);
	pump(80);
	/* The handler keeps request 1; requests 2..6 wait (5, hivemind's max_prefetch); the
	 * rest stays unread in the muxer, END_OF_STREAM included. */
	assert_int_equal(g->held, 1);
	assert_non_null(g->held_st);
	assert_int_equal(kw_hm_stream_buffered(g->held_st), PREFETCH);
	assert_int_equal(g->ends, 0);
	/* Releasing one lets exactly one more in behind the next held message. */
	assert_int_equal(kw_hm_stream_next(g->held_st), 0);
	pump(40);
	assert_int_equal(g->held, 2);
	assert_int_equal(kw_hm_stream_buffered(g->held_st), PREFETCH);
	for (int i = 2; i < 10; i++) {
		assert_int_equal(kw_hm_stream_next(g->held_st), 0);
		pump(40);
	}
	assert_int_equal(g->held, 10);
	assert_int_equal(kw_hm_stream_buffered(g->held_st), 1);  /* END_OF_STREAM */
	assert_int_equal(kw_hm_stream_next(g->held_st), 0);
	pump(20);
	assert_int_equal(g->ends, 1);
	assert_int_equal(kw_hm_stream_end(g->held_st), 0);
	pump(40);
	assert_int_equal(cl->done, 1);
	assert_int_equal(cl->err, 0);
	assert_int_equal(cl->got, 0);
}

static void test_hm_stream_server_error_mid_stream_reaches_the_caller_as_python_text(void **state)
{
	struct caller *cl = &g->cl[0];
	struct kw_hm_stream_stats st;
	char peer[KW_PEER_ID_TEXT_MAX], want[KW_HM_STREAM_TEXT_MAX];

	assert_int_equal(start_call(&g->p.a, FAIL, cl, 5, 10), 0);
	pump(60);
	assert_int_equal(cl->done, 1);
	assert_int_equal(cl->err, 0);
	assert_true(cl->remote_error);
	assert_int_equal(cl->got, 2);  /* the two responses before the error */
	assert_int_equal(kw_peer_id_to_text(kw_swarm_peer_id(g->p.b.sw), peer, sizeof(peer)), 0);
	snprintf(want, sizeof(want), "Failed to call handler `%s` at %s: ValueError('boom')",
		 FAIL, peer);
	assert_string_equal(cl->text, want);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.errors_sent, 1);
	pump(20);
	assert_int_equal(streams_in_use(&g->p.a), 0);
	assert_int_equal(streams_in_use(&g->p.b), 0);
}

static void test_hm_stream_caller_cancel_cancels_the_handler_and_frees_both(void **state)
{
	struct caller *cl = &g->cl[0];
	struct kw_hm_stream_stats st;

	assert_int_equal(start_call(&g->p.a, HOLD, cl, 2, 10), 0);
	pump(40);
	assert_int_equal(g->held, 1);
	assert_int_equal(kw_hm_stream_cancel(cl->st), 0);
	assert_int_equal(cl->done, 1);  /* inside the cancel */
	assert_int_equal(cl->err, -KW_ECANCELED);
	pump(40);
	assert_int_equal(g->cancels, 1);
	assert_int_equal(g->cancel_reason, -KW_ECONNRESET);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.cancelled, 1);
	assert_int_equal(streams_in_use(&g->p.a), 0);
	assert_int_equal(streams_in_use(&g->p.b), 0);
	assert_int_equal(cl->done, 1);  /* exactly once */
}

static void test_hm_stream_idle_deadline_answers_timeout_error(void **state)
{
	struct caller *cl = &g->cl[0];
	struct kw_hm_stream_stats st;

	cl->idle_ms = 10 * IDLE_MS;  /* the server's deadline comes first */
	assert_int_equal(start_call(&g->p.a, HOLD, cl, 1, 10), 0);
	pump(40);
	assert_int_equal(g->held, 1);
	kw_hm_pair_advance(&g->p, IDLE_MS - 10);
	assert_int_equal(g->cancels, 0);
	kw_hm_pair_advance(&g->p, 20);
	assert_int_equal(g->cancels, 1);
	assert_int_equal(g->cancel_reason, -KW_ETIMEDOUT);
	assert_int_equal(cl->done, 1);
	assert_true(cl->remote_error);
	assert_non_null(strstr(cl->text, ": TimeoutError()"));
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.deadlines, 1);
}

static void test_hm_stream_caller_idle_deadline_fails_etimedout(void **state)
{
	struct caller *cl = &g->cl[0];
	int r;

	/* The caller's own deadline: 300 ms, shorter than the server's. */
	r = kw_hm_stream_open(g->p.a.hm, g->p.a.conn, HOLD, &cl_ops, cl, 300, &cl->st);
	assert_int_equal(r, 0);
	assert_int_equal(kw_hm_stream_send(cl->st, (const uint8_t *)"x", 1), 0);
	pump(40);
	kw_hm_pair_advance(&g->p, 301);
	assert_int_equal(cl->done, 1);
	assert_int_equal(cl->err, -KW_ETIMEDOUT);
	assert_int_equal(g->cancels, 1);  /* the reset reached the handler */
}

static void test_hm_stream_caller_half_close_cancels_the_handler(void **state)
{
	struct kw_hm_stream_stats st;
	uint8_t f[KW_HM_FRAME_HDR + 2];
	long n;
	n = kw_hm_frame_encode_msg((const uint8_t *)"hi", 2, f, sizeof(f));
	assert_int_equal(n, (long)sizeof(f));
	kw_hm_pair_send_raw(&g->p, HOLD, f, sizeof(f));
	assert_int_equal(g->held, 1);
	assert_int_equal(kw_stream_close_write(g->p.raw), 0);
	pump(30);
	assert_int_equal(g->cancels, 1);
	assert_int_equal(g->cancel_reason, -KW_ECANCELED);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.cancelled, 1);
}

static void test_hm_stream_per_peer_limit_resets_extra_streams(void **state)
{
	struct kw_hm_stream_stats st;

	assert_int_equal(start_call(&g->p.a, HOLD, &g->cl[0], 1, 4), 0);
	assert_int_equal(start_call(&g->p.a, HOLD, &g->cl[1], 1, 4), 0);
	pump(40);
	assert_int_equal(g->held, 2);
	assert_int_equal(start_call(&g->p.a, ECHO, &g->cl[2], 1, 4), 0);
	pump(40);
	assert_int_equal(g->cl[2].done, 1);
	assert_true(g->cl[2].err < 0);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.refused_limit, 1);
	assert_int_equal(g->cl[0].done, 0);  /* the held calls go on */
}

static void test_hm_stream_out_pool_exhaustion_fails_at_once(void **state)
{
	struct kw_hm_stream *st;

	for (int i = 0; i < 4; i++)
		assert_int_equal(start_call(&g->p.a, ECHO, &g->cl[i], 1, 4), 0);
	assert_int_equal(kw_hm_stream_open(g->p.a.hm, g->p.a.conn, ECHO, &cl_ops, &g->cl[0], 0,
					   &st), -KW_ELIMIT);
	pump(80);
	for (int i = 0; i < 4; i++)
		assert_int_equal(g->cl[i].done, 1);
}

static void test_hm_stream_unknown_name_fails_enoproto(void **state)
{
	assert_int_equal(start_call(&g->p.a, "Nobody.rpc_here", &g->cl[0], 1, 4), 0);
	pump(40);
	assert_int_equal(g->cl[0].done, 1);
	assert_int_equal(g->cl[0].err, -KW_ENOPROTO);
}

static void test_hm_stream_send_larger_than_the_buffer_is_refused(void **state)
{
	static uint8_t big[BUF];

	assert_int_equal(kw_hm_stream_open(g->p.a.hm, g->p.a.conn, ECHO, &cl_ops, &g->cl[0], 0,
					   &g->cl[0].st), 0);
	assert_int_equal(kw_hm_stream_send(g->cl[0].st, big, sizeof(big)), -KW_EMSGSIZE);
	assert_int_equal(kw_hm_stream_cancel(g->cl[0].st), 0);
	pump(40);
}

static void test_hm_stream_register_refuses_duplicates_and_bad_names(void **state)
{
	assert_int_equal(kw_hm_register_stream(g->p.b.hm, ECHO, &echo_ops, NULL, 0), -KW_EEXIST);
	assert_int_equal(kw_hm_register_stream(g->p.b.hm, "", &echo_ops, NULL, 0), -KW_EINVAL);
	assert_int_equal(kw_hm_stream_setup(g->p.b.hm, NULL), -KW_EALREADY);
}

/* After a bad stream from a, the third node c still gets served. */
static void third_caller_is_served(void)
{
	assert_int_equal(start_call(&g->p.c, ECHO, &g->cl[3], 3, 16), 0);
	pump(60);
	assert_int_equal(g->cl[3].done, 1);
	assert_int_equal(g->cl[3].err, 0);
	assert_int_equal(g->cl[3].got, 3);
	assert_true(g->cl[3].in_order);
}

static void test_hm_stream_oversized_frame_resets_the_stream_and_is_counted(void **state)
{
	uint8_t hdr[KW_HM_FRAME_HDR];
	struct kw_hm_stream_stats st;

	/* one byte more than the 4 KiB receive buffer can hold */
	assert_int_equal(kw_hm_frame_encode_header(KW_HM_MARK_MESSAGE, BUF - KW_HM_FRAME_HDR + 1,
						   hdr, sizeof(hdr)), (long)sizeof(hdr));
	kw_hm_pair_send_raw(&g->p, ECHO, hdr, sizeof(hdr));
	assert_int_equal(g->p.raw_closed, 1);
	assert_int_equal(g->p.raw_close_reason, -KW_ECONNRESET);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.oversized, 1);
	assert_int_equal(g->requests, 0);
	third_caller_is_served();
}

static void test_hm_stream_frame_above_the_protocol_cap_is_counted_oversized(void **state)
{
	static const uint8_t hdr[KW_HM_FRAME_HDR] = { 0x00, 0xff, 0xff, 0xff, 0xff,
						      0xff, 0xff, 0xff, 0xff };
	struct kw_hm_stream_stats st;

	kw_hm_pair_send_raw(&g->p, ECHO, hdr, sizeof(hdr));
	assert_int_equal(g->p.raw_closed, 1);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.oversized, 1);
	third_caller_is_served();
}

static void test_hm_stream_unknown_marker_resets_the_stream_and_is_counted(void **state)
{
	static const uint8_t f[] = { 0x02, 0, 0, 0, 0, 0, 0, 0, 1, 0x08 };
	struct kw_hm_stream_stats st;

	kw_hm_pair_send_raw(&g->p, ECHO, f, sizeof(f));
	assert_int_equal(g->p.raw_closed, 1);
	assert_int_equal(g->p.raw_close_reason, -KW_ECONNRESET);
	kw_hm_stream_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.bad_frames, 1);
	assert_int_equal(st.oversized, 0);
	third_caller_is_served();
}

static void test_hm_stream_served_while_another_peer_is_held(void **state)
{
	assert_int_equal(start_call(&g->p.a, HOLD, &g->cl[0], 8, 10), 0);
	pump(40);
	assert_int_equal(g->held, 1);
	third_caller_is_served();
	assert_int_equal(g->cl[0].done, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define T3(fn) cmocka_unit_test_setup_teardown(fn, setup3, teardown)
	const struct CMUnitTest tests[] = {
		T(test_hm_stream_echo_of_one_message),
		T(test_hm_stream_echo_of_five_messages),
		T(test_hm_stream_echo_of_fifty_messages_through_back_pressure),
		T(test_hm_stream_empty_request_stream_is_a_call_too),
		T(test_hm_stream_unary_in_stream_out),
		T(test_hm_stream_prefetch_bound_holds_the_sixth_request_back),
		T(test_hm_stream_server_error_mid_stream_reaches_the_caller_as_python_text),
		T(test_hm_stream_caller_cancel_cancels_the_handler_and_frees_both),
		T(test_hm_stream_idle_deadline_answers_timeout_error),
		T(test_hm_stream_caller_idle_deadline_fails_etimedout),
		T(test_hm_stream_caller_half_close_cancels_the_handler),
		T(test_hm_stream_per_peer_limit_resets_extra_streams),
		T(test_hm_stream_out_pool_exhaustion_fails_at_once),
		T(test_hm_stream_unknown_name_fails_enoproto),
		T(test_hm_stream_send_larger_than_the_buffer_is_refused),
		T(test_hm_stream_register_refuses_duplicates_and_bad_names),
		T3(test_hm_stream_oversized_frame_resets_the_stream_and_is_counted),
		T3(test_hm_stream_frame_above_the_protocol_cap_is_counted_oversized),
		T3(test_hm_stream_unknown_marker_resets_the_stream_and_is_counted),
		T3(test_hm_stream_served_while_another_peer_is_held),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
