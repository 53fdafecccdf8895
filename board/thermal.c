/*
 * SoC temperature from /sys/class/thermal/thermal_zone<N>/temp (Linux ABI:
 * Documentation/ABI/testing/sysfs-class-thermal: millidegrees Celsius). A board names its
 * SoC zone (thermal_zone0 on a Raspberry Pi); a PC, whose zone numbers vary, takes the
 * hottest zone, the one that limits it.
 */
#include <stdio.h>
#include <string.h>

#include <kw/board.h>
#include <kw/err.h>

#include "sysfs.h"

#define CLASS "sys/class/thermal"

static int zone_temp(const char *root, const char *zone, int32_t *mc, char *err, size_t errlen)
{
	char rel[320], buf[KW_SYSFS_VALUE_MAX + 1], path[KW_SYSFS_PATH_MAX];
	int n, ret;

	snprintf(rel, sizeof(rel), CLASS "/%.200s/temp", zone);
	n = kw_sysfs_read(root, rel, buf, sizeof(buf), err, errlen);
	if (n < 0)
		return n;
	ret = kw_thermal_parse(buf, (size_t)n, mc);
	if (ret < 0) {
		kw_sysfs_path(root, rel, path, sizeof(path));
		return kw_errf(ret, err, errlen, "%s: %s", path,
			       ret == -KW_ERANGE ? "outside -273150..250000 millidegrees"
						 : "not a number of millidegrees");
	}
	return 0;
}

int kw_thermal_read(const char *root, const char *zone, int32_t *mc, char *err, size_t errlen)
{
	struct kw_sysfs_dir d;
	const char *name;
	int32_t best = INT32_MIN, t;
	int ret, first_err = 0;

	if (zone && zone[0])
		return zone_temp(root, zone, mc, err, errlen);
	ret = kw_sysfs_dir_open(root, CLASS, &d);
	if (ret < 0)
		return kw_errf(ret, err, errlen, "%s/" CLASS ": %s", root, kw_strerror(ret));
	while ((name = kw_sysfs_dir_next(&d))) {
		if (strncmp(name, "thermal_zone", 12))
			continue;  /* cooling_device*: not a temperature */
		/* a zone that cannot be read is skipped: the first reason is kept */
		ret = zone_temp(root, name, &t, first_err ? NULL : err, errlen);
		if (ret < 0) {
			if (!first_err)
				first_err = ret;
			continue;
		}
		if (t > best)
			best = t;
	}
	kw_sysfs_dir_close(&d);
	if (best == INT32_MIN) {
		if (first_err)
			return first_err;
		return kw_errf(-KW_ENOENT, err, errlen, "no thermal_zone* under %s/" CLASS, root);
	}
	*mc = best;
	return 0;
}
