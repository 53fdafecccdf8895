/*
 * The node context and its ordered init table (house rule 5): the first failing init stops
 * start-up, is logged by name, and the modules already up are shut down in reverse.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

void kw_node_config_defaults(struct kw_node_config *c)
{
	c->log_level = CONFIG_KW_LOG_DEFAULT_LEVEL;
	c->shutdown_drain_ms = CONFIG_KW_SHUTDOWN_DRAIN_MS;
}

static int node_init(struct kw_node *n, void *arena_mem, size_t arena_size, struct kw_sys *sys,
		     const struct kw_node_config *cfg, bool zeroed)
{
	int ret;

	memset(n, 0, sizeof(*n));
	if (zeroed)
		kw_arena_init_zeroed(&n->arena, arena_mem, arena_size);
	else
		kw_arena_init(&n->arena, arena_mem, arena_size);
	if (cfg)
		n->cfg = *cfg;
	else
		kw_node_config_defaults(&n->cfg);
	ret = kw_loop_init(&n->loop, sys, &n->arena, CONFIG_KW_TIMER_MAX, CONFIG_KW_LOOP_MAX_EVENTS);
	if (ret < 0)
		KW_LOG_ERR(node, "arena of %zu bytes cannot hold the loop tables: %s", arena_size,
			   kw_strerror(ret));
	return ret;
}

int kw_node_init(struct kw_node *n, void *arena_mem, size_t arena_size, struct kw_sys *sys,
		 const struct kw_node_config *cfg)
{
	return node_init(n, arena_mem, arena_size, sys, cfg, false);
}

int kw_node_init_zeroed(struct kw_node *n, void *arena_mem, size_t arena_size,
			struct kw_sys *sys, const struct kw_node_config *cfg)
{
	return node_init(n, arena_mem, arena_size, sys, cfg, true);
}

int kw_node_pool_create(struct kw_node *n, struct kw_pool *p, const char *name,
			size_t elem_size, size_t count)
{
	int ret = kw_pool_init_from_arena(p, name, &n->arena, elem_size, count);

	if (ret < 0) {
		KW_LOG_ERR(node, "pool %s (%zu x %zu bytes) does not fit: %zu arena bytes left",
			   name, count, elem_size, kw_arena_free_bytes(&n->arena));
		return ret;
	}
	p->next = n->pools;
	n->pools = p;
	return 0;
}

size_t kw_node_pools_in_use(const struct kw_node *n)
{
	size_t used = 0;
	const struct kw_pool *p;

	for (p = n->pools; p; p = p->next)
		used += p->used;
	return used;
}

void kw_node_pools_foreach(const struct kw_node *n,
			   void (*fn)(const struct kw_pool *p, void *arg), void *arg)
{
	const struct kw_pool *p;

	for (p = n->pools; p; p = p->next)
		fn(p, arg);
}

int kw_node_run_inits(struct kw_node *n, const struct kw_initcall *table, size_t count)
{
	size_t i;

	n->inits = table;
	n->n_inits_up = 0;
	for (i = 0; i < count; i++) {
		int ret = table[i].init(n);
		if (ret < 0) {
			KW_LOG_ERR(node, "init of %s failed: %s; stopping", table[i].name,
				   kw_strerror(ret));
			kw_node_shutdown(n);
			return ret;
		}
		n->n_inits_up = i + 1;
	}
	return 0;
}

void kw_node_shutdown(struct kw_node *n)
{
	while (n->n_inits_up > 0) {
		const struct kw_initcall *ic = &n->inits[--n->n_inits_up];
		if (ic->shutdown)
			ic->shutdown(n);
	}
}

void kw_node_add_drain(struct kw_node *n, struct kw_drain *d)
{
	d->next = n->drains;
	n->drains = d;
}

static bool node_busy(struct kw_node *n)
{
	struct kw_drain *d;

	for (d = n->drains; d; d = d->next)
		if (d->busy && d->busy(n, d))
			return true;
	return false;
}

/* Polls the drains every 20 ms: cheap, and shutdown latency does not need to be tighter. */
static int stop_task_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_node *n = (struct kw_node *)t->arg;

	if (!node_busy(n)) {
		KW_LOG_INF(node, "drained; stopping");
		kw_loop_stop(l, 0);
	} else if (kw_loop_now(l) >= n->stop_deadline_ms) {
		KW_LOG_WRN(node, "drain time of %u ms over with work in flight; stopping anyway",
			   n->cfg.shutdown_drain_ms);
		kw_loop_stop(l, 0);
	} else if (kw_task_defer(l, t, 20) < 0) {
		kw_loop_stop(l, 0);
	}
	return KW_TASK_DONE;
}

void kw_node_request_stop(struct kw_node *n)
{
	struct kw_drain *d;

	if (n->stopping) {
		KW_LOG_WRN(node, "second stop request; stopping now");
		kw_loop_stop(&n->loop, 0);
		return;
	}
	n->stopping = true;
	n->stop_deadline_ms = kw_loop_now(&n->loop) + n->cfg.shutdown_drain_ms;
	for (d = n->drains; d; d = d->next)
		if (d->begin)
			d->begin(n, d);
	kw_task_init(&n->stop_task, stop_task_fn, n);
	kw_task_post(&n->loop, &n->stop_task);
}
