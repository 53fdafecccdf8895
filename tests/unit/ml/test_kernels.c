/*
 * The SIMD dispatch (ml/kernels.c) and the CPU readers (arch/<arch>/cpu.c): every compiled
 * table fills every slot, the CPU reader agrees with an independent view of the CPU, and
 * KW_SIMD_AUTO picks the table this CPU should get. The kernels themselves are compared
 * with the reference in test_convert, gemm/test_q8 and compress/test_codec.
 */
#include "harness.h"

#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

#include <kw/compiler.h>
#include <kw/cpu.h>
#include <kw/ml/kernels.h>

/* The tables this build defines, listed independently of ml/kernels.c. */
static const struct kw_kernels *compiled_table(enum kw_simd v)
{
	switch (v) {
	case KW_SIMD_REF: return &kw_kernels_ref;
#if defined(CONFIG_KW_ARM64_NEON)
	case KW_SIMD_NEON: return &kw_kernels_neon;
#endif
#if defined(CONFIG_KW_ARM64_DOTPROD)
	case KW_SIMD_DOTPROD: return &kw_kernels_dotprod;
#endif
#if defined(CONFIG_KW_X86_AVX2)
	case KW_SIMD_AVX2: return &kw_kernels_avx2;
#endif
#if defined(CONFIG_KW_X86_VNNI)
	case KW_SIMD_AVXVNNI: return &kw_kernels_avxvnni;
	case KW_SIMD_AVX512VNNI: return &kw_kernels_avx512vnni;
#endif
#if defined(CONFIG_KW_X86_AVX512)
	case KW_SIMD_AVX512: return &kw_kernels_avx512;
#endif
	default: return NULL;
	}
}

static void test_kernels_every_compiled_table_fills_every_slot(void **state)
{
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		const struct kw_kernels *t = compiled_table((enum kw_simd)v);

		assert_int_equal(kw_simd_compiled((enum kw_simd)v), t != NULL);
		if (!t)
			continue;
		assert_int_equal(t->variant, v);
		assert_string_equal(t->name, kw_simd_name((enum kw_simd)v));
		assert_non_null(t->q8_quantize);
		assert_non_null(t->q8_gemm);
		assert_non_null(t->bw_quant);
		assert_non_null(t->bw_dequant);
		assert_non_null(t->f32_to_f16);
		assert_non_null(t->f16_to_f32);
		assert_non_null(t->f32_to_bf16);
		assert_non_null(t->bf16_to_f32);
		assert_non_null(t->f32_to_f16_clamp);
		/* kw_kernels_get hands out exactly the compiled table, when the CPU can run it */
		if (kw_simd_available((enum kw_simd)v))
			assert_ptr_equal(kw_kernels_get((enum kw_simd)v), t);
		else
			assert_null(kw_kernels_get((enum kw_simd)v));
	}
}

static void test_kernels_reference_runs_everywhere(void **state)
{
	assert_true(kw_simd_compiled(KW_SIMD_REF));
	assert_true(kw_simd_available(KW_SIMD_REF));
	assert_int_equal(kw_kernels_ref.cpu_needs, 0);
	assert_ptr_equal(kw_kernels_get(KW_SIMD_REF), &kw_kernels_ref);
}

static void test_kernels_unknown_variant_is_refused(void **state)
{
	assert_null(kw_kernels_get(KW_SIMD_COUNT));
	assert_null(kw_kernels_get((enum kw_simd)-1));
	assert_false(kw_simd_compiled(KW_SIMD_COUNT));
	assert_false(kw_simd_available(KW_SIMD_COUNT));
	assert_false(kw_simd_compiled(KW_SIMD_AUTO));
	assert_string_equal(kw_simd_name(KW_SIMD_COUNT), "?");
	assert_string_equal(kw_simd_name(KW_SIMD_AUTO), "auto");
}

/* The CPU reader against the compiler's / the C library's own view of the CPU. */
static void test_kernels_cpu_reader_agrees_with_an_independent_view(void **state)
{
	unsigned f = kw_cpu_features();

#if defined(__x86_64__)
	__builtin_cpu_init();
	assert_int_equal(!!(f & KW_CPU_X86_AVX2), !!__builtin_cpu_supports("avx2"));
	assert_int_equal(!!(f & KW_CPU_X86_FMA), !!__builtin_cpu_supports("fma"));
	assert_int_equal(!!(f & KW_CPU_X86_AVX512F), !!__builtin_cpu_supports("avx512f"));
	assert_int_equal(!!(f & KW_CPU_X86_AVX512BW), !!__builtin_cpu_supports("avx512bw"));
	assert_int_equal(!!(f & KW_CPU_X86_AVX512VL), !!__builtin_cpu_supports("avx512vl"));
	assert_int_equal(!!(f & KW_CPU_X86_AVX512VBMI), !!__builtin_cpu_supports("avx512vbmi"));
	assert_int_equal(!!(f & KW_CPU_X86_AVX512VNNI), !!__builtin_cpu_supports("avx512vnni"));
	assert_int_equal(f & (KW_CPU_ARM64_ASIMD | KW_CPU_ARM64_ASIMDDP), 0);
#elif defined(__aarch64__)
	assert_true(f & KW_CPU_ARM64_ASIMD);  /* mandatory in armv8-a */
	assert_int_equal(!!(f & KW_CPU_ARM64_ASIMDDP), !!(getauxval(AT_HWCAP) & HWCAP_ASIMDDP));
	assert_int_equal(f & 0xffffu, 0);  /* no x86 bits */
#endif
}

/* AUTO: the same table on every call, one the CPU can run, and the one this CPU deserves. */
static void test_kernels_auto_picks_the_best_table_this_cpu_can_run(void **state)
{
	const struct kw_kernels *best = kw_kernels_best();
	unsigned f = kw_cpu_features();
	enum kw_simd want = KW_SIMD_REF;

	assert_non_null(best);
	assert_ptr_equal(kw_kernels_best(), best);
	assert_ptr_equal(kw_kernels_get(KW_SIMD_AUTO), best);
	assert_int_equal(kw_simd_resolve(KW_SIMD_AUTO), best->variant);
	assert_int_equal(kw_simd_resolve(KW_SIMD_AVX2), KW_SIMD_AVX2);
	assert_true(kw_simd_available(best->variant));
	assert_int_equal(f & best->cpu_needs, best->cpu_needs);
	if (!IS_ENABLED(CONFIG_KW_ML_SIMD_FORCE_REF)) {
#if defined(__x86_64__)
		const unsigned avx2 = KW_CPU_X86_AVX2 | KW_CPU_X86_FMA | KW_CPU_X86_F16C;
		const unsigned avx512 = avx2 | KW_CPU_X86_AVX512F | KW_CPU_X86_AVX512BW |
					KW_CPU_X86_AVX512VL;
		const bool vnni512 = (f & (avx512 | KW_CPU_X86_AVX512VNNI)) ==
				     (avx512 | KW_CPU_X86_AVX512VNNI);
		const bool vbmi = (f & (avx512 | KW_CPU_X86_AVX512VBMI)) ==
				  (avx512 | KW_CPU_X86_AVX512VBMI);

		if (IS_ENABLED(CONFIG_KW_X86_AVX512) && vbmi &&
		    (vnni512 || !IS_ENABLED(CONFIG_KW_X86_VNNI)))
			want = KW_SIMD_AVX512;
		else if (IS_ENABLED(CONFIG_KW_X86_VNNI) && vnni512)
			want = KW_SIMD_AVX512VNNI;
		else if (IS_ENABLED(CONFIG_KW_X86_VNNI) &&
			 (f & (avx2 | KW_CPU_X86_AVXVNNI)) == (avx2 | KW_CPU_X86_AVXVNNI))
			want = KW_SIMD_AVXVNNI;
		else if (IS_ENABLED(CONFIG_KW_X86_AVX2) && (f & avx2) == avx2)
			want = KW_SIMD_AVX2;
#elif defined(__aarch64__)
		if (IS_ENABLED(CONFIG_KW_ARM64_DOTPROD) && (f & KW_CPU_ARM64_ASIMDDP))
			want = KW_SIMD_DOTPROD;
		else if (IS_ENABLED(CONFIG_KW_ARM64_NEON))
			want = KW_SIMD_NEON;
#endif
	}
	print_message("kernels: best table %s (cpu features 0x%x)\n", best->name, f);
	assert_string_equal(best->name, kw_simd_name(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernels_every_compiled_table_fills_every_slot),
		cmocka_unit_test(test_kernels_reference_runs_everywhere),
		cmocka_unit_test(test_kernels_unknown_variant_is_refused),
		cmocka_unit_test(test_kernels_cpu_reader_agrees_with_an_independent_view),
		cmocka_unit_test(test_kernels_auto_picks_the_best_table_this_cpu_can_run),
	};
	return cmocka_run_group_tests_name("ml/kernels", tests, NULL, NULL);
}
