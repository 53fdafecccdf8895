/*
 * Worker pool for the matmul kernels: threads started once at init; kw_workers_run() splits
 * a job into chunks that the calling thread and the workers claim one at a time from an
 * atomic counter, and returns when every chunk is done. A worker that is not scheduled in
 * time (a busy Pi also runs the network loop) simply claims nothing: the caller never waits
 * for a thread that has not started, only for chunks already claimed.
 * No allocation and no thread creation per call.
 * The pool is an instance the caller owns (embed it in the node/model struct); one pool
 * serves one caller at a time (kw_workers_run is not reentrant).
 */
#ifndef KW_ML_WORKERS_H
#define KW_ML_WORKERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/ml/q8.h>

#define KW_WORKERS_MAX 64

/* A job: called as fn(arg, i, n) once for each chunk i = 0 .. n-1, concurrently. */
typedef void kw_worker_fn(void *arg, unsigned i, unsigned n);

struct kw_workers {
	unsigned n;                          /* participants including the caller */
	unsigned started;                    /* threads actually created (n - 1 on success) */
	pthread_t th[KW_WORKERS_MAX];
	pthread_mutex_t mu;
	pthread_cond_t cv_go, cv_done;
	/* Jobs are published through atomics and waited for by spinning briefly, then on the
	 * condition variables (a futex wake costs tens of microseconds, as much as a whole
	 * 4096x4096 int8 GEMV share); sleepers/waiting say whether a wake-up is needed. */
	_Atomic unsigned long gen;           /* bumped per job; workers wait for a change */
	_Atomic uint64_t next;               /* job generation << 32 | next chunk to claim */
	_Atomic unsigned done;               /* chunks finished in the current job */
	_Atomic unsigned nchunks;
	_Atomic unsigned sleepers;           /* workers blocked on cv_go */
	_Atomic bool waiting;                /* the caller is blocked on cv_done */
	_Atomic bool stop;
	kw_worker_fn *fn;
	void *arg;
};

/*
 * Starts the pool. nthreads = 0 takes CONFIG_KW_ML_WORKERS, whose 0 means the number of
 * online cores; 1 creates no thread. Clamped to KW_WORKERS_MAX. -KW_EINVAL for NULL,
 * -KW_EAGAIN (or the pthread error) if a thread cannot be created (already started ones
 * are stopped again).
 */
int kw_workers_init(struct kw_workers *wk, unsigned nthreads);
/* Stops and joins the threads. Safe on a zeroed or already finished pool. */
void kw_workers_fini(struct kw_workers *wk);
/* Participants (>= 1). */
unsigned kw_workers_count(const struct kw_workers *wk);
/* Runs fn for chunks 0 .. nchunks-1 (each exactly once, on any participant) and returns
 * when all are done. nchunks = 0 does nothing; wk NULL or 1 participant runs them in order
 * on the caller. */
void kw_workers_run(struct kw_workers *wk, kw_worker_fn *fn, void *arg, unsigned nchunks);

/*
 * kw_q8_gemm split across the pool in chunks of 16-row groups of w (each chunk writes
 * disjoint output columns, so the result equals the single-thread one bit for bit). wk may be NULL
 * (runs on the caller). Same errors as kw_q8_gemm.
 */
int kw_q8_gemm_mt(struct kw_workers *wk, const struct kw_kernels *kk, const struct kw_q8w *w,
		  const struct kw_q8_act *a, const float *bias, float *y, size_t ldy);

#endif /* KW_ML_WORKERS_H */
