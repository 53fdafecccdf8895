/*
 * `kwnode average`: one process joins a hivemind averaging group and averages a float32
 * tensor with it (doc/ml-avg.md "Running a round by hand").
 *
 * A transient node listens (--listen), dials every --initial-peers address and bootstraps its
 * Hivemind DHT from them; a groupmate it is not connected to is dialled through the DHT's
 * address book when the round needs it (app/avg_run.c, avg_net's connect). Each
 * round: matchmaking declares us under "{prefix}.0b" in the DHT (subkey = our PeerID bytes,
 * value True, expiration = our declared expiration, as hivemind's key_manager.py does), reads
 * the key back every 300 ms while we search, and runs kw_avg_mm over rpc_join_group; the
 * group then all-reduces over rpc_aggregate_part. One line per round on stdout:
 *   round R: group G peers P used U excluded [i:reason,...] bytes_sent B ratio X time_ms T
 * The input is raw little-endian float32 (--size values), the output the same.
 *
 * The rounds themselves are app/avg_run.c's (shared with the daemon's `avg` entry); this
 * file parses the flags, prints the lines and counts rounds. The tensor, the averager's
 * arena and the node's arena are allocated once at start-up (a one-shot command, like
 * cmd_call.o); nothing is allocated per part.
 *
 * Exit: 0 every round ran (with at least one other peer), 1 a failure, 2 usage.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/ml/avg.h>
#include <kw/ml/codec.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "avg.h"
#include "avg_run.h"
#include "hivemind.h"

int kw_cmd_average(int argc, char **argv);

#define PEERS_MAX 16

struct avg_cli {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_avgrun *run;
	float *x;
	unsigned rounds, round;
	uint32_t timeout_ms;
	int dials_left, code;
	bool stop;
	struct kw_timer tick;
	uint64_t t0_ms;
};

static struct avg_cli g_cli;
static volatile sig_atomic_t g_sig;

static void on_sig(int s)
{
	g_sig = s;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode average --size N --input FILE --output FILE [options]\n"
		"  averages a float32 tensor with a hivemind averaging group (doc/ml-avg.md)\n"
		"  --prefix P            averager prefix (group key P.0b; default kwavg)\n"
		"  --weight W            this peer's weight (default 1; aux: 0)\n"
		"  --mode node|client|aux\n"
		"  --codec none|float16|meanstd16|uniform8|quantile8|blockwise8\n"
		"  --listen MADDR        e.g. /ip4/127.0.0.1/tcp/0\n"
		"  --initial-peers MADDR dialled and used as DHT bootstrap (repeat)\n"
		"  --data-dir DIR        identity (each process its own)\n"
		"  --group-size N        assemble at N peers (target_group_size; default 16)\n"
		"  --min-group N         smallest group to run (default 2)\n"
		"  --match-ms MS         matchmaking time per attempt (default 3000)\n"
		"  --rounds R            rounds to run (default 1)\n"
		"  --part-bytes B        part_size_bytes (default 524288, hivemind's)\n"
		"  --sender-timeout-ms MS, --round-timeout-ms MS\n"
		"  --timeout-ms MS       give up (exit 1) after this long (default 120000)\n"
		"  -v, --verbose         debug log on stderr\n");
}

/* ---- rounds (app/avg_run.c runs them; this prints them and counts) ----------------------- */

static void finish(struct avg_cli *c, int code)
{
	c->code = code;
	c->stop = true;
}

static void on_round(struct kw_app_avgrun *run, const struct kw_avg_result *r, void *user)
{
	struct avg_cli *c = user;
	int err;

	if (r->err && !r->time_ms && !r->peers_used) {
		/* the round could not start (matchmaking or the all-reduce refused) */
		fprintf(stderr, "kwnode average: round %u: %s\n", c->round, kw_strerror(r->err));
		finish(c, 1);
		return;
	}
	printf("round %u: peers %u used %u excluded [", c->round, r->peers_used + r->n_excluded,
	       r->peers_used);
	for (unsigned i = 0, first = 1; i < KW_AVG_GROUP_MAX; i++)
		if (r->excluded_mask >> i & 1) {
			printf("%s%u:%s", first ? "" : ",", i, r->reason[i]);
			first = 0;
		}
	printf("] bytes_sent %llu ratio %.3f values_failed %llu time_ms %llu\n",
	       (unsigned long long)r->bytes_sent, r->compression_ratio,
	       (unsigned long long)r->values_failed, (unsigned long long)r->time_ms);
	fflush(stdout);
	if (r->err) {
		finish(c, 1);
		return;
	}
	if (++c->round >= c->rounds) {
		finish(c, 0);
		return;
	}
	err = kw_app_avgrun_round(run);
	if (err < 0) {
		fprintf(stderr, "kwnode average: matchmaking: %s\n", kw_strerror(err));
		finish(c, 1);
	}
}

static void on_group(struct kw_app_avgrun *run, const struct kw_avg_group *gr, void *user)
{
	struct avg_cli *c = user;

	(void)run;
	printf("group %u: %u peers, we are %u, id %02x%02x%02x%02x\n", c->round, gr->n, gr->self,
	       gr->group_id[0], gr->group_id[1], gr->group_id[2], gr->group_id[3]);
	fflush(stdout);
}

static void start_rounds(struct avg_cli *c)
{
	int r = kw_app_avgrun_round(c->run);

	if (r < 0) {
		fprintf(stderr, "kwnode average: matchmaking: %s\n", kw_strerror(r));
		finish(c, 1);
	}
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct avg_cli *c = t->arg;

	if (kw_loop_now(l) - c->t0_ms > c->timeout_ms) {
		fprintf(stderr, "kwnode average: round %u not done after --timeout-ms %u: giving up\n",
			c->round, (unsigned)c->timeout_ms);
		finish(c, 1);
		return;
	}
	kw_timer_start(l, t, 300);
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *conn, int err, void *user)
{
	struct avg_cli *c = user;

	if (err)
		fprintf(stderr, "kwnode average: dial failed: %s\n", kw_strerror(err));
	if (--c->dials_left == 0)
		start_rounds(c);
}

static void count_streams(const struct kw_pool *p, void *arg)
{
	if (!strncmp(p->name, "hm_stream", 9))
		*(size_t *)arg += p->used;
}

int kw_cmd_average(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 'N' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "weight", required_argument, NULL, 'w' },
		{ "mode", required_argument, NULL, 'M' },
		{ "codec", required_argument, NULL, 'C' },
		{ "listen", required_argument, NULL, 'l' },
		{ "initial-peers", required_argument, NULL, 'b' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "group-size", required_argument, NULL, 'G' },
		{ "min-group", required_argument, NULL, 'g' },
		{ "match-ms", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "part-bytes", required_argument, NULL, 'P' },
		{ "sender-timeout-ms", required_argument, NULL, 's' },
		{ "round-timeout-ms", required_argument, NULL, 'T' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_config cfg;
	struct avg_cli *c = &g_cli;
	const char *in = NULL, *out = NULL, *listen = "/ip4/127.0.0.1/tcp/0", *data_dir = NULL;
	const char *boot[PEERS_MAX];
	int n_boot = 0, opt, ret;
	unsigned long long size = 0;
	struct kw_app_transient t;
	struct kw_app_hm *hst = NULL;
	struct kw_hm_stream_limits sl;
	struct kw_app_avgrun_cfg rc;
	struct kw_app_avgrun_sizes sz;
	struct kw_app_avgrun_ops ops = { .assembled = on_group, .round_done = on_round, .u = c };
	void *avg_mem = NULL;
	const char *why;
	char err[256], buf[256];
	struct sigaction sa;

	memset(c, 0, sizeof(*c));
	memset(&rc, 0, sizeof(rc));
	rc.prefix = "kwavg";
	rc.weight = -1;
	rc.target_group_size = 16;
	rc.min_group_size = 2;
	rc.match_ms = 3000;
	rc.share_state = true;
	c->rounds = 1;
	c->timeout_ms = 120000;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		char *end = NULL;

		switch (opt) {
		case 'v': kw_log_set_level(4); break;
		case 'p':
			if (strlen(optarg) >= KW_APP_AVGRUN_PREFIX_MAX || !*optarg || strchr(optarg, '.')) {
				fprintf(stderr, "kwnode average: --prefix: non-empty, no '.', < 64 bytes\n");
				return 2;
			}
			rc.prefix = optarg;
			break;
		case 'N': size = strtoull(optarg, &end, 10); break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'w': rc.weight = strtod(optarg, &end); break;
		case 'M':
			if (kw_app_avgrun_mode(optarg, &rc.mode) < 0) {
				fprintf(stderr, "kwnode average: --mode node|client|aux\n");
				return 2;
			}
			break;
		case 'C':
			if (kw_app_avgrun_codec(optarg, &rc.compression) < 0) {
				fprintf(stderr, "kwnode average: unknown --codec %s\n", optarg);
				return 2;
			}
			break;
		case 'l': listen = optarg; break;
		case 'b':
			if (n_boot == PEERS_MAX) {
				fprintf(stderr, "kwnode average: at most %d --initial-peers\n", PEERS_MAX);
				return 2;
			}
			boot[n_boot++] = optarg;
			break;
		case 'd': data_dir = optarg; break;
		case 'G': rc.target_group_size = (unsigned)strtoul(optarg, &end, 10); break;
		case 'g': rc.min_group_size = (unsigned)strtoul(optarg, &end, 10); break;
		case 'm': rc.match_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'r': c->rounds = (unsigned)strtoul(optarg, &end, 10); break;
		case 'P': rc.part_bytes = (uint32_t)strtoul(optarg, &end, 10); break;
		case 's': rc.sender_timeout_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'T': rc.round_timeout_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 't': c->timeout_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (end && *end) {
			fprintf(stderr, "kwnode average: not a number: %s\n", optarg);
			return 2;
		}
	}
	if (optind != argc || !size || size > (1ull << 30) || !in || !out || !c->rounds ||
	    rc.target_group_size < 2 || rc.target_group_size > PEERS_MAX ||
	    rc.min_group_size < 2 || rc.min_group_size > rc.target_group_size ||
	    rc.match_ms < 200) {
		usage(stderr);
		return 2;
	}
	if (rc.weight < 0)
		rc.weight = rc.mode == KW_AVG_AUX ? 0.0 : 1.0;
	if (!isfinite(rc.weight) || (rc.mode == KW_AVG_AUX && rc.weight != 0)) {
		fprintf(stderr, "kwnode average: --weight must be finite (and 0 for aux)\n");
		return 2;
	}
	rc.size = size;
	rc.now = kw_app_avgrun_wall_now;
	ret = kw_app_avgrun_sizes(&rc, &sz, &why);
	if (ret == -KW_ERANGE) {
		fprintf(stderr, "kwnode average: --part-bytes too small for the codec\n");
		return 2;
	}
	if (ret < 0) {
		fprintf(stderr, "kwnode average: %s\n", why);
		return 2;
	}
	c->x = malloc(size * sizeof(float));
	if (!c->x) {
		fprintf(stderr, "kwnode average: no memory for %llu values\n", size);
		return 1;
	}
	rc.tensor = c->x;
	if (kw_app_avgrun_tensor_read(in, c->x, size, "kwnode average") < 0) {
		free(c->x);
		return 1;
	}
	/* the averager: its arena once, here */
	avg_mem = malloc(sz.avg_arena);
	if (!avg_mem) {
		free(c->x);
		return 1;
	}

	kw_config_defaults(&cfg);
	kw_config_clear_listen(&cfg);
	if (kw_config_set(&cfg, "listen", listen, err, sizeof(err)) < 0 ||
	    (data_dir && kw_config_set(&cfg, "data_dir", data_dir, err, sizeof(err)) < 0)) {
		fprintf(stderr, "kwnode average: %s\n", err);
		return 2;
	}
	/* every groupmate may be on this machine (a group on one host, the tests): admit two
	 * connections per groupmate from one address (our dial and the DHT bootstrap's) */
	{
		static const char *const keys[] = { "conns_per_ip", "conns_per_subnet",
						    "handshakes_per_ip", "handshakes_per_subnet" };

		snprintf(buf, sizeof(buf), "%u", 4 * rc.target_group_size + 16);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (kw_config_set(&cfg, keys[i], buf, err, sizeof(err)) < 0) {
				fprintf(stderr, "kwnode average: %s\n", err);
				return 2;
			}
	}
	for (int i = 0; i < n_boot; i++)
		if (kw_config_set(&cfg, "hivemind_bootstrap", boot[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "kwnode average: --initial-peers: %s\n", err);
			return 2;
		}
	if (kw_app_transient_open(&t, "kwnode average", &cfg,
				  ((size_t)64 << 20) + (4 * rc.target_group_size + 4) * 2 *
				  (sz.msg_max + 4096) + sz.node_arena) < 0)
		return 1;
	c->n = t.n;
	c->sw = t.sw;
	c->code = 1;
	ret = kw_swarm_listen(t.sw, listen);
	if (ret == 0)
		ret = kw_app_hm_start(t.n, t.sw, t.id, NULL, false,
				      (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg.hivemind_bootstrap,
				      cfg.n_hivemind_bootstrap, &c->hm, &c->d, &hst);
	kw_hm_stream_limits_default(&sl);
	sl.streams_in = sl.streams_per_peer = sl.streams_out = sl.buf_bytes = sl.idle_ms = 0;
	kw_app_avgrun_stream_limits(&rc, &sl);
	if (ret == 0)
		ret = kw_hm_stream_setup(c->hm, &sl);
	if (ret == 0)
		ret = kw_app_avgrun_create(t.n, t.sw, c->hm, c->d, &rc, avg_mem, sz.avg_arena, &ops,
					   &c->run);
	if (ret < 0) {
		fprintf(stderr, "kwnode average: cannot start: %s\n", kw_strerror(ret));
		goto out;
	}

	if (kw_peer_id_to_text(kw_swarm_peer_id(t.sw), buf, sizeof(buf)) == 0)
		printf("peer-id %s\n", buf);
	for (size_t i = 0; i < kw_swarm_listen_count(t.sw); i++)
		if (kw_swarm_listen_addr(t.sw, i, buf, sizeof(buf)) == 0)
			printf("listen %s\n", buf);
	fflush(stdout);

	c->dials_left = 1;   /* released below, after every dial started */
	for (int i = 0; i < n_boot; i++)
		if (kw_swarm_dial(t.sw, boot[i], on_dial, c) == 0)
			c->dials_left++;
	c->t0_ms = kw_loop_now(&t.n->loop);
	kw_timer_init(&c->tick, on_tick, c);
	kw_timer_start(&t.n->loop, &c->tick, 100);
	if (--c->dials_left == 0)
		start_rounds(c);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!c->stop && !g_sig)
		kw_loop_run_once(&t.n->loop, 100);
	kw_timer_cancel(&t.n->loop, &c->tick);
	if (c->code == 0 && kw_app_avgrun_tensor_write(out, c->x, size) < 0) {
		fprintf(stderr, "kwnode average: cannot write %s\n", out);
		c->code = 1;
	}
	/* Our last deltas may still sit in send buffers, and groupmates still reduce parts of
	 * ours: leave once every stream of the group has closed (bounded), not before. */
	{
		uint64_t until = kw_loop_now(&t.n->loop) + 10000;
		size_t used = 1;

		while (used && !g_sig && kw_loop_now(&t.n->loop) < until) {
			used = 0;
			kw_node_pools_foreach(t.n, count_streams, &used);
			if (used)
				kw_loop_run_once(&t.n->loop, 20);
		}
	}
	{
		struct kw_hm_stream_stats hs;
		struct kw_swarm_stats ss;

		kw_swarm_get_stats(t.sw, &ss);
		KW_LOG_INF(avg, "swarm: streams in %llu out %llu refused %llu negotiations failed %llu "
			   "connections aborted %llu pruned %llu", (unsigned long long)ss.streams_in,
			   (unsigned long long)ss.streams_out, (unsigned long long)ss.streams_refused,
			   (unsigned long long)ss.negotiations_failed,
			   (unsigned long long)ss.conns_aborted, (unsigned long long)ss.conns_pruned);
		kw_hm_stream_get_stats(c->hm, &hs);
		KW_LOG_INF(avg, "streams: served %llu refused at the limit %llu bad frames %llu "
			   "oversized %llu cancelled by callers %llu idle deadlines %llu",
			   (unsigned long long)hs.streams_in, (unsigned long long)hs.refused_limit,
			   (unsigned long long)hs.bad_frames, (unsigned long long)hs.oversized,
			   (unsigned long long)hs.cancelled, (unsigned long long)hs.deadlines);
	}
out:
	kw_app_avgrun_destroy(c->run);
	kw_app_hm_stop(hst);
	kw_app_transient_close(&t);
	free(avg_mem);
	free(c->x);
	return c->code;
}
