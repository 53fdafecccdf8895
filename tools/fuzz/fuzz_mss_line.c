/* libFuzzer: multistream-select line decoding (net/mss/mss_line.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>

#include <kw/net/mss.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[1100];
	size_t off = 0;

	while (off < size) {
		long r = kw_mss_line_decode(data + off, size - off, line, sizeof(line));

		if (r <= 0)
			break;
		if (strlen(line) >= sizeof(line) || (size_t)r > size - off)
			__builtin_trap();
		off += (size_t)r;
	}
	return 0;
}
