/*
 * `kwnode status [--json] [-d DIR | -c FILE]`: asks the node running with that data directory
 * (its control socket <data_dir>/control.sock, app/control.c) whether it is contributing, and
 * prints the summary (or the JSON document with --json). Exit codes (doc/status.md):
 *   0  the node runs and contributes
 *   3  the node runs but is paused or draining (the summary says why)
 *   1  no node runs with that data directory, or it gave no answer
 *   2  usage error
 * The node's reply is "json ...", "text ..." and "exit N" lines (kw_status_control_reply).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/err.h>

#include "dht.h"

int kw_cmd_status(int argc, char **argv);

#define STATUS_REPLY_MAX (KW_DHT_REPLY_MAX + 1)

static char g_reply[STATUS_REPLY_MAX];  /* up to the control socket's reply size */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode status [options]\n"
		"  -d, --data-dir DIR  the running node's data directory (default %s)\n"
		"  -c, --config FILE   take data_dir from this config file\n"
		"      --json          print the JSON document instead of the summary\n"
		"  -h, --help          this help\n"
		"exit code: 0 contributing, 3 paused or draining, 1 no node runs, 2 usage\n",
		CONFIG_KW_DATA_DIR);
}

/* Reads the node's whole reply into g_reply. Return: its length, or -errno / -KW_E*. */
static long ask(const char *data_dir, char *why, size_t cap)
{
	static const char req[] = "status\n";
	struct sockaddr_un sa;
	struct timeval tv = { 5, 0 };  /* a node that accepts but never answers */
	size_t got = 0;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (kw_control_path(data_dir, sa.sun_path, sizeof(sa.sun_path)) < 0)
		return kw_errf(-KW_ERANGE, why, cap, "data directory path too long for a socket");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kw_errf(-errno, why, cap, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return kw_errf(-e, why, cap, "cannot connect to %s: %s", sa.sun_path, strerror(e));
	}
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		int e = errno;

		close(fd);
		return kw_errf(-e, why, cap, "cannot send to %s: %s", sa.sun_path, strerror(e));
	}
	for (;;) {
		ssize_t n = read(fd, g_reply + got, sizeof(g_reply) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(g_reply) - 1)
			break;
	}
	close(fd);
	g_reply[got] = '\0';
	return (long)got;
}

int kw_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_config cfg;
	const char *config_file = NULL, *data_dir = NULL;
	char err[256];
	bool json = false;
	int o, code = -1;
	long len;
	char *p, *nl;

	optind = 1;
	while ((o = getopt_long(argc, argv, "d:c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': data_dir = optarg; break;
		case 'c': config_file = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kwnode status: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	kw_config_defaults(&cfg);
	if (config_file) {
		int ret = kw_config_load(&cfg, config_file, err, sizeof(err));

		if (ret < 0) {
			fprintf(stderr, "kwnode status: %s%s%s\n", ret == -KW_ECONFIG ? config_file : "",
				ret == -KW_ECONFIG ? ": " : "", err);
			return 2;
		}
	}
	if (data_dir && kw_config_set(&cfg, "data_dir", data_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "kwnode status: --data-dir: %s\n", err);
		return 2;
	}
	len = ask(cfg.data_dir, err, sizeof(err));
	if (len < 0) {
		fprintf(stderr, "kwnode status: no node is running with data directory %s (%s)\n",
			cfg.data_dir, err);
		return 1;
	}
	for (p = g_reply; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (!strncmp(p, "json ", 5) && json)
			printf("%s\n", p + 5);
		else if (!strncmp(p, "text ", 5) && !json)
			printf("%s\n", p + 5);
		else if (!strncmp(p, "error ", 6))
			fprintf(stderr, "kwnode status: %s\n", p + 6);
		else if (!strncmp(p, "exit ", 5))
			code = atoi(p + 5);
	}
	if (code < 0) {
		fprintf(stderr, "kwnode status: the node at %s closed the control connection "
			"without an answer\n", cfg.data_dir);
		return 1;
	}
	return code;
}
