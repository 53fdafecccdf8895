/*
 * ml/gemm/q8.c, ml/ref/q8_ref.c and the int8 slots of every kernel table (<kw/ml/kernels.h>):
 * each table compiled in and supported by this CPU must equal the C reference bit for bit (quantized activations, their scales
 * and sums, and the fp32 outputs), and the reference must agree with plain float math on
 * the dequantized values within the activation quantization error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

#include "harness.h"
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/q8.h>

struct rng { uint64_t s; };

static uint32_t rnd(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (uint32_t)(r->s >> 16);
}

static float rndf(struct rng *r, float lo, float hi)
{
	return lo + (hi - lo) * (float)(rnd(r) & 0xffffff) / 16777216.0f;
}

/* The test's own view of the CPU, independent of arch/<arch>/cpu.c and ml/kernels.c, to
 * catch a table that the dispatcher wrongly hides. */
static bool cpu_supports(enum kw_simd v)
{
	switch (v) {
	case KW_SIMD_REF:
		return true;
#if defined(__aarch64__)
	case KW_SIMD_NEON:
		return true;
	case KW_SIMD_DOTPROD:
		return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__x86_64__)
	case KW_SIMD_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       __builtin_cpu_supports("f16c");
	case KW_SIMD_AVXVNNI:
		return cpu_supports(KW_SIMD_AVX2) && __builtin_cpu_supports("avxvnni");
	case KW_SIMD_AVX512VNNI:
		return cpu_supports(KW_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512vnni");
	case KW_SIMD_AVX512:
		return cpu_supports(KW_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512vbmi") &&
		       (!IS_ENABLED(CONFIG_KW_X86_VNNI) || __builtin_cpu_supports("avx512vnni"));
#endif
	default:
		return false;
	}
}

enum wkind { W_RANDOM, W_MIN, W_MAX, W_ZERO, W_ALTERNATE };
enum xkind { X_RANDOM, X_ZERO, X_EXTREME, X_TINY };

struct problem {
	size_t m, n, k, nb;
	struct kw_q8w w;
	void *wmem;
	float *x, *bias;
};

static void problem_make(struct problem *p, size_t m, size_t n, size_t k, enum wkind wk,
			 enum xkind xk, uint64_t seed)
{
	struct rng r = { seed * 0x9e3779b97f4a7c15ull + 1 };
	size_t len = kw_q8w_size(n, k);
	int8_t *q;
	uint16_t *d;

	memset(p, 0, sizeof(*p));
	p->m = m; p->n = n; p->k = k; p->nb = (k + 31) / 32;
	p->wmem = malloc(len);
	assert_non_null(p->wmem);
	assert_int_equal(kw_q8w_init(&p->w, n, k, p->wmem, len), 0);
	q = malloc(k);
	d = malloc(p->nb * 2);
	for (size_t row = 0; row < n; row++) {
		for (size_t c = 0; c < k; c++) {
			switch (wk) {
			case W_RANDOM: q[c] = (int8_t)rnd(&r); break;
			case W_MIN: q[c] = -128; break;
			case W_MAX: q[c] = 127; break;
			case W_ZERO: q[c] = 0; break;
			case W_ALTERNATE: q[c] = (c + row) & 1 ? 127 : -128; break;
			}
		}
		for (size_t b = 0; b < p->nb; b++)
			d[b] = kw_f32_to_fp16(rndf(&r, 1e-3f, 0.05f) * (rnd(&r) & 1 ? 1.0f : -1.0f));
		assert_int_equal(kw_q8w_set_row(&p->w, row, q, d), 0);
	}
	free(q);
	free(d);
	p->x = malloc(m * k * sizeof(float));
	p->bias = malloc(n * sizeof(float));
	for (size_t i = 0; i < m * k; i++) {
		switch (xk) {
		case X_RANDOM: p->x[i] = rndf(&r, -4.0f, 4.0f); break;
		case X_ZERO: p->x[i] = 0.0f; break;
		case X_EXTREME: p->x[i] = i & 1 ? -3.0f : 3.0f; break;
		case X_TINY: p->x[i] = rndf(&r, -1e-30f, 1e-30f); break;
		}
	}
	for (size_t i = 0; i < n; i++)
		p->bias[i] = rndf(&r, -1.0f, 1.0f);
}

static void problem_free(struct problem *p)
{
	free(p->wmem);
	free(p->x);
	free(p->bias);
}

struct run {
	struct kw_q8_act a;
	void *scratch;
	float *y;           /* m rows of ldy = n + 3 (3 canary columns) */
	size_t ldy;
};

#define CANARY 12345.5f

static void run_variant(const struct kw_kernels *kk, struct problem *p, bool bias,
			struct run *out)
{
	size_t len = kw_q8_act_scratch_size(p->m, p->k);

	out->scratch = malloc(len);
	assert_non_null(out->scratch);
	memset(out->scratch, 0x5a, len);   /* padding must be written by quantize */
	assert_int_equal(kw_q8_act_init(&out->a, p->m, p->k, out->scratch, len), 0);
	assert_int_equal(kw_q8_quantize(kk, p->x, p->k, &out->a), 0);
	out->ldy = p->n + 3;
	out->y = malloc(p->m * out->ldy * sizeof(float));
	for (size_t i = 0; i < p->m * out->ldy; i++)
		out->y[i] = CANARY;
	assert_int_equal(kw_q8_gemm(kk, &p->w, &out->a, bias ? p->bias : NULL, out->y, out->ldy), 0);
	for (size_t i = 0; i < p->m; i++)
		for (size_t j = p->n; j < out->ldy; j++)
			assert_true(out->y[i * out->ldy + j] == CANARY);
}

static void run_free(struct run *r)
{
	free(r->scratch);
	free(r->y);
}

static bool exercised[KW_SIMD_COUNT];

/* Every usable variant against the reference on one problem; returns how many ran. */
static void compare_all(size_t m, size_t n, size_t k, enum wkind wk, enum xkind xk, uint64_t seed)
{
	struct problem p;
	struct run ref;

	problem_make(&p, m, n, k, wk, xk, seed);
	for (int bias = 0; bias < 2; bias++) {
		run_variant(kw_kernels_get(KW_SIMD_REF), &p, bias, &ref);
		exercised[KW_SIMD_REF] = true;
		for (int v = KW_SIMD_REF + 1; v < KW_SIMD_COUNT; v++) {
			const struct kw_kernels *kk = kw_kernels_get((enum kw_simd)v);
			struct run got;

			if (!kk)
				continue;
			run_variant(kk, &p, bias, &got);
			if (memcmp(got.a.q, ref.a.q, m * p.nb * 32) ||
			    memcmp(got.a.d, ref.a.d, m * p.nb * 4) ||
			    memcmp(got.a.s, ref.a.s, m * p.nb * 4))
				fail_msg("%s quantize differs from ref (m=%zu n=%zu k=%zu)", kk->name, m, n, k);
			for (size_t i = 0; i < m; i++)
				for (size_t j = 0; j < n; j++) {
					float a = got.y[i * got.ldy + j], b = ref.y[i * ref.ldy + j];

					if (memcmp(&a, &b, 4))
						fail_msg("%s y[%zu][%zu] = %.9g, ref %.9g (m=%zu n=%zu k=%zu bias=%d)",
							 kk->name, i, j, a, b, m, n, k, bias);
				}
			exercised[v] = true;
			run_free(&got);
		}
		run_free(&ref);
	}
	problem_free(&p);
}

static void test_q8_variants_equal_ref_on_random_shapes(void **state)
{
	static const size_t ms[] = { 1, 3, 17 }, ns[] = { 1, 3, 17, 33 }, ks[] = { 1, 3, 31, 32, 33, 100, 257 };
	uint64_t seed = 1;

	for (size_t a = 0; a < KW_ARRAY_SIZE(ms); a++)
		for (size_t b = 0; b < KW_ARRAY_SIZE(ns); b++)
			for (size_t c = 0; c < KW_ARRAY_SIZE(ks); c++)
				compare_all(ms[a], ns[b], ks[c], W_RANDOM, X_RANDOM, seed++);
}

static void test_q8_variants_equal_ref_on_large_dims(void **state)
{
	compare_all(1, 64, 4096, W_RANDOM, X_RANDOM, 101);   /* long K GEMV */
	compare_all(1, 4096, 64, W_RANDOM, X_RANDOM, 102);   /* 4096 output rows */
	compare_all(64, 40, 96, W_RANDOM, X_RANDOM, 103);    /* the largest M */
	compare_all(5, 18, 4096 + 7, W_RANDOM, X_RANDOM, 104);
}

static void test_q8_variants_equal_ref_on_extremes(void **state)
{
	static const enum wkind wks[] = { W_MIN, W_MAX, W_ZERO, W_ALTERNATE };
	static const enum xkind xks[] = { X_ZERO, X_EXTREME, X_TINY, X_RANDOM };

	for (size_t i = 0; i < KW_ARRAY_SIZE(wks); i++)
		for (size_t j = 0; j < KW_ARRAY_SIZE(xks); j++) {
			compare_all(3, 17, 70, wks[i], xks[j], 200 + i * 8 + j);
			compare_all(1, 33, 4096, wks[i], xks[j], 300 + i * 8 + j);
		}
}

/* Extreme integer sums must be exact: -128 weights against +-127 activations, full K. */
static void test_q8_extreme_block_sums_are_exact(void **state)
{
	struct problem p;
	struct run r;

	problem_make(&p, 2, 16, 64, W_MIN, X_EXTREME, 7);
	/* make both blocks of every row use scale 1 so y is the raw integer sum times d_x */
	for (size_t row = 0; row < 16; row++) {
		int8_t q[64];
		uint16_t d[2] = { kw_f32_to_fp16(1.0f), kw_f32_to_fp16(1.0f) };

		memset(q, 0x80, sizeof(q));
		assert_int_equal(kw_q8w_set_row(&p.w, row, q, d), 0);
	}
	for (size_t i = 0; i < 128; i++)
		p.x[i] = 3.0f;    /* every activation quantizes to +127 with d = 3/127 */
	run_variant(kw_kernels_best(), &p, false, &r);
	for (size_t i = 0; i < 2 * 2; i++) {
		assert_int_equal(r.a.q[i * 32], 127);
		assert_int_equal(r.a.s[i], 127 * 32);
	}
	for (size_t j = 0; j < 16; j++) {
		float blk = (float)(-128 * 127 * 32) * (1.0f * (3.0f / 127.0f));

		assert_true(r.y[j] == blk + blk);
	}
	run_free(&r);
	problem_free(&p);
}

/* Reference vs plain float math on the dequantized weights: the only error left is the
 * activation rounding (|x - q*d| <= d/2 per element) plus fp32 summation. */
static void test_q8_ref_matches_dequantized_float_math(void **state)
{
	struct problem p;
	struct run r;

	problem_make(&p, 3, 17, 200, W_RANDOM, X_RANDOM, 55);
	run_variant(kw_kernels_get(KW_SIMD_REF), &p, true, &r);
	for (size_t i = 0; i < p.m; i++) {
		for (size_t j = 0; j < p.n; j++) {
			double exact = p.bias[j], bound = 0.0, mag = fabs(p.bias[j]);

			for (size_t c = 0; c < p.k; c++) {
				double wv = kw_q8w_get_q(&p.w, j, c) *
					    (double)kw_fp16_to_f32(kw_q8w_get_d(&p.w, j, c / 32));
				double dx = r.a.d[i * p.nb + c / 32];

				exact += wv * p.x[i * p.k + c];
				bound += fabs(wv) * dx * 0.5;
				mag += fabs(wv * p.x[i * p.k + c]);
			}
			bound = bound * 1.0001 + mag * 1e-5;
			if (fabs(r.y[i * r.ldy + j] - exact) > bound)
				fail_msg("y[%zu][%zu] = %g, float math %g, bound %g", i, j,
					 r.y[i * r.ldy + j], exact, bound);
		}
	}
	/* and the bound is not vacuous: quantization error is visible but small */
	run_free(&r);
	problem_free(&p);
}

static void test_q8_quantize_error_within_half_step(void **state)
{
	struct problem p;
	struct run r;

	problem_make(&p, 1, 1, 1000, W_ZERO, X_RANDOM, 9);
	run_variant(kw_kernels_best(), &p, false, &r);
	for (size_t c = 0; c < p.k; c++) {
		float d = r.a.d[c / 32];

		assert_true(fabsf(p.x[c] - r.a.q[c] * d) <= d * 0.5001f);
		assert_true(r.a.q[c] >= -127);
		assert_true(r.a.q[c] <= 127);
	}
	for (size_t c = p.k; c < p.nb * 32; c++)
		assert_int_equal(r.a.q[c], 0);   /* K padding is zero */
	run_free(&r);
	problem_free(&p);
}

static void test_q8w_pack_f32_round_trips_within_half_step(void **state)
{
	enum { N = 5, K = 77 };
	float src[N * K];
	struct rng r = { 42 };
	struct kw_q8w w;
	static unsigned char mem[8192];

	for (size_t i = 0; i < N * K; i++)
		src[i] = rndf(&r, -2.0f, 2.0f);
	src[3] = 0.0f;
	assert_int_equal(kw_q8w_init(&w, N, K, mem, sizeof(mem)), 0);
	assert_int_equal(kw_q8w_pack_f32(&w, src, K), 0);
	for (size_t n = 0; n < N; n++)
		for (size_t c = 0; c < K; c++) {
			float d = kw_fp16_to_f32(kw_q8w_get_d(&w, n, c / 32));
			float v = kw_q8w_get_q(&w, n, c) * d;

			assert_true(fabsf(v - src[n * K + c]) <= d * 0.5001f);
		}
}

static void test_q8_rejects_bad_shapes_and_short_buffers(void **state)
{
	struct kw_q8w w;
	struct kw_q8_act a;
	static unsigned char mem[4096];
	float y[64];

	assert_int_equal(kw_q8w_size(0, 4), 0);
	assert_int_equal(kw_q8w_init(&w, 0, 4, mem, sizeof(mem)), -KW_EINVAL);
	assert_int_equal(kw_q8w_init(&w, 16, 64, mem, kw_q8w_size(16, 64) - 1), -KW_ENOSPC);
	assert_int_equal(kw_q8w_init(&w, 16, 64, mem, sizeof(mem)), 0);
	assert_int_equal(kw_q8_act_scratch_size(KW_Q8_MAX_M + 1, 64), 0);
	assert_int_equal(kw_q8_act_init(&a, 0, 64, mem, sizeof(mem)), -KW_EINVAL);
	assert_int_equal(kw_q8_act_init(&a, 2, 64, mem, kw_q8_act_scratch_size(2, 64) - 1),
			 -KW_ENOSPC);
	assert_int_equal(kw_q8_act_init(&a, 2, 32, mem, sizeof(mem)), 0);
	assert_int_equal(kw_q8_gemm(kw_kernels_best(), &w, &a, NULL, y, 16), -KW_EINVAL);
	assert_int_equal(kw_q8_act_init(&a, 2, 64, mem + 2048, 2048), 0);
	assert_int_equal(kw_q8_gemm(kw_kernels_best(), &w, &a, NULL, y, 15), -KW_EINVAL);
	assert_int_equal(kw_q8_gemm(kw_kernels_best(), &w, &a, NULL, y, 16), 0);
}

/* Runs last: a variant compiled in whose feature the CPU has must have been compared. */
static void test_q8_every_compiled_supported_variant_was_exercised(void **state)
{
	char ran[128] = "", skipped[128] = "";

	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		const char *name = kw_simd_name((enum kw_simd)v);

		if (!kw_simd_compiled((enum kw_simd)v))
			continue;
		if (exercised[v])
			snprintf(ran + strlen(ran), sizeof(ran) - strlen(ran), " %s", name);
		else
			snprintf(skipped + strlen(skipped), sizeof(skipped) - strlen(skipped), " %s", name);
		if (cpu_supports((enum kw_simd)v) && !exercised[v])
			fail_msg("variant %s is compiled in and the CPU supports it, but was not run", name);
	}
	printf("q8 variants compared with ref:%s; compiled but unsupported here:%s; best: %s\n",
	       ran, skipped[0] ? skipped : " none", kw_kernels_best()->name);
	assert_true(exercised[KW_SIMD_REF]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_q8_variants_equal_ref_on_random_shapes),
		cmocka_unit_test(test_q8_variants_equal_ref_on_large_dims),
		cmocka_unit_test(test_q8_variants_equal_ref_on_extremes),
		cmocka_unit_test(test_q8_extreme_block_sums_are_exact),
		cmocka_unit_test(test_q8_ref_matches_dequantized_float_math),
		cmocka_unit_test(test_q8_quantize_error_within_half_step),
		cmocka_unit_test(test_q8w_pack_f32_round_trips_within_half_step),
		cmocka_unit_test(test_q8_rejects_bad_shapes_and_short_buffers),
		cmocka_unit_test(test_q8_every_compiled_supported_variant_was_exercised),
	};
	return cmocka_run_group_tests_name("ml/q8", tests, NULL, NULL);
}
