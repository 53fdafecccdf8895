/* AveragingData messages (ml/avg/msg.c, averaging.proto of hivemind @ 4bd43b7): the bytes a
 * protobuf encoder writes for a first part message, zero-copy decoding, bounds. */
#include "harness.h"

#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

/* AveragingData{code=PART_FOR_AVERAGING, group_id=20 x 0xab, tensor_part=Tensor[1,-2,0.5]
 * (float32, NONE; the runtime.proto vector of doc/ml-codec.md), weight=1.0}: fields in number
 * order, proto3 defaults omitted, as protobuf serializes it. */
static const char part_hex[] =
	"0804"
	"1214abababababababababababababababababababab"
	"221a0a0c0000803f000000c00000003f1201032207666c6f61743332"
	"29000000000000f03f";

static void test_avg_data_encodes_a_first_part_as_protobuf_does(void **state)
{
	static const uint8_t f32[] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f };
	struct kw_avg_data d;
	uint8_t want[128], got[128];
	size_t wl = kw_test_unhex(part_hex, want), gl = 0;

	memset(&d, 0, sizeof(d));
	d.code = KW_AVG_PART_FOR_AVERAGING;
	memset(d.group_id, 0xab, 20);
	d.group_id_len = 20;
	d.has_part = true;
	d.part.buf = f32;
	d.part.buf_len = sizeof(f32);
	d.part.ndim = 1;
	d.part.shape[0] = 3;
	strcpy(d.part.dtype, "float32");
	d.weight = 1.0;
	assert_int_equal(kw_avg_data_encoded_size(&d), wl);
	assert_int_equal(kw_avg_data_encode(&d, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	assert_int_equal(kw_avg_data_encode(&d, got, wl - 1, &gl), -KW_ENOSPC);
	assert_int_equal(kw_avg_data_encode(&d, got, wl - 20, &gl), -KW_ENOSPC);
}

static void test_avg_data_decode_is_zero_copy(void **state)
{
	uint8_t b[128];
	size_t n = kw_test_unhex(part_hex, b);
	struct kw_avg_data d;

	assert_int_equal(kw_avg_data_decode(&d, b, n), 0);
	assert_int_equal(d.code, KW_AVG_PART_FOR_AVERAGING);
	assert_int_equal(d.group_id_len, 20);
	assert_true(d.has_part);
	assert_ptr_equal(d.part.buf, b + 2 + 22 + 2 + 2);
	assert_int_equal(d.part.buf_len, 12);
	assert_int_equal(d.part.shape[0], 3);
	assert_string_equal(d.part.dtype, "float32");
	assert_true(d.weight == 1.0);
}

static void test_avg_data_decode_rejects_truncated_input(void **state)
{
	uint8_t b[128];
	size_t n = kw_test_unhex(part_hex, b);
	struct kw_avg_data d;

	for (size_t cut = 1; cut < n; cut++) {
		int err = kw_avg_data_decode(&d, b, cut);

		/* a cut between fields leaves a valid shorter message; inside one it must fail */
		if (cut == 2 || cut == 24 || cut == 52)
			assert_int_equal(err, 0);
		else
			assert_int_equal(err, -KW_EBADMSG);
	}
}

static void test_avg_data_decode_rejects_an_oversized_group_id(void **state)
{
	uint8_t b[64] = { 0x12, 33 };
	struct kw_avg_data d;

	assert_int_equal(kw_avg_data_decode(&d, b, 35), -KW_EMSGSIZE);
}

static void test_avg_data_decode_rejects_a_tensor_part_that_is_not_bytes(void **state)
{
	uint8_t b[] = { 0x20, 0x05 };   /* field 4 as a varint */
	struct kw_avg_data d;

	assert_int_equal(kw_avg_data_decode(&d, b, sizeof(b)), -KW_EBADMSG);
}

/* hivemind's JoinRequest{schema_hash=20 x 0x11, expiration=1700000005.0,
 * gather=msgpack([None, 0, msgpack(None)]), group_key='my_averager.0b'} as Python writes it */
static const char join_hex[] =
	"121411111111111111111111111111111111111111111900004041fc54d941220693c000c401c0"
	"320e6d795f61766572616765722e3062";

static void test_avg_join_request_matches_hivemind_bytes(void **state)
{
	struct kw_avg_join_msg j, back;
	uint8_t want[128], got[128];
	size_t wl = kw_test_unhex(join_hex, want), gl = 0;
	const uint8_t none[1] = { 0xc0 };

	memset(&j, 0, sizeof(j));
	memset(j.schema_hash, 0x11, 20);
	j.schema_hash_len = 20;
	j.expiration = 1700000005.0;
	assert_int_equal(kw_avg_gather_encode(KW_AVG_BW_NONE, KW_AVG_NODE, none, 1, j.gather,
					      sizeof(j.gather), &j.gather_len), 0);
	strcpy(j.group_key, "my_averager.0b");
	assert_int_equal(kw_avg_join_encode(&j, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	assert_int_equal(kw_avg_join_decode(&back, want, wl), 0);
	assert_int_equal(back.schema_hash_len, 20);
	assert_true(back.expiration == 1700000005.0);
	assert_int_equal(back.gather_len, 6);
	assert_string_equal(back.group_key, "my_averager.0b");
	assert_false(back.client_mode);
	assert_int_equal(kw_avg_join_decode(&back, want, wl - 3), -KW_EBADMSG);
}

static void test_avg_gather_round_trips_and_rejects_bad_bytes(void **state)
{
	uint8_t b[64], v[64];
	size_t n = 0, ul = 0, vl = kw_test_unhex("93c000c401c0", v);
	const uint8_t *u = NULL;
	const uint8_t user[2] = { 0x81, 0x01 };
	double bw = 0;
	enum kw_avg_mode mode;

	/* hivemind's data_for_gather for bandwidth None, NODE, no user data */
	assert_int_equal(kw_avg_gather_decode(v, vl, &bw, &mode, &u, &ul), 0);
	assert_true(bw == KW_AVG_BW_NONE);
	assert_int_equal(mode, KW_AVG_NODE);
	assert_int_equal(ul, 1);
	assert_int_equal(u[0], 0xc0);
	assert_int_equal(kw_avg_gather_encode(125.5, KW_AVG_AUX, user, 2, b, sizeof(b), &n), 0);
	assert_int_equal(n, 1 + 9 + 1 + 2 + 2);
	assert_int_equal(kw_avg_gather_decode(b, n, &bw, &mode, &u, &ul), 0);
	assert_true(bw == 125.5);
	assert_int_equal(mode, KW_AVG_AUX);
	assert_int_equal(ul, 2);
	assert_ptr_equal(u, b + n - 2);
	assert_int_equal(kw_avg_gather_decode(b, n - 1, &bw, &mode, &u, &ul), -KW_EBADMSG);
	b[n] = 0;
	assert_int_equal(kw_avg_gather_decode(b, n + 1, &bw, &mode, &u, &ul), -KW_EMSGSIZE);
	v[2] = 3;   /* mode 3 does not exist */
	assert_int_equal(kw_avg_gather_decode(v, vl, &bw, &mode, &u, &ul), -KW_EBADMSG);
}

static void test_avg_code_names_follow_the_proto(void **state)
{
	assert_string_equal(kw_avg_code_name(KW_AVG_AVERAGED_PART), "AVERAGED_PART");
	assert_string_equal(kw_avg_code_name(KW_AVG_BAD_GROUP_KEY), "BAD_GROUP_KEY");
	assert_string_equal(kw_avg_code_name(19), "UNKNOWN");
	assert_string_equal(kw_avg_code_name(-1), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_avg_data_encodes_a_first_part_as_protobuf_does),
		cmocka_unit_test(test_avg_data_decode_is_zero_copy),
		cmocka_unit_test(test_avg_data_decode_rejects_truncated_input),
		cmocka_unit_test(test_avg_data_decode_rejects_an_oversized_group_id),
		cmocka_unit_test(test_avg_data_decode_rejects_a_tensor_part_that_is_not_bytes),
		cmocka_unit_test(test_avg_code_names_follow_the_proto),
		cmocka_unit_test(test_avg_join_request_matches_hivemind_bytes),
		cmocka_unit_test(test_avg_gather_round_trips_and_rejects_bad_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
