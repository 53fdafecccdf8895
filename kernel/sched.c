/*
 * Cooperative scheduler: an intrusive FIFO run queue of tasks. Each pass runs only the tasks
 * that were queued when the pass began; a task that yields goes to the tail and runs in the
 * next pass, after the loop has polled I/O. That keeps one busy task from starving sockets
 * or other tasks (round-robin fairness), without threads or stacks.
 */
#include <kw/assert.h>
#include <kw/err.h>
#include <kw/loop.h>

#include "loop_priv.h"

static void defer_fire(struct kw_loop *l, struct kw_timer *tm)
{
	kw_task_post(l, (struct kw_task *)tm->arg);
}

void kw_task_init(struct kw_task *t, kw_task_fn fn, void *arg)
{
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	t->queued = false;
	t->runs = 0;
	kw_timer_init(&t->defer, defer_fire, t);
}

void kw_task_post(struct kw_loop *l, struct kw_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	t->next = NULL;
	if (l->rq_tail)
		l->rq_tail->next = t;
	else
		l->rq_head = t;
	l->rq_tail = t;
	l->rq_len++;
}

int kw_task_defer(struct kw_loop *l, struct kw_task *t, uint64_t delay_ms)
{
	return kw_timer_start(l, &t->defer, delay_ms);
}

void kw_task_cancel(struct kw_loop *l, struct kw_task *t)
{
	struct kw_task **pp;

	kw_timer_cancel(l, &t->defer);
	if (!t->queued)
		return;
	for (pp = &l->rq_head; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			if (l->rq_tail == t) {
				/* Find the new tail: the predecessor, or none. */
				struct kw_task *it = l->rq_head;
				while (it && it->next)
					it = it->next;
				l->rq_tail = it;
			}
			l->rq_len--;
			break;
		}
	}
	t->queued = false;
	t->next = NULL;
}

void kw_tasks_run(struct kw_loop *l)
{
	size_t budget = l->rq_len;  /* snapshot: tasks posted now wait for the next pass */

	while (budget-- > 0 && l->rq_head) {
		struct kw_task *t = l->rq_head;
		int ret;

		l->rq_head = t->next;
		if (!l->rq_head)
			l->rq_tail = NULL;
		t->next = NULL;
		t->queued = false;
		l->rq_len--;
		t->runs++;
		l->stats.tasks_run++;
		ret = t->fn(l, t);
		if (ret == KW_TASK_YIELD)
			kw_task_post(l, t);
	}
}
