/*
 * The full-stack Kademlia simulation's driver (kad_full.h, doc/sim.md "Full-stack run"): the
 * nodes, network and scheduling are the shared fixture (sim_node.c); this file adds the
 * lookups. After the last join and settle_ms, `lookups` find-peer lookups run from random
 * nodes for random other nodes, evenly spread over phase_ms; the report counts those that
 * found their peer, with the core's rounds and messages.
 *
 * Allocation: start-up only (the lookup table here), as in a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/net/kad.h>
#include <kw/net/swarm.h>

#include "kad_full.h"
#include "sim_node.h"

struct lookup {
	unsigned from, to;
	int err;
	bool done, found;
	unsigned rounds, msgs;
};

struct full {
	struct sim_fx fx;
	struct kw_kad_full_cfg cfg;
	struct kw_kad_full_report *rep;
	struct lookup *lk;
	unsigned lk_started, lk_done;
	uint64_t next_lookup;
};

static struct full *g_full;  /* for the callbacks without a context */

/* ---- lookups ---------------------------------------------------------------------------- */
static void on_lookup(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct full *f = g_full;
	struct lookup *lk = user;
	const struct kw_peer_id *want = kw_swarm_peer_id(f->fx.nodes[lk->to].sw);

	lk->done = true;
	lk->err = r->err;
	lk->rounds = r->rounds;
	lk->msgs = r->messages;
	for (size_t j = 0; r->err == 0 && j < r->n_peers; j++)
		if (r->peers[j].id_len == want->len &&
		    memcmp(r->peers[j].id, want->bytes, want->len) == 0)
			lk->found = true;
	f->lk_done++;
	sim_fx_hash(&f->fx, (uint64_t)(lk - f->lk) << 32 ^ (uint64_t)(uint32_t)r->err);
	sim_fx_hash(&f->fx, (uint64_t)r->rounds << 32 ^ r->messages ^ (uint64_t)lk->found << 63);
}

static void lookup_start(struct full *f)
{
	struct sim_fx *fx = &f->fx;
	struct lookup *lk = &f->lk[f->lk_started++];
	int ret;

	lk->from = (unsigned)(kw_prng_next(&fx->rng) % fx->n_started);
	do
		lk->to = (unsigned)(kw_prng_next(&fx->rng) % fx->n_started);
	while (lk->to == lk->from && fx->n_started > 1);
	ret = kw_kad_find_peer(fx->nodes[lk->from].kad, kw_swarm_peer_id(fx->nodes[lk->to].sw),
			       on_lookup, lk);
	if (ret < 0) {  /* no free lookup slot: counted apart, not a network failure */
		lk->done = true;
		lk->err = ret;
		f->lk_done++;
		f->rep->lookups_refused++;
		sim_fx_hash(fx, (uint64_t)(uint32_t)ret);
	}
	sim_fx_reschedule(fx, lk->from);
}

/* ---- the driver hooks (sim_node.h) --------------------------------------------------------- */
static void on_joined_all(void *ctx)
{
	struct full *f = ctx;

	f->next_lookup = f->cfg.lookups ? f->fx.net.now_ms + f->cfg.settle_ms : SIM_NEVER;
}

static uint64_t next_event(void *ctx)
{
	return ((struct full *)ctx)->next_lookup;
}

static void fire(void *ctx)
{
	struct full *f = ctx;

	lookup_start(f);
	f->next_lookup = f->lk_started < f->cfg.lookups ?
				 f->fx.net.now_ms + f->cfg.phase_ms / f->cfg.lookups : SIM_NEVER;
}

static bool all_done(void *ctx)
{
	struct full *f = ctx;

	return f->lk_done == f->cfg.lookups;
}

static void status(void *ctx, char *buf, size_t cap)
{
	struct full *f = ctx;

	snprintf(buf, cap, "lookups %u/%u", f->lk_done, f->lk_started);
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
	struct sim_fx *fx = &f->fx;
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
	for (unsigned i = 0; i < fx->n_started; i++) {
		struct sim_node *nd = &fx->nodes[i];
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
		sim_fx_hash(fx, ks.requests_out ^ (uint64_t)ks.requests_in << 32 ^ (uint64_t)m << 56);
	}
	r->table_mean = fx->n_started ? members / fx->n_started : 0;
	r->nodes_started = fx->n_started;
	r->bytes_marks_merged = fx->net.marks_merged;
	r->node_passes = fx->node_passes;
	r->spin_parks = fx->spin_parks;
	r->arena_bytes = fx->arena_bytes;
	r->socks_open_max = fx->socks_open_max;
	r->net_bytes = fx->net_bytes;
	r->virtual_ms = sim_fx_now(fx);
	r->trace_hash = fx->hash;
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
	struct sim_params p = {
		.name = "kad-full", .nodes = cfg->nodes, .bootstrap = cfg->bootstrap,
		.seed = cfg->seed, .lat_min_ms = cfg->lat_min_ms, .lat_max_ms = cfg->lat_max_ms,
		.join_interval_ms = cfg->join_interval_ms, .ring_bytes = cfg->ring_bytes,
		.socks_per_node = cfg->socks_per_node, .arena_bytes = cfg->arena_bytes,
		.progress = cfg->progress,
	};
	struct sim_hooks h = {
		.ctx = f, .joined_all = on_joined_all, .next = next_event, .fire = fire,
		.done = all_done, .status = status,
	};
	int ret;

	if (!f)
		return -KW_ENOMEM;
	memset(rep, 0, sizeof(*rep));
	if (cfg->phase_ms == 0) {
		free(f);
		return -KW_EINVAL;
	}
	f->cfg = *cfg;
	f->rep = rep;
	f->next_lookup = SIM_NEVER;
	g_full = f;
	f->lk = calloc(cfg->lookups + 1, sizeof(*f->lk));
	ret = f->lk ? sim_fx_init(&f->fx, &p, &h) : -KW_ENOMEM;
	if (ret == 0) {
		sim_fx_run(&f->fx);
		report(f);
		sim_fx_destroy(&f->fx);
	}
	free(f->lk);
	free(f);
	g_full = NULL;
	return ret;
}
