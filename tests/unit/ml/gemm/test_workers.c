/* ml/gemm/workers.c: the pool runs every chunk exactly once and kw_q8_gemm_mt equals one thread. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <kw/err.h>
#include <kw/ml/half.h>
#include <kw/ml/workers.h>

struct count_job {
	atomic_uint hits[KW_WORKERS_MAX];
	atomic_uint calls;
	atomic_uint n_seen;
};

static void count_fn(void *p, unsigned i, unsigned n)
{
	struct count_job *j = p;

	atomic_fetch_add(&j->hits[i], 1);
	atomic_fetch_add(&j->calls, 1);
	atomic_store(&j->n_seen, n);
}

static void test_workers_run_calls_every_chunk_exactly_once(void **state)
{
	static const unsigned sizes[] = { 1, 2, 3, 5 };

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct kw_workers wk;
		struct count_job j;

		assert_int_equal(kw_workers_init(&wk, sizes[s]), 0);
		assert_int_equal(kw_workers_count(&wk), sizes[s]);
		assert_int_equal(wk.started, sizes[s] - 1);
		for (unsigned rep = 0; rep < 200; rep++) {
			unsigned nch = rep % 9;   /* 0 .. 8 chunks, fewer and more than threads */

			memset(&j, 0, sizeof(j));
			kw_workers_run(&wk, count_fn, &j, nch);
			assert_int_equal(atomic_load(&j.calls), nch);
			for (unsigned i = 0; i < KW_WORKERS_MAX; i++)
				assert_int_equal(atomic_load(&j.hits[i]), i < nch);
			if (nch)
				assert_int_equal(atomic_load(&j.n_seen), nch);
		}
		kw_workers_fini(&wk);
		kw_workers_fini(&wk);   /* second fini is harmless */
	}
}

static void test_workers_zero_means_config_or_online_cores(void **state)
{
	struct kw_workers wk;

	assert_int_equal(kw_workers_init(&wk, 0), 0);
	assert_true(kw_workers_count(&wk) >= 1);
	if (CONFIG_KW_ML_WORKERS > 0)
		assert_int_equal(kw_workers_count(&wk), CONFIG_KW_ML_WORKERS);
	kw_workers_fini(&wk);
	assert_int_equal(kw_workers_init(NULL, 1), -KW_EINVAL);
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 16);
}

static void test_workers_gemm_equals_single_thread_bitwise(void **state)
{
	enum { M = 3, N = 300, K = 130 };
	uint64_t s = 77;
	size_t wl = kw_q8w_size(N, K), al = kw_q8_act_scratch_size(M, K);
	void *wm = malloc(wl), *am = malloc(al);
	float x[M * K], bias[N], y1[M * N], yn[M * N];
	const struct kw_kernels *kk = kw_kernels_best();
	struct kw_q8w w;
	struct kw_q8_act a;

	assert_int_equal(kw_q8w_init(&w, N, K, wm, wl), 0);
	for (size_t r = 0; r < N; r++) {
		int8_t q[K];
		uint16_t d[(K + 31) / 32];

		for (size_t c = 0; c < K; c++)
			q[c] = (int8_t)rnd(&s);
		for (size_t b = 0; b < (K + 31) / 32; b++)
			d[b] = kw_f32_to_fp16((float)(rnd(&s) % 1000 + 1) * 1e-4f);
		assert_int_equal(kw_q8w_set_row(&w, r, q, d), 0);
		bias[r] = (float)(rnd(&s) % 100) * 0.01f;
	}
	for (size_t i = 0; i < M * K; i++)
		x[i] = (float)(int)(rnd(&s) % 2001 - 1000) * 1e-3f;
	assert_int_equal(kw_q8_act_init(&a, M, K, am, al), 0);
	assert_int_equal(kw_q8_quantize(kk, x, K, &a), 0);
	assert_int_equal(kw_q8_gemm(kk, &w, &a, bias, y1, N), 0);
	for (unsigned t = 1; t <= 4; t++) {
		struct kw_workers wk;

		assert_int_equal(kw_workers_init(&wk, t), 0);
		memset(yn, 0, sizeof(yn));
		assert_int_equal(kw_q8_gemm_mt(&wk, kk, &w, &a, bias, yn, N), 0);
		assert_memory_equal(y1, yn, sizeof(y1));
		kw_workers_fini(&wk);
	}
	memset(yn, 0, sizeof(yn));
	assert_int_equal(kw_q8_gemm_mt(NULL, kk, &w, &a, bias, yn, N), 0);
	assert_memory_equal(y1, yn, sizeof(y1));
	assert_int_equal(kw_q8_gemm_mt(NULL, kk, &w, &a, bias, yn, N - 1), -KW_EINVAL);
	free(wm);
	free(am);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workers_run_calls_every_chunk_exactly_once),
		cmocka_unit_test(test_workers_zero_means_config_or_online_cores),
		cmocka_unit_test(test_workers_gemm_equals_single_thread_bitwise),
	};
	return cmocka_run_group_tests_name("ml/workers", tests, NULL, NULL);
}
