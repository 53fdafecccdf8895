/*
 * Withdrawing from the DHT while staying in it: the contribution policy's drain
 * (app/policy.c, doc/board.md) asks the node to stop serving the network without leaving it.
 * A withdrawn node answers no inbound request (refused as in client mode; the transport resets
 * the stream, and the asking peer drops us from its table as go-libp2p-kad-dht does after any
 * failed query), and republishes neither its records nor its provider records, so they expire
 * on the peers that hold them: Kademlia has no "unprovide" (libp2p/specs kad-dht/README.md,
 * "Content provider advertisement and discovery"). Its own lookups keep working.
 *
 * Work in flight is the node's announcements (put and provide lookups, its own or a
 * republish): they run to their end, and then the `done` callback given to kw_kad_withdraw
 * runs once, from the loop. Contract: include/kw/net/kad.h.
 */
#include <kw/err.h>
#include <kw/log.h>

#include "kad_priv.h"

unsigned kw_kad_announcing(const struct kw_kad *k)
{
	unsigned n = 0;

	for (unsigned i = 0; i < k->nlk; i++)
		if (k->lk[i].phase != KAD_P_FREE &&
		    (k->lk[i].op == KAD_OP_PUT || k->lk[i].op == KAD_OP_PROVIDE))
			n++;
	return n;
}

bool kw_kad_withdrawn(const struct kw_kad *k)
{
	return k->withdrawn;
}

void kad_withdraw_check(struct kw_kad *k)
{
	if (!k->dead && k->withdrawn && !k->withdraw_notified)
		kw_task_post(k->loop, &k->withdraw_task);
}

int kad_withdraw_task(struct kw_loop *l, struct kw_task *t)
{
	struct kw_kad *k = t->arg;

	(void)l;
	if (k->dead || !k->withdrawn || k->withdraw_notified || kw_kad_announcing(k) > 0)
		return KW_TASK_DONE;   /* the last announcement's end posts this again */
	k->withdraw_notified = true;
	KW_LOG_DBG(kad, "withdrawn: no announcement in flight");
	if (k->withdraw_done)
		k->withdraw_done(k, k->withdraw_arg);
	return KW_TASK_DONE;
}

int kw_kad_withdraw(struct kw_kad *k, void (*done)(struct kw_kad *k, void *arg), void *arg)
{
	if (!k)
		return -KW_EINVAL;
	if (k->dead)
		return -KW_ESHUTDOWN;
	if (!k->withdrawn)
		KW_LOG_INF(kad, "withdrawing: not serving requests, not republishing (%u "
			   "announcement%s in flight)", kw_kad_announcing(k),
			   kw_kad_announcing(k) == 1 ? "" : "s");
	k->withdrawn = true;
	k->withdraw_notified = false;
	k->withdraw_done = done;
	k->withdraw_arg = arg;
	kw_task_post(k->loop, &k->withdraw_task);   /* never from inside this call */
	return 0;
}

void kw_kad_rejoin(struct kw_kad *k)
{
	if (!k || k->dead || !k->withdrawn)
		return;
	k->withdrawn = false;
	k->withdraw_done = NULL;
	kw_task_cancel(k->loop, &k->withdraw_task);
	KW_LOG_INF(kad, "rejoining: serving requests again%s",
		   k->skipped_republish || k->skipped_reprovide ?
		   ", republishing what the withdrawal skipped" : "");
	/* what expired on other peers meanwhile is announced again now, not at the next period */
	if (k->skipped_republish)
		(void)kw_timer_start(k->loop, &k->republish_timer, 0);
	if (k->skipped_reprovide)
		(void)kw_timer_start(k->loop, &k->reprovide_timer, 0);
	k->skipped_republish = k->skipped_reprovide = false;
}
