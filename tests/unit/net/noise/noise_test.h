/* Helpers for the net/noise session tests: identities and an in-memory handshake pump. */
#ifndef KW_TEST_NOISE_H
#define KW_TEST_NOISE_H

#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/key.h>
#include <kw/net/noise.h>

#define YAMUX "/yamux/1.0.0"
#define RXCAP KW_NOISE_MSG_MAX

static const char *const test_muxers[] = { YAMUX };

static inline size_t test_hex(const char *hex, uint8_t *out, size_t cap)
{
	int n = test_unhex(hex, out, cap);

	assert_true(n >= 0);
	return (size_t)n;
}

/* A fresh identity of the given type offering yamux; skips the test if the type is not
 * built in (net/peer grows secp256k1 and RSA behind Kconfig). */
static inline void test_identity(enum kw_key_type t, struct kw_privkey *key,
				 struct kw_noise_identity *id)
{
	if (!kw_key_type_supported(t))
		skip();
	assert_int_equal(kw_key_generate(t, 0, key), 0);
	assert_int_equal(kw_noise_identity_init(id, key, test_muxers, 1, NULL), 0);
}

/* Feeds all of in[0..len) to s, collecting transport plaintext into app (if any).
 * Returns 0 or the first error. */
static inline int test_feed(struct kw_noise_session *s, const uint8_t *in, size_t len,
			    uint8_t *rxbuf, uint8_t *app, size_t *app_len)
{
	while (len) {
		const uint8_t *pt;
		size_t pl;
		long n = kw_noise_read(s, in, len, rxbuf, RXCAP, &pt, &pl);

		if (n < 0)
			return (int)n;
		if (pt && app) {
			memcpy(app + *app_len, pt, pl);
			*app_len += pl;
		}
		in += n;
		len -= (size_t)n;
	}
	return 0;
}

struct test_pump_result {
	int ini_err, res_err;
	int frames;
};

/* Runs a handshake in memory, delivering each frame whole (or in `chunk`-byte pieces when
 * chunk > 0). Stops at the first error. */
static inline struct test_pump_result test_pump(struct kw_noise_session *ini,
						struct kw_noise_session *res, size_t chunk)
{
	static uint8_t rx_i[RXCAP], rx_r[RXCAP];
	struct test_pump_result r = { 0, 0, 0 };
	uint8_t frame[KW_NOISE_HS_FRAME_MAX];

	for (int guard = 0; guard < 8; guard++) {
		struct kw_noise_session *from = kw_noise_want_write(ini) ? ini :
						kw_noise_want_write(res) ? res : NULL;
		struct kw_noise_session *to = from == ini ? res : ini;
		int *to_err = from == ini ? &r.res_err : &r.ini_err;
		int *from_err = from == ini ? &r.ini_err : &r.res_err;
		size_t n = 0, off = 0;
		int err;

		if (!from)
			break;
		err = kw_noise_handshake_write(from, frame, sizeof(frame), &n);
		if (err) {
			*from_err = err;
			break;
		}
		r.frames++;
		while (off < n) {
			size_t piece = chunk ? (n - off < chunk ? n - off : chunk) : n - off;

			err = test_feed(to, frame + off, piece, to == ini ? rx_i : rx_r, NULL, NULL);
			if (err) {
				*to_err = err;
				return r;
			}
			off += piece;
		}
	}
	return r;
}

#endif
