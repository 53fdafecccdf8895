/*
 * The Petals client side (app/client*.c, doc/serve.md "Client and generate"): finding a
 * chain of servers for a block range from their ServerInfo records on the Hivemind DHT,
 * banning a server that failed for a while, and the request / answer bytes of the unary
 * TransformerConnectionHandler.rpc_forward. Private to app/ (and its tests).
 *
 * Facts from upstream: petals src/petals/client/routing/sequence_manager.py
 * (make_sequence: a chain of spans covering [start, end), each span one server's
 * consecutive blocks; on_request_failure bans the peer with an exponential backoff,
 * on_request_success lifts it) and src/petals/client/remote_forward_backward.py
 * (run_remote_forward: ExpertRequest{uid = "p.a p.a+1 ...", tensors = [hidden_states,
 * prompts]}) at bigscience-workshop/petals @ 22afba6.
 *
 * Nothing here allocates: the route table is a fixed-size struct the caller owns, encoders
 * write into the caller's buffer.
 */
#ifndef KW_APP_CLIENT_H
#define KW_APP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/app.h>
#include <kw/net/hivemind_records.h>

#define KW_CLIENT_SERVERS_MAX 64   /* servers of one model a route table holds */
#define KW_CLIENT_BANS_MAX    64   /* servers banned at once */
#define KW_CLIENT_SPANS_MAX   64   /* hops of one chain */

/* One server as its newest ServerInfo says. */
struct kw_client_server {
	char peer[KW_HM_REC_PEER_MAX];     /* base58 PeerID (the record's subkey) */
	uint8_t state;                     /* enum kw_hm_server_state */
	uint32_t start, end;               /* the span [start, end) it serves */
	double throughput;
	double exp;                        /* expiration of the record that spoke for it */
};

struct kw_client_ban {
	char peer[KW_HM_REC_PEER_MAX];
	double until;                      /* banned while now < until */
	uint32_t fails;                    /* failures in a row (the backoff's exponent) */
};

struct kw_client_route {
	struct kw_client_server srv[KW_CLIENT_SERVERS_MAX];
	uint32_t n_srv;
	uint32_t dropped;                  /* servers not kept (table full) */
	struct kw_client_ban ban[KW_CLIENT_BANS_MAX];
	uint32_t n_ban;
	double ban_base_s, ban_max_s;      /* first ban, cap of the doubling */
};

/* One hop of a chain: server srv (index into the table) runs blocks [start, end). */
struct kw_client_span {
	uint32_t srv;
	uint32_t start, end;
};

/* An empty table (no servers, no bans); bans last base_s, doubling up to max_s. */
void kw_client_route_init(struct kw_client_route *r, double base_s, double max_s);
/* Forgets the servers (a fresh read of the records follows); bans stay. */
void kw_client_route_clear(struct kw_client_route *r);

/*
 * Takes one ServerInfo found under block `block` (the record's subkey peer, its expiration
 * exp). The newest record of a peer speaks for it (as `kwnode hivemind servers` reads them);
 * a record without start_block/end_block spans the block it was found under. Return: 0;
 * -KW_ENOSPC (table full: counted in dropped); -KW_EINVAL (empty peer).
 */
int kw_client_route_add(struct kw_client_route *r, const char *peer,
			const struct kw_hm_server_info *si, uint32_t block, double exp);

/*
 * A chain of ONLINE, not banned servers covering [start, end): from each position the server
 * reaching furthest (fewest hops), then the higher throughput, then the smaller PeerID (so
 * every client picks the same). Return: 0 with out[0..*n); -KW_ENOENT when no server covers
 * block *gap (then *n spans before it are filled); -KW_ENOSPC (more than cap hops);
 * -KW_EINVAL (start >= end).
 */
int kw_client_route_plan(const struct kw_client_route *r, uint32_t start, uint32_t end,
			 double now, struct kw_client_span *out, uint32_t cap, uint32_t *n,
			 uint32_t *gap);

/* A request to peer failed at time now: banned for base * 2^(fails - 1), at most max. */
void kw_client_ban(struct kw_client_route *r, const char *peer, double now);
/* A request to peer succeeded: its failure count starts again (petals on_request_success). */
void kw_client_unban(struct kw_client_route *r, const char *peer);
bool kw_client_banned(const struct kw_client_route *r, const char *peer, double now);

/*
 * The dht_prefix of a checkpoint directory: its last path component with '.' and ' '
 * replaced by '-' (Petals derives dht_prefix from the repository name the same way and
 * splits uids on '.'), NUL-terminated in out (cut to cap). Servers (app/serve_app.c) and
 * `kwnode generate` name a model so.
 */
void kw_client_prefix_of(const char *dir, char *out, size_t cap);

/*
 * The module uids of blocks [start, end) of model prefix, space-separated ("p.3 p.4"), as one
 * Petals chain request names them. Return: length; -KW_ENOSPC; -KW_EINVAL (bad prefix).
 */
int kw_client_chain_uid(const char *prefix, uint32_t start, uint32_t end, char *out,
			size_t cap);

/*
 * ExpertRequest{uid, tensors = [float32 NONE tensor of shape[0..ndim) holding v[0..n)]
 * (+ an empty DUMMY tensor when petals: the deep-prompts slot Petals clients always fill)}.
 * Return: bytes written; -KW_EMSGSIZE (out too small); -KW_EINVAL.
 */
long kw_client_req_encode(const char *uid, const uint32_t *shape, uint32_t ndim,
			  const float *v, size_t n, bool petals, uint8_t *out, size_t cap);

/*
 * One step of a Petals inference session (petals client/inference_session.py
 * _ServerInferenceSession.step): ExpertRequest{uid, tensors = [hidden states (float32 NONE,
 * shape[0..3)), DUMMY prompts, DUMMY int64 hypo_ids], metadata = msgpack {"max_length":
 * max_length (only when > 0: the session's first step), "step_id": step_id}}.
 * Return: bytes written; -KW_EMSGSIZE; -KW_EINVAL.
 */
long kw_client_step_encode(const char *uid, const uint32_t *shape, const float *v, size_t n,
			   uint32_t max_length, const char *step_id, uint8_t *out, size_t cap);

/*
 * A prompt file of `kwnode generate`: token IDs in decimal, one per line; blank lines and
 * lines starting with '#' are skipped; each ID must be below vocab. buf need not be
 * NUL-terminated. Return: 0 with out[0..*n), *n >= 1; -KW_EINVAL (err says which line and
 * why: not a number, out of the vocabulary, or no token at all); -KW_ENOSPC (more than cap).
 */
int kw_client_tokens_parse(const char *buf, size_t len, uint32_t vocab, uint32_t *out,
			   size_t cap, size_t *n, char *err, size_t errcap);

/*
 * A server's answer to a step (rpc_forward or one rpc_inference message): an ExpertResponse
 * whose first tensor holds rows x hid hidden states of shape (1, rows, hid) (Petals) or
 * (rows, hid) (a hivemind expert), any dtype and
 * codec the codec reads, decoded into dst[rows x hid]. Return: 0; -KW_EBADMSG (not an
 * ExpertResponse, another shape, or a buffer that does not match it); -KW_ERANGE (a
 * non-finite value: dst must not be used).
 */
struct kw_codec;
int kw_client_answer_decode(const struct kw_codec *codec, const uint8_t *msg, size_t len,
			    size_t rows, size_t hid, float *dst);

/*
 * A connection to peer (base58 PeerID): one already open (return 1, *c set), else a dial to
 * the address among addrs[0..n) whose /p2p/ names it (return 0: cb runs from the loop).
 * The ServerInfo records and expert declarations carry PeerIDs only. Return: 1; 0;
 * -KW_ENOENT (no connection and no address); -KW_EINVAL (PeerID); kw_swarm_dial's errors.
 */
struct kw_swarm;
struct kw_conn;
int kw_client_connect(struct kw_swarm *sw, const char *peer, const char *const *addrs, int n,
		      void (*cb)(struct kw_swarm *sw, struct kw_conn *c, int err, void *user),
		      void *user, struct kw_conn **c);

/* ---- finding a server's addresses from its PeerID ------------------------------------------
 * The Hivemind DHT names servers by PeerID only (hivemind dht.proto FindResult carries
 * nearest_peer_ids, no addresses), as do ServerInfo records and expert declarations. p2pd
 * resolves a PeerID through go-libp2p-kad-dht FIND_NODE on /ipfs/kad/1.0.0 (its peer routing);
 * every Petals server runs that DHT in server mode. kw_client_resolve does the same on the
 * client's kad (client mode): a connection already open, else an address given by the user,
 * else a kad find-peer, then a dial of the addresses it returned, one after the other.
 */
#define KW_CLIENT_RESOLVE_ADDRS 4     /* addresses of one peer tried */
#define KW_CLIENT_ADDR_MAX      256   /* one multiaddr as text, with /p2p/ */

enum kw_client_res_state {
	KW_CLIENT_RES_IDLE,    /* nothing in flight */
	KW_CLIENT_RES_LOOKUP,  /* kad find-peer in flight */
	KW_CLIENT_RES_DIAL,    /* dialing addr[next - 1] */
};

struct kw_kad;
struct kw_kad_peer;
typedef void (*kw_client_dial_fn)(struct kw_swarm *sw, struct kw_conn *c, int err, void *user);

/*
 * One resolution at a time (the clients call one server at a time). Owned by the caller,
 * which must keep it alive until the kad and the swarm are destroyed (their callbacks find
 * it). resolved/failed count finished resolutions (tests, the summary line).
 */
struct kw_client_resolver {
	struct kw_swarm *sw;               /* borrowed */
	struct kw_kad *kad;                /* borrowed; NULL: no lookup, only conns and addrs */
	enum kw_client_res_state state;
	char peer[KW_HM_REC_PEER_MAX];
	char addr[KW_CLIENT_RESOLVE_ADDRS][KW_CLIENT_ADDR_MAX];
	uint32_t n_addr, next;
	char why[192];                     /* why the last resolution failed ("" if none did) */
	kw_client_dial_fn cb;
	void *user;
	uint32_t resolved, failed;
};

void kw_client_resolver_init(struct kw_client_resolver *r, struct kw_swarm *sw,
			     struct kw_kad *kad);

/*
 * The addresses a kad lookup returned for peer (peers[0..n) of a kw_kad_result; those of
 * other peers are skipped), as text with /p2p/<peer> appended, at most cap of them, the
 * ones that do not parse or do not fit left out. Return: how many were written.
 */
uint32_t kw_client_kad_addrs(const struct kw_kad_peer *peers, size_t n, const char *peer,
			     char (*out)[KW_CLIENT_ADDR_MAX], uint32_t cap);

/*
 * kw_client_connect, and when it finds no connection and no address, a kad find-peer and a
 * dial of what it returns. Return: 1 (*c open); 0 (cb runs from the loop, once, with the
 * connection or an error; on an error r->why says what went wrong: not found, no
 * address, every dial failed); -KW_ENOENT (no connection, no address, no kad: why set);
 * -KW_EBUSY (a resolution is in flight); kw_client_connect's other errors.
 */
int kw_client_resolve(struct kw_client_resolver *r, const char *peer, const char *const *addrs,
		      int n, kw_client_dial_fn cb, void *user, struct kw_conn **c);

/*
 * The transient node's kad (/ipfs/kad/1.0.0) as p2pd runs it: server mode (`kwnode serve`)
 * or client mode (generate, moe), bootstrapped from boot[0..n) (multiaddrs with /p2p/, the
 * Hivemind bootstrap peers: p2pd gets the same list). Made before the first connection so
 * identify admits the peers met. *kad is NULL when the build has no kad
 * (CONFIG_KW_NET_KAD_SWARM). Errors are printed as "<prog>: ...". Return: 0; a negative code.
 */
struct kw_app_transient;
int kw_app_transient_kad(struct kw_app_transient *t, const char *prog, bool client_mode,
			 const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n, struct kw_kad **kad);
void kw_app_transient_kad_close(struct kw_kad *kad);

/* ---- the MoE client (app/client_moe.c, `kwnode moe`) ----------------------------------- */
#define KW_CLIENT_MOE_DIMS     4     /* grid dimensions of an expert uid */
#define KW_CLIENT_MOE_GRID_MAX 4096  /* a coordinate is below this */

/* One alive expert as its declaration names it. */
struct kw_client_expert {
	char uid[KW_HM_REC_UID_MAX];
	char peer[KW_HM_REC_PEER_MAX];
	uint32_t coord[KW_CLIENT_MOE_DIMS];
	uint32_t ndim;
};

/*
 * One entry of a prefix record "t.c1." (hivemind dht_handler.py _declare_experts: subkey int
 * next coordinate, -1 for a flat expert; value the tuple (uid, peer)). Return: 0 with
 * *coord, uid and peer (NUL-terminated); -KW_EBADMSG (another shape, a uid that is not an
 * expert uid, strings longer than the room given).
 */
int kw_client_expert_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val,
			   size_t val_len, int64_t *coord, char *uid, size_t ucap, char *peer,
			   size_t pcap);
/* The coordinates of uid under prefix ("ffn.3.7" under "ffn": 3, 7). Return: 0; -KW_EINVAL
 * (another prefix, more than cap coordinates, one >= KW_CLIENT_MOE_GRID_MAX). */
int kw_client_expert_coords(const char *uid, const char *prefix, uint32_t *coord,
			    uint32_t cap, uint32_t *n);
/* Gating scores of one row x[hid]: sum(grid) values, dimension after dimension, from a
 * generated projection (seed 0: the default). */
void kw_client_moe_gate(uint64_t seed, const uint32_t *grid, uint32_t ndim, const float *x,
			size_t hid, float *scores);
/* The k experts of ex[0..n_ex) with the highest logits (sum of their coordinates' scores),
 * best first, into best[] (indices) and logit[]. Return: 0; -KW_ENOENT (none of ndim
 * coordinates); -KW_EINVAL (a coordinate outside grid). */
int kw_client_moe_topk(const float *scores, const uint32_t *grid, uint32_t ndim,
		       const struct kw_client_expert *ex, size_t n_ex, uint32_t k, uint32_t *best,
		       float *logit, uint32_t *n_best);
/* Softmax of logit[0..n) over the experts that answered (others weigh 0), as hivemind masks
 * failed experts. Return: 0; -KW_ENOENT (none answered). */
int kw_client_moe_weights(const float *logit, const bool *answered, uint32_t n, float *w);

/* ---- hivemind's grid beam search (app/client_beam.c) ----------------------------------- */
#define KW_CLIENT_BEAM_MAX  8    /* beam_size (RemoteMixtureOfExperts k_best) at most */
#define KW_CLIENT_BEAM_SUCC 32   /* successors of one prefix kept (the best-scoring ones) */

/* One entry of a prefix record: next coordinate -> (uid, peer). */
struct kw_client_beam_entry {
	int64_t coord;
	float score;                       /* scores[dim][coord] of the record's next dimension */
	char uid[KW_HM_REC_UID_MAX];
	char peer[KW_HM_REC_PEER_MAX];
};

/* A prefix of the beam ("ffn.3.") with its score and the successors its record named. */
struct kw_client_beam_pre {
	char key[KW_HM_REC_UID_MAX];
	float score;
	uint32_t n;
	struct kw_client_beam_entry e[KW_CLIENT_BEAM_SUCC];
};

/*
 * MoEBeamSearcher.find_best_experts (hivemind moe/client/beam_search.py @ 4bd43b7) as a
 * state machine the caller drives: kw_client_beam_want names the prefix records to read,
 * the caller feeds each record's entries, kw_client_beam_step advances. The initial beam is
 * the first-dimension prefixes "P.i." in descending score order (ties: the higher index
 * first, as hivemind pops from a list sorted ascending), the first beam_size whose record
 * names at least one successor; each next dimension keeps the beam_size best (prefix score
 * + coordinate score, ties: the larger prefix string, as heapq.nlargest on tuples) whose
 * record is not empty; an empty beam ends the search early. Every full uid met on the way
 * counts as an expert scored by the sum of its coordinates' scores; the result is the
 * beam_size best (ties: the larger uid, then peer), a uid counted once (its first peer).
 * The struct is large (about 170 KB): callers keep it static or in their arena.
 */
struct kw_client_beam {
	char prefix[KW_HM_REC_UID_MAX];
	const float *scores;               /* sum(grid) gating scores, dimension after dimension */
	uint32_t grid[KW_CLIENT_MOE_DIMS], ndim, beam;
	uint32_t dim;                      /* the next dimension a batch extends (1..ndim-2) */
	bool initial, done;
	uint16_t order[KW_CLIENT_MOE_GRID_MAX]; /* first-dimension indices, best first */
	uint32_t n_order, at_order;
	struct kw_client_beam_pre cur[KW_CLIENT_BEAM_MAX], batch[KW_CLIENT_BEAM_MAX];
	uint32_t n_cur, n_batch;
	struct kw_client_expert best[KW_CLIENT_BEAM_MAX];
	float best_score[KW_CLIENT_BEAM_MAX];
	uint32_t n_best;
	uint32_t fetched, dropped;         /* records asked for; successors not kept (cap) */
};

/* Return: 0; -KW_EINVAL (beam 0 or > KW_CLIENT_BEAM_MAX, ndim 0 or > KW_CLIENT_MOE_DIMS, a
 * grid size 0 or > KW_CLIENT_MOE_GRID_MAX, a prefix with '.'). scores must outlive b. */
int kw_client_beam_init(struct kw_client_beam *b, const char *prefix, const uint32_t *grid,
			uint32_t ndim, const float *scores, uint32_t beam);
/* The prefix records to read now, keys[0..n) (pointers into b); 0: the search is done. */
uint32_t kw_client_beam_want(struct kw_client_beam *b, const char **keys, uint32_t cap);
/* One entry of the record of keys[i]: ignored when not (coordinate, valid expert uid). */
void kw_client_beam_feed(struct kw_client_beam *b, uint32_t i, int64_t coord, const char *uid,
			 const char *peer);
/* Every record of the batch was fed (a missing record: no entries). */
void kw_client_beam_step(struct kw_client_beam *b);

/*
 * A tensor text file as `kwnode call` reads it (app/cmd_call.c): a line `shape D0 D1 ...`,
 * then the values. *v is heap memory the caller frees (a one-shot command's start-up).
 * Errors are printed as "<prog>: <path>: <why>". Return: 0; -1.
 */
int kw_app_tensor_read(const char *path, const char *prog, uint32_t *shape, uint32_t *ndim,
		       float **v, size_t *n);

#endif /* KW_APP_CLIENT_H */
