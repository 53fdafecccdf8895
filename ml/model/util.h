/* Helpers shared by the ml/model parsers. Internal. */
#ifndef KW_ML_MODEL_UTIL_H
#define KW_ML_MODEL_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define KW_MIN_SZ(a, b) ((size_t)(a) < (size_t)(b) ? (size_t)(a) : (size_t)(b))

/* Copies s into out for an error message: bytes outside printable ASCII become '?', and a
 * long string is cut with "...", so file bytes never reach a terminal raw. */
static inline void kw_model_printable(char *out, size_t cap, const char *s)
{
	size_t i = 0;

	if (cap == 0)
		return;
	for (; s && s[i] && i + 1 < cap; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
	if (s && s[i] && cap > 4)
		memcpy(out + cap - 4, "...", 4);
}

#endif /* KW_ML_MODEL_UTIL_H */
