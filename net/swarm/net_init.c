/*
 * The `net` entry of the init table (kernel/initcalls.def): loads (or on first start creates)
 * <data_dir>/identity.key, creates the swarm from the node arena, registers identify and
 * ping, and listens on every cfg.listen address. A listen address that cannot be opened fails
 * the start with a message naming it (a node that silently listens nowhere is worse).
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/identify.h>
#include <kw/net/keyfile.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#include "swarm_priv.h"

struct kw_net {
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_privkey key;   /* only during init; the swarm keeps its own copy */
};

struct kw_swarm *kw_swarm_of(struct kw_node *n)
{
	struct kw_net *net = (struct kw_net *)n->subsys[KW_SUBSYS_NET];

	return net ? net->sw : NULL;
}

int kw_net_init(struct kw_node *n)
{
	struct kw_net *net;
	enum kw_key_type type;
	char err[160];
	bool created = false;
	int bits, ret, i;

	net = (struct kw_net *)kw_arena_alloc(&n->arena, sizeof(*net), 16);
	if (!net)
		return -KW_ENOMEM;
	memset(net, 0, sizeof(*net));
	kw_keyfile_default_type(&type, &bits);
	err[0] = '\0';
	ret = kw_keyfile_load_or_create(n->cfg.data_dir, type, bits, &net->key, &created, err,
					sizeof(err));
	if (ret < 0) {
		KW_LOG_ERR(net, "identity key in %s: %s (%s)", n->cfg.data_dir,
			   err[0] ? err : "cannot load", kw_strerror(ret));
		return ret;
	}
	ret = kw_swarm_create(n, &net->key, NULL, &net->sw);
	memset(&net->key, 0, sizeof(net->key));
	if (ret < 0)
		return ret;
	if (IS_ENABLED(CONFIG_KW_NET_IDENTIFY)) {
		ret = kw_identify_init(net->sw, &net->id);
		if (ret < 0)
			return ret;
	}
	if (IS_ENABLED(CONFIG_KW_NET_PING)) {
		ret = kw_ping_register(net->sw);
		if (ret < 0)
			return ret;
	}
	for (i = 0; i < n->cfg.n_listen; i++) {
		ret = kw_swarm_listen(net->sw, n->cfg.listen[i]);
		if (ret < 0) {
			KW_LOG_ERR(net, "cannot listen on %s: %s", n->cfg.listen[i], kw_strerror(ret));
			kw_swarm_destroy(net->sw);
			return ret;
		}
	}
	n->subsys[KW_SUBSYS_NET] = net;
	return 0;
}

void kw_net_shutdown(struct kw_node *n)
{
	struct kw_net *net = (struct kw_net *)n->subsys[KW_SUBSYS_NET];

	if (!net)
		return;
	kw_swarm_destroy(net->sw);
	n->subsys[KW_SUBSYS_NET] = NULL;
}
