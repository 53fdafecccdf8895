/* multistream-select line codec (net/mss/mss_line.c): wire bytes from
 * multiformats/multistream-select README.md. */
#include <string.h>

#include "harness.h"

#include <kw/err.h>

#include <kw/net/mss.h>

static void test_mss_line_encodes_spec_bytes(void **state)
{
	uint8_t b[64];

	assert_int_equal(kw_mss_line_encode("/noise", b, sizeof(b)), 8);
	assert_memory_equal(b, "\x07/noise\n", 8);
	assert_int_equal(kw_mss_line_encode("/multistream/1.0.0", b, sizeof(b)), 20);
	assert_memory_equal(b, "\x13/multistream/1.0.0\n", 20);
	assert_int_equal(kw_mss_line_encode("/noise", b, 7), -KW_ENOSPC);
}

static void test_mss_line_decodes_and_waits_for_more(void **state)
{
	char line[64];

	assert_int_equal(kw_mss_line_decode((const uint8_t *)"\x03na\n", 4, line, sizeof(line)), 4);
	assert_string_equal(line, "na");
	assert_int_equal(kw_mss_line_decode((const uint8_t *)"\x03na", 3, line, sizeof(line)), -KW_EAGAIN);
	assert_int_equal(kw_mss_line_decode((const uint8_t *)"", 0, line, sizeof(line)), -KW_EAGAIN);
}

static void test_mss_line_rejects_missing_newline_and_oversize(void **state)
{
	char line[8];
	uint8_t big[1100];

	assert_int_equal(kw_mss_line_decode((const uint8_t *)"\x03nax", 4, line, sizeof(line)), -KW_EBADMSG);
	assert_int_equal(kw_mss_line_decode((const uint8_t *)"\x09/ipfs/id\n", 10, line, sizeof(line)), -KW_EBADMSG);
	assert_int_equal(kw_mss_line_decode((const uint8_t *)"\x00", 1, line, sizeof(line)), -KW_EBADMSG);
	big[0] = 0x82; big[1] = 0x08;  /* 1026 > 1024 */
	memset(big + 2, 'a', sizeof(big) - 2);
	assert_int_equal(kw_mss_line_decode(big, sizeof(big), line, sizeof(line)), -KW_EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mss_line_encodes_spec_bytes),
		cmocka_unit_test(test_mss_line_decodes_and_waits_for_more),
		cmocka_unit_test(test_mss_line_rejects_missing_newline_and_oversize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
