/*
 * Kademlia DHT messages (/ipfs/kad/1.0.0): the uvarint-length-prefixed Message protobuf of
 * libp2p/specs kad-dht/README.md, encoded from and decoded into a fixed-size struct
 * kw_kad_msg. No allocation: the caller owns the struct (about 41 KiB at the default
 * Kconfig limits, see doc/net-kad.md) and the byte buffers.
 *
 * Decoding is bounded twice: the length prefix against KW_NET_KAD_MAX_MESSAGE_BYTES before
 * any body byte is read, then every field against the static bounds below and the Kconfig
 * peer and address limits. Peer addresses are checked with kw_maddr_from_bytes: one that
 * does not parse (unknown protocol, malformed) or does not fit KW_KAD_ADDR_MAX is dropped
 * and counted in addrs_dropped, the rest of the message stays usable (go and js peers
 * advertise transports we do not know).
 *
 * Owner: net/kad. Users: the kad protocol handler, lookups, tests and the fuzz target.
 */
#ifndef KW_NET_KAD_MSG_H
#define KW_NET_KAD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/multiaddr.h>

#define KW_KAD_PEER_ID_MAX   64     /* bytes of a peer id (the largest libp2p one is 42) */
#define KW_KAD_ADDR_MAX      64     /* bytes of one binary multiaddr kept from a message */
#define KW_KAD_KEY_MAX       512    /* Message.key and Record.key */
#define KW_KAD_VALUE_MAX     16384  /* Record.value (an IPNS record is at most 10 KiB) */
#define KW_KAD_TIME_MAX      40     /* Record.timeReceived (RFC 3339 text), with NUL */

#define KW_KAD_MAX_PEERS CONFIG_KW_NET_KAD_MAX_PEERS_PER_MESSAGE
#define KW_KAD_MAX_ADDRS CONFIG_KW_NET_KAD_MAX_ADDRS_PER_PEER

enum kw_kad_msg_type {
	KW_KAD_PUT_VALUE = 0,
	KW_KAD_GET_VALUE = 1,
	KW_KAD_ADD_PROVIDER = 2,
	KW_KAD_GET_PROVIDERS = 3,
	KW_KAD_FIND_NODE = 4,
	KW_KAD_PING = 5,
};

enum kw_kad_conn_type {
	KW_KAD_NOT_CONNECTED = 0,
	KW_KAD_CONNECTED = 1,
	KW_KAD_CAN_CONNECT = 2,
	KW_KAD_CANNOT_CONNECT = 3,
};

/* Which repeated field of the Message a peer entry belongs to. */
enum kw_kad_peer_list {
	KW_KAD_CLOSER = 0,    /* closerPeers (8) */
	KW_KAD_PROVIDER = 1,  /* providerPeers (9) */
};

struct kw_kad_peer {
	uint8_t list;        /* enum kw_kad_peer_list */
	uint8_t connection;  /* enum kw_kad_conn_type; unknown values are kept as sent */
	uint8_t id_len;
	uint8_t n_addrs;
	uint8_t id[KW_KAD_PEER_ID_MAX];
	uint8_t addr_len[KW_KAD_MAX_ADDRS];
	uint8_t addrs[KW_KAD_MAX_ADDRS][KW_KAD_ADDR_MAX];  /* each parses with kw_maddr_from_bytes */
};

struct kw_kad_msg {
	uint32_t type;               /* enum kw_kad_msg_type; unknown values are kept as sent */
	int32_t cluster_level_raw;
	uint16_t key_len;
	bool has_record;
	uint16_t rec_key_len;
	uint16_t rec_value_len;
	uint16_t n_peers;            /* entries used in peers[], both lists, in wire order */
	uint32_t addrs_dropped;      /* decode: peer addresses skipped as unparseable/too long */
	uint8_t key[KW_KAD_KEY_MAX];
	uint8_t rec_key[KW_KAD_KEY_MAX];
	uint8_t rec_value[KW_KAD_VALUE_MAX];
	char rec_time[KW_KAD_TIME_MAX];  /* NUL-terminated, "" when absent */
	struct kw_kad_peer peers[KW_KAD_MAX_PEERS];
};

/* Resets m's fields and array lengths (array bytes past their lengths are left as they
 * were, as after kw_kad_msg_decode) and sets its type: a request or response skeleton for
 * the helpers below. */
void kw_kad_msg_init(struct kw_kad_msg *m, enum kw_kad_msg_type type);

/* Sets Message.key. Return: 0; -KW_ELIMIT when len > KW_KAD_KEY_MAX. */
int kw_kad_msg_set_key(struct kw_kad_msg *m, const uint8_t *key, size_t len);

/*
 * Sets Message.record (time may be NULL). Return: 0; -KW_ELIMIT when the key, the value or
 * the time exceeds its bound.
 */
int kw_kad_msg_set_record(struct kw_kad_msg *m, const uint8_t *key, size_t key_len,
			  const uint8_t *value, size_t value_len, const char *time);

/*
 * Appends a peer entry with no addresses to list `which`; *out (may be NULL) points at it
 * for kw_kad_peer_add_addr. Return: 0; -KW_EINVAL for an empty id; -KW_ELIMIT when the id
 * exceeds KW_KAD_PEER_ID_MAX or the message already holds KW_NET_KAD_MAX_PEERS_PER_MESSAGE
 * peers.
 */
int kw_kad_msg_add_peer(struct kw_kad_msg *m, enum kw_kad_peer_list which, const uint8_t *id,
			size_t id_len, enum kw_kad_conn_type conn, struct kw_kad_peer **out);

/*
 * Appends one binary multiaddr to p after checking it with kw_maddr_from_bytes. Unlike the
 * decoder, which drops a bogus address from a remote peer, this refuses it: it is our own
 * caller's mistake. Return: 0; kw_maddr_from_bytes's error (-KW_EINVAL, -KW_ENOPROTO,
 * -KW_EMSGSIZE); -KW_ELIMIT when the address exceeds KW_KAD_ADDR_MAX or p already holds
 * KW_NET_KAD_MAX_ADDRS_PER_PEER addresses.
 */
int kw_kad_peer_add_addr(struct kw_kad_peer *p, const uint8_t *addr, size_t len);
/* The same for an already-validated multiaddr (same returns, minus the parse errors). */
int kw_kad_peer_add_maddr(struct kw_kad_peer *p, const struct kw_multiaddr *ma);

/*
 * Writes uvarint(length) || Message into buf[0..cap): fields in number order, all closer
 * peers before all provider peers (each list in peers[] order). Return: the bytes written;
 * -KW_ENOSPC when cap is too small (buf contents then undefined); -KW_EMSGSIZE when the body
 * would exceed KW_NET_KAD_MAX_MESSAGE_BYTES (no peer would accept it).
 */
long kw_kad_msg_encode(const struct kw_kad_msg *m, uint8_t *buf, size_t cap);

/*
 * Decodes one length-prefixed message from the start of buf[0..len) into *out (overwritten
 * on every call; meaningful only on success). Return: the bytes consumed (prefix + body),
 * so a stream reader drops them and calls again for the next request;
 * -KW_EAGAIN when buf holds less than the whole message (read more, call again);
 * -KW_EMSGSIZE when the prefix announces more than KW_NET_KAD_MAX_MESSAGE_BYTES (decided
 * from the prefix alone, before the body arrives; the stream should be reset);
 * -KW_EBADMSG for a bad prefix varint or malformed protobuf;
 * -KW_ELIMIT for a well-formed message beyond our bounds: more peers than
 * KW_NET_KAD_MAX_PEERS_PER_MESSAGE, more valid addresses in one peer than
 * KW_NET_KAD_MAX_ADDRS_PER_PEER, a peer id, key, value or time longer than its bound.
 */
long kw_kad_msg_decode(const uint8_t *buf, size_t len, struct kw_kad_msg *out);

#endif /* KW_NET_KAD_MSG_H */
