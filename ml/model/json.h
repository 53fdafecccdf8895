/*
 * A small bounded JSON reader for the model files (safetensors header, config.json, the
 * sharded index): a cursor over caller bytes, no allocation, every length checked. It reads
 * RFC 8259 JSON; strings are unescaped into caller buffers of fixed size (\u0000 is refused
 * so names stay C strings), numbers are read as unsigned integers or as doubles, and values
 * a caller does not want are skipped with a nesting bound. Errors carry a reason and the
 * byte offset, for the caller to put in its own message. Internal to ml/model.
 */
#ifndef KW_ML_MODEL_JSON_H
#define KW_ML_MODEL_JSON_H

#include <stddef.h>
#include <stdint.h>

struct kw_mj {
	const uint8_t *p;
	size_t len, pos;
	int max_depth;
	const char *why;       /* static reason of the first error, NULL while fine */
	size_t why_pos;
};

void kw_mj_init(struct kw_mj *j, const void *buf, size_t len, int max_depth);
/* Skips whitespace and returns the next byte without consuming it, -1 at the end. */
int kw_mj_peek(struct kw_mj *j);
/* Consumes byte c after whitespace; -KW_EBADMSG (and sets why) when something else is there. */
int kw_mj_expect(struct kw_mj *j, char c);
/*
 * Object / array iteration: after kw_mj_expect(j, '{'), kw_mj_next(j, '}') returns 1 while
 * another member follows (consuming the comma), 0 at the closing brace (consumed), <0 on
 * error. `*first` starts at 1.
 */
int kw_mj_next(struct kw_mj *j, char close, int *first);
/* A string into out (cap bytes incl. NUL); -KW_ELIMIT when longer than cap - 1. */
int kw_mj_string(struct kw_mj *j, char *out, size_t cap, size_t *outlen);
/* An object key and its ':' into out; a key longer than cap - 1 is skipped and read as "". */
int kw_mj_key(struct kw_mj *j, char *out, size_t cap);
/* A non-negative integer without fraction or exponent, at most UINT64_MAX. */
int kw_mj_u64(struct kw_mj *j, uint64_t *v);
/* Any JSON number, as a double (at most 63 characters). */
int kw_mj_number(struct kw_mj *j, double *v);
/* 1 and consumes `null` when it is next, 0 otherwise. */
int kw_mj_null(struct kw_mj *j);
/* Skips one value of any type, nesting at most j->max_depth - depth levels deeper. */
int kw_mj_skip(struct kw_mj *j, int depth);
/* After the top-level value: only whitespace may follow. */
int kw_mj_end(struct kw_mj *j);

#endif /* KW_ML_MODEL_JSON_H */
