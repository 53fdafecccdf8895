/*
 * Exhaustive checks of the scalar fp16/bf16 helpers in <kw/ml/half.h>, the reference every
 * conversion kernel and codec is compared with.
 */
#include "harness.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <kw/ml/half.h>

static bool h_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

static void test_half_all_65536_patterns_round_trip(void **state)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = kw_fp16_to_f32((uint16_t)h);
		uint16_t back = kw_f32_to_fp16(f);

		if (h_is_nan((uint16_t)h)) {
			assert_true(isnan(f));
			/* widening quiets the NaN like F16C / FCVT, keeps sign and payload */
			assert_int_equal(kw_f32_bits(f), ((h & 0x8000u) << 16) | 0x7fc00000u |
					 ((h & 0x3ffu) << 13));
			/* quiet bit forced, sign and payload kept */
			assert_int_equal(back, h | 0x200u);
		} else {
			assert_int_equal(back, h);
		}
	}
}

static void test_half_decodes_to_exact_values(void **state)
{
	for (uint32_t h = 0; h < 0x7c00; h++) {
		uint32_t e = h >> 10, m = h & 0x3ff;
		double want = e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp(m, -24);

		assert_true((double)kw_fp16_to_f32((uint16_t)h) == want);
		assert_true((double)kw_fp16_to_f32((uint16_t)(h | 0x8000)) == -want);
	}
	assert_true(isinf(kw_fp16_to_f32(0x7c00)));
	assert_true(kw_fp16_to_f32(0x7c00) > 0);
	assert_true(isinf(kw_fp16_to_f32(0xfc00)));
	assert_true(kw_fp16_to_f32(0xfc00) < 0);
}

/* Midpoints between neighbouring halves go to the even one; one float ulp off the midpoint
 * goes to the nearer one. Covers every finite half including subnormals. */
static void test_half_rounds_ties_to_even_everywhere(void **state)
{
	for (uint32_t h = 0; h < 0x7bff; h++) {
		float a = kw_fp16_to_f32((uint16_t)h), b = kw_fp16_to_f32((uint16_t)(h + 1));
		float mid = (float)(((double)a + b) / 2);  /* exact: needs 12 significant bits */
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;

		assert_true((double)mid == ((double)a + b) / 2);
		assert_int_equal(kw_f32_to_fp16(mid), even);
		assert_int_equal(kw_f32_to_fp16(-mid), even | 0x8000);
		assert_int_equal(kw_f32_to_fp16(nextafterf(mid, 0.0f)), h);
		assert_int_equal(kw_f32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
	}
}

static void test_half_overflow_goes_to_inf_and_max_stays(void **state)
{
	assert_int_equal(kw_f32_to_fp16(65504.0f), 0x7bff);
	assert_int_equal(kw_f32_to_fp16(nextafterf(65520.0f, 0.0f)), 0x7bff);
	assert_int_equal(kw_f32_to_fp16(65520.0f), 0x7c00);  /* tie with 65536 -> even = Inf */
	assert_int_equal(kw_f32_to_fp16(1e30f), 0x7c00);
	assert_int_equal(kw_f32_to_fp16(-1e30f), 0xfc00);
	assert_int_equal(kw_f32_to_fp16(INFINITY), 0x7c00);
	assert_int_equal(kw_f32_to_fp16(-INFINITY), 0xfc00);
	assert_int_equal(kw_f32_to_fp16(3.0e-8f), 0x0001);   /* > 2^-25: rounds up to 2^-24 */
	assert_int_equal(kw_f32_to_fp16(ldexpf(1.0f, -25)), 0x0000);  /* tie -> even 0 */
	assert_int_equal(kw_f32_to_fp16(-ldexpf(1.0f, -25)), 0x8000);
	assert_int_equal(kw_f32_to_fp16(ldexpf(1.0f, -14)), 0x0400);  /* smallest normal */
	assert_int_equal(kw_f32_to_fp16(nextafterf(ldexpf(1.0f, -14), 0.0f)), 0x0400);
	assert_int_equal(kw_f32_to_fp16(1e-30f), 0x0000);
}

static void test_half_nan_keeps_sign_and_stays_nan(void **state)
{
	assert_int_equal(kw_f32_to_fp16(kw_bits_f32(0x7fc00000u)), 0x7e00);
	assert_int_equal(kw_f32_to_fp16(kw_bits_f32(0xffc00000u)), 0xfe00);
	/* a signalling NaN whose payload lives only in the dropped bits must not become Inf */
	assert_true(h_is_nan(kw_f32_to_fp16(kw_bits_f32(0x7f800001u))));
	assert_int_equal(kw_f32_to_fp16(kw_bits_f32(0x7f800001u)), 0x7e00);
}

static void test_bf16_all_patterns_round_trip_and_ties_to_even(void **state)
{
	for (uint32_t b = 0; b < 65536; b++) {
		float f = kw_bf16_to_f32((uint16_t)b);
		uint32_t u = kw_f32_bits(f);

		assert_int_equal(u, b << 16);
		if ((b & 0x7f80u) == 0x7f80u && (b & 0x7fu))
			assert_int_equal(kw_f32_to_bf16(f), b | 0x40u);
		else
			assert_int_equal(kw_f32_to_bf16(f), b);
		/* halfway to the next pattern (same sign): ties to even */
		if ((b & 0x7f80u) != 0x7f80u && (b & 0x7fffu) != 0x7f7fu) {
			uint16_t even = (b & 1) ? (uint16_t)(b + 1) : (uint16_t)b;
			assert_int_equal(kw_f32_to_bf16(kw_bits_f32((b << 16) | 0x8000u)), even);
			assert_int_equal(kw_f32_to_bf16(kw_bits_f32((b << 16) | 0x7fffu)), b);
			assert_int_equal(kw_f32_to_bf16(kw_bits_f32((b << 16) | 0x8001u)), b + 1);
		}
	}
	assert_int_equal(kw_f32_to_bf16(kw_bits_f32(0x7f7fffffu)), 0x7f80);  /* overflow -> Inf */
	assert_int_equal(kw_f32_to_bf16(kw_bits_f32(0x7f800001u)), 0x7fc0);  /* sNaN stays NaN */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_half_all_65536_patterns_round_trip),
		cmocka_unit_test(test_half_decodes_to_exact_values),
		cmocka_unit_test(test_half_rounds_ties_to_even_everywhere),
		cmocka_unit_test(test_half_overflow_goes_to_inf_and_max_stays),
		cmocka_unit_test(test_half_nan_keeps_sign_and_stays_nan),
		cmocka_unit_test(test_bf16_all_patterns_round_trip_and_ties_to_even),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
