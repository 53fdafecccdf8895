/*
 * The full-stack Hivemind DHT simulation (doc/sim.md, "Hivemind DHT run"): N complete nodes on
 * the shared fixture (sim_node.h: identity, arena, loop, swarm with TCP over simulated
 * sockets, Noise, yamux, identify, kad), each also running the Hivemind DHT as a node with
 * `hivemind = on` does: app/hivemind.c's kw_app_hm_start_cfg (RPC layer, DHT server and
 * client, address book fed by identify, unknown PeerIDs resolved through kad, bootstrap with a
 * validate ping and a search for its own id through the same earlier nodes kad bootstraps
 * through). Only the DHT's clock differs: it reads the virtual clock.
 *
 * Timeline: node i joins at i x join_interval; after the last join and settle_ms, `stores`
 * stores (random str keys, subkey_pct of them with a subkey) from random nodes spread over
 * store_phase_ms; when every store has answered, `gets` gets (not `latest`) of the stored keys
 * from random other nodes spread over get_phase_ms. During the get phase churn_pct of the
 * nodes leave (their processes stop: connections close, storage is lost) at random times in
 * its first half and come back down_ms later with the same identity and address but a fresh
 * DHT (new node id, empty storage), bootstrapping again. Gets are asked from nodes that do
 * not churn (a get in flight on a node that stops has nobody to report to).
 *
 * A get succeeds when it returns the stored value: the same bytes for a plain value, a
 * dictionary holding the stored subkey with the stored value for a subkey store.
 */
#ifndef KW_TESTS_SIM_HM_FULL_H
#define KW_TESTS_SIM_HM_FULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_hm_full_cfg {
	unsigned nodes, stores, gets;
	unsigned churn_pct;          /* nodes that leave and rejoin during the gets, percent */
	unsigned subkey_pct;         /* stores with a subkey, percent */
	unsigned bootstrap;          /* bootstrap peers per joining node (earlier nodes) */
	uint64_t seed;
	uint32_t lat_min_ms, lat_max_ms;
	uint32_t join_interval_ms;
	uint32_t settle_ms;          /* after the last join, before the first store */
	uint32_t store_phase_ms;     /* the stores are spread evenly over this */
	uint32_t get_phase_ms;       /* the gets likewise, once every store answered */
	uint32_t down_ms;            /* how long a churning node stays away; 0: get_phase / 2 */
	size_t ring_bytes;
	unsigned socks_per_node;
	size_t arena_bytes;          /* per node; 0: measured on node 0 */
	bool progress;
	bool diag;                   /* print where each failed get's record is */
};

void kw_hm_full_cfg_default(struct kw_hm_full_cfg *c);

struct kw_hm_full_report {
	unsigned nodes_started;
	unsigned stores_started, stores_ok;   /* ok: answered, at least one replica stored it */
	unsigned stores_refused;              /* not started: operation pool empty */
	double replicas_mean;                 /* replicas that stored an ok store */
	unsigned gets_started, gets_ok;
	unsigned gets_not_found, gets_wrong, gets_err, gets_refused;
	unsigned visited_median, visited_p99, visited_max;  /* nodes that answered a get */
	unsigned get_ms_median, get_ms_p99;   /* virtual time from the call to the callback */
	unsigned leaves, rejoins;
	uint64_t dht_rpcs, dht_rpcs_failed;   /* every node's client requests (ends: of the
						 nodes up at the end) */
	uint64_t newcomer_pushes;
	uint64_t virtual_ms;
	uint64_t node_passes, spin_parks;
	uint64_t conns_dialed, conns_accepted, conns_failed;
	uint64_t conns_refused;               /* inbound closed at accept by the swarm's limits */
	uint64_t conns_evicted;               /* handshakes dropped to admit a newcomer */
	uint64_t conns_trimmed;               /* idle inbound closed to admit a newcomer */
	uint64_t unreachable;                 /* DHT: peers with no connection and no address */
	size_t arena_bytes, arena_used_max, socks_open_max, net_bytes;
	int socks_left;                       /* open after every node stopped: leaks */
	unsigned diag_lost, diag_far, diag_unreached;  /* failed gets (diag): no holder up; holders,
							  none among the 5 nearest; holders
							  among them, not reached */
	unsigned diag_holders[6];             /* failed gets by holders up (5: 5 or more) */
	uint64_t trace_hash;
};

/* Runs one simulation. Return: 0, or a negative code when the set-up failed (printed). */
int kw_hm_full_run(const struct kw_hm_full_cfg *cfg, struct kw_hm_full_report *rep);

#endif
