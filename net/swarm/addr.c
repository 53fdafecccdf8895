/*
 * The TCP subset of multiaddrs the swarm needs (swarm_priv.h). Binary form: /ip4 = 0x04 +
 * 4 bytes, /ip6 = 0x29 + 16 bytes, /tcp = 0x06 + 2 bytes big-endian (spec section 2).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/err.h>
#include <kw/net/key.h>

#include "swarm_priv.h"

#define MA_IP4 0x04
#define MA_TCP 0x06
#define MA_IP6 0x29

static int next_part(const char **p, char *out, size_t cap)
{
	const char *s = *p, *e;
	size_t n;

	if (*s != '/')
		return -KW_EINVAL;
	s++;
	e = strchr(s, '/');
	n = e ? (size_t)(e - s) : strlen(s);
	if (n == 0 || n >= cap)
		return -KW_EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

int kw_sw_addr_parse_tcp(const char *text, struct kw_sw_addr *out)
{
	char proto[16], val[128];
	const char *p = text;
	char *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (!text || next_part(&p, proto, sizeof(proto)) < 0 || next_part(&p, val, sizeof(val)) < 0)
		return -KW_EINVAL;
	if (!strcmp(proto, "ip4")) {
		struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;

		in->sin_family = AF_INET;
		if (inet_pton(AF_INET, val, &in->sin_addr) != 1)
			return -KW_EINVAL;
		out->sa_len = sizeof(*in);
	} else if (!strcmp(proto, "ip6")) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;

		in6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, val, &in6->sin6_addr) != 1)
			return -KW_EINVAL;
		out->sa_len = sizeof(*in6);
	} else {
		return -KW_EINVAL;
	}
	if (next_part(&p, proto, sizeof(proto)) < 0 || strcmp(proto, "tcp") ||
	    next_part(&p, val, sizeof(val)) < 0)
		return -KW_EINVAL;
	port = strtoul(val, &end, 10);
	if (*end || port > 65535 || val[0] == '-' || val[0] == '+')
		return -KW_EINVAL;
	if (out->sa.ss_family == AF_INET)
		((struct sockaddr_in *)&out->sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((uint16_t)port);
	if (*p == '\0' || !strcmp(p, "/"))
		return 0;
	if (next_part(&p, proto, sizeof(proto)) < 0 || (strcmp(proto, "p2p") && strcmp(proto, "ipfs")) ||
	    next_part(&p, val, sizeof(val)) < 0 || (*p && strcmp(p, "/")))
		return -KW_EINVAL;
	if (kw_peer_id_from_text(val, &out->peer) < 0)
		return -KW_EINVAL;
	out->has_peer = true;
	return 0;
}

int kw_sw_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t *out,
			     size_t cap, size_t *olen)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		if (cap < 8)
			return -KW_ENOBUFS;
		out[0] = MA_IP4;
		memcpy(out + 1, &in->sin_addr, 4);
		out[5] = MA_TCP;
		kw_put_be16(out + 6, ntohs(in->sin_port));
		*olen = 8;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (cap < 20)
			return -KW_ENOBUFS;
		out[0] = MA_IP6;
		memcpy(out + 1, &in6->sin6_addr, 16);
		out[17] = MA_TCP;
		kw_put_be16(out + 18, ntohs(in6->sin6_port));
		*olen = 20;
		return 0;
	}
	return -KW_EINVAL;
}

int kw_sw_addr_to_text(const uint8_t *ma, size_t len, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	size_t ipl;
	int fam;

	if (len == 8 && ma[0] == MA_IP4 && ma[5] == MA_TCP) {
		fam = AF_INET;
		ipl = 4;
	} else if (len == 20 && ma[0] == MA_IP6 && ma[17] == MA_TCP) {
		fam = AF_INET6;
		ipl = 16;
	} else {
		return -KW_EINVAL;
	}
	if (!inet_ntop(fam, ma + 1, ip, sizeof(ip)))
		return -KW_EINVAL;
	if ((size_t)snprintf(out, cap, "/%s/%s/tcp/%u", fam == AF_INET ? "ip4" : "ip6", ip,
			     kw_get_be16(ma + 2 + ipl)) >= cap)
		return -KW_ENOBUFS;
	return 0;
}
