/*
 * The arm64 kernels that kernels_arm64.c puts into the tables of <kw/ml/kernels.h>. Private
 * to arch/arm64/; same signatures and results as ml/ref/. The dotprod ones may only run
 * after ml/kernels.c has seen HWCAP_ASIMDDP (KW_CPU_ARM64_ASIMDDP).
 */
#ifndef KW_ARCH_ARM64_KERNELS_ARM64_H
#define KW_ARCH_ARM64_KERNELS_ARM64_H

#include <stddef.h>
#include <stdint.h>

struct kw_q8w;
struct kw_q8_act;
struct kw_bw_table;

/* neon/q8_neon.c, dotprod/q8_dotprod.c (one body, q8_arm.inc) */
void kw_q8_quantize_neon(const float *x, size_t k, int8_t *q, float *d, int32_t *s);
void kw_q8_gemm_neon(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
		     const float *bias, float *y, size_t ldy);
void kw_q8_quantize_dotprod(const float *x, size_t k, int8_t *q, float *d, int32_t *s);
void kw_q8_gemm_dotprod(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
			const float *bias, float *y, size_t ldy);

/* neon/codec_neon.c */
void kw_bw_quant_neon(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q);
void kw_bw_dequant_neon(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out);
void kw_cvt_f32_to_f16_neon(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_neon(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_neon(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_neon(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_neon(uint16_t *dst, const float *src, size_t n);

#endif /* KW_ARCH_ARM64_KERNELS_ARM64_H */
