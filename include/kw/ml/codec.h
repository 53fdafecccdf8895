/*
 * Tensor compression codecs byte-compatible with Hivemind's runtime.proto Tensor.buffer
 * (the hivemind/compression/ modules and hivemind/proto/runtime.proto at hivemind 213bff98,
 * the commit Petals 2.3 pins), plus this project's Top-K sparsification with error feedback.
 * Formats are documented in doc/ml-codec.md; all numbers are little-endian.
 *
 *   NONE (0)            raw elements of the wire dtype (float32, float16 or bfloat16 here)
 *   MEANSTD_16BIT (1)   fp16 q[numel] || float32 mean[R] || float32 std[R], R = numel/last_dim
 *   FLOAT16 (2)         fp16[numel] after clamping to +-65504
 *   QUANTILE_8BIT (3)   int64 codebook_len || float32 codebook[len] || uint8 index[numel]
 *   UNIFORM_8BIT (4)    same layout as QUANTILE_8BIT
 *   BLOCKWISE_8BIT (5)  int64 nblocks || int64 256 || float32 absmax[nblocks] ||
 *                       float32 code[256] || uint8 q[numel]   (blocks of 4096)
 *
 * The caller owns everything: struct kw_codec (about 258 KiB: the blockwise lookup table) is
 * built once with kw_codec_init() and then only read, so one instance can serve many
 * threads. Encoders write into caller buffers sized with kw_codec_max_size() and use caller
 * scratch sized with kw_codec_scratch_size(); nothing allocates.
 *
 * Decoders are bounded parsers of network input: they check the exact length implied by
 * numel (and the header fields) and return -KW_EBADMSG for a short or malformed buffer,
 * -KW_EMSGSIZE when it holds more bytes than the layout allows.
 */
#ifndef KW_ML_CODEC_H
#define KW_ML_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <kw/ml/blockwise.h>
#include <kw/ml/kernels.h>

/* Hivemind runtime.proto CompressionType values (wire numbers; keep them). */
enum kw_compression {
	KW_COMP_NONE = 0,
	KW_COMP_MEANSTD_16BIT = 1,
	KW_COMP_FLOAT16 = 2,
	KW_COMP_QUANTILE_8BIT = 3,
	KW_COMP_UNIFORM_8BIT = 4,
	KW_COMP_BLOCKWISE_8BIT = 5,
	KW_COMP_COUNT
};

/* Element type of a NONE buffer (the Tensor.dtype string names it). */
enum kw_codec_dtype {
	KW_CODEC_F32 = 0,   /* "float32" */
	KW_CODEC_F16,       /* "float16" */
	KW_CODEC_BF16,      /* "bfloat16": raw bf16 sent; legacy float32 payload accepted */
	KW_CODEC_DTYPE_COUNT
};

/* "float32" / "float16" / "bfloat16"; never NULL. */
const char *kw_codec_dtype_name(enum kw_codec_dtype d);
/* Maps a Tensor.dtype string (len bytes, no NUL needed) to a dtype; -KW_ENOTSUP if unknown. */
int kw_codec_dtype_parse(const char *name, size_t len, enum kw_codec_dtype *out);

struct kw_codec {
	const struct kw_kernels *k;  /* the kernel table of the variant chosen at init */
	struct kw_bw_table bw;       /* built from kw_bw_default_code */
};

/*
 * Prepares *c with the kernels of SIMD variant v (KW_SIMD_AUTO: kw_kernels_best()).
 * Returns 0, -KW_EINVAL for an unknown v, or -KW_ENOTSUP when v is not compiled in or not
 * supported by this CPU. Start-up cost: about 8000 code-table searches and one pass over
 * the 65536-entry blockwise table.
 */
int kw_codec_init(struct kw_codec *c, enum kw_simd v);

/* The 256-entry dynamic code Hivemind CPU senders transmit: bitsandbytes 0.41.1
 * create_dynamic_map(signed=True) in float32 with code[0] = -1.0 (see doc/ml-codec.md). */
extern const float kw_bw_default_code[256];

/*
 * Builds a lookup table for any sorted (non-decreasing, finite) 256-entry code (see
 * <kw/ml/blockwise.h>). Returns 0 or -KW_EINVAL for an unsorted or non-finite code.
 */
int kw_bw_table_init(struct kw_bw_table *t, const float code[256]);

/*
 * Encoded size for numel elements: exact for every codec, an upper bound for NONE (sized for
 * float32; float16 / bfloat16 need half). last_dim matters only for MEANSTD_16BIT (rows =
 * numel / last_dim). Returns 0 for an unknown codec, a last_dim that does not divide numel,
 * or sizes beyond 2^40 elements.
 */
size_t kw_codec_max_size(enum kw_compression comp, size_t numel, size_t last_dim);

/* Bytes of scratch kw_codec_encode() needs (QUANTILE_8BIT sorts; others need 0). */
size_t kw_codec_scratch_size(enum kw_compression comp, size_t numel);

/*
 * Encodes numel float32 values x (row-major; last_dim = size of the last axis, used by
 * MEANSTD_16BIT, must divide numel) into out[0..cap). dtype applies to NONE only (the wire
 * element type). Writes the byte count to *out_len. Returns 0, -KW_EINVAL (bad arguments),
 * -KW_ENOSPC (cap or scratch too small).
 */
int kw_codec_encode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const float *x, size_t numel, size_t last_dim, void *scratch, size_t scratch_len,
		    uint8_t *out, size_t cap, size_t *out_len);

/*
 * Decodes buf[0..len) holding numel elements into out[numel] float32. dtype is the Tensor's
 * dtype (NONE only: picks the element size; bfloat16 accepts raw bf16 or legacy float32).
 * Returns 0, -KW_EINVAL (bad arguments), -KW_EBADMSG (short buffer, bad header, index
 * outside the codebook), -KW_EMSGSIZE (more bytes than the layout holds).
 */
int kw_codec_decode(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const uint8_t *buf, size_t len, size_t numel, size_t last_dim, float *out);

/* ---- Random access, for the all-reduce's fused paths (ml/avg) -----------------------------
 *
 * NONE (float32), FLOAT16 and BLOCKWISE_8BIT encode every run of kw_codec_granule() elements
 * (1, 1, 4096) on its own, so a part can be decoded a cache-sized run at a time straight
 * where it is summed, and encoded a run at a time straight into an outgoing message. The
 * bytes are those of kw_codec_encode() / kw_codec_decode(). Codecs that need the whole tensor
 * (MEANSTD_16BIT, QUANTILE_8BIT, UNIFORM_8BIT, NONE as float16 / bfloat16) have granule numel:
 * their one run is the whole tensor, through the whole-tensor calls.
 *
 * A run is [first, first + n): first a multiple of the granule, n a multiple of it or
 * reaching numel. Arguments are as for kw_codec_encode / kw_codec_decode.
 */
size_t kw_codec_granule(enum kw_compression comp, enum kw_codec_dtype dtype, size_t numel);
/*
 * Writes the layout's header into out[0..cap) (BLOCKWISE_8BIT: nblocks, 256 and the code;
 * nothing for the others) and the layout's total size to *out_len; the runs then fill the
 * rest. Returns 0, -KW_EINVAL, -KW_ENOSPC.
 */
int kw_codec_encode_header(const struct kw_codec *c, enum kw_compression comp,
			   enum kw_codec_dtype dtype, size_t numel, size_t last_dim, uint8_t *out,
			   size_t cap, size_t *out_len);
/* Encodes x[0..n), elements [first, first + n) of the tensor, into their place in out (the
 * whole layout, cap bytes). Returns 0, -KW_EINVAL (bad run), -KW_ENOSPC. */
int kw_codec_encode_range(const struct kw_codec *c, enum kw_compression comp,
			  enum kw_codec_dtype dtype, const float *x, size_t numel, size_t last_dim,
			  size_t first, size_t n, void *scratch, size_t scratch_len, uint8_t *out,
			  size_t cap);
/* Decodes elements [first, first + n) of buf[0..len) into out[0..n). The header and length
 * are checked on every call, as kw_codec_decode() checks them; same errors. */
int kw_codec_decode_range(const struct kw_codec *c, enum kw_compression comp,
			  enum kw_codec_dtype dtype, const uint8_t *buf, size_t len, size_t numel,
			  size_t last_dim, size_t first, size_t n, float *out);
/*
 * Whether every value buf decodes to is finite, without decoding where the layout tells:
 * NONE float32 and FLOAT16 look at exponent bits, BLOCKWISE_8BIT at absmax and the code.
 * Returns 0 (all finite), -KW_ERANGE (some NaN or Inf), -KW_EBADMSG / -KW_EMSGSIZE (does not
 * decode), -KW_ENOTSUP (cannot tell without decoding: decode and look). On 0, *bound (when
 * not NULL) is a bound on every |value| that the layout gives (FLOAT16: 65504; BLOCKWISE_8BIT:
 * max |code| * max absmax), or +Inf where it gives none (NONE).
 */
int kw_codec_finite(const struct kw_codec *c, enum kw_compression comp, enum kw_codec_dtype dtype,
		    const uint8_t *buf, size_t len, size_t numel, float *bound);

/* ---- Top-K sparsification with error feedback (kwaainet-edge's own encoding) -------------
 *
 * Byte layout (little-endian):
 *   uint32 numel || uint32 k || uint32 index[k] (strictly increasing) || float32 value[k]
 * Size: 8 + 8k bytes. The decoder rebuilds the dense tensor (zeros elsewhere).
 *
 * Encoding of round r with residual e (caller storage, numel floats, zero before round 0):
 *   v = x + e;  keep the k entries of largest |v| (equal magnitudes: lower index wins; NaN
 *   counts as the largest magnitude);  e = v with the kept entries set to 0.
 * So sum over rounds of decoded tensors + e equals sum of inputs (up to float rounding):
 * nothing is ever lost, only delayed.
 */
size_t kw_topk_size(uint32_t k);
/* Scratch bytes for kw_topk_encode: 8 * numel. */
size_t kw_topk_scratch_size(size_t numel);
/*
 * x[numel] input, residual[numel] updated in place, k <= numel. Returns 0, -KW_EINVAL,
 * -KW_ENOSPC (cap or scratch too small). numel must fit in uint32.
 */
int kw_topk_encode(const float *x, float *residual, size_t numel, uint32_t k, void *scratch,
		   size_t scratch_len, uint8_t *out, size_t cap, size_t *out_len);
/* Returns 0, -KW_EBADMSG (short, numel mismatch, k > numel, indices not increasing or out of
 * range), -KW_EMSGSIZE (trailing bytes). out[numel] is fully written on success. */
int kw_topk_decode(const uint8_t *buf, size_t len, size_t numel, float *out);

#endif /* KW_ML_CODEC_H */
