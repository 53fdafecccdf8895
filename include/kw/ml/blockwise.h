/*
 * BLOCKWISE_8BIT lookup state and the per-element rule that the reference
 * (ml/ref/codec_ref.c) and every SIMD encoder (arch/) share, so that all of them agree bit
 * for bit. ml/compress/codec_table.c builds the table, ml/compress/codec_model.c proves the
 * gather-free model below for it; the kernels only read it. Included by ml/ and arch/.
 */
#ifndef KW_ML_BLOCKWISE_H
#define KW_ML_BLOCKWISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KW_BW_BLOCK 4096  /* bitsandbytes blockwise block size used by Hivemind */
/* Decoder calls with at least this many elements (4 MiB of fp32 out) may write around the
 * caches (non-temporal stores): nobody reads that much back from cache anyway. */
#define KW_BW_STREAM_MIN ((size_t)1 << 20)
#define KW_BW_LUT_SIZE 65536  /* buckets: top 16 bits of the monotone float key */

/*
 * Blockwise 8-bit lookup state built from a sorted 256-entry code table.
 *
 * bitsandbytes' CPU quantizer takes y = x / absmax, finds the left index (largest i with
 * code[i] <= y) by binary search and moves right only if |y - code[i+1]| < |y - code[i]|
 * in float. That result is a monotone step function of y, so it is fully described by the
 * 255 smallest floats at which it steps up. kw_bw_table_init() (<kw/ml/codec.h>) finds those thresholds with
 * the literal algorithm; quantizing is then "how many thresholds are <= y".
 *
 * Fast path: floats are bucketed by the top 16 bits of a monotone integer key. When no
 * bucket holds more than one threshold (true for the default code), fast[k] packs the
 * result for the bucket's lowest value (bits 17..24) and the low 16 key bits of the
 * bucket's threshold (bits 0..16; 0x10000 = none): one load and one compare per element,
 * one 32-bit gather per 8 elements in AVX2. Otherwise every variant falls back to the
 * literal binary search.
 */
/*
 * Gather-free model of the same step function for bitsandbytes' dynamic map (the default
 * code), used by the SIMD encoders. The map is built decade by decade: decade d holds 2^d
 * evenly spaced codes, so in units of decade d-1's code spacing the step points of a
 * magnitude |q| sit (almost) on integers k <= -1 (decade d-1), at k = 1 (the boundary step)
 * and at k = 5j (decade d, five times wider). One concave expression
 *     G = min(k, max(-0.5, min(k - 1, 0.2 k))),   k = 2^c * fma(|q|, alpha[c], beta)
 * counts them, with the cell c (0..7) picking the decade pair from a 16-bit log10 estimate
 * of |q| (c = sat(((bits(|q|) >> 16) * cell_k) >> 16) - cell_c)). The 2^c factors are
 * exponent adds, so the per-cell state is one 8-entry table (one permute per 8 lanes).
 * The index is floor(F) - 256 with F = +-(G + 2^c - 0.5) + 383.5 (sign of q).
 *
 * The model is only trusted outside a window of +-win/2^15 around every integer of F and
 * for |q| < cut; the encoders redo such lanes exactly. kw_bw_table_init() proves the rest:
 * F is monotone in |q|, and at every step point of the exact rule (both signs), F over the
 * floats within KW_BW_MODEL_SLACK of it lies inside the window around the right integer.
 * Since q here is RN(x * RN(1/absmax)), within KW_BW_MODEL_SLACK floats of the exact
 * RN(x / absmax) (see kw_bw_model_block_ok), an unflagged lane is always exact.
 */
#define KW_BW_MODEL_SLACK 4u  /* floats between RN(x*RN(1/m)) and RN(x/m); 2 suffice */

struct kw_bw_model {
	float alpha[8];           /* per cell */
	float beta;
	uint32_t cell_k, cell_c;  /* 16-bit log10 estimate */
	float cut;                /* |q| >= cut: not modelled (code[0] = -1 breaks the pattern) */
	uint32_t win;             /* uncertain window half-width, units of 2^-15 */
	uint32_t ok;              /* 1: model proven for this code */
};

struct kw_bw_table {
	float code[256];
	uint32_t fast[KW_BW_LUT_SIZE];
	uint32_t fast_ok;         /* 1: fast[] is exact for every float */
	uint8_t zero_index;       /* code used for all-zero blocks: smallest |code|, lower index */
	struct kw_bw_model model;
};

/*
 * The model's F (as float bits) for a finite q, written so every SIMD variant reproduces it
 * bit for bit (16-bit multiply-high, saturating subtract, fused multiply-add, exponent adds
 * on the bits, min/max, adds).
 */
static inline uint32_t kw_bw_model_bits(const struct kw_bw_model *md, float q)
{
	uint32_t qb, ab, c, v, kb;
	float a, k, g, f, h, base;

	__builtin_memcpy(&qb, &q, 4);
	ab = qb & 0x7fffffffu;
	__builtin_memcpy(&a, &ab, 4);
	v = ((ab >> 16) * md->cell_k) >> 16;
	c = v > md->cell_c ? v - md->cell_c : 0;
	h = __builtin_fmaf(a, md->alpha[c & 7u], md->beta);
	__builtin_memcpy(&kb, &h, 4);
	kb += c << 23;
	__builtin_memcpy(&k, &kb, 4);
	{
		float t = k - 1.0f, u = k * 0.2f;
		float m1 = t < u ? t : u;
		float m2 = m1 > -0.5f ? m1 : -0.5f;
		g = k < m2 ? k : m2;
	}
	kb = (c << 23) + 0x3f800000u;
	__builtin_memcpy(&base, &kb, 4);
	g = g + (base - 0.5f);
	if (qb >> 31)
		g = -g;
	f = g + 383.5f;
	__builtin_memcpy(&qb, &f, 4);
	return qb;
}

/* True if the model's result for these F bits needs the exact path (inside a window). */
static inline bool kw_bw_model_unsure(const struct kw_bw_model *md, uint32_t fbits)
{
	return ((fbits + md->win) & 0x7fffu) < 2u * md->win;
}

/*
 * Blocks the model serves: RN(1/m) must be a normal float whose product with any |x| <= m
 * neither overflows nor underflows its error bound (2^-100 <= m <= 2^100 is ample).
 */
static inline bool kw_bw_model_block_ok(float m)
{
	return m >= 0x1p-100f && m <= 0x1p100f;
}

/* Monotone 32-bit key of a float's bits (total order on non-NaN values). */
static inline uint32_t kw_bw_key(uint32_t bits)
{
	return bits ^ ((uint32_t)((int32_t)bits >> 31) | 0x80000000u);
}

/* The literal bitsandbytes element rule (binary search, then nearest; ties: lower index). */
static inline uint8_t kw_bw_quant_search(const float *code, float y)
{
	uint32_t lo = 0, hi = 256, idx;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (code[mid] <= y)
			lo = mid + 1;
		else
			hi = mid;
	}
	idx = lo ? lo - 1 : 0;
	if (idx < 255 && __builtin_fabsf(y - code[idx + 1]) < __builtin_fabsf(y - code[idx]))
		idx++;
	return (uint8_t)idx;
}

/*
 * One element of the blockwise quantizer, shared by every variant's scalar tail so all of
 * them agree bit for bit. y is x / absmax (a true IEEE division, as bitsandbytes does).
 */
static inline uint8_t kw_bw_quant_one(const struct kw_bw_table *t, float y)
{
	uint32_t bits, key, e;

	if (!t->fast_ok || y != y)  /* NaN: the search gives 0 (every compare is false) */
		return kw_bw_quant_search(t->code, y);
	__builtin_memcpy(&bits, &y, 4);
	key = kw_bw_key(bits);
	e = t->fast[key >> 16];
	return (uint8_t)((e >> 17) + ((key & 0xffffu) >= (e & 0x1ffffu)));
}

#endif /* KW_ML_BLOCKWISE_H */
