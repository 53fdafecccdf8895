/* board/board.c: sensor reads against a fake sysfs tree (no hardware needed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <kw/board.h>
#include <kw/err.h>

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

static void test_board_reads_millidegrees_from_fake_sysfs(void **state)
{
	char dir[] = "/tmp/kwsysXXXXXX", path[64];
	int32_t mc = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/temp", dir);
	write_file(path, "48312\n");
	assert_int_equal(kw_board_read_temp(path, &mc), 0);
	assert_int_equal(mc, 48312);
	write_file(path, "hot\n");
	assert_int_equal(kw_board_read_temp(path, &mc), -KW_EBADMSG);
	write_file(path, "");
	assert_int_equal(kw_board_read_temp(path, &mc), -KW_EBADMSG);
	write_file(path, "99999999\n");
	assert_int_equal(kw_board_read_temp(path, &mc), -KW_EBADMSG);
	unlink(path);
	assert_int_equal(kw_board_read_temp(path, &mc), -KW_ENOENT);
	rmdir(dir);
}

static void test_board_descriptor_matches_kconfig(void **state)
{
	const struct kw_board_desc *d = kw_board_desc();

	assert_string_equal(d->name, CONFIG_KW_BOARD_NAME);
	assert_string_equal(d->model, CONFIG_KW_BOARD_MODEL);
	assert_string_equal(d->cpu, CONFIG_KW_BOARD_CPU);
	assert_int_equal(d->ram_mib, CONFIG_KW_BOARD_RAM_MIB);
	assert_string_equal(d->thermal_path, CONFIG_KW_BOARD_THERMAL_ZONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_board_reads_millidegrees_from_fake_sysfs),
		cmocka_unit_test(test_board_descriptor_matches_kconfig),
	};
	return cmocka_run_group_tests_name("board", tests, NULL, NULL);
}
