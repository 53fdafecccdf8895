/*
 * Inbound admission for the swarm (rcmgr.h): per-address and per-subnet counters in one
 * open-addressing table (linear probing, backward-shift deletion so no tombstones pile up
 * under churn), the handshake queue that names the victim, and the refusal summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>

#include "rcmgr.h"

enum { KIND_FREE = 0, KIND_IP = 1, KIND_NET = 2 };

struct kw_rc_bucket {
	uint8_t key[16];
	uint8_t kind;
	uint32_t conns, hs;
};

static const char *const g_reason_name[KW_RC_REASONS] = {
	[KW_RC_IP] = "per address",
	[KW_RC_SUBNET] = "per subnet",
	[KW_RC_HS_IP] = "handshakes per address",
	[KW_RC_HS_SUBNET] = "handshakes per subnet",
	[KW_RC_FULL] = "all slots upgraded",
	[KW_RC_DRAINING] = "shutting down",
	[KW_RC_EVICTED] = "old handshakes dropped",
};

int kw_rcmgr_init(struct kw_rcmgr *rc, struct kw_arena *arena,
		  const struct kw_rcmgr_limits *lim, uint64_t seed)
{
	uint64_t want;
	uint32_t n = 16;

	if (!lim || lim->conns_in == 0)
		return -KW_EINVAL;
	memset(rc, 0, sizeof(*rc));
	rc->lim = *lim;
	rc->seed = seed | 1;
	/* at most one address and one subnet bucket per admitted connection: 4 per slot keeps
	 * the table at most half full, so probes stay short */
	want = (uint64_t)lim->conns_in * 4;
	while (n < want)
		n <<= 1;
	rc->tab = (struct kw_rc_bucket *)kw_arena_alloc(arena, sizeof(*rc->tab) * n, 8);
	if (!rc->tab)
		return -KW_ENOMEM;
	memset(rc->tab, 0, sizeof(*rc->tab) * n);
	rc->mask = n - 1;
	return 0;
}

int kw_rc_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct kw_rc_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		out->b[10] = out->b[11] = 0xff;
		memcpy(out->b + 12, &in->sin_addr, 4);
		out->v4 = true;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		memcpy(out->b, &in6->sin6_addr, 16);
		/* an IPv4 peer on a dual-stack socket is the same IPv4 address */
		out->v4 = memcmp(out->b, mapped, sizeof(mapped)) == 0;
		return 0;
	}
	return -KW_EINVAL;
}

void kw_rc_addr_text(const struct kw_rc_addr *a, char *out, size_t cap)
{
	if (!inet_ntop(a->v4 ? AF_INET : AF_INET6, a->v4 ? a->b + 12 : a->b, out, (socklen_t)cap))
		snprintf(out, cap, "?");
}

/* ---- the counter table ------------------------------------------------------------------- */

static void make_key(const struct kw_rc_addr *a, int kind, uint8_t key[16])
{
	memcpy(key, a->b, 16);
	if (kind == KIND_NET) {
		if (a->v4)
			key[15] = 0;                  /* /24 */
		else
			memset(key + 6, 0, 10);       /* /48 */
	}
}

static uint32_t hash(const struct kw_rcmgr *rc, const uint8_t key[16], int kind)
{
	uint64_t w[2], h = rc->seed ^ (uint64_t)kind;
	int i;

	memcpy(w, key, 16);
	for (i = 0; i < 2; i++) {
		h ^= w[i];
		h *= 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (uint32_t)h & rc->mask;
}

static struct kw_rc_bucket *find(const struct kw_rcmgr *rc, const uint8_t key[16], int kind)
{
	uint32_t i = hash(rc, key, kind);

	for (;; i = (i + 1) & rc->mask) {
		struct kw_rc_bucket *b = &rc->tab[i];

		if (b->kind == KIND_FREE)
			return NULL;
		if (b->kind == kind && memcmp(b->key, key, 16) == 0)
			return b;
	}
}

/* The table is sized so it never fills (see kw_rcmgr_init): a free bucket always exists. */
static struct kw_rc_bucket *get(struct kw_rcmgr *rc, const uint8_t key[16], int kind)
{
	uint32_t i = hash(rc, key, kind);

	for (;; i = (i + 1) & rc->mask) {
		struct kw_rc_bucket *b = &rc->tab[i];

		if (b->kind == KIND_FREE) {
			memcpy(b->key, key, 16);
			b->kind = (uint8_t)kind;
			b->conns = b->hs = 0;
			return b;
		}
		if (b->kind == kind && memcmp(b->key, key, 16) == 0)
			return b;
	}
}

/* Frees an empty bucket and shifts later members of its probe run back (no tombstones). */
static void drop(struct kw_rcmgr *rc, struct kw_rc_bucket *b)
{
	uint32_t hole = (uint32_t)(b - rc->tab), i = hole;

	for (;;) {
		struct kw_rc_bucket *n;
		uint32_t home;

		i = (i + 1) & rc->mask;
		n = &rc->tab[i];
		if (n->kind == KIND_FREE)
			break;
		home = hash(rc, n->key, n->kind);
		/* n may fill the hole when its home is not cyclically in (hole, i] */
		if (((i - home) & rc->mask) >= ((i - hole) & rc->mask)) {
			rc->tab[hole] = *n;
			hole = i;
		}
	}
	memset(&rc->tab[hole], 0, sizeof(rc->tab[hole]));
}

uint32_t kw_rcmgr_buckets_used(const struct kw_rcmgr *rc)
{
	uint32_t i, n = 0;

	for (i = 0; i <= rc->mask; i++)
		n += rc->tab[i].kind != KIND_FREE;
	return n;
}

/* ---- admission ---------------------------------------------------------------------------- */

static uint32_t unprotected_cap(const struct kw_rcmgr_limits *l)
{
	/* a reserve as large as the limit would lock every stranger out: keep one slot */
	return l->conns_in_reserved < l->conns_in ? l->conns_in - l->conns_in_reserved : 1;
}

enum kw_rc_reason kw_rcmgr_check(const struct kw_rcmgr *rc, const struct kw_rc_addr *a,
				 struct kw_rc_conn **victim)
{
	const struct kw_rcmgr_limits *l = &rc->lim;
	const struct kw_rc_bucket *ip, *net;
	uint8_t k[16];
	uint32_t in, hs, unprot;

	*victim = NULL;
	make_key(a, KIND_IP, k);
	ip = find(rc, k, KIND_IP);
	make_key(a, KIND_NET, k);
	net = find(rc, k, KIND_NET);
	if (ip && ip->conns >= l->conns_per_ip)
		return KW_RC_IP;
	if (net && net->conns >= l->conns_per_subnet)
		return KW_RC_SUBNET;
	if (ip && ip->hs >= l->hs_per_ip)
		return KW_RC_HS_IP;
	if (net && net->hs >= l->hs_per_subnet)
		return KW_RC_HS_SUBNET;
	in = rc->in;
	hs = rc->hs;
	unprot = rc->in - rc->prot;
	if (in < l->conns_in && hs < l->hs_in && unprot < unprotected_cap(l))
		return KW_RC_OK;
	/* a global limit: the oldest connection still in its handshake makes room (it is never
	 * protected: protection comes from identify, after the handshake) */
	if (!rc->hs_head)
		return KW_RC_FULL;
	*victim = rc->hs_head;
	return KW_RC_OK;
}

void kw_rcmgr_commit(struct kw_rcmgr *rc, struct kw_rc_conn *rcc, const struct kw_rc_addr *a)
{
	uint8_t k[16];
	struct kw_rc_bucket *b;

	memset(rcc, 0, sizeof(*rcc));
	rcc->addr = *a;
	rcc->admitted = rcc->handshaking = true;
	make_key(a, KIND_IP, k);
	b = get(rc, k, KIND_IP);
	b->conns++;
	b->hs++;
	make_key(a, KIND_NET, k);
	b = get(rc, k, KIND_NET);
	b->conns++;
	b->hs++;
	rc->in++;
	rc->hs++;
	rcc->hs_prev = rc->hs_tail;
	if (rc->hs_tail)
		rc->hs_tail->hs_next = rcc;
	else
		rc->hs_head = rcc;
	rc->hs_tail = rcc;
}

/* Subtracts from the address's and subnet's buckets; frees a bucket that reaches zero. */
static void put(struct kw_rcmgr *rc, const struct kw_rc_addr *a, uint32_t conns, uint32_t hs)
{
	int kind;

	for (kind = KIND_IP; kind <= KIND_NET; kind++) {
		uint8_t k[16];
		struct kw_rc_bucket *b;

		make_key(a, kind, k);
		b = find(rc, k, kind);
		if (!b)
			continue;
		b->conns -= KW_MIN(b->conns, conns);
		b->hs -= KW_MIN(b->hs, hs);
		if (b->conns == 0 && b->hs == 0)
			drop(rc, b);
	}
}

void kw_rcmgr_handshake_done(struct kw_rcmgr *rc, struct kw_rc_conn *rcc)
{
	if (!rcc->admitted || !rcc->handshaking)
		return;
	rcc->handshaking = false;
	if (rcc->hs_prev)
		rcc->hs_prev->hs_next = rcc->hs_next;
	else
		rc->hs_head = rcc->hs_next;
	if (rcc->hs_next)
		rcc->hs_next->hs_prev = rcc->hs_prev;
	else
		rc->hs_tail = rcc->hs_prev;
	rcc->hs_prev = rcc->hs_next = NULL;
	rc->hs--;
	put(rc, &rcc->addr, 0, 1);
}

void kw_rcmgr_protect(struct kw_rcmgr *rc, struct kw_rc_conn *rcc)
{
	if (!rcc->admitted || rcc->prot)
		return;
	kw_rcmgr_handshake_done(rc, rcc);
	rcc->prot = true;
	rc->prot++;
}

void kw_rcmgr_release(struct kw_rcmgr *rc, struct kw_rc_conn *rcc)
{
	if (!rcc->admitted)
		return;
	kw_rcmgr_handshake_done(rc, rcc);
	if (rcc->prot)
		rc->prot--;
	rc->in--;
	put(rc, &rcc->addr, 1, 0);
	rcc->admitted = rcc->prot = false;
}

/* ---- refusal accounting and the summary ----------------------------------------------- */

static bool addr_eq(const struct kw_rc_addr *x, const struct kw_rc_addr *y)
{
	return memcmp(x->b, y->b, 16) == 0;
}

void kw_rcmgr_note(struct kw_rcmgr *rc, const struct kw_rc_addr *a, enum kw_rc_reason why)
{
	size_t i, min = 0;

	if (why <= KW_RC_OK || why >= KW_RC_REASONS)
		return;
	rc->total[why]++;
	rc->pend[why]++;
	rc->pend_n++;
	/* space-saving top-k: a new address takes the smallest entry and inherits its count,
	 * so an address refused often is never pushed out by a scatter of others */
	for (i = 0; i < KW_RC_TOP; i++) {
		if (rc->top[i].n && addr_eq(&rc->top[i].a, a)) {
			rc->top[i].n++;
			return;
		}
		if (rc->top[i].n < rc->top[min].n)
			min = i;
	}
	rc->top[min].a = *a;
	rc->top[min].n++;
}

uint64_t kw_rcmgr_summary_due(const struct kw_rcmgr *rc)
{
	if (!rc->pend_n)
		return 0;
	return rc->logged ? rc->last_log_ms + rc->lim.log_interval_ms : 1;
}

static int cmp_top(const void *x, const void *y)
{
	uint32_t a = ((const uint32_t *)x)[0], b = ((const uint32_t *)y)[0];

	return a < b ? 1 : a > b ? -1 : 0;
}

int kw_rcmgr_summary(struct kw_rcmgr *rc, uint64_t now_ms, char *out, size_t cap)
{
	struct { uint32_t n; uint32_t i; } order[KW_RC_TOP];
	size_t len = 0, i;
	const char *sep = " (";
	uint64_t since;

	if (!rc->pend_n)
		return 0;
	if (rc->logged && now_ms - rc->last_log_ms < rc->lim.log_interval_ms)
		return 0;
	since = rc->logged ? now_ms - rc->last_log_ms : 0;
#define ADD(...) do { if (len < cap) len += (size_t)snprintf(out + len, cap - len, __VA_ARGS__); } while (0)
	if (since && since <= 2ull * rc->lim.log_interval_ms)
		ADD("inbound connections turned away: %u in the last %llu ms", rc->pend_n,
		    (unsigned long long)since);
	else
		ADD("inbound connections turned away: %u", rc->pend_n);
	for (i = KW_RC_OK + 1; i < KW_RC_REASONS; i++) {
		if (!rc->pend[i])
			continue;
		ADD("%s%s %u", sep, g_reason_name[i], rc->pend[i]);
		sep = ", ";
	}
	ADD(")");
	for (i = 0; i < KW_RC_TOP; i++) {
		order[i].n = rc->top[i].n;
		order[i].i = (uint32_t)i;
	}
	qsort(order, KW_RC_TOP, sizeof(order[0]), cmp_top);
	sep = "; most from ";
	for (i = 0; i < KW_RC_TOP && order[i].n; i++) {
		char t[64];

		kw_rc_addr_text(&rc->top[order[i].i].a, t, sizeof(t));
		ADD("%s%s (%u)", sep, t, order[i].n);
		sep = ", ";
	}
	ADD("; further ones are summarised every %u ms", rc->lim.log_interval_ms);
#undef ADD
	rc->logged = true;
	rc->last_log_ms = now_ms;
	rc->pend_n = 0;
	memset(rc->pend, 0, sizeof(rc->pend));
	memset(rc->top, 0, sizeof(rc->top));
	return 1;
}
