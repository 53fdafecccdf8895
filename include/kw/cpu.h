/*
 * CPU feature bits for run-time kernel selection on x86-64. Read from CPUID and XGETBV on
 * every call (no cached global: cheap enough for init-time dispatch, and several nodes may
 * share a process). A feature counts only when the OS also saves its register state, so an
 * AVX-512 CPU under a kernel that disabled it reports no AVX-512. Compilers disagree on the
 * names __builtin_cpu_supports knows (clang 14 has no "f16c" or "avxvnni"), hence this.
 * On other architectures kw_x86_features() returns 0.
 */
#ifndef KW_CPU_H
#define KW_CPU_H

#define KW_X86_F_AVX2       (1u << 0)
#define KW_X86_F_FMA        (1u << 1)
#define KW_X86_F_F16C       (1u << 2)
#define KW_X86_F_AVXVNNI    (1u << 3)
#define KW_X86_F_AVX512F    (1u << 4)
#define KW_X86_F_AVX512BW   (1u << 5)
#define KW_X86_F_AVX512VL   (1u << 6)
#define KW_X86_F_AVX512VNNI (1u << 7)
#define KW_X86_F_AVX512DQ   (1u << 8)
#define KW_X86_F_AVX512VBMI (1u << 9)

/* Returns the KW_X86_F_* bits the CPU and OS support; 0 off x86-64. */
unsigned kw_x86_features(void);

#endif
