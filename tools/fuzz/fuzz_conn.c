/*
 * libFuzzer: everything an authenticated peer can send after the handshake, end to end. Two
 * swarms share a simulated network; the attacker (A) dials the target (B) for real (mss,
 * Noise XX, yamux, identify), then A's loop is frozen and the input is sent to B as A's
 * plaintext, encrypted with A's own Noise session so B decrypts it: yamux frames, stream
 * negotiation, identify, identify push, ping and an echo protocol all see hostile bytes in
 * pieces whose sizes come from the input. Afterwards A closes, virtual time runs past every
 * timeout, and both nodes' pools must be back where they were before the dial (no leak, no
 * stuck connection). The pre-handshake bytes have their own targets (mss_line,
 * noise_handshake).
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/identify.h>
#include <kw/net/key.h>
#include <kw/net/noise.h>
#include <kw/net/ping.h>
#include <kw/net/swarm.h>

#include "../../net/swarm/swarm_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ECHO "/kw-fuzz/echo/1.0.0"

struct side {
	struct kw_sim sim;
	struct kw_node *n;
	struct kw_privkey key;
	struct kw_swarm *sw;
	size_t base;                 /* pool blocks in use when idle */
};

static struct kw_sim_net g_net;
static struct side g_a, g_b;
static char g_addr[256];
static struct kw_conn *g_c;
static int g_dial_done;

static size_t echo_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	long w = kw_stream_write(s, d, n);

	return w < 0 ? n : (size_t)w;
}
static void echo_eof(struct kw_stream *s) { kw_stream_close_write(s); }
static void echo_close(struct kw_stream *s, int r) { }
static const struct kw_stream_handler echo_h = { .on_data = echo_data, .on_eof = echo_eof,
						 .on_close = echo_close };
static int echo_accept(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	s->h = &echo_h;
	return 0;
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	g_dial_done = 1;
	g_c = err < 0 ? NULL : c;
}

static void quiet(int level, const char *module, const char *msg, void *arg) { }

static void pump(bool a, int passes)
{
	while (passes-- > 0) {
		if (a)
			kw_loop_run_once(&g_a.n->loop, 0);
		kw_loop_run_once(&g_b.n->loop, 0);
	}
}

static void side_init(struct side *s, const char *listen)
{
	kw_sim_init(&s->sim, &g_net);
	s->n = kw_node_create_heap((size_t)32 << 20, &s->sim.sys, NULL);
	if (!s->n || kw_key_generate(KW_KEY_ED25519, 0, &s->key) < 0 ||
	    kw_swarm_create(s->n, &s->key, NULL, &s->sw) < 0 || kw_identify_init(s->sw, NULL) < 0 ||
	    kw_ping_register(s->sw) < 0 || kw_swarm_register(s->sw, ECHO, echo_accept, NULL) < 0)
		abort();
	if (listen && (kw_swarm_listen(s->sw, listen) < 0 ||
		       kw_swarm_listen_addr(s->sw, 0, g_addr, sizeof(g_addr)) < 0))
		abort();
	s->base = kw_node_pools_in_use(s->n);
}

static void init_once(void)
{
	static uint8_t mem[64 * (1u << 18) + 64 * 512 + 4096] __attribute__((aligned(64)));
	struct kw_arena ar;

	kw_log_set_hook(quiet, NULL);
	kw_log_set_stderr(0);  /* formatted for the hook, not written */
	kw_arena_init(&ar, mem, sizeof(mem));
	if (kw_sim_net_init(&g_net, &ar, 64, 1u << 18) < 0)
		abort();
	side_init(&g_b, "/ip4/127.0.0.1/tcp/4001");
	side_init(&g_a, NULL);
}

/* Discards what B sent A: A is frozen and would only fail to decrypt it later anyway. */
static void drain_a_socket(void)
{
	static uint8_t sink[65536];

	while (g_a.sim.sys.ops->read(&g_a.sim.sys, g_c->fd, sink, sizeof(sink)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[KW_NOISE_PLAINTEXT_MAX + KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN];
	size_t off = 0;
	int i;

	if (!g_b.n)
		init_once();
	g_dial_done = 0;
	g_c = NULL;
	if (kw_swarm_dial(g_a.sw, g_addr, on_dial, NULL) < 0)
		abort();
	for (i = 0; i < 200 && !g_dial_done; i++)
		pump(true, 1);
	pump(true, 20);  /* identify both ways */
	if (!g_c || g_c->state != CONN_UP)
		abort();
	drain_a_socket();

	while (off < size) {
		size_t piece = 1 + (size_t)data[off] * 4, out = 0;
		long w;

		off++;
		if (piece > size - off)
			piece = size - off;
		if (piece == 0)
			break;
		if (kw_noise_encrypt(&g_c->up.noise, data + off, piece, frame, sizeof(frame), &out) < 0)
			abort();
		w = g_a.sim.sys.ops->write(&g_a.sim.sys, g_c->fd, frame, out);
		if (w != (long)out)
			break;  /* B closed, or its window is full: the rest would not arrive either */
		off += piece;
		pump(false, 3);
		drain_a_socket();
	}

	/* A leaves; nothing may outlive the connection */
	kw_conn_close(g_c, 0);
	for (i = 0; i < 8; i++) {
		pump(true, 10);
		kw_sim_advance(&g_net, 60000);
	}
	pump(true, 10);
	if (kw_node_pools_in_use(g_b.n) != g_b.base || kw_node_pools_in_use(g_a.n) != g_a.base ||
	    kw_sim_open_sockets(&g_net) != 1 /* B's listener */)
		__builtin_trap();
	return 0;
}
