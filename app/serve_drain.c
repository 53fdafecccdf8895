/*
 * Serving as a drain client of the contribution policy (app/serve.h, doc/serve.md "Pausing",
 * doc/board.md): a node pausing finishes the requests it is serving before it withdraws.
 *
 * On drain, in this order:
 *   1. keep serving until the Hivemind announcer (the policy client named "hivemind") has
 *      stored its OFFLINE records, so callers stop routing here before they are refused;
 *   2. refuse new work: unary calls (rpc_info excepted), stream calls and new rpc_inference
 *      sessions get KW_SERVE_PAUSED_REPR; requests in flight and open sessions go on;
 *   3. when no request and no session is left, kw_policy_drain_done; sessions still open at
 *      the policy's drain_timeout_ms are ended with an error frame first.
 * On resume new work is accepted again. Everything runs on the node's loop; nothing allocates.
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

#include "serve_int.h"

/* How often step 1 looks whether the announcer is done: the announcer tells nobody, and its
 * DHT store takes hundreds of milliseconds, so a short poll costs nothing. */
#define KW_SERVE_DRAIN_POLL_MS 50

void kw_serve_set_accepting(struct kw_serve *s, bool on)
{
	s->refuse = on ? NULL : KW_SERVE_PAUSED_REPR;
	if (!on) {
		/* a session waiting for a cache slot is new work: refused as the others */
		if (s->started && s->wait)
			s->st.refused += kw_serve_infer_refuse_waiters(s, KW_SERVE_PAUSED_REPR);
		kw_serve_idle_check(s);
	}
}

bool kw_serve_accepting(const struct kw_serve *s)
{
	return !s->refuse;
}

size_t kw_serve_busy(const struct kw_serve *s)
{
	if (!s->started)
		return 0;
	return s->pool.used + (s->has_blocks && s->sess ? s->kv.open : 0);
}

void kw_serve_idle_check(struct kw_serve *s)
{
	if (s->refuse && s->on_idle && kw_serve_busy(s) == 0)
		s->on_idle(s, s->idle_arg);
}

/* ---- the policy client ---------------------------------------------------------------------- */

static void on_idle(struct kw_serve *s, void *arg)
{
	struct kw_serve_drain *d = arg;

	(void)s;
	if (!d->draining)
		return;
	d->draining = false;
	kw_timer_cancel(d->loop, &d->end);
	KW_LOG_INF(serve, "drained: no request or session left");
	kw_policy_drain_done(d->policy, &d->pc);
}

static void refuse_now(struct kw_serve_drain *d)
{
	struct kw_serve_stats st;

	kw_serve_get_stats(d->s, &st);
	KW_LOG_INF(serve, "pausing: new calls refused; waiting for %zu request%s and %zu "
		   "session%s", st.slots_used, st.slots_used == 1 ? "" : "s", st.sessions_open,
		   st.sessions_open == 1 ? "" : "s");
	kw_serve_set_accepting(d->s, false);   /* reports at once when idle */
}

static void on_wait(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_serve_drain *d = t->arg;

	if (!d->draining)
		return;
	if (d->after && d->after->pending) {
		if (kw_timer_start(l, &d->wait, KW_SERVE_DRAIN_POLL_MS) == 0)
			return;
		KW_LOG_WRN(serve, "timer heap full: refusing new calls before the OFFLINE records "
			   "are stored");
	}
	refuse_now(d);
}

static void on_end(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_serve_drain *d = t->arg;
	size_t n;

	(void)l;
	if (!d->draining)
		return;
	if (kw_serve_accepting(d->s))
		refuse_now(d);   /* the announcer never finished: refuse anyway */
	if (!d->draining)
		return;
	n = kw_serve_infer_close_all(d->s, KW_SERVE_PAUSED_REPR);
	d->sessions_closed += n;
	KW_LOG_INF(serve, "drain timeout: %zu inference session%s ended", n, n == 1 ? "" : "s");
}

static void serve_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_serve_drain *d = c->arg;

	d->drains++;
	d->draining = true;
	if (p->set.drain_timeout_ms &&
	    kw_timer_start(d->loop, &d->end, p->set.drain_timeout_ms) < 0)
		KW_LOG_WRN(serve, "timer heap full: open sessions are not ended at the drain "
			   "timeout");
	if (d->after && d->after->pending && kw_timer_start(d->loop, &d->wait, 0) == 0)
		return;   /* step 1: the OFFLINE records first */
	refuse_now(d);
}

static void serve_resume(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_serve_drain *d = c->arg;

	(void)p;
	d->resumes++;
	d->draining = false;
	kw_timer_cancel(d->loop, &d->wait);
	kw_timer_cancel(d->loop, &d->end);
	kw_serve_set_accepting(d->s, true);
	KW_LOG_INF(serve, "accepting calls again");
}

int kw_serve_drain_attach(struct kw_serve_drain *d, struct kw_serve *s, struct kw_policy *p)
{
	const struct kw_policy_client *c;

	if (!d || !s || !p)
		return -KW_EINVAL;
	memset(d, 0, sizeof(*d));
	d->s = s;
	d->policy = p;
	d->loop = p->loop;
	for (c = p->clients; c; c = c->next)
		if (c->name && !strcmp(c->name, "hivemind"))
			d->after = c;
	kw_timer_init(&d->wait, on_wait, d);
	kw_timer_init(&d->end, on_end, d);
	s->on_idle = on_idle;
	s->idle_arg = d;
	d->pc.name = "serve";
	d->pc.drain = serve_drain;
	d->pc.resume = serve_resume;
	d->pc.arg = d;
	kw_policy_add_client(p, &d->pc);
	/* paused from the start: serve nothing until the policy says contribute */
	if (kw_policy_status(p)->state != KW_POLICY_CONTRIBUTING)
		kw_serve_set_accepting(s, false);
	return 0;
}

void kw_serve_drain_detach(struct kw_serve_drain *d)
{
	if (!d->loop)
		return;
	kw_timer_cancel(d->loop, &d->wait);
	kw_timer_cancel(d->loop, &d->end);
	d->s->on_idle = NULL;
}

/* ---- the init entry (app/initcalls.def): after `serve` and `policy` ------------------------ */

int kw_app_serve_drain_init(struct kw_node *n);
void kw_app_serve_drain_shutdown(struct kw_node *n);

static struct kw_serve_drain *g_drain;   /* one serving node per process (as serve_app.c) */

int kw_app_serve_drain_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct kw_serve_drain *d;

	if (!app || !app->policy || !app->serve)
		return 0;   /* not serving, or no policy: nothing to drain */
	d = kw_arena_alloc(&n->arena, sizeof(*d), 8);
	if (!d)
		return -KW_ENOMEM;
	g_drain = d;
	return kw_serve_drain_attach(d, app->serve, app->policy);
}

void kw_app_serve_drain_shutdown(struct kw_node *n)
{
	(void)n;
	if (g_drain)
		kw_serve_drain_detach(g_drain);
	g_drain = NULL;
}
