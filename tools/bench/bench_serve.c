/*
 * Serving figures of one LLaMA-7B-shaped block (hidden 4096, intermediate 11008, 32 heads;
 * the checkpoint bench_ml_block writes beside this binary, tools/model/model_gen.c), int8
 * against fp32 OpenBLAS side by side in one run (doc/bench.md, "Serving a block"):
 *   - one-token decode at position 128 over the KV cache: medians of wall and CPU time, and
 *     `int8/fp32 N.NNx` on one line (both over fp32 KV caches), then int8 over an fp16 KV
 *     cache against the same int8 over fp32;
 *   - the int8 weight bytes a decode streams per second against memcpy measured in the same
 *     run on the same threads right before each decode (memcpy of 256 MiB, each byte read
 *     and written once), per wall second and per CPU second of the process (the steadier
 *     figure on a shared machine);
 *   - prefill of 128 tokens in tokens per second;
 *   - sessions per MiB of KV cache (kw_kv_cache_bytes_as), fp32 and fp16 keys and values;
 *   - the latency a loopback remote call adds: an FFN expert's forward on 1 x 4096 floats
 *     called locally (kw_ffn_forward, and the serve handler without a network) against the
 *     same call through the real stack over 127.0.0.1 (app/serve.c's handler on one node,
 *     kw_hm_call from another: Noise, yamux, the unary envelope), median and p99, and an
 *     echo handler's round trip for the transport's own share; the same for one token
 *     through the 7B-shaped block's Petals rpc_forward.
 * At 1 and 2 threads (int8: kw_workers; OpenBLAS: openblas_set_num_threads). The int8 and
 * fp32 calls are interleaved so both see the same machine load.
 *
 * Usage: bench_serve [reps [calls]]   (defaults 9 and 400; the block's remote calls: calls/8+1)
 */
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_util.h"
#include "../model/model_gen.h"

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/ml/blas.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>
#include <kw/ml/tensor_msg.h>
#include <kw/ml/workers.h>
#include <kw/net/hivemind.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>
#include <kw/node.h>
#include <kw/sys.h>

#include "../../app/serve.h"

#define CTX_POS  256
#define PREFILL  128
#define CPY_LEN  ((size_t)256 << 20)

static int reps = 9;
static int ncalls = 400;
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

/* ---- loopback remote call vs local call ----------------------------------------------------- */
/*
 * Two nodes in this process, each with its own epoll (kw_sys_linux), swarm and Hivemind RPC
 * layer, connected over real TCP on 127.0.0.1 (Noise, yamux, the unary envelope). Node b
 * runs the serve handlers of app/serve.c (an FFN expert and the 7B-shaped block) and an echo
 * handler; node a calls them with kw_hm_call as `kwnode call` does. One thread pumps both
 * loops without waiting (kw_loop_run_once(.., 0)), so a remote call's time is both sides'
 * CPU in series plus the kernel's loopback, without the wake-up of a sleeping process.
 */
#define RC_HID     4096
#define RC_INTER   1024      /* small on purpose: compute noise stays out of the difference */
#define RC_BUF     (64u << 10)
#define RC_ECHO    "Bench.echo"

struct rc_side {
	struct kw_sys_linux sys;
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm *hm;
};

struct rc {
	struct rc_side a, b;
	struct kw_conn *conn;
	int dialled;
	int done, err;
	bool remote_error;
	size_t len;
};

static uint8_t rc_req[RC_BUF], rc_out[RC_BUF];

static void rc_pump(struct rc *r)
{
	kw_loop_run_once(&r->a.n->loop, 0);
	kw_loop_run_once(&r->b.n->loop, 0);
}

static void rc_side_open(struct rc_side *s, bool listen)
{
	struct kw_swarm_limits sl;
	struct kw_hm_limits hl;
	struct kw_privkey key;
	int rc;

	kw_swarm_limits_default(&sl);
	kw_hm_limits_default(&hl);
	hl.buf_bytes = RC_BUF;
	if ((rc = kw_sys_linux_open(&s->sys)))
		die("kw_sys_linux_open", rc);
	s->n = kw_node_create_heap((size_t)32 << 20, &s->sys.sys, NULL);
	if (!s->n)
		die("kw_node_create_heap", -KW_ENOMEM);
	if ((rc = kw_key_generate(KW_KEY_ED25519, 0, &key)) ||
	    (rc = kw_swarm_create(s->n, &key, &sl, &s->sw)) ||
	    (rc = kw_hm_create(s->sw, &hl, &s->hm)) ||
	    (listen && (rc = kw_swarm_listen(s->sw, "/ip4/127.0.0.1/tcp/0"))))
		die("remote-call node", rc);
}

/* Both swarms go first (their closes cross the loopback), then the nodes and epolls. */
static void rc_close(struct rc *r)
{
	kw_swarm_destroy(r->a.sw);
	kw_swarm_destroy(r->b.sw);
	for (int i = 0; i < 8; i++)
		rc_pump(r);
	kw_node_destroy_heap(r->a.n);
	kw_node_destroy_heap(r->b.n);
	kw_sys_linux_close(&r->a.sys);
	kw_sys_linux_close(&r->b.sys);
}

static void rc_on_dial(struct kw_swarm *sw, struct kw_conn *c, int e, void *user)
{
	struct rc *r = user;

	(void)sw;
	r->dialled = e ? e : 1;
	r->conn = c;
}

static void rc_on_result(const struct kw_hm_result *res, void *user)
{
	struct rc *r = user;

	r->done = 1;
	r->err = res->err;
	r->remote_error = res->remote_error;
	r->len = res->len;
}

static void rc_echo(struct kw_hm_call *call, const uint8_t *req, size_t len, void *arg)
{
	(void)arg;
	kw_hm_reply(call, req, len);
}

/* protobuf length-delimited field (ExpertRequest: uid = 1, tensors = 2) */
static size_t rc_field(uint8_t *p, unsigned field, const void *data, size_t len)
{
	size_t o = 0;

	p[o++] = (uint8_t)(field << 3 | 2);
	for (size_t v = len; ; v >>= 7) {
		p[o++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	memcpy(p + o, data, len);
	return o + len;
}

static size_t rc_tensor(uint8_t *p, const float *x, const uint32_t *shape, uint32_t ndim)
{
	static uint8_t tb[RC_BUF];
	struct kw_tensor_msg m;
	size_t n = 1, tl;
	int rc;

	for (uint32_t i = 0; i < ndim; i++)
		n *= shape[i];
	kw_tensor_msg_f32(&m, x, n, shape, ndim);
	if ((rc = kw_tensor_msg_encode(&m, tb, sizeof(tb), &tl)))
		die("kw_tensor_msg_encode", rc);
	return rc_field(p, 2, tb, tl);
}

/* One remote call of name with rc_req[0..len): wall seconds, process CPU seconds in *cpu
 * (both nodes and the kernel's loopback work); exits on any failure. */
static double rc_remote(struct rc *r, const char *name, size_t len, double *cpu)
{
	double t0 = bench_now(), c0 = cpu_now();
	int rc;

	r->done = 0;
	if ((rc = kw_hm_call(r->a.hm, r->conn, name, rc_req, len, 30000, rc_on_result, r)))
		die("kw_hm_call", rc);
	while (!r->done)
		rc_pump(r);
	t0 = bench_now() - t0;
	*cpu = cpu_now() - c0;
	if (r->err || r->remote_error)
		die(r->remote_error ? "remote call (the server raised an error)" : "remote call",
		    r->err);
	return t0;
}

/* The same handler in this process, no network (kw_serve_call): as rc_remote. */
static double rc_local(struct kw_serve *srv, const char *name, size_t len, double *cpu)
{
	double t0 = bench_now(), c0 = cpu_now();
	size_t ol;
	bool is_err;
	int rc = kw_serve_call(srv, name, rc_req, len, rc_out, sizeof(rc_out), &ol, &is_err);

	t0 = bench_now() - t0;
	*cpu = cpu_now() - c0;
	if (rc || is_err)
		die("kw_serve_call", rc ? rc : -KW_EPROTO);
	return t0;
}

static double rc_p99(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), bench_cmpd);
	return v[(n * 99 + 99) / 100 - 1];
}

static void rc_line(const char *what, double *v, double *c, int n, double *med, double *cmed)
{
	double p99;

	*med = bench_median(v, n);
	p99 = rc_p99(v, n);
	*cmed = bench_median(c, n);
	printf("remote call | %-44s median %8.3f ms, p99 %8.3f ms, cpu median %8.3f ms"
	       " (%d calls)\n", what, *med * 1e3, p99 * 1e3, *cmed * 1e3, n);
}

static void remote_calls(const struct kw_llama_w *wq, const struct kw_llama_dims *d, int n)
{
	static struct rc r;
	struct kw_serve_limits lim = { .max_rows = 1, .max_experts = 1, .slots = 1,
				       .max_blocks = 1 };
	struct kw_ffn f;
	struct kw_ffn_ctx fctx;
	struct kw_serve *srv;
	struct kw_arena wa, sa, ca;
	size_t wlen, slen = (size_t)64 << 20, clen, len_e, len_b, len_x;
	void *wmem, *smem, *cmem;
	float *w1, *w2, *b1, *b2, *lnw, *lnb, y[RC_HID];
	double *t[6], *c[6], med[6], cmed[6], junk;
	uint32_t sh2[2] = { 1, RC_HID }, sh3[3] = { 1, 1, RC_HID }, sh0[1] = { 0 };
	char addr[256];
	int rc;

	/* an int8 hivemind "ffn" expert 4096 -> 1024 -> 4096 */
	w1 = bench_alloc((size_t)RC_INTER * RC_HID * sizeof(float));
	w2 = bench_alloc((size_t)RC_INTER * RC_HID * sizeof(float));
	b1 = bench_alloc(RC_INTER * sizeof(float));
	b2 = bench_alloc(RC_HID * sizeof(float));
	lnw = bench_alloc(RC_HID * sizeof(float));
	lnb = bench_alloc(RC_HID * sizeof(float));
	for (size_t i = 0; i < (size_t)RC_INTER * RC_HID; i++) {
		w1[i] = (float)((i * 2654435761u) % 2001u) / 64000.0f - 0.015625f;
		w2[i] = (float)((i * 40503u) % 2001u) / 32000.0f - 0.03125f;
	}
	for (size_t i = 0; i < RC_INTER; i++)
		b1[i] = 0.01f * (float)(i % 7);
	for (size_t i = 0; i < RC_HID; i++) {
		b2[i] = 0.01f * (float)(i % 5);
		lnw[i] = 1.0f;
		lnb[i] = 0.0f;
	}
	wlen = 2 * kw_lin_q8_bytes(RC_INTER, RC_HID, 0) + (1 << 20);
	wmem = bench_alloc(wlen);
	kw_arena_init(&wa, wmem, wlen);
	memset(&f, 0, sizeof(f));
	f.kind = KW_FFN_GELU;
	f.hid = RC_HID;
	f.inter = RC_INTER;
	if ((rc = kw_lin_q8_from_f32(&f.up, w1, RC_INTER, RC_HID, 0, &wa)) ||
	    (rc = kw_lin_q8_from_f32(&f.down, w2, RC_HID, RC_INTER, 0, &wa)))
		die("expert weights", rc);
	f.up.bias = b1;
	f.down.bias = b2;
	f.ln_w = lnw;
	f.ln_b = lnb;
	clen = kw_ffn_ctx_bytes(RC_HID, RC_INTER, 1) + 4096;
	cmem = bench_alloc(clen);
	kw_arena_init(&ca, cmem, clen);
	if ((rc = kw_ffn_ctx_init(&fctx, NULL, NULL, RC_HID, RC_INTER, 1, &ca)))
		die("kw_ffn_ctx_init", rc);

	/* node b serves the expert, the block and the echo; node a dials it */
	smem = bench_alloc(slen);
	kw_arena_init(&sa, smem, slen);
	rc_side_open(&r.b, true);
	rc_side_open(&r.a, false);
	if ((rc = kw_serve_create(&sa, &lim, &srv)) ||
	    (rc = kw_serve_add_expert(srv, "ffn.0.0", &f, KW_COMP_NONE)) ||
	    (rc = kw_serve_set_blocks(srv, "bench-llama", 0, 1, wq, d)))
		die("kw_serve set-up", rc);
	if (kw_serve_bytes(srv) == 0 || kw_serve_bytes(srv) > kw_arena_free_bytes(&sa))
		die("kw_serve_bytes", -KW_ENOMEM);
	if ((rc = kw_serve_start(srv, NULL, r.b.hm, NULL, NULL, false)) ||
	    (rc = kw_hm_register_unary(r.b.hm, RC_ECHO, rc_echo, NULL, NULL, 0)) ||
	    (rc = kw_swarm_listen_addr(r.b.sw, 0, addr, sizeof(addr))) ||
	    (rc = kw_swarm_dial(r.a.sw, addr, rc_on_dial, &r)) < 0)
		die("remote-call set-up", rc);
	for (double t0 = bench_now(); !r.dialled && bench_now() - t0 < 10;)
		rc_pump(&r);
	if (r.dialled != 1)
		die("dial over loopback", r.dialled);

	/* the requests: 1 x 4096 float32 each way */
	len_e = rc_field(rc_req, 1, "ffn.0.0", 7);
	len_e += rc_tensor(rc_req + len_e, xin, sh2, 2);
	for (int i = 0; i < 6; i++) {
		t[i] = bench_alloc((size_t)n * sizeof(double));
		c[i] = bench_alloc((size_t)n * sizeof(double));
	}
	/* warm-up: the first calls fault pages in and open the yamux window */
	for (int i = 0; i < 8; i++) {
		rc_remote(&r, KW_SERVE_MOE_FORWARD, len_e, &junk);
		rc_remote(&r, RC_ECHO, len_e, &junk);
	}
	/* interleaved so every variant sees the same machine load */
	for (int i = 0; i < n; i++) {
		double t0 = bench_now(), c0 = cpu_now();

		if ((rc = kw_ffn_forward(&fctx, &f, xin, 1, y)))
			die("kw_ffn_forward", rc);
		t[0][i] = bench_now() - t0;
		c[0][i] = cpu_now() - c0;
		t[1][i] = rc_local(srv, KW_SERVE_MOE_FORWARD, len_e, &c[1][i]);
		t[2][i] = rc_remote(&r, KW_SERVE_MOE_FORWARD, len_e, &c[2][i]);
		t[3][i] = rc_remote(&r, RC_ECHO, len_e, &c[3][i]);
	}
	len_x = len_e;
	/* the 7B-shaped block through Petals rpc_forward: fewer calls, each is a decode */
	len_b = rc_field(rc_req, 1, "bench-llama.0", 13);
	len_b += rc_tensor(rc_req + len_b, xin, sh3, 3);
	len_b += rc_tensor(rc_req + len_b, NULL, sh0, 1);   /* DUMMY prompts */
	rc_remote(&r, KW_SERVE_PT_FORWARD, len_b, &junk);
	for (int i = 0; i < n / 8 + 1; i++) {
		t[4][i] = rc_local(srv, KW_SERVE_PT_FORWARD, len_b, &c[4][i]);
		t[5][i] = rc_remote(&r, KW_SERVE_PT_FORWARD, len_b, &c[5][i]);
	}
	printf("remote call | 1 x %d float32 in and out, loopback TCP (Noise, yamux, unary envelope),"
	       " request %zu bytes; two nodes, one thread\n", RC_HID, len_x);
	rc_line("expert ffn 4096-1024-4096, kw_ffn_forward", t[0], c[0], n, &med[0], &cmed[0]);
	rc_line("expert, serve handler local (kw_serve_call)", t[1], c[1], n, &med[1], &cmed[1]);
	rc_line("expert, remote (kw_hm_call over TCP)", t[2], c[2], n, &med[2], &cmed[2]);
	rc_line("echo handler, remote (transport alone)", t[3], c[3], n, &med[3], &cmed[3]);
	rc_line("7B block rpc_forward 1 token, local", t[4], c[4], n / 8 + 1, &med[4], &cmed[4]);
	rc_line("7B block rpc_forward 1 token, remote", t[5], c[5], n / 8 + 1, &med[5], &cmed[5]);
	printf("remote call | added latency at 4096 floats: %.3f ms (expert remote - local"
	       " kw_ffn_forward, medians; goal < 0.5 ms: %s; in CPU time %.3f ms) = request/reply"
	       " codec in the handler %.3f ms + transport %.3f ms (echo) + rest %.3f ms\n",
	       (med[2] - med[0]) * 1e3, med[2] - med[0] < 0.5e-3 ? "met" : "NOT met",
	       (cmed[2] - cmed[0]) * 1e3, (med[1] - med[0]) * 1e3, med[3] * 1e3,
	       (med[2] - med[1] - med[3]) * 1e3);
	printf("remote call | 7B block, remote - local: %.3f ms wall, %.3f ms CPU (medians of %d;"
	       " a decode's own spread is larger than the transport)\n", (med[5] - med[4]) * 1e3,
	       (cmed[5] - cmed[4]) * 1e3, n / 8 + 1);
	fflush(stdout);
	rc_close(&r);
	for (int i = 0; i < 6; i++) {
		free(t[i]);
		free(c[i]);
	}
	free(w1); free(w2); free(b1); free(b2); free(lnw); free(lnb);
	free(wmem); free(smem); free(cmem);
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
	struct run r[3];             /* int8, fp32, int8 over an fp16 KV cache */
	struct kw_arena a;
	size_t need;
	void *mem;
	double mw[64], mcpu[64], mc, mcc, dq, df, cq, cf, pq, pf, dh, ch;
	int rc;

	memset(r, 0, sizeof(r));
	if ((rc = kw_workers_init(&wk, th)))
		die("kw_workers_init", rc);
	kw_blas_set_threads((int)th);
	need = 3 * (kw_llama_ctx_bytes(d, PREFILL, CTX_POS, th) +
		    kw_kv_cache_bytes_as(KW_KV_F32, 1, CTX_POS, 1, d->kv_heads, d->head_dim));
	mem = bench_alloc(need);
	kw_arena_init(&a, mem, need);
	for (int p = 0; p < 3; p++) {
		r[p].w = p == 1 ? wf : wq;
		if ((rc = kw_llama_ctx_init(&r[p].ctx, d, NULL, &wk, PREFILL, CTX_POS, &a)) ||
		    (rc = kw_kv_cache_init_as(&r[p].kv, p == 2 ? KW_KV_F16 : KW_KV_F32, 1, CTX_POS,
					      1, d->kv_heads, d->head_dim, &a)) ||
		    (rc = kw_kv_open(&r[p].kv, 1, &r[p].s)))
			die("block context", rc);
		prefill(&r[p], 0);      /* the cache holds PREFILL positions; decode rewinds to them */
	}
	/* memcpy right before each pair of decodes: the same load for all three */
	for (int i = 0; i < reps; i++) {
		memcpy_once(&wk, &mw[i], &mcpu[i]);
		for (int p = 0; p < 3; p++)
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
	dh = bench_median(r[2].dw, r[2].nd);
	ch = bench_median(r[2].dc, r[2].nd);
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
	printf("%u thr | decode @%d int8 over an fp16 KV cache: %6.2f ms (cpu %6.2f) | fp16/fp32 KV"
	       " %.3fx (cpu %.3fx)\n", th, PREFILL, dh * 1e3, ch * 1e3, dh / dq, ch / cq);
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
	if (argc > 2)
		ncalls = atoi(argv[2]);
	if (ncalls < 8 || ncalls > 100000)
		ncalls = 400;
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
	for (int f16 = 0; f16 < 2; f16++)
		for (size_t t = 512; t <= 2048; t *= 4) {
			enum kw_kv_dtype dt = f16 ? KW_KV_F16 : KW_KV_F32;
			double one = (double)(kw_kv_cache_bytes_as(dt, 2, t, 1, d.kv_heads,
								    d.head_dim) -
					      kw_kv_cache_bytes_as(dt, 1, t, 1, d.kv_heads,
								    d.head_dim)) / 1048576.0;

			printf("KV cache (%s), %4zu tokens: %.1f MiB per session per block: %.4f "
			       "sessions per MiB (%.2f per GiB for all 32 blocks of a 7B model)%s\n",
			       f16 ? "fp16" : "fp32", t, one, 1.0 / one, 1024.0 / (32 * one),
			       dt == kw_kv_dtype_default() ? " [this build]" : "");
		}
	remote_calls(&wq, &d, ncalls);
	kw_ckpt_close(&ck);
	free(wmem);
	free(meta_mem);
	free(xin);
	free(yout);
	free(cpy_src);
	free(cpy_dst);
	return 0;
}
