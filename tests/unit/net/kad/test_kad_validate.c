/*
 * net/kad/validate.c: the /pk/ validator for Ed25519, secp256k1 and RSA keys (identity and
 * sha2-256 peer IDs); the /kwaai/ envelope rebuilt here from its documented wire format and
 * signed bytes (doc/net-kad.md) and compared with kw_kad_kwaai_seal; every tampered field,
 * unsigned, expired, owner-bound and malformed case with its error code and reason; select.
 */
#include "harness.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/net/kad_msg.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>

#include "../peer/hex.h"
#include "../peer/vectors.h"
#include "../peer/vectors_gen.h"

#define NOW 1764633600000ull   /* 2025-12-02 00:00 UTC in ms */
#define LATER (NOW + 3600000)

static struct kw_privkey ed, ed2, secp, rsa;
static uint8_t buf[KW_KEY_PB_MAX], env[20000], env2[20000];
static char err[256];

static void load_priv(const char *hex, struct kw_privkey *k)
{
	int n = test_unhex(hex, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(kw_privkey_decode(buf, (size_t)n, k), 0);
}

static int setup(void **state)
{
	load_priv(ED25519_PRIV_PB, &ed);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &ed2), 0);
	if (kw_key_type_supported(KW_KEY_SECP256K1))
		load_priv(SECP_PRIV_PB, &secp);
	if (kw_key_type_supported(KW_KEY_RSA))
		load_priv(RSA2048_PRIV_PB, &rsa);
	err[0] = '\0';
	return 0;
}

/* "/pk/" + the peer ID multihash of k. */
static size_t pk_key(const struct kw_pubkey *k, uint8_t *key)
{
	struct kw_peer_id id;

	assert_int_equal(kw_peer_id_from_pubkey(k, &id), 0);
	memcpy(key, "/pk/", 4);
	memcpy(key + 4, id.bytes, id.len);
	return 4 + id.len;
}

static size_t pub_pb(const struct kw_pubkey *k, uint8_t *out)
{
	size_t len;

	assert_int_equal(kw_pubkey_encode(k, out, KW_KEY_PB_MAX, &len), 0);
	return len;
}

static void check_pk_valid(const struct kw_privkey *k)
{
	uint8_t key[80], val[KW_KEY_PB_MAX];
	size_t klen = pk_key(&k->pub, key), vlen = pub_pb(&k->pub, val);

	assert_int_equal(kw_kad_validate(key, klen, val, vlen, NOW, err, sizeof(err)), 0);
}

static void test_pk_ed25519_key_validates(void **state)
{
	check_pk_valid(&ed);
}

static void test_pk_secp256k1_key_validates(void **state)
{
	if (!kw_key_type_supported(KW_KEY_SECP256K1))
		skip();
	check_pk_valid(&secp);
}

static void test_pk_rsa_key_validates_against_sha256_peer_id(void **state)
{
	uint8_t key[80];

	if (!kw_key_type_supported(KW_KEY_RSA))
		skip();
	assert_int_equal(pk_key(&rsa.pub, key), 4 + 34);   /* sha2-256 multihash */
	assert_int_equal(key[4], 0x12);
	check_pk_valid(&rsa);
}

static void test_pk_value_of_another_key_is_esig(void **state)
{
	uint8_t key[80], val[KW_KEY_PB_MAX];
	size_t klen = pk_key(&ed.pub, key), vlen = pub_pb(&ed2.pub, val);

	assert_int_equal(kw_kad_validate(key, klen, val, vlen, NOW, err, sizeof(err)),
			 -KW_ESIG);
	assert_non_null(strstr(err, "/pk/"));
	assert_non_null(strstr(err, "names"));
	if (kw_key_type_supported(KW_KEY_RSA)) {
		klen = pk_key(&rsa.pub, key);
		assert_int_equal(kw_kad_validate(key, klen, val, vlen, NOW, err, sizeof(err)),
				 -KW_ESIG);
	}
}

static void test_pk_malformed_value_is_ebadmsg(void **state)
{
	uint8_t key[80], val[KW_KEY_PB_MAX];
	size_t klen = pk_key(&ed.pub, key), vlen = pub_pb(&ed.pub, val);

	assert_int_equal(kw_kad_validate(key, klen, val, vlen - 1, NOW, err, sizeof(err)),
			 -KW_EBADMSG);
	assert_non_null(strstr(err, "PublicKey"));
	assert_int_equal(kw_kad_validate(key, klen, val, 0, NOW, err, sizeof(err)),
			 -KW_EBADMSG);
}

static void test_pk_key_that_is_no_multihash_is_ebadmsg(void **state)
{
	uint8_t val[KW_KEY_PB_MAX];
	size_t vlen = pub_pb(&ed.pub, val);

	assert_int_equal(kw_kad_validate((const uint8_t *)"/pk/abc", 7, val, vlen, NOW, err,
					 sizeof(err)), -KW_EBADMSG);
	assert_non_null(strstr(err, "peer ID multihash"));
	assert_int_equal(kw_kad_validate((const uint8_t *)"/pk/", 4, val, vlen, NOW, err,
					 sizeof(err)), -KW_EBADMSG);
}

static void test_other_namespace_is_enoproto_and_named(void **state)
{
	assert_int_equal(kw_kad_validate((const uint8_t *)"/ipns/xyz", 9,
					 (const uint8_t *)"v", 1, NOW, err, sizeof(err)),
			 -KW_ENOPROTO);
	assert_non_null(strstr(err, "\"/ipns/\""));
	assert_int_equal(kw_kad_validate((const uint8_t *)"plain", 5, (const uint8_t *)"v", 1,
					 NOW, err, sizeof(err)), -KW_ENOPROTO);
	assert_int_equal(kw_kad_validate((const uint8_t *)"/kwaai", 6, (const uint8_t *)"v", 1,
					 NOW, err, sizeof(err)), -KW_ENOPROTO);
}

/* ---- /kwaai/ envelope, built here from doc/net-kad.md --------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t put_bytes(uint8_t *p, unsigned field, const uint8_t *b, size_t len)
{
	size_t n = put_varint(p, field << 3 | 2);

	n += put_varint(p + n, len);
	memcpy(p + n, b, len);
	return n + len;
}

/* "kwaai-record:" || SHA-256(uvarint(klen) || key || be64(seq) || be64(expiry) ||
 * uvarint(vlen) || value) */
static void doc_msg(const char *key, uint64_t seq, uint64_t expiry, const char *val,
		    uint8_t msg[45])
{
	uint8_t pre[600];
	size_t n = 0;
	crypto_hash_sha256_state h;

	n += put_varint(pre, strlen(key));
	memcpy(pre + n, key, strlen(key));
	n += strlen(key);
	kw_put_be64(pre + n, seq);
	kw_put_be64(pre + n + 8, expiry);
	n += 16;
	n += put_varint(pre + n, strlen(val));
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, pre, n);
	crypto_hash_sha256_update(&h, (const uint8_t *)val, strlen(val));
	memcpy(msg, "kwaai-record:", 13);
	crypto_hash_sha256_final(&h, msg + 13);
}

struct fields {
	const struct kw_pubkey *pub;   /* NULL: leave field 1 out */
	uint64_t seq, expiry;
	const char *val;
	const uint8_t *sig;            /* NULL: leave field 5 out */
	size_t siglen;
};

static size_t build(const struct fields *f, uint8_t *out)
{
	uint8_t pb[KW_KEY_PB_MAX];
	size_t n = 0;

	if (f->pub)
		n += put_bytes(out + n, 1, pb, pub_pb(f->pub, pb));
	n += put_varint(out + n, 2 << 3);
	n += put_varint(out + n, f->seq);
	n += put_varint(out + n, 3 << 3);
	n += put_varint(out + n, f->expiry);
	n += put_bytes(out + n, 4, (const uint8_t *)f->val, strlen(f->val));
	if (f->sig)
		n += put_bytes(out + n, 5, f->sig, f->siglen);
	return n;
}

/* Signs (key, seq, expiry, val) as the doc says, with k. */
static size_t doc_sign(const struct kw_privkey *k, const char *key, uint64_t seq,
		       uint64_t expiry, const char *val, uint8_t *sig)
{
	uint8_t msg[45];
	size_t siglen = KW_SIG_MAX;

	doc_msg(key, seq, expiry, val, msg);
	assert_int_equal(kw_key_sign(k, msg, sizeof(msg), sig, &siglen), 0);
	return siglen;
}

static long seal(const struct kw_privkey *k, const char *key, const char *val, uint64_t seq,
		 uint64_t expiry, uint8_t *out)
{
	return kw_kad_kwaai_seal(k, (const uint8_t *)key, strlen(key), (const uint8_t *)val,
				 strlen(val), seq, expiry, out, sizeof(env));
}

static int validate(const char *key, const uint8_t *v, size_t vlen, uint64_t now)
{
	err[0] = '\0';
	return kw_kad_validate((const uint8_t *)key, strlen(key), v, vlen, now, err,
			       sizeof(err));
}

static void test_kwaai_seal_matches_documented_wire_format(void **state)
{
	static uint8_t sig[KW_SIG_MAX];
	const char *key = "/kwaai/models/llama";
	struct fields f = { &ed.pub, 7, LATER, "shard 3 of 8", sig, 0 };
	long n = seal(&ed, key, "shard 3 of 8", 7, LATER, env);
	size_t m;

	/* Ed25519 signatures are deterministic: the doc's recipe gives the same bytes. */
	f.siglen = doc_sign(&ed, key, 7, LATER, "shard 3 of 8", sig);
	m = build(&f, env2);
	assert_true(n > 0);
	assert_int_equal((size_t)n, m);
	assert_memory_equal(env, env2, m);
	assert_int_equal(validate(key, env, (size_t)n, NOW), 0);
}

static void check_seal_open(const struct kw_privkey *k)
{
	const char *key = "/kwaai/x";
	long n = seal(k, key, "hello", 42, LATER, env);
	const uint8_t *v;
	size_t vlen;
	uint64_t seq;

	assert_true(n > 0);
	assert_int_equal(validate(key, env, (size_t)n, NOW), 0);
	assert_int_equal(kw_kad_kwaai_open(env, (size_t)n, &v, &vlen, &seq), 0);
	assert_int_equal(vlen, 5);
	assert_memory_equal(v, "hello", 5);
	assert_int_equal(seq, 42);
}

static void test_kwaai_sealed_by_ed25519_opens(void **state)
{
	check_seal_open(&ed);
}

static void test_kwaai_sealed_by_secp256k1_opens(void **state)
{
	if (!kw_key_type_supported(KW_KEY_SECP256K1))
		skip();
	check_seal_open(&secp);
}

static void test_kwaai_sealed_by_rsa_opens(void **state)
{
	if (!kw_key_type_supported(KW_KEY_RSA))
		skip();
	check_seal_open(&rsa);
}

/* The original signature with one field changed in the envelope. */
static void check_tampered(struct fields *f, const char *what)
{
	size_t n = build(f, env2);

	assert_int_equal(validate("/kwaai/t", env2, n, NOW), -KW_ESIG);
	assert_non_null(strstr(err, "signature does not verify"));
	(void)what;
}

static void test_kwaai_tampered_value_seq_expiry_or_signature_is_esig(void **state)
{
	static uint8_t sig[KW_SIG_MAX];
	struct fields f = { &ed.pub, 5, LATER, "value", sig, 0 };
	size_t n;

	f.siglen = doc_sign(&ed, "/kwaai/t", 5, LATER, "value", sig);
	n = build(&f, env2);
	assert_int_equal(validate("/kwaai/t", env2, n, NOW), 0);

	f.val = "valuf";
	check_tampered(&f, "value");
	f.val = "value";
	f.seq = 6;
	check_tampered(&f, "seq");
	f.seq = 5;
	f.expiry = LATER + 1;
	check_tampered(&f, "expiry");
	f.expiry = LATER;
	sig[10] ^= 1;
	check_tampered(&f, "signature");
	sig[10] ^= 1;
	f.pub = &ed2.pub;   /* another publisher claiming the signature */
	check_tampered(&f, "publisher");
	f.pub = &ed.pub;
	/* The same envelope under another key. */
	assert_int_equal(validate("/kwaai/u", env2, build(&f, env2), NOW), -KW_ESIG);
}

static void test_kwaai_unsigned_is_esig(void **state)
{
	static const uint8_t empty[1];
	struct fields f = { &ed.pub, 1, LATER, "v", NULL, 0 };
	size_t n = build(&f, env2);

	assert_int_equal(validate("/kwaai/t", env2, n, NOW), -KW_ESIG);
	assert_non_null(strstr(err, "unsigned"));
	f.sig = empty;
	n = build(&f, env2);
	assert_int_equal(validate("/kwaai/t", env2, n, NOW), -KW_ESIG);
	f.pub = NULL;
	f.sig = env;
	f.siglen = 64;
	n = build(&f, env2);
	assert_int_equal(validate("/kwaai/t", env2, n, NOW), -KW_ESIG);
	assert_non_null(strstr(err, "publisher"));
}

static void test_kwaai_expired_is_etimedout(void **state)
{
	long n = seal(&ed, "/kwaai/t", "v", 1, NOW, env);

	assert_true(n > 0);
	assert_int_equal(validate("/kwaai/t", env, (size_t)n, NOW - 1), 0);
	assert_int_equal(validate("/kwaai/t", env, (size_t)n, NOW), -KW_ETIMEDOUT);
	assert_non_null(strstr(err, "expired"));
	assert_int_equal(validate("/kwaai/t", env, (size_t)n, NOW + 1000), -KW_ETIMEDOUT);
}

static void test_kwaai_owner_bound_key_needs_the_owner(void **state)
{
	char key[200], cid[200];
	struct kw_peer_id id;
	long n;

	assert_int_equal(kw_peer_id_from_pubkey(&ed.pub, &id), 0);
	assert_int_equal(kw_peer_id_to_text(&id, key + 7, sizeof(key) - 7), 0);
	memcpy(key, "/kwaai/", 7);
	strcat(key, "/status");
	/* Signed by the owner: fine. */
	n = seal(&ed, key, "up", 1, LATER, env);
	assert_true(n > 0);
	assert_int_equal(validate(key, env, (size_t)n, NOW), 0);
	/* Another key cannot seal it... */
	assert_int_equal(seal(&ed2, key, "up", 1, LATER, env2), -KW_EPERM);
	/* ...and an envelope it signed anyway is refused, naming both peers. */
	{
		static uint8_t sig[KW_SIG_MAX];
		struct fields f = { &ed2.pub, 1, LATER, "up", sig, 0 };

		f.siglen = doc_sign(&ed2, key, 1, LATER, "up", sig);
		n = (long)build(&f, env2);
		assert_int_equal(validate(key, env2, (size_t)n, NOW), -KW_ESIG);
		assert_non_null(strstr(err, "belongs to peer"));
	}
	/* The CIDv1 text of the peer ID binds as well, and so does a key ending there. */
	assert_int_equal(kw_peer_id_to_cid_text(&id, cid, sizeof(cid)), 0);
	snprintf(key, sizeof(key), "/kwaai/%s", cid);
	assert_int_equal(seal(&ed2, key, "up", 1, LATER, env2), -KW_EPERM);
	n = seal(&ed, key, "up", 1, LATER, env);
	assert_int_equal(validate(key, env, (size_t)n, NOW), 0);
	/* A segment that is no peer ID does not bind. */
	n = seal(&ed2, "/kwaai/models/x", "up", 1, LATER, env2);
	assert_int_equal(validate("/kwaai/models/x", env2, (size_t)n, NOW), 0);
}

static void test_kwaai_truncated_envelope_never_validates(void **state)
{
	long n = seal(&ed, "/kwaai/t", "some value", 9, LATER, env);
	size_t i;

	assert_true(n > 0);
	for (i = 0; i < (size_t)n; i++) {
		int ret = validate("/kwaai/t", env, i, NOW);

		assert_true(ret == -KW_EBADMSG || ret == -KW_ESIG || ret == -KW_ETIMEDOUT);
		assert_true(err[0] != '\0');
	}
}

static void test_kwaai_unknown_repeated_or_mistyped_field_is_ebadmsg(void **state)
{
	long n = seal(&ed, "/kwaai/t", "v", 1, LATER, env);

	/* Unknown field 6 appended (bytes the signature would not cover). */
	memcpy(env2, env, (size_t)n);
	env2[n] = 6 << 3;
	env2[n + 1] = 1;
	assert_int_equal(validate("/kwaai/t", env2, (size_t)n + 2, NOW), -KW_EBADMSG);
	assert_non_null(strstr(err, "unknown field 6"));
	/* seq (field 2) repeated. */
	env2[n] = 2 << 3;
	assert_int_equal(validate("/kwaai/t", env2, (size_t)n + 2, NOW), -KW_EBADMSG);
	assert_non_null(strstr(err, "field 2 repeated"));
	/* value (field 4) as a varint. */
	memcpy(env2, "\x20\x01", 2);
	assert_int_equal(validate("/kwaai/t", env2, 2, NOW), -KW_EBADMSG);
	assert_non_null(strstr(err, "wire type"));
	/* A length running past the end. */
	memcpy(env2, "\x22\x05vv", 4);
	assert_int_equal(validate("/kwaai/t", env2, 4, NOW), -KW_EBADMSG);
	assert_non_null(strstr(err, "past the end"));
	/* A publisher that is not a key. */
	memcpy(env2, "\x0a\x02zz\x18\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x2a\x01s", 17);
	assert_int_equal(validate("/kwaai/t", env2, 17, NOW), -KW_EBADMSG);
	assert_non_null(strstr(err, "publisher"));
}

static void test_oversized_key_or_value_is_elimit(void **state)
{
	static uint8_t big[KW_KAD_VALUE_MAX + 1];
	static uint8_t key[KW_KAD_KEY_MAX + 1];

	memcpy(key, "/kwaai/", 7);
	memset(key + 7, 'a', sizeof(key) - 7);
	assert_int_equal(kw_kad_validate(key, sizeof(key), big, 10, NOW, err, sizeof(err)),
			 -KW_ELIMIT);
	assert_int_equal(kw_kad_validate(key, 20, big, sizeof(big), NOW, err, sizeof(err)),
			 -KW_ELIMIT);
	assert_non_null(strstr(err, "value"));
}

static void test_select_picks_highest_seq_then_larger_envelope(void **state)
{
	static uint8_t e[4][2000];
	const uint8_t *vals[4];
	size_t lens[4];
	const char *key = "/kwaai/s";
	long n;
	int i;

	for (i = 0; i < 3; i++) {
		n = seal(&ed, key, "v", (uint64_t)(i == 1 ? 9 : i), LATER, e[i]);
		assert_true(n > 0);
		vals[i] = e[i];
		lens[i] = (size_t)n;
	}
	assert_int_equal(kw_kad_select((const uint8_t *)key, strlen(key), vals, lens, 3), 1);
	/* Same seq, other value: the larger envelope wins whichever order they come in. */
	n = seal(&ed, key, "w", 9, LATER, e[3]);
	vals[3] = e[3];
	lens[3] = (size_t)n;
	i = memcmp(e[1], e[3], lens[1] < lens[3] ? lens[1] : lens[3]) > 0 ? 1 : 3;
	assert_int_equal(kw_kad_select((const uint8_t *)key, strlen(key), vals, lens, 4), i);
	assert_int_equal(kw_kad_select((const uint8_t *)key, strlen(key), vals + 1, lens + 1, 3),
			 i - 1);
	/* Expired values still compare (select has no clock); invalid ones make it fail. */
	e[0][lens[0] - 1] ^= 1;
	assert_int_equal(kw_kad_select((const uint8_t *)key, strlen(key), vals, lens, 2),
			 -KW_EINVAL);
	assert_int_equal(kw_kad_select((const uint8_t *)key, strlen(key), vals, lens, 0),
			 -KW_EINVAL);
}

static void test_select_pk_takes_the_first(void **state)
{
	uint8_t key[80], val[KW_KEY_PB_MAX];
	size_t klen = pk_key(&ed.pub, key), vlen = pub_pb(&ed.pub, val);
	const uint8_t *vals[2] = { val, val };
	size_t lens[2] = { vlen, vlen };

	assert_int_equal(kw_kad_select(key, klen, vals, lens, 2), 0);
}

static void test_seal_refuses_short_buffer_and_other_namespaces(void **state)
{
	long n = seal(&ed, "/kwaai/t", "v", 1, LATER, env);

	assert_true(n > 0);
	assert_int_equal(kw_kad_kwaai_seal(&ed, (const uint8_t *)"/kwaai/t", 8,
					   (const uint8_t *)"v", 1, 1, LATER, env2, (size_t)n - 1),
			 -KW_ENOSPC);
	assert_int_equal(kw_kad_kwaai_seal(&ed, (const uint8_t *)"/kwaai/t", 8,
					   (const uint8_t *)"v", 1, 1, LATER, env2, (size_t)n), n);
	assert_int_equal(kw_kad_kwaai_seal(&ed, (const uint8_t *)"/pk/t", 5,
					   (const uint8_t *)"v", 1, 1, LATER, env2, sizeof(env2)),
			 -KW_EINVAL);
}

static void test_open_refuses_garbage(void **state)
{
	const uint8_t *v;
	size_t vlen;

	assert_int_equal(kw_kad_kwaai_open((const uint8_t *)"\x22\x09", 2, &v, &vlen, NULL),
			 -KW_EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pk_ed25519_key_validates, setup),
		cmocka_unit_test_setup(test_pk_secp256k1_key_validates, setup),
		cmocka_unit_test_setup(test_pk_rsa_key_validates_against_sha256_peer_id, setup),
		cmocka_unit_test_setup(test_pk_value_of_another_key_is_esig, setup),
		cmocka_unit_test_setup(test_pk_malformed_value_is_ebadmsg, setup),
		cmocka_unit_test_setup(test_pk_key_that_is_no_multihash_is_ebadmsg, setup),
		cmocka_unit_test_setup(test_other_namespace_is_enoproto_and_named, setup),
		cmocka_unit_test_setup(test_kwaai_seal_matches_documented_wire_format, setup),
		cmocka_unit_test_setup(test_kwaai_sealed_by_ed25519_opens, setup),
		cmocka_unit_test_setup(test_kwaai_sealed_by_secp256k1_opens, setup),
		cmocka_unit_test_setup(test_kwaai_sealed_by_rsa_opens, setup),
		cmocka_unit_test_setup(test_kwaai_tampered_value_seq_expiry_or_signature_is_esig,
				       setup),
		cmocka_unit_test_setup(test_kwaai_unsigned_is_esig, setup),
		cmocka_unit_test_setup(test_kwaai_expired_is_etimedout, setup),
		cmocka_unit_test_setup(test_kwaai_owner_bound_key_needs_the_owner, setup),
		cmocka_unit_test_setup(test_kwaai_truncated_envelope_never_validates, setup),
		cmocka_unit_test_setup(test_kwaai_unknown_repeated_or_mistyped_field_is_ebadmsg,
				       setup),
		cmocka_unit_test_setup(test_oversized_key_or_value_is_elimit, setup),
		cmocka_unit_test_setup(test_select_picks_highest_seq_then_larger_envelope, setup),
		cmocka_unit_test_setup(test_select_pk_takes_the_first, setup),
		cmocka_unit_test_setup(test_seal_refuses_short_buffer_and_other_namespaces, setup),
		cmocka_unit_test_setup(test_open_refuses_garbage, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
