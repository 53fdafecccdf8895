/*
 * MessagePack pull reader (include/kw/net/msgpack.h): one item per call, containers tracked
 * on a fixed stack of KW_NET_MSGPACK_MAX_DEPTH frames inside the caller's struct, every
 * length checked against the Kconfig bounds and the remaining input before it is used.
 * Formats: msgpack/spec spec.md. Hivemind's ext payloads (ext 0x40/0x50/0x51, hivemind
 * `hivemind/utils/serializer.py`) are read as a container of exactly one value.
 *
 * Owner: net/msgpack. Pure functions over the caller's struct kw_mp_reader.
 */
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/msgpack.h>

int kw_mp_reader_init(struct kw_mp_reader *r, const uint8_t *buf, size_t len, unsigned flags)
{
	r->buf = buf;
	r->len = 0;
	r->pos = 0;
	r->flags = flags;
	r->depth = 0;
	r->err = 0;
	r->err_pos = 0;
	r->why = "";
	if (len > UINT32_MAX || (!buf && len)) {
		r->err = -KW_EMSGSIZE;
		r->why = "input larger than 4 GiB";
		return r->err;
	}
	r->len = (uint32_t)len;
	return 0;
}

static int bad(struct kw_mp_reader *r, int err, uint32_t at, const char *why)
{
	r->err = err;
	r->err_pos = at;
	r->why = why;
	return err;
}

/* The byte position the current container may not read past. */
static uint32_t limit(const struct kw_mp_reader *r)
{
	return r->depth ? r->st[r->depth - 1].end : r->len;
}

static uint64_t rd_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | *p++;
	return v;
}

/*
 * One item has been read completely (a scalar, a str/bin/opaque ext, or a container that
 * closed): count it against the enclosing container and close every container it finished.
 * An entered ext must end exactly where its payload does.
 */
static int complete(struct kw_mp_reader *r)
{
	while (r->depth) {
		struct kw_mp_frame *f = &r->st[r->depth - 1];

		if (--f->left)
			return 0;
		if (f->is_ext && r->pos != f->end)
			return bad(r, -KW_EBADMSG, r->pos, "ext payload holds more than one value");
		r->depth--;
	}
	return 0;
}

static int push(struct kw_mp_reader *r, uint32_t items, uint32_t end, bool is_map, bool is_ext,
		uint32_t at)
{
	struct kw_mp_frame *f;

	if (r->depth >= KW_MP_MAX_DEPTH)
		return bad(r, -KW_ELIMIT, at, "nested deeper than KW_NET_MSGPACK_MAX_DEPTH");
	f = &r->st[r->depth++];
	f->left = items;
	f->end = end;
	f->is_map = is_map;
	f->is_ext = is_ext;
	return 0;
}

static bool want_enter(const struct kw_mp_reader *r, int8_t type)
{
	return (r->flags & KW_MP_ENTER_EXT) &&
	       (type == KW_MP_EXT_TUPLE || type == KW_MP_EXT_DHTDICT || type == KW_MP_EXT_BTD);
}

int kw_mp_read(struct kw_mp_reader *r, struct kw_mp_item *it)
{
	uint32_t at = r->pos, end = limit(r), avail;
	uint8_t c;
	size_t nlen = 0;     /* size of the length / value field after the tag */
	uint64_t n = 0;      /* declared length or count */
	int kind;            /* 0 scalar, 1 str, 2 bin, 3 array, 4 map, 5 ext */
	int8_t ext_type = 0;

	if (r->err)
		return r->err;
	memset(it, 0, sizeof(*it));
	it->depth = r->depth;
	if (at >= end) {
		if (r->depth == 0)
			return -KW_ENOENT;  /* not sticky: the caller asked past the end */
		return bad(r, -KW_EBADMSG, at, end < r->len ?
			   "ext payload ends inside a value" : "input ends inside a container");
	}
	if (r->depth && r->st[r->depth - 1].is_map && (r->flags & KW_MP_STRICT_MAP_KEYS) &&
	    (r->st[r->depth - 1].left & 1) == 0) {
		c = r->buf[at];
		if (!((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb) ||
		      (c >= 0xc4 && c <= 0xc6)))
			return bad(r, -KW_EBADMSG, at, "map key is not str or bin");
	}
	avail = end - at - 1;
	c = r->buf[r->pos++];
	kind = 0;
	if (c <= 0x7f) {
		it->type = KW_MP_UINT;
		it->v.u = c;
	} else if (c >= 0xe0) {
		it->type = KW_MP_INT;
		it->v.i = (int8_t)c;
	} else if (c <= 0x8f) {
		kind = 4;
		n = c & 0x0f;
	} else if (c <= 0x9f) {
		kind = 3;
		n = c & 0x0f;
	} else if (c <= 0xbf) {
		kind = 1;
		n = c & 0x1f;
	} else {
		switch (c) {
		case 0xc0: it->type = KW_MP_NIL; break;
		case 0xc2: case 0xc3: it->type = KW_MP_BOOL; it->v.b = c == 0xc3; break;
		case 0xc4: case 0xc5: case 0xc6: kind = 2; nlen = (size_t)1 << (c - 0xc4); break;
		case 0xc7: case 0xc8: case 0xc9: kind = 5; nlen = (size_t)1 << (c - 0xc7); break;
		case 0xca: case 0xcb: nlen = c == 0xca ? 4 : 8; break;
		case 0xcc: case 0xcd: case 0xce: case 0xcf: nlen = (size_t)1 << (c - 0xcc); break;
		case 0xd0: case 0xd1: case 0xd2: case 0xd3: nlen = (size_t)1 << (c - 0xd0); break;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
			kind = 5;
			n = (uint64_t)1 << (c - 0xd4);
			break;
		case 0xd9: case 0xda: case 0xdb: kind = 1; nlen = (size_t)1 << (c - 0xd9); break;
		case 0xdc: case 0xdd: kind = 3; nlen = c == 0xdc ? 2 : 4; break;
		case 0xde: case 0xdf: kind = 4; nlen = c == 0xde ? 2 : 4; break;
		default:  /* 0xc1 */
			return bad(r, -KW_EBADMSG, at, "reserved byte 0xc1");
		}
	}
	if (nlen) {
		if (avail < nlen)
			return bad(r, -KW_EBADMSG, at, "input ends inside a header");
		n = rd_be(r->buf + r->pos, nlen);
		r->pos += (uint32_t)nlen;
		avail -= (uint32_t)nlen;
	}
	if (kind == 0 && nlen) {  /* a fixed-size scalar: n holds its bits */
		if (c == 0xca) {
			float f;
			uint32_t b32 = (uint32_t)n;

			memcpy(&f, &b32, sizeof(f));
			it->type = KW_MP_FLOAT;
			it->v.f = f;
			it->is_f32 = true;
		} else if (c == 0xcb) {
			it->type = KW_MP_FLOAT;
			memcpy(&it->v.f, &n, sizeof(n));
		} else if (c <= 0xcf) {
			it->type = KW_MP_UINT;
			it->v.u = n;
		} else {
			/* Sign-extend the intN; msgpack-python returns non-negative ones as plain
			 * ints, so they read as UINT here too (one value, one type). */
			unsigned sh = (unsigned)(64 - 8 * nlen);
			int64_t v = (int64_t)(n << sh) >> sh;

			if (v >= 0) {
				it->type = KW_MP_UINT;
				it->v.u = (uint64_t)v;
			} else {
				it->type = KW_MP_INT;
				it->v.i = v;
			}
		}
	}
	if (kind == 5) {
		if (avail < 1)
			return bad(r, -KW_EBADMSG, at, "input ends inside a header");
		ext_type = (int8_t)r->buf[r->pos++];
		avail--;
	}
	switch (kind) {
	case 0:
		return complete(r);
	case 1:
	case 2:
	case 5:
		if (n > CONFIG_KW_NET_MSGPACK_MAX_BYTES)
			return bad(r, -KW_ELIMIT, at, kind == 1 ? "str longer than KW_NET_MSGPACK_MAX_BYTES" :
				   kind == 2 ? "bin longer than KW_NET_MSGPACK_MAX_BYTES" :
				   "ext longer than KW_NET_MSGPACK_MAX_BYTES");
		if (n > avail)
			return bad(r, -KW_EBADMSG, at, "length runs past the end of the input");
		it->type = kind == 1 ? KW_MP_STR : kind == 2 ? KW_MP_BIN : KW_MP_EXT;
		it->len = (uint32_t)n;
		it->data = r->buf + r->pos;
		it->ext_type = ext_type;
		if (kind == 1 && !kw_mp_utf8_valid(it->data, it->len))
			return bad(r, -KW_EBADMSG, at, "str is not valid UTF-8");
		if (kind == 5 && want_enter(r, ext_type)) {
			/* The payload is one msgpack value: a container of one that must end
			 * exactly at the payload's end. An empty payload holds no value. */
			if (n == 0)
				return bad(r, -KW_EBADMSG, at, "ext payload is empty");
			it->entered = true;
			return push(r, 1, r->pos + (uint32_t)n, false, true, at);
		}
		r->pos += (uint32_t)n;
		return complete(r);
	default:  /* 3 array, 4 map */
		if (n > CONFIG_KW_NET_MSGPACK_MAX_COUNT)
			return bad(r, -KW_ELIMIT, at, kind == 3 ?
				   "array longer than KW_NET_MSGPACK_MAX_COUNT" :
				   "map longer than KW_NET_MSGPACK_MAX_COUNT");
		/* Every element takes at least one byte: refuse a count the input cannot hold
		 * now rather than after reading what there is. */
		if (n * (kind == 4 ? 2 : 1) > avail)
			return bad(r, -KW_EBADMSG, at, "count exceeds the remaining input");
		it->type = kind == 3 ? KW_MP_ARRAY : KW_MP_MAP;
		it->len = (uint32_t)n;
		/* An empty container is complete at once but still counts as a nesting level:
		 * the bound does not depend on the contents. */
		if (r->depth >= KW_MP_MAX_DEPTH)
			return bad(r, -KW_ELIMIT, at, "nested deeper than KW_NET_MSGPACK_MAX_DEPTH");
		if (n == 0)
			return complete(r);
		return push(r, (uint32_t)(kind == 4 ? 2 * n : n), end, kind == 4, false, at);
	}
}

int kw_mp_skip(struct kw_mp_reader *r, const struct kw_mp_item *it)
{
	struct kw_mp_item tmp;
	int err;

	if (r->err)
		return r->err;
	/* Containers (and entered exts) with content pushed a frame one level below it->depth;
	 * read until the reader is back at it->depth. */
	if (!((it->type == KW_MP_ARRAY || it->type == KW_MP_MAP) && it->len) && !it->entered)
		return 0;
	while (r->depth > it->depth) {
		err = kw_mp_read(r, &tmp);
		if (err)
			return err == -KW_ENOENT ? bad(r, -KW_EBADMSG, r->pos, "value incomplete") : err;
	}
	return 0;
}

int kw_mp_skip_value(struct kw_mp_reader *r)
{
	struct kw_mp_item it;
	int err = kw_mp_read(r, &it);

	return err ? err : kw_mp_skip(r, &it);
}

int kw_mp_reader_done(struct kw_mp_reader *r)
{
	if (r->err)
		return r->err;
	if (r->depth)
		return bad(r, -KW_EBADMSG, r->pos, "value incomplete");
	if (r->pos != r->len)
		return bad(r, -KW_EBADMSG, r->pos, "trailing bytes after the value");
	return 0;
}

int kw_mp_validate(const uint8_t *buf, size_t len, unsigned flags, const char **why)
{
	struct kw_mp_reader r;
	int err = kw_mp_reader_init(&r, buf, len, flags);

	if (!err) {
		err = kw_mp_skip_value(&r);
		if (err == -KW_ENOENT)
			err = bad(&r, -KW_EBADMSG, 0, "empty input");
	}
	if (!err)
		err = kw_mp_reader_done(&r);
	if (why)
		*why = r.why;
	return err;
}
