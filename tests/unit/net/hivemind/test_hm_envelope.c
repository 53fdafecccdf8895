/*
 * Unary-call envelope (net/hivemind/envelope.c): the frames of a DHTProtocol.rpc_ping call
 * and its answers byte for byte (derived from the field numbers of hivemind
 * hivemind/proto/p2pd.proto and the ping messages of doc/net-hivemind.md), and every rule a
 * Go p2pd or hivemind peer enforces refused with a reason that names it.
 */
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/err.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/varint.h>

/* UUID 00112233-4455-6677-8899-aabbccddeeff */
static const uint8_t call_id[16] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};
/* Callee PeerID: identity multihash of the Ed25519 key with seed 00..1f. */
static const char peer_hex[] =
	"00240801122003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
/* PingRequest{peer{node_id}, validate=true} and PingResponse{peer, dht_time, available}. */
static const char ping_req_hex[] = "12160a14f32585e1eaf96891313b1479da1501ccc4e13f421801";
static const char ping_resp_hex[] =
	"12160a14f32585e1eaf96891313b1479da1501ccc4e13f422100001040fc54d9412801";

static const char caller_frame_hex[] =
	"6e0a1000112233445566778899aabbccddeeff1a5a0a2600240801122003a107bff3ce10be1d70dd18e74b"
	"c09967e4d6309ba50d5f1ddc8664125531b8121444485450726f746f636f6c2e7270635f70696e671a1a12"
	"160a14f32585e1eaf96891313b1479da1501ccc4e13f421801";
static const char responder_frame_hex[] =
	"390a1000112233445566778899aabbccddeeff22250a2312160a14f32585e1eaf96891313b1479da1501cc"
	"c4e13f422100001040fc54d9412801";
static const char error_frame_hex[] =
	"230a1000112233445566778899aabbccddeeff220f120d4b65794572726f722827782729";
static const char empty_call_hex[] =
	"2e0a1000112233445566778899aabbccddeeff1a1a0a00121444485450726f746f636f6c2e7270635f70"
	"696e671a00";

static uint8_t peer[64], req[64], resp[64], want[512], out[512];
static int peer_len, req_len, resp_len;
static struct kw_hm_envelope e;

static int setup(void **state)
{
	peer_len = test_unhex(peer_hex, peer, sizeof(peer));
	req_len = test_unhex(ping_req_hex, req, sizeof(req));
	resp_len = test_unhex(ping_resp_hex, resp, sizeof(resp));
	return peer_len > 0 && req_len > 0 && resp_len > 0 ? 0 : -1;
}

static size_t unhex_want(const char *hex)
{
	int n = test_unhex(hex, want, sizeof(want));

	assert_true(n > 0);
	return (size_t)n;
}

static void assert_bytes(const struct kw_hm_bytes *b, const void *p, size_t len)
{
	assert_int_equal(b->len, len);
	if (len)
		assert_memory_equal(b->p, p, len);
}

static void test_hm_env_call_frame_matches_vector(void **state)
{
	size_t n = unhex_want(caller_frame_hex);

	kw_hm_env_call(&e, call_id, peer, (size_t)peer_len, "DHTProtocol.rpc_ping", req,
		       (size_t)req_len);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_env_size(&e), (long)n);
}

static void test_hm_env_call_frame_decodes_to_its_fields(void **state)
{
	size_t n = unhex_want(caller_frame_hex);
	const char *why = "unset";

	assert_int_equal(kw_hm_env_decode(want, n, &e, &why), (long)n);
	assert_string_equal(why, "");
	assert_int_equal(e.kind, KW_HM_ENV_CALL);
	assert_memory_equal(e.call_id, call_id, 16);
	assert_bytes(&e.peer, peer, (size_t)peer_len);
	assert_bytes(&e.proto, "DHTProtocol.rpc_ping", 20);
	assert_bytes(&e.data, req, (size_t)req_len);
	assert_true(e.data.p > want && e.data.p < want + n);  /* a view, not a copy */
}

static void test_hm_env_response_frame_matches_vector_and_decodes(void **state)
{
	size_t n = unhex_want(responder_frame_hex);

	kw_hm_env_response(&e, call_id, resp, (size_t)resp_len);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	memset(&e, 0xa5, sizeof(e));
	assert_int_equal(kw_hm_env_decode(want, n, &e, NULL), (long)n);
	assert_int_equal(e.kind, KW_HM_ENV_RESPONSE);
	assert_false(e.is_error);
	assert_bytes(&e.result, resp, (size_t)resp_len);
}

static void test_hm_env_error_frame_matches_vector_and_reads_as_python_does(void **state)
{
	size_t n = unhex_want(error_frame_hex);
	char text[64];

	kw_hm_env_error(&e, call_id, "KeyError('x')", 13);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_env_decode(want, n, &e, NULL), (long)n);
	assert_int_equal(e.kind, KW_HM_ENV_RESPONSE);
	assert_true(e.is_error);
	assert_int_equal(kw_hm_error_text(e.result.p, e.result.len, text, sizeof(text)), 13);
	assert_string_equal(text, "KeyError('x')");
}

static void test_hm_env_empty_required_fields_are_still_emitted(void **state)
{
	size_t n = unhex_want(empty_call_hex);

	kw_hm_env_call(&e, call_id, NULL, 0, "DHTProtocol.rpc_ping", NULL, 0);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_env_decode(want, n, &e, NULL), (long)n);
	assert_int_equal(e.kind, KW_HM_ENV_CALL);
	assert_int_equal(e.peer.len, 0);
	assert_int_equal(e.data.len, 0);
}

static void test_hm_env_empty_response_keeps_its_arm(void **state)
{
	/* rpc_push answers an empty ExpertResponse: unaryResponse = { response: "" } = 0a 00.
	 * 0a 10 <id> (18) + 22 02 0a 00 (4) = 22 bytes -> prefix 0x16. */
	size_t n = unhex_want("160a1000112233445566778899aabbccddeeff22020a00");

	kw_hm_env_response(&e, call_id, NULL, 0);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_env_decode(want, n, &e, NULL), (long)n);
	assert_int_equal(e.kind, KW_HM_ENV_RESPONSE);
	assert_false(e.is_error);
	assert_int_equal(e.result.len, 0);
}

static void test_hm_env_cancel_round_trips(void **state)
{
	/* 0a 10 <id> + 2a 00 = 20 bytes */
	size_t n = unhex_want("140a1000112233445566778899aabbccddeeff2a00");

	memset(&e, 0, sizeof(e));
	memcpy(e.call_id, call_id, 16);
	e.kind = KW_HM_ENV_CANCEL;
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_env_decode(want, n, &e, NULL), (long)n);
	assert_int_equal(e.kind, KW_HM_ENV_CANCEL);
}

/* Decodes hex (a whole frame) and expects err with the reason text. */
static void expect_refused(const char *hex, long err, const char *reason)
{
	size_t n = unhex_want(hex);
	const char *why = NULL;

	assert_int_equal(kw_hm_env_decode(want, n, &e, &why), err);
	assert_non_null(why);
	assert_string_equal(why, reason);
}

static void test_hm_env_call_id_of_wrong_length_is_refused(void **state)
{
	/* 15 and 17 bytes, with a valid cancel arm */
	expect_refused("130a0f112233445566778899aabbccddeeff2a00", -KW_EPROTO, "callId is not 16 bytes");
	expect_refused("150a110000112233445566778899aabbccddeeff2a00", -KW_EPROTO,
		       "callId is not 16 bytes");
	expect_refused("040a002a00", -KW_EPROTO, "callId is not 16 bytes");
}

static void test_hm_env_missing_required_fields_are_named(void **state)
{
	/* no callId: just a cancel arm */
	expect_refused("022a00", -KW_EPROTO, "callId missing");
	/* callUnary without data: 12 05 "x" -> 1a 05 0a 00 12 01 78 */
	expect_refused("190a1000112233445566778899aabbccddeeff1a050a00120178", -KW_EPROTO,
		       "callUnary.data missing");
	/* callUnary without proto */
	expect_refused("180a1000112233445566778899aabbccddeeff1a040a001a00", -KW_EPROTO,
		       "callUnary.proto missing");
	/* callUnary without peer */
	expect_refused("190a1000112233445566778899aabbccddeeff1a051201781a00", -KW_EPROTO,
		       "callUnary.peer missing");
}

static void test_hm_env_arm_count_must_be_one(void **state)
{
	expect_refused("120a1000112233445566778899aabbccddeeff", -KW_EPROTO,
		       "no callUnary, unaryResponse or cancel");
	expect_refused("180a1000112233445566778899aabbccddeeff22020a002a00", -KW_EPROTO,
		       "more than one of callUnary, unaryResponse, cancel");
	/* The control-socket-only addUnaryHandler arm (2) is not an arm here. */
	expect_refused("1c0a1000112233445566778899aabbccddeeff1208" "0a0478797a7a1001", -KW_EPROTO,
		       "no callUnary, unaryResponse or cancel");
}

static void test_hm_env_response_needs_exactly_one_of_response_and_error(void **state)
{
	expect_refused("140a1000112233445566778899aabbccddeeff2200", -KW_EPROTO,
		       "unaryResponse has neither response nor error");
	expect_refused("180a1000112233445566778899aabbccddeeff22040a001200", -KW_EPROTO,
		       "unaryResponse has both response and error");
}

static void test_hm_env_truncated_frames_ask_for_more(void **state)
{
	size_t n = unhex_want(caller_frame_hex);

	for (size_t k = 0; k < n; k++)
		assert_int_equal(kw_hm_env_decode(want, k, &e, NULL), -KW_EAGAIN);
}

static void test_hm_env_oversize_prefix_is_refused_before_the_body(void **state)
{
	uint8_t pfx[9];
	int h = kw_uvarint_encode((uint64_t)KW_HM_UNARY_MAX + 1, pfx, sizeof(pfx));
	const char *why;

	assert_true(h > 0);
	assert_int_equal(kw_hm_env_decode(pfx, (size_t)h, &e, &why), -KW_EMSGSIZE);
	assert_string_equal(why, "envelope larger than KW_NET_HIVEMIND_UNARY_MAX_BYTES");
	/* Exactly the cap is fine: the prefix alone asks for the body. */
	h = kw_uvarint_encode(KW_HM_UNARY_MAX, pfx, sizeof(pfx));
	assert_int_equal(kw_hm_env_decode(pfx, (size_t)h, &e, NULL), -KW_EAGAIN);
}

static void test_hm_env_encode_stops_at_the_cap(void **state)
{
	static uint8_t data[KW_HM_UNARY_MAX], big[KW_HM_UNARY_MAX + 16];
	size_t d = KW_HM_UNARY_MAX - 64;
	long size, body;

	/* Find the data length whose envelope is exactly KW_HM_UNARY_MAX bytes. */
	kw_hm_env_call(&e, call_id, NULL, 0, "x", data, d);
	size = kw_hm_env_size(&e);
	assert_true(size > 0);
	body = size - (long)kw_uvarint_size((uint64_t)KW_HM_UNARY_MAX);
	d += (size_t)(KW_HM_UNARY_MAX - body);
	kw_hm_env_call(&e, call_id, NULL, 0, "x", data, d);
	size = kw_hm_env_encode(&e, big, sizeof(big));
	assert_int_equal(size, (long)kw_uvarint_size(KW_HM_UNARY_MAX) + KW_HM_UNARY_MAX);
	assert_int_equal(kw_hm_env_decode(big, (size_t)size, &e, NULL), size);
	assert_int_equal(e.data.len, d);
	/* One byte more is refused: p2pd would not read it. */
	kw_hm_env_call(&e, call_id, NULL, 0, "x", data, d + 1);
	assert_int_equal(kw_hm_env_encode(&e, big, sizeof(big)), -KW_EMSGSIZE);
	assert_int_equal(kw_hm_env_size(&e), -KW_EMSGSIZE);
}

static void test_hm_env_encode_into_short_buffer_is_enospc(void **state)
{
	kw_hm_env_call(&e, call_id, peer, (size_t)peer_len, "DHTProtocol.rpc_ping", req,
		       (size_t)req_len);
	assert_int_equal(kw_hm_env_encode(&e, out, 50), -KW_ENOSPC);
	assert_int_equal(kw_hm_env_encode(&e, out, 0), -KW_ENOSPC);
}

static void test_hm_env_malformed_protobuf_is_bad_message(void **state)
{
	/* callId declared 16 bytes, 2 there */
	expect_refused("040a100011", -KW_EBADMSG, "malformed PersistentConnectionRequest");
	/* callId sent as a varint (wire type 0) */
	expect_refused("0408012a00", -KW_EBADMSG,
		       "malformed PersistentConnectionRequest");
	/* a non-minimal length prefix */
	expect_refused("8000", -KW_EBADMSG, "bad length prefix");
}

static void test_hm_env_proto_and_error_text_must_be_utf8(void **state)
{
	/* proto "\xff" on the wire */
	expect_refused("1b0a1000112233445566778899aabbccddeeff1a070a001201ff1a00", -KW_EPROTO, "callUnary.proto is not UTF-8");
	kw_hm_env_error(&e, call_id, "\xc3\x28", 2);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), -KW_EINVAL);
	kw_hm_env_call(&e, call_id, NULL, 0, "\xff", NULL, 0);
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), -KW_EINVAL);
	e.kind = 7;
	assert_int_equal(kw_hm_env_encode(&e, out, sizeof(out)), -KW_EINVAL);
}

static void test_hm_env_back_to_back_frames_decode_one_at_a_time(void **state)
{
	size_t a = unhex_want(caller_frame_hex), b;
	long r;

	b = (size_t)test_unhex(error_frame_hex, want + a, sizeof(want) - a);
	r = kw_hm_env_decode(want, a + b, &e, NULL);
	assert_int_equal(r, (long)a);
	assert_int_equal(e.kind, KW_HM_ENV_CALL);
	assert_int_equal(kw_hm_env_decode(want + r, a + b - (size_t)r, &e, NULL), (long)b);
	assert_true(e.is_error);
}

static void test_hm_error_text_drops_invalid_utf8_like_python_ignore(void **state)
{
	/* b"ab\xffcd\xe2\x82 e\xf0\x9f\x98\x80".decode(errors="ignore") == "abcd e\U0001F600" */
	static const uint8_t raw[] = "ab\xff" "cd\xe2\x82 e\xf0\x9f\x98\x80";
	char text[32];

	assert_int_equal(kw_hm_error_text(raw, sizeof(raw) - 1, text, sizeof(text)), 10);
	assert_string_equal(text, "abcd e\xf0\x9f\x98\x80");
	/* Cut to fit, never inside a character: 9 bytes of room leave "abcd e". */
	assert_int_equal(kw_hm_error_text(raw, sizeof(raw) - 1, text, 9), 6);
	assert_string_equal(text, "abcd e");
	assert_int_equal(kw_hm_error_text(raw, sizeof(raw) - 1, text, 0), 0);
}

static void test_hm_error_text_drops_nul_bytes(void **state)
{
	/* Found by fuzz_hm_frame: Python keeps "\x00" in the text, a C string cannot; the
	 * result must stay one NUL-terminated string of the bytes around it. */
	char text[16];

	assert_int_equal(kw_hm_error_text((const uint8_t *)"b\0\0oom", 6, text, sizeof(text)), 4);
	assert_string_equal(text, "boom");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_env_call_frame_matches_vector),
		cmocka_unit_test(test_hm_env_call_frame_decodes_to_its_fields),
		cmocka_unit_test(test_hm_env_response_frame_matches_vector_and_decodes),
		cmocka_unit_test(test_hm_env_error_frame_matches_vector_and_reads_as_python_does),
		cmocka_unit_test(test_hm_env_empty_required_fields_are_still_emitted),
		cmocka_unit_test(test_hm_env_empty_response_keeps_its_arm),
		cmocka_unit_test(test_hm_env_cancel_round_trips),
		cmocka_unit_test(test_hm_env_call_id_of_wrong_length_is_refused),
		cmocka_unit_test(test_hm_env_missing_required_fields_are_named),
		cmocka_unit_test(test_hm_env_arm_count_must_be_one),
		cmocka_unit_test(test_hm_env_response_needs_exactly_one_of_response_and_error),
		cmocka_unit_test(test_hm_env_truncated_frames_ask_for_more),
		cmocka_unit_test(test_hm_env_oversize_prefix_is_refused_before_the_body),
		cmocka_unit_test(test_hm_env_encode_stops_at_the_cap),
		cmocka_unit_test(test_hm_env_encode_into_short_buffer_is_enospc),
		cmocka_unit_test(test_hm_env_malformed_protobuf_is_bad_message),
		cmocka_unit_test(test_hm_env_proto_and_error_text_must_be_utf8),
		cmocka_unit_test(test_hm_env_back_to_back_frames_decode_one_at_a_time),
		cmocka_unit_test(test_hm_error_text_drops_invalid_utf8_like_python_ignore),
		cmocka_unit_test(test_hm_error_text_drops_nul_bytes),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
