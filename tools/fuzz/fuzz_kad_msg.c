/*
 * libFuzzer target: the Kademlia message decoder (net/kad/msg.c), which reads what any
 * remote peer sends on /ipfs/kad/1.0.0. The input is the stream bytes (length prefix
 * included). A decode that succeeds must consume at most the input, stay within every bound
 * and keep only addresses that parse; re-encoding it must decode to the same message (peer order kept within each list). An
 * error must be one of the documented codes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/kad_msg.h>
#include <kw/net/multiaddr.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_kad_msg m, m2;
static uint8_t out[CONFIG_KW_NET_KAD_MAX_MESSAGE_BYTES + 16];

static void check_peer(const struct kw_kad_peer *p, const struct kw_kad_peer *q)
{
	unsigned j;

	if (p->list != q->list || p->connection != q->connection || p->id_len != q->id_len ||
	    memcmp(p->id, q->id, p->id_len) || p->n_addrs != q->n_addrs)
		__builtin_trap();
	for (j = 0; j < p->n_addrs; j++)
		if (p->addr_len[j] != q->addr_len[j] ||
		    memcmp(p->addrs[j], q->addrs[j], p->addr_len[j]))
			__builtin_trap();
}

/* The encoder writes all closer peers, then all provider peers: order holds per list. */
static void check_list(const struct kw_kad_msg *a, const struct kw_kad_msg *b, unsigned list)
{
	unsigned i = 0, j = 0;

	for (;;) {
		while (i < a->n_peers && a->peers[i].list != list)
			i++;
		while (j < b->n_peers && b->peers[j].list != list)
			j++;
		if (i == a->n_peers || j == b->n_peers)
			break;
		check_peer(&a->peers[i++], &b->peers[j++]);
	}
	if (i != a->n_peers || j != b->n_peers)  /* one list is longer */
		__builtin_trap();
}

static void check_same(const struct kw_kad_msg *a, const struct kw_kad_msg *b)
{
	if (a->type != b->type || a->cluster_level_raw != b->cluster_level_raw ||
	    a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) ||
	    a->has_record != b->has_record || a->n_peers != b->n_peers)
		__builtin_trap();
	if (a->has_record &&
	    (a->rec_key_len != b->rec_key_len || memcmp(a->rec_key, b->rec_key, a->rec_key_len) ||
	     a->rec_value_len != b->rec_value_len ||
	     memcmp(a->rec_value, b->rec_value, a->rec_value_len) ||
	     strcmp(a->rec_time, b->rec_time)))
		__builtin_trap();
	check_list(a, b, KW_KAD_CLOSER);
	check_list(a, b, KW_KAD_PROVIDER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_multiaddr ma;
	long r, e;
	unsigned i, j;

	r = kw_kad_msg_decode(data, size, &m);
	if (r < 0) {
		if (r != -KW_EAGAIN && r != -KW_EMSGSIZE && r != -KW_EBADMSG && r != -KW_ELIMIT)
			__builtin_trap();
		return 0;
	}
	if (r == 0 || (size_t)r > size || m.n_peers > KW_KAD_MAX_PEERS ||
	    m.key_len > KW_KAD_KEY_MAX || m.rec_key_len > KW_KAD_KEY_MAX ||
	    m.rec_value_len > KW_KAD_VALUE_MAX || !memchr(m.rec_time, 0, sizeof(m.rec_time)))
		__builtin_trap();
	for (i = 0; i < m.n_peers; i++) {
		const struct kw_kad_peer *p = &m.peers[i];

		if (p->id_len > KW_KAD_PEER_ID_MAX || p->n_addrs > KW_KAD_MAX_ADDRS || p->list > 1)
			__builtin_trap();
		for (j = 0; j < p->n_addrs; j++)
			if (p->addr_len[j] > KW_KAD_ADDR_MAX ||
			    kw_maddr_from_bytes(p->addrs[j], p->addr_len[j], &ma, NULL, 0) != 0)
				__builtin_trap();
	}
	/* Re-encoding can only grow by re-encoding enums sign-extended, hence EMSGSIZE. */
	e = kw_kad_msg_encode(&m, out, sizeof(out));
	if (e == -KW_EMSGSIZE)
		return 0;
	if (e <= 0 || kw_kad_msg_decode(out, (size_t)e, &m2) != e || m2.addrs_dropped != 0)
		__builtin_trap();
	check_same(&m, &m2);
	return 0;
}
