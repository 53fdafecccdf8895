/*
 * Deterministic OS seam for tests and simulations (CONFIG_KW_SYS_SIM): a virtual clock and
 * an in-memory network of IPv4 stream sockets. Many nodes share one `kw_sim_net`; each node
 * gets its own `kw_sim` (its view: the sockets it watches). Nothing sleeps: time moves only
 * through kw_sim_advance (or auto-advance, below), so a test runs the real loop, timers and
 * socket code paths in microseconds and identically every run.
 *
 * Cost: wait() looks only at the view's sockets whose state changed since it last found them
 * not ready, so it is O(events), not O(sockets in the network); socket creation, listen and
 * connect do not scan the socket table either (doc/sim.md, "Full-stack run").
 *
 * Memory: the socket table and every socket's receive ring are carved from the arena given
 * to kw_sim_net_init (start-up only). Connect always completes in the next wait(); a connect
 * to an address nobody listens on fails with -KW_ECONNREFUSED through sock_error().
 */
#ifndef KW_SIM_H
#define KW_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/sys.h>

struct kw_arena;
struct kw_sim;
struct kw_sim_sock;

struct kw_sim_net {
	uint64_t now_ms;
	struct kw_sim_sock *socks;   /* from the arena */
	int n_socks;
	size_t rx_bytes;             /* receive ring per socket */
	uint16_t next_port;
	bool auto_advance;           /* wait(timeout>0) with nothing ready advances the clock */
	uint32_t blackhole_ip;       /* host order; connects to it never complete (0: none) */
	/*
	 * Opt-in for simulations that drive many views from one driver: when set, a view that
	 * may have a ready socket is queued once on the network's active list, which
	 * kw_sim_net_next_active pops. Off by default (a view freed while queued would dangle).
	 */
	bool track_active;
	/*
	 * Optional one-way latency of a new connection from src to dst (host order), asked once
	 * per connect; bytes written become readable that long after (NULL: at once). FIN and
	 * RST travel at once, but a FIN is seen only after the bytes before it.
	 */
	uint32_t (*latency_ms)(void *ctx, uint32_t src_ip, uint32_t dst_ip);
	void *latency_ctx;
	uint64_t marks_merged;       /* batches that waited a little longer (see sys_sim.c) */
	/* internal: open-socket count, lowest possibly free socket, listener list, active list */
	int n_open;
	int free_hint;
	int listen_head;
	struct kw_sim *act_head, *act_tail;
	int *dheap, dh_len;          /* sockets with bytes in flight, by due time */
};

struct kw_sim {
	struct kw_sys sys;
	struct kw_sim_net *net;      /* borrowed */
	uint32_t src_ip;             /* host order; this view's connects come from it (0: 127.0.0.1),
	                              * so tests can stand for distinct remote hosts */
	void *user;                  /* the driver's (e.g. its node); never read here */
	/* internal: sockets that may be ready (wait() checks only these), active-list link */
	int rl_head, rl_tail;
	struct kw_sim *act_next;
	bool act_queued;
};

/*
 * Carves `n_socks` sockets with `rx_bytes` (a power of two) receive rings from `arena`.
 * Return: 0, -KW_ENOMEM, -KW_EINVAL.
 */
int kw_sim_net_init(struct kw_sim_net *net, struct kw_arena *arena, int n_socks, size_t rx_bytes);
/* Binds a node's seam to a network. */
void kw_sim_init(struct kw_sim *s, struct kw_sim_net *net);
/* Moves the virtual clock forward and delivers the bytes due by then. */
void kw_sim_advance(struct kw_sim_net *net, uint64_t ms);
/* Makes the bytes due by now readable (wait() does this too). */
void kw_sim_net_deliver(struct kw_sim_net *net);
/* When the next bytes in flight are due; UINT64_MAX when none are. */
uint64_t kw_sim_net_next_delivery(const struct kw_sim_net *net);
/*
 * With net->track_active set: the next view (FIFO, each view at most once) that may have a
 * ready socket, so a driver runs only the nodes with work; NULL when none. A view whose
 * wait() leaves ready sockets unreported (level-triggered) queues itself again.
 */
struct kw_sim *kw_sim_net_next_active(struct kw_sim_net *net);
/* Number of sockets currently open in the network (leak checks). */
int kw_sim_open_sockets(const struct kw_sim_net *net);
/* Connected pair of stream sockets owned by `s` (like socketpair). Return: 0 or -KW_ENOBUFS when the socket table is full. */
int kw_sim_socketpair(struct kw_sim *s, int fds[2]);

#endif /* KW_SIM_H */
