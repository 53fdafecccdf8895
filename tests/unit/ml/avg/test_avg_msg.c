/* AveragingData messages (ml/avg/msg.c, averaging.proto of hivemind @ 4bd43b7): the bytes a
 * protobuf encoder writes for a first part message, zero-copy decoding, bounds. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

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
	size_t wl = unhex(part_hex, want), gl = 0;

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
	size_t n = unhex(part_hex, b);
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
	size_t n = unhex(part_hex, b);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
