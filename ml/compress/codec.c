/*
 * The codec API of <kw/ml/codec.h>: set-up (kernel table and blockwise lookup table), sizes,
 * argument checks, and the dispatch to one file per codec family:
 *   codec_none_float16.c  NONE, FLOAT16            codec_meanstd.c    MEANSTD_16BIT
 *   codec_codebook.c      UNIFORM_8BIT, QUANTILE_8BIT
 *   codec_blockwise.c     BLOCKWISE_8BIT (codec_table.c and codec_model.c build its tables)
 * Top-K is in topk.c. The hot loops are the kernel table's (<kw/ml/kernels.h>).
 */
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

static const char *const dtype_names[KW_CODEC_DTYPE_COUNT] = { "float32", "float16", "bfloat16" };

const char *kw_codec_dtype_name(enum kw_codec_dtype d)
{
	return (unsigned)d < KW_CODEC_DTYPE_COUNT ? dtype_names[d] : "?";
}

int kw_codec_dtype_parse(const char *name, size_t len, enum kw_codec_dtype *out)
{
	for (unsigned i = 0; i < KW_CODEC_DTYPE_COUNT; i++) {
		if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], name, len) == 0) {
			*out = (enum kw_codec_dtype)i;
			return 0;
		}
	}
	return -KW_ENOTSUP;
}

int kw_codec_init(struct kw_codec *c, enum kw_simd v)
{
	if (!c || (unsigned)v >= KW_SIMD_COUNT)
		return -KW_EINVAL;
	c->k = kw_kernels_get(v);
	if (!c->k)
		return -KW_ENOTSUP;
	return kw_bw_table_init(&c->bw, kw_bw_default_code);
}

size_t kw_codec_max_size(enum kw_compression comp, size_t numel, size_t last_dim)
{
	if (numel > KW_CODEC_SZ_LIMIT)
		return 0;
	switch (comp) {
	case KW_COMP_NONE: return numel * 4;
	case KW_COMP_FLOAT16: return numel * 2;
	case KW_COMP_MEANSTD_16BIT:
		if (numel == 0)
			return 0;
		if (last_dim == 0 || numel % last_dim)
			return 0;
		return numel * 2 + 8 * (numel / last_dim);
	case KW_COMP_UNIFORM_8BIT:
	case KW_COMP_QUANTILE_8BIT: return 8 + 256 * 4 + numel;
	case KW_COMP_BLOCKWISE_8BIT: return 16 + kw_bw_blocks(numel) * 4 + 256 * 4 + numel;
	default: return 0;
	}
}

size_t kw_codec_scratch_size(enum kw_compression comp, size_t numel)
{
	size_t cs, nch;

	if (comp != KW_COMP_QUANTILE_8BIT || numel == 0 || numel > KW_CODEC_SZ_LIMIT)
		return 0;
	cs = kw_qq_chunk_size(numel);
	nch = (numel - 1) / cs + 1;
	return (KW_MIN(cs, numel) + nch * KW_QQ_N) * sizeof(float);
}

int kw_codec_encode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const float *x, size_t numel, size_t last_dim, void *scratch, size_t scratch_len,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	size_t need;

	if (!c || (!x && numel) || !out_len || (unsigned)dtype >= KW_CODEC_DTYPE_COUNT ||
	    (unsigned)comp >= KW_COMP_COUNT || numel > KW_CODEC_SZ_LIMIT)
		return -KW_EINVAL;
	if (comp == KW_COMP_MEANSTD_16BIT && numel && (last_dim == 0 || numel % last_dim))
		return -KW_EINVAL;
	need = kw_codec_max_size(comp, numel, last_dim);
	if (comp == KW_COMP_NONE && dtype != KW_CODEC_F32)
		need = numel * 2;
	if (need > cap || (need && !out))
		return -KW_ENOSPC;
	if (kw_codec_scratch_size(comp, numel) &&
	    (!scratch || kw_codec_scratch_size(comp, numel) > scratch_len))
		return -KW_ENOSPC;
	switch (comp) {
	case KW_COMP_NONE:
		kw_codec_none_encode(c, dtype, x, numel, out);
		break;
	case KW_COMP_FLOAT16:
		kw_codec_float16_encode(c, x, numel, out);
		break;
	case KW_COMP_MEANSTD_16BIT:
		if (numel)
			kw_codec_meanstd_encode(x, numel, last_dim, out);
		break;
	case KW_COMP_UNIFORM_8BIT:
		kw_codec_uniform_encode(x, numel, out);
		break;
	case KW_COMP_QUANTILE_8BIT:
		kw_codec_quantile_encode(x, numel, scratch, out);
		break;
	case KW_COMP_BLOCKWISE_8BIT:
		kw_codec_blockwise_encode(c, x, numel, out);
		break;
	default:
		return -KW_EINVAL;
	}
	*out_len = need;
	return 0;
}

int kw_codec_decode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const uint8_t *buf, size_t len, size_t numel, size_t last_dim, float *out)
{
	int err;

	if (!c || (!buf && len) || (!out && numel) || (unsigned)dtype >= KW_CODEC_DTYPE_COUNT ||
	    numel > KW_CODEC_SZ_LIMIT)
		return -KW_EINVAL;
	switch (comp) {
	case KW_COMP_NONE:
		return kw_codec_none_decode(c, dtype, buf, len, numel, out);
	case KW_COMP_FLOAT16:
		return kw_codec_float16_decode(c, buf, len, numel, out);
	case KW_COMP_MEANSTD_16BIT:
		if (numel && (last_dim == 0 || numel % last_dim))
			return -KW_EINVAL;
		if ((err = kw_codec_exact_len(len, numel ? numel * 2 + 8 * (numel / last_dim) : 0)))
			return err;
		if (numel)
			kw_codec_meanstd_decode(buf, numel, last_dim, out);
		return 0;
	case KW_COMP_UNIFORM_8BIT:
	case KW_COMP_QUANTILE_8BIT:
		return kw_codec_codebook_decode(buf, len, numel, out);
	case KW_COMP_BLOCKWISE_8BIT:
		return kw_codec_blockwise_decode(c, buf, len, numel, out);
	default:
		return -KW_EBADMSG;  /* unknown compression number from the wire */
	}
}
