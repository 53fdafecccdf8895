/*
 * Averaging inside the daemon (app/avg_app.c over app/avg_run.c) with three nodes on the
 * simulated network (the net/hivemind fixture hm_pair.h, a to c dialled here as well), each
 * with a Hivemind DHT bootstrapped from b: the daemon-style averager of every node averages
 * its tensor file (values checked against the mean, the file rewritten); node a is the
 * contribution policy's drain client "averaging": drained while it searches it withdraws
 * (its DHT entry reads False) and the others' round runs without it; drained during an
 * all-reduce it finishes the round first and only then is the policy paused; resumed it
 * averages again. In a star (a and c connected only to b, as daemons bootstrapped from one
 * peer are) the daemons reach each other through their DHT's address book and all three
 * average in one group; a leader nobody has an address of is skipped by the peer that cannot
 * reach it, and the others average. Plus the averaging_* config keys' errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../net/hivemind/hm_pair.h"
#include "../../../app/avg_app.h"
#include "../../../app/avg_net.h"
#include "../../../app/avg_run.h"

#include <kw/app.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/policy.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/swarm.h>

#define NS 3
#define N 3000          /* values: three parts of 1024 */
#define PREFIX "edgeavg"

static const struct kw_hm_limits hm_limits = {
	.calls_in = 16, .calls_per_peer = 8, .calls_out = 16, .buf_bytes = 8192,
	.timeout_ms = 2000,
};

struct node {
	struct kw_hm_side *s;
	struct kw_hm_dht *d;
	struct kw_app *app;
	struct kw_app_avgd *avgd;
	char file[256];
	float in[N];
	int boot_done, boot_err;
};

struct fx {
	struct kw_hm_pair p;
	struct node n[NS];
	struct kw_conn *ac;
	int ac_done;
	char dir[64];
	/* node a's policy */
	struct kw_policy pol;
	struct kw_policy_sensors sens;
	bool have_pol;
};

static struct fx *g;

static void pump(int passes)
{
	kw_hm_pair_pump(&g->p, passes);
}

static void advance(uint64_t ms)
{
	kw_hm_pair_advance(&g->p, ms);
}

static void on_ac(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	(void)sw;
	(void)user;
	g->ac_done++;
	g->ac = err ? NULL : c;
}

static void on_boot(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p, void *user)
{
	struct node *n = user;

	(void)d;
	(void)p;
	n->boot_done++;
	n->boot_err = err;
}

static int pol_read(struct kw_policy *p, struct kw_policy_sensors *out, void *arg)
{
	(void)p;
	(void)arg;
	*out = g->sens;
	return 0;
}

/* DHT time on the simulated clock, for the DHTs and the averagers alike */
static double sim_now(void *arg)
{
	(void)arg;
	return 1.7e9 + (double)kw_loop_now(&g->p.a.t->node->loop) / 1000.0;
}

enum topo { MESH, STAR, STAR_AC_UNKNOWN };

static int make_dht(struct node *n, bool client)
{
	struct kw_hm_dht_config dc;
	int ret = kw_hm_dht_config_default(&dc);

	if (ret < 0)
		return ret;
	dc.store_cells = dc.cache_cells = 32;
	dc.cell_bytes = 512;
	dc.dict_max = 16;
	dc.buf_bytes = hm_limits.buf_bytes;
	dc.client_ops = 8;
	dc.client_rpcs = 16;
	dc.candidates = 64;
	dc.merge_cells = 32;
	dc.addr_book = 16;
	dc.rt.bucket_size = 20;
	dc.rt.max_nodes = 64;
	dc.rt.max_buckets = 16;
	dc.clock = sim_now;
	dc.client_mode = client;
	return kw_hm_dht_create(n->s->sw, n->s->hm, &dc, &n->d);
}

static int setup_net(enum topo topo)
{
	struct kw_hm_side *sides[NS];

	g = calloc(1, sizeof(*g));
	if (!g || kw_hm_pair_init(&g->p, 3, &hm_limits, 24 * 1024) < 0)
		return -1;
	snprintf(g->dir, sizeof(g->dir), "/tmp/kw_avgd_%d", (int)getpid());
	mkdir(g->dir, 0700);
	sides[0] = &g->p.a;
	sides[1] = &g->p.b;
	sides[2] = &g->p.c;
	for (int k = 0; k < NS; k++) {
		g->n[k].s = sides[k];
		/* in the star a and c are client-mode DHT nodes: nobody's routing table holds
		 * them, so the DHT itself never connects a with c */
		if (make_dht(&g->n[k], topo != MESH && k != 1) < 0)
			return -1;
	}
	if (kw_hm_pair_connect(&g->p) < 0 ||
	    (topo == MESH && kw_swarm_dial(g->p.a.sw, g->p.c.addr, on_ac, NULL) < 0))
		return -1;
	pump(50);
	if (topo == MESH && (g->ac_done != 1 || !g->ac))
		return -1;
	for (int i = 0; i < NS; i++)
		for (int j = 0; j < NS; j++) {
			const struct kw_peer_id *pid = kw_swarm_peer_id(g->n[j].s->sw);

			if (topo == STAR_AC_UNKNOWN && i + j == 2 && i != j)
				continue;   /* a and c know nothing of each other's addresses */
			if (i != j && kw_hm_dht_add_addr(g->n[i].d, pid->bytes, pid->len,
							 g->n[j].s->addr) < 0)
				return -1;
		}
	for (int k = 0; k < NS; k += 2)
		if (kw_hm_dht_bootstrap(g->n[k].d, g->p.b.addr, on_boot, &g->n[k]) < 0)
			return -1;
	pump(200);
	for (int k = 0; k < NS; k += 2)
		if (g->n[k].boot_done != 1 || g->n[k].boot_err)
			return -1;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return setup_net(MESH);
}

static int setup_star(void **state)
{
	(void)state;
	return setup_net(STAR);
}

static int setup_star_ac_unknown(void **state)
{
	(void)state;
	return setup_net(STAR_AC_UNKNOWN);
}

static int teardown(void **state)
{
	(void)state;
	for (int k = 0; k < NS; k++) {
		kw_app_avgd_stop(g->n[k].avgd);
		if (g->n[k].file[0])
			unlink(g->n[k].file);
		free(g->n[k].app);
	}
	if (g->have_pol)
		kw_policy_stop(&g->pol);
	pump(20);
	kw_hm_pair_fini(&g->p);
	rmdir(g->dir);
	free(g);
	g = NULL;
	return 0;
}

static void set(struct kw_config *c, const char *k, const char *v)
{
	char err[200];

	if (kw_config_set(c, k, v, err, sizeof(err)) < 0)
		fail_msg("%s = %s: %s", k, v, err);
}

/* Node k's app: averaging_* keys, the tensor file in[i] = k + i / 1000 written first. */
static void make_app(int k, unsigned min_group, unsigned target)
{
	struct node *n = &g->n[k];
	struct kw_config *c;
	char v[32];
	FILE *f;

	n->app = calloc(1, sizeof(*n->app));
	assert_non_null(n->app);
	c = &n->app->cfg;
	kw_config_defaults(c);
	set(c, "hivemind", "on");
	set(c, "data_dir", g->dir);
	set(c, "averaging_prefix", PREFIX);
	snprintf(v, sizeof(v), "t%d.bin", k);
	set(c, "averaging_tensor", v);
	set(c, "averaging_period", "2");
	set(c, "averaging_match_timeout_ms", "1500");
	snprintf(v, sizeof(v), "%u", min_group);
	set(c, "averaging_min_group_size", v);
	snprintf(v, sizeof(v), "%u", target);
	set(c, "averaging_target_group_size", v);
	snprintf(n->file, sizeof(n->file), "%s/t%d.bin", g->dir, k);
	for (int i = 0; i < N; i++)
		n->in[i] = (float)k + (float)i / 1000.0f;
	f = fopen(n->file, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(n->in, sizeof(float), N, f), N);
	fclose(f);
	n->app->sw = n->s->sw;
	n->app->hm = n->s->hm;
	n->app->hm_dht = n->d;
	if (k == 0 && g->have_pol)
		n->app->policy = &g->pol;
}

static void start(int k)
{
	struct node *n = &g->n[k];

	int err = kw_app_avgd_start(n->s->t->node, n->app, sim_now, NULL, &n->avgd);

	if (err == -KW_ENOMEM) {
		/* the Kconfig maxima (check-kconfig ranges) make the Hivemind stream pools
		 * larger than the test's 24 MiB node arena; the log names the pool */
		printf("  skipped: the averager's pools do not fit a 24 MiB node arena in this "
		       "build\n");
		skip();
	}
	assert_int_equal(err, 0);
	assert_non_null(n->avgd);
}

static void policy_begin(void)
{
	struct kw_policy_settings s;
	char err[128];

	kw_policy_settings_defaults(&s);
	s.require_ac = true;
	s.pause_on_undervoltage = s.pause_on_throttle = false;
	s.quiet_start_min = s.quiet_end_min = -1;
	s.min_dwell_ms = 0;
	s.poll_ms = 600000;   /* decisions only where the test polls (and the drain's task) */
	s.drain_timeout_ms = 0;
	g->sens = (struct kw_policy_sensors){ .ac = 1, .battery_pct = -1, .low_battery = -1,
					      .local_min = -1 };
	assert_int_equal(kw_policy_init(&g->pol, &g->p.a.t->node->loop, &s, pol_read, NULL, err,
					sizeof(err)), 0);
	assert_int_equal(kw_policy_start(&g->pol), 0);
	g->have_pol = true;
}

static enum kw_policy_state pol_state(void)
{
	return kw_policy_status(&g->pol)->state;
}

static void view(int k, struct kw_app_avgd_view *v)
{
	kw_app_avgd_view(g->n[k].avgd, v);
}

/* Advances in steps of ms until node k has `rounds` rounds (at most `limit` ms). */
static bool wait_rounds(int k, uint64_t rounds, uint64_t limit, uint64_t ms)
{
	struct kw_app_avgd_view v;

	for (uint64_t t = 0; t <= limit; t += ms) {
		view(k, &v);
		if (v.rounds >= rounds)
			return true;
		advance(ms);
	}
	return false;
}

/* The tensor file of node k holds the mean of the inputs of nodes in mask. */
static void assert_file_mean(int k, unsigned mask)
{
	static float got[N];
	FILE *f = fopen(g->n[k].file, "rb");
	unsigned cnt = 0;

	assert_non_null(f);
	assert_int_equal(fread(got, sizeof(float), N, f), N);
	fclose(f);
	for (int j = 0; j < NS; j++)
		cnt += mask >> j & 1;
	for (int i = 0; i < N; i += 7) {
		double want = 0;

		for (int j = 0; j < NS; j++)
			if (mask >> j & 1)
				want += g->n[j].in[i];
		want /= cnt;
		if (fabs(got[i] - want) > 1e-4)
			fail_msg("node %d value %d: %f, the mean is %f", k, i, got[i], want);
	}
}

/* ---- rounds ---------------------------------------------------------------------------- */

/* Node k's view after its first round: one group of the three, nobody excluded. */
static void one_clean_round_of_three(int k, struct kw_app_avgd_view *v)
{
	view(k, v);
	assert_int_equal(v->rounds, 1);
	assert_int_equal(v->last_group, 3);
	assert_int_equal(v->peers_excluded, 0);
	assert_int_equal(v->round_failed, 0);
}

static void test_avg_daemon_three_nodes_average_their_files(void **state)
{
	struct kw_app_avgd_view v;

	(void)state;
	for (int k = 0; k < NS; k++)
		make_app(k, 3, 3);
	for (int k = 0; k < NS; k++)
		start(k);
	for (int k = 0; k < NS; k++)
		assert_true(wait_rounds(k, 1, 20000, 10));
	for (int k = 0; k < NS; k++) {
		one_clean_round_of_three(k, &v);
		assert_int_equal(v.write_failed, 0);
		assert_string_equal(v.state, "idle");   /* the next round waits for the period */
		assert_file_mean(k, 7);
	}
	/* the owners write new tensors between rounds: the period's next round averages them */
	for (int k = 0; k < NS; k++) {
		FILE *f;

		for (int i = 0; i < N; i++)
			g->n[k].in[i] = 10.0f * (float)k - (float)i / 500.0f;
		f = fopen(g->n[k].file, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(g->n[k].in, sizeof(float), N, f), N);
		fclose(f);
	}
	for (int k = 0; k < NS; k++)
		assert_true(wait_rounds(k, 2, 20000, 10));
	for (int k = 0; k < NS; k++)
		assert_file_mean(k, 7);
}

/* ---- draining while searching ---------------------------------------------------------- */

struct entry_find {
	const uint8_t *id;
	size_t len;
	int value;   /* -1 absent, else the value byte */
};

static int find_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		      double exp, void *arg)
{
	struct entry_find *e = arg;

	(void)exp;
	if (sub_len == e->len + 2 && !memcmp(sub + 2, e->id, e->len) && val_len == 1)
		e->value = val[0];
	return 0;
}

struct got_value {
	int done, err;
	struct entry_find e;
};

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct got_value *gv = user;
	const char *why;

	(void)d;
	gv->done++;
	gv->err = err;
	if (!err && v->type == KW_HM_DHT_FOUND_DICTIONARY)
		kw_hm_dict_walk(v->value, v->len, find_entry, &gv->e, &why);
}

/* What node k reads under the group key for node a's entry: 0xc3 True, 0xc2 False. */
static int a_entry_seen_by(int k)
{
	struct got_value gv;
	struct kw_hm_dhtid id;
	const struct kw_peer_id *pa = kw_swarm_peer_id(g->p.a.sw);

	memset(&gv, 0, sizeof(gv));
	gv.e.id = pa->bytes;
	gv.e.len = pa->len;
	gv.e.value = -1;
	kw_hm_dhtid_of_str(PREFIX ".0b", strlen(PREFIX ".0b"), &id);
	assert_int_equal(kw_hm_dht_get(g->n[k].d, &id, true, on_get, &gv), 0);
	for (int i = 0; i < 40 && !gv.done; i++)
		advance(20);
	assert_int_equal(gv.done, 1);
	return gv.e.value;
}

static void test_avg_daemon_drain_while_matching_withdraws_and_leaves(void **state)
{
	struct kw_app_avgd_view v;
	struct kw_app_avgnet_stats ns;

	(void)state;
	policy_begin();
	for (int k = 0; k < NS; k++)
		make_app(k, 2, 3);
	start(0);
	advance(50);
	view(0, &v);
	assert_string_equal(v.state, "matching");
	assert_int_equal(a_entry_seen_by(1), 0xc3);   /* declared: looking */

	g->sens.ac = 0;   /* on battery: the policy drains */
	kw_policy_poll(&g->pol);
	assert_int_equal(pol_state(), KW_POLICY_DRAINING);
	view(0, &v);
	assert_int_equal(v.drains, 1);
	assert_int_equal(v.withdrawals, 1);
	assert_string_equal(v.state, "paused");
	kw_app_avgnet_get_stats(kw_app_avgrun_net(kw_app_avgd_runner(g->n[0].avgd)), &ns);
	assert_int_equal(ns.leaves, 1);
	/* drained once the False entry is stored, not before */
	for (int i = 0; i < 50 && pol_state() == KW_POLICY_DRAINING; i++)
		advance(20);
	assert_int_equal(pol_state(), KW_POLICY_PAUSED);
	assert_int_equal(a_entry_seen_by(1), 0xc2);   /* withdrawn: not looking */

	/* the others average without us */
	start(1);
	start(2);
	assert_true(wait_rounds(1, 1, 20000, 10));
	assert_true(wait_rounds(2, 1, 20000, 10));
	view(1, &v);
	assert_int_equal(v.last_group, 2);
	assert_int_equal(v.peers_excluded, 0);
	view(0, &v);
	assert_int_equal(v.rounds, 0);
	assert_int_equal(v.searches, 1);
	assert_string_equal(v.state, "paused");
	assert_file_mean(1, 6);
	assert_file_mean(0, 1);   /* untouched */
}

/* A stop signal (app/main.c: kw_app_avgd_before_stop ahead of the OFFLINE records and the
 * swarm's drain) leaves a search the same way and goes on only once the False entry is
 * stored. */
static int g_then;

static void on_then(struct kw_node *n)
{
	(void)n;
	g_then++;
}

static void test_avg_daemon_stop_signal_withdraws_first(void **state)
{
	struct kw_app_avgd_view v;
	struct kw_app_avgrun *run;
	struct kw_node *na = g->p.a.t->node;

	(void)state;
	make_app(0, 2, 3);
	start(0);
	g->n[0].app->avg = g->n[0].avgd;
	kw_app_attach(na, g->n[0].app);
	advance(50);
	view(0, &v);
	assert_string_equal(v.state, "matching");
	run = kw_app_avgd_runner(g->n[0].avgd);
	g_then = 0;
	assert_int_equal(kw_app_avgd_before_stop(na, on_then), 0);
	view(0, &v);
	assert_int_equal(v.withdrawals, 1);
	assert_string_equal(v.state, "paused");
	assert_int_equal(g_then, 0);              /* the False entry is being stored */
	assert_true(kw_app_avgrun_busy(run));
	for (int i = 0; i < 50 && !g_then; i++)
		advance(20);
	assert_int_equal(g_then, 1);
	assert_false(kw_app_avgrun_busy(run));
	assert_int_equal(a_entry_seen_by(1), 0xc2);
	/* a second call: already stopping */
	assert_int_equal(kw_app_avgd_before_stop(na, on_then), -KW_ENOENT);
	advance(5000);   /* stopping: no round starts again */
	view(0, &v);
	assert_int_equal(v.searches, 1);
	assert_int_equal(g_then, 1);
	kw_app_attach(na, NULL);
}

/* A stop signal during a's all-reduce: the round ends, its result is written back (on a
 * card 3 s slow, longer than the round's own DHT traffic), and only then does the stop go on:
 * its continuation finds the file written, no I/O in flight, and the loop served the other
 * nodes meanwhile. */
static bool g_then_io_busy;
static uint64_t g_write_at_ms;

static int slow_write(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op)
{
	if (op != KW_AVGD_IO_WRITE || io != kw_app_avgd_io_of(g->n[0].avgd))
		return 0;
	g_write_at_ms = kw_loop_now(&g->p.a.t->node->loop);
	return 3000;
}

static void on_then_io(struct kw_node *n)
{
	(void)n;
	g_then++;
	g_then_io_busy = kw_app_avgd_io_busy(kw_app_avgd_io_of(g->n[0].avgd));
}

static void test_avg_daemon_stop_during_allreduce_waits_for_the_write(void **state)
{
	struct kw_app_avgd_view v;
	struct kw_node *na = g->p.a.t->node;
	int steps;

	(void)state;
	for (int k = 0; k < NS; k++)
		make_app(k, 3, 3);
	for (int k = 0; k < NS; k++)
		start(k);
	g->n[0].app->avg = g->n[0].avgd;
	kw_app_attach(na, g->n[0].app);
	for (steps = 0; steps < 200000; steps++) {
		view(0, &v);
		if (!strcmp(v.state, "averaging"))
			break;
		kw_sim_advance(g->p.net->net, 1);
		pump(1);
	}
	assert_string_equal(v.state, "averaging");
	g_then = 0;
	g_write_at_ms = 0;
	kw_app_avgd_io_test_hook = slow_write;
	na->cfg.shutdown_drain_ms = 10000;   /* the stop's bound outlasts the slow write */
	assert_int_equal(kw_app_avgd_before_stop(na, on_then_io), 0);
	for (steps = 0; steps < 20000 && !g_then; steps++) {
		kw_sim_advance(g->p.net->net, 1);
		pump(1);
	}
	kw_app_avgd_io_test_hook = NULL;
	assert_int_equal(g_then, 1);
	assert_true(g_write_at_ms > 0);
	assert_false(g_then_io_busy);
	assert_true(kw_loop_now(&na->loop) >= g_write_at_ms + 3000);
	view(0, &v);
	assert_int_equal(v.rounds, 1);
	assert_int_equal(v.write_failed, 0);
	assert_file_mean(0, 7);
	/* b and c finished their rounds while a's write was slow */
	for (int k = 1; k < NS; k++) {
		view(k, &v);
		assert_int_equal(v.rounds, 1);
		assert_file_mean(k, 7);
	}
	kw_app_attach(na, NULL);
}

/* a leads a search b joined: drained, a sends b GROUP_DISBANDED; b searches on and later
 * averages with c alone */
static void test_avg_daemon_drain_of_a_leader_disbands_its_followers(void **state)
{
	struct kw_app_avgd_view v;
	struct kw_app_avgnet_stats sa, sb;
	struct kw_app_avgnet *na, *nb;
	int i;

	(void)state;
	policy_begin();
	for (int k = 0; k < NS; k++)
		make_app(k, 2, 3);
	start(0);
	advance(20);   /* a declares first: the earlier expiration leads */
	start(1);
	na = kw_app_avgrun_net(kw_app_avgd_runner(g->n[0].avgd));
	nb = kw_app_avgrun_net(kw_app_avgd_runner(g->n[1].avgd));
	for (i = 0; i < 140; i++) {
		kw_app_avgnet_get_stats(na, &sa);
		if (sa.joins_in)
			break;
		advance(10);
	}
	assert_int_equal(sa.joins_in, 1);   /* b asked a, before a's search expired */
	kw_app_avgnet_get_stats(nb, &sb);
	assert_int_equal(sb.joins_out, 1);
	assert_int_equal(sa.groups_led, 0);

	g->sens.ac = 0;
	kw_policy_poll(&g->pol);
	kw_app_avgnet_get_stats(na, &sa);
	assert_int_equal(sa.leaves, 1);
	assert_int_equal(sa.groups_led, 0);
	start(2);
	assert_true(wait_rounds(1, 1, 20000, 10));
	assert_true(wait_rounds(2, 1, 20000, 10));
	view(1, &v);
	assert_int_equal(v.last_group, 2);   /* b and c, not a */
	assert_int_equal(v.peers_excluded, 0);
	kw_app_avgnet_get_stats(nb, &sb);
	assert_int_equal(sb.groups_led + sb.groups_followed, 1);
	view(0, &v);
	assert_int_equal(v.rounds, 0);
	assert_int_equal(pol_state(), KW_POLICY_PAUSED);
	assert_file_mean(1, 6);
	assert_file_mean(2, 6);
	assert_file_mean(0, 1);
}

/* ---- draining during an all-reduce, then resuming ------------------------------------- */

static void test_avg_daemon_drain_during_allreduce_finishes_first_then_resumes(void **state)
{
	struct kw_app_avgd_view v;
	bool drained_seen = false;
	int steps, round_step = -1;

	(void)state;
	policy_begin();
	for (int k = 0; k < NS; k++)
		make_app(k, 3, 3);
	for (int k = 0; k < NS; k++)
		start(k);
	/* one loop pass at a time until a's all-reduce runs */
	for (steps = 0; steps < 200000; steps++) {
		view(0, &v);
		if (!strcmp(v.state, "averaging"))
			break;
		kw_sim_advance(g->p.net->net, 1);
		pump(1);
	}
	assert_string_equal(v.state, "averaging");
	g->sens.ac = 0;
	kw_policy_poll(&g->pol);
	assert_int_equal(pol_state(), KW_POLICY_DRAINING);   /* the round is in flight */
	view(0, &v);
	assert_int_equal(v.rounds, 0);
	assert_int_equal(v.withdrawals, 0);
	/* order: the round ends (with every peer), and only then is the policy paused */
	for (steps = 0; steps < 20000; steps++) {
		view(0, &v);
		if (v.rounds && round_step < 0)
			round_step = steps;
		if (pol_state() == KW_POLICY_PAUSED) {
			drained_seen = true;
			/* the result's write-back ended before the drain was reported done */
			assert_false(kw_app_avgd_io_busy(kw_app_avgd_io_of(g->n[0].avgd)));
			assert_file_mean(0, 7);
			break;
		}
		kw_sim_advance(g->p.net->net, 1);
		pump(1);
	}
	assert_true(drained_seen);
	assert_true(round_step >= 0);
	assert_true(round_step <= steps);
	assert_true(steps > 0);   /* not paused at once: the round was in flight */
	view(0, &v);
	assert_int_equal(v.rounds, 1);
	assert_int_equal(v.peers_excluded, 0);
	assert_int_equal(v.last_group, 3);
	for (int k = 0; k < NS; k++)
		assert_true(wait_rounds(k, 1, 5000, 10));
	for (int k = 0; k < NS; k++) {
		struct kw_app_avgd_view w;

		view(k, &w);
		assert_int_equal(w.peers_excluded, 0);
		assert_file_mean(k, 7);
	}
	/* paused: no new round of ours, however long */
	advance(5000);
	view(0, &v);
	assert_int_equal(v.rounds, 1);
	assert_string_equal(v.state, "paused");

	/* resume: a averages again, with b and c */
	g->sens.ac = 1;
	kw_policy_poll(&g->pol);
	assert_int_equal(pol_state(), KW_POLICY_CONTRIBUTING);
	view(0, &v);
	assert_int_equal(v.resumes, 1);
	assert_true(wait_rounds(0, 2, 30000, 10));
	view(0, &v);
	assert_int_equal(v.last_group, 3);
}

/* ---- the tensor file's errors ------------------------------------------------------------ */

static void write_floats(const char *path, const float *x, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(x, sizeof(float), n, f), n);
	fclose(f);
}

/* The file holds exactly the n values at want. */
static void assert_file_is(const char *path, const float *want, size_t n)
{
	static float got[N + 1];
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	assert_int_equal(fread(got, sizeof(float), N + 1, f), n);
	fclose(f);
	assert_memory_equal(got, want, n * sizeof(float));
}

/* Node a's file turns into another size, then disappears: each time a skips its round (the
 * file is neither averaged nor overwritten) and counts the reason; b and c average without
 * it. Put back, a averages again. */
static void test_avg_daemon_unreadable_file_skips_the_round_and_is_counted(void **state)
{
	struct kw_app_avgd_view v;
	float half[N / 2];

	(void)state;
	for (int k = 0; k < NS; k++)
		make_app(k, 2, 3);
	for (int k = 0; k < NS; k++)
		start(k);
	for (int i = 0; i < N / 2; i++)
		half[i] = 100.0f + (float)i;
	write_floats(g->n[0].file, half, N / 2);   /* before a's first period reads it */
	assert_true(wait_rounds(1, 1, 20000, 10));
	assert_true(wait_rounds(2, 1, 20000, 10));
	view(0, &v);
	assert_int_equal(v.rounds, 0);
	assert_true(v.read_size >= 1);
	assert_int_equal(v.read_missing, 0);
	assert_int_equal(v.read_io, 0);
	assert_int_equal(v.write_failed, 0);
	assert_file_is(g->n[0].file, half, N / 2);
	assert_file_mean(1, 6);
	assert_file_mean(2, 6);

	assert_int_equal(unlink(g->n[0].file), 0);
	for (int t = 0; t < 2000; t++) {
		view(0, &v);
		if (v.read_missing)
			break;
		advance(10);
	}
	assert_int_equal(v.read_missing, 1);
	assert_int_equal(v.rounds, 0);
	assert_int_equal(access(g->n[0].file, F_OK), -1);   /* nothing written in its place */

	write_floats(g->n[0].file, g->n[0].in, N);
	assert_true(wait_rounds(0, 1, 30000, 10));
	view(0, &v);
	assert_true(v.last_group >= 2);
}

/* The write-back cannot make "<file>.tmp" (a directory is in its place): the round's result
 * is not written, the old file keeps its bytes, the failure is counted. */
static void test_avg_daemon_failed_write_keeps_the_old_file(void **state)
{
	struct kw_app_avgd_view v;
	char tmp[300];

	(void)state;
	for (int k = 0; k < NS; k++)
		make_app(k, 3, 3);
	snprintf(tmp, sizeof(tmp), "%s.tmp", g->n[0].file);
	assert_int_equal(mkdir(tmp, 0700), 0);
	for (int k = 0; k < NS; k++)
		start(k);
	for (int k = 0; k < NS; k++)
		assert_true(wait_rounds(k, 1, 20000, 10));
	pump(5);
	view(0, &v);
	rmdir(tmp);
	assert_int_equal(v.rounds, 1);
	assert_int_equal(v.write_failed, 1);
	assert_file_is(g->n[0].file, g->n[0].in, N);
	assert_file_mean(1, 7);
}

/* ---- config --------------------------------------------------------------------------- */

static void expect_err(const char *text, const char *needle)
{
	struct kw_config *c = calloc(1, sizeof(*c));
	char err[256] = "";

	assert_non_null(c);
	kw_config_defaults(c);
	assert_int_equal(kw_config_parse(c, text, strlen(text), err, sizeof(err)), -KW_ECONFIG);
	if (!strstr(err, needle))
		fail_msg("'%s': error '%s' does not say '%s'", text, err, needle);
	free(c);
}

static void test_avg_daemon_config_errors_name_the_key(void **state)
{
	struct kw_config *c = calloc(1, sizeof(*c));
	const char *ok = "hivemind = on\naveraging_prefix = edge\naveraging_size = 1000\n"
			 "averaging_mode = aux\naveraging_compression = float16\n";
	char err[256] = "";

	(void)state;
	assert_non_null(c);
	kw_config_defaults(c);
	assert_string_equal(c->averaging_prefix, "");   /* off by default */
	assert_int_equal(kw_config_parse(c, ok, strlen(ok), err, sizeof(err)), 0);
	assert_string_equal(c->averaging_prefix, "edge");
	assert_int_equal(c->averaging_size, 1000);
	assert_int_equal(c->averaging_mode, KW_AVG_AUX);
	assert_int_equal(c->averaging_compression, KW_COMP_FLOAT16);
	free(c);
	expect_err("averaging_mode = fast\n", "averaging_mode must be node, client or aux");
	expect_err("averaging_compression = zip\n", "averaging_compression must be none");
	expect_err("averaging_prefix = a.b\n", "averaging_prefix must be");
	expect_err("averaging_target_group_size = 40\n", "averaging_target_group_size must be 2..16");
	expect_err("averaging_match_timeout_ms = 10\n", "averaging_match_timeout_ms must be");
	expect_err("averaging_period = 0\n", "averaging_period must be 1..86400");
	expect_err("averaging_prefix = edge\naveraging_size = 8\n", "needs hivemind = on");
	expect_err("hivemind = on\naveraging_prefix = edge\n", "averaging_size or averaging_tensor");
	expect_err("hivemind = on\naveraging_prefix = edge\naveraging_size = 8\n"
		   "averaging_min_group_size = 5\naveraging_target_group_size = 3\n",
		   "averaging_min_group_size (5) is above averaging_target_group_size (3)");
}

static void test_avg_daemon_bad_tensor_file_refused(void **state)
{
	struct node *n = &g->n[0];
	FILE *f;

	(void)state;
	make_app(0, 2, 3);
	f = fopen(n->file, "wb");   /* 7 bytes: not whole float32 values */
	assert_non_null(f);
	assert_int_equal(fwrite("1234567", 1, 7, f), 7);
	fclose(f);
	assert_int_equal(kw_app_avgd_start(n->s->t->node, n->app, sim_now, NULL, &n->avgd), -KW_EINVAL);
	assert_null(n->avgd);
	/* a size the file disagrees with */
	f = fopen(n->file, "wb");
	assert_int_equal(fwrite(n->in, sizeof(float), 10, f), 10);
	fclose(f);
	n->app->cfg.averaging_size = 11;
	assert_int_equal(kw_app_avgd_start(n->s->t->node, n->app, sim_now, NULL, &n->avgd), -KW_EINVAL);
	/* no prefix: nothing started, nothing allocated */
	n->app->cfg.averaging_prefix[0] = '\0';
	assert_int_equal(kw_app_avgd_start(n->s->t->node, n->app, sim_now, NULL, &n->avgd), 0);
	assert_null(n->avgd);
}

/* The rounds run on the Kconfig timeouts (the daemon takes them as they are): the simulated
 * network moves a part in tens of milliseconds of its clock, so a sender timeout below 1 s,
 * a round timeout below 3 s or Hivemind calls timing out below 1 s exclude peers here. */
/* ---- a star: groupmates reached by dialling -------------------------------------------- */

static bool connected(int i, int j)
{
	return kw_swarm_find_conn(g->n[i].s->sw, kw_swarm_peer_id(g->n[j].s->sw)) != NULL;
}

static void net_stats(int k, struct kw_app_avgnet_stats *st)
{
	kw_app_avgnet_get_stats(kw_app_avgrun_net(kw_app_avgd_runner(g->n[k].avgd)), st);
}

/* b, the hub, averages as a client (it neither leads nor reduces): a or c leads and reduces
 * the tensor (one part: the Kconfig part size holds it whole), so the other must reach it. */
static void star_apps(unsigned min_group)
{
	for (int k = 0; k < NS; k++)
		make_app(k, min_group, 3);
	set(&g->n[1].app->cfg, "averaging_mode", "client");
	for (int k = 0; k < NS; k++)
		start(k);
}

static void test_avg_daemon_star_all_three_average_in_one_group(void **state)
{
	struct kw_app_avgnet_stats sa, sc;
	struct kw_app_avgd_view v;

	(void)state;
	assert_false(connected(0, 2));
	star_apps(3);
	for (int k = 0; k < NS; k++)
		assert_true(wait_rounds(k, 1, 20000, 10));
	for (int k = 0; k < NS; k++) {
		one_clean_round_of_three(k, &v);
		assert_file_mean(k, 7);
	}
	assert_true(connected(0, 2));
	net_stats(0, &sa);
	net_stats(2, &sc);
	assert_true(sa.dials + sc.dials >= 1);   /* a or c dialled the other */
	assert_int_equal(sa.dials_failed + sc.dials_failed, 0);
}

/* a and c have no address of each other: one of them leads b, the other cannot reach that
 * leader and finds no group; the group of two averages, and nothing waits on the third. */
static void test_avg_daemon_star_unreachable_leader_is_skipped(void **state)
{
	struct kw_app_avgnet_stats st;
	struct kw_app_avgd_view v;
	int lead, other;

	(void)state;
	star_apps(2);
	assert_true(wait_rounds(1, 1, 20000, 10));
	view(0, &v);
	lead = v.rounds ? 0 : 2;
	other = 2 - lead;
	view(lead, &v);
	assert_int_equal(v.rounds, 1);
	assert_int_equal(v.last_group, 2);
	assert_int_equal(v.peers_excluded, 0);
	assert_file_mean(lead, 1u << lead | 2u);
	assert_file_mean(1, 1u << lead | 2u);
	advance(3000);   /* the other's search expires */
	view(other, &v);
	assert_int_equal(v.rounds, 0);
	assert_true(v.no_group >= 1);
	assert_int_equal(v.round_failed, 0);
	assert_false(connected(0, 2));
	net_stats(other, &st);
	assert_true(st.dials_failed >= 1);
	assert_int_equal(st.groups_followed, 0);
}

static bool fits_this_test(void)
{
	return CONFIG_KW_ML_AVG_SENDER_TIMEOUT_MS >= 1000 &&
	       CONFIG_KW_ML_AVG_ROUND_TIMEOUT_MS >= 3000 &&
	       CONFIG_KW_NET_HIVEMIND_CALL_TIMEOUT_MS >= 1000;
}

static void test_avg_daemon_rounds_skipped_in_this_build(void **state)
{
	(void)state;
	printf("  skipped: the rounds need sender timeouts of 1 s, round timeouts of 3 s and "
	       "Hivemind call timeouts of 1 s or more\n");
	skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_avg_daemon_three_nodes_average_their_files,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_avg_daemon_drain_while_matching_withdraws_and_leaves, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_avg_daemon_drain_of_a_leader_disbands_its_followers, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_avg_daemon_drain_during_allreduce_finishes_first_then_resumes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_avg_daemon_stop_signal_withdraws_first, setup,
						teardown),
		cmocka_unit_test(test_avg_daemon_config_errors_name_the_key),
		cmocka_unit_test_setup_teardown(test_avg_daemon_bad_tensor_file_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_avg_daemon_star_all_three_average_in_one_group,
						setup_star, teardown),
		cmocka_unit_test_setup_teardown(test_avg_daemon_star_unreachable_leader_is_skipped,
						setup_star_ac_unknown, teardown),
		cmocka_unit_test_setup_teardown(
			test_avg_daemon_unreadable_file_skips_the_round_and_is_counted, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_avg_daemon_failed_write_keeps_the_old_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_avg_daemon_stop_during_allreduce_waits_for_the_write, setup, teardown),
	};
	const struct CMUnitTest some[] = {
		cmocka_unit_test(test_avg_daemon_rounds_skipped_in_this_build),
		cmocka_unit_test_setup_teardown(test_avg_daemon_stop_signal_withdraws_first, setup,
						teardown),
		cmocka_unit_test(test_avg_daemon_config_errors_name_the_key),
		cmocka_unit_test_setup_teardown(test_avg_daemon_bad_tensor_file_refused, setup,
						teardown),
	};

	if (!fits_this_test())
		return cmocka_run_group_tests(some, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
