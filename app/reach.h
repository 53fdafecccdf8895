/*
 * The node's own dial-back reachability check (app/reach.c, doc/status.md "Reachability"):
 * the Hivemind ReachabilityProtocol.rpc_check (net/hivemind/reach.c) served on the node's
 * RPC layer, and asked of connected peers that serve it, periodically. Private to app/.
 */
#ifndef KW_APP_REACH_H
#define KW_APP_REACH_H

#include <stdbool.h>
#include <stdint.h>

struct kw_node;
struct kw_app;

/* What the status page shows of the last finished check. */
struct kw_app_reach_view {
	bool have;                 /* a check finished with at least one answer */
	bool reachable;            /* petals' verdict: at least half of the answers said yes */
	uint32_t asked, answered, available;
	uint64_t at_ms;            /* loop time it finished */
};

/*
 * Registers rpc_check on app->hm (which must exist), takes identify's listen addresses as
 * what a caller advertises, and starts checking ourselves: every 2 s while nobody serves
 * rpc_check among our connections, every 35 s while the peers asked gave no answer, every
 * 10 min after a verdict. State from n's arena into app->reach. Return: 0 or
 * kw_hm_reach_create's error.
 */
int kw_app_reach_start(struct kw_node *n, struct kw_app *app);
/* Stops the timer (before the swarm goes). */
void kw_app_reach_stop(struct kw_app *app);
/* Fills v (v->have false when there is no verdict yet, or no check at all). */
void kw_app_reach_view(const struct kw_app *app, struct kw_app_reach_view *v);

#endif /* KW_APP_REACH_H */
