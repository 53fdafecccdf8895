/*
 * The compute lane of serving (app/serve_lane.c) on real sockets: three nodes on 127.0.0.1
 * with the Linux backend, each loop pumped in turn by this thread. Node b serves the two
 * blocks of the model writer's tiny checkpoint and a trivial unary "ping" handler; node a
 * calls rpc_forward, node c calls ping on its own connection. A test hook holds the lane's
 * job until the test lets it go, so "the loop serves others while a request computes" is
 * checked by order, not by timing: the ping must be answered while the forward is held
 * (computed inline, the hook never runs and the forward would block every loop). The
 * forward's answer must equal kw_serve_call's (the inline path) byte for byte. The same for
 * rpc_forward_stream calls: their joined request computes on the lane, the reply goes out
 * in pieces from the loop.
 *
 * With KW_SERVE_LANE_FIGURE=<blocks> in the environment, a figure instead of a check: the
 * ping round trip on c's connection while a continuous stream of forwards (unary, then
 * rpc_forward_stream) runs on a larger generated span, inline and on the lane.
 */
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "../../../app/serve_int.h"
#include "model_gen.h"
#include "serve_pb.h"

/* At the maximum Kconfig ranges this build's Hivemind call pools (in + out calls, two buffers
 * of CALL_BUF_BYTES each) take gigabytes, more than this test's arenas: the tests skip there
 * and say so. */
#define HM_CALL_POOLS_BYTES ((size_t)(CONFIG_KW_NET_HIVEMIND_CALLS_IN +                     \
				      CONFIG_KW_NET_HIVEMIND_CALLS_OUT) * 2u *                  \
			     CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES)
#define HM_CALL_POOLS_FIT (HM_CALL_POOLS_BYTES <= ((size_t)8 << 20))

#define BUF (256 * 1024)
#define MAX_BLOCKS 8

struct side {
	struct kw_sys_linux sys;
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_privkey key;
	char addr[256];
	struct kw_conn *conn;   /* a and c: to b */
	int dialed;
};

struct result {
	int done, err;
	bool remote_error;
	uint8_t data[BUF];
	size_t len;
};

static struct side A, B, C;
static struct kw_serve *srv;
static uint8_t *srv_mem, *w_mem, meta_mem[1 << 20];
static struct kw_arena srv_a, w_a, meta_a;
static struct kw_ckpt ck;
static struct kw_llama_q8 m8;
static struct kw_llama_w lw[MAX_BLOCKS];
static struct kw_llama_dims dims;
static uint32_t nblocks;
static char dir[3100], err[512];
static uint8_t req[BUF], inl[BUF];
static struct result fwd, png;
static uint64_t rs = 0x9e3779b97f4a7c15ull;

/* the hook: holds the job until released (bounded, so an inline run cannot hang the test) */
static atomic_int hook_entered, hook_release, hook_armed;

static void hold_job(struct kw_serve *s, struct kw_serve_slot *slot)
{
	(void)s;
	(void)slot;
	if (!atomic_load(&hook_armed))
		return;
	atomic_fetch_add(&hook_entered, 1);
	for (int i = 0; i < 10000 && !atomic_load(&hook_release); i++)
		usleep(1000);
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void pump_once(void)
{
	kw_loop_run_once(&A.n->loop, 0);
	kw_loop_run_once(&C.n->loop, 0);
	kw_loop_run_once(&B.n->loop, 1);
}

/* Pumps until *flag is non-zero or max_ms pass; true if it became non-zero. */
static bool pump_until(const int *flag, unsigned max_ms)
{
	uint64_t t0 = mono_us();

	while (!*flag && mono_us() - t0 < (uint64_t)max_ms * 1000)
		pump_once();
	return *flag != 0;
}

static void on_result(const struct kw_hm_result *r, void *user)
{
	struct result *o = user;

	o->done++;
	o->err = r->err;
	o->remote_error = r->remote_error;
	o->len = KW_MIN(r->len, sizeof(o->data));
	if (r->len)
		memcpy(o->data, r->data, o->len);
}

/* The test hook holds the next job the lane takes until hook_release. */
static void hook_arm(void)
{
	atomic_store(&hook_entered, 0);
	atomic_store(&hook_release, 0);
	atomic_store(&hook_armed, 1);
}

/* Waits (5 s at most) until the lane is inside the held job. */
static void wait_held(void)
{
	int entered = 0;

	for (uint64_t t0 = mono_us(); !entered && mono_us() - t0 < 5000000;) {
		pump_once();
		entered = atomic_load(&hook_entered);
	}
	assert_int_equal(entered, 1);
}

/* a calls rpc_forward with req[0..n) and the lane holds it. */
static void forward_held(struct result *r, size_t n)
{
	hook_arm();
	assert_int_equal(kw_hm_call(A.hm, A.conn, KW_SERVE_PT_FORWARD, req, n, 0, on_result, r),
			 0);
	wait_held();
}

/* c calls rpc_forward with req[0..n) behind the held job: it waits in the lane's queue. */
static void forward_queued(struct result *r, size_t n)
{
	assert_int_equal(kw_hm_call(C.hm, C.conn, KW_SERVE_PT_FORWARD, req, n, 0, on_result, r),
			 0);
	for (uint64_t t0 = mono_us(); srv->lane.n < 1 && mono_us() - t0 < 5000000;)
		pump_once();
	assert_int_equal(srv->lane.n, 1);
}

static void on_ping(struct kw_hm_call *call, const uint8_t *rq, size_t len, void *arg)
{
	(void)arg;
	(void)kw_hm_reply(call, rq, len);   /* echo */
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int e, void *user)
{
	struct side *s = user;

	(void)sw;
	s->dialed = e == 0 ? 1 : -1;
	s->conn = c;
}

static int make_side(struct side *s, bool listen)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_hm_limits hl = { .calls_in = 4, .calls_per_peer = 2, .calls_out = 4,
				   .buf_bytes = BUF, .timeout_ms = 20000 };

	if (kw_sys_linux_open(&s->sys) < 0)
		return -1;
	s->n = kw_node_create_heap((size_t)48 << 20, &s->sys.sys, NULL);
	if (!s->n || kw_key_generate(KW_KEY_ED25519, 0, &s->key) ||
	    kw_swarm_create(s->n, &s->key, &lim, &s->sw) || kw_hm_create(s->sw, &hl, &s->hm))
		return -1;
	if (listen && (kw_swarm_listen(s->sw, "/ip4/127.0.0.1/tcp/0") ||
		       kw_swarm_listen_addr(s->sw, 0, s->addr, sizeof(s->addr))))
		return -1;
	return 0;
}

static void free_side(struct side *s)
{
	kw_swarm_destroy(s->sw);
	kw_node_destroy_heap(s->n);
	kw_sys_linux_close(&s->sys);
}

static int setup_model(uint32_t hidden, uint32_t blocks, uint32_t max_rows, uint32_t stream_buf)
{
	/* stream replies go in pieces of a quarter of the stream buffer (1 KiB in the tests: a
	 * forward's answer takes more than one) */
	struct kw_serve_limits lim = { .max_rows = max_rows, .max_experts = 1, .slots = 2,
				       .max_blocks = blocks, .sessions = 1, .session_tokens = 16,
				       .stream_piece = stream_buf / 4 };
	struct kw_hm_stream_limits sx = { .streams_in = 2, .streams_per_peer = 2,
					  .streams_out = 2, .buf_bytes = stream_buf, .prefetch = 2,
					  .idle_ms = 5000 };
	struct kw_model_gen mg;
	size_t wb, sb;

	kw_model_gen_tiny(&mg, 11);
	mg.shards = 1;
	if (hidden != mg.hidden) {
		mg.hidden = hidden;
		mg.intermediate = hidden * 11 / 4;
		mg.heads = hidden / 64;
		mg.kv_heads = hidden / 64;
	}
	mg.layers = blocks;
	nblocks = blocks;
	if (kw_model_gen_write(&mg, dir, err, sizeof(err)))
		return -1;
	kw_arena_init(&meta_a, meta_mem, sizeof(meta_mem));
	if (kw_ckpt_open(&ck, dir, &meta_a, err, sizeof(err)))
		return -1;
	wb = 2 * kw_llama_q8_bytes(&ck.cfg, blocks) + (8 << 20);
	w_mem = malloc(wb);
	kw_arena_init(&w_a, w_mem, wb);
	if (kw_llama_q8_load(&m8, &ck, 0, blocks, &w_a, NULL, NULL, err, sizeof(err)))
		return -1;
	for (uint32_t i = 0; i < blocks; i++)
		if (kw_llama_w_from_q8(&lw[i], &m8.blk[i], &w_a))
			return -1;
	kw_llama_dims_from_config(&dims, &ck.cfg);
	sb = (size_t)64 << 20;
	srv_mem = malloc(sb);
	kw_arena_init(&srv_a, srv_mem, sb);
	if (kw_serve_create(&srv_a, &lim, &srv) ||
	    kw_serve_set_blocks(srv, "lane-llama", 0, blocks, lw, &dims) ||
	    kw_serve_bytes(srv) > kw_arena_free_bytes(&srv_a))
		return -1;
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	memset(&C, 0, sizeof(C));
	if (make_side(&B, true) || make_side(&A, false) || make_side(&C, false))
		return -1;
	if (kw_hm_stream_setup(B.hm, &sx) || kw_hm_stream_setup(A.hm, &sx) ||
	    kw_serve_start(srv, NULL, B.hm, NULL, NULL, false) ||
	    kw_hm_register_unary(B.hm, "test.Ping", on_ping, NULL, NULL, 0))
		return -1;
	if (kw_swarm_dial(A.sw, B.addr, on_dial, &A) < 0 ||
	    kw_swarm_dial(C.sw, B.addr, on_dial, &C) < 0)
		return -1;
	if (!pump_until(&A.dialed, 5000) || !pump_until(&C.dialed, 5000) || A.dialed < 0 ||
	    C.dialed < 0)
		return -1;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	kw_serve_lane_test_hook = hold_job;
	return setup_model(64, 2, 16, 4096);
}

static int teardown(void **state)
{
	(void)state;
	kw_serve_stop(srv);
	free_side(&A);
	free_side(&C);
	free_side(&B);
	kw_ckpt_close(&ck);
	kw_test_rm_dir(dir);
	free(srv_mem);
	free(w_mem);
	return 0;
}

/* A Petals rpc_forward of the whole span on B x T rows of x. */
static size_t forward_req(uint32_t Bn, uint32_t T)
{
	static float x[BUF / 4];
	static uint8_t tb[BUF];
	uint32_t shape[3] = { Bn, T, (uint32_t)dims.hidden };
	struct kw_tensor_msg m;
	char uid[256];
	size_t n = 0, o = 0, tl, numel = (size_t)Bn * T * dims.hidden;

	for (uint32_t i = 0; i < nblocks; i++)
		o += (size_t)snprintf(uid + o, sizeof(uid) - o, "%slane-llama.%u", i ? " " : "", i);
	for (size_t i = 0; i < numel; i++)
		x[i] = frand();
	n += put_field(req + n, 1, uid, strlen(uid));
	memset(&m, 0, sizeof(m));
	m.buf = (const uint8_t *)x;
	m.buf_len = numel * 4;
	m.ndim = 3;
	memcpy(m.shape, shape, sizeof(shape));
	strcpy(m.dtype, "float32");
	assert_int_equal(kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl), 0);
	n += put_field(req + n, 2, tb, tl);
	return n;
}

static void test_serve_lane_ping_is_answered_while_a_forward_computes(void **state)
{
	struct kw_serve_stats st;
	size_t n = forward_req(2, 3), inl_len = 0;
	bool inl_err = true;

	(void)state;
	memset(&fwd, 0, sizeof(fwd));
	memset(&png, 0, sizeof(png));
	/* the forward reaches the lane and is held there */
	forward_held(&fwd, n);
	assert_true(srv->lane.on);
	/* a call on another connection is served meanwhile */
	assert_int_equal(kw_hm_call(C.hm, C.conn, "test.Ping", (const uint8_t *)"abc", 3, 0,
				    on_result, &png), 0);
	assert_true(pump_until(&png.done, 5000));
	assert_int_equal(png.err, 0);
	assert_int_equal(png.len, 3);
	assert_memory_equal(png.data, "abc", 3);
	assert_int_equal(fwd.done, 0);   /* still held */
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 1);
	atomic_store(&hook_release, 1);
	assert_true(pump_until(&fwd.done, 10000));
	assert_int_equal(fwd.err, 0);
	assert_false(fwd.remote_error);
	/* byte-equal to the inline path (kw_serve_call computes on this thread) */
	atomic_store(&hook_armed, 0);
	assert_int_equal(kw_serve_call(srv, KW_SERVE_PT_FORWARD, req, n, inl, sizeof(inl),
				       &inl_len, &inl_err), 0);
	assert_false(inl_err);
	assert_int_equal(fwd.len, inl_len);
	assert_memory_equal(fwd.data, inl, inl_len);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.calls, 2);
	assert_int_equal(srv->lane.jobs, 1);
}

static void test_serve_lane_queues_behind_a_running_job_and_refuses_when_full(void **state)
{
	static struct result r[3];
	struct kw_serve_stats st;
	size_t n = forward_req(1, 2);

	(void)state;
	memset(r, 0, sizeof(r));
	/* two slots: one runs (held), one waits in the queue, the third finds none */
	forward_held(&r[0], n);
	forward_queued(&r[1], n);
	assert_int_equal(kw_hm_call(A.hm, A.conn, KW_SERVE_PT_FORWARD, req, n, 0, on_result,
				    &r[2]), 0);
	assert_true(pump_until(&r[2].done, 5000));
	assert_true(r[2].remote_error);
	assert_int_equal(r[0].done + r[1].done, 0);
	atomic_store(&hook_release, 1);
	assert_true(pump_until(&r[0].done, 10000));
	assert_true(pump_until(&r[1].done, 10000));
	assert_false(r[0].remote_error);
	assert_false(r[1].remote_error);
	assert_int_equal(r[0].len, r[1].len);
	assert_memory_equal(r[0].data, r[1].data, r[0].len);   /* the same request */
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.busy, 1);
	assert_int_equal(srv->lane.jobs, 2);
}

static void test_serve_lane_queued_job_of_a_gone_caller_is_not_computed(void **state)
{
	static struct result r[2];
	struct kw_serve_stats st;
	size_t n = forward_req(1, 2);

	(void)state;
	memset(r, 0, sizeof(r));
	forward_held(&r[0], n);
	/* c gives up on its call after 300 ms while it waits in the queue */
	assert_int_equal(kw_hm_call(C.hm, C.conn, KW_SERVE_PT_FORWARD, req, n, 300, on_result,
				    &r[1]), 0);
	assert_true(pump_until(&r[1].done, 5000));
	assert_int_equal(r[1].err, -KW_ETIMEDOUT);
	/* b sees the stream go and takes the job out; its slot comes back when the lane
	 * passes it */
	for (uint64_t t0 = mono_us(); mono_us() - t0 < 300000;)
		pump_once();
	assert_true(srv->slot[0].job.cancelled || srv->slot[1].job.cancelled);
	atomic_store(&hook_release, 1);
	assert_true(pump_until(&r[0].done, 10000));
	assert_false(r[0].remote_error);
	for (uint64_t t0 = mono_us(); mono_us() - t0 < 200000;)
		pump_once();
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(srv->lane.jobs, 1);   /* the gone caller's request never ran */
	assert_int_equal(st.calls, 1);
}

static void *release_later(void *arg)
{
	(void)arg;
	usleep(100 * 1000);
	atomic_store(&hook_release, 1);
	return NULL;
}

static void test_serve_lane_stop_waits_for_the_running_job_and_refuses_the_queued(void **state)
{
	static struct result r[2];
	struct kw_serve_stats st;
	size_t n = forward_req(1, 2);
	pthread_t th;
	char t[256];

	(void)state;
	memset(r, 0, sizeof(r));
	forward_held(&r[0], n);
	forward_queued(&r[1], n);
	/* the held job is let go from another thread while the loop's thread stops the lane */
	assert_int_equal(pthread_create(&th, NULL, release_later, NULL), 0);
	kw_serve_stop(srv);
	pthread_join(th, NULL);
	assert_false(srv->lane.on);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(srv->lane.jobs, 1);
	assert_true(pump_until(&r[0].done, 5000));
	assert_true(pump_until(&r[1].done, 5000));
	assert_int_equal(r[0].err, 0);
	assert_false(r[0].remote_error);   /* the running job was answered */
	assert_true(r[1].remote_error);
	kw_hm_error_text(r[1].data, r[1].len, t, sizeof(t));
	assert_string_equal(t, "RuntimeError('server shutting down')");
}

/* ---- an rpc_inference session's steps on the lane ---- */

struct sess_cli {
	struct kw_hm_stream *st;
	int n, done, err;
	uint8_t msg[4][8192];
	size_t len[4];
};

static int scli_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct sess_cli *c = arg;

	(void)st;
	assert_true(c->n < 4 && len <= sizeof(c->msg[0]));
	memcpy(c->msg[c->n], msg, len);
	c->len[c->n++] = len;
	return 0;
}

static void scli_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct sess_cli *c = arg;

	(void)st;
	c->done++;
	c->err = r->err ? r->err : r->remote_error ? -KW_EPROTO : 0;
}

static const struct kw_hm_stream_ops scli_ops = { .on_message = scli_msg, .on_done = scli_done };

/* ExpertRequest{uid, [hidden (1, T, H), DUMMY prompts, DUMMY hypo_ids], metadata} */
static size_t step_req(const float *x, uint32_t T, bool first, uint8_t *out)
{
	static uint8_t tb[16384], mp[128];
	struct kw_tensor_msg m;
	struct kw_mp_writer w;
	char uid[256];
	size_t n = 0, o = 0, tl;
	long ml;

	for (uint32_t i = 0; i < nblocks; i++)
		o += (size_t)snprintf(uid + o, sizeof(uid) - o, "%slane-llama.%u", i ? " " : "", i);
	n += put_field(out + n, 1, uid, strlen(uid));
	memset(&m, 0, sizeof(m));
	m.buf = (const uint8_t *)x;
	m.buf_len = (size_t)T * dims.hidden * 4;
	m.ndim = 3;
	m.shape[0] = 1;
	m.shape[1] = T;
	m.shape[2] = (uint32_t)dims.hidden;
	strcpy(m.dtype, "float32");
	assert_int_equal(kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl), 0);
	n += put_field(out + n, 2, tb, tl);
	for (int k = 0; k < 2; k++) {   /* prompts (float32) and hypo_ids (int64), both DUMMY */
		memset(&m, 0, sizeof(m));
		m.ndim = 1;
		strcpy(m.dtype, k ? "int64" : "float32");
		assert_int_equal(kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl), 0);
		n += put_field(out + n, 2, tb, tl);
	}
	kw_mp_writer_init(&w, mp, sizeof(mp));
	kw_mp_put_map(&w, first ? 2 : 1);
	kw_mp_put_cstr(&w, "session_id");
	kw_mp_put_cstr(&w, "lane-sess");
	if (first) {
		kw_mp_put_cstr(&w, "max_length");
		kw_mp_put_uint(&w, 8);
	}
	ml = kw_mp_writer_finish(&w);
	assert_true(ml > 0);
	n += put_field(out + n, 3, mp, (size_t)ml);
	return n;
}

static void test_serve_lane_session_step_computes_off_the_loop_and_equals_a_forward(void **state)
{
	static float x[4 * 64];
	static uint8_t sreq[16384];
	static struct sess_cli c;
	struct kw_serve_stats st;
	size_t n, fl, inl_len = 0;
	bool inl_err = true;

	(void)state;
	assert_int_equal(dims.hidden, 64);
	for (size_t i = 0; i < 4 * 64; i++)
		x[i] = frand();
	memset(&c, 0, sizeof(c));
	memset(&png, 0, sizeof(png));
	hook_arm();
	assert_int_equal(kw_hm_stream_open(A.hm, A.conn, KW_SERVE_PT_INFERENCE, &scli_ops, &c, 0,
					   &c.st), 0);
	n = step_req(x, 4, true, sreq);
	assert_int_equal(kw_hm_stream_send(c.st, sreq, n), 0);
	wait_held();   /* the step is on the lane, held */
	assert_int_equal(kw_hm_call(C.hm, C.conn, "test.Ping", (const uint8_t *)"s", 1, 0,
				    on_result, &png), 0);
	assert_true(pump_until(&png.done, 5000));
	assert_int_equal(png.err, 0);
	assert_int_equal(c.n, 0);
	/* the next step is sent now and must wait for the first one's answer */
	n = step_req(x + 3 * 64, 1, false, sreq);
	assert_int_equal(kw_hm_stream_send(c.st, sreq, n), 0);
	atomic_store(&hook_release, 1);
	for (uint64_t t0 = mono_us(); c.n < 2 && mono_us() - t0 < 10000000;)
		pump_once();
	assert_int_equal(c.n, 2);
	assert_int_equal(c.done, 0);
	/* the first answer equals a unary forward of the same 4 tokens (same kernels, no
	 * cache before it): the ExpertResponse bytes match */
	atomic_store(&hook_armed, 0);
	{
		struct kw_tensor_msg m;
		uint8_t tb[16384];
		char uid[256];
		size_t o = 0, tl;

		for (uint32_t i = 0; i < nblocks; i++)
			o += (size_t)snprintf(uid + o, sizeof(uid) - o, "%slane-llama.%u",
					      i ? " " : "", i);
		fl = put_field(req, 1, uid, strlen(uid));
		memset(&m, 0, sizeof(m));
		m.buf = (const uint8_t *)x;
		m.buf_len = 4 * 64 * 4;
		m.ndim = 3;
		m.shape[0] = 1;
		m.shape[1] = 4;
		m.shape[2] = 64;
		strcpy(m.dtype, "float32");
		assert_int_equal(kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl), 0);
		fl += put_field(req + fl, 2, tb, tl);
	}
	assert_int_equal(kw_serve_call(srv, KW_SERVE_PT_FORWARD, req, fl, inl, sizeof(inl),
				       &inl_len, &inl_err), 0);
	assert_false(inl_err);
	assert_int_equal(c.len[0], inl_len);
	assert_memory_equal(c.msg[0], inl, inl_len);
	assert_true(c.len[1] > 0 && c.len[1] < c.len[0]);   /* one token */
	/* the empty request ends the session cleanly */
	assert_int_equal(kw_hm_stream_send(c.st, NULL, 0), 0);
	assert_int_equal(kw_hm_stream_end(c.st), 0);
	assert_true(pump_until(&c.done, 5000));
	assert_int_equal(c.err, 0);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.sessions_open, 0);
	assert_int_equal(st.steps, 2);
	assert_int_equal(srv->lane.jobs, 2);
}

/* ---- rpc_forward_stream calls on the lane ---- */

static struct sess_cli sc[2];

/* a opens rpc_forward_stream and sends req[0..n) as its one message, then END_OF_STREAM. */
static void stream_forward(struct sess_cli *c, size_t n)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(kw_hm_stream_open(A.hm, A.conn, KW_SERVE_PT_FORWARD_STREAM, &scli_ops, c,
					   0, &c->st), 0);
	assert_int_equal(kw_hm_stream_send(c->st, req, n), 0);
	assert_int_equal(kw_hm_stream_end(c->st), 0);
}

/* One ExpertResponse{tensors = [t]} at b[0..len) into *t (a view into b). */
static void response_tensor(const uint8_t *b, size_t len, struct kw_tensor_msg *t)
{
	size_t pos = 1;
	uint64_t l = 0;

	assert_true(len > 1);
	assert_int_equal(b[0], 0x12);
	assert_int_equal(kw_serve_pb_varint(b, len, &pos, &l), 0);
	assert_int_equal(l, len - pos);
	assert_int_equal(kw_tensor_msg_decode(t, b + pos, (size_t)l), 0);
}

/* c's reply pieces joined must be the inline answer to req[0..n): the same tensor, byte for
 * byte (header fields and data). */
static void assert_stream_equals_inline(const struct sess_cli *c, size_t n)
{
	static uint8_t joined[BUF];
	struct kw_tensor_join j;
	struct kw_tensor_msg want, piece;
	size_t inl_len = 0;
	bool inl_err = true, hooked = atomic_load(&hook_armed);

	atomic_store(&hook_armed, 0);
	assert_int_equal(kw_serve_call(srv, KW_SERVE_PT_FORWARD, req, n, inl, sizeof(inl),
				       &inl_len, &inl_err), 0);
	atomic_store(&hook_armed, hooked);
	assert_false(inl_err);
	response_tensor(inl, inl_len, &want);
	assert_true(c->n >= 2);   /* the answer came in pieces */
	kw_tensor_join_init(&j, joined, sizeof(joined));
	for (int k = 0; k < c->n; k++) {
		response_tensor(c->msg[k], c->len[k], &piece);
		assert_int_equal(kw_tensor_join_add(&j, &piece), k == c->n - 1);
	}
	assert_int_equal(j.head.ndim, want.ndim);
	assert_memory_equal(j.head.shape, want.shape, want.ndim * sizeof(want.shape[0]));
	assert_string_equal(j.head.dtype, want.dtype);
	assert_int_equal(j.head.compression, want.compression);
	assert_int_equal(j.head.buf_len, want.buf_len);
	assert_memory_equal(j.head.buf, want.buf, want.buf_len);
}

/* Pumps until both stream calls are over (10 s at most). */
static void wait_streams(void)
{
	for (uint64_t t0 = mono_us(); (!sc[0].done || !sc[1].done) &&
				      mono_us() - t0 < 10000000;)
		pump_once();
	assert_int_equal(sc[0].done, 1);
	assert_int_equal(sc[1].done, 1);
}

/* The first stream call reaches the lane and is held; the second waits in the queue. */
static void streams_held_and_queued(size_t n)
{
	hook_arm();
	stream_forward(&sc[0], n);
	wait_held();
	stream_forward(&sc[1], n);
	for (uint64_t t0 = mono_us(); srv->lane.n < 1 && mono_us() - t0 < 5000000;)
		pump_once();
	assert_int_equal(srv->lane.n, 1);
}

static void test_serve_lane_ping_is_answered_during_back_to_back_stream_forwards(void **state)
{
	struct kw_serve_stats st;
	size_t n = forward_req(2, 3);

	(void)state;
	memset(&png, 0, sizeof(png));
	streams_held_and_queued(n);
	/* a call on another connection is served while the first computes */
	assert_int_equal(kw_hm_call(C.hm, C.conn, "test.Ping", (const uint8_t *)"xyz", 3, 0,
				    on_result, &png), 0);
	assert_true(pump_until(&png.done, 5000));
	assert_int_equal(png.err, 0);
	assert_int_equal(png.len, 3);
	assert_memory_equal(png.data, "xyz", 3);
	assert_int_equal(sc[0].n + sc[1].n + sc[0].done + sc[1].done, 0);   /* still held */
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 2);
	atomic_store(&hook_release, 1);
	wait_streams();
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sc[k].err, 0);
		assert_stream_equals_inline(&sc[k], n);
	}
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.stream_calls, 2);
	assert_int_equal(st.errors, 0);
	assert_int_equal(srv->lane.jobs, 2);
}

static void test_serve_lane_stream_error_from_the_lane_ends_only_its_call(void **state)
{
	struct kw_serve_stats st;
	size_t n = forward_req(2, 3);

	(void)state;
	/* a block this node does not hold: the lane's compute fails, the loop sends the text */
	memcpy(req + 2, "kane", 4);   /* "lane-llama.0 ..." -> "kane-llama.0 ..." */
	hook_arm();
	atomic_store(&hook_release, 1);
	stream_forward(&sc[0], n);
	assert_true(pump_until(&sc[0].done, 10000));
	assert_int_equal(sc[0].err, -KW_EPROTO);   /* an error frame */
	assert_int_equal(sc[0].n, 0);
	assert_int_equal(atomic_load(&hook_entered), 1);   /* it was the lane that ran it */
	/* the next call is served */
	memcpy(req + 2, "lane", 4);
	stream_forward(&sc[1], n);
	assert_true(pump_until(&sc[1].done, 10000));
	assert_int_equal(sc[1].err, 0);
	assert_stream_equals_inline(&sc[1], n);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.stream_calls, 1);
	assert_int_equal(st.errors, 1);
	assert_int_equal(srv->lane.jobs, 2);
}

static void test_serve_lane_queued_stream_of_a_gone_caller_is_not_computed(void **state)
{
	struct kw_serve_stats st;
	size_t n = forward_req(2, 3);

	(void)state;
	streams_held_and_queued(n);
	/* the second caller resets its stream while its request waits */
	assert_int_equal(kw_hm_stream_cancel(sc[1].st), 0);
	assert_int_equal(sc[1].err, -KW_ECANCELED);
	for (uint64_t t0 = mono_us(); !srv->slot[0].job.cancelled &&
				      !srv->slot[1].job.cancelled && mono_us() - t0 < 5000000;)
		pump_once();
	assert_true(srv->slot[0].job.cancelled || srv->slot[1].job.cancelled);
	atomic_store(&hook_release, 1);
	assert_true(pump_until(&sc[0].done, 10000));
	assert_int_equal(sc[0].err, 0);
	assert_stream_equals_inline(&sc[0], n);
	for (uint64_t t0 = mono_us(); mono_us() - t0 < 200000;)
		pump_once();
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.stream_calls, 1);
	assert_int_equal(srv->lane.jobs, 1);   /* the gone caller's request never ran */
	/* its stream state is free again: two more calls are served */
	stream_forward(&sc[0], n);
	stream_forward(&sc[1], n);
	wait_streams();
	assert_int_equal(sc[0].err, 0);
	assert_int_equal(sc[1].err, 0);
	assert_int_equal(srv->lane.jobs, 3);
}

static void test_serve_lane_stop_answers_the_running_stream_and_refuses_the_queued(void **state)
{
	struct kw_serve_stats st;
	size_t n = forward_req(2, 3);
	pthread_t th;

	(void)state;
	streams_held_and_queued(n);
	assert_int_equal(pthread_create(&th, NULL, release_later, NULL), 0);
	kw_serve_stop(srv);
	pthread_join(th, NULL);
	assert_false(srv->lane.on);
	wait_streams();
	assert_int_equal(sc[0].err, 0);   /* the running one is answered in full */
	assert_stream_equals_inline(&sc[0], n);
	assert_int_equal(sc[1].err, -KW_EPROTO);   /* "server shutting down" */
	assert_int_equal(sc[1].n, 0);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
	assert_int_equal(st.stream_calls, 1);
	assert_int_equal(srv->lane.jobs, 1);
}

/* ---- the figure -------------------------------------------------------------------------- */

/* The figure's stream caller: counts the reply pieces, keeps none. */
static int fig_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	(void)st;
	(void)msg;
	(void)len;
	((struct sess_cli *)arg)->n++;
	return 0;
}

static const struct kw_hm_stream_ops fig_ops = { .on_message = fig_msg, .on_done = scli_done };

/* Starts the next forward from a when the last one is over; counts it if it was answered. */
static void figure_forward(bool stream, size_t n, uint64_t *fwds)
{
	if (stream) {
		struct sess_cli *c = &sc[0];

		if (!c->done)
			return;
		*fwds += c->n && !c->err;
		memset(c, 0, sizeof(*c));
		assert_int_equal(kw_hm_stream_open(A.hm, A.conn, KW_SERVE_PT_FORWARD_STREAM,
						   &fig_ops, c, 0, &c->st), 0);
		assert_int_equal(kw_hm_stream_send(c->st, req, n), 0);
		assert_int_equal(kw_hm_stream_end(c->st), 0);
		return;
	}
	if (!fwd.done)
		return;
	*fwds += fwd.len && !fwd.remote_error;
	memset(&fwd, 0, sizeof(fwd));
	assert_int_equal(kw_hm_call(A.hm, A.conn, KW_SERVE_PT_FORWARD, req, n, 0, on_result, &fwd),
			 0);
}

/* For `ms` of wall time: a forward (unary, or rpc_forward_stream) always in flight from a,
 * pings one after the other from c; prints the pings' round trips. */
static void figure_run(bool lane, bool stream, unsigned ms, uint32_t rows)
{
	size_t n = forward_req(1, rows);
	uint64_t sum = 0, worst = 0, fwds = 0, pings = 0, t0 = mono_us();
	const int *last = stream ? &sc[0].done : &fwd.done;

	memset(&fwd, 0, sizeof(fwd));
	memset(&sc[0], 0, sizeof(sc[0]));
	fwd.done = sc[0].done = 1;
	while (mono_us() - t0 < (uint64_t)ms * 1000) {
		uint64_t p0;

		figure_forward(stream, n, &fwds);
		memset(&png, 0, sizeof(png));
		p0 = mono_us();
		assert_int_equal(kw_hm_call(C.hm, C.conn, "test.Ping", (const uint8_t *)"p", 1, 0,
					    on_result, &png), 0);
		while (!png.done)
			pump_once();
		assert_int_equal(png.err, 0);
		p0 = mono_us() - p0;
		sum += p0;
		worst = KW_MAX(worst, p0);
		pings++;
	}
	while (!*last)
		pump_once();
	fwds += stream ? sc[0].n && !sc[0].err : fwd.len && !fwd.remote_error;
	printf("# lane figure: %-15s %u blocks hidden %u, %u rows per %s: ping RTT mean "
	       "%.2f ms, worst %.2f ms over %llu pings; %llu forwards in %.2f s\n",
	       lane ? "off-loop (lane)," : "inline,", nblocks, (unsigned)dims.hidden, rows,
	       stream ? "stream forward" : "forward",
	       sum / 1000.0 / (double)pings, worst / 1000.0, (unsigned long long)pings,
	       (unsigned long long)fwds, (mono_us() - t0) / 1e6);
}

static void test_serve_lane_figure(void **state)
{
	(void)state;
	/* inline first: the lane starts at the first call unless it was tried */
	srv->lane.tried = true;
	figure_run(false, false, 3000, 32);
	figure_run(false, true, 3000, 32);
	srv->lane.tried = false;
	figure_run(true, false, 3000, 32);
	figure_run(true, true, 3000, 32);
	assert_true(srv->lane.on);
}

static int setup_figure(void **state)
{
	const char *e = getenv("KW_SERVE_LANE_FIGURE");
	uint32_t b = (uint32_t)atoi(e);

	(void)state;
	kw_serve_lane_test_hook = NULL;
	/* a forward's request is one stream message: the buffers hold 32 rows of 1024 */
	return setup_model(1024, b < 1 ? 1 : b > MAX_BLOCKS ? MAX_BLOCKS : b, 32, 192 * 1024);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_serve_lane_ping_is_answered_while_a_forward_computes, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_queues_behind_a_running_job_and_refuses_when_full, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_queued_job_of_a_gone_caller_is_not_computed, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_stop_waits_for_the_running_job_and_refuses_the_queued, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_session_step_computes_off_the_loop_and_equals_a_forward,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_ping_is_answered_during_back_to_back_stream_forwards, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_stream_error_from_the_lane_ends_only_its_call, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_queued_stream_of_a_gone_caller_is_not_computed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_serve_lane_stop_answers_the_running_stream_and_refuses_the_queued,
			setup, teardown),
	};
	const struct CMUnitTest figure[] = {
		cmocka_unit_test_setup_teardown(test_serve_lane_figure, setup_figure, teardown),
	};

	(void)argc;
	snprintf(dir, sizeof(dir), "%s/serve-lane-model-%d", dirname(argv[0]), (int)getpid());
	if (!IS_ENABLED(CONFIG_KW_APP_SERVE_LANE)) {
		printf("# skipped: KW_APP_SERVE_LANE is off\n");
		return 0;
	}
	if (!HM_CALL_POOLS_FIT) {
		printf("# skipped: the Hivemind call pools of this build (%zu bytes) do not fit the "
		       "test nodes' arenas\n", HM_CALL_POOLS_BYTES);
		return 0;
	}
	if (getenv("KW_SERVE_LANE_FIGURE"))
		return cmocka_run_group_tests_name("app/serve_lane figure", figure, NULL, NULL);
	return cmocka_run_group_tests_name("app/serve_lane", tests, NULL, NULL);
}
