/*
 * The upgrade pipeline's per-connection state and its hooks for swarm.c (not public).
 * Stages: multistream-select "/noise" on the raw socket, Noise XX, then either yamux at once
 * (both sides listed /yamux/1.0.0 in the Noise extension) or multistream-select
 * "/yamux/1.0.0" inside Noise first.
 */
#ifndef KW_NET_SWARM_UPGRADE_PRIV_H
#define KW_NET_SWARM_UPGRADE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/noise.h>

#include "sw_yamux.h"

struct kw_conn;
struct kw_swarm;
struct kw_stream;

enum kw_up_stage {
	UP_MSS_SEC,    /* raw: multistream header + /noise */
	UP_NOISE,      /* Noise handshake */
	UP_MSS_MUX,    /* inside Noise: multistream header + /yamux/1.0.0 */
	UP_MUX,        /* yamux */
};

#define KW_UP_LINEBUF 64   /* partial multistream lines before the muxer (short, known ids) */

struct kw_upgrade {
	uint8_t stage;
	uint8_t mss_seen;            /* lines of the current negotiation read so far */
	uint8_t line_len;
	uint8_t line[KW_UP_LINEBUF];
	uint8_t *frb;                /* Noise frame body buffer, borrowed while a frame is partial */
	const uint8_t *pend;         /* plaintext yamux has not taken yet (inside frb) */
	uint32_t pend_len;
	struct kw_noise_session noise;
	struct kw_yamux *mux;        /* from the swarm's session pool once UP_MUX */
};

/* Per-swarm state of the pipeline. */
struct kw_upgrade_shared {
	struct kw_noise_identity nid;
	struct kw_yamux_pools ymp;
};

int kw_upgrade_init(struct kw_swarm *sw, uint32_t max_conns);
int kw_upgrade_start(struct kw_conn *c);
/* Processes received bytes; *used says how many were consumed. Return 0 or -KW_E*. */
int kw_upgrade_on_bytes(struct kw_conn *c, const uint8_t *buf, size_t len, size_t *used);
/* False while the pipeline cannot take more input (yamux buffers full): stop reading. */
bool kw_upgrade_can_read(const struct kw_conn *c);
/* The send buffer drained: let yamux queue more. */
void kw_upgrade_on_tx_space(struct kw_conn *c);
void kw_upgrade_goaway(struct kw_conn *c, uint32_t code);
bool kw_upgrade_done_closing(const struct kw_conn *c);
void kw_upgrade_teardown(struct kw_conn *c, int reason);
/* Returns the Noise frame buffer if no frame or plaintext is in it. */
void kw_upgrade_release_idle(struct kw_conn *c);
uint32_t kw_upgrade_stream_count(const struct kw_conn *c);
int kw_upgrade_open_stream(struct kw_conn *c, struct kw_stream **out);

#endif
