/* kernel/log.c: the runtime level filters, messages are bounded single lines, the journal
 * stream gets syslog priorities. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	int old;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_WRN)
		skip();  /* warnings are compiled out: nothing to filter */
	old = kw_log_set_level(KW_LOG_LEVEL_WRN);

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

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_ERR)
		skip();  /* logging compiled out */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kw_log_set_hook(hook, &c);
	KW_LOG_ERR(test, "%s", big);
	kw_log_set_hook(NULL, NULL);
	assert_int_equal(c.n, 1);
	assert_true(strlen(c.msg) < 512);
	assert_true(strlen(c.msg) > 400);
}

/* Bytes that reached stderr while fn ran (stderr pointed at a pipe meanwhile). */
static long stderr_bytes(void (*fn)(void), char *buf, size_t cap)
{
	int p[2], saved = dup(STDERR_FILENO);
	long n;

	assert_true(saved >= 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, cap);
	close(p[0]);
	return n < 0 ? 0 : n;
}
static void log_one(void) { KW_LOG_ERR(test, "to stderr? %d", 7); }

static void test_log_stderr_copy_can_be_stopped_while_hook_still_gets_lines(void **state)
{
	struct cap c = { 0 };
	char out[256];
	long n;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_ERR)
		skip();  /* logging compiled out */
	kw_log_set_hook(hook, &c);
	assert_int_equal(kw_log_set_stderr(0), 1);
	n = stderr_bytes(log_one, out, sizeof(out));
	assert_int_equal(n, 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.msg, "test: to stderr? 7");
	assert_int_equal(kw_log_set_stderr(1), 0);
	n = stderr_bytes(log_one, out, sizeof(out));
	kw_log_set_hook(NULL, NULL);
	assert_true(n > 0);
	assert_int_equal(out[n - 1], '\n');
	assert_non_null(memmem(out, (size_t)n, "ERR test: to stderr? 7", 22));
	assert_int_equal(c.n, 2);
}

/* Points JOURNAL_STREAM at what stderr is (or at something else) and detects. */
static int detect_with_stream(bool match)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + (match ? 0 : 1));
	assert_int_equal(setenv("JOURNAL_STREAM", v, 1), 0);
	return kw_log_detect_journal();
}

static void test_log_journal_stream_lines_carry_syslog_priority_and_no_timestamp(void **state)
{
	char out[256];
	long n;
	int p[2], saved = dup(STDERR_FILENO);

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_ERR)
		skip();  /* logging compiled out */
	/* systemd's stream is stderr itself: detect while stderr is the pipe we read */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	assert_int_equal(detect_with_stream(true), 1);
	log_one();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "<3>ERR test: to stderr? 7\n");  /* LOG_ERR = 3 */
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(kw_log_detect_journal(), 0);
}

static void test_log_journal_stream_of_another_file_leaves_plain_lines(void **state)
{
	char out[256];
	long n;

	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_ERR)
		skip();  /* logging compiled out */
	/* a stale JOURNAL_STREAM (stderr redirected elsewhere) must not switch the format */
	assert_int_equal(detect_with_stream(false), 0);
	assert_int_equal(kw_log_journal(), 0);
	n = stderr_bytes(log_one, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(out[0] >= '0' && out[0] <= '9');  /* the monotonic timestamp */
	assert_non_null(strstr(out, " ERR test: to stderr? 7\n"));
	unsetenv("JOURNAL_STREAM");
	kw_log_detect_journal();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_runtime_level_filters_lower_priorities),
		cmocka_unit_test(test_log_long_message_is_truncated_not_overrun),
		cmocka_unit_test(test_log_stderr_copy_can_be_stopped_while_hook_still_gets_lines),
		cmocka_unit_test(test_log_journal_stream_lines_carry_syslog_priority_and_no_timestamp),
		cmocka_unit_test(test_log_journal_stream_of_another_file_leaves_plain_lines),
	};
	return cmocka_run_group_tests_name("kernel/log", tests, NULL, NULL);
}
