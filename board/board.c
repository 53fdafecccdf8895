/*
 * The board descriptor. A board is data, not code: every field is a Kconfig value set by
 * the board choice (board/Kconfig) or by the board's defconfig (pool sizes), so adding a
 * board is a Kconfig entry and a defconfig. The sensor readers live beside this file
 * (sysfs.c, power.c, thermal.c, throttle.c, gpio.c).
 */
#include <stdio.h>

#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

#ifndef CONFIG_KW_BOARD_THROTTLE_FILE
#define CONFIG_KW_BOARD_THROTTLE_FILE ""
#endif
#ifndef CONFIG_KW_GPIO_CHIP
#define CONFIG_KW_GPIO_CHIP ""
#define CONFIG_KW_GPIO_POWER_GOOD (-1)
#define CONFIG_KW_GPIO_LOW_BATTERY (-1)
#define CONFIG_KW_GPIO_STATUS_LED (-1)
#endif
#ifdef CONFIG_KW_NET_SWARM
#define BOARD_CONNS_IN CONFIG_KW_NET_MAX_CONNS_IN
#define BOARD_CONNS_OUT CONFIG_KW_NET_MAX_CONNS_OUT
#else
#define BOARD_CONNS_IN 0
#define BOARD_CONNS_OUT 0
#endif

static const struct kw_board_desc g_board = {
	.name = CONFIG_KW_BOARD_NAME,
	.model = CONFIG_KW_BOARD_MODEL,
	.cpu = CONFIG_KW_BOARD_CPU,
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.cores = CONFIG_KW_BOARD_CORES,
	.cpu_features = CONFIG_KW_BOARD_CPU_FEATURES,
	.arena_kib = CONFIG_KW_ARENA_KIB,
	.timer_max = CONFIG_KW_TIMER_MAX,
	.max_conns_in = BOARD_CONNS_IN,
	.max_conns_out = BOARD_CONNS_OUT,
	.sensors = (IS_ENABLED(CONFIG_KW_SENSOR_POWER) ? KW_BOARD_SENSE_POWER : 0) |
		   (IS_ENABLED(CONFIG_KW_SENSOR_THERMAL) ? KW_BOARD_SENSE_THERMAL : 0) |
		   (IS_ENABLED(CONFIG_KW_SENSOR_THROTTLE) ? KW_BOARD_SENSE_THROTTLE : 0) |
		   (IS_ENABLED(CONFIG_KW_GPIO) ? KW_BOARD_SENSE_GPIO : 0),
	.thermal_zone = CONFIG_KW_BOARD_THERMAL_ZONE,
	.throttle_file = CONFIG_KW_BOARD_THROTTLE_FILE,
	.gpio_chip = CONFIG_KW_GPIO_CHIP,
	.power_good = { CONFIG_KW_GPIO_POWER_GOOD,
			IS_ENABLED(CONFIG_KW_GPIO_POWER_GOOD_ACTIVE_LOW) },
	.low_battery = { CONFIG_KW_GPIO_LOW_BATTERY,
			 IS_ENABLED(CONFIG_KW_GPIO_LOW_BATTERY_ACTIVE_LOW) },
	.status_led = { CONFIG_KW_GPIO_STATUS_LED, false },
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}

int kw_board_init(struct kw_node *n)
{
	const struct kw_board_desc *d = kw_board_desc();
	char cores[16] = "any";

	if (d->cores)
		snprintf(cores, sizeof(cores), "%u", d->cores);
	KW_LOG_INF(board, "board %s (%s, cpu %s, %s cores, %u MiB; arena %u KiB, conns %u in / "
		   "%u out)", d->name, d->model, d->cpu, cores, d->ram_mib, d->arena_kib,
		   d->max_conns_in, d->max_conns_out);
	return 0;
}

void kw_board_shutdown(struct kw_node *n)
{
}
