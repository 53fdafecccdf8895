/* Board descriptor: Raspberry Pi 5. Selected by CONFIG_KW_BOARD_RPI5. */
#include <kw/board.h>

static const struct kw_board_desc g_board = {
	.name = "rpi5",
	.model = "Raspberry Pi 5",
	.cpu = "cortex-a76",
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}
