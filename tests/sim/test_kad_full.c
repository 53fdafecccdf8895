/*
 * The full-stack Kademlia simulation (tests/sim/kad_full.c, doc/sim.md "Full-stack run") at
 * a small N: 30 complete nodes (swarm with TCP over simulated sockets, Noise, yamux,
 * identify, kad in server mode) bootstrap through each other and then find each other; the
 * same seed gives the same trace, another seed another one.
 */
#include <string.h>

#include "harness.h"

#include <kw/log.h>

#include "kad_full.h"

static void small_cfg(struct kw_kad_full_cfg *c, uint64_t seed)
{
	kw_kad_full_cfg_default(c);
	c->nodes = 30;
	c->lookups = 60;
	c->seed = seed;
	c->settle_ms = 5000;
	c->phase_ms = 6000;
	c->socks_per_node = 80;
	c->ring_bytes = 16384;
}

static struct kw_kad_full_report g_first;

static void test_kad_full_small_network_finds_its_peers(void **state)
{
	struct kw_kad_full_cfg c;

	small_cfg(&c, 7);
	assert_int_equal(kw_kad_full_run(&c, &g_first), 0);
	assert_int_equal(g_first.nodes_started, 30);
	assert_int_equal(g_first.lookups_started, 60);
	assert_int_equal(g_first.lookups_refused, 0);
	/* every node is reachable and the network is tiny: every lookup must find its peer */
	assert_int_equal(g_first.lookups_ok, 60);
	/* the traffic went through real connections: each node dialed and was dialed */
	assert_true(g_first.conns_dialed >= 30);
	assert_true(g_first.conns_accepted >= 30);
	assert_true(g_first.table_mean >= 10.0);
	/* a lookup over 20-200 ms links takes virtual time, not zero */
	assert_true(g_first.virtual_ms > 30 * 20 + 5000);
}

static void test_kad_full_same_seed_gives_same_trace(void **state)
{
	struct kw_kad_full_cfg c;
	struct kw_kad_full_report r;

	small_cfg(&c, 7);
	assert_int_equal(kw_kad_full_run(&c, &r), 0);
	assert_int_equal(r.trace_hash, g_first.trace_hash);
	assert_int_equal(r.node_passes, g_first.node_passes);
	assert_int_equal(r.kad_requests, g_first.kad_requests);
	assert_int_equal(r.virtual_ms, g_first.virtual_ms);
}

static void test_kad_full_other_seed_gives_other_trace(void **state)
{
	struct kw_kad_full_cfg c;
	struct kw_kad_full_report r;

	small_cfg(&c, 8);
	assert_int_equal(kw_kad_full_run(&c, &r), 0);
	assert_int_equal(r.lookups_ok, 60);
	assert_true(r.trace_hash != g_first.trace_hash);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kad_full_small_network_finds_its_peers),
		cmocka_unit_test(test_kad_full_same_seed_gives_same_trace),
		cmocka_unit_test(test_kad_full_other_seed_gives_other_trace),
	};

	kw_log_set_level(KW_LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
