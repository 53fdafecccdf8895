/*
 * kw_llama_run: runs a whole LLaMA checkpoint (ml/block/model.c) greedily and writes what it
 * computed, for the NumPy reference check (tests/ml/llama_ref.py, doc/ml-model.md):
 *   kw_llama_run --model DIR --out DIR [--path fp32|int8] [--prompt 1,2,3] [--gen N]
 * The prompt is prefilled in one call, then N tokens are decoded one at a time over the KV
 * cache. Written into --out:
 *   tokens.txt   line 1 the prompt, line 2 the N generated tokens (space-separated)
 *   logits.f32   [P][vocab] little-endian fp32: the logits of positions 0 .. P-1, where
 *                P = prompt + N - 1 (the positions that were fed in)
 *   hidden.f32   [layers][P][hidden]: each block's output at those positions
 * Host tool: allocates with malloc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

#define MAX_TOK 4096

static void usage(void)
{
	fprintf(stderr, "usage: kw_llama_run --model DIR --out DIR [--path fp32|int8]"
		" [--prompt 1,2,3] [--gen N]\n");
	exit(2);
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4200];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "kw_llama_run: %s: %s\n", path, strerror(errno));
		return -1;
	}
	ok = fwrite(p, 1, n, f) == n;
	ok &= fclose(f) == 0;
	if (!ok)
		fprintf(stderr, "kw_llama_run: %s: write failed\n", path);
	return ok ? 0 : -1;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "kw_llama_run: out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	const char *model = NULL, *out = NULL, *path = "fp32", *prompt_s = "1,17,42,99,3,200,7,128";
	static uint32_t tok[MAX_TOK];
	size_t np = 0, ngen = 32, P, H, V, L;
	struct kw_arena meta, wa, ca;
	struct kw_ckpt ck;
	struct kw_llama_model m;
	struct kw_llama_model_ctx c;
	struct kw_kv_cache kv;
	struct kw_kv_session *s;
	char err[512], *e;
	float *logits, *hidden, *hs;
	void *meta_mem, *wmem, *cmem;
	size_t wb, cb;
	int r, int8;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--model"))
			model = argv[i + 1];
		else if (!strcmp(argv[i], "--out"))
			out = argv[i + 1];
		else if (!strcmp(argv[i], "--path"))
			path = argv[i + 1];
		else if (!strcmp(argv[i], "--prompt"))
			prompt_s = argv[i + 1];
		else if (!strcmp(argv[i], "--gen"))
			ngen = strtoul(argv[i + 1], NULL, 0);
		else
			usage();
	}
	if (argc % 2 == 0 || !model || !out || (strcmp(path, "fp32") && strcmp(path, "int8")))
		usage();
	int8 = !strcmp(path, "int8");
	for (const char *p = prompt_s; *p && np < MAX_TOK; p = *e ? e + 1 : e) {
		tok[np++] = (uint32_t)strtoul(p, &e, 10);
		if (e == p || (*e && *e != ',')) {
			fprintf(stderr, "kw_llama_run: --prompt: '%s' is not a list of token ids\n",
				prompt_s);
			return 2;
		}
	}
	if (!np || ngen < 1 || np + ngen > MAX_TOK)
		usage();
	P = np + ngen - 1;

	meta_mem = xmalloc(4 << 20);
	kw_arena_init(&meta, meta_mem, 4 << 20);
	if ((r = kw_ckpt_open(&ck, model, &meta, err, sizeof(err)))) {
		fprintf(stderr, "kw_llama_run: %s\n", err);
		return 1;
	}
	wb = kw_llama_model_bytes(&ck.cfg, int8);
	wmem = xmalloc(wb);
	kw_arena_init(&wa, wmem, wb);
	if ((r = kw_llama_model_load(&m, &ck, int8, &wa, err, sizeof(err)))) {
		fprintf(stderr, "kw_llama_run: %s\n", err);
		return 1;
	}
	H = m.d.hidden;
	V = m.vocab;
	L = m.layers;
	cb = kw_llama_model_ctx_bytes(&m, np, P + 1, 1) +
	     kw_kv_cache_bytes(1, P + 1, L, m.d.kv_heads, m.d.head_dim);
	cmem = xmalloc(cb);
	kw_arena_init(&ca, cmem, cb);
	if ((r = kw_llama_model_ctx_init(&c, &m, NULL, NULL, np, P + 1, &ca)) ||
	    (r = kw_kv_cache_init(&kv, 1, P + 1, L, m.d.kv_heads, m.d.head_dim, &ca)) ||
	    (r = kw_kv_open(&kv, 1, &s))) {
		fprintf(stderr, "kw_llama_run: context: error %d\n", r);
		return 1;
	}
	logits = xmalloc(P * V * sizeof(float));
	hidden = xmalloc(L * P * H * sizeof(float));
	hs = xmalloc(L * np * H * sizeof(float));
	/* prefill: every position's logits and block outputs */
	if ((r = kw_llama_model_forward(&c, &m, &kv, s, tok, np, 0, hs, logits, 0))) {
		fprintf(stderr, "kw_llama_run: prefill: error %d\n", r);
		return 1;
	}
	for (size_t l = 0; l < L; l++)
		memcpy(hidden + l * P * H, hs + l * np * H, np * H * sizeof(float));
	tok[np] = kw_argmax(logits + (np - 1) * V, V, NULL);
	/* decode: position p = np .. P - 1 takes the token chosen at p - 1 */
	for (size_t p = np; p < P; p++) {
		if ((r = kw_llama_model_forward(&c, &m, &kv, s, &tok[p], 1, p, hs, logits + p * V,
						0))) {
			fprintf(stderr, "kw_llama_run: decode at %zu: error %d\n", p, r);
			return 1;
		}
		for (size_t l = 0; l < L; l++)
			memcpy(hidden + (l * P + p) * H, hs + l * H, H * sizeof(float));
		tok[p + 1] = kw_argmax(logits + p * V, V, NULL);
	}
	{
		char line[MAX_TOK * 8];
		size_t n = 0;

		for (size_t i = 0; i <= P; i++)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%u",
					      i == np ? "\n" : i ? " " : "", tok[i]);
		line[n++] = '\n';
		if (write_file(out, "tokens.txt", line, n) ||
		    write_file(out, "logits.f32", logits, P * V * sizeof(float)) ||
		    write_file(out, "hidden.f32", hidden, L * P * H * sizeof(float)))
			return 1;
	}
	printf("kw_llama_run: %s path, %zu prompt + %zu generated tokens, %zu layers, vocab %zu\n",
	       path, np, ngen, L, V);
	kw_ckpt_close(&ck);
	free(meta_mem);
	free(wmem);
	free(cmem);
	free(logits);
	free(hidden);
	free(hs);
	return 0;
}
