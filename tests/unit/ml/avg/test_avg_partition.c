/* Load balancing and part assignment (ml/avg/partition.c) against hivemind @ 4bd43b7
 * load_balancing.py and partition.py: the expected vectors were computed by running that
 * source's hagenbach_bishoff and TensorPartContainer split loop (numpy float64 arithmetic,
 * reproduced in plain Python) on the same inputs. */
#include "harness.h"

#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

static void test_avg_hagenbach_bishoff_matches_hivemind(void **state)
{
	const double s3[3] = { 1, 1, 1 }, s110[3] = { 1, 1, 0 };
	uint64_t a[3];

	assert_int_equal(kw_avg_hagenbach_bishoff(10, s3, 3, a), 0);
	assert_int_equal(a[0], 4); assert_int_equal(a[1], 3); assert_int_equal(a[2], 3);
	assert_int_equal(kw_avg_hagenbach_bishoff(1000003, s110, 3, a), 0);
	assert_int_equal(a[0], 500002); assert_int_equal(a[1], 500001); assert_int_equal(a[2], 0);
}

static void test_avg_hagenbach_bishoff_rejects_zero_and_negative_scores(void **state)
{
	const double z[2] = { 0, 0 }, neg[2] = { 1, -1 };
	uint64_t a[2];

	assert_int_equal(kw_avg_hagenbach_bishoff(10, z, 2, a), -KW_EINVAL);
	assert_int_equal(kw_avg_hagenbach_bishoff(10, neg, 2, a), -KW_EINVAL);
	assert_int_equal(kw_avg_hagenbach_bishoff(10, z, 0, a), -KW_EINVAL);
}

static void test_avg_load_balance_gives_clients_nothing(void **state)
{
	/* bandwidth None for nodes, 0 for clients (averager.py) -> scores 1 / 0 */
	const double bw[4] = { KW_AVG_BW_NONE, 0.0, KW_AVG_BW_NONE, KW_AVG_BW_NONE };
	const double all0[2] = { 0.0, 0.0 };
	uint64_t a[4];

	assert_int_equal(kw_avg_load_balance(6037, bw, 4, a), 0);
	assert_int_equal(a[0], 2013); assert_int_equal(a[1], 0);
	assert_int_equal(a[2], 2012); assert_int_equal(a[3], 2012);
	assert_int_equal(kw_avg_load_balance(6037, all0, 2, a), -KW_EINVAL);
}

static void test_avg_load_balance_splits_by_announced_bandwidth(void **state)
{
	/* our stand-in for hivemind's LP: proportional to bandwidth, None = mean */
	const double bw[3] = { 100.0, 300.0, KW_AVG_BW_NONE };
	uint64_t a[3];

	assert_int_equal(kw_avg_load_balance(1000, bw, 3, a), 0);
	assert_int_equal(a[0] + a[1] + a[2], 1000);
	assert_int_equal(a[0], 167); assert_int_equal(a[1], 500); assert_int_equal(a[2], 333);
}

static void test_avg_part_values_follow_the_compression_ratio(void **state)
{
	assert_int_equal(kw_avg_part_values(KW_COMP_NONE, 524288), 131072);
	assert_int_equal(kw_avg_part_values(KW_COMP_FLOAT16, 524288), 262144);
	assert_int_equal(kw_avg_part_values(KW_COMP_BLOCKWISE_8BIT, 524288), 524288);
	assert_int_equal(kw_avg_part_values(KW_COMP_COUNT, 524288), 0);
}

static void check_split(const uint64_t *numel, size_t nt, const double *scores, size_t np,
			size_t pv, const uint64_t *want_alloc, const uint32_t *want_parts)
{
	uint64_t alloc[8], total = 0;
	struct kw_avg_part parts[64];
	uint32_t first[9];
	size_t n = 0;

	for (size_t t = 0; t < nt; t++)
		total += numel[t];
	assert_int_equal(kw_avg_hagenbach_bishoff(total, scores, np, alloc), 0);
	for (size_t i = 0; i < np; i++)
		assert_int_equal(alloc[i], want_alloc[i]);
	assert_int_equal(kw_avg_partition(numel, nt, alloc, np, pv, parts, 64, first, &n), 0);
	for (size_t i = 0; i < np; i++)
		assert_int_equal(first[i + 1] - first[i], want_parts[i]);
	assert_int_equal(first[np], n);
	/* the parts tile every tensor in order */
	for (size_t k = 1; k < n; k++)
		if (parts[k].tensor == parts[k - 1].tensor)
			assert_int_equal(parts[k].off, parts[k - 1].off + parts[k - 1].len);
}

static void test_avg_partition_matches_hivemind_part_counts(void **state)
{
	const uint64_t n1[3] = { 1000, 37, 5000 }, n2[2] = { 100000, 3 },
		       n3[3] = { 1048576, 777, 12345 };
	const double s1[4] = { 1, 1, 1, 0 }, s2[5] = { 1, 0, 1, 1, 1 },
		     s3[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	const uint64_t a1[4] = { 2013, 2012, 2012, 0 }, a2[5] = { 25001, 0, 25001, 25001, 25000 },
		       a3[8] = { 132713, 132713, 132712, 132712, 132712, 132712, 132712, 132712 };
	const uint32_t p1[4] = { 17, 15, 17, 0 }, p2[5] = { 6, 0, 6, 6, 8 },
		       p3[8] = { 1, 1, 1, 1, 1, 1, 1, 3 };

	check_split(n1, 3, s1, 4, 128, a1, p1);
	check_split(n2, 2, s2, 5, 4096, a2, p2);
	check_split(n3, 3, s3, 8, 131072, a3, p3);
}

static void test_avg_partition_reports_too_many_parts(void **state)
{
	const uint64_t numel[1] = { 1000 }, alloc[2] = { 500, 500 };
	struct kw_avg_part parts[4];
	uint32_t first[3];
	size_t n;

	assert_int_equal(kw_avg_partition(numel, 1, alloc, 2, 100, parts, 4, first, &n), -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_avg_hagenbach_bishoff_matches_hivemind),
		cmocka_unit_test(test_avg_hagenbach_bishoff_rejects_zero_and_negative_scores),
		cmocka_unit_test(test_avg_load_balance_gives_clients_nothing),
		cmocka_unit_test(test_avg_load_balance_splits_by_announced_bandwidth),
		cmocka_unit_test(test_avg_part_values_follow_the_compression_ratio),
		cmocka_unit_test(test_avg_partition_matches_hivemind_part_counts),
		cmocka_unit_test(test_avg_partition_reports_too_many_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
