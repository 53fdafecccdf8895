/*
 * The status renderers and the history ring (app/status.h; doc/status.md): pure functions
 * from a snapshot to JSON, Prometheus text, an HTML page with an inline SVG chart, and the
 * summary `kwnode status` prints; the reachability verdict; the bounded HTTP request parser.
 * No clock, no I/O, no allocation: every text goes into the caller's buffer, so the unit
 * tests feed hand-made snapshots and the fuzz target feeds hostile requests.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>

#include "status.h"

/* ---- the ring ---- */

void kw_status_ring_reset(struct kw_status_ring *r)
{
	r->head = 0;
	r->n = 0;
}

void kw_status_ring_push(struct kw_status_ring *r, const struct kw_status_sample *s)
{
	r->s[r->head] = *s;
	r->head = (r->head + 1) % KW_STATUS_RING_LEN;
	if (r->n < KW_STATUS_RING_LEN)
		r->n++;
}

const struct kw_status_sample *kw_status_ring_get(const struct kw_status_ring *r, uint32_t i)
{
	if (i >= r->n)
		return NULL;
	return &r->s[(r->head + KW_STATUS_RING_LEN - r->n + i) % KW_STATUS_RING_LEN];
}

/* ---- a bounded text writer ---- */

struct out {
	char *p;
	size_t cap, len;
	bool full;
};

static void out_init(struct out *o, char *p, size_t cap)
{
	o->p = p;
	o->cap = cap;
	o->len = 0;
	o->full = cap == 0;
	if (cap)
		p[0] = '\0';
}

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	o->len += (size_t)n;
}

static void outc(struct out *o, char c)
{
	if (o->full)
		return;
	if (o->len + 1 >= o->cap) {
		o->full = true;
		return;
	}
	o->p[o->len++] = c;
	o->p[o->len] = '\0';
}

static long out_end(struct out *o)
{
	return o->full ? -KW_ENOSPC : (long)o->len;
}

/* A JSON string: quotes, backslash and control bytes escaped (RFC 8259 section 7). */
static void out_json_str(struct out *o, const char *s)
{
	outc(o, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			outc(o, '\\');
			outc(o, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			outf(o, "\\u%04x", c);
		} else {
			outc(o, (char)c);
		}
	}
	outc(o, '"');
}

/* HTML text or attribute value: the five special characters as entities. */
static void out_html_str(struct out *o, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': outf(o, "&lt;"); break;
		case '>': outf(o, "&gt;"); break;
		case '&': outf(o, "&amp;"); break;
		case '"': outf(o, "&quot;"); break;
		case '\'': outf(o, "&#39;"); break;
		default:
			if ((unsigned char)*s >= 0x20)
				outc(o, *s);
		}
	}
}

/* A Prometheus label value: backslash, quote and newline escaped (exposition format 0.0.4). */
static void out_label(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			outc(o, '\\');
		if (*s == '\n') {
			outf(o, "\\n");
			continue;
		}
		outc(o, *s);
	}
}

static const char *policy_name(const struct kw_status_snap *s)
{
	return s->have_policy ? kw_policy_state_name(s->state) : "unknown";
}

static uint64_t ago_s(const struct kw_status_snap *s, uint64_t at_ms)
{
	return at_ms <= s->uptime_ms ? (s->uptime_ms - at_ms) / 1000 : 0;
}

/* ---- reachability ---- */

const char *kw_reach_name(enum kw_reach r)
{
	switch (r) {
	case KW_REACH_NOT_LISTENING: return "not-listening";
	case KW_REACH_LOCAL_ONLY: return "local-only";
	case KW_REACH_UNVERIFIED: return "unverified";
	case KW_REACH_BEHIND_NAT: return "behind-nat";
	case KW_REACH_REACHABLE: return "reachable";
	case KW_REACH_NOT_REACHABLE: return "not-reachable";
	}
	return "unknown";
}

/* Splits "/ip4/A/tcp/P[/...]" (or ip6) into the address and port. Return: 4, 6 or 0. */
static int addr_split(const char *ma, char *ip, size_t cap, unsigned *port)
{
	int fam;
	const char *a, *e;
	size_t n;

	if (!strncmp(ma, "/ip4/", 5))
		fam = 4;
	else if (!strncmp(ma, "/ip6/", 5))
		fam = 6;
	else
		return 0;
	a = ma + 5;
	e = strchr(a, '/');
	if (!e || (size_t)(e - a) >= cap)
		return 0;
	n = (size_t)(e - a);
	memcpy(ip, a, n);
	ip[n] = '\0';
	*port = 0;
	if (strncmp(e, "/tcp/", 5) || sscanf(e + 5, "%u", port) != 1)
		*port = 0;
	return fam;
}

static bool ip_loopback(int fam, const char *ip)
{
	return fam == 4 ? !strncmp(ip, "127.", 4) : !strcmp(ip, "::1");
}

/* Loopback, RFC 1918, link-local, CGNAT (RFC 6598), ULA/link-local IPv6: not the internet. */
static bool ip_private(int fam, const char *ip)
{
	unsigned a, b;

	if (fam == 6)
		return !strcmp(ip, "::1") || !strncmp(ip, "fe80", 4) || !strncmp(ip, "fc", 2) ||
		       !strncmp(ip, "fd", 2) || !strcmp(ip, "::");
	if (sscanf(ip, "%u.%u", &a, &b) != 2)
		return true;
	return a == 10 || a == 127 || a == 0 || (a == 172 && b >= 16 && b <= 31) ||
	       (a == 192 && b == 168) || (a == 169 && b == 254) || (a == 100 && b >= 64 && b <= 127);
}

/*
 * The verdict of the dial-back check: peers that serve ReachabilityProtocol.rpc_check dialled
 * (or failed to dial) our advertised address on a new connection (net/hivemind/reach.c).
 */
static void dial_verdict(struct kw_status_snap *s, unsigned port, bool only_loopback)
{
	char aip[64] = "", lan[48] = "this board's address";
	unsigned ap = port;
	uint32_t i;

	if (s->n_announce)
		(void)addr_split(s->announce[0], aip, sizeof(aip), &ap);
	if (s->dial_reachable) {
		s->reach = KW_REACH_REACHABLE;
		snprintf(s->reach_why, sizeof(s->reach_why),
			 "%u of %u Hivemind peers that checked dialled this node back on a new "
			 "connection at its %s, %llu s ago%s", s->dial_available, s->dial_answered,
			 s->n_announce ? "announced address" : "listen address",
			 (unsigned long long)ago_s(s, s->dial_at_ms),
			 only_loopback ? " (over loopback: that proves only that peers on this host "
			 "can dial it)" : "");
		return;
	}
	for (i = 0; i < s->n_local; i++)
		if (strncmp(s->local[i], "127.", 4)) {
			snprintf(lan, sizeof(lan), "%s", s->local[i]);
			break;
		}
	s->reach = KW_REACH_NOT_REACHABLE;
	snprintf(s->reach_why, sizeof(s->reach_why),
		 "%u of %u Hivemind peers that checked could dial this node back directly at its "
		 "%s %s (%llu s ago)", s->dial_available, s->dial_answered,
		 s->n_announce ? "announced address" : "listen address",
		 s->n_announce ? s->announce[0] : (s->n_listen ? s->listen[0] : ""),
		 (unsigned long long)ago_s(s, s->dial_at_ms));
	if (s->n_announce)
		snprintf(s->reach_fix, sizeof(s->reach_fix),
			 "forward TCP port %u on the router to this board's LAN address (%s, port "
			 "%u) and allow it in the firewall, so that %s:%u answers from outside; or "
			 "correct `announce = %s` in the config file (or --announce)",
			 ap, lan, port, aip[0] ? aip : "the announced address", ap, s->announce[0]);
	else
		snprintf(s->reach_fix, sizeof(s->reach_fix),
			 "forward TCP port %u on the router to this board's LAN address (%s, port "
			 "%u) and allow it in the firewall; then set `announce = /ip4/PUBLIC/tcp/%u` "
			 "in the config file (or --announce /ip4/PUBLIC/tcp/%u), PUBLIC being the "
			 "router's public IP", port, lan, port, port, port);
}

void kw_status_reach(struct kw_status_snap *s)
{
	char ip[64], oip[64], nat_obs[64] = "";
	unsigned port = 0, p, first_port = 0;
	bool only_loopback = true;
	uint32_t i, j;

	s->reach_why[0] = s->reach_fix[0] = '\0';
	if (s->n_listen == 0) {
		s->reach = KW_REACH_NOT_LISTENING;
		snprintf(s->reach_why, sizeof(s->reach_why), "the node listens on no address");
		snprintf(s->reach_fix, sizeof(s->reach_fix),
			 "add `listen = /ip4/0.0.0.0/tcp/4001` to the config file "
			 "(or start with --listen /ip4/0.0.0.0/tcp/4001)");
		return;
	}
	for (i = 0; i < s->n_listen; i++) {
		int fam = addr_split(s->listen[i], ip, sizeof(ip), &p);

		if (!first_port)
			first_port = p;
		if (fam && !ip_loopback(fam, ip))
			only_loopback = false;
	}
	port = first_port;
	if (s->dial_have) {
		dial_verdict(s, port, only_loopback);
		return;
	}
	if (s->inbound_remote > 0) {
		s->reach = KW_REACH_REACHABLE;
		snprintf(s->reach_why, sizeof(s->reach_why),
			 "%llu inbound connection%s from other hosts, the last %llu s ago",
			 (unsigned long long)s->inbound_remote, s->inbound_remote == 1 ? "" : "s",
			 (unsigned long long)ago_s(s, s->last_inbound_remote_ms));
		return;
	}
	if (only_loopback) {
		s->reach = KW_REACH_LOCAL_ONLY;
		snprintf(s->reach_why, sizeof(s->reach_why),
			 "the node listens on loopback only: no other host can dial it");
		snprintf(s->reach_fix, sizeof(s->reach_fix),
			 "listen on every interface: `listen = /ip4/0.0.0.0/tcp/%u` in the config "
			 "file (or --listen /ip4/0.0.0.0/tcp/%u)", port ? port : 4001,
			 port ? port : 4001);
		return;
	}
	/* A public address a peer saw that is neither a listen address nor an interface's. */
	for (i = 0; i < s->n_observed && !nat_obs[0]; i++) {
		int fam = addr_split(s->observed[i], oip, sizeof(oip), &p);
		bool ours = false;

		if (!fam || ip_private(fam, oip))
			continue;
		for (j = 0; j < s->n_listen && !ours; j++)
			ours = addr_split(s->listen[j], ip, sizeof(ip), &p) == fam && !strcmp(ip, oip);
		for (j = 0; j < s->n_local && !ours; j++)
			ours = fam == 4 && !strcmp(s->local[j], oip);
		if (!ours)
			snprintf(nat_obs, sizeof(nat_obs), "%s", oip);
	}
	if (nat_obs[0]) {
		s->reach = KW_REACH_BEHIND_NAT;
		snprintf(s->reach_why, sizeof(s->reach_why),
			 "peers see this node as %s, an address no interface of this host has: a "
			 "NAT router sits in between, and nobody has dialled in yet", nat_obs);
		snprintf(s->reach_fix, sizeof(s->reach_fix),
			 "forward TCP port %u on the router to this host (port forwarding), allow "
			 "it in the firewall, then check that /ip4/%s/tcp/%u answers from outside "
			 "(kwnode ping from another network)", port, nat_obs, port);
		return;
	}
	s->reach = KW_REACH_UNVERIFIED;
	snprintf(s->reach_why, sizeof(s->reach_why),
		 "listening, but no peer from another host has dialled in yet, so reachability "
		 "is not proven");
	snprintf(s->reach_fix, sizeof(s->reach_fix),
		 "allow TCP port %u in this host's firewall; behind a router, forward that port to "
		 "this host; then `kwnode ping <this node's address>` from another machine", port);
}

int kw_status_exit_code(const struct kw_status_snap *s)
{
	return s->have_policy && s->state == KW_POLICY_CONTRIBUTING ? 0 : 3;
}

/* ---- JSON ---- */

static void json_u64(struct out *o, const char *k, uint64_t v, bool comma)
{
	outf(o, "\"%s\":%llu%s", k, (unsigned long long)v, comma ? "," : "");
}

static void json_ago(struct out *o, const struct kw_status_snap *s, const char *k, uint64_t at)
{
	if (at)
		outf(o, "\"%s\":%llu", k, (unsigned long long)ago_s(s, at));
	else
		outf(o, "\"%s\":null", k);
}

/* "idle: 3 rounds, the last 2 s ago (3 peers, 120 ms); 1 without a group", or "off ...". */
static void avg_line(const struct kw_status_snap *s, char *line, size_t cap)
{
	size_t n;

	if (!s->avg_state[0] || !strcmp(s->avg_state, "off")) {
		snprintf(line, cap, "off (no averaging_prefix configured)");
		return;
	}
	if (s->avg_last_done_ms)
		n = (size_t)snprintf(line, cap, "%s: %llu round%s, the last %llu s ago (%u peers, "
				     "%llu ms)", s->avg_state, (unsigned long long)s->avg_rounds,
				     s->avg_rounds == 1 ? "" : "s",
				     (unsigned long long)ago_s(s, s->avg_last_done_ms),
				     s->avg_last_group, (unsigned long long)s->avg_last_round_ms);
	else
		n = (size_t)snprintf(line, cap, "%s: no round yet", s->avg_state);
	if (n < cap && (s->avg_no_group || s->avg_round_failed || s->avg_withdrawn))
		snprintf(line + n, cap - n, "; %llu search%s without a group, %llu failed, %llu "
			 "left on a pause", (unsigned long long)s->avg_no_group,
			 s->avg_no_group == 1 ? "" : "es", (unsigned long long)s->avg_round_failed,
			 (unsigned long long)s->avg_withdrawn);
}

/* "ffn.0.0 ffn.0.1 llama.0..3 (12 calls, 1 error)", or why nothing is served. */
static void served_line(const struct kw_status_snap *s, char *line, size_t cap)
{
	size_t n = 0;
	uint32_t i;

	line[0] = '\0';
	if (!s->n_served) {
		snprintf(line, cap, "nothing (no serve_model or serve_experts configured)");
		return;
	}
	for (i = 0; i < s->n_served && n < cap; i++)
		n += (size_t)snprintf(line + n, cap - n, "%s%s", i ? " " : "", s->served[i]);
	if (n < cap)
		snprintf(line + n, cap - n, " (%llu calls, %llu errors)",
			 (unsigned long long)s->served_calls, (unsigned long long)s->served_errors);
}

static void json_list(struct out *o, const char (*v)[KW_STATUS_ADDR_MAX], uint32_t n)
{
	uint32_t i;

	outc(o, '[');
	for (i = 0; i < n; i++) {
		if (i)
			outc(o, ',');
		out_json_str(o, v[i]);
	}
	outc(o, ']');
}

long kw_status_render_json(const struct kw_status_snap *s, char *buf, size_t cap)
{
	struct out o;
	uint32_t i;

	out_init(&o, buf, cap);
	outf(&o, "{\"peer_id\":");
	out_json_str(&o, s->peer_id);
	outf(&o, ",\"version\":");
	out_json_str(&o, s->version);
	outf(&o, ",\"uptime_s\":%llu", (unsigned long long)(s->uptime_ms / 1000));
	outf(&o, ",\"contributing\":%s", kw_status_exit_code(s) == 0 ? "true" : "false");
	outf(&o, ",\"addresses\":{\"listen\":");
	json_list(&o, s->listen, s->n_listen);
	outf(&o, ",\"observed\":");
	json_list(&o, s->observed, s->n_observed);
	outf(&o, ",\"announce\":");
	json_list(&o, s->announce, s->n_announce);
	outf(&o, "},\"reachability\":{\"verdict\":\"%s\",\"why\":", kw_reach_name(s->reach));
	out_json_str(&o, s->reach_why);
	outf(&o, ",\"fix\":");
	out_json_str(&o, s->reach_fix);
	outf(&o, ",\"dial_back\":");
	if (s->dial_have) {
		outf(&o, "{\"reachable\":%s,", s->dial_reachable ? "true" : "false");
		json_u64(&o, "asked", s->dial_asked, true);
		json_u64(&o, "answered", s->dial_answered, true);
		json_u64(&o, "available", s->dial_available, true);
		json_ago(&o, s, "s_ago", s->dial_at_ms);
		outc(&o, '}');
	} else {
		outf(&o, "null");
	}
	outf(&o, ",\"inbound_from_others\":%llu,", (unsigned long long)s->inbound_remote);
	json_ago(&o, s, "last_inbound_s_ago", s->last_inbound_remote_ms);
	outf(&o, "},\"connections\":{");
	json_u64(&o, "in", s->conns_in, true);
	json_u64(&o, "out", s->conns_out, true);
	json_u64(&o, "up", s->conns_up, true);
	json_u64(&o, "accepted", s->conns_accepted, true);
	json_u64(&o, "dialed", s->conns_dialed, false);
	outf(&o, "},\"traffic\":{");
	json_u64(&o, "bytes_in", s->bytes_in, true);
	json_u64(&o, "bytes_out", s->bytes_out, true);
	json_u64(&o, "requests", s->requests, true);
	json_ago(&o, s, "last_request_s_ago", s->last_request_ms);
	outf(&o, "},\"served\":");
	json_list(&o, (const char (*)[KW_STATUS_ADDR_MAX])s->served, s->n_served);
	outf(&o, ",\"served_calls\":%llu,\"served_errors\":%llu",
	     (unsigned long long)s->served_calls, (unsigned long long)s->served_errors);
	outf(&o, ",\"averaging\":{\"state\":");
	out_json_str(&o, s->avg_state[0] ? s->avg_state : "off");
	outc(&o, ',');
	json_u64(&o, "rounds", s->avg_rounds, true);
	json_u64(&o, "last_group", s->avg_last_group, true);
	json_u64(&o, "last_round_ms", s->avg_last_round_ms, true);
	json_ago(&o, s, "last_round_s_ago", s->avg_last_done_ms);
	outf(&o, ",\"failures\":{");
	json_u64(&o, "no_group", s->avg_no_group, true);
	json_u64(&o, "round_failed", s->avg_round_failed, true);
	json_u64(&o, "peer_excluded", s->avg_peers_excluded, true);
	json_u64(&o, "withdrawn", s->avg_withdrawn, true);
	json_u64(&o, "write_failed", s->avg_write_failed, true);
	json_u64(&o, "read_failed", s->avg_read_failed, false);
	outf(&o, "}}");
	outf(&o, ",\"policy\":{\"state\":\"%s\",\"reason\":", policy_name(s));
	out_json_str(&o, s->reason);
	outf(&o, ",\"detail\":");
	out_json_str(&o, s->detail);
	if (s->have_policy)
		outf(&o, ",\"since_s_ago\":%llu", (unsigned long long)ago_s(s, s->state_since_ms));
	else
		outf(&o, ",\"since_s_ago\":null");
	outf(&o, ",\"transitions\":%u", s->transitions);
	if (s->temp_mc != INT32_MIN)
		outf(&o, ",\"temp_c\":%.1f", s->temp_mc / 1000.0);
	else
		outf(&o, ",\"temp_c\":null");
	if (s->battery_pct >= 0)
		outf(&o, ",\"battery_pct\":%d", s->battery_pct);
	else
		outf(&o, ",\"battery_pct\":null");
	outf(&o, ",\"ac\":%s}", s->ac < 0 ? "null" : s->ac ? "true" : "false");
	outf(&o, ",\"errors\":{");
	json_u64(&o, "conn_failed", s->conns_failed, true);
	json_u64(&o, "conn_aborted", s->conns_aborted, true);
	json_u64(&o, "conn_refused_limit", s->conns_refused_limit, true);
	json_u64(&o, "stream_refused", s->streams_refused, true);
	json_u64(&o, "negotiation_failed", s->negotiations_failed, true);
	json_u64(&o, "frame_timeout", s->frame_timeouts, true);
	json_u64(&o, "sensor", s->sensor_errors, true);
	json_u64(&o, "http_bad_request", s->http_bad_request, true);
	json_u64(&o, "http_not_found", s->http_not_found, true);
	json_u64(&o, "http_bad_method", s->http_bad_method, true);
	json_u64(&o, "http_too_large", s->http_too_large, true);
	json_u64(&o, "http_timeout", s->http_timeout, true);
	json_u64(&o, "http_busy", s->http_busy, false);
	outf(&o, "},\"memory\":{");
	json_u64(&o, "arena_used", s->arena_used, true);
	json_u64(&o, "arena_size", s->arena_size, true);
	outf(&o, "\"pools\":[");
	for (i = 0; i < s->n_pools; i++) {
		const struct kw_status_pool *p = &s->pools[i];

		outf(&o, "%s{\"name\":", i ? "," : "");
		out_json_str(&o, p->name ? p->name : "");
		outf(&o, ",\"used\":%u,\"high\":%u,\"count\":%u,\"fails\":%u}", p->used, p->high,
		     p->count, p->fails);
	}
	outf(&o, "]}}\n");
	return out_end(&o);
}

/* ---- Prometheus ---- */

static void prom_head(struct out *o, const char *name, const char *type, const char *help)
{
	outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_u64(struct out *o, const char *name, const char *type, const char *help,
		     uint64_t v)
{
	prom_head(o, name, type, help);
	outf(o, "%s %llu\n", name, (unsigned long long)v);
}

long kw_status_render_metrics(const struct kw_status_snap *s, char *buf, size_t cap)
{
	static const enum kw_policy_state states[] = { KW_POLICY_CONTRIBUTING, KW_POLICY_DRAINING,
						       KW_POLICY_PAUSED };
	const struct { const char *reason; uint64_t v; } errs[] = {
		{ "conn_failed", s->conns_failed }, { "conn_aborted", s->conns_aborted },
		{ "conn_refused_limit", s->conns_refused_limit },
		{ "stream_refused", s->streams_refused },
		{ "negotiation_failed", s->negotiations_failed },
		{ "frame_timeout", s->frame_timeouts }, { "sensor", s->sensor_errors },
		{ "http_bad_request", s->http_bad_request }, { "http_not_found", s->http_not_found },
		{ "http_bad_method", s->http_bad_method }, { "http_too_large", s->http_too_large },
		{ "http_timeout", s->http_timeout }, { "http_busy", s->http_busy },
	};
	struct out o;
	size_t i;

	out_init(&o, buf, cap);
	prom_head(&o, "kwnode_info", "gauge", "Node identity (value always 1).");
	outf(&o, "kwnode_info{peer_id=\"");
	out_label(&o, s->peer_id);
	outf(&o, "\",version=\"");
	out_label(&o, s->version);
	outf(&o, "\"} 1\n");
	prom_u64(&o, "kwnode_uptime_seconds", "gauge", "Seconds since the node started.",
		 s->uptime_ms / 1000);
	prom_head(&o, "kwnode_bytes_total", "counter", "TCP bytes over every connection.");
	outf(&o, "kwnode_bytes_total{direction=\"in\"} %llu\n", (unsigned long long)s->bytes_in);
	outf(&o, "kwnode_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)s->bytes_out);
	prom_u64(&o, "kwnode_requests_total", "counter",
		 "Inbound streams handed to a protocol handler.", s->requests);
	prom_head(&o, "kwnode_errors_total", "counter", "Errors by reason.");
	for (i = 0; i < KW_ARRAY_SIZE(errs); i++)
		outf(&o, "kwnode_errors_total{reason=\"%s\"} %llu\n", errs[i].reason,
		     (unsigned long long)errs[i].v);
	prom_head(&o, "kwnode_connections", "gauge", "Connections open now.");
	outf(&o, "kwnode_connections{direction=\"in\"} %u\n", s->conns_in);
	outf(&o, "kwnode_connections{direction=\"out\"} %u\n", s->conns_out);
	prom_u64(&o, "kwnode_connections_up", "gauge", "Upgraded, usable connections.",
		 s->conns_up);
	prom_u64(&o, "kwnode_inbound_from_others_total", "counter",
		 "Inbound connections from non-loopback addresses (reachability evidence).",
		 s->inbound_remote);
	prom_head(&o, "kwnode_reachability", "gauge", "Reachability verdict (1 for the current).");
	outf(&o, "kwnode_reachability{verdict=\"%s\"} 1\n", kw_reach_name(s->reach));
	prom_head(&o, "kwnode_policy_state", "gauge", "Contribution policy state (1 = current).");
	for (i = 0; i < KW_ARRAY_SIZE(states); i++)
		outf(&o, "kwnode_policy_state{state=\"%s\"} %d\n", kw_policy_state_name(states[i]),
		     s->have_policy && s->state == states[i]);
	prom_u64(&o, "kwnode_policy_transitions_total", "counter",
		 "Contribution policy state changes.", s->transitions);
	{
		static const char *const avg_states[] = { "off", "idle", "matching", "averaging",
							   "paused" };
		const struct { const char *reason; uint64_t v; } af[] = {
			{ "no_group", s->avg_no_group }, { "round_failed", s->avg_round_failed },
			{ "peer_excluded", s->avg_peers_excluded }, { "withdrawn", s->avg_withdrawn },
			{ "write_failed", s->avg_write_failed },
			{ "read_failed", s->avg_read_failed },
		};
		const char *cur = s->avg_state[0] ? s->avg_state : "off";

		prom_head(&o, "kwnode_averaging_state", "gauge", "Averaging state (1 = current).");
		for (i = 0; i < KW_ARRAY_SIZE(avg_states); i++)
			outf(&o, "kwnode_averaging_state{state=\"%s\"} %d\n", avg_states[i],
			     !strcmp(cur, avg_states[i]));
		prom_u64(&o, "kwnode_averaging_rounds_total", "counter",
			 "Averaging rounds completed with a group.", s->avg_rounds);
		prom_u64(&o, "kwnode_averaging_last_group_size", "gauge",
			 "Peers in the last averaging group (0: none yet).", s->avg_last_group);
		prom_head(&o, "kwnode_averaging_last_round_seconds", "gauge",
			  "Duration of the last averaging round.");
		outf(&o, "kwnode_averaging_last_round_seconds %.3f\n", s->avg_last_round_ms / 1000.0);
		prom_head(&o, "kwnode_averaging_failures_total", "counter",
			  "Averaging failures by reason.");
		for (i = 0; i < KW_ARRAY_SIZE(af); i++)
			outf(&o, "kwnode_averaging_failures_total{reason=\"%s\"} %llu\n", af[i].reason,
			     (unsigned long long)af[i].v);
	}
	if (s->temp_mc != INT32_MIN) {
		prom_head(&o, "kwnode_soc_temperature_celsius", "gauge", "SoC temperature.");
		outf(&o, "kwnode_soc_temperature_celsius %.3f\n", s->temp_mc / 1000.0);
	}
	if (s->battery_pct >= 0)
		prom_u64(&o, "kwnode_battery_percent", "gauge", "Lowest battery charge.",
			 (uint64_t)s->battery_pct);
	prom_head(&o, "kwnode_arena_bytes", "gauge", "Start-up arena.");
	outf(&o, "kwnode_arena_bytes{kind=\"used\"} %llu\n", (unsigned long long)s->arena_used);
	outf(&o, "kwnode_arena_bytes{kind=\"size\"} %llu\n", (unsigned long long)s->arena_size);
	{
		static const char *const cols[] = { "kwnode_pool_used", "kwnode_pool_high_water",
						    "kwnode_pool_capacity",
						    "kwnode_pool_failures_total" };
		static const char *const help[] = { "Blocks in use now.",
						     "Most blocks ever in use at once.",
						     "Blocks in the pool.",
						     "Allocations refused: the pool was empty." };
		size_t c;

		for (c = 0; c < 4; c++) {
			prom_head(&o, cols[c], c == 3 ? "counter" : "gauge", help[c]);
			for (i = 0; i < s->n_pools; i++) {
				const struct kw_status_pool *p = &s->pools[i];
				uint32_t v = c == 0 ? p->used : c == 1 ? p->high :
					     c == 2 ? p->count : p->fails;

				outf(&o, "%s{pool=\"", cols[c]);
				out_label(&o, p->name ? p->name : "");
				outf(&o, "\"} %u\n", v);
			}
		}
	}
	prom_u64(&o, "kwnode_status_http_requests_total", "counter",
		 "Requests the status endpoint answered.", s->http_requests);
	return out_end(&o);
}

/* ---- HTML ---- */

#define CHART_W 720
#define PANEL_H 60
#define PANEL_GAP 22

struct series {
	const char *id, *label, *unit;
};

static const struct series g_series[] = {
	{ "requests", "requests served", "per sample" },
	{ "bytes", "traffic", "KiB per sample" },
	{ "temp", "SoC temperature", "°C" },
	{ "battery", "battery", "%" },
	{ "state", "policy state", "" },
};

/* A sample's value for series k; false when unknown (no point drawn). */
static bool series_value(size_t k, const struct kw_status_sample *x, double *v)
{
	switch (k) {
	case 0: *v = x->requests; return true;
	case 1: *v = x->kib; return true;
	case 2: *v = x->temp_mc / 1000.0; return x->temp_mc != INT32_MIN;
	case 3: *v = x->battery_pct; return x->battery_pct >= 0;
	default:
		*v = x->state == KW_POLICY_CONTRIBUTING ? 2 : x->state == KW_POLICY_DRAINING ? 1 : 0;
		return true;
	}
}

static void html_chart(struct out *o, const struct kw_status_ring *r)
{
	const struct kw_status_sample *last = kw_status_ring_get(r, r->n ? r->n - 1 : 0);
	uint32_t t_end = last ? last->t_s : 0;
	int h = (int)KW_ARRAY_SIZE(g_series) * (PANEL_H + PANEL_GAP);
	size_t k;
	uint32_t i;

	outf(o, "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	     "viewBox=\"0 0 %d %d\" data-samples=\"%u\" role=\"img\" aria-label=\"last hour\">\n",
	     CHART_W + 60, h, CHART_W + 60, h, r->n);
	for (k = 0; k < KW_ARRAY_SIZE(g_series); k++) {
		double lo = 0, hi = 1, v;
		int y0 = (int)k * (PANEL_H + PANEL_GAP) + 16;
		uint32_t n = 0;

		/* fixed scales where the quantity has one, else 0..max of the hour */
		if (k == 2) {
			lo = 20;
			hi = 90;
		} else if (k == 3) {
			hi = 100;
		} else if (k == 4) {
			hi = 2;
		} else {
			for (i = 0; i < r->n; i++)
				if (series_value(k, kw_status_ring_get(r, i), &v) && v > hi)
					hi = v;
		}
		for (i = 0; i < r->n; i++)
			n += series_value(k, kw_status_ring_get(r, i), &v);
		outf(o, "<text x=\"0\" y=\"%d\" class=\"lbl\">%s%s%s (max %.0f)</text>\n", y0 - 4,
		     g_series[k].label, g_series[k].unit[0] ? ", " : "", g_series[k].unit,
		     k == 4 ? 2.0 : hi);
		outf(o, "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"panel\"/>\n", y0,
		     CHART_W, PANEL_H);
		outf(o, "<polyline id=\"chart-%s\" class=\"line\" data-n=\"%u\" points=\"",
		     g_series[k].id, n);
		for (i = 0; i < r->n; i++) {
			const struct kw_status_sample *x = kw_status_ring_get(r, i);
			double px, py;

			if (!series_value(k, x, &v))
				continue;
			if (v < lo)
				v = lo;
			if (v > hi)
				v = hi;
			px = CHART_W - (double)(t_end - x->t_s) * CHART_W / 3600.0;
			py = y0 + PANEL_H - (v - lo) * PANEL_H / (hi - lo);
			outf(o, "%s%.1f,%.1f", i ? " " : "", px < 0 ? 0 : px, py);
		}
		outf(o, "\"/>\n");
	}
	outf(o, "<text x=\"0\" y=\"%d\" class=\"lbl\">-60 min</text>"
	     "<text x=\"%d\" y=\"%d\" class=\"lbl\">now</text>\n</svg>\n", h - 2, CHART_W - 20,
	     h - 2);
}

static void html_row(struct out *o, const char *k, const char *id, const char *v)
{
	outf(o, "<tr><th>%s</th><td id=\"%s\">", k, id);
	out_html_str(o, v);
	outf(o, "</td></tr>\n");
}

long kw_status_render_html(const struct kw_status_snap *s, const struct kw_status_ring *r,
			   char *buf, size_t cap)
{
	char line[512];
	struct out o;
	uint32_t i;

	out_init(&o, buf, cap);
	outf(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	     "<meta http-equiv=\"refresh\" content=\"%u\">\n<title>kwnode status</title>\n"
	     "<style>body{font:14px sans-serif;margin:1em;max-width:820px}"
	     "th{text-align:left;padding-right:1em;vertical-align:top}"
	     ".contributing{color:#070}.paused,.draining{color:#a50}"
	     ".panel{fill:#f6f6f6;stroke:#ccc}.line{fill:none;stroke:#25c;stroke-width:1.5}"
	     ".lbl{font:11px sans-serif;fill:#444}code{word-break:break-all}</style>\n"
	     "</head><body>\n<h1>kwnode <span id=\"state\" class=\"%s\">%s</span></h1>\n<table>\n",
	     CONFIG_KW_STATUS_SAMPLE_S, policy_name(s), policy_name(s));
	html_row(&o, "peer id", "peer-id", s->peer_id);
	html_row(&o, "version", "version", s->version);
	snprintf(line, sizeof(line), "%s (since %llu s ago)", s->reason,
		 (unsigned long long)ago_s(s, s->state_since_ms));
	html_row(&o, "why", "reason", line);
	html_row(&o, "now", "detail", s->detail);
	snprintf(line, sizeof(line), "%s: %s", kw_reach_name(s->reach), s->reach_why);
	html_row(&o, "reachability", "reach", line);
	if (s->reach != KW_REACH_REACHABLE)
		html_row(&o, "fix", "fix", s->reach_fix);
	outf(&o, "<tr><th>listening on</th><td id=\"listen\">");
	for (i = 0; i < s->n_listen; i++) {
		outf(&o, "%s<code>", i ? "<br>" : "");
		out_html_str(&o, s->listen[i]);
		outf(&o, "</code>");
	}
	outf(&o, "</td></tr>\n");
	snprintf(line, sizeof(line), "%u in, %u out, %u up", s->conns_in, s->conns_out,
		 s->conns_up);
	html_row(&o, "connections", "conns", line);
	served_line(s, line, sizeof(line));
	html_row(&o, "serving", "served", line);
	if (s->last_request_ms)
		snprintf(line, sizeof(line), "%llu, the last %llu s ago",
			 (unsigned long long)s->requests,
			 (unsigned long long)ago_s(s, s->last_request_ms));
	else
		snprintf(line, sizeof(line), "%llu", (unsigned long long)s->requests);
	html_row(&o, "requests", "requests", line);
	snprintf(line, sizeof(line), "%llu in, %llu out", (unsigned long long)s->bytes_in,
		 (unsigned long long)s->bytes_out);
	html_row(&o, "bytes", "bytes", line);
	if (s->temp_mc != INT32_MIN)
		snprintf(line, sizeof(line), "%.1f °C", s->temp_mc / 1000.0);
	else
		snprintf(line, sizeof(line), "unknown");
	html_row(&o, "SoC temperature", "temp", line);
	if (s->battery_pct >= 0)
		snprintf(line, sizeof(line), "%d %%", s->battery_pct);
	else
		snprintf(line, sizeof(line), "none");
	html_row(&o, "battery", "battery", line);
	snprintf(line, sizeof(line), "%llu of %llu KiB", (unsigned long long)s->arena_used / 1024,
		 (unsigned long long)s->arena_size / 1024);
	html_row(&o, "arena", "arena", line);
	outf(&o, "</table>\n<h2>Last hour</h2>\n");
	html_chart(&o, r);
	/* Counted by the browser from the parsed SVG: the Chromium test reads it back. */
	outf(&o, "<p id=\"rendered\">chart not drawn (scripts off)</p>\n<script>"
	     "(function(){var n=0,ls=document.querySelectorAll('#chart polyline');"
	     "for(var i=0;i<ls.length;i++)n+=ls[i].points.numberOfItems;"
	     "var b=document.getElementById('chart').getBBox();"
	     "var p=document.getElementById('rendered');p.dataset.points=n;"
	     "p.textContent='chart: '+ls.length+' series, '+n+' points, '+Math.round(b.width)+"
	     "'x'+Math.round(b.height)+' px';})();</script>\n"
	     "<p><a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a></p>\n"
	     "</body></html>\n");
	return out_end(&o);
}

/* ---- the `kwnode status` summary ---- */

long kw_status_render_text(const struct kw_status_snap *s, char *buf, size_t cap)
{
	uint64_t up = s->uptime_ms / 1000;
	struct out o;
	char line[512];
	uint32_t i;

	out_init(&o, buf, cap);
	outf(&o, "kwnode %s, up %lluh%02llum%02llus\n", s->version, (unsigned long long)(up / 3600),
	     (unsigned long long)(up / 60 % 60), (unsigned long long)(up % 60));
	outf(&o, "peer id:       %s\n", s->peer_id[0] ? s->peer_id : "(no networking)");
	outf(&o, "state:         %s", policy_name(s));
	if (s->have_policy && s->transitions == 0 && s->detail[0])
		outf(&o, " since start: %s\n", s->detail);  /* never changed: only "now" says why */
	else if (s->have_policy)
		outf(&o, " for %llu s: %s\n", (unsigned long long)ago_s(s, s->state_since_ms),
		     s->reason);
	else
		outf(&o, "\n");
	if (s->have_policy && s->detail[0] && s->transitions > 0)
		outf(&o, "               now: %s\n", s->detail);
	outf(&o, "reachability:  %s: %s\n", kw_reach_name(s->reach), s->reach_why);
	if (s->reach != KW_REACH_REACHABLE)
		outf(&o, "  fix:         %s\n", s->reach_fix);
	for (i = 0; i < s->n_listen; i++)
		outf(&o, "%s%s\n", i ? "               " : "listening on:  ", s->listen[i]);
	for (i = 0; i < s->n_announce; i++)
		outf(&o, "%s%s\n", i ? "               " : "announcing:    ", s->announce[i]);
	for (i = 0; i < s->n_observed; i++)
		outf(&o, "%s%s\n", i ? "               " : "peers see us:  ", s->observed[i]);
	outf(&o, "connections:   %u in, %u out, %u up\n", s->conns_in, s->conns_out, s->conns_up);
	served_line(s, line, sizeof(line));
	outf(&o, "serving:       %s\n", line);
	avg_line(s, line, sizeof(line));
	outf(&o, "averaging:     %s\n", line);
	if (s->last_request_ms)
		outf(&o, "requests:      %llu, the last %llu s ago\n", (unsigned long long)s->requests,
		     (unsigned long long)ago_s(s, s->last_request_ms));
	else
		outf(&o, "requests:      %llu (none seen yet)\n", (unsigned long long)s->requests);
	outf(&o, "traffic:       %llu bytes in, %llu bytes out\n", (unsigned long long)s->bytes_in,
	     (unsigned long long)s->bytes_out);
	outf(&o, "sensors:       SoC ");
	if (s->temp_mc != INT32_MIN)
		outf(&o, "%.1f C", s->temp_mc / 1000.0);
	else
		outf(&o, "unknown");
	outf(&o, ", %s", s->ac == 0 ? "on battery" : s->ac == 1 ? "external power" :
	     "power source unknown");
	if (s->battery_pct >= 0)
		outf(&o, ", battery %d%%\n", s->battery_pct);
	else
		outf(&o, ", no battery\n");
	return out_end(&o);
}

/* ---- the HTTP request parser ---- */

static bool tchar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line starting at p (the '\n'), or NULL; CR before it is allowed. */
static const char *line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

int kw_http_parse(const char *buf, size_t len, struct kw_http_req *req)
{
	const char *p = buf, *end = buf + len, *nl, *sp1, *sp2, *t, *le, *q;
	size_t mlen, plen;

	/* the head ends at the first empty line: "\r\n\r\n" or "\n\n" */
	{
		const char *h = NULL;
		size_t i;

		for (i = 0; i + 1 < len; i++)
			if (buf[i] == '\n' && (buf[i + 1] == '\n' ||
					       (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
				h = buf + i + (buf[i + 1] == '\n' ? 2 : 3);
				break;
			}
		if (!h)
			return len >= KW_HTTP_REQ_MAX ? -KW_EMSGSIZE : -KW_EAGAIN;
		if ((size_t)(h - buf) > KW_HTTP_REQ_MAX)
			return -KW_EMSGSIZE;
		end = h;
	}
	/* request line: METHOD SP target SP HTTP/1.x (RFC 9112 section 3) */
	nl = line_end(p, end);
	le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	sp1 = memchr(p, ' ', (size_t)(le - p));
	if (!sp1 || sp1 == p)
		return -KW_EBADMSG;
	for (t = p; t < sp1; t++)
		if (!tchar(*t))
			return -KW_EBADMSG;
	mlen = (size_t)(sp1 - p);
	sp2 = memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return -KW_EBADMSG;
	for (t = sp1 + 1; t < sp2; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return -KW_EBADMSG;
	if ((size_t)(le - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7))
		return (size_t)(le - sp2 - 1) >= 5 && !memcmp(sp2 + 1, "HTTP/", 5) ?
		       -KW_ENOTSUP : -KW_EBADMSG;
	if (sp2[8] != '0' && sp2[8] != '1')
		return -KW_ENOTSUP;
	/* header lines: name ':' value, no control bytes but HTAB */
	for (p = nl + 1; p < end; p = nl + 1) {
		const char *colon;

		nl = line_end(p, end);
		le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		if (le == p)
			break;  /* the blank line */
		colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || colon == p)
			return -KW_EBADMSG;
		for (t = p; t < colon; t++)
			if (!tchar(*t))
				return -KW_EBADMSG;
		for (t = colon + 1; t < le; t++)
			if (((unsigned char)*t < 0x20 && *t != '\t') || *t == 0x7f)
				return -KW_EBADMSG;
	}
	req->head_len = (size_t)(end - buf);
	req->get = mlen == 3 && !memcmp(buf, "GET", 3);
	/* the path, without a query string; absolute-form is not served (no proxy) */
	q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	plen = (size_t)((q ? q : sp2) - sp1 - 1);
	t = sp1 + 1;
	if (plen == 1 && *t == '/')
		req->route = KW_HTTP_PAGE;
	else if (plen == 12 && !memcmp(t, "/status.json", 12))
		req->route = KW_HTTP_JSON;
	else if (plen == 8 && !memcmp(t, "/metrics", 8))
		req->route = KW_HTTP_METRICS;
	else
		req->route = KW_HTTP_NOT_FOUND;
	return 0;
}
