/*
 * The protobuf messages of the Hivemind DHT (include/kw/net/hivemind_dht.h, part 1):
 * proto/hivemind/dht.proto = learning-at-home/hivemind `hivemind/proto/dht.proto` @ 4bd43b7.
 *
 * Every variable-length or repeated field is a nanopb callback (proto/hivemind/dht.options):
 * decoding fills fixed arrays of views into the input, bounded by Kconfig, and names the
 * field that is wrong; encoding writes what Python's protobuf writes (proto3 defaults left
 * out, repeated doubles and bools packed, `peer` present even when its node_id is empty).
 *
 * Owner: net/hivemind. Pure functions, no state.
 */
#include <stdint.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include <kw/err.h>
#include <kw/net/hivemind_dht.h>

#include "hivemind/dht.pb.h"

/* nanopb callbacks take a non-const arg; the encoder only reads through it. */
static void *unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

/* ---- decoding ------------------------------------------------------------------------ */

struct dctx {
	const char *why;   /* first problem found by a callback (static text) */
	int err;           /* its code */
	const uint8_t *in; /* the message: every view must lie inside */
	size_t in_len;
};

static bool fail(struct dctx *c, int err, const char *why)
{
	if (!c->err) {
		c->err = err;
		c->why = why;
	}
	return false;
}

/* Reads a length-delimited field as a view into the input buffer: nanopb's memory stream
 * keeps `state` pointing at the next unread byte. A bytes field sent with another wire type
 * reaches the callback as a copy in nanopb's scratch space: refused, never viewed. */
static bool take_view(struct dctx *c, pb_istream_t *st, struct kw_hm_bytes *out)
{
	const uint8_t *p = st->state;
	size_t n = st->bytes_left;

	if (p < c->in || p > c->in + c->in_len || n > (size_t)(c->in + c->in_len - p))
		return fail(c, -KW_EBADMSG, "bytes field with a wrong wire type");
	out->p = n ? p : NULL;
	out->len = n;
	return pb_read(st, NULL, n);
}

struct views_arg {
	struct dctx *c;
	struct kw_hm_bytes *v;
	uint32_t *n;
	uint32_t cap;
	size_t max_len;       /* 0: any */
	const char *too_many, *too_long;
	int too_long_err;
};

static bool dec_views(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct views_arg *a = *arg;
	struct kw_hm_bytes b;

	(void)f;
	if (*a->n >= a->cap)
		return fail(a->c, -KW_ELIMIT, a->too_many);
	if (!take_view(a->c, st, &b))
		return false;
	if (a->max_len && b.len > a->max_len)
		return fail(a->c, a->too_long_err, a->too_long);
	a->v[(*a->n)++] = b;
	return true;
}

struct scalars_arg {
	struct dctx *c;
	void *v;              /* double[] or bool[] */
	uint32_t *n;
	uint32_t cap;
	bool is_double;
	const char *too_many;
};

/* Called once per element: nanopb loops over a packed array's substream itself. */
static bool dec_scalars(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct scalars_arg *a = *arg;
	uint64_t u;

	(void)f;
	if (*a->n >= a->cap)
		return fail(a->c, -KW_ELIMIT, a->too_many);
	if (a->is_double) {
		double d;

		if (!pb_decode_fixed64(st, &u))
			return false;
		memcpy(&d, &u, sizeof(d));
		((double *)a->v)[(*a->n)++] = d;
	} else {
		if (!pb_decode_varint(st, &u))
			return false;
		((bool *)a->v)[(*a->n)++] = u != 0;
	}
	return true;
}

struct view1_arg {
	struct dctx *c;
	struct kw_hm_bytes *v;
};

static bool dec_view1(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct view1_arg *a = *arg;

	(void)f;
	return take_view(a->c, st, a->v);
}

struct node_arg {
	struct dctx *c;
	struct kw_hm_dht_peer *p;
};

static bool dec_node_id(pb_istream_t *st, const pb_field_t *f, void **arg)
{
	struct node_arg *a = *arg;

	(void)f;
	if (!take_view(a->c, st, &a->p->node_id))
		return false;
	if (a->p->node_id.len > KW_HM_DHTID_LEN)
		return fail(a->c, -KW_EPROTO, "peer.node_id longer than 20 bytes");
	return true;
}

static void set_node(kw_hivemind_NodeInfo *ni, struct node_arg *na, struct dctx *c,
		     struct kw_hm_dht_peer *p)
{
	na->c = c;
	na->p = p;
	ni->node_id.funcs.decode = dec_node_id;
	ni->node_id.arg = na;
}

static void views(struct views_arg *a, struct dctx *c, struct kw_hm_bytes *v, uint32_t *n,
		  uint32_t cap, size_t max_len, const char *too_many, const char *too_long)
{
	memset(a, 0, sizeof(*a));
	a->c = c;
	a->v = v;
	a->n = n;
	a->cap = cap;
	a->max_len = max_len;
	a->too_many = too_many;
	a->too_long = too_long;
	a->too_long_err = -KW_EPROTO;
}

static int finish(bool ok, pb_istream_t *st, struct dctx *c, const char **why)
{
	if (ok && st->bytes_left == 0) {
		if (why)
			*why = "";
		return 0;
	}
	if (!c->err) {
		c->err = -KW_EBADMSG;
		c->why = "malformed protobuf";
	}
	if (why)
		*why = c->why;
	return c->err;
}

int kw_hm_dht_find_result_decode(const uint8_t *buf, size_t len,
				 struct kw_hm_dht_find_result *r, const char **why)
{
	kw_hivemind_FindResult m = kw_hivemind_FindResult_init_zero;
	struct dctx c = { "", 0, buf, len };
	struct views_arg nodes, peers;
	struct view1_arg va = { &c, &r->value };
	pb_istream_t st = pb_istream_from_buffer(buf, len);
	bool ok;

	memset(r, 0, sizeof(*r));
	/* value is singular: a repeated field number keeps the last one, as protobuf does */
	m.value.funcs.decode = dec_view1;
	m.value.arg = &va;
	views(&nodes, &c, r->node_ids, &r->n_node_ids, KW_HM_DHT_MAX_NEAREST, KW_HM_DHTID_LEN,
	      "more nearest_node_ids than KW_NET_HIVEMIND_DHT_MAX_NEAREST",
	      "nearest_node_ids entry longer than 20 bytes");
	m.nearest_node_ids.funcs.decode = dec_views;
	m.nearest_node_ids.arg = &nodes;
	views(&peers, &c, r->peer_ids, &r->n_peer_ids, KW_HM_DHT_MAX_NEAREST, KW_HM_DHT_PEER_ID_MAX,
	      "more nearest_peer_ids than KW_NET_HIVEMIND_DHT_MAX_NEAREST",
	      "nearest_peer_ids entry longer than 64 bytes");
	m.nearest_peer_ids.funcs.decode = dec_views;
	m.nearest_peer_ids.arg = &peers;
	ok = pb_decode(&st, kw_hivemind_FindResult_fields, &m);
	r->type = (uint32_t)m.type;
	r->expiration = m.expiration_time;
	return finish(ok, &st, &c, why);
}

int kw_hm_dht_decode(int kind, const uint8_t *buf, size_t len, void *out, const char **why)
{
	pb_istream_t st = pb_istream_from_buffer(buf, len);
	struct dctx c = { "", 0, buf, len };
	struct node_arg na;
	bool ok = false;

	switch (kind) {
	case KW_HM_DHT_PING_REQ: {
		struct kw_hm_dht_ping_req *r = out;
		kw_hivemind_PingRequest m = kw_hivemind_PingRequest_init_zero;

		memset(r, 0, sizeof(*r));
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_PingRequest_fields, &m);
		r->peer.present = m.has_peer;
		r->validate = m.validate;
		break;
	}
	case KW_HM_DHT_PING_RESP: {
		struct kw_hm_dht_ping_resp *r = out;
		kw_hivemind_PingResponse m = kw_hivemind_PingResponse_init_zero;

		memset(r, 0, sizeof(*r));
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_PingResponse_fields, &m);
		r->peer.present = m.has_peer;
		r->dht_time = m.dht_time;
		r->available = m.available;
		break;
	}
	case KW_HM_DHT_STORE_REQ: {
		struct kw_hm_dht_store_req *r = out;
		kw_hivemind_StoreRequest m = kw_hivemind_StoreRequest_init_zero;
		struct views_arg k, s, v;
		struct scalars_arg e = { &c, r->exp, &r->n_exp, KW_HM_DHT_MAX_KEYS, true,
					 "more expiration_time than KW_NET_HIVEMIND_DHT_MAX_KEYS" };
		struct scalars_arg ic = { &c, r->in_cache, &r->n_in_cache, KW_HM_DHT_MAX_KEYS,
					  false, "more in_cache than KW_NET_HIVEMIND_DHT_MAX_KEYS" };

		memset(r, 0, sizeof(*r));
		e.v = r->exp;
		e.n = &r->n_exp;
		ic.v = r->in_cache;
		ic.n = &r->n_in_cache;
		views(&k, &c, r->keys, &r->n_keys, KW_HM_DHT_MAX_KEYS, KW_HM_DHTID_LEN,
		      "more keys than KW_NET_HIVEMIND_DHT_MAX_KEYS", "key longer than 20 bytes");
		views(&s, &c, r->subkeys, &r->n_subkeys, KW_HM_DHT_MAX_KEYS, 0,
		      "more subkeys than KW_NET_HIVEMIND_DHT_MAX_KEYS", "");
		views(&v, &c, r->values, &r->n_values, KW_HM_DHT_MAX_KEYS, 0,
		      "more values than KW_NET_HIVEMIND_DHT_MAX_KEYS", "");
		m.keys.funcs.decode = dec_views;
		m.keys.arg = &k;
		m.subkeys.funcs.decode = dec_views;
		m.subkeys.arg = &s;
		m.values.funcs.decode = dec_views;
		m.values.arg = &v;
		m.expiration_time.funcs.decode = dec_scalars;
		m.expiration_time.arg = &e;
		m.in_cache.funcs.decode = dec_scalars;
		m.in_cache.arg = &ic;
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_StoreRequest_fields, &m);
		r->peer.present = m.has_peer;
		break;
	}
	case KW_HM_DHT_STORE_RESP: {
		struct kw_hm_dht_store_resp *r = out;
		kw_hivemind_StoreResponse m = kw_hivemind_StoreResponse_init_zero;
		struct scalars_arg so = { &c, NULL, NULL, KW_HM_DHT_MAX_KEYS, false,
					  "more store_ok than KW_NET_HIVEMIND_DHT_MAX_KEYS" };

		memset(r, 0, sizeof(*r));
		so.v = r->store_ok;
		so.n = &r->n;
		m.store_ok.funcs.decode = dec_scalars;
		m.store_ok.arg = &so;
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_StoreResponse_fields, &m);
		r->peer.present = m.has_peer;
		break;
	}
	case KW_HM_DHT_FIND_REQ: {
		struct kw_hm_dht_find_req *r = out;
		kw_hivemind_FindRequest m = kw_hivemind_FindRequest_init_zero;
		struct views_arg k;

		memset(r, 0, sizeof(*r));
		views(&k, &c, r->keys, &r->n_keys, KW_HM_DHT_MAX_KEYS, KW_HM_DHTID_LEN,
		      "more keys than KW_NET_HIVEMIND_DHT_MAX_KEYS", "key longer than 20 bytes");
		m.keys.funcs.decode = dec_views;
		m.keys.arg = &k;
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_FindRequest_fields, &m);
		r->peer.present = m.has_peer;
		break;
	}
	case KW_HM_DHT_FIND_RESP: {
		struct kw_hm_dht_find_resp *r = out;
		kw_hivemind_FindResponse m = kw_hivemind_FindResponse_init_zero;
		struct views_arg res;

		memset(r, 0, sizeof(*r));
		views(&res, &c, r->raw, &r->n_results, KW_HM_DHT_MAX_KEYS, 0,
		      "more results than KW_NET_HIVEMIND_DHT_MAX_KEYS", "");
		m.results.funcs.decode = dec_views;
		m.results.arg = &res;
		set_node(&m.peer, &na, &c, &r->peer);
		ok = pb_decode(&st, kw_hivemind_FindResponse_fields, &m);
		r->peer.present = m.has_peer;
		break;
	}
	case KW_HM_DHT_FIND_RESULT:
		return kw_hm_dht_find_result_decode(buf, len, out, why);
	default:
		if (why)
			*why = "unknown message kind";
		return -KW_EINVAL;
	}
	return finish(ok, &st, &c, why);
}

int kw_hm_dht_store_req_check(const struct kw_hm_dht_store_req *r, const char **why)
{
	const char *w = "";

	if (r->n_values != r->n_keys)
		w = "values and keys differ in number";
	else if (r->n_exp != r->n_keys)
		w = "expiration_time and keys differ in number";
	else if (r->n_in_cache != r->n_keys)
		w = "in_cache and keys differ in number";
	else if (r->n_subkeys != r->n_keys)
		w = "subkeys and keys differ in number";
	if (why)
		*why = w;
	return w[0] ? -KW_EPROTO : 0;
}

/* ---- encoding ------------------------------------------------------------------------ */

struct enc_views {
	const struct kw_hm_bytes *v;
	uint32_t n;
};

/* Every element, even an empty one (Python writes each element of a repeated bytes). */
static bool enc_views(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct enc_views *a = *arg;

	for (uint32_t i = 0; i < a->n; i++)
		if (!pb_encode_tag_for_field(st, f) ||
		    !pb_encode_string(st, a->v[i].p, a->v[i].len))
			return false;
	return true;
}

/* A singular proto3 bytes field: left out when empty. */
static bool enc_view1(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct kw_hm_bytes *b = *arg;

	if (!b->len)
		return true;
	return pb_encode_tag_for_field(st, f) && pb_encode_string(st, b->p, b->len);
}

struct enc_scalars {
	const void *v;
	uint32_t n;
	bool is_double;
};

/* Packed, as Python writes proto3 repeated scalars; nothing for an empty array. */
static bool enc_packed(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct enc_scalars *a = *arg;
	size_t body;

	if (!a->n)
		return true;
	body = a->is_double ? 8u * a->n : a->n;  /* a bool's varint is one byte */
	if (!pb_encode_tag(st, PB_WT_STRING, f->tag) || !pb_encode_varint(st, body))
		return false;
	for (uint32_t i = 0; i < a->n; i++) {
		if (a->is_double) {
			double d = ((const double *)a->v)[i];

			if (!pb_encode_fixed64(st, &d))
				return false;
		} else if (!pb_encode_varint(st, ((const bool *)a->v)[i] ? 1 : 0)) {
			return false;
		}
	}
	return true;
}

static int put_node(kw_hivemind_NodeInfo *ni, bool *has, const struct kw_hm_dht_peer *p)
{
	if (!p->present)
		return 0;
	if (p->node_id.len > KW_HM_DHTID_LEN || (!p->node_id.p && p->node_id.len))
		return -KW_EINVAL;
	*has = true;
	ni->node_id.funcs.encode = enc_view1;
	ni->node_id.arg = unconst(&p->node_id);
	return 0;
}

static bool bad_views(const struct kw_hm_bytes *v, uint32_t n, size_t max_len)
{
	for (uint32_t i = 0; i < n; i++)
		if ((!v[i].p && v[i].len) || (max_len && v[i].len > max_len))
			return true;
	return false;
}

static long run_encode(const pb_msgdesc_t *fields, const void *m, uint8_t *buf, size_t cap)
{
	size_t need;
	pb_ostream_t os;

	if (!pb_get_encoded_size(&need, fields, m))
		return -KW_EINVAL;
	if (need > cap)
		return -KW_ENOSPC;
	os = pb_ostream_from_buffer(buf, cap);
	if (!pb_encode(&os, fields, m))
		return -KW_EINVAL;
	return (long)os.bytes_written;
}

/* FindResult with its callbacks, for FindResponse.results and tests. */
struct enc_result {
	kw_hivemind_FindResult m;
	struct enc_views nodes, peers;
};

static int prep_result(const struct kw_hm_dht_find_result *r, struct enc_result *e)
{
	if (r->n_node_ids > KW_HM_DHT_MAX_NEAREST || r->n_peer_ids > KW_HM_DHT_MAX_NEAREST ||
	    bad_views(r->node_ids, r->n_node_ids, KW_HM_DHTID_LEN) ||
	    bad_views(r->peer_ids, r->n_peer_ids, 0) || (!r->value.p && r->value.len))
		return -KW_EINVAL;
	memset(e, 0, sizeof(*e));
	e->m.type = (kw_hivemind_ResultType)r->type;
	e->m.value.funcs.encode = enc_view1;
	e->m.value.arg = unconst(&r->value);
	e->m.expiration_time = r->expiration;
	e->nodes.v = r->node_ids;
	e->nodes.n = r->n_node_ids;
	e->m.nearest_node_ids.funcs.encode = enc_views;
	e->m.nearest_node_ids.arg = &e->nodes;
	e->peers.v = r->peer_ids;
	e->peers.n = r->n_peer_ids;
	e->m.nearest_peer_ids.funcs.encode = enc_views;
	e->m.nearest_peer_ids.arg = &e->peers;
	return 0;
}

struct enc_results {
	const struct kw_hm_dht_find_result *r;
	uint32_t n;
};

static bool enc_results(pb_ostream_t *st, const pb_field_t *f, void *const *arg)
{
	const struct enc_results *a = *arg;
	struct enc_result e;

	for (uint32_t i = 0; i < a->n; i++) {
		if (prep_result(&a->r[i], &e))
			return false;
		if (!pb_encode_tag_for_field(st, f) ||
		    !pb_encode_submessage(st, kw_hivemind_FindResult_fields, &e.m))
			return false;
	}
	return true;
}

long kw_hm_dht_encode(int kind, const void *in, uint8_t *buf, size_t cap)
{
	switch (kind) {
	case KW_HM_DHT_PING_REQ: {
		const struct kw_hm_dht_ping_req *r = in;
		kw_hivemind_PingRequest m = kw_hivemind_PingRequest_init_zero;

		if (put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		m.validate = r->validate;
		return run_encode(kw_hivemind_PingRequest_fields, &m, buf, cap);
	}
	case KW_HM_DHT_PING_RESP: {
		const struct kw_hm_dht_ping_resp *r = in;
		kw_hivemind_PingResponse m = kw_hivemind_PingResponse_init_zero;

		if (put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		m.dht_time = r->dht_time;
		m.available = r->available;
		return run_encode(kw_hivemind_PingResponse_fields, &m, buf, cap);
	}
	case KW_HM_DHT_STORE_REQ: {
		const struct kw_hm_dht_store_req *r = in;
		kw_hivemind_StoreRequest m = kw_hivemind_StoreRequest_init_zero;
		struct enc_views k = { r->keys, r->n_keys }, s = { r->subkeys, r->n_subkeys },
				 v = { r->values, r->n_values };
		struct enc_scalars e = { r->exp, r->n_exp, true },
				   ic = { r->in_cache, r->n_in_cache, false };

		if (r->n_keys > KW_HM_DHT_MAX_KEYS || r->n_subkeys > KW_HM_DHT_MAX_KEYS ||
		    r->n_values > KW_HM_DHT_MAX_KEYS ||
		    bad_views(r->keys, r->n_keys, KW_HM_DHTID_LEN) ||
		    bad_views(r->subkeys, r->n_subkeys, 0) || bad_views(r->values, r->n_values, 0) ||
		    r->n_exp > KW_HM_DHT_MAX_KEYS || r->n_in_cache > KW_HM_DHT_MAX_KEYS ||
		    put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		m.keys.funcs.encode = enc_views;
		m.keys.arg = &k;
		m.subkeys.funcs.encode = enc_views;
		m.subkeys.arg = &s;
		m.values.funcs.encode = enc_views;
		m.values.arg = &v;
		m.expiration_time.funcs.encode = enc_packed;
		m.expiration_time.arg = &e;
		m.in_cache.funcs.encode = enc_packed;
		m.in_cache.arg = &ic;
		return run_encode(kw_hivemind_StoreRequest_fields, &m, buf, cap);
	}
	case KW_HM_DHT_STORE_RESP: {
		const struct kw_hm_dht_store_resp *r = in;
		kw_hivemind_StoreResponse m = kw_hivemind_StoreResponse_init_zero;
		struct enc_scalars so = { r->store_ok, r->n, false };

		if (r->n > KW_HM_DHT_MAX_KEYS || put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		m.store_ok.funcs.encode = enc_packed;
		m.store_ok.arg = &so;
		return run_encode(kw_hivemind_StoreResponse_fields, &m, buf, cap);
	}
	case KW_HM_DHT_FIND_REQ: {
		const struct kw_hm_dht_find_req *r = in;
		kw_hivemind_FindRequest m = kw_hivemind_FindRequest_init_zero;
		struct enc_views k = { r->keys, r->n_keys };

		if (r->n_keys > KW_HM_DHT_MAX_KEYS ||
		    bad_views(r->keys, r->n_keys, KW_HM_DHTID_LEN) ||
		    put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		m.keys.funcs.encode = enc_views;
		m.keys.arg = &k;
		return run_encode(kw_hivemind_FindRequest_fields, &m, buf, cap);
	}
	case KW_HM_DHT_FIND_RESP: {
		const struct kw_hm_dht_find_resp *r = in;
		kw_hivemind_FindResponse m = kw_hivemind_FindResponse_init_zero;
		struct enc_results res = { r->results, r->n_results };
		struct enc_result probe;

		if (r->n_results > KW_HM_DHT_MAX_KEYS || (r->n_results && !r->results) ||
		    put_node(&m.peer, &m.has_peer, &r->peer))
			return -KW_EINVAL;
		for (uint32_t i = 0; i < r->n_results; i++)
			if (prep_result(&r->results[i], &probe))
				return -KW_EINVAL;
		m.results.funcs.encode = enc_results;
		m.results.arg = &res;
		return run_encode(kw_hivemind_FindResponse_fields, &m, buf, cap);
	}
	case KW_HM_DHT_FIND_RESULT: {
		struct enc_result e;

		if (prep_result(in, &e))
			return -KW_EINVAL;
		return run_encode(kw_hivemind_FindResult_fields, &e.m, buf, cap);
	}
	default:
		return -KW_EINVAL;
	}
}
