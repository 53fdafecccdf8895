/*
 * Serving (app/serve*.c) over the loopback of the simulated network: node b serves two int8
 * FFN experts (hivemind "ffn") and the two blocks of the tiny LLaMA checkpoint the model
 * writer makes (tools/model/model_gen.c, int8 with transposes); node a calls them with
 * kw_hm_call as a Python client would (ExpertRequest / ExpertUID bytes built here by hand).
 * Forward and backward answers must equal a local kw_ffn_* / kw_llama_* call bit for bit
 * (same kernels, same order of operations); rpc_info is decoded and checked field by field;
 * every error is the Python text a caller reads, the server keeps serving and its slot
 * pool is back to 0 after each call. Time is virtual.
 */
#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/ml/block.h>
#include <kw/ml/half.h>
#include <kw/ml/model.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "../../../app/serve.h"
#include "model_gen.h"
#include "serve_pb.h"

#define HID   32
#define INTER (4 * HID)
#define ROWS  16
#define BUF   (64 * 1024)

struct side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_privkey key;
	char addr[256];
};

struct result {
	int done, err;
	bool remote_error;
	uint8_t data[BUF];
	size_t len;
};

static struct kw_test_net *net;
static struct side A, B;
static struct kw_conn *conn;
static struct result res;
static struct kw_serve *srv;
static uint8_t *srv_mem, *w_mem, meta_mem[1 << 20];
static struct kw_arena srv_a, w_a, meta_a;
static struct kw_ffn ex[2];
static float *fw[2][6];
static struct kw_ckpt ck;
static struct kw_llama_q8 m8;
static struct kw_llama_w lw[2];
static struct kw_llama_dims dims;
static struct kw_ffn_ctx lfctx;     /* the local reference contexts */
static struct kw_llama_ctx llctx;
static char dir[3100], err[512];
static uint8_t req[BUF];
static uint64_t rs = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		v[i] = frand() * scale;
}

/* ---- request building (what a Python client sends) --------------------------------------- */


/* a float32 NONE tensor (or the given dtype name with raw bytes) */
static size_t put_tensor(uint8_t *p, const float *x, const uint32_t *shape, unsigned ndim,
			 const char *dtype)
{
	static uint8_t tb[BUF];
	struct kw_tensor_msg m;
	size_t numel = 1, tl;

	for (unsigned i = 0; i < ndim; i++)
		numel *= shape[i];
	memset(&m, 0, sizeof(m));
	m.buf = (const uint8_t *)x;
	m.buf_len = numel * 4;
	m.ndim = ndim;
	memcpy(m.shape, shape, ndim * 4);
	strcpy(m.dtype, dtype);
	assert_int_equal(kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl), 0);
	return put_field(p, 2, tb, tl);
}

static size_t put_uid(uint8_t *p, const char *uid)
{
	return put_field(p, 1, uid, strlen(uid));
}

/* ---- plumbing --------------------------------------------------------------------------------- */

static void pump(int passes)
{
	for (int i = 0; i < passes; i++) {
		kw_loop_run_once(&A.t->node->loop, 0);
		kw_loop_run_once(&B.t->node->loop, 0);
	}
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

/* Calls name with req[0..len) and waits for the answer; checks the slots went back. */
static void call(const char *name, size_t len)
{
	struct kw_serve_stats st;

	memset(&res, 0, sizeof(res));
	assert_int_equal(kw_hm_call(A.hm, conn, name, req, len, 0, on_result, &res), 0);
	pump(60);
	assert_int_equal(res.done, 1);
	assert_int_equal(res.err, 0);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.slots_used, 0);
}

static void expect_error(const char *text)
{
	char t[512];

	assert_true(res.remote_error);
	kw_hm_error_text(res.data, res.len, t, sizeof(t));
	assert_string_equal(t, text);
}

/* The response's only tensor, decoded (float32 NONE unless told). */
static void response_tensor(struct kw_tensor_msg *m)
{
	size_t pos = 0;
	uint64_t l = 0;

	assert_false(res.remote_error);
	assert_int_equal(res.data[pos++], 0x12);
	l = get_len(res.data, &pos);
	assert_int_equal(pos + l, res.len);   /* exactly one tensor */
	assert_int_equal(kw_tensor_msg_decode(m, res.data + pos, (size_t)l), 0);
}

static void make_side(struct side *s, const char *listen)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_hm_limits hl = { .calls_in = 4, .calls_per_peer = 2, .calls_out = 4,
				   .buf_bytes = BUF + 1024, .timeout_ms = 5000 };

	s->t = kw_test_node_join(net, 16 * 1024);
	assert_non_null(s->t);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &s->key), 0);
	assert_int_equal(kw_swarm_create(s->t->node, &s->key, &lim, &s->sw), 0);
	assert_int_equal(kw_hm_create(s->sw, &hl, &s->hm), 0);
	if (listen) {
		assert_int_equal(kw_swarm_listen(s->sw, listen), 0);
		assert_int_equal(kw_swarm_listen_addr(s->sw, 0, s->addr, sizeof(s->addr)), 0);
	}
}

static int dial_done;

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int e, void *user)
{
	dial_done = e == 0 ? 1 : -1;
	conn = c;
}

static void make_expert(int i)
{
	struct kw_ffn *f = &ex[i];

	for (int j = 0; j < 6; j++)
		fw[i][j] = calloc(INTER * HID, sizeof(float));
	fill(fw[i][0], INTER * HID, 1.0f / sqrtf(HID));
	fill(fw[i][1], INTER, 0.1f);
	fill(fw[i][2], INTER * HID, 1.0f / sqrtf(INTER));
	fill(fw[i][3], HID, 0.1f);
	for (int k = 0; k < HID; k++) {
		fw[i][4][k] = 1.0f + 0.2f * frand();
		fw[i][5][k] = 0.1f * frand();
	}
	memset(f, 0, sizeof(*f));
	f->kind = KW_FFN_GELU;
	f->hid = HID;
	f->inter = INTER;
	assert_int_equal(kw_lin_q8_from_f32(&f->up, fw[i][0], INTER, HID, 1, &w_a), 0);
	assert_int_equal(kw_lin_q8_from_f32(&f->down, fw[i][2], HID, INTER, 1, &w_a), 0);
	f->up.bias = fw[i][1];
	f->down.bias = fw[i][3];
	f->ln_w = fw[i][4];
	f->ln_b = fw[i][5];
}

static int setup(void **state)
{
	struct kw_serve_limits lim = { .max_rows = ROWS, .max_experts = 4, .slots = 1,
				       .max_blocks = 4, .sessions = 1, .session_tokens = 16 };
	struct kw_model_gen mg;
	size_t wb, sb, cb;
	uint8_t *cmem;
	struct kw_arena ca;

	(void)state;
	/* weights: two experts, two LLaMA blocks */
	kw_model_gen_tiny(&mg, 11);
	mg.shards = 1;
	if (kw_model_gen_write(&mg, dir, err, sizeof(err)))
		return -1;
	kw_arena_init(&meta_a, meta_mem, sizeof(meta_mem));
	if (kw_ckpt_open(&ck, dir, &meta_a, err, sizeof(err)))
		return -1;
	wb = 2 * kw_llama_q8_bytes(&ck.cfg, 2) + (8 << 20);
	w_mem = malloc(wb);
	kw_arena_init(&w_a, w_mem, wb);
	if (kw_llama_q8_load(&m8, &ck, 0, 2, &w_a, NULL, NULL, err, sizeof(err)) ||
	    kw_llama_w_from_q8(&lw[0], &m8.blk[0], &w_a) ||
	    kw_llama_w_from_q8(&lw[1], &m8.blk[1], &w_a))
		return -1;
	kw_llama_dims_from_config(&dims, &ck.cfg);
	make_expert(0);
	make_expert(1);
	/* the server */
	sb = 8 << 20;
	srv_mem = malloc(sb);
	kw_arena_init(&srv_a, srv_mem, sb);
	if (kw_serve_create(&srv_a, &lim, &srv) || kw_serve_add_expert(srv, "ffn.0.0", &ex[0],
								      KW_COMP_NONE) ||
	    kw_serve_add_expert(srv, "ffn.0.1", &ex[1], KW_COMP_FLOAT16) ||
	    kw_serve_set_blocks(srv, "tiny-llama-hf", 0, 2, lw, &dims))
		return -1;
	if (kw_serve_bytes(srv) > kw_arena_free_bytes(&srv_a))
		return -1;
	/* the local reference contexts */
	cb = kw_ffn_ctx_bytes(HID, INTER, ROWS) + kw_llama_ctx_bytes(&dims, ROWS, ROWS, 1) + 4096;
	cmem = malloc(cb);
	kw_arena_init(&ca, cmem, cb);
	if (kw_ffn_ctx_init(&lfctx, NULL, NULL, HID, INTER, ROWS, &ca) ||
	    kw_llama_ctx_init(&llctx, &dims, NULL, NULL, ROWS, ROWS, &ca))
		return -1;
	/* the network */
	net = kw_test_net_new(64, 1 << 18);
	make_side(&B, "/ip4/127.0.0.1/tcp/4001");
	make_side(&A, "/ip4/127.0.0.1/tcp/4002");
	/* the stream handlers' pools, small and explicit (kw_serve_start would take the
	 * Kconfig sizes: at their maximum, more than this node's arena) */
	{
		struct kw_hm_stream_limits sx = { .streams_in = 2, .streams_per_peer = 2,
						  .streams_out = 1, .buf_bytes = 4096,
						  .prefetch = 2, .idle_ms = 5000 };

		if (kw_hm_stream_setup(B.hm, &sx))
			return -1;
	}
	if (kw_serve_start(srv, NULL, B.hm, NULL, NULL, false))
		return -1;
	if (kw_swarm_dial(A.sw, B.addr, on_dial, NULL) < 0)
		return -1;
	pump(50);
	return dial_done == 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	kw_swarm_destroy(A.sw);
	kw_swarm_destroy(B.sw);
	pump(4);
	kw_test_assert_no_leaks(A.t->node);
	kw_test_assert_no_leaks(B.t->node);
	kw_test_node_free(A.t);
	kw_test_node_free(B.t);
	kw_test_net_free(net);
	kw_ckpt_close(&ck);
	kw_test_rm_dir(dir);
	return 0;
}

/* ---- MoE ---------------------------------------------------------------------------------- */

static void test_serve_moe_forward_equals_local_ffn(void **state)
{
	static float x[3 * HID], y[3 * HID];
	uint32_t shape[2] = { 3, HID };
	struct kw_tensor_msg m;
	size_t n = 0;

	fill(x, sizeof(x) / 4, 1.0f);
	n += put_uid(req + n, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "float32");
	call(KW_SERVE_MOE_FORWARD, n);
	response_tensor(&m);
	assert_string_equal(m.dtype, "float32");
	assert_int_equal(m.compression, 0);
	assert_int_equal(m.ndim, 2);
	assert_int_equal(m.shape[0], 3);
	assert_int_equal(m.shape[1], HID);
	assert_int_equal(kw_ffn_forward(&lfctx, &ex[0], x, 3, y), 0);
	assert_int_equal(m.buf_len, sizeof(y));
	assert_memory_equal(m.buf, y, sizeof(y));
}

static void test_serve_moe_backward_equals_local_ffn(void **state)
{
	static float x[2 * HID], gy[2 * HID], gx[2 * HID];
	uint32_t shape[2] = { 2, HID };
	struct kw_tensor_msg m;
	size_t n = 0;

	fill(x, sizeof(x) / 4, 1.0f);
	fill(gy, sizeof(gy) / 4, 1.0f);
	n += put_uid(req + n, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "float32");
	n += put_tensor(req + n, gy, shape, 2, "float32");
	call(KW_SERVE_MOE_BACKWARD, n);
	response_tensor(&m);
	assert_int_equal(kw_ffn_backward(&lfctx, &ex[0], x, gy, 2, gx), 0);
	assert_int_equal(m.buf_len, sizeof(gx));
	assert_memory_equal(m.buf, gx, sizeof(gx));
}

static void test_serve_moe_backward_uses_the_experts_compression(void **state)
{
	static float x[2 * HID], gy[2 * HID], gx[2 * HID];
	uint32_t shape[2] = { 2, HID };
	struct kw_tensor_msg m;
	size_t n = 0;

	fill(x, sizeof(x) / 4, 1.0f);
	fill(gy, sizeof(gy) / 4, 1.0f);
	n += put_uid(req + n, "ffn.0.1");   /* served with FLOAT16 */
	n += put_tensor(req + n, x, shape, 2, "float32");
	n += put_tensor(req + n, gy, shape, 2, "float32");
	call(KW_SERVE_MOE_BACKWARD, n);
	response_tensor(&m);
	assert_int_equal(m.compression, KW_COMP_FLOAT16);
	assert_int_equal(m.buf_len, 2 * 2 * HID);
	assert_int_equal(kw_ffn_backward(&lfctx, &ex[1], x, gy, 2, gx), 0);
	for (size_t i = 0; i < 2 * HID; i++) {
		uint16_t h = (uint16_t)(m.buf[2 * i] | m.buf[2 * i + 1] << 8);

		assert_int_equal(h, kw_f32_to_fp16(gx[i]));
	}
}

/* Walks the msgpack of rpc_info: returns the value of key `key` at the top map. */
static bool mp_find(const uint8_t *mp, size_t len, const char *key, struct kw_mp_reader *r,
		    struct kw_mp_item *v)
{
	struct kw_mp_item it, k;

	assert_int_equal(kw_mp_reader_init(r, mp, len, KW_MP_ENTER_EXT), 0);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.type, KW_MP_MAP);
	for (uint32_t i = 0; i < it.len; i++) {
		assert_int_equal(kw_mp_read(r, &k), 0);
		assert_int_equal(kw_mp_read(r, v), 0);
		if (k.type == KW_MP_STR && k.len == strlen(key) && !memcmp(k.data, key, k.len))
			return true;
		assert_int_equal(kw_mp_skip(r, v), 0);
	}
	return false;
}

static const uint8_t *info_bytes(size_t *len)
{
	assert_false(res.remote_error);
	assert_int_equal(res.data[0], 0x0a);
	assert_true(res.data[1] < 0x80 || res.data[2] < 0x80);
	if (res.data[1] < 0x80) {
		*len = res.data[1];
		return res.data + 2;
	}
	*len = (size_t)(res.data[1] & 0x7f) | (size_t)res.data[2] << 7;
	return res.data + 3;
}

/* A BatchTensorDescriptor read after its ext item: size tuple, then the named fields. */
static void expect_btd(struct kw_mp_reader *r, const struct kw_mp_item *ext, uint32_t last,
		       bool requires_grad, int comp)
{
	struct kw_mp_item it, k;

	assert_int_equal(ext->type, KW_MP_EXT);
	assert_int_equal(ext->ext_type, KW_MP_EXT_BTD);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.type, KW_MP_MAP);
	assert_int_equal(it.len, 8);
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_memory_equal(k.data, "size", 4);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.ext_type, KW_MP_EXT_TUPLE);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.type, KW_MP_ARRAY);
	uint32_t n = it.len;

	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.type, KW_MP_NIL);   /* the batch dimension */
	for (uint32_t i = 1; i < n; i++)
		assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.v.u, last);
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_memory_equal(k.data, "dtype", 5);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.len, 13);
	assert_memory_equal(it.data, "torch.float32", 13);
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_int_equal(kw_mp_read(r, &it), 0);   /* layout */
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_memory_equal(k.data, "requires_grad", 13);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.v.b, requires_grad);
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_int_equal(kw_mp_read(r, &it), 0);   /* pin_memory */
	assert_int_equal(kw_mp_read(r, &k), 0);
	assert_memory_equal(k.data, "compression", 11);
	assert_int_equal(kw_mp_read(r, &it), 0);
	assert_int_equal(it.v.u, (uint64_t)comp);
}

static void test_serve_moe_info_gives_the_schemas(void **state)
{
	struct kw_mp_reader r;
	struct kw_mp_item v, it;
	const uint8_t *mp;
	size_t len, n = put_uid(req, "ffn.0.1");

	if (CONFIG_KW_NET_MSGPACK_MAX_DEPTH < 16)
		skip();  /* the schema dict nests deeper than this build's msgpack reader goes */

	call(KW_SERVE_MOE_INFO, n);
	mp = info_bytes(&len);
	assert_int_equal(kw_mp_validate(mp, len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS, NULL), 0);
	/* forward_schema = ((BTD(hid, compression FLOAT16),), {}) */
	assert_true(mp_find(mp, len, "forward_schema", &r, &v));
	assert_int_equal(v.ext_type, KW_MP_EXT_TUPLE);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.len, 2);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.ext_type, KW_MP_EXT_TUPLE);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.len, 1);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	expect_btd(&r, &it, HID, false, KW_COMP_FLOAT16);
	/* outputs_schema = BTD(hid, requires_grad) */
	assert_true(mp_find(mp, len, "outputs_schema", &r, &v));
	expect_btd(&r, &v, HID, true, KW_COMP_NONE);
	assert_true(mp_find(mp, len, "keyword_names", &r, &v));
	assert_int_equal(v.ext_type, KW_MP_EXT_TUPLE);
}

static void test_serve_moe_unknown_uid_is_a_key_error(void **state)
{
	size_t n = put_uid(req, "ffn.9.9");

	call(KW_SERVE_MOE_INFO, n);
	expect_error("KeyError('ffn.9.9')");
	call(KW_SERVE_MOE_FORWARD, n);
	expect_error("KeyError('ffn.9.9')");
}

static void test_serve_moe_wrong_shape_is_a_value_error(void **state)
{
	static float x[3 * HID];
	uint32_t shape[2] = { 3 * HID / 2, 2 };   /* same bytes, wrong last dimension */
	size_t n = 0;

	n += put_uid(req + n, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "float32");
	call(KW_SERVE_MOE_FORWARD, n);
	expect_error("ValueError('inputs: expected a 2d tensor of shape [..., 32], got [48, 2]')");
}

static void test_serve_moe_wrong_dtype_is_a_type_error(void **state)
{
	static float x[2 * HID];
	uint32_t shape[2] = { 1, HID };   /* int64: 8 bytes a value, 2 x HID floats of bytes */
	size_t n = 0;

	n += put_uid(req + n, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "int64");
	call(KW_SERVE_MOE_FORWARD, n);
	expect_error("TypeError('inputs: dtype int64 is not served (float32, float16 or "
		     "bfloat16)')");
}

static void test_serve_moe_too_many_rows_is_refused_and_serving_goes_on(void **state)
{
	static float x[(ROWS + 1) * HID];
	uint32_t shape[2] = { ROWS + 1, HID };
	struct kw_tensor_msg m;
	struct kw_serve_stats st0, st;
	size_t n = 0;

	kw_serve_get_stats(srv, &st0);
	n += put_uid(req + n, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "float32");
	call(KW_SERVE_MOE_FORWARD, n);
	expect_error("ValueError(\"inputs: 17 rows exceed this server's limit of 16 (max_rows)\")");
	shape[0] = 1;
	n = put_uid(req, "ffn.0.0");
	n += put_tensor(req + n, x, shape, 2, "float32");
	call(KW_SERVE_MOE_FORWARD, n);
	response_tensor(&m);
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.calls - st0.calls, 2);
	assert_int_equal(st.errors - st0.errors, 1);
	assert_int_equal(st.slots_high, 1);
}

static void test_serve_undecodable_request_is_a_decode_error(void **state)
{
	struct kw_serve_stats st0, st;

	kw_serve_get_stats(srv, &st0);
	req[0] = 0x12;   /* tensors, length 100, nothing follows */
	req[1] = 100;
	call(KW_SERVE_MOE_FORWARD, 2);
	expect_error("DecodeError('Error parsing message: field length runs past the end')");
	kw_serve_get_stats(srv, &st);
	assert_int_equal(st.bad_requests - st0.bad_requests, 1);
}

/* ---- Petals ------------------------------------------------------------------------------- */

static void test_serve_petals_info_without_uid_gives_the_server_info(void **state)
{
	struct kw_mp_reader r;
	struct kw_mp_item v, it;
	const uint8_t *mp;
	size_t len;

	call(KW_SERVE_PT_INFO, 0);
	mp = info_bytes(&len);
	assert_int_equal(kw_mp_reader_init(&r, mp, len, KW_MP_ENTER_EXT), 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.len, 3);
	assert_true(mp_find(mp, len, "version", &r, &v));
	assert_int_equal(v.type, KW_MP_STR);
	assert_true(mp_find(mp, len, "dht_client_mode", &r, &v));
	assert_int_equal(v.type, KW_MP_BOOL);
	assert_false(v.v.b);
	assert_true(mp_find(mp, len, "cache_tokens_available", &r, &v));
	assert_int_equal(v.type, KW_MP_UINT);
	assert_false(mp_find(mp, len, "forward_schema", &r, &v));
}

static void test_serve_petals_info_of_a_block_adds_its_schemas(void **state)
{
	struct kw_mp_reader r;
	struct kw_mp_item v, it;
	const uint8_t *mp;
	size_t len, n = put_uid(req, "tiny-llama-hf.1");

	if (CONFIG_KW_NET_MSGPACK_MAX_DEPTH < 16)
		skip();  /* the schema dict nests deeper than this build's msgpack reader goes */

	call(KW_SERVE_PT_INFO, n);
	mp = info_bytes(&len);
	assert_int_equal(kw_mp_validate(mp, len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS, NULL), 0);
	assert_true(mp_find(mp, len, "outputs_schema", &r, &v));
	assert_int_equal(v.ext_type, KW_MP_EXT_TUPLE);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.len, 1);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	expect_btd(&r, &it, (uint32_t)dims.hidden, false, KW_COMP_NONE);
	assert_true(mp_find(mp, len, "inference_schema", &r, &v));
	assert_true(mp_find(mp, len, "keyword_names", &r, &v));
	call(KW_SERVE_PT_INFO, put_uid(req, "tiny-llama-hf.2"));
	expect_error("KeyError('tiny-llama-hf.2')");
}

static void test_serve_petals_forward_of_a_chain_equals_local_blocks(void **state)
{
	static float x[2 * 3 * 64], y[2 * 3 * 64], dummy[1];
	uint32_t shape[3] = { 2, 3, (uint32_t)dims.hidden }, dshape[1] = { 0 };
	struct kw_tensor_msg m;
	size_t n = 0;

	assert_int_equal(dims.hidden, 64);
	fill(x, sizeof(x) / 4, 1.0f);
	n += put_uid(req + n, "tiny-llama-hf.0 tiny-llama-hf.1");
	n += put_tensor(req + n, x, shape, 3, "float32");
	n += put_tensor(req + n, dummy, dshape, 1, "float32");   /* DUMMY prompts */
	call(KW_SERVE_PT_FORWARD, n);
	response_tensor(&m);
	assert_int_equal(m.ndim, 3);
	memcpy(y, x, sizeof(x));
	assert_int_equal(kw_llama_forward(&llctx, &lw[0], NULL, NULL, 0, y, 2, 3, 0, y), 0);
	assert_int_equal(kw_llama_forward(&llctx, &lw[1], NULL, NULL, 0, y, 2, 3, 0, y), 0);
	assert_int_equal(m.buf_len, sizeof(y));
	assert_memory_equal(m.buf, y, sizeof(y));
}

static void test_serve_petals_backward_of_a_chain_equals_local_blocks(void **state)
{
	static float x[4 * 64], h[4 * 64], gy[4 * 64], g1[4 * 64], gx[4 * 64];
	uint32_t shape[3] = { 1, 4, 64 };
	struct kw_tensor_msg m;
	size_t n = 0;

	fill(x, sizeof(x) / 4, 1.0f);
	fill(gy, sizeof(gy) / 4, 1.0f);
	n += put_uid(req + n, "tiny-llama-hf.0 tiny-llama-hf.1");
	n += put_tensor(req + n, x, shape, 3, "float32");
	n += put_tensor(req + n, gy, shape, 3, "float32");
	call(KW_SERVE_PT_BACKWARD, n);
	response_tensor(&m);
	assert_int_equal(kw_llama_forward(&llctx, &lw[0], NULL, NULL, 0, x, 1, 4, 0, h), 0);
	assert_int_equal(kw_llama_backward(&llctx, &lw[1], h, gy, 1, 4, g1), 0);
	assert_int_equal(kw_llama_backward(&llctx, &lw[0], x, g1, 1, 4, gx), 0);
	assert_int_equal(m.buf_len, sizeof(gx));
	assert_memory_equal(m.buf, gx, sizeof(gx));
}

static void test_serve_petals_output_compression_is_honoured(void **state)
{
	static float x[2 * 64];
	/* {"output_compression": (2,)} */
	static const uint8_t meta[] = { 0x81, 0xb2, 'o', 'u', 't', 'p', 'u', 't', '_', 'c', 'o',
					'm', 'p', 'r', 'e', 's', 's', 'i', 'o', 'n', 0xd5, 0x40,
					0x91, 0x02 };
	uint32_t shape[3] = { 1, 2, 64 };
	struct kw_tensor_msg m;
	size_t n = 0;

	fill(x, sizeof(x) / 4, 1.0f);
	n += put_uid(req + n, "tiny-llama-hf.1");
	n += put_tensor(req + n, x, shape, 3, "float32");
	n += put_field(req + n, 3, meta, sizeof(meta));
	call(KW_SERVE_PT_FORWARD, n);
	response_tensor(&m);
	assert_int_equal(m.compression, KW_COMP_FLOAT16);
	assert_int_equal(m.buf_len, 2 * 2 * 64);
}

static void test_serve_petals_chain_not_held_is_a_runtime_error(void **state)
{
	static float x[64];
	uint32_t shape[3] = { 1, 1, 64 };
	size_t n = 0;

	n += put_uid(req + n, "tiny-llama-hf.1 tiny-llama-hf.2");
	n += put_tensor(req + n, x, shape, 3, "float32");
	call(KW_SERVE_PT_FORWARD, n);
	expect_error("RuntimeError('Remote peer does not serve tiny-llama-hf.2')");
	call(KW_SERVE_PT_FORWARD, 0);   /* no uid at all: "".split(" ") == [""] */
	expect_error("RuntimeError('Remote peer does not serve ')");
}

static void test_serve_petals_active_adapter_is_a_key_error(void **state)
{
	static float x[64];
	/* {"active_adapter": "lora"} */
	static const uint8_t meta[] = { 0x81, 0xae, 'a', 'c', 't', 'i', 'v', 'e', '_', 'a', 'd',
					'a', 'p', 't', 'e', 'r', 0xa4, 'l', 'o', 'r', 'a' };
	uint32_t shape[3] = { 1, 1, 64 };
	size_t n = 0;

	n += put_uid(req + n, "tiny-llama-hf.0");
	n += put_tensor(req + n, x, shape, 3, "float32");
	n += put_field(req + n, 3, meta, sizeof(meta));
	call(KW_SERVE_PT_FORWARD, n);
	expect_error("KeyError('adapter lora not found')");
}

/* ---- the decoder and the uid rule, without a network --------------------------------------- */

static void test_serve_req_decode_refuses_too_many_tensors(void **state)
{
	static uint8_t b[256];
	static const float x[1];
	uint32_t shape[1] = { 1 };
	struct kw_serve_req r;
	size_t n = 0;

	for (int i = 0; i <= KW_SERVE_TENSORS_MAX; i++)
		n += put_tensor(b + n, x, shape, 1, "float32");
	assert_int_equal(kw_serve_req_decode(&r, b, n, NULL), -KW_ELIMIT);
}

static void test_serve_uid_rule_is_hiveminds(void **state)
{
	assert_true(kw_serve_uid_valid("ffn.0.12", 8));
	assert_true(kw_serve_uid_valid("expert.3", 8));
	assert_false(kw_serve_uid_valid("ffn.01", 6));   /* leading zero */
	assert_false(kw_serve_uid_valid("ffn.", 4));
	assert_false(kw_serve_uid_valid(".1", 2));
	assert_false(kw_serve_uid_valid("ffn", 3));
	assert_false(kw_serve_uid_valid("ffn.1.", 6));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_moe_forward_equals_local_ffn),
		cmocka_unit_test(test_serve_moe_backward_equals_local_ffn),
		cmocka_unit_test(test_serve_moe_backward_uses_the_experts_compression),
		cmocka_unit_test(test_serve_moe_info_gives_the_schemas),
		cmocka_unit_test(test_serve_moe_unknown_uid_is_a_key_error),
		cmocka_unit_test(test_serve_moe_wrong_shape_is_a_value_error),
		cmocka_unit_test(test_serve_moe_wrong_dtype_is_a_type_error),
		cmocka_unit_test(test_serve_moe_too_many_rows_is_refused_and_serving_goes_on),
		cmocka_unit_test(test_serve_undecodable_request_is_a_decode_error),
		cmocka_unit_test(test_serve_petals_info_without_uid_gives_the_server_info),
		cmocka_unit_test(test_serve_petals_info_of_a_block_adds_its_schemas),
		cmocka_unit_test(test_serve_petals_forward_of_a_chain_equals_local_blocks),
		cmocka_unit_test(test_serve_petals_backward_of_a_chain_equals_local_blocks),
		cmocka_unit_test(test_serve_petals_output_compression_is_honoured),
		cmocka_unit_test(test_serve_petals_chain_not_held_is_a_runtime_error),
		cmocka_unit_test(test_serve_petals_active_adapter_is_a_key_error),
		cmocka_unit_test(test_serve_req_decode_refuses_too_many_tensors),
		cmocka_unit_test(test_serve_uid_rule_is_hiveminds),
	};

	(void)argc;
	snprintf(dir, sizeof(dir), "%s/serve-model-%d", dirname(argv[0]), (int)getpid());
	return cmocka_run_group_tests_name("app/serve", tests, setup, teardown);
}
