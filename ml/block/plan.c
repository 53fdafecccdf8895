/*
 * Memory of a served block range (kw/ml/block.h): the int8 weights, the KV cache and the
 * block scratch, each from the function that sizes the real allocation (kw_llama_q8_bytes,
 * kw_kv_cache_bytes, kw_llama_ctx_bytes), so the figure cannot drift from what init takes.
 * A node compares it with CONFIG_KW_ML_MODEL_BUDGET_MIB before loading and refuses a range
 * that does not fit with the reason (doc/ml-model.md, "What a board can serve").
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>

#define MIB (1024.0 * 1024.0)

void kw_llama_plan_default(struct kw_llama_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->sessions = CONFIG_KW_ML_BLOCK_PLAN_SESSIONS;
	p->tokens = CONFIG_KW_ML_BLOCK_PLAN_TOKENS;
	p->max_rows = KW_MIN((size_t)128, p->tokens);
	p->workers = CONFIG_KW_BOARD_CORES ? CONFIG_KW_BOARD_CORES : 4;
}

uint64_t kw_llama_budget_bytes(void)
{
	return (uint64_t)CONFIG_KW_ML_MODEL_BUDGET_MIB << 20;
}

/* The seven projections transposed (n x k becomes k x n), as kw_q8w_transpose packs them. */
static uint64_t transpose_bytes(const struct kw_llama_config *c)
{
	uint64_t h = c->hidden_size, i = c->intermediate_size;
	uint64_t qd = (uint64_t)c->num_attention_heads * c->head_dim;
	uint64_t kv = (uint64_t)c->num_key_value_heads * c->head_dim;
	uint64_t nk[7][2] = { { qd, h }, { kv, h }, { kv, h }, { h, qd }, { i, h }, { i, h },
			      { h, i } };
	uint64_t sum = 0;

	for (int j = 0; j < 7; j++) {
		size_t b = kw_q8w_size((size_t)nk[j][1], (size_t)nk[j][0]);

		if (!b)
			return 0;
		sum += b + sizeof(struct kw_q8w) + 64;
	}
	return sum;
}

int kw_llama_need_bytes(const struct kw_llama_config *c, uint32_t count,
			const struct kw_llama_plan *p, struct kw_llama_need *out)
{
	struct kw_llama_dims d;
	size_t w, kv, sc;

	if (!c || !p || !out || !count || !p->sessions || !p->tokens || !p->max_rows ||
	    !p->workers)
		return -KW_EINVAL;
	kw_llama_dims_from_config(&d, c);
	w = kw_llama_q8_bytes(c, count);
	kv = kw_kv_cache_bytes(p->sessions, p->tokens, count, d.kv_heads, d.head_dim);
	sc = kw_llama_ctx_bytes(&d, p->max_rows, p->tokens, p->workers);
	if (!w || !kv || !sc)
		return -KW_EINVAL;
	out->weights = w;
	if (p->backward) {
		uint64_t t = transpose_bytes(c);

		if (!t)
			return -KW_EINVAL;
		out->weights += t * count;
	}
	out->kv = kv;
	out->scratch = sc;
	out->total = out->weights + out->kv + out->scratch;
	return 0;
}

uint32_t kw_llama_max_blocks(const struct kw_llama_config *c, const struct kw_llama_plan *p,
			     uint64_t budget)
{
	uint32_t lo = 0, hi = c ? c->num_hidden_layers : 0;

	/* the need grows with the count: binary search for the largest that fits */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		struct kw_llama_need n;

		if (!kw_llama_need_bytes(c, mid, p, &n) && n.total <= budget)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

int kw_llama_fit(const struct kw_llama_config *c, uint32_t first, uint32_t count,
		 const struct kw_llama_plan *p, uint64_t budget, char *err, size_t errcap)
{
	struct kw_llama_need n;
	uint32_t fits;

	if (!c || !p)
		return -KW_EINVAL;
	if (count == 0 || first >= c->num_hidden_layers || count > c->num_hidden_layers - first)
		return kw_errf(-KW_ERANGE, err, errcap,
			       "blocks %u..%u are outside the model's %u blocks", first,
			       first + count - 1, c->num_hidden_layers);
	if (kw_llama_need_bytes(c, count, p, &n))
		return kw_errf(-KW_EINVAL, err, errcap,
			       "blocks %u..%u: the plan (%zu sessions x %zu tokens, %zu rows) or the"
			       " model shape gives no size", first, first + count - 1, p->sessions,
			       p->tokens, p->max_rows);
	if (n.total <= budget)
		return 0;
	fits = kw_llama_max_blocks(c, p, budget);
	return kw_errf(-KW_ENOSPC, err, errcap,
		       "blocks %u..%u need %.1f MiB (weights %.1f%s + KV cache %.1f for %zu session%s"
		       " x %zu tokens + scratch %.1f) but the budget is %.0f MiB"
		       " (CONFIG_KW_ML_MODEL_BUDGET_MIB): %u block%s of this model fit%s",
		       first, first + count - 1, n.total / MIB, n.weights / MIB,
		       p->backward ? " with transposes" : "", n.kv / MIB, p->sessions,
		       p->sessions == 1 ? "" : "s", p->tokens, n.scratch / MIB, budget / MIB, fits,
		       fits == 1 ? "" : "s", fits == 1 ? "s" : "");
}
