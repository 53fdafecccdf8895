/*
 * libFuzzer target: the control socket's request line (app/dht.c kw_dht_req_decode), which a
 * running node reads from <data_dir>/control.sock (app/control.c). A line that decodes must
 * stay within the request's bounds and encode back to the same line (hex is lower case on
 * the way out, so the input is compared case-insensitively); an error must be -KW_EINVAL.
 * Built against libkw.a, so the app's dht.o is linked in.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <kw/err.h>

#include "../../app/dht.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[KW_DHT_LINE_MAX + 1], back[KW_DHT_LINE_MAX + 2];
	static struct kw_dht_req r;
	char err[128];
	long n;
	int ret;

	if (size > KW_DHT_LINE_MAX)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	ret = kw_dht_req_decode(&r, line, err, sizeof(err));
	if (ret != 0 && ret != -KW_EINVAL)
		__builtin_trap();
	if (ret != 0)
		return 0;
	if (r.klen > sizeof(r.key) || r.vlen > sizeof(r.val) || r.peer.len > sizeof(r.peer.bytes))
		__builtin_trap();
	n = kw_dht_req_encode(&r, back, sizeof(back));
	if (n <= 0 || back[n - 1] != '\n')
		__builtin_trap();
	/* the input is the line without its '\n' and may stop at an embedded NUL */
	if ((size_t)(n - 1) != strlen(line) || strncasecmp(back, line, (size_t)(n - 1)))
		__builtin_trap();
	return 0;
}
