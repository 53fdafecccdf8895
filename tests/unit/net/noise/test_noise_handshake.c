/*
 * net/noise libp2p handshake: C<->C in memory per key type, a transcript recorded from
 * js-libp2p 3.x, identity checks (signature, expected peer id) and broken input (tampered,
 * truncated, reordered, oversized frames; malformed payloads).
 */
#include <pb_encode.h>

#include "noise_test.h"
#include "vectors/noise/libp2p_noise_js.h"
#include "vectors/noise/noise_xx_vectors.h"

static struct kw_privkey key_a, key_b;
static struct kw_noise_identity id_a, id_b;
static struct kw_noise_session ini, res;
static uint8_t rxbuf[RXCAP];

static void handshake_of_type(enum kw_key_type ta, enum kw_key_type tb)
{
	struct kw_peer_id pa, pb;
	struct test_pump_result r;

	test_identity(ta, &key_a, &id_a);
	test_identity(tb, &key_b, &id_b);
	assert_int_equal(kw_peer_id_from_pubkey(&key_a.pub, &pa), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&key_b.pub, &pb), 0);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true,
					       &(struct kw_noise_opts){ .expected_peer = &pb }), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	assert_null(kw_noise_remote_peer(&ini));
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, 0);
	assert_int_equal(r.res_err, 0);
	assert_int_equal(r.frames, 3);
	assert_true(kw_noise_established(&ini));
	assert_true(kw_noise_established(&res));
	assert_true(kw_peer_id_equal(kw_noise_remote_peer(&ini), &pb));
	assert_true(kw_peer_id_equal(kw_noise_remote_peer(&res), &pa));
	assert_memory_equal(kw_noise_handshake_hash(&ini), kw_noise_handshake_hash(&res), 32);
	assert_int_equal(kw_noise_remote_muxer_count(&ini), 1);
	assert_true(kw_noise_remote_offers_muxer(&ini, YAMUX));
	assert_true(kw_noise_remote_offers_muxer(&res, YAMUX));
	assert_false(kw_noise_remote_offers_muxer(&res, "/mplex/6.7.0"));
	assert_string_equal(kw_noise_remote_muxer(&res, 0), YAMUX);
	assert_null(kw_noise_remote_muxer(&res, 1));
}

static void test_noise_handshake_ed25519_authenticates_both_peers(void **state)
{
	handshake_of_type(KW_KEY_ED25519, KW_KEY_ED25519);
}

static void test_noise_handshake_secp256k1_authenticates_both_peers(void **state)
{
	handshake_of_type(KW_KEY_SECP256K1, KW_KEY_ED25519);
	handshake_of_type(KW_KEY_ED25519, KW_KEY_SECP256K1);
}

static void test_noise_handshake_rsa_authenticates_both_peers(void **state)
{
	handshake_of_type(KW_KEY_RSA, KW_KEY_ED25519);
	handshake_of_type(KW_KEY_ED25519, KW_KEY_RSA);
}

static void test_noise_handshake_ecdsa_authenticates_both_peers(void **state)
{
	handshake_of_type(KW_KEY_ECDSA, KW_KEY_ECDSA);
}

/* Chunking must not matter: every frame arrives one byte at a time. */
static void test_noise_handshake_survives_byte_by_byte_delivery(void **state)
{
	struct test_pump_result r;

	test_identity(KW_KEY_ED25519, &key_a, &id_a);
	test_identity(KW_KEY_ED25519, &key_b, &id_b);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	r = test_pump(&ini, &res, 1);
	assert_int_equal(r.ini_err, 0);
	assert_int_equal(r.res_err, 0);
	assert_true(kw_noise_established(&ini));
	assert_true(kw_noise_established(&res));
}

static void js_initiator_identity(struct kw_noise_identity *id)
{
	uint8_t pb[128], s[32];
	size_t n = test_hex(JS_INIT_IDENTITY_PRIV, pb, sizeof(pb));

	assert_int_equal(kw_privkey_decode(pb, n, &key_a), 0);
	test_hex(noise_xx_vectors[0].init_static, s, sizeof(s));
	assert_int_equal(kw_noise_identity_init(id, &key_a, test_muxers, 1, s), 0);
}

/* Our payload is byte-identical to js's for the same Ed25519 key and static key: the
 * protobuf layout (fields 1, 2, 4) and the signed bytes agree. */
static void test_noise_identity_payload_matches_js(void **state)
{
	uint8_t want[256], pub[32];
	size_t n = test_hex(JS_INIT_PAYLOAD, want, sizeof(want));

	js_initiator_identity(&id_a);
	test_hex(JS_INIT_STATIC_PUB, pub, sizeof(pub));
	assert_memory_equal(id_a.static_pub, pub, 32);
	assert_int_equal(id_a.payload_len, n);
	assert_memory_equal(id_a.payload, want, n);
}

/*
 * The whole js transcript through the Noise core with js's payloads: msg1..msg3, the
 * handshake hash and the first transport frame each way. Independent of the identity key
 * types built in (the payloads are opaque here).
 */
static void test_noise_core_reproduces_js_transcript(void **state)
{
	const struct noise_vector *v = &noise_xx_vectors[0];
	struct kw_noise_xx i, r;
	struct kw_noise_cipher itx, irx, rtx, rrx;
	uint8_t is[32], ie[32], rs[32], re[32], ip[256], rp[256], want[512], out[512], h[32];
	size_t ipl = test_hex(JS_INIT_PAYLOAD, ip, sizeof(ip));
	size_t rpl = test_hex(JS_RESP_PAYLOAD, rp, sizeof(rp));
	const uint8_t *p;
	size_t n, pl, wl;

	test_hex(v->init_static, is, 32);
	test_hex(v->init_ephemeral, ie, 32);
	test_hex(v->resp_static, rs, 32);
	test_hex(v->resp_ephemeral, re, 32);
	assert_int_equal(kw_noise_xx_init(&i, true, NULL, 0, is, ie), 0);
	assert_int_equal(kw_noise_xx_init(&r, false, NULL, 0, rs, re), 0);

	wl = test_hex(JS_MSG1, want, sizeof(want));
	assert_int_equal(kw_noise_xx_write(&i, NULL, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n + 2, wl);
	assert_memory_equal(out, want + 2, n);
	assert_int_equal(kw_noise_xx_read(&r, out, n, &p, &pl), 0);
	assert_int_equal(pl, 0);

	wl = test_hex(JS_MSG2, want, sizeof(want));
	assert_int_equal(kw_noise_xx_write(&r, rp, rpl, out, sizeof(out), &n), 0);
	assert_int_equal(n + 2, wl);
	assert_memory_equal(out, want + 2, n);
	assert_int_equal(kw_noise_xx_read(&i, out, n, &p, &pl), 0);
	assert_int_equal(pl, rpl);
	assert_memory_equal(p, rp, rpl);

	wl = test_hex(JS_MSG3, want, sizeof(want));
	assert_int_equal(kw_noise_xx_write(&i, ip, ipl, out, sizeof(out), &n), 0);
	assert_int_equal(n + 2, wl);
	assert_memory_equal(out, want + 2, n);
	assert_int_equal(kw_noise_xx_read(&r, out, n, &p, &pl), 0);
	assert_memory_equal(p, ip, ipl);

	test_hex(JS_HANDSHAKE_HASH, h, 32);
	assert_memory_equal(kw_noise_xx_hash(&i), h, 32);
	assert_int_equal(kw_noise_xx_split(&i, &itx, &irx), 0);
	assert_int_equal(kw_noise_xx_split(&r, &rtx, &rrx), 0);
	wl = test_hex(JS_T_I2R, want, sizeof(want));
	assert_int_equal(kw_noise_cipher_encrypt(&itx, NULL, 0, (const uint8_t *)JS_T_I2R_PLAIN, 15,
						 out), 0);
	assert_memory_equal(out, want + 2, wl - 2);
	wl = test_hex(JS_T_R2I, want, sizeof(want));
	assert_int_equal(kw_noise_cipher_encrypt(&rtx, NULL, 0, (const uint8_t *)JS_T_R2I_PLAIN, 15,
						 out), 0);
	assert_memory_equal(out, want + 2, wl - 2);
}

/* The C initiator against js's recorded responder: our msg1 and msg3 are js's bytes, js's
 * secp256k1-signed msg2 verifies, and we name the right peer. Needs secp256k1 verify. */
static void test_noise_session_initiator_reproduces_js_transcript(void **state)
{
	uint8_t m[512], want[512], e[32], pid[64];
	struct kw_peer_id expect;
	size_t n, wl;

	if (!kw_key_type_supported(KW_KEY_SECP256K1))
		skip();
	js_initiator_identity(&id_a);
	test_hex(noise_xx_vectors[0].init_ephemeral, e, 32);
	assert_int_equal(kw_peer_id_from_bytes(pid, test_hex(JS_RESP_PEER_ID, pid, sizeof(pid)),
					       &expect), 0);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, &(struct kw_noise_opts){
		.expected_peer = &expect, .ephemeral_priv = e }), 0);
	wl = test_hex(JS_MSG1, want, sizeof(want));
	assert_int_equal(kw_noise_handshake_write(&ini, m, sizeof(m), &n), 0);
	assert_int_equal(n, wl);
	assert_memory_equal(m, want, wl);
	wl = test_hex(JS_MSG2, m, sizeof(m));
	assert_int_equal(test_feed(&ini, m, wl, rxbuf, NULL, NULL), 0);
	assert_true(kw_noise_want_write(&ini));
	wl = test_hex(JS_MSG3, want, sizeof(want));
	assert_int_equal(kw_noise_handshake_write(&ini, m, sizeof(m), &n), 0);
	assert_int_equal(n, wl);
	assert_memory_equal(m, want, wl);
	assert_true(kw_noise_established(&ini));
	assert_true(kw_peer_id_equal(kw_noise_remote_peer(&ini), &expect));
	assert_true(kw_noise_remote_offers_muxer(&ini, YAMUX));
}

/* The C responder with js's secp256k1 identity: msg2 equals js's (RFC 6979 signature) and
 * js's msg3 authenticates the Ed25519 initiator. Needs secp256k1 signing. */
static void test_noise_session_responder_reproduces_js_transcript(void **state)
{
	uint8_t m[512], want[512], s[32], e[32], pb[64], pid[64];
	struct kw_peer_id expect;
	size_t n, wl;

	if (!kw_key_type_supported(KW_KEY_SECP256K1))
		skip();
	assert_int_equal(kw_privkey_decode(pb, test_hex(JS_RESP_IDENTITY_PRIV, pb, sizeof(pb)),
					   &key_b), 0);
	test_hex(noise_xx_vectors[0].resp_static, s, 32);
	test_hex(noise_xx_vectors[0].resp_ephemeral, e, 32);
	assert_int_equal(kw_noise_identity_init(&id_b, &key_b, test_muxers, 1, s), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false,
					       &(struct kw_noise_opts){ .ephemeral_priv = e }), 0);
	wl = test_hex(JS_MSG1, m, sizeof(m));
	assert_int_equal(test_feed(&res, m, wl, rxbuf, NULL, NULL), 0);
	wl = test_hex(JS_MSG2, want, sizeof(want));
	assert_int_equal(kw_noise_handshake_write(&res, m, sizeof(m), &n), 0);
	assert_int_equal(n, wl);
	assert_memory_equal(m, want, wl);
	wl = test_hex(JS_MSG3, m, sizeof(m));
	assert_int_equal(test_feed(&res, m, wl, rxbuf, NULL, NULL), 0);
	assert_true(kw_noise_established(&res));
	assert_int_equal(kw_peer_id_from_bytes(pid, test_hex(JS_INIT_PEER_ID, pid, sizeof(pid)),
					       &expect), 0);
	assert_true(kw_peer_id_equal(kw_noise_remote_peer(&res), &expect));
}

/* Responder side of the js transcript with js's responder payload injected as our identity
 * (the struct is plain data): msg2 must be js's bytes even without secp256k1 built in. */
static void test_noise_session_writes_js_msg2_with_js_payload(void **state)
{
	uint8_t m[512], want[512], e[32];
	size_t n, wl;

	memset(&id_b, 0, sizeof(id_b));
	test_hex(noise_xx_vectors[0].resp_static, id_b.static_priv, 32);
	assert_int_equal(kw_noise_dh_public(id_b.static_priv, id_b.static_pub), 0);
	id_b.payload_len = (uint16_t)test_hex(JS_RESP_PAYLOAD, id_b.payload, sizeof(id_b.payload));
	test_hex(noise_xx_vectors[0].resp_ephemeral, e, 32);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false,
					       &(struct kw_noise_opts){ .ephemeral_priv = e }), 0);
	wl = test_hex(JS_MSG1, m, sizeof(m));
	assert_int_equal(test_feed(&res, m, wl, rxbuf, NULL, NULL), 0);
	assert_int_equal(kw_noise_handshake_write(&res, m, sizeof(m), &n), 0);
	wl = test_hex(JS_MSG2, want, sizeof(want));
	assert_int_equal(n, wl);
	assert_memory_equal(m, want, wl);
}

static void start_pair(const struct kw_noise_opts *ini_opts)
{
	test_identity(KW_KEY_ED25519, &key_a, &id_a);
	test_identity(KW_KEY_ED25519, &key_b, &id_b);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, ini_opts), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
}

/* Moves one handshake frame from `from` into `frame`. */
static size_t next_frame(struct kw_noise_session *from, uint8_t *frame)
{
	size_t n = 0;

	assert_int_equal(kw_noise_handshake_write(from, frame, KW_NOISE_HS_FRAME_MAX, &n), 0);
	return n;
}

static void test_noise_handshake_wrong_expected_peer_fails_with_epeerid(void **state)
{
	struct kw_privkey other;
	struct kw_peer_id other_id;
	struct test_pump_result r;

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &other), 0);
	assert_int_equal(kw_peer_id_from_pubkey(&other.pub, &other_id), 0);
	start_pair(&(struct kw_noise_opts){ .expected_peer = &other_id });
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, -KW_EPEERID);
	assert_int_equal(kw_noise_state(&ini), KW_NOISE_FAILED);
	assert_false(kw_noise_want_write(&ini));
	assert_null(kw_noise_remote_peer(&ini));
	/* sticky: the failed session refuses everything with the same code */
	assert_int_equal(kw_noise_handshake_write(&ini, rxbuf, sizeof(rxbuf), &(size_t){ 0 }),
			 -KW_EPEERID);
}

/* A payload whose signature covers a different static key: the peer holds the identity key
 * but did not sign this Noise key (key substitution). */
static void test_noise_handshake_rejects_signature_over_other_static_key(void **state)
{
	struct test_pump_result r;

	start_pair(NULL);
	/* keep id_b's signed payload but switch its static key */
	memset(id_b.static_priv, 0x5a, 32);
	assert_int_equal(kw_noise_dh_public(id_b.static_priv, id_b.static_pub), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, -KW_ESIG);
	/* and the other direction: the responder rejects a forged msg3 */
	start_pair(NULL);
	memset(id_a.static_priv, 0x3c, 32);
	assert_int_equal(kw_noise_dh_public(id_a.static_priv, id_a.static_pub), 0);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, 0);
	assert_int_equal(r.res_err, -KW_ESIG);
	assert_false(kw_noise_established(&res));
}

static void test_noise_handshake_rejects_every_tampered_byte_of_msg2_and_msg3(void **state)
{
	uint8_t m1[KW_NOISE_HS_FRAME_MAX], m2[KW_NOISE_HS_FRAME_MAX], m3[KW_NOISE_HS_FRAME_MAX];
	uint8_t e_i[32] = { 1 }, e_r[32] = { 2 };
	size_t n1, n2, n3;

	start_pair(&(struct kw_noise_opts){ .ephemeral_priv = e_i });
	assert_int_equal(kw_noise_session_init(&res, &id_b, false,
					       &(struct kw_noise_opts){ .ephemeral_priv = e_r }), 0);
	n1 = next_frame(&ini, m1);
	assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), 0);
	n2 = next_frame(&res, m2);
	assert_int_equal(test_feed(&ini, m2, n2, rxbuf, NULL, NULL), 0);
	n3 = next_frame(&ini, m3);

	/* msg2: any flipped byte after the length (e, encrypted s, encrypted payload) fails */
	for (size_t at = 2; at < n2; at++) {
		uint8_t t[KW_NOISE_HS_FRAME_MAX];

		assert_int_equal(kw_noise_session_init(&ini, &id_a, true,
						       &(struct kw_noise_opts){ .ephemeral_priv = e_i }), 0);
		next_frame(&ini, t);
		memcpy(t, m2, n2);
		t[at] ^= 0x01;
		assert_int_equal(test_feed(&ini, t, n2, rxbuf, NULL, NULL), -KW_EHANDSHAKE);
	}
	/* msg3 likewise, on a responder that accepted msg1 and wrote the same msg2 */
	for (size_t at = 2; at < n3; at++) {
		uint8_t t[KW_NOISE_HS_FRAME_MAX];

		assert_int_equal(kw_noise_session_init(&res, &id_b, false,
						       &(struct kw_noise_opts){ .ephemeral_priv = e_r }), 0);
		assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), 0);
		next_frame(&res, t);
		memcpy(t, m3, n3);
		t[at] ^= 0x80;
		assert_int_equal(test_feed(&res, t, n3, rxbuf, NULL, NULL), -KW_EHANDSHAKE);
	}
	/* untampered msg3 still works: the loop above really exercised valid state */
	assert_int_equal(kw_noise_session_init(&res, &id_b, false,
					       &(struct kw_noise_opts){ .ephemeral_priv = e_r }), 0);
	assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), 0);
	next_frame(&res, m2);
	assert_int_equal(test_feed(&res, m3, n3, rxbuf, NULL, NULL), 0);
	assert_true(kw_noise_established(&res));
}

/* A frame whose length prefix is cut short (last byte dropped) is not authentic. */
static void test_noise_handshake_rejects_truncated_msg2(void **state)
{
	uint8_t m[KW_NOISE_HS_FRAME_MAX];
	size_t n;

	start_pair(NULL);
	n = next_frame(&ini, m);
	assert_int_equal(test_feed(&res, m, n, rxbuf, NULL, NULL), 0);
	n = next_frame(&res, m);
	m[0] = (uint8_t)((n - 3) >> 8);
	m[1] = (uint8_t)(n - 3);
	assert_int_equal(test_feed(&ini, m, n - 1, rxbuf, NULL, NULL), -KW_EHANDSHAKE);
	/* an incomplete frame is simply pending, not an error */
	start_pair(NULL);
	n = next_frame(&ini, m);
	assert_int_equal(test_feed(&res, m, n, rxbuf, NULL, NULL), 0);
	n = next_frame(&res, m);
	assert_int_equal(test_feed(&ini, m, n - 1, rxbuf, NULL, NULL), 0);
	assert_true(kw_noise_rx_partial(&ini));
	assert_int_equal(kw_noise_state(&ini), KW_NOISE_HS_READ);
}

/* msg1 replayed where msg3 is due, msg3 before msg2 was sent, bytes while our turn. */
static void test_noise_handshake_rejects_reordered_messages(void **state)
{
	uint8_t m1[KW_NOISE_HS_FRAME_MAX], m2[KW_NOISE_HS_FRAME_MAX];
	size_t n1, n2;
	const uint8_t *pt;
	size_t pl;

	start_pair(NULL);
	n1 = next_frame(&ini, m1);
	assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), 0);
	/* the responder owes msg2: anything arriving now is a protocol violation */
	assert_int_equal(kw_noise_read(&res, m1, n1, rxbuf, RXCAP, &pt, &pl), -KW_EPROTO);

	start_pair(NULL);
	n1 = next_frame(&ini, m1);
	assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), 0);
	n2 = next_frame(&res, m2);
	/* msg1 again instead of msg3 */
	assert_int_equal(test_feed(&res, m1, n1, rxbuf, NULL, NULL), -KW_EHANDSHAKE);
	/* the initiator gets its own msg1 back instead of msg2 */
	assert_int_equal(test_feed(&ini, m1, n1, rxbuf, NULL, NULL), -KW_EHANDSHAKE);
	/* the initiator cannot read before writing msg1 */
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	assert_int_equal(test_feed(&ini, m2, n2, rxbuf, NULL, NULL), -KW_EPROTO);
}

static void test_noise_handshake_rejects_frame_larger_than_buffer(void **state)
{
	uint8_t hdr[2] = { 0xff, 0xff };
	const uint8_t *pt;
	size_t pl;

	start_pair(NULL);
	assert_int_equal(kw_noise_read(&res, hdr, 2, rxbuf, 4096, &pt, &pl), -KW_EMSGSIZE);
	assert_int_equal(kw_noise_state(&res), KW_NOISE_FAILED);
	/* exactly the capacity is fine (and then fails only as a bad msg1 if junk) */
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	hdr[0] = 0x10; hdr[1] = 0x00;
	assert_int_equal(kw_noise_read(&res, hdr, 2, rxbuf, 4096, &pt, &pl), 2);
}

static void test_noise_handshake_write_reports_small_buffer_without_failing(void **state)
{
	uint8_t m[KW_NOISE_HS_FRAME_MAX];
	size_t n;

	start_pair(NULL);
	assert_int_equal(kw_noise_handshake_write(&ini, m, 33, &n), -KW_ENOSPC);
	assert_int_equal(kw_noise_handshake_write(&ini, m, 34, &n), 0);
	assert_int_equal(n, 34);
	assert_int_equal(kw_noise_handshake_write(&ini, m, sizeof(m), &n), -KW_EPROTO);
	assert_int_equal(kw_noise_state(&ini), KW_NOISE_HS_READ);
}

/* Responder identity with a hand-made payload (the struct is plain data). */
static void responder_with_payload(const uint8_t *payload, size_t len)
{
	test_identity(KW_KEY_ED25519, &key_a, &id_a);
	memset(&id_b, 0, sizeof(id_b));
	memset(id_b.static_priv, 0x21, 32);
	assert_int_equal(kw_noise_dh_public(id_b.static_priv, id_b.static_pub), 0);
	memcpy(id_b.payload, payload, len);
	id_b.payload_len = (uint16_t)len;
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
}

static void test_noise_handshake_requires_identity_key_and_signature(void **state)
{
	/* a valid protobuf with only the muxer extension (no identity at all) */
	static const uint8_t only_ext[] = { 0x22, 0x0e, 0x12, 0x0c, '/', 'y', 'a', 'm', 'u', 'x',
					    '/', '1', '.', '0', '.', '0' };
	/* identity_key present (spec Ed25519 public key), signature missing */
	uint8_t no_sig[64];
	size_t n;
	struct test_pump_result r;

	responder_with_payload(only_ext, sizeof(only_ext));
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, -KW_EHANDSHAKE);

	no_sig[0] = 0x0a;
	no_sig[1] = 0x24;
	n = 2 + test_hex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
			 no_sig + 2, sizeof(no_sig) - 2);
	responder_with_payload(no_sig, n);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, -KW_EHANDSHAKE);

	/* not a protobuf at all */
	responder_with_payload((const uint8_t *)"\xff\xff\xff", 3);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err, -KW_EHANDSHAKE);
}

/* A peer without the extension leaves the muxer to multistream-select (count 0). */
static void test_noise_handshake_without_muxers_reports_none(void **state)
{
	struct test_pump_result r;

	test_identity(KW_KEY_ED25519, &key_a, &id_a);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &key_b), 0);
	assert_int_equal(kw_noise_identity_init(&id_b, &key_b, NULL, 0, NULL), 0);
	assert_int_equal(kw_noise_session_init(&ini, &id_a, true, NULL), 0);
	assert_int_equal(kw_noise_session_init(&res, &id_b, false, NULL), 0);
	r = test_pump(&ini, &res, 0);
	assert_int_equal(r.ini_err | r.res_err, 0);
	assert_int_equal(kw_noise_remote_muxer_count(&ini), 0);
	assert_false(kw_noise_remote_offers_muxer(&ini, YAMUX));
	assert_int_equal(kw_noise_remote_muxer_count(&res), 1);
}

/* Found by fuzz_noise_handshake (in its harness): an identity without a payload cannot start
 * a session, and says so instead of producing an unauthenticated handshake. */
static void test_noise_session_init_rejects_identity_without_payload(void **state)
{
	struct kw_noise_session s;

	memset(&id_b, 0, sizeof(id_b));
	memset(id_b.static_priv, 0x21, 32);
	assert_int_equal(kw_noise_dh_public(id_b.static_priv, id_b.static_pub), 0);
	assert_int_equal(kw_noise_session_init(&s, &id_b, true, NULL), -KW_EINVAL);
	assert_int_equal(kw_noise_session_init(&s, NULL, true, NULL), -KW_EINVAL);
}

static void test_noise_identity_rejects_bad_muxer_lists(void **state)
{
	const char *too_many[KW_NOISE_MUXERS_MAX + 1] = { "/a", "/b", "/c", "/d", "/e" };
	const char *too_long[1] = { "/0123456789012345678901234567890123456789" };
	const char *empty[1] = { "" };

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &key_a), 0);
	assert_int_equal(kw_noise_identity_init(&id_a, &key_a, too_many, KW_NOISE_MUXERS_MAX + 1,
						NULL), -KW_EINVAL);
	assert_int_equal(kw_noise_identity_init(&id_a, &key_a, too_long, 1, NULL), -KW_EINVAL);
	assert_int_equal(kw_noise_identity_init(&id_a, &key_a, empty, 1, NULL), -KW_EINVAL);
	assert_int_equal(kw_noise_identity_init(&id_a, &key_a, too_many, KW_NOISE_MUXERS_MAX,
						NULL), 0);
}

/* A payload with the spec Ed25519 key, a dummy 64-byte signature and the given names. */
static size_t payload_with_muxers(const char *const *names, uint8_t *out, size_t cap)
{
	uint8_t hdr[64];
	size_t n = test_hex("0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
			    "1240", hdr, sizeof(hdr));
	uint8_t ext[512];
	pb_ostream_t os = pb_ostream_from_buffer(ext, sizeof(ext));
	size_t len;

	/* extensions submessage: repeated string field 2 */
	for (const char *const *p = names; *p; p++) {
		assert_true(pb_encode_tag(&os, PB_WT_STRING, 2));
		assert_true(pb_encode_string(&os, (const pb_byte_t *)*p, strlen(*p)));
	}
	memcpy(out, hdr, n);
	memset(out + n, 0xab, 64);          /* signature bytes (not checked by decode) */
	len = n + 64;
	out[len++] = 0x22;
	assert_true(os.bytes_written < 128);
	out[len++] = (uint8_t)os.bytes_written;
	memcpy(out + len, ext, os.bytes_written);
	len += os.bytes_written;
	assert_true(len <= cap);
	return len;
}

static void test_noise_payload_keeps_first_muxers_and_counts_all(void **state)
{
	static const char *const names[] = { "/yamux/1.0.0", "/mplex/6.7.0",
		"/this-name-is-far-too-long-to-keep/1.0.0", "/c/1", "/d/1", "/e/1", "/f/1", NULL };
	static struct kw_noise_remote_payload rp;
	uint8_t buf[512];
	size_t n = payload_with_muxers(names, buf, sizeof(buf));

	assert_int_equal(kw_noise_payload_decode(buf, n, &rp), 0);
	assert_int_equal(rp.key.type, KW_KEY_ED25519);
	assert_int_equal(rp.sig_len, 64);
	assert_int_equal(rp.muxers_total, 7);
	assert_int_equal(rp.n_muxers, KW_NOISE_MUXERS_MAX);
	assert_string_equal(rp.muxers[0], "/yamux/1.0.0");
	assert_string_equal(rp.muxers[1], "/mplex/6.7.0");
	assert_string_equal(rp.muxers[2], "/c/1");   /* the long one was skipped */
	assert_string_equal(rp.muxers[3], "/d/1");
	/* every truncation is rejected except the one that ends exactly after the signature
	 * (a complete payload without extensions); none reads past its end (ASan builds) */
	for (size_t cut = 0; cut < n; cut++) {
		int err = kw_noise_payload_decode(buf, cut, &rp);

		if (cut == 2 + 36 + 2 + 64)
			assert_int_equal(err, 0);
		else
			assert_int_not_equal(err, 0);
	}
}

static void test_noise_payload_rejects_oversized_signature(void **state)
{
	static uint8_t buf[KW_SIG_MAX + 128];
	static struct kw_noise_remote_payload rp;
	uint8_t hdr[64];
	size_t n = test_hex("0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
			    hdr, sizeof(hdr));
	size_t sig = KW_SIG_MAX + 1, len = n;

	memcpy(buf, hdr, n);
	buf[len++] = 0x12;
	buf[len++] = (uint8_t)(0x80 | (sig & 0x7f));
	buf[len++] = (uint8_t)(sig >> 7);
	memset(buf + len, 1, sig);
	len += sig;
	assert_int_equal(kw_noise_payload_decode(buf, len, &rp), -KW_EHANDSHAKE);
	/* KW_SIG_MAX itself decodes */
	buf[n + 1] = (uint8_t)(0x80 | (KW_SIG_MAX & 0x7f));
	buf[n + 2] = (uint8_t)(KW_SIG_MAX >> 7);
	assert_int_equal(kw_noise_payload_decode(buf, len - 1, &rp), 0);
	assert_int_equal(rp.sig_len, KW_SIG_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noise_handshake_ed25519_authenticates_both_peers),
		cmocka_unit_test(test_noise_handshake_secp256k1_authenticates_both_peers),
		cmocka_unit_test(test_noise_handshake_rsa_authenticates_both_peers),
		cmocka_unit_test(test_noise_handshake_ecdsa_authenticates_both_peers),
		cmocka_unit_test(test_noise_handshake_survives_byte_by_byte_delivery),
		cmocka_unit_test(test_noise_identity_payload_matches_js),
		cmocka_unit_test(test_noise_core_reproduces_js_transcript),
		cmocka_unit_test(test_noise_session_initiator_reproduces_js_transcript),
		cmocka_unit_test(test_noise_session_responder_reproduces_js_transcript),
		cmocka_unit_test(test_noise_session_writes_js_msg2_with_js_payload),
		cmocka_unit_test(test_noise_handshake_wrong_expected_peer_fails_with_epeerid),
		cmocka_unit_test(test_noise_handshake_rejects_signature_over_other_static_key),
		cmocka_unit_test(test_noise_handshake_rejects_every_tampered_byte_of_msg2_and_msg3),
		cmocka_unit_test(test_noise_handshake_rejects_truncated_msg2),
		cmocka_unit_test(test_noise_handshake_rejects_reordered_messages),
		cmocka_unit_test(test_noise_handshake_rejects_frame_larger_than_buffer),
		cmocka_unit_test(test_noise_handshake_write_reports_small_buffer_without_failing),
		cmocka_unit_test(test_noise_handshake_requires_identity_key_and_signature),
		cmocka_unit_test(test_noise_handshake_without_muxers_reports_none),
		cmocka_unit_test(test_noise_session_init_rejects_identity_without_payload),
		cmocka_unit_test(test_noise_identity_rejects_bad_muxer_lists),
		cmocka_unit_test(test_noise_payload_keeps_first_muxers_and_counts_all),
		cmocka_unit_test(test_noise_payload_rejects_oversized_signature),
	};
	return cmocka_run_group_tests_name("net/noise/handshake", tests, NULL, NULL);
}
