/*
 * `kwnode ping <multiaddr> [-n N] [-i MS] [-t TYPE]`: dials a libp2p peer (the /p2p/ part, if
 * present, must match the Noise identity), pings it on one /ipfs/ping/1.0.0 stream and prints
 * round trips like ping(8). Uses an ephemeral identity (Ed25519 unless -t names another
 * built-in type: tests use it to make the target verify each key type) and a private node on
 * the heap (start-up allocation only, kw_node_create_heap).
 *
 * Output (stable, parsed by tests):
 *   PING <multiaddr> (/ipfs/ping/1.0.0)
 *   32 bytes from <peer-id>: seq=<n> time=<ms> ms
 *   --- <peer-id> ping statistics ---
 *   <sent> pings sent, <received> received, <loss>% loss
 * where <sent> counts pings actually written (fewer than -n when the target went away).
 *   rtt min/avg/max = <ms>/<ms>/<ms> ms
 * Exit: 0 when every ping was answered, 1 otherwise, 2 on bad usage (each usage error names
 * the argument and what is wrong with it). When the pings are done the connection is closed
 * gracefully (yamux go-away, then FIN), so the target logs a normal close, not a reset.
 *
 * A /dns, /dns4 or /dns6 target is resolved here with getaddrinfo before the loop starts:
 * this is a one-shot command, not the daemon, so a blocking lookup costs nothing.
 */
#include <getopt.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

int kw_cmd_ping(int argc, char **argv);

struct ping_cli {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_ping ping;
	char peer[KW_PEER_ID_TEXT_MAX];
	uint32_t count, got;
	double min, max, sum;
	int err;
};

static uint64_t mono_us(void *arg)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_ping(struct kw_ping *p, uint32_t seq, uint64_t rtt_us, int err, bool done)
{
	struct ping_cli *pc = (struct ping_cli *)p->user;
	double ms = (double)rtt_us / 1000.0;

	if (!done) {
		printf("%d bytes from %s: seq=%u time=%.3f ms\n", KW_PING_SIZE, pc->peer, seq, ms);
		fflush(stdout);
		if (pc->got == 0 || ms < pc->min)
			pc->min = ms;
		if (ms > pc->max)
			pc->max = ms;
		pc->sum += ms;
		pc->got++;
		return;
	}
	pc->err = err;
	kw_node_request_stop(pc->n);  /* go-away to the peer, stop once the connection is gone */
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct ping_cli *pc = (struct ping_cli *)user;
	int ret;

	if (err < 0) {
		fprintf(stderr, "kwnode ping: connect: %s\n", kw_strerror(err));
		pc->err = err;
		kw_loop_stop(&pc->n->loop, 0);
		return;
	}
	kw_peer_id_to_text(kw_conn_peer_id(c), pc->peer, sizeof(pc->peer));
	ret = kw_ping_start(&pc->ping, sw, c, pc->count, pc->ping.interval_ms, on_ping, pc);
	if (ret < 0) {
		fprintf(stderr, "kwnode ping: %s\n", kw_strerror(ret));
		pc->err = ret;
		kw_loop_stop(&pc->n->loop, 0);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kwnode ping <multiaddr> [-n COUNT] [-i INTERVAL_MS] [-t KEY_TYPE]\n"
		   "  multiaddr  /ip4|/ip6|/dns|/dns4|/dns6/<addr>/tcp/<port>[/p2p/<peer-id>]\n"
		   "  -n, --count COUNT      pings to send, 1..1000000 (default 4)\n"
		   "  -i, --interval MS      wait between pings, 0..3600000 (default 1000)\n"
		   "  -t, --key-type TYPE    our ephemeral identity: ed25519 (default), secp256k1,\n"
		   "                         ecdsa or rsa (2048 bits)\n"
		   "  -v, --verbose          debug logging\n"
		   "  -h, --help             this help\n");
}

/* Parses a number option strictly; on error prints which option and why. */
static int num_opt(const char *name, const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	int ret = kw_config_parse_u32(v, lo, hi, out);

	if (ret < 0)
		fprintf(stderr, "kwnode ping: %s '%s': %s (expected a whole number %u..%u)\n", name, v,
			ret == -KW_ERANGE ? "out of range" : "not a number", lo, hi);
	return ret;
}

/*
 * Turns a /dns|/dns4|/dns6/<host>/... target into /ip4|/ip6/<addr>/... in out.
 * Return: 0 (out holds the target unchanged when it is not a DNS address), 1 when the lookup
 * failed (message printed), 2 when the target is malformed (message printed).
 */
static int resolve_target(const char *target, char *out, size_t cap)
{
	struct kw_multiaddr ma;
	struct addrinfo hints, *res = NULL;
	char err[KW_MADDR_ERR_MAX], host[256], ip[INET6_ADDRSTRLEN];
	const char *p, *rest;
	size_t hlen;
	int family = AF_UNSPEC, ret;

	ret = kw_maddr_from_text(target, &ma, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "kwnode ping: multiaddr '%s': %s\n", target,
			err[0] ? err : kw_strerror(ret));
		return 2;
	}
	if (!strncmp(target, "/dns4/", 6))
		family = AF_INET, p = target + 6;
	else if (!strncmp(target, "/dns6/", 6))
		family = AF_INET6, p = target + 6;
	else if (!strncmp(target, "/dns/", 5))
		p = target + 5;
	else
		return snprintf(out, cap, "%s", target) < (int)cap ? 0 : 2;
	rest = strchr(p, '/');
	hlen = rest ? (size_t)(rest - p) : strlen(p);
	if (!rest || hlen == 0 || hlen >= sizeof(host)) {
		fprintf(stderr, "kwnode ping: multiaddr '%s': expected /dns*/<host>/tcp/<port>\n",
			target);
		return 2;
	}
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	ret = getaddrinfo(host, NULL, &hints, &res);
	if (ret != 0 || !res) {
		fprintf(stderr, "kwnode ping: cannot resolve '%s': %s\n", host, gai_strerror(ret));
		return 1;
	}
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, ip,
			  sizeof(ip));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, ip,
			  sizeof(ip));
	ret = snprintf(out, cap, "/%s/%s%s", res->ai_family == AF_INET ? "ip4" : "ip6", ip, rest);
	freeaddrinfo(res);
	return ret > 0 && ret < (int)cap ? 0 : 2;
}

int kw_cmd_ping(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "key-type", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_privkey key;
	struct ping_cli pc;
	struct kw_sys_linux sys;
	struct kw_swarm_limits lim;
	const char *target = NULL;
	char dial[KW_MADDR_TEXT_MAX];
	uint32_t interval = 1000;
	enum kw_key_type ktype = KW_KEY_ED25519;
	int c, ret, i;

	memset(&pc, 0, sizeof(pc));
	pc.count = 4;
	optind = 1;
	/* the multiaddr may come before or after the options */
	for (i = 1; i < argc; i++)
		if (argv[i][0] == '/' && !target)
			target = argv[i];
	while ((c = getopt_long(argc, argv, "n:i:t:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (num_opt("-n/--count", optarg, 1, 1000000, &pc.count) < 0)
				return 2;
			break;
		case 'i':
			if (num_opt("-i/--interval", optarg, 0, 3600000, &interval) < 0)
				return 2;
			break;
		case 't':
			if (kw_key_type_from_name(optarg, &ktype) < 0 ||
			    !kw_key_type_supported(ktype)) {
				fprintf(stderr, "kwnode ping: -t/--key-type '%s': not a key type built "
					"into this kwnode\n", optarg);
				return 2;
			}
			break;
		case 'v': kw_log_set_level(4); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!target) {
		fprintf(stderr, "kwnode ping: missing the target multiaddr (it starts with '/')\n");
		usage(stderr);
		return 2;
	}
	ret = resolve_target(target, dial, sizeof(dial));
	if (ret != 0)
		return ret;
	ret = kw_key_generate(ktype, 0, &key);
	if (ret < 0 || kw_sys_linux_open(&sys) < 0) {
		fprintf(stderr, "kwnode ping: cannot start: %s\n", kw_strerror(ret));
		return 1;
	}
	kw_swarm_limits_default(&lim);
	lim.max_conns_in = 1;
	lim.max_conns_out = 1;
	pc.n = kw_node_create_heap((size_t)32 << 20, &sys.sys, NULL);
	if (!pc.n || kw_swarm_create(pc.n, &key, &lim, &pc.sw) < 0) {
		fprintf(stderr, "kwnode ping: cannot create the node\n");
		kw_node_destroy_heap(pc.n);
		kw_sys_linux_close(&sys);
		return 1;
	}
	pc.ping.clock_us = mono_us;
	pc.ping.interval_ms = interval;
	printf("PING %s (%s)\n", target, KW_PING_PROTO);
	fflush(stdout);
	ret = kw_swarm_dial(pc.sw, dial, on_dial, &pc);
	if (ret < 0) {
		fprintf(stderr, "kwnode ping: %s: %s\n", target, kw_strerror(ret));
		pc.err = ret;
	} else {
		kw_loop_run(&pc.n->loop);
	}
	if (pc.peer[0]) {
		uint32_t sent = pc.ping.n_sent;

		printf("--- %s ping statistics ---\n", pc.peer);
		printf("%u pings sent, %u received, %u%% loss\n", sent, pc.got,
		       sent ? (unsigned)((uint64_t)(sent - pc.got) * 100u / sent) : 0u);
		if (pc.got)
			printf("rtt min/avg/max = %.3f/%.3f/%.3f ms\n", pc.min, pc.sum / pc.got, pc.max);
		if (pc.err < 0)
			fprintf(stderr, "kwnode ping: %s\n", kw_strerror(pc.err));
	}
	kw_swarm_destroy(pc.sw);
	kw_node_destroy_heap(pc.n);
	kw_sys_linux_close(&sys);
	return pc.got == pc.count && pc.err == 0 ? 0 : 1;
}
