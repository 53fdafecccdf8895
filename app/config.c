/*
 * Runtime configuration file: `key = value` lines, '#' comments, blank lines ignored.
 * Every key is one row of g_keys: its type, where it lands in struct kw_config and its range,
 * so the file, the command line and the docs agree. Defaults are Kconfig's alone (set by
 * kw_config_defaults through each subsystem's own defaults function).
 *
 * Parsing is bounded: lines over 512 bytes, files over 64 KiB, unknown keys, out-of-range
 * numbers and malformed multiaddrs are errors naming the line, and `c` keeps only the lines
 * before the bad one (the daemon refuses to start on any error, so a partial configuration
 * is never run with). Text from the file is echoed quoted, non-printable bytes escaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/compiler.h>
#include <kw/err.h>
#ifdef CONFIG_KW_APP_HIVEMIND
#include <kw/net/hivemind_records.h>
#include <kw/net/msgpack.h>
#endif
#include <kw/net/multiaddr.h>
#ifdef CONFIG_KW_APP_AVERAGING
#include "avg_run.h"
#endif

#define CONFIG_FILE_MAX (64 * 1024)
#define LINE_MAX_LEN 512

enum key_type {
	KEY_PATH,    /* char[KW_CONFIG_PATH_MAX], 1.. bytes */
	KEY_INT,     /* int in lo..hi */
	KEY_U32,     /* uint32_t in lo..hi */
	KEY_LISTEN,  /* a TCP multiaddr appended to listen[] */
	KEY_BOOL,    /* bool: yes/no, true/false, on/off, 1/0 */
	KEY_QUIET,   /* quiet hours "HH:MM-HH:MM" or "off" into policy.quiet_{start,end}_min */
	KEY_BOOTSTRAP, /* a peer multiaddr with /p2p/ appended to bootstrap[] */
	KEY_DHT_MODE,  /* server | client */
	KEY_HM_BOOTSTRAP, /* a peer multiaddr with /p2p/ appended to hivemind_bootstrap[] */
	KEY_HM_TEXT,    /* UTF-8 text of lo..hi bytes into char[KW_CONFIG_HM_TEXT_MAX] */
	KEY_HM_PREFIX,  /* a Petals dht_prefix: KEY_HM_TEXT without '.' or ' ' */
	KEY_HM_BLOCKS,  /* "A:B", A < B: hivemind_block_start/end */
	KEY_HM_RPS,     /* a decimal number >= 0 (requests per second) into a double */
	KEY_HM_EXPERTS, /* space-separated hivemind expert uids appended to hivemind_experts[] */
	KEY_SPAN,    /* "A:B" with A < B into serve_first, serve_end */
	KEY_ANNOUNCE,  /* a TCP multiaddr peers should dial, appended to announce[] */
	KEY_AVG_PREFIX, /* an averager prefix: 1..63 bytes, no '.' or ' ' */
	KEY_AVG_MODE,   /* node | client | aux into a uint32_t */
	KEY_AVG_CODEC,  /* none | float16 | meanstd16 | uniform8 | quantile8 | blockwise8 */
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	uint32_t lo, hi;
	bool net;    /* only with networking built in */
	bool kad;    /* only with the DHT built in */
};

#define F(member) offsetof(struct kw_config, member)

static const struct key_def g_keys[] = {
	{ "data_dir", KEY_PATH, F(data_dir), 1, KW_CONFIG_PATH_MAX - 1, false },
	{ "log_level", KEY_INT, F(node.log_level), 0, 4, false },
	{ "shutdown_drain_ms", KEY_U32, F(node.shutdown_drain_ms), 0, 60000, false },
	{ "listen", KEY_LISTEN, F(listen), 0, KW_CONFIG_LISTEN_MAX, true },
	{ "max_conns_in", KEY_U32, F(swarm.max_conns_in), 1, 65536, true },
	{ "max_conns_out", KEY_U32, F(swarm.max_conns_out), 1, 65536, true },
	{ "handshake_timeout_ms", KEY_U32, F(swarm.handshake_timeout_ms), 100, 120000, true },
	{ "idle_timeout_ms", KEY_U32, F(swarm.idle_timeout_ms), 1000, 86400000, true },
	{ "conns_per_ip", KEY_U32, F(swarm.conns_per_ip), 1, 65536, true },
	{ "conns_per_subnet", KEY_U32, F(swarm.conns_per_subnet), 1, 65536, true },
	{ "max_handshakes_in", KEY_U32, F(swarm.max_handshakes_in), 1, 65536, true },
	{ "handshakes_per_ip", KEY_U32, F(swarm.handshakes_per_ip), 1, 65536, true },
	{ "handshakes_per_subnet", KEY_U32, F(swarm.handshakes_per_subnet), 1, 65536, true },
	{ "conns_in_reserved", KEY_U32, F(swarm.conns_in_reserved), 0, 65535, true },
	/* board sensing and the contribution policy (doc/board.md); ranges as app/Kconfig.policy */
	{ "sysfs_root", KEY_PATH, F(sysfs_root), 1, KW_CONFIG_PATH_MAX - 1, false },
	{ "policy_require_ac", KEY_BOOL, F(policy.require_ac), 0, 1, false },
	{ "policy_battery_start_pct", KEY_U32, F(policy.battery_start_pct), 0, 100, false },
	{ "policy_battery_stop_pct", KEY_U32, F(policy.battery_stop_pct), 0, 100, false },
	{ "policy_temp_max_c", KEY_U32, F(policy.temp_max_c), 40, 110, false },
	{ "policy_temp_hysteresis_c", KEY_U32, F(policy.temp_hysteresis_c), 1, 30, false },
	{ "policy_pause_on_undervoltage", KEY_BOOL, F(policy.pause_on_undervoltage), 0, 1, false },
	{ "policy_pause_on_throttle", KEY_BOOL, F(policy.pause_on_throttle), 0, 1, false },
	{ "policy_quiet_hours", KEY_QUIET, F(policy.quiet_start_min), 0, 0, false },
	{ "policy_cpu_share_pct", KEY_U32, F(policy.cpu_share_pct), 1, 100, false },
	{ "policy_min_dwell_ms", KEY_U32, F(policy.min_dwell_ms), 0, 3600000, false },
	{ "policy_poll_ms", KEY_U32, F(policy.poll_ms), 100, 60000, false },
	{ "policy_drain_timeout_ms", KEY_U32, F(policy.drain_timeout_ms), 0, 600000, false },
	{ "bootstrap", KEY_BOOTSTRAP, F(bootstrap), 0, KW_CONFIG_BOOTSTRAP_MAX, true, true },
	{ "dht_mode", KEY_DHT_MODE, F(dht_client), 0, 1, true, true },
	{ "status_port", KEY_U32, F(status_port), 0, 65535, false },
	/* the Hivemind DHT (app/hivemind.c); refused when CONFIG_KW_APP_HIVEMIND is off */
	{ "hivemind", KEY_BOOL, F(hivemind), 0, 1, true },
	{ "hivemind_client", KEY_BOOL, F(hivemind_client), 0, 1, true },
	{ "hivemind_bootstrap", KEY_HM_BOOTSTRAP, F(hivemind_bootstrap), 0,
	  KW_CONFIG_BOOTSTRAP_MAX, true },
	/* what it announces (doc/net-hivemind.md "Server records") */
	{ "hivemind_prefix", KEY_HM_PREFIX, F(hivemind_prefix), 1, KW_CONFIG_HM_TEXT_MAX - 1, true },
	{ "hivemind_blocks", KEY_HM_BLOCKS, F(hivemind_block_start), 0, 1000000, true },
	{ "hivemind_public_name", KEY_HM_TEXT, F(hivemind_public_name), 1,
	  KW_CONFIG_HM_TEXT_MAX - 1, true },
	{ "hivemind_throughput", KEY_HM_RPS, F(hivemind_throughput), 0, 0, true },
	{ "hivemind_num_blocks", KEY_U32, F(hivemind_num_blocks), 1, 1000000, true },
	{ "hivemind_repository", KEY_HM_TEXT, F(hivemind_repository), 1, KW_CONFIG_HM_TEXT_MAX - 1,
	  true },
	{ "hivemind_experts", KEY_HM_EXPERTS, F(hivemind_experts), 0, KW_CONFIG_HM_EXPERTS_MAX,
	  true },
	{ "hivemind_update_period", KEY_U32, F(hivemind_update_period_s), 1, 3600, true },
	{ "hivemind_expiration", KEY_U32, F(hivemind_expiration_s), 0, 86400, true },
	/* serving (app/serve*.c, doc/serve.md); refused when CONFIG_KW_APP_SERVE is off */
	{ "serve_model", KEY_PATH, F(serve_model), 1, KW_CONFIG_PATH_MAX - 1, true },
	{ "serve_blocks", KEY_SPAN, F(serve_first), 0, 1u << 20, true },
	{ "serve_experts", KEY_PATH, F(serve_experts), 1, 32, true },
	{ "serve_grid", KEY_U32, F(serve_grid), 1, 64, true },
	{ "serve_hidden", KEY_U32, F(serve_hidden), 8, 8192, true },
	/* what identify advertises instead of the listen addresses (doc/status.md) */
	{ "announce", KEY_ANNOUNCE, F(announce), 0, KW_CONFIG_LISTEN_MAX, true },
	/* averaging in the daemon (app/avg_app.c, doc/ml-avg.md "In the daemon"); refused when
	 * CONFIG_KW_APP_AVERAGING is off */
	{ "averaging_prefix", KEY_AVG_PREFIX, F(averaging_prefix), 1, 63, true },
	{ "averaging_mode", KEY_AVG_MODE, F(averaging_mode), 0, 0, true },
	{ "averaging_size", KEY_U32, F(averaging_size), 1, 1u << 28, true },
	{ "averaging_tensor", KEY_PATH, F(averaging_tensor), 1, KW_CONFIG_PATH_MAX - 1, true },
	{ "averaging_period", KEY_U32, F(averaging_period_s), 1, 86400, true },
	{ "averaging_target_group_size", KEY_U32, F(averaging_target_group_size), 2, 16, true },
	{ "averaging_min_group_size", KEY_U32, F(averaging_min_group_size), 2, 16, true },
	{ "averaging_compression", KEY_AVG_CODEC, F(averaging_compression), 0, 0, true },
	{ "averaging_match_timeout_ms", KEY_U32, F(averaging_match_timeout_ms), 200, 600000,
	  true },
};

/* The Hivemind keys' checks (net/hivemind/records.c); the keys are refused before these run
 * when the Hivemind DHT is not built in. */
static bool hm_text_ok(const char *v)
{
#ifdef CONFIG_KW_APP_HIVEMIND
	return kw_mp_utf8_valid((const uint8_t *)v, strlen(v));
#else
	(void)v;
	return false;
#endif
}

static bool hm_prefix_ok(const char *v)
{
#ifdef CONFIG_KW_APP_HIVEMIND
	return kw_hm_prefix_check(v) == 0;
#else
	(void)v;
	return false;
#endif
}

static bool hm_uid_ok(const char *v)
{
#ifdef CONFIG_KW_APP_HIVEMIND
	return kw_hm_expert_uid_check(v) == 0;
#else
	(void)v;
	return false;
#endif
}

void kw_config_defaults(struct kw_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", CONFIG_KW_DATA_DIR);
	kw_node_config_defaults(&c->node);
	snprintf(c->sysfs_root, sizeof(c->sysfs_root), "%s", CONFIG_KW_BOARD_SYSFS_ROOT);
	kw_policy_settings_defaults(&c->policy);
	c->status_port = CONFIG_KW_STATUS_PORT;
#ifdef CONFIG_KW_APP_HIVEMIND_UPDATE_PERIOD_S
	c->hivemind_update_period_s = CONFIG_KW_APP_HIVEMIND_UPDATE_PERIOD_S;
#endif
	c->serve_grid = 4;
	c->serve_hidden = 64;
	c->averaging_period_s = 30;
	c->averaging_target_group_size = 4;
	c->averaging_min_group_size = 2;
	c->averaging_match_timeout_ms = 5000;   /* hivemind's min_matchmaking_time */
#ifdef CONFIG_KW_NET_SWARM
	kw_swarm_limits_default(&c->swarm);
	if (CONFIG_KW_NET_LISTEN[0]) {
		snprintf(c->listen[0], sizeof(c->listen[0]), "%s", CONFIG_KW_NET_LISTEN);
		c->n_listen = 1;
		c->listen_is_default = true;
	}
#endif
#ifdef CONFIG_KW_APP_BOOTSTRAP
	{
		/* space-separated; checked like the file's lines when the DHT starts (app/net.c) */
		const char *p = CONFIG_KW_APP_BOOTSTRAP;

		while (*p && c->n_bootstrap < KW_CONFIG_BOOTSTRAP_MAX) {
			size_t n;

			while (*p == ' ' || *p == '\t')
				p++;
			n = strcspn(p, " \t");
			if (n == 0)
				break;
			if (n < KW_CONFIG_PEER_ADDR_MAX) {
				memcpy(c->bootstrap[c->n_bootstrap], p, n);
				c->bootstrap[c->n_bootstrap++][n] = '\0';
			}
			p += n;
		}
		c->bootstrap_is_default = c->n_bootstrap > 0;
	}
#endif
}

void kw_config_clear_announce(struct kw_config *c)
{
	c->n_announce = 0;
}

void kw_config_clear_listen(struct kw_config *c)
{
	c->n_listen = 0;
	c->listen_is_default = false;
}

void kw_config_clear_bootstrap(struct kw_config *c)
{
	c->n_bootstrap = 0;
	c->bootstrap_is_default = false;
}

/*
 * Copies s into out (cap >= 8) as printable text: bytes outside 0x20..0x7e and '\\' become
 * \xNN, so a config error never writes raw file bytes to a terminal; cut with "...".
 */
static const char *quote(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char one[8];
		size_t n;

		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			one[0] = (char)ch;
			n = 1;
		} else {
			n = (size_t)snprintf(one, sizeof(one), "\\x%02x", ch);
		}
		if (o + n + 4 > cap) {
			memcpy(out + o, "...", 4);
			return out;
		}
		memcpy(out + o, one, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line > 0)
		return kw_errf(-KW_ECONFIG, err, errlen, "line %d: %s", line, what);
	return kw_errf(-KW_ECONFIG, err, errlen, "%s", what);
}

int kw_config_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	unsigned long long x = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -KW_EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (unsigned)(*p - '0');
		if (x > 0xffffffffull)
			return -KW_ERANGE;
	}
	if (*p)
		return -KW_EINVAL;
	if (x < lo || x > hi)
		return -KW_ERANGE;
	*out = (uint32_t)x;
	return 0;
}

/* An announced address is one a peer dials: a real host and port, not 0.0.0.0 or port 0.
 * Called after check_listen accepted v. */
static int check_dialable(const char *v, char *why, size_t cap)
{
#ifdef CONFIG_KW_NET_PEER
	struct kw_multiaddr ma;
	struct sockaddr_storage ss;
	socklen_t sl;
	bool bad = true;

	if (kw_maddr_from_text(v, &ma, NULL, 0) == 0 && kw_maddr_to_sockaddr(&ma, &ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&ss;

			bad = in->sin_port == 0 || in->sin_addr.s_addr == htonl(INADDR_ANY);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&ss;

			bad = in6->sin6_port == 0 || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
		}
	}
	if (!bad)
		return 0;
	snprintf(why, cap, "peers must be able to dial it: give the public address and the "
		 "forwarded port (e.g. /ip4/203.0.113.7/tcp/4001), not 0.0.0.0 or port 0");
	return -KW_EINVAL;
#else
	(void)v;
	snprintf(why, cap, "networking is not built in");
	return -KW_ENOTSUP;
#endif
}

/* A listen address must be a TCP endpoint we can bind: /ip4|/ip6/<addr>/tcp/<port>. */
static int check_listen(const char *v, char *why, size_t cap)
{
#ifdef CONFIG_KW_NET_PEER
	struct kw_multiaddr ma;
	struct sockaddr_storage ss;
	struct kw_peer_id id;
	socklen_t sl;
	int ret;

	why[0] = '\0';
	ret = kw_maddr_from_text(v, &ma, why, cap);
	if (ret < 0) {
		if (!why[0])
			snprintf(why, cap, "%s", kw_strerror(ret));
		return ret;
	}
	if (kw_maddr_to_sockaddr(&ma, &ss, &sl) < 0) {
		snprintf(why, cap, "not a TCP address to bind (expected /ip4/ADDR/tcp/PORT or "
			 "/ip6/ADDR/tcp/PORT)");
		return -KW_EINVAL;
	}
	if (kw_maddr_peer_id(&ma, &id) == 0) {
		snprintf(why, cap, "a listen address cannot carry /p2p/ (the node adds its own)");
		return -KW_EINVAL;
	}
	return 0;
#else
	snprintf(why, cap, "networking is not built in");
	return -KW_ENOTSUP;
#endif
}

int kw_config_check_peer_addr(const char *v, char *why, size_t cap)
{
#ifdef CONFIG_KW_NET_PEER
	struct kw_multiaddr ma;
	struct kw_peer_id id;
	char tmp[KW_MADDR_ERR_MAX];
	int ret;

	tmp[0] = '\0';
	ret = kw_maddr_from_text(v, &ma, tmp, sizeof(tmp));
	if (ret < 0)
		return kw_errf(ret, why, cap, "%s", tmp[0] ? tmp : kw_strerror(ret));
	if (kw_maddr_peer_id(&ma, &id) < 0)
		return kw_errf(-KW_EINVAL, why, cap, "a bootstrap peer needs /p2p/<peer-id> at the "
			       "end (the node must know whom it dials)");
	return 0;
#else
	return kw_errf(-KW_ENOTSUP, why, cap, "networking is not built in");
#endif
}

static const struct key_def *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < KW_ARRAY_SIZE(g_keys); i++)
		if (!strcmp(g_keys[i].name, name))
			return &g_keys[i];
	return NULL;
}

static int set_one(struct kw_config *c, const char *key, const char *v, char *err, size_t errlen,
		   int line)
{
	const struct key_def *k = find_key(key);
	char q[96], why[160];
	uint8_t *field;
	uint32_t x;
	int ret;

	if (!k)
		return fail(err, errlen, line, "unknown key '%s'", quote(key, q, sizeof(q)));
	if (k->net && !IS_ENABLED(CONFIG_KW_NET_SWARM))
		return fail(err, errlen, line, "%s: networking is not built into this kwnode "
			    "(CONFIG_KW_NET_SWARM)", k->name);
	if (k->kad && !IS_ENABLED(CONFIG_KW_NET_KAD_SWARM))
		return fail(err, errlen, line, "%s: the DHT is not built into this kwnode "
			    "(CONFIG_KW_NET_KAD_SWARM)", k->name);
	if (!strncmp(k->name, "hivemind", 8) && !IS_ENABLED(CONFIG_KW_APP_HIVEMIND))
		return fail(err, errlen, line, "%s: the Hivemind DHT is not built into this kwnode "
			    "(CONFIG_KW_APP_HIVEMIND)", k->name);
	if (!strncmp(k->name, "averaging_", 10) && !IS_ENABLED(CONFIG_KW_APP_AVERAGING))
		return fail(err, errlen, line, "%s: averaging is not built into this kwnode "
			    "(CONFIG_KW_APP_AVERAGING)", k->name);
	if (!strncmp(k->name, "serve_", 6) && !IS_ENABLED(CONFIG_KW_APP_SERVE))
		return fail(err, errlen, line, "%s: serving is not built into this kwnode "
			    "(CONFIG_KW_APP_SERVE)", k->name);
	field = (uint8_t *)c + k->off;
	switch (k->type) {
	case KEY_PATH:
		if (strlen(v) < k->lo || strlen(v) > k->hi)
			return fail(err, errlen, line, "%s must be %u..%u bytes", k->name, k->lo,
				    k->hi);
		memcpy(field, v, strlen(v) + 1);
		break;
	case KEY_INT:
	case KEY_U32:
		ret = kw_config_parse_u32(v, k->lo, k->hi, &x);
		if (ret < 0)
			return fail(err, errlen, line, "%s must be %u..%u, got '%s'", k->name, k->lo,
				    k->hi, quote(v, q, sizeof(q)));
		if (k->type == KEY_INT)
			*(int *)(void *)field = (int)x;
		else
			*(uint32_t *)(void *)field = x;
		break;
	case KEY_LISTEN:
		if (strlen(v) >= KW_CONFIG_ADDR_MAX)
			return fail(err, errlen, line, "listen address longer than %d bytes: '%s'",
				    KW_CONFIG_ADDR_MAX - 1, quote(v, q, sizeof(q)));
		if (check_listen(v, why, sizeof(why)) < 0) {
			char qw[160];

			/* the multiaddr parser's reason may quote the bad bytes: escape it too */
			return fail(err, errlen, line, "listen '%s': %s", quote(v, q, sizeof(q)),
				    quote(why, qw, sizeof(qw)));
		}
		if (c->listen_is_default)
			kw_config_clear_listen(c);  /* the first listen key replaces Kconfig's */
		if (c->n_listen >= KW_CONFIG_LISTEN_MAX)
			return fail(err, errlen, line, "more than %d listen addresses",
				    KW_CONFIG_LISTEN_MAX);
		memcpy(c->listen[c->n_listen++], v, strlen(v) + 1);
		break;
	case KEY_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(bool *)(void *)field = true;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
			 !strcmp(v, "0"))
			*(bool *)(void *)field = false;
		else
			return fail(err, errlen, line, "%s must be yes or no, got '%s'", k->name,
				    quote(v, q, sizeof(q)));
		break;
	case KEY_QUIET:
		if (kw_policy_parse_quiet(v, &c->policy.quiet_start_min,
					  &c->policy.quiet_end_min) < 0)
			return fail(err, errlen, line, "%s must be HH:MM-HH:MM (24-hour local time, "
				    "start != end) or off, got '%s'", k->name,
				    quote(v, q, sizeof(q)));
		break;
	case KEY_BOOTSTRAP:
		if (strlen(v) >= KW_CONFIG_PEER_ADDR_MAX)
			return fail(err, errlen, line, "bootstrap address longer than %d bytes: '%s'",
				    KW_CONFIG_PEER_ADDR_MAX - 1, quote(v, q, sizeof(q)));
		if (kw_config_check_peer_addr(v, why, sizeof(why)) < 0) {
			char qw[160];

			return fail(err, errlen, line, "bootstrap '%s': %s", quote(v, q, sizeof(q)),
				    quote(why, qw, sizeof(qw)));
		}
		if (c->bootstrap_is_default)
			kw_config_clear_bootstrap(c);  /* the first bootstrap key replaces Kconfig's */
		if (c->n_bootstrap >= KW_CONFIG_BOOTSTRAP_MAX)
			return fail(err, errlen, line, "more than %d bootstrap peers",
				    KW_CONFIG_BOOTSTRAP_MAX);
		memcpy(c->bootstrap[c->n_bootstrap++], v, strlen(v) + 1);
		break;
	case KEY_DHT_MODE:
		if (!strcmp(v, "server"))
			c->dht_client = false;
		else if (!strcmp(v, "client"))
			c->dht_client = true;
		else
			return fail(err, errlen, line, "dht_mode must be 'server' or 'client', got '%s'",
				    quote(v, q, sizeof(q)));
		break;
	case KEY_ANNOUNCE:
		if (strlen(v) >= KW_CONFIG_ADDR_MAX)
			return fail(err, errlen, line, "announce address longer than %d bytes: '%s'",
				    KW_CONFIG_ADDR_MAX - 1, quote(v, q, sizeof(q)));
		if (check_listen(v, why, sizeof(why)) < 0 || check_dialable(v, why, sizeof(why)) < 0) {
			char qw[160];

			return fail(err, errlen, line, "announce '%s': %s", quote(v, q, sizeof(q)),
				    quote(why, qw, sizeof(qw)));
		}
		if (c->n_announce >= KW_CONFIG_LISTEN_MAX)
			return fail(err, errlen, line, "more than %d announce addresses",
				    KW_CONFIG_LISTEN_MAX);
		memcpy(c->announce[c->n_announce++], v, strlen(v) + 1);
		break;
	case KEY_HM_BOOTSTRAP:
		if (strlen(v) >= KW_CONFIG_PEER_ADDR_MAX)
			return fail(err, errlen, line, "%s longer than %d bytes: '%s'", k->name,
				    KW_CONFIG_PEER_ADDR_MAX - 1, quote(v, q, sizeof(q)));
		if (kw_config_check_peer_addr(v, why, sizeof(why)) < 0) {
			char qw[160];

			return fail(err, errlen, line, "%s '%s': %s", k->name,
				    quote(v, q, sizeof(q)), quote(why, qw, sizeof(qw)));
		}
		if (c->n_hivemind_bootstrap >= KW_CONFIG_BOOTSTRAP_MAX)
			return fail(err, errlen, line, "more than %d %s peers",
				    KW_CONFIG_BOOTSTRAP_MAX, k->name);
		memcpy(c->hivemind_bootstrap[c->n_hivemind_bootstrap++], v, strlen(v) + 1);
		break;
	case KEY_HM_TEXT:
	case KEY_HM_PREFIX:
		if (strlen(v) < k->lo || strlen(v) > k->hi || !hm_text_ok(v))
			return fail(err, errlen, line, "%s must be %u..%u bytes of UTF-8", k->name,
				    k->lo, k->hi);
		if (k->type == KEY_HM_PREFIX && !hm_prefix_ok(v))
			return fail(err, errlen, line, "%s '%s': a Petals dht_prefix has no '.' or "
				    "' ' (module uids are PREFIX.BLOCK)", k->name,
				    quote(v, q, sizeof(q)));
		memcpy(field, v, strlen(v) + 1);
		break;
	case KEY_HM_BLOCKS: {
		uint32_t a, b;
		const char *colon = strchr(v, ':');
		char first[16];

		if (!colon || (size_t)(colon - v) >= sizeof(first))
			return fail(err, errlen, line, "%s must be START:END (blocks START to END - 1), "
				    "got '%s'", k->name, quote(v, q, sizeof(q)));
		memcpy(first, v, (size_t)(colon - v));
		first[colon - v] = '\0';
		if (kw_config_parse_u32(first, 0, k->hi, &a) < 0 ||
		    kw_config_parse_u32(colon + 1, 1, k->hi, &b) < 0 || a >= b)
			return fail(err, errlen, line, "%s must be START:END with 0 <= START < END <= "
				    "%u, got '%s'", k->name, k->hi, quote(v, q, sizeof(q)));
		c->hivemind_block_start = a;
		c->hivemind_block_end = b;
		break;
	}
	case KEY_HM_RPS: {
		char *end = NULL;
		double rps;

		errno = 0;
		rps = strtod(v, &end);
		if (!*v || *end || errno || !(rps >= 0) || rps > 1e12)
			return fail(err, errlen, line, "%s must be a number >= 0 (requests per "
				    "second), got '%s'", k->name, quote(v, q, sizeof(q)));
		*(double *)(void *)field = rps;
		break;
	}
	case KEY_HM_EXPERTS:
		for (const char *p = v; *p;) {
			char uid[KW_CONFIG_HM_TEXT_MAX];
			size_t n;

			while (*p == ' ' || *p == '\t')
				p++;
			n = strcspn(p, " \t");
			if (!n)
				break;
			if (n >= sizeof(uid))
				return fail(err, errlen, line, "%s: an expert uid longer than %d bytes",
					    k->name, KW_CONFIG_HM_TEXT_MAX - 1);
			memcpy(uid, p, n);
			uid[n] = '\0';
			if (!hm_uid_ok(uid))
				return fail(err, errlen, line, "%s '%s': not a hivemind expert uid "
					    "(TYPE.N[.N...], numbers without leading zeros)", k->name,
					    quote(uid, q, sizeof(q)));
			if (c->n_hivemind_experts >= KW_CONFIG_HM_EXPERTS_MAX)
				return fail(err, errlen, line, "more than %d %s", KW_CONFIG_HM_EXPERTS_MAX,
					    k->name);
			memcpy(c->hivemind_experts[c->n_hivemind_experts++], uid, n + 1);
			p += n;
		}
		break;
	case KEY_SPAN: {
		/* Petals' --block_indices A:B: blocks A .. B - 1 */
		const char *colon = strchr(v, ':');
		char a[16];
		uint32_t lo, hi;

		if (!colon || (size_t)(colon - v) >= sizeof(a))
			return fail(err, errlen, line, "%s must be A:B (blocks A .. B-1), got '%s'",
				    k->name, quote(v, q, sizeof(q)));
		memcpy(a, v, (size_t)(colon - v));
		a[colon - v] = '\0';
		if (kw_config_parse_u32(a, 0, k->hi - 1, &lo) < 0 ||
		    kw_config_parse_u32(colon + 1, 1, k->hi, &hi) < 0 || hi <= lo)
			return fail(err, errlen, line, "%s must be A:B with 0 <= A < B <= %u, got "
				    "'%s'", k->name, k->hi, quote(v, q, sizeof(q)));
		c->serve_first = lo;
		c->serve_end = hi;
		break;
	}
	case KEY_AVG_PREFIX:
		if (strlen(v) < k->lo || strlen(v) > k->hi || strpbrk(v, ". \t"))
			return fail(err, errlen, line, "%s must be %u..%u bytes without '.' or ' ' (the "
				    "group key is PREFIX.0b), got '%s'", k->name, k->lo, k->hi,
				    quote(v, q, sizeof(q)));
		memcpy(field, v, strlen(v) + 1);
		break;
	case KEY_AVG_MODE:
	case KEY_AVG_CODEC:
#ifdef CONFIG_KW_APP_AVERAGING
		if (k->type == KEY_AVG_MODE) {
			enum kw_avg_mode m;

			if (kw_app_avgrun_mode(v, &m) < 0)
				return fail(err, errlen, line, "%s must be node, client or aux, got '%s'",
					    k->name, quote(v, q, sizeof(q)));
			*(uint32_t *)(void *)field = (uint32_t)m;
		} else {
			enum kw_compression cc;

			if (kw_app_avgrun_codec(v, &cc) < 0)
				return fail(err, errlen, line, "%s must be none, float16, meanstd16, "
					    "uniform8, quantile8 or blockwise8, got '%s'", k->name,
					    quote(v, q, sizeof(q)));
			*(uint32_t *)(void *)field = (uint32_t)cc;
		}
#endif
		break;
	}
	return 0;
}

/* The averaging keys' rules between keys, once the whole file is in. */
static int check_averaging(const struct kw_config *c, char *err, size_t errlen)
{
	if (!c->averaging_prefix[0])
		return 0;
	if (!c->hivemind)
		return fail(err, errlen, 0, "averaging_prefix needs hivemind = on (the group key "
			    "lives in the Hivemind DHT)");
	if (c->averaging_min_group_size > c->averaging_target_group_size)
		return fail(err, errlen, 0, "averaging_min_group_size (%u) is above "
			    "averaging_target_group_size (%u)", c->averaging_min_group_size,
			    c->averaging_target_group_size);
	if (!c->averaging_size && !c->averaging_tensor[0])
		return fail(err, errlen, 0, "averaging_prefix needs averaging_size or "
			    "averaging_tensor (what to average)");
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
	char line[LINE_MAX_LEN + 1], q[96];
	size_t pos = 0;
	int lineno = 0;

	if (len > CONFIG_FILE_MAX) {
		fail(err, errlen, 0, "config file larger than %d bytes", CONFIG_FILE_MAX);
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
			return fail(err, errlen, lineno, "line longer than %d bytes", LINE_MAX_LEN);
		memcpy(line, buf + start, n);
		line[n] = '\0';
		if (memchr(line, '\0', n))
			return fail(err, errlen, lineno, "NUL byte in line");
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line, line + strlen(line));
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (!eq)
			return fail(err, errlen, lineno, "expected 'key = value', got '%s'",
				    quote(key, q, sizeof(q)));
		val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		key = trim(key, eq);
		ret = set_one(c, key, val, err, errlen, lineno);
		if (ret < 0)
			return ret;
	}
	/* rules between keys (stop <= start, ...) once the whole file is in */
	if (check_averaging(c, err, errlen) < 0)
		return -KW_ECONFIG;
	return kw_policy_settings_check(&c->policy, err, errlen);
}

int kw_config_load(struct kw_config *c, const char *path, char *err, size_t errlen)
{
	static char buf[CONFIG_FILE_MAX + 1];  /* start-up only; keeps 64 KiB off the stack */
	struct stat st;
	size_t len = 0;
	int fd, ret;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		return kw_errf(ret, err, errlen, "cannot open %.160s: %s", path, kw_strerror(ret));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return kw_errf(-KW_EINVAL, err, errlen, "%.160s is not a regular file", path);
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			close(fd);
			return kw_errf(ret, err, errlen, "cannot read %.160s: %s", path,
				       kw_strerror(ret));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	close(fd);
	if (len > CONFIG_FILE_MAX) {
		kw_errf(-KW_EMSGSIZE, err, errlen, "%.160s is larger than 64 KiB", path);
		return -KW_EMSGSIZE;
	}
	return kw_config_parse(c, buf, len, err, errlen);
}
