/*
 * app/status.c: the history ring keeps the last hour oldest first; the JSON, Prometheus,
 * HTML and text renderers print what the snapshot holds, escape what came from outside and
 * refuse a buffer that is too small; the reachability verdict and its fix; the HTTP request
 * parser accepts the three GETs and refuses malformed, oversized and foreign requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <kw/err.h>

#include "../../../app/status.h"

static char g_buf[96 * 1024];

static void snap_init(struct kw_status_snap *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->peer_id, sizeof(s->peer_id), "12D3KooWTestPeer");
	snprintf(s->version, sizeof(s->version), "9.9.9");
	s->uptime_ms = 600000;
	s->have_policy = true;
	s->state = KW_POLICY_CONTRIBUTING;
	snprintf(s->reason, sizeof(s->reason), "conditions met");
	s->temp_mc = INT32_MIN;
	s->battery_pct = -1;
	s->ac = -1;
	s->n_listen = 1;
	snprintf(s->listen[0], sizeof(s->listen[0]), "/ip4/192.168.1.5/tcp/4001/p2p/12D3KooWTestPeer");
	s->n_pools = 1;
	s->pools[0].name = "swarm_conn";
	s->pools[0].used = 3;
	s->pools[0].high = 7;
	s->pools[0].count = 128;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

/* The points attribute of polyline `id` in the page: number of "x,y" pairs. */
static unsigned polyline_points(const char *page, const char *id)
{
	char key[64];
	const char *p, *e;
	unsigned n = 0;

	snprintf(key, sizeof(key), "id=\"chart-%s\"", id);
	p = strstr(page, key);
	assert_non_null(p);
	p = strstr(p, "points=\"");
	assert_non_null(p);
	p += 8;
	e = strchr(p, '"');
	for (; p < e; p++)
		n += *p == ',';
	return n;
}

/* ---- ring ---- */

static void test_status_ring_keeps_the_last_hour_oldest_first(void **state)
{
	static struct kw_status_ring r;
	struct kw_status_sample x = { 0 };
	uint32_t i;

	kw_status_ring_reset(&r);
	assert_null(kw_status_ring_get(&r, 0));
	for (i = 0; i < KW_STATUS_RING_LEN + 5; i++) {
		x.t_s = i;
		kw_status_ring_push(&r, &x);
	}
	assert_int_equal(r.n, KW_STATUS_RING_LEN);
	assert_int_equal(KW_STATUS_RING_LEN * CONFIG_KW_STATUS_SAMPLE_S, 3600);
	assert_int_equal(kw_status_ring_get(&r, 0)->t_s, 5);
	assert_int_equal(kw_status_ring_get(&r, KW_STATUS_RING_LEN - 1)->t_s,
			 KW_STATUS_RING_LEN + 4);
	assert_null(kw_status_ring_get(&r, KW_STATUS_RING_LEN));
}

/* ---- JSON ---- */

static void test_status_json_names_peer_state_and_escapes_text(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	snprintf(s.reason, sizeof(s.reason), "quote \" back \\ nl\n");
	assert_true(kw_status_render_json(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "\"peer_id\":\"12D3KooWTestPeer\""));
	assert_non_null(strstr(g_buf, "\"state\":\"contributing\""));
	assert_non_null(strstr(g_buf, "\"contributing\":true"));
	assert_non_null(strstr(g_buf, "\"reason\":\"quote \\\" back \\\\ nl\\u000a\""));
	assert_non_null(strstr(g_buf, "\"served\":[],\"served_calls\":0,\"served_errors\":0"));
	assert_non_null(strstr(g_buf, "\"temp_c\":null"));
	assert_non_null(strstr(g_buf, "{\"name\":\"swarm_conn\",\"used\":3,\"high\":7,\"count\":128,"
				       "\"fails\":0}"));
	/* one line: `kwnode status` sends it as one "json ..." line */
	assert_ptr_equal(strchr(g_buf, '\n'), g_buf + strlen(g_buf) - 1);
}

static void test_status_lists_what_is_served_in_json_and_text(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_served = 2;
	snprintf(s.served[0], sizeof(s.served[0]), "tiny-llama.0..1");
	snprintf(s.served[1], sizeof(s.served[1]), "ffn.0.0");
	s.served_calls = 12;
	s.served_errors = 1;
	assert_true(kw_status_render_json(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "\"served\":[\"tiny-llama.0..1\",\"ffn.0.0\"],"
				       "\"served_calls\":12,\"served_errors\":1"));
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "serving:       tiny-llama.0..1 ffn.0.0 (12 calls, 1 errors)\n"));
	s.n_served = 0;
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "serving:       nothing (no serve_model or serve_experts"));
}

/* Averaging (app/avg_app.h): state, rounds and failures by reason in every form. */
static void test_status_shows_averaging_in_json_metrics_and_text(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "averaging:     off (no averaging_prefix configured)\n"));
	assert_true(kw_status_render_json(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "\"averaging\":{\"state\":\"off\",\"rounds\":0,"));
	snprintf(s.avg_state, sizeof(s.avg_state), "matching");
	s.avg_rounds = 3;
	s.avg_last_group = 4;
	s.avg_last_round_ms = 1250;
	s.avg_last_done_ms = s.uptime_ms - 2000;
	s.avg_no_group = 2;
	s.avg_withdrawn = 1;
	s.avg_read_failed = 5;
	assert_true(kw_status_render_json(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "\"averaging\":{\"state\":\"matching\",\"rounds\":3,"
				       "\"last_group\":4,\"last_round_ms\":1250,"
				       "\"last_round_s_ago\":2,\"failures\":{\"no_group\":2,"
				       "\"round_failed\":0,\"peer_excluded\":0,\"withdrawn\":1,"
				       "\"write_failed\":0,\"read_failed\":5}}"));
	assert_true(kw_status_render_metrics(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "kwnode_averaging_state{state=\"matching\"} 1\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_state{state=\"idle\"} 0\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_rounds_total 3\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_last_group_size 4\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_last_round_seconds 1.250\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_failures_total{reason=\"no_group\"} 2\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_failures_total{reason=\"withdrawn\"} 1\n"));
	assert_non_null(strstr(g_buf, "kwnode_averaging_failures_total{reason=\"read_failed\"} 5\n"));
	assert_int_equal(count(g_buf, "# TYPE kwnode_averaging_failures_total counter"), 1);
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "averaging:     matching: 3 rounds, the last 2 s ago (4 peers, "
				       "1250 ms); 2 searches without a group, 0 failed, 1 left on a "
				       "pause\n"));
}

static void test_status_renderers_refuse_a_small_buffer(void **state)
{
	static struct kw_status_ring r;
	struct kw_status_snap s;
	char small[64];

	snap_init(&s);
	kw_status_ring_reset(&r);
	assert_int_equal(kw_status_render_json(&s, small, sizeof(small)), -KW_ENOSPC);
	assert_int_equal(kw_status_render_metrics(&s, small, sizeof(small)), -KW_ENOSPC);
	assert_int_equal(kw_status_render_html(&s, &r, small, sizeof(small)), -KW_ENOSPC);
	assert_int_equal(kw_status_render_text(&s, small, sizeof(small)), -KW_ENOSPC);
}

/* ---- metrics ---- */

static void test_status_metrics_mark_one_policy_state_and_pool_high_water(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.state = KW_POLICY_DRAINING;
	s.bytes_in = 1234;
	s.transitions = 4;
	s.http_not_found = 2;
	assert_true(kw_status_render_metrics(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "kwnode_policy_state{state=\"draining\"} 1\n"));
	assert_non_null(strstr(g_buf, "kwnode_policy_state{state=\"contributing\"} 0\n"));
	assert_non_null(strstr(g_buf, "kwnode_policy_state{state=\"paused\"} 0\n"));
	assert_non_null(strstr(g_buf, "kwnode_policy_transitions_total 4\n"));
	assert_non_null(strstr(g_buf, "kwnode_bytes_total{direction=\"in\"} 1234\n"));
	assert_non_null(strstr(g_buf, "kwnode_pool_high_water{pool=\"swarm_conn\"} 7\n"));
	assert_non_null(strstr(g_buf, "kwnode_errors_total{reason=\"http_not_found\"} 2\n"));
	/* every family is declared once, and an unknown temperature is left out, not 0 */
	assert_int_equal(count(g_buf, "# TYPE kwnode_errors_total counter"), 1);
	assert_null(strstr(g_buf, "kwnode_soc_temperature_celsius"));
}

/* ---- HTML ---- */

static void test_status_html_draws_one_point_per_known_sample(void **state)
{
	static struct kw_status_ring r;
	struct kw_status_snap s;
	struct kw_status_sample x = { 0 };
	uint32_t i;

	snap_init(&s);
	kw_status_ring_reset(&r);
	for (i = 0; i < 30; i++) {
		x.t_s = (i + 1) * CONFIG_KW_STATUS_SAMPLE_S;
		x.requests = i;
		x.kib = 2 * i;
		x.temp_mc = i < 10 ? INT32_MIN : 50000;   /* no reading for the first ten */
		x.battery_pct = -1;                       /* no battery at all */
		x.state = KW_POLICY_CONTRIBUTING;
		kw_status_ring_push(&r, &x);
	}
	assert_true(kw_status_render_html(&s, &r, g_buf, sizeof(g_buf)) > 0);
	assert_int_equal(polyline_points(g_buf, "requests"), 30);
	assert_int_equal(polyline_points(g_buf, "bytes"), 30);
	assert_int_equal(polyline_points(g_buf, "temp"), 20);
	assert_int_equal(polyline_points(g_buf, "battery"), 0);
	assert_int_equal(polyline_points(g_buf, "state"), 30);
	assert_non_null(strstr(g_buf, "data-samples=\"30\""));
	assert_non_null(strstr(g_buf, "<td id=\"peer-id\">12D3KooWTestPeer</td>"));
	assert_non_null(strstr(g_buf, "<span id=\"state\" class=\"contributing\">contributing</span>"));
}

static void test_status_html_escapes_text_and_loads_nothing_external(void **state)
{
	static struct kw_status_ring r;
	struct kw_status_snap s;

	snap_init(&s);
	kw_status_ring_reset(&r);
	snprintf(s.detail, sizeof(s.detail), "<script>alert(1)</script> & 'x'");
	assert_true(kw_status_render_html(&s, &r, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;x&#39;"));
	assert_null(strstr(g_buf, "<script>alert"));
	assert_null(strstr(g_buf, "src="));
	assert_null(strstr(g_buf, "<link"));
	assert_null(strstr(g_buf, "url("));
	assert_null(strstr(g_buf, "@import"));
	/* the one absolute URL is the SVG namespace name, which is never fetched */
	assert_int_equal(count(g_buf, "http://"), 1);
	assert_int_equal(count(g_buf, "http://www.w3.org/2000/svg"), 1);
}

/* ---- text and exit code ---- */

static void test_status_text_says_why_paused_and_exit_code_is_3(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.state = KW_POLICY_PAUSED;
	s.state_since_ms = 540000;
	snprintf(s.reason, sizeof(s.reason), "SoC at 86.0 C, above the 85 C maximum");
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "state:         paused for 60 s: SoC at 86.0 C, above the 85 C "
				       "maximum\n"));
	assert_int_equal(kw_status_exit_code(&s), 3);
	s.state = KW_POLICY_DRAINING;
	assert_int_equal(kw_status_exit_code(&s), 3);
	s.state = KW_POLICY_CONTRIBUTING;
	assert_int_equal(kw_status_exit_code(&s), 0);
}

/* ---- reachability ---- */

static void test_status_reach_without_listen_address_says_how_to_listen(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_listen = 0;
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_NOT_LISTENING);
	assert_non_null(strstr(s.reach_fix, "listen = /ip4/0.0.0.0/tcp/4001"));
}

static void test_status_reach_on_loopback_only_says_listen_on_every_interface(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	snprintf(s.listen[0], sizeof(s.listen[0]), "/ip4/127.0.0.1/tcp/4242/p2p/x");
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_LOCAL_ONLY);
	assert_non_null(strstr(s.reach_fix, "listen = /ip4/0.0.0.0/tcp/4242"));
}

static void test_status_reach_public_observed_address_means_port_forwarding(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_local = 1;
	snprintf(s.local[0], sizeof(s.local[0]), "192.168.1.5");
	s.n_observed = 2;
	snprintf(s.observed[0], sizeof(s.observed[0]), "/ip4/10.0.0.7/tcp/5555");  /* LAN: no verdict */
	snprintf(s.observed[1], sizeof(s.observed[1]), "/ip4/203.0.113.9/tcp/61000");
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_BEHIND_NAT);
	assert_non_null(strstr(s.reach_why, "203.0.113.9"));
	assert_non_null(strstr(s.reach_fix, "forward TCP port 4001"));
	assert_non_null(strstr(s.reach_fix, "/ip4/203.0.113.9/tcp/4001"));
}

static void test_status_reach_observed_address_of_an_interface_is_not_nat(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	snprintf(s.listen[0], sizeof(s.listen[0]), "/ip4/0.0.0.0/tcp/4001/p2p/x");
	s.n_local = 2;
	snprintf(s.local[0], sizeof(s.local[0]), "127.0.0.1");
	snprintf(s.local[1], sizeof(s.local[1]), "198.51.100.4");
	s.n_observed = 1;
	snprintf(s.observed[0], sizeof(s.observed[0]), "/ip4/198.51.100.4/tcp/61000");
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_UNVERIFIED);
	assert_non_null(strstr(s.reach_fix, "TCP port 4001"));
}

static void test_status_reach_inbound_from_another_host_proves_reachable(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_observed = 1;
	snprintf(s.observed[0], sizeof(s.observed[0]), "/ip4/203.0.113.9/tcp/61000");
	s.inbound_remote = 2;
	s.last_inbound_remote_ms = 590000;
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_REACHABLE);
	assert_string_equal(s.reach_why, "2 inbound connections from other hosts, the last 10 s ago");
	assert_string_equal(s.reach_fix, "");
}

static void test_status_reach_dial_back_yes_wins_over_local_verdicts(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	snprintf(s.listen[0], sizeof(s.listen[0]), "/ip4/127.0.0.1/tcp/4242/p2p/x");  /* local-only */
	s.dial_have = s.dial_reachable = true;
	s.dial_asked = 3;
	s.dial_answered = 2;
	s.dial_available = 1;
	s.dial_at_ms = 595000;
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_REACHABLE);
	assert_non_null(strstr(s.reach_why, "1 of 2 Hivemind peers that checked dialled this node "
				"back on a new connection at its listen address, 5 s ago"));
	assert_non_null(strstr(s.reach_why, "over loopback"));  /* says what it does not prove */
	assert_string_equal(s.reach_fix, "");
}

static void test_status_reach_dial_back_no_says_forward_the_port_or_announce(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_local = 2;
	snprintf(s.local[0], sizeof(s.local[0]), "127.0.0.1");
	snprintf(s.local[1], sizeof(s.local[1]), "192.168.1.5");
	s.inbound_remote = 4;  /* the dial-back is the better evidence */
	s.dial_have = true;
	s.dial_asked = s.dial_answered = 2;
	s.dial_at_ms = 590000;
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_NOT_REACHABLE);
	assert_string_equal(kw_reach_name(s.reach), "not-reachable");
	assert_non_null(strstr(s.reach_why, "0 of 2 Hivemind peers that checked could dial this "
				"node back directly at its listen address"));
	assert_non_null(strstr(s.reach_fix, "forward TCP port 4001 on the router to this board's "
				"LAN address (192.168.1.5, port 4001)"));
	assert_non_null(strstr(s.reach_fix, "announce = /ip4/PUBLIC/tcp/4001"));
	assert_non_null(strstr(s.reach_fix, "--announce /ip4/PUBLIC/tcp/4001"));
}

static void test_status_reach_dial_back_no_with_announce_names_the_announced_port(void **state)
{
	struct kw_status_snap s;

	snap_init(&s);
	s.n_announce = 1;
	snprintf(s.announce[0], sizeof(s.announce[0]), "/ip4/203.0.113.7/tcp/31337");
	s.dial_have = true;
	s.dial_asked = s.dial_answered = 1;
	s.dial_at_ms = 590000;
	kw_status_reach(&s);
	assert_int_equal(s.reach, KW_REACH_NOT_REACHABLE);
	assert_non_null(strstr(s.reach_why, "at its announced address /ip4/203.0.113.7/tcp/31337"));
	assert_non_null(strstr(s.reach_fix, "forward TCP port 31337 on the router"));
	assert_non_null(strstr(s.reach_fix, "203.0.113.7:31337 answers from outside"));
	assert_non_null(strstr(s.reach_fix, "announce = /ip4/203.0.113.7/tcp/31337"));
	assert_true(kw_status_render_text(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "announcing:    /ip4/203.0.113.7/tcp/31337\n"));
	assert_non_null(strstr(g_buf, "reachability:  not-reachable: "));
	assert_true(kw_status_render_json(&s, g_buf, sizeof(g_buf)) > 0);
	assert_non_null(strstr(g_buf, "\"dial_back\":{\"reachable\":false,\"asked\":1,"
				"\"answered\":1,\"available\":0,\"s_ago\":10}"));
}

/* ---- HTTP parser ---- */

#define PARSE(str, r) kw_http_parse((str), strlen(str), (r))

static void test_http_parse_routes_the_three_gets(void **state)
{
	struct kw_http_req r;

	assert_int_equal(PARSE("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r), 0);
	assert_true(r.get);
	assert_int_equal(r.route, KW_HTTP_PAGE);
	assert_int_equal(PARSE("GET /status.json?x=1 HTTP/1.0\r\n\r\n", &r), 0);
	assert_int_equal(r.route, KW_HTTP_JSON);
	assert_int_equal(PARSE("GET /metrics HTTP/1.1\nAccept: */*\n\n", &r), 0);  /* bare LF */
	assert_int_equal(r.route, KW_HTTP_METRICS);
	assert_int_equal(PARSE("GET /metricsx HTTP/1.1\r\n\r\n", &r), 0);
	assert_int_equal(r.route, KW_HTTP_NOT_FOUND);
	assert_int_equal(PARSE("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 0);
	assert_false(r.get);
	assert_int_equal(PARSE("GET / HTTP/1.1\r\n\r\nBODY", &r), 0);
	assert_int_equal(r.head_len, 18);
}

static void test_http_parse_waits_for_the_blank_line(void **state)
{
	struct kw_http_req r;

	assert_int_equal(PARSE("", &r), -KW_EAGAIN);
	assert_int_equal(PARSE("GET / HTTP/1.1\r\n", &r), -KW_EAGAIN);
	assert_int_equal(PARSE("GET / HTTP/1.1\r\nHost: x\r\n\r", &r), -KW_EAGAIN);
}

static void test_http_parse_refuses_malformed_requests(void **state)
{
	static const char *const bad[] = {
		"\r\n\r\n",                                   /* no request line */
		"GET /\r\n\r\n",                              /* no version */
		" / HTTP/1.1\r\n\r\n",                        /* no method */
		"GET  HTTP/1.1\r\n\r\n",                      /* empty target */
		"G(T / HTTP/1.1\r\n\r\n",                     /* not a token */
		"GET /a\x01 HTTP/1.1\r\n\r\n",                /* control byte in the target */
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",          /* header without ':' */
		"GET / HTTP/1.1\r\n: value\r\n\r\n",          /* empty header name */
		"GET / HTTP/1.1\r\nX: a\x02" "b\r\n\r\n",     /* control byte in a value */
		"GET / FTP/1.1\r\n\r\n",                      /* not HTTP */
	};
	struct kw_http_req r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = PARSE(bad[i], &r);

		if (ret != -KW_EBADMSG)
			fail_msg("request %zu: %d, want -KW_EBADMSG", i, ret);
	}
}

static void test_http_parse_refuses_other_versions_and_oversized_heads(void **state)
{
	static char big[KW_HTTP_REQ_MAX + 64];
	struct kw_http_req r;
	size_t n;

	assert_int_equal(PARSE("GET / HTTP/2.0\r\n\r\n", &r), -KW_ENOTSUP);
	assert_int_equal(PARSE("GET / HTTP/1.2\r\n\r\n", &r), -KW_ENOTSUP);
	/* a head that has not ended within the cap */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: ");
	memset(big + n, 'a', KW_HTTP_REQ_MAX - n);
	assert_int_equal(kw_http_parse(big, KW_HTTP_REQ_MAX, &r), -KW_EMSGSIZE);
	/* one that ends just past it */
	memcpy(big + KW_HTTP_REQ_MAX, "\r\n\r\n", 4);
	assert_int_equal(kw_http_parse(big, KW_HTTP_REQ_MAX + 4, &r), -KW_EMSGSIZE);
	/* and one that fits exactly */
	memcpy(big + KW_HTTP_REQ_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(kw_http_parse(big, KW_HTTP_REQ_MAX, &r), 0);
	assert_int_equal(r.head_len, KW_HTTP_REQ_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_ring_keeps_the_last_hour_oldest_first),
		cmocka_unit_test(test_status_json_names_peer_state_and_escapes_text),
		cmocka_unit_test(test_status_lists_what_is_served_in_json_and_text),
		cmocka_unit_test(test_status_shows_averaging_in_json_metrics_and_text),
		cmocka_unit_test(test_status_renderers_refuse_a_small_buffer),
		cmocka_unit_test(test_status_metrics_mark_one_policy_state_and_pool_high_water),
		cmocka_unit_test(test_status_html_draws_one_point_per_known_sample),
		cmocka_unit_test(test_status_html_escapes_text_and_loads_nothing_external),
		cmocka_unit_test(test_status_text_says_why_paused_and_exit_code_is_3),
		cmocka_unit_test(test_status_reach_without_listen_address_says_how_to_listen),
		cmocka_unit_test(test_status_reach_on_loopback_only_says_listen_on_every_interface),
		cmocka_unit_test(test_status_reach_public_observed_address_means_port_forwarding),
		cmocka_unit_test(test_status_reach_observed_address_of_an_interface_is_not_nat),
		cmocka_unit_test(test_status_reach_inbound_from_another_host_proves_reachable),
		cmocka_unit_test(test_status_reach_dial_back_yes_wins_over_local_verdicts),
		cmocka_unit_test(test_status_reach_dial_back_no_says_forward_the_port_or_announce),
		cmocka_unit_test(test_status_reach_dial_back_no_with_announce_names_the_announced_port),
		cmocka_unit_test(test_http_parse_routes_the_three_gets),
		cmocka_unit_test(test_http_parse_waits_for_the_blank_line),
		cmocka_unit_test(test_http_parse_refuses_malformed_requests),
		cmocka_unit_test(test_http_parse_refuses_other_versions_and_oversized_heads),
	};
	return cmocka_run_group_tests_name("app/status", tests, NULL, NULL);
}
