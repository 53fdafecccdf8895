/*
 * What net/hivemind/stream_rpc.c needs of the RPC layer's private state (net/hivemind/rpc.c):
 * the swarm, the node, and one slot where the stream layer keeps its own state. Private to
 * net/hivemind.
 */
#ifndef KW_NET_HIVEMIND_RPC_PRIV_H
#define KW_NET_HIVEMIND_RPC_PRIV_H

struct kw_hm;
struct kw_hm_sx;
struct kw_node;
struct kw_swarm;

struct kw_swarm *kw_hm_swarm(const struct kw_hm *hm);
struct kw_node *kw_hm_node(const struct kw_hm *hm);
/* The stream layer's state (NULL until kw_hm_stream_setup). */
struct kw_hm_sx **kw_hm_sx_slot(struct kw_hm *hm);

#endif /* KW_NET_HIVEMIND_RPC_PRIV_H */
