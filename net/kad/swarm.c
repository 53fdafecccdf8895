/*
 * The libp2p transport of the Kademlia core (kw/net/kad.h, kw_kad_swarm_create): requests
 * and answers as uvarint-length-prefixed Message protobufs on /ipfs/kad/1.0.0 streams
 * (libp2p/specs kad-dht/README.md "RPC messages"), and admission to the routing table from
 * identify.
 *
 * Inbound: a stream carries any number of requests in turn, as go-libp2p-kad-dht
 * (dht_net.go handleNewMessage) and js-libp2p kad-dht (rpc/index.ts) send them. A request is
 * read whole into a message buffer, answered with kw_kad_handle_request, and its answer
 * written from the same buffer before the next request is taken from the muxer: bytes past
 * the current request are left unconsumed in yamux (its window throttles a peer that
 * pipelines). A bad prefix, an oversized message, a malformed one, a rate
 * limit or a request we do not serve resets only that stream, with the reason logged; a
 * stream with no complete request for KW_NET_KAD_STREAM_IDLE_MS is reset too (go's
 * dhtStreamIdleTimeout is one minute).
 *
 * Outbound: one stream per request (js accepts that and go opens one per message when its
 * pooled stream is busy): dial the peer if not connected (its addresses with /p2p/ appended,
 * in turn until one works), open the stream, write the request, half-close, read one answer,
 * report it with kw_kad_on_reply. A per-request timer bounds the whole exchange. Every report
 * runs from a loop callback, never from inside request().
 *
 * Memory: a stream state (KW_NET_KAD_STREAMS of them, inbound streams and our requests in
 * flight together) is small: it holds the length prefix and, for our requests, the encoded
 * request when it fits KAD_SMALL (every request but PUT_VALUE does). Message buffers of
 * KW_NET_KAD_MAX_MESSAGE_BYTES (KW_NET_KAD_BUFFERS of them) are lent only while a whole
 * message is read, answered and written, so an idle stream go or js keeps open costs no
 * buffer. A stream that needs one while all are lent waits (its bytes stay in yamux) and is
 * resumed from a loop task when one comes back. With no state free an inbound stream is
 * reset and a request fails at once (-KW_ELIMIT), as does a PUT_VALUE with no buffer free.
 * Those, and the swarm's own stream/connection limits when opening (-KW_ELIMIT, -KW_ENOBUFS,
 * -KW_ESHUTDOWN), are local refusals in the sense of kw_kad_err_local (kw/net/kad.h): the
 * core keeps the peer and asks again later. They are returned from request() when known at
 * once; a stream open that fails later reports its code through kw_kad_on_reply unchanged.
 *
 * Admission: a peer enters the routing table only when identify shows that it lists
 * /ipfs/kad/1.0.0 (so client-mode peers, which do not, never do), with the listen addresses it
 * reported that we can dial (TCP over IPv4/IPv6, not the unspecified address; loopback is
 * kept: test swarms and one-host clusters use it); when it reported none and we dialed it, the
 * address we dialed. A push that drops the protocol removes it (kw_kad_peer_gone).
 *
 * Owns: the state pool, the buffer pool, two decode/answer scratch messages (struct kw_kad_msg is about 41 KiB:
 * never on the stack; the loop is single-threaded and each use runs to completion), all from
 * the node's arena at create.
 */
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/pool.h>
#include <kw/net/identify.h>
#include <kw/net/kad.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#include <kw/net/varint.h>

#define MSG_BUF ((size_t)CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + KW_UVARINT_MAX_BYTES)
#define OUT_ADDRS 4   /* addresses a request keeps for dialing */
#define KAD_SMALL 1100 /* a request with a 512-byte key and a few addresses fits */
#define KAD_QUERY_TIMEOUT_MS ((uint32_t)CONFIG_KW_NET_KAD_QUERY_TIMEOUT_MS)

enum st_role { ROLE_IN, ROLE_OUT };
enum st_phase {
	PH_READ,      /* collecting one message */
	PH_WRITE,     /* writing buf[off..len) */
	PH_DIAL,      /* out: dialing */
	PH_OPEN,      /* out: stream negotiating */
	PH_DONE,      /* out: answered or failed; waiting for the stream/dial to let go */
};

struct kad_st {
	struct kad_sw *ks;
	struct kw_stream *s;
	uint8_t role, phase;
	bool pending;        /* a dial or open callback is still to come */
	bool replied;        /* out: kw_kad_on_reply ran */
	bool no_reply;       /* out: ADD_PROVIDER, done once written */
	bool eof;            /* in: the peer half-closed */
	uint32_t token;
	struct kw_peer_id peer;
	uint8_t naddrs, next_addr;
	struct kw_kad_rt_addr addrs[OUT_ADDRS];
	bool waiting;           /* on the buffer wait list */
	struct kad_st *wait_next;
	struct kw_timer timer;  /* out: request deadline; in: idle deadline */
	uint32_t len, off, need;  /* read: bytes held, bytes of the message (0 = prefix unknown) */
	uint8_t plen;             /* prefix bytes held before a buffer is lent */
	uint8_t pfx[KW_UVARINT_MAX_BYTES];
	uint8_t *buf;             /* lent message buffer (MSG_BUF bytes) or NULL */
	uint8_t small[KAD_SMALL]; /* out: the encoded request when it fits */
};

struct kad_sw {
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_kad *k;
	struct kw_loop *loop;
	bool client;
	uint32_t timeout_ms;
	struct kw_pool states;
	struct kw_pool bufs;
	struct kad_st *wait_head, *wait_tail;  /* streams waiting for a buffer, FIFO */
	struct kw_task grant;                  /* lends freed buffers to waiters */
	struct kw_kad_msg *req, *resp;         /* scratch */
	struct kw_identify_observer obs;
	struct kw_multiaddr seen[KW_IDENTIFY_LISTEN_KEEP];  /* admission scratch */
	struct kw_multiaddr ma;                /* dial scratch */
	char text[KW_MADDR_TEXT_MAX];
	struct kad_sw *next;                   /* every transport, for kw_kad_swarm_destroy */
};

/* The transports of this process (tests run several nodes in one): kw_kad_swarm_destroy
 * finds its own from the kad node it is given. */
static struct kad_sw *g_transports;

static const char *who(const struct kad_st *st)
{
	return st->s ? kw_conn_peer_short(kw_stream_conn(st->s)) : "peer";
}

/* ---- message buffers ------------------------------------------------------------------- */

static void wait_remove(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;
	struct kad_st **pp;

	if (!st->waiting)
		return;
	for (pp = &ks->wait_head; *pp; pp = &(*pp)->wait_next)
		if (*pp == st) {
			*pp = st->wait_next;
			break;
		}
	ks->wait_tail = NULL;
	for (pp = &ks->wait_head; *pp; pp = &(*pp)->wait_next)
		ks->wait_tail = *pp;
	st->waiting = false;
	st->wait_next = NULL;
}

/* Lends st a buffer (its prefix copied in); false: none free, st waits for one. */
static bool buf_get(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;
	uint8_t *b;

	if (st->buf)
		return true;
	b = st->waiting ? NULL : (uint8_t *)kw_pool_alloc(&ks->bufs);
	if (!b) {
		if (!st->waiting) {
			st->waiting = true;
			st->wait_next = NULL;
			if (ks->wait_tail)
				ks->wait_tail->wait_next = st;
			else
				ks->wait_head = st;
			ks->wait_tail = st;
			KW_LOG_DBG(kad, "all %u kad message buffers lent; a stream waits",
				   (unsigned)CONFIG_KW_NET_KAD_BUFFERS);
		}
		return false;
	}
	st->buf = b;
	memcpy(st->buf, st->pfx, st->plen);
	st->len = st->plen;
	return true;
}

static void buf_put(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;

	if (!st->buf)
		return;
	kw_pool_free(&ks->bufs, st->buf);
	st->buf = NULL;
	if (ks->wait_head)
		kw_task_post(ks->loop, &ks->grant);
}

/* Loop task: lends returned buffers to waiting streams, oldest first, and resumes them. */
static int on_grant(struct kw_loop *l, struct kw_task *t)
{
	struct kad_sw *ks = (struct kad_sw *)t->arg;

	while (ks->wait_head) {
		struct kad_st *st = ks->wait_head;
		uint8_t *b = (uint8_t *)kw_pool_alloc(&ks->bufs);

		if (!b)
			break;
		wait_remove(st);
		st->buf = b;
		memcpy(st->buf, st->pfx, st->plen);
		st->len = st->plen;
		if (st->s)
			kw_stream_resume(st->s);
	}
	return KW_TASK_DONE;
}

static void st_free(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;

	kw_timer_cancel(ks->loop, &st->timer);
	wait_remove(st);
	buf_put(st);
	kw_pool_free(&ks->states, st);
}

/* Out: reports once; the state stays until the stream and any dial/open callback let go. */
static void out_finish(struct kad_st *st, int err, const struct kw_kad_msg *resp)
{
	struct kad_sw *ks = st->ks;

	if (!st->replied) {
		st->replied = true;
		kw_timer_cancel(ks->loop, &st->timer);
		if (ks->k)
			kw_kad_on_reply(ks->k, st->token, err, err ? NULL : resp);
	}
	st->phase = PH_DONE;
	wait_remove(st);
	buf_put(st);
	if (st->s) {
		struct kw_stream *s = st->s;

		if (err) {
			kw_stream_reset(s);   /* on_close frees the state */
			return;
		}
		kw_stream_close_write(s);  /* already half-closed after the request; harmless */
		return;
	}
	if (!st->pending)
		st_free(st);
}

/* ---- reading one message --------------------------------------------------------------- */

/*
 * Takes bytes of the current message from data; returns how many it consumed, and sets *ret
 * to 1 when the message is complete in st->buf[0..len), 0 when more is needed, -KW_EAGAIN
 * when a buffer is needed and none is free (st now waits: stop consuming), or a negative
 * code (-KW_EMSGSIZE, -KW_EBADMSG) when the prefix is bad.
 */
static size_t take_msg(struct kad_st *st, const uint8_t *data, size_t n, int *ret)
{
	size_t used = 0;

	*ret = 0;
	while (st->need == 0 && used < n) {
		uint64_t l;
		int h;

		st->pfx[st->plen++] = data[used++];
		h = kw_uvarint_decode(st->pfx, st->plen, &l);
		if (h == -KW_EAGAIN && st->plen < KW_UVARINT_MAX_BYTES)
			continue;
		if (h < 0) {
			*ret = -KW_EBADMSG;
			return used;
		}
		if (l > CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES) {
			*ret = -KW_EMSGSIZE;  /* decided from the prefix, before any body byte */
			return used;
		}
		st->need = (uint32_t)((size_t)h + (size_t)l);
	}
	if (st->need) {
		size_t k;

		if (!buf_get(st)) {
			*ret = -KW_EAGAIN;
			return used;
		}
		k = KW_MIN(n - used, (size_t)(st->need - st->len));
		memcpy(st->buf + st->len, data + used, k);
		st->len += (uint32_t)k;
		used += k;
		if (st->len == st->need)
			*ret = 1;
	}
	return used;
}

/* Where the bytes to write are: the lent buffer, else the request kept inline. */
static uint8_t *wbuf(struct kad_st *st)
{
	return st->buf ? st->buf : st->small;
}

static void read_reset(struct kad_st *st)
{
	st->len = 0;
	st->need = 0;
	st->off = 0;
	st->plen = 0;
	st->phase = PH_READ;
}

/* Writes buf[off..len); true when everything is queued. A write error resets the stream. */
static bool flush(struct kad_st *st)
{
	while (st->off < st->len) {
		long w = kw_stream_write(st->s, wbuf(st) + st->off, st->len - st->off);

		if (w < 0) {
			KW_LOG_DBG(kad, "%s: write failed: %s", who(st), kw_strerror((int)w));
			kw_stream_reset(st->s);
			return false;
		}
		if (w == 0)
			return false;  /* on_writable continues */
		st->off += (uint32_t)w;
	}
	return true;
}

/* ---- inbound ---------------------------------------------------------------------------- */

static void in_arm_idle(struct kad_st *st)
{
	kw_timer_start(st->ks->loop, &st->timer, CONFIG_KW_NET_KAD_STREAM_IDLE_MS);
}

static void in_bad(struct kad_st *st, const char *what, int err)
{
	KW_LOG_WRN(kad, "%s: %s (%s); resetting the kad stream", who(st), what, kw_strerror(err));
	kw_stream_reset(st->s);
}

/* A whole request is in buf: answer it into buf. Return: 0, or a negative code (reset). */
static int in_answer(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;
	long n;
	int ret;

	if (!ks->k) {
		in_bad(st, "kad is shutting down", -KW_ESHUTDOWN);
		return -KW_ESHUTDOWN;
	}
	n = kw_kad_msg_decode(st->buf, st->len, ks->req);
	if (n < 0) {
		in_bad(st, "malformed kad request", (int)n);
		return (int)n;
	}
	ret = kw_kad_handle_request(ks->k, kw_conn_peer_id(kw_stream_conn(st->s)), ks->req,
				    ks->resp);
	if (ret == KW_KAD_NO_REPLY) {
		st->len = 0;   /* ADD_PROVIDER: served, nothing goes back */
		st->off = 0;
		st->phase = PH_WRITE;
		return 0;
	}
	if (ret < 0) {
		in_bad(st, ret == -KW_ELIMIT ? "kad requests over the rate limit" :
			   ret == -KW_EBADMSG ? "bad kad request" : "kad request not served", ret);
		return ret;
	}
	n = kw_kad_msg_encode(ks->resp, st->buf, MSG_BUF);
	if (n < 0) {
		KW_LOG_ERR(kad, "%s: cannot encode our kad answer: %s", who(st),
			   kw_strerror((int)n));
		kw_stream_reset(st->s);
		return (int)n;
	}
	st->len = (uint32_t)n;
	st->off = 0;
	st->phase = PH_WRITE;
	return 0;
}

static size_t in_data(struct kw_stream *s, const uint8_t *data, size_t n)
{
	struct kad_st *st = (struct kad_st *)s->user;
	size_t used = 0;

	while (used < n) {
		int r;

		if (st->phase != PH_READ)
			return used;  /* the answer is still being written: leave the rest in yamux */
		used += take_msg(st, data + used, n - used, &r);
		if (r == -KW_EAGAIN)
			return used;  /* waiting for a buffer: the grant task resumes the stream */
		if (r < 0) {
			in_bad(st, r == -KW_EMSGSIZE ? "kad message over the size limit" :
				   "bad kad length prefix", r);
			return n;
		}
		if (r == 0)
			continue;
		if (in_answer(st) < 0)
			return n;
		if (!flush(st))
			return used;  /* on_writable finishes it and resumes the stream */
		buf_put(st);
		read_reset(st);
		in_arm_idle(st);
	}
	return used;
}

static void in_writable(struct kw_stream *s)
{
	struct kad_st *st = (struct kad_st *)s->user;

	if (st->phase != PH_WRITE || !flush(st))
		return;
	buf_put(st);
	read_reset(st);
	if (st->eof) {
		kw_stream_close_write(s);
		return;
	}
	in_arm_idle(st);
	kw_stream_resume(s);  /* the next request, if the peer sent one */
}

static void in_eof(struct kw_stream *s)
{
	struct kad_st *st = (struct kad_st *)s->user;

	/* the peer sent its last request; a half-read one will never complete */
	if (st->phase == PH_READ && st->len)
		KW_LOG_DBG(kad, "%s: kad stream ended inside a message", who(st));
	st->eof = true;
	if (st->phase == PH_READ)
		kw_stream_close_write(s);  /* else once the last answer is written */
}

static void st_close(struct kw_stream *s, int reason)
{
	struct kad_st *st = (struct kad_st *)s->user;

	st->s = NULL;
	if (st->role == ROLE_OUT) {
		if (!st->replied)
			out_finish(st, reason ? reason : -KW_ECONNRESET, NULL);  /* frees st */
		else if (!st->pending)
			st_free(st);
		return;
	}
	st_free(st);
}

static void on_in_idle(struct kw_loop *l, struct kw_timer *t)
{
	struct kad_st *st = (struct kad_st *)t->arg;

	KW_LOG_DBG(kad, "%s: kad stream idle for %u ms; resetting it", who(st),
		   (unsigned)CONFIG_KW_NET_KAD_STREAM_IDLE_MS);
	if (st->s)
		kw_stream_reset(st->s);
}

static const struct kw_stream_handler in_h = {
	.on_data = in_data,
	.on_eof = in_eof,
	.on_writable = in_writable,
	.on_close = st_close,
};

static struct kad_st *st_take(struct kad_sw *ks, enum st_role role, kw_timer_fn tf)
{
	struct kad_st *st = (struct kad_st *)kw_pool_alloc(&ks->states);

	if (!st)
		return NULL;
	/* the header only: the inline request is written before it is read */
	memset(st, 0, offsetof(struct kad_st, small));
	st->ks = ks;
	st->role = (uint8_t)role;
	kw_timer_init(&st->timer, tf, st);
	return st;
}

static int accept_kad(struct kw_swarm *sw, struct kw_stream *s, void *arg)
{
	struct kad_sw *ks = (struct kad_sw *)arg;
	struct kad_st *st = st_take(ks, ROLE_IN, on_in_idle);

	if (!st)
		return -KW_ELIMIT;  /* the swarm resets the stream and logs it */
	st->s = s;
	s->h = &in_h;
	s->user = st;
	in_arm_idle(st);
	return 0;
}

/* ---- outbound --------------------------------------------------------------------------- */

static size_t out_data(struct kw_stream *s, const uint8_t *data, size_t n)
{
	struct kad_st *st = (struct kad_st *)s->user;
	size_t used;
	long m;
	int r;

	if (st->phase != PH_READ)
		return n;  /* done (or still writing: a peer answering early is ignored) */
	used = take_msg(st, data, n, &r);
	if (r == -KW_EAGAIN)
		return used;  /* waiting for a buffer */
	if (r < 0) {
		KW_LOG_WRN(kad, "%s: kad answer %s; dropping it", who(st),
			   r == -KW_EMSGSIZE ? "over the size limit" : "with a bad length prefix");
		out_finish(st, r, NULL);
		return n;
	}
	if (r == 0)
		return used;
	m = kw_kad_msg_decode(st->buf, st->len, st->ks->resp);
	if (m < 0) {
		KW_LOG_WRN(kad, "%s: malformed kad answer: %s", who(st), kw_strerror((int)m));
		out_finish(st, (int)m, NULL);
		return n;
	}
	out_finish(st, 0, st->ks->resp);
	return n;
}

static void out_send_done(struct kad_st *st)
{
	kw_stream_close_write(st->s);  /* one request per stream: the peer may close after it */
	buf_put(st);  /* a PUT_VALUE's buffer; the answer borrows one when it arrives */
	read_reset(st);
	if (st->no_reply)
		out_finish(st, 0, NULL);  /* ADD_PROVIDER has no answer on the wire */
}

static void out_writable(struct kw_stream *s)
{
	struct kad_st *st = (struct kad_st *)s->user;

	if (st->phase == PH_WRITE && flush(st))
		out_send_done(st);
}

static void out_eof(struct kw_stream *s)
{
	struct kad_st *st = (struct kad_st *)s->user;

	if (!st->replied)
		out_finish(st, -KW_ECONNRESET, NULL);  /* closed without (a whole) answer */
}

static const struct kw_stream_handler out_h = {
	.on_data = out_data,
	.on_eof = out_eof,
	.on_writable = out_writable,
	.on_close = st_close,
};

static void out_opened(struct kw_stream *s, int err, void *user)
{
	struct kad_st *st = (struct kad_st *)user;

	st->pending = false;
	if (err < 0) {
		if (!st->replied)
			out_finish(st, err, NULL);
		else
			st_free(st);
		return;
	}
	st->s = s;
	if (st->replied) {  /* timed out while negotiating */
		kw_stream_reset(s);
		return;
	}
	st->phase = PH_WRITE;
	if (flush(st))
		out_send_done(st);
}

static int out_open(struct kad_st *st, struct kw_conn *c)
{
	int ret;

	st->phase = PH_OPEN;
	st->pending = true;
	ret = kw_swarm_open_stream(st->ks->sw, c, KW_KAD_PROTOCOL, &out_h, st, out_opened);
	if (ret < 0)
		st->pending = false;
	return ret;
}

static int out_dial_next(struct kad_st *st);

static void out_dialed(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct kad_st *st = (struct kad_st *)user;
	int ret;

	st->pending = false;
	if (st->replied) {  /* timed out while dialing */
		st_free(st);
		return;
	}
	if (err < 0) {
		KW_LOG_DBG(kad, "dial for a kad request failed: %s", kw_strerror(err));
		ret = out_dial_next(st);
		if (ret < 0)
			out_finish(st, err, NULL);
		return;
	}
	ret = out_open(st, c);
	if (ret < 0)
		out_finish(st, ret, NULL);
}

/* Dials the next address; 0 when a dial is under way, else the reason none could start. */
static int out_dial_next(struct kad_st *st)
{
	struct kad_sw *ks = st->ks;
	int ret = -KW_ENOTCONN;

	while (st->next_addr < st->naddrs) {
		const struct kw_kad_rt_addr *a = &st->addrs[st->next_addr++];

		if (kw_maddr_from_bytes(a->bytes, a->len, &ks->ma, NULL, 0) < 0 ||
		    kw_maddr_append_peer_id(&ks->ma, &st->peer) < 0 ||
		    kw_maddr_to_text(&ks->ma, ks->text, sizeof(ks->text)) < 0)
			continue;
		st->phase = PH_DIAL;
		st->pending = true;
		ret = kw_swarm_dial(ks->sw, ks->text, out_dialed, st);
		if (ret == 0)
			return 0;
		st->pending = false;
	}
	return ret;
}

static void on_out_timeout(struct kw_loop *l, struct kw_timer *t)
{
	struct kad_st *st = (struct kad_st *)t->arg;

	KW_LOG_DBG(kad, "%s: kad request timed out after %u ms", who(st), st->ks->timeout_ms);
	out_finish(st, -KW_ETIMEDOUT, NULL);
}

static int tr_request(void *t, const struct kw_peer_id *to, const struct kw_kad_rt_addr *addrs,
		      size_t naddrs, const struct kw_kad_msg *req, uint32_t token)
{
	struct kad_sw *ks = (struct kad_sw *)t;
	struct kad_st *st;
	struct kw_conn *c;
	long n;
	size_t i;
	int ret;

	if (!ks->k)
		return -KW_ESHUTDOWN;
	if (kw_peer_id_equal(to, kw_swarm_peer_id(ks->sw)))
		return -KW_EINVAL;
	st = st_take(ks, ROLE_OUT, on_out_timeout);
	if (!st)
		return -KW_ELIMIT;
	n = kw_kad_msg_encode(req, st->small, sizeof(st->small));
	if (n == -KW_ENOSPC) {
		st->buf = (uint8_t *)kw_pool_alloc(&ks->bufs);
		n = st->buf ? kw_kad_msg_encode(req, st->buf, MSG_BUF) : -KW_ELIMIT;
	}
	if (n < 0) {
		st_free(st);
		return (int)n;
	}
	st->len = (uint32_t)n;
	st->token = token;
	st->no_reply = req->type == KW_KAD_ADD_PROVIDER;
	st->peer = *to;
	for (i = 0; i < naddrs && st->naddrs < OUT_ADDRS; i++)
		st->addrs[st->naddrs++] = addrs[i];
	c = kw_swarm_find_conn(ks->sw, to);
	ret = c ? out_open(st, c) : out_dial_next(st);
	if (ret < 0) {
		st_free(st);
		return ret;
	}
	kw_timer_start(ks->loop, &st->timer, ks->timeout_ms);
	return 0;
}

/* ---- admission from identify ------------------------------------------------------------ */

/* A listen address worth dialing: TCP over IPv4/IPv6, not the unspecified address. */
static bool dialable(const struct kw_multiaddr *ma)
{
	static const uint8_t zero[16];
	struct kw_maddr_comp ip, tcp;

	if (ma->n != 2 || kw_maddr_component(ma, 0, &ip) < 0 ||
	    kw_maddr_component(ma, 1, &tcp) < 0 || tcp.code != KW_MA_TCP)
		return false;
	if (ip.code == KW_MA_IP4)
		return memcmp(ip.value, zero, 4) != 0;
	if (ip.code == KW_MA_IP6)
		return memcmp(ip.value, zero, 16) != 0;
	return false;
}

/* Our listen addresses as others dial them (provider records, FIND_NODE for ourselves). */
static size_t tr_self_addrs(void *t, struct kw_multiaddr *out, size_t cap)
{
	struct kad_sw *ks = (struct kad_sw *)t;
	size_t i, n = 0, nl = kw_swarm_listen_count(ks->sw);
	uint8_t b[KW_MADDR_BIN_MAX];
	size_t bl;

	for (i = 0; i < nl && n < cap; i++)
		if (kw_swarm_listen_addr_bin(ks->sw, i, b, sizeof(b), &bl) == 0 &&
		    kw_maddr_from_bytes(b, bl, &out[n], NULL, 0) == 0 && dialable(&out[n]))
			n++;
	return n;
}

static void on_identified(struct kw_identify *id, struct kw_conn *c, bool push, void *arg)
{
	struct kad_sw *ks = (struct kad_sw *)arg;
	const struct kw_identify_remote *r = kw_identify_remote(id, c);
	size_t n = 0, i;

	if (!ks->k)
		return;
	if (!kw_identify_remote_has(id, c, KW_KAD_PROTOCOL)) {
		if (push)
			kw_kad_peer_gone(ks->k, kw_conn_peer_id(c));
		return;
	}
	for (i = 0; i < r->n_addrs && n < KW_ARRAY_SIZE(ks->seen); i++)
		if (kw_maddr_from_bytes(r->addrs[i], r->addr_len[i], &ks->seen[n], NULL, 0) == 0 &&
		    dialable(&ks->seen[n]))
			n++;
	if (n == 0 && kw_conn_outbound(c)) {
		const uint8_t *ra;
		size_t rl;

		/* it listens where we reached it */
		if (kw_conn_remote_addr(c, &ra, &rl) == 0 &&
		    kw_maddr_from_bytes(ra, rl, &ks->seen[0], NULL, 0) == 0)
			n = 1;
	}
	KW_LOG_DBG(kad, "%s serves kad (%zu addresses)", kw_conn_peer_short(c), n);
	kw_kad_peer_seen(ks->k, kw_conn_peer_id(c), ks->seen, n);
}

/* ---- create / destroy ------------------------------------------------------------------- */

int kw_kad_swarm_create(struct kw_swarm *sw, struct kw_identify *id, struct kw_arena *arena,
			const struct kw_kad_cfg *cfg, struct kw_kad **out)
{
	struct kw_node *node = kw_swarm_node(sw);
	struct kw_kad_transport tr;
	struct kad_sw *ks;
	int ret;

	if (!sw || !arena || !cfg || !out)
		return -KW_EINVAL;
	ks = (struct kad_sw *)kw_arena_alloc(arena, sizeof(*ks), 16);
	if (!ks)
		return -KW_ENOMEM;
	memset(ks, 0, sizeof(*ks));
	ks->sw = sw;
	ks->id = id;
	ks->loop = &node->loop;
	ks->client = cfg->client_mode;
	ks->timeout_ms = cfg->query_timeout_ms ? cfg->query_timeout_ms :
			 KAD_QUERY_TIMEOUT_MS;
	ks->req = (struct kw_kad_msg *)kw_arena_alloc(arena, sizeof(struct kw_kad_msg), 16);
	ks->resp = (struct kw_kad_msg *)kw_arena_alloc(arena, sizeof(struct kw_kad_msg), 16);
	if (!ks->req || !ks->resp)
		return -KW_ENOMEM;
	ret = kw_node_pool_create(node, &ks->states, "kad_stream", sizeof(struct kad_st),
				  (size_t)CONFIG_KW_NET_KAD_STREAMS);
	if (ret == 0)
		ret = kw_node_pool_create(node, &ks->bufs, "kad_msg_buf", MSG_BUF,
					  (size_t)CONFIG_KW_NET_KAD_BUFFERS);
	if (ret < 0)
		return ret;
	kw_task_init(&ks->grant, on_grant, ks);
	memset(&tr, 0, sizeof(tr));
	tr.request = tr_request;
	tr.self_addrs = tr_self_addrs;
	tr.t = ks;
	ret = kw_kad_create(ks->loop, arena, cfg, &tr, &ks->k);
	if (ret < 0)
		return ret;
	/* a connection to a kad server keeps its slot under inbound load */
	ret = kw_swarm_protect_protocol(sw, KW_KAD_PROTOCOL);
	if (ret == 0 && !ks->client)
		ret = kw_swarm_register(sw, KW_KAD_PROTOCOL, accept_kad, ks);
	if (ret < 0) {
		kw_kad_destroy(ks->k);
		return ret;
	}
	if (id) {
		ks->obs.on_identified = on_identified;
		ks->obs.arg = ks;
		kw_identify_add_observer(id, &ks->obs);
	}
	ks->next = g_transports;
	g_transports = ks;
	*out = ks->k;
	return 0;
}

void kw_kad_swarm_destroy(struct kw_kad *k)
{
	struct kad_sw **pp, *ks = NULL;

	for (pp = &g_transports; *pp; pp = &(*pp)->next)
		if ((*pp)->k == k) {
			ks = *pp;
			*pp = ks->next;
			break;
		}
	if (!ks)
		return;
	/* the core cancels its operations; from here the transport reports nothing, answers
	 * nothing (inbound requests reset their stream), and the swarm's own destruction closes
	 * the streams and returns their states */
	kw_kad_destroy(k);
	ks->k = NULL;
}
