/*
 * The Kademlia simulation at a size that runs in seconds (tests/sim/kad_sim.c, doc/sim.md):
 * the real net/kad core of a few hundred nodes over the simulated message transport. Checks
 * that lookups find their peer, that a run is a pure function of its seed, and that loss,
 * churn and partitions are survived, that adversaries cost lookups, and that a record put
 * by one node is found by another. `make sim` runs the same engine at 10,000 nodes.
 */
#include "harness.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/kad_msg.h>

#include "sim/kad_sim.h"

static void small_cfg(struct kw_kad_sim_cfg *c, unsigned nodes, unsigned lookups)
{
	kw_kad_sim_cfg_default(c);
	c->nodes = nodes;
	c->lookups = lookups;
	c->seed = 42;
	c->join_interval_ms = 50;
	c->settle_ms = 10000;
	c->lookup_phase_ms = 30000;
}

/*
 * The figures asserted here hold for routing parameters near the Kconfig defaults. The range
 * test (tests/build/test_kconfig_ranges.sh) also builds every option at its minimum (k = 4,
 * one peer per message, 16 table entries, one request per second per peer) and maximum (tens
 * of MiB per node): such builds run the determinism tests only, with as many nodes as fit in
 * 256 MiB, and skip the others with the reason.
 */
#define SIM_TEST_MEM (256u << 20)

static size_t node_bytes(void)
{
	struct kw_kad_sim_cfg c;

	kw_kad_sim_cfg_default(&c);
	return kw_kad_sim_node_bytes(&c);
}

static bool near_defaults(void)
{
	return CONFIG_KW_NET_KAD_K >= 10 &&
	       CONFIG_KW_NET_KAD_MAX_PEERS_PER_MESSAGE >= CONFIG_KW_NET_KAD_K &&
	       CONFIG_KW_NET_KAD_TABLE_ENTRIES >= 256 && CONFIG_KW_NET_KAD_MAX_LOOKUPS >= 4 &&
	       CONFIG_KW_NET_KAD_RATE_PER_PEER >= 10 && CONFIG_KW_NET_KAD_RATE_BURST >= 20 &&
	       CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES >= 8192 && node_bytes() * 200 <= SIM_TEST_MEM;
}

#define NEED_DEFAULTS()                                                                    \
	do {                                                                               \
		if (!near_defaults()) {                                                    \
			printf("  skipped: routing Kconfig far from the defaults or %zu B/node\n", \
			       node_bytes());                                              \
			skip();                                                            \
		}                                                                          \
	} while (0)

static unsigned fit(unsigned nodes)
{
	size_t most = SIM_TEST_MEM / (node_bytes() + 1);

	return nodes < most ? nodes : (most > 4 ? (unsigned)most : 4);
}

static void print(const char *what, const struct kw_kad_sim_report *r)
{
	printf("  %s: %u/%u ok (%.2f %%, %u excluded), rounds median %u p99 %u, msgs median %u p99 %u, "
	       "rt %.1f, %.2f s wall, hash %016llx\n",
	       what, r->lookups_ok, r->lookups_ok + r->lookups_failed, r->success_pct,
	       r->lookups_excluded, r->rounds_median, r->rounds_p99, r->msgs_median, r->msgs_p99,
	       r->rt_size_mean, r->wall_s, (unsigned long long)r->trace_hash);
}

static void test_kad_sim_200_nodes_find_peers(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report r;

	NEED_DEFAULTS();

	small_cfg(&c, 200, 400);
	assert_int_equal(kw_kad_sim_run(&c, &r), 0);
	print("200 nodes", &r);
	assert_int_equal(r.lookups_started, 400);
	assert_int_equal(r.lookups_ok + r.lookups_failed + r.lookups_excluded, 400);
	assert_true(r.success_pct >= 99.0);
	assert_true(r.rounds_median >= 1 && r.rounds_median <= 4);
	assert_true(r.msgs_median > 0);
	assert_true(r.rt_size_mean > 20.0);   /* bootstrap filled the tables beyond one bucket */
	assert_int_equal(r.pool_exhausted, 0);
}

static void test_kad_sim_same_seed_same_trace(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report a, b;

	small_cfg(&c, fit(60), 60);
	c.loss = 0.02;
	c.churn = 0.1;
	assert_int_equal(kw_kad_sim_run(&c, &a), 0);
	assert_int_equal(kw_kad_sim_run(&c, &b), 0);
	print("run 1", &a);
	print("run 2", &b);
	assert_true(a.events > 100);
	if (near_defaults())
		assert_true(a.lost > 0 && a.to_dead > 0);   /* the random paths ran */
	assert_int_equal(a.trace_hash, b.trace_hash);
	assert_int_equal(a.events, b.events);
	assert_int_equal(a.messages, b.messages);
	assert_int_equal(a.lookups_ok, b.lookups_ok);
	assert_int_equal(a.rounds_median, b.rounds_median);
	assert_int_equal(a.msgs_p99, b.msgs_p99);
	assert_int_equal(a.virtual_ms, b.virtual_ms);
}

static void test_kad_sim_other_seed_other_trace(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report a, b;

	small_cfg(&c, fit(60), 60);
	assert_int_equal(kw_kad_sim_run(&c, &a), 0);
	c.seed = 43;
	assert_int_equal(kw_kad_sim_run(&c, &b), 0);
	assert_true(a.trace_hash != b.trace_hash);
}

/* Scenarios run from one shared bootstrap (forked after it) report exactly what each run
 * alone reports: the same events (trace hash), lookups and virtual time. */
static void test_kad_sim_shared_bootstrap_matches_own_runs(void **state)
{
	struct kw_kad_sim_cfg c[3];
	struct kw_kad_sim_report shared[3], own;

	small_cfg(&c[0], fit(60), 60);
	c[0].loss = 0.02;
	c[1] = c[0];
	c[1].churn = 0.1;
	c[2] = c[0];
	c[2].puts = 6;
	c[2].lookups = 30;
	assert_int_equal(kw_kad_sim_run_shared(c, 3, shared), 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(kw_kad_sim_run(&c[i], &own), 0);
		print("shared", &shared[i]);
		print("own", &own);
		assert_int_equal(shared[i].boot_shared, 3);
		assert_int_equal(shared[i].trace_hash, own.trace_hash);
		assert_int_equal(shared[i].events, own.events);
		assert_int_equal(shared[i].messages, own.messages);
		assert_int_equal(shared[i].lookups_ok, own.lookups_ok);
		assert_int_equal(shared[i].lookups_failed, own.lookups_failed);
		assert_int_equal(shared[i].lookups_excluded, own.lookups_excluded);
		assert_int_equal(shared[i].gets_ok, own.gets_ok);
		assert_int_equal(shared[i].virtual_ms, own.virtual_ms);
	}
	/* the three phases really differ (else the comparison above proves little) */
	assert_true(shared[0].trace_hash != shared[1].trace_hash);
	assert_true(shared[0].trace_hash != shared[2].trace_hash);
}

/* Scenarios on different networks (here: one with adversaries) cannot share a bootstrap. */
static void test_kad_sim_shared_bootstrap_refuses_other_networks(void **state)
{
	struct kw_kad_sim_cfg c[2];
	struct kw_kad_sim_report r[2];

	small_cfg(&c[0], fit(20), 10);
	c[1] = c[0];
	c[1].adversarial = 0.1;
	assert_int_equal(kw_kad_sim_run_shared(c, 2, r), -KW_EINVAL);
}

static void test_kad_sim_lossy_links_still_find_peers(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report r;

	NEED_DEFAULTS();

	small_cfg(&c, 100, 100);
	c.loss = 0.05;
	assert_int_equal(kw_kad_sim_run(&c, &r), 0);
	print("5 % loss", &r);
	assert_true(r.lost > 0);
	assert_true(r.success_pct >= 97.0);
}

static void test_kad_sim_churn_still_finds_peers(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report r;

	NEED_DEFAULTS();

	small_cfg(&c, 100, 100);
	c.churn = 0.20;
	assert_int_equal(kw_kad_sim_run(&c, &r), 0);
	print("20 % churn", &r);
	assert_true(r.to_dead > 0);           /* departed nodes were asked and timed out */
	assert_true(r.success_pct >= 97.0);
}

static void test_kad_sim_partitioned_links_counted(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report r;

	NEED_DEFAULTS();

	small_cfg(&c, 100, 100);
	c.partition = 0.10;
	assert_int_equal(kw_kad_sim_run(&c, &r), 0);
	print("10 % links cut", &r);
	assert_true(r.cut > 0);
	assert_true(r.success_pct >= 95.0);
}

static void test_kad_sim_adversaries_hurt_lookups(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report clean, bad;

	NEED_DEFAULTS();

	/* 30 % adversaries that answer FIND_NODE only with each other, all addresses exempt from
	 * the diversity filter: fewer lookups can succeed than without them. */
	small_cfg(&c, 100, 100);
	c.private_ips = true;
	assert_int_equal(kw_kad_sim_run(&c, &clean), 0);
	c.adversarial = 0.30;
	assert_int_equal(kw_kad_sim_run(&c, &bad), 0);
	print("no adversaries", &clean);
	print("30 % adversaries", &bad);
	assert_true(bad.msgs_median >= clean.msgs_median);
	assert_true(bad.lookups_ok <= clean.lookups_ok);
}

static void test_kad_sim_get_after_put_returns_value(void **state)
{
	struct kw_kad_sim_cfg c;
	struct kw_kad_sim_report r;

	NEED_DEFAULTS();

	small_cfg(&c, 100, 20);
	c.puts = 20;
	assert_int_equal(kw_kad_sim_run(&c, &r), 0);
	printf("  get after put: %u/%u puts reached a peer, %u/%u gets returned the value\n",
	       r.puts_ok, c.puts, r.gets_ok, r.gets_total);
	assert_int_equal(r.puts_ok, 20);
	assert_int_equal(r.gets_total, 20);
	assert_int_equal(r.gets_ok, 20);
	assert_true(r.by_type[KW_KAD_PUT_VALUE] > 0 && r.by_type[KW_KAD_GET_VALUE] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kad_sim_200_nodes_find_peers),
		cmocka_unit_test(test_kad_sim_same_seed_same_trace),
		cmocka_unit_test(test_kad_sim_other_seed_other_trace),
		cmocka_unit_test(test_kad_sim_shared_bootstrap_matches_own_runs),
		cmocka_unit_test(test_kad_sim_shared_bootstrap_refuses_other_networks),
		cmocka_unit_test(test_kad_sim_lossy_links_still_find_peers),
		cmocka_unit_test(test_kad_sim_churn_still_finds_peers),
		cmocka_unit_test(test_kad_sim_partitioned_links_counted),
		cmocka_unit_test(test_kad_sim_adversaries_hurt_lookups),
		cmocka_unit_test(test_kad_sim_get_after_put_returns_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
