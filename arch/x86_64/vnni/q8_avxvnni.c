/* AVX-VNNI int8 GEMM (256-bit VEX VPDPBUSD); body in ../q8_x86_256.inc. The activation
 * quantizer is the AVX2 one. */
#include <immintrin.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8.h>

#include "../kernels_x86.h"

#define Q8_VNNI 1
#define Q8_GEMM_NAME kw_q8_gemm_avxvnni
#include "../q8_x86_256.inc"
