/* arm64 armv8.2-a+dotprod int8 kernels (SDOT); body in ../q8_arm.inc. */
#include <arm_neon.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8_kernels.h>

#define Q8_DOTPROD 1
#define Q8_GEMM_NAME q8_gemm_dotprod
#define Q8_QUANT_NAME q8_quantize_dotprod
#include "../q8_arm.inc"

const struct kw_q8_kernels kw_q8_kernels_dotprod = {
	.variant = KW_Q8_DOTPROD,
	.name = "dotprod",
	.quantize = q8_quantize_dotprod,
	.gemm = q8_gemm_dotprod,
};
