/*
 * The swarm test pieces (swarm_fx.h).
 */
#include "swarm_fx.h"

#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>

int kw_swarm_test_node(struct kw_test_net *net, size_t arena_kib,
		       const struct kw_swarm_limits *lim, struct kw_test_node **t,
		       struct kw_privkey *key, struct kw_swarm **sw)
{
	struct kw_swarm_limits def = kw_test_swarm_limits();
	int ret;

	*t = kw_test_node_join(net, arena_kib);
	if (!*t)
		return -KW_ENOMEM;
	ret = kw_key_generate(KW_KEY_ED25519, 0, key);
	if (ret == 0)
		ret = kw_swarm_create((*t)->node, key, lim ? lim : &def, sw);
	return ret;
}

int kw_swarm_test_listen(struct kw_swarm *sw, const char *listen, char *addr, size_t cap)
{
	int ret;

	if (!listen)
		return 0;
	ret = kw_swarm_listen(sw, listen);
	if (ret == 0)
		ret = kw_swarm_listen_addr(sw, 0, addr, cap);
	return ret;
}

void kw_swarm_test_pump(struct kw_test_node *const *t, int n, int passes)
{
	for (int i = 0; i < passes; i++)
		for (int j = 0; j < n; j++)
			kw_loop_run_once(&t[j]->node->loop, 0);
}

void kw_swarm_test_free(struct kw_test_net *net, struct kw_test_node *const *t,
			struct kw_swarm *const *sw, int n, int passes)
{
	for (int i = 0; i < n; i++)
		kw_swarm_destroy(sw[i]);
	kw_swarm_test_pump(t, n, passes);
	for (int i = 0; i < n; i++)
		kw_test_assert_no_leaks(t[i]->node);
	for (int i = 0; i < n; i++)
		kw_test_node_free(t[i]);
	assert_int_equal(kw_sim_open_sockets(net->net), 0);
	kw_test_net_free(net);
}

void kw_swarm_test_on_ping(struct kw_ping *p, uint32_t seq, uint64_t rtt, int err, bool done)
{
	struct kw_swarm_test_pings *r = p->user;

	if (!done)
		r->pings++;
	else {
		r->done++;
		r->err = err;
	}
}
