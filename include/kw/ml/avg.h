/*
 * Decentralized parameter averaging: Hivemind's butterfly all-reduce (hivemind @ 4bd43b7:
 * hivemind/averaging/allreduce.py, partition.py, load_balancing.py, matchmaking.py,
 * key_manager.py, group_info.py, averager.py). doc/ml-avg.md explains the round.
 *
 * Transport-agnostic: the core never touches the network. It hands encoded averaging.proto
 * AveragingData messages to struct kw_avg_transport and is handed the peers' messages through
 * kw_avg_on_message(); net/hivemind's rpc_aggregate_part streams (or the tests' in-process
 * fake) carry them. Matchmaking (group keys, join codes, leader/follower decisions) is a pure
 * state machine with the DHT and the RPCs as callbacks (struct kw_avg_mm below).
 *
 * Owns: every buffer of a round (received parts, the averaged part, codec scratch, encode
 * buffer), carved once from the arena given to kw_avg_create and sized from struct
 * kw_avg_cfg (defaults from Kconfig). The averaged tensors are the caller's storage
 * (cfg.tensors), borrowed for the averager's lifetime. Timers run on the loop given at
 * create. Single-threaded: call everything from that loop.
 */
#ifndef KW_ML_AVG_H
#define KW_ML_AVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/loop.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>

/* averaging.proto MessageCode (wire numbers; keep them). */
enum kw_avg_code {
	KW_AVG_NO_CODE = 0, KW_AVG_REQUEST_JOIN = 1, KW_AVG_ACCEPTED = 2,
	KW_AVG_BEGIN_ALLREDUCE = 3, KW_AVG_PART_FOR_AVERAGING = 4, KW_AVG_AVERAGED_PART = 5,
	KW_AVG_NOT_DECLARED = 6, KW_AVG_NOT_A_LEADER = 7, KW_AVG_BAD_EXPIRATION_TIME = 8,
	KW_AVG_BAD_SCHEMA_HASH = 9, KW_AVG_BAD_GROUP_ID = 10, KW_AVG_DUPLICATE_PEER_ID = 11,
	KW_AVG_GROUP_IS_FULL = 12, KW_AVG_NOT_LOOKING_FOR_GROUP = 13,
	KW_AVG_PROTOCOL_VIOLATION = 14, KW_AVG_INTERNAL_ERROR = 15, KW_AVG_CANCELLED = 16,
	KW_AVG_GROUP_DISBANDED = 17, KW_AVG_BAD_GROUP_KEY = 18,
};
/* "ACCEPTED", ...; "UNKNOWN" for values outside the enum. Never NULL. */
const char *kw_avg_code_name(int code);

/* allreduce.py AveragingMode: NODE sends and reduces, CLIENT only sends (gets no part),
 * AUX only reduces (weight 0, contributes nothing). */
enum kw_avg_mode { KW_AVG_NODE = 0, KW_AVG_CLIENT = 1, KW_AVG_AUX = 2 };

#define KW_AVG_GROUP_ID_MAX 32   /* = max_size of group_id in averaging.options */
#define KW_AVG_PEER_ID_MAX  64   /* = max_size of PeerID bytes */
#define KW_AVG_GROUP_MAX    64   /* = max_count of ordered_peer_ids */
#define KW_AVG_BW_NONE      (-1.0)  /* "bandwidth not specified" (Python None) */

/* ---- load balancing and partitioning (load_balancing.py, partition.py) --------------- */
/*
 * hagenbach_bishoff(): alloc[i] = int(total * s_i / sum(s)) in float64, then +1 to the
 * first index maximising s_i / (alloc_i + 1) until the sum is total. Returns 0, -KW_EINVAL
 * (n == 0, a negative or non-finite score, all scores zero).
 */
int kw_avg_hagenbach_bishoff(uint64_t total, const double *scores, size_t n, uint64_t *alloc);
/*
 * load_balance_peers(total, bandwidths, min_size=0). bandwidth KW_AVG_BW_NONE (any negative
 * value) is Python None; 0 means "cannot reduce" (CLIENT peers are passed as 0, as
 * averager.py does). With no positive bandwidth the scores are 1 for None and 0 otherwise,
 * exactly as hivemind. With positive bandwidths hivemind solves a linear program with SciPy;
 * we use scores proportional to bandwidth (None = mean of the given ones) instead, so such
 * groups only agree on part boundaries among kwaainet peers (doc/ml-avg.md).
 * Returns 0, -KW_EINVAL (n == 0, every peer 0).
 */
int kw_avg_load_balance(uint64_t total, const double *bandwidth, size_t n, uint64_t *alloc);

/* partition.py part size: int(part_size_bytes / (4 * ratio)) float32 values, ratio 1 for
 * NONE, 16/32 for FLOAT16 and MEANSTD_16BIT, 8/32 for the 8-bit codecs. 0 if unknown. */
size_t kw_avg_part_values(enum kw_compression comp, size_t part_size_bytes);

struct kw_avg_part {
	uint32_t tensor;   /* index in cfg.tensors */
	uint32_t len;      /* values */
	uint64_t off;      /* first value in that tensor */
};
/*
 * TensorPartContainer's split: every tensor (in order) cut into parts of part_values values,
 * parts assigned to peers by pivots int64(cumsum(alloc)/sum(alloc)*total) in float64, a part
 * that straddles a pivot going to the peer with the largest overlap (first on ties). Writes
 * the parts in order and first[i]..first[i+1] = the parts peer i reduces (first has n+1
 * entries). Returns 0, -KW_EINVAL, -KW_ENOSPC (more than max_parts parts).
 */
int kw_avg_partition(const uint64_t *numel, size_t n_tensors, const uint64_t *alloc,
		     size_t n_peers, size_t part_values, struct kw_avg_part *parts,
		     size_t max_parts, uint32_t *first, size_t *n_parts);

/* ---- AveragingData messages (averaging.proto through nanopb) --------------------------- */
struct kw_avg_data {
	int32_t code;                       /* enum kw_avg_code; unknown values kept */
	uint8_t group_id[KW_AVG_GROUP_ID_MAX];
	size_t group_id_len;
	uint8_t peer_id[KW_AVG_PEER_ID_MAX];
	size_t peer_id_len;
	bool has_part;
	struct kw_tensor_msg part;          /* part.buf points into the decoded input */
	double weight;
};
/* Parses one AveragingData. Returns 0, -KW_EBADMSG (malformed), -KW_EMSGSIZE (a field over
 * its bound). d->part views the input, which must outlive *d. */
int kw_avg_data_decode(struct kw_avg_data *d, const uint8_t *buf, size_t len);
/* Exact encoded size (0: not encodable) and encoder; -KW_EINVAL, -KW_ENOSPC. */
size_t kw_avg_data_encoded_size(const struct kw_avg_data *d);
int kw_avg_data_encode(const struct kw_avg_data *d, uint8_t *out, size_t cap, size_t *out_len);

/* JoinRequest (follower -> leader), copied out of the message. */
struct kw_avg_join_msg {
	uint8_t schema_hash[32];
	size_t schema_hash_len;
	double expiration;
	uint8_t gather[256];
	size_t gather_len;
	bool client_mode;
	char group_key[128];          /* NUL-terminated */
};
/* Returns 0, -KW_EINVAL (a field over its bound), -KW_ENOSPC. */
int kw_avg_join_encode(const struct kw_avg_join_msg *j, uint8_t *out, size_t cap, size_t *out_len);
/* Returns 0, -KW_EBADMSG, -KW_EMSGSIZE (a field over its bound). */
int kw_avg_join_decode(struct kw_avg_join_msg *j, const uint8_t *buf, size_t len);

/*
 * The `gather` bytes of a JoinRequest (averager.py): msgpack [bandwidth (float64, or nil for
 * KW_AVG_BW_NONE), mode, bin(user bytes)], where user bytes are msgpack of the user's data
 * (c0 for None). Decoding accepts float32/float64/small-int bandwidths and views the user
 * bytes in buf. encode: 0, -KW_EINVAL, -KW_ENOSPC; decode: 0, -KW_EBADMSG, -KW_EMSGSIZE
 * (bytes after the array).
 */
int kw_avg_gather_encode(double bandwidth, enum kw_avg_mode mode, const uint8_t *user,
			 size_t user_len, uint8_t *out, size_t cap, size_t *out_len);
int kw_avg_gather_decode(const uint8_t *buf, size_t len, double *bandwidth,
			 enum kw_avg_mode *mode, const uint8_t **user, size_t *user_len);

/* ---- MessageFromLeader (leader -> follower on rpc_join_group) --------------------------- */
#define KW_AVG_GATHER_MAX   256   /* = JoinRequest.gather max_size: one peer's gathered bytes */

struct kw_avg_bytes {
	const uint8_t *p;   /* NULL only when len is 0 */
	size_t len;
};

/*
 * averaging.proto MessageFromLeader. ordered_peer_ids / gathered are views: into the input
 * after decoding (which must outlive *m), into the caller's storage for encoding. Bounds:
 * KW_AVG_GROUP_MAX entries each, PeerIDs of KW_AVG_PEER_ID_MAX bytes, gathered entries of
 * KW_AVG_GATHER_MAX bytes.
 */
struct kw_avg_leader_msg {
	int32_t code;                       /* enum kw_avg_code; unknown values kept */
	uint8_t group_id[KW_AVG_GROUP_ID_MAX];
	size_t group_id_len;
	uint8_t suggested_leader[KW_AVG_PEER_ID_MAX];
	size_t suggested_len;
	unsigned n_peers;
	struct kw_avg_bytes peer[KW_AVG_GROUP_MAX];
	unsigned n_gathered;
	struct kw_avg_bytes gathered[KW_AVG_GROUP_MAX];
};
/* Returns 0, -KW_EINVAL (a field or count over its bound), -KW_ENOSPC. */
int kw_avg_leader_encode(const struct kw_avg_leader_msg *m, uint8_t *out, size_t cap,
			 size_t *out_len);
/* Returns 0, -KW_EBADMSG (malformed), -KW_EMSGSIZE (a field or count over its bound). */
int kw_avg_leader_decode(struct kw_avg_leader_msg *m, const uint8_t *buf, size_t len);

struct kw_avg_group;
/*
 * The group a BEGIN_ALLREDUCE describes, as a follower (or the leader, for the message it
 * sends) sees it: group id, size, our index (self must be in ordered_peer_ids once) and each
 * peer's mode and bandwidth from its gathered bytes. Returns 0, -KW_EPROTO (not
 * BEGIN_ALLREDUCE, no or empty group id, self missing or twice, a duplicate peer, counts that
 * differ, a gathered entry that does not decode, every peer a CLIENT), -KW_ERANGE (more than
 * max_peers peers).
 */
int kw_avg_group_from_leader(const struct kw_avg_leader_msg *m, const uint8_t *self,
			     size_t self_len, unsigned max_peers, struct kw_avg_group *g);

/* ---- all-reduce ------------------------------------------------------------------------- */
struct kw_avg;

/*
 * How the core reaches its groupmates (peer = index in the group's ordered peer list).
 * send() carries one encoded AveragingData to `peer`; `msg` is valid only during the call
 * (copy or write it). It must not call back into the averager from inside. Messages to one
 * peer must arrive in the order sent. Returns 0 or a negative code: the peer is then
 * excluded from the round ("send failed").
 */
struct kw_avg_transport {
	int (*send)(void *t, unsigned peer, const uint8_t *msg, size_t len);
	void *t;
	/*
	 * Optional (NULL: not needed). Called once we will send nothing more on one side of the
	 * rpc_aggregate_part stream with `peer`: replies = false after our last part to reducer
	 * `peer` (half-close the request side: a Hivemind reducer waits for it before it answers a
	 * CLIENT sender), replies = true after our last averaged part to sender `peer` (end the
	 * response stream). Same rules as send().
	 */
	void (*end)(void *t, unsigned peer, bool replies);
};

struct kw_avg_cfg {
	size_t n_tensors;
	float *const *tensors;          /* caller storage, averaged in place; borrowed */
	const uint64_t *numel;          /* values per tensor */
	enum kw_compression compression;/* NONE, FLOAT16, MEANSTD_16BIT, BLOCKWISE_8BIT, ... */
	size_t part_size_bytes;         /* 0 = CONFIG_KW_ML_AVG_PART_BYTES (hivemind: 512 KiB) */
	unsigned max_peers;             /* group size limit; 0 = CONFIG_KW_ML_AVG_MAX_PEERS */
	unsigned max_parts;             /* parts per round; 0 = CONFIG_KW_ML_AVG_MAX_PARTS */
	unsigned window;                /* parts in flight per peer; 0 = CONFIG_KW_ML_AVG_WINDOW */
	uint32_t sender_timeout_ms;     /* silence from a peer that owes us data; 0 = Kconfig */
	uint32_t round_timeout_ms;      /* whole round; 0 = CONFIG_KW_ML_AVG_ROUND_TIMEOUT_MS */
	const struct kw_codec *codec;   /* borrowed; built with kw_codec_init */
};
void kw_avg_cfg_default(struct kw_avg_cfg *cfg);

/* One group, as matchmaking assembled it (group_info.py GroupInfo + decoded `gathered`). */
struct kw_avg_group {
	uint8_t group_id[KW_AVG_GROUP_ID_MAX];
	size_t group_id_len;
	unsigned n;                     /* peers; 1..cfg.max_peers */
	unsigned self;                  /* our index */
	enum kw_avg_mode mode[KW_AVG_GROUP_MAX];
	double bandwidth[KW_AVG_GROUP_MAX];  /* KW_AVG_BW_NONE = not specified */
};

#define KW_AVG_REASON_MAX 80
struct kw_avg_result {
	int err;                        /* 0; -KW_ECANCELED (destroyed); -KW_ETIMEDOUT never:
	                                 * a deadline excludes peers, the round still completes */
	unsigned peers_used;            /* group size minus excluded peers */
	unsigned n_excluded;
	uint64_t excluded_mask;         /* bit i: peer i excluded */
	const char (*reason)[KW_AVG_REASON_MAX]; /* reason[i] for excluded i (valid in callback) */
	uint64_t bytes_sent, bytes_received;   /* encoded AveragingData bytes */
	uint64_t raw_bytes_sent;        /* float32 bytes those parts stand for */
	double compression_ratio;       /* raw_bytes_sent / part bytes sent (0 if nothing sent) */
	uint64_t values_failed;         /* our values left un-averaged (a reducer failed) */
	uint64_t time_ms;
};
typedef void (*kw_avg_done_fn)(struct kw_avg *a, const struct kw_avg_result *r, void *user);

/* Arena bytes kw_avg_create needs for cfg (group size, window and parts included). */
size_t kw_avg_arena_bytes(const struct kw_avg_cfg *cfg);
/* Returns 0, -KW_EINVAL (bad cfg), -KW_ENOMEM (arena too small). */
int kw_avg_create(struct kw_loop *loop, struct kw_arena *arena, const struct kw_avg_cfg *cfg,
		  const struct kw_avg_transport *tr, struct kw_avg **out);
/* Ends a running round (callback with -KW_ECANCELED) and stops the timer. */
void kw_avg_destroy(struct kw_avg *a);

/*
 * Adds weight * tensors[t][i] into the local sum (tensors in cfg order and sizes). The
 * round averages sum / total weight with weight = total weight, so the group result is the
 * exact weighted mean of every accumulated contribution in the group. The first call after
 * a finished round starts a new sum. Returns 0, -KW_EINVAL (weight < 0, above FLT_MAX or NaN),
 * -KW_EBUSY (a round is running).
 */
int kw_avg_accumulate(struct kw_avg *a, const float *const *tensors, double weight);
/*
 * Starts one all-reduce round with group g; returns at once. done() runs on the loop exactly
 * once (also on kw_avg_destroy, -KW_ECANCELED), after which cfg.tensors hold the group
 * average (parts whose reducer failed keep our own values). With nothing accumulated the
 * current tensor contents count with weight 1 (AUX: weight 0). Returns 0, -KW_EBUSY,
 * -KW_EINVAL (bad group), -KW_ENOSPC (more parts than cfg.max_parts).
 */
int kw_avg_step(struct kw_avg *a, const struct kw_avg_group *g, kw_avg_done_fn done, void *user);

/*
 * One message from groupmate `from` (index). Parts for us to reduce (PART_FOR_AVERAGING, then
 * NO_CODE) and averaged deltas (AVERAGED_PART) both come here. Returns 0 (taken); -KW_EAGAIN
 * (window full: keep the message and deliver it again after the next send() to that peer);
 * -KW_EBADMSG / -KW_EPROTO / -KW_ERANGE: the message was bad, the peer is excluded and the
 * reason logged; -KW_ENOENT: no round (or the peer was excluded already), message ignored.
 */
int kw_avg_on_message(struct kw_avg *a, unsigned from, const uint8_t *msg, size_t len);
/* The transport lost `peer` (stream reset, dial failed): exclude it with reason `err`. */
void kw_avg_on_peer_error(struct kw_avg *a, unsigned peer, int err);

struct kw_avg_stats {
	uint64_t rounds, parts_reduced, parts_rejected, peers_excluded, eagain;
};
void kw_avg_get_stats(const struct kw_avg *a, struct kw_avg_stats *st);

/* ---- matchmaking (matchmaking.py, key_manager.py) --------------------------------------- */
/*
 * Group key f"{prefix}.0b{bits}" (key_manager.py): prefix non-empty without '.', bits only
 * '0'/'1'. Returns the length written (NUL-terminated), -KW_EINVAL, -KW_ENOSPC.
 */
int kw_avg_group_key(const char *prefix, const char *bits, char *out, size_t cap);
/* is_valid_group: regex ^(([^.])+)[.]0b[01]*$ over s[0..len). */
bool kw_avg_group_key_valid(const char *s, size_t len);

/* A follower's join request as the leader sees it. */
struct kw_avg_join_req {
	const uint8_t *schema_hash;
	size_t schema_hash_len;
	double expiration;
	const char *group_key;
	bool client_mode;
	const uint8_t *peer_id;  /* the authenticated requester */
	size_t peer_id_len;
};

struct kw_avg_candidate {    /* one DHT entry under the group key */
	uint8_t peer_id[KW_AVG_PEER_ID_MAX];
	size_t peer_id_len;
	double expiration;
};

enum kw_avg_mm_state {
	KW_AVG_MM_IDLE = 0, KW_AVG_MM_SEARCHING, KW_AVG_MM_JOINING, KW_AVG_MM_FOLLOWING,
	KW_AVG_MM_ASSEMBLED, KW_AVG_MM_FAILED,
};

struct kw_avg_mm;
/*
 * What matchmaking needs from outside. declare(): store our entry under the key (looking=1)
 * or mark it left (looking=0). join(): open rpc_join_group to `leader` with our request; its
 * replies come back through kw_avg_mm_on_leader_msg / _on_leader_error. reply(): send a
 * MessageFromLeader code to follower `peer_id` (BEGIN_ALLREDUCE replies carry the group,
 * given by kw_avg_mm_group). assembled(): the group is ready (or err < 0: give up this step).
 * Callbacks may not call back into the state machine.
 */
struct kw_avg_mm_ops {
	int (*declare)(void *u, const char *key, double expiration, bool looking);
	int (*join)(void *u, const uint8_t *leader, size_t leader_len, double expiration);
	int (*reply)(void *u, const uint8_t *peer_id, size_t len, enum kw_avg_code code,
		     const uint8_t *suggested, size_t suggested_len);
	void (*assembled)(void *u, int err);
	void *u;
};

struct kw_avg_mm_cfg {
	const char *key;              /* group key (kw_avg_group_key) */
	const uint8_t *self;          /* our PeerID bytes */
	size_t self_len;
	const uint8_t *schema_hash;
	size_t schema_hash_len;
	bool client_mode;             /* never leads, never declares */
	unsigned min_group_size;      /* hivemind default 2 */
	unsigned target_group_size;   /* 0 = None */
};

#define KW_AVG_MM_TRIED 16  /* past attempts remembered per search */
struct kw_avg_mm {
	struct kw_avg_mm_cfg cfg;
	struct kw_avg_mm_ops ops;
	enum kw_avg_mm_state state;
	double declared_exp;          /* our declared expiration (DHT time, seconds) */
	struct kw_avg_candidate leaders[KW_AVG_GROUP_MAX];  /* potential leaders, best first */
	unsigned n_leaders, next_leader;
	uint8_t leader[KW_AVG_PEER_ID_MAX];
	size_t leader_len;            /* 0: not following anyone */
	uint8_t followers[KW_AVG_GROUP_MAX][KW_AVG_PEER_ID_MAX];
	size_t follower_len[KW_AVG_GROUP_MAX];
	unsigned n_followers;
	unsigned retries;
	/* leaders asked in this search with the expiration they had then (hivemind's
	 * PotentialLeaders.past_attempts): not asked again until they declare anew. A ring: the
	 * oldest attempt is forgotten first. */
	struct kw_avg_candidate tried[KW_AVG_MM_TRIED];
	unsigned n_tried, next_tried;
};

/* Resets *mm to IDLE with cfg (borrowed strings) and ops. */
void kw_avg_mm_init(struct kw_avg_mm *mm, const struct kw_avg_mm_cfg *cfg,
		    const struct kw_avg_mm_ops *ops);
/*
 * Starts looking for a group at DHT time `now` until `expiration` (declared expiration,
 * matchmaking.py: min(max(scheduled, now + min_matchmaking_time), deadline)). Declares us
 * (not in client mode). Then feed the DHT's entries under the key with kw_avg_mm_on_averagers.
 */
int kw_avg_mm_begin(struct kw_avg_mm *mm, double expiration);
/* Entries read from the DHT: keeps those strictly before us in (expiration, peer id) order,
 * best first, and not yet asked with that expiration in this search, and asks the first for
 * membership. Returns 0 or the join() error. */
int kw_avg_mm_on_averagers(struct kw_avg_mm *mm, const struct kw_avg_candidate *c, size_t n);
/* _check_reasons_to_reject, in hivemind's order: 0 (accept: follower recorded, ACCEPTED
 * sent) or the code sent back. Assembles at once when target_group_size is reached. */
enum kw_avg_code kw_avg_mm_on_join(struct kw_avg_mm *mm, const struct kw_avg_join_req *req);
/* A reply from the leader we asked: ACCEPTED (wait), BEGIN_ALLREDUCE (assembled),
 * GROUP_DISBANDED (+suggested: ask that one), any rejection: try the next candidate. */
int kw_avg_mm_on_leader_msg(struct kw_avg_mm *mm, enum kw_avg_code code,
			    const uint8_t *suggested, size_t suggested_len);
/* The join stream failed or timed out: next candidate. */
int kw_avg_mm_on_leader_error(struct kw_avg_mm *mm, int err);
/* Our declared expiration was reached: lead with >= min_group_size peers, else disband
 * (followers get GROUP_DISBANDED) and report -KW_ETIMEDOUT so the caller retries. */
int kw_avg_mm_on_expired(struct kw_avg_mm *mm);

#endif /* KW_ML_AVG_H */
