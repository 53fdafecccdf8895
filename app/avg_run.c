/*
 * Averaging rounds over the Hivemind DHT (app/avg_run.h): the group key in the DHT, the
 * search, the all-reduce and the pause that leaves a round cleanly. Used by `kwnode average`
 * (app/cmd_average.c) and the daemon's `avg` entry (app/avg_app.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/ml/avg.h>
#include <kw/ml/codec.h>
#include <kw/net/hivemind.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/key.h>
#include <kw/net/swarm.h>

#include "avg.h"
#include "avg_net.h"
#include "avg_run.h"
#include "hivemind.h"

#define KW_APP_AVGRUN_PATH_MAX 4096
#define GROUP_MAX 16   /* target_group_size limit: streams and backlogs grow with it */
#define REACHES (2 * (GROUP_MAX + 1))   /* avg_net's dial slots at the largest group */

/* One groupmate or leader avg_net asked us to reach (avgnet_connect). */
struct reach {
	struct kw_app_avgrun *r;
	kw_app_avgnet_connected_fn cb;
	void *ctx;
	struct kw_peer_id pid;
	bool busy;
};

struct kw_app_avgrun {
	struct kw_node *n;
	struct kw_swarm *sw;
	struct kw_hm_dht *d;
	struct kw_app_avgnet *net;
	struct kw_app_avg *state_av;   /* serves rpc_download_state (NODE mode) */
	struct kw_avg *avg;
	struct kw_codec codec;
	struct kw_app_avgrun_cfg cfg;
	struct kw_app_avgrun_ops ops;
	float *tens[1];
	uint64_t numel[1];
	char prefix[KW_APP_AVGRUN_PREFIX_MAX], key[96];
	struct kw_hm_dhtid key_id;
	uint8_t schema[20];
	uint8_t self_sub[80];
	size_t self_sub_len;
	struct kw_app_avgnet_match m;
	struct kw_avg_candidate cand[KW_AVG_GROUP_MAX];
	size_t n_cand;
	/* where we are */
	bool matching, stepping, fetching, paused, started;
	bool store_failing;            /* the last store of our entry failed (logged once) */
	unsigned stores;               /* DHT stores of our entry in flight */
	bool decl_pending, decl_looking;   /* a store the DHT had no room for: next tick */
	double decl_exp;
	struct kw_timer tick;
	uint64_t round_t0;
	struct kw_app_avgrun_stats st;
	struct reach reach[REACHES];
};

int kw_app_avgrun_codec(const char *s, enum kw_compression *c)
{
	static const struct { const char *n; enum kw_compression c; } t[] = {
		{ "none", KW_COMP_NONE }, { "float16", KW_COMP_FLOAT16 },
		{ "meanstd16", KW_COMP_MEANSTD_16BIT }, { "uniform8", KW_COMP_UNIFORM_8BIT },
		{ "quantile8", KW_COMP_QUANTILE_8BIT }, { "blockwise8", KW_COMP_BLOCKWISE_8BIT },
	};

	for (size_t i = 0; i < KW_ARRAY_SIZE(t); i++)
		if (!strcmp(s, t[i].n)) {
			*c = t[i].c;
			return 0;
		}
	return -KW_EINVAL;
}

int kw_app_avgrun_mode(const char *s, enum kw_avg_mode *m)
{
	if (!strcmp(s, "node"))
		*m = KW_AVG_NODE;
	else if (!strcmp(s, "client"))
		*m = KW_AVG_CLIENT;
	else if (!strcmp(s, "aux"))
		*m = KW_AVG_AUX;
	else
		return -KW_EINVAL;
	return 0;
}

/* ---- sizes ------------------------------------------------------------------------------- */

static void avg_cfg(const struct kw_app_avgrun_cfg *c, unsigned max_parts, const struct kw_codec *codec,
		    float *const *tens, const uint64_t *numel, struct kw_avg_cfg *a)
{
	kw_avg_cfg_default(a);
	a->n_tensors = 1;
	a->tensors = tens;
	a->numel = numel;
	a->compression = c->compression;
	a->part_size_bytes = c->part_bytes;
	a->max_peers = c->target_group_size;
	a->max_parts = max_parts;
	a->sender_timeout_ms = c->sender_timeout_ms;
	a->round_timeout_ms = c->round_timeout_ms;
	a->codec = codec;
}

int kw_app_avgrun_sizes(const struct kw_app_avgrun_cfg *c, struct kw_app_avgrun_sizes *sz,
			const char **why)
{
	static const char *dummy;
	struct kw_avg_cfg a;
	uint64_t numel;
	float *tens[1] = { NULL };
	size_t pv;

	if (!why)
		why = &dummy;
	*why = "";
	if (!c || !sz)
		return -KW_EINVAL;
	if (!c->prefix || !*c->prefix || strchr(c->prefix, '.') ||
	    strlen(c->prefix) >= KW_APP_AVGRUN_PREFIX_MAX) {
		*why = "prefix: non-empty, no '.', < 64 bytes";
		return -KW_EINVAL;
	}
	if (!c->size || c->size > (1ull << 30)) {
		*why = "size: 1 .. 2^30 float32 values";
		return -KW_EINVAL;
	}
	if (c->target_group_size < 2 || c->target_group_size > GROUP_MAX ||
	    c->min_group_size < 2 || c->min_group_size > c->target_group_size) {
		*why = "group sizes: 2 <= min_group_size <= target_group_size <= 16";
		return -KW_EINVAL;
	}
	if (c->match_ms < 200) {
		*why = "match time below 200 ms";
		return -KW_EINVAL;
	}
	if (!isfinite(c->weight) || c->weight < 0 || (c->mode == KW_AVG_AUX && c->weight != 0)) {
		*why = "weight must be finite and >= 0 (and 0 for aux)";
		return -KW_EINVAL;
	}
	pv = kw_avg_part_values(c->compression, c->part_bytes ? c->part_bytes :
				CONFIG_KW_ML_AVG_PART_BYTES);
	if (!pv) {
		*why = "part size too small for the compression";
		return -KW_ERANGE;
	}
	memset(sz, 0, sizeof(*sz));
	sz->max_parts = (unsigned)((c->size + pv - 1) / pv + 1);
	/* a part's Tensor (float32 at most, never more values than the tensor) and envelope */
	sz->msg_max = (size_t)KW_MIN((uint64_t)pv, c->size) * 4 + 4096;
	/* a CLIENT queues all its parts for a reducer at once; the others a window's worth */
	sz->backlog = c->mode == KW_AVG_CLIENT ?
		      (size_t)(c->size * 4 / (c->min_group_size - 1)) + 4 * sz->msg_max :
		      6 * sz->msg_max;
	numel = c->size;
	avg_cfg(c, sz->max_parts, NULL, tens, &numel, &a);
	sz->avg_arena = kw_avg_arena_bytes(&a) + 64;
	sz->node_arena = 2 * c->target_group_size * sz->backlog + 64 * 1024;
	return 0;
}

void kw_app_avgrun_stream_limits(const struct kw_app_avgrun_cfg *c, struct kw_hm_stream_limits *sl)
{
	struct kw_app_avgrun_sizes sz;
	unsigned mp = c->target_group_size;

	if (kw_app_avgrun_sizes(c, &sz, NULL) < 0)
		return;
	sl->streams_in = KW_MAX(sl->streams_in, 2 * mp + 4);   /* parts from each, joins, spares */
	sl->streams_per_peer = KW_MAX(sl->streams_per_peer, 4u);
	sl->streams_out = KW_MAX(sl->streams_out, 2 * mp);
	/* one part message, or one state piece (rpc_download_state) */
	sl->buf_bytes = KW_MAX(sl->buf_bytes, (uint32_t)sz.msg_max + 64);
	if (c->share_state && c->mode == KW_AVG_NODE)
		sl->buf_bytes = KW_MAX(sl->buf_bytes, (uint32_t)KW_APP_AVG_CHUNK + 8192);
	sl->prefetch = KW_MAX(sl->prefetch, 1u);
	sl->idle_ms = KW_MAX(sl->idle_ms, 60000u);
}

double kw_app_avgrun_wall_now(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the DHT: our entry under the group key, and reading the key back ------------------- */

static double now_s(struct kw_app_avgrun *r)
{
	if (r->cfg.now)
		return r->cfg.now(r->cfg.now_arg);
	return (double)kw_loop_now(&r->n->loop) / 1000.0;
}

static void check_idle(struct kw_app_avgrun *r)
{
	if (r->paused && !kw_app_avgrun_busy(r) && r->ops.idle)
		r->ops.idle(r, r->ops.u);
}

static void on_store(struct kw_hm_dht *d, int err, const struct kw_hm_dht_store_result *res,
		     void *user)
{
	struct kw_app_avgrun *r = user;

	(void)d;
	/* said once per outage, not at every search: a lone board keeps searching */
	if ((err || !res->n_ok) && !r->store_failing)
		KW_LOG_WRN(avg, "group key not stored (%s); averaging keeps looking",
			   err ? kw_strerror(err) : "no node took it");
	else if (!err && res->n_ok && r->store_failing)
		KW_LOG_INF(avg, "group key stored again");
	r->store_failing = err || !res->n_ok;
	if (r->stores)
		r->stores--;
	check_idle(r);
}

static int store_entry(struct kw_app_avgrun *r)
{
	static const uint8_t t = 0xc3, f = 0xc2;   /* msgpack True / False */
	int ret;

	/* leaving: False, expiring just after the True it replaces (key_manager.py) */
	ret = kw_hm_dht_store(r->d, &r->key_id, r->self_sub, r->self_sub_len,
			      r->decl_looking ? &t : &f, 1,
			      r->decl_looking ? r->decl_exp : nextafter(r->decl_exp, INFINITY),
			      on_store, r);
	r->decl_pending = ret == -KW_ELIMIT;   /* the DHT's operations are busy: next tick */
	if (ret == 0)
		r->stores++;
	return ret == -KW_ELIMIT ? 0 : ret;
}

static int declare(void *u, const char *key, double expiration, bool looking)
{
	struct kw_app_avgrun *r = u;

	(void)key;
	r->decl_exp = expiration;
	r->decl_looking = looking;
	return store_entry(r);
}

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	struct kw_app_avgrun *r = arg;
	size_t n;

	/* subkey: msgpack bin of the PeerID bytes; value: True while looking */
	if (val_len != 1 || val[0] != 0xc3 || sub_len < 2 || sub[0] != 0xc4 ||
	    r->n_cand == KW_AVG_GROUP_MAX)
		return 0;
	n = sub[1];
	if (2 + n != sub_len || n > KW_AVG_PEER_ID_MAX || exp < now_s(r))
		return 0;
	memcpy(r->cand[r->n_cand].peer_id, sub + 2, n);
	r->cand[r->n_cand].peer_id_len = n;
	r->cand[r->n_cand].expiration = exp;
	r->n_cand++;
	return 0;
}

static void on_get(struct kw_hm_dht *d, int err, const struct kw_hm_dht_value *v, void *user)
{
	struct kw_app_avgrun *r = user;
	const char *why = "";

	(void)d;
	r->fetching = false;
	if (!r->matching || err || v->type != KW_HM_DHT_FOUND_DICTIONARY)
		return;
	r->n_cand = 0;
	if (kw_hm_dict_walk(v->value, v->len, on_entry, r, &why) < 0) {
		KW_LOG_WRN(avg, "group key holds a bad dictionary: %s", why);
		return;
	}
	kw_app_avgnet_candidates(r->net, r->cand, r->n_cand);
}

static void on_tick(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_app_avgrun *r = t->arg;

	if (r->decl_pending)
		store_entry(r);
	if (r->matching && !r->fetching && kw_hm_dht_get(r->d, &r->key_id, true, on_get, r) == 0)
		r->fetching = true;
	if (r->matching || r->decl_pending)
		kw_timer_start(l, t, KW_APP_AVGRUN_POLL_MS);
	else
		check_idle(r);
}

/* ---- rounds ------------------------------------------------------------------------------- */

static int start_match(struct kw_app_avgrun *r);

static void round_failed(struct kw_app_avgrun *r, int err)
{
	struct kw_avg_result res;

	memset(&res, 0, sizeof(res));
	res.err = err;
	r->st.round_failed++;
	if (r->ops.round_done)
		r->ops.round_done(r, &res, r->ops.u);
	check_idle(r);
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *res, void *user)
{
	struct kw_app_avgrun *r = user;

	(void)a;
	r->stepping = false;
	r->st.phase = KW_AVGRUN_IDLE;
	r->st.peers_excluded += res->n_excluded;
	if (res->err)
		r->st.round_failed++;
	else
		r->st.rounds++;
	r->st.last_round_ms = res->time_ms;
	r->st.last_done_ms = kw_loop_now(&r->n->loop);
	if (r->ops.round_done)
		r->ops.round_done(r, res, r->ops.u);
	check_idle(r);
}

static void on_assembled(struct kw_app_avgnet *net, int err, const struct kw_avg_group *gr,
			 const struct kw_avg_bytes *ids, void *user)
{
	struct kw_app_avgrun *r = user;
	int ret;

	r->matching = false;
	if (err) {
		r->st.no_group++;
		r->st.phase = KW_AVGRUN_IDLE;
		if (r->paused) {
			check_idle(r);
			return;
		}
		KW_LOG_DBG(avg, "no group yet (%s): looking again", kw_strerror(err));
		ret = start_match(r);
		if (ret < 0)
			round_failed(r, ret);
		return;
	}
	r->st.last_group = gr->n;
	if (r->ops.assembled)
		r->ops.assembled(r, gr, r->ops.u);
	if (r->cfg.mode != KW_AVG_AUX) {
		const float *t[1] = { r->cfg.tensor };

		kw_avg_accumulate(r->avg, t, r->cfg.weight);
	}
	r->stepping = true;
	r->st.phase = KW_AVGRUN_AVERAGING;
	ret = kw_app_avgnet_step(net, gr, ids, on_done, r);
	if (ret < 0) {
		KW_LOG_WRN(avg, "cannot start the round: %s", kw_strerror(ret));
		r->stepping = false;
		r->st.phase = KW_AVGRUN_IDLE;
		round_failed(r, ret);
	}
}

static int start_match(struct kw_app_avgrun *r)
{
	int ret;

	r->m.timeout_ms = r->cfg.match_ms;
	ret = kw_app_avgnet_match(r->net, &r->m, on_assembled, r);
	if (ret < 0)
		return ret;
	r->matching = true;
	r->st.searches++;
	r->st.phase = KW_AVGRUN_MATCHING;
	kw_timer_cancel(&r->n->loop, &r->tick);
	kw_timer_start(&r->n->loop, &r->tick, 0);
	return 0;
}

int kw_app_avgrun_round(struct kw_app_avgrun *r)
{
	if (!r)
		return -KW_EINVAL;
	if (r->matching || r->stepping)
		return -KW_EBUSY;
	r->paused = false;
	return start_match(r);
}

bool kw_app_avgrun_busy(const struct kw_app_avgrun *r)
{
	return r->matching || r->stepping || r->stores || r->decl_pending;
}

int kw_app_avgrun_pause(struct kw_app_avgrun *r)
{
	r->paused = true;
	if (r->matching) {
		/* abandon the search: GROUP_DISBANDED to followers or our join stream ended, and
		 * our entry stored as False (through declare) */
		r->matching = false;
		r->st.withdrawals++;
		r->st.phase = KW_AVGRUN_IDLE;
		kw_app_avgnet_leave(r->net);
	}
	return kw_app_avgrun_busy(r) ? 1 : 0;
}

/* ---- the state a newcomer downloads ------------------------------------------------------ */

/*
 * hivemind's get_current_state of the base averager: metadata {"group_key": group bits} (ours
 * are always empty) and the tensor. Shared only by a NODE (hivemind: allow_state_sharing =
 * not client_mode and not auxiliary) and only between rounds: a round writes into the tensor
 * the download reads.
 */
static int share_state(struct kw_app_avg_state *st, void *arg)
{
	static const uint8_t meta[] = { 0x81, 0xa9, 'g', 'r', 'o', 'u', 'p', '_', 'k', 'e', 'y',
					0xa0 };
	struct kw_app_avgrun *r = arg;

	if (r->cfg.mode != KW_AVG_NODE || r->stepping)
		return -KW_ENOENT;
	st->metadata = meta;
	st->metadata_len = sizeof(meta);
	st->n_tensors = 1;
	st->tensors = (const float *const *)r->tens;
	st->numel = r->numel;
	return 0;
}

/* ---- reaching a peer we have no connection with -------------------------------------------- */

static void on_reach_ping(struct kw_hm_dht *d, int err, const struct kw_hm_dht_pong *p,
			  void *user)
{
	struct reach *rc = user;
	struct kw_conn *c = kw_swarm_find_conn(rc->r->sw, &rc->pid);

	(void)d;
	(void)p;
	rc->busy = false;
	/* the connection is what we wanted: a peer that does not serve rpc_ping (a client-mode
	 * DHT) still has one once the dial is up */
	rc->cb(rc->ctx, c, c ? 0 : err < 0 ? err : -KW_ENOTCONN);
}

/*
 * avg_net's cfg.connect: the Hivemind DHT client reaches the peer as for its own calls (the
 * address book identify and kad lookups fill, then the resolver, app/hivemind.c), through one
 * DHTProtocol.rpc_ping (validate off); p2pd dials a PeerID from its peerstore the same way.
 */
static int avgnet_connect(void *arg, const struct kw_peer_id *peer, kw_app_avgnet_connected_fn cb,
			  void *ctx)
{
	struct kw_app_avgrun *r = arg;
	struct reach *rc = NULL;
	int err;

	for (unsigned i = 0; i < REACHES && !rc; i++)
		if (!r->reach[i].busy)
			rc = &r->reach[i];
	if (!rc)
		return -KW_ELIMIT;
	rc->r = r;
	rc->cb = cb;
	rc->ctx = ctx;
	rc->pid = *peer;
	rc->busy = true;
	err = kw_app_hm_ping_peer(r->d, peer, on_reach_ping, rc);
	if (err < 0)
		rc->busy = false;
	return err;
}

/* ---- set-up ------------------------------------------------------------------------------- */

int kw_app_avgrun_create(struct kw_node *n, struct kw_swarm *sw, struct kw_hm *hm,
			 struct kw_hm_dht *d, const struct kw_app_avgrun_cfg *cfg, void *avg_mem,
			 size_t avg_mem_len, const struct kw_app_avgrun_ops *ops,
			 struct kw_app_avgrun **out)
{
	struct kw_app_avgrun_sizes sz;
	struct kw_app_avgnet_cfg ncfg;
	struct kw_avg_transport tr;
	struct kw_avg_cfg acfg;
	struct kw_arena arena;
	struct kw_app_avgrun *r;
	const struct kw_peer_id *self;
	int ret;

	if (!n || !sw || !hm || !d || !cfg || !cfg->tensor || !avg_mem || !out)
		return -KW_EINVAL;
	ret = kw_app_avgrun_sizes(cfg, &sz, NULL);
	if (ret < 0)
		return ret;
	if (avg_mem_len < sz.avg_arena)
		return -KW_ENOMEM;
	r = kw_arena_alloc(&n->arena, sizeof(*r), 16);
	if (!r)
		return -KW_ENOMEM;
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->sw = sw;
	r->d = d;
	r->cfg = *cfg;
	snprintf(r->prefix, sizeof(r->prefix), "%s", cfg->prefix);
	r->cfg.prefix = r->prefix;
	if (ops)
		r->ops = *ops;
	r->tens[0] = cfg->tensor;
	r->numel[0] = cfg->size;
	kw_timer_init(&r->tick, on_tick, r);

	kw_codec_init(&r->codec, KW_SIMD_AUTO);
	avg_cfg(cfg, sz.max_parts, &r->codec, r->tens, r->numel, &acfg);
	kw_arena_init(&arena, avg_mem, avg_mem_len);

	memset(&ncfg, 0, sizeof(ncfg));
	ncfg.prefix = r->prefix;
	ncfg.cls = "DecentralizedAverager";
	ncfg.max_peers = cfg->target_group_size;
	ncfg.backlog_bytes = sz.backlog;
	ncfg.idle_ms = 60000;
	ncfg.pending_ms = 5000;
	ncfg.now = cfg->now;
	ncfg.now_arg = cfg->now_arg;
	ncfg.connect = avgnet_connect;
	ncfg.connect_arg = r;
	/* a dial gets what a DHT request with a dial in it takes (the ping's own deadline is
	 * 3 s), at most half the round, so an unreachable groupmate is excluded before the round
	 * gives up on everyone */
	ncfg.dial_ms = (uint32_t)KW_MIN(5000u, (cfg->round_timeout_ms ? cfg->round_timeout_ms :
					       CONFIG_KW_ML_AVG_ROUND_TIMEOUT_MS) / 2);
	ret = kw_app_avgnet_create(n, sw, hm, &ncfg, &r->net);
	if (ret == 0 && cfg->share_state)
		ret = kw_app_avg_create(n, hm, r->prefix, "DecentralizedAverager", share_state, r,
					&r->state_av);
	if (ret == 0) {
		kw_app_avgnet_transport(r->net, &tr);
		ret = kw_avg_create(&n->loop, &arena, &acfg, &tr, &r->avg);
	}
	if (ret < 0)
		return ret;
	kw_app_avgnet_bind(r->net, r->avg);

	/* the group key and our entry's subkey */
	kw_avg_group_key(r->prefix, "", r->key, sizeof(r->key));
	kw_hm_dhtid_of_str(r->key, strlen(r->key), &r->key_id);
	self = kw_swarm_peer_id(sw);
	r->self_sub[0] = 0xc4;
	r->self_sub[1] = self->len;
	memcpy(r->self_sub + 2, self->bytes, self->len);
	r->self_sub_len = 2 + (size_t)self->len;
	/* schema: hivemind's hash of the one float32 tensor we average, so Python averagers of a
	 * tensor of this shape join the group; compression and part size are not in it (as in
	 * hivemind), every peer must be started with the same part size */
	{
		uint64_t dim = cfg->size;

		ret = kw_app_avgnet_schema_hash(&dim, 1, r->schema);
		if (ret < 0)
			return ret;
	}
	r->m.key = r->key;
	r->m.schema_hash = r->schema;
	r->m.schema_hash_len = sizeof(r->schema);
	r->m.mode = cfg->mode;
	r->m.bandwidth = KW_AVG_BW_NONE;
	r->m.min_group_size = cfg->min_group_size;
	r->m.target_group_size = cfg->target_group_size;
	r->m.declare = declare;
	r->m.declare_arg = r;
	r->started = true;
	*out = r;
	return 0;
}

void kw_app_avgrun_destroy(struct kw_app_avgrun *r)
{
	if (!r || !r->started)
		return;
	kw_timer_cancel(&r->n->loop, &r->tick);
	if (r->matching) {
		r->matching = false;
		kw_app_avgnet_leave(r->net);
	}
	r->ops.idle = NULL;
	if (r->avg)
		kw_avg_destroy(r->avg);
	r->avg = NULL;
	r->started = false;
}

void kw_app_avgrun_get_stats(const struct kw_app_avgrun *r, struct kw_app_avgrun_stats *st)
{
	*st = r->st;
}

struct kw_app_avgnet *kw_app_avgrun_net(struct kw_app_avgrun *r)
{
	return r->net;
}

/* ---- the tensor file ---------------------------------------------------------------------- */

int kw_app_avgrun_tensor_size(const char *path, uint64_t *n)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % 4)
		return -KW_EINVAL;
	*n = (uint64_t)st.st_size / 4;
	return 0;
}

int kw_app_avgrun_tensor_read(const char *path, float *x, uint64_t n, const char *prog)
{
	FILE *f = fopen(path, "rb");
	size_t got;
	int ret;

	if (!f) {
		ret = -errno;
		if (prog)
			fprintf(stderr, "%s: cannot open %s\n", prog, path);
		else
			KW_LOG_ERR(avg, "cannot open the tensor file %s: %s", path, kw_strerror(ret));
		return ret;
	}
	got = fread(x, sizeof(float), n, f);
	if (got != n || fgetc(f) != EOF) {
		if (prog)
			fprintf(stderr, "%s: %s does not hold exactly %llu float32 values\n", prog,
				path, (unsigned long long)n);
		else
			KW_LOG_ERR(avg, "the tensor file %s does not hold exactly %llu float32 values",
				   path, (unsigned long long)n);
		fclose(f);
		return -KW_EINVAL;
	}
	fclose(f);
	return 0;
}

int kw_app_avgrun_tensor_write(const char *path, const float *x, uint64_t n)
{
	char tmp[KW_APP_AVGRUN_PATH_MAX + 8];
	const uint8_t *p = (const uint8_t *)x;
	size_t left = (size_t)n * sizeof(float);
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -KW_EINVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (left && !ret) {
		ssize_t w = write(fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ret = w < 0 ? -errno : -KW_EIO;
		else {
			p += w;
			left -= (size_t)w;
		}
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}
