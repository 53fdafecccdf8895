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
#define KW_BW_LUT_SIZE 65536  /* buckets: top 16 bits of the monotone float key */

/*
 * Blockwise 8-bit lookup state built from a sorted 256-entry code table.
 *
 * bitsandbytes' CPU quantizer takes y = x / absmax, finds the left index (largest i with
 * code[i] <= y) by binary search and moves right only if |y - code[i+1]| < |y - code[i]|
 * in float. That result is a monotone step function of y, so it is fully described by the
 * 255 smallest floats at which it steps up. kw_bw_table_init() finds those thresholds with
 * the literal algorithm; quantizing is then "how many thresholds are <= y".
 *
 * Fast path: floats are bucketed by the top 16 bits of a monotone integer key. When no
 * bucket holds more than one threshold (true for the default code), fast[k] packs the
 * result for the bucket's lowest value (bits 17..24) and the low 16 key bits of the
 * bucket's threshold (bits 0..16; 0x10000 = none): one load and one compare per element,
 * one 32-bit gather per 8 elements in AVX2. Otherwise every variant falls back to the
 * literal binary search.
 */
struct kw_bw_table {
	float code[256];
	uint32_t fast[KW_BW_LUT_SIZE];
	uint32_t fast_ok;         /* 1: fast[] is exact for every float */
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

/* Monotone 32-bit key of a float's bits (total order on non-NaN values). */
static inline uint32_t kw_bw_key(uint32_t bits)
{
	return bits ^ ((uint32_t)((int32_t)bits >> 31) | 0x80000000u);
}

/* The literal bitsandbytes element rule (binary search, then nearest; ties: lower index). */
static inline uint8_t kw_bw_quant_search(const float *code, float y)
{
	uint32_t lo = 0, hi = 256, idx;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (code[mid] <= y)
			lo = mid + 1;
		else
			hi = mid;
	}
	idx = lo ? lo - 1 : 0;
	if (idx < 255 && __builtin_fabsf(y - code[idx + 1]) < __builtin_fabsf(y - code[idx]))
		idx++;
	return (uint8_t)idx;
}

/*
 * One element of the blockwise quantizer, shared by every variant's scalar tail so all of
 * them agree bit for bit. y is x / absmax (a true IEEE division, as bitsandbytes does).
 */
static inline uint8_t kw_bw_quant_one(const struct kw_bw_table *t, float y)
{
	uint32_t bits, key, e;

	if (!t->fast_ok || y != y)  /* NaN: the search gives 0 (every compare is false) */
		return kw_bw_quant_search(t->code, y);
	__builtin_memcpy(&bits, &y, 4);
	key = kw_bw_key(bits);
	e = t->fast[key >> 16];
	return (uint8_t)((e >> 17) + ((key & 0xffffu) >= (e & 0x1ffffu)));
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
