/*
 * Deterministic LLaMA-style checkpoints in the Hugging Face layout (config.json,
 * model.safetensors or model-0000i-of-0000n.safetensors + model.safetensors.index.json,
 * tensor names as transformers' LlamaForCausalLM saves them). Used by the kw_model_write
 * tool and by the ml/model tests, which generate into the build directory at run time.
 * Host code: allocates, writes files.
 */
#ifndef KW_TOOLS_MODEL_GEN_H
#define KW_TOOLS_MODEL_GEN_H

#include <stddef.h>
#include <stdint.h>

#include <kw/ml/model.h>

struct kw_model_gen {
	uint32_t hidden, intermediate, heads, kv_heads, layers, vocab;
	uint32_t shards;             /* 1: model.safetensors alone (no index), as HF does */
	uint64_t seed;
	enum kw_st_dtype dtype;      /* of every tensor; config.json's torch_dtype follows */
	double rope_theta, rms_norm_eps;
	double lm_peak;              /* 0: lm_head random like the rest; > 0: peaked (model_gen.c) */
};

/* The small test model: hidden 64, intermediate 176, 4 heads, 2 KV heads, 2 layers,
 * vocabulary 256, 2 shards, bf16. */
void kw_model_gen_tiny(struct kw_model_gen *g, uint64_t seed);
/* One block of LLaMA-7B shape (hidden 4096, intermediate 11008, 32 heads), vocabulary 256,
 * 1 shard, bf16: for benchmarks (about 400 MiB on disk). */
void kw_model_gen_7b_block(struct kw_model_gen *g, uint64_t seed);
/* Creates dir if needed and writes the checkpoint into it. 0 or -errno / -KW_EINVAL, reason in err. */
int kw_model_gen_write(const struct kw_model_gen *g, const char *dir, char *err, size_t errcap);

/*
 * A grid of Hivemind "ffn" experts (FeedforwardBlock: hidden hid, inner 4 hid) with uids
 * ffn.<i>.<j> for i < rows, j < cols, into dir/experts.safetensors: per expert the tensors
 * "<uid>.ffn.weight" [4h, h], "<uid>.ffn.bias", "<uid>.ffn_output.weight" [h, 4h],
 * "<uid>.ffn_output.bias", "<uid>.layer_norm.weight", "<uid>.layer_norm.bias" in g->dtype,
 * values from g->seed and the name (kw_ffn_load reads them). At most 682 experts.
 */
int kw_model_gen_experts(const struct kw_model_gen *g, const char *dir, uint32_t rows,
			 uint32_t cols, uint32_t hid, char *err, size_t errcap);

#endif /* KW_TOOLS_MODEL_GEN_H */
