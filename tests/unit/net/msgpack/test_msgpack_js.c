/*
 * The MessagePack writer (net/msgpack/writer.c) against a second implementation: the bytes
 * the npm package @msgpack/msgpack 3.1.3 writes for the same values, generated once into
 * js_vectors.h by gen_js_vectors.mjs (length, first bytes and an FNV-1a hash of the whole
 * encoding, so the 64 KiB cases need no 64 KiB literals). Every header-size boundary of
 * int, float64, str, bin, array, map and ext is covered; the reader must read each back.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>
#include <kw/net/msgpack.h>

enum { JS_UINT, JS_INT, JS_F64, JS_STR, JS_BIN, JS_ARRAY, JS_MAP, JS_EXT, JS_NIL, JS_TRUE, JS_FALSE };

struct js_vector {
	int kind;
	uint64_t arg;
	size_t len;
	const char *head;   /* first min(len, 12) bytes */
	uint64_t fnv;
};

#include "js_vectors.h"

static uint8_t buf[1 << 19];
static uint8_t zeros[65536];
static char xs[65536];

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	while (n--) {
		h ^= *p++;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static long write_case(const struct js_vector *v)
{
	struct kw_mp_writer w;
	double d;
	size_t mark;
	char key[16];

	kw_mp_writer_init(&w, buf, sizeof(buf));
	switch (v->kind) {
	case JS_UINT: kw_mp_put_uint(&w, v->arg); break;
	case JS_INT: kw_mp_put_int(&w, (int64_t)v->arg); break;
	case JS_F64: memcpy(&d, &v->arg, sizeof(d)); kw_mp_put_float64(&w, d); break;
	case JS_STR: kw_mp_put_str(&w, xs, (size_t)v->arg); break;
	case JS_BIN: kw_mp_put_bin(&w, zeros, (size_t)v->arg); break;
	case JS_ARRAY:
		kw_mp_put_array(&w, (uint32_t)v->arg);
		for (uint64_t i = 0; i < v->arg; i++)
			kw_mp_put_uint(&w, 0);
		break;
	case JS_MAP:
		kw_mp_put_map(&w, (uint32_t)v->arg);
		for (uint64_t i = 0; i < v->arg; i++) {
			snprintf(key, sizeof(key), "%llu", (unsigned long long)i);
			kw_mp_put_cstr(&w, key);
			kw_mp_put_nil(&w);
		}
		break;
	case JS_EXT:  /* built in place: the payload is n zero bytes = n msgpack zeros */
		kw_mp_put_ext_begin(&w, 0x40, &mark);
		for (uint64_t i = 0; i < v->arg; i++)
			kw_mp_put_uint(&w, 0);
		kw_mp_put_ext_end(&w, mark);
		break;
	case JS_NIL: kw_mp_put_nil(&w); break;
	case JS_TRUE: kw_mp_put_bool(&w, true); break;
	case JS_FALSE: kw_mp_put_bool(&w, false); break;
	}
	return kw_mp_writer_finish(&w);
}

static void test_mp_writer_matches_msgpack_javascript_bytes(void **state)
{
	size_t n = sizeof(js_vectors) / sizeof(js_vectors[0]);

	memset(xs, 'x', sizeof(xs));
	assert_true(n >= 60);
	for (size_t i = 0; i < n; i++) {
		const struct js_vector *v = &js_vectors[i];
		long got = write_case(v);

		if (got != (long)v->len || memcmp(buf, v->head, v->len < 12 ? v->len : 12) != 0 ||
		    fnv1a(buf, (size_t)got) != v->fnv)
			fail_msg("case %zu (kind %d, arg %llu): wrote %ld bytes, want %zu", i, v->kind,
				 (unsigned long long)v->arg, got, v->len);
	}
}

static void test_mp_opaque_ext_matches_msgpack_javascript_bytes(void **state)
{
	for (size_t i = 0; i < sizeof(js_vectors) / sizeof(js_vectors[0]); i++) {
		const struct js_vector *v = &js_vectors[i];
		struct kw_mp_writer w;

		if (v->kind != JS_EXT)
			continue;
		kw_mp_writer_init(&w, buf, sizeof(buf));
		assert_int_equal(kw_mp_put_ext(&w, 0x40, zeros, (size_t)v->arg), 0);
		assert_int_equal(kw_mp_writer_finish(&w), (long)v->len);
		assert_true(fnv1a(buf, v->len) == v->fnv);
	}
}

static void test_mp_reader_reads_every_javascript_encoding_whole(void **state)
{
	for (size_t i = 0; i < sizeof(js_vectors) / sizeof(js_vectors[0]); i++) {
		const struct js_vector *v = &js_vectors[i];
		long got = write_case(v);   /* equal to the JS bytes (test above) */
		int err = kw_mp_validate(buf, (size_t)got, 0, NULL);

		/* Lengths and counts above this configuration's bounds are refused, not read. */
		if ((v->kind == JS_STR || v->kind == JS_BIN || v->kind == JS_EXT) &&
		    v->arg > CONFIG_KW_NET_MSGPACK_MAX_BYTES)
			assert_int_equal(err, -KW_ELIMIT);
		else if ((v->kind == JS_ARRAY || v->kind == JS_MAP) &&
			 v->arg > CONFIG_KW_NET_MSGPACK_MAX_COUNT)
			assert_int_equal(err, -KW_ELIMIT);
		else
			assert_int_equal(err, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mp_writer_matches_msgpack_javascript_bytes),
		cmocka_unit_test(test_mp_opaque_ext_matches_msgpack_javascript_bytes),
		cmocka_unit_test(test_mp_reader_reads_every_javascript_encoding_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
