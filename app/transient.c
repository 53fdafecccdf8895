/*
 * The transient node of the one-shot commands (include/kw/app.h, kw_app_transient_open):
 * one place for the identity, loop, node, swarm and identify set-up that `kwnode dht` and
 * `kwnode hivemind` (and the commands that follow them) need before their own protocols,
 * and the kad (/ipfs/kad/1.0.0) the Petals client and server run for peer routing.
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/keyfile.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "client.h"

/* A transient node lives for seconds and talks to a handful of peers. */
#define TRANSIENT_CONNS_MAX 64u

int kw_app_transient_open(struct kw_app_transient *t, const char *prog,
			  const struct kw_config *cfg, size_t arena_bytes)
{
	struct kw_swarm_limits lim = cfg->swarm;
	struct kw_privkey key;
	char err[512];
	int ret;

	memset(t, 0, sizeof(*t));
	ret = kw_app_identity(cfg->data_dir, true, &key, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return ret;
	}
	ret = kw_sys_linux_open(&t->sys);
	if (ret < 0) {
		memset(&key, 0, sizeof(key));
		fprintf(stderr, "%s: cannot open epoll: %s\n", prog, kw_strerror(ret));
		return ret;
	}
	t->sys_open = true;
	lim.max_conns_in = KW_MIN(lim.max_conns_in, TRANSIENT_CONNS_MAX);
	lim.max_conns_out = KW_MIN(lim.max_conns_out, TRANSIENT_CONNS_MAX);
	t->n = kw_node_create_heap(arena_bytes, &t->sys.sys, NULL);
	ret = t->n ? kw_swarm_create(t->n, &key, &lim, &t->sw) : -KW_ENOMEM;
	memset(&key, 0, sizeof(key));  /* the swarm keeps its own copy */
	if (ret == 0 && IS_ENABLED(CONFIG_KW_NET_IDENTIFY))
		ret = kw_identify_init(t->sw, &t->id);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot start the node: %s\n", prog, kw_strerror(ret));
		kw_app_transient_close(t);
		return ret;
	}
	return 0;
}

void kw_app_transient_close(struct kw_app_transient *t)
{
	if (t->sw)
		kw_swarm_destroy(t->sw);
	kw_node_destroy_heap(t->n);
	if (t->sys_open)
		kw_sys_linux_close(&t->sys);
	memset(t, 0, sizeof(*t));
}

int kw_app_transient_kad(struct kw_app_transient *t, const char *prog, bool client_mode,
			 const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n, struct kw_kad **kad)
{
#ifdef CONFIG_KW_NET_KAD_SWARM
	struct kw_kad_cfg kc;
	struct kw_multiaddr ma;
	char why[KW_MADDR_ERR_MAX];
	int ret;

	*kad = NULL;
	if (!t->id)
		return 0;   /* admission needs identify: no kad without it */
	kw_kad_cfg_default(&kc);
	kc.self = kw_swarm_peer_id(t->sw);
	kc.client_mode = client_mode;
	kc.key = kw_swarm_key(t->sw);
	ret = kw_kad_swarm_create(t->sw, t->id, &t->n->arena, &kc, kad);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot start /ipfs/kad/1.0.0: %s\n", prog, kw_strerror(ret));
		*kad = NULL;
		return ret;
	}
	for (int i = 0; i < n; i++) {
		why[0] = '\0';
		ret = kw_maddr_from_text(boot[i], &ma, why, sizeof(why));
		if (ret == 0)
			ret = kw_kad_bootstrap_add(*kad, &ma);
		if (ret < 0) {
			fprintf(stderr, "%s: kad bootstrap peer %s: %s\n", prog, boot[i],
				why[0] ? why : kw_strerror(ret));
			kw_kad_swarm_destroy(*kad);
			*kad = NULL;
			return ret;
		}
	}
#else
	(void)t; (void)prog; (void)client_mode; (void)boot; (void)n;
	*kad = NULL;
#endif
	return 0;
}

void kw_app_transient_kad_close(struct kw_kad *kad)
{
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (kad)
		kw_kad_swarm_destroy(kad);
#else
	(void)kad;
#endif
}
