/* kernel/buf.c: linear buffers and byte rings never overrun and wrap correctly. */
#include <string.h>

#include "harness.h"
#include <kw/buf.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/rng.h>

static void test_buf_append_rejects_overflow_without_partial_write(void **state)
{
	uint8_t mem[8];
	struct kw_buf b;

	kw_buf_init(&b, mem, sizeof(mem));
	assert_int_equal(kw_buf_append(&b, "abcde", 5), 0);
	assert_int_equal(kw_buf_append(&b, "fghij", 5), -KW_ENOBUFS);
	assert_int_equal(kw_buf_readable(&b), 5);
	assert_int_equal(kw_buf_consume(&b, 6), -KW_EINVAL);
	assert_int_equal(kw_buf_consume(&b, 2), 0);
	kw_buf_compact(&b);
	assert_memory_equal(kw_buf_rptr(&b), "cde", 3);
	assert_int_equal(kw_buf_writable(&b), 5);
	assert_int_equal(kw_buf_commit(&b, 6), -KW_EINVAL);
	assert_int_equal(kw_buf_consume(&b, 3), 0);
	assert_int_equal(b.len, 0);  /* empty buffer rewinds */
}

static void test_ring_rejects_non_power_of_two(void **state)
{
	uint8_t mem[12];
	struct kw_ring r;

	assert_int_equal(kw_ring_init(&r, mem, 12), -KW_EINVAL);
	assert_int_equal(kw_ring_init(&r, mem, 0), -KW_EINVAL);
	assert_int_equal(kw_ring_init(&r, mem, 8), 0);
}

static void test_ring_wraparound_preserves_bytes(void **state)
{
	uint8_t mem[16], out[16];
	struct kw_ring r;

	kw_ring_init(&r, mem, sizeof(mem));
	assert_int_equal(kw_ring_write(&r, "0123456789", 10), 10);
	assert_int_equal(kw_ring_read(&r, out, 8), 8);
	/* head at 10, tail at 8: this write wraps past the end */
	assert_int_equal(kw_ring_write(&r, "ABCDEFGHIJKLMN", 14), 14);
	assert_int_equal(kw_ring_space(&r), 0);
	assert_int_equal(kw_ring_write(&r, "x", 1), 0);
	assert_int_equal(kw_ring_peek(&r, 2, out, 4), 4);
	assert_memory_equal(out, "ABCD", 4);
	assert_int_equal(kw_ring_read(&r, out, 16), 16);
	assert_memory_equal(out, "89ABCDEFGHIJKLMN", 16);
	assert_true(kw_ring_empty(&r));
}

static void test_ring_spans_cover_contiguous_regions(void **state)
{
	uint8_t mem[8], *p;
	struct kw_ring r;

	kw_ring_init(&r, mem, sizeof(mem));
	kw_ring_write(&r, "abcdef", 6);
	kw_ring_skip(&r, 5);
	assert_int_equal(kw_ring_write_span(&r, &p), 2);  /* up to the end of storage */
	memcpy(p, "gh", 2);
	kw_ring_produce(&r, 2);
	assert_int_equal(kw_ring_write_span(&r, &p), 5);  /* wrapped: from the start */
	assert_int_equal(kw_ring_read_span(&r, &p), 3);
	assert_memory_equal(p, "fgh", 3);
	kw_ring_produce(&r, 100);  /* clamped to space */
	assert_int_equal(kw_ring_used(&r), 8);
}

static void test_ring_random_ops_match_model(void **state)
{
	uint8_t mem[64], model[4096], tmp[64];
	size_t mh = 0, mt = 0;
	struct kw_ring r;
	struct kw_prng g;

	kw_prng_seed(&g, 42);
	kw_ring_init(&r, mem, sizeof(mem));
	for (int i = 0; i < 20000; i++) {
		size_t n = kw_prng_next(&g) % 40, k;
		if (kw_prng_next(&g) & 1) {
			for (k = 0; k < n; k++)
				tmp[k] = (uint8_t)kw_prng_next(&g);
			k = kw_ring_write(&r, tmp, n);
			assert_int_equal(k, KW_MIN(n, 64 - (mh - mt)));
			for (size_t j = 0; j < k; j++)
				model[(mh + j) % sizeof(model)] = tmp[j];
			mh += k;
		} else {
			k = kw_ring_read(&r, tmp, n);
			assert_int_equal(k, KW_MIN(n, mh - mt));
			for (size_t j = 0; j < k; j++)
				assert_int_equal(tmp[j], model[(mt + j) % sizeof(model)]);
			mt += k;
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append_rejects_overflow_without_partial_write),
		cmocka_unit_test(test_ring_rejects_non_power_of_two),
		cmocka_unit_test(test_ring_wraparound_preserves_bytes),
		cmocka_unit_test(test_ring_spans_cover_contiguous_regions),
		cmocka_unit_test(test_ring_random_ops_match_model),
	};
	return cmocka_run_group_tests_name("kernel/buf", tests, NULL, NULL);
}
