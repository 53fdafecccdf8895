/*
 * Kademlia message codec (net/kad/msg.c): every message type round-trips, a FIND_NODE
 * request and response match bytes derived by hand from the field numbers of libp2p/specs
 * kad-dht/README.md, and truncated, oversized, over-limit and malformed input is refused
 * with the documented codes.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/net/kad_msg.h>
#include <kw/net/varint.h>

#define R8(x)  x, x, x, x, x, x, x, x
#define R32(x) R8(x), R8(x), R8(x), R8(x)

/* A sha2-256 multihash peer id: 0x12 (sha2-256), 0x20 (32 bytes), digest. */
static const uint8_t target_id[34] = { 0x12, 0x20, R32(0x11) };
static const uint8_t closer_id[34] = { 0x12, 0x20, R32(0x22) };
/* /ip4/127.0.0.1/tcp/4001: 0x04 ip4, 4 bytes; 0x06 tcp, port 4001 = 0x0fa1 big-endian. */
static const uint8_t ma_local[8] = { 0x04, 0x7f, 0x00, 0x00, 0x01, 0x06, 0x0f, 0xa1 };
/* /ip4/10.0.0.2/tcp/4002 */
static const uint8_t ma_lan[8] = { 0x04, 0x0a, 0x00, 0x00, 0x02, 0x06, 0x0f, 0xa2 };

/*
 * FIND_NODE request for target_id. Body, fields in number order:
 *   type = 4:       tag (1 << 3 | 0) = 0x08, varint 0x04                          2 bytes
 *   key = target:   tag (2 << 3 | 2) = 0x12, length 34 = 0x22, 34 bytes           36 bytes
 * body = 38 bytes -> uvarint prefix 0x26.
 */
static const uint8_t find_node_req[] = {
	0x26,
	0x08, 0x04,
	0x12, 0x22, 0x12, 0x20, R32(0x11),
};

/*
 * FIND_NODE response with one closer peer {id closer_id, addrs [ma_local], CONNECTED}.
 * Peer submessage:
 *   id:         tag (1 << 3 | 2) = 0x0a, length 0x22, 34 bytes                    36 bytes
 *   addrs[0]:   tag (2 << 3 | 2) = 0x12, length 0x08, 8 bytes                     10 bytes
 *   connection: tag (3 << 3 | 0) = 0x18, varint 1 (CONNECTED)                      2 bytes
 *   peer = 48 bytes = 0x30
 * Message:
 *   type = 4:        0x08 0x04                                                     2 bytes
 *   closerPeers[0]:  tag (8 << 3 | 2) = 0x42, length 0x30, 48 bytes               50 bytes
 * body = 52 bytes -> uvarint prefix 0x34.
 */
static const uint8_t find_node_resp[] = {
	0x34,
	0x08, 0x04,
	0x42, 0x30,
	0x0a, 0x22, 0x12, 0x20, R32(0x22),
	0x12, 0x08, 0x04, 0x7f, 0x00, 0x00, 0x01, 0x06, 0x0f, 0xa1,
	0x18, 0x01,
};

static struct kw_kad_msg m_in, m_out;
static uint8_t wire[CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 16];

static void assert_msg_equal(const struct kw_kad_msg *a, const struct kw_kad_msg *b)
{
	unsigned i, j;

	assert_int_equal(a->type, b->type);
	assert_int_equal(a->cluster_level_raw, b->cluster_level_raw);
	assert_int_equal(a->key_len, b->key_len);
	assert_memory_equal(a->key, b->key, a->key_len);
	assert_int_equal(a->has_record, b->has_record);
	if (a->has_record) {
		assert_int_equal(a->rec_key_len, b->rec_key_len);
		assert_memory_equal(a->rec_key, b->rec_key, a->rec_key_len);
		assert_int_equal(a->rec_value_len, b->rec_value_len);
		assert_memory_equal(a->rec_value, b->rec_value, a->rec_value_len);
		assert_string_equal(a->rec_time, b->rec_time);
	}
	assert_int_equal(a->n_peers, b->n_peers);
	for (i = 0; i < a->n_peers; i++) {
		const struct kw_kad_peer *p = &a->peers[i], *q = &b->peers[i];

		assert_int_equal(p->list, q->list);
		assert_int_equal(p->connection, q->connection);
		assert_int_equal(p->id_len, q->id_len);
		assert_memory_equal(p->id, q->id, p->id_len);
		assert_int_equal(p->n_addrs, q->n_addrs);
		for (j = 0; j < p->n_addrs; j++) {
			assert_int_equal(p->addr_len[j], q->addr_len[j]);
			assert_memory_equal(p->addrs[j], q->addrs[j], p->addr_len[j]);
		}
	}
}

static void round_trip(const struct kw_kad_msg *m)
{
	long n = kw_kad_msg_encode(m, wire, sizeof(wire));

	assert_true(n > 0);
	assert_int_equal(kw_kad_msg_decode(wire, (size_t)n, &m_out), n);
	assert_int_equal(m_out.addrs_dropped, 0);
	assert_msg_equal(m, &m_out);
}

static void add_peer(struct kw_kad_msg *m, enum kw_kad_peer_list which, const uint8_t *id,
		     const uint8_t *ma, enum kw_kad_conn_type conn)
{
	struct kw_kad_peer *p;

	assert_int_equal(kw_kad_msg_add_peer(m, which, id, 34, conn, &p), 0);
	if (ma)
		assert_int_equal(kw_kad_peer_add_addr(p, ma, 8), 0);
}

static void test_kad_msg_every_type_round_trips(void **state)
{
	static const uint8_t key[] = "/pk/\x12\x20kwaai";
	static const uint8_t val[] = { 0x08, 0x01, 0x12, 0x20, R32(0x5a) };
	unsigned t;

	for (t = KW_KAD_PUT_VALUE; t <= KW_KAD_PING; t++) {
		kw_kad_msg_init(&m_in, (enum kw_kad_msg_type)t);
		if (t != KW_KAD_PING)
			assert_int_equal(kw_kad_msg_set_key(&m_in, key, sizeof(key) - 1), 0);
		if (t == KW_KAD_PUT_VALUE || t == KW_KAD_GET_VALUE)
			assert_int_equal(kw_kad_msg_set_record(&m_in, key, sizeof(key) - 1, val,
							       sizeof(val), "2026-12-01T22:50:00Z"), 0);
		if (t == KW_KAD_GET_VALUE || t == KW_KAD_GET_PROVIDERS || t == KW_KAD_FIND_NODE) {
			add_peer(&m_in, KW_KAD_CLOSER, closer_id, ma_local, KW_KAD_CONNECTED);
			if (KW_KAD_MAX_PEERS >= 2)
				add_peer(&m_in, KW_KAD_CLOSER, target_id, ma_lan, KW_KAD_CAN_CONNECT);
		}
		if ((t == KW_KAD_ADD_PROVIDER || t == KW_KAD_GET_PROVIDERS) &&
		    m_in.n_peers < KW_KAD_MAX_PEERS)
			add_peer(&m_in, KW_KAD_PROVIDER, target_id, ma_lan, KW_KAD_NOT_CONNECTED);
		m_in.cluster_level_raw = (int32_t)t - 3;  /* negative values too */
		round_trip(&m_in);
	}
}

static void test_kad_msg_interleaved_peer_lists_decode_in_wire_order(void **state)
{
	if (KW_KAD_MAX_PEERS < 3)
		skip();  /* the message needs three peer entries */
	kw_kad_msg_init(&m_in, KW_KAD_GET_PROVIDERS);
	add_peer(&m_in, KW_KAD_CLOSER, closer_id, ma_local, KW_KAD_CONNECTED);
	add_peer(&m_in, KW_KAD_CLOSER, target_id, NULL, KW_KAD_CANNOT_CONNECT);
	add_peer(&m_in, KW_KAD_PROVIDER, closer_id, ma_lan, KW_KAD_CONNECTED);
	round_trip(&m_in);
}

static void test_kad_msg_find_node_request_matches_hand_vector(void **state)
{
	long n;

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_set_key(&m_in, target_id, sizeof(target_id)), 0);
	n = kw_kad_msg_encode(&m_in, wire, sizeof(wire));
	assert_int_equal(n, sizeof(find_node_req));
	assert_memory_equal(wire, find_node_req, sizeof(find_node_req));

	assert_int_equal(kw_kad_msg_decode(find_node_req, sizeof(find_node_req), &m_out),
			 sizeof(find_node_req));
	assert_int_equal(m_out.type, KW_KAD_FIND_NODE);
	assert_int_equal(m_out.key_len, 34);
	assert_memory_equal(m_out.key, target_id, 34);
	assert_false(m_out.has_record);
	assert_int_equal(m_out.n_peers, 0);
}

static void test_kad_msg_find_node_response_matches_hand_vector(void **state)
{
	long n;

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	add_peer(&m_in, KW_KAD_CLOSER, closer_id, ma_local, KW_KAD_CONNECTED);
	n = kw_kad_msg_encode(&m_in, wire, sizeof(wire));
	assert_int_equal(n, sizeof(find_node_resp));
	assert_memory_equal(wire, find_node_resp, sizeof(find_node_resp));

	assert_int_equal(kw_kad_msg_decode(find_node_resp, sizeof(find_node_resp), &m_out),
			 sizeof(find_node_resp));
	assert_int_equal(m_out.type, KW_KAD_FIND_NODE);
	assert_int_equal(m_out.key_len, 0);
	assert_int_equal(m_out.n_peers, 1);
	assert_int_equal(m_out.peers[0].list, KW_KAD_CLOSER);
	assert_int_equal(m_out.peers[0].connection, KW_KAD_CONNECTED);
	assert_int_equal(m_out.peers[0].id_len, 34);
	assert_memory_equal(m_out.peers[0].id, closer_id, 34);
	assert_int_equal(m_out.peers[0].n_addrs, 1);
	assert_int_equal(m_out.peers[0].addr_len[0], 8);
	assert_memory_equal(m_out.peers[0].addrs[0], ma_local, 8);
}

static void test_kad_msg_truncated_input_asks_for_more(void **state)
{
	size_t l;

	for (l = 0; l < sizeof(find_node_resp); l++)
		assert_int_equal(kw_kad_msg_decode(find_node_resp, l, &m_out), -KW_EAGAIN);
	/* A two-byte prefix cut after its first byte waits too. */
	kw_kad_msg_init(&m_in, KW_KAD_GET_VALUE);
	memset(m_in.key, 'k', 200);
	m_in.key_len = 200;
	assert_int_equal(kw_kad_msg_encode(&m_in, wire, sizeof(wire)), 2 + 2 + 3 + 200);
	for (l = 0; l < 2 + 2 + 3 + 200; l++)
		assert_int_equal(kw_kad_msg_decode(wire, l, &m_out), -KW_EAGAIN);
}

static void test_kad_msg_stream_of_two_messages_decodes_one_at_a_time(void **state)
{
	uint8_t two[sizeof(find_node_req) + sizeof(find_node_resp)];

	memcpy(two, find_node_req, sizeof(find_node_req));
	memcpy(two + sizeof(find_node_req), find_node_resp, sizeof(find_node_resp));
	assert_int_equal(kw_kad_msg_decode(two, sizeof(two), &m_out), sizeof(find_node_req));
	assert_int_equal(m_out.n_peers, 0);
	assert_int_equal(kw_kad_msg_decode(two + sizeof(find_node_req),
					   sizeof(two) - sizeof(find_node_req), &m_out),
			 sizeof(find_node_resp));
	assert_int_equal(m_out.n_peers, 1);
}

static void test_kad_msg_oversized_prefix_refused_before_body(void **state)
{
	uint8_t pfx[KW_UVARINT_MAX_BYTES];
	int h = kw_uvarint_encode(CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 1, pfx, sizeof(pfx));

	assert_true(h > 0);
	/* Only the prefix is given: the answer cannot depend on body bytes. */
	assert_int_equal(kw_kad_msg_decode(pfx, (size_t)h, &m_out), -KW_EMSGSIZE);
	h = kw_uvarint_encode(UINT64_C(1) << 40, pfx, sizeof(pfx));
	assert_int_equal(kw_kad_msg_decode(pfx, (size_t)h, &m_out), -KW_EMSGSIZE);
	/* Exactly the limit is accepted as a prefix (more body bytes are awaited). */
	h = kw_uvarint_encode(CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES, pfx, sizeof(pfx));
	assert_int_equal(kw_kad_msg_decode(pfx, (size_t)h, &m_out), -KW_EAGAIN);
}

/* Writes prefix + body into wire; returns the total length. */
static size_t frame(const uint8_t *body, size_t n)
{
	int h = kw_uvarint_encode(n, wire, sizeof(wire));

	assert_true(h > 0);
	memcpy(wire + h, body, n);
	return (size_t)h + n;
}

static void test_kad_msg_too_many_peers_is_a_limit_error(void **state)
{
	static uint8_t body[5 * (KW_KAD_MAX_PEERS + 1) + 2];
	size_t n = 0, i;

	if (sizeof(body) > CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES)
		skip();  /* the over-limit message would be refused for its size first */
	body[n++] = 0x08;
	body[n++] = 0x04;
	for (i = 0; i <= KW_KAD_MAX_PEERS; i++) {
		/* closerPeers (0x42) or providerPeers (0x4a), each Peer {id = one byte} */
		body[n++] = (i & 1) ? 0x4a : 0x42;
		body[n++] = 0x03;
		body[n++] = 0x0a;
		body[n++] = 0x01;
		body[n++] = (uint8_t)i;
	}
	assert_int_equal(kw_kad_msg_decode(wire, frame(body, n), &m_out), -KW_ELIMIT);
	/* One fewer fits. */
	assert_int_equal(kw_kad_msg_decode(wire, frame(body, n - 5), &m_out), (long)(n - 5 + kw_uvarint_size(n - 5)));
	assert_int_equal(m_out.n_peers, KW_KAD_MAX_PEERS);

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	for (i = 0; i < KW_KAD_MAX_PEERS; i++)
		assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, closer_id, 34,
						     KW_KAD_CONNECTED, NULL), 0);
	assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, closer_id, 34,
					     KW_KAD_CONNECTED, NULL), -KW_ELIMIT);
}

static void test_kad_msg_too_many_addrs_is_a_limit_error(void **state)
{
	static uint8_t body[4 + 4 + 10 * (KW_KAD_MAX_ADDRS + 1)];
	struct kw_kad_peer *p;
	size_t n = 0, i, peer_len;

	/* type, then closerPeers { id = 0x01, addrs = ma_local x (limit + 1) } */
	peer_len = 3 + 10 * (KW_KAD_MAX_ADDRS + 1);
	body[n++] = 0x08;
	body[n++] = 0x04;
	body[n++] = 0x42;
	n += (size_t)kw_uvarint_encode(peer_len, body + n, 2);
	body[n++] = 0x0a;
	body[n++] = 0x01;
	body[n++] = 0x01;
	for (i = 0; i <= KW_KAD_MAX_ADDRS; i++) {
		body[n++] = 0x12;
		body[n++] = 0x08;
		memcpy(body + n, ma_local, 8);
		n += 8;
	}
	assert_int_equal(kw_kad_msg_decode(wire, frame(body, n), &m_out), -KW_ELIMIT);

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, closer_id, 34,
					     KW_KAD_CONNECTED, &p), 0);
	for (i = 0; i < KW_KAD_MAX_ADDRS; i++)
		assert_int_equal(kw_kad_peer_add_addr(p, ma_local, 8), 0);
	assert_int_equal(kw_kad_peer_add_addr(p, ma_local, 8), -KW_ELIMIT);
}

static void test_kad_msg_bogus_addrs_dropped_and_counted(void **state)
{
	/* closerPeers { id 0x01, addrs: unknown code 0x3f, truncated ip4, 70-byte blob, ma_lan } */
	static const uint8_t body[] = {
		0x08, 0x04,
		0x42, 0x5e,
		0x0a, 0x01, 0x01,
		0x12, 0x02, 0x3f, 0x00,
		0x12, 0x03, 0x04, 0x7f, 0x00,
		0x12, 0x46, R32(0x04), R32(0x04), 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
		0x12, 0x08, 0x04, 0x0a, 0x00, 0x00, 0x02, 0x06, 0x0f, 0xa2,
	};
	struct kw_kad_peer *p;

	assert_int_equal(kw_kad_msg_decode(wire, frame(body, sizeof(body)), &m_out),
			 (long)(1 + sizeof(body)));
	assert_int_equal(m_out.n_peers, 1);
	assert_int_equal(m_out.peers[0].n_addrs, 1);
	assert_memory_equal(m_out.peers[0].addrs[0], ma_lan, 8);
	assert_int_equal(m_out.addrs_dropped, 3);

	/* Our own caller gets an error instead. */
	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, closer_id, 34,
					     KW_KAD_CONNECTED, &p), 0);
	assert_int_equal(kw_kad_peer_add_addr(p, body + 9, 2), -KW_ENOPROTO);
	assert_int_equal(kw_kad_peer_add_addr(p, body + 13, 3), -KW_EINVAL);
	assert_int_equal(p->n_addrs, 0);
}

static void test_kad_msg_oversized_fields_are_limit_errors(void **state)
{
	static uint8_t body[3 + KW_KAD_KEY_MAX + 1];
	uint8_t id[KW_KAD_PEER_ID_MAX + 1] = { 0 };

	body[0] = 0x12;  /* key, length KW_KAD_KEY_MAX + 1 as a two-byte varint */
	body[1] = (uint8_t)(0x80 | ((KW_KAD_KEY_MAX + 1) & 0x7f));
	body[2] = (uint8_t)((KW_KAD_KEY_MAX + 1) >> 7);
	memset(body + 3, 'k', KW_KAD_KEY_MAX + 1);
	assert_int_equal(kw_kad_msg_decode(wire, frame(body, sizeof(body)), &m_out), -KW_ELIMIT);
	/* The same with one byte less is fine. */
	body[1] = (uint8_t)(0x80 | (KW_KAD_KEY_MAX & 0x7f));
	body[2] = (uint8_t)(KW_KAD_KEY_MAX >> 7);
	assert_true(kw_kad_msg_decode(wire, frame(body, sizeof(body) - 1), &m_out) > 0);
	assert_int_equal(m_out.key_len, KW_KAD_KEY_MAX);

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, id, sizeof(id),
					     KW_KAD_CONNECTED, NULL), -KW_ELIMIT);
	assert_int_equal(kw_kad_msg_add_peer(&m_in, KW_KAD_CLOSER, id, 0, KW_KAD_CONNECTED, NULL),
			 -KW_EINVAL);
	assert_int_equal(kw_kad_msg_set_key(&m_in, body, KW_KAD_KEY_MAX + 1), -KW_ELIMIT);
}

static void test_kad_msg_garbage_is_bad_message(void **state)
{
	static const uint8_t wt7[] = { 0x0f, 0x00 };             /* field 1, wire type 7 */
	static const uint8_t short_len[] = { 0x12, 0x05, 'a' };  /* key says 5, has 1 */
	static const uint8_t bad_peer[] = { 0x42, 0x02, 0x0a, 0x05 };  /* id overruns peer */
	static const uint8_t long_varint[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t nul_time[] = { 0x1a, 0x04, 0x2a, 0x02, 'a', 0x00 };
	static const uint8_t nonminimal_prefix[] = { 0x80, 0x00 };

	assert_int_equal(kw_kad_msg_decode(wire, frame(wt7, sizeof(wt7)), &m_out), -KW_EBADMSG);
	assert_int_equal(kw_kad_msg_decode(wire, frame(short_len, sizeof(short_len)), &m_out),
			 -KW_EBADMSG);
	assert_int_equal(kw_kad_msg_decode(wire, frame(bad_peer, sizeof(bad_peer)), &m_out),
			 -KW_EBADMSG);
	assert_int_equal(kw_kad_msg_decode(wire, frame(long_varint, sizeof(long_varint)), &m_out),
			 -KW_EBADMSG);
	assert_int_equal(kw_kad_msg_decode(wire, frame(nul_time, sizeof(nul_time)), &m_out),
			 -KW_EBADMSG);
	assert_int_equal(kw_kad_msg_decode(nonminimal_prefix, sizeof(nonminimal_prefix), &m_out),
			 -KW_EBADMSG);
	/* An empty body is a valid PUT_VALUE with nothing set. */
	assert_int_equal(kw_kad_msg_decode((const uint8_t *)"\x00", 1, &m_out), 1);
	assert_int_equal(m_out.type, KW_KAD_PUT_VALUE);
}

static void test_kad_msg_encode_into_short_buffer_is_enospc(void **state)
{
	size_t cap;

	kw_kad_msg_init(&m_in, KW_KAD_FIND_NODE);
	add_peer(&m_in, KW_KAD_CLOSER, closer_id, ma_local, KW_KAD_CONNECTED);
	for (cap = 0; cap < sizeof(find_node_resp); cap++)
		assert_int_equal(kw_kad_msg_encode(&m_in, wire, cap), -KW_ENOSPC);
	assert_int_equal(kw_kad_msg_encode(&m_in, wire, sizeof(find_node_resp)),
			 sizeof(find_node_resp));
}

static void test_kad_msg_encode_refuses_message_over_the_limit(void **state)
{
	static const uint8_t big[KW_KAD_VALUE_MAX] = { 0 };

	if (KW_KAD_VALUE_MAX + 64 <= CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES)
		skip();  /* the largest record fits this configuration's message limit */
	kw_kad_msg_init(&m_in, KW_KAD_PUT_VALUE);
	assert_int_equal(kw_kad_msg_set_record(&m_in, big, 4, big, sizeof(big), NULL), 0);
	assert_int_equal(kw_kad_msg_encode(&m_in, wire, sizeof(wire)), -KW_EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kad_msg_every_type_round_trips),
		cmocka_unit_test(test_kad_msg_interleaved_peer_lists_decode_in_wire_order),
		cmocka_unit_test(test_kad_msg_find_node_request_matches_hand_vector),
		cmocka_unit_test(test_kad_msg_find_node_response_matches_hand_vector),
		cmocka_unit_test(test_kad_msg_truncated_input_asks_for_more),
		cmocka_unit_test(test_kad_msg_stream_of_two_messages_decodes_one_at_a_time),
		cmocka_unit_test(test_kad_msg_oversized_prefix_refused_before_body),
		cmocka_unit_test(test_kad_msg_too_many_peers_is_a_limit_error),
		cmocka_unit_test(test_kad_msg_too_many_addrs_is_a_limit_error),
		cmocka_unit_test(test_kad_msg_bogus_addrs_dropped_and_counted),
		cmocka_unit_test(test_kad_msg_oversized_fields_are_limit_errors),
		cmocka_unit_test(test_kad_msg_garbage_is_bad_message),
		cmocka_unit_test(test_kad_msg_encode_into_short_buffer_is_enospc),
		cmocka_unit_test(test_kad_msg_encode_refuses_message_over_the_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
