/*
 * arm64 armv8.2-a+dotprod int8 kernels (SDOT); body in ../q8_arm.inc.
 * The ISA is raised with a pragma rather than a per-file -march: GCC rejects
 * -march=armv8.2-a+dotprod next to a board's -mcpu=cortex-a72 ("conflicts", an error under
 * -Werror), and an image for a Pi 4 must still be able to carry the SDOT path for newer
 * boards. Only this file's code may use SDOT; ml/kernels.c selects its table only after
 * arch/arm64/cpu.c has seen HWCAP_ASIMDDP.
 */
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8.h>

#include "../kernels_arm64.h"

#define Q8_DOTPROD 1
#define Q8_GEMM_NAME kw_q8_gemm_dotprod
#define Q8_QUANT_NAME kw_q8_quantize_dotprod
#include "../q8_arm.inc"
