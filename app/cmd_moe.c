/*
 * `kwnode moe --prefix P --grid NxM --input FILE -k K --bootstrap ADDR`: one forward
 * of hivemind's RemoteMixtureOfExperts through experts found on the Hivemind DHT (doc/serve.md
 * "Client and generate"; hivemind/moe/client/moe.py, beam_search.py @ 4bd43b7):
 *
 *   1. join the Hivemind DHT (client mode) through --bootstrap peers;
 *   2. per input row: gating scores (app/client_moe.c: a generated projection, no trained
 *      gate), then MoEBeamSearcher with beam_size K over the declarations (app/client_beam.c;
 *      each prefix record is read once per run and serves every row);
 *   3. one ConnectionHandler.rpc_forward per chosen expert with the rows that chose it, all
 *      at once under one deadline (forward_timeout); once every row has k_min answers the
 *      rest get timeout_after_k_min more (_RemoteCallMany._collect_responses). A failed
 *      call goes to another peer known for the uid (another record naming it, or a newer
 *      declaration of the uid key read again until the deadline); an expert without an
 *      answer is left out and the weights are the softmax over those that answered
 *      (hivemind masks failed experts the same way);
 *   4. prints the mixed output in `kwnode call`'s tensor text form; the choice per row (and
 *      with --stats how often each expert was chosen and answered) on stderr.
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
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "hivemind.h"
#include "serve.h"

int kw_cmd_moe(int argc, char **argv);

#define PROG       "kwnode moe"
#define RECORDS    256   /* prefix records read in one run (shared by every row's search) */
#define REC_BYTES  ((size_t)1 << 20)
#define K_MAX      KW_CLIENT_BEAM_MAX
#define ROWS_MAX   64
#define CALLS_MAX  (ROWS_MAX * K_MAX)
#define REPLICAS   4     /* peers known for one uid */
#define PEERS      (KW_CONFIG_BOOTSTRAP_MAX * 2)
#define REREAD_MS  250   /* a failed expert's uid key is read again this often */

/* One prefix record as the DHT gave it (read once per run). */
struct rec {
	char key[KW_HM_REC_UID_MAX];
	size_t off, len;         /* the dictionary's bytes in recbuf; len 0: none */
	bool done;
};

#define ATTEMPTS   32    /* attempts of one call (then it waits for the deadline) */

struct call;
/* One attempt of a call on one replica: the dial's and the call's callbacks carry it, so an
 * attempt given up (its time ran out) is told apart from the one running now. */
struct att {
	struct call *c;
	bool live;
};

/* One chosen expert: a call with the rows that chose it, on one replica after another. */
struct call {
	struct moe *m;
	struct kw_client_expert ex;
	char peer[REPLICAS][KW_HM_REC_PEER_MAX];
	bool tried[REPLICAS];
	uint32_t n_peer, at;     /* replicas known, the one called now */
	uint32_t chosen, failovers;
	int state;               /* 0 pending, 1 answered, 2 left out */
	bool reading;            /* a read of the uid key is under way */
	bool rereading;          /* t waits to read the uid key again (else: the attempt's time) */
	struct att att[ATTEMPTS], *cur;
	uint32_t n_att;
	uint64_t att_end;        /* the attempt's end on the loop clock */
	struct kw_timer t;
};

struct moe {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_hm *st;
	struct kw_timer timer, deadline;
	struct kw_codec codec;
	uint64_t join_ms, end_ms;
	uint32_t wait_ms, timeout_ms, after_k_min_ms, k, k_min;
	bool stats, finished, started;   /* started: the call timers are set up */
	int code;
	const char *prefix;
	const char *addr[PEERS];
	int n_addr;
	struct kw_kad *kad;           /* client mode: finds experts' servers by PeerID */
	struct kw_client_resolver res;
	uint32_t grid[KW_CLIENT_MOE_DIMS], ndim, n_scores;
	/* the records read and the search of the row at_row */
	struct rec rec[RECORDS];
	uint32_t n_rec, pending_gets;
	uint8_t *recbuf;
	size_t recbuf_used;
	struct kw_client_beam beam;
	const char *want[KW_CLIENT_BEAM_MAX];
	uint32_t n_want;
	size_t at_row;
	/* the input and the choice */
	float *x, *y, *part, *scores;
	size_t rows, hid;
	uint32_t best[ROWS_MAX][K_MAX], n_best[ROWS_MAX];   /* indices into call[] */
	float logit[ROWS_MAX][K_MAX];
	bool answered[ROWS_MAX][K_MAX];
	uint32_t n_answered[ROWS_MAX], rows_short;          /* rows below k_min answers */
	struct call call[CALLS_MAX];
	uint32_t n_calls, calls_open;
	uint8_t *req;
	size_t req_cap;
};

static struct moe g_moe;

static void stop(struct moe *m, int code)
{
	m->code = code;
	kw_loop_stop(&m->n->loop, 0);
}

static void search_next(struct moe *m);
static void calls_start(struct moe *m);
static void call_start(struct call *c);

/* ---- the beam search, row after row, over records read once ------------------------------- */

static struct rec *rec_find(struct moe *m, const char *key)
{
	for (uint32_t i = 0; i < m->n_rec; i++)
		if (!strcmp(m->rec[i].key, key))
			return &m->rec[i];
	return NULL;
}

struct feed {
	struct moe *m;
	uint32_t i;
	const char *key;
};

/* One entry of a record read: an expert (uid, peer) under a grid coordinate. */
struct entry {
	int64_t coord;
	char uid[KW_HM_REC_UID_MAX], peer[KW_HM_REC_PEER_MAX];
};

/* Return: 0, or negative when the entry is not (uid, peer) under a coordinate. */
static int entry_get(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		     struct entry *e)
{
	return kw_client_expert_entry(sub, sub_len, val, val_len, &e->coord, e->uid,
				      sizeof(e->uid), e->peer, sizeof(e->peer));
}

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	struct feed *f = arg;
	struct entry e;

	(void)exp;
	if (entry_get(sub, sub_len, val, val_len, &e) < 0) {
		fprintf(stderr, "%s: %s: an entry that is not (uid, peer) under a coordinate; "
			"skipped\n", PROG, f->key);
		return 0;
	}
	if (f->m)
		kw_client_beam_feed(&f->m->beam, f->i, e.coord, e.uid, e.peer);
	return 0;
}

static void on_rec(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct rec *r = user;
	struct moe *m = &g_moe;

	(void)d;
	r->done = true;
	if (err < 0)
		fprintf(stderr, "%s: get %s: %s\n", PROG, r->key, kw_strerror(err));
	else if (v->type == KW_HM_DHT_FOUND_DICTIONARY) {
		if (m->recbuf_used + v->len > REC_BYTES)
			fprintf(stderr, "%s: %s: no room left for the records read; taken as "
				"absent\n", PROG, r->key);
		else {
			memcpy(m->recbuf + m->recbuf_used, v->value, v->len);
			r->off = m->recbuf_used;
			r->len = v->len;
			m->recbuf_used += v->len;
		}
	}
	if (--m->pending_gets == 0)
		search_next(m);
}

/* Feeds the records of the batch (all read) to the row's search, and steps it. */
static void feed_batch(struct moe *m)
{
	for (uint32_t i = 0; i < m->n_want; i++) {
		struct rec *r = rec_find(m, m->want[i]);
		struct feed f = { m, i, m->want[i] };
		const char *why;

		if (r && r->len && kw_hm_dict_walk(m->recbuf + r->off, r->len, on_entry, &f,
						   &why) < 0)
			fprintf(stderr, "%s: %s: not a dictionary (%s)\n", PROG, r->key, why);
	}
	kw_client_beam_step(&m->beam);
}

static void row_chosen(struct moe *m)
{
	size_t r = m->at_row;

	m->n_best[r] = 0;
	for (uint32_t j = 0; j < m->beam.n_best; j++) {
		const struct kw_client_expert *e = &m->beam.best[j];
		uint32_t c = 0;

		while (c < m->n_calls && strcmp(m->call[c].ex.uid, e->uid))
			c++;
		if (c == m->n_calls) {
			memset(&m->call[c], 0, sizeof(m->call[c]));
			m->call[c].m = m;
			m->call[c].ex = *e;
			/* not snprintf: both live in *m, and GCC's -Wrestrict (SAN=1) cannot
			 * tell the beam's copy from the call table */
			size_t pl = strnlen(e->peer, KW_HM_REC_PEER_MAX - 1);

			memcpy(m->call[c].peer[0], e->peer, pl);
			m->call[c].peer[0][pl] = '\0';
			m->call[c].n_peer = 1;
			m->n_calls++;
		}
		m->call[c].chosen++;
		m->best[r][m->n_best[r]] = c;
		m->logit[r][m->n_best[r]++] = m->beam.best_score[j];
	}
}

/* Another peer declared for uid in a record read: a replica known before any call. */
static int on_replica(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		      double exp, void *arg)
{
	struct call *c = arg;
	struct entry e;

	(void)exp;
	if (entry_get(sub, sub_len, val, val_len, &e) < 0 || strcmp(e.uid, c->ex.uid))
		return 0;
	for (uint32_t i = 0; i < c->n_peer; i++)
		if (!strcmp(c->peer[i], e.peer))
			return 0;
	if (c->n_peer < REPLICAS)
		snprintf(c->peer[c->n_peer++], KW_HM_REC_PEER_MAX, "%s", e.peer);
	return 0;
}

static void search_next(struct moe *m)
{
	for (;;) {
		uint32_t miss = 0;

		if (m->at_row == m->rows) {
			const char *why;

			for (uint32_t c = 0; c < m->n_calls; c++)
				for (uint32_t i = 0; i < m->n_rec; i++)
					if (m->rec[i].len)
						kw_hm_dict_walk(m->recbuf + m->rec[i].off,
								m->rec[i].len, on_replica,
								&m->call[c], &why);
			calls_start(m);
			return;
		}
		if (m->n_want == 0) {
			m->n_want = kw_client_beam_want(&m->beam, m->want, KW_CLIENT_BEAM_MAX);
			if (m->n_want == 0) {
				if (!m->beam.n_best) {
					fprintf(stderr, "%s: row %zu: no alive expert of %s found (%u "
						"prefix records read)\n", PROG, m->at_row, m->prefix,
						m->n_rec);
					stop(m, 1);
					return;
				}
				row_chosen(m);
				if (++m->at_row < m->rows)
					kw_client_beam_init(&m->beam, m->prefix, m->grid, m->ndim,
							    m->scores + m->at_row * m->n_scores,
							    m->k);
				continue;
			}
		}
		/* read the records this batch needs and has not read yet, all at once */
		for (uint32_t i = 0; i < m->n_want; i++) {
			struct kw_hm_dhtid key;
			struct rec *r = rec_find(m, m->want[i]);
			int ret;

			if (r)
				continue;
			if (m->n_rec == RECORDS) {
				fprintf(stderr, "%s: more than %d prefix records; %s taken as absent\n",
					PROG, RECORDS, m->want[i]);
				continue;
			}
			r = &m->rec[m->n_rec++];
			snprintf(r->key, sizeof(r->key), "%s", m->want[i]);
			ret = kw_hm_dhtid_of_str(r->key, strlen(r->key), &key);
			if (ret >= 0)
				ret = kw_hm_dht_get(m->d, &key, true, on_rec, r);
			if (ret < 0) {
				fprintf(stderr, "%s: cannot read %s: %s\n", PROG, r->key,
					kw_strerror(ret));
				r->done = true;
				continue;
			}
			m->pending_gets++;
			miss++;
		}
		if (miss)
			return;   /* on_rec comes back here once every read answered */
		for (uint32_t i = 0; i < m->n_want; i++) {
			struct rec *r = rec_find(m, m->want[i]);

			if (r && !r->done)
				return;   /* read by another batch, still under way */
		}
		feed_batch(m);
		m->n_want = 0;
	}
}

/* ---- the calls: all at once, one deadline ------------------------------------------------- */

static void print_stats(struct moe *m)
{
	/* load balance: how often each expert was chosen and answered, as the rows saw it */
	fprintf(stderr, "%s: stats: %u prefix records read, %zu rows, k %u, k_min %u\n", PROG,
		m->n_rec, m->rows, m->k, m->k_min);
	for (uint32_t c = 0; c < m->n_calls; c++) {
		const struct call *e = &m->call[c];

		fprintf(stderr, "%s: stats: %s chosen %u answered %u failovers %u replicas %u "
			"peer %s\n", PROG, e->ex.uid, e->chosen, e->state == 1 ? e->chosen : 0,
			e->failovers, e->n_peer, e->state == 1 ? e->peer[e->at] : "-");
	}
}

static void mix(struct moe *m)
{
	float w[K_MAX];

	if (m->finished)
		return;
	m->finished = true;
	kw_timer_cancel(&m->n->loop, &m->deadline);
	for (uint32_t c = 0; c < m->n_calls; c++)
		kw_timer_cancel(&m->n->loop, &m->call[c].t);
	if (m->stats)
		print_stats(m);
	memset(m->y, 0, m->rows * m->hid * sizeof(float));
	for (size_t r = 0; r < m->rows; r++) {
		if (kw_client_moe_weights(m->logit[r], m->answered[r], m->n_best[r], w) < 0) {
			fprintf(stderr, "%s: row %zu: none of its experts answered\n", PROG, r);
			stop(m, 1);
			return;
		}
		fprintf(stderr, "%s: row %zu:", PROG, r);
		for (uint32_t j = 0; j < m->n_best[r]; j++)
			fprintf(stderr, " %s (%.3f)%s", m->call[m->best[r][j]].ex.uid, (double)w[j],
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

static void call_closed(struct call *c, int state)
{
	struct moe *m = c->m;

	c->state = state;
	if (--m->calls_open == 0)
		mix(m);
}

static void on_deadline(struct kw_loop *l, struct kw_timer *t)
{
	struct moe *m = t->arg;

	(void)l;
	for (uint32_t c = 0; c < m->n_calls; c++)
		if (m->call[c].state == 0)
			fprintf(stderr, "%s: %s: no answer within the deadline; left out\n", PROG,
				m->call[c].ex.uid);
	mix(m);
}

static void on_reread(struct kw_loop *l, struct kw_timer *t);

/* The uid key read again (latest): a newer declaration may name a live replica. */
static void on_uid(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct call *c = user;
	struct moe *m = c->m;
	struct kw_mp_reader rd;
	struct kw_mp_item it;

	(void)d;
	c->reading = false;
	if (m->finished)
		return;
	if (!err && v->type == KW_HM_DHT_FOUND_REGULAR &&
	    kw_mp_reader_init(&rd, v->value, v->len, 0) == 0 && kw_mp_read(&rd, &it) == 0 &&
	    it.type == KW_MP_STR && it.len > 0 && it.len < KW_HM_REC_PEER_MAX) {
		char peer[KW_HM_REC_PEER_MAX];
		uint32_t i = 0;

		memcpy(peer, it.data, it.len);
		peer[it.len] = '\0';
		while (i < c->n_peer && strcmp(c->peer[i], peer))
			i++;
		if (i == c->n_peer && c->n_peer < REPLICAS)
			snprintf(c->peer[c->n_peer++], KW_HM_REC_PEER_MAX, "%s", peer);
		if (i < c->n_peer) {
			/* the peer the newest declaration names, tried or not: a peer that reset
			 * the call (its per-peer call limit) answers a later one */
			if (i != c->at) {
				c->failovers++;
				fprintf(stderr, "%s: %s: failover to replica %s\n", PROG, c->ex.uid,
					peer);
			}
			c->at = i;
			call_start(c);
			return;
		}
	}
	c->rereading = true;
	kw_timer_start(&m->n->loop, &c->t, REREAD_MS);
}

static void attempt_failed(struct att *a, const char *why);

static void on_reread(struct kw_loop *l, struct kw_timer *t)
{
	struct call *c = t->arg;
	struct kw_hm_dhtid key;

	(void)l;
	if (c->m->finished || c->reading)
		return;
	if (!c->rereading) {
		/* the attempt's time ran out (a dial or a call that hangs) */
		if (c->cur && c->cur->live)
			attempt_failed(c->cur, "no answer within the attempt's time");
		return;
	}
	c->rereading = false;
	if (kw_hm_dhtid_of_str(c->ex.uid, strlen(c->ex.uid), &key) == 0 &&
	    kw_hm_dht_get(c->m->d, &key, true, on_uid, c) == 0)
		c->reading = true;
	else {
		c->rereading = true;
		kw_timer_start(&c->m->n->loop, &c->t, REREAD_MS);
	}
}

/* The call on the current replica failed: the next replica known at once, else, after
 * REREAD_MS, the peer the uid key names then, again and again until the deadline (a live
 * replica's next declaration replaces a dead one's). */
static void call_failed(struct call *c, const char *why)
{
	struct moe *m = c->m;

	if (m->finished)
		return;
	fprintf(stderr, "%s: %s on %s: %s\n", PROG, c->ex.uid, c->peer[c->at], why);
	for (uint32_t i = 0; i < c->n_peer; i++)
		if (!c->tried[i]) {
			c->at = i;
			c->failovers++;
			fprintf(stderr, "%s: %s: failover to replica %s\n", PROG, c->ex.uid,
				c->peer[i]);
			call_start(c);
			return;
		}
	c->rereading = true;
	kw_timer_start(&m->n->loop, &c->t, REREAD_MS);
}

static void attempt_failed(struct att *a, const char *why)
{
	a->live = false;
	kw_timer_cancel(&a->c->m->n->loop, &a->c->t);
	call_failed(a->c, why);
}

static void on_answer(const struct kw_hm_result *r, void *user)
{
	struct att *a = user;
	struct call *c = a->c;
	struct moe *m = c->m;
	static char text[512];
	static float out[ROWS_MAX * 8192];
	uint32_t i = 0;

	if (m->finished || c->state || !a->live)
		return;
	if (r->err < 0) {
		attempt_failed(a, kw_strerror(r->err));
		return;
	}
	if (r->remote_error) {
		kw_hm_error_text(r->data, r->len, text, sizeof(text));
		attempt_failed(a, text);
		return;
	}
	if (kw_client_answer_decode(&m->codec, r->data, r->len, c->chosen, m->hid, out) < 0) {
		attempt_failed(a, "the answer is not rows x hidden of the rows sent");
		return;
	}
	a->live = false;
	kw_timer_cancel(&m->n->loop, &c->t);
	for (uint32_t row = 0; row < m->rows; row++)
		for (uint32_t j = 0; j < m->n_best[row]; j++)
			if (&m->call[m->best[row][j]] == c) {
				memcpy(m->part + ((row * K_MAX) + j) * m->hid, out + i++ * m->hid,
				       m->hid * sizeof(float));
				m->answered[row][j] = true;
				/* _collect_responses: once every row has k_min answers, the rest
				 * get timeout_after_k_min more */
				if (++m->n_answered[row] == m->k_min && --m->rows_short == 0 &&
				    m->after_k_min_ms) {
					uint64_t end = kw_loop_now(&m->n->loop) + m->after_k_min_ms;

					if (end < m->end_ms) {
						m->end_ms = end;
						kw_timer_start_at(&m->n->loop, &m->deadline, end);
					}
				}
			}
	call_closed(c, 1);
}

static void send_call(struct att *a, struct kw_conn *conn)
{
	struct call *c = a->c;
	struct moe *m = c->m;
	float *rows = m->part + (size_t)(ROWS_MAX * K_MAX) * m->hid;
	uint32_t shape[2], n = 0;
	uint64_t now, left;
	long len;
	int ret;

	/* the rows that chose the expert, packed in row order */
	for (uint32_t r = 0; r < m->rows; r++)
		for (uint32_t j = 0; j < m->n_best[r]; j++)
			if (&m->call[m->best[r][j]] == c)
				memcpy(rows + n++ * m->hid, m->x + r * m->hid, m->hid * sizeof(float));
	shape[0] = n;
	shape[1] = (uint32_t)m->hid;
	len = kw_client_req_encode(c->ex.uid, shape, 2, rows, n * m->hid, false, m->req,
				   m->req_cap);
	/* the request is copied: one encode buffer serves every call */
	now = kw_loop_now(&m->n->loop);
	left = c->att_end > now ? c->att_end - now : 1;
	ret = len < 0 ? (int)len : kw_hm_call(m->hm, conn, KW_SERVE_MOE_FORWARD, m->req,
					      (size_t)len, (uint32_t)left, on_answer, a);
	if (ret < 0)
		attempt_failed(a, kw_strerror(ret));
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *conn, int err, void *user)
{
	struct att *a = user;

	(void)sw;
	if (a->c->m->finished || !a->live)
		return;
	if (err < 0)
		attempt_failed(a, a->c->m->res.why[0] ? a->c->m->res.why : kw_strerror(err));
	else
		send_call(a, conn);
}

static void call_start(struct call *c)
{
	struct moe *m = c->m;
	struct kw_conn *conn;
	struct att *a;
	uint64_t now = kw_loop_now(&m->n->loop), left;
	int ret;

	if (c->n_att == ATTEMPTS)
		return;   /* the deadline ends it */
	a = c->cur = &c->att[c->n_att++];
	a->c = c;
	a->live = true;
	c->tried[c->at] = true;
	/* an attempt (dial and call) gets half the time left, so that a replica that hangs
	 * leaves room for another */
	left = m->end_ms > now ? m->end_ms - now : 1;
	c->att_end = now + (left > 100 ? left / 2 : left);
	c->rereading = false;
	kw_timer_start_at(&m->n->loop, &c->t, c->att_end);
	m->res.why[0] = '\0';
	ret = kw_client_connect(m->sw, c->peer[c->at], m->addr, m->n_addr, on_dial, a, &conn);
	/* neither connected nor given: the PeerID over /ipfs/kad/1.0.0 (one lookup at a time;
	 * a second gets -KW_EBUSY and the failover timer tries again) */
	if (ret == -KW_ENOENT)
		ret = kw_client_resolve(&m->res, c->peer[c->at], m->addr, m->n_addr, on_dial, a,
					&conn);
	if (ret == 1)
		send_call(a, conn);
	else if (ret < 0)
		attempt_failed(a, m->res.why[0] ? m->res.why : kw_strerror(ret));
}

static void calls_start(struct moe *m)
{
	fprintf(stderr, "%s: beam search over %s, grid", PROG, m->prefix);
	for (uint32_t d = 0; d < m->ndim; d++)
		fprintf(stderr, "%s%u", d ? " x " : " ", m->grid[d]);
	fprintf(stderr, ": %u prefix records read, %u experts chosen\n", m->n_rec, m->n_calls);
	m->rows_short = (uint32_t)m->rows;
	m->calls_open = m->n_calls;
	m->end_ms = kw_loop_now(&m->n->loop) + m->timeout_ms;
	kw_timer_init(&m->deadline, on_deadline, m);
	m->started = true;
	kw_timer_start_at(&m->n->loop, &m->deadline, m->end_ms);
	for (uint32_t c = 0; c < m->n_calls; c++)
		kw_timer_init(&m->call[c].t, on_reread, &m->call[c]);
	for (uint32_t c = 0; c < m->n_calls && !m->finished; c++)
		call_start(&m->call[c]);
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct moe *m = t->arg;
	struct kw_hm_dht_contact any;
	struct kw_hm_dhtid zero;

	memset(&zero, 0, sizeof(zero));
	if ((kw_hm_rt_nearest(kw_hm_dht_rt(m->d), &zero, 1, NULL, &any) == 0 ||
	     kw_hm_dht_ops_busy(m->d)) && kw_loop_now(l) < m->join_ms) {
		kw_timer_start(l, t, 20);
		return;
	}
	if (kw_hm_rt_nearest(kw_hm_dht_rt(m->d), &zero, 1, NULL, &any) == 0) {
		fprintf(stderr, "%s: could not join the Hivemind DHT within %u ms\n", PROG,
			m->wait_ms);
		stop(m, 1);
		return;
	}
	/* per row: gating scores, then MoEBeamSearcher with beam_size = k (hivemind's
	 * batch_find_best_experts(grid_scores, k_best)) */
	for (size_t r = 0; r < m->rows; r++)
		kw_client_moe_gate(0, m->grid, m->ndim, m->x + r * m->hid, m->hid,
				   m->scores + r * m->n_scores);
	kw_client_beam_init(&m->beam, m->prefix, m->grid, m->ndim, m->scores, m->k);
	search_next(m);
}

/* An option's value, 1..hi, into *out; else a message naming the option. Return: 0 or -1. */
static int opt_u32(const char *name, uint32_t hi, uint32_t *out)
{
	if (kw_config_parse_u32(optarg, 1, hi, out) < 0) {
		fprintf(stderr, "%s: %s must be 1..%u\n", PROG, name, (unsigned)hi);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode moe --prefix P --grid NxM --input FILE [-k K] --bootstrap ADDR...\n"
		"                  [--peer ADDR]... [--timeout-ms MS] [--k-min N]\n"
		"                  [--timeout-after-k-min-ms MS] [--stats] [--data-dir DIR]\n"
		"  One forward of hivemind's RemoteMixtureOfExperts over the experts P.<i>.<j>...\n"
		"  of grid NxM declared on the Hivemind DHT: per row of FILE ('shape B H' then the values),\n"
		"  the K (default 2) best alive experts by a generated gate, found by hivemind's beam\n"
		"  search, called at once (deadline --timeout-ms, default 10000; a failed call goes\n"
		"  to another replica of the expert when one is known), their outputs mixed by the\n"
		"  softmax of the scores of those that answered. Once every row has --k-min answers\n"
		"  (default 1) the rest get --timeout-after-k-min-ms more (default: the deadline).\n"
		"  --stats: per expert how often it was chosen and answered. Prints the output tensor.\n");
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
		{ "k-min", required_argument, NULL, 'm' },
		{ "timeout-after-k-min-ms", required_argument, NULL, 'a' },
		{ "stats", no_argument, NULL, 's' },
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
	m->k_min = 1;
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
			if (opt_u32("-k", K_MAX, &m->k))
				return 2;
			break;
		case 't':
			if (opt_u32("--timeout-ms", 600000, &m->timeout_ms))
				return 2;
			break;
		case 'm':
			if (opt_u32("--k-min", K_MAX, &m->k_min))
				return 2;
			break;
		case 'a':
			if (opt_u32("--timeout-after-k-min-ms", 600000, &m->after_k_min_ms))
				return 2;
			break;
		case 's': m->stats = true; break;
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
	if (m->k_min > m->k) {
		fprintf(stderr, "%s: --k-min %u is above -k %u\n", PROG, m->k_min, m->k);
		goto out;
	}
	m->rows = shape[0];
	m->hid = shape[1];
	for (uint32_t d = 0; d < m->ndim; d++)
		m->n_scores += m->grid[d];
	m->scores = malloc(m->rows * m->n_scores * sizeof(float));
	m->recbuf = malloc(REC_BYTES);
	m->y = malloc(m->rows * m->hid * sizeof(float));
	m->part = calloc((size_t)(ROWS_MAX * K_MAX + ROWS_MAX) * m->hid, sizeof(float));
	m->req_cap = m->rows * m->hid * sizeof(float) + 4096;
	m->req = malloc(m->req_cap);
	code = 1;
	if (!m->y || !m->part || !m->req || !m->scores || !m->recbuf || kw_codec_init(&m->codec, KW_SIMD_AUTO) < 0) {
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
	/* The Hivemind DHT finds the addresses of peers its answers name by PeerID over kad,
	 * as the calls do (call_start). A stopped peer among them costs a search the DHT's
	 * connect_timeout_ms (lookup, dial, handshake), later searches nothing while that dial
	 * runs; not the swarm's handshake timeout, after which declarations of a 1 s period
	 * had expired. 1 s here, not the 3 s default: experts answer on 127.0.0.1 or a LAN,
	 * and a beam search is interactive. */
	if (kw_app_hm_start_connect(t.n, t.sw, t.id, m->kad, true, 1000,
			    (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
			    cfg.n_hivemind_bootstrap, &m->hm, &m->d, &m->st) < 0) {
		fprintf(stderr, "%s: cannot start the Hivemind DHT\n", PROG);
		goto out;
	}
	kw_timer_init(&m->timer, on_tick, m);
	m->join_ms = kw_loop_now(&t.n->loop) + m->wait_ms;
	kw_timer_start(&t.n->loop, &m->timer, 0);
	m->code = 1;
	kw_loop_run(&t.n->loop);
	kw_timer_cancel(&t.n->loop, &m->timer);
	if (m->started) {
		kw_timer_cancel(&t.n->loop, &m->deadline);
		for (uint32_t c = 0; c < m->n_calls; c++)
			kw_timer_cancel(&t.n->loop, &m->call[c].t);
	}
	m->finished = true;   /* calls still open are dropped with the node */
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
	free(m->scores);
	free(m->recbuf);
	return code;
}
