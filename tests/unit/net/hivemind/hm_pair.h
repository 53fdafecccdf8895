/*
 * Test fixture shared by the net/hivemind RPC tests (test_hm_rpc, test_hm_stream): nodes on
 * one simulated network, each with a swarm and a Hivemind RPC layer; side a dials side b
 * (the server), an optional side c dials b too (a third caller). Time is virtual: pump runs
 * every node's loop, advance moves the simulated clock and pumps.
 */
#ifndef KW_TEST_HM_PAIR_H
#define KW_TEST_HM_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#include <kw/net/hivemind.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

struct kw_hm_side {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_privkey key;
	char addr[256];
	struct kw_conn *conn;      /* this side's connection to b (a and c) */
	int dial_done, dial_err;
};

struct kw_hm_pair {
	struct kw_test_net *net;
	struct kw_hm_side a, b, c;
	int n_sides;               /* 2, or 3 with c */
};

/*
 * Makes sides b (listening) and a (and c when three), each with kw_hm_create(lim) and an
 * arena of arena_kib KiB. Handlers may be registered on b before kw_hm_pair_connect.
 * Return: 0 or a negative error.
 */
int kw_hm_pair_init(struct kw_hm_pair *p, int sides, const struct kw_hm_limits *lim,
		    size_t arena_kib);
/* a (and c) dial b; 0 when every dial succeeded. */
int kw_hm_pair_connect(struct kw_hm_pair *p);
void kw_hm_pair_pump(struct kw_hm_pair *p, int passes);
void kw_hm_pair_advance(struct kw_hm_pair *p, uint64_t ms);
/* Destroys the swarms, asserts that no pool block and no socket leaked, frees all. */
void kw_hm_pair_fini(struct kw_hm_pair *p);

#endif /* KW_TEST_HM_PAIR_H */
