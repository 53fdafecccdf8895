/*
 * multistream-select on muxed streams (kw/net/mss.h). A pooled negotiation state is the
 * stream's handler until the protocol is settled; then the stream is handed to the protocol
 * (inbound: the registry's accept callback; outbound: the handler given to kw_mss_outbound)
 * and bytes that followed the last negotiation line go straight to the new handler's on_data.
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/net/mss.h>
#include <kw/net/varint.h>

/* IN_ACCEPT: the protocol is agreed but our echo of it is still queued; the protocol's handler
 * may write as soon as it has the stream, so it gets the stream only once the echo is out. */
enum neg_phase { OUT_HDR, OUT_ECHO, IN_HDR, IN_PROTO, IN_ACCEPT };

/* Our negotiation lines not yet taken by the stream: the header and a proposal or an echo,
 * and a few "na" (a proposal longer than KW_PROTO_ID_MAX is refused before it is echoed). */
#define NEG_OUT_MAX (2 * (KW_PROTO_ID_MAX + 8))

struct kw_mss_neg {
	struct kw_mss *m;
	const char *peer;            /* the remote, for log lines (the connection's label) */
	struct kw_stream *s;
	enum neg_phase phase;
	const struct kw_stream_handler *h;
	void *user;
	kw_mss_open_cb cb;
	struct kw_timer timer;
	uint16_t len;
	uint16_t out_len;
	bool eof;                    /* IN_ACCEPT: the remote's FIN came, for the protocol */
	char proto[KW_PROTO_ID_MAX + 1];
	uint8_t buf[KW_MSS_LINE_MAX + 8];
	uint8_t out[NEG_OUT_MAX];
};


static const struct kw_stream_handler neg_handler;

static void neg_free(struct kw_mss_neg *n)
{
	kw_timer_cancel(n->m->loop, &n->timer);
	kw_pool_free(&n->m->negs, n);
}

/* Outbound failure: tells the opener once, then resets the stream (on_close frees n). */
static void out_fail(struct kw_mss_neg *n, int err)
{
	kw_mss_open_cb cb = n->cb;

	n->cb = NULL;
	if (cb) {
		n->m->st.failed++;
		cb(NULL, err, n->user);
	}
}

/* Fails the negotiation: tells an opener, stops the timer, resets (on_close frees n). */
static void neg_abort(struct kw_mss_neg *n, int err)
{
	out_fail(n, err);
	kw_timer_cancel(n->m->loop, &n->timer);
	kw_stream_reset(n->s);
}

static size_t null_on_data(struct kw_stream *s, const uint8_t *d, size_t len) { return len; }
static void null_on_close(struct kw_stream *s, int reason) { }
/* Owns a stream that failed before anyone took it, until the muxer frees it. */
static const struct kw_stream_handler null_handler = {
	.on_data = null_on_data,
	.on_close = null_on_close,
};

/*
 * Writes what the stream takes and queues the rest in n->out, sent from on_writable. A new
 * stream has a 256 KiB window, but the connection's output buffer is shared with every other
 * stream: while a bulk transfer keeps it full, a short write here is normal and must not fail
 * the negotiation (the remote would see a reset and nothing logged on our side).
 */
static int neg_write(struct kw_mss_neg *n, const uint8_t *b, size_t len)
{
	long w = 0;

	if (!n->out_len) {
		w = kw_stream_write(n->s, b, len);
		if (w < 0)
			return (int)w;
	}
	if (len - (size_t)w > sizeof(n->out) - n->out_len)
		return -KW_ENOBUFS;
	memcpy(n->out + n->out_len, b + w, len - (size_t)w);
	n->out_len = (uint16_t)(n->out_len + len - (size_t)w);
	return 0;
}

static int neg_flush(struct kw_mss_neg *n)
{
	long w;

	if (!n->out_len)
		return 0;
	w = kw_stream_write(n->s, n->out, n->out_len);
	if (w < 0)
		return (int)w;
	memmove(n->out, n->out + w, n->out_len - (size_t)w);
	n->out_len = (uint16_t)(n->out_len - (size_t)w);
	return 0;
}

static int write_line(struct kw_mss_neg *n, const char *text)
{
	uint8_t b[KW_MSS_LINE_MAX + 8];
	int l = kw_mss_line_encode(text, b, sizeof(b));

	if (l < 0)
		return l;
	return neg_write(n, b, (size_t)l);
}

static int write_ls(struct kw_mss_neg *n)
{
	const struct kw_mss_registry *reg = &n->m->reg;
	uint8_t body[KW_MSS_LINE_MAX];
	size_t off = 0, i;
	uint8_t hdr[4];
	const char *id;
	int h;
	long w;

	if (n->out_len)
		return -KW_ENOBUFS;  /* rare: a peer that asks for ls while our header is queued */
	for (i = 0; (id = reg->protocol(reg->arg, i)) != NULL; i++) {
		int l = kw_mss_line_encode(id, body + off, sizeof(body) - off - 1);

		if (l < 0)
			break;
		off += (size_t)l;
	}
	body[off++] = '\n';
	h = kw_uvarint_encode(off, hdr, sizeof(hdr));
	if (h < 0)
		return h;
	w = kw_stream_write(n->s, hdr, (size_t)h);
	if (w == h)
		w = kw_stream_write(n->s, body, off);
	return w == (long)off ? 0 : -KW_ENOBUFS;
}

/* Hands the stream over; returns how many of `rest` the new handler consumed. */
static size_t hand_over(struct kw_mss_neg *n, const uint8_t *rest, size_t rest_len)
{
	struct kw_stream *s = n->s;

	snprintf(s->protocol, sizeof(s->protocol), "%s", n->proto);
	neg_free(n);
	if (rest_len == 0 || !s->h || !s->h->on_data)
		return 0;
	return s->h->on_data(s, rest, rest_len);
}

/* Our echo of n->proto is out: the registry's protocol takes the stream. Returns how many of
 * rest were consumed (all of it when the protocol refused and the stream was reset). */
static size_t in_accept(struct kw_mss_neg *n, const uint8_t *rest, size_t rest_len)
{
	const struct kw_mss_registry *reg = &n->m->reg;
	struct kw_stream *s = n->s;
	int ret;

	s->h = NULL;
	s->user = NULL;
	ret = reg->accept(reg->arg, s, n->proto);
	if (ret < 0 || !s->h) {
		KW_LOG_WRN(mss, "%s: %s refused inbound stream %u: %s", n->peer, n->proto, s->id,
			   kw_strerror(ret < 0 ? ret : -KW_ENOPROTO));
		n->m->st.streams_refused++;
		s->h = &neg_handler;
		s->user = n;
		neg_abort(n, -KW_ENOPROTO);
		return rest_len;
	}
	n->m->st.streams_in++;
	return hand_over(n, rest, rest_len);
}

static size_t neg_on_data(struct kw_stream *s, const uint8_t *data, size_t len)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)s->user;
	size_t old = n->len, take = KW_MIN(len, sizeof(n->buf) - n->len), off = 0;
	char line[KW_MSS_LINE_MAX + 1];

	if (n->phase == IN_ACCEPT)
		return 0;  /* the protocol's bytes wait in the muxer until it has the stream */
	memcpy(n->buf + n->len, data, take);
	n->len = (uint16_t)(n->len + take);
	for (;;) {
		long r = kw_mss_line_decode(n->buf + off, n->len - off, line, sizeof(line));

		if (r == -KW_EAGAIN) {
			if (n->len == sizeof(n->buf)) {
				r = -KW_EBADMSG;
			} else {
				/* keep the partial line at the front; all of data is consumed */
				memmove(n->buf, n->buf + off, n->len - off);
				n->len = (uint16_t)(n->len - off);
				return take;
			}
		}
		if (r < 0) {
			KW_LOG_WRN(mss, "%s: malformed multistream-select line on stream %u: %s; "
				   "resetting the stream", n->peer, s->id,
				   kw_strerror((int)r));
			neg_abort(n, -KW_EPROTO);
			return len;
		}
		off += (size_t)r;
		switch (n->phase) {
		case OUT_HDR:
		case IN_HDR:
			if (strcmp(line, KW_MSS_HEADER)) {
				KW_LOG_WRN(mss, "%s: expected %s, got '%.40s'; resetting stream %u",
					   n->peer, KW_MSS_HEADER, line, s->id);
				neg_abort(n, -KW_EPROTO);
				return len;
			}
			if (n->phase == IN_HDR && write_line(n, KW_MSS_HEADER) < 0)
				goto write_failed;
			n->phase = n->phase == OUT_HDR ? OUT_ECHO : IN_PROTO;
			break;
		case OUT_ECHO:
			if (!strcmp(line, n->proto) && !n->out_len) {
				kw_mss_open_cb cb = n->cb;
				size_t used = off - old;

				s->h = n->h;
				s->user = n->user;
				n->cb = NULL;
				snprintf(s->protocol, sizeof(s->protocol), "%s", n->proto);
				neg_free(n);
				cb(s, 0, s->user);
				if (s->h && s->h->on_data && len > used)
					used += s->h->on_data(s, data + used, len - used);
				return used;
			}
			/* "na" (or anything else): the remote does not speak it */
			neg_abort(n, -KW_ENOPROTO);
			return len;
		case IN_PROTO: {
			const struct kw_mss_registry *reg = &n->m->reg;

			if (!strcmp(line, "ls")) {
				if (write_ls(n) < 0)
					goto write_failed;
				break;
			}
			if (!reg->offers(reg->arg, line)) {
				if (write_line(n, "na") < 0)
					goto write_failed;
				break;
			}
			if (strlen(line) > KW_PROTO_ID_MAX) {
				if (write_line(n, "na") < 0)
					goto write_failed;
				break;
			}
			if (write_line(n, line) < 0)
				goto write_failed;
			snprintf(n->proto, sizeof(n->proto), "%s", line);
			{
				size_t used = off - old;

				if (n->out_len) {   /* on_writable sends the echo, then accepts */
					n->phase = IN_ACCEPT;
					n->len = 0;
					return used;
				}
				return used + in_accept(n, data + used, len - used);
			}
		}
		case IN_ACCEPT:
			break;
		}
	}
write_failed:
	neg_abort(n, -KW_ECONNRESET);
	return len;
}

static void neg_on_eof(struct kw_stream *s)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)s->user;

	if (n->phase == IN_ACCEPT) {   /* agreed: the FIN is the protocol's */
		n->eof = true;
		return;
	}
	neg_abort(n, -KW_ECONNRESET);
}

static void neg_on_writable(struct kw_stream *s)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)s->user;
	bool eof = n->eof;

	if (neg_flush(n) < 0) {
		neg_abort(n, -KW_ECONNRESET);
		return;
	}
	if (n->out_len || n->phase != IN_ACCEPT)
		return;
	in_accept(n, NULL, 0);   /* frees n, or resets the stream */
	if (s->h == &neg_handler)
		return;
	kw_stream_resume(s);     /* the bytes held back while the echo was queued */
	if (eof && s->h && s->h->on_eof)
		s->h->on_eof(s);
}

static void neg_on_close(struct kw_stream *s, int reason)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)s->user;

	out_fail(n, reason < 0 ? reason : -KW_ECONNRESET);
	neg_free(n);
}

static const struct kw_stream_handler neg_handler = {
	.on_data = neg_on_data,
	.on_eof = neg_on_eof,
	.on_writable = neg_on_writable,
	.on_close = neg_on_close,
};

static void on_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)t->arg;

	KW_LOG_WRN(mss, "%s: protocol negotiation on stream %u timed out; resetting it",
		   n->peer, n->s->id);
	neg_abort(n, -KW_ETIMEDOUT);
}

static struct kw_mss_neg *neg_new(struct kw_mss *m, struct kw_stream *s, const char *peer)
{
	struct kw_mss_neg *n = (struct kw_mss_neg *)kw_pool_alloc(&m->negs);

	if (!n)
		return NULL;
	n->m = m;
	n->peer = peer;
	n->s = s;
	kw_timer_init(&n->timer, on_timeout, n);
	kw_timer_start(m->loop, &n->timer, m->timeout_ms);
	s->h = &neg_handler;
	s->user = n;
	return n;
}

int kw_mss_init(struct kw_mss *m, struct kw_node *n, uint32_t count, uint32_t timeout_ms,
		const struct kw_mss_registry *reg)
{
	memset(m, 0, sizeof(*m));
	m->loop = &n->loop;
	m->timeout_ms = timeout_ms;
	m->reg = *reg;
	return kw_node_pool_create(n, &m->negs, "mss_negotiation", sizeof(struct kw_mss_neg),
				   count);
}

void kw_mss_inbound(struct kw_mss *m, struct kw_stream *s, const char *peer)
{
	struct kw_mss_neg *n = neg_new(m, s, peer);

	if (!n) {
		KW_LOG_WRN(mss, "%s: no negotiation slot for inbound stream %u: %s; resetting it",
			   peer, s->id, kw_strerror(-KW_ELIMIT));
		m->st.streams_refused++;
		s->h = &null_handler;
		s->user = NULL;
		kw_stream_reset(s);
		return;
	}
	n->phase = IN_HDR;
}

int kw_mss_outbound(struct kw_mss *m, struct kw_stream *s, const char *peer, const char *proto,
		    const struct kw_stream_handler *h, void *user, kw_mss_open_cb cb)
{
	uint8_t b[2 * (KW_MSS_LINE_MAX + 8)];
	struct kw_mss_neg *n;
	int l1, l2;
	long w;

	l1 = kw_mss_line_encode(KW_MSS_HEADER, b, sizeof(b));
	l2 = kw_mss_line_encode(proto, b + l1, sizeof(b) - (size_t)l1);
	if (l2 < 0)
		return -KW_EINVAL;
	n = neg_new(m, s, peer);
	if (!n)
		return -KW_ELIMIT;
	n->phase = OUT_HDR;
	n->h = h;
	n->user = user;
	n->cb = cb;
	snprintf(n->proto, sizeof(n->proto), "%s", proto);
	/* header and proposal in one write, as js does; what the connection cannot take now
	 * goes from on_writable */
	w = neg_write(n, b, (size_t)(l1 + l2));
	if (w < 0) {
		n->cb = NULL;
		s->h = &null_handler;
		s->user = NULL;
		neg_free(n);
		return (int)w;
	}
	return 0;
}
