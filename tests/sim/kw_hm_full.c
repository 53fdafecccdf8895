/*
 * kw_hm_full: the full-stack Hivemind DHT simulation from the command line (doc/sim.md,
 * "Hivemind DHT run"; `make sim-hivemind`). Prints one report: stores, gets and how many
 * returned the stored value, nodes asked per get, churn, virtual time, wall and CPU time,
 * memory and the trace hash.
 */
#include <stdio.h>
#include <stdlib.h>

#include "hm_full.h"
#include "sim_cli.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: kw_hm_full [--nodes N] [--stores S] [--gets G] [--churn PCT] [--seed S]\n"
		"       [--subkeys PCT] [--latency MIN-MAX] [--bootstrap B] [--join-interval MS]\n"
		"       [--settle MS] [--store-phase MS] [--get-phase MS] [--down MS]\n"
		"       [--ring BYTES] [--socks-per-node N] [--arena BYTES] [--progress] [--diag]\n");
	exit(2);
}

static double pct(unsigned a, unsigned b)
{
	return b ? 100.0 * a / b : 0.0;
}

int main(int argc, char **argv)
{
	struct kw_hm_full_cfg c;
	struct kw_hm_full_report r;
	struct timespec w0;
	unsigned asked;
	int ret;

	kw_hm_full_cfg_default(&c);
	{
		const struct sim_opt opts[] = {
			{ "--progress", SIM_OPT_FLAG, &c.progress },
			{ "--diag", SIM_OPT_FLAG, &c.diag },
			{ "--nodes", SIM_OPT_UINT, &c.nodes },
			{ "--stores", SIM_OPT_UINT, &c.stores },
			{ "--gets", SIM_OPT_UINT, &c.gets },
			{ "--churn", SIM_OPT_UINT, &c.churn_pct },
			{ "--subkeys", SIM_OPT_UINT, &c.subkey_pct },
			{ "--seed", SIM_OPT_U64, &c.seed },
			{ "--latency", SIM_OPT_RANGE, &c.lat_min_ms, &c.lat_max_ms },
			{ "--bootstrap", SIM_OPT_UINT, &c.bootstrap },
			{ "--join-interval", SIM_OPT_U32, &c.join_interval_ms },
			{ "--settle", SIM_OPT_U32, &c.settle_ms },
			{ "--store-phase", SIM_OPT_U32, &c.store_phase_ms },
			{ "--get-phase", SIM_OPT_U32, &c.get_phase_ms },
			{ "--down", SIM_OPT_U32, &c.down_ms },
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
	ret = kw_hm_full_run(&c, &r);
	if (ret < 0) {
		fprintf(stderr, "kw_hm_full: %s\n", ret == -22 ? "bad options" : "set-up failed");
		return 1;
	}
	asked = r.gets_started - r.gets_refused;
	printf("full-stack hivemind dht: %u nodes, %u stores, %u gets, churn %u %%, seed %llu, "
	       "latency %u-%u ms\n", r.nodes_started, r.stores_started, r.gets_started,
	       c.churn_pct, (unsigned long long)c.seed, c.lat_min_ms, c.lat_max_ms);
	printf("  stores           %u of %u stored (%.2f %%), %.2f replicas each (mean); %u not "
	       "started: no free operation\n", r.stores_ok, r.stores_started,
	       pct(r.stores_ok, r.stores_started), r.replicas_mean, r.stores_refused);
	printf("  get after store  %.2f %% (%u of %u returned the stored value; %u not found, "
	       "%u another value, %u errors; %u not started: no free operation)\n",
	       pct(r.gets_ok, asked), r.gets_ok, asked, r.gets_not_found, r.gets_wrong,
	       r.gets_err, r.gets_refused);
	printf("  nodes asked/get  median %u, p99 %u, max %u (nodes that answered)\n",
	       r.visited_median, r.visited_p99, r.visited_max);
	printf("  get latency      median %u ms, p99 %u ms (virtual)\n", r.get_ms_median,
	       r.get_ms_p99);
	printf("  churn            %u left, %u rejoined\n", r.leaves, r.rejoins);
	printf("  dht requests     %llu sent, %llu failed (all nodes, bootstrap included); "
	       "%llu newcomer pushes\n", (unsigned long long)r.dht_rpcs,
	       (unsigned long long)r.dht_rpcs_failed, (unsigned long long)r.newcomer_pushes);
	printf("  connections      %llu dialed, %llu accepted, %llu failed (nodes up at the end); "
	       "%zu sockets open at most\n", (unsigned long long)r.conns_dialed,
	       (unsigned long long)r.conns_accepted, (unsigned long long)r.conns_failed,
	       r.socks_open_max);
	printf("  refusals         %llu inbound refused at accept, %llu handshakes evicted, %llu "
	       "idle inbound closed for a newcomer; %llu DHT peers unreachable (nodes up at the "
	       "end)\n", (unsigned long long)r.conns_refused, (unsigned long long)r.conns_evicted,
	       (unsigned long long)r.conns_trimmed, (unsigned long long)r.unreachable);
	printf("  virtual time     %.1f s; %llu node loop passes; %llu spinning-loop parks\n",
	       r.virtual_ms / 1000.0, (unsigned long long)r.node_passes,
	       (unsigned long long)r.spin_parks);
	sim_print_cost(&w0);
	printf("  memory           arena %zu B/node reserved, %zu used at most; network %zu B\n",
	       r.arena_bytes, r.arena_used_max, r.net_bytes);
	if (c.diag)
		printf("  failed gets      %u no holder up, %u holders none among the 5 nearest, %u "
		       "holders among them not reached; by holders up 0..5+: %u %u %u %u %u %u\n",
		       r.diag_lost, r.diag_far, r.diag_unreached, r.diag_holders[0],
		       r.diag_holders[1], r.diag_holders[2], r.diag_holders[3], r.diag_holders[4],
		       r.diag_holders[5]);
	printf("  trace hash       %016llx\n", (unsigned long long)r.trace_hash);
	return 0;
}
