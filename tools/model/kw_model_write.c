/*
 * kw_model_write: writes a small deterministic LLaMA-style checkpoint directory in the
 * Hugging Face layout (doc/ml-model.md), for tests and benchmarks where no real model can
 * be downloaded.
 *   kw_model_write --out DIR [--preset tiny|7b-block] [--seed N] [--layers N]
 *                  [--hidden N] [--intermediate N] [--heads N] [--kv-heads N] [--vocab N]
 *                  [--shards N] [--dtype bf16|f16|f32] [--lm-peak X]
 *                  [--experts RxC [--expert-hidden N]]
 * With --experts it writes DIR/experts.safetensors (a grid of Hivemind "ffn" experts
 * ffn.<i>.<j>, model_gen.h) instead of a LLaMA checkpoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>

#include "model_gen.h"

static void usage(void)
{
	fprintf(stderr, "usage: kw_model_write --out DIR [--preset tiny|7b-block] [--seed N]\n"
		"       [--layers N] [--hidden N] [--intermediate N] [--heads N] [--kv-heads N]\n"
		"       [--vocab N] [--shards N] [--dtype bf16|f16|f32] [--lm-peak X]\n"
		"       [--experts RxC [--expert-hidden N]]\n");
	exit(2);
}

static uint32_t num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (!*s || *end || v == 0 || v > (1ul << 24)) {
		fprintf(stderr, "kw_model_write: '%s' is not a number in 1..16777216\n", s);
		exit(2);
	}
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	struct kw_model_gen g;
	const char *out = NULL;
	unsigned er = 0, ec = 0, eh = 1024;
	char err[256];
	int r;

	kw_model_gen_tiny(&g, 1);
	/* the preset first, so the other flags override it wherever they stand */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--preset")) {
			if (!strcmp(argv[i + 1], "7b-block"))
				kw_model_gen_7b_block(&g, 1);
			else if (strcmp(argv[i + 1], "tiny"))
				usage();
		}
	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(k, "--out"))
			out = v;
		else if (!strcmp(k, "--preset"))
			;
		else if (!strcmp(k, "--seed"))
			g.seed = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--layers"))
			g.layers = num(v);
		else if (!strcmp(k, "--hidden"))
			g.hidden = num(v);
		else if (!strcmp(k, "--intermediate"))
			g.intermediate = num(v);
		else if (!strcmp(k, "--heads"))
			g.heads = num(v);
		else if (!strcmp(k, "--kv-heads"))
			g.kv_heads = num(v);
		else if (!strcmp(k, "--vocab"))
			g.vocab = num(v);
		else if (!strcmp(k, "--experts")) {
			if (sscanf(v, "%ux%u", &er, &ec) != 2 || !er || !ec)
				usage();
		} else if (!strcmp(k, "--expert-hidden"))
			eh = num(v);
		else if (!strcmp(k, "--lm-peak"))
			g.lm_peak = strtod(v, NULL);
		else if (!strcmp(k, "--shards"))
			g.shards = num(v);
		else if (!strcmp(k, "--dtype"))
			g.dtype = !strcmp(v, "f32") ? KW_ST_F32 : !strcmp(v, "f16") ? KW_ST_F16 :
				  !strcmp(v, "bf16") ? KW_ST_BF16 : (usage(), KW_ST_BF16);
		else
			usage();
	}
	if (!out)
		usage();
	if (er) {
		if ((r = kw_model_gen_experts(&g, out, er, ec, eh, err, sizeof(err))) < 0) {
			fprintf(stderr, "kw_model_write: %s\n", err);
			return 1;
		}
		printf("kw_model_write: %s/experts.safetensors: %ux%u ffn experts ffn.<i>.<j>, "
		       "hidden %u (inner %u), seed %llu\n", out, er, ec, eh, 4 * eh,
		       (unsigned long long)g.seed);
		return 0;
	}
	if ((r = kw_model_gen_write(&g, out, err, sizeof(err))) < 0) {
		fprintf(stderr, "kw_model_write: %s\n", err);
		return 1;
	}
	printf("kw_model_write: %s: hidden %u, intermediate %u, heads %u/%u, %u layers, "
	       "vocab %u, %u shard(s), seed %llu\n", out, g.hidden, g.intermediate, g.heads,
	       g.kv_heads, g.layers, g.vocab, g.shards, (unsigned long long)g.seed);
	return 0;
}
