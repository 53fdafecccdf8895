/*
 * kw_kad_bench: one kwaainet-edge DHT node (swarm + identify + ping + net/kad in server
 * mode, the same code and Kconfig sizes as `kwnode run`) that measures Kademlia lookups in a
 * swarm it joins on 127.0.0.1, and the memory a node needs to hold a given routing table.
 * Driven by tests/interop/bench-kad.mjs (`make bench-kad`), which starts the swarm.
 *
 *   kw_kad_bench --bootstrap MA [--bootstrap MA ...] [--lookups N] [--settle-ms MS]
 *                [--interval-ms MS]
 *       joins through the bootstrap peers, waits until the routing table has not grown for
 *       settle-ms (default 3000), prints `joined <table size>`, then runs N (default 200)
 *       lookups one after the other, each kw_kad_get_closest() of 32 random bytes (a full
 *       iterative lookup: the key is no peer, so no table hit ends it early), starting one
 *       at most every interval-ms (default 100, so one requester stays well under the
 *       servers' per-peer rate limit, KW_NET_KAD_RATE_PER_PEER = 20/s), and prints
 *         lookup <ms> <messages> <peers>          one line per lookup
 *         stats ...                               the node's request and table counters
 *         table <routing table size> rss <VmRSS KiB>
 *   kw_kad_bench --dial MA [--dial MA ...] [--hold]
 *       no bootstrap (so no self-lookup adds peers): dials exactly these peers, waits until
 *       identify has put each kad server in the table and it stopped growing, prints
 *         table <size> rss <VmRSS KiB>
 *       then, with --hold, keeps running until stdin closes (to sample it from outside).
 * Every line goes to stdout; the first is `peer-id <id>` then `listen <ma>`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/sys.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#define MAX_PEERS 256

static uint8_t g_arena[(size_t)CONFIG_KW_ARENA_KIB * 1024] __attribute__((aligned(64)));
static struct kw_node g_node;

static struct {
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_timer tick, pace;
	uint32_t interval_ms;
	double next_start;
	struct kw_watch in_w;
	const char *dial[MAX_PEERS];
	int n_dial;
	unsigned lookups, done;
	uint32_t settle_ms;
	bool hold, running;
	size_t last_size;
	uint64_t last_growth;
	double t0;
	uint8_t key[32];
} B;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static size_t table_size(void)
{
	return kw_kad_rt_size(kw_kad_table(B.kad));
}

static void next_lookup(void);

/* Counters of the node and its table, so a shrinking table can be explained. */
static void print_stats(void)
{
	struct kw_kad_stats ks;
	struct kw_kad_rt_stats rs;

	kw_kad_get_stats(B.kad, &ks);
	kw_kad_rt_get_stats(kw_kad_table(B.kad), &rs);
	printf("stats requests_out %llu replies_ok %llu replies_failed %llu timeouts %llu "
	       "late_replies %llu rt_added %llu rt_pings %llu rt_evicted %llu\n",
	       (unsigned long long)ks.requests_out, (unsigned long long)ks.replies_ok,
	       (unsigned long long)ks.replies_failed, (unsigned long long)ks.timeouts,
	       (unsigned long long)ks.late_replies, (unsigned long long)rs.added,
	       (unsigned long long)rs.pings, (unsigned long long)rs.evicted);
}

static void on_lookup(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	(void)k;
	(void)user;
	printf("lookup %.3f %u %zu%s%s\n", now_ms() - B.t0, r->messages, r->n_peers,
	       r->err ? " err " : "", r->err ? kw_strerror(r->err) : "");
	fflush(stdout);
	B.done++;
	next_lookup();
}

static void on_pace(struct kw_loop *l, struct kw_timer *t)
{
	(void)l;
	(void)t;
	next_lookup();
}

static void next_lookup(void)
{
	double wait = B.next_start - now_ms();
	int ret;

	if (B.done == B.lookups) {
		print_stats();
		printf("table %zu rss %ld\n", table_size(), rss_kib());
		fflush(stdout);
		kw_loop_stop(&g_node.loop, 0);
		return;
	}
	if (wait >= 1) {
		kw_timer_start(&g_node.loop, &B.pace, (uint32_t)wait);
		return;
	}
	kw_rng_bytes(B.key, sizeof(B.key));
	B.t0 = now_ms();
	B.next_start = B.t0 + B.interval_ms;
	ret = kw_kad_get_closest(B.kad, B.key, sizeof(B.key), on_lookup, NULL);
	if (ret < 0) {
		printf("lookup 0 0 0 err %s\n", kw_strerror(ret));
		B.done++;
		next_lookup();
	}
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	(void)sw;
	(void)c;
	if (err)
		fprintf(stderr, "kw_kad_bench: dial %s: %s\n", (const char *)user,
			kw_strerror(err));
}

/* Every 100 ms: start the lookups (or report the table) once the table stopped growing. */
static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	uint64_t now = kw_loop_now(l);
	size_t n = table_size();

	if (B.running)
		return;
	if (n != B.last_size) {
		B.last_size = n;
		B.last_growth = now;
	}
	if (n > 0 && now - B.last_growth >= B.settle_ms) {
		B.running = true;
		if (B.n_dial) {
			printf("table %zu rss %ld\n", n, rss_kib());
			fflush(stdout);
			if (!B.hold)
				kw_loop_stop(l, 0);
			return;
		}
		printf("joined %zu\n", n);
		fflush(stdout);
		next_lookup();
		return;
	}
	kw_timer_start(l, t, 100);
}

static void on_stdin(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	char buf[256];

	(void)ev;
	if (read(0, buf, sizeof(buf)) <= 0) {
		kw_loop_unwatch(l, w);
		kw_loop_stop(l, 0);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: kw_kad_bench (--bootstrap MA)... [--lookups N] [--settle-ms MS] [--interval-ms MS]\n"
			"       kw_kad_bench (--dial MA)... [--settle-ms MS] [--hold]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static struct kw_privkey key;
	struct kw_sys_linux sys;
	struct kw_swarm_limits lim;
	struct kw_kad_cfg kc;
	struct kw_multiaddr ma;
	const char *boot[MAX_PEERS];
	char text[512], why[KW_MADDR_ERR_MAX];
	int n_boot = 0, a, ret, i;

	B.lookups = 200;
	B.settle_ms = 3000;
	B.interval_ms = 100;
	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--bootstrap") && a + 1 < argc && n_boot < MAX_PEERS)
			boot[n_boot++] = argv[++a];
		else if (!strcmp(argv[a], "--dial") && a + 1 < argc && B.n_dial < MAX_PEERS)
			B.dial[B.n_dial++] = argv[++a];
		else if (!strcmp(argv[a], "--lookups") && a + 1 < argc)
			B.lookups = (unsigned)strtoul(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--settle-ms") && a + 1 < argc)
			B.settle_ms = (uint32_t)strtoul(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--interval-ms") && a + 1 < argc)
			B.interval_ms = (uint32_t)strtoul(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "-v"))
			kw_log_set_level(4);
		else if (!strcmp(argv[a], "--hold"))
			B.hold = true;
		else
			return usage();
	}
	if (!n_boot == !B.n_dial)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || kw_key_generate(KW_KEY_ED25519, 0, &key) < 0)
		return 1;
	if (kw_sys_linux_open(&sys) < 0 ||
	    kw_node_init(&g_node, g_arena, sizeof(g_arena), &sys.sys, NULL) < 0)
		return 1;
	/* every peer of a loopback swarm dials from 127.0.0.1: no per-address inbound limits */
	kw_swarm_limits_default(&lim);
	lim.conns_per_ip = lim.conns_per_subnet = 1024;
	lim.handshakes_per_ip = lim.handshakes_per_subnet = 256;
	ret = kw_swarm_create(&g_node, &key, &lim, &B.sw);
	if (ret == 0)
		ret = kw_identify_init(B.sw, &B.id);
	if (ret == 0)
		ret = kw_ping_register(B.sw);
	if (ret == 0) {
		kw_kad_cfg_default(&kc);
		kc.self = kw_swarm_peer_id(B.sw);
		kc.key = kw_swarm_key(B.sw);
		ret = kw_kad_swarm_create(B.sw, B.id, &g_node.arena, &kc, &B.kad);
	}
	if (ret == 0)
		ret = kw_swarm_listen(B.sw, "/ip4/127.0.0.1/tcp/0");
	for (i = 0; ret == 0 && i < n_boot; i++) {
		ret = kw_maddr_from_text(boot[i], &ma, why, sizeof(why));
		if (ret == 0)
			ret = kw_kad_bootstrap_add(B.kad, &ma);
	}
	for (i = 0; ret == 0 && i < B.n_dial; i++)
		ret = kw_swarm_dial(B.sw, B.dial[i], on_dial, (void *)B.dial[i]);
	if (ret < 0) {
		fprintf(stderr, "kw_kad_bench: %s\n", kw_strerror(ret));
		return 1;
	}
	kw_peer_id_to_text(kw_swarm_peer_id(B.sw), text, sizeof(text));
	printf("peer-id %s\n", text);
	if (kw_swarm_listen_addr(B.sw, 0, text, sizeof(text)) == 0)
		printf("listen %s\n", text);
	fflush(stdout);
	kw_timer_init(&B.tick, on_tick, NULL);
	kw_timer_init(&B.pace, on_pace, NULL);
	kw_timer_start(&g_node.loop, &B.tick, 100);
	if (B.hold)
		kw_loop_watch(&g_node.loop, &B.in_w, 0, KW_EV_READ, on_stdin, NULL);
	ret = kw_loop_run(&g_node.loop);
	kw_kad_swarm_destroy(B.kad);
	kw_swarm_destroy(B.sw);
	kw_sys_linux_close(&sys);
	return ret < 0 ? 1 : 0;
}
