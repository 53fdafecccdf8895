/*
 * Deterministic OS seam for tests and simulations (CONFIG_KW_SYS_SIM): a virtual clock and
 * an in-memory network of IPv4 stream sockets. Many nodes share one `kw_sim_net`; each node
 * gets its own `kw_sim` (its view: the sockets it watches). Nothing sleeps: time moves only
 * through kw_sim_advance (or auto-advance, below), so a test runs the real loop, timers and
 * socket code paths in microseconds and identically every run.
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
};

struct kw_sim {
	struct kw_sys sys;
	struct kw_sim_net *net;      /* borrowed */
	uint32_t src_ip;             /* host order; this view's connects come from it (0: 127.0.0.1),
	                              * so tests can stand for distinct remote hosts */
};

/*
 * Carves `n_socks` sockets with `rx_bytes` (a power of two) receive rings from `arena`.
 * Return: 0, -KW_ENOMEM, -KW_EINVAL.
 */
int kw_sim_net_init(struct kw_sim_net *net, struct kw_arena *arena, int n_socks, size_t rx_bytes);
/* Binds a node's seam to a network. */
void kw_sim_init(struct kw_sim *s, struct kw_sim_net *net);
/* Moves the virtual clock forward. */
void kw_sim_advance(struct kw_sim_net *net, uint64_t ms);
/* Number of sockets currently open in the network (leak checks). */
int kw_sim_open_sockets(const struct kw_sim_net *net);
/* Connected pair of stream sockets owned by `s` (like socketpair). Return: 0 or -KW_ENOBUFS when the socket table is full. */
int kw_sim_socketpair(struct kw_sim *s, int fds[2]);

#endif /* KW_SIM_H */
