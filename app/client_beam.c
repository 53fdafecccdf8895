/*
 * hivemind's grid beam search over expert declarations (app/client.h, doc/serve.md "Client
 * and generate"). Facts from hivemind moe/client/beam_search.py @ 4bd43b7
 * (MoEBeamSearcher._find_best_experts, _get_initial_beam, _iterate_matching_experts) and
 * moe/server/dht_handler.py (declare_experts: "P.c1.", subkey c2 = (uid, peer); a 1-D uid
 * "P.i" under "P.i." subkey -1). Pure: the caller reads the records (app/cmd_moe.c from the
 * DHT, the unit tests from a table), so the same code answers both.
 */
#include <stdio.h>
#include <string.h>

#include <kw/err.h>

#include "client.h"

static uint32_t dim_off(const struct kw_client_beam *b, uint32_t dim)
{
	uint32_t off = 0;

	for (uint32_t d = 0; d < dim; d++)
		off += b->grid[d];
	return off;
}

int kw_client_beam_init(struct kw_client_beam *b, const char *prefix, const uint32_t *grid,
			uint32_t ndim, const float *scores, uint32_t beam)
{
	if (!beam || beam > KW_CLIENT_BEAM_MAX || !ndim || ndim > KW_CLIENT_MOE_DIMS ||
	    strchr(prefix, '.') || strlen(prefix) + 16 * ndim >= KW_HM_REC_UID_MAX)
		return -KW_EINVAL;
	for (uint32_t d = 0; d < ndim; d++)
		if (!grid[d] || grid[d] > KW_CLIENT_MOE_GRID_MAX)
			return -KW_EINVAL;
	memset(b, 0, sizeof(*b));
	snprintf(b->prefix, sizeof(b->prefix), "%s", prefix);
	memcpy(b->grid, grid, ndim * sizeof(*grid));
	b->ndim = ndim;
	b->beam = beam;
	b->scores = scores;
	b->initial = true;
	/* sorted(range(n), key=score) popped from the end: best first, the higher index on a
	 * tie (insertion sort from the top keeps that order) */
	for (uint32_t i = 0; i < grid[0]; i++) {
		uint32_t at = i;

		while (at > 0 && scores[b->order[at - 1]] <= scores[i]) {
			b->order[at] = b->order[at - 1];
			at--;
		}
		b->order[at] = (uint16_t)i;
	}
	b->n_order = grid[0];
	return 0;
}

/* (score, uid, peer) of a above that of b, as Python compares the heap's tuples */
static bool expert_above(float sa, const struct kw_client_expert *a, float sb,
			 const struct kw_client_expert *b)
{
	int c;

	if (sa != sb)
		return sa > sb;
	c = strcmp(a->uid, b->uid);
	return c ? c > 0 : strcmp(a->peer, b->peer) > 0;
}

/* best_experts_heap: the beam best experts, kept sorted best first */
static void push_expert(struct kw_client_beam *b, float score, const char *uid, const char *peer,
			const uint32_t *coord)
{
	struct kw_client_expert e;
	uint32_t at;

	for (uint32_t i = 0; i < b->n_best; i++)
		if (!strcmp(b->best[i].uid, uid))
			return;   /* unique_experts: the first (uid, peer) met speaks for it */
	memset(&e, 0, sizeof(e));
	snprintf(e.uid, sizeof(e.uid), "%s", uid);
	snprintf(e.peer, sizeof(e.peer), "%s", peer);
	memcpy(e.coord, coord, b->ndim * sizeof(*coord));
	e.ndim = b->ndim;
	at = b->n_best;
	while (at > 0 && expert_above(score, &e, b->best_score[at - 1], &b->best[at - 1]))
		at--;
	if (at >= b->beam)
		return;
	for (uint32_t j = (b->n_best < b->beam ? b->n_best : b->beam - 1); j > at; j--) {
		b->best[j] = b->best[j - 1];
		b->best_score[j] = b->best_score[j - 1];
	}
	b->best[at] = e;
	b->best_score[at] = score;
	if (b->n_best < b->beam)
		b->n_best++;
}

/* _iterate_matching_experts over the current beam */
static void push_matches(struct kw_client_beam *b)
{
	for (uint32_t i = 0; i < b->n_cur; i++) {
		const struct kw_client_beam_pre *p = &b->cur[i];

		for (uint32_t j = 0; j < p->n; j++) {
			const struct kw_client_beam_entry *en = &p->e[j];
			uint32_t coord[KW_CLIENT_MOE_DIMS], n;
			float s = 0;
			bool in = true;

			/* a 1-D expert sits under "P.i." subkey -1; hivemind scores it by the
			 * prefix, here by its own coordinate: the same for an honest record, and a
			 * record naming another uid cannot lend it a better score */
			if (b->ndim == 1 && en->coord != -1)
				continue;
			if (kw_client_expert_coords(en->uid, b->prefix, coord, KW_CLIENT_MOE_DIMS,
						    &n) < 0 || n != b->ndim)
				continue;
			for (uint32_t d = 0, off = 0; d < n; off += b->grid[d], d++) {
				if (coord[d] >= b->grid[d]) {
					in = false;
					break;
				}
				s += b->scores[off + coord[d]];
			}
			if (in)
				push_expert(b, s, en->uid, en->peer, coord);
		}
	}
}

uint32_t kw_client_beam_want(struct kw_client_beam *b, const char **keys, uint32_t cap)
{
	if (b->done)
		return 0;
	if (b->initial) {
		/* the next beam - n_cur best first-dimension prefixes: hivemind's workers fetch
		 * ahead in this order and take the answers in it */
		b->n_batch = 0;
		while (b->n_batch < b->beam - b->n_cur && b->at_order < b->n_order) {
			struct kw_client_beam_pre *p = &b->batch[b->n_batch++];
			uint32_t i = b->order[b->at_order++];

			char num[16];
			size_t pl = strlen(b->prefix);

			/* the prefix fits with 16 bytes per dimension to spare (init) */
			snprintf(num, sizeof(num), ".%u.", i);
			memcpy(p->key, b->prefix, pl);
			memcpy(p->key + pl, num, strlen(num) + 1);
			p->score = b->scores[i];
			p->n = 0;
		}
	} else {
		/* heapq.nlargest(beam, (prefix_score + dim_scores[c], f"{prefix}{c}.")) */
		uint32_t off = dim_off(b, b->dim);

		b->n_batch = 0;
		for (uint32_t i = 0; i < b->n_cur; i++)
			for (uint32_t j = 0; j < b->cur[i].n; j++) {
				const struct kw_client_beam_entry *en = &b->cur[i].e[j];
				struct kw_client_beam_pre c;
				uint32_t at;

				if (en->coord < 0 || en->coord >= b->grid[b->dim])
					continue;
				c.score = b->cur[i].score + b->scores[off + (uint32_t)en->coord];
				snprintf(c.key, sizeof(c.key), "%s%lld.", b->cur[i].key,
					 (long long)en->coord);
				at = b->n_batch;
				while (at > 0 && (c.score > b->batch[at - 1].score ||
						  (c.score == b->batch[at - 1].score &&
						   strcmp(c.key, b->batch[at - 1].key) > 0)))
					at--;
				if (at >= b->beam)
					continue;
				for (uint32_t k = (b->n_batch < b->beam ? b->n_batch : b->beam - 1);
				     k > at; k--) {
					memcpy(b->batch[k].key, b->batch[k - 1].key,
					       sizeof(b->batch[k].key));
					b->batch[k].score = b->batch[k - 1].score;
				}
				memcpy(b->batch[at].key, c.key, sizeof(c.key));
				b->batch[at].score = c.score;
				if (b->n_batch < b->beam)
					b->n_batch++;
			}
		for (uint32_t i = 0; i < b->n_batch; i++)
			b->batch[i].n = 0;
	}
	if (!b->n_batch) {
		kw_client_beam_step(b);
		return 0;
	}
	for (uint32_t i = 0; i < b->n_batch && i < cap; i++)
		keys[i] = b->batch[i].key;
	b->fetched += b->n_batch;
	return b->n_batch < cap ? b->n_batch : cap;
}

void kw_client_beam_feed(struct kw_client_beam *b, uint32_t i, int64_t coord, const char *uid,
			 const char *peer)
{
	struct kw_client_beam_pre *p;
	struct kw_client_beam_entry *en;
	uint32_t next = b->initial ? 1 : b->dim + 1, at;
	float s = 0;

	if (i >= b->n_batch || kw_hm_expert_uid_check(uid) < 0 || !*peer ||
	    strlen(peer) >= KW_HM_REC_PEER_MAX)
		return;
	p = &b->batch[i];
	if (coord >= 0 && next < b->ndim && coord < b->grid[next])
		s = b->scores[dim_off(b, next) + (uint32_t)coord];
	for (uint32_t j = 0; j < p->n; j++)
		if (p->e[j].coord == coord)
			return;   /* a dictionary has one value per subkey */
	if (p->n == KW_CLIENT_BEAM_SUCC) {
		/* full: the lowest-scoring successor gives way to a better one */
		at = 0;
		for (uint32_t j = 1; j < p->n; j++)
			if (p->e[j].score < p->e[at].score)
				at = j;
		b->dropped++;
		if (p->e[at].score >= s)
			return;
	} else {
		at = p->n++;
	}
	en = &p->e[at];
	en->coord = coord;
	en->score = s;
	snprintf(en->uid, sizeof(en->uid), "%s", uid);
	snprintf(en->peer, sizeof(en->peer), "%s", peer);
}

void kw_client_beam_step(struct kw_client_beam *b)
{
	if (b->done)
		return;
	if (b->initial) {
		for (uint32_t i = 0; i < b->n_batch && b->n_cur < b->beam; i++)
			if (b->batch[i].n)
				b->cur[b->n_cur++] = b->batch[i];
		b->n_batch = 0;
		if (b->n_cur < b->beam && b->at_order < b->n_order)
			return;   /* more first-dimension prefixes to try */
		b->initial = false;
		b->dim = 1;
	} else {
		/* the new beam: the batch's prefixes whose record named successors, in order */
		b->n_cur = 0;
		for (uint32_t i = 0; i < b->n_batch; i++)
			if (b->batch[i].n)
				b->cur[b->n_cur++] = b->batch[i];
		b->n_batch = 0;
		b->dim++;
		if (!b->n_cur) {
			b->done = true;   /* "Beam search had to terminate prematurely" */
			return;
		}
	}
	/* for dim_index in range(1, len(grid_scores) - 1): the beam's experts count, then the
	 * beam moves one dimension on */
	if (b->dim + 1 < b->ndim) {
		push_matches(b);
		return;
	}
	push_matches(b);
	b->done = true;
}
