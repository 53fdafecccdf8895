/*
 * Tensor descriptor: a dtype, up to four dimensions, element strides and a data pointer into
 * memory the caller owns (node arena, pool block, a model mapping). The descriptor never
 * allocates or frees; it only records where the elements are and how far the storage
 * reaches, so every access path can be bounds-checked against that length.
 *
 * Also the plain int8 <-> fp32 conversions with one caller-chosen scale (symmetric, zero
 * point 0). Block-quantized int8 (one scale per 32 values) for matmul lives in kw/ml/q8.h.
 */
#ifndef KW_ML_TENSOR_H
#define KW_ML_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KW_TENSOR_MAX_DIMS 4

enum kw_dtype {
	KW_DT_F32 = 0,
	KW_DT_F16,
	KW_DT_BF16,
	KW_DT_I8,
	KW_DT_I32,
	KW_DT_COUNT
};

struct kw_tensor {
	enum kw_dtype dtype;
	unsigned ndim;                       /* 1..KW_TENSOR_MAX_DIMS */
	size_t shape[KW_TENSOR_MAX_DIMS];    /* unused dims are 1 */
	size_t strides[KW_TENSOR_MAX_DIMS];  /* in elements, not bytes */
	void *data;                          /* not owned */
	size_t cap;                          /* bytes available at data */
};

/* Bytes per element of `dt`, 0 for an unknown dtype. */
size_t kw_dtype_size(enum kw_dtype dt);
/* Short lower-case name ("f32", "bf16", ...), "?" for an unknown dtype. */
const char *kw_dtype_name(enum kw_dtype dt);

/*
 * Describes a contiguous row-major tensor (last dimension fastest) of `ndim` dims over
 * `data`/`len`. -KW_EINVAL for a bad dtype, ndim or a zero dimension; -KW_ERANGE when the
 * byte size overflows size_t; -KW_ENOSPC when `len` is shorter than the tensor. On error *t
 * is left zeroed.
 */
int kw_tensor_init(struct kw_tensor *t, enum kw_dtype dt, unsigned ndim, const size_t *shape,
		   void *data, size_t len);
/* Same with explicit element strides (views, transposes); every element must lie in len. */
int kw_tensor_init_strided(struct kw_tensor *t, enum kw_dtype dt, unsigned ndim,
			   const size_t *shape, const size_t *strides, void *data, size_t len);
/* Re-checks a descriptor that may have been edited by hand: 0, -KW_EINVAL, -KW_ERANGE or
 * -KW_ENOSPC as for kw_tensor_init_strided. */
int kw_tensor_validate(const struct kw_tensor *t);

/* Number of elements (product of the shape). */
size_t kw_tensor_numel(const struct kw_tensor *t);
/* Bytes the elements occupy when contiguous: numel * element size. */
size_t kw_tensor_nbytes(const struct kw_tensor *t);
/* True when the strides are the row-major ones for the shape. */
bool kw_tensor_is_contiguous(const struct kw_tensor *t);
/* Pointer to element idx[0..ndim-1], or NULL when an index is out of range. */
void *kw_tensor_at(const struct kw_tensor *t, const size_t *idx);

/*
 * int8 <-> fp32 with a symmetric scale: q = clamp(round_half_even(x / scale), -127, 127)
 * (computed as x * (1 / scale)), x = q * scale. -127 keeps the range symmetric so negation
 * never overflows. Inputs must be finite; scale must be > 0 and finite (-KW_EINVAL).
 */
int kw_f32_to_i8(const float *x, int8_t *q, size_t n, float scale);
void kw_i8_to_f32(const int8_t *q, float *x, size_t n, float scale);
/* The scale that maps max|x| to 127 (1.0f for an all-zero input so it stays usable). */
float kw_i8_scale_for(const float *x, size_t n);

/*
 * Tensor forms of the above: same shape required (-KW_EINVAL), any strides, src F32 and dst
 * I8 (or the reverse for dequantize).
 */
int kw_tensor_quantize_i8(const struct kw_tensor *src, struct kw_tensor *dst, float scale);
int kw_tensor_dequantize_i8(const struct kw_tensor *src, struct kw_tensor *dst, float scale);

#endif /* KW_ML_TENSOR_H */
