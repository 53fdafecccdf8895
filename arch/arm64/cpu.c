/*
 * The arm64 CPU feature reader (<kw/cpu.h>): Linux reports the CPU's features in the
 * auxiliary vector (AT_HWCAP), which the kernel fills from the ID registers at boot.
 */
#include <sys/auxv.h>

#include <kw/cpu.h>

#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif

unsigned kw_cpu_features(void)
{
	unsigned long hw = getauxval(AT_HWCAP);
	unsigned f = 0;

	if (hw & HWCAP_ASIMD)
		f |= KW_CPU_ARM64_ASIMD;
	if (hw & HWCAP_ASIMDDP)
		f |= KW_CPU_ARM64_ASIMDDP;
	return f;
}
