/*
 * Hivemind stream framing (net/hivemind/frame.c): message, end-of-stream and error frames
 * byte for byte as hivemind's P2P.send_protobuf writes them (hivemind/p2p/p2p_daemon.py),
 * the error text a Python caller raises, and bad markers, oversized lengths, truncation and
 * malformed RPCError payloads refused.
 */
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/err.h>
#include <kw/net/hivemind_rpc.h>

/* averaging JoinRequest{schema_hash=20 x 0x11, expiration=1700000005.0,
 * gather=msgpack([None, 0, msgpack(None)]), group_key='my_averager.0b'} */
static const char join_req_hex[] =
	"121411111111111111111111111111111111111111111900004041fc54d941220693c000c401c0320e6d"
	"795f61766572616765722e3062";

static uint8_t want[256], pb[256], out[256];
static struct kw_hm_frame f;

static size_t unhex(const char *hex, uint8_t *dst)
{
	int n = test_unhex(hex, dst, 256);

	assert_true(n >= 0);
	return (size_t)n;
}

static void test_hm_frame_message_matches_vector_and_decodes(void **state)
{
	size_t p = unhex(join_req_hex, pb);
	size_t n = unhex("0000000000000000" "37", want);

	assert_int_equal(p, 0x37);
	memcpy(want + n, pb, p);
	n += p;
	assert_int_equal(kw_hm_frame_encode_msg(pb, p, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_frame_decode(want, n, &f, NULL), (long)n);
	assert_int_equal(f.marker, KW_HM_MARK_MESSAGE);
	assert_int_equal(f.payload.len, p);
	assert_ptr_equal(f.payload.p, want + 9);
}

static void test_hm_frame_end_of_stream_is_an_empty_rpc_error(void **state)
{
	size_t n = unhex("010000000000000000", want);

	assert_int_equal(kw_hm_frame_encode_error(NULL, 0, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_frame_decode(want, n, &f, NULL), (long)n);
	assert_int_equal(f.marker, KW_HM_MARK_ERROR);
	assert_false(f.has_message);
	assert_int_equal(f.payload.len, 0);
}

static void test_hm_frame_error_matches_vector_and_python_caller_text(void **state)
{
	size_t n = unhex("0100000000000000060a04626f6f6d", want);
	char text[128];

	assert_int_equal(kw_hm_frame_encode_error("boom", 4, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_frame_decode(want, n, &f, NULL), (long)n);
	assert_int_equal(f.marker, KW_HM_MARK_ERROR);
	assert_true(f.has_message);
	assert_int_equal(f.message.len, 4);
	assert_memory_equal(f.message.p, "boom", 4);
	kw_hm_stream_error_text("DecentralizedAverager.rpc_join_group",
				"12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB", &f, text,
				sizeof(text));
	assert_string_equal(text, "Failed to call handler `DecentralizedAverager.rpc_join_group` at "
			    "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB: boom");
	/* Cut to fit, NUL-terminated. */
	assert_int_equal(kw_hm_stream_error_text("h", "p", &f, text, 10), 9);
	assert_string_equal(text, "Failed to");
}

static void test_hm_frame_empty_message_and_accepted_vectors(void **state)
{
	size_t n = unhex("000000000000000000", want);

	/* DownloadRequest{} */
	assert_int_equal(kw_hm_frame_encode_msg(NULL, 0, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_frame_decode(want, n, &f, NULL), (long)n);
	assert_int_equal(f.payload.len, 0);
	/* MessageFromLeader{code=ACCEPTED} = 08 02 */
	n = unhex("0000000000000000020802", want);
	assert_int_equal(kw_hm_frame_encode_msg((const uint8_t *)"\x08\x02", 2, out, sizeof(out)),
			 (long)n);
	assert_memory_equal(out, want, n);
}

static void test_hm_frame_unknown_marker_is_refused(void **state)
{
	size_t n = unhex("020000000000000000", want);
	const char *why;

	assert_int_equal(kw_hm_frame_decode(want, n, &f, &why), -KW_EPROTO);
	assert_string_equal(why, "unknown frame marker (not 0x00 or 0x01)");
	assert_int_equal(kw_hm_frame_encode_header(2, 0, out, sizeof(out)), -KW_EINVAL);
}

static void test_hm_frame_oversize_length_is_refused_from_the_header(void **state)
{
	uint8_t m;
	uint64_t len;
	const char *why;

	/* Only the 9 header bytes: the payload need not (and does not) exist. */
	assert_int_equal(kw_hm_frame_encode_header(0, KW_HM_FRAME_MAX, out, sizeof(out)), 9);
	assert_int_equal(kw_hm_frame_header(out, 9, &m, &len), 0);
	assert_true(len == KW_HM_FRAME_MAX);
	assert_int_equal(kw_hm_frame_decode(out, 9, &f, NULL), -KW_EAGAIN);
	unhex("000000000000000000", out);
	out[5] = (uint8_t)(((uint64_t)KW_HM_FRAME_MAX + 1) >> 24);
	out[6] = (uint8_t)(((uint64_t)KW_HM_FRAME_MAX + 1) >> 16);
	out[7] = (uint8_t)(((uint64_t)KW_HM_FRAME_MAX + 1) >> 8);
	out[8] = (uint8_t)((uint64_t)KW_HM_FRAME_MAX + 1);
	assert_int_equal(kw_hm_frame_decode(out, 9, &f, &why), -KW_EMSGSIZE);
	assert_string_equal(why, "frame larger than KW_NET_HIVEMIND_STREAM_FRAME_MAX_BYTES");
	unhex("01ffffffffffffffff", out);
	assert_int_equal(kw_hm_frame_header(out, 9, &m, &len), -KW_EMSGSIZE);
	assert_int_equal(kw_hm_frame_encode_header(0, (uint64_t)KW_HM_FRAME_MAX + 1, out, 9),
			 -KW_EMSGSIZE);
}

static void test_hm_frame_truncated_at_every_byte_asks_for_more(void **state)
{
	size_t n = unhex("0100000000000000060a04626f6f6d", want);

	for (size_t k = 0; k < n; k++)
		assert_int_equal(kw_hm_frame_decode(want, k, &f, NULL), -KW_EAGAIN);
}

static void test_hm_frame_malformed_rpc_error_is_bad_message(void **state)
{
	const char *why;
	/* message declared 5 bytes, 2 there (the frame length itself is consistent) */
	size_t n = unhex("0100000000000000040a05626f", want);

	assert_int_equal(kw_hm_frame_decode(want, n, &f, &why), -KW_EBADMSG);
	assert_string_equal(why, "malformed RPCError in an error frame");
	/* A message frame's payload is the handler's business: not parsed here. */
	want[0] = 0;
	assert_int_equal(kw_hm_frame_decode(want, n, &f, NULL), (long)n);
}

static void test_hm_frame_error_text_must_be_utf8(void **state)
{
	assert_int_equal(kw_hm_frame_encode_error("\xff", 1, out, sizeof(out)), -KW_EINVAL);
	assert_int_equal(kw_hm_frame_encode_error(NULL, 3, out, sizeof(out)), -KW_EINVAL);
}

static void test_hm_frame_two_frames_in_one_buffer_decode_in_turn(void **state)
{
	size_t n = unhex("0000000000000000020802" "010000000000000000", want);
	long r = kw_hm_frame_decode(want, n, &f, NULL);

	assert_int_equal(r, 11);
	assert_int_equal(f.marker, KW_HM_MARK_MESSAGE);
	assert_int_equal(kw_hm_frame_decode(want + r, n - (size_t)r, &f, NULL), 9);
	assert_int_equal(f.marker, KW_HM_MARK_ERROR);
}

static void test_hm_frame_encode_into_short_buffer_is_enospc(void **state)
{
	assert_int_equal(kw_hm_frame_encode_msg((const uint8_t *)"\x08\x02", 2, out, 10),
			 -KW_ENOSPC);
	assert_int_equal(kw_hm_frame_encode_error("boom", 4, out, 14), -KW_ENOSPC);
	assert_int_equal(kw_hm_frame_encode_header(0, 0, out, 8), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_frame_message_matches_vector_and_decodes),
		cmocka_unit_test(test_hm_frame_end_of_stream_is_an_empty_rpc_error),
		cmocka_unit_test(test_hm_frame_error_matches_vector_and_python_caller_text),
		cmocka_unit_test(test_hm_frame_empty_message_and_accepted_vectors),
		cmocka_unit_test(test_hm_frame_unknown_marker_is_refused),
		cmocka_unit_test(test_hm_frame_oversize_length_is_refused_from_the_header),
		cmocka_unit_test(test_hm_frame_truncated_at_every_byte_asks_for_more),
		cmocka_unit_test(test_hm_frame_malformed_rpc_error_is_bad_message),
		cmocka_unit_test(test_hm_frame_error_text_must_be_utf8),
		cmocka_unit_test(test_hm_frame_two_frames_in_one_buffer_decode_in_turn),
		cmocka_unit_test(test_hm_frame_encode_into_short_buffer_is_enospc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
