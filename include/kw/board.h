/*
 * The board a node runs on: a constant descriptor built from Kconfig data (board/Kconfig,
 * chosen by the defconfig: one board per build, no code per board) and readers for its
 * sensors through Linux interfaces (doc/board.md):
 *
 *   power    /sys/class/power_supply/<name>/{type,online,status,capacity}   board/power.c
 *   thermal  /sys/class/thermal/thermal_zone<N>/temp (millidegrees C)        board/thermal.c
 *   throttle the Raspberry Pi firmware's get_throttled flags                 board/throttle.c
 *   gpio     power-good / low-battery inputs, status LED (libgpiod v1)       board/gpio.c
 *
 * Every path is read under a root directory (`sysfs_root`, "/" on a board) so tests run the
 * same readers against a fake tree. File reads are bounded (at most KW_SYSFS_VALUE_MAX bytes),
 * numbers are range-checked, and every error text names the file. The byte parsers are
 * separate functions taking (buf, len) so each has a libFuzzer target (tools/fuzz/).
 *
 * Nothing here allocates: directories are listed with getdents64 into a stack buffer.
 */
#ifndef KW_BOARD_H
#define KW_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_node;

/* Which sensors a board has (kw_board_desc.sensors). */
#define KW_BOARD_SENSE_POWER    (1u << 0)  /* /sys/class/power_supply */
#define KW_BOARD_SENSE_THERMAL  (1u << 1)  /* /sys/class/thermal */
#define KW_BOARD_SENSE_THROTTLE (1u << 2)  /* Raspberry Pi firmware get_throttled */
#define KW_BOARD_SENSE_GPIO     (1u << 3)  /* libgpiod lines */

/* A GPIO line of the board: offset on the board's chip, -1 when the board has none. */
struct kw_board_line {
	int offset;
	bool active_low;
};

struct kw_board_desc {
	const char *name;           /* "rpi4" */
	const char *model;          /* human-readable */
	const char *cpu;            /* "cortex-a72" */
	uint32_t ram_mib;
	uint32_t cores;             /* 0: not fixed (a host) */
	unsigned cpu_features;      /* KW_CPU_* bits the board's CPU is known to have */
	/* default pool sizes this build carries (set per board by its defconfig) */
	uint32_t arena_kib;
	uint32_t timer_max;
	uint32_t max_conns_in, max_conns_out;  /* 0 without networking */
	unsigned sensors;           /* KW_BOARD_SENSE_* */
	const char *thermal_zone;   /* "thermal_zone0"; "" = the hottest zone */
	const char *throttle_file;  /* relative to the sysfs root; "" = none */
	const char *gpio_chip;      /* gpiod_chip_open_lookup() descriptor; "" = no GPIO */
	struct kw_board_line power_good, low_battery, status_led;
};

/* The descriptor compiled in (one board per configuration). */
const struct kw_board_desc *kw_board_desc(void);

/* Init-table hooks: log the board at start-up. Return: 0. */
int kw_board_init(struct kw_node *n);
void kw_board_shutdown(struct kw_node *n);

/* ---- bounded sysfs value parsers (fuzzed: tools/fuzz/fuzz_board_*.c) ---- */

/* Longest sysfs value we read; sysfs attributes we use are a word or a number. */
#define KW_SYSFS_VALUE_MAX 64

/*
 * A decimal integer as sysfs prints it: optional '-', digits, optional one '\n'; nothing
 * else. Return: 0 and *out set, -KW_EBADMSG if not that shape, -KW_ERANGE if outside lo..hi.
 */
int kw_sysfs_parse_long(const char *buf, size_t len, long lo, long hi, long *out);

/* SoC temperature in millidegrees C (-273150..250000). Same errors as above. */
int kw_thermal_parse(const char *buf, size_t len, int32_t *mc);

enum kw_power_type {
	KW_POWER_TYPE_UNKNOWN = 0,
	KW_POWER_TYPE_MAINS,     /* "Mains": an AC adapter */
	KW_POWER_TYPE_USB,       /* "USB", "USB_C", "USB_PD", ... : an external source */
	KW_POWER_TYPE_BATTERY,   /* "Battery" */
	KW_POWER_TYPE_UPS,       /* "UPS": online = on mains, capacity = its battery */
	KW_POWER_TYPE_WIRELESS,  /* "Wireless": an external source */
};
/* The `type` attribute. Unknown words give KW_POWER_TYPE_UNKNOWN and 0 (kernels add types);
 * -KW_EBADMSG for bytes that are not a word (empty, control bytes, too long). */
int kw_power_parse_type(const char *buf, size_t len, enum kw_power_type *out);

enum kw_power_status {
	KW_POWER_STATUS_UNKNOWN = 0,
	KW_POWER_STATUS_CHARGING,
	KW_POWER_STATUS_DISCHARGING,
	KW_POWER_STATUS_NOT_CHARGING,
	KW_POWER_STATUS_FULL,
};
/* A battery's `status` ("Charging", "Discharging", "Not charging", "Full", "Unknown").
 * Same rules as kw_power_parse_type. */
int kw_power_parse_status(const char *buf, size_t len, enum kw_power_status *out);

/*
 * Raspberry Pi firmware throttling flags, the value `vcgencmd get_throttled` prints
 * (https://www.raspberrypi.com/documentation/computers/os.html#get_throttled):
 * bit 0 under-voltage detected, 1 Arm frequency capped, 2 currently throttled, 3 soft
 * temperature limit active; bits 16..19 say the same four "has occurred since boot".
 */
#define KW_THROTTLE_UNDERVOLT       (1u << 0)
#define KW_THROTTLE_FREQ_CAPPED     (1u << 1)
#define KW_THROTTLE_THROTTLED       (1u << 2)
#define KW_THROTTLE_SOFT_TEMP       (1u << 3)
#define KW_THROTTLE_UNDERVOLT_SEEN  (1u << 16)
#define KW_THROTTLE_CAPPED_SEEN     (1u << 17)
#define KW_THROTTLE_THROTTLED_SEEN  (1u << 18)
#define KW_THROTTLE_SOFT_TEMP_SEEN  (1u << 19)
#define KW_THROTTLE_NOW_MASK        0xfu
/*
 * The flags as hexadecimal ("50005", "0x50005") or vcgencmd's "throttled=0x50005", with an
 * optional '\n'; at most 8 hex digits. Return: 0 or -KW_EBADMSG.
 */
int kw_throttle_parse(const char *buf, size_t len, uint32_t *flags);

/* ---- readers (root: the sysfs root, e.g. "/" or a test's fake tree) ---- */

/*
 * Reads `root`/`rel` (at most KW_SYSFS_VALUE_MAX bytes) into buf (cap > that) and NUL-
 * terminates it. Return: its length, -KW_ENOENT (missing), -KW_EMSGSIZE (longer than the
 * limit), or -errno; err (may be NULL) then names the file.
 */
int kw_sysfs_read(const char *root, const char *rel, char *buf, size_t cap, char *err,
		  size_t errlen);

/* What the power supplies say, summed up over every supply the kernel lists. */
struct kw_power_state {
	uint8_t n_supplies;        /* supplies listed (at most KW_POWER_SUPPLIES_MAX read) */
	uint8_t n_external;        /* Mains/USB/Wireless/UPS supplies with an `online` file */
	uint8_t n_batteries;       /* Battery/UPS supplies with a capacity */
	bool external_online;      /* any external supply online */
	int8_t battery_pct;        /* the lowest capacity of a present battery; -1 none */
	enum kw_power_status battery_status;  /* of that battery */
	uint8_t n_errors;          /* supplies skipped because a file was malformed */
};
#define KW_POWER_SUPPLIES_MAX 16
/*
 * Reads every `root`/sys/class/power_supply/<name>. A missing class directory is a board
 * without supplies: 0 with n_supplies 0. A malformed file skips that supply, counts it in
 * n_errors and leaves the first reason in err. Batteries whose `present` is 0 are ignored.
 * Return: 0, or -errno when the directory cannot be listed.
 */
int kw_power_read(const char *root, struct kw_power_state *st, char *err, size_t errlen);

/*
 * Reads the SoC temperature: `root`/sys/class/thermal/<zone>/temp, or with zone "" (or NULL)
 * the highest over every thermal_zone* (zones that cannot be read are skipped).
 * Return: 0 and *mc, -KW_ENOENT when no zone exists, or the reader's/parser's error (err
 * names the file).
 */
int kw_thermal_read(const char *root, const char *zone, int32_t *mc, char *err,
		    size_t errlen);

/* Reads `root`/`rel` as get_throttled flags. Return: 0, -KW_ENOENT, -KW_EBADMSG, -errno. */
int kw_throttle_read(const char *root, const char *rel, uint32_t *flags, char *err,
		     size_t errlen);

/* ---- GPIO: a small ops table so the policy runs against libgpiod or a fake ---- */

struct kw_gpio;
struct kw_gpio_ops {
	/* Logical value of an input (active_low applied): 1, 0, or -KW_E*. */
	int (*get)(struct kw_gpio *g, int offset);
	/* Drives an output to its logical value. Return: 0 or -KW_E*. */
	int (*set)(struct kw_gpio *g, int offset, int value);
	void (*close)(struct kw_gpio *g);
};
struct kw_gpio {
	const struct kw_gpio_ops *ops;
	void *priv;
};

/*
 * libgpiod v1 backend (CONFIG_KW_GPIO): opens `chip` with gpiod_chip_open_lookup and
 * requests the lines of `in` (n_in inputs, offsets < 0 skipped) and `out` (n_out outputs,
 * driven to 0), consumer "kwnode". Start-up only: libgpiod allocates its chip object.
 * Return: 0; -KW_ENOENT when the chip does not exist, -KW_EINVAL when an offset is beyond the
 * chip, -KW_EBUSY when a line is held by another consumer, -KW_ENOTSUP without libgpiod;
 * err names the chip (and line). `g` is valid until g->ops->close(g).
 */
int kw_gpiod_open(struct kw_gpio *g, const char *chip, const struct kw_board_line *in,
		  size_t n_in, const struct kw_board_line *out, size_t n_out, char *err,
		  size_t errlen);

#endif /* KW_BOARD_H */
