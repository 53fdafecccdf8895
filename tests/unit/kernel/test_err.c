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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_project_codes_have_distinct_messages),
		cmocka_unit_test(test_err_errno_codes_match_strerror),
	};
	return cmocka_run_group_tests_name("kernel/err", tests, NULL, NULL);
}
