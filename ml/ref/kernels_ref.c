/* The reference table of <kw/ml/kernels.h>: portable C for every slot, runs on any CPU. */
#include <kw/ml/kernels.h>

const struct kw_kernels kw_kernels_ref = {
	.variant = KW_SIMD_REF,
	.name = "ref",
	.cpu_needs = 0,
	.q8_quantize = kw_q8_quantize_ref,
	.q8_gemm = kw_q8_gemm_ref,
	.bw_quant = kw_bw_quant_ref,
	.bw_dequant = kw_bw_dequant_ref,
	.f32_to_f16 = kw_cvt_f32_to_f16_ref,
	.f16_to_f32 = kw_cvt_f16_to_f32_ref,
	.f32_to_bf16 = kw_cvt_f32_to_bf16_ref,
	.bf16_to_f32 = kw_cvt_bf16_to_f32_ref,
	.f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_ref,
};
