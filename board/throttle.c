/*
 * The Raspberry Pi firmware's throttling flags. The Raspberry Pi kernel's firmware driver
 * exposes them as sysfs file `get_throttled` (one hexadecimal number), the same value
 * `vcgencmd get_throttled` prints; the bit meanings are in kw/board.h (KW_THROTTLE_*), from
 * https://www.raspberrypi.com/documentation/computers/os.html#get_throttled.
 */
#include <kw/board.h>
#include <kw/err.h>

#include "sysfs.h"

int kw_throttle_read(const char *root, const char *rel, uint32_t *flags, char *err,
		     size_t errlen)
{
	char buf[KW_SYSFS_VALUE_MAX + 1], path[KW_SYSFS_PATH_MAX];
	int n;

	if (!rel || !rel[0])
		return kw_errf(-KW_ENOENT, err, errlen, "this board has no throttling flags");
	n = kw_sysfs_read(root, rel, buf, sizeof(buf), err, errlen);
	if (n < 0)
		return n;
	if (kw_throttle_parse(buf, (size_t)n, flags) < 0) {
		kw_sysfs_path(root, rel, path, sizeof(path));
		return kw_errf(-KW_EBADMSG, err, errlen, "%s: not a hexadecimal flag word", path);
	}
	return 0;
}
