/*
 * Top-K sparsification with error feedback (layout in <kw/ml/codec.h>). Selection is a
 * quickselect over 64-bit keys |v|bits << 32 | ~index: keys are unique, so "k largest" is
 * exact and equal magnitudes resolve to the lower index without a second pass.
 */
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>

size_t kw_topk_size(uint32_t k) { return 8 + 8 * (size_t)k; }
size_t kw_topk_scratch_size(size_t numel) { return numel * sizeof(uint64_t); }

static uint64_t topk_key(float v, uint32_t i)
{
	return ((uint64_t)(kw_f32_bits(v) & 0x7fffffffu) << 32) | (uint32_t)~i;
}

/* Returns the value that would sit at position kth of a[0..n) sorted ascending. */
static uint64_t select_kth(uint64_t *a, size_t n, size_t kth)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
		uint64_t p, t;

		/* median of three as pivot keeps sorted input linear */
		if (a[mid] < a[lo]) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
		if (a[hi] < a[lo]) { t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
		if (a[hi] < a[mid]) { t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
		p = a[mid];
		while (i <= j) {
			while (a[i] < p) i++;
			while (a[j] > p) j--;
			if (i <= j) {
				t = a[i]; a[i] = a[j]; a[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (kth <= j)
			hi = j;
		else if (kth >= i)
			lo = i;
		else
			return a[kth];
	}
	return a[kth];
}

int kw_topk_encode(const float *x, float *residual, size_t numel, uint32_t k, void *scratch,
		   size_t scratch_len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint64_t *keys = scratch, thr = 0;
	size_t i, w = 0;

	if ((!x || !residual) && numel)
		return -KW_EINVAL;
	if (!out_len || numel > UINT32_MAX || k > numel || !out)
		return -KW_EINVAL;
	if (cap < kw_topk_size(k))
		return -KW_ENOSPC;
	if (k && (scratch_len < kw_topk_scratch_size(numel) || !scratch))
		return -KW_ENOSPC;
	for (i = 0; i < numel; i++)
		residual[i] += x[i];
	if (k) {
		for (i = 0; i < numel; i++)
			keys[i] = topk_key(residual[i], (uint32_t)i);
		thr = select_kth(keys, numel, numel - k);
	}
	kw_put_le32(out, (uint32_t)numel);
	kw_put_le32(out + 4, k);
	for (i = 0; i < numel && w < k; i++) {
		if (topk_key(residual[i], (uint32_t)i) >= thr) {
			kw_put_le32(out + 8 + 4 * w, (uint32_t)i);
			kw_put_le32(out + 8 + 4 * (size_t)k + 4 * w, kw_f32_bits(residual[i]));
			residual[i] = 0.0f;
			w++;
		}
	}
	*out_len = kw_topk_size(k);
	return 0;
}

int kw_topk_decode(const uint8_t *buf, size_t len, size_t numel, float *out)
{
	uint32_t k, i;
	int64_t prev = -1;

	if ((!buf && len) || (!out && numel))
		return -KW_EINVAL;
	if (len < 8 || kw_get_le32(buf) != numel)
		return -KW_EBADMSG;
	k = kw_get_le32(buf + 4);
	if (k > numel || len - 8 < 8 * (size_t)k)
		return -KW_EBADMSG;
	if (len - 8 > 8 * (size_t)k)
		return -KW_EMSGSIZE;
	for (i = 0; i < k; i++) {
		uint32_t ix = kw_get_le32(buf + 8 + 4 * (size_t)i);
		if ((int64_t)ix <= prev || ix >= numel)
			return -KW_EBADMSG;
		prev = ix;
	}
	memset(out, 0, numel * sizeof(float));
	for (i = 0; i < k; i++)
		out[kw_get_le32(buf + 8 + 4 * (size_t)i)] =
			kw_bits_f32(kw_get_le32(buf + 8 + 4 * (size_t)k + 4 * (size_t)i));
	return 0;
}
