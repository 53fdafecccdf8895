/*
 * State shared by the DHTProtocol server (dht.c) and our own client calls (dht_client.c):
 * one struct kw_hm_dht per node, carved from the node's arena at kw_hm_dht_create. Private to
 * net/hivemind.
 */
#ifndef KW_NET_HIVEMIND_DHT_PRIV_H
#define KW_NET_HIVEMIND_DHT_PRIV_H

#include <kw/loop.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/key.h>

#define KW_HM_PING_NAME  "DHTProtocol.rpc_ping"
#define KW_HM_STORE_NAME "DHTProtocol.rpc_store"
#define KW_HM_FIND_NAME  "DHTProtocol.rpc_find"
#define KW_HM_PENDING    8        /* validate pings waiting for their ping-back */
#define KW_HM_BOOK_ADDRS 2        /* addresses kept per peer in the address book */
#define KW_HM_BOOK_ADDR_MAX 128   /* bytes of one kept text multiaddr, without /p2p/ */

struct kw_hm_pending {
	struct kw_hm_dht *d;
	struct kw_hm_call *call;        /* NULL once the served call is gone */
	struct kw_hm_dhtid id;          /* what the caller claimed */
	uint8_t peer[KW_HM_DHT_PEER_ID_MAX];
	uint8_t peer_len;
	bool busy;
};

struct kw_hm_book {
	struct kw_peer_id peer;         /* len 0: free */
	uint64_t seq;
	uint8_t n;
	char addr[KW_HM_BOOK_ADDRS][KW_HM_BOOK_ADDR_MAX];
};

struct kw_hm_op;
struct kw_hm_rpc;

struct kw_hm_dht {
	struct kw_hm *hm;
	struct kw_swarm *sw;
	struct kw_loop *loop;
	struct kw_hm_dht_config cfg;
	struct kw_hm_rt rt;
	struct kw_hm_store store, cache;
	struct kw_hm_blacklist bl;
	struct kw_hm_dht_stats stats;
	struct kw_hm_pending pend[KW_HM_PENDING];
	/* handler scratch: one request is decoded and answered at a time (the loop is single
	 * threaded and every handler answers before it returns, except the ping-back); the
	 * client encodes its requests in it too, always before it returns to the loop */
	union {
		struct kw_hm_dht_store_req store;
		struct kw_hm_dht_find_req find;
	} *req;
	struct kw_hm_dht_find_result *results;          /* MAX_KEYS */
	struct kw_hm_dht_contact *near;                 /* bucket_size per key */
	uint8_t *vals;                                   /* packed dictionaries */
	uint8_t *out;                                    /* the encoded response */
	size_t buf_bytes;
	/* the client (dht_client.c) */
	struct kw_hm_op *ops;                            /* CLIENT_OPS */
	struct kw_hm_rpc *rpcs;                          /* CLIENT_RPCS */
	struct kw_hm_book *book;                         /* ADDR_BOOK */
	uint64_t book_seq;
	struct kw_hm_dht_find_resp *fresp;               /* reply decode scratch */
	struct kw_hm_dht_find_result *fres;
	uint8_t *push_vals, *push_out;                   /* newcomer push scratch */
	struct kw_hm_dht_store_req *push_req;
	struct kw_hm_dhtid *push_keys;                   /* MAX_KEYS */
};

double kw_hm_dht_now(const struct kw_hm_dht *d);
/* Our NodeInfo: empty node_id in client mode. */
struct kw_hm_dht_peer kw_hm_dht_own(const struct kw_hm_dht *d);
/*
 * update_routing_table(responded = true) for (id, peer) met on connection c: adds or
 * refreshes the node, forgets its failures, and, when it is new to the table, pushes it the
 * records it should now hold (the newcomer push of hivemind/dht/protocol.py).
 */
void kw_hm_dht_met(struct kw_hm_dht *d, struct kw_conn *c, const struct kw_hm_dhtid *id,
		   const uint8_t *peer, size_t peer_len);
/* Carves the client's pools from the arena (kw_hm_dht_create). */
int kw_hm_dht_client_init(struct kw_hm_dht *d, struct kw_arena *a);

#endif /* KW_NET_HIVEMIND_DHT_PRIV_H */
