/*
 * Petals' reachability check (bigscience-workshop/petals @ 22afba6,
 * src/petals/server/reachability.py: ReachabilityProtocol.rpc_check, call_check,
 * check_direct_reachability): a node asks peers it is connected to "can you reach me
 * directly?"; each asked peer dials the caller back on a NEW connection and answers
 * PingResponse.available. Request and response are hivemind's dht.proto PingRequest /
 * PingResponse (proto/hivemind/dht.proto): the node to check travels as its PeerID bytes in
 * PingRequest.peer.node_id (not a DHTID), the verdict in PingResponse.available (field 5).
 * doc/net-hivemind.md "Reachability check".
 *
 * Server (kw_hm_reach_create registers the unary handler "ReachabilityProtocol.rpc_check"):
 *  - node_id == our own PeerID: available = true at once (the last leg of someone's probe,
 *    as petals answers it);
 *  - node_id == the caller's PeerID (from the Noise channel, never from the envelope): probe
 *    it: dial each address the caller advertised (config.addrs: identify's listen addresses)
 *    whose IP is the IP the caller's connection comes from, with kw_swarm_dial and the
 *    caller's /p2p/ id, which always opens a new TCP connection and a new Noise handshake
 *    that must prove that peer id (never the connection the request came on); on the new
 *    connection call rpc_check(node_id = the caller) as petals' probe does; available = its
 *    answer. Then the probe connection is closed. Past config.timeout_ms the answer is
 *    available = false;
 *  - any other node_id: refused with an error text (petals would probe any peer; we do not
 *    let a stranger aim our dials at a third party).
 *  At most config.probes probes run at once and one per caller per config.peer_interval_ms;
 *  a call over either limit is answered with an error text (petals' caller counts that as
 *  "did not check", not as "unreachable"). Undecodable requests get an error text naming the
 *  field. Everything is counted (struct kw_hm_reach_stats). Nothing blocks the loop.
 *
 * Client (kw_hm_reach_check): asks up to config.ask_max connected peers (config.candidate
 * filters them, e.g. "identify lists rpc_check") to check us; the verdict is petals':
 * reachable when at least half of the peers that answered said available
 * (check_direct_reachability, threshold 0.5), unknown when none answered.
 *
 * Owns: the probe slots, the recent-callers table and the client's ask slots, all from the
 * node's arena at create. Every callback runs on the node's event loop.
 */
#ifndef KW_NET_HIVEMIND_REACH_H
#define KW_NET_HIVEMIND_REACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/key.h>
#include <kw/net/multiaddr.h>

struct kw_swarm;
struct kw_conn;
struct kw_hm;
struct kw_hm_reach;

#define KW_HM_REACH_NAME      "ReachabilityProtocol.rpc_check"
#define KW_HM_REACH_ADDRS     4    /* addresses of one caller a probe tries, in order */
#define KW_HM_REACH_ASK_MAX   8    /* peers one client check can ask */
#define KW_HM_REACH_REQ_MAX   (4 + KW_PEER_ID_MAX)  /* our encoded PingRequest */

/*
 * Fills out[0..max) with the listen addresses the remote of c advertised (binary, no /p2p/).
 * Return: how many; -KW_EAGAIN when they are not known yet (identify has not answered).
 */
typedef int (*kw_hm_reach_addrs_fn)(void *arg, struct kw_conn *c, struct kw_multiaddr *out,
				    int max);
/* Whether the client may ask c's remote (NULL: every upgraded connection). */
typedef bool (*kw_hm_reach_candidate_fn)(void *arg, struct kw_conn *c);

struct kw_hm_reach_config {
	uint32_t probes;            /* probes at once (KW_NET_HIVEMIND_REACH_PROBES) */
	uint32_t timeout_ms;        /* one probe: dials + the inner call (petals wait_timeout) */
	uint32_t peer_interval_ms;  /* one probe per caller per this long */
	uint32_t ask_max;           /* peers one client check asks (petals max_peers), <= 8 */
	kw_hm_reach_addrs_fn addrs;
	void *addrs_arg;
	kw_hm_reach_candidate_fn candidate;
	void *candidate_arg;
};
void kw_hm_reach_config_default(struct kw_hm_reach_config *c);

struct kw_hm_reach_stats {
	/* server */
	uint64_t checks_in;         /* rpc_check requests decoded */
	uint64_t self_checks;       /* node_id was ours: answered true */
	uint64_t probes;            /* probes started */
	uint64_t probes_available, probes_unavailable;  /* their answers */
	uint64_t probe_timeouts;    /* of the unavailable: the deadline passed */
	uint64_t dials;             /* probe connections dialled */
	uint64_t refused_busy;      /* every probe slot taken, or no outbound connection slot */
	uint64_t refused_rate;      /* the same caller again within peer_interval_ms */
	uint64_t refused_peer;      /* node_id neither ours nor the caller's */
	uint64_t bad_requests;      /* undecodable PingRequest */
	/* client */
	uint64_t checks_out, asked, answers, answers_available;
};

/* The outcome of one client check. */
enum kw_hm_reach_verdict {
	KW_HM_REACH_UNKNOWN = 0,     /* nobody answered (or nobody to ask) */
	KW_HM_REACH_REACHABLE,
	KW_HM_REACH_UNREACHABLE,
};

struct kw_hm_reach_result {
	enum kw_hm_reach_verdict verdict;
	uint32_t asked, answered, available;
};
typedef void (*kw_hm_reach_done_fn)(const struct kw_hm_reach_result *r, void *user);

/*
 * Creates the check on sw/hm from the node's arena and registers KW_HM_REACH_NAME with a
 * deadline of timeout_ms + 1 s (our own "false" always comes before hivemind's
 * TimeoutError). cfg NULL: defaults without an address source (every probe then answers
 * false: no address to dial). Start-up only. Return: 0, -KW_ENOMEM, -KW_EINVAL (a zero
 * limit, ask_max above KW_HM_REACH_ASK_MAX), kw_hm_register_unary's errors.
 */
int kw_hm_reach_create(struct kw_swarm *sw, struct kw_hm *hm, const struct kw_hm_reach_config *cfg,
		       struct kw_hm_reach **out);

/*
 * Asks up to ask_max candidate peers to check us; cb runs once on the loop with the verdict
 * (at once, from inside this call, when there is nobody to ask). Return: 0 (cb will run or
 * ran); -KW_EBUSY while the previous check runs.
 */
int kw_hm_reach_check(struct kw_hm_reach *r, kw_hm_reach_done_fn cb, void *user);

void kw_hm_reach_get_stats(const struct kw_hm_reach *r, struct kw_hm_reach_stats *st);

/*
 * The request codec (pure, bounded; the fuzz target's entry point). Decode reads a
 * PingRequest and returns the node to check from peer.node_id as a PeerID: 0;
 * -KW_EBADMSG (malformed protobuf); -KW_EPROTO (peer or node_id missing, node_id longer
 * than KW_PEER_ID_MAX or not a peer-ID multihash). *why names the problem.
 * Encode writes PingRequest{peer{node_id}}: bytes written or -KW_ENOSPC.
 */
int kw_hm_reach_decode_req(const uint8_t *buf, size_t len, struct kw_peer_id *out,
			   const char **why);
long kw_hm_reach_encode_req(const struct kw_peer_id *id, uint8_t *buf, size_t cap);
/* PingResponse.available of a response (absent: false). Return: 0 or -KW_EBADMSG. */
int kw_hm_reach_decode_resp(const uint8_t *buf, size_t len, bool *available);

#endif /* KW_NET_HIVEMIND_REACH_H */
