/*
 * ReachabilityProtocol.rpc_check, server and client (include/kw/net/hivemind_reach.h), after
 * petals src/petals/server/reachability.py (bigscience-workshop/petals @ 22afba6).
 *
 * Why the dial-back proves something: petals probes from a second libp2p node (its own
 * identity, no relay, no listener), so its dial can only succeed over a new direct
 * connection. We get the same from kw_swarm_dial: it always opens a new TCP socket and runs
 * a new Noise handshake that must prove the /p2p/ id we dial (the swarm never hands back an
 * existing connection), and the inner rpc_check is sent on exactly that connection
 * (kw_hm_call takes the connection). A node that can only be reached through the connection
 * it opened to us therefore gets available = false.
 *
 * Owns: probe slots, the recent-callers table and the client's ask slots (node's arena).
 */
#include <stdio.h>
#include <string.h>

#include <pb_decode.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_reach.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "hivemind/dht.pb.h"

#define RECENT 16                 /* callers remembered for the per-caller interval */
#define AVAILABLE_TAG 0x28        /* PingResponse.available: field 5, varint */

struct probe {
	struct kw_hm_reach *r;
	struct kw_hm_call *call;      /* the caller's rpc_check; NULL once answered or gone */
	struct kw_peer_id peer;
	struct kw_multiaddr addrs[KW_HM_REACH_ADDRS];
	int n_addrs, next;
	struct kw_conn *conn;         /* our new connection to the caller */
	struct kw_timer timer;        /* the deadline, then the deferred close of conn */
	bool busy, dialing, calling, closing;
};

struct recent {
	struct kw_peer_id peer;
	uint64_t at_ms;
	bool used;
};

struct ask {
	struct kw_hm_reach *r;
	bool pending;
};

struct kw_hm_reach {
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_loop *loop;
	struct kw_hm_reach_config cfg;
	struct kw_conn_watcher watcher;  /* forgets probe connections that go down */
	struct probe *probes;
	struct recent recent[RECENT];
	/* client */
	struct ask asks[KW_HM_REACH_ASK_MAX];
	bool checking;
	uint32_t pending;
	struct kw_hm_reach_result res;
	kw_hm_reach_done_fn done;
	void *done_user;
	struct kw_hm_reach_stats st;
};

void kw_hm_reach_config_default(struct kw_hm_reach_config *c)
{
	memset(c, 0, sizeof(*c));
	c->probes = CONFIG_KW_NET_HIVEMIND_REACH_PROBES;
	c->timeout_ms = CONFIG_KW_NET_HIVEMIND_REACH_TIMEOUT_MS;
	c->peer_interval_ms = CONFIG_KW_NET_HIVEMIND_REACH_PEER_INTERVAL_MS;
	c->ask_max = CONFIG_KW_NET_HIVEMIND_REACH_ASK;
}

void kw_hm_reach_get_stats(const struct kw_hm_reach *r, struct kw_hm_reach_stats *st)
{
	*st = r->st;
}

/* ---- codec ------------------------------------------------------------------------------ */

struct id_arg {
	struct kw_peer_id *out;
	bool seen;
	const char *why;
};

static bool dec_node_id(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct id_arg *a = *arg;
	uint8_t b[KW_PEER_ID_MAX];
	size_t n = st->bytes_left;

	(void)f;
	if (n > sizeof(b)) {
		a->why = "peer.node_id longer than a PeerID";
		return false;
	}
	if (!pb_read(st, b, n))
		return false;
	if (kw_peer_id_from_bytes(b, n, a->out) < 0) {
		a->why = "peer.node_id is not a PeerID";
		return false;
	}
	a->seen = true;
	return true;
}

int kw_hm_reach_decode_req(const uint8_t *buf, size_t len, struct kw_peer_id *out,
			   const char **why)
{
	kw_hivemind_PingRequest m = kw_hivemind_PingRequest_init_zero;
	struct id_arg a = { out, false, NULL };
	pb_istream_t st = pb_istream_from_buffer(buf, len);
	const char *w = "";
	int ret = 0;

	memset(out, 0, sizeof(*out));
	m.peer.node_id.funcs.decode = dec_node_id;
	m.peer.node_id.arg = &a;
	if (!pb_decode(&st, kw_hivemind_PingRequest_fields, &m) || st.bytes_left) {
		ret = a.why ? -KW_EPROTO : -KW_EBADMSG;
		w = a.why ? a.why : "malformed PingRequest";
	} else if (!m.has_peer || !a.seen) {
		ret = -KW_EPROTO;
		w = "PingRequest.peer.node_id missing (the PeerID to check)";
	}
	if (why)
		*why = w;
	return ret;
}

long kw_hm_reach_encode_req(const struct kw_peer_id *id, uint8_t *buf, size_t cap)
{
	size_t n = 4 + (size_t)id->len;

	/* PingRequest{ peer (2) = NodeInfo{ node_id (1) = id } }; both lengths fit one byte */
	if (id->len > KW_PEER_ID_MAX)
		return -KW_EINVAL;
	if (cap < n)
		return -KW_ENOSPC;
	buf[0] = 0x12;
	buf[1] = (uint8_t)(2 + id->len);
	buf[2] = 0x0a;
	buf[3] = id->len;
	memcpy(buf + 4, id->bytes, id->len);
	return (long)n;
}

int kw_hm_reach_decode_resp(const uint8_t *buf, size_t len, bool *available)
{
	kw_hivemind_PingResponse m = kw_hivemind_PingResponse_init_zero;
	pb_istream_t st = pb_istream_from_buffer(buf, len);

	*available = false;
	if (!pb_decode(&st, kw_hivemind_PingResponse_fields, &m) || st.bytes_left)
		return -KW_EBADMSG;
	*available = m.available;
	return 0;
}

/* PingResponse{available}: proto3 leaves false out (an empty message). */
static void reply_available(struct kw_hm_call *call, bool available)
{
	static const uint8_t yes[] = { AVAILABLE_TAG, 0x01 };

	kw_hm_reply(call, yes, available ? sizeof(yes) : 0);
}

/* ---- server ----------------------------------------------------------------------------- */

static void probe_try_next(struct probe *p);

static void probe_release_if_idle(struct probe *p)
{
	if (p->dialing || p->calling || p->call || p->closing)
		return;
	kw_timer_cancel(p->r->loop, &p->timer);
	p->busy = false;
}

/* Answers the caller once (if it is still there). */
static void probe_answer(struct probe *p, bool available)
{
	char sid[KW_PEER_ID_SHORT_MAX];

	if (!p->call)
		return;
	if (available)
		p->r->st.probes_available++;
	else
		p->r->st.probes_unavailable++;
	kw_peer_id_short(&p->peer, sid, sizeof(sid));
	KW_LOG_INF(hivemind, "reachability check for %s: %s", sid,
		   available ? "reached it on a new connection" : "could not reach it directly");
	reply_available(p->call, available);
	p->call = NULL;
	kw_timer_cancel(p->r->loop, &p->timer);
}

/*
 * Closes the probe connection from a timer of its own: the callbacks that hand it to us run
 * inside the swarm's and the RPC layer's code, which still uses the connection afterwards.
 */
static void probe_close_later(struct probe *p)
{
	if (!p->conn)
		return;
	p->closing = true;
	kw_timer_start(p->r->loop, &p->timer, 0);
}

static void probe_on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct probe *p = t->arg;

	(void)l;
	if (p->closing) {
		if (p->conn)
			kw_conn_close(p->conn, 0);
		p->conn = NULL;
		p->closing = false;
		probe_release_if_idle(p);
		return;
	}
	if (p->call)
		p->r->st.probe_timeouts++;
	probe_answer(p, false);
	probe_release_if_idle(p);  /* a dial or inner call in flight frees it when it ends */
}

static void probe_on_inner(const struct kw_hm_result *res, void *user)
{
	struct probe *p = user;
	bool avail = false;

	p->calling = false;
	if (res->err == 0 && !res->remote_error)
		(void)kw_hm_reach_decode_resp(res->data, res->len, &avail);
	probe_answer(p, avail);
	probe_close_later(p);  /* the probe connection has done its job */
	probe_release_if_idle(p);
}

static void probe_on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct probe *p = user;
	uint8_t req[KW_HM_REACH_REQ_MAX];
	long n;

	(void)sw;
	p->dialing = false;
	if (err < 0) {
		if (p->call)
			probe_try_next(p);
		else
			probe_release_if_idle(p);
		return;
	}
	p->conn = c;
	if (!p->call) {  /* past the deadline: nobody waits for this connection */
		probe_close_later(p);
		return;
	}
	n = kw_hm_reach_encode_req(&p->peer, req, sizeof(req));
	if (n > 0 && kw_hm_call(p->r->hm, c, KW_HM_REACH_NAME, req, (size_t)n,
				p->r->cfg.timeout_ms, probe_on_inner, p) == 0) {
		p->calling = true;
		return;
	}
	probe_answer(p, false);
	probe_close_later(p);
}

static void probe_try_next(struct probe *p)
{
	char text[KW_MADDR_TEXT_MAX];
	int err = 0;

	while (p->call && p->next < p->n_addrs) {
		struct kw_multiaddr *ma = &p->addrs[p->next++];

		if (kw_maddr_append_peer_id(ma, &p->peer) < 0 ||
		    kw_maddr_to_text(ma, text, sizeof(text)) < 0)
			continue;
		p->dialing = true;
		err = kw_swarm_dial(p->r->sw, text, probe_on_dial, p);
		if (err == 0) {
			p->r->st.dials++;
			return;
		}
		p->dialing = false;
	}
	if (p->call && (err == -KW_ELIMIT || err == -KW_ESHUTDOWN)) {
		/* our own shortage says nothing about the caller: "did not check", not "no" */
		p->r->st.refused_busy++;
		kw_hm_reply_error(p->call, "RuntimeError('rpc_check: this node cannot dial out "
				  "now (connection limit or shutting down), try later')");
		p->call = NULL;
		kw_timer_cancel(p->r->loop, &p->timer);
	}
	probe_answer(p, false);
	probe_release_if_idle(p);
}

/* The caller's advertised TCP addresses on the IP its connection comes from. */
static int probe_addrs(struct kw_hm_reach *r, struct kw_conn *c, struct probe *p)
{
	struct kw_multiaddr got[KW_HM_REACH_ADDRS * 2], from;
	struct kw_maddr_comp fh, ah, at;
	const uint8_t *rb;
	size_t rl;
	int n;

	p->n_addrs = 0;
	if (!r->cfg.addrs)
		return 0;
	n = r->cfg.addrs(r->cfg.addrs_arg, c, got, (int)KW_ARRAY_SIZE(got));
	if (n < 0)
		return n;
	if (kw_conn_remote_addr(c, &rb, &rl) < 0 || kw_maddr_from_bytes(rb, rl, &from, NULL, 0) < 0 ||
	    kw_maddr_component(&from, 0, &fh) < 0)
		return 0;
	for (int i = 0; i < n && p->n_addrs < KW_HM_REACH_ADDRS; i++) {
		/* only /ip4|ip6/<the caller's IP>/tcp/<port>: no relays, no third hosts */
		if (got[i].n != 2 || kw_maddr_component(&got[i], 0, &ah) < 0 ||
		    kw_maddr_component(&got[i], 1, &at) < 0 || at.code != KW_MA_TCP ||
		    ah.code != fh.code || ah.len != fh.len || memcmp(ah.value, fh.value, ah.len))
			continue;
		p->addrs[p->n_addrs++] = got[i];
	}
	return p->n_addrs;
}

/* Whether peer asked within the interval; records it otherwise (oldest entry replaced). */
static bool rate_limited(struct kw_hm_reach *r, const struct kw_peer_id *peer)
{
	uint64_t now = kw_loop_now(r->loop);
	struct recent *slot = NULL;

	for (int i = 0; i < RECENT; i++) {
		struct recent *e = &r->recent[i];

		if (e->used && kw_peer_id_equal(&e->peer, peer)) {
			if (now - e->at_ms < r->cfg.peer_interval_ms)
				return true;
			slot = e;
			break;
		}
		if (!slot || !e->used || (slot->used && e->at_ms < slot->at_ms))
			slot = e;
	}
	slot->used = true;
	slot->peer = *peer;
	slot->at_ms = now;
	return false;
}

static void on_cancel(struct kw_hm_call *call, int reason, void *arg)
{
	struct kw_hm_reach *r = arg;

	(void)reason;
	for (uint32_t i = 0; i < r->cfg.probes; i++)
		if (r->probes[i].busy && r->probes[i].call == call) {
			r->probes[i].call = NULL;  /* the caller left: finish quietly */
			probe_release_if_idle(&r->probes[i]);
		}
}

static void on_check(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct kw_hm_reach *r = arg;
	struct kw_conn *c = kw_hm_call_conn(call);
	const struct kw_peer_id *caller = kw_conn_peer_id(c);
	struct kw_peer_id who;
	struct probe *p = NULL;
	const char *why;
	char text[160];
	int n;

	if (kw_hm_reach_decode_req(req, len, &who, &why) < 0) {
		r->st.bad_requests++;
		KW_LOG_WRN(hivemind, "%s: bad rpc_check request: %s", kw_conn_peer_short(c), why);
		snprintf(text, sizeof(text), "ValueError('rpc_check: %s')", why);
		kw_hm_reply_error(call, text);
		return;
	}
	r->st.checks_in++;
	if (kw_peer_id_equal(&who, kw_swarm_peer_id(r->sw))) {
		r->st.self_checks++;
		reply_available(call, true);
		return;
	}
	if (!kw_peer_id_equal(&who, caller)) {
		r->st.refused_peer++;
		KW_LOG_WRN(hivemind, "%s: rpc_check for another peer refused", kw_conn_peer_short(c));
		kw_hm_reply_error(call, "PermissionError('rpc_check: this node checks only the "
				  "caller itself (peer.node_id must be the PeerID of the connection)')");
		return;
	}
	if (rate_limited(r, caller)) {
		r->st.refused_rate++;
		snprintf(text, sizeof(text), "RuntimeError('rpc_check: one check per peer every "
			 "%u ms')", r->cfg.peer_interval_ms);
		kw_hm_reply_error(call, text);
		return;
	}
	for (uint32_t i = 0; i < r->cfg.probes && !p; i++)
		if (!r->probes[i].busy)
			p = &r->probes[i];
	if (!p) {
		r->st.refused_busy++;
		kw_hm_reply_error(call, "RuntimeError('rpc_check: all probes busy, try later')");
		return;
	}
	n = probe_addrs(r, c, p);
	if (n == -KW_EAGAIN) {
		kw_hm_reply_error(call, "RuntimeError('rpc_check: your listen addresses are not "
				  "known yet (identify), try again')");
		return;
	}
	r->st.probes++;
	p->busy = true;
	p->call = call;
	p->peer = who;
	p->next = 0;
	p->conn = NULL;
	p->dialing = p->calling = false;
	kw_timer_start(r->loop, &p->timer, r->cfg.timeout_ms);
	probe_try_next(p);  /* no address: answers false at once */
}

/* ---- client ----------------------------------------------------------------------------- */

static void check_finish(struct kw_hm_reach *r)
{
	struct kw_hm_reach_result res = r->res;

	if (res.answered == 0)
		res.verdict = KW_HM_REACH_UNKNOWN;
	else if (2 * res.available >= res.answered)  /* petals' threshold 0.5 */
		res.verdict = KW_HM_REACH_REACHABLE;
	else
		res.verdict = KW_HM_REACH_UNREACHABLE;
	r->checking = false;
	r->done(&res, r->done_user);
}

static void on_ask(const struct kw_hm_result *res, void *user)
{
	struct ask *a = user;
	struct kw_hm_reach *r = a->r;
	bool avail;

	a->pending = false;
	/* petals' call_check: an error or no answer is None (not counted), not False */
	if (res->err == 0 && !res->remote_error &&
	    kw_hm_reach_decode_resp(res->data, res->len, &avail) == 0) {
		r->res.answered++;
		r->st.answers++;
		if (avail) {
			r->res.available++;
			r->st.answers_available++;
		}
	}
	if (--r->pending == 0)
		check_finish(r);
}

struct pick_ctx {
	struct kw_hm_reach *r;
	struct kw_conn *c[KW_HM_REACH_ASK_MAX];
	uint32_t n;
};

static void pick(struct kw_conn *c, void *arg)
{
	struct pick_ctx *pc = arg;
	struct kw_hm_reach *r = pc->r;

	if (pc->n >= r->cfg.ask_max)
		return;
	for (uint32_t i = 0; i < r->cfg.probes; i++)
		if (r->probes[i].busy && r->probes[i].conn == c)
			return;  /* a probe connection we opened: not a peer to ask */
	for (uint32_t i = 0; i < pc->n; i++)
		if (kw_peer_id_equal(kw_conn_peer_id(pc->c[i]), kw_conn_peer_id(c)))
			return;  /* one question per peer, however many connections we share */
	if (r->cfg.candidate && !r->cfg.candidate(r->cfg.candidate_arg, c))
		return;
	pc->c[pc->n++] = c;
}

int kw_hm_reach_check(struct kw_hm_reach *r, kw_hm_reach_done_fn cb, void *user)
{
	struct pick_ctx pc;
	uint8_t req[KW_HM_REACH_REQ_MAX];
	long n;

	if (r->checking)
		return -KW_EBUSY;
	memset(&pc, 0, sizeof(pc));
	pc.r = r;
	memset(&r->res, 0, sizeof(r->res));
	r->done = cb;
	r->done_user = user;
	r->checking = true;
	r->pending = 1;  /* held until every call is started, so a quick failure cannot finish */
	r->st.checks_out++;
	kw_swarm_foreach_conn(r->sw, pick, &pc);
	n = kw_hm_reach_encode_req(kw_swarm_peer_id(r->sw), req, sizeof(req));
	for (uint32_t i = 0; i < pc.n && n > 0; i++) {
		struct ask *a = &r->asks[i];

		a->r = r;
		a->pending = true;
		r->pending++;
		/* petals: wait_timeout * 2 when the peer must probe someone else */
		if (kw_hm_call(r->hm, pc.c[i], KW_HM_REACH_NAME, req, (size_t)n,
			       2 * r->cfg.timeout_ms, on_ask, a) < 0) {
			a->pending = false;
			r->pending--;
			continue;
		}
		r->res.asked++;
		r->st.asked++;
	}
	if (--r->pending == 0)
		check_finish(r);
	return 0;
}

static void on_conn_down(struct kw_swarm *sw, struct kw_conn *c, int reason, void *arg)
{
	struct kw_hm_reach *r = arg;

	(void)sw;
	(void)reason;
	for (uint32_t i = 0; i < r->cfg.probes; i++)
		if (r->probes[i].busy && r->probes[i].conn == c) {
			r->probes[i].conn = NULL;
			if (r->probes[i].closing) {
				r->probes[i].closing = false;
				probe_release_if_idle(&r->probes[i]);
			}
		}
}

/* ---- create ----------------------------------------------------------------------------- */

int kw_hm_reach_create(struct kw_swarm *sw, struct kw_hm *hm, const struct kw_hm_reach_config *cfg,
		       struct kw_hm_reach **out)
{
	struct kw_node *n = kw_swarm_node(sw);
	struct kw_hm_reach *r;
	int ret;

	r = kw_arena_alloc(&n->arena, sizeof(*r), 16);
	if (!r)
		return -KW_ENOMEM;
	memset(r, 0, sizeof(*r));
	r->sw = sw;
	r->hm = hm;
	r->loop = &n->loop;
	if (cfg)
		r->cfg = *cfg;
	else
		kw_hm_reach_config_default(&r->cfg);
	if (!r->cfg.probes || !r->cfg.timeout_ms || !r->cfg.ask_max ||
	    r->cfg.ask_max > KW_HM_REACH_ASK_MAX)
		return -KW_EINVAL;
	r->probes = kw_arena_alloc(&n->arena, sizeof(*r->probes) * r->cfg.probes, 16);
	if (!r->probes)
		return -KW_ENOMEM;
	memset(r->probes, 0, sizeof(*r->probes) * r->cfg.probes);
	for (uint32_t i = 0; i < r->cfg.probes; i++) {
		r->probes[i].r = r;
		kw_timer_init(&r->probes[i].timer, probe_on_timer, &r->probes[i]);
	}
	r->watcher.on_down = on_conn_down;
	r->watcher.arg = r;
	kw_swarm_add_watcher(sw, &r->watcher);
	ret = kw_hm_register_unary(hm, KW_HM_REACH_NAME, on_check, on_cancel, r,
				   r->cfg.timeout_ms + 1000);
	if (ret < 0)
		return ret;
	*out = r;
	return 0;
}
