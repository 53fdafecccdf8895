/*
 * hivemind averaging's state download (app/avg.c) on two swarms (the net/hivemind test
 * fixture hm_pair.h): b serves `<prefix>::DecentralizedAverager.rpc_download_state`, a
 * downloads. Multi-piece tensors, metadata in the first message, the exact bytes of a
 * message against hivemind's encoding, a node that does not share, and a destination that
 * does not match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/hivemind/hm_pair.h"
#include "../../../app/avg.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/swarm.h>

#define PREFIX "mygroup"
#define CLS    "DecentralizedAverager"
#define NAME   PREFIX "::" CLS ".rpc_download_state"
#define BIG    40000   /* 160000 bytes: pieces of 65536, 65536, 28928 */

static const struct kw_hm_limits hm_limits = {
	.calls_in = 2, .calls_per_peer = 2, .calls_out = 2, .buf_bytes = 1024, .timeout_ms = 2000,
};

static const struct kw_hm_stream_limits sx_limits = {
	.streams_in = 2, .streams_per_peer = 2, .streams_out = 2, .buf_bytes = 73728,
	.prefetch = 5, .idle_ms = 5000,
};

/* msgpack {"group_key": "0b"} as hivemind's MSGPackSerializer writes the base state */
static const uint8_t meta[] = { 0x81, 0xa9, 'g', 'r', 'o', 'u', 'p', '_', 'k', 'e', 'y',
				0xa2, '0', 'b' };

struct fx {
	struct kw_hm_pair p;
	struct kw_app_avg *srv, *cli;
	bool sharing;
	float big[BIG], small[3];
	const float *src[2];
	uint64_t numel[2];
	/* download */
	float got_big[BIG], got_small[3];
	float *dst[2];
	uint8_t got_meta[64];
	int done;
	struct kw_app_avg_dl_result r;
	/* raw stream */
	struct kw_stream *raw;
	uint8_t raw_in[256];
	size_t raw_len;
	int raw_closed;
};

static struct fx *g;

static int get_state(struct kw_app_avg_state *st, void *arg)
{
	if (!g->sharing)
		return -KW_ENOENT;
	st->metadata = meta;
	st->metadata_len = sizeof(meta);
	st->n_tensors = 2;
	st->tensors = g->src;
	st->numel = g->numel;
	return 0;
}

static void pump(int n)
{
	kw_hm_pair_pump(&g->p, n);
}

static int setup(void **state)
{
	g = calloc(1, sizeof(*g));
	if (!g || kw_hm_pair_init(&g->p, 2, &hm_limits, 32 * 1024) < 0)
		return -1;
	/* a 72 KiB stream buffer (the Kconfig default) holds one 64 KiB piece; explicit here so
	 * the test does not depend on the configured default */
	if (kw_hm_stream_setup(g->p.a.hm, &sx_limits) < 0 ||
	    kw_hm_stream_setup(g->p.b.hm, &sx_limits) < 0)
		return -1;
	if (kw_app_avg_create(g->p.b.t->node, g->p.b.hm, PREFIX, CLS, get_state, NULL, &g->srv) < 0 ||
	    kw_app_avg_create(g->p.a.t->node, g->p.a.hm, PREFIX, CLS, NULL, NULL, &g->cli) < 0)
		return -1;
	for (int i = 0; i < BIG; i++)
		g->big[i] = (float)i * 0.25f - 1000.0f;
	g->small[0] = 1.0f;
	g->small[1] = -2.0f;
	g->small[2] = 0.5f;
	g->src[0] = g->big;
	g->src[1] = g->small;
	g->numel[0] = BIG;
	g->numel[1] = 3;
	g->dst[0] = g->got_big;
	g->dst[1] = g->got_small;
	g->sharing = true;
	return kw_hm_pair_connect(&g->p);
}

static int teardown(void **state)
{
	kw_hm_pair_fini(&g->p);
	free(g);
	g = NULL;
	return 0;
}

static void on_done(const struct kw_app_avg_dl_result *r, void *user)
{
	g->done++;
	g->r = *r;
	g->r.text = NULL;
}

static int download(const uint64_t *numel)
{
	struct kw_app_avg_dest d = {
		.n_tensors = 2, .tensors = g->dst, .numel = numel ? numel : g->numel,
		.metadata = g->got_meta, .metadata_cap = sizeof(g->got_meta),
	};

	return kw_app_avg_download(g->cli, g->p.a.conn, &d, 0, on_done, NULL);
}

static void count_used(const struct kw_pool *p, void *arg)
{
	if (!strncmp(p->name, "hm_stream", 9))
		*(size_t *)arg += p->used;
}

static size_t streams_in_use(struct kw_hm_side *s)
{
	size_t n = 0;

	kw_node_pools_foreach(s->t->node, count_used, &n);
	return n;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_avg_state_handle_name_is_hivemind_servicer_name(void **state)
{
	char name[128];

	assert_int_equal(kw_app_avg_handle_name(PREFIX, CLS, name, sizeof(name)),
			 (int)strlen(NAME));
	assert_string_equal(name, "mygroup::DecentralizedAverager.rpc_download_state");
	assert_int_equal(kw_app_avg_handle_name("my.group", CLS, name, sizeof(name)), -KW_EINVAL);
	assert_int_equal(kw_app_avg_handle_name(PREFIX, CLS, name, 10), -KW_ENOSPC);
}

static void test_avg_state_download_copies_every_tensor_and_the_metadata(void **state)
{
	struct kw_app_avg_stats st;

	if (CONFIG_KW_NET_HIVEMIND_STREAM_BUF_BYTES < 73728 || CONFIG_KW_NET_MSGPACK_MAX_BYTES < 65536)
		skip();  /* a 64 KiB DownloadData piece does not fit this build's stream buffer */

	assert_int_equal(download(NULL), 0);
	assert_int_equal(g->done, 0);
	pump(200);
	assert_int_equal(g->done, 1);
	assert_int_equal(g->r.err, 0);
	assert_false(g->r.remote_error);
	assert_int_equal(g->r.tensors, 2);
	assert_int_equal(g->r.messages, 4);  /* 3 pieces of the large tensor, 1 of the small */
	assert_memory_equal(g->got_big, g->big, sizeof(g->big));
	assert_memory_equal(g->got_small, g->small, sizeof(g->small));
	assert_int_equal(g->r.metadata_len, sizeof(meta));
	assert_memory_equal(g->got_meta, meta, sizeof(meta));
	kw_app_avg_get_stats(g->srv, &st);
	assert_int_equal(st.served, 1);
	assert_int_equal(st.messages_out, 4);
	pump(20);
	assert_int_equal(streams_in_use(&g->p.a), 0);
	assert_int_equal(streams_in_use(&g->p.b), 0);
}

static void test_avg_state_node_not_sharing_sends_an_empty_stream(void **state)
{
	g->sharing = false;
	assert_int_equal(download(NULL), 0);
	pump(100);
	assert_int_equal(g->done, 1);
	assert_int_equal(g->r.err, -KW_ENOENT);
	assert_int_equal(g->r.messages, 0);
}

static void test_avg_state_destination_of_another_size_fails_erange(void **state)
{
	static const uint64_t wrong[2] = { BIG - 1, 3 };

	if (CONFIG_KW_NET_HIVEMIND_STREAM_BUF_BYTES < 73728 || CONFIG_KW_NET_MSGPACK_MAX_BYTES < 65536)
		skip();  /* a 64 KiB DownloadData piece does not fit this build's stream buffer */

	assert_int_equal(download(wrong), 0);
	pump(200);
	assert_int_equal(g->done, 1);
	assert_int_equal(g->r.err, -KW_ERANGE);
	pump(40);  /* our cancel reset the stream: the server's cursor and both states are free */
	assert_int_equal(streams_in_use(&g->p.a), 0);
	assert_int_equal(streams_in_use(&g->p.b), 0);
}

/* ---- the bytes on the wire, read by a raw caller -------------------------------------------- */

static size_t raw_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	size_t take = KW_MIN(n, sizeof(g->raw_in) - g->raw_len);

	memcpy(g->raw_in + g->raw_len, d, take);
	g->raw_len += take;
	return n;
}
static void raw_close(struct kw_stream *s, int r)
{
	g->raw_closed++;
	g->raw = NULL;
}
static void raw_eof(struct kw_stream *s)
{
	kw_stream_close_write(s);
}
static const struct kw_stream_handler raw_h = { .on_data = raw_data, .on_eof = raw_eof,
						.on_close = raw_close };
static void raw_open(struct kw_stream *s, int err, void *user)
{
	g->raw = err == 0 ? s : NULL;
}

static void test_avg_state_message_bytes_match_hivemind(void **state)
{
	/* DownloadRequest{} then END_OF_STREAM (hivemind spec vectors: both frames) */
	static const uint8_t req[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 };
	/* Tensor [1,-2,0.5] float32 as split_for_streaming's only piece: buffer, size [3],
	 * dtype, chunks = 1 (compression NONE and requires_grad false omitted) */
	static const uint8_t tensor[] = {
		0x0a, 0x0c, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f,
		0x12, 0x01, 0x03, 0x22, 0x07, 'f', 'l', 'o', 'a', 't', '3', '2', 0x30, 0x01,
	};
	uint8_t want[64];
	size_t n = 0;

	g->numel[0] = 3;  /* serve only the small tensor, twice */
	g->src[0] = g->small;
	want[n++] = 0x0a;  /* DownloadData.metadata */
	want[n++] = sizeof(meta);
	memcpy(want + n, meta, sizeof(meta));
	n += sizeof(meta);
	want[n++] = 0x12;  /* DownloadData.tensor_part */
	want[n++] = sizeof(tensor);
	memcpy(want + n, tensor, sizeof(tensor));
	n += sizeof(tensor);

	assert_int_equal(kw_swarm_open_stream(g->p.a.sw, g->p.a.conn, NAME, &raw_h, NULL, raw_open),
			 0);
	pump(30);
	assert_non_null(g->raw);
	assert_int_equal(kw_stream_write(g->raw, req, sizeof(req)), (long)sizeof(req));
	pump(60);
	assert_int_equal(g->raw_closed, 1);  /* the server closed after the state, we after EOF */
	/* frame 1: metadata + tensor; frame 2: the same tensor without metadata */
	assert_int_equal(g->raw_len, 9 + n + 9 + 2 + sizeof(tensor));
	assert_int_equal(g->raw_in[0], 0x00);
	assert_int_equal(g->raw_in[8], n);
	assert_memory_equal(g->raw_in + 9, want, n);
	assert_int_equal(g->raw_in[9 + n], 0x00);
	assert_int_equal(g->raw_in[9 + n + 8], 2 + sizeof(tensor));
	assert_int_equal(g->raw_in[9 + n + 9], 0x12);
	assert_memory_equal(g->raw_in + 9 + n + 11, tensor, sizeof(tensor));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_avg_state_handle_name_is_hivemind_servicer_name),
		T(test_avg_state_download_copies_every_tensor_and_the_metadata),
		T(test_avg_state_node_not_sharing_sends_an_empty_stream),
		T(test_avg_state_destination_of_another_size_fails_erange),
		T(test_avg_state_message_bytes_match_hivemind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
