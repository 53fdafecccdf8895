/*
 * libFuzzer target: the status endpoint's HTTP request head (app/status.c kw_http_parse),
 * which a local client sends to 127.0.0.1:<status_port> (app/status_http.c). The parser is
 * fed the input as the server would see it, growing one read at a time: every answer must be
 * one of the documented codes, a complete head must lie within the input and the cap, and a
 * prefix the parser waited on must not have been refused (more bytes never make a refused
 * head acceptable, and the server stops at the first answer).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>

#include "../../app/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[KW_HTTP_REQ_MAX];
	struct kw_http_req req;
	size_t len, step;
	int ret = -KW_EAGAIN;

	if (size > KW_HTTP_REQ_MAX)
		size = KW_HTTP_REQ_MAX;  /* the server reads at most this much */
	memcpy(buf, data, size);
	/* the first byte picks the read size, so short and long reads are both exercised */
	step = size ? (size_t)(data[0] % 64) + 1 : 1;
	for (len = 0; len < size && ret == -KW_EAGAIN;) {
		len = len + step > size ? size : len + step;
		ret = kw_http_parse(buf, len, &req);
		if (ret != 0 && ret != -KW_EAGAIN && ret != -KW_EBADMSG && ret != -KW_EMSGSIZE &&
		    ret != -KW_ENOTSUP)
			__builtin_trap();
		if (ret == 0 && (req.head_len == 0 || req.head_len > len ||
				 req.head_len > KW_HTTP_REQ_MAX || req.route > KW_HTTP_NOT_FOUND))
			__builtin_trap();
	}
	/* the whole input at once gives the same answer as the reads that stopped early */
	if (ret != -KW_EAGAIN) {
		struct kw_http_req again;
		int ret2 = kw_http_parse(buf, len, &again);

		if (ret2 != ret || (ret == 0 && (again.head_len != req.head_len ||
						 again.route != req.route || again.get != req.get)))
			__builtin_trap();
	}
	return 0;
}
