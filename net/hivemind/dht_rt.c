/*
 * DHTIDs, the routing table and the blacklist of the Hivemind DHT
 * (include/kw/net/hivemind_dht.h, part 2), after learning-at-home/hivemind @ 4bd43b7
 * `hivemind/dht/routing.py` (DHTID, RoutingTable, KBucket) and `hivemind/dht/node.py`
 * (Blacklist).
 *
 * Buckets are a sorted array of [lower, lower + 2^(160 - depth)) ranges; nodes live in one
 * pool and find their bucket by binary search on their id, so a split only recounts. A node's
 * `seq` is the order of its last update: within a bucket the smallest main seq is the
 * least-recently-updated node (hivemind's dict order), the largest replacement seq the most
 * recently added replacement (what dict.popitem() returns). Differences from routing.py,
 * all bounded-memory or plain bugs there: the node pool, bucket count and replacements per
 * bucket are bounded (Kconfig); a node whose id equals a split's midpoint goes to the right
 * half (routing.py puts it in the left half, outside that bucket's range); a replacement
 * that becomes a main node leaves the replacement list (routing.py keeps it in both).
 *
 * Owner: net/hivemind. All tables come from the arena at init; nothing allocates later.
 */
#include <string.h>

#include <mbedtls/sha1.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/msgpack.h>
#include <kw/rng.h>

#define ID_BITS (KW_HM_DHTID_LEN * 8)

/* ---- DHTID --------------------------------------------------------------------------- */

void kw_hm_dhtid_hash(const uint8_t *src, size_t len, struct kw_hm_dhtid *out)
{
	/* SHA-1 cannot fail on a memory buffer; mbedTLS 2.28 returns 0 */
	(void)mbedtls_sha1_ret(src, len, out->b);
}

int kw_hm_dhtid_of_str(const char *key, size_t len, struct kw_hm_dhtid *out)
{
	uint8_t buf[4096 + 5];
	struct kw_mp_writer w;
	long n;

	if (len > 4096)
		return -KW_EINVAL;
	kw_mp_writer_init(&w, buf, sizeof(buf));
	kw_mp_put_str(&w, key, len);
	n = kw_mp_writer_finish(&w);
	if (n < 0)
		return -KW_EINVAL;
	kw_hm_dhtid_hash(buf, (size_t)n, out);
	return 0;
}

int kw_hm_dhtid_random(struct kw_hm_dhtid *out)
{
	uint8_t seed[32];
	int err = kw_rng_bytes(seed, sizeof(seed));

	if (err)
		return err;
	kw_hm_dhtid_hash(seed, sizeof(seed), out);
	return 0;
}

int kw_hm_dhtid_from_bytes(const uint8_t *b, size_t len, struct kw_hm_dhtid *out)
{
	if (len > KW_HM_DHTID_LEN)
		return -KW_ERANGE;
	memset(out->b, 0, KW_HM_DHTID_LEN);
	if (len)
		memcpy(out->b + KW_HM_DHTID_LEN - len, b, len);
	return 0;
}

void kw_hm_dhtid_xor(const struct kw_hm_dhtid *a, const struct kw_hm_dhtid *b,
		     struct kw_hm_dhtid *out)
{
	for (int i = 0; i < KW_HM_DHTID_LEN; i++)
		out->b[i] = a->b[i] ^ b->b[i];
}

int kw_hm_dhtid_cmp(const struct kw_hm_dhtid *a, const struct kw_hm_dhtid *b)
{
	return memcmp(a->b, b->b, KW_HM_DHTID_LEN);
}

int kw_hm_dhtid_dist_cmp(const struct kw_hm_dhtid *q, const struct kw_hm_dhtid *a,
			 const struct kw_hm_dhtid *b)
{
	for (int i = 0; i < KW_HM_DHTID_LEN; i++) {
		uint8_t x = a->b[i] ^ q->b[i], y = b->b[i] ^ q->b[i];

		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

/* ---- routing table ------------------------------------------------------------------- */

struct kw_hm_rt_node {
	struct kw_hm_dhtid id;
	uint64_t seq;
	uint8_t used, repl, ping_requested;
	uint8_t peer_len;
	uint8_t peer[KW_HM_DHT_PEER_ID_MAX];
};

struct kw_hm_rt_bucket {
	struct kw_hm_dhtid lower;
	uint32_t depth;
	uint32_t n_main, n_repl;
	double last_updated;
};

void kw_hm_rt_limits_default(struct kw_hm_rt_limits *l)
{
	l->bucket_size = CONFIG_KW_NET_HIVEMIND_DHT_BUCKET_SIZE;
	l->depth_modulo = CONFIG_KW_NET_HIVEMIND_DHT_DEPTH_MODULO;
	l->max_nodes = CONFIG_KW_NET_HIVEMIND_DHT_RT_NODES;
	l->max_buckets = CONFIG_KW_NET_HIVEMIND_DHT_RT_BUCKETS;
	l->max_replacements = CONFIG_KW_NET_HIVEMIND_DHT_RT_REPLACEMENTS;
}

int kw_hm_rt_init(struct kw_hm_rt *rt, const struct kw_hm_dhtid *self,
		  const struct kw_hm_rt_limits *lim, struct kw_arena *arena)
{
	if (!lim->bucket_size || lim->bucket_size > 255 || !lim->depth_modulo ||
	    !lim->max_nodes || !lim->max_buckets || !lim->max_replacements ||
	    lim->max_replacements > 255)
		return -KW_EINVAL;
	memset(rt, 0, sizeof(*rt));
	rt->self = *self;
	rt->lim = *lim;
	rt->nodes = kw_arena_alloc(arena, sizeof(*rt->nodes) * lim->max_nodes, 8);
	rt->buckets = kw_arena_alloc(arena, sizeof(*rt->buckets) * lim->max_buckets, 8);
	if (!rt->nodes || !rt->buckets)
		return -KW_ENOMEM;
	rt->n_buckets = 1;   /* [0, 2^160), depth 0 */
	return 0;
}

uint32_t kw_hm_rt_bucket_index(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id)
{
	uint32_t lo = 0, hi = rt->n_buckets;

	/* the last bucket whose lower bound is <= id (get_bucket_index) */
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;

		if (kw_hm_dhtid_cmp(id, &rt->buckets[mid].lower) >= 0)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static bool bit(const struct kw_hm_dhtid *id, uint32_t i)
{
	return (id->b[i / 8] >> (7 - i % 8)) & 1;
}

/* KBucket.has_in_range: the first `depth` bits equal the (aligned) lower bound's. */
static bool in_range(const struct kw_hm_rt_bucket *b, const struct kw_hm_dhtid *id)
{
	for (uint32_t i = 0; i < b->depth; i++)
		if (bit(id, i) != bit(&b->lower, i))
			return false;
	return true;
}

static struct kw_hm_rt_node *find(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id)
{
	for (uint32_t i = 0; i < rt->lim.max_nodes; i++)
		if (rt->nodes[i].used && !kw_hm_dhtid_cmp(&rt->nodes[i].id, id))
			return &rt->nodes[i];
	return NULL;
}

static struct kw_hm_rt_node *alloc_node(struct kw_hm_rt *rt)
{
	for (uint32_t i = 0; i < rt->lim.max_nodes; i++)
		if (!rt->nodes[i].used)
			return &rt->nodes[i];
	return NULL;
}

static void set_peer(struct kw_hm_rt_node *n, const uint8_t *peer, size_t len)
{
	n->peer_len = (uint8_t)len;
	if (len)
		memcpy(n->peer, peer, len);
}

/* The bucket's node of the given kind with the smallest (oldest) or largest seq. */
static struct kw_hm_rt_node *pick(struct kw_hm_rt *rt, uint32_t bi, bool repl, bool newest,
				  bool skip_ping_requested)
{
	struct kw_hm_rt_node *best = NULL;

	for (uint32_t i = 0; i < rt->lim.max_nodes; i++) {
		struct kw_hm_rt_node *n = &rt->nodes[i];

		if (!n->used || n->repl != repl || (skip_ping_requested && n->ping_requested) ||
		    kw_hm_rt_bucket_index(rt, &n->id) != bi)
			continue;
		if (!best || (newest ? n->seq > best->seq : n->seq < best->seq))
			best = n;
	}
	return best;
}

static void drop(struct kw_hm_rt *rt, struct kw_hm_rt_node *n, struct kw_hm_rt_bucket *b)
{
	if (n->repl)
		b->n_repl--;
	else
		b->n_main--;
	n->used = 0;
	rt->stats.removed++;
}

/* Puts node n (already in the pool) into bucket b as hivemind's KBucket.add_or_update_node
 * would for a node it does not hold. Return: true when it became a main node. */
static bool place(struct kw_hm_rt *rt, uint32_t bi, struct kw_hm_rt_node *n)
{
	struct kw_hm_rt_bucket *b = &rt->buckets[bi];

	n->seq = ++rt->seq;
	if (b->n_main < rt->lim.bucket_size) {
		n->repl = 0;
		b->n_main++;
		return true;
	}
	if (b->n_repl >= rt->lim.max_replacements) {
		struct kw_hm_rt_node *old = pick(rt, bi, true, false, false);

		if (old) {
			drop(rt, old, b);
			rt->stats.replacements_dropped++;
		}
	}
	n->repl = 1;
	b->n_repl++;
	return false;
}

/* KBucket.split + RoutingTable.split_bucket: halves at the midpoint; every node is re-added
 * to its half, main nodes first, each group in its order (so a half may promote
 * replacements to main nodes, as in hivemind). */
static void split(struct kw_hm_rt *rt, uint32_t bi, double now)
{
	struct kw_hm_rt_bucket *b = &rt->buckets[bi], right;
	uint32_t order[255 + 255], cnt = 0;

	right = *b;
	right.depth = b->depth + 1;
	right.lower.b[b->depth / 8] |= (uint8_t)(0x80u >> (b->depth % 8));
	right.n_main = right.n_repl = 0;
	right.last_updated = now;
	b->depth++;
	b->n_main = b->n_repl = 0;
	b->last_updated = now;
	/* collect the old bucket's nodes (they now map to bi or bi + 1 after the insert) */
	memmove(&rt->buckets[bi + 2], &rt->buckets[bi + 1],
		(rt->n_buckets - bi - 1) * sizeof(*rt->buckets));
	rt->buckets[bi + 1] = right;
	rt->n_buckets++;
	for (uint32_t i = 0; i < rt->lim.max_nodes && cnt < 510; i++) {
		struct kw_hm_rt_node *n = &rt->nodes[i];
		uint32_t j;

		if (!n->used)
			continue;
		j = kw_hm_rt_bucket_index(rt, &n->id);
		if (j != bi && j != bi + 1)
			continue;
		/* insertion sort by (replacement, seq) */
		j = cnt++;
		while (j > 0) {
			struct kw_hm_rt_node *p = &rt->nodes[order[j - 1]];

			if (p->repl < n->repl || (p->repl == n->repl && p->seq < n->seq))
				break;
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		struct kw_hm_rt_node *n = &rt->nodes[order[i]];

		n->ping_requested = 0;
		n->repl = 0;
		(void)place(rt, kw_hm_rt_bucket_index(rt, &n->id), n);
	}
}

int kw_hm_rt_add(struct kw_hm_rt *rt, const struct kw_hm_dhtid *id, const uint8_t *peer,
		 size_t peer_len, double now, struct kw_hm_dht_contact *to_ping)
{
	if (peer_len > KW_HM_DHT_PEER_ID_MAX || (peer_len && !peer) ||
	    !kw_hm_dhtid_cmp(id, &rt->self))
		return -KW_EINVAL;
	for (;;) {
		uint32_t bi = kw_hm_rt_bucket_index(rt, id);
		struct kw_hm_rt_bucket *b = &rt->buckets[bi];
		struct kw_hm_rt_node *n = find(rt, id), *p;

		if (n)
			n->ping_requested = 0;
		b->last_updated = now;
		if (n && !n->repl) {                       /* known: most recently updated */
			n->seq = ++rt->seq;
			set_peer(n, peer, peer_len);
			rt->stats.updated++;
			return 0;
		}
		if (b->n_main < rt->lim.bucket_size) {     /* room */
			if (n) {
				b->n_repl--;
				rt->stats.promoted++;
			} else {
				n = alloc_node(rt);
				if (!n) {
					rt->stats.full++;
					return -KW_ENOSPC;
				}
				n->used = 1;
				n->id = *id;
				rt->stats.added++;
			}
			n->repl = 0;
			n->seq = ++rt->seq;
			b->n_main++;
			set_peer(n, peer, peer_len);
			return 0;
		}
		/* full: remember it as a replacement (most recent last) */
		if (n) {
			n->seq = ++rt->seq;
			set_peer(n, peer, peer_len);
		} else {
			if (b->n_repl >= rt->lim.max_replacements) {
				p = pick(rt, bi, true, false, false);
				if (p) {
					drop(rt, p, b);
					rt->stats.replacements_dropped++;
				}
			}
			n = alloc_node(rt);
			if (!n) {
				rt->stats.full++;
				return -KW_ENOSPC;
			}
			n->used = 1;
			n->id = *id;
			n->repl = 1;
			n->seq = ++rt->seq;
			b->n_repl++;
			set_peer(n, peer, peer_len);
			rt->stats.replacements++;
		}
		/* section 4.2 of the Kademlia paper: split if the bucket holds our own id or its
		 * depth is not a multiple of depth_modulo */
		if ((in_range(b, &rt->self) || b->depth % rt->lim.depth_modulo != 0) &&
		    b->depth < ID_BITS) {
			if (rt->n_buckets < rt->lim.max_buckets) {
				split(rt, bi, now);
				continue;          /* retry in the half that holds it */
			}
			rt->stats.no_split++;
		}
		p = pick(rt, bi, false, false, true);     /* request_ping_node */
		if (!p)
			return 2;
		p->ping_requested = 1;
		if (to_ping) {
			to_ping->id = p->id;
			to_ping->peer_len = p->peer_len;
			memcpy(to_ping->peer, p->peer, p->peer_len);
		}
		return 1;
	}
}

int kw_hm_rt_remove(struct kw_hm_rt *rt, const struct kw_hm_dhtid *id)
{
	struct kw_hm_rt_node *n = find(rt, id), *r;
	uint32_t bi;
	bool was_main;

	if (!n)
		return -KW_ENOENT;
	bi = kw_hm_rt_bucket_index(rt, id);
	was_main = !n->repl;
	drop(rt, n, &rt->buckets[bi]);
	if (was_main) {
		r = pick(rt, bi, true, true, false);    /* replacement_nodes.popitem() */
		if (r) {
			r->repl = 0;
			r->seq = ++rt->seq;
			rt->buckets[bi].n_repl--;
			rt->buckets[bi].n_main++;
			rt->stats.promoted++;
		}
	}
	return 0;
}

static void contact(const struct kw_hm_rt_node *n, struct kw_hm_dht_contact *out)
{
	out->id = n->id;
	out->peer_len = n->peer_len;
	memcpy(out->peer, n->peer, n->peer_len);
}

int kw_hm_rt_get_peer(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id,
		      struct kw_hm_dht_contact *out)
{
	const struct kw_hm_rt_node *n = find(rt, id);

	if (!n)
		return -KW_ENOENT;
	contact(n, out);
	return 0;
}

int kw_hm_rt_get_id(const struct kw_hm_rt *rt, const uint8_t *peer, size_t peer_len,
		    struct kw_hm_dhtid *out)
{
	const struct kw_hm_rt_node *best = NULL;

	for (uint32_t i = 0; i < rt->lim.max_nodes; i++) {
		const struct kw_hm_rt_node *n = &rt->nodes[i];

		if (n->used && n->peer_len == peer_len && !memcmp(n->peer, peer, peer_len) &&
		    (!best || n->seq > best->seq))
			best = n;
	}
	if (!best)
		return -KW_ENOENT;
	*out = best->id;
	return 0;
}

/*
 * get_nearest_neighbors gathers whole subtrees around q until they hold k (+1) main nodes and
 * takes the k nearest: every node of a subtree holding q is nearer to q than any node outside
 * it, so that is exactly the k nearest main nodes of the whole table, which a scan gives.
 */
size_t kw_hm_rt_nearest(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *q, size_t k,
			const struct kw_hm_dhtid *exclude, struct kw_hm_dht_contact *out)
{
	size_t cnt = 0;

	for (uint32_t i = 0; i < rt->lim.max_nodes && k; i++) {
		const struct kw_hm_rt_node *n = &rt->nodes[i];
		size_t j;

		if (!n->used || n->repl || (exclude && !kw_hm_dhtid_cmp(&n->id, exclude)))
			continue;
		if (cnt == k && kw_hm_dhtid_dist_cmp(q, &n->id, &out[k - 1].id) >= 0)
			continue;
		j = cnt < k ? cnt++ : k - 1;
		while (j > 0 && kw_hm_dhtid_dist_cmp(q, &n->id, &out[j - 1].id) < 0) {
			out[j] = out[j - 1];
			j--;
		}
		contact(n, &out[j]);
	}
	return cnt;
}

uint32_t kw_hm_rt_bucket_count(const struct kw_hm_rt *rt)
{
	return rt->n_buckets;
}

int kw_hm_rt_bucket_info(const struct kw_hm_rt *rt, uint32_t i, struct kw_hm_dhtid *lower,
			 uint32_t *depth, uint32_t *n_main, uint32_t *n_repl)
{
	if (i >= rt->n_buckets)
		return -KW_ENOENT;
	if (lower)
		*lower = rt->buckets[i].lower;
	if (depth)
		*depth = rt->buckets[i].depth;
	if (n_main)
		*n_main = rt->buckets[i].n_main;
	if (n_repl)
		*n_repl = rt->buckets[i].n_repl;
	return 0;
}

bool kw_hm_rt_is_replacement(const struct kw_hm_rt *rt, const struct kw_hm_dhtid *id)
{
	const struct kw_hm_rt_node *n = find(rt, id);

	return n && n->repl;
}

/* ---- blacklist ----------------------------------------------------------------------- */

struct kw_hm_bl_entry {
	double until;          /* banned while now <= until (TimedStorage drops exp < now) */
	uint32_t failures;     /* hivemind's ban_counter: kept after a ban ends */
	uint8_t used, len;
	uint8_t peer[KW_HM_DHT_PEER_ID_MAX];
};

int kw_hm_bl_init(struct kw_hm_blacklist *bl, uint32_t cap, double base_s, double backoff,
		  struct kw_arena *arena)
{
	if (!cap || !(backoff >= 1.0) || !(base_s >= 0.0))
		return -KW_EINVAL;
	bl->base_s = base_s;
	bl->backoff = backoff;
	bl->cap = cap;
	bl->e = kw_arena_alloc(arena, sizeof(*bl->e) * cap, 8);
	return bl->e ? 0 : -KW_ENOMEM;
}

static struct kw_hm_bl_entry *bl_find(const struct kw_hm_blacklist *bl, const uint8_t *peer,
				      size_t len)
{
	if (len > KW_HM_DHT_PEER_ID_MAX)
		return NULL;
	for (uint32_t i = 0; i < bl->cap; i++)
		if (bl->e[i].used && bl->e[i].len == len && !memcmp(bl->e[i].peer, peer, len))
			return &bl->e[i];
	return NULL;
}

void kw_hm_bl_failure(struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len, double now)
{
	struct kw_hm_bl_entry *e = bl_find(bl, peer, len);
	double dur;

	if (len > KW_HM_DHT_PEER_ID_MAX || bl->base_s <= 0)
		return;
	if (e && e->until >= now)
		return;                   /* already banned: the ban is not extended */
	if (!e) {
		for (uint32_t i = 0; i < bl->cap; i++)
			if (!bl->e[i].used || (!e || bl->e[i].until < e->until)) {
				e = &bl->e[i];
				if (!e->used)
					break;
			}
		memset(e, 0, sizeof(*e));
		e->used = 1;
		e->len = (uint8_t)len;
		memcpy(e->peer, peer, len);
	}
	dur = bl->base_s;
	for (uint32_t i = 0; i < e->failures && i < 64; i++)   /* backoff ** ban_counter */
		dur *= bl->backoff;
	e->until = now + dur;
	e->failures++;
}

void kw_hm_bl_success(struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len)
{
	struct kw_hm_bl_entry *e = bl_find(bl, peer, len);

	if (e)
		e->used = 0;
}

bool kw_hm_bl_banned(const struct kw_hm_blacklist *bl, const uint8_t *peer, size_t len,
		     double now)
{
	const struct kw_hm_bl_entry *e = bl_find(bl, peer, len);

	return e && e->until >= now;
}
