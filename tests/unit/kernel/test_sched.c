/* kernel/sched.c: cooperative tasks run once per post, yield round-robin, defer in time. */
#include "harness.h"
#include <kw/loop.h>
#include <kw/sim.h>

static struct kw_test_node *g_t;
static int setup(void **state) { g_t = kw_test_node_new(1024); return g_t ? 0 : -1; }
static int teardown(void **state) { kw_test_node_free(g_t); return 0; }
#define LOOP (&g_t->node->loop)

struct ctr { int budget; char *trace; int *pos; char name; };

static int step(struct kw_loop *l, struct kw_task *t)
{
	struct ctr *c = (struct ctr *)t->arg;
	c->trace[(*c->pos)++] = c->name;
	return --c->budget > 0 ? KW_TASK_YIELD : KW_TASK_DONE;
}

static void test_sched_post_runs_once_even_if_posted_twice(void **state)
{
	int pos = 0;
	char trace[8];
	struct ctr c = { .budget = 1, .trace = trace, .pos = &pos, .name = 'a' };
	struct kw_task t;

	kw_task_init(&t, step, &c);
	kw_task_post(LOOP, &t);
	kw_task_post(LOOP, &t);
	kw_loop_run_once(LOOP, 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(t.runs, 1);
}

static void test_sched_yielding_tasks_alternate_fairly(void **state)
{
	char trace[64] = { 0 };
	int pos = 0;
	struct ctr a = { .budget = 4, .trace = trace, .pos = &pos, .name = 'a' };
	struct ctr b = { .budget = 4, .trace = trace, .pos = &pos, .name = 'b' };
	struct kw_task ta, tb;

	kw_task_init(&ta, step, &a);
	kw_task_init(&tb, step, &b);
	kw_task_post(LOOP, &ta);
	kw_task_post(LOOP, &tb);
	for (int i = 0; i < 10; i++) {
		int before = pos;
		kw_loop_run_once(LOOP, 0);
		assert_true(pos - before <= 2);  /* one step each per pass, never a burst */
	}
	assert_int_equal(pos, 8);
	assert_memory_equal(trace, "abababab", 8);
	assert_int_equal(ta.runs, 4);
	assert_int_equal(tb.runs, 4);
}

static int g_posted_runs;
static struct kw_task g_other;
static int count_run(struct kw_loop *l, struct kw_task *t) { g_posted_runs++; return KW_TASK_DONE; }
static int post_other(struct kw_loop *l, struct kw_task *t)
{
	kw_task_post(l, &g_other);
	return KW_TASK_DONE;
}

static void test_sched_task_posted_during_pass_runs_next_pass(void **state)
{
	struct kw_task t;

	g_posted_runs = 0;
	kw_task_init(&t, post_other, NULL);
	kw_task_init(&g_other, count_run, NULL);
	kw_task_post(LOOP, &t);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_posted_runs, 0);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_posted_runs, 1);
}

static void test_sched_defer_runs_after_delay(void **state)
{
	struct kw_task t;

	g_posted_runs = 0;
	kw_task_init(&t, count_run, NULL);
	assert_int_equal(kw_task_defer(LOOP, &t, 100), 0);
	kw_sim_advance(g_t->net, 99);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_posted_runs, 0);
	kw_sim_advance(g_t->net, 1);
	kw_loop_run_once(LOOP, 0);  /* timer posts it; it runs in the same pass */
	assert_int_equal(g_posted_runs, 1);
}

static void test_sched_cancel_removes_queued_and_deferred(void **state)
{
	struct kw_task a, b, c;

	g_posted_runs = 0;
	kw_task_init(&a, count_run, NULL);
	kw_task_init(&b, count_run, NULL);
	kw_task_init(&c, count_run, NULL);
	kw_task_post(LOOP, &a);
	kw_task_post(LOOP, &b);
	kw_task_post(LOOP, &c);
	kw_task_cancel(LOOP, &c);  /* tail */
	kw_task_cancel(LOOP, &a);  /* head */
	assert_int_equal(LOOP->rq_len, 1);
	kw_task_defer(LOOP, &a, 5);
	kw_task_cancel(LOOP, &a);
	kw_sim_advance(g_t->net, 10);
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(g_posted_runs, 1);
	assert_int_equal(b.runs, 1);
	assert_int_equal(a.runs + c.runs, 0);
	kw_task_post(LOOP, &c);  /* the queue still links correctly after tail removal */
	kw_loop_run_once(LOOP, 0);
	assert_int_equal(c.runs, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sched_post_runs_once_even_if_posted_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_yielding_tasks_alternate_fairly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_task_posted_during_pass_runs_next_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_defer_runs_after_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_cancel_removes_queued_and_deferred, setup, teardown),
	};
	return cmocka_run_group_tests_name("kernel/sched", tests, NULL, NULL);
}
