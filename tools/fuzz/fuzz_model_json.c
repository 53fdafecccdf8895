/*
 * libFuzzer target: the JSON files of a checkpoint directory (doc/ml-model.md). The first
 * byte picks the reader: even = LLaMA config.json, odd = model.safetensors.index.json.
 * What parses must hold: config sizes in range with heads divisible by KV heads; index
 * entries sorted, unique, found by name, shard names plain. Every refusal has a printable
 * reason.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/model.h>

static uint8_t arena_mem[1 << 20];

static void check_err(int r, const char *err)
{
	if (r >= 0)
		return;
	if (!err[0])
		__builtin_trap();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	int r;

	if (size < 1)
		return 0;
	err[0] = '\0';
	if (!(data[0] & 1)) {
		struct kw_llama_config c;

		r = kw_llama_config_parse(&c, data + 1, size - 1, err, sizeof(err));
		check_err(r, err);
		if (r == 0 && (!c.hidden_size || c.hidden_size > KW_LLAMA_MAX_DIM ||
			       !c.num_key_value_heads ||
			       c.num_attention_heads % c.num_key_value_heads || !c.head_dim ||
			       !(c.rope_theta > 0) || !(c.rms_norm_eps > 0) || !isfinite(c.rope_theta)))
			__builtin_trap();
	} else {
		struct kw_arena a;
		struct kw_st_index ix;

		kw_arena_init(&a, arena_mem, sizeof(arena_mem));
		r = kw_st_index_parse(&ix, data + 1, size - 1, &a, err, sizeof(err));
		check_err(r, err);
		if (r == 0) {
			for (size_t i = 0; i < ix.n; i++) {
				const char *s = ix.shard[ix.e[i].shard];

				if (ix.e[i].shard >= ix.n_shards || strchr(s, '/') || !s[0])
					__builtin_trap();
				if (i && strcmp(ix.e[i - 1].name, ix.e[i].name) >= 0)
					__builtin_trap();
				if (kw_st_index_shard(&ix, ix.e[i].name) != s)
					__builtin_trap();
			}
		}
	}
	return 0;
}
