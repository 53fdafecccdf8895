/* arm64 armv8-a NEON int8 kernels (SMULL + SADALP); body in ../q8_arm.inc. */
#include <arm_neon.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8.h>

#include "../kernels_arm64.h"

#define Q8_DOTPROD 0
#define Q8_GEMM_NAME kw_q8_gemm_neon
#define Q8_QUANT_NAME kw_q8_quantize_neon
#include "../q8_arm.inc"
