/*
 * net/noise transport: framed encrypt/decrypt after the handshake, arbitrary chunking of the
 * receive side, size limits, and frames that are replayed, reordered, tampered or short.
 */
#include "noise_test.h"

static struct kw_privkey key_a, key_b;
static struct kw_noise_identity id_a, id_b;
static struct kw_noise_session ini, res;
static uint8_t rxbuf[RXCAP], wire[4 * RXCAP], app[4 * RXCAP], src[4 * RXCAP];

static int setup(void **state)
{
	struct test_pump_result r;

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &key_a), 0);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &key_b), 0);
	assert_int_equal(kw_noise_identity_init(&id_a, &key_a, test_muxers, 1, NULL), 0);
	assert_int_equal(kw_noise_identity_init(&id_b, &key_b, test_muxers, 1, NULL), 0);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err | r.res_err, 0);
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 31 + (i >> 8));
	return 0;
}

static void test_noise_transport_round_trips_both_directions(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 1000, KW_NOISE_PLAINTEXT_MAX };

	for (size_t k = 0; k < KW_ARRAY_SIZE(sizes); k++) {
		size_t n = 0, got = 0;

		assert_int_equal(kw_noise_encrypt(&ini, src, sizes[k], wire, sizeof(wire), &n), 0);
		assert_int_equal(n, sizes[k] + 18);
		assert_int_equal((wire[0] << 8 | wire[1]), sizes[k] + 16);
		assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), 0);
		assert_int_equal(got, sizes[k]);
		assert_memory_equal(app, src, sizes[k]);

		got = 0;
		assert_int_equal(kw_noise_encrypt(&res, src + 7, sizes[k], wire, sizeof(wire), &n), 0);
		assert_int_equal(test_feed(&ini, wire, n, rxbuf, app, &got), 0);
		assert_int_equal(got, sizes[k]);
		assert_memory_equal(app, src + 7, sizes[k]);
	}
}

/* An empty frame is a real frame: *plain is set with length 0. */
static void test_noise_transport_empty_frame_is_reported(void **state)
{
	const uint8_t *pt;
	size_t pl, n;

	assert_int_equal(kw_noise_encrypt(&ini, NULL, 0, wire, sizeof(wire), &n), 0);
	assert_int_equal(kw_noise_read(&res, wire, n, rxbuf, RXCAP, &pt, &pl), (long)n);
	assert_non_null(pt);
	assert_int_equal(pl, 0);
}

/* Three frames (small, max, small) delivered one byte at a time yield the same stream and
 * report the partial state in between. */
static void test_noise_transport_reassembles_frames_fed_byte_by_byte(void **state)
{
	size_t total = 0, n, got = 0, frames = 0;
	bool saw_partial = false;

	assert_int_equal(kw_noise_encrypt(&ini, src, 100, wire, sizeof(wire), &n), 0);
	total += n;
	assert_int_equal(kw_noise_encrypt(&ini, src + 100, KW_NOISE_PLAINTEXT_MAX, wire + total,
					  sizeof(wire) - total, &n), 0);
	total += n;
	assert_int_equal(kw_noise_encrypt(&ini, src + 100 + KW_NOISE_PLAINTEXT_MAX, 3, wire + total,
					  sizeof(wire) - total, &n), 0);
	total += n;
	for (size_t i = 0; i < total; i++) {
		const uint8_t *pt;
		size_t pl;

		assert_int_equal(kw_noise_read(&res, wire + i, 1, rxbuf, RXCAP, &pt, &pl), 1);
		saw_partial |= kw_noise_rx_partial(&res);
		if (pt) {
			memcpy(app + got, pt, pl);
			got += pl;
			frames++;
			assert_false(kw_noise_rx_partial(&res));
		}
	}
	assert_true(saw_partial);
	assert_int_equal(frames, 3);
	assert_int_equal(got, 100 + KW_NOISE_PLAINTEXT_MAX + 3);
	assert_memory_equal(app, src, got);
}

/* In place: the header is consumed into the session, a partial body is left with the
 * caller (consumed nothing), and the whole body is decrypted where it lies. */
static void test_noise_transport_inplace_keeps_partial_body_with_the_caller(void **state)
{
	const uint8_t *pt;
	size_t pl, n, held = 0, i;
	long r;

	assert_int_equal(kw_noise_encrypt(&ini, src, 1000, wire, sizeof(wire), &n), 0);
	/* the header alone: consumed, a body is pending, nothing for the caller to keep */
	memcpy(rxbuf, wire, 2);
	assert_int_equal(kw_noise_read_inplace(&res, rxbuf, 2, &pt, &pl), 2);
	assert_null(pt);
	assert_true(kw_noise_rx_body_pending(&res));
	/* the body a byte at a time: nothing is consumed until all of it is there */
	for (i = 2; i < n; i++) {
		rxbuf[held++] = wire[i];
		r = kw_noise_read_inplace(&res, rxbuf, held, &pt, &pl);
		if (i + 1 < n) {
			assert_int_equal(r, 0);
			assert_null(pt);
		}
	}
	assert_int_equal(r, (long)(n - 2));
	assert_ptr_equal(pt, rxbuf);
	assert_int_equal(pl, 1000);
	assert_memory_equal(pt, src, 1000);
	assert_false(kw_noise_rx_body_pending(&res));
	/* a tampered frame fails the session like kw_noise_read does */
	assert_int_equal(kw_noise_encrypt(&ini, src, 10, wire, sizeof(wire), &n), 0);
	wire[5] ^= 1;
	assert_int_equal(kw_noise_read_inplace(&res, wire, n, &pt, &pl), -KW_EBADMSG);
}

/* Chunks that straddle frame boundaries at odd offsets (like TCP reads). */
static void test_noise_transport_handles_chunks_across_frame_boundaries(void **state)
{
	static const size_t chunks[] = { 1, 2, 3, 17, 1000, 4096, 65536 };
	size_t total;

	for (size_t c = 0; c < KW_ARRAY_SIZE(chunks); c++) {
		size_t got = 0, off = 0, len = 3 * KW_NOISE_PLAINTEXT_MAX + 1234;

		if (chunks[c] < 64)
			len = 5000;   /* keep the tiny-chunk runs short */
		assert_int_equal(kw_noise_encrypt_all(&ini, src, len, wire, sizeof(wire), &total), 0);
		assert_int_equal(total, kw_noise_encrypt_all_len(len));
		while (off < total) {
			size_t piece = KW_MIN(chunks[c], total - off);

			assert_int_equal(test_feed(&res, wire + off, piece, rxbuf, app, &got), 0);
			off += piece;
		}
		assert_int_equal(got, len);
		assert_memory_equal(app, src, len);
	}
}

static void test_noise_transport_encrypt_all_splits_at_max_plaintext(void **state)
{
	size_t n;

	assert_int_equal(kw_noise_encrypt_all_len(0), 0);
	assert_int_equal(kw_noise_encrypt_all_len(KW_NOISE_PLAINTEXT_MAX), KW_NOISE_MSG_MAX + 2);
	assert_int_equal(kw_noise_encrypt_all_len(KW_NOISE_PLAINTEXT_MAX + 1),
			 KW_NOISE_MSG_MAX + 2 + 1 + 18);
	assert_int_equal(kw_noise_encrypt_all(&ini, src, 65536, wire, sizeof(wire), &n), 0);
	assert_int_equal(n, 65536 + 2 * 18);
	assert_int_equal(wire[0] << 8 | wire[1], 0xffff);
	assert_int_equal(wire[KW_NOISE_MSG_MAX + 2] << 8 | wire[KW_NOISE_MSG_MAX + 3], 17 + 16);
	assert_int_equal(kw_noise_encrypt_all(&ini, src, 65536, wire, n - 1, &n), -KW_ENOSPC);
}

static void test_noise_transport_encrypts_in_place(void **state)
{
	size_t n, got = 0;

	memcpy(wire + 2, src, 500);
	assert_int_equal(kw_noise_encrypt(&ini, wire + 2, 500, wire, 518, &n), 0);
	assert_int_equal(n, 518);
	assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), 0);
	assert_int_equal(got, 500);
	assert_memory_equal(app, src, 500);
}

static void test_noise_transport_refuses_oversized_plaintext(void **state)
{
	size_t n;

	assert_int_equal(kw_noise_encrypt(&ini, src, KW_NOISE_PLAINTEXT_MAX + 1, wire, sizeof(wire),
					  &n), -KW_EMSGSIZE);
	assert_int_equal(kw_noise_encrypt(&ini, src, 10, wire, 27, &n), -KW_ENOSPC);
	/* neither failure broke the session */
	assert_int_equal(kw_noise_encrypt(&ini, src, 10, wire, 28, &n), 0);
}

static void test_noise_transport_rejects_frame_larger_than_receive_buffer(void **state)
{
	const uint8_t *pt;
	size_t pl, n;

	assert_int_equal(kw_noise_encrypt(&ini, src, 1000, wire, sizeof(wire), &n), 0);
	assert_int_equal(kw_noise_read(&res, wire, n, rxbuf, 1015, &pt, &pl), -KW_EMSGSIZE);
	assert_int_equal(kw_noise_state(&res), KW_NOISE_FAILED);
}

static void test_noise_transport_rejects_replayed_frame(void **state)
{
	size_t n, got = 0;

	assert_int_equal(kw_noise_encrypt(&ini, src, 64, wire, sizeof(wire), &n), 0);
	assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), 0);
	assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), -KW_EBADMSG);
	/* sticky: even a good frame is refused afterwards */
	assert_int_equal(kw_noise_encrypt(&ini, src, 64, wire, sizeof(wire), &n), 0);
	assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), -KW_EBADMSG);
	assert_int_equal(kw_noise_encrypt(&res, src, 1, wire, sizeof(wire), &n), -KW_EBADMSG);
}

static void test_noise_transport_rejects_reordered_frames(void **state)
{
	uint8_t second[100];
	size_t n1, n2, got = 0;

	assert_int_equal(kw_noise_encrypt(&ini, src, 50, wire, sizeof(wire), &n1), 0);
	assert_int_equal(kw_noise_encrypt(&ini, src + 50, 50, second, sizeof(second), &n2), 0);
	assert_int_equal(test_feed(&res, second, n2, rxbuf, app, &got), -KW_EBADMSG);
	assert_int_equal(got, 0);
}

static void test_noise_transport_rejects_tampered_and_short_frames(void **state)
{
	size_t n, got = 0;
	uint8_t tiny[2 + 15] = { 0, 15 };

	assert_int_equal(kw_noise_encrypt(&ini, src, 300, wire, sizeof(wire), &n), 0);
	wire[2 + 150] ^= 0x10;
	/* also through the staging path: split the frame in two reads */
	assert_int_equal(test_feed(&res, wire, 100, rxbuf, app, &got), 0);
	assert_int_equal(test_feed(&res, wire + 100, n - 100, rxbuf, app, &got), -KW_EBADMSG);
	assert_int_equal(got, 0);

	setup(state);
	assert_int_equal(test_feed(&res, tiny, sizeof(tiny), rxbuf, app, &got), -KW_EBADMSG);
}

/* Frames go in direction-specific keys: a frame we sent cannot be fed back to us. */
static void test_noise_transport_rejects_reflected_frame(void **state)
{
	size_t n, got = 0;

	assert_int_equal(kw_noise_encrypt(&ini, src, 40, wire, sizeof(wire), &n), 0);
	assert_int_equal(test_feed(&ini, wire, n, rxbuf, app, &got), -KW_EBADMSG);
}

static void test_noise_transport_fails_when_send_nonces_run_out(void **state)
{
	size_t n, got = 0;

	kw_noise_cipher_set_nonce(&ini.u.t.tx, UINT64_MAX - 1);
	kw_noise_cipher_set_nonce(&res.u.t.rx, UINT64_MAX - 1);
	assert_int_equal(kw_noise_encrypt(&ini, src, 8, wire, sizeof(wire), &n), 0);
	assert_int_equal(test_feed(&res, wire, n, rxbuf, app, &got), 0);
	assert_int_equal(got, 8);
	assert_int_equal(kw_noise_encrypt(&ini, src, 8, wire, sizeof(wire), &n), -KW_ERANGE);
	assert_int_equal(kw_noise_state(&ini), KW_NOISE_FAILED);
	assert_int_equal(kw_noise_encrypt_all(&ini, src, 8, wire, sizeof(wire), &n), -KW_ERANGE);
}

static void test_noise_transport_refuses_before_handshake_and_after_wipe(void **state)
{
	struct kw_noise_session s;
	size_t n;

	assert_int_equal(kw_noise_session_init(&s, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_encrypt(&s, src, 1, wire, sizeof(wire), &n), -KW_ENOTCONN);
	assert_null(kw_noise_handshake_hash(&s));
	kw_noise_session_wipe(&ini);
	assert_int_equal(kw_noise_encrypt(&ini, src, 1, wire, sizeof(wire), &n), -KW_ECONNABORTED);
	assert_null(kw_noise_remote_peer(&ini));
}

/* msg3 and the initiator's first transport frame in one TCP read: the read stops after
 * msg3, the next one yields the data. */
static void test_noise_transport_data_right_after_msg3_in_same_chunk(void **state)
{
	struct kw_noise_session i2, r2;
	uint8_t buf[KW_NOISE_HS_FRAME_MAX + 100];
	const uint8_t *pt;
	size_t n, m, pl;
	long used;

	assert_int_equal(kw_noise_session_init(&i2, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_session_init(&r2, &id_b, false, NULL), 0);
	assert_int_equal(kw_noise_handshake_write(&i2, buf, sizeof(buf), &n), 0);
	assert_int_equal(test_feed(&r2, buf, n, rxbuf, NULL, NULL), 0);
	assert_int_equal(kw_noise_handshake_write(&r2, buf, sizeof(buf), &n), 0);
	assert_int_equal(test_feed(&i2, buf, n, rxbuf, NULL, NULL), 0);
	assert_int_equal(kw_noise_handshake_write(&i2, buf, sizeof(buf), &n), 0);
	assert_true(kw_noise_established(&i2));
	assert_int_equal(kw_noise_encrypt(&i2, (const uint8_t *)"early", 5, buf + n,
					  sizeof(buf) - n, &m), 0);
	used = kw_noise_read(&r2, buf, n + m, rxbuf, RXCAP, &pt, &pl);
	assert_int_equal(used, (long)n);
	assert_null(pt);
	assert_true(kw_noise_established(&r2));
	assert_int_equal(kw_noise_read(&r2, buf + n, m, rxbuf, RXCAP, &pt, &pl), (long)m);
	assert_int_equal(pl, 5);
	assert_memory_equal(pt, "early", 5);
}

/* The session's footprint is what the memory budget in doc/net-noise.md assumes. */
static void test_noise_session_fits_memory_budget(void **state)
{
	assert_true(sizeof(struct kw_noise_session) <= 1024);
	print_message("sizeof(struct kw_noise_session) = %zu, kw_noise_identity = %zu\n",
		      sizeof(struct kw_noise_session), sizeof(struct kw_noise_identity));
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_noise_transport_inplace_keeps_partial_body_with_the_caller),
		T(test_noise_transport_round_trips_both_directions),
		T(test_noise_transport_empty_frame_is_reported),
		T(test_noise_transport_reassembles_frames_fed_byte_by_byte),
		T(test_noise_transport_handles_chunks_across_frame_boundaries),
		T(test_noise_transport_encrypt_all_splits_at_max_plaintext),
		T(test_noise_transport_encrypts_in_place),
		T(test_noise_transport_refuses_oversized_plaintext),
		T(test_noise_transport_rejects_frame_larger_than_receive_buffer),
		T(test_noise_transport_rejects_replayed_frame),
		T(test_noise_transport_rejects_reordered_frames),
		T(test_noise_transport_rejects_tampered_and_short_frames),
		T(test_noise_transport_rejects_reflected_frame),
		T(test_noise_transport_fails_when_send_nonces_run_out),
		T(test_noise_transport_refuses_before_handshake_and_after_wipe),
		T(test_noise_transport_data_right_after_msg3_in_same_chunk),
		T(test_noise_session_fits_memory_budget),
	};
	return cmocka_run_group_tests_name("net/noise/transport", tests, NULL, NULL);
}
