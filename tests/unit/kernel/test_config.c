/* kernel/config.c: runtime config parsing is strict, bounded and names the bad line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <kw/config.h>
#include <kw/err.h>

#define PARSE(c, s, e) kw_config_parse((c), (s), strlen(s), (e), sizeof(e))

static void test_config_defaults_come_from_kconfig(void **state)
{
	struct kw_config c;

	kw_config_defaults(&c);
	assert_string_equal(c.data_dir, CONFIG_KW_DATA_DIR);
	assert_int_equal(c.log_level, CONFIG_KW_LOG_LEVEL);
	assert_int_equal(c.shutdown_drain_ms, CONFIG_KW_SHUTDOWN_DRAIN_MS);
}

static void test_config_parses_keys_comments_and_repeated_listen(void **state)
{
	struct kw_config c;
	char err[128] = "";
	const char *f = "# node\n\n  data_dir =  /tmp/kw  # trailing comment\r\n"
			"log_level=4\nlisten = /ip4/127.0.0.1/tcp/1\nlisten=/ip6/::1/tcp/2\n"
			"max_conns_in = 3\nidle_timeout_ms = 5000";

	kw_config_defaults(&c);
	c.n_listen = 0;
	assert_int_equal(PARSE(&c, f, err), 0);
	assert_string_equal(c.data_dir, "/tmp/kw");
	assert_int_equal(c.log_level, 4);
	assert_int_equal(c.n_listen, 2);
	assert_string_equal(c.listen[1], "/ip6/::1/tcp/2");
	assert_int_equal(c.max_conns_in, 3);
	assert_int_equal(c.idle_timeout_ms, 5000);
}

static void test_config_errors_name_the_line(void **state)
{
	static const struct { const char *in; const char *want; } v[] = {
		{ "log_level = 3\nbogus = 1\n", "line 2: unknown key 'bogus'" },
		{ "log_level = 9", "line 1: log_level must be 0..4, got '9'" },
		{ "log_level = -1", "line 1: log_level must be 0..4, got '-1'" },
		{ "\n\nno equals sign", "line 3: expected 'key = value', got 'no equals sign'" },
		{ "max_conns_out = 0", "line 1: connection limit must be 1..65536, got '0'" },
		{ "idle_timeout_ms = 12abc", "line 1: idle_timeout_ms must be 1000..86400000, got '12abc'" },
		{ "data_dir =", "line 1: data_dir must be 1..255 bytes" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct kw_config c;
		char err[128] = "";
		kw_config_defaults(&c);
		assert_int_equal(PARSE(&c, v[i].in, err), -KW_ECONFIG);
		assert_string_equal(err, v[i].want);
	}
}

static void test_config_bounds_lines_files_and_listen_count(void **state)
{
	struct kw_config c;
	char err[128], big[700], many[1024] = "";

	kw_config_defaults(&c);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(PARSE(&c, big, err), -KW_ECONFIG);
	assert_string_equal(err, "line 1: line longer than 512 bytes");
	assert_int_equal(kw_config_parse(&c, big, 70000, err, sizeof(err)), -KW_EMSGSIZE);
	c.n_listen = 0;
	for (int i = 0; i < 9; i++)
		strcat(many, "listen = /ip4/1.2.3.4/tcp/1\n");
	assert_int_equal(PARSE(&c, many, err), -KW_ECONFIG);
	assert_string_equal(err, "line 9: more than 8 listen addresses");
	assert_int_equal(c.n_listen, 8);
	assert_int_equal(kw_config_parse(&c, "log_level=1\0x", 13, err, sizeof(err)), -KW_ECONFIG);
}

static void test_config_load_reports_missing_file(void **state)
{
	struct kw_config c;
	char err[256], path[] = "/tmp/kwcfgXXXXXX";
	int fd;

	kw_config_defaults(&c);
	assert_int_equal(kw_config_load(&c, "/nonexistent/kw.conf", err, sizeof(err)), -KW_ENOENT);
	assert_non_null(strstr(err, "/nonexistent/kw.conf"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "log_level = 2\n", 14), 14);
	close(fd);
	assert_int_equal(kw_config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.log_level, 2);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_come_from_kconfig),
		cmocka_unit_test(test_config_parses_keys_comments_and_repeated_listen),
		cmocka_unit_test(test_config_errors_name_the_line),
		cmocka_unit_test(test_config_bounds_lines_files_and_listen_count),
		cmocka_unit_test(test_config_load_reports_missing_file),
	};
	return cmocka_run_group_tests_name("kernel/config", tests, NULL, NULL);
}
