/*
 * The two- or three-node fixture of the net/hivemind RPC tests (hm_pair.h).
 */
#include "hm_pair.h"

#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>

static int make_side(struct kw_hm_pair *p, struct kw_hm_side *s, const char *listen,
		     const struct kw_hm_limits *lim, size_t arena_kib)
{
	struct kw_swarm_limits sl = kw_test_swarm_limits();
	int ret;

	s->t = kw_test_node_join(p->net, arena_kib);
	if (!s->t)
		return -KW_ENOMEM;
	ret = kw_key_generate(KW_KEY_ED25519, 0, &s->key);
	if (ret == 0)
		ret = kw_swarm_create(s->t->node, &s->key, &sl, &s->sw);
	if (ret == 0)
		ret = kw_hm_create(s->sw, lim, &s->hm);
	if (ret == 0)
		ret = kw_swarm_listen(s->sw, listen);
	if (ret == 0)
		ret = kw_swarm_listen_addr(s->sw, 0, s->addr, sizeof(s->addr));
	return ret;
}

int kw_hm_pair_init(struct kw_hm_pair *p, int sides, const struct kw_hm_limits *lim,
		    size_t arena_kib)
{
	int ret;

	p->n_sides = sides;
	p->net = kw_test_net_new(64, 1 << 18);
	if (!p->net)
		return -KW_ENOMEM;
	ret = make_side(p, &p->b, "/ip4/127.0.0.1/tcp/4001", lim, arena_kib);
	if (ret == 0)
		ret = make_side(p, &p->a, "/ip4/127.0.0.1/tcp/4002", lim, arena_kib);
	if (ret == 0 && sides == 3)
		ret = make_side(p, &p->c, "/ip4/127.0.0.1/tcp/4003", lim, arena_kib);
	return ret;
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct kw_hm_side *s = user;

	s->dial_done++;
	s->dial_err = err;
	s->conn = c;
}

int kw_hm_pair_connect(struct kw_hm_pair *p)
{
	if (kw_swarm_dial(p->a.sw, p->b.addr, on_dial, &p->a) < 0)
		return -1;
	if (p->n_sides == 3 && kw_swarm_dial(p->c.sw, p->b.addr, on_dial, &p->c) < 0)
		return -1;
	kw_hm_pair_pump(p, 50);
	if (p->a.dial_done != 1 || p->a.dial_err != 0)
		return -1;
	if (p->n_sides == 3 && (p->c.dial_done != 1 || p->c.dial_err != 0))
		return -1;
	return 0;
}

void kw_hm_pair_pump(struct kw_hm_pair *p, int passes)
{
	for (int i = 0; i < passes; i++) {
		kw_loop_run_once(&p->a.t->node->loop, 0);
		kw_loop_run_once(&p->b.t->node->loop, 0);
		if (p->n_sides == 3)
			kw_loop_run_once(&p->c.t->node->loop, 0);
	}
}

void kw_hm_pair_advance(struct kw_hm_pair *p, uint64_t ms)
{
	kw_sim_advance(p->net->net, ms);
	kw_hm_pair_pump(p, 20);
}

void kw_hm_pair_fini(struct kw_hm_pair *p)
{
	struct kw_hm_side *sides[3] = { &p->a, &p->b, &p->c };

	for (int i = 0; i < p->n_sides; i++)
		kw_swarm_destroy(sides[i]->sw);
	kw_hm_pair_pump(p, 4);
	for (int i = 0; i < p->n_sides; i++)
		kw_test_assert_no_leaks(sides[i]->t->node);
	for (int i = 0; i < p->n_sides; i++)
		kw_test_node_free(sides[i]->t);
	assert_int_equal(kw_sim_open_sockets(p->net->net), 0);
	kw_test_net_free(p->net);
}
