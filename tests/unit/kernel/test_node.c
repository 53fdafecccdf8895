/* kernel/node.c: ordered init with rollback, graceful stop with drain, isolated instances. */
#include <string.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>

static char g_trace[32];
static int g_pos;
static int g_fail_at = -1;

#define STEP(n) \
	static int init_##n(struct kw_node *node) { g_trace[g_pos++] = 'A' + n; return g_fail_at == n ? -KW_ENOMEM : 0; } \
	static void down_##n(struct kw_node *node) { g_trace[g_pos++] = 'a' + n; }
STEP(0) STEP(1) STEP(2)

static const struct kw_initcall g_table[] = {
	{ "zero", init_0, down_0 }, { "one", init_1, down_1 }, { "two", init_2, down_2 },
};

static void test_node_inits_run_in_order_and_shut_down_in_reverse(void **state)
{
	struct kw_test_node *t = kw_test_node_new(256);

	g_pos = 0;
	g_fail_at = -1;
	memset(g_trace, 0, sizeof(g_trace));
	assert_int_equal(kw_node_run_inits(t->node, g_table, 3), 0);
	kw_node_shutdown(t->node);
	assert_string_equal(g_trace, "ABCcba");
	kw_node_shutdown(t->node);  /* idempotent */
	assert_string_equal(g_trace, "ABCcba");
	kw_test_node_free(t);
}

static void test_node_first_init_failure_stops_and_rolls_back(void **state)
{
	struct kw_test_node *t = kw_test_node_new(256);

	g_pos = 0;
	g_fail_at = 1;
	memset(g_trace, 0, sizeof(g_trace));
	assert_int_equal(kw_node_run_inits(t->node, g_table, 3), -KW_ENOMEM);
	assert_string_equal(g_trace, "ABa");  /* C never ran; only A was up to shut down */
	kw_test_node_free(t);
}

static int g_busy_left;
static int g_begun;
static void drain_begin(struct kw_node *n, struct kw_drain *d) { g_begun++; }
static bool drain_busy(struct kw_node *n, struct kw_drain *d) { return g_busy_left-- > 0; }

static void test_node_stop_waits_for_drain_then_stops(void **state)
{
	struct kw_test_node *t = kw_test_node_new(256);
	struct kw_drain d = { .begin = drain_begin, .busy = drain_busy };
	uint64_t t0;

	t->net->auto_advance = true;
	t->node->cfg.shutdown_drain_ms = 500;  /* independent of Kconfig (0 is in range) */
	g_begun = 0;
	g_busy_left = 3;
	kw_node_add_drain(t->node, &d);
	t0 = kw_loop_now(&t->node->loop);
	kw_node_request_stop(t->node);
	assert_int_equal(kw_loop_run(&t->node->loop), 0);
	assert_int_equal(g_begun, 1);
	assert_true(g_busy_left < 0);
	assert_true(kw_loop_now(&t->node->loop) - t0 < t->node->cfg.shutdown_drain_ms);
	kw_test_node_free(t);
}

static void test_node_stop_gives_up_after_drain_time(void **state)
{
	struct kw_test_node *t = kw_test_node_new(256);
	struct kw_drain d = { .begin = drain_begin, .busy = drain_busy };
	uint64_t t0;

	t->net->auto_advance = true;
	t->node->cfg.shutdown_drain_ms = 500;
	g_busy_left = 1 << 30;  /* never idle */
	kw_node_add_drain(t->node, &d);
	t0 = kw_loop_now(&t->node->loop);
	kw_node_request_stop(t->node);
	assert_int_equal(kw_loop_run(&t->node->loop), 0);
	assert_true(kw_loop_now(&t->node->loop) - t0 >= t->node->cfg.shutdown_drain_ms);
	kw_test_node_free(t);
}

static void test_node_instances_are_independent(void **state)
{
	struct kw_test_node *a = kw_test_node_new(256), *b = kw_test_node_new(256);
	struct kw_pool pa;

	assert_int_equal(kw_node_pool_create(a->node, &pa, "a", 32, 4), 0);
	assert_non_null(kw_pool_alloc(&pa));
	assert_int_equal(kw_node_pools_in_use(a->node), 1);
	assert_int_equal(kw_node_pools_in_use(b->node), 0);
	kw_sim_advance(a->net, 500);
	kw_loop_update_time(&a->node->loop);
	kw_loop_update_time(&b->node->loop);
	assert_int_not_equal(kw_loop_now(&a->node->loop), kw_loop_now(&b->node->loop));
	kw_test_node_free(a);
	kw_test_node_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_inits_run_in_order_and_shut_down_in_reverse),
		cmocka_unit_test(test_node_first_init_failure_stops_and_rolls_back),
		cmocka_unit_test(test_node_stop_waits_for_drain_then_stops),
		cmocka_unit_test(test_node_stop_gives_up_after_drain_time),
		cmocka_unit_test(test_node_instances_are_independent),
	};
	return cmocka_run_group_tests_name("kernel/node", tests, NULL, NULL);
}
