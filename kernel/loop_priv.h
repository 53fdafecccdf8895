/* Shared between loop.c, timer.c and sched.c only. */
#ifndef KW_LOOP_PRIV_H
#define KW_LOOP_PRIV_H

#include <kw/loop.h>

void kw_timers_run(struct kw_loop *l);
void kw_tasks_run(struct kw_loop *l);

#endif
