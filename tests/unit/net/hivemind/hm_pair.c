/*
 * The two- or three-node fixture of the net/hivemind tests and its pieces (hm_pair.h).
 */
#include "hm_pair.h"

#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/node.h>
#include <kw/sim.h>

int kw_hm_test_node(struct kw_test_net *net, size_t arena_kib, const struct kw_swarm_limits *sl,
		    const struct kw_hm_limits *lim, struct kw_test_node **t, struct kw_privkey *key,
		    struct kw_swarm **sw, struct kw_hm **hm)
{
	int ret = kw_swarm_test_node(net, arena_kib, sl, t, key, sw);

	if (ret == 0)
		ret = kw_hm_create(*sw, lim, hm);
	return ret;
}

/* static, not on the stack: a dial still pending after the pumps completes later */
static struct dial_state {
	int done, err;
	struct kw_conn *conn;
} g_dial;

static void on_test_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct dial_state *d = user;

	d->done++;
	d->err = err;
	d->conn = c;
}

struct kw_conn *kw_hm_test_dial(struct kw_test_node *const *t, int n, struct kw_swarm *from,
				const char *to)
{
	struct dial_state *d = &g_dial;

	memset(d, 0, sizeof(*d));
	if (kw_swarm_dial(from, to, on_test_dial, d) < 0)
		return NULL;
	kw_swarm_test_pump(t, n, 50);
	return d->done == 1 && d->err == 0 ? d->conn : NULL;
}

void kw_hm_test_on_result(const struct kw_hm_result *r, void *user)
{
	struct kw_hm_test_result *res = user;

	res->done++;
	res->err = r->err;
	res->remote_error = r->remote_error;
	res->len = KW_MIN(r->len, sizeof(res->data));
	if (r->len)
		memcpy(res->data, r->data, res->len);
}

/* ---- the pair ------------------------------------------------------------------------------ */

static int make_side(struct kw_hm_pair *p, struct kw_hm_side *s, const char *listen,
		     const struct kw_hm_limits *lim, size_t arena_kib)
{
	int ret = kw_hm_test_node(p->net, arena_kib, NULL, lim, &s->t, &s->key, &s->sw, &s->hm);

	if (ret == 0)
		ret = kw_swarm_test_listen(s->sw, listen, s->addr, sizeof(s->addr));
	return ret;
}

int kw_hm_pair_init(struct kw_hm_pair *p, int sides, const struct kw_hm_limits *lim,
		    size_t arena_kib)
{
	int ret;

	p->n_sides = sides;
	p->net = kw_test_net_new(64, 1 << 18);
	if (!p->net)
		return -KW_ENOMEM;
	ret = make_side(p, &p->b, "/ip4/127.0.0.1/tcp/4001", lim, arena_kib);
	if (ret == 0)
		ret = make_side(p, &p->a, "/ip4/127.0.0.1/tcp/4002", lim, arena_kib);
	if (ret == 0 && sides == 3)
		ret = make_side(p, &p->c, "/ip4/127.0.0.1/tcp/4003", lim, arena_kib);
	return ret;
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *c, int err, void *user)
{
	struct kw_hm_side *s = user;

	s->dial_done++;
	s->dial_err = err;
	s->conn = c;
}

int kw_hm_pair_connect(struct kw_hm_pair *p)
{
	if (kw_swarm_dial(p->a.sw, p->b.addr, on_dial, &p->a) < 0)
		return -1;
	if (p->n_sides == 3 && kw_swarm_dial(p->c.sw, p->b.addr, on_dial, &p->c) < 0)
		return -1;
	kw_hm_pair_pump(p, 50);
	if (p->a.dial_done != 1 || p->a.dial_err != 0)
		return -1;
	if (p->n_sides == 3 && (p->c.dial_done != 1 || p->c.dial_err != 0))
		return -1;
	return 0;
}

void kw_hm_pair_pump(struct kw_hm_pair *p, int passes)
{
	struct kw_test_node *t[3] = { p->a.t, p->b.t, p->c.t };

	kw_swarm_test_pump(t, p->n_sides, passes);
}

void kw_hm_pair_advance(struct kw_hm_pair *p, uint64_t ms)
{
	kw_sim_advance(p->net->net, ms);
	kw_hm_pair_pump(p, 20);
}

void kw_hm_pair_fini(struct kw_hm_pair *p)
{
	struct kw_test_node *t[3] = { p->a.t, p->b.t, p->c.t };
	struct kw_swarm *sw[3] = { p->a.sw, p->b.sw, p->c.sw };

	kw_swarm_test_free(p->net, t, sw, p->n_sides, 4);
}

static size_t raw_data(struct kw_stream *s, const uint8_t *d, size_t n) { return n; }

static void raw_close(struct kw_stream *s, int r)
{
	struct kw_hm_pair *p = s->user;

	p->raw_closed++;
	p->raw_close_reason = r;
	p->raw = NULL;
}

static const struct kw_stream_handler raw_h = { .on_data = raw_data, .on_close = raw_close };

static void raw_open(struct kw_stream *s, int err, void *user)
{
	struct kw_hm_pair *p = user;

	p->raw_open_err = err;
	p->raw = s;
}

void kw_hm_pair_send_raw(struct kw_hm_pair *p, const char *name, const uint8_t *b, size_t n)
{
	assert_int_equal(kw_swarm_open_stream(p->a.sw, p->a.conn, name, &raw_h, p, raw_open), 0);
	kw_hm_pair_pump(p, 30);
	assert_int_equal(p->raw_open_err, 0);
	assert_int_equal(kw_stream_write(p->raw, b, n), (long)n);
	kw_hm_pair_pump(p, 30);
}
