/*
 * multistream-select line codec used inside net/swarm (not a public header).
 */
#ifndef KW_NET_SWARM_MSS_LINE_H
#define KW_NET_SWARM_MSS_LINE_H

#include <stddef.h>
#include <stdint.h>

#define KW_MSS_LINE_MAX 1024
#define KW_MSS_HEADER   "/multistream/1.0.0"

/* Writes one line. Return: bytes written, -KW_EINVAL (too long), -KW_ENOBUFS. */
int kw_mss_line_encode(const char *text, uint8_t *out, size_t cap);
/*
 * Reads one line from buf[0..len) into line (NUL-terminated, without '\n' and trailing
 * blanks). Return: bytes consumed, -KW_EAGAIN (incomplete), -KW_EBADMSG (no '\n' at the
 * end, too long for cap or KW_MSS_LINE_MAX, NUL inside, bad varint).
 */
long kw_mss_line_decode(const uint8_t *buf, size_t len, char *line, size_t cap);

#endif
