/*
 * libFuzzer: hostile bytes into running Hivemind stream calls (net/hivemind/stream_rpc.c,
 * doc/net-hivemind.md "Stream calls"). Two swarms on the simulated network, connected once.
 * First input byte even: A opens a raw stream to B's stream handler and writes the rest as
 * the caller's bytes (in pieces whose sizes come from the input); the handler echoes, keeps
 * some messages (released after each piece), fails on others, ends after END_OF_STREAM.
 * Odd: A makes a stream call to a raw protocol on B, which writes the rest back as the
 * server's bytes. Then the raw side closes or resets, virtual time runs past every deadline,
 * and: every served call ended exactly once (by its handler or on_cancel), the call A made
 * finished exactly once (on_done), and both nodes' pools are back to their idle counts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ECHO "Fuzz.rpc_echo"
#define RAW  "Fuzz.rpc_raw"
#define IDLE_MS 1000

struct side {
	struct kw_sim sim;
	struct kw_node *n;
	struct kw_privkey key;
	struct kw_swarm *sw;
	struct kw_hm *hm;
	size_t base;
};

static struct kw_sim_net g_net;
static struct side g_a, g_b;
static char g_addr[256];
static struct kw_conn *g_c;
static struct kw_stream *g_raw;        /* A's raw stream (even) or B's accepted one (odd) */
static bool g_raw_open, g_raw_closed;
static struct kw_hm_stream *g_held;
static unsigned g_accepted, g_finished, g_done;

static const struct kw_hm_stream_limits lim = {
	.streams_in = 2, .streams_per_peer = 2, .streams_out = 2, .buf_bytes = 2048,
	.prefetch = 5, .idle_ms = IDLE_MS,
};

/* ---- B's stream handler ---------------------------------------------------------------------- */

static int echo_msg(struct kw_hm_stream *st, const uint8_t *m, size_t len, void *arg)
{
	if (kw_hm_stream_user(st) == NULL) {  /* first message of this call */
		g_accepted++;
		kw_hm_stream_set_user(st, st);
	}
	if (len && m[0] == 0xff) {
		kw_hm_stream_error(st, "ValueError('fuzz')");
		g_finished++;
		return 0;
	}
	if (len && (m[0] & 1) && !g_held) {
		g_held = st;
		return KW_HM_STREAM_HOLD;
	}
	kw_hm_stream_send(st, m, len);  /* -KW_EAGAIN: dropped, a fuzz echo need not keep it */
	return 0;
}

static void echo_end(struct kw_hm_stream *st, void *arg)
{
	if (kw_hm_stream_user(st) == NULL) {
		g_accepted++;
		kw_hm_stream_set_user(st, st);
	}
	if (g_held == st)
		g_held = NULL;
	kw_hm_stream_end(st);
	g_finished++;
}

static void echo_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	if (g_held == st)
		g_held = NULL;
	if (kw_hm_stream_user(st) != NULL)  /* counted only once it had a message */
		g_finished++;
}

static const struct kw_hm_stream_ops echo_ops = {
	.on_message = echo_msg, .on_end = echo_end, .on_cancel = echo_cancel,
};

/* ---- A's call ------------------------------------------------------------------------------- */

static int call_msg(struct kw_hm_stream *st, const uint8_t *m, size_t len, void *arg)
{
	return len && (m[0] & 1) ? KW_HM_STREAM_HOLD : 0;
}

static void call_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	g_done++;
}

static const struct kw_hm_stream_ops call_ops = { .on_message = call_msg, .on_done = call_done };

/* ---- raw streams -------------------------------------------------------------------------- */

static size_t raw_data(struct kw_stream *s, const uint8_t *d, size_t n) { return n; }
static void raw_close(struct kw_stream *s, int r)
{
	g_raw_closed = true;
	g_raw = NULL;
}
static const struct kw_stream_handler raw_h = { .on_data = raw_data, .on_close = raw_close };
static void raw_open(struct kw_stream *s, int err, void *user)
{
	g_raw_open = err == 0;
	g_raw = err == 0 ? s : NULL;
}
static int raw_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	s->h = &raw_h;
	g_raw = s;
	g_raw_open = true;
	return 0;
}

/* ---- plumbing ------------------------------------------------------------------------------ */

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	g_c = err < 0 ? NULL : c;
}

static void quiet(int level, const char *module, const char *msg, void *arg) { }

static void pump(int passes)
{
	while (passes-- > 0) {
		kw_loop_run_once(&g_a.n->loop, 0);
		kw_loop_run_once(&g_b.n->loop, 0);
	}
}

static void side_init(struct side *s, const char *listen)
{
	kw_sim_init(&s->sim, &g_net);
	s->n = kw_node_create_heap((size_t)32 << 20, &s->sim.sys, NULL);
	if (!s->n || kw_key_generate(KW_KEY_ED25519, 0, &s->key) < 0 ||
	    kw_swarm_create(s->n, &s->key, NULL, &s->sw) < 0 ||
	    kw_hm_create(s->sw, NULL, &s->hm) < 0 || kw_hm_stream_setup(s->hm, &lim) < 0)
		abort();
	if (listen && (kw_swarm_listen(s->sw, listen) < 0 ||
		       kw_swarm_listen_addr(s->sw, 0, g_addr, sizeof(g_addr)) < 0 ||
		       kw_hm_register_stream(s->hm, ECHO, &echo_ops, NULL, 0) < 0 ||
		       kw_swarm_register(s->sw, RAW, raw_accept, NULL) < 0))
		abort();
}

static void init_once(void)
{
	static uint8_t mem[16 * (1u << 18) + 16 * 512 + 4096] __attribute__((aligned(64)));
	struct kw_arena ar;

	kw_log_set_hook(quiet, NULL);
	kw_log_set_stderr(0);
	kw_arena_init(&ar, mem, sizeof(mem));
	if (kw_sim_net_init(&g_net, &ar, 16, 1u << 18) < 0)
		abort();
	side_init(&g_b, "/ip4/127.0.0.1/tcp/4001");
	side_init(&g_a, NULL);
	if (kw_swarm_dial(g_a.sw, g_addr, on_dial, NULL) < 0)
		abort();
	pump(200);
	if (!g_c)
		abort();
	for (int i = 0; i < 4; i++) {  /* identify both ways, then quiet */
		pump(20);
		kw_sim_advance(&g_net, 2 * IDLE_MS);
	}
	pump(20);
	g_a.base = kw_node_pools_in_use(g_a.n);
	g_b.base = kw_node_pools_in_use(g_b.n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_hm_stream *call = NULL;
	bool caller_side;
	size_t off = 1;

	if (!g_b.n)
		init_once();
	if (size < 1)
		return 0;
	caller_side = data[0] & 1;
	g_raw = NULL;
	g_raw_open = g_raw_closed = false;
	g_held = NULL;
	g_accepted = g_finished = g_done = 0;
	if (caller_side) {
		static const uint8_t req[] = { 0x08, 0x01 };

		if (kw_hm_stream_open(g_a.hm, g_c, RAW, &call_ops, NULL, 0, &call) < 0)
			abort();
		kw_hm_stream_send(call, req, sizeof(req));
		kw_hm_stream_end(call);
	} else if (kw_swarm_open_stream(g_a.sw, g_c, ECHO, &raw_h, NULL, raw_open) < 0) {
		abort();
	}
	pump(30);
	if (!g_raw_open)
		abort();
	while (off < size && g_raw) {
		size_t piece = 1 + (size_t)data[off] * 2;
		long w;

		off++;
		if (piece > size - off)
			piece = size - off;
		if (piece == 0)
			break;
		w = kw_stream_write(g_raw, data + off, piece);
		if (w <= 0)
			break;  /* reset, or the window is full behind a holding handler */
		off += (size_t)w;
		pump(3);
		if (g_held) {
			struct kw_hm_stream *h = g_held;

			g_held = NULL;
			kw_hm_stream_next(h);
			pump(2);
		}
	}
	if (g_raw) {
		if (data[0] & 2)
			kw_stream_reset(g_raw);
		else
			kw_stream_close_write(g_raw);
	}
	for (int i = 0; i < 4; i++) {
		pump(10);
		kw_sim_advance(&g_net, 2 * IDLE_MS);
	}
	pump(20);
	if (g_raw)  /* a raw side the peer never closed: end it, as a test would */
		kw_stream_reset(g_raw);
	pump(10);
	if (g_finished != g_accepted || (caller_side && g_done != 1) ||
	    kw_node_pools_in_use(g_a.n) != g_a.base || kw_node_pools_in_use(g_b.n) != g_b.base)
		__builtin_trap();
	return 0;
}
