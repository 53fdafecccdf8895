/*
 * The event loop (Redis ae shape, lwIP timeouts): one per node, single-threaded. It never
 * blocks except in the backend's wait(), whose timeout is the time to the next timer, or 0
 * while tasks are runnable.
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/assert.h>
#include <kw/err.h>
#include <kw/loop.h>

#include "loop_priv.h"

int kw_loop_init(struct kw_loop *l, struct kw_sys *sys, struct kw_arena *arena,
		 uint32_t max_timers, int max_events)
{
	if (!sys || max_timers == 0 || max_events <= 0)
		return -KW_EINVAL;
	memset(l, 0, sizeof(*l));
	l->sys = sys;
	l->heap = kw_arena_alloc(arena, sizeof(*l->heap) * max_timers, sizeof(void *));
	l->events = kw_arena_alloc(arena, sizeof(*l->events) * (size_t)max_events, sizeof(void *));
	if (!l->heap || !l->events)
		return -KW_ENOMEM;
	l->heap_cap = max_timers;
	l->max_events = max_events;
	l->now_ms = sys->ops->now_ms(sys);
	return 0;
}

uint64_t kw_loop_now(const struct kw_loop *l)
{
	return l->now_ms;
}

uint64_t kw_loop_update_time(struct kw_loop *l)
{
	uint64_t t = l->sys->ops->now_ms(l->sys);

	if (t > l->now_ms)  /* monotonic even if a simulated clock is set backwards */
		l->now_ms = t;
	return l->now_ms;
}

int kw_loop_watch(struct kw_loop *l, struct kw_watch *w, int fd, uint32_t events,
		  kw_watch_fn cb, void *arg)
{
	int ret;

	if (w->active)
		return -KW_EALREADY;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->arg = arg;
	if (events) {
		ret = l->sys->ops->watch_add(l->sys, fd, events, w);
		if (ret < 0)
			return ret;
	}
	w->active = true;
	return 0;
}

/* Forgets events for w still queued in this pass (unwatched or parked in a callback). */
static void drop_queued(struct kw_loop *l, struct kw_watch *w)
{
	int i;

	for (i = l->ev_pos; i < l->n_events; i++)
		if (l->events[i].ptr == w)
			l->events[i].ptr = NULL;
}

int kw_loop_watch_mod(struct kw_loop *l, struct kw_watch *w, uint32_t events)
{
	int ret;

	if (!w->active)
		return -KW_EINVAL;
	if (events == w->events)
		return 0;
	if (!events) {
		/* parked: out of the poll set, so a pending error or hang-up cannot wake us */
		ret = l->sys->ops->watch_del(l->sys, w->fd);
		if (ret == 0)
			drop_queued(l, w);
	} else if (!w->events)
		ret = l->sys->ops->watch_add(l->sys, w->fd, events, w);
	else
		ret = l->sys->ops->watch_mod(l->sys, w->fd, events, w);
	if (ret == 0)
		w->events = events;
	return ret;
}

void kw_loop_unwatch(struct kw_loop *l, struct kw_watch *w)
{
	if (!w->active)
		return;
	if (w->events)
		(void)l->sys->ops->watch_del(l->sys, w->fd);
	w->active = false;
	drop_queued(l, w);  /* so the owner can free w now */
}

void kw_loop_add_hook(struct kw_loop *l, struct kw_hook *h)
{
	h->next = l->hooks;
	l->hooks = h;
}

void kw_loop_remove_hook(struct kw_loop *l, struct kw_hook *h)
{
	struct kw_hook **pp;

	for (pp = &l->hooks; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			return;
		}
	}
}

int kw_loop_run_once(struct kw_loop *l, int max_wait_ms)
{
	int64_t tmo;
	int n;
	struct kw_hook *h, *next;

	kw_loop_update_time(l);
	tmo = l->rq_head ? 0 : kw_loop_next_timeout(l);
	if (max_wait_ms >= 0 && (tmo < 0 || tmo > max_wait_ms))
		tmo = max_wait_ms;
	if (tmo > INT32_MAX)
		tmo = INT32_MAX;
	if (l->stop)
		tmo = 0;

	n = l->sys->ops->wait(l->sys, l->events, l->max_events, (int)tmo);
	if (n < 0 && n != -KW_EAGAIN && n != -EINTR)
		return n;
	l->stats.iterations++;
	kw_loop_update_time(l);

	l->n_events = n > 0 ? n : 0;
	for (l->ev_pos = 0; l->ev_pos < l->n_events;) {
		struct kw_sys_event ev = l->events[l->ev_pos++];
		struct kw_watch *w = (struct kw_watch *)ev.ptr;
		if (!w || !w->active)
			continue;
		l->stats.events++;
		w->cb(l, w, ev.events);
	}
	l->n_events = l->ev_pos = 0;

	kw_timers_run(l);
	kw_tasks_run(l);
	for (h = l->hooks; h; h = next) {
		next = h->next;  /* a hook may remove itself */
		h->fn(l, h);
	}
	l->stats.timers_armed = l->heap_len;
	return 0;
}

int kw_loop_run(struct kw_loop *l)
{
	while (!l->stop) {
		int ret = kw_loop_run_once(l, -1);
		if (ret < 0)
			return ret;
	}
	l->stop = false;
	return l->stop_code;
}

void kw_loop_stop(struct kw_loop *l, int code)
{
	l->stop = true;
	l->stop_code = code;
}
