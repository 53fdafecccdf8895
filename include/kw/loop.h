/*
 * The event loop: one per node, single-threaded. It owns fd watchers, monotonic timers and
 * the cooperative run queue, and reaches the OS only through `struct kw_sys` (kw/sys.h).
 *
 * Each iteration: (1) timeout = 0 if tasks are runnable, else time to the next timer;
 * (2) wait for readiness; (3) dispatch fd callbacks; (4) fire expired timers; (5) run the
 * tasks that were runnable when the pass began; (6) before-sleep hooks.
 *
 * Watchers, timers and tasks are intrusive: the owner embeds them in its own (pooled) struct
 * and must stop/cancel them before freeing that struct. Nothing here allocates after init.
 */
#ifndef KW_LOOP_H
#define KW_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/sys.h>

struct kw_arena;
struct kw_loop;

/* ---- fd watchers ---- */
struct kw_watch;
typedef void (*kw_watch_fn)(struct kw_loop *l, struct kw_watch *w, uint32_t revents);
struct kw_watch {
	int fd;
	uint32_t events;   /* KW_EV_READ | KW_EV_WRITE */
	kw_watch_fn cb;
	void *arg;
	bool active;
};

/* ---- timers (binary min-heap; O(log n) start/cancel, O(1) next deadline) ---- */
struct kw_timer;
typedef void (*kw_timer_fn)(struct kw_loop *l, struct kw_timer *t);
struct kw_timer {
	uint64_t deadline_ms;
	uint64_t seq;          /* FIFO order among equal deadlines */
	uint32_t heap_idx;     /* KW_TIMER_IDLE when not armed */
	kw_timer_fn cb;
	void *arg;
};
#define KW_TIMER_IDLE UINT32_MAX

/* ---- cooperative tasks ---- */
enum kw_task_ret { KW_TASK_DONE = 0, KW_TASK_YIELD = 1 };
struct kw_task;
/* A task runs to its next yield point and returns; state lives in its struct, never the stack. */
typedef int (*kw_task_fn)(struct kw_loop *l, struct kw_task *t);
struct kw_task {
	kw_task_fn fn;
	void *arg;
	struct kw_task *next;
	bool queued;
	struct kw_timer defer;   /* used by kw_task_defer */
	uint64_t runs;           /* times run; fairness tests and metrics */
};

/* ---- before-sleep hooks (flush coalesced writes) ---- */
struct kw_hook {
	void (*fn)(struct kw_loop *l, struct kw_hook *h);
	void *arg;
	struct kw_hook *next;
};

/* ---- completions handed back from other threads (kw_loop_async_*) ---- */
struct kw_async;
typedef void (*kw_async_fn)(struct kw_loop *l, struct kw_async *a);
struct kw_async {
	kw_async_fn cb;
	void *arg;
	_Atomic bool pending;    /* sent and not yet run */
	bool active;
	struct kw_async *next;   /* the loop's list of active handles */
};

struct kw_loop_stats {
	uint64_t iterations, events, timers_fired, tasks_run;
	uint64_t async_wakes, async_runs;   /* wake fd reads; kw_async callbacks run */
	size_t timers_armed, timers_high;
};

struct kw_loop {
	struct kw_sys *sys;              /* borrowed */
	struct kw_timer **heap;          /* from the arena: max_timers slots */
	uint32_t heap_len, heap_cap;
	uint64_t timer_seq;
	struct kw_sys_event *events;     /* from the arena: max_events slots */
	int max_events, n_events, ev_pos;
	struct kw_task *rq_head, *rq_tail;
	size_t rq_len;
	struct kw_hook *hooks;
	uint64_t now_ms;                 /* cached at the start of each pass */
	bool stop;
	int stop_code;
	struct kw_loop_stats stats;
	/* kw_loop_async: the backend's wake fd, open while a handle is active */
	struct kw_async *asyncs;
	struct kw_watch wake_w;
	int wake_fd;
	_Atomic bool wake_sent;          /* a wake is in flight: senders need not write again */
};

/*
 * Initialises a loop; timer heap and event array come from `arena`.
 * Return: 0, -KW_ENOMEM if the arena is too small, -KW_EINVAL on zero sizes.
 */
int kw_loop_init(struct kw_loop *l, struct kw_sys *sys, struct kw_arena *arena,
		 uint32_t max_timers, int max_events);
/* Monotonic milliseconds as cached at the start of the current pass. */
uint64_t kw_loop_now(const struct kw_loop *l);
/* Re-reads the clock through the seam and returns it. */
uint64_t kw_loop_update_time(struct kw_loop *l);

/*
 * Starts watching `fd` (borrowed; caller closes it after kw_loop_unwatch).
 * An empty interest set (events 0) parks the watch: the fd is not polled at all, so an error
 * or hang-up on it is seen only once interest returns (epoll reports EPOLLERR and EPOLLHUP
 * whatever the interest set; a level-triggered fd nobody reads would wake every pass).
 * Return: 0, -KW_EALREADY if `w` is active, or the backend's error.
 */
int kw_loop_watch(struct kw_loop *l, struct kw_watch *w, int fd, uint32_t events,
		  kw_watch_fn cb, void *arg);
/* Changes the interest set (0 parks it, see above). Return: 0, -KW_EINVAL if not active, or
 * the backend's error. */
int kw_loop_watch_mod(struct kw_loop *l, struct kw_watch *w, uint32_t events);
/*
 * Stops watching. Safe from inside any callback: pending events for `w` in the current pass
 * are discarded, so the owner may free `w` right after. Idempotent.
 */
void kw_loop_unwatch(struct kw_loop *l, struct kw_watch *w);

void kw_timer_init(struct kw_timer *t, kw_timer_fn cb, void *arg);
/*
 * Arms (or re-arms) `t` to fire `delay_ms` after kw_loop_now(). Return: 0, -KW_ENOSPC when
 * the heap (CONFIG_KW_TIMER_MAX) is full.
 */
int kw_timer_start(struct kw_loop *l, struct kw_timer *t, uint64_t delay_ms);
int kw_timer_start_at(struct kw_loop *l, struct kw_timer *t, uint64_t deadline_ms);
/* Disarms `t`; safe if idle or already fired. */
void kw_timer_cancel(struct kw_loop *l, struct kw_timer *t);
static inline bool kw_timer_armed(const struct kw_timer *t) { return t->heap_idx != KW_TIMER_IDLE; }
/* Milliseconds until the earliest deadline, 0 if overdue, -1 if none armed. */
int64_t kw_loop_next_timeout(const struct kw_loop *l);

void kw_task_init(struct kw_task *t, kw_task_fn fn, void *arg);
/* Makes `t` runnable (no-op if queued). Runs in a later pass, never re-entrantly. */
void kw_task_post(struct kw_loop *l, struct kw_task *t);
/* Posts `t` after `delay_ms`. Return: 0 or -KW_ENOSPC (timer heap full). */
int kw_task_defer(struct kw_loop *l, struct kw_task *t, uint64_t delay_ms);
/* Removes `t` from the run queue and cancels a deferral; safe if idle. */
void kw_task_cancel(struct kw_loop *l, struct kw_task *t);

void kw_loop_add_hook(struct kw_loop *l, struct kw_hook *h);
void kw_loop_remove_hook(struct kw_loop *l, struct kw_hook *h);

/*
 * Completions from other threads. A thread that finished work for the loop (the serving
 * compute lane, app/serve_lane.c) calls kw_loop_async_send(); the loop wakes from its wait
 * and runs the handle's callback on its own thread in that pass, before the timers. Sends
 * coalesce: a handle sent several times before it runs runs once, so the callback looks for
 * every finished item it owns. The first active handle opens the backend's wake fd
 * (Linux: an eventfd, watched like any fd); the last one stopped closes it.
 *
 * kw_loop_async_init: loop thread only. Return: 0; -KW_ENOTSUP when the backend has no
 * cross-thread wake (the simulated backend: callers keep their work on the loop there, which
 * keeps simulated runs deterministic); -KW_EALREADY if active; the backend's fd errors.
 */
int kw_loop_async_init(struct kw_loop *l, struct kw_async *a, kw_async_fn cb, void *arg);
/* True when kw_loop_async_init can succeed on this loop's backend. */
bool kw_loop_async_supported(const struct kw_loop *l);
/* Any thread, also from inside the callback; a is valid until kw_loop_async_stop. Return: 0,
 * -KW_EINVAL if a is not active, or the backend's write error. */
int kw_loop_async_send(struct kw_loop *l, struct kw_async *a);
/* Loop thread; the caller has made sure no thread sends to `a` any more. A send not yet run
 * is dropped. Idempotent. */
void kw_loop_async_stop(struct kw_loop *l, struct kw_async *a);

/*
 * Runs one pass, waiting at most `max_wait_ms` (-1: until the next timer or event).
 * Return: 0, or the backend's error from wait().
 */
int kw_loop_run_once(struct kw_loop *l, int max_wait_ms);
/* Runs passes until kw_loop_stop(); returns the stop code. */
int kw_loop_run(struct kw_loop *l);
/* Asks kw_loop_run to return `code` after the current pass. */
void kw_loop_stop(struct kw_loop *l, int code);

#endif /* KW_LOOP_H */
