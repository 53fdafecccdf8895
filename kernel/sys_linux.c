/*
 * The Linux OS seam: CLOCK_MONOTONIC, epoll and non-blocking sockets. Every call maps
 * errno to a negated KW_E* (the same numbers) and never blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/sys.h>

#define LX(s) KW_CONTAINER_OF(s, struct kw_sys_linux, sys)

static uint64_t lx_now_ms(struct kw_sys *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t to_epoll(uint32_t ev)
{
	return ((ev & KW_EV_READ) ? EPOLLIN | EPOLLRDHUP : 0) | ((ev & KW_EV_WRITE) ? EPOLLOUT : 0);
}

static int lx_watch_add(struct kw_sys *s, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(LX(s)->epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static int lx_watch_mod(struct kw_sys *s, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(LX(s)->epfd, EPOLL_CTL_MOD, fd, &e) < 0 ? -errno : 0;
}

static int lx_watch_del(struct kw_sys *s, int fd)
{
	struct epoll_event e = { 0 };

	return epoll_ctl(LX(s)->epfd, EPOLL_CTL_DEL, fd, &e) < 0 ? -errno : 0;
}

static int lx_wait(struct kw_sys *s, struct kw_sys_event *ev, int max, int timeout_ms)
{
	struct epoll_event e[64];
	int n, i;

	if (max > (int)KW_ARRAY_SIZE(e))
		max = (int)KW_ARRAY_SIZE(e);
	n = epoll_wait(LX(s)->epfd, e, max, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		uint32_t r = 0;
		if (e[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI))
			r |= KW_EV_READ;
		if (e[i].events & EPOLLOUT)
			r |= KW_EV_WRITE;
		if (e[i].events & EPOLLERR)
			r |= KW_EV_ERR | KW_EV_READ | KW_EV_WRITE;
		if (e[i].events & EPOLLHUP)
			r |= KW_EV_HUP | KW_EV_READ;
		ev[i].ptr = e[i].data.ptr;
		ev[i].events = r;
	}
	return n;
}

static long lx_read(struct kw_sys *s, int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (long)n;
}

static long lx_write(struct kw_sys *s, int fd, const void *buf, size_t len)
{
	ssize_t n;

	/* send() with MSG_NOSIGNAL so a peer that went away costs -EPIPE, not SIGPIPE. */
	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ENOTSOCK) {
		do
			n = write(fd, buf, len);
		while (n < 0 && errno == EINTR);
	}
	return n < 0 ? -errno : (long)n;
}

static int lx_close(struct kw_sys *s, int fd)
{
	return close(fd) < 0 ? -errno : 0;
}

static int lx_tcp_socket(struct kw_sys *s, int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	int one = 1;

	if (fd < 0)
		return -errno;
	/* Frames are coalesced by the caller; Nagle would only add latency to handshakes. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int lx_connect(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len)
{
	if (connect(fd, sa, len) < 0)
		return errno == EINPROGRESS ? -KW_EINPROGRESS : -errno;
	return 0;
}

static int lx_bind_listen(struct kw_sys *s, int fd, const struct sockaddr *sa, socklen_t len,
			  int backlog)
{
	int one = 1;

	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0)
		return -errno;
	return 0;
}

static int lx_accept(struct kw_sys *s, int lfd, struct sockaddr_storage *peer, socklen_t *len)
{
	int fd, one = 1;

	*len = sizeof(*peer);
	fd = accept4(lfd, (struct sockaddr *)peer, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int lx_sock_error(struct kw_sys *s, int fd)
{
	int err = 0;
	socklen_t l = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		return -errno;
	return -err;
}

static int lx_local_addr(struct kw_sys *s, int fd, struct sockaddr_storage *sa, socklen_t *len)
{
	*len = sizeof(*sa);
	return getsockname(fd, (struct sockaddr *)sa, len) < 0 ? -errno : 0;
}

static int lx_shutdown_write(struct kw_sys *s, int fd)
{
	return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

static int lx_close_abort(struct kw_sys *s, int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));  /* close still runs */
	return close(fd) < 0 ? -errno : 0;
}

/* An eventfd: one counter, any number of wake() calls read back as one readable event. */
static int lx_wake_open(struct kw_sys *s)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Thread-safe: a write(2) on an eventfd is atomic; EAGAIN means the counter is already
 * non-zero, so the loop will wake anyway. */
static int lx_wake(struct kw_sys *s, int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static const struct kw_sys_ops g_linux_ops = {
	.now_ms = lx_now_ms,
	.watch_add = lx_watch_add,
	.watch_mod = lx_watch_mod,
	.watch_del = lx_watch_del,
	.wait = lx_wait,
	.read = lx_read,
	.write = lx_write,
	.close = lx_close,
	.tcp_socket = lx_tcp_socket,
	.connect = lx_connect,
	.bind_listen = lx_bind_listen,
	.accept = lx_accept,
	.sock_error = lx_sock_error,
	.local_addr = lx_local_addr,
	.shutdown_write = lx_shutdown_write,
	.close_abort = lx_close_abort,
	.wake_open = lx_wake_open,
	.wake = lx_wake,
};

int kw_sys_linux_open(struct kw_sys_linux *s)
{
	s->sys.ops = &g_linux_ops;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	return s->epfd < 0 ? -errno : 0;
}

void kw_sys_linux_close(struct kw_sys_linux *s)
{
	if (s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
}
