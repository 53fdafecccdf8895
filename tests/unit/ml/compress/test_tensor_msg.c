/* runtime.proto Tensor encode/decode (hivemind's byte vectors, doc/ml-codec.md) and stream
 * chunking (hivemind/utils/streaming.py split_for_streaming, hivemind @ 213bff98). */
#include "harness.h"

#include <string.h>

#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>

static void check_pb(const struct kw_tensor_msg *m, const char *hex)
{
	uint8_t want[256], got[256];
	size_t wl = kw_test_unhex(hex, want), gl = 0;
	struct kw_tensor_msg back;

	assert_int_equal(kw_tensor_msg_encoded_size(m), wl);
	assert_int_equal(kw_tensor_msg_encode(m, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	assert_int_equal(kw_tensor_msg_encode(m, got, wl - 1, &gl), -KW_ENOSPC);
	assert_int_equal(kw_tensor_msg_decode(&back, want, wl), 0);
	assert_int_equal(back.buf_len, m->buf_len);
	if (m->buf_len)
		assert_memory_equal(back.buf, m->buf, m->buf_len);
	assert_int_equal(back.ndim, m->ndim);
	assert_memory_equal(back.shape, m->shape, m->ndim * 4);
	assert_string_equal(back.dtype, m->dtype);
	assert_int_equal(back.compression, m->compression);
	assert_int_equal(back.requires_grad, m->requires_grad);
	assert_int_equal(back.chunks, m->chunks);
}

static void test_tensor_msg_matches_hivemind_vectors(void **state)
{
	static const uint8_t f32buf[] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f };
	static const uint8_t f16buf[] = { 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38 };
	static const uint8_t hsbuf[] = { 0x00, 0x38, 0x00, 0xbc, 0x00, 0x40, 0x00, 0x34 };
	struct kw_tensor_msg m = { 0 };

	m.buf = f32buf; m.buf_len = sizeof(f32buf); m.ndim = 1; m.shape[0] = 3;
	strcpy(m.dtype, "float32");
	check_pb(&m, "0a0c0000803f000000c00000003f1201032207666c6f61743332");
	m.buf = f16buf; m.buf_len = sizeof(f16buf); m.compression = KW_COMP_FLOAT16;
	check_pb(&m, "0a06003c00c000381201032207666c6f617433322802");
	memset(&m, 0, sizeof(m));  /* DUMMY tensor */
	m.ndim = 1; strcpy(m.dtype, "float32");
	check_pb(&m, "1201002207666c6f61743332");
	m.buf = hsbuf; m.buf_len = sizeof(hsbuf); m.ndim = 3;
	m.shape[0] = 1; m.shape[1] = 1; m.shape[2] = 4; strcpy(m.dtype, "float16");
	check_pb(&m, "0a08003800bc0040003412030101042207666c6f61743136");
}

static void test_tensor_msg_decode_accepts_unpacked_size_and_is_zero_copy(void **state)
{
	uint8_t b[64];
	size_t n = kw_test_unhex("0a0201021003100410052205696e743634", b);
	struct kw_tensor_msg m;

	assert_int_equal(kw_tensor_msg_decode(&m, b, n), 0);
	assert_int_equal(m.ndim, 3);
	assert_int_equal(m.shape[2], 5);
	assert_ptr_equal(m.buf, b + 2);
	assert_string_equal(m.dtype, "int64");
}

static void test_tensor_msg_decode_rejects_malformed_and_oversized(void **state)
{
	uint8_t b[128];
	size_t n = kw_test_unhex("0a0c0000803f000000c00000003f1201032207666c6f61743332", b);
	struct kw_tensor_msg m;

	for (size_t cut = 1; cut < n; cut++)
		if (cut != 14 && cut != 17)  /* cuts at field boundaries are valid prefixes */
			assert_int_equal(kw_tensor_msg_decode(&m, b, cut), -KW_EBADMSG);
	/* nine dimensions */
	n = kw_test_unhex("1209010101010101010101", b);
	assert_int_equal(kw_tensor_msg_decode(&m, b, n), -KW_EMSGSIZE);
	/* a 16-byte dtype */
	n = kw_test_unhex("221061616161616161616161616161616161", b);
	assert_int_equal(kw_tensor_msg_decode(&m, b, n), -KW_EMSGSIZE);
	/* field 1 as a varint: not bytes (nanopb hands callbacks a stack copy of such values) */
	n = kw_test_unhex("08002207666c6f617431362807", b);
	assert_int_equal(kw_tensor_msg_decode(&m, b, n), -KW_EBADMSG);
	/* buffer length beyond the input */
	n = kw_test_unhex("0aff0100", b);
	assert_int_equal(kw_tensor_msg_decode(&m, b, n), -KW_EBADMSG);
}

static void test_tensor_msg_split_and_join_round_trip(void **state)
{
	static uint8_t data[10000], storage[10000], wire[2048];
	struct kw_tensor_msg whole = { 0 }, piece, dec;
	struct kw_tensor_join j;
	size_t chunk, pieces, len;
	int rc = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	whole.buf = data; whole.buf_len = sizeof(data); whole.ndim = 2;
	whole.shape[0] = 50; whole.shape[1] = 50; whole.compression = KW_COMP_NONE;
	strcpy(whole.dtype, "float32"); whole.requires_grad = true;
	chunk = kw_tensor_msg_chunk_bytes(&whole, 1024);
	assert_in_range(chunk, 901, 1023);
	pieces = kw_tensor_msg_pieces(&whole, chunk);
	assert_int_equal(pieces, (sizeof(data) - 1) / chunk + 1);
	kw_tensor_join_init(&j, storage, sizeof(storage));
	for (size_t i = 0; i < pieces; i++) {
		assert_int_equal(kw_tensor_msg_piece(&whole, chunk, i, &piece), 0);
		assert_int_equal(kw_tensor_msg_encode(&piece, wire, sizeof(wire), &len), 0);
		assert_true(len <= 1024);
		if (i == 0) {
			assert_int_equal(piece.chunks, pieces);
		} else {
			assert_int_equal(piece.dtype[0], '\0');
			assert_int_equal(piece.ndim, 0);
		}
		assert_int_equal(kw_tensor_msg_decode(&dec, wire, len), 0);
		rc = kw_tensor_join_add(&j, &dec);
		assert_int_equal(rc, i + 1 == pieces ? 1 : 0);
	}
	assert_int_equal(j.head.buf_len, sizeof(data));
	assert_memory_equal(j.head.buf, data, sizeof(data));
	assert_int_equal(j.head.ndim, 2);
	assert_true(j.head.requires_grad);
	assert_int_equal(kw_tensor_join_add(&j, &piece), -KW_EBADMSG);  /* after completion */
}

static void test_tensor_msg_empty_buffer_is_one_piece_with_zero_chunks(void **state)
{
	struct kw_tensor_msg whole = { 0 }, piece;
	struct kw_tensor_join j;
	uint8_t st[4];

	whole.ndim = 1; strcpy(whole.dtype, "float32");
	assert_int_equal(kw_tensor_msg_pieces(&whole, 100), 1);
	assert_int_equal(kw_tensor_msg_piece(&whole, 100, 0, &piece), 0);
	assert_int_equal(piece.chunks, 0);
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &piece), 1);
	assert_int_equal(j.head.buf_len, 0);
}

static void test_tensor_join_rejects_inconsistent_pieces(void **state)
{
	static uint8_t data[300], st[300];
	struct kw_tensor_msg whole = { 0 }, p0, p1, p2, bad;
	struct kw_tensor_join j;

	whole.buf = data; whole.buf_len = 300; whole.ndim = 1; whole.shape[0] = 75;
	strcpy(whole.dtype, "float32");
	assert_int_equal(kw_tensor_msg_piece(&whole, 128, 0, &p0), 0);
	assert_int_equal(kw_tensor_msg_piece(&whole, 128, 1, &p1), 0);
	assert_int_equal(kw_tensor_msg_piece(&whole, 128, 2, &p2), 0);
	assert_int_equal(p0.chunks, 3);
	/* continuation first */
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &p1), -KW_EBADMSG);
	/* a second header in the middle */
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &p0), 0);
	assert_int_equal(kw_tensor_join_add(&j, &p0), -KW_EBADMSG);
	/* short piece before the last */
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &p0), 0);
	assert_int_equal(kw_tensor_join_add(&j, &p2), -KW_EBADMSG);
	/* longer than the first */
	bad = p1; bad.buf_len = 129;
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &p0), 0);
	assert_int_equal(kw_tensor_join_add(&j, &bad), -KW_EBADMSG);
	/* storage too small */
	kw_tensor_join_init(&j, st, 200);
	assert_int_equal(kw_tensor_join_add(&j, &p0), 0);
	assert_int_equal(kw_tensor_join_add(&j, &p1), -KW_EMSGSIZE);
	/* negative chunk count */
	bad = p0; bad.chunks = -1;
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &bad), -KW_EBADMSG);
	/* in order: complete */
	kw_tensor_join_init(&j, st, sizeof(st));
	assert_int_equal(kw_tensor_join_add(&j, &p0), 0);
	assert_int_equal(kw_tensor_join_add(&j, &p1), 0);
	assert_int_equal(kw_tensor_join_add(&j, &p2), 1);
}

/* A reserved buffer (buf NULL, buf_len > 0): tag and length written, the bytes left for the
 * caller, who finds them ending where the rest of the Tensor begins. */
static void test_tensor_msg_reserved_buffer_is_filled_in_place(void **state)
{
	static uint8_t data[300], want[400], got[400];
	struct kw_tensor_msg m, rest;
	size_t wl, gl, tail;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	memset(&m, 0, sizeof(m));
	m.buf = data;
	m.buf_len = sizeof(data);
	m.ndim = 1;
	m.shape[0] = 75;
	strcpy(m.dtype, "float32");
	m.compression = KW_COMP_FLOAT16;
	assert_int_equal(kw_tensor_msg_encode(&m, want, sizeof(want), &wl), 0);
	m.buf = NULL;
	assert_int_equal(kw_tensor_msg_encoded_size(&m), wl);
	memset(got, 0, sizeof(got));
	assert_int_equal(kw_tensor_msg_encode(&m, got, sizeof(got), &gl), 0);
	assert_int_equal(gl, wl);
	rest = m;
	rest.buf_len = 0;
	tail = kw_tensor_msg_encoded_size(&rest);
	memcpy(got + gl - tail - sizeof(data), data, sizeof(data));
	assert_memory_equal(got, want, wl);
	assert_int_equal(kw_tensor_msg_encode(&m, got, wl - 1, &gl), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tensor_msg_matches_hivemind_vectors),
		cmocka_unit_test(test_tensor_msg_decode_accepts_unpacked_size_and_is_zero_copy),
		cmocka_unit_test(test_tensor_msg_decode_rejects_malformed_and_oversized),
		cmocka_unit_test(test_tensor_msg_split_and_join_round_trip),
		cmocka_unit_test(test_tensor_msg_empty_buffer_is_one_piece_with_zero_chunks),
		cmocka_unit_test(test_tensor_join_rejects_inconsistent_pieces),
		cmocka_unit_test(test_tensor_msg_reserved_buffer_is_filled_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
