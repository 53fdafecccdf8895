/*
 * The `net` entry of the init table (app/initcalls.def): loads (or on first start creates)
 * <data_dir>/identity.key, creates the swarm from the node arena with the configured limits,
 * registers identify and ping, and listens on every configured address. A listen address
 * that cannot be opened fails the start with a message naming it (a node that silently
 * listens nowhere is worse).
 */
#include <string.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/identify.h>
#include <kw/net/keyfile.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

int kw_app_net_init(struct kw_node *n);
void kw_app_net_shutdown(struct kw_node *n);

int kw_app_net_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_privkey key;
	enum kw_key_type type;
	char err[160];
	bool created = false;
	int bits, ret, i;

	kw_keyfile_default_type(&type, &bits);
	err[0] = '\0';
	ret = kw_keyfile_load_or_create(app->cfg.data_dir, type, bits, &key, &created, err,
					sizeof(err));
	if (ret < 0) {
		KW_LOG_ERR(net, "identity key in %s: %s (%s)", app->cfg.data_dir,
			   err[0] ? err : "cannot load", kw_strerror(ret));
		return ret;
	}
	ret = kw_swarm_create(n, &key, &app->cfg.swarm, &app->sw);
	memset(&key, 0, sizeof(key));  /* the swarm keeps its own copy */
	if (ret < 0)
		return ret;
	if (IS_ENABLED(CONFIG_KW_NET_IDENTIFY)) {
		ret = kw_identify_init(app->sw, NULL);
		if (ret < 0)
			goto fail;
	}
	if (IS_ENABLED(CONFIG_KW_NET_PING)) {
		ret = kw_ping_register(app->sw);
		if (ret < 0)
			goto fail;
	}
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
	kw_swarm_destroy(app->sw);
	app->sw = NULL;
	return ret;
}

void kw_app_net_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (!app || !app->sw)
		return;
	kw_swarm_destroy(app->sw);
	app->sw = NULL;
}
