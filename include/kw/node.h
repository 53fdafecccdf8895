/*
 * The node context: everything mutable a node owns hangs off one `struct kw_node` (loop,
 * timers, pools, and the subsystems' state), so several nodes can live in one process
 * (tests, the 10,000-node simulation). The firmware build places the node and its arena in
 * static storage (kernel/main.c); a test gets the arena from kw_node_create_heap().
 *
 * Subsystems register with the ordered init table (kernel/initcalls.def): each gets its
 * slot in `subsys[]` for its private state, carved from the node's arena at init.
 */
#ifndef KW_NODE_H
#define KW_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include <kw/arena.h>
#include <kw/config.h>
#include <kw/loop.h>
#include <kw/pool.h>

enum kw_subsys_id {
	KW_SUBSYS_BOARD,
	KW_SUBSYS_NET,
	KW_SUBSYS_ML,
	KW_SUBSYS_APP,
	KW_SUBSYS_MAX
};

struct kw_node;

struct kw_initcall {
	const char *name;
	int (*init)(struct kw_node *n);        /* 0 or -KW_E*; may allocate from n->arena */
	void (*shutdown)(struct kw_node *n);   /* may be NULL; runs in reverse order */
};

/*
 * Graceful-stop participants: on SIGTERM every `begin` runs once (stop accepting, send
 * go-away), then the node waits until no `busy` returns true, or until
 * cfg.shutdown_drain_ms passes, before the loop stops. The struct is owned by the module.
 */
struct kw_drain {
	void (*begin)(struct kw_node *n, struct kw_drain *d);
	bool (*busy)(struct kw_node *n, struct kw_drain *d);
	void *arg;
	struct kw_drain *next;
};

struct kw_node {
	struct kw_arena arena;
	struct kw_loop loop;
	struct kw_config cfg;
	struct kw_pool *pools;                 /* registry of every pool this node owns */
	void *subsys[KW_SUBSYS_MAX];           /* owned by each subsystem, from the arena */
	const struct kw_initcall *inits;       /* the table that ran, for shutdown */
	size_t n_inits_up;                     /* how many of them succeeded */
	void *heap_block;                      /* set by kw_node_create_heap only */
	struct kw_drain *drains;
	bool stopping;
	uint64_t stop_deadline_ms;
	struct kw_task stop_task;
};

/*
 * Initialises `n` over caller-owned arena memory, with `sys` as the OS seam (borrowed,
 * must outlive the node) and `cfg` copied in (NULL: Kconfig defaults). Does not run the
 * init table. Return: 0 or -KW_ENOMEM if the arena cannot hold the loop's tables.
 */
int kw_node_init(struct kw_node *n, void *arena_mem, size_t arena_size, struct kw_sys *sys,
		 const struct kw_config *cfg);
/*
 * For tests and simulations: allocates one block holding the node and an arena of
 * `arena_size` bytes (the only heap use; start-up only) and initialises it.
 * Return: the node or NULL. Free with kw_node_destroy_heap.
 */
struct kw_node *kw_node_create_heap(size_t arena_size, struct kw_sys *sys,
				    const struct kw_config *cfg);
void kw_node_destroy_heap(struct kw_node *n);

/*
 * Creates a pool of `count` blocks from the node's arena and registers it for stats and
 * leak checks. Return: 0, -KW_ENOMEM, -KW_EINVAL.
 */
int kw_node_pool_create(struct kw_node *n, struct kw_pool *p, const char *name,
			size_t elem_size, size_t count);
/* Sum of blocks in use over every registered pool (0 when nothing leaked). */
size_t kw_node_pools_in_use(const struct kw_node *n);
/* Calls fn for each registered pool. */
void kw_node_pools_foreach(const struct kw_node *n,
			   void (*fn)(const struct kw_pool *p, void *arg), void *arg);

/*
 * Runs `table` in order. The first failure stops: it is logged with the module's name, the
 * modules already up are shut down in reverse, and its code is returned.
 */
int kw_node_run_inits(struct kw_node *n, const struct kw_initcall *table, size_t count);
/* Shuts down the modules that kw_node_run_inits brought up, in reverse order. */
void kw_node_shutdown(struct kw_node *n);
void kw_node_add_drain(struct kw_node *n, struct kw_drain *d);
/*
 * Starts a graceful stop: runs every drain's begin, then stops the loop (code 0) once nothing
 * is busy or the drain time is over. A second request stops at once.
 */
void kw_node_request_stop(struct kw_node *n);

/* The daemon's default table from kernel/initcalls.def. */
extern const struct kw_initcall kw_default_initcalls[];
extern const size_t kw_default_initcalls_count;

#endif /* KW_NODE_H */
