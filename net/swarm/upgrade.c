/*
 * The connection upgrade pipeline (upgrade_priv.h): multistream-select "/noise", Noise XX
 * with the expected peer id of a dialed /p2p/ address, muxer selection through the Noise
 * extension or multistream-select, then yamux. All of it is sans-I/O: swarm.c moves bytes,
 * this file turns them into stages and streams.
 */
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/pool.h>
#include <kw/net/noise.h>

#include "mss_line.h"
#include "swarm_priv.h"

#define YAMUX_PROTO "/yamux/1.0.0"

static const char *const g_muxers[] = { YAMUX_PROTO };

/* ---- output ----------------------------------------------------------------------------- */

/* Encrypts plaintext into the send buffer. Return 0, -KW_ENOBUFS (no room: retry later). */
static int send_plain(struct kw_conn *c, const uint8_t *p, size_t n)
{
	size_t need = kw_noise_encrypt_all_len(n), out;
	size_t space = kw_conn_send_space(c);
	int ret;

	if (need > space)
		return -KW_ENOBUFS;
	ret = kw_noise_encrypt_all(&c->up.noise, p, n, c->txb + c->tx_len, space, &out);
	if (ret < 0)
		return ret;
	c->tx_len += (uint32_t)out;
	return kw_conn_send(c, NULL, 0);
}

static int send_lines(struct kw_conn *c, const char *a, const char *b, bool encrypted)
{
	uint8_t buf[2 * (KW_UP_LINEBUF + 4)];
	int l1, l2 = 0;

	l1 = kw_mss_line_encode(a, buf, sizeof(buf));
	if (l1 < 0)
		return l1;
	if (b) {
		l2 = kw_mss_line_encode(b, buf + l1, sizeof(buf) - (size_t)l1);
		if (l2 < 0)
			return l2;
	}
	if (encrypted)
		return send_plain(c, buf, (size_t)(l1 + l2));
	return kw_conn_send(c, buf, (size_t)(l1 + l2));
}

/* ---- yamux glue ------------------------------------------------------------------------- */

/* One yamux frame = one Noise frame: copy behind the length prefix, encrypt in place. */
static int mux_output(void *arg, const uint8_t *hdr, size_t hl, const uint8_t *pl, size_t pn)
{
	struct kw_conn *c = (struct kw_conn *)arg;
	size_t n = hl + pn, space = kw_conn_send_space(c), out;
	uint8_t *o;
	int ret;

	if (n > KW_NOISE_PLAINTEXT_MAX)
		return -KW_EMSGSIZE;
	if (space < n + KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN)
		return -KW_ENOBUFS;
	o = c->txb + c->tx_len;
	memcpy(o + KW_NOISE_FRAME_HDR, hdr, hl);
	if (pn)
		memcpy(o + KW_NOISE_FRAME_HDR + hl, pl, pn);
	ret = kw_noise_encrypt(&c->up.noise, o + KW_NOISE_FRAME_HDR, n, o, space, &out);
	if (ret < 0)
		return ret;
	c->tx_len += (uint32_t)out;
	return kw_conn_send(c, NULL, 0);
}

static size_t mux_output_space(void *arg)
{
	size_t space = kw_conn_send_space((struct kw_conn *)arg);
	size_t over = KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN;

	return space > over ? KW_MIN(space - over, (size_t)KW_NOISE_PLAINTEXT_MAX) : 0;
}

static void mux_new_stream(void *arg, struct kw_stream *s)
{
	struct kw_conn *c = (struct kw_conn *)arg;

	s->conn = c;
	kw_conn_touch(c);
	if (c->state != CONN_UP || c->sw->draining) {
		kw_stream_reset(s);
		return;
	}
	kw_neg_inbound(c->sw, c, s);
}

static void mux_error(void *arg, int err, const char *why)
{
	kw_conn_fail((struct kw_conn *)arg, err, why);
}

static void mux_closed(void *arg)
{
	struct kw_conn *c = (struct kw_conn *)arg;

	if (c->state == CONN_CLOSING)
		kw_conn_kick(c);
	else
		kw_conn_fail(c, 0, "peer sent go-away");
}

static void mux_kick(void *arg)
{
	kw_conn_kick((struct kw_conn *)arg);
}

static const struct kw_yamux_io g_mux_io = {
	.kick = mux_kick,
	.output = mux_output,
	.output_space = mux_output_space,
	.new_stream = mux_new_stream,
	.error = mux_error,
	.closed = mux_closed,
};

static int start_mux(struct kw_conn *c)
{
	int ret = kw_sw_yamux_create(&c->sw->ups.ymp, &c->up.mux, c->outbound, &g_mux_io, c,
				  c->sw->lim.max_streams_per_conn);

	if (ret < 0)
		return ret;
	c->up.stage = UP_MUX;
	c->up.mss_seen = 0;
	c->up.line_len = 0;
	kw_conn_upgraded(c);
	return 0;
}

/* ---- stages ----------------------------------------------------------------------------- */

static int noise_established(struct kw_conn *c)
{
	struct kw_noise_session *ns = &c->up.noise;
	const struct kw_peer_id *rp = kw_noise_remote_peer(ns);

	c->peer = *rp;
	kw_peer_id_short(&c->peer, c->peer_short, sizeof(c->peer_short));
	if (kw_noise_remote_muxer_count(ns) == 0) {
		/* the remote sent no muxer list: negotiate yamux with multistream-select */
		c->up.stage = UP_MSS_MUX;
		c->up.mss_seen = 0;
		if (c->outbound)
			return send_lines(c, KW_MSS_HEADER, YAMUX_PROTO, true);
		return 0;
	}
	if (!kw_noise_remote_offers_muxer(ns, YAMUX_PROTO))
		return -KW_ENOPROTO;  /* js aborts the same way: no common muxer */
	return start_mux(c);
}

static int noise_write_if_due(struct kw_conn *c)
{
	size_t n, space;
	int ret;

	if (!kw_noise_want_write(&c->up.noise))
		return 0;
	space = kw_conn_send_space(c);
	if (space < KW_NOISE_HS_FRAME_MAX)
		return -KW_ENOBUFS;
	ret = kw_noise_handshake_write(&c->up.noise, c->txb + c->tx_len, space, &n);
	if (ret < 0)
		return ret;
	c->tx_len += (uint32_t)n;
	ret = kw_conn_send(c, NULL, 0);
	if (ret == 0 && kw_noise_established(&c->up.noise))
		ret = noise_established(c);  /* initiator: done after msg3 */
	return ret;
}

static int start_noise(struct kw_conn *c)
{
	struct kw_noise_opts o = { 0 };
	int ret;

	if (c->have_expect)
		o.expected_peer = &c->expect;
	ret = kw_noise_session_init(&c->up.noise, &c->sw->ups.nid, c->outbound, &o);
	if (ret < 0)
		return ret;
	c->up.stage = UP_NOISE;
	return noise_write_if_due(c);
}

/*
 * One multistream-select line of the connection-level negotiations (/noise raw, /yamux
 * inside Noise). Return 0, 1 when the stage is complete, or -KW_E*.
 */
static int conn_mss_line(struct kw_conn *c, const char *line, bool encrypted)
{
	const char *want = encrypted ? YAMUX_PROTO : "/noise";

	if (c->up.mss_seen == 0) {
		if (strcmp(line, KW_MSS_HEADER))
			return -KW_EPROTO;
		c->up.mss_seen = 1;
		if (!c->outbound)
			return send_lines(c, KW_MSS_HEADER, NULL, encrypted);
		return 0;
	}
	if (c->outbound) {
		if (!strcmp(line, want))
			return 1;
		return -KW_ENOPROTO;  /* "na": the listener does not speak it */
	}
	if (!strcmp(line, want)) {
		int ret = send_lines(c, want, NULL, encrypted);

		return ret < 0 ? ret : 1;
	}
	return send_lines(c, "na", NULL, encrypted);
}

/* Feeds bytes of a multistream negotiation, buffering a partial line in c->up.line. */
static int feed_mss(struct kw_conn *c, const uint8_t *p, size_t n, size_t *used, bool encrypted)
{
	char line[KW_UP_LINEBUF];

	*used = 0;
	while (*used < n) {
		size_t take = KW_MIN(n - *used, sizeof(c->up.line) - c->up.line_len);
		long r;
		int ret;

		memcpy(c->up.line + c->up.line_len, p + *used, take);
		r = kw_mss_line_decode(c->up.line, c->up.line_len + take, line, sizeof(line));
		if (r == -KW_EAGAIN) {
			if (c->up.line_len + take == sizeof(c->up.line))
				return -KW_EPROTO;  /* longer than any id we accept here */
			c->up.line_len = (uint8_t)(c->up.line_len + take);
			*used += take;
			continue;
		}
		if (r < 0)
			return -KW_EPROTO;
		*used += (size_t)r - c->up.line_len;
		c->up.line_len = 0;
		ret = conn_mss_line(c, line, encrypted);
		if (ret < 0)
			return ret;
		if (ret == 1)
			return 1;
	}
	return 0;
}

static int deliver_plain(struct kw_conn *c)
{
	while (c->up.pend_len && !c->dead) {
		size_t used = 0;
		int ret;

		if (c->up.stage == UP_MSS_MUX) {
			ret = feed_mss(c, c->up.pend, c->up.pend_len, &used, true);
			if (ret < 0)
				return ret;
			c->up.pend += used;
			c->up.pend_len -= (uint32_t)used;
			if (ret == 1 && (ret = start_mux(c)) < 0)
				return ret;
			continue;
		}
		if (c->up.stage != UP_MUX)
			return -KW_EPROTO;  /* transport data before the handshake finished */
		ret = kw_sw_yamux_input(c->up.mux, c->up.pend, c->up.pend_len, &used);
		if (ret < 0) {
			KW_LOG_WRN(swarm, "%s: yamux input failed: %s", c->peer_short, kw_strerror(ret));
			return ret;
		}
		c->up.pend += used;
		c->up.pend_len -= (uint32_t)used;
		if (used == 0)
			break;  /* yamux is full: back-pressure until a stream consumes */
	}
	return 0;
}

int kw_upgrade_on_bytes(struct kw_conn *c, const uint8_t *buf, size_t len, size_t *used)
{
	struct kw_upgrade *u = &c->up;
	int ret;

	*used = 0;
	ret = deliver_plain(c);
	if (ret < 0)
		return ret;
	while (*used < len && !c->dead && u->pend_len == 0) {
		if (u->stage == UP_MSS_SEC) {
			size_t k;

			ret = feed_mss(c, buf + *used, len - *used, &k, false);
			*used += k;
			if (ret < 0)
				return ret;
			if (ret == 1 && (ret = start_noise(c)) < 0)
				return ret;
			continue;
		} else {
			const uint8_t *plain = NULL;
			size_t plen = 0;
			long r;

			if (!u->frb) {
				u->frb = (uint8_t *)kw_pool_alloc(&c->sw->bufs);
				if (!u->frb)
					break;  /* retried when a buffer is returned */
			}
			r = kw_noise_read(&u->noise, buf + *used, len - *used, u->frb,
					  KW_SWARM_BUF_SIZE, &plain, &plen);
			if (r < 0) {
				KW_LOG_WRN(swarm, "%s: noise input failed in stage %d: %s", c->peer_short,
					   u->stage, kw_strerror((int)r));
				return (int)r;
			}
			*used += (size_t)r;
			if (u->stage == UP_NOISE) {
				ret = noise_write_if_due(c);
				if (ret < 0)
					return ret;
				if (u->stage == UP_NOISE && kw_noise_established(&u->noise) &&
				    (ret = noise_established(c)) < 0)
					return ret;
			}
			if (plain && plen) {
				u->pend = plain;
				u->pend_len = (uint32_t)plen;
				ret = deliver_plain(c);
				if (ret < 0)
					return ret;
			}
		}
	}
	return 0;
}

void kw_upgrade_release_idle(struct kw_conn *c)
{
	struct kw_upgrade *u = &c->up;

	if (u->frb && u->pend_len == 0 && (u->stage == UP_MSS_SEC || !kw_noise_rx_partial(&u->noise))) {
		kw_pool_free(&c->sw->bufs, u->frb);
		u->frb = NULL;
	}
}

bool kw_upgrade_can_read(const struct kw_conn *c)
{
	return c->up.pend_len == 0;
}

void kw_upgrade_on_tx_space(struct kw_conn *c)
{
	if (c->up.stage == UP_NOISE && kw_noise_want_write(&c->up.noise)) {
		int ret = noise_write_if_due(c);

		if (ret < 0 && ret != -KW_ENOBUFS)
			kw_conn_fail(c, ret, "noise handshake");
		return;
	}
	if (c->up.mux)
		kw_sw_yamux_on_output_space(c->up.mux);
}

int kw_upgrade_init(struct kw_swarm *sw, uint32_t max_conns)
{
	int ret = kw_noise_identity_init(&sw->ups.nid, &sw->key, g_muxers,
					 KW_ARRAY_SIZE(g_muxers), NULL);

	if (ret < 0)
		return ret;
	return kw_sw_yamux_pools_init(&sw->ups.ymp, sw->node, max_conns,
				      (uint32_t)CONFIG_KW_NET_SWARM_STREAMS,
				      (uint32_t)CONFIG_KW_NET_SWARM_CHUNKS);
}

int kw_upgrade_start(struct kw_conn *c)
{
	c->up.stage = UP_MSS_SEC;
	c->up.mss_seen = 0;
	if (c->outbound)
		return send_lines(c, KW_MSS_HEADER, "/noise", false);
	return 0;
}

void kw_upgrade_goaway(struct kw_conn *c, uint32_t code)
{
	if (c->up.mux)
		kw_sw_yamux_goaway(c->up.mux, code);
}

bool kw_upgrade_done_closing(const struct kw_conn *c)
{
	return !c->up.mux || kw_sw_yamux_stream_count(c->up.mux) == 0;
}

void kw_upgrade_teardown(struct kw_conn *c, int reason)
{
	if (c->up.mux) {
		kw_sw_yamux_destroy(c->up.mux, reason ? reason : -KW_ECONNRESET);
		c->up.mux = NULL;
	}
	if (c->up.frb) {
		kw_pool_free(&c->sw->bufs, c->up.frb);
		c->up.frb = NULL;
	}
	c->up.pend_len = 0;
	kw_noise_session_wipe(&c->up.noise);
}

uint32_t kw_upgrade_stream_count(const struct kw_conn *c)
{
	return c->up.mux ? kw_sw_yamux_stream_count(c->up.mux) : 0;
}

int kw_upgrade_open_stream(struct kw_conn *c, struct kw_stream **out)
{
	if (!c->up.mux)
		return -KW_ENOTCONN;
	return kw_sw_yamux_open(c->up.mux, out);
}
