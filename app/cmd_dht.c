/*
 * `kwnode dht put|get|provide|find-providers|find-peer ...`: one DHT operation.
 *
 * If a node runs with the same data directory (its control socket <data_dir>/control.sock
 * answers), the operation runs on that node (app/control.c). Otherwise a transient node
 * starts with the identity in the data directory (created if missing), listening on
 * 127.0.0.1 with an ephemeral port (so provider records it announces carry an address), in
 * DHT client mode (it will be gone in a moment: others should not keep it in their tables),
 * dials the bootstrap peers, waits until its routing table holds a peer (or gives up after
 * --wait-ms with a message saying so), runs the operation, prints the result and exits.
 *
 * Output: app/dht.h's kw_dht_print. Exit: 0 success (put/provide: stored on >= 1 peer),
 * 1 not found / failed / cannot join, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/keyfile.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "cli.h"
#include "dht.h"

int kw_cmd_dht(int argc, char **argv);

#define POLL_MS 20u

struct dht_cli {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_timer timer;
	uint64_t deadline_ms;
	uint32_t wait_ms;
	int n_boot;
	bool started;
	int code;
	struct kw_dht_req req;
	char out[KW_DHT_REPLY_MAX];
	size_t out_len;
};

static struct dht_cli g_cli;  /* 60 KiB of request and reply: not on the stack */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode dht [options] put KEY VALUE | get KEY | provide CID |\n"
		"                            find-providers CID | find-peer PEERID\n"
		"  put KEY VALUE     store VALUE under KEY (a /kwaai/... key is signed with the\n"
		"                    node's identity); prints on how many peers it was stored\n"
		"  get KEY           print the value (only its bytes) on stdout; exit 1 if none\n"
		"  provide CID       announce this node as a provider of CID\n"
		"  find-providers CID  print the providers' peer IDs, one per line\n"
		"  find-peer PEERID  print the peer's multiaddrs, one per line\n"
		"  -d, --data-dir DIR        identity (created if missing); if a node runs with this\n"
		"                            directory, the operation runs on it (default %s)\n"
		"  -b, --bootstrap MULTIADDR bootstrap peer with /p2p/; repeatable (transient node)\n"
		"  -c, --config FILE         read bootstrap (and other) keys from a config file\n"
		"  -x, --hex                 KEY is hex bytes\n"
		"  -X, --value-hex           put's VALUE is hex bytes (any bytes, NUL included)\n"
		"  -w, --wait-ms MS          how long the transient node waits to join (default 10000)\n"
		"  -v, --verbose             debug logging\n"
		"  -h, --help                this help\n",
		CONFIG_KW_DATA_DIR);
}

/* ---- against a running node ------------------------------------------------------------- */

/*
 * Runs the request on the node serving <data_dir>/control.sock. Return: the exit code, or
 * -1 when no node answers there (then the caller starts its own).
 */
static int via_control(const char *data_dir, const struct kw_dht_req *r)
{
	static char line[KW_DHT_LINE_MAX + 2];
	size_t got;
	long len;
	int ret;

	len = kw_dht_req_encode(r, line, sizeof(line));
	ret = kw_app_control_call("kwnode dht", data_dir, line, len > 0 ? (size_t)len : 0,
				  g_cli.out, sizeof(g_cli.out), &got);
	if (ret != 0)
		return ret;
	if (got == 0 || !memmem(g_cli.out, got, "exit ", 5)) {
		fprintf(stderr, "kwnode dht: the running node closed the control connection "
			"without an answer\n");
		return 1;
	}
	return kw_dht_print(g_cli.out, got);
}

/* ---- a transient node ------------------------------------------------------------------- */

static void on_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	struct dht_cli *c = (struct dht_cli *)user;

	c->out_len = kw_dht_format(&c->req, r, c->out, sizeof(c->out));
	kw_loop_stop(&c->n->loop, 0);
}

static void fail_now(struct dht_cli *c, const char *msg, int code)
{
	c->out_len = kw_dht_format_error(msg, code, c->out, sizeof(c->out));
	kw_loop_stop(&c->n->loop, 0);
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct dht_cli *c = (struct dht_cli *)t->arg;
	char msg[200];
	int ret;

	if (kw_kad_rt_size(kw_kad_table(c->kad)) == 0) {
		if (kw_loop_now(l) < c->deadline_ms) {
			kw_timer_start(l, t, POLL_MS);
			return;
		}
		snprintf(msg, sizeof(msg), "could not join the DHT: no peer reachable through %d "
			 "bootstrap peer%s within %u ms", c->n_boot, c->n_boot == 1 ? "" : "s",
			 c->wait_ms);
		fail_now(c, msg, 1);
		return;
	}
	ret = kw_dht_req_start(c->kad, &c->req, on_done, c);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot start the operation: %s", kw_strerror(ret));
		fail_now(c, msg, 1);
	}
}

static int transient(struct dht_cli *c, struct kw_config *cfg)
{
	struct kw_app_transient t;
	struct kw_kad_cfg kc;
	struct kw_multiaddr ma;
	char err[KW_MADDR_ERR_MAX];
	int ret, i;

	if (cfg->n_bootstrap == 0) {
		fprintf(stderr, "kwnode dht: no node runs with data directory %s and no bootstrap "
			"peer is given (--bootstrap MULTIADDR, or bootstrap = ... in -c FILE)\n",
			cfg->data_dir);
		return 1;
	}
	if (kw_app_transient_open(&t, "kwnode dht", cfg, (size_t)48 << 20) < 0)
		return 1;
	c->n = t.n;
	c->sw = t.sw;
	c->id = t.id;
	kw_kad_cfg_default(&kc);
	kc.self = kw_swarm_peer_id(c->sw);
	kc.client_mode = true;
	kc.key = kw_swarm_key(c->sw);
	ret = kw_kad_swarm_create(c->sw, c->id, &c->n->arena, &kc, &c->kad);
	if (ret == 0)
		ret = kw_swarm_listen(c->sw, "/ip4/127.0.0.1/tcp/0");
	for (i = 0; ret == 0 && i < cfg->n_bootstrap; i++) {
		ret = kw_maddr_from_text(cfg->bootstrap[i], &ma, err, sizeof(err));
		if (ret == 0)
			ret = kw_kad_bootstrap_add(c->kad, &ma);
		if (ret < 0)
			fprintf(stderr, "kwnode dht: bootstrap peer %s: %s\n", cfg->bootstrap[i],
				kw_strerror(ret));
	}
	if (ret < 0) {
		fprintf(stderr, "kwnode dht: cannot start the node: %s\n", kw_strerror(ret));
		c->code = 1;
		goto out;
	}
	c->n_boot = cfg->n_bootstrap;
	kw_timer_init(&c->timer, on_tick, c);
	c->deadline_ms = kw_loop_now(&c->n->loop) + c->wait_ms;
	kw_timer_start(&c->n->loop, &c->timer, 0);
	kw_loop_run(&c->n->loop);
	kw_timer_cancel(&c->n->loop, &c->timer);
	c->code = kw_dht_print(c->out, c->out_len);
out:
	if (c->kad)
		kw_kad_swarm_destroy(c->kad);
	kw_app_transient_close(&t);
	return c->code;
}

int kw_cmd_dht(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "config", required_argument, NULL, 'c' },
		{ "hex", no_argument, NULL, 'x' },
		{ "value-hex", no_argument, NULL, 'X' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_config cfg;
	struct dht_cli *c = &g_cli;
	struct kw_app_cli cli;
	char err[256];
	int o, ret;
	unsigned flags = 0;

	memset(c, 0, offsetof(struct dht_cli, req));
	kw_app_cli_init(&cli, "kwnode dht");
	optind = 1;
	/* "+": options stop at the verb, so a VALUE starting with '-' stays a value */
	while ((o = kw_app_cli_getopt(&cli, argc, argv, "+d:b:c:xXw:vh", opts)) != -1) {
		switch (o) {
		case KW_APP_CLI_BAD: return 2;
		case 'x': flags |= KW_DHT_KEY_HEX; break;
		case 'X': flags |= KW_DHT_VALUE_HEX; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	c->wait_ms = cli.wait_ms;
	if (optind >= argc) {
		fprintf(stderr, "kwnode dht: missing the operation\n");
		usage(stderr);
		return 2;
	}
	ret = kw_dht_req_parse(&c->req, argv[optind], argc - optind - 1, argv + optind + 1, flags,
			       err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "kwnode dht: %s\n", err);
		return 2;
	}
	if (kw_app_cli_config(&cli, &cfg, "bootstrap") < 0)
		return 2;
	ret = via_control(cfg.data_dir, &c->req);
	if (ret >= 0)
		return ret;
	return transient(c, &cfg);
}
