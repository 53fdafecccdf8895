/*
 * The node context: the kernel things one node owns (arena, loop with its timers and tasks,
 * the registry of pools, the drain list), so several nodes can live in one process (tests,
 * simulations on the simulated network). The daemon places the node and its arena in static
 * storage (app/main.c); a test gets them from kw_node_create_heap().
 *
 * The kernel knows nothing above it: subsystems keep their own state in structs they carve
 * from the arena, and the application (app/) keeps its pointer to them in `app`, which the
 * kernel never reads. Start-up runs an ordered init table that the application supplies.
 */
#ifndef KW_NODE_H
#define KW_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <kw/arena.h>
#include <kw/loop.h>
#include <kw/pool.h>

struct kw_node;

/* The kernel's own runtime settings; kw_node_config_defaults gives the Kconfig values. */
struct kw_node_config {
	int log_level;                 /* 0..CONFIG_KW_LOG_LEVEL; see kw_log_set_level */
	uint32_t shutdown_drain_ms;    /* how long a stop request waits for work to drain */
};

void kw_node_config_defaults(struct kw_node_config *c);

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
	struct kw_node_config cfg;
	struct kw_pool *pools;                 /* registry of every pool this node owns */
	void *app;                             /* the application's state; never read here */
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
 * must outlive the node) and `cfg` copied in (NULL: Kconfig defaults). Does not run an
 * init table. Return: 0 or -KW_ENOMEM if the arena cannot hold the loop's tables.
 */
int kw_node_init(struct kw_node *n, void *arena_mem, size_t arena_size, struct kw_sys *sys,
		 const struct kw_node_config *cfg);
/* The same over arena memory known to be all zero (kw_arena_init_zeroed). */
int kw_node_init_zeroed(struct kw_node *n, void *arena_mem, size_t arena_size,
			struct kw_sys *sys, const struct kw_node_config *cfg);
/*
 * For tests and simulations: allocates one block holding the node and an arena of
 * `arena_size` bytes (the only heap use; start-up only) and initialises it.
 * Return: the node or NULL. Free with kw_node_destroy_heap.
 */
struct kw_node *kw_node_create_heap(size_t arena_size, struct kw_sys *sys,
				    const struct kw_node_config *cfg);
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

#endif /* KW_NODE_H */
