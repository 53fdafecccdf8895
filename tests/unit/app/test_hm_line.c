/*
 * The control line of `kwnode hivemind` against a running node (app/hm_line.c): the request
 * line's exact text and round trip, refusals that name the field, and the reply sink that
 * carries the command's stdout and stderr lines and exit code.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>

#include "../../../app/hm_line.h"

static struct kw_hm_req r, back;
static char line[KW_HM_LINE_MAX + 1], err[160];

static void test_hm_line_encodes_fields_in_order(void **state)
{
	(void)state;
	memset(&r, 0, sizeof(r));
	r.verb = KW_HM_STORE;
	r.flags = KW_HM_REQ_HEX | KW_HM_REQ_LATEST;
	r.exp_s = 600;
	strcpy(r.key, "ab");
	r.sub[0] = 0xa1;
	r.sub[1] = 'p';
	r.sub_len = 2;
	r.val[0] = 0xc3;
	r.val_len = 1;
	assert_int_equal(kw_hm_req_encode(&r, line, sizeof(line)), 37);
	assert_string_equal(line, "hivemind store Lx 0 600 6162 a170 c3\n");

	r.verb = KW_HM_SERVERS;
	r.flags = 0;
	r.num_blocks = 32;
	r.sub_len = r.val_len = 0;
	assert_true(kw_hm_req_encode(&r, line, sizeof(line)) > 0);
	assert_string_equal(line, "hivemind servers - 32 600 6162 - -\n");
	/* too small a buffer is refused, never cut */
	assert_int_equal(kw_hm_req_encode(&r, line, 40), -KW_ENOSPC);
}

static void test_hm_line_round_trips_the_largest_request(void **state)
{
	long n;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.verb = KW_HM_STORE;
	r.flags = KW_HM_REQ_LATEST | KW_HM_REQ_JSON | KW_HM_REQ_HEX | KW_HM_REQ_SUBKEYS;
	r.num_blocks = KW_HM_REQ_BLOCKS_MAX;
	r.exp_s = KW_HM_REQ_EXP_MAX;
	memset(r.key, 'k', KW_HM_REQ_KEY_MAX);
	r.key[KW_HM_REQ_KEY_MAX] = '\0';
	for (int i = 0; i < KW_HM_REQ_VAL_MAX; i++) {
		r.sub[i] = (uint8_t)i;
		r.val[i] = (uint8_t)(255 - i);
	}
	r.sub_len = r.val_len = KW_HM_REQ_VAL_MAX;
	n = kw_hm_req_encode(&r, line, sizeof(line));
	assert_true(n > 0 && n <= KW_HM_LINE_MAX);
	line[n - 1] = '\0';
	assert_int_equal(kw_hm_req_decode(&back, line, err, sizeof(err)), 0);
	assert_int_equal(back.verb, KW_HM_STORE);
	assert_int_equal(back.flags,
			 KW_HM_REQ_LATEST | KW_HM_REQ_JSON | KW_HM_REQ_HEX | KW_HM_REQ_SUBKEYS);
	assert_int_equal(back.num_blocks, KW_HM_REQ_BLOCKS_MAX);
	assert_int_equal(back.exp_s, KW_HM_REQ_EXP_MAX);
	assert_string_equal(back.key, r.key);
	assert_int_equal(back.sub_len, KW_HM_REQ_VAL_MAX);
	assert_int_equal(back.val_len, KW_HM_REQ_VAL_MAX);
	assert_memory_equal(back.sub, r.sub, KW_HM_REQ_VAL_MAX);
	assert_memory_equal(back.val, r.val, KW_HM_REQ_VAL_MAX);
}

static void test_hm_line_decodes_ping_and_get(void **state)
{
	(void)state;
	/* ping's KEY is the multiaddr text "/ip4/1" */
	assert_int_equal(kw_hm_req_decode(&back, "hivemind ping - 0 600 2f6970342f31 - -", err,
					  sizeof(err)), 0);
	assert_int_equal(back.verb, KW_HM_PING);
	assert_string_equal(back.key, "/ip4/1");
	assert_int_equal(kw_hm_req_decode(&back, "hivemind get j 0 1 4B - -", err, sizeof(err)), 0);
	assert_int_equal(back.verb, KW_HM_GET);
	assert_int_equal(back.flags, KW_HM_REQ_JSON);
	assert_string_equal(back.key, "K");
	assert_int_equal(back.sub_len, 0);
	/* get --subkeys: the k flag, after the others */
	assert_int_equal(kw_hm_req_decode(&back, "hivemind get Lk 0 1 4B - -", err, sizeof(err)),
			 0);
	assert_int_equal(back.flags, KW_HM_REQ_LATEST | KW_HM_REQ_SUBKEYS);
	assert_int_equal(kw_hm_req_decode(&back, "hivemind get kL 0 1 4B - -", err, sizeof(err)),
			 -KW_EINVAL);
}

static void expect_refused(const char *l, const char *why)
{
	err[0] = '\0';
	assert_int_equal(kw_hm_req_decode(&back, l, err, sizeof(err)), -KW_EINVAL);
	if (!strstr(err, why))
		fail_msg("'%s': error '%s' does not say '%s'", l, err, why);
}

static void test_hm_line_refusals_name_the_field(void **state)
{
	(void)state;
	expect_refused("dht get 6b", "expected 'hivemind VERB");
	expect_refused("hivemind get - 0 600 6b -", "6 fields");
	expect_refused("hivemind get - 0 600 6b - - x", "more than 7");
	expect_refused("hivemind get  0 600 6b - -", "FLAGS is empty");
	expect_refused("hivemind put - 0 600 6b - -", "unknown VERB");
	expect_refused("hivemind get xL 0 600 6b - -", "FLAGS");     /* out of order */
	expect_refused("hivemind get LL 0 600 6b - -", "FLAGS");     /* twice */
	expect_refused("hivemind get q 0 600 6b - -", "FLAGS");
	expect_refused("hivemind get - 01 600 6b - -", "NUM_BLOCKS");
	expect_refused("hivemind get - 100001 600 6b - -", "NUM_BLOCKS");
	expect_refused("hivemind get - 0 0 6b - -", "EXPIRATION");
	expect_refused("hivemind get - 0 31536001 6b - -", "EXPIRATION");
	expect_refused("hivemind get - 0 -1 6b - -", "EXPIRATION");
	expect_refused("hivemind get - 0 600 - - -", "KEY");
	expect_refused("hivemind get - 0 600 6 - -", "KEY");
	expect_refused("hivemind get - 0 600 6g - -", "KEY");
	expect_refused("hivemind get - 0 600 6b00 - -", "NUL");
	expect_refused("hivemind get - 0 600 ff - -", "not UTF-8");
	expect_refused("hivemind get - 0 600 6b a - -", "fields");
	expect_refused("hivemind get - 0 600 6b zz -", "SUBKEY");
	expect_refused("hivemind get - 0 600 6b - c3", "VALUE is not taken");
	expect_refused("hivemind store - 0 600 6b - -", "VALUE is needed");
	expect_refused("hivemind ping - 0 600 6b a0 -", "SUBKEY is not taken");
	expect_refused("hivemind servers - 0 600 612e62 - -", "dht_prefix");   /* "a.b" */
}

static void test_hm_line_sink_tags_lines_and_ends_with_exit(void **state)
{
	static char buf[256];
	struct kw_hm_sink s;
	size_t n;

	(void)state;
	kw_hm_sink_init(&s, buf, sizeof(buf));
	kw_hm_sink_write(&s, 1, "stored on 2", 11);
	kw_hm_sink_write(&s, 1, " of 2 nodes\npeer\tok\n", 20);
	kw_hm_sink_write(&s, 2, "kwnode hivemind: x\n", 19);
	kw_hm_sink_write(&s, 1, "no newline", 10);
	n = kw_hm_sink_finish(&s, 3);
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "out stored on 2 of 2 nodes\nout peer\tok\n"
			    "err kwnode hivemind: x\nout no newline\nexit 3\n");
}

static void test_hm_line_sink_cuts_and_says_so(void **state)
{
	static char buf[400], big[1000];
	struct kw_hm_sink s;
	size_t n;

	(void)state;
	memset(big, 'v', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	kw_hm_sink_init(&s, buf, sizeof(buf));
	kw_hm_sink_write(&s, 1, "first\n", 6);
	kw_hm_sink_write(&s, 1, big, sizeof(big));
	kw_hm_sink_write(&s, 1, "later\n", 6);
	n = kw_hm_sink_finish(&s, 0);
	assert_true(n < sizeof(buf));
	assert_non_null(strstr(buf, "out first\n"));
	assert_null(strstr(buf, "later"));
	assert_non_null(strstr(buf, "err kwnode hivemind: the output was cut"));
	assert_int_equal(strcmp(buf + n - 7, "exit 0\n"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_line_encodes_fields_in_order),
		cmocka_unit_test(test_hm_line_round_trips_the_largest_request),
		cmocka_unit_test(test_hm_line_decodes_ping_and_get),
		cmocka_unit_test(test_hm_line_refusals_name_the_field),
		cmocka_unit_test(test_hm_line_sink_tags_lines_and_ends_with_exit),
		cmocka_unit_test(test_hm_line_sink_cuts_and_says_so),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
