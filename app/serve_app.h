/*
 * A node's served compute built from its configuration (app/serve_app.c, doc/serve.md),
 * shared by the `serve` init entry (`kwnode run`) and `kwnode serve`. Private to app/.
 */
#ifndef KW_APP_SERVE_APP_H
#define KW_APP_SERVE_APP_H

#include <stdbool.h>
#include <stdio.h>

#include <kw/app.h>
#include <kw/arena.h>
#include <kw/ml/model.h>

#include "serve.h"

struct kw_app_serve {
	struct kw_serve *s;
	char expert_prefix[KW_CONFIG_PATH_MAX];
	char block_prefix[KW_SERVE_UID_MAX + 1];
	struct kw_ckpt ck;
	bool ck_open;
	struct kw_llama_q8 m8;
	struct kw_llama_w *w;
	/* heap blocks taken at start-up, freed by kw_app_serve_close */
	uint8_t *meta_mem, *wmem, *smem, *rmem;
	struct kw_arena meta, wa, sa, ra;
	size_t weight_bytes, request_bytes;
	uint32_t model_layers;      /* the checkpoint's num_hidden_layers (0: no blocks) */
	uint32_t grid;              /* experts: grid x grid */
	double measured_rps;        /* 1-token forwards per second through one block, measured
				       at open (0: no blocks, or the measurement failed) */
	double inference_rps;       /* 1-token inference steps per second through one block
				       with a KV cache, measured at open (0: none) */
};

/*
 * Loads or generates what cfg says to serve (serve_model + serve_blocks, serve_experts +
 * serve_grid + serve_hidden) and registers the handlers on hm (NULL: compute only).
 * client_mode is what Petals rpc_info reports. On failure err says what, naming the file,
 * tensor or key, and *as is closed. Return: 0 or a negative KW_E* code.
 */
int kw_app_serve_open(struct kw_app_serve *as, const struct kw_config *cfg, struct kw_hm *hm,
		      bool client_mode, char *err, size_t cap);
/* Frees what kw_app_serve_open took (after the swarm stopped calling the handlers). */
void kw_app_serve_close(struct kw_app_serve *as);
/*
 * What the announcer publishes for what *as serves (app/hivemind.c kw_app_hm_announce_begin):
 * the span under its dht_prefix, state ONLINE, torch_dtype and quant_type as the handlers
 * answer, cache_tokens_left as the server reports it, throughput the configured
 * hivemind_throughput or else the figure measured at open (*measured says which), the
 * model's num_blocks from the checkpoint unless hivemind_num_blocks says otherwise, and the
 * first KW_HM_ANNOUNCE_EXPERTS expert uids; public_name, repository, period and expiration
 * from the hivemind_* keys.
 */
struct kw_hm_announce_cfg;
void kw_app_serve_announce_cfg(const struct kw_app_serve *as, const struct kw_config *cfg,
			       struct kw_hm_announce_cfg *ac, bool *measured);
/* "serving ..." lines: the uids and the memory taken. */
void kw_app_serve_print(const struct kw_app_serve *as, FILE *f);

#endif /* KW_APP_SERVE_APP_H */
