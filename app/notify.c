/*
 * sd_notify without libsystemd (app/notify.h): the datagram protocol systemd documents in
 * systemd.io/NOTIFY_SOCKET and implements in src/libsystemd/sd-daemon/sd-daemon.c (v252,
 * Debian bookworm's): a path or '@'-prefixed abstract name, one message per datagram.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kw/err.h>
#include <kw/log.h>

#include "notify.h"

static void on_watchdog(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_notify *n = (struct kw_notify *)t->arg;

	kw_notify_send(n, "WATCHDOG=1");
	kw_timer_start(l, t, n->watchdog_ms);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -KW_EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -KW_EINVAL;
	*out = v;
	return 0;
}

int kw_notify_open(struct kw_notify *n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;
	uint64_t usec = 0, pid;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	kw_timer_init(&n->timer, on_watchdog, n);
	if (!path || !*path)
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path)) {
		KW_LOG_ERR(main, "NOTIFY_SOCKET '%s': not an absolute path or @name that fits sun_path",
			   path);
		return -KW_EINVAL;
	}
	if (wd && *wd) {
		if (parse_u64(wd, &usec) < 0 || usec == 0) {
			KW_LOG_ERR(main, "WATCHDOG_USEC '%s': not a positive number of microseconds", wd);
			return -KW_EINVAL;
		}
		/* systemd sets WATCHDOG_PID to the main PID; a child that inherited it stays quiet */
		if (wpid && *wpid && (parse_u64(wpid, &pid) < 0 || pid != (uint64_t)getpid()))
			usec = 0;
	}
	/* sd_watchdog_enabled(3) advises pinging at half the interval; at least every 1 ms */
	n->watchdog_ms = usec ? (usec / 2000 ? usec / 2000 : 1) : 0;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0';  /* abstract name: no trailing NUL counted */
	n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				  (path[0] == '@' ? 0 : 1));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0)
		return -errno;
	return 0;
}

int kw_notify_send(struct kw_notify *n, const char *msg)
{
	if (n->fd < 0)
		return 0;
	if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
		   n->addr_len) < 0) {
		int ret = -errno;

		/* the first failure is logged; later ones only counted (a ping every 15 s) */
		if (n->failed++ == 0)
			KW_LOG_WRN(main, "sd_notify %s: %s", msg, kw_strerror(ret));
		return ret;
	}
	n->sent++;
	return 0;
}

int kw_notify_watchdog_start(struct kw_notify *n, struct kw_loop *loop)
{
	if (n->fd < 0 || !n->watchdog_ms)
		return 0;
	n->loop = loop;
	/* the loop's cached clock dates from before the inits (key load, listeners) */
	kw_loop_update_time(loop);
	return kw_timer_start(loop, &n->timer, n->watchdog_ms);
}

void kw_notify_close(struct kw_notify *n)
{
	if (n->loop)
		kw_timer_cancel(n->loop, &n->timer);
	n->loop = NULL;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
