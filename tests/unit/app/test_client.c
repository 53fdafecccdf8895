/*
 * The Petals client's route finding (app/client_route.c) and what a serving node announces
 * (app/serve_app.c kw_app_serve_announce_cfg): chains over ServerInfo records (fewest hops,
 * then throughput, OFFLINE and banned servers left out, gaps reported), the ban backoff, the
 * newest record speaking for a server, the chain uid and the rpc_forward request bytes
 * decoded back by the server's own decoder; and the announcement of a node serving the tiny
 * checkpoint's blocks and an expert grid (span, dtype, int8, throughput measured or
 * configured, expert uids).
 */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>
#include <kw/ml/tensor_msg.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/kad_msg.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "../../../app/client.h"
#include "../../../app/serve.h"
#include "../../../app/serve_app.h"
#include "model_gen.h"
#include "../net/hivemind/hm_pair.h"

/* At the maximum Kconfig ranges this build's Hivemind call pools (in + out calls, two buffers
 * of CALL_BUF_BYTES each) take gigabytes, more than this test's arenas: the tests skip there
 * and say so. */
#define HM_CALL_POOLS_BYTES ((size_t)(CONFIG_KW_NET_HIVEMIND_CALLS_IN +                     \
				      CONFIG_KW_NET_HIVEMIND_CALLS_OUT) * 2u *                  \
			     CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES)
#define HM_CALL_POOLS_FIT (HM_CALL_POOLS_BYTES <= ((size_t)8 << 20))

static struct kw_client_route rt;
static char dir[3100], err[512];

static void add(const char *peer, uint8_t state, uint32_t a, uint32_t b, double rps, double exp)
{
	struct kw_hm_server_info si;

	memset(&si, 0, sizeof(si));
	si.state = state;
	si.throughput = rps;
	si.has = KW_HM_SI_START_BLOCK | KW_HM_SI_END_BLOCK;
	si.start_block = a;
	si.end_block = b;
	assert_int_equal(kw_client_route_add(&rt, peer, &si, a, exp), 0);
}

static const char *hop_peer(const struct kw_client_span *s)
{
	return rt.srv[s->srv].peer;
}

static void test_client_route_takes_fewest_hops(void **state)
{
	struct kw_client_span sp[8];
	uint32_t n, gap;

	(void)state;
	kw_client_route_init(&rt, 1.0, 8.0);
	add("A", KW_HM_STATE_ONLINE, 0, 2, 10.0, 100);
	add("B", KW_HM_STATE_ONLINE, 2, 4, 10.0, 100);
	add("C", KW_HM_STATE_ONLINE, 4, 6, 10.0, 100);
	add("W", KW_HM_STATE_ONLINE, 1, 6, 1.0, 100);   /* slow, but one hop from block 1 */
	assert_int_equal(kw_client_route_plan(&rt, 0, 6, 0, sp, 8, &n, &gap), 0);
	assert_int_equal(n, 2);
	assert_string_equal(hop_peer(&sp[0]), "A");
	assert_int_equal(sp[0].start, 0);
	assert_int_equal(sp[0].end, 2);
	assert_string_equal(hop_peer(&sp[1]), "W");
	assert_int_equal(sp[1].start, 2);
	assert_int_equal(sp[1].end, 6);
	/* a sub-range: spans are cut to it */
	assert_int_equal(kw_client_route_plan(&rt, 3, 5, 0, sp, 8, &n, &gap), 0);
	assert_int_equal(n, 1);
	assert_string_equal(hop_peer(&sp[0]), "W");
	assert_int_equal(sp[0].start, 3);
	assert_int_equal(sp[0].end, 5);
}

static void test_client_route_prefers_throughput_then_peer_id(void **state)
{
	struct kw_client_span sp[4];
	uint32_t n;

	(void)state;
	kw_client_route_init(&rt, 1.0, 8.0);
	add("B", KW_HM_STATE_ONLINE, 0, 2, 5.0, 100);
	add("A", KW_HM_STATE_ONLINE, 0, 2, 5.0, 100);
	add("C", KW_HM_STATE_ONLINE, 0, 2, 7.5, 100);
	assert_int_equal(kw_client_route_plan(&rt, 0, 2, 0, sp, 4, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(hop_peer(&sp[0]), "C");
	kw_client_ban(&rt, "C", 0);
	assert_int_equal(kw_client_route_plan(&rt, 0, 2, 0, sp, 4, &n, NULL), 0);
	assert_string_equal(hop_peer(&sp[0]), "A");   /* equal figures: the smaller PeerID */
}

static void test_client_route_skips_offline_and_reports_the_gap(void **state)
{
	struct kw_client_span sp[4];
	uint32_t n, gap = 99;

	(void)state;
	kw_client_route_init(&rt, 1.0, 8.0);
	add("A", KW_HM_STATE_ONLINE, 0, 2, 1.0, 100);
	add("B", KW_HM_STATE_OFFLINE, 2, 4, 1.0, 100);
	add("C", KW_HM_STATE_JOINING, 2, 4, 1.0, 100);
	add("D", KW_HM_STATE_ONLINE, 4, 6, 1.0, 100);
	assert_int_equal(kw_client_route_plan(&rt, 0, 6, 0, sp, 4, &n, &gap), -KW_ENOENT);
	assert_int_equal(gap, 2);
	assert_int_equal(n, 1);             /* the span before the gap */
	assert_int_equal(kw_client_route_plan(&rt, 2, 2, 0, sp, 4, &n, &gap), -KW_EINVAL);
	/* more hops than room */
	assert_int_equal(kw_client_route_plan(&rt, 4, 6, 0, sp, 0, &n, &gap), -KW_ENOSPC);
}

static void test_client_ban_backs_off_and_success_resets_it(void **state)
{
	struct kw_client_span sp[4];
	uint32_t n;

	(void)state;
	kw_client_route_init(&rt, 1.0, 3.0);
	add("A", KW_HM_STATE_ONLINE, 0, 1, 1.0, 100);
	kw_client_ban(&rt, "A", 10.0);
	assert_true(kw_client_banned(&rt, "A", 10.9));
	assert_false(kw_client_banned(&rt, "A", 11.0));
	assert_int_equal(kw_client_route_plan(&rt, 0, 1, 10.5, sp, 4, &n, NULL), -KW_ENOENT);
	assert_int_equal(kw_client_route_plan(&rt, 0, 1, 11.0, sp, 4, &n, NULL), 0);
	kw_client_ban(&rt, "A", 20.0);      /* second failure in a row: 2 s */
	assert_true(kw_client_banned(&rt, "A", 21.9));
	assert_false(kw_client_banned(&rt, "A", 22.0));
	kw_client_ban(&rt, "A", 30.0);      /* 4 s, capped at 3 */
	assert_true(kw_client_banned(&rt, "A", 32.9));
	assert_false(kw_client_banned(&rt, "A", 33.0));
	kw_client_unban(&rt, "A");
	kw_client_ban(&rt, "A", 40.0);      /* after a success: 1 s again */
	assert_false(kw_client_banned(&rt, "A", 41.0));
	assert_false(kw_client_banned(&rt, "Z", 0.0));
	/* a full ban table drops the ban that ends first */
	kw_client_route_init(&rt, 1.0, 3.0);
	for (int i = 0; i < KW_CLIENT_BANS_MAX + 1; i++) {
		char p[8];

		snprintf(p, sizeof(p), "p%d", i);
		kw_client_ban(&rt, p, (double)i);
	}
	assert_int_equal(rt.n_ban, KW_CLIENT_BANS_MAX);
	assert_false(kw_client_banned(&rt, "p0", 0.5));
	assert_true(kw_client_banned(&rt, "p64", 64.5));
}

static void test_client_newest_record_speaks_for_a_server(void **state)
{
	struct kw_hm_server_info si;
	struct kw_client_span sp[2];
	uint32_t n;

	(void)state;
	kw_client_route_init(&rt, 1.0, 8.0);
	add("A", KW_HM_STATE_ONLINE, 0, 2, 1.0, 100);
	add("A", KW_HM_STATE_OFFLINE, 0, 2, 1.0, 200);   /* SIGTERM: a newer OFFLINE record */
	add("A", KW_HM_STATE_ONLINE, 0, 2, 1.0, 150);    /* an older replica's copy */
	assert_int_equal(rt.n_srv, 1);
	assert_int_equal(rt.srv[0].state, KW_HM_STATE_OFFLINE);
	assert_int_equal(kw_client_route_plan(&rt, 0, 2, 0, sp, 2, &n, NULL), -KW_ENOENT);
	/* a record without start/end spans the block it was found under */
	memset(&si, 0, sizeof(si));
	si.state = KW_HM_STATE_ONLINE;
	assert_int_equal(kw_client_route_add(&rt, "B", &si, 5, 100), 0);
	assert_int_equal(rt.srv[1].start, 5);
	assert_int_equal(rt.srv[1].end, 6);
	assert_int_equal(kw_client_route_add(&rt, "", &si, 5, 100), -KW_EINVAL);
	kw_client_route_clear(&rt);
	for (int i = 0; i < KW_CLIENT_SERVERS_MAX; i++) {
		char p[8];

		snprintf(p, sizeof(p), "s%d", i);
		assert_int_equal(kw_client_route_add(&rt, p, &si, 0, 1), 0);
	}
	assert_int_equal(kw_client_route_add(&rt, "one-more", &si, 0, 1), -KW_ENOSPC);
	assert_int_equal(rt.dropped, 1);
}

static void test_client_request_decodes_as_the_server_reads_it(void **state)
{
	static uint8_t buf[4096];
	static const float v[6] = { 1, 2, 3, 4, 5, 6 };
	uint32_t shape[3] = { 1, 2, 3 };
	struct kw_serve_req r;
	char uid[64];
	long len;

	(void)state;
	kw_client_prefix_of("/models/Llama.2 7b//", uid, sizeof(uid));
	assert_string_equal(uid, "Llama-2-7b");
	kw_client_prefix_of("tiny", uid, sizeof(uid));
	assert_string_equal(uid, "tiny");
	assert_int_equal(kw_client_chain_uid("llama", 3, 6, uid, sizeof(uid)), 23);
	assert_string_equal(uid, "llama.3 llama.4 llama.5");
	assert_int_equal(kw_client_chain_uid("llama", 3, 6, uid, 10), -KW_ENOSPC);
	assert_true(kw_client_chain_uid("a.b", 0, 1, uid, sizeof(uid)) < 0);
	len = kw_client_req_encode(uid, shape, 3, v, 6, true, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(kw_serve_req_decode(&r, buf, (size_t)len, NULL), 0);
	assert_int_equal(r.uid_len, strlen(uid));
	assert_memory_equal(r.uid, uid, r.uid_len);
	assert_int_equal(r.n_tensors, 2);
	assert_int_equal(r.t[0].ndim, 3);
	assert_int_equal(r.t[0].shape[1], 2);
	assert_string_equal(r.t[0].dtype, "float32");
	assert_int_equal(r.t[0].buf_len, sizeof(v));
	assert_memory_equal(r.t[0].buf, v, sizeof(v));
	assert_int_equal(r.t[1].buf_len, 0);            /* DUMMY prompts */
	assert_int_equal(kw_client_req_encode(uid, shape, 3, v, 6, false, buf, sizeof(buf)),
			 len - (long)(2 + kw_tensor_msg_encoded_size(&r.t[1])));
	assert_int_equal(kw_client_req_encode(uid, shape, 3, v, 6, true, buf, 40),
			 -KW_EMSGSIZE);
}

static void test_client_tokens_file_names_the_bad_line(void **state)
{
	static const char good[] = "# prompt\n1\n  17 \r\n\n255\n42";
	uint32_t tok[4];
	size_t n;
	char e[160];

	(void)state;
	assert_int_equal(kw_client_tokens_parse(good, strlen(good), 256, tok, 4, &n, e,
						sizeof(e)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(tok[0], 1);
	assert_int_equal(tok[1], 17);
	assert_int_equal(tok[2], 255);
	assert_int_equal(tok[3], 42);
	assert_int_equal(kw_client_tokens_parse(good, strlen(good), 256, tok, 3, &n, e,
						sizeof(e)), -KW_ENOSPC);
	assert_int_equal(kw_client_tokens_parse("1\n256\n", 6, 256, tok, 4, &n, e, sizeof(e)),
			 -KW_EINVAL);
	assert_string_equal(e, "line 2: the token ID is not below the vocabulary size 256");
	assert_int_equal(kw_client_tokens_parse("1\n2 3\n", 6, 256, tok, 4, &n, e, sizeof(e)),
			 -KW_EINVAL);
	assert_string_equal(e, "line 2: not a token ID (a decimal number)");
	assert_int_equal(kw_client_tokens_parse("-1\n", 3, 256, tok, 4, &n, e, sizeof(e)),
			 -KW_EINVAL);
	assert_string_equal(e, "line 1: not a token ID (a decimal number)");
	assert_int_equal(kw_client_tokens_parse("99999999999999999999999\n", 24, 256, tok, 4, &n,
						e, sizeof(e)), -KW_EINVAL);
	assert_non_null(strstr(e, "vocabulary"));
	assert_int_equal(kw_client_tokens_parse("# none\n\n", 8, 256, tok, 4, &n, e, sizeof(e)),
			 -KW_EINVAL);
	assert_non_null(strstr(e, "no token"));
}

static void test_client_answer_must_be_hidden_states_of_the_shape_sent(void **state)
{
	static struct kw_codec codec;
	static uint8_t buf[2048];
	static const float v[6] = { 1, 2, 3, 4, 5, 6 };
	struct kw_tensor_msg m;
	uint16_t h[6];
	uint32_t shape[3] = { 1, 2, 3 };
	float out[6];
	size_t len;
	long l;

	(void)state;
	assert_int_equal(kw_codec_init(&codec, KW_SIMD_AUTO), 0);
	/* an ExpertResponse has its tensors in field 2, as a request: the encoder writes one */
	l = kw_client_req_encode("", shape, 3, v, 6, false, buf, sizeof(buf));
	assert_true(l > 0);
	assert_int_equal(kw_client_answer_decode(&codec, buf, (size_t)l, 2, 3, out), 0);
	assert_memory_equal(out, v, sizeof(v));
	/* other rows or width than sent */
	assert_int_equal(kw_client_answer_decode(&codec, buf, (size_t)l, 3, 3, out), -KW_EBADMSG);
	assert_int_equal(kw_client_answer_decode(&codec, buf, (size_t)l, 3, 2, out), -KW_EBADMSG);
	assert_int_equal(kw_client_answer_decode(&codec, buf, (size_t)l - 1, 2, 3, out),
			 -KW_EBADMSG);
	/* float16 answers decode too */
	for (int i = 0; i < 6; i++)
		h[i] = kw_f32_to_fp16(v[i]);
	memset(&m, 0, sizeof(m));
	m.buf = (const uint8_t *)h;
	m.buf_len = sizeof(h);
	m.ndim = 3;
	memcpy(m.shape, shape, sizeof(shape));
	strcpy(m.dtype, "float16");
	buf[0] = 0x12;
	assert_int_equal(kw_tensor_msg_encode(&m, buf + 2, sizeof(buf) - 2, &len), 0);
	assert_true(len < 128);
	buf[1] = (uint8_t)len;
	assert_int_equal(kw_client_answer_decode(&codec, buf, len + 2, 2, 3, out), 0);
	assert_memory_equal(out, v, sizeof(v));
	/* a non-finite value is refused */
	h[4] = 0x7c00;
	assert_int_equal(kw_tensor_msg_encode(&m, buf + 2, sizeof(buf) - 2, &len), 0);
	assert_int_equal(kw_client_answer_decode(&codec, buf, len + 2, 2, 3, out), -KW_ERANGE);
}

static void test_client_step_carries_max_length_then_step_ids(void **state)
{
	static uint8_t buf[2048];
	static const float v[3] = { 1, 2, 3 };
	uint32_t shape[3] = { 1, 1, 3 };
	struct kw_serve_req r;
	long l;
	/* msgpack {"max_length": 40, "step_id": "kw-1-0"} as written (uint32 for the int) */
	static const uint8_t first[] = { 0x82, 0xaa, 'm', 'a', 'x', '_', 'l', 'e', 'n', 'g', 't',
					 'h', 0xce, 0, 0, 0, 40, 0xa7, 's', 't', 'e', 'p', '_',
					 'i', 'd', 0xa6, 'k', 'w', '-', '1', '-', '0' };

	(void)state;
	l = kw_client_step_encode("m.0 m.1", shape, v, 3, 40, "kw-1-0", buf, sizeof(buf));
	assert_true(l > 0);
	assert_int_equal(kw_serve_req_decode(&r, buf, (size_t)l, NULL), 0);
	assert_int_equal(r.n_tensors, 3);
	assert_string_equal(r.t[1].dtype, "float32");
	assert_int_equal(r.t[1].buf_len, 0);
	assert_string_equal(r.t[2].dtype, "int64");   /* DUMMY hypo_ids */
	assert_int_equal(r.t[2].buf_len, 0);
	assert_int_equal(r.meta_len, sizeof(first));
	assert_memory_equal(r.meta, first, sizeof(first));
	l = kw_client_step_encode("m.0 m.1", shape, v, 3, 0, "kw-1-1", buf, sizeof(buf));
	assert_int_equal(kw_serve_req_decode(&r, buf, (size_t)l, NULL), 0);
	assert_int_equal(r.meta_len, 1 + 8 + 7);
	assert_int_equal(r.meta[0], 0x81);
	assert_int_equal(kw_client_step_encode("m.0", shape, v, 3, 0,
					       "a-step-id-longer-than-31-bytes-x", buf, sizeof(buf)),
			 -KW_EINVAL);
}

static void test_client_moe_reads_declarations_and_picks_the_best(void **state)
{
	static struct kw_client_expert ex[4];
	struct kw_hm_rec rec;
	char uid[KW_HM_REC_UID_MAX], peer[KW_HM_REC_PEER_MAX];
	int64_t c;
	uint32_t grid[2] = { 2, 3 }, best[3], nb, coord[4], n;
	float scores[5] = { 0.5f, 1.0f, 0.0f, 2.0f, -1.0f }, logit[3], w[3];
	bool ans[3] = { true, true, false };
	static const char *P = "12D3KooWGZgcA53YMHp6oByHuCQY51wWGuBxPcpsHLcyJkfdRp68";

	(void)state;
	/* the prefix record the announcer writes for ffn.1.2 reads back as (2, uid, peer) */
	assert_int_equal(kw_hm_expert_record("ffn.1.2", P, 1, &rec), 0);
	assert_string_equal(rec.key, "ffn.1.");
	assert_int_equal(kw_client_expert_entry(rec.sub, rec.sub_len, rec.val, rec.val_len, &c,
						uid, sizeof(uid), peer, sizeof(peer)), 0);
	assert_int_equal(c, 2);
	assert_string_equal(uid, "ffn.1.2");
	assert_string_equal(peer, P);
	assert_int_equal(kw_client_expert_entry(rec.sub, rec.sub_len, rec.val, rec.val_len, &c,
						uid, 4, peer, sizeof(peer)), -KW_EBADMSG);
	assert_int_equal(kw_client_expert_entry(rec.val, rec.val_len, rec.val, rec.val_len, &c,
						uid, sizeof(uid), peer, sizeof(peer)), -KW_EBADMSG);
	assert_int_equal(kw_client_expert_coords("ffn.1.2", "ffn", coord, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(coord[1], 2);
	assert_int_equal(kw_client_expert_coords("ffx.1.2", "ffn", coord, 4, &n), -KW_EINVAL);
	assert_int_equal(kw_client_expert_coords("ffn.1.2", "ffn", coord, 1, &n), -KW_EINVAL);
	assert_int_equal(kw_client_expert_coords("ffn.1.x", "ffn", coord, 4, &n), -KW_EINVAL);
	/* logits: row scores (0.5, 1.0 | 0.0, 2.0, -1.0) */
	ex[0] = (struct kw_client_expert){ .coord = { 0, 0 }, .ndim = 2 };   /* 0.5 */
	ex[1] = (struct kw_client_expert){ .coord = { 1, 1 }, .ndim = 2 };   /* 3.0 */
	ex[2] = (struct kw_client_expert){ .coord = { 0, 1 }, .ndim = 2 };   /* 2.5 */
	ex[3] = (struct kw_client_expert){ .coord = { 1, 2 }, .ndim = 2 };   /* 0.0 */
	assert_int_equal(kw_client_moe_topk(scores, grid, 2, ex, 4, 3, best, logit, &nb), 0);
	assert_int_equal(nb, 3);
	assert_int_equal(best[0], 1);
	assert_int_equal(best[1], 2);
	assert_int_equal(best[2], 0);
	assert_true(logit[0] == 3.0f && logit[2] == 0.5f);
	assert_int_equal(kw_client_moe_topk(scores, grid, 2, ex, 4, 1, best, logit, &nb), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(best[0], 1);
	assert_int_equal(kw_client_moe_topk(scores, grid, 2, ex, 0, 1, best, logit, &nb),
			 -KW_ENOENT);
	/* softmax over the experts that answered: e^3 / (e^3 + e^2.5) */
	logit[0] = 3.0f;
	logit[1] = 2.5f;
	logit[2] = 0.5f;
	assert_int_equal(kw_client_moe_weights(logit, ans, 3, w), 0);
	assert_float_equal(w[0], 1.0 / (1.0 + exp(-0.5)), 1e-6);
	assert_float_equal(w[2], 0.0, 0.0);
	ans[0] = ans[1] = false;
	assert_int_equal(kw_client_moe_weights(logit, ans, 3, w), -KW_ENOENT);
}

static void test_client_announce_says_what_is_served(void **state)
{
	static struct kw_config cfg;
	static struct kw_app_serve as;
	struct kw_hm_announce_cfg ac;
	struct kw_model_gen mg;
	struct kw_serve_limits lim;
	bool measured;
	char path[3200], v[16];
	uint32_t grid = 5, end = 3;
	double want;

	(void)state;
	/* within this build's limits: 25 experts show the cut to 16 when they fit */
	kw_serve_limits_default(&lim);
	while (grid * grid > lim.max_experts)
		grid--;
	if (lim.max_blocks < 2)
		end = 2;
	kw_model_gen_tiny(&mg, 5);
	mg.layers = 3;
	mg.shards = 1;   /* a build may hold one shard only (KW_ML_MODEL_MAX_SHARDS) */
	assert_int_equal(kw_model_gen_write(&mg, dir, err, sizeof(err)), 0);
	kw_config_defaults(&cfg);
	snprintf(path, sizeof(path), "%s", dir);
	assert_int_equal(kw_config_set(&cfg, "serve_model", path, err, sizeof(err)), 0);
	snprintf(v, sizeof(v), "1:%u", end);
	assert_int_equal(kw_config_set(&cfg, "serve_blocks", v, err, sizeof(err)), 0);
	assert_int_equal(kw_config_set(&cfg, "serve_experts", "ffn", err, sizeof(err)), 0);
	snprintf(v, sizeof(v), "%u", grid);
	assert_int_equal(kw_config_set(&cfg, "serve_grid", v, err, sizeof(err)), 0);
	assert_int_equal(kw_config_set(&cfg, "serve_hidden", "16", err, sizeof(err)), 0);
	assert_int_equal(kw_config_set(&cfg, "hivemind_public_name", "edge-1", err,
				       sizeof(err)), 0);
	if (kw_app_serve_open(&as, &cfg, NULL, false, err, sizeof(err)) < 0) {
		kw_test_rm_dir(dir);
		if (strstr(err, "budget")) {
			/* a build whose model budget holds less than two tiny blocks */
			print_message("skip: %s\n", err);
			skip();
		}
		fail_msg("%s", err);
	}
	kw_app_serve_announce_cfg(&as, &cfg, &ac, &measured);
	assert_string_equal(ac.prefix, strrchr(dir, '/') + 1);
	assert_int_equal(ac.start_block, 1);
	assert_int_equal(ac.end_block, end);
	assert_int_equal(ac.model.num_blocks, 3);            /* from the checkpoint */
	assert_true(ac.info.has & KW_HM_SI_TORCH_DTYPE);
	assert_string_equal(ac.info.torch_dtype, "float32");
	assert_string_equal(ac.info.quant_type, "int8");
	assert_true(ac.info.has & KW_HM_SI_CACHE_TOKENS);
	assert_true(ac.info.has & KW_HM_SI_PUBLIC_NAME);
	assert_string_equal(ac.info.public_name, "edge-1");
	assert_true(measured);
	assert_true(ac.info.throughput > 0);
	/* petals throughput.py: forward_rps over the mean blocks a request uses, (n + 1) / 2 */
	assert_true(ac.info.has & KW_HM_SI_FORWARD_RPS);
	assert_true(ac.info.forward_rps > 0);
	want = ac.info.forward_rps / ((end - 1 + 1) / 2.0);   /* blocks 1 .. end - 1 */
	assert_true(ac.info.throughput > want * (1 - 1e-9) && ac.info.throughput < want * (1 + 1e-9));
	/* 1-token steps with a KV cache, measured at open beside the forward figure */
	assert_true(ac.info.has & KW_HM_SI_INFERENCE_RPS);
	assert_true(ac.info.inference_rps > 0);
	assert_true(as.inference_rps == ac.info.inference_rps);
	/* 25 experts: the announcer declares its first 16 */
	assert_int_equal(ac.n_experts, grid * grid < KW_HM_ANNOUNCE_EXPERTS ? grid * grid :
			 KW_HM_ANNOUNCE_EXPERTS);
	assert_string_equal(ac.experts[0], "ffn.0.0");
	if (grid > 1)
		assert_string_equal(ac.experts[grid + 1], "ffn.1.1");
	/* a configured figure wins over the measured one */
	assert_int_equal(kw_config_set(&cfg, "hivemind_throughput", "2.5", err, sizeof(err)), 0);
	kw_app_serve_announce_cfg(&as, &cfg, &ac, &measured);
	assert_false(measured);
	assert_true(ac.info.throughput == 2.5);
	assert_false(ac.info.has & KW_HM_SI_FORWARD_RPS);
	kw_app_serve_close(&as);
	kw_test_rm_dir(dir);
}


/* ---- finding a server's addresses from its PeerID (kw_client_resolve) ------------------ */

#define PEER_P "12D3KooWE8zUHfv8s5oq3oR9aZgbS9FcQ9rLmw5szTzZWXDwEsKZ"
#define PEER_X "12D3KooWHy5VYSsp9ntTH2xJCPrWqPNbdoJrHZ1doDALatKJdasF"

static void kad_peer(struct kw_kad_peer *kp, const char *peer, const char *const *addrs, int n)
{
	struct kw_peer_id id;
	struct kw_multiaddr ma;

	memset(kp, 0, sizeof(*kp));
	assert_int_equal(kw_peer_id_from_text(peer, &id), 0);
	memcpy(kp->id, id.bytes, id.len);
	kp->id_len = id.len;
	assert_true(n <= KW_KAD_MAX_ADDRS);
	for (int i = 0; i < n; i++) {
		if (!addrs[i]) {   /* bytes that are no multiaddr */
			memset(kp->addrs[i], 0xff, 4);
			kp->addr_len[i] = 4;
		} else {
			assert_int_equal(kw_maddr_from_text(addrs[i], &ma, NULL, 0), 0);
			memcpy(kp->addrs[i], ma.bytes, ma.len);
			kp->addr_len[i] = (uint8_t)ma.len;
		}
	}
	kp->n_addrs = (uint8_t)n;
}

static void test_client_kad_answer_gives_the_peers_own_addresses(void **state)
{
	static const char *const other[] = { "/ip4/10.9.9.9/tcp/1" };
	static const char *const mine[] = {
		"/ip4/127.0.0.1/tcp/4001",                 /* bare: /p2p/ is appended */
		NULL,                                       /* garbage: left out */
		"/ip4/1.2.3.4/tcp/6/p2p/" PEER_X,           /* names another peer: left out */
		"/ip4/10.0.0.1/tcp/5/p2p/" PEER_P,          /* already names it: kept */
	};
	struct kw_kad_peer kp[5];
	char out[KW_CLIENT_RESOLVE_ADDRS][KW_CLIENT_ADDR_MAX];

	(void)state;
	/* one address per entry: a build may keep one per peer (KW_NET_KAD_MAX_ADDRS_PER_PEER);
	 * the entries of one peer add up, as a lookup's answers from several peers do */
	kad_peer(&kp[0], PEER_X, other, 1);
	for (int i = 0; i < 4; i++)
		kad_peer(&kp[1 + i], PEER_P, mine + i, 1);
	assert_int_equal(kw_client_kad_addrs(kp, 5, PEER_P, out, KW_CLIENT_RESOLVE_ADDRS), 2);
	assert_string_equal(out[0], "/ip4/127.0.0.1/tcp/4001/p2p/" PEER_P);
	assert_string_equal(out[1], "/ip4/10.0.0.1/tcp/5/p2p/" PEER_P);
	/* the cap holds; the other peer's entry alone says nothing of P */
	assert_int_equal(kw_client_kad_addrs(kp, 5, PEER_P, out, 1), 1);
	assert_string_equal(out[0], "/ip4/127.0.0.1/tcp/4001/p2p/" PEER_P);
	assert_int_equal(kw_client_kad_addrs(kp, 1, PEER_P, out, KW_CLIENT_RESOLVE_ADDRS), 0);
	assert_int_equal(kw_client_kad_addrs(kp, 5, PEER_X, out, KW_CLIENT_RESOLVE_ADDRS), 1);
	assert_string_equal(out[0], "/ip4/10.9.9.9/tcp/1/p2p/" PEER_X);
	assert_int_equal(kw_client_kad_addrs(kp, 5, "not-a-peer", out, 4), 0);
}

struct dialed {
	struct kw_conn *c;
	int err, calls;
};

static void on_resolved(struct kw_swarm *sw, struct kw_conn *c, int e, void *user)
{
	struct dialed *d = user;

	(void)sw;
	d->c = c;
	d->err = e;
	d->calls++;
}

static void test_client_resolve_uses_a_connection_then_an_address(void **state)
{
	struct kw_hm_limits hl;
	struct kw_hm_pair p;
	struct kw_client_resolver r;
	struct dialed d = { 0 };
	struct kw_conn *c = NULL;

	if (!HM_CALL_POOLS_FIT)
		skip();  /* the call pools of this build do not fit the test nodes */
	char b_peer[KW_HM_REC_PEER_MAX];
	const char *addrs[1];

	(void)state;
	kw_hm_limits_default(&hl);
	assert_int_equal(kw_hm_pair_init(&p, 2, &hl, 16 * 1024), 0);
	assert_int_equal(kw_peer_id_to_text(kw_swarm_peer_id(p.b.sw), b_peer, sizeof(b_peer)), 0);
	/* no connection, no address and no kad in this resolver: nothing reaches b */
	kw_client_resolver_init(&r, p.a.sw, NULL);
	assert_int_equal(kw_client_resolve(&r, b_peer, NULL, 0, on_resolved, &d, &c),
			 -KW_ENOENT);
	assert_non_null(strstr(r.why, "--peer"));
	assert_int_equal(r.state, KW_CLIENT_RES_IDLE);
	assert_int_equal(kw_client_resolve(&r, "12D3KooWnot", NULL, 0, on_resolved, &d, &c),
			 -KW_EINVAL);
	addrs[0] = p.a.addr;   /* names a, not b */
	assert_int_equal(kw_client_resolve(&r, b_peer, addrs, 1, on_resolved, &d, &c),
			 -KW_ENOENT);
	/* a resolution in flight refuses a second one */
	r.state = KW_CLIENT_RES_LOOKUP;
	assert_int_equal(kw_client_resolve(&r, b_peer, NULL, 0, on_resolved, &d, &c), -KW_EBUSY);
	r.state = KW_CLIENT_RES_IDLE;
	/* b's own address: a dial, the callback from the loop with the connection */
	addrs[0] = p.b.addr;
	assert_int_equal(kw_client_resolve(&r, b_peer, addrs, 1, on_resolved, &d, &c), 0);
	assert_int_equal(d.calls, 0);
	kw_hm_pair_pump(&p, 50);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err, 0);
	assert_non_null(d.c);
	/* then the open connection, at once, with no address */
	assert_int_equal(kw_client_resolve(&r, b_peer, NULL, 0, on_resolved, &d, &c), 1);
	assert_ptr_equal(c, d.c);
	assert_int_equal(d.calls, 1);
	assert_int_equal(r.resolved + r.failed, 0);   /* no lookup ran */
	kw_hm_pair_fini(&p);
}

#ifdef CONFIG_KW_NET_KAD_SWARM
/* ---- the resolver over /ipfs/kad/1.0.0: a client (kad client mode) and two servers ----- */

struct kside {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_privkey key;
	char addr[256];
};

static struct kside g_ks[3];      /* 0: the client, 1: the bootstrap server, 2: a server */

static void kpump(int passes)
{
	for (int i = 0; i < passes; i++)
		for (int k = 0; k < 3; k++)
			kw_loop_run_once(&g_ks[k].t->node->loop, 0);
}

/* Pumps until *flag, moving virtual time on in 10 ms steps (at most ms). */
static void kwait(struct kw_test_net *net, const int *flag, uint64_t ms)
{
	for (uint64_t t = 0; !*flag && t < ms; t += 10) {
		kpump(20);
		if (!*flag) {
			kw_sim_advance(net->net, 10);
			kpump(4);
		}
	}
}

static void kside_make(struct kw_test_net *net, struct kside *s, int port, bool client)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_kad_cfg kc;
	char listen[64];

	kw_kad_cfg_default(&kc);
	s->t = kw_test_node_join(net, 48 * 1024);
	assert_non_null(s->t);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &s->key), 0);
	assert_int_equal(kw_swarm_create(s->t->node, &s->key, &lim, &s->sw), 0);
	assert_int_equal(kw_identify_init(s->sw, &s->id), 0);
	kc.self = kw_swarm_peer_id(s->sw);
	kc.client_mode = client;
	kc.key = kw_swarm_key(s->sw);
	kc.rate_per_peer = 1000;   /* a lookup's requests come faster than the Kconfig floor */
	kc.rate_burst = 1000;
	assert_int_equal(kw_kad_swarm_create(s->sw, s->id, &s->t->node->arena, &kc, &s->kad), 0);
	snprintf(listen, sizeof(listen), "/ip4/127.0.0.1/tcp/%d", port);
	assert_int_equal(kw_swarm_listen(s->sw, listen), 0);
	assert_int_equal(kw_swarm_listen_addr(s->sw, 0, s->addr, sizeof(s->addr)), 0);
}

static void kconnect(struct kw_test_net *net, int from, int to)
{
	struct dialed d = { 0 };

	assert_int_equal(kw_swarm_dial(g_ks[from].sw, g_ks[to].addr, on_resolved, &d), 0);
	kwait(net, &d.calls, 2000);
	assert_int_equal(d.err, 0);
	kpump(80);   /* identify both ways: kad admits the servers */
}
#endif

static void test_client_resolve_finds_a_server_over_kad(void **state)
{
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (!HM_CALL_POOLS_FIT)
		skip();  /* the call pools of this build do not fit the test nodes */
	struct kw_test_net *net = kw_test_net_new(64, 1 << 18);
	struct kw_client_resolver r;
	struct dialed d = { 0 };
	struct kw_conn *c = NULL;
	char peer2[KW_HM_REC_PEER_MAX];

	(void)state;
	assert_non_null(net);
	kside_make(net, &g_ks[0], 4001, true);
	kside_make(net, &g_ks[1], 4002, false);
	kside_make(net, &g_ks[2], 4003, false);
	kconnect(net, 0, 1);   /* the client knows the bootstrap server only */
	kconnect(net, 2, 1);   /* a server that joined: the bootstrap server knows it */
	assert_int_equal(kw_peer_id_to_text(kw_swarm_peer_id(g_ks[2].sw), peer2, sizeof(peer2)),
			 0);
	assert_null(kw_swarm_find_conn(g_ks[0].sw, kw_swarm_peer_id(g_ks[2].sw)));
	kw_client_resolver_init(&r, g_ks[0].sw, g_ks[0].kad);
	assert_int_equal(kw_client_resolve(&r, peer2, NULL, 0, on_resolved, &d, &c), 0);
	assert_int_equal(r.state, KW_CLIENT_RES_LOOKUP);
	assert_int_equal(d.calls, 0);   /* never from inside the call */
	kwait(net, &d.calls, 20000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err, 0);
	assert_ptr_equal(d.c, kw_swarm_find_conn(g_ks[0].sw, kw_swarm_peer_id(g_ks[2].sw)));
	assert_string_equal(r.addr[r.next - 1], g_ks[2].addr);
	assert_int_equal(r.resolved, 1);
	assert_int_equal(r.state, KW_CLIENT_RES_IDLE);
	/* a PeerID no kad peer knows: the callback says so, the log line says why */
	memset(&d, 0, sizeof(d));
	assert_int_equal(kw_client_resolve(&r, PEER_P, NULL, 0, on_resolved, &d, &c), 0);
	kwait(net, &d.calls, 60000);
	assert_int_equal(d.calls, 1);
	assert_true(d.err < 0);
	assert_null(d.c);
	assert_non_null(strstr(r.why, "PeerID not found over /ipfs/kad/1.0.0"));
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.state, KW_CLIENT_RES_IDLE);
	for (int k = 0; k < 3; k++) {
		kw_kad_swarm_destroy(g_ks[k].kad);
		kw_swarm_destroy(g_ks[k].sw);
	}
	kpump(4);
	for (int k = 0; k < 3; k++) {
		kw_test_assert_no_leaks(g_ks[k].t->node);
		kw_test_node_free(g_ks[k].t);
	}
	assert_int_equal(kw_sim_open_sockets(net->net), 0);
	kw_test_net_free(net);
#else
	(void)state;
	print_message("skip: no /ipfs/kad/1.0.0 in this build (CONFIG_KW_NET_KAD_SWARM)\n");
	skip();
#endif
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_route_takes_fewest_hops),
		cmocka_unit_test(test_client_route_prefers_throughput_then_peer_id),
		cmocka_unit_test(test_client_route_skips_offline_and_reports_the_gap),
		cmocka_unit_test(test_client_ban_backs_off_and_success_resets_it),
		cmocka_unit_test(test_client_newest_record_speaks_for_a_server),
		cmocka_unit_test(test_client_request_decodes_as_the_server_reads_it),
		cmocka_unit_test(test_client_tokens_file_names_the_bad_line),
		cmocka_unit_test(test_client_answer_must_be_hidden_states_of_the_shape_sent),
		cmocka_unit_test(test_client_step_carries_max_length_then_step_ids),
		cmocka_unit_test(test_client_moe_reads_declarations_and_picks_the_best),
		cmocka_unit_test(test_client_announce_says_what_is_served),
		cmocka_unit_test(test_client_kad_answer_gives_the_peers_own_addresses),
		cmocka_unit_test(test_client_resolve_uses_a_connection_then_an_address),
		cmocka_unit_test(test_client_resolve_finds_a_server_over_kad),
	};

	(void)argc;
	snprintf(dir, sizeof(dir), "%s/client-model-%d", dirname(argv[0]), (int)getpid());
	return cmocka_run_group_tests_name("app/client", tests, NULL, NULL);
}
