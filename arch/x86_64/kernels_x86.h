/*
 * The x86-64 kernels that kernels_x86.c puts into the tables of <kw/ml/kernels.h>. Private
 * to arch/x86_64/: each is compiled with its own ISA flags (Makefile) and may only run after
 * ml/kernels.c has checked its table's cpu_needs. Same signatures and results as ml/ref/.
 */
#ifndef KW_ARCH_X86_64_KERNELS_X86_H
#define KW_ARCH_X86_64_KERNELS_X86_H

#include <stddef.h>
#include <stdint.h>

struct kw_q8w;
struct kw_q8_act;
struct kw_bw_table;

/* avx2/q8_avx2.c, vnni/q8_avxvnni.c, vnni/q8_avx512vnni.c */
void kw_q8_quantize_avx2(const float *x, size_t k, int8_t *q, float *d, int32_t *s);
void kw_q8_gemm_avx2(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
		     const float *bias, float *y, size_t ldy);
void kw_q8_gemm_avxvnni(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
			const float *bias, float *y, size_t ldy);
void kw_q8_gemm_avx512vnni(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0,
			   size_t g1, const float *bias, float *y, size_t ldy);

/* avx2/codec_avx2.c */
void kw_bw_quant_avx2(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q);
void kw_bw_dequant_avx2(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out);
void kw_cvt_f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_avx2(uint16_t *dst, const float *src, size_t n);

/* avx512/codec_avx512.c: blockwise encoder (model lanes 16 at a time, vpmultishiftqb) and
 * decoder (byte-plane table lookups with VBMI's vpermi2b). */
void kw_bw_quant_avx512(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
			uint8_t *q);
void kw_bw_dequant_avx512(const float *code, const uint8_t *q, const float *absmax, size_t n,
			  float *out);

#endif /* KW_ARCH_X86_64_KERNELS_X86_H */
