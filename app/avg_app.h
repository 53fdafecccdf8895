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
 * Both per-round file operations run off the event loop, on one I/O thread of the daemon
 * (struct kw_app_avgd_io below), so a slow SD card does not stall every peer's traffic.
 *
 * Who owns the tensor when: the I/O thread while a read or write is in flight (the loop
 * starts no round until the read has finished and none until the write has finished, and
 * the averager does not serve the tensor between rounds in the daemon); the averager from
 * kw_app_avgrun_round until its round_done; the daemon (idle) otherwise.
 *
 * Memory: the tensor and the averager's arena in one start-up allocation, the rest from the
 * node's arena, the I/O thread started once; nothing when averaging_prefix is empty, nothing
 * per round or part.
 */
#ifndef KW_APP_AVG_APP_H
#define KW_APP_AVG_APP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <kw/loop.h>

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
	/* rounds skipped because the tensor file could not be read before them, by reason:
	 * gone (it existed or we wrote it), of another size, an I/O error */
	uint64_t read_missing, read_size, read_io;
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

/*
 * The daemon's tensor file I/O off the loop: one job slot (a read or a write of the whole
 * tensor) run by one thread made at kw_app_avgd_io_start, its completion handed back to the
 * loop with kw_loop_async. On a loop without cross-thread wake-ups (the simulated backend)
 * or when the thread cannot be made, the job runs on the loop when submitted and done runs
 * from a task in a later pass, so callers see the same order either way.
 *
 * The job borrows path, x and n: x must not be touched by the loop from submit until done
 * runs (the owner rules in the file comment). A read checks the file's size before it reads,
 * so a file of another size leaves x as it was; a file truncated while it is read can leave
 * x part-read (the caller skips the round, the next good read replaces all of it). A write is
 * kw_app_avgrun_tensor_write: "<path>.tmp", fsync, rename; a failure leaves the old file.
 */
enum kw_app_avgd_io_op { KW_AVGD_IO_NONE = 0, KW_AVGD_IO_READ, KW_AVGD_IO_WRITE };

struct kw_app_avgd_io;
/* On the loop thread. err: 0; -ENOENT (no file); -KW_EINVAL (another size: *file_bytes
 * holds the size seen, -1 when unknown); another -errno. */
typedef void (*kw_app_avgd_io_fn)(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op,
				  int err, int64_t file_bytes, void *u);

struct kw_app_avgd_io {
	struct kw_loop *l;
	const char *path;
	float *x;
	uint64_t n;
	kw_app_avgd_io_fn done;
	void *u;
	enum kw_app_avgd_io_op op;   /* in flight (loop's view); NONE: idle */
	bool threaded;
	struct kw_async async;
	struct kw_task task;         /* the inline mode's completion */
	pthread_t th;
	pthread_mutex_t mu;          /* guards the fields below */
	pthread_cond_t cv;
	enum kw_app_avgd_io_op job;  /* for the thread; NONE once taken */
	bool finished, quit;
	int err;
	int64_t file_bytes;
	uint32_t hold_ms;            /* the test hook's delay (inline mode) */
};

/*
 * Sets io up for path (borrowed, non-empty) and the n values at x (borrowed). Start-up only
 * (it may make a thread). Return: 0 (off the loop, or inline when the loop cannot be woken
 * from a thread: logged).
 */
int kw_app_avgd_io_start(struct kw_app_avgd_io *io, struct kw_loop *l, const char *path,
			 float *x, uint64_t n, kw_app_avgd_io_fn done, void *u);
/* Starts op; done runs on the loop once it ended. Return: 0; -KW_EBUSY (one in flight);
 * -KW_EINVAL (not started, or op NONE). */
int kw_app_avgd_io_submit(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op);
/* A job is in flight (done has not run yet). */
bool kw_app_avgd_io_busy(const struct kw_app_avgd_io *io);
/* Waits for a job in flight to end (a write is never cut short), runs its done, ends the
 * thread. Idempotent; a zeroed io is fine. */
void kw_app_avgd_io_stop(struct kw_app_avgd_io *io);
/* Tests: runs on the I/O side before each job; a negative return fails the job with it
 * without touching the file (fault injection); it may block (a slow card on the I/O
 * thread); in the inline mode a positive return delays done by that many ms of loop time
 * (a slow card on a simulated clock). */
extern int (*kw_app_avgd_io_test_hook)(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op);
/* The daemon's I/O slot (tests); NULL for a NULL a or one without a tensor file. */
struct kw_app_avgd_io *kw_app_avgd_io_of(struct kw_app_avgd *a);

/* The `avg` init entry and its shutdown (app/initcalls.def). */
int kw_app_avgd_init(struct kw_node *n);
void kw_app_avgd_shutdown(struct kw_node *n);

#endif /* KW_APP_AVG_APP_H */
