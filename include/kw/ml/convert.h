/*
 * Array conversions fp32 <-> fp16 (IEEE binary16) and fp32 <-> bf16, with a portable C
 * reference and SIMD variants (x86-64 AVX2+F16C, arm64 NEON) of the same signatures.
 *
 * Every variant gives bit-identical results to the scalar helpers of <kw/ml/half.h>: round to
 * nearest even, NaN stays NaN (quiet, sign and top payload bits kept), +-Inf stays Inf,
 * overflow goes to Inf, fp16 subnormals exact. tests/unit/ml/test_convert.c checks every
 * variant against the reference on all 65536 half patterns and on edge/random fp32 inputs.
 *
 * The variant is chosen once by kw_convert_ops_init() (Kconfig decides what is compiled,
 * the CPU decides what may run); the ops table is caller storage, there is no global state.
 */
#ifndef KW_ML_CONVERT_H
#define KW_ML_CONVERT_H

#include <stddef.h>
#include <stdint.h>

/* SIMD variant selector shared by convert.h and codec.h. */
enum kw_simd {
	KW_SIMD_AUTO = 0,  /* best variant compiled in and supported by this CPU */
	KW_SIMD_REF,       /* portable C reference (always available) */
	KW_SIMD_AVX2,      /* x86-64 AVX2 + FMA + F16C (CONFIG_KW_X86_AVX2) */
	KW_SIMD_NEON,      /* arm64 Advanced SIMD (CONFIG_KW_ARM64_NEON) */
	KW_SIMD_AVX512,    /* x86-64 AVX-512 F/BW/VL/VBMI blockwise encoder, AVX2 for the rest
	                      (CONFIG_KW_X86_AVX512) */
	KW_SIMD_COUNT
};

/* Name of a variant ("ref", "avx2", "neon", "avx512", "auto"); never NULL. */
const char *kw_simd_name(enum kw_simd v);
/* 1 when variant v is compiled in and the running CPU can execute it, else 0. */
int kw_simd_available(enum kw_simd v);
/* Resolves KW_SIMD_AUTO to the variant it picks on this CPU; other values are returned as is. */
enum kw_simd kw_simd_resolve(enum kw_simd v);

/* n elements; src and dst must not overlap. Any n (no alignment or multiple required). */
typedef void (*kw_cvt_f32_to_16_fn)(uint16_t *dst, const float *src, size_t n);
typedef void (*kw_cvt_16_to_f32_fn)(float *dst, const uint16_t *src, size_t n);

struct kw_convert_ops {
	enum kw_simd variant;           /* the variant actually selected */
	kw_cvt_f32_to_16_fn f32_to_f16;
	kw_cvt_16_to_f32_fn f16_to_f32;
	kw_cvt_f32_to_16_fn f32_to_bf16;
	kw_cvt_16_to_f32_fn bf16_to_f32;
	/* fp32 -> fp16 after clamping to +-65504 (Hivemind FLOAT16 / MEANSTD: no Inf from
	 * overflow, Inf becomes +-65504, NaN stays NaN). */
	kw_cvt_f32_to_16_fn f32_to_f16_clamp;
};

/*
 * Fills *ops with variant v (KW_SIMD_AUTO picks the best available). Returns 0, -KW_EINVAL
 * for an unknown v, -KW_ENOTSUP when v is not compiled in or the CPU lacks it.
 */
int kw_convert_ops_init(struct kw_convert_ops *ops, enum kw_simd v);

/* Portable references (also the per-element definition of every variant). */
void kw_cvt_f32_to_f16_ref(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_ref(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_ref(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_ref(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_ref(uint16_t *dst, const float *src, size_t n);

#endif /* KW_ML_CONVERT_H */
