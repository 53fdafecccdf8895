/*
 * libFuzzer target: a Noise responder (net/noise/noise_session.c) receiving arbitrary bytes.
 * The first input byte picks what the fuzzer controls, the second the read chunk size:
 *   0: the raw byte stream from the dialer (msg1 framing, then anything);
 *   1: a valid msg1, then raw bytes where msg3 (and transport frames) belong;
 *   2: a correctly encrypted msg3 whose payload plaintext is the fuzz input, so the payload
 *      decoder, signature check and peer-id derivation run on arbitrary content.
 * Keys are fixed so every input replays identically.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/key.h>
#include <kw/net/noise.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_privkey key_i, key_r;
static struct kw_noise_identity id_i, id_r, id_fuzz;
static uint8_t rxbuf[KW_NOISE_MSG_MAX], rxbuf_i[KW_NOISE_MSG_MAX];
static const uint8_t e_i[32] = { 1, 2, 3 }, e_r[32] = { 4, 5, 6 };

static void setup_once(void)
{
	static int done;
	static const char *const mux[] = { "/yamux/1.0.0" };
	/* The dialer is the js transcript's initiator (libp2p spec Ed25519 key, cacophony static
	 * key), so the corpus seed holding js's initiator payload is a valid msg3 payload. */
	static const uint8_t priv_i[68] = {
		0x08, 0x01, 0x12, 0x40, 0x7e, 0x08, 0x30, 0x61, 0x7c, 0x4a, 0x7d, 0xe8, 0x39, 0x25,
		0xdf, 0xb2, 0x69, 0x45, 0x56, 0xb1, 0x29, 0x36, 0xc4, 0x77, 0xa0, 0xe1, 0xfe, 0xb2,
		0xe1, 0x48, 0xec, 0x9d, 0xa6, 0x0f, 0xee, 0x7d, 0x1e, 0xd1, 0xe8, 0xfa, 0xe2, 0xc4,
		0xa1, 0x44, 0xb8, 0xbe, 0x8f, 0xd4, 0xb4, 0x7b, 0xf3, 0xd3, 0xb3, 0x4b, 0x87, 0x1c,
		0x3c, 0xac, 0xf6, 0x01, 0x0f, 0x0e, 0x42, 0xd4, 0x74, 0xfc, 0xe2, 0x7e };
	static const uint8_t seed_i[32] = {
		0xe6, 0x1e, 0xf9, 0x91, 0x9c, 0xde, 0x45, 0xdd, 0x5f, 0x82, 0x16, 0x64, 0x04, 0xbd,
		0x08, 0xe3, 0x8b, 0xce, 0xb5, 0xdf, 0xdf, 0xde, 0xd0, 0xa3, 0x4c, 0x8d, 0xf7, 0xed,
		0x54, 0x22, 0x14, 0xd1 };
	uint8_t seed_r[32] = { 22 };

	if (done)
		return;
	if (kw_privkey_decode(priv_i, sizeof(priv_i), &key_i) ||
	    kw_key_generate(KW_KEY_ED25519, 0, &key_r))
		__builtin_trap();
	if (kw_noise_identity_init(&id_i, &key_i, mux, 1, seed_i) ||
	    kw_noise_identity_init(&id_r, &key_r, mux, 1, seed_r))
		__builtin_trap();
	done = 1;
}

/* Feeds bytes in chunks; returns the first error or 0. */
static int feed(struct kw_noise_session *s, const uint8_t *in, size_t len, size_t chunk,
		uint8_t *buf)
{
	while (len) {
		const uint8_t *pt;
		size_t pl, piece = len < chunk ? len : chunk;
		long n = kw_noise_read(s, in, piece, buf, KW_NOISE_MSG_MAX, &pt, &pl);

		if (n < 0)
			return (int)n;
		if (n == 0 || (size_t)n > piece)
			__builtin_trap();   /* must make progress, never over-consume */
		if (pt && (pl > KW_NOISE_PLAINTEXT_MAX || pt != buf))
			__builtin_trap();
		in += n;
		len -= (size_t)n;
	}
	return 0;
}

static void check(const struct kw_noise_session *s)
{
	if (kw_noise_established(s) != (kw_noise_remote_peer(s) != NULL))
		__builtin_trap();
	if (kw_noise_established(s) && kw_noise_remote_muxer(s, KW_NOISE_MUXERS_MAX) != NULL)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kw_noise_session ini, res;
	static uint8_t frame[KW_NOISE_HS_FRAME_MAX];
	size_t n, chunk;
	int mode;

	if (size < 2)
		return 0;
	setup_once();
	mode = data[0] % 3;
	chunk = data[1] ? data[1] : 65536;
	data += 2;
	size -= 2;

	if (kw_noise_session_init(&res, &id_r, false, &(struct kw_noise_opts){ .ephemeral_priv = e_r }))
		__builtin_trap();
	if (mode == 0) {
		(void)feed(&res, data, size, chunk, rxbuf);
		check(&res);
		return 0;
	}

	if (mode == 2) {
		if (size == 0 || size > KW_NOISE_PAYLOAD_MAX)
			return 0;   /* an identity always has a payload */
		id_fuzz = id_i;
		memcpy(id_fuzz.payload, data, size);
		id_fuzz.payload_len = (uint16_t)size;
	}
	if (kw_noise_session_init(&ini, mode == 2 ? &id_fuzz : &id_i, true,
				  &(struct kw_noise_opts){ .ephemeral_priv = e_i }))
		__builtin_trap();
	if (kw_noise_handshake_write(&ini, frame, sizeof(frame), &n) ||
	    feed(&res, frame, n, 65536, rxbuf) ||
	    kw_noise_handshake_write(&res, frame, sizeof(frame), &n))
		__builtin_trap();
	if (mode == 1) {
		(void)feed(&res, data, size, chunk, rxbuf);
		check(&res);
		return 0;
	}
	if (feed(&ini, frame, n, 65536, rxbuf_i) ||
	    kw_noise_handshake_write(&ini, frame, sizeof(frame), &n))
		__builtin_trap();
	(void)feed(&res, frame, n, chunk, rxbuf);
	check(&res);
	return 0;
}
