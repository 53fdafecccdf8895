/*
 * kw_llama_plan: how many LLaMA blocks fit a memory budget (ml/block/plan.c; the table in
 * doc/ml-model.md comes from it), and whether a given range does:
 *   kw_llama_plan (--config config.json | --preset 7b|tinyllama) [--budget-mib N]
 *                 [--sessions N] [--tokens N] [--rows N] [--workers N] [--backward]
 *                 [--blocks A:B]
 * Defaults: this build's CONFIG_KW_ML_MODEL_BUDGET_MIB and kw_llama_plan_default(). Prints
 * the memory of 1 block and of the most blocks that fit; with --blocks, exits 1 with the
 * refusal a node would log when the range does not fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

static void usage(void)
{
	fprintf(stderr, "usage: kw_llama_plan (--config FILE | --preset 7b|tinyllama)"
		" [--budget-mib N] [--sessions N]\n       [--tokens N] [--rows N] [--workers N]"
		" [--backward] [--blocks A:B]\n");
	exit(2);
}

static void preset(struct kw_llama_config *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->rope_theta = 10000;
	c->rms_norm_eps = 1e-6;
	c->vocab_size = 32000;
	if (!strcmp(name, "7b")) {          /* meta-llama/Llama-2-7b-hf config.json */
		c->hidden_size = 4096;
		c->intermediate_size = 11008;
		c->num_attention_heads = 32;
		c->num_key_value_heads = 32;
		c->num_hidden_layers = 32;
	} else if (!strcmp(name, "tinyllama")) {  /* TinyLlama-1.1B config.json */
		c->hidden_size = 2048;
		c->intermediate_size = 5632;
		c->num_attention_heads = 32;
		c->num_key_value_heads = 4;
		c->num_hidden_layers = 22;
	} else {
		usage();
	}
	c->head_dim = c->hidden_size / c->num_attention_heads;
}

int main(int argc, char **argv)
{
	struct kw_llama_config c;
	struct kw_llama_plan p;
	struct kw_llama_need n;
	uint64_t budget = kw_llama_budget_bytes();
	unsigned a = 0, b = 0;
	int have = 0, range = 0;
	uint32_t fit;
	char err[512];

	kw_llama_plan_default(&p);
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(k, "--backward")) {
			p.backward = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(k, "--config")) {
			if (kw_llama_config_load(&c, v, err, sizeof(err))) {
				fprintf(stderr, "kw_llama_plan: %s\n", err);
				return 1;
			}
			have = 1;
		} else if (!strcmp(k, "--preset")) {
			preset(&c, v);
			have = 1;
		} else if (!strcmp(k, "--budget-mib")) {
			budget = strtoull(v, NULL, 0) << 20;
		} else if (!strcmp(k, "--sessions")) {
			p.sessions = strtoul(v, NULL, 0);
		} else if (!strcmp(k, "--tokens")) {
			p.tokens = strtoul(v, NULL, 0);
		} else if (!strcmp(k, "--rows")) {
			p.max_rows = strtoul(v, NULL, 0);
		} else if (!strcmp(k, "--workers")) {
			p.workers = (unsigned)strtoul(v, NULL, 0);
		} else if (!strcmp(k, "--blocks")) {
			if (sscanf(v, "%u:%u", &a, &b) != 2 || b <= a)
				usage();
			range = 1;
		} else {
			usage();
		}
	}
	if (!have)
		usage();
	if (kw_llama_need_bytes(&c, 1, &p, &n)) {
		fprintf(stderr, "kw_llama_plan: the plan or the shape gives no size\n");
		return 1;
	}
	fit = kw_llama_max_blocks(&c, &p, budget);
	printf("budget %.0f MiB; %zu session(s) x %zu tokens, %zu rows, %u workers%s\n",
	       budget / 1048576.0, p.sessions, p.tokens, p.max_rows, p.workers,
	       p.backward ? ", backward" : "");
	printf("1 block: %.1f MiB (weights %.1f, KV cache %.1f, scratch %.1f)\n",
	       n.total / 1048576.0, n.weights / 1048576.0, n.kv / 1048576.0,
	       n.scratch / 1048576.0);
	if (fit && !kw_llama_need_bytes(&c, fit, &p, &n))
		printf("fits %u of %u blocks: %.1f MiB (weights %.1f, KV cache %.1f, scratch %.1f)\n",
		       fit, c.num_hidden_layers, n.total / 1048576.0, n.weights / 1048576.0,
		       n.kv / 1048576.0, n.scratch / 1048576.0);
	else
		printf("fits 0 of %u blocks\n", c.num_hidden_layers);
	if (range && kw_llama_fit(&c, a, b - a, &p, budget, err, sizeof(err))) {
		printf("blocks %u:%u refused: %s\n", a, b, err);
		return 1;
	}
	return 0;
}
