/* Tensor descriptors over caller memory, and scalar-scale int8 <-> fp32 conversion. */
#include <string.h>

#include <kw/err.h>
#include <kw/ml/tensor.h>

static const struct { size_t size; const char *name; } kw_dtypes[KW_DT_COUNT] = {
	[KW_DT_F32] = { 4, "f32" }, [KW_DT_F16] = { 2, "f16" }, [KW_DT_BF16] = { 2, "bf16" },
	[KW_DT_I8] = { 1, "i8" },   [KW_DT_I32] = { 4, "i32" },
};

size_t kw_dtype_size(enum kw_dtype dt)
{
	return (unsigned)dt < KW_DT_COUNT ? kw_dtypes[dt].size : 0;
}

const char *kw_dtype_name(enum kw_dtype dt)
{
	return (unsigned)dt < KW_DT_COUNT ? kw_dtypes[dt].name : "?";
}

int kw_tensor_validate(const struct kw_tensor *t)
{
	size_t es, last = 0, bytes;

	if (!t || (es = kw_dtype_size(t->dtype)) == 0 || t->ndim < 1 ||
	    t->ndim > KW_TENSOR_MAX_DIMS || !t->data)
		return -KW_EINVAL;
	for (unsigned i = 0; i < KW_TENSOR_MAX_DIMS; i++) {
		size_t ext;

		if (t->shape[i] == 0 || (i >= t->ndim && t->shape[i] != 1))
			return -KW_EINVAL;
		/* offset of the last element: sum of (shape-1)*stride, each step overflow-checked */
		if (__builtin_mul_overflow(t->shape[i] - 1, t->strides[i], &ext) ||
		    __builtin_add_overflow(last, ext, &last))
			return -KW_ERANGE;
	}
	if (__builtin_add_overflow(last, 1, &last) || __builtin_mul_overflow(last, es, &bytes))
		return -KW_ERANGE;
	return bytes <= t->cap ? 0 : -KW_ENOSPC;
}

int kw_tensor_init_strided(struct kw_tensor *t, enum kw_dtype dt, unsigned ndim,
			   const size_t *shape, const size_t *strides, void *data, size_t len)
{
	struct kw_tensor v = { .dtype = dt, .ndim = ndim, .data = data, .cap = len };
	int rc;

	if (!t)
		return -KW_EINVAL;
	memset(t, 0, sizeof(*t));
	if (ndim < 1 || ndim > KW_TENSOR_MAX_DIMS || !shape || !strides)
		return -KW_EINVAL;
	for (unsigned i = 0; i < KW_TENSOR_MAX_DIMS; i++) {
		v.shape[i] = i < ndim ? shape[i] : 1;
		v.strides[i] = i < ndim ? strides[i] : 0;
	}
	rc = kw_tensor_validate(&v);
	if (rc == 0)
		*t = v;
	return rc;
}

int kw_tensor_init(struct kw_tensor *t, enum kw_dtype dt, unsigned ndim, const size_t *shape,
		   void *data, size_t len)
{
	size_t strides[KW_TENSOR_MAX_DIMS], s = 1;

	if (t)
		memset(t, 0, sizeof(*t));
	if (!t || ndim < 1 || ndim > KW_TENSOR_MAX_DIMS || !shape)
		return -KW_EINVAL;
	for (unsigned i = ndim; i-- > 0;) {
		if (shape[i] == 0)
			return -KW_EINVAL;
		strides[i] = s;
		if (__builtin_mul_overflow(s, shape[i], &s))
			return -KW_ERANGE;
	}
	return kw_tensor_init_strided(t, dt, ndim, shape, strides, data, len);
}

size_t kw_tensor_numel(const struct kw_tensor *t)
{
	size_t n = 1;

	for (unsigned i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

size_t kw_tensor_nbytes(const struct kw_tensor *t)
{
	return kw_tensor_numel(t) * kw_dtype_size(t->dtype);
}

bool kw_tensor_is_contiguous(const struct kw_tensor *t)
{
	size_t s = 1;

	for (unsigned i = t->ndim; i-- > 0;) {
		if (t->shape[i] != 1 && t->strides[i] != s)
			return false;
		s *= t->shape[i];
	}
	return true;
}

void *kw_tensor_at(const struct kw_tensor *t, const size_t *idx)
{
	size_t off = 0;

	for (unsigned i = 0; i < t->ndim; i++) {
		if (idx[i] >= t->shape[i])
			return NULL;
		off += idx[i] * t->strides[i];
	}
	return (char *)t->data + off * kw_dtype_size(t->dtype);
}

/* Round half to even for |v| < 2^22 without libm: adding 1.5*2^23 leaves no fraction bits,
 * so the FPU's default rounding (nearest-even) does the work; unlike lrintf it vectorises. */
static inline float kw_rne_small(float v)
{
	const float magic = 12582912.0f;

	return (v + magic) - magic;
}

static inline int8_t kw_q_i8(float x, float inv)
{
	float v = x * inv;

	v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
	return (int8_t)kw_rne_small(v);
}

int kw_f32_to_i8(const float *x, int8_t *q, size_t n, float scale)
{
	float inv;

	if (!(scale > 0.0f) || scale > 3.4e38f)
		return -KW_EINVAL;
	inv = 1.0f / scale;
	for (size_t i = 0; i < n; i++)
		q[i] = kw_q_i8(x[i], inv);
	return 0;
}

void kw_i8_to_f32(const int8_t *q, float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)q[i] * scale;
}

float kw_i8_scale_for(const float *x, size_t n)
{
	float amax = 0.0f;

	for (size_t i = 0; i < n; i++) {
		float a = x[i] < 0 ? -x[i] : x[i];

		amax = a > amax ? a : amax;
	}
	return amax > 0.0f ? amax / 127.0f : 1.0f;
}

/* Walks every index of src (4-D odometer) and calls the element converter. */
static int kw_tensor_convert(const struct kw_tensor *src, struct kw_tensor *dst,
			     enum kw_dtype sdt, enum kw_dtype ddt, float scale)
{
	size_t idx[KW_TENSOR_MAX_DIMS] = { 0 };
	float inv;

	if (kw_tensor_validate(src) || kw_tensor_validate(dst) || src->dtype != sdt ||
	    dst->dtype != ddt || src->ndim != dst->ndim)
		return -KW_EINVAL;
	for (unsigned i = 0; i < src->ndim; i++)
		if (src->shape[i] != dst->shape[i])
			return -KW_EINVAL;
	if (!(scale > 0.0f) || scale > 3.4e38f)
		return -KW_EINVAL;
	inv = 1.0f / scale;
	for (;;) {
		size_t so = 0, d_o = 0;
		unsigned i;

		for (i = 0; i < KW_TENSOR_MAX_DIMS; i++) {
			so += idx[i] * src->strides[i];
			d_o += idx[i] * dst->strides[i];
		}
		if (sdt == KW_DT_F32)
			((int8_t *)dst->data)[d_o] = kw_q_i8(((const float *)src->data)[so], inv);
		else
			((float *)dst->data)[d_o] = (float)((const int8_t *)src->data)[so] * scale;
		for (i = KW_TENSOR_MAX_DIMS; i-- > 0;) {
			if (++idx[i] < src->shape[i])
				break;
			idx[i] = 0;
		}
		if (i == (unsigned)-1)
			return 0;
	}
}

int kw_tensor_quantize_i8(const struct kw_tensor *src, struct kw_tensor *dst, float scale)
{
	return kw_tensor_convert(src, dst, KW_DT_F32, KW_DT_I8, scale);
}

int kw_tensor_dequantize_i8(const struct kw_tensor *src, struct kw_tensor *dst, float scale)
{
	return kw_tensor_convert(src, dst, KW_DT_I8, KW_DT_F32, scale);
}
