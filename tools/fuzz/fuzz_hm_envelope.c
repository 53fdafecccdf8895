/*
 * libFuzzer target: the hivemind unary-call envelope decoder (net/hivemind/envelope.c), which
 * reads what any remote peer sends on a unary handler's stream (uvarint prefix included).
 * A decode that succeeds must consume at most the input, hand out views inside it, and
 * re-encode to an envelope that decodes to the same call, response or cancel. An error must
 * be one of the documented codes, with a reason for every refusal of a complete frame.
 * The error text helper must always produce NUL-terminated valid UTF-8.
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

static bool inside(const struct kw_hm_bytes *b, const uint8_t *in, size_t len)
{
	return b->len == 0 || (b->p >= in && b->len <= len && (size_t)(b->p - in) <= len - b->len);
}

static bool same(const struct kw_hm_bytes *a, const struct kw_hm_bytes *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_hm_envelope e, e2;
	const char *why = NULL;
	char text[64];
	size_t n;
	long r, w;

	if (size > sizeof(out))  /* re-encoding never grows: minimal varints, no unknown fields */
		return 0;
	r = kw_hm_env_decode(data, size, &e, &why);
	if (r < 0) {
		if (r != -KW_EAGAIN && r != -KW_EMSGSIZE && r != -KW_EBADMSG && r != -KW_EPROTO)
			__builtin_trap();
		if (r != -KW_EAGAIN && (!why || !why[0]))
			__builtin_trap();
		return 0;
	}
	if (r == 0 || (size_t)r > size || !why || why[0])
		__builtin_trap();
	if (!inside(&e.peer, data, (size_t)r) || !inside(&e.proto, data, (size_t)r) ||
	    !inside(&e.data, data, (size_t)r) || !inside(&e.result, data, (size_t)r))
		__builtin_trap();
	n = kw_hm_error_text(e.result.p, e.result.len, text, sizeof(text));
	if (n >= sizeof(text) || text[n] != '\0' || strlen(text) != n ||
	    !kw_mp_utf8_valid((const uint8_t *)text, n))
		__builtin_trap();

	w = kw_hm_env_encode(&e, out, sizeof(out));
	if (w == -KW_EINVAL && e.kind == KW_HM_ENV_RESPONSE && e.is_error &&
	    !kw_mp_utf8_valid(e.result.p, e.result.len))
		return 0;  /* we only send UTF-8 error text, but accept any */
	if (w <= 0 || kw_hm_env_decode(out, (size_t)w, &e2, NULL) != w)
		__builtin_trap();
	if (e.kind != e2.kind || memcmp(e.call_id, e2.call_id, KW_HM_CALL_ID_LEN) ||
	    e.is_error != e2.is_error || !same(&e.peer, &e2.peer) || !same(&e.proto, &e2.proto) ||
	    !same(&e.data, &e2.data) || !same(&e.result, &e2.result))
		__builtin_trap();
	return 0;
}
