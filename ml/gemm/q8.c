/*
 * Packed int8 weights (<kw/ml/q8.h>), activation scratch, and the single-threaded entry
 * points into a kernel table (<kw/ml/kernels.h>); ml/gemm/workers.c splits the same call
 * over threads.
 */
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/q8.h>

static size_t q8_align_up(size_t x)
{
	return (x + KW_Q8_ALIGN - 1) & ~(size_t)(KW_Q8_ALIGN - 1);
}

static void *q8_align_ptr(void *p)
{
	return (void *)q8_align_up((size_t)(uintptr_t)p);
}

size_t kw_q8w_size(size_t n, size_t k)
{
	size_t ng, np, tot;

	if (n == 0 || k == 0 || n > SIZE_MAX / 4 || k > SIZE_MAX / 4)
		return 0;
	ng = (n + KW_Q8_ROWS - 1) / KW_Q8_ROWS;
	np = ((k + KW_Q8_BLOCK - 1) / KW_Q8_BLOCK + 1) / 2;
	if (__builtin_mul_overflow(ng, np, &tot) ||
	    __builtin_mul_overflow(tot, (size_t)KW_Q8_PAIR_BYTES, &tot) ||
	    __builtin_add_overflow(tot, (size_t)KW_Q8_ALIGN, &tot))
		return 0;
	return tot;
}

int kw_q8w_init(struct kw_q8w *w, size_t n, size_t k, void *mem, size_t len)
{
	size_t need = kw_q8w_size(n, k);
	char *p;

	if (!w || !mem || need == 0)
		return -KW_EINVAL;
	if (len < need)
		return -KW_ENOSPC;
	memset(w, 0, sizeof(*w));
	w->n = n;
	w->k = k;
	w->nb = (k + KW_Q8_BLOCK - 1) / KW_Q8_BLOCK;
	w->ngroups = (n + KW_Q8_ROWS - 1) / KW_Q8_ROWS;
	p = q8_align_ptr(mem);
	w->q = (int8_t *)p;
	w->d = (uint16_t *)(void *)p;
	memset(p, 0, w->ngroups * ((w->nb + 1) / 2) * KW_Q8_PAIR_BYTES);
	return 0;
}

static int8_t *q8w_qp(const struct kw_q8w *w, size_t row, size_t col)
{
	size_t g = row / KW_Q8_ROWS, r = row % KW_Q8_ROWS, b = col / KW_Q8_BLOCK;
	size_t c = (col % KW_Q8_BLOCK) / 4, j = col % 4;

	return w->q + kw_q8w_qoff(w->nb, g, b) + c * 64 + r * 4 + j;
}

static uint16_t *q8w_dp(const struct kw_q8w *w, size_t row, size_t blk)
{
	return w->d + kw_q8w_doff(w->nb, row / KW_Q8_ROWS, blk) + row % KW_Q8_ROWS;
}

int8_t kw_q8w_get_q(const struct kw_q8w *w, size_t row, size_t col)
{
	return *q8w_qp(w, row, col);
}

uint16_t kw_q8w_get_d(const struct kw_q8w *w, size_t row, size_t blk)
{
	return *q8w_dp(w, row, blk);
}

int kw_q8w_set_row(struct kw_q8w *w, size_t row, const int8_t *q, const uint16_t *d)
{
	if (!w || !q || !d || row >= w->n)
		return -KW_EINVAL;
	for (size_t col = 0; col < w->k; col++)
		*q8w_qp(w, row, col) = q[col];
	for (size_t b = 0; b < w->nb; b++)
		*q8w_dp(w, row, b) = d[b];
	return 0;
}

int kw_q8w_pack_f32(struct kw_q8w *w, const float *src, size_t ld)
{
	if (!w || !src || ld < w->k)
		return -KW_EINVAL;
	for (size_t row = 0; row < w->n; row++) {
		const float *x = src + row * ld;

		for (size_t b = 0; b < w->nb; b++) {
			size_t c0 = b * KW_Q8_BLOCK, len = KW_MIN((size_t)KW_Q8_BLOCK, w->k - c0);
			float amax = 0.0f, df, id;
			uint16_t dh;

			for (size_t i = 0; i < len; i++) {
				float a = x[c0 + i] < 0.0f ? -x[c0 + i] : x[c0 + i];

				amax = a > amax ? a : amax;
			}
			dh = kw_f32_to_fp16(amax / 127.0f);
			df = kw_fp16_to_f32(dh);
			id = df > 0.0f ? 1.0f / df : 0.0f;
			*q8w_dp(w, row, b) = dh;
			for (size_t i = 0; i < len; i++) {
				float v = x[c0 + i] * id;

				v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
				*q8w_qp(w, row, c0 + i) = (int8_t)__builtin_rintf(v);
			}
		}
	}
	return 0;
}

size_t kw_q8_act_scratch_size(size_t m, size_t k)
{
	size_t nb, q, ds;

	if (m == 0 || m > KW_Q8_MAX_M || k == 0 || k > SIZE_MAX / 256)
		return 0;
	nb = (k + KW_Q8_BLOCK - 1) / KW_Q8_BLOCK;
	q = q8_align_up(m * nb * KW_Q8_BLOCK);
	ds = q8_align_up(m * nb * 4);
	return KW_Q8_ALIGN + q + 2 * ds;
}

int kw_q8_act_init(struct kw_q8_act *a, size_t m, size_t k, void *scratch, size_t len)
{
	size_t need = kw_q8_act_scratch_size(m, k), nb;
	char *p;

	if (!a || !scratch || need == 0)
		return -KW_EINVAL;
	if (len < need)
		return -KW_ENOSPC;
	nb = (k + KW_Q8_BLOCK - 1) / KW_Q8_BLOCK;
	a->m = m;
	a->k = k;
	a->nb = nb;
	p = q8_align_ptr(scratch);
	a->q = (int8_t *)p;
	p += q8_align_up(m * nb * KW_Q8_BLOCK);
	a->d = (float *)p;
	p += q8_align_up(m * nb * 4);
	a->s = (int32_t *)p;
	return 0;
}

int kw_q8_quantize(const struct kw_kernels *kk, const float *x, size_t ldx,
		   struct kw_q8_act *a)
{
	if (!kk || !x || !a || ldx < a->k)
		return -KW_EINVAL;
	for (size_t m = 0; m < a->m; m++)
		kk->q8_quantize(x + m * ldx, a->k, a->q + m * a->nb * KW_Q8_BLOCK, a->d + m * a->nb,
				a->s + m * a->nb);
	return 0;
}

int kw_q8_gemm(const struct kw_kernels *kk, const struct kw_q8w *w,
	       const struct kw_q8_act *a, const float *bias, float *y, size_t ldy)
{
	if (!kk || !w || !a || !y || a->k != w->k || (a->m > 1 && ldy < w->n))
		return -KW_EINVAL;
	kk->q8_gemm(w, a, 0, w->ngroups, bias, y, ldy);
	return 0;
}
