/*
 * Kademlia node (/ipfs/kad/1.0.0, libp2p/specs kad-dht/README.md): serves inbound requests
 * (with a per-peer token-bucket rate limit), keeps the routing table alive (liveness probes
 * for full buckets, peers that fail are dropped as go-libp2p-kad-dht does), connects to
 * bootstrap peers with exponential backoff, refreshes due buckets, republishes our own records
 * and provider records, and expires the store. Lookups and the operations on them live in
 * lookup.c. Contract: include/kw/net/kad.h; design notes: doc/net-kad.md.
 *
 * Everything is carved from the arena at create; no heap. Timers run on the loop given at
 * create and are all cancelled by kw_kad_destroy.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/log.h>
#include <kw/rng.h>

#include "kad_priv.h"

#define KAD_BOOT_BACKOFF_MIN_MS 1000u
#define KAD_BOOT_BACKOFF_MAX_MS (5u * 60u * 1000u)
#define KAD_REFRESH_CHECK_MS    (60u * 1000u)      /* how often due buckets are looked for */
#define KAD_REFRESH_MAX_CPL     15u                /* go-libp2p-kad-dht maxCplForRefresh */
#define KAD_REPUBLISH_MS        (60u * 60u * 1000u)      /* records: 1 h (libp2p spec) */
#define KAD_REPROVIDE_MS        (22u * 60u * 60u * 1000u) /* providers: 22 h (libp2p spec) */
#define KAD_EXPIRE_MS           (60u * 1000u)
#define KAD_SELF_ADDRS          4

/* ---- small helpers ----------------------------------------------------------------------- */

void kad_hash(const uint8_t *in, size_t len, uint8_t out[KW_KAD_RT_KEY_BYTES])
{
	crypto_hash_sha256(out, in, len);
}

uint64_t kad_wall_ms(const struct kw_kad *k)
{
	struct timespec ts;

	if (k->cfg.wall_ms)
		return k->cfg.wall_ms(k->cfg.wall_ctx);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* RFC 3339 with nanoseconds, as js writes Record.timeReceived: 2026-11-23T01:57:11.873000000Z */
void kad_fmt_time(uint64_t unix_ms, char out[KW_KAD_TIME_MAX])
{
	time_t s = (time_t)(unix_ms / 1000u);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, KW_KAD_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03u000000Z",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(unix_ms % 1000u));
}

size_t kad_self_addrs(struct kw_kad *k, struct kw_multiaddr *out, size_t cap)
{
	size_t n;

	if (!k->tr.self_addrs)
		return 0;
	n = k->tr.self_addrs(k->tr.t, out, cap);
	return n > cap ? cap : n;
}

static void rt_addrs_to_maddrs(const struct kw_kad_rt_addr *in, size_t n, struct kw_multiaddr *out,
			       size_t *nout)
{
	*nout = 0;
	for (size_t i = 0; i < n; i++)
		if (kw_maddr_from_bytes(in[i].bytes, in[i].len, &out[*nout], NULL, 0) == 0)
			(*nout)++;
}

/* A peer failed a request: go-libp2p-kad-dht drops such peers from its table (the replacement
 * cache fills the slot). Not the table's last working contact, though (kw_kad_rt_failed):
 * a client that knows only its bootstrap peer would be left with nobody to ask after one
 * refused request. A peer we only heard of is not in the table: nothing to do. */
void kad_peer_failed(struct kw_kad *k, const struct kw_peer_id *id)
{
	if (kw_kad_rt_failed(&k->rt, id) == 1)
		KW_LOG_DBG(kad, "the table's last working peer failed a request: kept (stale)");
}

/* A peer answered a request usefully: it serves kad, so it belongs in the table. */
void kad_peer_answered(struct kw_kad *k, const struct kw_peer_id *id, const uint8_t *key,
		       const struct kw_kad_rt_addr *addrs, size_t naddrs)
{
	struct kw_multiaddr ma[KW_KAD_RT_ADDRS];
	size_t n;
	uint64_t now = kw_loop_now(k->loop);

	if (kw_peer_id_equal(id, &k->self))
		return;
	rt_addrs_to_maddrs(addrs, naddrs > KW_KAD_RT_ADDRS ? KW_KAD_RT_ADDRS : naddrs, ma, &n);
	(void)kw_kad_rt_answered(&k->rt, id, key, ma, n, now);
}

/* ---- probes: liveness checks of table members and bootstrap connects ---------------------- */

static void probe_timer_arm(struct kw_kad *k)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < k->nprobes; i++) {
		const struct kad_probe *p = &k->probes[i];

		if (p->kind == KAD_PR_FREE)
			continue;
		if (p->failed)
			next = kw_loop_now(k->loop);
		else if (p->local && p->retry_ms < next)
			next = p->retry_ms;
		else if (p->deadline_ms < next)
			next = p->deadline_ms;
	}
	if (next == UINT64_MAX)
		kw_timer_cancel(k->loop, &k->probe_timer);
	else
		(void)kw_timer_start_at(k->loop, &k->probe_timer, next);
}

static void boot_timer_arm(struct kw_kad *k);

static void boot_failed(struct kw_kad *k, unsigned bi)
{
	struct kad_boot *b = &k->boot[bi];

	if (b->state == KAD_B_FREE)
		return;
	b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2u : KAD_BOOT_BACKOFF_MIN_MS;
	if (b->backoff_ms > KAD_BOOT_BACKOFF_MAX_MS)
		b->backoff_ms = KAD_BOOT_BACKOFF_MAX_MS;
	b->state = KAD_B_WAIT;
	b->next_ms = kw_loop_now(k->loop) + b->backoff_ms;
	KW_LOG_DBG(kad, "bootstrap peer unreachable, next try in %u ms", b->backoff_ms);
	boot_timer_arm(k);
}

static void boot_ok(struct kw_kad *k, unsigned bi)
{
	struct kad_boot *b = &k->boot[bi];

	if (b->state == KAD_B_FREE)
		return;
	b->state = KAD_B_OK;
	b->backoff_ms = 0;
	k->stats.bootstrap_ok++;
	(void)kw_kad_rt_add(&k->rt, &b->id, &b->ma, 1, kw_loop_now(k->loop), NULL, 0);
	if (!k->self_lookup_running &&
	    kad_start_internal(k, KAD_OP_CLOSEST, k->self.bytes, k->self.len, NULL, 0, true) == 0)
		k->self_lookup_running = true;
}

/* Probe verdicts outside rt callbacks only (the table is not re-entrant). */
static void probe_done(struct kw_kad *k, unsigned i, bool ok)
{
	struct kad_probe *p = &k->probes[i];
	uint8_t kind = p->kind;

	p->kind = KAD_PR_FREE;
	p->gen++;
	if (kind == KAD_PR_LIVENESS) {
		if (ok)
			(void)kw_kad_rt_alive(&k->rt, &p->id, kw_loop_now(k->loop));
		else
			(void)kw_kad_rt_dead(&k->rt, &p->id);
	} else if (kind == KAD_PR_BOOT) {
		if (ok)
			boot_ok(k, p->boot);
		else
			boot_failed(k, p->boot);
	}
}

static void probe_send(struct kw_kad *k, unsigned i);

/* A probe our own transport kept refusing until its deadline: no verdict on the peer. A
 * table member stays (marked alive: we hold nothing against it), a bootstrap peer is tried
 * again a second later without growing its backoff. */
static void probe_local_giveup(struct kw_kad *k, unsigned i)
{
	struct kad_probe *p = &k->probes[i];
	uint8_t kind = p->kind;

	p->kind = KAD_PR_FREE;
	p->gen++;
	if (kind == KAD_PR_LIVENESS) {
		(void)kw_kad_rt_alive(&k->rt, &p->id, kw_loop_now(k->loop));
	} else if (kind == KAD_PR_BOOT && k->boot[p->boot].state != KAD_B_FREE) {
		k->boot[p->boot].state = KAD_B_WAIT;
		k->boot[p->boot].next_ms = kw_loop_now(k->loop) + KAD_BOOT_BACKOFF_MIN_MS;
		boot_timer_arm(k);
	}
}

static void on_probe_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_kad *k = t->arg;
	uint64_t now = kw_loop_now(l);

	for (unsigned i = 0; i < k->nprobes; i++) {
		struct kad_probe *p = &k->probes[i];

		if (p->kind != KAD_PR_FREE && p->local) {
			if (now >= p->deadline_ms)
				probe_local_giveup(k, i);
			else if (now >= p->retry_ms)
				probe_send(k, i);
			continue;
		}

		if (p->kind == KAD_PR_FREE || (!p->failed && p->deadline_ms > now))
			continue;
		if (!p->failed)
			k->stats.timeouts++;
		probe_done(k, i, false);
	}
	probe_timer_arm(k);
}

/*
 * Sends FIND_NODE(our id) to `id`: any answer proves the peer alive and serving kad (go's
 * lookupCheck uses FIND_NODE too; PING is deprecated and js only echoes it). Never calls back
 * into the table: a request that fails at once is settled on the next probe timer pass.
 */
static int probe_start(struct kw_kad *k, enum kad_probe_kind kind, const struct kw_peer_id *id,
		       const struct kw_kad_rt_addr *addrs, size_t naddrs, unsigned boot)
{
	struct kad_probe *p = NULL;
	unsigned i;

	for (i = 0; i < k->nprobes; i++)
		if (k->probes[i].kind == KAD_PR_FREE) {
			p = &k->probes[i];
			break;
		}
	if (!p)
		return -KW_ELIMIT;
	p->kind = (uint8_t)kind;
	p->id = *id;
	p->boot = (uint16_t)boot;
	p->naddrs = (uint8_t)(naddrs > KW_KAD_RT_ADDRS ? KW_KAD_RT_ADDRS : naddrs);
	if (p->naddrs)
		memcpy(p->addrs, addrs, p->naddrs * sizeof(p->addrs[0]));
	p->deadline_ms = kw_loop_now(k->loop) + k->cfg.query_timeout_ms;
	probe_send(k, i);
	probe_timer_arm(k);
	return 0;
}

/* Sends (or sends again after a local refusal) probe i's FIND_NODE. */
static void probe_send(struct kw_kad *k, unsigned i)
{
	struct kad_probe *p = &k->probes[i];
	int rc;

	p->failed = false;
	p->local = false;
	kw_kad_msg_init(k->msg, KW_KAD_FIND_NODE);
	(void)kw_kad_msg_set_key(k->msg, k->self.bytes, k->self.len);
	rc = k->tr.request(k->tr.t, &p->id, p->addrs, p->naddrs, k->msg,
			   KAD_TOK(KAD_TOK_PROBE, i, 0, p->gen));
	if (rc < 0 && kw_kad_err_local(rc)) {
		k->stats.local_refusals++;
		p->local = true;
		p->retry_ms = kw_loop_now(k->loop) + KAD_LOCAL_RETRY_MS;
		return;
	}
	k->stats.requests_out++;
	if (rc < 0) {
		k->stats.replies_failed++;
		p->failed = true;
	}
}

static void on_rt_ping(void *ctx, struct kw_kad_rt *rt, const struct kw_peer_id *id)
{
	struct kw_kad *k = ctx;
	const struct kw_kad_rt_entry *e = kw_kad_rt_find(rt, id);
	struct kw_peer_id copy = *id;

	/* The probe table holds one probe per bucket that can be full (see create), so this
	 * only fails if the sizing is wrong: then the member stays and keeps its slot. */
	if (probe_start(k, KAD_PR_LIVENESS, &copy, e ? e->addrs : NULL, e ? e->naddrs : 0, 0) < 0)
		KW_LOG_WRN(kad, "no probe slot for a liveness check: bucket member kept");
}

static void probe_on_reply(struct kw_kad *k, uint32_t token, int err)
{
	unsigned i = KAD_TOK_SLOT(token);
	struct kad_probe *p;

	if (i >= k->nprobes) {
		k->stats.late_replies++;
		return;
	}
	p = &k->probes[i];
	if (p->kind == KAD_PR_FREE || p->failed || p->local ||
	    (p->gen & 0xfffu) != KAD_TOK_GEN(token)) {
		k->stats.late_replies++;
		return;
	}
	if (err < 0 && kw_kad_err_local(err)) {
		k->stats.requests_out--;
		k->stats.local_refusals++;
		p->local = true;
		p->retry_ms = kw_loop_now(k->loop) + KAD_LOCAL_RETRY_MS;
		probe_timer_arm(k);
		return;
	}
	if (err == 0)
		k->stats.replies_ok++;
	else
		k->stats.replies_failed++;
	probe_done(k, i, err == 0);
	probe_timer_arm(k);
}

/* ---- bootstrap ----------------------------------------------------------------------------- */

static void boot_timer_arm(struct kw_kad *k)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < KW_KAD_BOOTSTRAP_MAX; i++)
		if (k->boot[i].state == KAD_B_WAIT && k->boot[i].next_ms < next)
			next = k->boot[i].next_ms;
	if (next == UINT64_MAX)
		kw_timer_cancel(k->loop, &k->boot_timer);
	else
		(void)kw_timer_start_at(k->loop, &k->boot_timer, next);
}

static void on_boot_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_kad *k = t->arg;
	uint64_t now = kw_loop_now(l);

	for (unsigned i = 0; i < KW_KAD_BOOTSTRAP_MAX; i++) {
		struct kad_boot *b = &k->boot[i];

		if (b->state != KAD_B_WAIT || b->next_ms > now)
			continue;
		b->state = KAD_B_TRYING;
		k->stats.bootstrap_attempts++;
		if (probe_start(k, KAD_PR_BOOT, &b->id, &b->addr, b->addr.len ? 1 : 0, i) < 0) {
			b->state = KAD_B_WAIT;     /* probe table busy: try again in a second */
			b->next_ms = now + KAD_BOOT_BACKOFF_MIN_MS;
		}
	}
	boot_timer_arm(k);
}

int kw_kad_bootstrap_add(struct kw_kad *k, const struct kw_multiaddr *ma)
{
	struct kad_boot *b = NULL;
	struct kw_peer_id id;

	if (!k || !ma || kw_maddr_peer_id(ma, &id) != 0)
		return -KW_EINVAL;
	if (k->dead)
		return -KW_ESHUTDOWN;
	if (kw_peer_id_equal(&id, &k->self))
		return -KW_EINVAL;
	for (unsigned i = 0; i < KW_KAD_BOOTSTRAP_MAX; i++) {
		if (k->boot[i].state != KAD_B_FREE && kw_peer_id_equal(&k->boot[i].id, &id))
			return -KW_EALREADY;
		if (!b && k->boot[i].state == KAD_B_FREE)
			b = &k->boot[i];
	}
	if (!b)
		return -KW_ELIMIT;
	memset(b, 0, sizeof(*b));
	b->id = id;
	b->ma = *ma;
	kw_maddr_strip_peer_id(&b->ma);
	if (b->ma.len <= KW_KAD_RT_ADDR_BYTES) {
		b->addr.len = (uint8_t)b->ma.len;
		memcpy(b->addr.bytes, b->ma.bytes, b->ma.len);
	}
	b->state = KAD_B_WAIT;
	b->next_ms = kw_loop_now(k->loop);   /* first try on the next pass, never inside this call */
	boot_timer_arm(k);
	return 0;
}

/* ---- periodic work: refresh, republish, expiry ---------------------------------------------- */

/*
 * Refresh keys. A bucket refresh looks up a key (as sent in FIND_NODE: servers hash it) whose
 * SHA-256 has exactly `cpl` leading bits in common with ours. No key can be computed from a
 * wanted hash, so go-libp2p-kbucket (table_refresh.go GenRandPeerID, with the prefix table of
 * sorted_prefixes.go) takes the 16-bit prefix it wants (our first cpl bits, bit cpl flipped,
 * the rest random) and looks up a known peer id of that prefix: the sha2-256 multihash
 * 0x12 0x20 || seed (4 bytes, big-endian) || 28 zero bytes, hashed by servers like any id.
 * js-libp2p-kad-dht does the same with its generated prefix list. We build the same kind of
 * table lazily instead of shipping it: seeds are tried in order, every hash fills the slot of
 * its prefix, and a wanted prefix not yet met continues the scan. The first refresh of a
 * CPL-15 bucket costs what one random trial search did before (2^16 SHA-256 on average);
 * every later key, of this node or of any other node in the process (the simulation), is a
 * table read. That is why the refresh stops at CPL 15 (go's maxCplForRefresh).
 *
 * The table is process-wide (it only maps prefixes to ids, nothing about a node) and static:
 * 256 KiB of .bss, no allocation. One thread runs every loop of this process, so no lock.
 */
#define KAD_PREFIX_BITS 16u
_Static_assert(KAD_REFRESH_MAX_CPL < KAD_PREFIX_BITS, "refresh CPL beyond the prefix table");

static uint32_t kad_prefix_seed[1u << KAD_PREFIX_BITS];   /* seed + 1; 0 = not met yet */
static uint32_t kad_prefix_next;                          /* next seed to hash */

static void prefix_id(uint32_t seed, uint8_t id[KAD_REFRESH_KEY_BYTES])
{
	memset(id, 0, KAD_REFRESH_KEY_BYTES);
	id[0] = 0x12;                 /* sha2-256 multihash, 32 bytes: shaped like a peer id */
	id[1] = 0x20;
	id[2] = (uint8_t)(seed >> 24);
	id[3] = (uint8_t)(seed >> 16);
	id[4] = (uint8_t)(seed >> 8);
	id[5] = (uint8_t)seed;
}

void kad_refresh_key_for_prefix(uint16_t prefix, uint8_t key[KAD_REFRESH_KEY_BYTES])
{
	while (kad_prefix_seed[prefix] == 0) {
		uint8_t id[KAD_REFRESH_KEY_BYTES], h[KW_KAD_RT_KEY_BYTES];
		unsigned p;

		prefix_id(kad_prefix_next, id);
		kad_hash(id, sizeof(id), h);
		p = ((unsigned)h[0] << 8) | h[1];
		if (kad_prefix_seed[p] == 0)
			kad_prefix_seed[p] = kad_prefix_next + 1;
		kad_prefix_next++;
	}
	prefix_id(kad_prefix_seed[prefix] - 1, key);
}

int kad_rng(const struct kw_kad *k, void *buf, size_t len)
{
	if (k->cfg.rng)
		return k->cfg.rng(k->cfg.rng_ctx, buf, len);
	return kw_rng_bytes(buf, len);
}

void kad_refresh_key(const struct kw_kad *k, unsigned cpl, uint8_t key[KAD_REFRESH_KEY_BYTES])
{
	uint16_t local = (uint16_t)(((unsigned)k->self_key[0] << 8) | k->self_key[1]);
	uint16_t toggled = (uint16_t)(local ^ (0x8000u >> cpl));
	uint16_t mask = (uint16_t)(0xffffu << (15u - cpl));   /* the first cpl + 1 bits */
	uint8_t r[2] = { 0, 0 };

	(void)kad_rng(k, r, sizeof(r));   /* a failed draw still gives a key of the right bucket */
	kad_refresh_key_for_prefix((uint16_t)((toggled & mask) |
					      ((((unsigned)r[0] << 8) | r[1]) & ~mask)), key);
}

static void on_refresh_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_kad *k = t->arg;
	uint8_t cpls[KAD_REFRESH_MAX_CPL + 1];
	size_t n = kw_kad_rt_refresh_due(&k->rt, kw_loop_now(l), cpls, sizeof(cpls));

	if (n > sizeof(cpls))
		n = sizeof(cpls);
	/* No working member (empty, or only stale ones kept after failures): every bootstrap
	 * peer we once reached is tried again (go fixLowPeers). */
	if (kw_kad_rt_working(&k->rt) == 0) {
		for (unsigned i = 0; i < KW_KAD_BOOTSTRAP_MAX; i++)
			if (k->boot[i].state == KAD_B_OK) {
				k->boot[i].state = KAD_B_WAIT;
				k->boot[i].next_ms = kw_loop_now(l);
			}
		boot_timer_arm(k);
	}
	for (size_t i = 0; i < n && kw_kad_rt_size(&k->rt) > 0; i++) {
		uint8_t key[KAD_REFRESH_KEY_BYTES];

		if (cpls[i] > KAD_REFRESH_MAX_CPL)
			break;
		/* keep one slot free for the callers' own lookups */
		if (kad_lookups_free(k) < 2)
			break;
		kad_refresh_key(k, cpls[i], key);
		if (kad_start_internal(k, KAD_OP_CLOSEST, key, sizeof(key), NULL, 0, false) == 0)
			k->stats.refresh_lookups++;
	}
	(void)kw_timer_start(l, t, KAD_REFRESH_CHECK_MS);
}

struct kad_repub {
	struct kw_kad *k;
	bool providers;
};

static void republish_one(void *arg, bool is_provider, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen)
{
	struct kad_repub *r = arg;

	if (is_provider != r->providers || kad_lookups_free(r->k) < 2)
		return;
	if (kad_start_internal(r->k, is_provider ? KAD_OP_PROVIDE : KAD_OP_PUT, key, klen, val,
			       vlen, false) == 0)
		r->k->stats.republished++;
}

static void on_republish_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_kad *k = t->arg;
	struct kad_repub r = { .k = k, .providers = (t == &k->reprovide_timer) };

	if (k->withdrawn)   /* kw_kad_withdraw: let our records expire; kw_kad_rejoin catches up */
		*(r.providers ? &k->skipped_reprovide : &k->skipped_republish) = true;
	else
		kw_kad_store_foreach_own(k->store, republish_one, &r);
	(void)kw_timer_start(l, t, r.providers ? KAD_REPROVIDE_MS : KAD_REPUBLISH_MS);
}

static void on_expire_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_kad *k = t->arg;

	(void)kw_kad_store_expire(k->store, kw_loop_now(l));
	(void)kw_timer_start(l, t, KAD_EXPIRE_MS);
}

/* ---- rate limit ----------------------------------------------------------------------------- */

/* Token bucket per requester (milli-tokens, refilled lazily); a new requester takes the least
 * recently used slot, starting full. Returns true when the request may be served. */
static bool rate_take(struct kw_kad *k, const struct kw_peer_id *from, uint64_t now)
{
	struct kad_rate *r = NULL, *lru = &k->rate[0];
	uint64_t add;

	for (unsigned i = 0; i < k->nrate; i++) {
		struct kad_rate *s = &k->rate[i];

		if (s->id.len == from->len && memcmp(s->id.bytes, from->bytes, from->len) == 0) {
			r = s;
			break;
		}
		if (s->id.len == 0 || (lru->id.len != 0 && s->last_ms < lru->last_ms))
			lru = s;
	}
	if (!r) {
		r = lru;
		r->id = *from;
		r->milli = k->cfg.rate_burst * 1000u;
		r->last_ms = now;
	}
	add = (now - r->last_ms) * k->cfg.rate_per_peer;   /* ms x tokens/s = milli-tokens */
	if (add > (uint64_t)k->cfg.rate_burst * 1000u)
		add = (uint64_t)k->cfg.rate_burst * 1000u;
	r->milli = (uint32_t)((r->milli + add > (uint64_t)k->cfg.rate_burst * 1000u) ?
			      (uint64_t)k->cfg.rate_burst * 1000u : r->milli + add);
	r->last_ms = now;
	if (r->milli < 1000u)
		return false;
	r->milli -= 1000u;
	return true;
}

/* ---- request handling ----------------------------------------------------------------------- */

/* kw_peer_id_equal, but the last byte first: peer ids of one key type share their first
 * bytes (the multihash and key headers), so most unequal ids differ at once at the end. */
static inline bool id_equal_fast(const struct kw_peer_id *a, const struct kw_peer_id *b)
{
	return a->len == b->len && (a->len == 0 || a->bytes[a->len - 1] == b->bytes[b->len - 1]) &&
	       kw_peer_id_equal(a, b);
}

/* Up to k table members closest to `key`, without `skip` (the requester, as go's
 * betterPeersToQuery leaves it out; we are never in our own table), into resp's closerPeers. */
static void add_closer(struct kw_kad *k, struct kw_kad_msg *resp, const uint8_t *key, size_t klen,
		       const struct kw_peer_id *skip)
{
	const struct kw_kad_rt_entry *near[64 + 1];
	uint8_t h[KW_KAD_RT_KEY_BYTES];
	size_t n, added = 0;

	/* FIND_NODE keys are peer ids, GET_* keys record keys: both are hashed as sent */
	kad_hash(key, klen, h);
	n = kw_kad_rt_nearest(&k->rt, h, near, k->cfg.k + 1);
	for (size_t i = 0; i < n && added < k->cfg.k; i++) {
		struct kw_kad_peer *p;

		if (skip && id_equal_fast(&near[i]->id, skip))
			continue;
		if (near[i]->naddrs == 0)
			continue;                 /* a peer nobody can dial helps nobody (js, go) */
		if (kw_kad_msg_add_peer(resp, KW_KAD_CLOSER, near[i]->id.bytes, near[i]->id.len,
					KW_KAD_NOT_CONNECTED, &p) != 0)
			break;                    /* the message's peer bound */
		for (unsigned a = 0; a < near[i]->naddrs; a++)
			(void)kw_kad_peer_add_addr(p, near[i]->addrs[a].bytes, near[i]->addrs[a].len);
		added++;
	}
}

static void add_self(struct kw_kad *k, struct kw_kad_msg *resp, enum kw_kad_peer_list which)
{
	struct kw_multiaddr ma[KAD_SELF_ADDRS];
	size_t n = kad_self_addrs(k, ma, KAD_SELF_ADDRS);
	struct kw_kad_peer *p;

	if (kw_kad_msg_add_peer(resp, which, k->self.bytes, k->self.len, KW_KAD_CONNECTED, &p) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		(void)kw_kad_peer_add_maddr(p, &ma[i]);
}

static int handle_put(struct kw_kad *k, const struct kw_peer_id *from, const struct kw_kad_msg *req,
		      struct kw_kad_msg *resp)
{
	char err[96] = "";
	char tr[KW_KAD_TIME_MAX];
	int rc;

	if (!req->has_record || req->key_len != req->rec_key_len ||
	    memcmp(req->key, req->rec_key, req->key_len) != 0) {
		KW_LOG_DBG(kad, "PUT_VALUE refused: key and record key differ");
		return -KW_EBADMSG;
	}
	rc = kw_kad_store_put(k->store, req->rec_key, req->rec_key_len, req->rec_value,
			      req->rec_value_len, from, kw_loop_now(k->loop), kad_wall_ms(k), err,
			      sizeof(err));
	if (rc < 0) {
		KW_LOG_DBG(kad, "PUT_VALUE refused: %s (%s)", err, kw_strerror(rc));
		return rc;
	}
	/* the reply echoes the request (js counts the put only if the value comes back) */
	kw_kad_msg_init(resp, KW_KAD_PUT_VALUE);
	(void)kw_kad_msg_set_key(resp, req->key, req->key_len);
	kad_fmt_time(kad_wall_ms(k), tr);
	(void)kw_kad_msg_set_record(resp, req->rec_key, req->rec_key_len, req->rec_value,
				    req->rec_value_len, req->rec_time[0] ? req->rec_time : tr);
	return 0;
}

static int handle_add_provider(struct kw_kad *k, const struct kw_peer_id *from,
			       const struct kw_kad_msg *req)
{
	unsigned stored = 0;
	int last = -KW_EPERM;

	for (unsigned i = 0; i < req->n_peers; i++) {
		const struct kw_kad_peer *pp = &req->peers[i];
		struct kw_kad_provider prov;
		char err[96];
		int rc;

		if (pp->list != KW_KAD_PROVIDER)
			continue;
		/* only the sender may announce itself (libp2p spec; go and js skip others) */
		if (pp->id_len != from->len || memcmp(pp->id, from->bytes, from->len) != 0)
			continue;
		if (pp->n_addrs == 0)
			continue;
		memset(&prov, 0, sizeof(prov));
		prov.id = *from;
		for (unsigned a = 0; a < pp->n_addrs && prov.naddrs < 2; a++) {
			if (pp->addr_len[a] > sizeof(prov.addrs[0]))
				continue;
			prov.addr_len[prov.naddrs] = pp->addr_len[a];
			memcpy(prov.addrs[prov.naddrs], pp->addrs[a], pp->addr_len[a]);
			prov.naddrs++;
		}
		rc = kw_kad_store_add_provider(k->store, req->key, req->key_len, &prov, from,
					       kw_loop_now(k->loop), err, sizeof(err));
		if (rc == 0)
			stored++;
		else
			last = rc;
	}
	return stored ? KW_KAD_NO_REPLY : last;
}

static void handle_get_providers(struct kw_kad *k, const struct kw_peer_id *from,
				 const struct kw_kad_msg *req, struct kw_kad_msg *resp)
{
	struct kw_kad_provider prov[16];
	size_t n = kw_kad_store_get_providers(k->store, req->key, req->key_len,
					      kw_loop_now(k->loop), prov,
					      k->cfg.k < 16 ? k->cfg.k : 16);

	for (size_t i = 0; i < n; i++) {
		struct kw_kad_peer *p;

		if (kw_kad_msg_add_peer(resp, KW_KAD_PROVIDER, prov[i].id.bytes, prov[i].id.len,
					KW_KAD_NOT_CONNECTED, &p) != 0)
			break;
		for (unsigned a = 0; a < prov[i].naddrs && a < 2; a++)
			(void)kw_kad_peer_add_addr(p, prov[i].addrs[a], prov[i].addr_len[a]);
	}
	add_closer(k, resp, req->key, req->key_len, from);
}

int kw_kad_handle_request(struct kw_kad *k, const struct kw_peer_id *from,
			  const struct kw_kad_msg *req, struct kw_kad_msg *resp)
{
	int rc = 0;

	if (!k || !from || !req || !resp)
		return -KW_EINVAL;
	if (k->dead)
		return -KW_ESHUTDOWN;
	k->stats.requests_in++;
	if (k->cfg.client_mode || k->withdrawn) {   /* withdrawn: as client mode (withdraw.c) */
		k->stats.requests_refused++;
		return -KW_EPROTO;
	}
	if (!rate_take(k, from, kw_loop_now(k->loop))) {
		k->stats.requests_rate_limited++;
		return -KW_ELIMIT;
	}
	switch (req->type) {
	case KW_KAD_FIND_NODE:
		kw_kad_msg_init(resp, KW_KAD_FIND_NODE);
		(void)kw_kad_msg_set_key(resp, req->key, req->key_len);
		if (req->key_len == k->self.len && memcmp(req->key, k->self.bytes, k->self.len) == 0 &&
		    !kw_peer_id_equal(from, &k->self))
			add_self(k, resp, KW_KAD_CLOSER);   /* asked for us: we answer (go does) */
		add_closer(k, resp, req->key, req->key_len, from);
		break;
	case KW_KAD_GET_VALUE: {
		const uint8_t *val;
		size_t vlen;
		char tr[KW_KAD_TIME_MAX];

		if (req->key_len == 0) {
			rc = -KW_EBADMSG;
			break;
		}
		kw_kad_msg_init(resp, KW_KAD_GET_VALUE);
		(void)kw_kad_msg_set_key(resp, req->key, req->key_len);
		if (kw_kad_store_get(k->store, req->key, req->key_len, kw_loop_now(k->loop), &val,
				     &vlen) == 0) {
			kad_fmt_time(kad_wall_ms(k), tr);
			(void)kw_kad_msg_set_record(resp, req->key, req->key_len, val, vlen, tr);
		}
		add_closer(k, resp, req->key, req->key_len, from);
		break;
	}
	case KW_KAD_PUT_VALUE:
		rc = handle_put(k, from, req, resp);
		break;
	case KW_KAD_ADD_PROVIDER:
		rc = handle_add_provider(k, from, req);
		break;
	case KW_KAD_GET_PROVIDERS:
		if (req->key_len == 0) {
			rc = -KW_EBADMSG;
			break;
		}
		kw_kad_msg_init(resp, KW_KAD_GET_PROVIDERS);
		(void)kw_kad_msg_set_key(resp, req->key, req->key_len);
		handle_get_providers(k, from, req, resp);
		break;
	case KW_KAD_PING:
		kw_kad_msg_init(resp, KW_KAD_PING);   /* deprecated; js echoes it, so do we */
		break;
	default:
		rc = -KW_EPROTO;
		break;
	}
	if (rc < 0)
		k->stats.requests_refused++;
	return rc;
}

/* ---- transport -> core ----------------------------------------------------------------------- */

void kw_kad_on_reply(struct kw_kad *k, uint32_t token, int err, const struct kw_kad_msg *resp)
{
	if (!k || k->dead)
		return;
	if (KAD_TOK_KIND(token) == KAD_TOK_PROBE)
		probe_on_reply(k, token, err);
	else if (KAD_TOK_KIND(token) == KAD_TOK_LOOKUP)
		kad_lookup_on_reply(k, token, err, resp);
	else
		k->stats.late_replies++;
}

void kw_kad_peer_seen(struct kw_kad *k, const struct kw_peer_id *id,
		      const struct kw_multiaddr *addrs, size_t naddrs)
{
	char err[128];
	int rc;

	if (!k || k->dead || !id || kw_peer_id_equal(id, &k->self))
		return;
	rc = kw_kad_rt_add(&k->rt, id, addrs, naddrs, kw_loop_now(k->loop), err, sizeof(err));
	if (rc == -KW_ELIMIT)
		KW_LOG_DBG(kad, "peer not added: %s", err);
}

void kw_kad_peer_gone(struct kw_kad *k, const struct kw_peer_id *id)
{
	if (k && id)
		(void)kw_kad_rt_remove(&k->rt, id);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

void kw_kad_cfg_default(struct kw_kad_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->k = CONFIG_KW_NET_KAD_K;
	cfg->alpha = CONFIG_KW_NET_KAD_ALPHA;
	cfg->max_lookups = CONFIG_KW_NET_KAD_MAX_LOOKUPS;
	cfg->query_timeout_ms = CONFIG_KW_NET_KAD_QUERY_TIMEOUT_MS;
	cfg->lookup_timeout_ms = CONFIG_KW_NET_KAD_LOOKUP_TIMEOUT_MS;
	cfg->rate_per_peer = CONFIG_KW_NET_KAD_RATE_PER_PEER;
	cfg->rate_burst = CONFIG_KW_NET_KAD_RATE_BURST;
	cfg->rate_peers = CONFIG_KW_NET_KAD_RATE_PEERS;
	cfg->table_entries = CONFIG_KW_NET_KAD_TABLE_ENTRIES;
	cfg->refresh_ms = KW_KAD_RT_REFRESH_DEFAULT_MS;
	kw_kad_store_cfg_default(&cfg->store);
}

/* Fills every zero field of `in` with its default. */
static int resolve_cfg(const struct kw_kad_cfg *in, struct kw_kad_cfg *out)
{
	struct kw_kad_cfg d;
	struct kw_kad_store_cfg *s = &out->store;
	const struct kw_kad_store_cfg *ds = &d.store;

	kw_kad_cfg_default(&d);
	*out = *in;
#define DEF(f) do { if (!out->f) out->f = d.f; } while (0)
	DEF(k); DEF(alpha); DEF(max_lookups); DEF(query_timeout_ms); DEF(lookup_timeout_ms);
	DEF(rate_per_peer); DEF(rate_burst); DEF(rate_peers); DEF(table_entries); DEF(refresh_ms);
#undef DEF
#define DEFS(f) do { if (!s->f) s->f = ds->f; } while (0)
	DEFS(max_records); DEFS(max_record_bytes); DEFS(max_total_bytes);
	DEFS(max_records_per_peer); DEFS(max_providers); DEFS(max_providers_per_key);
	DEFS(max_providers_per_peer); DEFS(record_ttl_ms); DEFS(provider_ttl_ms);
#undef DEFS
	if (!out->self || out->self->len == 0 || out->k > 64 || out->alpha > 16 ||
	    out->max_lookups > 256 || out->table_entries > 65534 || out->table_entries < out->k)
		return -KW_EINVAL;
	return 0;
}

static unsigned n_probes(const struct kw_kad_cfg *c)
{
	unsigned full = c->table_entries / c->k + 1;   /* buckets that can be full at once */

	return (full > KW_KAD_RT_BUCKETS ? KW_KAD_RT_BUCKETS : full) + KW_KAD_BOOTSTRAP_MAX;
}

size_t kw_kad_arena_bytes(const struct kw_kad_cfg *in)
{
	struct kw_kad_cfg c;

	if (!in || resolve_cfg(in, &c) != 0)
		return 0;
	return sizeof(struct kw_kad) + 16 +
	       KW_KAD_RT_ARENA_BYTES(c.table_entries) +
	       kw_kad_store_arena_bytes(&c.store) +
	       kad_lookup_bytes(&c) +
	       (size_t)n_probes(&c) * sizeof(struct kad_probe) + 16 +
	       (size_t)c.rate_peers * sizeof(struct kad_rate) + 16 +
	       sizeof(struct kw_kad_msg) + 16 +
	       (size_t)(c.k > 16 ? c.k : 16) * sizeof(struct kw_kad_peer) + 16;
}

int kw_kad_create(struct kw_loop *loop, struct kw_arena *arena, const struct kw_kad_cfg *cfg,
		  const struct kw_kad_transport *tr, struct kw_kad **out)
{
	struct kw_kad_cfg c;
	struct kw_kad *k;
	struct kw_kad_rt_cfg rc;
	int rc2;

	if (!loop || !arena || !cfg || !tr || !tr->request || !out)
		return -KW_EINVAL;
	rc2 = resolve_cfg(cfg, &c);
	if (rc2)
		return rc2;
	k = kw_arena_alloc(arena, sizeof(*k), 16);
	if (!k)
		return -KW_ENOMEM;
	k->loop = loop;
	k->cfg = c;
	k->tr = *tr;
	k->self = *c.self;
	k->cfg.self = &k->self;
	(void)kw_kad_rt_key(&k->self, k->self_key);
	memset(&rc, 0, sizeof(rc));
	rc.self = &k->self;
	rc.max_entries = c.table_entries;
	rc.refresh_ms = c.refresh_ms;
	rc.ping_cb = on_rt_ping;
	rc.ctx = k;
	rc2 = kw_kad_rt_init(&k->rt, arena, &rc);
	if (rc2)
		return rc2;
	rc2 = kw_kad_store_init(arena, &k->cfg.store, &k->store);
	if (rc2)
		return rc2;
	k->nprobes = n_probes(&c);
	k->probes = kw_arena_alloc(arena, (size_t)k->nprobes * sizeof(*k->probes), 16);
	k->nrate = c.rate_peers;
	k->rate = kw_arena_alloc(arena, (size_t)k->nrate * sizeof(*k->rate), 16);
	k->msg = kw_arena_alloc(arena, sizeof(*k->msg), 16);
	k->res_cap = c.k > 16 ? c.k : 16;
	k->res = kw_arena_alloc(arena, (size_t)k->res_cap * sizeof(*k->res), 16);
	if (!k->probes || !k->rate || !k->msg || !k->res)
		return -KW_ENOMEM;
	rc2 = kad_lookups_init(k, arena);
	if (rc2)
		return rc2;
	kw_timer_init(&k->probe_timer, on_probe_timer, k);
	kw_timer_init(&k->boot_timer, on_boot_timer, k);
	kw_timer_init(&k->refresh_timer, on_refresh_timer, k);
	kw_timer_init(&k->republish_timer, on_republish_timer, k);
	kw_timer_init(&k->reprovide_timer, on_republish_timer, k);
	kw_task_init(&k->withdraw_task, kad_withdraw_task, k);
	kw_timer_init(&k->expire_timer, on_expire_timer, k);
	if (kw_timer_start(loop, &k->refresh_timer, KAD_REFRESH_CHECK_MS) ||
	    kw_timer_start(loop, &k->republish_timer, KAD_REPUBLISH_MS) ||
	    kw_timer_start(loop, &k->reprovide_timer, KAD_REPROVIDE_MS) ||
	    kw_timer_start(loop, &k->expire_timer, KAD_EXPIRE_MS)) {
		kw_kad_destroy(k);
		return -KW_ENOSPC;
	}
	*out = k;
	return 0;
}

void kw_kad_destroy(struct kw_kad *k)
{
	if (!k || k->dead)
		return;
	k->dead = true;
	kw_timer_cancel(k->loop, &k->probe_timer);
	kw_timer_cancel(k->loop, &k->boot_timer);
	kw_timer_cancel(k->loop, &k->refresh_timer);
	kw_timer_cancel(k->loop, &k->republish_timer);
	kw_timer_cancel(k->loop, &k->reprovide_timer);
	kw_timer_cancel(k->loop, &k->expire_timer);
	kw_task_cancel(k->loop, &k->withdraw_task);
	for (unsigned i = 0; i < k->nprobes; i++) {
		k->probes[i].kind = KAD_PR_FREE;
		k->probes[i].gen++;
	}
	kad_lookups_cancel_all(k);
}

void kw_kad_get_stats(const struct kw_kad *k, struct kw_kad_stats *out)
{
	*out = k->stats;
}

struct kw_kad_rt *kw_kad_table(struct kw_kad *k)
{
	return &k->rt;
}

struct kw_kad_store *kw_kad_store(struct kw_kad *k)
{
	return k->store;
}
