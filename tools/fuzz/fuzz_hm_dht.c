/*
 * libFuzzer target: the Hivemind DHT messages (net/hivemind/dht_msg.c) and, from part of the
 * input, a DictionaryDHTValue into the record storage (net/hivemind/dht_store.c). The first
 * byte picks the message type. Whatever decodes must lie inside the input, respect the
 * bounds (counts, 20-byte ids), re-encode, and decode again to the same content; errors must
 * be documented codes with a reason.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[1 << 16];
static union {
	struct kw_hm_dht_ping_req pq;
	struct kw_hm_dht_ping_resp pr;
	struct kw_hm_dht_store_req sq;
	struct kw_hm_dht_store_resp sr;
	struct kw_hm_dht_find_req fq;
	struct kw_hm_dht_find_resp fr;
	struct kw_hm_dht_find_result res;
} a, b;
static struct kw_hm_dht_find_result res;

static void in_input(struct kw_hm_bytes v, const uint8_t *p, size_t n)
{
	if (v.len && (v.p < p || v.p + v.len > p + n))
		__builtin_trap();
}

static void same_views(const struct kw_hm_bytes *x, const struct kw_hm_bytes *y, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (x[i].len != y[i].len || (x[i].len && memcmp(x[i].p, y[i].p, x[i].len)))
			__builtin_trap();
}

static void same_peer(const struct kw_hm_dht_peer *x, const struct kw_hm_dht_peer *y)
{
	if (x->present != y->present || x->node_id.len > KW_HM_DHTID_LEN)
		__builtin_trap();
	same_views(&x->node_id, &y->node_id, 1);
}

static void storage(const uint8_t *d, size_t n)
{
	static uint8_t mem[1 << 18];
	static struct kw_hm_store s;
	struct kw_arena ar;
	struct kw_hm_dhtid key = { { 1 } };
	struct kw_hm_store_found f;
	const char *why = "";
	int r;
	long w;

	kw_arena_init(&ar, mem, sizeof(mem));
	if (kw_hm_store_init(&s, 64, 256, 16, false, &ar))
		__builtin_trap();
	r = kw_hm_store_put_dict(&s, &key, d, n, 1000.0, &why);
	if (r != 0 && r != 1 && r != -KW_EBADMSG && r != -KW_ELIMIT && r != -KW_EMSGSIZE &&
	    r != -KW_ENOSPC && r != -KW_EINVAL)
		__builtin_trap();
	if ((r == -KW_EBADMSG) && !why[0])
		__builtin_trap();
	if (kw_hm_store_get(&s, &key, 1000.0, &f))
		__builtin_trap();
	if (f.type == KW_HM_DHT_FOUND_DICTIONARY) {
		/* what we hold packs, and the packing reads back as a dictionary */
		w = kw_hm_store_pack_dict(&s, &key, 1000.0, out, sizeof(out));
		if (w <= 0)
			__builtin_trap();
		kw_arena_init(&ar, mem, sizeof(mem));
		if (kw_hm_store_init(&s, 64, 256, 16, false, &ar))
			__builtin_trap();
		r = kw_hm_store_put_dict(&s, &key, out, (size_t)w, 1000.0, &why);
		if (r < 0)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	int kind, err;
	long n;

	if (size < 1 || size > 8192)
		return 0;
	kind = data[0] % 8;   /* 0..6: enum kw_hm_dht_msg; 7: a DictionaryDHTValue */
	data++;
	size--;
	if (kind == 7) {
		storage(data, size);
		return 0;
	}
	err = kw_hm_dht_decode(kind, data, size, &a, &why);
	if (err) {
		if (err != -KW_EBADMSG && err != -KW_EPROTO && err != -KW_ELIMIT)
			__builtin_trap();
		if (!why || !why[0])
			__builtin_trap();
		return 0;
	}
	switch (kind) {
	case KW_HM_DHT_STORE_REQ:
		for (uint32_t i = 0; i < a.sq.n_keys; i++) {
			in_input(a.sq.keys[i], data, size);
			if (a.sq.keys[i].len > KW_HM_DHTID_LEN)
				__builtin_trap();
		}
		(void)kw_hm_dht_store_req_check(&a.sq, &why);
		break;
	case KW_HM_DHT_FIND_RESP:
		for (uint32_t i = 0; i < a.fr.n_results; i++) {
			in_input(a.fr.raw[i], data, size);
			if (kw_hm_dht_find_result_decode(a.fr.raw[i].p, a.fr.raw[i].len, &res,
							 &why) == 0 &&
			    (res.n_node_ids > KW_HM_DHT_MAX_NEAREST ||
			     res.n_peer_ids > KW_HM_DHT_MAX_NEAREST))
				__builtin_trap();
		}
		return 0;   /* results are re-encoded from decoded structs, tested below */
	default:
		break;
	}
	n = kw_hm_dht_encode(kind, &a, out, sizeof(out));
	if (n < 0) {
		/* a decoded FindResult with an out-of-range enum still encodes; nothing else fails */
		__builtin_trap();
	}
	if (kw_hm_dht_decode(kind, out, (size_t)n, &b, &why))
		__builtin_trap();
	switch (kind) {
	case KW_HM_DHT_PING_REQ:
		same_peer(&a.pq.peer, &b.pq.peer);
		if (a.pq.validate != b.pq.validate)
			__builtin_trap();
		break;
	case KW_HM_DHT_PING_RESP:
		same_peer(&a.pr.peer, &b.pr.peer);
		if (a.pr.available != b.pr.available ||
		    memcmp(&a.pr.dht_time, &b.pr.dht_time, sizeof(double)))
			__builtin_trap();
		break;
	case KW_HM_DHT_STORE_REQ:
		same_peer(&a.sq.peer, &b.sq.peer);
		if (a.sq.n_keys != b.sq.n_keys || a.sq.n_subkeys != b.sq.n_subkeys ||
		    a.sq.n_values != b.sq.n_values || a.sq.n_exp != b.sq.n_exp ||
		    a.sq.n_in_cache != b.sq.n_in_cache ||
		    memcmp(a.sq.exp, b.sq.exp, a.sq.n_exp * sizeof(double)) ||
		    memcmp(a.sq.in_cache, b.sq.in_cache, a.sq.n_in_cache))
			__builtin_trap();
		same_views(a.sq.keys, b.sq.keys, a.sq.n_keys);
		same_views(a.sq.subkeys, b.sq.subkeys, a.sq.n_subkeys);
		same_views(a.sq.values, b.sq.values, a.sq.n_values);
		break;
	case KW_HM_DHT_STORE_RESP:
		same_peer(&a.sr.peer, &b.sr.peer);
		if (a.sr.n != b.sr.n || memcmp(a.sr.store_ok, b.sr.store_ok, a.sr.n))
			__builtin_trap();
		break;
	case KW_HM_DHT_FIND_REQ:
		same_peer(&a.fq.peer, &b.fq.peer);
		if (a.fq.n_keys != b.fq.n_keys)
			__builtin_trap();
		same_views(a.fq.keys, b.fq.keys, a.fq.n_keys);
		break;
	case KW_HM_DHT_FIND_RESULT:
		if (a.res.type != b.res.type || a.res.n_node_ids != b.res.n_node_ids ||
		    a.res.n_peer_ids != b.res.n_peer_ids ||
		    memcmp(&a.res.expiration, &b.res.expiration, sizeof(double)))
			__builtin_trap();
		same_views(&a.res.value, &b.res.value, 1);
		same_views(a.res.node_ids, b.res.node_ids, a.res.n_node_ids);
		same_views(a.res.peer_ids, b.res.peer_ids, a.res.n_peer_ids);
		break;
	}
	return 0;
}
