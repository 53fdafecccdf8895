/*
 * kw_interop_peer: the C side of the js-libp2p interop tests and the net benchmarks. A swarm
 * on the Linux seam (127.0.0.1) with identify, ping, /kw-test/echo/1.0.0 and
 * /kw-test/sink/1.0.0, driven by the same line protocol as tests/interop/peer.mjs:
 *
 *   kw_interop_peer [--key ed25519|secp256k1|rsa] [--listen MULTIADDR] [--no-listen] [-v]
 *
 * prints `peer-id <id>`, `listen <multiaddr>` lines and `ready`, then answers one line per
 * command (`ok <cmd> ...` / `err <cmd> <reason>`) and reports streams the remote opened to
 * the echo protocol as `event stream <proto> eof|close|reset`. Commands: dial, protocols,
 * ping, echo, bulk, sink, dialbench, hangup, stats, quit (see peer.mjs for the arguments).
 * `stats` prints `pools=<blocks in use>` so a test can check that streams leak nothing.
 *
 * A host tool, not library code: it owns its node in static storage like app/main.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>

#include <sodium.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/rng.h>
#include <kw/sys.h>
#include <kw/net/identify.h>
#include <kw/net/key.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#include "line_cmd.h"

#define ECHO_PROTO "/kw-test/echo/1.0.0"
#define SINK_PROTO "/kw-test/sink/1.0.0"
#define MAX_XFER   256
#define CHUNK      65536

static uint8_t g_arena[(size_t)256 << 20] __attribute__((aligned(64)));
static struct kw_node g_node;

struct xfer {
	bool used, echo_in;
	bool sink;                /* throughput mode: one random chunk resent, nothing hashed */
	bool hold;                /* memory mode: stream stays open and idle until `release` */
	struct kw_stream *s;
	uint64_t total, sent, recvd;
	struct kw_prng prng;
	crypto_hash_sha256_state hs, hr;
	bool done, failed;
	uint8_t chunk[CHUNK];
	uint32_t chunk_len, chunk_off;
};

struct peer {
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_loop *loop;
	struct kw_line_cmd lc;  /* the stdin commands: one runs at a time */
	struct kw_timer wait_timer;
	/* the command in progress */
	int pending;            /* transfers or dials outstanding */
	int failures;
	uint64_t t0_us;
	char arg_ma[512];
	uint32_t n_total, n_done;
	double times[1024];
	struct kw_ping ping;
	char ping_out[4096];
	struct kw_conn *bench_conn;
	struct xfer xf[MAX_XFER];
	char sum_sent[65], sum_recv[65];
	uint32_t echo_live;
};

static struct peer g_peer;

static uint64_t mono_us(void *arg)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct kw_conn *find_peer(struct peer *p, const char *text)
{
	struct kw_peer_id id;

	if (kw_peer_id_from_text(text, &id) < 0)
		return NULL;
	return kw_swarm_find_conn(p->sw, &id);
}

/* ---- echo / sink servers -------------------------------------------------------------- */

static size_t echo_on_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	long w = kw_stream_write(s, d, n);

	if (w < 0) {
		kw_stream_reset(s);
		return n;
	}
	return (size_t)w;
}

static void echo_on_eof(struct kw_stream *s)
{
	kw_line_out("event stream %s eof", s->protocol);
	kw_stream_close_write(s);
}

static void echo_on_writable(struct kw_stream *s)
{
	kw_stream_resume(s);
}

static void echo_on_close(struct kw_stream *s, int reason)
{
	g_peer.echo_live--;
	kw_line_out("event stream %s %s", s->protocol, reason == -KW_ECONNRESET ? "reset" :
	    reason == 0 ? "close" : kw_strerror(reason));
}

static const struct kw_stream_handler echo_srv = {
	.on_data = echo_on_data, .on_eof = echo_on_eof, .on_writable = echo_on_writable,
	.on_close = echo_on_close,
};

static int echo_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	g_peer.echo_live++;
	s->h = &echo_srv;
	s->user = NULL;
	return 0;
}

struct sink_st { bool used, eof; uint8_t off; uint64_t n; uint8_t reply[8]; };
static struct sink_st g_sinks[16];

static size_t sink_on_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	((struct sink_st *)s->user)->n += n;
	return n;
}

static void sink_flush(struct kw_stream *s)
{
	struct sink_st *st = (struct sink_st *)s->user;

	while (st->off < 8) {
		long w = kw_stream_write(s, st->reply + st->off, 8u - st->off);

		if (w <= 0)
			return;
		st->off = (uint8_t)(st->off + w);
	}
	kw_stream_close_write(s);
}

static void sink_on_eof(struct kw_stream *s)
{
	struct sink_st *st = (struct sink_st *)s->user;
	int i;

	st->eof = true;
	for (i = 0; i < 8; i++)
		st->reply[i] = (uint8_t)(st->n >> (56 - 8 * i));
	sink_flush(s);
}

static void sink_on_writable(struct kw_stream *s)
{
	if (((struct sink_st *)s->user)->eof)
		sink_flush(s);
}

static void sink_on_close(struct kw_stream *s, int reason)
{
	memset(s->user, 0, sizeof(struct sink_st));
}

static const struct kw_stream_handler sink_srv = {
	.on_data = sink_on_data, .on_eof = sink_on_eof, .on_writable = sink_on_writable,
	.on_close = sink_on_close,
};

static int sink_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	size_t i;

	for (i = 0; i < KW_ARRAY_SIZE(g_sinks); i++) {
		if (!g_sinks[i].used) {
			memset(&g_sinks[i], 0, sizeof(g_sinks[i]));
			g_sinks[i].used = true;
			s->h = &sink_srv;
			s->user = &g_sinks[i];
			return 0;
		}
	}
	return -KW_ELIMIT;
}

/* ---- client transfers (echo, bulk, sink) ----------------------------------------------- */

static void xfer_finish(struct peer *p);

static void xfer_fill(struct xfer *x)
{
	uint32_t i, n = (uint32_t)KW_MIN((uint64_t)CHUNK, x->total - x->sent);

	if (x->sink && x->chunk_len) {
		x->chunk_len = n;
		x->chunk_off = 0;
		return;
	}
	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t r = kw_prng_next(&x->prng);

		memcpy(x->chunk + i, &r, 8);
	}
	for (; i < n; i++)
		x->chunk[i] = (uint8_t)kw_prng_next(&x->prng);
	x->chunk_len = n;
	x->chunk_off = 0;
	if (!x->sink)
		crypto_hash_sha256_update(&x->hs, x->chunk, n);
}

static void xfer_pump(struct xfer *x)
{
	while (x->sent < x->total) {
		long w;

		if (x->chunk_off == x->chunk_len)
			xfer_fill(x);
		w = kw_stream_write(x->s, x->chunk + x->chunk_off, x->chunk_len - x->chunk_off);
		if (w < 0) {
			x->failed = true;
			kw_stream_reset(x->s);
			return;
		}
		if (w == 0)
			return;
		x->chunk_off += (uint32_t)w;
		x->sent += (uint64_t)w;
	}
	if (x->chunk_off == x->chunk_len && x->sent == x->total && !x->done) {
		x->done = true;  /* "done sending" */
		kw_stream_close_write(x->s);
	}
}

static size_t x_on_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	struct xfer *x = (struct xfer *)s->user;

	if (!x->sink)
		crypto_hash_sha256_update(&x->hr, d, n);
	x->recvd += n;
	return n;
}

static void x_on_writable(struct kw_stream *s)
{
	xfer_pump((struct xfer *)s->user);
}

static void x_on_close(struct kw_stream *s, int reason)
{
	struct xfer *x = (struct xfer *)s->user;
	struct peer *p = &g_peer;
	uint8_t a[32], b[32];

	x->s = NULL;
	crypto_hash_sha256_final(&x->hs, a);
	crypto_hash_sha256_final(&x->hr, b);
	kw_line_hex(a, 32, p->sum_sent);
	kw_line_hex(b, 32, p->sum_recv);
	if (x->hold)
		;  /* released by a reset: nothing to check */
	else if (reason < 0 || x->failed)
		p->failures++;
	else if (!strcmp(p->lc.cmd, "sink") ? x->recvd != 8 : (x->recvd != x->total || memcmp(a, b, 32)))
		p->failures++;
	x->used = false;
	p->pending--;
	if (p->pending == 0)
		xfer_finish(p);
}

static const struct kw_stream_handler x_handler = {
	.on_data = x_on_data, .on_writable = x_on_writable, .on_close = x_on_close,
};

static void x_opened(struct kw_stream *s, int err, void *user)
{
	struct xfer *x = (struct xfer *)user;
	struct peer *p = &g_peer;

	if (err < 0) {
		x->used = false;
		p->failures++;
		if (--p->pending == 0)
			xfer_finish(p);
		return;
	}
	x->s = s;
	if (x->hold) {
		if (++p->n_done == p->n_total)
			kw_line_ok(&p->lc, "%u", p->n_total);
		return;
	}
	xfer_pump(x);
}

static void xfer_finish(struct peer *p)
{
	double s = (double)(mono_us(NULL) - p->t0_us) / 1e6;
	double mib = (double)p->n_total * (double)p->xf[0].total / 1048576.0;

	if (!strcmp(p->lc.cmd, "release")) {
		kw_line_ok(&p->lc, "%u", p->n_total);
		return;
	}
	if (p->failures) {
		char why[64];

		snprintf(why, sizeof(why), "%d of %u transfers failed", p->failures, p->n_total);
		kw_line_err(&p->lc, why);
		return;
	}
	if (!strcmp(p->lc.cmd, "echo"))
		kw_line_ok(&p->lc, "%u %.1f", p->n_total, mib / s);
	else if (!strcmp(p->lc.cmd, "bulk"))
		kw_line_ok(&p->lc, "%s %s %.1f", p->sum_sent, p->sum_recv, mib / s);
	else
		kw_line_ok(&p->lc, "%llu %.1f", (unsigned long long)p->xf[0].total, mib / s);
}

static void start_xfers(struct peer *p, struct kw_conn *c, const char *proto, uint32_t n,
			uint64_t bytes)
{
	uint32_t i;
	int ret;

	p->failures = 0;
	p->pending = (int)n;
	p->n_total = n;
	p->t0_us = mono_us(NULL);
	for (i = 0; i < n; i++) {
		struct xfer *x = &p->xf[i];

		memset(x, 0, offsetof(struct xfer, chunk));
		x->chunk_len = 0;
		x->chunk_off = 0;
		x->used = true;
		x->sink = !strcmp(proto, SINK_PROTO);
		x->total = bytes;
		kw_prng_seed(&x->prng, 0x6b77 + i);
		crypto_hash_sha256_init(&x->hs);
		crypto_hash_sha256_init(&x->hr);
		ret = kw_swarm_open_stream(p->sw, c, proto, &x_handler, x, x_opened);
		if (ret < 0) {
			x->used = false;
			p->failures++;
			p->pending--;
		}
	}
	if (p->pending == 0)
		xfer_finish(p);
}

/* ---- dial / dialbench / ping ------------------------------------------------------------ */

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct peer *p = (struct peer *)user;
	char id[KW_PEER_ID_TEXT_MAX];

	if (err < 0) {
		kw_line_err(&p->lc, kw_strerror(err));
		return;
	}
	kw_peer_id_to_text(kw_conn_peer_id(c), id, sizeof(id));
	kw_line_ok(&p->lc, "%s", id);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_next(struct peer *p);

static void on_bench_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct peer *p = (struct peer *)user;

	if (err < 0) {
		kw_line_err(&p->lc, kw_strerror(err));
		return;
	}
	p->times[p->n_done++] = (double)(mono_us(NULL) - p->t0_us) / 1000.0;
	kw_conn_close(c, 0);
	bench_next(p);
}

static void bench_next(struct peer *p)
{
	int ret;

	if (p->n_done == p->n_total) {
		qsort(p->times, p->n_done, sizeof(double), cmp_d);
		kw_line_ok(&p->lc, "%.3f %.3f %.3f", p->times[p->n_done / 2], p->times[p->n_done / 10],
			 p->times[p->n_done * 9 / 10]);
		return;
	}
	p->t0_us = mono_us(NULL);
	ret = kw_swarm_dial(p->sw, p->arg_ma, on_bench_dial, p);
	if (ret < 0)
		kw_line_err(&p->lc, kw_strerror(ret));
}

static void on_ping(struct kw_ping *pg, uint32_t seq, uint64_t rtt_us, int err, bool done)
{
	struct peer *p = (struct peer *)pg->user;
	size_t l = strlen(p->ping_out);

	if (!done) {
		snprintf(p->ping_out + l, sizeof(p->ping_out) - l, "%s%.3f", l ? " " : "",
			 (double)rtt_us / 1000.0);
		return;
	}
	if (err < 0)
		kw_line_err(&p->lc, kw_strerror(err));
	else
		kw_line_ok(&p->lc, "%s", p->ping_out);
}

/* ---- command dispatch ------------------------------------------------------------------- */

static void pool_bytes(const struct kw_pool *pl, void *arg)
{
	*(size_t *)arg += pl->used * pl->stride;
	if (pl->used)  /* on stderr: which pools hold blocks, for leak hunting */
		fprintf(stderr, "stats: pool %s used %zu\n", pl->name, (size_t)pl->used);
}

static void count_conn(struct kw_conn *c, void *arg)
{
	(*(uint32_t *)arg)++;
}

static void run_command(struct peer *p, char *line)
{
	char *argv[8];
	int argc = 0, ret;
	char *tok, *save = NULL;
	struct kw_conn *c = NULL;

	for (tok = strtok_r(line, " \t", &save); tok && argc < 8; tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;   /* an empty line: the loop in line_cmd.c reads the next one */
	snprintf(p->lc.cmd, sizeof(p->lc.cmd), "%s", argv[0]);
	p->lc.busy = true;
	if (argc >= 2 && strcmp(argv[0], "dial") && strcmp(argv[0], "dialbench") &&
	    strcmp(argv[0], "wait") && strcmp(argv[0], "register")) {
		c = find_peer(p, argv[1]);
		if (!c) {
			kw_line_err(&p->lc, "not connected");
			return;
		}
	}
	if (!strcmp(argv[0], "quit")) {
		kw_line_ok(&p->lc, "%s", "");
		kw_loop_stop(p->loop, 0);
	} else if (!strcmp(argv[0], "dial") && argc == 2) {
		ret = kw_swarm_dial(p->sw, argv[1], on_dial, p);
		if (ret < 0)
			kw_line_err(&p->lc, kw_strerror(ret));
	} else if (!strcmp(argv[0], "protocols") && argc == 2) {
		/* identify runs when the connection comes up; poll until it answered */
		const struct kw_identify_remote *ci = kw_identify_remote(p->id, c);
		char buf[KW_IDENTIFY_PROTOS_BYTES + 64];
		size_t i, l = 0;
		const char *pr;

		if (!ci->have) {
			p->lc.busy = true;  /* retried by the idle poll below */
			snprintf(p->arg_ma, sizeof(p->arg_ma), "protocols %s", argv[1]);
			return;
		}
		buf[0] = '\0';
		for (i = 0; (pr = kw_identify_remote_protocol(p->id, c, i)) != NULL; i++)
			l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s", i ? " " : "", pr);
		kw_line_ok(&p->lc, "%s", buf);
	} else if (!strcmp(argv[0], "ping") && argc >= 2) {
		p->ping_out[0] = '\0';
		p->ping.clock_us = mono_us;
		ret = kw_ping_start(&p->ping, p->sw, c, argc > 2 ? (uint32_t)atoi(argv[2]) : 1, 0,
				    on_ping, p);
		if (ret < 0)
			kw_line_err(&p->lc, kw_strerror(ret));
	} else if (!strcmp(argv[0], "echo") && argc == 4) {
		uint32_t n = (uint32_t)atoi(argv[2]);

		if (n == 0 || n > MAX_XFER) {
			kw_line_err(&p->lc, "bad stream count");
			return;
		}
		start_xfers(p, c, ECHO_PROTO, n, strtoull(argv[3], NULL, 10));
	} else if (!strcmp(argv[0], "bulk") && argc == 3) {
		start_xfers(p, c, ECHO_PROTO, 1, strtoull(argv[2], NULL, 10));
	} else if (!strcmp(argv[0], "sink") && argc == 3) {
		start_xfers(p, c, SINK_PROTO, 1, strtoull(argv[2], NULL, 10));
	} else if (!strcmp(argv[0], "dialbench") && argc == 3) {
		snprintf(p->arg_ma, sizeof(p->arg_ma), "%s", argv[1]);
		p->n_total = (uint32_t)KW_MIN(atoi(argv[2]), (int)KW_ARRAY_SIZE(p->times));
		p->n_done = 0;
		bench_next(p);
	} else if (!strcmp(argv[0], "hold") && argc == 3) {
		uint32_t i, n = (uint32_t)atoi(argv[2]);

		/* opens n echo streams and leaves them idle (memory per open stream) */
		if (n == 0 || n > MAX_XFER) {
			kw_line_err(&p->lc, "bad stream count");
			return;
		}
		p->n_done = 0;
		p->n_total = n;
		p->pending = (int)n;
		for (i = 0; i < n; i++) {
			struct xfer *x = &p->xf[i];

			memset(x, 0, offsetof(struct xfer, chunk));
			x->used = x->hold = true;
			if (kw_swarm_open_stream(p->sw, c, ECHO_PROTO, &x_handler, x, x_opened) < 0) {
				kw_line_err(&p->lc, "open failed");
				return;
			}
		}
	} else if (!strcmp(argv[0], "release") && argc == 2) {
		uint32_t i, n = 0;

		for (i = 0; i < MAX_XFER; i++)
			if (p->xf[i].used && p->xf[i].hold && p->xf[i].s) {
				kw_stream_reset(p->xf[i].s);
				n++;
			}
		p->n_total = n;
		p->pending = (int)n;
		if (n == 0)
			kw_line_ok(&p->lc, "0");
	} else if (!strcmp(argv[0], "register") && argc == 2) {
		/* a protocol added while connected: identify push tells the peers */
		ret = kw_swarm_register(p->sw, argv[1], echo_accept, NULL);
		if (ret < 0)
			kw_line_err(&p->lc, kw_strerror(ret));
		else
			kw_line_ok(&p->lc, "%s", argv[1]);
	} else if (!strcmp(argv[0], "wait") && argc == 2) {
		/* lets lingering socket buffers go back to their pool before `stats` */
		kw_timer_start(p->loop, &p->wait_timer, (uint64_t)atoi(argv[1]));
	} else if (!strcmp(argv[0], "hangup") && argc == 2) {
		kw_conn_close(c, 0);
		kw_line_ok(&p->lc, "%s", "");
	} else if (!strcmp(argv[0], "stats")) {
		struct kw_swarm_stats st;
		uint32_t up = 0;

		kw_swarm_get_stats(p->sw, &st);
		size_t bytes = 0;

		kw_node_pools_foreach(&g_node, pool_bytes, &bytes);
		kw_swarm_foreach_conn(p->sw, count_conn, &up);
		kw_line_ok(&p->lc, "conns=%u streams=%u pools=%zu poolbytes=%zu", up, p->echo_live,
			 kw_node_pools_in_use(&g_node), bytes);
	} else {
		kw_line_err(&p->lc, "unknown command or arguments");
	}
}

/* Runs buffered command lines while no command is in progress. */
static void run_line(struct kw_line_cmd *lc, char *line)
{
	run_command(KW_CONTAINER_OF(lc, struct peer, lc), line);
}

/* `protocols` waits for identify without blocking the loop: re-check every 10 ms. */
static void on_poll(struct kw_loop *l, struct kw_timer *t)
{
	struct peer *p = (struct peer *)t->arg;

	if (p->lc.busy && !strncmp(p->arg_ma, "protocols ", 10) && !strcmp(p->lc.cmd, "protocols")) {
		char line[600];

		snprintf(line, sizeof(line), "%s", p->arg_ma);
		p->arg_ma[0] = '\0';
		run_command(p, line);
	}
	kw_timer_start(l, t, 10);
}

static void on_wait(struct kw_loop *l, struct kw_timer *t)
{
	kw_line_ok(&((struct peer *)t->arg)->lc, "%s", "");
}

static int make_key(const char *type, struct kw_privkey *k)
{
	enum kw_key_type t;
	int ret = kw_key_type_from_name(type, &t);

	if (ret < 0)
		return ret;
	return kw_key_generate(t, 0, k);
}

int main(int argc, char **argv)
{
	static struct kw_privkey key;
	struct kw_sys_linux sys;
	struct kw_timer poll;
	const char *key_type = "ed25519", *listen = "/ip4/127.0.0.1/tcp/0";
	char id[KW_PEER_ID_TEXT_MAX], ma[512];
	struct peer *p = &g_peer;
	size_t i;
	int ret, a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--key") && a + 1 < argc)
			key_type = argv[++a];
		else if (!strcmp(argv[a], "--listen") && a + 1 < argc)
			listen = argv[++a];
		else if (!strcmp(argv[a], "--no-listen"))
			listen = NULL;
		else if (!strcmp(argv[a], "-v"))
			kw_log_set_level(4);
		else {
			fprintf(stderr, "usage: kw_interop_peer [--key TYPE] [--listen MA|--no-listen] [-v]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || make_key(key_type, &key) < 0) {
		fprintf(stderr, "kw_interop_peer: cannot make a %s key\n", key_type);
		return 1;
	}
	if (kw_sys_linux_open(&sys) < 0 || kw_node_init(&g_node, g_arena, sizeof(g_arena), &sys.sys, NULL) < 0)
		return 1;
	ret = kw_swarm_create(&g_node, &key, NULL, &p->sw);
	if (ret == 0)
		ret = kw_identify_init(p->sw, &p->id);
	if (ret == 0)
		ret = kw_ping_register(p->sw);
	if (ret == 0)
		ret = kw_swarm_register(p->sw, ECHO_PROTO, echo_accept, NULL);
	if (ret == 0)
		ret = kw_swarm_register(p->sw, SINK_PROTO, sink_accept, NULL);
	if (ret == 0 && listen)
		ret = kw_swarm_listen(p->sw, listen);
	if (ret < 0) {
		fprintf(stderr, "kw_interop_peer: %s\n", kw_strerror(ret));
		return 1;
	}
	p->loop = &g_node.loop;
	kw_peer_id_to_text(kw_swarm_peer_id(p->sw), id, sizeof(id));
	kw_line_out("peer-id %s", id);
	for (i = 0; i < kw_swarm_listen_count(p->sw); i++)
		if (kw_swarm_listen_addr(p->sw, i, ma, sizeof(ma)) == 0)
			kw_line_out("listen %s", ma);
	kw_line_out("ready");
	kw_timer_init(&p->wait_timer, on_wait, p);
	kw_line_start(&p->lc, p->loop, run_line);
	kw_timer_init(&poll, on_poll, p);
	kw_timer_start(p->loop, &poll, 10);
	kw_loop_run(p->loop);
	kw_timer_cancel(p->loop, &poll);
	kw_swarm_destroy(p->sw);
	kw_sys_linux_close(&sys);
	return 0;
}
