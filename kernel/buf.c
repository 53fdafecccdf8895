/* Linear byte buffers and byte rings over caller memory; see kw/buf.h. */
#include <string.h>

#include <kw/buf.h>
#include <kw/err.h>

int kw_buf_append(struct kw_buf *b, const void *src, size_t n)
{
	if (n > b->cap - b->len)
		return -KW_ENOBUFS;
	memcpy(b->data + b->len, src, n);
	b->len += n;
	return 0;
}

int kw_buf_commit(struct kw_buf *b, size_t n)
{
	if (n > b->cap - b->len)
		return -KW_EINVAL;
	b->len += n;
	return 0;
}

int kw_buf_consume(struct kw_buf *b, size_t n)
{
	if (n > b->len - b->off)
		return -KW_EINVAL;
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;  /* empty: reuse from the start for free */
	return 0;
}

void kw_buf_compact(struct kw_buf *b)
{
	size_t n = b->len - b->off;

	if (b->off == 0)
		return;
	memmove(b->data, b->data + b->off, n);
	b->off = 0;
	b->len = n;
}

int kw_ring_init(struct kw_ring *r, void *mem, size_t cap)
{
	if (!mem || cap == 0 || (cap & (cap - 1)) != 0)
		return -KW_EINVAL;
	r->data = (uint8_t *)mem;
	r->cap = cap;
	r->head = r->tail = 0;
	return 0;
}

/* Copies n bytes into the ring at free-running index `at`, splitting at the wrap point. */
static void ring_copy_in(struct kw_ring *r, size_t at, const uint8_t *src, size_t n)
{
	size_t pos = at & (r->cap - 1), first = r->cap - pos;

	if (first > n)
		first = n;
	memcpy(r->data + pos, src, first);
	memcpy(r->data, src + first, n - first);
}

static void ring_copy_out(const struct kw_ring *r, size_t at, uint8_t *dst, size_t n)
{
	size_t pos = at & (r->cap - 1), first = r->cap - pos;

	if (first > n)
		first = n;
	memcpy(dst, r->data + pos, first);
	memcpy(dst + first, r->data, n - first);
}

size_t kw_ring_write(struct kw_ring *r, const void *src, size_t n)
{
	size_t space = kw_ring_space(r);

	if (n > space)
		n = space;
	ring_copy_in(r, r->head, (const uint8_t *)src, n);
	r->head += n;
	return n;
}

size_t kw_ring_peek(const struct kw_ring *r, size_t skip, void *dst, size_t n)
{
	size_t used = kw_ring_used(r);

	if (skip >= used)
		return 0;
	if (n > used - skip)
		n = used - skip;
	ring_copy_out(r, r->tail + skip, (uint8_t *)dst, n);
	return n;
}

size_t kw_ring_read(struct kw_ring *r, void *dst, size_t n)
{
	n = kw_ring_peek(r, 0, dst, n);
	r->tail += n;
	return n;
}

size_t kw_ring_skip(struct kw_ring *r, size_t n)
{
	size_t used = kw_ring_used(r);

	if (n > used)
		n = used;
	r->tail += n;
	return n;
}

size_t kw_ring_read_span(const struct kw_ring *r, uint8_t **p)
{
	size_t pos = r->tail & (r->cap - 1), used = kw_ring_used(r), first = r->cap - pos;

	*p = r->data + pos;
	return used < first ? used : first;
}

size_t kw_ring_write_span(const struct kw_ring *r, uint8_t **p)
{
	size_t pos = r->head & (r->cap - 1), space = kw_ring_space(r), first = r->cap - pos;

	*p = r->data + pos;
	return space < first ? space : first;
}

void kw_ring_produce(struct kw_ring *r, size_t n)
{
	size_t space = kw_ring_space(r);

	r->head += n < space ? n : space;
}
