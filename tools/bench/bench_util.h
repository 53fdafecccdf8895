/*
 * Helpers shared by the host benchmarks (tools/bench/bench_*.c): monotonic time, medians and
 * big-buffer allocation. Benchmarks are host programs, not library code, so they may allocate
 * and exit on failure.
 */
#ifndef KW_BENCH_UTIL_H
#define KW_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of v[0..n-1] (n >= 1); sorts v in place. */
static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), bench_cmpd);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * n bytes; buffers of 2 MiB or more get 2 MiB alignment and transparent huge pages, as a
 * model loader would ask for. Not zeroed. Exits with a message when memory runs out.
 */
static inline void *bench_alloc(size_t n)
{
	size_t al = n >= ((size_t)2 << 20) ? (size_t)2 << 20 : 64;
	void *p = aligned_alloc(al, (n + al - 1) & ~(al - 1));

	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(1);
	}
	if (al > 64)
		madvise(p, (n + al - 1) & ~(al - 1), MADV_HUGEPAGE);
	return p;
}

#endif
