/*
 * libp2p ping (/ipfs/ping/1.0.0; libp2p/specs ping/ping.md). The listener echoes
 * every 32-byte block until the dialer closes its side (at most KW_PING_MAX_INBOUND streams
 * per connection, extra ones are reset). The client sends 32 random bytes, waits for the same
 * 32 back, reports the round trip, and repeats on the same stream `count` times.
 *
 * Owns nothing beyond the caller's struct kw_ping (client) and a per-connection count.
 */
#ifndef KW_NET_PING_H
#define KW_NET_PING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>
#include <kw/net/stream.h>

struct kw_swarm;
struct kw_conn;

#define KW_PING_PROTO       "/ipfs/ping/1.0.0"
#define KW_PING_SIZE        32
#define KW_PING_MAX_INBOUND 2
#define KW_PING_TIMEOUT_MS  10000  /* a reply later than this ends the session (-KW_ETIMEDOUT) */

/* Registers the listener on sw. Return: 0 or kw_swarm_register's error. */
int kw_ping_register(struct kw_swarm *sw);

struct kw_ping;
/*
 * One round trip finished (done false, err 0, rtt in microseconds), or the session ended
 * (done true: err 0 after `count` replies, -KW_ETIMEDOUT when a reply took longer than
 * KW_PING_TIMEOUT_MS, -KW_ENOPROTO / -KW_ECONNRESET / -KW_EPIPE otherwise). After the call
 * with done == true the struct may be reused or freed.
 */
typedef void (*kw_ping_cb)(struct kw_ping *p, uint32_t seq, uint64_t rtt_us, int err, bool done);

/* Client state, caller-owned (a pooled struct or a static in the CLI). */
struct kw_ping {
	struct kw_swarm *sw;
	struct kw_stream *s;
	kw_ping_cb cb;
	void *user;
	/* Optional microsecond clock; NULL uses the loop's millisecond clock (tests, sim). */
	uint64_t (*clock_us)(void *arg);
	void *clock_arg;
	uint32_t count, seq, interval_ms;
	uint32_t n_sent;           /* pings written to the stream so far (seq counts replies) */
	uint64_t t_sent;
	uint8_t sent[KW_PING_SIZE];
	uint8_t got[KW_PING_SIZE];
	uint8_t got_len;
	bool active, closing, waiting, timed_out;
	struct kw_timer timer;     /* interval between pings */
};

/*
 * Starts `count` pings to c (one stream), `interval_ms` apart. Returns at once; cb runs on
 * the loop per reply and once with done == true. Return: 0, or kw_swarm_open_stream's error.
 */
int kw_ping_start(struct kw_ping *p, struct kw_swarm *sw, struct kw_conn *c, uint32_t count,
		  uint32_t interval_ms, kw_ping_cb cb, void *user);
/* Stops early (resets the stream); cb runs once more with done == true and -KW_ECONNRESET. */
void kw_ping_cancel(struct kw_ping *p);

#endif /* KW_NET_PING_H */
