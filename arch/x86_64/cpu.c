/*
 * The x86-64 CPU feature reader (<kw/cpu.h>): CPUID leaves 1 and 7 for what the CPU has,
 * XGETBV for what the OS saves on context switch (YMM for AVX*, opmask/ZMM for AVX-512).
 */
#include <cpuid.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/cpu.h>

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

unsigned kw_cpu_features(void)
{
	unsigned a, b, c, d, f = 0;
	uint64_t xcr0;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	/* OSXSAVE (bit 27) and AVX (bit 28) are needed before XGETBV and any YMM use. */
	if (!(c & (1u << 27)) || !(c & (1u << 28)))
		return 0;
	xcr0 = xgetbv0();
	if ((xcr0 & 0x6) != 0x6)
		return 0;
	if (c & (1u << 12))
		f |= KW_CPU_X86_FMA;
	if (c & (1u << 29))
		f |= KW_CPU_X86_F16C;
	if (__get_cpuid_max(0, NULL) < 7)
		return f;
	__cpuid_count(7, 0, a, b, c, d);
	if (b & (1u << 5))
		f |= KW_CPU_X86_AVX2;
	if ((xcr0 & 0xe0) == 0xe0) {
		if (b & (1u << 16))
			f |= KW_CPU_X86_AVX512F;
		if (b & (1u << 17))
			f |= KW_CPU_X86_AVX512DQ;
		if (b & (1u << 30))
			f |= KW_CPU_X86_AVX512BW;
		if (b & (1u << 31))
			f |= KW_CPU_X86_AVX512VL;
		if (c & (1u << 1))
			f |= KW_CPU_X86_AVX512VBMI;
		if (c & (1u << 11))
			f |= KW_CPU_X86_AVX512VNNI;
	}
	__cpuid_count(7, 1, a, b, c, d);
	if (a & (1u << 4))
		f |= KW_CPU_X86_AVXVNNI;
	return f;
}
