/*
 * The `net` entry of the init table (app/initcalls.def): loads (or on first start creates)
 * <data_dir>/identity.key, creates the swarm from the node arena with the configured limits,
 * registers identify and ping, creates the Kademlia DHT node (server or client mode, the
 * configured bootstrap peers), and listens on every configured address. A listen address
 * that cannot be opened, or a bootstrap peer that is not a multiaddr with /p2p/, fails the
 * start with a message naming it (a node that silently listens nowhere is worse).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/keyfile.h>
#include <kw/net/multiaddr.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

/* `announce`: identify advertises these instead of the listen addresses (config.c checked
 * them; a failure here is a bug or an address too long for identify, named in the log). */
static int set_announce(struct kw_app *app)
{
	struct kw_multiaddr ma[KW_CONFIG_LISTEN_MAX];
	int i, ret;

	for (i = 0; i < app->cfg.n_announce; i++) {
		ret = kw_maddr_from_text(app->cfg.announce[i], &ma[i], NULL, 0);
		if (ret < 0) {
			KW_LOG_ERR(net, "announce %s: %s", app->cfg.announce[i], kw_strerror(ret));
			return ret;
		}
		KW_LOG_INF(net, "announcing %s to peers instead of the listen addresses",
			   app->cfg.announce[i]);
	}
	ret = kw_identify_set_announce(app->id, ma, (size_t)app->cfg.n_announce);
	if (ret < 0)
		KW_LOG_ERR(net, "cannot announce the configured addresses: %s", kw_strerror(ret));
	return ret;
}

int kw_app_net_init(struct kw_node *n);
void kw_app_net_shutdown(struct kw_node *n);

#ifdef CONFIG_KW_NET_KAD_SWARM
static int kad_init(struct kw_node *n, struct kw_app *app)
{
	struct kw_kad_cfg kc;
	struct kw_multiaddr ma;
	char why[KW_MADDR_ERR_MAX];
	int ret, i;

	kw_kad_cfg_default(&kc);
	kc.self = kw_swarm_peer_id(app->sw);
	kc.client_mode = app->cfg.dht_client;
	kc.key = kw_swarm_key(app->sw);
	ret = kw_kad_swarm_create(app->sw, app->id, &n->arena, &kc, &app->kad);
	if (ret < 0) {
		KW_LOG_ERR(net, "cannot start the DHT: %s", kw_strerror(ret));
		return ret;
	}
	for (i = 0; i < app->cfg.n_bootstrap; i++) {
		const char *b = app->cfg.bootstrap[i];

		why[0] = '\0';
		ret = kw_config_check_peer_addr(b, why, sizeof(why));
		if (ret == 0)
			ret = kw_maddr_from_text(b, &ma, why, sizeof(why));
		if (ret == 0)
			ret = kw_kad_bootstrap_add(app->kad, &ma);
		if (ret < 0) {
			KW_LOG_ERR(net, "bootstrap peer %s%s: %s", b,
				   app->cfg.bootstrap_is_default ? " (CONFIG_KW_APP_BOOTSTRAP)" : "",
				   why[0] ? why : kw_strerror(ret));
			return ret;
		}
	}
	KW_LOG_INF(net, "DHT %s mode, %d bootstrap peer%s", kc.client_mode ? "client" : "server",
		   app->cfg.n_bootstrap, app->cfg.n_bootstrap == 1 ? "" : "s");
	return 0;
}
#endif

int kw_app_identity(const char *data_dir, bool make_dir, struct kw_privkey *key, char *why,
		    size_t cap)
{
	enum kw_key_type type;
	char err[160];
	bool created = false;
	int bits, ret;

	if (make_dir && mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(why, cap, "cannot create data directory %s: %s", data_dir, strerror(-ret));
		return ret;
	}
	kw_keyfile_default_type(&type, &bits);
	err[0] = '\0';
	ret = kw_keyfile_load_or_create(data_dir, type, bits, key, &created, err, sizeof(err));
	if (ret < 0)
		snprintf(why, cap, "identity key in %s: %s", data_dir, err[0] ? err : kw_strerror(ret));
	return ret;
}

int kw_app_net_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_privkey key;
	char why[256];
	int ret, i;

	ret = kw_app_identity(app->cfg.data_dir, false, &key, why, sizeof(why));
	if (ret < 0) {
		KW_LOG_ERR(net, "%s (%s)", why, kw_strerror(ret));
		return ret;
	}
	ret = kw_swarm_create(n, &key, &app->cfg.swarm, &app->sw);
	memset(&key, 0, sizeof(key));  /* the swarm keeps its own copy */
	if (ret < 0)
		return ret;
	if (IS_ENABLED(CONFIG_KW_NET_IDENTIFY)) {
		ret = kw_identify_init(app->sw, &app->id);
		if (ret < 0)
			goto fail;
		ret = set_announce(app);
		if (ret < 0)
			goto fail;
	}
	if (IS_ENABLED(CONFIG_KW_NET_PING)) {
		ret = kw_ping_register(app->sw);
		if (ret < 0)
			goto fail;
	}
#ifdef CONFIG_KW_NET_KAD_SWARM
	ret = kad_init(n, app);
	if (ret < 0)
		goto fail;
#endif
	for (i = 0; i < app->cfg.n_listen; i++) {
		ret = kw_swarm_listen(app->sw, app->cfg.listen[i]);
		if (ret < 0) {
			KW_LOG_ERR(net, "cannot listen on %s: %s", app->cfg.listen[i],
				   kw_strerror(ret));
			goto fail;
		}
	}
	return 0;
fail:
	kw_app_net_shutdown(n);
	return ret;
}

void kw_app_net_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (!app || !app->sw)
		return;
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (app->kad)
		kw_kad_swarm_destroy(app->kad);  /* before the swarm: its streams report to it */
	app->kad = NULL;
#endif
	kw_swarm_destroy(app->sw);
	app->sw = NULL;
	app->id = NULL;
}
