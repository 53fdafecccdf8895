/*
 * ml/block/ffn.c and lin.c: Hivemind's "ffn" expert (hivemind/moe/server/layers/common.py
 * at 4bd43b7) and the SwiGLU expert, forward and backward with respect to the inputs, on
 * fp32 (OpenBLAS) and int8 weights, against a double-precision reference computed here with
 * plain loops (forward) and central finite differences of it (backward).
 *
 * Tolerances. fp32: relative L2 error 1e-5 (fp32 rounding over sums of a few hundred
 * terms gives ~1e-7; finite differences in double with step 1e-5 add ~1e-9). int8: each Q8_0 operand is rounded to half a step of its 32-block scale
 * (max|block| / 127 / 2), a relative error of about 1/254 per element, uniform and
 * independent, so one int8 matmul has a relative RMS error of about
 * sqrt(2) x (1/254) / sqrt(3) x (block max / RMS, ~2 for uniform values) ~ 0.6 %; two
 * matmuls in a row (backward: four) stay near 1-2 %. The tests allow 4 % (forward) and 6 %
 * (backward) relative L2 error: a wrong transpose, a wrong activation or a dropped term
 * gives errors of 30 % and more.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/half.h>

#define HID 64
#define M   5

static uint64_t rs;

static float frand(void)      /* uniform in [-1, 1) */
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		v[i] = frand() * scale;
}

static double rel_l2(const float *a, const float *ref, size_t n)
{
	double e = 0, r = 0;

	for (size_t i = 0; i < n; i++) {
		e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
		r += (double)ref[i] * ref[i];
	}
	return sqrt(e / (r > 0 ? r : 1));
}

/* ---- one expert's weights (fp32 masters) and the layers over them ------------------------- */
struct expert {
	enum kw_ffn_kind kind;
	size_t inter;
	float *w1, *b1, *wg, *w2, *b2, *lnw, *lnb;
	struct kw_ffn f32, q8;
};

static uint8_t arena_mem[8 << 20];
static struct kw_arena arena;
static struct kw_ffn_ctx ctx;

static void make_expert(struct expert *e, enum kw_ffn_kind kind, size_t inter, int with_t)
{
	float s1 = 1.0f / sqrtf(HID), s2 = 1.0f / sqrtf((float)inter);

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->inter = inter;
	e->w1 = calloc(inter * HID, 4);
	e->wg = calloc(inter * HID, 4);
	e->b1 = calloc(inter, 4);
	e->w2 = calloc(inter * HID, 4);
	e->b2 = calloc(HID, 4);
	e->lnw = calloc(HID, 4);
	e->lnb = calloc(HID, 4);
	fill(e->w1, inter * HID, s1);
	fill(e->wg, inter * HID, s1);
	fill(e->w2, inter * HID, s2);
	if (kind == KW_FFN_GELU) {
		fill(e->b1, inter, 0.1f);
		fill(e->b2, HID, 0.1f);
		for (size_t i = 0; i < HID; i++) {
			e->lnw[i] = 1.0f + 0.2f * frand();
			e->lnb[i] = 0.1f * frand();
		}
	}
	struct kw_ffn *f = &e->f32;

	f->kind = kind;
	f->hid = HID;
	f->inter = inter;
	f->up = (struct kw_lin){ inter, HID, NULL, NULL, e->w1, kind == KW_FFN_GELU ? e->b1 : NULL };
	f->gate = (struct kw_lin){ inter, HID, NULL, NULL, e->wg, NULL };
	f->down = (struct kw_lin){ HID, inter, NULL, NULL, e->w2, kind == KW_FFN_GELU ? e->b2 : NULL };
	f->ln_w = e->lnw;
	f->ln_b = e->lnb;
	e->q8 = *f;
	assert_int_equal(kw_lin_q8_from_f32(&e->q8.up, e->w1, inter, HID, with_t, &arena), 0);
	assert_int_equal(kw_lin_q8_from_f32(&e->q8.gate, e->wg, inter, HID, with_t, &arena), 0);
	assert_int_equal(kw_lin_q8_from_f32(&e->q8.down, e->w2, HID, inter, with_t, &arena), 0);
	e->q8.up.bias = f->up.bias;
	e->q8.down.bias = f->down.bias;
}

static void free_expert(struct expert *e)
{
	free(e->w1); free(e->wg); free(e->b1); free(e->w2); free(e->b2); free(e->lnw); free(e->lnb);
}

/* The double-precision reference of one row, straight from the upstream definitions. */
static void ref_row(const struct expert *e, const double *x, double *y)
{
	double a[1024], t[HID];

	for (size_t j = 0; j < e->inter; j++) {
		double g = 0, u = e->kind == KW_FFN_GELU ? e->b1[j] : 0;

		for (size_t k = 0; k < HID; k++) {
			u += (double)e->w1[j * HID + k] * x[k];
			g += (double)e->wg[j * HID + k] * x[k];
		}
		if (e->kind == KW_FFN_GELU)
			a[j] = 0.5 * u * (1 + tanh(u * 0.7978845608 * (1 + 0.044715 * u * u)));
		else
			a[j] = g / (1 + exp(-g)) * u;
	}
	for (size_t k = 0; k < HID; k++) {
		double s = e->kind == KW_FFN_GELU ? e->b2[k] : 0;

		for (size_t j = 0; j < e->inter; j++)
			s += (double)e->w2[k * e->inter + j] * a[j];
		t[k] = s;
	}
	if (e->kind == KW_FFN_SWIGLU) {
		memcpy(y, t, sizeof(t));
		return;
	}
	double mu = 0, var = 0;

	for (size_t k = 0; k < HID; k++)
		mu += (t[k] += x[k]);
	mu /= HID;
	for (size_t k = 0; k < HID; k++)
		var += (t[k] - mu) * (t[k] - mu);
	var /= HID;
	for (size_t k = 0; k < HID; k++)
		y[k] = (t[k] - mu) / sqrt(var + 1e-12) * e->lnw[k] + e->lnb[k];
}

static void ref_forward(const struct expert *e, const float *x, size_t m, float *y)
{
	for (size_t r = 0; r < m; r++) {
		double xd[HID], yd[HID];

		for (size_t k = 0; k < HID; k++)
			xd[k] = x[r * HID + k];
		ref_row(e, xd, yd);
		for (size_t k = 0; k < HID; k++)
			y[r * HID + k] = (float)yd[k];
	}
}

/* gx[k] = d(gy . f(x))/dx[k] by central differences in double. */
static void ref_backward(const struct expert *e, const float *x, const float *gy, size_t m,
			 float *gx)
{
	const double h = 1e-5;

	for (size_t r = 0; r < m; r++)
		for (size_t k = 0; k < HID; k++) {
			double xp[HID], yp[HID], ym[HID], d = 0;

			for (size_t i = 0; i < HID; i++)
				xp[i] = x[r * HID + i];
			xp[k] += h;
			ref_row(e, xp, yp);
			xp[k] -= 2 * h;
			ref_row(e, xp, ym);
			for (size_t i = 0; i < HID; i++)
				d += gy[r * HID + i] * (yp[i] - ym[i]);
			gx[r * HID + k] = (float)(d / (2 * h));
		}
}

static int setup(void **state)
{
	(void)state;
	rs = 0x9e3779b97f4a7c15ull;
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	return kw_ffn_ctx_init(&ctx, NULL, NULL, HID, 4 * HID, 16, &arena);
}

static float x[70 * HID], y[70 * HID], yr[70 * HID], gy[70 * HID], gx[70 * HID], gr[70 * HID];

static void check_forward(enum kw_ffn_kind kind, size_t inter, int q8, double tol)
{
	struct expert e;

	make_expert(&e, kind, inter, 0);
	fill(x, M * HID, 1.0f);
	assert_int_equal(kw_ffn_forward(&ctx, q8 ? &e.q8 : &e.f32, x, M, y), 0);
	ref_forward(&e, x, M, yr);
	assert_true(rel_l2(y, yr, M * HID) < tol);
	free_expert(&e);
}

static void check_backward(enum kw_ffn_kind kind, size_t inter, int q8, double tol)
{
	struct expert e;

	make_expert(&e, kind, inter, 1);
	fill(x, M * HID, 1.0f);
	fill(gy, M * HID, 1.0f);
	assert_int_equal(kw_ffn_backward(&ctx, q8 ? &e.q8 : &e.f32, x, gy, M, gx), 0);
	ref_backward(&e, x, gy, M, gr);
	assert_true(rel_l2(gx, gr, M * HID) < tol);
	free_expert(&e);
}

static void test_gelu_ffn_f32_forward_matches_reference(void **s)
{
	(void)s;
	check_forward(KW_FFN_GELU, 4 * HID, 0, 1e-5);
}

static void test_gelu_ffn_q8_forward_within_int8_tolerance(void **s)
{
	(void)s;
	check_forward(KW_FFN_GELU, 4 * HID, 1, 0.04);
}

static void test_gelu_ffn_f32_backward_matches_finite_differences(void **s)
{
	(void)s;
	check_backward(KW_FFN_GELU, 4 * HID, 0, 1e-5);
}

static void test_gelu_ffn_q8_backward_within_int8_tolerance(void **s)
{
	(void)s;
	check_backward(KW_FFN_GELU, 4 * HID, 1, 0.06);
}

static void test_swiglu_ffn_f32_forward_matches_reference(void **s)
{
	(void)s;
	check_forward(KW_FFN_SWIGLU, 176, 0, 1e-5);
}

static void test_swiglu_ffn_q8_forward_within_int8_tolerance(void **s)
{
	(void)s;
	check_forward(KW_FFN_SWIGLU, 176, 1, 0.04);
}

static void test_swiglu_ffn_f32_backward_matches_finite_differences(void **s)
{
	(void)s;
	check_backward(KW_FFN_SWIGLU, 176, 0, 1e-5);
}

static void test_swiglu_ffn_q8_backward_within_int8_tolerance(void **s)
{
	(void)s;
	check_backward(KW_FFN_SWIGLU, 176, 1, 0.06);
}

/* 70 rows go through the 16-row scratch in five chunks; each row equals its own call. */
static void test_ffn_batch_beyond_scratch_rows_equals_row_by_row(void **s)
{
	struct expert e;

	(void)s;
	make_expert(&e, KW_FFN_GELU, 4 * HID, 1);
	fill(x, 70 * HID, 1.0f);
	fill(gy, 70 * HID, 1.0f);
	assert_int_equal(kw_ffn_forward(&ctx, &e.q8, x, 70, y), 0);
	assert_int_equal(kw_ffn_backward(&ctx, &e.q8, x, gy, 70, gx), 0);
	for (size_t r = 0; r < 70; r += 23) {
		assert_int_equal(kw_ffn_forward(&ctx, &e.q8, x + r * HID, 1, yr), 0);
		assert_memory_equal(yr, y + r * HID, HID * sizeof(float));
		assert_int_equal(kw_ffn_backward(&ctx, &e.q8, x + r * HID, gy + r * HID, 1, gr), 0);
		assert_memory_equal(gr, gx + r * HID, HID * sizeof(float));
	}
	free_expert(&e);
}

static void test_ffn_q8_backward_without_transpose_is_refused(void **s)
{
	struct expert e;

	(void)s;
	make_expert(&e, KW_FFN_SWIGLU, 176, 0);
	fill(x, HID, 1.0f);
	assert_int_equal(kw_ffn_backward(&ctx, &e.q8, x, x, 1, gx), -KW_ENOTSUP);
	free_expert(&e);
}

static void test_ffn_shape_not_matching_context_is_refused(void **s)
{
	struct expert e;

	(void)s;
	make_expert(&e, KW_FFN_GELU, 4 * HID, 0);
	e.f32.hid = HID / 2;
	assert_int_equal(kw_ffn_forward(&ctx, &e.f32, x, 1, y), -KW_EINVAL);
	e.f32.hid = HID;
	e.f32.ln_w = NULL;
	assert_int_equal(kw_ffn_forward(&ctx, &e.f32, x, 1, y), -KW_EINVAL);
	free_expert(&e);
}

/* The transpose built from int8 alone (as for a loaded block) is within two roundings of
 * the exact transpose of the dequantized weights. */
static void test_q8w_transpose_from_int8_within_two_roundings(void **s)
{
	enum { N = 40, K = 72 };
	static float w[N * K];
	struct kw_lin l;
	struct kw_q8w t;

	(void)s;
	fill(w, N * K, 1.0f);
	assert_int_equal(kw_lin_q8_from_f32(&l, w, N, K, 0, &arena), 0);
	assert_int_equal(kw_q8w_transpose(&t, l.q8, &arena), 0);
	assert_int_equal(t.n, K);
	assert_int_equal(t.k, N);
	for (size_t r = 0; r < N; r++)
		for (size_t c = 0; c < K; c++) {
			float d1 = kw_fp16_to_f32(kw_q8w_get_d(l.q8, r, c / 32));
			float d2 = kw_fp16_to_f32(kw_q8w_get_d(&t, c, r / 32));
			float v1 = d1 * kw_q8w_get_q(l.q8, r, c), v2 = d2 * kw_q8w_get_q(&t, c, r);

			assert_true(fabsf(v1 - w[r * K + c]) <= d1 * 0.5f + 1e-6f);
			assert_true(fabsf(v2 - v1) <= d2 * 0.5f + 1e-6f);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_gelu_ffn_f32_forward_matches_reference, setup),
		cmocka_unit_test_setup(test_gelu_ffn_q8_forward_within_int8_tolerance, setup),
		cmocka_unit_test_setup(test_gelu_ffn_f32_backward_matches_finite_differences, setup),
		cmocka_unit_test_setup(test_gelu_ffn_q8_backward_within_int8_tolerance, setup),
		cmocka_unit_test_setup(test_swiglu_ffn_f32_forward_matches_reference, setup),
		cmocka_unit_test_setup(test_swiglu_ffn_q8_forward_within_int8_tolerance, setup),
		cmocka_unit_test_setup(test_swiglu_ffn_f32_backward_matches_finite_differences, setup),
		cmocka_unit_test_setup(test_swiglu_ffn_q8_backward_within_int8_tolerance, setup),
		cmocka_unit_test_setup(test_ffn_batch_beyond_scratch_rows_equals_row_by_row, setup),
		cmocka_unit_test_setup(test_ffn_q8_backward_without_transpose_is_refused, setup),
		cmocka_unit_test_setup(test_ffn_shape_not_matching_context_is_refused, setup),
		cmocka_unit_test_setup(test_q8w_transpose_from_int8_within_two_roundings, setup),
	};

	return cmocka_run_group_tests_name("ml/block/ffn", tests, NULL, NULL);
}
