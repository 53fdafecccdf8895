/*
 * libFuzzer: the yamux frame parser and stream state machine (net/yamux/yamux.c). Arbitrary
 * bytes are fed as a peer's decrypted input, in pieces whose sizes come from the input; the
 * handler accepts every inbound stream and sometimes consumes nothing (to exercise the chunk
 * queue). After destroy every pool must be empty.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <kw/log.h>
#include <kw/node.h>
#include <kw/sim.h>

#include <kw/net/yamux.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Protocol errors are logged per frame: keep formatting them, but not gigabytes of stderr. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	kw_log_set_stderr(0);
	return 0;
}

static struct kw_node *g_n;
static struct kw_yamux_pools g_p;
static size_t g_space;

static size_t f_on_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	if (n && (d[0] & 3) == 0)
		return 0;
	if (n && d[0] == 0xff)
		kw_stream_reset(s);
	return n;
}
static void f_on_eof(struct kw_stream *s) { kw_stream_close_write(s); }
static void f_on_close(struct kw_stream *s, int r) { }
static const struct kw_stream_handler f_h = { .on_data = f_on_data, .on_eof = f_on_eof,
					      .on_close = f_on_close };

static int io_output(void *arg, const uint8_t *h, size_t hl, const uint8_t *p, size_t pl)
{
	if (hl + pl > g_space)
		return -1;
	g_space -= hl + pl;
	return 0;
}
static size_t io_space(void *arg) { return g_space; }
static void io_new(void *arg, struct kw_stream *s) { s->h = &f_h; }
static void io_error(void *arg, int err, const char *why) { }
static void io_closed(void *arg) { }
static void io_kick(void *arg) { }
static const struct kw_yamux_io g_io = { io_output, io_space, io_new, io_error, io_closed, io_kick };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_yamux *y;
	size_t off = 1;

	if (!g_n) {
		static struct kw_sim_net net;
		static struct kw_sim sim;

		kw_sim_init(&sim, &net);
		g_n = kw_node_create_heap((size_t)16 << 20, &sim.sys, NULL);
		if (!g_n || kw_yamux_pools_init(&g_p, g_n, 2, 64, 32) < 0)
			abort();
	}
	if (size < 1)
		return 0;
	g_space = (size_t)data[0] << 8;
	if (kw_yamux_create(&g_p, &y, data[0] & 1, &g_io, NULL, 16) < 0)
		abort();
	while (off < size) {
		size_t piece = 1 + data[off] % 64, used = 0;

		off++;
		if (piece > size - off)
			piece = size - off;
		if (kw_yamux_input(y, data + off, piece, &used) < 0 || used > piece)
			break;
		off += piece;
		kw_loop_run_once(&g_n->loop, 0);
		kw_yamux_on_output_space(y);
	}
	kw_yamux_destroy(y, -1);
	kw_loop_run_once(&g_n->loop, 0);
	if (kw_node_pools_in_use(g_n) != 0)
		__builtin_trap();
	return 0;
}
