/*
 * board/: the descriptor, the bounded sysfs parsers and the readers against a fake sysfs
 * tree (no hardware needed), and the libgpiod backend's error paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "unit/board/fakesys.h"
#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/cpu.h>
#include <kw/err.h>

#define S(lit) lit, sizeof(lit) - 1

static int setup(void **state)
{
	static struct fakesys f;

	fakesys_init(&f);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fakesys_free(*state);
	return 0;
}

/* ---- descriptor ---- */

static void test_board_descriptor_matches_kconfig(void **state)
{
	const struct kw_board_desc *d = kw_board_desc();

	assert_string_equal(d->name, CONFIG_KW_BOARD_NAME);
	assert_string_equal(d->model, CONFIG_KW_BOARD_MODEL);
	assert_string_equal(d->cpu, CONFIG_KW_BOARD_CPU);
	assert_int_equal(d->ram_mib, CONFIG_KW_BOARD_RAM_MIB);
	assert_int_equal(d->cores, CONFIG_KW_BOARD_CORES);
	assert_int_equal(d->arena_kib, CONFIG_KW_ARENA_KIB);
	assert_string_equal(d->thermal_zone, CONFIG_KW_BOARD_THERMAL_ZONE);
	assert_int_equal(!!(d->sensors & KW_BOARD_SENSE_POWER),
			 IS_ENABLED(CONFIG_KW_SENSOR_POWER));
	assert_int_equal(!!(d->sensors & KW_BOARD_SENSE_THERMAL),
			 IS_ENABLED(CONFIG_KW_SENSOR_THERMAL));
	assert_int_equal(!!(d->sensors & KW_BOARD_SENSE_THROTTLE),
			 IS_ENABLED(CONFIG_KW_SENSOR_THROTTLE));
	assert_int_equal(!!(d->sensors & KW_BOARD_SENSE_GPIO), IS_ENABLED(CONFIG_KW_GPIO));
#ifdef CONFIG_KW_GPIO
	assert_string_equal(d->gpio_chip, CONFIG_KW_GPIO_CHIP);
	assert_int_equal(d->power_good.offset, CONFIG_KW_GPIO_POWER_GOOD);
	assert_int_equal(d->low_battery.offset, CONFIG_KW_GPIO_LOW_BATTERY);
	assert_int_equal(d->status_led.offset, CONFIG_KW_GPIO_STATUS_LED);
#endif
}

static void test_board_arm64_boards_expect_neon(void **state)
{
	const struct kw_board_desc *d = kw_board_desc();

	if (!IS_ENABLED(CONFIG_KW_ARCH_ARM64))
		skip();
	assert_true(d->cpu_features & KW_CPU_ARM64_ASIMD);
	assert_int_equal(!!(d->cpu_features & KW_CPU_ARM64_ASIMDDP),
			 IS_ENABLED(CONFIG_KW_BOARD_RPI5));
}

/* ---- parsers ---- */

static void test_sysfs_long_accepts_a_number_and_one_newline(void **state)
{
	long v = 0;

	assert_int_equal(kw_sysfs_parse_long(S("42\n"), 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(kw_sysfs_parse_long(S("-5"), -10, 10, &v), 0);
	assert_int_equal(v, -5);
}

static void test_sysfs_long_refuses_other_shapes(void **state)
{
	long v = 7;

	assert_int_equal(kw_sysfs_parse_long(S(""), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("\n"), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("-"), -9, 9, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("4 2"), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("42\n\n"), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("+4"), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(kw_sysfs_parse_long(S("4\0" "2"), 0, 100, &v), -KW_EBADMSG);
	assert_int_equal(v, 7);
}

static void test_sysfs_long_range_checked_without_overflow(void **state)
{
	long v = 7;

	assert_int_equal(kw_sysfs_parse_long(S("101"), 0, 100, &v), -KW_ERANGE);
	assert_int_equal(kw_sysfs_parse_long(S("-1"), 0, 100, &v), -KW_ERANGE);
	assert_int_equal(kw_sysfs_parse_long(S("99999999999999999999"), 0, 100, &v), -KW_ERANGE);
	assert_int_equal(kw_sysfs_parse_long(S("999999999999999999999"), 0, 100, &v),
			 -KW_EBADMSG);
	assert_int_equal(v, 7);
}

static void test_thermal_parse_millidegrees_in_range(void **state)
{
	int32_t mc = 0;

	assert_int_equal(kw_thermal_parse(S("48312\n"), &mc), 0);
	assert_int_equal(mc, 48312);
	assert_int_equal(kw_thermal_parse(S("-5000\n"), &mc), 0);
	assert_int_equal(mc, -5000);
	assert_int_equal(kw_thermal_parse(S("hot\n"), &mc), -KW_EBADMSG);
	assert_int_equal(kw_thermal_parse(S("250001"), &mc), -KW_ERANGE);
	assert_int_equal(kw_thermal_parse(S("-273151"), &mc), -KW_ERANGE);
}

static void test_power_type_words(void **state)
{
	enum kw_power_type t;

	assert_int_equal(kw_power_parse_type(S("Mains\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_MAINS);
	assert_int_equal(kw_power_parse_type(S("USB_PD\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_USB);
	assert_int_equal(kw_power_parse_type(S("Battery\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_BATTERY);
	assert_int_equal(kw_power_parse_type(S("UPS"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_UPS);
	assert_int_equal(kw_power_parse_type(S("Wireless\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_WIRELESS);
	/* a type a newer kernel adds is not an error, just not ours */
	assert_int_equal(kw_power_parse_type(S("Solar\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_UNKNOWN);
	assert_int_equal(kw_power_parse_type(S("Batter\n"), &t), 0);
	assert_int_equal(t, KW_POWER_TYPE_UNKNOWN);
}

static void test_power_type_refuses_non_words(void **state)
{
	enum kw_power_type t;

	assert_int_equal(kw_power_parse_type(S(""), &t), -KW_EBADMSG);
	assert_int_equal(kw_power_parse_type(S("\n"), &t), -KW_EBADMSG);
	assert_int_equal(kw_power_parse_type(S("Mai\x01ns"), &t), -KW_EBADMSG);
	assert_int_equal(kw_power_parse_type(S("Mains\0"), &t), -KW_EBADMSG);
}

static void test_power_status_words(void **state)
{
	enum kw_power_status s;

	assert_int_equal(kw_power_parse_status(S("Discharging\n"), &s), 0);
	assert_int_equal(s, KW_POWER_STATUS_DISCHARGING);
	assert_int_equal(kw_power_parse_status(S("Not charging\n"), &s), 0);
	assert_int_equal(s, KW_POWER_STATUS_NOT_CHARGING);
	assert_int_equal(kw_power_parse_status(S("Charging\n"), &s), 0);
	assert_int_equal(s, KW_POWER_STATUS_CHARGING);
	assert_int_equal(kw_power_parse_status(S("Full\n"), &s), 0);
	assert_int_equal(s, KW_POWER_STATUS_FULL);
	assert_int_equal(kw_power_parse_status(S("Unknown\n"), &s), 0);
	assert_int_equal(s, KW_POWER_STATUS_UNKNOWN);
	assert_int_equal(kw_power_parse_status(S("\x7f"), &s), -KW_EBADMSG);
}

static void test_throttle_parse_sysfs_and_vcgencmd_forms(void **state)
{
	uint32_t f = 1;

	assert_int_equal(kw_throttle_parse(S("0\n"), &f), 0);
	assert_int_equal(f, 0);
	assert_int_equal(kw_throttle_parse(S("50005\n"), &f), 0);
	assert_int_equal(f, KW_THROTTLE_UNDERVOLT | KW_THROTTLE_THROTTLED |
			 KW_THROTTLE_UNDERVOLT_SEEN | KW_THROTTLE_THROTTLED_SEEN);
	assert_int_equal(kw_throttle_parse(S("0x80008"), &f), 0);
	assert_int_equal(f, KW_THROTTLE_SOFT_TEMP | KW_THROTTLE_SOFT_TEMP_SEEN);
	assert_int_equal(kw_throttle_parse(S("throttled=0x2\n"), &f), 0);
	assert_int_equal(f, KW_THROTTLE_FREQ_CAPPED);
	assert_int_equal(kw_throttle_parse(S("ffffffff"), &f), 0);
	assert_int_equal(f, 0xffffffffu);
}

static void test_throttle_parse_refuses_garbage(void **state)
{
	uint32_t f = 5;

	assert_int_equal(kw_throttle_parse(S(""), &f), -KW_EBADMSG);
	assert_int_equal(kw_throttle_parse(S("0x"), &f), -KW_EBADMSG);
	assert_int_equal(kw_throttle_parse(S("throttled="), &f), -KW_EBADMSG);
	assert_int_equal(kw_throttle_parse(S("123456789"), &f), -KW_EBADMSG);
	assert_int_equal(kw_throttle_parse(S("5g"), &f), -KW_EBADMSG);
	assert_int_equal(kw_throttle_parse(S("0x-1"), &f), -KW_EBADMSG);
	assert_int_equal(f, 5);
}

/* ---- bounded reads ---- */

static void test_sysfs_read_names_the_missing_file(void **state)
{
	struct fakesys *fs = *state;
	char buf[KW_SYSFS_VALUE_MAX + 1], err[256];

	assert_int_equal(kw_sysfs_read(fs->root, "sys/nope", buf, sizeof(buf), err, sizeof(err)),
			 -KW_ENOENT);
	assert_non_null(strstr(err, fs->root));
	assert_non_null(strstr(err, "sys/nope"));
}

static void test_sysfs_read_refuses_a_long_file(void **state)
{
	struct fakesys *fs = *state;
	char buf[KW_SYSFS_VALUE_MAX + 1], err[256], text[KW_SYSFS_VALUE_MAX + 2];

	memset(text, '7', KW_SYSFS_VALUE_MAX);
	text[KW_SYSFS_VALUE_MAX] = '\0';
	fakesys_write(fs, "sys/v", text);
	assert_int_equal(kw_sysfs_read(fs->root, "sys/v", buf, sizeof(buf), err, sizeof(err)),
			 KW_SYSFS_VALUE_MAX);
	strcat(text, "7");
	fakesys_write(fs, "sys/v", text);
	assert_int_equal(kw_sysfs_read(fs->root, "sys/v", buf, sizeof(buf), err, sizeof(err)),
			 -KW_EMSGSIZE);
	assert_non_null(strstr(err, "sys/v"));
	assert_non_null(strstr(err, "longer than"));
}

/* ---- power supplies ---- */

static void supply(struct fakesys *fs, const char *name, const char *type, const char *online,
		   const char *capacity, const char *status)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "sys/class/power_supply/%s/type", name);
	fakesys_write(fs, rel, type);
	snprintf(rel, sizeof(rel), "sys/class/power_supply/%s/online", name);
	fakesys_write(fs, rel, online);
	snprintf(rel, sizeof(rel), "sys/class/power_supply/%s/capacity", name);
	fakesys_write(fs, rel, capacity);
	snprintf(rel, sizeof(rel), "sys/class/power_supply/%s/status", name);
	fakesys_write(fs, rel, status);
}

static void test_power_no_class_dir_is_a_board_without_supplies(void **state)
{
	struct fakesys *fs = *state;
	struct kw_power_state ps;

	assert_int_equal(kw_power_read(fs->root, &ps, NULL, 0), 0);
	assert_int_equal(ps.n_supplies, 0);
	assert_int_equal(ps.n_external, 0);
	assert_int_equal(ps.battery_pct, -1);
}

static void test_power_mains_online_and_battery_charge(void **state)
{
	struct fakesys *fs = *state;
	struct kw_power_state ps;

	supply(fs, "AC", "Mains\n", "1\n", NULL, NULL);
	supply(fs, "BAT0", "Battery\n", NULL, "80\n", "Charging\n");
	assert_int_equal(kw_power_read(fs->root, &ps, NULL, 0), 0);
	assert_int_equal(ps.n_supplies, 2);
	assert_int_equal(ps.n_external, 1);
	assert_true(ps.external_online);
	assert_int_equal(ps.n_batteries, 1);
	assert_int_equal(ps.battery_pct, 80);
	assert_int_equal(ps.battery_status, KW_POWER_STATUS_CHARGING);
}

static void test_power_unplugged_usb_and_lowest_battery(void **state)
{
	struct fakesys *fs = *state;
	struct kw_power_state ps;

	supply(fs, "usb", "USB\n", "0\n", NULL, NULL);
	supply(fs, "BAT0", "Battery\n", NULL, "70\n", "Discharging\n");
	supply(fs, "BAT1", "Battery\n", NULL, "12\n", "Discharging\n");
	assert_int_equal(kw_power_read(fs->root, &ps, NULL, 0), 0);
	assert_false(ps.external_online);
	assert_int_equal(ps.n_batteries, 2);
	assert_int_equal(ps.battery_pct, 12);
	assert_int_equal(ps.battery_status, KW_POWER_STATUS_DISCHARGING);
}

static void test_power_absent_battery_is_ignored(void **state)
{
	struct fakesys *fs = *state;
	struct kw_power_state ps;

	supply(fs, "BAT0", "Battery\n", NULL, "0\n", "Unknown\n");
	fakesys_write(fs, "sys/class/power_supply/BAT0/present", "0\n");
	assert_int_equal(kw_power_read(fs->root, &ps, NULL, 0), 0);
	assert_int_equal(ps.n_batteries, 0);
	assert_int_equal(ps.battery_pct, -1);
}

static void test_power_malformed_capacity_is_counted_and_named(void **state)
{
	struct fakesys *fs = *state;
	struct kw_power_state ps;
	char err[256] = "";

	supply(fs, "AC", "Mains\n", "1\n", NULL, NULL);
	supply(fs, "BAT0", "Battery\n", NULL, "150\n", "Discharging\n");
	assert_int_equal(kw_power_read(fs->root, &ps, err, sizeof(err)), 0);
	assert_int_equal(ps.n_errors, 1);
	assert_int_equal(ps.battery_pct, -1);       /* the bad battery is skipped ... */
	assert_true(ps.external_online);             /* ... the good supply still counts */
	assert_non_null(strstr(err, "power_supply/BAT0/capacity"));
	assert_non_null(strstr(err, "0..100"));
}

/* ---- thermal ---- */

static void test_thermal_reads_the_named_zone(void **state)
{
	struct fakesys *fs = *state;
	int32_t mc = 0;

	fakesys_write(fs, "sys/class/thermal/thermal_zone0/temp", "48312\n");
	fakesys_write(fs, "sys/class/thermal/thermal_zone1/temp", "90000\n");
	assert_int_equal(kw_thermal_read(fs->root, "thermal_zone0", &mc, NULL, 0), 0);
	assert_int_equal(mc, 48312);
}

static void test_thermal_without_zone_takes_the_hottest(void **state)
{
	struct fakesys *fs = *state;
	int32_t mc = 0;

	fakesys_write(fs, "sys/class/thermal/thermal_zone0/temp", "48312\n");
	fakesys_write(fs, "sys/class/thermal/thermal_zone3/temp", "61000\n");
	fakesys_write(fs, "sys/class/thermal/thermal_zone2/temp", "garbage\n");  /* skipped */
	fakesys_write(fs, "sys/class/thermal/cooling_device0/cur_state", "3\n");
	assert_int_equal(kw_thermal_read(fs->root, "", &mc, NULL, 0), 0);
	assert_int_equal(mc, 61000);
}

static void test_thermal_errors_name_the_file(void **state)
{
	struct fakesys *fs = *state;
	char err[256];
	int32_t mc;

	assert_int_equal(kw_thermal_read(fs->root, "", &mc, err, sizeof(err)), -KW_ENOENT);
	assert_int_equal(kw_thermal_read(fs->root, "thermal_zone0", &mc, err, sizeof(err)),
			 -KW_ENOENT);
	assert_non_null(strstr(err, "thermal_zone0/temp"));
	fakesys_write(fs, "sys/class/thermal/thermal_zone0/temp", "999999\n");
	assert_int_equal(kw_thermal_read(fs->root, "thermal_zone0", &mc, err, sizeof(err)),
			 -KW_ERANGE);
	assert_non_null(strstr(err, "thermal_zone0/temp"));
	fakesys_write(fs, "sys/class/thermal/thermal_zone0/temp", "4x\n");
	assert_int_equal(kw_thermal_read(fs->root, "thermal_zone0", &mc, err, sizeof(err)),
			 -KW_EBADMSG);
	assert_non_null(strstr(err, "not a number"));
}

/* ---- throttle ---- */

static void test_throttle_reads_the_firmware_file(void **state)
{
	struct fakesys *fs = *state;
	const char *rel = "sys/devices/platform/soc/soc:firmware/get_throttled";
	char err[256];
	uint32_t f = 0;

	fakesys_write(fs, rel, "50005\n");
	assert_int_equal(kw_throttle_read(fs->root, rel, &f, err, sizeof(err)), 0);
	assert_true(f & KW_THROTTLE_UNDERVOLT);
	fakesys_write(fs, rel, "junk\n");
	assert_int_equal(kw_throttle_read(fs->root, rel, &f, err, sizeof(err)), -KW_EBADMSG);
	assert_non_null(strstr(err, "get_throttled"));
	fakesys_write(fs, rel, NULL);
	assert_int_equal(kw_throttle_read(fs->root, rel, &f, err, sizeof(err)), -KW_ENOENT);
	assert_int_equal(kw_throttle_read(fs->root, "", &f, err, sizeof(err)), -KW_ENOENT);
}

/* ---- GPIO (libgpiod); gpio-sim needs root and configfs, so only the error paths here ---- */

static void test_gpiod_missing_chip_is_named(void **state)
{
	struct kw_board_line in[1] = { { 3, false } };
	struct kw_gpio g = { 0 };
	char err[256] = "";
	int ret;

	ret = kw_gpiod_open(&g, "kw-no-such-chip", in, 1, NULL, 0, err, sizeof(err));
	if (IS_ENABLED(CONFIG_KW_GPIO))
		assert_int_equal(ret, -KW_ENOENT);
	else
		assert_int_equal(ret, -KW_ENOTSUP);
	assert_non_null(strstr(err, "kw-no-such-chip"));
	assert_null(g.ops);
}

static void test_gpiod_missing_chip_can_be_retried(void **state)
{
	struct kw_gpio g = { 0 };
	char err[256] = "";

	if (!IS_ENABLED(CONFIG_KW_GPIO))
		skip();
	/* a failed open leaves nothing held: the second error is the same, not "busy" */
	assert_int_equal(kw_gpiod_open(&g, "/dev/kw-no-such-gpiochip", NULL, 0, NULL, 0, err,
				       sizeof(err)), -KW_ENOENT);
	assert_int_equal(kw_gpiod_open(&g, "/dev/kw-no-such-gpiochip", NULL, 0, NULL, 0, err,
				       sizeof(err)), -KW_ENOENT);
	assert_non_null(strstr(err, "/dev/kw-no-such-gpiochip"));
}

static void test_gpiod_empty_chip_name_is_refused(void **state)
{
	struct kw_gpio g = { 0 };
	char err[256] = "";

	if (!IS_ENABLED(CONFIG_KW_GPIO))
		skip();
	assert_int_equal(kw_gpiod_open(&g, "", NULL, 0, NULL, 0, err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "no GPIO chip"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_board_descriptor_matches_kconfig),
		cmocka_unit_test(test_board_arm64_boards_expect_neon),
		cmocka_unit_test(test_sysfs_long_accepts_a_number_and_one_newline),
		cmocka_unit_test(test_sysfs_long_refuses_other_shapes),
		cmocka_unit_test(test_sysfs_long_range_checked_without_overflow),
		cmocka_unit_test(test_thermal_parse_millidegrees_in_range),
		cmocka_unit_test(test_power_type_words),
		cmocka_unit_test(test_power_type_refuses_non_words),
		cmocka_unit_test(test_power_status_words),
		cmocka_unit_test(test_throttle_parse_sysfs_and_vcgencmd_forms),
		cmocka_unit_test(test_throttle_parse_refuses_garbage),
		T(test_sysfs_read_names_the_missing_file),
		T(test_sysfs_read_refuses_a_long_file),
		T(test_power_no_class_dir_is_a_board_without_supplies),
		T(test_power_mains_online_and_battery_charge),
		T(test_power_unplugged_usb_and_lowest_battery),
		T(test_power_absent_battery_is_ignored),
		T(test_power_malformed_capacity_is_counted_and_named),
		T(test_thermal_reads_the_named_zone),
		T(test_thermal_without_zone_takes_the_hottest),
		T(test_thermal_errors_name_the_file),
		T(test_throttle_reads_the_firmware_file),
		cmocka_unit_test(test_gpiod_missing_chip_is_named),
		cmocka_unit_test(test_gpiod_missing_chip_can_be_retried),
		cmocka_unit_test(test_gpiod_empty_chip_name_is_refused),
	};
	return cmocka_run_group_tests_name("board", tests, NULL, NULL);
}
