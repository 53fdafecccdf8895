/*
 * The node's announcer after its start (app/hivemind.c): a change of what it announces (the
 * served span, a new listen address) goes out as a new round within a second instead of at
 * the next period, a burst of changes is one round, rounds are at most one per 2 s, and a
 * stop's OFFLINE round goes out once and is not overwritten by a later push. One Hivemind
 * DHT node on the simulated network is its own nearest replica, so what it announces lands in
 * its own storage, read back here. Time is virtual (the loop's clock and the DHT clock move
 * together).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/app.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "../../../app/hivemind.h"

/* At the maximum Kconfig ranges this build's Hivemind call pools (in + out calls, two buffers
 * of CALL_BUF_BYTES each) take gigabytes, more than this test's arenas: the tests skip there
 * and say so. */
#define HM_CALL_POOLS_BYTES ((size_t)(CONFIG_KW_NET_HIVEMIND_CALLS_IN +                     \
				      CONFIG_KW_NET_HIVEMIND_CALLS_OUT) * 2u *                  \
			     CONFIG_KW_NET_HIVEMIND_CALL_BUF_BYTES)
#define HM_CALL_POOLS_FIT (HM_CALL_POOLS_BYTES <= ((size_t)8 << 20))

static struct kw_test_net *net;
static struct kw_test_node *t;
static struct kw_swarm *sw;
static struct kw_privkey key;
static struct kw_app app;
static double clock_now = 1700000000.0;
static int stopped;

static double test_clock(void *arg)
{
	(void)arg;
	return clock_now;
}

static void pump(void)
{
	for (int i = 0; i < 20; i++)
		kw_loop_run_once(&t->node->loop, 0);
}

static void advance(uint64_t ms)
{
	clock_now += (double)ms / 1000.0;
	kw_sim_advance(net->net, ms);
	pump();
}

static int setup(void **state)
{
	struct kw_swarm_limits lim = kw_test_swarm_limits();
	struct kw_hm_dht_config dc;

	(void)state;
	stopped = 0;
	net = kw_test_net_new(16, 1 << 14);
	t = net ? kw_test_node_join(net, 32 * 1024) : NULL;
	if (!t || kw_key_generate(KW_KEY_ED25519, 0, &key) < 0 ||
	    kw_swarm_create(t->node, &key, &lim, &sw) < 0 ||
	    kw_swarm_listen(sw, "/ip4/127.0.0.1/tcp/4001") < 0 || kw_hm_dht_config_default(&dc) < 0)
		return -1;
	dc.store_cells = dc.cache_cells = 32;
	dc.cell_bytes = 512;
	dc.dict_max = 8;
	dc.client_ops = 4;
	dc.candidates = 8;
	dc.merge_cells = 16;
	dc.addr_book = 4;
	dc.rt.max_nodes = 16;
	dc.rt.max_buckets = 8;
	dc.clock = test_clock;
	memset(&app, 0, sizeof(app));
	kw_config_defaults(&app.cfg);
	app.cfg.hivemind = true;
	strcpy(app.cfg.hivemind_prefix, "tiny-model");
	app.cfg.hivemind_block_start = 3;
	app.cfg.hivemind_block_end = 5;
	app.cfg.hivemind_update_period_s = 10;
	app.cfg.hivemind_throughput = 1.5;
	app.sw = sw;
	kw_app_attach(t->node, &app);
	if (kw_app_hm_start_cfg(t->node, sw, NULL, NULL, &dc, NULL, 0, &app.hm, &app.hm_dht,
				&app.hm_app) < 0 || kw_app_hm_announce_init(t->node) < 0)
		return -1;
	pump();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kw_app_hm_announce_shutdown(t->node);
	kw_app_hm_stop(app.hm_app);
	pump();
	kw_swarm_destroy(sw);
	pump();
	kw_test_assert_no_leaks(t->node);
	kw_test_node_free(t);
	kw_test_net_free(net);
	return 0;
}

struct rec {
	int n;
	struct kw_hm_server_info si;
};

static int take(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		double exp, void *arg)
{
	struct rec *r = arg;

	(void)sub;
	(void)sub_len;
	(void)exp;
	if (kw_hm_server_info_decode(val, val_len, &r->si, NULL) == 0)
		r->n++;
	return 0;
}

/* Our ServerInfo under block b of tiny-model. Return: entries found (0: no record). */
static int block_rec(int b, struct rec *r)
{
	static uint8_t buf[4096];
	struct kw_hm_dhtid id;
	char k[32];
	long n;

	memset(r, 0, sizeof(*r));
	snprintf(k, sizeof(k), "tiny-model.%d", b);
	assert_int_equal(kw_hm_dhtid_of_str(k, strlen(k), &id), 0);
	n = kw_hm_store_pack_dict(kw_hm_dht_storage(app.hm_dht, false), &id, clock_now, buf,
				  sizeof(buf));
	if (n < 0)
		return 0;
	assert_int_equal(kw_hm_dict_walk(buf, (size_t)n, take, r, NULL), 0);
	return r->n;
}

static const struct kw_app_hm_push_stats *stats(void)
{
	return kw_app_hm_push_stats(t->node);
}

static void test_hm_push_span_change_goes_out_within_a_second(void **state)
{
	struct rec r;

	(void)state;
	assert_int_equal(block_rec(4, &r), 1);
	assert_int_equal(r.si.end_block, 5);
	assert_int_equal(block_rec(5, &r), 0);
	assert_int_equal(kw_app_hm_announce_span(t->node, 3, 6), 0);
	advance(300);                     /* still gathering changes */
	assert_int_equal(block_rec(5, &r), 0);
	assert_int_equal(stats()->pushes, 0);
	advance(300);                     /* 0.6 s: pushed, 9 s before the period's refresh */
	assert_int_equal(stats()->pushes, 1);
	assert_int_equal(block_rec(5, &r), 1);
	assert_int_equal(r.si.state, KW_HM_STATE_ONLINE);
	assert_int_equal(r.si.start_block, 3);
	assert_int_equal(r.si.end_block, 6);
	assert_int_equal(block_rec(3, &r), 1);
	assert_int_equal(r.si.end_block, 6);
	/* the same span again is no change */
	assert_int_equal(kw_app_hm_announce_span(t->node, 3, 6), 0);
	assert_int_equal(stats()->changes, 1);
	assert_int_equal(kw_app_hm_announce_span(t->node, 6, 6), -KW_EINVAL);
}

static void test_hm_push_coalesces_a_burst_and_keeps_2s_between_rounds(void **state)
{
	struct rec r;

	(void)state;
	assert_int_equal(kw_app_hm_announce_span(t->node, 3, 6), 0);
	kw_app_hm_announce_changed(t->node);
	advance(100);
	kw_app_hm_announce_changed(t->node);
	advance(500);                     /* t = 0.6 s */
	assert_int_equal(stats()->changes, 3);
	assert_int_equal(stats()->pushes, 1);
	assert_int_equal(kw_app_hm_announce_span(t->node, 3, 7), 0);   /* t = 0.6 s */
	advance(1300);                    /* t = 1.9 s: under 2 s since the push at 0.5 s */
	assert_int_equal(stats()->pushes, 1);
	assert_int_equal(block_rec(6, &r), 0);
	advance(700);                     /* t = 2.6 s */
	assert_int_equal(stats()->pushes, 2);
	assert_int_equal(block_rec(6, &r), 1);
	assert_int_equal(r.si.end_block, 7);
}

static void test_hm_push_follows_a_new_listen_address(void **state)
{
	(void)state;
	assert_int_equal(stats()->changes, 0);
	assert_int_equal(kw_swarm_listen(sw, "/ip4/127.0.0.1/tcp/4002"), 0);
	assert_int_equal(stats()->changes, 1);
	assert_int_equal(stats()->pushes, 0);   /* not from inside kw_swarm_listen */
	advance(600);
	assert_int_equal(stats()->pushes, 1);
}

static void on_stopped(struct kw_node *n)
{
	(void)n;
	stopped++;
}

static void test_hm_stop_offline_goes_out_once_and_no_push_follows(void **state)
{
	struct rec r;

	(void)state;
	advance(1000);   /* the OFFLINE record must expire later than the ONLINE one to replace it */
	assert_int_equal(kw_app_hm_before_stop(t->node, on_stopped), 0);
	pump();
	assert_int_equal(stopped, 1);
	assert_int_equal(block_rec(3, &r), 1);
	assert_int_equal(r.si.state, KW_HM_STATE_OFFLINE);
	/* the loop-end path after a signal's stop: nothing more to send */
	assert_int_equal(kw_app_hm_before_stop(t->node, on_stopped), -KW_ENOENT);
	/* a change while stopping is kept from the DHT: the records stay OFFLINE */
	assert_int_equal(kw_app_hm_announce_span(t->node, 3, 6), 0);
	advance(3000);
	assert_int_equal(stats()->pushes, 0);
	assert_int_equal(stats()->skipped, 1);
	assert_int_equal(block_rec(3, &r), 1);
	assert_int_equal(r.si.state, KW_HM_STATE_OFFLINE);
	assert_int_equal(block_rec(5, &r), 0);
	assert_int_equal(stopped, 1);
}

static void test_hm_push_skipped_in_this_build(void **state)
{
	(void)state;
	skip();  /* HM_CALL_POOLS_FIT: the call pools of this build do not fit the test node */
}

int main(void)
{
	const struct CMUnitTest none[] = { cmocka_unit_test(test_hm_push_skipped_in_this_build) };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hm_push_span_change_goes_out_within_a_second,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_push_coalesces_a_burst_and_keeps_2s_between_rounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hm_push_follows_a_new_listen_address, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_hm_stop_offline_goes_out_once_and_no_push_follows, setup, teardown),
	};

	if (!HM_CALL_POOLS_FIT) {
		printf("# skipped: the Hivemind call pools of this build (%zu bytes) do not fit the "
		       "test node's arena\n", HM_CALL_POOLS_BYTES);
		return cmocka_run_group_tests(none, NULL, NULL);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
