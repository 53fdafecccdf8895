/*
 * kw_kad_full: the full-stack Kademlia simulation from the command line (doc/sim.md,
 * "Full-stack run"; `make sim-full`). Prints one report: lookups, rounds, messages, virtual
 * time, wall and CPU time, memory per node and the trace hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <kw/log.h>

#include "kad_full.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: kw_kad_full [--nodes N] [--lookups L] [--seed S] [--latency MIN-MAX]\n"
		"       [--bootstrap B] [--join-interval MS] [--settle MS] [--phase MS]\n"
		"       [--ring BYTES] [--socks-per-node N] [--arena BYTES] [--progress]\n");
	exit(2);
}

static double secs(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct kw_kad_full_cfg c;
	struct kw_kad_full_report r;
	struct timespec w0, w1;
	struct rusage ru;
	int ret;

	kw_kad_full_cfg_default(&c);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--progress")) {
			c.progress = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--nodes"))
			c.nodes = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--lookups"))
			c.lookups = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--seed"))
			c.seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--latency")) {
			if (sscanf(v, "%u-%u", &c.lat_min_ms, &c.lat_max_ms) != 2)
				usage();
		} else if (!strcmp(a, "--bootstrap"))
			c.bootstrap = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--join-interval"))
			c.join_interval_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--settle"))
			c.settle_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--phase"))
			c.phase_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--ring"))
			c.ring_bytes = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--socks-per-node"))
			c.socks_per_node = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--arena"))
			c.arena_bytes = strtoull(v, NULL, 10);
		else
			usage();
	}
	/* a thousand nodes' info lines say nothing; KW_FULL_LOG=2 shows warnings (why a
	 * connection failed, rate limited to one line a node per interval) */
	kw_log_set_level(getenv("KW_FULL_LOG") ? atoi(getenv("KW_FULL_LOG")) : KW_LOG_LEVEL_ERR);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	ret = kw_kad_full_run(&c, &r);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	if (ret < 0)
		return 1;
	getrusage(RUSAGE_SELF, &ru);
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
	printf("  wall / CPU       %.1f s / %.1f s (user %.1f + sys %.1f); max RSS %.0f MiB\n",
	       (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9,
	       secs(&ru.ru_utime) + secs(&ru.ru_stime), secs(&ru.ru_utime), secs(&ru.ru_stime),
	       ru.ru_maxrss / 1024.0);
	printf("  memory           arena %zu B/node reserved, %zu used at most; network %zu B "
	       "(%.0f B/node)\n", r.arena_bytes, r.arena_used_max, r.net_bytes,
	       (double)r.net_bytes / (r.nodes_started ? r.nodes_started : 1));
	if (r.bytes_marks_merged)
		printf("  latency batches merged: %llu\n", (unsigned long long)r.bytes_marks_merged);
	printf("  trace hash       %016llx\n", (unsigned long long)r.trace_hash);
	return 0;
}
