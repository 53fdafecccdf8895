/* app/config.c: runtime config parsing is strict, bounded and names the bad line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include <kw/app.h>
#include <kw/err.h>

#define PARSE(c, s, e) kw_config_parse((c), (s), strlen(s), (e), sizeof(e))

/*
 * Parses `in` on *c freshly set to the defaults, asserts that it is refused (-KW_ECONFIG)
 * and returns the error text (valid until the next call); the caller checks the text.
 */
static const char *refused(struct kw_config *c, const char *in)
{
	static char err[256];

	err[0] = '\0';
	kw_config_defaults(c);
	assert_int_equal(PARSE(c, in, err), -KW_ECONFIG);
	return err;
}

static void test_config_defaults_come_from_kconfig(void **state)
{
	struct kw_config c;

	kw_config_defaults(&c);
	assert_string_equal(c.data_dir, CONFIG_KW_DATA_DIR);
	assert_int_equal(c.node.log_level, CONFIG_KW_LOG_DEFAULT_LEVEL);
	assert_int_equal(c.node.shutdown_drain_ms, CONFIG_KW_SHUTDOWN_DRAIN_MS);
	assert_int_equal(c.swarm.max_conns_in, CONFIG_KW_NET_MAX_CONNS_IN);
	assert_int_equal(c.swarm.handshake_timeout_ms, CONFIG_KW_NET_HANDSHAKE_TIMEOUT_MS);
	assert_int_equal(c.n_listen, 1);
	assert_string_equal(c.listen[0], CONFIG_KW_NET_LISTEN);
}

static void test_config_parses_keys_comments_and_repeated_listen(void **state)
{
	struct kw_config c;
	char err[128] = "";
	const char *f = "# node\n\n  data_dir =  /tmp/kw  # trailing comment\r\n"
			"log_level=4\nlisten = /ip4/127.0.0.1/tcp/1\nlisten=/ip6/::1/tcp/2\n"
			"max_conns_in = 3\nidle_timeout_ms = 5000";

	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, f, err), 0);
	assert_string_equal(c.data_dir, "/tmp/kw");
	assert_int_equal(c.node.log_level, 4);
	assert_int_equal(c.n_listen, 2);
	assert_string_equal(c.listen[0], "/ip4/127.0.0.1/tcp/1");
	assert_string_equal(c.listen[1], "/ip6/::1/tcp/2");
	assert_int_equal(c.swarm.max_conns_in, 3);
	assert_int_equal(c.swarm.idle_timeout_ms, 5000);
}

/* An owner keeps the node on localhost through the file alone: no Kconfig listener left. */
static void test_config_file_listen_replaces_the_kconfig_default(void **state)
{
	struct kw_config c;
	char err[128] = "";
	int i;

	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, "listen = /ip4/127.0.0.1/tcp/0\n", err), 0);
	assert_int_equal(c.n_listen, 1);
	assert_string_equal(c.listen[0], "/ip4/127.0.0.1/tcp/0");
	/* all eight documented slots are the file's */
	kw_config_defaults(&c);
	for (i = 0; i < KW_CONFIG_LISTEN_MAX; i++)
		assert_int_equal(kw_config_set(&c, "listen", "/ip4/127.0.0.1/tcp/1", err,
					       sizeof(err)), 0);
	assert_int_equal(c.n_listen, KW_CONFIG_LISTEN_MAX);
	/* the command line's --listen replaces the file's */
	kw_config_clear_listen(&c);
	assert_int_equal(kw_config_set(&c, "listen", "/ip6/::1/tcp/9", err, sizeof(err)), 0);
	assert_int_equal(c.n_listen, 1);
	assert_string_equal(c.listen[0], "/ip6/::1/tcp/9");
}

static void test_config_listen_is_checked_when_read(void **state)
{
	static const struct { const char *in; const char *want; } v[] = {
		{ "log_level = 3\nlisten = /ip4/1.2.3/tcp/1", "line 2: listen '/ip4/1.2.3/tcp/1': " },
		{ "listen = /dns4/example.com/tcp/1", "line 1: listen '/dns4/example.com/tcp/1': not a TCP address to bind" },
		{ "listen = /ip4/127.0.0.1/udp/1", "line 1: listen '/ip4/127.0.0.1/udp/1': not a TCP address to bind" },
		{ "listen = 127.0.0.1:4001", "line 1: listen '127.0.0.1:4001': " },
		{ "listen = /ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
		  "line 1: listen '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA': a listen address cannot carry /p2p/" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct kw_config c;
		const char *err = refused(&c, v[i].in);

		assert_memory_equal(err, v[i].want, strlen(v[i].want));
		/* where only the start is pinned, the parser's reason must follow it */
		if (v[i].want[strlen(v[i].want) - 1] == ' ')
			assert_true(strlen(err) > strlen(v[i].want));
		/* the bad line changed nothing: the Kconfig default is still the only listener */
		assert_int_equal(c.n_listen, 1);
		assert_string_equal(c.listen[0], CONFIG_KW_NET_LISTEN);
	}
}

static void test_config_errors_escape_file_bytes(void **state)
{
	struct kw_config c;
	char err[128] = "";

	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, "log_level = \x1b[31m\x07", err), -KW_ECONFIG);
	assert_string_equal(err, "line 1: log_level must be 0..4, got '\\x1b[31m\\x07'");
	assert_int_equal(PARSE(&c, "k\xff = 1", err), -KW_ECONFIG);
	assert_string_equal(err, "line 1: unknown key 'k\\xff'");
	/* the multiaddr parser's own reason names the bad component: escaped as well */
	assert_int_equal(PARSE(&c, "listen = /ip\x96/1", err), -KW_ECONFIG);
	for (size_t i = 0; err[i]; i++) {
		assert_true((unsigned char)err[i] >= 0x20);
		assert_true((unsigned char)err[i] < 0x7f);
	}
}

static void test_config_parse_u32_is_strict(void **state)
{
	uint32_t x = 7;

	assert_int_equal(kw_config_parse_u32("5", 1, 10, &x), 0);
	assert_int_equal(x, 5);
	assert_int_equal(kw_config_parse_u32("5x", 1, 10, &x), -KW_EINVAL);
	assert_int_equal(kw_config_parse_u32("", 1, 10, &x), -KW_EINVAL);
	assert_int_equal(kw_config_parse_u32("-1", 1, 10, &x), -KW_EINVAL);
	assert_int_equal(kw_config_parse_u32(" 5", 1, 10, &x), -KW_EINVAL);
	assert_int_equal(kw_config_parse_u32("0", 1, 10, &x), -KW_ERANGE);
	assert_int_equal(kw_config_parse_u32("99999999999", 1, 10, &x), -KW_ERANGE);
	assert_int_equal(x, 5);
}

static void test_config_errors_name_the_line(void **state)
{
	static const struct { const char *in; const char *want; } v[] = {
		{ "log_level = 3\nbogus = 1\n", "line 2: unknown key 'bogus'" },
		{ "log_level = 9", "line 1: log_level must be 0..4, got '9'" },
		{ "log_level = -1", "line 1: log_level must be 0..4, got '-1'" },
		{ "\n\nno equals sign", "line 3: expected 'key = value', got 'no equals sign'" },
		{ "max_conns_out = 0", "line 1: max_conns_out must be 1..65536, got '0'" },
		{ "handshake_timeout_ms = 99", "line 1: handshake_timeout_ms must be 100..120000, got '99'" },
		{ "shutdown_drain_ms = 60001", "line 1: shutdown_drain_ms must be 0..60000, got '60001'" },
		{ "idle_timeout_ms = 12abc", "line 1: idle_timeout_ms must be 1000..86400000, got '12abc'" },
		{ "data_dir =", "line 1: data_dir must be 1..255 bytes" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct kw_config c;

		assert_string_equal(refused(&c, v[i].in), v[i].want);
	}
}

static void test_config_bounds_lines_files_and_listen_count(void **state)
{
	struct kw_config c;
	static char big[70000];
	char err[128], many[1024] = "";

	kw_config_defaults(&c);
	memset(big, 'a', 700);
	big[700] = '\0';
	assert_int_equal(PARSE(&c, big, err), -KW_ECONFIG);
	assert_string_equal(err, "line 1: line longer than 512 bytes");
	memset(big, '\n', sizeof(big));
	assert_int_equal(kw_config_parse(&c, big, sizeof(big), err, sizeof(err)), -KW_EMSGSIZE);
	for (int i = 0; i < 9; i++)
		strcat(many, "listen = /ip4/1.2.3.4/tcp/1\n");
	assert_int_equal(PARSE(&c, many, err), -KW_ECONFIG);
	assert_string_equal(err, "line 9: more than 8 listen addresses");
	assert_int_equal(c.n_listen, 8);
	assert_int_equal(kw_config_parse(&c, "log_level=1\0x", 13, err, sizeof(err)), -KW_ECONFIG);
}

static void test_config_load_reports_missing_file(void **state)
{
	struct kw_config c;
	char err[256], path[] = "/tmp/kwcfgXXXXXX";
	int fd;

	kw_config_defaults(&c);
	assert_int_equal(kw_config_load(&c, "/nonexistent/kw.conf", err, sizeof(err)), -KW_ENOENT);
	assert_string_equal(err, "cannot open /nonexistent/kw.conf: No such file or directory");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "log_level = 2\n", 14), 14);
	close(fd);
	assert_int_equal(kw_config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.node.log_level, 2);
	unlink(path);
}

/* A FIFO named as the config file must not block start-up waiting for a writer. */
static void test_config_load_refuses_a_fifo_without_blocking(void **state)
{
	struct kw_config c;
	char err[256], dir[] = "/tmp/kwcfgXXXXXX", path[64];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	kw_config_defaults(&c);
	assert_int_equal(kw_config_load(&c, path, err, sizeof(err)), -KW_EINVAL);
	assert_non_null(strstr(err, "is not a regular file"));
	unlink(path);
	rmdir(dir);
}

#ifdef CONFIG_KW_NET_KAD_SWARM
#define PEER "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

static void test_config_bootstrap_lines_add_peers_and_replace_the_kconfig_default(void **state)
{
	struct kw_config c;
	char err[160] = "";
	const char *f = "bootstrap = /ip4/127.0.0.1/tcp/4001" PEER "\n"
			"bootstrap=/dns4/boot.example.org/tcp/4001" PEER "  # second\n";

	kw_config_defaults(&c);
	if (CONFIG_KW_APP_BOOTSTRAP[0])
		assert_true(c.bootstrap_is_default && c.n_bootstrap > 0);
	else
		assert_int_equal(c.n_bootstrap, 0);
	assert_false(c.dht_client);
	assert_int_equal(PARSE(&c, f, err), 0);
	assert_int_equal(c.n_bootstrap, 2);
	assert_false(c.bootstrap_is_default);
	assert_string_equal(c.bootstrap[0], "/ip4/127.0.0.1/tcp/4001" PEER);
	assert_string_equal(c.bootstrap[1], "/dns4/boot.example.org/tcp/4001" PEER);
	/* the command line's --bootstrap replaces the file's */
	kw_config_clear_bootstrap(&c);
	assert_int_equal(kw_config_set(&c, "bootstrap", "/ip6/::1/tcp/9" PEER, err, sizeof(err)), 0);
	assert_int_equal(c.n_bootstrap, 1);
	assert_string_equal(c.bootstrap[0], "/ip6/::1/tcp/9" PEER);
}

static void test_config_bootstrap_is_checked_when_read_naming_the_line(void **state)
{
	static const struct { const char *in; const char *want; } v[] = {
		{ "log_level = 3\nbootstrap = /ip4/127.0.0.1/tcp/4001",
		  "line 2: bootstrap '/ip4/127.0.0.1/tcp/4001': a bootstrap peer needs /p2p/" },
		{ "bootstrap = /ip4/1.2.3/tcp/1" PEER, "line 1: bootstrap '/ip4/1.2.3/tcp/1" },
		{ "bootstrap = 127.0.0.1:4001", "line 1: bootstrap '127.0.0.1:4001': " },
		{ "bootstrap = /ip4/127.0.0.1/tcp/1/p2p/notapeer", "line 1: bootstrap '/ip4/127.0.0.1/tcp/1/p2p/notapeer': " },
		{ "dht_mode = both", "line 1: dht_mode must be 'server' or 'client', got 'both'" },
	};
	struct kw_config c;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		err = refused(&c, v[i].in);
		if (strncmp(err, v[i].want, strlen(v[i].want)))
			fail_msg("input '%s': got '%s', want prefix '%s'", v[i].in, err, v[i].want);
	}
}

static void test_config_bootstrap_count_is_bounded(void **state)
{
	struct kw_config c;
	char err[160] = "";
	int i;

	kw_config_defaults(&c);
	for (i = 0; i < KW_CONFIG_BOOTSTRAP_MAX; i++)
		assert_int_equal(kw_config_set(&c, "bootstrap", "/ip4/127.0.0.1/tcp/1" PEER, err,
					       sizeof(err)), 0);
	assert_int_equal(kw_config_set(&c, "bootstrap", "/ip4/127.0.0.1/tcp/1" PEER, err,
				       sizeof(err)), -KW_ECONFIG);
	assert_string_equal(err, "more than 16 bootstrap peers");
	assert_int_equal(c.n_bootstrap, KW_CONFIG_BOOTSTRAP_MAX);
}

static void test_config_dht_mode_selects_client_or_server(void **state)
{
	struct kw_config c;
	char err[160] = "";

	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, "dht_mode = client\n", err), 0);
	assert_true(c.dht_client);
	assert_int_equal(PARSE(&c, "dht_mode = server\n", err), 0);
	assert_false(c.dht_client);
}
#endif

#ifdef CONFIG_KW_APP_HIVEMIND
static void test_config_hivemind_keys_switch_the_dht_and_add_peers(void **state)
{
	struct kw_config c;
	char err[160] = "";

	(void)state;
	kw_config_defaults(&c);
	assert_false(c.hivemind);
	assert_int_equal(PARSE(&c, "hivemind = on\nhivemind_client = on\n"
			       "hivemind_bootstrap = /ip4/127.0.0.1/tcp/4001/p2p/"
			       "12D3KooWD4wN5Pdo6ui6o1LNnzeNXyKxSwdkoBmdW5bBTyWASCw4\n"
			       "hivemind_bootstrap = /ip4/10.0.0.2/tcp/31337/p2p/"
			       "12D3KooWD4wN5Pdo6ui6o1LNnzeNXyKxSwdkoBmdW5bBTyWASCw4\n", err), 0);
	assert_true(c.hivemind);
	assert_true(c.hivemind_client);
	assert_int_equal(c.n_hivemind_bootstrap, 2);
	assert_string_equal(c.hivemind_bootstrap[1], "/ip4/10.0.0.2/tcp/31337/p2p/"
			    "12D3KooWD4wN5Pdo6ui6o1LNnzeNXyKxSwdkoBmdW5bBTyWASCw4");
}

static void test_config_hivemind_bootstrap_is_checked_naming_the_line(void **state)
{
	struct kw_config c;
	char err[256] = "";

	(void)state;
	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, "hivemind = on\nhivemind_bootstrap = /ip4/127.0.0.1/tcp/1\n",
			       err), -KW_ECONFIG);
	assert_non_null(strstr(err, "line 2: hivemind_bootstrap '/ip4/127.0.0.1/tcp/1': "));
	assert_non_null(strstr(err, "/p2p/"));
}

static void test_config_hivemind_announce_keys_fill_the_config(void **state)
{
	struct kw_config c;
	char err[256] = "";

	(void)state;
	kw_config_defaults(&c);
	assert_int_equal(c.hivemind_update_period_s, CONFIG_KW_APP_HIVEMIND_UPDATE_PERIOD_S);
	assert_int_equal(PARSE(&c, "hivemind_prefix = Meta-Llama-3-1-8B-Instruct-hf\n"
			       "hivemind_blocks = 4:12\nhivemind_public_name = kitchen pi\n"
			       "hivemind_throughput = 2.25\nhivemind_num_blocks = 32\n"
			       "hivemind_experts = ffn.0.1 ffn.0.2\nhivemind_experts = e.7\n"
			       "hivemind_update_period = 30\nhivemind_expiration = 90\n", err), 0);
	assert_string_equal(c.hivemind_prefix, "Meta-Llama-3-1-8B-Instruct-hf");
	assert_int_equal(c.hivemind_block_start, 4);
	assert_int_equal(c.hivemind_block_end, 12);
	assert_string_equal(c.hivemind_public_name, "kitchen pi");
	assert_true(c.hivemind_throughput == 2.25);
	assert_int_equal(c.hivemind_num_blocks, 32);
	assert_int_equal(c.n_hivemind_experts, 3);
	assert_string_equal(c.hivemind_experts[1], "ffn.0.2");
	assert_string_equal(c.hivemind_experts[2], "e.7");
	assert_int_equal(c.hivemind_update_period_s, 30);
	assert_int_equal(c.hivemind_expiration_s, 90);
}

static void test_config_hivemind_bad_announce_values_name_the_line(void **state)
{
	static const char *const bad[] = {
		"hivemind_prefix = a.b\n", "hivemind_prefix = a b\n", "hivemind_blocks = 5:5\n",
		"hivemind_blocks = 5\n", "hivemind_blocks = x:3\n", "hivemind_throughput = -1\n",
		"hivemind_throughput = nan\n", "hivemind_throughput = 3x\n",
		"hivemind_experts = ffn.01\n", "hivemind_experts = ffn\n",
		"hivemind_update_period = 0\n",
	};
	struct kw_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_non_null(strstr(refused(&c, bad[i]), "line 1: hivemind_"));
}
#endif

#ifdef CONFIG_KW_APP_SERVE
static void test_config_serve_blocks_is_a_span_checked_when_read(void **state)
{
	struct kw_config c;
	char err[256] = "";

	(void)state;
	kw_config_defaults(&c);
	assert_int_equal(PARSE(&c, "serve_model = /models/tiny\nserve_blocks = 2:5\n", err), 0);
	assert_string_equal(c.serve_model, "/models/tiny");
	assert_int_equal(c.serve_first, 2);
	assert_int_equal(c.serve_end, 5);
	assert_int_equal(PARSE(&c, "serve_blocks = 5:5\n", err), -KW_ECONFIG);
	assert_non_null(strstr(err, "line 1: serve_blocks must be A:B with 0 <= A < B"));
	assert_int_equal(PARSE(&c, "serve_blocks = 3\n", err), -KW_ECONFIG);
	assert_non_null(strstr(err, "serve_blocks must be A:B (blocks A .. B-1)"));
	assert_int_equal(c.serve_first, 2);   /* the bad lines changed nothing */
	assert_int_equal(c.serve_end, 5);
}
#endif

#ifdef CONFIG_KW_NET_SWARM
static void test_config_announce_lines_add_addresses_and_clear_empties_them(void **state)
{
	struct kw_config c;
	char err[256] = "";

	(void)state;
	kw_config_defaults(&c);
	assert_int_equal(c.n_announce, 0);
	assert_int_equal(PARSE(&c, "announce = /ip4/203.0.113.7/tcp/4001\n"
			       "announce = /ip6/2001:db8::7/tcp/4001\n", err), 0);
	assert_int_equal(c.n_announce, 2);
	assert_string_equal(c.announce[0], "/ip4/203.0.113.7/tcp/4001");
	kw_config_clear_announce(&c);  /* --announce replaces the file's */
	assert_int_equal(c.n_announce, 0);
}

static void test_config_announce_refuses_what_a_peer_cannot_dial(void **state)
{
	static const char *const bad[] = {
		"announce = /ip4/0.0.0.0/tcp/4001", "announce = /ip6/::/tcp/4001",
		"announce = /ip4/203.0.113.7/tcp/0", "announce = /dns4/example.com/tcp/1",
		"announce = /ip4/203.0.113.7/tcp/1/p2p/12D3KooWD4wN5Pdo6ui6o1LNnzeNXyKxSwdkoBmdW5bBTyWASCw4",
	};
	struct kw_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_non_null(strstr(refused(&c, bad[i]), "line 1: announce '"));
		assert_int_equal(c.n_announce, 0);
	}
	assert_non_null(strstr(refused(&c, "announce = /ip4/0.0.0.0/tcp/4001"),
			       "peers must be able to dial it"));
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_come_from_kconfig),
		cmocka_unit_test(test_config_parses_keys_comments_and_repeated_listen),
		cmocka_unit_test(test_config_errors_name_the_line),
		cmocka_unit_test(test_config_bounds_lines_files_and_listen_count),
		cmocka_unit_test(test_config_load_reports_missing_file),
		cmocka_unit_test(test_config_file_listen_replaces_the_kconfig_default),
		cmocka_unit_test(test_config_listen_is_checked_when_read),
		cmocka_unit_test(test_config_errors_escape_file_bytes),
		cmocka_unit_test(test_config_parse_u32_is_strict),
		cmocka_unit_test(test_config_load_refuses_a_fifo_without_blocking),
#ifdef CONFIG_KW_NET_SWARM
		cmocka_unit_test(test_config_announce_lines_add_addresses_and_clear_empties_them),
		cmocka_unit_test(test_config_announce_refuses_what_a_peer_cannot_dial),
#endif
#ifdef CONFIG_KW_NET_KAD_SWARM
		cmocka_unit_test(test_config_bootstrap_lines_add_peers_and_replace_the_kconfig_default),
		cmocka_unit_test(test_config_bootstrap_is_checked_when_read_naming_the_line),
		cmocka_unit_test(test_config_bootstrap_count_is_bounded),
		cmocka_unit_test(test_config_dht_mode_selects_client_or_server),
#endif
#ifdef CONFIG_KW_APP_HIVEMIND
		cmocka_unit_test(test_config_hivemind_keys_switch_the_dht_and_add_peers),
		cmocka_unit_test(test_config_hivemind_bootstrap_is_checked_naming_the_line),
		cmocka_unit_test(test_config_hivemind_announce_keys_fill_the_config),
		cmocka_unit_test(test_config_hivemind_bad_announce_values_name_the_line),
#endif
#ifdef CONFIG_KW_APP_SERVE
		cmocka_unit_test(test_config_serve_blocks_is_a_span_checked_when_read),
#endif
	};
	return cmocka_run_group_tests_name("app/config", tests, NULL, NULL);
}
