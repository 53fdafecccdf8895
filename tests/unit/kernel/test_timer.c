/* kernel/timer.c: monotonic timers ordered by deadline, FIFO on ties, cheap to cancel. */
#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/rng.h>
#include <kw/sim.h>

struct rec { int order[64]; int n; };

struct tagged { struct kw_timer t; int id; struct rec *r; };

static void record(struct kw_loop *l, struct kw_timer *t)
{
	struct tagged *x = (struct tagged *)t->arg;
	x->r->order[x->r->n++] = x->id;
}

static struct kw_test_node *g_t;
static int setup(void **state) { g_t = kw_test_node_new(1024); return g_t ? 0 : -1; }
static int teardown(void **state) { kw_test_node_free(g_t); return 0; }
#define LOOP (&g_t->node->loop)

static void advance(uint64_t ms)
{
	kw_sim_advance(g_t->net, ms);
	kw_loop_run_once(LOOP, 0);
}

static void test_timer_fires_in_deadline_order_fifo_on_ties(void **state)
{
	struct rec r = { 0 };
	struct tagged x[5];
	const int delay[5] = { 30, 10, 20, 10, 10 };

	for (int i = 0; i < 5; i++) {
		x[i].id = i;
		x[i].r = &r;
		kw_timer_init(&x[i].t, record, &x[i]);
		assert_int_equal(kw_timer_start(LOOP, &x[i].t, delay[i]), 0);
	}
	advance(9);
	assert_int_equal(r.n, 0);
	advance(1);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.order[0], 1);
	assert_int_equal(r.order[1], 3);
	assert_int_equal(r.order[2], 4);
	advance(20);
	assert_int_equal(r.n, 5);
	assert_int_equal(r.order[3], 2);
	assert_int_equal(r.order[4], 0);
	assert_false(kw_timer_armed(&x[0].t));
}

static void test_timer_cancel_and_rearm(void **state)
{
	struct rec r = { 0 };
	struct tagged a = { .id = 1, .r = &r }, b = { .id = 2, .r = &r };

	kw_timer_init(&a.t, record, &a);
	kw_timer_init(&b.t, record, &b);
	kw_timer_cancel(LOOP, &a.t);  /* idle: no-op */
	kw_timer_start(LOOP, &a.t, 5);
	kw_timer_start(LOOP, &b.t, 10);
	kw_timer_cancel(LOOP, &a.t);
	assert_false(kw_timer_armed(&a.t));
	kw_timer_start(LOOP, &b.t, 50);  /* re-arm moves it later */
	assert_int_equal(kw_loop_next_timeout(LOOP), 50);
	advance(20);
	assert_int_equal(r.n, 0);
	advance(30);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.order[0], 2);
	assert_int_equal(kw_loop_next_timeout(LOOP), -1);
}

/* 10,000 timers, or as many as the configured timer heap holds (a few kept for the loop) */
#define MANY (CONFIG_KW_TIMER_MAX >= 10016 ? 10000 : CONFIG_KW_TIMER_MAX - 16)
static struct kw_timer g_many[MANY];
static uint64_t g_last_fire;
static int g_fired, g_order_ok = 1;

static void many_cb(struct kw_loop *l, struct kw_timer *t)
{
	if (t->deadline_ms < g_last_fire)
		g_order_ok = 0;
	g_last_fire = t->deadline_ms;
	g_fired++;
}

static void test_timer_many_random_with_cancels(void **state)
{
	struct kw_prng g;
	int cancelled = 0;

	kw_prng_seed(&g, 7);
	g_fired = 0;
	g_last_fire = 0;
	for (int i = 0; i < MANY; i++) {
		kw_timer_init(&g_many[i], many_cb, NULL);
		assert_int_equal(kw_timer_start(LOOP, &g_many[i], kw_prng_next(&g) % 5000), 0);
	}
	for (int i = 0; i < MANY; i += 3) {
		kw_timer_cancel(LOOP, &g_many[i]);
		cancelled++;
	}
	for (int i = 1; i < MANY; i += 7)  /* re-arm some, cancelled ones included */
		kw_timer_start(LOOP, &g_many[i], kw_prng_next(&g) % 5000);
	cancelled = 0;
	for (int i = 0; i < MANY; i++)
		cancelled += !kw_timer_armed(&g_many[i]);
	assert_int_equal(LOOP->heap_len, MANY - cancelled);
	for (int ms = 0; ms <= 5000; ms += 50)
		advance(50);
	assert_true(g_order_ok);
	assert_int_equal(g_fired, MANY - cancelled);
	assert_int_equal(LOOP->heap_len, 0);
}

static void test_timer_heap_full_returns_enospc(void **state)
{
	static _Alignas(16) uint8_t mem[4096];
	struct kw_arena a;
	struct kw_loop l;
	struct kw_timer t[3];

	kw_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(kw_loop_init(&l, &g_t->sim->sys, &a, 2, 4), 0);
	for (int i = 0; i < 3; i++)
		kw_timer_init(&t[i], many_cb, NULL);
	assert_int_equal(kw_timer_start(&l, &t[0], 1), 0);
	assert_int_equal(kw_timer_start(&l, &t[1], 1), 0);
	assert_int_equal(kw_timer_start(&l, &t[2], 1), -KW_ENOSPC);
	assert_int_equal(kw_timer_start(&l, &t[1], 5), 0);  /* re-arm needs no new slot */
	assert_int_equal(l.stats.timers_high, 2);
}

static struct kw_timer g_self;
static int g_self_runs;
static void self_rearm(struct kw_loop *l, struct kw_timer *t)
{
	g_self_runs++;
	kw_timer_start(l, t, 0);
}

static void test_timer_zero_delay_rearm_does_not_starve_the_loop(void **state)
{
	g_self_runs = 0;
	kw_timer_init(&g_self, self_rearm, NULL);
	kw_timer_start(LOOP, &g_self, 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_self_runs, 1);  /* once per pass, then the loop polls again */
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_self_runs, 2);
	kw_timer_cancel(LOOP, &g_self);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timer_fires_in_deadline_order_fifo_on_ties, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_cancel_and_rearm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_many_random_with_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_heap_full_returns_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_zero_delay_rearm_does_not_starve_the_loop, setup, teardown),
	};
	return cmocka_run_group_tests_name("kernel/timer", tests, NULL, NULL);
}
