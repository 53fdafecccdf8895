/*
 * The dispatch header: the kernel tables each variant file defines (ml/ref/ and arch/), so
 * ml/q8.c can list them. Only kernel implementers include this; users go through kw/ml/q8.h.
 * A table is defined only when its Kconfig option is set.
 */
#ifndef KW_ML_Q8_KERNELS_H
#define KW_ML_Q8_KERNELS_H

#include <kw/ml/q8.h>

extern const struct kw_q8_kernels kw_q8_kernels_ref;
extern const struct kw_q8_kernels kw_q8_kernels_neon;
extern const struct kw_q8_kernels kw_q8_kernels_dotprod;
extern const struct kw_q8_kernels kw_q8_kernels_avx2;
extern const struct kw_q8_kernels kw_q8_kernels_avxvnni;
extern const struct kw_q8_kernels kw_q8_kernels_avx512vnni;

/* Offsets into the packed layout (kw/ml/q8.h), shared so no variant can disagree on them:
 * byte offset of block b's quants in group g, and uint16 index of its 16 scales, both from
 * w->q (w->d aliases w->q). */
static inline size_t kw_q8w_qoff(size_t nb, size_t g, size_t b)
{
	return (g * ((nb + 1) / 2) + b / 2) * (size_t)KW_Q8_PAIR_BYTES +
	       (b & 1) * (size_t)(KW_Q8_BLOCK * KW_Q8_ROWS);
}

static inline size_t kw_q8w_doff(size_t nb, size_t g, size_t b)
{
	return ((g * ((nb + 1) / 2) + b / 2) * (size_t)KW_Q8_PAIR_BYTES +
		2 * (size_t)(KW_Q8_BLOCK * KW_Q8_ROWS) + (b & 1) * (size_t)(2 * KW_Q8_ROWS)) / 2;
}

#endif /* KW_ML_Q8_KERNELS_H */
