/*
 * hivemind averaging on the swarm (app/avg_net.c): the all-reduce's rpc_aggregate_part streams
 * and matchmaking's rpc_join_group streams, as hivemind's DecentralizedAverager serves and
 * calls them (hivemind/averaging/averager.py, allreduce.py, matchmaking.py @ 4bd43b7;
 * doc/ml-avg.md "On the network"). Private to app/.
 *
 * It is the transport of one struct kw_avg (ml/avg, which never touches the network) and the
 * join/reply/assembled side of one struct kw_avg_mm; the DHT declaration stays the caller's
 * (a callback), so a test can run matchmaking over a table and a node over the Hivemind DHT.
 *
 *   rpc_aggregate_part: a sender opens one stream per reducer and writes AveragingData
 *     (first PART_FOR_AVERAGING + group_id, then NO_CODE parts), then END_OF_STREAM; the
 *     reducer answers AVERAGED_PART deltas on the same stream, then closes.
 *   rpc_join_group: a follower writes one JoinRequest + END_OF_STREAM; the leader answers
 *     MessageFromLeader codes (ACCEPTED, later BEGIN_ALLREDUCE with group id, ordered peer
 *     ids and gathered bytes, or GROUP_DISBANDED), then closes.
 *
 * A groupmate or leader we have no connection with is dialled through cfg.connect (the
 * caller's way to reach a PeerID: for a node, the Hivemind DHT's address book and resolver);
 * the messages for it wait in its link's backlog meanwhile. A dial that fails or passes
 * cfg.dial_ms excludes the groupmate from the round like a failed stream (a leader: the next
 * one is asked), with a log line naming the peer and the reason. Without cfg.connect only
 * connected peers are reached.
 *
 * Memory: the struct, the per-peer links and their backlogs (messages queued while a stream's
 * send buffer is full) come from the node's arena at kw_app_avgnet_create. Nothing is
 * allocated per message. Single-threaded: everything runs on the node's loop.
 */
#ifndef KW_APP_AVG_NET_H
#define KW_APP_AVG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/ml/avg.h>

struct kw_conn;
struct kw_hm;
struct kw_node;
struct kw_peer_id;
struct kw_swarm;
struct kw_app_avgnet;

/* A dial's completion: c the connection to the peer (err 0), or c NULL and err < 0. */
typedef void (*kw_app_avgnet_connected_fn)(void *ctx, struct kw_conn *c, int err);

struct kw_app_avgnet_cfg {
	const char *prefix;            /* averager prefix (no '.') */
	const char *cls;               /* hivemind class name, "DecentralizedAverager" */
	unsigned max_peers;            /* largest group (<= KW_AVG_GROUP_MAX) */
	size_t backlog_bytes;          /* per peer and direction: messages waiting for room in
	                                * the stream's send buffer (a CLIENT queues all its parts
	                                * for a reducer here) */
	uint32_t idle_ms;              /* stream idle deadline (join and aggregate streams) */
	uint32_t pending_ms;           /* how long a part for a group we do not know yet waits
	                                * before it is answered BAD_GROUP_ID (hivemind waits for
	                                * pending groups too) */
	/* DHT time in seconds (expirations). NULL: the loop's clock, which processes on one
	 * machine share (CLOCK_MONOTONIC); give wall time for peers on other machines. */
	double (*now)(void *arg);
	void *now_arg;
	/* Reaches a peer we have no connection with (NULL: such a peer is not reached). Returns
	 * 0 and then calls cb(ctx, ...) exactly once on the loop, never from inside connect;
	 * or a negative code (cb never runs). A late cb (past dial_ms, or after the round
	 * ended) is ignored; its slot stays taken until then, so it must come. */
	int (*connect)(void *arg, const struct kw_peer_id *peer, kw_app_avgnet_connected_fn cb,
		       void *ctx);
	void *connect_arg;
	uint32_t dial_ms;              /* a dial's deadline (0: 5000) */
};

/*
 * Registers `<prefix>::<cls>.rpc_aggregate_part` and `.rpc_join_group` on hm (which needs
 * kw_hm_stream_setup first, with buffers that hold one part message). Start-up only.
 * Return: 0 with *out; -KW_EINVAL; -KW_ENOMEM; kw_hm_register_stream's errors.
 */
int kw_app_avgnet_create(struct kw_node *n, struct kw_swarm *sw, struct kw_hm *hm,
			 const struct kw_app_avgnet_cfg *cfg, struct kw_app_avgnet **out);

/* The transport to give kw_avg_create; then kw_app_avgnet_bind with the averager made. */
void kw_app_avgnet_transport(struct kw_app_avgnet *net, struct kw_avg_transport *tr);
void kw_app_avgnet_bind(struct kw_app_avgnet *net, struct kw_avg *avg);

/* "<prefix>::<cls>.<method>" into out[0..cap): its length, -KW_EINVAL, -KW_ENOSPC. */
int kw_app_avgnet_handle_name(const char *prefix, const char *cls, const char *method,
			      char *out, size_t cap);

/*
 * Runs one round with an assembled group: g from matchmaking (or built by hand), ids[i] the
 * PeerID bytes of g's peer i (copied). Returns at once; done runs once on the loop, after
 * every stream of the round was ended or reset. Return: 0; kw_avg_step's errors; -KW_EBUSY.
 */
int kw_app_avgnet_step(struct kw_app_avgnet *net, const struct kw_avg_group *g,
		       const struct kw_avg_bytes *ids, kw_avg_done_fn done, void *user);

/*
 * Matchmaking: declare() stores or withdraws our entry under the group key (the caller's DHT;
 * a store failing makes kw_app_avgnet_match fail); the rest goes over rpc_join_group.
 * assembled(err, g, ids) runs once: err 0 with the group and its peer ids (valid during the
 * call), or -KW_ETIMEDOUT (no group by the expiration: call again), or a stream error.
 */
typedef void (*kw_app_avgnet_assembled_fn)(struct kw_app_avgnet *net, int err,
					   const struct kw_avg_group *g,
					   const struct kw_avg_bytes *ids, void *user);
struct kw_app_avgnet_match {
	const char *key;               /* kw_avg_group_key (borrowed until assembled) */
	const uint8_t *schema_hash;    /* borrowed */
	size_t schema_hash_len;
	enum kw_avg_mode mode;
	double bandwidth;              /* KW_AVG_BW_NONE: not specified */
	unsigned min_group_size, target_group_size;
	uint32_t timeout_ms;           /* declared expiration = now + timeout */
	int (*declare)(void *u, const char *key, double expiration, bool looking);
	void *declare_arg;
};
/*
 * Starts looking for a group. Feed the entries read back from the DHT under the key with
 * kw_app_avgnet_candidates (our own entry may be among them). Return: 0; -KW_EBUSY;
 * -KW_EINVAL; the declare error.
 */
int kw_app_avgnet_match(struct kw_app_avgnet *net, const struct kw_app_avgnet_match *m,
			kw_app_avgnet_assembled_fn assembled, void *user);
int kw_app_avgnet_candidates(struct kw_app_avgnet *net, const struct kw_avg_candidate *c,
			     size_t n);
/*
 * Abandons the search in progress without a report (assembled does not run): a leader sends
 * GROUP_DISBANDED to its followers, a follower resets its join stream, and our entry is
 * declared again with looking = false (as hivemind's matchmaking does when it stops
 * looking). Return: 0; -KW_ENOENT (not searching); the declare error.
 */
int kw_app_avgnet_leave(struct kw_app_avgnet *net);
/* Our declared expiration (DHT time), for the caller's DHT store. */
double kw_app_avgnet_expiration(const struct kw_app_avgnet *net);

struct kw_app_avgnet_stats {
	uint64_t streams_out, streams_in, parts_held, backlog_peak;
	uint64_t refused;              /* part streams answered BAD_GROUP_ID / PROTOCOL_VIOLATION */
	uint64_t joins_in, joins_out, groups_led, groups_followed;
	uint64_t leaves;               /* searches abandoned (kw_app_avgnet_leave) */
	uint64_t dials, dials_failed;  /* cfg.connect calls; those failed or past dial_ms */
};
void kw_app_avgnet_get_stats(const struct kw_app_avgnet *net, struct kw_app_avgnet_stats *st);

/*
 * hivemind's schema_hash of one float32 CPU tensor of shape size[0..ndim) (averager.py
 * compute_schema_hash @ 4bd43b7): SHA-1 of msgpack([{field: str(value)}]) over the fields of
 * TensorDescriptor.from_tensor in declaration order, so a Python averager of the same tensor
 * passes the leader's BAD_SCHEMA_HASH check. The strings are those of a plain CPU tensor:
 * "torch.Size([d0, d1])", "torch.float32", "torch.strided", "cpu", "False" (requires_grad),
 * "False" (pin_memory), "0" (compression: from_tensor always leaves NONE; the averager's
 * compression is not part of the schema). Return: 0 with out[20]; -KW_EINVAL (size NULL with
 * ndim > 0, more than KW_APP_AVGNET_SCHEMA_DIMS dimensions).
 */
#define KW_APP_AVGNET_SCHEMA_DIMS 8
int kw_app_avgnet_schema_hash(const uint64_t *size, size_t ndim, uint8_t out[20]);

#endif /* KW_APP_AVG_NET_H */
