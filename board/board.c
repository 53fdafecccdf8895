/*
 * The board descriptor and the services common to every board: sensor reads through
 * (fake-able) sysfs paths. A board is data, not code: its name, model, CPU, RAM and sensor
 * paths are Kconfig strings set by the board choice (board/Kconfig), so adding a board is a
 * Kconfig entry and a defconfig.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <kw/board.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>

static const struct kw_board_desc g_board = {
	.name = CONFIG_KW_BOARD_NAME,
	.model = CONFIG_KW_BOARD_MODEL,
	.cpu = CONFIG_KW_BOARD_CPU,
	.ram_mib = CONFIG_KW_BOARD_RAM_MIB,
	.thermal_path = CONFIG_KW_BOARD_THERMAL_ZONE,
};

const struct kw_board_desc *kw_board_desc(void)
{
	return &g_board;
}

int kw_board_init(struct kw_node *n)
{
	const struct kw_board_desc *d = kw_board_desc();

	KW_LOG_INF(board, "board %s (%s, %s, %u MiB)", d->name, d->model, d->cpu, d->ram_mib);
	return 0;
}

void kw_board_shutdown(struct kw_node *n)
{
}

int kw_board_read_temp(const char *path, int32_t *mc)
{
	char buf[32], *end;
	ssize_t len;
	long v;
	int fd;

	if (!path)
		path = kw_board_desc()->thermal_path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -KW_EBADMSG;
	buf[len] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end != '\n' && *end != '\0') || v < -300000 || v > 300000)
		return -KW_EBADMSG;
	*mc = (int32_t)v;
	return 0;
}
