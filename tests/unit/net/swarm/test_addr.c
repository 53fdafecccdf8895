/*
 * The swarm's address helpers (net/swarm/addr.c): the label a connection carries in log
 * lines before the handshake names its peer is the remote's whole address, ip4 or ip6,
 * never cut; a buffer too small is an error, not a shorter address.
 */
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"

#include <kw/err.h>

#include "../../../../net/swarm/swarm_priv.h"

static void label_of(const struct sockaddr *sa, socklen_t len, char *out, size_t cap, int want)
{
	uint8_t bin[KW_MADDR_BIN_MAX];
	size_t bl;

	assert_int_equal(kw_sw_addr_from_sockaddr(sa, len, bin, sizeof(bin), &bl), 0);
	assert_int_equal(kw_sw_addr_label(bin, bl, out, cap), want);
}

static void test_addr_label_keeps_the_whole_ip4_address(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(4001) };
	char label[KW_SW_ADDR_LABEL_MAX];

	assert_int_equal(inet_pton(AF_INET, "192.168.1.100", &sin.sin_addr), 1);
	label_of((struct sockaddr *)&sin, sizeof(sin), label, sizeof(label), 0);
	assert_string_equal(label, "/ip4/192.168.1.100/tcp/4001");
}

static void test_addr_label_keeps_the_longest_ip6_address(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(65535) };
	const char *want = "/ip6/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/tcp/65535";
	char label[KW_SW_ADDR_LABEL_MAX];

	memset(&sin6.sin6_addr, 0xff, sizeof(sin6.sin6_addr));
	label_of((struct sockaddr *)&sin6, sizeof(sin6), label, sizeof(label), 0);
	assert_string_equal(label, want);
	assert_true(strlen(want) < sizeof(label));
}

static void test_addr_label_reports_a_short_buffer_instead_of_cutting(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(36297) };
	char label[24];

	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr), 1);
	/* "/ip4/127.0.0.1/tcp/36297" is 24 characters: one more than 24 bytes hold */
	label_of((struct sockaddr *)&sin, sizeof(sin), label, sizeof(label), -KW_ENOSPC);
	assert_string_equal(label, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_label_keeps_the_whole_ip4_address),
		cmocka_unit_test(test_addr_label_keeps_the_longest_ip6_address),
		cmocka_unit_test(test_addr_label_reports_a_short_buffer_instead_of_cutting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
