/*
 * libFuzzer target: the power_supply attribute parsers (board/sysfs.c). The first byte picks
 * the file (type, status, online, capacity); the rest is its content.
 */
#include <stddef.h>
#include <stdint.h>

#include <kw/board.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data + 1;
	enum kw_power_type t;
	enum kw_power_status s;
	long v;

	if (size < 1)
		return 0;
	size--;
	switch (data[0] & 3) {
	case 0:
		if (kw_power_parse_type(buf, size, &t) == 0 &&
		    (t < KW_POWER_TYPE_UNKNOWN || t > KW_POWER_TYPE_WIRELESS))
			__builtin_trap();
		break;
	case 1:
		if (kw_power_parse_status(buf, size, &s) == 0 &&
		    (s < KW_POWER_STATUS_UNKNOWN || s > KW_POWER_STATUS_FULL))
			__builtin_trap();
		break;
	case 2:  /* online */
		if (kw_sysfs_parse_long(buf, size, 0, 2, &v) == 0 && (v < 0 || v > 2))
			__builtin_trap();
		break;
	default:  /* capacity */
		if (kw_sysfs_parse_long(buf, size, 0, 100, &v) == 0 && (v < 0 || v > 100))
			__builtin_trap();
		break;
	}
	return 0;
}
