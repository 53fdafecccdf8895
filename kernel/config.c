/*
 * Runtime configuration file: `key = value` lines, '#' comments, blank lines ignored.
 * `listen` may repeat (each adds an address). Parsing is bounded: lines over 512 bytes, files
 * over 64 KiB, unknown keys and out-of-range numbers are errors naming the line, and `c` is
 * left as it was before the failing line's key (earlier lines stay applied; the daemon
 * refuses to start on any error, so partial application is never run with).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kw/compiler.h>
#include <kw/config.h>
#include <kw/err.h>

#define CONFIG_FILE_MAX (64 * 1024)
#define LINE_MAX_LEN 512

#ifdef CONFIG_KW_NET
#define DEF_LISTEN CONFIG_KW_NET_LISTEN
#define DEF_CONNS_IN CONFIG_KW_NET_MAX_CONNS_IN
#define DEF_CONNS_OUT CONFIG_KW_NET_MAX_CONNS_OUT
#define DEF_HS_MS CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS
#define DEF_IDLE_MS CONFIG_KW_NET_IDLE_TIMEOUT_MS
#else
#define DEF_LISTEN ""
#define DEF_CONNS_IN 0
#define DEF_CONNS_OUT 0
#define DEF_HS_MS 10000
#define DEF_IDLE_MS 120000
#endif

void kw_config_defaults(struct kw_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", CONFIG_KW_DATA_DIR);
	c->log_level = CONFIG_KW_LOG_LEVEL;
	if (DEF_LISTEN[0]) {
		snprintf(c->listen[0], sizeof(c->listen[0]), "%s", DEF_LISTEN);
		c->n_listen = 1;
	}
	c->max_conns_in = DEF_CONNS_IN;
	c->max_conns_out = DEF_CONNS_OUT;
	c->handshake_timeout_ms = DEF_HS_MS;
	c->idle_timeout_ms = DEF_IDLE_MS;
	c->shutdown_drain_ms = CONFIG_KW_SHUTDOWN_DRAIN_MS;
}

static int fail(char *err, size_t errlen, int line, const char *fmt, const char *arg)
{
	if (err && errlen) {
		char what[160];
		snprintf(what, sizeof(what), fmt, arg);
		if (line > 0)
			snprintf(err, errlen, "line %d: %s", line, what);
		else
			snprintf(err, errlen, "%s", what);
	}
	return -KW_ECONFIG;
}

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long long x;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

static int set_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

static int set_one(struct kw_config *c, const char *key, const char *v, char *err, size_t errlen,
		   int line)
{
	uint32_t x;

	if (!strcmp(key, "data_dir")) {
		if (set_str(c->data_dir, sizeof(c->data_dir), v))
			return fail(err, errlen, line, "data_dir must be 1..%s bytes", "255");
	} else if (!strcmp(key, "log_level")) {
		if (parse_u32(v, 0, 4, &x))
			return fail(err, errlen, line, "log_level must be 0..4, got '%s'", v);
		c->log_level = (int)x;
	} else if (!strcmp(key, "listen")) {
		if (c->n_listen >= KW_CONFIG_LISTEN_MAX)
			return fail(err, errlen, line, "more than %s listen addresses", "8");
		if (set_str(c->listen[c->n_listen], sizeof(c->listen[0]), v))
			return fail(err, errlen, line, "listen address too long: '%.100s'", v);
		c->n_listen++;
	} else if (!strcmp(key, "max_conns_in") || !strcmp(key, "max_conns_out")) {
		if (parse_u32(v, 1, 65536, &x))
			return fail(err, errlen, line, "connection limit must be 1..65536, got '%s'", v);
		*(key[10] == 'i' ? &c->max_conns_in : &c->max_conns_out) = x;
	} else if (!strcmp(key, "handshake_timeout_ms")) {
		if (parse_u32(v, 100, 120000, &c->handshake_timeout_ms))
			return fail(err, errlen, line, "handshake_timeout_ms must be 100..120000, got '%s'", v);
	} else if (!strcmp(key, "idle_timeout_ms")) {
		if (parse_u32(v, 1000, 86400000, &c->idle_timeout_ms))
			return fail(err, errlen, line, "idle_timeout_ms must be 1000..86400000, got '%s'", v);
	} else if (!strcmp(key, "shutdown_drain_ms")) {
		if (parse_u32(v, 0, 60000, &c->shutdown_drain_ms))
			return fail(err, errlen, line, "shutdown_drain_ms must be 0..60000, got '%s'", v);
	} else {
		return fail(err, errlen, line, "unknown key '%.64s'", key);
	}
	return 0;
}

int kw_config_set(struct kw_config *c, const char *key, const char *value, char *err,
		  size_t errlen)
{
	return set_one(c, key, value, err, errlen, 0);
}

static char *trim(char *s, char *e)
{
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

int kw_config_parse(struct kw_config *c, const char *buf, size_t len, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN + 1];
	size_t pos = 0;
	int lineno = 0;

	if (len > CONFIG_FILE_MAX) {
		fail(err, errlen, 0, "config file larger than %s bytes", "65536");
		return -KW_EMSGSIZE;
	}
	while (pos < len) {
		size_t start = pos, n;
		char *eq, *key, *val, *hash;
		int ret;

		while (pos < len && buf[pos] != '\n')
			pos++;
		n = pos - start;
		pos++;  /* past '\n' (or the end) */
		lineno++;
		if (n > LINE_MAX_LEN)
			return fail(err, errlen, lineno, "line longer than %s bytes", "512");
		memcpy(line, buf + start, n);
		line[n] = '\0';
		if (memchr(line, '\0', n))
			return fail(err, errlen, lineno, "NUL byte in line%s", "");
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line, line + strlen(line));
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (!eq)
			return fail(err, errlen, lineno, "expected 'key = value', got '%.64s'", key);
		val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		key = trim(key, eq);
		ret = set_one(c, key, val, err, errlen, lineno);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int kw_config_load(struct kw_config *c, const char *path, char *err, size_t errlen)
{
	char buf[CONFIG_FILE_MAX + 1];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		fail(err, errlen, 0, "cannot open %.120s", path);
		return ret;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			close(fd);
			fail(err, errlen, 0, "cannot read %.120s", path);
			return ret;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	close(fd);
	if (len > CONFIG_FILE_MAX) {
		fail(err, errlen, 0, "%.120s is larger than 64 KiB", path);
		return -KW_EMSGSIZE;
	}
	return kw_config_parse(c, buf, len, err, errlen);
}
