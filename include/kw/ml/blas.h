/*
 * fp32 linear layers through OpenBLAS (CONFIG_KW_ML_OPENBLAS): y[m][n] = sum_k x[m][k] *
 * W[n][k] (+ bias[n]) with W row-major n x k, the same convention as kw/ml/q8.h, so a layer
 * can be kept in fp32 or quantized without changing its caller. M = 1 uses cblas_sgemv,
 * larger M cblas_sgemm. OpenBLAS runs its own thread pool (openblas_set_num_threads);
 * under qemu-user it must be limited to one thread (OPENBLAS_NUM_THREADS=1).
 */
#ifndef KW_ML_BLAS_H
#define KW_ML_BLAS_H

#include <stddef.h>

/* -KW_EINVAL for NULL pointers, zero sizes, ldx < k, ldw < k or ldy < n (when m > 1),
 * -KW_ERANGE when a size does not fit OpenBLAS's int. */
int kw_f32_linear(const float *x, size_t ldx, size_t m, size_t k, const float *w, size_t ldw,
		  size_t n, const float *bias, float *y, size_t ldy);
/* Threads OpenBLAS may use (process-wide: OpenBLAS keeps this setting globally). */
void kw_blas_set_threads(int n);

#endif /* KW_ML_BLAS_H */
