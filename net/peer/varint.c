/* multiformats unsigned varints: minimal LEB128, at most 9 bytes. */
#include <kw/err.h>
#include <kw/net/varint.h>

size_t kw_uvarint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

int kw_uvarint_encode(uint64_t v, uint8_t *buf, size_t cap)
{
	size_t n, i;

	if (v > KW_UVARINT_MAX_VALUE)
		return -KW_ERANGE;
	n = kw_uvarint_size(v);
	if (n > cap)
		return -KW_ENOSPC;
	for (i = 0; i + 1 < n; i++) {
		buf[i] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[i] = (uint8_t)v;
	return (int)n;
}

int kw_uvarint_decode(const uint8_t *buf, size_t len, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < KW_UVARINT_MAX_BYTES; i++) {
		if (i >= len)
			return -KW_EAGAIN;
		x |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
		if (!(buf[i] & 0x80)) {
			/* A last group of zero after other groups could have been left out. */
			if (buf[i] == 0 && i > 0)
				return -KW_EBADMSG;
			*v = x;
			return (int)(i + 1);
		}
	}
	return -KW_EBADMSG;  /* a 10th byte would be needed: more than 63 bits */
}
