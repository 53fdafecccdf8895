/*
 * ml/model/config.c and ml/model/index.c: LLaMA config.json as Hugging Face checkpoints
 * ship it (TinyLlama-1.1B-Chat-v1.0 and Llama-3.1-8B files, copied verbatim except
 * whitespace) and the sharded index, with their refusals.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/model.h>

static char err[256];
static struct kw_llama_config c;
static uint8_t arena_mem[1 << 16];
static struct kw_arena arena;
static struct kw_st_index ix;

static int cfg(const char *s)
{
	err[0] = '\0';
	return kw_llama_config_parse(&c, (const uint8_t *)s, strlen(s), err, sizeof(err));
}

static int idx(const char *s)
{
	err[0] = '\0';
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	return kw_st_index_parse(&ix, (const uint8_t *)s, strlen(s), &arena, err, sizeof(err));
}

static void test_config_reads_tinyllama(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
			     "  \"attention_bias\": false,\n  \"bos_token_id\": 1,\n"
			     "  \"eos_token_id\": 2,\n  \"hidden_act\": \"silu\",\n"
			     "  \"hidden_size\": 2048,\n  \"initializer_range\": 0.02,\n"
			     "  \"intermediate_size\": 5632,\n  \"max_position_embeddings\": 2048,\n"
			     "  \"model_type\": \"llama\",\n  \"num_attention_heads\": 32,\n"
			     "  \"num_hidden_layers\": 22,\n  \"num_key_value_heads\": 4,\n"
			     "  \"pretraining_tp\": 1,\n  \"rms_norm_eps\": 1e-05,\n"
			     "  \"rope_scaling\": null,\n  \"rope_theta\": 10000.0,\n"
			     "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n"
			     "  \"transformers_version\": \"4.35.0\",\n  \"use_cache\": true,\n"
			     "  \"vocab_size\": 32000\n}\n"), 0);
	assert_int_equal(c.hidden_size, 2048);
	assert_int_equal(c.intermediate_size, 5632);
	assert_int_equal(c.num_attention_heads, 32);
	assert_int_equal(c.num_key_value_heads, 4);
	assert_int_equal(c.num_hidden_layers, 22);
	assert_int_equal(c.vocab_size, 32000);
	assert_int_equal(c.head_dim, 64);
	assert_true(c.rope_theta == 10000.0);
	assert_true(c.rms_norm_eps == 1e-5);
	assert_int_equal(c.torch_dtype, KW_ST_BF16);
}

static void test_config_skips_nested_rope_scaling(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,"
			     "\"attention_dropout\":0.0,\"bos_token_id\":128000,"
			     "\"eos_token_id\":[128001,128008,128009],\"hidden_act\":\"silu\","
			     "\"hidden_size\":4096,\"initializer_range\":0.02,"
			     "\"intermediate_size\":14336,\"max_position_embeddings\":131072,"
			     "\"mlp_bias\":false,\"model_type\":\"llama\",\"num_attention_heads\":32,"
			     "\"num_hidden_layers\":32,\"num_key_value_heads\":8,\"pretraining_tp\":1,"
			     "\"rms_norm_eps\":1e-05,\"rope_scaling\":{\"factor\":8.0,"
			     "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
			     "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
			     "\"rope_theta\":500000.0,\"tie_word_embeddings\":false,"
			     "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.43.0.dev0\","
			     "\"use_cache\":true,\"vocab_size\":128256}"), 0);
	assert_true(c.rope_theta == 500000.0);
	assert_int_equal(c.num_key_value_heads, 8);
	assert_int_equal(c.vocab_size, 128256);
}

static void test_config_defaults_kv_heads_theta_eps_dtype(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64,\"intermediate_size\":160,"
			     "\"num_attention_heads\":4,\"num_hidden_layers\":2,\"vocab_size\":256,"
			     "\"num_key_value_heads\":null}"), 0);
	assert_int_equal(c.num_key_value_heads, 4);
	assert_true(c.rope_theta == 10000.0);
	assert_true(c.rms_norm_eps == 1e-6);
	assert_int_equal(c.torch_dtype, KW_ST_F32);
	assert_int_equal(c.head_dim, 16);
}

static void test_config_accepts_newer_dtype_key(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64,\"intermediate_size\":160,"
			     "\"num_attention_heads\":4,\"num_hidden_layers\":2,\"vocab_size\":256,"
			     "\"dtype\":\"float16\"}"), 0);
	assert_int_equal(c.torch_dtype, KW_ST_F16);
}

static void test_config_refuses_missing_field(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64,\"intermediate_size\":160,"
			     "\"num_attention_heads\":4,\"vocab_size\":256}"), -KW_ECONFIG);
	assert_non_null(strstr(err, "num_hidden_layers is missing"));
}

static void test_config_refuses_kv_heads_not_dividing(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64,\"intermediate_size\":160,"
			     "\"num_attention_heads\":4,\"num_key_value_heads\":3,"
			     "\"num_hidden_layers\":2,\"vocab_size\":256}"), -KW_ECONFIG);
	assert_non_null(strstr(err, "num_key_value_heads 3"));
}

static void test_config_refuses_out_of_range_size(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":99999999999,\"intermediate_size\":160,"
			     "\"num_attention_heads\":4,\"num_hidden_layers\":2,\"vocab_size\":256}"),
			 -KW_ECONFIG);
	assert_non_null(strstr(err, "hidden_size"));
	assert_int_equal(cfg("{\"hidden_size\":0}"), -KW_ECONFIG);
}

static void test_config_refuses_float_size_and_bad_eps(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64.5}"), -KW_EBADMSG);
	assert_non_null(strstr(err, "hidden_size"));
	assert_int_equal(cfg("{\"rms_norm_eps\":-1}"), -KW_ECONFIG);
	assert_int_equal(cfg("{\"torch_dtype\":\"int8\"}"), -KW_ECONFIG);
}

static void test_config_refuses_deep_nesting(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"x\":[[[[[[[[[[1]]]]]]]]]]}"), -KW_ELIMIT);
	assert_non_null(strstr(err, "nesting"));
}

static void test_config_refuses_malformed_json(void **state)
{
	(void)state;
	assert_int_equal(cfg("{\"hidden_size\":64"), -KW_EBADMSG);
	assert_int_equal(cfg("{\"hidden_size\":64}}"), -KW_EBADMSG);
	assert_non_null(strstr(err, "config.json"));
}

static const char *const index_json =
	"{\n  \"metadata\": {\n    \"total_size\": 2200119296\n  },\n  \"weight_map\": {\n"
	"    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
	"    \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",\n"
	"    \"model.layers.0.mlp.down_proj.weight\": \"model-00001-of-00002.safetensors\",\n"
	"    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"\n  }\n}\n";

static void test_index_maps_tensors_to_shards(void **state)
{
	(void)state;
	if (CONFIG_KW_ML_MODEL_MAX_SHARDS < 2)
		skip();
	assert_int_equal(idx(index_json), 0);
	assert_int_equal(ix.total_size, 2200119296ull);
	assert_int_equal(ix.n, 4);
	assert_int_equal(ix.n_shards, 2);
	assert_string_equal(ix.shard[0], "model-00002-of-00002.safetensors");
	assert_string_equal(kw_st_index_shard(&ix, "model.embed_tokens.weight"),
			    "model-00001-of-00002.safetensors");
	assert_string_equal(kw_st_index_shard(&ix, "model.norm.weight"),
			    "model-00002-of-00002.safetensors");
	assert_null(kw_st_index_shard(&ix, "model.layers.1.mlp.down_proj.weight"));
}

static void test_index_refuses_path_in_shard_name(void **state)
{
	(void)state;
	assert_int_equal(idx("{\"weight_map\":{\"a\":\"../etc/passwd\"}}"), -KW_EBADMSG);
	assert_non_null(strstr(err, "not a plain file name"));
	assert_int_equal(idx("{\"weight_map\":{\"a\":\"..\"}}"), -KW_EBADMSG);
}

static void test_index_refuses_duplicate_tensor(void **state)
{
	(void)state;
	assert_int_equal(idx("{\"weight_map\":{\"a\":\"x.safetensors\",\"a\":\"x.safetensors\"}}"),
			 -KW_EBADMSG);
	assert_non_null(strstr(err, "'a' mapped twice"));
}

static void test_index_refuses_missing_weight_map(void **state)
{
	(void)state;
	assert_int_equal(idx("{\"metadata\":{\"total_size\":1}}"), -KW_EBADMSG);
	assert_non_null(strstr(err, "no weight_map"));
}

static void test_index_refuses_non_string_shard(void **state)
{
	(void)state;
	assert_int_equal(idx("{\"weight_map\":{\"a\":1}}"), -KW_EBADMSG);
	assert_non_null(strstr(err, "index byte"));
}

static void test_index_refuses_when_arena_is_short(void **state)
{
	(void)state;
	err[0] = '\0';
	kw_arena_init(&arena, arena_mem, 8);
	assert_int_equal(kw_st_index_parse(&ix, (const uint8_t *)index_json, strlen(index_json),
					   &arena, err, sizeof(err)), -KW_ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_reads_tinyllama),
		cmocka_unit_test(test_config_skips_nested_rope_scaling),
		cmocka_unit_test(test_config_defaults_kv_heads_theta_eps_dtype),
		cmocka_unit_test(test_config_accepts_newer_dtype_key),
		cmocka_unit_test(test_config_refuses_missing_field),
		cmocka_unit_test(test_config_refuses_kv_heads_not_dividing),
		cmocka_unit_test(test_config_refuses_out_of_range_size),
		cmocka_unit_test(test_config_refuses_float_size_and_bad_eps),
		cmocka_unit_test(test_config_refuses_deep_nesting),
		cmocka_unit_test(test_config_refuses_malformed_json),
		cmocka_unit_test(test_index_maps_tensors_to_shards),
		cmocka_unit_test(test_index_refuses_path_in_shard_name),
		cmocka_unit_test(test_index_refuses_duplicate_tensor),
		cmocka_unit_test(test_index_refuses_missing_weight_map),
		cmocka_unit_test(test_index_refuses_non_string_shard),
		cmocka_unit_test(test_index_refuses_when_arena_is_short),
	};

	return cmocka_run_group_tests_name("ml/model/files", tests, NULL, NULL);
}
