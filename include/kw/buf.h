/*
 * Byte buffers over caller-owned storage; nothing here allocates.
 *
 * kw_buf: a linear buffer with a read offset, for building and parsing messages.
 *   [0, off) consumed, [off, len) readable, [len, cap) writable.
 * kw_ring: a byte ring of power-of-two capacity for stream I/O; spans give zero-copy access
 *   to the contiguous readable/writable regions so read()/write() go straight in and out.
 */
#ifndef KW_BUF_H
#define KW_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_buf {
	uint8_t *data;  /* borrowed */
	size_t cap, len, off;
};

static inline void kw_buf_init(struct kw_buf *b, void *mem, size_t cap)
{
	b->data = (uint8_t *)mem; b->cap = cap; b->len = 0; b->off = 0;
}
static inline size_t kw_buf_readable(const struct kw_buf *b) { return b->len - b->off; }
static inline size_t kw_buf_writable(const struct kw_buf *b) { return b->cap - b->len; }
static inline uint8_t *kw_buf_rptr(const struct kw_buf *b) { return b->data + b->off; }
static inline uint8_t *kw_buf_wptr(const struct kw_buf *b) { return b->data + b->len; }
static inline void kw_buf_reset(struct kw_buf *b) { b->len = 0; b->off = 0; }
/* Appends n bytes. Return: 0 or -KW_ENOBUFS (nothing written) when they do not fit. */
int kw_buf_append(struct kw_buf *b, const void *src, size_t n);
/* Marks n bytes written through kw_buf_wptr. Return: 0 or -KW_EINVAL if n > writable. */
int kw_buf_commit(struct kw_buf *b, size_t n);
/* Drops n readable bytes. Return: 0 or -KW_EINVAL if n > readable. */
int kw_buf_consume(struct kw_buf *b, size_t n);
/* Moves readable bytes to the front so the whole tail is writable again. */
void kw_buf_compact(struct kw_buf *b);

struct kw_ring {
	uint8_t *data;  /* borrowed; cap bytes */
	size_t cap;     /* power of two */
	size_t head;    /* free-running write index */
	size_t tail;    /* free-running read index */
};

/* Return: 0, -KW_EINVAL unless cap is a non-zero power of two. */
int kw_ring_init(struct kw_ring *r, void *mem, size_t cap);
static inline size_t kw_ring_used(const struct kw_ring *r) { return r->head - r->tail; }
static inline size_t kw_ring_space(const struct kw_ring *r) { return r->cap - (r->head - r->tail); }
static inline bool kw_ring_empty(const struct kw_ring *r) { return r->head == r->tail; }
static inline void kw_ring_clear(struct kw_ring *r) { r->head = r->tail = 0; }
/* Copies in up to n bytes; returns how many fit (may be 0). */
size_t kw_ring_write(struct kw_ring *r, const void *src, size_t n);
/* Copies out up to n bytes; returns how many were read. */
size_t kw_ring_read(struct kw_ring *r, void *dst, size_t n);
/* Copies up to n bytes starting `skip` bytes in, without consuming. */
size_t kw_ring_peek(const struct kw_ring *r, size_t skip, void *dst, size_t n);
/* Drops up to n bytes; returns how many were dropped. */
size_t kw_ring_skip(struct kw_ring *r, size_t n);
/* Contiguous readable region at the read position (may be shorter than kw_ring_used). */
size_t kw_ring_read_span(const struct kw_ring *r, uint8_t **p);
/* Contiguous writable region at the write position; follow with kw_ring_produce. */
size_t kw_ring_write_span(const struct kw_ring *r, uint8_t **p);
void kw_ring_produce(struct kw_ring *r, size_t n);

#endif /* KW_BUF_H */
