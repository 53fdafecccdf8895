/*
 * BLOCKWISE_8BIT wire layout (hivemind/compression/quantization.py, BlockwiseQuantization,
 * hivemind @ 213bff98, on bitsandbytes 0.41.1 quantize_blockwise / dequantize_blockwise):
 * int64 nblocks, int64 256, float32 absmax[nblocks], float32 code[256], uint8 q[numel]. The
 * per-element work is the kernel table's (bw_quant / bw_dequant); this file moves bytes.
 */
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

void kw_codec_blockwise_encode(const struct kw_codec *c, const float *x, size_t n, uint8_t *out)
{
	size_t nb = kw_bw_blocks(n), b;
	uint8_t *am = out + 16, *code = am + nb * 4, *q = code + 1024;

	kw_codec_put_le64(out, nb);
	kw_codec_put_le64(out + 8, 256);
	for (b = 0; b < 256; b++)
		kw_codec_put_f32(code + 4 * b, c->bw.code[b]);
	if (((uintptr_t)am & 3) == 0) {
		c->k->bw_quant(&c->bw, x, n, (float *)(void *)am, q);
		return;
	}
	for (b = 0; b < nb; b++) {
		size_t off = b * KW_BW_BLOCK;
		float a;

		c->k->bw_quant(&c->bw, x + off, KW_MIN((size_t)KW_BW_BLOCK, n - off), &a, q + off);
		kw_codec_put_f32(am + 4 * b, a);
	}
}

#define DQ_RUN (KW_BW_STREAM_MIN / KW_BW_BLOCK)  /* 256 blocks: 1 KiB of absmax on the stack */

int kw_codec_blockwise_decode(const struct kw_codec *c, const uint8_t *buf, size_t len, size_t n,
			    float *out)
{
	size_t nb = kw_bw_blocks(n), b, need;
	float code[256];
	const uint8_t *am, *q;

	if (len < 16)
		return -KW_EBADMSG;
	if (kw_codec_get_le64(buf) != nb || kw_codec_get_le64(buf + 8) != 256)
		return -KW_EBADMSG;
	need = 16 + nb * 4 + 1024 + n;
	if (len < need)
		return -KW_EBADMSG;
	if (len > need)
		return -KW_EMSGSIZE;
	am = buf + 16;
	for (b = 0; b < 256; b++)
		code[b] = kw_codec_get_f32(am + nb * 4 + 4 * b);
	q = am + nb * 4 + 1024;
	/* The kernels take native floats for absmax: copied from the wire a run of blocks at a
	 * time, KW_BW_STREAM_MIN elements per call so a large tensor is decoded in calls big
	 * enough for the kernels' cache-bypassing stores. */
	for (b = 0; b < nb; b += DQ_RUN) {
		float a[DQ_RUN];
		size_t off = b * KW_BW_BLOCK, k, nk = KW_MIN((size_t)DQ_RUN, nb - b);

		for (k = 0; k < nk; k++)
			a[k] = kw_codec_get_f32(am + 4 * (b + k));
		c->k->bw_dequant(code, q + off, a, KW_MIN(nk * KW_BW_BLOCK, n - off), out + off);
	}
	return 0;
}
