/*
 * Averaging inside `kwnode run` (app/avg_app.c, doc/ml-avg.md "In the daemon"): the `avg`
 * entry of the init table. Private to app/.
 *
 * With `averaging_prefix` set (and `hivemind = on`) the node averages one float32 tensor
 * with hivemind peers every `averaging_period` seconds (app/avg_run.h does the rounds). It
 * is the contribution policy's drain client "averaging" and a node drain (SIGTERM): either
 * way it starts no new round, abandons a search (withdrawn from the DHT, group left) and lets
 * an all-reduce in flight finish before it reports drained. With `averaging_tensor` the
 * tensor is read from that file at start-up and before every round (its owner may have
 * written a new one), and written back after every round atomically (tmp + fsync + rename).
 *
 * Memory: the tensor and the averager's arena in one start-up allocation, the rest from the
 * node's arena; nothing when averaging_prefix is empty, nothing per round or part.
 */
#ifndef KW_APP_AVG_APP_H
#define KW_APP_AVG_APP_H

#include <stdbool.h>
#include <stdint.h>

struct kw_app;
struct kw_node;
struct kw_app_avgd;
struct kw_app_avgrun;

/*
 * Starts averaging as app->cfg says, on app->sw, app->hm and app->hm_dht, as a drain client
 * of app->policy (may be NULL: always contributing) and of the node. now gives DHT time in
 * seconds, the clock app->hm_dht runs on (NULL: wall time, the DHT's default; a simulation
 * passes its own). Returns 0 with *out NULL when averaging_prefix is empty. Return: 0;
 * -KW_EINVAL (no Hivemind DHT, a bad tensor file: logged naming it); -KW_ENOMEM;
 * kw_app_avgrun_create's errors.
 */
int kw_app_avgd_start(struct kw_node *n, struct kw_app *app, double (*now)(void *arg),
		      void *now_arg, struct kw_app_avgd **out);
/* Stops the timers and the runner (a round in flight is cancelled). NULL is fine. */
void kw_app_avgd_stop(struct kw_app_avgd *a);

/* What status pages show. state: "off", "idle", "matching", "averaging", "paused". */
struct kw_app_avgd_view {
	const char *state;
	uint64_t rounds, searches;
	uint64_t no_group, round_failed, peers_excluded, withdrawals, write_failed;
	unsigned last_group;           /* 0: no group yet */
	uint64_t last_round_ms;        /* the last round's duration */
	uint64_t last_done_ms;         /* loop time it ended; 0 never */
	uint64_t drains, resumes;
};
/* a NULL: state "off", every count 0. */
void kw_app_avgd_view(const struct kw_app_avgd *a, struct kw_app_avgd_view *v);
/* The runner (tests); NULL for a NULL a. */
struct kw_app_avgrun *kw_app_avgd_runner(struct kw_app_avgd *a);

/*
 * A stop signal's first step (app/main.c), before kw_app_hm_before_stop and
 * kw_node_request_stop: leaves averaging as a drain does, then calls then(n) once nothing is
 * in flight or n->cfg.shutdown_drain_ms has passed. Return: 0 (then will run); -KW_ENOENT
 * when averaging is off, already stopping or idle (the caller goes on at once).
 */
int kw_app_avgd_before_stop(struct kw_node *n, void (*then)(struct kw_node *n));

/* The `avg` init entry and its shutdown (app/initcalls.def). */
int kw_app_avgd_init(struct kw_node *n);
void kw_app_avgd_shutdown(struct kw_node *n);

#endif /* KW_APP_AVG_APP_H */
