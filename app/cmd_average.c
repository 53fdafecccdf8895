/*
 * `kwnode average`: one process joins a hivemind averaging group and averages a float32
 * tensor with it (doc/ml-avg.md "Running a round by hand").
 *
 * A transient node listens (--listen), dials every --initial-peers address (processes on one
 * machine dial all the earlier ones, so the group is a full mesh: app/avg_net.c reaches
 * groupmates over existing connections only) and bootstraps its Hivemind DHT from them. Each
 * round: matchmaking declares us under "{prefix}.0b" in the DHT (subkey = our PeerID bytes,
 * value True, expiration = our declared expiration, as hivemind's key_manager.py does), reads
 * the key back every 300 ms while we search, and runs kw_avg_mm over rpc_join_group; the
 * group then all-reduces over rpc_aggregate_part. One line per round on stdout:
 *   round R: group G peers P used U excluded [i:reason,...] bytes_sent B ratio X time_ms T
 * The input is raw little-endian float32 (--size values), the output the same.
 *
 * The tensor, the averager's arena and the node's arena are allocated once at start-up (a
 * one-shot command, like cmd_call.o); nothing is allocated per part.
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
#include "avg_net.h"
#include "hivemind.h"

int kw_cmd_average(int argc, char **argv);

#define PEERS_MAX 16

struct avg_cli {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_avgnet *net;
	struct kw_app_avg *state_av;   /* serves rpc_download_state */
	struct kw_avg *avg;
	struct kw_codec codec;
	float *x;
	float *tens[1];
	uint64_t numel[1];
	double weight;
	enum kw_avg_mode mode;
	char prefix[64], key[96];
	struct kw_hm_dhtid key_id;
	uint8_t schema[20];
	unsigned rounds, round, group_size, min_group, max_peers;
	uint32_t match_ms, timeout_ms;
	int dials_left, code;
	bool matching, stepping, fetching, stop;
	bool decl_pending, decl_looking;
	double decl_exp;
	struct kw_timer tick;
	uint64_t t0_ms;
	struct kw_app_avgnet_match m;
	struct kw_avg_candidate cand[KW_AVG_GROUP_MAX];
	size_t n_cand;
	uint8_t self_sub[80];
	size_t self_sub_len;
};

static struct avg_cli g_cli;
static volatile sig_atomic_t g_sig;

static void on_sig(int s)
{
	g_sig = s;
}

static double wall_now(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The state a newcomer downloads (rpc_download_state): hivemind's get_current_state of the base
 * averager, metadata {"group_key": group bits} (ours are always empty) and the tensor. Shared
 * only by a NODE (hivemind: allow_state_sharing = not client_mode and not auxiliary) and only
 * between rounds: a round writes into the tensor the download reads.
 */
static int share_state(struct kw_app_avg_state *st, void *arg)
{
	static const uint8_t meta[] = { 0x81, 0xa9, 'g', 'r', 'o', 'u', 'p', '_', 'k', 'e', 'y',
					0xa0 };
	struct avg_cli *c = arg;

	if (c->mode != KW_AVG_NODE || c->stepping)
		return -KW_ENOENT;
	st->metadata = meta;
	st->metadata_len = sizeof(meta);
	st->n_tensors = 1;
	st->tensors = (const float *const *)c->tens;
	st->numel = c->numel;
	return 0;
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

static int codec_of(const char *s, enum kw_compression *c)
{
	static const struct { const char *n; enum kw_compression c; } t[] = {
		{ "none", KW_COMP_NONE }, { "float16", KW_COMP_FLOAT16 },
		{ "meanstd16", KW_COMP_MEANSTD_16BIT }, { "uniform8", KW_COMP_UNIFORM_8BIT },
		{ "quantile8", KW_COMP_QUANTILE_8BIT }, { "blockwise8", KW_COMP_BLOCKWISE_8BIT },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].n)) {
			*c = t[i].c;
			return 0;
		}
	return -1;
}

/* ---- the DHT: our entry under the group key, and reading the key back ------------------- */

static void on_store(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *res,
		     void *user)
{
	if (err || !res->n_ok)
		KW_LOG_WRN(avg, "group key not stored (%s)", err ? kw_strerror(err) : "no node took it");
}

static int store_entry(struct avg_cli *c)
{
	static const uint8_t t = 0xc3, f = 0xc2;   /* msgpack True / False */
	int r;

	/* leaving: False, expiring just after the True it replaces (key_manager.py) */
	r = kw_hm_dht_store(c->d, &c->key_id, c->self_sub, c->self_sub_len,
			    c->decl_looking ? &t : &f, 1,
			    c->decl_looking ? c->decl_exp : nextafter(c->decl_exp, INFINITY),
			    on_store, c);
	c->decl_pending = r == -KW_ELIMIT;   /* the DHT's operations are busy: next tick */
	return r == -KW_ELIMIT ? 0 : r;
}

static int declare(void *u, const char *key, double expiration, bool looking)
{
	struct avg_cli *c = u;

	c->decl_exp = expiration;
	c->decl_looking = looking;
	return store_entry(c);
}

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	struct avg_cli *c = arg;
	size_t hl, n;

	/* subkey: msgpack bin of the PeerID bytes; value: True while looking */
	if (val_len != 1 || val[0] != 0xc3 || !sub_len || c->n_cand == KW_AVG_GROUP_MAX)
		return 0;
	if (sub[0] == 0xc4 && sub_len >= 2) {
		hl = 2;
		n = sub[1];
	} else {
		return 0;
	}
	if (hl + n != sub_len || n > KW_AVG_PEER_ID_MAX || exp < wall_now(NULL))
		return 0;
	memcpy(c->cand[c->n_cand].peer_id, sub + hl, n);
	c->cand[c->n_cand].peer_id_len = n;
	c->cand[c->n_cand].expiration = exp;
	c->n_cand++;
	return 0;
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct avg_cli *c = user;
	const char *why = "";

	c->fetching = false;
	if (!c->matching || err || v->type != KW_HM_DHT_FOUND_DICTIONARY)
		return;
	c->n_cand = 0;
	if (kw_hm_dict_walk(v->value, v->len, on_entry, c, &why) < 0) {
		KW_LOG_WRN(avg, "group key holds a bad dictionary: %s", why);
		return;
	}
	kw_app_avgnet_candidates(c->net, c->cand, c->n_cand);
}

/* ---- rounds ------------------------------------------------------------------------------- */

static void start_match(struct avg_cli *c);

static void finish(struct avg_cli *c, int code)
{
	c->code = code;
	c->stop = true;
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	struct avg_cli *c = user;

	c->stepping = false;
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
	start_match(c);
}

static void on_assembled(struct kw_app_avgnet *net, int err, const struct kw_avg_group *gr,
			 const struct kw_avg_bytes *ids, void *user)
{
	struct avg_cli *c = user;
	int r;

	c->matching = false;
	if (err) {
		KW_LOG_INF(avg, "no group yet (%s): looking again", kw_strerror(err));
		start_match(c);
		return;
	}
	printf("group %u: %u peers, we are %u, id %02x%02x%02x%02x\n", c->round, gr->n, gr->self,
	       gr->group_id[0], gr->group_id[1], gr->group_id[2], gr->group_id[3]);
	fflush(stdout);
	if (c->mode != KW_AVG_AUX && c->round == 0) {
		const float *t[1] = { c->x };

		kw_avg_accumulate(c->avg, t, c->weight);
	}
	c->stepping = true;
	r = kw_app_avgnet_step(net, gr, ids, on_done, c);
	if (r < 0) {
		fprintf(stderr, "kwnode average: cannot start the round: %s\n", kw_strerror(r));
		c->stepping = false;
		finish(c, 1);
	}
}

static void start_match(struct avg_cli *c)
{
	int r;

	c->m.timeout_ms = c->match_ms;
	r = kw_app_avgnet_match(c->net, &c->m, on_assembled, c);
	if (r < 0) {
		fprintf(stderr, "kwnode average: matchmaking: %s\n", kw_strerror(r));
		finish(c, 1);
		return;
	}
	c->matching = true;
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
	if (c->decl_pending)
		store_entry(c);
	if (c->matching && !c->fetching &&
	    kw_hm_dht_get(c->d, &c->key_id, true, on_get, c) == 0)
		c->fetching = true;
	kw_timer_start(l, t, 300);
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *conn, int err, void *user)
{
	struct avg_cli *c = user;

	if (err)
		fprintf(stderr, "kwnode average: dial failed: %s\n", kw_strerror(err));
	if (--c->dials_left == 0)
		start_match(c);
}

static void count_streams(const struct kw_pool *p, void *arg)
{
	if (!strncmp(p->name, "hm_stream", 9))
		*(size_t *)arg += p->used;
}

static int read_input(struct avg_cli *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t got;

	if (!f) {
		fprintf(stderr, "kwnode average: cannot open %s\n", path);
		return -1;
	}
	got = fread(c->x, sizeof(float), c->numel[0], f);
	if (got != c->numel[0] || fgetc(f) != EOF) {
		fprintf(stderr, "kwnode average: %s does not hold exactly %llu float32 values\n",
			path, (unsigned long long)c->numel[0]);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
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
	enum kw_compression comp = KW_COMP_NONE;
	unsigned long long size = 0;
	uint32_t part_bytes = 0, sender_ms = 0, round_ms = 0;
	struct kw_app_transient t;
	struct kw_app_hm *hst = NULL;
	struct kw_hm_stream_limits sl;
	struct kw_avg_cfg acfg;
	struct kw_avg_transport tr;
	struct kw_app_avgnet_cfg ncfg;
	struct kw_arena arena;
	void *avg_mem = NULL;
	size_t msg_max, backlog;
	char err[256], buf[256];
	struct sigaction sa;

	memset(c, 0, sizeof(*c));
	strcpy(c->prefix, "kwavg");
	c->weight = -1;
	c->rounds = 1;
	c->group_size = 16;
	c->min_group = 2;
	c->match_ms = 3000;
	c->timeout_ms = 120000;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		char *end = NULL;

		switch (opt) {
		case 'v': kw_log_set_level(4); break;
		case 'p':
			if (strlen(optarg) >= sizeof(c->prefix) || !*optarg || strchr(optarg, '.')) {
				fprintf(stderr, "kwnode average: --prefix: non-empty, no '.', < 64 bytes\n");
				return 2;
			}
			strcpy(c->prefix, optarg);
			break;
		case 'N': size = strtoull(optarg, &end, 10); break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'w': c->weight = strtod(optarg, &end); break;
		case 'M':
			if (!strcmp(optarg, "node")) c->mode = KW_AVG_NODE;
			else if (!strcmp(optarg, "client")) c->mode = KW_AVG_CLIENT;
			else if (!strcmp(optarg, "aux")) c->mode = KW_AVG_AUX;
			else { fprintf(stderr, "kwnode average: --mode node|client|aux\n"); return 2; }
			break;
		case 'C':
			if (codec_of(optarg, &comp) < 0) {
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
		case 'G': c->group_size = (unsigned)strtoul(optarg, &end, 10); break;
		case 'g': c->min_group = (unsigned)strtoul(optarg, &end, 10); break;
		case 'm': c->match_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'r': c->rounds = (unsigned)strtoul(optarg, &end, 10); break;
		case 'P': part_bytes = (uint32_t)strtoul(optarg, &end, 10); break;
		case 's': sender_ms = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'T': round_ms = (uint32_t)strtoul(optarg, &end, 10); break;
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
	    c->group_size < 2 || c->group_size > PEERS_MAX || c->min_group < 2 ||
	    c->min_group > c->group_size || c->match_ms < 200) {
		usage(stderr);
		return 2;
	}
	if (c->weight < 0)
		c->weight = c->mode == KW_AVG_AUX ? 0.0 : 1.0;
	if (!isfinite(c->weight) || (c->mode == KW_AVG_AUX && c->weight != 0)) {
		fprintf(stderr, "kwnode average: --weight must be finite (and 0 for aux)\n");
		return 2;
	}
	c->max_peers = c->group_size;
	c->numel[0] = size;
	c->x = malloc(size * sizeof(float));
	if (!c->x) {
		fprintf(stderr, "kwnode average: no memory for %llu values\n", size);
		return 1;
	}
	c->tens[0] = c->x;
	if (read_input(c, in) < 0) {
		free(c->x);
		return 1;
	}

	/* the averager: its arena once, here */
	kw_codec_init(&c->codec, KW_SIMD_AUTO);
	kw_avg_cfg_default(&acfg);
	acfg.n_tensors = 1;
	acfg.tensors = c->tens;
	acfg.numel = c->numel;
	acfg.compression = comp;
	acfg.part_size_bytes = part_bytes;
	acfg.max_peers = c->max_peers;
	acfg.sender_timeout_ms = sender_ms;
	acfg.round_timeout_ms = round_ms;
	acfg.codec = &c->codec;
	{
		size_t pv = kw_avg_part_values(comp, part_bytes ? part_bytes :
					       CONFIG_KW_ML_AVG_PART_BYTES);

		if (!pv) {
			fprintf(stderr, "kwnode average: --part-bytes too small for the codec\n");
			free(c->x);
			return 2;
		}
		acfg.max_parts = (unsigned)((size + pv - 1) / pv + 1);
		msg_max = pv * 4 + 4096;   /* a part's Tensor (float32 at most) and its envelope */
	}
	avg_mem = malloc(kw_avg_arena_bytes(&acfg) + 64);
	if (!avg_mem) {
		free(c->x);
		return 1;
	}
	kw_arena_init(&arena, avg_mem, kw_avg_arena_bytes(&acfg) + 64);

	/* a CLIENT queues all its parts for a reducer at once; the others a window's worth */
	backlog = c->mode == KW_AVG_CLIENT ? size * 4 / (c->min_group - 1) + 4 * msg_max :
					     6 * msg_max;
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

		snprintf(buf, sizeof(buf), "%u", 4 * c->group_size + 16);
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
				  ((size_t)64 << 20) + (4 * c->max_peers + 4) * 2 * (msg_max + 4096) +
				  2 * c->max_peers * backlog) < 0)
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
	sl.streams_in = 2 * c->max_peers + 4;   /* parts from each groupmate, joins, spares */
	sl.streams_per_peer = 4;
	sl.streams_out = 2 * c->max_peers;
	sl.buf_bytes = (uint32_t)KW_MAX(msg_max + 64, KW_APP_AVG_CHUNK + 8192);  /* a state piece too */
	sl.idle_ms = 60000;
	if (ret == 0)
		ret = kw_hm_stream_setup(c->hm, &sl);
	memset(&ncfg, 0, sizeof(ncfg));
	ncfg.prefix = c->prefix;
	ncfg.cls = "DecentralizedAverager";
	ncfg.max_peers = c->max_peers;
	ncfg.backlog_bytes = backlog;
	ncfg.idle_ms = 60000;
	ncfg.pending_ms = 5000;
	ncfg.now = wall_now;
	if (ret == 0)
		ret = kw_app_avgnet_create(t.n, t.sw, c->hm, &ncfg, &c->net);
	if (ret == 0)
		ret = kw_app_avg_create(t.n, c->hm, c->prefix, "DecentralizedAverager", share_state, c,
					&c->state_av);
	if (ret == 0) {
		kw_app_avgnet_transport(c->net, &tr);
		ret = kw_avg_create(&t.n->loop, &arena, &acfg, &tr, &c->avg);
	}
	if (ret < 0) {
		fprintf(stderr, "kwnode average: cannot start: %s\n", kw_strerror(ret));
		goto out;
	}
	kw_app_avgnet_bind(c->net, c->avg);

	/* the group key and our entry's subkey */
	kw_avg_group_key(c->prefix, "", c->key, sizeof(c->key));
	kw_hm_dhtid_of_str(c->key, strlen(c->key), &c->key_id);
	{
		const struct kw_peer_id *self = kw_swarm_peer_id(t.sw);

		c->self_sub[0] = 0xc4;
		c->self_sub[1] = self->len;
		memcpy(c->self_sub + 2, self->bytes, self->len);
		c->self_sub_len = 2 + (size_t)self->len;
	}
	/* schema: hivemind's hash of the one float32 tensor we average, so Python averagers of a
	 * tensor of this shape join the group; compression and part size are not in it (as in
	 * hivemind), every peer must be started with the same part size */
	{
		uint64_t dim = size;

		ret = kw_app_avgnet_schema_hash(&dim, 1, c->schema);
		if (ret < 0) {
			fprintf(stderr, "kwnode average: schema hash: %s\n", kw_strerror(ret));
			goto out;
		}
	}
	c->m.key = c->key;
	c->m.schema_hash = c->schema;
	c->m.schema_hash_len = sizeof(c->schema);
	c->m.mode = c->mode;
	c->m.bandwidth = KW_AVG_BW_NONE;
	c->m.min_group_size = c->min_group;
	c->m.target_group_size = c->group_size;
	c->m.declare = declare;
	c->m.declare_arg = c;

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
		start_match(c);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!c->stop && !g_sig)
		kw_loop_run_once(&t.n->loop, 100);
	kw_timer_cancel(&t.n->loop, &c->tick);
	if (c->code == 0) {
		FILE *f = fopen(out, "wb");

		if (!f || fwrite(c->x, sizeof(float), size, f) != size) {
			fprintf(stderr, "kwnode average: cannot write %s\n", out);
			c->code = 1;
		}
		if (f && fclose(f) != 0)
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
	if (c->avg)
		kw_avg_destroy(c->avg);
	kw_app_hm_stop(hst);
	kw_app_transient_close(&t);
	free(avg_mem);
	free(c->x);
	return c->code;
}
