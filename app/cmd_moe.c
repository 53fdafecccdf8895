/*
 * `kwnode moe --prefix P --grid NxM --input FILE -k K --bootstrap ADDR`: one forward
 * of hivemind's RemoteMixtureOfExperts through experts found on the Hivemind DHT (doc/serve.md
 * "Client and generate"; hivemind/moe/client/moe.py, beam_search.py @ 4bd43b7):
 *
 *   1. join the Hivemind DHT (client mode) through --bootstrap peers;
 *   2. walk the declarations "P.i." for every first coordinate i of the grid down (each
 *      prefix record names the next coordinates alive, as MoEBeamSearcher's
 *      get_active_successors reads them) to every alive expert (all of them: the beam is
 *      the whole grid);
 *   3. per input row: gating scores (app/client_moe.c: a generated projection, no trained
 *      gate), the K experts with the highest logits among the alive ones;
 *   4. one ConnectionHandler.rpc_forward per chosen expert with the rows that chose it; an
 *      expert that fails is left out and the weights are the softmax over those that
 *      answered (hivemind masks failed experts the same way);
 *   5. prints the mixed output in `kwnode call`'s tensor text form; the choice per row on
 *      stderr.
 *
 * Exit: 0 answered, 1 no expert / no answer / cannot join, 2 usage or a bad file. One-shot
 * command: every buffer is sized from the input before the node starts.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/ml/codec.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "hivemind.h"
#include "serve.h"

int kw_cmd_moe(int argc, char **argv);

#define PROG       "kwnode moe"
#define EXPERTS    256   /* alive experts kept */
#define PREFIXES   256   /* declaration records walked */
#define K_MAX      8
#define ROWS_MAX   64
#define PEERS      (KW_CONFIG_BOOTSTRAP_MAX * 2)

struct moe {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_hm *st;
	struct kw_timer timer;
	struct kw_codec codec;
	uint64_t deadline_ms;
	uint32_t wait_ms, timeout_ms, k;
	int code;
	const char *prefix;
	const char *addr[PEERS];
	int n_addr;
	struct kw_kad *kad;           /* client mode: finds experts' servers by PeerID */
	struct kw_client_resolver res;
	/* the walk */
	char pre[PREFIXES][KW_HM_REC_UID_MAX];
	uint32_t n_pre, at_pre;
	struct kw_client_expert ex[EXPERTS];
	size_t n_ex;
	uint32_t grid[KW_CLIENT_MOE_DIMS], ndim;
	/* the input and the choice */
	float *x, *y, *part;
	size_t rows, hid;
	uint32_t best[ROWS_MAX][K_MAX], n_best[ROWS_MAX];
	float logit[ROWS_MAX][K_MAX];
	bool answered[ROWS_MAX][K_MAX];
	/* the calls: one per chosen expert */
	uint32_t calls[ROWS_MAX * K_MAX], n_calls, at_call;
	uint32_t call_rows[ROWS_MAX], n_call_rows;
	uint8_t *req;
	size_t req_cap;
};

static struct moe g_moe;

static void stop(struct moe *m, int code)
{
	m->code = code;
	kw_loop_stop(&m->n->loop, 0);
}

static void walk_next(struct moe *m);
static void call_next(struct moe *m);

static int on_decl(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		   double exp, void *arg)
{
	struct moe *m = arg;
	char uid[KW_HM_REC_UID_MAX], peer[KW_HM_REC_PEER_MAX], child[KW_HM_REC_UID_MAX + 24];
	int64_t c;

	(void)exp;
	if (kw_client_expert_entry(sub, sub_len, val, val_len, &c, uid, sizeof(uid), peer,
				   sizeof(peer)) < 0) {
		fprintf(stderr, "%s: %s: an entry that is not (uid, peer) under a coordinate; "
			"skipped\n", PROG, m->pre[m->at_pre]);
		return 0;
	}
	snprintf(child, sizeof(child), "%s%lld", m->pre[m->at_pre], (long long)c);
	if (c < 0 || !strcmp(child, uid)) {
		/* an expert itself (c = -1: a flat one under "uid.") */
		struct kw_client_expert *e;

		for (size_t i = 0; i < m->n_ex; i++)
			if (!strcmp(m->ex[i].uid, uid))
				return 0;
		if (m->n_ex == EXPERTS)
			return 0;
		e = &m->ex[m->n_ex];
		if (kw_client_expert_coords(uid, m->prefix, e->coord, KW_CLIENT_MOE_DIMS,
					    &e->ndim) < 0 || e->ndim != m->ndim)
			return 0;
		for (uint32_t d = 0; d < e->ndim; d++)
			if (e->coord[d] >= m->grid[d])
				return 0;   /* outside the grid the gate scores */
		snprintf(e->uid, sizeof(e->uid), "%s", uid);
		snprintf(e->peer, sizeof(e->peer), "%s", peer);
		m->n_ex++;
		return 0;
	}
	strcat(child, ".");
	for (uint32_t i = 0; i < m->n_pre; i++)
		if (!strcmp(m->pre[i], child))
			return 0;
	if (m->n_pre < PREFIXES && strlen(child) < KW_HM_REC_UID_MAX)
		snprintf(m->pre[m->n_pre++], KW_HM_REC_UID_MAX, "%s", child);
	return 0;
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct moe *m = user;
	const char *why;

	(void)d;
	if (err < 0)
		fprintf(stderr, "%s: get %s: %s\n", PROG, m->pre[m->at_pre], kw_strerror(err));
	else if (v->type == KW_HM_DHT_FOUND_DICTIONARY &&
		 kw_hm_dict_walk(v->value, v->len, on_decl, m, &why) < 0)
		fprintf(stderr, "%s: %s: not a dictionary (%s)\n", PROG, m->pre[m->at_pre], why);
	m->at_pre++;
	walk_next(m);
}

/* Every alive expert found: choose per row, then call. */
static void choose(struct moe *m)
{
	static float scores[KW_CLIENT_MOE_DIMS * KW_CLIENT_MOE_GRID_MAX];

	fprintf(stderr, "%s: %zu expert%s of %s alive, grid", PROG, m->n_ex,
		m->n_ex == 1 ? "" : "s", m->prefix);
	for (uint32_t d = 0; d < m->ndim; d++)
		fprintf(stderr, "%s%u", d ? " x " : " ", m->grid[d]);
	fprintf(stderr, "\n");
	for (size_t r = 0; r < m->rows; r++) {
		kw_client_moe_gate(0, m->grid, m->ndim, m->x + r * m->hid, m->hid, scores);
		if (kw_client_moe_topk(scores, m->grid, m->ndim, m->ex, m->n_ex, m->k, m->best[r],
				       m->logit[r], &m->n_best[r]) < 0) {
			fprintf(stderr, "%s: no alive expert of %s found\n", PROG, m->prefix);
			stop(m, 1);
			return;
		}
		for (uint32_t j = 0; j < m->n_best[r]; j++) {
			uint32_t e = m->best[r][j], c = 0;

			while (c < m->n_calls && m->calls[c] != e)
				c++;
			if (c == m->n_calls)
				m->calls[m->n_calls++] = e;
		}
	}
	call_next(m);
}

static void walk_next(struct moe *m)
{
	struct kw_hm_dhtid key;
	int ret;

	if (m->at_pre == m->n_pre) {
		choose(m);
		return;
	}
	ret = kw_hm_dhtid_of_str(m->pre[m->at_pre], strlen(m->pre[m->at_pre]), &key);
	if (ret >= 0)
		ret = kw_hm_dht_get(m->d, &key, true, on_get, m);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot read %s: %s\n", PROG, m->pre[m->at_pre],
			kw_strerror(ret));
		stop(m, 1);
	}
}

/* ---- the calls ---------------------------------------------------------------------------- */

static void mix(struct moe *m)
{
	float w[K_MAX];

	memset(m->y, 0, m->rows * m->hid * sizeof(float));
	for (size_t r = 0; r < m->rows; r++) {
		if (kw_client_moe_weights(m->logit[r], m->answered[r], m->n_best[r], w) < 0) {
			fprintf(stderr, "%s: row %zu: none of its experts answered\n", PROG, r);
			stop(m, 1);
			return;
		}
		fprintf(stderr, "%s: row %zu:", PROG, r);
		for (uint32_t j = 0; j < m->n_best[r]; j++)
			fprintf(stderr, " %s (%.3f)%s", m->ex[m->best[r][j]].uid, (double)w[j],
				m->answered[r][j] ? "" : " failed");
		fprintf(stderr, "\n");
		/* y = sum_j w_j * expert_j(x): the parts were kept per (row, choice) */
		for (uint32_t j = 0; j < m->n_best[r]; j++)
			for (size_t k = 0; k < m->hid; k++)
				m->y[r * m->hid + k] += w[j] *
					m->part[((r * K_MAX) + j) * m->hid + k];
	}
	printf("shape %zu %zu\n", m->rows, m->hid);
	for (size_t i = 0; i < m->rows * m->hid; i++)
		printf("%.9g%c", (double)m->y[i], (i + 1) % m->hid == 0 ? '\n' : ' ');
	fflush(stdout);
	stop(m, 0);
}

static void call_done(struct moe *m, const char *failed)
{
	if (failed)
		fprintf(stderr, "%s: %s: %s; left out\n", PROG, m->ex[m->calls[m->at_call]].uid,
			failed);
	m->at_call++;
	call_next(m);
}

static void on_answer(const struct kw_hm_result *r, void *user)
{
	struct moe *m = user;
	uint32_t e = m->calls[m->at_call];
	static char text[512];
	static float out[ROWS_MAX * 8192];

	if (r->err < 0) {
		call_done(m, kw_strerror(r->err));
		return;
	}
	if (r->remote_error) {
		kw_hm_error_text(r->data, r->len, text, sizeof(text));
		call_done(m, text);
		return;
	}
	if (kw_client_answer_decode(&m->codec, r->data, r->len, m->n_call_rows, m->hid,
				    out) < 0) {
		call_done(m, "the answer is not rows x hidden of the rows sent");
		return;
	}
	for (uint32_t i = 0; i < m->n_call_rows; i++) {
		uint32_t row = m->call_rows[i];

		for (uint32_t j = 0; j < m->n_best[row]; j++)
			if (m->best[row][j] == e) {
				memcpy(m->part + ((row * K_MAX) + j) * m->hid, out + i * m->hid,
				       m->hid * sizeof(float));
				m->answered[row][j] = true;
			}
	}
	call_done(m, NULL);
}

static void send_call(struct moe *m, struct kw_conn *c)
{
	uint32_t e = m->calls[m->at_call], shape[2];
	long len;
	int ret;

	/* the rows that chose e, packed */
	m->n_call_rows = 0;
	for (uint32_t r = 0; r < m->rows; r++)
		for (uint32_t j = 0; j < m->n_best[r]; j++)
			if (m->best[r][j] == e) {
				memcpy(m->part + (size_t)(ROWS_MAX * K_MAX) * m->hid +
				       m->n_call_rows * m->hid, m->x + r * m->hid,
				       m->hid * sizeof(float));
				m->call_rows[m->n_call_rows++] = r;
			}
	shape[0] = m->n_call_rows;
	shape[1] = (uint32_t)m->hid;
	len = kw_client_req_encode(m->ex[e].uid, shape, 2,
				   m->part + (size_t)(ROWS_MAX * K_MAX) * m->hid,
				   m->n_call_rows * m->hid, false, m->req, m->req_cap);
	ret = len < 0 ? (int)len : kw_hm_call(m->hm, c, KW_SERVE_MOE_FORWARD, m->req,
					      (size_t)len, m->timeout_ms, on_answer, m);
	if (ret < 0)
		call_done(m, kw_strerror(ret));
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct moe *m = user;

	(void)sw;
	if (err < 0)
		call_done(m, m->res.why[0] ? m->res.why : kw_strerror(err));
	else
		send_call(m, c);
}

static void call_next(struct moe *m)
{
	struct kw_conn *c;
	int ret;

	if (m->at_call == m->n_calls) {
		mix(m);
		return;
	}
	ret = kw_client_resolve(&m->res, m->ex[m->calls[m->at_call]].peer, m->addr, m->n_addr,
				on_dial, m, &c);
	if (ret == 1)
		send_call(m, c);
	else if (ret < 0)
		call_done(m, m->res.why[0] ? m->res.why : kw_strerror(ret));
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct moe *m = t->arg;
	struct kw_hm_dht_contact any;
	struct kw_hm_dhtid zero;

	memset(&zero, 0, sizeof(zero));
	if ((kw_hm_rt_nearest(kw_hm_dht_rt(m->d), &zero, 1, NULL, &any) == 0 ||
	     kw_hm_dht_ops_busy(m->d)) && kw_loop_now(l) < m->deadline_ms) {
		kw_timer_start(l, t, 20);
		return;
	}
	if (kw_hm_rt_nearest(kw_hm_dht_rt(m->d), &zero, 1, NULL, &any) == 0) {
		fprintf(stderr, "%s: could not join the Hivemind DHT within %u ms\n", PROG,
			m->wait_ms);
		stop(m, 1);
		return;
	}
	/* hivemind declares "P.i." (and deeper prefixes), never "P.": the walk starts from
	 * every first coordinate of the grid, as MoEBeamSearcher's initial beam does */
	for (uint32_t i = 0; i < m->grid[0] && m->n_pre < PREFIXES; i++)
		snprintf(m->pre[m->n_pre++], KW_HM_REC_UID_MAX, "%s.%u.", m->prefix, i);
	walk_next(m);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode moe --prefix P --grid NxM --input FILE [-k K] --bootstrap ADDR...\n"
		"                  [--peer ADDR]... [--timeout-ms MS] [--data-dir DIR]\n"
		"  One forward of hivemind's RemoteMixtureOfExperts over the experts P.<i>.<j>...\n"
		"  of grid NxM declared on the Hivemind DHT: per row of FILE ('shape B H' then the values),\n"
		"  the K (default 2) best alive experts by a generated gate, their rpc_forward\n"
		"  outputs mixed by the softmax of their scores. Prints the output tensor.\n");
}

int kw_cmd_moe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "grid", required_argument, NULL, 'g' },
		{ "input", required_argument, NULL, 'i' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "peer", required_argument, NULL, 'P' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct kw_config cfg;
	struct moe *m = &g_moe;
	const char *input = NULL, *data_dir = NULL;
	uint32_t shape[8], ndim = 0;
	size_t n = 0;
	struct kw_app_transient t;
	bool t_open = false;
	char err[512];
	int o, code = 2;

	memset(m, 0, sizeof(*m));
	m->k = 2;
	m->timeout_ms = 10000;
	m->wait_ms = 10000;
	kw_config_defaults(&cfg);
	cfg.n_hivemind_bootstrap = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, "hk:", opts, NULL)) != -1) {
		switch (o) {
		case 'p': m->prefix = optarg; break;
		case 'i': input = optarg; break;
		case 'g': {
			/* hivemind's grid_size: "4x4" */
			const char *p = optarg;
			char *e;

			m->ndim = 0;
			while (*p && m->ndim < KW_CLIENT_MOE_DIMS) {
				unsigned long v = strtoul(p, &e, 10);

				if (e == p || !v || v > KW_CLIENT_MOE_GRID_MAX || (*e && *e != 'x'))
					break;
				m->grid[m->ndim++] = (uint32_t)v;
				p = *e ? e + 1 : e;
			}
			if (*p || !m->ndim) {
				fprintf(stderr, "%s: --grid '%s': sizes 1..%d joined by 'x', at most %d\n",
					PROG, optarg, KW_CLIENT_MOE_GRID_MAX, KW_CLIENT_MOE_DIMS);
				return 2;
			}
			break;
		}
		case 'd': data_dir = optarg; break;
		case 'k':
			if (kw_config_parse_u32(optarg, 1, K_MAX, &m->k) < 0) {
				fprintf(stderr, "%s: -k must be 1..%d\n", PROG, K_MAX);
				return 2;
			}
			break;
		case 't':
			if (kw_config_parse_u32(optarg, 1, 600000, &m->timeout_ms) < 0) {
				fprintf(stderr, "%s: --timeout-ms must be 1..600000\n", PROG);
				return 2;
			}
			break;
		case 'b':
		case 'P':
			if (m->n_addr == PEERS || (o == 'b' && kw_config_set(&cfg,
			    "hivemind_bootstrap", optarg, err, sizeof(err)) < 0)) {
				fprintf(stderr, "%s: %s\n", PROG, m->n_addr == PEERS ?
					"too many peers" : err);
				return 2;
			}
			m->addr[m->n_addr++] = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !m->prefix || !input || !cfg.n_hivemind_bootstrap || !m->ndim ||
	    strchr(m->prefix, '.')) {
		usage(stderr);
		return 2;
	}
	if (data_dir && kw_config_set(&cfg, "data_dir", data_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return 2;
	}
	if (kw_app_tensor_read(input, PROG, shape, &ndim, &m->x, &n) < 0)
		return 2;
	if (ndim != 2 || shape[0] > ROWS_MAX || shape[1] > 8192) {
		fprintf(stderr, "%s: %s: the input must be 'shape B H' with B <= %d, H <= 8192\n",
			PROG, input, ROWS_MAX);
		goto out;
	}
	m->rows = shape[0];
	m->hid = shape[1];
	m->y = malloc(m->rows * m->hid * sizeof(float));
	m->part = calloc((size_t)(ROWS_MAX * K_MAX + ROWS_MAX) * m->hid, sizeof(float));
	m->req_cap = m->rows * m->hid * sizeof(float) + 4096;
	m->req = malloc(m->req_cap);
	code = 1;
	if (!m->y || !m->part || !m->req || kw_codec_init(&m->codec, KW_SIMD_AUTO) < 0) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		goto out;
	}
	if (kw_app_transient_open(&t, PROG, &cfg, (size_t)32 << 20) < 0)
		goto out;
	t_open = true;
	m->n = t.n;
	m->sw = t.sw;
	if (kw_app_transient_kad(&t, PROG, true,
				 (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
				 cfg.n_hivemind_bootstrap, &m->kad) < 0)
		goto out;
	kw_client_resolver_init(&m->res, m->sw, m->kad);
	if (kw_app_hm_start(t.n, t.sw, t.id, m->kad, true,
			    (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
			    cfg.n_hivemind_bootstrap, &m->hm, &m->d, &m->st) < 0) {
		fprintf(stderr, "%s: cannot start the Hivemind DHT\n", PROG);
		goto out;
	}
	kw_timer_init(&m->timer, on_tick, m);
	m->deadline_ms = kw_loop_now(&t.n->loop) + m->wait_ms;
	kw_timer_start(&t.n->loop, &m->timer, 0);
	m->code = 1;
	kw_loop_run(&t.n->loop);
	kw_timer_cancel(&t.n->loop, &m->timer);
	code = m->code;
out:
	if (m->st)
		kw_app_hm_stop(m->st);
	kw_app_transient_kad_close(m->kad);
	if (t_open)
		kw_app_transient_close(&t);
	free(m->x);
	free(m->y);
	free(m->part);
	free(m->req);
	return code;
}
