/*
 * The full-stack Hivemind DHT simulation's driver (hm_full.h, doc/sim.md "Hivemind DHT run"):
 * the nodes, network and scheduling are the shared fixture (sim_node.c); this file starts the
 * Hivemind DHT on every node as app/hivemind.c does, then runs the stores, the gets and the
 * churn, and checks every value a get returns against what was stored.
 *
 * Allocation: start-up only (the tables here), as in a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/swarm.h>

#include "../../app/hivemind.h"
#include "hm_full.h"
#include "sim_node.h"

#define VAL_BYTES 16
#define EXPIRE_S  3600.0          /* records outlive the run */

struct hm_node {
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_hm *app;
	bool churns;
	uint64_t rpcs, rpcs_failed, pushes;   /* of the node's earlier lives */
	char boot[KW_KAD_BOOTSTRAP_MAX][KW_CONFIG_PEER_ADDR_MAX];
};

struct rec {                       /* one store */
	struct kw_hm_dhtid key;
	uint8_t val[2 + VAL_BYTES];    /* msgpack bin8 */
	uint8_t sub[8];                /* msgpack fixstr, sub_len 0: a plain value */
	uint8_t sub_len;
	unsigned from;
	bool done, ok;
	uint32_t n_ok;
};

struct get {
	unsigned rec, from;
	uint64_t t_start;
	bool done;
	int err, result;               /* result: 1 ok, 0 not found, -1 other value */
	uint32_t visited, ms;
};

enum { EV_GET, EV_LEAVE, EV_REJOIN };
struct event {
	uint64_t t;
	unsigned seq, kind, arg;
};

struct hmf {
	struct sim_fx fx;
	struct kw_hm_full_cfg cfg;
	struct kw_hm_full_report *rep;
	struct hm_node *hn;
	struct rec *rec;
	unsigned rec_started, rec_done;
	uint64_t next_store, store_end;
	unsigned *ok_recs, n_ok_recs;
	struct get *gets;
	unsigned gets_started, gets_done;
	struct event *ev;
	unsigned n_ev, ev_next;
	bool get_phase;
};

static struct hmf *g_hmf;  /* for the callbacks, whose user pointer is the record */

static double dht_clock(void *arg)
{
	return (double)sim_fx_wall_ms(arg) / 1000.0;
}

/* ---- the Hivemind DHT on a node ------------------------------------------------------------ */
static int node_up(void *ctx, unsigned i)
{
	struct hmf *f = ctx;
	struct sim_node *n = &f->fx.nodes[i];
	struct hm_node *h = &f->hn[i];
	struct kw_hm_dht_config dc;
	int ret;

	for (unsigned j = 0; j < n->n_boot; j++)
		snprintf(h->boot[j], sizeof(h->boot[j]), "%s", f->fx.nodes[n->boot[j]].addr);
	ret = kw_hm_dht_config_default(&dc);
	if (ret < 0)
		return ret;
	dc.clock = dht_clock;
	dc.clock_arg = &f->fx;
	ret = kw_app_hm_start_cfg(n->node, n->sw, n->id, n->kad, &dc,
				  (const char (*)[KW_CONFIG_PEER_ADDR_MAX])h->boot, (int)n->n_boot,
				  &h->hm, &h->d, &h->app);
	if (ret < 0)
		fprintf(stderr, "hm-full: node %u: the Hivemind DHT does not start: %s\n", i,
			kw_strerror(ret));
	return ret;
}

static void node_down(void *ctx, unsigned i)
{
	struct hmf *f = ctx;
	struct hm_node *h = &f->hn[i];
	struct kw_hm_dht_stats st;

	kw_hm_dht_get_stats(h->d, &st);
	h->rpcs += st.rpcs_out;
	h->rpcs_failed += st.rpcs_failed;
	h->pushes += st.newcomer_pushes;
	kw_app_hm_stop(h->app);
	h->app = NULL;
	h->d = NULL;
	h->hm = NULL;
}

/* ---- stores ---------------------------------------------------------------------------------- */
static void on_store(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *res,
		     void *user)
{
	struct hmf *f = g_hmf;
	struct rec *r = user;

	(void)d;
	r->done = true;
	r->n_ok = err == 0 ? res->n_ok : 0;
	r->ok = err == 0 && res->n_ok > 0;
	f->rec_done++;
	sim_fx_hash(&f->fx, (uint64_t)(r - f->rec) << 32 ^ (uint64_t)(uint32_t)err ^
		    (uint64_t)r->n_ok << 60);
}

static unsigned random_up_node(struct hmf *f, bool stays, unsigned not)
{
	for (;;) {
		unsigned i = (unsigned)(kw_prng_next(&f->fx.rng) % f->fx.n_started);
		if (i != not && f->fx.nodes[i].up && !(stays && f->hn[i].churns))
			return i;
	}
}

static void store_start(struct hmf *f)
{
	struct sim_fx *fx = &f->fx;
	unsigned j = f->rec_started++;
	struct rec *r = &f->rec[j];
	char key[48];
	int n, ret;

	n = snprintf(key, sizeof(key), "hmsim/%llu/%u", (unsigned long long)f->cfg.seed, j);
	kw_hm_dhtid_of_str(key, (size_t)n, &r->key);
	r->val[0] = 0xc4;  /* msgpack bin8 */
	r->val[1] = VAL_BYTES;
	for (unsigned b = 0; b < VAL_BYTES; b += 8) {
		uint64_t x = kw_prng_next(&fx->rng);
		memcpy(r->val + 2 + b, &x, 8);
	}
	if (kw_prng_next(&fx->rng) % 100 < f->cfg.subkey_pct) {
		n = snprintf((char *)r->sub + 1, sizeof(r->sub) - 1, "s%u",
			     (unsigned)(kw_prng_next(&fx->rng) % 100000));
		r->sub[0] = (uint8_t)(0xa0 | n);   /* msgpack fixstr */
		r->sub_len = (uint8_t)(n + 1);
	}
	r->from = random_up_node(f, false, UINT32_MAX);
	ret = kw_hm_dht_store(f->hn[r->from].d, &r->key, r->sub_len ? r->sub : NULL, r->sub_len,
			      r->val, sizeof(r->val), dht_clock(fx) + EXPIRE_S, on_store, r);
	if (ret < 0) {  /* no free operation: counted apart, not a network failure */
		r->done = true;
		f->rec_done++;
		f->rep->stores_refused++;
		sim_fx_hash(fx, (uint64_t)(uint32_t)ret);
	}
	sim_fx_reschedule(fx, r->from);
}

/* ---- gets ------------------------------------------------------------------------------------ */
/* Does a merged DictionaryDHTValue (ext 0x50, kw_hm_store_pack_dict) hold the record's
 * entry? An entry is the msgpack array [subkey, bin(value), float64 exp], the value being the
 * stored msgpack bytes wrapped in a bin: subkey, then bin8 of the 18 value bytes. Those bytes
 * (a 16-byte random value among them) do not occur by chance. */
static bool dict_has(const uint8_t *p, size_t len, const struct rec *r)
{
	size_t need = r->sub_len + 2 + sizeof(r->val);

	for (size_t i = 0; i + need <= len; i++)
		if (memcmp(p + i, r->sub, r->sub_len) == 0 && p[i + r->sub_len] == 0xc4 &&
		    p[i + r->sub_len + 1] == sizeof(r->val) &&
		    memcmp(p + i + r->sub_len + 2, r->val, sizeof(r->val)) == 0)
			return true;
	return false;
}

/*
 * Where a failed get's record is (KW_HM_DIAG=1, printed, no effect on the run): how many
 * nodes up now hold it in their main storage, and how those rank by XOR distance to the key
 * among every node up (rank 0: the nearest), so a miss reads as "replicas lost", "replicas
 * away from the nearest nodes" or "the search did not reach them".
 */
static void diag_get(struct hmf *f, const struct get *g)
{
	struct sim_fx *fx = &f->fx;
	const struct rec *r = &f->rec[g->rec];
	double t = dht_clock(fx);
	unsigned holders = 0, near_hold = 0, best_rank = UINT32_MAX, up = 0;
	char ranks[160] = "";
	size_t rl = 0;

	for (unsigned i = 0; i < fx->n_started; i++) {
		struct kw_hm_store_found fd;
		unsigned rank = 0;

		if (!fx->nodes[i].up)
			continue;
		up++;
		(void)kw_hm_store_get(kw_hm_dht_storage(f->hn[i].d, false), &r->key, t, &fd);
		if (fd.type == KW_HM_DHT_NOT_FOUND)
			continue;
		holders++;
		for (unsigned j = 0; j < fx->n_started; j++)
			if (j != i && fx->nodes[j].up &&
			    kw_hm_dhtid_dist_cmp(&r->key, kw_hm_dht_node_id(f->hn[j].d),
						 kw_hm_dht_node_id(f->hn[i].d)) < 0)
				rank++;
		near_hold += rank < 5;
		if (rank < best_rank)
			best_rank = rank;
		if (rl + 12 < sizeof(ranks))
			rl += (size_t)snprintf(ranks + rl, sizeof(ranks) - rl, " %u%s", rank,
					       f->hn[i].churns ? "c" : "");
	}
	f->rep->diag_holders[holders < 5 ? holders : 5]++;
	if (!holders)
		f->rep->diag_lost++;
	else if (!near_hold)
		f->rep->diag_far++;
	else
		f->rep->diag_unreached++;
	fprintf(stderr, "hm-full: diag get %u rec %u (stored on %u) asker %u: %s visited %u "
		"holders up %u (%u among the 5 nearest of %u up), ranks:%s\n", (unsigned)(g - f->gets),
		g->rec, r->n_ok, g->from, g->err < 0 ? kw_strerror(g->err) : "not found", g->visited,
		holders, near_hold, up, ranks);
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct hmf *f = g_hmf;
	struct get *g = user;
	const struct rec *r = &f->rec[g->rec];

	(void)d;
	g->done = true;
	g->err = err;
	g->ms = (uint32_t)(f->fx.net.now_ms - g->t_start);
	g->result = 0;
	if (err == 0) {
		g->visited = v->visited;
		if (v->type == KW_HM_DHT_FOUND_REGULAR && !r->sub_len)
			g->result = v->len == sizeof(r->val) &&
				    memcmp(v->value, r->val, v->len) == 0 ? 1 : -1;
		else if (v->type == KW_HM_DHT_FOUND_DICTIONARY && r->sub_len)
			g->result = dict_has(v->value, v->len, r) ? 1 : -1;
		else if (v->type != KW_HM_DHT_NOT_FOUND)
			g->result = -1;
	}
	f->gets_done++;
	if (g->result != 1 && f->cfg.diag)
		diag_get(f, g);
	sim_fx_hash(&f->fx, (uint64_t)(g - f->gets) << 32 ^ (uint64_t)(uint32_t)err ^
		    (uint64_t)(g->result + 1) << 62 ^ (uint64_t)g->visited << 40);
}

static void get_start(struct hmf *f)
{
	struct sim_fx *fx = &f->fx;
	struct get *g = &f->gets[f->gets_started++];
	int ret;

	g->rec = f->ok_recs[kw_prng_next(&fx->rng) % f->n_ok_recs];
	g->from = random_up_node(f, true, f->rec[g->rec].from);
	g->t_start = fx->net.now_ms;
	ret = kw_hm_dht_get(f->hn[g->from].d, &f->rec[g->rec].key, false, on_get, g);
	if (ret < 0) {  /* no free operation: counted apart */
		g->done = true;
		g->err = ret;
		f->gets_done++;
		f->rep->gets_refused++;
		sim_fx_hash(fx, (uint64_t)(uint32_t)ret);
	}
	sim_fx_reschedule(fx, g->from);
}

/* ---- the timeline ---------------------------------------------------------------------------- */
static int ev_cmp(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every store answered: the get phase's events (gets, leaves, rejoins) in time order. */
static void get_phase_plan(struct hmf *f)
{
	struct sim_fx *fx = &f->fx;
	uint64_t g0 = fx->net.now_ms + 1000;
	unsigned churners = f->cfg.nodes * f->cfg.churn_pct / 100, seq = 0;
	uint32_t down = f->cfg.down_ms ? f->cfg.down_ms : f->cfg.get_phase_ms / 2;

	f->get_phase = true;
	for (unsigned j = 0; j < f->rec_started; j++)
		if (f->rec[j].ok)
			f->ok_recs[f->n_ok_recs++] = j;
	if (f->n_ok_recs == 0)
		return;
	if (churners > f->cfg.nodes - 2)
		churners = f->cfg.nodes - 2;
	for (unsigned c = 0; c < churners; c++) {
		unsigned i;
		uint64_t t;
		do
			i = (unsigned)(kw_prng_next(&fx->rng) % f->cfg.nodes);
		while (f->hn[i].churns);
		f->hn[i].churns = true;
		t = g0 + kw_prng_next(&fx->rng) % (f->cfg.get_phase_ms / 2 + 1);
		f->ev[f->n_ev++] = (struct event){ t, seq++, EV_LEAVE, i };
		f->ev[f->n_ev++] = (struct event){ t + down, seq++, EV_REJOIN, i };
	}
	for (unsigned k = 0; k < f->cfg.gets; k++)
		f->ev[f->n_ev++] = (struct event){
			g0 + (uint64_t)f->cfg.get_phase_ms * k / f->cfg.gets, seq++, EV_GET, k };
	qsort(f->ev, f->n_ev, sizeof(*f->ev), ev_cmp);
}

static void on_joined_all(void *ctx)
{
	struct hmf *f = ctx;
	uint64_t now = f->fx.net.now_ms;

	f->next_store = f->cfg.stores ? now + f->cfg.settle_ms : SIM_NEVER;
	f->store_end = now + f->cfg.settle_ms + f->cfg.store_phase_ms;
}

static uint64_t next_event(void *ctx)
{
	struct hmf *f = ctx;
	uint64_t now = f->fx.net.now_ms;

	if (f->next_store != SIM_NEVER)
		return f->next_store;
	if (!f->get_phase)  /* every store answered and the phase is over: plan the gets */
		return f->rec_started && f->rec_done == f->rec_started ?
			       (f->store_end > now ? f->store_end : now) : SIM_NEVER;
	return f->ev_next < f->n_ev ? f->ev[f->ev_next].t : SIM_NEVER;
}

static void fire(void *ctx)
{
	struct hmf *f = ctx;
	struct event *e;

	if (f->next_store != SIM_NEVER) {
		store_start(f);
		f->next_store = f->rec_started < f->cfg.stores ?
					f->fx.net.now_ms + f->cfg.store_phase_ms / f->cfg.stores :
					SIM_NEVER;
		return;
	}
	if (!f->get_phase) {
		get_phase_plan(f);
		return;
	}
	e = &f->ev[f->ev_next++];
	if (e->kind == EV_GET) {
		get_start(f);
	} else if (e->kind == EV_LEAVE) {
		sim_node_leave(&f->fx, e->arg);
		f->rep->leaves++;
	} else if (sim_node_rejoin(&f->fx, e->arg) == 0) {
		f->rep->rejoins++;
	} else {
		fprintf(stderr, "hm-full: node %u does not come back\n", e->arg);
		abort();
	}
}

static bool all_done(void *ctx)
{
	struct hmf *f = ctx;

	if (!f->get_phase)
		return false;
	return f->ev_next == f->n_ev && f->gets_done == f->gets_started;
}

static void status(void *ctx, char *buf, size_t cap)
{
	struct hmf *f = ctx;
	unsigned busy = 0;

	for (unsigned i = 0; i < f->fx.n_started; i++)
		if (f->fx.nodes[i].up)
			busy += kw_hm_dht_ops_busy(f->hn[i].d);
	snprintf(buf, cap, "stores %u/%u gets %u/%u churn %u/%u dht ops busy %u", f->rec_done,
		 f->rec_started, f->gets_done, f->gets_started, f->rep->leaves, f->rep->rejoins,
		 busy);
}

/* ---- report ---------------------------------------------------------------------------------- */
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

static void report(struct hmf *f)
{
	struct sim_fx *fx = &f->fx;
	struct kw_hm_full_report *r = f->rep;
	unsigned *vis = calloc(f->cfg.gets + 1, sizeof(unsigned));
	unsigned *ms = calloc(f->cfg.gets + 1, sizeof(unsigned));
	unsigned n = 0;
	uint64_t replicas = 0;

	if (!vis || !ms)
		abort();
	r->stores_started = f->rec_started;
	for (unsigned j = 0; j < f->rec_started; j++)
		if (f->rec[j].ok) {
			r->stores_ok++;
			replicas += f->rec[j].n_ok;
		}
	r->replicas_mean = r->stores_ok ? (double)replicas / r->stores_ok : 0;
	r->gets_started = f->gets_started;
	for (unsigned k = 0; k < f->gets_started; k++) {
		const struct get *g = &f->gets[k];
		if (g->err == -KW_ELIMIT && !g->visited)
			continue;  /* refused: counted already */
		if (g->err < 0)
			r->gets_err++;
		else if (g->result == 0)
			r->gets_not_found++;
		else if (g->result < 0)
			r->gets_wrong++;
		else {
			r->gets_ok++;
			vis[n] = g->visited;
			ms[n++] = g->ms;
			if (g->visited > r->visited_max)
				r->visited_max = g->visited;
		}
		if (g->result != 1 && f->cfg.progress)
			fprintf(stderr, "hm-full: get %u (record %u from node %u, asked by node %u): "
				"%s\n", k, g->rec, f->rec[g->rec].from, g->from,
				g->err < 0 ? kw_strerror(g->err) :
				g->result == 0 ? "not found" : "another value");
	}
	qsort(vis, n, sizeof(unsigned), cmp_u);
	qsort(ms, n, sizeof(unsigned), cmp_u);
	r->visited_median = pct(vis, n, 50);
	r->visited_p99 = pct(vis, n, 99);
	r->get_ms_median = pct(ms, n, 50);
	r->get_ms_p99 = pct(ms, n, 99);
	free(vis);
	free(ms);
	for (unsigned i = 0; i < fx->n_started; i++) {
		struct sim_node *nd = &fx->nodes[i];
		struct hm_node *h = &f->hn[i];
		struct kw_hm_dht_stats hs;
		struct kw_swarm_stats ss;
		memset(&hs, 0, sizeof(hs));
		memset(&ss, 0, sizeof(ss));
		if (nd->up) {
			kw_hm_dht_get_stats(h->d, &hs);
			kw_swarm_get_stats(nd->sw, &ss);
			if (nd->node->arena.high > r->arena_used_max)
				r->arena_used_max = nd->node->arena.high;
		}
		r->dht_rpcs += h->rpcs + hs.rpcs_out;
		r->dht_rpcs_failed += h->rpcs_failed + hs.rpcs_failed;
		r->newcomer_pushes += h->pushes + hs.newcomer_pushes;
		r->conns_dialed += ss.conns_dialed;
		r->conns_accepted += ss.conns_accepted;
		r->conns_failed += ss.conns_failed;
		r->conns_refused += ss.conns_refused_limit;
		r->conns_evicted += ss.conns_evicted;
		r->conns_trimmed += ss.conns_trimmed;
		r->unreachable += hs.unreachable;
		sim_fx_hash(fx, hs.rpcs_out ^ (uint64_t)hs.finds << 32 ^ (uint64_t)hs.stores << 48);
	}
	r->nodes_started = fx->n_started;
	r->node_passes = fx->node_passes;
	r->spin_parks = fx->spin_parks;
	r->arena_bytes = fx->arena_bytes;
	r->socks_open_max = fx->socks_open_max;
	r->net_bytes = fx->net_bytes;
	r->virtual_ms = sim_fx_now(fx);
	r->trace_hash = fx->hash;
}

void kw_hm_full_cfg_default(struct kw_hm_full_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->nodes = 1000;
	c->stores = 1000;
	c->gets = 2000;
	c->churn_pct = 10;
	c->subkey_pct = 25;
	c->bootstrap = 3;
	c->seed = 1;
	c->lat_min_ms = 20;
	c->lat_max_ms = 200;
	c->join_interval_ms = 20;
	c->settle_ms = 10000;
	c->store_phase_ms = 20000;
	c->get_phase_ms = 40000;
	c->ring_bytes = 16384;
	c->socks_per_node = 260;
}

int kw_hm_full_run(const struct kw_hm_full_cfg *cfg, struct kw_hm_full_report *rep)
{
	struct hmf *f = calloc(1, sizeof(*f));
	struct sim_params p = {
		.name = "hm-full", .nodes = cfg->nodes, .bootstrap = cfg->bootstrap,
		.seed = cfg->seed, .lat_min_ms = cfg->lat_min_ms, .lat_max_ms = cfg->lat_max_ms,
		.join_interval_ms = cfg->join_interval_ms, .ring_bytes = cfg->ring_bytes,
		.socks_per_node = cfg->socks_per_node, .arena_bytes = cfg->arena_bytes,
		.progress = cfg->progress,
	};
	struct sim_hooks h = {
		.ctx = f, .node_up = node_up, .node_down = node_down, .joined_all = on_joined_all,
		.next = next_event, .fire = fire, .done = all_done, .status = status,
	};
	unsigned churners = cfg->nodes * cfg->churn_pct / 100;
	int ret;

	if (!f)
		return -KW_ENOMEM;
	memset(rep, 0, sizeof(*rep));
	if (cfg->stores == 0 || cfg->store_phase_ms == 0 || cfg->get_phase_ms == 0 ||
	    cfg->churn_pct > 50 || cfg->subkey_pct > 100) {
		free(f);
		return -KW_EINVAL;
	}
	f->cfg = *cfg;
	f->rep = rep;
	f->next_store = SIM_NEVER;
	g_hmf = f;
	f->hn = calloc(cfg->nodes, sizeof(*f->hn));
	f->rec = calloc(cfg->stores, sizeof(*f->rec));
	f->ok_recs = calloc(cfg->stores, sizeof(*f->ok_recs));
	f->gets = calloc(cfg->gets + 1, sizeof(*f->gets));
	f->ev = calloc(cfg->gets + 2 * churners + 1, sizeof(*f->ev));
	ret = f->hn && f->rec && f->ok_recs && f->gets && f->ev ? 0 : -KW_ENOMEM;
	if (ret == 0)
		ret = sim_fx_init(&f->fx, &p, &h);
	if (ret == 0) {
		sim_fx_run(&f->fx);
		report(f);
		rep->socks_left = sim_fx_destroy(&f->fx);
	}
	free(f->ev);
	free(f->gets);
	free(f->ok_recs);
	free(f->rec);
	free(f->hn);
	free(f);
	g_hmf = NULL;
	return ret;
}
