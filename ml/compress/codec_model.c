/*
 * The encoder model proof: fits the gather-free decade model of <kw/ml/blockwise.h> to the
 * code table and proves, over every step point of the exact bitsandbytes rule, that a lane
 * the model does not flag as unsure gets the exact index. The SIMD encoders trust the model
 * only when this proof set md->ok. Runs once per table (kw_bw_table_init), not per call.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "codec_common.h"

/* key of the float after/before key k's float in magnitude order, saturating at 0 */
static uint32_t key_add(uint32_t k, int d)
{
	int64_t r = (int64_t)k + d;

	return r < 0 ? 0 : r > 0xffffffffLL ? 0xffffffffu : (uint32_t)r;
}

/* F of the model for the magnitude whose (positive) float bits are ab, with sign neg */
static float model_f(const struct kw_bw_model *md, uint32_t ab, int neg)
{
	return kw_bits_f32(kw_bw_model_bits(md, kw_bits_f32(ab | (neg ? 0x80000000u : 0))));
}

/*
 * The model's F over magnitudes [lo, hi] (float bits, both within [0, cut)) must stay in
 * [n - w, n + w): monotone F makes the two ends enough.
 */
static bool model_zone_ok(const struct kw_bw_model *md, uint32_t lo, uint32_t hi, int neg, float n)
{
	float w = (float)md->win * 0x1p-15f, f0 = model_f(md, lo, neg), f1 = model_f(md, hi, neg);
	float fmin = neg ? f1 : f0, fmax = neg ? f0 : f1;

	return fmin >= n - w && fmax < n + w;
}

/* The model's cell for magnitude bits ab (as in kw_bw_model_bits) */
static uint32_t model_cell(const struct kw_bw_model *md, uint32_t ab)
{
	uint32_t v = ((ab >> 16) * md->cell_k) >> 16;

	return v > md->cell_c ? v - md->cell_c : 0;
}

/* The proof of the model for window md->win (see kw_bw_model_init); true if it holds. */
static bool bw_model_verify(const struct kw_bw_model *md, const float code[256],
			   const uint32_t thr[256], uint32_t cut_bits)
{
	uint32_t j, c, k;

	/* cells: boundaries found by bisection (the cell is monotone in |q|) */
	for (c = 1, k = 0; c < 8; c++) {
		uint32_t lo = k, hi = cut_bits;

		while (lo < hi) {  /* smallest magnitude bits in cell >= c */
			uint32_t mid = lo + (hi - lo) / 2;
			if (model_cell(md, mid) >= c)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (lo == 0 || lo >= cut_bits)
			return false;
		/* F may jump at a cell boundary (it is monotone inside a cell): no step of the
		 * exact rule may lie within the slack, and F must name the right index on both
		 * sides; then every segment between a step zone and the boundary is bounded */
		for (int neg = 0; neg < 2; neg++) {
			float sg = neg ? -1.0f : 1.0f;
			uint32_t i0 = kw_bw_quant_search(code, sg * kw_bits_f32(lo - 1 - KW_BW_MODEL_SLACK));
			uint32_t i1 = kw_bw_quant_search(code, sg * kw_bits_f32(lo + KW_BW_MODEL_SLACK));
			float f0 = model_f(md, lo - 1, neg), f1 = model_f(md, lo, neg);

			if (i0 != i1 || !(f0 >= 256.0f + (float)i0 && f0 < 257.0f + (float)i0) ||
			    !(f1 >= 256.0f + (float)i0 && f1 < 257.0f + (float)i0))
				return false;
		}
		k = lo;
	}
	if (model_cell(md, cut_bits - 1) > 7)  /* no wrap: permutes use the low 3 bits */
		return false;
	/* ends of the domain: F at |q| = 0 must say 127 outside any window, and below the cut
	 * F must not pass the next integer (no step of the exact rule lies there) */
	{
		float w = (float)md->win * 0x1p-15f;
		float ip = (float)kw_bw_quant_search(code, kw_bits_f32(cut_bits - 1));
		float in = (float)kw_bw_quant_search(code, -kw_bits_f32(cut_bits - 1));

		for (int neg = 0; neg < 2; neg++) {
			float f = model_f(md, 0, neg);

			if (!(f >= 383.0f + w && f < 384.0f - w))
				return false;
		}
		if (!(model_f(md, cut_bits - 1, 0) < 257.0f + ip + w) ||
		    !(model_f(md, cut_bits - 1, 1) >= 256.0f + in - w))
			return false;
	}
	/* every step point: positive side thr[j] (j >= 128), negative side thr[j] (j <= 127) */
	for (j = 1; j < 256; j++) {
		uint32_t lo, hi;
		int neg = thr[j] < 0x80000000u;

		if (neg) {  /* results >= j for |q| <= |T|: the step lies after |T| */
			uint32_t tb = ~thr[j];  /* bits of T (negative) */
			uint32_t ab = tb & 0x7fffffffu;

			if (ab >= cut_bits + KW_BW_MODEL_SLACK)
				continue;
			lo = (uint32_t)key_add(ab, 1 - (int)KW_BW_MODEL_SLACK);
			hi = ab + KW_BW_MODEL_SLACK;
		} else {
			uint32_t ab = thr[j] ^ 0x80000000u;

			if (ab >= cut_bits + KW_BW_MODEL_SLACK)
				continue;
			lo = (uint32_t)key_add(ab, -(int)KW_BW_MODEL_SLACK);
			hi = ab - 1 + KW_BW_MODEL_SLACK;
		}
		if (hi >= cut_bits)
			hi = cut_bits - 1;
		if (lo > hi)
			continue;
		if (!model_zone_ok(md, lo, hi, neg, 256.0f + (float)j))
			return false;
	}
	return true;
}

/*
 * Fits the decade model of <kw/ml/blockwise.h> to bitsandbytes' signed dynamic map and
 * proves it against thr[] (thr[j] = smallest key with result >= j). Leaves md->ok = 0 for
 * any other code; the encoders then use the table alone.
 */
void kw_bw_model_init(struct kw_bw_model *md, const float code[256], const uint32_t thr[256])
{
	uint32_t cut_bits, c;

	memset(md, 0, sizeof(*md));
	/* log10(|q|) + 7.244 from the top 16 bits (exponent + 7 mantissa bits ~ log2 + 127):
	 * cell c covers |q| in about [0.57 * 10^(c-7), 0.57 * 10^(c-6)), which holds exactly one
	 * decade boundary step of this map (at 1.0 .. 2.8 * 10^(c-7)) */
	md->cell_k = 154;  /* log10(2) / 128 * 2^16 */
	md->cell_c = 31;
	/* k = 2^c * (|q| / (1.8 * 10^(c-7)) - 5/9): decade c-1's code spacing, origin at the
	 * boundary step (ideal values; the proof below checks the real ones) */
	md->beta = (float)(-5.0 / 9.0);
	for (c = 1; c < 8; c++)
		md->alpha[c] = (float)(1.0 / (1.8 * pow(10.0, (double)c - 7.0)));
	/* cell 0: only the step from code 0 to the first positive code (thr[128]): k = 1 there */
	if (thr[128] < 0x80000000u)
		return;
	md->alpha[0] = (float)((14.0 / 9.0) / (double)kw_bits_f32(thr[128] & 0x7fffffffu));
	md->cut = 0.9859f;
	cut_bits = kw_f32_bits(md->cut);
	/* the narrowest window that passes: fewer lanes take the exact path */
	for (md->win = 1; md->win <= 256; md->win *= 2) {
		if (bw_model_verify(md, code, thr, cut_bits)) {
			md->ok = 1;
			return;
		}
	}
	md->win = 0;
}
