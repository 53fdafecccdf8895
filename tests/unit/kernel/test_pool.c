/* kernel/pool.c: O(1) fixed-block pools with counters and validated frees. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/pool.h>

#define N 8
struct obj { uint64_t a, b, c; };

static _Alignas(16) uint8_t g_store[N * 32];

static void test_pool_exhaustion_returns_null_and_counts_failure(void **state)
{
	struct kw_pool p;
	void *objs[N];

	assert_int_equal(kw_pool_init(&p, "t", g_store, sizeof(struct obj), N), 0);
	for (int i = 0; i < N; i++)
		assert_non_null(objs[i] = kw_pool_alloc(&p));
	assert_null(kw_pool_alloc(&p));
	assert_null(kw_pool_alloc(&p));
	assert_int_equal(p.fails, 2);
	assert_int_equal(p.used, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(kw_pool_free(&p, objs[i]), 0);
	assert_int_equal(p.used, 0);
	assert_int_equal(p.high, N);
}

static void test_pool_blocks_are_distinct_aligned_and_zeroed(void **state)
{
	struct kw_pool p;
	struct obj *a, *b;

	assert_int_equal(kw_pool_init(&p, "t", g_store, sizeof(struct obj), N), 0);
	a = kw_pool_alloc(&p);
	memset(a, 0xff, sizeof(*a));
	assert_int_equal(kw_pool_free(&p, a), 0);
	b = kw_pool_alloc(&p);
	assert_ptr_equal(a, b);  /* LIFO reuse keeps caches warm */
	assert_int_equal(b->a | b->b | b->c, 0);
	a = kw_pool_alloc(&p);
	assert_ptr_not_equal(a, b);
	assert_int_equal((uintptr_t)a % 16, 0);
	assert_int_equal((uintptr_t)b % 16, 0);
	kw_pool_free(&p, a);
	kw_pool_free(&p, b);
}

static void test_pool_free_of_foreign_or_misaligned_pointer_is_rejected(void **state)
{
	struct kw_pool p;
	struct obj local;
	uint8_t *o;

	assert_int_equal(kw_pool_init(&p, "t", g_store, sizeof(struct obj), N), 0);
	o = kw_pool_alloc(&p);
	assert_int_equal(kw_pool_free(&p, &local), -KW_EINVAL);
	assert_int_equal(kw_pool_free(&p, o + 1), -KW_EINVAL);
	assert_int_equal(kw_pool_free(&p, NULL), -KW_EINVAL);
	assert_int_equal(p.used, 1);
	assert_int_equal(kw_pool_free(&p, o), 0);
}

static void test_pool_init_rejects_bad_arguments(void **state)
{
	struct kw_pool p;

	assert_int_equal(kw_pool_init(&p, "t", g_store, 0, N), -KW_EINVAL);
	assert_int_equal(kw_pool_init(&p, "t", g_store, 8, 0), -KW_EINVAL);
	assert_int_equal(kw_pool_init(&p, "t", g_store + 1, 8, N), -KW_EINVAL);
}

static void test_pool_from_arena_fails_cleanly_when_arena_too_small(void **state)
{
	static _Alignas(16) uint8_t mem[256];
	struct kw_arena a;
	struct kw_pool p;

	kw_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(kw_pool_init_from_arena(&p, "big", &a, 64, 100), -KW_ENOMEM);
	assert_int_equal(a.used, 0);
	assert_int_equal(kw_pool_init_from_arena(&p, "ok", &a, 64, 3), 0);
	assert_int_equal(kw_pool_storage_size(64, 3), 192);
}

static void test_pool_double_free_trips_assert(void **state)
{
	/* KW_ASSERT aborts; prove it in a child so the suite keeps running. */
	if (!IS_ENABLED(CONFIG_KW_ASSERT))
		skip();
	struct kw_pool p;
	void *o;

	assert_int_equal(kw_pool_init(&p, "t", g_store, sizeof(struct obj), N), 0);
	o = kw_pool_alloc(&p);
	assert_int_equal(kw_pool_free(&p, o), 0);
	{
		pid_t pid = fork();
		int st = 0;
		if (pid == 0) {
			kw_pool_free(&p, o);
			_exit(0);
		}
		waitpid(pid, &st, 0);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGABRT);
	}
}

static void test_pool_node_registry_sums_usage(void **state)
{
	struct kw_test_node *t = kw_test_node_new(256);
	struct kw_pool a, b;
	void *x, *y;

	assert_non_null(t);
	assert_int_equal(kw_node_pool_create(t->node, &a, "a", 24, 4), 0);
	assert_int_equal(kw_node_pool_create(t->node, &b, "b", 100, 2), 0);
	x = kw_pool_alloc(&a);
	y = kw_pool_alloc(&b);
	assert_int_equal(kw_node_pools_in_use(t->node), 2);
	kw_pool_free(&a, x);
	kw_pool_free(&b, y);
	kw_test_assert_no_leaks(t->node);
	assert_int_equal(kw_node_pool_create(t->node, &a, "huge", 1 << 20, 1024), -KW_ENOMEM);
	kw_test_node_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_exhaustion_returns_null_and_counts_failure),
		cmocka_unit_test(test_pool_blocks_are_distinct_aligned_and_zeroed),
		cmocka_unit_test(test_pool_free_of_foreign_or_misaligned_pointer_is_rejected),
		cmocka_unit_test(test_pool_init_rejects_bad_arguments),
		cmocka_unit_test(test_pool_from_arena_fails_cleanly_when_arena_too_small),
		cmocka_unit_test(test_pool_double_free_trips_assert),
		cmocka_unit_test(test_pool_node_registry_sums_usage),
	};
	return cmocka_run_group_tests_name("kernel/pool", tests, NULL, NULL);
}
