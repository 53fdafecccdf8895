/*
 * The board a node runs on: a constant descriptor built from Kconfig data (board/Kconfig)
 * plus readings of its sensors through sysfs. Sensor paths can be re-rooted (tests point them
 * at a fake sysfs tree), so everything here is testable on a PC.
 */
#ifndef KW_BOARD_H
#define KW_BOARD_H

#include <stdint.h>

struct kw_node;

struct kw_board_desc {
	const char *name;          /* "rpi4" */
	const char *model;         /* human-readable */
	const char *cpu;           /* "cortex-a72" */
	uint32_t ram_mib;
	const char *thermal_path;  /* millidegrees C, sysfs */
};

/* The descriptor compiled in (one board per configuration). */
const struct kw_board_desc *kw_board_desc(void);

/* Init-table hooks: log the board at start-up. Return: 0. */
int kw_board_init(struct kw_node *n);
void kw_board_shutdown(struct kw_node *n);

/*
 * Reads the SoC temperature from `path` (NULL: the board's). Return: 0 and *mc set in
 * millidegrees C, -KW_ENOENT when the file is missing, -KW_EBADMSG when it is not a number.
 */
int kw_board_read_temp(const char *path, int32_t *mc);

#endif /* KW_BOARD_H */
