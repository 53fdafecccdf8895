/*
 * Test fixture shared by the net/hivemind tests on the simulated network.
 *
 * The pair (test_hm_rpc, test_hm_stream): nodes each with a swarm and a Hivemind RPC layer;
 * side a dials side b (the server), an optional side c dials b too (a third caller). Time is
 * virtual: pump runs every node's loop, advance moves the simulated clock and pumps.
 *
 * The pieces below it (kw_hm_test_*) serve tests that keep their own node structs (the DHT
 * client and server, reachability): start a node, dial and pump until the dial is done, and
 * record a unary call's result; they listen, pump and tear down with swarm_fx.h's.
 */
#ifndef KW_TEST_HM_PAIR_H
#define KW_TEST_HM_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "../swarm/swarm_fx.h"

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
	/* the raw stream of kw_hm_pair_send_raw (a -> b), NULL once closed */
	struct kw_stream *raw;
	int raw_open_err, raw_closed, raw_close_reason;
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
/*
 * What a broken or hostile caller sends: opens a stream for protocol `name` from a to b
 * outside the RPC layer, writes b[0..n) on it and pumps; p->raw* say how it went (asserts
 * that the stream opened and took every byte). Incoming bytes are dropped.
 */
void kw_hm_pair_send_raw(struct kw_hm_pair *p, const char *name, const uint8_t *b, size_t n);

/* ---- for tests with their own node structs ------------------------------------------------ */

/*
 * kw_swarm_test_node (swarm_fx.h), then kw_hm_create(lim) in *hm. The caller adds its
 * protocols, then kw_swarm_test_listen. Return: 0 or a negative error.
 */
int kw_hm_test_node(struct kw_test_net *net, size_t arena_kib, const struct kw_swarm_limits *sl,
		    const struct kw_hm_limits *lim, struct kw_test_node **t, struct kw_privkey *key,
		    struct kw_swarm **sw, struct kw_hm **hm);
/* from dials `to` and pumps t[0..n) 50 passes. Return: the connection, NULL if it failed. */
struct kw_conn *kw_hm_test_dial(struct kw_test_node *const *t, int n, struct kw_swarm *from,
				const char *to);

/* A unary call's outcome, as kw_hm_test_on_result records it (data cut at its size). */
struct kw_hm_test_result {
	int done, err;
	bool remote_error;
	uint8_t data[8192];
	size_t len;
};
/* kw_hm_call's callback; user is a struct kw_hm_test_result. */
void kw_hm_test_on_result(const struct kw_hm_result *r, void *user);

#endif /* KW_TEST_HM_PAIR_H */
