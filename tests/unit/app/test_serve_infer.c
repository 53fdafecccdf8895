/*
 * Petals inference sessions and the stream handlers (app/serve_infer.c, app/serve_stream.c)
 * on two swarms of the simulated network (hm_pair.c): node b serves the two blocks of the
 * model writer's tiny LLaMA checkpoint (int8 with transposes) and one fp32 FFN expert;
 * node a calls rpc_inference, rpc_push and the rpc_*_stream handlers with requests built
 * here as a Petals / hivemind client writes them.
 *
 * Every inference answer must equal, byte for byte, a local decode of the same blocks with
 * their own kw_kv_cache (same kernels, same order of operations: exact, not within an
 * epsilon); the stream variants must equal the unary answer of the same request. Errors are
 * checked as the text a Python caller reads (str(exception) after hivemind's prefix), and
 * after each the server has no session and no slot taken and serves the next caller. Time
 * is virtual (step and session timeouts on the simulated clock).
 */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../net/hivemind/hm_pair.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>
#include <kw/policy.h>

#include "../../../app/serve_int.h"
#include "model_gen.h"
#include "serve_pb.h"

#define ROWS     320   /* max_rows: a 320-token forward answers more than one stream piece */
#define TOK      64    /* session_tokens */
#define STEP_MS  1000
#define SESS_MS  5000
#define CHAIN    "tiny-llama-hf.0 tiny-llama-hf.1"
#define MSG_MAX  (96 * 1024)
#define MAXR     48

static const struct kw_hm_limits hm_limits = {
	.calls_in = 4, .calls_per_peer = 4, .calls_out = 4, .buf_bytes = 16384,
	.timeout_ms = 60000,
};

static const struct kw_hm_stream_limits sx_limits = {
	.streams_in = 4, .streams_per_peer = 4, .streams_out = 4, .buf_bytes = 73728,
	.prefetch = 5, .idle_ms = 60000,
};

/* A caller's view of one stream call. */
struct cli {
	struct kw_hm_stream *st;
	int done, err;
	bool remote_error;
	char text[KW_HM_STREAM_TEXT_MAX];
	int n;
	size_t len[MAXR];
	uint8_t *msg[MAXR];
	bool hold;             /* keep each answer (KW_HM_STREAM_HOLD) until released */
	int base;              /* answers kept from g->store[base] (two callers at once) */
};

struct fx {
	struct kw_hm_pair p;
	struct kw_serve *srv, *srv2;  /* srv on b; srv2 on c: the next server of a chain */
	uint8_t *srv2_mem, *srv2_rmem;
	struct kw_arena srv2_a, srv2_ra;
	size_t srv2_rb;
	uint8_t *srv_mem, *w_mem, *ref_mem, meta_mem[1 << 20];
	struct kw_arena srv_a, w_a, ref_a, meta_a;
	struct kw_ckpt ck;
	struct kw_llama_q8 m8;
	struct kw_llama_w lw[2];
	struct kw_llama_dims d;
	struct kw_llama_ctx lctx;    /* the local reference */
	struct kw_kv_cache rkv;
	struct kw_ffn ex;
	float *fw[6];
	char dir[3100], err[512];
	uint8_t req[MSG_MAX], tb[MSG_MAX], store[MAXR][MSG_MAX];
	uint8_t big[2][MSG_MAX * 2];
	uint64_t rs;
	/* unary result */
	int udone, uerr;
	bool uremote;
	uint8_t udata[MSG_MAX * 2];
	size_t ulen;
};

static struct fx *g;
static char model_dir[3100];   /* beside the binary, written by the set-up */

static float frand(void)
{
	g->rs ^= g->rs << 13;
	g->rs ^= g->rs >> 7;
	g->rs ^= g->rs << 17;
	return (float)((g->rs >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* x[0..n) from frand. */
static void rand_fill(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand();
}

static void pump(int n)
{
	kw_hm_pair_pump(&g->p, n);
}

/* ---- requests as a Petals client writes them --------------------------------------------- */


static size_t put_msg(uint8_t *p, const struct kw_tensor_msg *m)
{
	size_t tl;

	assert_int_equal(kw_tensor_msg_encode(m, g->tb, sizeof(g->tb), &tl), 0);
	return put_field(p, 2, g->tb, tl);
}

static void tmsg(struct kw_tensor_msg *m, const void *buf, size_t buf_len, const char *dtype,
		 unsigned ndim, uint32_t d0, uint32_t d1, uint32_t d2)
{
	memset(m, 0, sizeof(*m));
	m->buf = buf;
	m->buf_len = buf_len;
	m->ndim = ndim;
	m->shape[0] = d0;
	m->shape[1] = d1;
	m->shape[2] = d2;
	strcpy(m->dtype, dtype);
}

/* msgpack of the metadata dict; NULL / < 0 leave a key out */
static size_t meta(uint8_t *out, size_t cap, const char *session, const char *step_id,
		   long max_length, long start, bool pushed)
{
	struct kw_mp_writer w;
	uint32_t n = !!session + !!step_id + (max_length >= 0) + (start >= 0) + pushed;
	long len;

	kw_mp_writer_init(&w, out, cap);
	kw_mp_put_map(&w, n);
	if (session) {
		kw_mp_put_cstr(&w, "session_id");
		kw_mp_put_cstr(&w, session);
	}
	if (step_id) {
		kw_mp_put_cstr(&w, "step_id");
		kw_mp_put_cstr(&w, step_id);
	}
	if (max_length >= 0) {
		kw_mp_put_cstr(&w, "max_length");
		kw_mp_put_uint(&w, (uint64_t)max_length);
	}
	if (start >= 0) {
		kw_mp_put_cstr(&w, "start_from_position");
		kw_mp_put_uint(&w, (uint64_t)start);
	}
	if (pushed) {
		kw_mp_put_cstr(&w, "pushed");
		kw_mp_put_bool(&w, true);
	}
	len = kw_mp_writer_finish(&w);
	assert_true(len > 0);
	return (size_t)len;
}

/* ExpertRequest{uid, tensors=[hidden (B,T,H), DUMMY prompts, hypo_ids], metadata} */
static size_t step_req(const char *uid, const float *x, uint32_t B, uint32_t T,
		       const int64_t *hypo, size_t nh, const uint8_t *mp, size_t mp_len)
{
	size_t H = g->d.hidden, o = 0;
	struct kw_tensor_msg m;

	o += put_field(g->req + o, 1, uid, strlen(uid));
	tmsg(&m, x, (size_t)B * T * H * 4, "float32", 3, B, T, (uint32_t)H);
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "float32", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	tmsg(&m, hypo, nh * 8, "int64", 1, (uint32_t)nh, 0, 0);
	o += put_msg(g->req + o, &m);
	if (mp_len)
		o += put_field(g->req + o, 3, mp, mp_len);
	return o;
}

/* ---- the caller's stream ------------------------------------------------------------------ */

static int cli_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct cli *c = arg;

	assert_true(c->base + c->n < MAXR);
	assert_true(len <= sizeof(g->store[0]));
	c->msg[c->n] = g->store[c->base + c->n];
	memcpy(c->msg[c->n], msg, len);
	c->len[c->n++] = len;
	return c->hold ? KW_HM_STREAM_HOLD : 0;
}

static void cli_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct cli *c = arg;

	c->done++;
	c->err = r->err;
	c->remote_error = r->remote_error;
	snprintf(c->text, sizeof(c->text), "%s", r->text ? r->text : "");
}

static const struct kw_hm_stream_ops cli_ops = { .on_message = cli_msg, .on_done = cli_done };

static void cli_open(struct cli *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(kw_hm_stream_open(g->p.a.hm, g->p.a.conn, name, &cli_ops, c, 0, &c->st),
			 0);
}

static void cli_send(struct cli *c, size_t len)
{
	assert_int_equal(kw_hm_stream_send(c->st, g->req, len), 0);
	pump(40);
}

/* The empty request that ends a session, then END_OF_STREAM: a normal close. */
static void cli_finish(struct cli *c)
{
	assert_int_equal(kw_hm_stream_send(c->st, NULL, 0), 0);
	assert_int_equal(kw_hm_stream_end(c->st), 0);
	pump(40);
	assert_int_equal(c->done, 1);
	assert_int_equal(c->err, 0);
	assert_false(c->remote_error);
}

/* The server is idle: no session, no slot. */
static void assert_idle(void)
{
	struct kw_serve_stats st;

	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.sessions_open, 0);
	assert_int_equal(st.slots_used, 0);
}

/* The call ended with the error a Python caller raises: "...: <str(e)>". */
static void assert_error(const struct cli *c, const char *name, const char *str_e)
{
	char want[KW_HM_STREAM_TEXT_MAX];

	assert_int_equal(c->done, 1);
	assert_true(c->remote_error);
	snprintf(want, sizeof(want), "Failed to call handler `%s` at ", name);
	assert_memory_equal(c->text, want, strlen(want));
	assert_string_equal(c->text + strlen(c->text) - strlen(str_e), str_e);
	assert_true(strlen(c->text) >= strlen(want) + strlen(str_e) + 2);
	assert_memory_equal(c->text + strlen(c->text) - strlen(str_e) - 2, ": ", 2);
}

/* Response k of c as its single tensor. */
static void resp_tensor(const struct cli *c, int k, struct kw_tensor_msg *m)
{
	const uint8_t *p = c->msg[k];
	size_t pos = 0;
	uint64_t l = 0;

	assert_true(k < c->n);
	assert_int_equal(p[pos++], 0x12);
	l = get_len(p, &pos);
	assert_int_equal(pos + l, c->len[k]);
	assert_int_equal(kw_tensor_msg_decode(m, p + pos, (size_t)l), 0);
}

/* Response k equals y (B, T, H) float32 NONE byte for byte. */
static void assert_resp_equals(const struct cli *c, int k, const float *y, uint32_t B, uint32_t T)
{
	struct kw_tensor_msg m;

	resp_tensor(c, k, &m);
	assert_string_equal(m.dtype, "float32");
	assert_int_equal(m.compression, 0);
	assert_int_equal(m.ndim, 3);
	assert_int_equal(m.shape[0], B);
	assert_int_equal(m.shape[1], T);
	assert_int_equal(m.shape[2], g->d.hidden);
	assert_int_equal(m.buf_len, (size_t)B * T * g->d.hidden * 4);
	assert_memory_equal(m.buf, y, m.buf_len);
}

/* ---- the local reference: the same blocks with their own KV cache ------------------------ */

static struct kw_kv_session *ref_open(unsigned batch)
{
	struct kw_kv_session *s;

	assert_int_equal(kw_kv_open(&g->rkv, batch, &s), 0);
	return s;
}

static void ref_step(struct kw_kv_session *s, const float *x, uint32_t B, uint32_t T, uint32_t pos,
		     float *y)
{
	memcpy(y, x, (size_t)B * T * g->d.hidden * 4);
	for (size_t l = 0; l < 2; l++)
		assert_int_equal(kw_llama_forward(&g->lctx, &g->lw[l], &g->rkv, s, l, y, B, T, pos,
						  y), 0);
}

/* Opens an inference stream on c and sends its first step: x (B x T from position 0) under
 * session and step_id with max_length; y gets the local reference's answer to it. */
static void first_step(struct cli *c, struct kw_kv_session *rs, const float *x, uint32_t B,
		       uint32_t T, const char *session, const char *step_id, long max_length,
		       float *y)
{
	uint8_t mp[256];
	size_t ml = meta(mp, sizeof(mp), session, step_id, max_length, -1, false);

	cli_open(c, KW_SERVE_PT_INFERENCE);
	cli_send(c, step_req(CHAIN, x, B, T, NULL, 0, mp, ml));
	ref_step(rs, x, B, T, 0, y);
}

/* A further step on c: x (B x T) under session and step_id, no other metadata. */
static void next_step(struct cli *c, const float *x, uint32_t B, uint32_t T, const char *session,
		      const char *step_id)
{
	uint8_t mp[256];

	cli_send(c, step_req(CHAIN, x, B, T, NULL, 0, mp,
			     meta(mp, sizeof(mp), session, step_id, -1, -1, false)));
}

/* ---- fixture ------------------------------------------------------------------------------- */

static void make_expert(void)
{
	size_t H = 64, I = 4 * H;

	for (int j = 0; j < 6; j++)
		g->fw[j] = calloc(I * H, sizeof(float));
	for (size_t i = 0; i < I * H; i++) {
		g->fw[0][i] = frand() / 8.0f;
		g->fw[2][i] = frand() / 16.0f;
	}
	for (size_t i = 0; i < H; i++) {
		g->fw[4][i] = 1.0f;
		g->fw[5][i] = frand() * 0.1f;
	}
	memset(&g->ex, 0, sizeof(g->ex));
	g->ex.kind = KW_FFN_GELU;
	g->ex.hid = H;
	g->ex.inter = I;
	g->ex.up = (struct kw_lin){ .n = I, .k = H, .f32 = g->fw[0], .bias = g->fw[1] };
	g->ex.down = (struct kw_lin){ .n = H, .k = I, .f32 = g->fw[2], .bias = g->fw[3] };
	g->ex.ln_w = g->fw[4];
	g->ex.ln_b = g->fw[5];
}

/* Set-up failures say where (cmocka only says the group set-up failed). */
static int fail_at(int line)
{
	fprintf(stderr, "set-up failed at line %d: %s\n", line, g && g->err[0] ? g->err : "");
	return -1;
}

static int setup(void **state)
{
	struct kw_serve_limits lim = {
		.max_rows = ROWS, .max_experts = 2, .slots = 1, .max_blocks = 4, .sessions = 2,
		.session_tokens = TOK, .step_timeout_ms = STEP_MS, .session_timeout_ms = SESS_MS,
		.stream_piece = 65536,
	};
	struct kw_model_gen mg;
	size_t wb, sb = 16 << 20, rb;

	(void)state;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->rs = 0x9e3779b97f4a7c15ull;
	snprintf(g->dir, sizeof(g->dir), "%s", model_dir);
	kw_model_gen_tiny(&mg, 11);
	mg.shards = 1;
	if (kw_model_gen_write(&mg, g->dir, g->err, sizeof(g->err)))
		return fail_at(__LINE__);
	kw_arena_init(&g->meta_a, g->meta_mem, sizeof(g->meta_mem));
	if (kw_ckpt_open(&g->ck, g->dir, &g->meta_a, g->err, sizeof(g->err)))
		return fail_at(__LINE__);
	wb = 2 * kw_llama_q8_bytes(&g->ck.cfg, 2) + (8 << 20);
	g->w_mem = malloc(wb);
	kw_arena_init(&g->w_a, g->w_mem, wb);
	if (kw_llama_q8_load(&g->m8, &g->ck, 0, 2, &g->w_a, NULL, NULL, g->err, sizeof(g->err)) ||
	    kw_llama_w_from_q8(&g->lw[0], &g->m8.blk[0], &g->w_a) ||
	    kw_llama_w_from_q8(&g->lw[1], &g->m8.blk[1], &g->w_a))
		return fail_at(__LINE__);
	kw_llama_dims_from_config(&g->d, &g->ck.cfg);
	make_expert();
	/* the local reference */
	rb = kw_llama_ctx_bytes(&g->d, ROWS, KW_MAX(ROWS, TOK), 1) +
	     kw_kv_cache_bytes(2, TOK, 2, g->d.kv_heads, g->d.head_dim) + 4096;
	g->ref_mem = malloc(rb);
	kw_arena_init(&g->ref_a, g->ref_mem, rb);
	if (kw_llama_ctx_init(&g->lctx, &g->d, NULL, NULL, ROWS, KW_MAX(ROWS, TOK), &g->ref_a) ||
	    kw_kv_cache_init(&g->rkv, 2, TOK, 2, g->d.kv_heads, g->d.head_dim, &g->ref_a))
		return fail_at(__LINE__);
	/* the network and the server on b */
	if (kw_hm_pair_init(&g->p, 3, &hm_limits, 24 * 1024) < 0 ||
	    kw_hm_stream_setup(g->p.a.hm, &sx_limits) < 0 ||
	    kw_hm_stream_setup(g->p.b.hm, &sx_limits) < 0 ||
	    kw_hm_stream_setup(g->p.c.hm, &sx_limits) < 0)
		return fail_at(__LINE__);
	/* the next server, on c (b reaches it over c's connection); its request buffers come
	 * from an arena of exactly kw_serve_bytes, as kwnode sizes them */
	g->srv2_mem = malloc(sb);
	kw_arena_init(&g->srv2_a, g->srv2_mem, sb);
	if (kw_serve_create(&g->srv2_a, &lim, &g->srv2) ||
	    kw_serve_set_blocks(g->srv2, "tiny-llama-hf", 0, 2, g->lw, &g->d))
		return fail_at(__LINE__);
	g->srv2_rb = kw_serve_bytes(g->srv2);
	g->srv2_rmem = malloc(g->srv2_rb);
	kw_arena_init(&g->srv2_ra, g->srv2_rmem, g->srv2_rb);
	if (kw_serve_start(g->srv2, &g->srv2_ra, g->p.c.hm, NULL, NULL, false))
		return fail_at(__LINE__);
	g->srv_mem = malloc(sb);
	kw_arena_init(&g->srv_a, g->srv_mem, sb);
	if (kw_serve_create(&g->srv_a, &lim, &g->srv) ||
	    kw_serve_add_expert(g->srv, "ffn.0.0", &g->ex, KW_COMP_NONE) ||
	    kw_serve_set_blocks(g->srv, "tiny-llama-hf", 0, 2, g->lw, &g->d))
		return fail_at(__LINE__);
	if (kw_serve_bytes(g->srv) > kw_arena_free_bytes(&g->srv_a) ||
	    kw_serve_start(g->srv, NULL, g->p.b.hm, NULL, NULL, false))
		return fail_at(__LINE__);
	return kw_hm_pair_connect(&g->p) ? fail_at(__LINE__) : 0;
}

static int teardown(void **state)
{
	(void)state;
	kw_hm_pair_fini(&g->p);
	kw_ckpt_close(&g->ck);
	kw_test_rm_dir(g->dir);
	for (int j = 0; j < 6; j++)
		free(g->fw[j]);
	free(g->srv_mem);
	free(g->srv2_mem);
	free(g->srv2_rmem);
	free(g->w_mem);
	free(g->ref_mem);
	free(g);
	return 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

/*
 * A 4-token prompt then 31 one-token steps, each next input taken from the last output as a
 * greedy decoder feeds its choice back: every answer equals the local decode byte for byte.
 */
static void test_infer_32_steps_equal_local_kv_decode(void **state)
{
	size_t H = g->d.hidden;
	float x[4 * 64], y[4 * 64], *last;
	struct kw_kv_session *rs = ref_open(1);
	uint8_t mp[256];
	struct kw_serve_stats st;
	struct cli c;
	uint32_t pos = 0;
	char sid[16];

	(void)state;
	assert_int_equal(H, 64);
	rand_fill(x, 4 * H);
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	for (int k = 0; k < 32; k++) {
		uint32_t T = k == 0 ? 4 : 1;
		size_t ml;

		snprintf(sid, sizeof(sid), "step-%d", k);
		ml = meta(mp, sizeof(mp), k == 0 ? "sess-a" : "sess-a", sid, k == 0 ? 40 : -1, -1,
			  false);
		cli_send(&c, step_req(CHAIN, x, 1, T, NULL, 0, mp, ml));
		assert_int_equal(c.n, k + 1);
		ref_step(rs, x, 1, T, pos, y);
		assert_resp_equals(&c, k, y, 1, T);
		pos += T;
		last = y + (T - 1) * H;
		for (size_t i = 0; i < H; i++)   /* the "chosen token" fed back */
			x[i] = 0.5f * last[i] + 0.1f * frand();
	}
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.sessions_open, 1);
	assert_int_equal(st.steps, 32);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* start_from_position rewinds: the step after it equals a local decode rewound alike. */
static void test_infer_start_from_position_rewinds(void **state)
{
	size_t H = g->d.hidden;
	float x[3 * 64], y[3 * 64];
	struct kw_kv_session *rs = ref_open(1);
	uint8_t mp[256];
	struct cli c;
	size_t ml;

	(void)state;
	rand_fill(x, 3 * H);
	first_step(&c, rs, x, 1, 3, NULL, "a", 16, y);
	assert_resp_equals(&c, 0, y, 1, 3);
	/* two more tokens, then back to position 2 with another one */
	next_step(&c, x, 1, 2, NULL, "b");
	ref_step(rs, x, 1, 2, 3, y);
	assert_resp_equals(&c, 1, y, 1, 2);
	x[0] += 1.0f;
	ml = meta(mp, sizeof(mp), NULL, "c", -1, 2, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_int_equal(kw_kv_rewind(rs, 2, 2), 0);
	ref_step(rs, x, 1, 1, 2, y);
	assert_resp_equals(&c, 2, y, 1, 1);
	/* a position beyond what the cache holds (3 now) is refused */
	ml = meta(mp, sizeof(mp), NULL, "d", -1, 7, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_error(&c, KW_SERVE_PT_INFERENCE,
		     "start_from_position=7 is outside the cache (prefix_length=3)");
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* hypo_ids reorders the cache's rows before the step, as _reorder_cache_inplace does. */
static void test_infer_hypo_ids_reorder_the_cache(void **state)
{
	size_t H = g->d.hidden;
	float x[2 * 2 * 64], y[2 * 2 * 64];
	struct kw_kv_session *rs = ref_open(2);
	int64_t hypo[2] = { 1, 1 };
	uint32_t h32[2] = { 1, 1 };
	uint8_t mp[256];
	struct cli c;
	size_t ml;

	(void)state;
	rand_fill(x, 4 * H);
	first_step(&c, rs, x, 2, 2, NULL, NULL, 8, y);
	assert_resp_equals(&c, 0, y, 2, 2);
	/* both rows continue hypothesis 1 with the same token: their outputs are the same */
	memcpy(x + H, x, H * 4);
	ml = meta(mp, sizeof(mp), NULL, NULL, -1, -1, false);
	cli_send(&c, step_req(CHAIN, x, 2, 1, hypo, 2, mp, ml));
	assert_int_equal(kw_kv_reorder(&g->rkv, rs, h32), 0);
	ref_step(rs, x, 2, 1, 2, y);
	assert_resp_equals(&c, 1, y, 2, 1);
	assert_memory_equal(y, y + H, H * 4);
	next_step(&c, x, 2, 1, NULL, NULL);
	ref_step(rs, x, 2, 1, 3, y);
	assert_resp_equals(&c, 2, y, 2, 1);
	assert_memory_equal(y, y + H, H * 4);
	/* an index outside the batch */
	hypo[0] = 2;
	cli_send(&c, step_req(CHAIN, x, 2, 1, hypo, 2, mp, ml));
	assert_error(&c, KW_SERVE_PT_INFERENCE, "hypo_ids[0] = 2 is out of bounds for a batch of 2");
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* A repeated step_id is dropped without an answer; the next step goes on from the cache. */
static void test_infer_repeated_step_id_is_dropped(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y[64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_serve_stats st0, st;
	struct cli c;

	(void)state;
	rand_fill(x, H);
	kw_serve_get_stats(g->srv, &st0);
	first_step(&c, rs, x, 1, 1, NULL, "s1", 8, y);
	next_step(&c, x, 1, 1, NULL, "s1");
	assert_int_equal(c.n, 1);
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.steps_dup, st0.steps_dup + 1);
	next_step(&c, x, 1, 1, NULL, "s2");
	assert_int_equal(c.n, 2);
	ref_step(rs, x, 1, 1, 1, y);
	assert_resp_equals(&c, 1, y, 1, 1);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* A zero-token step (Petals' allocation check) is answered with an empty (B, 0, H). */
static void test_infer_zero_token_step_is_answered_empty(void **state)
{
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	(void)state;
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 8, -1, false);
	cli_send(&c, step_req(CHAIN, NULL, 3, 0, NULL, 0, mp, ml));
	assert_int_equal(c.n, 1);
	assert_resp_equals(&c, 0, NULL, 3, 0);
	cli_finish(&c);
	assert_idle();
}

static void open_and_fail(const char *uid, long max_length, uint32_t B, uint32_t T,
			  const char *str_e)
{
	float x[2 * 64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, max_length, -1, false);
	cli_send(&c, step_req(uid, x, B, T, NULL, 0, mp, ml));
	assert_int_equal(c.n, 0);
	assert_error(&c, KW_SERVE_PT_INFERENCE, str_e);
	assert_idle();
}

/* The limits, each with Petals' text (or ours where Petals has none), then idle again. */
static void test_infer_limits_are_refused_with_their_texts(void **state)
{
	char want[200];
	float x[64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	(void)state;
	open_and_fail("tiny-llama-hf.7", 8, 1, 1, "Remote peer does not serve tiny-llama-hf.7");
	open_and_fail(CHAIN, -1, 1, 1, "rpc_inference metadata must contain int max_length, "
		      "got None");
	snprintf(want, sizeof(want), "Cannot allocate KV cache for %d tokens, max = %d", TOK + 1,
		 TOK);
	open_and_fail(CHAIN, TOK + 1, 1, 1, want);
	/* batch 2 x 40 positions do not fit a 64-position slot */
	snprintf(want, sizeof(want), "Could not allocate %u bytes, max cache size = %u bytes",
		 (unsigned)(2 * 2 * g->d.kv_heads * g->d.head_dim * 40 * 4 * 2),
		 (unsigned)(2 * TOK * g->d.kv_heads * g->d.head_dim * 4 * 2));
	open_and_fail(CHAIN, 40, 2, 1, want);
	/* prefix + T beyond max_length */
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 2, -1, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_int_equal(c.n, 1);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, NULL, 0));
	assert_int_equal(c.n, 2);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, NULL, 0));
	assert_error(&c, KW_SERVE_PT_INFERENCE, "Maximum length exceeded: prefix 2 + current 1 "
		     "exceeds pre-allocated maximum 2");
	assert_idle();
}

/* A session whose first step (1 x 1) carries prompts of the given shape is refused with str_e. */
static void prompt_refused(unsigned ndim_unused, uint32_t nb, uint32_t bp, uint32_t pre,
			   uint32_t h, unsigned ndim, const char *str_e)
{
	static float pv[4 * 4 * 64];
	float x[64] = { 0 };
	struct kw_tensor_msg m;
	uint8_t mp[64];
	size_t o, ml = meta(mp, sizeof(mp), NULL, NULL, 8, -1, false);
	struct cli c;

	(void)ndim_unused;
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, 64 * 4, "float32", 3, 1, 1, 64);
	o += put_msg(g->req + o, &m);
	if (ndim == 3)
		tmsg(&m, pv, (size_t)nb * bp * 64 * 4, "float32", 3, nb, bp, 64);
	else
		tmsg(&m, pv, (size_t)nb * bp * pre * h * 4, "float32", 4, nb, bp, pre);
	m.shape[3] = h;
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "int64", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	o += put_field(g->req + o, 3, mp, ml);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_PT_INFERENCE, str_e);
	assert_idle();
}

/* Wrong tensors: too few, hypo_ids not int64, a wrong hidden size, deep prompts. */
static void test_infer_bad_tensors_end_the_session(void **state)
{
	float x[2 * 64] = { 0 };
	struct kw_tensor_msg m;
	uint8_t mp[64];
	struct cli c;
	size_t ml, o;

	(void)state;
	/* only hidden_states */
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 8, -1, false);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, 64 * 4, "float32", 3, 1, 1, 64);
	o += put_msg(g->req + o, &m);
	o += put_field(g->req + o, 3, mp, ml);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_PT_INFERENCE, "not enough values to unpack (expected at least 3, "
		     "got 1)");
	assert_idle();
	/* hypo_ids as float32 */
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "float32", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	o += put_msg(g->req + o, &m);
	o += put_field(g->req + o, 3, mp, ml);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_PT_INFERENCE, "hypo ids must be int64, got torch.float32");
	assert_idle();
	/* hidden size 32 */
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, 64 * 4, "float32", 3, 1, 2, 32);
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "float32", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "int64", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	o += put_field(g->req + o, 3, mp, ml);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_PT_INFERENCE, "hidden_states: expected a 3d tensor of shape "
		     "[..., 64], got [1, 2, 32]");
	assert_idle();
	/* deep prompts of a wrong shape: Petals' (torch's) texts */
	prompt_refused(4, 1, 1, 1, 64, 3, "prompts: expected a 4d tensor of shape [num_blocks, "
		       "batch, pre_seq_len, 64], got 3d");
	prompt_refused(4, 1, 1, 1, 64, 4, "Received 1 prompts for 2 backends");
	prompt_refused(4, 2, 1, 2, 64, 4, "The size of tensor a (1) must match the size of "
		       "tensor b (2) at non-singleton dimension 1");
	assert_idle();
}

/* More sessions than cache slots: Petals' AllocationFailed; a slot frees when one ends. */
static void test_infer_more_sessions_than_slots_is_out_of_memory(void **state)
{
	float x[64] = { 0 };
	uint8_t mp[64];
	struct cli c[3];
	size_t ml;
	char want[128];

	(void)state;
	ml = meta(mp, sizeof(mp), NULL, NULL, 16, -1, false);
	for (int i = 0; i < 3; i++) {
		cli_open(&c[i], KW_SERVE_PT_INFERENCE);
		cli_send(&c[i], step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	}
	assert_int_equal(c[0].n, 1);
	assert_int_equal(c[1].n, 1);
	snprintf(want, sizeof(want), "Could not allocate %u bytes immediately: out of memory",
		 (unsigned)(2 * g->d.kv_heads * g->d.head_dim * 16 * 4 * 2));
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, want);
	cli_finish(&c[0]);
	cli_open(&c[2], KW_SERVE_PT_INFERENCE);
	cli_send(&c[2], step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_int_equal(c[2].n, 1);
	cli_finish(&c[1]);
	cli_finish(&c[2]);
	assert_idle();
}

/* ---- waiting for a cache slot (alloc_timeout) ------------------------------------------------ */

/* {max_length: 16, alloc_timeout: t} (t < 0: left out) */
static size_t meta_alloc(uint8_t *out, size_t cap, double t)
{
	struct kw_mp_writer w;
	long len;

	kw_mp_writer_init(&w, out, cap);
	kw_mp_put_map(&w, t < 0 ? 1 : 2);
	kw_mp_put_cstr(&w, "max_length");
	kw_mp_put_uint(&w, 16);
	if (t >= 0) {
		kw_mp_put_cstr(&w, "alloc_timeout");
		kw_mp_put_float64(&w, t);
	}
	len = kw_mp_writer_finish(&w);
	assert_true(len > 0);
	return (size_t)len;
}

/* Opens a session on c with x (1 x 1) and the given alloc_timeout. */
static void open_alloc(struct cli *c, const float *x, double t)
{
	uint8_t mp[64];
	size_t ml = meta_alloc(mp, sizeof(mp), t);

	cli_open(c, KW_SERVE_PT_INFERENCE);
	cli_send(c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
}

static size_t waiting(void)
{
	struct kw_serve_stats st;

	kw_serve_get_stats(g->srv, &st);
	return st.alloc_waiting;
}

static unsigned want_bytes(void)
{
	return (unsigned)(2 * g->d.kv_heads * g->d.head_dim * 16 * 4 * 2);
}

/* Both slots taken: a session with alloc_timeout waits, and opens (its first step answered,
 * equal to the local decode) as soon as one of them ends. */
static void test_infer_alloc_waits_and_is_granted_when_a_session_ends(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y[64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_serve_stats st0, st;
	struct cli c[3];

	(void)state;
	rand_fill(x, H);
	kw_serve_get_stats(g->srv, &st0);
	open_alloc(&c[0], x, -1);
	open_alloc(&c[1], x, -1);
	open_alloc(&c[2], x, 0.8);
	assert_int_equal(c[2].n, 0);
	assert_int_equal(c[2].done, 0);
	assert_int_equal(waiting(), 1);
	kw_hm_pair_advance(&g->p, 300);
	pump(20);
	assert_int_equal(c[2].n, 0);
	cli_finish(&c[0]);
	pump(20);
	assert_int_equal(waiting(), 0);
	assert_int_equal(c[2].n, 1);
	assert_int_equal(c[2].done, 0);
	ref_step(rs, x, 1, 1, 0, y);
	assert_resp_equals(&c[2], 0, y, 1, 1);
	/* the session goes on as any other */
	x[1] = 0.5f;
	next_step(&c[2], x, 1, 1, NULL, NULL);
	assert_int_equal(c[2].n, 2);
	ref_step(rs, x, 1, 1, 1, y);
	assert_resp_equals(&c[2], 1, y, 1, 1);
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.alloc_waits, st0.alloc_waits + 1);
	assert_int_equal(st.alloc_timeouts, st0.alloc_timeouts);
	cli_finish(&c[1]);
	cli_finish(&c[2]);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* No slot frees within alloc_timeout: Petals' AllocationFailed text; a zero timeout is
 * refused at once, a string one is read as float() reads it. */
static void test_infer_alloc_timeout_fails_with_petals_text(void **state)
{
	float x[64] = { 0 };
	struct kw_serve_stats st0, st;
	uint8_t mp[96];
	struct cli c[3];
	char want[160];
	struct kw_mp_writer w;

	(void)state;
	kw_serve_get_stats(g->srv, &st0);
	open_alloc(&c[0], x, -1);
	open_alloc(&c[1], x, -1);
	open_alloc(&c[2], x, 0.5);
	kw_hm_pair_advance(&g->p, 450);
	pump(20);
	assert_int_equal(c[2].done, 0);
	kw_hm_pair_advance(&g->p, 100);
	pump(20);
	snprintf(want, sizeof(want), "Could not allocate %u within 0.5 seconds", want_bytes());
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, want);
	assert_int_equal(waiting(), 0);
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.alloc_timeouts, st0.alloc_timeouts + 1);
	/* 0: at once */
	open_alloc(&c[2], x, 0);
	snprintf(want, sizeof(want), "Could not allocate %u bytes immediately: out of memory",
		 want_bytes());
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, want);
	/* float("0.25") */
	kw_mp_writer_init(&w, mp, sizeof(mp));
	kw_mp_put_map(&w, 2);
	kw_mp_put_cstr(&w, "max_length");
	kw_mp_put_uint(&w, 16);
	kw_mp_put_cstr(&w, "alloc_timeout");
	kw_mp_put_cstr(&w, "0.25");
	cli_open(&c[2], KW_SERVE_PT_INFERENCE);
	cli_send(&c[2], step_req(CHAIN, x, 1, 1, NULL, 0, mp, (size_t)kw_mp_writer_finish(&w)));
	assert_int_equal(c[2].done, 0);
	kw_hm_pair_advance(&g->p, 300);
	pump(20);
	snprintf(want, sizeof(want), "Could not allocate %u within 0.25 seconds", want_bytes());
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, want);
	/* float(None) */
	kw_mp_writer_init(&w, mp, sizeof(mp));
	kw_mp_put_map(&w, 2);
	kw_mp_put_cstr(&w, "max_length");
	kw_mp_put_uint(&w, 16);
	kw_mp_put_cstr(&w, "alloc_timeout");
	kw_mp_put_nil(&w);
	cli_open(&c[2], KW_SERVE_PT_INFERENCE);
	cli_send(&c[2], step_req(CHAIN, x, 1, 1, NULL, 0, mp, (size_t)kw_mp_writer_finish(&w)));
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, "float() argument must be a string or a real "
		     "number, not 'NoneType'");
	cli_finish(&c[0]);
	cli_finish(&c[1]);
	assert_idle();
}

/* Waiters are served in the order they came; one whose caller goes away leaves the queue. */
static void test_infer_alloc_waiters_in_order_closed_one_leaves(void **state)
{
	float x[64] = { 0 };
	struct cli c[4], d;

	(void)state;
	open_alloc(&c[0], x, -1);
	open_alloc(&c[1], x, -1);
	open_alloc(&c[2], x, 0.9);
	open_alloc(&c[3], x, 0.9);
	assert_int_equal(waiting(), 2);
	cli_finish(&c[1]);
	pump(20);
	assert_int_equal(c[2].n, 1);
	assert_int_equal(c[3].n, 0);
	assert_int_equal(waiting(), 1);
	cli_finish(&c[2]);
	pump(20);
	assert_int_equal(c[3].n, 1);
	assert_int_equal(waiting(), 0);
	/* c[0] and c[3] hold both slots: d waits and goes away, then c[1] waits */
	open_alloc(&d, x, 0.9);
	assert_int_equal(waiting(), 1);
	assert_int_equal(kw_hm_stream_cancel(d.st), 0);
	pump(20);
	assert_int_equal(waiting(), 0);
	open_alloc(&c[1], x, 0.9);
	assert_int_equal(waiting(), 1);
	cli_finish(&c[0]);
	pump(20);
	assert_int_equal(c[1].n, 1);
	assert_int_equal(c[1].done, 0);
	cli_finish(&c[1]);
	cli_finish(&c[3]);
	assert_idle();
}

/* Pausing refuses the sessions waiting for a slot with the pause text; open ones go on. */
static void test_infer_alloc_waiter_refused_when_pausing(void **state)
{
	float x[64] = { 0 };
	char want[KW_SERVE_ERR_MAX];
	struct cli c[3];

	(void)state;
	open_alloc(&c[0], x, -1);
	open_alloc(&c[1], x, -1);
	open_alloc(&c[2], x, 0.9);
	assert_int_equal(waiting(), 1);
	kw_serve_set_accepting(g->srv, false);
	pump(20);
	kw_serve_pystr(KW_SERVE_PAUSED_REPR, want, sizeof(want));
	assert_error(&c[2], KW_SERVE_PT_INFERENCE, want);
	assert_int_equal(waiting(), 0);
	kw_serve_set_accepting(g->srv, true);
	cli_finish(&c[0]);
	cli_finish(&c[1]);
	assert_idle();
}

/* No request for step_timeout: the session ends quietly (Petals returns); it is freed. */
static void test_infer_step_timeout_closes_quietly(void **state)
{
	float x[64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	(void)state;
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 16, -1, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_int_equal(c.n, 1);
	kw_hm_pair_advance(&g->p, STEP_MS - 100);
	assert_int_equal(c.done, 0);
	kw_hm_pair_advance(&g->p, 200);
	pump(20);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.err, 0);
	assert_false(c.remote_error);
	assert_idle();
}

/* Steps inside step_timeout keep a session alive until session_timeout: then str(TimeoutError()). */
static void test_infer_session_timeout_ends_the_session(void **state)
{
	float x[64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t ml;
	int k = 0;

	(void)state;
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 16, -1, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	for (k = 1; k < 16 && !c.done; k++) {
		kw_hm_pair_advance(&g->p, STEP_MS * 8 / 10);
		cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, NULL, 0));
	}
	/* 6 steps answered (t = 0 .. 4000 ms), the one at 4800 too, the one at 5600 refused */
	assert_int_equal(c.n, 7);
	assert_int_equal(c.done, 1);
	assert_true(c.remote_error);
	assert_error(&c, KW_SERVE_PT_INFERENCE, "");
	assert_idle();
}

/* rpc_push delivers a step into the session (answered on its stream); the caller's own copy
 * of that step (same step_id) is then dropped. Unknown sessions are ignored. */
static void on_unary(const struct kw_hm_result *r, void *user)
{
	g->udone++;
	g->uerr = r->err;
	g->uremote = r->remote_error;
	g->ulen = KW_MIN(r->len, sizeof(g->udata));
	if (r->len)
		memcpy(g->udata, r->data, g->ulen);
}

static void push(size_t len)
{
	g->udone = 0;
	assert_int_equal(kw_hm_call(g->p.a.hm, g->p.a.conn, KW_SERVE_PT_PUSH, g->req, len, 0,
				    on_unary, NULL), 0);
	pump(40);
	assert_int_equal(g->udone, 1);
	assert_int_equal(g->uerr, 0);
}

static void test_infer_push_is_delivered_once(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y[64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_serve_stats st0, st;
	uint8_t mp[256];
	struct cli c;
	size_t ml;

	(void)state;
	rand_fill(x, H);
	kw_serve_get_stats(g->srv, &st0);
	first_step(&c, rs, x, 1, 1, "sess-p", "p0", 8, y);
	/* pushed step p1 */
	x[3] = 2.0f;
	ml = meta(mp, sizeof(mp), "sess-p", "p1", -1, -1, true);
	push(step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_false(g->uremote);
	assert_int_equal(g->ulen, 0);   /* an empty ExpertResponse */
	assert_int_equal(c.n, 2);
	ref_step(rs, x, 1, 1, 1, y);
	assert_resp_equals(&c, 1, y, 1, 1);
	/* the caller's own p1 */
	next_step(&c, x, 1, 1, "sess-p", "p1");
	assert_int_equal(c.n, 2);
	/* a push to a session nobody has */
	ml = meta(mp, sizeof(mp), "nobody", "p9", -1, -1, true);
	push(step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_false(g->uremote);
	assert_int_equal(c.n, 2);
	/* a push without a session_id */
	ml = meta(mp, sizeof(mp), NULL, "p9", -1, -1, true);
	push(step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_true(g->uremote);
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.pushes, st0.pushes + 1);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* ---- next_servers: pushing a step's outputs to the next server ------------------------------ */

/* c's PeerID as text */
static void peer_c(char *out, size_t cap)
{
	struct kw_peer_id id;

	assert_int_equal(kw_peer_id_from_pubkey(&g->p.c.key.pub, &id), 0);
	assert_int_equal(kw_peer_id_to_text(&id, out, cap), 0);
}

/* b's connection to c: c dialed b, and a build whose connection limits admit one inbound
 * connection (KW_NET_MAX_CONNS_IN, KW_NET_CONNS_PER_IP at 1) keeps only a's. */
static struct kw_conn *conn_bc(void)
{
	struct kw_peer_id id;

	assert_int_equal(kw_peer_id_from_pubkey(&g->p.c.key.pub, &id), 0);
	return kw_swarm_find_conn(g->p.b.sw, &id);
}

/* {session_id, step_id, next_servers: [[peer, next_session, 0, 2]], max_length?} */
static size_t meta_next(uint8_t *out, size_t cap, const char *session, const char *step_id,
			const char *peer, const char *next_session, long max_length)
{
	struct kw_mp_writer w;
	long len;

	kw_mp_writer_init(&w, out, cap);
	kw_mp_put_map(&w, max_length >= 0 ? 4 : 3);
	kw_mp_put_cstr(&w, "session_id");
	kw_mp_put_cstr(&w, session);
	kw_mp_put_cstr(&w, "step_id");
	kw_mp_put_cstr(&w, step_id);
	if (max_length >= 0) {
		kw_mp_put_cstr(&w, "max_length");
		kw_mp_put_uint(&w, (uint64_t)max_length);
	}
	kw_mp_put_cstr(&w, "next_servers");
	kw_mp_put_array(&w, 1);
	kw_mp_put_array(&w, 4);
	kw_mp_put_cstr(&w, peer);
	kw_mp_put_cstr(&w, next_session);
	kw_mp_put_uint(&w, 0);
	kw_mp_put_uint(&w, 2);
	len = kw_mp_writer_finish(&w);
	assert_true(len > 0);
	return (size_t)len;
}

/* Opens the client's session s2 on c's server (from b's side of the b-c connection). */
static void open_on_c(struct cli *c2, const float *x, const char *session, const char *step_id)
{
	struct kw_conn *bc = conn_bc();
	uint8_t mp[256];
	size_t ml = meta(mp, sizeof(mp), session, step_id, 8, -1, false);

	assert_non_null(bc);
	memset(c2, 0, sizeof(*c2));
	c2->base = MAXR / 2;
	assert_int_equal(kw_hm_stream_open(g->p.b.hm, bc, KW_SERVE_PT_INFERENCE, &cli_ops, c2, 0,
					   &c2->st), 0);
	cli_send(c2, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
}

/*
 * A chain of two servers (b then c, each the two blocks): the client's step on b names c in
 * next_servers; b answers it and pushes its output to c's rpc_push, whose session answers
 * the step from it (equal to the local decode of both servers in a row) before the
 * client's own copy, which is then dropped; the session on c goes on from that state.
 */
static void test_infer_next_servers_push_reaches_the_next_server(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y1[64], y2[64], x0[64];
	struct kw_kv_session *r1, *r2;
	struct kw_serve_stats st0, st, st2a, st2;
	char peer[KW_PEER_ID_TEXT_MAX];
	uint8_t mp[512];
	struct cli c1, c2;
	size_t ml;

	(void)state;
	if (!conn_bc())
		skip();   /* this build's connection limits keep no b-c connection (see conn_bc) */
	r1 = ref_open(1);
	r2 = ref_open(1);
	peer_c(peer, sizeof(peer));
	kw_serve_get_stats(g->srv, &st0);
	kw_serve_get_stats(g->srv2, &st2a);
	/* step 0 sent by the client to both (no push yet) */
	rand_fill(x0, H);
	first_step(&c1, r1, x0, 1, 1, "s1", "k0", 8, y1);
	ref_step(r2, y1, 1, 1, 0, y2);
	open_on_c(&c2, y1, "s2", "k0");
	assert_int_equal(c1.n, 1);
	assert_int_equal(c2.n, 1);
	assert_resp_equals(&c2, 0, y2, 1, 1);
	/* step 1 on b names c: b pushes, c answers from the pushed outputs */
	rand_fill(x, H);
	ml = meta_next(mp, sizeof(mp), "s1", "k1", peer, "s2", -1);
	cli_send(&c1, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	pump(40);
	ref_step(r1, x, 1, 1, 1, y1);
	ref_step(r2, y1, 1, 1, 1, y2);
	assert_int_equal(c1.n, 2);
	assert_resp_equals(&c1, 1, y1, 1, 1);
	assert_int_equal(c2.n, 2);
	assert_resp_equals(&c2, 1, y2, 1, 1);
	kw_serve_get_stats(g->srv, &st);
	kw_serve_get_stats(g->srv2, &st2);
	assert_int_equal(st.pushes_out, st0.pushes_out + 1);
	assert_int_equal(st.pushes_out_failed, st0.pushes_out_failed);
	assert_int_equal(st2.pushes, st2a.pushes + 1);
	/* the client's own copy of step 1 on c: already served, dropped */
	next_step(&c2, y1, 1, 1, "s2", "k1");
	assert_int_equal(c2.n, 2);
	/* step 2 sent by the client on c: from the state the push left */
	x[0] = 0.25f;
	ref_step(r2, x, 1, 1, 2, y2);
	next_step(&c2, x, 1, 1, "s2", "k2");
	assert_int_equal(c2.n, 3);
	assert_resp_equals(&c2, 2, y2, 1, 1);
	cli_finish(&c1);
	cli_finish(&c2);
	kw_kv_close(&g->rkv, r1);
	kw_kv_close(&g->rkv, r2);
	assert_idle();
}

/* A peer nobody is connected to: its id and text. */
static void stranger(struct kw_peer_id *id, char *text, size_t cap)
{
	struct kw_privkey k;

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &k), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&k.pub, id), 0);
	assert_int_equal(kw_peer_id_to_text(id, text, cap), 0);
}

/* A push that cannot go (no connection to that peer, a malformed next_servers, a session
 * the next server does not have) is counted; the step is answered all the same. */
static void test_infer_failed_push_leaves_the_step_fine(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y[64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_serve_stats st0, st;
	struct kw_peer_id id;
	char other[KW_PEER_ID_TEXT_MAX], peer[KW_PEER_ID_TEXT_MAX];
	uint8_t mp[512];
	struct kw_mp_writer w;
	struct cli c;
	size_t ml;
	bool bc;

	(void)state;
	stranger(&id, other, sizeof(other));
	peer_c(peer, sizeof(peer));
	kw_serve_get_stats(g->srv, &st0);
	rand_fill(x, H);
	/* no connection to `other` */
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta_next(mp, sizeof(mp), "f1", "q0", other, "zz", 8);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	ref_step(rs, x, 1, 1, 0, y);
	assert_int_equal(c.n, 1);
	assert_resp_equals(&c, 0, y, 1, 1);
	/* next_servers = ["not a hop"] */
	kw_mp_writer_init(&w, mp, sizeof(mp));
	kw_mp_put_map(&w, 1);
	kw_mp_put_cstr(&w, "next_servers");
	kw_mp_put_array(&w, 1);
	kw_mp_put_cstr(&w, "not a hop");
	ml = (size_t)kw_mp_writer_finish(&w);
	x[2] = 1.0f;
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	ref_step(rs, x, 1, 1, 1, y);
	assert_int_equal(c.n, 2);
	assert_resp_equals(&c, 1, y, 1, 1);
	/* c has no session "zz": its rpc_push ignores it (the push itself is fine) */
	bc = conn_bc() != NULL;
	if (bc) {
		ml = meta_next(mp, sizeof(mp), "f1", "q2", peer, "zz", -1);
		cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
		ref_step(rs, x, 1, 1, 2, y);
		assert_int_equal(c.n, 3);
		assert_resp_equals(&c, 2, y, 1, 1);
		pump(40);
	}
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.pushes_out, st0.pushes_out + (bc ? 3 : 2));
	assert_int_equal(st.pushes_out_failed, st0.pushes_out_failed + 2);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* The connect hook: records whom the server asked to dial. */
static struct kw_peer_id g_dialed;
static int g_dials, g_dial_ret;

static int rec_connect(void *arg, const struct kw_peer_id *pid)
{
	(void)arg;
	g_dials++;
	g_dialed = *pid;
	return g_dial_ret;
}

/*
 * A next server with no connection: the step is answered, its push dropped, and the server
 * asks its connect hook to dial that peer (Petals dials the next peer), once per peer per
 * 5 s however many steps name it; a hook that cannot dial is not counted.
 */
static void test_infer_push_to_an_unconnected_server_asks_for_a_dial(void **state)
{
	size_t H = g->d.hidden;
	float x[64], y[64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_serve_stats st0, st;
	struct kw_peer_id id;
	char other[KW_PEER_ID_TEXT_MAX];
	uint8_t mp[512];
	struct cli c;
	size_t ml;

	(void)state;
	stranger(&id, other, sizeof(other));
	g_dials = 0;
	g_dial_ret = -KW_ELIMIT;
	kw_serve_set_connect(g->srv, rec_connect, NULL);
	kw_serve_get_stats(g->srv, &st0);
	rand_fill(x, H);
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	/* the hook cannot dial: asked, not counted, asked again at the next step */
	ml = meta_next(mp, sizeof(mp), "d1", "q0", other, "zz", 8);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	ref_step(rs, x, 1, 1, 0, y);
	assert_int_equal(c.n, 1);
	assert_resp_equals(&c, 0, y, 1, 1);
	assert_int_equal(g_dials, 1);
	assert_true(kw_peer_id_equal(&g_dialed, &id));
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.pushes_out_dials, st0.pushes_out_dials);
	/* it can: one dial for the next two steps naming that peer */
	g_dial_ret = 0;
	for (int i = 1; i <= 2; i++) {
		char step[8];

		snprintf(step, sizeof(step), "q%d", i);
		ml = meta_next(mp, sizeof(mp), "d1", step, other, "zz", -1);
		x[1] = (float)i;
		cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
		ref_step(rs, x, 1, 1, (size_t)i, y);
		assert_int_equal(c.n, (size_t)i + 1);
		assert_resp_equals(&c, (size_t)i, y, 1, 1);
	}
	assert_int_equal(g_dials, 2);
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.pushes_out_dials, st0.pushes_out_dials + 1);
	assert_int_equal(st.pushes_out_failed, st0.pushes_out_failed + 3);
	kw_serve_set_connect(g->srv, NULL, NULL);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* ---- deep prompts -------------------------------------------------------------------------- */

#define PB 2   /* batch */
#define PT 3   /* tokens */
#define PP 2   /* pre_seq_len */

/* y[:, :PP] += p (PB x PP x 64), as block_functions.py adds a block's prompt */
static void add_prompt(float *y, const float *p, uint32_t B, uint32_t T)
{
	for (uint32_t b = 0; b < B; b++)
		for (size_t k = 0; k < PP * 64; k++)
			y[b * T * 64 + k] += p[b * PP * 64 + k];
}

/* Tensor k of an ExpertResponse out[0..len). */
static void out_tensor(const uint8_t *out, size_t len, int k, struct kw_tensor_msg *m)
{
	size_t pos = 0;
	uint64_t l = 0;

	for (int i = 0; i <= k; i++) {
		assert_true(pos < len);
		assert_int_equal(out[pos++], 0x12);
		l = get_len(out, &pos);
		assert_true(pos + l <= len);
		if (i == k)
			assert_int_equal(kw_tensor_msg_decode(m, out + pos, (size_t)l), 0);
		pos += (size_t)l;
	}
}

/*
 * rpc_forward and rpc_backward with prompts (2 blocks, batch 2, 3 tokens, pre_seq_len 2)
 * equal the blocks run by hand with each prompt added before its block; backward answers
 * [grad_inputs, grad_prompts (2, 2, 2, 64)], grad_prompts[i] being the gradient at block
 * i's input over the first pre_seq_len positions (run_rpc_backward).
 */
static void test_prompts_forward_backward_equal_reference(void **state)
{
	static float x[PB * PT * 64], gy[PB * PT * 64], pr[2 * PB * PP * 64];
	static float y[PB * PT * 64], a[2][PB * PT * 64], g1[PB * PT * 64], g0[PB * PT * 64];
	static float gp[2 * PB * PP * 64];
	struct kw_tensor_msg m;
	size_t o, len, n = PB * PT * 64;
	bool is_err;

	(void)state;
	rand_fill(x, n);
	rand_fill(gy, n);
	rand_fill(pr, KW_ARRAY_SIZE(pr));
	/* forward */
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, n * 4, "float32", 3, PB, PT, 64);
	o += put_msg(g->req + o, &m);
	tmsg(&m, pr, sizeof(pr), "float32", 4, 2, PB, PP);
	m.shape[3] = 64;
	o += put_msg(g->req + o, &m);
	assert_int_equal(kw_serve_call(g->srv, KW_SERVE_PT_FORWARD, g->req, o, g->udata,
				       sizeof(g->udata), &len, &is_err), 0);
	assert_false(is_err);
	memcpy(y, x, sizeof(y));
	for (int l = 0; l < 2; l++) {
		add_prompt(y, pr + l * PB * PP * 64, PB, PT);
		assert_int_equal(kw_llama_forward(&g->lctx, &g->lw[l], NULL, NULL, 0, y, PB, PT, 0,
						  y), 0);
	}
	out_tensor(g->udata, len, 0, &m);
	assert_int_equal(m.buf_len, sizeof(y));
	assert_memory_equal(m.buf, y, sizeof(y));
	/* backward */
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, n * 4, "float32", 3, PB, PT, 64);
	o += put_msg(g->req + o, &m);
	tmsg(&m, gy, n * 4, "float32", 3, PB, PT, 64);
	o += put_msg(g->req + o, &m);
	tmsg(&m, pr, sizeof(pr), "float32", 4, 2, PB, PP);
	m.shape[3] = 64;
	o += put_msg(g->req + o, &m);
	assert_int_equal(kw_serve_call(g->srv, KW_SERVE_PT_BACKWARD, g->req, o, g->udata,
				       sizeof(g->udata), &len, &is_err), 0);
	assert_false(is_err);
	memcpy(a[0], x, sizeof(x));
	add_prompt(a[0], pr, PB, PT);
	assert_int_equal(kw_llama_forward(&g->lctx, &g->lw[0], NULL, NULL, 0, a[0], PB, PT, 0,
					  a[1]), 0);
	add_prompt(a[1], pr + PB * PP * 64, PB, PT);
	assert_int_equal(kw_llama_backward(&g->lctx, &g->lw[1], a[1], gy, PB, PT, g1), 0);
	assert_int_equal(kw_llama_backward(&g->lctx, &g->lw[0], a[0], g1, PB, PT, g0), 0);
	for (int b = 0; b < PB; b++) {
		memcpy(gp + (0 * PB + b) * PP * 64, g0 + b * PT * 64, PP * 64 * 4);
		memcpy(gp + (1 * PB + b) * PP * 64, g1 + b * PT * 64, PP * 64 * 4);
	}
	out_tensor(g->udata, len, 0, &m);
	assert_int_equal(m.ndim, 3);
	assert_int_equal(m.buf_len, sizeof(g0));
	assert_memory_equal(m.buf, g0, sizeof(g0));
	out_tensor(g->udata, len, 1, &m);
	assert_int_equal(m.ndim, 4);
	assert_int_equal(m.shape[0], 2);
	assert_int_equal(m.shape[1], PB);
	assert_int_equal(m.shape[2], PP);
	assert_int_equal(m.shape[3], 64);
	assert_int_equal(m.buf_len, sizeof(gp));
	assert_memory_equal(m.buf, gp, sizeof(gp));
	/* one prompt (batch 1) for every row: broadcast over the batch */
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, n * 4, "float32", 3, PB, PT, 64);
	o += put_msg(g->req + o, &m);
	tmsg(&m, pr, 2 * PP * 64 * 4, "float32", 4, 2, 1, PP);
	m.shape[3] = 64;
	o += put_msg(g->req + o, &m);
	assert_int_equal(kw_serve_call(g->srv, KW_SERVE_PT_FORWARD, g->req, o, g->udata,
				       sizeof(g->udata), &len, &is_err), 0);
	assert_false(is_err);
	memcpy(y, x, sizeof(y));
	for (int l = 0; l < 2; l++) {
		for (int b = 0; b < PB; b++)
			for (size_t k = 0; k < PP * 64; k++)
				y[b * PT * 64 + k] += pr[l * PP * 64 + k];
		assert_int_equal(kw_llama_forward(&g->lctx, &g->lw[l], NULL, NULL, 0, y, PB, PT, 0,
						  y), 0);
	}
	out_tensor(g->udata, len, 0, &m);
	assert_memory_equal(m.buf, y, sizeof(y));
}

/* An inference step with prompts equals the local decode with the prompts added before each
 * block; the next step (DUMMY prompts) goes on from that cache. */
static void test_prompts_inference_equal_local_kv_decode(void **state)
{
	static float x[4 * 64], y[4 * 64], pr[2 * PP * 64];
	struct kw_kv_session *rs = ref_open(1);
	struct kw_tensor_msg m;
	uint8_t mp[64];
	size_t o, ml = meta(mp, sizeof(mp), NULL, NULL, 8, -1, false);
	struct cli c;

	(void)state;
	rand_fill(x, 4 * 64);
	rand_fill(pr, KW_ARRAY_SIZE(pr));
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&m, x, sizeof(x), "float32", 3, 1, 4, 64);
	o += put_msg(g->req + o, &m);
	tmsg(&m, pr, sizeof(pr), "float32", 4, 2, 1, PP);
	m.shape[3] = 64;
	o += put_msg(g->req + o, &m);
	tmsg(&m, NULL, 0, "int64", 1, 0, 0, 0);
	o += put_msg(g->req + o, &m);
	o += put_field(g->req + o, 3, mp, ml);
	cli_send(&c, o);
	memcpy(y, x, sizeof(y));
	for (int l = 0; l < 2; l++) {
		add_prompt(y, pr + l * PP * 64, 1, 4);
		assert_int_equal(kw_llama_forward(&g->lctx, &g->lw[l], &g->rkv, rs, (size_t)l, y, 1,
						  4, 0, y), 0);
	}
	assert_int_equal(c.n, 1);
	assert_resp_equals(&c, 0, y, 1, 4);
	x[5] = 0.75f;
	next_step(&c, x, 1, 1, NULL, NULL);
	ref_step(rs, x, 1, 1, 4, y);
	assert_int_equal(c.n, 2);
	assert_resp_equals(&c, 1, y, 1, 1);
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* rpc_info's cache_tokens_available: free positions per block, less while a session holds a
 * slot, back after. */
static uint64_t cache_tokens(void)
{
	uint8_t out[4096];
	size_t len, pos = 0;
	bool is_err;
	struct kw_mp_reader r;
	struct kw_mp_item it, k, v;
	uint64_t l = 0;

	assert_int_equal(kw_serve_call(g->srv, KW_SERVE_PT_INFO, NULL, 0, out, sizeof(out), &len,
				       &is_err), 0);
	assert_false(is_err);
	assert_int_equal(out[pos++], 0x0a);
	l = get_len(out, &pos);
	assert_int_equal(kw_mp_reader_init(&r, out + pos, (size_t)l, 0), 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	for (uint32_t i = 0; i < it.len; i++) {
		assert_int_equal(kw_mp_read(&r, &k), 0);
		assert_int_equal(kw_mp_read(&r, &v), 0);
		if (k.len == 22 && !memcmp(k.data, "cache_tokens_available", 22))
			return v.v.u;
		assert_int_equal(kw_mp_skip(&r, &v), 0);
	}
	fail();
	return 0;
}

static void test_infer_info_reports_cache_tokens(void **state)
{
	float x[64] = { 0 };
	struct kw_serve_desc d;
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	(void)state;
	assert_int_equal(cache_tokens(), 2 * 2 * TOK);   /* 2 slots x 2 blocks x 64 positions */
	kw_serve_describe(g->srv, &d);
	assert_int_equal(d.cache_tokens_left, 2 * 2 * 2 * TOK);  /* K and V counted apart */
	assert_int_equal(d.inference_max_length, TOK);
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 16, -1, false);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp, ml));
	assert_int_equal(cache_tokens(), 2 * TOK);
	cli_finish(&c);
	assert_int_equal(cache_tokens(), 2 * 2 * TOK);
}

/* ---- the stream variants ------------------------------------------------------------------ */

/* Sends request tensors t[0..n) split into pieces of chunk bytes, one piece per
 * ExpertRequest{uid, tensors=[piece], metadata}, then END_OF_STREAM. */
static void send_split(struct cli *c, const char *uid, const struct kw_tensor_msg *t, size_t n,
		       size_t chunk)
{
	for (size_t i = 0; i < n; i++) {
		size_t np = kw_tensor_msg_pieces(&t[i], chunk);

		for (size_t k = 0; k < np; k++) {
			struct kw_tensor_msg piece;
			size_t o;

			assert_int_equal(kw_tensor_msg_piece(&t[i], chunk, k, &piece), 0);
			o = put_field(g->req, 1, uid, strlen(uid));
			o += put_msg(g->req + o, &piece);
			assert_int_equal(kw_hm_stream_send(c->st, g->req, o), 0);
			pump(10);
		}
	}
	assert_int_equal(kw_hm_stream_end(c->st), 0);
	pump(60);
}

/* Joins the reply pieces of c into one tensor (storage big[1]); returns the piece count. */
static int join_reply(const struct cli *c, struct kw_tensor_msg *out)
{
	struct kw_tensor_join j;

	kw_tensor_join_init(&j, g->big[1], sizeof(g->big[1]));
	for (int k = 0; k < c->n; k++) {
		struct kw_tensor_msg m;
		int ret;

		resp_tensor(c, k, &m);
		ret = kw_tensor_join_add(&j, &m);
		assert_true(ret >= 0);
		assert_int_equal(ret, k == c->n - 1);
	}
	*out = j.head;
	return c->n;
}

/* The unary answer of the same request (no network), its single tensor. */
static void unary(const char *name, const char *uid, const struct kw_tensor_msg *t, size_t n,
		  struct kw_tensor_msg *out)
{
	size_t o = put_field(g->req, 1, uid, strlen(uid)), len, pos = 0;
	bool is_err;
	uint64_t l = 0;

	for (size_t i = 0; i < n; i++)
		o += put_msg(g->req + o, &t[i]);
	assert_int_equal(kw_serve_call(g->srv, name, g->req, o, g->udata, sizeof(g->udata), &len,
				       &is_err), 0);
	assert_false(is_err);
	assert_int_equal(g->udata[pos++], 0x12);
	l = get_len(g->udata, &pos);
	assert_int_equal(kw_tensor_msg_decode(out, g->udata + pos, (size_t)l), 0);
}

static void assert_same_tensor(const struct kw_tensor_msg *a, const struct kw_tensor_msg *b)
{
	assert_int_equal(a->ndim, b->ndim);
	assert_memory_equal(a->shape, b->shape, a->ndim * 4);
	assert_string_equal(a->dtype, b->dtype);
	assert_int_equal(a->compression, b->compression);
	assert_int_equal(a->buf_len, b->buf_len);
	assert_memory_equal(a->buf, b->buf, a->buf_len);
}

/* 320 tokens: the request goes in 16 KiB pieces, the 80 KiB answer comes back in two. */
static void test_stream_petals_forward_equals_unary(void **state)
{
	size_t H = g->d.hidden, n = ROWS * H;
	float *x = (float *)g->big[0];
	struct kw_tensor_msg t[2], got, want;
	struct cli c;

	(void)state;
	rand_fill(x, n);
	tmsg(&t[0], x, n * 4, "float32", 3, 1, ROWS, (uint32_t)H);
	tmsg(&t[1], NULL, 0, "float32", 1, 0, 0, 0);
	cli_open(&c, KW_SERVE_PT_FORWARD_STREAM);
	send_split(&c, CHAIN, t, 2, 16384);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.err, 0);
	assert_false(c.remote_error);
	assert_int_equal(join_reply(&c, &got), 2);
	unary(KW_SERVE_PT_FORWARD, CHAIN, t, 2, &want);
	assert_same_tensor(&got, &want);
	assert_idle();
}

static void test_stream_petals_backward_equals_unary(void **state)
{
	size_t H = g->d.hidden, n = 6 * H;
	float x[6 * 64], gy[6 * 64];
	struct kw_tensor_msg t[3], got, want;
	struct cli c;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		x[i] = frand();
		gy[i] = frand();
	}
	tmsg(&t[0], x, n * 4, "float32", 3, 2, 3, (uint32_t)H);
	tmsg(&t[1], gy, n * 4, "float32", 3, 2, 3, (uint32_t)H);
	tmsg(&t[2], NULL, 0, "float32", 1, 0, 0, 0);
	cli_open(&c, KW_SERVE_PT_BACKWARD_STREAM);
	send_split(&c, CHAIN, t, 3, 1000);
	assert_int_equal(c.done, 1);
	assert_false(c.remote_error);
	assert_int_equal(join_reply(&c, &got), 1);
	unary(KW_SERVE_PT_BACKWARD, CHAIN, t, 3, &want);
	assert_same_tensor(&got, &want);
	assert_idle();
}

static void test_stream_moe_forward_and_backward_equal_unary(void **state)
{
	size_t n = 300 * 64;
	float *x = (float *)g->big[0], gy[5 * 64];
	struct kw_tensor_msg t[2], got, want;
	struct cli c;

	(void)state;
	rand_fill(x, n);
	tmsg(&t[0], x, n * 4, "float32", 2, 300, 64, 0);
	cli_open(&c, KW_SERVE_MOE_FORWARD_STREAM);
	send_split(&c, "ffn.0.0", t, 1, 30000);
	assert_int_equal(c.done, 1);
	assert_false(c.remote_error);
	assert_int_equal(join_reply(&c, &got), 2);
	unary(KW_SERVE_MOE_FORWARD, "ffn.0.0", t, 1, &want);
	assert_same_tensor(&got, &want);
	for (size_t i = 0; i < 5 * 64; i++)
		gy[i] = frand();
	tmsg(&t[0], x, 5 * 64 * 4, "float32", 2, 5, 64, 0);
	tmsg(&t[1], gy, 5 * 64 * 4, "float32", 2, 5, 64, 0);
	cli_open(&c, KW_SERVE_MOE_BACKWARD_STREAM);
	send_split(&c, "ffn.0.0", t, 2, 512);
	assert_int_equal(c.done, 1);
	assert_false(c.remote_error);
	assert_int_equal(join_reply(&c, &got), 1);
	unary(KW_SERVE_MOE_BACKWARD, "ffn.0.0", t, 2, &want);
	assert_same_tensor(&got, &want);
	assert_idle();
}

/* Errors of a stream call: a uid that changes, an unknown expert, pieces that do not join. */
static void test_stream_errors_are_str_of_the_exception(void **state)
{
	float x[4 * 64] = { 0 };
	struct kw_tensor_msg t, piece;
	struct cli c;
	size_t o;

	(void)state;
	tmsg(&t, x, sizeof(x), "float32", 2, 4, 64, 0);
	cli_open(&c, KW_SERVE_MOE_FORWARD_STREAM);
	send_split(&c, "ffn.9.9", &t, 1, 4096);
	assert_error(&c, KW_SERVE_MOE_FORWARD_STREAM, "'ffn.9.9'");   /* str(KeyError) */
	assert_idle();
	cli_open(&c, KW_SERVE_MOE_FORWARD_STREAM);
	assert_int_equal(kw_tensor_msg_piece(&t, 256, 0, &piece), 0);
	o = put_field(g->req, 1, "ffn.0.0", 7);
	o += put_msg(g->req + o, &piece);
	cli_send(&c, o);
	assert_int_equal(kw_tensor_msg_piece(&t, 256, 1, &piece), 0);
	o = put_field(g->req, 1, "ffn.0.1", 7);
	o += put_msg(g->req + o, &piece);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_MOE_FORWARD_STREAM, "Expert uids differ in one request");
	assert_idle();
	/* a second tensor starting while the first misses pieces */
	cli_open(&c, KW_SERVE_PT_FORWARD_STREAM);
	assert_int_equal(kw_tensor_msg_piece(&t, 256, 0, &piece), 0);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	o += put_msg(g->req + o, &piece);
	o += put_msg(g->req + o, &piece);
	cli_send(&c, o);
	assert_error(&c, KW_SERVE_PT_FORWARD_STREAM, "a tensor starts before the previous one has "
		     "all its pieces");
	assert_idle();
}

/* Step k of the slow reader: 64 tokens from position 0, x[0] = k; -KW_EAGAIN when full. */
static int send_step(struct cli *c, float *x, int k)
{
	uint8_t mp[64];
	size_t ml;

	x[0] = (float)k;   /* each step its own input: the order shows in the answers */
	ml = meta(mp, sizeof(mp), NULL, NULL, k ? -1 : 64, 0, false);
	return kw_hm_stream_send(c->st, g->req, step_req(CHAIN, x, 1, 64, NULL, 0, mp, ml));
}

/*
 * A caller that reads slowly: its window and both stream buffers fill, the server keeps the
 * step answer it could not queue and pauses the session's requests; once the caller reads
 * again every answer arrives, in order, each equal to the local decode.
 */
static void test_infer_slow_reader_gets_every_answer_in_order(void **state)
{
	enum { STEPS = 40, T = 64 };
	size_t H = g->d.hidden;
	float *x = (float *)g->big[0], *y = (float *)g->big[1];
	struct kw_kv_session *rs = ref_open(1);
	struct cli c;
	int sent = 0;

	(void)state;
	rand_fill(x, T * H);
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	c.hold = true;
	/* send until the pipe is full (the caller holds its first answer and reads no more) */
	while (sent < STEPS && send_step(&c, x, sent) == 0) {
		sent++;
		pump(10);
	}
	pump(100);
	assert_true(sent >= 4);     /* the caller's own 72 KiB send buffer holds four */
	assert_true(c.n < sent);   /* the answers wait */
	c.hold = false;
	for (int i = 0; i < 4000 && c.n < STEPS; i++) {
		kw_hm_stream_next(c.st);
		if (sent < STEPS && send_step(&c, x, sent) == 0)
			sent++;
		pump(2);
	}
	assert_int_equal(c.n, STEPS);
	for (int k = 0; k < STEPS; k++) {
		x[0] = (float)k;
		assert_int_equal(kw_kv_rewind(rs, 2, 0), 0);
		ref_step(rs, x, 1, T, 0, y);
		assert_resp_equals(&c, k, y, 1, T);
	}
	cli_finish(&c);
	kw_kv_close(&g->rkv, rs);
	assert_idle();
}

/* After all of the above the server still answers a plain session. */
static void test_infer_server_keeps_serving(void **state)
{
	float x[2 * 64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t ml;

	(void)state;
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	ml = meta(mp, sizeof(mp), NULL, NULL, 4, -1, false);
	cli_send(&c, step_req(CHAIN, x, 1, 2, NULL, 0, mp, ml));
	assert_int_equal(c.n, 1);
	cli_finish(&c);
	assert_idle();
}


/* ---- pausing: serving as the contribution policy's drain client (app/serve_drain.c) ------- */

#define DRAIN_MS 3000   /* the policy's drain_timeout_ms */

struct drain_env {
	struct kw_policy pol;
	struct kw_policy_sensors sens;
	struct kw_policy_client ann;   /* stands in for the Hivemind announcer */
	struct kw_serve_drain d;
	int ann_drains;
};
static struct drain_env *de;

static int drain_read(struct kw_policy *p, struct kw_policy_sensors *out, void *arg)
{
	(void)p;
	(void)arg;
	*out = de->sens;
	return 0;
}

static void ann_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	(void)p;
	(void)c;
	de->ann_drains++;   /* "storing OFFLINE": the test says when it is done */
}

static void drain_begin(void)
{
	struct kw_policy_settings s;
	char err[128];

	de = calloc(1, sizeof(*de));
	assert_non_null(de);
	kw_policy_settings_defaults(&s);
	s.require_ac = true;
	s.pause_on_undervoltage = s.pause_on_throttle = false;
	s.quiet_start_min = s.quiet_end_min = -1;
	s.min_dwell_ms = 0;
	s.poll_ms = 600000;   /* decisions only where the test polls (and the drain's own task) */
	s.drain_timeout_ms = DRAIN_MS;
	de->sens = (struct kw_policy_sensors){ .ac = 1, .battery_pct = -1, .low_battery = -1,
					       .local_min = -1 };
	assert_int_equal(kw_policy_init(&de->pol, &g->p.b.t->node->loop, &s, drain_read, NULL,
					err, sizeof(err)), 0);
	de->ann.name = "hivemind";
	de->ann.drain = ann_drain;
	kw_policy_add_client(&de->pol, &de->ann);
	assert_int_equal(kw_serve_drain_attach(&de->d, g->srv, &de->pol), 0);
	assert_ptr_equal(de->d.after, &de->ann);
	assert_int_equal(kw_policy_start(&de->pol), 0);
	assert_int_equal(kw_policy_status(&de->pol)->state, KW_POLICY_CONTRIBUTING);
	assert_true(kw_serve_accepting(g->srv));
}

static void drain_end(void)
{
	kw_policy_stop(&de->pol);
	kw_serve_drain_detach(&de->d);
	kw_serve_set_accepting(g->srv, true);
	free(de);
	de = NULL;
}

static enum kw_policy_state pol_state(void)
{
	return kw_policy_status(&de->pol)->state;
}

/* On battery: the policy drains; the announcer's OFFLINE store is reported done at once. */
static void go_battery(bool announced)
{
	de->sens.ac = 0;
	kw_policy_poll(&de->pol);
	assert_int_equal(pol_state(), KW_POLICY_DRAINING);
	assert_int_equal(de->ann_drains, 1);
	assert_true(kw_serve_accepting(g->srv));   /* nothing refused before OFFLINE is out */
	if (announced) {
		kw_policy_drain_done(&de->pol, &de->ann);
		kw_hm_pair_advance(&g->p, 60);
		assert_false(kw_serve_accepting(g->srv));
	}
}

/* A unary call from a: the error text it reads, "" when answered. */
static const char *unary_net(const char *name, size_t len)
{
	g->udone = 0;
	assert_int_equal(kw_hm_call(g->p.a.hm, g->p.a.conn, name, g->req, len, 0, on_unary,
				    NULL), 0);
	pump(40);
	assert_int_equal(g->udone, 1);
	if (!g->uremote)
		return "";
	g->udata[KW_MIN(g->ulen, sizeof(g->udata) - 1)] = '\0';
	return (const char *)g->udata;
}

static void assert_refused_session(void)
{
	float x[64] = { 0 };
	char want[KW_SERVE_ERR_MAX];
	uint8_t mp[64];
	struct cli c;

	kw_serve_pystr(KW_SERVE_PAUSED_REPR, want, sizeof(want));
	assert_true(strlen(want) > 20);
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp,
			      meta(mp, sizeof(mp), NULL, NULL, 4, -1, false)));
	assert_int_equal(c.n, 0);
	assert_error(&c, KW_SERVE_PT_INFERENCE, want);
}

/*
 * A stream call is in flight (its first piece in, the slot taken) when the policy drains:
 * new calls and sessions are refused with the pause named, rpc_info still answers, the call
 * in flight completes with its answer sent, and only then does the policy pause. On mains
 * again the server accepts work.
 */
static void test_drain_call_in_flight_completes_new_ones_refused(void **state)
{
	size_t H = g->d.hidden, n = ROWS * H, np, o;
	float *x = (float *)g->big[0];
	struct kw_tensor_msg t[2], piece, got, want;
	struct kw_serve_stats st;
	const char *e;
	struct cli c, s2;
	float x1[64] = { 0 };
	uint8_t mp[64];

	(void)state;
	drain_begin();
	rand_fill(x, n);
	tmsg(&t[0], x, n * 4, "float32", 3, 1, ROWS, (uint32_t)H);
	tmsg(&t[1], NULL, 0, "float32", 1, 0, 0, 0);
	np = kw_tensor_msg_pieces(&t[0], 16384);
	assert_true(np > 2);
	cli_open(&c, KW_SERVE_PT_FORWARD_STREAM);
	assert_int_equal(kw_tensor_msg_piece(&t[0], 16384, 0, &piece), 0);
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	o += put_msg(g->req + o, &piece);
	assert_int_equal(kw_hm_stream_send(c.st, g->req, o), 0);
	pump(20);
	assert_int_equal(kw_serve_busy(g->srv), 1);

	go_battery(true);
	/* new work: refused, the pause named; rpc_info answers */
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	tmsg(&piece, x, 2 * H * 4, "float32", 3, 1, 2, (uint32_t)H);
	o += put_msg(g->req + o, &piece);
	e = unary_net(KW_SERVE_PT_FORWARD, o);
	assert_non_null(strstr(e, KW_SERVE_PAUSED_REPR));
	assert_refused_session();
	kw_serve_get_stats(g->srv, &st);
	assert_int_equal(st.refused, 2);
	assert_int_equal(pol_state(), KW_POLICY_DRAINING);

	/* the call in flight: the rest of its pieces, its whole answer */
	for (size_t k = 1; k < np; k++) {
		assert_int_equal(kw_tensor_msg_piece(&t[0], 16384, k, &piece), 0);
		o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
		o += put_msg(g->req + o, &piece);
		assert_int_equal(kw_hm_stream_send(c.st, g->req, o), 0);
		pump(10);
		assert_int_equal(pol_state(), KW_POLICY_DRAINING);
	}
	o = put_field(g->req, 1, CHAIN, strlen(CHAIN));
	o += put_msg(g->req + o, &t[1]);
	assert_int_equal(kw_hm_stream_send(c.st, g->req, o), 0);
	assert_int_equal(kw_hm_stream_end(c.st), 0);
	pump(60);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.err, 0);
	assert_false(c.remote_error);
	assert_int_equal(join_reply(&c, &got), 2);
	kw_serve_set_accepting(g->srv, true);   /* the local reference call */
	unary(KW_SERVE_PT_FORWARD, CHAIN, t, 2, &want);
	kw_serve_set_accepting(g->srv, false);
	assert_same_tensor(&got, &want);
	assert_idle();
	assert_int_equal(pol_state(), KW_POLICY_PAUSED);
	assert_non_null(strstr(kw_policy_status(&de->pol)->reason, "drained"));

	/* on mains again: accepted */
	de->sens.ac = 1;
	kw_policy_poll(&de->pol);
	assert_int_equal(pol_state(), KW_POLICY_CONTRIBUTING);
	assert_true(kw_serve_accepting(g->srv));
	assert_int_equal(de->d.resumes, 2);   /* the first decision, then this one */
	cli_open(&s2, KW_SERVE_PT_INFERENCE);
	cli_send(&s2, step_req(CHAIN, x1, 1, 1, NULL, 0, mp,
			       meta(mp, sizeof(mp), NULL, NULL, 4, -1, false)));
	assert_int_equal(s2.n, 1);
	cli_finish(&s2);
	assert_idle();
	drain_end();
}

/*
 * A session open at the drain keeps stepping; its own empty request ends it and the drain
 * is done after that, not before. New calls are not refused until the announcer is done.
 */
static void test_drain_session_ends_by_its_empty_request(void **state)
{
	float x[64] = { 0 };
	uint8_t mp[64];
	struct cli c;
	size_t o;

	(void)state;
	drain_begin();
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp,
			      meta(mp, sizeof(mp), NULL, NULL, 16, -1, false)));
	assert_int_equal(c.n, 1);
	go_battery(false);
	kw_hm_pair_advance(&g->p, 300);
	assert_true(kw_serve_accepting(g->srv));   /* OFFLINE not stored yet */
	kw_policy_drain_done(&de->pol, &de->ann);
	kw_hm_pair_advance(&g->p, 60);
	assert_false(kw_serve_accepting(g->srv));
	for (int k = 0; k < 3; k++) {   /* the open session goes on */
		kw_hm_pair_advance(&g->p, STEP_MS / 2);
		cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, NULL, 0));
		assert_int_equal(c.n, 2 + k);
		assert_int_equal(pol_state(), KW_POLICY_DRAINING);
	}
	assert_refused_session();
	/* rpc_info is not work: it still answers while pausing */
	o = put_field(g->req, 1, "tiny-llama-hf.0", 15);
	assert_string_equal(unary_net(KW_SERVE_PT_INFO, o), "");
	assert_true(g->ulen > 0);
	cli_finish(&c);
	assert_idle();
	assert_int_equal(pol_state(), KW_POLICY_PAUSED);
	assert_int_equal(de->d.sessions_closed, 0);
	drain_end();
}

/* A session that keeps stepping past the drain timeout is ended with an error frame naming
 * the pause; the drain is done then. */
static void test_drain_session_closed_at_the_timeout(void **state)
{
	float x[64] = { 0 };
	char want[KW_SERVE_ERR_MAX];
	uint8_t mp[64];
	struct cli c;
	int k;

	(void)state;
	drain_begin();
	cli_open(&c, KW_SERVE_PT_INFERENCE);
	cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, mp,
			      meta(mp, sizeof(mp), NULL, NULL, 32, -1, false)));
	go_battery(true);
	for (k = 0; k < 10 && !c.done; k++) {
		assert_int_equal(pol_state(), KW_POLICY_DRAINING);
		kw_hm_pair_advance(&g->p, 700);
		if (!c.done)
			cli_send(&c, step_req(CHAIN, x, 1, 1, NULL, 0, NULL, 0));
	}
	/* steps at 700 .. 2800 ms answered, the session ended at 3000 */
	assert_int_equal(c.n, 5);
	kw_serve_pystr(KW_SERVE_PAUSED_REPR, want, sizeof(want));
	assert_error(&c, KW_SERVE_PT_INFERENCE, want);
	assert_int_equal(de->d.sessions_closed, 1);
	pump(10);
	assert_idle();
	assert_int_equal(pol_state(), KW_POLICY_PAUSED);
	drain_end();
}

/* Stream handlers send str(e): the reprs of kw_serve_pyerr turned back, KeyError kept quoted. */
static void test_pystr_is_python_str_of_the_repr(void **state)
{
	char out[64], repr[128];

	(void)state;
	kw_serve_pyerr(repr, sizeof(repr), "ValueError", "it's \\ a\nb");
	assert_string_equal(repr, "ValueError(\"it's \\\\ a\\nb\")");
	kw_serve_pystr(repr, out, sizeof(out));
	assert_string_equal(out, "it's \\ a\nb");
	kw_serve_pystr("KeyError('ffn.9.9')", out, sizeof(out));
	assert_string_equal(out, "'ffn.9.9'");
	kw_serve_pystr("TimeoutError()", out, sizeof(out));
	assert_string_equal(out, "");
	kw_serve_pystr("RuntimeError('a \\x41')", out, sizeof(out));
	assert_string_equal(out, "a A");
	kw_serve_pystr("ValueError('0123456789')", out, 5);
	assert_string_equal(out, "0123");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_infer_32_steps_equal_local_kv_decode),
		cmocka_unit_test(test_infer_start_from_position_rewinds),
		cmocka_unit_test(test_infer_hypo_ids_reorder_the_cache),
		cmocka_unit_test(test_infer_repeated_step_id_is_dropped),
		cmocka_unit_test(test_infer_zero_token_step_is_answered_empty),
		cmocka_unit_test(test_infer_limits_are_refused_with_their_texts),
		cmocka_unit_test(test_infer_bad_tensors_end_the_session),
		cmocka_unit_test(test_infer_more_sessions_than_slots_is_out_of_memory),
		cmocka_unit_test(test_infer_alloc_waits_and_is_granted_when_a_session_ends),
		cmocka_unit_test(test_infer_alloc_timeout_fails_with_petals_text),
		cmocka_unit_test(test_infer_alloc_waiters_in_order_closed_one_leaves),
		cmocka_unit_test(test_infer_step_timeout_closes_quietly),
		cmocka_unit_test(test_infer_session_timeout_ends_the_session),
		cmocka_unit_test(test_infer_push_is_delivered_once),
		cmocka_unit_test(test_infer_next_servers_push_reaches_the_next_server),
		cmocka_unit_test(test_infer_failed_push_leaves_the_step_fine),
		cmocka_unit_test(test_infer_push_to_an_unconnected_server_asks_for_a_dial),
		cmocka_unit_test(test_prompts_forward_backward_equal_reference),
		cmocka_unit_test(test_prompts_inference_equal_local_kv_decode),
		cmocka_unit_test(test_infer_info_reports_cache_tokens),
		cmocka_unit_test(test_stream_petals_forward_equals_unary),
		cmocka_unit_test(test_stream_petals_backward_equals_unary),
		cmocka_unit_test(test_stream_moe_forward_and_backward_equal_unary),
		cmocka_unit_test(test_stream_errors_are_str_of_the_exception),
		cmocka_unit_test(test_infer_slow_reader_gets_every_answer_in_order),
		cmocka_unit_test(test_infer_server_keeps_serving),
		cmocka_unit_test(test_drain_call_in_flight_completes_new_ones_refused),
		cmocka_unit_test(test_drain_session_ends_by_its_empty_request),
		cmocka_unit_test(test_drain_session_closed_at_the_timeout),
		cmocka_unit_test(test_infer_alloc_waiter_refused_when_pausing),
		cmocka_unit_test(test_pystr_is_python_str_of_the_repr),
	};

	(void)argc;
	snprintf(model_dir, sizeof(model_dir), "%s/serve-infer-model-%d", dirname(argv[0]),
		 (int)getpid());
	return cmocka_run_group_tests(tests, setup, teardown);
}
