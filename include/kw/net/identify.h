/*
 * libp2p identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0); libp2p/specs
 * identify/README.md. On every upgraded connection we ask the remote once and answer its
 * request: our protocols (the swarm registry), listen addresses, the address we observe for
 * it, our public key, protocolVersion "ipfs/0.1.0" and agentVersion
 * "kwaainet-edge/<version>". The remote's answer is decoded with nanopb into bounded fields
 * and kept per connection in the swarm extension slot that identify registers
 * (kw_identify_remote). signedPeerRecord is neither sent nor checked. When our protocols or
 * listen addresses change while connections are up, the new message is pushed on
 * /ipfs/id/push/1.0.0 to every connected peer that lists that protocol, once per peer per
 * KW_NET_IDENTIFY_PUSH_DELAY_MS (changes in between coalesce).
 *
 * Owns: a pool of per-stream read states (KW_NET_IDENTIFY_STREAMS), one decode scratch and
 * the per-connection state in its extension slot (cleared when the connection closes).
 */
#ifndef KW_NET_IDENTIFY_H
#define KW_NET_IDENTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_swarm;
struct kw_conn;
struct kw_peer_id;
struct kw_multiaddr;

#define KW_IDENTIFY_PROTO        "/ipfs/id/1.0.0"
#define KW_IDENTIFY_PUSH_PROTO   "/ipfs/id/push/1.0.0"
#define KW_IDENTIFY_MSG_MAX      8192   /* js limit per message */
#define KW_IDENTIFY_PROTOS_BYTES 1024   /* the remote's protocol list, NUL-separated */
#define KW_IDENTIFY_LISTEN_KEEP  8      /* listen addresses kept per remote (first that fit) */
#define KW_IDENTIFY_ADDR_MAX     64     /* bytes of one kept binary listen address */
#define KW_IDENTIFY_ANNOUNCE_MAX 8      /* kw_identify_set_announce addresses */

struct kw_identify;

/*
 * What identify learnt about the remote of one connection (replaced by pushes). Protocols:
 * NUL-separated ids in one buffer; kw_identify_remote_protocol iterates them.
 */
struct kw_identify_remote {
	bool have;
	char agent[64];
	char protocol_version[32];
	uint16_t n_protocols;
	uint16_t protos_len;
	char protos[KW_IDENTIFY_PROTOS_BYTES];
	uint8_t n_listen;    /* listen addresses the remote reported */
	/* The first KW_IDENTIFY_LISTEN_KEEP reported listen addresses that parse as multiaddrs
	 * (kw_maddr_from_bytes) and fit KW_IDENTIFY_ADDR_MAX bytes, binary, without /p2p/. Kad
	 * gives them to its routing table; others are skipped (a go or js peer lists transports
	 * we cannot dial). */
	uint8_t n_addrs;
	uint8_t addr_len[KW_IDENTIFY_LISTEN_KEEP];
	uint8_t addrs[KW_IDENTIFY_LISTEN_KEEP][KW_IDENTIFY_ADDR_MAX];
	uint32_t push_gen;   /* the generation of our own info this peer has seen */
	/* The address the remote saw us dial or answer from (observedAddr), binary, without
	 * /p2p/; observed_len 0 when it sent none or it did not parse. The node's status page
	 * compares it with our listen addresses (doc/status.md "Reachability"). */
	uint8_t observed_len;
	uint8_t observed[KW_IDENTIFY_ADDR_MAX];
};

/*
 * Told every time identify learnt (or a push changed) what a connection's remote offers,
 * after the message was decoded and stored (kw_identify_remote(id, c) is current; `push` is
 * true for an identify push). Kad uses it to admit only peers that list /ipfs/kad/1.0.0.
 * Runs on the loop from the stream's handler: it must not close c; opening streams is fine.
 * Intrusive: the struct is the caller's and must outlive the identify (start-up only).
 */
struct kw_identify_observer {
	void (*on_identified)(struct kw_identify *id, struct kw_conn *c, bool push, void *arg);
	void *arg;
	struct kw_identify_observer *next;
};

/*
 * Registers both protocols on sw, watches new connections and asks each remote once.
 * Registers its per-connection extension slot (before any connection exists). State comes
 * from the node's arena. Return: 0, -KW_ENOMEM, or kw_swarm_register's /
 * kw_swarm_ext_register's error.
 */
int kw_identify_init(struct kw_swarm *sw, struct kw_identify **out);

/* What identify learnt about c's remote (have is false until it answered); lives as long as
 * c. NULL when id is NULL. */
const struct kw_identify_remote *kw_identify_remote(const struct kw_identify *id,
						    const struct kw_conn *c);
/* Adds an observer (start-up; observers run in the order they were added). */
void kw_identify_add_observer(struct kw_identify *id, struct kw_identify_observer *o);
/* Whether c's remote listed protocol `proto` in its latest identify (false before it answered). */
bool kw_identify_remote_has(const struct kw_identify *id, const struct kw_conn *c,
			    const char *proto);

/* The i-th protocol c's remote reported, or NULL past the end. */
const char *kw_identify_remote_protocol(const struct kw_identify *id, const struct kw_conn *c,
					size_t i);

/*
 * Encodes our Identify for connection c (observedAddr = c's remote address) into buf
 * with its uvarint length prefix. Return: bytes written, -KW_ENOSPC (cap too small).
 */
long kw_identify_encode(struct kw_identify *id, struct kw_conn *c, uint8_t *buf, size_t cap);

/*
 * Decodes one Identify protobuf body (no length prefix) into `out` (bounded copy of
 * protocols, agent, version, the listen addresses described above). If `expect_peer` is non-NULL, a present publicKey must be the
 * key of that peer id (-KW_EPEERID otherwise: js checks the same against Noise's peer);
 * `push` allows absent fields (they keep their old values).
 * Return: 0, -KW_EBADMSG (malformed or over a bound), -KW_EPEERID.
 */
int kw_identify_decode(struct kw_identify *id, const uint8_t *buf, size_t len,
		       const struct kw_peer_id *expect_peer, bool push, struct kw_identify_remote *out);

/* Asks c's remote now (done automatically on connection up). Return: 0, -KW_ELIMIT (no
 * identify stream free) or kw_swarm_open_stream's error. */
int kw_identify_request(struct kw_identify *id, struct kw_conn *c);

/*
 * The addresses we announce (the config's `announce`, e.g. a router's public address with a
 * forwarded port): when n > 0 our listenAddrs are exactly these (binary, no /p2p/; copied)
 * instead of the swarm's listen addresses, as go-libp2p's AddrsFactory with announce
 * addresses (p2pd -announceAddrs, hivemind's announce_maddrs) replaces them. Start-up only
 * (no push follows). Return: 0, -KW_ENOSPC (more than KW_IDENTIFY_ANNOUNCE_MAX),
 * -KW_EMSGSIZE (an address longer than a listenAddrs entry).
 */
int kw_identify_set_announce(struct kw_identify *id, const struct kw_multiaddr *addrs, size_t n);

#endif /* KW_NET_IDENTIFY_H */
