/*
 * The seam between the node and the operating system: the monotonic clock, fd readiness and
 * socket I/O. The event loop and net/tcp reach the OS only through a `struct kw_sys`, so a
 * test or a deterministic simulation drives virtual time and a virtual network through the
 * same code paths (kernel/sys_sim.c). The Linux implementation (kernel/sys_linux.c) uses
 * CLOCK_MONOTONIC, epoll and non-blocking sockets.
 *
 * Every operation returns >= 0 or a negated KW_E* code (never sets errno as its API).
 */
#ifndef KW_SYS_H
#define KW_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Readiness bits, shared by the loop and every backend. */
#define KW_EV_READ  0x1u
#define KW_EV_WRITE 0x2u
#define KW_EV_ERR   0x4u
#define KW_EV_HUP   0x8u

struct kw_sys_event {
	void *ptr;        /* the cookie given to watch_add */
	uint32_t events;  /* KW_EV_* */
};

struct kw_sys;

struct kw_sys_ops {
	uint64_t (*now_ms)(struct kw_sys *s);
	int (*watch_add)(struct kw_sys *s, int fd, uint32_t events, void *ptr);
	int (*watch_mod)(struct kw_sys *s, int fd, uint32_t events, void *ptr);
	int (*watch_del)(struct kw_sys *s, int fd);
	/* Waits up to timeout_ms (-1: forever, 0: poll). Returns the number of events filled. */
	int (*wait)(struct kw_sys *s, struct kw_sys_event *ev, int max, int timeout_ms);
	long (*read)(struct kw_sys *s, int fd, void *buf, size_t len);        /* 0 = EOF */
	long (*write)(struct kw_sys *s, int fd, const void *buf, size_t len);
	int (*close)(struct kw_sys *s, int fd);
	/* Stream sockets, always non-blocking. */
	int (*tcp_socket)(struct kw_sys *s, int family);
	int (*connect)(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len);
	int (*bind_listen)(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len,
			   int backlog);
	int (*accept)(struct kw_sys *s, int lfd, struct sockaddr_storage *peer, socklen_t *len);
	int (*sock_error)(struct kw_sys *s, int fd);  /* pending SO_ERROR as -KW_E*, or 0 */
	int (*local_addr)(struct kw_sys *s, int fd, struct sockaddr_storage *sa, socklen_t *len);
	int (*shutdown_write)(struct kw_sys *s, int fd);
	/* Abortive close (TCP RST, SO_LINGER 0): unsent data is dropped and the peer's next
	 * read fails with -KW_ECONNRESET instead of seeing EOF. NULL: callers use close. */
	int (*close_abort)(struct kw_sys *s, int fd);
	/* Cross-thread wake-up (kw_loop_async): wake_open returns a new fd that reads ready
	 * once wake(fd) was called from any thread (the loop reads it empty and closes it with
	 * close). NULL: the backend has none (kernel/sys_sim.c, where nothing runs outside the
	 * loop's thread). */
	int (*wake_open)(struct kw_sys *s);
	int (*wake)(struct kw_sys *s, int fd);
};

struct kw_sys {
	const struct kw_sys_ops *ops;
};

/*
 * Linux backend. The epoll fd is owned by the struct; kw_sys_linux_close releases it.
 * Return: 0 or -errno from epoll_create1.
 */
struct kw_sys_linux {
	struct kw_sys sys;
	int epfd;
};
int kw_sys_linux_open(struct kw_sys_linux *s);
void kw_sys_linux_close(struct kw_sys_linux *s);

#endif /* KW_SYS_H */
