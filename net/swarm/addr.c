/*
 * The swarm's view of multiaddrs (swarm_priv.h), on top of net/peer's codec: dial/listen
 * targets are /ip4|/ip6 + /tcp with an optional /p2p/<id>; connections keep the binary
 * form without /p2p.
 */
#include <string.h>

#include <kw/err.h>
#include <kw/net/multiaddr.h>

#include "swarm_priv.h"

int kw_sw_addr_parse_tcp(const char *text, struct kw_sw_addr *out)
{
	struct kw_multiaddr ma;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = kw_maddr_from_text(text, &ma, NULL, 0);
	if (ret < 0)
		return -KW_EINVAL;
	if (kw_maddr_to_sockaddr(&ma, &out->sa, &out->sa_len) < 0)
		return -KW_EINVAL;
	if (kw_maddr_peer_id(&ma, &out->peer) == 0)
		out->has_peer = true;
	return 0;
}

int kw_sw_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t *out,
			     size_t cap, size_t *olen)
{
	struct kw_multiaddr ma;

	if (kw_maddr_from_sockaddr(sa, len, &ma) < 0)
		return -KW_EINVAL;
	if (ma.len > cap)
		return -KW_ENOSPC;
	memcpy(out, ma.bytes, ma.len);
	*olen = ma.len;
	return 0;
}

int kw_sw_addr_to_text(const uint8_t *bin, size_t len, char *out, size_t cap)
{
	struct kw_multiaddr ma;

	if (kw_maddr_from_bytes(bin, len, &ma, NULL, 0) < 0)
		return -KW_EINVAL;
	return kw_maddr_to_text(&ma, out, cap);
}

int kw_sw_addr_label(const uint8_t *bin, size_t len, char *out, size_t cap)
{
	int ret = kw_sw_addr_to_text(bin, len, out, cap);

	if (ret < 0 && cap)
		out[0] = '\0';
	return ret;
}
