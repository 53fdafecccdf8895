/*
 * The swarm's inbound resource manager on its own (net/swarm/rcmgr.c): per-address and
 * per-subnet caps (IPv4 /24, IPv6 /48) for connections and for handshakes in progress, the
 * oldest handshake named as the victim when a global limit is reached, the reserve only
 * protected connections take, counters that return to empty under churn, and the refusal
 * summary's rate limit and top addresses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/arena.h>
#include <kw/err.h>

#include "../../../../net/swarm/rcmgr.h"

#define NCONN 64

static uint8_t g_mem[64 * 1024] __attribute__((aligned(16)));
static struct kw_arena g_arena;
static struct kw_rcmgr g_rc;
static struct kw_rc_conn g_c[NCONN];

static struct kw_rcmgr_limits lim(void)
{
	struct kw_rcmgr_limits l = {
		.conns_in = 32, .conns_in_reserved = 0,
		.conns_per_ip = 32, .conns_per_subnet = 32,
		.hs_in = 32, .hs_per_ip = 32, .hs_per_subnet = 32,
		.log_interval_ms = 10000,
	};
	return l;
}

static void init(const struct kw_rcmgr_limits *l)
{
	kw_arena_init(&g_arena, g_mem, sizeof(g_mem));
	memset(g_c, 0, sizeof(g_c));
	assert_int_equal(kw_rcmgr_init(&g_rc, &g_arena, l, 0x1234), 0);
}

static struct kw_rc_addr addr(const char *text)
{
	struct sockaddr_storage ss = { 0 };
	struct kw_rc_addr a;
	socklen_t len;

	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
		len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
		len = sizeof(*in);
	}
	assert_int_equal(kw_rc_addr_from_sockaddr((struct sockaddr *)&ss, len, &a), 0);
	return a;
}

/* check + commit when admitted (releasing any victim first); returns the verdict */
static enum kw_rc_reason admit(struct kw_rc_conn *c, const char *text, struct kw_rc_conn **victim)
{
	struct kw_rc_addr a = addr(text);
	struct kw_rc_conn *v = NULL;
	enum kw_rc_reason r = kw_rcmgr_check(&g_rc, &a, &v);

	if (victim)
		*victim = v;
	if (r == KW_RC_OK) {
		if (v)
			kw_rcmgr_release(&g_rc, v);
		kw_rcmgr_commit(&g_rc, c, &a);
	}
	return r;
}

static void release_all(void)
{
	int i;

	for (i = 0; i < NCONN; i++)
		kw_rcmgr_release(&g_rc, &g_c[i]);
	assert_int_equal(g_rc.in, 0);
	assert_int_equal(g_rc.hs, 0);
	assert_int_equal(kw_rcmgr_buckets_used(&g_rc), 0);
}

static void test_rcmgr_caps_connections_per_ip(void **state)
{
	struct kw_rcmgr_limits l = lim();
	int i;

	l.conns_per_ip = 3;
	init(&l);
	for (i = 0; i < 3; i++) {
		assert_int_equal(admit(&g_c[i], "192.0.2.7", NULL), KW_RC_OK);
		kw_rcmgr_handshake_done(&g_rc, &g_c[i]);  /* upgraded connections count too */
	}
	assert_int_equal(admit(&g_c[3], "192.0.2.7", NULL), KW_RC_IP);
	assert_int_equal(admit(&g_c[4], "192.0.2.8", NULL), KW_RC_OK);  /* a neighbour is fine */
	kw_rcmgr_release(&g_rc, &g_c[0]);
	assert_int_equal(admit(&g_c[5], "192.0.2.7", NULL), KW_RC_OK);
	release_all();
}

static void test_rcmgr_caps_an_ip4_slash24(void **state)
{
	struct kw_rcmgr_limits l = lim();
	char t[32];
	int i;

	l.conns_per_subnet = 4;
	init(&l);
	for (i = 0; i < 4; i++) {
		snprintf(t, sizeof(t), "198.51.100.%d", 10 + i);
		assert_int_equal(admit(&g_c[i], t, NULL), KW_RC_OK);
	}
	assert_int_equal(admit(&g_c[4], "198.51.100.200", NULL), KW_RC_SUBNET);
	assert_int_equal(admit(&g_c[5], "198.51.101.10", NULL), KW_RC_OK);  /* next /24 */
	release_all();
}

static void test_rcmgr_caps_an_ip6_slash48(void **state)
{
	struct kw_rcmgr_limits l = lim();

	l.conns_per_subnet = 2;
	init(&l);
	/* distinct /64s of one /48: one subnet */
	assert_int_equal(admit(&g_c[0], "2001:db8:aa::1", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[1], "2001:db8:aa:ffff::2", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[2], "2001:db8:aa:1234:5678::9", NULL), KW_RC_SUBNET);
	assert_int_equal(admit(&g_c[3], "2001:db8:ab::1", NULL), KW_RC_OK);  /* the next /48 */
	/* an IPv4-mapped peer counts as its IPv4 address's /24, not a /48 */
	assert_int_equal(admit(&g_c[4], "::ffff:203.0.113.1", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[5], "203.0.113.2", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[6], "203.0.113.3", NULL), KW_RC_SUBNET);
	release_all();
}

static void test_rcmgr_caps_handshakes_apart_from_connections(void **state)
{
	struct kw_rcmgr_limits l = lim();
	int i;

	l.hs_per_ip = 2;
	l.hs_per_subnet = 3;
	l.conns_per_ip = 8;
	init(&l);
	assert_int_equal(admit(&g_c[0], "192.0.2.1", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[1], "192.0.2.1", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[2], "192.0.2.1", NULL), KW_RC_HS_IP);
	assert_int_equal(admit(&g_c[2], "192.0.2.2", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[3], "192.0.2.3", NULL), KW_RC_HS_SUBNET);
	/* finished handshakes leave room for new ones; the connections stay counted */
	for (i = 0; i < 3; i++)
		kw_rcmgr_handshake_done(&g_rc, &g_c[i]);
	assert_int_equal(admit(&g_c[3], "192.0.2.1", NULL), KW_RC_OK);
	assert_int_equal(admit(&g_c[4], "192.0.2.1", NULL), KW_RC_OK);
	assert_int_equal(g_rc.in, 5);
	release_all();
}

static void test_rcmgr_full_drops_the_oldest_handshake_for_a_newcomer(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_conn *v;
	char t[32];
	int i;

	l.conns_in = 4;
	init(&l);
	for (i = 0; i < 4; i++) {
		snprintf(t, sizeof(t), "10.%d.0.1", i);
		assert_int_equal(admit(&g_c[i], t, &v), KW_RC_OK);
		assert_null(v);
	}
	kw_rcmgr_handshake_done(&g_rc, &g_c[0]);  /* upgraded: never a victim */
	assert_int_equal(admit(&g_c[4], "10.9.0.1", &v), KW_RC_OK);
	assert_ptr_equal(v, &g_c[1]);             /* the oldest still handshaking */
	assert_int_equal(admit(&g_c[5], "10.9.0.2", &v), KW_RC_OK);
	assert_ptr_equal(v, &g_c[2]);
	assert_int_equal(g_rc.in, 4);
	/* every slot upgraded: refused, nothing to drop */
	for (i = 0; i < 6; i++)
		kw_rcmgr_handshake_done(&g_rc, &g_c[i]);
	assert_int_equal(admit(&g_c[6], "10.9.0.3", &v), KW_RC_FULL);
	assert_null(v);
	release_all();
}

static void test_rcmgr_handshake_limit_drops_the_oldest_handshake(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_conn *v;

	l.hs_in = 2;
	init(&l);
	assert_int_equal(admit(&g_c[0], "10.0.0.1", &v), KW_RC_OK);
	assert_int_equal(admit(&g_c[1], "10.1.0.1", &v), KW_RC_OK);
	assert_int_equal(admit(&g_c[2], "10.2.0.1", &v), KW_RC_OK);
	assert_ptr_equal(v, &g_c[0]);
	assert_int_equal(g_rc.hs, 2);
	release_all();
}

static void test_rcmgr_reserve_is_for_protected_connections_only(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_conn *v;
	char t[32];
	int i;

	l.conns_in = 4;
	l.conns_in_reserved = 2;
	init(&l);
	for (i = 0; i < 2; i++) {
		snprintf(t, sizeof(t), "10.%d.0.1", i);
		assert_int_equal(admit(&g_c[i], t, &v), KW_RC_OK);
		kw_rcmgr_handshake_done(&g_rc, &g_c[i]);
	}
	/* strangers hold the 2 unreserved slots: a third is refused though 2 slots are free */
	assert_int_equal(admit(&g_c[2], "10.2.0.1", &v), KW_RC_FULL);
	/* one turns out useful: it moves into the reserve and frees a stranger's slot */
	kw_rcmgr_protect(&g_rc, &g_c[0]);
	assert_int_equal(admit(&g_c[2], "10.2.0.1", &v), KW_RC_OK);
	assert_null(v);
	kw_rcmgr_protect(&g_rc, &g_c[2]);
	assert_int_equal(admit(&g_c[3], "10.3.0.1", &v), KW_RC_OK);
	/* the limit still holds in total, and a protected connection is never the victim */
	kw_rcmgr_handshake_done(&g_rc, &g_c[3]);
	assert_int_equal(admit(&g_c[4], "10.4.0.1", &v), KW_RC_FULL);
	assert_int_equal(g_rc.prot, 2);
	release_all();
	assert_int_equal(g_rc.prot, 0);
}

static void test_rcmgr_protected_handshake_leaves_the_victim_queue(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_conn *v;

	l.conns_in = 2;
	init(&l);
	assert_int_equal(admit(&g_c[0], "10.0.0.1", &v), KW_RC_OK);
	assert_int_equal(admit(&g_c[1], "10.1.0.1", &v), KW_RC_OK);
	kw_rcmgr_protect(&g_rc, &g_c[0]);
	assert_int_equal(admit(&g_c[2], "10.2.0.1", &v), KW_RC_OK);
	assert_ptr_equal(v, &g_c[1]);
	release_all();
}

static void test_rcmgr_counters_return_to_empty_under_churn(void **state)
{
	struct kw_rcmgr_limits l = lim();
	char t[64];
	uint32_t i;

	l.conns_in = 8;
	l.hs_in = 8;
	init(&l);
	/* many distinct addresses through a small table: deletions must not lose buckets */
	for (i = 0; i < 200000; i++) {
		struct kw_rc_conn *c = &g_c[i % 8];
		struct kw_rc_conn *v;

		kw_rcmgr_release(&g_rc, c);
		if (i % 3)
			snprintf(t, sizeof(t), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		else
			snprintf(t, sizeof(t), "2001:db8:%x:%x::1", i & 0xffff, (i >> 4) & 0xffff);
		assert_int_equal(admit(c, t, &v), KW_RC_OK);
		assert_null(v);
		if (i & 1)
			kw_rcmgr_handshake_done(&g_rc, c);
		assert_true(kw_rcmgr_buckets_used(&g_rc) <= 16);
	}
	release_all();
}

static void test_rcmgr_summary_is_rate_limited_and_names_top_addresses(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_addr a4 = addr("127.0.0.4"), a5 = addr("127.0.0.5"), a6 = addr("2001:db8::6");
	char line[640];
	uint64_t t;
	int i, lines = 0;

	init(&l);
	assert_int_equal(kw_rcmgr_summary(&g_rc, 1000, line, sizeof(line)), 0);
	assert_int_equal(kw_rcmgr_summary_due(&g_rc), 0);
	/* the first refusal after a quiet time is reported at once */
	kw_rcmgr_note(&g_rc, &a4, KW_RC_IP);
	assert_int_equal(kw_rcmgr_summary(&g_rc, 1000, line, sizeof(line)), 1);
	assert_non_null(strstr(line, "127.0.0.4"));
	/* a flood: one line per interval, however many refusals */
	for (t = 1001; t < 31000; t++) {
		for (i = 0; i < 5; i++)
			kw_rcmgr_note(&g_rc, i < 3 ? &a4 : i < 4 ? &a5 : &a6,
				      i < 3 ? KW_RC_IP : KW_RC_HS_SUBNET);
		lines += kw_rcmgr_summary(&g_rc, t, line, sizeof(line));
	}
	assert_int_equal(lines, 2);  /* at 11000 and 21000 */
	assert_int_equal(kw_rcmgr_summary_due(&g_rc), 31000);
	assert_int_equal(kw_rcmgr_summary(&g_rc, 31000, line, sizeof(line)), 1);
	/* 9999 ms x 5 refusals, most from .4, then .5 and the IPv6 peer */
	assert_non_null(strstr(line, ": 49995 in the last 10000 ms"));
	assert_non_null(strstr(line, "per address 29997"));
	assert_non_null(strstr(line, "handshakes per subnet 19998"));
	assert_non_null(strstr(line, "most from 127.0.0.4 (29997)"));
	assert_non_null(strstr(line, "127.0.0.5 (9999)"));
	assert_non_null(strstr(line, "2001:db8::6 (9999)"));
	assert_int_equal(g_rc.total[KW_RC_IP], 1 + 3 * 29999);
	assert_int_equal(kw_rcmgr_summary_due(&g_rc), 0);
	/* quiet for longer than an interval: the next refusal is reported at once again */
	kw_rcmgr_note(&g_rc, &a5, KW_RC_FULL);
	assert_int_equal(kw_rcmgr_summary(&g_rc, 60000, line, sizeof(line)), 1);
	assert_non_null(strstr(line, "all slots upgraded 1"));
}

static void test_rcmgr_summary_top_table_keeps_the_heavy_hitter(void **state)
{
	struct kw_rcmgr_limits l = lim();
	struct kw_rc_addr heavy = addr("127.0.0.2");
	char line[640], t[32];
	int i;

	init(&l);
	kw_rcmgr_note(&g_rc, &heavy, KW_RC_IP);
	assert_int_equal(kw_rcmgr_summary(&g_rc, 0, line, sizeof(line)), 1);
	/* a scatter of one-off addresses between the heavy hitter's refusals */
	for (i = 0; i < 1000; i++) {
		struct kw_rc_addr a;

		snprintf(t, sizeof(t), "10.0.%d.%d", i / 250, i % 250);
		a = addr(t);
		kw_rcmgr_note(&g_rc, &a, KW_RC_HS_IP);
		kw_rcmgr_note(&g_rc, &heavy, KW_RC_IP);
		kw_rcmgr_note(&g_rc, &heavy, KW_RC_IP);
	}
	assert_int_equal(kw_rcmgr_summary(&g_rc, 10000, line, sizeof(line)), 1);
	assert_non_null(strstr(line, "most from 127.0.0.2 (2000)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcmgr_caps_connections_per_ip),
		cmocka_unit_test(test_rcmgr_caps_an_ip4_slash24),
		cmocka_unit_test(test_rcmgr_caps_an_ip6_slash48),
		cmocka_unit_test(test_rcmgr_caps_handshakes_apart_from_connections),
		cmocka_unit_test(test_rcmgr_full_drops_the_oldest_handshake_for_a_newcomer),
		cmocka_unit_test(test_rcmgr_handshake_limit_drops_the_oldest_handshake),
		cmocka_unit_test(test_rcmgr_reserve_is_for_protected_connections_only),
		cmocka_unit_test(test_rcmgr_protected_handshake_leaves_the_victim_queue),
		cmocka_unit_test(test_rcmgr_counters_return_to_empty_under_churn),
		cmocka_unit_test(test_rcmgr_summary_is_rate_limited_and_names_top_addresses),
		cmocka_unit_test(test_rcmgr_summary_top_table_keeps_the_heavy_hitter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
