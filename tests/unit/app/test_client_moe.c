/*
 * hivemind's grid beam search (app/client_beam.c) on a fake DHT: a table of prefix records
 * {coordinate: (uid, peer)} as declare_experts writes them. Each example was worked by hand
 * through MoEBeamSearcher._find_best_experts (hivemind moe/client/beam_search.py @ 4bd43b7):
 * which records are read, in which order, and which experts come out, best first. Scores
 * are sums of powers of two so that float sums are exact and ties are real ties.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include <kw/err.h>

#include "../../../app/client.h"

/* one entry of a prefix record */
struct fent {
	const char *key;
	int64_t coord;
	const char *uid;
	const char *peer;
};

#define PEER_A "12D3KooWA"
#define PEER_B "12D3KooWB"

static struct kw_client_beam beam;
static char asked[32][KW_HM_REC_UID_MAX];
static uint32_t n_asked;

/* Drives the search over table t[0..n): every record asked is answered from the table (no
 * entry: the record is absent). The keys asked are kept in asked[]. */
static void run(const struct fent *t, size_t n)
{
	const char *keys[KW_CLIENT_BEAM_MAX];
	uint32_t nk;

	n_asked = 0;
	while ((nk = kw_client_beam_want(&beam, keys, KW_CLIENT_BEAM_MAX)) > 0) {
		for (uint32_t i = 0; i < nk; i++) {
			assert_true(n_asked < 32);
			snprintf(asked[n_asked++], KW_HM_REC_UID_MAX, "%s", keys[i]);
			for (size_t j = 0; j < n; j++)
				if (!strcmp(t[j].key, keys[i]))
					kw_client_beam_feed(&beam, i, t[j].coord, t[j].uid,
							    t[j].peer ? t[j].peer : PEER_A);
		}
		kw_client_beam_step(&beam);
	}
}

static void test_beam_2d_initial_beam_then_best_experts(void **state)
{
	/* grid 3 x 3; dimension 0 scores 0.5 0.75 0.125, dimension 1 0.25 0 0.5 */
	static const float s[] = { 0.5f, 0.75f, 0.125f, 0.25f, 0.0f, 0.5f };
	static const uint32_t grid[] = { 3, 3 };
	static const struct fent t[] = {
		{ "ffn.0.", 0, "ffn.0.0", NULL },
		{ "ffn.0.", 2, "ffn.0.2", NULL },
		{ "ffn.1.", 0, "ffn.1.0", PEER_B },
		{ "ffn.1.", 1, "ffn.1.1", NULL },
		{ "ffn.2.", 2, "ffn.2.2", NULL },
	};

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 2, s, 2), 0);
	run(t, 5);
	/* the initial beam: "ffn.1." (0.75) then "ffn.0." (0.5), both alive; "ffn.2." is never
	 * read. Experts: ffn.0.2 = 0.5 + 0.5, ffn.1.0 = 0.75 + 0.25, ffn.1.1 0.75, ffn.0.0 0.75:
	 * the tie at 1.0 goes to the larger uid, as Python compares the heap's tuples */
	assert_int_equal(n_asked, 2);
	assert_string_equal(asked[0], "ffn.1.");
	assert_string_equal(asked[1], "ffn.0.");
	assert_int_equal(beam.n_best, 2);
	assert_string_equal(beam.best[0].uid, "ffn.1.0");
	assert_string_equal(beam.best[0].peer, PEER_B);
	assert_true(beam.best_score[0] == 1.0f);
	assert_string_equal(beam.best[1].uid, "ffn.0.2");
	assert_true(beam.best_score[1] == 1.0f);
	assert_int_equal(beam.best[1].coord[0], 0);
	assert_int_equal(beam.best[1].coord[1], 2);
}

static void test_beam_2d_absent_prefix_reads_the_next(void **state)
{
	/* the same grid and scores without "ffn.1.": the initial beam reads "ffn.1." and
	 * "ffn.0.", keeps only "ffn.0.", then reads "ffn.2." for its second place */
	static const float s[] = { 0.5f, 0.75f, 0.125f, 0.25f, 0.0f, 0.5f };
	static const uint32_t grid[] = { 3, 3 };
	static const struct fent t[] = {
		{ "ffn.0.", 0, "ffn.0.0", NULL },
		{ "ffn.0.", 2, "ffn.0.2", NULL },
		{ "ffn.2.", 2, "ffn.2.2", NULL },
		{ "ffn.2.", 1, "not an expert uid", NULL },   /* ignored */
		{ "ffn.2.", 0, "ffn.2.7", NULL },               /* outside the grid: ignored */
	};

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 2, s, 2), 0);
	run(t, 5);
	assert_int_equal(n_asked, 3);
	assert_string_equal(asked[2], "ffn.2.");
	assert_int_equal(beam.n_best, 2);
	/* ffn.0.2 = 1.0, ffn.0.0 = 0.75, ffn.2.2 = 0.625 */
	assert_string_equal(beam.best[0].uid, "ffn.0.2");
	assert_string_equal(beam.best[1].uid, "ffn.0.0");
	assert_true(beam.best_score[1] == 0.75f);
}

static void test_beam_3d_extends_the_best_prefixes(void **state)
{
	/* grid 2 x 2 x 2; scores 0.25 0.5 | 0.5 0.125 | 0 0.375; experts e.0.0.1, e.0.1.0,
	 * e.1.0.0, e.1.1.1 declared as hivemind does (e.a. [b] and e.a.b. [c] name the uid) */
	static const float s[] = { 0.25f, 0.5f, 0.5f, 0.125f, 0.0f, 0.375f };
	static const uint32_t grid[] = { 2, 2, 2 };
	static const struct fent t[] = {
		{ "e.0.", 0, "e.0.0.1", NULL }, { "e.0.", 1, "e.0.1.0", NULL },
		{ "e.1.", 0, "e.1.0.0", NULL }, { "e.1.", 1, "e.1.1.1", NULL },
		{ "e.0.0.", 1, "e.0.0.1", NULL }, { "e.0.1.", 0, "e.0.1.0", NULL },
		{ "e.1.0.", 0, "e.1.0.0", NULL }, { "e.1.1.", 1, "e.1.1.1", NULL },
	};

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "e", grid, 3, s, 2), 0);
	run(t, 8);
	/* initial beam e.1. (0.5), e.0. (0.25); its entries are full uids: e.0.0.1 = 1.125,
	 * e.1.0.0 = 1.0, e.1.1.1 = 1.0, e.0.1.0 = 0.375. The next beam: e.1.0. (0.5 + 0.5),
	 * e.0.0. (0.25 + 0.5) over e.1.1. (0.625) and e.0.1. (0.375): only those two are read */
	assert_int_equal(n_asked, 4);
	assert_string_equal(asked[0], "e.1.");
	assert_string_equal(asked[1], "e.0.");
	assert_string_equal(asked[2], "e.1.0.");
	assert_string_equal(asked[3], "e.0.0.");
	assert_int_equal(beam.n_best, 2);
	assert_string_equal(beam.best[0].uid, "e.0.0.1");
	assert_true(beam.best_score[0] == 1.125f);
	assert_string_equal(beam.best[1].uid, "e.1.1.1");
	assert_true(beam.best_score[1] == 1.0f);
}

static void test_beam_3d_empty_beam_ends_early(void **state)
{
	/* the second-level records are all absent: the search ends with the experts the first
	 * level named ("Beam search had to terminate prematurely") */
	static const float s[] = { 0.25f, 0.5f, 0.5f, 0.125f, 0.0f, 0.375f };
	static const uint32_t grid[] = { 2, 2, 2 };
	static const struct fent t[] = {
		{ "e.0.", 1, "e.0.1.0", NULL },
		{ "e.1.", 1, "e.1.1.1", NULL },
	};

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "e", grid, 3, s, 1), 0);
	run(t, 2);
	/* beam 1: e.1. only; e.1.1. absent */
	assert_int_equal(n_asked, 2);
	assert_string_equal(asked[1], "e.1.1.");
	assert_int_equal(beam.n_best, 1);
	assert_string_equal(beam.best[0].uid, "e.1.1.1");
}

static void test_beam_1d_flat_experts_and_ties(void **state)
{
	/* 1-D uids are declared under "x.i." subkey -1; equal scores: the higher index first */
	static const float s[] = { 0.5f, 0.75f, 0.25f, 0.125f };
	static const float z[] = { 0, 0, 0 };
	static const uint32_t grid[] = { 4 };
	static const uint32_t grid3[] = { 3 };
	static const struct fent t[] = {
		{ "x.0.", -1, "x.0", NULL }, { "x.2.", -1, "x.2", NULL },
		{ "x.3.", -1, "x.3", NULL }, { "x.1.", -1, "x.1", NULL },
	};

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "x", grid, 1, s, 2), 0);
	run(t, 3);   /* x.1. absent */
	assert_int_equal(n_asked, 3);
	assert_string_equal(asked[0], "x.1.");
	assert_string_equal(asked[1], "x.0.");
	assert_string_equal(asked[2], "x.2.");
	assert_int_equal(beam.n_best, 2);
	assert_string_equal(beam.best[0].uid, "x.0");
	assert_string_equal(beam.best[1].uid, "x.2");
	assert_true(beam.best_score[1] == 0.25f);

	assert_int_equal(kw_client_beam_init(&beam, "x", grid3, 1, z, 1), 0);
	run(t, 4);
	assert_int_equal(n_asked, 1);
	assert_string_equal(asked[0], "x.2.");
	assert_string_equal(beam.best[0].uid, "x.2");
}

static void test_beam_nothing_alive_and_bad_arguments(void **state)
{
	static const float s[] = { 0.5f, 0.75f, 0.25f, 0.125f };
	static const uint32_t grid[] = { 2, 2 }, zero[] = { 2, 0 };

	(void)state;
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 2, s, 2), 0);
	run(NULL, 0);
	assert_int_equal(n_asked, 2);   /* both first-dimension prefixes tried */
	assert_int_equal(beam.n_best, 0);
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 2, s, 0), -KW_EINVAL);
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 2, s, KW_CLIENT_BEAM_MAX + 1),
			 -KW_EINVAL);
	assert_int_equal(kw_client_beam_init(&beam, "f.n", grid, 2, s, 2), -KW_EINVAL);
	assert_int_equal(kw_client_beam_init(&beam, "ffn", zero, 2, s, 2), -KW_EINVAL);
	assert_int_equal(kw_client_beam_init(&beam, "ffn", grid, 0, s, 2), -KW_EINVAL);
}

static void test_beam_keeps_the_best_successors_when_full(void **state)
{
	/* a record naming more successors than KW_CLIENT_BEAM_SUCC: the best-scoring are kept,
	 * so the best expert is still found */
	static float s[2 + 64];
	static const uint32_t grid[] = { 2, 64 };
	static char uids[64][16];
	static struct fent t[64];

	(void)state;
	s[0] = 1.0f;
	for (int j = 0; j < 64; j++) {
		s[2 + j] = (float)j / 64.0f;
		snprintf(uids[j], sizeof(uids[j]), "m.0.%d", j);
		t[j] = (struct fent){ "m.0.", j, uids[j], NULL };
	}
	assert_int_equal(kw_client_beam_init(&beam, "m", grid, 2, s, 2), 0);
	run(t, 64);
	assert_int_equal(beam.dropped, 64 - KW_CLIENT_BEAM_SUCC);
	assert_int_equal(beam.n_best, 2);
	assert_string_equal(beam.best[0].uid, "m.0.63");
	assert_string_equal(beam.best[1].uid, "m.0.62");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_beam_2d_initial_beam_then_best_experts),
		cmocka_unit_test(test_beam_2d_absent_prefix_reads_the_next),
		cmocka_unit_test(test_beam_3d_extends_the_best_prefixes),
		cmocka_unit_test(test_beam_3d_empty_beam_ends_early),
		cmocka_unit_test(test_beam_1d_flat_experts_and_ties),
		cmocka_unit_test(test_beam_nothing_alive_and_bad_arguments),
		cmocka_unit_test(test_beam_keeps_the_best_successors_when_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
