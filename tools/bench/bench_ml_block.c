/*
 * The LLaMA block and the FFN experts of ml/block (doc/ml-block.md), int8 against the fp32
 * OpenBLAS path in the same run (the baseline), at 1 and 2 threads (int8 via kw_workers,
 * OpenBLAS via openblas_set_num_threads):
 *   - one LLaMA-7B-shaped block (hidden 4096, intermediate 11008, 32 heads), written by the
 *     model writer (tools/model/model_gen.c, bf16) beside this binary on first use and
 *     loaded as the node loads it (kw_llama_q8_load for int8, kw_llama_w_load_f32 for fp32):
 *     one-token decode at position 128 over the KV cache, and a 128-token prefill;
 *   - Hivemind's "ffn" expert (hid 1024, 4096 inner) and a SwiGLU expert (hid 1024, 2816
 *     inner), forward and backward w.r.t. inputs on a batch of 64 rows.
 * Each figure is the median of REPS calls (the int8 and fp32 calls interleaved), as tokens
 * (rows) per second of wall time, with CPU time (user+sys of the process) per call beside it:
 * on a shared machine the CPU time is the steadier figure.
 *
 * Usage: bench_ml_block [reps]   (default 7)
 */
#include <libgen.h>
#include <math.h>
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

static int reps = 7;
static char err[512];

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rs = 88172645463325252ull;

static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_ml_block: %s failed (%d): %s\n", what, rc, err);
	exit(1);
}

static void *arena_new(struct kw_arena *a, size_t n)
{
	void *m = bench_alloc(n);

	kw_arena_init(a, m, n);
	return m;
}

/* A measurement: median wall and median CPU seconds per call. */
struct meas { double wall[64], cpu[64]; int n; };

static void meas_add(struct meas *m, double w, double c)
{
	m->wall[m->n] = w;
	m->cpu[m->n++] = c;
}

/* ---- the 7B block --------------------------------------------------------------------------- */
struct blk_run {
	struct kw_llama_ctx ctx;
	struct kw_kv_cache kv;
	struct kw_kv_session *s;
	const struct kw_llama_w *w;
};

static float *xin, *yout;

static int decode_once(struct blk_run *r)
{
	int rc = kw_kv_rewind(r->s, 1, PREFILL);

	return rc ? rc : kw_llama_forward(&r->ctx, r->w, &r->kv, r->s, 0, xin + PREFILL * 4096,
					  1, 1, PREFILL, yout);
}

static int prefill_once(struct blk_run *r)
{
	int rc = kw_kv_rewind(r->s, 1, 0);

	return rc ? rc : kw_llama_forward(&r->ctx, r->w, &r->kv, r->s, 0, xin, 1, PREFILL, 0,
					  yout);
}

static void bench_block(const struct kw_llama_dims *d, const struct kw_llama_w *wq,
			const struct kw_llama_w *wf, unsigned th)
{
	struct kw_workers wk;
	struct blk_run run[2];
	struct kw_arena a;
	size_t need;
	void *mem;
	struct meas dec[2] = { 0 }, pre[2] = { 0 };
	const char *name[2] = { "int8", "fp32 OpenBLAS" };
	int rc;

	if ((rc = kw_workers_init(&wk, th)))
		die("kw_workers_init", rc);
	kw_blas_set_threads((int)th);
	need = 2 * (kw_llama_ctx_bytes(d, PREFILL, CTX_POS, th) +
		    kw_kv_cache_bytes(1, CTX_POS, 1, d->kv_heads, d->head_dim));
	mem = arena_new(&a, need);
	for (int p = 0; p < 2; p++) {
		run[p].w = p ? wf : wq;
		if ((rc = kw_llama_ctx_init(&run[p].ctx, d, NULL, &wk, PREFILL, CTX_POS, &a)) ||
		    (rc = kw_kv_cache_init(&run[p].kv, 1, CTX_POS, 1, d->kv_heads, d->head_dim, &a)) ||
		    (rc = kw_kv_open(&run[p].kv, 1, &run[p].s)))
			die("block context", rc);
		/* the cache holds PREFILL positions from here on; decode rewinds to them */
		if ((rc = prefill_once(&run[p])))
			die("prefill", rc);
	}
	for (int i = 0; i < reps; i++)
		for (int p = 0; p < 2; p++) {
			double w0 = bench_now(), c0 = cpu_now();

			if ((rc = decode_once(&run[p])))
				die("decode", rc);
			meas_add(&dec[p], bench_now() - w0, cpu_now() - c0);
		}
	for (int i = 0; i < (reps + 1) / 2; i++)
		for (int p = 0; p < 2; p++) {
			double w0 = bench_now(), c0 = cpu_now();

			if ((rc = prefill_once(&run[p])))
				die("prefill", rc);
			meas_add(&pre[p], bench_now() - w0, cpu_now() - c0);
		}
	for (int p = 0; p < 2; p++) {
		double dw = bench_median(dec[p].wall, dec[p].n), dc = bench_median(dec[p].cpu, dec[p].n);
		double pw = bench_median(pre[p].wall, pre[p].n), pc = bench_median(pre[p].cpu, pre[p].n);

		printf("7B block  %-14s %u thr | decode @%d: %7.2f tok/s (%6.1f ms, cpu %6.1f ms)"
		       " | prefill %d: %7.2f tok/s (%7.1f ms, cpu %7.1f ms)\n",
		       name[p], th, PREFILL, 1.0 / dw, dw * 1e3, dc * 1e3, PREFILL, PREFILL / pw,
		       pw * 1e3, pc * 1e3);
	}
	kw_workers_fini(&wk);
	free(mem);
}

/* ---- FFN experts ---------------------------------------------------------------------------- */
#define FFN_ROWS 64

static void bench_ffn(enum kw_ffn_kind kind, size_t hid, size_t inter, unsigned th)
{
	struct kw_workers wk;
	struct kw_ffn fq, ff;
	struct kw_ffn_ctx cq, cf;
	struct kw_arena a;
	float *w1 = bench_alloc(inter * hid * 4), *wg = bench_alloc(inter * hid * 4);
	float *w2 = bench_alloc(inter * hid * 4), *b1 = bench_alloc(inter * 4);
	float *b2 = bench_alloc(hid * 4), *lw = bench_alloc(hid * 4), *lb = bench_alloc(hid * 4);
	float *x = bench_alloc(FFN_ROWS * hid * 4), *gy = bench_alloc(FFN_ROWS * hid * 4);
	float *y = bench_alloc(FFN_ROWS * hid * 4);
	size_t need = 3 * kw_lin_q8_bytes(inter, hid, 1) + 2 * kw_ffn_ctx_bytes(hid, inter, FFN_ROWS);
	void *mem = arena_new(&a, need);
	struct meas m[4] = { 0 };
	int rc;

	for (size_t i = 0; i < inter * hid; i++) {
		w1[i] = frand() / sqrtf((float)hid);
		wg[i] = frand() / sqrtf((float)hid);
		w2[i] = frand() / sqrtf((float)inter);
	}
	for (size_t i = 0; i < inter; i++)
		b1[i] = 0.1f * frand();
	for (size_t i = 0; i < hid; i++) {
		b2[i] = 0.1f * frand();
		lw[i] = 1.0f;
		lb[i] = 0.0f;
	}
	for (size_t i = 0; i < FFN_ROWS * hid; i++) {
		x[i] = frand();
		gy[i] = frand();
	}
	memset(&ff, 0, sizeof(ff));
	ff.kind = kind;
	ff.hid = hid;
	ff.inter = inter;
	ff.up = (struct kw_lin){ inter, hid, NULL, NULL, w1, kind == KW_FFN_GELU ? b1 : NULL };
	ff.gate = (struct kw_lin){ inter, hid, NULL, NULL, wg, NULL };
	ff.down = (struct kw_lin){ hid, inter, NULL, NULL, w2, kind == KW_FFN_GELU ? b2 : NULL };
	ff.ln_w = lw;
	ff.ln_b = lb;
	fq = ff;
	if ((rc = kw_lin_q8_from_f32(&fq.up, w1, inter, hid, 1, &a)) ||
	    (rc = kw_lin_q8_from_f32(&fq.down, w2, hid, inter, 1, &a)) ||
	    (kind == KW_FFN_SWIGLU && (rc = kw_lin_q8_from_f32(&fq.gate, wg, inter, hid, 1, &a))))
		die("pack expert", rc);
	fq.up.bias = ff.up.bias;
	fq.down.bias = ff.down.bias;
	if ((rc = kw_workers_init(&wk, th)))
		die("kw_workers_init", rc);
	kw_blas_set_threads((int)th);
	if ((rc = kw_ffn_ctx_init(&cq, NULL, &wk, hid, inter, FFN_ROWS, &a)) ||
	    (rc = kw_ffn_ctx_init(&cf, NULL, &wk, hid, inter, FFN_ROWS, &a)))
		die("ffn context", rc);
	for (int i = 0; i < reps; i++)
		for (int k = 0; k < 4; k++) {
			double w0 = bench_now(), c0 = cpu_now();

			switch (k) {
			case 0: rc = kw_ffn_forward(&cq, &fq, x, FFN_ROWS, y); break;
			case 1: rc = kw_ffn_forward(&cf, &ff, x, FFN_ROWS, y); break;
			case 2: rc = kw_ffn_backward(&cq, &fq, x, gy, FFN_ROWS, y); break;
			default: rc = kw_ffn_backward(&cf, &ff, x, gy, FFN_ROWS, y); break;
			}
			if (rc)
				die("ffn", rc);
			meas_add(&m[k], bench_now() - w0, cpu_now() - c0);
		}
	for (int k = 0; k < 4; k++) {
		double w = bench_median(m[k].wall, m[k].n), c = bench_median(m[k].cpu, m[k].n);

		printf("%-6s expert %4zu/%-5zu %-14s %u thr | %-8s %8.0f rows/s (%6.2f ms, cpu %6.2f ms"
		       " per %d rows)\n", kind == KW_FFN_GELU ? "ffn" : "swiglu", hid, inter,
		       k % 2 ? "fp32 OpenBLAS" : "int8", th, k < 2 ? "forward" : "backward",
		       FFN_ROWS / w, w * 1e3, c * 1e3, FFN_ROWS);
	}
	kw_workers_fini(&wk);
	free(mem);
	free(w1); free(wg); free(w2); free(b1); free(b2); free(lw); free(lb);
	free(x); free(gy); free(y);
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
	double t0;
	int rc;

	if (argc > 1)
		reps = atoi(argv[1]);
	if (reps < 1 || reps > 64)
		reps = 7;
	printf("kernels: %s; reps %d (medians); machine shared: compare columns of one run\n",
	       kw_kernels_best()->name, reps);
	for (unsigned th = 1; th <= 2; th++) {
		bench_ffn(KW_FFN_GELU, 1024, 4096, th);
		bench_ffn(KW_FFN_SWIGLU, 1024, 2816, th);
	}
	fflush(stdout);

	snprintf(a0, sizeof(a0), "%s", argv[0]);
	snprintf(dir, sizeof(dir), "%s/block-7b", dirname(a0));
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	if (stat(cfg, &st)) {
		printf("writing the 7B-shaped block checkpoint to %s (once)\n", dir);
		kw_model_gen_7b_block(&g, 1);
		if ((rc = kw_model_gen_write(&g, dir, err, sizeof(err))))
			die("kw_model_gen_write", rc);
	}
	meta_mem = arena_new(&meta, 1 << 20);
	if ((rc = kw_ckpt_open(&ck, dir, &meta, err, sizeof(err))))
		die("kw_ckpt_open", rc);
	wbytes = kw_llama_q8_bytes(&ck.cfg, 1) + kw_llama_f32_bytes(&ck.cfg);
	wmem = arena_new(&wa, wbytes);
	t0 = bench_now();
	if ((rc = kw_llama_q8_load(&m8, &ck, 0, 1, &wa, NULL, NULL, err, sizeof(err))))
		die("kw_llama_q8_load", rc);
	printf("int8 load %.1f s; ", bench_now() - t0);
	t0 = bench_now();
	if ((rc = kw_llama_w_load_f32(&wf, &ck, 0, &wa, err, sizeof(err))))
		die("kw_llama_w_load_f32", rc);
	printf("fp32 load %.1f s\n", bench_now() - t0);
	kw_llama_w_from_q8(&wq, &m8.blk[0], NULL);
	kw_llama_dims_from_config(&d, &ck.cfg);
	printf("block scratch (kw_llama_ctx_bytes) for 128 rows and 2048 positions, 2 workers:"
	       " %.1f MiB\n", (double)kw_llama_ctx_bytes(&d, 128, 2048, 2) / (1 << 20));
	xin = bench_alloc((PREFILL + 1) * 4096 * sizeof(float));
	yout = bench_alloc((PREFILL + 1) * 4096 * sizeof(float));
	for (size_t i = 0; i < (PREFILL + 1) * 4096; i++)
		xin[i] = frand();
	for (unsigned th = 1; th <= 2; th++)
		bench_block(&d, &wq, &wf, th);
	kw_ckpt_close(&ck);
	free(wmem);
	free(meta_mem);
	free(xin);
	free(yout);
	return 0;
}
