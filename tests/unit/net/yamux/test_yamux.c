/*
 * yamux (net/yamux/yamux.c) driven directly: frames are written as a peer would send them
 * (kw_yamux_input) and what the session emits is captured from io->output and decoded.
 * Covers stream-id parity, SYN/ACK/FIN/RST, flow-control windows, ping, go-away codes, the
 * per-session stream limit and malformed frames. Every test ends with a pool leak check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

#include <kw/net/yamux.h>

enum { T_DATA = 0, T_WU = 1, T_PING = 2, T_GOAWAY = 3 };
enum { F_SYN = 1, F_ACK = 2, F_FIN = 4, F_RST = 8 };

struct frame {
	uint8_t ver, type;
	uint16_t flags;
	uint32_t id, len;
	const uint8_t *payload;
};

struct yt {
	struct kw_test_node *t;
	struct kw_yamux_pools p;
	struct kw_yamux *y;
	uint8_t out[1u << 20];        /* everything the session sent */
	size_t out_len, rd;           /* rd: frames already looked at */
	size_t space;                 /* output room the fake connection offers */
	int closed_told, kicks;
	/* the test stream handler */
	struct kw_stream *inbound[8];
	int n_inbound;
	bool consume;                 /* on_data takes everything (else nothing) */
	size_t got;
	int eofs, closes, close_reason, writables;
	/* log capture */
	char log[512];
};

static struct yt *g;

/* A log line exists only when its level is compiled in (CONFIG_KW_LOG_LEVEL may be 0). */
#define assert_logged(level, text)                                                       \
	do {                                                                             \
		if (CONFIG_KW_LOG_LEVEL >= (level))                                      \
			assert_non_null(strstr(g->log, (text)));                         \
	} while (0)

/* ---- fake connection ------------------------------------------------------------------- */

static int io_output(void *arg, const uint8_t *h, size_t hl, const uint8_t *p, size_t pl)
{
	if (hl + pl > g->space || g->out_len + hl + pl > sizeof(g->out))
		return -KW_ENOBUFS;
	memcpy(g->out + g->out_len, h, hl);
	if (pl)
		memcpy(g->out + g->out_len + hl, p, pl);
	g->out_len += hl + pl;
	g->space -= hl + pl;
	return 0;
}
static size_t io_space(void *arg) { return g->space; }

static size_t h_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	if (!g->consume)
		return 0;
	g->got += n;
	return n;
}
static void h_eof(struct kw_stream *s) { g->eofs++; }
static void h_writable(struct kw_stream *s) { g->writables++; }
static void h_close(struct kw_stream *s, int r)
{
	g->closes++;
	g->close_reason = r;
}
static const struct kw_stream_handler g_h = {
	.on_data = h_data, .on_eof = h_eof, .on_writable = h_writable, .on_close = h_close,
};

static void io_new(void *arg, struct kw_stream *s)
{
	s->h = &g_h;
	if (g->n_inbound < 8)
		g->inbound[g->n_inbound++] = s;
}
static void io_error(void *arg, int err, const char *why) { fail_msg("io->error: %s", why); }
static void io_closed(void *arg) { g->closed_told++; }
static void io_kick(void *arg) { g->kicks++; }
static const struct kw_yamux_io g_io = {
	.output = io_output, .output_space = io_space, .new_stream = io_new,
	.error = io_error, .closed = io_closed, .kick = io_kick,
};

static void log_hook(int level, const char *module, const char *msg, void *arg)
{
	size_t n = strlen(g->log);

	snprintf(g->log + n, sizeof(g->log) - n, "%s: %s\n", module, msg);
}

static int setup_role_chunks(bool client, uint32_t max_streams, uint32_t chunks)
{
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->t = kw_test_node_new(32 * 1024);
	if (!g->t)
		return -1;
	g->space = sizeof(g->out);
	g->consume = true;
	if (kw_yamux_pools_init(&g->p, g->t->node, 2, 16, chunks) < 0)
		return -1;
	kw_log_set_hook(log_hook, NULL);
	return kw_yamux_create(&g->p, &g->y, client, &g_io, NULL, max_streams);
}
static int setup_role(bool client, uint32_t max_streams)
{
	return setup_role_chunks(client, max_streams, 64);  /* 1 MiB: too small to grow windows */
}
/* 8 MiB of chunks: a quarter is 2 MiB, so windows may grow to 2 MiB */
static int setup_server_big_pool(void **state) { return setup_role_chunks(false, 8, 512); }
static int setup_client(void **state) { return setup_role(true, 8); }
static int setup_server(void **state) { return setup_role(false, 8); }
static int setup_server_limit2(void **state) { return setup_role(false, 2); }

static int teardown(void **state)
{
	kw_log_set_hook(NULL, NULL);
	if (g->y)
		kw_yamux_destroy(g->y, -KW_ECONNRESET);
	kw_loop_run_once(&g->t->node->loop, 0);
	kw_test_assert_no_leaks(g->t->node);
	kw_test_node_free(g->t);
	free(g);
	g = NULL;
	return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void run(void)
{
	int i;

	for (i = 0; i < 4; i++)
		kw_loop_run_once(&g->t->node->loop, 0);
}

/* Feeds one frame from the peer; returns kw_yamux_input's result. */
static int feed_v(uint8_t ver, uint8_t type, uint16_t flags, uint32_t id, uint32_t len,
		  const uint8_t *payload, size_t pl)
{
	static uint8_t buf[12 + 65536];
	size_t used = 0;
	int ret;

	assert_true(pl <= 65536);
	buf[0] = ver;
	buf[1] = type;
	kw_put_be16(buf + 2, flags);
	kw_put_be32(buf + 4, id);
	kw_put_be32(buf + 8, len);
	if (pl)
		memcpy(buf + 12, payload, pl);
	ret = kw_yamux_input(g->y, buf, 12 + pl, &used);
	if (ret == 0)
		assert_int_equal(used, 12 + pl);
	return ret;
}
static int feed(uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	return feed_v(0, type, flags, id, len, NULL, 0);
}
/* A Data frame carrying n bytes (sent in 64 KiB frames). */
static int feed_data(uint16_t flags, uint32_t id, size_t n)
{
	static const uint8_t zero[65536];
	int ret = 0;

	while (n && ret == 0) {
		size_t k = n > sizeof(zero) ? sizeof(zero) : n;

		ret = feed_v(0, T_DATA, n == k ? flags : 0, id, (uint32_t)k, zero, k);
		flags &= (uint16_t)~(F_SYN | F_ACK);
		n -= k;
	}
	return ret;
}

/* The next frame the session sent, or false. */
static bool next_frame(struct frame *f)
{
	const uint8_t *h = g->out + g->rd;

	if (g->out_len - g->rd < 12)
		return false;
	f->ver = h[0];
	f->type = h[1];
	f->flags = kw_get_be16(h + 2);
	f->id = kw_get_be32(h + 4);
	f->len = kw_get_be32(h + 8);
	f->payload = h + 12;
	g->rd += 12 + (f->type == T_DATA ? f->len : 0);
	return true;
}

/* Skips to the next frame of `type`; fails the test if there is none. */
static struct frame expect_frame(uint8_t type)
{
	struct frame f;

	while (next_frame(&f))
		if (f.type == type)
			return f;
	fail_msg("no frame of type %u was sent", type);
	return f;
}

static struct kw_stream *open_stream(void)
{
	struct kw_stream *s = NULL;

	assert_int_equal(kw_yamux_open(g->y, &s), 0);
	s->h = &g_h;
	return s;
}

/* ---- stream ids --------------------------------------------------------------------------- */

static void test_yamux_client_opens_odd_stream_ids(void **state)
{
	struct kw_stream *a = open_stream(), *b = open_stream();
	struct frame f;

	assert_int_equal(a->id, 1);
	assert_int_equal(b->id, 3);
	f = expect_frame(T_WU);
	assert_int_equal(f.id, 1);
	assert_int_equal(f.flags, F_SYN);
	assert_int_equal(f.len, 0);
	f = expect_frame(T_WU);
	assert_int_equal(f.id, 3);
	assert_int_equal(f.flags, F_SYN);
}

static void test_yamux_server_opens_even_stream_ids(void **state)
{
	struct kw_stream *a = open_stream(), *b = open_stream();

	assert_int_equal(a->id, 2);
	assert_int_equal(b->id, 4);
	assert_int_equal(expect_frame(T_WU).id, 2);
}

static void test_yamux_syn_with_our_parity_is_a_protocol_error(void **state)
{
	assert_int_equal(feed(T_WU, F_SYN, 2, 0), -KW_EPROTO);  /* server: 2 is ours */
	assert_logged(KW_LOG_LEVEL_WRN, "SYN with our stream id parity");
	assert_int_equal(g->n_inbound, 0);
}

/* ---- SYN / ACK / FIN / RST ----------------------------------------------------------------- */

static void test_yamux_inbound_syn_is_acked_on_first_frame(void **state)
{
	struct frame f;

	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(g->n_inbound, 1);
	assert_int_equal(g->inbound[0]->id, 1);
	assert_false(g->inbound[0]->outbound);
	assert_int_equal(kw_stream_write(g->inbound[0], (const uint8_t *)"hi", 2), 2);
	f = expect_frame(T_DATA);
	assert_int_equal(f.id, 1);
	assert_int_equal(f.flags, F_ACK);
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.payload, "hi", 2);
	/* only the first frame carries ACK */
	assert_int_equal(kw_stream_write(g->inbound[0], (const uint8_t *)"!", 1), 1);
	f = expect_frame(T_DATA);
	assert_int_equal(f.flags, 0);
}

static void test_yamux_fin_both_ways_closes_stream_cleanly(void **state)
{
	struct kw_stream *s;
	struct frame f;

	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	s = g->inbound[0];
	assert_int_equal(feed_v(0, T_DATA, F_FIN, 1, 3, (const uint8_t *)"abc", 3), 0);
	assert_int_equal(g->got, 3);
	assert_int_equal(g->eofs, 1);
	run();
	assert_int_equal(g->closes, 0);  /* half-closed: we may still write */
	assert_int_equal(kw_stream_write(s, (const uint8_t *)"x", 1), 1);
	assert_int_equal(kw_stream_close_write(s), 0);
	f = expect_frame(T_DATA);
	assert_int_equal(f.flags, F_ACK);
	f = expect_frame(T_WU);
	assert_int_equal(f.flags, F_FIN);
	assert_int_equal(f.id, 1);
	assert_int_equal(kw_stream_write(s, (const uint8_t *)"y", 1), -KW_EPIPE);
	run();
	assert_int_equal(g->closes, 1);
	assert_int_equal(g->close_reason, 0);
	assert_int_equal(kw_yamux_stream_count(g->y), 0);
}

static void test_yamux_fin_on_window_update_gives_eof(void **state)
{
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed(T_WU, F_FIN, 1, 0), 0);
	assert_int_equal(g->eofs, 1);
	/* data after FIN is dropped */
	assert_int_equal(feed_v(0, T_DATA, 0, 1, 1, (const uint8_t *)"z", 1), 0);
	assert_int_equal(g->got, 0);
}

static void test_yamux_rst_from_peer_frees_stream(void **state)
{
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(kw_yamux_stream_count(g->y), 1);
	assert_int_equal(feed(T_WU, F_RST, 1, 0), 0);
	run();
	assert_int_equal(g->closes, 1);
	assert_int_equal(g->close_reason, -KW_ECONNRESET);
	assert_int_equal(kw_yamux_stream_count(g->y), 0);
	/* frames still in flight for the reset stream are dropped, not an error */
	assert_int_equal(feed_v(0, T_DATA, 0, 1, 1, (const uint8_t *)"z", 1), 0);
	assert_int_equal(g->got, 0);
}

static void test_yamux_local_reset_sends_rst(void **state)
{
	struct kw_stream *s = open_stream();
	struct frame f;

	kw_stream_reset(s);
	expect_frame(T_WU);  /* the SYN */
	f = expect_frame(T_WU);
	assert_int_equal(f.flags, F_RST);
	assert_int_equal(f.id, 1);
	assert_int_equal(kw_stream_write(s, (const uint8_t *)"x", 1), -KW_ECONNRESET);
	run();
	assert_int_equal(g->closes, 1);
	assert_int_equal(kw_yamux_stream_count(g->y), 0);
}

/* ---- flow control ------------------------------------------------------------------------ */

static void test_yamux_sender_blocks_at_zero_window_and_resumes_on_credit(void **state)
{
	static uint8_t big[KW_YAMUX_WINDOW + 4096];
	struct kw_stream *s = open_stream();
	struct frame f;
	size_t sent = 0;
	long n;

	n = kw_stream_write(s, big, sizeof(big));
	assert_int_equal(n, KW_YAMUX_WINDOW);  /* the initial 256 KiB window */
	while (next_frame(&f))
		if (f.type == T_DATA)
			sent += f.len;
	assert_int_equal(sent, KW_YAMUX_WINDOW);
	assert_int_equal(kw_stream_write(s, big, 1), 0);
	assert_int_equal(g->writables, 0);
	assert_int_equal(feed(T_WU, F_ACK, 1, 1000), 0);
	assert_int_equal(g->writables, 1);
	assert_int_equal(kw_stream_write(s, big, 4096), 1000);
	assert_int_equal(kw_stream_write(s, big, 1), 0);
}

static void test_yamux_receive_window_is_credited_for_consumed_bytes(void **state)
{
	struct frame f;
	uint32_t credit = 0;

	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed_data(0, 1, KW_YAMUX_WINDOW), 0);  /* the whole initial window */
	assert_int_equal(g->got, KW_YAMUX_WINDOW);
	while (next_frame(&f))
		if (f.type == T_WU && f.id == 1)
			credit += f.len;
	assert_int_equal(credit, KW_YAMUX_WINDOW);
	/* the window grew by the credit: another window's worth is fine, one byte more is not */
	assert_int_equal(feed_data(0, 1, KW_YAMUX_WINDOW), 0);
	g->consume = false;
	credit = 0;
	while (next_frame(&f))
		if (f.type == T_WU)
			credit += f.len;
	assert_int_equal(feed_data(0, 1, credit), 0);
	assert_int_equal(feed_data(0, 1, 1), -KW_EPROTO);
	assert_logged(KW_LOG_LEVEL_WRN, "data beyond the receive window");
}

static void test_yamux_unconsumed_data_is_not_credited(void **state)
{
	struct frame f;

	g->consume = false;
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed_data(0, 1, 3 * 65536), 0);  /* queued: more than a credit step */
	while (next_frame(&f))
		assert_false(f.type == T_WU && f.len > 0);
	/* once the handler consumes (resume), the bytes are delivered and credited */
	g->consume = true;
	kw_stream_resume(g->inbound[0]);
	run();
	assert_int_equal(g->got, 3 * 65536);
	f = expect_frame(T_WU);
	assert_int_equal(f.len, 3 * 65536);
}

/* Sums the credit in window updates for stream `id` sent since the last look. */
static uint32_t credit_sent(uint32_t id)
{
	struct frame f;
	uint32_t credit = 0;

	while (next_frame(&f))
		if (f.type == T_WU && f.id == id)
			credit += f.len;
	return credit;
}

static void test_yamux_window_doubles_while_handler_keeps_up(void **state)
{
	/* growth stops at the configured maximum or at a quarter of this fixture's 8 MiB chunk
	 * pool, whichever is smaller */
	const uint32_t cap = KW_MIN(KW_YAMUX_MAX_WINDOW, 2u * 1024 * 1024);
	uint32_t win = KW_YAMUX_WINDOW, granted = KW_YAMUX_WINDOW, received = 0, c, grow;

	if (KW_YAMUX_MAX_WINDOW < 2 * KW_YAMUX_WINDOW) {
		print_message("skipped: CONFIG_KW_NET_YAMUX_MAX_WINDOW_KIB=%u turns window growth "
			      "off\n", (unsigned)(KW_YAMUX_MAX_WINDOW / 1024));
		skip();
	}
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	/* each half window consumed at once is credited plus the growth (the window again, as
	 * far as the cap allows): 256K, 512K, 1M, 2M with the default maximum */
	while (win < cap) {
		grow = KW_MIN(win, cap - win);
		assert_int_equal(feed_data(0, 1, win / 2), 0);
		received += win / 2;
		c = credit_sent(1);
		assert_int_equal(c, win / 2 + grow);
		granted += c;
		win += grow;
	}
	/* at the cap only consumed bytes are credited */
	assert_int_equal(feed_data(0, 1, win / 2), 0);
	received += win / 2;
	c = credit_sent(1);
	assert_int_equal(c, win / 2);
	granted += c;
	/* the peer may send exactly what was granted, not a byte more */
	g->consume = false;
	assert_int_equal(feed_data(0, 1, granted - received), 0);
	assert_int_equal(feed_data(0, 1, 1), -KW_EPROTO);
	assert_logged(KW_LOG_LEVEL_WRN, "data beyond the receive window");
}

static void test_yamux_window_does_not_grow_while_data_is_queued(void **state)
{
	g->consume = false;
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed_data(0, 1, KW_YAMUX_WINDOW), 0);  /* all queued */
	assert_int_equal(credit_sent(1), 0);
	/* the handler takes it all in one go, but it was queued: credit is what was consumed */
	g->consume = true;
	kw_stream_resume(g->inbound[0]);
	run();
	assert_int_equal(g->got, KW_YAMUX_WINDOW);
	assert_int_equal(credit_sent(1), KW_YAMUX_WINDOW);
}

static void test_yamux_window_does_not_grow_with_a_small_chunk_pool(void **state)
{
	uint32_t i;

	/* 1 MiB of chunks: growing to 512 KiB would pass a quarter of it */
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(feed_data(0, 1, KW_YAMUX_WINDOW / 2), 0);
		assert_int_equal(credit_sent(1), KW_YAMUX_WINDOW / 2);
	}
}

/* ---- ping, go-away ------------------------------------------------------------------------- */

static void test_yamux_ping_is_answered_with_same_opaque_value(void **state)
{
	struct frame f;

	assert_int_equal(feed(T_PING, F_SYN, 0, 0xdeadbeef), 0);
	f = expect_frame(T_PING);
	assert_int_equal(f.flags, F_ACK);
	assert_int_equal(f.id, 0);
	assert_int_equal(f.len, 0xdeadbeef);
	/* an ACK (answer to a ping of ours) is not answered */
	assert_int_equal(feed(T_PING, F_ACK, 0, 7), 0);
	assert_false(next_frame(&f));
}

static void test_yamux_goaway_is_sent_with_each_code(void **state)
{
	static const uint32_t codes[] = { KW_YAMUX_GOAWAY_NORMAL, KW_YAMUX_GOAWAY_PROTOCOL,
					  KW_YAMUX_GOAWAY_INTERNAL };
	struct kw_stream *s;
	struct frame f;
	size_t i;

	for (i = 0; i < 3; i++) {
		if (i) {
			kw_yamux_destroy(g->y, -KW_ECONNRESET);
			assert_int_equal(kw_yamux_create(&g->p, &g->y, true, &g_io, NULL, 8), 0);
		}
		kw_yamux_goaway(g->y, codes[i]);
		f = expect_frame(T_GOAWAY);
		assert_int_equal(f.id, 0);
		assert_int_equal(f.len, codes[i]);
		assert_int_equal(kw_yamux_open(g->y, &s), -KW_ESHUTDOWN);
		run();
		assert_int_equal(g->closed_told, (int)i + 1);  /* no streams: the session is done */
	}
}

static void test_yamux_goaway_is_received_with_each_code(void **state)
{
	static const uint32_t codes[] = { KW_YAMUX_GOAWAY_NORMAL, KW_YAMUX_GOAWAY_PROTOCOL,
					  KW_YAMUX_GOAWAY_INTERNAL };
	struct kw_stream *s;
	uint32_t code;
	size_t i;

	for (i = 0; i < 3; i++) {
		if (i) {
			kw_yamux_destroy(g->y, -KW_ECONNRESET);
			assert_int_equal(kw_yamux_create(&g->p, &g->y, false, &g_io, NULL, 8), 0);
		}
		assert_int_equal(kw_yamux_goaway_received(g->y, &code), -KW_ENOENT);
		assert_int_equal(feed(T_GOAWAY, 0, 0, codes[i]), 0);
		assert_int_equal(kw_yamux_goaway_received(g->y, &code), 0);
		assert_int_equal(code, codes[i]);
		assert_int_equal(kw_yamux_open(g->y, &s), -KW_ESHUTDOWN);
		run();
		assert_int_equal(g->closed_told, (int)i + 1);
	}
	assert_logged(KW_LOG_LEVEL_INF, "go-away code 1 (protocol error)");
	assert_logged(KW_LOG_LEVEL_INF, "go-away code 2 (internal error)");
}

static void test_yamux_open_streams_finish_before_goaway_closes(void **state)
{
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed(T_GOAWAY, 0, 0, 0), 0);
	run();
	assert_int_equal(g->closed_told, 0);  /* stream 1 still open */
	assert_int_equal(feed(T_WU, F_RST, 1, 0), 0);
	run();
	assert_int_equal(g->closed_told, 1);
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_yamux_stream_limit_resets_extra_inbound_syn(void **state)
{
	struct kw_stream *s;
	struct frame f;

	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	assert_int_equal(feed(T_WU, F_SYN, 3, 0), 0);
	assert_int_equal(feed(T_WU, F_SYN, 5, 0), 0);
	assert_int_equal(g->n_inbound, 2);
	assert_int_equal(kw_yamux_stream_count(g->y), 2);
	f = expect_frame(T_WU);
	assert_int_equal(f.id, 5);
	assert_int_equal(f.flags, F_RST);
	assert_logged(KW_LOG_LEVEL_WRN, "refusing stream 5");
	assert_int_equal(kw_yamux_open(g->y, &s), -KW_ELIMIT);
	/* the refused stream's data is dropped, the session stays up */
	assert_int_equal(feed_v(0, T_DATA, 0, 5, 1, (const uint8_t *)"z", 1), 0);
}

/* ---- malformed frames ------------------------------------------------------------------- */

static void assert_protocol_error_sends_goaway(const char *why)
{
	struct frame f;

	assert_logged(KW_LOG_LEVEL_WRN, why);
	f = expect_frame(T_GOAWAY);
	assert_int_equal(f.len, KW_YAMUX_GOAWAY_PROTOCOL);
}

static void test_yamux_bad_version_is_a_protocol_error(void **state)
{
	assert_int_equal(feed_v(1, T_WU, F_SYN, 1, 0, NULL, 0), -KW_EPROTO);
	assert_protocol_error_sends_goaway("frame version not 0");
}

static void test_yamux_unknown_type_is_a_protocol_error(void **state)
{
	assert_int_equal(feed(4, 0, 1, 0), -KW_EPROTO);
	assert_protocol_error_sends_goaway("unknown frame type");
}

static void test_yamux_oversized_data_length_is_a_protocol_error(void **state)
{
	assert_int_equal(feed(T_WU, F_SYN, 1, 0), 0);
	/* header only: a length past the window fails before any payload is read */
	assert_int_equal(feed(T_DATA, 0, 1, KW_YAMUX_WINDOW + 1), -KW_EPROTO);
	assert_protocol_error_sends_goaway("data beyond the receive window");
}

static void test_yamux_data_on_never_opened_stream_is_a_protocol_error(void **state)
{
	assert_int_equal(feed_v(0, T_DATA, 0, 7, 1, (const uint8_t *)"z", 1), -KW_EPROTO);
	assert_protocol_error_sends_goaway("never opened");
}

static void test_yamux_truncated_header_waits_for_the_rest(void **state)
{
	uint8_t h[12] = { 0, T_WU, 0, F_SYN, 0, 0, 0, 1, 0, 0, 0, 0 };
	size_t used = 0;

	assert_int_equal(kw_yamux_input(g->y, h, 5, &used), 0);
	assert_int_equal(used, 5);
	assert_int_equal(g->n_inbound, 0);
	assert_int_equal(kw_yamux_input(g->y, h + 5, 7, &used), 0);
	assert_int_equal(g->n_inbound, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_yamux_client_opens_odd_stream_ids, setup_client, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_server_opens_even_stream_ids, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_syn_with_our_parity_is_a_protocol_error, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_inbound_syn_is_acked_on_first_frame, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_fin_both_ways_closes_stream_cleanly, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_fin_on_window_update_gives_eof, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_rst_from_peer_frees_stream, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_local_reset_sends_rst, setup_client, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_sender_blocks_at_zero_window_and_resumes_on_credit, setup_client, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_receive_window_is_credited_for_consumed_bytes, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_unconsumed_data_is_not_credited, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_window_doubles_while_handler_keeps_up, setup_server_big_pool, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_window_does_not_grow_while_data_is_queued, setup_server_big_pool, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_window_does_not_grow_with_a_small_chunk_pool, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_ping_is_answered_with_same_opaque_value, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_goaway_is_sent_with_each_code, setup_client, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_goaway_is_received_with_each_code, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_open_streams_finish_before_goaway_closes, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_stream_limit_resets_extra_inbound_syn, setup_server_limit2, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_bad_version_is_a_protocol_error, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_unknown_type_is_a_protocol_error, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_oversized_data_length_is_a_protocol_error, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_data_on_never_opened_stream_is_a_protocol_error, setup_server, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_truncated_header_waits_for_the_rest, setup_server, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
