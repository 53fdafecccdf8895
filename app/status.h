/*
 * The node's status for its owner (doc/status.md), private to app/: what `kwnode status`
 * prints through the control socket and what the localhost status endpoint serves
 * (GET / an HTML page, /status.json, /metrics in the Prometheus text format).
 *
 * Three parts, so each can be tested alone:
 *   - a snapshot (struct kw_status_snap): every number the renderers print, copied from the
 *     swarm, identify, the policy, the pools and the arena by kw_status_collect;
 *   - the history ring (struct kw_status_ring): one sample every CONFIG_KW_STATUS_SAMPLE_S
 *     seconds for the last hour, fixed size, carved from the arena at init;
 *   - pure renderers (snapshot + ring -> text into a caller's buffer; no clock, no I/O) and
 *     the bounded HTTP/1.1 request parser (kw_http_parse, fuzzed: tools/fuzz/fuzz_http.c).
 * The server (app/status_http.c) runs on the node's loop: bounded clients, request size cap,
 * read timeout, Connection: close, every buffer from the arena.
 */
#ifndef KW_APP_STATUS_H
#define KW_APP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>
#include <kw/policy.h>

struct kw_node;
struct kw_app;

/* ---- the history ring ---- */

/* One sample: what happened during the CONFIG_KW_STATUS_SAMPLE_S seconds before t_s. */
struct kw_status_sample {
	uint32_t t_s;          /* seconds since the node started, at the end of the period */
	uint32_t requests;     /* inbound streams handed to a protocol during the period */
	uint32_t kib;          /* KiB received + sent during the period (rounded up) */
	int32_t temp_mc;       /* SoC temperature, millidegrees C; INT32_MIN unknown */
	int8_t battery_pct;    /* -1: no battery */
	uint8_t state;         /* enum kw_policy_state at the end of the period */
};

/* Samples per hour: the chart covers the last hour. */
#define KW_STATUS_RING_LEN (3600u / CONFIG_KW_STATUS_SAMPLE_S)

struct kw_status_ring {
	uint32_t head;   /* next slot to write */
	uint32_t n;      /* samples held, at most KW_STATUS_RING_LEN */
	struct kw_status_sample s[KW_STATUS_RING_LEN];
};

void kw_status_ring_reset(struct kw_status_ring *r);
/* Appends one sample, overwriting the oldest once the ring is full. */
void kw_status_ring_push(struct kw_status_ring *r, const struct kw_status_sample *s);
/* The i-th sample, oldest first (i < r->n), or NULL. */
const struct kw_status_sample *kw_status_ring_get(const struct kw_status_ring *r, uint32_t i);

/* ---- the snapshot ---- */

#define KW_STATUS_ADDRS   8      /* listen / observed addresses shown */
#define KW_STATUS_ADDR_MAX 160   /* one address as text (with /p2p/<id>) */
#define KW_STATUS_SERVED   9      /* served entries shown: up to 8 expert uids and a span */
#define KW_STATUS_POOLS   48     /* pools listed (the rest are summed into "other") */

enum kw_reach {
	KW_REACH_NOT_LISTENING = 0,  /* no listen address at all */
	KW_REACH_LOCAL_ONLY,         /* listening on loopback only: no other host can dial us */
	KW_REACH_UNVERIFIED,         /* listening, nobody from another host has dialled us yet */
	KW_REACH_BEHIND_NAT,         /* peers see another address than we listen on, no inbound yet */
	KW_REACH_REACHABLE,          /* a peer dialled us back on request, or from another address */
	KW_REACH_NOT_REACHABLE,      /* peers that checked (rpc_check) could not dial us back */
};

/* "not-listening", "local-only", "unverified", "behind-nat", "reachable", "not-reachable". */
const char *kw_reach_name(enum kw_reach r);

struct kw_status_pool {
	const char *name;
	uint32_t used, high, count, fails;
};

struct kw_status_snap {
	char peer_id[64];                        /* "" without networking */
	char version[32];
	uint64_t uptime_ms;
	uint32_t n_listen;
	char listen[KW_STATUS_ADDRS][KW_STATUS_ADDR_MAX];
	/* addresses other peers told us (identify observedAddr), distinct, text, no /p2p/ */
	uint32_t n_observed;
	char observed[KW_STATUS_ADDRS][KW_STATUS_ADDR_MAX];
	/* this host's own IPv4 addresses (interfaces that are up), text */
	uint32_t n_local;
	char local[KW_STATUS_ADDRS][48];
	/* the reachability verdict and the fix to print when it is not "reachable" */
	enum kw_reach reach;
	char reach_why[300];
	char reach_fix[480];
	/* the dial-back check (app/reach.c): Hivemind peers asked to dial us on a new
	 * connection; dial_have false until one answered */
	bool dial_have, dial_reachable;
	uint32_t dial_asked, dial_answered, dial_available;
	uint64_t dial_at_ms;                     /* uptime when it finished */
	/* `announce`: what identify advertises instead of the listen addresses */
	uint32_t n_announce;
	char announce[KW_STATUS_ADDRS][KW_STATUS_ADDR_MAX];
	uint64_t inbound_remote;                 /* inbound upgraded conns from non-loopback */
	uint64_t last_inbound_remote_ms;         /* uptime at the last one; 0 never */
	/* connections and traffic */
	uint32_t conns_in, conns_out, conns_up;
	uint64_t conns_accepted, conns_dialed;
	uint64_t bytes_in, bytes_out;
	uint64_t requests;                       /* inbound streams handed to a protocol */
	uint64_t last_request_ms;                /* uptime of the last one seen; 0 never */
	/* errors by reason (Prometheus label reason="...") */
	uint64_t conns_failed, conns_aborted, conns_refused_limit, streams_refused,
		negotiations_failed, frame_timeouts, sensor_errors;
	uint64_t http_bad_request, http_not_found, http_bad_method, http_too_large,
		http_timeout, http_busy;
	/* served (app/serve.h kw_serve_describe): expert uids, and a Petals span as
	 * "<prefix>.<first>..<last>"; calls answered by the handlers, and of them errors */
	uint32_t n_served;
	char served[KW_STATUS_SERVED][KW_STATUS_ADDR_MAX];
	uint64_t served_calls, served_errors;
	/* averaging in the daemon (app/avg_app.h): avg_state "off" when not configured */
	char avg_state[12];
	uint64_t avg_rounds;
	uint32_t avg_last_group;                 /* 0: no group yet */
	uint64_t avg_last_round_ms;              /* the last round's duration */
	uint64_t avg_last_done_ms;               /* uptime at its end; 0 never */
	/* failures by reason: no group formed, a round that failed, peers a round excluded,
	 * searches left by a pause, result files not written, rounds skipped because the
	 * tensor file could not be read */
	uint64_t avg_no_group, avg_round_failed, avg_peers_excluded, avg_withdrawn,
		avg_write_failed, avg_read_failed;
	/* the contribution policy */
	bool have_policy;
	enum kw_policy_state state;
	char reason[KW_POLICY_REASON_MAX];
	char detail[KW_POLICY_REASON_MAX];
	uint64_t state_since_ms;                 /* uptime at the last transition */
	uint32_t transitions;
	int32_t temp_mc;                         /* INT32_MIN unknown */
	int8_t battery_pct;                      /* -1 none */
	int8_t ac;                               /* 1, 0, -1 unknown */
	/* memory */
	uint64_t arena_used, arena_size;
	uint32_t n_pools;
	struct kw_status_pool pools[KW_STATUS_POOLS];
	uint64_t http_requests;                  /* answered by the status endpoint */
};

/* ---- renderers: text into out (cap bytes, NUL-terminated). Return: length, or -KW_ENOSPC
 * when it does not fit (out then holds a truncated, unusable text). ---- */

/* The JSON document of /status.json and `kwnode status --json`. */
long kw_status_render_json(const struct kw_status_snap *s, char *out, size_t cap);
/* Prometheus text exposition format 0.0.4 (/metrics). */
long kw_status_render_metrics(const struct kw_status_snap *s, char *out, size_t cap);
/* The HTML page (/) with an inline SVG chart of the ring; no external resources. */
long kw_status_render_html(const struct kw_status_snap *s, const struct kw_status_ring *r,
			   char *out, size_t cap);
/* The plain summary `kwnode status` prints. */
long kw_status_render_text(const struct kw_status_snap *s, char *out, size_t cap);
/* The `kwnode status` exit code: 0 contributing, 3 paused or draining. */
int kw_status_exit_code(const struct kw_status_snap *s);

/*
 * Decides reachability and writes reach, reach_why and reach_fix. Pure (tests feed it
 * snapshots). A dial-back verdict (dial_have) decides when there is one; otherwise the listen
 * and observed addresses and the inbound count do (doc/status.md "Reachability").
 */
void kw_status_reach(struct kw_status_snap *s);

/* ---- the HTTP request parser ---- */

#define KW_HTTP_REQ_MAX 2048   /* request line + headers; larger is 431 */

enum kw_http_route { KW_HTTP_PAGE = 0, KW_HTTP_JSON, KW_HTTP_METRICS, KW_HTTP_NOT_FOUND };

struct kw_http_req {
	bool get;                  /* method GET (HEAD and others are 405) */
	enum kw_http_route route;  /* from the path, query string ignored */
	size_t head_len;           /* bytes up to and including the blank line */
};

/*
 * Parses the request head in buf[0..len). Accepts an HTTP/1.0 or 1.1 request line
 * "METHOD SP target SP HTTP/1.x" ending in CRLF (or LF), then header lines until an empty
 * line; header lines must contain ':' and no control bytes. Bodies are not read.
 * Return: 0 with *req set; -KW_EAGAIN when no blank line came yet (more bytes needed);
 * -KW_EBADMSG for a malformed request (400); -KW_EMSGSIZE when the head is over
 * KW_HTTP_REQ_MAX (431), -KW_ENOTSUP for a version other than HTTP/1.0 or 1.1 (505).
 */
int kw_http_parse(const char *buf, size_t len, struct kw_http_req *req);

/* ---- the runtime object (app/status_http.c) ---- */

struct kw_status;

/* Fills s from the running node (app->sw, app->id, app->policy, the pools). */
void kw_status_collect(struct kw_status *st, struct kw_status_snap *s);
/* The status object of a node (NULL before init or when the endpoint is off and nothing
 * is sampled). */
struct kw_status *kw_status_of(struct kw_node *n);

/*
 * The reply to the control socket's "status" line (app/control.c): "json <document>" (one
 * line), the summary as "text <line>" lines, then "exit N" (kw_status_exit_code).
 * Return: the length written to out, or -KW_ENOSPC.
 */
long kw_status_control_reply(struct kw_status *st, char *out, size_t cap);

int kw_app_status_init(struct kw_node *n);
void kw_app_status_shutdown(struct kw_node *n);

#endif /* KW_APP_STATUS_H */
