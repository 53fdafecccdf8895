/* libFuzzer target: the thermal zone `temp` parser (board/sysfs.c) on arbitrary file bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <kw/board.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char again[32];
	int32_t mc, mc2;
	int n;

	if (kw_thermal_parse((const char *)data, size, &mc) != 0)
		return 0;
	/* whatever parsed is in range and prints back to the same value */
	if (mc < -273150 || mc > 250000)
		__builtin_trap();
	n = snprintf(again, sizeof(again), "%d\n", (int)mc);
	if (kw_thermal_parse(again, (size_t)n, &mc2) != 0 || mc2 != mc)
		__builtin_trap();
	return 0;
}
