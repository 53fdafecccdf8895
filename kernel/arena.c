/* Start-up bump allocator; see kw/arena.h. */
#include <string.h>

#include <kw/arena.h>

void kw_arena_init(struct kw_arena *a, void *mem, size_t size)
{
	a->base = (uint8_t *)mem;
	a->size = size;
	a->used = 0;
	a->high = 0;
	a->zeroed = false;
}

void kw_arena_init_zeroed(struct kw_arena *a, void *mem, size_t size)
{
	kw_arena_init(a, mem, size);
	a->zeroed = true;
}

void *kw_arena_alloc(struct kw_arena *a, size_t size, size_t align)
{
	uintptr_t start, p;
	size_t off, clear;

	if (align == 0 || (align & (align - 1)) != 0 || size == 0)
		return NULL;
	start = (uintptr_t)a->base + a->used;
	p = (start + align - 1) & ~(uintptr_t)(align - 1);
	/* Compare in remaining bytes so a huge size cannot wrap the pointer arithmetic. */
	if (p - (uintptr_t)a->base > a->size || size > a->size - (p - (uintptr_t)a->base))
		return NULL;
	off = (size_t)(p - (uintptr_t)a->base);
	a->used = off + size;
	/* with known-zero memory only what an earlier allocation handed out needs clearing */
	clear = !a->zeroed ? size : a->high <= off ? 0 : (a->high - off < size ? a->high - off : size);
	if (a->used > a->high)
		a->high = a->used;
	if (clear)
		memset((void *)p, 0, clear);
	return (void *)p;
}

size_t kw_arena_free_bytes(const struct kw_arena *a)
{
	return a->size - a->used;
}
