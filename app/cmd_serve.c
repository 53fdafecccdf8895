/*
 * `kwnode serve`: a node that serves Hivemind MoE experts and/or Petals blocks until SIGINT
 * or SIGTERM (doc/serve.md). The flags set the config keys of app/serve_app.c
 * (serve_model, serve_blocks, serve_experts, serve_grid, serve_hidden); a config file may
 * give them instead. The node is the transient node of the one-shot commands
 * (kw_app_transient_open: identity in the data directory, at most 64 connections each way)
 * plus its listen addresses, the Hivemind DHT (hivemind_bootstrap peers, or none) and
 * /ipfs/kad/1.0.0 in server mode from the same peers (clients resolve its PeerID there); the
 * full daemon serves the same keys through `kwnode run` and its `serve` init entry. Unless in
 * client mode it announces what it serves on that DHT (ServerInfo of the span, expert
 * declarations; app/serve_app.c) and announces OFFLINE before it stops.
 *
 * Output: `peer-id <id>`, one `listen <multiaddr>/p2p/<id>` per address, the `serving ...`
 * lines, flushed at once (a script reads them to know where to call). Exit: 0 after a
 * signal, 1 when it cannot start, 2 usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "hivemind.h"
#include "serve_app.h"

int kw_cmd_serve(int argc, char **argv);

static volatile sig_atomic_t g_stop;

static void on_sig(int sig)
{
	(void)sig;
	g_stop = 1;
}

static bool g_offline;

static void on_offline(void *arg)
{
	(void)arg;
	g_offline = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode serve [--model DIR --blocks A:B] [--experts PREFIX [--grid N]\n"
		"                    [--hidden H]] [--listen MULTIADDR]... [--bootstrap MULTIADDR]...\n"
		"                    [--client] [--config FILE] [--data-dir DIR]\n"
		"  --model DIR       a Hugging Face LLaMA checkpoint directory; with --blocks A:B\n"
		"                    serves blocks A..B-1 (int8) as Petals blocks <name>.<i>,\n"
		"                    <name> = DIR's last component with '.' -> '-'\n"
		"  --experts PREFIX  serves an N x N grid of GENERATED hivemind ffn experts\n"
		"                    PREFIX.<i>.<j> (deterministic weights: tools/model writes\n"
		"                    no expert grid); --grid N (default 4), --hidden H (default 64)\n"
		"  --listen ADDR     listen address (default: the config's, else Kconfig's)\n"
		"  --bootstrap ADDR  a Hivemind DHT peer to join (multiaddr with /p2p/)\n"
		"  --client          Hivemind DHT client mode (reported by Petals rpc_info)\n"
		"Prints peer-id, listen and serving lines, then serves until SIGINT/SIGTERM.\n"
		"Call it with `kwnode info` and `kwnode call` (doc/serve.md).\n");
}

static int set(struct kw_config *cfg, const char *key, const char *v)
{
	char err[512];

	if (kw_config_set(cfg, key, v, err, sizeof(err)) < 0) {
		fprintf(stderr, "kwnode serve: %s\n", err);
		return -1;
	}
	return 0;
}

int kw_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "blocks", required_argument, NULL, 'B' },
		{ "experts", required_argument, NULL, 'e' },
		{ "grid", required_argument, NULL, 'g' },
		{ "hidden", required_argument, NULL, 'H' },
		{ "listen", required_argument, NULL, 'l' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "client", no_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct kw_config cfg;   /* large: not on the stack */
	static struct kw_app_serve as;
	const char *config_file = NULL;
	const char *set_k[16], *set_v[16];
	int n_set = 0, c, code = 1;
	bool listen_given = false, boot_given = false;
	struct kw_app_transient t;
	struct kw_hm *hm = NULL;
	struct kw_hm_dht *d = NULL;
	struct kw_kad *kad = NULL;
	struct kw_app_hm *st = NULL;
	struct sigaction sa;
	char err[512], buf[1024];

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		const char *key = NULL;

		switch (c) {
		case 'm': key = "serve_model"; break;
		case 'B': key = "serve_blocks"; break;
		case 'e': key = "serve_experts"; break;
		case 'g': key = "serve_grid"; break;
		case 'H': key = "serve_hidden"; break;
		case 'l': key = "listen"; listen_given = true; break;
		case 'b': key = "hivemind_bootstrap"; boot_given = true; break;
		case 'C': key = "hivemind_client"; break;
		case 'd': key = "data_dir"; break;
		case 'c': config_file = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (key && n_set < 16) {
			set_k[n_set] = key;
			set_v[n_set++] = c == 'C' ? "on" : optarg;
		} else if (key) {
			fprintf(stderr, "kwnode serve: too many options\n");
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	kw_config_defaults(&cfg);
	if (config_file && kw_config_load(&cfg, config_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "kwnode serve: %s: %s\n", config_file, err);
		return 1;
	}
	if (listen_given)
		kw_config_clear_listen(&cfg);   /* the command line replaces the file's */
	if (boot_given)
		cfg.n_hivemind_bootstrap = 0;
	for (int i = 0; i < n_set; i++)
		if (set(&cfg, set_k[i], set_v[i]) < 0)
			return 2;
	if (!cfg.serve_model[0] && !cfg.serve_experts[0]) {
		fprintf(stderr, "kwnode serve: nothing to serve: give --model DIR --blocks A:B "
			"and/or --experts PREFIX\n");
		return 2;
	}
	if (kw_app_transient_open(&t, "kwnode serve", &cfg, (size_t)64 << 20) < 0)
		return 1;
	for (int i = 0; i < cfg.n_listen; i++) {
		int ret = kw_swarm_listen(t.sw, cfg.listen[i]);

		if (ret < 0) {
			fprintf(stderr, "kwnode serve: cannot listen on %s: %s\n", cfg.listen[i],
				kw_strerror(ret));
			goto out;
		}
	}
	/* /ipfs/kad/1.0.0 as p2pd runs it for hivemind (-dhtServer=1 unless client mode), from
	 * the same bootstrap peers: clients find this server's addresses by its PeerID */
	if (kw_app_transient_kad(&t, "kwnode serve", cfg.hivemind_client,
				 (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
				 cfg.n_hivemind_bootstrap, &kad) < 0)
		goto out;
	if (kw_app_hm_start(t.n, t.sw, t.id, kad, cfg.hivemind_client,
			    (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
			    cfg.n_hivemind_bootstrap, &hm, &d, &st) < 0) {
		fprintf(stderr, "kwnode serve: cannot start the Hivemind RPC layer\n");
		goto out;
	}
	if (kw_app_serve_open(&as, &cfg, hm, cfg.hivemind_client, err, sizeof(err)) < 0) {
		fprintf(stderr, "kwnode serve: %s\n", err);
		goto out;
	}
	kw_serve_set_connect(as.s, kw_app_hm_dial, d);   /* next_servers we are not connected to */
	if (kw_peer_id_to_text(kw_swarm_peer_id(t.sw), buf, sizeof(buf)) == 0)
		printf("peer-id %s\n", buf);
	for (size_t i = 0; i < kw_swarm_listen_count(t.sw); i++)
		if (kw_swarm_listen_addr(t.sw, i, buf, sizeof(buf)) == 0)
			printf("listen %s\n", buf);
	kw_app_serve_print(&as, stdout);
	if (!cfg.hivemind_client) {
		/* the ServerInfo / expert declarations of what was loaded (app/serve_app.c) */
		struct kw_hm_announce_cfg ac;
		bool measured;

		kw_app_serve_announce_cfg(&as, &cfg, &ac, &measured);
		if (kw_app_hm_announce_begin(t.n, st, t.sw, NULL, &ac) == 0)
			printf("announce %s %u:%u, %u expert%s, throughput %.3f (%s)\n",
			       ac.prefix[0] ? ac.prefix : "-", ac.start_block, ac.end_block,
			       ac.n_experts, ac.n_experts == 1 ? "" : "s", ac.info.throughput,
			       measured ? "measured" : cfg.hivemind_throughput > 0 ? "configured" :
			       "none");
		fflush(stdout);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;   /* no SA_RESTART: the loop's wait returns at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!g_stop)
		kw_loop_run_once(&t.n->loop, 500);
	code = 0;
	fprintf(stderr, "kwnode serve: stopping\n");
	if (kw_app_hm_announce_offline(st, on_offline, NULL) == 0) {
		/* OFFLINE first, as Petals does on shutdown, bounded by shutdown_drain_ms */
		uint64_t end = kw_loop_now(&t.n->loop) + cfg.node.shutdown_drain_ms;

		g_offline = false;
		while (!g_offline && kw_loop_now(&t.n->loop) < end)
			kw_loop_run_once(&t.n->loop, 50);
	}
out:
	kw_app_hm_announce_end(st);
	kw_app_hm_stop(st);
	if (as.s)
		kw_serve_stop(as.s);   /* the compute lane answers or refuses its jobs first */
	kw_app_transient_kad_close(kad);   /* before the swarm: its streams report to it */
	kw_app_transient_close(&t);   /* the swarm goes first: no handler runs afterwards */
	kw_app_serve_close(&as);
	return code;
}
