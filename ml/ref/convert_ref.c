/*
 * Portable C reference of the fp32 <-> fp16 / bf16 array conversions: the scalar helpers of
 * <kw/ml/half.h> applied element by element, the per-element definition every SIMD
 * variant reproduces.
 */
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>

void kw_cvt_f32_to_f16_ref(uint16_t *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = kw_f32_to_fp16(src[i]);
}

void kw_cvt_f16_to_f32_ref(float *dst, const uint16_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = kw_fp16_to_f32(src[i]);
}

void kw_cvt_f32_to_bf16_ref(uint16_t *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = kw_f32_to_bf16(src[i]);
}

void kw_cvt_bf16_to_f32_ref(float *dst, const uint16_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = kw_bf16_to_f32(src[i]);
}

void kw_cvt_f32_to_f16_clamp_ref(uint16_t *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float v = src[i];

		/* NaN fails both tests and stays NaN (torch.clamp keeps NaN). */
		if (v > 65504.0f)
			v = 65504.0f;
		else if (v < -65504.0f)
			v = -65504.0f;
		dst[i] = kw_f32_to_fp16(v);
	}
}
