/*
 * Protobuf by hand for the serving tests (test_serve.c, test_serve_infer.c): what a Python
 * client's ExpertRequest / ExpertUID bytes are built from, and the length-delimited field
 * an ExpertResponse / ExpertInfo answer starts with. Test-only; the server's own decoder is
 * kw_serve_req_decode.
 */
#ifndef KW_TEST_SERVE_PB_H
#define KW_TEST_SERVE_PB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

/* A length-delimited field (wire type 2): key, length, bytes. */
static inline size_t put_field(uint8_t *p, unsigned field, const void *data, size_t len)
{
	size_t o = 0;

	p[o++] = (uint8_t)(field << 3 | 2);
	o += put_varint(p + o, len);
	memcpy(p + o, data, len);
	return o + len;
}

/* The length varint at p[*pos] (after a field key); *pos moves past it. */
static inline uint64_t get_len(const uint8_t *p, size_t *pos)
{
	uint64_t l = 0;

	for (int sh = 0; sh < 64; sh += 7) {
		uint8_t c = p[(*pos)++];

		l |= (uint64_t)(c & 0x7f) << sh;
		if (!(c & 0x80))
			break;
	}
	return l;
}

#endif /* KW_TEST_SERVE_PB_H */
