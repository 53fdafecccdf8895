/*
 * The control socket's line format for `kwnode hivemind` (app/hm_line.h): the request line,
 * the reply lines a running node collects the command's output into, and printing them.
 * Bounded by the request's fixed buffers; nothing allocates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>

#include "hm_line.h"

static const char *const g_verbs[] = {
	[KW_HM_GET] = "get",
	[KW_HM_STORE] = "store",
	[KW_HM_PING] = "ping",
	[KW_HM_SERVERS] = "servers",
};

static const char g_flag_ch[] = "Ljxk";  /* KW_HM_REQ_LATEST, _JSON, _HEX, _SUBKEYS: bit i */

/* "-" (nothing) or hex of 1..cap bytes. Return: bytes; -1 malformed; -2 too long. */
static long get_hex(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n == 1 && s[0] == '-')
		return 0;
	if (n == 0 || n % 2)
		return -1;
	if (n / 2 > cap)
		return -2;
	if (kw_hex_get(s, n / 2, out))
		return -1;
	return (long)(n / 2);
}

/* Decimal without sign or leading zeros, lo..hi. Return: 0; -1. */
static int get_u32(const char *s, size_t n, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

long kw_hm_req_encode(const struct kw_hm_req *r, char *out, size_t cap)
{
	size_t klen = strlen(r->key), o, i;
	char flags[sizeof(g_flag_ch) + 1];

	if ((unsigned)r->verb >= KW_ARRAY_SIZE(g_verbs) || klen == 0 ||
	    cap < 64 + 2 * (klen + (size_t)r->sub_len + r->val_len))
		return -KW_ENOSPC;
	o = 0;
	for (i = 0; i < sizeof(g_flag_ch) - 1; i++)
		if (r->flags & (1u << i))
			flags[o++] = g_flag_ch[i];
	if (!o)
		flags[o++] = '-';
	flags[o] = '\0';
	o = (size_t)snprintf(out, cap, "hivemind %s %s %u %u ", g_verbs[r->verb], flags,
			     r->num_blocks, r->exp_s);
	o += kw_hex_put((const uint8_t *)r->key, klen, out + o);
	out[o++] = ' ';
	if (r->sub_len)
		o += kw_hex_put(r->sub, r->sub_len, out + o);
	else
		out[o++] = '-';
	out[o++] = ' ';
	if (r->val_len)
		o += kw_hex_put(r->val, r->val_len, out + o);
	else
		out[o++] = '-';
	out[o++] = '\n';
	out[o] = '\0';
	return (long)o;
}

int kw_hm_req_decode(struct kw_hm_req *r, const char *line, char *err, size_t cap)
{
	static const char *const names[] = { "VERB", "FLAGS", "NUM_BLOCKS", "EXPIRATION", "KEY",
					     "SUBKEY", "VALUE" };
	const char *f[7], *p;
	size_t fl[7], i;
	struct kw_hm_dhtid id;
	long n;

	memset(r, 0, offsetof(struct kw_hm_req, key));
	r->key[0] = '\0';
	if (strncmp(line, "hivemind ", 9))
		return kw_errf(-KW_EINVAL, err, cap, "expected 'hivemind VERB ...'");
	p = line + 9;
	for (i = 0; i < 7; i++) {
		const char *sp = strchr(p, ' ');

		f[i] = p;
		fl[i] = sp ? (size_t)(sp - p) : strlen(p);
		if (!sp && i < 6)
			return kw_errf(-KW_EINVAL, err, cap, "%zu fields, expected 7 after 'hivemind'",
				       i + 1);
		if (sp && i == 6)
			return kw_errf(-KW_EINVAL, err, cap, "more than 7 fields after 'hivemind'");
		if (fl[i] == 0)
			return kw_errf(-KW_EINVAL, err, cap, "%s is empty", names[i]);
		p = sp ? sp + 1 : p + fl[i];
	}
	for (i = 0; i < KW_ARRAY_SIZE(g_verbs); i++)
		if (strlen(g_verbs[i]) == fl[0] && !strncmp(f[0], g_verbs[i], fl[0]))
			break;
	if (i == KW_ARRAY_SIZE(g_verbs))
		return kw_errf(-KW_EINVAL, err, cap, "unknown VERB (get, store, ping, servers)");
	r->verb = (enum kw_hm_verb)i;
	if (!(fl[1] == 1 && f[1][0] == '-')) {
		/* each letter once, in g_flag_ch's order: one spelling per request */
		size_t at = 0;

		for (i = 0; i < fl[1]; i++) {
			const char *c = memchr(g_flag_ch + at, f[1][i], sizeof(g_flag_ch) - 1 - at);

			if (!c)
				return kw_errf(-KW_EINVAL, err, cap, "FLAGS: '-' or L, j, x, k in that "
					       "order");
			at = (size_t)(c - g_flag_ch) + 1;
			r->flags |= 1u << (c - g_flag_ch);
		}
	}
	if (get_u32(f[2], fl[2], 0, KW_HM_REQ_BLOCKS_MAX, &r->num_blocks) < 0)
		return kw_errf(-KW_EINVAL, err, cap, "NUM_BLOCKS: expected 0..%u", KW_HM_REQ_BLOCKS_MAX);
	if (get_u32(f[3], fl[3], 1, KW_HM_REQ_EXP_MAX, &r->exp_s) < 0)
		return kw_errf(-KW_EINVAL, err, cap, "EXPIRATION: expected 1..%u seconds",
			       KW_HM_REQ_EXP_MAX);
	n = get_hex(f[4], fl[4], (uint8_t *)r->key, KW_HM_REQ_KEY_MAX);
	if (n <= 0)
		return kw_errf(-KW_EINVAL, err, cap, "KEY: %s", n == -2 ? "longer than 4096 bytes" :
			       "expected hex bytes");
	r->key[n] = '\0';
	if (strlen(r->key) != (size_t)n)
		return kw_errf(-KW_EINVAL, err, cap, "KEY holds a NUL byte");
	n = get_hex(f[5], fl[5], r->sub, sizeof(r->sub));
	if (n < 0)
		return kw_errf(-KW_EINVAL, err, cap, "SUBKEY: expected '-' or hex of at most %d bytes",
			       KW_HM_REQ_VAL_MAX);
	r->sub_len = (uint16_t)n;
	n = get_hex(f[6], fl[6], r->val, sizeof(r->val));
	if (n < 0)
		return kw_errf(-KW_EINVAL, err, cap, "VALUE: expected '-' or hex of at most %d bytes",
			       KW_HM_REQ_VAL_MAX);
	r->val_len = (uint16_t)n;
	if ((r->verb == KW_HM_STORE) != (r->val_len > 0))
		return kw_errf(-KW_EINVAL, err, cap, "VALUE is %s for %s",
			       r->val_len ? "not taken" : "needed", g_verbs[r->verb]);
	if (r->sub_len && (r->verb == KW_HM_PING || r->verb == KW_HM_SERVERS))
		return kw_errf(-KW_EINVAL, err, cap, "SUBKEY is not taken by %s", g_verbs[r->verb]);
	if (r->verb != KW_HM_PING && kw_hm_dhtid_of_str(r->key, strlen(r->key), &id) < 0)
		return kw_errf(-KW_EINVAL, err, cap, "KEY is not UTF-8 text");
	if (r->verb == KW_HM_SERVERS && kw_hm_prefix_check(r->key) < 0)
		return kw_errf(-KW_EINVAL, err, cap, "KEY is not a Petals dht_prefix");
	return 0;
}

/* ---- reply lines -------------------------------------------------------------------------- */

#define SINK_RESERVE 160   /* the closing lines: the open line's '\n', a "cut" note, "exit N" */

void kw_hm_sink_init(struct kw_hm_sink *s, char *buf, size_t cap)
{
	s->buf = buf;
	s->cap = cap;
	s->len = 0;
	s->open = 0;
	s->cut = false;
}

static void sink_raw(struct kw_hm_sink *s, const char *t, size_t n)
{
	if (s->len + n + 1 > s->cap)
		n = s->cap - 1 - s->len;
	memcpy(s->buf + s->len, t, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

void kw_hm_sink_write(struct kw_hm_sink *s, int stream, const char *text, size_t n)
{
	while (n) {
		const char *nl = memchr(text, '\n', n);
		size_t part = nl ? (size_t)(nl - text) : n;

		if (s->cut)
			return;
		if (s->open && s->open != stream) {   /* the other stream's line ends here */
			sink_raw(s, "\n", 1);
			s->open = 0;
		}
		if (!s->open) {
			if (s->len + 4 + SINK_RESERVE > s->cap) {
				s->cut = true;
				return;
			}
			sink_raw(s, stream == 2 ? "err " : "out ", 4);
			s->open = stream;
		}
		if (s->len + part + SINK_RESERVE > s->cap) {
			s->cut = true;
			return;
		}
		sink_raw(s, text, part);
		if (nl) {
			sink_raw(s, "\n", 1);
			s->open = 0;
			part++;
		}
		text += part;
		n -= part;
	}
}

size_t kw_hm_sink_finish(struct kw_hm_sink *s, int code)
{
	char t[SINK_RESERVE];
	int n;

	if (s->open)
		sink_raw(s, "\n", 1);
	s->open = 0;
	n = snprintf(t, sizeof(t), "%sexit %d\n", s->cut ?
		     "err kwnode hivemind: the output was cut at the control reply's limit "
		     "(run the command without a running node for all of it)\n" : "", code);
	sink_raw(s, t, (size_t)n);
	return s->len;
}

int kw_hm_reply_print(const char *lines, size_t len)
{
	size_t pos = 0;
	int code = -1;

	while (pos < len) {
		const char *l = lines + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + 1;
		if (n >= 4 && !strncmp(l, "out ", 4))
			printf("%.*s\n", (int)(n - 4), l + 4);
		else if (n >= 4 && !strncmp(l, "err ", 4))
			fprintf(stderr, "%.*s\n", (int)(n - 4), l + 4);
		else if (n > 6 && !strncmp(l, "error ", 6))  /* the control socket's own refusals */
			fprintf(stderr, "kwnode hivemind: %.*s\n", (int)(n - 6), l + 6);
		else if (n > 5 && !strncmp(l, "exit ", 5))
			code = atoi(l + 5);
	}
	fflush(stdout);
	if (code < 0) {
		fprintf(stderr, "kwnode hivemind: the running node closed the control connection "
			"without an answer\n");
		return 1;
	}
	return code;
}
