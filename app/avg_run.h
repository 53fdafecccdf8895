/*
 * Averaging rounds over the Hivemind DHT (app/avg_run.c): what `kwnode average` and the
 * daemon's `avg` entry (app/avg_app.c) share. Private to app/.
 *
 * One runner averages one float32 tensor (the caller's memory, averaged in place) with
 * hivemind DecentralizedAverager peers under one prefix. A round is: matchmaking declares us
 * under the DHT key "{prefix}.0b" (subkey = msgpack bin of our PeerID bytes, value True,
 * expiration = our declared expiration, as hivemind's key_manager.py does), reads the key
 * back every KW_APP_AVGRUN_POLL_MS while it searches and hands the entries to
 * kw_app_avgnet_match; once a group is assembled the all-reduce runs over app/avg_net.c. A
 * search that ends without a group searches again until the caller pauses. A groupmate or
 * leader we have no connection with is reached through the Hivemind DHT client (one
 * rpc_ping: its address book, then its resolver), as hivemind's p2pd dials a PeerID from
 * its peerstore; one that cannot be reached within 5 s is excluded (avg_net's dial).
 *
 * Pausing (kw_app_avgrun_pause) is how a node leaves averaging cleanly: no new round starts;
 * a search in progress is abandoned at once (our entry is stored again as False, expiring
 * just after the True it replaces; a leader sends GROUP_DISBANDED to its followers, a
 * follower ends its join stream); an all-reduce in flight runs to its end (it is bounded by
 * its timeouts) so groupmates are not left waiting for our part. `idle` runs when nothing is
 * left: no round, no DHT store in flight.
 *
 * Memory: the runner, the avg_net links and backlogs, the state-download slots come from the
 * node's arena at kw_app_avgrun_create; the averager's arena is caller memory of
 * kw_app_avgrun_sizes().avg_arena bytes (a start-up allocation). Nothing is allocated per
 * round or per part. Single-threaded: everything runs on the node's loop.
 */
#ifndef KW_APP_AVG_RUN_H
#define KW_APP_AVG_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/ml/avg.h>
#include <kw/ml/codec.h>

struct kw_hm;
struct kw_hm_dht;
struct kw_hm_stream_limits;
struct kw_node;
struct kw_swarm;
struct kw_app_avgrun;

#define KW_APP_AVGRUN_POLL_MS    300  /* how often a search reads the group key back */
#define KW_APP_AVGRUN_PREFIX_MAX 64

struct kw_app_avgrun_cfg {
	const char *prefix;               /* averager prefix: non-empty, no '.', < 64 bytes */
	enum kw_avg_mode mode;
	double weight;                    /* this peer's weight; AUX: 0 */
	enum kw_compression compression;
	uint64_t size;                    /* float32 values of the tensor */
	float *tensor;                    /* borrowed; averaged in place after every round */
	unsigned target_group_size;       /* assemble at this many peers (2..16) */
	unsigned min_group_size;          /* smallest group to run (2..target) */
	uint32_t match_ms;                /* one search's declared expiration: now + this */
	uint32_t part_bytes;              /* part_size_bytes; 0: CONFIG_KW_ML_AVG_PART_BYTES */
	uint32_t sender_timeout_ms, round_timeout_ms;   /* 0: Kconfig's */
	/* a NODE serves rpc_download_state between rounds (its streams then need buffers of
	 * one 64 KiB state piece); false: the handler is not registered */
	bool share_state;
	/* DHT time in seconds for expirations; NULL: the loop's clock (tests, one machine) */
	double (*now)(void *arg);
	void *now_arg;
};

/* What a runner of cfg costs, for the caller's start-up allocations. */
struct kw_app_avgrun_sizes {
	size_t msg_max;       /* one part message and its envelope */
	size_t backlog;       /* per peer and direction (avg_net backlog_bytes) */
	size_t avg_arena;     /* caller memory for the averager (kw_avg_arena_bytes + slack) */
	size_t node_arena;    /* node arena bytes create takes (streams excluded) */
	unsigned max_parts;
};
/* Return: 0; -KW_EINVAL (a bad cfg: which field in why); -KW_ERANGE (part_bytes too small
 * for the compression). */
int kw_app_avgrun_sizes(const struct kw_app_avgrun_cfg *cfg, struct kw_app_avgrun_sizes *sz,
			const char **why);
/* Raises *sl (filled by the caller: kw_hm_stream_limits_default when other handlers share
 * the streams, else zeros) to what a runner of cfg needs: stream counts for its group and
 * buffers for one part message, or one state piece when a NODE shares its state. */
void kw_app_avgrun_stream_limits(const struct kw_app_avgrun_cfg *cfg,
				 struct kw_hm_stream_limits *sl);

struct kw_app_avgrun_ops {
	/* a group formed; the round starts right after (may be NULL) */
	void (*assembled)(struct kw_app_avgrun *r, const struct kw_avg_group *g, void *u);
	/* a round ended (r->err < 0: it could not run); the caller decides what comes next:
	 * kw_app_avgrun_round for another (may be NULL) */
	void (*round_done)(struct kw_app_avgrun *r, const struct kw_avg_result *res, void *u);
	/* after kw_app_avgrun_pause: nothing is left in flight (may be NULL) */
	void (*idle)(struct kw_app_avgrun *r, void *u);
	void *u;
};

/*
 * Registers the averager's RPCs (rpc_aggregate_part, rpc_join_group, and with share_state
 * rpc_download_state, which a NODE answers with its tensor between rounds) on hm, whose streams are set
 * up (kw_hm_stream_setup with at least kw_app_avgrun_stream_limits), and makes the averager
 * in avg_mem (sz.avg_arena bytes, borrowed for the runner's life). d is the Hivemind DHT the
 * group key lives in. Start-up only. Return: 0 with *out; kw_app_avgrun_sizes' errors;
 * -KW_ENOMEM (node arena); the RPC registrations' errors.
 */
int kw_app_avgrun_create(struct kw_node *n, struct kw_swarm *sw, struct kw_hm *hm,
			 struct kw_hm_dht *d, const struct kw_app_avgrun_cfg *cfg, void *avg_mem,
			 size_t avg_mem_len, const struct kw_app_avgrun_ops *ops,
			 struct kw_app_avgrun **out);
/* Ends a round in flight (round_done with -KW_ECANCELED) and stops the timer. */
void kw_app_avgrun_destroy(struct kw_app_avgrun *r);

/*
 * Starts one round: search, then all-reduce; round_done runs when it ends. Clears a pause.
 * Return: 0; -KW_EBUSY (a round in flight); kw_app_avgnet_match's errors.
 */
int kw_app_avgrun_round(struct kw_app_avgrun *r);
/*
 * Leaves averaging cleanly (above). Return: 0 idle now (idle does not run); 1 something is
 * in flight: idle runs once it is over.
 */
int kw_app_avgrun_pause(struct kw_app_avgrun *r);
/* A round (search or all-reduce) or a DHT store is in flight. */
bool kw_app_avgrun_busy(const struct kw_app_avgrun *r);

enum kw_app_avgrun_phase { KW_AVGRUN_IDLE = 0, KW_AVGRUN_MATCHING, KW_AVGRUN_AVERAGING };

struct kw_app_avgrun_stats {
	enum kw_app_avgrun_phase phase;
	uint64_t rounds;             /* all-reduce rounds that ended with at least one peer */
	uint64_t searches;           /* matchmaking attempts started */
	uint64_t no_group;           /* attempts that ended without a group */
	uint64_t round_failed;       /* rounds that could not start or ended with an error */
	uint64_t peers_excluded;     /* groupmates the rounds excluded (silent, failed) */
	uint64_t withdrawals;        /* searches left by a pause */
	unsigned last_group;         /* size of the last group (0: none yet) */
	uint64_t last_round_ms;      /* its duration */
	uint64_t last_done_ms;       /* loop time it ended (0: never) */
};
void kw_app_avgrun_get_stats(const struct kw_app_avgrun *r, struct kw_app_avgrun_stats *st);

/* Wall time in seconds (the Hivemind DHT's default clock): cfg.now for peers on other
 * machines. */
double kw_app_avgrun_wall_now(void *arg);

/* The underlying pieces, for status and the CLI's closing log line. */
struct kw_app_avgnet *kw_app_avgrun_net(struct kw_app_avgrun *r);

/* "none", "float16", "meanstd16", "uniform8", "quantile8", "blockwise8" -> *c.
 * Return: 0 or -KW_EINVAL. */
int kw_app_avgrun_codec(const char *s, enum kw_compression *c);
/* "node", "client", "aux" -> *m. Return: 0 or -KW_EINVAL. */
int kw_app_avgrun_mode(const char *s, enum kw_avg_mode *m);

/*
 * The tensor file: raw little-endian float32 (the byte order of every board we build for).
 * kw_app_avgrun_tensor_size: its value count (the file size / 4). Return: 0; -KW_EINVAL
 * (not a whole number of values, or empty); -errno.
 * kw_app_avgrun_tensor_read: exactly n values into x; errors are printed to stderr as
 * "<prog>: <what>" when prog is not NULL, else logged. Return: 0; -KW_EINVAL (a size other
 * than n values); -errno.
 * kw_app_avgrun_tensor_write: n values, atomically: "<path>.tmp", fsync, rename, so a reader
 * sees the old or the new tensor, never half of one. Return: 0 or -errno.
 */
int kw_app_avgrun_tensor_size(const char *path, uint64_t *n);
int kw_app_avgrun_tensor_read(const char *path, float *x, uint64_t n, const char *prog);
int kw_app_avgrun_tensor_write(const char *path, const float *x, uint64_t n);

#endif /* KW_APP_AVG_RUN_H */
