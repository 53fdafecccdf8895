/* net/peer/varint.c: multiformats uvarints (multiformats/unsigned-varint examples, minimality, 9-byte cap). */
#include "harness.h"
#include "hex.h"
#include <kw/err.h>
#include <kw/net/varint.h>

static const struct { uint64_t v; const char *hex; } vectors[] = {
	{ 0, "00" }, { 1, "01" }, { 127, "7f" }, { 128, "8001" }, { 255, "ff01" },
	{ 300, "ac02" }, { 16384, "808001" }, { 65535, "ffff03" }, { 4294967295u, "ffffffff0f" },
	{ KW_UVARINT_MAX_VALUE, "ffffffffffffffff7f" },
};

static void test_varint_encodes_spec_examples(void **state)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		uint8_t want[16], got[16];
		int n = test_unhex(vectors[i].hex, want, sizeof(want));

		assert_int_equal(kw_uvarint_encode(vectors[i].v, got, sizeof(got)), n);
		assert_memory_equal(got, want, (size_t)n);
		assert_int_equal(kw_uvarint_size(vectors[i].v), n);
	}
}

static void test_varint_decodes_spec_examples(void **state)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		uint8_t in[16];
		uint64_t v = 12345;
		int n = test_unhex(vectors[i].hex, in, sizeof(in));

		in[n] = 0xaa;  /* trailing bytes are not consumed */
		assert_int_equal(kw_uvarint_decode(in, (size_t)n + 1, &v), n);
		assert_true(v == vectors[i].v);
	}
}

static void test_varint_rejects_non_minimal(void **state)
{
	static const uint8_t one_padded[] = { 0x81, 0x00 };
	static const uint8_t zero_padded[] = { 0x80, 0x80, 0x00 };
	uint64_t v = 7;

	assert_int_equal(kw_uvarint_decode(one_padded, 2, &v), -KW_EBADMSG);
	assert_int_equal(kw_uvarint_decode(zero_padded, 3, &v), -KW_EBADMSG);
	assert_true(v == 7);
}

static void test_varint_rejects_more_than_nine_bytes(void **state)
{
	static const uint8_t ten[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t big9[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint64_t v;

	assert_int_equal(kw_uvarint_decode(ten, sizeof(ten), &v), -KW_EBADMSG);
	/* Nine continued bytes can never end inside the limit. */
	assert_int_equal(kw_uvarint_decode(big9, sizeof(big9), &v), -KW_EBADMSG);
}

static void test_varint_truncated_asks_for_more(void **state)
{
	static const uint8_t part[] = { 0xac };
	uint64_t v;

	assert_int_equal(kw_uvarint_decode(part, 1, &v), -KW_EAGAIN);
	assert_int_equal(kw_uvarint_decode(part, 0, &v), -KW_EAGAIN);
}

static void test_varint_encode_checks_capacity_and_range(void **state)
{
	uint8_t buf[9];

	assert_int_equal(kw_uvarint_encode(300, buf, 1), -KW_ENOSPC);
	assert_int_equal(kw_uvarint_encode(UINT64_C(1) << 63, buf, sizeof(buf)), -KW_ERANGE);
}

static void test_varint_round_trips_every_length(void **state)
{
	for (int bits = 0; bits < 63; bits++) {
		uint64_t x = (UINT64_C(1) << bits) | 1, y;
		uint8_t buf[9];
		int n = kw_uvarint_encode(x, buf, sizeof(buf));

		assert_true(n > 0);
		assert_int_equal(kw_uvarint_decode(buf, (size_t)n, &y), n);
		assert_true(x == y);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_encodes_spec_examples),
		cmocka_unit_test(test_varint_decodes_spec_examples),
		cmocka_unit_test(test_varint_rejects_non_minimal),
		cmocka_unit_test(test_varint_rejects_more_than_nine_bytes),
		cmocka_unit_test(test_varint_truncated_asks_for_more),
		cmocka_unit_test(test_varint_encode_checks_capacity_and_range),
		cmocka_unit_test(test_varint_round_trips_every_length),
	};
	return cmocka_run_group_tests_name("net/peer/varint", tests, NULL, NULL);
}
