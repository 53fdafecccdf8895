/*
 * libFuzzer target: every Tensor.buffer decoder and the Top-K decoder on raw bytes. The
 * first two input bytes pick the codec and the element count (so lengths near the exact
 * layout size are reached); the rest is the buffer. Decoders must return 0 or -KW_EBADMSG /
 * -KW_EMSGSIZE and never read past the buffer (ASan checks that).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/codec.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_codec codec;
static int codec_ready;
static float out[1 << 14];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel, numel;
	const uint8_t *buf;
	size_t len;
	uint8_t *copy;
	int rc;

	if (!codec_ready) {
		if (kw_codec_init(&codec, KW_SIMD_AUTO))
			__builtin_trap();
		codec_ready = 1;
	}
	if (size < 3)
		return 0;
	sel = data[0] % 8;
	numel = ((unsigned)data[1] << 8 | data[2]) % 9000;
	/* exact-size heap copy so ASan sees any over-read */
	len = size - 3;
	copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 3, len);
	buf = copy;
	if (sel == 7)
		rc = kw_topk_decode(buf, len, numel, out);
	else if (sel == 6)
		rc = kw_codec_decode(&codec, KW_COMP_NONE, KW_CODEC_BF16, buf, len, numel, 1, out);
	else
		rc = kw_codec_decode(&codec, (enum kw_compression)sel, KW_CODEC_F32, buf, len, numel,
				     sel == KW_COMP_MEANSTD_16BIT && numel % 3 == 0 ? 3 : 1, out);
	if (rc && rc != -KW_EBADMSG && rc != -KW_EMSGSIZE && rc != -KW_EINVAL)
		__builtin_trap();
	free(copy);
	return 0;
}
