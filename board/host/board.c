/* Board descriptor: Host PC. Selected by CONFIG_KW_BOARD_HOST. */
#include <kw/board.h>

static const struct kw_board_desc g_board = {
	.name = "host",
	.model = "Host PC",
	.cpu = "native",
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}
