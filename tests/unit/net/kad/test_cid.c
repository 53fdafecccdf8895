/*
 * net/kad/cid.c: CIDs and multihashes as text. The vectors were printed by js multiformats
 * (the version in tests/interop/node_modules) and recomputed independently with python3
 * hashlib + base64.b32encode / a base58 loop: "hello world" hashed with sha2-256 is
 * b94d27b9...cde9.
 */
#include "harness.h"
#include <string.h>

#include <kw/err.h>
#include <kw/net/cid.h>

#include "../peer/hex.h"
#include "../peer/vectors.h"

#define HW_MH     "1220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
#define HW_RAW    "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
#define HW_DAGPB  "bafybeifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
#define HW_V0     "QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4"
#define HW_Z      "zb2rhj7crUKTQYRGCRATFaQ6YFLTde2YzdqbbhAASkL9uRDXn"
#define HW_K      "k2cwued9o1pvrt3q271rrqbo49x30tbxwpoeaq75z14e5ui2rzygpbe1"
/* sha2-512("hello world"), raw codec, as js prints it. */
#define HW512_RAW "bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid5qf3t35yvkc5e5ottlw6"
#define HW512_MH  "1340309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f"
/* identity("abc"), raw codec. */
#define ID_RAW    "bafkqaa3bmjrq"

static struct kw_cid c;
static char err[KW_CID_ERR_MAX];

static void assert_mh(const char *hex)
{
	uint8_t want[KW_MULTIHASH_MAX];
	int n = test_unhex(hex, want, sizeof(want));

	assert_true(n > 0);
	assert_int_equal(c.mhlen, n);
	assert_memory_equal(c.mh, want, (size_t)n);
}

static void parse_ok(const char *s, unsigned version, uint64_t codec, const char *mh_hex)
{
	err[0] = '\0';
	assert_int_equal(kw_cid_from_text(s, &c, err, sizeof(err)), 0);
	assert_int_equal(c.version, version);
	assert_int_equal(c.codec, codec);
	assert_mh(mh_hex);
}

static void parse_bad(const char *s, const char *reason)
{
	err[0] = '\0';
	assert_int_equal(kw_cid_from_text(s, &c, err, sizeof(err)), -KW_EINVAL);
	if (!strstr(err, reason))
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s, err, reason);
}

static void test_cid_v1_raw_base32_as_js_prints_it(void **state)
{
	parse_ok(HW_RAW, 1, KW_CODEC_RAW, HW_MH);
}

static void test_cid_v1_dag_pb_base32(void **state)
{
	parse_ok(HW_DAGPB, 1, KW_CODEC_DAG_PB, HW_MH);
}

static void test_cid_v0(void **state)
{
	parse_ok(HW_V0, 0, KW_CODEC_DAG_PB, HW_MH);
}

static void test_cid_v1_base58_and_base36(void **state)
{
	parse_ok(HW_Z, 1, KW_CODEC_RAW, HW_MH);
	parse_ok(HW_K, 1, KW_CODEC_RAW, HW_MH);
}

static void test_cid_v1_upper_base32_and_hex_multibase(void **state)
{
	parse_ok("BAFKREIFZJUT3TE2NHYEKKLSS27NH3K72YSCO7Y32KOAO5EEI66WOF36N5E", 1, KW_CODEC_RAW,
		 HW_MH);
	parse_ok("f0155" HW_MH, 1, KW_CODEC_RAW, HW_MH);
}

static void test_cid_sha512_and_identity_multihash(void **state)
{
	parse_ok(HW512_RAW, 1, KW_CODEC_RAW, HW512_MH);
	parse_ok(ID_RAW, 1, KW_CODEC_RAW, "0003616263");
}

static void test_cid_bare_multihash_hex_and_base58(void **state)
{
	parse_ok(HW_MH, 0, KW_CODEC_RAW, HW_MH);
	parse_ok(ED25519_PEER_B58, 0, KW_CODEC_RAW, ED25519_PEER_MH);
}

static void test_cid_peer_id_cid_gives_its_multihash(void **state)
{
	parse_ok(ED25519_PEER_CID, 1, KW_CODEC_LIBP2P_KEY, ED25519_PEER_MH);
}

static void test_cid_raw_text_prints_what_js_prints(void **state)
{
	char out[KW_CID_TEXT_MAX];
	uint8_t mh[KW_MULTIHASH_MAX];
	int n = test_unhex(HW_MH, mh, sizeof(mh));

	assert_int_equal(kw_cid_raw_text(mh, (size_t)n, out, sizeof(out)), strlen(HW_RAW));
	assert_string_equal(out, HW_RAW);
	n = test_unhex(HW512_MH, mh, sizeof(mh));
	assert_int_equal(kw_cid_raw_text(mh, (size_t)n, out, sizeof(out)), strlen(HW512_RAW));
	assert_string_equal(out, HW512_RAW);
	assert_int_equal(kw_cid_raw_text(mh, (size_t)n, out, 20), -KW_ENOSPC);
	assert_int_equal(kw_cid_raw_text(mh, 5, out, sizeof(out)), -KW_EINVAL);
}

static void test_cid_to_text_round_trips(void **state)
{
	char out[KW_CID_TEXT_MAX];
	const char *all[] = { HW_RAW, HW_DAGPB, HW_V0, HW512_RAW, ID_RAW, ED25519_PEER_CID };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_int_equal(kw_cid_from_text(all[i], &c, err, sizeof(err)), 0);
		assert_int_equal(kw_cid_to_text(&c, out, sizeof(out)), strlen(all[i]));
		assert_string_equal(out, all[i]);
	}
}

static void test_cid_bad_text_is_refused_with_a_reason(void **state)
{
	char s[200];

	parse_bad("", "empty");
	parse_bad("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5", "");
	parse_bad("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5eaa",
		  "digest length 32 but 33");
	parse_bad("BAFKREIFZJUT3TE2NHYEKKLSS27NH3K72YSCO7Y32KOAO5EEI66WOF36n5e", "alphabet");
	parse_bad("f0155" HW_MH "0", "");
	parse_bad("mAVUSILlNJ7mTTT4IpS5S19p9q_rEhO/jelOA7pCI96zi783p", "multibase 'm'");
	parse_bad("bafkre!fzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "alphabet");
	parse_bad("QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L0", "CIDv0");
	parse_bad("1220b94d", "digest length 32 but 2");
	parse_bad("1221b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde900",
		  "sha2-256 digest of 33");
	parse_bad("hello world", "base58btc");
	/* CIDv2 ("bai..." is 0x02 ...) and a bad varint. */
	parse_bad("bajkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "version");
	memset(s, 'b', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	parse_bad(s, "longer than");
}

static void test_multihash_check_limits(void **state)
{
	uint8_t mh[80];

	memset(mh, 0, sizeof(mh));
	mh[0] = 0x13;
	mh[1] = 65;
	assert_int_equal(kw_multihash_check(mh, 67, err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "more than"));
	mh[1] = 64;
	assert_int_equal(kw_multihash_check(mh, 66, err, sizeof(err)), 0);
	mh[0] = 0x80;   /* code varint that never ends */
	assert_int_equal(kw_multihash_check(mh, 1, err, sizeof(err)), -KW_EINVAL);
	assert_int_equal(kw_multihash_check(mh, 0, err, sizeof(err)), -KW_EINVAL);
}

static void test_cid_from_bytes(void **state)
{
	uint8_t b[KW_MULTIHASH_MAX + 4];
	int n = test_unhex("0155" HW_MH, b, sizeof(b));

	assert_int_equal(kw_cid_from_bytes(b, (size_t)n, &c, err, sizeof(err)), 0);
	assert_int_equal(c.version, 1);
	assert_mh(HW_MH);
	assert_int_equal(kw_cid_from_bytes(b + 2, (size_t)n - 2, &c, err, sizeof(err)), 0);
	assert_int_equal(c.version, 0);
	assert_int_equal(kw_cid_from_bytes(b, 1, &c, err, sizeof(err)), -KW_EINVAL);
	b[0] = 3;
	assert_int_equal(kw_cid_from_bytes(b, (size_t)n, &c, err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "version 3"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cid_v1_raw_base32_as_js_prints_it),
		cmocka_unit_test(test_cid_v1_dag_pb_base32),
		cmocka_unit_test(test_cid_v0),
		cmocka_unit_test(test_cid_v1_base58_and_base36),
		cmocka_unit_test(test_cid_v1_upper_base32_and_hex_multibase),
		cmocka_unit_test(test_cid_sha512_and_identity_multihash),
		cmocka_unit_test(test_cid_bare_multihash_hex_and_base58),
		cmocka_unit_test(test_cid_peer_id_cid_gives_its_multihash),
		cmocka_unit_test(test_cid_raw_text_prints_what_js_prints),
		cmocka_unit_test(test_cid_to_text_round_trips),
		cmocka_unit_test(test_cid_bad_text_is_refused_with_a_reason),
		cmocka_unit_test(test_multihash_check_limits),
		cmocka_unit_test(test_cid_from_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
