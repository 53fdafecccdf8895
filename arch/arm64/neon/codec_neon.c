/*
 * arm64 Advanced SIMD variants of the blockwise codec and conversion kernels (<kw/ml/kernels.h>), bit-equal to
 * the C reference: FCVTN/FCVTL for fp16 (FPCR default round-to-nearest-even, no flush to
 * zero under Linux), integer RNE for bf16. The blockwise encoder runs the decade model proven
 * at table init (<kw/ml/blockwise.h>); unsure groups take the exact rule (IEEE division,
 * scalar code-table reads on vector-computed keys: NEON has no gather).
 */
#include <arm_neon.h>
#include <string.h>

#include <kw/ml/blockwise.h>
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>

#include "../kernels_arm64.h"

/* The exact rule for 8 elements: IEEE division, keys in vectors, scalar table reads. */
static void bw_exact8(const struct kw_bw_table *t, const float *x, float32x4_t mv, uint8_t *q)
{
	const uint32x4_t top = vdupq_n_u32(0x80000000u);
	uint32_t k[8];

	/* NaN -> key 0, whose bucket answers 0 like the search */
	for (int h = 0; h < 2; h++) {
		float32x4_t y = vdivq_f32(vld1q_f32(x + 4 * h), mv);
		uint32x4_t bits = vreinterpretq_u32_f32(y);
		uint32x4_t sgn = vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_u32(bits), 31));
		uint32x4_t key = veorq_u32(bits, vorrq_u32(sgn, top));

		vst1q_u32(k + 4 * h, vandq_u32(key, vceqq_f32(y, y)));
	}
	for (int j = 0; j < 8; j++) {
		uint32_t e = t->fast[k[j] >> 16];
		q[j] = (uint8_t)((e >> 17) + ((k[j] & 0xffffu) >= (e & 0x1ffffu)));
	}
}

/* Registers of the decade model (struct kw_bw_model). */
struct bw_model4 {
	float32x4_t r, beta, fbias;
	uint8x16x2_t alpha;       /* alpha[8] as bytes for tbl */
	uint32x4_t cell_k, cell_c;
};

/*
 * kw_bw_model_bits() + win for 4 lanes (see the AVX2 variant): returns F's bits; *wmin and
 * *amax collect the low 15 bits and |q| for one check per 16 elements.
 */
static inline uint32x4_t bw_model4(const struct bw_model4 *m, float32x4_t x, uint32x4_t *wmin,
				   float32x4_t *amax)
{
	float32x4_t q = vmulq_f32(x, m->r), a = vabsq_f32(q);
	uint32x4_t ab = vreinterpretq_u32_f32(a);
	uint32x4_t c = vqsubq_u32(vshrq_n_u32(vmulq_u32(vshrq_n_u32(ab, 16), m->cell_k), 16), m->cell_c);
	uint32x4_t ce = vshlq_n_u32(c, 23);
	/* byte indices 4c .. 4c+3 of the 8-float table (c & 7, like a low-3-bit permute) */
	uint32x4_t bi = vmlaq_u32(vdupq_n_u32(0x03020100u), vshlq_n_u32(vandq_u32(c, vdupq_n_u32(7)), 2),
				  vdupq_n_u32(0x01010101u));
	float32x4_t al = vreinterpretq_f32_u8(vqtbl2q_u8(m->alpha, vreinterpretq_u8_u32(bi)));
	float32x4_t k = vfmaq_f32(m->beta, a, al), g, base;
	uint32x4_t fb;

	k = vreinterpretq_f32_u32(vaddq_u32(vreinterpretq_u32_f32(k), ce));
	g = vminq_f32(vsubq_f32(k, vdupq_n_f32(1.0f)), vmulq_f32(k, vdupq_n_f32(0.2f)));
	g = vminq_f32(k, vmaxq_f32(g, vdupq_n_f32(-0.5f)));
	base = vreinterpretq_f32_u32(vaddq_u32(ce, vdupq_n_u32(0x3f800000u)));
	g = vaddq_f32(g, vsubq_f32(base, vdupq_n_f32(0.5f)));
	g = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(g),
					    vandq_u32(vreinterpretq_u32_f32(q), vdupq_n_u32(0x80000000u))));
	fb = vreinterpretq_u32_f32(vaddq_f32(g, m->fbias));
	*amax = vmaxq_f32(*amax, a);
	*wmin = vminq_u32(*wmin, vandq_u32(fb, vdupq_n_u32(0x7fff)));
	return vshrq_n_u32(fb, 15);  /* 0x8700 + index: the narrowing keeps the index byte */
}

/*
 * Per block: absmax as the integer max of |x| bits with NaN masked out; blocks without
 * NaN/Inf whose absmax is in the model's range run the decade model 16 elements at a time,
 * and any group with an unsure lane goes through the exact rule (see the AVX2 variant).
 */
void kw_bw_quant_neon(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q)
{
	const struct kw_bw_model *md = &t->model;
	struct bw_model4 m;
	size_t b, i;

	m.beta = vdupq_n_f32(md->beta);
	m.fbias = vdupq_n_f32(383.5f + (float)md->win * 0x1p-15f);
	m.alpha.val[0] = vreinterpretq_u8_f32(vld1q_f32(md->alpha));
	m.alpha.val[1] = vreinterpretq_u8_f32(vld1q_f32(md->alpha + 4));
	m.cell_k = vdupq_n_u32(md->cell_k);
	m.cell_c = vdupq_n_u32(md->cell_c);
	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		uint32x4_t mu = vdupq_n_u32(0), mu2 = vdupq_n_u32(0), nf = vdupq_n_u32(0);
		float m_;

		/* |x| as integers orders like floats; NaN patterns are masked out so they never
		 * win, and nf notes any NaN or Inf (the model then stays off for this block) */
		for (i = b; i + 8 <= end; i += 8) {
			float32x4_t a = vabsq_f32(vld1q_f32(x + i)), c = vabsq_f32(vld1q_f32(x + i + 4));
			uint32x4_t ua = vandq_u32(vreinterpretq_u32_f32(a), vceqq_f32(a, a));
			uint32x4_t uc = vandq_u32(vreinterpretq_u32_f32(c), vceqq_f32(c, c));
			nf = vmaxq_u32(nf, vmaxq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(c)));
			mu = vmaxq_u32(mu, ua);
			mu2 = vmaxq_u32(mu2, uc);
		}
		{
			uint32_t mb = vmaxvq_u32(vmaxq_u32(mu, mu2));
			memcpy(&m_, &mb, 4);
		}
		for (; i < end; i++) {
			float a = __builtin_fabsf(x[i]);
			m_ = a > m_ ? a : m_;
		}
		absmax[b / KW_BW_BLOCK] = m_;
		if (m_ == 0.0f) {
			memset(q + b, t->zero_index, end - b);
			continue;
		}
		if (!t->fast_ok) {
			kw_bw_quant_ref(t, x + b, end - b, absmax + b / KW_BW_BLOCK, q + b);
			continue;
		}
		{
			const float32x4_t mv = vdupq_n_f32(m_);

			i = b;
			/* the vector part saw no NaN/Inf; the scalar tail is exact anyway */
			if (md->ok && vmaxvq_u32(nf) < 0x7f800000u && kw_bw_model_block_ok(m_)) {
				const uint32x4_t win2 = vdupq_n_u32(2 * md->win);
				const float32x4_t cut = vdupq_n_f32(md->cut);

				m.r = vdupq_n_f32(1.0f / m_);
				for (; i + 16 <= end; i += 16) {
					uint32x4_t wmin = vdupq_n_u32(0x7fff);
					float32x4_t amax = vdupq_n_f32(0.0f);
					uint32x4_t f0 = bw_model4(&m, vld1q_f32(x + i), &wmin, &amax);
					uint32x4_t f1 = bw_model4(&m, vld1q_f32(x + i + 4), &wmin, &amax);
					uint32x4_t f2 = bw_model4(&m, vld1q_f32(x + i + 8), &wmin, &amax);
					uint32x4_t f3 = bw_model4(&m, vld1q_f32(x + i + 12), &wmin, &amax);
					uint32x4_t bad = vorrq_u32(vcltq_u32(wmin, win2), vcgeq_f32(amax, cut));

					if (__builtin_expect(vmaxvq_u32(bad) != 0, 0)) {
						bw_exact8(t, x + i, mv, q + i);
						bw_exact8(t, x + i + 8, mv, q + i + 8);
						continue;
					}
					vst1q_u8(q + i, vcombine_u8(vmovn_u16(vcombine_u16(vmovn_u32(f0), vmovn_u32(f1))),
								    vmovn_u16(vcombine_u16(vmovn_u32(f2), vmovn_u32(f3)))));
				}
			}
			for (; i + 8 <= end; i += 8)
				bw_exact8(t, x + i, mv, q + i);
			for (; i < end; i++)
				q[i] = kw_bw_quant_one(t, x[i] / m_);
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
