/*
 * Transformer compute for serving (ml/block/, doc/ml-block.md): linear layers that are int8
 * (<kw/ml/q8.h>, threaded through <kw/ml/workers.h>) or fp32 (OpenBLAS, <kw/ml/blas.h>),
 * Hivemind's "ffn" expert and a SwiGLU expert (forward, and backward with respect to the
 * inputs), a LLaMA decoder block (forward over a per-session KV cache, backward with respect
 * to the inputs by full-sequence recompute) and the KV cache itself.
 *
 * Memory: every scratch buffer comes from a struct kw_arena at init, sized once from the
 * shapes and the row/token limits given there; forward and backward calls never allocate.
 * Weights are borrowed (the loader's arena, a test's buffers) and must outlive the contexts.
 * Contexts are not thread-safe: one caller at a time (the worker pool is not reentrant).
 *
 * Upstream definitions followed (cited per function below):
 *   hivemind/moe/server/layers/common.py at commit 4bd43b7 (FeedforwardBlock, gelu_fast);
 *   transformers 4.43.1 (the version Petals 2.3 pins) models/llama/modeling_llama.py
 *   (LlamaRMSNorm, LlamaRotaryEmbedding, rotate_half, apply_rotary_pos_emb, repeat_kv,
 *   LlamaMLP, LlamaAttention, LlamaDecoderLayer);
 *   petals src/petals/server/backend.py and server.py (cache layout, hypo_ids reorder,
 *   cache_tokens_left).
 */
#ifndef KW_ML_BLOCK_H
#define KW_ML_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include <kw/arena.h>
#include <kw/ml/kernels.h>
#include <kw/ml/model.h>
#include <kw/ml/q8.h>
#include <kw/ml/workers.h>

/* ---- linear layers: y = x W^T (+ bias), W n x k as a PyTorch Linear weight -------------- */
/*
 * Exactly one of q8 / f32 is set. q8t is W^T (k rows of n) packed a second time for the
 * backward product gx = gy W: int8 keeps no transposed kernel, so a layer that must run
 * backward costs its weight memory twice (2 x 1.0625 bytes per weight). f32 layers need no
 * copy (OpenBLAS reads W transposed). Everything is borrowed.
 */
struct kw_lin {
	size_t n, k;
	const struct kw_q8w *q8;         /* W, int8, or NULL */
	const struct kw_q8w *q8t;        /* W^T, int8, or NULL (forward-only layer) */
	const float *f32;                /* W row-major n x k, or NULL */
	const float *bias;               /* n floats or NULL */
};

/* What runs a layer: the kernel table, the worker pool (NULL: the calling thread) and the
 * quantized-activation scratch (carved by kw_exec_init for up to KW_Q8_MAX_M rows of kmax). */
struct kw_exec {
	const struct kw_kernels *kk;
	struct kw_workers *wk;
	void *act;
	size_t act_len;
};

/* Arena bytes kw_exec_init takes for inputs of at most kmax values (0 on overflow). */
size_t kw_exec_bytes(size_t kmax);
/* kk NULL means kw_kernels_best(). -KW_ENOMEM when the arena is short. */
int kw_exec_init(struct kw_exec *ex, const struct kw_kernels *kk, struct kw_workers *wk,
		 size_t kmax, struct kw_arena *a);

/* y[m][n] = x[m][k] W^T + bias (rows contiguous). Any m (split in chunks of KW_Q8_MAX_M for
 * int8). -KW_EINVAL for a layer with no weights, -KW_ENOSPC for an int8 layer whose k is
 * beyond the exec's kmax. */
int kw_lin_forward(const struct kw_exec *ex, const struct kw_lin *l, const float *x, size_t m,
		   float *y);
/* gx[m][k] = gy[m][n] W (the gradient of the input). -KW_ENOTSUP for an int8 layer with no
 * q8t. */
int kw_lin_backward(const struct kw_exec *ex, const struct kw_lin *l, const float *gy, size_t m,
		    float *gx);

/* Bytes for the int8 copy of an n x k layer plus its transpose (when with_t). */
size_t kw_lin_q8_bytes(size_t n, size_t k, int with_t);
/* Packs fp32 W (n x k, row-major) into int8 W and, when with_t, int8 W^T, both from the
 * arena; l->bias is left NULL for the caller to set. Init-time only (not a hot path). */
int kw_lin_q8_from_f32(struct kw_lin *l, const float *w, size_t n, size_t k, int with_t,
		       struct kw_arena *a);
/*
 * Builds W^T (k x n) from int8 W alone (the loader keeps no fp32 copy): W is dequantized
 * 16 columns at a time into scratch and requantized along the other axis, so W^T carries
 * two roundings (each at most half a step of its own block). Memory for dst from the arena
 * plus 16 x n floats of transient scratch taken from it too.
 */
int kw_q8w_transpose(struct kw_q8w *dst, const struct kw_q8w *src, struct kw_arena *a);

/*
 * A layer from safetensors tensors (w: [n, k]; bias: [n] or NULL), any of F32/F16/BF16: int8
 * packs W 16 rows at a time through a transient 16 x k fp32 scratch (no fp32 copy kept) and,
 * with with_t, builds W^T from it (kw_q8w_transpose: two roundings); fp32 copies W. Memory
 * from the arena: kw_lin_load_bytes. -KW_ECORRUPT for a shape that is not [n, k] / [n] or a
 * non-finite value, naming the tensor; -KW_ENOSPC when the arena is short.
 */
size_t kw_lin_load_bytes(size_t n, size_t k, int int8, int with_t, int bias);
int kw_lin_load_st(struct kw_lin *l, const struct kw_st_tensor *w, const struct kw_st_tensor *bias,
		   size_t n, size_t k, int int8, int with_t, struct kw_arena *a, char *err,
		   size_t errcap);

/* ---- FFN experts ------------------------------------------------------------------------- */
enum kw_ffn_kind {
	/* Hivemind "ffn" (FeedforwardBlock): LayerNorm(x + W2 gelu_fast(W1 x + b1) + b2),
	 * W1 4h x h, LayerNorm eps 1e-12 with weight and bias. gelu_fast is the tanh form
	 * 0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x^2))). */
	KW_FFN_GELU = 1,
	/* transformers' LlamaMLP: down(silu(gate x) * up x), no bias, no norm, no residual. */
	KW_FFN_SWIGLU,
};

struct kw_ffn {
	enum kw_ffn_kind kind;
	size_t hid, inter;               /* inter = 4 * hid for KW_FFN_GELU */
	struct kw_lin up;                /* GELU: ffn (W1, b1);  SwiGLU: up_proj */
	struct kw_lin gate;              /* SwiGLU: gate_proj; unused for GELU */
	struct kw_lin down;              /* GELU: ffn_output (W2, b2);  SwiGLU: down_proj */
	const float *ln_w, *ln_b;        /* GELU: layer_norm weight and bias (hid each) */
};

/* Scratch of an expert for up to max_rows rows per internal chunk (any batch is split). */
struct kw_ffn_ctx {
	struct kw_exec ex;
	size_t hid, inter, max_rows;
	float *a, *g, *h, *t, *z;        /* rows x inter (a, g, h), rows x hid (t, z) */
};

size_t kw_ffn_ctx_bytes(size_t hid, size_t inter, size_t max_rows);
int kw_ffn_ctx_init(struct kw_ffn_ctx *c, const struct kw_kernels *kk, struct kw_workers *wk,
		    size_t hid, size_t inter, size_t max_rows, struct kw_arena *a);
/* y[m][hid] from x[m][hid]; y may not alias x. -KW_EINVAL on a shape mismatch. */
int kw_ffn_forward(struct kw_ffn_ctx *c, const struct kw_ffn *f, const float *x, size_t m,
		   float *y);
/* gx[m][hid] = d(sum gy . y)/dx, recomputing the forward; int8 layers need q8t. */
int kw_ffn_backward(struct kw_ffn_ctx *c, const struct kw_ffn *f, const float *x,
		    const float *gy, size_t m, float *gx);

/*
 * Hivemind "ffn" experts from a safetensors file, as tools/model writes a grid of them
 * (kw_model_write --experts RxC, doc/ml-model.md): for uid "ffn.<i>.<j>" the tensors
 * "<uid>.ffn.weight" [4h, h], "<uid>.ffn.bias" [4h], "<uid>.ffn_output.weight" [h, 4h],
 * "<uid>.ffn_output.bias" [h], "<uid>.layer_norm.weight" [h], "<uid>.layer_norm.bias" [h]:
 * FeedforwardBlock's state_dict keys behind the expert's uid. h comes from the file.
 * int8 with with_t packs the transposes for backward. Bytes: kw_ffn_load_bytes.
 * -KW_ENOENT naming the missing tensor, -KW_ECORRUPT for shapes that disagree.
 */
size_t kw_ffn_load_bytes(size_t hid, int int8, int with_t);
int kw_ffn_load(struct kw_ffn *f, const struct kw_st_file *st, const char *uid, int int8,
		int with_t, struct kw_arena *a, char *err, size_t errcap);

/* ---- KV cache ----------------------------------------------------------------------------- */
/*
 * A pool of fixed-size fp32 slots sized at init: max_sessions slots (plus one spare used by
 * kw_kv_reorder) of slot_tokens token rows for every layer, K and V: per slot
 * layers x 2 x slot_tokens x kv_heads x head_dim floats. As Petals' descriptors
 * (batch, kv_heads, max_length, head_dim), a session opened for batch b may hold
 * slot_tokens / b positions per row. Elements are fp32 (KW_KV_F32: attention exact to the
 * values computed) or fp16 (KW_KV_F16: half the memory; keys and values are rounded to fp16,
 * clamped to +-65504, when written, and widened to fp32 when attention reads them).
 * kw_kv_cache_init / kw_kv_cache_bytes take the build's choice (CONFIG_KW_ML_BLOCK_KV_FP16,
 * kw_kv_dtype_default); the _as variants take it explicitly.
 */
enum kw_kv_dtype {
	KW_KV_F32 = 0,
	KW_KV_F16 = 1,
};

struct kw_kv_session {
	unsigned slot;                   /* index of its slot */
	unsigned batch;                  /* rows (hypotheses) */
	uint32_t max_len;                /* positions per row: slot_tokens / batch */
	uint32_t *len;                   /* per layer: positions filled (the prefix length) */
	int open;
};

struct kw_kv_cache {
	size_t layers, kv_heads, head_dim;
	size_t max_sessions, slot_tokens;
	size_t slot_floats;
	float *mem;                      /* (max_sessions + 1) slots; NULL for an fp16 cache */
	struct kw_kv_session *s;         /* max_sessions entries */
	unsigned spare;                  /* the slot no session holds */
	size_t open;                     /* sessions open */
	enum kw_kv_dtype dtype;
	size_t elem_bytes;               /* 4 or 2 (slot_floats counts elements) */
	uint16_t *mem16;                 /* the slots of an fp16 cache; NULL for fp32 */
};

/* KW_KV_F16 when CONFIG_KW_ML_BLOCK_KV_FP16 is set, else KW_KV_F32. */
enum kw_kv_dtype kw_kv_dtype_default(void);
/* As kw_kv_cache_bytes / kw_kv_cache_init with the element type given (0 / -KW_EINVAL for
 * one that is neither). */
size_t kw_kv_cache_bytes_as(enum kw_kv_dtype dt, size_t max_sessions, size_t slot_tokens,
			    size_t layers, size_t kv_heads, size_t head_dim);
int kw_kv_cache_init_as(struct kw_kv_cache *c, enum kw_kv_dtype dt, size_t max_sessions,
			size_t slot_tokens, size_t layers, size_t kv_heads, size_t head_dim,
			struct kw_arena *a);

size_t kw_kv_cache_bytes(size_t max_sessions, size_t slot_tokens, size_t layers,
			 size_t kv_heads, size_t head_dim);
int kw_kv_cache_init(struct kw_kv_cache *c, size_t max_sessions, size_t slot_tokens,
		     size_t layers, size_t kv_heads, size_t head_dim, struct kw_arena *a);
/* A session for batch rows (1..slot_tokens); -KW_ENOSPC when every slot is taken,
 * -KW_EINVAL for a batch of 0 or above slot_tokens. */
int kw_kv_open(struct kw_kv_cache *c, unsigned batch, struct kw_kv_session **out);
void kw_kv_close(struct kw_kv_cache *c, struct kw_kv_session *s);
/* Petals' start_from_position: forget positions >= pos in every layer (a layer holding
 * fewer keeps its length). -KW_ERANGE when pos is beyond the session's max_len. */
int kw_kv_rewind(struct kw_kv_session *s, size_t layers, uint32_t pos);
/* Petals' _reorder_cache_inplace: row b becomes old row hypo[b] (repeats allowed), in every
 * layer, through the spare slot (no copy buffer). -KW_ERANGE for an index >= batch. */
int kw_kv_reorder(struct kw_kv_cache *c, struct kw_kv_session *s, const uint32_t *hypo);
/* Petals' ServerInfo.cache_tokens_left (server.py): bytes left / (hidden / kv groups x dtype
 * size), here free slots x slot elements / (kv_heads x head_dim), either element type. A client needs
 * tokens x 2 x blocks of it (sequence_manager.py _has_cache_for). */
uint64_t kw_kv_cache_tokens_left(const struct kw_kv_cache *c);
/* K or V rows of (layer, batch row) in a session: kv_heads x max_len x head_dim floats
 * (NULL for an fp16 cache). */
float *kw_kv_k(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
	       size_t row);
float *kw_kv_v(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
	       size_t row);
/* The same rows of an fp16 cache as fp16 bit patterns (NULL for an fp32 cache). */
uint16_t *kw_kv_k16(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
		    size_t row);
uint16_t *kw_kv_v16(const struct kw_kv_cache *c, const struct kw_kv_session *s, size_t layer,
		    size_t row);

/* ---- LLaMA decoder block ------------------------------------------------------------------ */
struct kw_llama_w {
	struct kw_lin q, k, v, o;
	struct kw_lin gate, up, down;
	const float *input_norm, *post_norm;
};

struct kw_llama_dims {
	size_t hidden, inter, heads, kv_heads, head_dim;
	double rope_theta, eps;
};

/* Scratch for one block at a time: forward rows (batch x new tokens) up to max_rows, KV
 * positions up to max_pos (RoPE table and attention), backward sequences up to max_rows. */
struct kw_llama_ctx {
	struct kw_exec ex;
	struct kw_llama_dims d;
	size_t max_rows, max_pos;
	float *cos, *sin;                /* max_pos x head_dim/2 */
	float *xn, *q, *k, *v, *att, *h1, *g, *u, *sc;
	float *kbuf, *vbuf;              /* no-cache keys/values: kv_heads x max_rows x head_dim */
	/* backward only */
	float *p, *gq, *gk, *gv, *gatt, *gh, *gg, *gu, *t1, *xn2, *r1, *r2;
	size_t nsc;                      /* score buffers (one per worker) of max_pos floats */
};

void kw_llama_dims_from_config(struct kw_llama_dims *d, const struct kw_llama_config *c);
size_t kw_llama_ctx_bytes(const struct kw_llama_dims *d, size_t max_rows, size_t max_pos,
			  unsigned nworkers);
int kw_llama_ctx_init(struct kw_llama_ctx *c, const struct kw_llama_dims *d,
		      const struct kw_kernels *kk, struct kw_workers *wk, size_t max_rows,
		      size_t max_pos, struct kw_arena *a);

/* Wraps a loaded int8 block; with t != NULL also builds the seven transposes (from t) so the
 * block can run backward (memory: the block's weights twice). */
int kw_llama_w_from_q8(struct kw_llama_w *w, const struct kw_llama_block_q8 *b,
		       struct kw_arena *t);
/* Reads block `layer` of the checkpoint in fp32 (kw_st_read_f32) into the arena: the fp32
 * reference and option. Bytes: kw_llama_f32_bytes. -KW_ENOENT / -KW_ECORRUPT naming the
 * tensor in err. */
size_t kw_llama_f32_bytes(const struct kw_llama_config *c);
int kw_llama_w_load_f32(struct kw_llama_w *w, const struct kw_ckpt *ck, uint32_t layer,
			struct kw_arena *a, char *err, size_t errcap);

/*
 * Forward of batch rows x n new tokens (x and y: [batch][n][hidden]; y may alias x) at
 * positions pos .. pos + n - 1 of each row. With a session, keys and values are written
 * into its cache at those positions for layer `layer` (overwriting anything from pos on, as
 * Petals does with prefix_length) and attention covers positions 0 .. pos + i; the layer's
 * length becomes pos + n. Without a session (s NULL), pos must be 0: a plain causal forward
 * (Petals rpc_forward). -KW_EINVAL for batch x n beyond max_rows or a batch that differs
 * from the session's, -KW_ERANGE for pos beyond the layer's length or pos + n beyond
 * max_len or max_pos.
 */
int kw_llama_forward(struct kw_llama_ctx *c, const struct kw_llama_w *w,
		     struct kw_kv_cache *kv, struct kw_kv_session *s, size_t layer,
		     const float *x, size_t batch, size_t n, size_t pos, float *y);
/* gx = d(sum gy . block(x))/dx for batch sequences of n tokens from position 0 (no cache),
 * recomputing the forward per sequence; n up to max_rows. Int8 weights need their q8t. */
int kw_llama_backward(struct kw_llama_ctx *c, const struct kw_llama_w *w, const float *x,
		      const float *gy, size_t batch, size_t n, float *gx);

/* ---- the whole LLaMA model: embedding -> blocks -> final RMSNorm -> lm_head ------------- */
/*
 * LlamaForCausalLM (transformers 4.43.1 modeling_llama.py: LlamaModel.forward, then
 * lm_head) over every block of a checkpoint, on int8 or fp32 weights: what a node needs to
 * check its blocks end to end against an independent reference (tests/ml/llama_ref.py) and
 * to decode greedily. The embedding and the final norm are fp32 in both paths (a lookup and
 * a vector, not matmuls); lm_head follows the blocks (int8 or fp32). Everything from the
 * arena given at load; the checkpoint may be closed afterwards.
 */
struct kw_llama_model {
	struct kw_llama_dims d;
	size_t layers, vocab;
	int int8;                        /* 1: blocks and lm_head are int8 */
	float *embed;                    /* vocab x hidden, model.embed_tokens.weight */
	float *norm;                     /* hidden, model.norm.weight */
	struct kw_lin head;              /* vocab x hidden, lm_head.weight */
	struct kw_llama_w *blk;          /* layers entries */
	struct kw_llama_q8 q8;           /* the int8 blocks (int8 only) */
};

/* Arena bytes kw_llama_model_load takes for the whole model (0 on overflow). */
size_t kw_llama_model_bytes(const struct kw_llama_config *c, int int8);
/* Loads every block plus embed_tokens, norm and lm_head. -KW_ENOENT / -KW_ECORRUPT naming the
 * tensor, -KW_ENOSPC when the arena has less than kw_llama_model_bytes (nothing read). */
int kw_llama_model_load(struct kw_llama_model *m, const struct kw_ckpt *ck, int int8,
			struct kw_arena *a, char *err, size_t errcap);

/* Scratch of a model forward: the block context plus hidden states (max_rows x hidden),
 * their norm, and one row of logits for greedy decoding. */
struct kw_llama_model_ctx {
	struct kw_llama_ctx blk;
	float *h, *hn, *logits;
	size_t vocab;
};

size_t kw_llama_model_ctx_bytes(const struct kw_llama_model *m, size_t max_rows,
				size_t max_pos, unsigned nworkers);
int kw_llama_model_ctx_init(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			    const struct kw_kernels *kk, struct kw_workers *wk, size_t max_rows,
			    size_t max_pos, struct kw_arena *a);

/*
 * n tokens of one sequence at positions pos .. pos + n - 1. With a session (batch 1, made for
 * m->layers layers) the blocks read and extend its KV cache as kw_llama_forward does;
 * without one, pos must be 0. hs (optional): each block's output, [layers][n][hidden].
 * logits (optional): [n][vocab], or with last_only the last token's [vocab] alone.
 * -KW_ERANGE for a token id >= vocab (naming nothing: the caller knows its input), else as
 * kw_llama_forward.
 */
int kw_llama_model_forward(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			   struct kw_kv_cache *kv, struct kw_kv_session *s, const uint32_t *tok,
			   size_t n, size_t pos, float *hs, float *logits, int last_only);
/* Index of the largest value (the lowest index on a tie); *margin (optional) gets the gap
 * to the second largest. */
uint32_t kw_argmax(const float *v, size_t n, float *margin);
/*
 * Greedy decoding: prefill the prompt (np >= 1 tokens) into session s from position 0, then
 * ngen tokens, each the argmax of the last logits, fed back one at a time over the cache.
 * min_margin (optional): the smallest top-1 minus top-2 logit gap met on the way (how close
 * a choice came to flipping).
 */
int kw_llama_model_greedy(struct kw_llama_model_ctx *c, const struct kw_llama_model *m,
			  struct kw_kv_cache *kv, struct kw_kv_session *s, const uint32_t *prompt,
			  size_t np, uint32_t *out, size_t ngen, float *min_margin);

/* LlamaRMSNorm of one row: y = w * x / sqrt(mean(x^2) + eps), in fp32. */
void kw_rms_norm(const float *x, const float *w, size_t n, float eps, float *y);

/* ---- memory of a block range: what a node can serve within its RAM ---------------------- */
/*
 * What serving blocks [first, first + count) costs in memory: the int8 weights
 * (kw_llama_q8_bytes, plus their transposes when the blocks must run backward), the KV cache
 * (kw_kv_cache_bytes: sessions + 1 slots of tokens positions for every block) and the block
 * scratch (kw_llama_ctx_bytes for max_rows rows, tokens positions, workers). The budget
 * they are compared with is CONFIG_KW_ML_MODEL_BUDGET_MIB (per board: doc/ml-model.md has
 * the table of what fits).
 */
struct kw_llama_plan {
	size_t sessions;                 /* concurrent inference sessions (KV slots) */
	size_t tokens;                   /* positions per session (the KV slot) */
	size_t max_rows;                 /* rows per forward call (a prefill chunk) */
	unsigned workers;                /* worker threads (one attention score row each) */
	int backward;                    /* 1: int8 transposes too (weights twice) */
};

struct kw_llama_need {
	uint64_t weights, kv, scratch, total;
};

/* The plan a build serves with: CONFIG_KW_ML_BLOCK_PLAN_SESSIONS and _TOKENS, 128 rows (or
 * tokens when fewer), the board's cores (4 when the board does not say), forward only. */
void kw_llama_plan_default(struct kw_llama_plan *p);
/* CONFIG_KW_ML_MODEL_BUDGET_MIB in bytes. */
uint64_t kw_llama_budget_bytes(void);
/* Bytes of count blocks under plan p. -KW_EINVAL for a zero count or plan field, or a shape
 * whose size overflows. */
int kw_llama_need_bytes(const struct kw_llama_config *c, uint32_t count,
			const struct kw_llama_plan *p, struct kw_llama_need *out);
/* The most blocks of this model that fit in budget bytes under plan p (0: not one). */
uint32_t kw_llama_max_blocks(const struct kw_llama_config *c, const struct kw_llama_plan *p,
			     uint64_t budget);
/*
 * 0 when blocks [first, first + count) fit in budget under plan p; otherwise -KW_ENOSPC with
 * a reason naming the range, each part in MiB, the budget and how many blocks would fit, e.g.
 * "blocks 0..3 need 1103.4 MiB (weights 823.1 + KV cache 256.0 for 1 session x 2048 tokens +
 * scratch 24.3) but the budget is 320 MiB (CONFIG_KW_ML_MODEL_BUDGET_MIB): 1 block fits".
 * -KW_ERANGE for a range outside the model. Call it before allocating anything.
 */
int kw_llama_fit(const struct kw_llama_config *c, uint32_t first, uint32_t count,
		 const struct kw_llama_plan *p, uint64_t budget, char *err, size_t errcap);

#endif /* KW_ML_BLOCK_H */
