/* Shared cmocka helpers; see harness.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/node.h>
#ifdef CONFIG_KW_SYS_SIM
#include <kw/sim.h>
#endif

#include "harness.h"

size_t kw_test_loop_bytes(void)
{
	return (size_t)CONFIG_KW_TIMER_MAX * 8 + (size_t)CONFIG_KW_LOOP_MAX_EVENTS * 16 + 256;
}

struct kw_test_node *kw_test_node_new(size_t arena_kib)
{
	struct kw_test_node *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
#ifdef CONFIG_KW_SYS_SIM
	{
		struct kw_arena a;
		size_t bytes = 64 * (4096 + 512) + 4096;
		t->net_mem = aligned_alloc(64, bytes);
		t->net = calloc(1, sizeof(*t->net));
		t->sim = calloc(1, sizeof(*t->sim));
		if (!t->net_mem || !t->net || !t->sim)
			goto fail;
		kw_arena_init(&a, t->net_mem, bytes);
		if (kw_sim_net_init(t->net, &a, 64, 4096) < 0)
			goto fail;
		kw_sim_init(t->sim, t->net);
		/* The loop's timer heap and event array come on top of what the test asked for. */
		t->node = kw_node_create_heap(arena_kib * 1024 + kw_test_loop_bytes(),
					      &t->sim->sys, NULL);
	}
#endif
	if (!t->node)
		goto fail;
	return t;
fail:
	kw_test_node_free(t);
	return NULL;
}

void kw_test_node_free(struct kw_test_node *t)
{
	if (!t)
		return;
	kw_node_destroy_heap(t->node);
	free(t->sim);
	free(t->net);  /* NULL for nodes that joined a shared network */
	free(t->net_mem);
	free(t);
}

struct kw_test_net *kw_test_net_new(int n_socks, size_t rx_bytes)
{
	struct kw_test_net *tn = calloc(1, sizeof(*tn));
#ifdef CONFIG_KW_SYS_SIM
	struct kw_arena a;
	size_t bytes = (size_t)n_socks * (rx_bytes + 512) + 4096;

	if (!tn)
		return NULL;
	tn->mem = aligned_alloc(64, KW_ALIGN_UP(bytes, 64));
	tn->net = calloc(1, sizeof(*tn->net));
	if (!tn->mem || !tn->net)
		goto fail;
	kw_arena_init(&a, tn->mem, KW_ALIGN_UP(bytes, 64));
	if (kw_sim_net_init(tn->net, &a, n_socks, rx_bytes) < 0)
		goto fail;
	return tn;
fail:
#endif
	kw_test_net_free(tn);
	return NULL;
}

void kw_test_net_free(struct kw_test_net *tn)
{
	if (!tn)
		return;
	free(tn->net);
	free(tn->mem);
	free(tn);
}

struct kw_test_node *kw_test_node_join(struct kw_test_net *tn, size_t arena_kib)
{
	struct kw_test_node *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
#ifdef CONFIG_KW_SYS_SIM
	t->sim = calloc(1, sizeof(*t->sim));
	if (!t->sim) {
		free(t);
		return NULL;
	}
	kw_sim_init(t->sim, tn->net);
	t->node = kw_node_create_heap(arena_kib * 1024 + kw_test_loop_bytes(), &t->sim->sys, NULL);
#endif
	if (!t->node) {
		free(t->sim);
		free(t);
		return NULL;
	}
	return t;
}

static void report(const struct kw_pool *p, void *arg)
{
	if (p->used)
		fprintf(stderr, "leak: pool %s holds %zu block(s)\n", p->name, p->used);
}

void kw_test_assert_no_leaks(const struct kw_node *n)
{
	kw_node_pools_foreach(n, report, NULL);
	assert_int_equal(kw_node_pools_in_use(n), 0);
}

void kw_test_rm_dir(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	char p[4352];

	if (!dp)
		return;
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
			unlink(p);
		}
	closedir(dp);
	rmdir(d);
}
