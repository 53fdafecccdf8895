/*
 * CPU features for run-time kernel selection: one reader per architecture
 * (arch/x86_64/cpu.c: CPUID + XGETBV; arch/arm64/cpu.c: the auxiliary vector's HWCAP).
 * Each kernel table in <kw/ml/kernels.h> lists the bits it needs; ml/kernels.c compares
 * them with kw_cpu_features() once and keeps the choice.
 *
 * A feature counts only when the OS also saves its register state, so an AVX-512 CPU under
 * a kernel that disabled it reports no AVX-512. Compilers disagree on the names
 * __builtin_cpu_supports knows (clang 14 has no "f16c" or "avxvnni"), hence our own reader.
 * Bits of the other architecture are never set.
 */
#ifndef KW_CPU_H
#define KW_CPU_H

/* x86-64 */
#define KW_CPU_X86_AVX2       (1u << 0)
#define KW_CPU_X86_FMA        (1u << 1)
#define KW_CPU_X86_F16C       (1u << 2)
#define KW_CPU_X86_AVXVNNI    (1u << 3)
#define KW_CPU_X86_AVX512F    (1u << 4)
#define KW_CPU_X86_AVX512BW   (1u << 5)
#define KW_CPU_X86_AVX512VL   (1u << 6)
#define KW_CPU_X86_AVX512VNNI (1u << 7)
#define KW_CPU_X86_AVX512DQ   (1u << 8)
#define KW_CPU_X86_AVX512VBMI (1u << 9)
/* arm64 */
#define KW_CPU_ARM64_ASIMD    (1u << 16)  /* Advanced SIMD (NEON), mandatory in armv8-a */
#define KW_CPU_ARM64_ASIMDDP  (1u << 17)  /* SDOT/UDOT (armv8.2-a dotprod, Cortex-A76 and newer) */

/* The KW_CPU_* bits the running CPU and OS support. Cheap (a few CPUID instructions or one
 * getauxval), no state kept; callers that need it often keep the result. */
unsigned kw_cpu_features(void);

#endif /* KW_CPU_H */
