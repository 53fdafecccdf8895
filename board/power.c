/*
 * Power supplies from /sys/class/power_supply (Linux ABI: Documentation/ABI/testing/
 * sysfs-class-power): each supply is a directory with `type`; external sources (Mains, USB,
 * Wireless, UPS) have `online` (0/1), batteries (Battery, UPS) have `capacity` (0..100 %) and
 * `status`. The summary keeps what the policy needs: is any external source online, and the
 * lowest battery charge.
 */
#include <stdio.h>
#include <string.h>

#include <kw/board.h>
#include <kw/err.h>

#include "sysfs.h"

#define CLASS "sys/class/power_supply"

/* Reads CLASS/<name>/<attr> into buf. */
static int attr(const char *root, const char *name, const char *a, char *buf, size_t cap,
		char *err, size_t errlen)
{
	char rel[320];

	snprintf(rel, sizeof(rel), CLASS "/%.200s/%s", name, a);
	return kw_sysfs_read(root, rel, buf, cap, err, errlen);
}

/* Notes a malformed file: the first reason is kept in err. */
static void bad(struct kw_power_state *st, char *err, size_t errlen, const char *root,
		const char *name, const char *a, const char *why)
{
	char path[KW_SYSFS_PATH_MAX], rel[320];

	if (st->n_errors++ == 0 && err && errlen) {
		snprintf(rel, sizeof(rel), CLASS "/%.200s/%s", name, a);
		kw_sysfs_path(root, rel, path, sizeof(path));
		kw_errf(-KW_EBADMSG, err, errlen, "%s: %s", path, why);
	}
}

static void read_supply(const char *root, const char *name, struct kw_power_state *st,
			char *err, size_t errlen)
{
	char buf[KW_SYSFS_VALUE_MAX + 1], e[160];
	enum kw_power_type type;
	enum kw_power_status status = KW_POWER_STATUS_UNKNOWN;
	long v;
	int n;

	n = attr(root, name, "type", buf, sizeof(buf), e, sizeof(e));
	if (n < 0) {
		if (n != -KW_ENOENT)  /* a supply without `type` is not ours to judge */
			bad(st, err, errlen, root, name, "type", kw_strerror(n));
		return;
	}
	if (kw_power_parse_type(buf, (size_t)n, &type) < 0) {
		bad(st, err, errlen, root, name, "type", "not a supply type");
		return;
	}
	if (type == KW_POWER_TYPE_MAINS || type == KW_POWER_TYPE_USB ||
	    type == KW_POWER_TYPE_WIRELESS || type == KW_POWER_TYPE_UPS) {
		n = attr(root, name, "online", buf, sizeof(buf), e, sizeof(e));
		if (n >= 0) {
			if (kw_sysfs_parse_long(buf, (size_t)n, 0, 2, &v) < 0) {
				/* 2 is "online, programmable" for USB-PD sources */
				bad(st, err, errlen, root, name, "online", "not 0, 1 or 2");
				return;
			}
			st->n_external++;
			if (v)
				st->external_online = true;
		}
	}
	if (type != KW_POWER_TYPE_BATTERY && type != KW_POWER_TYPE_UPS)
		return;
	n = attr(root, name, "present", buf, sizeof(buf), e, sizeof(e));
	if (n >= 0 && kw_sysfs_parse_long(buf, (size_t)n, 0, 1, &v) == 0 && v == 0)
		return;  /* an empty battery bay */
	n = attr(root, name, "capacity", buf, sizeof(buf), e, sizeof(e));
	if (n < 0)
		return;  /* a battery that reports no charge: nothing to compare */
	if (kw_sysfs_parse_long(buf, (size_t)n, 0, 100, &v) < 0) {
		bad(st, err, errlen, root, name, "capacity", "not a percentage 0..100");
		return;
	}
	n = attr(root, name, "status", buf, sizeof(buf), e, sizeof(e));
	if (n >= 0 && kw_power_parse_status(buf, (size_t)n, &status) < 0) {
		bad(st, err, errlen, root, name, "status", "not a status word");
		return;
	}
	st->n_batteries++;
	if (st->battery_pct < 0 || v < st->battery_pct) {
		st->battery_pct = (int8_t)v;
		st->battery_status = status;
	}
}

int kw_power_read(const char *root, struct kw_power_state *st, char *err, size_t errlen)
{
	struct kw_sysfs_dir d;
	const char *name;
	int ret;

	memset(st, 0, sizeof(*st));
	st->battery_pct = -1;
	ret = kw_sysfs_dir_open(root, CLASS, &d);
	if (ret == -KW_ENOENT)
		return 0;
	if (ret < 0)
		return kw_errf(ret, err, errlen, "%s/" CLASS ": %s", root, kw_strerror(ret));
	while ((name = kw_sysfs_dir_next(&d)) && st->n_supplies < KW_POWER_SUPPLIES_MAX) {
		st->n_supplies++;
		read_supply(root, name, st, err, errlen);
	}
	kw_sysfs_dir_close(&d);
	return 0;
}
