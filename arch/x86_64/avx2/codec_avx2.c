/*
 * AVX2 + FMA + F16C variants of the blockwise codec and conversion kernels
 * (<kw/ml/kernels.h>). Each equals the C reference in ml/ref/ bit for bit. The blockwise encoder runs the decade
 * model proven at table init and falls back, 32 elements at a time, to the reference's own
 * steps (IEEE division, table walk with 32-bit gathers); tails use the shared scalar helpers.
 */
#include <immintrin.h>
#include <string.h>

#include <kw/ml/blockwise.h>
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>

#include "../kernels_x86.h"

/* Result index per lane: fast[key >> 16] holds (base << 17) | threshold low bits. */
static inline __m256i bw_idx8(const struct kw_bw_table *t, __m256 y)
{
	const __m256i top = _mm256_set1_epi32((int)0x80000000u);
	__m256i bits = _mm256_castps_si256(y);
	__m256i key = _mm256_xor_si256(bits, _mm256_or_si256(_mm256_srai_epi32(bits, 31), top));
	__m256i e = _mm256_i32gather_epi32((const int *)(const void *)t->fast,
					   _mm256_srli_epi32(key, 16), 4);
	__m256i low = _mm256_and_si256(e, _mm256_set1_epi32(0x1ffff));
	__m256i kl = _mm256_and_si256(key, _mm256_set1_epi32(0xffff));
	/* base + 1 - (low > kl): both sides < 2^17, so the signed compare is exact */
	__m256i idx = _mm256_sub_epi32(_mm256_add_epi32(_mm256_srli_epi32(e, 17), _mm256_set1_epi32(1)),
				       _mm256_and_si256(_mm256_cmpgt_epi32(low, kl), _mm256_set1_epi32(1)));
	__m256i nan = _mm256_castps_si256(_mm256_cmp_ps(y, y, _CMP_UNORD_Q));

	return _mm256_andnot_si256(nan, idx);  /* NaN -> 0, as in kw_bw_quant_one */
}

/* The exact rule for 32 elements: IEEE division, table gather, as kw_bw_quant_ref. */
/* (not inlined: keeps the model loop from holding x in registers for this rare path) */
static __attribute__((noinline)) void bw_exact32(const struct kw_bw_table *t, const float *x,
						 __m256 mvec, uint8_t *q)
{
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	__m256i i0 = bw_idx8(t, _mm256_div_ps(_mm256_loadu_ps(x), mvec));
	__m256i i1 = bw_idx8(t, _mm256_div_ps(_mm256_loadu_ps(x + 8), mvec));
	__m256i i2 = bw_idx8(t, _mm256_div_ps(_mm256_loadu_ps(x + 16), mvec));
	__m256i i3 = bw_idx8(t, _mm256_div_ps(_mm256_loadu_ps(x + 24), mvec));
	__m256i p = _mm256_packus_epi16(_mm256_packus_epi32(i0, i1), _mm256_packus_epi32(i2, i3));

	_mm256_storeu_si256((__m256i *)(void *)q, _mm256_permutevar8x32_epi32(p, perm));
}

/* Registers of the decade model (struct kw_bw_model), loaded once per call. */
struct bw_model8 {
	__m256 r, alpha, beta, fbias;
	__m256i cell_k, cell_c;
};

/*
 * kw_bw_model_bits() + win for 8 lanes of x, with q = x * RN(1/absmax): adding win units of
 * 2^-15 to 383.5 adds win to the bits of F (which stays in [256, 512)), so a lane is unsure
 * exactly when the low 15 bits are below 2 * win, and bits >> 15 still give 0x8700 + index
 * for every sure lane. *wmin and *amax collect those low bits and |q| for one check per 32.
 */
static inline __m256i bw_model8(const struct bw_model8 *m, __m256 x, __m256i *wmin, __m256 *amax)
{
	const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
	__m256 q = _mm256_mul_ps(x, m->r);
	__m256 a = _mm256_andnot_ps(sign, q);
	/* the high 16-bit half of each lane is 0, so the 16-bit ops act per 32-bit lane */
	__m256i c = _mm256_subs_epu16(_mm256_mulhi_epu16(_mm256_srli_epi32(_mm256_castps_si256(a), 16),
							 m->cell_k), m->cell_c);
	__m256i ce = _mm256_slli_epi32(c, 23);
	__m256 k, g, base;
	__m256i fb;

	k = _mm256_fmadd_ps(a, _mm256_permutevar8x32_ps(m->alpha, c), m->beta);
	k = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(k), ce));
	g = _mm256_min_ps(_mm256_sub_ps(k, _mm256_set1_ps(1.0f)), _mm256_mul_ps(k, _mm256_set1_ps(0.2f)));
	g = _mm256_min_ps(k, _mm256_max_ps(g, _mm256_set1_ps(-0.5f)));
	base = _mm256_castsi256_ps(_mm256_add_epi32(ce, _mm256_set1_epi32(0x3f800000)));
	g = _mm256_add_ps(g, _mm256_sub_ps(base, _mm256_set1_ps(0.5f)));
	fb = _mm256_castps_si256(_mm256_add_ps(_mm256_xor_ps(g, _mm256_and_ps(q, sign)), m->fbias));
	*amax = _mm256_max_ps(*amax, a);
	*wmin = _mm256_min_epi32(*wmin, _mm256_and_si256(fb, _mm256_set1_epi32(0x7fff)));
	return _mm256_srli_epi32(fb, 15);  /* 0x8700 + index */
}

/*
 * Per block: absmax from the integer max of |x| bits (equal to the float max when the block
 * holds no NaN or Inf; such blocks take the exact path). Then, per 32 elements, the decade
 * model on q = x * RN(1/absmax); if any lane is unsure, those 32 go through the exact rule.
 */
void kw_bw_quant_avx2(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		      uint8_t *q)
{
	const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	const struct kw_bw_model *md = &t->model;
	struct bw_model8 m;
	size_t b, i;

	m.alpha = _mm256_loadu_ps(md->alpha);
	m.beta = _mm256_set1_ps(md->beta);
	m.cell_k = _mm256_set1_epi32((int)md->cell_k);
	m.cell_c = _mm256_set1_epi32((int)md->cell_c);
	m.fbias = _mm256_set1_ps(383.5f + (float)md->win * 0x1p-15f);
	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		__m256i mv = _mm256_setzero_si256(), mv2 = _mm256_setzero_si256();
		uint32_t mb = 0, tmp[8];
		float mf;

		for (i = b; i + 16 <= end; i += 16) {
			const __m256i *p = (const __m256i *)(const void *)(x + i);

			mv = _mm256_max_epu32(_mm256_and_si256(_mm256_loadu_si256(p), absmask), mv);
			mv2 = _mm256_max_epu32(_mm256_and_si256(_mm256_loadu_si256(p + 1), absmask), mv2);
		}
		_mm256_storeu_si256((__m256i *)(void *)tmp, _mm256_max_epu32(mv, mv2));
		for (int k = 0; k < 8; k++)
			mb = tmp[k] > mb ? tmp[k] : mb;
		for (; i < end; i++) {
			uint32_t v;

			memcpy(&v, x + i, 4);
			v &= 0x7fffffffu;
			mb = v > mb ? v : mb;
		}
		if (mb > 0x7f800000u) {  /* NaN present: the float max ignores it */
			mf = 0.0f;
			for (i = b; i < end; i++) {
				float a = __builtin_fabsf(x[i]);
				mf = a > mf ? a : mf;
			}
		} else {
			memcpy(&mf, &mb, 4);
		}
		absmax[b / KW_BW_BLOCK] = mf;
		if (mf == 0.0f) {
			memset(q + b, t->zero_index, end - b);
			continue;
		}
		if (!t->fast_ok) {
			kw_bw_quant_ref(t, x + b, end - b, absmax + b / KW_BW_BLOCK, q + b);
			continue;
		}
		{
			const __m256 mvec = _mm256_set1_ps(mf);

			i = b;
			if (md->ok && mb < 0x7f800000u && kw_bw_model_block_ok(mf)) {
				const __m256i win2 = _mm256_set1_epi32((int)(2 * md->win));
				const __m256 cut = _mm256_set1_ps(md->cut);

				uint16_t redo[KW_BW_BLOCK / 32];
				size_t nredo = 0, k;

				m.r = _mm256_set1_ps(1.0f / mf);
				for (; i + 32 <= end; i += 32) {
					__m256i wmin = _mm256_set1_epi32(0x7fff), lo8 = _mm256_set1_epi16(0xff);
					__m256 amax = _mm256_setzero_ps();
					__m256i f0, f1, f2, f3, p01, p23, bad;

					/* pull the next block in while this one computes from L1 (a
					 * prefetch past the array end is harmless: it never faults) */
					_mm_prefetch((const char *)(x + i + KW_BW_BLOCK), _MM_HINT_T0);
					_mm_prefetch((const char *)(x + i + KW_BW_BLOCK + 16), _MM_HINT_T0);
					f0 = bw_model8(&m, _mm256_loadu_ps(x + i), &wmin, &amax);
					f1 = bw_model8(&m, _mm256_loadu_ps(x + i + 8), &wmin, &amax);
					f2 = bw_model8(&m, _mm256_loadu_ps(x + i + 16), &wmin, &amax);
					f3 = bw_model8(&m, _mm256_loadu_ps(x + i + 24), &wmin, &amax);
					p01 = _mm256_and_si256(_mm256_packus_epi32(f0, f1), lo8);
					p23 = _mm256_and_si256(_mm256_packus_epi32(f2, f3), lo8);
					bad = _mm256_or_si256(_mm256_cmpgt_epi32(win2, wmin),
							      _mm256_castps_si256(_mm256_cmp_ps(amax, cut, _CMP_GE_OQ)));

					/* an unsure group is noted without a branch (they are rare and
					 * random, so a branch mispredicts) and redone after the loop */
					redo[nredo] = (uint16_t)(i - b);
					nredo += (size_t)!_mm256_testz_si256(bad, bad);
					_mm256_storeu_si256((__m256i *)(void *)(q + i),
							    _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), perm));
				}
				for (k = 0; k < nredo; k++)
					bw_exact32(t, x + b + redo[k], mvec, q + b + redo[k]);
			}
			for (; i + 32 <= end; i += 32)
				bw_exact32(t, x + i, mvec, q + i);
			for (; i < end; i++)
				q[i] = kw_bw_quant_one(t, x[i] / mf);
		}
	}
}

/*
 * code[q] * absmax equals st[q] with st = code * absmax computed once per block (the same
 * single multiply), so the loop is a pure byte-indexed table read. On the AMD and Intel
 * cores measured, scalar loads into this 1 KiB table beat vpgatherdd (see doc/ml-codec.md).
 */
void kw_bw_dequant_avx2(const float *code, const uint8_t *q, const float *absmax, size_t n,
			float *out)
{
	float st[256] __attribute__((aligned(32)));
	size_t b, i;

	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		const __m256 av = _mm256_set1_ps(absmax[b / KW_BW_BLOCK]);

		for (i = 0; i < 256; i += 8)
			_mm256_store_ps(st + i, _mm256_mul_ps(_mm256_loadu_ps(code + i), av));
		for (i = b; i + 8 <= end; i += 8) {
			const uint8_t *p = q + i;
			_mm256_storeu_ps(out + i, _mm256_setr_ps(st[p[0]], st[p[1]], st[p[2]], st[p[3]],
								 st[p[4]], st[p[5]], st[p[6]], st[p[7]]));
		}
		for (; i < end; i++)
			out[i] = st[q[i]];
	}
}

void kw_cvt_f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
		__m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
		_mm_storeu_si128((__m128i *)(void *)(dst + i), a);
		_mm_storeu_si128((__m128i *)(void *)(dst + i + 8), b);
	}
	for (; i < n; i++)
		dst[i] = kw_f32_to_fp16(src[i]);
}

void kw_cvt_f32_to_f16_clamp_avx2(uint16_t *dst, const float *src, size_t n)
{
	const __m256 hi = _mm256_set1_ps(65504.0f), lo = _mm256_set1_ps(-65504.0f);
	size_t i = 0;

	/* max_ps/min_ps return their second operand when one is NaN: NaN passes through. */
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_loadu_ps(src + i)));
		_mm_storeu_si128((__m128i *)(void *)(dst + i),
				 _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	}
	kw_cvt_f32_to_f16_clamp_ref(dst + i, src + i, n - i);
}

void kw_cvt_f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
		_mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
	}
	for (; i < n; i++)
		dst[i] = kw_fp16_to_f32(src[i]);
}

static inline __m128i bf16_8(__m256 v)
{
	const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
	__m256i u = _mm256_castps_si256(v);
	__m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
	__m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
	__m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
	__m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
	__m256i w = _mm256_blendv_epi8(r, qn, nan);
	__m128i p = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
	return p;
}

void kw_cvt_f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(void *)(dst + i), bf16_8(_mm256_loadu_ps(src + i)));
	for (; i < n; i++)
		dst[i] = kw_f32_to_bf16(src[i]);
}

void kw_cvt_bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
		_mm256_storeu_si256((__m256i *)(void *)(dst + i),
				    _mm256_slli_epi32(_mm256_cvtepu16_epi32(a), 16));
	}
	for (; i < n; i++)
		dst[i] = kw_bf16_to_f32(src[i]);
}
