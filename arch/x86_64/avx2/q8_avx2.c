/* AVX2 int8 kernels: the activation quantizer, and the PMADDUBSW GEMM whose body is in
 * ../q8_x86_256.inc. */
#include <immintrin.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/ml/q8.h>

#include "../kernels_x86.h"

#define Q8_VNNI 0
#define Q8_GEMM_NAME kw_q8_gemm_avx2
#include "../q8_x86_256.inc"

/*
 * The activation quantizer of every x86-64 table (AVX2 is enough for it). Same arithmetic as
 * ml/ref/q8_ref.c: amax by max(|x|) (exact), d = amax / 127, x * (127 / amax) clamped to
 * +-127, rounded half-to-even by VCVTPS2DQ under the default MXCSR.
 */
void kw_q8_quantize_avx2(const float *x, size_t k, int8_t *q, float *d, int32_t *s)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	size_t nb = (k + 31) / 32;

	for (size_t b = 0; b < nb; b++) {
		float tail[32];
		const float *xb = x + b * 32;
		__m256 v0, v1, v2, v3, mx;
		__m128 m4;
		__m256i i0, i1, i2, i3, sum, p;
		__m128i s4;
		float amax, id;

		if (k - b * 32 < 32) {
			size_t len = k - b * 32;

			memset(tail, 0, sizeof(tail));
			memcpy(tail, xb, len * sizeof(float));
			xb = tail;
		}
		v0 = _mm256_loadu_ps(xb);
		v1 = _mm256_loadu_ps(xb + 8);
		v2 = _mm256_loadu_ps(xb + 16);
		v3 = _mm256_loadu_ps(xb + 24);
		mx = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
				   _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
		m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
		amax = _mm_cvtss_f32(m4);
		d[b] = amax / 127.0f;
		id = amax > 0.0f ? 127.0f / amax : 0.0f;
		{
			const __m256 vid = _mm256_set1_ps(id);

			i0 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v0, vid), lo), hi));
			i1 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v1, vid), lo), hi));
			i2 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v2, vid), lo), hi));
			i3 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v3, vid), lo), hi));
		}
		sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
		s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
		s[b] = _mm_cvtsi128_si32(s4);
		p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
		_mm256_storeu_si256((__m256i *)(q + b * 32), _mm256_permutevar8x32_epi32(p, perm));
	}
}
