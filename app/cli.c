/*
 * The options, config and control-socket exchange that `kwnode dht` and `kwnode hivemind`
 * share (app/cli.h). Each command keeps its own verbs, usage text and output.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <kw/err.h>
#include <kw/log.h>

#include "cli.h"
#include "dht.h"   /* kw_control_path */

void kw_app_cli_init(struct kw_app_cli *cli, const char *prog)
{
	memset(cli, 0, sizeof(*cli));
	cli->prog = prog;
	cli->wait_ms = 10000;
	kw_log_set_level(1);  /* the output is the result; warnings only with -v */
}

/* 0 taken, 1 not a shared option, -KW_EINVAL a bad value (printed) */
static int shared_option(struct kw_app_cli *cli, int o, const char *arg)
{
	switch (o) {
	case 'b':
		if (cli->n_boot >= KW_CONFIG_BOOTSTRAP_MAX) {
			fprintf(stderr, "%s: at most %d --bootstrap\n", cli->prog,
				KW_CONFIG_BOOTSTRAP_MAX);
			return -KW_EINVAL;
		}
		cli->boot[cli->n_boot++] = arg;
		return 0;
	case 'c': cli->config_file = arg; return 0;
	case 'd': cli->data_dir = arg; return 0;
	case 'w':
		if (kw_config_parse_u32(arg, 100, 600000, &cli->wait_ms) < 0) {
			fprintf(stderr, "%s: --wait-ms '%s': expected 100..600000\n", cli->prog, arg);
			return -KW_EINVAL;
		}
		return 0;
	case 'v': kw_log_set_level(4); return 0;
	default: return 1;
	}
}

int kw_app_cli_getopt(struct kw_app_cli *cli, int argc, char **argv, const char *optstring,
		      const struct option *opts)
{
	int o, ret;

	while ((o = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		ret = shared_option(cli, o, optarg);
		if (ret < 0)
			return KW_APP_CLI_BAD;
		if (ret > 0)
			return o;
	}
	return -1;
}

int kw_app_cli_config(const struct kw_app_cli *cli, struct kw_config *cfg, const char *boot_key)
{
	char err[256];
	int ret, i;

	kw_config_defaults(cfg);
	if (cli->config_file) {
		ret = kw_config_load(cfg, cli->config_file, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "%s: %s%s%s\n", cli->prog,
				ret == -KW_ECONFIG ? cli->config_file : "",
				ret == -KW_ECONFIG ? ": " : "", err);
			return ret;
		}
	}
	if (cli->n_boot && !strcmp(boot_key, "bootstrap"))
		kw_config_clear_bootstrap(cfg);
	else if (cli->n_boot)
		cfg->n_hivemind_bootstrap = 0;
	for (i = 0; i < cli->n_boot; i++) {
		ret = kw_config_set(cfg, boot_key, cli->boot[i], err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "%s: --%s\n", cli->prog, err);
			return ret;
		}
	}
	if (cli->data_dir) {
		ret = kw_config_set(cfg, "data_dir", cli->data_dir, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "%s: --data-dir: %s\n", cli->prog, err);
			return ret;
		}
	}
	return 0;
}

#ifdef CONFIG_KW_NET_KAD_SWARM
int kw_app_control_call(const char *prog, const char *data_dir, const char *line, size_t len,
			char *reply, size_t cap, size_t *got)
{
	struct sockaddr_un sa;
	size_t off = 0;
	int fd;

	*got = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (kw_control_path(data_dir, sa.sun_path, sizeof(sa.sun_path)) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: cannot send to the running node: %s\n", prog,
				strerror(errno));
			close(fd);
			return 1;
		}
		off += (size_t)n;
	}
	while (*got < cap) {
		ssize_t n = read(fd, reply + *got, cap - *got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*got += (size_t)n;
	}
	close(fd);
	return 0;
}
#endif
