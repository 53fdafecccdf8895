/*
 * Blockwise 8-bit quantize / dequantize and fp16 conversion of 64 MiB of fp32, each variant
 * (C reference, then every SIMD variant this CPU runs) side by side with memcpy of the same
 * 64 MiB measured in the same run. GB/s count the fp32 side (64 MiB per call) for every
 * kernel, so "% memcpy" compares the time to process the tensor with the time to copy it.
 * Each figure is the median of REPS calls; one thread. A kernel shared by several tables
 * (<kw/ml/kernels.h>: the VNNI tables reuse the AVX2 codec, every x86 table the AVX2
 * conversions) is measured once, under the first table that has it.
 *
 * Usage: bench_ml_codec [reps]   (default 9)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_util.h"

#include <kw/ml/codec.h>
#include <kw/ml/kernels.h>

#define NBYTES ((size_t)64 << 20)
#define NFLOAT (NBYTES / 4)

static int reps = 9;

/* Zeroed, so every page is touched before timing starts. */
static void *xalloc_zero(size_t n)
{
	void *p = bench_alloc(n);

	memset(p, 0, n);
	return p;
}

static float *x, *y, *absmax;
static uint8_t *q;
static uint16_t *h;
static uint8_t *copy_dst;

enum op { OP_MEMCPY, OP_BW_Q, OP_BW_DQ, OP_F16_ENC, OP_F16_DEC };

static double run(enum op op, const struct kw_codec *c)
{
	double t[64];

	for (int r = 0; r < reps; r++) {
		double t0 = bench_now();

		switch (op) {
		case OP_MEMCPY: memcpy(copy_dst, x, NBYTES); break;
		case OP_BW_Q: c->k->bw_quant(&c->bw, x, NFLOAT, absmax, q); break;
		case OP_BW_DQ: c->k->bw_dequant(c->bw.code, q, absmax, NFLOAT, y); break;
		case OP_F16_ENC: c->k->f32_to_f16(h, x, NFLOAT); break;
		case OP_F16_DEC: c->k->f16_to_f32(y, h, NFLOAT); break;
		}
		t[r] = bench_now() - t0;
	}
	qsort(t, (size_t)reps, sizeof(double), bench_cmpd);
	return (double)NBYTES / t[reps / 2] / 1e9;
}

/* The kernel a table uses for op, to measure each kernel once. */
static void (*op_fn(enum op op, const struct kw_kernels *k))(void)
{
	switch (op) {
	case OP_BW_Q: return (void (*)(void))k->bw_quant;
	case OP_BW_DQ: return (void (*)(void))k->bw_dequant;
	case OP_F16_ENC: return (void (*)(void))k->f32_to_f16;
	case OP_F16_DEC: return (void (*)(void))k->f16_to_f32;
	default: return NULL;
	}
}

/* True when a table before v (in enum order) that this CPU runs has the same kernel for op. */
static bool measured_before(enum op op, int v)
{
	for (int u = KW_SIMD_REF; u < v; u++)
		if (kw_simd_available((enum kw_simd)u) &&
		    op_fn(op, kw_kernels_get((enum kw_simd)u)) == op_fn(op, kw_kernels_get((enum kw_simd)v)))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static struct kw_codec codecs[KW_SIMD_COUNT];
	static const char *names[] = { "memcpy 64 MiB", "blockwise8 quantize", "blockwise8 dequantize",
				       "fp16 encode (f32->f16)", "fp16 decode (f16->f32)" };
	uint32_t s = 1;

	if (argc > 1)
		reps = atoi(argv[1]);
	if (reps < 1 || reps > 64)
		reps = 9;
	x = xalloc_zero(NBYTES);
	y = xalloc_zero(NBYTES);
	copy_dst = xalloc_zero(NBYTES);
	q = xalloc_zero(NFLOAT);
	h = xalloc_zero(NFLOAT * 2);
	absmax = xalloc_zero(NFLOAT / KW_BW_BLOCK * 4 + 64);
	for (size_t i = 0; i < NFLOAT; i++) {  /* roughly normal, like gradients */
		s = s * 1664525u + 1013904223u;
		x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * ((s & 7) == 0 ? 8.0f : 1.0f);
	}
	printf("bench_ml_codec: 64 MiB fp32 (%zu floats), median of %d, 1 thread; GB/s of fp32 bytes\n",
	       NFLOAT, reps);
	for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++)
		if (kw_simd_available((enum kw_simd)v) && kw_codec_init(&codecs[v], (enum kw_simd)v) != 0)
			return 1;
	printf("%-26s %-6s %9s %9s %8s\n", "kernel", "impl", "GB/s", "memcpy", "%memcpy");
	for (int op = OP_BW_Q; op <= OP_F16_DEC; op++) {
		for (int v = KW_SIMD_REF; v < KW_SIMD_COUNT; v++) {
			double g, m;

			if (!kw_simd_available((enum kw_simd)v))
				continue;
			if (measured_before((enum op)op, v))
				continue;
			m = run(OP_MEMCPY, NULL);  /* baseline measured next to every figure */
			g = run((enum op)op, &codecs[v]);
			printf("%-26s %-6s %9.2f %9.2f %7.0f%%\n", names[op], kw_simd_name((enum kw_simd)v),
			       g, m, 100.0 * g / m);
		}
	}
	/* the SIMD and reference results must agree, or the figures mean nothing */
	for (int v = KW_SIMD_REF + 1; v < KW_SIMD_COUNT; v++) {
		static uint8_t *q2;

		if (!kw_simd_available((enum kw_simd)v))
			continue;
		if (!q2)
			q2 = xalloc_zero(NFLOAT);
		codecs[KW_SIMD_REF].k->bw_quant(&codecs[KW_SIMD_REF].bw, x, NFLOAT, absmax, q);
		codecs[v].k->bw_quant(&codecs[v].bw, x, NFLOAT, absmax, q2);
		if (memcmp(q, q2, NFLOAT)) {
			printf("MISMATCH: %s blockwise codes differ from the reference\n",
			       kw_simd_name((enum kw_simd)v));
			return 1;
		}
	}
	return 0;
}
