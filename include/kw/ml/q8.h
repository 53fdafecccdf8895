/*
 * Block-quantized int8 matmul (Q8_0 style): y[m][n] = sum_k x[m][k] * W[n][k] (+ bias[n]),
 * W stored int8 in blocks of 32 along K with one fp16 scale per block, x quantized on the
 * fly the same way, int32 accumulation per block, fp32 output. W is laid out as a PyTorch
 * Linear weight: one row per output column n, K contiguous.
 *
 * Packed weight layout (struct kw_q8w, built by kw_q8w_pack_* into caller memory):
 *   rows are grouped by KW_Q8_ROWS = 16 (N is padded to a multiple of 16 with zero rows);
 *   K is padded to nb = ceil(K/32) blocks with zero weights (the padding contributes 0).
 *   A block of a group is 512 bytes of quants: chunk c (0..7), row r (0..15), byte j (0..3)
 *        at c * 64 + r * 4 + j  holds  W[16g + r][32b + 4c + j]
 *   so one 512-bit load (or 2 x 256, 4 x 128) holds 4 consecutive K values of 16 rows:
 *   exactly the operand of VNNI vpdpbusd / arm64 SDOT with the 4 activation bytes
 *   broadcast, each int32 lane accumulating one output row (no horizontal reductions).
 *   Blocks go in pairs with their scales right behind them, one 1088-byte record
 *   (17 cache lines) per group and block pair, so a group is ONE sequential stream:
 *        [quants b=2p (512)] [quants b=2p+1 (512)] [16 fp16 scales b=2p] [16 fp16 scales b=2p+1]
 *   record (g, p) at byte (g * ceil(nb/2) + p) * 1088; an odd nb leaves the last record's
 *   second half unused. Scales: fp16 scale of W[16g + r][32b .. 32b + 31] at entry r.
 *   Weight values may use the full int8 range -128..127. kw_q8w_get_q/get_d read it back.
 *
 * Quantized activations (struct kw_q8_act, in caller scratch): per row m, nb*32 int8 quants
 * in -127..127 (zero-padded), an fp32 scale per block (max|x| / 127, exact fp32 rather than
 * fp16: scratch is transient so there is no reason to lose precision) and the int32 sum of
 * the block's quants (VNNI's unsigned x signed product needs it to undo a +128 bias).
 *
 * Result definition (every kernel variant produces it bit for bit; see doc/ml-gemm.md):
 *   isum_b = sum over the block of (int32)Wq * (int32)xq          (exact integer)
 *   acc    = 0.0f; for b in 0..nb-1: acc = acc + (float)isum_b * (fp32(Wd_b) * xd_b)
 *   y      = bias ? acc + bias[n] : acc
 * evaluated in fp32 with round-to-nearest and no fused multiply-add. SIMD kernels vectorise
 * across output rows (one lane per n), so each lane follows exactly this sequence.
 * Inputs must be finite; a NaN/Inf activation gives unspecified (memory-safe) output.
 */
#ifndef KW_ML_Q8_H
#define KW_ML_Q8_H

#include <stddef.h>
#include <stdint.h>

#include <kw/ml/kernels.h>

#define KW_Q8_BLOCK 32      /* K values per scale */
#define KW_Q8_ROWS  16      /* weight rows interleaved per group */
#define KW_Q8_MAX_M 64      /* activation rows per call */
#define KW_Q8_ALIGN 64      /* alignment of packed weights and scratch */
#define KW_Q8_PAIR_BYTES 1088 /* one packed record: 2 blocks x (512 quants + 32 scale bytes) */

/* Packed weights; the memory is the caller's (arena, pool, model mapping). */
struct kw_q8w {
	size_t n, k;        /* logical shape: n output rows of k inputs */
	size_t nb;          /* blocks per row: ceil(k / 32) */
	size_t ngroups;     /* ceil(n / 16) */
	int8_t *q;          /* ngroups * ceil(nb/2) * 1088 bytes, layout above */
	uint16_t *d;        /* the same memory seen as fp16 (scale entries per kw_q8w_doff) */
};

/* Quantized activations in caller scratch, layout above. */
struct kw_q8_act {
	size_t m, k, nb;
	int8_t *q;          /* m * nb * 32 */
	float *d;           /* m * nb */
	int32_t *s;         /* m * nb */
};

/* Bytes kw_q8w_init needs for an n x k matrix (including alignment slack), 0 on overflow. */
size_t kw_q8w_size(size_t n, size_t k);
/* Lays out an all-zero n x k matrix in mem/len. -KW_EINVAL for n or k of 0 or NULL mem,
 * -KW_ENOSPC when len < kw_q8w_size(n, k). */
int kw_q8w_init(struct kw_q8w *w, size_t n, size_t k, void *mem, size_t len);
/*
 * Quantizes fp32 rows (row n at src + n * ld, k floats) into w: per block
 * scale = fp16(max|x| / 127), q = clamp(round_half_even(x / fp32(scale)), -127, 127); a block
 * whose scale rounds to 0 in fp16 (max|x| < ~7.6e-6) becomes all zeros. Not a hot path.
 */
int kw_q8w_pack_f32(struct kw_q8w *w, const float *src, size_t ld);
/* Stores one row given as k int8 quants and nb fp16 scales (any int8 values). */
int kw_q8w_set_row(struct kw_q8w *w, size_t row, const int8_t *q, const uint16_t *d);
/* Reads weight quant W[row][col] / the fp16 scale of (row, block); no bounds errors: callers
 * pass indices below n / k / nb. */
int8_t kw_q8w_get_q(const struct kw_q8w *w, size_t row, size_t col);
uint16_t kw_q8w_get_d(const struct kw_q8w *w, size_t row, size_t blk);

/* Scratch bytes for m activation rows of k values, 0 on overflow. */
size_t kw_q8_act_scratch_size(size_t m, size_t k);
/* Carves m x k activations out of scratch (-KW_EINVAL m out of 1..KW_Q8_MAX_M or k 0,
 * -KW_ENOSPC short scratch). The scratch stays the caller's and is reused per call. */
int kw_q8_act_init(struct kw_q8_act *a, size_t m, size_t k, void *scratch, size_t len);

/* Offsets into the packed layout above, shared so no kernel variant can disagree on them:
 * byte offset of block b's quants in group g, and uint16 index of its 16 scales, both from
 * w->q (w->d aliases w->q). */
static inline size_t kw_q8w_qoff(size_t nb, size_t g, size_t b)
{
	return (g * ((nb + 1) / 2) + b / 2) * (size_t)KW_Q8_PAIR_BYTES +
	       (b & 1) * (size_t)(KW_Q8_BLOCK * KW_Q8_ROWS);
}

static inline size_t kw_q8w_doff(size_t nb, size_t g, size_t b)
{
	return ((g * ((nb + 1) / 2) + b / 2) * (size_t)KW_Q8_PAIR_BYTES +
		2 * (size_t)(KW_Q8_BLOCK * KW_Q8_ROWS) + (b & 1) * (size_t)(2 * KW_Q8_ROWS)) / 2;
}

/* The kernels come from a <kw/ml/kernels.h> table: kw_kernels_best() for production,
 * kw_kernels_get(v) to force a variant. */
/* Quantizes m rows of x (row i at x + i * ldx, a->k floats) into a. */
int kw_q8_quantize(const struct kw_kernels *kk, const float *x, size_t ldx,
		   struct kw_q8_act *a);
/* y = a * w^T (+ bias) on the calling thread. -KW_EINVAL on shape mismatch or ldy < w->n. */
int kw_q8_gemm(const struct kw_kernels *kk, const struct kw_q8w *w,
	       const struct kw_q8_act *a, const float *bias, float *y, size_t ldy);

#endif /* KW_ML_Q8_H */
