/* ml/gemm/blas.c: the OpenBLAS fp32 linear layer equals naive double math within fp32 rounding. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/ml/blas.h>

static void check_linear(size_t m, size_t n, size_t k, int with_bias)
{
	float *x = malloc(m * k * 4), *w = malloc(n * k * 4), *b = malloc(n * 4), *y = malloc(m * n * 4);
	uint64_t s = m * 1000003 + n * 101 + k;

	for (size_t i = 0; i < m * k; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
	}
	for (size_t i = 0; i < n * k; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		w[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
	}
	for (size_t i = 0; i < n; i++)
		b[i] = (float)i * 0.25f - 3.0f;
	assert_int_equal(kw_f32_linear(x, k, m, k, w, k, n, with_bias ? b : NULL, y, n), 0);
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double ref = with_bias ? b[j] : 0.0, mag = fabs(ref);

			for (size_t c = 0; c < k; c++) {
				ref += (double)x[i * k + c] * w[j * k + c];
				mag += fabs((double)x[i * k + c] * w[j * k + c]);
			}
			/* fp32 summation of k terms: error <= k * 2^-24 * sum|terms| (loose) */
			assert_true(fabs(y[i * n + j] - ref) <= mag * (double)k * 6e-8 + 1e-6);
		}
	free(x); free(w); free(b); free(y);
}

static void test_blas_gemv_matches_naive(void **state)
{
	check_linear(1, 17, 100, 0);
	check_linear(1, 33, 4096, 1);
}

static void test_blas_gemm_matches_naive(void **state)
{
	check_linear(3, 17, 70, 1);
	check_linear(17, 5, 33, 0);
}

static void test_blas_rejects_bad_arguments(void **state)
{
	float x[4] = { 0 }, w[4] = { 0 }, y[4];

	assert_int_equal(kw_f32_linear(NULL, 2, 1, 2, w, 2, 2, NULL, y, 2), -KW_EINVAL);
	assert_int_equal(kw_f32_linear(x, 1, 1, 2, w, 2, 2, NULL, y, 2), -KW_EINVAL);
	assert_int_equal(kw_f32_linear(x, 2, 2, 2, w, 2, 2, NULL, y, 1), -KW_EINVAL);
	assert_int_equal(kw_f32_linear(x, 2, 1, 0, w, 2, 2, NULL, y, 2), -KW_EINVAL);
	assert_int_equal(kw_f32_linear(x, (size_t)1 << 33, 1, 2, w, 2, 2, NULL, y, 2), -KW_ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blas_gemv_matches_naive),
		cmocka_unit_test(test_blas_gemm_matches_naive),
		cmocka_unit_test(test_blas_rejects_bad_arguments),
	};
	return cmocka_run_group_tests_name("ml/blas", tests, NULL, NULL);
}
