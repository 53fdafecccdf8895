/*
 * The SIMD dispatch of <kw/ml/kernels.h>: the list of tables Kconfig compiled in, and the
 * choice among them. Each table states the CPU features it needs (cpu_needs), so the only
 * CPU knowledge here is "compare with kw_cpu_features()". The choice is made on first use
 * and kept in two words written with atomics: every thread computes the same answer, so a
 * race only repeats the work.
 */
#include <kw/compiler.h>
#include <kw/cpu.h>
#include <kw/ml/kernels.h>

static const struct kw_kernels *const kernels_tab[KW_SIMD_COUNT] = {
	[KW_SIMD_REF] = &kw_kernels_ref,
#if defined(CONFIG_KW_ARM64_NEON)
	[KW_SIMD_NEON] = &kw_kernels_neon,
#endif
#if defined(CONFIG_KW_ARM64_DOTPROD)
	[KW_SIMD_DOTPROD] = &kw_kernels_dotprod,
#endif
#if defined(CONFIG_KW_X86_AVX2)
	[KW_SIMD_AVX2] = &kw_kernels_avx2,
#endif
#if defined(CONFIG_KW_X86_VNNI)
	[KW_SIMD_AVXVNNI] = &kw_kernels_avxvnni,
	[KW_SIMD_AVX512VNNI] = &kw_kernels_avx512vnni,
#endif
#if defined(CONFIG_KW_X86_AVX512)
	[KW_SIMD_AVX512] = &kw_kernels_avx512,
#endif
};

/* Fastest first: a later entry's features are never a superset of an earlier one's. */
static const enum kw_simd kernels_order[] = {
	KW_SIMD_AVX512, KW_SIMD_AVX512VNNI, KW_SIMD_AVXVNNI, KW_SIMD_AVX2,
	KW_SIMD_DOTPROD, KW_SIMD_NEON, KW_SIMD_REF,
};

static const char *const simd_names[KW_SIMD_COUNT] = {
	[KW_SIMD_AUTO] = "auto", [KW_SIMD_REF] = "ref", [KW_SIMD_NEON] = "neon",
	[KW_SIMD_DOTPROD] = "dotprod", [KW_SIMD_AVX2] = "avx2", [KW_SIMD_AVXVNNI] = "avxvnni",
	[KW_SIMD_AVX512VNNI] = "avx512vnni", [KW_SIMD_AVX512] = "avx512",
};

#define CPU_KNOWN (1u << 31)  /* cpu_cache holds the features once this bit is set */
static unsigned cpu_cache;
static const struct kw_kernels *best_cache;

static unsigned cpu_features(void)
{
	unsigned f = __atomic_load_n(&cpu_cache, __ATOMIC_RELAXED);

	if (!(f & CPU_KNOWN)) {
		f = kw_cpu_features() | CPU_KNOWN;
		__atomic_store_n(&cpu_cache, f, __ATOMIC_RELAXED);
	}
	return f & ~CPU_KNOWN;
}

const char *kw_simd_name(enum kw_simd v)
{
	return (unsigned)v < KW_SIMD_COUNT ? simd_names[v] : "?";
}

bool kw_simd_compiled(enum kw_simd v)
{
	return (unsigned)v < KW_SIMD_COUNT && kernels_tab[v] != NULL;
}

bool kw_simd_available(enum kw_simd v)
{
	const struct kw_kernels *t;

	if (!kw_simd_compiled(v))
		return false;
	t = kernels_tab[v];
	return (cpu_features() & t->cpu_needs) == t->cpu_needs;
}

const struct kw_kernels *kw_kernels_best(void)
{
	const struct kw_kernels *t = __atomic_load_n(&best_cache, __ATOMIC_ACQUIRE);

	if (t)
		return t;
	t = &kw_kernels_ref;
	if (!IS_ENABLED(CONFIG_KW_ML_SIMD_FORCE_REF)) {
		for (size_t i = 0; i < KW_ARRAY_SIZE(kernels_order); i++) {
			if (kw_simd_available(kernels_order[i])) {
				t = kernels_tab[kernels_order[i]];
				break;
			}
		}
	}
	__atomic_store_n(&best_cache, t, __ATOMIC_RELEASE);
	return t;
}

enum kw_simd kw_simd_resolve(enum kw_simd v)
{
	return v == KW_SIMD_AUTO ? kw_kernels_best()->variant : v;
}

const struct kw_kernels *kw_kernels_get(enum kw_simd v)
{
	if (v == KW_SIMD_AUTO)
		return kw_kernels_best();
	return kw_simd_available(v) ? kernels_tab[v] : NULL;
}
