/*
 * Bounded reads and parsers of sysfs values. A sysfs attribute is one short line; we read at
 * most KW_SYSFS_VALUE_MAX bytes, refuse anything longer, and parse from (buf, len) so the
 * parsers are fuzzed on arbitrary bytes (tools/fuzz/fuzz_board_*.c). Paths are joined under
 * a root so tests point every reader at a fake tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kw/board.h>
#include <kw/err.h>

#include "sysfs.h"

int kw_sysfs_path(const char *root, const char *rel, char *out, size_t cap)
{
	size_t rl;
	int n;

	if (!root || !root[0])
		root = "/";
	rl = strlen(root);
	while (*rel == '/')
		rel++;
	n = snprintf(out, cap, "%s%s%s", root, rl && root[rl - 1] == '/' ? "" : "/", rel);
	return n < 0 || (size_t)n >= cap ? -KW_EINVAL : 0;
}

int kw_sysfs_read(const char *root, const char *rel, char *buf, size_t cap, char *err,
		  size_t errlen)
{
	char path[KW_SYSFS_PATH_MAX];
	ssize_t len;
	int fd, ret;

	if (cap <= KW_SYSFS_VALUE_MAX)
		return -KW_EINVAL;
	if (kw_sysfs_path(root, rel, path, sizeof(path)) < 0)
		return kw_errf(-KW_EINVAL, err, errlen, "path too long: %.80s/%.80s", root, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		return kw_errf(ret, err, errlen, "%s: %s", path, kw_strerror(ret));
	}
	/* one byte more than the limit tells a long file from one exactly at the limit */
	do
		len = read(fd, buf, KW_SYSFS_VALUE_MAX + 1);
	while (len < 0 && errno == EINTR);
	ret = len < 0 ? -errno : 0;
	close(fd);
	if (ret < 0)
		return kw_errf(ret, err, errlen, "%s: %s", path, kw_strerror(ret));
	if (len > KW_SYSFS_VALUE_MAX)
		return kw_errf(-KW_EMSGSIZE, err, errlen, "%s: longer than %d bytes", path,
			       KW_SYSFS_VALUE_MAX);
	buf[len] = '\0';
	return (int)len;
}

/* Drops one trailing '\n' (sysfs ends every value with one). */
static size_t chomp(const char *buf, size_t len)
{
	return len && buf[len - 1] == '\n' ? len - 1 : len;
}

int kw_sysfs_parse_long(const char *buf, size_t len, long lo, long hi, long *out)
{
	long long v = 0;
	size_t i = 0;
	bool neg = false;

	len = chomp(buf, len);
	if (len && buf[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len || len > 20)
		return -KW_EBADMSG;
	for (; i < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -KW_EBADMSG;
		v = v * 10 + (buf[i] - '0');
		if (v > 1000000000000LL)  /* far beyond any range we ask for; stops overflow */
			return -KW_ERANGE;
	}
	if (neg)
		v = -v;
	if (v < lo || v > hi)
		return -KW_ERANGE;
	*out = (long)v;
	return 0;
}

int kw_thermal_parse(const char *buf, size_t len, int32_t *mc)
{
	long v;
	int ret = kw_sysfs_parse_long(buf, len, -273150, 250000, &v);

	if (ret == 0)
		*mc = (int32_t)v;
	return ret;
}

/* A sysfs word: 1..KW_SYSFS_VALUE_MAX printable bytes, no control bytes. */
static int word(const char *buf, size_t *len)
{
	size_t i, n = chomp(buf, *len);

	if (n == 0 || n > KW_SYSFS_VALUE_MAX)
		return -KW_EBADMSG;
	for (i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
			return -KW_EBADMSG;
	*len = n;
	return 0;
}

static bool is(const char *buf, size_t n, const char *w)
{
	return strlen(w) == n && !memcmp(buf, w, n);
}

int kw_power_parse_type(const char *buf, size_t len, enum kw_power_type *out)
{
	if (word(buf, &len) < 0)
		return -KW_EBADMSG;
	if (is(buf, len, "Mains"))
		*out = KW_POWER_TYPE_MAINS;
	else if (len >= 3 && !memcmp(buf, "USB", 3))  /* USB, USB_C, USB_PD, USB_DCP, ... */
		*out = KW_POWER_TYPE_USB;
	else if (is(buf, len, "Battery"))
		*out = KW_POWER_TYPE_BATTERY;
	else if (is(buf, len, "UPS"))
		*out = KW_POWER_TYPE_UPS;
	else if (is(buf, len, "Wireless"))
		*out = KW_POWER_TYPE_WIRELESS;
	else
		*out = KW_POWER_TYPE_UNKNOWN;
	return 0;
}

int kw_power_parse_status(const char *buf, size_t len, enum kw_power_status *out)
{
	if (word(buf, &len) < 0)
		return -KW_EBADMSG;
	if (is(buf, len, "Charging"))
		*out = KW_POWER_STATUS_CHARGING;
	else if (is(buf, len, "Discharging"))
		*out = KW_POWER_STATUS_DISCHARGING;
	else if (is(buf, len, "Not charging"))
		*out = KW_POWER_STATUS_NOT_CHARGING;
	else if (is(buf, len, "Full"))
		*out = KW_POWER_STATUS_FULL;
	else
		*out = KW_POWER_STATUS_UNKNOWN;
	return 0;
}

int kw_throttle_parse(const char *buf, size_t len, uint32_t *flags)
{
	uint32_t v = 0;
	size_t i = 0, digits = 0;

	len = chomp(buf, len);
	if (len >= 10 && !memcmp(buf, "throttled=", 10))
		i = 10;
	if (len - i >= 2 && buf[i] == '0' && (buf[i + 1] == 'x' || buf[i + 1] == 'X'))
		i += 2;
	for (; i < len; i++, digits++) {
		char c = buf[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -KW_EBADMSG;
		if (digits == 8)
			return -KW_EBADMSG;
		v = v << 4 | d;
	}
	if (digits == 0)
		return -KW_EBADMSG;
	*flags = v;
	return 0;
}

int kw_sysfs_dir_open(const char *root, const char *rel, struct kw_sysfs_dir *d)
{
	char path[KW_SYSFS_PATH_MAX];

	if (kw_sysfs_path(root, rel, path, sizeof(path)) < 0)
		return -KW_EINVAL;
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	d->pos = d->len = 0;
	return 0;
}

const char *kw_sysfs_dir_next(struct kw_sysfs_dir *d)
{
	for (;;) {
		struct dirent64 *e;

		if (d->pos >= d->len) {
			ssize_t n = getdents64(d->fd, d->buf, sizeof(d->buf));

			if (n <= 0)
				return NULL;
			d->len = (size_t)n;
			d->pos = 0;
		}
		e = (struct dirent64 *)(void *)(d->buf + d->pos);
		d->pos += e->d_reclen;
		if (e->d_name[0] == '.')
			continue;
		return e->d_name;
	}
}

void kw_sysfs_dir_close(struct kw_sysfs_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
