/*
 * The full-stack Kademlia simulation (doc/sim.md, "Full-stack run"): N complete nodes, each
 * with its own identity, arena, event loop, swarm (TCP over kernel/sys_sim.c's simulated
 * sockets, Noise XX, yamux, multistream-select), identify and Kademlia in server mode
 * (kw_kad_swarm_create), on one virtual clock in one process. Node i joins at
 * i x join_interval and bootstraps through `bootstrap` random earlier nodes; after the last
 * join and `settle_ms`, `lookups` find-peer lookups run from random nodes for random other
 * nodes, evenly spread over `phase_ms`.
 *
 * The fixture (sim_node.c, shared with hm_full.c) runs a node's loop only when it has work:
 * a socket that may be ready (sys_sim's active list), a runnable task or a due timer (a heap
 * of nodes keyed by their next deadline). Virtual time jumps to the next deadline or byte
 * delivery when no node has work. Deterministic: every random draw (identities, Noise
 * ephemerals, refresh keys) comes from a PRNG seeded from cfg.seed (tests/sim/full_rng.c),
 * so the same configuration gives the same trace hash.
 */
#ifndef KW_TESTS_SIM_KAD_FULL_H
#define KW_TESTS_SIM_KAD_FULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_kad_full_cfg {
	unsigned nodes;              /* complete nodes */
	unsigned lookups;            /* find-peer lookups after the joins */
	unsigned bootstrap;          /* bootstrap peers per joining node (earlier nodes) */
	uint64_t seed;
	uint32_t lat_min_ms, lat_max_ms;  /* one-way link latency, uniform, fixed per link */
	uint32_t join_interval_ms;
	uint32_t settle_ms;          /* after the last join, before the first lookup */
	uint32_t phase_ms;           /* the lookups are spread evenly over this */
	size_t ring_bytes;           /* receive ring per simulated socket (power of two) */
	unsigned socks_per_node;     /* socket table = nodes x this */
	size_t arena_bytes;          /* per node; 0: computed from the configuration */
	bool progress;               /* a line on stderr every virtual 10 s */
};

void kw_kad_full_cfg_default(struct kw_kad_full_cfg *c);

struct kw_kad_full_report {
	unsigned nodes_started;
	unsigned lookups_started, lookups_ok, lookups_failed, lookups_refused;
	unsigned rounds_median, rounds_p99, rounds_max;
	unsigned msgs_median, msgs_p99;
	uint64_t virtual_ms;         /* from the first join to the last lookup's answer */
	uint64_t node_passes;        /* loop passes run, all nodes */
	uint64_t spin_parks;         /* a node woken SPIN_PASSES times in one ms, parked to the next */
	uint64_t kad_requests;       /* requests sent by every core */
	uint64_t conns_dialed, conns_accepted, conns_failed;
	uint64_t conns_refused;      /* inbound closed at accept by the swarm's limits */
	uint64_t conns_evicted;      /* handshakes dropped to admit a newcomer */
	uint64_t bytes_marks_merged; /* sys_sim batches merged (latency slightly longer) */
	double table_mean;           /* routing table members per node at the end */
	size_t arena_bytes;          /* reserved per node */
	size_t arena_used_max;       /* highest arena use of any node */
	size_t socks_open_max;       /* simulated sockets open at once, at most */
	size_t net_bytes;            /* the simulated network (socket table and rings) */
	uint64_t trace_hash;         /* FNV-1a of every node pass and lookup result */
};

/* Runs one simulation. Return: 0, or a negative code when the set-up failed (printed). */
int kw_kad_full_run(const struct kw_kad_full_cfg *cfg, struct kw_kad_full_report *rep);

/* tests/sim/full_rng.c: the deterministic kw_rng_bytes / kw_rng_below of these programs. */
void kw_full_rng_seed(uint64_t seed);

#endif
