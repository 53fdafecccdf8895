/*
 * AVX-512 (F, BW, VL, VBMI) blockwise 8-bit quantizer (<kw/ml/blockwise.h>), equal to
 * kw_bw_quant_ref bit for bit. It evaluates the same decade model as the AVX2 encoder
 * (kw_bw_model_bits, proven at table init), 16 lanes per instruction:
 *   - 2^c - 0.5 comes from a second 16-entry permute instead of an exponent add and a
 *     subtraction (the same float: 2^c - 0.5 is exact for c <= 7);
 *   - the sign flip and its mask are one vpternlogd;
 *   - the window and cut checks are mask-register compares (win is a power of two, so
 *     "low 15 bits < 2 win" is "no bit of 0x7fff & ~(2 win - 1) set": one vptestmd);
 *   - vpmultishiftqb picks the index bits 15..22 of F straight into bytes and merges four
 *     vectors into one, and one vpermb puts the 64 bytes in order.
 * A lane the model is not sure of (inside a window, or |q| >= cut) is redone alone with the
 * reference's own element rule (IEEE division, kw_bw_quant_one), so one unsure lane costs a
 * scalar division instead of a 32-element exact path. Blocks the model does not serve
 * (NaN/Inf, absmax outside [2^-100, 2^100], a code without a proven model) go to the AVX2
 * encoder, which is itself exact.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <kw/ml/blockwise.h>
#include <kw/ml/kernels.h>

#include "../kernels_x86.h"

#define GROUP 64  /* elements per check and per 64-byte store */

struct bw_model16 {
	__m512 r, alpha, basehalf, beta, fbias, cut;
	__m512i cell_k, cell_c, wtest, sel;
};

/*
 * kw_bw_model_bits(q) + win for 16 lanes of x (q = x * RN(1/absmax)); *good gets the lanes
 * the model is sure of (outside every window and below the cut).
 */
static inline __m512i bw_model16(const struct bw_model16 *m, __m512 x, __mmask16 *good)
{
	const __m512i absm = _mm512_set1_epi32(0x7fffffff);
	__m512 q = _mm512_mul_ps(x, m->r);
	__m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(q), absm));
	/* the high 16-bit half of each lane is 0, so the 16-bit ops act per 32-bit lane */
	__m512i c = _mm512_subs_epu16(_mm512_mulhi_epu16(_mm512_srli_epi32(_mm512_castps_si512(a), 16),
							 m->cell_k), m->cell_c);
	__m512 k, g;
	__m512i fb;

	k = _mm512_fmadd_ps(a, _mm512_permutexvar_ps(c, m->alpha), m->beta);
	k = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(k), _mm512_slli_epi32(c, 23)));
	g = _mm512_min_ps(_mm512_sub_ps(k, _mm512_set1_ps(1.0f)), _mm512_mul_ps(k, _mm512_set1_ps(0.2f)));
	g = _mm512_min_ps(k, _mm512_max_ps(g, _mm512_set1_ps(-0.5f)));
	g = _mm512_add_ps(g, _mm512_permutexvar_ps(c, m->basehalf));
	/* g ^ (q & sign): 0x78 = A ^ (B & C) */
	g = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(g), _mm512_castps_si512(q),
							  _mm512_set1_epi32((int)0x80000000u), 0x78));
	fb = _mm512_castps_si512(_mm512_add_ps(g, m->fbias));
	*good = _mm512_mask_cmp_ps_mask(_mm512_test_epi32_mask(fb, m->wtest), a, m->cut, _CMP_LT_OQ);
	return fb;
}

/* The 16 bytes bits 15..22 of each lane of fb, placed at byte slot s (0..3) of every qword
 * pair: qword j of the result holds lanes 2j, 2j+1 of vectors 0..3 in bytes 2s, 2s+1. */
static inline __m512i bw_pick(__m512i acc, __mmask64 slot, __m512i sel, __m512i fb)
{
	return _mm512_mask_multishift_epi64_epi8(acc, slot, sel, fb);
}

/*
 * One block whose absmax mf the model serves: q[0..n-1], n <= KW_BW_BLOCK. Groups with
 * unsure lanes are only noted in the loop (no data-dependent branch: on the benchmark's
 * data about one group in eight has one, and mispredicting those cost a fifth of the time
 * when streaming from memory); their lanes are redone exactly once the block is written.
 */
static void bw_block_model(const struct kw_bw_table *t, const struct bw_model16 *m, const float *x,
			   size_t n, float mf, uint8_t *q)
{
	/* byte 8j + 2s + h of acc is lane 2j + h of vector s; vpermb brings it to 16 s + 2j + h */
	static const uint8_t order_b[64] __attribute__((aligned(64))) = {
		0, 1, 8, 9, 16, 17, 24, 25, 32, 33, 40, 41, 48, 49, 56, 57,
		2, 3, 10, 11, 18, 19, 26, 27, 34, 35, 42, 43, 50, 51, 58, 59,
		4, 5, 12, 13, 20, 21, 28, 29, 36, 37, 44, 45, 52, 53, 60, 61,
		6, 7, 14, 15, 22, 23, 30, 31, 38, 39, 46, 47, 54, 55, 62, 63,
	};
	const __m512i order = _mm512_load_si512((const void *)order_b);
	uint64_t bad_mask[KW_BW_BLOCK / GROUP];
	uint32_t bad_at[KW_BW_BLOCK / GROUP];
	unsigned nbad = 0;
	size_t i;

	for (i = 0; i + GROUP <= n; i += GROUP) {
		__mmask16 g0, g1, g2, g3;
		__m512i f0, f1, f2, f3, acc;
		uint64_t good;

		/* pull the next block in while this one computes from L1 (a prefetch past the
		 * array end is harmless: it never faults) */
		_mm_prefetch((const char *)(x + i + KW_BW_BLOCK), _MM_HINT_T0);
		_mm_prefetch((const char *)(x + i + KW_BW_BLOCK + 16), _MM_HINT_T0);
		_mm_prefetch((const char *)(x + i + KW_BW_BLOCK + 32), _MM_HINT_T0);
		_mm_prefetch((const char *)(x + i + KW_BW_BLOCK + 48), _MM_HINT_T0);
		f0 = bw_model16(m, _mm512_loadu_ps(x + i), &g0);
		f1 = bw_model16(m, _mm512_loadu_ps(x + i + 16), &g1);
		f2 = bw_model16(m, _mm512_loadu_ps(x + i + 32), &g2);
		f3 = bw_model16(m, _mm512_loadu_ps(x + i + 48), &g3);
		acc = bw_pick(_mm512_setzero_si512(), 0x0303030303030303ull, m->sel, f0);
		acc = bw_pick(acc, 0x0c0c0c0c0c0c0c0cull, m->sel, f1);
		acc = bw_pick(acc, 0x3030303030303030ull, m->sel, f2);
		acc = bw_pick(acc, 0xc0c0c0c0c0c0c0c0ull, m->sel, f3);
		_mm512_storeu_si512((void *)(q + i), _mm512_permutexvar_epi8(order, acc));
		good = (uint64_t)g0 | (uint64_t)g1 << 16 | (uint64_t)g2 << 32 | (uint64_t)g3 << 48;
		bad_mask[nbad] = ~good;
		bad_at[nbad] = (uint32_t)i;
		nbad += good != ~0ull;
	}
	for (unsigned k = 0; k < nbad; k++) {
		uint64_t bad = bad_mask[k];
		size_t at = bad_at[k];

		do {
			size_t j = at + (size_t)__builtin_ctzll(bad);

			q[j] = kw_bw_quant_one(t, x[j] / mf);
			bad &= bad - 1;
		} while (bad);
	}
	for (; i < n; i++)
		q[i] = kw_bw_quant_one(t, x[i] / mf);
}

/* Integer max of |x| bits over n floats (> 0x7f800000: NaN present, == 0x7f800000: Inf). */
static uint32_t bw_absmax_bits(const float *x, size_t n)
{
	const __m512i absm = _mm512_set1_epi32(0x7fffffff);
	__m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;
	uint32_t mb;
	size_t i;

	for (i = 0; i + 64 <= n; i += 64) {
		m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i)), absm));
		m1 = _mm512_max_epu32(m1, _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + 16)), absm));
		m2 = _mm512_max_epu32(m2, _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + 32)), absm));
		m3 = _mm512_max_epu32(m3, _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + 48)), absm));
	}
	mb = _mm512_reduce_max_epu32(_mm512_max_epu32(_mm512_max_epu32(m0, m1), _mm512_max_epu32(m2, m3)));
	for (; i < n; i++) {
		uint32_t v;

		memcpy(&v, x + i, 4);
		v &= 0x7fffffffu;
		mb = v > mb ? v : mb;
	}
	return mb;
}

void kw_bw_quant_avx512(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
			uint8_t *q)
{
	const struct kw_bw_model *md = &t->model;
	struct bw_model16 m;
	size_t b;

	/* the mask-register window test needs win to be a power of two (bw_model_init only
	 * tries those); anything else, or no proven model, is the AVX2 encoder's job */
	if (!t->fast_ok || !md->ok || md->win == 0 || md->win > 0x2000 || (md->win & (md->win - 1))) {
		kw_bw_quant_avx2(t, x, n, absmax, q);
		return;
	}
	{
		float al[16], bh[16];

		for (int c = 0; c < 16; c++) {
			al[c] = md->alpha[c & 7];
			bh[c] = (float)(1u << (c & 7)) - 0.5f;
		}
		m.alpha = _mm512_loadu_ps(al);
		m.basehalf = _mm512_loadu_ps(bh);
	}
	m.beta = _mm512_set1_ps(md->beta);
	m.cell_k = _mm512_set1_epi32((int)md->cell_k);
	m.cell_c = _mm512_set1_epi32((int)md->cell_c);
	m.fbias = _mm512_set1_ps(383.5f + (float)md->win * 0x1p-15f);
	m.cut = _mm512_set1_ps(md->cut);
	m.wtest = _mm512_set1_epi32((int)(0x7fffu & ~(2u * md->win - 1u)));
	/* vpmultishiftqb offsets: byte h (0, 1) of every pair takes bits 15..22 of dword h */
	m.sel = _mm512_set1_epi64(0x2f0f2f0f2f0f2f0fll);
	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t len = n - b < KW_BW_BLOCK ? n - b : KW_BW_BLOCK;
		uint32_t mb = bw_absmax_bits(x + b, len);
		float mf;

		memcpy(&mf, &mb, 4);
		if (mb >= 0x7f800000u || mb == 0 || !kw_bw_model_block_ok(mf)) {
			/* NaN/Inf, all-zero, or out of the model's range: exact (and rare) */
			kw_bw_quant_avx2(t, x + b, len, absmax + b / KW_BW_BLOCK, q + b);
			continue;
		}
		absmax[b / KW_BW_BLOCK] = mf;
		m.r = _mm512_set1_ps(1.0f / mf);
		bw_block_model(t, &m, x + b, len, mf, q + b);
	}
}

/*
 * Blockwise 8-bit decoder: out[i] = code[q[i]] * absmax, bit for bit the reference's single
 * multiply. The scaled 256-entry table of a block is split into four byte planes (byte p of
 * every entry; 256 bytes = four registers each), so a lookup is two 128-entry vpermi2b per
 * plane and a blend on bit 7 of the index: 64 elements per ~27 instructions and one load,
 * where the AVX2 decoder spends two loads per element and is bound by the load ports. Two
 * rounds of unpacks put the four planes back together as dwords; the index bytes are
 * permuted once beforehand so the unpacks' in-lane order comes out as memory order.
 */
static inline void bw_planes(const float *code, float a, __m512i pl[4][4])
{
	uint8_t b[4][256] __attribute__((aligned(64)));
	const __m512 av = _mm512_set1_ps(a);
	int k, p;

	for (k = 0; k < 16; k++) {
		__m512i v = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(code + 16 * k), av));

		for (p = 0; p < 4; p++)
			_mm_store_si128((__m128i *)(void *)(b[p] + 16 * k),
					_mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8 * p)));
	}
	for (p = 0; p < 4; p++)
		for (k = 0; k < 4; k++)
			pl[p][k] = _mm512_load_si512((const void *)(b[p] + 64 * k));
}

/* 64 output floats from 64 indices (see above) */
static inline void bw_dq64(const __m512i pl[4][4], __m512i pre, const uint8_t *q, __m512i o[4])
{
	__m512i idx = _mm512_permutexvar_epi8(pre, _mm512_loadu_si512(q));
	__mmask64 hi = _mm512_movepi8_mask(idx);
	__m512i v[4], t0, t1, t2, t3;

	for (int p = 0; p < 4; p++)
		v[p] = _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(pl[p][0], idx, pl[p][1]),
					      _mm512_permutex2var_epi8(pl[p][2], idx, pl[p][3]));
	t0 = _mm512_unpacklo_epi8(v[0], v[1]);
	t1 = _mm512_unpackhi_epi8(v[0], v[1]);
	t2 = _mm512_unpacklo_epi8(v[2], v[3]);
	t3 = _mm512_unpackhi_epi8(v[2], v[3]);
	o[0] = _mm512_unpacklo_epi16(t0, t2);
	o[1] = _mm512_unpackhi_epi16(t0, t2);
	o[2] = _mm512_unpacklo_epi16(t1, t3);
	o[3] = _mm512_unpackhi_epi16(t1, t3);
}

void kw_bw_dequant_avx512(const float *code, const uint8_t *q, const float *absmax, size_t n,
			  float *out)
{
	/* A call this large writes past any cache: non-temporal stores skip the read for
	 * ownership of every output line (80 instead of 144 bytes of memory traffic per 64
	 * bytes of index, measured 16 -> 25 GB/s on 64 MiB). Smaller outputs stay cached for
	 * whoever reads them next. */
	const bool stream = n >= KW_BW_STREAM_MIN;
	uint8_t ord[64];
	__m512i pre, pl[4][4], o[4];
	size_t b, i;
	int l, r, d;

	/* unpack output r, 128-bit lane l, dword d holds permuted byte 16l + 4r + d; it must be
	 * element 16r + 4l + d */
	for (l = 0; l < 4; l++)
		for (r = 0; r < 4; r++)
			for (d = 0; d < 4; d++)
				ord[16 * l + 4 * r + d] = (uint8_t)(16 * r + 4 * l + d);
	pre = _mm512_loadu_si512(ord);
	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		const float a = absmax[b / KW_BW_BLOCK];

		bw_planes(code, a, pl);
		i = b;
		if (stream) {
			for (; i < end && ((uintptr_t)(out + i) & 63); i++)
				out[i] = code[q[i]] * a;
			for (; i + 64 <= end; i += 64) {
				bw_dq64(pl, pre, q + i, o);
				for (int k = 0; k < 4; k++)
					_mm512_stream_si512((void *)(out + i + 16 * k), o[k]);
			}
		} else {
			for (; i + 64 <= end; i += 64) {
				bw_dq64(pl, pre, q + i, o);
				for (int k = 0; k < 4; k++)
					_mm512_storeu_si512(out + i + 16 * k, o[k]);
			}
		}
		for (; i < end; i++)
			out[i] = code[q[i]] * a;
	}
	if (stream)
		_mm_sfence();  /* non-temporal stores are weakly ordered: publish before returning */
}
