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
	/* calloc: the block is known zero, so the arena clears nothing it has not handed out
	 * and pages the node never uses stay untouched (kw_arena_init_zeroed) */
	uint8_t *blk = calloc(1, 64 + head + ((arena_size + 63) & ~(size_t)63));
	uint8_t *al = blk ? (uint8_t *)(((uintptr_t)blk + 63) & ~(uintptr_t)63) : NULL;
	struct kw_node *n = (struct kw_node *)(void *)al;

	if (!blk)
		return NULL;
	if (kw_node_init_zeroed(n, al + head, arena_size, sys, cfg) < 0) {
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
