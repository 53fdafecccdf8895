/*
 * All-reduce rounds (ml/avg/allreduce.c) between 4 and 8 averagers on one loop, over an
 * in-process transport that delivers through a loop timer on the simulated clock and can
 * drop (kill), stall or corrupt a peer's messages. Expected results are computed here in
 * double from the inputs (hivemind allreduce.py semantics: weighted mean, AUX weight 0).
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>
#include <kw/sim.h>

#define NP 8
#define NT 3
static uint64_t numel[NT] = { 1000, 37, 5000 };   /* the fused-path test makes them larger */
#define TOTAL (1000 + 37 + 5000)
#define TOTAL_BIG (70000 + 37 + 50001)

static struct kw_codec codec;
static unsigned g_window;   /* 0: the Kconfig window */

struct fmsg {
	unsigned from, to;
	uint64_t at;
	size_t len;
	uint8_t *b;
	struct fmsg *next;
};

struct fnet;
struct ftr {
	struct fnet *net;
	unsigned self;
};

struct fnet {
	struct kw_test_node *tn;
	unsigned n;
	struct kw_avg *avg[NP];
	void *mem[NP];
	struct ftr tr[NP];
	float *data[NP][NT];      /* the averaged tensors */
	float *orig[NP][NT];      /* each peer's contribution (sum / weight) */
	double w[NP];
	struct fmsg *head;
	bool dead[NP];
	int die_after[NP];        /* -1: never; else messages sent before the peer dies */
	unsigned sent[NP];
	unsigned ends[NP][NP][2];  /* [from][to][replies] */
	uint32_t delay_ms;
	/* corrupt(): may rewrite a message (returns its new length) */
	size_t (*corrupt)(struct fnet *f, unsigned from, unsigned to, uint8_t *b, size_t len);
	unsigned corrupt_from, corrupted;
	bool done[NP];
	struct kw_avg_result res[NP];
	char reason[NP][NP][KW_AVG_REASON_MAX];
	uint64_t done_at[NP], start;
	struct kw_timer tick;
};

static uint64_t now(struct fnet *f)
{
	return kw_loop_now(&f->tn->node->loop);
}

static int fsend(void *t, unsigned peer, const uint8_t *msg, size_t len)
{
	struct ftr *tr = t;
	struct fnet *f = tr->net;
	struct fmsg *m, **pp;

	if (f->die_after[tr->self] >= 0 && f->sent[tr->self] >= (unsigned)f->die_after[tr->self])
		f->dead[tr->self] = true;
	f->sent[tr->self]++;
	if (f->dead[tr->self] || f->dead[peer])
		return 0;   /* a dead peer's bytes go nowhere; the sender cannot tell at once */
	m = calloc(1, sizeof(*m));
	m->b = malloc(len + 64);
	memcpy(m->b, msg, len);
	m->len = len;
	m->from = tr->self;
	m->to = peer;
	m->at = now(f) + f->delay_ms;
	if (f->corrupt && tr->self == f->corrupt_from)
		m->len = f->corrupt(f, tr->self, peer, m->b, m->len);
	for (pp = &f->head; *pp; pp = &(*pp)->next)
		;
	*pp = m;
	return 0;
}

static void fend(void *t, unsigned peer, bool replies)
{
	struct ftr *tr = t;

	tr->net->ends[tr->self][peer][replies]++;
}

static void deliver(struct kw_loop *l, struct kw_timer *t)
{
	struct fnet *f = t->arg;
	bool blocked[NP][NP] = { { false } };
	struct fmsg **pp = &f->head;

	while (*pp) {
		struct fmsg *m = *pp;
		int err = 0;

		if (m->at > kw_loop_now(l) || blocked[m->from][m->to]) {
			pp = &m->next;
			continue;
		}
		if (!f->dead[m->to] && !f->dead[m->from])
			err = kw_avg_on_message(f->avg[m->to], m->from, m->b, m->len);
		if (err == -KW_EAGAIN) {   /* keep it, and everything after it on that pair */
			blocked[m->from][m->to] = true;
			pp = &m->next;
			continue;
		}
		*pp = m->next;
		free(m->b);
		free(m);
	}
	kw_timer_start(l, t, 1);
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	struct fnet *f = user;
	unsigned i;

	for (i = 0; i < f->n && f->avg[i] != a; i++)
		;
	assert_true(i < f->n);
	assert_false(f->done[i]);
	f->done[i] = true;
	f->res[i] = *r;
	f->done_at[i] = now(f);
	for (unsigned j = 0; j < f->n; j++)
		if (r->excluded_mask & (1ull << j))
			memcpy(f->reason[i][j], r->reason[j], KW_AVG_REASON_MAX);
}

static float rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* n peers; weight of peer i = i + 1, peer 0 accumulates twice (weights 0.5 + 0.5). */
static struct fnet *fnet_new(unsigned n, enum kw_compression comp, size_t part_bytes,
			     uint32_t sender_timeout, uint32_t round_timeout)
{
	struct fnet *f = calloc(1, sizeof(*f));
	uint32_t seed = 12345;

	f->tn = kw_test_node_new(64);
	assert_non_null(f->tn);
	f->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct kw_avg_cfg cfg;
		struct kw_avg_transport tr = { fsend, &f->tr[i], fend };
		struct kw_arena ar;
		size_t bytes;

		f->die_after[i] = -1;
		f->tr[i].net = f;
		f->tr[i].self = i;
		for (unsigned t = 0; t < NT; t++) {
			f->data[i][t] = calloc(numel[t], sizeof(float));
			f->orig[i][t] = calloc(numel[t], sizeof(float));
			for (uint64_t k = 0; k < numel[t]; k++)
				f->orig[i][t][k] = rnd(&seed);
		}
		kw_avg_cfg_default(&cfg);
		cfg.n_tensors = NT;
		cfg.tensors = f->data[i];
		cfg.numel = numel;
		cfg.compression = comp;
		cfg.part_size_bytes = part_bytes;
		cfg.max_peers = NP;
		cfg.max_parts = 64;   /* whatever CONFIG_KW_ML_AVG_MAX_PARTS is */
		cfg.window = g_window;
		cfg.sender_timeout_ms = sender_timeout;
		cfg.round_timeout_ms = round_timeout;
		cfg.codec = &codec;
		bytes = kw_avg_arena_bytes(&cfg);
		assert_true(bytes > 0);
		f->mem[i] = aligned_alloc(64, (bytes + 63) / 64 * 64);
		kw_arena_init(&ar, f->mem[i], bytes);
		assert_int_equal(kw_avg_create(&f->tn->node->loop, &ar, &cfg, &tr, &f->avg[i]), 0);
		f->w[i] = i + 1;
		if (i == 0) {
			const float *half[NT] = { f->orig[i][0], f->orig[i][1], f->orig[i][2] };

			assert_int_equal(kw_avg_accumulate(f->avg[i], half, 0.5), 0);
			assert_int_equal(kw_avg_accumulate(f->avg[i], half, 0.5), 0);
			f->w[i] = 1.0;
		} else {
			const float *x[NT] = { f->orig[i][0], f->orig[i][1], f->orig[i][2] };

			assert_int_equal(kw_avg_accumulate(f->avg[i], x, f->w[i]), 0);
		}
	}
	kw_timer_init(&f->tick, deliver, f);
	kw_timer_start(&f->tn->node->loop, &f->tick, 1);
	return f;
}

static void fnet_free(struct fnet *f)
{
	kw_timer_cancel(&f->tn->node->loop, &f->tick);
	for (unsigned i = 0; i < f->n; i++) {
		kw_avg_destroy(f->avg[i]);
		free(f->mem[i]);
		for (unsigned t = 0; t < NT; t++) {
			free(f->data[i][t]);
			free(f->orig[i][t]);
		}
	}
	while (f->head) {
		struct fmsg *m = f->head;

		f->head = m->next;
		free(m->b);
		free(m);
	}
	kw_test_node_free(f->tn);
	free(f);
}

static void group_of(struct fnet *f, struct kw_avg_group *g, unsigned self,
		     const enum kw_avg_mode *modes)
{
	memset(g, 0, sizeof(*g));
	memset(g->group_id, 0xab, 20);
	g->group_id_len = 20;
	g->n = f->n;
	g->self = self;
	for (unsigned i = 0; i < f->n; i++) {
		g->mode[i] = modes ? modes[i] : KW_AVG_NODE;
		g->bandwidth[i] = KW_AVG_BW_NONE;
	}
}

static void start(struct fnet *f, const enum kw_avg_mode *modes)
{
	f->start = now(f);
	for (unsigned i = 0; i < f->n; i++) {
		struct kw_avg_group g;

		group_of(f, &g, i, modes);
		assert_int_equal(kw_avg_step(f->avg[i], &g, on_done, f), 0);
	}
}

/* Runs the loop (1 ms steps) until the live peers finish. */
static void finish(struct fnet *f, uint64_t max_ms)
{
	struct kw_loop *l = &f->tn->node->loop;

	for (uint64_t t = 0; t < max_ms; t++) {
		bool all = true;

		kw_loop_run_once(l, 0);
		for (unsigned i = 0; i < f->n; i++)
			all = all && (f->done[i] || f->dead[i]);
		if (all)
			return;
		kw_sim_advance(f->tn->sim->net, 1);
	}
	fail_msg("round did not finish in %llu ms", (unsigned long long)max_ms);
}

/* Starts every peer's round and runs it to the end. */
static void run(struct fnet *f, const enum kw_avg_mode *modes, uint64_t max_ms)
{
	start(f, modes);
	finish(f, max_ms);
}

static double expected(struct fnet *f, const enum kw_avg_mode *modes, unsigned t, uint64_t k,
		       uint64_t skip_mask)
{
	double s = 0, w = 0;

	for (unsigned i = 0; i < f->n; i++) {
		if ((modes && modes[i] == KW_AVG_AUX) || (skip_mask & (1ull << i)))
			continue;
		s += f->w[i] * f->orig[i][t][k];
		w += f->w[i];
	}
	return s / w;
}

static void check_mean(struct fnet *f, const enum kw_avg_mode *modes, double tol)
{
	for (unsigned i = 0; i < f->n; i++) {
		if (modes && modes[i] == KW_AVG_AUX)
			continue;
		assert_true(f->done[i]);
		assert_int_equal(f->res[i].err, 0);
		assert_int_equal(f->res[i].n_excluded, 0);
		assert_int_equal(f->res[i].peers_used, f->n);
		for (unsigned t = 0; t < NT; t++)
			for (uint64_t k = 0; k < numel[t]; k++) {
				double e = expected(f, modes, t, k, 0);

				if (fabs(f->data[i][t][k] - e) > tol)
					fail_msg("peer %u tensor %u [%llu]: %.9g, want %.9g (tol %g)", i, t,
						 (unsigned long long)k, f->data[i][t][k], e, tol);
			}
	}
}

/* Teardown of the tests that enlarge the tensors: the sizes back even when a test fails. */
static int numel_reset(void **state)
{
	(void)state;
	numel[0] = 1000;
	numel[1] = 37;
	numel[2] = 5000;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return kw_codec_init(&codec, KW_SIMD_AUTO);
}

static void test_avg_four_peers_none_give_the_exact_weighted_mean(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);

	run(f, NULL, 10000);
	/* float32 sums of 4 terms in [-1, 1]: a few ulps */
	check_mean(f, NULL, 1e-6);
	assert_true(f->res[0].bytes_sent > 0);
	assert_true(fabs(f->res[0].compression_ratio - 1.0) < 1e-9);
	fnet_free(f);
}

static void test_avg_eight_peers_float16_stay_within_the_codec_bound(void **state)
{
	struct fnet *f = fnet_new(8, KW_COMP_FLOAT16, 1024, 1000, 5000);

	run(f, NULL, 10000);
	/* the part and the returned delta are both rounded to fp16: |x| <= 2 -> 2 * 2^-10 */
	check_mean(f, NULL, 2.5e-3);
	assert_true(fabs(f->res[3].compression_ratio - 2.0) < 0.01);
	fnet_free(f);
}

static void test_avg_eight_peers_blockwise_8bit_stay_within_the_codec_bound(void **state)
{
	struct fnet *f = fnet_new(8, KW_COMP_BLOCKWISE_8BIT, 1024, 1000, 5000);

	run(f, NULL, 10000);
	/* two 8-bit dynamic-code roundings (part |x| <= 1, delta |d| <= 2); the code's largest
	 * gap is 1/71 of absmax near 1 (doc/ml-codec.md): 0.5/71 + 1/71 */
	check_mean(f, NULL, 0.022);
	fnet_free(f);
}

/*
 * The fused paths (a part kept encoded and decoded run by run into the sum, one decode per
 * run for the sum and the delta, deltas encoded run by run into the slot or the message,
 * deltas checked and added run by run) against the unfused round computed here: every part
 * decoded whole with kw_codec_decode, the mean summed in the reducer's order, every delta
 * encoded whole with kw_codec_encode. The float32 operations are the same, so every value
 * must be bit for bit the same, for every codec.
 */
static float *unfused_ref(struct fnet *f, enum kw_compression comp, size_t part_bytes)
{
	size_t pv = kw_avg_part_values(comp, part_bytes), np, total = 0;
	struct kw_avg_part parts[256];
	uint32_t first[NP + 1];
	uint64_t alloc[NP], off[NT + 1] = { 0 };
	double bw[NP], denom = 0;
	float *contrib = calloc((size_t)f->n * TOTAL_BIG, sizeof(float));
	float *out = calloc((size_t)f->n * TOTAL_BIG, sizeof(float));
	float *xs = malloc((size_t)NP * pv * sizeof(float)), *avg = malloc(pv * sizeof(float));
	float *dl = malloc(pv * sizeof(float));
	size_t cap = kw_codec_max_size(comp, pv, pv), sl = kw_codec_scratch_size(comp, pv);
	uint8_t *enc = malloc(cap);
	void *scratch = malloc(sl + 1);

	for (unsigned t = 0; t < NT; t++) {
		off[t + 1] = off[t] + numel[t];
		total += numel[t];
	}
	/* each peer's contribution as kw_avg_step leaves it: accumulated, then / weight */
	for (unsigned i = 0; i < f->n; i++) {
		for (unsigned t = 0; t < NT; t++)
			for (uint64_t k = 0; k < numel[t]; k++) {
				float x = f->orig[i][t][k], acc = i == 0 ? 0.5f * x : (float)f->w[i] * x;

				if (i == 0)
					acc += 0.5f * x;
				contrib[i * TOTAL_BIG + off[t] + k] = (float)(acc / f->w[i]);
			}
		bw[i] = KW_AVG_BW_NONE;
		denom += f->w[i];
	}
	memcpy(out, contrib, (size_t)f->n * TOTAL_BIG * sizeof(float));
	assert_int_equal(kw_avg_load_balance(total, bw, f->n, alloc), 0);
	assert_int_equal(kw_avg_partition(numel, NT, alloc, f->n, pv, parts, 256, first, &np), 0);
	for (unsigned r = 0; r < f->n; r++)
		for (uint32_t p = first[r]; p < first[r + 1]; p++) {
			size_t base = off[parts[p].tensor] + parts[p].off, len = parts[p].len, blen;

			for (unsigned s = 0; s < f->n; s++) {
				float *x = xs + s * pv, w = (float)(f->w[s] / denom);

				memcpy(x, contrib + s * TOTAL_BIG + base, len * sizeof(float));
				if (s != r) {
					assert_int_equal(kw_codec_encode(&codec, comp, KW_CODEC_F32, x, len, len,
									 scratch, sl, enc, cap, &blen), 0);
					assert_int_equal(kw_codec_decode(&codec, comp, KW_CODEC_F32, enc, blen,
									 len, len, x), 0);
				}
				for (size_t k = 0; k < len; k++)
					avg[k] = s == 0 ? 0.0f + w * x[k] : avg[k] + w * x[k];
			}
			for (unsigned s = 0; s < f->n; s++) {
				float *x = xs + s * pv, *y = out + s * TOTAL_BIG + base;

				if (s == r) {
					memcpy(y, avg, len * sizeof(float));
					continue;
				}
				for (size_t k = 0; k < len; k++)
					dl[k] = avg[k] - x[k];
				assert_int_equal(kw_codec_encode(&codec, comp, KW_CODEC_F32, dl, len, len,
								 scratch, sl, enc, cap, &blen), 0);
				assert_int_equal(kw_codec_decode(&codec, comp, KW_CODEC_F32, enc, blen, len,
								 len, dl), 0);
				for (size_t k = 0; k < len; k++)
					y[k] += dl[k];
			}
		}
	free(contrib);
	free(xs);
	free(avg);
	free(dl);
	free(enc);
	free(scratch);
	return out;
}

static void check_unfused(unsigned n, enum kw_compression comp, size_t part_bytes)
{
	uint64_t keep[NT] = { numel[0], numel[1], numel[2] };
	struct fnet *f;
	float *want;

	/* parts of many blocks and runs, a 37-value part, a last block of 2,609 values */
	numel[0] = 70000;
	numel[1] = 37;
	numel[2] = 50001;
	f = fnet_new(n, comp, part_bytes, 1000, 5000);
	run(f, NULL, 20000);
	want = unfused_ref(f, comp, part_bytes);
	for (unsigned i = 0; i < n; i++) {
		size_t base = 0;

		assert_int_equal(f->res[i].n_excluded, 0);
		for (unsigned t = 0; t < NT; t++) {
			for (uint64_t k = 0; k < numel[t]; k++) {
				float got = f->data[i][t][k], e = want[i * TOTAL_BIG + base + k];

				if (memcmp(&got, &e, sizeof(float)))
					fail_msg("codec %d, %u peers, peer %u tensor %u [%llu]: %.9g, unfused %.9g",
						 comp, n, i, t, (unsigned long long)k, got, e);
			}
			base += numel[t];
		}
	}
	free(want);
	fnet_free(f);
	memcpy(numel, keep, sizeof(keep));
}

static void test_avg_fused_none_is_bit_exact_with_the_unfused_round(void **state)
{
	(void)state;
	check_unfused(4, KW_COMP_NONE, 16384);
}

static void test_avg_fused_float16_is_bit_exact_with_the_unfused_round(void **state)
{
	(void)state;
	check_unfused(4, KW_COMP_FLOAT16, 16384);   /* runs of 2048, fused reduction */
}

static void test_avg_fused_blockwise_is_bit_exact_with_the_unfused_round(void **state)
{
	(void)state;
	check_unfused(4, KW_COMP_BLOCKWISE_8BIT, 16384);   /* 16 blocks a part, fused reduction */
	check_unfused(8, KW_COMP_BLOCKWISE_8BIT, 4096);    /* 8 x 4096 > a part: per-sender deltas */
}

static void test_avg_whole_part_codecs_are_bit_exact_with_the_unfused_round(void **state)
{
	(void)state;
	check_unfused(4, KW_COMP_MEANSTD_16BIT, 16384);
	check_unfused(3, KW_COMP_UNIFORM_8BIT, 16384);
}

static void test_avg_killed_peer_is_excluded_and_others_finish_by_the_deadline(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 3000);
	uint64_t owned3 = 0;

	f->die_after[3] = 5;   /* dies mid-round, after its first few messages */
	f->delay_ms = 2;
	run(f, NULL, 10000);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(f->done[i]);
		assert_int_equal(f->res[i].err, 0);
		assert_int_equal(f->res[i].excluded_mask, 1ull << 3);
		assert_int_equal(f->res[i].peers_used, 3);
		assert_true(strlen(f->reason[i][3]) > 0);
		/* excluded at sender_timeout (or reducer_timeout = 2x), well within 1 s of it */
		assert_true(f->done_at[i] - f->start <= 2 * 1000 + 1000);
		if (i == 0)
			owned3 = f->res[i].values_failed;
		assert_int_equal(f->res[i].values_failed, owned3);
	}
	assert_true(owned3 > 0);
	/* the parts survivors reduced agree among them; those peer 3 owned keep local values */
	for (unsigned t = 0; t < NT; t++)
		for (uint64_t k = 0; k < numel[t]; k++) {
			float a = f->data[0][t][k], b = f->data[1][t][k], c = f->data[2][t][k];

			if (a == b && b == c) {
				double all = expected(f, NULL, t, k, 0), three = expected(f, NULL, t, k, 1ull << 3);

				assert_true(fabs(a - all) < 1e-6 || fabs(a - three) < 1e-6);
			}
		}
	fnet_free(f);
}

static void test_avg_silent_peer_is_excluded_at_the_round_deadline(void **state)
{
	/* sender_timeout longer than the round: only the round deadline can end it */
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 100000, 2000);

	f->die_after[2] = 0;
	run(f, NULL, 10000);
	for (unsigned i = 0; i < 4; i++) {
		if (i == 2)
			continue;
		assert_true(f->done[i]);
		assert_int_equal(f->res[i].excluded_mask, 1ull << 2);
		assert_non_null(strstr(f->reason[i][2], "deadline"));
		assert_true(f->done_at[i] - f->start >= 2000);
		assert_true(f->done_at[i] - f->start <= 2000 + 1000);
		assert_int_equal(f->res[i].peers_used, 3);
	}
	fnet_free(f);
}

static void test_avg_client_contributes_without_reducing(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	const enum kw_avg_mode modes[4] = { KW_AVG_CLIENT, KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };
	struct kw_avg_stats st;

	run(f, modes, 10000);
	check_mean(f, modes, 1e-6);   /* the client's data is in everyone's mean */
	kw_avg_get_stats(f->avg[0], &st);
	assert_int_equal(st.parts_reduced, 0);
	kw_avg_get_stats(f->avg[1], &st);
	assert_true(st.parts_reduced > 0);
	fnet_free(f);
}

static void test_avg_client_sends_every_part_at_once_and_ends_its_streams(void **state)
{
	/* 1024-value parts: 6037 values in 7 parts, none of them the client's; window 2
	 * whatever CONFIG_KW_ML_AVG_WINDOW is */
	struct fnet *f;
	const enum kw_avg_mode modes[4] = { KW_AVG_CLIENT, KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE };

	g_window = 2;
	f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	g_window = 0;

	f->delay_ms = 20;
	start(f, modes);
	/* no reply can have come yet: a window would have stopped at 2 parts per reducer */
	assert_true(f->sent[0] > 2 * 3);
	assert_int_equal(f->sent[1], 2 * 2);   /* a node keeps the window: 2 to each other reducer */
	finish(f, 10000);
	check_mean(f, modes, 1e-6);
	for (unsigned j = 1; j < 4; j++) {
		assert_int_equal(f->ends[0][j][0], 1);   /* our request side, once per reducer */
		assert_int_equal(f->ends[j][0][1], 1);   /* each reducer's answers to us end once */
		assert_int_equal(f->ends[j][0][0], 0);   /* the client reduces nothing */
	}
	fnet_free(f);
}

static void test_avg_aux_reduces_without_contributing(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	const enum kw_avg_mode modes[4] = { KW_AVG_NODE, KW_AVG_NODE, KW_AVG_NODE, KW_AVG_AUX };
	struct kw_avg_stats st;

	run(f, modes, 10000);
	check_mean(f, modes, 1e-6);   /* the mean leaves the aux peer's data out */
	kw_avg_get_stats(f->avg[3], &st);
	assert_true(st.parts_reduced > 0);
	assert_true(f->done[3]);
	assert_int_equal(f->res[3].raw_bytes_sent > 0, 1);   /* it returned averaged deltas */
	fnet_free(f);
}

/* ---- bad parts ---- */

static size_t reencode(uint8_t *b, size_t len, void (*edit)(struct kw_avg_data *d, float *tmp))
{
	struct kw_avg_data d;
	static float tmp[8192];
	static uint8_t out[65536];
	size_t n = 0;

	if (kw_avg_data_decode(&d, b, len) || !d.has_part || d.code != KW_AVG_PART_FOR_AVERAGING)
		return len;
	edit(&d, tmp);
	assert_int_equal(kw_avg_data_encode(&d, out, sizeof(out), &n), 0);
	memcpy(b, out, n);
	return n;
}

static void put_nan(struct kw_avg_data *d, float *tmp)
{
	memcpy(tmp, d->part.buf, d->part.buf_len);
	tmp[3] = NAN;
	d->part.buf = (const uint8_t *)tmp;
}

/* Inf in the last value of a 1000-value part: the finiteness test's scalar tail (the part
 * length is not a multiple of the vector step). */
static void put_inf_last(struct kw_avg_data *d, float *tmp)
{
	memcpy(tmp, d->part.buf, d->part.buf_len);
	tmp[d->part.buf_len / 4 - 1] = INFINITY;
	d->part.buf = (const uint8_t *)tmp;
}

static void shrink(struct kw_avg_data *d, float *tmp)
{
	(void)tmp;
	d->part.shape[0] -= 1;
	d->part.buf_len -= 4;
}

static void relabel(struct kw_avg_data *d, float *tmp)
{
	(void)tmp;
	d->part.compression = KW_COMP_FLOAT16;
}

static void (*edit_fn)(struct kw_avg_data *d, float *tmp);

static size_t corrupt_first(struct fnet *f, unsigned from, unsigned to, uint8_t *b, size_t len)
{
	if (to != 0 || f->corrupted)
		return len;
	size_t n = reencode(b, len, edit_fn);
	if (n != len || edit_fn == put_nan || edit_fn == put_inf_last)
		f->corrupted++;
	return n;
}

static size_t garbage(struct fnet *f, unsigned from, unsigned to, uint8_t *b, size_t len)
{
	if (to != 0 || f->corrupted)
		return len;
	f->corrupted++;
	memset(b, 0xff, 7);
	return 7;
}

static void bad_part_case(void (*edit)(struct kw_avg_data *, float *),
			  size_t (*cor)(struct fnet *, unsigned, unsigned, uint8_t *, size_t),
			  const char *want_reason)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	struct kw_avg_stats st;

	edit_fn = edit;
	f->corrupt = cor;
	f->corrupt_from = 2;
	run(f, NULL, 10000);
	assert_int_equal(f->corrupted, 1);
	assert_true(f->done[0]);
	assert_true(f->res[0].excluded_mask & (1ull << 2));
	if (!strstr(f->reason[0][2], want_reason))
		fail_msg("reason '%s', want '%s'", f->reason[0][2], want_reason);
	kw_avg_get_stats(f->avg[0], &st);
	assert_true(st.parts_rejected >= 1);
	/* the others still finish, each reporting whom it lost */
	for (unsigned i = 1; i < 4; i++)
		assert_true(f->done[i]);
	/* peer 2 learns it was refused (INTERNAL_ERROR) and drops peer 0 */
	assert_true(f->res[2].excluded_mask & 1ull);
	fnet_free(f);
}

static void test_avg_part_with_nan_is_rejected_with_a_reason(void **state)
{
	bad_part_case(put_nan, corrupt_first, "NaN");
}

static void test_avg_part_of_the_wrong_size_is_rejected_with_a_reason(void **state)
{
	bad_part_case(shrink, corrupt_first, "wrong size");
}

static void test_avg_part_with_the_wrong_codec_is_rejected_with_a_reason(void **state)
{
	bad_part_case(relabel, corrupt_first, "wrong codec");
}

static void test_avg_malformed_message_is_rejected_with_a_reason(void **state)
{
	bad_part_case(NULL, garbage, "malformed");
}

static void test_avg_part_with_inf_in_its_last_value_is_rejected_with_a_reason(void **state)
{
	bad_part_case(put_inf_last, corrupt_first, "NaN or Inf");
}

/* Reducer 0's first delta to peer 2, value 5 set to 3e38 (peer 2 holds 1e38 there). */
static size_t delta_overflows(struct fnet *f, unsigned from, unsigned to, uint8_t *b, size_t len)
{
	struct kw_avg_data d;
	static float tmp[8192];
	static uint8_t out[65536];
	size_t n = 0;

	if (to != 2 || f->corrupted || kw_avg_data_decode(&d, b, len) || !d.has_part ||
	    d.code != KW_AVG_AVERAGED_PART || d.part.buf_len > sizeof(tmp))
		return len;
	memcpy(tmp, d.part.buf, d.part.buf_len);
	tmp[5] = 3e38f;
	d.part.buf = (const uint8_t *)tmp;
	assert_int_equal(kw_avg_data_encode(&d, out, sizeof(out), &n), 0);
	assert_int_equal(n, len);
	memcpy(b, out, n);
	f->corrupted++;
	return n;
}

static void test_avg_delta_overflowing_our_values_is_rejected_and_changes_nothing(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	float want5, want6;

	/* peer 2 accumulated with weight 3: 3e38 becomes 1e38 when the round starts */
	f->data[2][0][5] = 3e38f;
	want5 = (float)((double)f->data[2][0][5] / 3.0);
	want6 = (float)((double)f->data[2][0][6] / 3.0);
	f->corrupt = delta_overflows;
	f->corrupt_from = 0;
	run(f, NULL, 10000);
	assert_int_equal(f->corrupted, 1);
	assert_true(f->done[2]);
	assert_true(f->res[2].excluded_mask & 1ull);
	if (!strstr(f->reason[2][0], "overflows our values"))
		fail_msg("reason '%s'", f->reason[2][0]);
	/* the check runs before the update: no value of the part moved */
	assert_true(f->data[2][0][5] == want5);
	assert_true(f->data[2][0][6] == want6);
	fnet_free(f);
}

/*
 * A BLOCKWISE_8BIT delta whose code has an Inf entry (the layout cannot bound it, so each
 * run is decoded, checked and added in turn), used only in the part's last run: the runs
 * before it are already added when the Inf shows, and must be put back.
 */
static size_t delta_inf_in_last_run(struct fnet *f, unsigned from, unsigned to, uint8_t *b,
				    size_t len)
{
	struct kw_avg_data d;
	size_t n, nb;
	uint8_t *code, *q, seven = 7;
	float inf = INFINITY;

	(void)from;
	if (to != 0 || f->corrupted || kw_avg_data_decode(&d, b, len) || !d.has_part ||
	    d.code != KW_AVG_AVERAGED_PART)
		return len;
	n = d.part.shape[0];
	if (n <= 2 * KW_BW_BLOCK)
		return len;   /* a part of one or two runs: not this test's case */
	nb = (n + KW_BW_BLOCK - 1) / KW_BW_BLOCK;
	code = (uint8_t *)(uintptr_t)d.part.buf + 16 + 4 * nb;
	q = code + 1024;
	memcpy(code + 4 * 7, &inf, 4);
	for (size_t i = 0; i < n; i++)
		if (q[i] == 7)
			q[i] = 8;
	memcpy(&q[n - 1], &seven, 1);
	f->corrupted++;
	return len;
}

static void test_avg_blockwise_delta_bad_in_a_later_run_restores_the_part(void **state)
{
	uint64_t keep[NT] = { numel[0], numel[1], numel[2] };
	struct fnet *f;
	size_t changed = 0, total = 0;

	(void)state;
	numel[0] = 70000;
	numel[1] = 37;
	numel[2] = 50001;
	f = fnet_new(4, KW_COMP_BLOCKWISE_8BIT, 16384, 1000, 5000);
	f->corrupt = delta_inf_in_last_run;
	f->corrupt_from = 1;
	run(f, NULL, 20000);
	assert_int_equal(f->corrupted, 1);
	assert_true(f->res[0].excluded_mask & 2ull);
	if (!strstr(f->reason[0][1], "holds NaN or Inf"))
		fail_msg("reason '%s'", f->reason[0][1]);
	/* peer 0's parts reduced by peer 1 keep peer 0's own values (its contribution is orig
	 * exactly: 0.5x + 0.5x); every other value is averaged, so differs */
	for (unsigned t = 0; t < NT; t++)
		for (uint64_t k = 0; k < numel[t]; k++) {
			assert_true(isfinite(f->data[0][t][k]));
			changed += f->data[0][t][k] != f->orig[0][t][k];
			total++;
		}
	/* peer 1 reduces about a quarter: roughly that much left as it was, nothing half-done */
	assert_true(total - changed > total / 5 && total - changed < total / 3);
	numel[0] = keep[0];
	numel[1] = keep[1];
	numel[2] = keep[2];
	fnet_free(f);
}

static void test_avg_window_of_one_and_of_sixteen_give_the_same_mean(void **state)
{
	for (int k = 0; k < 2; k++) {
		struct fnet *f;

		g_window = k ? 16 : 1;
		f = fnet_new(4, KW_COMP_NONE, 1024, 1000, 5000);
		f->delay_ms = 3;
		run(f, NULL, 20000);
		check_mean(f, NULL, 1e-6);
		fnet_free(f);
	}
	g_window = 0;
}

static void heavy(struct kw_avg_data *d, float *tmp)
{
	(void)tmp;
	d->weight = 1e300;
}

static size_t heavy_all(struct fnet *f, unsigned from, unsigned to, uint8_t *b, size_t len)
{
	struct kw_avg_data d;
	static uint8_t out[65536];
	size_t n = 0;

	(void)f; (void)from; (void)to;
	if (kw_avg_data_decode(&d, b, len) || !d.has_part || d.code == KW_AVG_AVERAGED_PART)
		return len;
	heavy(&d, NULL);
	assert_int_equal(kw_avg_data_encode(&d, out, sizeof(out), &n), 0);
	memcpy(b, out, n);
	return n;
}

static void test_avg_huge_sender_weight_dominates_without_overflow(void **state)
{
	struct fnet *f = fnet_new(4, KW_COMP_NONE, 4096, 1000, 5000);
	const float *x[NT] = { f->orig[0][0], f->orig[0][1], f->orig[0][2] };

	assert_int_equal(kw_avg_accumulate(f->avg[0], x, 1e39), -KW_EINVAL);
	f->corrupt = heavy_all;
	f->corrupt_from = 2;
	run(f, NULL, 10000);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(f->res[i].n_excluded, 0);
		for (unsigned t = 0; t < NT; t++)
			for (uint64_t k = 0; k < numel[t]; k++)
				assert_true(isfinite(f->data[i][t][k]));
	}
	/* peer 0 reduces the first part: there peer 2's 1e300 swamps every other weight */
	assert_true(fabs(f->data[0][0][0] - f->orig[2][0][0]) < 1e-6);
	fnet_free(f);
}

static void test_avg_group_of_one_completes_on_the_next_tick(void **state)
{
	struct fnet *f = fnet_new(1, KW_COMP_NONE, 4096, 1000, 5000);
	struct kw_avg_group g;

	group_of(f, &g, 0, NULL);
	assert_int_equal(kw_avg_step(f->avg[0], &g, on_done, f), 0);
	assert_false(f->done[0]);   /* never from inside kw_avg_step */
	assert_int_equal(kw_avg_step(f->avg[0], &g, on_done, f), -KW_EBUSY);
	for (int t = 0; t < 200 && !f->done[0]; t++) {
		kw_loop_run_once(&f->tn->node->loop, 0);
		kw_sim_advance(f->tn->sim->net, 1);
	}
	assert_true(f->done[0]);
	assert_int_equal(f->data[0][2][17], f->orig[0][2][17]);
	fnet_free(f);
}

static void test_avg_step_rejects_a_group_without_reducers(void **state)
{
	struct fnet *f = fnet_new(2, KW_COMP_NONE, 4096, 1000, 5000);
	const enum kw_avg_mode modes[2] = { KW_AVG_CLIENT, KW_AVG_CLIENT };
	struct kw_avg_group g;

	group_of(f, &g, 0, modes);
	assert_int_equal(kw_avg_step(f->avg[0], &g, on_done, f), -KW_EINVAL);
	fnet_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_avg_four_peers_none_give_the_exact_weighted_mean),
		cmocka_unit_test(test_avg_eight_peers_float16_stay_within_the_codec_bound),
		cmocka_unit_test(test_avg_eight_peers_blockwise_8bit_stay_within_the_codec_bound),
		cmocka_unit_test(test_avg_killed_peer_is_excluded_and_others_finish_by_the_deadline),
		cmocka_unit_test(test_avg_silent_peer_is_excluded_at_the_round_deadline),
		cmocka_unit_test(test_avg_client_contributes_without_reducing),
		cmocka_unit_test(test_avg_client_sends_every_part_at_once_and_ends_its_streams),
		cmocka_unit_test(test_avg_aux_reduces_without_contributing),
		cmocka_unit_test_teardown(test_avg_fused_none_is_bit_exact_with_the_unfused_round, numel_reset),
		cmocka_unit_test_teardown(test_avg_fused_float16_is_bit_exact_with_the_unfused_round, numel_reset),
		cmocka_unit_test_teardown(test_avg_fused_blockwise_is_bit_exact_with_the_unfused_round, numel_reset),
		cmocka_unit_test_teardown(test_avg_whole_part_codecs_are_bit_exact_with_the_unfused_round, numel_reset),
		cmocka_unit_test_teardown(test_avg_blockwise_delta_bad_in_a_later_run_restores_the_part, numel_reset),
		cmocka_unit_test(test_avg_part_with_nan_is_rejected_with_a_reason),
		cmocka_unit_test(test_avg_part_of_the_wrong_size_is_rejected_with_a_reason),
		cmocka_unit_test(test_avg_part_with_the_wrong_codec_is_rejected_with_a_reason),
		cmocka_unit_test(test_avg_malformed_message_is_rejected_with_a_reason),
		cmocka_unit_test(test_avg_window_of_one_and_of_sixteen_give_the_same_mean),
		cmocka_unit_test(test_avg_huge_sender_weight_dominates_without_overflow),
		cmocka_unit_test(test_avg_part_with_inf_in_its_last_value_is_rejected_with_a_reason),
		cmocka_unit_test(test_avg_delta_overflowing_our_values_is_rejected_and_changes_nothing),
		cmocka_unit_test(test_avg_group_of_one_completes_on_the_next_tick),
		cmocka_unit_test(test_avg_step_rejects_a_group_without_reducers),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
