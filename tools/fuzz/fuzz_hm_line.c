/*
 * libFuzzer target: the control socket's `kwnode hivemind` request line (app/hm_line.c
 * kw_hm_req_decode), which a running node reads from <data_dir>/control.sock (app/control.c),
 * and the reply sink its output goes through. A line that decodes must stay within the
 * request's bounds and encode back to the same line (hex is lower case on the way out, so the
 * input is compared case-insensitively); an error must be -KW_EINVAL. The same bytes written
 * to the sink, split in two streams, must give reply lines that each start "out ", "err " or
 * "exit ", with "exit" last. Built against libkw.a, so the app's hm_line.o is linked in.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <kw/err.h>

#include "../../app/hm_line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sink(const uint8_t *data, size_t size)
{
	static char buf[1024];
	struct kw_hm_sink s;
	size_t n, pos = 0, half = size / 2;
	const char *last = NULL;

	kw_hm_sink_init(&s, buf, sizeof(buf));
	kw_hm_sink_write(&s, 1, (const char *)data, half);
	kw_hm_sink_write(&s, 2, (const char *)data + half, size - half);
	n = kw_hm_sink_finish(&s, 7);
	if (n >= sizeof(buf) || (n != strnlen(buf, sizeof(buf)) && !memchr(data, 0, size)))
		__builtin_trap();
	while (pos < n) {
		const char *l = buf + pos, *nl = memchr(l, '\n', n - pos);

		if (!nl)
			__builtin_trap();   /* every line ends in '\n' */
		if (strncmp(l, "out ", 4) && strncmp(l, "err ", 4) && strncmp(l, "exit ", 5))
			__builtin_trap();
		last = l;
		pos = (size_t)(nl - buf) + 1;
	}
	if (!last || strncmp(last, "exit 7\n", 7))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[KW_HM_LINE_MAX + 1], back[KW_HM_LINE_MAX + 2];
	static struct kw_hm_req r;
	char err[160];
	long n;
	int ret;

	if (size > KW_HM_LINE_MAX)
		return 0;
	check_sink(data, size);
	memcpy(line, data, size);
	line[size] = '\0';
	ret = kw_hm_req_decode(&r, line, err, sizeof(err));
	if (ret != 0 && ret != -KW_EINVAL)
		__builtin_trap();
	if (ret != 0)
		return 0;
	if (r.sub_len > sizeof(r.sub) || r.val_len > sizeof(r.val) ||
	    strnlen(r.key, sizeof(r.key)) > KW_HM_REQ_KEY_MAX || !r.key[0])
		__builtin_trap();
	n = kw_hm_req_encode(&r, back, sizeof(back));
	if (n <= 0 || back[n - 1] != '\n')
		__builtin_trap();
	/* the input is the line without its '\n' and may stop at an embedded NUL */
	if ((size_t)(n - 1) != strlen(line) || strncasecmp(back, line, (size_t)(n - 1)))
		__builtin_trap();
	return 0;
}
