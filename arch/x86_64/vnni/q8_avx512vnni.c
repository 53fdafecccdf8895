/*
 * AVX512-VNNI int8 kernels. Each 512-bit weight load holds 4 K values of the 16 rows of a
 * group (see kw/ml/q8.h), so one VPDPBUSD per 4 K values accumulates all 16 output rows with
 * the 4 activation bytes broadcast. VPDPBUSD multiplies unsigned by signed bytes: the
 * weights are flipped to excess-128 (w ^ 0x80 = w + 128, unsigned) and the 128 * sum(x)
 * this adds is subtracted once per block from the activation sums the quantizer stored,
 * keeping the int32 result exact. The fp32 part runs one lane per output row in the
 * reference's order, so the output equals ml/ref bit for bit.
 */
#include <immintrin.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8.h>

#include "../kernels_x86.h"

#define Q8_INLINE static inline __attribute__((always_inline))

Q8_INLINE __m512i q8_bcast4(const int8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return _mm512_set1_epi32(v);
}

/* G groups (16 rows each) x MT activation rows, G * MT <= 4. */
Q8_INLINE void q8_tile(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g, size_t m0,
		       const int G, const int MT, const float *bias, float *y, size_t ldy)
{
	const size_t nb = w->nb;
	const __m512i flip = _mm512_set1_epi8((char)0x80);
	__m512 facc[2][4];

#pragma GCC unroll 2
	for (int gi = 0; gi < G; gi++)
#pragma GCC unroll 4
		for (int mi = 0; mi < MT; mi++)
			facc[gi][mi] = _mm512_setzero_ps();

	for (size_t b = 0; b < nb; b++) {
		__m512i wv[2][8];
		__m512 wsc[2];

#pragma GCC unroll 2
		for (int gi = 0; gi < G; gi++) {
			const int8_t *wq = w->q + kw_q8w_qoff(nb, g + gi, b);
#pragma GCC unroll 8
			for (int c = 0; c < 8; c++)
				wv[gi][c] = _mm512_xor_si512(_mm512_load_si512((const void *)(wq + c * 64)), flip);
			wsc[gi] = _mm512_cvtph_ps(_mm256_load_si256(
				(const __m256i *)(w->d + kw_q8w_doff(nb, g + gi, b))));
		}
#pragma GCC unroll 4
		for (int mi = 0; mi < MT; mi++) {
			const size_t m = m0 + mi;
			const int8_t *xq = a->q + (m * nb + b) * 32;
			const __m512i corr = _mm512_set1_epi32(-128 * a->s[m * nb + b]);
			const __m512 xd = _mm512_set1_ps(a->d[m * nb + b]);
			__m512i av[8];

#pragma GCC unroll 8
			for (int c = 0; c < 8; c++)
				av[c] = q8_bcast4(xq + 4 * c);
#pragma GCC unroll 2
			for (int gi = 0; gi < G; gi++) {
				__m512i i0 = corr, i1 = _mm512_setzero_si512();

				i0 = _mm512_dpbusd_epi32(i0, wv[gi][0], av[0]);
				i1 = _mm512_dpbusd_epi32(i1, wv[gi][1], av[1]);
				i0 = _mm512_dpbusd_epi32(i0, wv[gi][2], av[2]);
				i1 = _mm512_dpbusd_epi32(i1, wv[gi][3], av[3]);
				i0 = _mm512_dpbusd_epi32(i0, wv[gi][4], av[4]);
				i1 = _mm512_dpbusd_epi32(i1, wv[gi][5], av[5]);
				i0 = _mm512_dpbusd_epi32(i0, wv[gi][6], av[6]);
				i1 = _mm512_dpbusd_epi32(i1, wv[gi][7], av[7]);
				facc[gi][mi] = _mm512_add_ps(facc[gi][mi],
					_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)),
						      _mm512_mul_ps(wsc[gi], xd)));
			}
		}
	}
#pragma GCC unroll 2
	for (int gi = 0; gi < G; gi++) {
		size_t n0 = (g + gi) * KW_Q8_ROWS;
		size_t valid = KW_MIN((size_t)KW_Q8_ROWS, w->n - n0);
		__mmask16 mask = (__mmask16)((1u << valid) - 1u);
		__m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();

#pragma GCC unroll 4
		for (int mi = 0; mi < MT; mi++) {
			__m512 v = bias ? _mm512_add_ps(facc[gi][mi], bv) : facc[gi][mi];

			_mm512_mask_storeu_ps(y + (m0 + mi) * ldy + n0, mask, v);
		}
	}
}

void kw_q8_gemm_avx512vnni(const struct kw_q8w *w, const struct kw_q8_act *a, size_t g0,
			       size_t g1, const float *bias, float *y, size_t ldy)
{
	size_t g = g0, m;

	/* GEMV: two groups (32 rows) share each activation broadcast and give four independent
	 * VPDPBUSD chains. Software prefetch (1-8 lines, 4-16 KiB ahead) measured no better
	 * than the hardware prefetchers on the 512-byte sequential blocks, so there is none. */
	if (a->m == 1) {
		for (; g + 2 <= g1; g += 2)
			q8_tile(w, a, g, 0, 2, 1, bias, y, ldy);
		if (g < g1)
			q8_tile(w, a, g, 0, 1, 1, bias, y, ldy);
		return;
	}
	/* GEMM: the 8 weight vectors of a block stay in registers for 4 activation rows */
	for (; g < g1; g++) {
		for (m = 0; m + 4 <= a->m; m += 4)
			q8_tile(w, a, g, m, 1, 4, bias, y, ldy);
		switch (a->m - m) {
		case 3: q8_tile(w, a, g, m, 1, 3, bias, y, ldy); break;
		case 2: q8_tile(w, a, g, m, 1, 2, bias, y, ldy); break;
		case 1: q8_tile(w, a, g, m, 1, 1, bias, y, ldy); break;
		default: break;
		}
	}
}
