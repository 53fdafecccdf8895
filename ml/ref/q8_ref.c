/*
 * Portable C int8 kernels (<kw/ml/q8.h>): the specification every SIMD variant must match
 * bit for bit. Compiled with -ffp-contract=off (ml/ref/Makefile) so no multiply-add is fused.
 */
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>
#include <kw/ml/q8.h>

/* Round half to even for |v| <= 128: 1.5 * 2^23 leaves no fraction bits. */
static inline float q8_rne(float v)
{
	return (v + 12582912.0f) - 12582912.0f;
}

void kw_q8_quantize_ref(const float *x, size_t k, int8_t *q, float *d, int32_t *s)
{
	size_t nb = (k + KW_Q8_BLOCK - 1) / KW_Q8_BLOCK;

	for (size_t b = 0; b < nb; b++) {
		const float *xb = x + b * KW_Q8_BLOCK;
		size_t len = k - b * KW_Q8_BLOCK < KW_Q8_BLOCK ? k - b * KW_Q8_BLOCK : KW_Q8_BLOCK;
		float amax = 0.0f, id;
		int32_t sum = 0;

		for (size_t i = 0; i < len; i++) {
			float a = xb[i] < 0.0f ? -xb[i] : xb[i];

			amax = a > amax ? a : amax;
		}
		d[b] = amax / 127.0f;
		id = amax > 0.0f ? 127.0f / amax : 0.0f;
		for (size_t i = 0; i < KW_Q8_BLOCK; i++) {
			float v = i < len ? xb[i] * id : 0.0f;
			int32_t r;

			v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
			r = (int32_t)q8_rne(v);
			q[b * KW_Q8_BLOCK + i] = (int8_t)r;
			sum += r;
		}
		s[b] = sum;
	}
}

void kw_q8_gemm_ref(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
		    const float *bias, float *y, size_t ldy)
{
	size_t nb = w->nb;

	for (size_t g = g0; g < g1; g++) {
		for (size_t r = 0; r < KW_Q8_ROWS; r++) {
			size_t n = g * KW_Q8_ROWS + r;

			if (n >= w->n)
				break;
			for (size_t m = 0; m < a->m; m++) {
				const int8_t *xq = a->q + m * nb * KW_Q8_BLOCK;
				float acc = 0.0f;

				for (size_t b = 0; b < nb; b++) {
					const int8_t *wq = w->q + kw_q8w_qoff(nb, g, b);
					int32_t isum = 0;
					float scale;

					for (size_t c = 0; c < KW_Q8_BLOCK / 4; c++)
						for (size_t j = 0; j < 4; j++)
							isum += (int32_t)wq[c * 64 + r * 4 + j] *
								(int32_t)xq[b * KW_Q8_BLOCK + c * 4 + j];
					scale = kw_fp16_to_f32(w->d[kw_q8w_doff(nb, g, b) + r]) *
						a->d[m * nb + b];
					acc = acc + (float)isum * scale;
				}
				y[m * ldy + n] = bias ? acc + bias[n] : acc;
			}
		}
	}
}
