/*
 * Server records on the Hivemind DHT (include/kw/net/hivemind_records.h): Petals' ServerInfo
 * and ModelInfo values, hivemind's expert declarations, and a walk over the
 * DictionaryDHTValue a get returns. Sources: bigscience-workshop/petals
 * src/petals/data_structures.py (ServerInfo, ServerState, ModelInfo; Petals 2.3, whose
 * ServerInfo carries start_block/end_block), src/petals/utils/dht.py (declare_active_modules,
 * get_remote_module_infos), src/petals/server/server.py (ModuleAnnouncerThread);
 * learning-at-home/hivemind @ 4bd43b7 hivemind/moe/server/dht_handler.py (_declare_experts),
 * hivemind/moe/expert_uid.py (UID_PATTERN, split_uid, FLAT_EXPERT), hivemind/dht/storage.py
 * (DictionaryDHTValue). Wire conventions: doc/net-hivemind.md "MessagePack".
 *
 * Owner: net/hivemind. The codecs are stateless; the announcer (at the end) is the caller's
 * struct and uses the DHT client's store (dht_client.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/msgpack.h>

#include "dht_priv.h"

#define FLAT_EXPERT (-1)      /* hivemind/moe/expert_uid.py */

const char *kw_hm_state_name(unsigned state)
{
	static const char *const names[] = { "OFFLINE", "JOINING", "ONLINE" };

	return state < 3 ? names[state] : "?";
}

/* ---- encoders ------------------------------------------------------------------------- */

static bool rps_ok(double v)
{
	return isfinite(v) && v >= 0;
}

static void put_opt_str(struct kw_mp_writer *w, bool set, const char *s)
{
	if (set)
		kw_mp_put_cstr(w, s);
	else
		kw_mp_put_nil(w);
}

static void put_opt_rps(struct kw_mp_writer *w, bool set, double v)
{
	if (set)
		kw_mp_put_float64(w, v);
	else
		kw_mp_put_nil(w);
}

long kw_hm_server_info_encode(const struct kw_hm_server_info *si, uint8_t *buf, size_t cap)
{
	struct kw_mp_writer w;
	size_t tup, ad;
	uint32_t h;

	if (!si || si->state > KW_HM_STATE_ONLINE || !rps_ok(si->throughput) ||
	    si->n_adapters > KW_HM_REC_ADAPTERS || si->n_pings > KW_HM_REC_PINGS)
		return -KW_EINVAL;
	h = si->has;
	if (((h & KW_HM_SI_NETWORK_RPS) && !rps_ok(si->network_rps)) ||
	    ((h & KW_HM_SI_FORWARD_RPS) && !rps_ok(si->forward_rps)) ||
	    ((h & KW_HM_SI_INFERENCE_RPS) && !rps_ok(si->inference_rps)))
		return -KW_EINVAL;
	/* ServerInfo.__post_init__ */
	if ((h & KW_HM_SI_START_BLOCK) && (h & KW_HM_SI_END_BLOCK) &&
	    si->start_block >= si->end_block)
		return -KW_EINVAL;
	for (uint8_t i = 0; i < si->n_pings; i++)
		if (isnan(si->next_pings[i].rtt) || si->next_pings[i].rtt < 0)
			return -KW_EINVAL;
	kw_mp_writer_init(&w, buf, cap);
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &tup);
	kw_mp_put_array(&w, 3);
	kw_mp_put_uint(&w, si->state);
	kw_mp_put_float64(&w, si->throughput);
	/* dataclasses.asdict: every field but state and throughput, in declaration order */
	kw_mp_put_map(&w, 13);
	kw_mp_put_cstr(&w, "start_block");
	if (h & KW_HM_SI_START_BLOCK)
		kw_mp_put_uint(&w, si->start_block);
	else
		kw_mp_put_nil(&w);
	kw_mp_put_cstr(&w, "end_block");
	if (h & KW_HM_SI_END_BLOCK)
		kw_mp_put_uint(&w, si->end_block);
	else
		kw_mp_put_nil(&w);
	kw_mp_put_cstr(&w, "public_name");
	put_opt_str(&w, h & KW_HM_SI_PUBLIC_NAME, si->public_name);
	kw_mp_put_cstr(&w, "version");
	put_opt_str(&w, h & KW_HM_SI_VERSION, si->version);
	kw_mp_put_cstr(&w, "network_rps");
	put_opt_rps(&w, h & KW_HM_SI_NETWORK_RPS, si->network_rps);
	kw_mp_put_cstr(&w, "forward_rps");
	put_opt_rps(&w, h & KW_HM_SI_FORWARD_RPS, si->forward_rps);
	kw_mp_put_cstr(&w, "inference_rps");
	put_opt_rps(&w, h & KW_HM_SI_INFERENCE_RPS, si->inference_rps);
	/* Petals keeps adapters as a tuple: asdict copies it as a tuple, msgpack writes ext 0x40 */
	kw_mp_put_cstr(&w, "adapters");
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &ad);
	kw_mp_put_array(&w, si->n_adapters);
	for (uint8_t i = 0; i < si->n_adapters; i++)
		kw_mp_put_cstr(&w, si->adapters[i]);
	kw_mp_put_ext_end(&w, ad);
	kw_mp_put_cstr(&w, "torch_dtype");
	put_opt_str(&w, h & KW_HM_SI_TORCH_DTYPE, si->torch_dtype);
	kw_mp_put_cstr(&w, "quant_type");
	put_opt_str(&w, h & KW_HM_SI_QUANT_TYPE, si->quant_type);
	kw_mp_put_cstr(&w, "using_relay");
	if (h & KW_HM_SI_USING_RELAY)
		kw_mp_put_bool(&w, si->using_relay);
	else
		kw_mp_put_nil(&w);
	kw_mp_put_cstr(&w, "cache_tokens_left");
	if (h & KW_HM_SI_CACHE_TOKENS)
		kw_mp_put_uint(&w, si->cache_tokens_left);
	else
		kw_mp_put_nil(&w);
	kw_mp_put_cstr(&w, "next_pings");
	if (h & KW_HM_SI_NEXT_PINGS) {
		kw_mp_put_map(&w, si->n_pings);
		for (uint8_t i = 0; i < si->n_pings; i++) {
			kw_mp_put_cstr(&w, si->next_pings[i].peer);
			kw_mp_put_float64(&w, si->next_pings[i].rtt);
		}
	} else {
		kw_mp_put_nil(&w);
	}
	kw_mp_put_ext_end(&w, tup);
	return kw_mp_writer_finish(&w);
}

long kw_hm_model_info_encode(const struct kw_hm_model_info *mi, uint8_t *buf, size_t cap)
{
	struct kw_mp_writer w;

	if (!mi || mi->num_blocks == 0)
		return -KW_EINVAL;
	kw_mp_writer_init(&w, buf, cap);
	kw_mp_put_map(&w, 2);
	kw_mp_put_cstr(&w, "num_blocks");
	kw_mp_put_uint(&w, mi->num_blocks);
	kw_mp_put_cstr(&w, "repository");
	put_opt_str(&w, mi->has_repository, mi->repository);
	return kw_mp_writer_finish(&w);
}

long kw_hm_str_subkey(const char *text, uint8_t *buf, size_t cap)
{
	struct kw_mp_writer w;

	if (!text)
		return -KW_EINVAL;
	kw_mp_writer_init(&w, buf, cap);
	kw_mp_put_cstr(&w, text);
	return kw_mp_writer_finish(&w);
}

int kw_hm_prefix_check(const char *prefix)
{
	size_t n = prefix ? strlen(prefix) : 0;

	if (n == 0 || n > KW_HM_REC_UID_MAX - 12 || strchr(prefix, '.') || strchr(prefix, ' ') ||
	    !kw_mp_utf8_valid((const uint8_t *)prefix, n))
		return -KW_EINVAL;
	return 0;
}

int kw_hm_block_uid(const char *prefix, uint32_t block, char *out, size_t cap)
{
	int n;

	if (kw_hm_prefix_check(prefix) < 0)
		return -KW_EINVAL;
	n = snprintf(out, cap, "%s.%u", prefix, block);
	return n > 0 && (size_t)n < cap ? n : -KW_ENOSPC;
}

/* ---- expert declarations ------------------------------------------------------------ */

int kw_hm_expert_uid_check(const char *uid)
{
	const char *dot = uid ? strchr(uid, '.') : NULL;
	size_t n = uid ? strlen(uid) : 0;

	/* ^(([^.])+)([.](?:[0]|([1-9]([0-9]*))))+$ */
	if (!dot || dot == uid || n >= KW_HM_REC_UID_MAX ||
	    !kw_mp_utf8_valid((const uint8_t *)uid, n))
		return -KW_EINVAL;
	for (const char *p = dot; *p;) {
		const char *c = ++p;     /* past the '.' */

		if (*c < '0' || *c > '9')
			return -KW_EINVAL;
		if (*c == '0' && c[1] && c[1] != '.')
			return -KW_EINVAL;          /* leading zero */
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p && *p != '.')
			return -KW_EINVAL;
		if (p - c > 18)
			return -KW_EINVAL;          /* does not fit the int64 subkey */
	}
	return 0;
}

/* a coordinate checked by kw_hm_expert_uid_check: at most 18 decimal digits */
static long long dec(const char *s)
{
	long long v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

/* number of '.' in uid */
static unsigned dots(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '.';
	return n;
}

int kw_hm_expert_record(const char *uid, const char *peer_b58, uint32_t j, struct kw_hm_rec *r)
{
	struct kw_mp_writer w;
	unsigned d;
	long n;

	if (kw_hm_expert_uid_check(uid) < 0 || !peer_b58 || !peer_b58[0] ||
	    strlen(peer_b58) >= KW_HM_REC_PEER_MAX)
		return -KW_EINVAL;
	d = dots(uid);
	memset(r, 0, sizeof(*r));
	if (j == 0) {
		/* data_to_store[uid, None] = peer_id_base58 */
		snprintf(r->key, sizeof(r->key), "%s", uid);
		n = kw_hm_str_subkey(peer_b58, r->val, sizeof(r->val));
		if (n < 0)
			return (int)n;
		r->val_len = (size_t)n;
		return 0;
	}
	/* prefix = uid if it has >= 2 coordinates, else uid + ".-1"; then count - 1 splits */
	if (j > (d > 1 ? d - 1 : 1))
		return -KW_ENOENT;
	{
		char pre[KW_HM_REC_UID_MAX + 4];
		long long coord;
		char *last;

		snprintf(pre, sizeof(pre), "%s", uid);
		if (d == 1) {
			coord = FLAT_EXPERT;
			snprintf(r->key, sizeof(r->key), "%s.", uid);
		} else {
			/* split_uid j times: the j-th split's prefix and last coordinate */
			for (uint32_t k = 0; k < j - 1; k++)
				*strrchr(pre, '.') = '\0';
			last = strrchr(pre, '.');
			coord = dec(last + 1);
			last[1] = '\0';
			snprintf(r->key, sizeof(r->key), "%s", pre);
		}
		kw_mp_writer_init(&w, r->sub, sizeof(r->sub));
		kw_mp_put_int(&w, coord);
		n = kw_mp_writer_finish(&w);
		if (n < 0)
			return (int)n;
		r->sub_len = (size_t)n;
	}
	{
		size_t tup;

		/* (uid, peer_id_base58): a tuple */
		kw_mp_writer_init(&w, r->val, sizeof(r->val));
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &tup);
		kw_mp_put_array(&w, 2);
		kw_mp_put_cstr(&w, uid);
		kw_mp_put_cstr(&w, peer_b58);
		kw_mp_put_ext_end(&w, tup);
		n = kw_mp_writer_finish(&w);
		if (n < 0)
			return (int)n;
		r->val_len = (size_t)n;
	}
	return 0;
}

/* ---- decoders ------------------------------------------------------------------------- */

struct rd {
	struct kw_mp_reader r;
	const char **why;
};

static int bad(struct rd *d, int err, const char *why)
{
	if (d->why)
		*d->why = why;
	return err;
}

static int rd_next(struct rd *d, struct kw_mp_item *it)
{
	int err = kw_mp_read(&d->r, it);

	if (err == -KW_ENOENT)
		return bad(d, -KW_EBADMSG, "value incomplete");
	if (err < 0)
		return bad(d, err, d->r.why);
	return 0;
}

/* Reads a tuple (ext 0x40 around an array) or a plain array: *n elements follow. */
static int rd_seq(struct rd *d, uint32_t *n, const char *what)
{
	struct kw_mp_item it;
	int err = rd_next(d, &it);

	if (err)
		return err;
	if (it.type == KW_MP_EXT && it.entered && it.ext_type == KW_MP_EXT_TUPLE) {
		err = rd_next(d, &it);
		if (err)
			return err;
	}
	if (it.type != KW_MP_ARRAY)
		return bad(d, -KW_EBADMSG, what);
	*n = it.len;
	return 0;
}

static int copy_str(struct rd *d, const struct kw_mp_item *it, char *out, size_t cap,
		    const char *too_long)
{
	if (it->len >= cap)
		return bad(d, -KW_ELIMIT, too_long);
	memcpy(out, it->data, it->len);
	out[it->len] = '\0';
	return 0;
}

static bool key_is(const struct kw_mp_item *k, const char *name)
{
	return k->len == strlen(name) && !memcmp(k->data, name, k->len);
}

/*
 * The next item as an Optional field of the tuple: nil clears the bit and returns 0; an item of
 * type `type` sets it and returns 1 (*it holds it); anything else is the `wrong` error.
 */
static int opt_item(struct rd *d, struct kw_hm_server_info *si, uint32_t bit, int type,
		    struct kw_mp_item *it, const char *wrong)
{
	int err = rd_next(d, it);

	if (err)
		return err;
	if (it->type == KW_MP_NIL) {
		si->has &= ~bit;
		return 0;
	}
	if ((int)it->type != type)
		return bad(d, -KW_EBADMSG, wrong);
	si->has |= bit;
	return 1;
}

/* Optional[str] */
static int opt_str(struct rd *d, struct kw_hm_server_info *si, uint32_t bit, char *out,
		   size_t cap, const char *wrong, const char *too_long)
{
	struct kw_mp_item it;
	int ret = opt_item(d, si, bit, KW_MP_STR, &it, wrong);

	return ret <= 0 ? ret : copy_str(d, &it, out, cap, too_long);
}

/* Optional[conint(ge=0, strict=True)] */
static int opt_uint(struct rd *d, struct kw_hm_server_info *si, uint32_t bit, uint64_t *out,
		    const char *wrong)
{
	struct kw_mp_item it;
	int ret = opt_item(d, si, bit, KW_MP_UINT, &it, wrong);

	if (ret > 0)
		*out = it.v.u;
	return ret < 0 ? ret : 0;
}

/* Optional[RPS]: confloat(ge=0, allow_inf_nan=False, strict=True) or None */
static int opt_rps(struct rd *d, struct kw_hm_server_info *si, uint32_t bit, double *out,
		   const char *wrong)
{
	struct kw_mp_item it;
	int ret = opt_item(d, si, bit, KW_MP_FLOAT, &it, wrong);

	if (ret <= 0)
		return ret;
	if (!rps_ok(it.v.f)) {
		si->has &= ~bit;
		return bad(d, -KW_EBADMSG, wrong);
	}
	*out = it.v.f;
	return 0;
}

static int rd_adapters(struct rd *d, struct kw_hm_server_info *si)
{
	struct kw_mp_item it;
	uint32_t n;
	int err = rd_seq(d, &n, "adapters is not a sequence of str");

	if (err)
		return err;
	if (n > KW_HM_REC_ADAPTERS)
		return bad(d, -KW_ELIMIT, "more adapters than KW_HM_REC_ADAPTERS");
	si->n_adapters = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++) {
		err = rd_next(d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_STR)
			return bad(d, -KW_EBADMSG, "adapters is not a sequence of str");
		err = copy_str(d, &it, si->adapters[i], sizeof(si->adapters[i]),
			       "adapter name longer than KW_HM_REC_TEXT_MAX");
		if (err)
			return err;
	}
	return 0;
}

static int rd_pings(struct rd *d, struct kw_hm_server_info *si)
{
	struct kw_mp_item it;
	int err = rd_next(d, &it);

	if (err)
		return err;
	si->n_pings = 0;
	if (it.type == KW_MP_NIL) {
		si->has &= ~KW_HM_SI_NEXT_PINGS;
		return 0;
	}
	if (it.type != KW_MP_MAP)
		return bad(d, -KW_EBADMSG, "next_pings is not a map or None");
	if (it.len > KW_HM_REC_PINGS)
		return bad(d, -KW_ELIMIT, "more next_pings than KW_HM_REC_PINGS");
	si->has |= KW_HM_SI_NEXT_PINGS;
	for (uint32_t i = 0, n = it.len; i < n; i++) {
		struct kw_hm_ping_entry *p = &si->next_pings[i];

		err = rd_next(d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_STR)
			return bad(d, -KW_EBADMSG, "next_pings key is not a str");
		err = copy_str(d, &it, p->peer, sizeof(p->peer), "next_pings peer id too long");
		if (err)
			return err;
		err = rd_next(d, &it);
		if (err)
			return err;
		/* confloat(ge=0, strict=True): +inf allowed (unreachable), NaN is not >= 0 */
		if (it.type != KW_MP_FLOAT || isnan(it.v.f) || it.v.f < 0)
			return bad(d, -KW_EBADMSG, "next_pings value is not a float >= 0");
		p->rtt = it.v.f;
		si->n_pings++;
	}
	return 0;
}

static int rd_field(struct rd *d, struct kw_hm_server_info *si, const struct kw_mp_item *k)
{
	struct kw_mp_item it;
	int err;

	if (key_is(k, "start_block"))
		return opt_uint(d, si, KW_HM_SI_START_BLOCK, &si->start_block,
				"start_block is not an int >= 0 or None");
	if (key_is(k, "end_block"))
		return opt_uint(d, si, KW_HM_SI_END_BLOCK, &si->end_block,
				"end_block is not an int >= 0 or None");
	if (key_is(k, "public_name"))
		return opt_str(d, si, KW_HM_SI_PUBLIC_NAME, si->public_name,
			       sizeof(si->public_name), "public_name is not a str or None",
			       "public_name longer than KW_HM_REC_TEXT_MAX");
	if (key_is(k, "version"))
		return opt_str(d, si, KW_HM_SI_VERSION, si->version, sizeof(si->version),
			       "version is not a str or None", "version too long");
	if (key_is(k, "network_rps"))
		return opt_rps(d, si, KW_HM_SI_NETWORK_RPS, &si->network_rps,
			       "network_rps is not a finite float >= 0 or None");
	if (key_is(k, "forward_rps"))
		return opt_rps(d, si, KW_HM_SI_FORWARD_RPS, &si->forward_rps,
			       "forward_rps is not a finite float >= 0 or None");
	if (key_is(k, "inference_rps"))
		return opt_rps(d, si, KW_HM_SI_INFERENCE_RPS, &si->inference_rps,
			       "inference_rps is not a finite float >= 0 or None");
	if (key_is(k, "adapters"))
		return rd_adapters(d, si);
	if (key_is(k, "torch_dtype"))
		return opt_str(d, si, KW_HM_SI_TORCH_DTYPE, si->torch_dtype,
			       sizeof(si->torch_dtype), "torch_dtype is not a str or None",
			       "torch_dtype too long");
	if (key_is(k, "quant_type"))
		return opt_str(d, si, KW_HM_SI_QUANT_TYPE, si->quant_type, sizeof(si->quant_type),
			       "quant_type is not a str or None", "quant_type too long");
	if (key_is(k, "cache_tokens_left"))
		return opt_uint(d, si, KW_HM_SI_CACHE_TOKENS, &si->cache_tokens_left,
				"cache_tokens_left is not an int >= 0 or None");
	if (key_is(k, "next_pings"))
		return rd_pings(d, si);
	err = rd_next(d, &it);
	if (err)
		return err;
	if (key_is(k, "using_relay")) {
		if (it.type == KW_MP_NIL) {
			si->has &= ~KW_HM_SI_USING_RELAY;
			return 0;
		}
		if (it.type != KW_MP_BOOL)
			return bad(d, -KW_EBADMSG, "using_relay is not a bool or None");
		si->has |= KW_HM_SI_USING_RELAY;
		si->using_relay = it.v.b;
		return 0;
	}
	/* pydantic ignores fields it does not know (a newer Petals' additions) */
	err = kw_mp_skip(&d->r, &it);
	return err ? bad(d, err, d->r.why) : 0;
}

int kw_hm_server_info_decode(const uint8_t *buf, size_t len, struct kw_hm_server_info *si,
			     const char **why)
{
	struct rd d = { .why = why };
	struct kw_mp_item it;
	uint32_t n;
	int err;

	if (!si || (!buf && len))
		return -KW_EINVAL;
	memset(si, 0, sizeof(*si));
	if (why)
		*why = "";
	err = kw_mp_reader_init(&d.r, buf, len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS);
	if (err)
		return bad(&d, err, "cannot read");
	err = rd_seq(&d, &n, "ServerInfo is not a tuple");
	if (err)
		return err;
	if (n < 2)
		return bad(&d, -KW_EBADMSG, "ServerInfo tuple has fewer than 2 items");
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_UINT || it.v.u > KW_HM_STATE_ONLINE)
		return bad(&d, -KW_EBADMSG, "state is not a ServerState (0, 1 or 2)");
	si->state = (uint8_t)it.v.u;
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_FLOAT || !rps_ok(it.v.f))
		return bad(&d, -KW_EBADMSG, "throughput is not a finite float >= 0");
	si->throughput = it.v.f;
	if (n >= 3) {
		err = rd_next(&d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_MAP)
			return bad(&d, -KW_EBADMSG, "ServerInfo extra info is not a map");
		for (uint32_t i = 0, m = it.len; i < m; i++) {
			struct kw_mp_item k;

			err = rd_next(&d, &k);
			if (err)
				return err;
			if (k.type != KW_MP_STR)
				return bad(&d, -KW_EBADMSG, "ServerInfo field name is not a str");
			err = rd_field(&d, si, &k);
			if (err)
				return err;
		}
	}
	for (uint32_t i = 3; i < n; i++) {       /* from_tuple reads source[:3] */
		err = kw_mp_skip_value(&d.r);
		if (err)
			return bad(&d, err, d.r.why);
	}
	err = kw_mp_reader_done(&d.r);
	if (err)
		return bad(&d, err, d.r.why);
	if ((si->has & KW_HM_SI_START_BLOCK) && (si->has & KW_HM_SI_END_BLOCK) &&
	    si->start_block >= si->end_block)
		return bad(&d, -KW_EBADMSG, "start_block is not below end_block");
	return 0;
}

int kw_hm_model_info_decode(const uint8_t *buf, size_t len, struct kw_hm_model_info *mi,
			    const char **why)
{
	struct rd d = { .why = why };
	struct kw_mp_item it, k;
	bool have_n = false;
	int err;

	if (!mi || (!buf && len))
		return -KW_EINVAL;
	memset(mi, 0, sizeof(*mi));
	if (why)
		*why = "";
	err = kw_mp_reader_init(&d.r, buf, len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS);
	if (err)
		return bad(&d, err, "cannot read");
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_MAP)
		return bad(&d, -KW_EBADMSG, "ModelInfo is not a map");
	for (uint32_t i = 0, m = it.len; i < m; i++) {
		err = rd_next(&d, &k);
		if (!err)
			err = rd_next(&d, &it);
		if (err)
			return err;
		if (k.type == KW_MP_STR && key_is(&k, "num_blocks")) {
			if (it.type != KW_MP_UINT || it.v.u < 1 || it.v.u > UINT32_MAX)
				return bad(&d, -KW_EBADMSG, "num_blocks is not an int >= 1");
			mi->num_blocks = (uint32_t)it.v.u;
			have_n = true;
		} else if (k.type == KW_MP_STR && key_is(&k, "repository")) {
			if (it.type == KW_MP_NIL) {
				mi->has_repository = false;
				continue;
			}
			if (it.type != KW_MP_STR)
				return bad(&d, -KW_EBADMSG, "repository is not a str or None");
			err = copy_str(&d, &it, mi->repository, sizeof(mi->repository),
				       "repository longer than KW_HM_REC_TEXT_MAX");
			if (err)
				return err;
			mi->has_repository = true;
		} else {
			return bad(&d, -KW_EBADMSG, "ModelInfo has an unknown field");
		}
	}
	err = kw_mp_reader_done(&d.r);
	if (err)
		return bad(&d, err, d.r.why);
	if (!have_n)
		return bad(&d, -KW_EBADMSG, "ModelInfo has no num_blocks");
	return 0;
}

int kw_hm_dict_walk(const uint8_t *buf, size_t len, kw_hm_dict_entry_fn fn, void *arg,
		    const char **why)
{
	struct rd d = { .why = why };
	struct kw_mp_item it;
	uint32_t n;
	int err;

	if (!fn || (!buf && len))
		return -KW_EINVAL;
	if (why)
		*why = "";
	err = kw_mp_reader_init(&d.r, buf, len, KW_MP_ENTER_EXT);
	if (err)
		return bad(&d, err, "cannot read");
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_EXT || !it.entered || it.ext_type != KW_MP_EXT_DHTDICT)
		return bad(&d, -KW_EBADMSG, "not a DictionaryDHTValue (ext 0x50)");
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_ARRAY || it.len != 3)
		return bad(&d, -KW_EBADMSG, "DictionaryDHTValue is not [maxsize, expiration, items]");
	for (int i = 0; i < 2; i++) {           /* maxsize, latest_expiration_time */
		err = rd_next(&d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_FLOAT && it.type != KW_MP_UINT && it.type != KW_MP_INT)
			return bad(&d, -KW_EBADMSG, "DictionaryDHTValue header is not numbers");
	}
	err = rd_next(&d, &it);
	if (err)
		return err;
	if (it.type != KW_MP_ARRAY)
		return bad(&d, -KW_EBADMSG, "DictionaryDHTValue items is not a list");
	n = it.len;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *sub, *val;
		size_t sub_len, val_len;
		uint32_t start;
		double exp;

		err = rd_next(&d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_ARRAY || it.len != 3)
			return bad(&d, -KW_EBADMSG, "dictionary entry is not [subkey, value, "
				   "expiration]");
		start = d.r.pos;
		err = rd_next(&d, &it);
		if (err)
			return err;
		err = kw_mp_skip(&d.r, &it);
		if (err)
			return bad(&d, err, d.r.why);
		sub = buf + start;
		sub_len = d.r.pos - start;
		err = rd_next(&d, &it);
		if (err)
			return err;
		if (it.type != KW_MP_BIN)
			return bad(&d, -KW_EBADMSG, "dictionary entry value is not bytes");
		val = it.data;
		val_len = it.len;
		err = rd_next(&d, &it);
		if (err)
			return err;
		if (it.type == KW_MP_FLOAT)
			exp = it.v.f;
		else if (it.type == KW_MP_UINT)
			exp = (double)it.v.u;
		else
			return bad(&d, -KW_EBADMSG, "dictionary entry expiration is not a number");
		err = fn(sub, sub_len, val, val_len, exp, arg);
		if (err)
			return err;
	}
	err = kw_mp_reader_done(&d.r);
	if (err)
		return bad(&d, err, d.r.why);
	return 0;
}

/* ---- the announcer ------------------------------------------------------------------------ */

#define RETRY_MS 50u   /* every DHT operation slot busy: try again shortly */

static uint32_t expert_records(const char *uid)
{
	unsigned d = dots(uid);

	return 1 + (d > 1 ? d - 1 : 1);
}

static uint32_t n_blocks(const struct kw_hm_announcer *a)
{
	return a->cfg.prefix[0] ? a->cfg.end_block - a->cfg.start_block : 0;
}

static bool models_record(const struct kw_hm_announcer *a)
{
	return a->cfg.model.num_blocks && a->cfg.prefix[0] && a->cfg.prefix[0] != '_';
}

uint32_t kw_hm_announce_count(const struct kw_hm_announcer *a, uint8_t state)
{
	uint32_t n = n_blocks(a);

	if (state == KW_HM_STATE_OFFLINE)
		return n;
	n += models_record(a);
	for (uint32_t e = 0; e < a->cfg.n_experts; e++)
		n += expert_records(a->cfg.experts[e]);
	return n;
}

/* What record idx of a round is: key text, subkey and value (pointers into r or a). Return:
 * 0; 1 for an expert prefix record a later uid declares again (Python's dict keeps one, the
 * last: we store only that one); a negative code. */
static int record_at(struct kw_hm_announcer *a, uint32_t idx, struct kw_hm_rec *r,
		     const uint8_t **val, size_t *val_len)
{
	uint32_t nb = n_blocks(a);
	long n;
	int err;

	memset(r, 0, sizeof(*r));
	if (idx < nb) {
		err = kw_hm_block_uid(a->cfg.prefix, a->cfg.start_block + idx, r->key,
				      sizeof(r->key));
		if (err < 0)
			return err;
		n = kw_hm_str_subkey(a->peer, r->sub, sizeof(r->sub));
		if (n < 0)
			return (int)n;
		r->sub_len = (size_t)n;
		*val = a->si;
		*val_len = (size_t)a->si_len;
		return 0;
	}
	idx -= nb;
	if (models_record(a)) {
		if (idx == 0) {
			snprintf(r->key, sizeof(r->key), "%s", KW_HM_MODELS_KEY);
			n = kw_hm_str_subkey(a->cfg.prefix, r->val, sizeof(r->val));
			if (n < 0 || (size_t)n > sizeof(r->sub))
				return -KW_ENOSPC;
			memcpy(r->sub, r->val, (size_t)n);
			r->sub_len = (size_t)n;
			n = kw_hm_model_info_encode(&a->cfg.model, r->val, sizeof(r->val));
			if (n < 0)
				return (int)n;
			r->val_len = (size_t)n;
			*val = r->val;
			*val_len = r->val_len;
			return 0;
		}
		idx--;
	}
	for (uint32_t e = 0; e < a->cfg.n_experts; e++) {
		uint32_t m = expert_records(a->cfg.experts[e]);

		if (idx >= m) {
			idx -= m;
			continue;
		}
		err = kw_hm_expert_record(a->cfg.experts[e], a->peer, idx, r);
		if (err < 0)
			return err;
		*val = r->val;
		*val_len = r->val_len;
		if (idx == 0)
			return 0;
		for (uint32_t f = e + 1; f < a->cfg.n_experts; f++)
			for (uint32_t j = 1;; j++) {
				struct kw_hm_rec o;

				if (kw_hm_expert_record(a->cfg.experts[f], a->peer, j, &o) < 0)
					break;
				if (!strcmp(o.key, r->key) && o.sub_len == r->sub_len &&
				    !memcmp(o.sub, r->sub, r->sub_len))
					return 1;
			}
		return 0;
	}
	return -KW_ENOENT;
}

static void round_end(struct kw_hm_announcer *a)
{
	kw_hm_announce_done_fn done = a->done;
	void *arg = a->done_arg;

	a->in_round = false;
	a->stats.rounds++;
	a->done = NULL;
	if (done)
		done(arg);
}

static void on_stored(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *res,
		      void *user);

/*
 * Stores the next records of the round, one per free slot, with one kw_hm_dht_store_many:
 * its searches share their requests to a peer (DHTNode.store_many, as Petals'
 * declare_active_modules stores every block of a server in one call).
 */
static void pump(struct kw_hm_announcer *a)
{
	static const uint8_t none;
	struct kw_hm_rec recs[KW_HM_ANNOUNCE_INFLIGHT];
	struct kw_hm_dht_store_item items[KW_HM_ANNOUNCE_INFLIGHT];
	struct kw_hm_announce_slot *slots[KW_HM_ANNOUNCE_INFLIGHT];
	void *users[KW_HM_ANNOUNCE_INFLIGHT];
	uint32_t batch = KW_HM_ANNOUNCE_INFLIGHT;   /* 1 after a batch was refused */

	while (a->running && a->in_round && a->next < a->total) {
		uint32_t n_free = 0, n = 0, next = a->next, failed = 0;
		uint32_t ops = kw_hm_dht_ops_free(a->d);
		int err;

		for (uint32_t i = 0; i < KW_HM_ANNOUNCE_INFLIGHT; i++)
			if (!a->slot[i].busy)
				slots[n_free++] = &a->slot[i];
		if (!n_free)
			return;                  /* on_stored pumps again */
		if (!ops) {
			/* every operation of the DHT is busy (ours or a get): each ends within
			 * its rpc timeout */
			(void)kw_timer_start(a->loop, &a->retry, RETRY_MS);
			return;
		}
		while (n < n_free && n < ops && n < batch && next < a->total) {
			const uint8_t *val = &none;
			size_t val_len = 0;

			err = record_at(a, next++, &recs[n], &val, &val_len);
			if (err == 0)
				err = kw_hm_dhtid_of_str(recs[n].key, strlen(recs[n].key),
							 &items[n].key);
			if (err < 0)
				failed++;
			if (err)
				continue;        /* > 0: a duplicate expert prefix record */
			items[n].subkey = recs[n].sub_len ? recs[n].sub : NULL;
			items[n].sub_len = recs[n].sub_len;
			items[n].value = val;
			items[n].len = val_len;
			items[n].expiration = a->exp;
			users[n] = slots[n];
			n++;
		}
		err = n ? kw_hm_dht_store_many(a->d, items, n, on_stored, users) : 0;
		if (err == -KW_ELIMIT) {
			(void)kw_timer_start(a->loop, &a->retry, RETRY_MS);
			return;
		}
		if (err < 0 && n > 1) {
			batch = 1;               /* find the record it refused: one at a time */
			continue;
		}
		a->next = next;
		a->stats.stores_failed += failed + (err < 0 ? n : 0);
		if (err < 0)
			continue;
		for (uint32_t i = 0; i < n; i++) {
			slots[i]->busy = true;
			slots[i]->gen = a->gen;
			a->inflight++;
		}
	}
	if (a->in_round && a->next >= a->total && a->inflight == 0)
		round_end(a);
}

static void on_stored(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *res,
		      void *user)
{
	struct kw_hm_announce_slot *s = user;
	struct kw_hm_announcer *a = s->a;

	(void)d;
	s->busy = false;
	a->inflight--;
	if (s->gen == a->gen) {
		if (!err && res && res->n_ok)
			a->stats.stores_ok++;
		else
			a->stats.stores_failed++;
	}
	if (a->running)
		pump(a);
}

static void on_retry(struct kw_loop *l, struct kw_timer *t)
{
	(void)l;
	pump(t->arg);
}

static int start_round(struct kw_hm_announcer *a)
{
	struct kw_hm_server_info *si = &a->cfg.info;
	double exp_s = a->cfg.expiration_s ? a->cfg.expiration_s :
			(2.0 * a->cfg.update_period_s > 3.0 ? 2.0 * a->cfg.update_period_s : 3.0);

	si->state = a->state;
	if (a->cfg.prefix[0]) {
		si->has |= KW_HM_SI_START_BLOCK | KW_HM_SI_END_BLOCK;
		si->start_block = a->cfg.start_block;
		si->end_block = a->cfg.end_block;
	}
	/* ModuleAnnouncerThread: next_pings = None when announcing OFFLINE */
	if (a->state == KW_HM_STATE_OFFLINE) {
		si->has &= ~KW_HM_SI_NEXT_PINGS;
		si->n_pings = 0;
	}
	a->si_len = kw_hm_server_info_encode(si, a->si, sizeof(a->si));
	if (a->si_len < 0)
		return (int)a->si_len;
	a->gen++;
	a->exp = kw_hm_dht_now(a->d) + exp_s;
	a->stats.last_expiration = a->exp;
	a->next = 0;
	a->total = kw_hm_announce_count(a, a->state);
	a->in_round = true;
	if (a->state == KW_HM_STATE_OFFLINE)
		kw_timer_cancel(a->loop, &a->period);
	else if (kw_timer_start(a->loop, &a->period, (uint64_t)a->cfg.update_period_s * 1000u) < 0)
		return -KW_ENOSPC;
	/* from the loop, never inside the caller (a round of nothing ends at once) */
	return kw_timer_start(a->loop, &a->retry, 0);
}

static void on_period(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_hm_announcer *a = t->arg;

	(void)l;
	if (a->running && a->state != KW_HM_STATE_OFFLINE && start_round(a) < 0)
		(void)kw_timer_start(a->loop, &a->period, (uint64_t)a->cfg.update_period_s * 1000u);
}

int kw_hm_announce_start(struct kw_hm_announcer *a, struct kw_hm_dht *d, struct kw_loop *loop,
			 const char *peer_b58, const struct kw_hm_announce_cfg *cfg, uint8_t state)
{
	struct kw_hm_rec r;
	uint8_t sub[KW_HM_REC_PEER_MAX + 4];

	if (!a || !d || !loop || !peer_b58 || !cfg || state > KW_HM_STATE_ONLINE ||
	    !cfg->update_period_s || cfg->n_experts > KW_HM_ANNOUNCE_EXPERTS ||
	    !peer_b58[0] || strlen(peer_b58) >= KW_HM_REC_PEER_MAX ||
	    kw_hm_str_subkey(peer_b58, sub, sizeof(sub)) > (long)sizeof(r.sub))
		return -KW_EINVAL;
	if (cfg->prefix[0] && (kw_hm_prefix_check(cfg->prefix) < 0 ||
			       cfg->start_block >= cfg->end_block))
		return -KW_EINVAL;
	for (uint32_t e = 0; e < cfg->n_experts; e++)
		if (kw_hm_expert_record(cfg->experts[e], peer_b58, 0, &r) < 0)
			return -KW_EINVAL;
	memset(a, 0, sizeof(*a));
	a->d = d;
	a->loop = loop;
	a->cfg = *cfg;
	snprintf(a->peer, sizeof(a->peer), "%s", peer_b58);
	for (uint32_t i = 0; i < KW_HM_ANNOUNCE_INFLIGHT; i++)
		a->slot[i].a = a;
	kw_timer_init(&a->period, on_period, a);
	kw_timer_init(&a->retry, on_retry, a);
	a->state = state;
	a->running = true;
	/* a ServerInfo that does not encode (a NaN throughput) is refused here, not every round */
	if (start_round(a) < 0) {
		kw_hm_announce_stop(a);
		return -KW_EINVAL;
	}
	return 0;
}

int kw_hm_announce_set_state(struct kw_hm_announcer *a, uint8_t state,
			     kw_hm_announce_done_fn done, void *arg)
{
	if (!a || !a->running || state > KW_HM_STATE_ONLINE)
		return -KW_EINVAL;
	if (a->done && a->in_round) {
		/* the superseded round will not finish: its waiter is told now */
		kw_hm_announce_done_fn prev = a->done;
		void *prev_arg = a->done_arg;

		a->done = NULL;
		prev(prev_arg);
	}
	a->state = state;
	a->done = done;
	a->done_arg = arg;
	return start_round(a);
}

bool kw_hm_announce_busy(const struct kw_hm_announcer *a)
{
	return a && a->running && a->in_round;
}

void kw_hm_announce_stop(struct kw_hm_announcer *a)
{
	if (!a || !a->loop)
		return;
	a->running = false;
	a->in_round = false;
	a->done = NULL;
	kw_timer_cancel(a->loop, &a->period);
	kw_timer_cancel(a->loop, &a->retry);
}
