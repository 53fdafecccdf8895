/*
 * The full-stack simulation fixture (sim_node.h, doc/sim.md "Full-stack run"): the nodes,
 * the simulated network and the scheduling that the Kademlia run (kad_full.c) and the
 * Hivemind DHT run (hm_full.c) share.
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
 * delivery and the driver's next join or event. Nothing here depends on a pointer's value or
 * the wall clock, so the order of passes is a function of the configuration.
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
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "sim_node.h"

void kw_full_rng_seed(uint64_t seed);  /* tests/sim/full_rng.c */

void sim_fx_hash(struct sim_fx *fx, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		fx->hash ^= (uint8_t)(v >> (8 * i));
		fx->hash *= 0x100000001b3ull;
	}
}

uint64_t sim_fx_now(const struct sim_fx *fx)
{
	return fx->net.now_ms - fx->t0;
}

uint64_t sim_fx_wall_ms(void *ctx)
{
	return SIM_WALL_EPOCH_MS + ((struct sim_fx *)ctx)->net.now_ms;
}

/* ---- node heap (wake time, index) ------------------------------------------------------- */
static bool h_less(const struct sim_fx *f, unsigned a, unsigned b)
{
	const struct sim_node *x = &f->nodes[a], *y = &f->nodes[b];

	return x->wake != y->wake ? x->wake < y->wake : a < b;
}

static void h_set(struct sim_fx *f, unsigned pos, unsigned n)
{
	f->heap[pos] = n;
	f->nodes[n].hpos = (int)pos;
}

static void h_up(struct sim_fx *f, unsigned pos)
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

static void h_down(struct sim_fx *f, unsigned pos)
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

/* The node's next wake-up: now with a runnable task, else its earliest timer; never while it
 * is away. */
void sim_fx_reschedule(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];
	uint64_t wake = SIM_NEVER;

	if (n->up) {
		struct kw_loop *l = &n->node->loop;
		if (l->rq_head)
			wake = f->net.now_ms;
		else if (l->heap_len > 0)
			wake = l->heap[0]->deadline_ms;
	}
	if (n->hpos < 0) {
		if (wake == SIM_NEVER)
			return;
		n->wake = wake;
		h_set(f, f->heap_len++, i);
		h_up(f, f->heap_len - 1);
		return;
	}
	if (wake == SIM_NEVER) {  /* remove */
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

static void park(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];
	uint64_t wake = f->net.now_ms + 1;

	f->spin_parks++;
	if (n->hpos < 0) {
		n->wake = wake;
		h_set(f, f->heap_len++, i);
		h_up(f, f->heap_len - 1);
	} else if (n->wake > wake) {
		n->wake = wake;
		h_up(f, (unsigned)n->hpos);
	}
}

static void run_node(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];
	int ret;

	if (n->pass_ms != f->net.now_ms) {
		n->pass_ms = f->net.now_ms;
		n->pass_n = 0;
	}
	n->pass_n++;
	ret = kw_loop_run_once(&n->node->loop, 0);

	if (ret < 0) {
		fprintf(stderr, "%s: node %u loop failed: %s\n", f->p.name, i, kw_strerror(ret));
		abort();
	}
	f->node_passes++;
	sim_fx_hash(f, ((uint64_t)i << 40) ^ f->net.now_ms);
	sim_fx_reschedule(f, i);
}

/* ---- nodes ------------------------------------------------------------------------------ */
static uint32_t public_ip(struct sim_fx *f)
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
	struct sim_fx *f = ctx;
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a, h;
	uint32_t span = f->p.lat_max_ms - f->p.lat_min_ms;

	h = (lo << 32 | hi) ^ f->p.seed * 0x9e3779b97f4a7c15ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return f->p.lat_min_ms + (uint32_t)(h % ((uint64_t)span + 1));
}

/*
 * Routing tables, lookups and timers run at their Kconfig defaults; the store is small (the
 * runs put nothing into kad), as in kw_kad_sim's routing scenarios (doc/sim.md, "Memory per
 * node").
 */
static void kad_cfg(struct sim_fx *f, struct sim_node *n, struct kw_kad_cfg *c)
{
	kw_kad_cfg_default(c);
	c->self = kw_swarm_peer_id(n->sw);
	c->key = kw_swarm_key(n->sw);
	c->wall_ms = sim_fx_wall_ms;
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

/* Node, swarm, identify, kad, listener (the identity is made on the first start only). */
static int node_stack(struct sim_fx *f, unsigned i, bool first)
{
	struct sim_node *n = &f->nodes[i];
	struct kw_node_config nc;
	struct kw_swarm_limits lim;
	struct kw_kad_cfg kc;
	char listen[64];
	int ret = 0;

	kw_node_config_defaults(&nc);
	n->node = kw_node_create_heap(f->arena_bytes ? f->arena_bytes : PROBE_ARENA,
				      &n->sim.sys, &nc);
	if (!n->node) {
		fprintf(stderr, "%s: no memory for node %u (%zu arena bytes)\n", f->p.name, i,
			f->arena_bytes);
		abort();
	}
	kw_swarm_limits_default(&lim);
	if (first)
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
	if (ret < 0)
		fprintf(stderr, "%s: node %u does not start: %s (arena %zu of %zu bytes)\n",
			f->p.name, i, kw_strerror(ret), n->node->arena.used, n->node->arena.size);
	return ret;
}

/* kad bootstrap through up to p.bootstrap distinct other nodes that are up, drawn from
 * [0, range) (the earlier nodes at a first join, every node at a rejoin). */
static void node_bootstrap(struct sim_fx *f, unsigned i, unsigned range)
{
	struct sim_node *n = &f->nodes[i];
	unsigned avail = 0, want;

	for (unsigned j = 0; j < range; j++)
		avail += j != i && f->nodes[j].up;
	want = f->p.bootstrap < avail ? f->p.bootstrap : avail;
	if (want > KW_KAD_BOOTSTRAP_MAX)
		want = KW_KAD_BOOTSTRAP_MAX;
	n->n_boot = 0;
	while (n->n_boot < want) {
		unsigned b = (unsigned)(kw_prng_next(&f->rng) % range);
		bool dup = b == i || !f->nodes[b].up;
		struct kw_multiaddr ma;
		for (unsigned j = 0; j < n->n_boot; j++)
			dup |= n->boot[j] == b;
		if (dup)
			continue;
		n->boot[n->n_boot++] = b;
		if (kw_maddr_from_text(f->nodes[b].addr, &ma, NULL, 0) != 0 ||
		    kw_kad_bootstrap_add(n->kad, &ma) != 0) {
			fprintf(stderr, "%s: bootstrap_add failed for node %u\n", f->p.name, i);
			abort();
		}
	}
}

static void node_start(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];

	n->hpos = -1;
	n->ip = public_ip(f);
	kw_sim_init(&n->sim, &f->net);
	n->sim.src_ip = n->ip;
	n->sim.user = n;
	if (node_stack(f, i, true) < 0)
		abort();
	n->up = true;
	f->n_started++;
	node_bootstrap(f, i, i);
	if (f->h.node_up && f->h.node_up(f->h.ctx, i) < 0) {
		fprintf(stderr, "%s: node %u: the driver's services do not start\n", f->p.name, i);
		abort();
	}
	if (f->arena_bytes == 0)
		f->arena_bytes = KW_ALIGN_UP(n->node->arena.used, 4096);
	if (i == 0 && getenv("KW_FULL_POOLS")) {
		fprintf(stderr, "node 0 arena: %zu bytes used after start-up\n", n->node->arena.used);
		kw_node_pools_foreach(n->node, print_pool, NULL);
	}
	sim_fx_reschedule(f, i);
}

static void node_stop(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];

	if (f->h.node_down)
		f->h.node_down(f->h.ctx, i);
	kw_kad_swarm_destroy(n->kad);
	kw_swarm_destroy(n->sw);
}

void sim_node_leave(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];

	if (!n->up)
		return;
	node_stop(f, i);
	for (int pass = 0; pass < 4; pass++)  /* the closes and frees the swarm queued */
		kw_loop_run_once(&n->node->loop, 0);
	n->up = false;
	sim_fx_reschedule(f, i);               /* out of the heap */
	kw_node_destroy_heap(n->node);
	n->node = NULL;
	n->sw = NULL;
	n->id = NULL;
	n->kad = NULL;
	sim_fx_hash(f, (uint64_t)i << 40 ^ 0xdeadull << 48 ^ f->net.now_ms);
}

int sim_node_rejoin(struct sim_fx *f, unsigned i)
{
	struct sim_node *n = &f->nodes[i];
	int ret;

	if (n->up)
		return -KW_EBUSY;
	ret = node_stack(f, i, false);
	if (ret < 0) {
		kw_node_destroy_heap(n->node);
		n->node = NULL;
		return ret;
	}
	n->up = true;
	node_bootstrap(f, i, f->n_started);
	if (f->h.node_up) {
		ret = f->h.node_up(f->h.ctx, i);
		if (ret < 0)
			return ret;
	}
	sim_fx_hash(f, (uint64_t)i << 40 ^ 0xbeefull << 48 ^ f->net.now_ms);
	sim_fx_reschedule(f, i);
	return 0;
}

int sim_fx_init(struct sim_fx *f, const struct sim_params *p, const struct sim_hooks *h)
{
	struct kw_arena a;
	int n_socks, ret;

	memset(f, 0, sizeof(*f));
	f->p = *p;
	f->h = *h;
	f->hash = 0xcbf29ce484222325ull;
	kw_full_rng_seed(p->seed);
	kw_prng_seed(&f->rng, p->seed);
	if (p->nodes < 2 || p->lat_max_ms < p->lat_min_ms)
		return -KW_EINVAL;
	n_socks = (int)(p->nodes * p->socks_per_node);
	f->net_bytes = (size_t)n_socks * (p->ring_bytes + 1024) + 4096;
	f->net_mem = calloc(1, f->net_bytes);  /* known zero: rings are touched only when used */
	f->nodes = calloc(p->nodes, sizeof(*f->nodes));
	f->heap = calloc(p->nodes, sizeof(*f->heap));
	if (!f->net_mem || !f->nodes || !f->heap) {
		ret = -KW_ENOMEM;
		goto fail;
	}
	kw_arena_init_zeroed(&a, f->net_mem, f->net_bytes);
	ret = kw_sim_net_init(&f->net, &a, n_socks, p->ring_bytes);
	if (ret < 0)
		goto fail;
	f->net.track_active = true;
	f->net.latency_ms = link_latency;
	f->net.latency_ctx = f;
	f->arena_bytes = p->arena_bytes;
	f->t0 = f->net.now_ms;
	f->next_join = f->t0;
	return 0;
fail:
	fprintf(stderr, "%s: set-up failed: %s\n", p->name, kw_strerror(ret));
	free(f->heap);
	free(f->nodes);
	free(f->net_mem);
	memset(f, 0, sizeof(*f));
	return ret;
}

static void spin_abort(struct sim_fx *f, uint64_t now)
{
	struct kw_sim *sv = kw_sim_net_next_active(&f->net);

	fprintf(stderr, "%s: no progress at %llu ms (a loop spins)\n", f->p.name,
		(unsigned long long)now);
	if (sv) {
		struct kw_sys_event ev[8];
		int ne = sv->sys.ops->wait(&sv->sys, ev, 8, 0);
		for (int e = 0; e < ne; e++) {
			struct kw_watch *w = ev[e].ptr;
			fprintf(stderr, "  node %u fd %d watch %#x ready %#x\n",
				(unsigned)((struct sim_node *)sv->user - f->nodes), w->fd, w->events,
				ev[e].events);
		}
	}
	abort();
}

int sim_fx_run(struct sim_fx *f)
{
	uint64_t last_progress = 0, same_ms_passes = 0, last_ms = 0;

	for (;;) {
		struct kw_sim *v;
		uint64_t now, t, drv;

		kw_sim_net_deliver(&f->net);
		now = f->net.now_ms;
		if (now != last_ms) {
			last_ms = now;
			same_ms_passes = 0;
		} else if (++same_ms_passes > 2000000ull) {
			spin_abort(f, now);
		}
		v = kw_sim_net_next_active(&f->net);
		if (v) {
			unsigned i = (unsigned)((struct sim_node *)v->user - f->nodes);
			if (!f->nodes[i].up)
				continue;  /* away: its sockets are closed */
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
			if (f->n_started == f->p.nodes) {
				f->next_join = SIM_NEVER;
				if (f->h.joined_all)
					f->h.joined_all(f->h.ctx);
			} else {
				f->next_join = now + f->p.join_interval_ms;
			}
			continue;
		}
		drv = f->h.next(f->h.ctx);
		if (drv <= now) {
			f->h.fire(f->h.ctx);
			continue;
		}
		if (f->n_started == f->p.nodes && f->h.done(f->h.ctx))
			break;
		t = f->heap_len > 0 ? f->nodes[f->heap[0]].wake : SIM_NEVER;
		if (kw_sim_net_next_delivery(&f->net) < t)
			t = kw_sim_net_next_delivery(&f->net);
		if (f->next_join < t)
			t = f->next_join;
		if (drv < t)
			t = drv;
		if (t == SIM_NEVER) {
			fprintf(stderr, "%s: nothing left to run before the driver is done\n",
				f->p.name);
			break;
		}
		f->net.now_ms = t;
		if ((size_t)kw_sim_open_sockets(&f->net) > f->socks_open_max)
			f->socks_open_max = (size_t)kw_sim_open_sockets(&f->net);
		if (f->p.progress && t - last_progress >= 10000) {
			char more[160] = "";
			last_progress = t;
			if (f->h.status)
				f->h.status(f->h.ctx, more, sizeof(more));
			fprintf(stderr, "%s: t=%llu s nodes %u sockets %d passes %llu %s\n",
				f->p.name, (unsigned long long)((t - f->t0) / 1000), f->n_started,
				kw_sim_open_sockets(&f->net), (unsigned long long)f->node_passes,
				more);
		}
	}
	return 0;
}

int sim_fx_destroy(struct sim_fx *f)
{
	int left;

	/* tear down: every node stops, the sockets close, the memory goes back */
	for (unsigned i = 0; i < f->n_started; i++)
		if (f->nodes[i].up)
			node_stop(f, i);
	for (int pass = 0; pass < 4; pass++)
		for (unsigned i = 0; i < f->n_started; i++)
			if (f->nodes[i].up)
				kw_loop_run_once(&f->nodes[i].node->loop, 0);
	left = kw_sim_open_sockets(&f->net);
	for (unsigned i = 0; i < f->n_started; i++)
		kw_node_destroy_heap(f->nodes[i].node);
	free(f->heap);
	free(f->nodes);
	free(f->net_mem);
	memset(f, 0, sizeof(*f));
	return left;
}
