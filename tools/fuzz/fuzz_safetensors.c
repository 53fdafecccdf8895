/*
 * libFuzzer target: a safetensors image (8-byte header length, JSON header, a small data
 * region) through kw_st_parse. The first input byte picks how the length prefix is made:
 * odd = the prefix is the real header length of the rest less a data region of
 * (byte >> 1) & 63 bytes (so the JSON parser is reached almost always), even = the input's next 8 bytes are the prefix as is. What parses must
 * hold: every tensor lies inside the data region, sizes equal dtype x shape, names sorted
 * and found, and every element reads back as fp32.
 */
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/ml/model.h>

static uint8_t arena_mem[1 << 20];
static uint8_t img[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_arena a;
	struct kw_st_file f;
	char err[256];
	size_t len;
	int r;

	if (size < 1 || size > sizeof(img) - 8)
		return 0;
	if (data[0] & 1) {
		/* rest = header JSON, then a data region of (data[0] >> 1) & 63 bytes from its end */
		size_t rest = size - 1, dl = data[0] >> 1 & 63u, hl;

		dl = dl < rest ? dl : rest;
		hl = rest - dl;

		for (int i = 0; i < 8; i++)
			img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
		memcpy(img + 8, data + 1, rest);
		len = 8 + rest;
	} else {
		memcpy(img, data + 1, size - 1);
		len = size - 1;
	}
	kw_arena_init(&a, arena_mem, sizeof(arena_mem));
	err[0] = '\0';
	r = kw_st_parse(&f, img, len, &a, err, sizeof(err));
	if (r < 0) {
		if (!err[0])
			__builtin_trap();  /* every refusal says why */
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
				__builtin_trap();  /* and the reason is printable */
		return 0;
	}
	{
		uint64_t covered = 0;

		for (size_t i = 0; i < f.n; i++) {
			const struct kw_st_tensor *t = &f.t[i];
			float v[64];

			if (t->end > f.data_len || t->begin > t->end ||
			    t->end - t->begin != t->nelem * kw_st_dtype_size(t->dtype) ||
			    t->data != f.data + t->begin)
				__builtin_trap();
			if (i && strcmp(f.t[i - 1].name, t->name) >= 0)
				__builtin_trap();
			if (kw_st_find(&f, t->name) != t)
				__builtin_trap();
			covered += t->end - t->begin;
			for (uint64_t e = 0; e < t->nelem; e += 64) {
				size_t c = t->nelem - e < 64 ? (size_t)(t->nelem - e) : 64;

				if (kw_st_read_f32(t, e, c, v) != 0)
					__builtin_trap();
			}
		}
		if (covered != f.data_len)
			__builtin_trap();
	}
	return 0;
}
