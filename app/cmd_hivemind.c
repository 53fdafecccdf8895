/*
 * `kwnode hivemind get|store|ping|servers ...`: one Hivemind DHT operation (doc/net-hivemind.md
 * "kwnode hivemind").
 *
 * If a node runs with the data directory (its control socket answers, app/control.c), the
 * command runs there: the parsed request goes over as one line (app/hm_line.h), the node runs
 * the same code below on its own DHT (kw_hm_cmd_start) with the output collected as reply
 * lines, and this process prints them and exits with the node's code.
 *
 * Otherwise a transient node starts with the identity in the data directory (created if
 * missing), in Hivemind client mode (it will be gone in a moment: others must not keep it in their
 * routing tables, as hivemind's client_mode), bootstraps from --bootstrap/--initial-peers
 * (or the config file's hivemind_bootstrap keys), waits until its routing table holds a
 * node (or gives up after --wait-ms with a message saying so), runs the operation, prints
 * the result and exits. With the Kademlia DHT built in it also joins it through the same
 * peers, to look up addresses of Hivemind nodes it is told about by PeerID only.
 *
 * VALUE and SUBKEY are typed in the text form of app/hm_text.c (JSON plus <hex> bytes and
 * bare words as strings); `get` prints JSON (kw_hm_mp_to_json: strict JSON with "$" objects
 * for what JSON lacks), or with --hex the hex of the msgpack bytes. store and ping print
 * text, or with --json one JSON object.
 * `servers PREFIX` reads what Petals servers of a model published (net/hivemind/records.c):
 * the number of blocks from "_petals.models" (or --num-blocks), then every "{PREFIX}.{i}"
 * with latest = true, as petals' get_remote_module_infos and the health monitor do; one line
 * (or JSON object) per server.
 *
 * Exit: 0 success (store: stored on >= 1 node; servers: >= 1 server found), 1 not found /
 * failed / cannot join, 2 usage (as `kwnode dht`).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/msgpack.h>
#include <kw/net/identify.h>
#include <kw/net/keyfile.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#ifdef CONFIG_KW_NET_KAD_SWARM
#include <kw/net/kad.h>
#endif

#include "cli.h"
#include "hivemind.h"
#include "hm_line.h"
#ifdef CONFIG_KW_NET_KAD_SWARM
#include "dht.h"   /* kw_control_path */
#endif

int kw_cmd_hivemind(int argc, char **argv);

#define POLL_MS 20u
#define KAD_WAIT_MS 3000u  /* how long the first operation waits for kad's bootstrap */
#define VAL_MAX KW_HM_REQ_VAL_MAX

#define SERVERS_MAX 128       /* servers listed by `servers` */
#define CHUNK_MAX 16          /* blocks `servers` reads at once (one get_many) */
#define BLOCKS_SCAN_MAX 100000u

enum verb { V_GET, V_STORE, V_PING, V_SERVERS };

/* One server `servers` found: what it prints of the newest entry's ServerInfo (the whole
 * struct is 2.5 KiB: 128 of them would be most of a running node's command slot), the blocks
 * listing it. */
struct hm_server {
	char peer[KW_HM_REC_PEER_MAX];
	struct {
		uint8_t state;
		uint32_t has;
		double throughput;
		uint64_t start_block, end_block;
		char public_name[KW_HM_REC_TEXT_MAX];
	} si;
	double exp;
	uint32_t first, last, n_blocks;   /* blocks whose key lists this peer */
};

struct hm_cli {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *kad;
	struct kw_hm *hm;
	struct kw_hm_dht *d;
	struct kw_app_hm *st;
	struct kw_timer timer;
	uint64_t deadline_ms;
	uint32_t wait_ms;
	int n_boot;
	bool hex, latest, subkeys;
	int code;
	enum verb verb;
	const char *key_text, *target;
	struct kw_hm_dhtid key;
	uint8_t sub[VAL_MAX], val[VAL_MAX];
	long sub_len, val_len;
	double exp_s;
	char text[4 * VAL_MAX + 64];
	/* get of a dictionary (print_dict) */
	double walk_now;
	uint32_t dict_n;
	bool dict_plain;   /* every live subkey a str not starting with '$': a JSON object */
	/* servers */
	bool json;
	uint32_t num_blocks, block, max_end;
	bool models_asked;
	uint32_t n_servers, bad_entries, dropped;
	struct hm_server servers[SERVERS_MAX];
	/* the blocks of one get_many: which block each answer is for */
	struct hm_blk {
		struct hm_cli *c;
		uint32_t block;
	} blk[CHUNK_MAX];
	uint32_t pending, chunk_end, err_block;
	int chunk_err;
	/* run by a running node for its control socket (kw_hm_cmd_start): output goes to the
	 * sink, and done() runs instead of stopping the loop */
	struct kw_hm_sink *sink;
	void (*done)(struct hm_cli *c);
};

static struct hm_cli g_cli;   /* buffers: not on the stack */

/* Output of the command: stdout/stderr, or the reply lines of a running node's sink. */
static void vout(struct hm_cli *c, int stream, const char *fmt, va_list ap)
{
	static char line[4 * VAL_MAX + 256];   /* one loop, one command at a time */
	int n;

	if (!c->sink) {
		vfprintf(stream == 2 ? stderr : stdout, fmt, ap);
		return;
	}
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n > 0)
		kw_hm_sink_write(c->sink, stream, line, KW_MIN((size_t)n, sizeof(line) - 1));
}

static void out(struct hm_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct hm_cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout(c, 1, fmt, ap);
	va_end(ap);
}

static void errp(struct hm_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errp(struct hm_cli *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->sink)
		fflush(stdout);   /* keep the order of stdout and stderr lines */
	va_start(ap, fmt);
	vout(c, 2, fmt, ap);
	va_end(ap);
}

static void outch(struct hm_cli *c, int ch)
{
	out(c, "%c", ch);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode hivemind [options] get KEY [SUBKEY] | store KEY VALUE | ping MULTIADDR\n"
		"                                 | servers PREFIX\n"
		"  get KEY [SUBKEY]   print KEY's value as JSON (a dictionary: {SUBKEY: VALUE,\n"
		"                     ..}, or only SUBKEY's value); exit 1 if none\n"
		"  store KEY VALUE    store VALUE under KEY on the nearest nodes; prints where\n"
		"  ping MULTIADDR     ping a Hivemind DHT node (multiaddr with /p2p/)\n"
		"  servers PREFIX     the Petals servers of model PREFIX (its dht_prefix): peer,\n"
		"                     state, blocks, throughput, public name; exit 1 if none\n"
		"KEY is a string (hivemind hashes msgpack(KEY)); VALUE and SUBKEY are text: JSON\n"
		"(null, true, 12, 1.5, \"text\", [..], {..}), <hex> for bytes, or a bare word (a\n"
		"string). Put -- before a VALUE that starts with '-'.\n"
		"get prints strict JSON: bytes as {\"$bin\": HEX}, ext types as {\"$ext\": N,\n"
		"\"value\": V} (or \"hex\"), NaN and infinities as {\"$float\": \"NaN\"}, maps\n"
		"JSON cannot key as {\"$map\": [[K, V], ..]} (doc/net-hivemind.md).\n"
		"  -s, --subkey S             store VALUE under subkey S of KEY (a dictionary)\n"
		"  -e, --expiration SECONDS   store: expires SECONDS from now (default 600; --ttl too)\n"
		"  -L, --latest               get: ask the whole beam for the newest value\n"
		"  -k, --subkeys              get of a dictionary: {SUBKEY: {\"value\": V,\n"
		"                             \"expiration\": UNIX_SECONDS}, ..}\n"
		"  -x, --hex                  VALUE, SUBKEY and the printed values are hex msgpack\n"
		"  -j, --json                 store, ping, servers: one JSON object on stdout\n"
		"                             (get always prints JSON)\n"
		"  -n, --num-blocks N         servers: the model's blocks (default: from\n"
		"                             _petals.models, else until the first empty block)\n"
		"  -b, --bootstrap, --initial-peers MULTIADDR  a Hivemind peer; repeatable\n"
		"  -c, --config FILE          read hivemind_bootstrap (and other) keys from FILE\n"
		"  -d, --data-dir DIR         identity (created if missing; default %s); if a\n"
		"                             node runs there, the command runs on that node\n"
		"  -w, --wait-ms MS           how long to wait to join (default 10000)\n"
		"  -v, --verbose              debug logging\n"
		"  -h, --help                 this help\n",
		CONFIG_KW_DATA_DIR);
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 > cap)
		return -KW_EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -KW_EINVAL;
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

static void print_hex(struct hm_cli *c, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out(c, "%02x", b[i]);
	out(c, "\n");
}

/* A piece of JSON, in parts a running node's reply line buffer (vout) takes whole. */
static void json_piece(void *arg, const char *s, size_t n)
{
	for (size_t k; n; s += k, n -= k) {
		k = KW_MIN(n, (size_t)VAL_MAX);
		out(arg, "%.*s", (int)k, s);
	}
}

/*
 * One value as JSON (or hex), without the newline. Bytes JSON cannot show (not one msgpack
 * value, nested too deep) print as {"$raw": HEX}, with a message on stderr saying why.
 */
static void print_json(struct hm_cli *c, const uint8_t *v, size_t n)
{
	long r = kw_hm_mp_json_emit(v, n, json_piece, c);

	if (r >= 0)
		return;
	errp(c, "kwnode hivemind: %s; printed as {\"$raw\": HEX}\n",
	     r == -KW_ELIMIT ? "the value is nested deeper or is larger than this build reads" :
			       "the value is not one msgpack value");
	out(c, "{\"$raw\": \"");
	for (size_t i = 0; i < n; i++)
		out(c, "%02x", v[i]);
	out(c, "\"}");
}

/* A number a peer sent (times, skew) as JSON: null unless finite, as JSON has no NaN. */
static void out_num(struct hm_cli *c, int decimals, double x)
{
	if (isfinite(x))
		out(c, "%.*f", decimals, x);
	else
		out(c, "null");
}

/* One value as JSON (or hex), one line. */
static void print_value(struct hm_cli *c, const uint8_t *v, size_t n)
{
	if (c->hex) {
		print_hex(c, v, n);
		return;
	}
	print_json(c, v, n);
	out(c, "\n");
}

/* Reads text (or hex) into msgpack bytes. Return: bytes or -1 (message printed). */
static long read_value(struct hm_cli *c, const char *what, const char *s, uint8_t *out)
{
	char err[160];
	long n;

	if (c->hex) {
		n = unhex(s, out, VAL_MAX);
		if (n < 0)
			fprintf(stderr, "kwnode hivemind: %s '%.40s' is not hex bytes (at most %d)\n",
				what, s, VAL_MAX);
		return n < 0 ? -1 : n;
	}
	n = kw_hm_text_to_mp(s, out, VAL_MAX, err, sizeof(err));
	if (n < 0)
		fprintf(stderr, "kwnode hivemind: %s: %s\n", what, err);
	return n < 0 ? -1 : n;
}

static void stop(struct hm_cli *c, int code)
{
	c->code = code;
	if (c->done) {
		kw_timer_cancel(&c->n->loop, &c->timer);
		c->done(c);
		return;
	}
	kw_loop_stop(&c->n->loop, 0);
}

/* ---- results ---------------------------------------------------------------------------- */

/* First pass over a dictionary: can its live subkeys be the keys of a JSON object? */
static int scan_entry(const uint8_t *sk, size_t sl, const uint8_t *val, size_t vl, double exp,
		      void *arg)
{
	struct hm_cli *c = arg;
	struct kw_mp_reader r;
	struct kw_mp_item it;

	(void)val;
	(void)vl;
	if (exp < c->walk_now)
		return 0;
	if (kw_mp_reader_init(&r, sk, sl, 0) < 0 || kw_mp_read(&r, &it) < 0 ||
	    it.type != KW_MP_STR || (it.len && it.data[0] == '$'))
		c->dict_plain = false;
	return 0;
}

/* One entry of a dictionary get found: printed unless expired (or not the SUBKEY asked). */
static int print_entry(const uint8_t *sk, size_t sl, const uint8_t *val, size_t vl, double exp,
		       void *arg)
{
	struct hm_cli *c = arg;

	if (exp < c->walk_now)
		return 0;
	if (c->sub_len) {
		if (c->dict_n || (long)sl != c->sub_len || memcmp(sk, c->sub, sl))
			return 0;
		print_value(c, val, vl);
		c->dict_n++;
		return 0;
	}
	/* {"sk": V, ..} or {"$map": [[SK, V], ..]}, V with --subkeys {"value", "expiration"} */
	out(c, "%s%s", c->dict_n ? ", " : "", c->dict_plain ? "" : "[");
	print_json(c, sk, sl);
	out(c, "%s", c->dict_plain ? ": " : ", ");
	if (c->subkeys)
		out(c, "{\"value\": ");
	print_json(c, val, vl);
	if (c->subkeys) {
		out(c, ", \"expiration\": ");
		out_num(c, 3, exp);
		out(c, "}");
	}
	if (!c->dict_plain)
		out(c, "]");
	c->dict_n++;
	return 0;
}

/* The dictionary the get merged (live entries in insertion order), read entry by entry. */
static void print_dict(struct hm_cli *c, const struct kw_hm_dht_value *v)
{
	const char *why;

	if (c->hex && !c->sub_len) {
		print_hex(c, v->value, v->len);
		stop(c, 0);
		return;
	}
	c->walk_now = wall_now();
	c->dict_n = 0;
	c->dict_plain = true;
	if (kw_hm_dict_walk(v->value, v->len, scan_entry, c, &why) < 0) {
		errp(c, "kwnode hivemind: cannot read the dictionary back (%s)\n", why);
		stop(c, 1);
		return;
	}
	if (!c->sub_len)
		out(c, "%s", c->dict_plain ? "{" : "{\"$map\": [");
	(void)kw_hm_dict_walk(v->value, v->len, print_entry, c, &why);   /* read once above */
	if (!c->sub_len)
		out(c, "%s\n", c->dict_plain ? "}" : "]}");
	if (c->sub_len && !c->dict_n) {
		errp(c, "kwnode hivemind: %s has no such subkey\n", c->key_text);
		stop(c, 1);
		return;
	}
	stop(c, 0);
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct hm_cli *c = user;

	(void)d;
	if (err < 0) {
		errp(c, "kwnode hivemind: get %s failed: %s\n", c->key_text,
			err == -KW_ENOTCONN ? "no node answered" : kw_strerror(err));
		stop(c, 1);
		return;
	}
	if (v->type == KW_HM_DHT_NOT_FOUND) {
		errp(c, "kwnode hivemind: %s not found (%u node%s asked)\n", c->key_text,
			v->visited, v->visited == 1 ? "" : "s");
		stop(c, 1);
		return;
	}
	if (v->type == KW_HM_DHT_FOUND_DICTIONARY) {
		print_dict(c, v);
		return;
	}
	if (c->sub_len) {
		errp(c, "kwnode hivemind: %s holds a plain value, not a dictionary\n",
			c->key_text);
		stop(c, 1);
		return;
	}
	print_value(c, v->value, v->len);
	stop(c, 0);
}

static void peer_text(const struct kw_hm_dht_contact *n, char *out, size_t cap)
{
	struct kw_peer_id p;

	p.len = n->peer_len;
	memcpy(p.bytes, n->peer, n->peer_len);
	if (kw_peer_id_to_text(&p, out, cap) < 0)
		snprintf(out, cap, "?");
}

static void on_store(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *r,
		     void *user)
{
	struct hm_cli *c = user;
	char id[128];

	(void)d;
	if (err < 0) {
		errp(c, "kwnode hivemind: store %s failed: %s\n", c->key_text,
			err == -KW_ENOTCONN ? "no node answered" : kw_strerror(err));
		stop(c, 1);
		return;
	}
	if (c->json) {
		/* peer ids are base58 (no escapes); the key is the user's text */
		out(c, "{\"key\": ");
		if (kw_hm_json_str(c->key_text, c->text, sizeof(c->text)) >= 0)
			out(c, "%s", c->text);
		else
			out(c, "null");
		out(c, ", \"stored_on\": %u, \"tried\": %u, \"nodes\": [", r->n_ok, r->n);
	} else {
		out(c, "stored on %u of %u node%s\n", r->n_ok, r->n, r->n == 1 ? "" : "s");
	}
	for (uint32_t i = 0; i < r->n; i++) {
		const char *outcome = !r->r[i].answered ? "no answer" :
				      r->r[i].store_ok ? "ok" : "refused";

		peer_text(&r->r[i].node, id, sizeof(id));
		if (c->json)
			out(c, "%s{\"peer\": \"%s\", \"self\": %s, \"outcome\": \"%s\"}",
			    i ? ", " : "", id, r->r[i].self ? "true" : "false", outcome);
		else
			out(c, "%s\t%s\n", r->r[i].self ? "(this node)" : id, outcome);
	}
	if (c->json)
		out(c, "]}\n");
	stop(c, r->n_ok ? 0 : 1);
}

static void on_ping(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p, void *user)
{
	struct hm_cli *c = user;
	char id[128];

	(void)d;
	if (err < 0) {
		errp(c, "kwnode hivemind: ping %s failed: %s\n", c->target,
			err == -KW_ENOPROTO ? "the peer does not serve DHTProtocol.rpc_ping "
					      "(a client-mode node?)" : kw_strerror(err));
		stop(c, 1);
		return;
	}
	peer_text(&p->node, id, sizeof(id));
	if (c->json) {
		out(c, "{\"peer\": \"%s\", \"client_mode\": %s, \"node_id\": ", id,
		    p->client ? "true" : "false");
		if (p->client) {
			out(c, "null");
		} else {
			out(c, "\"");
			for (int i = 0; i < KW_HM_DHTID_LEN; i++)
				out(c, "%02x", p->node.id.b[i]);
			out(c, "\"");
		}
		out(c, ", \"dht_time\": ");
		out_num(c, 3, p->dht_time);
		out(c, ", \"clock_skew\": ");
		out_num(c, 1, p->skew);
		out(c, "}\n");
		stop(c, 0);
		return;
	}
	out(c, "%s", id);
	if (p->client) {
		out(c, " client-mode");
	} else {
		out(c, " node_id ");
		for (int i = 0; i < KW_HM_DHTID_LEN; i++)
			out(c, "%02x", p->node.id.b[i]);
	}
	out(c, " dht_time %.3f", p->dht_time);
	if (p->skew != 0)
		out(c, " clock-skew %+.1fs", p->skew);
	out(c, "\n");
	stop(c, 0);
}

/* ---- servers ------------------------------------------------------------------------------ */

static void servers_next(struct hm_cli *c);

/* A msgpack str subkey as text. Return: 0 or -KW_EBADMSG. */
static int subkey_text(const uint8_t *sub, size_t len, char *out, size_t cap)
{
	struct kw_mp_reader r;
	struct kw_mp_item it;

	if (kw_mp_reader_init(&r, sub, len, 0) < 0 || kw_mp_read(&r, &it) < 0 ||
	    it.type != KW_MP_STR || it.len >= cap || kw_mp_reader_done(&r) < 0)
		return -KW_EBADMSG;
	memcpy(out, it.data, it.len);
	out[it.len] = '\0';
	return 0;
}

static int on_models_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val,
			   size_t val_len, double exp, void *arg)
{
	struct hm_cli *c = arg;
	struct kw_hm_model_info mi;
	char name[KW_HM_REC_UID_MAX];
	const char *why;

	(void)exp;
	if (subkey_text(sub, sub_len, name, sizeof(name)) < 0 || strcmp(name, c->key_text))
		return 0;
	if (kw_hm_model_info_decode(val, val_len, &mi, &why) < 0) {
		errp(c, "kwnode hivemind: %s[%s] is not a ModelInfo: %s\n", KW_HM_MODELS_KEY,
			name, why);
		return 0;
	}
	c->num_blocks = mi.num_blocks;
	return 0;
}

static int on_server_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val,
			   size_t val_len, double exp, void *arg)
{
	struct hm_cli *c = arg;
	struct kw_hm_server_info si;
	struct hm_server *s = NULL;
	char peer[KW_HM_REC_PEER_MAX];
	const char *why;

	if (subkey_text(sub, sub_len, peer, sizeof(peer)) < 0) {
		errp(c, "kwnode hivemind: %s.%u: an entry whose subkey is not a PeerID "
			"string; skipped\n", c->key_text, c->block);
		c->bad_entries++;
		return 0;
	}
	if (kw_hm_server_info_decode(val, val_len, &si, &why) < 0) {
		/* what get_remote_module_infos does: warn, skip that server */
		errp(c, "kwnode hivemind: %s.%u: %s: not a ServerInfo (%s); skipped\n",
			c->key_text, c->block, peer, why);
		c->bad_entries++;
		return 0;
	}
	for (uint32_t i = 0; i < c->n_servers && !s; i++)
		if (!strcmp(c->servers[i].peer, peer))
			s = &c->servers[i];
	if (!s) {
		if (c->n_servers == SERVERS_MAX) {
			c->dropped++;
			return 0;
		}
		s = &c->servers[c->n_servers++];
		memset(s, 0, sizeof(*s));
		memcpy(s->peer, peer, sizeof(peer));
		s->first = s->last = c->block;
		s->exp = -1;
	}
	if (exp > s->exp) {                 /* the newest announcement speaks for the server */
		s->si.state = si.state;
		s->si.has = si.has;
		s->si.throughput = si.throughput;
		s->si.start_block = si.start_block;
		s->si.end_block = si.end_block;
		memcpy(s->si.public_name, si.public_name, sizeof(s->si.public_name));
		s->exp = exp;
	}
	/* blocks read together (get_many) answer in any order */
	if (c->block < s->first)
		s->first = c->block;
	if (c->block > s->last)
		s->last = c->block;
	s->n_blocks++;
	if ((si.has & KW_HM_SI_END_BLOCK) && si.end_block > c->max_end &&
	    si.end_block <= BLOCKS_SCAN_MAX)
		c->max_end = (uint32_t)si.end_block;
	return 0;
}

static void json_str(struct hm_cli *c, const char *s)
{
	outch(c, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			out(c, "\\%c", ch);
		else if (ch < 0x20)
			out(c, "\\u%04x", ch);
		else
			outch(c, ch);
	}
	outch(c, '"');
}

static void print_servers(struct hm_cli *c)
{
	double now = wall_now();

	if (c->json) {
		out(c, "{\"prefix\":");
		json_str(c, c->key_text);
		out(c, ",\"num_blocks\":%u,\"bad_entries\":%u,\"servers\":[", c->num_blocks,
		       c->bad_entries);
		for (uint32_t i = 0; i < c->n_servers; i++) {
			const struct hm_server *s = &c->servers[i];

			out(c, "%s{\"peer\":\"%s\",\"state\":\"%s\",", i ? "," : "", s->peer,
			       kw_hm_state_name(s->si.state));
			if (s->si.has & KW_HM_SI_START_BLOCK)
				out(c, "\"start_block\":%llu,", (unsigned long long)s->si.start_block);
			if (s->si.has & KW_HM_SI_END_BLOCK)
				out(c, "\"end_block\":%llu,", (unsigned long long)s->si.end_block);
			out(c, "\"throughput\":%.17g,\"public_name\":", s->si.throughput);
			if (s->si.has & KW_HM_SI_PUBLIC_NAME)
				json_str(c, s->si.public_name);
			else
				out(c, "null");
			out(c, ",\"listed_in_blocks\":[%u,%u],\"count\":%u,\"expires_in\":%.1f}",
			       s->first, s->last, s->n_blocks, s->exp - now);
		}
		out(c, "]}\n");
		return;
	}
	out(c, "%s: %u block%s, %u server%s\n", c->key_text, c->num_blocks,
	       c->num_blocks == 1 ? "" : "s", c->n_servers, c->n_servers == 1 ? "" : "s");
	for (uint32_t i = 0; i < c->n_servers; i++) {
		const struct hm_server *s = &c->servers[i];
		char span[48];

		if ((s->si.has & KW_HM_SI_START_BLOCK) && (s->si.has & KW_HM_SI_END_BLOCK))
			snprintf(span, sizeof(span), "%llu:%llu",
				 (unsigned long long)s->si.start_block,
				 (unsigned long long)s->si.end_block);
		else
			snprintf(span, sizeof(span), "%u:%u?", s->first, s->last + 1);
		out(c, "%s\t%s\t%s\t%.3f\t%s\n", s->peer, kw_hm_state_name(s->si.state), span,
		       s->si.throughput,
		       (s->si.has & KW_HM_SI_PUBLIC_NAME) ? s->si.public_name : "-");
	}
	if (c->dropped)
		errp(c, "kwnode hivemind: %u more server%s not listed (at most %d)\n",
			c->dropped, c->dropped == 1 ? "" : "s", SERVERS_MAX);
}

static void servers_done(struct hm_cli *c)
{
	print_servers(c);
	if (!c->n_servers)
		errp(c, "kwnode hivemind: no server of %s found\n", c->key_text);
	stop(c, c->n_servers ? 0 : 1);
}

/* One block's (or _petals.models') answer: its servers. Return: whether it listed none. */
static bool servers_take(struct hm_cli *c, const struct kw_hm_dht_value *v, const char *uid)
{
	const char *why;

	if (v->type == KW_HM_DHT_FOUND_DICTIONARY) {
		uint32_t before = c->n_servers + c->bad_entries;

		if (kw_hm_dict_walk(v->value, v->len,
				    c->models_asked && c->block == UINT32_MAX ? on_models_entry :
				    on_server_entry, c, &why) < 0)
			errp(c, "kwnode hivemind: %s: not a dictionary (%s)\n", uid, why);
		return c->n_servers + c->bad_entries == before;
	}
	if (v->type == KW_HM_DHT_FOUND_REGULAR)
		errp(c, "kwnode hivemind: %s holds a plain value, not a dictionary of "
			"servers; skipped\n", uid);
	return true;
}

static void on_servers_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v,
			   void *user)
{
	struct hm_cli *c = user;
	bool empty;

	(void)d;
	if (err < 0) {
		errp(c, "kwnode hivemind: get %s failed: %s\n", c->text,
			err == -KW_ENOTCONN ? "no node answered" : kw_strerror(err));
		stop(c, 1);
		return;
	}
	empty = servers_take(c, v, c->text);
	if (c->block == UINT32_MAX) {
		c->block = 0;                   /* _petals.models answered: the blocks now */
	} else {
		c->block++;
		/* without a block count: stop at the first empty block past every known span */
		if (!c->num_blocks && empty && c->block > c->max_end) {
			c->num_blocks = c->block - 1;
			servers_done(c);
			return;
		}
		if (c->num_blocks && c->block >= c->num_blocks) {
			servers_done(c);
			return;
		}
	}
	servers_next(c);
}

static void servers_chunk(struct hm_cli *c);

static void on_chunk_retry(struct kw_loop *l, struct kw_timer *t)
{
	(void)l;
	servers_chunk(t->arg);
}

/* One answer of a get_many over blocks; the next chunk starts when all of them are in. */
static void on_block(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct hm_blk *b = user;
	struct hm_cli *c = b->c;
	char uid[KW_HM_REC_UID_MAX];

	(void)d;
	c->pending--;
	if (err < 0 && !c->chunk_err) {
		c->chunk_err = err;
		c->err_block = b->block;
	} else if (err == 0) {
		c->block = b->block;
		(void)kw_hm_block_uid(c->key_text, b->block, uid, sizeof(uid));
		(void)servers_take(c, v, uid);
	}
	if (c->pending)
		return;
	if (c->chunk_err) {
		(void)kw_hm_block_uid(c->key_text, c->err_block, uid, sizeof(uid));
		errp(c, "kwnode hivemind: get %s failed: %s\n", uid,
		     c->chunk_err == -KW_ENOTCONN ? "no node answered" : kw_strerror(c->chunk_err));
		stop(c, 1);
		return;
	}
	c->block = c->chunk_end;
	if (c->block >= c->num_blocks)
		servers_done(c);
	else
		servers_chunk(c);
}

/*
 * With the block count known, the blocks are read CHUNK_MAX at a time with one get_many (its
 * requests to a peer carry every block's key: DHTNode.get_many, as get_remote_module_infos
 * does), as many as there are free DHT operations.
 */
static void servers_chunk(struct hm_cli *c)
{
	struct kw_hm_dhtid keys[CHUNK_MAX];
	void *users[CHUNK_MAX];
	uint32_t n = c->num_blocks - c->block, free_ops = kw_hm_dht_ops_free(c->d);
	int ret;

	if (n > CHUNK_MAX)
		n = CHUNK_MAX;
	if (n > free_ops)
		n = free_ops;
	if (n == 0) {   /* every operation busy (a running node's announcer): shortly */
		kw_timer_init(&c->timer, on_chunk_retry, c);
		kw_timer_start(&c->n->loop, &c->timer, POLL_MS);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		char uid[KW_HM_REC_UID_MAX];

		c->blk[i].c = c;
		c->blk[i].block = c->block + i;
		users[i] = &c->blk[i];
		(void)kw_hm_block_uid(c->key_text, c->block + i, uid, sizeof(uid));
		(void)kw_hm_dhtid_of_str(uid, strlen(uid), &keys[i]);
	}
	c->pending = n;
	c->chunk_end = c->block + n;
	c->chunk_err = 0;
	ret = kw_hm_dht_get_many(c->d, keys, n, true, on_block, users);
	if (ret < 0) {
		c->pending = 0;
		errp(c, "kwnode hivemind: cannot start the operation: %s\n", kw_strerror(ret));
		stop(c, 1);
	}
}

static void servers_next(struct hm_cli *c)
{
	struct kw_hm_dhtid key;
	int ret;

	if (c->block == UINT32_MAX)
		snprintf(c->text, sizeof(c->text), "%s", KW_HM_MODELS_KEY);
	else
		(void)kw_hm_block_uid(c->key_text, c->block, c->text, sizeof(c->text));
	if (c->block != UINT32_MAX && c->block >= BLOCKS_SCAN_MAX) {
		servers_done(c);
		return;
	}
	if (c->block != UINT32_MAX && c->num_blocks) {
		servers_chunk(c);
		return;
	}
	(void)kw_hm_dhtid_of_str(c->text, strlen(c->text), &key);
	ret = kw_hm_dht_get(c->d, &key, true, on_servers_get, c);
	if (ret < 0) {
		errp(c, "kwnode hivemind: cannot start the operation: %s\n",
			kw_strerror(ret));
		stop(c, 1);
	}
}

/* ---- the transient node ------------------------------------------------------------------- */

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct hm_cli *c = t->arg;
	struct kw_hm_dht_contact any;
	int ret;

	if (kw_hm_rt_nearest(kw_hm_dht_rt(c->d), &c->key, 1, NULL, &any) == 0) {
		if (kw_loop_now(l) < c->deadline_ms) {
			kw_timer_start(l, t, POLL_MS);
			return;
		}
		if (c->done)
			errp(c, "kwnode hivemind: the running node knows no Hivemind DHT node (its "
			     "routing table stayed empty for %u ms)\n", c->wait_ms);
		else
			errp(c, "kwnode hivemind: could not join the Hivemind DHT: no node answered "
			     "through %d bootstrap peer%s within %u ms\n", c->n_boot,
			     c->n_boot == 1 ? "" : "s", c->wait_ms);
		stop(c, 1);
		return;
	}
#ifdef CONFIG_KW_NET_KAD_SWARM
	/* The DHT's answers name peers by PeerID only and kad finds their addresses: wait
	 * (at most KAD_WAIT_MS) until kad's bootstrap peer answered, else the first lookups
	 * find an empty kad table and the operation reaches its bootstrap node only. */
	if (c->kad && !c->done) {
		struct kw_kad_stats ks;

		kw_kad_get_stats(c->kad, &ks);
		if (!ks.bootstrap_ok && kw_loop_now(l) < c->deadline_ms &&
		    kw_loop_now(l) + c->wait_ms < c->deadline_ms + KAD_WAIT_MS) {
			kw_timer_start(l, t, POLL_MS);
			return;
		}
		KW_LOG_DBG(hivemind, "kad bootstrap %s, kad table %zu: the operation starts",
			   ks.bootstrap_ok ? "done" : "not done", kw_kad_rt_size(kw_kad_table(c->kad)));
	}
#endif
	if (c->verb == V_SERVERS) {
		/* let the bootstrap's own-id search finish first: its requests and the gets' share
		 * the call limit (kw_hm_limits.calls_out), and a request refused for that limit
		 * counts against the peer in the client. A running node has no such search of
		 * its own to wait for, and its announcer may always have one in flight. */
		if (!c->done && kw_hm_dht_ops_busy(c->d) && kw_loop_now(l) < c->deadline_ms) {
			kw_timer_start(l, t, POLL_MS);
			return;
		}
		/* the block count from _petals.models unless given */
		c->models_asked = !c->num_blocks;
		c->block = c->num_blocks ? 0 : UINT32_MAX;
		servers_next(c);
		return;
	}
	if (c->verb == V_GET)
		ret = kw_hm_dht_get(c->d, &c->key, c->latest, on_get, c);
	else
		ret = kw_hm_dht_store(c->d, &c->key, c->sub_len ? c->sub : NULL,
				      (size_t)(c->sub_len > 0 ? c->sub_len : 0), c->val,
				      (size_t)c->val_len, wall_now() + c->exp_s, on_store, c);
	if (ret < 0) {
		errp(c, "kwnode hivemind: cannot start the operation: %s\n",
			kw_strerror(ret));
		stop(c, 1);
	}
}

static int transient(struct hm_cli *c, struct kw_config *cfg)
{
	struct kw_app_transient t;
	int ret;

	if (kw_app_transient_open(&t, "kwnode hivemind", cfg, (size_t)64 << 20) < 0)
		return 1;
	c->n = t.n;
	c->sw = t.sw;
	c->id = t.id;
	ret = 0;
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (ret == 0 && c->verb != V_PING) {
		/* only to find the addresses of Hivemind nodes named by PeerID */
		struct kw_kad_cfg kc;
		struct kw_multiaddr ma;

		kw_kad_cfg_default(&kc);
		kc.self = kw_swarm_peer_id(c->sw);
		kc.client_mode = true;
		ret = kw_kad_swarm_create(c->sw, c->id, &c->n->arena, &kc, &c->kad);
		for (int i = 0; ret == 0 && i < cfg->n_hivemind_bootstrap; i++)
			if (kw_maddr_from_text(cfg->hivemind_bootstrap[i], &ma, NULL, 0) == 0)
				(void)kw_kad_bootstrap_add(c->kad, &ma);
	}
#endif
	if (ret == 0)
		ret = kw_app_hm_start(c->n, c->sw, c->id, c->kad, true,
				      (const char (*)[KW_CONFIG_PEER_ADDR_MAX])cfg->hivemind_bootstrap,
				      c->verb == V_PING ? 0 : cfg->n_hivemind_bootstrap, &c->hm,
				      &c->d, &c->st);
	if (ret < 0) {
		fprintf(stderr, "kwnode hivemind: cannot start the node: %s\n", kw_strerror(ret));
		c->code = 1;
		goto out;
	}
	c->code = 1;
	if (c->verb == V_PING) {
		ret = kw_hm_dht_ping(c->d, c->target, false, on_ping, c);
		if (ret < 0) {
			fprintf(stderr, "kwnode hivemind: ping %s: %s\n", c->target,
				ret == -KW_EINVAL ? "not a multiaddr with /p2p/<peer-id>" :
						    kw_strerror(ret));
			goto out;
		}
	} else {
		c->n_boot = cfg->n_hivemind_bootstrap;
		kw_timer_init(&c->timer, on_tick, c);
		c->deadline_ms = kw_loop_now(&c->n->loop) + c->wait_ms;
		kw_timer_start(&c->n->loop, &c->timer, 0);
	}
	kw_loop_run(&c->n->loop);
	if (c->verb != V_PING)
		kw_timer_cancel(&c->n->loop, &c->timer);
out:
	kw_app_hm_stop(c->st);
#ifdef CONFIG_KW_NET_KAD_SWARM
	if (c->kad)
		kw_kad_swarm_destroy(c->kad);
#endif
	kw_app_transient_close(&t);
	return c->code;
}

/* ---- the request line: to a running node, and run there ---------------------------------- */

static const enum verb g_verb_of[] = {
	[KW_HM_GET] = V_GET, [KW_HM_STORE] = V_STORE, [KW_HM_PING] = V_PING,
	[KW_HM_SERVERS] = V_SERVERS,
};

#ifdef CONFIG_KW_NET_KAD_SWARM
/* The parsed command as a request line's fields. Return: 0; -KW_ERANGE (a multiaddr too long). */
static int req_from_cli(const struct hm_cli *c, struct kw_hm_req *r)
{
	const char *k = c->verb == V_PING ? c->target : c->key_text;
	size_t i;

	memset(r, 0, offsetof(struct kw_hm_req, key));
	for (i = 0; i < KW_ARRAY_SIZE(g_verb_of); i++)
		if (g_verb_of[i] == c->verb)
			r->verb = (enum kw_hm_verb)i;
	r->flags = (c->latest ? KW_HM_REQ_LATEST : 0) | (c->json ? KW_HM_REQ_JSON : 0) |
		   (c->hex ? KW_HM_REQ_HEX : 0) | (c->subkeys ? KW_HM_REQ_SUBKEYS : 0);
	r->num_blocks = c->num_blocks;
	r->exp_s = (uint32_t)c->exp_s;
	if (strlen(k) > KW_HM_REQ_KEY_MAX)
		return -KW_ERANGE;
	memcpy(r->key, k, strlen(k) + 1);
	r->sub_len = (uint16_t)(c->sub_len > 0 ? c->sub_len : 0);
	memcpy(r->sub, c->sub, r->sub_len);
	r->val_len = (uint16_t)(c->val_len > 0 ? c->val_len : 0);
	memcpy(r->val, c->val, r->val_len);
	return 0;
}
#endif

static void cli_from_req(struct hm_cli *c, const struct kw_hm_req *r)
{
	c->verb = g_verb_of[r->verb];
	c->latest = r->flags & KW_HM_REQ_LATEST;
	c->json = r->flags & KW_HM_REQ_JSON;
	c->hex = r->flags & KW_HM_REQ_HEX;
	c->subkeys = r->flags & KW_HM_REQ_SUBKEYS;
	c->num_blocks = r->num_blocks;
	c->exp_s = r->exp_s;
	if (c->verb == V_PING) {
		c->target = r->key;
	} else {
		c->key_text = r->key;
		(void)kw_hm_dhtid_of_str(r->key, strlen(r->key), &c->key);  /* checked by decode */
	}
	c->sub_len = r->sub_len;
	memcpy(c->sub, r->sub, r->sub_len);
	c->val_len = r->val_len;
	memcpy(c->val, r->val, r->val_len);
}

struct kw_hm_cmd {
	struct hm_cli c;
	struct kw_hm_sink sink;
	struct kw_hm_req req;
	void (*done)(void *arg, const char *reply, size_t len);
	void *arg;
	char reply[KW_HM_REPLY_MAX];
};

struct kw_hm_cmd *kw_hm_cmd_create(struct kw_arena *a)
{
	struct kw_hm_cmd *m = kw_arena_alloc(a, sizeof(*m), 16);

	if (!m)
		return NULL;
	memset(m, 0, offsetof(struct kw_hm_cmd, reply));
	return m;
}

struct kw_hm_req *kw_hm_cmd_req(struct kw_hm_cmd *m)
{
	return &m->req;
}

static void cmd_done(struct hm_cli *c)
{
	struct kw_hm_cmd *m = KW_CONTAINER_OF(c, struct kw_hm_cmd, c);
	size_t len = kw_hm_sink_finish(&m->sink, c->code);

	c->done = NULL;   /* one reply per command */
	m->done(m->arg, m->reply, len);
}

void kw_hm_cmd_start(struct kw_hm_cmd *m, struct kw_node *n, struct kw_hm_dht *d,
		     void (*done)(void *arg, const char *reply, size_t len), void *arg)
{
	struct hm_cli *c = &m->c;
	int ret;

	/* nothing of the previous command carries over (servers' counts and list above all) */
	memset(c, 0, offsetof(struct hm_cli, sub));
	memset(&c->json, 0, offsetof(struct hm_cli, servers) - offsetof(struct hm_cli, json));
	c->n = n;
	c->d = d;
	c->wait_ms = 10000;
	c->code = 1;
	kw_hm_sink_init(&m->sink, m->reply, sizeof(m->reply));
	c->sink = &m->sink;
	c->done = cmd_done;
	m->done = done;
	m->arg = arg;
	cli_from_req(c, &m->req);
	kw_timer_init(&c->timer, on_tick, c);
	if (c->verb == V_PING) {
		ret = kw_hm_dht_ping(c->d, c->target, false, on_ping, c);
		if (ret < 0) {
			errp(c, "kwnode hivemind: ping %s: %s\n", c->target,
			     ret == -KW_EINVAL ? "not a multiaddr with /p2p/<peer-id>" :
						 kw_strerror(ret));
			stop(c, 1);
		}
		return;
	}
	c->deadline_ms = kw_loop_now(&n->loop) + c->wait_ms;
	kw_timer_start(&n->loop, &c->timer, 0);
}

void kw_hm_cmd_cancel(struct kw_hm_cmd *m)
{
	if (m->c.n)
		kw_timer_cancel(&m->c.n->loop, &m->c.timer);
}

#ifdef CONFIG_KW_NET_KAD_SWARM
/*
 * Runs the command on the node serving <data_dir>/control.sock (app/control.c). Return: the
 * exit code, or -1 when no node answers there (then the caller starts its own).
 */
static int via_control(const char *data_dir, const struct hm_cli *c)
{
	static struct kw_hm_req r;
	static char line[KW_HM_LINE_MAX + 1], reply[KW_HM_REPLY_MAX];
	size_t got;
	long len;
	int ret;

	if (req_from_cli(c, &r) < 0 || (len = kw_hm_req_encode(&r, line, sizeof(line))) < 0) {
		/* only when a node runs there: without one the transient node takes any size */
		if (kw_app_control_call("kwnode hivemind", data_dir, "", 0, reply, 0, &got) < 0)
			return -1;
		fprintf(stderr, "kwnode hivemind: the request does not fit a control line\n");
		return 2;
	}
	ret = kw_app_control_call("kwnode hivemind", data_dir, line, (size_t)len, reply,
				  sizeof(reply), &got);
	if (ret != 0)
		return ret;
	return kw_hm_reply_print(reply, got);
}
#endif

int kw_cmd_hivemind(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "subkey", required_argument, NULL, 's' },
		{ "expiration", required_argument, NULL, 'e' },
		{ "ttl", required_argument, NULL, 'e' },
		{ "latest", no_argument, NULL, 'L' },
		{ "hex", no_argument, NULL, 'x' },
		{ "subkeys", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "num-blocks", required_argument, NULL, 'n' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "initial-peers", required_argument, NULL, 'b' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_config cfg;
	struct hm_cli *c = &g_cli;
	struct kw_app_cli cli;
	const char *subkey = NULL, *verb;
	int o, nargs;
	uint32_t exp = 600;

	memset(c, 0, offsetof(struct hm_cli, sub));
	kw_app_cli_init(&cli, "kwnode hivemind");
	optind = 1;
	while ((o = kw_app_cli_getopt(&cli, argc, argv, "s:e:Lxkjn:b:c:d:w:vh", opts)) != -1) {
		switch (o) {
		case KW_APP_CLI_BAD: return 2;
		case 's': subkey = optarg; break;
		case 'e':
			if (kw_config_parse_u32(optarg, 1, 31536000, &exp) < 0) {
				fprintf(stderr, "kwnode hivemind: --expiration '%s': expected 1..31536000 "
					"seconds\n", optarg);
				return 2;
			}
			break;
		case 'L': c->latest = true; break;
		case 'x': c->hex = true; break;
		case 'k': c->subkeys = true; break;
		case 'j': c->json = true; break;
		case 'n':
			if (kw_config_parse_u32(optarg, 1, BLOCKS_SCAN_MAX, &c->num_blocks) < 0) {
				fprintf(stderr, "kwnode hivemind: --num-blocks '%s': expected 1..%u\n",
					optarg, BLOCKS_SCAN_MAX);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	c->wait_ms = cli.wait_ms;
	if (optind >= argc) {
		fprintf(stderr, "kwnode hivemind: missing the operation (get, store, ping, servers)\n");
		usage(stderr);
		return 2;
	}
	verb = argv[optind];
	nargs = argc - optind - 1;
	c->exp_s = exp;
	if (!strcmp(verb, "get") && (nargs == 1 || nargs == 2)) {
		c->verb = V_GET;
		if (nargs == 2)
			subkey = argv[optind + 2];
	} else if (!strcmp(verb, "store") && nargs == 2) {
		c->verb = V_STORE;
	} else if (!strcmp(verb, "servers") && nargs == 1) {
		c->verb = V_SERVERS;
		if (kw_hm_prefix_check(argv[optind + 1]) < 0) {
			fprintf(stderr, "kwnode hivemind: servers '%.60s': a Petals dht_prefix is "
				"UTF-8 without '.' or ' ' (e.g. Meta-Llama-3-1-8B-Instruct-hf)\n",
				argv[optind + 1]);
			return 2;
		}
	} else if (!strcmp(verb, "ping") && nargs == 1) {
		c->verb = V_PING;
		c->target = argv[optind + 1];
	} else {
		fprintf(stderr, "kwnode hivemind: '%s' with %d argument%s: expected get KEY "
			"[SUBKEY], store KEY VALUE, ping MULTIADDR or servers PREFIX\n", verb, nargs,
			nargs == 1 ? "" : "s");
		return 2;
	}
	if (c->verb != V_PING) {
		c->key_text = argv[optind + 1];
		if (kw_hm_dhtid_of_str(c->key_text, strlen(c->key_text), &c->key) < 0) {
			fprintf(stderr, "kwnode hivemind: KEY must be UTF-8 text of at most 4 KiB\n");
			return 2;
		}
	}
	if (c->verb == V_STORE && (c->val_len = read_value(c, "VALUE", argv[optind + 2],
							     c->val)) < 0)
		return 2;
	if (subkey && c->verb != V_PING && (c->sub_len = read_value(c, "SUBKEY", subkey,
								      c->sub)) < 0)
		return 2;
	if (kw_app_cli_config(&cli, &cfg, "hivemind_bootstrap") < 0)
		return 2;
#ifdef CONFIG_KW_NET_KAD_SWARM
	/* a node running with this data directory runs the command itself */
	int ret = via_control(cfg.data_dir, c);
	if (ret >= 0)
		return ret;
#endif
	if (c->verb != V_PING && cfg.n_hivemind_bootstrap == 0) {
		fprintf(stderr, "kwnode hivemind: no Hivemind peer given (--bootstrap MULTIADDR, or "
			"hivemind_bootstrap = ... in -c FILE)\n");
		return 1;
	}
	return transient(c, &cfg);
}
