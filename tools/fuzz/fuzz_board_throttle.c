/* libFuzzer target: the Raspberry Pi get_throttled parser (board/sysfs.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <kw/board.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char again[32];
	uint32_t f, f2;
	int n;

	if (kw_throttle_parse((const char *)data, size, &f) != 0)
		return 0;
	/* whatever parsed prints back (as the sysfs file does) to the same flags */
	n = snprintf(again, sizeof(again), "%x\n", f);
	if (kw_throttle_parse(again, (size_t)n, &f2) != 0 || f2 != f)
		__builtin_trap();
	return 0;
}
