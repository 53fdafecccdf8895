/*
 * The one SIMD dispatch of ml/: every hot loop (int8 matmul, blockwise 8-bit codec, fp16 and
 * bf16 conversions) is reached through a const table of function pointers, one table per
 * variant. Kconfig decides which tables are compiled in (arch/Kconfig), the CPU decides which
 * may run (kw_cpu_features(), <kw/cpu.h>), and ml/kernels.c picks the best one once, on first
 * use, then keeps it for the life of the process (the CPU does not change under us).
 *
 * Where the kernels live (layering: kernel/ <- ml/ref/ <- arch/ <- the rest of ml/):
 *   ml/ref/            portable C: the specification every variant equals bit for bit, and
 *                      the scalar tails the SIMD files call
 *   arch/arm64/        NEON (armv8-a) and SDOT (armv8.2-a+dotprod) kernels, their tables
 *   arch/x86_64/       AVX2, AVX-VNNI, AVX512-VNNI and AVX-512 (VBMI) kernels, their tables
 * Nothing outside arch/ includes <arm_neon.h> or <immintrin.h>.
 *
 * A variant is a CPU level: its table fills every slot with the fastest kernel that level
 * may run (the AVX-VNNI table keeps the AVX2 codec kernels, for example), so a caller never
 * mixes tables. Tests and benchmarks force a variant with kw_kernels_get(v); the Kconfig
 * option KW_ML_SIMD_FORCE_REF makes KW_SIMD_AUTO pick the reference.
 */
#ifndef KW_ML_KERNELS_H
#define KW_ML_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_q8w;       /* <kw/ml/q8.h> */
struct kw_q8_act;    /* <kw/ml/q8.h> */
struct kw_bw_table;  /* <kw/ml/blockwise.h> */

enum kw_simd {
	KW_SIMD_AUTO = 0,    /* the best variant compiled in and supported by this CPU */
	KW_SIMD_REF,         /* portable C reference (always compiled, runs anywhere) */
	KW_SIMD_NEON,        /* arm64 armv8-a Advanced SIMD (CONFIG_KW_ARM64_NEON) */
	KW_SIMD_DOTPROD,     /* NEON + armv8.2-a SDOT for int8 (CONFIG_KW_ARM64_DOTPROD) */
	KW_SIMD_AVX2,        /* x86-64 AVX2 + FMA + F16C (CONFIG_KW_X86_AVX2) */
	KW_SIMD_AVXVNNI,     /* AVX2 + AVX-VNNI for int8 (CONFIG_KW_X86_VNNI) */
	KW_SIMD_AVX512VNNI,  /* AVX2 + AVX-512 F/BW/VL/VNNI for int8 (CONFIG_KW_X86_VNNI) */
	KW_SIMD_AVX512,      /* AVX-512 F/BW/VL/VBMI blockwise codec, plus VNNI int8 when
	                        CONFIG_KW_X86_VNNI (CONFIG_KW_X86_AVX512) */
	KW_SIMD_COUNT
};

/* n elements; src and dst must not overlap. Any n (no alignment or multiple required). */
typedef void (*kw_cvt_f32_to_16_fn)(uint16_t *dst, const float *src, size_t n);
typedef void (*kw_cvt_16_to_f32_fn)(float *dst, const uint16_t *src, size_t n);
/* Blockwise 8-bit quantize of n floats (any n): absmax[ceil(n/4096)], q[n]. */
typedef void (*kw_bw_quant_fn)(const struct kw_bw_table *t, const float *x, size_t n,
			       float *absmax, uint8_t *q);
/* Blockwise dequantize: out[i] = code[q[i]] * absmax[i / 4096]. */
typedef void (*kw_bw_dequant_fn)(const float *code, const uint8_t *q, const float *absmax,
				 size_t n, float *out);
/* int8 matmul: quantize one row of k floats into nb = ceil(k/32) blocks (q[nb*32], d[nb],
 * s[nb]); GEMM over row groups [g0, g1) of w against all a->m rows (see <kw/ml/q8.h>). */
typedef void (*kw_q8_quantize_fn)(const float *x, size_t k, int8_t *q, float *d, int32_t *s);
typedef void (*kw_q8_gemm_fn)(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0,
			      size_t g1, const float *bias, float *y, size_t ldy);

/* One variant's kernels. Every slot is filled; results equal the reference bit for bit. */
struct kw_kernels {
	enum kw_simd variant;
	const char *name;            /* "ref", "neon", "dotprod", "avx2", ... */
	unsigned cpu_needs;          /* KW_CPU_* bits the CPU must report */
	/* int8 matmul (<kw/ml/q8.h>) */
	kw_q8_quantize_fn q8_quantize;
	kw_q8_gemm_fn q8_gemm;
	/* BLOCKWISE_8BIT (<kw/ml/blockwise.h>) */
	kw_bw_quant_fn bw_quant;
	kw_bw_dequant_fn bw_dequant;
	/* Conversions, bit-identical to the scalar helpers of <kw/ml/half.h>: round to nearest
	 * even, NaN stays a quiet NaN with its sign and top payload bits, overflow gives Inf. */
	kw_cvt_f32_to_16_fn f32_to_f16;
	kw_cvt_16_to_f32_fn f16_to_f32;
	kw_cvt_f32_to_16_fn f32_to_bf16;
	kw_cvt_16_to_f32_fn bf16_to_f32;
	/* fp32 -> fp16 after clamping to +-65504 (Hivemind FLOAT16 / MEANSTD_16BIT: Inf becomes
	 * +-65504, NaN stays NaN). */
	kw_cvt_f32_to_16_fn f32_to_f16_clamp;
};

/* "auto", "ref", "neon", "dotprod", "avx2", "avxvnni", "avx512vnni", "avx512"; never NULL. */
const char *kw_simd_name(enum kw_simd v);
/* True when variant v's table was compiled in (Kconfig); false for KW_SIMD_AUTO. */
bool kw_simd_compiled(enum kw_simd v);
/* True when v is compiled in and the running CPU reports every feature it needs. */
bool kw_simd_available(enum kw_simd v);
/* KW_SIMD_AUTO -> the variant kw_kernels_best() uses; other values are returned as is. */
enum kw_simd kw_simd_resolve(enum kw_simd v);
/* The table of variant v (KW_SIMD_AUTO: the best), or NULL when v is unknown, not compiled
 * in, or needs a feature this CPU lacks. The table is static; keep the pointer. */
const struct kw_kernels *kw_kernels_get(enum kw_simd v);
/* The fastest available table (the reference under CONFIG_KW_ML_SIMD_FORCE_REF). Chosen on
 * the first call and kept; never NULL; safe to call from any thread. */
const struct kw_kernels *kw_kernels_best(void);

/* ---- for kernel implementers (ml/ref/, arch/) ----------------------------------------------
 * The tables, each defined only when its Kconfig option is set (kw_simd_compiled()). */
extern const struct kw_kernels kw_kernels_ref;
extern const struct kw_kernels kw_kernels_neon;
extern const struct kw_kernels kw_kernels_dotprod;
extern const struct kw_kernels kw_kernels_avx2;
extern const struct kw_kernels kw_kernels_avxvnni;
extern const struct kw_kernels kw_kernels_avx512vnni;
extern const struct kw_kernels kw_kernels_avx512;

/* The reference kernels (ml/ref/), which SIMD files may also call for their tails. */
void kw_q8_quantize_ref(const float *x, size_t k, int8_t *q, float *d, int32_t *s);
void kw_q8_gemm_ref(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0, size_t g1,
		    const float *bias, float *y, size_t ldy);
void kw_bw_quant_ref(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		     uint8_t *q);
void kw_bw_dequant_ref(const float *code, const uint8_t *q, const float *absmax, size_t n,
		       float *out);
void kw_cvt_f32_to_f16_ref(uint16_t *dst, const float *src, size_t n);
void kw_cvt_f16_to_f32_ref(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_bf16_ref(uint16_t *dst, const float *src, size_t n);
void kw_cvt_bf16_to_f32_ref(float *dst, const uint16_t *src, size_t n);
void kw_cvt_f32_to_f16_clamp_ref(uint16_t *dst, const float *src, size_t n);

#endif /* KW_ML_KERNELS_H */
