/*
 * The node's dial-back reachability check (app/reach.h): glue between identify (what each
 * peer advertises, which peers serve rpc_check) and net/hivemind/reach.c, plus the timer
 * that re-runs our own check and keeps the last verdict for the status page.
 */
#include <string.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/net/hivemind_reach.h>
#include <kw/net/identify.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>

#include "reach.h"

#define NOBODY_MS   2000u      /* nobody to ask yet: look again soon */
#define NO_ANSWER_MS 35000u    /* asked, no answer: past the peers' per-caller interval */
#define VERDICT_MS  600000u    /* a verdict: re-check now and then (a router can change) */

struct kw_app_reach {
	struct kw_app *app;
	struct kw_node *n;
	struct kw_hm_reach *r;
	struct kw_timer timer;
	struct kw_app_reach_view last;
};

/* A caller's advertised listen addresses: what identify learnt from it. */
static int addrs_from_identify(void *arg, struct kw_conn *c, struct kw_multiaddr *out, int max)
{
	struct kw_app_reach *st = arg;
	const struct kw_identify_remote *ir = kw_identify_remote(st->app->id, c);
	int n = 0;

	if (!ir || !ir->have)
		return -KW_EAGAIN;
	for (uint8_t i = 0; i < ir->n_addrs && n < max; i++)
		if (kw_maddr_from_bytes(ir->addrs[i], ir->addr_len[i], &out[n], NULL, 0) == 0)
			n++;
	return n;
}

/* Ask only peers that said (identify) they serve rpc_check. */
static bool serves_check(void *arg, struct kw_conn *c)
{
	struct kw_app_reach *st = arg;

	return kw_identify_remote_has(st->app->id, c, KW_HM_REACH_NAME);
}

static void on_verdict(const struct kw_hm_reach_result *res, void *user)
{
	struct kw_app_reach *st = user;
	uint32_t next = NOBODY_MS;

	if (res->asked && res->answered) {
		st->last.have = true;
		st->last.reachable = res->verdict == KW_HM_REACH_REACHABLE;
		st->last.asked = res->asked;
		st->last.answered = res->answered;
		st->last.available = res->available;
		st->last.at_ms = kw_loop_now(&st->n->loop);
		KW_LOG_INF(hivemind, "reachability: %u of %u peers dialled us back directly: %s",
			   res->available, res->answered,
			   st->last.reachable ? "reachable" : "NOT reachable from outside");
		next = VERDICT_MS;
	} else if (res->asked) {
		next = NO_ANSWER_MS;
	}
	kw_timer_start(&st->n->loop, &st->timer, next);
}

static void on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_reach *st = t->arg;

	if (kw_hm_reach_check(st->r, on_verdict, st) < 0)
		kw_timer_start(l, t, NOBODY_MS);  /* the previous check still runs */
}

int kw_app_reach_start(struct kw_node *n, struct kw_app *app)
{
	struct kw_app_reach *st = kw_arena_alloc(&n->arena, sizeof(*st), 16);
	struct kw_hm_reach_config rc;
	int err;

	if (!st)
		return -KW_ENOMEM;
	memset(st, 0, sizeof(*st));
	st->app = app;
	st->n = n;
	kw_hm_reach_config_default(&rc);
	if (app->id) {
		rc.addrs = addrs_from_identify;
		rc.addrs_arg = st;
		rc.candidate = serves_check;
		rc.candidate_arg = st;
	}
	err = kw_hm_reach_create(app->sw, app->hm, &rc, &st->r);
	if (err < 0)
		return err;
	kw_timer_init(&st->timer, on_timer, st);
	if (app->id)  /* without identify nobody can be picked: serve only */
		kw_timer_start(&n->loop, &st->timer, NOBODY_MS);
	app->reach = st;
	return 0;
}

void kw_app_reach_stop(struct kw_app *app)
{
	if (app && app->reach) {
		kw_timer_cancel(&app->reach->n->loop, &app->reach->timer);
		app->reach = NULL;
	}
}

void kw_app_reach_view(const struct kw_app *app, struct kw_app_reach_view *v)
{
	memset(v, 0, sizeof(*v));
	if (app && app->reach)
		*v = app->reach->last;
}
