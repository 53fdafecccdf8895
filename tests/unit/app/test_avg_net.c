/*
 * hivemind averaging on the swarm (app/avg_net.c) with three nodes on the simulated network
 * (the net/hivemind fixture hm_pair.h, a to c dialled here as well): rounds over real
 * rpc_aggregate_part streams against the exact weighted mean, matchmaking over rpc_join_group
 * streams with a table standing in for the DHT, a peer that goes silent mid-round, client and
 * aux modes, and a part stream from a peer outside the group. In a star (a and c connected
 * only to b) a and c reach each other through cfg.connect, a test connector dialling the
 * fixture's addresses: the round and matchmaking run as in the mesh, and a groupmate whose
 * dial fails is excluded while the others finish.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/hivemind/hm_pair.h"
#include "../../../app/avg_net.h"

#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/ml/codec.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#define PREFIX "mygroup"
#define N0 5000   /* parts of 1024 values: 5 + 1 parts */
#define N1 300
#define NS 3

static const struct kw_hm_limits hm_limits = {
	.calls_in = 2, .calls_per_peer = 2, .calls_out = 2, .buf_bytes = 1024, .timeout_ms = 2000,
};

static const struct kw_hm_stream_limits sx_limits = {
	.streams_in = 6, .streams_per_peer = 4, .streams_out = 6, .buf_bytes = 16384,
	.prefetch = 5, .idle_ms = 10000,
};

static struct kw_codec codec;

struct node {
	struct kw_hm_side *s;
	struct kw_app_avgnet *net;
	struct kw_avg *avg;
	void *avg_mem;
	float t0[N0], t1[N1];
	float *tens[2];
	int done, assembled, assembled_err;
	struct kw_avg_result r;
	uint64_t done_ms;
	bool frozen;           /* not pumped: a process that stopped */
	struct kw_avg_group g;
};

struct entry { uint8_t id[64]; size_t len; double exp; bool looking; };

struct fx {
	struct kw_hm_pair p;
	struct node n[NS];
	struct kw_conn *ac;
	int ac_done;
	struct entry dht[NS];
	unsigned n_dht;
};

static struct fx *g;
static const uint64_t numel[2] = { N0, N1 };
static const uint8_t schema[20] = { 1, 2, 3 };

static void pump(int passes)
{
	for (int i = 0; i < passes; i++)
		for (int k = 0; k < NS; k++)
			if (!g->n[k].frozen)
				kw_loop_run_once(&g->n[k].s->t->node->loop, 0);
}

static void advance(uint64_t ms)
{
	kw_sim_advance(g->p.net->net, ms);
	pump(20);
}

static void on_ac(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	g->ac_done++;
	g->ac = err ? NULL : c;
}

static int make_avg(struct node *n, enum kw_compression comp)
{
	struct kw_avg_transport tr;
	struct kw_avg_cfg cfg;
	struct kw_arena a;
	size_t bytes;

	kw_avg_cfg_default(&cfg);
	cfg.n_tensors = 2;
	cfg.tensors = n->tens;
	cfg.numel = numel;
	cfg.compression = comp;
	cfg.part_size_bytes = 4096;
	cfg.max_peers = 4;
	cfg.max_parts = 64;
	cfg.sender_timeout_ms = 1000;
	cfg.round_timeout_ms = 3000;
	cfg.codec = &codec;
	bytes = kw_avg_arena_bytes(&cfg);
	n->avg_mem = malloc(bytes + 64);
	if (!n->avg_mem)
		return -1;
	kw_arena_init(&a, n->avg_mem, bytes + 64);
	kw_app_avgnet_transport(n->net, &tr);
	if (kw_avg_create(&n->s->t->node->loop, &a, &cfg, &tr, &n->avg) < 0)
		return -1;
	kw_app_avgnet_bind(n->net, n->avg);
	return 0;
}

/* ---- the test connector: dials a node's fixture address (or, for t_fail, a dead port) ---- */

struct tdial {
	kw_app_avgnet_connected_fn cb;
	void *ctx;
	bool busy;
};
static struct tdial tdials[16];
static unsigned t_fail;      /* bit k: dials between node k and a node of t_fail fail */
static unsigned t_connects;

static void t_on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct tdial *d = user;

	(void)sw;
	d->busy = false;
	d->cb(d->ctx, err ? NULL : c, err);
}

static int t_connect(void *arg, const struct kw_peer_id *peer, kw_app_avgnet_connected_fn cb,
		     void *ctx)
{
	struct node *from = arg;
	char addr[300], id[128];
	struct tdial *d = NULL;
	int k = -1, me = (int)(from - g->n);

	for (int i = 0; i < NS; i++) {
		const struct kw_peer_id *p = kw_swarm_peer_id(g->n[i].s->sw);

		if (p->len == peer->len && !memcmp(p->bytes, peer->bytes, p->len))
			k = i;
	}
	for (unsigned i = 0; i < 16 && !d; i++)
		if (!tdials[i].busy)
			d = &tdials[i];
	if (k < 0 || !d)
		return -KW_ENOENT;
	t_connects++;
	if ((t_fail >> k & 1) && (t_fail >> me & 1)) {
		assert_int_equal(kw_peer_id_to_text(peer, id, sizeof(id)), 0);
		snprintf(addr, sizeof(addr), "/ip4/127.0.0.1/tcp/4999/p2p/%s", id);   /* nobody */
	} else {
		snprintf(addr, sizeof(addr), "%s", g->n[k].s->addr);
	}
	d->cb = cb;
	d->ctx = ctx;
	d->busy = true;
	if (kw_swarm_dial(from->s->sw, addr, t_on_dial, d) < 0) {
		d->busy = false;
		return -KW_EIO;
	}
	return 0;
}

static int setup_net(bool star)
{
	struct kw_hm_side *sides[NS];
	struct kw_app_avgnet_cfg nc = {
		.prefix = PREFIX, .cls = "DecentralizedAverager", .max_peers = 4,
		.backlog_bytes = 65536, .idle_ms = 10000, .pending_ms = 500,
	};

	g = calloc(1, sizeof(*g));
	if (!g || kw_hm_pair_init(&g->p, 3, &hm_limits, 32 * 1024) < 0)
		return -1;
	sides[0] = &g->p.a;
	sides[1] = &g->p.b;
	sides[2] = &g->p.c;
	for (int k = 0; k < NS; k++) {
		struct node *n = &g->n[k];

		n->s = sides[k];
		n->tens[0] = n->t0;
		n->tens[1] = n->t1;
		if (star) {
			nc.connect = t_connect;
			nc.connect_arg = n;
			nc.dial_ms = 2000;
		}
		if (kw_hm_stream_setup(n->s->hm, &sx_limits) < 0 ||
		    kw_app_avgnet_create(n->s->t->node, n->s->sw, n->s->hm, &nc, &n->net) < 0 ||
		    make_avg(n, KW_COMP_NONE) < 0)
			return -1;
		for (int i = 0; i < N0; i++)
			n->t0[i] = (float)((i * 7 + k * 13) % 101) * 0.01f - 0.5f + (float)k;
		for (int i = 0; i < N1; i++)
			n->t1[i] = -(float)i * 0.001f * (float)(k + 1);
	}
	if (kw_hm_pair_connect(&g->p) < 0)
		return -1;
	memset(tdials, 0, sizeof(tdials));
	t_fail = 0;
	t_connects = 0;
	if (star) {
		pump(50);
		return 0;
	}
	if (kw_swarm_dial(g->p.a.sw, g->p.c.addr, on_ac, NULL) < 0)
		return -1;
	pump(50);
	return g->ac_done == 1 && g->ac ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	return setup_net(false);
}

static int setup_star(void **state)
{
	(void)state;
	return setup_net(true);
}

static int teardown(void **state)
{
	for (int k = 0; k < NS; k++) {
		g->n[k].frozen = false;
		kw_avg_destroy(g->n[k].avg);
	}
	pump(10);
	kw_hm_pair_fini(&g->p);
	for (int k = 0; k < NS; k++)
		free(g->n[k].avg_mem);
	free(g);
	g = NULL;
	return 0;
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	struct node *n = user;

	n->done++;
	n->r = *r;
	n->r.reason = NULL;
	n->done_ms = kw_loop_now(&n->s->t->node->loop);
}

static void self_id(struct node *n, struct kw_avg_bytes *b)
{
	const struct kw_peer_id *p = kw_swarm_peer_id(n->s->sw);

	b->p = p->bytes;
	b->len = p->len;
}

/* A group of every node in order a, b, c with the given modes. */
static void make_group(const enum kw_avg_mode *modes, struct kw_avg_bytes *ids)
{
	for (int k = 0; k < NS; k++) {
		struct kw_avg_group *gr = &g->n[k].g;

		memset(gr, 0, sizeof(*gr));
		memset(gr->group_id, 0x5a, 20);
		gr->group_id_len = 20;
		gr->n = NS;
		gr->self = (unsigned)k;
		for (int i = 0; i < NS; i++) {
			gr->mode[i] = modes[i];
			gr->bandwidth[i] = KW_AVG_BW_NONE;
		}
		self_id(&g->n[k], &ids[k]);
	}
}

static void expect_mean(const double *w, const float (*orig0)[N0], const float (*orig1)[N1],
			const int *check, float tol)
{
	double sw = 0;

	for (int k = 0; k < NS; k++)
		sw += w[k];
	for (int i = 0; i < N0; i++) {
		double m = 0;

		for (int k = 0; k < NS; k++)
			m += w[k] * orig0[k][i];
		m /= sw;
		for (int k = 0; k < NS; k++)
			if (check[k] && fabs(g->n[k].t0[i] - m) > tol) {
				print_error("node %d t0[%d] = %.7f, mean %.7f\n", k, i, g->n[k].t0[i], m);
				fail();
			}
	}
	for (int i = 0; i < N1; i++) {
		double m = 0;

		for (int k = 0; k < NS; k++)
			m += w[k] * orig1[k][i];
		m /= sw;
		for (int k = 0; k < NS; k++)
			if (check[k] && fabs(g->n[k].t1[i] - m) > tol)
				fail();
	}
}

static float o0[NS][N0], o1[NS][N1];

static void snapshot(void)
{
	for (int k = 0; k < NS; k++) {
		memcpy(o0[k], g->n[k].t0, sizeof(o0[k]));
		memcpy(o1[k], g->n[k].t1, sizeof(o1[k]));
	}
}

/* Node k's tensors into its averager with weight w. */
static void node_accumulate(int k, double w)
{
	const float *t[2] = { g->n[k].t0, g->n[k].t1 };

	assert_int_equal(kw_avg_accumulate(g->n[k].avg, t, w), 0);
}

/* Node k starts its round of group g->n[k].g; on_done records the result. */
static void node_step(int k, const struct kw_avg_bytes *ids)
{
	assert_int_equal(kw_app_avgnet_step(g->n[k].net, &g->n[k].g, ids, on_done, &g->n[k]), 0);
}

static void run_until_done(int max_steps)
{
	for (int t = 0; t < max_steps; t++) {
		int all = 1;

		for (int k = 0; k < NS; k++)
			if (!g->n[k].frozen && !g->n[k].done)
				all = 0;
		if (all)
			break;
		advance(10);
	}
}

static void test_avgnet_three_nodes_average_exactly_over_streams(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	static const double w[NS] = { 1.0, 2.0, 3.0 };
	static const int all[NS] = { 1, 1, 1 };
	struct kw_avg_bytes ids[NS];
	struct kw_app_avgnet_stats st;

	make_group(modes, ids);
	snapshot();
	for (int k = 0; k < NS; k++) {
		node_accumulate(k, w[k]);
		node_step(k, ids);
	}
	run_until_done(200);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.err, 0);
		assert_int_equal(g->n[k].r.peers_used, 3);
		assert_int_equal(g->n[k].r.n_excluded, 0);
		assert_true(g->n[k].r.bytes_sent > 0);
		assert_true(g->n[k].r.compression_ratio > 0.9 && g->n[k].r.compression_ratio < 1.01);
	}
	expect_mean(w, (const float (*)[N0])o0, (const float (*)[N1])o1, all, 1e-5f);
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.streams_out, 2);   /* one to each other reducer */
	assert_int_equal(st.streams_in, 2);
	/* a second round with the same nodes runs on new streams */
	snapshot();
	for (int k = 0; k < NS; k++) {
		g->n[k].done = 0;
		g->n[k].g.group_id[0] = 0x77;
		node_step(k, ids);
	}
	run_until_done(200);
	for (int k = 0; k < NS; k++)
		assert_int_equal(g->n[k].done, 1);
	{
		static const double w1[NS] = { 1, 1, 1 };

		expect_mean(w1, (const float (*)[N0])o0, (const float (*)[N1])o1, all, 1e-5f);
	}
}

static void test_avgnet_silent_peer_is_excluded_and_the_others_finish(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	struct kw_avg_bytes ids[NS];
	uint64_t start;

	make_group(modes, ids);
	snapshot();
	for (int k = 0; k < 2; k++)
		node_step(k, ids);
	/* c never starts (a process that stopped before the round): a and b send it parts that
	 * go unanswered, and it sends none */
	g->n[2].frozen = true;
	start = kw_loop_now(&g->n[0].s->t->node->loop);
	run_until_done(600);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.peers_used, 2);
		assert_int_equal(g->n[k].r.n_excluded, 1);
		assert_int_equal(g->n[k].r.excluded_mask, 1u << 2);
		/* sender_timeout 1 s; the loop checks every 50 ms, our test steps 10 ms */
		assert_true(g->n[k].done_ms - start <= 3000 + 600);
	}
	/* partition of 5300 values over 3 peers (pivots 1767, 3534): a reduces t0[0, 2048), b
	 * t0[2048, 3072), c the rest. Theirs are the mean of a and b; c's keep each own values. */
	for (int i = 0; i < N0; i++) {
		float m = (o0[0][i] + o0[1][i]) / 2;

		for (int k = 0; k < 2; k++)
			if (i < 3072 ? fabsf(g->n[k].t0[i] - m) > 1e-5f : g->n[k].t0[i] != o0[k][i]) {
				print_error("node %d t0[%d] = %.7f\n", k, i, g->n[k].t0[i]);
				fail();
			}
	}
	assert_int_equal(g->n[0].r.values_failed, N0 - 3072 + N1);
}

static void test_avgnet_client_sends_and_aux_reduces(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_CLIENT, KW_AVG_NODE, KW_AVG_AUX };
	static const double w[NS] = { 2.0, 1.0, 0.0 };
	static const int check[NS] = { 1, 1, 0 };
	struct kw_avg_bytes ids[NS];
	struct kw_app_avgnet_stats st;

	make_group(modes, ids);
	snapshot();
	for (int k = 0; k < NS; k++) {
		if (k == 0)
			node_accumulate(k, 2.0);
		node_step(k, ids);
	}
	run_until_done(300);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.n_excluded, 0);
	}
	expect_mean(w, (const float (*)[N0])o0, (const float (*)[N1])o1, check, 1e-5f);
	/* the aux node's tensors are left alone, the client reduced nothing */
	assert_memory_equal(g->n[2].t0, o0[2], sizeof(o0[2]));
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.streams_in, 0);
	assert_int_equal(g->n[2].r.bytes_sent > 0, 1);   /* aux sends deltas */
}

/* ---- matchmaking ---- */

static int t_declare(void *u, const char *key, double exp, bool looking)
{
	struct node *n = u;
	struct kw_avg_bytes id;
	struct entry *e = NULL;

	assert_string_equal(key, PREFIX ".0b");
	self_id(n, &id);
	for (unsigned i = 0; i < g->n_dht; i++)
		if (g->dht[i].len == id.len && !memcmp(g->dht[i].id, id.p, id.len))
			e = &g->dht[i];
	if (!e)
		e = &g->dht[g->n_dht++];
	memcpy(e->id, id.p, id.len);
	e->len = id.len;
	e->exp = exp;
	e->looking = looking;
	return 0;
}

static void on_assembled(struct kw_app_avgnet *net, int err, const struct kw_avg_group *gr,
			 const struct kw_avg_bytes *ids, void *user)
{
	struct node *n = user;

	n->assembled++;
	n->assembled_err = err;
	if (err)
		return;
	n->g = *gr;
	assert_int_equal(kw_app_avgnet_step(net, gr, ids, on_done, n), 0);
}

static void feed(struct node *n)
{
	struct kw_avg_candidate c[NS];
	size_t m = 0;

	for (unsigned i = 0; i < g->n_dht; i++)
		if (g->dht[i].looking) {
			memcpy(c[m].peer_id, g->dht[i].id, g->dht[i].len);
			c[m].peer_id_len = g->dht[i].len;
			c[m].expiration = g->dht[i].exp;
			m++;
		}
	kw_app_avgnet_candidates(n->net, c, m);
}

static void test_avgnet_matchmaking_assembles_and_averages(void **state)
{
	static const double w[NS] = { 1.0, 1.0, 1.0 };
	static const int all[NS] = { 1, 1, 1 };
	struct kw_app_avgnet_match m = {
		.key = PREFIX ".0b", .schema_hash = schema, .schema_hash_len = sizeof(schema),
		.mode = KW_AVG_NODE, .bandwidth = KW_AVG_BW_NONE, .min_group_size = 2,
		.target_group_size = 3, .declare = t_declare,
	};
	struct kw_app_avgnet_stats st;
	unsigned led = 0;

	snapshot();
	for (int k = 0; k < NS; k++) {
		m.timeout_ms = 3000 + 1000 * (uint32_t)k;   /* a expires first: a leads */
		m.declare_arg = &g->n[k];
		assert_int_equal(kw_app_avgnet_match(g->n[k].net, &m, on_assembled, &g->n[k]), 0);
	}
	assert_int_equal(g->n_dht, 3);
	for (int k = 0; k < NS; k++)
		feed(&g->n[k]);
	run_until_done(300);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].assembled, 1);
		assert_int_equal(g->n[k].assembled_err, 0);
		assert_int_equal(g->n[k].g.n, 3);
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.peers_used, 3);
		assert_memory_equal(g->n[k].g.group_id, g->n[0].g.group_id, 20);
		kw_app_avgnet_get_stats(g->n[k].net, &st);
		led += (unsigned)st.groups_led;
	}
	assert_int_equal(led, 1);
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.groups_led, 1);
	assert_int_equal(st.joins_in, 2);
	/* withdrawn from the bucket after assembly */
	for (unsigned i = 0; i < g->n_dht; i++)
		assert_false(g->dht[i].looking);
	expect_mean(w, (const float (*)[N0])o0, (const float (*)[N1])o1, all, 1e-5f);
}

static void test_avgnet_alone_times_out(void **state)
{
	struct kw_app_avgnet_match m = {
		.key = PREFIX ".0b", .schema_hash = schema, .schema_hash_len = sizeof(schema),
		.mode = KW_AVG_NODE, .bandwidth = KW_AVG_BW_NONE, .min_group_size = 2,
		.timeout_ms = 500, .declare = t_declare, .declare_arg = &g->n[0],
	};

	assert_int_equal(kw_app_avgnet_match(g->n[0].net, &m, on_assembled, &g->n[0]), 0);
	assert_int_equal(kw_app_avgnet_match(g->n[0].net, &m, on_assembled, &g->n[0]),
			 -KW_EBUSY);
	feed(&g->n[0]);
	advance(400);
	assert_int_equal(g->n[0].assembled, 0);
	advance(200);
	assert_int_equal(g->n[0].assembled, 1);
	assert_int_equal(g->n[0].assembled_err, -KW_ETIMEDOUT);
	assert_false(g->dht[0].looking);
}

/* A part stream from c while a and b run a round without it: refused, the round unharmed. */
static void test_avgnet_part_from_outside_the_group_is_refused(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	struct kw_avg_bytes ids[NS];
	struct kw_app_avgnet_stats st;
	struct kw_avg_group ga, gc;

	make_group(modes, ids);
	/* a and b: a two-peer group; c believes in a three-peer group with another id */
	for (int k = 0; k < 2; k++) {
		g->n[k].g.n = 2;
		node_step(k, ids);
	}
	ga = g->n[0].g;
	gc = g->n[2].g;
	gc.group_id[0] = 0x01;
	assert_int_equal(kw_app_avgnet_step(g->n[2].net, &gc, ids, on_done, &g->n[2]), 0);
	run_until_done(400);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.n_excluded, 0);
		assert_int_equal(g->n[k].r.peers_used, 2);
	}
	/* c's streams waited pending_ms for a group with its id, then were answered
	 * BAD_GROUP_ID (hivemind: no running group with that id) */
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.refused, 1);
	kw_app_avgnet_get_stats(g->n[1].net, &st);
	assert_int_equal(st.refused, 1);
	/* c learns that a and b refused it */
	assert_int_equal(g->n[2].done, 1);
	assert_int_equal(g->n[2].r.n_excluded, 2);
	(void)ga;
}

/*
 * hivemind's compute_schema_hash (averager.py @ 4bd43b7) for one float32 CPU tensor, derived
 * by hand from the source: msgpack of [{field: str(value)}] in TensorDescriptor field order
 * (size, dtype, layout, device, requires_grad, pin_memory, compression). For torch.zeros(1000):
 *   91 87  a4"size" b2"torch.Size([1000])"  a5"dtype" ad"torch.float32"
 *          a6"layout" ad"torch.strided"  a6"device" a3"cpu"  ad"requires_grad" a5"False"
 *          aa"pin_memory" a5"False"  ab"compression" a1"0"
 * and the hashes are Python hashlib.sha1 of those bytes (2-D: "torch.Size([2, 3])", 0-D:
 * "torch.Size([])").
 */
static const uint8_t schema_mp_1000[] = {
	0x91, 0x87, 0xa4, 's', 'i', 'z', 'e', 0xb2, 't', 'o', 'r', 'c', 'h', '.', 'S', 'i', 'z',
	'e', '(', '[', '1', '0', '0', '0', ']', ')', 0xa5, 'd', 't', 'y', 'p', 'e', 0xad, 't',
	'o', 'r', 'c', 'h', '.', 'f', 'l', 'o', 'a', 't', '3', '2', 0xa6, 'l', 'a', 'y', 'o',
	'u', 't', 0xad, 't', 'o', 'r', 'c', 'h', '.', 's', 't', 'r', 'i', 'd', 'e', 'd', 0xa6,
	'd', 'e', 'v', 'i', 'c', 'e', 0xa3, 'c', 'p', 'u', 0xad, 'r', 'e', 'q', 'u', 'i', 'r',
	'e', 's', '_', 'g', 'r', 'a', 'd', 0xa5, 'F', 'a', 'l', 's', 'e', 0xaa, 'p', 'i', 'n',
	'_', 'm', 'e', 'm', 'o', 'r', 'y', 0xa5, 'F', 'a', 'l', 's', 'e', 0xab, 'c', 'o', 'm',
	'p', 'r', 'e', 's', 's', 'i', 'o', 'n', 0xa1, '0',
};
static const uint8_t schema_1000[20] = {
	0x22, 0x8c, 0xcd, 0x6a, 0xf0, 0x26, 0xbc, 0x51, 0x0b, 0xf6,
	0x3b, 0xb0, 0xc5, 0x1f, 0xdb, 0xcf, 0xa4, 0x34, 0x47, 0x6a,
};
static const uint8_t schema_2x3[20] = {
	0x14, 0x6f, 0x7c, 0x5c, 0x16, 0x97, 0x04, 0xcb, 0x31, 0xdb,
	0x7a, 0xfc, 0xc5, 0x41, 0x17, 0x9a, 0xee, 0x51, 0x38, 0x4c,
};
static const uint8_t schema_scalar[20] = {
	0xce, 0x72, 0xec, 0xea, 0xf6, 0x58, 0x45, 0xf1, 0x7e, 0xb0,
	0xcb, 0x16, 0x0c, 0xfc, 0x77, 0x0d, 0x7c, 0x25, 0x55, 0x3e,
};

static void test_avgnet_schema_hash_is_hiveminds(void **state)
{
	const uint64_t n1000 = 1000, n2x3[2] = { 2, 3 }, many[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	struct kw_hm_dhtid h;
	uint8_t out[20];

	(void)state;
	/* the hand-built bytes are what the hash is of */
	assert_int_equal(sizeof(schema_mp_1000), 129);
	kw_hm_dhtid_hash(schema_mp_1000, sizeof(schema_mp_1000), &h);
	assert_memory_equal(h.b, schema_1000, 20);

	assert_int_equal(kw_app_avgnet_schema_hash(&n1000, 1, out), 0);
	assert_memory_equal(out, schema_1000, 20);
	assert_int_equal(kw_app_avgnet_schema_hash(n2x3, 2, out), 0);
	assert_memory_equal(out, schema_2x3, 20);
	assert_int_equal(kw_app_avgnet_schema_hash(NULL, 0, out), 0);
	assert_memory_equal(out, schema_scalar, 20);
	assert_int_equal(kw_app_avgnet_schema_hash(NULL, 1, out), -KW_EINVAL);
	assert_int_equal(kw_app_avgnet_schema_hash(many, 9, out), -KW_EINVAL);
}

/* ---- the star: a and c have no connection until a round needs one ---------------------- */

static bool connected(int i, int j)
{
	return kw_swarm_find_conn(g->n[i].s->sw, kw_swarm_peer_id(g->n[j].s->sw)) != NULL;
}

static void test_avgnet_star_groupmates_dial_each_other_and_average_exactly(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	static const double w[NS] = { 1.0, 2.0, 3.0 };
	static const int all[NS] = { 1, 1, 1 };
	struct kw_avg_bytes ids[NS];
	struct kw_app_avgnet_stats st;

	(void)state;
	assert_false(connected(0, 2));
	assert_false(connected(2, 0));
	make_group(modes, ids);
	snapshot();
	for (int k = 0; k < NS; k++) {
		node_accumulate(k, w[k]);
		node_step(k, ids);
	}
	run_until_done(300);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.err, 0);
		assert_int_equal(g->n[k].r.peers_used, 3);
		assert_int_equal(g->n[k].r.n_excluded, 0);
	}
	expect_mean(w, (const float (*)[N0])o0, (const float (*)[N1])o1, all, 1e-5f);
	assert_true(connected(0, 2));
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.dials, 1);          /* to c; b was connected */
	assert_int_equal(st.dials_failed, 0);
	assert_int_equal(st.streams_out, 2);
	kw_app_avgnet_get_stats(g->n[1].net, &st);
	assert_int_equal(st.dials, 0);
	/* the next round finds the connection: no dial */
	t_connects = 0;
	snapshot();
	for (int k = 0; k < NS; k++) {
		g->n[k].done = 0;
		g->n[k].g.group_id[0] = 0x77;
		node_step(k, ids);
	}
	run_until_done(300);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.n_excluded, 0);
	}
	assert_int_equal(t_connects, 0);
}

/* c can be found by neither a nor b's star: its dials to and from a fail; c keeps running. */
static void test_avgnet_star_unreachable_groupmate_is_excluded_others_finish(void **state)
{
	static const enum kw_avg_mode modes[NS] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	struct kw_avg_bytes ids[NS];
	struct kw_app_avgnet_stats st;

	(void)state;
	t_fail = 1u << 0 | 1u << 2;
	make_group(modes, ids);
	snapshot();
	for (int k = 0; k < NS; k++)
		node_step(k, ids);
	run_until_done(600);
	for (int k = 0; k < NS; k++)
		assert_int_equal(g->n[k].done, 1);
	/* a and c excluded each other; b, reached by both, excluded nobody */
	assert_int_equal(g->n[0].r.n_excluded, 1);
	assert_int_equal(g->n[0].r.excluded_mask, 1u << 2);
	assert_int_equal(g->n[2].r.n_excluded, 1);
	assert_int_equal(g->n[2].r.excluded_mask, 1u << 0);
	assert_int_equal(g->n[1].r.n_excluded, 0);
	assert_false(connected(0, 2));
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.dials, 1);
	assert_int_equal(st.dials_failed, 1);
	/* partition as in the silent-peer test: a reduces t0[0, 2048) from a and b, b t0[2048,
	 * 3072) from all three, c the rest from b and c; a part a reducer could not get stays
	 * its owner's own values */
	for (int i = 0; i < N0; i++) {
		float ab = (o0[0][i] + o0[1][i]) / 2, bc = (o0[1][i] + o0[2][i]) / 2;
		float abc = (o0[0][i] + o0[1][i] + o0[2][i]) / 3;
		float want[NS];

		if (i < 2048) {
			want[0] = want[1] = ab;
			want[2] = o0[2][i];
		} else if (i < 3072) {
			want[0] = want[1] = want[2] = abc;
		} else {
			want[0] = o0[0][i];
			want[1] = want[2] = bc;
		}
		for (int k = 0; k < NS; k++)
			if (fabsf(g->n[k].t0[i] - want[k]) > 1e-5f) {
				print_error("node %d t0[%d] = %.7f, want %.7f\n", k, i, g->n[k].t0[i],
					    want[k]);
				fail();
			}
	}
}

/* a leads (it expires first); c, not connected to a, dials it to join. */
static void test_avgnet_star_follower_dials_its_leader(void **state)
{
	static const double w[NS] = { 1.0, 1.0, 1.0 };
	static const int all[NS] = { 1, 1, 1 };
	struct kw_app_avgnet_match m = {
		.key = PREFIX ".0b", .schema_hash = schema, .schema_hash_len = sizeof(schema),
		.mode = KW_AVG_NODE, .bandwidth = KW_AVG_BW_NONE, .min_group_size = 3,
		.target_group_size = 3, .declare = t_declare,
	};
	struct kw_app_avgnet_stats st;

	(void)state;
	snapshot();
	for (int k = 0; k < NS; k++) {
		m.timeout_ms = 3000 + 1000 * (uint32_t)k;
		m.declare_arg = &g->n[k];
		assert_int_equal(kw_app_avgnet_match(g->n[k].net, &m, on_assembled, &g->n[k]), 0);
	}
	for (int k = 0; k < NS; k++)
		feed(&g->n[k]);
	run_until_done(400);
	for (int k = 0; k < NS; k++) {
		assert_int_equal(g->n[k].assembled, 1);
		assert_int_equal(g->n[k].assembled_err, 0);
		assert_int_equal(g->n[k].g.n, 3);
		assert_int_equal(g->n[k].done, 1);
		assert_int_equal(g->n[k].r.n_excluded, 0);
	}
	kw_app_avgnet_get_stats(g->n[0].net, &st);
	assert_int_equal(st.groups_led, 1);
	assert_int_equal(st.joins_in, 2);
	kw_app_avgnet_get_stats(g->n[2].net, &st);
	assert_int_equal(st.groups_followed, 1);
	assert_true(st.dials >= 1);
	assert_int_equal(st.dials_failed, 0);
	expect_mean(w, (const float (*)[N0])o0, (const float (*)[N1])o1, all, 1e-5f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_avgnet_schema_hash_is_hiveminds),
		cmocka_unit_test_setup_teardown(test_avgnet_three_nodes_average_exactly_over_streams,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_silent_peer_is_excluded_and_the_others_finish,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_client_sends_and_aux_reduces,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_matchmaking_assembles_and_averages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_alone_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_part_from_outside_the_group_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_avgnet_star_groupmates_dial_each_other_and_average_exactly,
			setup_star, teardown),
		cmocka_unit_test_setup_teardown(
			test_avgnet_star_unreachable_groupmate_is_excluded_others_finish,
			setup_star, teardown),
		cmocka_unit_test_setup_teardown(test_avgnet_star_follower_dials_its_leader,
						setup_star, teardown),
	};

	if (kw_codec_init(&codec, KW_SIMD_AUTO))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
