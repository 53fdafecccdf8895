/*
 * libFuzzer target: an expert grid file (a safetensors image, as kw_model_write --experts
 * writes it) through kw_st_parse and then kw_ffn_load of uid "ffn.0.0" in fp32 and in int8
 * with transposes, into a bounded arena. Whatever loads must have the shapes the file names
 * (4h x h and h x 4h, h from layer_norm.weight) and run one forward row without leaving the
 * arena; every refusal has a printable reason.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

#include "fuzz_reason.h"

static uint8_t meta_mem[1 << 18];
static uint8_t w_mem[1 << 20];
static uint8_t c_mem[1 << 20];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_arena meta, wa, ca;
	struct kw_st_file f;
	char err[256];

	kw_arena_init(&meta, meta_mem, sizeof(meta_mem));
	err[0] = '\0';
	if (kw_st_parse(&f, data, size, &meta, err, sizeof(err)) < 0)
		return 0;
	for (int int8 = 0; int8 < 2; int8++) {
		struct kw_ffn e;
		struct kw_ffn_ctx c;
		int r;

		kw_arena_init(&wa, w_mem, sizeof(w_mem));
		err[0] = '\0';
		r = kw_ffn_load(&e, &f, "ffn.0.0", int8, int8, &wa, err, sizeof(err));
		if (r < 0) {
			kw_fuzz_check_reason(err);
			continue;
		}
		if (e.kind != KW_FFN_GELU || e.inter != 4 * e.hid || e.up.n != e.inter ||
		    e.up.k != e.hid || e.down.n != e.hid || e.down.k != e.inter || wa.used > wa.size)
			__builtin_trap();
		kw_arena_init(&ca, c_mem, sizeof(c_mem));
		if (kw_ffn_ctx_init(&c, NULL, NULL, e.hid, e.inter, 1, &ca) == 0) {
			static float x[4096], y[4096];

			if (e.hid <= 4096) {
				for (size_t i = 0; i < e.hid; i++)
					x[i] = (float)(i % 7) - 3.0f;
				if (kw_ffn_forward(&c, &e, x, 1, y) != 0)
					__builtin_trap();
			}
		}
	}
	return 0;
}
