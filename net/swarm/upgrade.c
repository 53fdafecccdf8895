/*
 * The connection upgrade pipeline (upgrade.h): multistream-select "/noise", Noise XX with
 * the expected peer id of a dialed /p2p/ address, muxer selection through the Noise
 * extension or multistream-select, then yamux. All of it is sans-I/O: swarm.c moves bytes,
 * this file turns them into stages and streams, and reaches the connection only through
 * u->ops.
 */
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/mss.h>
#include <kw/net/noise.h>

#include "upgrade.h"

#define YAMUX_PROTO "/yamux/1.0.0"

static const char *const g_muxers[] = { YAMUX_PROTO };

/* ---- output ----------------------------------------------------------------------------- */

/* Copies raw bytes into the send buffer. Return 0, -KW_ENOBUFS (no room: retry later). */
static int send_raw(struct kw_upgrade *u, const uint8_t *p, size_t n)
{
	size_t space;
	uint8_t *o = u->ops->tx_space(u->conn, &space);

	if (n > space)
		return -KW_ENOBUFS;
	memcpy(o, p, n);
	u->ops->tx_commit(u->conn, n);
	return 0;
}

/* Encrypts plaintext into the send buffer. Return 0, -KW_ENOBUFS (no room: retry later). */
static int send_plain(struct kw_upgrade *u, const uint8_t *p, size_t n)
{
	size_t need = kw_noise_encrypt_all_len(n), out, space;
	uint8_t *o = u->ops->tx_space(u->conn, &space);
	int ret;

	if (need > space)
		return -KW_ENOBUFS;
	ret = kw_noise_encrypt_all(&u->noise, p, n, o, space, &out);
	if (ret < 0)
		return ret;
	u->ops->tx_commit(u->conn, out);
	return 0;
}

static int send_lines(struct kw_upgrade *u, const char *a, const char *b, bool encrypted)
{
	uint8_t buf[2 * (KW_UPGRADE_LINEBUF + 4)];
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
		return send_plain(u, buf, (size_t)(l1 + l2));
	return send_raw(u, buf, (size_t)(l1 + l2));
}

/*
 * Our multistream proposal (header + /noise raw, or header + /yamux/1.0.0 inside Noise).
 * With no send space now it waits for kw_upgrade_on_tx_space: a shortage of our socket
 * buffers delays the connection, it never fails it. Return 0 or the encryption error.
 */
static int send_greeting(struct kw_upgrade *u)
{
	bool enc = u->stage == KW_UPGRADE_MSS_MUX;
	int ret = send_lines(u, KW_MSS_HEADER, enc ? YAMUX_PROTO : "/noise", enc);

	u->greet_pending = ret == -KW_ENOBUFS;
	return u->greet_pending ? 0 : ret;
}

/* ---- yamux glue ------------------------------------------------------------------------- */

/* One yamux frame = one Noise frame: copy behind the length prefix, encrypt in place. */
static int mux_output(void *arg, const uint8_t *hdr, size_t hl, const uint8_t *pl, size_t pn)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;
	size_t n = hl + pn, space, out;
	uint8_t *o;
	int ret;

	if (n > KW_NOISE_PLAINTEXT_MAX)
		return -KW_EMSGSIZE;
	o = u->ops->tx_space(u->conn, &space);
	if (space < n + KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN)
		return -KW_ENOBUFS;
	memcpy(o + KW_NOISE_FRAME_HDR, hdr, hl);
	if (pn)
		memcpy(o + KW_NOISE_FRAME_HDR + hl, pl, pn);
	ret = kw_noise_encrypt(&u->noise, o + KW_NOISE_FRAME_HDR, n, o, space, &out);
	if (ret < 0)
		return ret;
	u->ops->tx_commit(u->conn, out);
	return 0;
}

static size_t mux_output_space(void *arg)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;
	size_t space, over = KW_NOISE_FRAME_HDR + KW_NOISE_TAG_LEN;

	(void)u->ops->tx_space(u->conn, &space);
	return space > over ? KW_MIN(space - over, (size_t)KW_NOISE_PLAINTEXT_MAX) : 0;
}

static void mux_new_stream(void *arg, struct kw_stream *s)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;

	u->ops->new_stream(u->conn, s);
}

static void mux_error(void *arg, int err, const char *why)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;

	u->ops->fail(u->conn, err, why);
}

static void mux_closed(void *arg)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;

	u->ops->mux_closed(u->conn);
}

static void mux_kick(void *arg)
{
	struct kw_upgrade *u = (struct kw_upgrade *)arg;

	u->ops->kick(u->conn);
}

static const struct kw_yamux_io g_mux_io = {
	.kick = mux_kick,
	.output = mux_output,
	.output_space = mux_output_space,
	.new_stream = mux_new_stream,
	.error = mux_error,
	.closed = mux_closed,
};

static int start_mux(struct kw_upgrade *u)
{
	int ret = kw_yamux_create(&u->sh->ymp, &u->mux, u->outbound, &g_mux_io, u,
				  u->sh->max_streams);

	if (ret < 0)
		return ret;
	u->stage = KW_UPGRADE_MUX;
	u->mss_seen = 0;
	u->line_len = 0;
	u->ops->up(u->conn);
	return 0;
}

/* ---- stages ----------------------------------------------------------------------------- */

static int on_noise_established(struct kw_upgrade *u)
{
	struct kw_noise_session *ns = &u->noise;

	u->ops->secured(u->conn, kw_noise_remote_peer(ns));
	if (kw_noise_remote_muxer_count(ns) == 0) {
		/* the remote sent no muxer list: negotiate yamux with multistream-select */
		u->stage = KW_UPGRADE_MSS_MUX;
		u->mss_seen = 0;
		if (u->outbound)
			return send_greeting(u);
		return 0;
	}
	if (!kw_noise_remote_offers_muxer(ns, YAMUX_PROTO))
		return -KW_ENOPROTO;  /* js aborts the same way: no common muxer */
	return start_mux(u);
}

static int noise_write_if_due(struct kw_upgrade *u)
{
	size_t n, space;
	uint8_t *o;
	int ret;

	if (!kw_noise_want_write(&u->noise))
		return 0;
	o = u->ops->tx_space(u->conn, &space);
	if (space < KW_NOISE_HS_FRAME_MAX)
		return 0;  /* written from kw_upgrade_on_tx_space once there is room */
	ret = kw_noise_handshake_write(&u->noise, o, space, &n);
	if (ret < 0)
		return ret;
	u->ops->tx_commit(u->conn, n);
	if (kw_noise_established(&u->noise))
		ret = on_noise_established(u);  /* initiator: done after msg3 */
	return ret;
}

static int start_noise(struct kw_upgrade *u)
{
	struct kw_noise_opts o = { 0 };
	int ret;

	if (u->have_expect)
		o.expected_peer = &u->expect;
	ret = kw_noise_session_init(&u->noise, &u->sh->nid, u->outbound, &o);
	if (ret < 0)
		return ret;
	u->stage = KW_UPGRADE_NOISE;
	return noise_write_if_due(u);
}

/*
 * One multistream-select line of the connection-level negotiations (/noise raw, /yamux
 * inside Noise). Return 0, 1 when the stage is complete, or -KW_E*.
 */
static int conn_mss_line(struct kw_upgrade *u, const char *line, bool encrypted)
{
	const char *want = encrypted ? YAMUX_PROTO : "/noise";

	if (u->mss_seen == 0) {
		int ret = 0;

		if (strcmp(line, KW_MSS_HEADER))
			return -KW_EPROTO;
		if (!u->outbound)
			ret = send_lines(u, KW_MSS_HEADER, NULL, encrypted);
		if (ret == 0)
			u->mss_seen = 1;  /* only once answered: -KW_ENOBUFS replays the line */
		return ret;
	}
	if (u->outbound) {
		if (!strcmp(line, want))
			return 1;
		return -KW_ENOPROTO;  /* "na": the listener does not speak it */
	}
	if (!strcmp(line, want)) {
		int ret = send_lines(u, want, NULL, encrypted);

		return ret < 0 ? ret : 1;
	}
	return send_lines(u, "na", NULL, encrypted);
}

/*
 * Feeds bytes of a multistream negotiation, buffering a partial line in u->line. A line whose
 * answer finds no send space stays unconsumed (return 0 with *used before it): the
 * connection waits for a buffer and replays it.
 */
static int feed_mss(struct kw_upgrade *u, const uint8_t *p, size_t n, size_t *used,
		    bool encrypted)
{
	char line[KW_UPGRADE_LINEBUF];

	*used = 0;
	while (*used < n) {
		size_t take = KW_MIN(n - *used, sizeof(u->line) - u->line_len);
		long r;
		int ret;

		memcpy(u->line + u->line_len, p + *used, take);
		r = kw_mss_line_decode(u->line, u->line_len + take, line, sizeof(line));
		if (r == -KW_EAGAIN) {
			if (u->line_len + take == sizeof(u->line))
				return -KW_EPROTO;  /* longer than any id we accept here */
			u->line_len = (uint8_t)(u->line_len + take);
			*used += take;
			continue;
		}
		if (r < 0)
			return -KW_EPROTO;
		ret = conn_mss_line(u, line, encrypted);
		if (ret == -KW_ENOBUFS)
			return 0;
		*used += (size_t)r - u->line_len;
		u->line_len = 0;
		if (ret < 0)
			return ret;
		if (ret == 1)
			return 1;
	}
	return 0;
}

static int deliver_plain(struct kw_upgrade *u)
{
	while (u->pend_len && !u->stopped) {
		size_t used = 0;
		int ret;

		if (u->stage == KW_UPGRADE_MSS_MUX) {
			ret = feed_mss(u, u->pend, u->pend_len, &used, true);
			if (ret < 0)
				return ret;
			u->pend += used;
			u->pend_len -= (uint32_t)used;
			if (ret == 1 && (ret = start_mux(u)) < 0)
				return ret;
			if (ret == 0 && used == 0)
				break;  /* an answer waits for send space */
			continue;
		}
		if (u->stage != KW_UPGRADE_MUX)
			return -KW_EPROTO;  /* transport data before the handshake finished */
		ret = kw_yamux_input(u->mux, u->pend, u->pend_len, &used);
		if (ret < 0) {
			KW_LOG_WRN(swarm, "%s: yamux input failed: %s", u->label, kw_strerror(ret));
			return ret;
		}
		u->pend += used;
		u->pend_len -= (uint32_t)used;
		if (used == 0)
			break;  /* yamux is full: back-pressure until a stream consumes */
	}
	return 0;
}

int kw_upgrade_on_bytes(struct kw_upgrade *u, uint8_t *buf, size_t len, size_t *used)
{
	int ret;

	*used = 0;
	ret = deliver_plain(u);
	if (ret < 0)
		return ret;
	while (*used < len && !u->stopped && u->pend_len == 0) {
		if (u->stage == KW_UPGRADE_MSS_SEC) {
			size_t k;

			ret = feed_mss(u, buf + *used, len - *used, &k, false);
			*used += k;
			if (ret < 0)
				return ret;
			if (ret == 1 && (ret = start_noise(u)) < 0)
				return ret;
			if (ret == 0 && k == 0)
				break;  /* an answer waits for send space */
			continue;
		} else {
			const uint8_t *plain = NULL;
			size_t plen = 0;
			long r;

			r = kw_noise_read_inplace(&u->noise, buf + *used, len - *used, &plain,
						  &plen);
			if (r < 0) {
				KW_LOG_WRN(swarm, "%s: noise input failed in stage %d: %s", u->label,
					   u->stage, kw_strerror((int)r));
				return (int)r;
			}
			*used += (size_t)r;
			if (r == 0 || (!plain && kw_noise_rx_body_pending(&u->noise) &&
					*used < len))
				break;  /* a partial body: the caller keeps it until the rest arrives */
			if (u->stage == KW_UPGRADE_NOISE) {
				ret = noise_write_if_due(u);
				if (ret < 0)
					return ret;
				if (u->stage == KW_UPGRADE_NOISE && kw_noise_established(&u->noise) &&
				    (ret = on_noise_established(u)) < 0)
					return ret;
			}
			if (plain && plen) {
				u->pend = plain;
				u->pend_len = (uint32_t)plen;
				ret = deliver_plain(u);
				if (ret < 0)
					return ret;
			}
		}
	}
	return 0;
}

bool kw_upgrade_can_read(const struct kw_upgrade *u)
{
	return u->pend_len == 0;
}

bool kw_upgrade_frame_partial(const struct kw_upgrade *u)
{
	return u->stage != KW_UPGRADE_MSS_SEC && u->pend_len == 0 &&
	       kw_noise_rx_body_pending(&u->noise);
}

void kw_upgrade_on_tx_space(struct kw_upgrade *u)
{
	int ret;

	if (u->stopped)
		return;
	if (u->greet_pending && (ret = send_greeting(u)) < 0) {
		u->ops->fail(u->conn, ret, "multistream proposal");
		return;
	}
	if (u->greet_pending)
		return;
	if (u->stage == KW_UPGRADE_NOISE && kw_noise_want_write(&u->noise)) {
		ret = noise_write_if_due(u);
		if (ret < 0)
			u->ops->fail(u->conn, ret, "noise handshake");
		return;
	}
	if (u->mux)
		kw_yamux_on_output_space(u->mux);
}

int kw_upgrade_init(struct kw_upgrade_shared *sh, struct kw_node *n, const struct kw_privkey *key,
		    uint32_t max_conns, uint32_t max_streams)
{
	int ret = kw_noise_identity_init(&sh->nid, key, g_muxers, KW_ARRAY_SIZE(g_muxers), NULL);

	if (ret < 0)
		return ret;
	sh->max_streams = max_streams;
	return kw_yamux_pools_init(&sh->ymp, n, max_conns, (uint32_t)CONFIG_KW_NET_SWARM_STREAMS,
				   (uint32_t)CONFIG_KW_NET_SWARM_CHUNKS);
}

int kw_upgrade_start(struct kw_upgrade *u, struct kw_upgrade_shared *sh,
		     const struct kw_upgrade_conn_ops *ops, void *conn, bool outbound,
		     const struct kw_peer_id *expect, const char *label)
{
	u->sh = sh;
	u->ops = ops;
	u->conn = conn;
	u->label = label;
	u->outbound = outbound;
	u->have_expect = expect != NULL;
	if (expect)
		u->expect = *expect;
	u->stage = KW_UPGRADE_MSS_SEC;
	u->mss_seen = 0;
	if (outbound)
		return send_greeting(u);
	return 0;
}

void kw_upgrade_goaway(struct kw_upgrade *u, uint32_t code)
{
	if (u->mux)
		kw_yamux_goaway(u->mux, code);
}

bool kw_upgrade_done_closing(const struct kw_upgrade *u)
{
	return !u->mux || kw_yamux_stream_count(u->mux) == 0;
}

void kw_upgrade_stop(struct kw_upgrade *u)
{
	u->stopped = true;
}

void kw_upgrade_teardown(struct kw_upgrade *u, int reason)
{
	u->stopped = true;
	if (u->mux) {
		kw_yamux_destroy(u->mux, reason ? reason : -KW_ECONNRESET);
		u->mux = NULL;
	}
	u->pend_len = 0;
	kw_noise_session_wipe(&u->noise);
}

uint32_t kw_upgrade_stream_count(const struct kw_upgrade *u)
{
	return u->mux ? kw_yamux_stream_count(u->mux) : 0;
}

int kw_upgrade_open_stream(struct kw_upgrade *u, struct kw_stream **out)
{
	if (!u->mux)
		return -KW_ENOTCONN;
	return kw_yamux_open(u->mux, out);
}
