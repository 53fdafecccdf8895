/*
 * libFuzzer target: a checkpoint image (model.safetensors, as kw_model_write writes it for a
 * one-layer model with hidden 32, intermediate 48, 2 heads over 1 KV head) through kw_st_parse
 * and then kw_llama_q8_load of block 0 into a bounded arena, the config fixed as config.json
 * would give it. Whatever loads must have the shapes the config implies, every int8 block
 * scale finite (a weight beyond 65504 x 127 must be refused, not packed with an Inf scale),
 * and run one token forward over a KV cache without leaving its arena; every refusal has a
 * printable reason.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/half.h>
#include <kw/ml/model.h>
#include <kw/ml/q8.h>

#include "fuzz_reason.h"

static uint8_t meta_mem[1 << 18];
static uint8_t w_mem[1 << 20];
static uint8_t c_mem[1 << 20];

static void check_scales(const struct kw_q8w *w, size_t n, size_t k)
{
	if (w->n != n || w->k != k)
		__builtin_trap();
	for (size_t r = 0; r < w->n; r++)
		for (size_t b = 0; b < w->nb; b++)
			if (!isfinite(kw_fp16_to_f32(kw_q8w_get_d(w, r, b))))
				__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct kw_llama_config cfg = {
		.hidden_size = 32, .intermediate_size = 48, .num_attention_heads = 2,
		.num_key_value_heads = 1, .num_hidden_layers = 1, .vocab_size = 8, .head_dim = 16,
		.rope_theta = 10000.0, .rms_norm_eps = 1e-5, .torch_dtype = KW_ST_BF16,
	};
	struct kw_arena meta, wa, ca;
	struct kw_st_file f;
	struct kw_ckpt ck;
	struct kw_llama_q8 m;
	struct kw_llama_w w;
	struct kw_llama_dims d;
	struct kw_llama_ctx c;
	struct kw_kv_cache kv;
	struct kw_kv_session *s;
	char err[256];
	int r;

	kw_arena_init(&meta, meta_mem, sizeof(meta_mem));
	err[0] = '\0';
	if (kw_st_parse(&f, data, size, &meta, err, sizeof(err)) < 0)
		return 0;
	memset(&ck, 0, sizeof(ck));
	ck.cfg = cfg;
	ck.shard = &f;
	ck.n_shards = 1;
	kw_arena_init(&wa, w_mem, sizeof(w_mem));
	err[0] = '\0';
	r = kw_llama_q8_load(&m, &ck, 0, 1, &wa, NULL, NULL, err, sizeof(err));
	if (r < 0) {
		kw_fuzz_check_reason(err);
		return 0;
	}
	if (wa.used > wa.size || m.count != 1)
		__builtin_trap();
	check_scales(&m.blk[0].q, 32, 32);
	check_scales(&m.blk[0].k, 16, 32);
	check_scales(&m.blk[0].v, 16, 32);
	check_scales(&m.blk[0].o, 32, 32);
	check_scales(&m.blk[0].gate, 48, 32);
	check_scales(&m.blk[0].up, 48, 32);
	check_scales(&m.blk[0].down, 32, 48);
	/* one token through the block over an fp16 KV cache: must run, whatever the values */
	kw_llama_dims_from_config(&d, &cfg);
	kw_arena_init(&ca, c_mem, sizeof(c_mem));
	if (kw_llama_w_from_q8(&w, &m.blk[0], NULL) ||
	    kw_llama_ctx_init(&c, &d, NULL, NULL, 1, 4, &ca) ||
	    kw_kv_cache_init_as(&kv, KW_KV_F16, 1, 4, 1, d.kv_heads, d.head_dim, &ca) ||
	    kw_kv_open(&kv, 1, &s))
		__builtin_trap();
	{
		static float x[32], y[32];

		for (size_t i = 0; i < 32; i++)
			x[i] = (float)(i % 7) - 3.0f;
		if (kw_llama_forward(&c, &w, &kv, s, 0, x, 1, 1, 0, y) != 0)
			__builtin_trap();
	}
	return 0;
}
