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

/*
 * kw_arena_init_zeroed trusts the caller that the memory is zero and does not write it again:
 * the 0xaa filler (standing for pages never touched) shows it was left alone.
 */
static void test_arena_zeroed_memory_is_not_cleared_again(void **state)
{
	static uint8_t mem[256];
	struct kw_arena a;
	uint8_t *p;

	memset(mem, 0xaa, sizeof(mem));
	kw_arena_init_zeroed(&a, mem, sizeof(mem));
	p = kw_arena_alloc(&a, 64, 8);
	assert_non_null(p);
	assert_int_equal(p[0], 0xaa);
	assert_int_equal(p[63], 0xaa);
}

/* Bytes an earlier allocation handed out are cleared again even in a zeroed arena. */
static void test_arena_zeroed_clears_what_was_handed_out_before(void **state)
{
	static uint8_t mem[256];
	struct kw_arena a;
	uint8_t *p, *q;

	memset(mem, 0, sizeof(mem));
	kw_arena_init_zeroed(&a, mem, sizeof(mem));
	p = kw_arena_alloc(&a, 32, 8);
	memset(p, 0xff, 32);
	a.used = 16;  /* a caller winding the arena back (as a test between cases might) */
	q = kw_arena_alloc(&a, 32, 8);
	assert_ptr_equal(q, p + 16);
	assert_int_equal(q[0], 0);    /* handed out before: cleared */
	assert_int_equal(q[15], 0);
	assert_int_equal(q[16], 0);   /* never handed out: zero as given */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_alignment_is_honoured),
		cmocka_unit_test(test_arena_full_returns_null_and_keeps_state),
		cmocka_unit_test(test_arena_memory_is_zeroed),
		cmocka_unit_test(test_arena_zeroed_memory_is_not_cleared_again),
		cmocka_unit_test(test_arena_zeroed_clears_what_was_handed_out_before),
	};
	return cmocka_run_group_tests_name("kernel/arena", tests, NULL, NULL);
}
