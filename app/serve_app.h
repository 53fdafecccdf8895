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
/* "serving ..." lines: the uids and the memory taken. */
void kw_app_serve_print(const struct kw_app_serve *as, FILE *f);

#endif /* KW_APP_SERVE_APP_H */
