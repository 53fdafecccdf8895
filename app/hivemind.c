/*
 * The `hivemind` entry of the init table (app/initcalls.def, after `net`): when the config
 * says `hivemind = on`, creates the Hivemind RPC layer and DHT (net/hivemind) on the node's
 * swarm, in client mode with `hivemind_client = on`, and bootstraps from every
 * `hivemind_bootstrap` peer (a validate ping, then a search for our own id, as hivemind's
 * DHTNode.create does). While the routing table stays empty the bootstrap is retried every
 * RETRY_MS (hivemind gives up at start; a board that boots before its peers should not).
 *
 * It also fills the DHT's address book: every connection identify describes gives its
 * listen addresses, and a PeerID the DHT cannot reach otherwise is looked up with kad
 * FIND_NODE when the Kademlia DHT is built in (p2pd does the same through its peerstore
 * and libp2p kad; hivemind's FindResult carries no addresses); a lookup that misses right
 * after joining is run again (resolve_go, on_kad_found). See doc/net-hivemind.md.
 *
 * The `hm_announce` entry (after `policy`) publishes the node's server records when the
 * config names what it serves (hivemind_prefix + hivemind_blocks, hivemind_experts; when the
 * node itself serves blocks or experts, the `serve` entry announces what it loaded instead,
 * through kw_app_hm_announce_begin with app/serve_app.c's description): the
 * announcer of net/hivemind/records.c, ONLINE while the policy lets the node contribute and
 * OFFLINE (a newer record, so peers see it at once) when the policy drains it or the node
 * stops (SIGTERM, SIGINT, or the loop ending on any other path: kw_app_hm_before_stop), as
 * Petals' ModuleAnnouncerThread does on shutdown. A change of what it announces after the
 * start (the served span, our listen addresses or protocols) is pushed as a new round within
 * PUSH_DELAY_MS, at most one push per PUSH_GAP_MS, instead of waiting for the next period.
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/policy.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#ifdef CONFIG_KW_NET_KAD_SWARM
#include <kw/net/kad.h>
#endif

#include "hivemind.h"
#include "reach.h"

int kw_app_hivemind_init(struct kw_node *n);
void kw_app_hivemind_shutdown(struct kw_node *n);

#define RETRY_MS   5000u
#define RESOLVES   8          /* kad lookups for the DHT at once */
#define RESOLVE_WAIT_MS 3000u /* a lookup waits this long for kad's table to hold a peer */
#define RESOLVE_POLL_MS 50u
#define RESOLVE_RETRY_MS 200u
#define RESOLVE_TRIES   5     /* kad lookups per PeerID the DHT asks us to resolve */
#define PUSH_DELAY_MS 500u    /* a burst of changes (several addresses at once) is one push */
#define PUSH_GAP_MS   2000u   /* at most one pushed round per 2 s, however often things change */

struct resolve {
	struct kw_app_hm *st;
	kw_hm_dht_resolved_fn done;
	void *ctx;
	struct kw_peer_id pid;
	struct kw_timer wait;         /* kad's table empty: look again when it holds a peer */
	uint64_t until_ms;            /* give up waiting for kad's table after this */
	size_t table_at_start;        /* kad's table size when the last lookup started */
	unsigned tries;
	bool busy;
};

struct kw_app_hm {
	struct kw_kad *kad;
	struct kw_hm_dht *d;
	struct kw_node *n;
	struct kw_identify_observer obs;
	struct kw_timer retry;
	const char (*boot)[KW_CONFIG_PEER_ADDR_MAX];
	int n_boot;
	struct resolve res[RESOLVES];
	/* the announcer (hm_announce entry) */
	bool announcing;
	struct kw_hm_announcer ann;
	struct kw_hm_announce_cfg acfg;
	struct kw_policy *policy;
	struct kw_policy_client pc;
	struct kw_timer stop_timer;        /* bounds the OFFLINE announcement before a stop */
	void (*then)(struct kw_node *n);
	uint64_t drains, resumes;
	bool offline_sent;                 /* the stop's OFFLINE round went out: not twice */
	/* pushing a change at once (kw_app_hm_announce_changed) */
	struct kw_timer push_timer;
	struct kw_conn_watcher cw;         /* our listen addresses or protocols changed */
	uint64_t last_push_ms;
	bool pushed;                       /* last_push_ms is set */
	struct kw_app_hm_push_stats push;
};

/* identify told us what a connection's remote listens on: remember it for the DHT */
static void on_identified(struct kw_identify *id, struct kw_conn *c, bool push, void *arg)
{
	struct kw_hm_dht *d = arg;

	(void)push;
	kw_app_hm_learn(d, id, c);
}

void kw_app_hm_learn(struct kw_hm_dht *d, struct kw_identify *id, struct kw_conn *c)
{
	const struct kw_identify_remote *r = kw_identify_remote(id, c);
	const struct kw_peer_id *pid = kw_conn_peer_id(c);
	char text[KW_MADDR_TEXT_MAX];

	if (!r || !r->have || !pid)
		return;
	for (uint8_t i = 0; i < r->n_addrs; i++) {
		struct kw_multiaddr ma;

		if (kw_maddr_from_bytes(r->addrs[i], r->addr_len[i], &ma, NULL, 0) == 0 &&
		    kw_maddr_to_text(&ma, text, sizeof(text)) == 0)
			(void)kw_hm_dht_add_addr(d, pid->bytes, pid->len, text);
	}
}

#ifdef CONFIG_KW_NET_KAD_SWARM
static int resolve_go(struct resolve *rs);
static void on_kad_found(struct kw_kad *k, const struct kw_kad_result *r, void *user);

static void resolve_end(struct resolve *rs, int err)
{
	rs->busy = false;
	rs->done(rs->ctx, err);
}

static void on_resolve_wait(struct kw_loop *l, struct kw_timer *t)
{
	struct resolve *rs = t->arg;
	int err;

	(void)l;
	err = resolve_go(rs);
	if (err < 0)
		resolve_end(rs, err);
}

/*
 * Starts the kad lookup of rs->pid, or waits (RESOLVE_POLL_MS at a time, until rs->until_ms)
 * while kad's table is empty: a lookup then has nobody to ask and ends at once without the
 * peer. That is the state of a node whose kad bootstrap has not answered yet (a transient
 * client right after it joined: identify has not said its bootstrap peer serves kad, and the
 * bootstrap FIND_NODE is still out). A failed request does not empty kad's table (it keeps
 * its last working contact, doc/net-kad.md), so this wait is only about joining.
 */
static int resolve_go(struct resolve *rs)
{
	struct kw_loop *l = &rs->st->n->loop;
	size_t have = kw_kad_rt_size(kw_kad_table(rs->st->kad));
	int err;

	if (have == 0 && kw_loop_now(l) < rs->until_ms) {
		KW_LOG_DBG(hivemind, "kad knows no peer yet: the lookup of a Hivemind peer waits");
		return kw_timer_start(l, &rs->wait, RESOLVE_POLL_MS);
	}
	rs->table_at_start = have;
	rs->tries++;
	err = kw_kad_find_peer(rs->st->kad, &rs->pid, on_kad_found, rs);
	if (err == -KW_ELIMIT && kw_loop_now(l) < rs->until_ms)
		return kw_timer_start(l, &rs->wait, RESOLVE_POLL_MS); /* no lookup slot now */
	return err;
}

static void on_kad_found(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct resolve *rs = user;
	char text[KW_MADDR_TEXT_MAX];
	int added = 0;
	size_t have;

	(void)k;
	for (size_t i = 0; i < r->n_peers; i++) {
		const struct kw_kad_peer *p = &r->peers[i];

		if (p->id_len != rs->pid.len || memcmp(p->id, rs->pid.bytes, p->id_len))
			continue;
		for (uint8_t j = 0; j < p->n_addrs; j++) {
			struct kw_multiaddr ma;

			if (kw_maddr_from_bytes(p->addrs[j], p->addr_len[j], &ma, NULL, 0) == 0 &&
			    kw_maddr_to_text(&ma, text, sizeof(text)) == 0 &&
			    kw_hm_dht_add_addr(rs->st->d, rs->pid.bytes, rs->pid.len, text) == 0)
				added++;
		}
	}
	have = kw_kad_rt_size(kw_kad_table(rs->st->kad));
	KW_LOG_DBG(hivemind, "kad lookup %u of a Hivemind peer: %d address%s (%s; kad table %zu, "
		   "%zu at its start)", rs->tries, added, added == 1 ? "" : "es",
		   kw_strerror(r->err), have, rs->table_at_start);
	/* Not found: a lookup right after joining asks only the bootstrap peer, which may not
	 * know the peer yet (its own table fills from identify as the peer connects); a moment
	 * later kad knows more. Look again, RESOLVE_RETRY_MS later (at once when the table grew
	 * meanwhile), at most RESOLVE_TRIES lookups in RESOLVE_WAIT_MS: from the loop, as the
	 * lookup's slot is released after this returns. The DHT's connect deadline
	 * (connect_timeout_ms) may end the search's wait first; our answer then only gives
	 * the verdict on the peer. */
	if (!added && rs->tries < RESOLVE_TRIES && kw_loop_now(&rs->st->n->loop) < rs->until_ms &&
	    kw_timer_start(&rs->st->n->loop, &rs->wait,
			   have > rs->table_at_start ? 0 : RESOLVE_RETRY_MS) == 0)
		return;
	resolve_end(rs, added ? 0 : (r->err ? r->err : -KW_ENOENT));
}

static int kad_resolve(void *arg, const uint8_t *peer, size_t len, kw_hm_dht_resolved_fn done,
		       void *ctx)
{
	struct kw_app_hm *st = arg;
	struct resolve *rs = NULL;
	int err;

	if (!st->kad || len > sizeof(rs->pid.bytes))
		return -KW_ENOTSUP;
	for (int i = 0; i < RESOLVES && !rs; i++)
		if (!st->res[i].busy)
			rs = &st->res[i];
	if (!rs)
		return -KW_ELIMIT;
	rs->st = st;
	rs->done = done;
	rs->ctx = ctx;
	rs->pid.len = (uint8_t)len;
	memcpy(rs->pid.bytes, peer, len);
	rs->tries = 0;
	rs->until_ms = kw_loop_now(&st->n->loop) + RESOLVE_WAIT_MS;
	kw_timer_init(&rs->wait, on_resolve_wait, rs);
	rs->busy = true;
	err = resolve_go(rs);
	if (err < 0)
		rs->busy = false;
	return err;
}
#endif

static void on_boot(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p, void *user)
{
	(void)d;
	(void)user;
	if (err < 0)
		KW_LOG_WRN(hivemind, "Hivemind bootstrap peer did not answer: %s; retrying while "
			   "the routing table is empty", kw_strerror(err));
	else if (p->client)
		KW_LOG_WRN(hivemind, "Hivemind bootstrap peer is a client-mode node: it cannot "
			   "introduce us to the DHT");
}

static void bootstrap(struct kw_app_hm *st)
{
	for (int i = 0; i < st->n_boot; i++) {
		int err = kw_hm_dht_bootstrap(st->d, st->boot[i], on_boot, st);

		if (err < 0)
			KW_LOG_WRN(hivemind, "Hivemind bootstrap %s: %s", st->boot[i],
				   kw_strerror(err));
	}
}

static void on_retry(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_hm *st = t->arg;
	struct kw_hm_dht_contact c;
	struct kw_hm_dhtid any;

	memset(&any, 0, sizeof(any));
	if (kw_hm_rt_nearest(kw_hm_dht_rt(st->d), &any, 1, NULL, &c) == 0)
		bootstrap(st);
	kw_timer_start(l, t, RETRY_MS);
}

int kw_app_hm_start(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
		    struct kw_kad *kad, bool client, const char (*boot)[KW_CONFIG_PEER_ADDR_MAX],
		    int n_boot, struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out)
{
	return kw_app_hm_start_connect(n, sw, id, kad, client, 0, boot, n_boot, hm, d, out);
}

int kw_app_hm_start_connect(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
			    struct kw_kad *kad, bool client, uint32_t connect_timeout_ms,
			    const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n_boot,
			    struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out)
{
	struct kw_hm_dht_config dc;
	int err = kw_hm_dht_config_default(&dc);

	if (err < 0)
		return err;
	dc.client_mode = client;
	if (connect_timeout_ms)
		dc.connect_timeout_ms = connect_timeout_ms;
	return kw_app_hm_start_cfg(n, sw, id, kad, &dc, boot, n_boot, hm, d, out);
}

int kw_app_hm_start_cfg(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
			struct kw_kad *kad, const struct kw_hm_dht_config *base,
			const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n_boot,
			struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out)
{
	struct kw_app_hm *st = kw_arena_alloc(&n->arena, sizeof(*st), 16);
	struct kw_hm_dht_config dc = *base;
	int err;

	if (!st)
		return -KW_ENOMEM;
	memset(st, 0, sizeof(*st));
	st->kad = kad;
	st->n = n;
	st->boot = boot;
	st->n_boot = n_boot;
	err = kw_hm_create(sw, NULL, hm);
	if (err < 0)
		return err;
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (kad) {
		dc.resolve = kad_resolve;
		dc.resolve_arg = st;
	}
#endif
	err = kw_hm_dht_create(sw, *hm, &dc, d);
	if (err < 0)
		return err;
	st->d = *d;
	if (id) {
		st->obs.on_identified = on_identified;
		st->obs.arg = *d;
		kw_identify_add_observer(id, &st->obs);
	}
	bootstrap(st);
	kw_timer_init(&st->retry, on_retry, st);
	if (n_boot)
		kw_timer_start(&n->loop, &st->retry, RETRY_MS);
	*out = st;
	return 0;
}

void kw_app_hm_stop(struct kw_app_hm *st)
{
	if (!st)
		return;
	kw_timer_cancel(&st->n->loop, &st->retry);
#ifdef CONFIG_KW_NET_KAD_SWARM
	for (int i = 0; i < RESOLVES; i++)
		if (st->res[i].busy)
			kw_timer_cancel(&st->n->loop, &st->res[i].wait);
#endif
}

static struct kw_kad *app_kad(struct kw_app *app)
{
#ifdef CONFIG_KW_NET_KAD_SWARM
	return app->kad;
#else
	(void)app;
	return NULL;
#endif
}

int kw_app_hivemind_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	int err;

	if (!app || !app->cfg.hivemind)
		return 0;
	if (!app->sw) {
		KW_LOG_ERR(hivemind, "hivemind = on needs networking (no swarm)");
		return -KW_EINVAL;
	}
	err = kw_app_hm_start(n, app->sw, app->id, app_kad(app), app->cfg.hivemind_client,
			      (const char (*)[KW_CONFIG_PEER_ADDR_MAX])app->cfg.hivemind_bootstrap,
			      app->cfg.n_hivemind_bootstrap, &app->hm, &app->hm_dht, &app->hm_app);
	if (err < 0) {
		KW_LOG_ERR(hivemind, "cannot start the Hivemind DHT: %s", kw_strerror(err));
		return err;
	}
#ifdef CONFIG_KW_NET_HIVEMIND_REACH
	err = kw_app_reach_start(n, app);  /* rpc_check, and our own dial-back check */
	if (err < 0) {
		KW_LOG_ERR(hivemind, "cannot start the reachability check: %s", kw_strerror(err));
		return err;
	}
#endif
	KW_LOG_INF(hivemind, "Hivemind DHT %s mode, %d bootstrap peer%s",
		   app->cfg.hivemind_client ? "client" : "server", app->cfg.n_hivemind_bootstrap,
		   app->cfg.n_hivemind_bootstrap == 1 ? "" : "s");
	return 0;
}

void kw_app_hivemind_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	/* the RPC layer and DHT live in the node's arena and go with the swarm (net's
	 * shutdown runs after this one) */
	if (app) {
#ifdef CONFIG_KW_NET_HIVEMIND_REACH
		kw_app_reach_stop(app);
#endif
		kw_app_hm_stop(app->hm_app);
		app->hm_app = NULL;
		app->hm = NULL;
		app->hm_dht = NULL;
	}
}

/* ---- the announcer: our server records ------------------------------------------------ */

static void policy_drained(void *arg)
{
	struct kw_app_hm *st = arg;

	kw_policy_drain_done(st->policy, &st->pc);
}

/* the policy stops the node contributing: peers must not route to it any more */
static void hm_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_app_hm *st = c->arg;

	(void)p;
	st->drains++;
	KW_LOG_INF(hivemind, "announcing OFFLINE (the policy pauses the node)");
	if (kw_hm_announce_set_state(&st->ann, KW_HM_STATE_OFFLINE, policy_drained, st) < 0)
		kw_policy_drain_done(st->policy, &st->pc);   /* stopped: nothing to announce */
}

static void hm_resume(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_app_hm *st = c->arg;

	(void)p;
	st->resumes++;
	KW_LOG_INF(hivemind, "announcing ONLINE again (the policy resumes the node)");
	(void)kw_hm_announce_set_state(&st->ann, KW_HM_STATE_ONLINE, NULL, NULL);
}

/* The OFFLINE announcement before a stop is over (stored, or out of time): stop now. */
static void stop_now(struct kw_app_hm *st)
{
	void (*then)(struct kw_node *n) = st->then;

	kw_timer_cancel(&st->n->loop, &st->stop_timer);
	st->then = NULL;
	if (then)
		then(st->n);
}

static void on_offline_stored(void *arg)
{
	struct kw_app_hm *st = arg;

	KW_LOG_INF(hivemind, "OFFLINE announced (%llu record%s stored, %llu failed)",
		   (unsigned long long)st->ann.stats.stores_ok,
		   st->ann.stats.stores_ok == 1 ? "" : "s",
		   (unsigned long long)st->ann.stats.stores_failed);
	stop_now(st);
}

static void on_stop_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_hm *st = t->arg;

	(void)l;
	KW_LOG_WRN(hivemind, "OFFLINE announcement not finished in time; stopping anyway (the "
		   "records expire on their own)");
	stop_now(st);
}

int kw_app_hm_before_stop(struct kw_node *n, void (*then)(struct kw_node *n))
{
	struct kw_app *app = kw_app_of(n);
	struct kw_app_hm *st = app ? app->hm_app : NULL;
	uint32_t ms = n->cfg.shutdown_drain_ms;

	if (!st || !st->announcing || st->then || st->offline_sent)
		return -KW_ENOENT;
	/* the swarm's drain closes every connection: the OFFLINE records go out first */
	st->ann.stats.stores_ok = st->ann.stats.stores_failed = 0;
	if (kw_hm_announce_set_state(&st->ann, KW_HM_STATE_OFFLINE, on_offline_stored, st) < 0)
		return -KW_ENOENT;
	KW_LOG_INF(hivemind, "stopping: announcing OFFLINE first (up to %u ms)", ms);
	st->offline_sent = true;
	kw_timer_cancel(&n->loop, &st->push_timer);   /* an ONLINE push must not follow it */
	st->then = then;
	kw_timer_init(&st->stop_timer, on_stop_timeout, st);
	(void)kw_timer_start(&n->loop, &st->stop_timer, ms);
	return 0;
}

/* ---- pushing a change at once ------------------------------------------------------------ */

static void on_push(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_hm *st = t->arg;

	/* OFFLINE (paused by the policy, or stopping) stays as it is: the new span goes out with
	 * the next ONLINE round */
	if (!st->announcing || st->then || st->offline_sent ||
	    st->ann.state == KW_HM_STATE_OFFLINE) {
		st->push.skipped++;
		return;
	}
	if (kw_hm_announce_set_state(&st->ann, st->ann.state, NULL, NULL) < 0) {
		st->push.skipped++;
		return;
	}
	st->push.pushes++;
	st->pushed = true;
	st->last_push_ms = kw_loop_now(l);
	KW_LOG_DBG(hivemind, "what we announce changed: pushed a new round");
}

static void push_soon(struct kw_app_hm *st)
{
	uint64_t now = kw_loop_now(&st->n->loop), at = now + PUSH_DELAY_MS;

	st->push.changes++;
	if (!st->announcing || kw_timer_armed(&st->push_timer))
		return;   /* the push already due carries this change too */
	if (st->pushed && st->last_push_ms + PUSH_GAP_MS > at)
		at = st->last_push_ms + PUSH_GAP_MS;
	(void)kw_timer_start(&st->n->loop, &st->push_timer, at - now);
}

/* the swarm's listen addresses or protocols changed (inside that call: only schedule) */
static void on_local_change(struct kw_swarm *sw, void *arg)
{
	(void)sw;
	push_soon(arg);
}

void kw_app_hm_announce_changed(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (app && app->hm_app)
		push_soon(app->hm_app);
}

int kw_app_hm_announce_span(struct kw_node *n, uint32_t start, uint32_t end)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_app_hm *st = app ? app->hm_app : NULL;

	if (!st || !st->announcing || !st->acfg.prefix[0])
		return -KW_ENOENT;
	if (end <= start)
		return -KW_EINVAL;
	if (st->acfg.start_block == start && st->acfg.end_block == end)
		return 0;
	st->acfg.start_block = st->ann.cfg.start_block = start;
	st->acfg.end_block = st->ann.cfg.end_block = end;
	push_soon(st);
	return 0;
}

const struct kw_app_hm_push_stats *kw_app_hm_push_stats(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	return app && app->hm_app ? &app->hm_app->push : NULL;
}

/* The announcer's configuration from the config keys. Return: 0, 1 (nothing to announce) or
 * -KW_EINVAL with the reason logged. */
static int announce_cfg(const struct kw_config *c, struct kw_hm_announce_cfg *ac)
{
	memset(ac, 0, sizeof(*ac));
	if (!c->hivemind_prefix[0] && !c->n_hivemind_experts) {
		if (c->hivemind_block_end) {
			KW_LOG_ERR(hivemind, "hivemind_blocks needs hivemind_prefix (the model's "
				   "Petals dht_prefix)");
			return -KW_EINVAL;
		}
		return 1;
	}
	if (c->hivemind_prefix[0] && !c->hivemind_block_end) {
		KW_LOG_ERR(hivemind, "hivemind_prefix needs hivemind_blocks = START:END (the "
			   "blocks this node serves)");
		return -KW_EINVAL;
	}
	snprintf(ac->prefix, sizeof(ac->prefix), "%s", c->hivemind_prefix);
	ac->start_block = c->hivemind_block_start;
	ac->end_block = c->hivemind_block_end;
	/* the figure the owner configured (0 when none: nothing measured yet, see
	 * doc/net-hivemind.md); no other ServerInfo field is claimed */
	ac->info.throughput = c->hivemind_throughput;
	kw_app_hm_announce_common(c, ac);
	for (int i = 0; i < c->n_hivemind_experts && i < KW_HM_ANNOUNCE_EXPERTS; i++)
		snprintf(ac->experts[i], sizeof(ac->experts[i]), "%s", c->hivemind_experts[i]);
	ac->n_experts = (uint32_t)c->n_hivemind_experts;
	return 0;
}

void kw_app_hm_announce_common(const struct kw_config *c, struct kw_hm_announce_cfg *ac)
{
	if (c->hivemind_public_name[0]) {
		ac->info.has |= KW_HM_SI_PUBLIC_NAME;
		snprintf(ac->info.public_name, sizeof(ac->info.public_name), "%s",
			 c->hivemind_public_name);
	}
	ac->model.num_blocks = c->hivemind_num_blocks;
	if (c->hivemind_repository[0]) {
		ac->model.has_repository = true;
		snprintf(ac->model.repository, sizeof(ac->model.repository), "%s",
			 c->hivemind_repository);
	}
	ac->update_period_s = c->hivemind_update_period_s;
	ac->expiration_s = c->hivemind_expiration_s;
}

int kw_app_hm_announce_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_app_hm *st = app ? app->hm_app : NULL;
	struct kw_hm_announce_cfg ac;
	int err;

	if (!st || !app->hm_dht) {
		if (app && (app->cfg.hivemind_prefix[0] || app->cfg.n_hivemind_experts))
			KW_LOG_WRN(hivemind, "hivemind_prefix / hivemind_experts are set but "
				   "hivemind = off: nothing is announced");
		return 0;
	}
	if (IS_ENABLED(CONFIG_KW_APP_SERVE) &&
	    (app->cfg.serve_model[0] || app->cfg.serve_experts[0])) {
		/* the `serve` entry announces what it loaded (kw_app_hm_announce_begin): the
		 * records must say what is served, not what hivemind_blocks claims */
		if (app->cfg.hivemind_prefix[0] || app->cfg.n_hivemind_experts)
			KW_LOG_WRN(hivemind, "serve_* keys are set: the records announce what is "
				   "served; hivemind_prefix / hivemind_blocks / hivemind_experts are "
				   "ignored");
		return 0;
	}
	err = announce_cfg(&app->cfg, &ac);
	if (err)
		return err < 0 ? err : 0;
	return kw_app_hm_announce_begin(n, st, app->sw, app->policy, &ac);
}

int kw_app_hm_announce_begin(struct kw_node *n, struct kw_app_hm *st, struct kw_swarm *sw,
			     struct kw_policy *policy, const struct kw_hm_announce_cfg *ac)
{
	char peer[KW_HM_REC_PEER_MAX];
	uint8_t state = KW_HM_STATE_ONLINE;
	int err;

	if (!st || st->announcing)
		return -KW_EINVAL;
	st->acfg = *ac;
	if (kw_peer_id_to_text(kw_swarm_peer_id(sw), peer, sizeof(peer)) < 0)
		return -KW_EINVAL;
	if (policy && kw_policy_status(policy)->state != KW_POLICY_CONTRIBUTING)
		state = KW_HM_STATE_OFFLINE;     /* paused from the start: say so, serve nothing */
	err = kw_hm_announce_start(&st->ann, st->d, &n->loop, peer, &st->acfg, state);
	if (err < 0) {
		KW_LOG_ERR(hivemind, "cannot announce the configured records: %s",
			   kw_strerror(err));
		return err;
	}
	st->announcing = true;
	kw_timer_init(&st->push_timer, on_push, st);
	kw_timer_init(&st->stop_timer, on_stop_timeout, st);  /* shutdown cancels it, armed or not */
	st->cw.on_local_change = on_local_change;
	st->cw.arg = st;
	kw_swarm_add_watcher(sw, &st->cw);
	if (policy) {
		st->policy = policy;
		st->pc.name = "hivemind";
		st->pc.drain = hm_drain;
		st->pc.resume = hm_resume;
		st->pc.arg = st;
		kw_policy_add_client(policy, &st->pc);
	}
	KW_LOG_INF(hivemind, "announcing %s: %u record%s every %u s (%s)",
		   kw_hm_state_name(state), kw_hm_announce_count(&st->ann, KW_HM_STATE_ONLINE),
		   kw_hm_announce_count(&st->ann, KW_HM_STATE_ONLINE) == 1 ? "" : "s",
		   st->acfg.update_period_s, st->acfg.prefix[0] ? st->acfg.prefix : "experts");
	return 0;
}

void kw_app_hm_announce_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (app)
		kw_app_hm_announce_end(app->hm_app);
}

void kw_app_hm_announce_end(struct kw_app_hm *st)
{
	if (st && st->announcing) {
		kw_timer_cancel(&st->n->loop, &st->stop_timer);
		kw_timer_cancel(&st->n->loop, &st->push_timer);
		kw_hm_announce_stop(&st->ann);
		st->announcing = false;
	}
}

int kw_app_hm_announce_offline(struct kw_app_hm *st, void (*done)(void *arg), void *arg)
{
	int err;

	if (!st || !st->announcing || st->offline_sent)
		return -KW_ENOENT;
	err = kw_hm_announce_set_state(&st->ann, KW_HM_STATE_OFFLINE, done, arg);
	if (err == 0) {
		st->offline_sent = true;
		kw_timer_cancel(&st->n->loop, &st->push_timer);   /* no ONLINE push after it */
	}
	return err;
}

int kw_app_hm_ping_peer(struct kw_hm_dht *d, const struct kw_peer_id *pid,
			kw_hm_dht_ping_cb cb, void *user)
{
	char text[160] = "/p2p/";
	int err = kw_peer_id_to_text(pid, text + 5, sizeof(text) - 5);

	if (err < 0)
		return err;
	return kw_hm_dht_ping(d, text, false, cb, user);
}

static void on_dial_ping(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p, void *user)
{
	(void)d; (void)p; (void)user;
	if (err < 0)
		KW_LOG_DBG(hivemind, "dial by PeerID: %s", kw_strerror(err));
}

int kw_app_hm_dial(void *dht, const struct kw_peer_id *pid)
{
	return kw_app_hm_ping_peer(dht, pid, on_dial_ping, NULL);
}
