/*
 * What the one-shot network commands (`kwnode dht`, `kwnode hivemind`) share around their own
 * verbs: the options every one of them takes (-b -c -d -w -v), the config they build from a
 * file and those options, and the exchange of one request line with a node already running
 * on the same data directory (its control socket, app/control.c). Private to app/.
 */
#ifndef KW_APP_CLI_H
#define KW_APP_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/app.h>

/* The shared options as given; strings point into argv (the caller's, for the process). */
struct kw_app_cli {
	const char *prog;          /* "kwnode dht": the prefix of every message */
	const char *config_file;   /* -c FILE, or NULL */
	const char *data_dir;      /* -d DIR, or NULL */
	const char *boot[KW_CONFIG_BOOTSTRAP_MAX];  /* -b MULTIADDR, in order */
	int n_boot;
	uint32_t wait_ms;          /* -w MS: how long a transient node waits to join */
};

/* Resets *cli for prog, wait_ms 10000, and the log level to warnings (-v raises it). */
void kw_app_cli_init(struct kw_app_cli *cli, const char *prog);

/*
 * getopt_long (optind reset to 1 on the first call is the caller's) that takes the shared
 * options itself: 'b' (bootstrap), 'c' (config), 'd' (data-dir), 'w' (wait-ms, 100..600000)
 * and 'v' (verbose); optstring and opts must give them those letters.
 * Return: the next option that is not a shared one (getopt's '?' included), -1 at the end,
 * or KW_APP_CLI_BAD: a bad value, already printed as "<prog>: ..." (the command exits 2).
 */
#define KW_APP_CLI_BAD (-2)
int kw_app_cli_getopt(struct kw_app_cli *cli, int argc, char **argv, const char *optstring,
		      const struct option *opts);

/*
 * *cfg from Kconfig's defaults, then -c FILE, then the options: -b replaces the list named
 * boot_key ("bootstrap" or "hivemind_bootstrap") of the file, -d the data directory.
 * Return: 0, or a negative KW_E* code (already printed; the command exits 2).
 */
int kw_app_cli_config(const struct kw_app_cli *cli, struct kw_config *cfg, const char *boot_key);

/*
 * Sends line[0..len) to the node serving <data_dir>/control.sock and reads its answer into
 * reply (up to cap bytes; *got its length) until the node closes the connection.
 * Return: 0 answered, -1 no node answers there (the caller starts its own), 1 the node
 * accepted but the line could not be sent (printed; the command exits 1).
 */
int kw_app_control_call(const char *prog, const char *data_dir, const char *line, size_t len,
			char *reply, size_t cap, size_t *got);

#endif /* KW_APP_CLI_H */
