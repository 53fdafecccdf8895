/*
 * The text form of Hivemind DHT values for `kwnode hivemind` (app/hivemind.h,
 * doc/net-hivemind.md "kwnode hivemind"): JSON with the few additions msgpack needs.
 *   null true false          nil, bool
 *   12  -3  1.5  2e3         int (uint/int), float64
 *   "text"  or  bare-word    str (JSON escapes \" \\ \/ \n \t \r \b \f \uXXXX in quotes)
 *   <00ff>                   bin (hex bytes)
 *   [a, b]  {"k": v}         array, map
 *   ext(80, <hex>)           ext (printed only: type and payload bytes)
 * hivemind serializes every value with msgpack (MSGPackSerializer): a Python str, int,
 * float, bytes, list or tuple, dict round-trips through this form. Bounded: nesting at most
 * DEPTH, output into the caller's buffer; nothing allocates.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/msgpack.h>

#include "hivemind.h"

#define DEPTH KW_MP_MAX_DEPTH   /* what the reader takes, so printed text parses back */

struct parser {
	const char *s;
	char *err;
	size_t errcap;
	int depth;
};

static int perr(struct parser *p, const char *what)
{
	if (p->err && p->errcap)
		snprintf(p->err, p->errcap, "%s at '%.20s'", what, p->s);
	return -KW_EINVAL;
}

static void ws(struct parser *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A quoted string: unescaped into tmp (its UTF-8), then written. */
static int pstring(struct parser *p, struct kw_mp_writer *w)
{
	char tmp[4096];
	size_t n = 0;

	p->s++;
	while (*p->s && *p->s != '"') {
		unsigned c = (unsigned char)*p->s++;

		if (c == '\\') {
			char e = *p->s++;

			switch (e) {
			case '"': case '\\': case '/': c = (unsigned char)e; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned u = 0;

				for (int i = 0; i < 4; i++) {
					int h = hexv(p->s[i]);

					if (h < 0)
						return perr(p, "bad \\u escape");
					u = u << 4 | (unsigned)h;
				}
				p->s += 4;
				if (u >= 0xd800 && u < 0xe000)
					return perr(p, "surrogate \\u escape");
				if (n + 3 >= sizeof(tmp))
					return perr(p, "string too long");
				if (u < 0x80) {
					tmp[n++] = (char)u;
				} else if (u < 0x800) {
					tmp[n++] = (char)(0xc0 | u >> 6);
					tmp[n++] = (char)(0x80 | (u & 0x3f));
				} else {
					tmp[n++] = (char)(0xe0 | u >> 12);
					tmp[n++] = (char)(0x80 | (u >> 6 & 0x3f));
					tmp[n++] = (char)(0x80 | (u & 0x3f));
				}
				continue;
			}
			default:
				return perr(p, "bad escape");
			}
		}
		if (n + 1 >= sizeof(tmp))
			return perr(p, "string too long");
		tmp[n++] = (char)c;
	}
	if (*p->s != '"')
		return perr(p, "unterminated string");
	p->s++;
	if (!kw_mp_utf8_valid((const uint8_t *)tmp, n))
		return perr(p, "string is not UTF-8");
	if (w)
		kw_mp_put_str(w, tmp, n);
	return 0;
}

/* <hex>: in its own frame, so the buffer is not on the stack once per nesting level. */
static int pbytes(struct parser *p, struct kw_mp_writer *w)
{
	uint8_t tmp[2048];
	size_t n;

	for (n = 0, p->s++; hexv(p->s[0]) >= 0 && hexv(p->s[1]) >= 0; p->s += 2) {
		if (n == sizeof(tmp))
			return perr(p, "bytes too long");
		tmp[n++] = (uint8_t)(hexv(p->s[0]) << 4 | hexv(p->s[1]));
	}
	if (*p->s != '>')
		return perr(p, "expected hex byte pairs then '>'");
	p->s++;
	if (w)
		kw_mp_put_bin(w, tmp, n);
	return 0;
}

static int pvalue(struct parser *p, struct kw_mp_writer *w);

/* Elements of [..] or pairs of {..}: counted in a dry pass, then written. */
static int pcontainer(struct parser *p, struct kw_mp_writer *w, bool map)
{
	char close = map ? '}' : ']';
	const char *start = p->s;
	uint32_t n = 0;

	if (++p->depth > DEPTH)
		return perr(p, "nested too deep");
	for (int pass = w ? 0 : 1; pass < 2; pass++) {
		struct kw_mp_writer *out = pass ? w : NULL;

		p->s = start + 1;
		if (pass == 1 && w)
			map ? kw_mp_put_map(w, n) : kw_mp_put_array(w, n);
		n = 0;
		ws(p);
		while (*p->s != close) {
			if (n) {
				if (*p->s != ',')
					return perr(p, map ? "expected ',' or '}'" : "expected ',' or ']'");
				p->s++;
				ws(p);
			}
			if (pvalue(p, out))
				return -KW_EINVAL;
			if (map) {
				ws(p);
				if (*p->s != ':')
					return perr(p, "expected ':'");
				p->s++;
				if (pvalue(p, out))
					return -KW_EINVAL;
			}
			n++;
			ws(p);
			if (!*p->s)
				return perr(p, map ? "missing '}'" : "missing ']'");
		}
		if (!w)
			break;
	}
	p->s++;
	p->depth--;
	return 0;
}

static bool word_end(char c)
{
	return !c || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ']' ||
	       c == '}' || c == ':';
}

static int pvalue(struct parser *p, struct kw_mp_writer *w)
{
	const char *b;
	size_t n;

	ws(p);
	switch (*p->s) {
	case '"':
		return pstring(p, w);
	case '[':
		return pcontainer(p, w, false);
	case '{':
		return pcontainer(p, w, true);
	case '<':
		return pbytes(p, w);
	case '\0':
		return perr(p, "missing value");
	default:
		break;
	}
	b = p->s;
	while (!word_end(*p->s))
		p->s++;
	n = (size_t)(p->s - b);
	if (n == 4 && !memcmp(b, "null", 4)) {
		if (w)
			kw_mp_put_nil(w);
	} else if ((n == 4 && !memcmp(b, "true", 4)) || (n == 5 && !memcmp(b, "false", 5))) {
		if (w)
			kw_mp_put_bool(w, n == 4);
	} else {
		char num[64], *end;

		if (n < sizeof(num)) {
			memcpy(num, b, n);
			num[n] = '\0';
			if (strspn(num, "-0123456789") == n && n && strcmp(num, "-") &&
			    !strchr(num + 1, '-')) {
				/* msgpack ints: int64 below zero, uint64 from zero up */
				errno = 0;
				if (num[0] == '-') {
					long long v = strtoll(num, &end, 10);

					if (errno || *end)
						return perr(p, "integer below -2^63");
					if (w)
						kw_mp_put_int(w, v);
				} else {
					unsigned long long u = strtoull(num, &end, 10);

					if (errno || *end)
						return perr(p, "integer above 2^64 - 1");
					if (w)
						kw_mp_put_uint(w, u);
				}
				return 0;
			}
			if (strspn(num, "-+.0123456789eE") == n && strpbrk(num, "0123456789")) {
				double f = strtod(num, &end);

				if (!*end) {
					if (w)
						kw_mp_put_float64(w, f);
					return 0;
				}
			}
		}
		/* anything else is a bare string */
		if (!kw_mp_utf8_valid((const uint8_t *)b, n))
			return perr(p, "text is not UTF-8");
		if (w)
			kw_mp_put_str(w, b, n);
	}
	return 0;
}

long kw_hm_text_to_mp(const char *text, uint8_t *out, size_t cap, char *err, size_t errcap)
{
	struct parser p = { text, err, errcap, 0 };
	struct kw_mp_writer w;
	long n;

	kw_mp_writer_init(&w, out, cap);
	if (pvalue(&p, &w))
		return -KW_EINVAL;
	ws(&p);
	if (*p.s) {
		perr(&p, "extra text after the value");
		return -KW_EINVAL;
	}
	n = kw_mp_writer_finish(&w);
	if (n < 0 && err && errcap)
		snprintf(err, errcap, "the value does not fit %zu bytes", cap);
	return n;
}

/* ---- printing ----------------------------------------------------------------------- */

struct outbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct outbuf *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void putf(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct outbuf *o, const char *fmt, ...)
{
	char t[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, t, (size_t)n < sizeof(t) ? (size_t)n : sizeof(t) - 1);
}

static void put_hex(struct outbuf *o, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		putf(o, "%02x", b[i]);
}

static void put_str(struct outbuf *o, const uint8_t *s, size_t n)
{
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			put(o, e, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			putf(o, "\\u%04x", c);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

int kw_hm_mp_to_text(const uint8_t *mp, size_t len, char *out, size_t cap)
{
	struct { uint32_t left, i; bool map; } st[KW_MP_MAX_DEPTH + 1];
	struct outbuf o = { out, cap, 0, false };
	struct kw_mp_reader r;
	struct kw_mp_item it;
	int depth = 0, err;

	if (!cap)
		return -KW_ENOSPC;
	out[0] = '\0';
	if ((err = kw_mp_reader_init(&r, mp, len, 0)))
		return err;
	do {
		if ((err = kw_mp_read(&r, &it)))
			return err;
		if (depth) {
			if (st[depth].i)
				put(&o, st[depth].map && st[depth].i % 2 ? ": " : ", ", 2);
			st[depth].i++;
			st[depth].left--;
		}
		switch (it.type) {
		case KW_MP_NIL: put(&o, "null", 4); break;
		case KW_MP_BOOL: it.v.b ? put(&o, "true", 4) : put(&o, "false", 5); break;
		case KW_MP_UINT: putf(&o, "%llu", (unsigned long long)it.v.u); break;
		case KW_MP_INT: putf(&o, "%lld", (long long)it.v.i); break;
		case KW_MP_FLOAT:
			if (isnan(it.v.f))
				put(&o, "NaN", 3);
			else if (isinf(it.v.f))
				it.v.f > 0 ? put(&o, "Infinity", 8) : put(&o, "-Infinity", 9);
			else
				putf(&o, "%.17g", it.v.f);
			break;
		case KW_MP_STR: put_str(&o, it.data, it.len); break;
		case KW_MP_BIN: put(&o, "<", 1); put_hex(&o, it.data, it.len); put(&o, ">", 1); break;
		case KW_MP_EXT:
			putf(&o, "ext(%d, <", it.ext_type);
			put_hex(&o, it.data, it.len);
			put(&o, ">)", 2);
			break;
		case KW_MP_ARRAY:
		case KW_MP_MAP:
			if (depth == KW_MP_MAX_DEPTH)
				return -KW_ELIMIT;
			depth++;
			st[depth].map = it.type == KW_MP_MAP;
			st[depth].left = it.type == KW_MP_MAP ? 2 * it.len : it.len;
			st[depth].i = 0;
			put(&o, st[depth].map ? "{" : "[", 1);
			break;
		}
		while (depth && st[depth].left == 0) {
			put(&o, st[depth].map ? "}" : "]", 1);
			depth--;
		}
	} while (depth);
	if (kw_mp_read(&r, &it) != -KW_ENOENT)
		return -KW_EBADMSG;              /* more than one value */
	return o.full ? -KW_ENOSPC : (int)o.len;
}
