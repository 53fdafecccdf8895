/*
 * Hivemind Tensor.buffer codecs (spec section 6) and Top-K with error feedback. Layouts and
 * error rules are in <kw/ml/codec.h>; the hot loops live in codec_ref.c and arch/.
 * Hosts are little-endian (checked below), so float/fp16 arrays are the wire bytes.
 */
#include <math.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Tensor.buffer layouts are little-endian; a big-endian port must byte-swap here"
#endif

/* bitsandbytes create_dynamic_map(signed=True) with code[0] forced to -1.0 (spec 11.O). */
const float kw_bw_default_code[256] = {
	-0x1.0000000000000p+0f, -0x1.f533340000000p-1f, -0x1.ee00000000000p-1f, -0x1.e6cccc0000000p-1f,
	-0x1.df999a0000000p-1f, -0x1.d866660000000p-1f, -0x1.d133340000000p-1f, -0x1.ca00000000000p-1f,
	-0x1.c2cccc0000000p-1f, -0x1.bb999a0000000p-1f, -0x1.b466660000000p-1f, -0x1.ad33340000000p-1f,
	-0x1.a600000000000p-1f, -0x1.9ecccc0000000p-1f, -0x1.97999a0000000p-1f, -0x1.9066660000000p-1f,
	-0x1.8933340000000p-1f, -0x1.8200000000000p-1f, -0x1.7acccc0000000p-1f, -0x1.73999a0000000p-1f,
	-0x1.6c66680000000p-1f, -0x1.6533340000000p-1f, -0x1.5e00000000000p-1f, -0x1.56cccc0000000p-1f,
	-0x1.4f999a0000000p-1f, -0x1.4866680000000p-1f, -0x1.4133340000000p-1f, -0x1.3a00000000000p-1f,
	-0x1.32cccc0000000p-1f, -0x1.2b999a0000000p-1f, -0x1.2466680000000p-1f, -0x1.1d33340000000p-1f,
	-0x1.1600000000000p-1f, -0x1.0ecccc0000000p-1f, -0x1.0799980000000p-1f, -0x1.0066660000000p-1f,
	-0x1.f266640000000p-2f, -0x1.e400000000000p-2f, -0x1.d599980000000p-2f, -0x1.c733340000000p-2f,
	-0x1.b8cccc0000000p-2f, -0x1.aa66660000000p-2f, -0x1.9c00000000000p-2f, -0x1.8d99980000000p-2f,
	-0x1.7f33340000000p-2f, -0x1.70cccc0000000p-2f, -0x1.6266660000000p-2f, -0x1.5400000000000p-2f,
	-0x1.4599980000000p-2f, -0x1.3733340000000p-2f, -0x1.28cccc0000000p-2f, -0x1.1a66680000000p-2f,
	-0x1.0c00000000000p-2f, -0x1.fb33320000000p-3f, -0x1.de66660000000p-3f, -0x1.c1999a0000000p-3f,
	-0x1.a4cccc0000000p-3f, -0x1.8800000000000p-3f, -0x1.6b33340000000p-3f, -0x1.4e66660000000p-3f,
	-0x1.31999a0000000p-3f, -0x1.14cccc0000000p-3f, -0x1.f000000000000p-4f, -0x1.b666680000000p-4f,
	-0x1.93d70a0000000p-4f, -0x1.8851ee0000000p-4f, -0x1.7cccce0000000p-4f, -0x1.7147ae0000000p-4f,
	-0x1.65c2900000000p-4f, -0x1.5a3d700000000p-4f, -0x1.4eb8540000000p-4f, -0x1.4333340000000p-4f,
	-0x1.37ae140000000p-4f, -0x1.2c28f60000000p-4f, -0x1.20a3d60000000p-4f, -0x1.151eba0000000p-4f,
	-0x1.09999a0000000p-4f, -0x1.fc28f60000000p-5f, -0x1.e51eba0000000p-5f, -0x1.ce147a0000000p-5f,
	-0x1.b70a3e0000000p-5f, -0x1.a000000000000p-5f, -0x1.88f5c20000000p-5f, -0x1.71eb860000000p-5f,
	-0x1.5ae1460000000p-5f, -0x1.43d70a0000000p-5f, -0x1.2cccce0000000p-5f, -0x1.15c2900000000p-5f,
	-0x1.fd70a40000000p-6f, -0x1.cf5c2a0000000p-6f, -0x1.a147ae0000000p-6f, -0x1.7333340000000p-6f,
	-0x1.451eba0000000p-6f, -0x1.170a3e0000000p-6f, -0x1.d1eb860000000p-7f, -0x1.75c2900000000p-7f,
	-0x1.3e76c80000000p-7f, -0x1.2c08300000000p-7f, -0x1.19999a0000000p-7f, -0x1.072b020000000p-7f,
	-0x1.e978d40000000p-8f, -0x1.c49ba60000000p-8f, -0x1.9fbe760000000p-8f, -0x1.7ae1480000000p-8f,
	-0x1.56041a0000000p-8f, -0x1.3126e80000000p-8f, -0x1.0c49ba0000000p-8f, -0x1.ced9140000000p-9f,
	-0x1.851eb80000000p-9f, -0x1.3b645a0000000p-9f, -0x1.e353f80000000p-10f, -0x1.4fdf3a0000000p-10f,
	-0x1.eecbfe0000000p-11f, -0x1.b3d07c0000000p-11f, -0x1.78d5000000000p-11f, -0x1.3dd9820000000p-11f,
	-0x1.02de020000000p-11f, -0x1.8fc5060000000p-12f, -0x1.19ce0a0000000p-12f, -0x1.47ae160000000p-13f,
	-0x1.743e960000000p-14f, -0x1.15df660000000p-14f, -0x1.6f00680000000p-15f, -0x1.64840c0000000p-16f,
	-0x1.040bfe0000000p-17f, -0x1.b435280000000p-19f, -0x1.27476e0000000p-21f, 0x0.0p+0f,
	0x1.27476e0000000p-21f, 0x1.b435280000000p-19f, 0x1.040bfe0000000p-17f, 0x1.64840c0000000p-16f,
	0x1.6f00680000000p-15f, 0x1.15df660000000p-14f, 0x1.743e960000000p-14f, 0x1.47ae160000000p-13f,
	0x1.19ce0a0000000p-12f, 0x1.8fc5060000000p-12f, 0x1.02de020000000p-11f, 0x1.3dd9820000000p-11f,
	0x1.78d5000000000p-11f, 0x1.b3d07c0000000p-11f, 0x1.eecbfe0000000p-11f, 0x1.4fdf3a0000000p-10f,
	0x1.e353f80000000p-10f, 0x1.3b645a0000000p-9f, 0x1.851eb80000000p-9f, 0x1.ced9140000000p-9f,
	0x1.0c49ba0000000p-8f, 0x1.3126e80000000p-8f, 0x1.56041a0000000p-8f, 0x1.7ae1480000000p-8f,
	0x1.9fbe760000000p-8f, 0x1.c49ba60000000p-8f, 0x1.e978d40000000p-8f, 0x1.072b020000000p-7f,
	0x1.19999a0000000p-7f, 0x1.2c08300000000p-7f, 0x1.3e76c80000000p-7f, 0x1.75c2900000000p-7f,
	0x1.d1eb860000000p-7f, 0x1.170a3e0000000p-6f, 0x1.451eba0000000p-6f, 0x1.7333340000000p-6f,
	0x1.a147ae0000000p-6f, 0x1.cf5c2a0000000p-6f, 0x1.fd70a40000000p-6f, 0x1.15c2900000000p-5f,
	0x1.2cccce0000000p-5f, 0x1.43d70a0000000p-5f, 0x1.5ae1460000000p-5f, 0x1.71eb860000000p-5f,
	0x1.88f5c20000000p-5f, 0x1.a000000000000p-5f, 0x1.b70a3e0000000p-5f, 0x1.ce147a0000000p-5f,
	0x1.e51eba0000000p-5f, 0x1.fc28f60000000p-5f, 0x1.09999a0000000p-4f, 0x1.151eba0000000p-4f,
	0x1.20a3d60000000p-4f, 0x1.2c28f60000000p-4f, 0x1.37ae140000000p-4f, 0x1.4333340000000p-4f,
	0x1.4eb8540000000p-4f, 0x1.5a3d700000000p-4f, 0x1.65c2900000000p-4f, 0x1.7147ae0000000p-4f,
	0x1.7cccce0000000p-4f, 0x1.8851ee0000000p-4f, 0x1.93d70a0000000p-4f, 0x1.b666680000000p-4f,
	0x1.f000000000000p-4f, 0x1.14cccc0000000p-3f, 0x1.31999a0000000p-3f, 0x1.4e66660000000p-3f,
	0x1.6b33340000000p-3f, 0x1.8800000000000p-3f, 0x1.a4cccc0000000p-3f, 0x1.c1999a0000000p-3f,
	0x1.de66660000000p-3f, 0x1.fb33320000000p-3f, 0x1.0c00000000000p-2f, 0x1.1a66680000000p-2f,
	0x1.28cccc0000000p-2f, 0x1.3733340000000p-2f, 0x1.4599980000000p-2f, 0x1.5400000000000p-2f,
	0x1.6266660000000p-2f, 0x1.70cccc0000000p-2f, 0x1.7f33340000000p-2f, 0x1.8d99980000000p-2f,
	0x1.9c00000000000p-2f, 0x1.aa66660000000p-2f, 0x1.b8cccc0000000p-2f, 0x1.c733340000000p-2f,
	0x1.d599980000000p-2f, 0x1.e400000000000p-2f, 0x1.f266640000000p-2f, 0x1.0066660000000p-1f,
	0x1.0799980000000p-1f, 0x1.0ecccc0000000p-1f, 0x1.1600000000000p-1f, 0x1.1d33340000000p-1f,
	0x1.2466680000000p-1f, 0x1.2b999a0000000p-1f, 0x1.32cccc0000000p-1f, 0x1.3a00000000000p-1f,
	0x1.4133340000000p-1f, 0x1.4866680000000p-1f, 0x1.4f999a0000000p-1f, 0x1.56cccc0000000p-1f,
	0x1.5e00000000000p-1f, 0x1.6533340000000p-1f, 0x1.6c66680000000p-1f, 0x1.73999a0000000p-1f,
	0x1.7acccc0000000p-1f, 0x1.8200000000000p-1f, 0x1.8933340000000p-1f, 0x1.9066660000000p-1f,
	0x1.97999a0000000p-1f, 0x1.9ecccc0000000p-1f, 0x1.a600000000000p-1f, 0x1.ad33340000000p-1f,
	0x1.b466660000000p-1f, 0x1.bb999a0000000p-1f, 0x1.c2cccc0000000p-1f, 0x1.ca00000000000p-1f,
	0x1.d133340000000p-1f, 0x1.d866660000000p-1f, 0x1.df999a0000000p-1f, 0x1.e6cccc0000000p-1f,
	0x1.ee00000000000p-1f, 0x1.f533340000000p-1f, 0x1.fc66660000000p-1f, 0x1.0000000000000p+0f,
};

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

static float key_to_float(uint32_t key)
{
	return kw_bits_f32((key & 0x80000000u) ? (key ^ 0x80000000u) : ~key);
}

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
static int model_zone_ok(const struct kw_bw_model *md, uint32_t lo, uint32_t hi, int neg, float n)
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

/* The proof of the model for window md->win (see bw_model_init); 1 if it holds. */
static int bw_model_verify(const struct kw_bw_model *md, const float code[256],
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
			return 0;
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
				return 0;
		}
		k = lo;
	}
	if (model_cell(md, cut_bits - 1) > 7)  /* no wrap: permutes use the low 3 bits */
		return 0;
	/* ends of the domain: F at |q| = 0 must say 127 outside any window, and below the cut
	 * F must not pass the next integer (no step of the exact rule lies there) */
	{
		float w = (float)md->win * 0x1p-15f;
		float ip = (float)kw_bw_quant_search(code, kw_bits_f32(cut_bits - 1));
		float in = (float)kw_bw_quant_search(code, -kw_bits_f32(cut_bits - 1));

		for (int neg = 0; neg < 2; neg++) {
			float f = model_f(md, 0, neg);

			if (!(f >= 383.0f + w && f < 384.0f - w))
				return 0;
		}
		if (!(model_f(md, cut_bits - 1, 0) < 257.0f + ip + w) ||
		    !(model_f(md, cut_bits - 1, 1) >= 256.0f + in - w))
			return 0;
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
			return 0;
	}
	return 1;
}

/*
 * Fits the decade model of <kw/ml/codec_kernels.h> to bitsandbytes' signed dynamic map and
 * proves it against thr[] (thr[j] = smallest key with result >= j). Leaves md->ok = 0 for
 * any other code; the encoders then use the table alone.
 */
static void bw_model_init(struct kw_bw_model *md, const float code[256], const uint32_t thr[256])
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

int kw_bw_table_init(struct kw_bw_table *t, const float code[256])
{
	uint32_t thr[257], k, j, best = 0;

	if (!t || !code)
		return -KW_EINVAL;
	for (k = 0; k < 256; k++) {
		if (!isfinite(code[k]) || (k > 0 && code[k] < code[k - 1]))
			return -KW_EINVAL;
		t->code[k] = code[k];
		if (fabsf(code[k]) < fabsf(code[best]))
			best = k;
	}
	t->zero_index = (uint8_t)best;
	/* thr[j] = smallest key whose result is >= j, searched over -Inf..+Inf where the result
	 * is monotone (NaN is handled before any lookup: it gives 0 like the search does). */
	thr[0] = 0x007fffffu;  /* key of -Inf */
	for (j = 1; j < 256; j++) {
		uint32_t lo = thr[j - 1], hi = 0xff800001u;  /* one past the key of +Inf */

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (kw_bw_quant_search(code, key_to_float(mid)) >= j)
				hi = mid;
			else
				lo = mid + 1;
		}
		thr[j] = lo;
	}
	t->fast_ok = 1;
	for (k = 0, j = 1; k < KW_BW_LUT_SIZE; k++) {
		uint32_t base, low = 0x10000u;

		/* result at the bucket's lowest key: thresholds at or below it */
		while (j < 256 && thr[j] <= (k << 16))
			j++;
		base = j - 1;
		if (j < 256 && (thr[j] >> 16) == k) {
			low = thr[j] & 0xffffu;
			if (j + 1 < 256 && (thr[j + 1] >> 16) == k)
				t->fast_ok = 0;  /* two steps in one bucket: use the search */
		}
		t->fast[k] = (base << 17) | low;
	}
	bw_model_init(&t->model, code, thr);
	return 0;
}

int kw_codec_init(struct kw_codec *c, enum kw_simd v)
{
	int err;

	if (!c)
		return -KW_EINVAL;
	err = kw_convert_ops_init(&c->cvt, v);
	if (err)
		return err;
	c->bw_quant = kw_bw_quant_ref;
	c->bw_dequant = kw_bw_dequant_ref;
#if defined(CONFIG_KW_X86_AVX2)
	if (c->cvt.variant == KW_SIMD_AVX2) {
		c->bw_quant = kw_bw_quant_avx2;
		c->bw_dequant = kw_bw_dequant_avx2;
	}
#endif
#if defined(CONFIG_KW_X86_AVX512)
	if (c->cvt.variant == KW_SIMD_AVX512) {
		c->bw_quant = kw_bw_quant_avx512;
		c->bw_dequant = kw_bw_dequant_avx512;
	}
#endif
#if defined(CONFIG_KW_ARM64_NEON)
	if (c->cvt.variant == KW_SIMD_NEON) {
		c->bw_quant = kw_bw_quant_neon;
		c->bw_dequant = kw_bw_dequant_neon;
	}
#endif
	return kw_bw_table_init(&c->bw, kw_bw_default_code);
}

/* ---- sizes ------------------------------------------------------------------------------ */

#define SZ_LIMIT ((size_t)1 << 40)  /* refuse sizes whose arithmetic could overflow */
#define QQ_MIN_CHUNK 100000u        /* hivemind quantile_qq_approximation min_chunk_size */
#define QQ_N 257u                   /* n_bins + 1 quantiles */

static size_t bw_blocks(size_t numel) { return (numel + KW_BW_BLOCK - 1) / KW_BW_BLOCK; }

size_t kw_codec_max_size(enum kw_compression comp, size_t numel, size_t last_dim)
{
	if (numel > SZ_LIMIT)
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
	case KW_COMP_BLOCKWISE_8BIT: return 16 + bw_blocks(numel) * 4 + 256 * 4 + numel;
	default: return 0;
	}
}

/* hivemind get_chunk_size(): spread the leftover over the chunks. */
static size_t qq_chunk_size(size_t n)
{
	size_t left, nch;

	if (QQ_MIN_CHUNK >= n)
		return QQ_MIN_CHUNK;
	left = n % QQ_MIN_CHUNK;
	nch = n / QQ_MIN_CHUNK;
	/* Python: (left - 1) // nch + 1 with floor division; left == 0 gives 0. */
	return QQ_MIN_CHUNK + (left == 0 ? 0 : (left - 1) / nch + 1);
}

size_t kw_codec_scratch_size(enum kw_compression comp, size_t numel)
{
	size_t cs, nch;

	if (comp != KW_COMP_QUANTILE_8BIT || numel == 0 || numel > SZ_LIMIT)
		return 0;
	cs = qq_chunk_size(numel);
	nch = (numel - 1) / cs + 1;
	return (KW_MIN(cs, numel) + nch * QQ_N) * sizeof(float);
}

/* ---- fp16 arrays to and from possibly unaligned wire bytes ------------------------------- */

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

static float get_f32(const uint8_t *p) { return kw_bits_f32(kw_get_le32(p)); }
static void put_f32(uint8_t *p, float v) { kw_put_le32(p, kw_f32_bits(v)); }
static void put_le64(uint8_t *p, uint64_t v) { kw_put_le32(p, (uint32_t)v); kw_put_le32(p + 4, (uint32_t)(v >> 32)); }
static uint64_t get_le64(const uint8_t *p) { return kw_get_le32(p) | ((uint64_t)kw_get_le32(p + 4) << 32); }

/* Round to nearest even without lrintf: valid for |v| < 2^22 (callers clamp first). */
static inline float rne_small(float v) { return (v + 12582912.0f) - 12582912.0f; }

/* ---- MEANSTD_16BIT --------------------------------------------------------------------- */

static void meanstd_encode(const float *x, size_t numel, size_t d, uint8_t *out)
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
		put_f32(means + r * 4, mean);
		put_f32(stds + r * 4, stdv);
	}
}

static void meanstd_decode(const uint8_t *buf, size_t numel, size_t d, float *out)
{
	size_t rows = numel / d, r, i;
	const uint8_t *means = buf + numel * 2, *stds = means + rows * 4;

	for (r = 0; r < rows; r++) {
		float mean = get_f32(means + r * 4), stdv = get_f32(stds + r * 4);

		for (i = 0; i < d; i++) {
			size_t e = r * d + i;
			float h = kw_fp16_to_f32((uint16_t)(buf[2 * e] | (buf[2 * e + 1] << 8)));
			out[e] = h * stdv + mean;
		}
	}
}

/* ---- UNIFORM_8BIT / QUANTILE_8BIT --------------------------------------------------------- */

/* codebook[b] = mean of x over bucket b (empty bucket: 0), written after the int64 length. */
static void write_codebook(const float *x, size_t n, const uint8_t *idx, uint8_t *out)
{
	double sums[256];
	uint32_t cnt[256];
	size_t i;

	memset(sums, 0, sizeof(sums));
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < n; i++) {
		sums[idx[i]] += x[i];
		cnt[idx[i]]++;
	}
	put_le64(out, 256);
	for (i = 0; i < 256; i++)
		put_f32(out + 8 + 4 * i, cnt[i] ? (float)(sums[i] / cnt[i]) : 0.0f);
}

static void uniform_encode(const float *x, size_t n, uint8_t *out)
{
	uint8_t *idx = out + 8 + 1024;
	double s = 0.0, ss = 0.0;
	float shift, stdv, scale, inv;
	size_t i;

	for (i = 0; i < n; i++)
		s += x[i];
	shift = n ? (float)(s / (double)n) : 0.0f;
	for (i = 0; i < n; i++) {
		float cdev = x[i] - shift;
		ss += (double)cdev * cdev;
	}
	stdv = n > 1 ? (float)sqrt(ss) / sqrtf((float)(n - 1)) : 0.0f;
	scale = 6.0f * stdv / 256.0f;
	if (!(scale > 0.0f) || !isfinite(scale)) {
		memset(idx, 128, n);  /* constant tensor: everything at the zero point */
	} else {
		/* torch quantize_per_tensor: nearbyint(x * (1/scale)) + zero_point, clamped. */
		inv = 1.0f / scale;
		for (i = 0; i < n; i++) {
			float v = (x[i] - shift) * inv;

			v = v < -200.0f ? -200.0f : v;
			v = v > 200.0f ? 200.0f : v;
			v = v == v ? v : 0.0f;
			v = rne_small(v) + 128.0f;
			v = v < 0.0f ? 0.0f : v;
			v = v > 255.0f ? 255.0f : v;
			idx[i] = (uint8_t)(int)v;
		}
	}
	write_codebook(x, n, idx, out);
}

/* In-place heapsort: no allocation (glibc qsort may malloc), O(n log n) worst case. */
static void sift(float *a, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		float t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (!(a[c] > a[root]))
			return;
		t = a[c]; a[c] = a[root]; a[root] = t;
		root = c;
	}
}

static void sort_floats(float *a, size_t n)
{
	size_t i;

	/* NaN would break the ordering; send it to the top like numpy's sort does. */
	for (i = 0; i < n; i++)
		if (a[i] != a[i])
			a[i] = INFINITY;
	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		sift(a, i, n);
	for (i = n - 1; i > 0; i--) {
		float t = a[0]; a[0] = a[i]; a[i] = t;
		sift(a, 0, i);
	}
}

/* numpy.quantile(a, linspace(0, 1, 257, dtype=float32)) on sorted float32 a, method linear,
 * evaluated in float32 like numpy does for float32 input. */
static void quantiles257(const float *a, size_t m, float *q)
{
	for (uint32_t j = 0; j < QQ_N; j++) {
		float p = (float)j / 256.0f;
		float vi = ((float)m * p + (1.0f - p)) - 1.0f;
		size_t lo, hi;
		float g, diff;

		if (vi >= (float)(m - 1)) {
			q[j] = a[m - 1];
			continue;
		}
		if (vi < 0.0f) {
			q[j] = a[0];
			continue;
		}
		lo = (size_t)vi;
		hi = lo + 1;
		g = vi - (float)lo;
		diff = a[hi] - a[lo];
		q[j] = g >= 0.5f ? a[hi] - diff * (1.0f - g) : a[lo] + diff * g;
	}
}

static void quantile_encode(const float *x, size_t n, float *scratch, uint8_t *out)
{
	uint8_t *idx = out + 8 + 1024;
	size_t cs, nch, ch, i;
	float *part, border[QQ_N];

	if (n == 0) {
		write_codebook(x, 0, idx, out);
		return;
	}
	cs = qq_chunk_size(n);
	nch = (n - 1) / cs + 1;
	part = scratch + KW_MIN(cs, n);
	for (ch = 0; ch < nch; ch++) {
		size_t off = ch * cs, m = KW_MIN(cs, n - off);

		memcpy(scratch, x + off, m * sizeof(float));
		sort_floats(scratch, m);
		quantiles257(scratch, m, part + ch * QQ_N);
	}
	sort_floats(part, nch * QQ_N);
	quantiles257(part, nch * QQ_N, border);
	/* torch.bucketize(right=False) over the inner 255 borders: count of borders < x. */
	for (i = 0; i < n; i++) {
		uint32_t lo = 0, hi = 255;
		float v = x[i];

		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;
			if (border[1 + mid] < v)
				lo = mid + 1;
			else
				hi = mid;
		}
		idx[i] = (uint8_t)lo;
	}
	write_codebook(x, n, idx, out);
}

static int codebook_decode(const uint8_t *buf, size_t len, size_t numel, float *out)
{
	uint64_t cl;
	float book[256];
	const uint8_t *idx;
	size_t i;

	if (len < 8)
		return -KW_EBADMSG;
	cl = get_le64(buf);
	/* uint8 indices can address at most 256 entries; a longer book is not hivemind's. */
	if (cl == 0 || cl > 256)
		return numel == 0 && cl == 0 && len == 8 ? 0 : -KW_EBADMSG;
	if (len - 8 < cl * 4 + numel)
		return -KW_EBADMSG;
	if (len - 8 > cl * 4 + numel)
		return -KW_EMSGSIZE;
	for (i = 0; i < cl; i++)
		book[i] = get_f32(buf + 8 + 4 * i);
	idx = buf + 8 + cl * 4;
	for (i = 0; i < numel; i++) {
		if (idx[i] >= cl)
			return -KW_EBADMSG;
		out[i] = book[idx[i]];
	}
	return 0;
}

/* ---- BLOCKWISE_8BIT ---------------------------------------------------------------------- */

static void blockwise_encode(const struct kw_codec *c, const float *x, size_t n, uint8_t *out)
{
	size_t nb = bw_blocks(n), b;
	uint8_t *am = out + 16, *code = am + nb * 4, *q = code + 1024;

	put_le64(out, nb);
	put_le64(out + 8, 256);
	for (b = 0; b < 256; b++)
		put_f32(code + 4 * b, c->bw.code[b]);
	if (((uintptr_t)am & 3) == 0) {
		c->bw_quant(&c->bw, x, n, (float *)(void *)am, q);
		return;
	}
	for (b = 0; b < nb; b++) {
		size_t off = b * KW_BW_BLOCK;
		float a;

		c->bw_quant(&c->bw, x + off, KW_MIN((size_t)KW_BW_BLOCK, n - off), &a, q + off);
		put_f32(am + 4 * b, a);
	}
}

#define DQ_RUN (KW_BW_STREAM_MIN / KW_BW_BLOCK)  /* 256 blocks: 1 KiB of absmax on the stack */

static int blockwise_decode(const struct kw_codec *c, const uint8_t *buf, size_t len, size_t n,
			    float *out)
{
	size_t nb = bw_blocks(n), b, need;
	float code[256];
	const uint8_t *am, *q;

	if (len < 16)
		return -KW_EBADMSG;
	if (get_le64(buf) != nb || get_le64(buf + 8) != 256)
		return -KW_EBADMSG;
	need = 16 + nb * 4 + 1024 + n;
	if (len < need)
		return -KW_EBADMSG;
	if (len > need)
		return -KW_EMSGSIZE;
	am = buf + 16;
	for (b = 0; b < 256; b++)
		code[b] = get_f32(am + nb * 4 + 4 * b);
	q = am + nb * 4 + 1024;
	/* The kernels take native floats for absmax: copied from the wire a run of blocks at a
	 * time, KW_BW_STREAM_MIN elements per call so a large tensor is decoded in calls big
	 * enough for the kernels' cache-bypassing stores. */
	for (b = 0; b < nb; b += DQ_RUN) {
		float a[DQ_RUN];
		size_t off = b * KW_BW_BLOCK, k, nk = KW_MIN((size_t)DQ_RUN, nb - b);

		for (k = 0; k < nk; k++)
			a[k] = get_f32(am + 4 * (b + k));
		c->bw_dequant(code, q + off, a, KW_MIN(nk * KW_BW_BLOCK, n - off), out + off);
	}
	return 0;
}

/* ---- entry points ---------------------------------------------------------------------- */

int kw_codec_encode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const float *x, size_t numel, size_t last_dim, void *scratch, size_t scratch_len,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	size_t need;

	if (!c || (!x && numel) || !out_len || (unsigned)dtype >= KW_CODEC_DTYPE_COUNT ||
	    (unsigned)comp >= KW_COMP_COUNT || numel > SZ_LIMIT)
		return -KW_EINVAL;
	if (comp == KW_COMP_MEANSTD_16BIT && numel && (last_dim == 0 || numel % last_dim))
		return -KW_EINVAL;
	need = kw_codec_max_size(comp, numel, last_dim);
	if (comp == KW_COMP_NONE && dtype != KW_CODEC_F32)
		need = numel * 2;
	if (need > cap || (need && !out))
		return -KW_ENOSPC;
	if (kw_codec_scratch_size(comp, numel) && (!scratch || kw_codec_scratch_size(comp, numel) > scratch_len))
		return -KW_ENOSPC;
	switch (comp) {
	case KW_COMP_NONE:
		if (dtype == KW_CODEC_F32 && numel)
			memcpy(out, x, numel * 4);
		else
			to16(dtype == KW_CODEC_F16 ? c->cvt.f32_to_f16 : c->cvt.f32_to_bf16, x, numel, out);
		break;
	case KW_COMP_FLOAT16:
		to16(c->cvt.f32_to_f16_clamp, x, numel, out);
		break;
	case KW_COMP_MEANSTD_16BIT:
		if (numel)
			meanstd_encode(x, numel, last_dim, out);
		break;
	case KW_COMP_UNIFORM_8BIT:
		uniform_encode(x, numel, out);
		break;
	case KW_COMP_QUANTILE_8BIT:
		quantile_encode(x, numel, scratch, out);
		break;
	case KW_COMP_BLOCKWISE_8BIT:
		blockwise_encode(c, x, numel, out);
		break;
	default:
		return -KW_EINVAL;
	}
	*out_len = need;
	return 0;
}

static int exact_len(size_t len, size_t need)
{
	return len < need ? -KW_EBADMSG : len > need ? -KW_EMSGSIZE : 0;
}

int kw_codec_decode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const uint8_t *buf, size_t len, size_t numel, size_t last_dim, float *out)
{
	int err;

	if (!c || (!buf && len) || (!out && numel) || (unsigned)dtype >= KW_CODEC_DTYPE_COUNT ||
	    numel > SZ_LIMIT)
		return -KW_EINVAL;
	switch (comp) {
	case KW_COMP_NONE:
		if (dtype == KW_CODEC_F32) {
			if ((err = exact_len(len, numel * 4)))
				return err;
			if (len)
				memcpy(out, buf, len);
			return 0;
		}
		if (dtype == KW_CODEC_BF16 && numel && len == numel * 4) {
			memcpy(out, buf, len);  /* USE_LEGACY_BFLOAT16 senders: float32 payload */
			return 0;
		}
		if ((err = exact_len(len, numel * 2)))
			return err;
		from16(dtype == KW_CODEC_F16 ? c->cvt.f16_to_f32 : c->cvt.bf16_to_f32, buf, numel, out);
		return 0;
	case KW_COMP_FLOAT16:
		if ((err = exact_len(len, numel * 2)))
			return err;
		from16(c->cvt.f16_to_f32, buf, numel, out);
		return 0;
	case KW_COMP_MEANSTD_16BIT:
		if (numel && (last_dim == 0 || numel % last_dim))
			return -KW_EINVAL;
		if ((err = exact_len(len, numel ? numel * 2 + 8 * (numel / last_dim) : 0)))
			return err;
		if (numel)
			meanstd_decode(buf, numel, last_dim, out);
		return 0;
	case KW_COMP_UNIFORM_8BIT:
	case KW_COMP_QUANTILE_8BIT:
		return codebook_decode(buf, len, numel, out);
	case KW_COMP_BLOCKWISE_8BIT:
		return blockwise_decode(c, buf, len, numel, out);
	default:
		return -KW_EBADMSG;  /* unknown compression number from the wire */
	}
}
