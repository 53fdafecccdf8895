/*
 * Hot-path kernels behind <kw/ml/codec.h> and <kw/ml/convert.h>: the portable C reference
 * (ml/compress/) and the SIMD variants (arch/x86_64/avx2/codec_avx2.c, arch/arm64/neon/
 * codec_neon.c) share these signatures. Only ml/compress/ and arch/ include this header.
 */
#ifndef KW_ML_CODEC_KERNELS_H
#define KW_ML_CODEC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define KW_BW_BLOCK 4096  /* bitsandbytes blockwise block size used by Hivemind */
#define KW_BW_LUT_SIZE 65536

/*
 * Blockwise 8-bit lookup state built from a sorted 256-entry code table.
 * lut[k] is the "left" index (largest i with code[i] <= y) of the smallest float whose
 * monotone key has top 16 bits k; `steps` more comparisons against code[idx+1] reach the
 * exact left index of any y in that bucket, and one distance comparison picks the nearest
 * (ties to the lower index), exactly as bitsandbytes' CPU quantizer does.
 */
struct kw_bw_table {
	float code[256];
	float code_next[256];     /* code[i+1]; code_next[255] is NaN so no compare can pick it */
	uint8_t lut[KW_BW_LUT_SIZE + 4];  /* +4: 32-bit gathers of the last entry stay in bounds */
	uint32_t steps;
	uint8_t zero_index;       /* code used for all-zero blocks: smallest |code|, lower index */
};

/* Quantize n floats (any n): absmax[ceil(n/4096)], q[n]. */
typedef void (*kw_bw_quant_fn)(const struct kw_bw_table *t, const float *x, size_t n,
			       float *absmax, uint8_t *q);
/* Dequantize: out[i] = code[q[i]] * absmax[i / 4096]. */
typedef void (*kw_bw_dequant_fn)(const float *code, const uint8_t *q, const float *absmax,
				 size_t n, float *out);

void kw_bw_quant_ref(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		     uint8_t *q);
void kw_bw_dequant_ref(const float *code, const uint8_t *q, const float *absmax, size_t n,
		       float *out);

/* Monotone 16-bit bucket key of a float (total order on non-NaN values). */
static inline uint32_t kw_bw_key(uint32_t bits)
{
	uint32_t m = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
	return m >> 16;
}

/*
 * One element of the blockwise quantizer, shared by every variant's scalar tail so all of
 * them agree bit for bit. y is x / absmax (a true IEEE division, as bitsandbytes does).
 */
static inline uint8_t kw_bw_quant_one(const struct kw_bw_table *t, float y)
{
	uint32_t bits;
	uint32_t idx, s;

	__builtin_memcpy(&bits, &y, 4);
	idx = t->lut[kw_bw_key(bits)];
	for (s = 0; s < t->steps; s++)
		idx += t->code_next[idx] <= y;
	{
		float dl = __builtin_fabsf(y - t->code[idx]);
		float dr = __builtin_fabsf(y - t->code_next[idx]);

		idx += dr < dl;
	}
	return (uint8_t)idx;
}

#if defined(CONFIG_KW_X86_AVX2)
void kw_bw_quant_avx2(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q);
void kw_bw_dequant_avx2(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out);
void kw_cvt_f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_avx2(uint16_t *dst, const float *src, size_t n);
#endif
#if defined(CONFIG_KW_ARM64_NEON)
void kw_bw_quant_neon(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q);
void kw_bw_dequant_neon(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out);
void kw_cvt_f32_to_f16_neon(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_neon(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_neon(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_neon(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_neon(uint16_t *dst, const float *src, size_t n);
#endif

#endif /* KW_ML_CODEC_KERNELS_H */
