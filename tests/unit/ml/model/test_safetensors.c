/*
 * ml/model/safetensors.c: the header parser on images built in memory (one behaviour per
 * test: what is accepted, and each refusal with the code and a reason naming the tensor),
 * and kw_st_open on a real file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/model.h>

static uint8_t img[1 << 16];
static uint8_t arena_mem[1 << 16];
static struct kw_arena arena;
static struct kw_st_file f;
static char err[256];

/* header JSON + data_len bytes of data (byte i = i & 0xff) into img; returns the length */
static size_t mk(const char *json, size_t data_len)
{
	size_t hl = strlen(json);

	for (int i = 0; i < 8; i++)
		img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
	memcpy(img + 8, json, hl);
	for (size_t i = 0; i < data_len; i++)
		img[8 + hl + i] = (uint8_t)i;
	return 8 + hl + data_len;
}

static int parse(const char *json, size_t data_len)
{
	size_t len = mk(json, data_len);

	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	err[0] = '\0';
	return kw_st_parse(&f, img, len, &arena, err, sizeof(err));
}

static void test_st_parses_three_dtypes_and_finds_them(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
			       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			       "\"c\":{\"dtype\":\"BF16\",\"shape\":[3,1],\"data_offsets\":[12,18]}}",
			       18), 0);
	assert_int_equal(f.n, 3);
	const struct kw_st_tensor *c = kw_st_find(&f, "c");
	assert_non_null(c);
	assert_int_equal(c->dtype, KW_ST_BF16);
	assert_int_equal(c->ndim, 2);
	assert_int_equal(c->shape[0], 3);
	assert_int_equal(c->nelem, 3);
	assert_int_equal(c->begin, 12);
	assert_ptr_equal(c->data, f.data + 12);
	assert_int_equal(kw_st_find(&f, "b")->dtype, KW_ST_F16);
	assert_int_equal(kw_st_find(&f, "a")->dtype, KW_ST_F32);
	assert_null(kw_st_find(&f, "d"));
}

static void test_st_reads_bf16_f16_f32_as_f32(void **state)
{
	/* a: F32 1.5, -2; b: F16 0.5, 3; c: BF16 -1, 2 */
	const char *j = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			"\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
			"\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}";
	size_t len = mk(j, 16), hl = strlen(j);
	float a[2] = { 1.5f, -2.0f }, out[2];
	uint16_t b[2] = { kw_f32_to_fp16(0.5f), kw_f32_to_fp16(3.0f) };
	uint16_t c[2] = { (uint16_t)(kw_f32_bits(-1.0f) >> 16), (uint16_t)(kw_f32_bits(2.0f) >> 16) };

	(void)state;
	memcpy(img + 8 + hl, a, 8);
	memcpy(img + 8 + hl + 8, b, 4);
	memcpy(img + 8 + hl + 12, c, 4);
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_st_parse(&f, img, len, &arena, err, sizeof(err)), 0);
	assert_int_equal(kw_st_read_f32(kw_st_find(&f, "a"), 0, 2, out), 0);
	assert_true(out[0] == 1.5f && out[1] == -2.0f);
	assert_int_equal(kw_st_read_f32(kw_st_find(&f, "b"), 0, 2, out), 0);
	assert_true(out[0] == 0.5f && out[1] == 3.0f);
	assert_int_equal(kw_st_read_f32(kw_st_find(&f, "c"), 1, 1, out), 0);
	assert_true(out[0] == 2.0f);
	assert_int_equal(kw_st_read_f32(kw_st_find(&f, "c"), 1, 2, out), -KW_ERANGE);
}

static void test_st_ignores_metadata_and_whitespace(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"__metadata__\" : {\"format\":\"pt\",\"x\":\"\\u00e9\"},\n"
			       "\"w\":{\"shape\":[],\"data_offsets\":[0,4],\"dtype\":\"F32\"}}   ",
			       4), 0);
	assert_int_equal(f.n, 1);
	assert_int_equal(kw_st_find(&f, "w")->nelem, 1);
}

static void test_st_refuses_non_string_metadata(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"__metadata__\":{\"n\":1}}", 0), -KW_EBADMSG);
	assert_non_null(strstr(err, "__metadata__"));
}

static void test_st_decodes_escaped_names(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\\\"b\\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],"
			       "\"data_offsets\":[0,4]}}", 4), 0);
	assert_non_null(kw_st_find(&f, "a\"b\xc3\xa9"));
}

static void test_st_accepts_zero_tensors(void **state)
{
	(void)state;
	assert_int_equal(parse("{}", 0), 0);
	assert_int_equal(f.n, 0);
}

static void test_st_refuses_short_file(void **state)
{
	(void)state;
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_st_parse(&f, img, 7, &arena, err, sizeof(err)), -KW_EBADMSG);
	assert_non_null(strstr(err, "shorter"));
}

static void test_st_refuses_header_length_beyond_file(void **state)
{
	size_t len = mk("{}", 0);

	(void)state;
	img[0] = 3;  /* header length 3 in a 10-byte file */
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_st_parse(&f, img, len - 1, &arena, err, sizeof(err)), -KW_ECORRUPT);
	assert_non_null(strstr(err, "beyond the file"));
}

static void test_st_refuses_header_over_limit(void **state)
{
	uint64_t hl = (uint64_t)CONFIG_KW_ML_MODEL_MAX_HEADER_KIB * 1024 + 1;

	(void)state;
	for (int i = 0; i < 8; i++)
		img[i] = (uint8_t)(hl >> (8 * i));
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_st_parse(&f, img, sizeof(img), &arena, err, sizeof(err)), -KW_ELIMIT);
}

static void test_st_refuses_unsupported_dtype_by_name(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"tok\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
			       8), -KW_ENOTSUP);
	assert_non_null(strstr(err, "'tok'"));
	assert_non_null(strstr(err, "I64 is not supported"));
}

static void test_st_refuses_unknown_dtype(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"t\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}",
			       1), -KW_ENOTSUP);
	assert_non_null(strstr(err, "unknown dtype 'Q4'"));
}

static void test_st_refuses_size_not_matching_shape(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}",
			       10), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'w'"));
	assert_non_null(strstr(err, "needs 12"));
}

static void test_st_refuses_end_beyond_data(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
			       8), -KW_ECORRUPT);
	assert_non_null(strstr(err, "beyond the data region"));
}

static void test_st_refuses_backwards_offsets(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
			       4), -KW_ECORRUPT);
	assert_non_null(strstr(err, "backwards"));
}

static void test_st_refuses_overlapping_ranges(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
			       12), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'b'"));
	assert_non_null(strstr(err, "overlaps"));
}

static void test_st_refuses_hole_between_ranges(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
			       12), -KW_ECORRUPT);
	assert_non_null(strstr(err, "hole"));
}

static void test_st_refuses_trailing_data(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
			       6), -KW_ECORRUPT);
	assert_non_null(strstr(err, "cover 4 bytes of a 6-byte"));
}

static void test_st_refuses_duplicate_names(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
			       8), -KW_EBADMSG);
	assert_non_null(strstr(err, "named twice"));
}

static void test_st_refuses_too_many_dims(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
			       "\"data_offsets\":[0,4]}}", 4), -KW_ELIMIT);
	assert_non_null(strstr(err, "dimensions"));
}

static void test_st_refuses_shape_element_overflow(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
			       "\"data_offsets\":[0,4]}}", 4), -KW_ECORRUPT);
}

static void test_st_refuses_name_over_limit(void **state)
{
	static char j[CONFIG_KW_ML_MODEL_MAX_NAME + 200];
	size_t n = CONFIG_KW_ML_MODEL_MAX_NAME + 1;

	(void)state;
	j[0] = '{';
	j[1] = '"';
	memset(j + 2, 'x', n);
	strcpy(j + 2 + n, "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
	assert_int_equal(parse(j, 4), -KW_ELIMIT);
	assert_non_null(strstr(err, "longer than"));
}

static void test_st_refuses_unknown_tensor_key(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
			       "\"x\":1}}", 4), -KW_EBADMSG);
	assert_non_null(strstr(err, "unknown key"));
}

static void test_st_refuses_missing_field(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), -KW_EBADMSG);
	assert_non_null(strstr(err, "missing shape"));
}

static void test_st_refuses_malformed_json(void **state)
{
	static const char *const bad[] = {
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",   /* truncated */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", /* trailing comma */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", /* negative */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", /* fraction */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", /* 3 offsets */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}x", /* garbage */
		"[]",
		"{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(bad[i], 4);

		assert_true(r == -KW_EBADMSG);
		assert_non_null(strstr(err, "safetensors"));
	}
}

static void test_st_refuses_when_arena_is_short(void **state)
{
	size_t len = mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);

	(void)state;
	kw_arena_init(&arena, arena_mem, 16);
	assert_int_equal(kw_st_parse(&f, img, len, &arena, err, sizeof(err)), -KW_ENOMEM);
}

static void test_st_open_maps_a_file(void **state)
{
	char path[] = "/tmp/kw_st_XXXXXX";
	size_t len = mk("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
	int fd = mkstemp(path);
	float v[2];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	assert_int_equal(kw_st_open(&f, path, &arena, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(f.mapped, 1);
	assert_int_equal(kw_st_read_f32(kw_st_find(&f, "w"), 0, 2, v), 0);
	assert_memory_equal(v, img + len - 8, 8);
	kw_st_close(&f);
	assert_int_equal(kw_st_open(&f, path, &arena, err, sizeof(err)), -KW_ENOENT);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_st_parses_three_dtypes_and_finds_them),
		cmocka_unit_test(test_st_reads_bf16_f16_f32_as_f32),
		cmocka_unit_test(test_st_ignores_metadata_and_whitespace),
		cmocka_unit_test(test_st_refuses_non_string_metadata),
		cmocka_unit_test(test_st_decodes_escaped_names),
		cmocka_unit_test(test_st_accepts_zero_tensors),
		cmocka_unit_test(test_st_refuses_short_file),
		cmocka_unit_test(test_st_refuses_header_length_beyond_file),
		cmocka_unit_test(test_st_refuses_header_over_limit),
		cmocka_unit_test(test_st_refuses_unsupported_dtype_by_name),
		cmocka_unit_test(test_st_refuses_unknown_dtype),
		cmocka_unit_test(test_st_refuses_size_not_matching_shape),
		cmocka_unit_test(test_st_refuses_end_beyond_data),
		cmocka_unit_test(test_st_refuses_backwards_offsets),
		cmocka_unit_test(test_st_refuses_overlapping_ranges),
		cmocka_unit_test(test_st_refuses_hole_between_ranges),
		cmocka_unit_test(test_st_refuses_trailing_data),
		cmocka_unit_test(test_st_refuses_duplicate_names),
		cmocka_unit_test(test_st_refuses_too_many_dims),
		cmocka_unit_test(test_st_refuses_shape_element_overflow),
		cmocka_unit_test(test_st_refuses_name_over_limit),
		cmocka_unit_test(test_st_refuses_unknown_tensor_key),
		cmocka_unit_test(test_st_refuses_missing_field),
		cmocka_unit_test(test_st_refuses_malformed_json),
		cmocka_unit_test(test_st_refuses_when_arena_is_short),
		cmocka_unit_test(test_st_open_maps_a_file),
	};

	return cmocka_run_group_tests_name("ml/model/safetensors", tests, NULL, NULL);
}
