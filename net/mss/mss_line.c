/*
 * multistream-select 1.0 lines (kw/net/mss.h; multiformats/multistream-select README.md):
 * uvarint(len) || text || '\n', len counting the newline. Lines are capped at 1024 bytes
 * like js-libp2p.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/net/varint.h>

#include <kw/net/mss.h>

int kw_mss_line_encode(const char *text, uint8_t *out, size_t cap)
{
	size_t l = strlen(text);
	int h;

	if (l + 1 > KW_MSS_LINE_MAX)
		return -KW_EINVAL;
	h = kw_uvarint_encode(l + 1, out, cap);
	if (h < 0 || (size_t)h + l + 1 > cap)
		return -KW_ENOSPC;
	memcpy(out + h, text, l);
	out[h + (int)l] = '\n';
	return h + (int)l + 1;
}

long kw_mss_line_decode(const uint8_t *buf, size_t len, char *line, size_t cap)
{
	uint64_t l;
	int h = kw_uvarint_decode(buf, len, &l);
	size_t n;

	if (h == -KW_EAGAIN)
		return -KW_EAGAIN;
	if (h < 0 || l == 0 || l > KW_MSS_LINE_MAX)
		return -KW_EBADMSG;
	if (len - (size_t)h < l)
		return -KW_EAGAIN;
	if (buf[(size_t)h + l - 1] != '\n')
		return -KW_EBADMSG;
	n = (size_t)l - 1;
	/* js strips trailing whitespace; so do we (e.g. "\r") */
	while (n && (buf[(size_t)h + n - 1] == ' ' || buf[(size_t)h + n - 1] == '\r'))
		n--;
	if (n >= cap || memchr(buf + h, '\0', n))
		return -KW_EBADMSG;
	memcpy(line, buf + h, n);
	line[n] = '\0';
	return (long)((size_t)h + (size_t)l);
}
