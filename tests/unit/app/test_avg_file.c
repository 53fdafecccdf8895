/*
 * The averaging daemon's tensor file I/O off the event loop (app/avg_app.c kw_app_avgd_io) on
 * the Linux backend, with its real I/O thread: while a write is held up (the test hook
 * blocks it, as a slow SD card's fsync would) the loop keeps firing timers and the old file
 * stays whole; the result lands only when the write is let go; a failed write leaves the old
 * file's bytes; reads report a missing file, another size (x untouched) and a good file;
 * stopping waits for a write in flight. Ordering is asserted, never timing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "../../../app/avg_app.h"

#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/sys.h>

#define N 4096

struct done_rec {
	int calls;
	enum kw_app_avgd_io_op op;
	int err;
	int64_t file_bytes;
	int timer_hits_then;      /* timer hits when done ran */
};

/* The hook's gate: a job of op `hold` waits in the hook until `open` (a slow card). */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum kw_app_avgd_io_op hold;
	bool open, entered;
	int fail;                 /* < 0: fail every job with it */
};

static struct {
	struct kw_sys_linux sys;
	struct kw_node *node;
	struct kw_app_avgd_io io;
	char dir[64], path[128], tmp[140];
	float x[N], old[N], got[N];
	struct done_rec d;
	struct gate gt;
	struct kw_timer tick;
	int hits;
} *g;

#define LOOP (&g->node->loop)

static int hook(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op)
{
	struct gate *gt = &g->gt;
	int ret;

	(void)io;
	pthread_mutex_lock(&gt->mu);
	gt->entered = true;
	pthread_cond_broadcast(&gt->cv);
	while (op == gt->hold && !gt->open)
		pthread_cond_wait(&gt->cv, &gt->mu);
	ret = gt->fail;
	pthread_mutex_unlock(&gt->mu);
	return ret;
}

static void gate_open(void)
{
	pthread_mutex_lock(&g->gt.mu);
	g->gt.open = true;
	pthread_cond_broadcast(&g->gt.cv);
	pthread_mutex_unlock(&g->gt.mu);
}

static void gate_wait_entered(void)
{
	pthread_mutex_lock(&g->gt.mu);
	while (!g->gt.entered)
		pthread_cond_wait(&g->gt.cv, &g->gt.mu);
	pthread_mutex_unlock(&g->gt.mu);
}

static void on_done(struct kw_app_avgd_io *io, enum kw_app_avgd_io_op op, int err,
		    int64_t file_bytes, void *u)
{
	struct done_rec *d = u;

	(void)io;
	d->calls++;
	d->op = op;
	d->err = err;
	d->file_bytes = file_bytes;
	d->timer_hits_then = g->hits;
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	(void)t;
	g->hits++;
	if (g->hits < 5)
		(void)kw_timer_start(l, &g->tick, 1);
}

static void write_file(const float *x, size_t n)
{
	FILE *f = fopen(g->path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(x, sizeof(float), n, f), n);
	fclose(f);
}

/* The file holds exactly the N values at want. */
static void assert_file_is(const float *want)
{
	FILE *f = fopen(g->path, "rb");

	assert_non_null(f);
	assert_int_equal(fread(g->got, sizeof(float), N, f), N);
	assert_int_equal(fgetc(f), EOF);
	fclose(f);
	assert_memory_equal(g->got, want, sizeof(g->got));
}

/* Runs loop passes until done has run (bounded: a lost completion fails, never hangs). */
static void run_until_done(void)
{
	for (int i = 0; i < 2000 && !g->d.calls; i++)
		assert_int_equal(kw_loop_run_once(LOOP, 100), 0);
	assert_int_equal(g->d.calls, 1);
}

static int setup(void **state)
{
	(void)state;
	g = calloc(1, sizeof(*g));
	if (!g || kw_sys_linux_open(&g->sys) < 0)
		return -1;
	g->node = kw_node_create_heap(1024 * 1024 + kw_test_loop_bytes(), &g->sys.sys, NULL);
	if (!g->node)
		return -1;
	snprintf(g->dir, sizeof(g->dir), "/tmp/kw_avgf_%d", (int)getpid());
	mkdir(g->dir, 0700);
	snprintf(g->path, sizeof(g->path), "%s/t.bin", g->dir);
	snprintf(g->tmp, sizeof(g->tmp), "%s.tmp", g->path);
	for (int i = 0; i < N; i++) {
		g->old[i] = (float)i;
		g->x[i] = -1.0f - (float)i / 8.0f;
	}
	pthread_mutex_init(&g->gt.mu, NULL);
	pthread_cond_init(&g->gt.cv, NULL);
	kw_timer_init(&g->tick, on_tick, NULL);
	kw_app_avgd_io_test_hook = hook;
	if (kw_app_avgd_io_start(&g->io, LOOP, g->path, g->x, N, on_done, &g->d) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gate_open();
	kw_app_avgd_io_stop(&g->io);
	kw_app_avgd_io_test_hook = NULL;
	kw_timer_cancel(LOOP, &g->tick);
	unlink(g->path);
	rmdir(g->tmp);
	unlink(g->tmp);
	rmdir(g->dir);
	kw_node_destroy_heap(g->node);
	kw_sys_linux_close(&g->sys);
	pthread_cond_destroy(&g->gt.cv);
	pthread_mutex_destroy(&g->gt.mu);
	free(g);
	g = NULL;
	return 0;
}

static void test_avg_file_loop_runs_while_a_write_is_slow(void **state)
{
	(void)state;
	assert_true(g->io.threaded);   /* the Linux backend wakes the loop from a thread */
	write_file(g->old, N);
	g->gt.hold = KW_AVGD_IO_WRITE;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_WRITE), 0);
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_READ), -KW_EBUSY);
	gate_wait_entered();
	/* the write is held on its thread: the loop's timers fire pass after pass */
	assert_int_equal(kw_timer_start(LOOP, &g->tick, 1), 0);
	for (int i = 0; i < 200 && g->hits < 5; i++)
		assert_int_equal(kw_loop_run_once(LOOP, 50), 0);
	assert_int_equal(g->hits, 5);
	assert_true(kw_app_avgd_io_busy(&g->io));
	assert_int_equal(g->d.calls, 0);
	assert_file_is(g->old);   /* nothing half-written meanwhile */
	gate_open();
	run_until_done();
	assert_int_equal(g->d.op, KW_AVGD_IO_WRITE);
	assert_int_equal(g->d.err, 0);
	assert_int_equal(g->d.timer_hits_then, 5);   /* done came after every tick */
	assert_false(kw_app_avgd_io_busy(&g->io));
	assert_file_is(g->x);
	assert_int_equal(access(g->tmp, F_OK), -1);
}

static void test_avg_file_failed_write_keeps_the_old_file(void **state)
{
	(void)state;
	write_file(g->old, N);
	/* a real failure: "<path>.tmp" cannot be opened for writing */
	assert_int_equal(mkdir(g->tmp, 0700), 0);
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_WRITE), 0);
	run_until_done();
	assert_int_equal(g->d.err, -EISDIR);
	assert_file_is(g->old);
	assert_int_equal(rmdir(g->tmp), 0);
	/* an injected failure (an fsync that fails) */
	g->d.calls = 0;
	g->gt.fail = -KW_EIO;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_WRITE), 0);
	run_until_done();
	assert_int_equal(g->d.err, -KW_EIO);
	assert_file_is(g->old);
	/* the slot is free again: a good write lands */
	g->d.calls = 0;
	g->gt.fail = 0;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_WRITE), 0);
	run_until_done();
	assert_int_equal(g->d.err, 0);
	assert_file_is(g->x);
}

static void test_avg_file_read_errors_name_the_reason(void **state)
{
	float keep[N];

	(void)state;
	memcpy(keep, g->x, sizeof(keep));
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_READ), 0);
	run_until_done();
	assert_int_equal(g->d.op, KW_AVGD_IO_READ);
	assert_int_equal(g->d.err, -ENOENT);
	assert_memory_equal(g->x, keep, sizeof(keep));

	write_file(g->old, N - 1);   /* another size: x stays as it was */
	g->d.calls = 0;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_READ), 0);
	run_until_done();
	assert_int_equal(g->d.err, -KW_EINVAL);
	assert_int_equal(g->d.file_bytes, (N - 1) * 4);
	assert_memory_equal(g->x, keep, sizeof(keep));

	write_file(g->old, N);
	g->d.calls = 0;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_READ), 0);
	run_until_done();
	assert_int_equal(g->d.err, 0);
	assert_int_equal(g->d.file_bytes, N * 4);
	assert_memory_equal(g->x, g->old, sizeof(g->old));
}

static void *stopper(void *arg)
{
	(void)arg;
	kw_app_avgd_io_stop(&g->io);
	return NULL;
}

/* A stop while a write is held: it returns only after the write landed and its done ran. */
static void test_avg_file_stop_waits_for_the_write_in_flight(void **state)
{
	pthread_t th;

	(void)state;
	write_file(g->old, N);
	g->gt.hold = KW_AVGD_IO_WRITE;
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_WRITE), 0);
	gate_wait_entered();
	/* the stop runs as the loop thread would; the loop is not run meanwhile */
	assert_int_equal(pthread_create(&th, NULL, stopper, NULL), 0);
	assert_int_equal(g->d.calls, 0);
	assert_file_is(g->old);
	gate_open();
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(g->d.calls, 1);
	assert_int_equal(g->d.err, 0);
	assert_file_is(g->x);
	assert_false(kw_app_avgd_io_busy(&g->io));
	assert_int_equal(kw_app_avgd_io_submit(&g->io, KW_AVGD_IO_READ), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_avg_file_loop_runs_while_a_write_is_slow,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avg_file_failed_write_keeps_the_old_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_avg_file_read_errors_name_the_reason, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_avg_file_stop_waits_for_the_write_in_flight,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
