/*
 * Log sink: formats into a stack buffer (no heap) and writes one line to stderr with a
 * single write(2), so lines from several processes do not interleave mid-line.
 * Under systemd, stderr is a stream to journald (systemd.exec(5), JOURNAL_STREAM): each line
 * then starts with its syslog priority "<N>" (sd-daemon(3)), which journald strips and keeps
 * as the entry's PRIORITY, and carries no timestamp of ours (journald stamps every entry).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kw/log.h>

/* Process-wide by design (see kw/log.h): set once at start-up, read everywhere. */
static atomic_int g_log_level = CONFIG_KW_LOG_DEFAULT_LEVEL;
static void (*g_log_hook)(int, const char *, const char *, void *);
static void *g_log_hook_arg;
static atomic_int g_log_stderr = 1;
static atomic_int g_log_journal;

static const char *const g_lvl_names[] = { "OFF", "ERR", "WRN", "INF", "DBG" };
/* syslog priorities (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG) for the journal prefix */
static const char g_lvl_prio[] = { '7', '3', '4', '6', '7' };

int kw_log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int on = 0;

	/* "<device>:<inode>" of the stream systemd connected; it only holds while stderr is
	 * still that stream (a shell redirect in the unit, or a child, would change it) */
	if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		on = 1;
	atomic_store(&g_log_journal, on);
	return on;
}

int kw_log_journal(void)
{
	return atomic_load_explicit(&g_log_journal, memory_order_relaxed);
}

int kw_log_set_level(int level)
{
	if (level < 0)
		level = 0;
	if (level > 4)
		level = 4;
	return atomic_exchange(&g_log_level, level);
}

int kw_log_get_level(void)
{
	return atomic_load_explicit(&g_log_level, memory_order_relaxed);
}

void kw_log_set_hook(void (*hook)(int, const char *, const char *, void *), void *arg)
{
	g_log_hook = hook;
	g_log_hook_arg = arg;
}

int kw_log_set_stderr(int on)
{
	return atomic_exchange(&g_log_stderr, on != 0);
}

void kw_log_emit(int level, const char *module, const char *fmt, ...)
{
	char line[512];
	struct timespec ts;
	int n, m;
	va_list ap;

	if (level < 1 || level > 4)
		level = 4;
	if (kw_log_journal()) {
		n = snprintf(line, sizeof(line), "<%c>%s %s: ", g_lvl_prio[level],
			     g_lvl_names[level], module);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		n = snprintf(line, sizeof(line), "%llu.%03ld %s %s: ", (unsigned long long)ts.tv_sec,
			     ts.tv_nsec / 1000000L, g_lvl_names[level], module);
	}
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) > sizeof(line) - 2)
		m = (int)(sizeof(line) - 2) - n;  /* truncated: keep the newline */
	if (g_log_hook) {
		line[n + m] = '\0';
		g_log_hook(level, module, line + n, g_log_hook_arg);
	}
	if (!atomic_load_explicit(&g_log_stderr, memory_order_relaxed))
		return;
	line[n + m] = '\n';
	if (write(STDERR_FILENO, line, (size_t)(n + m + 1)) < 0)
		return;  /* nowhere left to report a failing stderr */
}
