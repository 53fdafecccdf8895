/* MessageFromLeader (ml/avg/msg.c, averaging.proto of hivemind @ 4bd43b7): the bytes protobuf
 * writes for a BEGIN_ALLREDUCE and a GROUP_DISBANDED (vectors from protobufjs, built from
 * averaging.proto), zero-copy views, bounds, and the group a BEGIN_ALLREDUCE describes. */
#include "harness.h"

#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

static const uint8_t pa[] = { 1, 2, 3 }, pb[] = { 4, 5, 6 };
static const uint8_t g_node[] = { 0x93, 0xc0, 0x00, 0xc4, 0x01, 0xc0 };    /* None, NODE */
static const uint8_t g_client[] = { 0x93, 0xc0, 0x01, 0xc4, 0x01, 0xc0 };  /* None, CLIENT */

/* {code=BEGIN_ALLREDUCE, group_id=20 x 0x11, ordered_peer_ids=[010203, 040506],
 *  gathered=[g_node, g_client]} as protobufjs encodes it */
static const char begin_hex[] =
	"0803" "12141111111111111111111111111111111111111111"
	"2203010203" "2203040506" "2a0693c000c401c0" "2a0693c001c401c0";

static void fill_begin(struct kw_avg_leader_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->code = KW_AVG_BEGIN_ALLREDUCE;
	memset(m->group_id, 0x11, 20);
	m->group_id_len = 20;
	m->n_peers = 2;
	m->peer[0] = (struct kw_avg_bytes){ pa, sizeof(pa) };
	m->peer[1] = (struct kw_avg_bytes){ pb, sizeof(pb) };
	m->n_gathered = 2;
	m->gathered[0] = (struct kw_avg_bytes){ g_node, sizeof(g_node) };
	m->gathered[1] = (struct kw_avg_bytes){ g_client, sizeof(g_client) };
}

static void test_leader_msg_begin_allreduce_matches_protobuf_bytes(void **state)
{
	struct kw_avg_leader_msg m, d;
	uint8_t want[128], got[128];
	size_t wl = kw_test_unhex(begin_hex, want), gl = 0;

	fill_begin(&m);
	assert_int_equal(kw_avg_leader_encode(&m, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	assert_int_equal(kw_avg_leader_encode(&m, got, wl - 1, &gl), -KW_ENOSPC);

	assert_int_equal(kw_avg_leader_decode(&d, want, wl), 0);
	assert_int_equal(d.code, KW_AVG_BEGIN_ALLREDUCE);
	assert_int_equal(d.group_id_len, 20);
	assert_int_equal(d.group_id[19], 0x11);
	assert_int_equal(d.n_peers, 2);
	assert_int_equal(d.n_gathered, 2);
	/* views into the input, not copies */
	assert_ptr_equal(d.peer[0].p, want + 26);
	assert_int_equal(d.peer[1].len, 3);
	assert_memory_equal(d.peer[1].p, pb, 3);
	assert_ptr_equal(d.gathered[1].p, want + wl - 6);
	assert_memory_equal(d.gathered[1].p, g_client, 6);
}

static void test_leader_msg_disbanded_carries_the_suggested_leader(void **state)
{
	struct kw_avg_leader_msg m, d;
	uint8_t got[32];
	size_t gl = 0;
	static const uint8_t want[] = { 0x08, 0x11, 0x1a, 0x02, 0x09, 0x09 };

	memset(&m, 0, sizeof(m));
	m.code = KW_AVG_GROUP_DISBANDED;
	m.suggested_leader[0] = m.suggested_leader[1] = 9;
	m.suggested_len = 2;
	assert_int_equal(kw_avg_leader_encode(&m, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(kw_avg_leader_decode(&d, want, sizeof(want)), 0);
	assert_int_equal(d.code, KW_AVG_GROUP_DISBANDED);
	assert_int_equal(d.suggested_len, 2);
	assert_int_equal(d.n_peers, 0);
	/* ACCEPTED alone is 08 02 */
	assert_int_equal(kw_avg_leader_decode(&d, (const uint8_t *)"\x08\x02", 2), 0);
	assert_int_equal(d.code, KW_AVG_ACCEPTED);
}

static void test_leader_msg_decode_rejects_bad_and_oversized_input(void **state)
{
	static uint8_t buf[8192];
	struct kw_avg_leader_msg d;
	uint8_t want[128];
	size_t wl = kw_test_unhex(begin_hex, want), n = 0;

	/* every truncation is malformed */
	for (size_t cut = 1; cut < wl; cut++)
		if (cut != 2 && cut != 24 && cut != 29 && cut != 34 && cut != 42)
			assert_int_equal(kw_avg_leader_decode(&d, want, cut), -KW_EBADMSG);
	/* 65 peer ids */
	for (int i = 0; i < KW_AVG_GROUP_MAX + 1; i++) {
		buf[n++] = 0x22;
		buf[n++] = 1;
		buf[n++] = (uint8_t)i;
	}
	assert_int_equal(kw_avg_leader_decode(&d, buf, n), -KW_EMSGSIZE);
	assert_int_equal(d.n_peers, 0);   /* nothing half-filled */
	assert_int_equal(kw_avg_leader_decode(&d, buf, n - 3), 0);
	assert_int_equal(d.n_peers, KW_AVG_GROUP_MAX);
	/* a peer id of 65 bytes, a gathered entry of 257 */
	n = 0;
	buf[n++] = 0x22;
	buf[n++] = KW_AVG_PEER_ID_MAX + 1;
	memset(buf + n, 7, KW_AVG_PEER_ID_MAX + 1);
	n += KW_AVG_PEER_ID_MAX + 1;
	assert_int_equal(kw_avg_leader_decode(&d, buf, n), -KW_EMSGSIZE);
	n = 0;
	buf[n++] = 0x2a;
	buf[n++] = 0x81;   /* 257 */
	buf[n++] = 0x02;
	memset(buf + n, 7, 257);
	n += 257;
	assert_int_equal(kw_avg_leader_decode(&d, buf, n), -KW_EMSGSIZE);
	/* field 4 as a varint: wrong wire type */
	assert_int_equal(kw_avg_leader_decode(&d, (const uint8_t *)"\x20\x01", 2), -KW_EBADMSG);
	/* group_id of 33 bytes */
	n = 0;
	buf[n++] = 0x12;
	buf[n++] = 33;
	n += 33;
	assert_int_equal(kw_avg_leader_decode(&d, buf, n), -KW_EMSGSIZE);
}

static void test_leader_msg_encode_refuses_fields_over_bounds(void **state)
{
	static uint8_t big[KW_AVG_GATHER_MAX + 1];
	struct kw_avg_leader_msg m;
	uint8_t out[1024];
	size_t n;

	fill_begin(&m);
	m.gathered[1] = (struct kw_avg_bytes){ big, sizeof(big) };
	assert_int_equal(kw_avg_leader_encode(&m, out, sizeof(out), &n), -KW_EINVAL);
	fill_begin(&m);
	m.peer[0] = (struct kw_avg_bytes){ big, KW_AVG_PEER_ID_MAX + 1 };
	assert_int_equal(kw_avg_leader_encode(&m, out, sizeof(out), &n), -KW_EINVAL);
	fill_begin(&m);
	m.n_peers = KW_AVG_GROUP_MAX + 1;
	assert_int_equal(kw_avg_leader_encode(&m, out, sizeof(out), &n), -KW_EINVAL);
}

static void test_group_from_leader_finds_us_and_the_modes(void **state)
{
	struct kw_avg_leader_msg m;
	struct kw_avg_group g;

	fill_begin(&m);
	assert_int_equal(kw_avg_group_from_leader(&m, pb, sizeof(pb), 16, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.self, 1);
	assert_int_equal(g.mode[0], KW_AVG_NODE);
	assert_int_equal(g.mode[1], KW_AVG_CLIENT);
	assert_true(g.bandwidth[0] < 0);
	assert_int_equal(g.group_id_len, 20);
	/* not in the group */
	assert_int_equal(kw_avg_group_from_leader(&m, (const uint8_t *)"\x01\x02", 2, 16, &g),
			 -KW_EPROTO);
	/* over our group size limit */
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 1, &g), -KW_ERANGE);
	/* a peer twice */
	m.peer[1] = m.peer[0];
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 16, &g), -KW_EPROTO);
	/* every peer a client: nobody reduces */
	fill_begin(&m);
	m.gathered[0] = m.gathered[1];
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 16, &g), -KW_EPROTO);
	/* gathered that does not decode, counts that differ, not BEGIN_ALLREDUCE */
	fill_begin(&m);
	m.gathered[0].len = 3;
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 16, &g), -KW_EPROTO);
	fill_begin(&m);
	m.n_gathered = 1;
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 16, &g), -KW_EPROTO);
	fill_begin(&m);
	m.code = KW_AVG_ACCEPTED;
	assert_int_equal(kw_avg_group_from_leader(&m, pa, sizeof(pa), 16, &g), -KW_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leader_msg_begin_allreduce_matches_protobuf_bytes),
		cmocka_unit_test(test_leader_msg_disbanded_carries_the_suggested_leader),
		cmocka_unit_test(test_leader_msg_decode_rejects_bad_and_oversized_input),
		cmocka_unit_test(test_leader_msg_encode_refuses_fields_over_bounds),
		cmocka_unit_test(test_group_from_leader_finds_us_and_the_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
