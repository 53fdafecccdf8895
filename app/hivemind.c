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
 * and libp2p kad; hivemind's FindResult carries no addresses). See doc/net-hivemind.md.
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
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

struct resolve {
	struct kw_app_hm *st;
	kw_hm_dht_resolved_fn done;
	void *ctx;
	struct kw_peer_id pid;
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
static void on_kad_found(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct resolve *rs = user;
	char text[KW_MADDR_TEXT_MAX];
	int added = 0;

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
	rs->busy = false;
	rs->done(rs->ctx, added ? 0 : (r->err ? r->err : -KW_ENOENT));
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
	rs->busy = true;
	err = kw_kad_find_peer(st->kad, &rs->pid, on_kad_found, rs);
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
	struct kw_app_hm *st = kw_arena_alloc(&n->arena, sizeof(*st), 16);
	struct kw_hm_dht_config dc;
	int err;

	if (!st)
		return -KW_ENOMEM;
	memset(st, 0, sizeof(*st));
	st->kad = kad;
	st->n = n;
	st->boot = boot;
	st->n_boot = n_boot;
	err = kw_hm_create(sw, NULL, hm);
	if (err == 0)
		err = kw_hm_dht_config_default(&dc);
	if (err < 0)
		return err;
	dc.client_mode = client;
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
	if (st)
		kw_timer_cancel(&st->n->loop, &st->retry);
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
