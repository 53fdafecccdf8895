/*
 * The protocol registry (registry.h): a fixed table, searched linearly (a node registers a
 * handful of protocols; KW_SWARM_PROTOCOLS_MAX bounds it).
 */
#include <stdbool.h>
#include <string.h>

#include <kw/err.h>

#include "registry.h"

/*
 * A protocol ID is any non-empty text that fits a multistream-select line: no control bytes
 * (a '\n' would end the line early). No leading '/' is required: Hivemind's handler names
 * ("DHTProtocol.rpc_ping", hivemind/p2p/servicer.py) are slash-less protocol IDs that
 * go-libp2p negotiates as they are.
 */
static bool valid_id(const char *id, size_t *len)
{
	size_t l = 0;

	for (; id[l]; l++)
		if ((unsigned char)id[l] < 0x20 || id[l] == 0x7f)
			return false;
	*len = l;
	return l > 0 && l <= KW_PROTO_ID_MAX;
}

int kw_proto_registry_add(struct kw_proto_registry *r, const char *id, kw_proto_accept_fn accept,
			  void *arg)
{
	size_t l;

	if (!id || !accept || !valid_id(id, &l))
		return -KW_EINVAL;
	if (kw_proto_registry_find(r, id))
		return -KW_EEXIST;
	if (r->n >= KW_SWARM_PROTOCOLS_MAX)
		return -KW_ENOSPC;
	memcpy(r->protos[r->n].id, id, l + 1);
	r->protos[r->n].accept = accept;
	r->protos[r->n].arg = arg;
	r->n++;
	return 0;
}

const struct kw_proto_entry *kw_proto_registry_find(const struct kw_proto_registry *r,
						    const char *id)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (!strcmp(r->protos[i].id, id))
			return &r->protos[i];
	return NULL;
}

const char *kw_proto_registry_id(const struct kw_proto_registry *r, size_t i)
{
	return i < r->n ? r->protos[i].id : NULL;
}

/* ---- the view negotiation gets ------------------------------------------------------------ */

static const char *mss_protocol(void *arg, size_t i)
{
	return kw_proto_registry_id((const struct kw_proto_registry *)arg, i);
}

static bool mss_offers(void *arg, const char *id)
{
	return kw_proto_registry_find((const struct kw_proto_registry *)arg, id) != NULL;
}

static int mss_accept(void *arg, struct kw_stream *s, const char *id)
{
	struct kw_proto_registry *r = (struct kw_proto_registry *)arg;
	const struct kw_proto_entry *e = kw_proto_registry_find(r, id);

	if (!e)
		return -KW_ENOPROTO;
	return e->accept(r->sw, s, e->arg);
}

void kw_proto_registry_mss(struct kw_proto_registry *r, struct kw_mss_registry *out)
{
	out->protocol = mss_protocol;
	out->offers = mss_offers;
	out->accept = mss_accept;
	out->arg = r;
}
