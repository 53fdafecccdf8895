/*
 * Worker pool: a job is published by bumping `gen`; the caller and the workers claim its
 * chunks with a CAS on `next` (generation << 32 | chunk), and whoever completes the last
 * chunk wakes the caller if it went to sleep. Workers poll briefly, then sleep on cv_go;
 * the seq_cst counters sleepers/waiting decide whether a condition variable must be
 * signalled. Threads are created once in kw_workers_init (pthread_create allocates their
 * stacks: init only).
 */
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/ml/workers.h>

/* About 20-50 us of polling before blocking: covers back-to-back matmul calls of one
 * token without burning a core for long when the node is idle. */
#define KW_WORKERS_SPIN 4000

static inline void kw_cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Claims and runs chunks of job generation `gen` until none is left. */
static void kw_workers_drain(struct kw_workers *wk, uint32_t gen)
{
	for (;;) {
		uint64_t v = atomic_load(&wk->next);
		kw_worker_fn *fn;
		void *arg;
		unsigned n;

		if ((uint32_t)(v >> 32) != gen || (uint32_t)v >= atomic_load(&wk->nchunks))
			return;
		if (!atomic_compare_exchange_weak(&wk->next, &v, v + 1))
			continue;
		/* a claimed chunk keeps the job alive, so fn/arg/nchunks are this job's */
		fn = wk->fn;
		arg = wk->arg;
		n = wk->nchunks;
		fn(arg, (uint32_t)v, n);
		if (atomic_fetch_add(&wk->done, 1) + 1 == n && atomic_load(&wk->waiting)) {
			pthread_mutex_lock(&wk->mu);
			pthread_cond_signal(&wk->cv_done);
			pthread_mutex_unlock(&wk->mu);
		}
	}
}

static void *kw_worker_main(void *p)
{
	struct kw_workers *wk = p;
	unsigned long seen = 0;

	for (;;) {
		for (unsigned i = 0; i < KW_WORKERS_SPIN && atomic_load(&wk->gen) == seen &&
				     !atomic_load(&wk->stop); i++)
			kw_cpu_relax();
		if (atomic_load(&wk->gen) == seen && !atomic_load(&wk->stop)) {
			pthread_mutex_lock(&wk->mu);
			atomic_fetch_add(&wk->sleepers, 1);
			/* seq_cst: either run() sees sleepers > 0 and broadcasts under mu, or we
			 * see its new gen here and do not sleep */
			while (atomic_load(&wk->gen) == seen && !atomic_load(&wk->stop))
				pthread_cond_wait(&wk->cv_go, &wk->mu);
			atomic_fetch_sub(&wk->sleepers, 1);
			pthread_mutex_unlock(&wk->mu);
		}
		if (atomic_load(&wk->stop))
			return NULL;
		seen = atomic_load(&wk->gen);
		kw_workers_drain(wk, (uint32_t)seen);
	}
}

int kw_workers_init(struct kw_workers *wk, unsigned nthreads)
{
	unsigned n = nthreads;

	if (!wk)
		return -KW_EINVAL;
	memset(wk, 0, sizeof(*wk));
	if (n == 0)
		n = CONFIG_KW_ML_WORKERS;
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 0 ? (unsigned)c : 1;
	}
	if (n > KW_WORKERS_MAX)
		n = KW_WORKERS_MAX;
	wk->n = n;
	pthread_mutex_init(&wk->mu, NULL);
	pthread_cond_init(&wk->cv_go, NULL);
	pthread_cond_init(&wk->cv_done, NULL);
	for (unsigned i = 1; i < n; i++) {
		int rc;

		rc = pthread_create(&wk->th[i], NULL, kw_worker_main, wk);
		if (rc) {
			KW_LOG_ERR(ml, "worker %u of %u not started (error %d); pool stopped", i, n, rc);
			kw_workers_fini(wk);
			return -rc;
		}
		wk->started++;
	}
	return 0;
}

void kw_workers_fini(struct kw_workers *wk)
{
	if (!wk || wk->n == 0)
		return;
	pthread_mutex_lock(&wk->mu);
	atomic_store(&wk->stop, true);
	pthread_cond_broadcast(&wk->cv_go);
	pthread_mutex_unlock(&wk->mu);
	for (unsigned i = 1; i <= wk->started; i++)
		pthread_join(wk->th[i], NULL);
	pthread_cond_destroy(&wk->cv_go);
	pthread_cond_destroy(&wk->cv_done);
	pthread_mutex_destroy(&wk->mu);
	wk->n = 0;
	wk->started = 0;
}

unsigned kw_workers_count(const struct kw_workers *wk)
{
	return wk && wk->n ? wk->n : 1;
}

void kw_workers_run(struct kw_workers *wk, kw_worker_fn *fn, void *arg, unsigned nchunks)
{
	unsigned long gen;

	if (!wk || wk->n <= 1 || nchunks <= 1) {
		for (unsigned i = 0; i < nchunks; i++)
			fn(arg, i, nchunks);
		return;
	}
	/* Every chunk of the previous job is done, so no claim of it is outstanding. Close
	 * `next` first (a late worker still looking at the old job then fails its claim),
	 * then rewrite the job and open it under the new generation. */
	gen = atomic_load(&wk->gen) + 1;
	atomic_store(&wk->next, (uint64_t)(uint32_t)gen << 32 | UINT32_MAX);
	wk->fn = fn;
	wk->arg = arg;
	atomic_store(&wk->nchunks, nchunks);
	atomic_store(&wk->done, 0);
	atomic_store(&wk->next, (uint64_t)(uint32_t)gen << 32);
	atomic_store(&wk->gen, gen);
	if (atomic_load(&wk->sleepers)) {
		pthread_mutex_lock(&wk->mu);
		pthread_cond_broadcast(&wk->cv_go);
		pthread_mutex_unlock(&wk->mu);
	}

	kw_workers_drain(wk, (uint32_t)gen);

	for (unsigned i = 0; i < KW_WORKERS_SPIN && atomic_load(&wk->done) != nchunks; i++)
		kw_cpu_relax();
	if (atomic_load(&wk->done) != nchunks) {
		pthread_mutex_lock(&wk->mu);
		atomic_store(&wk->waiting, true);
		while (atomic_load(&wk->done) != nchunks)
			pthread_cond_wait(&wk->cv_done, &wk->mu);
		atomic_store(&wk->waiting, false);
		pthread_mutex_unlock(&wk->mu);
	}
}

struct kw_q8_job {
	const struct kw_kernels *kk;
	const struct kw_q8w *w;
	const struct kw_q8_act *a;
	const float *bias;
	float *y;
	size_t ldy;
};

static void kw_q8_job_run(void *p, unsigned i, unsigned n)
{
	const struct kw_q8_job *j = p;
	/* chunk boundaries on even groups: the GEMV kernels work on group pairs */
	size_t pairs = (j->w->ngroups + 1) / 2;
	size_t g0 = pairs * i / n * 2, g1 = KW_MIN(pairs * (i + 1) / n * 2, j->w->ngroups);

	if (g0 < g1)
		j->kk->q8_gemm(j->w, j->a, g0, g1, j->bias, j->y, j->ldy);
}

int kw_q8_gemm_mt(struct kw_workers *wk, const struct kw_kernels *kk, const struct kw_q8w *w,
		  const struct kw_q8_act *a, const float *bias, float *y, size_t ldy)
{
	struct kw_q8_job j = { kk, w, a, bias, y, ldy };
	size_t nchunks;

	if (!kk || !w || !a || !y || a->k != w->k || (a->m > 1 && ldy < w->n))
		return -KW_EINVAL;
	/* about four chunks per participant: enough to rebalance when one is descheduled */
	nchunks = KW_MIN((w->ngroups + 1) / 2, (size_t)kw_workers_count(wk) * 4);
	kw_workers_run(wk, kw_q8_job_run, &j, (unsigned)nchunks);
	return 0;
}
