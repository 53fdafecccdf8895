/*
 * The announcer (net/hivemind/records.c, kw_hm_announce_*): one Hivemind DHT node on the
 * simulated network publishes its Petals block records, "_petals.models" and expert
 * declarations into its own storage (a node with no peer is its own nearest replica), then
 * the test reads them back from that storage as a DHT get would return them. Time is
 * virtual: the loop's clock is the simulated network's, the DHT clock a variable moved with it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#define PERIOD_S 10u

static struct {
	struct kw_test_net *net;
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_privkey key;
	char peer[KW_HM_REC_PEER_MAX];
} g;
static struct kw_hm_announcer ann;
static struct kw_hm_announce_cfg cfg;
static double clock_now = 1700000000.0;
static int done_calls;

static const struct kw_hm_limits limits = {
	.calls_in = 4, .calls_per_peer = 4, .calls_out = 4, .buf_bytes = 8192, .timeout_ms = 2000,
};

static double test_clock(void *arg)
{
	(void)arg;
	return clock_now;
}

static void pump(void)
{
	for (int i = 0; i < 20; i++)
		kw_loop_run_once(&g.t->node->loop, 0);
}

/* Moves both clocks forward by ms and runs what became due. */
static void advance(uint64_t ms)
{
	clock_now += (double)ms / 1000.0;
	kw_sim_advance(g.net->net, ms);
	pump();
}

static int setup(void **state)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_hm_dht_config dc;
	int ret;

	(void)state;
	memset(&g, 0, sizeof(g));
	g.net = kw_test_net_new(16, 1 << 14);
	g.t = g.net ? kw_test_node_join(g.net, 32 * 1024) : NULL;
	if (!g.t)
		return -1;
	ret = kw_key_generate(KW_KEY_ED25519, 0, &g.key);
	if (ret == 0)
		ret = kw_swarm_create(g.t->node, &g.key, &lim, &g.sw);
	if (ret == 0)
		ret = kw_hm_create(g.sw, &limits, &g.hm);
	if (ret == 0)
		ret = kw_hm_dht_config_default(&dc);
	if (ret < 0)
		return -1;
	dc.store_cells = dc.cache_cells = 32;
	dc.cell_bytes = 512;
	dc.dict_max = 8;
	dc.buf_bytes = limits.buf_bytes;
	dc.client_ops = 2;                 /* fewer than the announcer's records: it must queue */
	dc.client_rpcs = 4;
	dc.candidates = 8;
	dc.merge_cells = 16;
	dc.addr_book = 4;
	dc.rt.bucket_size = 20;
	dc.rt.max_nodes = 16;
	dc.rt.max_buckets = 8;
	dc.clock = test_clock;
	if (kw_hm_dht_create(g.sw, g.hm, &dc, &g.d) < 0 ||
	    kw_peer_id_to_text(kw_swarm_peer_id(g.sw), g.peer, sizeof(g.peer)) < 0)
		return -1;
	memset(&cfg, 0, sizeof(cfg));
	strcpy(cfg.prefix, "tiny-model");
	cfg.start_block = 3;
	cfg.end_block = 5;
	cfg.info.throughput = 12.5;
	cfg.info.has = KW_HM_SI_PUBLIC_NAME;
	strcpy(cfg.info.public_name, "edge");
	cfg.model.num_blocks = 8;
	cfg.update_period_s = PERIOD_S;
	done_calls = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kw_hm_announce_stop(&ann);
	pump();
	assert_int_equal(kw_hm_dht_ops_busy(g.d), 0);
	kw_swarm_destroy(g.sw);
	pump();
	kw_test_assert_no_leaks(g.t->node);
	kw_test_node_free(g.t);
	kw_test_net_free(g.net);
	return 0;
}

/* What our storage holds under key text: the entry with our PeerID as subkey. */
struct found {
	int n;
	double exp;
	struct kw_hm_server_info si;
	int decode_err;
	uint8_t val[512];
	size_t val_len;
};

static int take(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		double exp, void *arg)
{
	struct found *f = arg;

	(void)sub;
	(void)sub_len;
	f->n++;
	f->exp = exp;
	memcpy(f->val, val, val_len < sizeof(f->val) ? val_len : sizeof(f->val));
	f->val_len = val_len;
	f->decode_err = kw_hm_server_info_decode(val, val_len, &f->si, NULL);
	return 0;
}

static int lookup(const char *key, struct found *f)
{
	static uint8_t buf[4096];
	struct kw_hm_dhtid id;
	long n;

	memset(f, 0, sizeof(*f));
	assert_int_equal(kw_hm_dhtid_of_str(key, strlen(key), &id), 0);
	n = kw_hm_store_pack_dict(kw_hm_dht_storage(g.d, false), &id, clock_now, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return kw_hm_dict_walk(buf, (size_t)n, take, f, NULL);
}

static void on_done(void *arg)
{
	(void)arg;
	done_calls++;
}

static void test_hm_announce_publishes_every_block_of_the_span_online(void **state)
{
	struct found f;
	struct kw_hm_model_info mi;

	(void)state;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	assert_int_equal(kw_hm_announce_count(&ann, KW_HM_STATE_ONLINE), 3);
	pump();
	assert_false(kw_hm_announce_busy(&ann));
	assert_int_equal(ann.stats.stores_ok, 3);
	for (int b = 3; b < 5; b++) {
		char key[32];

		snprintf(key, sizeof(key), "tiny-model.%d", b);
		assert_int_equal(lookup(key, &f), 0);
		assert_int_equal(f.n, 1);
		assert_int_equal(f.decode_err, 0);
		assert_int_equal(f.si.state, KW_HM_STATE_ONLINE);
		assert_true(f.si.throughput == 12.5);
		assert_int_equal(f.si.start_block, 3);
		assert_int_equal(f.si.end_block, 5);
		assert_string_equal(f.si.public_name, "edge");
		/* Petals: expiration = max(2 * update_period, 3) */
		assert_true(f.exp == clock_now + 2 * PERIOD_S);
	}
	assert_int_equal(lookup("tiny-model.2", &f), -KW_ENOENT);
	assert_int_equal(lookup("tiny-model.5", &f), -KW_ENOENT);
	assert_int_equal(lookup(KW_HM_MODELS_KEY, &f), 0);
	assert_int_equal(f.n, 1);
	assert_int_equal(kw_hm_model_info_decode(f.val, f.val_len, &mi, NULL), 0);
	assert_int_equal(mi.num_blocks, 8);
}

static void test_hm_announce_refreshes_every_update_period(void **state)
{
	struct found f;
	double first;

	(void)state;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	pump();
	assert_int_equal(lookup("tiny-model.4", &f), 0);
	first = f.exp;
	advance(PERIOD_S * 1000 - 100);
	assert_int_equal(ann.stats.rounds, 1);
	advance(100);
	assert_int_equal(ann.stats.rounds, 2);
	assert_int_equal(lookup("tiny-model.4", &f), 0);
	assert_true(f.exp == first + PERIOD_S);
	/* refreshed before it expires: still there one period before the first expiration */
	advance(PERIOD_S * 1000 + 50);
	assert_int_equal(ann.stats.rounds, 3);
	assert_int_equal(lookup("tiny-model.4", &f), 0);
	assert_int_equal(f.n, 1);
}

static void test_hm_announce_offline_replaces_online_at_once_and_stops(void **state)
{
	struct found f;
	double online_exp;
	uint64_t rounds;

	(void)state;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	pump();
	assert_int_equal(lookup("tiny-model.3", &f), 0);
	online_exp = f.exp;
	advance(1000);
	assert_int_equal(kw_hm_announce_set_state(&ann, KW_HM_STATE_OFFLINE, on_done, NULL), 0);
	assert_int_equal(done_calls, 0);       /* never from inside the call */
	assert_int_equal(kw_hm_announce_count(&ann, KW_HM_STATE_OFFLINE), 2);
	pump();
	assert_int_equal(done_calls, 1);
	assert_int_equal(lookup("tiny-model.3", &f), 0);
	assert_int_equal(f.si.state, KW_HM_STATE_OFFLINE);
	assert_true(f.exp > online_exp);       /* newer: it replaced the ONLINE entry */
	assert_int_equal(f.si.n_pings, 0);
	rounds = ann.stats.rounds;
	advance(3 * PERIOD_S * 1000);
	assert_int_equal(ann.stats.rounds, rounds);   /* no refresh after OFFLINE */
	assert_int_equal(done_calls, 1);
	/* and the OFFLINE record itself expires */
	assert_int_equal(lookup("tiny-model.3", &f) == 0 ? f.n : 0, 0);
}

static void test_hm_announce_resume_publishes_online_again(void **state)
{
	struct found f;

	(void)state;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	pump();
	advance(500);
	assert_int_equal(kw_hm_announce_set_state(&ann, KW_HM_STATE_OFFLINE, NULL, NULL), 0);
	pump();
	advance(500);
	assert_int_equal(kw_hm_announce_set_state(&ann, KW_HM_STATE_ONLINE, NULL, NULL), 0);
	pump();
	assert_int_equal(lookup("tiny-model.4", &f), 0);
	assert_int_equal(f.si.state, KW_HM_STATE_ONLINE);
	advance(PERIOD_S * 1000);
	assert_int_equal(ann.stats.rounds, 4);       /* refreshing again */
}

static void test_hm_announce_superseded_round_tells_its_waiter(void **state)
{
	(void)state;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	pump();
	assert_int_equal(kw_hm_announce_set_state(&ann, KW_HM_STATE_OFFLINE, on_done, NULL), 0);
	assert_int_equal(kw_hm_announce_set_state(&ann, KW_HM_STATE_ONLINE, NULL, NULL), 0);
	assert_int_equal(done_calls, 1);
	pump();
	assert_int_equal(done_calls, 1);
}

static void test_hm_announce_declares_experts_like_hivemind(void **state)
{
	static uint8_t buf[1024];
	struct kw_hm_dhtid id;
	struct kw_hm_store_found fd;
	struct found f;

	(void)state;
	cfg.prefix[0] = '\0';                  /* an MoE server: no Petals blocks */
	strcpy(cfg.experts[0], "ffn.0.1");
	strcpy(cfg.experts[1], "ffn.0.2");
	cfg.n_experts = 2;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), 0);
	assert_int_equal(kw_hm_announce_count(&ann, KW_HM_STATE_ONLINE), 4);
	pump();
	assert_int_equal(ann.stats.stores_ok, 4);
	/* "ffn.0.1" = the peer id, a plain value */
	assert_int_equal(kw_hm_dhtid_of_str("ffn.0.1", 7, &id), 0);
	assert_int_equal(kw_hm_store_get(kw_hm_dht_storage(g.d, false), &id, clock_now, &fd), 0);
	assert_int_equal(fd.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(kw_hm_str_subkey(g.peer, buf, sizeof(buf)), (long)fd.len);
	assert_memory_equal(fd.value, buf, fd.len);
	/* "ffn.0." holds both coordinates */
	assert_int_equal(lookup("ffn.0.", &f), 0);
	assert_int_equal(f.n, 2);
	assert_int_equal(lookup(KW_HM_MODELS_KEY, &f), -KW_ENOENT);
}

static void test_hm_announce_refuses_a_bad_configuration(void **state)
{
	(void)state;
	strcpy(cfg.prefix, "bad.prefix");
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), -KW_EINVAL);
	strcpy(cfg.prefix, "ok");
	cfg.start_block = cfg.end_block = 4;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), -KW_EINVAL);
	cfg.end_block = 5;
	strcpy(cfg.experts[0], "ffn.01");
	cfg.n_experts = 1;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), -KW_EINVAL);
	cfg.n_experts = 0;
	cfg.info.throughput = -1;
	assert_int_equal(kw_hm_announce_start(&ann, g.d, &g.t->node->loop, g.peer, &cfg,
					      KW_HM_STATE_ONLINE), -KW_EINVAL);
	assert_int_equal(kw_hm_dht_ops_busy(g.d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hm_announce_publishes_every_block_of_the_span_online,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_refreshes_every_update_period,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_offline_replaces_online_at_once_and_stops,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_resume_publishes_online_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_superseded_round_tells_its_waiter,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_declares_experts_like_hivemind,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_announce_refuses_a_bad_configuration,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
