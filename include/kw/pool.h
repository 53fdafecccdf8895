/*
 * Fixed-size block pools. A pool owns `count` blocks of `elem_size` bytes carved once from a
 * node's arena (or from storage the caller provides). alloc/free are O(1) free-list
 * operations; exhaustion returns NULL and counts a failure, never aborts and never falls
 * back to the heap. Counters (used, high-water, failures) feed metrics and the tests' leak
 * check. A pool is not thread-safe: it belongs to one event loop.
 */
#ifndef KW_POOL_H
#define KW_POOL_H

#include <stddef.h>
#include <stdint.h>

struct kw_arena;

struct kw_pool {
	const char *name;     /* static string, for logs and stats */
	uint8_t *storage;     /* borrowed: count * stride bytes */
	size_t elem_size;     /* as requested */
	size_t stride;        /* elem_size rounded up to the alignment */
	size_t count;
	void *free_list;
	size_t used;
	size_t high;          /* most blocks ever in use at once */
	size_t fails;         /* allocations refused because the pool was empty */
	struct kw_pool *next; /* registry link (node's list of pools) */
};

struct kw_pool_stats {
	const char *name;
	size_t elem_size, count, used, high, fails;
};

/*
 * Initialises a pool over caller storage of at least kw_pool_storage_size(elem_size, count)
 * bytes, aligned to 16. Return: 0, -KW_EINVAL on a zero size or misaligned storage.
 */
int kw_pool_init(struct kw_pool *p, const char *name, void *storage, size_t elem_size,
		 size_t count);
/* Bytes of storage a pool of `count` blocks of `elem_size` needs. */
size_t kw_pool_storage_size(size_t elem_size, size_t count);
/*
 * Initialises a pool whose storage is carved from `arena` (start-up only).
 * Return: 0, -KW_ENOMEM when the arena is too small, -KW_EINVAL on a zero size.
 */
int kw_pool_init_from_arena(struct kw_pool *p, const char *name, struct kw_arena *arena,
			    size_t elem_size, size_t count);
/* Returns a zeroed block, or NULL when the pool is exhausted (counted in `fails`). */
void *kw_pool_alloc(struct kw_pool *p);
/*
 * Returns a block to its pool. Return: 0, -KW_EINVAL when `obj` is not a block of this pool
 * (out of range or misaligned). A double free is an internal bug and trips KW_ASSERT.
 */
int kw_pool_free(struct kw_pool *p, void *obj);
/* True when `obj` points at the start of one of the pool's blocks. */
int kw_pool_owns(const struct kw_pool *p, const void *obj);
void kw_pool_get_stats(const struct kw_pool *p, struct kw_pool_stats *st);

#endif /* KW_POOL_H */
