/*
 * Multiaddrs (multiformats/multiaddr README.md and protocols.csv): the binary form
 * `uvarint(code) value...` used on the wire (identify, kad) and the text form
 * "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..." used in configs and logs.
 *
 * A struct kw_multiaddr always holds a validated binary multiaddr: every component has a
 * known code and a well-formed value (addresses of the right size, DNS names without '/',
 * /p2p values that are peer-ID multihashes). Fixed size, no heap; copy it by assignment.
 *
 * Supported: ip4 ip6 tcp udp dns dns4 dns6 dnsaddr p2p (text alias "ipfs"), and the
 * value-less p2p-circuit tls noise quic quic-v1 ws wss. Anything else is refused with
 * -KW_ENOPROTO and an error message naming the code or name.
 *
 * Owner: net/peer. Users: net/swarm (dial and listen targets, remote addresses),
 * net/identify (listen and observed addresses), the config and the CLI.
 */
#ifndef KW_NET_MULTIADDR_H
#define KW_NET_MULTIADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <kw/net/key.h>

#define KW_MADDR_MAX_BYTES      256
#define KW_MADDR_MAX_COMPONENTS 8
#define KW_MADDR_TEXT_MAX       640  /* any valid kw_multiaddr prints within this, with NUL */
#define KW_MADDR_ERR_MAX        96   /* a comfortable size for the err buffers below */

enum kw_maddr_code {
	KW_MA_IP4 = 4,
	KW_MA_TCP = 6,
	KW_MA_IP6 = 41,
	KW_MA_DNS = 53,
	KW_MA_DNS4 = 54,
	KW_MA_DNS6 = 55,
	KW_MA_DNSADDR = 56,
	KW_MA_UDP = 273,
	KW_MA_P2P_CIRCUIT = 290,
	KW_MA_P2P = 421,
	KW_MA_TLS = 448,
	KW_MA_NOISE = 454,
	KW_MA_QUIC = 460,
	KW_MA_QUIC_V1 = 461,
	KW_MA_WS = 477,
	KW_MA_WSS = 478,
};

struct kw_multiaddr {
	uint16_t len;                       /* bytes used in bytes[] */
	uint8_t n;                          /* number of components */
	uint8_t bytes[KW_MADDR_MAX_BYTES];  /* the binary multiaddr */
};

/* One component, pointing into the multiaddr it came from (valid while that is). */
struct kw_maddr_comp {
	uint32_t code;
	const uint8_t *value;  /* value bytes without a length prefix (NULL when len is 0) */
	uint16_t len;
};

/*
 * Decodes and validates a binary multiaddr. err (may be NULL) receives a message such as
 * "unknown protocol code 0x1bd" or "truncated tcp value". Return: 0; -KW_ENOPROTO for an
 * unknown code; -KW_EINVAL for malformed input (truncated, bad varint, bad value, empty);
 * -KW_EMSGSIZE for more than KW_MADDR_MAX_BYTES bytes or KW_MADDR_MAX_COMPONENTS components.
 */
int kw_maddr_from_bytes(const uint8_t *buf, size_t len, struct kw_multiaddr *out, char *err,
			size_t errcap);
/* Parses the text form (same returns; -KW_ENOPROTO names the unknown protocol). */
int kw_maddr_from_text(const char *s, struct kw_multiaddr *out, char *err, size_t errcap);
/* Prints the text form (ip6 as inet_ntop prints it, /p2p as base58btc). Return: 0 or
 * -KW_ENOSPC. */
int kw_maddr_to_text(const struct kw_multiaddr *ma, char *out, size_t cap);

/* Component idx (0-based). Return: 0 or -KW_ENOENT past the end. */
int kw_maddr_component(const struct kw_multiaddr *ma, unsigned idx, struct kw_maddr_comp *c);
bool kw_maddr_equal(const struct kw_multiaddr *a, const struct kw_multiaddr *b);
/* Appends tail's components to ma. Return: 0 or -KW_EMSGSIZE (ma unchanged). */
int kw_maddr_encapsulate(struct kw_multiaddr *ma, const struct kw_multiaddr *tail);

/*
 * The TCP endpoint of "/ip4|ip6/<addr>/tcp/<port>" optionally followed by "/p2p/<id>".
 * Return: 0; -KW_ENOTSUP for any other shape (DNS needs resolving first, UDP is not TCP).
 */
int kw_maddr_to_sockaddr(const struct kw_multiaddr *ma, struct sockaddr_storage *ss,
			 socklen_t *sslen);
/* "/ip4|ip6/<addr>/tcp/<port>" of an AF_INET/AF_INET6 address. Return: 0 or -KW_ENOTSUP. */
int kw_maddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct kw_multiaddr *out);

/* The peer ID of a trailing /p2p component. Return: 0 or -KW_ENOENT when there is none. */
int kw_maddr_peer_id(const struct kw_multiaddr *ma, struct kw_peer_id *id);
/* Appends /p2p/<id>. Return: 0, -KW_EEXIST if ma already ends in /p2p, -KW_EMSGSIZE,
 * -KW_EINVAL if id is not a valid peer ID. */
int kw_maddr_append_peer_id(struct kw_multiaddr *ma, const struct kw_peer_id *id);
/* Removes a trailing /p2p component if present (js strips it from identify listenAddrs). */
void kw_maddr_strip_peer_id(struct kw_multiaddr *ma);

#endif /* KW_NET_MULTIADDR_H */
