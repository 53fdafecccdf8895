/*
 * Runs of a tensor through the element-wise codecs (<kw/ml/codec.h>, "Random access"): the
 * all-reduce decodes a received part a cache-sized run at a time into its weighted sum and
 * encodes a delta a run at a time into the outgoing message, with the bytes of the
 * whole-tensor calls. Codecs that need the whole tensor have one run, the whole tensor.
 */
#include <math.h>
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

size_t kw_codec_granule(enum kw_compression comp, enum kw_codec_dtype dtype, size_t numel)
{
	switch (comp) {
	case KW_COMP_NONE:
		return dtype == KW_CODEC_F32 ? 1 : numel;
	case KW_COMP_FLOAT16:
		return 1;
	case KW_COMP_BLOCKWISE_8BIT:
		return KW_BW_BLOCK;
	default:
		return numel;
	}
}

/* 1 when [first, first + n) is a run of an numel-element tensor with granule g, else 0 */
static int is_run(size_t g, size_t numel, size_t first, size_t n)
{
	if (first > numel || n > numel - first)
		return 0;
	if (g >= numel)
		return first == 0 && n == numel;
	return first % g == 0 && (n % g == 0 || first + n == numel);
}

int kw_codec_encode_header(const struct kw_codec *c, enum kw_compression comp,
			   enum kw_codec_dtype dtype, size_t numel, size_t last_dim, uint8_t *out,
			   size_t cap, size_t *out_len)
{
	size_t need;

	if (!c || !out_len || (unsigned)comp >= KW_COMP_COUNT || (unsigned)dtype >= KW_CODEC_DTYPE_COUNT)
		return -KW_EINVAL;
	need = kw_codec_max_size(comp, numel, last_dim);
	if (comp == KW_COMP_NONE && dtype != KW_CODEC_F32)
		need = numel * 2;
	if (!need && numel)
		return -KW_EINVAL;
	if (need > cap || (need && !out))
		return -KW_ENOSPC;
	if (comp == KW_COMP_BLOCKWISE_8BIT)
		kw_codec_blockwise_header(c, numel, out);
	*out_len = need;
	return 0;
}

int kw_codec_encode_range(const struct kw_codec *c, enum kw_compression comp,
			  enum kw_codec_dtype dtype, const float *x, size_t numel, size_t last_dim,
			  size_t first, size_t n, void *scratch, size_t scratch_len, uint8_t *out,
			  size_t cap)
{
	size_t g = kw_codec_granule(comp, dtype, numel), len;

	if (!c || (unsigned)comp >= KW_COMP_COUNT || !is_run(g, numel, first, n) || (!x && n))
		return -KW_EINVAL;
	if (g >= numel)
		return kw_codec_encode(c, comp, dtype, x, numel, last_dim, scratch, scratch_len, out,
				       cap, &len);
	if (kw_codec_max_size(comp, numel, last_dim) > cap || !out)
		return -KW_ENOSPC;
	switch (comp) {
	case KW_COMP_NONE:
		memcpy(out + 4 * first, x, 4 * n);
		return 0;
	case KW_COMP_FLOAT16:
		kw_codec_float16_encode(c, x, n, out + 2 * first);
		return 0;
	case KW_COMP_BLOCKWISE_8BIT:
		kw_codec_blockwise_encode_range(c, x, numel, first, n, out);
		return 0;
	default:
		return -KW_EINVAL;
	}
}

int kw_codec_decode_range(const struct kw_codec *c, enum kw_compression comp,
			  enum kw_codec_dtype dtype, const uint8_t *buf, size_t len, size_t numel,
			  size_t last_dim, size_t first, size_t n, float *out)
{
	size_t g = kw_codec_granule(comp, dtype, numel);
	int err;

	if (!c || (!buf && len) || (!out && n) || !is_run(g, numel, first, n) ||
	    numel > KW_CODEC_SZ_LIMIT)
		return -KW_EINVAL;
	if (g >= numel)
		return kw_codec_decode(c, comp, dtype, buf, len, numel, last_dim, out);
	switch (comp) {
	case KW_COMP_NONE:
		if ((err = kw_codec_exact_len(len, numel * 4)))
			return err;
		memcpy(out, buf + 4 * first, 4 * n);
		return 0;
	case KW_COMP_FLOAT16:
		if ((err = kw_codec_exact_len(len, numel * 2)))
			return err;
		return kw_codec_float16_decode(c, buf + 2 * first, 2 * n, n, out);
	case KW_COMP_BLOCKWISE_8BIT:
		if ((err = kw_codec_blockwise_check(buf, len, numel)))
			return err;
		kw_codec_blockwise_decode_range(c, buf, numel, first, n, out);
		return 0;
	default:
		return -KW_EINVAL;
	}
}

/* 0 when no element of the n elements of `bytes` (4 or 2) bytes at p has all the exponent
 * bits exp set. Fixed steps on per-lane flags with a scalar tail, as ml/avg/allreduce.c's
 * loops: (b & exp) + lowest exponent bit carries into the top bit exactly when all are set,
 * and the unrolled flags stay in vector registers. */
#define EXP_RUN 16u
static int exp_clear(const uint8_t *p, size_t n, unsigned bytes, uint32_t exp)
{
	uint32_t acc[EXP_RUN] = { 0 }, any = 0, low = exp & -exp;
	uint16_t acc16[2 * EXP_RUN] = { 0 }, exp16 = (uint16_t)exp, low16 = (uint16_t)low;
	size_t i = 0;

	if (bytes == 4) {
		for (; i + EXP_RUN <= n; i += EXP_RUN)
			_Pragma("GCC unroll 16") for (unsigned j = 0; j < EXP_RUN; j++) {
				uint32_t b;

				memcpy(&b, p + 4 * (i + j), 4);
				acc[j] |= (b & exp) + low;
			}
		for (; i < n; i++) {
			uint32_t b;

			memcpy(&b, p + 4 * i, 4);
			any |= (b & exp) + low;
		}
		for (unsigned j = 0; j < EXP_RUN; j++)
			any |= acc[j];
		return any & 0x80000000u ? -KW_ERANGE : 0;
	}
	for (; i + 2 * EXP_RUN <= n; i += 2 * EXP_RUN)
		_Pragma("GCC unroll 32") for (unsigned j = 0; j < 2 * EXP_RUN; j++) {
			uint16_t b;

			memcpy(&b, p + 2 * (i + j), 2);
			acc16[j] |= (uint16_t)((b & exp16) + low16);
		}
	for (; i < n; i++) {
		uint16_t b;

		memcpy(&b, p + 2 * i, 2);
		any |= (uint16_t)((b & exp16) + low16);
	}
	for (unsigned j = 0; j < 2 * EXP_RUN; j++)
		any |= acc16[j];
	return any & 0x8000u ? -KW_ERANGE : 0;
}

static int layout_finite(enum kw_compression comp, enum kw_codec_dtype dtype, const uint8_t *buf,
			 size_t len, size_t numel, float *bound)
{
	int err;

	switch (comp) {
	case KW_COMP_NONE:
		if (dtype != KW_CODEC_F32)
			return -KW_ENOTSUP;
		if ((err = kw_codec_exact_len(len, numel * 4)))
			return err;
		return exp_clear(buf, numel, 4, 0x7f800000u);
	case KW_COMP_FLOAT16:
		if ((err = kw_codec_exact_len(len, numel * 2)))
			return err;
		*bound = 65504.0f;   /* the largest finite fp16 */
		return exp_clear(buf, numel, 2, 0x7c00u);
	case KW_COMP_BLOCKWISE_8BIT:
		return kw_codec_blockwise_finite(buf, len, numel, bound);
	default:
		return -KW_ENOTSUP;
	}
}

int kw_codec_finite(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const uint8_t *buf, size_t len, size_t numel, float *bound)
{
	float b = INFINITY;
	int err;

	if (!c || (!buf && len) || numel > KW_CODEC_SZ_LIMIT)
		return -KW_EINVAL;
	err = layout_finite(comp, dtype, buf, len, numel, &b);
	if (!err && bound)
		*bound = b;
	return err;
}
