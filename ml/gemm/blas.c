/* fp32 linear layer on OpenBLAS; see kw/ml/blas.h. */
#include <limits.h>
#include <string.h>

#include <cblas.h>

#include <kw/err.h>
#include <kw/ml/blas.h>

int kw_f32_linear(const float *x, size_t ldx, size_t m, size_t k, const float *w, size_t ldw,
		  size_t n, const float *bias, float *y, size_t ldy)
{
	float beta = bias ? 1.0f : 0.0f;

	if (!x || !w || !y || m == 0 || k == 0 || n == 0 || ldx < k || ldw < k ||
	    (m > 1 && ldy < n))
		return -KW_EINVAL;
	if (m > INT_MAX || n > INT_MAX || k > INT_MAX || ldx > INT_MAX || ldw > INT_MAX ||
	    ldy > INT_MAX)
		return -KW_ERANGE;
	if (bias)
		for (size_t i = 0; i < m; i++)
			memcpy(y + i * ldy, bias, n * sizeof(float));
	if (m == 1)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0f, w, (int)ldw, x, 1,
			    beta, y, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f,
			    x, (int)ldx, w, (int)ldw, beta, y, (int)ldy);
	return 0;
}

void kw_blas_set_threads(int n)
{
	openblas_set_num_threads(n > 0 ? n : 1);
}
