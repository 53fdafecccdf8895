/* The bounded JSON reader of ml/model (see json.h). */
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>

#include "json.h"

void kw_mj_init(struct kw_mj *j, const void *buf, size_t len, int max_depth)
{
	memset(j, 0, sizeof(*j));
	j->p = buf;
	j->len = len;
	j->max_depth = max_depth;
}

static int fail(struct kw_mj *j, int ret, const char *why)
{
	if (!j->why) {
		j->why = why;
		j->why_pos = j->pos;
	}
	return ret;
}

static void ws(struct kw_mj *j)
{
	while (j->pos < j->len) {
		uint8_t c = j->p[j->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		j->pos++;
	}
}

int kw_mj_peek(struct kw_mj *j)
{
	ws(j);
	return j->pos < j->len ? j->p[j->pos] : -1;
}

int kw_mj_expect(struct kw_mj *j, char c)
{
	static const char *const msgs[] = { "expected '{'", "expected '}'", "expected '['",
					    "expected ']'", "expected ':'", "expected ','",
					    "expected '\"'" };
	const char *set = "{}[]:,\"", *at;

	if (kw_mj_peek(j) == (uint8_t)c) {
		j->pos++;
		return 0;
	}
	at = strchr(set, c);
	return fail(j, -KW_EBADMSG, at ? msgs[at - set] : "unexpected byte");
}

int kw_mj_next(struct kw_mj *j, char close, int *first)
{
	int c = kw_mj_peek(j);

	if (c < 0)
		return fail(j, -KW_EBADMSG, "truncated");
	if (c == (uint8_t)close) {
		j->pos++;
		return 0;
	}
	if (!*first) {
		if (c != ',')
			return fail(j, -KW_EBADMSG, "expected ',' or end of object/array");
		j->pos++;
		if (kw_mj_peek(j) == (uint8_t)close)
			return fail(j, -KW_EBADMSG, "trailing comma");
	}
	*first = 0;
	return 1;
}

static int hex4(struct kw_mj *j, uint32_t *v)
{
	*v = 0;
	if (j->len - j->pos < 4)
		return fail(j, -KW_EBADMSG, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		uint8_t c = j->p[j->pos++];
		uint32_t d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail(j, -KW_EBADMSG, "bad \\u escape");
		*v = *v << 4 | d;
	}
	return 0;
}

static int put(struct kw_mj *j, char *out, size_t cap, size_t *n, uint8_t c)
{
	if (*n + 1 >= cap)
		return fail(j, -KW_ELIMIT, "string longer than the configured limit");
	out[(*n)++] = (char)c;
	return 0;
}

int kw_mj_string(struct kw_mj *j, char *out, size_t cap, size_t *outlen)
{
	size_t n = 0;
	int r;

	if (cap == 0)
		return fail(j, -KW_EINVAL, "no string buffer");
	if ((r = kw_mj_expect(j, '"')) < 0)
		return r;
	for (;;) {
		uint8_t c;

		if (j->pos >= j->len)
			return fail(j, -KW_EBADMSG, "unterminated string");
		c = j->p[j->pos++];
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(j, -KW_EBADMSG, "control character in string");
		if (c != '\\') {
			if ((r = put(j, out, cap, &n, c)) < 0)
				return r;
			continue;
		}
		if (j->pos >= j->len)
			return fail(j, -KW_EBADMSG, "unterminated string");
		c = j->p[j->pos++];
		switch (c) {
		case '"': case '\\': case '/': break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u': {
			uint32_t cp, lo;

			if ((r = hex4(j, &cp)) < 0)
				return r;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(j, -KW_EBADMSG, "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->len - j->pos < 2 || j->p[j->pos] != '\\' || j->p[j->pos + 1] != 'u')
					return fail(j, -KW_EBADMSG, "lone high surrogate");
				j->pos += 2;
				if ((r = hex4(j, &lo)) < 0)
					return r;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(j, -KW_EBADMSG, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return fail(j, -KW_EBADMSG, "\\u0000 in string");
			if (cp < 0x80) {
				r = put(j, out, cap, &n, (uint8_t)cp);
			} else if (cp < 0x800) {
				if ((r = put(j, out, cap, &n, (uint8_t)(0xc0 | cp >> 6))) == 0)
					r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp & 0x3f)));
			} else if (cp < 0x10000) {
				if ((r = put(j, out, cap, &n, (uint8_t)(0xe0 | cp >> 12))) == 0 &&
				    (r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp >> 6 & 0x3f)))) == 0)
					r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp & 0x3f)));
			} else {
				if ((r = put(j, out, cap, &n, (uint8_t)(0xf0 | cp >> 18))) == 0 &&
				    (r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp >> 12 & 0x3f)))) == 0 &&
				    (r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp >> 6 & 0x3f)))) == 0)
					r = put(j, out, cap, &n, (uint8_t)(0x80 | (cp & 0x3f)));
			}
			if (r < 0)
				return r;
			continue;
		}
		default:
			return fail(j, -KW_EBADMSG, "bad escape in string");
		}
		if ((r = put(j, out, cap, &n, c)) < 0)
			return r;
	}
	out[n] = '\0';
	if (outlen)
		*outlen = n;
	return 0;
}

static int digit(const struct kw_mj *j, size_t i)
{
	return i < j->len && j->p[i] >= '0' && j->p[i] <= '9';
}

/* Scans one JSON number at pos; returns its end or 0 on a syntax error. */
static size_t scan_number(const struct kw_mj *j, size_t i, int *is_int)
{
	*is_int = 1;
	if (i < j->len && j->p[i] == '-')
		i++;
	if (!digit(j, i))
		return 0;
	if (j->p[i] == '0')
		i++;
	else
		while (digit(j, i))
			i++;
	if (i < j->len && j->p[i] == '.') {
		*is_int = 0;
		if (!digit(j, ++i))
			return 0;
		while (digit(j, i))
			i++;
	}
	if (i < j->len && (j->p[i] == 'e' || j->p[i] == 'E')) {
		*is_int = 0;
		i++;
		if (i < j->len && (j->p[i] == '+' || j->p[i] == '-'))
			i++;
		if (!digit(j, i))
			return 0;
		while (digit(j, i))
			i++;
	}
	return i;
}

int kw_mj_u64(struct kw_mj *j, uint64_t *v)
{
	size_t end;
	int is_int;
	uint64_t x = 0;

	if (kw_mj_peek(j) < 0)
		return fail(j, -KW_EBADMSG, "truncated");
	end = scan_number(j, j->pos, &is_int);
	if (!end)
		return fail(j, -KW_EBADMSG, "expected a number");
	if (!is_int || j->p[j->pos] == '-')
		return fail(j, -KW_EBADMSG, "expected a non-negative integer");
	for (; j->pos < end; j->pos++)
		if (__builtin_mul_overflow(x, 10, &x) ||
		    __builtin_add_overflow(x, (uint64_t)(j->p[j->pos] - '0'), &x))
			return fail(j, -KW_ERANGE, "integer too large");
	*v = x;
	return 0;
}

int kw_mj_number(struct kw_mj *j, double *v)
{
	char tmp[64];
	size_t end;
	int is_int;

	if (kw_mj_peek(j) < 0)
		return fail(j, -KW_EBADMSG, "truncated");
	end = scan_number(j, j->pos, &is_int);
	if (!end)
		return fail(j, -KW_EBADMSG, "expected a number");
	if (end - j->pos >= sizeof(tmp))
		return fail(j, -KW_ELIMIT, "number longer than 63 characters");
	memcpy(tmp, j->p + j->pos, end - j->pos);
	tmp[end - j->pos] = '\0';
	/* strtod reads the C locale's '.': the node never calls setlocale */
	*v = strtod(tmp, NULL);
	j->pos = end;
	return 0;
}

static int lit(struct kw_mj *j, const char *w)
{
	size_t n = strlen(w);

	if (j->len - j->pos < n || memcmp(j->p + j->pos, w, n) != 0)
		return 0;
	j->pos += n;
	return 1;
}

int kw_mj_null(struct kw_mj *j)
{
	return kw_mj_peek(j) == 'n' && lit(j, "null");
}

/* Skips a string at pos (escapes are stepped over, not decoded: a skipped value is unused). */
static int skip_string(struct kw_mj *j)
{
	int r;

	if ((r = kw_mj_expect(j, '"')) < 0)
		return r;
	for (;; j->pos++) {
		if (j->pos >= j->len)
			return fail(j, -KW_EBADMSG, "unterminated string");
		if (j->p[j->pos] < 0x20)
			return fail(j, -KW_EBADMSG, "control character in string");
		if (j->p[j->pos] == '\\') {
			j->pos++;
			continue;
		}
		if (j->p[j->pos] == '"')
			break;
	}
	j->pos++;
	return 0;
}

int kw_mj_key(struct kw_mj *j, char *out, size_t cap)
{
	size_t start;
	int r;

	kw_mj_peek(j);
	start = j->pos;
	r = kw_mj_string(j, out, cap, NULL);
	if (r == -KW_ELIMIT) {
		/* longer than any key the caller knows: skip it whole, report it as "" */
		j->pos = start;
		j->why = NULL;
		if ((r = skip_string(j)) < 0)
			return r;
		out[0] = '\0';
	}
	if (r < 0)
		return r;
	return kw_mj_expect(j, ':');
}

int kw_mj_skip(struct kw_mj *j, int depth)
{
	int c = kw_mj_peek(j), first = 1, r;
	double d;

	switch (c) {
	case -1:
		return fail(j, -KW_EBADMSG, "truncated");
	case '{':
	case '[':
		if (depth >= j->max_depth)
			return fail(j, -KW_ELIMIT, "nesting deeper than the limit");
		j->pos++;
		while ((r = kw_mj_next(j, c == '{' ? '}' : ']', &first)) == 1) {
			if (c == '{' && ((r = skip_string(j)) < 0 || (r = kw_mj_expect(j, ':')) < 0))
				return r;
			if ((r = kw_mj_skip(j, depth + 1)) < 0)
				return r;
		}
		return r;
	case '"':
		return skip_string(j);
	case 't':
		return lit(j, "true") ? 0 : fail(j, -KW_EBADMSG, "bad literal");
	case 'f':
		return lit(j, "false") ? 0 : fail(j, -KW_EBADMSG, "bad literal");
	case 'n':
		return lit(j, "null") ? 0 : fail(j, -KW_EBADMSG, "bad literal");
	default:
		return kw_mj_number(j, &d);
	}
}

int kw_mj_end(struct kw_mj *j)
{
	return kw_mj_peek(j) < 0 ? 0 : fail(j, -KW_EBADMSG, "bytes after the JSON value");
}
