/* arm64 armv8-a NEON int8 kernels (SMULL + SADALP); body in ../q8_arm.inc. */
#include <arm_neon.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8_kernels.h>

#define Q8_DOTPROD 0
#define Q8_GEMM_NAME q8_gemm_neon
#define Q8_QUANT_NAME q8_quantize_neon
#include "../q8_arm.inc"

const struct kw_q8_kernels kw_q8_kernels_neon = {
	.variant = KW_Q8_NEON,
	.name = "neon",
	.quantize = q8_quantize_neon,
	.gemm = q8_gemm_neon,
};
