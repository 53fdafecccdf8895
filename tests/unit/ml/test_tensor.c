/* ml/tensor.c: descriptors are bounds-checked against their storage; int8 conversions. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/ml/tensor.h>

static void test_tensor_init_sets_row_major_strides_and_sizes(void **state)
{
	float buf[2 * 3 * 4];
	size_t shape[3] = { 2, 3, 4 };
	struct kw_tensor t;

	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 3, shape, buf, sizeof(buf)), 0);
	assert_int_equal(t.strides[0], 12);
	assert_int_equal(t.strides[1], 4);
	assert_int_equal(t.strides[2], 1);
	assert_int_equal(t.shape[3], 1);
	assert_int_equal(kw_tensor_numel(&t), 24);
	assert_int_equal(kw_tensor_nbytes(&t), 96);
	assert_true(kw_tensor_is_contiguous(&t));
	assert_ptr_equal(kw_tensor_at(&t, (size_t[]){ 1, 2, 3 }), &buf[23]);
	assert_null(kw_tensor_at(&t, (size_t[]){ 2, 0, 0 }));
	assert_null(kw_tensor_at(&t, (size_t[]){ 0, 3, 0 }));
}

static void test_tensor_init_rejects_short_storage(void **state)
{
	uint16_t buf[10];
	size_t shape[2] = { 3, 4 };
	struct kw_tensor t;

	assert_int_equal(kw_tensor_init(&t, KW_DT_BF16, 2, shape, buf, sizeof(buf)), -KW_ENOSPC);
	assert_null(t.data);
	assert_int_equal(kw_tensor_init(&t, KW_DT_I8, 2, shape, buf, 12), 0);
	assert_int_equal(kw_tensor_init(&t, KW_DT_I8, 2, shape, buf, 11), -KW_ENOSPC);
}

static void test_tensor_init_rejects_bad_dtype_rank_and_zero_dims(void **state)
{
	char buf[64];
	size_t shape[5] = { 1, 1, 1, 1, 1 }, zero[2] = { 2, 0 };
	struct kw_tensor t;

	assert_int_equal(kw_tensor_init(&t, KW_DT_COUNT, 1, shape, buf, 64), -KW_EINVAL);
	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 0, shape, buf, 64), -KW_EINVAL);
	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 5, shape, buf, 64), -KW_EINVAL);
	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 2, zero, buf, 64), -KW_EINVAL);
	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 1, shape, NULL, 64), -KW_EINVAL);
	assert_string_equal(kw_dtype_name(KW_DT_BF16), "bf16");
	assert_int_equal(kw_dtype_size(KW_DT_I32), 4);
	assert_int_equal(kw_dtype_size(KW_DT_COUNT), 0);
}

static void test_tensor_init_rejects_size_overflow(void **state)
{
	char buf[8];
	size_t shape[2] = { SIZE_MAX / 2, 4 };
	struct kw_tensor t;

	assert_int_equal(kw_tensor_init(&t, KW_DT_F32, 2, shape, buf, sizeof(buf)), -KW_ERANGE);
}

static void test_tensor_strided_view_checks_last_element(void **state)
{
	float buf[12];
	size_t shape[2] = { 4, 3 }, tr[2] = { 1, 4 }, bad[2] = { 1, 5 };
	struct kw_tensor t;

	/* transpose of a 3x4 matrix: last element at 3 + 2*4 = 11 */
	assert_int_equal(kw_tensor_init_strided(&t, KW_DT_F32, 2, shape, tr, buf, sizeof(buf)), 0);
	assert_false(kw_tensor_is_contiguous(&t));
	assert_ptr_equal(kw_tensor_at(&t, (size_t[]){ 3, 2 }), &buf[11]);
	assert_int_equal(kw_tensor_init_strided(&t, KW_DT_F32, 2, shape, bad, buf, sizeof(buf)),
			 -KW_ENOSPC);
	/* a hand-edited descriptor is re-validated */
	assert_int_equal(kw_tensor_init_strided(&t, KW_DT_F32, 2, shape, tr, buf, sizeof(buf)), 0);
	t.shape[0] = 5;
	assert_int_equal(kw_tensor_validate(&t), -KW_ENOSPC);
}

static void test_tensor_i8_conversion_rounds_half_even_and_saturates(void **state)
{
	float x[8] = { 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.6f, 300.0f, -300.0f };
	int8_t q[8], want[8] = { 0, 2, 2, 0, -2, 127, 127, -127 };
	float back[8];

	assert_int_equal(kw_f32_to_i8(x, q, 8, 1.0f), 0);
	assert_memory_equal(q, want, 8);
	kw_i8_to_f32(q, back, 8, 0.5f);
	assert_true(back[1] == 1.0f);
	assert_true(back[7] == -63.5f);
	assert_int_equal(kw_f32_to_i8(x, q, 8, 0.0f), -KW_EINVAL);
	assert_int_equal(kw_f32_to_i8(x, q, 8, -1.0f), -KW_EINVAL);
	assert_true(kw_i8_scale_for(x, 8) == 300.0f / 127.0f);
	assert_true(kw_i8_scale_for(x, 0) == 1.0f);
}

static void test_tensor_quantize_round_trip_within_half_step(void **state)
{
	float src[3 * 5], back[3 * 5];
	int8_t q[5 * 3];
	size_t shape[2] = { 3, 5 }, tshape[2] = { 3, 5 }, tstr[2] = { 1, 3 };
	struct kw_tensor ts, tq, tb;
	float scale;

	for (int i = 0; i < 15; i++)
		src[i] = (float)(i * 37 % 23) * 0.37f - 4.0f;
	scale = kw_i8_scale_for(src, 15);
	assert_int_equal(kw_tensor_init(&ts, KW_DT_F32, 2, shape, src, sizeof(src)), 0);
	/* quantized copy stored transposed (column-major) to exercise strides */
	assert_int_equal(kw_tensor_init_strided(&tq, KW_DT_I8, 2, tshape, tstr, q, sizeof(q)), 0);
	assert_int_equal(kw_tensor_init(&tb, KW_DT_F32, 2, shape, back, sizeof(back)), 0);
	assert_int_equal(kw_tensor_quantize_i8(&ts, &tq, scale), 0);
	assert_int_equal(kw_tensor_dequantize_i8(&tq, &tb, scale), 0);
	for (int i = 0; i < 15; i++)
		assert_true(fabsf(back[i] - src[i]) <= scale * 0.5001f);
	assert_int_equal(q[1], (int8_t)lrintf(src[5] / scale));   /* element (0,1) at 1*3 */
	/* dtype and shape mismatches are refused */
	assert_int_equal(kw_tensor_quantize_i8(&tq, &tb, scale), -KW_EINVAL);
	tb.shape[1] = 4;
	assert_int_equal(kw_tensor_dequantize_i8(&tq, &tb, scale), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tensor_init_sets_row_major_strides_and_sizes),
		cmocka_unit_test(test_tensor_init_rejects_short_storage),
		cmocka_unit_test(test_tensor_init_rejects_bad_dtype_rank_and_zero_dims),
		cmocka_unit_test(test_tensor_init_rejects_size_overflow),
		cmocka_unit_test(test_tensor_strided_view_checks_last_element),
		cmocka_unit_test(test_tensor_i8_conversion_rounds_half_even_and_saturates),
		cmocka_unit_test(test_tensor_quantize_round_trip_within_half_step),
	};
	return cmocka_run_group_tests_name("ml/tensor", tests, NULL, NULL);
}
