/*
 * Butterfly all-reduce rounds (ml/avg, doc/ml-avg.md): 4 peers in one process, one event
 * loop, each averaging MiB_per_peer of fp32 (default 64 MiB) with NONE, FLOAT16 and
 * BLOCKWISE_8BIT, over two transports:
 *   inproc  messages copied into a queue and delivered from the driver loop;
 *   tcp     one real TCP connection on 127.0.0.1 per pair of peers, u32-length-framed,
 *           non-blocking sockets polled by the same single thread.
 * The baseline is measured in the same run: single-thread copy throughput through one
 * loopback TCP connection (write a chunk, read what arrived, repeat), and the round's lower
 * bound = bytes the round put on the wire / that throughput. Every round's result is checked
 * against the exact mean on a sample of values.
 *
 * Usage: bench_avg [MiB_per_peer [reps [codec|all [inproc|tcp|all [kernels]]]]]; without a
 * codec it also times the small-round goal, 4 peers x 4 MiB BLOCKWISE_8BIT over tcp (< 200 ms).
 * kernels names the codec kernel table (<kw/ml/kernels.h>: "auto", the default, "ref",
 * "avx2", "avx512", "neon", ...) so the codec SIMD's share of a round can be measured against
 * the portable reference in the same conditions.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/ml/avg.h>
#include <kw/ml/kernels.h>
#include <kw/sys.h>

#include "bench_util.h"

#define NP 4

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Profiling only the timed part of the rounds (set-up and the result check touch every value
 * too): with KW_BENCH_PERF_CTL=<fifo>, "enable" / "disable" are written to it around each
 * round, for `perf record --control=fifo:<fifo> -D -1` (doc/bench.md).
 */
static void perf_ctl(const char *what)
{
	static int fd = -2;

	if (fd == -2) {
		const char *path = getenv("KW_BENCH_PERF_CTL");

		fd = path ? open(path, O_WRONLY) : -1;
	}
	if (fd >= 0 && write(fd, what, strlen(what)) < 0)
		fd = -1;
}

static float value(unsigned p, uint64_t i)
{
	return (float)((i * 2654435761u + p * 977u) % 2001u) / 1000.0f - 1.0f;
}

/* ---- byte queues ---- */
struct bq {
	uint8_t *b;
	size_t off, len, cap;
};

/* Room for n more bytes at the tail (compacting or growing); returns the tail. */
static uint8_t *bq_room(struct bq *q, size_t n)
{
	if (q->off && q->off == q->len)
		q->off = q->len = 0;
	if (q->len + n > q->cap) {
		if (q->off) {
			memmove(q->b, q->b + q->off, q->len - q->off);
			q->len -= q->off;
			q->off = 0;
		}
		if (q->len + n > q->cap) {
			q->cap = (q->len + n) * 2;
			q->b = realloc(q->b, q->cap);
			if (!q->b)
				exit(1);
		}
	}
	return q->b + q->len;
}

static void bq_put(struct bq *q, const void *p, size_t n)
{
	memcpy(bq_room(q, n), p, n);
	q->len += n;
}

/* ---- the bench world ---- */
enum tmode { T_INPROC, T_TCP };

struct world;
struct ptr_ctx {
	struct world *w;
	unsigned self;
};

struct world {
	enum tmode mode;
	struct kw_loop loop;
	struct kw_avg *avg[NP];
	struct ptr_ctx ctx[NP];
	float *data[NP];
	bool done[NP];
	struct kw_avg_result res[NP];
	/* tcp: fd[i][j] is i's end of the i-j connection */
	int fd[NP][NP];
};

/* The queues outlive a round (a node keeps its buffers): inproc, one FIFO per directed pair;
 * tcp, what i has still to write to j and what it read from j. Emptied, never freed. */
static struct bq qs[NP][NP], outs[NP][NP], ins[NP][NP];

static int w_send(void *t, unsigned peer, const uint8_t *msg, size_t len)
{
	struct ptr_ctx *c = t;
	struct world *w = c->w;
	uint32_t l = (uint32_t)len;

	if (w->mode == T_INPROC) {
		bq_put(&qs[c->self][peer], &l, 4);
		bq_put(&qs[c->self][peer], msg, len);
	} else {
		bq_put(&outs[c->self][peer], &l, 4);
		bq_put(&outs[c->self][peer], msg, len);
	}
	return 0;
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	struct world *w = user;

	for (unsigned i = 0; i < NP; i++)
		if (w->avg[i] == a) {
			w->done[i] = true;
			w->res[i] = *r;
		}
}

/* Delivers whole frames from q (sent by `from` to `to`); stops at -KW_EAGAIN. */
static bool deliver(struct world *w, struct bq *q, unsigned from, unsigned to)
{
	bool progress = false;

	while (q->len - q->off >= 4) {
		uint32_t l;

		memcpy(&l, q->b + q->off, 4);
		if (q->len - q->off < 4 + (size_t)l)
			break;
		if (kw_avg_on_message(w->avg[to], from, q->b + q->off + 4, l) == -KW_EAGAIN)
			break;
		q->off += 4 + (size_t)l;
		progress = true;
	}
	if (q->off == q->len)
		q->off = q->len = 0;
	return progress;
}

/*
 * One pass of the tcp transport, as an event loop would run it: one poll() over the twelve
 * socket ends (waiting up to wait_ms), then writes where a socket can take bytes and reads,
 * straight into the receive queue, where bytes arrived; whole frames are delivered. Frames
 * refused with -KW_EAGAIN stay queued and are offered again on every pass.
 */
#define RX_CHUNK ((size_t)1 << 20)
#define RX_QUEUE_MAX ((size_t)8 << 20)

static bool pump_tcp(struct world *w, int wait_ms)
{
	struct pollfd p[NP * NP];
	unsigned from[NP * NP], to[NP * NP];
	bool progress = false;
	int n = 0;

	for (unsigned i = 0; i < NP; i++)
		for (unsigned j = 0; j < NP; j++)
			if (i != j && deliver(w, &ins[i][j], j, i))
				progress = true;
	for (unsigned i = 0; i < NP; i++)
		for (unsigned j = 0; j < NP; j++) {
			if (i == j)
				continue;
			p[n].fd = w->fd[i][j];
			p[n].events = (short)((outs[i][j].len > outs[i][j].off ? POLLOUT : 0) |
				(ins[i][j].len - ins[i][j].off < RX_QUEUE_MAX ? POLLIN : 0));
			p[n].revents = 0;
			from[n] = i;
			to[n] = j;
			n++;
		}
	if (poll(p, (nfds_t)n, progress ? 0 : wait_ms) <= 0)
		return progress;
	for (int k = 0; k < n; k++) {
		unsigned i = from[k], j = to[k];
		struct bq *o = &outs[i][j], *in = &ins[i][j];

		if (p[k].revents & POLLOUT) {
			ssize_t got = send(p[k].fd, o->b + o->off, o->len - o->off, MSG_NOSIGNAL);

			if (got > 0) {
				o->off += (size_t)got;
				progress = true;
			}
			if (o->off == o->len)
				o->off = o->len = 0;
		}
		if (p[k].revents & POLLIN) {
			/* i reads what j sent it on the i-j connection */
			ssize_t got = recv(p[k].fd, bq_room(in, RX_CHUNK), RX_CHUNK, 0);

			if (got > 0) {
				in->len += (size_t)got;
				progress = true;
				deliver(w, in, j, i);
			}
		}
	}
	return progress;
}

static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl)) {
		perror("listen");
		exit(1);
	}
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*a, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("connect");
		exit(1);
	}
	*b = accept(l, NULL, NULL);
	close(l);
	setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(*a, F_SETFL, O_NONBLOCK);
	fcntl(*b, F_SETFL, O_NONBLOCK);
}

/* Single-thread copy of `bytes` through one loopback TCP connection: bytes per second of
 * wall time, and (*per_cpu) per second of this process's CPU time. */
static double loopback_throughput(size_t bytes, double *per_cpu)
{
	int a, b;
	static uint8_t buf[1 << 18];
	size_t sent = 0, got = 0;
	double t0, c0;

	tcp_pair(&a, &b);
	memset(buf, 0x5a, sizeof(buf));
	t0 = bench_now();
	c0 = cpu_now();
	while (got < bytes) {
		if (sent < bytes) {
			ssize_t n = send(a, buf, sizeof(buf) < bytes - sent ? sizeof(buf) : bytes - sent,
					 MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
		}
		for (;;) {
			ssize_t n = recv(b, buf, sizeof(buf), 0);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	t0 = bench_now() - t0;
	*per_cpu = (double)bytes / (cpu_now() - c0);
	close(a);
	close(b);
	return (double)bytes / t0;
}

struct run_out {
	double wall, cpu, max_err, ratio;
	uint64_t wire;
};

static void run_round(enum tmode mode, enum kw_compression comp, uint64_t numel,
		      const struct kw_codec *codec, struct run_out *out)
{
	static struct world w;
	static struct kw_sys_linux sys;
	static uint8_t loop_mem[1 << 16];
	static void *amem[NP];
	static size_t asz;
	struct kw_arena la;
	double t0, c0;

	memset(&w, 0, sizeof(w));
	w.mode = mode;
	if (!sys.sys.ops && kw_sys_linux_open(&sys))
		exit(1);
	kw_arena_init(&la, loop_mem, sizeof(loop_mem));
	if (kw_loop_init(&w.loop, &sys.sys, &la, 64, 16))
		exit(1);
	for (unsigned i = 0; i < NP; i++) {
		struct kw_avg_cfg cfg;
		struct kw_avg_transport tr = { w_send, &w.ctx[i] };
		struct kw_arena a;
		size_t need;
		static float *bufs[NP];
		static uint64_t ne[1];

		if (!bufs[i])
			bufs[i] = bench_alloc(numel * sizeof(float));
		w.data[i] = bufs[i];
		for (uint64_t k = 0; k < numel; k++)
			w.data[i][k] = value(i, k);
		ne[0] = numel;
		w.ctx[i].w = &w;
		w.ctx[i].self = i;
		kw_avg_cfg_default(&cfg);
		cfg.n_tensors = 1;
		cfg.tensors = &w.data[i];
		cfg.numel = ne;
		cfg.compression = comp;
		cfg.max_peers = NP;
		cfg.max_parts = 4096;
		cfg.round_timeout_ms = 600000;
		cfg.sender_timeout_ms = 600000;
		cfg.codec = codec;
		need = kw_avg_arena_bytes(&cfg);
		if (need > asz) {
			for (unsigned k = 0; k < NP; k++) {
				free(amem[k]);
				amem[k] = bench_alloc(need);
				memset(amem[k], 0, need);   /* first-touch faults before the clock */
			}
			asz = need;
		}
		kw_arena_init(&a, amem[i], asz);
		if (kw_avg_create(&w.loop, &a, &cfg, &tr, &w.avg[i])) {
			fprintf(stderr, "kw_avg_create failed\n");
			exit(1);
		}
	}
	if (mode == T_TCP)
		for (unsigned i = 0; i < NP; i++)
			for (unsigned j = i + 1; j < NP; j++)
				tcp_pair(&w.fd[i][j], &w.fd[j][i]);
	perf_ctl("enable\n");
	t0 = bench_now();
	c0 = cpu_now();
	for (unsigned i = 0; i < NP; i++) {
		struct kw_avg_group g;

		memset(&g, 0, sizeof(g));
		memset(g.group_id, 7, 20);
		g.group_id_len = 20;
		g.n = NP;
		g.self = i;
		for (unsigned k = 0; k < NP; k++)
			g.bandwidth[k] = KW_AVG_BW_NONE;
		if (kw_avg_step(w.avg[i], &g, on_done, &w)) {
			fprintf(stderr, "kw_avg_step failed\n");
			exit(1);
		}
	}
	for (bool progress = true;;) {
		bool all = true;

		for (unsigned i = 0; i < NP; i++)
			all = all && w.done[i];
		if (all)
			break;
		if (mode == T_INPROC) {
			progress = false;
			for (unsigned i = 0; i < NP; i++)
				for (unsigned j = 0; j < NP; j++)
					if (deliver(&w, &qs[i][j], i, j))
						progress = true;
		} else {
			progress = pump_tcp(&w, progress ? 0 : 1);
		}
		kw_loop_run_once(&w.loop, 0);
	}
	out->wall = bench_now() - t0;
	out->cpu = cpu_now() - c0;
	perf_ctl("disable\n");
	out->wire = 0;
	out->ratio = w.res[0].compression_ratio;
	for (unsigned i = 0; i < NP; i++) {
		out->wire += w.res[i].bytes_sent;
		if (w.res[i].n_excluded) {
			fprintf(stderr, "peer %u excluded peers (mask %llx)\n", i,
				(unsigned long long)w.res[i].excluded_mask);
			exit(1);
		}
	}
	out->max_err = 0;
	for (uint64_t k = 0; k < numel; k += 997) {
		double e = 0;

		for (unsigned p = 0; p < NP; p++)
			e += value(p, k);
		e /= NP;
		for (unsigned p = 0; p < NP; p++)
			out->max_err = fmax(out->max_err, fabs(w.data[p][k] - e));
	}
	for (unsigned i = 0; i < NP; i++) {
		kw_avg_destroy(w.avg[i]);
		for (unsigned j = 0; j < NP; j++) {
			qs[i][j].off = qs[i][j].len = 0;
			outs[i][j].off = outs[i][j].len = 0;
			ins[i][j].off = ins[i][j].len = 0;
			if (mode == T_TCP && i != j)
				close(w.fd[i][j]);
		}
	}
}

static void print_row(const char *name, int m, const double *wall, const double *cpu, int n,
		      const struct run_out *o, double bw, double bw_cpu)
{
	double w[16], c[16], bound = (double)o->wire / bw, bound_cpu = (double)o->wire / bw_cpu;

	memcpy(w, wall, (size_t)n * sizeof(double));
	memcpy(c, cpu, (size_t)n * sizeof(double));
	printf("%-15s %-6s %8.1f %8.1f %8.1f %8.2f %8.1f %8.1f %7.2f %7.2f %6.2f %8.2g\n",
	       name, m ? "tcp" : "inproc", 1e3 * bench_median(w, n), 1e3 * bench_median(c, n),
	       (double)o->wire / (1 << 20), (double)o->wire / NP / (1 << 20), 1e3 * bound,
	       1e3 * bound_cpu, bench_median(w, n) / bound, bench_median(c, n) / bound_cpu,
	       o->ratio, o->max_err);
}

/* One row: a warm-up round (not counted: first-touch faults of queues and buffers), then
 * reps rounds; medians. */
static void measure(enum tmode m, enum kw_compression comp, uint64_t numel, int reps,
		    const struct kw_codec *codec, double *wall, double *cpu, struct run_out *o)
{
	run_round(m, comp, numel, codec, o);
	for (int r = 0; r < reps; r++) {
		run_round(m, comp, numel, codec, o);
		wall[r] = o->wall;
		cpu[r] = o->cpu;
	}
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 64;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	const char *only = argc > 3 ? argv[3] : "all";
	const char *link = argc > 4 ? argv[4] : "all";
	const char *kern = argc > 5 ? argv[5] : "auto";
	enum kw_simd simd = KW_SIMD_COUNT;
	uint64_t numel = (uint64_t)mib << 18;
	static struct kw_codec codec;
	const enum kw_compression comps[3] = { KW_COMP_NONE, KW_COMP_FLOAT16, KW_COMP_BLOCKWISE_8BIT };
	const char *names[3] = { "NONE", "FLOAT16", "BLOCKWISE_8BIT" };
	double bw, bw_cpu, wall[16], cpu[16];
	struct run_out o = { 0 };
	int n = reps > 16 ? 16 : reps;

	for (int v = KW_SIMD_AUTO; v < KW_SIMD_COUNT; v++)
		if (!strcmp(kern, kw_simd_name((enum kw_simd)v)))
			simd = (enum kw_simd)v;
	if (simd == KW_SIMD_COUNT || !kw_simd_available(kw_simd_resolve(simd))) {
		fprintf(stderr, "bench_avg: kernels '%s' unknown, not compiled in or not supported by"
			" this CPU\n", kern);
		return 1;
	}
	if (!mib || reps < 1 || kw_codec_init(&codec, simd)) {
		fprintf(stderr, "usage: bench_avg [MiB_per_peer [reps [NONE|FLOAT16|BLOCKWISE_8BIT|all"
			" [inproc|tcp|all [auto|ref|avx2|avx512|neon|...]]]]]\n");
		return 1;
	}
	bw = loopback_throughput((size_t)1 << 30, &bw_cpu);
	printf("all-reduce: %d peers x %u MiB fp32, part size %d B, window %d, one thread, kernels %s;"
	       " median of %d after a warm-up round\n", NP, mib, CONFIG_KW_ML_AVG_PART_BYTES,
	       CONFIG_KW_ML_AVG_WINDOW, codec.k->name, n);
	printf("baseline: loopback TCP single-thread copy %.0f MiB/s wall, %.0f MiB/s per CPU second\n",
	       bw / (1 << 20), bw_cpu / (1 << 20));
	printf("bound = wire bytes of all %d peers (one thread carries them all) / copy throughput,"
	       " wall and CPU; x = round time / bound\n", NP);
	printf("%-15s %-6s %8s %8s %8s %8s %8s %8s %7s %7s %6s %8s\n", "codec", "link", "wall_ms",
	       "cpu_ms", "wire_MiB", "peer_MiB", "bnd_wall", "bnd_cpu", "x_wall", "x_cpu", "ratio",
	       "max_err");
	for (int c = 0; c < 3; c++) {
		if (strcmp(only, "all") && strcmp(only, names[c]))
			continue;
		for (int m = 0; m < 2; m++) {
			if (strcmp(link, "all") && strcmp(link, m ? "tcp" : "inproc"))
				continue;
			measure((enum tmode)m, comps[c], numel, n, &codec, wall, cpu, &o);
			print_row(names[c], m, wall, cpu, n, &o, bw, bw_cpu);
		}
	}
	/* The small-round goal: 4 peers x 4 MiB with BLOCKWISE_8BIT in under 200 ms. */
	if (!strcmp(only, "all")) {
		measure(T_TCP, KW_COMP_BLOCKWISE_8BIT, (uint64_t)4 << 18, n, &codec, wall, cpu, &o);
		printf("goal: %d peers x 4 MiB BLOCKWISE_8BIT over tcp: %.1f ms wall, %.1f ms CPU"
		       " (goal < 200 ms)\n", NP, 1e3 * bench_median(wall, n), 1e3 * bench_median(cpu, n));
	}
	return 0;
}
