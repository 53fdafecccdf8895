/* net/peer/multiaddr.c: multiformats/multiaddr vectors, text forms, bounds, sockaddr and /p2p helpers. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include <kw/err.h>
#include <kw/net/multiaddr.h>

static const struct { const char *txt, *hex; } spec[] = {
	{ "/ip4/192.0.2.42/tcp/443", "04c000022a0601bb" },
	{ "/ip4/127.0.0.1/udp/1234", "047f000001910204d2" },
	{ "/ip4/127.0.0.1/tcp/4001", "047f000001060fa1" },
	{ "/ip6/::1/tcp/4001", "2900000000000000000000000000000001060fa1" },
	{ "/ip6/2001:db8::1/tcp/65535", "2920010db800000000000000000000000106ffff" },
	{ "/dns/localhost/tcp/443", "35096c6f63616c686f73740601bb" },
	{ "/dns4/example.com/tcp/1234", "360b6578616d706c652e636f6d0604d2" },
	{ "/dns6/example.com/tcp/1234", "370b6578616d706c652e636f6d0604d2" },
	{ "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
	  "047f000001060fa1a503260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e" },
	{ "/p2p/QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG",
	  "a503221220b6c8a8c0a3105fc27afca4fb1173791f038e4343fd56b7c67b616dbc30a04ccd" },
};

static void test_maddr_text_encodes_to_spec_bytes(void **state)
{
	for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
		struct kw_multiaddr ma;
		uint8_t want[128];
		char err[KW_MADDR_ERR_MAX];
		int n = test_unhex(spec[i].hex, want, sizeof(want));

		assert_int_equal(kw_maddr_from_text(spec[i].txt, &ma, err, sizeof(err)), 0);
		assert_int_equal(ma.len, n);
		assert_memory_equal(ma.bytes, want, (size_t)n);
	}
}

static void test_maddr_spec_bytes_print_as_spec_text(void **state)
{
	for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
		struct kw_multiaddr ma;
		uint8_t in[128];
		char txt[KW_MADDR_TEXT_MAX];
		int n = test_unhex(spec[i].hex, in, sizeof(in));

		assert_int_equal(kw_maddr_from_bytes(in, (size_t)n, &ma, NULL, 0), 0);
		assert_int_equal(kw_maddr_to_text(&ma, txt, sizeof(txt)), 0);
		assert_string_equal(txt, spec[i].txt);
	}
}

static void test_maddr_accepts_aliases_and_cid_peer_ids(void **state)
{
	struct kw_multiaddr a, b;
	char txt[KW_MADDR_TEXT_MAX];

	assert_int_equal(kw_maddr_from_text("/ipfs/" ED25519_PEER_B58, &a, NULL, 0), 0);
	assert_int_equal(kw_maddr_from_text("/p2p/" ED25519_PEER_CID, &b, NULL, 0), 0);
	assert_true(kw_maddr_equal(&a, &b));
	assert_int_equal(kw_maddr_to_text(&b, txt, sizeof(txt)), 0);
	assert_string_equal(txt, "/p2p/" ED25519_PEER_B58);
	/* One trailing slash is tolerated. */
	assert_int_equal(kw_maddr_from_text("/ip4/1.2.3.4/tcp/5/", &a, NULL, 0), 0);
	assert_int_equal(a.n, 2);
}

static void test_maddr_ip6_prints_in_rfc5952_form(void **state)
{
	struct kw_multiaddr ma;
	char txt[KW_MADDR_TEXT_MAX];

	assert_int_equal(kw_maddr_from_text("/ip6/2001:0DB8:0000:0000:0000:0000:0000:0001/udp/53",
					    &ma, NULL, 0), 0);
	assert_int_equal(kw_maddr_to_text(&ma, txt, sizeof(txt)), 0);
	assert_string_equal(txt, "/ip6/2001:db8::1/udp/53");
}

static void test_maddr_valueless_protocols_round_trip(void **state)
{
	static const char *const s =
		"/dns4/relay.example/tcp/443/wss/p2p/" ED25519_PEER_B58 "/p2p-circuit";
	struct kw_multiaddr ma, back;
	char txt[KW_MADDR_TEXT_MAX];

	assert_int_equal(kw_maddr_from_text(s, &ma, NULL, 0), 0);
	assert_int_equal(ma.n, 5);
	assert_int_equal(kw_maddr_to_text(&ma, txt, sizeof(txt)), 0);
	assert_string_equal(txt, s);
	assert_int_equal(kw_maddr_from_bytes(ma.bytes, ma.len, &back, NULL, 0), 0);
	assert_true(kw_maddr_equal(&ma, &back));
}

static void test_maddr_unknown_code_is_named_in_error(void **state)
{
	static const uint8_t sctp[] = { 0x04, 127, 0, 0, 1, 0x84, 0x01, 0x00, 0x50 };  /* sctp 132 */
	struct kw_multiaddr ma;
	char err[KW_MADDR_ERR_MAX];

	assert_int_equal(kw_maddr_from_bytes(sctp, sizeof(sctp), &ma, err, sizeof(err)),
			 -KW_ENOPROTO);
	assert_non_null(strstr(err, "0x84"));
	assert_int_equal(kw_maddr_from_text("/ip4/1.2.3.4/sctp/80", &ma, err, sizeof(err)),
			 -KW_ENOPROTO);
	assert_non_null(strstr(err, "'sctp'"));
}

static void test_maddr_text_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"", "ip4/1.2.3.4", "/", "/ip4", "/ip4/", "/ip4/1.2.3", "/ip4/1.2.3.256",
		"/ip4/01.2.3.4", "/ip4/1.2.3.4/tcp", "/ip4/1.2.3.4/tcp/65536", "/ip4/1.2.3.4/tcp/-1",
		"/ip4/1.2.3.4/tcp/12a", "/ip4/1.2.3.4//tcp/1", "/ip6/::1::2", "/ip6/1.2.3.4",
		"/dns4//tcp/1", "/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p",
		"/p2p/notapeerid", "/ip4/1.2.3.4/tcp/1//",
	};
	struct kw_multiaddr ma;
	char err[KW_MADDR_ERR_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kw_maddr_from_text(bad[i], &ma, err, sizeof(err)), -KW_EINVAL);
		assert_true(err[0] != '\0');
	}
}

static void test_maddr_binary_rejects_truncated_and_bad_values(void **state)
{
	uint8_t in[128];
	struct kw_multiaddr ma;
	int n = test_unhex(spec[8].hex, in, sizeof(in));

	for (int cut = 0; cut < n; cut++) {
		int ret = kw_maddr_from_bytes(in, (size_t)cut, &ma, NULL, 0);

		/* Cutting exactly between components leaves a valid, shorter multiaddr. */
		if (cut == 5 || cut == 8)
			assert_int_equal(ret, 0);
		else
			assert_int_equal(ret, -KW_EINVAL);
	}
	/* DNS name containing '/' or empty. */
	static const uint8_t slash[] = { 0x35, 0x03, 'a', '/', 'b' };
	static const uint8_t empty[] = { 0x35, 0x00 };
	static const uint8_t nonmin[] = { 0x84, 0x00, 127, 0, 0, 1 };  /* ip4 code as 2 bytes */
	static const uint8_t badp2p[] = { 0xa5, 0x03, 0x03, 0x12, 0x01, 0x00 };
	assert_int_equal(kw_maddr_from_bytes(slash, sizeof(slash), &ma, NULL, 0), -KW_EINVAL);
	assert_int_equal(kw_maddr_from_bytes(empty, sizeof(empty), &ma, NULL, 0), -KW_EINVAL);
	assert_int_equal(kw_maddr_from_bytes(nonmin, sizeof(nonmin), &ma, NULL, 0), -KW_EINVAL);
	assert_int_equal(kw_maddr_from_bytes(badp2p, sizeof(badp2p), &ma, NULL, 0), -KW_EINVAL);
}

static void test_maddr_bounds_are_enforced(void **state)
{
	static uint8_t big[KW_MADDR_MAX_BYTES + 7];
	struct kw_multiaddr ma;
	char txt[1024];
	size_t o = 0;

	/* Nine /tcp components: one more than fits. */
	for (int i = 0; i < 9; i++) {
		big[o++] = 0x06;
		big[o++] = 0;
		big[o++] = (uint8_t)i;
	}
	assert_int_equal(kw_maddr_from_bytes(big, o - 3, &ma, NULL, 0), 0);
	assert_int_equal(ma.n, 8);
	assert_int_equal(kw_maddr_from_bytes(big, o, &ma, NULL, 0), -KW_EMSGSIZE);
	memset(big, 0, sizeof(big));
	assert_int_equal(kw_maddr_from_bytes(big, sizeof(big), &ma, NULL, 0), -KW_EMSGSIZE);
	assert_int_equal(kw_maddr_from_bytes(big, 0, &ma, NULL, 0), -KW_EINVAL);
	strcpy(txt, "");
	for (int i = 0; i < 9; i++)
		strcat(txt, "/tcp/1");
	assert_int_equal(kw_maddr_from_text(txt, &ma, NULL, 0), -KW_EMSGSIZE);
	/* Two long DNS names exceed the byte bound. */
	strcpy(txt, "/dns/");
	memset(txt + 5, 'a', 200);
	strcpy(txt + 205, "/dns/");
	memset(txt + 210, 'b', 200);
	txt[410] = '\0';
	assert_int_equal(kw_maddr_from_text(txt, &ma, NULL, 0), -KW_EMSGSIZE);
	txt[205] = '\0';
	assert_int_equal(kw_maddr_from_text(txt, &ma, NULL, 0), 0);
	assert_int_equal(kw_maddr_to_text(&ma, txt, 100), -KW_ENOSPC);
}

static void test_maddr_to_sockaddr_handles_ip4_ip6_and_p2p_suffix(void **state)
{
	struct kw_multiaddr ma, back;
	struct sockaddr_storage ss;
	socklen_t len;
	char ip[INET6_ADDRSTRLEN];

	assert_int_equal(kw_maddr_from_text(spec[8].txt, &ma, NULL, 0), 0);
	assert_int_equal(kw_maddr_to_sockaddr(&ma, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 4001);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.1");
	assert_int_equal(kw_maddr_from_sockaddr((struct sockaddr *)&ss, len, &back), 0);
	kw_maddr_strip_peer_id(&ma);
	assert_true(kw_maddr_equal(&ma, &back));

	assert_int_equal(kw_maddr_from_text("/ip6/2001:db8::1/tcp/65535", &ma, NULL, 0), 0);
	assert_int_equal(kw_maddr_to_sockaddr(&ma, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	assert_int_equal(kw_maddr_from_sockaddr((struct sockaddr *)&ss, len, &back), 0);
	assert_true(kw_maddr_equal(&ma, &back));
}

static void test_maddr_to_sockaddr_refuses_other_shapes(void **state)
{
	static const char *const no[] = {
		"/dns4/example.com/tcp/1", "/ip4/1.2.3.4/udp/1", "/ip4/1.2.3.4",
		"/ip4/1.2.3.4/tcp/1/ws", "/tcp/1/ip4/1.2.3.4",
	};
	struct kw_multiaddr ma;
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		assert_int_equal(kw_maddr_from_text(no[i], &ma, NULL, 0), 0);
		assert_int_equal(kw_maddr_to_sockaddr(&ma, &ss, &len), -KW_ENOTSUP);
	}
	ss.ss_family = AF_UNIX;
	assert_int_equal(kw_maddr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &ma),
			 -KW_ENOTSUP);
}

static void test_maddr_peer_id_extract_append_strip(void **state)
{
	struct kw_multiaddr ma, plain;
	struct kw_peer_id id, want;
	char txt[KW_MADDR_TEXT_MAX];

	assert_int_equal(kw_maddr_from_text("/ip4/127.0.0.1/tcp/4001", &plain, NULL, 0), 0);
	assert_int_equal(kw_maddr_peer_id(&plain, &id), -KW_ENOENT);
	assert_int_equal(kw_peer_id_from_text(ED25519_PEER_B58, &want), 0);
	ma = plain;
	assert_int_equal(kw_maddr_append_peer_id(&ma, &want), 0);
	assert_int_equal(kw_maddr_to_text(&ma, txt, sizeof(txt)), 0);
	assert_string_equal(txt, spec[8].txt);
	assert_int_equal(kw_maddr_append_peer_id(&ma, &want), -KW_EEXIST);
	assert_int_equal(kw_maddr_peer_id(&ma, &id), 0);
	assert_true(kw_peer_id_equal(&id, &want));
	kw_maddr_strip_peer_id(&ma);
	assert_true(kw_maddr_equal(&ma, &plain));
	kw_maddr_strip_peer_id(&ma);  /* nothing to strip */
	assert_true(kw_maddr_equal(&ma, &plain));
	want.len = 3;
	assert_int_equal(kw_maddr_append_peer_id(&ma, &want), -KW_EINVAL);
}

static void test_maddr_components_and_encapsulate(void **state)
{
	struct kw_multiaddr a, b;
	struct kw_maddr_comp c;

	assert_int_equal(kw_maddr_from_text("/ip4/10.0.0.1", &a, NULL, 0), 0);
	assert_int_equal(kw_maddr_from_text("/tcp/80/ws", &b, NULL, 0), 0);
	assert_int_equal(kw_maddr_encapsulate(&a, &b), 0);
	assert_int_equal(a.n, 3);
	assert_int_equal(kw_maddr_component(&a, 1, &c), 0);
	assert_int_equal(c.code, KW_MA_TCP);
	assert_int_equal(c.len, 2);
	assert_int_equal(c.value[1], 80);
	assert_int_equal(kw_maddr_component(&a, 2, &c), 0);
	assert_int_equal(c.code, KW_MA_WS);
	assert_int_equal(c.len, 0);
	assert_int_equal(kw_maddr_component(&a, 3, &c), -KW_ENOENT);
	/* 3 + 2 + 2 = 7 components fit; a fourth encapsulation would make 9. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(kw_maddr_encapsulate(&a, &b), i < 2 ? 0 : -KW_EMSGSIZE);
	assert_int_equal(a.n, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maddr_text_encodes_to_spec_bytes),
		cmocka_unit_test(test_maddr_spec_bytes_print_as_spec_text),
		cmocka_unit_test(test_maddr_accepts_aliases_and_cid_peer_ids),
		cmocka_unit_test(test_maddr_ip6_prints_in_rfc5952_form),
		cmocka_unit_test(test_maddr_valueless_protocols_round_trip),
		cmocka_unit_test(test_maddr_unknown_code_is_named_in_error),
		cmocka_unit_test(test_maddr_text_rejects_malformed),
		cmocka_unit_test(test_maddr_binary_rejects_truncated_and_bad_values),
		cmocka_unit_test(test_maddr_bounds_are_enforced),
		cmocka_unit_test(test_maddr_to_sockaddr_handles_ip4_ip6_and_p2p_suffix),
		cmocka_unit_test(test_maddr_to_sockaddr_refuses_other_shapes),
		cmocka_unit_test(test_maddr_peer_id_extract_append_strip),
		cmocka_unit_test(test_maddr_components_and_encapsulate),
	};
	return cmocka_run_group_tests_name("net/peer/multiaddr", tests, NULL, NULL);
}
