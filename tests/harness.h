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
#include <cmocka.h>

#include <kw/node.h>

struct kw_test_node {
	struct kw_node *node;
	struct kw_sim *sim;          /* NULL when built without CONFIG_KW_SYS_SIM */
	struct kw_sim_net *net;
	void *net_mem;
};

/* A node on a private simulated network whose arena has `arena_kib` KiB free after the loop's
 * own tables; NULL on failure. */
struct kw_test_node *kw_test_node_new(size_t arena_kib);
void kw_test_node_free(struct kw_test_node *t);
/* Fails the current test (cmocka) if any of the node's pools still holds a block. */
void kw_test_assert_no_leaks(const struct kw_node *n);

#endif
