/*
 * int8 (Q8) GEMV/GEMM against OpenBLAS fp32 sgemv/sgemm and memcpy bandwidth, one run, side
 * by side. Weights rotate through copies totalling >= 256 MiB per operand so every call
 * streams them from DRAM (a 17 MiB int8 matrix would otherwise sit in a large L3 and flatter
 * the int8 figures); the "hot" column repeats one copy. Each figure is the median of REPS
 * calls, the int8 and OpenBLAS calls interleaved. Thread counts: 1 and every online core (int8 via kw_workers, OpenBLAS via
 * openblas_set_num_threads, memcpy split over kw_workers).
 *
 * Usage: bench_ml_gemm [reps [shape-filter]]   (default 31 reps, every shape; the filter is a
 *        substring of the shape name, e.g. GEMV)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include <kw/ml/blas.h>
#include <kw/ml/q8.h>
#include <kw/ml/workers.h>

#define FOOTPRINT ((size_t)256 << 20)

static int reps = 31;

static uint64_t rs = 88172645463325252ull;

static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) & 0xffff) / 32768.0f - 1.0f;
}

/* ---- memcpy bandwidth ---------------------------------------------------------------------- */
struct cpy_job { char *dst; const char *src; size_t len; };

static void cpy_fn(void *p, unsigned i, unsigned n)
{
	struct cpy_job *j = p;
	size_t a = j->len * i / n, b = j->len * (i + 1) / n;

	memcpy(j->dst + a, j->src + a, b - a);
}

static double memcpy_gbs(struct kw_workers *wk, char *dst, const char *src)
{
	struct cpy_job j = { dst, src, FOOTPRINT };
	double t[5];

	for (int r = 0; r < 5; r++) {
		double t0 = bench_now();

		kw_workers_run(wk, cpy_fn, &j, kw_workers_count(wk));
		t[r] = bench_now() - t0;
	}
	return (double)FOOTPRINT / bench_median(t, 5) * 1e-9;
}

/* Read-only streaming (what a GEMV does with its weights; memcpy also writes): 16-byte GCC
 * vector adds, four independent accumulators. */
typedef uint64_t kw_v2u64 __attribute__((vector_size(16)));

struct rd_job { const char *src; size_t len; kw_v2u64 sink[KW_WORKERS_MAX]; };

static void rd_fn(void *p, unsigned i, unsigned n)
{
	struct rd_job *j = p;
	size_t a = j->len * i / n / 64 * 64, b = j->len * (i + 1) / n / 64 * 64;
	kw_v2u64 s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };

	for (const kw_v2u64 *q = (const kw_v2u64 *)(j->src + a); q < (const kw_v2u64 *)(j->src + b); q += 4) {
		s0 += q[0];
		s1 += q[1];
		s2 += q[2];
		s3 += q[3];
	}
	j->sink[i] = s0 + s1 + s2 + s3;
}

static double read_gbs(struct kw_workers *wk, const char *src)
{
	static struct rd_job j;
	double t[5];

	j.src = src;
	j.len = FOOTPRINT;
	for (int r = 0; r < 5; r++) {
		double t0 = bench_now();

		kw_workers_run(wk, rd_fn, &j, kw_workers_count(wk));
		t[r] = bench_now() - t0;
	}
	return (double)FOOTPRINT / bench_median(t, 5) * 1e-9;
}

/* The first table (enum order) whose int8 GEMM is t's: names the kernel, not the table. */
static const struct kw_kernels *gemm_owner(const struct kw_kernels *t)
{
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		const struct kw_kernels *u = kw_kernels_get((enum kw_simd)v);

		if (u && u->q8_gemm == t->q8_gemm && u->q8_quantize == t->q8_quantize)
			return u;
	}
	return t;
}

/* ---- one shape ------------------------------------------------------------------------------ */
struct shape { const char *name; size_t m, n, k; };

struct result { double q8_cold, q8_hot, blas, mc, rd; };   /* s per call; baselines GB/s */

static void run_shape(const struct shape *s, struct kw_workers *wk1, struct kw_workers *wkn,
		      unsigned ncores, char *bdst, char *bsrc, struct result res[2])
{
	const struct kw_kernels *kk = kw_kernels_best();
	size_t wsz = kw_q8w_size(s->n, s->k), fsz = s->n * s->k * sizeof(float);
	size_t nq = FOOTPRINT / wsz + 1, nf = FOOTPRINT / fsz + 1;
	size_t asz = kw_q8_act_scratch_size(s->m, s->k);
	struct kw_q8w *w = calloc(nq, sizeof(*w));
	void **wmem = calloc(nq, sizeof(void *));
	float **wf = calloc(nf, sizeof(float *));
	float *x = bench_alloc(s->m * s->k * 4), *y = bench_alloc(s->m * s->n * 4), *bias = NULL;
	void *scratch = bench_alloc(asz);
	struct kw_q8_act a;

	for (size_t i = 0; i < s->m * s->k; i++)
		x[i] = frand();
	for (size_t c = 0; c < nf; c++) {
		wf[c] = bench_alloc(fsz);
		if (c == 0)
			for (size_t i = 0; i < s->n * s->k; i++)
				wf[0][i] = frand() * 0.05f;
		else
			memcpy(wf[c], wf[0], fsz);
	}
	for (size_t c = 0; c < nq; c++) {
		wmem[c] = bench_alloc(wsz);
		if (kw_q8w_init(&w[c], s->n, s->k, wmem[c], wsz)) {
			fprintf(stderr, "kw_q8w_init failed\n");
			exit(1);
		}
		if (c == 0)
			kw_q8w_pack_f32(&w[0], wf[0], s->k);
		else
			memcpy(wmem[c], wmem[0], wsz);   /* same offsets: init aligned identically */
	}
	if (kw_q8_act_init(&a, s->m, s->k, scratch, asz)) {
		fprintf(stderr, "kw_q8_act_init failed\n");
		exit(1);
	}
	for (int th = 0; th < 2; th++) {
		struct kw_workers *wk = th ? wkn : wk1;
		double tc[256], th_[256], tb[256];
		size_t cq = 0, cf = 0;

		/* baselines right before this row: load on a shared machine drifts */
		res[th].mc = memcpy_gbs(wk, bdst, bsrc);
		res[th].rd = read_gbs(wk, bsrc);
		kw_blas_set_threads(th ? (int)ncores : 1);
		/* The three measurements alternate call by call so background load on a shared
		 * machine hits them alike; quantizing x is part of every int8 call. */
		for (int r = -2; r < reps; r++) {
			double t0 = bench_now(), t1, t2, t3;

			kw_q8_quantize(kk, x, s->k, &a);          /* cold: next weight copy */
			kw_q8_gemm_mt(wk, kk, &w[cq], &a, bias, y, s->n);
			t1 = bench_now();
			kw_q8_quantize(kk, x, s->k, &a);          /* hot: the same copy again */
			kw_q8_gemm_mt(wk, kk, &w[cq], &a, bias, y, s->n);
			t2 = bench_now();
			kw_f32_linear(x, s->k, s->m, s->k, wf[cf], s->k, s->n, bias, y, s->n);
			t3 = bench_now();
			if (r >= 0) {
				tc[r] = t1 - t0;
				th_[r] = t2 - t1;
				tb[r] = t3 - t2;
			}
			cq = (cq + 1) % nq;
			cf = (cf + 1) % nf;
		}
		res[th].q8_cold = bench_median(tc, reps);
		res[th].q8_hot = bench_median(th_, reps);
		res[th].blas = bench_median(tb, reps);
	}
	for (size_t c = 0; c < nq; c++)
		free(wmem[c]);
	for (size_t c = 0; c < nf; c++)
		free(wf[c]);
	free(w); free(wmem); free(wf); free(x); free(y); free(scratch);
}

/* Every usable kernel variant on one shape (1 thread, weights hot): the SIMD gain over ref. */
static void run_variants(size_t m, size_t n, size_t k)
{
	size_t wsz = kw_q8w_size(n, k), asz = kw_q8_act_scratch_size(m, k);
	float *wf = bench_alloc(n * k * 4), *x = bench_alloc(m * k * 4), *y = bench_alloc(m * n * 4);
	void *wm = bench_alloc(wsz), *scratch = bench_alloc(asz);
	struct kw_q8w w;
	struct kw_q8_act a;
	double t[256];

	for (size_t i = 0; i < n * k; i++)
		wf[i] = frand();
	for (size_t i = 0; i < m * k; i++)
		x[i] = frand();
	if (kw_q8w_init(&w, n, k, wm, wsz) || kw_q8_act_init(&a, m, k, scratch, asz))
		exit(1);
	kw_q8w_pack_f32(&w, wf, k);
	printf("variants %zux%zux%zu, 1 thread, weights hot:", m, k, n);
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
		const struct kw_kernels *kk = kw_kernels_get((enum kw_simd)v);
		int nr = v == KW_SIMD_REF ? 5 : reps;

		/* each int8 kernel once, under the first table that has it */
		if (!kk || gemm_owner(kk) != kk)
			continue;
		for (int r = -1; r < nr; r++) {
			double t0 = bench_now();

			kw_q8_quantize(kk, x, k, &a);
			kw_q8_gemm(kk, &w, &a, NULL, y, n);
			if (r >= 0)
				t[r] = bench_now() - t0;
		}
		printf(" %s %.1f", kk->name, 2.0 * (double)m * (double)n * (double)k / bench_median(t, nr) * 1e-9);
	}
	printf(" GOP/s\n");
	free(wf); free(x); free(y); free(wm); free(scratch);
}

int main(int argc, char **argv)
{
	static const struct shape shapes[] = {
		{ "GEMV 1x4096x4096", 1, 4096, 4096 },
		{ "GEMV 1x2048x5632", 1, 5632, 2048 },   /* TinyLlama FFN up: K=2048, N=5632 */
		{ "GEMM 16x2048x2048", 16, 2048, 2048 },
		{ "GEMM 64x2048x2048", 64, 2048, 2048 },
	};
	unsigned ncores = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	struct kw_workers wk1, wkn;
	char *bdst, *bsrc;

	if (argc > 1)
		reps = atoi(argv[1]);
	if (reps < 3 || reps > 256)
		reps = 31;
	if (kw_workers_init(&wk1, 1) || kw_workers_init(&wkn, ncores)) {
		fprintf(stderr, "worker pool failed\n");
		return 1;
	}
	bdst = bench_alloc(FOOTPRINT);
	bsrc = bench_alloc(FOOTPRINT);
	memset(bdst, 1, FOOTPRINT);
	memset(bsrc, 2, FOOTPRINT);
	printf("int8 kernel: %s; cores: %u; median of %d calls; weights rotate over >= %zu MiB;\n"
	       "memcpy and read-only stream of %zu MiB measured just before each row (median of 5)\n",
	       gemm_owner(kw_kernels_best())->name, ncores, reps, FOOTPRINT >> 20, FOOTPRINT >> 20);
	printf("shape (MxKxN)       thr | int8 ms  GOP/s  hot GOP/s  weight GB/s | memcpy GB/s  read GB/s"
	       " | %%memcpy  %%read | OpenBLAS ms  GFLOP/s | int8/BLAS\n");
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *s = &shapes[i];
		struct result res[2];
		double ops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
		double wbytes = (double)s->n * (double)s->k * (1.0 + 2.0 / 32.0);

		if (argc > 2 && !strstr(s->name, argv[2]))
			continue;
		run_shape(s, &wk1, &wkn, ncores, bdst, bsrc, res);
		for (int th = 0; th < 2; th++) {
			const struct result *r = &res[th];

			printf("%-19s %3u | %7.3f %6.1f %10.1f %12.1f | %11.1f %10.1f | %7.0f%% %5.0f%% | %11.3f %8.1f | %8.2fx\n",
			       s->name, th ? ncores : 1, r->q8_cold * 1e3, ops / r->q8_cold * 1e-9,
			       ops / r->q8_hot * 1e-9, wbytes / r->q8_cold * 1e-9, r->mc, r->rd,
			       100.0 * wbytes / r->q8_cold * 1e-9 / r->mc,
			       100.0 * wbytes / r->q8_cold * 1e-9 / r->rd, r->blas * 1e3,
			       ops / r->blas * 1e-9, r->blas / r->q8_cold);
		}
	}
	if (argc <= 2) {
		run_variants(1, 4096, 4096);
		run_variants(64, 2048, 2048);
	}
	printf("goals: GEMV int8 >= 3.5x OpenBLAS sgemv and weight GB/s >= 80%% of memcpy; "
	       "GEMM M=64 >= 2x OpenBLAS sgemm\n"
	       "(memcpy GB/s counts bytes copied, each read and written; %%read compares with a "
	       "read-only stream, the stricter limit for a GEMV)\n");
	free(bdst);
	free(bsrc);
	kw_workers_fini(&wk1);
	kw_workers_fini(&wkn);
	return 0;
}
