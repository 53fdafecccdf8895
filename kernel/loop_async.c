/*
 * Completions handed to the loop from other threads (include/kw/loop.h kw_loop_async_*).
 * One wake fd per loop, opened with the first active handle: a sender marks its handle
 * pending and writes the fd only when no wake is already in flight, so a burst of
 * completions costs one write and one read. The loop clears wake_sent before it looks at the
 * handles: a send that lands after a handle was looked at finds wake_sent false and wakes
 * the next pass, so no completion is left waiting for an unrelated event.
 */
#include <stdint.h>

#include <kw/err.h>
#include <kw/loop.h>

static void on_wake(struct kw_loop *l, struct kw_watch *w, uint32_t revents)
{
	uint64_t v;
	struct kw_async *a, *next;

	(void)w;
	(void)revents;
	while (l->sys->ops->read(l->sys, l->wake_fd, &v, sizeof(v)) > 0)
		;
	l->stats.async_wakes++;
	atomic_store(&l->wake_sent, false);
	for (a = l->asyncs; a; a = next) {
		next = a->next;   /* a callback may stop its own handle */
		if (atomic_exchange(&a->pending, false)) {
			l->stats.async_runs++;
			a->cb(l, a);
		}
	}
}

bool kw_loop_async_supported(const struct kw_loop *l)
{
	return l->sys->ops->wake_open && l->sys->ops->wake;
}

int kw_loop_async_init(struct kw_loop *l, struct kw_async *a, kw_async_fn cb, void *arg)
{
	int fd, ret;

	if (!cb)
		return -KW_EINVAL;
	if (!kw_loop_async_supported(l))
		return -KW_ENOTSUP;
	if (a->active)
		return -KW_EALREADY;
	if (!l->asyncs) {
		fd = l->sys->ops->wake_open(l->sys);
		if (fd < 0)
			return fd;
		l->wake_fd = fd;
		l->wake_w.active = false;
		ret = kw_loop_watch(l, &l->wake_w, fd, KW_EV_READ, on_wake, NULL);
		if (ret < 0) {
			(void)l->sys->ops->close(l->sys, fd);
			return ret;
		}
		atomic_store(&l->wake_sent, false);
	}
	a->cb = cb;
	a->arg = arg;
	atomic_store(&a->pending, false);
	a->next = l->asyncs;
	l->asyncs = a;
	a->active = true;
	return 0;
}

int kw_loop_async_send(struct kw_loop *l, struct kw_async *a)
{
	if (!a->active)
		return -KW_EINVAL;
	if (atomic_exchange(&a->pending, true))
		return 0;   /* already due: the loop will see it */
	if (atomic_exchange(&l->wake_sent, true))
		return 0;   /* a wake is in flight and the loop looks at every handle after it */
	return l->sys->ops->wake(l->sys, l->wake_fd);
}

void kw_loop_async_stop(struct kw_loop *l, struct kw_async *a)
{
	struct kw_async **pp;

	if (!a->active)
		return;
	for (pp = &l->asyncs; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	a->active = false;
	atomic_store(&a->pending, false);
	if (!l->asyncs) {
		kw_loop_unwatch(l, &l->wake_w);
		(void)l->sys->ops->close(l->sys, l->wake_fd);
		l->wake_fd = -1;
	}
}
