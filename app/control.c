/*
 * The control socket of a running node: <data_dir>/control.sock, a unix stream socket of
 * mode 0600 (the data directory itself is 0700), served on the node's loop. `kwnode dht ...`
 * given the data directory of a running node talks to it here instead of starting a second
 * node with the same identity. `kwnode status` asks it for the node's status (app/status.h).
 *
 * Protocol (app/dht.h): one command per connection. The client sends one line ("dht VERB
 * HEX [HEX]\n", at most KW_DHT_LINE_MAX bytes), the node answers with reply lines ending in
 * "exit N\n" and closes. A line that is too long, malformed or not a known command gets an
 * "error ..." line and exit 2; a client that sends no whole line within
 * CONTROL_READ_TIMEOUT_MS is closed. At most CONTROL_CLIENTS connections are served at
 * once; a further one is told "error busy" and closed.
 *
 * Start-up: if control.sock exists and answers, another node runs with this data directory:
 * the start fails saying so (two nodes with one identity would fight over the peer ID). A
 * socket file nobody answers is a leftover of a killed node and is replaced.
 *
 * `kwnode hivemind ...` sends "hivemind VERB ..." (app/hm_line.h); with the Hivemind DHT on,
 * one such command runs at a time (its slot, about 150 KiB, is made at start-up); a second one
 * meanwhile is told "error busy".
 *
 * Owns: the listening socket, CONTROL_CLIENTS client slots (request line, reply buffer and a
 * parsed request each, about 100 KiB together) and the hivemind command slot from the node's
 * arena.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>

#include "dht.h"
#include "status.h"
#ifdef CONFIG_KW_APP_HIVEMIND
#include "hm_line.h"
#endif

#define CONTROL_CLIENTS 2
#define CONTROL_READ_TIMEOUT_MS 10000u

int kw_app_control_init(struct kw_node *n);
void kw_app_control_shutdown(struct kw_node *n);

enum cl_state { CL_FREE, CL_READ, CL_RUN, CL_WRITE };

struct ctl_client {
	struct kw_control *ctl;
	int fd;                 /* -1 once closed (an operation may still be running) */
	uint8_t state;
	struct kw_watch w;
	struct kw_timer timer;
	size_t rlen, wlen, woff;
	const char *wp;         /* what is being written: wbuf, or the hivemind command's reply */
	char rbuf[KW_DHT_LINE_MAX + 1];
	char wbuf[KW_DHT_REPLY_MAX];
	struct kw_dht_req req;
};

struct kw_control {
	struct kw_node *n;
	struct kw_app *app;
	int fd;
	bool closed;
	struct kw_watch w;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
#ifdef CONFIG_KW_APP_HIVEMIND
	struct kw_hm_cmd *hm;          /* NULL when the Hivemind DHT is off */
	struct ctl_client *hm_user;    /* the client whose command holds it, or NULL */
#endif
	struct ctl_client cl[CONTROL_CLIENTS];
};

#ifdef CONFIG_KW_APP_HIVEMIND
_Static_assert(KW_HM_LINE_MAX <= KW_DHT_LINE_MAX, "a hivemind line must fit the request buffer");
#endif

/* The slot is free again; a hivemind command it held (its reply written) is released. */
static void cl_free(struct ctl_client *c)
{
	c->state = CL_FREE;
#ifdef CONFIG_KW_APP_HIVEMIND
	if (c->ctl->hm_user == c)
		c->ctl->hm_user = NULL;
#endif
}

static void cl_close(struct ctl_client *c)
{
	struct kw_loop *l = &c->ctl->n->loop;

	kw_timer_cancel(l, &c->timer);
	if (c->fd >= 0) {
		kw_loop_unwatch(l, &c->w);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state != CL_RUN)
		cl_free(c);  /* a running operation frees the slot in its callback */
}

static void cl_flush(struct ctl_client *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wp + c->woff, c->wlen - c->woff);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			kw_loop_watch_mod(&c->ctl->n->loop, &c->w, KW_EV_WRITE);
			return;
		}
		if (n <= 0) {
			cl_close(c);  /* the client went away: nothing to tell it */
			return;
		}
		c->woff += (size_t)n;
	}
	cl_close(c);
}

static void cl_reply_from(struct ctl_client *c, const char *buf, size_t len)
{
	if (c->fd < 0) {
		cl_free(c);
		return;
	}
	c->state = CL_WRITE;
	c->wp = buf;
	c->wlen = len;
	c->woff = 0;
	cl_flush(c);
}

static void cl_reply(struct ctl_client *c, size_t len)
{
	cl_reply_from(c, c->wbuf, len);
}

static void cl_error(struct ctl_client *c, const char *msg, int code)
{
	cl_reply(c, kw_dht_format_error(msg, code, c->wbuf, sizeof(c->wbuf)));
}

#ifdef CONFIG_KW_NET_KAD_SWARM
static void on_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct ctl_client *c = (struct ctl_client *)user;

	if (c->ctl->closed) {
		cl_free(c);
		return;
	}
	cl_reply(c, kw_dht_format(&c->req, r, c->wbuf, sizeof(c->wbuf)));
}
#endif

#ifdef CONFIG_KW_APP_HIVEMIND
static void on_hm_done(void *arg, const char *reply, size_t len)
{
	struct ctl_client *c = (struct ctl_client *)arg;

	if (c->ctl->closed) {
		cl_free(c);
		return;
	}
	cl_reply_from(c, reply, len);   /* the slot stays held until the reply is written */
}

/* `kwnode hivemind ...` (app/cmd_hivemind.c): runs on this node's Hivemind DHT. */
static void cl_run_hivemind(struct ctl_client *c, const char *line)
{
	struct kw_control *ctl = c->ctl;
	char err[128], msg[160];

	if (!ctl->hm || !ctl->app->hm_dht) {
		cl_error(c, "the Hivemind DHT is not running on this node (hivemind = on)", 1);
		return;
	}
	if (ctl->hm_user) {
		cl_error(c, "busy: another hivemind command is running on this node", 1);
		return;
	}
	if (kw_hm_req_decode(kw_hm_cmd_req(ctl->hm), line, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "bad control request: %s", err);
		cl_error(c, msg, 2);
		return;
	}
	ctl->hm_user = c;
	c->state = CL_RUN;
	kw_loop_watch_mod(&ctl->n->loop, &c->w, 0);  /* nothing more to read */
	kw_hm_cmd_start(ctl->hm, ctl->n, ctl->app->hm_dht, on_hm_done, c);
}
#endif

static void cl_run(struct ctl_client *c, const char *line)
{
#ifdef CONFIG_KW_NET_KAD_SWARM
	char err[128], msg[160];
	int ret;

	if (!strcmp(line, "status")) {  /* `kwnode status` (app/cmd_status.c) */
		struct kw_status *st = c->ctl->app->status;
		long n = st ? kw_status_control_reply(st, c->wbuf, sizeof(c->wbuf)) : -KW_ENOSYS;

		if (n < 0)
			cl_error(c, "status not available on this node", 1);
		else
			cl_reply(c, (size_t)n);
		return;
	}
#ifdef CONFIG_KW_APP_HIVEMIND
	if (!strncmp(line, "hivemind ", 9)) {
		cl_run_hivemind(c, line);
		return;
	}
#endif
	if (strncmp(line, "dht ", 4)) {
		cl_error(c, "unknown control command (this node serves: dht, hivemind, status)", 2);
		return;
	}
	if (!c->ctl->app->kad) {
		cl_error(c, "the DHT is not running on this node", 1);
		return;
	}
	ret = kw_dht_req_decode(&c->req, line, err, sizeof(err));
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "bad control request: %s", err);
		cl_error(c, msg, 2);
		return;
	}
	c->state = CL_RUN;
	kw_loop_watch_mod(&c->ctl->n->loop, &c->w, 0);  /* nothing more to read */
	ret = kw_dht_req_start(c->ctl->app->kad, &c->req, on_done, c);
	if (ret < 0) {
		c->state = CL_READ;
		snprintf(msg, sizeof(msg), "cannot start the operation: %s", kw_strerror(ret));
		cl_error(c, msg, 1);
	}
#else
	cl_error(c, "unknown control command (the DHT is not built in)", 2);
#endif
}

static void cl_io(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct ctl_client *c = (struct ctl_client *)w->arg;
	char *nl;
	ssize_t n;

	if (c->state == CL_WRITE) {
		cl_flush(c);
		return;
	}
	if (c->state != CL_READ)
		return;
	n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		cl_close(c);
		return;
	}
	c->rlen += (size_t)n;
	c->rbuf[c->rlen] = '\0';
	nl = memchr(c->rbuf, '\n', c->rlen);
	if (!nl) {
		if (c->rlen == sizeof(c->rbuf) - 1)
			cl_error(c, "request line too long", 2);
		return;
	}
	*nl = '\0';
	kw_timer_cancel(l, &c->timer);
	cl_run(c, c->rbuf);
}

static void cl_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct ctl_client *c = (struct ctl_client *)t->arg;

	if (c->state == CL_READ)
		cl_error(c, "no request line received in time", 2);
}

static void on_accept(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct kw_control *ctl = (struct kw_control *)w->arg;

	for (;;) {
		struct ctl_client *c = NULL;
		int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		size_t i;

		if (fd < 0)
			return;
		for (i = 0; i < CONTROL_CLIENTS; i++)
			if (ctl->cl[i].state == CL_FREE) {
				c = &ctl->cl[i];
				break;
			}
		if (!c) {
			static const char busy[] = "error busy: too many control connections\nexit 1\n";

			KW_LOG_WRN(control, "control connection refused: %d already served",
				   CONTROL_CLIENTS);
			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* best effort: the client sees the close either way */
			}
			close(fd);
			continue;
		}
		c->fd = fd;
		c->state = CL_READ;
		c->rlen = 0;
		if (kw_loop_watch(l, &c->w, fd, KW_EV_READ, cl_io, c) < 0) {
			close(fd);
			c->fd = -1;
			c->state = CL_FREE;
			continue;
		}
		kw_timer_start(l, &c->timer, CONTROL_READ_TIMEOUT_MS);
	}
}

/* Whether a node answers on path (a live socket, not a leftover file). */
static bool answers(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int kw_app_control_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_control *ctl;
	struct sockaddr_un sa;
	mode_t old;
	size_t i;
	int ret;

	ctl = (struct kw_control *)kw_arena_alloc(&n->arena, sizeof(*ctl), 16);
	if (!ctl)
		return -KW_ENOMEM;
	memset(ctl, 0, offsetof(struct kw_control, cl));
	ctl->n = n;
	ctl->app = app;
	ctl->fd = -1;
	for (i = 0; i < CONTROL_CLIENTS; i++) {
		ctl->cl[i].ctl = ctl;
		ctl->cl[i].fd = -1;
		ctl->cl[i].state = CL_FREE;
		kw_timer_init(&ctl->cl[i].timer, cl_timeout, &ctl->cl[i]);
	}
	if (kw_control_path(app->cfg.data_dir, ctl->path, sizeof(ctl->path)) < 0) {
		KW_LOG_WRN(control, "data directory path too long for a unix socket: no control "
			   "socket (kwnode dht cannot reach this node)");
		return 0;
	}
	if (answers(ctl->path)) {
		KW_LOG_ERR(control, "another kwnode is running with data directory %s (%s "
			   "answers); stop it first", app->cfg.data_dir, ctl->path);
		return -KW_EBUSY;
	}
	unlink(ctl->path);  /* a leftover of a node that did not exit cleanly */
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, ctl->path, strlen(ctl->path) + 1);
	old = umask(0177);  /* created 0600: only the node's user may drive it */
	ret = bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (ret == 0 && listen(ctl->fd, 8) < 0)
		ret = -errno;
	if (ret == 0)
		ret = kw_loop_watch(&n->loop, &ctl->w, ctl->fd, KW_EV_READ, on_accept, ctl);
	if (ret < 0) {
		KW_LOG_ERR(control, "control socket %s: %s", ctl->path, kw_strerror(ret));
		close(ctl->fd);
		unlink(ctl->path);
		return ret;
	}
#ifdef CONFIG_KW_APP_HIVEMIND
	if (app->hm_dht) {
		ctl->hm = kw_hm_cmd_create(&n->arena);
		if (!ctl->hm)
			KW_LOG_WRN(control, "no room for the hivemind command slot: `kwnode hivemind` "
				   "cannot run on this node");
	}
#endif
	app->ctl = ctl;
	KW_LOG_DBG(control, "control socket %s", ctl->path);
	return 0;
}

void kw_app_control_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_control *ctl = app ? app->ctl : NULL;
	size_t i;

	if (!ctl)
		return;
	ctl->closed = true;
#ifdef CONFIG_KW_APP_HIVEMIND
	if (ctl->hm)
		kw_hm_cmd_cancel(ctl->hm);
#endif
	for (i = 0; i < CONTROL_CLIENTS; i++)
		if (ctl->cl[i].state != CL_FREE)
			cl_close(&ctl->cl[i]);
	kw_loop_unwatch(&n->loop, &ctl->w);
	close(ctl->fd);
	unlink(ctl->path);
	app->ctl = NULL;
}
