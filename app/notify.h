/*
 * The systemd service notification protocol (sd_notify(3), "NOTIFY_SOCKET"), without
 * libsystemd: kwnode tells a Type=notify unit READY=1 once its listeners are up, pings
 * WATCHDOG=1 every WATCHDOG_USEC/2 from a loop timer (WatchdogSec=), and says STOPPING=1 when
 * it starts draining. Outside systemd (no NOTIFY_SOCKET) every call is a no-op returning 0.
 *
 * Wire format (systemd.io/NOTIFY_SOCKET, src/libsystemd/sd-daemon/sd-daemon.c): one AF_UNIX
 * SOCK_DGRAM datagram per message, newline-separated KEY=VALUE lines, sent to the path in
 * NOTIFY_SOCKET, or to the abstract name after a leading '@'.
 *
 * Ownership: struct kw_notify is the caller's (static in main.c); it owns the socket it opens
 * (closed by kw_notify_close). The timer borrows the loop until kw_notify_close.
 */
#ifndef KW_APP_NOTIFY_H
#define KW_APP_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <kw/loop.h>

struct kw_notify {
	int fd;                    /* -1 when not under systemd */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_ms;      /* ping period (WATCHDOG_USEC / 2), 0: no watchdog */
	struct kw_timer timer;
	struct kw_loop *loop;      /* borrowed while the watchdog timer is armed */
	uint64_t sent, failed;     /* datagrams sent / refused by the socket */
};

/*
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment and opens the
 * socket. Without NOTIFY_SOCKET: n->fd = -1 and 0. WATCHDOG_PID naming another process means
 * the watchdog is not ours (systemd sets it for the main PID only).
 * Return: 0, -KW_EINVAL for a NOTIFY_SOCKET that is not an absolute path or '@' name, or too
 * long for sun_path, or a WATCHDOG_USEC that is not a positive number; -errno from socket().
 */
int kw_notify_open(struct kw_notify *n);
/* Sends `msg` ("READY=1", ...) as one datagram. Return: 0 (also when not under systemd),
 * -errno from sendto (counted in n->failed; the node keeps running). */
int kw_notify_send(struct kw_notify *n, const char *msg);
/* Arms the WATCHDOG=1 timer on `loop` if WATCHDOG_USEC was set. Return: 0 or kw_timer_start's. */
int kw_notify_watchdog_start(struct kw_notify *n, struct kw_loop *loop);
/* Cancels the timer and closes the socket. Idempotent. */
void kw_notify_close(struct kw_notify *n);

#endif
