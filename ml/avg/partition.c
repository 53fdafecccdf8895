/*
 * Load balancing and partitioning for butterfly all-reduce, reproducing hivemind @ 4bd43b7
 * hivemind/averaging/load_balancing.py (load_balance_peers, hagenbach_bishoff) and the
 * splitting loop of partition.py TensorPartContainer.__init__, float64 arithmetic in the same
 * order, so every peer of a group (C or Python) computes the same part boundaries.
 */
#include <math.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

int kw_avg_hagenbach_bishoff(uint64_t total, const double *scores, size_t n, uint64_t *alloc)
{
	double sum = 0.0;
	uint64_t got = 0;

	if (!n || !scores || !alloc)
		return -KW_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(scores[i]) || scores[i] < 0)
			return -KW_EINVAL;
		sum += scores[i];   /* Python sum(): left to right */
	}
	if (!(sum > 0))
		return -KW_EINVAL;
	for (size_t i = 0; i < n; i++) {
		/* int(vector_size * score_i / total_score): float64, truncated toward zero */
		alloc[i] = (uint64_t)((double)total * scores[i] / sum);
		got += alloc[i];
	}
	/* The floor deficit is below n, so this loop runs fewer than n times. */
	while (got < total) {
		size_t best = 0;
		double bq = -1.0;

		for (size_t i = 0; i < n; i++) {
			double q = scores[i] / (double)(alloc[i] + 1);
			if (q > bq) {   /* list.index(max(...)): the first maximum */
				bq = q;
				best = i;
			}
		}
		alloc[best]++;
		got++;
	}
	return 0;
}

int kw_avg_load_balance(uint64_t total, const double *bw, size_t n, uint64_t *alloc)
{
	double scores[KW_AVG_GROUP_MAX], mean = 0.0;
	size_t specified = 0, zero = 0;

	if (!n || n > KW_AVG_GROUP_MAX || !bw)
		return -KW_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (bw[i] > 0 && isfinite(bw[i])) {
			mean += bw[i];
			specified++;
		} else if (bw[i] == 0) {
			zero++;
		}
	}
	if (zero == n)
		return -KW_EINVAL;  /* "Must have at least one nonzero bandwidth" */
	if (!specified) {
		for (size_t i = 0; i < n; i++)
			scores[i] = bw[i] < 0 ? 1.0 : 0.0;  /* None -> 1, 0 -> 0 */
	} else {
		/* hivemind: optimize_parts_lp (SciPy interior point). Not reproducible here: we
		 * split in proportion to bandwidth, None standing for the mean (doc/ml-avg.md). */
		mean /= (double)specified;
		for (size_t i = 0; i < n; i++)
			scores[i] = bw[i] < 0 ? mean : (isfinite(bw[i]) ? bw[i] : 0.0);
	}
	return kw_avg_hagenbach_bishoff(total, scores, n, alloc);
}

size_t kw_avg_part_values(enum kw_compression comp, size_t part_size_bytes)
{
	double ratio;

	switch (comp) {
	case KW_COMP_NONE: ratio = 1.0; break;
	case KW_COMP_FLOAT16:
	case KW_COMP_MEANSTD_16BIT: ratio = 16.0 / 32.0; break;
	case KW_COMP_QUANTILE_8BIT:
	case KW_COMP_UNIFORM_8BIT:
	case KW_COMP_BLOCKWISE_8BIT: ratio = 8.0 / 32.0; break;
	default: return 0;
	}
	/* int(part_size_bytes / (element_size * ratio)) */
	return (size_t)((double)part_size_bytes / (4.0 * ratio));
}

int kw_avg_partition(const uint64_t *numel, size_t n_tensors, const uint64_t *alloc,
		     size_t n_peers, size_t part_values, struct kw_avg_part *parts,
		     size_t max_parts, uint32_t *first, size_t *n_parts)
{
	int64_t pivots[KW_AVG_GROUP_MAX];
	uint64_t total = 0, asum = 0, cum = 0, cur_len = 0;
	size_t cur = 0, np = 0;
	uint32_t count[KW_AVG_GROUP_MAX] = { 0 };

	if (!n_peers || n_peers > KW_AVG_GROUP_MAX || !part_values || !first || !n_parts ||
	    (n_tensors && (!numel || !parts)))
		return -KW_EINVAL;
	for (size_t t = 0; t < n_tensors; t++)
		total += numel[t];
	for (size_t i = 0; i < n_peers; i++)
		asum += alloc[i];
	if (!asum)
		return -KW_EINVAL;
	for (size_t i = 0; i < n_peers; i++) {
		cum += alloc[i];
		/* (np.cumsum(f) / np.sum(f) * total).astype(np.int64) */
		pivots[i] = (int64_t)((double)cum / (double)asum * (double)total);
	}
	pivots[n_peers - 1] = (int64_t)total;

	for (size_t t = 0; t < n_tensors; t++) {
		for (uint64_t off = 0; off < numel[t]; off += part_values) {
			uint64_t len = numel[t] - off < part_values ? numel[t] - off : part_values;
			size_t owner = cur;

			if (np >= max_parts)
				return -KW_ENOSPC;
			if ((int64_t)(cur_len + len) > pivots[cur]) {
				/* the part straddles peers: largest intersection wins, first on ties */
				size_t prev = cur, best = 0;
				int64_t best_v = pivots[cur] - (int64_t)cur_len, k = 0;

				while ((int64_t)(cur_len + len) > pivots[cur]) {
					int64_t end;

					cur++;
					end = (int64_t)(cur_len + len) < pivots[cur] ?
						(int64_t)(cur_len + len) : pivots[cur];
					k++;
					if (end - pivots[cur - 1] > best_v) {
						best_v = end - pivots[cur - 1];
						best = (size_t)k;
					}
				}
				owner = prev + best;
			}
			/* parts are emitted in order and owners never decrease, so each peer's parts
			 * form one contiguous run */
			parts[np].tensor = (uint32_t)t;
			parts[np].off = off;
			parts[np].len = (uint32_t)len;
			count[owner]++;
			np++;
			cur_len += len;
		}
	}
	first[0] = 0;
	for (size_t i = 0; i < n_peers; i++)
		first[i + 1] = first[i] + count[i];
	*n_parts = np;
	return 0;
}
