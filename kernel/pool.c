/*
 * Fixed-size block pools: an intrusive free list threaded through free blocks (lwIP memp,
 * Zephyr mem_slab). With CONFIG_KW_ASSERT each free block also carries a canary word so a
 * double free is caught at the second free instead of corrupting the list.
 */
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/assert.h>
#include <kw/err.h>
#include <kw/pool.h>

#define POOL_ALIGN 16
#define FREE_CANARY 0x6b77667265656564ull  /* "kwfreeed" */

struct free_blk {
	struct free_blk *next;
	uint64_t canary;
};

size_t kw_pool_storage_size(size_t elem_size, size_t count)
{
	size_t stride = elem_size < sizeof(struct free_blk) ? sizeof(struct free_blk) : elem_size;

	stride = (stride + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
	if (count != 0 && stride > SIZE_MAX / count)
		return SIZE_MAX;
	return stride * count;
}

int kw_pool_init(struct kw_pool *p, const char *name, void *storage, size_t elem_size,
		 size_t count)
{
	size_t i;

	if (!p || !storage || elem_size == 0 || count == 0)
		return -KW_EINVAL;
	if (((uintptr_t)storage & (POOL_ALIGN - 1)) != 0)
		return -KW_EINVAL;
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->storage = (uint8_t *)storage;
	p->elem_size = elem_size;
	p->stride = kw_pool_storage_size(elem_size, 1);
	p->count = count;
	/* Thread the list in address order so early allocations are cache-adjacent. */
	for (i = count; i-- > 0;) {
		struct free_blk *b = (struct free_blk *)(void *)(p->storage + i * p->stride);
		b->next = (struct free_blk *)p->free_list;
		b->canary = FREE_CANARY;
		p->free_list = b;
	}
	return 0;
}

int kw_pool_init_from_arena(struct kw_pool *p, const char *name, struct kw_arena *arena,
			    size_t elem_size, size_t count)
{
	size_t bytes;
	void *mem;

	if (elem_size == 0 || count == 0)
		return -KW_EINVAL;
	bytes = kw_pool_storage_size(elem_size, count);
	if (bytes == SIZE_MAX)
		return -KW_ENOMEM;
	mem = kw_arena_alloc(arena, bytes, POOL_ALIGN);
	if (!mem)
		return -KW_ENOMEM;
	return kw_pool_init(p, name, mem, elem_size, count);
}

void *kw_pool_alloc(struct kw_pool *p)
{
	struct free_blk *b = (struct free_blk *)p->free_list;

	if (KW_UNLIKELY(!b)) {
		p->fails++;
		return NULL;
	}
	KW_ASSERT(b->canary == FREE_CANARY);  /* written after free: a use-after-free */
	p->free_list = b->next;
	p->used++;
	if (p->used > p->high)
		p->high = p->used;
	memset(b, 0, p->elem_size);
	return b;
}

int kw_pool_owns(const struct kw_pool *p, const void *obj)
{
	uintptr_t o = (uintptr_t)obj, s = (uintptr_t)p->storage;

	if (o < s || o >= s + p->stride * p->count)
		return 0;
	return (o - s) % p->stride == 0;
}

int kw_pool_free(struct kw_pool *p, void *obj)
{
	struct free_blk *b = (struct free_blk *)obj;

	if (!obj || !kw_pool_owns(p, obj))
		return -KW_EINVAL;
	/* A block that still carries the canary and is on the list is a double free. The
	 * canary alone could be user data, so confirm by walking only in that rare case. */
	if (IS_ENABLED(CONFIG_KW_ASSERT) && b->canary == FREE_CANARY) {
		const struct free_blk *it;
		for (it = (const struct free_blk *)p->free_list; it; it = it->next)
			KW_ASSERT(it != b);
	}
	KW_ASSERT(p->used > 0);
	b->next = (struct free_blk *)p->free_list;
	b->canary = FREE_CANARY;
	p->free_list = b;
	p->used--;
	return 0;
}

void kw_pool_get_stats(const struct kw_pool *p, struct kw_pool_stats *st)
{
	st->name = p->name;
	st->elem_size = p->elem_size;
	st->count = p->count;
	st->used = p->used;
	st->high = p->high;
	st->fails = p->fails;
}
