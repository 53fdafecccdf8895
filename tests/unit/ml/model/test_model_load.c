/*
 * ml/model/ckpt.c and ml/model/load.c on checkpoints written at run time by the model
 * writer (tools/model/model_gen.c) into the build directory: the directory opens as Hugging
 * Face lays it out, blocks quantize into an arena sized by kw_llama_q8_bytes, progress is
 * reported, and a loaded int8 projection times a vector matches the fp32 product of the
 * checkpoint's own values within the Q8 error bound. Refusals name the tensor.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/kernels.h>
#include <kw/ml/model.h>
#include <kw/ml/q8.h>

#include "model_gen.h"

static char base[3000];
static char dir_sharded[3100], dir_single[3100], dir_f32[3100], dir_scratch[3100];
static char err[512];
static uint8_t meta_mem[1 << 20];
static struct kw_arena meta;
static struct kw_ckpt ck;

/* The checkpoint most tests load: sharded, unless this build accepts one shard only. */
#define SHARDED_OK (CONFIG_KW_ML_MODEL_MAX_SHARDS >= 2)
#define DIR_MAIN (SHARDED_OK ? dir_sharded : dir_single)
#define NEED_SHARDS() do { if (!SHARDED_OK) skip(); } while (0)

static int gen(const char *d, uint32_t shards, enum kw_st_dtype dt)
{
	struct kw_model_gen g;

	kw_model_gen_tiny(&g, 42);
	g.shards = shards;
	g.dtype = dt;
	return kw_model_gen_write(&g, d, err, sizeof(err));
}

static int setup_all(void **state)
{
	(void)state;
	if (gen(dir_sharded, 2, KW_ST_BF16) || gen(dir_single, 1, KW_ST_BF16) ||
	    gen(dir_f32, 1, KW_ST_F32)) {
		fprintf(stderr, "model writer: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	kw_test_rm_dir(dir_sharded);
	kw_test_rm_dir(dir_single);
	kw_test_rm_dir(dir_f32);
	kw_test_rm_dir(dir_scratch);
	return 0;
}

static int open_ck(const char *d)
{
	kw_arena_init(&meta, meta_mem, sizeof(meta_mem));
	err[0] = '\0';
	return kw_ckpt_open(&ck, d, &meta, err, sizeof(err));
}

static int close_ck(void **state)
{
	(void)state;
	kw_ckpt_close(&ck);
	return 0;
}

static void test_ckpt_opens_sharded_hf_layout(void **state)
{
	char name[96];

	(void)state;
	NEED_SHARDS();
	assert_int_equal(open_ck(dir_sharded), 0);
	assert_int_equal(ck.n_shards, 2);
	assert_int_equal(ck.cfg.hidden_size, 64);
	assert_int_equal(ck.cfg.intermediate_size, 176);
	assert_int_equal(ck.cfg.num_key_value_heads, 2);
	assert_int_equal(ck.cfg.num_hidden_layers, 2);
	assert_int_equal(ck.cfg.torch_dtype, KW_ST_BF16);
	assert_int_equal(ck.ix.n, 2 * 9 + 3);
	for (int l = 0; l < 2; l++) {
		const struct kw_st_tensor *t;

		snprintf(name, sizeof(name), "model.layers.%d.self_attn.k_proj.weight", l);
		t = kw_ckpt_find(&ck, name);
		assert_non_null(t);
		assert_int_equal(t->dtype, KW_ST_BF16);
		assert_int_equal(t->shape[0], 32);
		assert_int_equal(t->shape[1], 64);
	}
	assert_non_null(kw_ckpt_find(&ck, "model.embed_tokens.weight"));
	assert_non_null(kw_ckpt_find(&ck, "lm_head.weight"));
	assert_null(kw_ckpt_find(&ck, "model.layers.2.mlp.up_proj.weight"));
}

static void test_ckpt_opens_single_file(void **state)
{
	(void)state;
	assert_int_equal(open_ck(dir_single), 0);
	assert_int_equal(ck.n_shards, 1);
	assert_int_equal(ck.ix.n, 0);
	assert_non_null(kw_ckpt_find(&ck, "model.layers.1.mlp.down_proj.weight"));
}

static void test_ckpt_same_seed_same_values_across_sharding(void **state)
{
	struct kw_ckpt one;
	uint8_t mem2[1 << 16];
	struct kw_arena a2;
	float x[64], y[64];

	(void)state;
	NEED_SHARDS();
	assert_int_equal(open_ck(dir_sharded), 0);
	kw_arena_init(&a2, mem2, sizeof(mem2));
	assert_int_equal(kw_ckpt_open(&one, dir_single, &a2, err, sizeof(err)), 0);
	assert_int_equal(kw_st_read_f32(kw_ckpt_find(&ck, "model.norm.weight"), 0, 64, x), 0);
	assert_int_equal(kw_st_read_f32(kw_ckpt_find(&one, "model.norm.weight"), 0, 64, y), 0);
	assert_memory_equal(x, y, sizeof(x));
	kw_ckpt_close(&one);
}

static void test_ckpt_refuses_index_naming_absent_tensor(void **state)
{
	char p[3300];
	FILE *f;

	(void)state;
	NEED_SHARDS();
	snprintf(dir_scratch, sizeof(dir_scratch), "%s/model-scratch-%d", base, (int)getpid());
	assert_int_equal(gen(dir_scratch, 2, KW_ST_BF16), 0);
	snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir_scratch);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("{\"weight_map\":{\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
	      "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-00002.safetensors\"}}", f);
	fclose(f);
	assert_int_equal(open_ck(dir_scratch), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'model.layers.0.mlp.up_proj.weight' is not in"));
}

static void test_ckpt_refuses_missing_shard(void **state)
{
	char p[3300];

	(void)state;
	NEED_SHARDS();
	assert_int_equal(gen(dir_scratch, 2, KW_ST_BF16), 0);
	snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir_scratch);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(open_ck(dir_scratch), -KW_ENOENT);
	assert_non_null(strstr(err, "model-00002-of-00002.safetensors"));
}

static void test_ckpt_refuses_missing_config(void **state)
{
	(void)state;
	assert_int_equal(open_ck(base), -KW_ENOENT);
	assert_non_null(strstr(err, "config.json"));
}

/* ---- quantized load ---------------------------------------------------------------------- */

static uint8_t *wmem;
static size_t wlen;
static struct kw_arena wa;
static struct kw_llama_q8 m;

static void progress(void *ctx, size_t i, size_t n, uint64_t bytes, uint64_t total)
{
	uint64_t *log = ctx;  /* [calls, last i, n, last bytes, total, monotone flag] */

	log[0]++;
	if (i != log[1] + 1 || bytes < log[3])
		log[5] = 0;
	log[1] = i;
	log[2] = n;
	log[3] = bytes;
	log[4] = total;
}

static int load_all(uint32_t first, uint32_t count, size_t arena_bytes, uint64_t *log)
{
	free(wmem);
	wlen = arena_bytes;
	wmem = malloc(wlen ? wlen : 1);
	kw_arena_init(&wa, wmem, wlen);
	err[0] = '\0';
	return kw_llama_q8_load(&m, &ck, first, count, &wa, log ? progress : NULL, log, err,
				sizeof(err));
}

static void test_load_fits_in_computed_bytes(void **state)
{
	size_t need;

	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	need = kw_llama_q8_bytes(&ck.cfg, 2);
	assert_true(need > 0);
	assert_int_equal(load_all(0, 2, need, NULL), 0);
	assert_true(wa.used <= need);
	assert_int_equal(m.count, 2);
	assert_int_equal(m.blk[1].down.n, 64);
	assert_int_equal(m.blk[1].down.k, 176);
	assert_int_equal(m.blk[0].k.n, 32);
}

static void test_load_refuses_short_arena_before_reading(void **state)
{
	size_t need;

	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	need = kw_llama_q8_bytes(&ck.cfg, 2);
	assert_int_equal(load_all(0, 2, need - 1, NULL), -KW_ENOSPC);
	assert_int_equal(wa.used, 0);
	assert_non_null(strstr(err, "blocks 0..1 need"));
}

static void test_load_refuses_range_outside_model(void **state)
{
	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	assert_int_equal(load_all(1, 2, 1 << 20, NULL), -KW_ERANGE);
	assert_non_null(strstr(err, "outside the model's 2 blocks"));
	assert_int_equal(load_all(0, 0, 1 << 20, NULL), -KW_ERANGE);
}

static void test_load_reports_progress_per_tensor(void **state)
{
	uint64_t log[6] = { 0, 0, 0, 0, 0, 1 };

	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	assert_int_equal(load_all(1, 1, kw_llama_q8_bytes(&ck.cfg, 1), log), 0);
	assert_int_equal(log[0], 9);
	assert_int_equal(log[1], 9);
	assert_int_equal(log[2], 9);
	assert_int_equal(log[5], 1);
	assert_int_equal(log[3], log[4]);
	/* bf16: 2 bytes per element of the seven projections and two norms of one block */
	assert_int_equal(log[4], 2 * (64 * 64 * 2 + 32 * 64 * 2 + 176 * 64 * 3 + 64 * 2));
}

static void test_load_keeps_norms_exact(void **state)
{
	float ref[64];

	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	assert_int_equal(load_all(0, 2, kw_llama_q8_bytes(&ck.cfg, 2), NULL), 0);
	assert_int_equal(kw_st_read_f32(kw_ckpt_find(&ck,
		"model.layers.1.post_attention_layernorm.weight"), 0, 64, ref), 0);
	assert_memory_equal(m.blk[1].post_norm, ref, sizeof(ref));
}

/*
 * y = W x through the loaded int8 weights against the fp32 product of the checkpoint's
 * values. Per output row the bound is the Q8 rounding bound: each weight is off by at most
 * half its block's fp16 scale dW, each activation by half its block's scale dx, so
 * |err| <= sum_k |x_k| dW/2 + |W_k| dx/2 + dW dx/4, plus fp32 summation slack.
 */
static void check_projection(const struct kw_q8w *w, const char *name, uint64_t seed)
{
	const struct kw_st_tensor *t = kw_ckpt_find(&ck, name);
	size_t n = w->n, k = w->k;
	float *W = malloc(n * k * 4), *x = malloc(k * 4), *y = malloc(n * 4);
	size_t sl = kw_q8_act_scratch_size(1, k);
	void *scr = aligned_alloc(KW_Q8_ALIGN, (sl + KW_Q8_ALIGN - 1) / KW_Q8_ALIGN * KW_Q8_ALIGN);
	const struct kw_kernels *kk = kw_kernels_best();
	struct kw_q8_act act;
	double worst = 0;

	assert_non_null(t);
	assert_int_equal(kw_st_read_f32(t, 0, n * k, W), 0);
	for (size_t i = 0; i < k; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((int64_t)(seed >> 33) - (1ll << 30)) / (float)(1 << 30);
	}
	assert_int_equal(kw_q8_act_init(&act, 1, k, scr, sl), 0);
	assert_int_equal(kw_q8_quantize(kk, x, k, &act), 0);
	assert_int_equal(kw_q8_gemm(kk, w, &act, NULL, y, n), 0);
	for (size_t r = 0; r < n; r++) {
		double ref = 0, bound = 0, mag = 0;

		for (size_t b = 0; b * 32 < k; b++) {
			double dw = kw_fp16_to_f32(kw_q8w_get_d(w, r, b)), xmax = 0, dx;

			for (size_t i = b * 32; i < k && i < b * 32 + 32; i++)
				xmax = fmax(xmax, fabs(x[i]));
			dx = xmax / 127.0;
			for (size_t i = b * 32; i < k && i < b * 32 + 32; i++) {
				ref += (double)W[r * k + i] * x[i];
				mag += fabs((double)W[r * k + i] * x[i]);
				bound += fabs(x[i]) * dw / 2 + fabs(W[r * k + i]) * dx / 2 + dw * dx / 4;
			}
		}
		bound = bound * 1.001 + 1e-6 * mag;
		if (fabs(y[r] - ref) > bound)
			fail_msg("%s row %zu: int8 %.7g vs fp32 %.7g, bound %.3g", name, r, y[r], ref,
				 bound);
		/* the bound is a real constraint: well under the row's magnitude */
		assert_true(bound < 0.05 * mag);
		worst = fmax(worst, fabs(y[r] - ref) / (bound > 0 ? bound : 1));
	}
	assert_true(worst <= 1.0);
	free(W);
	free(x);
	free(y);
	free(scr);
}

static void test_load_q8_projections_match_fp32_within_bound(void **state)
{
	static const char *const sfx[7] = {
		"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
		"self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
		"mlp.down_proj.weight",
	};
	char name[96];

	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	assert_int_equal(load_all(0, 2, kw_llama_q8_bytes(&ck.cfg, 2), NULL), 0);
	for (int b = 0; b < 2; b++) {
		const struct kw_q8w *w[7] = { &m.blk[b].q, &m.blk[b].k, &m.blk[b].v, &m.blk[b].o,
					      &m.blk[b].gate, &m.blk[b].up, &m.blk[b].down };

		for (int i = 0; i < 7; i++) {
			snprintf(name, sizeof(name), "model.layers.%d.%s", b, sfx[i]);
			check_projection(w[i], name, 1000u + (unsigned)(b * 7 + i));
		}
	}
}

static void test_load_refuses_shape_not_matching_config(void **state)
{
	(void)state;
	assert_int_equal(open_ck(DIR_MAIN), 0);
	ck.cfg.intermediate_size = 160;
	assert_int_equal(load_all(0, 1, kw_llama_q8_bytes(&ck.cfg, 1), NULL), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'model.layers.0.mlp.gate_proj.weight': shape is not [160, 64]"));
}

/* Writes v over element (row, col) of tensor name in the one-file fp32 checkpoint, returns
 * the value that was there (the checkpoint is closed and reopened around the write). */
static float poke_f32(const char *name, size_t row, size_t col, float v)
{
	const struct kw_st_tensor *t;
	char p[3300];
	float old;
	off_t off;
	int fd;

	assert_int_equal(open_ck(dir_f32), 0);
	t = kw_ckpt_find(&ck, name);
	assert_non_null(t);
	off = (off_t)(t->data - ck.shard[0].map) + 4 * (off_t)(row * t->shape[1] + col);
	kw_ckpt_close(&ck);
	snprintf(p, sizeof(p), "%s/model.safetensors", dir_f32);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &old, 4, off), 4);
	assert_int_equal(pwrite(fd, &v, 4, off), 4);
	close(fd);
	return old;
}

/* A weight whose 32-value block scale (|w| / 127) overflows fp16 is refused by name, as
 * kw_lin_load_st refuses it; one just inside the range loads with finite int8 values. */
static void test_load_refuses_weight_beyond_fp16_scale(void **state)
{
	const char *nm = "model.layers.1.mlp.down_proj.weight";
	const struct kw_q8w *w;
	float old, d;

	(void)state;
	old = poke_f32(nm, 3, 5, -1.0e7f);
	assert_int_equal(open_ck(dir_f32), 0);
	assert_int_equal(load_all(0, 2, kw_llama_q8_bytes(&ck.cfg, 2), NULL), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'model.layers.1.mlp.down_proj.weight': value -1e+07 at row 3 "
				    "column 5 is beyond int8's fp16 block scale range"));
	kw_ckpt_close(&ck);
	/* at the limit: the scale rounds to fp16's largest finite value */
	poke_f32(nm, 3, 5, 65504.0f * 127.0f);
	assert_int_equal(open_ck(dir_f32), 0);
	assert_int_equal(load_all(0, 2, kw_llama_q8_bytes(&ck.cfg, 2), NULL), 0);
	w = &m.blk[1].down;
	d = kw_fp16_to_f32(kw_q8w_get_d(w, 3, 0));   /* row 3, block of columns 0..31 */
	assert_true(isfinite(d));
	assert_true(d >= 65000.0f && d <= 65504.0f);
	kw_ckpt_close(&ck);
	poke_f32(nm, 3, 5, old);
}

static void test_load_refuses_non_finite_weight(void **state)
{
	const struct kw_st_tensor *t;
	char p[3300];
	float nan = NAN;
	off_t off;
	int fd;

	(void)state;
	assert_int_equal(open_ck(dir_f32), 0);
	t = kw_ckpt_find(&ck, "model.layers.1.mlp.up_proj.weight");
	assert_non_null(t);
	off = (off_t)(t->data - ck.shard[0].map) + 4 * (3 * 64 + 5);  /* row 3, column 5 */
	kw_ckpt_close(&ck);
	snprintf(p, sizeof(p), "%s/model.safetensors", dir_f32);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &nan, 4, off), 4);
	close(fd);
	assert_int_equal(open_ck(dir_f32), 0);
	assert_int_equal(load_all(0, 2, kw_llama_q8_bytes(&ck.cfg, 2), NULL), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'model.layers.1.mlp.up_proj.weight': non-finite value at row 3 column 5"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ckpt_opens_sharded_hf_layout, close_ck),
		cmocka_unit_test_teardown(test_ckpt_opens_single_file, close_ck),
		cmocka_unit_test_teardown(test_ckpt_same_seed_same_values_across_sharding, close_ck),
		cmocka_unit_test_teardown(test_ckpt_refuses_index_naming_absent_tensor, close_ck),
		cmocka_unit_test_teardown(test_ckpt_refuses_missing_shard, close_ck),
		cmocka_unit_test_teardown(test_ckpt_refuses_missing_config, close_ck),
		cmocka_unit_test_teardown(test_load_fits_in_computed_bytes, close_ck),
		cmocka_unit_test_teardown(test_load_refuses_short_arena_before_reading, close_ck),
		cmocka_unit_test_teardown(test_load_refuses_range_outside_model, close_ck),
		cmocka_unit_test_teardown(test_load_reports_progress_per_tensor, close_ck),
		cmocka_unit_test_teardown(test_load_keeps_norms_exact, close_ck),
		cmocka_unit_test_teardown(test_load_q8_projections_match_fp32_within_bound, close_ck),
		cmocka_unit_test_teardown(test_load_refuses_shape_not_matching_config, close_ck),
		cmocka_unit_test_teardown(test_load_refuses_weight_beyond_fp16_scale, close_ck),
		cmocka_unit_test_teardown(test_load_refuses_non_finite_weight, close_ck),
	};
	char a0[3000];
	int r;

	/* the checkpoints go beside the test binary, in the build directory */
	snprintf(a0, sizeof(a0), "%s", argc > 0 ? argv[0] : ".");
	snprintf(base, sizeof(base), "%s", dirname(a0));
	snprintf(dir_sharded, sizeof(dir_sharded), "%s/model-sharded-%d", base, (int)getpid());
	snprintf(dir_single, sizeof(dir_single), "%s/model-single-%d", base, (int)getpid());
	snprintf(dir_f32, sizeof(dir_f32), "%s/model-f32-%d", base, (int)getpid());
	snprintf(dir_scratch, sizeof(dir_scratch), "%s/model-scratch-%d", base, (int)getpid());
	r = cmocka_run_group_tests_name("ml/model/load", tests, setup_all, teardown_all);
	free(wmem);
	return r;
}
