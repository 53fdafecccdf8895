/*
 * Wire helpers: read and write fixed-width integers byte by byte, and bytes as hex text. Wire
 * structures are never cast from buffers (house rule 7); callers check lengths before calling
 * these.
 */
#ifndef KW_BYTES_H
#define KW_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include <kw/err.h>

static inline uint16_t kw_get_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t kw_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t kw_get_be64(const uint8_t *p)
{
	return ((uint64_t)kw_get_be32(p) << 32) | kw_get_be32(p + 4);
}
static inline void kw_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void kw_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kw_put_be64(uint8_t *p, uint64_t v)
{
	kw_put_be32(p, (uint32_t)(v >> 32)); kw_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t kw_get_le32(const uint8_t *p)
{
	return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline void kw_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* One hex digit, either case: its value 0..15, or -1 when c is not a hex digit. */
static inline int kw_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* n bytes as 2n lower-case hex digits at out (no terminator; out holds 2n chars). Return: 2n. */
static inline size_t kw_hex_put(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	return 2 * n;
}

/*
 * 2n hex digits (either case) at s to n bytes at out. The caller has checked that s holds 2n
 * chars and out n bytes. Return: 0, or -KW_EINVAL at a char that is not a hex digit (out then
 * holds the bytes before it).
 */
static inline int kw_hex_get(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = kw_hex_digit((unsigned char)s[2 * i]);
		int lo = kw_hex_digit((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -KW_EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

#endif /* KW_BYTES_H */
