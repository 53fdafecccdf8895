/* Board descriptor: Raspberry Pi 4 Model B. Selected by CONFIG_KW_BOARD_RPI4. */
#include <kw/board.h>

static const struct kw_board_desc g_board = {
	.name = "rpi4",
	.model = "Raspberry Pi 4 Model B",
	.cpu = "cortex-a72",
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}
