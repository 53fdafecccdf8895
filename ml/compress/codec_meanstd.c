/*
 * MEANSTD_16BIT: per row of the last axis, (x - mean) / std as fp16, then the float32 means
 * and stds (hivemind/compression/floating.py, ScaledFloat16Compression, hivemind @ 213bff98).
 * Sums are taken in double so a long row's mean does not drift; std is torch's
 * norm / sqrt(d) clamped below at float32 eps.
 */
#include <math.h>

#include "codec_common.h"

void kw_codec_meanstd_encode(const float *x, size_t numel, size_t d, uint8_t *out)
{
	size_t rows = numel / d, r, i;
	uint8_t *means = out + numel * 2, *stds = means + rows * 4;
	const float sqrt_d = sqrtf((float)d);

	for (r = 0; r < rows; r++) {
		const float *row = x + r * d;
		double s = 0.0, ss = 0.0;
		float mean, stdv;

		for (i = 0; i < d; i++)
			s += row[i];
		mean = (float)(s / (double)d);
		for (i = 0; i < d; i++) {
			float cdev = row[i] - mean;
			ss += (double)cdev * cdev;
		}
		stdv = (float)sqrt(ss) / sqrt_d;  /* torch: norm / math.sqrt(d) */
		if (!(stdv >= 1.1920929e-07f))
			stdv = stdv != stdv ? stdv : 1.1920929e-07f;  /* clamp_min(eps); NaN stays */
		for (i = 0; i < d; i++) {
			float qv = (row[i] - mean) / stdv;
			uint16_t h;

			if (qv > 65504.0f)
				qv = 65504.0f;
			else if (qv < -65504.0f)
				qv = -65504.0f;
			h = kw_f32_to_fp16(qv);
			out[(r * d + i) * 2] = (uint8_t)h;
			out[(r * d + i) * 2 + 1] = (uint8_t)(h >> 8);
		}
		kw_codec_put_f32(means + r * 4, mean);
		kw_codec_put_f32(stds + r * 4, stdv);
	}
}

void kw_codec_meanstd_decode(const uint8_t *buf, size_t numel, size_t d, float *out)
{
	size_t rows = numel / d, r, i;
	const uint8_t *means = buf + numel * 2, *stds = means + rows * 4;

	for (r = 0; r < rows; r++) {
		float mean = kw_codec_get_f32(means + r * 4), stdv = kw_codec_get_f32(stds + r * 4);

		for (i = 0; i < d; i++) {
			size_t e = r * d + i;
			float h = kw_fp16_to_f32((uint16_t)(buf[2 * e] | (buf[2 * e + 1] << 8)));
			out[e] = h * stdv + mean;
		}
	}
}
