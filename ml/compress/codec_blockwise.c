/*
 * BLOCKWISE_8BIT wire layout (hivemind/compression/quantization.py, BlockwiseQuantization,
 * hivemind @ 213bff98, on bitsandbytes 0.41.1 quantize_blockwise / dequantize_blockwise):
 * int64 nblocks, int64 256, float32 absmax[nblocks], float32 code[256], uint8 q[numel]. The
 * per-element work is the kernel table's (bw_quant / bw_dequant); this file moves bytes.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

void kw_codec_blockwise_header(const struct kw_codec *c, size_t n, uint8_t *out)
{
	uint8_t *code = out + 16 + kw_bw_blocks(n) * 4;

	kw_codec_put_le64(out, kw_bw_blocks(n));
	kw_codec_put_le64(out + 8, 256);
	for (size_t b = 0; b < 256; b++)
		kw_codec_put_f32(code + 4 * b, c->bw.code[b]);
}

void kw_codec_blockwise_encode_range(const struct kw_codec *c, const float *x, size_t n,
				     size_t first, size_t cnt, uint8_t *out)
{
	size_t nb = kw_bw_blocks(n), b0 = first / KW_BW_BLOCK, b;
	uint8_t *am = out + 16 + 4 * b0, *q = out + 16 + nb * 4 + 1024 + first;

	if (((uintptr_t)am & 3) == 0) {
		c->k->bw_quant(&c->bw, x, cnt, (float *)(void *)am, q);
		return;
	}
	for (b = 0; b * KW_BW_BLOCK < cnt; b++) {
		size_t off = b * KW_BW_BLOCK;
		float a;

		c->k->bw_quant(&c->bw, x + off, KW_MIN((size_t)KW_BW_BLOCK, cnt - off), &a, q + off);
		kw_codec_put_f32(am + 4 * b, a);
	}
}

void kw_codec_blockwise_encode(const struct kw_codec *c, const float *x, size_t n, uint8_t *out)
{
	kw_codec_blockwise_header(c, n, out);
	kw_codec_blockwise_encode_range(c, x, n, 0, n, out);
}

int kw_codec_blockwise_check(const uint8_t *buf, size_t len, size_t n)
{
	size_t nb = kw_bw_blocks(n), need;

	if (len < 16)
		return -KW_EBADMSG;
	if (kw_codec_get_le64(buf) != nb || kw_codec_get_le64(buf + 8) != 256)
		return -KW_EBADMSG;
	need = 16 + nb * 4 + 1024 + n;
	if (len < need)
		return -KW_EBADMSG;
	if (len > need)
		return -KW_EMSGSIZE;
	return 0;
}

#define DQ_RUN (KW_BW_STREAM_MIN / KW_BW_BLOCK)  /* 256 blocks: 1 KiB of absmax on the stack */

void kw_codec_blockwise_decode_range(const struct kw_codec *c, const uint8_t *buf, size_t n,
				     size_t first, size_t cnt, float *out)
{
	size_t nb = kw_bw_blocks(n), b, b0 = first / KW_BW_BLOCK, nbr = kw_bw_blocks(cnt);
	const uint8_t *am = buf + 16, *wcode = am + nb * 4, *q = wcode + 1024 + first;
	float code_copy[256];
	const float *code = (const float *)(const void *)wcode;

	/* The kernels take native floats: the wire's own arrays when they are aligned (a part
	 * kept in the averager's slots is), else copies. */
	if ((uintptr_t)wcode & 3) {
		for (b = 0; b < 256; b++)
			code_copy[b] = kw_codec_get_f32(wcode + 4 * b);
		code = code_copy;
	} else {
		/* aligned: absmax (4 bytes per block before the code) is aligned too */
		c->k->bw_dequant(code, q, (const float *)(const void *)(am + 4 * b0), cnt, out);
		return;
	}
	/* KW_BW_STREAM_MIN elements per call so a large tensor is decoded in calls big enough
	 * for the kernels' cache-bypassing stores. */
	for (b = 0; b < nbr; b += DQ_RUN) {
		float a[DQ_RUN];
		size_t off = b * KW_BW_BLOCK, k, nk = KW_MIN((size_t)DQ_RUN, nbr - b);

		for (k = 0; k < nk; k++)
			a[k] = kw_codec_get_f32(am + 4 * (b0 + b + k));
		c->k->bw_dequant(code, q + off, a, KW_MIN(nk * KW_BW_BLOCK, cnt - off), out + off);
	}
}

int kw_codec_blockwise_decode(const struct kw_codec *c, const uint8_t *buf, size_t len, size_t n,
			    float *out)
{
	int err = kw_codec_blockwise_check(buf, len, n);

	if (!err)
		kw_codec_blockwise_decode_range(c, buf, n, 0, n, out);
	return err;
}

int kw_codec_blockwise_finite(const uint8_t *buf, size_t len, size_t n, float *bound)
{
	size_t nb = kw_bw_blocks(n), b;
	const uint8_t *am = buf + 16, *code = am + nb * 4;
	float cmax = 0.0f, amax = 0.0f;
	int err = kw_codec_blockwise_check(buf, len, n);

	if (err)
		return err;
	for (b = 0; b < 256; b++) {
		float v = fabsf(kw_codec_get_f32(code + 4 * b));

		if (!(v <= FLT_MAX))
			return -KW_ENOTSUP;   /* an entry q may never use: only decoding tells */
		cmax = v > cmax ? v : cmax;
	}
	for (b = 0; b < nb; b++) {
		float v = fabsf(kw_codec_get_f32(am + 4 * b));

		if (!(v <= FLT_MAX))
			return -KW_ERANGE;   /* every block has at least one value: it is NaN or Inf */
		amax = v > amax ? v : amax;
	}
	/* |code[q] * absmax| <= cmax * amax, rounded monotonically */
	*bound = cmax * amax;
	return *bound <= FLT_MAX ? 0 : -KW_ENOTSUP;
}
