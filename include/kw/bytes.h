/*
 * Wire helpers: read and write fixed-width integers byte by byte. Wire structures are never
 * cast from buffers (house rule 7); callers check lengths before calling these.
 */
#ifndef KW_BYTES_H
#define KW_BYTES_H

#include <stdint.h>

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

#endif /* KW_BYTES_H */
