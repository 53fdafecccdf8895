/*
 * The swarm's protocol registry (not public): the inbound protocols a node offers, in
 * registration order, and the view of it that multistream-select negotiation gets
 * (struct kw_mss_registry), so net/mss asks the registry without knowing the swarm.
 */
#ifndef KW_NET_SWARM_REGISTRY_H
#define KW_NET_SWARM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <kw/net/mss.h>
#include <kw/net/swarm.h>

struct kw_proto_entry {
	char id[KW_PROTO_ID_MAX + 1];
	kw_proto_accept_fn accept;
	void *arg;
};

struct kw_proto_registry {
	struct kw_swarm *sw;   /* passed to accept functions */
	struct kw_proto_entry protos[KW_SWARM_PROTOCOLS_MAX];
	size_t n;
};

/* Adds `id` (copied). Return: 0, -KW_EINVAL (empty, too long, no leading '/'),
 * -KW_EEXIST, -KW_ENOSPC (KW_SWARM_PROTOCOLS_MAX). */
int kw_proto_registry_add(struct kw_proto_registry *r, const char *id, kw_proto_accept_fn accept,
			  void *arg);
/* The entry registered for `id`, or NULL. */
const struct kw_proto_entry *kw_proto_registry_find(const struct kw_proto_registry *r,
						    const char *id);
/* The i-th id, or NULL past the end. */
const char *kw_proto_registry_id(const struct kw_proto_registry *r, size_t i);
/* Fills the negotiation's view of r (r must outlive every negotiation). */
void kw_proto_registry_mss(struct kw_proto_registry *r, struct kw_mss_registry *out);

#endif /* KW_NET_SWARM_REGISTRY_H */
