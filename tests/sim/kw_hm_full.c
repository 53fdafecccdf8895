/*
 * kw_hm_full: the full-stack Hivemind DHT simulation from the command line (doc/sim.md,
 * "Hivemind DHT run"; `make sim-hivemind`). Prints one report: stores, gets and how many
 * returned the stored value, nodes asked per get, churn, virtual time, wall and CPU time,
 * memory and the trace hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <kw/log.h>

#include "hm_full.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: kw_hm_full [--nodes N] [--stores S] [--gets G] [--churn PCT] [--seed S]\n"
		"       [--subkeys PCT] [--latency MIN-MAX] [--bootstrap B] [--join-interval MS]\n"
		"       [--settle MS] [--store-phase MS] [--get-phase MS] [--down MS]\n"
		"       [--ring BYTES] [--socks-per-node N] [--arena BYTES] [--progress] [--diag]\n");
	exit(2);
}

static double secs(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

static double pct(unsigned a, unsigned b)
{
	return b ? 100.0 * a / b : 0.0;
}

int main(int argc, char **argv)
{
	struct kw_hm_full_cfg c;
	struct kw_hm_full_report r;
	struct timespec w0, w1;
	struct rusage ru;
	unsigned asked;
	int ret;

	kw_hm_full_cfg_default(&c);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--progress")) {
			c.progress = true;
			continue;
		}
		if (!strcmp(a, "--diag")) {
			c.diag = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--nodes"))
			c.nodes = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--stores"))
			c.stores = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--gets"))
			c.gets = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--churn"))
			c.churn_pct = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--subkeys"))
			c.subkey_pct = (unsigned)strtoul(v, NULL, 10);
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
		else if (!strcmp(a, "--store-phase"))
			c.store_phase_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--get-phase"))
			c.get_phase_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--down"))
			c.down_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--ring"))
			c.ring_bytes = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--socks-per-node"))
			c.socks_per_node = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--arena"))
			c.arena_bytes = strtoull(v, NULL, 10);
		else
			usage();
	}
	/* KW_FULL_LOG=2 shows warnings (why a call failed, rate limited per node) */
	kw_log_set_level(getenv("KW_FULL_LOG") ? atoi(getenv("KW_FULL_LOG")) : KW_LOG_LEVEL_ERR);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	ret = kw_hm_full_run(&c, &r);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	if (ret < 0) {
		fprintf(stderr, "kw_hm_full: %s\n", ret == -22 ? "bad options" : "set-up failed");
		return 1;
	}
	getrusage(RUSAGE_SELF, &ru);
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
	printf("  wall / CPU       %.1f s / %.1f s (user %.1f + sys %.1f); max RSS %.0f MiB\n",
	       (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9,
	       secs(&ru.ru_utime) + secs(&ru.ru_stime), secs(&ru.ru_utime), secs(&ru.ru_stime),
	       ru.ru_maxrss / 1024.0);
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
