/*
 * The records a Hivemind / Petals server publishes on the Hivemind DHT (net/hivemind/records.c,
 * doc/net-hivemind.md "Server records"): their keys, subkeys and msgpack values, written byte
 * for byte as Python writes them and read back with every bound checked.
 *
 *   Petals block     key "{dht_prefix}.{i}", subkey str base58 PeerID, value ServerInfo tuple
 *                    (bigscience-workshop/petals src/petals/data_structures.py ServerInfo.to_tuple,
 *                    src/petals/utils/dht.py declare_active_modules)
 *   Petals model     key "_petals.models", subkey str dht_prefix, value map
 *                    {num_blocks, repository} (ModelInfo.to_dict, server.py ModuleAnnouncerThread)
 *   Hivemind expert  key uid = str base58 PeerID; for each proper prefix "t.c1.", subkey int
 *                    next coordinate, value tuple (uid, peer) (learning-at-home/hivemind
 *                    hivemind/moe/server/dht_handler.py _declare_experts, expert_uid.py split_uid)
 *
 * Nothing here allocates: encoders write into the caller's buffer, decoders fill the caller's
 * struct (strings copied, bounded by the sizes below) and never keep a pointer into the input.
 * Decoders refuse what Petals' pydantic validation refuses (ServerInfo.from_tuple) and say why.
 */
#ifndef KW_NET_HIVEMIND_RECORDS_H
#define KW_NET_HIVEMIND_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>

/* petals ServerState */
enum kw_hm_server_state {
	KW_HM_STATE_OFFLINE = 0,
	KW_HM_STATE_JOINING = 1,
	KW_HM_STATE_ONLINE = 2,
};

#define KW_HM_REC_TEXT_MAX   128   /* public_name, version, torch_dtype, quant_type, repository */
#define KW_HM_REC_PEER_MAX   64    /* a base58 PeerID (52 chars for Ed25519, 46 for RSA) */
#define KW_HM_REC_ADAPTERS   8     /* adapters kept; more is -KW_ELIMIT */
#define KW_HM_REC_PINGS      16    /* next_pings entries kept (Petals sends at most 10) */
#define KW_HM_REC_UID_MAX    256   /* a module or expert uid, or an expert prefix */

/* Bits of kw_hm_server_info.has: which optional (None-able) fields are set. */
#define KW_HM_SI_START_BLOCK   0x001u
#define KW_HM_SI_END_BLOCK     0x002u
#define KW_HM_SI_PUBLIC_NAME   0x004u
#define KW_HM_SI_VERSION       0x008u
#define KW_HM_SI_NETWORK_RPS   0x010u
#define KW_HM_SI_FORWARD_RPS   0x020u
#define KW_HM_SI_INFERENCE_RPS 0x040u
#define KW_HM_SI_TORCH_DTYPE   0x080u
#define KW_HM_SI_QUANT_TYPE    0x100u
#define KW_HM_SI_USING_RELAY   0x200u
#define KW_HM_SI_CACHE_TOKENS  0x400u
#define KW_HM_SI_NEXT_PINGS    0x800u

struct kw_hm_ping_entry {
	char peer[KW_HM_REC_PEER_MAX];
	double rtt;                        /* seconds, >= 0, +inf = unreachable */
};

/* petals ServerInfo; a field whose bit in `has` is clear is None. */
struct kw_hm_server_info {
	uint8_t state;                     /* enum kw_hm_server_state */
	double throughput;                 /* requests/s, finite, >= 0 */
	uint32_t has;
	uint64_t start_block, end_block;   /* the span [start_block, end_block) */
	char public_name[KW_HM_REC_TEXT_MAX];
	char version[KW_HM_REC_TEXT_MAX];
	double network_rps, forward_rps, inference_rps;
	uint8_t n_adapters;                /* adapters: a sequence, never None (default ()) */
	char adapters[KW_HM_REC_ADAPTERS][KW_HM_REC_TEXT_MAX];
	char torch_dtype[32];
	char quant_type[32];
	bool using_relay;
	uint64_t cache_tokens_left;
	uint8_t n_pings;
	struct kw_hm_ping_entry next_pings[KW_HM_REC_PINGS];
};

/*
 * ServerInfo.to_tuple as msgpack: ext 0x40 [state, float64 throughput, {start_block,
 * end_block, public_name, version, network_rps, forward_rps, inference_rps, adapters,
 * torch_dtype, quant_type, using_relay, cache_tokens_left, next_pings}] with every key
 * written (nil when unset) in the dataclass' order; adapters as a tuple (ext 0x40).
 * Return: bytes written; -KW_EINVAL (state not 0..2, a negative, NaN or infinite rps, a
 * string not UTF-8, start_block >= end_block); -KW_ENOSPC.
 */
long kw_hm_server_info_encode(const struct kw_hm_server_info *si, uint8_t *buf, size_t cap);

/*
 * ServerInfo.from_tuple of a DHT value: an ext 0x40 (or array) of >= 2 items, state int 0..2,
 * throughput a float (an int is refused: pydantic strict), then an optional map of the
 * fields (unknown keys skipped, as pydantic ignores them; items after the map ignored, as
 * from_tuple reads source[:3]). Return: 0; -KW_EBADMSG (not well-formed msgpack, wrong type
 * or value: *why names the field); -KW_ELIMIT (a string longer than this struct holds, more
 * adapters or pings than it keeps). why may be NULL.
 */
int kw_hm_server_info_decode(const uint8_t *buf, size_t len, struct kw_hm_server_info *si,
			     const char **why);

/* petals ModelInfo: what a server writes under "_petals.models", subkey its dht_prefix. */
struct kw_hm_model_info {
	uint32_t num_blocks;               /* >= 1 */
	bool has_repository;
	char repository[KW_HM_REC_TEXT_MAX];   /* "https://huggingface.co/<repo>" */
};
#define KW_HM_MODELS_KEY "_petals.models"

/* ModelInfo.to_dict: map {"num_blocks": int, "repository": str or nil}. Return: bytes;
 * -KW_EINVAL (num_blocks 0, repository not UTF-8); -KW_ENOSPC. */
long kw_hm_model_info_encode(const struct kw_hm_model_info *mi, uint8_t *buf, size_t cap);
/* ModelInfo.from_dict: a map with num_blocks (int >= 1) and optional repository (str or nil);
 * another key is refused as the dataclass refuses it. Return: 0; -KW_EBADMSG; -KW_ELIMIT. */
int kw_hm_model_info_decode(const uint8_t *buf, size_t len, struct kw_hm_model_info *mi,
			    const char **why);

/*
 * A Petals dht_prefix is usable when it is 1..KW_HM_REC_UID_MAX - 12 bytes of UTF-8 without
 * '.' or ' ' (petals parse_uid splits module uids on '.', chains on ' '). Return: 0;
 * -KW_EINVAL.
 */
int kw_hm_prefix_check(const char *prefix);
/* The module uid "{prefix}.{block}" NUL-terminated in out. Return: its length; -KW_EINVAL
 * (bad prefix); -KW_ENOSPC. */
int kw_hm_block_uid(const char *prefix, uint32_t block, char *out, size_t cap);
/* The msgpack str of a text (a base58 PeerID subkey, a dht_prefix subkey). Return: bytes;
 * -KW_EINVAL (not UTF-8); -KW_ENOSPC. */
long kw_hm_str_subkey(const char *text, uint8_t *buf, size_t cap);

/*
 * A hivemind expert uid: "<type>.<c1>[.<c2>...]", type non-empty without '.', coordinates
 * non-negative decimal integers without leading zeros (expert_uid.py UID_PATTERN), at most
 * KW_HM_REC_UID_MAX - 1 bytes. Return: 0; -KW_EINVAL.
 */
int kw_hm_expert_uid_check(const char *uid);

/* One DHT record of an expert declaration: key text, msgpack subkey (sub_len 0: none), value. */
struct kw_hm_rec {
	char key[KW_HM_REC_UID_MAX];
	uint8_t sub[KW_HM_REC_UID_MAX + 8];
	size_t sub_len;
	uint8_t val[KW_HM_REC_UID_MAX + KW_HM_REC_PEER_MAX + 16];
	size_t val_len;
};

/*
 * The j-th record _declare_experts stores for uid (j = 0: key uid, value the peer's base58
 * str; j = 1..: the prefixes from the longest, "t.c1...ck." subkey int c(k+1), value tuple
 * (uid, peer); a 1-D uid "t.i" has one prefix "t.i." with subkey -1, FLAT_EXPERT).
 * Return: 0 with *r; -KW_ENOENT past the last record; -KW_EINVAL (bad uid or peer);
 * -KW_ENOSPC.
 */
int kw_hm_expert_record(const char *uid, const char *peer_b58, uint32_t j, struct kw_hm_rec *r);

/*
 * Walks a DictionaryDHTValue (ext 0x50: [maxsize, latest_expiration, [[subkey, bin value,
 * float expiration], ...]]), the value a DHT get returns for a dictionary key. fn gets each
 * entry's subkey as its msgpack bytes, the value bytes and the expiration; a non-zero return
 * stops the walk and is returned. Return: 0; fn's value; -KW_EBADMSG (*why says what).
 */
typedef int (*kw_hm_dict_entry_fn)(const uint8_t *sub, size_t sub_len, const uint8_t *val,
				   size_t val_len, double exp, void *arg);
int kw_hm_dict_walk(const uint8_t *buf, size_t len, kw_hm_dict_entry_fn fn, void *arg,
		    const char **why);

/* ---- the announcer: publishing our own records and keeping them fresh ---------------------- */
/*
 * What Petals' ModuleAnnouncerThread and hivemind's MoE DHTHandlerThread do, on the loop: a
 * round stores every record once (blocks "{prefix}.{i}" for i in [start_block, end_block),
 * then "_petals.models" when model.num_blocks > 0 and the prefix does not start with '_',
 * then each expert's declaration records) with expiration = DHT time + expiration_s; a
 * round starts every update_period_s. Announcing OFFLINE stores the block records once more
 * with state OFFLINE and a later expiration (so they replace the ONLINE ones at once: a DHT
 * keeps the newer expiration) and then stops, as Petals does on shutdown; "_petals.models"
 * and the experts are not stored in that round (hivemind has no OFFLINE for experts; they
 * expire). Stores go one key at a time through kw_hm_dht_store, at most
 * KW_HM_ANNOUNCE_INFLIGHT at once.
 */
#define KW_HM_ANNOUNCE_EXPERTS   16
#define KW_HM_ANNOUNCE_INFLIGHT  2

struct kw_hm_dht;
struct kw_loop;

struct kw_hm_announce_cfg {
	char prefix[KW_HM_REC_UID_MAX];    /* Petals dht_prefix; "" announces no blocks */
	uint32_t start_block, end_block;   /* the span [start, end) */
	struct kw_hm_server_info info;     /* state, start_block, end_block set by the announcer */
	struct kw_hm_model_info model;     /* num_blocks 0: no "_petals.models" record */
	char experts[KW_HM_ANNOUNCE_EXPERTS][KW_HM_REC_UID_MAX];
	uint32_t n_experts;
	uint32_t update_period_s;          /* Petals CLI default 120 */
	uint32_t expiration_s;             /* 0: max(2 * update_period_s, 3) as Petals */
};

struct kw_hm_announce_stats {
	uint64_t rounds;                   /* rounds finished */
	uint64_t stores_ok;                /* records at least one node accepted */
	uint64_t stores_failed;            /* refused by every node, no node answered, or not started */
	double last_expiration;            /* of the last round started */
};

typedef void (*kw_hm_announce_done_fn)(void *arg);

struct kw_hm_announcer {
	struct kw_hm_dht *d;
	struct kw_loop *loop;
	struct kw_hm_announce_cfg cfg;
	char peer[KW_HM_REC_PEER_MAX];     /* our base58 PeerID: the subkey of block records */
	uint8_t state;                     /* what the current round announces */
	bool running, in_round, stopped;
	uint32_t gen;                      /* round number: answers of older rounds are only counted */
	uint32_t next, total, inflight;
	double exp;
	uint8_t si[1024];                  /* this round's ServerInfo value */
	long si_len;
	struct kw_timer period, retry;
	kw_hm_announce_done_fn done;       /* runs once when the round in progress ends */
	void *done_arg;
	struct kw_hm_announce_stats stats;
	struct kw_hm_announce_slot {
		struct kw_hm_announcer *a;
		uint32_t gen;
		bool busy;
	} slot[KW_HM_ANNOUNCE_INFLIGHT];
};

/*
 * Checks cfg (prefix, span, experts, info) and starts announcing `state` at once, then every
 * update_period_s. peer_b58: our PeerID in base58. `a` is the caller's and must stay in place
 * until kw_hm_announce_stop. Return: 0; -KW_EINVAL naming nothing (the app checks its
 * config keys first and says which is wrong); -KW_ENOSPC (timers).
 */
int kw_hm_announce_start(struct kw_hm_announcer *a, struct kw_hm_dht *d, struct kw_loop *loop,
			 const char *peer_b58, const struct kw_hm_announce_cfg *cfg, uint8_t state);
/*
 * Announces `state` now (a new round; what an older round still has in flight completes
 * but no longer counts). ONLINE/JOINING resume the periodic refresh; OFFLINE announces once
 * and stops refreshing. done(arg) runs once, from the loop, when this round's last store
 * has finished (done may be NULL); a round superseded by another call runs its done at that
 * call. Return: 0; -KW_EINVAL (state, or not started).
 */
int kw_hm_announce_set_state(struct kw_hm_announcer *a, uint8_t state,
			     kw_hm_announce_done_fn done, void *arg);
/* Stores still in flight for the current round. */
bool kw_hm_announce_busy(const struct kw_hm_announcer *a);
/* Stops every timer; stores in flight finish into nothing. Call before the DHT goes. */
void kw_hm_announce_stop(struct kw_hm_announcer *a);
/* Records one round stores for `state` (blocks, models, experts' declarations). */
uint32_t kw_hm_announce_count(const struct kw_hm_announcer *a, uint8_t state);

/* "OFFLINE", "JOINING", "ONLINE" or "?". */
const char *kw_hm_state_name(unsigned state);

#endif /* KW_NET_HIVEMIND_RECORDS_H */
