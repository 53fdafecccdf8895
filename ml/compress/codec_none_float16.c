/*
 * NONE (raw float32, float16 or bfloat16 elements) and FLOAT16 (fp16 after clamping to
 * +-65504): hivemind/compression/base.py (NoCompression, with the USE_LEGACY_BFLOAT16
 * float32 payload for bfloat16) and floating.py (Float16Compression), hivemind @ 213bff98.
 * The conversions are the kernel table's; wire bytes may be unaligned.
 */
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

/* fp16 arrays to and from possibly unaligned wire bytes */
static void to16(kw_cvt_f32_to_16_fn fn, const float *x, size_t n, uint8_t *out)
{
	uint16_t tmp[512];

	if (((uintptr_t)out & 1) == 0) {
		fn((uint16_t *)(void *)out, x, n);
		return;
	}
	for (size_t i = 0; i < n; i += 512) {
		size_t m = KW_MIN(n - i, (size_t)512);
		fn(tmp, x + i, m);
		memcpy(out + 2 * i, tmp, 2 * m);
	}
}

static void from16(kw_cvt_16_to_f32_fn fn, const uint8_t *in, size_t n, float *out)
{
	uint16_t tmp[512];

	if (((uintptr_t)in & 1) == 0) {
		fn(out, (const uint16_t *)(const void *)in, n);
		return;
	}
	for (size_t i = 0; i < n; i += 512) {
		size_t m = KW_MIN(n - i, (size_t)512);
		memcpy(tmp, in + 2 * i, 2 * m);
		fn(out + i, tmp, m);
	}
}

void kw_codec_none_encode(const struct kw_codec *c, enum kw_codec_dtype dtype, const float *x,
			  size_t numel, uint8_t *out)
{
	if (dtype == KW_CODEC_F32) {
		if (numel)
			memcpy(out, x, numel * 4);
		return;
	}
	to16(dtype == KW_CODEC_F16 ? c->k->f32_to_f16 : c->k->f32_to_bf16, x, numel, out);
}

int kw_codec_none_decode(const struct kw_codec *c, enum kw_codec_dtype dtype, const uint8_t *buf,
			 size_t len, size_t numel, float *out)
{
	int err;

	if (dtype == KW_CODEC_F32) {
		if ((err = kw_codec_exact_len(len, numel * 4)))
			return err;
		if (len)
			memcpy(out, buf, len);
		return 0;
	}
	if (dtype == KW_CODEC_BF16 && numel && len == numel * 4) {
		memcpy(out, buf, len);  /* USE_LEGACY_BFLOAT16 senders: float32 payload */
		return 0;
	}
	if ((err = kw_codec_exact_len(len, numel * 2)))
		return err;
	from16(dtype == KW_CODEC_F16 ? c->k->f16_to_f32 : c->k->bf16_to_f32, buf, numel, out);
	return 0;
}

void kw_codec_float16_encode(const struct kw_codec *c, const float *x, size_t numel, uint8_t *out)
{
	to16(c->k->f32_to_f16_clamp, x, numel, out);
}

int kw_codec_float16_decode(const struct kw_codec *c, const uint8_t *buf, size_t len, size_t numel,
			    float *out)
{
	int err;

	if ((err = kw_codec_exact_len(len, numel * 2)))
		return err;
	from16(c->k->f16_to_f32, buf, numel, out);
	return 0;
}
