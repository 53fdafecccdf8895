/*
 * MessagePack writer (include/kw/net/msgpack.h): the smallest encoding of every item, as
 * msgpack-python's Packer with use_bin_type=True writes it (msgpack/spec spec.md for the
 * formats), into a caller buffer. Also the UTF-8 check both directions share.
 *
 * Owner: net/msgpack. Pure functions over the caller's struct kw_mp_writer.
 */
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/msgpack.h>

/* ---- UTF-8 ---------------------------------------------------------------------------- */

size_t kw_mp_utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c, lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)  /* continuation byte, overlong 2-byte lead, beyond U+10FFFF */
		return 0;
	need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	/* The second byte's range is what rules out overlongs and surrogates (RFC 3629 §4). */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < need; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return need;
}

bool kw_mp_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {  /* ASCII runs are the common case */
			i++;
			continue;
		}
		k = kw_mp_utf8_seq(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* ---- writer --------------------------------------------------------------------------- */

/* Largest ext header: 0xc9, 32-bit length, type byte. */
#define EXT_HDR_MAX 6

void kw_mp_writer_init(struct kw_mp_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->len = 0;
	w->err = 0;
	w->open_ext = 0;
}

static int fail(struct kw_mp_writer *w, int err)
{
	if (!w->err)
		w->err = err;
	return w->err;
}

/* Reserves n bytes; NULL (with the sticky error set) when they do not fit. */
static uint8_t *room(struct kw_mp_writer *w, size_t n)
{
	uint8_t *p;

	if (w->err)
		return NULL;
	if (w->cap - w->len < n) {
		fail(w, -KW_ENOSPC);
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static int put1(struct kw_mp_writer *w, uint8_t b)
{
	uint8_t *p = room(w, 1);

	if (!p)
		return w->err;
	p[0] = b;
	return 0;
}

/* Tag byte then a big-endian value of `size` bytes (1, 2, 4 or 8). */
static int put_tagged(struct kw_mp_writer *w, uint8_t tag, uint64_t v, size_t size)
{
	uint8_t *p = room(w, 1 + size);

	if (!p)
		return w->err;
	p[0] = tag;
	switch (size) {
	case 1: p[1] = (uint8_t)v; break;
	case 2: be16(p + 1, (uint16_t)v); break;
	case 4: be32(p + 1, (uint32_t)v); break;
	default: be64(p + 1, v); break;
	}
	return 0;
}

int kw_mp_put_nil(struct kw_mp_writer *w)
{
	return put1(w, 0xc0);
}

int kw_mp_put_bool(struct kw_mp_writer *w, bool v)
{
	return put1(w, v ? 0xc3 : 0xc2);
}

int kw_mp_put_uint(struct kw_mp_writer *w, uint64_t v)
{
	if (v < 0x80)
		return put1(w, (uint8_t)v);
	if (v <= UINT8_MAX)
		return put_tagged(w, 0xcc, v, 1);
	if (v <= UINT16_MAX)
		return put_tagged(w, 0xcd, v, 2);
	if (v <= UINT32_MAX)
		return put_tagged(w, 0xce, v, 4);
	return put_tagged(w, 0xcf, v, 8);
}

int kw_mp_put_int(struct kw_mp_writer *w, int64_t v)
{
	if (v >= 0)
		return kw_mp_put_uint(w, (uint64_t)v);
	if (v >= -32)
		return put1(w, (uint8_t)(int8_t)v);  /* negative fixint 0xe0..0xff */
	if (v >= INT8_MIN)
		return put_tagged(w, 0xd0, (uint64_t)v, 1);
	if (v >= INT16_MIN)
		return put_tagged(w, 0xd1, (uint64_t)v, 2);
	if (v >= INT32_MIN)
		return put_tagged(w, 0xd2, (uint64_t)v, 4);
	return put_tagged(w, 0xd3, (uint64_t)v, 8);
}

int kw_mp_put_float64(struct kw_mp_writer *w, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	return put_tagged(w, 0xcb, bits, 8);
}

/* Header of a str/bin/array/map of length n: fix form (fix_tag | n while n <= fix_max, or
 * none when fix_max is 0), then the 8-bit form when t8 != 0, then 16- and 32-bit. */
static int put_len_hdr(struct kw_mp_writer *w, size_t n, uint8_t fix_tag, size_t fix_max,
		       uint8_t t8, uint8_t t16, uint8_t t32)
{
	if (w->err)
		return w->err;
	if (n > UINT32_MAX)
		return fail(w, -KW_EMSGSIZE);
	if (fix_max && n <= fix_max)
		return put1(w, (uint8_t)(fix_tag | n));
	if (t8 && n <= UINT8_MAX)
		return put_tagged(w, t8, n, 1);
	if (n <= UINT16_MAX)
		return put_tagged(w, t16, n, 2);
	return put_tagged(w, t32, n, 4);
}

static int put_bytes(struct kw_mp_writer *w, const void *b, size_t n)
{
	uint8_t *p;

	if (n == 0)
		return w->err;
	p = room(w, n);
	if (!p)
		return w->err;
	memcpy(p, b, n);
	return 0;
}

int kw_mp_put_str(struct kw_mp_writer *w, const char *s, size_t len)
{
	if (w->err)
		return w->err;
	if ((!s && len) || (len && !kw_mp_utf8_valid((const uint8_t *)s, len)))
		return fail(w, -KW_EINVAL);
	if (put_len_hdr(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb))
		return w->err;
	return put_bytes(w, s, len);
}

int kw_mp_put_cstr(struct kw_mp_writer *w, const char *s)
{
	if (!s)
		return fail(w, -KW_EINVAL);
	return kw_mp_put_str(w, s, strlen(s));
}

int kw_mp_put_bin(struct kw_mp_writer *w, const uint8_t *b, size_t len)
{
	if (w->err)
		return w->err;
	if (!b && len)
		return fail(w, -KW_EINVAL);
	if (put_len_hdr(w, len, 0, 0, 0xc4, 0xc5, 0xc6))
		return w->err;
	return put_bytes(w, b, len);
}

int kw_mp_put_array(struct kw_mp_writer *w, uint32_t n)
{
	return put_len_hdr(w, n, 0x90, 15, 0, 0xdc, 0xdd);
}

int kw_mp_put_map(struct kw_mp_writer *w, uint32_t n)
{
	return put_len_hdr(w, n, 0x80, 15, 0, 0xde, 0xdf);
}

/* Writes the smallest ext header for a payload of len bytes into p; returns its size. */
static size_t ext_hdr(uint8_t *p, int8_t type, size_t len)
{
	size_t h;

	switch (len) {
	case 1: p[0] = 0xd4; h = 1; break;
	case 2: p[0] = 0xd5; h = 1; break;
	case 4: p[0] = 0xd6; h = 1; break;
	case 8: p[0] = 0xd7; h = 1; break;
	case 16: p[0] = 0xd8; h = 1; break;
	default:
		if (len <= UINT8_MAX) {
			p[0] = 0xc7;
			p[1] = (uint8_t)len;
			h = 2;
		} else if (len <= UINT16_MAX) {
			p[0] = 0xc8;
			be16(p + 1, (uint16_t)len);
			h = 3;
		} else {
			p[0] = 0xc9;
			be32(p + 1, (uint32_t)len);
			h = 5;
		}
	}
	p[h] = (uint8_t)type;
	return h + 1;
}

int kw_mp_put_ext(struct kw_mp_writer *w, int8_t type, const uint8_t *data, size_t len)
{
	uint8_t hdr[EXT_HDR_MAX];
	size_t h;

	if (w->err)
		return w->err;
	if ((!data && len))
		return fail(w, -KW_EINVAL);
	if (len > UINT32_MAX)
		return fail(w, -KW_EMSGSIZE);
	h = ext_hdr(hdr, type, len);
	if (put_bytes(w, hdr, h))
		return w->err;
	return put_bytes(w, data, len);
}

int kw_mp_put_ext_begin(struct kw_mp_writer *w, int8_t type, size_t *mark)
{
	uint8_t *p;

	if (w->err)
		return w->err;
	*mark = w->len;
	p = room(w, EXT_HDR_MAX);
	if (!p)
		return w->err;
	/* Placeholder: 0xc9 with the type in the last byte; end() rewrites it. */
	memset(p, 0, EXT_HDR_MAX);
	p[0] = 0xc9;
	p[EXT_HDR_MAX - 1] = (uint8_t)type;
	w->open_ext++;
	return 0;
}

int kw_mp_put_ext_end(struct kw_mp_writer *w, size_t mark)
{
	uint8_t hdr[EXT_HDR_MAX];
	size_t body, h;

	if (w->err)
		return w->err;
	if (w->open_ext == 0 || mark > w->len || w->len - mark < EXT_HDR_MAX ||
	    w->buf[mark] != 0xc9)
		return fail(w, -KW_EINVAL);
	body = w->len - mark - EXT_HDR_MAX;
	if (body > UINT32_MAX)
		return fail(w, -KW_EMSGSIZE);
	h = ext_hdr(hdr, (int8_t)w->buf[mark + EXT_HDR_MAX - 1], body);
	memmove(w->buf + mark + h, w->buf + mark + EXT_HDR_MAX, body);
	memcpy(w->buf + mark, hdr, h);
	w->len -= EXT_HDR_MAX - h;
	w->open_ext--;
	return 0;
}

long kw_mp_writer_finish(const struct kw_mp_writer *w)
{
	if (w->err)
		return w->err;
	if (w->open_ext)
		return -KW_EINVAL;
	return (long)w->len;
}
