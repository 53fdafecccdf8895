/* kernel/err.c: every project code has its own message; errno codes pass through. */
#include <string.h>

#include "harness.h"
#include <kw/err.h>

static void test_err_project_codes_have_distinct_messages(void **state)
{
	for (int e = KW_EBASE + 1; e < KW_ELAST; e++) {
		assert_string_not_equal(kw_strerror(-e), "unknown error");
		for (int f = e + 1; f < KW_ELAST; f++)
			assert_string_not_equal(kw_strerror(-e), kw_strerror(-f));
	}
}

static void test_err_errno_codes_match_strerror(void **state)
{
	assert_string_equal(kw_strerror(-KW_ENOMEM), strerror(ENOMEM));
	assert_string_equal(kw_strerror(KW_EPROTO), strerror(EPROTO));
	assert_string_equal(kw_strerror(0), "success");
	assert_string_equal(kw_strerror(-(KW_ELAST + 5)), "unknown error");
}

static void test_err_enospc_means_output_buffer_too_small(void **state)
{
	assert_string_equal(kw_strerror(-KW_ENOSPC), "output buffer too small");
	assert_string_not_equal(kw_strerror(-KW_ENOBUFS), kw_strerror(-KW_ENOSPC));
}

static void test_err_errf_formats_and_returns_code(void **state)
{
	char err[16];

	assert_int_equal(kw_errf(-KW_EINVAL, err, sizeof(err), "bad %s %d", "port", 70000),
			 -KW_EINVAL);
	assert_string_equal(err, "bad port 70000");
	/* cut to fit, still terminated */
	assert_int_equal(kw_errf(-KW_ERANGE, err, 6, "%s", "abcdefgh"), -KW_ERANGE);
	assert_string_equal(err, "abcde");
	/* no buffer: only the code */
	assert_int_equal(kw_errf(-KW_EPROTO, NULL, 0, "x"), -KW_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_project_codes_have_distinct_messages),
		cmocka_unit_test(test_err_errno_codes_match_strerror),
		cmocka_unit_test(test_err_enospc_means_output_buffer_too_small),
		cmocka_unit_test(test_err_errf_formats_and_returns_code),
	};
	return cmocka_run_group_tests_name("kernel/err", tests, NULL, NULL);
}
