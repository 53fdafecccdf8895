/*
 * The text form of Hivemind DHT values (app/hm_text.c) that `kwnode hivemind` reads and
 * prints: known msgpack bytes for each form, the round trip, and refusals that name the
 * problem.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/net/msgpack.h>

#include "../../../app/hivemind.h"

static uint8_t mp[256];
static char text[512], err[160];

static void expect_bytes(const char *in, const char *hex)
{
	long n = kw_hm_text_to_mp(in, mp, sizeof(mp), err, sizeof(err));
	char got[512];

	assert_true(n >= 0);
	for (long i = 0; i < n; i++)
		snprintf(got + 2 * i, 3, "%02x", mp[i]);
	got[2 * n] = '\0';
	assert_string_equal(got, hex);
}

static void test_hm_text_scalars_are_hivemind_msgpack(void **state)
{
	(void)state;
	expect_bytes("null", "c0");
	expect_bytes("true", "c3");
	expect_bytes("12", "0c");
	expect_bytes("-3", "fd");
	expect_bytes("300", "cd012c");
	expect_bytes("18446744073709551615", "cfffffffffffffffff");
	expect_bytes("-9223372036854775808", "d38000000000000000");
	expect_bytes("1.5", "cb3ff8000000000000");
	expect_bytes("\"hi\"", "a26869");
	expect_bytes("hi", "a26869");                /* a bare word is a str */
	expect_bytes("<00ff>", "c40200ff");
	expect_bytes("\"\\u00e9\"", "a2c3a9");
}

static void test_hm_text_containers_count_their_items(void **state)
{
	(void)state;
	expect_bytes("[1, \"a\", [true]]", "9301a16191c3");
	expect_bytes("{\"k\": null, \"j\": []}", "82a16bc0a16a90");
	expect_bytes("[]", "90");
}

static void test_hm_text_prints_what_it_reads(void **state)
{
	static const char *forms[] = {
		"[1, -2, 2.5, true, null, <00ff>, {\"a\": \"b\"}]",
		"\"tab\\there \\\"quoted\\\"\"",
		"{\"nested\": [[[]]]}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		long n = kw_hm_text_to_mp(forms[i], mp, sizeof(mp), err, sizeof(err));

		assert_true(n > 0);
		assert_int_equal(kw_hm_mp_to_text(mp, (size_t)n, text, sizeof(text)),
				 (int)strlen(forms[i]));
		assert_string_equal(text, forms[i]);
	}
}

static void test_hm_text_prints_ext_and_float32(void **state)
{
	static const uint8_t ext[] = { 0xd4, 0x50, 0x07 }, f32[] = { 0xca, 0x3f, 0xc0, 0, 0 };

	(void)state;
	assert_true(kw_hm_mp_to_text(ext, sizeof(ext), text, sizeof(text)) > 0);
	assert_string_equal(text, "ext(80, <07>)");
	assert_true(kw_hm_mp_to_text(f32, sizeof(f32), text, sizeof(text)) > 0);
	assert_string_equal(text, "1.5");
}

static void test_hm_text_refusals_name_the_problem(void **state)
{
	(void)state;
	assert_int_equal(kw_hm_text_to_mp("[1, 2", mp, sizeof(mp), err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "missing ']'"));
	assert_int_equal(kw_hm_text_to_mp("<0g>", mp, sizeof(mp), err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "hex"));
	assert_int_equal(kw_hm_text_to_mp("1 2", mp, sizeof(mp), err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "extra text"));
	assert_int_equal(kw_hm_text_to_mp("\"open", mp, sizeof(mp), err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "unterminated"));
	{
		/* one level deeper than the msgpack reader takes */
		char deep[2 * KW_MP_MAX_DEPTH + 8];
		int d = KW_MP_MAX_DEPTH + 1, i;

		for (i = 0; i < d; i++)
			deep[i] = '[';
		for (i = 0; i < d; i++)
			deep[d + i] = ']';
		deep[2 * d] = '\0';
		assert_int_equal(kw_hm_text_to_mp(deep, mp, sizeof(mp), err, sizeof(err)),
				 -KW_EINVAL);
		assert_non_null(strstr(err, "deep"));
		deep[2 * d - 1] = '\0';
		memmove(deep, deep + 1, 2 * d - 1);   /* KW_MP_MAX_DEPTH levels: fine */
		assert_true(kw_hm_text_to_mp(deep, mp, sizeof(mp), err, sizeof(err)) > 0);
	}
	assert_int_equal(kw_hm_text_to_mp("\"0123456789\"", mp, 4, err, sizeof(err)), -KW_ENOSPC);
	assert_int_equal(kw_hm_text_to_mp("18446744073709551616", mp, sizeof(mp), err, sizeof(err)),
			 -KW_EINVAL);
	assert_non_null(strstr(err, "2^64"));
}

static void test_hm_text_refuses_what_is_not_one_value(void **state)
{
	static const uint8_t two[] = { 0x01, 0x02 }, cut[] = { 0x92, 0x01 };

	(void)state;
	assert_int_equal(kw_hm_mp_to_text(two, sizeof(two), text, sizeof(text)), -KW_EBADMSG);
	assert_true(kw_hm_mp_to_text(cut, sizeof(cut), text, sizeof(text)) < 0);
	assert_int_equal(kw_hm_mp_to_text((const uint8_t *)"\xa5hello", 6, text, 4), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_text_scalars_are_hivemind_msgpack),
		cmocka_unit_test(test_hm_text_containers_count_their_items),
		cmocka_unit_test(test_hm_text_prints_what_it_reads),
		cmocka_unit_test(test_hm_text_prints_ext_and_float32),
		cmocka_unit_test(test_hm_text_refusals_name_the_problem),
		cmocka_unit_test(test_hm_text_refuses_what_is_not_one_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
