/*
 * The text form of Hivemind DHT values for `kwnode hivemind` (app/hivemind.h,
 * doc/net-hivemind.md "kwnode hivemind"): JSON with the few additions msgpack needs.
 *   null true false          nil, bool
 *   12  -3  1.5  2e3         int (uint/int), float64
 *   "text"  or  bare-word    str (JSON escapes \" \\ \/ \n \t \r \b \f \uXXXX in quotes)
 *   <00ff>                   bin (hex bytes)
 *   [a, b]  {"k": v}         array, map
 *   ext(80, <hex>)           ext (printed only: type and payload bytes)
 *   {"$bin": "00ff"} ...     the "$" objects of the JSON form below, read as what they stand for
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

#include <kw/bytes.h>
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
	return kw_hex_digit((unsigned char)c);
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

/* Hex byte pairs after the opening char at p->s, then `close`: the bytes into tmp (cap of
 * them), p->s past close. Return: 0, or perr's (what names the missing close). */
static int phexpairs(struct parser *p, char close, const char *what, uint8_t *tmp, size_t cap,
		     size_t *n)
{
	for (*n = 0, p->s++; hexv(p->s[0]) >= 0 && hexv(p->s[1]) >= 0; p->s += 2) {
		if (*n == cap)
			return perr(p, "bytes too long");
		tmp[(*n)++] = (uint8_t)(hexv(p->s[0]) << 4 | hexv(p->s[1]));
	}
	if (*p->s != close)
		return perr(p, what);
	p->s++;
	return 0;
}

/* <hex>: in its own frame, so the buffer is not on the stack once per nesting level. */
static int pbytes(struct parser *p, struct kw_mp_writer *w)
{
	uint8_t tmp[2048];
	size_t n;

	if (phexpairs(p, '>', "expected hex byte pairs then '>'", tmp, sizeof(tmp), &n))
		return -KW_EINVAL;
	if (w)
		kw_mp_put_bin(w, tmp, n);
	return 0;
}

static int pvalue(struct parser *p, struct kw_mp_writer *w);

/* A "hex" string of the JSON form ($bin, $ext's "hex"): bin when ext < -128, else that ext. */
static int phexstr(struct parser *p, struct kw_mp_writer *w, int ext)
{
	uint8_t tmp[2048];
	size_t n;

	if (*p->s != '"')
		return perr(p, "expected a \"hex\" string");
	if (phexpairs(p, '"', "expected hex byte pairs then '\"'", tmp, sizeof(tmp), &n))
		return -KW_EINVAL;
	if (w)
		ext < -128 ? kw_mp_put_bin(w, tmp, n) : kw_mp_put_ext(w, (int8_t)ext, tmp, n);
	return 0;
}

static int pexpect(struct parser *p, char c, const char *what)
{
	ws(p);
	if (*p->s != c)
		return perr(p, what);
	p->s++;
	ws(p);
	return 0;
}

static bool plit(struct parser *p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(p->s, lit, n))
		return false;
	p->s += n;
	return true;
}

/* {"$map": [[K, V], ..]}: the pairs counted in a dry pass, then written. */
static int pmap_pairs(struct parser *p, struct kw_mp_writer *w)
{
	const char *start = p->s;
	uint32_t n = 0;

	if (++p->depth > DEPTH)
		return perr(p, "nested too deep");
	for (int pass = w ? 0 : 1; pass < 2; pass++) {
		struct kw_mp_writer *out = pass ? w : NULL;

		p->s = start;
		if (pass == 1 && w)
			kw_mp_put_map(w, n);
		n = 0;
		ws(p);
		while (*p->s != ']') {
			if (n && pexpect(p, ',', "$map: expected ',' or ']'"))
				return -KW_EINVAL;
			if (pexpect(p, '[', "$map: expected a [KEY, VALUE] pair") ||
			    pvalue(p, out) || pexpect(p, ',', "$map: expected ',' in a pair") ||
			    pvalue(p, out) || pexpect(p, ']', "$map: expected ']' after a pair"))
				return -KW_EINVAL;
			n++;
			if (!*p->s)
				return perr(p, "$map: missing ']'");
		}
		if (!w)
			break;
	}
	p->s++;
	p->depth--;
	return 0;
}

/*
 * The "$" objects kw_hm_mp_to_json prints ({"$bin": ..}, {"$float": ..}, {"$ext": ..},
 * {"$map": ..}), read back as the msgpack they stand for, so what `get` prints can be
 * stored again. Return: 1 when the object at p->s is not one (an ordinary map); 0; error.
 */
static int pmarker(struct parser *p, struct kw_mp_writer *w)
{
	const char *save = p->s;
	int ret;

	p->s++;
	ws(p);
	if (plit(p, "\"$bin\"")) {
		if (pexpect(p, ':', "$bin: expected ':'") || phexstr(p, w, -1000))
			return -KW_EINVAL;
	} else if (plit(p, "\"$float\"")) {
		double f;

		if (pexpect(p, ':', "$float: expected ':'"))
			return -KW_EINVAL;
		if (plit(p, "\"NaN\""))
			f = NAN;
		else if (plit(p, "\"Infinity\""))
			f = INFINITY;
		else if (plit(p, "\"-Infinity\""))
			f = -INFINITY;
		else
			return perr(p, "$float: expected \"NaN\", \"Infinity\" or \"-Infinity\"");
		if (w)
			kw_mp_put_float64(w, f);
	} else if (plit(p, "\"$ext\"")) {
		char *end;
		long type;
		size_t mark = 0;

		if (pexpect(p, ':', "$ext: expected ':'"))
			return -KW_EINVAL;
		errno = 0;
		type = strtol(p->s, &end, 10);
		if (end == p->s || errno || type < -128 || type > 127)
			return perr(p, "$ext: expected a type -128..127");
		p->s = end;
		if (pexpect(p, ',', "$ext: expected ','"))
			return -KW_EINVAL;
		if (plit(p, "\"hex\"")) {
			if (pexpect(p, ':', "$ext: expected ':'") || phexstr(p, w, (int)type))
				return -KW_EINVAL;
		} else if (plit(p, "\"value\"")) {
			if (pexpect(p, ':', "$ext: expected ':'"))
				return -KW_EINVAL;
			if (++p->depth > DEPTH)
				return perr(p, "nested too deep");
			if (w)
				kw_mp_put_ext_begin(w, (int8_t)type, &mark);
			if ((ret = pvalue(p, w)))
				return ret;
			if (w)
				kw_mp_put_ext_end(w, mark);
			p->depth--;
		} else {
			return perr(p, "$ext: expected \"value\" or \"hex\"");
		}
	} else if (plit(p, "\"$map\"")) {
		if (pexpect(p, ':', "$map: expected ':'") ||
		    pexpect(p, '[', "$map: expected a list of [KEY, VALUE] pairs") ||
		    pmap_pairs(p, w))
			return -KW_EINVAL;
	} else {
		p->s = save;
		return 1;
	}
	if (pexpect(p, '}', "expected '}' after a \"$\" object's member"))
		return -KW_EINVAL;
	return 0;
}

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
	case '{': {
		int m = pmarker(p, w);

		return m == 1 ? pcontainer(p, w, true) : m;
	}
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

/* ---- JSON ----------------------------------------------------------------------------- */

/*
 * Strict JSON for scripts (doc/net-hivemind.md "JSON output"): JSON values print as they are;
 * what JSON cannot hold prints as an object with one "$" member, so nothing is lost and a
 * script can tell it apart from data:
 *   {"$bin": "00ff"}                       bin (hex)
 *   {"$float": "NaN"|"Infinity"|"-Infinity"} non-finite float
 *   {"$ext": 64, "value": V}               ext 0x40 / 0x50 / 0x51 whose payload is one value
 *   {"$ext": N, "hex": "..."}              any other ext (payload bytes)
 *   {"$map": [[K, V], ...]}                a map with a key that is not a str, or a str key
 *                                          starting with '$' (so it cannot pass as a marker)
 * Finite floats always carry a '.' or an exponent, so 1.0 stays a float and 1 an int.
 * Written twice: a counting pass checks the whole value (errors before any byte goes out),
 * then the real one; recursion is bounded by KW_MP_MAX_DEPTH over maps, arrays and ext
 * payloads together.
 */
struct jw {
	void (*emit)(void *arg, const char *s, size_t n);   /* NULL: count only */
	void *arg;
	size_t len;
};

static void jput(struct jw *w, const char *s, size_t n)
{
	if (w->emit && n)
		w->emit(w->arg, s, n);
	w->len += n;
}

static void jputs(struct jw *w, const char *s)
{
	jput(w, s, strlen(s));
}

static void jhex(struct jw *w, const uint8_t *b, size_t n)
{
	static const char d[] = "0123456789abcdef";
	char t[64];
	size_t k = 0;

	jput(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		t[k++] = d[b[i] >> 4];
		t[k++] = d[b[i] & 15];
		if (k == sizeof(t)) {
			jput(w, t, k);
			k = 0;
		}
	}
	jput(w, t, k);
	jput(w, "\"", 1);
}

/* A str the reader checked is UTF-8: only '"', '\\' and the controls need escapes. */
static void jstr(struct jw *w, const uint8_t *s, size_t n)
{
	size_t run = 0;

	jput(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		char e[8];

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		jput(w, (const char *)s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': jput(w, "\\\"", 2); break;
		case '\\': jput(w, "\\\\", 2); break;
		case '\n': jput(w, "\\n", 2); break;
		case '\t': jput(w, "\\t", 2); break;
		case '\r': jput(w, "\\r", 2); break;
		case '\b': jput(w, "\\b", 2); break;
		case '\f': jput(w, "\\f", 2); break;
		default:
			snprintf(e, sizeof(e), "\\u%04x", c);
			jput(w, e, 6);
		}
	}
	jput(w, (const char *)s + run, n - run);
	jput(w, "\"", 1);
}

static void jfloat(struct jw *w, double f)
{
	char t[40];
	int n;

	if (isnan(f)) {
		jputs(w, "{\"$float\": \"NaN\"}");
		return;
	}
	if (isinf(f)) {
		jputs(w, f > 0 ? "{\"$float\": \"Infinity\"}" : "{\"$float\": \"-Infinity\"}");
		return;
	}
	n = snprintf(t, sizeof(t), "%.17g", f);
	if (n > 0 && !strpbrk(t, ".e"))
		n = snprintf(t, sizeof(t), "%.17g.0", f);   /* 1.0 stays a float */
	jput(w, t, (size_t)n);
}

static int jvalue(struct jw *w, struct kw_mp_reader *r, int depth);

/* The payload of a Hivemind ext: one msgpack value of its own, read with its own reader. */
static int jext(struct jw *w, const struct kw_mp_item *it, int depth)
{
	struct kw_mp_reader sub;
	char t[48];
	int err;

	snprintf(t, sizeof(t), "{\"$ext\": %d, ", it->ext_type);
	jputs(w, t);
	if ((it->ext_type == KW_MP_EXT_TUPLE || it->ext_type == KW_MP_EXT_DHTDICT ||
	     it->ext_type == KW_MP_EXT_BTD) &&
	    kw_mp_validate(it->data, it->len, 0, NULL) == 0) {
		if (depth >= KW_MP_MAX_DEPTH)
			return -KW_ELIMIT;
		jputs(w, "\"value\": ");
		if ((err = kw_mp_reader_init(&sub, it->data, it->len, 0)) ||
		    (err = jvalue(w, &sub, depth + 1)))
			return err;
	} else {
		jputs(w, "\"hex\": ");
		jhex(w, it->data, it->len);
	}
	jput(w, "}", 1);
	return 0;
}

/* A map prints as an object when every key is a str not starting with '$'. */
static int jmap_plain(struct kw_mp_reader *r, uint32_t pairs)
{
	struct kw_mp_reader scan = *r;   /* a copy: the real reader stays at the first key */
	struct kw_mp_item k;
	int err;

	for (uint32_t i = 0; i < pairs; i++) {
		if ((err = kw_mp_read(&scan, &k)))
			return err;
		if (k.type != KW_MP_STR || (k.len && k.data[0] == '$'))
			return 0;
		if ((err = kw_mp_skip(&scan, &k)) || (err = kw_mp_skip_value(&scan)))
			return err;
	}
	return 1;
}

static int jvalue(struct jw *w, struct kw_mp_reader *r, int depth)
{
	struct kw_mp_item it;
	char t[32];
	int err, plain;

	if ((err = kw_mp_read(r, &it)))
		return err;
	switch (it.type) {
	case KW_MP_NIL: jputs(w, "null"); return 0;
	case KW_MP_BOOL: jputs(w, it.v.b ? "true" : "false"); return 0;
	case KW_MP_UINT:
		snprintf(t, sizeof(t), "%llu", (unsigned long long)it.v.u);
		jputs(w, t);
		return 0;
	case KW_MP_INT:
		snprintf(t, sizeof(t), "%lld", (long long)it.v.i);
		jputs(w, t);
		return 0;
	case KW_MP_FLOAT: jfloat(w, it.v.f); return 0;
	case KW_MP_STR: jstr(w, it.data, it.len); return 0;
	case KW_MP_BIN:
		jputs(w, "{\"$bin\": ");
		jhex(w, it.data, it.len);
		jput(w, "}", 1);
		return 0;
	case KW_MP_EXT: return jext(w, &it, depth);
	case KW_MP_ARRAY:
		if (depth >= KW_MP_MAX_DEPTH)
			return -KW_ELIMIT;
		jput(w, "[", 1);
		for (uint32_t i = 0; i < it.len; i++) {
			if (i)
				jput(w, ", ", 2);
			if ((err = jvalue(w, r, depth + 1)))
				return err;
		}
		jput(w, "]", 1);
		return 0;
	case KW_MP_MAP:
		if (depth >= KW_MP_MAX_DEPTH)
			return -KW_ELIMIT;
		if ((plain = jmap_plain(r, it.len)) < 0)
			return plain;
		jputs(w, plain ? "{" : "{\"$map\": [");
		for (uint32_t i = 0; i < it.len; i++) {
			if (i)
				jput(w, ", ", 2);
			if (!plain)
				jput(w, "[", 1);
			if ((err = jvalue(w, r, depth + 1)))
				return err;
			jput(w, plain ? ": " : ", ", 2);
			if ((err = jvalue(w, r, depth + 1)))
				return err;
			if (!plain)
				jput(w, "]", 1);
		}
		jputs(w, plain ? "}" : "]}");
		return 0;
	}
	return -KW_EBADMSG;
}

/* One pass over mp; exactly one value or -KW_EBADMSG. */
static long jrun(struct jw *w, const uint8_t *mp, size_t len)
{
	struct kw_mp_reader r;
	int err;

	if ((err = kw_mp_reader_init(&r, mp, len, 0)) || (err = jvalue(w, &r, 0)))
		return err;
	if (kw_mp_reader_done(&r))
		return -KW_EBADMSG;
	return (long)w->len;
}

long kw_hm_mp_json_emit(const uint8_t *mp, size_t len,
			void (*emit)(void *arg, const char *s, size_t n), void *arg)
{
	struct jw count = { NULL, NULL, 0 }, real = { emit, arg, 0 };
	long n = jrun(&count, mp, len);

	if (n < 0 || !emit)
		return n;
	return jrun(&real, mp, len);
}

struct jbuf {
	char *p;
	size_t cap, len;
};

static void jbuf_emit(void *arg, const char *s, size_t n)
{
	struct jbuf *b = arg;

	memcpy(b->p + b->len, s, n);   /* room checked by the counting pass */
	b->len += n;
}

int kw_hm_mp_to_json(const uint8_t *mp, size_t len, char *out, size_t cap)
{
	struct jbuf b = { out, cap, 0 };
	long n;

	if (!cap)
		return -KW_ENOSPC;
	out[0] = '\0';
	n = kw_hm_mp_json_emit(mp, len, NULL, NULL);
	if (n < 0)
		return (int)n;
	if ((size_t)n >= cap || n > INT32_MAX)
		return -KW_ENOSPC;
	n = kw_hm_mp_json_emit(mp, len, jbuf_emit, &b);
	out[b.len] = '\0';
	return n < 0 ? (int)n : (int)b.len;
}

int kw_hm_json_str(const char *s, char *out, size_t cap)
{
	struct jbuf b = { out, cap, 0 };
	struct jw count = { NULL, NULL, 0 }, real = { jbuf_emit, &b, 0 };
	size_t n = strlen(s);

	jstr(&count, (const uint8_t *)s, n);
	if (count.len >= cap)
		return -KW_ENOSPC;
	jstr(&real, (const uint8_t *)s, n);
	out[b.len] = '\0';
	return (int)b.len;
}
