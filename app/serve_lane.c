/*
 * The compute lane of serving (doc/serve.md "Compute off the event loop"): one thread runs
 * the unary requests (rpc_forward / rpc_backward / rpc_info of both servers), the
 * rpc_inference steps (a run function of serve_infer.c) and the joined requests of the
 * rpc_*_stream calls (serve_stream.c) that the loop queues, driving the
 * matmul worker pool as the loop would, and hands each result back with kw_loop_async_send;
 * the loop then answers and frees the slot. The queue is a ring
 * of slot indices as long as the slot pool, so queueing never fails once a slot is taken, and
 * a request that finds no slot gets the usual busy text. Nothing is allocated per request:
 * the job lives in its slot, the ring comes from the serve arena at start.
 *
 * What stays on the loop (pushed steps, kw_serve_call) takes the compute lock
 * around its computation, so the one set of compute contexts has one user at a time.
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>

#include "serve_int.h"

void (*kw_serve_lane_test_hook)(struct kw_serve *s, struct kw_serve_slot *slot);

static const char stop_text[] = "RuntimeError('server shutting down')";

int kw_serve_lane_setup(struct kw_serve *s)
{
	struct kw_serve_lane *ln = &s->lane;

	memset(ln, 0, sizeof(*ln));
	ln->ring = kw_arena_alloc(s->a, s->lim.slots * sizeof(*ln->ring), 16);
	return ln->ring ? 0 : -KW_ENOMEM;
}

static void *lane_main(void *arg)
{
	struct kw_serve *s = arg;
	struct kw_serve_lane *ln = &s->lane;

	for (;;) {
		struct kw_serve_slot *slot;
		struct kw_serve_job *j;
		bool run;

		pthread_mutex_lock(&ln->mu);
		while (!ln->n && !ln->stopping)
			pthread_cond_wait(&ln->cv_work, &ln->mu);
		if (ln->stopping) {
			pthread_mutex_unlock(&ln->mu);
			return NULL;   /* what is still queued is answered by kw_serve_stop */
		}
		slot = &s->slot[ln->ring[ln->head]];
		ln->head = (ln->head + 1) % s->lim.slots;
		ln->n--;
		j = &slot->job;
		run = !j->cancelled;
		j->state = run ? KW_SERVE_JOB_RUNNING : KW_SERVE_JOB_DONE;
		pthread_mutex_unlock(&ln->mu);
		if (run) {
			if (kw_serve_lane_test_hook)
				kw_serve_lane_test_hook(s, slot);
			pthread_mutex_lock(&ln->compute);
			if (j->run)
				j->run(s, slot, j->user);
			else
				kw_serve_compute(s, slot, j->petals, j->method, j->req, j->len,
						 &j->o, &j->bad);
			pthread_mutex_unlock(&ln->compute);
			pthread_mutex_lock(&ln->mu);
			j->state = KW_SERVE_JOB_DONE;
			ln->jobs++;
			pthread_cond_broadcast(&ln->cv_state);
			pthread_mutex_unlock(&ln->mu);
		}
		(void)kw_loop_async_send(ln->l, &ln->done);
	}
}

/* Loop thread: answers every finished job (sends coalesce, so look at all of them). */
static void finish(struct kw_serve *s, bool stopping)
{
	struct kw_serve_lane *ln = &s->lane;

	for (uint32_t i = 0; i < s->lim.slots; i++) {
		struct kw_serve_slot *slot = &s->slot[i];
		struct kw_serve_job *j = &slot->job;
		bool done, cancelled;

		pthread_mutex_lock(&ln->mu);
		done = j->state == KW_SERVE_JOB_DONE ||
		       (stopping && j->state == KW_SERVE_JOB_QUEUED);
		if (done && j->state == KW_SERVE_JOB_QUEUED && !j->cancelled) {
			/* never run: the lane stopped first */
			j->o = (struct kw_serve_out){ (const uint8_t *)stop_text,
						      sizeof(stop_text) - 1, true };
			j->status = -KW_ECANCELED;
			snprintf(slot->err, sizeof(slot->err), "%s", stop_text);
		}
		cancelled = j->cancelled;
		if (done)
			j->state = KW_SERVE_JOB_IDLE;
		pthread_mutex_unlock(&ln->mu);
		if (!done)
			continue;
		if (!cancelled) {
			if (!j->run)   /* a step's owner counts it */
				kw_serve_account(s, &j->o, j->bad);
			j->done(s, slot, j->user);
		}
		if (cancelled || !j->keep)   /* kept: done's owner gives the slot back */
			kw_serve_slot_put(s, j->tok);
	}
	if (stopping)
		ln->n = 0;
}

static void on_done(struct kw_loop *l, struct kw_async *a)
{
	(void)l;
	finish(a->arg, false);
}

int kw_serve_lane_attach(struct kw_serve *s, struct kw_loop *l)
{
	struct kw_serve_lane *ln = &s->lane;
	int ret;

	if (ln->tried)
		return ln->on ? 0 : -KW_ENOTSUP;
	ln->tried = true;
	if (!IS_ENABLED(CONFIG_KW_APP_SERVE_LANE) || !l || !ln->ring)
		return -KW_ENOTSUP;
	ret = kw_loop_async_init(l, &ln->done, on_done, s);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&ln->mu, NULL);
	pthread_mutex_init(&ln->compute, NULL);
	pthread_cond_init(&ln->cv_work, NULL);
	pthread_cond_init(&ln->cv_state, NULL);
	ln->l = l;
	ret = pthread_create(&ln->th, NULL, lane_main, s);
	if (ret) {
		KW_LOG_WRN(serve, "no compute lane (thread: %s): computing on the loop",
			   strerror(ret));
		kw_loop_async_stop(l, &ln->done);
		return -KW_EAGAIN;
	}
	ln->on = true;
	KW_LOG_INF(serve, "compute lane started: requests compute off the event loop, %u queued "
		   "at most", s->lim.slots);
	return 0;
}

static bool submit(struct kw_serve *s, struct kw_serve_slot *slot, const struct kw_serve_job *job)
{
	struct kw_serve_lane *ln = &s->lane;

	if (!ln->on || ln->stopping)
		return false;
	slot->job = *job;
	pthread_mutex_lock(&ln->mu);
	slot->job.state = KW_SERVE_JOB_QUEUED;
	ln->ring[(ln->head + ln->n) % s->lim.slots] = (uint32_t)(slot - s->slot);
	ln->n++;
	pthread_cond_signal(&ln->cv_work);
	pthread_mutex_unlock(&ln->mu);
	return true;
}

bool kw_serve_lane_submit(struct kw_serve *s, struct kw_serve_slot *slot, void *tok, bool petals,
			  int method, const uint8_t *req, size_t len, kw_serve_done_fn done,
			  void *user)
{
	struct kw_serve_job j = { .tok = tok, .petals = petals, .method = method, .req = req,
				  .len = len, .done = done, .user = user };

	return submit(s, slot, &j);
}

bool kw_serve_lane_submit_run(struct kw_serve *s, struct kw_serve_slot *slot, void *tok,
			      kw_serve_run_fn run, kw_serve_done_fn done, void *user)
{
	struct kw_serve_job j = { .tok = tok, .run = run, .done = done, .user = user };

	return submit(s, slot, &j);
}

bool kw_serve_lane_submit_keep(struct kw_serve *s, struct kw_serve_slot *slot, void *tok,
			       kw_serve_run_fn run, kw_serve_done_fn done, void *user)
{
	struct kw_serve_job j = { .tok = tok, .run = run, .done = done, .user = user,
				  .keep = true };

	return submit(s, slot, &j);
}

void kw_serve_lane_cancel(struct kw_serve *s, struct kw_serve_slot *slot)
{
	struct kw_serve_lane *ln = &s->lane;
	struct kw_serve_job *j = &slot->job;

	if (!ln->on)
		return;
	pthread_mutex_lock(&ln->mu);
	if (j->state != KW_SERVE_JOB_IDLE) {
		j->cancelled = true;
		/* the request buffer dies when this returns: a running job must end first */
		while (j->state == KW_SERVE_JOB_RUNNING)
			pthread_cond_wait(&ln->cv_state, &ln->mu);
	}
	pthread_mutex_unlock(&ln->mu);
}

void kw_serve_compute_begin(struct kw_serve *s)
{
	if (s->lane.on)
		pthread_mutex_lock(&s->lane.compute);
}

void kw_serve_compute_end(struct kw_serve *s)
{
	if (s->lane.on)
		pthread_mutex_unlock(&s->lane.compute);
}

void kw_serve_lane_join(struct kw_serve *s)
{
	struct kw_serve_lane *ln = &s->lane;

	if (!ln->on || ln->stopping)
		return;
	pthread_mutex_lock(&ln->mu);
	ln->stopping = true;
	pthread_cond_signal(&ln->cv_work);
	pthread_mutex_unlock(&ln->mu);
	pthread_join(ln->th, NULL);
}

void kw_serve_stop(struct kw_serve *s)
{
	struct kw_serve_lane *ln = &s->lane;

	if (!ln->on)
		return;
	kw_serve_lane_join(s);
	finish(s, true);   /* the last results, and an error for what never ran */
	kw_loop_async_stop(ln->l, &ln->done);
	ln->on = false;
}
