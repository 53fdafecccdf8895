/* include/kw/bytes.h: the hex helpers the line protocols, the JSON-ish text form and CIDs
 * share (kw_hex_digit, kw_hex_put, kw_hex_get), and the big-endian round trip. */
#include "harness.h"

#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>

static void test_bytes_hex_digit_takes_either_case_and_refuses_the_rest(void **state)
{
	(void)state;
	assert_int_equal(kw_hex_digit('0'), 0);
	assert_int_equal(kw_hex_digit('9'), 9);
	assert_int_equal(kw_hex_digit('a'), 10);
	assert_int_equal(kw_hex_digit('F'), 15);
	assert_int_equal(kw_hex_digit('g'), -1);
	assert_int_equal(kw_hex_digit('G'), -1);
	assert_int_equal(kw_hex_digit('/'), -1);
	assert_int_equal(kw_hex_digit(':'), -1);
	assert_int_equal(kw_hex_digit(' '), -1);
	assert_int_equal(kw_hex_digit(0xc3), -1);
	assert_int_equal(kw_hex_digit(0), -1);
}

static void test_bytes_hex_put_writes_lower_case_without_terminator(void **state)
{
	static const uint8_t b[] = { 0x00, 0x9f, 0xab, 0xff };
	char out[10];

	(void)state;
	memset(out, '#', sizeof(out));
	assert_int_equal(kw_hex_put(b, sizeof(b), out), 8);
	assert_memory_equal(out, "009fabff##", 10);
	assert_int_equal(kw_hex_put(b, 0, out), 0);
}

static void test_bytes_hex_get_round_trips_and_refuses_a_non_digit(void **state)
{
	static const uint8_t want[] = { 0x01, 0xab, 0xcd, 0xef };
	uint8_t out[4];

	(void)state;
	assert_int_equal(kw_hex_get("01ABcdEf", 4, out), 0);
	assert_memory_equal(out, want, 4);
	memset(out, 0, sizeof(out));
	assert_int_equal(kw_hex_get("01ag", 2, out), -KW_EINVAL);
	assert_int_equal(out[0], 0x01);   /* the bytes before the bad digit */
	assert_int_equal(kw_hex_get("+1", 1, out), -KW_EINVAL);
	assert_int_equal(kw_hex_get(" f", 1, out), -KW_EINVAL);
	assert_int_equal(kw_hex_get("", 0, out), 0);
}

static void test_bytes_be64_round_trip(void **state)
{
	uint8_t b[8];

	(void)state;
	kw_put_be64(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 1);
	assert_int_equal(b[7], 8);
	assert_true(kw_get_be64(b) == 0x0102030405060708ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_hex_digit_takes_either_case_and_refuses_the_rest),
		cmocka_unit_test(test_bytes_hex_put_writes_lower_case_without_terminator),
		cmocka_unit_test(test_bytes_hex_get_round_trips_and_refuses_a_non_digit),
		cmocka_unit_test(test_bytes_be64_round_trip),
	};
	return cmocka_run_group_tests_name("kernel/bytes", tests, NULL, NULL);
}
