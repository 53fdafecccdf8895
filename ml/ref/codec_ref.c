/*
 * Portable C reference of the BLOCKWISE_8BIT kernels (<kw/ml/blockwise.h>). Written so
 * compilers can vectorise it (no lrintf, no calls in the loops) and so that the SIMD
 * variants can reproduce it bit for bit: the same division, the same table walk, the same
 * comparisons. Built with -ffp-contract=off so no FMA changes a product.
 */
#include <kw/ml/blockwise.h>
#include <kw/ml/kernels.h>

void kw_bw_quant_ref(const struct kw_bw_table *t, const float *x, size_t n, float *absmax,
		     uint8_t *q)
{
	size_t b, i;

	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		float m = 0.0f;

		/* NaN never wins the comparison, like bitsandbytes' fmax(). */
		for (i = b; i < end; i++) {
			float a = __builtin_fabsf(x[i]);
			m = a > m ? a : m;
		}
		absmax[b / KW_BW_BLOCK] = m;
		if (m == 0.0f) {
			for (i = b; i < end; i++)
				q[i] = t->zero_index;
			continue;
		}
		/* divide in a separate loop so the compiler vectorises it; the lookups follow */
		for (i = b; i < end; i += 256) {
			size_t cnt = end - i < 256 ? end - i : 256, j;
			float y[256];

			for (j = 0; j < cnt; j++)
				y[j] = x[i + j] / m;
			for (j = 0; j < cnt; j++)
				q[i + j] = kw_bw_quant_one(t, y[j]);
		}
	}
}

void kw_bw_dequant_ref(const float *code, const uint8_t *q, const float *absmax, size_t n,
		       float *out)
{
	size_t b, i;

	for (b = 0; b < n; b += KW_BW_BLOCK) {
		size_t end = n - b < KW_BW_BLOCK ? n : b + KW_BW_BLOCK;
		float a = absmax[b / KW_BW_BLOCK], st[256];

		/* code[q] * a == st[q]: the same single multiply, done 256 times per block */
		for (i = 0; i < 256; i++)
			st[i] = code[i] * a;
		for (i = b; i < end; i++)
			out[i] = st[q[i]];
	}
}
