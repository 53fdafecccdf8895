/*
 * Start-up arena: a bump allocator over one block of memory that the firmware build places
 * in static storage and a test or simulation allocates once. Pools, timer heaps and other
 * fixed tables are carved from it while a node initialises; nothing is ever returned to it
 * individually. Not for hot paths: use pools there.
 */
#ifndef KW_ARENA_H
#define KW_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_arena {
	uint8_t *base;   /* borrowed: owned by whoever created the arena */
	size_t size;
	size_t used;
	size_t high;     /* bytes used at most (reset keeps it) */
	bool zeroed;     /* bytes past `high` are known to be zero (kw_arena_init_zeroed) */
};

/* Wraps `mem` (size bytes, caller-owned, must outlive the arena). */
void kw_arena_init(struct kw_arena *a, void *mem, size_t size);
/*
 * The same for memory known to be all zero (calloc, a fresh mapping): allocations past the
 * highest use so far are not cleared again, so pages a node reserves but never uses are
 * never written (a simulation of a thousand nodes pays only for the pages they touch).
 */
void kw_arena_init_zeroed(struct kw_arena *a, void *mem, size_t size);
/* Returns `size` bytes aligned to `align` (a power of two), zeroed, or NULL when full. */
void *kw_arena_alloc(struct kw_arena *a, size_t size, size_t align);
/* Bytes still free (ignoring alignment padding of the next request). */
size_t kw_arena_free_bytes(const struct kw_arena *a);

#endif /* KW_ARENA_H */
