/* kernel/arena.c: start-up bump allocation, alignment, and clean failure. */
#include <string.h>
#include "harness.h"
#include <kw/arena.h>

static _Alignas(64) uint8_t g_mem[1024];

static void test_arena_alignment_is_honoured(void **state)
{
	struct kw_arena a;
	uint8_t *p, *q;

	kw_arena_init(&a, g_mem, sizeof(g_mem));
	p = kw_arena_alloc(&a, 3, 1);
	q = kw_arena_alloc(&a, 8, 64);
	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal((uintptr_t)q % 64, 0);
	assert_true(q >= p + 3);
	assert_null(kw_arena_alloc(&a, 8, 3));  /* not a power of two */
	assert_null(kw_arena_alloc(&a, 0, 8));
}

static void test_arena_full_returns_null_and_keeps_state(void **state)
{
	struct kw_arena a;

	kw_arena_init(&a, g_mem, sizeof(g_mem));
	assert_non_null(kw_arena_alloc(&a, 1000, 8));
	assert_null(kw_arena_alloc(&a, 100, 8));
	assert_int_equal(a.used, 1000);
	assert_null(kw_arena_alloc(&a, SIZE_MAX - 8, 8));  /* no wrap-around */
	assert_non_null(kw_arena_alloc(&a, 24, 8));
	assert_int_equal(kw_arena_free_bytes(&a), 0);
}

static void test_arena_memory_is_zeroed(void **state)
{
	struct kw_arena a;
	uint8_t *p;

	memset(g_mem, 0xaa, sizeof(g_mem));
	kw_arena_init(&a, g_mem, sizeof(g_mem));
	p = kw_arena_alloc(&a, 100, 1);
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_alignment_is_honoured),
		cmocka_unit_test(test_arena_full_returns_null_and_keeps_state),
		cmocka_unit_test(test_arena_memory_is_zeroed),
	};
	return cmocka_run_group_tests_name("kernel/arena", tests, NULL, NULL);
}
