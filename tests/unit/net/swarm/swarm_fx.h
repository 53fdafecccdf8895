/*
 * Pieces shared by the tests that run whole swarms on the simulated network (test_swarm,
 * test_swarm_buffers, and the net/hivemind tests through hm_pair.h): start a node with a
 * fresh key and a swarm, listen, pump the nodes' loops, record a ping's outcome, and tear
 * the nodes down checking that no pool block and no socket leaked. Each test keeps its own
 * node structs; these take the fields they need.
 */
#ifndef KW_TEST_SWARM_FX_H
#define KW_TEST_SWARM_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#include <kw/net/key.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

/*
 * Joins net with an arena of arena_kib KiB, a fresh Ed25519 key in *key and a swarm with lim
 * (kw_test_swarm_limits() when NULL) in *sw. Return: 0 or a negative error.
 */
int kw_swarm_test_node(struct kw_test_net *net, size_t arena_kib,
		       const struct kw_swarm_limits *lim, struct kw_test_node **t,
		       struct kw_privkey *key, struct kw_swarm **sw);
/* Listens on `listen` and writes the address it got (with /p2p/) to addr; 0 when NULL. */
int kw_swarm_test_listen(struct kw_swarm *sw, const char *listen, char *addr, size_t cap);
/* Runs the loops of t[0..n) once each, in that order, `passes` times. */
void kw_swarm_test_pump(struct kw_test_node *const *t, int n, int passes);
/*
 * Destroys sw[0..n), pumps `passes` times, asserts that no pool block and no socket leaked,
 * frees the nodes and the net.
 */
void kw_swarm_test_free(struct kw_test_net *net, struct kw_test_node *const *t,
			struct kw_swarm *const *sw, int n, int passes);

/* What kw_swarm_test_on_ping saw: replies, and the final call's err. */
struct kw_swarm_test_pings {
	uint32_t pings;
	int done, err;
};
/* kw_ping_start's callback; its user is a struct kw_swarm_test_pings. */
void kw_swarm_test_on_ping(struct kw_ping *p, uint32_t seq, uint64_t rtt, int err, bool done);

#endif /* KW_TEST_SWARM_FX_H */
