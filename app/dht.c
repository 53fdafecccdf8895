/*
 * DHT requests and their reply lines (app/dht.h): parsing what the user typed, the control
 * socket's line format, and printing. Everything is bounded by the kad message limits
 * (KW_KAD_KEY_MAX, KW_KAD_VALUE_MAX); nothing allocates. Also the DHT's part in the
 * contribution policy's drain (kw_dht_drain_attach, at the end).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/app.h>
#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/cid.h>
#include <kw/net/kad_store.h>
#include <kw/net/multiaddr.h>
#include <kw/node.h>
#include <kw/policy.h>

#include "dht.h"

static const char *const g_verbs[] = {
	[KW_DHT_PUT] = "put",
	[KW_DHT_GET] = "get",
	[KW_DHT_PROVIDE] = "provide",
	[KW_DHT_FIND_PROVIDERS] = "find-providers",
	[KW_DHT_FIND_PEER] = "find-peer",
};

/* Hex text (exactly n chars) to bytes. Return: bytes, or -KW_EINVAL / -KW_ELIMIT. */
static long unhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n % 2)
		return -KW_EINVAL;
	if (n / 2 > cap)
		return -KW_ELIMIT;
	if (kw_hex_get(s, n / 2, out))
		return -KW_EINVAL;
	return (long)(n / 2);
}

static int want_args(const char *verb, int argc, int n, const char *what, char *err, size_t cap)
{
	if (argc == n)
		return 0;
	return kw_errf(-KW_EINVAL, err, cap, "dht %s takes %s (got %d argument%s)", verb, what,
		       argc, argc == 1 ? "" : "s");
}

static int set_key(struct kw_dht_req *r, const char *s, bool hex, char *err, size_t cap)
{
	long n;

	if (hex) {
		n = unhex(s, strlen(s), r->key, sizeof(r->key));
		if (n < 0)
			return kw_errf(-KW_EINVAL, err, cap, "KEY '%.64s' is not %s", s,
				       n == -KW_ELIMIT ? "at most 512 bytes" : "hex bytes");
	} else {
		n = (long)strlen(s);
		if (n > (long)sizeof(r->key))
			return kw_errf(-KW_EINVAL, err, cap, "KEY is longer than %zu bytes",
				       sizeof(r->key));
		memcpy(r->key, s, (size_t)n);
	}
	if (n == 0)
		return kw_errf(-KW_EINVAL, err, cap, "KEY is empty");
	r->klen = (uint16_t)n;
	return 0;
}

static int set_cid(struct kw_dht_req *r, const char *s, char *err, size_t cap)
{
	struct kw_cid c;
	char why[KW_CID_ERR_MAX];

	why[0] = '\0';
	if (kw_cid_from_text(s, &c, why, sizeof(why)) < 0)
		return kw_errf(-KW_EINVAL, err, cap, "CID '%.80s': %s", s, why);
	memcpy(r->key, c.mh, c.mhlen);
	r->klen = c.mhlen;
	return 0;
}

int kw_dht_req_parse(struct kw_dht_req *r, const char *verb, int argc, char **argv, unsigned flags,
		     char *err, size_t cap)
{
	bool hex = flags & KW_DHT_KEY_HEX;
	size_t i;
	int ret;

	memset(r, 0, offsetof(struct kw_dht_req, key));
	for (i = 0; i < KW_ARRAY_SIZE(g_verbs); i++)
		if (!strcmp(verb, g_verbs[i]))
			break;
	if (i == KW_ARRAY_SIZE(g_verbs))
		return kw_errf(-KW_EINVAL, err, cap, "unknown dht command '%.40s' (put, get, "
			       "provide, find-providers, find-peer)", verb);
	r->verb = (enum kw_dht_verb)i;
	switch (r->verb) {
	case KW_DHT_PUT:
		ret = want_args(verb, argc, 2, "KEY VALUE", err, cap);
		if (ret == 0)
			ret = set_key(r, argv[0], hex, err, cap);
		if (ret == 0 && (flags & KW_DHT_VALUE_HEX)) {
			long n = unhex(argv[1], strlen(argv[1]), r->val, sizeof(r->val));

			if (n < 0)
				return n == -KW_ELIMIT ?
				       kw_errf(-KW_EINVAL, err, cap, "VALUE is longer than %zu bytes",
					       sizeof(r->val)) :
				       kw_errf(-KW_EINVAL, err, cap, "VALUE '%.64s' is not hex bytes",
					       argv[1]);
			r->vlen = (uint16_t)n;
		} else if (ret == 0) {
			size_t n = strlen(argv[1]);

			if (n > sizeof(r->val))
				return kw_errf(-KW_EINVAL, err, cap, "VALUE is longer than %zu bytes",
					       sizeof(r->val));
			memcpy(r->val, argv[1], n);
			r->vlen = (uint16_t)n;
		}
		return ret;
	case KW_DHT_GET:
		ret = want_args(verb, argc, 1, "KEY", err, cap);
		return ret ? ret : set_key(r, argv[0], hex, err, cap);
	case KW_DHT_PROVIDE:
	case KW_DHT_FIND_PROVIDERS:
		ret = want_args(verb, argc, 1, "CID", err, cap);
		return ret ? ret : set_cid(r, argv[0], err, cap);
	case KW_DHT_FIND_PEER:
		ret = want_args(verb, argc, 1, "PEERID", err, cap);
		if (ret == 0 && kw_peer_id_from_text(argv[0], &r->peer) < 0)
			return kw_errf(-KW_EINVAL, err, cap, "PEERID '%.80s' is not a peer ID",
				       argv[0]);
		return ret;
	}
	return -KW_EINVAL;
}

long kw_dht_req_encode(const struct kw_dht_req *r, char *out, size_t cap)
{
	const uint8_t *a = r->key;
	size_t alen = r->klen, o;

	if (r->verb == KW_DHT_FIND_PEER) {
		a = r->peer.bytes;
		alen = r->peer.len;
	}
	if (cap < 16 + 2 * alen + 2 * (size_t)r->vlen + 2)
		return -KW_ENOSPC;
	o = (size_t)snprintf(out, cap, "dht %s ", g_verbs[r->verb]);
	o += kw_hex_put(a, alen, out + o);
	if (r->verb == KW_DHT_PUT) {
		out[o++] = ' ';
		o += kw_hex_put(r->val, r->vlen, out + o);
	}
	out[o++] = '\n';
	out[o] = '\0';
	return (long)o;
}

int kw_dht_req_decode(struct kw_dht_req *r, const char *line, char *err, size_t cap)
{
	const char *p, *sp, *a2 = NULL;
	size_t i, alen;
	long n;

	memset(r, 0, offsetof(struct kw_dht_req, key));
	if (strncmp(line, "dht ", 4))
		return kw_errf(-KW_EINVAL, err, cap, "expected 'dht VERB ...'");
	p = line + 4;
	sp = strchr(p, ' ');
	if (!sp)
		return kw_errf(-KW_EINVAL, err, cap, "expected 'dht VERB HEX'");
	for (i = 0; i < KW_ARRAY_SIZE(g_verbs); i++)
		if (strlen(g_verbs[i]) == (size_t)(sp - p) && !strncmp(p, g_verbs[i], (size_t)(sp - p)))
			break;
	if (i == KW_ARRAY_SIZE(g_verbs))
		return kw_errf(-KW_EINVAL, err, cap, "unknown verb");
	r->verb = (enum kw_dht_verb)i;
	p = sp + 1;
	sp = strchr(p, ' ');
	alen = sp ? (size_t)(sp - p) : strlen(p);
	if (sp)
		a2 = sp + 1;
	if ((r->verb == KW_DHT_PUT) != (a2 != NULL))
		return kw_errf(-KW_EINVAL, err, cap, "wrong number of fields");
	if (r->verb == KW_DHT_FIND_PEER) {
		n = unhex(p, alen, r->peer.bytes, sizeof(r->peer.bytes));
		if (n <= 0)
			return kw_errf(-KW_EINVAL, err, cap, "bad peer id field");
		r->peer.len = (uint8_t)n;
		return 0;
	}
	n = unhex(p, alen, r->key, sizeof(r->key));
	if (n <= 0)
		return kw_errf(-KW_EINVAL, err, cap, "bad key field");
	r->klen = (uint16_t)n;
	if (a2) {
		n = unhex(a2, strlen(a2), r->val, sizeof(r->val));
		if (n < 0)
			return kw_errf(-KW_EINVAL, err, cap, "bad value field");
		r->vlen = (uint16_t)n;
	}
	return 0;
}

int kw_dht_req_start(struct kw_kad *k, const struct kw_dht_req *r, kw_kad_done_fn cb, void *user)
{
	switch (r->verb) {
	case KW_DHT_PUT:
		return kw_kad_put_value(k, r->key, r->klen, r->val, r->vlen, cb, user);
	case KW_DHT_GET:
		return kw_kad_get_value(k, r->key, r->klen, cb, user);
	case KW_DHT_PROVIDE:
		return kw_kad_provide(k, r->key, r->klen, cb, user);
	case KW_DHT_FIND_PROVIDERS:
		return kw_kad_find_providers(k, r->key, r->klen, cb, user);
	case KW_DHT_FIND_PEER:
		return kw_kad_find_peer(k, &r->peer, cb, user);
	}
	return -KW_EINVAL;
}

struct out {
	char *p;
	size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len >= o->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len = KW_MIN(o->len + (size_t)n, o->cap - 1);
}

size_t kw_dht_format_error(const char *msg, int code, char *out, size_t cap)
{
	struct out o = { out, cap, 0 };

	put(&o, "error %s\nexit %d\n", msg, code);
	return o.len;
}

static void peer_text(const struct kw_kad_peer *p, char *out, size_t cap)
{
	struct kw_peer_id id;

	out[0] = '\0';
	if (kw_peer_id_from_bytes(p->id, p->id_len, &id) == 0)
		kw_peer_id_to_text(&id, out, cap);
}

size_t kw_dht_format(const struct kw_dht_req *r, const struct kw_kad_result *res, char *out,
		     size_t cap)
{
	struct out o = { out, cap, 0 };
	char pid[KW_PEER_ID_TEXT_MAX], msg[128];
	size_t i, j, n = 0;

	switch (r->verb) {
	case KW_DHT_PUT:
	case KW_DHT_PROVIDE:
		put(&o, "stored %u\n", res->stored);
		if (res->stored == 0) {
			snprintf(msg, sizeof(msg), "no peer %s (%s)", r->verb == KW_DHT_PUT ?
				 "accepted the record" : "accepted the provider record",
				 res->err ? kw_strerror(res->err) : "none reached");
			put(&o, "error %s\n", msg);
		}
		put(&o, "exit %d\n", res->stored ? 0 : 1);
		break;
	case KW_DHT_GET: {
		const uint8_t *v = res->value;
		size_t vl = res->value_len;

		/* a /kwaai/ record is the signed envelope (doc/net-kad.md): print what was put */
		if (res->err == 0 && v && r->klen >= 7 && !memcmp(r->key, "/kwaai/", 7) &&
		    kw_kad_kwaai_open(res->value, res->value_len, &v, &vl, NULL) < 0) {
			put(&o, "error the record's envelope is malformed\nexit 1\n");
			break;
		}
		if (res->err == 0 && v) {
			/* the value is written as hex in chunks: the line may be long, never cut */
			if (o.len + 2 * vl + 16 < o.cap) {
				put(&o, "value ");
				o.len += kw_hex_put(v, vl, o.p + o.len);
				put(&o, "\nexit 0\n");
				break;
			}
			put(&o, "error value too large for the reply\nexit 1\n");
			break;
		}
		put(&o, "error no value found for that key (%s)\nexit 1\n",
		    res->err ? kw_strerror(res->err) : "not found");
		break;
	}
	case KW_DHT_FIND_PROVIDERS:
		for (i = 0; i < res->n_peers; i++) {
			peer_text(&res->peers[i], pid, sizeof(pid));
			if (pid[0]) {
				put(&o, "provider %s\n", pid);
				n++;
			}
		}
		if (!n)
			put(&o, "error no providers found (%s)\n",
			    res->err ? kw_strerror(res->err) : "none announced");
		put(&o, "exit %d\n", n ? 0 : 1);
		break;
	case KW_DHT_FIND_PEER:
		for (i = 0; i < res->n_peers && res->err == 0; i++) {
			const struct kw_kad_peer *p = &res->peers[i];
			struct kw_multiaddr ma;
			struct kw_peer_id id;
			char t[KW_MADDR_TEXT_MAX];

			if (kw_peer_id_from_bytes(p->id, p->id_len, &id) < 0 ||
			    !kw_peer_id_equal(&id, &r->peer))
				continue;
			for (j = 0; j < p->n_addrs; j++)
				if (kw_maddr_from_bytes(p->addrs[j], p->addr_len[j], &ma, NULL, 0) == 0 &&
				    kw_maddr_peer_id(&ma, &id) < 0 &&
				    kw_maddr_append_peer_id(&ma, &r->peer) == 0 &&
				    kw_maddr_to_text(&ma, t, sizeof(t)) == 0) {
					put(&o, "addr %s\n", t);
					n++;
				}
		}
		if (!n)
			put(&o, "error peer not found (%s)\n",
			    res->err ? kw_strerror(res->err) : "no addresses known");
		put(&o, "exit %d\n", n ? 0 : 1);
		break;
	}
	return o.len;
}

int kw_dht_print(const char *lines, size_t len)
{
	static uint8_t val[KW_KAD_VALUE_MAX];
	size_t pos = 0;
	int code = 1;

	while (pos < len) {
		const char *l = lines + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + 1;
		if (n > 6 && !strncmp(l, "value ", 6)) {
			long v = unhex(l + 6, n - 6, val, sizeof(val));

			if (v >= 0)
				fwrite(val, 1, (size_t)v, stdout);
		} else if (n > 7 && !strncmp(l, "stored ", 7)) {
			printf("stored on %.*s peers\n", (int)(n - 7), l + 7);
		} else if (n > 9 && !strncmp(l, "provider ", 9)) {
			printf("%.*s\n", (int)(n - 9), l + 9);
		} else if (n > 5 && !strncmp(l, "addr ", 5)) {
			printf("%.*s\n", (int)(n - 5), l + 5);
		} else if (n > 6 && !strncmp(l, "error ", 6)) {
			fprintf(stderr, "kwnode dht: %.*s\n", (int)(n - 6), l + 6);
		} else if (n > 5 && !strncmp(l, "exit ", 5)) {
			code = atoi(l + 5);
		}
	}
	fflush(stdout);
	return code;
}

int kw_control_path(const char *data_dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/control.sock", data_dir);

	return n > 0 && (size_t)n < cap ? 0 : -KW_ERANGE;
}

/* ---- the DHT as the policy's drain client ---------------------------------------------- */

static void dht_withdrawn(struct kw_kad *k, void *arg)
{
	struct kw_dht_drain *d = arg;

	(void)k;
	d->drained++;
	kw_policy_drain_done(d->policy, &d->client);
}

static void dht_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_dht_drain *d = c->arg;

	(void)p;
	d->drains++;
	if (kw_kad_withdraw(d->kad, dht_withdrawn, d) < 0)
		dht_withdrawn(d->kad, d);   /* a DHT already shut down has nothing in flight */
}

static void dht_resume(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_dht_drain *d = c->arg;

	(void)p;
	d->resumes++;
	kw_kad_rejoin(d->kad);
}

int kw_dht_drain_attach(struct kw_dht_drain *d, struct kw_policy *p, struct kw_kad *k)
{
	if (!d || !p || !k)
		return -KW_EINVAL;
	memset(d, 0, sizeof(*d));
	d->policy = p;
	d->kad = k;
	d->client.name = "dht";
	d->client.drain = dht_drain;
	d->client.resume = dht_resume;
	d->client.arg = d;
	kw_policy_add_client(p, &d->client);
	/* the first decision is already made: a paused node must not serve until it resumes */
	if (kw_policy_status(p)->state != KW_POLICY_CONTRIBUTING)
		(void)kw_kad_withdraw(k, NULL, NULL);
	return 0;
}

/* The `dht_drain` init entry (app/initcalls.def): after `net` (the DHT) and `policy`. */
int kw_app_dht_drain_init(struct kw_node *n);
int kw_app_dht_drain_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_dht_drain *d;

	if (!app->policy || !app->kad)
		return 0;   /* no policy or no DHT in this node: nothing to drain */
	d = kw_arena_alloc(&n->arena, sizeof(*d), 8);
	if (!d)
		return -KW_ENOMEM;
	return kw_dht_drain_attach(d, app->policy, app->kad);
}
