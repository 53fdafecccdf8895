/*
 * hivemind averaging on the swarm (app/avg_net.h): rpc_aggregate_part (the all-reduce's
 * streams, as struct kw_avg_transport) and rpc_join_group (matchmaking's streams, as struct
 * kw_avg_mm_ops). Wire facts (hivemind @ 4bd43b7):
 *  - names: ServicerBase._get_handle_name = f"{prefix}::{cls}.{method}" (p2p/servicer.py);
 *  - allreduce.py AllReduceRunner._communicate_with_peer: one stream per reducer, first
 *    AveragingData{code=PART_FOR_AVERAGING, group_id, tensor_part, weight}, then parts with
 *    tensor_part and weight, then END_OF_STREAM; rpc_aggregate_part answers
 *    AveragingData{code=AVERAGED_PART, tensor_part=delta} per part, or one error code;
 *  - matchmaking.py: the follower sends one JoinRequest; the leader streams
 *    MessageFromLeader: a refusal, or ACCEPTED then BEGIN_ALLREDUCE / GROUP_DISBANDED;
 *    leader_assemble_group: group_id = DHTID.generate().to_bytes() (20 random bytes),
 *    ordered_peer_ids = leader + followers, random.shuffle'd, gathered in the same order.
 *
 * Which stream a message of the averager goes on: parts (NO_CODE, PART_FOR_AVERAGING) on the
 * stream we opened to that reducer; everything else (deltas, error codes) on the stream that
 * sender opened to us. Messages from either stream go to kw_avg_on_message. A part the
 * averager cannot take yet (-KW_EAGAIN, its window is full) is held on the stream (reading
 * stops there) and given again after our next send to that peer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/key.h>
#include <kw/net/msgpack.h>
#include <kw/net/swarm.h>

#include "avg_net.h"

#define NAME_MAX_ 160
#define DIAL_MS_DEFAULT 5000u
#define DIAL_NONE   (-1)           /* nobody waits for the dial (abandoned, or done) */
#define DIAL_LEADER (-2)           /* the join stream to a leader waits for it */
#define LEADER_MSG_MAX (16 + KW_AVG_GROUP_MAX * (KW_AVG_PEER_ID_MAX + KW_AVG_GATHER_MAX + 6))

struct dial {                      /* one cfg.connect in flight */
	struct kw_app_avgnet *net;
	struct kw_timer deadline;
	struct kw_peer_id pid;
	int target;                    /* group index of an out link, DIAL_LEADER, DIAL_NONE */
	bool busy;                     /* its callback has not come yet: the slot stays taken */
};

struct link {                      /* one rpc_aggregate_part stream, one direction */
	struct kw_app_avgnet *net;
	struct kw_hm_stream *st;
	struct dial *dial;             /* out: the dial it waits for (messages go to bl) */
	bool inbound;                  /* the peer opened it (we reduce its parts) */
	int peer;                      /* group index; -1 not known yet (inbound, before step) */
	uint8_t id[KW_AVG_PEER_ID_MAX];
	size_t id_len;
	bool held;                     /* msg kept with KW_HM_STREAM_HOLD */
	const uint8_t *msg;
	size_t len;
	uint64_t since_ms;             /* inbound: when its first message arrived */
	bool end_asked, ended;
	uint8_t *bl;                   /* backlog: [u32 len][bytes]... from bl_off to bl_len */
	size_t bl_off, bl_len;
};

struct follower {                  /* one rpc_join_group stream we serve */
	struct kw_hm_stream *st;
	uint8_t id[KW_AVG_PEER_ID_MAX];
	size_t id_len;
	struct kw_avg_join_msg req;
	bool have_req;
};

struct kw_app_avgnet {
	struct kw_node *node;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_app_avgnet_cfg cfg;
	char agg_name[NAME_MAX_], join_name[NAME_MAX_];
	struct kw_avg *avg;
	struct kw_app_avgnet_stats st;
	uint8_t self[KW_AVG_PEER_ID_MAX];
	size_t self_len;

	/* the round */
	bool running, finishing;
	struct kw_avg_group g;
	uint8_t ids[KW_AVG_GROUP_MAX][KW_AVG_PEER_ID_MAX];
	size_t id_len[KW_AVG_GROUP_MAX];
	struct link *out;              /* [max_peers]: streams we opened, by peer */
	struct link *in;               /* [max_peers]: streams opened to us */
	kw_avg_done_fn done;
	void *done_user;
	struct kw_avg_result res;
	char reason[KW_AVG_GROUP_MAX][KW_AVG_REASON_MAX];
	struct kw_timer kick;          /* held parts, pending streams, the deferred done */

	/* matchmaking */
	struct kw_avg_mm mm;
	struct kw_app_avgnet_match m;
	kw_app_avgnet_assembled_fn assembled;
	void *assembled_user;
	bool matching, got_begin, expire_extended;
	uint8_t gather[KW_AVG_GATHER_MAX];
	size_t gather_len;
	struct follower fol[KW_AVG_GROUP_MAX];
	struct kw_hm_stream *leader_st;
	uint32_t leader_gen;
	struct kw_timer expire;
	struct dial *leader_dial;      /* the dial the join to a leader waits for */
	double join_exp;               /* its JoinRequest's expiration */
	struct kw_peer_id bad_leader;  /* the last leader we could not reach (logged once) */

	/* dials: 2 * (max_peers + 1) slots, so slots abandoned by one round (their callbacks
	 * still to come) leave the next round a full set */
	struct dial *dials;
	unsigned n_dials;
	uint8_t *lmsg;                 /* LEADER_MSG_MAX: a BEGIN_ALLREDUCE we send or got */
	size_t lmsg_len;
	struct kw_avg_leader_msg begin;  /* views into lmsg */
};

int kw_app_avgnet_handle_name(const char *prefix, const char *cls, const char *method,
			      char *out, size_t cap)
{
	size_t pl, cl, ml;

	if (!prefix || !cls || !method || !*prefix || !*cls || strchr(prefix, '.'))
		return -KW_EINVAL;
	pl = strlen(prefix);
	cl = strlen(cls);
	ml = strlen(method);
	if (pl + 2 + cl + 1 + ml + 1 > cap)
		return -KW_ENOSPC;
	memcpy(out, prefix, pl);
	memcpy(out + pl, "::", 2);
	memcpy(out + pl + 2, cls, cl);
	out[pl + 2 + cl] = '.';
	memcpy(out + pl + 3 + cl, method, ml + 1);
	return (int)(pl + 3 + cl + ml);
}

static double now_s(struct kw_app_avgnet *net)
{
	if (net->cfg.now)
		return net->cfg.now(net->cfg.now_arg);
	return (double)kw_loop_now(&net->node->loop) / 1000.0;
}

/* ---- links: one stream, its backlog and its held message --------------------------------- */

static void link_reset(struct link *l)
{
	uint8_t *bl = l->bl;
	struct kw_app_avgnet *net = l->net;
	bool inbound = l->inbound;

	memset(l, 0, sizeof(*l));
	l->bl = bl;
	l->net = net;
	l->inbound = inbound;
	l->peer = -1;
}

static void link_try_end(struct link *l)
{
	if (l->st && l->end_asked && !l->ended && l->bl_off == l->bl_len) {
		l->ended = true;
		kw_hm_stream_end(l->st);
	}
}

/* Sends what the backlog holds while the stream takes it. */
static int link_drain(struct link *l)
{
	while (l->bl_off < l->bl_len) {
		uint32_t n;
		int r;

		memcpy(&n, l->bl + l->bl_off, 4);
		r = kw_hm_stream_send(l->st, l->bl + l->bl_off + 4, n);
		if (r == -KW_EAGAIN)
			return 0;
		if (r < 0)
			return r;
		l->bl_off += 4 + (size_t)n;
	}
	l->bl_off = l->bl_len = 0;
	link_try_end(l);
	return 0;
}

static int link_send(struct link *l, const uint8_t *msg, size_t len)
{
	struct kw_app_avgnet *net = l->net;
	int r = -KW_EAGAIN;

	if (l->st && l->bl_off == l->bl_len)   /* no stream yet: dialing, so queued */
		r = kw_hm_stream_send(l->st, msg, len);
	if (r != -KW_EAGAIN)
		return r;
	/* the stream's send buffer is full: queue behind what waits already */
	if (l->bl_off && l->bl_len + 4 + len > net->cfg.backlog_bytes) {
		memmove(l->bl, l->bl + l->bl_off, l->bl_len - l->bl_off);
		l->bl_len -= l->bl_off;
		l->bl_off = 0;
	}
	if (l->bl_len + 4 + len > net->cfg.backlog_bytes)
		return -KW_ENOBUFS;
	{
		uint32_t n = (uint32_t)len;

		memcpy(l->bl + l->bl_len, &n, 4);
		memcpy(l->bl + l->bl_len + 4, msg, len);
		l->bl_len += 4 + len;
	}
	if (l->bl_len - l->bl_off > net->st.backlog_peak)
		net->st.backlog_peak = l->bl_len - l->bl_off;
	return 0;
}

static int peer_index(struct kw_app_avgnet *net, const uint8_t *id, size_t len)
{
	for (unsigned i = 0; i < net->g.n; i++)
		if (net->id_len[i] == len && !memcmp(net->ids[i], id, len))
			return (int)i;
	return -1;
}

/* The group index of an inbound stream's peer: -1 not in the group, -2 in it but another
 * stream of that peer is the round's (this one is for a later round). */
static int in_assign(struct kw_app_avgnet *net, struct link *l)
{
	int idx = peer_index(net, l->id, l->id_len);

	if (idx < 0)
		return -1;
	for (unsigned i = 0; i < net->cfg.max_peers; i++)
		if (&net->in[i] != l && net->in[i].st && net->in[i].peer == idx)
			return -2;
	return idx;
}

static void conn_peer(struct kw_hm_stream *st, uint8_t *id, size_t *len)
{
	const struct kw_peer_id *p = kw_conn_peer_id(kw_hm_stream_conn(st));

	*len = p ? p->len : 0;
	if (*len > KW_AVG_PEER_ID_MAX)
		*len = 0;
	if (*len)
		memcpy(id, p->bytes, *len);
}

static void kick(struct kw_app_avgnet *net)
{
	if (!kw_timer_armed(&net->kick))
		kw_timer_start(&net->node->loop, &net->kick, 0);
}

/* msg stays the stream's until the link lets it go (link_drain / link_reset). */
static void link_hold(struct link *l, const uint8_t *msg, size_t len)
{
	l->held = true;
	l->msg = msg;
	l->len = len;
}

/* A message of l's peer to the averager; held when it has no room yet. Return: a stream verdict. */
static int link_feed(struct link *l, const uint8_t *msg, size_t len)
{
	if (kw_avg_on_message(l->net->avg, (unsigned)l->peer, msg, len) == -KW_EAGAIN) {
		link_hold(l, msg, len);
		l->net->st.parts_held++;
		return KW_HM_STREAM_HOLD;
	}
	return 0;
}

/* ---- rpc_aggregate_part: the streams we open (we send parts, get deltas) ---------------- */

static int out_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct link *l = arg;
	struct kw_app_avgnet *net = l->net;

	if (!net->running || net->finishing || l->st != st)
		return 0;
	return link_feed(l, msg, len);
}

static void out_writable(struct kw_hm_stream *st, void *arg)
{
	struct link *l = arg;

	if (l->st == st && link_drain(l) < 0 && l->net->running && !l->net->finishing)
		kw_avg_on_peer_error(l->net->avg, (unsigned)l->peer, -KW_EPIPE);
}

static void out_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct link *l = arg;
	struct kw_app_avgnet *net = l->net;
	int peer = l->peer;

	if (l->st != st)
		return;
	link_reset(l);
	if (!net->running || net->finishing || peer < 0)
		return;
	if (r->remote_error) {
		KW_LOG_WRN(avg, "peer %d failed our part stream: %s", peer, r->text);
		kw_avg_on_peer_error(net->avg, (unsigned)peer, -KW_EPROTO);
	} else if (r->err) {
		KW_LOG_WRN(avg, "our part stream to peer %d failed: %s", peer, kw_strerror(r->err));
		kw_avg_on_peer_error(net->avg, (unsigned)peer, r->err);
	}
	/* a normal end: the reducer answered everything it will answer; the averager knows */
}

static const struct kw_hm_stream_ops out_ops = {
	.on_message = out_msg, .on_writable = out_writable, .on_done = out_done,
};

static int out_stream(struct kw_app_avgnet *net, struct link *l, struct kw_conn *c)
{
	int r = kw_hm_stream_open(net->hm, c, net->agg_name, &out_ops, l, net->cfg.idle_ms,
				  &l->st);

	if (r < 0) {
		l->st = NULL;
		return r;
	}
	net->st.streams_out++;
	return 0;
}

/* ---- dials: reaching a peer we have no connection with ------------------------------------ */

static int join_open(struct kw_app_avgnet *net, struct kw_conn *c, double expiration);

static void peer_text(const struct kw_peer_id *pid, char *out, size_t cap)
{
	if (kw_peer_id_to_text(pid, out, cap) < 0)
		snprintf(out, cap, "(unprintable)");
}

/* Nobody waits for d any more; its callback, when it comes, frees the slot. */
static void dial_abandon(struct dial *d)
{
	if (!d)
		return;
	d->target = DIAL_NONE;
	kw_timer_cancel(&d->net->node->loop, &d->deadline);
}

/* Matchmaking asks a leader again each time it declares anew (every search of its own):
 * an unreachable one is warned about once, until another leader fails. */
static void leader_unreachable(struct kw_app_avgnet *net, const struct kw_peer_id *pid,
			       const char *who, int err)
{
	if (net->bad_leader.len == pid->len && !memcmp(net->bad_leader.bytes, pid->bytes, pid->len)) {
		KW_LOG_DBG(avg, "cannot reach leader %s: %s", who, kw_strerror(err));
		return;
	}
	net->bad_leader = *pid;
	KW_LOG_WRN(avg, "cannot reach leader %s: %s: asking the next one", who, kw_strerror(err));
}

/* The dial's outcome for whoever waits: an out link (stream opened, backlog sent, or the
 * peer excluded) or the join to a leader (request sent, or the next leader). */
static void dial_result(struct dial *d, int target, struct kw_conn *c, int err)
{
	struct kw_app_avgnet *net = d->net;
	char who[128];
	int r;

	if (err < 0) {
		net->st.dials_failed++;
		peer_text(&d->pid, who, sizeof(who));
	}
	if (target == DIAL_LEADER) {
		if (net->leader_dial != d)
			return;
		net->leader_dial = NULL;
		if (!net->matching)
			return;
		if (err < 0)
			leader_unreachable(net, &d->pid, who, err);
		else if ((r = join_open(net, c, net->join_exp)) < 0)
			err = r;
		if (err < 0)
			kw_avg_mm_on_leader_error(&net->mm, err);
		return;
	}
	if (target < 0 || (unsigned)target >= net->cfg.max_peers || net->out[target].dial != d)
		return;
	{
		struct link *l = &net->out[target];

		l->dial = NULL;
		if (!net->running || net->finishing)
			return;
		if (err < 0) {
			KW_LOG_WRN(avg, "cannot reach group peer %d (%s): %s: excluded", target, who,
				   kw_strerror(err));
		} else if ((err = out_stream(net, l, c)) < 0 || (err = link_drain(l)) < 0) {
			KW_LOG_WRN(avg, "no part stream to group peer %d after its dial: %s: "
				   "excluded", target, kw_strerror(err));
		}
		if (err < 0) {
			struct kw_hm_stream *st = l->st;

			link_reset(l);
			if (st)
				kw_hm_stream_cancel(st);
			kw_avg_on_peer_error(net->avg, (unsigned)target, err);
		}
	}
}

static void on_connected(void *ctx, struct kw_conn *c, int err)
{
	struct dial *d = ctx;
	int target = d->target;

	d->busy = false;
	if (target == DIAL_NONE)
		return;   /* abandoned: a connection made stays with the swarm */
	dial_abandon(d);
	if (!err && !c)
		err = -KW_ENOTCONN;
	dial_result(d, target, err ? NULL : c, err);
}

static void on_dial_deadline(struct kw_loop *lp, struct kw_timer *t)
{
	struct dial *d = t->arg;
	int target = d->target;

	(void)lp;
	d->target = DIAL_NONE;   /* busy until the connector's late callback */
	if (target != DIAL_NONE)
		dial_result(d, target, NULL, -KW_ETIMEDOUT);
}

/* Starts reaching pid for target. Return: 0 with *out; -KW_ELIMIT (no free slot); the
 * connector's error. */
static int dial_start(struct kw_app_avgnet *net, const struct kw_peer_id *pid, int target,
		      struct dial **out)
{
	struct dial *d = NULL;
	int r;

	for (unsigned i = 0; i < net->n_dials && !d; i++)
		if (!net->dials[i].busy)
			d = &net->dials[i];
	if (!d)
		return -KW_ELIMIT;
	d->pid = *pid;
	d->target = target;
	d->busy = true;
	r = net->cfg.connect(net->cfg.connect_arg, pid, on_connected, d);
	if (r < 0) {
		d->busy = false;
		d->target = DIAL_NONE;
		return r;
	}
	net->st.dials++;
	kw_timer_start(&net->node->loop, &d->deadline, net->cfg.dial_ms);
	*out = d;
	return 0;
}

static int open_out(struct kw_app_avgnet *net, unsigned peer)
{
	struct link *l = &net->out[peer];
	struct kw_peer_id pid;
	struct kw_conn *c;
	char who[128];
	int r;

	if (kw_peer_id_from_bytes(net->ids[peer], net->id_len[peer], &pid) < 0)
		return -KW_EINVAL;
	c = kw_swarm_find_conn(net->sw, &pid);
	link_reset(l);
	l->peer = (int)peer;
	if (c)
		return out_stream(net, l, c);
	peer_text(&pid, who, sizeof(who));
	if (!net->cfg.connect) {
		KW_LOG_WRN(avg, "no connection to group peer %u (%s): excluded", peer, who);
		return -KW_ENOTCONN;
	}
	r = dial_start(net, &pid, (int)peer, &l->dial);
	if (r < 0) {
		net->st.dials_failed++;
		KW_LOG_WRN(avg, "cannot dial group peer %u (%s): %s: excluded", peer, who,
			   kw_strerror(r));
		return r;
	}
	KW_LOG_DBG(avg, "dialling group peer %u (%s)", peer, who);
	return 0;
}

/* ---- rpc_aggregate_part: the streams opened to us (we reduce, send deltas) ---------------- */

static struct link *in_of(struct kw_hm_stream *st)
{
	return (struct link *)kw_hm_stream_user(st);
}

/* A part for a round we have not started (or from a peer not in it): hold it until our
 * step, or answer after pending_ms (kick). */
static int in_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct kw_app_avgnet *net = arg;
	struct link *l = in_of(st);

	if (!l) {
		for (unsigned i = 0; i < net->cfg.max_peers; i++)
			if (!net->in[i].st) {
				l = &net->in[i];
				break;
			}
		if (!l) {
			kw_hm_stream_error(st, "RuntimeError('too many part streams')");
			return 0;
		}
		link_reset(l);
		l->st = st;
		conn_peer(st, l->id, &l->id_len);
		l->since_ms = kw_loop_now(&net->node->loop);
		kw_hm_stream_set_user(st, l);
		net->st.streams_in++;
		if (net->running && !net->finishing)
			l->peer = in_assign(net, l);
	}
	if (!net->running || net->finishing || l->peer < 0) {
		link_hold(l, msg, len);   /* kick decides: our next step, or a refusal */
		kick(net);
		return KW_HM_STREAM_HOLD;
	}
	return link_feed(l, msg, len);
}

static void in_writable(struct kw_hm_stream *st, void *arg)
{
	struct link *l = in_of(st);

	if (l && l->st == st && link_drain(l) < 0 && l->net->running && !l->net->finishing &&
	    l->peer >= 0)
		kw_avg_on_peer_error(l->net->avg, (unsigned)l->peer, -KW_EPIPE);
}

static void in_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	struct kw_app_avgnet *net = arg;
	struct link *l = in_of(st);
	int peer;

	if (!l || l->st != st)
		return;
	peer = l->peer;
	link_reset(l);
	if (net->running && !net->finishing && peer >= 0)
		KW_LOG_WRN(avg, "part stream from peer %d ended early: %s", peer, kw_strerror(reason));
	if (net->running && !net->finishing && peer >= 0)
		kw_avg_on_peer_error(net->avg, (unsigned)peer, reason ? reason : -KW_ECANCELED);
}

static const struct kw_hm_stream_ops in_ops = {
	.on_message = in_msg, .on_writable = in_writable, .on_cancel = in_cancel,
};

/* Answers a held first message with one AveragingData code and ends the stream. */
static void refuse(struct kw_app_avgnet *net, struct link *l, enum kw_avg_code code)
{
	struct kw_avg_data d;
	uint8_t buf[16];
	size_t n = 0;

	memset(&d, 0, sizeof(d));
	d.code = code;
	if (kw_avg_data_encode(&d, buf, sizeof(buf), &n) == 0)
		kw_hm_stream_send(l->st, buf, n);
	KW_LOG_WRN(avg, "part stream refused: %s", kw_avg_code_name(code));
	kw_hm_stream_end(l->st);
	link_reset(l);
}

/* ---- the transport ------------------------------------------------------------------------ */

static int msg_code(const uint8_t *msg, size_t len)
{
	/* field 1 (code) comes first when present; codes are below 128 */
	return len >= 2 && msg[0] == 0x08 ? msg[1] : KW_AVG_NO_CODE;
}

static int tr_send(void *t, unsigned peer, const uint8_t *msg, size_t len)
{
	struct kw_app_avgnet *net = t;
	int code = msg_code(msg, len);
	struct link *l = NULL;
	int r;

	if (peer >= net->g.n)
		return -KW_EINVAL;
	if (code == KW_AVG_NO_CODE || code == KW_AVG_PART_FOR_AVERAGING) {
		l = &net->out[peer];
		if (!l->st && !l->dial && (r = open_out(net, peer)) < 0)
			return r;
	} else {
		for (unsigned i = 0; i < net->cfg.max_peers; i++)
			if (net->in[i].st && net->in[i].peer == (int)peer)
				l = &net->in[i];
		if (!l && net->out[peer].st)
			l = &net->out[peer];
		if (!l)
			return 0;   /* nowhere to say it: the peer's stream is gone already */
	}
	r = link_send(l, msg, len);
	/* a part we held from this peer may fit now (the averager's window moved) */
	for (unsigned i = 0; i < net->cfg.max_peers; i++)
		if ((net->in[i].held && net->in[i].peer == (int)peer) || net->out[peer].held)
			kick(net);
	return r;
}

static void tr_end(void *t, unsigned peer, bool replies)
{
	struct kw_app_avgnet *net = t;

	if (peer >= net->g.n)
		return;
	if (!replies) {
		net->out[peer].end_asked = true;
		link_try_end(&net->out[peer]);
		return;
	}
	for (unsigned i = 0; i < net->cfg.max_peers; i++)
		if (net->in[i].st && net->in[i].peer == (int)peer) {
			net->in[i].end_asked = true;
			link_try_end(&net->in[i]);
		}
}

void kw_app_avgnet_transport(struct kw_app_avgnet *net, struct kw_avg_transport *tr)
{
	memset(tr, 0, sizeof(*tr));
	tr->send = tr_send;
	tr->end = tr_end;
	tr->t = net;
}

void kw_app_avgnet_bind(struct kw_app_avgnet *net, struct kw_avg *avg)
{
	net->avg = avg;
}

/* ---- the round ------------------------------------------------------------------------- */

static void redeliver(struct kw_app_avgnet *net, struct link *l)
{
	int r;

	if (!l->held || !l->st)
		return;
	r = kw_avg_on_message(net->avg, (unsigned)l->peer, l->msg, l->len);
	if (r == -KW_EAGAIN)
		return;
	l->held = false;
	kw_hm_stream_next(l->st);
}

/* Ends every stream of the finished round, then reports. A part stream we ended normally
 * is left to the reducer to close (a reset would tell it we failed); the rest are reset. */
static void finish_round(struct kw_app_avgnet *net)
{
	kw_avg_done_fn done = net->done;

	for (unsigned i = 0; i < net->cfg.max_peers; i++) {
		struct link *o = &net->out[i], *in = &net->in[i];

		if (o->dial) {
			dial_abandon(o->dial);
			link_reset(o);
		}
		if (o->st) {
			struct kw_hm_stream *st = o->st;
			bool ended = o->ended;

			link_reset(o);   /* its on_done is ignored from now on */
			if (!ended)
				kw_hm_stream_cancel(st);
		}
		if (in->st && in->peer >= 0) {   /* streams of a next round stay */
			struct kw_hm_stream *st = in->st;

			if (in->held)
				kw_hm_stream_next(st);
			link_reset(in);
			kw_hm_stream_end(st);
		}
	}
	net->running = net->finishing = false;
	net->done = NULL;
	if (done)
		done(net->avg, &net->res, net->done_user);
}

static void on_kick(struct kw_loop *lp, struct kw_timer *t)
{
	struct kw_app_avgnet *net = t->arg;
	uint64_t now = kw_loop_now(lp);
	bool again = false;

	if (net->finishing)
		finish_round(net);   /* then look at streams that wait for a later round */
	for (unsigned i = 0; i < net->cfg.max_peers; i++) {
		struct link *l = &net->in[i];
		int idx;

		if (!l->st || !l->held)
			continue;
		if (net->running && l->peer < 0 && (idx = in_assign(net, l)) >= 0)
			l->peer = idx;
		if (net->running && l->peer >= 0) {
			redeliver(net, l);
		} else if (now - l->since_ms < net->cfg.pending_ms) {
			again = true;   /* maybe our next group: hivemind waits for pending groups */
		} else if (net->running && peer_index(net, l->id, l->id_len) < 0) {
			net->st.refused++;
			refuse(net, l, KW_AVG_PROTOCOL_VIOLATION);   /* sender not in our group */
		} else {
			net->st.refused++;
			refuse(net, l, KW_AVG_BAD_GROUP_ID);         /* no such group here */
		}
	}
	if (net->running)
		for (unsigned i = 0; i < net->g.n; i++)
			redeliver(net, &net->out[i]);
	if (again && !kw_timer_armed(&net->kick))
		kw_timer_start(lp, &net->kick, 50);
}

static void on_round_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	struct kw_app_avgnet *net = user;

	/* may run inside a stream callback: end the streams from the loop, not from here */
	net->res = *r;
	for (unsigned i = 0; i < net->g.n && i < KW_AVG_GROUP_MAX; i++)
		if (r->excluded_mask >> i & 1) {
			strncpy(net->reason[i], r->reason[i], KW_AVG_REASON_MAX - 1);
			net->reason[i][KW_AVG_REASON_MAX - 1] = '\0';
		}
	net->res.reason = net->reason;
	net->finishing = true;
	kw_timer_cancel(&net->node->loop, &net->kick);
	kw_timer_start(&net->node->loop, &net->kick, 0);
}

int kw_app_avgnet_step(struct kw_app_avgnet *net, const struct kw_avg_group *g,
		       const struct kw_avg_bytes *ids, kw_avg_done_fn done, void *user)
{
	int r;

	if (!net || !g || !ids || !done || !net->avg || g->n > net->cfg.max_peers)
		return -KW_EINVAL;
	if (net->running)
		return -KW_EBUSY;
	for (unsigned i = 0; i < g->n; i++) {
		if (!ids[i].len || ids[i].len > KW_AVG_PEER_ID_MAX)
			return -KW_EINVAL;
		memcpy(net->ids[i], ids[i].p, ids[i].len);
		net->id_len[i] = ids[i].len;
	}
	net->g = *g;
	for (unsigned i = 0; i < net->cfg.max_peers; i++) {
		dial_abandon(net->out[i].dial);
		link_reset(&net->out[i]);
	}
	net->done = done;
	net->done_user = user;
	net->running = true;
	net->finishing = false;
	memset(net->reason, 0, sizeof(net->reason));
	r = kw_avg_step(net->avg, g, on_round_done, net);
	if (r < 0) {
		net->running = false;
		return r;
	}
	/* parts that came before we knew the group */
	for (unsigned i = 0; i < net->cfg.max_peers; i++)
		if (net->in[i].st)
			net->in[i].peer = in_assign(net, &net->in[i]);
	kick(net);
	return 0;
}

/* ---- rpc_join_group: the leader's side ------------------------------------------------- */

static struct follower *fol_find(struct kw_app_avgnet *net, const uint8_t *id, size_t len)
{
	for (unsigned i = 0; i < KW_AVG_GROUP_MAX; i++)
		if (net->fol[i].st && net->fol[i].id_len == len && !memcmp(net->fol[i].id, id, len))
			return &net->fol[i];
	return NULL;
}

static int join_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct kw_app_avgnet *net = arg;
	struct follower *f = kw_hm_stream_user(st);
	int r;

	if (f) {   /* hivemind: one request; more is a protocol violation */
		kw_hm_stream_error(st, "ProtocolViolation('more than one JoinRequest')");
		f->st = NULL;
		return 0;
	}
	for (unsigned i = 0; i < KW_AVG_GROUP_MAX; i++)
		if (!net->fol[i].st) {
			f = &net->fol[i];
			break;
		}
	if (!f) {
		kw_hm_stream_error(st, "RuntimeError('too many join requests')");
		return 0;
	}
	memset(f, 0, sizeof(*f));
	r = kw_avg_join_decode(&f->req, msg, len);
	if (r < 0) {
		KW_LOG_WRN(avg, "bad JoinRequest (%s): stream closed", kw_strerror(r));
		kw_hm_stream_error(st, "ProtocolViolation('malformed JoinRequest')");
		return 0;
	}
	f->st = st;
	f->have_req = true;
	conn_peer(st, f->id, &f->id_len);
	kw_hm_stream_set_user(st, f);
	net->st.joins_in++;
	return 0;
}

static void join_end(struct kw_hm_stream *st, void *arg)
{
	struct kw_app_avgnet *net = arg;
	struct follower *f = kw_hm_stream_user(st);
	struct kw_avg_join_req req;

	if (!f || f->st != st || !f->have_req)
		return;
	memset(&req, 0, sizeof(req));
	req.schema_hash = f->req.schema_hash;
	req.schema_hash_len = f->req.schema_hash_len;
	req.expiration = f->req.expiration;
	req.group_key = f->req.group_key;
	req.client_mode = f->req.client_mode;
	req.peer_id = f->id;
	req.peer_id_len = f->id_len;
	kw_avg_mm_on_join(&net->mm, &req);   /* answers through mm_reply */
}

static void join_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	struct follower *f = kw_hm_stream_user(st);

	/* hivemind drops a follower whose stream ends; our group then assembles without it
	 * only if the round excludes it, which it does at its first send */
	if (f && f->st == st)
		f->st = NULL;
}

static const struct kw_hm_stream_ops join_ops = {
	.on_message = join_msg, .on_end = join_end, .on_cancel = join_cancel,
};

static int mm_reply(void *u, const uint8_t *peer_id, size_t len, enum kw_avg_code code,
		    const uint8_t *suggested, size_t suggested_len)
{
	struct kw_app_avgnet *net = u;
	struct follower *f = fol_find(net, peer_id, len);
	struct kw_avg_leader_msg m;
	uint8_t buf[8 + KW_AVG_PEER_ID_MAX];
	size_t n = 0;

	if (!f)
		return -KW_ENOENT;
	memset(&m, 0, sizeof(m));
	m.code = code;
	if (suggested_len && suggested_len <= KW_AVG_PEER_ID_MAX) {
		memcpy(m.suggested_leader, suggested, suggested_len);
		m.suggested_len = suggested_len;
	}
	if (kw_avg_leader_encode(&m, buf, sizeof(buf), &n) < 0 ||
	    kw_hm_stream_send(f->st, buf, n) < 0)
		return -KW_EIO;
	if (code != KW_AVG_ACCEPTED) {   /* a refusal or a disband ends the call */
		kw_hm_stream_end(f->st);
		f->st = NULL;
	}
	return 0;
}

/* leader_assemble_group: a random group id, us and our followers shuffled, their gathers. */
static int lead(struct kw_app_avgnet *net)
{
	struct kw_avg_leader_msg *m = &net->begin;
	unsigned n = 0;
	int r;

	memset(m, 0, sizeof(*m));
	m->code = KW_AVG_BEGIN_ALLREDUCE;
	m->group_id_len = 20;
	if ((r = kw_rng_bytes(m->group_id, 20)) < 0)
		return r;
	m->peer[n] = (struct kw_avg_bytes){ net->self, net->self_len };
	m->gathered[n++] = (struct kw_avg_bytes){ net->gather, net->gather_len };
	for (unsigned i = 0; i < net->mm.n_followers; i++) {
		struct follower *f = fol_find(net, net->mm.followers[i], net->mm.follower_len[i]);

		if (!f)
			continue;   /* its stream closed: not in the group */
		m->peer[n] = (struct kw_avg_bytes){ f->id, f->id_len };
		m->gathered[n++] = (struct kw_avg_bytes){ f->req.gather, f->req.gather_len };
	}
	if (n < net->mm.cfg.min_group_size) {
		/* followers left while we waited: too few to run (their streams end without
		 * BEGIN_ALLREDUCE, so they look for another leader) */
		KW_LOG_INF(avg, "group of %u fell below min_group_size %u: not run", n,
			   net->mm.cfg.min_group_size);
		return -KW_ETIMEDOUT;
	}
	for (unsigned i = n - 1; i > 0; i--) {   /* random.shuffle: Fisher-Yates */
		unsigned j = kw_rng_below(i + 1);
		struct kw_avg_bytes tp = m->peer[i], tg = m->gathered[i];

		m->peer[i] = m->peer[j];
		m->gathered[i] = m->gathered[j];
		m->peer[j] = tp;
		m->gathered[j] = tg;
	}
	m->n_peers = m->n_gathered = n;
	r = kw_avg_leader_encode(m, net->lmsg, LEADER_MSG_MAX, &net->lmsg_len);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < net->mm.n_followers; i++) {
		struct follower *f = fol_find(net, net->mm.followers[i], net->mm.follower_len[i]);

		if (!f)
			continue;
		if (kw_hm_stream_send(f->st, net->lmsg, net->lmsg_len) < 0)
			KW_LOG_WRN(avg, "BEGIN_ALLREDUCE does not fit a follower's stream");
		kw_hm_stream_end(f->st);
		f->st = NULL;
	}
	/* the views now point into lmsg, which outlives the followers' slots */
	return kw_avg_leader_decode(m, net->lmsg, net->lmsg_len);
}

/* ---- rpc_join_group: the follower's side ----------------------------------------------- */

static int leader_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct kw_app_avgnet *net = arg;
	struct kw_avg_leader_msg m;
	struct kw_avg_group g;
	int r;

	if (st != net->leader_st || !net->matching)
		return 0;
	r = kw_avg_leader_decode(&m, msg, len);
	if (r < 0) {
		KW_LOG_WRN(avg, "bad MessageFromLeader (%s): next leader", kw_strerror(r));
		net->leader_st = NULL;
		kw_hm_stream_cancel(st);
		kw_avg_mm_on_leader_error(&net->mm, -KW_EBADMSG);
		return 0;
	}
	if (m.code == KW_AVG_BEGIN_ALLREDUCE) {
		if (len > LEADER_MSG_MAX ||
		    (r = kw_avg_group_from_leader(&m, net->self, net->self_len, net->cfg.max_peers,
						  &g)) < 0) {
			KW_LOG_WRN(avg, "leader's group refused (%s)", kw_strerror(r));
			net->leader_st = NULL;
			kw_hm_stream_cancel(st);
			kw_avg_mm_on_leader_error(&net->mm, -KW_EPROTO);
			return 0;
		}
		memcpy(net->lmsg, msg, len);
		net->lmsg_len = len;
		kw_avg_leader_decode(&net->begin, net->lmsg, len);
		net->got_begin = true;
		net->leader_st = NULL;   /* the leader closes it */
	} else if (m.code != KW_AVG_ACCEPTED) {
		net->leader_st = NULL;
	}
	kw_avg_mm_on_leader_msg(&net->mm, (enum kw_avg_code)m.code, m.suggested_leader,
				m.suggested_len);
	return 0;
}

static void leader_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct kw_app_avgnet *net = arg;

	if (st != net->leader_st)
		return;   /* answered already, or a leader we moved on from */
	net->leader_st = NULL;
	if (net->matching)
		kw_avg_mm_on_leader_error(&net->mm, r->err ? r->err : -KW_EPIPE);
}

static const struct kw_hm_stream_ops leader_ops = {
	.on_message = leader_msg, .on_done = leader_done,
};

/* Sends our JoinRequest to the leader on c. */
static int join_open(struct kw_app_avgnet *net, struct kw_conn *c, double expiration)
{
	struct kw_avg_join_msg j;
	uint8_t buf[512];
	size_t n = 0;
	int r;

	memset(&j, 0, sizeof(j));
	memcpy(j.schema_hash, net->m.schema_hash, net->m.schema_hash_len);
	j.schema_hash_len = net->m.schema_hash_len;
	j.expiration = expiration;
	memcpy(j.gather, net->gather, net->gather_len);
	j.gather_len = net->gather_len;
	j.client_mode = net->m.mode == KW_AVG_CLIENT;
	strncpy(j.group_key, net->m.key, sizeof(j.group_key) - 1);
	if ((r = kw_avg_join_encode(&j, buf, sizeof(buf), &n)) < 0)
		return r;
	r = kw_hm_stream_open(net->hm, c, net->join_name, &leader_ops, net, net->cfg.idle_ms,
			      &net->leader_st);
	if (r < 0) {
		net->leader_st = NULL;
		return r;
	}
	net->st.joins_out++;
	kw_hm_stream_send(net->leader_st, buf, n);
	kw_hm_stream_end(net->leader_st);
	return 0;
}

/* The leader we wait for (stream or dial) is left. */
static void leader_drop(struct kw_app_avgnet *net)
{
	if (net->leader_st) {   /* a leader we leave: reset its stream */
		struct kw_hm_stream *old = net->leader_st;

		net->leader_st = NULL;
		kw_hm_stream_cancel(old);
	}
	dial_abandon(net->leader_dial);
	net->leader_dial = NULL;
}

static int mm_join(void *u, const uint8_t *leader, size_t leader_len, double expiration)
{
	struct kw_app_avgnet *net = u;
	struct kw_peer_id pid;
	struct kw_conn *c;
	char who[128];
	int r;

	leader_drop(net);
	if (kw_peer_id_from_bytes(leader, leader_len, &pid) < 0)
		return -KW_EINVAL;
	c = kw_swarm_find_conn(net->sw, &pid);
	if (c)
		return join_open(net, c, expiration);
	if (!net->cfg.connect)
		return -KW_ENOTCONN;
	net->join_exp = expiration;
	r = dial_start(net, &pid, DIAL_LEADER, &net->leader_dial);
	if (r < 0) {
		net->st.dials_failed++;
		peer_text(&pid, who, sizeof(who));
		leader_unreachable(net, &pid, who, r);
		net->leader_dial = NULL;
	}
	return r;
}

static int mm_declare(void *u, const char *key, double expiration, bool looking)
{
	struct kw_app_avgnet *net = u;

	return net->m.declare ? net->m.declare(net->m.declare_arg, key, expiration, looking) : 0;
}

/* Reports from the loop: mm calls assembled() from inside our stream callbacks. */
static void mm_assembled(void *u, int err)
{
	struct kw_app_avgnet *net = u;
	struct kw_avg_group g;
	struct kw_avg_bytes ids[KW_AVG_GROUP_MAX];
	kw_app_avgnet_assembled_fn cb = net->assembled;

	kw_timer_cancel(&net->node->loop, &net->expire);
	net->matching = false;
	leader_drop(net);
	if (!err && !net->got_begin) {
		err = lead(net);
		if (!err)
			net->st.groups_led++;
	} else if (!err) {
		net->st.groups_followed++;
	}
	if (!err)
		KW_LOG_INF(avg, "%s a group of %u", net->got_begin ? "joined" : "leading",
			   net->begin.n_peers);
	if (!err)
		err = kw_avg_group_from_leader(&net->begin, net->self, net->self_len,
					       net->cfg.max_peers, &g);
	if (err) {
		for (unsigned i = 0; i < KW_AVG_GROUP_MAX; i++)
			if (net->fol[i].st) {
				kw_hm_stream_end(net->fol[i].st);
				net->fol[i].st = NULL;
			}
		cb(net, err, NULL, NULL, net->assembled_user);
		return;
	}
	for (unsigned i = 0; i < g.n; i++)
		ids[i] = net->begin.peer[i];
	cb(net, 0, &g, ids, net->assembled_user);
}

#define REQUEST_TIMEOUT_MS 3000   /* matchmaking.py request_timeout */

static void on_expire(struct kw_loop *lp, struct kw_timer *t)
{
	struct kw_app_avgnet *net = t->arg;

	if (!net->matching)
		return;
	/* a follower waits for its leader past its own expiration (hivemind: the leader's
	 * expiration - now + request_timeout); our leader expires before us, so once more */
	if (net->mm.state == KW_AVG_MM_FOLLOWING && !net->expire_extended) {
		net->expire_extended = true;
		kw_timer_start(lp, t, REQUEST_TIMEOUT_MS);
		return;
	}
	kw_avg_mm_on_expired(&net->mm);
}

int kw_app_avgnet_match(struct kw_app_avgnet *net, const struct kw_app_avgnet_match *m,
			kw_app_avgnet_assembled_fn assembled, void *user)
{
	struct kw_avg_mm_ops ops = {
		.declare = mm_declare, .join = mm_join, .reply = mm_reply,
		.assembled = mm_assembled, .u = net,
	};
	struct kw_avg_mm_cfg mc;
	int r;

	if (!net || !m || !m->key || !assembled || !m->schema_hash || !m->schema_hash_len ||
	    m->schema_hash_len > 32 || m->mode > KW_AVG_AUX)
		return -KW_EINVAL;
	if (net->matching || net->running)
		return -KW_EBUSY;
	r = kw_avg_gather_encode(m->mode == KW_AVG_CLIENT ? 0.0 : m->bandwidth, m->mode, NULL, 0,
				 net->gather, sizeof(net->gather), &net->gather_len);
	if (r < 0)
		return r;
	/* user data None: msgpack nil inside the bin (averager.py data_for_gather=None) */
	net->gather[net->gather_len - 1] = 1;
	net->gather[net->gather_len++] = 0xc0;
	net->m = *m;
	net->assembled = assembled;
	net->assembled_user = user;
	net->got_begin = false;
	net->expire_extended = false;
	net->bad_leader.len = 0;
	for (unsigned i = 0; i < KW_AVG_GROUP_MAX; i++)
		if (net->fol[i].st) {   /* a follower of an earlier search */
			kw_hm_stream_end(net->fol[i].st);
			net->fol[i].st = NULL;
		}
	memset(&mc, 0, sizeof(mc));
	mc.key = m->key;
	mc.self = net->self;
	mc.self_len = net->self_len;
	mc.schema_hash = m->schema_hash;
	mc.schema_hash_len = m->schema_hash_len;
	mc.client_mode = m->mode == KW_AVG_CLIENT;
	mc.min_group_size = m->min_group_size ? m->min_group_size : 2;
	mc.target_group_size = m->target_group_size;
	if (mc.target_group_size > net->cfg.max_peers || !mc.target_group_size)
		mc.target_group_size = net->cfg.max_peers;
	kw_avg_mm_init(&net->mm, &mc, &ops);
	net->matching = true;
	r = kw_avg_mm_begin(&net->mm, now_s(net) + m->timeout_ms / 1000.0);
	if (r < 0) {
		net->matching = false;
		return r;
	}
	kw_timer_start(&net->node->loop, &net->expire, m->timeout_ms);
	return 0;
}

int kw_app_avgnet_candidates(struct kw_app_avgnet *net, const struct kw_avg_candidate *c,
			     size_t n)
{
	if (!net || (!c && n))
		return -KW_EINVAL;
	if (!net->matching)
		return -KW_ENOENT;
	return kw_avg_mm_on_averagers(&net->mm, c, n);
}

int kw_app_avgnet_leave(struct kw_app_avgnet *net)
{
	if (!net)
		return -KW_EINVAL;
	if (!net->matching)
		return -KW_ENOENT;
	kw_timer_cancel(&net->node->loop, &net->expire);
	net->matching = false;
	/* a leader disbands: GROUP_DISBANDED (no suggested leader) to every follower, and the
	 * join requests not yet answered end without a reply */
	for (unsigned i = 0; i < net->mm.n_followers; i++)
		mm_reply(net, net->mm.followers[i], net->mm.follower_len[i], KW_AVG_GROUP_DISBANDED,
			 NULL, 0);
	net->mm.n_followers = 0;
	for (unsigned i = 0; i < KW_AVG_GROUP_MAX; i++)
		if (net->fol[i].st) {
			kw_hm_stream_end(net->fol[i].st);
			net->fol[i].st = NULL;
		}
	/* a follower ends its join stream (or stops dialling): the leader drops it */
	leader_drop(net);
	net->mm.leader_len = 0;
	net->mm.state = KW_AVG_MM_IDLE;
	net->st.leaves++;
	/* out of the bucket: nobody should ask us any more (matchmaking's finish does the same) */
	if (!net->mm.cfg.client_mode && net->m.declare)
		return net->m.declare(net->m.declare_arg, net->m.key, net->mm.declared_exp, false);
	return 0;
}

double kw_app_avgnet_expiration(const struct kw_app_avgnet *net)
{
	return net->mm.declared_exp;
}

/* ---- set-up ----------------------------------------------------------------------------- */

int kw_app_avgnet_create(struct kw_node *n, struct kw_swarm *sw, struct kw_hm *hm,
			 const struct kw_app_avgnet_cfg *cfg, struct kw_app_avgnet **out)
{
	struct kw_app_avgnet *net;
	const struct kw_peer_id *self;
	int r;

	if (!n || !sw || !hm || !cfg || !out || !cfg->max_peers ||
	    cfg->max_peers > KW_AVG_GROUP_MAX)
		return -KW_EINVAL;
	net = kw_arena_alloc(&n->arena, sizeof(*net), 16);
	if (!net)
		return -KW_ENOMEM;
	memset(net, 0, sizeof(*net));
	net->node = n;
	net->sw = sw;
	net->hm = hm;
	net->cfg = *cfg;
	if (!net->cfg.idle_ms)
		net->cfg.idle_ms = 60000;
	if (!net->cfg.pending_ms)
		net->cfg.pending_ms = 5000;
	if (!net->cfg.dial_ms)
		net->cfg.dial_ms = DIAL_MS_DEFAULT;
	self = kw_swarm_peer_id(sw);
	if (!self || self->len > KW_AVG_PEER_ID_MAX)
		return -KW_EINVAL;
	memcpy(net->self, self->bytes, self->len);
	net->self_len = self->len;
	if ((r = kw_app_avgnet_handle_name(cfg->prefix, cfg->cls, "rpc_aggregate_part",
					   net->agg_name, sizeof(net->agg_name))) < 0 ||
	    (r = kw_app_avgnet_handle_name(cfg->prefix, cfg->cls, "rpc_join_group",
					   net->join_name, sizeof(net->join_name))) < 0)
		return r;
	net->out = kw_arena_alloc(&n->arena, cfg->max_peers * sizeof(struct link), 16);
	net->in = kw_arena_alloc(&n->arena, cfg->max_peers * sizeof(struct link), 16);
	net->lmsg = kw_arena_alloc(&n->arena, LEADER_MSG_MAX, 16);
	net->n_dials = 2 * (cfg->max_peers + 1);
	net->dials = kw_arena_alloc(&n->arena, net->n_dials * sizeof(struct dial), 16);
	if (!net->out || !net->in || !net->lmsg || !net->dials)
		return -KW_ENOMEM;
	memset(net->dials, 0, net->n_dials * sizeof(struct dial));
	for (unsigned i = 0; i < net->n_dials; i++) {
		net->dials[i].net = net;
		net->dials[i].target = DIAL_NONE;
		kw_timer_init(&net->dials[i].deadline, on_dial_deadline, &net->dials[i]);
	}
	for (unsigned i = 0; i < cfg->max_peers; i++) {
		net->out[i].bl = cfg->backlog_bytes ?
			kw_arena_alloc(&n->arena, cfg->backlog_bytes, 16) : NULL;
		net->in[i].bl = cfg->backlog_bytes ?
			kw_arena_alloc(&n->arena, cfg->backlog_bytes, 16) : NULL;
		if (cfg->backlog_bytes && (!net->out[i].bl || !net->in[i].bl))
			return -KW_ENOMEM;
		net->out[i].net = net->in[i].net = net;
		net->in[i].inbound = true;
		link_reset(&net->out[i]);
		link_reset(&net->in[i]);
	}
	kw_timer_init(&net->kick, on_kick, net);
	kw_timer_init(&net->expire, on_expire, net);
	if ((r = kw_hm_register_stream(hm, net->agg_name, &in_ops, net, net->cfg.idle_ms)) < 0 ||
	    (r = kw_hm_register_stream(hm, net->join_name, &join_ops, net, net->cfg.idle_ms)) < 0)
		return r;
	*out = net;
	return 0;
}

void kw_app_avgnet_get_stats(const struct kw_app_avgnet *net, struct kw_app_avgnet_stats *st)
{
	*st = net->st;
}

/* ---- schema hash --------------------------------------------------------------------- */

int kw_app_avgnet_schema_hash(const uint64_t *size, size_t ndim, uint8_t out[20])
{
	/* asdict(TensorDescriptor) order; values are Python str() of a CPU float32 tensor's
	 * descriptor (torch.Size repr, torch dtype/layout reprs, str(device), bools, the
	 * CompressionType enum value as an int) */
	static const char *const fields[] = { "dtype", "torch.float32", "layout", "torch.strided",
		"device", "cpu", "requires_grad", "False", "pin_memory", "False",
		"compression", "0" };
	char dims[sizeof("torch.Size([])") + KW_APP_AVGNET_SCHEMA_DIMS * 22];
	uint8_t buf[512];
	struct kw_mp_writer w;
	struct kw_hm_dhtid h;
	size_t at;
	long n;

	if ((!size && ndim) || ndim > KW_APP_AVGNET_SCHEMA_DIMS || !out)
		return -KW_EINVAL;
	at = (size_t)snprintf(dims, sizeof(dims), "torch.Size([");
	for (size_t i = 0; i < ndim; i++)
		at += (size_t)snprintf(dims + at, sizeof(dims) - at, "%s%" PRIu64, i ? ", " : "",
				       size[i]);
	snprintf(dims + at, sizeof(dims) - at, "])");
	kw_mp_writer_init(&w, buf, sizeof(buf));
	kw_mp_put_array(&w, 1);
	kw_mp_put_map(&w, 1 + KW_ARRAY_SIZE(fields) / 2);
	kw_mp_put_cstr(&w, "size");
	kw_mp_put_cstr(&w, dims);
	for (size_t i = 0; i < KW_ARRAY_SIZE(fields); i++)
		kw_mp_put_cstr(&w, fields[i]);
	n = kw_mp_writer_finish(&w);
	if (n < 0)
		return -KW_EINVAL;
	kw_hm_dhtid_hash(buf, (size_t)n, &h);
	memcpy(out, h.b, 20);
	return 0;
}
