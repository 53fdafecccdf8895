/*
 * The conversion slots of every compiled and CPU-supported kernel table (<kw/ml/kernels.h>)
 * equal the C reference (ml/ref/convert_ref.c) bit for bit: all 65536 fp16/bf16 patterns,
 * fp32 edge values, random bit patterns, and every tail length.
 */
#include "harness.h"

#include <math.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>

#define N_RAND 65536

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static float src32[N_RAND + 64];
static uint16_t src16[65536 + 64];
static uint16_t out16a[N_RAND + 64], out16b[N_RAND + 64];
static float out32a[65536 + 64], out32b[65536 + 64];

static const uint32_t edge_bits[] = {
	0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001,
	0xff800001, 0x7fbfffff, 0x477fe000, 0x477ff000, 0x477fefff, 0x47800000, 0xc77ff000,
	0x38800000, 0x387fffff, 0x33800000, 0x33000000, 0x33000001, 0x32ffffff, 0x00000001,
	0x807fffff, 0x3f800000, 0x3f801000, 0x3f803000, 0x3f808000, 0x3f818000, 0x7f7fffff,
	0x477fffff, 0xc77fffff, 0x3fc00000, 0x40490fdb,
};

static void fill_src32(void)
{
	size_t i;

	for (i = 0; i < sizeof(edge_bits) / sizeof(edge_bits[0]); i++)
		src32[i] = kw_bits_f32(edge_bits[i]);
	for (; i < N_RAND + 64; i++)
		src32[i] = kw_bits_f32(rnd());
	for (i = 0; i < 65536 + 64; i++)
		src16[i] = (uint16_t)i;
}

static int n_variants_tested;

/*
 * Every rounding decision fp32 -> fp16 can face: for each pair of neighbouring fp16 values
 * (subnormals, the overflow edge 65504 / 65520 and both signs included) the exact midpoint,
 * a tie that must go to the even one, and the floats one ulp either side of it.
 */
static void check_ties(enum kw_simd v, const struct kw_kernels *ref, const struct kw_kernels *ops)
{
	size_t n = 0;

	for (uint32_t h = 0; h < 0x10000u; h++) {
		uint32_t e = (h >> 10) & 0x1fu;
		float lo, hi, mid;

		if (e == 0x1f)  /* Inf/NaN: no upper neighbour */
			continue;
		lo = kw_fp16_to_f32((uint16_t)h);
		hi = kw_fp16_to_f32((uint16_t)(h + 1));       /* next magnitude, same sign */
		if ((h & 0x7fffu) == 0x7bffu)
			hi = (h & 0x8000u) ? -65536.0f : 65536.0f;  /* the rounding edge is 65520 */
		mid = 0.5f * (lo + hi);                        /* exact: fp32 has 13 more bits */
		src32[n++] = kw_bits_f32(kw_f32_bits(mid) - 1);
		src32[n++] = mid;
		src32[n++] = kw_bits_f32(kw_f32_bits(mid) + 1);
		if (n + 3 > N_RAND || h == 0xffffu) {
			ref->f32_to_f16(out16a, src32, n);
			ops->f32_to_f16(out16b, src32, n);
			for (size_t i = 0; i < n; i++)
				if (out16a[i] != out16b[i])
					fail_msg("%s f32_to_f16(%a): %04x vs ref %04x", kw_simd_name(v),
						 (double)src32[i], out16b[i], out16a[i]);
			ref->f32_to_f16_clamp(out16a, src32, n);
			ops->f32_to_f16_clamp(out16b, src32, n);
			assert_memory_equal(out16a, out16b, n * 2);
			n = 0;
		}
	}
	/* the reference itself: a tie goes to the even neighbour (1 + 2^-11 -> 1.0) */
	src32[0] = 1.0f + 0x1p-11f;
	src32[1] = 1.0f + 3 * 0x1p-11f;
	ops->f32_to_f16(out16b, src32, 2);
	assert_int_equal(out16b[0], 0x3c00);
	assert_int_equal(out16b[1], 0x3c02);
}

static void check_variant(enum kw_simd v)
{
	const struct kw_kernels *rp = kw_kernels_get(KW_SIMD_REF), *op = kw_kernels_get(v);
	struct kw_kernels ref, ops;
	size_t n;

	assert_non_null(rp);
	if (!kw_simd_available(v)) {
		assert_null(op);
		return;
	}
	assert_non_null(op);
	assert_int_equal(op->variant, v);
	ref = *rp;
	ops = *op;
	n_variants_tested++;
	fill_src32();

	ref.f32_to_f16(out16a, src32, N_RAND);
	ops.f32_to_f16(out16b, src32, N_RAND);
	assert_memory_equal(out16a, out16b, N_RAND * 2);
	ref.f32_to_f16_clamp(out16a, src32, N_RAND);
	ops.f32_to_f16_clamp(out16b, src32, N_RAND);
	assert_memory_equal(out16a, out16b, N_RAND * 2);
	ref.f32_to_bf16(out16a, src32, N_RAND);
	ops.f32_to_bf16(out16b, src32, N_RAND);
	assert_memory_equal(out16a, out16b, N_RAND * 2);

	ref.f16_to_f32(out32a, src16, 65536);
	ops.f16_to_f32(out32b, src16, 65536);
	for (size_t i = 0; i < 65536; i++)
		if (memcmp(&out32a[i], &out32b[i], 4))
			fail_msg("%s f16_to_f32(0x%04zx): %08x vs ref %08x", kw_simd_name(v), i,
				 kw_f32_bits(out32b[i]), kw_f32_bits(out32a[i]));
	ref.bf16_to_f32(out32a, src16, 65536);
	ops.bf16_to_f32(out32b, src16, 65536);
	assert_memory_equal(out32a, out32b, 65536 * 4);

	/* every tail length, at an odd offset, with guard values around the output */
	for (n = 0; n < 40; n++) {
		memset(out16a, 0xAB, 128);
		memset(out16b, 0xAB, 128);
		ref.f32_to_f16(out16a + 1, src32 + 3, n);
		ops.f32_to_f16(out16b + 1, src32 + 3, n);
		assert_memory_equal(out16a, out16b, 128);
		ref.f32_to_bf16(out16a + 1, src32 + 5, n);
		ops.f32_to_bf16(out16b + 1, src32 + 5, n);
		assert_memory_equal(out16a, out16b, 128);
		memset(out32a, 0xAB, 256);
		memset(out32b, 0xAB, 256);
		ref.f16_to_f32(out32a + 1, src16 + 0x7bf0, n);
		ops.f16_to_f32(out32b + 1, src16 + 0x7bf0, n);
		assert_memory_equal(out32a, out32b, 256);
		/* the FLOAT16 codec's clamp and the bf16 decode have their own SIMD loops and tails */
		memset(out16a, 0xAB, 128);
		memset(out16b, 0xAB, 128);
		ref.f32_to_f16_clamp(out16a + 1, src32 + 7, n);
		ops.f32_to_f16_clamp(out16b + 1, src32 + 7, n);
		assert_memory_equal(out16a, out16b, 128);
		memset(out32a, 0xAB, 256);
		memset(out32b, 0xAB, 256);
		ref.bf16_to_f32(out32a + 1, src16 + 0x7f70, n);
		ops.bf16_to_f32(out32b + 1, src16 + 0x7f70, n);
		assert_memory_equal(out32a, out32b, 256);
	}
	check_ties(v, &ref, &ops);
}

static void test_convert_avx2_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_AVX2);
}

/* The VNNI and AVX-512 tables reuse the AVX2 conversions; this checks that wiring. */
static void test_convert_avxvnni_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_AVXVNNI);
}

static void test_convert_avx512vnni_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_AVX512VNNI);
}

static void test_convert_avx512_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_AVX512);
}

static void test_convert_neon_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_NEON);
}

/* The dotprod table reuses the NEON conversions. */
static void test_convert_dotprod_matches_reference_bit_for_bit(void **state)
{
	check_variant(KW_SIMD_DOTPROD);
}

/* Runs last: every table this CPU can run was compared (none was skipped by mistake). */
static void test_convert_every_available_variant_was_compared(void **state)
{
	int avail = 0;

	for (int v = KW_SIMD_REF + 1; v < KW_SIMD_COUNT; v++)
		avail += kw_simd_available((enum kw_simd)v);
	assert_int_equal(n_variants_tested, avail);
}

static void test_convert_clamp_keeps_nan_and_saturates(void **state)
{
	const float in[8] = { INFINITY, -INFINITY, 1e6f, -70000.0f, NAN, 65504.0f, 1.0f, -0.0f };
	uint16_t out[8];

	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		if (!kw_simd_available((enum kw_simd)v))
			continue;
		kw_kernels_get((enum kw_simd)v)->f32_to_f16_clamp(out, in, 8);
		assert_int_equal(out[0], 0x7bff);
		assert_int_equal(out[1], 0xfbff);
		assert_int_equal(out[2], 0x7bff);
		assert_int_equal(out[3], 0xfbff);
		assert_int_equal(out[4] & 0x7e00, 0x7e00);
		assert_int_equal(out[5], 0x7bff);
		assert_int_equal(out[6], 0x3c00);
		assert_int_equal(out[7], 0x8000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert_avx2_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_avxvnni_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_avx512vnni_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_avx512_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_neon_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_dotprod_matches_reference_bit_for_bit),
		cmocka_unit_test(test_convert_clamp_keeps_nan_and_saturates),
		cmocka_unit_test(test_convert_every_available_variant_was_compared),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
