/*
 * The Hivemind DHT as the node runs it (app/hivemind.c), shared by the `hivemind` init entry
 * and the transient node of `kwnode hivemind` (app/cmd_hivemind.c). Private to app/.
 */
#ifndef KW_APP_HIVEMIND_H
#define KW_APP_HIVEMIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/app.h>

struct kw_identify;
struct kw_kad;
struct kw_app_hm;

/*
 * Creates the RPC layer and the DHT on sw (state from n's arena), feeds the DHT's address
 * book from identify (id may be NULL), resolves unknown PeerIDs through kad (may be NULL),
 * and bootstraps from boot[0..n_boot) (the strings must outlive the node), retrying every
 * 5 s while the routing table is empty. Return: 0 with *hm, *d, *out; kw_hm_create's and
 * kw_hm_dht_create's errors.
 */
int kw_app_hm_start(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
		    struct kw_kad *kad, bool client, const char (*boot)[KW_CONFIG_PEER_ADDR_MAX],
		    int n_boot, struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out);
/*
 * The same with the DHT's configuration given (the simulation, tests/sim/hm_full.c, passes
 * its virtual clock and pool sizes): *base is copied; its resolve hook is replaced by kad's
 * when kad is not NULL. kw_app_hm_start is this with kw_hm_dht_config_default and `client`.
 */
struct kw_hm_dht_config;
int kw_app_hm_start_cfg(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
			struct kw_kad *kad, const struct kw_hm_dht_config *base,
			const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n_boot,
			struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out);
/* kw_app_hm_start with the DHT's connect_timeout_ms given (`kwnode moe`: 1 s; 0: the
 * default, kw_hm_dht_config_default's). */
int kw_app_hm_start_connect(struct kw_node *n, struct kw_swarm *sw, struct kw_identify *id,
			    struct kw_kad *kad, bool client, uint32_t connect_timeout_ms,
			    const char (*boot)[KW_CONFIG_PEER_ADDR_MAX], int n_boot,
			    struct kw_hm **hm, struct kw_hm_dht **d, struct kw_app_hm **out);
/*
 * Starts reaching pid as the Hivemind DHT client reaches anyone (its connection, the address
 * book, a kad lookup): one rpc_ping to /p2p/<pid>, whose answer does not matter, only the
 * connection it leaves. dht is the struct kw_hm_dht (void *: a kw_serve_connect_fn).
 * Return: 0 (started); kw_hm_dht_ping's errors (-KW_ELIMIT: no operation slot).
 */
struct kw_peer_id;
int kw_app_hm_dial(void *dht, const struct kw_peer_id *pid);
/* The same rpc_ping to /p2p/<pid> with the caller's callback (averaging waits for it: the
 * connection it leaves is the groupmate's). Return: as kw_app_hm_dial. */
struct kw_hm_dht;
struct kw_hm_dht_pong;
int kw_app_hm_ping_peer(struct kw_hm_dht *d, const struct kw_peer_id *pid,
			void (*cb)(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p,
				   void *user), void *user);
/* Stops the bootstrap retries (before the swarm goes). NULL is fine. */
void kw_app_hm_stop(struct kw_app_hm *st);
/*
 * A stop with server records announced (SIGTERM, SIGINT, the loop ending on another path):
 * stores them once more as OFFLINE (newer, so peers see it at once, as Petals does on
 * shutdown) and calls then(n) when that round is over or n->cfg.shutdown_drain_ms has
 * passed, whichever is first. It must run before kw_node_request_stop, whose swarm drain
 * closes every connection. Return: 0 (then will run); -KW_ENOENT when nothing is announced
 * or this stop's OFFLINE round already went out (the caller stops at once).
 */
int kw_app_hm_before_stop(struct kw_node *n, void (*then)(struct kw_node *n));
/*
 * Starts announcing *ac (copied) on st's DHT under sw's PeerID: ONLINE, or OFFLINE while
 * policy (may be NULL) pauses the node, whose drain client it becomes. The `hm_announce`
 * entry calls it with the hivemind_* keys, the `serve` entry and `kwnode serve` with what
 * they serve (kw_app_serve_announce_cfg). Return: 0; -KW_EINVAL (already announcing, or
 * cfg refused); kw_hm_announce_start's errors (logged).
 */
struct kw_hm_announce_cfg;
struct kw_policy;
int kw_app_hm_announce_begin(struct kw_node *n, struct kw_app_hm *st, struct kw_swarm *sw,
			     struct kw_policy *policy, const struct kw_hm_announce_cfg *ac);
/* The fields every announcement takes from the hivemind_* keys: public_name, the model's
 * num_blocks and repository, update period and expiration. */
void kw_app_hm_announce_common(const struct kw_config *c, struct kw_hm_announce_cfg *ac);
/* Announces OFFLINE once (done(arg) when stored, may be NULL). Return: 0; -KW_ENOENT when
 * nothing is announced. */
int kw_app_hm_announce_offline(struct kw_app_hm *st, void (*done)(void *arg), void *arg);
/* Stops announcing (timers cancelled; stores in flight finish into nothing). NULL is fine. */
void kw_app_hm_announce_end(struct kw_app_hm *st);
/*
 * What we announce changed (kw_app_hm_announce_changed: something the records depend on;
 * kw_app_hm_announce_span: the served blocks are now [start, end)): a new round goes out
 * within half a second, at most one per 2 s (changes meanwhile ride on it), unless the node
 * announces OFFLINE (paused or stopping: the next ONLINE round carries the change). The
 * announcer also calls it when the swarm's listen addresses or protocols change.
 * kw_app_hm_announce_span return: 0; -KW_ENOENT (no block records announced); -KW_EINVAL.
 */
struct kw_app_hm_push_stats {
	uint64_t changes, pushes, skipped;
};
void kw_app_hm_announce_changed(struct kw_node *n);
int kw_app_hm_announce_span(struct kw_node *n, uint32_t start, uint32_t end);
/* The counters above (tests, status); NULL without the Hivemind DHT. */
const struct kw_app_hm_push_stats *kw_app_hm_push_stats(struct kw_node *n);
/* The `hm_announce` init entry and its shutdown (app/initcalls.def). */
int kw_app_hm_announce_init(struct kw_node *n);
void kw_app_hm_announce_shutdown(struct kw_node *n);

/* Adds the listen addresses identify learnt for c's remote to the DHT's address book. */
void kw_app_hm_learn(struct kw_hm_dht *d, struct kw_identify *id, struct kw_conn *c);

/*
 * The text form of values (app/hm_text.c): JSON plus <hex> for bin and bare words for str;
 * the "$" objects of the JSON form below read back as what they stand for.
 * kw_hm_text_to_mp: text to one msgpack value in out[0..cap). Return: bytes; -KW_EINVAL
 * with err saying what is wrong; -KW_ENOSPC.
 * kw_hm_mp_to_text: one msgpack value to text, NUL-terminated in out[0..cap). Return: the
 * text's length; -KW_EBADMSG (not exactly one well-formed value); -KW_ELIMIT (too deep);
 * -KW_ENOSPC (out too small: out then holds the beginning).
 */
long kw_hm_text_to_mp(const char *text, uint8_t *out, size_t cap, char *err, size_t errcap);
int kw_hm_mp_to_text(const uint8_t *mp, size_t len, char *out, size_t cap);
/*
 * The JSON form of values (app/hm_text.c, doc/net-hivemind.md "JSON output"): strict JSON,
 * with bytes, ext types, non-finite floats and maps JSON cannot key written as objects
 * with one "$" member ({"$bin": "hex"}, {"$ext": N, "value": V} or {"$ext": N, "hex": ".."},
 * {"$float": "NaN"}, {"$map": [[K, V], ..]}).
 * kw_hm_mp_json_emit: one msgpack value to emit(arg, piece, n) (emit NULL: only counted).
 * The value is checked whole before the first piece goes out. Return: the JSON's length;
 * -KW_EBADMSG (not exactly one well-formed value); -KW_ELIMIT (nested deeper than
 * KW_MP_MAX_DEPTH, ext payloads included; a reader bound).
 * kw_hm_mp_to_json: the same NUL-terminated in out[0..cap). Return: as above; -KW_ENOSPC
 * (out then holds ""). kw_hm_json_str: the UTF-8 text s as a JSON string, likewise.
 */
long kw_hm_mp_json_emit(const uint8_t *mp, size_t len,
			void (*emit)(void *arg, const char *s, size_t n), void *arg);
int kw_hm_mp_to_json(const uint8_t *mp, size_t len, char *out, size_t cap);
int kw_hm_json_str(const char *s, char *out, size_t cap);

#endif /* KW_APP_HIVEMIND_H */
