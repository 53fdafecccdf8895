/*
 * libFuzzer target: every Tensor.buffer decoder and the Top-K decoder on raw bytes. The
 * first two input bytes pick the codec and the element count (so lengths near the exact
 * layout size are reached); the rest is the buffer. Decoders must return 0 or -KW_EBADMSG /
 * -KW_EMSGSIZE and never read past the buffer (ASan checks that).
 * Selectors 8 and 9 are differential: the input becomes floats (raw bit patterns, or 16-bit
 * values scaled by a power of two so the SIMD decade model is reached), and the blockwise
 * encoder of the SIMD variant must give the reference's bytes exactly. Every decode is also
 * differential: whatever the SIMD variant decodes, the reference decodes to the same bits
 * (NaN payloads aside, see same_floats).
 */
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/blockwise.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_codec codec;
static int codec_ready;
static float out[1 << 14], out_ref[1 << 14];
static struct kw_codec codec_ref;
static float xs[1 << 14], am_ref[8], am_v[8];
static uint8_t q_ref[1 << 14], q_v[1 << 14];

/*
 * Bit-identical, except that any NaN equals any NaN: when both operands of a multiply are NaN
 * (a NaN absmax or scale from the wire and a NaN code entry), IEEE 754 leaves open whose
 * payload the result carries, and compilers may swap the operands of a scalar multiply.
 */
static int same_floats(const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], sizeof(float)) && !(isnan(a[i]) && isnan(b[i])))
			return 0;
	return 1;
}

static void blockwise_differential(const uint8_t *buf, size_t len, int scaled)
{
	size_t n = 0, i;

	if (scaled && len >= 1) {
		int e = (int)(buf[0] % 80) - 40;

		for (i = 1; i + 2 <= len && n < 9000; i += 2)
			xs[n++] = ldexpf((float)(int16_t)(buf[i] | buf[i + 1] << 8), e - 15);
	} else {
		for (i = 0; i + 4 <= len && n < 9000; i += 4)
			memcpy(&xs[n++], buf + i, 4);
	}
	kw_bw_quant_ref(&codec_ref.bw, xs, n, am_ref, q_ref);
	codec.k->bw_quant(&codec.bw, xs, n, am_v, q_v);
	if (memcmp(q_ref, q_v, n) ||
	    memcmp(am_ref, am_v, sizeof(float) * ((n + KW_BW_BLOCK - 1) / KW_BW_BLOCK)))
		__builtin_trap();
}

/*
 * The all-reduce's fused paths on the same input (ml/compress/codec_range.c): decoding run by
 * run gives the whole decode's result and error, and the layout-level finite test agrees
 * with the decoded values whenever it answers.
 */
static void runs_agree(const uint8_t *buf, size_t len, unsigned numel, enum kw_compression comp,
		       int whole_rc)
{
	size_t g = kw_codec_granule(comp, KW_CODEC_F32, numel), run = g >= numel ? numel : 3 * g;
	float bound = 0;
	int rc = 0, fin;

	if (comp == KW_COMP_MEANSTD_16BIT)
		return;   /* its last_dim varies above; one run is kw_codec_decode itself */
	for (size_t off = 0; off < numel && !rc; off += run)
		rc = kw_codec_decode_range(&codec, comp, KW_CODEC_F32, buf, len, numel, numel, off,
					   run < numel - off ? run : numel - off, out_ref + off);
	if (numel && rc != whole_rc)
		__builtin_trap();
	if (numel && !rc && !same_floats(out, out_ref, numel))
		__builtin_trap();
	fin = kw_codec_finite(&codec, comp, KW_CODEC_F32, buf, len, numel, &bound);
	if (fin == -KW_ENOTSUP)
		return;
	if ((fin == 0 || fin == -KW_ERANGE) != (whole_rc == 0))
		__builtin_trap();
	for (unsigned i = 0; fin == 0 && i < numel; i++)
		if (!(fabsf(out[i]) <= bound))
			__builtin_trap();
	if (fin == -KW_ERANGE) {
		unsigned i = 0;

		while (i < numel && isfinite(out[i]))
			i++;
		if (i == numel)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel, numel;
	const uint8_t *buf;
	size_t len;
	uint8_t *copy;
	int rc;

	if (!codec_ready) {
		if (kw_codec_init(&codec, KW_SIMD_AUTO) || kw_codec_init(&codec_ref, KW_SIMD_REF))
			__builtin_trap();
		codec_ready = 1;
	}
	if (size < 3)
		return 0;
	sel = data[0] % 10;
	numel = ((unsigned)data[1] << 8 | data[2]) % 9000;
	/* exact-size heap copy so ASan sees any over-read */
	len = size - 3;
	copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 3, len);
	buf = copy;
	if (sel >= 8) {
		blockwise_differential(buf, len, sel == 9);
		rc = 0;
	} else if (sel == 7)
		rc = kw_topk_decode(buf, len, numel, out);
	else if (sel == 6)
		rc = kw_codec_decode(&codec, KW_COMP_NONE, KW_CODEC_BF16, buf, len, numel, 1, out);
	else
		rc = kw_codec_decode(&codec, (enum kw_compression)sel, KW_CODEC_F32, buf, len, numel,
				     sel == KW_COMP_MEANSTD_16BIT && numel % 3 == 0 ? 3 : 1, out);
	if (rc && rc != -KW_EBADMSG && rc != -KW_EMSGSIZE && rc != -KW_EINVAL)
		__builtin_trap();
	if (sel <= 6) {
		int rr = sel == 6 ?
			kw_codec_decode(&codec_ref, KW_COMP_NONE, KW_CODEC_BF16, buf, len, numel, 1, out_ref) :
			kw_codec_decode(&codec_ref, (enum kw_compression)sel, KW_CODEC_F32, buf, len, numel,
					sel == KW_COMP_MEANSTD_16BIT && numel % 3 == 0 ? 3 : 1, out_ref);

		if (rr != rc || (rc == 0 && !same_floats(out, out_ref, numel)))
			__builtin_trap();
	}
	if (sel <= 5)
		runs_agree(buf, len, numel, (enum kw_compression)sel, rc);
	free(copy);
	return 0;
}
