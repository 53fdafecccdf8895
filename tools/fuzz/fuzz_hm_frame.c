/*
 * libFuzzer target: hivemind's stream framing (net/hivemind/frame.c), fed as a byte stream
 * the way a handler reads it: frames are decoded one after another until the input ends or
 * one is refused. Every frame must lie inside the input and re-encode to the same bytes
 * (message frames) or to an error frame with the same text (error frames whose text is
 * UTF-8). The caller-side error text must always be NUL-terminated valid UTF-8. Errors must
 * be documented codes with a reason.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/hivemind_rpc.h>
#include <kw/net/msgpack.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_hm_frame f, f2;
	const char *why;
	char text[96];
	size_t off = 0, n;
	long r, w;

	if (size > sizeof(out))
		return 0;
	while (off < size) {
		r = kw_hm_frame_decode(data + off, size - off, &f, &why);
		if (r < 0) {
			if (r != -KW_EAGAIN && r != -KW_EMSGSIZE && r != -KW_EBADMSG &&
			    r != -KW_EPROTO)
				__builtin_trap();
			if (r != -KW_EAGAIN && !why[0])
				__builtin_trap();
			return 0;
		}
		if ((size_t)r > size - off || (size_t)r != KW_HM_FRAME_HDR + f.payload.len)
			__builtin_trap();
		if (f.marker == KW_HM_MARK_MESSAGE) {
			w = kw_hm_frame_encode_msg(f.payload.p, f.payload.len, out, sizeof(out));
			if (w >= 0 && (w != r || memcmp(out, data + off, (size_t)r)))
				__builtin_trap();
		} else {
			n = kw_hm_stream_error_text("Handler.rpc_x", "12D3KooW", &f, text,
						    sizeof(text));
			if (n >= sizeof(text) || strlen(text) != n ||
			    !kw_mp_utf8_valid((const uint8_t *)text, n))
				__builtin_trap();
			if (f.has_message && kw_mp_utf8_valid(f.message.p, f.message.len)) {
				w = kw_hm_frame_encode_error((const char *)(f.message.p ? f.message.p :
								(const uint8_t *)""),
							     f.message.len, out, sizeof(out));
				if (w > 0 && (kw_hm_frame_decode(out, (size_t)w, &f2, NULL) != w ||
					      !f2.has_message || f2.message.len != f.message.len ||
					      (f.message.len &&
					       memcmp(f2.message.p, f.message.p, f.message.len))))
					__builtin_trap();
			}
		}
		off += (size_t)r;
	}
	return 0;
}
