/* kernel/rng.c: kernel randomness and the deterministic simulation PRNG. */
#include <string.h>

#include "harness.h"
#include <kw/rng.h>

static void test_rng_bytes_differ_between_calls(void **state)
{
	uint8_t a[32], b[32], zero[32] = { 0 };

	assert_int_equal(kw_rng_bytes(a, sizeof(a)), 0);
	assert_int_equal(kw_rng_bytes(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
}

static void test_rng_below_stays_in_range_and_covers_it(void **state)
{
	int seen[7] = { 0 };

	for (int i = 0; i < 2000; i++) {
		uint32_t x = kw_rng_below(7);
		assert_true(x < 7);
		seen[x]++;
	}
	for (int i = 0; i < 7; i++)
		assert_true(seen[i] > 150);  /* expected ~286 each; 150 is > 8 sigma away */
	assert_int_equal(kw_rng_below(1), 0);
}

static void test_prng_is_deterministic_per_seed(void **state)
{
	struct kw_prng a, b, c;

	kw_prng_seed(&a, 1);
	kw_prng_seed(&b, 1);
	kw_prng_seed(&c, 2);
	for (int i = 0; i < 100; i++) {
		uint64_t x = kw_prng_next(&a);
		assert_true(x == kw_prng_next(&b));
		assert_true(x != kw_prng_next(&c));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_bytes_differ_between_calls),
		cmocka_unit_test(test_rng_below_stays_in_range_and_covers_it),
		cmocka_unit_test(test_prng_is_deterministic_per_seed),
	};
	return cmocka_run_group_tests_name("kernel/rng", tests, NULL, NULL);
}
