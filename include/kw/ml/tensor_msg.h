/*
 * Hivemind runtime.proto Tensor messages (hivemind/proto/runtime.proto and
 * hivemind/utils/streaming.py, hivemind @ 213bff98; doc/ml-codec.md): encode and
 * decode through nanopb without allocation, and split a serialized tensor into stream
 * pieces under a maximum message size / join the pieces back.
 *
 * Decoding is zero copy: kw_tensor_msg.buf points into the input bytes, so the input must
 * outlive the decoded struct. Joining copies into caller storage.
 */
#ifndef KW_ML_TENSOR_MSG_H
#define KW_ML_TENSOR_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KW_TENSOR_MSG_MAX_DIMS 8    /* = max_count of Tensor.size in runtime.options */
#define KW_TENSOR_MSG_DTYPE_MAX 15  /* = max_size - 1 of Tensor.dtype */

struct kw_tensor_msg {
	const uint8_t *buf;        /* Tensor.buffer (not owned) */
	size_t buf_len;
	uint32_t shape[KW_TENSOR_MSG_MAX_DIMS];
	uint32_t ndim;
	bool requires_grad;
	char dtype[KW_TENSOR_MSG_DTYPE_MAX + 1];  /* NUL-terminated; "" on continuation pieces */
	int32_t compression;       /* enum kw_compression; unknown values are kept as sent */
	int32_t chunks;            /* pieces of a split tensor (first piece only), else 0 */
};

/* *m as an uncompressed float32 tensor of the given shape over v's n values (not copied: v
 * outlives *m). The caller keeps ndim <= KW_TENSOR_MSG_MAX_DIMS. */
static inline void kw_tensor_msg_f32(struct kw_tensor_msg *m, const float *v, size_t n,
				     const uint32_t *shape, uint32_t ndim)
{
	memset(m, 0, sizeof(*m));
	m->buf = (const uint8_t *)v;
	m->buf_len = n * sizeof(float);
	m->ndim = ndim;
	memcpy(m->shape, shape, ndim * sizeof(uint32_t));
	strcpy(m->dtype, "float32");
}

/* *numel = product of the shape (1 for ndim == 0). Returns 0 or -KW_ERANGE beyond 2^40. */
int kw_tensor_msg_numel(const struct kw_tensor_msg *m, size_t *numel);

/* Exact protobuf size of *m; 0 if it cannot be encoded (dtype too long, ndim too large). */
size_t kw_tensor_msg_encoded_size(const struct kw_tensor_msg *m);

/* Serializes *m (proto3 rules: default fields omitted, size packed) into out[0..cap).
 * Returns 0 with *out_len set, -KW_EINVAL (bad struct), -KW_ENOSPC (cap too small).
 * buf NULL with buf_len > 0 reserves the buffer: its tag and length are written and its
 * buf_len bytes are left for the caller to fill in place (Tensor.buffer is field 1, so they
 * end where kw_tensor_msg_encoded_size() of *m with buf_len 0 begins, counted from the end);
 * this lets a codec write a tensor straight into the message (ml/avg). */
int kw_tensor_msg_encode(const struct kw_tensor_msg *m, uint8_t *out, size_t cap, size_t *out_len);

/* Parses one Tensor message. Accepts packed and unpacked size. Returns 0, -KW_EBADMSG
 * (malformed protobuf), -KW_EMSGSIZE (more than 8 dims or a dtype over 15 bytes). */
int kw_tensor_msg_decode(struct kw_tensor_msg *m, const uint8_t *buf, size_t len);

/*
 * Streaming split (hivemind split_for_streaming): piece 0 carries every header field,
 * chunks = number of pieces and the first chunk_bytes of the buffer; later pieces carry only
 * their slice of the buffer. An empty buffer is one piece with chunks = 0.
 * kw_tensor_msg_pieces() returns the piece count (0 if chunk_bytes is 0);
 * kw_tensor_msg_piece() fills *piece (views into whole->buf). To respect a maximum message
 * size M, use chunk_bytes = kw_tensor_msg_chunk_bytes(whole, M).
 */
size_t kw_tensor_msg_pieces(const struct kw_tensor_msg *whole, size_t chunk_bytes);
int kw_tensor_msg_piece(const struct kw_tensor_msg *whole, size_t chunk_bytes, size_t index,
			struct kw_tensor_msg *piece);
/* Largest chunk_bytes whose every piece encodes to at most max_msg bytes; 0 if none. */
size_t kw_tensor_msg_chunk_bytes(const struct kw_tensor_msg *whole, size_t max_msg);

/*
 * Reassembly. The first piece must carry a dtype (it starts the tensor, as hivemind
 * readers decide); continuation pieces must carry nothing but buffer. Stricter than Python:
 * with chunks = N > 0 exactly N pieces are expected, every piece but the last must be as
 * long as the first, and the last no longer; chunks = 0 means a single piece.
 */
struct kw_tensor_join {
	struct kw_tensor_msg head;  /* header of piece 0; head.buf = storage once complete */
	uint8_t *storage;
	size_t cap, len;
	size_t first_len;           /* buffer length of piece 0 (the chunk size) */
	uint32_t got;
	bool started, done, short_seen;
};

void kw_tensor_join_init(struct kw_tensor_join *j, uint8_t *storage, size_t cap);
/*
 * Adds one decoded piece. Returns 1 when the tensor is complete (j->head describes it,
 * buffer in storage), 0 when more pieces are expected, -KW_EBADMSG (piece out of order,
 * header fields on a continuation, inconsistent sizes or count, piece after completion),
 * -KW_EMSGSIZE (storage too small). After an error the join must be re-initialised.
 */
int kw_tensor_join_add(struct kw_tensor_join *j, const struct kw_tensor_msg *piece);

#endif /* KW_ML_TENSOR_MSG_H */
