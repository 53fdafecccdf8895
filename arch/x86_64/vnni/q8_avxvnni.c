/* AVX-VNNI int8 kernels (256-bit VEX VPDPBUSD); body in ../q8_x86_256.inc. */
#include <immintrin.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8_kernels.h>

#include "../q8_x86_quant.inc"

#define Q8_VNNI 1
#define Q8_GEMM_NAME q8_gemm_avxvnni
#include "../q8_x86_256.inc"

const struct kw_q8_kernels kw_q8_kernels_avxvnni = {
	.variant = KW_Q8_AVXVNNI,
	.name = "avxvnni",
	.quantize = q8_quantize_x86,
	.gemm = q8_gemm_avxvnni,
};
