/*
 * Iterative Kademlia lookups and the operations built on them (libp2p/specs
 * kad-dht/README.md "Peer routing", "Value storage and retrieval", "Content provider
 * advertisement and discovery"; the query rules follow go-libp2p-kad-dht query.go).
 *
 * A lookup holds a bounded candidate list (3k peers, closest to the target kept) sorted by
 * XOR distance of SHA-256 keys. It keeps alpha requests in flight, always to the closest
 * candidates not asked yet, and ends when the k closest candidates that did not fail have all
 * answered (go's isLookupTermination; this also covers running out of candidates), when the
 * operation has what it needs (find-peer found the peer, get-value reached its quorum,
 * find-providers has k providers) or at the lookup deadline. A request unanswered after the
 * query timeout counts as failed. put-value and provide then send PUT_VALUE / ADD_PROVIDER to
 * the k closest peers that answered.
 *
 * Slots come from a fixed pool carved at create; a slot owns its candidates and a buffer for
 * the record value or the providers found. Completion always goes through the slot's timer
 * armed for 0 ms, so a callback never runs inside the call that started the operation or
 * inside the transport's reply.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/log.h>

#include "kad_priv.h"

static size_t buf_cap(const struct kw_kad_cfg *c)
{
	size_t rec = c->store.max_record_bytes;
	size_t prov = (size_t)c->k * sizeof(struct kw_kad_provider);

	if (rec > KW_KAD_VALUE_MAX)
		rec = KW_KAD_VALUE_MAX;
	return rec > prov ? rec : prov;
}

static unsigned cand_cap(const struct kw_kad_cfg *c)
{
	unsigned n = c->k * KAD_CAND_PER_K;

	return n > 255 ? 255 : n;    /* token index field */
}

size_t kad_lookup_bytes(const struct kw_kad_cfg *c)
{
	size_t per = (size_t)cand_cap(c) * sizeof(struct kad_cand) + 16 + cand_cap(c) + 16 +
		     buf_cap(c) + 16;

	return (size_t)c->max_lookups * (sizeof(struct kad_lookup) + per) + 16;
}

static void on_slot_timer(struct kw_loop *l, struct kw_timer *t);

int kad_lookups_init(struct kw_kad *k, struct kw_arena *arena)
{
	k->nlk = k->cfg.max_lookups;
	k->lk = kw_arena_alloc(arena, (size_t)k->nlk * sizeof(*k->lk), 16);
	if (!k->lk)
		return -KW_ENOMEM;
	for (unsigned i = 0; i < k->nlk; i++) {
		struct kad_lookup *lk = &k->lk[i];

		lk->k = k;
		lk->cap = (uint16_t)cand_cap(&k->cfg);
		kw_timer_init(&lk->timer, on_slot_timer, lk);
		lk->cand = kw_arena_alloc(arena, (size_t)lk->cap * sizeof(*lk->cand), 16);
		lk->order = kw_arena_alloc(arena, lk->cap, 16);
		lk->buf_cap = buf_cap(&k->cfg);
		lk->buf = kw_arena_alloc(arena, lk->buf_cap, 16);
		if (!lk->cand || !lk->order || !lk->buf)
			return -KW_ENOMEM;
	}
	return 0;
}

unsigned kad_lookups_free(const struct kw_kad *k)
{
	unsigned n = 0;

	for (unsigned i = 0; i < k->nlk; i++)
		n += k->lk[i].phase == KAD_P_FREE;
	return n;
}

/* <0 when a is closer to t than b (XOR distance as a 256-bit big-endian integer). */
static int dist_cmp(const uint8_t *a, const uint8_t *b, const uint8_t *t)
{
	for (unsigned i = 0; i < KW_KAD_RT_KEY_BYTES; i++) {
		uint8_t da = a[i] ^ t[i], db = b[i] ^ t[i];

		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

static unsigned slot_index(const struct kad_lookup *lk)
{
	return (unsigned)(lk - lk->k->lk);
}

static void val_digest(const uint8_t *v, size_t len, uint8_t out[8])
{
	uint8_t h[KW_KAD_RT_KEY_BYTES];

	kad_hash(v, len, h);
	memcpy(out, h, 8);
}

/* ---- candidates ---------------------------------------------------------------------------- */

static void cand_addrs_from_peer(struct kw_kad *k, struct kad_cand *c, const struct kw_kad_peer *p)
{
	c->naddrs = 0;
	for (unsigned a = 0; a < p->n_addrs && c->naddrs < KW_KAD_RT_ADDRS; a++) {
		if (p->addr_len[a] > KW_KAD_RT_ADDR_BYTES) {
			k->stats.bogus_addrs++;     /* longer than the table keeps: cannot dial it */
			continue;
		}
		c->addrs[c->naddrs].len = p->addr_len[a];
		memcpy(c->addrs[c->naddrs].bytes, p->addrs[a], p->addr_len[a]);
		c->naddrs++;
	}
}

/*
 * Adds a candidate (or finds it). When the list is full the farthest candidate not waiting
 * for an answer makes room, unless the newcomer is farther still. Returns its index or -1.
 */
static int cand_add(struct kad_lookup *lk, const struct kw_peer_id *id, const uint8_t *key,
		    unsigned hop, struct kad_cand **out)
{
	unsigned idx, pos;
	struct kad_cand *c;

	uint64_t k8, c8;

	/* Equal ids have equal keys: 8 key bytes reject nearly every other candidate before
	 * the id compare (this scan runs for each of the k peers of every answer). */
	memcpy(&k8, key, sizeof(k8));
	for (unsigned i = 0; i < lk->ncand; i++)
		if ((memcpy(&c8, lk->cand[i].key, sizeof(c8)), c8 == k8) &&
		    kw_peer_id_equal(&lk->cand[i].id, id)) {
			*out = &lk->cand[i];
			return -1;
		}
	if (lk->ncand < lk->cap) {
		idx = lk->ncand++;
	} else {
		int victim = -1;

		for (int o = (int)lk->ncand - 1; o >= 0; o--)
			if (lk->cand[lk->order[o]].state != KAD_C_WAITING) {
				victim = o;
				break;
			}
		if (victim < 0 || dist_cmp(key, lk->cand[lk->order[victim]].key, lk->target) >= 0) {
			*out = NULL;
			return -1;
		}
		idx = lk->order[victim];
		/* drop the victim from the order; its slot is reused, ncand stays */
		memmove(&lk->order[victim], &lk->order[victim + 1], lk->ncand - 1 - (unsigned)victim);
	}
	c = &lk->cand[idx];
	memset(c, 0, sizeof(*c));
	c->id = *id;
	memcpy(c->key, key, KW_KAD_RT_KEY_BYTES);
	c->state = KAD_C_HEARD;
	c->hop = (uint8_t)(hop > 255 ? 255 : hop);
	/* order holds ncand - 1 entries here: insert idx at its place */
	for (pos = 0; pos < lk->ncand - 1u; pos++)
		if (dist_cmp(key, lk->cand[lk->order[pos]].key, lk->target) < 0)
			break;
	memmove(&lk->order[pos + 1], &lk->order[pos], lk->ncand - 1u - pos);
	lk->order[pos] = (uint8_t)idx;
	*out = c;
	return (int)idx;
}

static void seed_from_table(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	const struct kw_kad_rt_entry *near[64];
	size_t n = kw_kad_rt_nearest(&k->rt, lk->target, near, k->cfg.k);

	for (size_t i = 0; i < n; i++) {
		struct kad_cand *c;

		if (cand_add(lk, &near[i]->id, near[i]->key, 1, &c) >= 0) {
			c->naddrs = near[i]->naddrs;
			memcpy(c->addrs, near[i]->addrs, sizeof(c->addrs));
		}
	}
}

/* ---- requests ------------------------------------------------------------------------------ */

static void build_query(struct kad_lookup *lk, struct kw_kad_msg *m)
{
	enum kw_kad_msg_type t = KW_KAD_FIND_NODE;

	if (lk->op == KAD_OP_GET)
		t = KW_KAD_GET_VALUE;
	else if (lk->op == KAD_OP_PROVIDERS)
		t = KW_KAD_GET_PROVIDERS;
	kw_kad_msg_init(m, t);
	(void)kw_kad_msg_set_key(m, lk->key, lk->klen);
}

static void arm(struct kad_lookup *lk);

/* Our transport refused a request for want of its own resources: the table is left alone;
 * the candidate goes back to "not asked" until its next try, or after KAD_LOCAL_TRIES is
 * skipped by this lookup (UNREACHABLE here only). */
static void local_refusal(struct kad_lookup *lk, struct kad_cand *c)
{
	struct kw_kad *k = lk->k;

	k->stats.local_refusals++;
	if (++c->refusals >= KAD_LOCAL_TRIES) {
		c->state = KAD_C_UNREACHABLE;
		return;
	}
	c->state = KAD_C_HEARD;
	c->sent_ms = kw_loop_now(k->loop) + (KAD_LOCAL_RETRY_MS << (c->refusals - 1u));
}

/* Return: 0 sent; <0 refused (a local refusal leaves the candidate to ask again). */
static int send_query(struct kad_lookup *lk, unsigned idx)
{
	struct kw_kad *k = lk->k;
	struct kad_cand *c = &lk->cand[idx];
	int rc;

	build_query(lk, k->msg);
	c->state = KAD_C_WAITING;
	c->sent_ms = kw_loop_now(k->loop);
	lk->inflight++;
	lk->messages++;
	k->stats.requests_out++;
	rc = k->tr.request(k->tr.t, &c->id, c->addrs, c->naddrs, k->msg,
			   KAD_TOK(KAD_TOK_LOOKUP, slot_index(lk), idx, lk->gen));
	if (rc < 0) {
		lk->inflight--;
		if (kw_kad_err_local(rc)) {
			lk->messages--;
			k->stats.requests_out--;
			local_refusal(lk, c);
			return rc;
		}
		c->state = KAD_C_UNREACHABLE;
		k->stats.replies_failed++;
		kad_peer_failed(k, &c->id);
	}
	return rc;
}

/* ---- completion ---------------------------------------------------------------------------- */

static void finish(struct kad_lookup *lk, int err)
{
	lk->err = err;
	lk->phase = KAD_P_DONE;
	if (kw_timer_start(lk->k->loop, &lk->timer, 0) < 0)
		KW_LOG_ERR(kad, "timer heap full: a lookup cannot complete (raise CONFIG_KW_TIMER_MAX)");
}

static void fill_peer(struct kw_kad_peer *p, enum kw_kad_peer_list list, const struct kw_peer_id *id,
		      const uint8_t lens[], const uint8_t *addrs, size_t stride, unsigned n)
{
	memset(p, 0, sizeof(*p));
	p->list = (uint8_t)list;
	p->id_len = id->len;
	memcpy(p->id, id->bytes, id->len);
	for (unsigned a = 0; a < n && p->n_addrs < KW_KAD_MAX_ADDRS; a++) {
		if (lens[a] > KW_KAD_ADDR_MAX)
			continue;
		p->addr_len[p->n_addrs] = lens[a];
		memcpy(p->addrs[p->n_addrs], addrs + a * stride, lens[a]);
		p->n_addrs++;
	}
}

static void fill_cand_peer(struct kw_kad_peer *p, const struct kad_cand *c)
{
	uint8_t lens[KW_KAD_RT_ADDRS];
	uint8_t bytes[KW_KAD_RT_ADDRS][KW_KAD_RT_ADDR_BYTES];

	for (unsigned a = 0; a < c->naddrs; a++) {
		lens[a] = c->addrs[a].len;
		memcpy(bytes[a], c->addrs[a].bytes, c->addrs[a].len);
	}
	fill_peer(p, KW_KAD_CLOSER, &c->id, lens, &bytes[0][0], KW_KAD_RT_ADDR_BYTES, c->naddrs);
}

static void slot_release(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;

	kw_timer_cancel(k->loop, &lk->timer);
	if (lk->self_lookup)
		k->self_lookup_running = false;
	lk->phase = KAD_P_FREE;
	lk->gen = (uint16_t)((lk->gen + 1u) & 0xfffu);
	k->stats.lookups_active--;
	if (k->withdrawn)
		kad_withdraw_check(k);
}

static void complete(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	struct kw_kad_result r;
	size_t n = 0;

	memset(&r, 0, sizeof(r));
	r.err = lk->err;
	r.rounds = lk->rounds;
	r.messages = lk->messages;
	r.stored = lk->acks;
	switch (lk->op) {
	case KAD_OP_FIND_PEER:
		if (lk->found)
			fill_cand_peer(&k->res[n++], &lk->found_peer);
		break;
	case KAD_OP_GET:
		if (lk->vlen) {
			r.value = lk->buf;
			r.value_len = lk->vlen;
		}
		break;
	case KAD_OP_PROVIDERS: {
		const struct kw_kad_provider *pv = (const struct kw_kad_provider *)lk->buf;

		for (unsigned i = 0; i < lk->nprov && n < k->res_cap; i++)
			fill_peer(&k->res[n++], KW_KAD_PROVIDER, &pv[i].id, pv[i].addr_len,
				  &pv[i].addrs[0][0], sizeof(pv[i].addrs[0]), pv[i].naddrs);
		break;
	}
	default:
		for (unsigned o = 0; o < lk->ncand && n < k->cfg.k; o++) {
			const struct kad_cand *c = &lk->cand[lk->order[o]];

			if (c->state == KAD_C_QUERIED)
				fill_cand_peer(&k->res[n++], c);
		}
		break;
	}
	r.peers = n ? k->res : NULL;
	r.n_peers = n;
	if (r.err == 0)
		k->stats.lookups_ok++;
	else
		k->stats.lookups_failed++;
	if (lk->messages)
		kw_kad_rt_queried(&k->rt, kw_kad_rt_cpl(lk->target, k->self_key), kw_loop_now(k->loop));
	/* the slot (and with it the value buffer r points into) is released after the callback */
	lk->phase = KAD_P_CALLBACK;
	if (!lk->internal && lk->cb)
		lk->cb(k, &r, lk->user);
	slot_release(lk);
}

/* ---- the lookup proper ----------------------------------------------------------------------- */

/* go-libp2p-kad-dht isLookupTermination: the k closest candidates that did not fail have all
 * answered (with fewer than k such candidates: all of them, i.e. nothing left to ask). */
static bool lookup_done(const struct kad_lookup *lk)
{
	unsigned seen = 0;

	for (unsigned o = 0; o < lk->ncand; o++) {
		const struct kad_cand *c = &lk->cand[lk->order[o]];

		if (c->state == KAD_C_UNREACHABLE)
			continue;
		if (c->state != KAD_C_QUERIED)
			return false;
		if (++seen >= lk->k->cfg.k)
			break;
	}
	return true;
}

/* The PUT_VALUE / ADD_PROVIDER message into k->msg (shared scratch: built before each send). */
static void fanout_msg(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	char tr[KW_KAD_TIME_MAX];
	struct kw_multiaddr ma[4];
	size_t nma = 0;

	kw_kad_msg_init(k->msg, lk->op == KAD_OP_PROVIDE ? KW_KAD_ADD_PROVIDER : KW_KAD_PUT_VALUE);
	(void)kw_kad_msg_set_key(k->msg, lk->key, lk->klen);
	if (lk->op != KAD_OP_PROVIDE) {
		kad_fmt_time(kad_wall_ms(k), tr);
		(void)kw_kad_msg_set_record(k->msg, lk->key, lk->klen, lk->buf, lk->vlen, tr);
	} else {
		struct kw_kad_peer *p;

		nma = kad_self_addrs(k, ma, 4);
		if (kw_kad_msg_add_peer(k->msg, KW_KAD_PROVIDER, k->self.bytes, k->self.len,
					KW_KAD_CONNECTED, &p) == 0)
			for (size_t i = 0; i < nma; i++)
				(void)kw_kad_peer_add_maddr(p, &ma[i]);
	}
}

/* Sends the fan-out message to every candidate marked KAD_F_PENDING, unless paused after a
 * local refusal; past fan_deadline_ms a send still refused locally counts as not stored. */
static void fan_send(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	uint64_t now = kw_loop_now(k->loop);
	bool built = false;

	for (unsigned o = 0; o < lk->ncand; o++) {
		unsigned idx = lk->order[o];
		struct kad_cand *c = &lk->cand[idx];
		int rc;

		if (c->fan != KAD_F_PENDING)
			continue;
		if (now >= lk->fan_deadline_ms) {
			c->fan = KAD_F_FAILED;
			continue;
		}
		if (now < lk->retry_ms)
			continue;
		if (!built) {
			fanout_msg(lk);
			built = true;
		}
		c->fan = KAD_F_WAITING;
		c->sent_ms = now;
		rc = k->tr.request(k->tr.t, &c->id, c->addrs, c->naddrs, k->msg,
				   KAD_TOK(KAD_TOK_LOOKUP, slot_index(lk), idx, lk->gen));
		if (rc == 0) {
			lk->messages++;
			k->stats.requests_out++;
		} else if (kw_kad_err_local(rc)) {
			c->fan = KAD_F_PENDING;
			k->stats.local_refusals++;
			lk->retry_ms = now + KAD_LOCAL_RETRY_MS;
		} else {
			c->fan = KAD_F_FAILED;
			k->stats.requests_out++;
			k->stats.replies_failed++;
		}
	}
}

static void fanout(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	unsigned sent = 0;

	lk->phase = KAD_P_FANOUT;
	lk->fan_deadline_ms = kw_loop_now(k->loop) + k->cfg.query_timeout_ms;
	for (unsigned o = 0; o < lk->ncand && sent < k->cfg.k; o++) {
		struct kad_cand *c = &lk->cand[lk->order[o]];

		if (c->state != KAD_C_QUERIED)
			continue;
		sent++;
		/* get: only the k closest that answered with another value or none (go's
		 * "correction" puts after GetValue) */
		if (lk->op == KAD_OP_GET && c->has_val && memcmp(c->vh, lk->best_vh, 8) == 0)
			continue;
		c->fan = KAD_F_PENDING;
	}
	fan_send(lk);
}

static bool fanout_waiting(const struct kad_lookup *lk)
{
	for (unsigned i = 0; i < lk->ncand; i++)
		if (lk->cand[i].fan == KAD_F_WAITING || lk->cand[i].fan == KAD_F_PENDING)
			return true;
	return false;
}

static bool any_answered(const struct kad_lookup *lk)
{
	for (unsigned i = 0; i < lk->ncand; i++)
		if (lk->cand[i].state == KAD_C_QUERIED)
			return true;
	return false;
}

static void terminate(struct kad_lookup *lk)
{
	switch (lk->op) {
	case KAD_OP_PUT:
	case KAD_OP_PROVIDE:
		if (!any_answered(lk)) {
			finish(lk, -KW_ENOTCONN);    /* no peer to store on */
			return;
		}
		fanout(lk);
		if (!fanout_waiting(lk))
			finish(lk, 0);
		else
			arm(lk);
		return;
	case KAD_OP_FIND_PEER:
		finish(lk, lk->found ? 0 : -KW_ENOENT);
		return;
	case KAD_OP_GET:
		if (!lk->vlen) {
			finish(lk, -KW_ENOENT);
			return;
		}
		fanout(lk);                   /* correct peers that hold an older value */
		if (!fanout_waiting(lk))
			finish(lk, 0);
		else
			arm(lk);
		return;
	default:
		finish(lk, any_answered(lk) ? 0 : -KW_ENOTCONN);
		return;
	}
}

static void step(struct kad_lookup *lk)
{
	if (lk->phase != KAD_P_LOOKUP)
		return;
	/* each pass sends, or moves a candidate's next try into the future, or ends it */
	while (!lookup_done(lk) && lk->inflight < lk->k->cfg.alpha) {
		uint64_t now = kw_loop_now(lk->k->loop);
		int next = -1;

		for (unsigned o = 0; o < lk->ncand; o++) {
			const struct kad_cand *c = &lk->cand[lk->order[o]];

			if (c->state == KAD_C_HEARD && (!c->refusals || c->sent_ms <= now)) {
				next = lk->order[o];
				break;
			}
		}
		if (next < 0)
			break;
		(void)send_query(lk, (unsigned)next);
	}
	if (lookup_done(lk))
		terminate(lk);
	else
		arm(lk);
}

/* Re-arms the slot timer for the earliest request timeout or the lookup deadline. */
static void arm(struct kad_lookup *lk)
{
	struct kw_kad *k = lk->k;
	uint64_t next = lk->phase == KAD_P_LOOKUP ? lk->deadline_ms : UINT64_MAX;

	if (lk->phase == KAD_P_FREE || lk->phase >= KAD_P_DONE)
		return;
	/* a locally refused candidate's next try; with alpha requests in flight a reply steps
	 * the lookup instead (a timer in the past would fire again and again) */
	for (unsigned i = 0; lk->phase == KAD_P_LOOKUP && lk->inflight < k->cfg.alpha &&
			     i < lk->ncand; i++) {
		const struct kad_cand *c = &lk->cand[i];

		if (c->state == KAD_C_HEARD && c->refusals && c->sent_ms > kw_loop_now(k->loop) &&
		    c->sent_ms < next)
			next = c->sent_ms;
	}
	if (lk->phase == KAD_P_FANOUT) {
		for (unsigned i = 0; i < lk->ncand; i++)
			if (lk->cand[i].fan == KAD_F_PENDING) {
				uint64_t t = lk->retry_ms > lk->fan_deadline_ms ? lk->fan_deadline_ms :
						  lk->retry_ms;

				if (t <= kw_loop_now(k->loop))
					t = kw_loop_now(k->loop) + 1;   /* never a timer in the past */

				if (t < next)
					next = t;
				break;
			}
	}
	for (unsigned i = 0; i < lk->ncand; i++) {
		const struct kad_cand *c = &lk->cand[i];

		if ((c->state == KAD_C_WAITING || c->fan == KAD_F_WAITING) &&
		    c->sent_ms + k->cfg.query_timeout_ms < next)
			next = c->sent_ms + k->cfg.query_timeout_ms;
	}
	if (next != UINT64_MAX)
		(void)kw_timer_start_at(k->loop, &lk->timer, next);
}

static void on_slot_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kad_lookup *lk = t->arg;
	struct kw_kad *k = lk->k;
	uint64_t now = kw_loop_now(l);

	if (lk->phase == KAD_P_DONE) {
		complete(lk);
		return;
	}
	for (unsigned i = 0; i < lk->ncand; i++) {
		struct kad_cand *c = &lk->cand[i];

		if (c->state == KAD_C_WAITING && c->sent_ms + k->cfg.query_timeout_ms <= now) {
			c->state = KAD_C_UNREACHABLE;
			lk->inflight--;
			k->stats.timeouts++;
			kad_peer_failed(k, &c->id);
		}
		if (c->fan == KAD_F_WAITING && c->sent_ms + k->cfg.query_timeout_ms <= now) {
			c->fan = KAD_F_FAILED;
			k->stats.timeouts++;
		}
	}
	if (lk->phase == KAD_P_LOOKUP && now >= lk->deadline_ms) {
		KW_LOG_DBG(kad, "lookup deadline after %u messages", lk->messages);
		finish(lk, -KW_ETIMEDOUT);
		return;
	}
	if (lk->phase == KAD_P_FANOUT) {
		fan_send(lk);
		if (!fanout_waiting(lk))
			finish(lk, 0);
		else
			arm(lk);
		return;
	}
	step(lk);
}

/* ---- replies --------------------------------------------------------------------------------- */

static void take_provider(struct kad_lookup *lk, const struct kw_kad_peer *pp)
{
	struct kw_kad_provider *pv = (struct kw_kad_provider *)lk->buf;
	unsigned cap = (unsigned)(lk->buf_cap / sizeof(*pv));
	struct kw_peer_id id;

	if (cap > lk->k->cfg.k)
		cap = lk->k->cfg.k;
	if (lk->nprov >= cap || kw_peer_id_from_bytes(pp->id, pp->id_len, &id) != 0)
		return;
	for (unsigned i = 0; i < lk->nprov; i++)
		if (kw_peer_id_equal(&pv[i].id, &id))
			return;
	memset(&pv[lk->nprov], 0, sizeof(pv[0]));
	pv[lk->nprov].id = id;
	for (unsigned a = 0; a < pp->n_addrs && pv[lk->nprov].naddrs < 2; a++) {
		struct kw_kad_provider *p = &pv[lk->nprov];

		if (pp->addr_len[a] > sizeof(p->addrs[0]))
			continue;
		p->addr_len[p->naddrs] = pp->addr_len[a];
		memcpy(p->addrs[p->naddrs], pp->addrs[a], pp->addr_len[a]);
		p->naddrs++;
	}
	lk->nprov++;
}

/* A record in a GET_VALUE reply: validated, then kept if kw_kad_select prefers it. */
static void take_record(struct kad_lookup *lk, struct kad_cand *c, const struct kw_kad_msg *m)
{
	struct kw_kad *k = lk->k;
	char err[96];
	int rc;

	if (!m->has_record || m->rec_key_len != lk->klen ||
	    memcmp(m->rec_key, lk->key, lk->klen) != 0)
		return;                       /* js discards records for another key too */
	rc = kw_kad_validate(lk->key, lk->klen, m->rec_value, m->rec_value_len, kad_wall_ms(k), err,
			     sizeof(err));
	if (rc < 0 || m->rec_value_len > lk->buf_cap) {
		KW_LOG_DBG(kad, "GET_VALUE: record refused: %s", rc < 0 ? err : "too big");
		return;
	}
	lk->nvals++;
	c->has_val = true;
	val_digest(m->rec_value, m->rec_value_len, c->vh);
	if (lk->vlen) {
		const uint8_t *vals[2] = { lk->buf, m->rec_value };
		size_t lens[2] = { lk->vlen, m->rec_value_len };

		if (kw_kad_select(lk->key, lk->klen, vals, lens, 2) != 1)
			return;
	}
	memcpy(lk->buf, m->rec_value, m->rec_value_len);
	lk->vlen = m->rec_value_len;
	memcpy(lk->best_vh, c->vh, 8);
}

static void lookup_reply(struct kad_lookup *lk, struct kad_cand *c, int err,
			 const struct kw_kad_msg *m)
{
	struct kw_kad *k = lk->k;
	unsigned hop = c->hop;   /* c may make room for a closer peer named below: copy first */

	lk->inflight--;
	if (err < 0 && kw_kad_err_local(err)) {
		/* refused by our own transport after request() returned: ask again later */
		k->stats.requests_out--;
		lk->messages--;
		local_refusal(lk, c);
		if (lk->phase == KAD_P_LOOKUP)
			step(lk);
		return;
	}
	if (err < 0 || !m) {
		c->state = KAD_C_UNREACHABLE;
		k->stats.replies_failed++;
		kad_peer_failed(k, &c->id);
		if (lk->phase == KAD_P_LOOKUP)
			step(lk);
		return;
	}
	k->stats.replies_ok++;
	c->state = KAD_C_QUERIED;
	if (lk->phase != KAD_P_LOOKUP)
		return;                       /* lookup over, answer kept for the result only */
	if (c->hop > lk->rounds)
		lk->rounds = c->hop;
	kad_peer_answered(k, &c->id, c->key, c->addrs, c->naddrs);
	k->stats.bogus_addrs += m->addrs_dropped;
	if (lk->op == KAD_OP_FIND_PEER && c->id.len == lk->klen &&
	    memcmp(c->id.bytes, lk->key, lk->klen) == 0) {
		lk->found = true;
		lk->found_peer = *c;
	}
	if (lk->op == KAD_OP_GET)
		take_record(lk, c, m);
	for (unsigned i = 0; i < m->n_peers; i++) {
		const struct kw_kad_peer *pp = &m->peers[i];
		struct kw_peer_id id;
		uint8_t key[KW_KAD_RT_KEY_BYTES];
		struct kad_cand *nc;

		if (pp->list == KW_KAD_PROVIDER) {
			if (lk->op == KAD_OP_PROVIDERS)
				take_provider(lk, pp);
			continue;
		}
		if (kw_peer_id_from_bytes(pp->id, pp->id_len, &id) != 0 ||
		    kw_peer_id_equal(&id, &k->self))
			continue;
		if (lk->op == KAD_OP_FIND_PEER && !lk->found && id.len == lk->klen &&
		    memcmp(id.bytes, lk->key, lk->klen) == 0) {
			lk->found = true;
			memset(&lk->found_peer, 0, sizeof(lk->found_peer));
			lk->found_peer.id = id;
			cand_addrs_from_peer(k, &lk->found_peer, pp);
		}
		(void)kw_kad_rt_key(&id, key);
		if (cand_add(lk, &id, key, hop + 1u, &nc) >= 0)
			cand_addrs_from_peer(k, nc, pp);
		else if (nc && nc->naddrs == 0 && nc->state == KAD_C_HEARD)
			cand_addrs_from_peer(k, nc, pp);
	}
	if (lk->op == KAD_OP_FIND_PEER && lk->found) {
		finish(lk, 0);               /* go FindPeer stops once the peer is known */
		return;
	}
	if (lk->op == KAD_OP_GET && k->cfg.quorum && lk->nvals >= k->cfg.quorum) {
		terminate(lk);
		return;
	}
	if (lk->op == KAD_OP_PROVIDERS && lk->nprov >= k->cfg.k) {
		finish(lk, 0);
		return;
	}
	step(lk);
}

static void fan_reply(struct kad_lookup *lk, struct kad_cand *c, int err, const struct kw_kad_msg *m)
{
	struct kw_kad *k = lk->k;
	bool ok = err == 0;

	if (err < 0 && kw_kad_err_local(err)) {
		c->fan = KAD_F_PENDING;       /* refused by our transport: send again later */
		k->stats.local_refusals++;
		k->stats.requests_out--;
		lk->messages--;
		lk->retry_ms = kw_loop_now(k->loop) + KAD_LOCAL_RETRY_MS;
		arm(lk);
		return;
	}
	lk->retry_ms = 0;

	/* a PUT counts only if the reply echoes our value (what js checks) */
	if (ok && lk->op != KAD_OP_PROVIDE)
		ok = m && m->has_record && m->rec_value_len == lk->vlen &&
		     memcmp(m->rec_value, lk->buf, lk->vlen) == 0;
	c->fan = ok ? KAD_F_OK : KAD_F_FAILED;
	if (err == 0)
		k->stats.replies_ok++;
	else
		k->stats.replies_failed++;
	if (ok)
		lk->acks++;
	fan_send(lk);
	if (!fanout_waiting(lk))
		finish(lk, 0);
	else
		arm(lk);
}

void kad_lookup_on_reply(struct kw_kad *k, uint32_t token, int err, const struct kw_kad_msg *resp)
{
	unsigned slot = KAD_TOK_SLOT(token), idx = KAD_TOK_IDX(token);
	struct kad_lookup *lk;
	struct kad_cand *c;

	if (slot >= k->nlk)
		goto late;
	lk = &k->lk[slot];
	if (lk->phase == KAD_P_FREE || lk->phase >= KAD_P_DONE || lk->gen != KAD_TOK_GEN(token) ||
	    idx >= lk->ncand)
		goto late;
	c = &lk->cand[idx];
	if (c->state == KAD_C_WAITING)
		lookup_reply(lk, c, err, resp);
	else if (lk->phase == KAD_P_FANOUT && c->fan == KAD_F_WAITING)
		fan_reply(lk, c, err, resp);
	else
		goto late;
	return;
late:
	k->stats.late_replies++;
}

/* ---- starting operations ----------------------------------------------------------------------- */

static struct kad_lookup *slot_start(struct kw_kad *k, enum kad_op op, const uint8_t *key,
				     size_t klen, kw_kad_done_fn cb, void *user, int *rc)
{
	struct kad_lookup *lk = NULL;

	if (!k || !key || klen == 0 || klen > KW_KAD_KEY_MAX) {
		*rc = -KW_EINVAL;
		return NULL;
	}
	if (k->dead) {
		*rc = -KW_ESHUTDOWN;
		return NULL;
	}
	for (unsigned i = 0; i < k->nlk; i++)
		if (k->lk[i].phase == KAD_P_FREE) {
			lk = &k->lk[i];
			break;
		}
	if (!lk) {
		*rc = -KW_ELIMIT;
		return NULL;
	}
	lk->phase = KAD_P_LOOKUP;
	lk->op = (uint8_t)op;
	lk->internal = cb == NULL;
	lk->self_lookup = false;
	lk->ncand = lk->inflight = 0;
	lk->klen = (uint16_t)klen;
	memcpy(lk->key, key, klen);
	kad_hash(key, klen, lk->target);
	lk->cb = cb;
	lk->user = user;
	kw_timer_init(&lk->timer, on_slot_timer, lk);
	lk->deadline_ms = kw_loop_now(k->loop) + k->cfg.lookup_timeout_ms;
	lk->retry_ms = lk->fan_deadline_ms = 0;
	lk->messages = lk->rounds = lk->acks = lk->nvals = lk->nprov = 0;
	lk->err = 0;
	lk->vlen = 0;
	lk->found = false;
	k->stats.lookups_started++;
	k->stats.lookups_active++;
	if (k->stats.lookups_active > k->stats.lookups_high)
		k->stats.lookups_high = k->stats.lookups_active;
	*rc = 0;
	return lk;
}

/* Gives a slot back when an operation fails before its lookup started (no callback). */
static int slot_abort(struct kad_lookup *lk, int rc)
{
	lk->k->stats.lookups_started--;
	slot_release(lk);
	return rc;
}

static int run(struct kad_lookup *lk)
{
	seed_from_table(lk);
	step(lk);
	return 0;
}

int kw_kad_find_peer(struct kw_kad *k, const struct kw_peer_id *id, kw_kad_done_fn cb, void *user)
{
	const struct kw_kad_rt_entry *e;
	struct kad_lookup *lk;
	int rc;

	if (!k || !id || !cb || id->len == 0 || kw_peer_id_equal(id, &k->self))
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_FIND_PEER, id->bytes, id->len, cb, user, &rc);
	if (!lk)
		return rc;
	e = kw_kad_rt_find(&k->rt, id);
	if (e) {                          /* known: no lookup (go checks its peerstore first) */
		lk->found = true;
		memset(&lk->found_peer, 0, sizeof(lk->found_peer));
		lk->found_peer.id = e->id;
		lk->found_peer.naddrs = e->naddrs;
		memcpy(lk->found_peer.addrs, e->addrs, sizeof(e->addrs));
		finish(lk, 0);
		return 0;
	}
	return run(lk);
}

int kw_kad_get_closest(struct kw_kad *k, const uint8_t *key, size_t klen, kw_kad_done_fn cb,
		       void *user)
{
	struct kad_lookup *lk;
	int rc;

	if (!cb)
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_CLOSEST, key, klen, cb, user, &rc);
	return lk ? run(lk) : rc;
}

int kw_kad_get_value(struct kw_kad *k, const uint8_t *key, size_t klen, kw_kad_done_fn cb,
		     void *user)
{
	struct kad_lookup *lk;
	const uint8_t *val;
	size_t vlen;
	int rc;

	if (!cb)
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_GET, key, klen, cb, user, &rc);
	if (!lk)
		return rc;
	/* our own copy counts as the first value (go sends the local record first) */
	if (kw_kad_store_get(k->store, key, klen, kw_loop_now(k->loop), &val, &vlen) == 0 &&
	    vlen <= lk->buf_cap) {
		memcpy(lk->buf, val, vlen);
		lk->vlen = vlen;
		lk->nvals = 1;
		val_digest(val, vlen, lk->best_vh);
		if (k->cfg.quorum && lk->nvals >= k->cfg.quorum) {
			finish(lk, 0);
			return 0;
		}
	}
	return run(lk);
}

static bool is_kwaai(const uint8_t *key, size_t klen)
{
	return klen > 7 && memcmp(key, "/kwaai/", 7) == 0;
}

int kw_kad_put_value(struct kw_kad *k, const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen, kw_kad_done_fn cb, void *user)
{
	struct kad_lookup *lk;
	const uint8_t *old;
	size_t oldlen;
	char err[96];
	int rc;

	if (!cb || (!val && vlen))
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_PUT, key, klen, cb, user, &rc);
	if (!lk)
		return rc;
	if (is_kwaai(key, klen)) {
		uint64_t wall = kad_wall_ms(k), seq = wall;
		long n;

		if (!k->cfg.key)
			return slot_abort(lk, -KW_EINVAL);
		/* a newer sequence number than our stored copy, else peers keep the old one */
		if (kw_kad_store_get(k->store, key, klen, kw_loop_now(k->loop), &old, &oldlen) == 0) {
			const uint8_t *ov;
			size_t ovlen;
			uint64_t oseq;

			if (kw_kad_kwaai_open(old, oldlen, &ov, &ovlen, &oseq) == 0 && oseq >= seq)
				seq = oseq + 1;
		}
		n = kw_kad_kwaai_seal(k->cfg.key, key, klen, val, vlen, seq,
				      wall + k->cfg.store.record_ttl_ms, lk->buf, lk->buf_cap);
		if (n < 0)
			return slot_abort(lk, (int)n);
		lk->vlen = (size_t)n;
	} else {
		if (vlen > lk->buf_cap)
			return slot_abort(lk, -KW_ELIMIT);
		memcpy(lk->buf, val, vlen);
		lk->vlen = vlen;
	}
	rc = kw_kad_store_put(k->store, key, klen, lk->buf, lk->vlen, NULL, kw_loop_now(k->loop),
			      kad_wall_ms(k), err, sizeof(err));
	if (rc < 0) {
		KW_LOG_DBG(kad, "put_value refused locally: %s", err);
		return slot_abort(lk, rc);
	}
	return run(lk);
}

static int provide_local(struct kw_kad *k, const uint8_t *mh, size_t mhlen)
{
	struct kw_multiaddr ma[2];
	struct kw_kad_provider p;
	size_t n = kad_self_addrs(k, ma, 2);
	char err[96];

	if (n == 0)
		return -KW_ENOTCONN;
	memset(&p, 0, sizeof(p));
	p.id = k->self;
	for (size_t i = 0; i < n; i++) {
		if (ma[i].len > sizeof(p.addrs[0]))
			continue;
		p.addr_len[p.naddrs] = (uint8_t)ma[i].len;
		memcpy(p.addrs[p.naddrs], ma[i].bytes, ma[i].len);
		p.naddrs++;
	}
	return kw_kad_store_add_provider(k->store, mh, mhlen, &p, NULL, kw_loop_now(k->loop), err,
					 sizeof(err));
}

int kw_kad_provide(struct kw_kad *k, const uint8_t *mh, size_t mhlen, kw_kad_done_fn cb,
		   void *user)
{
	struct kad_lookup *lk;
	int rc;

	if (!cb)
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_PROVIDE, mh, mhlen, cb, user, &rc);
	if (!lk)
		return rc;
	rc = provide_local(k, mh, mhlen);
	if (rc < 0)
		return slot_abort(lk, rc);
	return run(lk);
}

int kw_kad_find_providers(struct kw_kad *k, const uint8_t *mh, size_t mhlen, kw_kad_done_fn cb,
			  void *user)
{
	struct kad_lookup *lk;
	struct kw_kad_provider *pv;
	unsigned cap;
	int rc;

	if (!cb)
		return -KW_EINVAL;
	lk = slot_start(k, KAD_OP_PROVIDERS, mh, mhlen, cb, user, &rc);
	if (!lk)
		return rc;
	pv = (struct kw_kad_provider *)lk->buf;
	cap = (unsigned)(lk->buf_cap / sizeof(*pv));
	if (cap > k->cfg.k)
		cap = k->cfg.k;
	lk->nprov = (unsigned)kw_kad_store_get_providers(k->store, mh, mhlen, kw_loop_now(k->loop),
							 pv, cap);
	if (lk->nprov >= k->cfg.k) {
		finish(lk, 0);
		return 0;
	}
	return run(lk);
}

int kad_start_internal(struct kw_kad *k, enum kad_op op, const uint8_t *key, size_t klen,
		       const uint8_t *val, size_t vlen, bool self_lookup)
{
	struct kad_lookup *lk;
	int rc;

	lk = slot_start(k, op, key, klen, NULL, NULL, &rc);
	if (!lk)
		return rc;
	lk->self_lookup = self_lookup;
	if (op == KAD_OP_PUT) {               /* republish: the stored, already sealed value */
		if (vlen > lk->buf_cap)
			return slot_abort(lk, -KW_ELIMIT);
		memcpy(lk->buf, val, vlen);
		lk->vlen = vlen;
	} else if (op == KAD_OP_PROVIDE) {
		rc = provide_local(k, key, klen);   /* refreshes our own entry's expiry */
		if (rc < 0)
			return slot_abort(lk, rc);
	}
	return run(lk);
}

void kad_lookups_cancel_all(struct kw_kad *k)
{
	for (unsigned i = 0; i < k->nlk; i++) {
		struct kad_lookup *lk = &k->lk[i];
		struct kw_kad_result r;

		if (lk->phase == KAD_P_FREE || lk->phase == KAD_P_CALLBACK)
			continue;            /* a callback running now is its operation's one call */
		kw_timer_cancel(k->loop, &lk->timer);
		memset(&r, 0, sizeof(r));
		r.err = -KW_ECANCELED;
		r.rounds = lk->rounds;
		r.messages = lk->messages;
		k->stats.lookups_failed++;
		lk->phase = KAD_P_CALLBACK;
		if (!lk->internal && lk->cb)
			lk->cb(k, &r, lk->user);
		slot_release(lk);
	}
}
