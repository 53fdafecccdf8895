/*
 * Start-up-only heap use for tests and simulations: one block for a node and its arena.
 * The firmware build never links this path (app/main.c uses static storage); this file
 * is the allow-listed exception in `make check-alloc`.
 */
#include <stdlib.h>

#include <kw/node.h>

struct kw_node *kw_node_create_heap(size_t arena_size, struct kw_sys *sys,
				    const struct kw_node_config *cfg)
{
	size_t head = (sizeof(struct kw_node) + 63) & ~(size_t)63;
	uint8_t *blk = aligned_alloc(64, head + ((arena_size + 63) & ~(size_t)63));
	struct kw_node *n = (struct kw_node *)(void *)blk;

	if (!blk)
		return NULL;
	if (kw_node_init(n, blk + head, arena_size, sys, cfg) < 0) {
		free(blk);
		return NULL;
	}
	n->heap_block = blk;
	return n;
}

void kw_node_destroy_heap(struct kw_node *n)
{
	if (n)
		free(n->heap_block);
}
