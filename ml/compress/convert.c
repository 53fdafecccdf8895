/*
 * Variant selection for the conversion and blockwise kernels: Kconfig decides what is
 * compiled, the CPU (kw_x86_features on x86-64, HWCAP on arm64) decides what may run. Nothing is
 * cached here; callers keep the ops they were given.
 */
#include <kw/cpu.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/codec_kernels.h>
#include <kw/ml/convert.h>

const char *kw_simd_name(enum kw_simd v)
{
	switch (v) {
	case KW_SIMD_AUTO: return "auto";
	case KW_SIMD_REF: return "ref";
	case KW_SIMD_AVX2: return "avx2";
	case KW_SIMD_NEON: return "neon";
	case KW_SIMD_AVX512: return "avx512";
	default: return "?";
	}
}

int kw_simd_available(enum kw_simd v)
{
	switch (v) {
	case KW_SIMD_REF:
		return 1;
	case KW_SIMD_AVX2:
#if defined(CONFIG_KW_X86_AVX2) && defined(__x86_64__)
	{
		/* F16C for the conversions, FMA for the blockwise encoder. */
		const unsigned need = KW_X86_F_AVX2 | KW_X86_F_F16C | KW_X86_F_FMA;

		return (kw_x86_features() & need) == need;
	}
#else
		return 0;
#endif
	case KW_SIMD_NEON:
		/* Advanced SIMD (with fp16 conversions) is mandatory in armv8-a. */
#if defined(CONFIG_KW_ARM64_NEON) && defined(__aarch64__)
		return 1;
#else
		return 0;
#endif
	case KW_SIMD_AVX512:
#if defined(CONFIG_KW_X86_AVX512) && defined(__x86_64__)
	{
		/* everything AVX2 needs (its kernels serve the rest) plus the encoder's ISA */
		const unsigned need = KW_X86_F_AVX2 | KW_X86_F_F16C | KW_X86_F_FMA | KW_X86_F_AVX512F |
				      KW_X86_F_AVX512BW | KW_X86_F_AVX512VL | KW_X86_F_AVX512VBMI;

		return (kw_x86_features() & need) == need;
	}
#else
		return 0;
#endif
	default:
		return 0;
	}
}

enum kw_simd kw_simd_resolve(enum kw_simd v)
{
	if (v != KW_SIMD_AUTO)
		return v;
	if (kw_simd_available(KW_SIMD_AVX512))
		return KW_SIMD_AVX512;
	if (kw_simd_available(KW_SIMD_AVX2))
		return KW_SIMD_AVX2;
	if (kw_simd_available(KW_SIMD_NEON))
		return KW_SIMD_NEON;
	return KW_SIMD_REF;
}

int kw_convert_ops_init(struct kw_convert_ops *ops, enum kw_simd v)
{
	if (!ops || (unsigned)v >= KW_SIMD_COUNT)
		return -KW_EINVAL;
	v = kw_simd_resolve(v);
	if (!kw_simd_available(v))
		return -KW_ENOTSUP;
	ops->variant = v;
	ops->f32_to_f16 = kw_cvt_f32_to_f16_ref;
	ops->f16_to_f32 = kw_cvt_f16_to_f32_ref;
	ops->f32_to_bf16 = kw_cvt_f32_to_bf16_ref;
	ops->bf16_to_f32 = kw_cvt_bf16_to_f32_ref;
	ops->f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_ref;
#if defined(CONFIG_KW_X86_AVX2)
	if (v == KW_SIMD_AVX2 || v == KW_SIMD_AVX512) {
		ops->f32_to_f16 = kw_cvt_f32_to_f16_avx2;
		ops->f16_to_f32 = kw_cvt_f16_to_f32_avx2;
		ops->f32_to_bf16 = kw_cvt_f32_to_bf16_avx2;
		ops->bf16_to_f32 = kw_cvt_bf16_to_f32_avx2;
		ops->f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_avx2;
	}
#endif
#if defined(CONFIG_KW_ARM64_NEON)
	if (v == KW_SIMD_NEON) {
		ops->f32_to_f16 = kw_cvt_f32_to_f16_neon;
		ops->f16_to_f32 = kw_cvt_f16_to_f32_neon;
		ops->f32_to_bf16 = kw_cvt_f32_to_bf16_neon;
		ops->bf16_to_f32 = kw_cvt_bf16_to_f32_neon;
		ops->f32_to_f16_clamp = kw_cvt_f32_to_f16_clamp_neon;
	}
#endif
	return 0;
}
