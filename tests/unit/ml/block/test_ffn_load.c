/*
 * kw_ffn_load and kw_lin_load_st (ml/block/ffn.c, lin.c) on the expert grid the model writer
 * makes (tools/model/model_gen.c kw_model_gen_experts: 2x3 Hivemind "ffn" experts ffn.<i>.<j>,
 * hidden 64, bf16), written beside the test binary at run time. The fp32 load must hold the
 * file's values exactly (bf16 widens exactly), the int8 load must compute the same expert
 * within the int8 tolerance of test_ffn.c (4 % relative L2; measured ~0.2 %), and a missing
 * uid or a tensor of the wrong shape is refused by name.
 */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

#include "model_gen.h"

#define HID 64
#define M   4

static char dir[3100], path[3200], err[512];
static struct kw_st_file st;
static struct kw_arena meta;
static uint8_t meta_mem[1 << 18];

static double rel_l2(const float *a, const float *ref, size_t n)
{
	double e = 0, r = 0;

	for (size_t i = 0; i < n; i++) {
		e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
		r += (double)ref[i] * ref[i];
	}
	return sqrt(e / (r > 0 ? r : 1));
}

static int setup_all(void **state)
{
	struct kw_model_gen g;

	(void)state;
	kw_model_gen_tiny(&g, 3);
	if (kw_model_gen_experts(&g, dir, 2, 3, HID, err, sizeof(err)))
		goto fail;
	snprintf(path, sizeof(path), "%s/experts.safetensors", dir);
	kw_arena_init(&meta, meta_mem, sizeof(meta_mem));
	if (kw_st_open(&st, path, &meta, err, sizeof(err)))
		goto fail;
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", err);
	return -1;
}

static int teardown_all(void **state)
{
	(void)state;
	kw_st_close(&st);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_grid_holds_six_tensors_per_expert(void **s)
{
	(void)s;
	assert_int_equal(st.n, 2 * 3 * 6);
	assert_non_null(kw_st_find(&st, "ffn.1.2.ffn_output.weight"));
	assert_null(kw_st_find(&st, "ffn.2.0.ffn.weight"));
}

static void test_f32_load_holds_the_file_values_and_q8_is_within_tolerance(void **s)
{
	size_t nf = kw_ffn_load_bytes(HID, 0, 0), nq = kw_ffn_load_bytes(HID, 1, 1);
	void *mf = malloc(nf), *mq = malloc(nq), *mc = malloc(2 * kw_ffn_ctx_bytes(HID, 4 * HID, M));
	struct kw_arena af, aq, ac;
	struct kw_ffn ff, fq;
	struct kw_ffn_ctx cf, cq;
	float x[M * HID], yf[M * HID], yq[M * HID], w[4 * HID * HID];

	(void)s;
	kw_arena_init(&af, mf, nf);
	kw_arena_init(&aq, mq, nq);
	kw_arena_init(&ac, mc, 2 * kw_ffn_ctx_bytes(HID, 4 * HID, M));
	/* each in an arena of exactly kw_ffn_load_bytes */
	assert_int_equal(kw_ffn_load(&ff, &st, "ffn.1.2", 0, 0, &af, err, sizeof(err)), 0);
	assert_int_equal(kw_ffn_load(&fq, &st, "ffn.1.2", 1, 1, &aq, err, sizeof(err)), 0);
	assert_int_equal(ff.hid, HID);
	assert_int_equal(ff.inter, 4 * HID);
	assert_int_equal(kw_st_read_f32(kw_st_find(&st, "ffn.1.2.ffn.weight"), 0, 4 * HID * HID, w),
			 0);
	assert_memory_equal(w, ff.up.f32, sizeof(w));
	assert_non_null(fq.up.q8t);
	assert_int_equal(kw_ffn_ctx_init(&cf, NULL, NULL, HID, 4 * HID, M, &ac), 0);
	assert_int_equal(kw_ffn_ctx_init(&cq, NULL, NULL, HID, 4 * HID, M, &ac), 0);
	for (int i = 0; i < M * HID; i++)
		x[i] = sinf(0.37f * (float)i);
	assert_int_equal(kw_ffn_forward(&cf, &ff, x, M, yf), 0);
	assert_int_equal(kw_ffn_forward(&cq, &fq, x, M, yq), 0);
	printf("  int8 expert vs fp32: relative L2 %.4f\n", rel_l2(yq, yf, M * HID));
	assert_true(rel_l2(yq, yf, M * HID) < 0.04);
	assert_true(rel_l2(yq, yf, M * HID) > 0);
	/* backward runs on the int8 transposes */
	assert_int_equal(kw_ffn_backward(&cq, &fq, x, yf, M, yq), 0);
	free(mf);
	free(mq);
	free(mc);
}

static void test_experts_differ_from_each_other(void **s)
{
	float a[HID], b[HID];

	(void)s;
	assert_int_equal(kw_st_read_f32(kw_st_find(&st, "ffn.0.0.ffn.weight"), 0, HID, a), 0);
	assert_int_equal(kw_st_read_f32(kw_st_find(&st, "ffn.0.1.ffn.weight"), 0, HID, b), 0);
	assert_true(memcmp(a, b, sizeof(a)) != 0);
}

static void test_missing_uid_is_refused_by_name(void **s)
{
	struct kw_ffn f;
	uint8_t mem[256];
	struct kw_arena a;

	(void)s;
	kw_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(kw_ffn_load(&f, &st, "ffn.5.0", 0, 0, &a, err, sizeof(err)), -KW_ENOENT);
	assert_non_null(strstr(err, "'ffn.5.0.ffn.weight'"));
	/* a short arena is refused, naming the tensor it could not hold */
	assert_int_equal(kw_ffn_load(&f, &st, "ffn.0.0", 1, 0, &a, err, sizeof(err)), -KW_ENOSPC);
	assert_non_null(strstr(err, "ffn.0.0."));
}

static void test_lin_load_refuses_a_wrong_shape(void **s)
{
	struct kw_lin l;
	uint8_t mem[256];
	struct kw_arena a;

	(void)s;
	kw_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(kw_lin_load_st(&l, kw_st_find(&st, "ffn.0.0.ffn.weight"), NULL, HID,
					4 * HID, 0, 0, &a, err, sizeof(err)), -KW_ECORRUPT);
	assert_non_null(strstr(err, "'ffn.0.0.ffn.weight': shape is not [64, 256]"));
	assert_int_equal(a.used, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grid_holds_six_tensors_per_expert),
		cmocka_unit_test(test_f32_load_holds_the_file_values_and_q8_is_within_tolerance),
		cmocka_unit_test(test_experts_differ_from_each_other),
		cmocka_unit_test(test_missing_uid_is_refused_by_name),
		cmocka_unit_test(test_lin_load_refuses_a_wrong_shape),
	};
	char a0[3000];

	snprintf(a0, sizeof(a0), "%s", argc > 0 ? argv[0] : ".");
	snprintf(dir, sizeof(dir), "%s/experts-%d", dirname(a0), (int)getpid());
	return cmocka_run_group_tests_name("ml/block/ffn_load", tests, setup_all, teardown_all);
}
