/* net/peer/peer_id.c: peer IDs from keys, text forms, validation (libp2p/specs
 * peer-ids/peer-ids.md). */
#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include <kw/err.h>
#include <kw/net/key.h>

static void id_from_hex(const char *hex, struct kw_peer_id *id)
{
	int n = test_unhex(hex, id->bytes, sizeof(id->bytes));

	assert_true(n > 0);
	id->len = (uint8_t)n;
}

static void test_peer_id_of_ed25519_key_is_identity_multihash(void **state)
{
	uint8_t pb[64];
	struct kw_pubkey pk;
	struct kw_peer_id id, want;
	char txt[KW_PEER_ID_TEXT_MAX];
	int n = test_unhex(ED25519_PUB_PB, pb, sizeof(pb));

	assert_int_equal(kw_pubkey_decode(pb, (size_t)n, &pk), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&pk, &id), 0);
	id_from_hex(ED25519_PEER_MH, &want);
	assert_true(kw_peer_id_equal(&id, &want));
	assert_int_equal(kw_peer_id_to_text(&id, txt, sizeof(txt)), 0);
	assert_string_equal(txt, ED25519_PEER_B58);
	assert_int_equal(kw_peer_id_to_cid_text(&id, txt, sizeof(txt)), 0);
	assert_string_equal(txt, ED25519_PEER_CID);
	assert_true(kw_peer_id_matches_pubkey(&id, &pk));
}

static void test_peer_id_text_forms_parse_to_spec_multihashes(void **state)
{
	static const struct { const char *txt, *mh; } v[] = {
		{ ED25519_PEER_B58, ED25519_PEER_MH }, { ED25519_PEER_CID, ED25519_PEER_MH },
		{ SECP_PEER_B58, SECP_PEER_MH },       { SECP_PEER_CID, SECP_PEER_MH },
		{ RSA_PEER_B58, RSA_PEER_MH },         { RSA_PEER_CID, RSA_PEER_MH },
		{ ECDSA_PEER_B58, ECDSA_PEER_MH },     { ECDSA_PEER_CID, ECDSA_PEER_MH },
		{ "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
		  "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9" },
		{ "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
		  "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9" },
		{ "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
		  "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b" },
		{ "bafzaajaiaejcal72gwuz2or47oyxxn6b3rkwdmmkrxgkjxzy3rqt5kczyn7lcm3l",
		  "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct kw_peer_id id, want;
		char txt[KW_PEER_ID_TEXT_MAX];

		id_from_hex(v[i].mh, &want);
		assert_int_equal(kw_peer_id_from_text(v[i].txt, &id), 0);
		assert_true(kw_peer_id_equal(&id, &want));
		/* Printing gives the same text back in its own form. */
		if (v[i].txt[0] == 'b')
			assert_int_equal(kw_peer_id_to_cid_text(&id, txt, sizeof(txt)), 0);
		else
			assert_int_equal(kw_peer_id_to_text(&id, txt, sizeof(txt)), 0);
		assert_string_equal(txt, v[i].txt);
	}
}

/* The peer-ids spec Ed25519 key's CIDv1 in base36 (the IPNS-name form). */
static void test_peer_id_parses_base36_cid(void **state)
{
	struct kw_peer_id id, want;

	id_from_hex(ED25519_PEER_MH, &want);
	assert_int_equal(kw_peer_id_from_text("k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1oe",
					      &id), 0);
	assert_true(kw_peer_id_equal(&id, &want));
	/* Last digit dropped: the CID no longer frames a multihash. */
	assert_int_equal(kw_peer_id_from_text("k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1o",
					      &id), -KW_EINVAL);
	assert_int_equal(kw_peer_id_from_text("K51QZI5UQU5DGY8QSQ67HBZ73JQKW87L3FGF4A91QB0D9B5173TIR7N4VXK1OE",
					      &id), -KW_EINVAL);
}

static void test_peer_id_text_parser_rejects_junk(void **state)
{
	struct kw_peer_id id;

	assert_int_equal(kw_peer_id_from_text("", &id), -KW_EINVAL);
	assert_int_equal(kw_peer_id_from_text("hello", &id), -KW_EINVAL);
	/* One character dropped: the multihash length no longer matches. */
	assert_int_equal(kw_peer_id_from_text("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p", &id),
			 -KW_EINVAL);
	/* A CIDv1 with another codec (dag-pb 0x70: "bafybei...") is not a peer ID. */
	assert_int_equal(kw_peer_id_from_text("bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe", &id),
			 -KW_EINVAL);
	assert_int_equal(kw_peer_id_from_text("BAFZBEIE5745RPV2M6TJYUUGYWY4D5EWRQGQQHFNF445HE3OMZPJBX5XQXE", &id),
			 -KW_EINVAL);
	/* Base58 of an identity multihash whose payload is not a PublicKey. */
	assert_int_equal(kw_peer_id_from_text("1112", &id), -KW_EINVAL);
}

static void test_peer_id_from_bytes_checks_inlined_key(void **state)
{
	struct kw_peer_id want, id;

	id_from_hex(ED25519_PEER_MH, &want);
	assert_int_equal(kw_peer_id_from_bytes(want.bytes, want.len, &id), 0);
	assert_int_equal(kw_peer_id_from_bytes(want.bytes, want.len - 1u, &id), -KW_EINVAL);
	want.bytes[5] = 0x1f;  /* PublicKey Data length no longer 32 */
	assert_int_equal(kw_peer_id_from_bytes(want.bytes, want.len, &id), -KW_EINVAL);
	assert_int_equal(kw_peer_id_from_bytes(want.bytes, KW_PEER_ID_MAX + 1, &id), -KW_EINVAL);
}

static void test_peer_id_inlined_public_key_is_recoverable(void **state)
{
	struct kw_peer_id id;
	struct kw_pubkey pk;
	uint8_t pb[64], got[64];
	size_t len;
	int n = test_unhex(ED25519_PUB_PB, pb, sizeof(pb));

	id_from_hex(ED25519_PEER_MH, &id);
	assert_int_equal(kw_peer_id_pubkey(&id, &pk), 0);
	assert_int_equal(kw_pubkey_encode(&pk, got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, pb, len);
	id_from_hex(RSA_PEER_MH, &id);
	assert_int_equal(kw_peer_id_pubkey(&id, &pk), -KW_ENOENT);
}

static void test_peer_id_text_output_checks_capacity(void **state)
{
	struct kw_peer_id id;
	char txt[20];

	id_from_hex(ED25519_PEER_MH, &id);
	assert_int_equal(kw_peer_id_to_text(&id, txt, sizeof(txt)), -KW_ENOSPC);
	assert_int_equal(kw_peer_id_to_cid_text(&id, txt, sizeof(txt)), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_id_of_ed25519_key_is_identity_multihash),
		cmocka_unit_test(test_peer_id_text_forms_parse_to_spec_multihashes),
		cmocka_unit_test(test_peer_id_parses_base36_cid),
		cmocka_unit_test(test_peer_id_text_parser_rejects_junk),
		cmocka_unit_test(test_peer_id_from_bytes_checks_inlined_key),
		cmocka_unit_test(test_peer_id_inlined_public_key_is_recoverable),
		cmocka_unit_test(test_peer_id_text_output_checks_capacity),
	};
	return cmocka_run_group_tests_name("net/peer/peer_id", tests, NULL, NULL);
}
