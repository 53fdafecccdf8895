/*
 * kw_hm_peer: the C side of the Hivemind interop tests (tests/interop/hivemind.mjs, against the
 * independent js peer tests/interop/hivemind-peer.mjs). A swarm on 127.0.0.1 serving
 * DHTProtocol.rpc_ping / rpc_store / rpc_find (kw_hm_create + kw_hm_dht_create, the DHT
 * clock is the real clock) and calling them on a remote with kw_hm_call and the kw_hm_dht_*
 * encoders, driven by a line protocol on stdin/stdout:
 *
 *   kw_hm_peer [--listen MULTIADDR] [-v]
 *
 * prints `peer-id <id>`, `node-id <hex>`, `listen <multiaddr>` lines and `ready`, then
 * answers each command with one line `ok <cmd> ...` or `err <cmd> <reason>`:
 *
 *   dial <multiaddr>                          ok dial <peer-id>
 *   ping <peer-id> [validate]                 ok ping node_id=<hex> dht_time=<s> available=0|1
 *   store <peer-id> <key> <subkey> <value-hex> <expiration> [cache]
 *                                             ok store store_ok=0|1 node_id=<hex>
 *       key: a str key (its DHTID is SHA-1 of its msgpack); subkey: `regular` (c0), `dict`
 *       (empty: value is a whole DictionaryDHTValue) or the hex of the subkey's msgpack
 *   find <peer-id> <key>                      ok find type=<n> exp=<s> value=<hex|-> nearest=<n>
 *                                                  node_id=<hex>
 *   stats                                     ok stats pings= stores= finds= bad= items_stored=
 *                                                  items_refused= records=
 *   stream <peer-id> <name> <hex,hex,..|->    ok stream n=<responses> msgs=<hex,hex,..|->
 *       a stream call (net/hivemind/stream_rpc.c): the messages, END_OF_STREAM, then every
 *       response until the server closes
 *   quit
 * A remote handler error is `err <cmd> remote <text as Python would raise it>`.
 * It also serves the stream handler Test.rpc_stream_echo: every request is echoed, the
 * request "fail" ends the call with the error frame ValueError('boom').
 *
 * A host tool, not library code: it owns its node in static storage like app/main.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include <sodium.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#if defined(CONFIG_KW_NET_HIVEMIND_REACH) && defined(CONFIG_KW_NET_IDENTIFY)
#define HM_PEER_REACH 1
#include <kw/net/hivemind_reach.h>
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#endif
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "line_cmd.h"

#define PING_NAME  "DHTProtocol.rpc_ping"
#define STORE_NAME "DHTProtocol.rpc_store"
#define FIND_NAME  "DHTProtocol.rpc_find"
#define BUF        16384
#define STREAM_ECHO_NAME "Test.rpc_stream_echo"

static uint8_t g_arena[(size_t)128 << 20] __attribute__((aligned(64)));
static struct kw_node g_node;

struct peer {
#ifdef HM_PEER_REACH
	struct kw_identify *id;      /* the callers' listen addresses for rpc_check */
	struct kw_hm_reach *reach;   /* serves ReachabilityProtocol.rpc_check */
#endif
	struct kw_swarm *sw;
	struct kw_hm *hm;
	struct kw_hm_dht *dht;
	struct kw_hm_dht_config cfg;
	struct kw_loop *loop;
	struct kw_line_cmd lc;       /* the stdin commands */
	uint8_t req[BUF], val[BUF];
	char line[4 * BUF];
	char sline[4 * BUF];          /* the stream command's responses, as hex */
	size_t sline_len;
	unsigned n_resp;
	struct kw_hm_stream *st;
};

static struct peer g_peer;

/* The outcome every call shares: a local error or the remote's error text ends the command. */
static bool call_failed(struct peer *p, const struct kw_hm_result *r)
{
	char text[512];

	if (r->err < 0) {
		kw_line_err(&p->lc, kw_strerror(r->err));
		return true;
	}
	if (r->remote_error) {
		kw_hm_error_text(r->data, r->len, text, sizeof(text));
		kw_line_out("err %s remote %s", p->lc.cmd, text);
		kw_line_done(&p->lc);
		return true;
	}
	return false;
}

static const char *node_hex(const struct kw_hm_dht_peer *np, char *o)
{
	if (!np->present || !np->node_id.len)
		return "-";
	kw_line_hex(np->node_id.p, np->node_id.len, o);
	return o;
}

static void on_ping(const struct kw_hm_result *r, void *user)
{
	struct peer *p = user;
	struct kw_hm_dht_ping_resp m;
	const char *why;
	char id[2 * KW_HM_DHTID_LEN + 1];

	if (call_failed(p, r))
		return;
	if (kw_hm_dht_decode(KW_HM_DHT_PING_RESP, r->data, r->len, &m, &why)) {
		kw_line_err(&p->lc, why);
		return;
	}
	kw_line_out("ok ping node_id=%s dht_time=%.6f available=%d", node_hex(&m.peer, id), m.dht_time,
	    m.available);
	kw_line_done(&p->lc);
}

static void on_store(const struct kw_hm_result *r, void *user)
{
	struct peer *p = user;
	struct kw_hm_dht_store_resp m;
	const char *why;
	char id[2 * KW_HM_DHTID_LEN + 1];

	if (call_failed(p, r))
		return;
	if (kw_hm_dht_decode(KW_HM_DHT_STORE_RESP, r->data, r->len, &m, &why)) {
		kw_line_err(&p->lc, why);
		return;
	}
	if (m.n != 1) {
		kw_line_err(&p->lc, "store_ok does not hold one answer");
		return;
	}
	kw_line_out("ok store store_ok=%d node_id=%s", m.store_ok[0], node_hex(&m.peer, id));
	kw_line_done(&p->lc);
}

static void on_find(const struct kw_hm_result *r, void *user)
{
	struct peer *p = user;
	static struct kw_hm_dht_find_resp m;
	static struct kw_hm_dht_find_result res;
	const char *why;
	char id[2 * KW_HM_DHTID_LEN + 1];

	if (call_failed(p, r))
		return;
	if (kw_hm_dht_decode(KW_HM_DHT_FIND_RESP, r->data, r->len, &m, &why) ||
	    (m.n_results == 1 &&
	     kw_hm_dht_find_result_decode(m.raw[0].p, m.raw[0].len, &res, &why))) {
		kw_line_err(&p->lc, why);
		return;
	}
	if (m.n_results != 1) {
		kw_line_err(&p->lc, "results do not hold one answer");
		return;
	}
	if (res.value.len * 2 + 1 > sizeof(p->line)) {
		kw_line_err(&p->lc, "value too large to print");
		return;
	}
	if (res.value.len)
		kw_line_hex(res.value.p, res.value.len, p->line);
	else
		strcpy(p->line, "-");
	kw_line_out("ok find type=%u exp=%.6f value=%s nearest=%u node_id=%s", res.type, res.expiration,
	    p->line, res.n_node_ids, node_hex(&m.peer, id));
	kw_line_done(&p->lc);
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct peer *p = user;
	char id[KW_PEER_ID_TEXT_MAX];

	if (err < 0) {
		kw_line_err(&p->lc, kw_strerror(err));
		return;
	}
	kw_peer_id_to_text(kw_conn_peer_id(c), id, sizeof(id));
	kw_line_out("ok dial %s", id);
	kw_line_done(&p->lc);
}

/* Encodes m as `kind` and calls `name` on c; answers the command itself on failure. */
static void call(struct peer *p, struct kw_conn *c, const char *name, int kind, const void *m,
		 kw_hm_call_cb cb)
{
	long n = kw_hm_dht_encode(kind, m, p->req, sizeof(p->req));
	int ret = n < 0 ? (int)n : kw_hm_call(p->hm, c, name, p->req, (size_t)n, 3000, cb, p);

	if (ret < 0)
		kw_line_err(&p->lc, kw_strerror(ret));
}

/* ---- stream calls ---------------------------------------------------------------------- */

static int echo_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	if (len == 4 && !memcmp(msg, "fail", 4))
		kw_hm_stream_error(st, "ValueError('boom')");
	else if (kw_hm_stream_send(st, msg, len) < 0)  /* a test peer: short messages only */
		kw_hm_stream_error(st, "RuntimeError('echo does not fit')");
	return 0;
}

static void echo_end(struct kw_hm_stream *st, void *arg)
{
	kw_hm_stream_end(st);
}

static const struct kw_hm_stream_ops echo_ops = { .on_message = echo_msg, .on_end = echo_end };

static int stream_resp(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct peer *p = arg;

	if (p->sline_len + 2 * len + 2 < sizeof(p->sline)) {
		if (p->n_resp)
			p->sline[p->sline_len++] = ',';
		kw_line_hex(msg, len, p->sline + p->sline_len);
		p->sline_len += 2 * len;
	}
	p->n_resp++;
	return 0;
}

static void stream_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct peer *p = arg;

	if (r->err < 0)
		kw_line_out("err stream %s", kw_strerror(r->err));
	else if (r->remote_error)
		kw_line_out("err stream remote %s", r->text);
	else
		kw_line_out("ok stream n=%u msgs=%s", p->n_resp, p->n_resp ? p->sline : "-");
	kw_line_done(&p->lc);
}

static const struct kw_hm_stream_ops call_ops = { .on_message = stream_resp,
						   .on_done = stream_done };

/* Sends each comma-separated hex message of list ("-": none), then END_OF_STREAM. */
static void stream_cmd(struct peer *p, struct kw_conn *c, const char *name, char *list)
{
	char *tok, *save = NULL;
	int ret;

	p->sline_len = 0;
	p->sline[0] = '\0';
	p->n_resp = 0;
	ret = kw_hm_stream_open(p->hm, c, name, &call_ops, p, 5000, &p->st);
	if (ret < 0) {
		kw_line_err(&p->lc, kw_strerror(ret));
		return;
	}
	for (tok = strtok_r(list, ",", &save); tok && strcmp(tok, "-");
	     tok = strtok_r(NULL, ",", &save)) {
		long n = kw_line_unhex(tok, p->req, sizeof(p->req));

		ret = n < 0 ? (int)n : kw_hm_stream_send(p->st, p->req, (size_t)n);
		if (ret < 0) {  /* on_done answers the command */
			kw_hm_stream_cancel(p->st);
			return;
		}
	}
	kw_hm_stream_end(p->st);
}

static void run_command(struct peer *p, char *line)
{
	char *argv[8];
	int argc = 0;
	char *tok, *save = NULL;
	struct kw_conn *c = NULL;
	struct kw_hm_dht_peer self = { true, { p->cfg.node_id.b, KW_HM_DHTID_LEN } };

	for (tok = strtok_r(line, " \t", &save); tok && argc < 8; tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;   /* an empty line: the loop in line_cmd.c reads the next one */
	snprintf(p->lc.cmd, sizeof(p->lc.cmd), "%s", argv[0]);
	p->lc.busy = true;
	if (argc >= 2 && strcmp(argv[0], "dial")) {
		struct kw_peer_id id;

		if (kw_peer_id_from_text(argv[1], &id) < 0 || !(c = kw_swarm_find_conn(p->sw, &id))) {
			kw_line_err(&p->lc, "not connected");
			return;
		}
	}
	if (!strcmp(argv[0], "quit")) {
		kw_line_out("ok quit");
		kw_loop_stop(p->loop, 0);
	} else if (!strcmp(argv[0], "dial") && argc == 2) {
		int ret = kw_swarm_dial(p->sw, argv[1], on_dial, p);

		if (ret < 0)
			kw_line_err(&p->lc, kw_strerror(ret));
	} else if (!strcmp(argv[0], "ping") && (argc == 2 || argc == 3)) {
		struct kw_hm_dht_ping_req m = { self, argc == 3 && !strcmp(argv[2], "validate") };

		call(p, c, PING_NAME, KW_HM_DHT_PING_REQ, &m, on_ping);
	} else if (!strcmp(argv[0], "store") && (argc == 6 || argc == 7)) {
		static struct kw_hm_dht_store_req m;
		static struct kw_hm_dhtid key;
		static uint8_t sub[256];
		long sub_len, val_len;

		memset(&m, 0, sizeof(m));
		if (!strcmp(argv[3], "regular")) {
			sub[0] = KW_HM_DHT_IS_REGULAR;
			sub_len = 1;
		} else if (!strcmp(argv[3], "dict")) {
			sub_len = 0;
		} else {
			sub_len = kw_line_unhex(argv[3], sub, sizeof(sub));
		}
		val_len = kw_line_unhex(argv[4], p->val, sizeof(p->val));
		if (sub_len < 0 || val_len < 0 ||
		    kw_hm_dhtid_of_str(argv[2], strlen(argv[2]), &key) < 0) {
			kw_line_err(&p->lc, "bad key, subkey or value");
			return;
		}
		m.n_keys = m.n_subkeys = m.n_values = m.n_exp = m.n_in_cache = 1;
		m.keys[0] = (struct kw_hm_bytes){ key.b, KW_HM_DHTID_LEN };
		m.subkeys[0] = (struct kw_hm_bytes){ sub_len ? sub : NULL, (size_t)sub_len };
		m.values[0] = (struct kw_hm_bytes){ val_len ? p->val : NULL, (size_t)val_len };
		m.exp[0] = strtod(argv[5], NULL);
		m.in_cache[0] = argc == 7 && !strcmp(argv[6], "cache");
		m.peer = self;
		call(p, c, STORE_NAME, KW_HM_DHT_STORE_REQ, &m, on_store);
	} else if (!strcmp(argv[0], "find") && argc == 3) {
		static struct kw_hm_dht_find_req m;
		static struct kw_hm_dhtid key;

		memset(&m, 0, sizeof(m));
		if (kw_hm_dhtid_of_str(argv[2], strlen(argv[2]), &key) < 0) {
			kw_line_err(&p->lc, "bad key");
			return;
		}
		m.n_keys = 1;
		m.keys[0] = (struct kw_hm_bytes){ key.b, KW_HM_DHTID_LEN };
		m.peer = self;
		call(p, c, FIND_NAME, KW_HM_DHT_FIND_REQ, &m, on_find);
	} else if (!strcmp(argv[0], "stream") && argc == 4) {
		stream_cmd(p, c, argv[2], argv[3]);
	} else if (!strcmp(argv[0], "stats")) {
		struct kw_hm_dht_stats st;
		struct kw_hm_stats hs;

		kw_hm_dht_get_stats(p->dht, &st);
		kw_hm_get_stats(p->hm, &hs);
		kw_line_out("ok stats pings=%llu stores=%llu finds=%llu bad=%llu items_stored=%llu "
		    "items_refused=%llu bad_envelopes=%llu", (unsigned long long)st.pings,
		    (unsigned long long)st.stores, (unsigned long long)st.finds,
		    (unsigned long long)st.bad_requests, (unsigned long long)st.items_stored,
		    (unsigned long long)st.items_refused, (unsigned long long)hs.bad_envelopes);
		kw_line_done(&p->lc);
	} else {
		kw_line_err(&p->lc, "unknown command or arguments");
	}
}

/* Runs buffered command lines while no command is in progress. */
static void run_line(struct kw_line_cmd *lc, char *line)
{
	run_command(KW_CONTAINER_OF(lc, struct peer, lc), line);
}

#ifdef HM_PEER_REACH
/* rpc_check probes dial what the caller listed in identify (as the node does, app/reach.c) */
static int reach_addrs(void *arg, struct kw_conn *c, struct kw_multiaddr *out, int max)
{
	const struct kw_identify_remote *ir = kw_identify_remote(((struct peer *)arg)->id, c);
	int n = 0;

	if (!ir || !ir->have)
		return -KW_EAGAIN;
	for (uint8_t i = 0; i < ir->n_addrs && n < max; i++)
		if (kw_maddr_from_bytes(ir->addrs[i], ir->addr_len[i], &out[n], NULL, 0) == 0)
			n++;
	return n;
}

static int start_reach(struct peer *p)
{
	struct kw_hm_reach_config rc;
	int ret = kw_identify_init(p->sw, &p->id);

	kw_hm_reach_config_default(&rc);
	rc.addrs = reach_addrs;
	rc.addrs_arg = p;
	if (ret == 0)
		ret = kw_hm_reach_create(p->sw, p->hm, &rc, &p->reach);
	return ret;
}
#endif

int main(int argc, char **argv)
{
	static struct kw_privkey key;
	struct kw_sys_linux sys;
	const char *listen = "/ip4/127.0.0.1/tcp/0";
	char id[KW_PEER_ID_TEXT_MAX], ma[512], nid[2 * KW_HM_DHTID_LEN + 1];
	struct peer *p = &g_peer;
	int ret, a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--listen") && a + 1 < argc)
			listen = argv[++a];
		else if (!strcmp(argv[a], "-v"))
			kw_log_set_level(4);
		else {
			fprintf(stderr, "usage: kw_hm_peer [--listen MULTIADDR] [-v]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || kw_key_generate(KW_KEY_ED25519, 0, &key) < 0 ||
	    kw_sys_linux_open(&sys) < 0 ||
	    kw_node_init(&g_node, g_arena, sizeof(g_arena), &sys.sys, NULL) < 0) {
		fprintf(stderr, "kw_hm_peer: cannot start the node\n");
		return 1;
	}
	ret = kw_swarm_create(&g_node, &key, NULL, &p->sw);
	if (ret == 0)
		ret = kw_hm_create(p->sw, NULL, &p->hm);
	if (ret == 0)
		ret = kw_hm_stream_setup(p->hm, NULL);
	if (ret == 0)
		ret = kw_hm_register_stream(p->hm, STREAM_ECHO_NAME, &echo_ops, p, 0);
	if (ret == 0)
		ret = kw_hm_dht_config_default(&p->cfg);   /* random node id, real clock */
	if (ret == 0)
		ret = kw_hm_dht_create(p->sw, p->hm, &p->cfg, &p->dht);
#ifdef HM_PEER_REACH
	if (ret == 0)
		ret = start_reach(p);
#endif
	if (ret == 0)
		ret = kw_swarm_listen(p->sw, listen);
	if (ret < 0) {
		fprintf(stderr, "kw_hm_peer: %s\n", kw_strerror(ret));
		return 1;
	}
	p->loop = &g_node.loop;
	kw_peer_id_to_text(kw_swarm_peer_id(p->sw), id, sizeof(id));
	kw_line_hex(p->cfg.node_id.b, KW_HM_DHTID_LEN, nid);
	kw_line_out("peer-id %s", id);
	kw_line_out("node-id %s", nid);
	for (size_t i = 0; i < kw_swarm_listen_count(p->sw); i++)
		if (kw_swarm_listen_addr(p->sw, i, ma, sizeof(ma)) == 0)
			kw_line_out("listen %s", ma);
	kw_line_out("ready");
	kw_line_start(&p->lc, p->loop, run_line);
	kw_loop_run(p->loop);
	kw_swarm_destroy(p->sw);
	kw_sys_linux_close(&sys);
	return 0;
}
