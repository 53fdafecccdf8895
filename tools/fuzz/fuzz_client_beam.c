/*
 * libFuzzer target: hivemind's beam search (app/client_beam.c) over prefix records whose
 * entries come from the input, as `kwnode moe` feeds it what the DHT returned. Byte 0: the
 * grid (1..3 dimensions of 1..4), byte 1: beam size 1..8; then 1-byte scores per grid cell;
 * then, per record asked, entries of 3 bytes (coordinate as int8, then two bytes making a uid
 * "p.<a>.<b>..." or an invalid one). Checks: the search ends within a bound of reads, keeps
 * at most beam experts, best first, each uid once, each within the grid with its score the
 * sum of its coordinates' scores. Built against libkw.a.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../app/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_client_beam b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t grid[3], ndim, beam, nsc = 0, rounds = 0;
	float sc[12];
	const char *keys[KW_CLIENT_BEAM_MAX];
	uint32_t nk;
	size_t at;

	if (size < 2)
		return 0;
	ndim = 1 + data[0] % 3;
	for (uint32_t d = 0; d < ndim; d++) {
		grid[d] = 1 + ((data[0] >> (2 + 2 * d)) & 3);
		nsc += grid[d];
	}
	beam = 1 + data[1] % KW_CLIENT_BEAM_MAX;
	at = 2;
	for (uint32_t i = 0; i < nsc; i++)
		sc[i] = at < size ? (float)(int8_t)data[at++] / 16.0f : 0.0f;
	if (kw_client_beam_init(&b, "p", grid, ndim, sc, beam) < 0)
		abort();
	while ((nk = kw_client_beam_want(&b, keys, KW_CLIENT_BEAM_MAX)) > 0) {
		if (++rounds > 16)
			abort();   /* at most grid[0] initial reads plus one per dimension */
		for (uint32_t i = 0; i < nk; i++) {
			uint32_t n = at < size ? data[at++] % 8 : 0;

			for (uint32_t j = 0; j < n && at + 3 <= size; j++, at += 3) {
				char uid[64];
				int64_t c = (int8_t)data[at];

				if (data[at + 1] & 0x80)
					snprintf(uid, sizeof(uid), "p.%u.%u.%u", data[at + 1] & 3,
						 data[at + 2] & 3, (data[at + 2] >> 2) & 3);
				else if (data[at + 1] & 0x40)
					snprintf(uid, sizeof(uid), "p.%u", data[at + 2] & 7);
				else
					snprintf(uid, sizeof(uid), "p.%u.%u", data[at + 1] & 7,
						 data[at + 2] & 7);
				if (data[at + 2] == 0xff)
					snprintf(uid, sizeof(uid), "p..1");
				kw_client_beam_feed(&b, i, c, uid, "12D3KooWpeer");
			}
		}
		kw_client_beam_step(&b);
	}
	if (b.n_best > beam)
		abort();
	for (uint32_t i = 0; i < b.n_best; i++) {
		float s = 0;

		if (b.best[i].ndim != ndim)
			abort();
		for (uint32_t d = 0, off = 0; d < ndim; off += grid[d], d++) {
			if (b.best[i].coord[d] >= grid[d])
				abort();
			s += sc[off + b.best[i].coord[d]];
		}
		if (s != b.best_score[i] || (i && b.best_score[i] > b.best_score[i - 1]))
			abort();
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(b.best[i].uid, b.best[j].uid))
				abort();
	}
	return 0;
}
