/*
 * multistream-select on one stream (net/mss/negotiate.c), listener side, driven byte by byte
 * through a fake stream and a fake protocol registry: the header exchange, `ls`, `na` for unknown protocols, hand-over to
 * the registry's handler with the bytes that followed the agreed line, and resets for a bad
 * header, an over-long line, end of stream and the negotiation timeout, and lines the stream
 * cannot take at once (a connection whose output is full) queued, not a reset. Every test ends with
 * a pool leak check (the negotiation state must be back in its pool).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>
#include <kw/net/mss.h>
#include <kw/net/varint.h>

#define PA "/kw-test/a/1.0.0"
#define PB "/kw-test/b/2.0.0"

static const char *const g_protos[] = { PA, PB };

struct fx {
	struct kw_test_node *t;
	struct kw_mss mss;
	struct kw_stream s;
	uint8_t out[4096];
	size_t out_len, rd;
	int resets, resumes;
	bool closed;
	bool limited;   /* the stream takes at most `space` more bytes (a full connection) */
	size_t space;
	/* an outbound negotiation's result */
	struct kw_stream *opened;
	int open_err, opens;
	/* the protocol handler that takes the stream over */
	int accepts;
	uint8_t got[64];
	size_t got_len;
};

static struct fx *g;

/* ---- fake stream -------------------------------------------------------------------------- */

static long fs_write(struct kw_stream *s, const uint8_t *b, size_t n)
{
	if (g->resets)
		return -KW_ECONNRESET;
	if (g->limited) {
		n = n < g->space ? n : g->space;
		g->space -= n;
	}
	assert_true(g->out_len + n <= sizeof(g->out));
	memcpy(g->out + g->out_len, b, n);
	g->out_len += n;
	return (long)n;
}
static int fs_close_write(struct kw_stream *s) { return 0; }
static void fs_reset(struct kw_stream *s) { g->resets++; }
static void fs_resume(struct kw_stream *s) { g->resumes++; }
static const struct kw_stream_ops g_ops = {
	.write = fs_write, .close_write = fs_close_write, .reset = fs_reset, .resume = fs_resume,
};

/* What a muxer does after a reset: on_close, from the loop, once. */
static void close_stream(void)
{
	if (!g->closed && g->s.h && g->s.h->on_close) {
		g->closed = true;
		g->s.h->on_close(&g->s, -KW_ECONNRESET);
	}
}

/* ---- the protocol handler -------------------------------------------------------------- */

static size_t p_data(struct kw_stream *s, const uint8_t *d, size_t n)
{
	size_t k = n < sizeof(g->got) - g->got_len ? n : sizeof(g->got) - g->got_len;

	memcpy(g->got + g->got_len, d, k);
	g->got_len += k;
	return n;
}
static void p_close(struct kw_stream *s, int r) { }
static const struct kw_stream_handler g_p = { .on_data = p_data, .on_close = p_close };

/* ---- fake registry: PA and PB ------------------------------------------------------------ */

static const char *reg_protocol(void *arg, size_t i)
{
	return i < sizeof(g_protos) / sizeof(g_protos[0]) ? g_protos[i] : NULL;
}

static bool reg_offers(void *arg, const char *id)
{
	return !strcmp(id, PA) || !strcmp(id, PB);
}

static int reg_accept(void *arg, struct kw_stream *s, const char *id)
{
	assert_true(reg_offers(arg, id));
	g->accepts++;
	s->h = &g_p;
	return 0;
}

static const struct kw_mss_registry g_reg = {
	.protocol = reg_protocol, .offers = reg_offers, .accept = reg_accept,
};

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
	g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->t = kw_test_node_new(32 * 1024);
	if (!g->t || kw_mss_init(&g->mss, g->t->node, 4, CONFIG_KW_NET_NEGOTIATE_TIMEOUT_MS,
				 &g_reg) < 0)
		return -1;
	g->s.ops = &g_ops;
	g->s.id = 7;
	kw_mss_inbound(&g->mss, &g->s, "12D3test");
	return 0;
}

static int teardown(void **state)
{
	close_stream();
	kw_loop_run_once(&g->t->node->loop, 0);
	kw_test_assert_no_leaks(g->t->node);
	kw_test_node_free(g->t);
	free(g);
	g = NULL;
	return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static size_t feed(const void *d, size_t n)
{
	return g->s.h->on_data(&g->s, (const uint8_t *)d, n);
}

/* Feeds multistream lines (each "text" becomes varint length + text + '\n'). */
static void feed_line(const char *text)
{
	uint8_t b[KW_MSS_LINE_MAX + 8];
	int l = kw_mss_line_encode(text, b, sizeof(b));

	assert_true(l > 0);
	assert_int_equal(feed(b, (size_t)l), (size_t)l);
}

/* The next line the listener wrote must be `text`. */
static void expect_line(const char *text)
{
	uint8_t b[KW_MSS_LINE_MAX + 8];
	int l = kw_mss_line_encode(text, b, sizeof(b));

	assert_true(l > 0);
	assert_true(g->out_len - g->rd >= (size_t)l);
	assert_memory_equal(g->out + g->rd, b, (size_t)l);
	g->rd += (size_t)l;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_mss_ls_lists_every_registered_protocol(void **state)
{
	uint8_t body[1024], hdr[8];
	size_t off = 0, i, n = sizeof(g_protos) / sizeof(g_protos[0]);
	int h;

	feed_line(KW_MSS_HEADER);
	expect_line(KW_MSS_HEADER);
	feed_line("ls");
	/* go-multistream's form: one length-prefixed message holding each protocol as a
	 * multistream line, then '\n' */
	assert_true(n >= 2);
	for (i = 0; i < n; i++) {
		int l = kw_mss_line_encode(g_protos[i], body + off, sizeof(body) - off);

		assert_true(l > 0);
		off += (size_t)l;
	}
	body[off++] = '\n';
	assert_non_null(memmem(body, off, PA "\n", strlen(PA) + 1));
	assert_non_null(memmem(body, off, PB "\n", strlen(PB) + 1));
	h = kw_uvarint_encode(off, hdr, sizeof(hdr));
	assert_true(h > 0);
	assert_int_equal(g->out_len - g->rd, (size_t)h + off);
	assert_memory_equal(g->out + g->rd, hdr, (size_t)h);
	assert_memory_equal(g->out + g->rd + h, body, off);
	g->rd += (size_t)h + off;
	/* ls does not end the negotiation: a protocol can still be chosen */
	feed_line(PB);
	expect_line(PB);
	assert_int_equal(g->accepts, 1);
	assert_string_equal(g->s.protocol, PB);
	assert_int_equal(g->resets, 0);
}

static void test_mss_unknown_protocol_gets_na_then_known_one_is_handed_over(void **state)
{
	uint8_t b[2 * (KW_MSS_LINE_MAX + 8)];
	int l;

	feed_line(KW_MSS_HEADER);
	expect_line(KW_MSS_HEADER);
	feed_line("/kw-test/nope/1.0.0");
	expect_line("na");
	assert_int_equal(g->accepts, 0);
	/* the agreed line and the protocol's first bytes in one read, as js sends them */
	l = kw_mss_line_encode(PA, b, sizeof(b));
	memcpy(b + l, "hello", 5);
	assert_int_equal(feed(b, (size_t)l + 5), (size_t)l + 5);
	expect_line(PA);
	assert_int_equal(g->accepts, 1);
	assert_ptr_equal(g->s.h, &g_p);
	assert_int_equal(g->got_len, 5);
	assert_memory_equal(g->got, "hello", 5);
	assert_int_equal(g->out_len, g->rd);  /* nothing else was written */
}

static void test_mss_line_split_across_reads_is_reassembled(void **state)
{
	uint8_t b[KW_MSS_LINE_MAX + 8];
	int l = kw_mss_line_encode(KW_MSS_HEADER, b, sizeof(b)), i;

	for (i = 0; i < l; i++)
		assert_int_equal(feed(b + i, 1), 1);
	expect_line(KW_MSS_HEADER);
	assert_int_equal(g->resets, 0);
}

static void test_mss_wrong_header_resets_the_stream(void **state)
{
	feed_line("/multistream/2.0.0");
	assert_int_equal(g->resets, 1);
	assert_int_equal(g->out_len, 0);
	assert_int_equal(g->accepts, 0);
}

static void test_mss_over_long_line_resets_the_stream(void **state)
{
	uint8_t b[8 + KW_MSS_LINE_MAX + 64];
	size_t i;

	feed_line(KW_MSS_HEADER);
	expect_line(KW_MSS_HEADER);
	/* a length prefix past the 1024-byte limit, then that many bytes */
	i = (size_t)kw_uvarint_encode(KW_MSS_LINE_MAX + 50, b, sizeof(b));
	memset(b + i, 'a', sizeof(b) - i);
	feed(b, sizeof(b));
	assert_int_equal(g->resets, 1);
	assert_int_equal(g->accepts, 0);
}

static void test_mss_eof_before_agreement_resets_the_stream(void **state)
{
	feed_line(KW_MSS_HEADER);
	g->s.h->on_eof(&g->s);
	assert_int_equal(g->resets, 1);
}

static void test_mss_negotiation_times_out(void **state)
{
	feed_line(KW_MSS_HEADER);
	kw_sim_advance(g->t->net, CONFIG_KW_NET_NEGOTIATE_TIMEOUT_MS - 1);
	kw_loop_run_once(&g->t->node->loop, 0);
	assert_int_equal(g->resets, 0);
	kw_sim_advance(g->t->net, 2);
	kw_loop_run_once(&g->t->node->loop, 0);
	assert_int_equal(g->resets, 1);
}

/*
 * The connection's output is full (another stream's bulk transfer): the header and the echo
 * cannot be written at once. Before, that reset the stream with nothing logged, and the
 * opener saw "Connection reset by peer". Now they are queued and sent on_writable, the
 * protocol takes the stream only once its echo is out (so nothing it writes can pass the
 * echo), and the bytes that followed the agreed line wait in the muxer until then.
 */
static void test_mss_inbound_lines_wait_for_a_full_connection(void **state)
{
	uint8_t b[2 * (KW_MSS_LINE_MAX + 8)];
	int l;

	g->limited = true;
	g->space = 0;
	feed_line(KW_MSS_HEADER);
	assert_int_equal(g->out_len, 0);
	l = kw_mss_line_encode(PA, b, sizeof(b));
	memcpy(b + l, "hello", 5);
	/* the agreed line is consumed, the protocol's bytes are not: nobody may take them yet */
	assert_int_equal(feed(b, (size_t)l + 5), (size_t)l);
	assert_int_equal(feed(b + l, 5), 0);
	assert_int_equal(g->resets, 0);
	assert_int_equal(g->accepts, 0);
	/* a little room: part of the header, still no hand-over */
	g->space = 3;
	g->s.h->on_writable(&g->s);
	assert_int_equal(g->out_len, 3);
	assert_int_equal(g->accepts, 0);
	/* room for the rest: both lines in order, then the protocol, then the held bytes */
	g->space = 1000;
	g->s.h->on_writable(&g->s);
	expect_line(KW_MSS_HEADER);
	expect_line(PA);
	assert_int_equal(g->out_len, g->rd);
	assert_int_equal(g->accepts, 1);
	assert_ptr_equal(g->s.h, &g_p);
	assert_int_equal(g->resumes, 1);
	assert_int_equal(feed(b + l, 5), 5);
	assert_int_equal(g->got_len, 5);
	assert_memory_equal(g->got, "hello", 5);
	assert_int_equal(g->resets, 0);
}

static void on_opened(struct kw_stream *s, int err, void *user)
{
	g->opens++;
	g->opened = s;
	g->open_err = err;
}

static void test_mss_outbound_proposal_waits_for_a_full_connection(void **state)
{
	struct kw_stream s2;
	uint8_t b[KW_MSS_LINE_MAX + 8];
	int l;

	memset(&s2, 0, sizeof(s2));
	s2.ops = &g_ops;
	s2.id = 9;
	g->limited = true;
	g->space = 0;
	assert_int_equal(kw_mss_outbound(&g->mss, &s2, "12D3test", PB, &g_p, NULL, on_opened), 0);
	assert_int_equal(g->out_len, 0);
	assert_int_equal(g->resets, 0);
	g->space = 1000;
	s2.h->on_writable(&s2);
	expect_line(KW_MSS_HEADER);
	expect_line(PB);
	/* the listener agrees: the opener has its stream */
	l = kw_mss_line_encode(KW_MSS_HEADER, b, sizeof(b));
	assert_int_equal(s2.h->on_data(&s2, b, (size_t)l), (size_t)l);
	l = kw_mss_line_encode(PB, b, sizeof(b));
	assert_int_equal(s2.h->on_data(&s2, b, (size_t)l), (size_t)l);
	assert_int_equal(g->opens, 1);
	assert_ptr_equal(g->opened, &s2);
	assert_int_equal(g->open_err, 0);
	assert_ptr_equal(s2.h, &g_p);
	assert_int_equal(g->resets, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mss_ls_lists_every_registered_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_unknown_protocol_gets_na_then_known_one_is_handed_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_line_split_across_reads_is_reassembled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_wrong_header_resets_the_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_over_long_line_resets_the_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_eof_before_agreement_resets_the_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_negotiation_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_inbound_lines_wait_for_a_full_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mss_outbound_proposal_waits_for_a_full_connection, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
