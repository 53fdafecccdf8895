/*
 * Deterministic many-node simulation of the Kademlia core (net/kad): N real struct kw_kad
 * instances in one process share ONE event loop whose OS seam is the simulated clock
 * (kernel/sys_sim.c, auto-advance), and reach each other through a simulated message
 * transport (struct kw_kad_transport) instead of sockets. See doc/sim.md.
 *
 * The transport encodes every request and reply with kw_kad_msg_encode into a compact
 * in-flight record (the wire bytes, not the 41 KiB struct) from a pool sized at start-up,
 * delivers it after a sampled latency, drops it with the loss probability, cuts partitioned
 * links, and turns a message to a dead, unknown or unreachable peer into a timeout. The
 * receiver decodes and runs kw_kad_handle_request; the reply travels back the same way.
 * Adversarial nodes answer FIND_NODE with the k adversaries closest to the key (their
 * handler is replaced here, their kad instance is otherwise real).
 *
 * Randomness comes only from seeded kw_prng streams (kernel/rng.c), the simulation's own and
 * the one handed to every core as kw_kad_cfg.rng (refresh keys): the same configuration and
 * seed give the same event trace, whose FNV-1a hash is reported (trace_hash).
 *
 * Memory: everything (node arenas, in-flight pool, calendar ring, loop tables) is allocated
 * once in kw_kad_sim_run (or kw_kad_sim_run_shared) before the first event and freed when it
 * returns; node arenas come from calloc, so a node's untouched pages are never written.
 */
#ifndef KW_TESTS_KAD_SIM_H
#define KW_TESTS_KAD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_kad_sim_cfg {
	unsigned nodes;              /* N */
	unsigned lookups;            /* L find_peer lookups in the lookup phase */
	uint64_t seed;
	uint32_t lat_min_ms, lat_max_ms;   /* one-way latency, uniform in [min, max] */
	double loss;                 /* probability that one message (request or reply) is lost */
	double churn;                /* fraction of nodes that leave (and as many that join)
	                              * during the lookup phase */
	double partition;            /* fraction of node pairs whose link is cut */
	double adversarial;          /* fraction of nodes that are adversarial */
	unsigned adv_groups;         /* adversaries' IPv4 /16 groups; 0 = random public addresses */
	bool private_ips;            /* every node in 10.0.0.0/8: the diversity filter exempts all */
	unsigned bootstrap_peers;    /* earlier nodes each new node bootstraps from */
	uint32_t join_interval_ms;   /* virtual time between two joins in the bootstrap phase */
	uint32_t settle_ms;          /* after the last join, before the lookup phase */
	uint32_t lookup_phase_ms;    /* lookups (and churn) spread over this much virtual time */
	uint32_t query_timeout_ms;   /* the core's and the transport's per-request timeout */
	unsigned puts;               /* get-after-put pairs in the lookup phase (0 = none): a node
	                              * puts its /pk/ record, another gets it 10 s later */
	unsigned inflight;           /* in-flight message records; 0 = derived from N */
	unsigned k, alpha;           /* 0 = Kconfig */
	bool prefill;                /* warm start: all nodes at once, tables filled by an oracle
	                              * (up to k random peers per bucket), no bootstrap phase */
	bool full_store;             /* the store at its Kconfig size even without puts */
	bool trace;                  /* print every event to stderr (small runs only) */
};

#define KW_KAD_SIM_ALPHA_SEEN 3          /* the start of a lookup looked at: alpha, default 3 */
#define KW_KAD_RT_MAX_MEMBERS_SEEN 4096  /* table members counted for the breakdown */

struct kw_kad_sim_report {
	/* lookup phase */
	unsigned lookups_started, lookups_ok, lookups_failed;
	unsigned lookups_excluded;   /* origin or target left during the lookup (churn) */
	unsigned rounds_median, rounds_p99, rounds_max;
	unsigned msgs_median, msgs_p99;
	double success_pct;
	/* get-after-put: puts that reached >= 1 peer; gets (from another random node 10 s
	 * after the put) of those, and how many returned the value */
	unsigned puts_ok, gets_ok, gets_total;
	/* bootstrap */
	double rt_size_mean;         /* routing-table members per live node after the run */
	/* transport */
	uint64_t connections;        /* simulated connection set-ups (identify both ways) */
	uint64_t messages, delivered, lost, cut, to_dead, refused, pool_exhausted;
	unsigned inflight_high, inflight_cap;
	uint64_t by_type[6];         /* requests sent, by enum kw_kad_msg_type */
	/* the cores' own counters, summed over the nodes alive at the end */
	uint64_t core_lookups, core_refresh, core_rate_limited, core_timeouts;
	/* memory */
	size_t arena_bytes_per_node;     /* kw_kad_arena_bytes for the configuration */
	size_t arena_used_per_node;      /* highest arena use of a node */
	size_t sim_bytes_per_node;       /* the simulation's own per-node bookkeeping */
	size_t sim_bytes_shared;         /* in-flight pool, loop tables, scratch messages */
	/* time */
	uint64_t virtual_ms;
	double wall_s;
	double cpu_s;                /* process CPU time (the machine may be shared); with a shared
	                              * bootstrap: boot_cpu_s + phase_cpu_s */
	double boot_cpu_s, phase_cpu_s;  /* kw_kad_sim_run_shared only: the bootstrap (once for
	                              * boot_shared scenarios) and this scenario's lookup phase */
	unsigned boot_shared;        /* scenarios that shared this row's bootstrap (0: its own) */
	uint64_t events;
	uint64_t trace_hash;         /* FNV-1a over every delivered/failed event */
	/* adversarial breakdown (only with adversaries): lookups by how many of the origin's
	 * alpha closest members (at most KW_KAD_SIM_ALPHA_SEEN) were adversaries when it
	 * started, and how many of those succeeded; adversaries among honest tables' members */
	unsigned adv_first_n[KW_KAD_SIM_ALPHA_SEEN + 1], adv_first_ok[KW_KAD_SIM_ALPHA_SEEN + 1];
	uint64_t adv_members, table_members;
};

void kw_kad_sim_cfg_default(struct kw_kad_sim_cfg *cfg);
/* Arena bytes one simulated node takes under cfg (kw_kad_arena_bytes of its kw_kad_cfg). */
size_t kw_kad_sim_node_bytes(const struct kw_kad_sim_cfg *cfg);
/* Runs one simulation. Return: 0, or a negative code when the set-up failed (memory). */
int kw_kad_sim_run(const struct kw_kad_sim_cfg *cfg, struct kw_kad_sim_report *rep);
/*
 * Runs n scenarios that differ only in their lookup phase (lookups, lookup_phase_ms, churn,
 * puts; every other option equal) from ONE bootstrap: the network joins and settles once,
 * then for each scenario a fork()ed child runs that lookup phase on its copy-on-write copy of
 * the settled network and reports in reps[i], one child after the other. A scenario's report
 * (trace hash included) is the one kw_kad_sim_run gives for it alone: both arm the lookup
 * phase at the same point of the same event sequence. Return: 0; -KW_EINVAL when the
 * scenarios' networks differ; -KW_EIO when a child failed; or a set-up error.
 */
int kw_kad_sim_run_shared(const struct kw_kad_sim_cfg *phases, unsigned n,
			  struct kw_kad_sim_report *reps);

#endif /* KW_TESTS_KAD_SIM_H */
