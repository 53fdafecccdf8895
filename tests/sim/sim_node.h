/*
 * The full-stack simulation fixture (doc/sim.md, "Full-stack run"), shared by the Kademlia
 * run (kad_full.c) and the Hivemind DHT run (hm_full.c): N complete nodes, each with its own
 * identity, arena, event loop, swarm (TCP over kernel/sys_sim.c's simulated sockets, Noise
 * XX, yamux, multistream-select), identify and Kademlia in server mode
 * (kw_kad_swarm_create), on one virtual clock in one process.
 *
 * The fixture owns the network, the nodes and the scheduling: node i joins at
 * i x join_interval and bootstraps kad through `bootstrap` random earlier nodes (kept in
 * boot[] so a driver can bootstrap its own service through the same ones). A node's loop is
 * run (one pass, no waiting) only when it has work: a socket that may be ready (sys_sim's
 * active list), a runnable task or a due timer (a heap of nodes keyed by their next
 * deadline). Virtual time jumps to the next deadline, byte delivery, join or driver event
 * when no node has work. The driver (struct sim_hooks) adds services to each node, and
 * schedules its own events (lookups, stores, gets, churn).
 *
 * Deterministic: identities, Noise ephemerals and refresh keys come from kw_rng_bytes
 * (tests/sim/full_rng.c, seeded from the seed), the fixture's and the driver's draws from
 * sim_fx.rng; equal times are broken by node index. The trace hash (FNV-1a) covers every node
 * pass; drivers add their results with sim_fx_hash.
 *
 * Allocation: start-up and node (re)starts only, as in a test. Test programs only.
 */
#ifndef KW_TESTS_SIM_SIM_NODE_H
#define KW_TESTS_SIM_SIM_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/rng.h>
#include <kw/sim.h>
#include <kw/net/kad.h>
#include <kw/net/key.h>

#define SIM_NEVER UINT64_MAX
#define SIM_WALL_EPOCH_MS 1767225600000ull  /* 2026-01-01: record expiry needs a Unix time */

struct kw_node;
struct kw_swarm;
struct kw_identify;

struct sim_node {
	struct kw_sim sim;
	struct kw_node *node;    /* NULL while the node is away (sim_node_leave) */
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_privkey key;   /* kept across a leave: a restarted node keeps its identity */
	uint32_t ip;
	char addr[160];          /* listen address with /p2p/ */
	unsigned boot[KW_KAD_BOOTSTRAP_MAX];  /* the nodes it bootstrapped through */
	unsigned n_boot;
	bool up;
	uint64_t wake;           /* heap key */
	int hpos;                /* index in the node heap, -1: not in it */
	uint64_t pass_ms;        /* virtual ms of the passes counted in pass_n */
	unsigned pass_n;
};

struct sim_params {
	const char *name;        /* prefix of the messages on stderr */
	unsigned nodes;
	unsigned bootstrap;      /* bootstrap peers per joining node (earlier nodes) */
	uint64_t seed;
	uint32_t lat_min_ms, lat_max_ms;  /* one-way link latency, uniform, fixed per link */
	uint32_t join_interval_ms;
	size_t ring_bytes;       /* receive ring per simulated socket (power of two) */
	unsigned socks_per_node; /* socket table = nodes x this */
	size_t arena_bytes;      /* per node; 0: measured on node 0 after start-up */
	bool progress;           /* a line on stderr every virtual 10 s */
};

/* The driver. Every hook but next/fire/done may be NULL. */
struct sim_hooks {
	void *ctx;
	/* after node i's kad core listens and has its bootstrap peers: start more services */
	int (*node_up)(void *ctx, unsigned i);
	/* before node i's kad core and swarm go (sim_node_leave and the final teardown) */
	void (*node_down)(void *ctx, unsigned i);
	/* the last node has joined */
	void (*joined_all)(void *ctx);
	/* when the driver's next event is due (SIM_NEVER: none), and run it */
	uint64_t (*next)(void *ctx);
	void (*fire)(void *ctx);
	/* the run ends when every node has joined and this says so */
	bool (*done)(void *ctx);
	/* progress line text (after the fixture's own) */
	void (*status)(void *ctx, char *buf, size_t cap);
};

struct sim_fx {
	struct sim_params p;
	struct sim_hooks h;
	struct kw_sim_net net;
	void *net_mem;
	struct sim_node *nodes;
	unsigned n_started;
	unsigned *heap;          /* node heap */
	unsigned heap_len;
	uint64_t next_join;
	uint64_t t0;
	uint64_t hash;
	struct kw_prng rng;      /* the fixture's and the driver's draws */
	/* figures */
	uint64_t node_passes;
	uint64_t spin_parks;     /* a node woken SPIN_PASSES times in one ms, parked to the next */
	size_t arena_bytes;      /* reserved per node */
	size_t socks_open_max;
	size_t net_bytes;
};

/* Allocates the network and the tables (start-up); seeds kw_rng_bytes and fx->rng. Return:
 * 0, -KW_EINVAL (fewer than 2 nodes, bad latency range), -KW_ENOMEM. */
int sim_fx_init(struct sim_fx *fx, const struct sim_params *p, const struct sim_hooks *h);
/* Runs until the driver is done (or nothing is left to run). Return: 0. */
int sim_fx_run(struct sim_fx *fx);
/* Stops every node that is up (node_down first) and frees everything. Return: the simulated
 * sockets still open once every node has stopped (0 unless a node leaks a socket, also one
 * left behind by a node that left earlier). */
int sim_fx_destroy(struct sim_fx *fx);

/* Virtual ms since the first join; the wall-clock (Unix) time the nodes see, in ms. */
uint64_t sim_fx_now(const struct sim_fx *fx);
uint64_t sim_fx_wall_ms(void *fx);
/* Adds v to the trace hash. */
void sim_fx_hash(struct sim_fx *fx, uint64_t v);
/* Node i's loop may have work now (after the driver called into it). */
void sim_fx_reschedule(struct sim_fx *fx, unsigned i);

/* Node i leaves: node_down, its kad core and swarm stop (its connections close, as when a
 * process exits), its memory is freed. Its address then refuses connections. */
void sim_node_leave(struct sim_fx *fx, unsigned i);
/* Node i comes back with the same identity and address and fresh state, bootstrapping
 * through `bootstrap` random nodes that are up. Return: 0 or the start-up error. */
int sim_node_rejoin(struct sim_fx *fx, unsigned i);

#endif
