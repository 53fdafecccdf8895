/*
 * The transient node of the one-shot commands (include/kw/app.h, kw_app_transient_open):
 * one place for the identity, loop, node, swarm and identify set-up that `kwnode dht` and
 * `kwnode hivemind` (and the commands that follow them) need before their own protocols.
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/identify.h>
#include <kw/net/keyfile.h>
#include <kw/net/swarm.h>

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
