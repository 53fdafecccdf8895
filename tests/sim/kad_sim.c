/*
 * The Kademlia simulation engine (see kad_sim.h and doc/sim.md).
 *
 * Everything happens on one kw_loop over the simulated clock: node joins, lookup starts,
 * churn and every message delivery are kw_timers, so the real core's own timers (query
 * timeouts, bootstrap retries, refresh) interleave with the traffic in virtual time. Equal
 * deadlines fire in arming order (the loop's FIFO sequence), which with the seeded PRNG
 * makes a run a pure function of its configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/net/kad.h>
#include <kw/net/kad_msg.h>
#include <kw/net/kad_rt.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/rng.h>
#include <kw/sim.h>

#include "kad_sim.h"

#define SIM_PORT        4001
/* Small records hold a FIND_NODE reply of k peers with 2 addresses each (~1.4 KB at k = 20);
 * larger messages (records, providers) take the large class. */
#define SIM_SMALL_CAP(k) (512u + 96u * (k))
#define SIM_LARGE_CAP   (KW_KAD_VALUE_MAX + KW_KAD_KEY_MAX * 2 + 4096u)
#define SIM_TIMERS_PER_NODE 24u  /* the core's timers per node, generously */
#define SIM_CONNS       256u     /* connections a node keeps (direct-mapped), see conn_open */
#define SIM_WALL_EPOCH_MS 1764547200000ull  /* 2025-12-01T00:00Z: record expiry in virtual time */

enum msg_kind { M_REQ = 1, M_RESP = 2, M_FAIL = 3 };

struct sim;

struct sim_node {
	struct sim *sim;
	struct kw_kad *k;            /* NULL when the slot is empty (not joined yet or left) */
	struct kw_peer_id id;
	uint8_t key[KW_KAD_RT_KEY_BYTES];
	uint8_t pk[32];              /* its Ed25519 public key bytes (/pk/ records) */
	uint32_t ip;                 /* host order */
	uint32_t gen;                /* bumped when the slot gets a new node (churn) */
	uint32_t adv_idx;            /* index in sim->adv[], or UINT32_MAX */
	bool adversary;
	struct kw_arena arena;
	void *mem;
	struct kw_kad_transport tr;
	uint64_t conns[SIM_CONNS];   /* (slot << 32 | gen) + 1 of open connections, 0 = none */
};

struct sim_msg {
	struct sim_msg *next_free;
	struct sim_msg *next_due;    /* the next message of its calendar bucket */
	uint32_t from, to;           /* node slots */
	uint32_t from_gen, to_gen;
	uint32_t token;
	int err;                     /* M_FAIL: the error the requester gets */
	uint8_t kind;
	bool large;
	uint32_t len;                /* bytes used in buf */
	uint64_t sent_ms;            /* when the request left (timeouts count from it) */
	uint8_t *buf;
};

struct sim_lookup {
	struct sim *sim;
	uint32_t origin, target;
	uint32_t origin_gen, target_gen;
	uint8_t done;
	uint8_t ok;
	uint8_t excluded;
	uint16_t rounds;
	uint32_t msgs;
	uint8_t adv_first;           /* adversaries among the origin's alpha closest to the target */
};

/* One get-after-put: a node puts its /pk/ record, later another node gets it. */
struct sim_put {
	struct sim *sim;
	uint32_t owner, owner_gen, getter;
	struct kw_timer t;           /* the get, put_delay after the put finished */
	uint8_t put_done, put_ok, get_done, get_ok;
	unsigned stored;
};

#define SIM_GET_DELAY_MS 10000u

struct sim {
	struct kw_kad_sim_cfg cfg;
	struct kw_kad_sim_report *rep;
	struct kw_prng prng;
	struct kw_prng core_prng;    /* the cores' own draws (kw_kad_cfg.rng), apart from prng so
	                              * that a core change of how many bytes it draws leaves the
	                              * simulation's own choices alone */
	struct kw_sim_net net;
	struct kw_sim simv;
	struct kw_loop loop;
	struct kw_arena shared;      /* loop tables, sim net */
	void *shared_mem;

	struct sim_node *nodes;
	struct sim_node nodes_dummy;   /* only for sizing the arena before the slots exist */
	unsigned n_slots;            /* nodes (slots are reused by churn joiners) */
	unsigned n_joined;           /* slots filled in the bootstrap phase */
	size_t node_arena_bytes;

	/* peer id -> slot, open addressing, capacity a power of two (UINT32_MAX = empty) */
	uint32_t *idx;
	uint32_t idx_mask;

	uint32_t *adv;               /* slots of the adversaries */
	unsigned n_adv;

	size_t small_cap;
	struct sim_msg *msgs;
	struct sim_msg *free_small, *free_large;
	unsigned n_msgs, inflight;
	uint8_t *msg_bytes;

	struct sim_lookup *lookups;
	unsigned n_lookups_started, n_lookups_done;

	struct sim_put *puts;
	unsigned n_puts_started, n_puts_done;   /* done: get finished (or put failed) */

	struct kw_timer t_join, t_lookup, t_churn, t_put;
	unsigned churn_total, churn_done;
	uint64_t phase_start_ms, phase_end_ms;

	struct kw_kad_msg *m_in, *m_out;   /* scratch: one decode, one handler answer */
	uint64_t hash;
	/* Messages in flight wait in a calendar queue: a ring of 1-ms buckets, each a FIFO list,
	 * longer than the longest delay (timeout + latency), so a bucket holds one millisecond.
	 * One loop timer (t_cal) stands for the earliest non-empty bucket. */
	struct sim_msg **cal_head, **cal_tail;
	uint32_t cal_mask;
	unsigned cal_count;
	uint64_t cal_armed;          /* t_cal's deadline while armed */
	bool cal_firing;             /* inside cal_fire: it arms t_cal itself when done */
	struct kw_timer t_cal;
	struct kw_timer t_phase;
	bool at_phase;               /* the lookup phase's start time has come */
	struct timespec t0, c0;      /* wall and CPU clock at the start of the run */
};

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rnd(struct sim *s) { return kw_prng_next(&s->prng); }
static uint32_t rnd_below(struct sim *s, uint32_t n) { return (uint32_t)(rnd(s) % n); }
static double rnd_unit(struct sim *s) { return (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0); }

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* FNV-1a over 8-byte words (then the tail bytes): the trace hash sees every byte of every
 * message, at an eighth of the multiplications of the byte-wise FNV-1a. */
static void hash_bytes(struct sim *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = s->hash, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		h ^= w;
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	s->hash = h;
}

static uint64_t now_ms(struct sim *s) { return kw_loop_now(&s->loop); }

static uint64_t sim_wall_ms(void *ctx)
{
	struct sim *s = ctx;
	return SIM_WALL_EPOCH_MS + s->net.now_ms;
}

static uint32_t id_hash(const struct kw_peer_id *id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned i = 0; i < id->len; i++) {
		h ^= id->bytes[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)mix64(h);
}

static uint32_t idx_find_pos(const struct sim *s, const struct kw_peer_id *id)
{
	uint32_t p = id_hash(id) & s->idx_mask;

	while (s->idx[p] != UINT32_MAX) {
		if (kw_peer_id_equal(&s->nodes[s->idx[p]].id, id))
			return p;
		p = (p + 1) & s->idx_mask;
	}
	return p;
}

static struct sim_node *lookup_node(struct sim *s, const struct kw_peer_id *id)
{
	uint32_t p = idx_find_pos(s, id);
	return s->idx[p] == UINT32_MAX ? NULL : &s->nodes[s->idx[p]];
}

static void idx_insert(struct sim *s, uint32_t slot)
{
	s->idx[idx_find_pos(s, &s->nodes[slot].id)] = slot;
}

/* Backward-shift deletion keeps every probe chain intact without tombstones. */
static void idx_remove(struct sim *s, const struct kw_peer_id *id)
{
	uint32_t i = idx_find_pos(s, id), j = i;

	if (s->idx[i] == UINT32_MAX)
		return;
	for (;;) {
		j = (j + 1) & s->idx_mask;
		if (s->idx[j] == UINT32_MAX)
			break;
		uint32_t home = id_hash(&s->nodes[s->idx[j]].id) & s->idx_mask;
		/* move j back to i when its home is cyclically outside (i, j] */
		if ((i < j) ? (home <= i || home > j) : (home <= i && home > j)) {
			s->idx[i] = s->idx[j];
			i = j;
		}
	}
	s->idx[i] = UINT32_MAX;
}

/* /ip4/<ip>/tcp/4001, binary (8 bytes). */
static size_t node_addr_bytes(const struct sim_node *n, uint8_t out[8])
{
	out[0] = 0x04;
	out[1] = (uint8_t)(n->ip >> 24);
	out[2] = (uint8_t)(n->ip >> 16);
	out[3] = (uint8_t)(n->ip >> 8);
	out[4] = (uint8_t)n->ip;
	out[5] = 0x06;
	out[6] = SIM_PORT >> 8;
	out[7] = SIM_PORT & 0xff;
	return 8;
}

static int node_maddr(const struct sim_node *n, struct kw_multiaddr *ma)
{
	uint8_t b[8];
	size_t len = node_addr_bytes(n, b);
	return kw_maddr_from_bytes(b, len, ma, NULL, 0);
}

static bool alive(const struct sim_node *n) { return n->k != NULL; }

static size_t sim_self_addrs(void *t, struct kw_multiaddr *out, size_t cap)
{
	const struct sim_node *n = t;

	return cap > 0 && node_maddr(n, &out[0]) == 0 ? 1 : 0;
}

/* Whether the link between two nodes is cut (symmetric, fixed for the pair's lifetimes). */
static bool link_cut(struct sim *s, uint32_t a, uint32_t b)
{
	uint64_t lo, hi, h;

	if (s->cfg.partition <= 0)
		return false;
	lo = a < b ? ((uint64_t)a << 32) | s->nodes[a].gen : ((uint64_t)b << 32) | s->nodes[b].gen;
	hi = a < b ? ((uint64_t)b << 32) | s->nodes[b].gen : ((uint64_t)a << 32) | s->nodes[a].gen;
	h = mix64(mix64(s->cfg.seed ^ 0x5bd1e995ull ^ lo) + hi);
	return (double)(h >> 11) * (1.0 / 9007199254740992.0) < s->cfg.partition;
}

static uint32_t latency(struct sim *s)
{
	uint32_t span = s->cfg.lat_max_ms - s->cfg.lat_min_ms;
	return s->cfg.lat_min_ms + (span ? rnd_below(s, span + 1) : 0);
}

/* ---- in-flight records ------------------------------------------------------------------- */

static void msg_fire(struct sim *s, struct sim_msg *m);

static struct sim_msg *msg_get(struct sim *s, bool large)
{
	struct sim_msg **head = large ? &s->free_large : &s->free_small;
	struct sim_msg *m = *head;

	if (!m)
		return NULL;
	*head = m->next_free;
	m->next_free = NULL;
	s->inflight++;
	if (s->inflight > s->rep->inflight_high)
		s->rep->inflight_high = s->inflight;
	return m;
}

static void msg_put(struct sim *s, struct sim_msg *m)
{
	struct sim_msg **head = m->large ? &s->free_large : &s->free_small;

	m->next_free = *head;
	*head = m;
	s->inflight--;
}

/* Encodes msg into a record, trying the small class first. NULL: pool empty or too big. */
static struct sim_msg *msg_encode(struct sim *s, const struct kw_kad_msg *msg, int *err)
{
	struct sim_msg *m = msg_get(s, false);
	long n = -KW_ENOSPC;

	if (m)
		n = kw_kad_msg_encode(msg, m->buf, s->small_cap);
	if (n == -KW_ENOSPC || !m) {
		if (m)
			msg_put(s, m);
		m = msg_get(s, true);
		if (!m) {
			*err = -KW_ENOBUFS;
			return NULL;
		}
		n = kw_kad_msg_encode(msg, m->buf, SIM_LARGE_CAP);
	}
	if (n < 0) {
		msg_put(s, m);
		*err = (int)n;
		return NULL;
	}
	m->len = (uint32_t)n;
	return m;
}

static void cal_arm(struct sim *s, uint64_t at_ms)
{
	if (kw_timer_start_at(&s->loop, &s->t_cal, at_ms) != 0) {
		fprintf(stderr, "kad-sim: timer heap full (raise SIM_TIMERS_PER_NODE)\n");
		abort();
	}
	s->cal_armed = at_ms;
}

static void msg_schedule(struct sim *s, struct sim_msg *m, uint64_t at_ms)
{
	uint32_t b = (uint32_t)(at_ms & s->cal_mask);

	if (at_ms < now_ms(s) || at_ms - now_ms(s) > s->cal_mask) {
		fprintf(stderr, "kad-sim: message delay %lld ms outside the calendar\n",
			(long long)(at_ms - now_ms(s)));
		abort();
	}
	m->next_due = NULL;
	if (s->cal_tail[b])
		s->cal_tail[b]->next_due = m;
	else
		s->cal_head[b] = m;
	s->cal_tail[b] = m;
	s->cal_count++;
	if (!s->cal_firing && (!kw_timer_armed(&s->t_cal) || at_ms < s->cal_armed))
		cal_arm(s, at_ms);
}

/* Delivers every message of the current millisecond in the order they were scheduled (those
 * scheduled for now while it runs included), then arms t_cal for the next non-empty bucket. */
static void cal_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;
	uint64_t now = now_ms(s);
	struct sim_msg *m;

	(void)l;
	s->cal_firing = true;
	/* from the armed deadline: the loop fires a timer at its deadline or, never here, later */
	for (uint64_t at = s->cal_armed; at <= now; at++) {
		uint32_t b = (uint32_t)(at & s->cal_mask);

		while ((m = s->cal_head[b]) != NULL) {
			s->cal_head[b] = m->next_due;
			if (!m->next_due)
				s->cal_tail[b] = NULL;
			s->cal_count--;
			msg_fire(s, m);
		}
	}
	s->cal_firing = false;
	if (s->cal_count > 0) {
		uint64_t at = now + 1;

		while (!s->cal_head[at & s->cal_mask])
			at++;
		cal_arm(s, at);
	}
}

static void msg_fail(struct sim *s, struct sim_msg *m, int err, uint64_t at_ms)
{
	m->kind = M_FAIL;
	m->err = err;
	msg_schedule(s, m, at_ms);
}

/* ---- the transport -------------------------------------------------------------------------- */

static int sim_request(void *t, const struct kw_peer_id *to, const struct kw_kad_rt_addr *addrs,
		       size_t naddrs, const struct kw_kad_msg *req, uint32_t token)
{
	struct sim_node *from = t;
	struct sim *s = from->sim;
	struct sim_node *dst = lookup_node(s, to);
	struct sim_msg *m;
	int err = 0;

	(void)addrs;
	(void)naddrs;
	s->rep->messages++;
	if (req->type < 6)
		s->rep->by_type[req->type]++;
	m = msg_encode(s, req, &err);
	if (!m) {
		if (err == -KW_ENOBUFS)
			s->rep->pool_exhausted++;
		return err;
	}
	m->from = (uint32_t)(from - s->nodes);
	m->from_gen = from->gen;
	m->token = token;
	m->sent_ms = now_ms(s);
	if (!dst || !alive(dst)) {
		/* Nobody answers at that address: the dial times out. */
		s->rep->to_dead++;
		m->to = UINT32_MAX;
		msg_fail(s, m, -KW_ETIMEDOUT, m->sent_ms + s->cfg.query_timeout_ms);
		return 0;
	}
	m->to = (uint32_t)(dst - s->nodes);
	m->to_gen = dst->gen;
	if (link_cut(s, m->from, m->to)) {
		s->rep->cut++;
		msg_fail(s, m, -KW_ETIMEDOUT, m->sent_ms + s->cfg.query_timeout_ms);
		return 0;
	}
	if (s->cfg.loss > 0 && rnd_unit(s) < s->cfg.loss) {
		s->rep->lost++;
		msg_fail(s, m, -KW_ETIMEDOUT, m->sent_ms + s->cfg.query_timeout_ms);
		return 0;
	}
	m->kind = M_REQ;
	msg_schedule(s, m, m->sent_ms + latency(s));
	if (req->type == KW_KAD_ADD_PROVIDER) {
		/* No reply on the wire: the core hears err 0 once the request is written. */
		struct sim_msg *ack = msg_get(s, false);
		if (!ack) {
			s->rep->pool_exhausted++;
			fprintf(stderr, "kad-sim: in-flight pool empty (raise --inflight)\n");
			abort();
		}
		*ack = (struct sim_msg){ .next_free = NULL, .from = m->from, .from_gen = m->from_gen,
					 .to = m->to, .to_gen = m->to_gen, .token = token,
					 .large = ack->large, .sent_ms = m->sent_ms, .buf = ack->buf };
		ack->token = token;
		msg_fail(s, ack, 0, m->sent_ms);
		m->token = UINT32_MAX;   /* the request itself expects nothing back */
	}
	return 0;
}

/* The adversaries' FIND_NODE handler: the k adversaries closest to the key, never the target. */
static void adversary_answer(struct sim *s, const struct kw_kad_msg *req, struct kw_kad_msg *resp)
{
	uint8_t key[KW_KAD_RT_KEY_BYTES];
	uint32_t best[64];
	unsigned nbest = 0, k = s->cfg.k ? s->cfg.k : CONFIG_KW_NET_KAD_K;

	if (k > 64)
		k = 64;
	crypto_hash_sha256(key, req->key, req->key_len);
	kw_kad_msg_init(resp, KW_KAD_FIND_NODE);
	kw_kad_msg_set_key(resp, req->key, req->key_len);
	for (unsigned i = 0; i < s->n_adv; i++) {
		const struct sim_node *a = &s->nodes[s->adv[i]];
		unsigned pos;
		if (!alive(a) || !a->adversary)
			continue;
		/* insertion into best[] by XOR distance to key */
		for (pos = nbest; pos > 0; pos--) {
			const struct sim_node *b = &s->nodes[best[pos - 1]];
			int c = 0;
			for (unsigned j = 0; j < KW_KAD_RT_KEY_BYTES && !c; j++)
				c = (int)(a->key[j] ^ key[j]) - (int)(b->key[j] ^ key[j]);
			if (c >= 0)
				break;
		}
		if (pos >= k)
			continue;
		if (nbest < k)
			nbest++;
		memmove(&best[pos + 1], &best[pos], (nbest - 1 - pos) * sizeof(best[0]));
		best[pos] = s->adv[i];
	}
	for (unsigned i = 0; i < nbest; i++) {
		const struct sim_node *a = &s->nodes[best[i]];
		struct kw_kad_peer *p;
		uint8_t b[8];
		size_t len = node_addr_bytes(a, b);
		if (kw_kad_msg_add_peer(resp, KW_KAD_CLOSER, a->id.bytes, a->id.len, KW_KAD_CONNECTED,
					&p) == 0)
			kw_kad_peer_add_addr(p, b, len);
	}
}

static uint64_t conn_tag(const struct sim *s, uint32_t slot)
{
	return (((uint64_t)slot << 32) | s->nodes[slot].gen) + 1;
}

/*
 * Whether a connection between two nodes is open, opening it if not: a request between
 * peers without one stands for dial + security + muxer + identify, after which each side's
 * core hears kw_kad_peer_seen for the other (as net/kad/swarm.c does from identify). Each
 * node remembers SIM_CONNS connections, direct-mapped, so old ones are "closed" by newer
 * ones as a connection manager trims idle connections (go-libp2p's keeps 600..900).
 */
static bool conn_open(struct sim *s, uint32_t a, uint32_t b)
{
	uint64_t ta = conn_tag(s, a), tb = conn_tag(s, b);
	uint64_t *ea = &s->nodes[a].conns[mix64(tb) % SIM_CONNS];
	uint64_t *eb = &s->nodes[b].conns[mix64(ta) % SIM_CONNS];
	bool was = *ea == tb && *eb == ta;

	*ea = tb;
	*eb = ta;
	return was;
}

static void deliver_request(struct sim *s, struct sim_msg *m)
{
	struct sim_node *src = &s->nodes[m->from], *dst = &s->nodes[m->to];
	struct kw_multiaddr ma;
	uint64_t t_out = m->sent_ms + s->cfg.query_timeout_ms;
	long n;
	int rc, err = 0;
	struct sim_msg *r;

	if (!alive(dst) || dst->gen != m->to_gen) {
		s->rep->to_dead++;
		msg_fail(s, m, -KW_ETIMEDOUT, t_out > now_ms(s) ? t_out : now_ms(s));
		return;
	}
	n = kw_kad_msg_decode(m->buf, m->len, s->m_in);
	if (n < 0) {
		fprintf(stderr, "kad-sim: request from node %u does not decode (%ld)\n", m->from, n);
		abort();
	}
	/* A new connection's identify, both ways: each side learns the other serves kad. */
	if (alive(src) && src->gen == m->from_gen && !conn_open(s, m->from, m->to)) {
		s->rep->connections++;
		if (node_maddr(src, &ma) == 0)
			kw_kad_peer_seen(dst->k, &src->id, &ma, 1);
		if (node_maddr(dst, &ma) == 0)
			kw_kad_peer_seen(src->k, &dst->id, &ma, 1);
	}
	if (dst->adversary && s->m_in->type == KW_KAD_FIND_NODE) {
		adversary_answer(s, s->m_in, s->m_out);
		rc = 0;
	} else {
		rc = kw_kad_handle_request(dst->k, &src->id, s->m_in, s->m_out);
	}
	if (rc == KW_KAD_NO_REPLY) {
		msg_put(s, m);   /* ADD_PROVIDER: served, nothing goes back */
		return;
	}
	if (rc < 0) {
		if (m->token == UINT32_MAX) {
			msg_put(s, m);
			return;
		}
		/* Refused (rate limit, protocol): the stream is reset, the requester learns at once. */
		s->rep->refused++;
		msg_fail(s, m, rc, now_ms(s) + latency(s));
		return;
	}
	msg_put(s, m);   /* the reply gets its own record (it may need the large class) */
	r = msg_encode(s, s->m_out, &err);
	if (!r) {
		if (err == -KW_ENOBUFS)
			s->rep->pool_exhausted++;
		/* The message pointer was reused above; rebuild a failure record from scratch. */
		r = msg_get(s, false);
		if (!r) {
			fprintf(stderr, "kad-sim: in-flight pool empty while answering (raise --inflight)\n");
			abort();
		}
		r->from = (uint32_t)(src - s->nodes);
		r->from_gen = src->gen;
		r->to = (uint32_t)(dst - s->nodes);
		r->to_gen = dst->gen;
		r->token = m->token;
		r->sent_ms = m->sent_ms;
		r->len = 0;
		msg_fail(s, r, err, now_ms(s) + latency(s));
		return;
	}
	r->from = m->from;
	r->from_gen = m->from_gen;
	r->to = m->to;
	r->to_gen = m->to_gen;
	r->token = m->token;
	r->sent_ms = m->sent_ms;
	if (link_cut(s, r->from, r->to)) {
		s->rep->cut++;
		msg_fail(s, r, -KW_ETIMEDOUT, t_out > now_ms(s) ? t_out : now_ms(s));
		return;
	}
	if (s->cfg.loss > 0 && rnd_unit(s) < s->cfg.loss) {
		s->rep->lost++;
		msg_fail(s, r, -KW_ETIMEDOUT, t_out > now_ms(s) ? t_out : now_ms(s));
		return;
	}
	r->kind = M_RESP;
	msg_schedule(s, r, now_ms(s) + latency(s));
}

static void msg_fire(struct sim *s, struct sim_msg *m)
{
	struct sim_node *src = &s->nodes[m->from];
	struct {
		uint64_t now;
		uint32_t kind, from, to, token, len;
		int32_t err;
	} ev = { now_ms(s), m->kind, m->from, m->to, m->token, m->len, m->err };

	s->rep->events++;
	hash_bytes(s, &ev, sizeof(ev));
	hash_bytes(s, m->buf, m->len);
	if (s->cfg.trace)
		fprintf(stderr, "t=%llu %s %u->%u token=%u len=%u err=%d\n",
			(unsigned long long)ev.now, m->kind == M_REQ ? "req" : m->kind == M_RESP ? "resp" : "fail",
			m->from, m->to, m->token, m->len, m->err);

	if (m->kind == M_REQ) {
		deliver_request(s, m);
		return;
	}
	if (!alive(src) || src->gen != m->from_gen) {
		msg_put(s, m);   /* the requester left: nobody waits for the answer */
		return;
	}
	if (m->kind == M_FAIL && m->token == UINT32_MAX) {
		msg_put(s, m);   /* an ADD_PROVIDER that failed: its sender already heard "written" */
		return;
	}
	if (m->kind == M_FAIL) {
		int err = m->err;
		uint32_t token = m->token;
		msg_put(s, m);
		kw_kad_on_reply(src->k, token, err, NULL);
		return;
	}
	/* M_RESP */
	{
		uint32_t token = m->token;
		long n = kw_kad_msg_decode(m->buf, m->len, s->m_in);
		if (n < 0) {
			fprintf(stderr, "kad-sim: reply from node %u does not decode (%ld)\n", m->to, n);
			abort();
		}
		s->rep->delivered++;
		msg_put(s, m);
		kw_kad_on_reply(src->k, token, 0, s->m_in);
	}
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static uint32_t public_ip(struct sim *s)
{
	for (;;) {
		uint32_t ip = (uint32_t)rnd(s);
		uint8_t a = (uint8_t)(ip >> 24), b = (uint8_t)(ip >> 16);
		if (a == 0 || a == 10 || a == 100 || a == 127 || a == 169 || a >= 224 ||
		    (a == 172 && (b & 0xf0) == 16) || (a == 192 && b == 168))
			continue;
		return ip;
	}
}

static void node_identity(struct sim *s, struct sim_node *n)
{
	struct kw_pubkey pk;

	memset(&pk, 0, sizeof(pk));
	pk.type = KW_KEY_ED25519;
	pk.len = 32;
	for (int i = 0; i < 32; i += 8) {
		uint64_t r = rnd(s);
		memcpy(&pk.data[i], &r, 8);
	}
	memcpy(n->pk, pk.data, 32);
	/* Any 32 bytes make a well-formed Ed25519 peer id; the sim needs no signatures. */
	if (kw_peer_id_from_pubkey(&pk, &n->id) != 0 || kw_kad_rt_key(&n->id, n->key) != 0) {
		fprintf(stderr, "kad-sim: cannot make a peer id\n");
		abort();
	}
	if (s->cfg.private_ips)
		n->ip = (10u << 24) | ((uint32_t)rnd(s) & 0xffffffu);
	else if (n->adversary && s->cfg.adv_groups > 0)
		n->ip = ((45u << 24) | (rnd_below(s, s->cfg.adv_groups) << 16)) |
			((uint32_t)rnd(s) & 0xffffu);
	else
		n->ip = public_ip(s);
}

/*
 * The store at the Kconfig defaults takes about 434 KiB per node (256 records, 256 KiB of
 * values, 512 providers), more than half of a node's arena: the simulated nodes get a small
 * store (unless --full-store) so 10,000 of them fit in memory. It is the same whether or not
 * the run puts records, so a get-after-put scenario runs on the very network of the routing
 * scenarios (kw_kad_sim_run_shared): 64 records in 16 KiB hold what a node is given at
 * 10,000 nodes with 1,000 /pk/ puts (about 80 bytes each, k = 20 copies: 2 per node on
 * average), and a full store refuses a put, which the get-after-put figures would show.
 * Routing, lookups and timers are at their Kconfig defaults either way.
 */
static void sim_store_cfg(const struct sim *s, struct kw_kad_store_cfg *st)
{
	if (s->cfg.full_store)
		return;   /* zero: Kconfig defaults */
	st->max_records = 64;
	st->max_record_bytes = 4096;  /* explicit: the Kconfig default may exceed the total below */
	st->max_total_bytes = 16384;
	st->max_records_per_peer = 8;
	st->max_providers = 8;
	st->max_providers_per_key = 4;
	st->max_providers_per_peer = 4;
}

/* kw_kad_cfg.rng of every node: one seeded stream for all cores (they run on one loop). */
static int sim_core_rng(void *ctx, void *buf, size_t len)
{
	struct sim *s = ctx;
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t r = kw_prng_next(&s->core_prng);
		size_t n = len < sizeof(r) ? len : sizeof(r);

		memcpy(p, &r, n);
		p += n;
		len -= n;
	}
	return 0;
}

static void fill_kad_cfg(struct sim *s, struct sim_node *n, struct kw_kad_cfg *c)
{
	kw_kad_cfg_default(c);
	c->self = &n->id;
	if (s->cfg.k)
		c->k = s->cfg.k;
	if (s->cfg.alpha)
		c->alpha = s->cfg.alpha;
	c->query_timeout_ms = s->cfg.query_timeout_ms;
	c->wall_ms = sim_wall_ms;
	c->wall_ctx = s;
	c->rng = sim_core_rng;
	c->rng_ctx = s;
	sim_store_cfg(s, &c->store);
}

static uint32_t random_live(struct sim *s, bool honest_only)
{
	for (;;) {
		uint32_t i = rnd_below(s, s->n_joined);
		if (alive(&s->nodes[i]) && (!honest_only || !s->nodes[i].adversary))
			return i;
	}
}

static void node_start(struct sim *s, uint32_t slot, bool bootstrap)
{
	struct sim_node *n = &s->nodes[slot];
	struct kw_kad_cfg c;
	unsigned want, got = 0, tries = 0;
	uint32_t chosen[16];
	int rc;

	node_identity(s, n);
	n->gen++;
	memset(n->conns, 0, sizeof(n->conns));
	/* A slot's first node gets fresh zero pages (calloc): only the pages its core touches
	 * are ever written. A churn joiner reuses the slot, which the normal init clears. */
	if (n->gen == 1)
		kw_arena_init_zeroed(&n->arena, n->mem, s->node_arena_bytes);
	else
		kw_arena_init(&n->arena, n->mem, s->node_arena_bytes);
	fill_kad_cfg(s, n, &c);
	n->tr.request = sim_request;
	n->tr.self_addrs = sim_self_addrs;
	n->tr.t = n;
	rc = kw_kad_create(&s->loop, &n->arena, &c, &n->tr, &n->k);
	if (rc != 0) {
		fprintf(stderr, "kad-sim: kw_kad_create failed (%d) for node %u\n", rc, slot);
		abort();
	}
	if (n->arena.high > s->rep->arena_used_per_node)
		s->rep->arena_used_per_node = n->arena.high;
	idx_insert(s, slot);

	want = s->cfg.bootstrap_peers < 16 ? s->cfg.bootstrap_peers : 16;
	if (!bootstrap)
		want = 0;
	while (got < want && tries++ < 64) {
		uint32_t b;
		bool dup = false;
		if (s->n_joined == 0)
			break;
		b = rnd_below(s, s->n_joined);
		if (b == slot || !alive(&s->nodes[b]))
			continue;
		for (unsigned j = 0; j < got; j++)
			dup |= chosen[j] == b;
		if (dup)
			continue;
		chosen[got++] = b;
	}
	for (unsigned j = 0; j < got; j++) {
		struct kw_multiaddr ma;
		if (node_maddr(&s->nodes[chosen[j]], &ma) != 0 ||
		    kw_maddr_append_peer_id(&ma, &s->nodes[chosen[j]].id) != 0 ||
		    kw_kad_bootstrap_add(n->k, &ma) != 0) {
			fprintf(stderr, "kad-sim: bootstrap_add failed for node %u\n", slot);
			abort();
		}
	}
}

static void node_stop(struct sim *s, uint32_t slot)
{
	struct sim_node *n = &s->nodes[slot];
	struct kw_kad *k = n->k;

	idx_remove(s, &n->id);
	n->k = NULL;      /* before destroy: its cancelled callbacks see the node gone */
	kw_kad_destroy(k);
}

/* ---- warm start ---------------------------------------------------------------------------- */

static const struct sim *sort_sim;

static int cmp_slot_key(const void *a, const void *b)
{
	return memcmp(sort_sim->nodes[*(const uint32_t *)a].key,
		      sort_sim->nodes[*(const uint32_t *)b].key, KW_KAD_RT_KEY_BYTES);
}

/* First index in order[0..n) whose key is >= key (upper: > key). */
static size_t key_bound(const struct sim *s, const uint32_t *order, size_t n, const uint8_t *key,
			bool upper)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = memcmp(s->nodes[order[mid]].key, key, KW_KAD_RT_KEY_BYTES);
		if (c < 0 || (upper && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * --prefill: every node starts with the routing table of a converged network. For each CPL c
 * the nodes whose key shares exactly c leading bits with ours form one contiguous range of
 * the key-sorted node list; up to k of them, drawn at random, are announced to the node with
 * kw_kad_peer_seen, so the table's own rules (diversity filter, pool) decide what it keeps.
 * This replaces the bootstrap phase's self-lookups and bucket refreshes (about 16 lookups
 * per node, the bulk of a 10,000-node run's CPU time) by an oracle; churn joiners still
 * bootstrap for real.
 */
static int prefill(struct sim *s)
{
	uint32_t *order = malloc(s->n_slots * sizeof(*order));
	unsigned k = s->cfg.k ? s->cfg.k : CONFIG_KW_NET_KAD_K;

	if (!order)
		return -KW_ENOMEM;
	if (k > 64)
		k = 64;
	for (uint32_t i = 0; i < s->n_slots; i++)
		order[i] = i;
	sort_sim = s;
	qsort(order, s->n_slots, sizeof(*order), cmp_slot_key);
	for (uint32_t i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];
		for (unsigned c = 0; c < 8 * KW_KAD_RT_KEY_BYTES; c++) {
			uint8_t lo[KW_KAD_RT_KEY_BYTES], hi[KW_KAD_RT_KEY_BYTES];
			size_t a, b, size, take, picked[64];
			memcpy(lo, n->key, sizeof(lo));
			lo[c / 8] ^= (uint8_t)(0x80u >> (c % 8));
			lo[c / 8] &= (uint8_t)(0xff00u >> (c % 8 + 1));
			memset(lo + c / 8 + 1, 0, sizeof(lo) - c / 8 - 1);
			memcpy(hi, lo, sizeof(hi));
			hi[c / 8] |= (uint8_t)(0xffu >> (c % 8 + 1));
			memset(hi + c / 8 + 1, 0xff, sizeof(hi) - c / 8 - 1);
			a = key_bound(s, order, s->n_slots, lo, false);
			b = key_bound(s, order, s->n_slots, hi, true);
			size = b - a;
			take = size < k ? size : k;
			for (size_t j = 0; j < take; j++) {
				/* distinct random members of the range (the order stays sorted) */
				size_t pick = a + j;
				struct kw_multiaddr ma;
				if (size > k) {
					bool dup;
					do {
						pick = a + rnd_below(s, (uint32_t)size);
						dup = false;
						for (size_t q = 0; q < j; q++)
							dup |= picked[q] == pick;
					} while (dup);
				}
				picked[j] = pick;
				if (node_maddr(&s->nodes[order[pick]], &ma) == 0)
					kw_kad_peer_seen(n->k, &s->nodes[order[pick]].id, &ma, 1);
			}
			/* nobody else shares c + 1 bits with us: deeper buckets are empty */
			memcpy(lo, n->key, sizeof(lo));
			lo[c / 8] &= (uint8_t)(0xff00u >> (c % 8 + 1));
			memset(lo + c / 8 + 1, 0, sizeof(lo) - c / 8 - 1);
			memcpy(hi, n->key, sizeof(hi));
			hi[c / 8] |= (uint8_t)(0xffu >> (c % 8 + 1));
			memset(hi + c / 8 + 1, 0xff, sizeof(hi) - c / 8 - 1);
			if (key_bound(s, order, s->n_slots, hi, true) -
			    key_bound(s, order, s->n_slots, lo, false) <= 1)
				break;
		}
	}
	free(order);
	return 0;
}

/* ---- scenario drivers ----------------------------------------------------------------------- */

static void join_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;
	uint32_t slot = s->n_joined;

	node_start(s, slot, true);
	s->n_joined++;
	if (s->n_joined < s->n_slots)
		kw_timer_start(l, t, s->cfg.join_interval_ms);
}

static void lookup_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct sim_lookup *lk = user;
	struct sim *s = lk->sim;
	const struct sim_node *tg = &s->nodes[lk->target];
	const struct sim_node *org = &s->nodes[lk->origin];

	lk->done = 1;
	s->n_lookups_done++;
	if (!alive(org) || org->gen != lk->origin_gen || !alive(tg) || tg->gen != lk->target_gen) {
		lk->excluded = 1;
		return;
	}
	lk->rounds = (uint16_t)(r->rounds > 65535 ? 65535 : r->rounds);
	lk->msgs = r->messages;
	if (r->err == 0) {
		for (size_t i = 0; i < r->n_peers; i++) {
			if (r->peers[i].id_len == tg->id.len &&
			    memcmp(r->peers[i].id, tg->id.bytes, tg->id.len) == 0) {
				lk->ok = 1;
				break;
			}
		}
	}
}

static void lookup_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;
	struct sim_lookup *lk = &s->lookups[s->n_lookups_started++];
	int rc;

	lk->sim = s;
	lk->origin = random_live(s, true);
	do
		lk->target = random_live(s, true);
	while (lk->target == lk->origin);
	lk->origin_gen = s->nodes[lk->origin].gen;
	lk->target_gen = s->nodes[lk->target].gen;
	if (s->n_adv) {
		/* Read-only look at where the lookup starts, for the adversarial breakdown: the
		 * table is not changed, so the run (and its trace hash) is the same. */
		const struct kw_kad_rt_entry *first[KW_KAD_SIM_ALPHA_SEEN];
		uint8_t key[KW_KAD_RT_KEY_BYTES];
		size_t nf = 0;
		if (kw_kad_rt_key(&s->nodes[lk->target].id, key) == 0)
			nf = kw_kad_rt_nearest(kw_kad_table(s->nodes[lk->origin].k), key, first,
					       s->cfg.alpha && s->cfg.alpha < KW_KAD_SIM_ALPHA_SEEN ?
					       s->cfg.alpha : KW_KAD_SIM_ALPHA_SEEN);
		for (size_t i = 0; i < nf; i++) {
			const struct sim_node *fn = lookup_node(s, &first[i]->id);
			lk->adv_first += fn && fn->adversary;
		}
	}
	rc = kw_kad_find_peer(s->nodes[lk->origin].k, &s->nodes[lk->target].id, lookup_done, lk);
	if (rc != 0) {
		/* Refused at once (all lookup slots busy): a failure, counted as such. */
		lk->done = 1;
		s->n_lookups_done++;
	}
	if (s->n_lookups_started < s->cfg.lookups)
		kw_timer_start(l, t, s->cfg.lookup_phase_ms / s->cfg.lookups);
}

static void churn_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;
	uint32_t slot = random_live(s, false);

	/* One node leaves without notice; a new node (new id) joins in its slot. */
	node_stop(s, slot);
	node_start(s, slot, true);
	s->churn_done++;
	if (s->churn_done < s->churn_total)
		kw_timer_start(l, t, s->cfg.lookup_phase_ms / s->churn_total);
}

static size_t pk_key(const struct sim_node *n, uint8_t *key)
{
	memcpy(key, "/pk/", 4);
	memcpy(key + 4, n->id.bytes, n->id.len);
	return 4u + n->id.len;
}

static void get_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct sim_put *p = user;
	struct sim *s = p->sim;
	const struct sim_node *o = &s->nodes[p->owner];
	struct kw_pubkey pub = { .type = KW_KEY_ED25519, .len = 32 };
	uint8_t want[64];
	size_t wlen = 0;

	memcpy(pub.data, o->pk, 32);
	p->get_done = 1;
	s->n_puts_done++;
	if (r->err == 0 && kw_pubkey_encode(&pub, want, sizeof(want), &wlen) == 0 &&
	    r->value_len == wlen && memcmp(r->value, want, wlen) == 0)
		p->get_ok = 1;
}

static void get_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim_put *p = t->arg;
	struct sim *s = p->sim;
	uint8_t key[4 + KW_PEER_ID_MAX];
	size_t klen = pk_key(&s->nodes[p->owner], key);

	do
		p->getter = random_live(s, true);
	while (p->getter == p->owner);
	if (kw_kad_get_value(s->nodes[p->getter].k, key, klen, get_done, p) != 0) {
		p->get_done = 1;
		s->n_puts_done++;
	}
}

static void put_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct sim_put *p = user;
	struct sim *s = p->sim;

	p->put_done = 1;
	p->stored = r->stored;
	p->put_ok = r->err == 0 && r->stored > 0;
	if (!p->put_ok || !alive(&s->nodes[p->owner]) || s->nodes[p->owner].gen != p->owner_gen) {
		s->n_puts_done++;    /* nothing to get */
		return;
	}
	kw_timer_init(&p->t, get_fire, p);
	kw_timer_start(&s->loop, &p->t, SIM_GET_DELAY_MS);
}

static void put_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;
	struct sim_put *p = &s->puts[s->n_puts_started++];
	struct kw_pubkey pub = { .type = KW_KEY_ED25519, .len = 32 };
	uint8_t key[4 + KW_PEER_ID_MAX], val[64];
	size_t klen, vlen = 0;

	p->sim = s;
	p->owner = random_live(s, true);
	p->owner_gen = s->nodes[p->owner].gen;
	kw_timer_init(&p->t, get_fire, p);
	memcpy(pub.data, s->nodes[p->owner].pk, 32);
	klen = pk_key(&s->nodes[p->owner], key);
	if (kw_pubkey_encode(&pub, val, sizeof(val), &vlen) != 0 ||
	    kw_kad_put_value(s->nodes[p->owner].k, key, klen, val, vlen, put_done, p) != 0) {
		p->put_done = 1;
		s->n_puts_done++;
	}
	if (s->n_puts_started < s->cfg.puts)
		kw_timer_start(l, t, s->cfg.lookup_phase_ms / s->cfg.puts);
}

/*
 * The start of the lookup phase. phase_fire only marks it (the loop finishes the pass it
 * fires in); phase_begin then arms the phase's own timers from the loop's caller. A run of
 * one scenario and a forked child of a shared bootstrap (kw_kad_sim_run_shared) go through
 * the same two steps at the same point, so they give the same events in the same order.
 */
static void phase_fire(struct kw_loop *l, struct kw_timer *t)
{
	struct sim *s = t->arg;

	(void)l;
	s->at_phase = true;
}

static void phase_begin(struct sim *s)
{
	struct kw_loop *l = &s->loop;

	s->churn_total = (unsigned)(s->cfg.churn * s->cfg.nodes + 0.5);
	s->phase_start_ms = now_ms(s);
	s->phase_end_ms = s->phase_start_ms + s->cfg.lookup_phase_ms;
	if (s->cfg.lookups > 0)
		kw_timer_start(l, &s->t_lookup, 0);
	if (s->cfg.puts > 0)
		kw_timer_start(l, &s->t_put, 1);
	if (s->churn_total > 0)
		kw_timer_start(l, &s->t_churn, s->cfg.lookup_phase_ms / s->churn_total / 2);
}

/* ---- set-up, run, report ---------------------------------------------------------------- */

void kw_kad_sim_cfg_default(struct kw_kad_sim_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->nodes = 1000;
	c->lookups = 1000;
	c->seed = 1;
	c->lat_min_ms = 20;
	c->lat_max_ms = 200;
	c->bootstrap_peers = 3;
	c->join_interval_ms = 20;
	c->settle_ms = 60000;
	c->lookup_phase_ms = 300000;
	c->query_timeout_ms = 5000;
	c->adv_groups = 4;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static unsigned pct(uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* Adversaries among a table's members (the table's own nearest-first walk over all of it). */
static uint64_t adv_members(struct sim *s, const struct kw_kad_rt *rt)
{
	static const struct kw_kad_rt_entry *all[KW_KAD_RT_MAX_MEMBERS_SEEN];
	static const uint8_t zero[KW_KAD_RT_KEY_BYTES];
	size_t n = kw_kad_rt_nearest(rt, zero, all, KW_KAD_RT_MAX_MEMBERS_SEEN);
	uint64_t c = 0;

	for (size_t i = 0; i < n; i++) {
		const struct sim_node *nd = lookup_node(s, &all[i]->id);
		c += nd && nd->adversary;
	}
	return c;
}

static void fill_report(struct sim *s)
{
	struct kw_kad_sim_report *rep = s->rep;
	uint32_t *r = calloc(s->cfg.lookups + 1, sizeof(*r));
	uint32_t *m = calloc(s->cfg.lookups + 1, sizeof(*m));
	size_t n = 0, members = 0, live = 0;

	rep->lookups_started = s->n_lookups_started;
	for (unsigned i = 0; i < s->n_lookups_started; i++) {
		const struct sim_lookup *lk = &s->lookups[i];
		if (lk->excluded) {
			rep->lookups_excluded++;
			continue;
		}
		if (s->n_adv) {
			rep->adv_first_n[lk->adv_first]++;
			rep->adv_first_ok[lk->adv_first] += lk->ok;
		}
		if (!lk->ok) {
			rep->lookups_failed++;
			continue;
		}
		rep->lookups_ok++;
		r[n] = lk->rounds;
		m[n] = lk->msgs;
		n++;
	}
	if (r && m) {
		qsort(r, n, sizeof(*r), cmp_u32);
		qsort(m, n, sizeof(*m), cmp_u32);
		rep->rounds_median = pct(r, n, 0.5);
		rep->rounds_p99 = pct(r, n, 0.99);
		rep->rounds_max = n ? r[n - 1] : 0;
		rep->msgs_median = pct(m, n, 0.5);
		rep->msgs_p99 = pct(m, n, 0.99);
	}
	free(r);
	free(m);
	if (rep->lookups_ok + rep->lookups_failed)
		rep->success_pct = 100.0 * rep->lookups_ok / (rep->lookups_ok + rep->lookups_failed);
	for (unsigned i = 0; i < s->n_slots; i++) {
		if (!alive(&s->nodes[i]) || s->nodes[i].adversary)
			continue;
		members += kw_kad_rt_size(kw_kad_table(s->nodes[i].k));
		live++;
		if (s->n_adv) {
			rep->adv_members += adv_members(s, kw_kad_table(s->nodes[i].k));
			rep->table_members += kw_kad_rt_size(kw_kad_table(s->nodes[i].k));
		}
	}
	for (unsigned i = 0; i < s->n_puts_started; i++) {
		const struct sim_put *p = &s->puts[i];
		rep->puts_ok += p->put_ok;
		if (p->put_ok && p->get_done && !(s->nodes[p->owner].gen != p->owner_gen)) {
			rep->gets_total++;
			rep->gets_ok += p->get_ok;
		}
	}
	rep->rt_size_mean = live ? (double)members / (double)live : 0;
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct kw_kad_stats st;
		if (!alive(&s->nodes[i]))
			continue;
		kw_kad_get_stats(s->nodes[i].k, &st);
		rep->core_lookups += st.lookups_started;
		rep->core_refresh += st.refresh_lookups;
		rep->core_rate_limited += st.requests_rate_limited;
		rep->core_timeouts += st.timeouts;
	}
	rep->virtual_ms = now_ms(s);
	rep->trace_hash = s->hash;
}

size_t kw_kad_sim_node_bytes(const struct kw_kad_sim_cfg *cfg)
{
	struct sim s;
	struct kw_kad_cfg kc;
	struct kw_peer_id dummy = { .len = 1 };

	memset(&s, 0, sizeof(s));
	s.cfg = *cfg;
	fill_kad_cfg(&s, &s.nodes_dummy, &kc);
	kc.self = &dummy;
	return kw_kad_arena_bytes(&kc);
}


static void sim_free(struct sim *s)
{
	if (s->nodes)
		for (unsigned i = 0; i < s->n_slots; i++)
			free(s->nodes[i].mem);
	free(s->nodes);
	free(s->idx);
	free(s->adv);
	free(s->msgs);
	free(s->msg_bytes);
	free(s->cal_head);
	free(s->cal_tail);
	free(s->lookups);
	free(s->puts);
	free(s->m_in);
	free(s->m_out);
	free(s->shared_mem);
	free(s);
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + 1e-9 * (double)(b->tv_nsec - a->tv_nsec);
}

/*
 * Allocates everything the run needs (sized from cfg: the lookup and put records from
 * cfg->lookups and cfg->puts) and schedules the joins (or fills the tables, --prefill) and
 * the start of the lookup phase. Return: 0 with *out set, or a negative code (*out NULL).
 */
static int sim_setup(const struct kw_kad_sim_cfg *cfg, struct kw_kad_sim_report *rep,
		     struct sim **out)
{
	struct sim *s;
	struct kw_kad_cfg kc;
	struct kw_peer_id dummy = { .len = 1 };
	size_t shared_bytes, msg_cap;
	uint32_t max_timers, cap = 1;
	int rc = -KW_ENOMEM;

	*out = NULL;
	if (!cfg->nodes || cfg->nodes < 2 || cfg->lat_max_ms < cfg->lat_min_ms ||
	    (cfg->lookups && cfg->lookup_phase_ms < cfg->lookups) || cfg->query_timeout_ms == 0)
		return -KW_EINVAL;
	memset(rep, 0, sizeof(*rep));
	s = calloc(1, sizeof(*s));
	if (!s)
		return -KW_ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &s->c0);
	s->cfg = *cfg;
	s->rep = rep;
	s->hash = 0xcbf29ce484222325ull;
	kw_prng_seed(&s->prng, cfg->seed);
	kw_prng_seed(&s->core_prng, cfg->seed ^ 0x6a09e667f3bcc908ull);

	/* Node slots and their arenas. */
	s->n_slots = cfg->nodes;
	fill_kad_cfg(s, &s->nodes_dummy, &kc);
	kc.self = &dummy;
	s->node_arena_bytes = kw_kad_arena_bytes(&kc);
	rep->arena_bytes_per_node = s->node_arena_bytes;
	s->nodes = calloc(s->n_slots, sizeof(*s->nodes));
	while (cap < 2 * s->n_slots)
		cap <<= 1;
	s->idx = malloc(cap * sizeof(*s->idx));
	s->idx_mask = cap - 1;
	if (!s->nodes || !s->idx)
		goto fail;
	memset(s->idx, 0xff, cap * sizeof(*s->idx));
	for (unsigned i = 0; i < s->n_slots; i++) {
		s->nodes[i].sim = s;
		s->nodes[i].adv_idx = UINT32_MAX;
		s->nodes[i].mem = calloc(1, s->node_arena_bytes);
		if (!s->nodes[i].mem)
			goto fail;
	}
	rep->sim_bytes_per_node = sizeof(struct sim_node) + 2 * sizeof(uint32_t);

	/* Adversaries: a fixed set of slots (a churned adversary's slot stays adversarial). */
	s->adv = calloc(s->n_slots, sizeof(*s->adv));
	if (!s->adv)
		goto fail;
	if (cfg->adversarial > 0) {
		unsigned want = (unsigned)(cfg->adversarial * cfg->nodes + 0.5);
		while (s->n_adv < want) {
			/* never slot 0, the first bootstrap peer everybody starts from */
			uint32_t i = 1 + rnd_below(s, s->n_slots - 1);
			if (s->nodes[i].adversary)
				continue;
			s->nodes[i].adversary = true;
			s->nodes[i].adv_idx = s->n_adv;
			s->adv[s->n_adv++] = i;
		}
	}

	/* In-flight pool: small records for FIND_NODE traffic, a few large ones for records. */
	s->n_msgs = cfg->inflight ? cfg->inflight : 4096 + 2 * cfg->nodes;
	{
		unsigned n_large = s->n_msgs / 16 + 16;
		s->small_cap = SIM_SMALL_CAP(cfg->k ? cfg->k : CONFIG_KW_NET_KAD_K);
		msg_cap = (size_t)s->n_msgs * s->small_cap + (size_t)n_large * SIM_LARGE_CAP;
		s->msgs = calloc(s->n_msgs + n_large, sizeof(*s->msgs));
		s->msg_bytes = malloc(msg_cap);
		if (!s->msgs || !s->msg_bytes)
			goto fail;
		for (unsigned i = 0; i < s->n_msgs + n_large; i++) {
			struct sim_msg *m = &s->msgs[i];
			m->large = i >= s->n_msgs;
			m->buf = m->large ? s->msg_bytes + (size_t)s->n_msgs * s->small_cap +
						    (size_t)(i - s->n_msgs) * SIM_LARGE_CAP
					  : s->msg_bytes + (size_t)i * s->small_cap;
			msg_put(s, m);
			s->inflight++;   /* msg_put counts down; the pool starts empty of traffic */
		}
		s->inflight = 0;
		rep->inflight_cap = s->n_msgs + n_large;
		shared_bytes = msg_cap + (s->n_msgs + n_large) * sizeof(*s->msgs);
	}
	{
		uint64_t span = (uint64_t)cfg->query_timeout_ms + cfg->lat_max_ms + 2;
		uint32_t ring = 1;

		while (ring < span)
			ring <<= 1;
		s->cal_mask = ring - 1;
		s->cal_head = calloc(ring, sizeof(*s->cal_head));
		s->cal_tail = calloc(ring, sizeof(*s->cal_tail));
		if (!s->cal_head || !s->cal_tail)
			goto fail;
		shared_bytes += 2 * (size_t)ring * sizeof(*s->cal_head);
	}
	s->lookups = calloc(cfg->lookups + 1, sizeof(*s->lookups));
	s->puts = calloc(cfg->puts + 1, sizeof(*s->puts));
	s->m_in = malloc(sizeof(*s->m_in));
	s->m_out = malloc(sizeof(*s->m_out));
	if (!s->lookups || !s->puts || !s->m_in || !s->m_out)
		goto fail;

	/* One loop for every node, on the simulated clock. */
	max_timers = s->n_slots * SIM_TIMERS_PER_NODE + 64;
	{
		size_t bytes = (size_t)max_timers * sizeof(void *) + 64 * 1024 + 8 * 4096 + 4096;
		s->shared_mem = malloc(bytes);
		if (!s->shared_mem)
			goto fail;
		kw_arena_init(&s->shared, s->shared_mem, bytes);
		shared_bytes += bytes + 2 * sizeof(struct kw_kad_msg) +
				(cfg->lookups + 1) * sizeof(*s->lookups) + cap * sizeof(*s->idx);
	}
	rc = kw_sim_net_init(&s->net, &s->shared, 8, 4096);
	if (rc)
		goto fail;
	s->net.auto_advance = true;
	kw_sim_init(&s->simv, &s->net);
	rc = kw_loop_init(&s->loop, &s->simv.sys, &s->shared, max_timers, 8);
	if (rc)
		goto fail;
	rep->sim_bytes_shared = shared_bytes;

	/* Bootstrap phase (or the warm start), then the lookup phase. */
	kw_timer_init(&s->t_join, join_fire, s);
	kw_timer_init(&s->t_lookup, lookup_fire, s);
	kw_timer_init(&s->t_churn, churn_fire, s);
	kw_timer_init(&s->t_put, put_fire, s);
	kw_timer_init(&s->t_cal, cal_fire, s);
	if (cfg->prefill) {
		for (uint32_t i = 0; i < s->n_slots; i++)
			node_start(s, i, false);
		s->n_joined = s->n_slots;
		rc = prefill(s);
		if (rc)
			goto fail;
	} else {
		kw_timer_start(&s->loop, &s->t_join, 0);
	}
	kw_timer_init(&s->t_phase, phase_fire, s);
	kw_timer_start(&s->loop, &s->t_phase, cfg->prefill ? cfg->settle_ms :
			(uint64_t)cfg->join_interval_ms * cfg->nodes + cfg->settle_ms);
	*out = s;
	return 0;
fail:
	sim_free(s);
	return rc;
}

static int sim_step(struct sim *s, uint64_t *last_report)
{
	uint64_t t = now_ms(s);

	if (getenv("KW_SIM_PROGRESS") && t - *last_report >= 60000) {
		*last_report = t;
		fprintf(stderr, "  [t=%llus joined=%u lookups=%u/%u events=%llu inflight=%u]\n",
			(unsigned long long)(t / 1000), s->n_joined, s->n_lookups_done,
			s->n_lookups_started, (unsigned long long)s->rep->events, s->inflight);
	}
	return kw_loop_run_once(&s->loop, -1);
}

/* Runs the joins and the settle time, up to the start of the lookup phase. */
static int sim_boot(struct sim *s)
{
	uint64_t last_report = 0;
	int rc = 0;

	while (!s->at_phase && rc == 0)
		rc = sim_step(s, &last_report);
	return rc;
}

/* Runs the lookup phase until every lookup, get and churn step is done; fills the report. */
static int sim_phase(struct sim *s)
{
	uint64_t last_report = s->phase_start_ms;
	int rc;

	phase_begin(s);
	for (;;) {
		if (now_ms(s) >= s->phase_end_ms && s->n_lookups_started >= s->cfg.lookups &&
		    s->n_lookups_done >= s->n_lookups_started && s->churn_done >= s->churn_total &&
		    s->n_puts_started >= s->cfg.puts && s->n_puts_done >= s->n_puts_started)
			break;
		rc = sim_step(s, &last_report);
		if (rc)
			return rc;
	}
	fill_report(s);
	return 0;
}

static void sim_times(struct sim *s)
{
	struct timespec t1, c1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	s->rep->cpu_s = ts_diff(&s->c0, &c1);
	s->rep->wall_s = ts_diff(&s->t0, &t1);
}

/* Destroys every node (their callbacks run: the core's cleanup is part of what is tested). */
static void sim_teardown(struct sim *s)
{
	for (unsigned i = 0; i < s->n_slots; i++)
		if (alive(&s->nodes[i]))
			node_stop(s, i);
	kw_timer_cancel(&s->loop, &s->t_join);
	kw_timer_cancel(&s->loop, &s->t_lookup);
	kw_timer_cancel(&s->loop, &s->t_churn);
	kw_timer_cancel(&s->loop, &s->t_put);
	kw_timer_cancel(&s->loop, &s->t_phase);
	kw_timer_cancel(&s->loop, &s->t_cal);
	for (unsigned i = 0; i < s->n_puts_started; i++)
		kw_timer_cancel(&s->loop, &s->puts[i].t);
}

int kw_kad_sim_run(const struct kw_kad_sim_cfg *cfg, struct kw_kad_sim_report *rep)
{
	struct sim *s;
	int rc = sim_setup(cfg, rep, &s);

	if (rc)
		return rc;
	rc = sim_boot(s);
	if (rc == 0)
		rc = sim_phase(s);
	if (rc == 0)
		sim_teardown(s);
	sim_times(s);
	sim_free(s);
	return rc;
}

/* The options a lookup phase may change without changing the network it starts from. */
static void phase_neutral(struct kw_kad_sim_cfg *c)
{
	c->lookups = 0;
	c->lookup_phase_ms = 0;
	c->churn = 0;
	c->puts = 0;
}

int kw_kad_sim_run_shared(const struct kw_kad_sim_cfg *phases, unsigned n,
			  struct kw_kad_sim_report *reps)
{
	struct kw_kad_sim_cfg base;
	struct kw_kad_sim_report boot_rep, *shared;
	struct sim *s;
	struct timespec t1, c1;
	double boot_cpu, boot_wall;
	int rc;

	if (n == 0)
		return -KW_EINVAL;
	base = phases[0];
	for (unsigned i = 0; i < n; i++) {
		struct kw_kad_sim_cfg a = phases[0], b = phases[i];

		phase_neutral(&a);
		phase_neutral(&b);
		if (memcmp(&a, &b, sizeof(a)) != 0)
			return -KW_EINVAL;   /* not the same network: cannot share its bootstrap */
		if (phases[i].lookups > base.lookups)
			base.lookups = phases[i].lookups;
		if (phases[i].puts > base.puts)
			base.puts = phases[i].puts;
		if (phases[i].lookup_phase_ms > base.lookup_phase_ms)
			base.lookup_phase_ms = phases[i].lookup_phase_ms;
	}
	/* The children write their reports here; the parent reads them after each exit. */
	shared = mmap(NULL, n * sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED)
		return -KW_ENOMEM;
	rc = sim_setup(&base, &boot_rep, &s);
	if (rc) {
		munmap(shared, n * sizeof(*shared));
		return rc;
	}
	rc = sim_boot(s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	boot_cpu = ts_diff(&s->c0, &c1);
	boot_wall = ts_diff(&s->t0, &t1);
	fflush(NULL);   /* a child must not write the parent's buffered output again */
	for (unsigned i = 0; i < n && rc == 0; i++) {
		pid_t pid = fork();
		int status = 0;

		if (pid < 0) {
			rc = -KW_ENOMEM;
			break;
		}
		if (pid == 0) {
			/* The child: this scenario's lookup phase on its copy of the settled network.
			 * It leaves without tearing the network down (the parent's copy is intact). */
			struct kw_kad_sim_report r = boot_rep;
			struct timespec ct0, cc0;

			clock_gettime(CLOCK_MONOTONIC, &ct0);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cc0);
			s->rep = &r;
			s->cfg.lookups = phases[i].lookups;
			s->cfg.lookup_phase_ms = phases[i].lookup_phase_ms;
			s->cfg.churn = phases[i].churn;
			s->cfg.puts = phases[i].puts;
			if (sim_phase(s) != 0)
				_exit(2);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
			r.phase_cpu_s = ts_diff(&cc0, &c1);
			r.boot_cpu_s = boot_cpu;
			r.cpu_s = boot_cpu + r.phase_cpu_s;
			r.wall_s = boot_wall + ts_diff(&ct0, &t1);
			r.boot_shared = n;
			shared[i] = r;
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = -KW_EIO;
		else
			reps[i] = shared[i];
	}
	munmap(shared, n * sizeof(*shared));
	sim_teardown(s);
	sim_free(s);
	return rc;
}
