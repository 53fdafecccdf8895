/*
 * Linear layers for ml/block (see kw/ml/block.h): int8 through kw_q8_quantize and the
 * threaded kw_q8_gemm_mt, fp32 through OpenBLAS (or a plain loop when the build has no
 * OpenBLAS), and the packing of a layer's int8 copy and its transpose at init.
 */
#include <math.h>
#include <string.h>

#ifdef CONFIG_KW_ML_OPENBLAS
#include <cblas.h>
#include <kw/ml/blas.h>
#endif

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/half.h>
#include <kw/ml/model.h>

size_t kw_exec_bytes(size_t kmax)
{
	size_t n = kw_q8_act_scratch_size(KW_Q8_MAX_M, kmax);

	return n ? n + KW_Q8_ALIGN : 0;
}

int kw_exec_init(struct kw_exec *ex, const struct kw_kernels *kk, struct kw_workers *wk,
		 size_t kmax, struct kw_arena *a)
{
	size_t n = kw_q8_act_scratch_size(KW_Q8_MAX_M, kmax);

	if (!ex || !a || !n)
		return -KW_EINVAL;
	ex->kk = kk ? kk : kw_kernels_best();
	ex->wk = wk;
	ex->act = kw_arena_alloc(a, n, KW_Q8_ALIGN);
	ex->act_len = n;
	return ex->act ? 0 : -KW_ENOMEM;
}

/* y = x w^T through int8: rows go in chunks the quantized-activation scratch holds. */
static int q8_apply(const struct kw_exec *ex, const struct kw_q8w *w, const float *bias,
		    const float *x, size_t m, float *y)
{
	for (size_t r = 0; r < m; r += KW_Q8_MAX_M) {
		size_t mc = KW_MIN((size_t)KW_Q8_MAX_M, m - r);
		struct kw_q8_act act;
		int rc = kw_q8_act_init(&act, mc, w->k, ex->act, ex->act_len);

		if (rc)
			return rc;
		rc = kw_q8_quantize(ex->kk, x + r * w->k, w->k, &act);
		if (!rc)
			rc = kw_q8_gemm_mt(ex->wk, ex->kk, w, &act, bias, y + r * w->n, w->n);
		if (rc)
			return rc;
	}
	return 0;
}

int kw_lin_forward(const struct kw_exec *ex, const struct kw_lin *l, const float *x, size_t m,
		   float *y)
{
	if (!ex || !l || !x || !y || !m)
		return -KW_EINVAL;
	if (l->q8)
		return q8_apply(ex, l->q8, l->bias, x, m, y);
	if (!l->f32)
		return -KW_EINVAL;
#ifdef CONFIG_KW_ML_OPENBLAS
	return kw_f32_linear(x, l->k, m, l->k, l->f32, l->k, l->n, l->bias, y, l->n);
#else
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < l->n; j++) {
			float acc = l->bias ? l->bias[j] : 0.0f;

			for (size_t t = 0; t < l->k; t++)
				acc += x[i * l->k + t] * l->f32[j * l->k + t];
			y[i * l->n + j] = acc;
		}
	return 0;
#endif
}

int kw_lin_backward(const struct kw_exec *ex, const struct kw_lin *l, const float *gy, size_t m,
		    float *gx)
{
	if (!ex || !l || !gy || !gx || !m)
		return -KW_EINVAL;
	if (l->q8)
		return l->q8t ? q8_apply(ex, l->q8t, NULL, gy, m, gx) : -KW_ENOTSUP;
	if (!l->f32)
		return -KW_EINVAL;
#ifdef CONFIG_KW_ML_OPENBLAS
	if (m > INT32_MAX || l->n > INT32_MAX || l->k > INT32_MAX)
		return -KW_ERANGE;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)l->k, (int)l->n,
		    1.0f, gy, (int)l->n, l->f32, (int)l->k, 0.0f, gx, (int)l->k);
#else
	for (size_t i = 0; i < m; i++) {
		float *o = gx + i * l->k;

		memset(o, 0, l->k * sizeof(float));
		for (size_t j = 0; j < l->n; j++) {
			float g = gy[i * l->n + j];

			for (size_t t = 0; t < l->k; t++)
				o[t] += g * l->f32[j * l->k + t];
		}
	}
#endif
	return 0;
}

size_t kw_lin_q8_bytes(size_t n, size_t k, int with_t)
{
	size_t a = kw_q8w_size(n, k), b = with_t ? kw_q8w_size(k, n) : 0;

	if (!a || (with_t && !b))
		return 0;
	/* two struct kw_q8w, their alignment, and (transpose) 16 x n floats of row scratch */
	return a + b + 2 * (sizeof(struct kw_q8w) + 64) + KW_Q8_ALIGN +
	       (with_t ? KW_Q8_ROWS * n * sizeof(float) + 64 : 0);
}

static struct kw_q8w *q8w_new(size_t n, size_t k, struct kw_arena *a)
{
	struct kw_q8w *w = kw_arena_alloc(a, sizeof(*w), 64);
	size_t len = kw_q8w_size(n, k);
	void *mem = len ? kw_arena_alloc(a, len, KW_Q8_ALIGN) : NULL;

	if (!w || !mem || kw_q8w_init(w, n, k, mem, len))
		return NULL;
	return w;
}

int kw_q8w_transpose(struct kw_q8w *dst, const struct kw_q8w *src, struct kw_arena *a)
{
	size_t n = src->n, k = src->k, len = kw_q8w_size(k, n);
	void *mem = len ? kw_arena_alloc(a, len, KW_Q8_ALIGN) : NULL;
	struct kw_q8w t;
	size_t used0;
	float *rows;
	int rc;

	if (!mem)
		return -KW_ENOMEM;
	rc = kw_q8w_init(&t, k, n, mem, len);
	if (rc)
		return rc;
	/* The row scratch is transient: taken last and given back (the arena only grows, so
	 * rewinding `used` to before it is safe while nothing else allocates in between). */
	used0 = a->used;
	rows = kw_arena_alloc(a, KW_Q8_ROWS * n * sizeof(float), 64);
	if (!rows)
		return -KW_ENOMEM;
	for (size_t c0 = 0; c0 < k; c0 += KW_Q8_ROWS) {
		size_t cn = KW_MIN((size_t)KW_Q8_ROWS, k - c0);
		struct kw_q8w one = t;

		for (size_t r = 0; r < n; r++)
			for (size_t c = 0; c < cn; c++) {
				size_t col = c0 + c;
				float d = kw_fp16_to_f32(kw_q8w_get_d(src, r, col / KW_Q8_BLOCK));

				rows[c * n + r] = d * (float)kw_q8w_get_q(src, r, col);
			}
		/* pack rows c0 .. c0+cn-1 of the transpose: a view of t that starts at
		 * that 16-row group (c0 is a multiple of 16) */
		one.n = cn;
		one.ngroups = 1;
		one.q = t.q + c0 / KW_Q8_ROWS * ((t.nb + 1) / 2) * KW_Q8_PAIR_BYTES;
		one.d = (uint16_t *)(void *)one.q;
		rc = kw_q8w_pack_f32(&one, rows, n);
		if (rc)
			return rc;
	}
	a->used = used0;
	*dst = t;
	return 0;
}

int kw_lin_q8_from_f32(struct kw_lin *l, const float *w, size_t n, size_t k, int with_t,
		       struct kw_arena *a)
{
	struct kw_q8w *q = q8w_new(n, k, a), *t = NULL;
	int rc;

	if (!q)
		return -KW_ENOMEM;
	rc = kw_q8w_pack_f32(q, w, k);
	if (rc)
		return rc;
	if (with_t) {
		/* from the fp32 source, so the transpose has one rounding like W itself */
		size_t used0;
		float *col;

		t = q8w_new(k, n, a);
		if (!t)
			return -KW_ENOMEM;
		used0 = a->used;
		col = kw_arena_alloc(a, KW_Q8_ROWS * n * sizeof(float), 64);
		if (!col)
			return -KW_ENOMEM;
		for (size_t c0 = 0; c0 < k; c0 += KW_Q8_ROWS) {
			size_t cn = KW_MIN((size_t)KW_Q8_ROWS, k - c0);
			struct kw_q8w one = *t;

			for (size_t c = 0; c < cn; c++)
				for (size_t r = 0; r < n; r++)
					col[c * n + r] = w[r * k + c0 + c];
			one.n = cn;
			one.ngroups = 1;
			one.q = t->q + c0 / KW_Q8_ROWS * ((t->nb + 1) / 2) * KW_Q8_PAIR_BYTES;
			one.d = (uint16_t *)(void *)one.q;
			rc = kw_q8w_pack_f32(&one, col, n);
			if (rc)
				return rc;
		}
		a->used = used0;
	}
	memset(l, 0, sizeof(*l));
	l->n = n;
	l->k = k;
	l->q8 = q;
	l->q8t = t;
	return 0;
}

size_t kw_lin_load_bytes(size_t n, size_t k, int int8, int with_t, int bias)
{
	size_t b = bias ? n * sizeof(float) + 64 : 0;

	if (!n || !k)
		return 0;
	if (!int8)
		return n * k * sizeof(float) + 64 + b;
	/* W and W^T, their structs, the 16-row scratch (given back) and the transpose's */
	return kw_lin_q8_bytes(n, k, with_t) + KW_Q8_ROWS * k * sizeof(float) + 64 + b;
}

int kw_lin_load_st(struct kw_lin *l, const struct kw_st_tensor *w, const struct kw_st_tensor *bias,
		   size_t n, size_t k, int int8, int with_t, struct kw_arena *a, char *err,
		   size_t errcap)
{
	float *b = NULL;
	int r;

	if (!l || !w || !a)
		return -KW_EINVAL;
	if (w->ndim != 2 || w->shape[0] != n || w->shape[1] != k)
		return kw_errf(-KW_ECORRUPT, err, errcap, "tensor '%s': shape is not [%zu, %zu]",
			       w->name, n, k);
	if (bias && (bias->ndim != 1 || bias->shape[0] != n))
		return kw_errf(-KW_ECORRUPT, err, errcap, "tensor '%s': shape is not [%zu]",
			       bias->name, n);
	memset(l, 0, sizeof(*l));
	l->n = n;
	l->k = k;
	if (bias) {
		b = kw_arena_alloc(a, n * sizeof(float), 64);
		if (!b)
			return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'", bias->name);
		if ((r = kw_st_read_f32(bias, 0, n, b)))
			return kw_errf(r, err, errcap, "tensor '%s': read failed", bias->name);
		for (size_t i = 0; i < n; i++)
			if (!isfinite(b[i]))
				return kw_errf(-KW_ECORRUPT, err, errcap,
					       "tensor '%s': non-finite value at %zu", bias->name, i);
		l->bias = b;
	}
	if (!int8) {
		float *f = kw_arena_alloc(a, n * k * sizeof(float), 64);

		if (!f)
			return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'", w->name);
		if ((r = kw_st_read_f32(w, 0, n * k, f)))
			return kw_errf(r, err, errcap, "tensor '%s': read failed", w->name);
		for (size_t i = 0; i < n * k; i++)
			if (!isfinite(f[i]))
				return kw_errf(-KW_ECORRUPT, err, errcap,
					       "tensor '%s': non-finite value at row %zu", w->name,
					       i / k);
		l->f32 = f;
		return 0;
	}
	{
		struct kw_q8w *q = q8w_new(n, k, a);
		size_t used0;
		float *rows;

		if (!q)
			return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'", w->name);
		/* the row scratch is transient: taken last and given back */
		used0 = a->used;
		rows = kw_arena_alloc(a, KW_Q8_ROWS * k * sizeof(float), 64);
		if (!rows)
			return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'", w->name);
		for (size_t r0 = 0; r0 < n; r0 += KW_Q8_ROWS) {
			size_t rn = KW_MIN((size_t)KW_Q8_ROWS, n - r0);
			struct kw_q8w one = *q;

			if ((r = kw_st_read_f32(w, (uint64_t)r0 * k, rn * k, rows)))
				return kw_errf(r, err, errcap, "tensor '%s': read failed", w->name);
			/* beyond 65504 x 127 a block's fp16 scale overflows to Inf (and the
			 * transpose's dequantized Inf x 0 is NaN): refused like NaN */
			for (size_t i = 0; i < rn * k; i++)
				if (!isfinite(rows[i]) || fabsf(rows[i]) > 65504.0f * 127.0f)
					return kw_errf(-KW_ECORRUPT, err, errcap,
						       "tensor '%s': value at row %zu is not finite or"
						       " beyond int8's fp16 scale range", w->name,
						       r0 + i / k);
			one.n = rn;
			one.ngroups = 1;
			one.q = q->q + r0 / KW_Q8_ROWS * ((q->nb + 1) / 2) * KW_Q8_PAIR_BYTES;
			one.d = (uint16_t *)(void *)one.q;
			if ((r = kw_q8w_pack_f32(&one, rows, k)))
				return r;
		}
		a->used = used0;
		l->q8 = q;
		if (with_t) {
			struct kw_q8w *t = kw_arena_alloc(a, sizeof(*t), 64);

			if (!t)
				return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'^T",
					       w->name);
			if ((r = kw_q8w_transpose(t, q, a)))
				return kw_errf(r, err, errcap, "arena too small for '%s'^T", w->name);
			l->q8t = t;
		}
	}
	return 0;
}
