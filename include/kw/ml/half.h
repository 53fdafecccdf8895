/*
 * Scalar fp16 (IEEE binary16) and bf16 conversions, shared by every kernel and codec so
 * rounding cannot diverge. fp32 -> half rounds to nearest, ties to even; NaN stays NaN
 * (quiet, sign kept) in both directions, +-Inf stays Inf, overflow goes to Inf, fp16
 * subnormals are exact. bf16 -> fp32 is a pure bit shift (a signalling NaN stays one).
 */
#ifndef KW_ML_HALF_H
#define KW_ML_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t kw_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float kw_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float kw_fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;

	if (exp == 0x1f)  /* Inf / NaN: NaN comes out quiet, as F16C and AArch64 FCVT make it */
		return kw_bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
	if (exp == 0) {
		if (man == 0)
			return kw_bits_f32(sign);
		/* subnormal: value = man * 2^-24, exact in fp32 */
		return (sign ? -1.0f : 1.0f) * (float)man * (1.0f / 16777216.0f);
	}
	return kw_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t kw_f32_to_fp16(float f)
{
	uint32_t u = kw_f32_bits(f), sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;

	if (abs >= 0x7f800000u)  /* Inf or NaN (keep a quiet NaN payload bit) */
		return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0));
	if (abs >= 0x477ff000u)  /* rounds to >= 65520: overflow to Inf */
		return (uint16_t)(sign | 0x7c00u);
	if (abs < 0x38800000u) {  /* below the smallest normal 2^-14: subnormal or zero */
		/* Scale so the result's integer part is the subnormal mantissa; the FPU's
		 * default round-to-nearest-even does the rounding. */
		float m = kw_bits_f32(abs) * 16777216.0f;  /* * 2^24 */
		uint32_t r = (uint32_t)__builtin_rintf(m);
		return (uint16_t)(sign | r);
	}
	{
		uint32_t mant_odd = (abs >> 13) & 1u;
		abs += 0xfffu + mant_odd;  /* round to nearest even on the 13 dropped bits */
		return (uint16_t)(sign | ((abs - 0x38000000u) >> 13));
	}
}

static inline float kw_bf16_to_f32(uint16_t b) { return kw_bits_f32((uint32_t)b << 16); }

static inline uint16_t kw_f32_to_bf16(float f)
{
	uint32_t u = kw_f32_bits(f);

	if ((u & 0x7fffffffu) > 0x7f800000u)  /* NaN: keep sign, force quiet */
		return (uint16_t)((u >> 16) | 0x40u);
	u += 0x7fffu + ((u >> 16) & 1u);  /* RNE; overflow to Inf falls out naturally */
	return (uint16_t)(u >> 16);
}

#endif /* KW_ML_HALF_H */
