/*
 * Unsigned varints as multiformats defines them (multiformats/unsigned-varint):
 * LEB128, at most 9 bytes (63 bits), minimal encodings only. Used by multiaddr, multihash,
 * CIDs, multistream-select and every length-prefixed libp2p protobuf stream. Protobuf's own
 * field varints are nanopb's business, not this module's.
 *
 * Owner: net/peer. Pure functions, no state.
 */
#ifndef KW_NET_VARINT_H
#define KW_NET_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define KW_UVARINT_MAX_BYTES 9
#define KW_UVARINT_MAX_VALUE ((UINT64_C(1) << 63) - 1)

/* Bytes needed to encode v (1..9); v must be <= KW_UVARINT_MAX_VALUE. */
size_t kw_uvarint_size(uint64_t v);

/*
 * Writes v into buf[0..cap). Return: the number of bytes written (1..9), -KW_ENOSPC when cap
 * is too small, -KW_ERANGE when v exceeds 63 bits.
 */
int kw_uvarint_encode(uint64_t v, uint8_t *buf, size_t cap);

/*
 * Reads one uvarint from buf[0..len). Return: the number of bytes consumed (1..9) with *v
 * set; -KW_EAGAIN when buf ends before the varint does (a stream reader waits for more);
 * -KW_EBADMSG for a non-minimal encoding (a trailing 0x00 group) or one longer than 9 bytes.
 * *v is untouched on error.
 */
int kw_uvarint_decode(const uint8_t *buf, size_t len, uint64_t *v);

#endif /* KW_NET_VARINT_H */
