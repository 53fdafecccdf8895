/*
 * The x86-64 tables of <kw/ml/kernels.h>, one per CPU level, each with the features its
 * kernels need. Plain C (no ISA flags): only pointers and masks live here.
 *   avx2        Haswell / Zen 1 and newer
 *   avxvnni     + AVX-VNNI (Alder Lake and newer client cores): int8 GEMM with VPDPBUSD
 *   avx512vnni  + AVX-512 F/BW/VL/VNNI (Cascade Lake): 512-bit VPDPBUSD
 *   avx512      + AVX-512 VBMI as well (Ice Lake, Zen 4 and newer): the AVX-512 blockwise
 *               codec, and the AVX512-VNNI GEMM when CONFIG_KW_X86_VNNI
 * Conversions stay AVX2 + F16C everywhere (memory-bound: wider vectors gain nothing).
 */
#include <kw/cpu.h>
#include <kw/ml/kernels.h>

#include "kernels_x86.h"

#define NEED_AVX2 (KW_CPU_X86_AVX2 | KW_CPU_X86_FMA | KW_CPU_X86_F16C)
#define NEED_AVX512 (NEED_AVX2 | KW_CPU_X86_AVX512F | KW_CPU_X86_AVX512BW | KW_CPU_X86_AVX512VL)

#define CVT_AVX2                                          \
	.f32_to_f16 = kw_cvt_f32_to_f16_avx2,             \
	.f16_to_f32 = kw_cvt_f16_to_f32_avx2,             \
	.f32_to_bf16 = kw_cvt_f32_to_bf16_avx2,           \
	.bf16_to_f32 = kw_cvt_bf16_to_f32_avx2,           \
	.f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_avx2

const struct kw_kernels kw_kernels_avx2 = {
	.variant = KW_SIMD_AVX2,
	.name = "avx2",
	.cpu_needs = NEED_AVX2,
	.q8_quantize = kw_q8_quantize_avx2,
	.q8_gemm = kw_q8_gemm_avx2,
	.bw_quant = kw_bw_quant_avx2,
	.bw_dequant = kw_bw_dequant_avx2,
	CVT_AVX2,
};

#if defined(CONFIG_KW_X86_VNNI)
const struct kw_kernels kw_kernels_avxvnni = {
	.variant = KW_SIMD_AVXVNNI,
	.name = "avxvnni",
	.cpu_needs = NEED_AVX2 | KW_CPU_X86_AVXVNNI,
	.q8_quantize = kw_q8_quantize_avx2,
	.q8_gemm = kw_q8_gemm_avxvnni,
	.bw_quant = kw_bw_quant_avx2,
	.bw_dequant = kw_bw_dequant_avx2,
	CVT_AVX2,
};

const struct kw_kernels kw_kernels_avx512vnni = {
	.variant = KW_SIMD_AVX512VNNI,
	.name = "avx512vnni",
	.cpu_needs = NEED_AVX512 | KW_CPU_X86_AVX512VNNI,
	.q8_quantize = kw_q8_quantize_avx2,
	.q8_gemm = kw_q8_gemm_avx512vnni,
	.bw_quant = kw_bw_quant_avx2,
	.bw_dequant = kw_bw_dequant_avx2,
	CVT_AVX2,
};
#endif

#if defined(CONFIG_KW_X86_AVX512)
const struct kw_kernels kw_kernels_avx512 = {
	.variant = KW_SIMD_AVX512,
	.name = "avx512",
#if defined(CONFIG_KW_X86_VNNI)
	.cpu_needs = NEED_AVX512 | KW_CPU_X86_AVX512VBMI | KW_CPU_X86_AVX512VNNI,
	.q8_gemm = kw_q8_gemm_avx512vnni,
#else
	.cpu_needs = NEED_AVX512 | KW_CPU_X86_AVX512VBMI,
	.q8_gemm = kw_q8_gemm_avx2,
#endif
	.q8_quantize = kw_q8_quantize_avx2,
	.bw_quant = kw_bw_quant_avx512,
	.bw_dequant = kw_bw_dequant_avx512,
	CVT_AVX2,
};
#endif
