/* Hex helper shared by the net/peer tests: vectors in the spec are written in hex. */
#ifndef KW_TEST_PEER_HEX_H
#define KW_TEST_PEER_HEX_H

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Decodes hex (any case, spaces ignored) into out; returns the byte count or -1. */
static inline int test_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *hex; hex++) {
		int v;

		if (*hex == ' ')
			continue;
		if (!isxdigit((unsigned char)*hex))
			return -1;
		v = isdigit((unsigned char)*hex) ? *hex - '0' : (tolower((unsigned char)*hex) - 'a' + 10);
		if (hi < 0) {
			hi = v;
		} else {
			if (n >= cap)
				return -1;
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return hi < 0 ? (int)n : -1;
}

#endif
