/*
 * identify codec (net/identify): a message recorded from js-libp2p 3.x decodes (fields
 * in js's order 5, 6, 1, 2, 4, 3), our own encoding round-trips, and truncated, oversized or
 * foreign-key input is refused with exact codes.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/identify.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#include <kw/net/varint.h>

static const char kat_hex[] =
	"2a0a697066732f302e312e30320e6b776161692d656467652f302e310a24080112201ed1e8fae2c4a144b8be"
	"8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e1208047f000001060fa12208047f00000106c3501a0e"
	"2f697066732f69642f312e302e301a102f697066732f70696e672f312e302e301a0f2f697066732f6b61642f"
	"312e302e30";
/* PublicKey protobuf of the Ed25519 key of the js peer that sent that message. */
static const char kat_pub_hex[] =
	"080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

struct fx {
	struct kw_test_node *t;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_privkey key;
	uint8_t kat[512];
	size_t kat_len;
	struct kw_peer_id kat_peer;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct kw_pubkey pk;
	uint8_t pub[64];
	size_t pl;
	struct kw_swarm_limits lim = kw_test_swarm_limits();

	if (!f || !(f->t = kw_test_node_new(16 * 1024)))
		return -1;
	if (kw_key_generate(KW_KEY_ED25519, 0, &f->key) < 0 ||
	    kw_swarm_create(f->t->node, &f->key, &lim, &f->sw) < 0 ||
	    kw_identify_init(f->sw, &f->id) < 0 ||
	    kw_swarm_listen(f->sw, "/ip4/127.0.0.1/tcp/4001") < 0)
		return -1;
	f->kat_len = kw_test_unhex(kat_hex, f->kat);
	pl = kw_test_unhex(kat_pub_hex, pub);
	if (kw_pubkey_decode(pub, pl, &pk) < 0 || kw_peer_id_from_pubkey(&pk, &f->kat_peer) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	kw_swarm_destroy(f->sw);
	kw_test_assert_no_leaks(f->t->node);
	kw_test_node_free(f->t);
	free(f);
	return 0;
}

static void test_identify_decodes_js_message_kat(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };

	assert_int_equal(kw_identify_decode(f->id, f->kat, f->kat_len, &f->kat_peer, false, &ci), 0);
	assert_true(ci.have);
	assert_string_equal(ci.protocol_version, "ipfs/0.1.0");
	assert_string_equal(ci.agent, "kwaai-edge/0.1");
	assert_int_equal(ci.n_protocols, 3);
	assert_string_equal(ci.protos, "/ipfs/id/1.0.0");
	assert_int_equal(ci.n_listen, 1);
	/* /ip4/127.0.0.1/tcp/4001, kept in binary for kad's routing table */
	assert_int_equal(ci.n_addrs, 1);
	assert_int_equal(ci.addr_len[0], 8);
	assert_memory_equal(ci.addrs[0], "\x04\x7f\x00\x00\x01\x06\x0f\xa1", 8);
}

/* The status page compares what peers see with our listen addresses: observedAddr is kept. */
static void test_identify_keeps_the_observed_address(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	/* observedAddr: an unknown protocol code, then (a push) /ip4/10.0.0.1/tcp/80 */
	static const uint8_t bad[] = { 0x22, 0x03, 0x7f, 0x01, 0x02 };
	static const uint8_t good[] = { 0x22, 0x08, 0x04, 10, 0, 0, 1, 0x06, 0x00, 0x50 };

	assert_int_equal(kw_identify_decode(f->id, f->kat, f->kat_len, &f->kat_peer, false, &ci), 0);
	/* the js message observed us at /ip4/127.0.0.1/tcp/50000 */
	assert_int_equal(ci.observed_len, 8);
	assert_memory_equal(ci.observed, "\x04\x7f\x00\x00\x01\x06\xc3\x50", 8);
	assert_int_equal(kw_identify_decode(f->id, bad, sizeof(bad), NULL, true, &ci), 0);
	assert_int_equal(ci.observed_len, 0);
	assert_int_equal(kw_identify_decode(f->id, good, sizeof(good), NULL, true, &ci), 0);
	assert_int_equal(ci.observed_len, 8);
	assert_memory_equal(ci.observed, good + 2, 8);
}

static void test_identify_keeps_only_listen_addrs_that_parse(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	/* listenAddrs: unknown protocol code 0x7f, then /ip4/10.0.0.1/tcp/80, then an empty one */
	static const uint8_t m[] = {
		0x12, 0x03, 0x7f, 0x01, 0x02,
		0x12, 0x08, 0x04, 10, 0, 0, 1, 0x06, 0x00, 0x50,
		0x12, 0x00,
	};

	assert_int_equal(kw_identify_decode(f->id, m, sizeof(m), NULL, true, &ci), 0);
	assert_int_equal(ci.n_listen, 3);
	assert_int_equal(ci.n_addrs, 1);
	assert_int_equal(ci.addr_len[0], 8);
	assert_memory_equal(ci.addrs[0], m + 7, 8);
}

static void test_identify_refuses_key_of_another_peer(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };

	assert_int_equal(kw_identify_decode(f->id, f->kat, f->kat_len, kw_swarm_peer_id(f->sw),
					    false, &ci), -KW_EPEERID);
}

static void test_identify_refuses_truncated_and_oversized(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	static uint8_t big[KW_IDENTIFY_MSG_MAX + 1];
	/* cuts inside protocolVersion, agentVersion, publicKey and the last protocol */
	static const size_t cuts[] = { 5, 20, 40, 60 };
	size_t i;

	for (i = 0; i < KW_ARRAY_SIZE(cuts); i++)
		assert_int_equal(kw_identify_decode(f->id, f->kat, cuts[i], NULL, false, &ci),
				 -KW_EBADMSG);
	assert_int_equal(kw_identify_decode(f->id, f->kat, f->kat_len - 1, NULL, false, &ci),
			 -KW_EBADMSG);
	assert_int_equal(kw_identify_decode(f->id, big, sizeof(big), NULL, false, &ci), -KW_EBADMSG);
	/* 40 protocols: more than the bounded decoder keeps (32) */
	{
		uint8_t m[2048];
		size_t n = 0;
		int k;

		for (k = 0; k < 40; k++) {
			m[n++] = 0x1a;
			m[n++] = 4;
			memcpy(m + n, "/p/x", 4);
			n += 4;
		}
		assert_int_equal(kw_identify_decode(f->id, m, n, NULL, true, &ci), -KW_EBADMSG);
	}
}

static void test_identify_requires_public_key_unless_push(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	static const uint8_t only_proto[] = { 0x1a, 0x04, '/', 'a', '/', 'b' };

	assert_int_equal(kw_identify_decode(f->id, only_proto, sizeof(only_proto), NULL, false, &ci),
			 -KW_EBADMSG);
	assert_int_equal(kw_identify_decode(f->id, only_proto, sizeof(only_proto), NULL, true, &ci), 0);
	assert_int_equal(ci.n_protocols, 1);
	assert_string_equal(ci.protos, "/a/b");
}

static void test_identify_encode_round_trips(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	uint8_t buf[KW_IDENTIFY_MSG_MAX + 16];
	long n = kw_identify_encode(f->id, NULL, buf, sizeof(buf));
	uint64_t l;
	int h;

	assert_true(n > 0);
	h = kw_uvarint_decode(buf, (size_t)n, &l);
	assert_true(h > 0);
	assert_int_equal((size_t)h + l, (size_t)n);
	assert_int_equal(kw_identify_decode(f->id, buf + h, (size_t)l, kw_swarm_peer_id(f->sw),
					    false, &ci), 0);
	assert_string_equal(ci.protocol_version, "ipfs/0.1.0");
	assert_memory_equal(ci.agent, "kwaainet-edge/", 14);
	assert_int_equal(ci.n_protocols, 2);  /* id and id/push */
	assert_int_equal(ci.n_listen, 1);
	assert_int_equal(kw_identify_encode(f->id, NULL, buf, 20), -KW_ENOSPC);
}

static void test_identify_announce_replaces_the_listen_addresses(void **state)
{
	struct fx *f = *state;
	struct kw_identify_remote ci = { 0 };
	struct kw_multiaddr ann[2], got;
	uint8_t buf[KW_IDENTIFY_MSG_MAX + 16];
	long n;
	uint64_t l;
	int h;

	assert_int_equal(kw_maddr_from_text("/ip4/203.0.113.7/tcp/31337", &ann[0], NULL, 0), 0);
	assert_int_equal(kw_maddr_from_text("/ip6/2001:db8::7/tcp/31337", &ann[1], NULL, 0), 0);
	assert_int_equal(kw_identify_set_announce(f->id, ann, 2), 0);
	n = kw_identify_encode(f->id, NULL, buf, sizeof(buf));
	assert_true(n > 0);
	h = kw_uvarint_decode(buf, (size_t)n, &l);
	assert_true(h > 0);
	assert_int_equal(kw_identify_decode(f->id, buf + h, (size_t)l, kw_swarm_peer_id(f->sw),
					    false, &ci), 0);
	assert_int_equal(ci.n_listen, 2);  /* the announced ones only, not 127.0.0.1:4001 */
	assert_int_equal(kw_maddr_from_bytes(ci.addrs[0], ci.addr_len[0], &got, NULL, 0), 0);
	assert_true(kw_maddr_equal(&got, &ann[0]));
	assert_int_equal(kw_maddr_from_bytes(ci.addrs[1], ci.addr_len[1], &got, NULL, 0), 0);
	assert_true(kw_maddr_equal(&got, &ann[1]));
	/* none: back to the swarm's listen addresses; too many: refused */
	assert_int_equal(kw_identify_set_announce(f->id, NULL, 0), 0);
	n = kw_identify_encode(f->id, NULL, buf, sizeof(buf));
	h = kw_uvarint_decode(buf, (size_t)n, &l);
	assert_int_equal(kw_identify_decode(f->id, buf + h, (size_t)l, NULL, false, &ci), 0);
	assert_int_equal(ci.n_listen, 1);
	assert_int_equal(kw_identify_set_announce(f->id, ann, KW_IDENTIFY_ANNOUNCE_MAX + 1),
			 -KW_ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identify_decodes_js_message_kat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_keeps_only_listen_addrs_that_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_keeps_the_observed_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_refuses_key_of_another_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_refuses_truncated_and_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_requires_public_key_unless_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_encode_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_announce_replaces_the_listen_addresses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
