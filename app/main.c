/*
 * kwnode: the daemon's entry point. Parses the command line, places the node and its arena
 * in static storage, runs the init table, runs the loop until SIGINT/SIGTERM (delivered
 * through a signalfd watched by the loop, so no handler touches shared state), drains, and
 * shuts modules down in reverse order.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/sys.h>
#include <kw/version.h>
#include <kw/net/swarm.h>

#include "hivemind.h"
#ifdef CONFIG_KW_APP_AVERAGING
#include "avg_app.h"
#endif
#include "notify.h"

/* Firmware placement: the node and its arena live in .bss; untouched pages cost no RAM. */
static uint8_t g_arena[(size_t)CONFIG_KW_ARENA_KIB * 1024] __attribute__((aligned(64)));
static struct kw_node g_node;
static struct kw_app g_app;
/* systemd's Type=notify messages (notify.h); fd -1 outside systemd */
static struct kw_notify g_notify = { .fd = -1 };

/*
 * Shared-library constructors (OpenBLAS starts its thread pool there) can create threads
 * before cmd_run blocks SIGINT/SIGTERM, and the kernel may hand a process-wide signal to any
 * thread that does not block it: with the default action that kills the node undrained. This
 * handler, which only such a thread can run, re-sends the signal to the main thread, where it
 * is blocked and so waits for the signalfd like any other. Written once before installation.
 */
static pid_t g_main_tid;

static void forward_to_main(int sig)
{
	int saved = errno;

	syscall(SYS_tgkill, getpid(), g_main_tid, sig);
	errno = saved;
}

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static int cmd_run(int argc, char **argv);
static int cmd_help(int argc, char **argv);

#define KW_IF_1(...) __VA_ARGS__
#define KW_IF_0(...)
#define KW_IF__(v, ...) KW_IF_##v(__VA_ARGS__)
#define KW_IF_(v, ...) KW_IF__(v, __VA_ARGS__)
#define KW_IF(cfg, ...) KW_IF_(IS_ENABLED(cfg), __VA_ARGS__)

/* Prototypes of the commands other modules provide. */
#define KW_CMD(n, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef KW_CMD

#define KW_CMD(n, fn, summary) { #n, fn, summary },
static const struct cmd g_cmds[] = {
	{ "run", cmd_run, "start the node and serve until SIGINT/SIGTERM" },
#include "commands.def"
	{ "help", cmd_help, "show this help" },
};
#undef KW_CMD

static void print_version(void)
{
	const struct kw_board_desc *b = kw_board_desc();

	printf("kwnode %s (board %s, arch %s, cpu %s)\n", KW_VERSION_STRING, b->name,
	       CONFIG_KW_ARCH, b->cpu);
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: kwnode [--version] [--help] <command> [options]\n\ncommands:\n");
	for (i = 0; i < KW_ARRAY_SIZE(g_cmds); i++)
		fprintf(f, "  %-8s %s\n", g_cmds[i].name, g_cmds[i].summary);
	fprintf(f, "\n'kwnode <command> --help' describes a command's options.\n");
}

static int cmd_help(int argc, char **argv)
{
	usage(stdout);
	return 0;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode run [options]\n"
		"  -c, --config FILE      read key = value settings (doc/config.md)\n"
		"  -d, --data-dir DIR     identity key and state (default %s)\n"
		"  -l, --listen MULTIADDR listen address; repeatable (default from config)\n"
		"      --announce MULTIADDR address peers should dial instead (public IP and\n"
		"                         forwarded port); repeatable, see doc/status.md\n"
		"  -b, --bootstrap MULTIADDR  DHT bootstrap peer with /p2p/; repeatable\n"
		"      --dht-client       use the DHT without serving it (dht_mode = client)\n"
		"  -L, --log-level N      0 off, 1 err, 2 warn, 3 info, 4 debug\n"
		"  -v, --verbose          log level 4\n"
		"  -h, --help             this help\n",
		CONFIG_KW_DATA_DIR);
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

struct sig_ctx {
	struct kw_watch w;
	int fd;
	struct kw_node *node;
	bool stopping;             /* a stop signal came already */
};

#ifdef CONFIG_KW_APP_HIVEMIND
static void stop_loop(struct kw_node *n)
{
	kw_loop_stop(&n->loop, 0);
}

/* after averaging left its rounds: the OFFLINE records, then the node's own drain */
static void __attribute__((unused)) stop_after_avg(struct kw_node *n)
{
	if (kw_app_hm_before_stop(n, kw_node_request_stop) < 0)
		kw_node_request_stop(n);
}
#endif

static void on_signal(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct sig_ctx *sc = (struct sig_ctx *)w->arg;
	struct signalfd_siginfo si;

	while (read(sc->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		KW_LOG_INF(main, "received %s; draining (up to %u ms)", strsignal((int)si.ssi_signo),
			   sc->node->cfg.shutdown_drain_ms);
		/* systemctl stop: systemd shows "deactivating" while the node drains */
		kw_notify_send(&g_notify, "STOPPING=1");
#ifdef CONFIG_KW_APP_HIVEMIND
		/* a Petals/hivemind server says OFFLINE before its connections close */
		if (!sc->stopping) {
			sc->stopping = true;
#ifdef CONFIG_KW_APP_AVERAGING
			/* averaging leaves its rounds first (app/avg_app.h) */
			if (kw_app_avgd_before_stop(sc->node, stop_after_avg) == 0)
				continue;
#endif
			if (kw_app_hm_before_stop(sc->node, kw_node_request_stop) == 0)
				continue;
		}
#endif
		kw_node_request_stop(sc->node);
	}
}

/*
 * The stable start-up lines on stdout (doc/net-swarm.md): `peer-id <id>`, then one
 * `listen <multiaddr>/p2p/<id>` per address with the real port, flushed so a supervisor or
 * a test reading a pipe sees them at once.
 */
static void print_listen_lines(struct kw_app *app)
{
#ifdef CONFIG_KW_NET_SWARM
	struct kw_swarm *sw = app->sw;
	char buf[1024];
	size_t i;

	if (!sw)
		return;
	if (kw_peer_id_to_text(kw_swarm_peer_id(sw), buf, sizeof(buf)) == 0)
		printf("peer-id %s\n", buf);
	for (i = 0; i < kw_swarm_listen_count(sw); i++)
		if (kw_swarm_listen_addr(sw, i, buf, sizeof(buf)) == 0)
			printf("listen %s\n", buf);
	fflush(stdout);
#endif
}

static int ensure_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "announce", required_argument, NULL, 'A' },
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "dht-client", no_argument, NULL, 'C' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kw_config *cfg = &g_app.cfg;
	struct kw_sys_linux sys;
	struct sig_ctx sc = { 0 };
	char err[256];
	const char *config_file = NULL;
	/* Command-line settings are applied after the file, so remember them first. */
	const char *cli_data_dir = NULL, *cli_level = NULL;
	const char *cli_listen[KW_CONFIG_LISTEN_MAX], *cli_announce[KW_CONFIG_LISTEN_MAX];
	int n_cli_announce = 0;
	const char *cli_boot[KW_CONFIG_BOOTSTRAP_MAX];
	int n_cli_listen = 0, n_cli_boot = 0, c, ret, i;
	bool cli_dht_client = false;
	sigset_t mask;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:d:l:b:L:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_file = optarg; break;
		case 'd': cli_data_dir = optarg; break;
		case 'l':
			if (n_cli_listen >= KW_CONFIG_LISTEN_MAX) {
				fprintf(stderr, "kwnode run: at most %d --listen\n", KW_CONFIG_LISTEN_MAX);
				return 2;
			}
			cli_listen[n_cli_listen++] = optarg;
			break;
		case 'A':
			if (n_cli_announce >= KW_CONFIG_LISTEN_MAX) {
				fprintf(stderr, "kwnode run: at most %d --announce\n",
					KW_CONFIG_LISTEN_MAX);
				return 2;
			}
			cli_announce[n_cli_announce++] = optarg;
			break;
		case 'b':
			if (n_cli_boot >= KW_CONFIG_BOOTSTRAP_MAX) {
				fprintf(stderr, "kwnode run: at most %d --bootstrap\n",
					KW_CONFIG_BOOTSTRAP_MAX);
				return 2;
			}
			cli_boot[n_cli_boot++] = optarg;
			break;
		case 'C': cli_dht_client = true; break;
		case 'L': cli_level = optarg; break;
		case 'v': cli_level = "4"; break;
		case 'h': run_usage(stdout); return 0;
		default: run_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kwnode run: unexpected argument '%s'\n", argv[optind]);
		run_usage(stderr);
		return 2;
	}

	kw_config_defaults(cfg);
	if (config_file) {
		ret = kw_config_load(cfg, config_file, err, sizeof(err));
		if (ret < 0) {
			/* a missing or unreadable file is a usage error, a bad line a config error */
			fprintf(stderr, "kwnode run: %s%s%s\n", ret == -KW_ECONFIG ? config_file : "",
				ret == -KW_ECONFIG ? ": " : "", err);
			return ret == -KW_ECONFIG || ret == -KW_EMSGSIZE ? 1 : 2;
		}
	}
	if (n_cli_listen > 0)
		kw_config_clear_listen(cfg);  /* the command line replaces the file's addresses */
	for (i = 0; i < n_cli_listen; i++)
		if (kw_config_set(cfg, "listen", cli_listen[i], err, sizeof(err)) < 0)
			goto bad_opt;
	if (n_cli_announce > 0)
		kw_config_clear_announce(cfg);  /* as --listen: replaces the file's addresses */
	for (i = 0; i < n_cli_announce; i++)
		if (kw_config_set(cfg, "announce", cli_announce[i], err, sizeof(err)) < 0)
			goto bad_opt;
	if (n_cli_boot > 0)
		kw_config_clear_bootstrap(cfg);  /* as --listen: replaces the file's peers */
	for (i = 0; i < n_cli_boot; i++)
		if (kw_config_set(cfg, "bootstrap", cli_boot[i], err, sizeof(err)) < 0)
			goto bad_opt;
	if (cli_dht_client && kw_config_set(cfg, "dht_mode", "client", err, sizeof(err)) < 0)
		goto bad_opt;
	if (cli_data_dir && kw_config_set(cfg, "data_dir", cli_data_dir, err, sizeof(err)) < 0)
		goto bad_opt;
	if (cli_level && kw_config_set(cfg, "log_level", cli_level, err, sizeof(err)) < 0)
		goto bad_opt;
	kw_log_set_level(cfg->node.log_level);

	ret = ensure_dir(cfg->data_dir);
	if (ret < 0) {
		fprintf(stderr, "kwnode run: cannot create data directory %s: %s\n", cfg->data_dir,
			kw_strerror(ret));
		return 1;
	}

	/* Block the signals before any thread could exist; the loop reads them from a signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	g_main_tid = (pid_t)syscall(SYS_gettid);
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = forward_to_main;
		sa.sa_flags = SA_RESTART;
		sigfillset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	ret = kw_sys_linux_open(&sys);
	if (ret < 0) {
		fprintf(stderr, "kwnode run: epoll: %s\n", kw_strerror(ret));
		return 1;
	}
	ret = kw_node_init(&g_node, g_arena, sizeof(g_arena), &sys.sys, &cfg->node);
	if (ret < 0)
		goto out_sys;
	kw_app_attach(&g_node, &g_app);
	sc.node = &g_node;
	sc.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sc.fd < 0 || kw_loop_watch(&g_node.loop, &sc.w, sc.fd, KW_EV_READ, on_signal, &sc) < 0) {
		ret = -errno;
		KW_LOG_ERR(main, "signalfd: %s", kw_strerror(ret));
		goto out_sys;
	}
	ret = kw_node_run_inits(&g_node, kw_app_initcalls, kw_app_initcalls_count);
	if (ret < 0)
		goto out_sig;

	print_listen_lines(&g_app);
	KW_LOG_INF(main, "kwnode %s ready: arena %zu/%zu KiB used, rss %ld KiB", KW_VERSION_STRING,
		   g_node.arena.used / 1024, g_node.arena.size / 1024, rss_kib());
	/* READY=1 only now: the inits above opened the listeners (a Type=notify unit ordered
	 * after this one starts when peers can already connect). A bad NOTIFY_SOCKET is logged;
	 * the node serves anyway and systemd reports the start timeout. */
	if (kw_notify_open(&g_notify) == 0) {
		kw_notify_send(&g_notify, "READY=1");
		if (kw_notify_watchdog_start(&g_notify, &g_node.loop) < 0)
			KW_LOG_WRN(main, "sd_notify: no timer slot for the watchdog ping");
	}
	ret = kw_loop_run(&g_node.loop);
#ifdef CONFIG_KW_APP_HIVEMIND
	/* the loop ended on a path other than a stop signal (a fatal error): the OFFLINE
	 * records still go out, bounded by shutdown_drain_ms, while the connections are up */
	if (kw_app_hm_before_stop(&g_node, stop_loop) == 0)
		(void)kw_loop_run(&g_node.loop);
#endif
	kw_notify_close(&g_notify);
	kw_node_shutdown(&g_node);
	KW_LOG_INF(main, "stopped (rss %ld KiB, %llu loop passes)", rss_kib(),
		   (unsigned long long)g_node.loop.stats.iterations);
out_sig:
	kw_loop_unwatch(&g_node.loop, &sc.w);
	if (sc.fd >= 0)
		close(sc.fd);
out_sys:
	kw_sys_linux_close(&sys);
	return ret < 0 ? 1 : 0;
bad_opt:
	fprintf(stderr, "kwnode run: %s\n", err);
	run_usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	size_t i;

	kw_log_detect_journal();  /* under systemd: "<prio>" prefixes, no timestamps */
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		print_version();
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < KW_ARRAY_SIZE(g_cmds); i++)
		if (!strcmp(argv[1], g_cmds[i].name))
			return g_cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "kwnode: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
