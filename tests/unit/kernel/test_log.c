/* kernel/log.c: the runtime level filters, messages are bounded single lines. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include <kw/log.h>

struct cap { int n; int level; char msg[600]; };

static void hook(int level, const char *module, const char *msg, void *arg)
{
	struct cap *c = (struct cap *)arg;
	c->n++;
	c->level = level;
	snprintf(c->msg, sizeof(c->msg), "%s: %s", module, msg);
}

static void test_log_runtime_level_filters_lower_priorities(void **state)
{
	struct cap c = { 0 };
	int old = kw_log_set_level(KW_LOG_LEVEL_WRN);

	kw_log_set_hook(hook, &c);
	KW_LOG_INF(test, "hidden %d", 1);
	assert_int_equal(c.n, 0);
	KW_LOG_WRN(test, "shown %d", 2);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.level, KW_LOG_LEVEL_WRN);
	assert_string_equal(c.msg, "test: shown 2");
	assert_int_equal(kw_log_set_level(9), KW_LOG_LEVEL_WRN);  /* clamped to 4 */
	assert_int_equal(kw_log_get_level(), 4);
	kw_log_set_hook(NULL, NULL);
	kw_log_set_level(old);
}

static void test_log_long_message_is_truncated_not_overrun(void **state)
{
	struct cap c = { 0 };
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kw_log_set_hook(hook, &c);
	KW_LOG_ERR(test, "%s", big);
	kw_log_set_hook(NULL, NULL);
	assert_int_equal(c.n, 1);
	assert_true(strlen(c.msg) < 512);
	assert_true(strlen(c.msg) > 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_runtime_level_filters_lower_priorities),
		cmocka_unit_test(test_log_long_message_is_truncated_not_overrun),
	};
	return cmocka_run_group_tests_name("kernel/log", tests, NULL, NULL);
}
