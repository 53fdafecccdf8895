/*
 * Hivemind DHT messages (net/hivemind/dht_msg.c): every DHTProtocol message byte for byte as
 * Python's protobuf writes it (vectors derived from the field numbers of hivemind
 * hivemind/proto/dht.proto @ 4bd43b7, packed repeated scalars, proto3 defaults left out),
 * decoding of what Python may also send (unpacked scalars, auth), and refusal of what would
 * crash hivemind's own handler (a node_id or key longer than 20 bytes).
 */
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/err.h>
#include <kw/net/hivemind_dht.h>

static const char ping_req_hex[] =
	"12160a14f32585e1eaf96891313b1479da1501ccc4e13f421801";
static const char ping_resp_hex[] =
	"12160a14f32585e1eaf96891313b1479da1501ccc4e13f422100001040fc54d9412801";
static const char store_req_hex[] =
	"12149b14d861b958d4bf27a484d3361000dfb86d791f1a36d934313244334b6f6f574134586f70314a615433"
	"4d487877594d6b436570597376346950566f704d5877437a3569485964426665534222ad02c80129409302cb"
	"40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075626c69635f6e616d"
	"65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b5f727073cb408f4000"
	"00000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63655f727073cb4072c000"
	"00000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61743136aa7175616e745f74"
	"797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e735f6c656674ce00010000aa"
	"6e6578745f70696e677381d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376"
	"346950566f704d5877437a35694859644266655342cb3f8999999999999a2a080000007cfc54d9413201003a"
	"160a14f32585e1eaf96891313b1479da1501ccc4e13f42";
static const char store_resp_hex[] =
	"1201011a160a14f32585e1eaf96891313b1479da1501ccc4e13f42";
static const char find_req_hex[] =
	"12149b14d861b958d4bf27a484d3361000dfb86d791f1a160a14f32585e1eaf96891313b1479da1501ccc4e1"
	"3f42";
static const char find_result_hex[] =
	"0802128803c801845093cb7ff0000000000000cb41d954fc7c0000009193d934313244334b6f6f574134586f"
	"70314a6154334d487877594d6b436570597376346950566f704d5877437a35694859644266655342c5012dc8"
	"0129409302cb40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075626c"
	"69635f6e616d65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b5f7270"
	"73cb408f400000000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63655f7270"
	"73cb4072c00000000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61743136aa71"
	"75616e745f74797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e735f6c656674"
	"ce00010000aa6e6578745f70696e677381d934313244334b6f6f574134586f70314a6154334d487877594d6b"
	"436570597376346950566f704d5877437a35694859644266655342cb3f8999999999999acb41d954fc7c0000"
	"00190000007cfc54d941";

static const char node_id_hex[] = "f32585e1eaf96891313b1479da1501ccc4e13f42";
static const char key0_hex[] = "9b14d861b958d4bf27a484d3361000dfb86d791f";
static const double exp0 = 1700000240.0;

static uint8_t vec[2048], out[2048], node_id[20], key0[20];
static size_t vec_len;

static int setup(void **state)
{
	(void)state;
	return test_unhex(node_id_hex, node_id, 20) == 20 && test_unhex(key0_hex, key0, 20) == 20
	       ? 0 : -1;
}

static void load(const char *hex)
{
	int n = test_unhex(hex, vec, sizeof(vec));

	assert_true(n > 0);
	vec_len = (size_t)n;
}

static struct kw_hm_dht_peer me(void)
{
	struct kw_hm_dht_peer p = { true, { node_id, 20 } };

	return p;
}

static void assert_me(const struct kw_hm_dht_peer *p)
{
	assert_true(p->present);
	assert_int_equal(p->node_id.len, 20);
	assert_memory_equal(p->node_id.p, node_id, 20);
}

static void assert_encodes_to_vec(int kind, const void *m)
{
	long n = kw_hm_dht_encode(kind, m, out, sizeof(out));

	assert_int_equal(n, (long)vec_len);
	assert_memory_equal(out, vec, vec_len);
}

static void test_hm_dht_ping_request_matches_vector(void **state)
{
	struct kw_hm_dht_ping_req r = { me(), true }, d;
	const char *why;

	(void)state;
	load(ping_req_hex);
	assert_encodes_to_vec(KW_HM_DHT_PING_REQ, &r);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_REQ, vec, vec_len, &d, &why), 0);
	assert_me(&d.peer);
	assert_true(d.validate);
}

static void test_hm_dht_ping_response_matches_vector(void **state)
{
	struct kw_hm_dht_ping_resp r = { me(), 1700000000.25, true }, d;

	(void)state;
	load(ping_resp_hex);
	assert_encodes_to_vec(KW_HM_DHT_PING_RESP, &r);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_RESP, vec, vec_len, &d, NULL), 0);
	assert_me(&d.peer);
	assert_true(d.dht_time == 1700000000.25);
	assert_true(d.available);
}

/* The StoreRequest vector's subkey is field 3 and its value field 4: take them from it. */
static void store_parts(struct kw_hm_bytes *sub, struct kw_hm_bytes *val)
{
	/* 12 14 <key0> 1a 36 <subkey 54> 22 ad 02 <value 301> ... */
	assert_int_equal(vec[22], 0x1a);
	*sub = (struct kw_hm_bytes){ vec + 24, vec[23] };
	assert_int_equal(vec[24 + 54], 0x22);
	*val = (struct kw_hm_bytes){ vec + 24 + 54 + 3, 301 };
}

static struct kw_hm_dht_store_req sr, sd;

static void test_hm_dht_store_request_matches_vector(void **state)
{
	const char *why;

	(void)state;
	load(store_req_hex);
	memset(&sr, 0, sizeof(sr));
	sr.n_keys = sr.n_subkeys = sr.n_values = sr.n_exp = sr.n_in_cache = 1;
	sr.keys[0] = (struct kw_hm_bytes){ key0, 20 };
	store_parts(&sr.subkeys[0], &sr.values[0]);
	sr.exp[0] = exp0;
	sr.in_cache[0] = false;
	sr.peer = me();
	assert_encodes_to_vec(KW_HM_DHT_STORE_REQ, &sr);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, vec, vec_len, &sd, &why), 0);
	assert_int_equal(kw_hm_dht_store_req_check(&sd, &why), 0);
	assert_int_equal(sd.n_keys, 1);
	assert_memory_equal(sd.keys[0].p, key0, 20);
	assert_int_equal(sd.subkeys[0].len, 54);
	assert_int_equal(sd.subkeys[0].p[0], 0xd9);
	assert_int_equal(sd.values[0].len, 301);
	assert_true(sd.exp[0] == exp0);
	assert_false(sd.in_cache[0]);
	assert_int_equal(sd.n_in_cache, 1);
	assert_me(&sd.peer);
}

static void test_hm_dht_store_response_matches_vector(void **state)
{
	struct kw_hm_dht_store_resp r = { .n = 1, .store_ok = { true }, .peer = me() }, d;

	(void)state;
	load(store_resp_hex);
	assert_encodes_to_vec(KW_HM_DHT_STORE_RESP, &r);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_RESP, vec, vec_len, &d, NULL), 0);
	assert_int_equal(d.n, 1);
	assert_true(d.store_ok[0]);
	assert_me(&d.peer);
}

static void test_hm_dht_find_request_matches_vector(void **state)
{
	struct kw_hm_dht_find_req r, d;

	(void)state;
	load(find_req_hex);
	memset(&r, 0, sizeof(r));
	r.n_keys = 1;
	r.keys[0] = (struct kw_hm_bytes){ key0, 20 };
	r.peer = me();
	assert_encodes_to_vec(KW_HM_DHT_FIND_REQ, &r);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, vec, vec_len, &d, NULL), 0);
	assert_int_equal(d.n_keys, 1);
	assert_memory_equal(d.keys[0].p, key0, 20);
	assert_me(&d.peer);
}

static struct kw_hm_dht_find_result fr, fd;

static void test_hm_dht_find_result_matches_vector(void **state)
{
	(void)state;
	load(find_result_hex);
	memset(&fr, 0, sizeof(fr));
	fr.type = KW_HM_DHT_FOUND_DICTIONARY;
	fr.value = (struct kw_hm_bytes){ vec + 5, 392 };   /* 08 02 12 88 03 <392 bytes> */
	fr.expiration = exp0;
	assert_encodes_to_vec(KW_HM_DHT_FIND_RESULT, &fr);
	assert_int_equal(kw_hm_dht_find_result_decode(vec, vec_len, &fd, NULL), 0);
	assert_int_equal(fd.type, KW_HM_DHT_FOUND_DICTIONARY);
	assert_int_equal(fd.value.len, 392);
	assert_int_equal(fd.value.p[0], 0xc8);   /* ext16 */
	assert_int_equal(fd.value.p[3], 0x50);   /* DictionaryDHTValue */
	assert_true(fd.expiration == exp0);
	assert_int_equal(fd.n_node_ids, 0);
}

static void test_hm_dht_find_response_round_trips_results_and_nearest(void **state)
{
	static const uint8_t pid[4] = { 0x00, 0x02, 0xaa, 0xbb };
	struct kw_hm_dht_find_result res[2];
	struct kw_hm_dht_find_resp r, d;
	long n;

	(void)state;
	memset(res, 0, sizeof(res));
	res[0].type = KW_HM_DHT_FOUND_REGULAR;
	res[0].value = (struct kw_hm_bytes){ (const uint8_t *)"\xa1x", 2 };
	res[0].expiration = exp0;
	res[0].n_node_ids = res[0].n_peer_ids = 1;
	res[0].node_ids[0] = (struct kw_hm_bytes){ key0, 20 };
	res[0].peer_ids[0] = (struct kw_hm_bytes){ pid, 4 };
	memset(&r, 0, sizeof(r));
	r.n_results = 2;                  /* the second: NOT_FOUND, nothing near: empty message */
	r.results = res;
	r.peer = me();
	n = kw_hm_dht_encode(KW_HM_DHT_FIND_RESP, &r, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_RESP, out, (size_t)n, &d, NULL), 0);
	assert_int_equal(d.n_results, 2);
	assert_int_equal(d.raw[1].len, 0);
	assert_me(&d.peer);
	assert_int_equal(kw_hm_dht_find_result_decode(d.raw[0].p, d.raw[0].len, &fd, NULL), 0);
	assert_int_equal(fd.type, KW_HM_DHT_FOUND_REGULAR);
	assert_int_equal(fd.value.len, 2);
	assert_int_equal(fd.n_node_ids, 1);
	assert_int_equal(fd.n_peer_ids, 1);
	assert_memory_equal(fd.peer_ids[0].p, pid, 4);
	assert_int_equal(kw_hm_dht_find_result_decode(d.raw[1].p, d.raw[1].len, &fd, NULL), 0);
	assert_int_equal(fd.type, KW_HM_DHT_NOT_FOUND);
}

static void test_hm_dht_empty_node_id_keeps_peer_present(void **state)
{
	struct kw_hm_dht_ping_req r = { { true, { NULL, 0 } }, false }, d;
	long n;

	(void)state;
	n = kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &r, out, sizeof(out));
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0x12);
	assert_int_equal(out[1], 0x00);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_REQ, out, 2, &d, NULL), 0);
	assert_true(d.peer.present);
	assert_int_equal(d.peer.node_id.len, 0);
	/* absent peer: nothing at all */
	r.peer.present = false;
	assert_int_equal(kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &r, out, sizeof(out)), 0);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_REQ, out, 0, &d, NULL), 0);
	assert_false(d.peer.present);
}

static void test_hm_dht_node_id_of_21_bytes_is_refused_by_name(void **state)
{
	/* PingRequest{peer{node_id = 21 bytes}} */
	static const uint8_t bad[] = { 0x12, 0x17, 0x0a, 0x15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21 };
	struct kw_hm_dht_ping_req d;
	struct kw_hm_dht_find_req fq;
	struct kw_hm_dht_ping_req r = { { true, { bad + 4, 21 } }, false };
	const char *why = NULL;

	(void)state;
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_REQ, bad, sizeof(bad), &d, &why),
			 -KW_EPROTO);
	assert_string_equal(why, "peer.node_id longer than 20 bytes");
	/* the same NodeInfo in a FindRequest (field 3) */
	memcpy(out, bad, sizeof(bad));
	out[0] = 0x1a;
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, out, sizeof(bad), &fq, &why),
			 -KW_EPROTO);
	assert_string_equal(why, "peer.node_id longer than 20 bytes");
	/* and we never write one */
	assert_int_equal(kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &r, out, sizeof(out)), -KW_EINVAL);
}

static void test_hm_dht_key_of_21_bytes_is_refused_by_name(void **state)
{
	uint8_t m[32] = { 0x12, 21 };
	struct kw_hm_dht_find_req d;
	const char *why;

	(void)state;
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, m, 23, &d, &why), -KW_EPROTO);
	assert_string_equal(why, "key longer than 20 bytes");
	/* a shorter key is a smaller DHTID (DHTID.from_bytes): accepted */
	m[1] = 3;
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, m, 5, &d, &why), 0);
	assert_int_equal(d.keys[0].len, 3);
}

static void test_hm_dht_unpacked_scalars_decode_like_packed(void **state)
{
	/* expiration_time (5) x2 and in_cache (6) x2, each element with its own tag */
	uint8_t m[64];
	size_t n = 0;
	double e[2] = { 1.5, 2.5 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		m[n++] = 0x29;                 /* field 5, fixed64 */
		memcpy(m + n, &e[i], 8);      /* little-endian host, as protobuf */
		n += 8;
	}
	m[n++] = 0x30; m[n++] = 1;         /* field 6, varint */
	m[n++] = 0x30; m[n++] = 0;
	m[n++] = 0x32; m[n++] = 1; m[n++] = 1;   /* plus a packed run of one */
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, m, n, &sd, NULL), 0);
	assert_int_equal(sd.n_exp, 2);
	assert_true(sd.exp[0] == 1.5 && sd.exp[1] == 2.5);
	assert_int_equal(sd.n_in_cache, 3);
	assert_true(sd.in_cache[0] && !sd.in_cache[1] && sd.in_cache[2]);
}

static void test_hm_dht_auth_is_skipped(void **state)
{
	uint8_t m[64];
	struct kw_hm_dht_ping_req d;

	(void)state;
	/* auth = RequestAuthInfo{ nonce(4) = "ab" } then the ping vector */
	m[0] = 0x0a; m[1] = 0x04; m[2] = 0x22; m[3] = 0x02; m[4] = 'a'; m[5] = 'b';
	load(ping_req_hex);
	memcpy(m + 6, vec, vec_len);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_PING_REQ, m, 6 + vec_len, &d, NULL), 0);
	assert_me(&d.peer);
	assert_true(d.validate);
}

static void test_hm_dht_too_many_keys_is_limit(void **state)
{
	uint8_t m[(KW_HM_DHT_MAX_KEYS + 1) * 2];
	struct kw_hm_dht_find_req d;
	const char *why;

	(void)state;
	for (int i = 0; i <= KW_HM_DHT_MAX_KEYS; i++) {
		m[2 * i] = 0x12;
		m[2 * i + 1] = 0;
	}
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, m, sizeof(m) - 2, &d, &why), 0);
	assert_int_equal(d.n_keys, KW_HM_DHT_MAX_KEYS);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_FIND_REQ, m, sizeof(m), &d, &why),
			 -KW_ELIMIT);
	assert_string_equal(why, "more keys than KW_NET_HIVEMIND_DHT_MAX_KEYS");
}

static void test_hm_dht_truncated_store_request_is_bad_message(void **state)
{
	size_t cut;
	int err;

	(void)state;
	load(store_req_hex);
	/* cut inside the value (field 4) and inside the peer (field 7) */
	for (cut = 1; cut < vec_len; cut++) {
		err = kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, vec, cut, &sd, NULL);
		assert_true(err == 0 || err == -KW_EBADMSG);
	}
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, vec, 200, &sd, NULL), -KW_EBADMSG);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, vec, vec_len - 1, &sd, NULL),
			 -KW_EBADMSG);
}

static void test_hm_dht_store_check_names_misaligned_arrays(void **state)
{
	const char *why;

	(void)state;
	load(store_req_hex);
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, vec, vec_len, &sd, NULL), 0);
	sd.n_in_cache = 0;
	assert_int_equal(kw_hm_dht_store_req_check(&sd, &why), -KW_EPROTO);
	assert_string_equal(why, "in_cache and keys differ in number");
	sd.n_in_cache = 1;
	sd.n_subkeys = 0;
	assert_int_equal(kw_hm_dht_store_req_check(&sd, &why), -KW_EPROTO);
	assert_string_equal(why, "subkeys and keys differ in number");
}

static void test_hm_dht_bytes_field_with_wrong_wire_type_is_refused(void **state)
{
	/* StoreRequest keys (2) sent as fixed64: found by fuzz_hm_dht */
	static const uint8_t m[] = { 0x11, 0, 0, 0, 0, 0, 0, 0, 0 };
	const char *why;

	(void)state;
	assert_int_equal(kw_hm_dht_decode(KW_HM_DHT_STORE_REQ, m, sizeof(m), &sd, &why),
			 -KW_EBADMSG);
	assert_string_equal(why, "bytes field with a wrong wire type");
}

static void test_hm_dht_encode_into_short_buffer_is_enospc(void **state)
{
	struct kw_hm_dht_ping_req r = { me(), true };

	(void)state;
	assert_int_equal(kw_hm_dht_encode(KW_HM_DHT_PING_REQ, &r, out, 10), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_dht_ping_request_matches_vector),
		cmocka_unit_test(test_hm_dht_ping_response_matches_vector),
		cmocka_unit_test(test_hm_dht_store_request_matches_vector),
		cmocka_unit_test(test_hm_dht_store_response_matches_vector),
		cmocka_unit_test(test_hm_dht_find_request_matches_vector),
		cmocka_unit_test(test_hm_dht_find_result_matches_vector),
		cmocka_unit_test(test_hm_dht_find_response_round_trips_results_and_nearest),
		cmocka_unit_test(test_hm_dht_empty_node_id_keeps_peer_present),
		cmocka_unit_test(test_hm_dht_node_id_of_21_bytes_is_refused_by_name),
		cmocka_unit_test(test_hm_dht_key_of_21_bytes_is_refused_by_name),
		cmocka_unit_test(test_hm_dht_unpacked_scalars_decode_like_packed),
		cmocka_unit_test(test_hm_dht_auth_is_skipped),
		cmocka_unit_test(test_hm_dht_too_many_keys_is_limit),
		cmocka_unit_test(test_hm_dht_truncated_store_request_is_bad_message),
		cmocka_unit_test(test_hm_dht_store_check_names_misaligned_arrays),
		cmocka_unit_test(test_hm_dht_bytes_field_with_wrong_wire_type_is_refused),
		cmocka_unit_test(test_hm_dht_encode_into_short_buffer_is_enospc),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
