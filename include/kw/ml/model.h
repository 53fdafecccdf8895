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
 * and names come from arena a (kw_st_parse_bytes tells how much beforehand is not needed:
 * a parse that runs out returns -KW_ENOMEM and the arena keeps what it handed out).
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

#endif /* KW_ML_MODEL_H */
