/* Board descriptor: Raspberry Pi Zero 2 W. Selected by CONFIG_KW_BOARD_RPIZERO2W. */
#include <kw/board.h>

static const struct kw_board_desc g_board = {
	.name = "rpizero2w",
	.model = "Raspberry Pi Zero 2 W",
	.cpu = "cortex-a53",
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}
