/*
 * Log sink: formats into a stack buffer (no heap) and writes one line to stderr with a
 * single write(2), so lines from several processes do not interleave mid-line.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <kw/log.h>

/* Process-wide by design (see kw/log.h): set once at start-up, read everywhere. */
static atomic_int g_log_level = CONFIG_KW_LOG_DEFAULT_LEVEL;
static void (*g_log_hook)(int, const char *, const char *, void *);
static void *g_log_hook_arg;
static atomic_int g_log_stderr = 1;

static const char *const g_lvl_names[] = { "OFF", "ERR", "WRN", "INF", "DBG" };

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
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%llu.%03ld %s %s: ",
		     (unsigned long long)ts.tv_sec, ts.tv_nsec / 1000000L, g_lvl_names[level], module);
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
