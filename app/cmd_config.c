/*
 * `kwnode config check FILE`: reads a config file exactly as `kwnode run -c FILE` does (same
 * key table, same range and cross-key checks, doc/config.md) and touches nothing else: no data
 * directory, no identity key, no socket. Packaging and owners use it to validate a file before
 * (re)starting the service (doc/install.md). Exit codes as `run`: 0 ok, 1 an error in the file,
 * 2 usage (bad arguments, a file that cannot be read).
 */
#include <stdio.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>

int kw_cmd_config(int argc, char **argv);

static void config_usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode config check FILE\n"
		"Reads FILE as `kwnode run -c FILE` would and reports the first error (naming the\n"
		"line), or prints `FILE: ok` and the settings that decide where the node keeps its\n"
		"state and listens. Changes nothing on disk.\n");
}

int kw_cmd_config(int argc, char **argv)
{
	static struct kw_config cfg;   /* ~10 KiB of address tables: not on the stack */
	char err[256];
	int ret, i;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		config_usage(stdout);
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "check")) {
		config_usage(stderr);
		return 2;
	}
	kw_config_defaults(&cfg);
	err[0] = '\0';
	ret = kw_config_load(&cfg, argv[2], err, sizeof(err));
	if (ret < 0) {
		/* as `run`: a bad line is a config error (1), an unreadable file a usage error (2) */
		fprintf(stderr, "kwnode config: %s%s%s\n", ret == -KW_ECONFIG ? argv[2] : "",
			ret == -KW_ECONFIG ? ": " : "", err);
		return ret == -KW_ECONFIG || ret == -KW_EMSGSIZE ? 1 : 2;
	}
	printf("%s: ok\n", argv[2]);
	printf("data_dir %s\n", cfg.data_dir);
	for (i = 0; i < cfg.n_listen; i++)
		printf("listen %s\n", cfg.listen[i]);
	printf("shutdown_drain_ms %u\n", cfg.node.shutdown_drain_ms);
	return 0;
}
