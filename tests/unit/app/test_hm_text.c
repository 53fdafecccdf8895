/*
 * The text form of Hivemind DHT values (app/hm_text.c) that `kwnode hivemind` reads and
 * prints: known msgpack bytes for each form, the round trip, and refusals that name the
 * problem; the JSON form `get` prints: every msgpack type, escapes, the "$" objects, bounds.
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

/* ---- the JSON form (kw_hm_mp_to_json) ---- */

static uint8_t hexbuf[4096];

/* hex msgpack -> JSON must be exactly want */
static void expect_json(const char *hex, const char *want)
{
	size_t n = strlen(hex) / 2;
	char got[1024];

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		hexbuf[i] = (uint8_t)v;
	}
	if (kw_hm_mp_to_json(hexbuf, n, got, sizeof(got)) != (int)strlen(want) ||
	    strcmp(got, want))
		fail_msg("%s: got '%s', want '%s'", hex, got, want);
	/* the counting pass and the buffer agree */
	assert_int_equal(kw_hm_mp_json_emit(hexbuf, n, NULL, NULL), (long)strlen(want));
}

static void test_hm_json_scalars(void **state)
{
	(void)state;
	expect_json("c0", "null");
	expect_json("c3", "true");
	expect_json("c2", "false");
	expect_json("0c", "12");
	expect_json("fd", "-3");
	expect_json("cfffffffffffffffff", "18446744073709551615");
	expect_json("d38000000000000000", "-9223372036854775808");
	expect_json("cb3ff8000000000000", "1.5");
	expect_json("cb3ff0000000000000", "1.0");              /* a float stays a float */
	expect_json("ca3fc00000", "1.5");                      /* float32, widened */
	expect_json("cb7ff8000000000000", "{\"$float\": \"NaN\"}");
	expect_json("cb7ff0000000000000", "{\"$float\": \"Infinity\"}");
	expect_json("cbfff0000000000000", "{\"$float\": \"-Infinity\"}");
	expect_json("c40200ff", "{\"$bin\": \"00ff\"}");
	expect_json("c400", "{\"$bin\": \"\"}");
}

static void test_hm_json_escapes_strings(void **state)
{
	(void)state;
	/* " \ newline tab cr backspace formfeed, 0x01, 0x7f */
	expect_json("ab225c0a090d080c017f6162", "\"\\\"\\\\\\n\\t\\r\\b\\f\\u0001\\u007fab\"");
	expect_json("a2c3a9", "\"\xc3\xa9\"");                  /* UTF-8 as it is */
	expect_json("a0", "\"\"");
	/* a str that is not UTF-8 is not a msgpack value hivemind writes: refused */
	assert_int_equal(kw_hm_mp_to_json((const uint8_t *)"\xa2\xc3\x28", 3, text, sizeof(text)),
			 -KW_EBADMSG);
	assert_string_equal(text, "");
}

static void test_hm_json_containers_and_maps(void **state)
{
	(void)state;
	expect_json("9301a16191c3", "[1, \"a\", [true]]");
	expect_json("90", "[]");
	expect_json("80", "{}");
	expect_json("82a16bc0a16a90", "{\"k\": null, \"j\": []}");
	/* an int key, a bin key, a '$' key: JSON cannot key them, so pairs */
	expect_json("8101a162", "{\"$map\": [[1, \"b\"]]}");
	expect_json("81c401ff02", "{\"$map\": [[{\"$bin\": \"ff\"}, 2]]}");
	expect_json("82a161c0a22462c3", "{\"$map\": [[\"a\", null], [\"$b\", true]]}");
	/* a map inside a $map pair stays a plain object when it can */
	expect_json("81018101a178", "{\"$map\": [[1, {\"$map\": [[1, \"x\"]]}]]}");
	expect_json("819101a178", "{\"$map\": [[[1], \"x\"]]}");
}

static void test_hm_json_ext_types(void **state)
{
	(void)state;
	/* 0x40 tuple (1, "a"): payload 92 01 a1 61 */
	expect_json("d6409201a161", "{\"$ext\": 64, \"value\": [1, \"a\"]}");
	/* 0x51 with a map payload {"a": 1} */
	expect_json("d651" "81a16101", "{\"$ext\": 81, \"value\": {\"a\": 1}}");
	/* 0x50 whose payload is not one value, and an unknown type: the bytes */
	expect_json("d5500102", "{\"$ext\": 80, \"hex\": \"0102\"}");
	expect_json("d4070a", "{\"$ext\": 7, \"hex\": \"0a\"}");
	expect_json("d4ff0a", "{\"$ext\": -1, \"hex\": \"0a\"}");
}

static size_t g_emitted;

static void count_emit(void *arg, const char *s, size_t n)
{
	(void)arg;
	(void)s;
	g_emitted += n;
}

static void test_hm_json_bounds(void **state)
{
	uint8_t deep[KW_MP_MAX_DEPTH + 8];
	int d;

	(void)state;
	/* KW_MP_MAX_DEPTH nested arrays print; one more is refused, with nothing emitted */
	for (d = 0; d < KW_MP_MAX_DEPTH; d++)
		deep[d] = 0x91;
	deep[d] = 0xc0;
	assert_int_equal(kw_hm_mp_to_json(deep, (size_t)d + 1, text, sizeof(text)),
			 2 * KW_MP_MAX_DEPTH + 4);
	for (d = 0; d <= KW_MP_MAX_DEPTH; d++)
		deep[d] = 0x91;
	deep[d] = 0xc0;
	g_emitted = 0;
	assert_true(kw_hm_mp_json_emit(deep, (size_t)d + 1, count_emit, NULL) < 0);
	assert_int_equal(g_emitted, 0);
	/* ext payloads count as a level: a tuple holding KW_MP_MAX_DEPTH - 1 arrays prints, one
	 * holding KW_MP_MAX_DEPTH is too deep */
	for (int k = KW_MP_MAX_DEPTH - 1; k <= KW_MP_MAX_DEPTH; k++) {
		deep[0] = 0xc7;
		deep[1] = (uint8_t)(k + 1);
		deep[2] = 0x40;
		for (d = 3; d < k + 3; d++)
			deep[d] = 0x91;
		deep[d] = 0xc0;
		if (k < KW_MP_MAX_DEPTH)
			assert_true(kw_hm_mp_to_json(deep, (size_t)d + 1, text, sizeof(text)) > 0);
		else
			assert_int_equal(kw_hm_mp_to_json(deep, (size_t)d + 1, text, sizeof(text)),
					 -KW_ELIMIT);
	}
	/* two values, a cut one, too small a buffer */
	assert_int_equal(kw_hm_mp_to_json((const uint8_t *)"\x01\x02", 2, text, sizeof(text)),
			 -KW_EBADMSG);
	assert_true(kw_hm_mp_to_json((const uint8_t *)"\x92\x01", 2, text, sizeof(text)) < 0);
	assert_int_equal(kw_hm_mp_to_json((const uint8_t *)"\xa5hello", 6, text, 7), -KW_ENOSPC);
	assert_string_equal(text, "");
	assert_int_equal(kw_hm_mp_to_json((const uint8_t *)"\xa5hello", 6, text, 8), 7);
	assert_string_equal(text, "\"hello\"");
	/* a JSON string of plain text */
	assert_int_equal(kw_hm_json_str("a\"b", text, sizeof(text)), 6);
	assert_string_equal(text, "\"a\\\"b\"");
	assert_int_equal(kw_hm_json_str("abc", text, 5), -KW_ENOSPC);
}

/* What get prints, typed back as a VALUE, is the same msgpack: the JSON form is lossless. */
static void test_hm_json_reads_back(void **state)
{
	static const char *const vals[] = {
		"c0", "c3", "0c", "fd", "cfffffffffffffffff", "cb3ff0000000000000",
		"cb7ff8000000000000", "cbfff0000000000000", "c40200ff", "c400",
		"ab225c0a090d080c017f6162", "9301a16191c3", "82a16bc0a16a90", "8101a162",
		"81c401ff02", "82a161c0a22462c3", "819101a178", "d6409201a161", "d65181a16101",
		"d5500102", "d4070a", "d4ff0a", "80", "90",
		/* a DictionaryDHTValue: ext 0x50 around [maxsize, latest, [[sub, value, exp]]] */
		"c7205093cb7ff0000000000000cb41d000000000000091930102cb41d0000000000000",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		size_t n = strlen(vals[i]) / 2;
		char json[1024], got[512];
		long m;

		for (size_t k = 0; k < n; k++) {
			unsigned v;

			assert_int_equal(sscanf(vals[i] + 2 * k, "%2x", &v), 1);
			hexbuf[k] = (uint8_t)v;
		}
		assert_true(kw_hm_mp_to_json(hexbuf, n, json, sizeof(json)) > 0);
		m = kw_hm_text_to_mp(json, mp, sizeof(mp), err, sizeof(err));
		if (m < 0)
			fail_msg("%s: '%s' does not read back: %s", vals[i], json, err);
		for (long k = 0; k < m; k++)
			snprintf(got + 2 * k, 3, "%02x", mp[k]);
		got[2 * m] = '\0';
		if (strcmp(got, vals[i]))
			fail_msg("%s: '%s' reads back as %s", vals[i], json, got);
	}
	/* a "$" object that is not one of the forms is an ordinary map; a broken one is refused */
	expect_bytes("{\"$raw\": 1}", "81a4247261770" "1");
	assert_int_equal(kw_hm_text_to_mp("{\"$bin\": \"0g\"}", mp, sizeof(mp), err, sizeof(err)),
			 -KW_EINVAL);
	assert_non_null(strstr(err, "hex"));
	assert_int_equal(kw_hm_text_to_mp("{\"$ext\": 300, \"hex\": \"\"}", mp, sizeof(mp), err,
					  sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "-128..127"));
	assert_int_equal(kw_hm_text_to_mp("{\"$map\": [[1]]}", mp, sizeof(mp), err, sizeof(err)),
			 -KW_EINVAL);
	assert_int_equal(kw_hm_text_to_mp("{\"$float\": \"nan\"}", mp, sizeof(mp), err,
					  sizeof(err)), -KW_EINVAL);
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
		cmocka_unit_test(test_hm_json_scalars),
		cmocka_unit_test(test_hm_json_escapes_strings),
		cmocka_unit_test(test_hm_json_containers_and_maps),
		cmocka_unit_test(test_hm_json_ext_types),
		cmocka_unit_test(test_hm_json_bounds),
		cmocka_unit_test(test_hm_json_reads_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
