/*
 * Our own Hivemind DHT calls (include/kw/net/hivemind_dht.h, part 5): ping, get and store as
 * learning-at-home/hivemind @ 4bd43b7 makes them in `hivemind/dht/protocol.py`
 * (call_ping, call_store, call_find, update_routing_table), `hivemind/dht/node.py`
 * (DHTNode.get_many / store_many / find_nearest_nodes) and `hivemind/dht/traverse.py`
 * (traverse_dht), plus the address book a C node needs because FindResult names peers by
 * PeerID only (p2pd keeps a peerstore for Python).
 *
 * One search is one key (hivemind batches up to 16 keys per rpc_find and several queries
 * per traversal; a get or store here asks one key per call). The search keeps up to
 * CONFIG_KW_NET_HIVEMIND_DHT_CANDIDATES nodes: each is NEW (not asked yet), ASKING, OK
 * (answered: in the beam) or FAIL. Up to num_workers rpc_find calls are in flight; the
 * next one goes to the nearest NEW node, unless beam_size nodes nearer than it answered
 * already, which ends the search (traverse_dht's stop rule); a get also ends at the first
 * live value unless `latest` asked for the newest.
 *
 * Completion: an operation's callback runs once, from a zero-delay timer or from the
 * answer that finishes it, never inside the starting call. Requests still in flight then
 * complete into the routing table and blacklist only; the operation slot is freed when the
 * last one is back.
 *
 * Owner: net/hivemind. Pools and buffers come from the node's arena at kw_hm_dht_create.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "dht_priv.h"

#define OPS     (d->cfg.client_ops)
#define RPCS    (d->cfg.client_rpcs)
#define CANDS   (d->cfg.candidates)
#define BOOK    (d->cfg.addr_book)
#define MERGE   (d->cfg.merge_cells)
#define MAX_DHT_TIME_DISCREPANCY_SECONDS 3.0   /* hivemind/dht/protocol.py */
#define RETRY_MS 20u             /* a search waiting for a free request slot */
/* Keys of other searches of the same get_many/store_many one rpc_find carries besides its
 * own: hivemind's traverse_dht sends one request per peer for every query that wants that
 * peer, in chunks of 16 keys (DHTNode.find_nearest_nodes chunk_size). */
#define MORE_MAX 15u

enum { C_NEW, C_ASKING, C_OK, C_FAIL };
enum { OP_GET = 1, OP_STORE, OP_FIND, OP_PING };
enum { R_FIND = 1, R_STORE, R_PING, R_PUSH };

struct cand {
	struct kw_hm_dht_contact c;
	uint8_t st;
	bool self;
};

struct kw_hm_op {
	struct kw_hm_dht *d;
	struct kw_hm_op *grp;         /* next search of the same get_many/store_many (a ring;
				       * itself when alone) */
	uint8_t kind;
	bool busy, finished, delivered, storing, latest, validate, bootstrap;
	int err;
	struct kw_hm_dhtid key;
	uint32_t active;              /* requests of this operation in flight */
	uint32_t answered;
	uint32_t n_cand;
	struct cand *cand;            /* CANDS */
	struct kw_timer timer;        /* deferred completion */
	struct kw_hm_store merge;     /* get: what the answers said, merged */
	uint8_t *buf;                 /* store: subkey || value; get: the packed dictionary */
	size_t sub_len, val_len;
	double exp;
	uint32_t next;                /* store: next candidate (sorted) to try */
	uint32_t local_retries;       /* finds refused by our own limits and asked again */
	struct kw_hm_dht_store_result sres;
	struct kw_hm_dht_pong pong;
	double t_sent;
	union {
		kw_hm_dht_get_cb get;
		kw_hm_dht_store_cb store;
		kw_hm_dht_ping_cb ping;
	} cb;
	void *user;
};

struct kw_hm_rpc {
	struct kw_hm_dht *d;
	struct kw_hm_op *op;          /* NULL: a newcomer push */
	uint8_t kind;
	bool busy, resolving, resolved;
	/* its search gave up on it at connect_timeout_ms while the peer was still being
	 * resolved or dialed: the slot stays taken (that callback holds r) until the lookup or
	 * dial ends, which only gives the verdict on the peer (a failed dial blacklists it) */
	bool detached;
	bool calling;                 /* the call went out: its own timeout bounds it */
	struct kw_timer deadline;     /* connect_timeout_ms from rpc_start, until the call */
	uint32_t idx;                 /* candidate or replica index */
	struct kw_hm_dht_contact c;   /* whom (id zero for a ping) */
	struct kw_peer_id pid;
	uint8_t addr_try;
	/* rpc_find: other searches of op's group asking the same peer in this request */
	uint32_t n_more;
	struct {
		struct kw_hm_op *op;
		uint32_t idx;
	} more[MORE_MAX];
};

static void pump(struct kw_hm_op *op);
static void rpc_done(struct kw_hm_rpc *r, const struct kw_hm_result *res);
static void rpc_settle(struct kw_hm_rpc *r, const struct kw_hm_result *res, bool verdict);
static void on_rpc_deadline(struct kw_loop *l, struct kw_timer *t);

/* Finds of one operation that our own limits refused and that are asked again. */
#define LOCAL_RETRIES_MAX 16u

static bool is_local_refusal(int err)
{
	return err == -KW_ELIMIT || err == -KW_ENOBUFS || err == -KW_ENOMEM;
}

/* ---- address book ---------------------------------------------------------------------- */

static struct kw_hm_book *book_find(struct kw_hm_dht *d, const uint8_t *peer, size_t len)
{
	for (uint32_t i = 0; i < BOOK; i++)
		if (d->book[i].peer.len == len && !memcmp(d->book[i].peer.bytes, peer, len))
			return &d->book[i];
	return NULL;
}

int kw_hm_dht_add_addr(struct kw_hm_dht *d, const uint8_t *peer, size_t peer_len,
		       const char *maddr)
{
	struct kw_multiaddr ma;
	struct kw_hm_book *b;
	char text[KW_MADDR_TEXT_MAX];

	if (!peer_len || peer_len > KW_PEER_ID_MAX ||
	    kw_maddr_from_text(maddr, &ma, NULL, 0) < 0)
		return -KW_EINVAL;
	kw_maddr_strip_peer_id(&ma);
	if (kw_maddr_to_text(&ma, text, sizeof(text)) < 0 || strlen(text) >= KW_HM_BOOK_ADDR_MAX)
		return -KW_EINVAL;
	/* a bare /p2p/<id> (a ping or reach by PeerID alone) teaches no address: taking it
	 * would push a real one out of the peer's KW_HM_BOOK_ADDRS, or another peer's entry
	 * out of the book */
	if (!text[0])
		return 0;
	b = book_find(d, peer, peer_len);
	if (!b) {
		b = &d->book[0];
		for (uint32_t i = 1; i < BOOK && b->peer.len; i++)
			if (!d->book[i].peer.len || d->book[i].seq < b->seq)
				b = &d->book[i];
		memset(b, 0, sizeof(*b));
		b->peer.len = (uint8_t)peer_len;
		memcpy(b->peer.bytes, peer, peer_len);
	}
	b->seq = ++d->book_seq;
	for (uint8_t i = 0; i < b->n; i++)
		if (!strcmp(b->addr[i], text))
			return 0;
	if (b->n == KW_HM_BOOK_ADDRS) {       /* keep the newest: drop the first */
		memmove(b->addr[0], b->addr[1], sizeof(b->addr[0]) * (KW_HM_BOOK_ADDRS - 1));
		b->n--;
	}
	memcpy(b->addr[b->n++], text, strlen(text) + 1);
	return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

static struct kw_hm_rpc *rpc_alloc(struct kw_hm_dht *d)
{
	for (uint32_t i = 0; i < RPCS; i++)
		if (!d->rpcs[i].busy) {
			struct kw_hm_rpc *r = &d->rpcs[i];

			memset(r, 0, sizeof(*r));
			r->d = d;
			r->busy = true;
			kw_timer_init(&r->deadline, on_rpc_deadline, r);
			return r;
		}
	d->stats.rpcs_refused++;
	return NULL;
}

static void on_reply(const struct kw_hm_result *res, void *user);

/* The FindRequest of r: its operation's key, then the keys of the searches riding along. */
static long encode_find(struct kw_hm_dht *d, const struct kw_hm_rpc *r, uint8_t *buf,
			size_t cap)
{
	struct kw_hm_dht_find_req *q = &d->req->find;

	memset(q, 0, sizeof(*q));
	q->n_keys = 1 + r->n_more;
	q->keys[0] = (struct kw_hm_bytes){ r->op->key.b, KW_HM_DHTID_LEN };
	for (uint32_t k = 0; k < r->n_more; k++)
		q->keys[1 + k] = (struct kw_hm_bytes){ r->more[k].op->key.b, KW_HM_DHTID_LEN };
	q->peer = kw_hm_dht_own(d);
	return kw_hm_dht_encode(KW_HM_DHT_FIND_REQ, q, buf, cap);
}

/* The StoreRequest of a store operation: one item, into the main tier. */
static long encode_store(struct kw_hm_op *op, uint8_t *buf, size_t cap)
{
	static const uint8_t regular = KW_HM_DHT_IS_REGULAR;
	struct kw_hm_dht *d = op->d;
	struct kw_hm_dht_store_req *q = &d->req->store;

	memset(q, 0, sizeof(*q));
	q->n_keys = q->n_subkeys = q->n_values = q->n_exp = q->n_in_cache = 1;
	q->keys[0] = (struct kw_hm_bytes){ op->key.b, KW_HM_DHTID_LEN };
	q->subkeys[0] = op->sub_len ? (struct kw_hm_bytes){ op->buf, op->sub_len } :
				      (struct kw_hm_bytes){ &regular, 1 };
	q->values[0] = (struct kw_hm_bytes){ op->buf + op->sub_len, op->val_len };
	q->exp[0] = op->exp;
	q->peer = kw_hm_dht_own(d);
	return kw_hm_dht_encode(KW_HM_DHT_STORE_REQ, q, buf, cap);
}

/* Sends r's request on c. Return: 0 (on_reply will run) or a negative code. */
static int rpc_send(struct kw_hm_rpc *r, struct kw_conn *c)
{
	struct kw_hm_dht *d = r->d;
	const char *name = KW_HM_FIND_NAME;
	long n;

	switch (r->kind) {
	case R_FIND:
		n = encode_find(d, r, d->push_out, d->buf_bytes);
		break;
	case R_STORE:
		name = KW_HM_STORE_NAME;
		n = encode_store(r->op, d->push_out, d->buf_bytes);
		break;
	case R_PING: {
		struct kw_hm_dht_ping_req q = { kw_hm_dht_own(d), r->op->validate };

		name = KW_HM_PING_NAME;
		n = kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &q, d->push_out, d->buf_bytes);
		r->op->t_sent = kw_hm_dht_now(d);
		break;
	}
	default:
		return -KW_EINVAL;
	}
	if (n < 0)
		return (int)n;
	d->stats.rpcs_out++;
	/* connected: the call's own timeout (rpc_timeout_ms) takes over from the deadline */
	kw_timer_cancel(d->loop, &r->deadline);
	r->calling = true;
	return kw_hm_call(d->hm, c, name, d->push_out, (size_t)n, d->cfg.rpc_timeout_ms,
			  on_reply, r);
}

static int rpc_reach(struct kw_hm_rpc *r);

/* A failed peer, as hivemind treats one: blacklisted, and out of the routing table. */
static void peer_failed(struct kw_hm_rpc *r)
{
	struct kw_hm_dht *d = r->d;

	d->stats.rpcs_failed++;
	kw_hm_bl_failure(&d->bl, r->pid.bytes, r->pid.len, kw_hm_dht_now(d));
	if (r->kind != R_PING && r->kind != R_PUSH)
		(void)kw_hm_rt_remove(&d->rt, &r->c.id);
}

/*
 * The lookup or dial of a detached request ended (its search went on without it): give the
 * verdict on the peer and free the slot. Reached: nothing held against it, and the
 * connection serves the next search. Not reached (every address failed, no address): failed.
 * retry: a dial failed, try the next address first, as an attached request would.
 */
static void detached_end(struct kw_hm_rpc *r, int err, bool retry)
{
	/* the swarm closing (node shutdown): no verdict, and nothing more to start */
	bool closing = err == -KW_ESHUTDOWN || err == -KW_ECANCELED;

	if (err < 0 && !closing && !is_local_refusal(err)) {
		if (retry)
			err = rpc_reach(r);
		if (err == 0)
			return;                   /* the next address: still going */
		if (!is_local_refusal(err)) {
			peer_failed(r);
			KW_LOG_DBG(hivemind, "DHT peer given up at the connect deadline: %s",
				   kw_strerror(err));
		}
	}
	r->detached = false;
	r->busy = false;
}

/* A detached request to this peer is still resolving or dialing: a search does not wait on
 * it again (it would stall as long as the first one did). */
static bool detached_to(struct kw_hm_dht *d, const uint8_t *peer, size_t len)
{
	for (uint32_t i = 0; i < RPCS; i++)
		if (d->rpcs[i].busy && d->rpcs[i].detached && d->rpcs[i].pid.len == len &&
		    !memcmp(d->rpcs[i].pid.bytes, peer, len))
			return true;
	return false;
}

/*
 * A request whose peer was not reached (resolved, dialed, handshaken) connect_timeout_ms
 * after it started: its search stops waiting for it, counts it as not answered and does
 * not ask that peer again; the search's other requests go on. The swarm's handshake timeout
 * (10 s) and a kad lookup's query timeouts are longer: a search waiting on them stalled on
 * a stopped peer whose TCP still accepts, and the records it had read expired meanwhile.
 * The lookup or dial itself runs on (detached_end): a peer on a slow link is not
 * blacklisted for being slow, a dead one is once its dial fails.
 */
static void on_rpc_deadline(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_hm_rpc *r = t->arg;
	struct kw_hm_result res = { .err = -KW_ETIMEDOUT };

	(void)l;
	if (!r->busy || r->detached || r->calling)
		return;
	r->d->stats.rpcs_deadline++;
	r->detached = true;
	rpc_settle(r, &res, false);
}

static void on_dialed(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct kw_hm_rpc *r = user;
	struct kw_hm_result res = { 0 };

	(void)sw;
	if (r->detached) {
		if (err)
			r->addr_try++;
		detached_end(r, err, true);
		return;
	}
	if (!err)
		err = rpc_send(r, c);
	else {
		r->addr_try++;
		err = rpc_reach(r);       /* the next address, or the resolver */
	}
	if (err < 0) {
		res.err = err;
		rpc_done(r, &res);
	}
}

static void on_resolved(void *ctx, int err)
{
	struct kw_hm_rpc *r = ctx;
	struct kw_hm_result res = { 0 };

	if (r->detached) {
		/* found or not, nothing to dial for now: a failed lookup is the peer's verdict */
		r->resolving = false;
		detached_end(r, err, false);
		return;
	}
	r->resolving = false;
	r->addr_try = 0;
	err = err < 0 ? err : rpc_reach(r);
	if (err < 0) {
		res.err = err;
		rpc_done(r, &res);
	}
}

/*
 * Gets r's request going: on a connection to the peer, else by dialing its next address,
 * else through the resolver (once). Return: 0 (a callback will run) or a negative code
 * (nothing will run; the caller finishes r).
 */
static int rpc_reach(struct kw_hm_rpc *r)
{
	struct kw_hm_dht *d = r->d;
	struct kw_conn *c = kw_swarm_find_conn(d->sw, &r->pid);
	struct kw_hm_book *b;
	char id[128], text[KW_HM_BOOK_ADDR_MAX + 140];
	int err;

	if (c)
		return rpc_send(r, c);
	b = book_find(d, r->pid.bytes, r->pid.len);
	if (kw_peer_id_to_text(&r->pid, id, sizeof(id)) < 0)
		return -KW_EINVAL;
	while (b && r->addr_try < b->n) {
		snprintf(text, sizeof(text), "%s/p2p/%s", b->addr[r->addr_try], id);
		err = kw_swarm_dial(d->sw, text, on_dialed, r);
		if (err == 0)
			return 0;
		if (err == -KW_ELIMIT)
			return err;  /* no dial slot now (all busy): not this peer's address's fault */
		r->addr_try++;
	}
	if (d->cfg.resolve && !r->resolved) {
		r->resolved = true;
		r->resolving = true;
		err = d->cfg.resolve(d->cfg.resolve_arg, r->pid.bytes, r->pid.len, on_resolved, r);
		if (err == 0)
			return 0;
		r->resolving = false;
		if (err == -KW_ELIMIT) {
			/* every lookup slot busy: ours, not the peer's doing; asked again later */
			r->resolved = false;
			return err;
		}
	}
	d->stats.unreachable++;
	return -KW_ENOTCONN;
}

static bool beyond_beam(const struct kw_hm_op *op, int i);

/*
 * An rpc_find of r->op to peer c also carries the other searches of its group that would ask
 * c next anyway (c among their candidates not asked yet, within their beam and worker limit):
 * one request per peer for several keys, as hivemind's traverse_dht batches its queries.
 */
static void gather(struct kw_hm_rpc *r, const struct kw_hm_dht_contact *c)
{
	uint32_t max = KW_HM_DHT_MAX_KEYS - 1 < MORE_MAX ? KW_HM_DHT_MAX_KEYS - 1 : MORE_MAX;

	r->n_more = 0;
	for (struct kw_hm_op *s = r->op->grp; s != r->op && r->n_more < max; s = s->grp) {
		if (s->finished || s->storing || s->active >= s->d->cfg.num_workers)
			continue;
		for (uint32_t j = 0; j < s->n_cand; j++) {
			if (s->cand[j].st != C_NEW || s->cand[j].c.peer_len != c->peer_len ||
			    memcmp(s->cand[j].c.peer, c->peer, c->peer_len))
				continue;
			if (!beyond_beam(s, (int)j)) {
				s->cand[j].st = C_ASKING;
				s->active++;
				r->more[r->n_more].op = s;
				r->more[r->n_more++].idx = j;
			}
			break;
		}
	}
}

/*
 * Starts a request of op to contact c. Return: 0 (rpc_done will run for it); -KW_ELIMIT
 * (request pool empty); -KW_EINPROGRESS (an earlier search gave up on this peer at the
 * connect deadline and its dial still runs); another negative code when the peer cannot be
 * reached now.
 */
static int rpc_start(struct kw_hm_op *op, uint8_t kind, const struct kw_hm_dht_contact *c,
		     uint32_t idx)
{
	struct kw_hm_rpc *r;
	int err;

	if (kind != R_PING && detached_to(op->d, c->peer, c->peer_len))
		return -KW_EINPROGRESS;
	r = rpc_alloc(op->d);
	if (!r)
		return -KW_ELIMIT;
	r->op = op;
	r->kind = kind;
	r->idx = idx;
	r->c = *c;
	r->pid.len = c->peer_len;
	memcpy(r->pid.bytes, c->peer, c->peer_len);
	r->n_more = 0;
	if (kind == R_FIND)
		gather(r, c);
	err = rpc_reach(r);
	if (err < 0) {
		/* the riders ask that peer themselves (and learn it fails) */
		for (uint32_t k = 0; k < r->n_more; k++) {
			r->more[k].op->cand[r->more[k].idx].st = C_NEW;
			r->more[k].op->active--;
		}
		r->busy = false;
		return err;
	}
	op->active++;
	if (!r->calling)
		(void)kw_timer_start(op->d->loop, &r->deadline, op->d->cfg.connect_timeout_ms);
	return 0;
}

static void on_reply(const struct kw_hm_result *res, void *user)
{
	struct kw_hm_rpc *r = user;

	rpc_done(r, res);
}

/* ---- operations ----------------------------------------------------------------------- */

static void op_release(struct kw_hm_op *op)
{
	struct kw_hm_op *p = op;

	kw_timer_cancel(op->d->loop, &op->timer);
	while (p->grp != op)          /* leave the group's ring */
		p = p->grp;
	p->grp = op->grp;
	op->grp = op;
	op->busy = false;
}

static void deliver(struct kw_hm_op *op);

static void on_op_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_hm_op *op = t->arg;

	(void)l;
	if (op->finished && !op->delivered)
		deliver(op);
	else
		pump(op);
}

/* Ends op with err: the callback runs from the loop (at once if nothing is in flight). */
static void finish(struct kw_hm_op *op, int err)
{
	if (op->finished)
		return;
	op->finished = true;
	op->err = err;
	kw_timer_start(op->d->loop, &op->timer, 0);
}

static struct kw_hm_op *op_alloc(struct kw_hm_dht *d, uint8_t kind, void *user)
{
	for (uint32_t i = 0; i < OPS; i++) {
		struct kw_hm_op *op = &d->ops[i];

		if (op->busy)
			continue;
		op->busy = true;
		op->grp = op;
		op->kind = kind;
		op->finished = op->delivered = op->storing = false;
		op->latest = op->validate = op->bootstrap = false;
		op->err = 0;
		op->active = op->answered = op->n_cand = op->next = 0;
		op->sub_len = op->val_len = 0;
		memset(&op->sres, 0, sizeof(op->sres));
		memset(&op->pong, 0, sizeof(op->pong));
		kw_hm_store_clear(&op->merge);
		kw_timer_init(&op->timer, on_op_timer, op);
		op->user = user;
		d->stats.ops_started++;
		return op;
	}
	d->stats.ops_refused++;
	return NULL;
}

/* Adds a node to op's candidates (not ourselves, not twice, not a banned peer). When full, a
 * nearer node takes the place of the farthest one not asked yet. */
static void cand_add(struct kw_hm_op *op, const struct kw_hm_dht_contact *c)
{
	struct kw_hm_dht *d = op->d;
	uint32_t far = UINT32_MAX;

	if (!kw_hm_dhtid_cmp(&c->id, &d->cfg.node_id) ||
	    kw_hm_bl_banned(&d->bl, c->peer, c->peer_len, kw_hm_dht_now(d)))
		return;
	for (uint32_t i = 0; i < op->n_cand; i++) {
		if (!op->cand[i].self && !kw_hm_dhtid_cmp(&op->cand[i].c.id, &c->id))
			return;
		if (op->cand[i].st == C_NEW &&
		    (far == UINT32_MAX ||
		     kw_hm_dhtid_dist_cmp(&op->key, &op->cand[i].c.id, &op->cand[far].c.id) > 0))
			far = i;
	}
	if (op->n_cand < CANDS) {
		op->cand[op->n_cand].c = *c;
		op->cand[op->n_cand].st = C_NEW;
		op->cand[op->n_cand++].self = false;
	} else if (far != UINT32_MAX &&
		   kw_hm_dhtid_dist_cmp(&op->key, &c->id, &op->cand[far].c.id) < 0) {
		op->cand[far].c = *c;
	}
}

static void seed(struct kw_hm_op *op)
{
	struct kw_hm_dht *d = op->d;
	struct kw_hm_dht_contact near[KW_HM_DHT_MAX_NEAREST];
	size_t k = d->cfg.beam_size < KW_HM_DHT_MAX_NEAREST ? d->cfg.beam_size :
							      KW_HM_DHT_MAX_NEAREST;
	size_t n = kw_hm_rt_nearest(&d->rt, &op->key, k, NULL, near);

	for (size_t i = 0; i < n; i++)
		cand_add(op, &near[i]);
}

/* The nearest node not asked yet, or -1. */
static int nearest_new(const struct kw_hm_op *op)
{
	int best = -1;

	for (uint32_t i = 0; i < op->n_cand; i++)
		if (op->cand[i].st == C_NEW &&
		    (best < 0 || kw_hm_dhtid_dist_cmp(&op->key, &op->cand[i].c.id,
						      &op->cand[best].c.id) < 0))
			best = (int)i;
	return best;
}

/* traverse_dht's stop rule: beam_size nodes nearer than candidate i answered already. */
static bool beyond_beam(const struct kw_hm_op *op, int i)
{
	uint32_t nearer = 0;

	for (uint32_t j = 0; j < op->n_cand; j++)
		if (op->cand[j].st == C_OK &&
		    kw_hm_dhtid_dist_cmp(&op->key, &op->cand[j].c.id, &op->cand[i].c.id) < 0)
			nearer++;
	return nearer >= op->d->cfg.beam_size;
}

static void store_phase(struct kw_hm_op *op);
static void store_more(struct kw_hm_op *op);

/* The search ran out of nodes worth asking (nothing in flight). */
static void search_done(struct kw_hm_op *op)
{
	switch (op->kind) {
	case OP_STORE:
		store_phase(op);
		break;
	case OP_GET:
		finish(op, 0);
		break;
	default:
		finish(op, op->answered ? 0 : -KW_ENOTCONN);
		break;
	}
}

static void pump(struct kw_hm_op *op)
{
	struct kw_hm_dht *d = op->d;

	if (op->finished)
		return;
	if (op->storing) {
		store_more(op);
		return;
	}
	while (op->active < d->cfg.num_workers) {
		int i = nearest_new(op), err;

		if (i < 0 || beyond_beam(op, i))
			break;
		op->cand[i].st = C_ASKING;
		err = rpc_start(op, R_FIND, &op->cand[i].c, (uint32_t)i);
		if (err == -KW_ELIMIT) {
			/* every request slot is busy elsewhere (other searches, pushes, detached
			 * dials): each ends within rpc_timeout_ms or the handshake timeout, so try
			 * again shortly */
			op->cand[i].st = C_NEW;
			if (op->active == 0)
				kw_timer_start(d->loop, &op->timer, RETRY_MS);
			return;
		}
		if (err < 0) {
			/* EINPROGRESS: its peer is given up on by an earlier search, still dialing */
			op->cand[i].st = C_FAIL;
			d->stats.rpcs_failed += err != -KW_EINPROGRESS;
		}
	}
	if (op->active == 0)
		search_done(op);
}

/* ---- answers -------------------------------------------------------------------------- */

/* A get's answer: merge the value (the scratch tier applies hivemind's storage rules: newer
 * expiration wins, dictionaries merge entry by entry), add the nearest nodes. */
static void take_find(struct kw_hm_op *op, const struct kw_hm_dht_find_result *fr)
{
	struct kw_hm_dht *d = op->d;
	double t = kw_hm_dht_now(d);
	const char *why;

	if (op->kind == OP_GET && fr->type == KW_HM_DHT_FOUND_REGULAR)
		(void)kw_hm_store_put(&op->merge, &op->key, fr->value.p, fr->value.len,
				      fr->expiration, t);
	else if (op->kind == OP_GET && fr->type == KW_HM_DHT_FOUND_DICTIONARY)
		(void)kw_hm_store_put_dict(&op->merge, &op->key, fr->value.p, fr->value.len, t,
					   &why);
	for (uint32_t j = 0; j < fr->n_node_ids && j < fr->n_peer_ids; j++) {
		struct kw_hm_dht_contact c;

		if (fr->peer_ids[j].len == 0 || fr->peer_ids[j].len > KW_HM_DHT_PEER_ID_MAX ||
		    kw_hm_dhtid_from_bytes(fr->node_ids[j].p, fr->node_ids[j].len, &c.id))
			continue;
		c.peer_len = (uint8_t)fr->peer_ids[j].len;
		memcpy(c.peer, fr->peer_ids[j].p, c.peer_len);
		cand_add(op, &c);
	}
}

/* Whether a get has a value good enough to stop (DHTNode.get: sufficient_expiration_time is
 * now, or +inf with latest). */
static bool get_satisfied(struct kw_hm_op *op)
{
	struct kw_hm_store_found f;

	if (op->latest)
		return false;
	(void)kw_hm_store_get(&op->merge, &op->key, kw_hm_dht_now(op->d), &f);
	return f.type != KW_HM_DHT_NOT_FOUND;
}

/*
 * Decodes the peer's NodeInfo from an answer and updates the routing table with it; an
 * answer without node_id (a client) is still an answer. Return: 0 or the decode error.
 */
static int decode_reply(struct kw_hm_rpc *r, const struct kw_hm_result *res,
			struct kw_hm_dht_peer *peer, void *m, int kind)
{
	struct kw_hm_dht *d = r->d;
	const char *why = "";
	int err = kw_hm_dht_decode(kind, res->data, res->len, m, &why);

	if (err) {
		d->stats.bad_replies++;
		KW_LOG_WRN(hivemind, "bad DHT answer from a peer: %s (%s)", why, kw_strerror(err));
		return err;
	}
	if (peer->present && peer->node_id.len) {
		struct kw_hm_dhtid id;

		if (!kw_hm_dhtid_from_bytes(peer->node_id.p, peer->node_id.len, &id)) {
			r->c.id = id;
			kw_hm_dht_met(d, kw_swarm_find_conn(d->sw, &r->pid), &id, r->pid.bytes,
				      r->pid.len);
		}
	}
	return 0;
}

/* The searches one rpc_find asked for, in key order: taken from the request before it is
 * freed (decoding the answer may start a newcomer push that takes the same slot). */
struct asked {
	struct kw_hm_op *op;
	uint32_t idx;
};

/* An answer to an rpc_find: result k belongs to the k-th key asked. */
static void got_find(struct kw_hm_rpc *r, const struct kw_hm_result *res,
		     const struct asked *who, uint32_t n_who)
{
	struct kw_hm_dht *d = r->d;
	struct kw_hm_dht_find_resp *fr = d->fresp;
	int err = decode_reply(r, res, &fr->peer, fr, KW_HM_DHT_FIND_RESP);

	for (uint32_t k = 0; k < n_who; k++) {
		uint32_t idx = who[k].idx;
		struct kw_hm_op *op = who[k].op;
		int e = err;

		if (!e && fr->n_results < k + 1)
			e = -KW_EPROTO;
		if (!e)
			e = kw_hm_dht_find_result_decode(fr->raw[k].p, fr->raw[k].len, d->fres, NULL);
		if (e) {
			op->cand[idx].st = C_FAIL;
			continue;
		}
		op->cand[idx].st = C_OK;
		op->answered++;
		if (op->finished)
			continue;
		take_find(op, d->fres);
		if (op->kind == OP_GET && get_satisfied(op))
			finish(op, 0);
	}
}

static void got_store(struct kw_hm_rpc *r, const struct kw_hm_result *res)
{
	struct kw_hm_op *op = r->op;
	struct kw_hm_dht_store_resp sr;
	struct kw_hm_dht_replica *rep = &op->sres.r[r->idx];

	if (decode_reply(r, res, &sr.peer, &sr, KW_HM_DHT_STORE_RESP))
		return;
	rep->answered = true;
	rep->store_ok = sr.n >= 1 && sr.store_ok[0];
	if (rep->store_ok)
		op->sres.n_ok++;
	op->answered++;
}

static void got_ping(struct kw_hm_rpc *r, const struct kw_hm_result *res)
{
	struct kw_hm_op *op = r->op;
	struct kw_hm_dht *d = r->d;
	struct kw_hm_dht_ping_resp pr;
	double t = kw_hm_dht_now(d);

	if (decode_reply(r, res, &pr.peer, &pr, KW_HM_DHT_PING_RESP)) {
		op->err = -KW_EBADMSG;
		return;
	}
	op->answered++;
	op->pong.node = r->c;
	op->pong.client = !pr.peer.present || !pr.peer.node_id.len;
	op->pong.available = pr.available;
	op->pong.dht_time = pr.dht_time;
	/* DHTProtocol.call_ping: a peer's clock must lie in [sent - 3 s, received + 3 s] */
	if (pr.dht_time != 0) {
		if (pr.dht_time < op->t_sent - MAX_DHT_TIME_DISCREPANCY_SECONDS)
			op->pong.skew = pr.dht_time - (op->t_sent - MAX_DHT_TIME_DISCREPANCY_SECONDS);
		else if (pr.dht_time > t + MAX_DHT_TIME_DISCREPANCY_SECONDS)
			op->pong.skew = pr.dht_time - (t + MAX_DHT_TIME_DISCREPANCY_SECONDS);
	}
	if (op->pong.skew != 0) {
		d->stats.clock_skew++;
		KW_LOG_WRN(hivemind, "peer's DHT time differs from ours by more than %.0f s "
			   "(%+.1f s beyond): its records may expire early or late; check the "
			   "clocks", MAX_DHT_TIME_DISCREPANCY_SECONDS, op->pong.skew);
	}
	if (op->validate && !op->pong.client && !pr.available && !d->cfg.client_mode)
		KW_LOG_WRN(hivemind, "peer could not reach us back (validate ping): it will "
			   "not keep us in its routing table");
}

/* A request of op is over and counted: finish, release or go on searching. */
static void rpc_over(struct kw_hm_op *op)
{
	if (op->kind == OP_PING && !op->finished) {
		finish(op, op->err);
		return;
	}
	if (op->finished) {
		if (op->delivered && op->active == 0)
			op_release(op);
		return;
	}
	pump(op);
}

/* One request is over (answer, remote error or local failure). */
static void rpc_done(struct kw_hm_rpc *r, const struct kw_hm_result *res)
{
	rpc_settle(r, res, true);
}

/*
 * Settles r for its operation(s). verdict: a failure counts against the peer (blacklist,
 * routing table); without it (the connect deadline) the peer keeps its standing and r's
 * slot stays taken for the lookup or dial still running.
 */
static void rpc_settle(struct kw_hm_rpc *r, const struct kw_hm_result *res, bool verdict)
{
	struct kw_hm_dht *d = r->d;
	struct kw_hm_op *op = r->op;
	uint8_t kind = r->kind;
	struct asked who[1 + MORE_MAX];
	uint32_t n_who = 0;
	bool ok = !res->err && !res->remote_error;
	/* our own limits refused it (no dial slot, call slot or stream left): the peer did
	 * nothing wrong, so it is neither blacklisted nor dropped */
	bool local = !res->remote_error && is_local_refusal(res->err);

	if (!ok && local) {
		d->stats.rpcs_refused_locally++;
		KW_LOG_DBG(hivemind, "DHT request not sent: %s", kw_strerror(res->err));
	} else if (!ok && verdict) {
		/* no answer: hivemind blacklists the peer and drops it from the table */
		peer_failed(r);
		KW_LOG_DBG(hivemind, "DHT request failed: %s",
			   res->remote_error ? "remote error" : kw_strerror(res->err));
	}
	if (kind == R_FIND && op) {
		who[n_who].op = op;
		who[n_who++].idx = r->idx;
		for (uint32_t k = 0; k < r->n_more; k++)
			who[n_who++] = (struct asked){ r->more[k].op, r->more[k].idx };
	}
	r->n_more = 0;
	kw_timer_cancel(d->loop, &r->deadline);
	r->busy = !verdict;           /* detached: held until its lookup or dial ends */
	if (!op)
		return;
	switch (kind) {
	case R_FIND:
		if (ok) {
			got_find(r, res, who, n_who);
			break;
		}
		for (uint32_t k = 0; k < n_who; k++) {
			uint32_t idx = who[k].idx;
			struct kw_hm_op *o = who[k].op;

			if (local && o->local_retries < LOCAL_RETRIES_MAX) {
				o->local_retries++;  /* ask again once a slot is free (pump) */
				o->cand[idx].st = C_NEW;
			} else {
				o->cand[idx].st = C_FAIL;
			}
		}
		break;
	case R_STORE:
		if (ok)
			got_store(r, res);
		break;
	case R_PING:
		if (ok)
			got_ping(r, res);
		else
			op->err = res->err ? res->err : -KW_EPROTO;
		break;
	}
	/* every search the request carried is one request lighter before any goes on */
	op->active--;
	for (uint32_t k = 1; k < n_who; k++)
		who[k].op->active--;
	for (uint32_t k = 1; k < n_who; k++)
		rpc_over(who[k].op);
	rpc_over(op);
}

/* ---- store: the replica phase --------------------------------------------------------- */

static int cmp_dist(const struct kw_hm_dhtid *q, const struct cand *a, const struct cand *b)
{
	return kw_hm_dhtid_dist_cmp(q, &a->c.id, &b->c.id);
}

static void store_phase(struct kw_hm_op *op)
{
	struct kw_hm_dht *d = op->d;
	uint32_t n = 0;

	/* keep the nodes that answered, nearest first; ourselves too unless a client */
	for (uint32_t i = 0; i < op->n_cand; i++)
		if (op->cand[i].st == C_OK)
			op->cand[n++] = op->cand[i];
	if (!d->cfg.client_mode && n < CANDS) {
		op->cand[n].c.id = d->cfg.node_id;
		op->cand[n].c.peer_len = 0;
		op->cand[n].self = true;
		op->cand[n++].st = C_OK;
	}
	op->n_cand = n;
	for (uint32_t i = 1; i < n; i++) {
		struct cand t = op->cand[i];
		uint32_t j = i;

		while (j > 0 && cmp_dist(&op->key, &t, &op->cand[j - 1]) < 0) {
			op->cand[j] = op->cand[j - 1];
			j--;
		}
		op->cand[j] = t;
	}
	op->storing = true;
	op->next = 0;
	op->answered = 0;        /* from here: replicas that answered the store */
	store_more(op);
}

/* Sends the store to the next candidates until num_replicas answered or are asked. */
static void store_more(struct kw_hm_op *op)
{
	struct kw_hm_dht *d = op->d;
	uint32_t want = d->cfg.num_replicas < KW_HM_DHT_REPLICAS_MAX ? d->cfg.num_replicas :
								       KW_HM_DHT_REPLICAS_MAX;

	while (op->answered + op->active < want && op->next < op->n_cand &&
	       op->sres.n < KW_HM_DHT_REPLICAS_MAX) {
		struct cand *c = &op->cand[op->next++];
		struct kw_hm_dht_replica *rep = &op->sres.r[op->sres.n];
		int err;

		memset(rep, 0, sizeof(*rep));
		rep->node = c->c;
		if (c->self) {
			int ok;
			double t = kw_hm_dht_now(d);

			rep->self = rep->answered = true;
			if (op->sub_len)
				ok = kw_hm_store_put_subkey(&d->store, &op->key, op->buf, op->sub_len,
							    op->buf + op->sub_len, op->val_len,
							    op->exp, t);
			else
				ok = kw_hm_store_put(&d->store, &op->key, op->buf, op->val_len,
						     op->exp, t);
			rep->store_ok = ok > 0;
			op->sres.n_ok += ok > 0;
			op->answered++;
			op->sres.n++;
			continue;
		}
		err = rpc_start(op, R_STORE, &c->c, op->sres.n);
		if (err == -KW_ELIMIT) {
			op->next--;
			if (op->active == 0)
				kw_timer_start(d->loop, &op->timer, RETRY_MS);
			return;
		}
		op->sres.n++;
		if (err < 0)
			d->stats.rpcs_failed += err != -KW_EINPROGRESS;
	}
	if (op->active == 0)
		finish(op, op->answered ? 0 : -KW_ENOTCONN);
}

/* ---- delivery ------------------------------------------------------------------------- */

static void deliver(struct kw_hm_op *op)
{
	struct kw_hm_dht *d = op->d;

	op->delivered = true;
	switch (op->kind) {
	case OP_GET: {
		struct kw_hm_dht_value v;
		struct kw_hm_store_found f;
		double t = kw_hm_dht_now(d);
		int err = op->err;

		memset(&v, 0, sizeof(v));
		(void)kw_hm_store_get(&op->merge, &op->key, t, &f);
		v.type = f.type;
		v.expiration = f.expiration;
		v.visited = op->answered;
		if (f.type == KW_HM_DHT_FOUND_REGULAR) {
			v.value = f.value;
			v.len = f.len;
			/* cache_locally: later gets and our rpc_find answer it from here */
			(void)kw_hm_store_put(&d->cache, &op->key, f.value, f.len, f.expiration, t);
		} else if (f.type == KW_HM_DHT_FOUND_DICTIONARY) {
			long n = kw_hm_store_pack_dict(&op->merge, &op->key, t, op->buf,
						       d->buf_bytes);
			const char *why;

			if (n < 0) {
				err = (int)n;
			} else {
				v.value = op->buf;
				v.len = (size_t)n;
				v.n_subkeys = f.n_subkeys;
				(void)kw_hm_store_put_dict(&d->cache, &op->key, op->buf, (size_t)n, t,
							   &why);
			}
		} else if (!err && op->answered == 0) {
			err = -KW_ENOTCONN;
		}
		if (op->cb.get)
			op->cb.get(d, err, &v, op->user);
		break;
	}
	case OP_STORE:
		if (op->cb.store)
			op->cb.store(d, op->err, &op->sres, op->user);
		break;
	case OP_PING:
		if (op->cb.ping)
			op->cb.ping(d, op->err, &op->pong, op->user);
		if (op->bootstrap && !op->err && !op->pong.client) {
			/* DHTNode bootstrap: find_nearest_nodes([node_id]) fills the table */
			struct kw_hm_op *f = op_alloc(d, OP_FIND, NULL);

			if (f) {
				f->key = d->cfg.node_id;
				seed(f);
				kw_timer_start(d->loop, &f->timer, 0);
			}
		}
		break;
	default:
		break;
	}
	if (op->active == 0)
		op_release(op);
}

/* ---- public calls --------------------------------------------------------------------- */

static int get_start(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, bool latest,
		     kw_hm_dht_get_cb cb, void *user, struct kw_hm_op **out)
{
	struct kw_hm_op *op;
	struct kw_hm_store_found f;
	double t = kw_hm_dht_now(d);
	const char *why;

	if (!key)
		return -KW_EINVAL;
	op = op_alloc(d, OP_GET, user);
	if (!op)
		return -KW_ELIMIT;
	op->key = *key;
	op->latest = latest;
	op->cb.get = cb;
	/* our own storage and cache are candidates too (DHTNode.get_many) */
	for (int tier = 0; tier < 2; tier++) {
		struct kw_hm_store *s = tier ? &d->cache : &d->store;

		(void)kw_hm_store_get(s, key, t, &f);
		if (f.type == KW_HM_DHT_FOUND_REGULAR) {
			(void)kw_hm_store_put(&op->merge, key, f.value, f.len, f.expiration, t);
		} else if (f.type == KW_HM_DHT_FOUND_DICTIONARY) {
			long n = kw_hm_store_pack_dict(s, key, t, op->buf, d->buf_bytes);

			if (n > 0)
				(void)kw_hm_store_put_dict(&op->merge, key, op->buf, (size_t)n, t,
							   &why);
		}
	}
	if (out)
		*out = op;
	if (get_satisfied(op)) {
		finish(op, 0);
		return 0;
	}
	seed(op);
	kw_timer_start(d->loop, &op->timer, 0);
	return 0;
}

int kw_hm_dht_get(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, bool latest,
		  kw_hm_dht_get_cb cb, void *user)
{
	return get_start(d, key, latest, cb, user, NULL);
}

uint32_t kw_hm_dht_ops_free(const struct kw_hm_dht *d)
{
	return OPS - kw_hm_dht_ops_busy(d);
}

/* op joins first's group: their rpc_finds carry each other's keys (gather) */
static void group_add(struct kw_hm_op *first, struct kw_hm_op *op)
{
	op->grp = first->grp;
	first->grp = op;
}

int kw_hm_dht_get_many(struct kw_hm_dht *d, const struct kw_hm_dhtid *keys, uint32_t n,
		       bool latest, kw_hm_dht_get_cb cb, void *const *users)
{
	struct kw_hm_op *first = NULL, *op;

	if (!keys || !n)
		return -KW_EINVAL;
	if (kw_hm_dht_ops_free(d) < n) {
		d->stats.ops_refused++;
		return -KW_ELIMIT;
	}
	for (uint32_t i = 0; i < n; i++) {
		(void)get_start(d, &keys[i], latest, cb, users ? users[i] : NULL, &op);
		if (first)
			group_add(first, op);
		else
			first = op;
	}
	return 0;
}

static int store_check(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, const uint8_t *subkey,
		       size_t sub_len, const uint8_t *value, size_t len, double expiration)
{
	if (!key || (len && !value) || (sub_len && !subkey) || isnan(expiration))
		return -KW_EINVAL;
	if (sub_len + len > d->cfg.cell_bytes || sub_len + len > d->buf_bytes)
		return -KW_EMSGSIZE;
	return 0;
}

static int store_start(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, const uint8_t *subkey,
		       size_t sub_len, const uint8_t *value, size_t len, double expiration,
		       kw_hm_dht_store_cb cb, void *user, struct kw_hm_op **out)
{
	struct kw_hm_op *op;
	int err = store_check(d, key, subkey, sub_len, value, len, expiration);

	if (err)
		return err;
	op = op_alloc(d, OP_STORE, user);
	if (!op)
		return -KW_ELIMIT;
	op->key = *key;
	op->cb.store = cb;
	if (sub_len)
		memcpy(op->buf, subkey, sub_len);
	if (len)
		memcpy(op->buf + sub_len, value, len);
	op->sub_len = sub_len;
	op->val_len = len;
	op->exp = expiration;
	seed(op);
	kw_timer_start(d->loop, &op->timer, 0);
	if (out)
		*out = op;
	return 0;
}

int kw_hm_dht_store(struct kw_hm_dht *d, const struct kw_hm_dhtid *key, const uint8_t *subkey,
		    size_t sub_len, const uint8_t *value, size_t len, double expiration,
		    kw_hm_dht_store_cb cb, void *user)
{
	return store_start(d, key, subkey, sub_len, value, len, expiration, cb, user, NULL);
}

int kw_hm_dht_store_many(struct kw_hm_dht *d, const struct kw_hm_dht_store_item *items,
			 uint32_t n, kw_hm_dht_store_cb cb, void *const *users)
{
	struct kw_hm_op *first = NULL, *op;
	int err;

	if (!items || !n)
		return -KW_EINVAL;
	for (uint32_t i = 0; i < n; i++) {   /* all or none */
		const struct kw_hm_dht_store_item *it = &items[i];

		err = store_check(d, &it->key, it->subkey, it->sub_len, it->value, it->len,
				  it->expiration);
		if (err)
			return err;
	}
	if (kw_hm_dht_ops_free(d) < n) {
		d->stats.ops_refused++;
		return -KW_ELIMIT;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct kw_hm_dht_store_item *it = &items[i];

		(void)store_start(d, &it->key, it->subkey, it->sub_len, it->value, it->len,
				  it->expiration, cb, users ? users[i] : NULL, &op);
		if (first)
			group_add(first, op);
		else
			first = op;
	}
	return 0;
}

static int ping_start(struct kw_hm_dht *d, const char *maddr, bool validate, bool bootstrap,
		      kw_hm_dht_ping_cb cb, void *user)
{
	struct kw_multiaddr ma;
	struct kw_peer_id pid;
	struct kw_hm_dht_contact c;
	struct kw_hm_op *op;
	int err;

	if (!maddr || kw_maddr_from_text(maddr, &ma, NULL, 0) < 0 ||
	    kw_maddr_peer_id(&ma, &pid) < 0 || pid.len > KW_HM_DHT_PEER_ID_MAX)
		return -KW_EINVAL;
	(void)kw_hm_dht_add_addr(d, pid.bytes, pid.len, maddr);
	op = op_alloc(d, OP_PING, user);
	if (!op)
		return -KW_ELIMIT;
	op->validate = validate;
	op->bootstrap = bootstrap;
	op->cb.ping = cb;
	memset(&c, 0, sizeof(c));
	c.peer_len = pid.len;
	memcpy(c.peer, pid.bytes, pid.len);
	op->pong.node = c;
	err = rpc_start(op, R_PING, &c, 0);
	if (err < 0)
		finish(op, err);     /* reported through the callback, like any failed ping */
	return 0;
}

int kw_hm_dht_ping(struct kw_hm_dht *d, const char *maddr, bool validate, kw_hm_dht_ping_cb cb,
		   void *user)
{
	return ping_start(d, maddr, validate, false, cb, user);
}

int kw_hm_dht_bootstrap(struct kw_hm_dht *d, const char *maddr, kw_hm_dht_ping_cb cb,
			void *user)
{
	return ping_start(d, maddr, true, true, cb, user);
}

/* ---- the newcomer push ---------------------------------------------------------------- */

/*
 * DHTProtocol.update_routing_table for a node new to the table: every record of our main
 * storage for which the newcomer is nearer than the farthest of our num_replicas nearest
 * known nodes, while we are nearer than the nearest of them, goes to it in one rpc_store
 * (dictionaries whole, subkey IS_DICTIONARY; in_cache false). Records that do not fit one
 * request are left to the next store of their owner.
 */
static void push_newcomer(struct kw_hm_dht *d, struct kw_conn *c, const struct kw_hm_dhtid *id,
			  const uint8_t *peer, size_t peer_len)
{
	static const uint8_t regular = KW_HM_DHT_IS_REGULAR;
	struct kw_hm_dht_store_req *q = d->push_req;   /* a handler may be using d->req */
	struct kw_hm_dht_contact near[KW_HM_DHT_REPLICAS_MAX];
	struct kw_hm_dhtid *keys = d->push_keys;
	uint32_t k = d->cfg.num_replicas < KW_HM_DHT_REPLICAS_MAX ? d->cfg.num_replicas :
								      KW_HM_DHT_REPLICAS_MAX;
	double t = kw_hm_dht_now(d);
	struct kw_hm_dhtid key;
	struct kw_hm_rpc *r;
	size_t used = 0;
	long n;

	if (!c || d->cfg.client_mode)
		return;
	memset(q, 0, sizeof(*q));
	for (uint32_t i = 0; q->n_keys < KW_HM_DHT_MAX_KEYS &&
	     !kw_hm_store_key_at(&d->store, i, t, &key); i++) {
		struct kw_hm_store_found f;
		size_t m = kw_hm_rt_nearest(&d->rt, &key, k, id, near);
		uint32_t j = q->n_keys;

		if (m && !(kw_hm_dhtid_dist_cmp(&key, id, &near[m - 1].id) < 0 &&
			   kw_hm_dhtid_dist_cmp(&key, &d->cfg.node_id, &near[0].id) < 0))
			continue;
		(void)kw_hm_store_get(&d->store, &key, t, &f);
		keys[j] = key;
		q->keys[j] = (struct kw_hm_bytes){ keys[j].b, KW_HM_DHTID_LEN };
		q->exp[j] = f.expiration;
		if (f.type == KW_HM_DHT_FOUND_REGULAR) {
			q->subkeys[j] = (struct kw_hm_bytes){ &regular, 1 };
			q->values[j] = (struct kw_hm_bytes){ f.value, f.len };
		} else {
			long w = kw_hm_store_pack_dict(&d->store, &key, t, d->push_vals + used,
						       d->buf_bytes - used);

			if (w < 0)
				break;
			q->subkeys[j] = (struct kw_hm_bytes){ NULL, 0 };   /* IS_DICTIONARY */
			q->values[j] = (struct kw_hm_bytes){ d->push_vals + used, (size_t)w };
			used += (size_t)w;
		}
		q->n_keys++;
	}
	if (!q->n_keys)
		return;
	q->n_subkeys = q->n_values = q->n_exp = q->n_in_cache = q->n_keys;
	q->peer = kw_hm_dht_own(d);
	/* when everything does not fit one envelope, send fewer */
	while ((n = kw_hm_dht_encode(KW_HM_DHT_STORE_REQ, q, d->push_out, d->buf_bytes - 64)) < 0 &&
	       q->n_keys > 1)
		q->n_keys = q->n_subkeys = q->n_values = q->n_exp = q->n_in_cache = q->n_keys / 2;
	if (n < 0 || !(r = rpc_alloc(d)))
		return;
	r->kind = R_PUSH;
	r->c.id = *id;
	r->pid.len = (uint8_t)peer_len;
	memcpy(r->pid.bytes, peer, peer_len);
	d->stats.rpcs_out++;
	if (kw_hm_call(d->hm, c, KW_HM_STORE_NAME, d->push_out, (size_t)n, d->cfg.rpc_timeout_ms,
		       on_reply, r) < 0) {
		r->busy = false;
		return;
	}
	d->stats.newcomer_pushes += q->n_keys;
}

void kw_hm_dht_met(struct kw_hm_dht *d, struct kw_conn *c, const struct kw_hm_dhtid *id,
		   const uint8_t *peer, size_t peer_len)
{
	struct kw_hm_dht_contact known;
	bool is_new;

	if (!kw_hm_dhtid_cmp(id, &d->cfg.node_id) || !peer_len)
		return;
	is_new = kw_hm_rt_get_peer(&d->rt, id, &known) < 0;
	/* a full bucket's least-recently-seen node is not pinged (doc/net-hivemind.md) */
	if (kw_hm_rt_add(&d->rt, id, peer, peer_len, kw_hm_dht_now(d), NULL) < 0)
		return;
	kw_hm_bl_success(&d->bl, peer, peer_len);
	if (is_new && !kw_hm_rt_is_replacement(&d->rt, id))
		push_newcomer(d, c, id, peer, peer_len);
}

/* ---- set-up and observers ------------------------------------------------------------- */

int kw_hm_dht_client_init(struct kw_hm_dht *d, struct kw_arena *a)
{
	int err;

	if (!d->cfg.beam_size)
		d->cfg.beam_size = d->cfg.rt.bucket_size;
	if (!d->cfg.num_workers)
		d->cfg.num_workers = 4;
	if (!d->cfg.num_replicas)
		d->cfg.num_replicas = 5;
	if (!d->cfg.rpc_timeout_ms)
		d->cfg.rpc_timeout_ms = 3000;
	if (!d->cfg.connect_timeout_ms)
		d->cfg.connect_timeout_ms = 3000;
	if (!d->cfg.client_ops)
		d->cfg.client_ops = CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_OPS;
	if (!d->cfg.client_rpcs)
		d->cfg.client_rpcs = CONFIG_KW_NET_HIVEMIND_DHT_CLIENT_RPCS;
	if (d->cfg.candidates < 2)
		d->cfg.candidates = CONFIG_KW_NET_HIVEMIND_DHT_CANDIDATES;
	if (!d->cfg.merge_cells)
		d->cfg.merge_cells = CONFIG_KW_NET_HIVEMIND_DHT_MERGE_CELLS;
	if (!d->cfg.addr_book)
		d->cfg.addr_book = CONFIG_KW_NET_HIVEMIND_DHT_ADDR_BOOK;
	d->ops = kw_arena_alloc(a, sizeof(*d->ops) * OPS, 16);
	d->rpcs = kw_arena_alloc(a, sizeof(*d->rpcs) * RPCS, 16);
	d->book = kw_arena_alloc(a, sizeof(*d->book) * BOOK, 16);
	d->fresp = kw_arena_alloc(a, sizeof(*d->fresp), 16);
	d->fres = kw_arena_alloc(a, sizeof(*d->fres), 16);
	d->push_vals = kw_arena_alloc(a, d->buf_bytes, 16);
	d->push_out = kw_arena_alloc(a, d->buf_bytes, 16);
	d->push_req = kw_arena_alloc(a, sizeof(*d->push_req), 16);
	d->push_keys = kw_arena_alloc(a, sizeof(*d->push_keys) * KW_HM_DHT_MAX_KEYS, 16);
	if (!d->push_req || !d->push_keys || !d->ops || !d->rpcs || !d->book || !d->fresp ||
	    !d->fres || !d->push_vals || !d->push_out)
		return -KW_ENOMEM;
	memset(d->ops, 0, sizeof(*d->ops) * OPS);
	memset(d->rpcs, 0, sizeof(*d->rpcs) * RPCS);
	memset(d->book, 0, sizeof(*d->book) * BOOK);
	for (uint32_t i = 0; i < OPS; i++) {
		struct kw_hm_op *op = &d->ops[i];

		op->d = d;
		op->cand = kw_arena_alloc(a, sizeof(*op->cand) * CANDS, 16);
		op->buf = kw_arena_alloc(a, d->buf_bytes, 16);
		if (!op->cand || !op->buf)
			return -KW_ENOMEM;
		err = kw_hm_store_init(&op->merge, MERGE, d->cfg.cell_bytes, d->cfg.dict_max,
				       true, a);
		if (err)
			return err;
		kw_timer_init(&op->timer, on_op_timer, op);
	}
	return 0;
}

const struct kw_hm_dhtid *kw_hm_dht_node_id(const struct kw_hm_dht *d)
{
	return &d->cfg.node_id;
}

bool kw_hm_dht_client_mode(const struct kw_hm_dht *d)
{
	return d->cfg.client_mode;
}

uint32_t kw_hm_dht_ops_busy(const struct kw_hm_dht *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < OPS; i++)
		n += d->ops[i].busy;
	return n;
}
