/*
 * libFuzzer target: the Identify protobuf decoder (net/identify), which reads what any remote
 * peer sends on /ipfs/id/1.0.0 and /ipfs/id/push/1.0.0. The first byte picks push/non-push and
 * whether a peer id is expected (the seed KAT's sender); the rest is the message body. A
 * decode that succeeds must leave bounded, NUL-terminated strings and protocol lists that
 * iterate within protos_len, and kept listen addresses that each parse as a multiaddr; an
 * error must be one of the documented codes.
 * One node (simulated sockets, heap arena) is built on the first input and reused.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/identify.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>
#include <kw/net/swarm.h>
#include <kw/node.h>
#include <kw/sim.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct kw_sim_net net;
	struct kw_sim sim;
	uint8_t net_mem[16 * (4096 + 512) + 4096];
	struct kw_node *node;
	struct kw_swarm *sw;
	struct kw_identify *id;
	struct kw_privkey key;
	struct kw_peer_id peer;
};

static struct fz *setup(void)
{
	static struct fz f;
	static bool done;
	struct kw_arena a;

	if (done)
		return f.id ? &f : NULL;
	done = true;
	kw_arena_init(&a, f.net_mem, sizeof(f.net_mem));
	if (kw_sim_net_init(&f.net, &a, 16, 4096) < 0)
		return NULL;
	kw_sim_init(&f.sim, &f.net);
	f.node = kw_node_create_heap(16u << 20, &f.sim.sys, NULL);
	if (!f.node || kw_key_generate(KW_KEY_ED25519, 0, &f.key) < 0 ||
	    kw_swarm_create(f.node, &f.key, NULL, &f.sw) < 0 || kw_identify_init(f.sw, &f.id) < 0)
		return NULL;
	f.peer = *kw_swarm_peer_id(f.sw);
	return &f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kw_identify_remote ci;
	struct fz *f = setup();
	uint16_t i;
	size_t off;
	int r;

	if (!f)
		__builtin_trap();
	if (size < 1)
		return 0;
	memset(&ci, 0, sizeof(ci));
	r = kw_identify_decode(f->id, data + 1, size - 1, (data[0] & 1) ? &f->peer : NULL,
			       (data[0] & 2) != 0, &ci);
	if (r != 0 && r != -KW_EBADMSG && r != -KW_EPEERID)
		__builtin_trap();
	if (r != 0)
		return 0;
	if (memchr(ci.agent, 0, sizeof(ci.agent)) == NULL ||
	    memchr(ci.protocol_version, 0, sizeof(ci.protocol_version)) == NULL ||
	    ci.protos_len > sizeof(ci.protos))
		__builtin_trap();
	for (i = 0, off = 0; i < ci.n_protocols; i++) {
		const char *p = memchr(ci.protos + off, 0, ci.protos_len - off);

		if (off >= ci.protos_len || !p)
			__builtin_trap();
		off = (size_t)(p - ci.protos) + 1;
	}
	if (ci.n_addrs > KW_IDENTIFY_LISTEN_KEEP || ci.n_addrs > ci.n_listen)
		__builtin_trap();
	for (i = 0; i < ci.n_addrs; i++) {
		static struct kw_multiaddr ma;

		if (ci.addr_len[i] == 0 || ci.addr_len[i] > KW_IDENTIFY_ADDR_MAX ||
		    kw_maddr_from_bytes(ci.addrs[i], ci.addr_len[i], &ma, NULL, 0) < 0)
			__builtin_trap();
	}
	return 0;
}
