/* Top-K sparsification with error feedback (ml/compress/topk.c). */
#include "harness.h"

#include <math.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>

#define N 1000

static uint64_t scratch[N];
static uint8_t out[8 + 8 * N + 8];
static float resid[N], dec[N], x[N];

static uint32_t rng_state = 4242;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}
static float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

static void test_topk_keeps_exactly_k_largest_magnitudes(void **state)
{
	size_t len;
	uint32_t k = 37;

	for (int i = 0; i < N; i++)
		x[i] = frand();
	memset(resid, 0, sizeof(resid));
	assert_int_equal(kw_topk_encode(x, resid, N, k, scratch, sizeof(scratch), out, sizeof(out), &len), 0);
	assert_int_equal(len, 8 + 8 * k);
	assert_int_equal(kw_get_le32(out), N);
	assert_int_equal(kw_get_le32(out + 4), k);
	assert_int_equal(kw_topk_decode(out, len, N, dec), 0);
	{
		float kept_min = INFINITY, dropped_max = 0.0f;
		int kept = 0;

		for (int i = 0; i < N; i++) {
			if (dec[i] != 0.0f) {
				kept++;
				assert_true(dec[i] == x[i]);
				assert_true(resid[i] == 0.0f);
				kept_min = fminf(kept_min, fabsf(x[i]));
			} else {
				assert_true(resid[i] == x[i]);
				dropped_max = fmaxf(dropped_max, fabsf(x[i]));
			}
		}
		assert_int_equal(kept, k);
		assert_true(kept_min >= dropped_max);
	}
}

static void test_topk_ties_keep_lower_indices(void **state)
{
	float v[10] = { 1, -3, 3, 0, 3, -3, 2, 3, 0, 1 };
	size_t len;

	memset(resid, 0, sizeof(resid));
	/* |3| appears at 1, 2, 4, 5, 7: k = 3 keeps 1, 2, 4 */
	assert_int_equal(kw_topk_encode(v, resid, 10, 3, scratch, sizeof(scratch), out, sizeof(out), &len), 0);
	assert_int_equal(kw_get_le32(out + 8), 1);
	assert_int_equal(kw_get_le32(out + 12), 2);
	assert_int_equal(kw_get_le32(out + 16), 4);
	assert_true(kw_bits_f32(kw_get_le32(out + 20)) == -3.0f);
	/* all equal: the first k win */
	for (int i = 0; i < 10; i++)
		v[i] = 0.5f;
	memset(resid, 0, sizeof(resid));
	assert_int_equal(kw_topk_encode(v, resid, 10, 4, scratch, sizeof(scratch), out, sizeof(out), &len), 0);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(kw_get_le32(out + 8 + 4 * i), i);
}

static void test_topk_error_feedback_converges_to_dense_sum(void **state)
{
	static double dense[N], sparse[N];
	size_t len;
	const int rounds = 200;

	memset(resid, 0, sizeof(resid));
	memset(dense, 0, sizeof(dense));
	memset(sparse, 0, sizeof(sparse));
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < N; i++) {
			x[i] = frand() * (i % 10 == 0 ? 5.0f : 1.0f);
			dense[i] += x[i];
		}
		assert_int_equal(kw_topk_encode(x, resid, N, N / 20, scratch, sizeof(scratch), out,
						sizeof(out), &len), 0);
		assert_int_equal(kw_topk_decode(out, len, N, dec), 0);
		for (int i = 0; i < N; i++)
			sparse[i] += dec[i];
	}
	/* nothing is lost: sent + residual == dense sum (float rounding only) */
	for (int i = 0; i < N; i++)
		assert_true(fabs(sparse[i] + resid[i] - dense[i]) < 1e-3);
	/* and the residual stays bounded, so the averages converge: |sum/rounds| error -> 0 */
	{
		double worst = 0;
		for (int i = 0; i < N; i++)
			worst = fmax(worst, fabs(sparse[i] - dense[i]) / rounds);
		assert_true(worst < 0.1);
	}
	/* without feedback (fresh residual each round) the small entries would never be sent */
}

static void test_topk_decoder_rejects_malformed(void **state)
{
	size_t len;

	for (int i = 0; i < 10; i++)
		x[i] = (float)i;
	memset(resid, 0, sizeof(resid));
	assert_int_equal(kw_topk_encode(x, resid, 10, 3, scratch, sizeof(scratch), out, sizeof(out), &len), 0);
	assert_int_equal(kw_topk_decode(out, len, 10, dec), 0);
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(kw_topk_decode(out, cut, 10, dec), -KW_EBADMSG);
	assert_int_equal(kw_topk_decode(out, len + 1, 10, dec), -KW_EMSGSIZE);
	assert_int_equal(kw_topk_decode(out, len, 11, dec), -KW_EBADMSG);  /* numel mismatch */
	kw_put_le32(out + 12, kw_get_le32(out + 8));  /* repeated index */
	assert_int_equal(kw_topk_decode(out, len, 10, dec), -KW_EBADMSG);
	kw_put_le32(out + 12, 10);  /* out of range */
	assert_int_equal(kw_topk_decode(out, len, 10, dec), -KW_EBADMSG);
	kw_put_le32(out + 4, 11);  /* k > numel */
	assert_int_equal(kw_topk_decode(out, 8 + 88, 10, dec), -KW_EBADMSG);
	kw_put_le32(out + 4, 0xffffffffu);  /* k overflow */
	assert_int_equal(kw_topk_decode(out, len, 10, dec), -KW_EBADMSG);
}

static void test_topk_encoder_checks_sizes(void **state)
{
	size_t len;

	assert_int_equal(kw_topk_encode(x, resid, 10, 11, scratch, sizeof(scratch), out, sizeof(out), &len),
			 -KW_EINVAL);
	assert_int_equal(kw_topk_encode(x, resid, 10, 3, scratch, sizeof(scratch), out, 31, &len), -KW_ENOSPC);
	assert_int_equal(kw_topk_encode(x, resid, 10, 3, scratch, 79, out, sizeof(out), &len), -KW_ENOSPC);
	assert_int_equal(kw_topk_encode(x, resid, 10, 0, NULL, 0, out, sizeof(out), &len), 0);
	assert_int_equal(len, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topk_keeps_exactly_k_largest_magnitudes),
		cmocka_unit_test(test_topk_ties_keep_lower_indices),
		cmocka_unit_test(test_topk_error_feedback_converges_to_dense_sum),
		cmocka_unit_test(test_topk_decoder_rejects_malformed),
		cmocka_unit_test(test_topk_encoder_checks_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
