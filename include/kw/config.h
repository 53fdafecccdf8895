/*
 * Runtime configuration: what a board owner changes without rebuilding (house rule 7).
 * Defaults come from Kconfig; a file of `key = value` lines overrides them and the command
 * line overrides the file. Unknown keys and bad values are errors naming the line.
 */
#ifndef KW_CONFIG_H
#define KW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define KW_CONFIG_PATH_MAX   256
#define KW_CONFIG_ADDR_MAX   128
#define KW_CONFIG_LISTEN_MAX 8

struct kw_config {
	char data_dir[KW_CONFIG_PATH_MAX];  /* identity key, state files */
	int log_level;                      /* 0..4 */
	char listen[KW_CONFIG_LISTEN_MAX][KW_CONFIG_ADDR_MAX];
	int n_listen;
	uint32_t max_conns_in, max_conns_out;
	uint32_t handshake_timeout_ms, idle_timeout_ms;
	uint32_t shutdown_drain_ms;         /* how long SIGTERM waits for connections to drain */
};

/* Fills `c` with the Kconfig defaults. */
void kw_config_defaults(struct kw_config *c);
/*
 * Applies `key = value` lines from buf (not NUL-terminated, at most 64 KiB). '#' starts a
 * comment. On error writes "line N: reason" into err (errlen bytes, may be NULL).
 * Return: 0, -KW_ECONFIG on a syntax error, unknown key or out-of-range value,
 * -KW_EMSGSIZE if buf is larger than 64 KiB.
 */
int kw_config_parse(struct kw_config *c, const char *buf, size_t len, char *err, size_t errlen);
/* Sets one key from text (the command line uses this). Same errors as kw_config_parse. */
int kw_config_set(struct kw_config *c, const char *key, const char *value, char *err,
		  size_t errlen);
/* Reads and parses a file. Return: as kw_config_parse, or -errno if it cannot be read. */
int kw_config_load(struct kw_config *c, const char *path, char *err, size_t errlen);

#endif /* KW_CONFIG_H */
