/*
 * libFuzzer target: the Kademlia node (net/kad/kad.c, lookup.c) fed hostile messages the
 * way a remote peer can: as requests (kw_kad_handle_request) and as replies to our lookups
 * (kw_kad_on_reply). The input is stream bytes: one selector byte, then length-prefixed
 * messages as on /ipfs/kad/1.0.0. Selector bit 0: 0 = requests from a fixed peer, 1 = replies
 * to the outstanding requests of a lookup the target starts. Properties: a request returns
 * one of the documented codes and an answer that encodes; a reply never breaks the lookup
 * (its callback runs exactly once, with a result inside the bounds).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/net/kad.h>
#include <kw/sim.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NTOK 64

static struct kw_kad_msg in, out;
static uint8_t enc[CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 16];
static struct kw_sim_net net;
static struct kw_sim sim;
static struct kw_loop loop;
static struct kw_kad *node;
static struct kw_peer_id self, remote;
static uint32_t tokens[NTOK];
static unsigned ntok;
static unsigned calls;
static bool done;

static int t_request(void *t, const struct kw_peer_id *to, const struct kw_kad_rt_addr *addrs,
		     size_t naddrs, const struct kw_kad_msg *req, uint32_t token)
{
	(void)t; (void)to; (void)addrs; (void)naddrs; (void)req;
	if (ntok < NTOK)
		tokens[ntok++] = token;
	return 0;
}

static size_t t_self(void *t, struct kw_multiaddr *o, size_t cap)
{
	(void)t;
	return cap && kw_maddr_from_text("/ip4/10.0.0.1/tcp/4001", o, NULL, 0) == 0;
}

static void on_done(struct kw_kad *k, const struct kw_kad_result *r, void *user)
{
	(void)k; (void)user;
	calls++;
	done = true;
	if (r->n_peers > 64 || (r->n_peers && !r->peers))
		__builtin_trap();
}

static void make_id(struct kw_peer_id *id, uint8_t seed)
{
	id->len = 34;
	id->bytes[0] = 0x12;
	id->bytes[1] = 0x20;
	for (unsigned i = 2; i < 34; i++)
		id->bytes[i] = (uint8_t)(seed * 31u + i * 7u);
}

static void init(void)
{
	static uint8_t net_mem[1 << 14];
	static uint8_t loop_mem[1 << 20];
	static uint8_t node_mem[4 << 20];
	struct kw_arena a;
	struct kw_kad_cfg c;
	struct kw_kad_transport tr = { .request = t_request, .self_addrs = t_self };

	kw_arena_init(&a, net_mem, sizeof(net_mem));
	if (kw_sim_net_init(&net, &a, 2, 1024))
		__builtin_trap();
	net.auto_advance = true;
	kw_sim_init(&sim, &net);
	kw_arena_init(&a, loop_mem, sizeof(loop_mem));
	if (kw_loop_init(&loop, &sim.sys, &a, 4096, 8))
		__builtin_trap();
	make_id(&self, 1);
	make_id(&remote, 2);
	memset(&c, 0, sizeof(c));
	c.self = &self;
	c.max_lookups = 2;
	c.table_entries = 64;
	c.rate_peers = 4;
	c.rate_burst = 10000;
	c.rate_per_peer = 10000;
	c.store.max_records = 8;
	c.store.max_record_bytes = 2048;
	c.store.max_total_bytes = 8192;
	c.store.max_records_per_peer = 8;
	c.store.max_providers = 8;
	c.store.max_providers_per_key = 4;
	c.store.max_providers_per_peer = 8;
	if (kw_kad_arena_bytes(&c) > sizeof(node_mem))
		__builtin_trap();
	kw_arena_init(&a, node_mem, sizeof(node_mem));
	if (kw_kad_create(&loop, &a, &c, &tr, &node))
		__builtin_trap();
	for (uint8_t i = 3; i < 13; i++) {     /* a few table members to answer with */
		struct kw_peer_id id;
		struct kw_multiaddr ma;

		make_id(&id, i);
		if (kw_maddr_from_text("/ip4/10.0.0.2/tcp/4001", &ma, NULL, 0))
			__builtin_trap();
		kw_kad_peer_seen(node, &id, &ma, 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool inited;
	bool replies;
	long n;

	if (!inited) {
		init();
		inited = true;
	}
	if (size < 1)
		return 0;
	replies = data[0] & 1;
	data++;
	size--;
	if (replies) {
		ntok = 0;
		calls = 0;
		done = false;
		if (kw_kad_get_closest(node, remote.bytes, remote.len, on_done, NULL) != 0)
			__builtin_trap();
	}
	for (unsigned t = 0; size > 0; t++) {
		n = kw_kad_msg_decode(data, size, &in);
		if (n <= 0)
			break;
		data += n;
		size -= (size_t)n;
		if (!replies) {
			int rc = kw_kad_handle_request(node, &remote, &in, &out);

			if (rc == 0) {
				long e = kw_kad_msg_encode(&out, enc, sizeof(enc));

				if (e < 0 && e != -KW_EMSGSIZE)
					__builtin_trap();
			} else if (rc != KW_KAD_NO_REPLY && rc >= 0) {
				__builtin_trap();
			}
		} else if (ntok > 0) {
			kw_kad_on_reply(node, tokens[t % ntok], 0, &in);
			kw_loop_run_once(&loop, 0);
		}
	}
	if (replies) {
		/* every outstanding request fails: the lookup must end, with one callback */
		for (unsigned round = 0; round < 64 && !done; round++) {
			unsigned m = ntok;

			for (unsigned i = 0; i < m; i++)
				kw_kad_on_reply(node, tokens[i], -KW_ECONNRESET, NULL);
			kw_loop_run_once(&loop, 0);
		}
		for (unsigned i = 0; i < 8 && !done; i++)
			kw_loop_run_once(&loop, -1);
		if (!done || calls != 1)
			__builtin_trap();
	}
	return 0;
}
