/* AVX2 int8 kernels (PMADDUBSW path); body in ../q8_x86_256.inc. */
#include <immintrin.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8_kernels.h>

#include "../q8_x86_quant.inc"

#define Q8_VNNI 0
#define Q8_GEMM_NAME q8_gemm_avx2
#include "../q8_x86_256.inc"

const struct kw_q8_kernels kw_q8_kernels_avx2 = {
	.variant = KW_Q8_AVX2,
	.name = "avx2",
	.quantize = q8_quantize_x86,
	.gemm = q8_gemm_avx2,
};
