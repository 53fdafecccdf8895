/* Board descriptor: qemu-aarch64 user mode. Selected by CONFIG_KW_BOARD_QEMU_ARM64. */
#include <kw/board.h>

static const struct kw_board_desc g_board = {
	.name = "qemu_arm64",
	.model = "qemu-aarch64 user mode",
	.cpu = "cortex-a72",
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}
