/*
 * Monotonic timers in a binary min-heap keyed by (deadline, seq). The heap stores pointers
 * to intrusive kw_timer structs, each remembering its slot, so start, re-arm and cancel are
 * O(log n) and the next deadline is O(1); ten thousand timers cost 80 KiB of heap slots and
 * nothing per operation. seq makes equal deadlines fire in arming order (deterministic
 * simulations depend on it).
 */
#include <kw/assert.h>
#include <kw/err.h>
#include <kw/loop.h>

#include "loop_priv.h"

static inline int t_less(const struct kw_timer *a, const struct kw_timer *b)
{
	if (a->deadline_ms != b->deadline_ms)
		return a->deadline_ms < b->deadline_ms;
	return a->seq < b->seq;
}

static inline void heap_set(struct kw_loop *l, uint32_t i, struct kw_timer *t)
{
	l->heap[i] = t;
	t->heap_idx = i;
}

static void sift_up(struct kw_loop *l, uint32_t i)
{
	struct kw_timer *t = l->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!t_less(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void sift_down(struct kw_loop *l, uint32_t i)
{
	struct kw_timer *t = l->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= l->heap_len)
			break;
		if (c + 1 < l->heap_len && t_less(l->heap[c + 1], l->heap[c]))
			c++;
		if (!t_less(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_remove(struct kw_loop *l, struct kw_timer *t)
{
	uint32_t i = t->heap_idx;
	struct kw_timer *last;

	KW_ASSERT(i < l->heap_len && l->heap[i] == t);
	last = l->heap[--l->heap_len];
	t->heap_idx = KW_TIMER_IDLE;
	if (last == t)
		return;
	heap_set(l, i, last);
	if (i > 0 && t_less(last, l->heap[(i - 1) / 2]))
		sift_up(l, i);
	else
		sift_down(l, i);
}

void kw_timer_init(struct kw_timer *t, kw_timer_fn cb, void *arg)
{
	t->deadline_ms = 0;
	t->seq = 0;
	t->heap_idx = KW_TIMER_IDLE;
	t->cb = cb;
	t->arg = arg;
}

int kw_timer_start_at(struct kw_loop *l, struct kw_timer *t, uint64_t deadline_ms)
{
	if (kw_timer_armed(t))
		heap_remove(l, t);
	if (l->heap_len >= l->heap_cap)
		return -KW_ENOSPC;
	t->deadline_ms = deadline_ms;
	t->seq = l->timer_seq++;
	l->heap[l->heap_len] = t;
	t->heap_idx = l->heap_len++;
	sift_up(l, t->heap_idx);
	if (l->heap_len > l->stats.timers_high)
		l->stats.timers_high = l->heap_len;
	return 0;
}

int kw_timer_start(struct kw_loop *l, struct kw_timer *t, uint64_t delay_ms)
{
	return kw_timer_start_at(l, t, l->now_ms + delay_ms);
}

void kw_timer_cancel(struct kw_loop *l, struct kw_timer *t)
{
	if (kw_timer_armed(t))
		heap_remove(l, t);
}

int64_t kw_loop_next_timeout(const struct kw_loop *l)
{
	if (l->heap_len == 0)
		return -1;
	if (l->heap[0]->deadline_ms <= l->now_ms)
		return 0;
	return (int64_t)(l->heap[0]->deadline_ms - l->now_ms);
}

/*
 * Fires every timer due at `now`. Timers armed by callbacks for a time already due get a
 * fresh seq, so a callback that re-arms itself with delay 0 cannot starve the loop: it waits
 * behind everything that was due when this pass started.
 */
void kw_timers_run(struct kw_loop *l)
{
	uint64_t limit_seq = l->timer_seq;

	while (l->heap_len > 0) {
		struct kw_timer *t = l->heap[0];
		if (t->deadline_ms > l->now_ms || t->seq >= limit_seq)
			break;
		heap_remove(l, t);
		l->stats.timers_fired++;
		t->cb(l, t);
	}
}
