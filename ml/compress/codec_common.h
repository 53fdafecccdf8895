/*
 * Private to ml/compress/: what the codec files share (wire helpers, size rules, one entry
 * per codec family). The public API is <kw/ml/codec.h>.
 * Hosts are little-endian (checked here), so float/fp16 arrays are the wire bytes.
 */
#ifndef KW_ML_COMPRESS_CODEC_PRIV_H
#define KW_ML_COMPRESS_CODEC_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Tensor.buffer layouts are little-endian; a big-endian port must byte-swap here"
#endif

#define KW_CODEC_SZ_LIMIT ((size_t)1 << 40)  /* refuse sizes whose arithmetic could overflow */
#define KW_QQ_MIN_CHUNK 100000u  /* hivemind quantile_qq_approximation min_chunk_size */
#define KW_QQ_N 257u             /* n_bins + 1 quantiles */

static inline size_t kw_bw_blocks(size_t numel) { return (numel + KW_BW_BLOCK - 1) / KW_BW_BLOCK; }

/* hivemind get_chunk_size(): spread the leftover over the chunks. */
static inline size_t kw_qq_chunk_size(size_t n)
{
	size_t left, nch;

	if (KW_QQ_MIN_CHUNK >= n)
		return KW_QQ_MIN_CHUNK;
	left = n % KW_QQ_MIN_CHUNK;
	nch = n / KW_QQ_MIN_CHUNK;
	/* Python: (left - 1) // nch + 1 with floor division; left == 0 gives 0. */
	return KW_QQ_MIN_CHUNK + (left == 0 ? 0 : (left - 1) / nch + 1);
}

static inline float kw_codec_get_f32(const uint8_t *p) { return kw_bits_f32(kw_get_le32(p)); }
static inline void kw_codec_put_f32(uint8_t *p, float v) { kw_put_le32(p, kw_f32_bits(v)); }
static inline void kw_codec_put_le64(uint8_t *p, uint64_t v)
{
	kw_put_le32(p, (uint32_t)v);
	kw_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t kw_codec_get_le64(const uint8_t *p)
{
	return kw_get_le32(p) | ((uint64_t)kw_get_le32(p + 4) << 32);
}

/* 0 when a decoder's input is exactly need bytes, else the error <kw/ml/codec.h> names. */
static inline int kw_codec_exact_len(size_t len, size_t need)
{
	return len < need ? -KW_EBADMSG : len > need ? -KW_EMSGSIZE : 0;
}

/* The float whose monotone key (kw_bw_key) is key. */
static inline float kw_bw_key_to_float(uint32_t key)
{
	return kw_bits_f32((key & 0x80000000u) ? (key ^ 0x80000000u) : ~key);
}

/* Encoders write exactly kw_codec_max_size() bytes (NONE: numel * element size) into out;
 * decoders take buffers whose length they check. Arguments are validated by codec.c. */

/* codec_none_float16.c: NONE (raw fp32 / fp16 / bf16) and FLOAT16 (clamped fp16) */
void kw_codec_none_encode(const struct kw_codec *c, enum kw_codec_dtype dtype, const float *x,
			  size_t numel, uint8_t *out);
int kw_codec_none_decode(const struct kw_codec *c, enum kw_codec_dtype dtype, const uint8_t *buf,
			 size_t len, size_t numel, float *out);
void kw_codec_float16_encode(const struct kw_codec *c, const float *x, size_t numel, uint8_t *out);
int kw_codec_float16_decode(const struct kw_codec *c, const uint8_t *buf, size_t len, size_t numel,
			    float *out);
/* codec_meanstd.c: MEANSTD_16BIT, rows of last_dim elements (numel > 0, last_dim | numel) */
void kw_codec_meanstd_encode(const float *x, size_t numel, size_t last_dim, uint8_t *out);
void kw_codec_meanstd_decode(const uint8_t *buf, size_t numel, size_t last_dim, float *out);
/* codec_codebook.c: UNIFORM_8BIT and QUANTILE_8BIT (codebook + uint8 indices) */
void kw_codec_uniform_encode(const float *x, size_t numel, uint8_t *out);
void kw_codec_quantile_encode(const float *x, size_t numel, float *scratch, uint8_t *out);
int kw_codec_codebook_decode(const uint8_t *buf, size_t len, size_t numel, float *out);
/* codec_blockwise.c: BLOCKWISE_8BIT wire layout around the kernels */
void kw_codec_blockwise_encode(const struct kw_codec *c, const float *x, size_t numel,
			       uint8_t *out);
int kw_codec_blockwise_decode(const struct kw_codec *c, const uint8_t *buf, size_t len,
			      size_t numel, float *out);
/* codec_blockwise.c, runs of whole blocks for codec_range.c: header (nblocks, 256, code);
 * elements [first, first + cnt) of an n-element tensor (first a multiple of KW_BW_BLOCK);
 * the length / header check of a decode, then the decode of a checked buffer; the finite
 * test of kw_codec_finite(). */
void kw_codec_blockwise_header(const struct kw_codec *c, size_t n, uint8_t *out);
void kw_codec_blockwise_encode_range(const struct kw_codec *c, const float *x, size_t n,
				     size_t first, size_t cnt, uint8_t *out);
int kw_codec_blockwise_check(const uint8_t *buf, size_t len, size_t n);
void kw_codec_blockwise_decode_range(const struct kw_codec *c, const uint8_t *buf, size_t n,
				     size_t first, size_t cnt, float *out);
int kw_codec_blockwise_finite(const uint8_t *buf, size_t len, size_t n, float *bound);
/* codec_model.c: fits and proves the gather-free model of <kw/ml/blockwise.h> for code,
 * given thr[j] = smallest key with result >= j; leaves md->ok = 0 when it cannot. */
void kw_bw_model_init(struct kw_bw_model *md, const float code[256], const uint32_t thr[256]);

#endif /* KW_ML_COMPRESS_CODEC_PRIV_H */
