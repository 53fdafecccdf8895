/*
 * Serving figures of one LLaMA-7B-shaped block (hidden 4096, intermediate 11008, 32 heads;
 * the checkpoint bench_ml_block writes beside this binary, tools/model/model_gen.c), int8
 * against fp32 OpenBLAS side by side in one run (doc/bench.md, "Serving a block"):
 *   - one-token decode at position 128 over the KV cache: medians of wall and CPU time, and
 *     `int8/fp32 N.NNx` on one line;
 *   - the int8 weight bytes a decode streams per second against memcpy measured in the same
 *     run on the same threads right before each decode (memcpy of 256 MiB, each byte read
 *     and written once), per wall second and per CPU second of the process (the steadier
 *     figure on a shared machine);
 *   - prefill of 128 tokens in tokens per second;
 *   - sessions per MiB of KV cache (from kw_kv_cache_bytes, fp32 keys and values);
 *   - the latency a loopback remote call adds: a slot for the serving code (app/), not
 *     measured here.
 * At 1 and 2 threads (int8: kw_workers; OpenBLAS: openblas_set_num_threads). The int8 and
 * fp32 calls are interleaved so both see the same machine load.
 *
 * Usage: bench_serve [reps]   (default 9)
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_util.h"
#include "../model/model_gen.h"

#include <kw/arena.h>
#include <kw/ml/blas.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>
#include <kw/ml/workers.h>

#define CTX_POS  256
#define PREFILL  128
#define CPY_LEN  ((size_t)256 << 20)

static int reps = 9;
static char err[512];
static float *xin, *yout;
static char *cpy_src, *cpy_dst;

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_serve: %s failed (%d): %s\n", what, rc, err);
	exit(1);
}

/* ---- memcpy over the same workers ----------------------------------------------------------- */
struct cpy_job { size_t len; };

static void cpy_fn(void *p, unsigned i, unsigned n)
{
	struct cpy_job *j = p;
	size_t a = j->len * i / n, b = j->len * (i + 1) / n;

	memcpy(cpy_dst + a, cpy_src + a, b - a);
}

/* One memcpy of CPY_LEN split over the pool: wall and process CPU seconds added to m. */
static void memcpy_once(struct kw_workers *wk, double *wall, double *cpu)
{
	struct cpy_job j = { CPY_LEN };
	double t0 = bench_now(), c0 = cpu_now();

	kw_workers_run(wk, cpy_fn, &j, kw_workers_count(wk));
	*wall = bench_now() - t0;
	*cpu = cpu_now() - c0;
}

/* ---- the block --------------------------------------------------------------------------- */
struct run {
	struct kw_llama_ctx ctx;
	struct kw_kv_cache kv;
	struct kw_kv_session *s;
	const struct kw_llama_w *w;
	double dw[64], dc[64], pw[64], pc[64];
	int nd, np;
};

static void decode(struct run *r)
{
	double w0 = bench_now(), c0 = cpu_now();
	int rc = kw_kv_rewind(r->s, 1, PREFILL);

	if (!rc)
		rc = kw_llama_forward(&r->ctx, r->w, &r->kv, r->s, 0, xin + PREFILL * 4096, 1, 1,
				      PREFILL, yout);
	if (rc)
		die("decode", rc);
	r->dw[r->nd] = bench_now() - w0;
	r->dc[r->nd++] = cpu_now() - c0;
}

static void prefill(struct run *r, int record)
{
	double w0 = bench_now(), c0 = cpu_now();
	int rc = kw_kv_rewind(r->s, 1, 0);

	if (!rc)
		rc = kw_llama_forward(&r->ctx, r->w, &r->kv, r->s, 0, xin, 1, PREFILL, 0, yout);
	if (rc)
		die("prefill", rc);
	if (record) {
		r->pw[r->np] = bench_now() - w0;
		r->pc[r->np++] = cpu_now() - c0;
	}
}

static void bench(const struct kw_llama_dims *d, const struct kw_llama_w *wq,
		  const struct kw_llama_w *wf, double wbytes, unsigned th)
{
	struct kw_workers wk;
	struct run r[2];
	struct kw_arena a;
	size_t need;
	void *mem;
	double mw[64], mcpu[64], mc, mcc, dq, df, cq, cf, pq, pf;
	int rc;

	memset(r, 0, sizeof(r));
	if ((rc = kw_workers_init(&wk, th)))
		die("kw_workers_init", rc);
	kw_blas_set_threads((int)th);
	need = 2 * (kw_llama_ctx_bytes(d, PREFILL, CTX_POS, th) +
		    kw_kv_cache_bytes(1, CTX_POS, 1, d->kv_heads, d->head_dim));
	mem = bench_alloc(need);
	kw_arena_init(&a, mem, need);
	for (int p = 0; p < 2; p++) {
		r[p].w = p ? wf : wq;
		if ((rc = kw_llama_ctx_init(&r[p].ctx, d, NULL, &wk, PREFILL, CTX_POS, &a)) ||
		    (rc = kw_kv_cache_init(&r[p].kv, 1, CTX_POS, 1, d->kv_heads, d->head_dim, &a)) ||
		    (rc = kw_kv_open(&r[p].kv, 1, &r[p].s)))
			die("block context", rc);
		prefill(&r[p], 0);      /* the cache holds PREFILL positions; decode rewinds to them */
	}
	/* memcpy right before each pair of decodes: the same load for all three */
	for (int i = 0; i < reps; i++) {
		memcpy_once(&wk, &mw[i], &mcpu[i]);
		for (int p = 0; p < 2; p++)
			decode(&r[p]);
	}
	for (int i = 0; i < (reps + 1) / 2; i++)
		for (int p = 0; p < 2; p++)
			prefill(&r[p], 1);
	mc = (double)CPY_LEN / bench_median(mw, reps) * 1e-9;
	mcc = (double)CPY_LEN / bench_median(mcpu, reps) * 1e-9;
	dq = bench_median(r[0].dw, r[0].nd);
	df = bench_median(r[1].dw, r[1].nd);
	cq = bench_median(r[0].dc, r[0].nd);
	cf = bench_median(r[1].dc, r[1].nd);
	pq = bench_median(r[0].pw, r[0].np);
	pf = bench_median(r[1].pw, r[1].np);
	printf("%u thr | decode @%d: int8 %6.2f ms (cpu %6.2f), fp32 %6.2f ms (cpu %6.2f) | "
	       "int8/fp32 %.2fx (cpu %.2fx)\n", th, PREFILL, dq * 1e3, cq * 1e3, df * 1e3,
	       cf * 1e3, df / dq, cf / cq);
	printf("%u thr | int8 weights %.1f MiB per token: %.1f GB/s = %.0f %% of memcpy %.1f GB/s"
	       " | per CPU second %.1f GB/s = %.0f %% of memcpy's %.1f (same run, %u thr)\n", th,
	       wbytes / 1048576.0, wbytes / dq * 1e-9, 100.0 * wbytes / dq * 1e-9 / mc, mc,
	       wbytes / cq * 1e-9, 100.0 * wbytes / cq * 1e-9 / mcc, mcc, th);
	printf("%u thr | prefill %d: int8 %.1f tok/s (cpu %.0f ms), fp32 %.1f tok/s (cpu %.0f ms)"
	       " | int8/fp32 %.2fx\n", th, PREFILL, PREFILL / pq,
	       bench_median(r[0].pc, r[0].np) * 1e3, PREFILL / pf,
	       bench_median(r[1].pc, r[1].np) * 1e3, pf / pq);
	fflush(stdout);
	kw_workers_fini(&wk);
	free(mem);
}

int main(int argc, char **argv)
{
	char a0[3000], dir[3100], cfg[3200];
	struct kw_model_gen g;
	struct kw_arena meta, wa;
	struct kw_ckpt ck;
	struct kw_llama_q8 m8;
	struct kw_llama_w wq, wf;
	struct kw_llama_dims d;
	struct stat st;
	void *meta_mem, *wmem;
	size_t wbytes;
	double qbytes = 0;
	int rc;

	if (argc > 1)
		reps = atoi(argv[1]);
	if (reps < 1 || reps > 63)
		reps = 9;
	snprintf(a0, sizeof(a0), "%s", argv[0]);
	snprintf(dir, sizeof(dir), "%s/block-7b", dirname(a0));
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	if (stat(cfg, &st)) {
		printf("writing the 7B-shaped block checkpoint to %s (once)\n", dir);
		kw_model_gen_7b_block(&g, 1);
		if ((rc = kw_model_gen_write(&g, dir, err, sizeof(err))))
			die("kw_model_gen_write", rc);
	}
	meta_mem = bench_alloc(1 << 20);
	kw_arena_init(&meta, meta_mem, 1 << 20);
	if ((rc = kw_ckpt_open(&ck, dir, &meta, err, sizeof(err))))
		die("kw_ckpt_open", rc);
	wbytes = kw_llama_q8_bytes(&ck.cfg, 1) + kw_llama_f32_bytes(&ck.cfg);
	wmem = bench_alloc(wbytes);
	kw_arena_init(&wa, wmem, wbytes);
	if ((rc = kw_llama_q8_load(&m8, &ck, 0, 1, &wa, NULL, NULL, err, sizeof(err))) ||
	    (rc = kw_llama_w_load_f32(&wf, &ck, 0, &wa, err, sizeof(err))))
		die("load", rc);
	kw_llama_w_from_q8(&wq, &m8.blk[0], NULL);
	kw_llama_dims_from_config(&d, &ck.cfg);
	{
		const struct kw_q8w *w[7] = { &m8.blk[0].q, &m8.blk[0].k, &m8.blk[0].v, &m8.blk[0].o,
					      &m8.blk[0].gate, &m8.blk[0].up, &m8.blk[0].down };

		/* the packed bytes a decode reads: quants and scales of the seven projections */
		for (int i = 0; i < 7; i++)
			qbytes += (double)w[i]->ngroups * ((w[i]->nb + 1) / 2) * KW_Q8_PAIR_BYTES;
	}
	xin = bench_alloc((PREFILL + 1) * 4096 * sizeof(float));
	yout = bench_alloc((PREFILL + 1) * 4096 * sizeof(float));
	for (size_t i = 0; i < (PREFILL + 1) * 4096; i++)
		xin[i] = (float)((i * 2654435761u) % 65536) / 32768.0f - 1.0f;
	cpy_src = bench_alloc(CPY_LEN);
	cpy_dst = bench_alloc(CPY_LEN);
	memset(cpy_src, 1, CPY_LEN);
	memset(cpy_dst, 0, CPY_LEN);
	printf("bench_serve: LLaMA-7B-shaped block (hidden %zu, intermediate %zu, %zu heads),"
	       " kernels %s, reps %d (medians)\n", d.hidden, d.inter, d.heads,
	       kw_kernels_best()->name, reps);
	printf("goals: decode int8/fp32 >= 3x; int8 weight GB/s >= 75 %% of memcpy\n");
	for (unsigned th = 1; th <= 2; th++)
		bench(&d, &wq, &wf, qbytes, th);
	/* KV cache: one more session costs one slot (kw_kv_cache_bytes for n+1 minus for n) */
	for (size_t t = 512; t <= 2048; t *= 4) {
		double one = (double)(kw_kv_cache_bytes(2, t, 1, d.kv_heads, d.head_dim) -
				      kw_kv_cache_bytes(1, t, 1, d.kv_heads, d.head_dim)) / 1048576.0;

		printf("KV cache (fp32), %4zu tokens: %.1f MiB per session per block: %.4f sessions"
		       " per MiB (%.2f per GiB for all 32 blocks of a 7B model)\n", t, one,
		       1.0 / one, 1024.0 / (32 * one));
	}
	printf("loopback remote call latency: not measured here (the serving code in app/ owns"
	       " it)\n");
	kw_ckpt_close(&ck);
	free(wmem);
	free(meta_mem);
	free(xin);
	free(yout);
	free(cpy_src);
	free(cpy_dst);
	return 0;
}
