/*
 * UNIFORM_8BIT and QUANTILE_8BIT, which share one layout: int64 codebook length, float32
 * codebook, uint8 index per element (hivemind/compression/quantization.py,
 * Uniform8BitQuantization and Quantile8BitQuantization, hivemind @ 213bff98). Both encoders
 * pick bucket borders, then write each bucket's mean as its codebook entry.
 */
#include <math.h>
#include <string.h>

#include <kw/compiler.h>

#include "codec_common.h"

/* Round to nearest even without lrintf: valid for |v| < 2^22 (callers clamp first). */
static inline float rne_small(float v) { return (v + 12582912.0f) - 12582912.0f; }

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
	kw_codec_put_le64(out, 256);
	for (i = 0; i < 256; i++)
		kw_codec_put_f32(out + 8 + 4 * i, cnt[i] ? (float)(sums[i] / cnt[i]) : 0.0f);
}

void kw_codec_uniform_encode(const float *x, size_t n, uint8_t *out)
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
	for (uint32_t j = 0; j < KW_QQ_N; j++) {
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

void kw_codec_quantile_encode(const float *x, size_t n, float *scratch, uint8_t *out)
{
	uint8_t *idx = out + 8 + 1024;
	size_t cs, nch, ch, i;
	float *part, border[KW_QQ_N];

	if (n == 0) {
		write_codebook(x, 0, idx, out);
		return;
	}
	cs = kw_qq_chunk_size(n);
	nch = (n - 1) / cs + 1;
	part = scratch + KW_MIN(cs, n);
	for (ch = 0; ch < nch; ch++) {
		size_t off = ch * cs, m = KW_MIN(cs, n - off);

		memcpy(scratch, x + off, m * sizeof(float));
		sort_floats(scratch, m);
		quantiles257(scratch, m, part + ch * KW_QQ_N);
	}
	sort_floats(part, nch * KW_QQ_N);
	quantiles257(part, nch * KW_QQ_N, border);
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

int kw_codec_codebook_decode(const uint8_t *buf, size_t len, size_t numel, float *out)
{
	uint64_t cl;
	float book[256];
	const uint8_t *idx;
	size_t i;

	if (len < 8)
		return -KW_EBADMSG;
	cl = kw_codec_get_le64(buf);
	/* uint8 indices can address at most 256 entries; a longer book is not hivemind's. */
	if (cl == 0 || cl > 256)
		return numel == 0 && cl == 0 && len == 8 ? 0 : -KW_EBADMSG;
	if (len - 8 < cl * 4 + numel)
		return -KW_EBADMSG;
	if (len - 8 > cl * 4 + numel)
		return -KW_EMSGSIZE;
	for (i = 0; i < cl; i++)
		book[i] = kw_codec_get_f32(buf + 8 + 4 * i);
	idx = buf + 8 + cl * 4;
	for (i = 0; i < numel; i++) {
		if (idx[i] >= cl)
			return -KW_EBADMSG;
		out[i] = book[idx[i]];
	}
	return 0;
}
