/*
 * The full-stack Kademlia simulation's engine (kad_full.h, doc/sim.md "Full-stack run").
 *
 * Every node is what app/dht.c builds on a board, minus the application: kw_node with its own
 * arena and loop, kw_swarm (TCP, Noise, yamux, multistream-select), identify, and the
 * Kademlia core in server mode over its libp2p transport (net/kad/swarm.c). The nodes'
 * sys seams are views of one kernel/sys_sim.c network with per-link latency.
 *
 * Scheduling: N loops share one virtual clock. A node's loop is run (one pass, no waiting)
 * only when it may have work: sys_sim queues a view on its active list when a socket of it
 * may have become ready, and a min-heap of nodes keyed by (next timer deadline, or now with a
 * runnable task; node index) holds the rest. After each pass the node's key is recomputed;
 * the driver's own actions on a node (bootstrap, starting a lookup) recompute it too. When no
 * node has work now, the clock jumps to the earliest of the next node deadline, the next byte
 * delivery and the driver's next join or lookup. Nothing here depends on a pointer's value or
 * the wall clock, so the order of passes is a function of the configuration.
 *
 * Allocation: start-up only (node blocks, the network, the tables here), as in a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/sim.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "kad_full.h"

#define WALL_EPOCH_MS 1767225600000ull  /* 2026-01-01: record expiry needs a Unix time */
#define NEVER UINT64_MAX

struct fnode {
	struct kw_sim sim;
	struct kw_node *node;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_privkey key;
	uint32_t ip;
	char addr[160];          /* listen address with /p2p/ */
	uint64_t wake;           /* heap key */
	int hpos;                /* index in the node heap, -1: not in it */
	uint64_t pass_ms;        /* virtual ms of the passes counted in pass_n */
	unsigned pass_n;
};

struct lookup {
	unsigned from, to;
	int err;
	bool done, found;
	unsigned rounds, msgs;
};

struct full {
	struct kw_kad_full_cfg cfg;
	struct kw_kad_full_report *rep;
	struct kw_sim_net net;
	void *net_mem;
	struct fnode *nodes;
	unsigned n_started;
	unsigned *heap;          /* node heap */
	unsigned heap_len;
	struct lookup *lk;
	unsigned lk_started, lk_done;
	uint64_t next_join, next_lookup;
	uint64_t t0;
	uint64_t hash;
	struct kw_prng rng;      /* the driver's own draws (bootstrap peers, lookup ends) */
};

static struct full *g_full;  /* for the callbacks without a context */

static void hash_u64(struct full *f, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		f->hash ^= (uint8_t)(v >> (8 * i));
		f->hash *= 0x100000001b3ull;
	}
}

/* ---- node heap (wake time, index) ------------------------------------------------------- */
static bool h_less(const struct full *f, unsigned a, unsigned b)
{
	const struct fnode *x = &f->nodes[a], *y = &f->nodes[b];

	return x->wake != y->wake ? x->wake < y->wake : a < b;
}

static void h_set(struct full *f, unsigned pos, unsigned n)
{
	f->heap[pos] = n;
	f->nodes[n].hpos = (int)pos;
}

static void h_up(struct full *f, unsigned pos)
{
	unsigned n = f->heap[pos];

	while (pos > 0) {
		unsigned p = (pos - 1) / 2;
		if (!h_less(f, n, f->heap[p]))
			break;
		h_set(f, pos, f->heap[p]);
		pos = p;
	}
	h_set(f, pos, n);
}

static void h_down(struct full *f, unsigned pos)
{
	unsigned n = f->heap[pos];

	for (;;) {
		unsigned c = 2 * pos + 1;
		if (c >= f->heap_len)
			break;
		if (c + 1 < f->heap_len && h_less(f, f->heap[c + 1], f->heap[c]))
			c++;
		if (!h_less(f, f->heap[c], n))
			break;
		h_set(f, pos, f->heap[c]);
		pos = c;
	}
	h_set(f, pos, n);
}

/* The node's next wake-up: now with a runnable task, else its earliest timer. */
static void reschedule(struct full *f, unsigned i)
{
	struct fnode *n = &f->nodes[i];
	struct kw_loop *l = &n->node->loop;
	uint64_t wake = NEVER;

	if (l->rq_head)
		wake = f->net.now_ms;
	else if (l->heap_len > 0)
		wake = l->heap[0]->deadline_ms;
	if (n->hpos < 0) {
		if (wake == NEVER)
			return;
		n->wake = wake;
		h_set(f, f->heap_len++, i);
		h_up(f, f->heap_len - 1);
		return;
	}
	if (wake == NEVER) {  /* remove */
		unsigned pos = (unsigned)n->hpos, last = f->heap[--f->heap_len];
		n->hpos = -1;
		if (last == i)
			return;
		h_set(f, pos, last);
		h_up(f, pos);
		h_down(f, (unsigned)f->nodes[last].hpos);
		return;
	}
	n->wake = wake;
	h_up(f, (unsigned)n->hpos);
	h_down(f, (unsigned)n->hpos);
}

/*
 * A node whose loop is woken again and again within one virtual millisecond (a socket that
 * stays ready while the node does not consume it: see "Spinning loops" in doc/sim.md) is
 * parked until the next millisecond, as a real loop spinning would see the clock move; the
 * passes it would have spun are not simulated, and the parks are counted.
 */
#define SPIN_PASSES 64

static void park(struct full *f, unsigned i)
{
	struct fnode *n = &f->nodes[i];
	uint64_t wake = f->net.now_ms + 1;

	f->rep->spin_parks++;
	if (n->hpos < 0) {
		n->wake = wake;
		h_set(f, f->heap_len++, i);
		h_up(f, f->heap_len - 1);
	} else if (n->wake > wake) {
		n->wake = wake;
		h_up(f, (unsigned)n->hpos);
	}
}

static void run_node(struct full *f, unsigned i)
{
	struct fnode *n = &f->nodes[i];
	int ret;

	if (n->pass_ms != f->net.now_ms) {
		n->pass_ms = f->net.now_ms;
		n->pass_n = 0;
	}
	n->pass_n++;
	ret = kw_loop_run_once(&n->node->loop, 0);

	if (ret < 0) {
		fprintf(stderr, "kad-full: node %u loop failed: %s\n", i, kw_strerror(ret));
		abort();
	}
	f->rep->node_passes++;
	hash_u64(f, ((uint64_t)i << 40) ^ f->net.now_ms);
	reschedule(f, i);
}

/* ---- nodes ------------------------------------------------------------------------------ */
static uint64_t wall_ms(void *ctx)
{
	return WALL_EPOCH_MS + ((struct full *)ctx)->net.now_ms;
}

static uint32_t public_ip(struct full *f)
{
	for (;;) {
		uint32_t ip = (uint32_t)kw_prng_next(&f->rng);
		uint8_t a = (uint8_t)(ip >> 24), b = (uint8_t)(ip >> 16);
		bool dup = false;
		if (a == 0 || a == 10 || a == 100 || a == 127 || a == 169 || a >= 224 ||
		    (a == 172 && (b & 0xf0) == 16) || (a == 192 && b == 168))
			continue;
		for (unsigned j = 0; j < f->n_started && !dup; j++)
			dup = f->nodes[j].ip == ip;
		if (!dup)
			return ip;
	}
}

/* Fixed per link (either direction), uniform in [min, max], from the seed. */
static uint32_t link_latency(void *ctx, uint32_t a, uint32_t b)
{
	struct full *f = ctx;
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a, h;
	uint32_t span = f->cfg.lat_max_ms - f->cfg.lat_min_ms;

	h = (lo << 32 | hi) ^ f->cfg.seed * 0x9e3779b97f4a7c15ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return f->cfg.lat_min_ms + (uint32_t)(h % ((uint64_t)span + 1));
}

/*
 * Routing tables, lookups and timers run at their Kconfig defaults; the store is small (the
 * run puts nothing), as in kw_kad_sim's routing scenarios (doc/sim.md, "Memory per node").
 */
static void kad_cfg(struct full *f, struct fnode *n, struct kw_kad_cfg *c)
{
	kw_kad_cfg_default(c);
	c->self = kw_swarm_peer_id(n->sw);
	c->key = kw_swarm_key(n->sw);
	c->wall_ms = wall_ms;
	c->wall_ctx = f;
	c->store.max_records = 8;
	c->store.max_record_bytes = 4096;
	c->store.max_total_bytes = 16384;
	c->store.max_records_per_peer = 4;
	c->store.max_providers = 8;
	c->store.max_providers_per_key = 4;
	c->store.max_providers_per_peer = 4;
}

/*
 * Arena per node: what node 0 takes at start-up (every pool is carved then; nothing is
 * allocated later), measured on a 256 MiB probe arena whose untouched pages cost nothing.
 * At host_defconfig that is about 11 MiB, most of it the swarm's socket buffers and yamux
 * chunks (doc/sim.md, "Full-stack run").
 */
#define PROBE_ARENA ((size_t)256 << 20)

static void print_pool(const struct kw_pool *p, void *arg)
{
	fprintf(stderr, "  pool %-24s %6zu x %7zu = %9zu bytes, high %zu\n", p->name, p->count,
		p->stride, p->count * p->stride, p->high);
}

static void node_start(struct full *f, unsigned i)
{
	struct fnode *n = &f->nodes[i];
	struct kw_node_config nc;
	struct kw_swarm_limits lim;
	struct kw_kad_cfg kc;
	char listen[64];
	int ret;

	n->hpos = -1;
	n->ip = public_ip(f);
	kw_sim_init(&n->sim, &f->net);
	n->sim.src_ip = n->ip;
	n->sim.user = n;
	kw_node_config_defaults(&nc);
	n->node = kw_node_create_heap(f->rep->arena_bytes ? f->rep->arena_bytes : PROBE_ARENA,
				      &n->sim.sys, &nc);
	if (!n->node) {
		fprintf(stderr, "kad-full: no memory for node %u (%zu arena bytes)\n", i,
			f->rep->arena_bytes);
		abort();
	}
	kw_swarm_limits_default(&lim);
	ret = kw_key_generate(KW_KEY_ED25519, 0, &n->key);
	if (ret == 0)
		ret = kw_swarm_create(n->node, &n->key, &lim, &n->sw);
	if (ret == 0)
		ret = kw_identify_init(n->sw, &n->id);
	if (ret == 0) {
		kad_cfg(f, n, &kc);
		ret = kw_kad_swarm_create(n->sw, n->id, &n->node->arena, &kc, &n->kad);
	}
	snprintf(listen, sizeof(listen), "/ip4/%u.%u.%u.%u/tcp/4001", n->ip >> 24,
		 (n->ip >> 16) & 255, (n->ip >> 8) & 255, n->ip & 255);
	if (ret == 0)
		ret = kw_swarm_listen(n->sw, listen);
	if (ret == 0) {
		char pid[80];
		ret = kw_peer_id_to_text(kw_swarm_peer_id(n->sw), pid, sizeof(pid));
		if (ret >= 0) {
			snprintf(n->addr, sizeof(n->addr), "%s/p2p/%s", listen, pid);
			ret = 0;
		}
	}
	if (ret < 0) {
		fprintf(stderr, "kad-full: node %u does not start: %s (arena %zu of %zu bytes)\n",
			i, kw_strerror(ret), n->node->arena.used, n->node->arena.size);
		abort();
	}
	f->n_started++;
	if (f->rep->arena_bytes == 0)
		f->rep->arena_bytes = KW_ALIGN_UP(n->node->arena.used, 4096);
	if (i == 0 && getenv("KW_FULL_POOLS")) {
		fprintf(stderr, "node 0 arena: %zu bytes used after start-up\n", n->node->arena.used);
		kw_node_pools_foreach(n->node, print_pool, NULL);
	}
	/* bootstrap through up to cfg.bootstrap distinct earlier nodes */
	if (i > 0) {
		unsigned want = f->cfg.bootstrap < i ? f->cfg.bootstrap : i, got = 0;
		unsigned chosen[KW_KAD_BOOTSTRAP_MAX];
		if (want > KW_KAD_BOOTSTRAP_MAX)
			want = KW_KAD_BOOTSTRAP_MAX;
		while (got < want) {
			unsigned b = (unsigned)(kw_prng_next(&f->rng) % i);
			bool dup = false;
			struct kw_multiaddr ma;
			for (unsigned j = 0; j < got; j++)
				dup |= chosen[j] == b;
			if (dup)
				continue;
			chosen[got++] = b;
			if (kw_maddr_from_text(f->nodes[b].addr, &ma, NULL, 0) != 0 ||
			    kw_kad_bootstrap_add(n->kad, &ma) != 0) {
				fprintf(stderr, "kad-full: bootstrap_add failed for node %u\n", i);
				abort();
			}
		}
	}
	reschedule(f, i);
}

/* ---- lookups ---------------------------------------------------------------------------- */
static void on_lookup(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct full *f = g_full;
	struct lookup *lk = user;
	const struct kw_peer_id *want = kw_swarm_peer_id(f->nodes[lk->to].sw);

	lk->done = true;
	lk->err = r->err;
	lk->rounds = r->rounds;
	lk->msgs = r->messages;
	for (size_t j = 0; r->err == 0 && j < r->n_peers; j++)
		if (r->peers[j].id_len == want->len &&
		    memcmp(r->peers[j].id, want->bytes, want->len) == 0)
			lk->found = true;
	f->lk_done++;
	hash_u64(f, (uint64_t)(lk - f->lk) << 32 ^ (uint64_t)(uint32_t)r->err);
	hash_u64(f, (uint64_t)r->rounds << 32 ^ r->messages ^ (uint64_t)lk->found << 63);
}

static void lookup_start(struct full *f)
{
	struct lookup *lk = &f->lk[f->lk_started++];
	int ret;

	lk->from = (unsigned)(kw_prng_next(&f->rng) % f->n_started);
	do
		lk->to = (unsigned)(kw_prng_next(&f->rng) % f->n_started);
	while (lk->to == lk->from && f->n_started > 1);
	ret = kw_kad_find_peer(f->nodes[lk->from].kad, kw_swarm_peer_id(f->nodes[lk->to].sw),
			       on_lookup, lk);
	if (ret < 0) {  /* no free lookup slot: counted apart, not a network failure */
		lk->done = true;
		lk->err = ret;
		f->lk_done++;
		f->rep->lookups_refused++;
		hash_u64(f, (uint64_t)(uint32_t)ret);
	}
	reschedule(f, lk->from);
}

static int cmp_u(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

static unsigned pct(unsigned *v, unsigned n, unsigned p)
{
	if (n == 0)
		return 0;
	return v[(size_t)((uint64_t)(n - 1) * p / 100)];
}

static void report(struct full *f)
{
	struct kw_kad_full_report *r = f->rep;
	unsigned *rounds = calloc(f->cfg.lookups + 1, sizeof(unsigned));
	unsigned *msgs = calloc(f->cfg.lookups + 1, sizeof(unsigned));
	unsigned n = 0;
	double members = 0;

	if (!rounds || !msgs)
		abort();
	r->lookups_started = f->lk_started;
	for (unsigned i = 0; i < f->lk_started; i++) {
		struct lookup *lk = &f->lk[i];
		if (lk->err == 0 && lk->found) {
			r->lookups_ok++;
			rounds[n] = lk->rounds;
			msgs[n++] = lk->msgs;
			if (lk->rounds > r->rounds_max)
				r->rounds_max = lk->rounds;
		} else if (lk->err != -KW_ELIMIT) {
			r->lookups_failed++;
		}
	}
	qsort(rounds, n, sizeof(unsigned), cmp_u);
	qsort(msgs, n, sizeof(unsigned), cmp_u);
	r->rounds_median = pct(rounds, n, 50);
	r->rounds_p99 = pct(rounds, n, 99);
	r->msgs_median = pct(msgs, n, 50);
	r->msgs_p99 = pct(msgs, n, 99);
	free(rounds);
	free(msgs);
	for (unsigned i = 0; i < f->n_started; i++) {
		struct fnode *nd = &f->nodes[i];
		struct kw_kad_stats ks;
		struct kw_swarm_stats ss;
		size_t m = kw_kad_rt_size(kw_kad_table(nd->kad));
		kw_kad_get_stats(nd->kad, &ks);
		kw_swarm_get_stats(nd->sw, &ss);
		r->kad_requests += ks.requests_out;
		r->conns_dialed += ss.conns_dialed;
		r->conns_accepted += ss.conns_accepted;
		r->conns_failed += ss.conns_failed;
		r->conns_refused += ss.conns_refused_limit;
		r->conns_evicted += ss.conns_evicted;
		members += (double)m;
		if (nd->node->arena.high > r->arena_used_max)
			r->arena_used_max = nd->node->arena.high;
		hash_u64(f, ks.requests_out ^ (uint64_t)ks.requests_in << 32 ^ (uint64_t)m << 56);
	}
	r->table_mean = f->n_started ? members / f->n_started : 0;
	r->nodes_started = f->n_started;
	r->bytes_marks_merged = f->net.marks_merged;
	r->trace_hash = f->hash;
}

void kw_kad_full_cfg_default(struct kw_kad_full_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->nodes = 1000;
	c->lookups = 2000;
	c->bootstrap = 3;
	c->seed = 1;
	c->lat_min_ms = 20;
	c->lat_max_ms = 200;
	c->join_interval_ms = 20;
	c->settle_ms = 10000;
	c->phase_ms = 20000;
	c->ring_bytes = 16384;
	c->socks_per_node = 260;
}

int kw_kad_full_run(const struct kw_kad_full_cfg *cfg, struct kw_kad_full_report *rep)
{
	struct full *f = calloc(1, sizeof(*f));
	struct kw_arena a;
	size_t net_bytes;
	int n_socks, ret;
	uint64_t last_progress = 0, same_ms_passes = 0, last_ms = 0;

	if (!f)
		return -KW_ENOMEM;
	memset(rep, 0, sizeof(*rep));
	f->cfg = *cfg;
	f->rep = rep;
	f->hash = 0xcbf29ce484222325ull;
	g_full = f;
	kw_full_rng_seed(cfg->seed);
	kw_prng_seed(&f->rng, cfg->seed);
	if (cfg->nodes < 2 || cfg->lat_max_ms < cfg->lat_min_ms || cfg->phase_ms == 0) {
		free(f);
		return -KW_EINVAL;
	}
	n_socks = (int)(cfg->nodes * cfg->socks_per_node);
	net_bytes = (size_t)n_socks * (cfg->ring_bytes + 1024) + 4096;
	rep->net_bytes = net_bytes;
	f->net_mem = calloc(1, net_bytes);  /* known zero: rings are touched only when used */
	f->nodes = calloc(cfg->nodes, sizeof(*f->nodes));
	f->heap = calloc(cfg->nodes, sizeof(*f->heap));
	f->lk = calloc(cfg->lookups + 1, sizeof(*f->lk));
	if (!f->net_mem || !f->nodes || !f->heap || !f->lk) {
		ret = -KW_ENOMEM;
		goto out;
	}
	kw_arena_init_zeroed(&a, f->net_mem, net_bytes);
	ret = kw_sim_net_init(&f->net, &a, n_socks, cfg->ring_bytes);
	if (ret < 0)
		goto out;
	f->net.track_active = true;
	f->net.latency_ms = link_latency;
	f->net.latency_ctx = f;
	rep->arena_bytes = cfg->arena_bytes;
	f->t0 = f->net.now_ms;
	f->next_join = f->t0;
	f->next_lookup = NEVER;

	for (;;) {
		struct kw_sim *v;
		uint64_t now, t;

		kw_sim_net_deliver(&f->net);
		now = f->net.now_ms;
		if (now != last_ms) {
			last_ms = now;
			same_ms_passes = 0;
		} else if (++same_ms_passes > 2000000ull) {
			struct kw_sim *sv = kw_sim_net_next_active(&f->net);
			fprintf(stderr, "kad-full: no progress at %llu ms (a loop spins)\n",
				(unsigned long long)now);
			if (sv) {
				struct kw_sys_event ev[8];
				int ne = sv->sys.ops->wait(&sv->sys, ev, 8, 0);
				for (int e = 0; e < ne; e++) {
					struct kw_watch *w = ev[e].ptr;
					fprintf(stderr, "  node %u fd %d watch %#x ready %#x\n",
						(unsigned)((struct fnode *)sv->user - f->nodes),
						w->fd, w->events, ev[e].events);
				}
			}
			abort();
		}
		v = kw_sim_net_next_active(&f->net);
		if (v) {
			unsigned i = (unsigned)((struct fnode *)v->user - f->nodes);
			if (f->nodes[i].pass_ms == now && f->nodes[i].pass_n >= SPIN_PASSES)
				park(f, i);
			else
				run_node(f, i);
			continue;
		}
		if (f->heap_len > 0 && f->nodes[f->heap[0]].wake <= now) {
			run_node(f, f->heap[0]);
			continue;
		}
		if (f->next_join <= now) {
			node_start(f, f->n_started);
			if (f->n_started == cfg->nodes) {
				f->next_join = NEVER;
				f->next_lookup = cfg->lookups ? now + cfg->settle_ms : NEVER;
			} else {
				f->next_join = now + cfg->join_interval_ms;
			}
			continue;
		}
		if (f->next_lookup <= now) {
			lookup_start(f);
			f->next_lookup = f->lk_started < cfg->lookups ?
						 now + cfg->phase_ms / cfg->lookups : NEVER;
			continue;
		}
		if (f->n_started == cfg->nodes && f->lk_done == cfg->lookups)
			break;
		t = f->heap_len > 0 ? f->nodes[f->heap[0]].wake : NEVER;
		if (kw_sim_net_next_delivery(&f->net) < t)
			t = kw_sim_net_next_delivery(&f->net);
		if (f->next_join < t)
			t = f->next_join;
		if (f->next_lookup < t)
			t = f->next_lookup;
		if (t == NEVER) {
			fprintf(stderr, "kad-full: nothing left to run with %u of %u lookups done\n",
				f->lk_done, cfg->lookups);
			break;
		}
		f->net.now_ms = t;
		if ((size_t)kw_sim_open_sockets(&f->net) > rep->socks_open_max)
			rep->socks_open_max = (size_t)kw_sim_open_sockets(&f->net);
		if (cfg->progress && t - last_progress >= 10000) {
			last_progress = t;
			fprintf(stderr, "kad-full: t=%llu s nodes %u lookups %u/%u sockets %d passes %llu\n",
				(unsigned long long)((t - f->t0) / 1000), f->n_started, f->lk_done,
				f->lk_started, kw_sim_open_sockets(&f->net),
				(unsigned long long)rep->node_passes);
		}
	}
	rep->virtual_ms = f->net.now_ms - f->t0;
	report(f);

	/* tear down: every node stops, the sockets close, the memory goes back */
	for (unsigned i = 0; i < f->n_started; i++) {
		kw_kad_swarm_destroy(f->nodes[i].kad);
		kw_swarm_destroy(f->nodes[i].sw);
	}
	for (int pass = 0; pass < 4; pass++)
		for (unsigned i = 0; i < f->n_started; i++)
			kw_loop_run_once(&f->nodes[i].node->loop, 0);
	for (unsigned i = 0; i < f->n_started; i++)
		kw_node_destroy_heap(f->nodes[i].node);
	ret = 0;
out:
	if (ret < 0)
		fprintf(stderr, "kad-full: set-up failed: %s\n", kw_strerror(ret));
	free(f->lk);
	free(f->heap);
	free(f->nodes);
	free(f->net_mem);
	free(f);
	g_full = NULL;
	return ret;
}
