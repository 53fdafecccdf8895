/*
 * Matchmaking as a pure state machine (hivemind @ 4bd43b7 hivemind/averaging/matchmaking.py
 * Matchmaking + PotentialLeaders, key_manager.py GroupKeyManager): the DHT declarations and
 * the rpc_join_group streams are callbacks (struct kw_avg_mm_ops), every decision is here.
 *
 *   IDLE --begin--> SEARCHING --ask leader--> JOINING --ACCEPTED--> FOLLOWING
 *   FOLLOWING --BEGIN_ALLREDUCE--> ASSEMBLED;  --GROUP_DISBANDED(+suggested)--> JOINING/SEARCHING
 *   SEARCHING/JOINING: followers join us; target size reached or our expiration with
 *   >= min_group_size --> ASSEMBLED (we lead); expiration with fewer --> FAILED (caller retries).
 */
#include <math.h>
#include <string.h>

#include <kw/err.h>
#include <kw/log.h>
#include <kw/ml/avg.h>

int kw_avg_group_key(const char *prefix, const char *bits, char *out, size_t cap)
{
	size_t pl, bl;

	if (!prefix || !bits || !out)
		return -KW_EINVAL;
	pl = strlen(prefix);
	bl = strlen(bits);
	if (!pl || strchr(prefix, '.') || strspn(bits, "01") != bl)
		return -KW_EINVAL;
	if (pl + 3 + bl + 1 > cap)
		return -KW_ENOSPC;
	memcpy(out, prefix, pl);
	memcpy(out + pl, ".0b", 3);
	memcpy(out + pl + 3, bits, bl);
	out[pl + 3 + bl] = '\0';
	return (int)(pl + 3 + bl);
}

bool kw_avg_group_key_valid(const char *s, size_t len)
{
	size_t dot = 0;

	/* ^(([^.])+)[.]0b[01]*$ : a non-empty dot-free prefix, then ".0b", then bits */
	while (dot < len && s[dot] != '.')
		dot++;
	if (dot == 0 || len - dot < 3 || s[dot + 1] != '0' || s[dot + 2] != 'b')
		return false;
	for (size_t i = dot + 3; i < len; i++)
		if (s[i] != '0' && s[i] != '1')
			return false;
	return true;
}

static int id_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);   /* Python bytes order */

	return c ? c : (al > bl) - (al < bl);
}

/* (expiration, peer id bytes) order of PotentialLeaders */
static int cand_cmp(const struct kw_avg_candidate *x, double xexp, const uint8_t *id, size_t idl)
{
	if (x->expiration != xexp)
		return x->expiration < xexp ? -1 : 1;
	return id_cmp(x->peer_id, x->peer_id_len, id, idl);
}

void kw_avg_mm_init(struct kw_avg_mm *mm, const struct kw_avg_mm_cfg *cfg,
		    const struct kw_avg_mm_ops *ops)
{
	memset(mm, 0, sizeof(*mm));
	mm->cfg = *cfg;
	if (!mm->cfg.min_group_size)
		mm->cfg.min_group_size = 2;
	mm->ops = *ops;
}

static bool looking(const struct kw_avg_mm *mm)
{
	return mm->state == KW_AVG_MM_SEARCHING || mm->state == KW_AVG_MM_JOINING ||
	       mm->state == KW_AVG_MM_FOLLOWING;
}

static void disband(struct kw_avg_mm *mm, const uint8_t *suggested, size_t sl)
{
	for (unsigned i = 0; i < mm->n_followers; i++)
		mm->ops.reply(mm->ops.u, mm->followers[i], mm->follower_len[i],
			      KW_AVG_GROUP_DISBANDED, suggested, sl);
	mm->n_followers = 0;
}

static void finish(struct kw_avg_mm *mm, int err)
{
	mm->state = err ? KW_AVG_MM_FAILED : KW_AVG_MM_ASSEMBLED;
	if (!mm->cfg.client_mode)   /* leave the bucket: nobody should ask us any more */
		(void)mm->ops.declare(mm->ops.u, mm->cfg.key, mm->declared_exp, false);
	mm->ops.assembled(mm->ops.u, err);
}

int kw_avg_mm_begin(struct kw_avg_mm *mm, double expiration)
{
	int err;

	if (!mm || !isfinite(expiration) || !mm->cfg.key ||
	    !kw_avg_group_key_valid(mm->cfg.key, strlen(mm->cfg.key)))
		return -KW_EINVAL;
	if (looking(mm))
		return -KW_EBUSY;
	if (mm->state == KW_AVG_MM_FAILED)
		mm->retries++;
	mm->state = KW_AVG_MM_SEARCHING;
	mm->declared_exp = expiration;
	mm->n_leaders = mm->next_leader = 0;
	mm->leader_len = 0;
	mm->n_followers = 0;
	mm->n_tried = mm->next_tried = 0;
	if (!mm->cfg.client_mode &&
	    (err = mm->ops.declare(mm->ops.u, mm->cfg.key, expiration, true))) {
		mm->state = KW_AVG_MM_IDLE;
		return err;
	}
	return 0;
}

static bool was_tried(const struct kw_avg_mm *mm, const struct kw_avg_candidate *x)
{
	for (unsigned i = 0; i < mm->n_tried; i++)
		if (mm->tried[i].expiration == x->expiration &&
		    !id_cmp(mm->tried[i].peer_id, mm->tried[i].peer_id_len, x->peer_id,
			    x->peer_id_len))
			return true;
	return false;
}

/* Asks the next potential leader; with none left we wait to be a leader ourselves. */
static int ask_next(struct kw_avg_mm *mm)
{
	mm->leader_len = 0;
	mm->state = KW_AVG_MM_SEARCHING;
	while (mm->next_leader < mm->n_leaders) {
		const struct kw_avg_candidate *c = &mm->leaders[mm->next_leader++];

		/* a leader that failed or refused us is not asked again for the same declaration
		 * when the next DHT read lists it (it would fail at once, every read) */
		mm->tried[mm->next_tried] = *c;
		mm->next_tried = (mm->next_tried + 1) % KW_AVG_MM_TRIED;
		if (mm->n_tried < KW_AVG_MM_TRIED)
			mm->n_tried++;
		memcpy(mm->leader, c->peer_id, c->peer_id_len);
		mm->leader_len = c->peer_id_len;
		mm->state = KW_AVG_MM_JOINING;
		if (!mm->ops.join(mm->ops.u, c->peer_id, c->peer_id_len, mm->declared_exp))
			return 0;
		mm->leader_len = 0;
		mm->state = KW_AVG_MM_SEARCHING;
	}
	return 0;
}

int kw_avg_mm_on_averagers(struct kw_avg_mm *mm, const struct kw_avg_candidate *c, size_t n)
{
	if (!mm || (n && !c))
		return -KW_EINVAL;
	if (mm->state != KW_AVG_MM_SEARCHING)
		return 0;   /* already asking someone: the list is read again when that ends */
	mm->n_leaders = mm->next_leader = 0;
	for (size_t i = 0; i < n; i++) {
		const struct kw_avg_candidate *x = &c[i];
		unsigned j;

		if (x->peer_id_len > KW_AVG_PEER_ID_MAX || !isfinite(x->expiration) ||
		    !id_cmp(x->peer_id, x->peer_id_len, mm->cfg.self, mm->cfg.self_len) ||
		    was_tried(mm, x))
			continue;
		/* only peers strictly ahead of us may lead us (a client leads nobody: all count) */
		if (!mm->cfg.client_mode &&
		    cand_cmp(x, mm->declared_exp, mm->cfg.self, mm->cfg.self_len) >= 0)
			continue;
		if (mm->n_leaders == KW_AVG_GROUP_MAX)
			break;
		/* insertion sort, best (earliest) first */
		for (j = mm->n_leaders; j > 0 &&
		     cand_cmp(&mm->leaders[j - 1], x->expiration, x->peer_id, x->peer_id_len) > 0; j--)
			mm->leaders[j] = mm->leaders[j - 1];
		mm->leaders[j] = *x;
		mm->n_leaders++;
	}
	return ask_next(mm);
}

static bool is_follower(const struct kw_avg_mm *mm, const uint8_t *id, size_t len)
{
	for (unsigned i = 0; i < mm->n_followers; i++)
		if (!id_cmp(mm->followers[i], mm->follower_len[i], id, len))
			return true;
	return false;
}

static enum kw_avg_code check_join(const struct kw_avg_mm *mm, const struct kw_avg_join_req *r)
{
	if (!looking(mm))
		return KW_AVG_NOT_LOOKING_FOR_GROUP;
	if (!r->schema_hash_len || !isfinite(r->expiration) || mm->cfg.client_mode || !r->group_key)
		return KW_AVG_PROTOCOL_VIOLATION;
	if (r->schema_hash_len != mm->cfg.schema_hash_len ||
	    memcmp(r->schema_hash, mm->cfg.schema_hash, r->schema_hash_len))
		return KW_AVG_BAD_SCHEMA_HASH;
	if (strcmp(r->group_key, mm->cfg.key))
		return KW_AVG_BAD_GROUP_KEY;
	if (mm->declared_exp > r->expiration)
		return KW_AVG_BAD_EXPIRATION_TIME;
	if (mm->state == KW_AVG_MM_FOLLOWING)
		return KW_AVG_NOT_A_LEADER;
	if (r->peer_id_len > KW_AVG_PEER_ID_MAX ||
	    !id_cmp(r->peer_id, r->peer_id_len, mm->cfg.self, mm->cfg.self_len) ||
	    is_follower(mm, r->peer_id, r->peer_id_len))
		return KW_AVG_DUPLICATE_PEER_ID;
	if ((mm->cfg.target_group_size && mm->n_followers + 1 >= mm->cfg.target_group_size) ||
	    mm->n_followers + 1 >= KW_AVG_GROUP_MAX)
		return KW_AVG_GROUP_IS_FULL;
	return KW_AVG_NO_CODE;
}

enum kw_avg_code kw_avg_mm_on_join(struct kw_avg_mm *mm, const struct kw_avg_join_req *req)
{
	enum kw_avg_code code = check_join(mm, req);

	if (code != KW_AVG_NO_CODE) {
		bool sug = code == KW_AVG_NOT_A_LEADER;

		KW_LOG_DBG(avg, "join request refused: %s", kw_avg_code_name(code));
		mm->ops.reply(mm->ops.u, req->peer_id, req->peer_id_len, code,
			      sug ? mm->leader : NULL, sug ? mm->leader_len : 0);
		return code;
	}
	memcpy(mm->followers[mm->n_followers], req->peer_id, req->peer_id_len);
	mm->follower_len[mm->n_followers++] = req->peer_id_len;
	mm->ops.reply(mm->ops.u, req->peer_id, req->peer_id_len, KW_AVG_ACCEPTED, NULL, 0);
	if (mm->cfg.target_group_size && mm->n_followers + 1 >= mm->cfg.target_group_size) {
		mm->leader_len = 0;   /* we lead; a pending request of ours is abandoned */
		finish(mm, 0);
	}
	return KW_AVG_NO_CODE;
}

int kw_avg_mm_on_leader_msg(struct kw_avg_mm *mm, enum kw_avg_code code,
			    const uint8_t *suggested, size_t suggested_len)
{
	if (!mm)
		return -KW_EINVAL;
	if (mm->state == KW_AVG_MM_JOINING) {
		if (code == KW_AVG_ACCEPTED) {
			mm->state = KW_AVG_MM_FOLLOWING;
			/* matchmaking.py: once accepted, our own followers go to our leader */
			disband(mm, mm->leader, mm->leader_len);
			return 0;
		}
		KW_LOG_DBG(avg, "potential leader refused us: %s", kw_avg_code_name(code));
		return ask_next(mm);
	}
	if (mm->state != KW_AVG_MM_FOLLOWING)
		return -KW_ENOENT;
	if (code == KW_AVG_BEGIN_ALLREDUCE) {
		finish(mm, 0);
		return 0;
	}
	if ((code == KW_AVG_GROUP_DISBANDED || code == KW_AVG_CANCELLED) && suggested_len &&
	    suggested_len <= KW_AVG_PEER_ID_MAX &&
	    id_cmp(suggested, suggested_len, mm->cfg.self, mm->cfg.self_len)) {
		memcpy(mm->leader, suggested, suggested_len);
		mm->leader_len = suggested_len;
		mm->state = KW_AVG_MM_JOINING;
		if (!mm->ops.join(mm->ops.u, suggested, suggested_len, mm->declared_exp))
			return 0;
	}
	return ask_next(mm);
}

int kw_avg_mm_on_leader_error(struct kw_avg_mm *mm, int err)
{
	if (!mm)
		return -KW_EINVAL;
	if (mm->state != KW_AVG_MM_JOINING && mm->state != KW_AVG_MM_FOLLOWING)
		return -KW_ENOENT;
	KW_LOG_DBG(avg, "leader request failed: %s", kw_strerror(err));
	return ask_next(mm);
}

int kw_avg_mm_on_expired(struct kw_avg_mm *mm)
{
	if (!mm)
		return -KW_EINVAL;
	if (!looking(mm))
		return -KW_ENOENT;
	if (mm->state != KW_AVG_MM_FOLLOWING && !mm->cfg.client_mode &&
	    mm->n_followers + 1 >= mm->cfg.min_group_size) {
		mm->leader_len = 0;
		finish(mm, 0);   /* a good-enough group: run all-reduce with it */
		return 0;
	}
	disband(mm, NULL, 0);
	mm->leader_len = 0;
	finish(mm, -KW_ETIMEDOUT);
	return -KW_ETIMEDOUT;
}
