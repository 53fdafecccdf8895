/*
 * The hivemind MoE client's pure parts (app/client.h, doc/serve.md "Client and generate"):
 * reading the experts' DHT declarations, the gating scores, the top-k choice and the mixing
 * weights of hivemind's RemoteMixtureOfExperts (hivemind/moe/client/moe.py and beam_search.py
 * at learning-at-home/hivemind @ 4bd43b7): proj = Linear(hidden, sum(grid)), grid_scores
 * split per grid dimension, an expert's logit the sum of its coordinates' scores, the k best
 * alive experts chosen, weights the softmax of their logits over the experts that answered.
 * The gating here is generated (xorshift, as the served expert grid): no trained gating
 * network is loaded.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/msgpack.h>

#include "client.h"

int kw_client_expert_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val,
			   size_t val_len, int64_t *coord, char *uid, size_t ucap, char *peer,
			   size_t pcap)
{
	struct kw_mp_reader rd;
	struct kw_mp_item it;

	if (kw_mp_reader_init(&rd, sub, sub_len, 0) < 0 || kw_mp_read(&rd, &it) < 0 ||
	    kw_mp_reader_done(&rd) < 0)
		return -KW_EBADMSG;
	if (it.type == KW_MP_UINT && it.v.u <= INT64_MAX)
		*coord = (int64_t)it.v.u;
	else if (it.type == KW_MP_INT)
		*coord = it.v.i;
	else
		return -KW_EBADMSG;
	if (kw_mp_reader_init(&rd, val, val_len, KW_MP_ENTER_EXT) < 0 ||
	    kw_mp_read(&rd, &it) < 0)
		return -KW_EBADMSG;
	if (it.type == KW_MP_EXT && kw_mp_read(&rd, &it) < 0)
		return -KW_EBADMSG;
	if (it.type != KW_MP_ARRAY || it.len != 2)
		return -KW_EBADMSG;
	for (int i = 0; i < 2; i++) {
		char *out = i ? peer : uid;
		size_t cap = i ? pcap : ucap;

		if (kw_mp_read(&rd, &it) < 0 || it.type != KW_MP_STR || it.len + 1 > cap)
			return -KW_EBADMSG;
		memcpy(out, it.data, it.len);
		out[it.len] = '\0';
	}
	return kw_hm_expert_uid_check(uid) < 0 ? -KW_EBADMSG : 0;
}

int kw_client_expert_coords(const char *uid, const char *prefix, uint32_t *coord,
			    uint32_t cap, uint32_t *n)
{
	size_t pl = strlen(prefix);
	const char *p;

	*n = 0;
	if (strncmp(uid, prefix, pl) || uid[pl] != '.')
		return -KW_EINVAL;
	for (p = uid + pl; *p == '.';) {
		uint64_t v = 0;

		p++;
		if (*p < '0' || *p > '9' || *n == cap)
			return -KW_EINVAL;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p++ - '0');
			if (v >= KW_CLIENT_MOE_GRID_MAX)
				return -KW_EINVAL;
		}
		coord[(*n)++] = (uint32_t)v;
	}
	return *p ? -KW_EINVAL : 0;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void kw_client_moe_gate(uint64_t seed, const uint32_t *grid, uint32_t ndim, const float *x,
			size_t hid, float *scores)
{
	uint64_t s = seed ? seed : 0x6d6f65u;
	size_t rows = 0;

	for (uint32_t d = 0; d < ndim; d++)
		rows += grid[d];
	for (size_t r = 0; r < rows; r++) {
		double acc = 0;

		for (size_t k = 0; k < hid; k++) {
			float w = ((float)((xs(&s) >> 40) & 0xffffff) / 8388608.0f - 1.0f) /
				  sqrtf((float)hid);

			acc += (double)w * x[k];
		}
		scores[r] = (float)acc;
	}
}

int kw_client_moe_topk(const float *scores, const uint32_t *grid, uint32_t ndim,
		       const struct kw_client_expert *ex, size_t n_ex, uint32_t k, uint32_t *best,
		       float *logit, uint32_t *n_best)
{
	*n_best = 0;
	for (size_t i = 0; i < n_ex; i++) {
		float l = 0;
		uint32_t at, off = 0;

		if (ex[i].ndim != ndim)
			continue;
		for (uint32_t d = 0; d < ndim; d++) {
			if (ex[i].coord[d] >= grid[d])
				return -KW_EINVAL;
			l += scores[off + ex[i].coord[d]];
			off += grid[d];
		}
		/* insert in order: higher logit first, the earlier expert on a tie */
		at = *n_best;
		while (at > 0 && logit[at - 1] < l)
			at--;
		if (at >= k)
			continue;
		for (uint32_t j = (*n_best < k ? *n_best : k - 1); j > at; j--) {
			best[j] = best[j - 1];
			logit[j] = logit[j - 1];
		}
		best[at] = (uint32_t)i;
		logit[at] = l;
		if (*n_best < k)
			(*n_best)++;
	}
	return *n_best ? 0 : -KW_ENOENT;
}

int kw_client_moe_weights(const float *logit, const bool *answered, uint32_t n, float *w)
{
	float mx = -INFINITY;
	double sum = 0;

	for (uint32_t i = 0; i < n; i++)
		if (answered[i] && logit[i] > mx)
			mx = logit[i];
	if (mx == -INFINITY)
		return -KW_ENOENT;
	for (uint32_t i = 0; i < n; i++) {
		w[i] = answered[i] ? expf(logit[i] - mx) : 0.0f;
		sum += w[i];
	}
	for (uint32_t i = 0; i < n; i++)
		w[i] = (float)(w[i] / sum);
	return 0;
}
