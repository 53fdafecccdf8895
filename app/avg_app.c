/*
 * The daemon's `avg` entry (app/avg_app.h): averaging rounds on a period, as a drain client
 * of the contribution policy and of the node's graceful stop.
 *
 * One struct per node (app->avg), so tests run several in one process. Order on a drain
 * (policy draining, or SIGTERM): the period timer is cancelled so no round starts; a search
 * is abandoned at once (kw_app_avgrun_pause: our DHT entry stored as False, followers sent
 * GROUP_DISBANDED or our join stream ended); an all-reduce in flight is left to finish, then
 * the result is written back, and only when nothing is in flight (the False store and the
 * file write included) is the drain reported done. Resume starts a round at once.
 *
 * A period with a tensor file: read (I/O thread) -> round (loop) -> write (I/O thread) ->
 * the next period's timer. A read that fails skips that round (counted by reason in the
 * view), except a file that was never there: averaging_size zeros until the first write.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/policy.h>
#include <kw/net/hivemind.h>

#include "avg_app.h"
#include "avg_run.h"

struct kw_app_avgd {
	struct kw_node *n;
	struct kw_app_avgrun *run;
	struct kw_policy *policy;
	float *x;
	void *mem;                        /* the one start-up allocation: tensor + averager */
	uint64_t size;
	char path[KW_CONFIG_PATH_MAX * 2];  /* the tensor file; "" kept in memory only */
	uint32_t period_ms;
	struct kw_timer period;
	struct kw_policy_client pc;
	struct kw_drain nd;
	bool draining;                    /* the policy's drain not yet reported done */
	bool paused;                      /* policy paused/draining, or the node stopping */
	bool stopping;
	void (*then)(struct kw_node *n);  /* kw_app_avgd_before_stop's continuation */
	struct kw_timer stop_timer;       /* bounds it by shutdown_drain_ms */
	uint64_t write_failed, drains, resumes;
	uint64_t read_missing, read_size, read_io;
	int read_err;                     /* the tensor file's last read's error (logged) */
	bool file_seen;                   /* it existed at start-up or we wrote it */
	struct kw_app_avgd_io io;         /* the tensor file's reads and writes (path set) */
};

/* ---- the tensor file off the loop (avg_app.h kw_app_avgd_io) ------------------------------ */

int (*kw_app_avgd_io_test_hook)(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op);

/* The whole file into x, its size checked first so another size leaves x as it was. */
static int io_read(struct kw_app_avgd_io *io, int64_t *file_bytes)
{
	uint8_t *p = (uint8_t *)io->x;
	size_t left = (size_t)io->n * sizeof(float);
	struct stat st;
	int fd, ret = 0;

	*file_bytes = -1;
	fd = open(io->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	*file_bytes = (int64_t)st.st_size;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != io->n * sizeof(float)) {
		ret = -KW_EINVAL;
		goto out;
	}
	while (left) {
		ssize_t r = read(fd, p, left);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			break;
		}
		if (r == 0) {   /* truncated since the fstat */
			*file_bytes = (int64_t)(io->n * sizeof(float) - left);
			ret = -KW_EINVAL;
			break;
		}
		p += r;
		left -= (size_t)r;
	}
out:
	close(fd);
	return ret;
}

/* The job itself: on the I/O thread, or on the loop in the inline mode. */
static void io_run(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op, int *err,
		   int64_t *file_bytes)
{
	int (*hook)(struct kw_app_avgd_io *, enum kw_app_avgd_io_op) = kw_app_avgd_io_test_hook;

	*file_bytes = -1;
	*err = hook ? hook(io, op) : 0;
	if (*err < 0)
		return;
	io->hold_ms = (uint32_t)*err;   /* inline mode: done that much later (a slow card) */
	*err = 0;
	if (op == KW_AVGD_IO_READ)
		*err = io_read(io, file_bytes);
	else
		*err = kw_app_avgrun_tensor_write(io->path, io->x, io->n);
}

static void *io_main(void *arg)
{
	struct kw_app_avgd_io *io = arg;

	pthread_mutex_lock(&io->mu);
	for (;;) {
		enum kw_app_avgd_io_op op;
		int64_t fb;
		int err;

		while (io->job == KW_AVGD_IO_NONE && !io->quit)
			pthread_cond_wait(&io->cv, &io->mu);
		if (io->job == KW_AVGD_IO_NONE)
			break;   /* quit, nothing queued */
		op = io->job;
		io->job = KW_AVGD_IO_NONE;
		pthread_mutex_unlock(&io->mu);
		io_run(io, op, &err, &fb);
		pthread_mutex_lock(&io->mu);
		io->err = err;
		io->file_bytes = fb;
		io->finished = true;
		pthread_cond_broadcast(&io->cv);
		(void)kw_loop_async_send(io->l, &io->async);
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

/* Loop thread: hands a finished job to its owner (sends coalesce: look at the slot). */
static void io_finish(struct kw_app_avgd_io *io)
{
	enum kw_app_avgd_io_op op = io->op;
	bool fin;

	if (io->threaded)
		pthread_mutex_lock(&io->mu);
	fin = io->finished;
	io->finished = false;
	if (io->threaded)
		pthread_mutex_unlock(&io->mu);
	if (!fin || op == KW_AVGD_IO_NONE)
		return;
	io->op = KW_AVGD_IO_NONE;   /* done may submit the next job */
	io->done(io, op, io->err, io->file_bytes, io->u);
}

static void io_on_async(struct kw_loop *l, struct kw_async *as)
{
	(void)l;
	io_finish(as->arg);
}

static int io_on_task(struct kw_loop *l, struct kw_task *t)
{
	(void)l;
	io_finish(t->arg);
	return KW_TASK_DONE;
}

int kw_app_avgd_io_start(struct kw_app_avgd_io *io, struct kw_loop *l, const char *path,
			 float *x, uint64_t n, kw_app_avgd_io_fn done, void *u)
{
	int ret;

	memset(io, 0, sizeof(*io));
	io->l = l;
	io->path = path;
	io->x = x;
	io->n = n;
	io->done = done;
	io->u = u;
	kw_task_init(&io->task, io_on_task, io);
	if (!kw_loop_async_supported(l))
		return 0;   /* the simulated backend: inline keeps runs deterministic */
	ret = kw_loop_async_init(l, &io->async, io_on_async, io);
	if (ret < 0) {
		KW_LOG_WRN(avg, "no wake-up for an I/O thread (%s): the tensor file is read and "
			   "written on the event loop", kw_strerror(ret));
		return 0;
	}
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->cv, NULL);
	ret = pthread_create(&io->th, NULL, io_main, io);
	if (ret) {
		KW_LOG_WRN(avg, "no I/O thread (%s): the tensor file is read and written on the "
			   "event loop", strerror(ret));
		pthread_cond_destroy(&io->cv);
		pthread_mutex_destroy(&io->mu);
		kw_loop_async_stop(l, &io->async);
		return 0;
	}
	io->threaded = true;
	return 0;
}

int kw_app_avgd_io_submit(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op)
{
	if (!io->l || op == KW_AVGD_IO_NONE)
		return -KW_EINVAL;
	if (io->op != KW_AVGD_IO_NONE)
		return -KW_EBUSY;
	io->op = op;
	if (!io->threaded) {
		io_run(io, op, &io->err, &io->file_bytes);
		io->finished = true;
		if (!io->hold_ms || kw_task_defer(io->l, &io->task, io->hold_ms) < 0)
			kw_task_post(io->l, &io->task);
		return 0;
	}
	pthread_mutex_lock(&io->mu);
	io->job = op;
	pthread_cond_signal(&io->cv);
	pthread_mutex_unlock(&io->mu);
	return 0;
}

bool kw_app_avgd_io_busy(const struct kw_app_avgd_io *io)
{
	return io->op != KW_AVGD_IO_NONE;
}

void kw_app_avgd_io_stop(struct kw_app_avgd_io *io)
{
	if (!io->l)
		return;
	if (io->threaded) {
		pthread_mutex_lock(&io->mu);
		io->quit = true;   /* the thread runs a queued job before it looks at quit */
		pthread_cond_signal(&io->cv);
		pthread_mutex_unlock(&io->mu);
		pthread_join(io->th, NULL);
	}
	kw_task_cancel(io->l, &io->task);
	io_finish(io);
	if (io->threaded) {
		kw_loop_async_stop(io->l, &io->async);
		pthread_cond_destroy(&io->cv);
		pthread_mutex_destroy(&io->mu);
		io->threaded = false;
	}
	io->l = NULL;
}

struct kw_app_avgd_io *kw_app_avgd_io_of(struct kw_app_avgd *a)
{
	return a && a->path[0] && a->io.l ? &a->io : NULL;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

static void next_round_in(struct kw_app_avgd *a, uint32_t ms)
{
	if (a->paused)
		return;
	kw_timer_cancel(&a->n->loop, &a->period);
	if (kw_timer_start(&a->n->loop, &a->period, ms) < 0)
		KW_LOG_WRN(avg, "timer heap full: averaging waits for the next resume");
}

static void check_idle(struct kw_app_avgd *a);

/*
 * Before a round the file holds what its owner wants averaged now (a new tensor it wrote, or
 * our last result), so it is read again; cheaper than telling apart a change within the file
 * system's timestamp granularity. The read runs on the I/O thread; the round starts in
 * read_done.
 */
static void start_round(struct kw_app_avgd *a)
{
	int err = kw_app_avgrun_round(a->run);

	if (err < 0) {
		KW_LOG_WRN(avg, "cannot start an averaging round: %s; next in %u s",
			   kw_strerror(err), a->period_ms / 1000);
		next_round_in(a, a->period_ms);
	}
}

static void on_period(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_avgd *a = t->arg;

	(void)l;
	if (a->paused)
		return;
	if (kw_app_avgrun_busy(a->run) || kw_app_avgd_io_busy(&a->io)) {
		/* the last round's DHT store or file write is still out (a resume right after a
		 * drain) */
		next_round_in(a, KW_APP_AVGRUN_POLL_MS);
		return;
	}
	if (!a->path[0]) {
		start_round(a);
		return;
	}
	if (kw_app_avgd_io_submit(&a->io, KW_AVGD_IO_READ) < 0)
		next_round_in(a, KW_APP_AVGRUN_POLL_MS);
}

/* A failed read skips the round: averaging values the owner did not mean (a half-written
 * or resized file) would spread them to the group. Logged once per reason in a row. */
static void read_done(struct kw_app_avgd *a, int err, int64_t file_bytes)
{
	bool first;

	if (err == -ENOENT && !a->file_seen)
		err = 0;   /* not written yet: averaging_size zeros until the first round's write */
	first = err != a->read_err;
	if (!err && a->read_err)
		KW_LOG_INF(avg, "the tensor file %s reads again: averaging resumes", a->path);
	a->read_err = err;
	if (err == -ENOENT) {
		a->read_missing++;
		if (first)
			KW_LOG_ERR(avg, "the tensor file %s is gone: averaging rounds are skipped "
				   "until it is back", a->path);
	} else if (err == -KW_EINVAL) {
		a->read_size++;
		if (first)
			KW_LOG_ERR(avg, "the tensor file %s holds %lld bytes, not %llu (%llu float32 "
				   "values): averaging rounds are skipped until it does", a->path,
				   (long long)file_bytes,
				   (unsigned long long)(a->size * sizeof(float)),
				   (unsigned long long)a->size);
	} else if (err < 0) {
		a->read_io++;
		if (first)
			KW_LOG_ERR(avg, "cannot read the tensor file %s: %s: averaging rounds are "
				   "skipped until it reads", a->path, kw_strerror(err));
	}
	if (a->paused)
		return;   /* check_idle in on_io */
	if (err < 0)
		next_round_in(a, a->period_ms);
	else
		start_round(a);
}

static void on_io(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op, int err,
		  int64_t file_bytes, void *u)
{
	struct kw_app_avgd *a = u;

	(void)io;
	if (op == KW_AVGD_IO_READ) {
		read_done(a, err, file_bytes);
	} else {
		if (err < 0) {
			a->write_failed++;
			KW_LOG_ERR(avg, "cannot write the averaged tensor to %s: %s (the old file "
				   "stays)", a->path, kw_strerror(err));
		} else {
			a->file_seen = true;
		}
		next_round_in(a, a->period_ms);
	}
	check_idle(a);
}

static void on_round(struct kw_app_avgrun *run, const struct kw_avg_result *r, void *u)
{
	struct kw_app_avgd *a = u;
	int err;

	(void)run;
	if (r->err) {
		KW_LOG_WRN(avg, "averaging round failed: %s", kw_strerror(r->err));
	} else {
		KW_LOG_INF(avg, "averaging round: %u of %u peers, %llu ms", r->peers_used,
			   r->peers_used + r->n_excluded, (unsigned long long)r->time_ms);
		if (a->path[0] && a->io.l) {
			/* the next round waits for the write (it reads the file first) */
			err = kw_app_avgd_io_submit(&a->io, KW_AVGD_IO_WRITE);
			if (err == 0)
				return;
			a->write_failed++;
			KW_LOG_ERR(avg, "cannot write the averaged tensor to %s: %s (the old file "
				   "stays)", a->path, kw_strerror(err));
		}
	}
	next_round_in(a, a->period_ms);
}

static void stop_go(struct kw_app_avgd *a)
{
	void (*then)(struct kw_node *n) = a->then;

	if (!then)
		return;
	a->then = NULL;
	kw_timer_cancel(&a->n->loop, &a->stop_timer);
	then(a->n);
}

static void on_stop_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_avgd *a = t->arg;

	(void)l;
	KW_LOG_WRN(avg, "averaging still busy after shutdown_drain_ms: stopping anyway");
	stop_go(a);
}

/* Nothing in flight after a pause (no round, no DHT store, no file I/O): the drains
 * waiting for it are done. */
static void check_idle(struct kw_app_avgd *a)
{
	if (!a->paused || kw_app_avgrun_busy(a->run) || kw_app_avgd_io_busy(&a->io))
		return;
	stop_go(a);
	if (a->draining) {
		a->draining = false;
		KW_LOG_INF(avg, "drained: averaging left cleanly");
		kw_policy_drain_done(a->policy, &a->pc);
	}
}

static void on_idle(struct kw_app_avgrun *run, void *u)
{
	(void)run;
	check_idle(u);
}

/* Return: true when something is still in flight (on_idle runs later). */
static bool pause_now(struct kw_app_avgd *a)
{
	a->paused = true;
	kw_timer_cancel(&a->n->loop, &a->period);
	if (kw_app_avgrun_pause(a->run) == 0 && !kw_app_avgd_io_busy(&a->io)) {
		check_idle(a);
		return false;
	}
	KW_LOG_INF(avg, "pausing: averaging finishes what is in flight first");
	return true;
}

int kw_app_avgd_before_stop(struct kw_node *n, void (*then)(struct kw_node *n))
{
	struct kw_app *app = kw_app_of(n);
	struct kw_app_avgd *a = app ? app->avg : NULL;

	if (!a || !a->run || a->stopping)
		return -KW_ENOENT;
	a->stopping = true;
	if (!pause_now(a))
		return -KW_ENOENT;   /* nothing in flight: the caller goes on at once */
	a->then = then;
	if (kw_timer_start(&n->loop, &a->stop_timer, n->cfg.shutdown_drain_ms) < 0)
		KW_LOG_WRN(avg, "timer heap full: the stop waits for averaging without a bound");
	return 0;
}

static void avg_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_app_avgd *a = c->arg;

	(void)p;
	a->drains++;
	a->draining = true;
	pause_now(a);
}

static void avg_resume(struct kw_policy *p, struct kw_policy_client *c)
{
	struct kw_app_avgd *a = c->arg;

	(void)p;
	a->resumes++;
	a->draining = false;
	if (a->stopping)
		return;
	a->paused = false;
	KW_LOG_INF(avg, "averaging again");
	next_round_in(a, 0);
}

static void node_begin(struct kw_node *n, struct kw_drain *d)
{
	struct kw_app_avgd *a = d->arg;

	(void)n;
	a->stopping = true;
	pause_now(a);
}

static bool node_busy(struct kw_node *n, struct kw_drain *d)
{
	struct kw_app_avgd *a = d->arg;

	(void)n;
	return kw_app_avgrun_busy(a->run) || kw_app_avgd_io_busy(&a->io);
}

static bool serving(const struct kw_config *cfg)
{
	return IS_ENABLED(CONFIG_KW_APP_SERVE) && (cfg->serve_model[0] || cfg->serve_experts[0]);
}

/* The tensor: the file's (its size wins over averaging_size, which must then agree), or
 * averaging_size zeros when the file does not exist yet (written after the first round). */
static int tensor_size(struct kw_app_avgd *a, const struct kw_config *cfg)
{
	const char *t = cfg->averaging_tensor;
	uint64_t n = 0;
	int err;

	a->size = cfg->averaging_size;
	if (!t[0])
		return 0;
	if (t[0] == '/')
		snprintf(a->path, sizeof(a->path), "%s", t);
	else
		snprintf(a->path, sizeof(a->path), "%s/%s", cfg->data_dir, t);
	err = kw_app_avgrun_tensor_size(a->path, &n);
	if (err == -ENOENT && a->size)
		return 0;
	if (err < 0) {
		KW_LOG_ERR(avg, "averaging_tensor %s: %s", a->path, err == -KW_EINVAL ?
			   "not a whole, non-empty number of float32 values" : err == -ENOENT ?
			   "no such file (with averaging_size it starts as zeros)" : kw_strerror(err));
		return -KW_EINVAL;
	}
	if (a->size && a->size != n) {
		KW_LOG_ERR(avg, "averaging_tensor %s holds %llu values, averaging_size says %u",
			   a->path, (unsigned long long)n, cfg->averaging_size);
		return -KW_EINVAL;
	}
	if (n > (1u << 28)) {
		KW_LOG_ERR(avg, "averaging_tensor %s: more than 2^28 values", a->path);
		return -KW_EINVAL;
	}
	a->size = n;
	return 1;   /* read it once the memory is there */
}

int kw_app_avgd_start(struct kw_node *n, struct kw_app *app, double (*now)(void *arg),
		      void *now_arg, struct kw_app_avgd **out)
{
	const struct kw_config *cfg = &app->cfg;
	struct kw_app_avgrun_ops ops;
	struct kw_app_avgrun_cfg rc;
	struct kw_app_avgrun_sizes sz;
	struct kw_hm_stream_limits sl;
	struct kw_app_avgd *a;
	const char *why = "";
	int err, have_file;

	*out = NULL;
	if (!cfg->averaging_prefix[0])
		return 0;
	if (!app->sw || !app->hm || !app->hm_dht) {
		KW_LOG_ERR(avg, "averaging_prefix needs hivemind = on");
		return -KW_EINVAL;
	}
	a = kw_arena_alloc(&n->arena, sizeof(*a), 16);
	if (!a)
		return -KW_ENOMEM;
	memset(a, 0, sizeof(*a));
	a->n = n;
	a->policy = app->policy;
	a->period_ms = cfg->averaging_period_s * 1000;
	have_file = tensor_size(a, cfg);
	if (have_file < 0)
		return have_file;

	memset(&rc, 0, sizeof(rc));
	rc.prefix = cfg->averaging_prefix;
	rc.mode = (enum kw_avg_mode)cfg->averaging_mode;
	rc.weight = rc.mode == KW_AVG_AUX ? 0.0 : 1.0;
	rc.compression = (enum kw_compression)cfg->averaging_compression;
	rc.size = a->size;
	rc.target_group_size = cfg->averaging_target_group_size;
	rc.min_group_size = cfg->averaging_min_group_size;
	rc.match_ms = cfg->averaging_match_timeout_ms;
	rc.now = now ? now : kw_app_avgrun_wall_now;
	rc.now_arg = now_arg;
	err = kw_app_avgrun_sizes(&rc, &sz, &why);
	if (err < 0) {
		KW_LOG_ERR(avg, "averaging: %s", why);
		return -KW_EINVAL;
	}
	if (a->size > (SIZE_MAX - sz.avg_arena) / sizeof(float))
		return -KW_ENOMEM;
	a->mem = calloc(1, (size_t)a->size * sizeof(float) + sz.avg_arena);
	if (!a->mem) {
		KW_LOG_ERR(avg, "no memory for the averaged tensor (%llu values)",
			   (unsigned long long)a->size);
		return -KW_ENOMEM;
	}
	a->x = a->mem;
	rc.tensor = a->x;
	/* start-up: read on the loop, before it serves anyone */
	if (have_file && kw_app_avgrun_tensor_read(a->path, a->x, a->size, NULL) < 0)
		goto fail_inval;
	a->file_seen = have_file;

	/* the averager's streams: a part message each (serve's entry, later, finds them set up
	 * and needs the Kconfig sizes for its own stream calls) */
	kw_hm_stream_limits_default(&sl);
	if (!serving(cfg))
		sl.streams_in = sl.streams_per_peer = sl.streams_out = sl.buf_bytes = 0;
	kw_app_avgrun_stream_limits(&rc, &sl);
	err = kw_hm_stream_setup(app->hm, &sl);
	if (err == -KW_EALREADY)
		KW_LOG_WRN(avg, "the Hivemind streams were set up before averaging: parts larger "
			   "than their buffers fail");
	else if (err < 0)
		goto fail;
	memset(&ops, 0, sizeof(ops));
	ops.round_done = on_round;
	ops.idle = on_idle;
	ops.u = a;
	err = kw_app_avgrun_create(n, app->sw, app->hm, app->hm_dht, &rc,
				   (uint8_t *)a->mem + (size_t)a->size * sizeof(float), sz.avg_arena,
				   &ops, &a->run);
	if (err < 0)
		goto fail;
	kw_timer_init(&a->period, on_period, a);
	kw_timer_init(&a->stop_timer, on_stop_timer, a);
	if (a->path[0])
		(void)kw_app_avgd_io_start(&a->io, &n->loop, a->path, a->x, a->size, on_io, a);
	if (a->policy) {
		a->pc.name = "averaging";
		a->pc.drain = avg_drain;
		a->pc.resume = avg_resume;
		a->pc.arg = a;
		kw_policy_add_client(a->policy, &a->pc);
	}
	a->nd.begin = node_begin;
	a->nd.busy = node_busy;
	a->nd.arg = a;
	kw_node_add_drain(n, &a->nd);
	/* paused from the start: the policy's resume starts the first round */
	a->paused = a->policy && kw_policy_status(a->policy)->state != KW_POLICY_CONTRIBUTING;
	next_round_in(a, 0);
	KW_LOG_INF(avg, "averaging %llu values under %s.0b (%s, groups of %u..%u, every %u s)%s",
		   (unsigned long long)a->size, cfg->averaging_prefix,
		   rc.mode == KW_AVG_AUX ? "aux" : rc.mode == KW_AVG_CLIENT ? "client" : "node",
		   rc.min_group_size, rc.target_group_size, cfg->averaging_period_s,
		   a->paused ? ": paused until the policy says contribute" : "");
	*out = a;
	return 0;
fail_inval:
	err = -KW_EINVAL;
fail:
	if (err != -KW_EINVAL)
		KW_LOG_ERR(avg, "cannot start averaging: %s", kw_strerror(err));
	free(a->mem);
	a->mem = NULL;
	return err;
}

void kw_app_avgd_stop(struct kw_app_avgd *a)
{
	if (!a)
		return;
	a->paused = true;   /* the cancelled round's report starts no timer */
	a->stopping = true;
	kw_timer_cancel(&a->n->loop, &a->period);
	kw_timer_cancel(&a->n->loop, &a->stop_timer);
	a->draining = false;
	a->then = NULL;
	/* a write in flight ends first (the state is never lost or half-written); a read is
	 * waited for too, then dropped (paused: no round starts) */
	kw_app_avgd_io_stop(&a->io);
	kw_app_avgrun_destroy(a->run);
	free(a->mem);
	a->mem = NULL;
	a->x = NULL;
}

void kw_app_avgd_view(const struct kw_app_avgd *a, struct kw_app_avgd_view *v)
{
	struct kw_app_avgrun_stats st;

	memset(v, 0, sizeof(*v));
	v->state = "off";
	if (!a || !a->run)
		return;
	kw_app_avgrun_get_stats(a->run, &st);
	v->state = st.phase == KW_AVGRUN_AVERAGING ? "averaging" :
		   st.phase == KW_AVGRUN_MATCHING ? "matching" : a->paused ? "paused" : "idle";
	v->rounds = st.rounds;
	v->searches = st.searches;
	v->no_group = st.no_group;
	v->round_failed = st.round_failed;
	v->peers_excluded = st.peers_excluded;
	v->withdrawals = st.withdrawals;
	v->write_failed = a->write_failed;
	v->read_missing = a->read_missing;
	v->read_size = a->read_size;
	v->read_io = a->read_io;
	v->last_group = st.last_group;
	v->last_round_ms = st.last_round_ms;
	v->last_done_ms = st.last_done_ms;
	v->drains = a->drains;
	v->resumes = a->resumes;
}

struct kw_app_avgrun *kw_app_avgd_runner(struct kw_app_avgd *a)
{
	return a ? a->run : NULL;
}

/* ---- the init entry (app/initcalls.def): after `hivemind` and `policy` -------------------- */

int kw_app_avgd_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (!app || !app->cfg.averaging_prefix[0])
		return 0;   /* not configured: nothing allocated */
	return kw_app_avgd_start(n, app, NULL, NULL, &app->avg);
}

void kw_app_avgd_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	if (!app)
		return;
	kw_app_avgd_stop(app->avg);
	app->avg = NULL;
}
