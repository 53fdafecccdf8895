/*
 * libFuzzer target: the MessagePack reader (net/msgpack/reader.c), which reads what remote
 * Hivemind peers put in DHT values, ServerInfo tuples and request metadata. The first input
 * byte picks the reader flags (entering ext 0x40/0x50/0x51, strict map keys), the rest is
 * the msgpack. Property: whatever reads without error is written back item by item with
 * the writer; that output reads as the same items (values, types, nesting; float32 comes
 * back as the same double) and writing it again gives the same bytes. An error must be one
 * of the documented codes with a reason.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/msgpack.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN  (1u << 16)
#define MAX_OUT (2 * MAX_IN + 64)   /* float32 -> float64 is the only growth: 5 -> 9 bytes */

static uint8_t out1[MAX_OUT], out2[MAX_OUT];

/* Re-encodes every item of buf; returns the bytes written, or a negative reader error. */
static long transcode(const uint8_t *buf, size_t len, unsigned flags, uint8_t *out, size_t cap)
{
	static struct kw_mp_reader r;
	struct kw_mp_writer w;
	struct kw_mp_item it;
	size_t marks[KW_MP_MAX_DEPTH + 1];
	uint16_t mark_depth[KW_MP_MAX_DEPTH + 1];  /* depth of the ext's payload value */
	unsigned open = 0;
	int err;

	kw_mp_reader_init(&r, buf, len, flags);
	kw_mp_writer_init(&w, out, cap);
	for (;;) {
		err = kw_mp_read(&r, &it);
		if (err == -KW_ENOENT)
			break;
		if (err) {
			if ((err != -KW_EBADMSG && err != -KW_ELIMIT) || !r.why[0] || r.err_pos > len)
				__builtin_trap();
			return err;
		}
		while (open && mark_depth[open - 1] > it.depth)
			if (kw_mp_put_ext_end(&w, marks[--open]))
				__builtin_trap();
		switch (it.type) {
		case KW_MP_NIL: kw_mp_put_nil(&w); break;
		case KW_MP_BOOL: kw_mp_put_bool(&w, it.v.b); break;
		case KW_MP_UINT: kw_mp_put_uint(&w, it.v.u); break;
		case KW_MP_INT:
			if (it.v.i >= 0)  /* the reader returns non-negative values as UINT */
				__builtin_trap();
			kw_mp_put_int(&w, it.v.i);
			break;
		case KW_MP_FLOAT: kw_mp_put_float64(&w, it.v.f); break;
		case KW_MP_STR:
			if (kw_mp_put_str(&w, (const char *)it.data, it.len))  /* reader checked UTF-8 */
				__builtin_trap();
			break;
		case KW_MP_BIN: kw_mp_put_bin(&w, it.data, it.len); break;
		case KW_MP_ARRAY: kw_mp_put_array(&w, it.len); break;
		case KW_MP_MAP: kw_mp_put_map(&w, it.len); break;
		case KW_MP_EXT:
			if (it.entered) {
				if (open > KW_MP_MAX_DEPTH)
					__builtin_trap();
				mark_depth[open] = (uint16_t)(it.depth + 1);
				kw_mp_put_ext_begin(&w, it.ext_type, &marks[open++]);
			} else {
				kw_mp_put_ext(&w, it.ext_type, it.data, it.len);
			}
			break;
		default:
			__builtin_trap();
		}
		if (it.data && (it.data < buf || it.data + it.len > buf + len))
			__builtin_trap();
	}
	if (r.depth != 0)
		__builtin_trap();
	while (open)
		kw_mp_put_ext_end(&w, marks[--open]);
	return kw_mp_writer_finish(&w);
}

static bool same_item(const struct kw_mp_item *a, const struct kw_mp_item *b)
{
	if (a->type != b->type || a->depth != b->depth)
		return false;
	switch (a->type) {
	case KW_MP_BOOL: return a->v.b == b->v.b;
	case KW_MP_UINT: return a->v.u == b->v.u;
	case KW_MP_INT: return a->v.i == b->v.i;
	case KW_MP_FLOAT:  /* bit-exact, so NaN payloads survive too */
		return memcmp(&a->v.f, &b->v.f, sizeof(double)) == 0;
	case KW_MP_STR:
	case KW_MP_BIN:
		return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
	case KW_MP_ARRAY:
	case KW_MP_MAP:
		return a->len == b->len;
	case KW_MP_EXT:  /* an entered payload may have shrunk to minimal forms */
		return a->ext_type == b->ext_type && a->entered == b->entered &&
		       (a->entered || (a->len == b->len && memcmp(a->data, b->data, a->len) == 0));
	default:
		return true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kw_mp_reader ra, rb;
	struct kw_mp_item a, b;
	unsigned flags;
	long n1, n2;
	int ea, eb;

	if (size < 1 || size - 1 > MAX_IN)
		return 0;
	flags = data[0] & (KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS);
	data++;
	size--;
	(void)kw_mp_validate(data, size, flags, NULL);  /* must not crash whatever the input */
	n1 = transcode(data, size, flags, out1, sizeof(out1));
	if (n1 < 0) {
		if (n1 == -KW_ENOSPC)
			__builtin_trap();
		return 0;
	}
	/* Same items, in the same nesting. */
	kw_mp_reader_init(&ra, data, size, flags);
	kw_mp_reader_init(&rb, out1, (size_t)n1, flags);
	for (;;) {
		ea = kw_mp_read(&ra, &a);
		eb = kw_mp_read(&rb, &b);
		if (ea != eb)
			__builtin_trap();
		if (ea)
			break;
		if (!same_item(&a, &b))
			__builtin_trap();
	}
	if (ea != -KW_ENOENT || kw_mp_reader_done(&rb) != 0)
		__builtin_trap();
	/* The writer's output is a fixed point. */
	n2 = transcode(out1, (size_t)n1, flags, out2, sizeof(out2));
	if (n2 != n1 || memcmp(out1, out2, (size_t)n1) != 0)
		__builtin_trap();
	return 0;
}
