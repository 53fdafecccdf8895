/*
 * libFuzzer target: a served request (app/serve*.c, doc/serve.md). The first byte picks the
 * handler (MoE or Petals rpc_info / rpc_forward / rpc_backward); the rest is the ExpertRequest
 * (or ExpertUID) a caller sent. First kw_serve_req_decode alone: what decodes has its views
 * inside the input, at most KW_SERVE_TENSORS_MAX tensors and a UTF-8 uid. Then the whole
 * handler on a small server (one fp32 FFN expert "ffn.0.0" of hidden 8, and two fp32 LLaMA
 * blocks "fz.0 fz.1" of hidden 8 with deterministic weights): every request is answered
 * (a response or an error text that is a clean C string), the slot pool is back to 0, and
 * answers are finite when they are float32 NONE. Built against libkw.a.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>

#include "../../app/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define H  8
#define I  16

static struct kw_serve *srv;
static uint8_t mem[16 << 20];
static float wbuf[4096];

static void trap(void)
{
	abort();
}

static const float *wfill(size_t *at, size_t n, float scale)
{
	const float *p = wbuf + *at;

	for (size_t i = 0; i < n; i++)
		wbuf[*at + i] = scale * (float)((int)((*at + i) * 2654435761u % 2001) - 1000) / 1000.0f;
	*at += n;
	return p;
}

static int init(void)
{
	static struct kw_arena a;
	static struct kw_ffn f;
	static struct kw_llama_w w[2];
	static struct kw_llama_dims d = { H, I, 2, 1, 4, 10000.0, 1e-6 };
	struct kw_serve_limits lim = { .max_rows = 8, .max_experts = 1, .slots = 1,
				       .max_blocks = 2, .sessions = 1, .session_tokens = 8 };
	size_t at = 0;

	kw_arena_init(&a, mem, sizeof(mem));
	f.kind = KW_FFN_GELU;
	f.hid = 2;
	f.inter = 8;
	f.up = (struct kw_lin){ 8, 2, NULL, NULL, wfill(&at, 16, 0.5f), wfill(&at, 8, 0.1f) };
	f.down = (struct kw_lin){ 2, 8, NULL, NULL, wfill(&at, 16, 0.5f), wfill(&at, 2, 0.1f) };
	f.ln_w = wfill(&at, 2, 1.0f);
	f.ln_b = wfill(&at, 2, 0.1f);
	for (int b = 0; b < 2; b++) {
		w[b].q = (struct kw_lin){ 8, H, NULL, NULL, wfill(&at, 8 * H, 0.3f), NULL };
		w[b].k = (struct kw_lin){ 4, H, NULL, NULL, wfill(&at, 4 * H, 0.3f), NULL };
		w[b].v = (struct kw_lin){ 4, H, NULL, NULL, wfill(&at, 4 * H, 0.3f), NULL };
		w[b].o = (struct kw_lin){ H, 8, NULL, NULL, wfill(&at, 8 * H, 0.3f), NULL };
		w[b].gate = (struct kw_lin){ I, H, NULL, NULL, wfill(&at, I * H, 0.3f), NULL };
		w[b].up = (struct kw_lin){ I, H, NULL, NULL, wfill(&at, I * H, 0.3f), NULL };
		w[b].down = (struct kw_lin){ H, I, NULL, NULL, wfill(&at, I * H, 0.3f), NULL };
		w[b].input_norm = wfill(&at, H, 1.0f);
		w[b].post_norm = wfill(&at, H, 1.0f);
	}
	if (kw_serve_create(&a, &lim, &srv) || kw_serve_add_expert(srv, "ffn.0.0", &f, KW_COMP_NONE) ||
	    kw_serve_set_blocks(srv, "fz", 0, 2, w, &d) ||
	    kw_serve_start(srv, NULL, NULL, NULL, NULL, false))
		trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[6] = {
		KW_SERVE_MOE_INFO, KW_SERVE_MOE_FORWARD, KW_SERVE_MOE_BACKWARD,
		KW_SERVE_PT_INFO, KW_SERVE_PT_FORWARD, KW_SERVE_PT_BACKWARD,
	};
	static uint8_t out[1 << 16];
	static int ready;
	struct kw_serve_req r;
	struct kw_serve_stats st;
	size_t out_len = 0;
	bool is_error = false;
	int ret;

	if (!ready)
		ready = !init();
	if (size < 1)
		return 0;
	ret = kw_serve_req_decode(&r, data + 1, size - 1, NULL);
	if (ret == 0) {
		const uint8_t *lo = data + 1, *hi = data + size;

		if (r.n_tensors > KW_SERVE_TENSORS_MAX)
			trap();
		if (r.uid_len && ((const uint8_t *)r.uid < lo || (const uint8_t *)r.uid + r.uid_len > hi))
			trap();
		for (size_t i = 0; i < r.n_tensors; i++)
			if (r.t[i].buf_len && (r.t[i].buf < lo || r.t[i].buf + r.t[i].buf_len > hi))
				trap();
	} else if (ret != -KW_EBADMSG && ret != -KW_ELIMIT && ret != -KW_EMSGSIZE) {
		trap();
	}
	ret = kw_serve_call(srv, names[data[0] % 6], data + 1, size - 1, out, sizeof(out), &out_len,
			    &is_error);
	if (ret != 0)
		trap();   /* every request is answered, and every answer fits 64 KiB here */
	if (is_error && (memchr(out, 0, out_len) || out_len == 0))
		trap();
	kw_serve_get_stats(srv, &st);
	if (st.slots_used != 0)
		trap();
	return 0;
}
