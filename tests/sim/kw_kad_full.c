/*
 * kw_kad_full: the full-stack Kademlia simulation from the command line (doc/sim.md,
 * "Full-stack run"; `make sim-full`). Prints one report: lookups, rounds, messages, virtual
 * time, wall and CPU time, memory per node and the trace hash.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kad_full.h"
#include "sim_cli.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: kw_kad_full [--nodes N] [--lookups L] [--seed S] [--latency MIN-MAX]\n"
		"       [--bootstrap B] [--join-interval MS] [--settle MS] [--phase MS]\n"
		"       [--ring BYTES] [--socks-per-node N] [--arena BYTES] [--progress]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct kw_kad_full_cfg c;
	struct kw_kad_full_report r;
	struct timespec w0;
	int ret;

	kw_kad_full_cfg_default(&c);
	{
		const struct sim_opt opts[] = {
			{ "--progress", SIM_OPT_FLAG, &c.progress },
			{ "--nodes", SIM_OPT_UINT, &c.nodes },
			{ "--lookups", SIM_OPT_UINT, &c.lookups },
			{ "--seed", SIM_OPT_U64, &c.seed },
			{ "--latency", SIM_OPT_RANGE, &c.lat_min_ms, &c.lat_max_ms },
			{ "--bootstrap", SIM_OPT_UINT, &c.bootstrap },
			{ "--join-interval", SIM_OPT_U32, &c.join_interval_ms },
			{ "--settle", SIM_OPT_U32, &c.settle_ms },
			{ "--phase", SIM_OPT_U32, &c.phase_ms },
			{ "--ring", SIM_OPT_SIZE, &c.ring_bytes },
			{ "--socks-per-node", SIM_OPT_UINT, &c.socks_per_node },
			{ "--arena", SIM_OPT_SIZE, &c.arena_bytes },
			{ NULL },
		};
		if (sim_opts_parse(argc, argv, opts) < 0)
			usage();
	}
	sim_log_level_from_env();
	clock_gettime(CLOCK_MONOTONIC, &w0);
	ret = kw_kad_full_run(&c, &r);
	if (ret < 0)
		return 1;
	printf("full-stack kad: %u nodes, %u lookups, seed %llu, latency %u-%u ms, bootstrap %u\n",
	       r.nodes_started, r.lookups_started, (unsigned long long)c.seed, c.lat_min_ms,
	       c.lat_max_ms, c.bootstrap);
	printf("  success          %.2f %% (%u of %u; %u failed, %u not started: no free slot)\n",
	       r.lookups_started ? 100.0 * r.lookups_ok / r.lookups_started : 0.0, r.lookups_ok,
	       r.lookups_started, r.lookups_failed, r.lookups_refused);
	printf("  rounds           median %u, p99 %u, max %u\n", r.rounds_median, r.rounds_p99,
	       r.rounds_max);
	printf("  messages/lookup  median %u, p99 %u\n", r.msgs_median, r.msgs_p99);
	printf("  kad requests     %llu (all cores, bootstrap and refresh included)\n",
	       (unsigned long long)r.kad_requests);
	printf("  connections      %llu dialed, %llu accepted, %llu failed; %zu sockets open at most\n",
	       (unsigned long long)r.conns_dialed, (unsigned long long)r.conns_accepted,
	       (unsigned long long)r.conns_failed, r.socks_open_max);
	printf("  inbound limits   %llu refused at accept, %llu handshakes evicted\n",
	       (unsigned long long)r.conns_refused, (unsigned long long)r.conns_evicted);
	printf("  table size       %.1f (mean)\n", r.table_mean);
	printf("  virtual time     %.1f s; %llu node loop passes; %llu spinning-loop parks\n",
	       r.virtual_ms / 1000.0, (unsigned long long)r.node_passes,
	       (unsigned long long)r.spin_parks);
	sim_print_cost(&w0);
	printf("  memory           arena %zu B/node reserved, %zu used at most; network %zu B "
	       "(%.0f B/node)\n", r.arena_bytes, r.arena_used_max, r.net_bytes,
	       (double)r.net_bytes / (r.nodes_started ? r.nodes_started : 1));
	if (r.bytes_marks_merged)
		printf("  latency batches merged: %llu\n", (unsigned long long)r.bytes_marks_merged);
	printf("  trace hash       %016llx\n", (unsigned long long)r.trace_hash);
	return 0;
}
