/*
 * libFuzzer target: the ReachabilityProtocol.rpc_check codec (net/hivemind/reach.c), which
 * reads the PingRequest any connected peer sends and the PingResponse a checker answers.
 * First byte 0: the input is a response (decode must not fail other than -KW_EBADMSG).
 * Otherwise a request: a decode that succeeds yields a PeerID that re-encodes to a request
 * decoding to the same PeerID; every refusal is a documented code with a reason.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/hivemind_reach.h>
#include <kw/net/key.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_peer_id id, id2;
	uint8_t buf[KW_HM_REACH_REQ_MAX];
	const char *why = NULL;
	bool avail = true;
	long n;
	int r;

	if (size == 0)
		return 0;
	if (data[0] == 0) {
		r = kw_hm_reach_decode_resp(data + 1, size - 1, &avail);
		if (r != 0 && (r != -KW_EBADMSG || avail))
			__builtin_trap();
		return 0;
	}
	r = kw_hm_reach_decode_req(data + 1, size - 1, &id, &why);
	if (!why)
		__builtin_trap();
	if (r < 0) {
		if ((r != -KW_EBADMSG && r != -KW_EPROTO) || !why[0])
			__builtin_trap();
		return 0;
	}
	if (why[0] || id.len == 0 || id.len > KW_PEER_ID_MAX)
		__builtin_trap();
	n = kw_hm_reach_encode_req(&id, buf, sizeof(buf));
	if (n <= 0 || kw_hm_reach_decode_req(buf, (size_t)n, &id2, &why) != 0 ||
	    !kw_peer_id_equal(&id, &id2))
		__builtin_trap();
	return 0;
}
