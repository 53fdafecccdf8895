/*
 * Shared cmocka helpers: a node on the simulated OS seam, and the leak check every group's
 * teardown runs (lwIP's lwip_check_ensure_no_alloc idea): a pool still holding blocks fails
 * the test that leaked them.
 */
#ifndef KW_TEST_HARNESS_H
#define KW_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <kw/bytes.h>

#include <kw/node.h>
#ifdef CONFIG_KW_NET_SWARM
#include <kw/net/swarm.h>
#endif

struct kw_test_node {
	struct kw_node *node;
	struct kw_sim *sim;          /* NULL when built without CONFIG_KW_SYS_SIM */
	struct kw_sim_net *net;
	void *net_mem;
};

/* A node on a private simulated network whose arena has `arena_kib` KiB free after the loop's
 * own tables; NULL on failure. */
/*
 * Arena bytes the loop's own tables take (timer heap, event array) at the configured sizes:
 * the helpers below add it to what a test asks for, so a test's arena does not shrink when
 * CONFIG_KW_TIMER_MAX grows. A test that makes its own node adds it too.
 */
size_t kw_test_loop_bytes(void);
struct kw_test_node *kw_test_node_new(size_t arena_kib);
void kw_test_node_free(struct kw_test_node *t);
/*
 * Several nodes on one simulated network (swarm tests: two nodes dialing each other).
 * kw_test_net_new makes a network of `n_socks` sockets with `rx_bytes` rings (power of two);
 * kw_test_node_join adds a node with its own kw_sim view of that network. Free the nodes
 * (kw_test_node_free) before the network (kw_test_net_free). NULL on failure.
 */
struct kw_test_net {
	struct kw_sim_net *net;
	void *mem;
};
struct kw_test_net *kw_test_net_new(int n_socks, size_t rx_bytes);
void kw_test_net_free(struct kw_test_net *tn);
struct kw_test_node *kw_test_node_join(struct kw_test_net *tn, size_t arena_kib);

/* Fails the current test (cmocka) if any of the node's pools still holds a block. */
void kw_test_assert_no_leaks(const struct kw_node *n);

/* Hex text h (a test vector, 2n digits) to its n bytes at out; a char that is not a hex digit
 * fails the test. Return: n. */
static inline size_t kw_test_unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;

	assert_int_equal(kw_hex_get(h, n, out), 0);
	return n;
}

/* Removes directory d and the files directly in it (a test's scratch checkpoint). */
void kw_test_rm_dir(const char *d);

#ifdef CONFIG_KW_NET_SWARM
/*
 * Kconfig's swarm limits with the connection counts held at 8 each (and the per-address
 * inbound limits at 8, the reserve at 0): the tests' arenas then
 * hold a swarm whatever the configured maxima (up to 65536 each, a 230 MiB pool), and a test
 * never depends on where an owner set them.
 */
static inline struct kw_swarm_limits kw_test_swarm_limits(void)
{
	struct kw_swarm_limits l;

	kw_swarm_limits_default(&l);
	l.max_conns_in = 8;
	l.max_conns_out = 8;
	/* every test peer dials from 127.0.0.1: per-address limits no tighter than the total,
	 * no reserve, unless a test sets them */
	l.conns_per_ip = l.conns_per_subnet = 8;
	l.max_handshakes_in = l.handshakes_per_ip = l.handshakes_per_subnet = 8;
	l.conns_in_reserved = 0;
	return l;
}
#endif

#endif
