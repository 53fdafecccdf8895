/*
 * ml/block/plan.c (what a block range costs and whether it fits a budget) and the budget
 * refusal of kw_llama_q8_load (ml/model/load.c). Shapes are the configs of real models
 * (LLaMA-7B and TinyLlama-1.1B as their config.json files give them); budgets and plans are
 * given explicitly, so the figures do not depend on the build's Kconfig, except where the
 * test is about the Kconfig default itself.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

#define MIB (1ull << 20)

static char err[512];

static void llama7b(struct kw_llama_config *c)
{
	memset(c, 0, sizeof(*c));
	c->hidden_size = 4096;
	c->intermediate_size = 11008;
	c->num_attention_heads = 32;
	c->num_key_value_heads = 32;
	c->num_hidden_layers = 32;
	c->vocab_size = 32000;
	c->head_dim = 128;
	c->rope_theta = 10000;
	c->rms_norm_eps = 1e-6;
}

static void tinyllama(struct kw_llama_config *c)
{
	llama7b(c);
	c->hidden_size = 2048;
	c->intermediate_size = 5632;
	c->num_key_value_heads = 4;
	c->num_hidden_layers = 22;
	c->head_dim = 64;
	c->rms_norm_eps = 1e-5;
}

static const struct kw_llama_plan zero2w = { 1, 512, 128, 4, 0 };

static void test_need_is_the_sum_of_the_allocations(void **s)
{
	struct kw_llama_config c;
	struct kw_llama_need n;
	struct kw_llama_dims d;

	(void)s;
	llama7b(&c);
	kw_llama_dims_from_config(&d, &c);
	assert_int_equal(kw_llama_need_bytes(&c, 2, &zero2w, &n), 0);
	assert_true(n.weights == kw_llama_q8_bytes(&c, 2));
	assert_true(n.kv == kw_kv_cache_bytes(1, 512, 2, 32, 128));
	assert_true(n.scratch == kw_llama_ctx_bytes(&d, 128, 512, 4));
	assert_true(n.total == n.weights + n.kv + n.scratch);
	/* KV: (1 session + the reorder spare) x 2 blocks x K,V x 512 tokens x 4096 elements of
	 * 4 bytes, or 2 with the fp16 cache */
	assert_true(n.kv >= 2ull * 2 * 2 * 512 * 4096 * (IS_ENABLED(CONFIG_KW_ML_BLOCK_KV_FP16) ? 2 : 4));
}

static void test_backward_adds_the_transposes(void **s)
{
	struct kw_llama_config c;
	struct kw_llama_need f, b;
	struct kw_llama_plan p = zero2w;

	(void)s;
	tinyllama(&c);
	assert_int_equal(kw_llama_need_bytes(&c, 3, &p, &f), 0);
	p.backward = 1;
	assert_int_equal(kw_llama_need_bytes(&c, 3, &p, &b), 0);
	/* the transposes hold as many int8 weights as the blocks (padding aside) */
	assert_true(b.weights > 19 * f.weights / 10 && b.weights < 21 * f.weights / 10);
	assert_true(b.kv == f.kv);
}

/* The rpizero2w figures of doc/ml-model.md: 320 MiB, 1 session of 512 tokens. */
static void test_zero2w_budget_fits_one_7b_block_and_six_tinyllama_blocks(void **s)
{
	struct kw_llama_config c;

	(void)s;
	llama7b(&c);
	assert_int_equal(kw_llama_max_blocks(&c, &zero2w, 320 * MIB), 1);
	tinyllama(&c);
	assert_int_equal(kw_llama_max_blocks(&c, &zero2w, 320 * MIB), 6);
}

static void test_fit_refuses_a_range_over_budget_and_says_what_fits(void **s)
{
	struct kw_llama_config c;

	(void)s;
	llama7b(&c);
	assert_int_equal(kw_llama_fit(&c, 4, 1, &zero2w, 320 * MIB, err, sizeof(err)), 0);
	assert_int_equal(kw_llama_fit(&c, 4, 2, &zero2w, 320 * MIB, err, sizeof(err)),
			 -KW_ENOSPC);
	printf("  %s\n", err);
	assert_non_null(strstr(err, "blocks 4..5 need"));
	assert_non_null(strstr(err, "1 session x 512 tokens"));
	assert_non_null(strstr(err, "budget is 320 MiB (CONFIG_KW_ML_MODEL_BUDGET_MIB)"));
	assert_non_null(strstr(err, "1 block of this model fits"));
}

static void test_fit_refuses_a_range_outside_the_model(void **s)
{
	struct kw_llama_config c;

	(void)s;
	tinyllama(&c);
	assert_int_equal(kw_llama_fit(&c, 20, 3, &zero2w, 1ull << 40, err, sizeof(err)),
			 -KW_ERANGE);
	assert_non_null(strstr(err, "blocks 20..22 are outside the model's 22 blocks"));
	assert_int_equal(kw_llama_fit(&c, 0, 0, &zero2w, 1ull << 40, err, sizeof(err)),
			 -KW_ERANGE);
}

static void test_plan_with_a_zero_field_is_refused(void **s)
{
	struct kw_llama_config c;
	struct kw_llama_plan p = zero2w;
	struct kw_llama_need n;

	(void)s;
	tinyllama(&c);
	p.tokens = 0;
	assert_int_equal(kw_llama_need_bytes(&c, 1, &p, &n), -KW_EINVAL);
	assert_int_equal(kw_llama_fit(&c, 0, 1, &p, 1ull << 40, err, sizeof(err)), -KW_EINVAL);
	assert_int_equal(kw_llama_max_blocks(&c, &p, 1ull << 40), 0);
}

static void test_default_plan_and_budget_come_from_kconfig(void **s)
{
	struct kw_llama_plan p;

	(void)s;
	kw_llama_plan_default(&p);
	assert_int_equal(p.sessions, CONFIG_KW_ML_BLOCK_PLAN_SESSIONS);
	assert_int_equal(p.tokens, CONFIG_KW_ML_BLOCK_PLAN_TOKENS);
	assert_true(p.max_rows >= 1 && p.max_rows <= p.tokens);
	assert_true(p.workers >= 1);
	assert_int_equal(p.backward, 0);
	assert_true(kw_llama_budget_bytes() == (uint64_t)CONFIG_KW_ML_MODEL_BUDGET_MIB * MIB);
}

/* kw_llama_q8_load checks the build's budget from the config alone, before it reads any
 * tensor or looks at the arena: four blocks of hidden 2^18 are 2.5 TiB of int8 weights,
 * above the largest budget Kconfig allows (1 TiB). */
static void test_q8_load_refuses_weights_over_the_build_budget(void **s)
{
	struct kw_ckpt ck;
	struct kw_llama_q8 m;
	struct kw_arena a;
	uint8_t mem[64];

	(void)s;
	memset(&ck, 0, sizeof(ck));
	llama7b(&ck.cfg);
	ck.cfg.hidden_size = 1u << 18;
	ck.cfg.intermediate_size = 1u << 19;
	ck.cfg.num_attention_heads = 2048;
	ck.cfg.num_key_value_heads = 2048;
	ck.cfg.head_dim = 128;
	ck.cfg.num_hidden_layers = 8;
	kw_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(kw_llama_q8_load(&m, &ck, 2, 4, &a, NULL, NULL, err, sizeof(err)),
			 -KW_ENOSPC);
	printf("  %s\n", err);
	assert_non_null(strstr(err, "blocks 2..5 need"));
	assert_non_null(strstr(err, "CONFIG_KW_ML_MODEL_BUDGET_MIB"));
	assert_int_equal(a.used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_need_is_the_sum_of_the_allocations),
		cmocka_unit_test(test_backward_adds_the_transposes),
		cmocka_unit_test(test_zero2w_budget_fits_one_7b_block_and_six_tinyllama_blocks),
		cmocka_unit_test(test_fit_refuses_a_range_over_budget_and_says_what_fits),
		cmocka_unit_test(test_fit_refuses_a_range_outside_the_model),
		cmocka_unit_test(test_plan_with_a_zero_field_is_refused),
		cmocka_unit_test(test_default_plan_and_budget_come_from_kconfig),
		cmocka_unit_test(test_q8_load_refuses_weights_over_the_build_budget),
	};

	return cmocka_run_group_tests_name("ml/block/plan", tests, NULL, NULL);
}
