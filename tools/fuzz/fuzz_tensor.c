/*
 * libFuzzer target: runtime.proto Tensor decode (ml/compress/tensor_msg.c) followed by the
 * codec the message names, as a node does with a tensor from the network, plus chunk
 * reassembly of the same message. Shapes are capped so a hostile size cannot make the
 * target allocate more than the output buffer below.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NUMEL (1u << 16)

static struct kw_codec codec;
static int codec_ready;
static float out[MAX_NUMEL];
static uint8_t storage[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_tensor_msg m;
	struct kw_tensor_join j;
	enum kw_codec_dtype dt = KW_CODEC_F32;
	size_t numel;
	int rc;

	if (!codec_ready) {
		if (kw_codec_init(&codec, KW_SIMD_AUTO))
			__builtin_trap();
		codec_ready = 1;
	}
	rc = kw_tensor_msg_decode(&m, data, size);
	if (rc) {
		if (rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
			__builtin_trap();
		return 0;
	}
	if (m.ndim > KW_TENSOR_MSG_MAX_DIMS || m.dtype[KW_TENSOR_MSG_DTYPE_MAX] != '\0')
		__builtin_trap();
	if (m.buf_len && (m.buf < data || m.buf + m.buf_len > data + size))
		__builtin_trap();
	kw_tensor_join_init(&j, storage, sizeof(storage));
	rc = kw_tensor_join_add(&j, &m);
	if (rc < 0 && rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
		__builtin_trap();
	if (kw_tensor_msg_numel(&m, &numel) || numel > MAX_NUMEL)
		return 0;
	kw_codec_dtype_parse(m.dtype, strlen(m.dtype), &dt);
	rc = kw_codec_decode(&codec, (enum kw_compression)m.compression, dt, m.buf, m.buf_len, numel,
			     m.ndim ? KW_MAX(m.shape[m.ndim - 1], 1u) : 1, out);
	if (rc && rc != -KW_EBADMSG && rc != -KW_EMSGSIZE && rc != -KW_EINVAL)
		__builtin_trap();
	return 0;
}
