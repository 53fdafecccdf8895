/*
 * The arm64 tables of <kw/ml/kernels.h>:
 *   neon     every armv8-a core (Cortex-A53 / Pi Zero 2 W and Pi 3, Cortex-A72 / Pi 4)
 *   dotprod  armv8.2-a cores with SDOT (Cortex-A76 / Pi 5 and newer): the int8 GEMM uses
 *            SDOT; codec and conversion kernels are the NEON ones
 */
#include <kw/cpu.h>
#include <kw/ml/kernels.h>

#include "kernels_arm64.h"

#define NEON_CODEC                                        \
	.bw_quant = kw_bw_quant_neon,                     \
	.bw_dequant = kw_bw_dequant_neon,                 \
	.f32_to_f16 = kw_cvt_f32_to_f16_neon,             \
	.f16_to_f32 = kw_cvt_f16_to_f32_neon,             \
	.f32_to_bf16 = kw_cvt_f32_to_bf16_neon,           \
	.bf16_to_f32 = kw_cvt_bf16_to_f32_neon,           \
	.f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_neon

const struct kw_kernels kw_kernels_neon = {
	.variant = KW_SIMD_NEON,
	.name = "neon",
	.cpu_needs = KW_CPU_ARM64_ASIMD,
	.q8_quantize = kw_q8_quantize_neon,
	.q8_gemm = kw_q8_gemm_neon,
	NEON_CODEC,
};

#if defined(CONFIG_KW_ARM64_DOTPROD)
const struct kw_kernels kw_kernels_dotprod = {
	.variant = KW_SIMD_DOTPROD,
	.name = "dotprod",
	.cpu_needs = KW_CPU_ARM64_ASIMD | KW_CPU_ARM64_ASIMDDP,
	.q8_quantize = kw_q8_quantize_dotprod,
	.q8_gemm = kw_q8_gemm_dotprod,
	NEON_CODEC,
};
#endif
