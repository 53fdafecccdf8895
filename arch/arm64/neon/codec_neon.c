/*
 * arm64 Advanced SIMD variants of the codec kernels (<kw/ml/codec_kernels.h>), bit-equal to
 * the C reference: FCVTN/FCVTL for fp16 (FPCR default round-to-nearest-even, no flush to
 * zero under Linux), integer RNE for bf16, IEEE division for blockwise. NEON has no gather,
 * so the code-table walk of the quantizer is scalar on vector-computed keys.
 */
#include <arm_neon.h>
#include <string.h>

#include <kw/ml/codec_kernels.h>
#include <kw/ml/convert.h>
#include <kw/ml/half.h>

void kw_bw_quant_neon(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q)
{
	size_t b, i;

	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		uint32x4_t mu = vdupq_n_u32(0), mu2 = vdupq_n_u32(0);
		float m;

		/* |x| as integers orders like floats; NaN patterns are masked out so they never win. */
		for (i = b; i + 8 <= end; i += 8) {
			float32x4_t a = vabsq_f32(vld1q_f32(x + i)), c = vabsq_f32(vld1q_f32(x + i + 4));
			uint32x4_t ua = vandq_u32(vreinterpretq_u32_f32(a), vceqq_f32(a, a));
			uint32x4_t uc = vandq_u32(vreinterpretq_u32_f32(c), vceqq_f32(c, c));
			mu = vmaxq_u32(mu, ua);
			mu2 = vmaxq_u32(mu2, uc);
		}
		{
			uint32_t mb = vmaxvq_u32(vmaxq_u32(mu, mu2));
			memcpy(&m, &mb, 4);
		}
		for (; i < end; i++) {
			float a = __builtin_fabsf(x[i]);
			m = a > m ? a : m;
		}
		absmax[b / KW_BW_BLOCK] = m;
		if (m == 0.0f) {
			memset(q + b, t->zero_index, end - b);
			continue;
		}
		if (!t->fast_ok) {
			kw_bw_quant_ref(t, x + b, end - b, absmax + b / KW_BW_BLOCK, q + b);
			continue;
		}
		{
			const float32x4_t mv = vdupq_n_f32(m);
			const uint32x4_t top = vdupq_n_u32(0x80000000u);

			/* keys in vectors (NaN -> key 0, whose bucket answers 0 like the search);
			 * NEON has no gather, so the table reads are scalar */
			for (i = b; i + 8 <= end; i += 8) {
				uint32_t k[8];

				for (int h = 0; h < 2; h++) {
					float32x4_t y = vdivq_f32(vld1q_f32(x + i + 4 * h), mv);
					uint32x4_t bits = vreinterpretq_u32_f32(y);
					uint32x4_t sgn = vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_u32(bits), 31));
					uint32x4_t key = veorq_u32(bits, vorrq_u32(sgn, top));

					vst1q_u32(k + 4 * h, vandq_u32(key, vceqq_f32(y, y)));
				}
				for (int j = 0; j < 8; j++) {
					uint32_t e = t->fast[k[j] >> 16];
					q[i + j] = (uint8_t)((e >> 17) + ((k[j] & 0xffffu) >= (e & 0x1ffffu)));
				}
			}
			for (; i < end; i++)
				q[i] = kw_bw_quant_one(t, x[i] / m);
		}
	}
}

void kw_bw_dequant_neon(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out)
{
	float st[256] __attribute__((aligned(16)));
	size_t b, i;

	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		const float32x4_t av = vdupq_n_f32(absmax[b / KW_BW_BLOCK]);

		for (i = 0; i < 256; i += 4)
			vst1q_f32(st + i, vmulq_f32(vld1q_f32(code + i), av));
		for (i = b; i + 8 <= end; i += 8) {
			float32x4_t v0 = vdupq_n_f32(0), v1 = vdupq_n_f32(0);

			v0 = vld1q_lane_f32(st + q[i + 0], v0, 0);
			v0 = vld1q_lane_f32(st + q[i + 1], v0, 1);
			v0 = vld1q_lane_f32(st + q[i + 2], v0, 2);
			v0 = vld1q_lane_f32(st + q[i + 3], v0, 3);
			v1 = vld1q_lane_f32(st + q[i + 4], v1, 0);
			v1 = vld1q_lane_f32(st + q[i + 5], v1, 1);
			v1 = vld1q_lane_f32(st + q[i + 6], v1, 2);
			v1 = vld1q_lane_f32(st + q[i + 7], v1, 3);
			vst1q_f32(out + i, v0);
			vst1q_f32(out + i + 4, v1);
		}
		for (; i < end; i++)
			out[i] = st[q[i]];
	}
}

void kw_cvt_f32_to_f16_neon(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(src + i)), vld1q_f32(src + i + 4));
		vst1q_u16(dst + i, vreinterpretq_u16_f16(h));
	}
	for (; i < n; i++)
		dst[i] = kw_f32_to_fp16(src[i]);
}

void kw_cvt_f32_to_f16_clamp_neon(uint16_t *dst, const float *src, size_t n)
{
	const float32x4_t hi = vdupq_n_f32(65504.0f), lo = vdupq_n_f32(-65504.0f);
	size_t i = 0;

	/* FMAX/FMIN propagate NaN, so NaN stays NaN as in the reference. */
	for (; i + 8 <= n; i += 8) {
		float32x4_t a = vminq_f32(hi, vmaxq_f32(lo, vld1q_f32(src + i)));
		float32x4_t b = vminq_f32(hi, vmaxq_f32(lo, vld1q_f32(src + i + 4)));
		vst1q_u16(dst + i, vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(a), b)));
	}
	kw_cvt_f32_to_f16_clamp_ref(dst + i, src + i, n - i);
}

void kw_cvt_f16_to_f32_neon(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src + i));
		vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
		vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
	}
	for (; i < n; i++)
		dst[i] = kw_fp16_to_f32(src[i]);
}

static inline uint16x4_t bf16_4(float32x4_t v)
{
	uint32x4_t u = vreinterpretq_u32_f32(v);
	uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
	uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
	uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
	uint32x4_t qn = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
	return vmovn_u32(vbslq_u32(nan, qn, r));
}

void kw_cvt_f32_to_bf16_neon(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		vst1q_u16(dst + i, vcombine_u16(bf16_4(vld1q_f32(src + i)), bf16_4(vld1q_f32(src + i + 4))));
	for (; i < n; i++)
		dst[i] = kw_f32_to_bf16(src[i]);
}

void kw_cvt_bf16_to_f32_neon(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint16x8_t a = vld1q_u16(src + i);
		vst1q_u32((uint32_t *)(void *)(dst + i), vshll_n_u16(vget_low_u16(a), 16));
		vst1q_u32((uint32_t *)(void *)(dst + i + 4), vshll_high_n_u16(a, 16));
	}
	for (; i < n; i++)
		dst[i] = kw_bf16_to_f32(src[i]);
}
