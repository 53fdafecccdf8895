/*
 * Hivemind unary RPC on the swarm (net/hivemind/rpc.c): two swarms on the simulated network,
 * one serving handler names ("DHTProtocol.rpc_ping", slash-less as hivemind's), the other
 * calling them. Round trip, the remote's error text, answers given later from the loop, the
 * served call's deadline (answered "TimeoutError()"), the caller's timeout (cancelling the
 * handler), per-peer and pool limits, unknown names, and bad envelopes refused on a raw
 * stream. Time is virtual; every test ends with a pool leak check.
 */
#include <stdlib.h>
#include <string.h>

#include "hm_pair.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#define PING "DHTProtocol.rpc_ping"
#define FAIL "Test.rpc_fail"
#define SLOW "Test.rpc_slow"     /* answered only by the test, or by the deadline */
#define SLOW_DEADLINE_MS 500
#define BIG  "Test.rpc_big"      /* a reply larger than the call buffer */

struct fx {
	struct kw_hm_pair p;       /* a calls b (hm_pair.h) */
	/* server side */
	uint8_t req[256];
	size_t req_len;
	int handled;
	bool caller_was_a;
	struct kw_hm_call *held[8];
	int n_held, cancels, cancel_reason;
	/* client side */
	struct kw_hm_test_result r[8];
};

static struct fx *g;

static const uint8_t ping_resp[] = { 0x12, 0x02, 0x0a, 0x00, 0x28, 0x01 };

/* ---- handlers on b ------------------------------------------------------------------------ */

static void note_request(struct kw_hm_call *call, const uint8_t *req, size_t len)
{
	g->handled++;
	g->req_len = KW_MIN(len, sizeof(g->req));
	if (g->req_len)  /* an empty request may come as NULL */
		memcpy(g->req, req, g->req_len);
	g->caller_was_a = kw_peer_id_equal(kw_conn_peer_id(kw_hm_call_conn(call)),
					   kw_swarm_peer_id(g->p.a.sw));
}

static void ping_fn(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	note_request(call, req, len);
	assert_int_equal(kw_hm_reply(call, ping_resp, sizeof(ping_resp)), 0);
}

static void fail_fn(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	note_request(call, req, len);
	assert_int_equal(kw_hm_reply_error(call, "KeyError('x')"), 0);
}

static void big_fn(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	static const uint8_t big[5000];

	note_request(call, req, len);
	assert_int_equal(kw_hm_reply(call, big, sizeof(big)), -KW_EMSGSIZE);
}

static void slow_fn(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	note_request(call, req, len);
	assert_true(g->n_held < (int)KW_ARRAY_SIZE(g->held));
	g->held[g->n_held++] = call;
}

static void slow_cancel(struct kw_hm_call *call, int reason, void *arg)
{
	for (int i = 0; i < g->n_held; i++)
		if (g->held[i] == call)
			g->held[i] = NULL;
	g->cancels++;
	g->cancel_reason = reason;
}

/* ---- plumbing ------------------------------------------------------------------------------ */

static void pump(int passes)
{
	kw_hm_pair_pump(&g->p, passes);
}

static void advance(uint64_t ms)
{
	kw_hm_pair_advance(&g->p, ms);
}

static const struct kw_hm_limits test_limits = {
	.calls_in = 4, .calls_per_peer = 2, .calls_out = 4, .buf_bytes = 4096, .timeout_ms = 2000,
};

static int setup(void **state)
{
	g = calloc(1, sizeof(*g));
	if (!g || kw_hm_pair_init(&g->p, 2, &test_limits, 32 * 1024) < 0)
		return -1;
	if (kw_hm_register_unary(g->p.b.hm, PING, ping_fn, NULL, NULL, 0) < 0 ||
	    kw_hm_register_unary(g->p.b.hm, FAIL, fail_fn, NULL, NULL, 0) < 0 ||
	    kw_hm_register_unary(g->p.b.hm, SLOW, slow_fn, slow_cancel, NULL, SLOW_DEADLINE_MS) < 0 ||
	    kw_hm_register_unary(g->p.b.hm, BIG, big_fn, NULL, NULL, 0) < 0)
		return -1;
	return kw_hm_pair_connect(&g->p);
}

static int teardown(void **state)
{
	kw_hm_pair_fini(&g->p);
	free(g);
	g = NULL;
	return 0;
}

static int call(const char *name, const char *req, struct kw_hm_test_result *res, uint32_t timeout_ms)
{
	return kw_hm_call(g->p.a.hm, g->p.a.conn, name, (const uint8_t *)req, strlen(req), timeout_ms,
			  kw_hm_test_on_result, res);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_hm_rpc_unary_call_round_trip(void **state)
{
	struct kw_hm_stats st;

	assert_int_equal(call(PING, "ping-request", &g->r[0], 0), 0);
	assert_int_equal(g->r[0].done, 0);  /* returns at once, finishes on the loop */
	pump(40);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, 0);
	assert_false(g->r[0].remote_error);
	assert_int_equal(g->r[0].len, sizeof(ping_resp));
	assert_memory_equal(g->r[0].data, ping_resp, sizeof(ping_resp));
	assert_int_equal(g->handled, 1);
	assert_int_equal(g->req_len, 12);
	assert_memory_equal(g->req, "ping-request", 12);
	assert_true(g->caller_was_a);  /* from the connection, not the envelope */
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.calls_in, 1);
	assert_int_equal(st.replies, 1);
	pump(20);
	assert_int_equal(kw_conn_stream_count(g->p.a.conn), 0);  /* both sides closed the stream */
}

static void test_hm_rpc_remote_error_reaches_the_caller_as_text(void **state)
{
	char text[32];

	assert_int_equal(call(FAIL, "", &g->r[0], 0), 0);
	pump(40);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, 0);
	assert_true(g->r[0].remote_error);
	kw_hm_error_text(g->r[0].data, g->r[0].len, text, sizeof(text));
	assert_string_equal(text, "KeyError('x')");
	assert_int_equal(g->req_len, 0);  /* an empty request is a call too */
}

static void test_hm_rpc_reply_too_large_becomes_an_error_text(void **state)
{
	char text[96];

	assert_int_equal(call(BIG, "", &g->r[0], 0), 0);
	pump(40);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, 0);
	assert_true(g->r[0].remote_error);
	kw_hm_error_text(g->r[0].data, g->r[0].len, text, sizeof(text));
	assert_string_equal(text, "RuntimeError('reply larger than the responder can send')");
}

static void test_hm_rpc_handler_may_answer_later_from_the_loop(void **state)
{
	assert_int_equal(call(SLOW, "later", &g->r[0], 0), 0);
	pump(40);
	assert_int_equal(g->n_held, 1);
	assert_int_equal(g->r[0].done, 0);
	advance(SLOW_DEADLINE_MS - 100);
	assert_int_equal(kw_hm_reply(g->held[0], (const uint8_t *)"done", 4), 0);
	pump(40);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, 0);
	assert_int_equal(g->r[0].len, 4);
	assert_memory_equal(g->r[0].data, "done", 4);
	assert_int_equal(g->cancels, 0);
}

static void test_hm_rpc_missed_deadline_is_answered_timeout_error(void **state)
{
	struct kw_hm_stats st;

	assert_int_equal(call(SLOW, "never", &g->r[0], 0), 0);
	pump(40);
	advance(SLOW_DEADLINE_MS - 1);
	assert_int_equal(g->r[0].done, 0);
	advance(2);
	assert_int_equal(g->cancels, 1);
	assert_int_equal(g->cancel_reason, -KW_ETIMEDOUT);
	assert_null(g->held[0]);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, 0);
	assert_true(g->r[0].remote_error);
	assert_int_equal(g->r[0].len, 14);
	assert_memory_equal(g->r[0].data, "TimeoutError()", 14);
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.deadlines, 1);
}

static void test_hm_rpc_caller_timeout_cancels_the_handler(void **state)
{
	struct kw_hm_stats st;

	assert_int_equal(call(SLOW, "x", &g->r[0], 200), 0);
	pump(40);
	assert_int_equal(g->n_held, 1);
	advance(201);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, -KW_ETIMEDOUT);
	assert_int_equal(g->cancels, 1);  /* the reset reached the server: handler told */
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.cancelled, 1);
	advance(SLOW_DEADLINE_MS);  /* no deadline answer for a call that is gone */
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.deadlines, 0);
}

static void test_hm_rpc_per_peer_limit_resets_extra_calls(void **state)
{
	struct kw_hm_stats st;

	assert_int_equal(call(SLOW, "1", &g->r[0], 0), 0);
	assert_int_equal(call(SLOW, "2", &g->r[1], 0), 0);
	pump(40);
	assert_int_equal(g->n_held, 2);
	assert_int_equal(call(PING, "3", &g->r[2], 0), 0);
	pump(40);
	assert_int_equal(g->r[2].done, 1);
	assert_true(g->r[2].err < 0);
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.refused_limit, 1);
	/* The two held calls are still served. */
	assert_int_equal(kw_hm_reply(g->held[0], NULL, 0), 0);
	assert_int_equal(kw_hm_reply(g->held[1], NULL, 0), 0);
	pump(40);
	assert_int_equal(g->r[0].err, 0);
	assert_int_equal(g->r[0].len, 0);  /* empty response, still a response */
	assert_false(g->r[0].remote_error);
	assert_int_equal(g->r[1].done, 1);
	/* With a slot free again, a new call goes through. */
	assert_int_equal(call(PING, "4", &g->r[3], 0), 0);
	pump(40);
	assert_int_equal(g->r[3].err, 0);
}

static void test_hm_rpc_out_pool_exhaustion_fails_at_once(void **state)
{
	for (int i = 0; i < 4; i++)
		assert_int_equal(call(PING, "p", &g->r[i], 0), 0);
	assert_int_equal(call(PING, "p", &g->r[4], 0), -KW_ELIMIT);
	pump(60);
	/* All four finish (two of them refused by b's per-peer limit of 2: that is b's
	 * business); their states are back in the pool, so a new call starts and succeeds. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(g->r[i].done, 1);
	assert_int_equal(call(PING, "p", &g->r[4], 0), 0);
	pump(40);
	assert_int_equal(g->r[4].done, 1);
	assert_int_equal(g->r[4].err, 0);
}

static void test_hm_rpc_unknown_name_fails_enoproto(void **state)
{
	assert_int_equal(call("Nobody.rpc_here", "x", &g->r[0], 0), 0);
	pump(40);
	assert_int_equal(g->r[0].done, 1);
	assert_int_equal(g->r[0].err, -KW_ENOPROTO);
}

static void test_hm_rpc_request_too_large_for_the_buffer_is_refused_at_call(void **state)
{
	static char big[8192];

	memset(big, 'a', sizeof(big) - 1);
	assert_int_equal(call(PING, big, &g->r[0], 0), -KW_EMSGSIZE);
}

/* ---- raw streams: what a broken or hostile caller sends ----------------------------------- */

static void test_hm_rpc_garbage_envelope_resets_only_that_stream(void **state)
{
	static const uint8_t junk[] = { 0x05, 0x0a, 0x10, 0x00, 0x11, 0x22 };
	struct kw_hm_stats st;

	kw_hm_pair_send_raw(&g->p, PING, junk, sizeof(junk));
	assert_int_equal(g->p.raw_closed, 1);
	assert_int_equal(g->p.raw_close_reason, -KW_ECONNRESET);
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.bad_envelopes, 1);
	assert_int_equal(g->handled, 0);
	/* the connection and the handler keep working */
	assert_int_equal(call(PING, "after", &g->r[0], 0), 0);
	pump(40);
	assert_int_equal(g->r[0].err, 0);
}

static void test_hm_rpc_proto_different_from_the_stream_is_refused(void **state)
{
	static const uint8_t id[16] = { 1 };
	struct kw_hm_envelope e;
	struct kw_hm_stats st;
	uint8_t buf[128];
	long n;

	kw_hm_env_call(&e, id, NULL, 0, FAIL, (const uint8_t *)"x", 1);
	n = kw_hm_env_encode(&e, buf, sizeof(buf));
	assert_true(n > 0);
	kw_hm_pair_send_raw(&g->p, PING, buf, (size_t)n);
	assert_int_equal(g->p.raw_closed, 1);
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.bad_envelopes, 1);
	assert_int_equal(g->handled, 0);
}

static void test_hm_rpc_caller_eof_before_the_answer_cancels(void **state)
{
	static const uint8_t id[16] = { 2 };
	struct kw_hm_envelope e;
	struct kw_hm_stats st;
	uint8_t buf[128];
	long n;

	/* A caller that half-closes after its request: p2pd cancels the handler. */
	kw_hm_env_call(&e, id, NULL, 0, SLOW, (const uint8_t *)"x", 1);
	n = kw_hm_env_encode(&e, buf, sizeof(buf));
	kw_hm_pair_send_raw(&g->p, SLOW, buf, (size_t)n);
	assert_int_equal(g->n_held, 1);
	assert_int_equal(kw_stream_close_write(g->p.raw), 0);
	pump(30);
	assert_int_equal(g->cancels, 1);
	assert_int_equal(g->cancel_reason, -KW_ECANCELED);
	kw_hm_get_stats(g->p.b.hm, &st);
	assert_int_equal(st.cancelled, 1);
	assert_int_equal(g->p.raw_closed, 1);
}

static void test_hm_rpc_register_refuses_duplicates_and_bad_names(void **state)
{
	assert_int_equal(kw_hm_register_unary(g->p.b.hm, PING, ping_fn, NULL, NULL, 0), -KW_EEXIST);
	assert_int_equal(kw_hm_register_unary(g->p.b.hm, "", ping_fn, NULL, NULL, 0), -KW_EINVAL);
	assert_int_equal(kw_hm_register_unary(g->p.b.hm, "a\nb", ping_fn, NULL, NULL, 0), -KW_EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_hm_rpc_unary_call_round_trip),
		T(test_hm_rpc_remote_error_reaches_the_caller_as_text),
		T(test_hm_rpc_reply_too_large_becomes_an_error_text),
		T(test_hm_rpc_handler_may_answer_later_from_the_loop),
		T(test_hm_rpc_missed_deadline_is_answered_timeout_error),
		T(test_hm_rpc_caller_timeout_cancels_the_handler),
		T(test_hm_rpc_per_peer_limit_resets_extra_calls),
		T(test_hm_rpc_out_pool_exhaustion_fails_at_once),
		T(test_hm_rpc_unknown_name_fails_enoproto),
		T(test_hm_rpc_request_too_large_for_the_buffer_is_refused_at_call),
		T(test_hm_rpc_garbage_envelope_resets_only_that_stream),
		T(test_hm_rpc_proto_different_from_the_stream_is_refused),
		T(test_hm_rpc_caller_eof_before_the_answer_cancels),
		T(test_hm_rpc_register_refuses_duplicates_and_bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
