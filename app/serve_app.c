/*
 * What a node serves, from its configuration (doc/serve.md): the `serve` entry of the init
 * table (after `hivemind`, whose kw_hm it registers the handlers on) and the set-up shared
 * with `kwnode serve` (app/cmd_serve.c).
 *
 *   serve_model = DIR, serve_blocks = A:B   a Hugging Face LLaMA checkpoint; blocks A .. B-1
 *       are quantized to int8 at start (ml/model), with the transposes backward needs, and
 *       served as Petals blocks "<dht_prefix>.<i>", dht_prefix = the directory's last path
 *       component with '.' replaced by '-' (Petals derives it from the repo name the same way).
 *   serve_experts = PREFIX                   serve_grid x serve_grid hivemind "ffn" experts
 *       "<PREFIX>.<i>.<j>" of hidden serve_hidden. tools/model writes LLaMA checkpoints only,
 *       so the experts are GENERATED here: deterministic weights (xorshift from i and j,
 *       scaled 1/sqrt(fan_in)), quantized to int8 with transposes. They compute and answer
 *       exactly like trained experts; their outputs mean nothing.
 *
 * Memory: weights and the serve state come from one heap block sized before anything is
 * loaded (start-up allocation, freed at shutdown); requests allocate nothing.
 *
 * With the Hivemind DHT on, the `serve` entry (and `kwnode serve`) announce what was loaded
 * (kw_app_serve_announce_cfg): the ServerInfo of the span and the experts' declarations.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/ml/block.h>
#include <kw/ml/model.h>

#include <kw/net/hivemind_records.h>

#include "client.h"
#include "hivemind.h"
#include "serve_app.h"
#include "serve_int.h"

int kw_app_serve_init(struct kw_node *n);
void kw_app_serve_shutdown(struct kw_node *n);

static uint64_t xs_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void gen(float *v, size_t n, float scale, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = scale * ((float)((xs_next(s) >> 40) & 0xffffff) / 8388608.0f - 1.0f);
}

static size_t expert_bytes(size_t h)
{
	size_t inter = 4 * h;

	return kw_lin_q8_bytes(inter, h, 1) + kw_lin_q8_bytes(h, inter, 1) +
	       (inter + 3 * h) * sizeof(float) + sizeof(struct kw_ffn) + 4 * 64;
}

static int add_experts(struct kw_app_serve *as, const struct kw_config *cfg, char *err,
		       size_t cap)
{
	size_t h = cfg->serve_hidden, inter = 4 * h, g = cfg->serve_grid;
	float *tmp = malloc(inter * h * sizeof(float));   /* start-up only */
	int ret = 0;

	if (!tmp)
		return -KW_ENOMEM;
	for (size_t i = 0; i < g && ret == 0; i++)
		for (size_t j = 0; j < g && ret == 0; j++) {
			struct kw_ffn *f = kw_arena_alloc(&as->wa, sizeof(*f), 16);
			float *b1 = kw_arena_alloc(&as->wa, (inter + 3 * h) * sizeof(float), 16);
			uint64_t seed = 0x9e3779b97f4a7c15ull ^ (i << 32) ^ (j + 1);
			char uid[KW_SERVE_UID_MAX + 1];

			if (!f || !b1) {
				ret = -KW_ENOMEM;
				break;
			}
			memset(f, 0, sizeof(*f));
			f->kind = KW_FFN_GELU;
			f->hid = h;
			f->inter = inter;
			gen(tmp, inter * h, 1.0f / sqrtf((float)h), &seed);
			ret = kw_lin_q8_from_f32(&f->up, tmp, inter, h, 1, &as->wa);
			gen(tmp, inter * h, 1.0f / sqrtf((float)inter), &seed);
			if (ret == 0)
				ret = kw_lin_q8_from_f32(&f->down, tmp, h, inter, 1, &as->wa);
			if (ret < 0)
				break;
			gen(b1, inter + h, 0.1f, &seed);   /* b1, b2 */
			for (size_t k = 0; k < h; k++) {
				b1[inter + h + k] = 1.0f;          /* LayerNorm weight */
				b1[inter + 2 * h + k] = 0.0f;      /* and bias, as nn.LayerNorm starts */
			}
			f->up.bias = b1;
			f->down.bias = b1 + inter;
			f->ln_w = b1 + inter + h;
			f->ln_b = b1 + inter + 2 * h;
			snprintf(uid, sizeof(uid), "%s.%zu.%zu", as->expert_prefix, i, j);
			ret = kw_serve_add_expert(as->s, uid, f, KW_COMP_NONE);
			if (ret < 0)
				snprintf(err, cap, "cannot add expert %s: %s", uid, kw_strerror(ret));
		}
	free(tmp);
	if (ret == -KW_ENOMEM)
		snprintf(err, cap, "the expert weights do not fit their computed size");
	return ret;
}

/* Loading a span takes seconds to minutes on a board: one log line per tenth of the bytes. */
struct load_prog {
	uint32_t first, end;
	int shown;   /* the last tenth logged */
};

static void load_progress(void *ctx, size_t i, size_t n, uint64_t bytes, uint64_t total)
{
	struct load_prog *p = ctx;
	int tenth = total ? (int)(bytes * 10 / total) : (int)(i * 10 / (n ? n : 1));

	if (tenth <= p->shown)
		return;
	p->shown = tenth;
	KW_LOG_INF(serve, "loading blocks %u..%u: %d %% (%zu of %zu tensors, %.1f of %.1f MiB)",
		   p->first, p->end - 1, tenth * 10, i, n, (double)bytes / 1048576.0,
		   (double)total / 1048576.0);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Petals announces a measured throughput (server/throughput.py: forward requests per second
 * of one block); the network part it also measures is not. Times MEASURE_CALLS 1-token
 * forwards through the whole span on the compute the handlers use, at start-up.
 */
#define MEASURE_CALLS 8
static double measure_rps(struct kw_app_serve *as, uint32_t first, uint32_t count,
			  uint32_t hidden)
{
	size_t cap = 2 * (size_t)hidden * sizeof(float) + 1024, out_len;
	uint8_t *buf = malloc(2 * cap);   /* start-up only */
	float *x = calloc(hidden, sizeof(float));
	uint32_t shape[3] = { 1, 1, hidden };
	char uid[KW_SERVE_UID_MAX * 8];
	double t0, dt = 0;
	bool is_error = true;
	long len = -1;
	int ret = -1;

	if (buf && x && kw_client_chain_uid(as->block_prefix, first, first + count, uid,
					    sizeof(uid)) > 0)
		len = kw_client_req_encode(uid, shape, 3, x, hidden, true, buf, cap);
	t0 = mono_s();
	for (int i = 0; len > 0 && i < MEASURE_CALLS; i++) {
		ret = kw_serve_call(as->s, KW_SERVE_PT_FORWARD, buf, (size_t)len, buf + cap, cap,
				    &out_len, &is_error);
		if (ret < 0 || is_error)
			break;
	}
	dt = mono_s() - t0;
	free(buf);
	free(x);
	if (ret < 0 || is_error || dt <= 0)
		return 0;
	return (double)MEASURE_CALLS * count / dt;
}

/*
 * Petals' inference_rps (server/throughput.py measure_compute_rps with inference=True): the
 * speed of 1-token steps that each attend over a growing KV cache. Here: MEASURE_STEPS steps
 * of one token through the whole span, in one session of the serve's own KV cache (opened
 * and closed before any caller can take it), after one untimed step as Petals skips its
 * first. Block-steps per second, i.e. per block as Petals reports it; 0 when no cache slot
 * is free or a step fails.
 */
#define MEASURE_STEPS 16
static double measure_inference_rps(struct kw_serve *s)
{
	struct kw_kv_session *ks = NULL;
	uint32_t steps = KW_MIN((uint32_t)MEASURE_STEPS, s->lim.session_tokens - 1);
	float *x = calloc(s->d.hidden, sizeof(float)), *y = calloc(s->d.hidden, sizeof(float));
	double t0 = 0, dt = 0;
	int ret = -1;

	if (x && y && s->has_blocks && s->sess && s->lim.session_tokens > 1 &&
	    kw_kv_open(&s->kv, 1, &ks) == 0) {
		ret = 0;
		for (uint32_t p = 0; p <= steps && ret == 0; p++) {
			if (p == 1)
				t0 = mono_s();
			for (uint32_t i = 0; i < s->count && ret == 0; i++)
				ret = kw_llama_forward(&s->lctx, &s->w[i], &s->kv, ks, i,
						       i ? y : x, 1, 1, p, y);
			x[p % s->d.hidden] = y[0] * 0.5f;   /* the next token's input */
		}
		dt = mono_s() - t0;
		kw_kv_close(&s->kv, ks);
	}
	free(x);
	free(y);
	if (ret < 0 || dt <= 0)
		return 0;
	return (double)steps * s->count / dt;
}

int kw_app_serve_open(struct kw_app_serve *as, const struct kw_config *cfg, struct kw_hm *hm,
		      bool client_mode, char *err, size_t cap)
{
	struct kw_serve_limits lim;
	size_t wbytes = 4096, sbytes;
	uint32_t count = cfg->serve_end - cfg->serve_first, hidden = 0;
	bool model = cfg->serve_model[0], experts = cfg->serve_experts[0];
	int ret;

	memset(as, 0, sizeof(*as));
	kw_serve_limits_default(&lim);
	if (!model && !experts) {
		snprintf(err, cap, "nothing to serve: give serve_model and serve_blocks, or "
			 "serve_experts");
		return -KW_EINVAL;
	}
	if (experts) {
		snprintf(as->expert_prefix, sizeof(as->expert_prefix), "%s", cfg->serve_experts);
		if (as->expert_prefix[strlen(as->expert_prefix) - 1] == '.')
			as->expert_prefix[strlen(as->expert_prefix) - 1] = '\0';
		if (!as->expert_prefix[0] || strchr(as->expert_prefix, '.') ||
		    cfg->serve_grid * cfg->serve_grid > lim.max_experts) {
			snprintf(err, cap, "serve_experts '%s' with a %ux%u grid: the prefix must be "
				 "a word without '.' and the grid at most %u experts "
				 "(KW_APP_SERVE_MAX_EXPERTS)", cfg->serve_experts, cfg->serve_grid,
				 cfg->serve_grid, lim.max_experts);
			return -KW_EINVAL;
		}
		wbytes += cfg->serve_grid * cfg->serve_grid * expert_bytes(cfg->serve_hidden);
	}
	if (model) {
		if (!cfg->serve_end) {
			snprintf(err, cap, "serve_model needs serve_blocks = A:B");
			return -KW_EINVAL;
		}
		if (count > lim.max_blocks) {
			snprintf(err, cap, "serve_blocks %u:%u is %u blocks; this build serves at "
				 "most %u (KW_APP_SERVE_MAX_BLOCKS)", cfg->serve_first,
				 cfg->serve_end, count, lim.max_blocks);
			return -KW_EINVAL;
		}
		as->meta_mem = malloc(4u << 20);
		if (!as->meta_mem)
			return -KW_ENOMEM;
		kw_arena_init(&as->meta, as->meta_mem, 4u << 20);
		ret = kw_ckpt_open(&as->ck, cfg->serve_model, &as->meta, err, cap);
		if (ret < 0)
			goto fail;
		as->ck_open = true;
		{
			/* refuse, naming each part and the budget, a range this board cannot hold,
			 * before anything is allocated for it (doc/ml-model.md, "Memory") */
			struct kw_llama_plan plan;

			kw_llama_plan_default(&plan);
			plan.backward = 1;  /* rpc_backward is served: the transposes too */
			ret = kw_llama_fit(&as->ck.cfg, cfg->serve_first, count, &plan,
					   kw_llama_budget_bytes(), err, cap);
			if (ret < 0)
				goto fail;
		}
		/* the int8 blocks plus their transposes (kw_q8w_transpose takes as much again) */
		wbytes += 2 * kw_llama_q8_bytes(&as->ck.cfg, count) + 4u * as->ck.cfg.hidden_size *
			  sizeof(float) * count + (1u << 20);
	}
	as->wmem = malloc(wbytes);
	if (!as->wmem) {
		ret = -KW_ENOMEM;
		snprintf(err, cap, "cannot allocate %zu bytes for the weights", wbytes);
		goto fail;
	}
	kw_arena_init(&as->wa, as->wmem, wbytes);
	as->smem = malloc(1u << 20);
	if (!as->smem) {
		ret = -KW_ENOMEM;
		goto fail;
	}
	kw_arena_init(&as->sa, as->smem, 1u << 20);
	ret = kw_serve_create(&as->sa, &lim, &as->s);
	if (ret < 0) {
		snprintf(err, cap, "cannot create the server state: %s", kw_strerror(ret));
		goto fail;
	}
	if (model) {
		struct kw_llama_dims d;
		struct load_prog prog = { cfg->serve_first, cfg->serve_end, -1 };

		ret = kw_llama_q8_load(&as->m8, &as->ck, cfg->serve_first, count, &as->wa,
				       load_progress, &prog, err, cap);
		if (ret < 0)
			goto fail;
		as->w = kw_arena_alloc(&as->wa, count * sizeof(*as->w), 16);
		if (!as->w) {
			ret = -KW_ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < count && ret == 0; i++)
			ret = kw_llama_w_from_q8(&as->w[i], &as->m8.blk[i], &as->wa);
		if (ret < 0) {
			snprintf(err, cap, "cannot build the transposed blocks: %s", kw_strerror(ret));
			goto fail;
		}
		kw_llama_dims_from_config(&d, &as->ck.cfg);
		as->model_layers = as->ck.cfg.num_hidden_layers;
		hidden = as->ck.cfg.hidden_size;
		kw_client_prefix_of(cfg->serve_model, as->block_prefix, sizeof(as->block_prefix));
		ret = kw_serve_set_blocks(as->s, as->block_prefix, cfg->serve_first, count, as->w,
					  &d);
		if (ret < 0) {
			snprintf(err, cap, "cannot serve blocks of '%s' as '%s': %s", cfg->serve_model,
				 as->block_prefix, kw_strerror(ret));
			goto fail;
		}
		/* the quantized weights no longer refer to the checkpoint's mappings */
		kw_ckpt_close(&as->ck);
		as->ck_open = false;
	}
	if (experts) {
		ret = add_experts(as, cfg, err, cap);
		if (ret < 0)
			goto fail;
	}
	sbytes = kw_serve_bytes(as->s);
	as->rmem = sbytes ? malloc(sbytes) : NULL;
	if (!as->rmem) {
		ret = -KW_ENOMEM;
		snprintf(err, cap, "cannot allocate %zu bytes of request buffers", sbytes);
		goto fail;
	}
	kw_arena_init(&as->ra, as->rmem, sbytes);
	ret = kw_serve_start(as->s, &as->ra, hm, NULL, NULL, client_mode);
	if (ret < 0) {
		snprintf(err, cap, "cannot start serving: %s", kw_strerror(ret));
		goto fail;
	}
	as->weight_bytes = wbytes;
	as->request_bytes = sbytes;
	as->grid = experts ? cfg->serve_grid : 0;
	if (model)
		as->measured_rps = measure_rps(as, cfg->serve_first, count, hidden);
	if (model)
		as->inference_rps = measure_inference_rps(as->s);
	return 0;
fail:
	kw_app_serve_close(as);
	return ret;
}

void kw_app_serve_close(struct kw_app_serve *as)
{
	if (as->s)   /* the compute thread reads the weights and the request buffers */
		kw_serve_lane_join(as->s);
	if (as->ck_open)
		kw_ckpt_close(&as->ck);
	free(as->meta_mem);
	free(as->wmem);
	free(as->smem);
	free(as->rmem);
	memset(as, 0, sizeof(*as));
}

void kw_app_serve_announce_cfg(const struct kw_app_serve *as, const struct kw_config *cfg,
			       struct kw_hm_announce_cfg *ac, bool *measured)
{
	struct kw_serve_desc d;
	struct kw_hm_server_info *si = &ac->info;

	memset(ac, 0, sizeof(*ac));
	kw_serve_describe(as->s, &d);
	kw_app_hm_announce_common(cfg, ac);
	*measured = false;
	if (d.has_blocks) {
		snprintf(ac->prefix, sizeof(ac->prefix), "%s", d.block_prefix);
		ac->start_block = d.start_block;
		ac->end_block = d.end_block;
		si->has |= KW_HM_SI_TORCH_DTYPE | KW_HM_SI_QUANT_TYPE | KW_HM_SI_CACHE_TOKENS;
		snprintf(si->torch_dtype, sizeof(si->torch_dtype), "%s", d.torch_dtype);
		snprintf(si->quant_type, sizeof(si->quant_type), "%s", d.quant_type);
		si->cache_tokens_left = d.cache_tokens_left;
		if (!ac->model.num_blocks)
			ac->model.num_blocks = as->model_layers;
		if (cfg->hivemind_throughput > 0) {
			si->throughput = cfg->hivemind_throughput;
		} else if (as->measured_rps > 0) {
			/* petals throughput.py: forward_rps / the mean blocks a request uses,
			 * (num_blocks + 1) / 2; its network_rps bound is not measured here */
			si->throughput = as->measured_rps / ((d.end_block - d.start_block + 1) / 2.0);
			si->forward_rps = as->measured_rps;
			si->has |= KW_HM_SI_FORWARD_RPS;
			*measured = true;
		}
		if (as->inference_rps > 0) {
			si->inference_rps = as->inference_rps;
			si->has |= KW_HM_SI_INFERENCE_RPS;
		}
	}
	for (uint32_t i = 0; i < as->grid && ac->n_experts < KW_HM_ANNOUNCE_EXPERTS; i++)
		for (uint32_t j = 0; j < as->grid && ac->n_experts < KW_HM_ANNOUNCE_EXPERTS; j++)
			snprintf(ac->experts[ac->n_experts++], sizeof(ac->experts[0]), "%s.%u.%u",
				 as->expert_prefix, i, j);
}

void kw_app_serve_print(const struct kw_app_serve *as, FILE *f)
{
	struct kw_serve_desc d;

	kw_serve_describe(as->s, &d);
	if (d.n_experts)
		fprintf(f, "serving %zu experts %s.<i>.<j> from %s (ConnectionHandler.rpc_*)\n",
			d.n_experts, as->expert_prefix, d.expert_uid[0]);
	if (d.has_blocks)
		fprintf(f, "serving blocks %s.%u .. %s.%u, %s (TransformerConnectionHandler.rpc_*)\n",
			d.block_prefix, d.start_block, d.block_prefix, d.end_block - 1, d.quant_type);
	fprintf(f, "memory: %zu bytes of weights, %zu bytes of request buffers\n",
		as->weight_bytes, as->request_bytes);
	fflush(f);
}

/* ---- the init entry ----------------------------------------------------------------------- */

static struct kw_app_serve g_serve;   /* one node per process serves */

int kw_app_serve_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	char err[512];
	int ret;

	if (!app || (!app->cfg.serve_model[0] && !app->cfg.serve_experts[0]))
		return 0;
	if (!app->hm) {
		KW_LOG_ERR(serve, "serve_model / serve_experts need hivemind = on");
		return -KW_EINVAL;
	}
	ret = kw_app_serve_open(&g_serve, &app->cfg, app->hm, app->cfg.hivemind_client, err,
				sizeof(err));
	if (ret < 0) {
		KW_LOG_ERR(serve, "cannot serve: %s", err);
		return ret;
	}
	app->serve = g_serve.s;
	if (app->hm_dht)   /* a next server of next_servers we have no connection to */
		kw_serve_set_connect(g_serve.s, kw_app_hm_dial, app->hm_dht);
	kw_app_serve_print(&g_serve, stdout);
	if (app->hm_app && app->hm_dht && !app->cfg.hivemind_client) {
		struct kw_hm_announce_cfg ac;
		bool measured;

		kw_app_serve_announce_cfg(&g_serve, &app->cfg, &ac, &measured);
		ret = kw_app_hm_announce_begin(n, app->hm_app, app->sw, app->policy, &ac);
		if (ret < 0)
			return ret;
		KW_LOG_INF(serve, "announcing what is served, throughput %.3f (%s), forward_rps "
			   "%.3f, inference_rps %.3f", ac.info.throughput, measured ? "measured" :
			   app->cfg.hivemind_throughput > 0 ? "configured" : "none",
			   ac.info.forward_rps, ac.info.inference_rps);
	}
	return 0;
}

void kw_app_serve_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);

	/* the handlers go with the swarm (net's shutdown runs after this one); nothing calls
	 * into the weights once the loop has stopped */
	if (app)
		app->serve = NULL;
	if (g_serve.s)   /* the loop is still here: answer or refuse what the lane holds */
		kw_serve_stop(g_serve.s);
	kw_app_serve_close(&g_serve);
}
