/*
 * Hivemind Tensor.buffer codecs: golden byte vectors (tests/vectors/codec/, produced by an
 * independent Python implementation of the layouts in doc/ml-codec.md), round trips with error bounds,
 * bounded decoders, and every SIMD blockwise variant against the C reference.
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>

#include "vectors/codec/codec_vectors.h"

#define BIG (3 * KW_BW_BLOCK + 517)

static struct kw_codec codec_ref;
static float xin[BIG], xout[BIG], xout2[BIG];
static uint8_t enc[BIG * 5 + 4096], enc2[BIG * 5 + 4096];
static float scratch[400000];

static uint32_t rng_state = 777;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}
static float frand(float scale) { return ((float)(rnd() % 2000001) / 1000000.0f - 1.0f) * scale; }

static int setup(void **state)
{
	return kw_codec_init(&codec_ref, KW_SIMD_REF);
}

static void load(float *dst, const uint8_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(&dst[i], bytes + 4 * i, 4);
}

static void check_golden(enum kw_compression comp, enum kw_codec_dtype dt, const uint8_t *in,
			 size_t in_len, const uint8_t *want, size_t want_len, size_t last_dim)
{
	size_t n = in_len / 4, len = 0;

	load(xin, in, n);
	assert_int_equal(kw_codec_encode(&codec_ref, comp, dt, xin, n, last_dim, scratch,
					 sizeof(scratch), enc, sizeof(enc), &len), 0);
	assert_int_equal(len, want_len);
	for (size_t i = 0; i < len; i++)
		if (enc[i] != want[i])
			fail_msg("codec %d byte %zu: got %02x want %02x", comp, i, enc[i], want[i]);
	assert_int_equal(kw_codec_decode(&codec_ref, comp, dt, want, want_len, n, last_dim, xout), 0);
}

#define GOLDEN(comp, dt, name, ld) \
	check_golden(comp, dt, vec_##name##_in, sizeof(vec_##name##_in), vec_##name##_out, \
		     sizeof(vec_##name##_out), ld)

static void test_codec_none_matches_golden_bytes(void **state)
{
	GOLDEN(KW_COMP_NONE, KW_CODEC_F32, none_f32, 1);
	assert_true(xout[0] == 1.0f);
	assert_true(xout[1] == -2.0f);
	assert_true(xout[2] == 0.5f);
	GOLDEN(KW_COMP_NONE, KW_CODEC_BF16, none_bf16, 1);
	assert_true(xout[0] == 1.0f);
	assert_true(xout[1] == -2.0f);
	assert_true(xout[2] == 0.5f);
}

static void test_codec_none_bfloat16_accepts_legacy_float32_payload(void **state)
{
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_NONE, KW_CODEC_BF16, vec_none_f32_out,
					 sizeof(vec_none_f32_out), 3, 1, xout), 0);
	assert_true(xout[0] == 1.0f);
	assert_true(xout[1] == -2.0f);
	assert_true(xout[2] == 0.5f);
}

static void test_codec_float16_matches_golden_bytes_and_clamps(void **state)
{
	GOLDEN(KW_COMP_FLOAT16, KW_CODEC_F32, float16, 1);
	assert_true(xout[3] == 65504.0f);  /* clamped, not Inf */
	assert_true(xout[4] == -65504.0f);
	assert_true(xout[0] == 1.0f);
	assert_true(xout[2] == 0.5f);
}

static void test_codec_meanstd_matches_hivemind_bytes(void **state)
{
	static const uint8_t spec[] = {  /* hivemind's bytes for [[1,3],[-1,-1]], doc/ml-codec.md */
		0x00, 0xbc, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40,
		0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x34 };

	GOLDEN(KW_COMP_MEANSTD_16BIT, KW_CODEC_F32, meanstd, 2);
	assert_memory_equal(vec_meanstd_out, spec, sizeof(spec));
	assert_true(xout[0] == 1.0f);
	assert_true(xout[1] == 3.0f);
	assert_true(xout[2] == -1.0f);
	assert_true(xout[3] == -1.0f);
}

static void test_codec_uniform_matches_golden_bytes(void **state)
{
	GOLDEN(KW_COMP_UNIFORM_8BIT, KW_CODEC_F32, uniform, 1);
}

static void test_codec_quantile_matches_golden_bytes(void **state)
{
	GOLDEN(KW_COMP_QUANTILE_8BIT, KW_CODEC_F32, quantile, 1);
}

static void test_codec_blockwise_matches_golden_bytes(void **state)
{
	static const uint8_t hdr[16] = { 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 };

	GOLDEN(KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, blockwise, 1);
	assert_memory_equal(vec_blockwise_out, hdr, 16);  /* hivemind's header for numel 5000 */
	assert_true(xout[17] == -25.0f);  /* the block maximum decodes exactly (code[0] = -1) */
}

static void test_codec_default_code_is_the_bitsandbytes_map(void **state)
{
	const float *c = kw_bw_default_code;

	assert_true(c[0] == -1.0f);
	assert_true(c[127] == 0.0f);
	assert_true(c[255] == 1.0f);
	for (int i = 1; i < 256; i++)
		assert_true(c[i] > c[i - 1]);
	/* create_dynamic_map(signed=True) in float32, bitsandbytes 0.41.1 (doc/ml-codec.md) */
	assert_true(c[1] == -0.9789062738418579f);
	assert_true(c[126] == -5.500000384017767e-07f);
	assert_true(c[128] == 5.500000384017767e-07f);
	assert_true(c[254] == 0.992968738079071f);
	assert_int_equal(codec_ref.bw.zero_index, 127);
}

/* The LUT walk picks what a plain binary search + nearest check picks, for any y. */
static void test_codec_blockwise_lut_equals_binary_search(void **state)
{
	const struct kw_bw_table *t = &codec_ref.bw;

	for (int it = 0; it < 2000000; it++) {
		float y = it < 1000000 ? frand(1.0f) : frand(1.0f) * ldexpf(1.0f, -(int)(rnd() % 30));
		int lo = 0;

		if (it < 512)
			y = t->code[it / 2] + (it & 1 ? 0.0f : -0.0f);
		else if (it < 1024)
			y = (t->code[(it - 512) / 2] + t->code[KW_MIN((it - 512) / 2 + 1, 255)]) / 2;
		for (int i = 0; i < 256; i++)
			if (t->code[i] <= y)
				lo = i;
		if (lo < 255 && fabsf(y - t->code[lo + 1]) < fabsf(y - t->code[lo]))
			lo++;
		if (kw_bw_quant_one(t, y) != lo)
			fail_msg("y=%a: lut %d, search %d", (double)y, kw_bw_quant_one(t, y), lo);
	}
}

/* A code with values packed closer than a bucket cannot use the fast table: the literal
 * search takes over in every variant, and an unsorted code is refused. */
static void test_codec_blockwise_dense_code_falls_back_to_search(void **state)
{
	static struct kw_bw_table t;
	static struct kw_codec cv;
	static float code[256], am_ref[4], am_v[4];
	static uint8_t q_ref[9000], q_v[9000];

	assert_int_equal(codec_ref.bw.fast_ok, 1);  /* default code: fast path */
	for (int i = 0; i < 256; i++)
		code[i] = 0.5f + (float)i * 1e-6f;
	code[0] = -1.0f;
	code[255] = 1.0f;
	assert_int_equal(kw_bw_table_init(&t, code), 0);
	assert_int_equal(t.fast_ok, 0);
	for (int i = 0; i < 9000; i++)  /* absmax 1 per block so y = x spans the dense codes */
		xin[i] = i % KW_BW_BLOCK == 0 ? 1.0f : 0.5f + frand(3e-4f);
	assert_int_equal(kw_codec_init(&cv, KW_SIMD_AUTO), 0);
	kw_bw_quant_ref(&t, xin, 9000, am_ref, q_ref);
	cv.k->bw_quant(&t, xin, 9000, am_v, q_v);
	assert_memory_equal(q_ref, q_v, sizeof(q_v));
	assert_in_range(q_ref[1], 1, 254);
	for (int i = 0; i < 9000; i++)
		assert_int_equal(q_ref[i], kw_bw_quant_search(code, xin[i] / am_ref[i / KW_BW_BLOCK]));
	code[5] = 0.0f;
	assert_int_equal(kw_bw_table_init(&t, code), -KW_EINVAL);
	code[5] = NAN;
	assert_int_equal(kw_bw_table_init(&t, code), -KW_EINVAL);
}

static void round_trip(enum kw_compression comp, size_t n, size_t ld, float tol_abs, float tol_rel)
{
	size_t len;
	/* outliers test the per-block / per-row scaling; the codebook codecs get smooth data
	 * (a gap in the distribution makes a bucket straddle it, by design) */
	int outliers = comp != KW_COMP_UNIFORM_8BIT && comp != KW_COMP_QUANTILE_8BIT;

	for (size_t i = 0; i < n; i++)
		xin[i] = frand(4.0f) + (outliers && i % 7 == 0 ? 10.0f : 0.0f);
	assert_int_equal(kw_codec_encode(&codec_ref, comp, KW_CODEC_F32, xin, n, ld, scratch,
					 sizeof(scratch), enc, sizeof(enc), &len), 0);
	assert_true(len <= kw_codec_max_size(comp, n, ld));
	assert_int_equal(kw_codec_decode(&codec_ref, comp, KW_CODEC_F32, enc, len, n, ld, xout), 0);
	for (size_t i = 0; i < n; i++) {
		float e = fabsf(xout[i] - xin[i]);
		if (e > tol_abs + tol_rel * fabsf(xin[i]))
			fail_msg("codec %d elem %zu: %g vs %g", comp, i, (double)xout[i], (double)xin[i]);
	}
}

static void test_codec_round_trips_within_stated_bounds(void **state)
{
	/* FLOAT16: half an ulp of fp16, relative 2^-11 (values here are normal halves) */
	round_trip(KW_COMP_FLOAT16, 1000, 1, 0.0f, 1.0f / 2048);
	/* MEANSTD: fp16 error on (x-mean)/std, times std (std <= 14 here) */
	round_trip(KW_COMP_MEANSTD_16BIT, 1000, 50, 14.0f * 2.0f / 2048, 1e-6f);
	/* BLOCKWISE: half the largest code gap (0.9/64) times absmax (<= 14) */
	round_trip(KW_COMP_BLOCKWISE_8BIT, BIG, 1, 14.0f * 0.00704f, 1e-6f);
	/* UNIFORM on U(-4,4) (sigma 2.31): buckets 6 sigma / 256 = 0.054 wide, range +-6.9
	 * covers everything, so the error is below one bucket */
	round_trip(KW_COMP_UNIFORM_8BIT, 5000, 1, 0.055f, 0.0f);
	/* QUANTILE on U(-4,4): 256 equal-mass buckets are 8/256 = 0.031 wide (sampling noise
	 * of the quantiles allowed for) */
	round_trip(KW_COMP_QUANTILE_8BIT, 5000, 1, 0.05f, 0.0f);
	round_trip(KW_COMP_NONE, 100, 1, 0.0f, 0.0f);
}

static void test_codec_quantile_handles_multiple_chunks(void **state)
{
	size_t n = 250001, len;
	static float big[250001];
	static uint8_t out[250001 + 2048];
	static float dec[250001];

	assert_true(kw_codec_scratch_size(KW_COMP_QUANTILE_8BIT, n) <= sizeof(scratch));
	for (size_t i = 0; i < n; i++)
		big[i] = frand(1.0f);
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_QUANTILE_8BIT, KW_CODEC_F32, big, n, 1,
					 scratch, 16, out, sizeof(out), &len), -KW_ENOSPC);
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_QUANTILE_8BIT, KW_CODEC_F32, big, n, 1,
					 scratch, sizeof(scratch), out, sizeof(out), &len), 0);
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_QUANTILE_8BIT, KW_CODEC_F32, out, len,
					 n, 1, dec), 0);
	for (size_t i = 0; i < n; i++)
		assert_true(fabsf(dec[i] - big[i]) < 0.02f);  /* 2/256 wide buckets */
}

static void test_codec_blockwise_zero_block_uses_zero_code(void **state)
{
	size_t len;

	memset(xin, 0, sizeof(float) * 5000);
	xin[4500] = 3.0f;
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, xin, 5000, 1,
					 NULL, 0, enc, sizeof(enc), &len), 0);
	assert_int_equal(kw_get_le32(enc + 16), 0);  /* absmax of block 0 */
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(enc[16 + 8 + 1024 + i], 127);
	assert_int_equal(enc[16 + 8 + 1024 + 4500], 255);
}

/*
 * A tensor large enough for the decoders' cache-bypassing path (KW_BW_STREAM_MIN elements per
 * call), decoded by every variant through kw_codec_decode and by the kernel directly into a
 * misaligned buffer, equals the reference bit for bit; absmax values differ per block so a
 * block taking the wrong scale shows.
 */
static void test_codec_blockwise_large_decode_equals_reference(void **state)
{
	const size_t n = 2 * KW_BW_STREAM_MIN + 3 * KW_BW_BLOCK + 77;
	size_t cap = kw_codec_max_size(KW_COMP_BLOCKWISE_8BIT, n, 1), len, i;
	float *x = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
	float *got = malloc((n + 1) * sizeof(float)), *am = malloc((n / KW_BW_BLOCK + 1) * sizeof(float));
	uint8_t *buf = malloc(cap), *q = malloc(n);
	static struct kw_codec cv;

	assert_non_null(x); assert_non_null(ref); assert_non_null(got);
	assert_non_null(am); assert_non_null(buf); assert_non_null(q);
	for (i = 0; i < n; i++)
		x[i] = frand(1.0f) * (float)(1 + (i / KW_BW_BLOCK) % 13);
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, x, n, 1,
					 NULL, 0, buf, cap, &len), 0);
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, buf, len,
					 n, 1, ref), 0);
	kw_bw_quant_ref(&codec_ref.bw, x, n, am, q);
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		if (!kw_simd_available((enum kw_simd)v))
			continue;
		assert_int_equal(kw_codec_init(&cv, (enum kw_simd)v), 0);
		memset(got, 0xcd, (n + 1) * sizeof(float));
		assert_int_equal(kw_codec_decode(&cv, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, buf, len,
						 n, 1, got), 0);
		assert_memory_equal(got, ref, n * sizeof(float));
		memset(got, 0xcd, (n + 1) * sizeof(float));
		cv.k->bw_dequant(cv.bw.code, q, am, n, got + 1);  /* one call, 4-byte misaligned */
		assert_memory_equal(got + 1, ref, n * sizeof(float));
		assert_int_equal(kw_get_le32((const uint8_t *)got), 0xcdcdcdcdu);  /* nothing before */
	}
	free(x); free(ref); free(got); free(am); free(buf); free(q);
}

static void test_codec_decoders_reject_truncated_and_oversized(void **state)
{
	static const struct { enum kw_compression c; size_t ld; } cases[] = {
		{ KW_COMP_NONE, 1 }, { KW_COMP_FLOAT16, 1 }, { KW_COMP_MEANSTD_16BIT, 10 },
		{ KW_COMP_UNIFORM_8BIT, 1 }, { KW_COMP_QUANTILE_8BIT, 1 }, { KW_COMP_BLOCKWISE_8BIT, 1 },
	};
	size_t n = 5000, len;

	for (size_t i = 0; i < n; i++)
		xin[i] = frand(1.0f);
	for (size_t k = 0; k < KW_ARRAY_SIZE(cases); k++) {
		enum kw_compression c = cases[k].c;

		assert_int_equal(kw_codec_encode(&codec_ref, c, KW_CODEC_F32, xin, n, cases[k].ld, scratch,
						 sizeof(scratch), enc, sizeof(enc), &len), 0);
		assert_int_equal(kw_codec_decode(&codec_ref, c, KW_CODEC_F32, enc, len, n, cases[k].ld, xout), 0);
		for (size_t cut = 0; cut < len; cut += (cut < 40 ? 1 : 997))
			assert_int_equal(kw_codec_decode(&codec_ref, c, KW_CODEC_F32, enc, cut, n, cases[k].ld,
							 xout), -KW_EBADMSG);
		assert_int_equal(kw_codec_decode(&codec_ref, c, KW_CODEC_F32, enc, len - 1, n, cases[k].ld,
						 xout), -KW_EBADMSG);
		assert_int_equal(kw_codec_decode(&codec_ref, c, KW_CODEC_F32, enc, len + 1, n, cases[k].ld,
						 xout), -KW_EMSGSIZE);
		/* encoder refuses a buffer one byte short */
		assert_int_equal(kw_codec_encode(&codec_ref, c, KW_CODEC_F32, xin, n, cases[k].ld, scratch,
						 sizeof(scratch), enc2, len - 1, &len), -KW_ENOSPC);
	}
	assert_int_equal(kw_codec_decode(&codec_ref, (enum kw_compression)9, KW_CODEC_F32, enc, 4, 1, 1,
					 xout), -KW_EBADMSG);
}

static void test_codec_decoders_reject_bad_headers(void **state)
{
	size_t n = 5000, len;

	for (size_t i = 0; i < n; i++)
		xin[i] = frand(1.0f);
	/* blockwise: wrong block count, wrong code length */
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, xin, n, 1,
					 NULL, 0, enc, sizeof(enc), &len), 0);
	enc[0] = 3;
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len, n, 1,
					 xout), -KW_EBADMSG);
	enc[0] = 2;
	enc[9] = 2;
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len, n, 1,
					 xout), -KW_EBADMSG);
	/* codebook: a huge length must not overflow the size check; an index past a short book */
	assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_UNIFORM_8BIT, KW_CODEC_F32, xin, n, 1,
					 NULL, 0, enc, sizeof(enc), &len), 0);
	memset(enc, 0xff, 8);
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_UNIFORM_8BIT, KW_CODEC_F32, enc, len, n, 1,
					 xout), -KW_EBADMSG);
	/* a 2-entry book followed by indices: index 2 is out of the book */
	memset(enc, 0, 8);
	enc[0] = 2;
	memset(enc + 8, 0, 8);
	memset(enc + 16, 1, n);
	enc[16 + 77] = 2;
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_UNIFORM_8BIT, KW_CODEC_F32, enc, 16 + n, n, 1,
					 xout), -KW_EBADMSG);
	enc[16 + 77] = 1;
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_UNIFORM_8BIT, KW_CODEC_F32, enc, 16 + n, n, 1,
					 xout), 0);
	/* meanstd: last_dim must divide numel */
	assert_int_equal(kw_codec_decode(&codec_ref, KW_COMP_MEANSTD_16BIT, KW_CODEC_F32, enc, 100, 7, 2,
					 xout), -KW_EINVAL);
}

static void test_codec_empty_tensors_encode_and_decode(void **state)
{
	size_t len;

	for (int c = 0; c < KW_COMP_COUNT; c++) {
		assert_int_equal(kw_codec_encode(&codec_ref, (enum kw_compression)c, KW_CODEC_F32, NULL, 0, 1,
						 NULL, 0, enc, sizeof(enc), &len), 0);
		assert_int_equal(kw_codec_decode(&codec_ref, (enum kw_compression)c, KW_CODEC_F32, enc, len,
						 0, 1, NULL), 0);
	}
}

static void check_bw_variant(enum kw_simd v)
{
	static struct kw_codec cv;
	static float am_ref[16], am_v[16];
	static uint8_t q_ref[BIG], q_v[BIG];
	static const size_t sizes[] = { 0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097,
						 4096 + 48, 4096 + 79, 8192 + 40, BIG };

	if (!kw_simd_available(v)) {
		assert_int_equal(kw_codec_init(&cv, v), -KW_ENOTSUP);
		return;
	}
	assert_int_equal(kw_codec_init(&cv, v), 0);
	for (int round = 0; round < 6; round++) {
		for (size_t i = 0; i < BIG; i++) {
			xin[i] = frand(round == 0 ? 1.0f : ldexpf(1.0f, (int)(rnd() % 40) - 20));
			if (round == 1 && i % 5 == 0)  /* exact code values and midpoints */
				xin[i] = cv.bw.code[rnd() % 256] * 7.0f;
			if (round == 2 && i < KW_BW_BLOCK)
				xin[i] = 0.0f;  /* zero block */
			if (round == 3 && i % 1000 == 3)
				xin[i] = (i % 3000 == 3) ? NAN : (i % 2 ? INFINITY : -INFINITY);
			if (round == 4)
				xin[i] = (float)((int)(rnd() % 255) - 127);
			if (round == 5 && i % 3 == 0)
				xin[i] = -0.0f;
		}
		for (size_t s = 0; s < KW_ARRAY_SIZE(sizes); s++) {
			size_t n = sizes[s];

			memset(q_v, 0xcd, sizeof(q_v));
			memset(q_ref, 0xcd, sizeof(q_ref));
			kw_bw_quant_ref(&cv.bw, xin, n, am_ref, q_ref);
			cv.k->bw_quant(&cv.bw, xin, n, am_v, q_v);
			assert_memory_equal(q_ref, q_v, sizeof(q_v));
			assert_memory_equal(am_ref, am_v, sizeof(float) * ((n + KW_BW_BLOCK - 1) / KW_BW_BLOCK));
			kw_bw_dequant_ref(cv.bw.code, q_ref, am_ref, n, xout);
			cv.k->bw_dequant(cv.bw.code, q_ref, am_ref, n, xout2);
			assert_memory_equal(xout, xout2, n * sizeof(float));  /* exact: one multiply */
		}
	}
}

static uint32_t fkey(float f) { return kw_bw_key(kw_f32_bits(f)); }

static void test_codec_blockwise_model_is_proven_for_default_code_only(void **state)
{
	static struct kw_bw_table t;
	float code[256];

	(void)state;
	assert_int_equal(codec_ref.bw.model.ok, 1);
	assert_in_range(codec_ref.bw.model.win, 1, 8);
	for (int i = 0; i < 256; i++)  /* evenly spaced code: no decades, no model */
		code[i] = -1.0f + (float)i / 127.5f;
	assert_int_equal(kw_bw_table_init(&t, code), 0);
	assert_int_equal(t.model.ok, 0);
}

/* Where the model says "sure" (outside its window, below the cut) it equals the search. */
static void check_model_point(const struct kw_bw_model *md, float q, uint32_t *sure, uint32_t *all)
{
	uint32_t fb;

	if (!(__builtin_fabsf(q) < md->cut))
		return;
	(*all)++;
	fb = kw_bw_model_bits(md, q);
	if (kw_bw_model_unsure(md, fb))
		return;
	(*sure)++;
	if (((fb >> 15) & 0xffu) != kw_bw_quant_search(codec_ref.bw.code, q))
		fail_msg("q=%a: model %u, search %u", (double)q, (fb >> 15) & 0xffu,
			 kw_bw_quant_search(codec_ref.bw.code, q));
}

static void test_codec_blockwise_model_equals_search_where_sure(void **state)
{
	const struct kw_bw_model *md = &codec_ref.bw.model;
	const float *c = codec_ref.bw.code;
	uint32_t sure = 0, all = 0;

	(void)state;
	/* every code value and midpoint (as floats and as the exact midpoint), +-64 floats */
	for (int i = 0; i < 256; i++) {
		float pts[3] = { c[i], i < 255 ? 0.5f * (c[i] + c[i + 1]) : c[i],
				 i < 255 ? (float)(0.5 * ((double)c[i] + (double)c[i + 1])) : c[i] };

		for (int p = 0; p < 3; p++)
			for (int d = -64; d <= 64; d++) {
				uint32_t b = kw_f32_bits(pts[p]);

				if (pts[p] != 0.0f)
					check_model_point(md, kw_bits_f32(b + (uint32_t)d), &sure, &all);
			}
	}
	/* zeros, denormals, the smallest normals, log-uniform and uniform magnitudes */
	check_model_point(md, 0.0f, &sure, &all);
	check_model_point(md, -0.0f, &sure, &all);
	for (uint32_t b = 1; b < 4096; b++) {
		check_model_point(md, kw_bits_f32(b), &sure, &all);
		check_model_point(md, kw_bits_f32(b | 0x80000000u), &sure, &all);
		check_model_point(md, kw_bits_f32(0x00800000u + b), &sure, &all);
	}
	sure = all = 0;
	for (int i = 0; i < 2000000; i++) {
		float q = (i & 1) ? frand(1.0f) : ldexpf(frand(1.0f), -(int)(rnd() % 30));

		check_model_point(md, q, &sure, &all);
	}
	/* the window is narrow: random lanes almost never need the exact path */
	assert_true(all - sure < all / 1000);
}

/*
 * The SIMD encoders compute q = RN(x * RN(1/m)) instead of RN(x / m); the model's proof
 * allows KW_BW_MODEL_SLACK floats between them. Check that over random and awkward pairs.
 */
static void test_codec_blockwise_reciprocal_product_within_slack(void **state)
{
	static const float ms[] = { 1.0f, 0x1.fffffep0f, 0x1.000002p0f, 3.0f, 0.1f, 7.0e-3f, 0x1p-100f,
				    0x1p100f, 0x1.fffffep99f, 0x1.000002p-100f, 1.17549435e-38f * 1e30f };
	uint32_t worst = 0;

	(void)state;
	for (int i = 0; i < 4000000; i++) {
		float m, r, u, x, y, q;
		uint32_t d;

		if (i < (int)(KW_ARRAY_SIZE(ms) * 100000))
			m = ms[i / 100000];
		else
			m = ldexpf(1.0f + (float)(rnd() & 0xffffff) / 16777216.0f, (int)(rnd() % 201) - 100);
		if (!kw_bw_model_block_ok(m))
			continue;
		u = (i % 7 == 0) ? ldexpf(frand(1.0f), -(int)(rnd() % 160)) : frand(1.0f);
		x = u * m;
		if (__builtin_fabsf(x) > m)
			x = m;
		if (i % 1000 == 1)
			x = -m;
		r = 1.0f / m;
		y = x / m;
		q = x * r;
		d = fkey(q) > fkey(y) ? fkey(q) - fkey(y) : fkey(y) - fkey(q);
		worst = d > worst ? d : worst;
		if (d > KW_BW_MODEL_SLACK)
			fail_msg("x=%a m=%a: x*RN(1/m)=%a, x/m=%a", (double)x, (double)m, (double)q, (double)y);
	}
	assert_true(worst <= 2);  /* the bound in the header: 2 suffice */
}

/* SIMD vs reference on blocks built to sit on the model's step points and edges. */
static void check_bw_step_points(enum kw_simd v)
{
	static struct kw_codec cv;
	static float am_ref[4], am_v[4];
	static uint8_t q_ref[4 * KW_BW_BLOCK], q_v[4 * KW_BW_BLOCK];
	static float xs[4 * KW_BW_BLOCK];
	const size_t n = 4 * KW_BW_BLOCK;

	if (!kw_simd_available(v))
		return;
	assert_int_equal(kw_codec_init(&cv, v), 0);
	for (int round = 0; round < 40; round++) {
		/* absmax per block: awkward mantissas, powers of 2, the model's block limits and
		 * outside them (denormal, huge) */
		static const float special[] = { 0x1p-100f, 0x1p100f, 0x1p-101f, 0x1p101f, 1e-40f, 3e38f };
		for (size_t b = 0; b < 4; b++) {
			float m = round < 6 && b == 0 ? special[round]
				 : ldexpf(1.0f + (float)(rnd() & 0xffffff) / 16777216.0f, (int)(rnd() % 41) - 20);

			for (size_t i = b * KW_BW_BLOCK; i < (b + 1) * KW_BW_BLOCK; i++) {
				uint32_t j = rnd() % 255;
				float mid = 0.5f * (cv.bw.code[j] + cv.bw.code[j + 1]);
				int d = (int)(rnd() % 9) - 4;

				switch (rnd() % 6) {
				case 0: /* a step point of y, +-4 floats, scaled back to x */
				case 1:
					xs[i] = kw_bits_f32(kw_f32_bits(mid) + (uint32_t)d) * m;
					break;
				case 2: /* a code value */
					xs[i] = cv.bw.code[j] * m;
					break;
				case 3: /* tiny against m: denormal or zero quotients */
					xs[i] = ldexpf(frand(1.0f), -(int)(rnd() % 40) - 100);
					break;
				default:
					xs[i] = frand(m);
				}
				if (__builtin_fabsf(xs[i]) > m)
					xs[i] = m;
			}
			xs[b * KW_BW_BLOCK + rnd() % KW_BW_BLOCK] = (rnd() & 1) ? m : -m;
			if (round == 7 && b == 1)  /* all-equal block: every lane at |q| = 1 */
				for (size_t i = b * KW_BW_BLOCK; i < (b + 1) * KW_BW_BLOCK; i++)
					xs[i] = (b & 1) ? -m : m;
			if (round == 8 && b == 2)  /* Inf in the block: the exact path */
				xs[b * KW_BW_BLOCK + 5] = -INFINITY;
		}
		kw_bw_quant_ref(&cv.bw, xs, n, am_ref, q_ref);
		cv.k->bw_quant(&cv.bw, xs, n, am_v, q_v);
		assert_memory_equal(am_ref, am_v, sizeof(am_ref));
		assert_memory_equal(q_ref, q_v, n);
	}
}

static void test_codec_blockwise_simd_exact_at_step_points(void **state)
{
	(void)state;
	check_bw_step_points(KW_SIMD_AVX2);
	check_bw_step_points(KW_SIMD_NEON);
}

/* AVX-512 needs a CPU that has it: say so and skip instead of passing silently. */
static bool avx512_or_skip(void)
{
	if (kw_simd_available(KW_SIMD_AVX512))
		return true;
	print_message("[  SKIPPED ] no AVX-512 F/BW/VL/VBMI(/VNNI) on this CPU (or not compiled in)\n");
	return false;
}

static void test_codec_blockwise_avx512_exact_at_step_points(void **state)
{
	(void)state;
	if (!avx512_or_skip())
		skip();
	check_bw_step_points(KW_SIMD_AVX512);
}

static void test_codec_blockwise_avx512_equals_reference(void **state)
{
	(void)state;
	if (!avx512_or_skip()) {
		check_bw_variant(KW_SIMD_AVX512);  /* asserts kw_codec_init says -KW_ENOTSUP */
		skip();
	}
	check_bw_variant(KW_SIMD_AVX512);
}

/*
 * The AVX-512 encoder redoes single lanes: groups of 64 with many unsure lanes (|q| >= cut,
 * step points) at every position, and the same data through an odd output address.
 */
static void test_codec_blockwise_avx512_fixes_unsure_lanes_one_by_one(void **state)
{
	static struct kw_codec cv;
	static float am_ref[4], am_v[4];
	static uint8_t q_ref[BIG], q_v[BIG + 1];
	const size_t n = 3 * KW_BW_BLOCK + 100;

	(void)state;
	if (!avx512_or_skip())
		skip();
	assert_int_equal(kw_codec_init(&cv, KW_SIMD_AVX512), 0);
	for (int round = 0; round < 20; round++) {
		float m = ldexpf(1.0f + (float)(rnd() & 0xffff) / 65536.0f, (int)(rnd() % 21) - 10);

		for (size_t i = 0; i < n; i++) {
			uint32_t j = rnd() % 255;
			uint32_t pick = rnd() % 8;

			if (pick < (uint32_t)round % 8)  /* near +-1: above the cut */
				xin[i] = (1.0f - (float)(rnd() % 300) * 1e-4f) * ((rnd() & 1) ? m : -m);
			else if (pick == 7)  /* a step point +-2 floats: inside a window */
				xin[i] = kw_bits_f32(kw_f32_bits(0.5f * (cv.bw.code[j] + cv.bw.code[j + 1])) +
						     (uint32_t)((int)(rnd() % 5) - 2)) * m;
			else
				xin[i] = frand(m);
			if (__builtin_fabsf(xin[i]) > m)
				xin[i] = m;
		}
		xin[rnd() % n] = m;
		kw_bw_quant_ref(&cv.bw, xin, n, am_ref, q_ref);
		cv.k->bw_quant(&cv.bw, xin, n, am_v, q_v + 1);
		assert_memory_equal(am_ref, am_v, sizeof(am_ref));
		assert_memory_equal(q_ref, q_v + 1, n);
	}
}

static void test_codec_blockwise_avx2_equals_reference(void **state) { check_bw_variant(KW_SIMD_AVX2); }
static void test_codec_blockwise_neon_equals_reference(void **state) { check_bw_variant(KW_SIMD_NEON); }

static void test_codec_simd_codecs_produce_reference_bytes(void **state)
{
	static struct kw_codec cv;
	size_t len, len2;

	assert_int_equal(kw_codec_init(&cv, KW_SIMD_AUTO), 0);
	for (size_t i = 0; i < BIG; i++)
		xin[i] = frand(100.0f);
	for (int c = 0; c < KW_COMP_COUNT; c++) {
		size_t ld = c == KW_COMP_MEANSTD_16BIT ? 197 : 1;  /* 12805 = 65 rows of 197 */

		assert_int_equal(kw_codec_encode(&codec_ref, (enum kw_compression)c, KW_CODEC_F32, xin, BIG, ld,
						 scratch, sizeof(scratch), enc, sizeof(enc), &len), 0);
		/* odd output offset exercises the unaligned paths */
		assert_int_equal(kw_codec_encode(&cv, (enum kw_compression)c, KW_CODEC_F32, xin, BIG, ld,
						 scratch, sizeof(scratch), enc2 + 1, sizeof(enc2) - 1, &len2), 0);
		assert_int_equal(len, len2);
		assert_memory_equal(enc, enc2 + 1, len);
		assert_int_equal(kw_codec_decode(&cv, (enum kw_compression)c, KW_CODEC_F32, enc2 + 1, len, BIG,
						 ld, xout2), 0);
		assert_int_equal(kw_codec_decode(&codec_ref, (enum kw_compression)c, KW_CODEC_F32, enc, len,
						 BIG, ld, xout), 0);
		assert_memory_equal(xout, xout2, BIG * sizeof(float));
	}
}

static void test_codec_none_half_dtypes_round_trip_through_every_variant(void **state)
{
	static struct kw_codec cv;
	size_t len, len2;

	for (size_t i = 0; i < 1001; i++)
		xin[i] = frand(1000.0f);
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		if (!kw_simd_available((enum kw_simd)v))
			continue;
		assert_int_equal(kw_codec_init(&cv, (enum kw_simd)v), 0);
		for (int dt = KW_CODEC_F16; dt <= KW_CODEC_BF16; dt++) {
			assert_int_equal(kw_codec_encode(&codec_ref, KW_COMP_NONE, (enum kw_codec_dtype)dt, xin,
							 1001, 1, NULL, 0, enc, sizeof(enc), &len), 0);
			assert_int_equal(len, 2002);
			assert_int_equal(kw_codec_encode(&cv, KW_COMP_NONE, (enum kw_codec_dtype)dt, xin, 1001, 1,
							 NULL, 0, enc2 + 1, sizeof(enc2) - 1, &len2), 0);
			assert_memory_equal(enc, enc2 + 1, len);
			assert_int_equal(kw_codec_decode(&cv, KW_COMP_NONE, (enum kw_codec_dtype)dt, enc2 + 1, len,
							 1001, 1, xout), 0);
			for (size_t i = 0; i < 1001; i++)  /* fp16: 2^-11 relative, bf16: 2^-8 */
				assert_true(fabsf(xout[i] - xin[i]) <=
					    fabsf(xin[i]) * (dt == KW_CODEC_F16 ? 1.0f / 2048 : 1.0f / 256));
			assert_int_equal(kw_codec_decode(&cv, KW_COMP_NONE, (enum kw_codec_dtype)dt, enc, len - 1,
							 1001, 1, xout), -KW_EBADMSG);
		}
	}
}

/* ---- runs (the all-reduce's fused paths) ---- */

/* Encodes xin[0..n) run by run (runs of `run` values) into out, after the header. */
static void encode_runs(const struct kw_codec *c, enum kw_compression comp, size_t n, size_t run,
			uint8_t *out, size_t *len)
{
	assert_int_equal(kw_codec_encode_header(c, comp, KW_CODEC_F32, n, n, out, sizeof(enc2) - 1,
						len), 0);
	for (size_t off = 0; off < n; off += run)
		assert_int_equal(kw_codec_encode_range(c, comp, KW_CODEC_F32, xin + off, n, n, off,
						       KW_MIN(run, n - off), scratch, sizeof(scratch),
						       out, *len), 0);
}

static void test_codec_runs_give_the_whole_tensor_bytes_and_values(void **state)
{
	static const enum kw_compression comps[] = { KW_COMP_NONE, KW_COMP_FLOAT16,
		KW_COMP_BLOCKWISE_8BIT, KW_COMP_MEANSTD_16BIT, KW_COMP_QUANTILE_8BIT };
	struct kw_codec c;

	(void)state;
	assert_int_equal(kw_codec_init(&c, KW_SIMD_AUTO), 0);
	for (size_t i = 0; i < BIG; i++)
		xin[i] = frand(3.0f);
	for (unsigned ci = 0; ci < KW_ARRAY_SIZE(comps); ci++) {
		enum kw_compression comp = comps[ci];
		size_t g = kw_codec_granule(comp, KW_CODEC_F32, BIG), run, len, len2;
		uint8_t *odd = enc2 + 1;   /* a message body lands at any alignment */

		run = g == 1 ? 1000 : g == BIG ? BIG : 2 * g;
		assert_int_equal(kw_codec_encode(&c, comp, KW_CODEC_F32, xin, BIG, BIG, scratch,
						 sizeof(scratch), enc, sizeof(enc), &len), 0);
		memset(enc2, 0xee, sizeof(enc2));
		encode_runs(&c, comp, BIG, run, odd, &len2);
		assert_int_equal(len2, len);
		assert_memory_equal(odd, enc, len);
		assert_int_equal(kw_codec_decode(&c, comp, KW_CODEC_F32, enc, len, BIG, BIG, xout), 0);
		for (size_t off = 0; off < BIG; off += run) {
			size_t n = KW_MIN(run, BIG - off);

			assert_int_equal(kw_codec_decode_range(&c, comp, KW_CODEC_F32, odd, len, BIG, BIG,
							       off, n, xout2 + off), 0);
		}
		assert_memory_equal(xout2, xout, BIG * sizeof(float));
	}
	assert_int_equal(kw_codec_granule(KW_COMP_NONE, KW_CODEC_F32, BIG), 1);
	assert_int_equal(kw_codec_granule(KW_COMP_NONE, KW_CODEC_F16, BIG), BIG);
	assert_int_equal(kw_codec_granule(KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, BIG), KW_BW_BLOCK);
}

static void test_codec_runs_reject_misaligned_runs_and_bad_buffers(void **state)
{
	struct kw_codec c;
	size_t len;

	(void)state;
	assert_int_equal(kw_codec_init(&c, KW_SIMD_AUTO), 0);
	for (size_t i = 0; i < BIG; i++)
		xin[i] = frand(1.0f);
	assert_int_equal(kw_codec_encode(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, xin, BIG, BIG,
					 NULL, 0, enc, sizeof(enc), &len), 0);
	/* a run must start on a block and end on one or at the end */
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len,
					       BIG, BIG, 100, KW_BW_BLOCK, xout), -KW_EINVAL);
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len,
					       BIG, BIG, 0, 5000, xout), -KW_EINVAL);
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len,
					       BIG, BIG, 3 * KW_BW_BLOCK, 518, xout), -KW_EINVAL);
	assert_int_equal(kw_codec_encode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, xin, BIG,
					       BIG, KW_BW_BLOCK + 1, 10, NULL, 0, enc2, sizeof(enc2)),
			 -KW_EINVAL);
	/* whole-tensor codecs have one run */
	assert_int_equal(kw_codec_encode_range(&c, KW_COMP_MEANSTD_16BIT, KW_CODEC_F32, xin, BIG,
					       BIG, 0, 1000, NULL, 0, enc2, sizeof(enc2)), -KW_EINVAL);
	/* the header and length are checked on every run, as by kw_codec_decode */
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc,
					       len - 1, BIG, BIG, 0, KW_BW_BLOCK, xout), -KW_EBADMSG);
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc,
					       len + 1, BIG, BIG, 0, KW_BW_BLOCK, xout), -KW_EMSGSIZE);
	enc[0] ^= 1;   /* nblocks */
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len,
					       BIG, BIG, 0, KW_BW_BLOCK, xout), -KW_EBADMSG);
	assert_int_equal(kw_codec_decode_range(&c, KW_COMP_FLOAT16, KW_CODEC_F32, enc, 2 * BIG - 2,
					       BIG, BIG, 0, 10, xout), -KW_EBADMSG);
	assert_int_equal(kw_codec_encode_range(&c, KW_COMP_FLOAT16, KW_CODEC_F32, xin, BIG, BIG,
					       0, 10, NULL, 0, enc2, 2 * BIG - 1), -KW_ENOSPC);
}

static void test_codec_finite_tells_from_the_layout(void **state)
{
	struct kw_codec c;
	size_t len, nb = (BIG + KW_BW_BLOCK - 1) / KW_BW_BLOCK;
	float bound = 0, amax = 0, v;
	uint16_t h = 0x7c00;   /* fp16 +Inf */

	(void)state;
	assert_int_equal(kw_codec_init(&c, KW_SIMD_AUTO), 0);
	for (size_t i = 0; i < BIG; i++)
		xin[i] = frand(2.0f);
	/* NONE: every value's exponent, the scalar tail included */
	assert_int_equal(kw_codec_encode(&c, KW_COMP_NONE, KW_CODEC_F32, xin, BIG, BIG, NULL, 0,
					 enc, sizeof(enc), &len), 0);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_NONE, KW_CODEC_F32, enc, len, BIG, &bound), 0);
	assert_true(isinf(bound));
	v = NAN;
	memcpy(enc + len - 4, &v, 4);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_NONE, KW_CODEC_F32, enc, len, BIG, NULL),
			 -KW_ERANGE);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_NONE, KW_CODEC_F32, enc, len - 4, BIG, NULL),
			 -KW_EBADMSG);
	/* FLOAT16: half exponents; bound 65504 */
	assert_int_equal(kw_codec_encode(&c, KW_COMP_FLOAT16, KW_CODEC_F32, xin, BIG, BIG, NULL, 0,
					 enc, sizeof(enc), &len), 0);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_FLOAT16, KW_CODEC_F32, enc, len, BIG, &bound), 0);
	assert_true(bound == 65504.0f);
	memcpy(enc + 2 * 5, &h, 2);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_FLOAT16, KW_CODEC_F32, enc, len, BIG, NULL),
			 -KW_ERANGE);
	/* BLOCKWISE_8BIT: absmax and the code; bound = max |code| * max absmax */
	assert_int_equal(kw_codec_encode(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, xin, BIG, BIG,
					 NULL, 0, enc, sizeof(enc), &len), 0);
	for (size_t b = 0; b < nb; b++) {
		memcpy(&v, enc + 16 + 4 * b, 4);
		amax = fmaxf(amax, v);
	}
	assert_int_equal(kw_codec_finite(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len, BIG,
					 &bound), 0);
	assert_true(bound == amax);   /* the default code spans [-1, 1] */
	assert_int_equal(kw_codec_decode(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len, BIG,
					 BIG, xout), 0);
	for (size_t i = 0; i < BIG; i++)
		assert_true(fabsf(xout[i]) <= bound);
	memcpy(enc2, enc, len);
	v = INFINITY;
	memcpy(enc2 + 16 + 4 * 2, &v, 4);   /* absmax of block 2 */
	assert_int_equal(kw_codec_finite(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc2, len, BIG,
					 NULL), -KW_ERANGE);
	memcpy(enc2, enc, len);
	memcpy(enc2 + 16 + 4 * nb + 4 * 7, &v, 4);   /* a code entry q may never use */
	assert_int_equal(kw_codec_finite(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc2, len, BIG,
					 NULL), -KW_ENOTSUP);
	memcpy(enc2, enc, len);
	v = 3e38f;                                   /* code * absmax (about 2) overflows */
	memcpy(enc2 + 16 + 4 * nb + 4 * 255, &v, 4);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc2, len, BIG,
					 NULL), -KW_ENOTSUP);
	assert_int_equal(kw_codec_finite(&c, KW_COMP_BLOCKWISE_8BIT, KW_CODEC_F32, enc, len - 1, BIG,
					 NULL), -KW_EBADMSG);
	/* the others cannot tell without decoding */
	assert_int_equal(kw_codec_finite(&c, KW_COMP_MEANSTD_16BIT, KW_CODEC_F32, enc, len, BIG,
					 NULL), -KW_ENOTSUP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_none_matches_golden_bytes),
		cmocka_unit_test(test_codec_none_bfloat16_accepts_legacy_float32_payload),
		cmocka_unit_test(test_codec_float16_matches_golden_bytes_and_clamps),
		cmocka_unit_test(test_codec_meanstd_matches_hivemind_bytes),
		cmocka_unit_test(test_codec_uniform_matches_golden_bytes),
		cmocka_unit_test(test_codec_quantile_matches_golden_bytes),
		cmocka_unit_test(test_codec_blockwise_matches_golden_bytes),
		cmocka_unit_test(test_codec_default_code_is_the_bitsandbytes_map),
		cmocka_unit_test(test_codec_blockwise_lut_equals_binary_search),
		cmocka_unit_test(test_codec_blockwise_dense_code_falls_back_to_search),
		cmocka_unit_test(test_codec_round_trips_within_stated_bounds),
		cmocka_unit_test(test_codec_quantile_handles_multiple_chunks),
		cmocka_unit_test(test_codec_blockwise_zero_block_uses_zero_code),
		cmocka_unit_test(test_codec_decoders_reject_truncated_and_oversized),
		cmocka_unit_test(test_codec_decoders_reject_bad_headers),
		cmocka_unit_test(test_codec_empty_tensors_encode_and_decode),
		cmocka_unit_test(test_codec_blockwise_model_is_proven_for_default_code_only),
		cmocka_unit_test(test_codec_blockwise_model_equals_search_where_sure),
		cmocka_unit_test(test_codec_blockwise_reciprocal_product_within_slack),
		cmocka_unit_test(test_codec_blockwise_simd_exact_at_step_points),
		cmocka_unit_test(test_codec_blockwise_avx2_equals_reference),
		cmocka_unit_test(test_codec_blockwise_avx512_equals_reference),
		cmocka_unit_test(test_codec_blockwise_large_decode_equals_reference),
		cmocka_unit_test(test_codec_blockwise_avx512_exact_at_step_points),
		cmocka_unit_test(test_codec_blockwise_avx512_fixes_unsure_lanes_one_by_one),
		cmocka_unit_test(test_codec_blockwise_neon_equals_reference),
		cmocka_unit_test(test_codec_simd_codecs_produce_reference_bytes),
		cmocka_unit_test(test_codec_none_half_dtypes_round_trip_through_every_variant),
		cmocka_unit_test(test_codec_runs_give_the_whole_tensor_bytes_and_values),
		cmocka_unit_test(test_codec_runs_reject_misaligned_runs_and_bad_buffers),
		cmocka_unit_test(test_codec_finite_tells_from_the_layout),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
