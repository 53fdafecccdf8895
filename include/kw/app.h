/*
 * The application (app/): the only layer that knows every subsystem. It reads the runtime
 * configuration, fills each subsystem's own config struct, runs the init table and the
 * `kwnode` commands. Nothing below app/ includes this header.
 *
 * Runtime configuration is what a board owner changes without rebuilding (house rule 7).
 * Defaults come from Kconfig (each defined once there); a file of `key = value` lines
 * overrides them and the command line overrides the file. Every key, its type and its range
 * live in one table (app/config.c); values are checked when the line is read, multiaddrs
 * included, so a bad file fails naming its line before the node touches anything on disk.
 */
#ifndef KW_APP_H
#define KW_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/node.h>
#include <kw/sys.h>
#include <kw/net/swarm.h>
#include <kw/policy.h>

#define KW_CONFIG_PATH_MAX   256
#define KW_CONFIG_ADDR_MAX   128
#define KW_CONFIG_LISTEN_MAX 8
#define KW_CONFIG_BOOTSTRAP_MAX 16   /* bootstrap peers (KW_KAD_BOOTSTRAP_MAX) */
#define KW_CONFIG_PEER_ADDR_MAX 256  /* a peer multiaddr with /p2p/ (room for /dns4/<name>) */
#define KW_CONFIG_HM_TEXT_MAX   128  /* hivemind_prefix, _public_name, _repository, an expert uid */
#define KW_CONFIG_HM_EXPERTS_MAX 16  /* hivemind_experts (KW_HM_ANNOUNCE_EXPERTS) */

struct kw_config {
	char data_dir[KW_CONFIG_PATH_MAX];  /* identity key, state files */
	struct kw_node_config node;         /* log_level, shutdown_drain_ms */
	/* listen addresses; while listen_is_default, [0] is Kconfig's and the first key replaces it */
	char listen[KW_CONFIG_LISTEN_MAX][KW_CONFIG_ADDR_MAX];
	int n_listen;
	bool listen_is_default;
	struct kw_swarm_limits swarm;       /* connection limits and timeouts */
	char sysfs_root[KW_CONFIG_PATH_MAX]; /* root of the board's sensor paths (tests: a fake tree) */
	struct kw_policy_settings policy;   /* contribution policy (doc/board.md) */
	/* DHT bootstrap peers (multiaddrs with /p2p/); while bootstrap_is_default they are
	 * Kconfig's (CONFIG_KW_APP_BOOTSTRAP) and the first `bootstrap` key replaces them */
	char bootstrap[KW_CONFIG_BOOTSTRAP_MAX][KW_CONFIG_PEER_ADDR_MAX];
	int n_bootstrap;
	bool bootstrap_is_default;
	bool dht_client;                    /* dht_mode = client: ask the DHT, do not serve it */
	uint32_t status_port;               /* localhost status endpoint (doc/status.md); 0 off */
	/* the Hivemind DHT (app/hivemind.c, doc/net-hivemind.md): off unless `hivemind = on` */
	bool hivemind;
	bool hivemind_client;               /* hivemind_client = on: ask, do not serve */
	char hivemind_bootstrap[KW_CONFIG_BOOTSTRAP_MAX][KW_CONFIG_PEER_ADDR_MAX];
	int n_hivemind_bootstrap;
	/* what the node announces on the Hivemind DHT (app/hivemind.c, doc/net-hivemind.md
	 * "Server records"): Petals blocks when hivemind_prefix is set, experts when listed */
	char hivemind_prefix[KW_CONFIG_HM_TEXT_MAX];       /* Petals dht_prefix */
	uint32_t hivemind_block_start, hivemind_block_end; /* hivemind_blocks = A:B, [A, B) */
	char hivemind_public_name[KW_CONFIG_HM_TEXT_MAX];
	double hivemind_throughput;                        /* requests/s as configured; 0 unset */
	uint32_t hivemind_num_blocks;                      /* the model's; 0: no _petals.models */
	char hivemind_repository[KW_CONFIG_HM_TEXT_MAX];
	char hivemind_experts[KW_CONFIG_HM_EXPERTS_MAX][KW_CONFIG_HM_TEXT_MAX];
	int n_hivemind_experts;
	uint32_t hivemind_update_period_s;                 /* CONFIG_KW_APP_HIVEMIND_UPDATE_PERIOD_S */
	uint32_t hivemind_expiration_s;                    /* 0: max(2 x period, 3) */
	/* serving (app/serve*.c, doc/serve.md): off while both serve_model and serve_experts
	 * are empty */
	char serve_model[KW_CONFIG_PATH_MAX];  /* checkpoint directory of the Petals span */
	uint32_t serve_first, serve_end;       /* serve_blocks = A:B: blocks A .. B - 1 */
	char serve_experts[KW_CONFIG_PATH_MAX]; /* expert uid prefix ("ffn"): a generated grid */
	uint32_t serve_grid;                   /* the grid is serve_grid x serve_grid experts */
	uint32_t serve_hidden;                 /* hidden size of the generated experts */
	/* averaging in the daemon (app/avg_app.c, doc/ml-avg.md "In the daemon"): off while
	 * averaging_prefix is empty */
	char averaging_prefix[64];
	uint32_t averaging_mode;               /* enum kw_avg_mode: node, client, aux */
	uint32_t averaging_size;               /* float32 values; 0: the tensor file's size */
	char averaging_tensor[KW_CONFIG_PATH_MAX]; /* relative: under data_dir; "": in memory */
	uint32_t averaging_period_s;           /* a round every this many seconds */
	uint32_t averaging_target_group_size, averaging_min_group_size;
	uint32_t averaging_compression;        /* enum kw_compression */
	uint32_t averaging_match_timeout_ms;   /* one search's declared expiration */
	/* `announce`: the addresses identify advertises instead of the listen addresses (what
	 * peers dial back, doc/status.md "Reachability"); none: the listen addresses */
	char announce[KW_CONFIG_LISTEN_MAX][KW_CONFIG_ADDR_MAX];
	int n_announce;
};

/* Fills `c` with the Kconfig defaults. */
void kw_config_defaults(struct kw_config *c);
/*
 * Applies `key = value` lines from buf (not NUL-terminated, at most 64 KiB). '#' starts a
 * comment. On error writes "line N: reason" into err (errlen bytes, may be NULL); bytes of
 * the file are quoted with non-printable ones escaped. `c` keeps the lines before the bad one.
 * Return: 0, -KW_ECONFIG on a syntax error, unknown key or bad value, -KW_EMSGSIZE if buf is
 * larger than 64 KiB.
 */
int kw_config_parse(struct kw_config *c, const char *buf, size_t len, char *err, size_t errlen);
/* Sets one key from text (the command line uses this). Same errors as kw_config_parse. */
int kw_config_set(struct kw_config *c, const char *key, const char *value, char *err,
		  size_t errlen);
/* Drops every announce address (the command line's --announce replaces the file's). */
void kw_config_clear_announce(struct kw_config *c);
/* Drops every listen address (the command line's --listen replaces the file's). */
void kw_config_clear_listen(struct kw_config *c);
/* Drops every bootstrap peer (the command line's --bootstrap replaces the file's). */
void kw_config_clear_bootstrap(struct kw_config *c);
/*
 * Checks a DHT bootstrap peer: a multiaddr (text) that names the peer with /p2p/. why (may be
 * NULL) receives the reason. Return: 0, -KW_EINVAL, -KW_ENOPROTO, -KW_EMSGSIZE.
 */
int kw_config_check_peer_addr(const char *v, char *why, size_t cap);
/*
 * Reads and parses a file. Return: as kw_config_parse, or -errno if it cannot be opened or
 * read (err then says "cannot open PATH: reason"). A FIFO or other non-regular file is refused
 * with -KW_EINVAL rather than blocking.
 */
int kw_config_load(struct kw_config *c, const char *path, char *err, size_t errlen);
/*
 * Parses a decimal number in lo..hi with nothing after it ("5x", "", "-1" are errors).
 * Return: 0 or -KW_EINVAL (not a number) or -KW_ERANGE (outside lo..hi).
 */
int kw_config_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/* The daemon's init table (app/initcalls.def). */
extern const struct kw_initcall kw_app_initcalls[];
extern const size_t kw_app_initcalls_count;

/*
 * The application's state for one node, hung on kw_node.app by kw_app_attach before the init
 * table runs. The node does not own it; it must outlive the node's shutdown.
 */
struct kw_identify;
struct kw_kad;
struct kw_control;
struct kw_status;
struct kw_hm;
struct kw_hm_dht;
struct kw_app_hm;
struct kw_serve;
struct kw_app_reach;
struct kw_app_avgd;

struct kw_app {
	struct kw_config cfg;
	struct kw_swarm *sw;               /* set by the `net` init entry; NULL without networking */
	struct kw_policy *policy;          /* set by the `policy` init entry (app/policy_init.c) */
	struct kw_identify *id;            /* likewise, with identify built in */
	struct kw_kad *kad;                /* likewise, with the DHT built in (CONFIG_KW_NET_KAD_SWARM) */
	struct kw_control *ctl;            /* the control socket (app/control.c), NULL if none */
	struct kw_status *status;          /* status and history (app/status_http.c), or NULL */
	struct kw_hm *hm;                  /* Hivemind RPC and DHT (app/hivemind.c), NULL when off */
	struct kw_hm_dht *hm_dht;
	struct kw_app_hm *hm_app;          /* app/hivemind.c's own state */
	struct kw_serve *serve;            /* what the node serves (app/serve_app.c), or NULL;
					      kw_serve_describe (app/serve.h) tells what */
	struct kw_app_reach *reach;        /* the dial-back reachability check (app/reach.c) */
	struct kw_app_avgd *avg;           /* averaging in the daemon (app/avg_app.h), or NULL */
};

void kw_app_attach(struct kw_node *n, struct kw_app *app);
struct kw_app *kw_app_of(struct kw_node *n);

struct kw_privkey;
/*
 * The node's identity: <data_dir>/identity.key, created with the default key type on first
 * use (app/net.c; `kwnode run` and the transient nodes of `kwnode dht` / `kwnode hivemind`).
 * make_dir: create data_dir (0700) first if it is missing. On failure *why says what, naming
 * the directory or the key file. The caller owns *key and wipes it once the swarm has its copy.
 * Return: 0, or a negative KW_E* code.
 */
int kw_app_identity(const char *data_dir, bool make_dir, struct kw_privkey *key, char *why,
		    size_t cap);

/*
 * A transient node for a one-shot command (`kwnode dht`, `kwnode hivemind`, ...): the identity
 * in cfg->data_dir (created if missing), an epoll loop, a node whose arena comes from the heap
 * (arena_bytes, start-up allocation only), a swarm with the configured limits capped at 64
 * connections each way (it lives for seconds), and identify when built in. The command adds
 * its own protocols, listens if it needs to, runs the loop and calls kw_app_transient_close.
 * Errors are printed to stderr as "<prog>: <what>" (prog e.g. "kwnode dht").
 * Return: 0, or a negative KW_E* code (already reported); *t is then closed and reusable.
 */
struct kw_app_transient {
	struct kw_sys_linux sys;
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_identify *id;   /* NULL without identify */
	bool sys_open;
};
int kw_app_transient_open(struct kw_app_transient *t, const char *prog,
			  const struct kw_config *cfg, size_t arena_bytes);
/* Destroys what kw_app_transient_open made (the caller has destroyed its own protocols). */
void kw_app_transient_close(struct kw_app_transient *t);

#endif /* KW_APP_H */
