/*
 * Model loading for serving (ml/model/, doc/ml-model.md): safetensors files as Hugging Face
 * writes them (https://github.com/huggingface/safetensors, format described in its
 * README.md: 8-byte little-endian header length, a JSON header mapping tensor names to
 * {dtype, shape, data_offsets}, then the data), the sharded checkpoint index
 * (model.safetensors.index.json, transformers' modeling_utils.py), a LLaMA config.json
 * (transformers' LlamaConfig), and the load that quantizes a block range into the int8
 * Q8_0-style layout of <kw/ml/q8.h>.
 *
 * Memory: every parser takes a struct kw_arena and carves what it keeps from it (tensor
 * tables, names); nothing is allocated on the heap. Files are mmap'd read-only and stay
 * mapped until kw_st_close. Errors are -KW_E* codes with a reason in the caller's err
 * buffer that names the tensor or key and the problem.
 */
#ifndef KW_ML_MODEL_H
#define KW_ML_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/ml/q8.h>

#define KW_ST_MAX_DIMS   8
#define KW_ST_JSON_DEPTH 8     /* nesting of the header JSON, counting the top object */

enum kw_st_dtype {
	KW_ST_F32 = 1,
	KW_ST_F16,
	KW_ST_BF16,
};

struct kw_st_tensor {
	const char *name;                /* NUL-terminated, in the arena */
	enum kw_st_dtype dtype;
	unsigned ndim;
	uint64_t shape[KW_ST_MAX_DIMS];
	uint64_t nelem;                  /* product of shape (1 for a scalar) */
	uint64_t begin, end;             /* data_offsets, relative to the data region */
	const uint8_t *data;             /* data region + begin (not aligned: read with memcpy) */
};

struct kw_st_file {
	const uint8_t *map;              /* whole file (mmap'd by kw_st_open, borrowed by kw_st_parse) */
	size_t map_len;
	uint64_t header_len;
	const uint8_t *data;             /* map + 8 + header_len */
	uint64_t data_len;
	struct kw_st_tensor *t;          /* n tensors in the arena, sorted by name */
	size_t n;
	int mapped;                      /* 1 when kw_st_close must munmap */
};

/* Bytes of one element of a dtype (4 or 2). */
size_t kw_st_dtype_size(enum kw_st_dtype d);
const char *kw_st_dtype_name(enum kw_st_dtype d);

/*
 * Parses a whole safetensors image buf/len (borrowed: it must outlive f). The tensor table
 * (sizeof(struct kw_st_tensor) per tensor) and the names come from arena a; a parse that
 * runs out returns -KW_ENOMEM, and a failed parse leaves in the arena what it took.
 * Refuses: a header length beyond the file or CONFIG_KW_ML_MODEL_MAX_HEADER_KIB, a header
 * that is not one JSON object (or nests deeper than KW_ST_JSON_DEPTH), more tensors than
 * CONFIG_KW_ML_MODEL_MAX_TENSORS, names longer than CONFIG_KW_ML_MODEL_MAX_NAME, duplicate
 * names, a dtype other than F32/F16/BF16 (-KW_ENOTSUP, named), more than KW_ST_MAX_DIMS
 * dims, data_offsets whose length differs from dtype x shape, and ranges that leave a
 * hole, overlap, or do not end exactly at the end of the file (as upstream's validation).
 * "__metadata__" must map strings to strings and is otherwise ignored.
 * Returns 0, -KW_EBADMSG (malformed), -KW_ELIMIT (a limit), -KW_ENOTSUP (dtype),
 * -KW_ECORRUPT (offsets or sizes), -KW_ENOMEM (arena).
 */
int kw_st_parse(struct kw_st_file *f, const uint8_t *buf, size_t len, struct kw_arena *a,
		char *err, size_t errcap);
/* Opens and mmaps path read-only, then kw_st_parse. -errno from open/fstat/mmap. */
int kw_st_open(struct kw_st_file *f, const char *path, struct kw_arena *a,
	       char *err, size_t errcap);
/* Unmaps a file from kw_st_open (no-op for kw_st_parse); the arena memory stays the caller's. */
void kw_st_close(struct kw_st_file *f);
/* The tensor named name, NULL when absent (binary search). */
const struct kw_st_tensor *kw_st_find(const struct kw_st_file *f, const char *name);
/* Converts elements [first, first + n) of t to fp32 into dst. -KW_ERANGE past the end. */
int kw_st_read_f32(const struct kw_st_tensor *t, uint64_t first, size_t n, float *dst);

/* ---- files: read-only mappings ---------------------------------------------------------- */
/* Maps path read-only (a regular file of at least 1 byte); -errno or -KW_EBADMSG, reason in err. */
int kw_model_map(const char *path, const uint8_t **map, size_t *len, char *err, size_t errcap);
void kw_model_unmap(const uint8_t *map, size_t len);

/* ---- the sharded index (model.safetensors.index.json) ------------------------------------ */
/*
 * {"metadata": {"total_size": N, ...}, "weight_map": {"tensor name": "shard file", ...}} as
 * transformers' save_pretrained writes it; other keys are ignored. Shard names are file
 * names in the checkpoint directory: a name holding '/' or '\\', or "." / "..", is refused.
 */
struct kw_st_index_entry {
	const char *name;                /* tensor name, in the arena */
	unsigned shard;                  /* index into shard[] */
};

struct kw_st_index {
	uint64_t total_size;             /* metadata.total_size, 0 when absent */
	const char **shard;              /* n_shards distinct file names, in first-seen order */
	size_t n_shards;
	struct kw_st_index_entry *e;     /* n entries sorted by name */
	size_t n;
};

/* Parses buf/len; tables and names from the arena. At most CONFIG_KW_ML_MODEL_MAX_TENSORS
 * entries and CONFIG_KW_ML_MODEL_MAX_SHARDS shards. -KW_EBADMSG, -KW_ELIMIT, -KW_ENOMEM. */
int kw_st_index_parse(struct kw_st_index *ix, const uint8_t *buf, size_t len,
		      struct kw_arena *a, char *err, size_t errcap);
/* The shard file of a tensor, NULL when the index does not name it. */
const char *kw_st_index_shard(const struct kw_st_index *ix, const char *name);

/* ---- LLaMA config.json ------------------------------------------------------------------- */
/*
 * The fields of transformers' LlamaConfig that shape the weights, read as Hugging Face
 * writes config.json; every other key is skipped (nesting bounded by KW_ST_JSON_DEPTH).
 * Defaults as LlamaConfig: num_key_value_heads = num_attention_heads, rope_theta = 10000,
 * rms_norm_eps = 1e-6, head_dim = hidden_size / num_attention_heads. "torch_dtype" (or
 * "dtype", the newer spelling) is "float32", "float16" or "bfloat16"; absent means float32.
 */
struct kw_llama_config {
	uint32_t hidden_size;
	uint32_t intermediate_size;
	uint32_t num_attention_heads;
	uint32_t num_key_value_heads;
	uint32_t num_hidden_layers;
	uint32_t vocab_size;
	uint32_t head_dim;
	double rope_theta;
	double rms_norm_eps;
	enum kw_st_dtype torch_dtype;
};

#define KW_LLAMA_MAX_DIM (1u << 24)  /* bound on every size field */

/* Parses buf/len. Required: hidden_size, intermediate_size, num_attention_heads,
 * num_hidden_layers, vocab_size (each 1..KW_LLAMA_MAX_DIM). Refuses heads not dividing
 * into KV heads, a head_dim x heads that differs from hidden_size unless head_dim is
 * given, non-positive rope_theta or rms_norm_eps. -KW_EBADMSG or -KW_ECONFIG, reason in err. */
int kw_llama_config_parse(struct kw_llama_config *c, const uint8_t *buf, size_t len,
			  char *err, size_t errcap);
/* kw_llama_config_parse on the file at path (mapped, read, unmapped). */
int kw_llama_config_load(struct kw_llama_config *c, const char *path, char *err, size_t errcap);

/* ---- a checkpoint directory ------------------------------------------------------------- */
/*
 * A Hugging Face checkpoint directory as save_pretrained leaves it: config.json and either
 * model.safetensors alone or model.safetensors.index.json with the shards it names. Every
 * shard is mapped and parsed at open; every tensor the index names must be in its shard.
 * Tables come from the arena (about 200 bytes per tensor); the mappings stay until close.
 */
struct kw_ckpt {
	struct kw_llama_config cfg;
	struct kw_st_index ix;           /* n == 0 for a single model.safetensors */
	struct kw_st_file *shard;        /* ix.n_shards files, or one */
	size_t n_shards;
};

int kw_ckpt_open(struct kw_ckpt *c, const char *dir, struct kw_arena *a, char *err, size_t errcap);
void kw_ckpt_close(struct kw_ckpt *c);
/* A tensor by its Hugging Face name, NULL when the checkpoint has none. */
const struct kw_st_tensor *kw_ckpt_find(const struct kw_ckpt *c, const char *name);

/* ---- LLaMA blocks quantized at load ------------------------------------------------------ */
/* One decoder block in int8 (the seven projections, PyTorch Linear layout: n rows of k) and
 * its two RMSNorm weight vectors in fp32. */
struct kw_llama_block_q8 {
	struct kw_q8w q, k, v, o;        /* self_attn.{q,k,v,o}_proj */
	struct kw_q8w gate, up, down;    /* mlp.{gate,up,down}_proj */
	float *input_norm;               /* input_layernorm.weight, hidden floats */
	float *post_norm;                /* post_attention_layernorm.weight */
};

struct kw_llama_q8 {
	struct kw_llama_config cfg;
	uint32_t first, count;           /* blocks first .. first + count - 1 of the model */
	struct kw_llama_block_q8 *blk;   /* count entries, in the weight arena */
};

/* Progress of a load: tensor i (1-based) of n is done, bytes of the checkpoint read so far
 * of total. Called on the loading thread after each tensor. */
typedef void (*kw_model_progress_fn)(void *ctx, size_t i, size_t n, uint64_t bytes,
				     uint64_t total);

/* Bytes kw_llama_q8_load takes from its arena for count blocks of config c, including the
 * conversion scratch and alignment slack; 0 on overflow. Size the arena with this once. */
size_t kw_llama_q8_bytes(const struct kw_llama_config *c, uint32_t count);
/*
 * Quantizes blocks [first, first + count) of the checkpoint into arena a (which must have
 * kw_llama_q8_bytes free: otherwise -KW_ENOSPC before anything is read, with both figures
 * in err). Each projection must exist with shape [n, k] as the config implies (any of the
 * three dtypes) and hold only finite values. The weights do not refer to the checkpoint's
 * mappings afterwards: the checkpoint may be closed. -KW_ERANGE for a block range outside
 * the model, -KW_ENOENT for a missing tensor, -KW_ECORRUPT for a wrong shape or a non-finite
 * value; the reason names the tensor.
 */
int kw_llama_q8_load(struct kw_llama_q8 *m, const struct kw_ckpt *ck, uint32_t first,
		     uint32_t count, struct kw_arena *a, kw_model_progress_fn progress,
		     void *ctx, char *err, size_t errcap);

#endif /* KW_ML_MODEL_H */
